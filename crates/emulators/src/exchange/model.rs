//! The EWS emulator's store model: the contacts and calendar items a mailbox holds, and the
//! expansion of recurring series for CalendarView. How items are read from requests and
//! written into answers is `codec`'s business. It is the emulator's own, apart from any
//! client's model. The serde derives are for the sandbox's snapshots of its mailboxes.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};
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

/// The contact properties the emulator stores. `notes` is the item Body (what Outlook shows as notes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub item_id: Option<ItemId>,
    pub file_as: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub nickname: Option<String>,
    pub company_name: Option<String>,
    pub emails: [Option<String>; 3],
    pub addresses: BTreeMap<String, PhysicalAddress>,
    pub phones: BTreeMap<String, String>,
    pub assistant_name: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub surname: Option<String>,
    pub notes: Option<String>,
    pub categories: Vec<String>,
    /// PublicStrings extended properties (name → string value).
    pub extended: BTreeMap<String, String>,
    /// DateTimeCreated: set by the server when the item is made, kept when it is moved.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    pub last_modified: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxAddress {
    pub name: Option<String>,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    pub mailbox: MailboxAddress,
    /// ResponseType as the server reports it (Unknown, Organizer, Tentative, Accept, Decline,
    /// NoResponseReceived); never written.
    pub response: Option<String>,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),* }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s.trim() { $(stringify!($variant) => Some($name::$variant),)* _ => None }
            }
        }
    };
}

