//! The EWS emulator's store model: the contacts and calendar items a mailbox holds, and the
//! expansion of recurring series for CalendarView. How items are read from requests and
//! written into answers is `codec`'s business. It is the emulator's own, apart from any
//! client's model. The serde derives are for the sandbox's snapshots of its mailboxes.

use chrono::{DateTime, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

// Fields are in alphabetical order: the codec, not this layout, puts members in the
// schema's order.

/// ItemIdType: the store id and the version (ChangeKey) a write must name.
#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct ItemId {
    pub change_key: Option<String>,
    pub id: String,
}

impl ItemId {
    pub fn new(id: impl Into<String>, change_key: Option<String>) -> Self {
        let id = id.into();
        ItemId { id, change_key }
    }
}

/// One entry of a contact's PhysicalAddresses.
#[derive(Clone, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub struct PhysicalAddress {
    pub city: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
    pub state: Option<String>,
    pub street: Option<String>,
}

impl PhysicalAddress {
    /// The field holding one part, by its PhysicalAddressDictionaryEntryType member name.
    pub fn slot_mut(&mut self, part: &str) -> Option<&mut Option<String>> {
        let slot = match part {
            "City" => &mut self.city,
            "CountryOrRegion" => &mut self.country,
            "PostalCode" => &mut self.postal_code,
            "State" => &mut self.state,
            "Street" => &mut self.street,
            _ => return None,
        };
        Some(slot)
    }

    pub fn part(&self, part: &str) -> Option<&str> {
        let value = match part {
            "City" => &self.city,
            "CountryOrRegion" => &self.country,
            "PostalCode" => &self.postal_code,
            "State" => &self.state,
            "Street" => &self.street,
            _ => return None,
        };
        value.as_deref()
    }

    pub fn set_part(&mut self, part: &str, value: Option<String>) {
        if let Some(slot) = self.slot_mut(part) {
            *slot = value;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == PhysicalAddress::default()
    }
}

/// The contact properties the emulator stores. `notes` is the item Body (what Outlook shows
/// as notes).
#[derive(Clone, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// By PhysicalAddressKeyType (Business, Home, Other).
    pub addresses: BTreeMap<String, PhysicalAddress>,
    pub assistant_name: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub categories: Vec<String>,
    pub company_name: Option<String>,
    /// DateTimeCreated: set by the server when the item is made, kept when it is moved.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    pub department: Option<String>,
    pub display_name: Option<String>,
    /// EmailAddress1..3.
    pub emails: [Option<String>; 3],
    /// PublicStrings extended properties (name → string value).
    pub extended: BTreeMap<String, String>,
    pub file_as: Option<String>,
    pub given_name: Option<String>,
    pub item_id: Option<ItemId>,
    pub job_title: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub middle_name: Option<String>,
    pub nickname: Option<String>,
    pub notes: Option<String>,
    /// By PhoneNumberKeyType.
    pub phones: BTreeMap<String, String>,
    pub surname: Option<String>,
}

/// EmailAddressType as a Mailbox carries it.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct MailboxAddress {
    pub name: Option<String>,
    pub email: String,
}

#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct Attendee {
    pub mailbox: MailboxAddress,
    /// ResponseType as the server reports it (Unknown, Organizer, Tentative, Accept, Decline,
    /// NoResponseReceived).
    pub response: Option<String>,
}

/// A types.xsd string enumeration: each variant is spelled as the schema spells its value.
macro_rules! xsd_enumeration {
    ($(#[$doc:meta])* $name:ident: $($variant:ident)+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant,)+ }

        impl $name {
            const VALUES: &'static [($name, &'static str)] =
                &[$(($name::$variant, stringify!($variant)),)+];

            pub fn as_str(self) -> &'static str {
                Self::VALUES.iter().find(|(v, _)| *v == self).map_or("", |(_, s)| s)
            }

            /// The value for the schema's spelling (surrounding white space allowed).
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim();
                Self::VALUES.iter().find(|(_, name)| *name == s).map(|(v, _)| *v)
            }
        }
    };
}

xsd_enumeration!(
    /// SensitivityChoicesType.
    Sensitivity: Normal Personal Private Confidential
);
xsd_enumeration!(
    /// LegacyFreeBusyType.
    FreeBusy: Free Tentative Busy OOF WorkingElsewhere NoData
);
xsd_enumeration!(
    /// CalendarItemTypeType.
    CalendarItemType: Single Occurrence Exception RecurringMaster
);
xsd_enumeration!(
    /// DayOfWeekIndexType.
    WeekIndex: First Second Third Fourth Last
);

/// A recurrence pattern, in the RecurrencePatternTypes group's order.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub enum Pattern {
    RelativeYearly {
        month: u32,
        weekday: Weekday,
        index: WeekIndex,
    },
    AbsoluteYearly {
        month: u32,
        day: u32,
    },
    RelativeMonthly {
        interval: u32,
        weekday: Weekday,
        index: WeekIndex,
    },
    AbsoluteMonthly {
        interval: u32,
        day: u32,
    },
    Weekly {
        interval: u32,
        days: Vec<Weekday>,
        first_day: Option<Weekday>,
    },
    Daily {
        interval: u32,
    },
}

