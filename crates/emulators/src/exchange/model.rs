//! The EWS emulator's store model: the contacts and calendar items a mailbox holds, and the
//! expansion of recurring series for CalendarView. How items are read from requests and
//! written into answers is `codec`'s business. It is the emulator's own, apart from any
//! client's model. The serde derives are for the sandbox's snapshots of its mailboxes.

use chrono::{DateTime, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemId {
    pub id: String,
    pub change_key: Option<String>,
}

impl ItemId {
    pub fn new(id: impl Into<String>, change_key: Option<String>) -> Self {
        ItemId {
            id: id.into(),
            change_key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    pub id: ItemId,
    pub display_name: String,
    pub folder_class: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
}

pub const ADDRESS_PARTS: &[&str] = &["Street", "City", "State", "CountryOrRegion", "PostalCode"];

impl PhysicalAddress {
    /// The field holding one part, by its PhysicalAddressDictionaryEntryType member name.
    pub fn slot_mut(&mut self, part: &str) -> Option<&mut Option<String>> {
        Some(match part {
            "Street" => &mut self.street,
            "City" => &mut self.city,
            "State" => &mut self.state,
            "CountryOrRegion" => &mut self.country,
            "PostalCode" => &mut self.postal_code,
            _ => return None,
        })
    }

    /// The parts in schema order, each with its member name.
    fn parts(&self) -> [(&'static str, &Option<String>); 5] {
        [
            ("Street", &self.street),
            ("City", &self.city),
            ("State", &self.state),
            ("CountryOrRegion", &self.country),
            ("PostalCode", &self.postal_code),
        ]
    }

    pub fn part(&self, part: &str) -> Option<&str> {
        let (_, value) = self.parts().into_iter().find(|(name, _)| *name == part)?;
        value.as_deref()
    }

    pub fn set_part(&mut self, part: &str, value: Option<String>) {
        if let Some(slot) = self.slot_mut(part) {
            *slot = value;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts().iter().all(|(_, value)| value.is_none())
    }
}

pub const EMAIL_KEYS: [&str; 3] = ["EmailAddress1", "EmailAddress2", "EmailAddress3"];
pub const ADDRESS_KEYS: [&str; 3] = ["Business", "Home", "Other"];
pub const PHONE_KEYS: &[&str] = &[
    "AssistantPhone",
    "BusinessFax",
    "BusinessPhone",
    "BusinessPhone2",
    "Callback",
    "CarPhone",
    "CompanyMainPhone",
    "HomeFax",
    "HomePhone",
    "HomePhone2",
    "Isdn",
    "MobilePhone",
    "OtherFax",
    "OtherTelephone",
    "Pager",
    "PrimaryPhone",
    "RadioPhone",
    "Telex",
    "TtyTddPhone",
];

/// The contact properties the emulator stores, in ContactItemType's member order (ItemType's
/// first). `notes` is the item Body (what Outlook shows as notes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub item_id: Option<ItemId>,
    pub notes: Option<String>,
    pub categories: Vec<String>,
    /// DateTimeCreated: set by the server when the item is made, kept when it is moved.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// PublicStrings extended properties (name → string value).
    pub extended: BTreeMap<String, String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub file_as: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub nickname: Option<String>,
    pub company_name: Option<String>,
    /// EmailAddress1..3.
    pub emails: [Option<String>; 3],
    /// By PhysicalAddressKeyType (Business, Home, Other).
    pub addresses: BTreeMap<String, PhysicalAddress>,
    /// By PhoneNumberKeyType.
    pub phones: BTreeMap<String, String>,
    pub assistant_name: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub surname: Option<String>,
}

/// EmailAddressType as a Mailbox carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxAddress {
    pub name: Option<String>,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// How a series ends: NoEndRecurrence, EndDateRecurrence (inclusive), NumberedRecurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeEnd {
    NoEnd,
    EndDate(NaiveDate),
    Count(u32),
}

/// RecurrenceType: the pattern, and the range's start date and end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub pattern: Pattern,
    pub start: NaiveDate,
    pub end: RangeEnd,
}

/// OccurrenceInfoType: a moved occurrence of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurrenceInfo {
    pub item_id: ItemId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub original_start: DateTime<Utc>,
}

/// The calendar properties the emulator stores, in CalendarItemType's member order (ItemType's
/// first). Times are instants (UTC); `start_time_zone` is the Windows zone the event was
/// created in, which is what puts all-day events and recurring series on the right local days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub item_id: Option<ItemId>,
    pub subject: Option<String>,
    pub sensitivity: Option<Sensitivity>,
    pub body: Option<String>,
    pub categories: Vec<String>,
    /// DateTimeCreated: set by the server when the item is made, kept when it is moved.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    pub extended: BTreeMap<String, String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub uid: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub original_start: Option<DateTime<Utc>>,
    pub is_all_day: bool,
    pub free_busy: Option<FreeBusy>,
    pub location: Option<String>,
    pub item_type: Option<CalendarItemType>,
    pub organizer: Option<MailboxAddress>,
    pub required_attendees: Vec<Attendee>,
    pub optional_attendees: Vec<Attendee>,
    pub recurrence: Option<Recurrence>,
    pub modified_occurrences: Vec<OccurrenceInfo>,
    pub deleted_occurrences: Vec<DateTime<Utc>>,
    pub start_time_zone: Option<String>,
    pub end_time_zone: Option<String>,
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
    pub fn all_day(
        first: NaiveDate,
        last_exclusive: NaiveDate,
        windows_zone: &str,
    ) -> Option<Self> {
        let zone = super::tz::windows_tz(windows_zone)?;
        let local_midnight = |day: NaiveDate| -> Option<DateTime<Utc>> {
            let t = zone.from_local_datetime(&day.and_time(chrono::NaiveTime::MIN));
            Some(t.earliest()?.to_utc())
        };
        Some(CalendarEvent {
            is_all_day: true,
            start_time_zone: Some(windows_zone.to_string()),
            end_time_zone: Some(windows_zone.to_string()),
            ..CalendarEvent::new(local_midnight(first)?, local_midnight(last_exclusive)?)
        })
    }

    /// An all-day event's local days, the end exclusive, in its own zone.
    pub fn all_day_dates(&self) -> Option<(NaiveDate, NaiveDate)> {
        let zone = self.zone();
        let day = |t: &DateTime<Utc>| t.with_timezone(&zone).date_naive();
        self.is_all_day.then(|| (day(&self.start), day(&self.end)))
    }
}

/// Which variant of item the server returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    Contact(Box<Contact>),
    Event(Box<CalendarEvent>),
    /// Any other item class (messages, distribution lists…): only its id.
    Other(Option<ItemId>),
}

impl Item {
    pub fn item_id(&self) -> Option<&ItemId> {
        match self {
            Item::Contact(c) => c.item_id.as_ref(),
            Item::Event(e) => e.item_id.as_ref(),
            Item::Other(id) => id.as_ref(),
        }
    }
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
