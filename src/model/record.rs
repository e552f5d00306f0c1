//! Contact and Event records as the engine sees them, independent of EWS and of the
//! Salesforce REST API. Connectors convert to and from these; the engine never sees XML or
//! JSON.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The two kinds of records tether syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Contact,
    Event,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 2] = [ObjectKind::Contact, ObjectKind::Event];

    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Contact => "contact",
            ObjectKind::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectKind> {
        match s {
            "contact" => Some(ObjectKind::Contact),
            "event" => Some(ObjectKind::Event),
            _ => None,
        }
    }
}

/// A contact: mapped values keyed by the Salesforce field name of their mapping (the catalog's
/// `Account.Name` stands for the company). An absent key and an empty value mean the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub fields: BTreeMap<String, String>,
}

impl Contact {
    pub fn get(&self, field: &str) -> &str {
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }
    pub fn set(&mut self, field: &str, value: impl Into<String>) {
        self.fields.insert(field.to_string(), value.into());
    }
    pub fn with(mut self, field: &str, value: impl Into<String>) -> Self {
        self.set(field, value);
        self
    }
    pub fn email(&self) -> &str {
        self.get("Email")
    }
    pub fn first_name(&self) -> &str {
        self.get("FirstName")
    }
    pub fn last_name(&self) -> &str {
        self.get("LastName")
    }
    pub fn company(&self) -> &str {
        self.get(crate::model::catalog::ACCOUNT_NAME)
    }
}

/// When an event happens. All-day events are dates (end exclusive), because Salesforce
/// stores them as a date and a duration and Exchange as midnights in the organiser's zone:
/// only the dates survive both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventTime {
    Timed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    AllDay {
        start: NaiveDate,
        /// The day after the last day.
        end: NaiveDate,
    },
}

/// Free/busy as both sides know it (Salesforce ShowAs, EWS LegacyFreeBusyStatus).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShowAs {
    Free,
    Tentative,
    #[default]
    Busy,
    OutOfOffice,
}

impl ShowAs {
    pub fn name(self) -> &'static str {
        match self {
            ShowAs::Free => "Free",
            ShowAs::Tentative => "Tentative",
            ShowAs::Busy => "Busy",
            ShowAs::OutOfOffice => "OutOfOffice",
        }
    }
}

/// Recurrence as far as the sync rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recurrence {
    /// A single event.
    #[default]
    Single,
    /// A Lightning Experience event series / an Exchange recurring master, with its rule in
    /// RFC 5545 RRULE form (e.g. `FREQ=WEEKLY;BYDAY=MO`).
    Series { rule: String },
    /// A Salesforce Classic recurring event (IsRecurrence): never synced.
    ClassicRecurring,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub subject: String,
    pub time: EventTime,
    pub location: String,
    pub body: String,
    pub show_as: ShowAs,
    pub private: bool,
    /// Attendee email addresses (the rep excluded).
    pub attendees: Vec<String>,
    /// The organiser's email, where known; informational, not compared.
    pub organizer: Option<String>,
    pub recurrence: Recurrence,
    /// Values of custom mappings, keyed by Salesforce Event field name.
    pub extra: BTreeMap<String, String>,
    /// On a record being written only (`EffectiveMapping::project`): the modelled fields
    /// (Salesforce names, e.g. `Location`) the writing rep's configuration does not map,
    /// which the write leaves as they are.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unmapped: BTreeSet<String>,
}

impl Event {
    pub fn new(subject: impl Into<String>, time: EventTime) -> Self {
        Event {
            subject: subject.into(),
            time,
            location: String::new(),
            body: String::new(),
            show_as: ShowAs::Busy,
            private: false,
            attendees: Vec::new(),
            organizer: None,
            recurrence: Recurrence::Single,
            extra: BTreeMap::new(),
            unmapped: BTreeSet::new(),
        }
    }

    /// The instant the event starts; all-day events start at midnight in the given zone.
    pub fn start_instant(&self, zone: chrono_tz::Tz) -> DateTime<Utc> {
        match self.time {
            EventTime::Timed { start, .. } => start,
            EventTime::AllDay { start, .. } => crate::model::normalize::local_midnight(start, zone),
        }
    }

    /// The instant the event ends, for the `since` window. All-day events end at midnight
    /// (end date) in the rep's zone, which the caller supplies.
    pub fn end_instant(&self, zone: chrono_tz::Tz) -> DateTime<Utc> {
        match self.time {
            EventTime::Timed { end, .. } => end,
            EventTime::AllDay { end, .. } => crate::model::normalize::local_midnight(end, zone),
        }
    }
}

/// A record of either kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum Record {
    Contact(Contact),
    Event(Event),
}

impl Record {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Record::Contact(_) => ObjectKind::Contact,
            Record::Event(_) => ObjectKind::Event,
        }
    }
    pub fn as_contact(&self) -> Option<&Contact> {
        match self {
            Record::Contact(c) => Some(c),
            Record::Event(_) => None,
        }
    }
    pub fn as_event(&self) -> Option<&Event> {
        match self {
            Record::Event(e) => Some(e),
            Record::Contact(_) => None,
        }
    }
}