string_enum!(Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential
});
string_enum!(FreeBusy {
    Free,
    Tentative,
    Busy,
    OOF,
    WorkingElsewhere,
    NoData
});
string_enum!(CalendarItemType {
    Single,
    Occurrence,
    Exception,
    RecurringMaster
});
string_enum!(WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    Daily {
        interval: u32,
    },
    Weekly {
        interval: u32,
        days: Vec<Weekday>,
        first_day: Option<Weekday>,
    },
    AbsoluteMonthly {
        interval: u32,
        day: u32,
    },
    RelativeMonthly {
        interval: u32,
        weekday: Weekday,
        index: WeekIndex,
    },
    AbsoluteYearly {
        month: u32,
        day: u32,
    },
    RelativeYearly {
        month: u32,
        weekday: Weekday,
        index: WeekIndex,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeEnd {
    NoEnd,
    EndDate(NaiveDate),
    Count(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub pattern: Pattern,
    pub start: NaiveDate,
    pub end: RangeEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurrenceInfo {
    pub item_id: ItemId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub original_start: DateTime<Utc>,
}

/// The calendar properties the emulator stores. Times are instants (UTC); `start_time_zone` is the
/// Windows zone the event was created in, which is what makes all-day events and recurring
/// series land on the right local days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub item_id: Option<ItemId>,
    pub subject: Option<String>,
    pub sensitivity: Option<Sensitivity>,
    pub body: Option<String>,
    pub categories: Vec<String>,
    pub extended: BTreeMap<String, String>,
    /// DateTimeCreated: set by the server when the item is made, kept when it is moved.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
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
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        CalendarEvent {
            item_id: None,
            subject: None,
            sensitivity: None,
            body: None,
            categories: Vec::new(),
            extended: BTreeMap::new(),
            created: None,
            last_modified: None,
            uid: None,
            start,
            end,
            original_start: None,
            is_all_day: false,
            free_busy: None,
            location: None,
            item_type: None,
            organizer: None,
            required_attendees: Vec::new(),
            optional_attendees: Vec::new(),
            recurrence: None,
            modified_occurrences: Vec::new(),
            deleted_occurrences: Vec::new(),
            start_time_zone: None,
            end_time_zone: None,
        }
    }

    /// An all-day event from `first` to `last_exclusive` (local dates) in a Windows zone:
    /// Start and End are local midnights, as Exchange stores all-day events.
    pub fn all_day(
        first: NaiveDate,
        last_exclusive: NaiveDate,
        windows_zone: &str,
    ) -> Option<Self> {
        let tz = super::tz::windows_tz(windows_zone)?;
        let midnight = |d: NaiveDate| {
            tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        };
        let mut e = CalendarEvent::new(midnight(first)?, midnight(last_exclusive)?);
        e.is_all_day = true;
        e.start_time_zone = Some(windows_zone.to_string());
        e.end_time_zone = Some(windows_zone.to_string());
        Some(e)
    }

    /// All-day dates (start inclusive, end exclusive) in the event's own zone.
    pub fn all_day_dates(&self) -> Option<(NaiveDate, NaiveDate)> {
        if !self.is_all_day {
            return None;
        }
        let tz = self
            .start_time_zone
            .as_deref()
            .and_then(super::tz::windows_tz)
            .unwrap_or(chrono_tz::UTC);
        Some((
            self.start.with_timezone(&tz).date_naive(),
            self.end.with_timezone(&tz).date_naive(),
        ))
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

// ---------------------------------------------------------------------------------------
// Recurrence expansion (used by the emulator's CalendarView; pure, so unit-testable)

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, index: WeekIndex) -> Option<NaiveDate> {
    match index {
        WeekIndex::Last => {
            let last = NaiveDate::from_ymd_opt(year, month, days_in_month(year, month))?;
            let back =
                (7 + last.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
            last.checked_sub_days(chrono::Days::new(back as u64))
        }
        _ => {
            let n = match index {
                WeekIndex::First => 0,
                WeekIndex::Second => 1,
                WeekIndex::Third => 2,
                _ => 3,
            };
            let first = NaiveDate::from_ymd_opt(year, month, 1)?;
            let fwd =
                (7 + weekday.num_days_from_monday() - first.weekday().num_days_from_monday()) % 7;
            first.checked_add_days(chrono::Days::new((fwd + 7 * n) as u64))
        }
    }
}

/// `k` months after (year, month); `None` beyond what dates can hold.
fn add_months(year: i32, month: u32, k: u64) -> Option<(i32, u32)> {
    let total = (year as i64) * 12 + (month as i64 - 1) + i64::try_from(k).ok()?;
    let y = i32::try_from(total / 12).ok()?;
    Some((y, (total % 12) as u32 + 1))
}

/// The local dates a recurrence produces, in order, from its start date, stopping after
/// `until` (inclusive) or the range's end, and never producing more than `cap` dates.
pub fn occurrence_dates(r: &Recurrence, until: NaiveDate, cap: usize) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let last = match r.end {
        RangeEnd::EndDate(d) => d.min(until),
        _ => until,
    };
    let max_count = match r.end {
        RangeEnd::Count(n) => (n as usize).min(cap),
        _ => cap,
    };
    let push = |d: NaiveDate, out: &mut Vec<NaiveDate>| -> bool {
        if d < r.start {
            return true;
        }
        if d > last || out.len() >= max_count {
            return false;
        }
        out.push(d);
        true
    };
    // Every loop is bounded by `last` (a date) or the count; 10,000 periods is > 27 years
    // of daily events, far beyond any CalendarView window (2 years).
    const MAX_PERIODS: u32 = 10_000;
    match &r.pattern {
        Pattern::Daily { interval } => {
            for k in 0..MAX_PERIODS {
                let Some(d) = r
                    .start
                    .checked_add_days(chrono::Days::new(k as u64 * *interval as u64))
                else {
                    break;
                };
                if !push(d, &mut out) {
                    break;
                }
            }
        }
        Pattern::Weekly {
            interval,
            days,
            first_day,
        } => {
            let fd = first_day.unwrap_or(Weekday::Sun);
            let back =
                (7 + r.start.weekday().num_days_from_monday() - fd.num_days_from_monday()) % 7;
            let Some(week0) = r.start.checked_sub_days(chrono::Days::new(back as u64)) else {
                return out;
            };
            let mut offsets: Vec<u32> = days
                .iter()
                .map(|d| (7 + d.num_days_from_monday() - fd.num_days_from_monday()) % 7)
                .collect();
            offsets.sort_unstable();
            offsets.dedup();
            if offsets.is_empty() {
                return out;
            }
            'weeks: for k in 0..MAX_PERIODS {
                for off in &offsets {
                    let Some(d) = week0.checked_add_days(chrono::Days::new(
                        k as u64 * *interval as u64 * 7 + *off as u64,
                    )) else {
                        break 'weeks;
                    };
                    if !push(d, &mut out) {
                        break 'weeks;
                    }
                }
            }
        }
        Pattern::AbsoluteMonthly { interval, day } => {
            for k in 0..MAX_PERIODS {
                let Some((y, m)) =
                    add_months(r.start.year(), r.start.month(), k as u64 * *interval as u64)
                else {
                    break;
                };
                let Some(d) = NaiveDate::from_ymd_opt(y, m, (*day).clamp(1, days_in_month(y, m)))
                else {
                    break;
                };
                if !push(d, &mut out) {
                    break;
                }
            }
        }
        Pattern::RelativeMonthly {
            interval,
            weekday,
            index,
        } => {
            for k in 0..MAX_PERIODS {
                let Some((y, m)) =
                    add_months(r.start.year(), r.start.month(), k as u64 * *interval as u64)
                else {
                    break;
                };
                let Some(d) = nth_weekday(y, m, *weekday, *index) else {
                    break;
                };
                if !push(d, &mut out) {
                    break;
                }
            }
        }
        Pattern::AbsoluteYearly { month, day } => {
            for k in 0..MAX_PERIODS {
                let y = r.start.year() + k as i32;
                let m = (*month).clamp(1, 12);
                let Some(d) = NaiveDate::from_ymd_opt(y, m, (*day).clamp(1, days_in_month(y, m)))
                else {
                    break;
                };
                if !push(d, &mut out) {
                    break;
                }
            }
        }
        Pattern::RelativeYearly {
            month,
            weekday,
            index,
        } => {
            for k in 0..MAX_PERIODS {
                let y = r.start.year() + k as i32;
                let Some(d) = nth_weekday(y, (*month).clamp(1, 12), *weekday, *index) else {
                    break;
                };
                if !push(d, &mut out) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn patterns_expand_like_outlook() {
        let weekly = Recurrence {
            pattern: Pattern::Weekly {
                interval: 2,
                days: vec![Weekday::Mon, Weekday::Thu],
                first_day: Some(Weekday::Mon),
            },
            start: d(2026, 1, 5),
            end: RangeEnd::Count(5),
        };
        assert_eq!(
            occurrence_dates(&weekly, d(2030, 1, 1), 1000),
            vec![
                d(2026, 1, 5),
                d(2026, 1, 8),
                d(2026, 1, 19),
                d(2026, 1, 22),
                d(2026, 2, 2)
            ]
        );
        let rel = Recurrence {
            pattern: Pattern::RelativeMonthly {
                interval: 1,
                weekday: Weekday::Fri,
                index: WeekIndex::Last,
            },
            start: d(2026, 1, 1),
            end: RangeEnd::EndDate(d(2026, 3, 31)),
        };
        assert_eq!(
            occurrence_dates(&rel, d(2030, 1, 1), 1000),
            vec![d(2026, 1, 30), d(2026, 2, 27), d(2026, 3, 27)]
        );
        let abs = Recurrence {
            pattern: Pattern::AbsoluteMonthly {
                interval: 1,
                day: 31,
            },
            start: d(2026, 1, 31),
            end: RangeEnd::Count(3),
        };
        assert_eq!(
            occurrence_dates(&abs, d(2030, 1, 1), 1000),
            vec![d(2026, 1, 31), d(2026, 2, 28), d(2026, 3, 31)]
        );
        let yearly = Recurrence {
            pattern: Pattern::RelativeYearly {
                month: 11,
                weekday: Weekday::Thu,
                index: WeekIndex::Fourth,
            },
            start: d(2026, 1, 1),
            end: RangeEnd::NoEnd,
        };
        assert_eq!(
            occurrence_dates(&yearly, d(2027, 12, 31), 1000),
            vec![d(2026, 11, 26), d(2027, 11, 25)]
        );
        let ay = Recurrence {
            pattern: Pattern::AbsoluteYearly { month: 2, day: 29 },
            start: d(2024, 2, 29),
            end: RangeEnd::Count(2),
        };
        assert_eq!(
            occurrence_dates(&ay, d(2030, 1, 1), 1000),
            vec![d(2024, 2, 29), d(2025, 2, 28)]
        );
        // Hostile intervals neither overflow nor loop.
        for pattern in [
            Pattern::Daily { interval: u32::MAX },
            Pattern::Weekly {
                interval: u32::MAX,
                days: vec![Weekday::Mon, Weekday::Sun],
                first_day: None,
            },
            Pattern::AbsoluteMonthly {
                interval: u32::MAX,
                day: 99,
            },
            Pattern::RelativeMonthly {
                interval: u32::MAX,
                weekday: Weekday::Mon,
                index: WeekIndex::Last,
            },
            Pattern::AbsoluteYearly { month: 99, day: 99 },
        ] {
            let r = Recurrence {
                pattern,
                start: d(2026, 1, 5),
                end: RangeEnd::Count(u32::MAX),
            };
            assert!(occurrence_dates(&r, NaiveDate::MAX, usize::MAX).len() <= 20_000);
        }
        let daily = Recurrence {
            pattern: Pattern::Daily { interval: 3 },
            start: d(2026, 1, 1),
            end: RangeEnd::NoEnd,
        };
        assert_eq!(occurrence_dates(&daily, d(2026, 1, 7), 1000).len(), 3);
    }
}