/// How a series ends: NumberedRecurrence, EndDateRecurrence (inclusive), NoEndRecurrence.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub enum RangeEnd {
    Count(u32),
    EndDate(NaiveDate),
    NoEnd,
}

/// RecurrenceType: the pattern, and the range's start date and end.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    pub end: RangeEnd,
    pub pattern: Pattern,
    pub start: NaiveDate,
}

/// OccurrenceInfoType: a moved occurrence of a series.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct OccurrenceInfo {
    pub end: DateTime<Utc>,
    pub item_id: ItemId,
    pub original_start: DateTime<Utc>,
    pub start: DateTime<Utc>,
}

/// The calendar properties the emulator stores. Times are instants (UTC);
/// `start_time_zone` is the Windows zone the event was created in, which is what puts
/// all-day events and recurring series on the right local days.
#[derive(Clone, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub body: Option<String>,
    pub categories: Vec<String>,
    /// DateTimeCreated: set by the server when the item is made, kept when it is moved.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    pub deleted_occurrences: Vec<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    pub end_time_zone: Option<String>,
    pub extended: BTreeMap<String, String>,
    pub free_busy: Option<FreeBusy>,
    pub is_all_day: bool,
    pub item_id: Option<ItemId>,
    pub item_type: Option<CalendarItemType>,
    pub last_modified: Option<DateTime<Utc>>,
    pub location: Option<String>,
    pub modified_occurrences: Vec<OccurrenceInfo>,
    pub optional_attendees: Vec<Attendee>,
    pub organizer: Option<MailboxAddress>,
    pub original_start: Option<DateTime<Utc>>,
    pub recurrence: Option<Recurrence>,
    pub required_attendees: Vec<Attendee>,
    pub sensitivity: Option<Sensitivity>,
    pub start: DateTime<Utc>,
    pub start_time_zone: Option<String>,
    pub subject: Option<String>,
    pub uid: Option<String>,
}

impl CalendarEvent {
    /// An event from `start` to `end` with no other property.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        CalendarEvent {
            start,
            end,
            ..CalendarEvent::default()
        }
    }

    /// The tzdb zone of the event's StartTimeZone (UTC when it has none or one unknown).
    fn zone(&self) -> chrono_tz::Tz {
        let id = self.start_time_zone.as_deref();
        id.and_then(super::tz::windows_tz).unwrap_or(chrono_tz::UTC)
    }

    /// An all-day event over the local days `first` up to `last_exclusive` in a Windows
    /// zone: Exchange stores it as the local midnights that bound those days.
    pub fn all_day(first: NaiveDate, last_exclusive: NaiveDate, zone_id: &str) -> Option<Self> {
        let zone = Some(zone_id.to_string());
        Some(CalendarEvent {
            is_all_day: true,
            start_time_zone: zone.clone(),
            end_time_zone: zone,
            ..CalendarEvent::new(
                local_midnight(zone_id, first)?,
                local_midnight(zone_id, last_exclusive)?,
            )
        })
    }

    /// An all-day event's local days, the end exclusive, in its own zone.
    pub fn all_day_dates(&self) -> Option<(NaiveDate, NaiveDate)> {
        let zone = self.zone();
        let day = |t: &DateTime<Utc>| t.with_timezone(&zone).date_naive();
        self.is_all_day.then(|| (day(&self.start), day(&self.end)))
    }
}

/// The instant a local day begins in a Windows zone.
fn local_midnight(zone_id: &str, day: NaiveDate) -> Option<DateTime<Utc>> {
    let zone = super::tz::windows_tz(zone_id)?;
    let t = zone.from_local_datetime(&day.and_time(chrono::NaiveTime::MIN));
    Some(t.earliest()?.to_utc())
}

impl Item {
    pub fn item_id(&self) -> Option<&ItemId> {
        let id = match self {
            Item::Other(id) => id,
            Item::Contact(contact) => &contact.item_id,
            Item::Event(event) => &event.item_id,
        };
        id.as_ref()
    }
}

/// A stored item: a contact, a calendar item, or any other item class (messages,
/// distribution lists…), of which only the id is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Item {
    Other(Option<ItemId>),
    Contact(Box<Contact>),
    Event(Box<CalendarEvent>),
}

// ---------------------------------------------------------------------------------------
// Day names (DayOfWeekType), shared by the EWS and Graph faces

const DAY_NAMES: [(Weekday, &str); 7] = [
    (Weekday::Sun, "Sunday"),
    (Weekday::Mon, "Monday"),
    (Weekday::Tue, "Tuesday"),
    (Weekday::Wed, "Wednesday"),
    (Weekday::Thu, "Thursday"),
    (Weekday::Fri, "Friday"),
    (Weekday::Sat, "Saturday"),
];

pub fn weekday_name(d: Weekday) -> &'static str {
    DAY_NAMES[d.num_days_from_sunday() as usize].1
}

pub fn parse_weekday(s: &str) -> Option<Weekday> {
    let s = s.trim();
    DAY_NAMES.iter().find(|(_, n)| *n == s).map(|(d, _)| *d)
}
