//! EWS items as Rust values, with their XML in schema order (types.xsd enforces the order of
//! every element). Shared by the client and the emulator so that both speak exactly the same
//! subset; what is written here is validated against messages.xsd in the tests.
//! The serde derives are for `tether sandbox`, which saves its emulated mailboxes to disk.

use super::xml::{Element, NS_T, Writer, parse_bool};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The PublicStrings extended property that carries the Salesforce id on items tether creates.
pub const PROP_SALESFORCE_ID: &str = "tether.SalesforceId";
/// The PublicStrings extended property on a rep's Salesforce_Sync folder that names the org
/// and the tether state syncing the mailbox (`engine::connector::MailboxMarker`).
pub const PROP_SYNCED_BY: &str = "tether.SyncedBy";
/// The PublicStrings extended property that marks an event a rep related to Salesforce in
/// the Outlook integration (see `CalendarEvent::is_outlook_related`).
pub const PROP_OUTLOOK_RELATED: &str = "tether.RelatedToSalesforce";
/// The Outlook category the Outlook integration convention uses for related events.
pub const CATEGORY_SALESFORCE: &str = "Salesforce";

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

    pub(crate) fn write(&self, w: &mut Writer, name: &str) {
        match &self.change_key {
            Some(ck) => w.empty(name, &[("Id", &self.id), ("ChangeKey", ck)]),
            None => w.empty(name, &[("Id", &self.id)]),
        };
    }

    pub(crate) fn parse(el: &Element) -> Option<ItemId> {
        Some(ItemId {
            id: el.attr("Id")?.to_string(),
            change_key: el.attr("ChangeKey").map(str::to_string),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    pub id: ItemId,
    /// The folder it is in, when the answer says (GetFolder and FindFolder ask for it).
    pub parent: Option<ItemId>,
    pub display_name: String,
    pub folder_class: Option<String>,
    /// The folder's [`PROP_SYNCED_BY`] (GetFolder and FindFolder ask for it).
    pub synced_by: Option<String>,
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
    pub fn part(&self, name: &str) -> Option<&str> {
        match name {
            "Street" => self.street.as_deref(),
            "City" => self.city.as_deref(),
            "State" => self.state.as_deref(),
            "CountryOrRegion" => self.country.as_deref(),
            "PostalCode" => self.postal_code.as_deref(),
            _ => None,
        }
    }

    pub fn set_part(&mut self, name: &str, value: Option<String>) {
        match name {
            "Street" => self.street = value,
            "City" => self.city = value,
            "State" => self.state = value,
            "CountryOrRegion" => self.country = value,
            "PostalCode" => self.postal_code = value,
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        ADDRESS_PARTS.iter().all(|p| self.part(p).is_none())
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

/// The contact properties tether maps. `notes` is the item Body (what Outlook shows as notes).
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
    pub last_modified: Option<DateTime<Utc>>,
}

impl Contact {
    pub fn salesforce_id(&self) -> Option<&str> {
        self.extended.get(PROP_SALESFORCE_ID).map(String::as_str)
    }

    /// Marks the contact as tether's copy of a Salesforce record (set before CreateItem).
    pub fn set_salesforce_id(&mut self, id: impl Into<String>) {
        self.extended
            .insert(PROP_SALESFORCE_ID.to_string(), id.into());
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxAddress {
    pub name: Option<String>,
    /// The SMTP address; empty when the server gave none (an Exchange-internal address of
    /// RoutingType EX, `/O=EXCHANGELABS/…`, that the Mailbox does not resolve): unresolved.
    pub email: String,
}

impl MailboxAddress {
    /// The SMTP address, unless unresolved.
    pub fn smtp(&self) -> Option<&str> {
        let e = self.email.trim();
        (!e.is_empty()).then_some(e)
    }
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
// Recurrence patterns are the canonical model's (RRULE text ↔ pattern).
pub use crate::model::rrule::{Pattern, RangeEnd, Recurrence, WeekIndex};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurrenceInfo {
    pub item_id: ItemId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub original_start: DateTime<Utc>,
}

/// The calendar properties tether maps. Times are instants (UTC); `start_time_zone` is the
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

    pub fn salesforce_id(&self) -> Option<&str> {
        self.extended.get(PROP_SALESFORCE_ID).map(String::as_str)
    }

    /// Marks the event as tether's copy of a Salesforce event (set before CreateItem).
    pub fn set_salesforce_id(&mut self, id: impl Into<String>) {
        self.extended
            .insert(PROP_SALESFORCE_ID.to_string(), id.into());
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

    /// Related to Salesforce in the Outlook integration: tether recognises the
    /// `tether.RelatedToSalesforce` PublicStrings property, or the Outlook category
    /// "Salesforce" a rep (or an add-in) puts on the event.
    pub fn is_outlook_related(&self) -> bool {
        self.extended
            .get(PROP_OUTLOOK_RELATED)
            .is_some_and(|v| parse_bool(v).unwrap_or(!v.is_empty()))
            || self
                .categories
                .iter()
                .any(|c| c.eq_ignore_ascii_case(CATEGORY_SALESFORCE))
    }

    /// All-day dates (start inclusive, end exclusive) in the event's own zone; `None` for a
    /// timed event. Exchange stores an all-day event as local midnights, so without its zone
    /// (StartTimeZone) the day is unknown: an error saying why, never a guess.
    pub fn all_day_dates(&self) -> Result<Option<(NaiveDate, NaiveDate)>, String> {
        if !self.is_all_day {
            return Ok(None);
        }
        let zone = self.start_time_zone.as_deref().ok_or(
            "the answer does not say which time zone the all-day event is in (no StartTimeZone)",
        )?;
        let tz = windows_zone(zone)?;
        Ok(Some((
            self.start.with_timezone(&tz).date_naive(),
            self.end.with_timezone(&tz).date_naive(),
        )))
    }
}

/// The zone of a Windows zone id; one the table does not know is an error naming it.
pub fn windows_zone(id: &str) -> Result<chrono_tz::Tz, String> {
    super::tz::windows_tz(id).ok_or_else(|| {
        format!("the Windows time zone \"{id}\" is not one tether knows (CLDR windowsZones)")
    })
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
// Formatting helpers

pub fn fmt_datetime(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // xs:dateTime without an offset (EWS with no TimeZoneContext): read as UTC.
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| Utc.from_utc_datetime(&n))
}

/// Birthdays are dates stored as instants: Outlook writes local midnight (or noon), so
/// the instant read back may sit up to 12 hours either side of 00:00Z. The nearest
/// midnight gives the date back.
fn parse_birthday(s: &str) -> Option<NaiveDate> {
    match parse_datetime(s) {
        Some(t) => t
            .checked_add_signed(chrono::Duration::hours(12))
            .map(|t| t.date_naive()),
        None => parse_date(s),
    }
}

/// xs:date, possibly with an offset ("2026-01-05Z", "2026-01-05-08:00").
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

pub fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

pub fn parse_weekday(s: &str) -> Option<Weekday> {
    s.trim().parse().ok()
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

pub fn month_name(m: u32) -> &'static str {
    MONTHS[(m.clamp(1, 12) - 1) as usize]
}

pub fn parse_month(s: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == s.trim())
        .map(|i| i as u32 + 1)
}

// ---------------------------------------------------------------------------------------
// Writing

/// Whether read-only properties (LastModifiedTime, ItemType, Organizer, …) are written: yes
/// in server responses, never in requests (Exchange rejects them in CreateItem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Request,
    Response,
}

pub fn write_extended(w: &mut Writer, name: &str, value: &str) {
    w.open("t:ExtendedProperty", &[]);
    write_extended_uri(w, name);
    w.leaf("t:Value", value);
    w.close();
}

pub fn write_extended_uri(w: &mut Writer, name: &str) {
    w.empty(
        "t:ExtendedFieldURI",
        &[
            ("DistinguishedPropertySetId", "PublicStrings"),
            ("PropertyName", name),
            ("PropertyType", "String"),
        ],
    );
}

fn write_body(w: &mut Writer, body: Option<&str>) {
    if let Some(b) = body {
        w.leaf_attrs("t:Body", &[("BodyType", "Text")], b);
    }
}

fn write_categories(w: &mut Writer, cats: &[String]) {
    if !cats.is_empty() {
        w.open("t:Categories", &[]);
        for c in cats {
            w.leaf("t:String", c);
        }
        w.close();
    }
}

/// The whole `t:Contact` element (item part first, then contact part).
pub fn write_contact(w: &mut Writer, c: &Contact, mode: Mode) {
    w.open("t:Contact", &[]);
    if mode == Mode::Response
        && let Some(id) = &c.item_id
    {
        id.write(w, "t:ItemId");
    }
    if mode == Mode::Response {
        w.leaf("t:ItemClass", "IPM.Contact");
    }
    write_body(w, c.notes.as_deref());
    write_categories(w, &c.categories);
    for (k, v) in &c.extended {
        write_extended(w, k, v);
    }
    if mode == Mode::Response
        && let Some(t) = &c.last_modified
    {
        w.leaf("t:LastModifiedTime", &fmt_datetime(t));
    }
    write_contact_part(w, c, None);
    w.close();
}

/// Writes the contact-specific part. With `only`, just that one field (by FieldURI or the
/// indexed `uri/key`), for SetItemField.
fn write_contact_part(w: &mut Writer, c: &Contact, only: Option<&str>) {
    let want = |f: &str| only.is_none_or(|o| o == f);
    if want("contacts:FileAs") {
        w.opt_leaf("t:FileAs", c.file_as.as_deref());
    }
    if want("contacts:DisplayName") {
        w.opt_leaf("t:DisplayName", c.display_name.as_deref());
    }
    if want("contacts:GivenName") {
        w.opt_leaf("t:GivenName", c.given_name.as_deref());
    }
    if want("contacts:MiddleName") {
        w.opt_leaf("t:MiddleName", c.middle_name.as_deref());
    }
    if want("contacts:Nickname") {
        w.opt_leaf("t:Nickname", c.nickname.as_deref());
    }
    if want("contacts:CompanyName") {
        w.opt_leaf("t:CompanyName", c.company_name.as_deref());
    }
    let emails: Vec<(&str, &str)> = EMAIL_KEYS
        .iter()
        .zip(c.emails.iter())
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .filter(|(k, _)| only.is_none_or(|o| o == format!("contacts:EmailAddress/{k}")))
        .collect();
    if !emails.is_empty() {
        w.open("t:EmailAddresses", &[]);
        for (k, v) in emails {
            w.leaf_attrs("t:Entry", &[("Key", k)], v);
        }
        w.close();
    }
    let addrs: Vec<(&String, &PhysicalAddress)> = c
        .addresses
        .iter()
        .filter(|(_, a)| !a.is_empty())
        .filter(|(k, _)| {
            only.is_none_or(|o| {
                o.strip_prefix("contacts:PhysicalAddress:")
                    .and_then(|r| r.split_once('/'))
                    .is_some_and(|(_, key)| key == k.as_str())
            })
        })
        .collect();
    if !addrs.is_empty() {
        w.open("t:PhysicalAddresses", &[]);
        for (k, a) in addrs {
            w.open("t:Entry", &[("Key", k)]);
            for part in ADDRESS_PARTS {
                let wanted = only.is_none_or(|o| {
                    o.strip_prefix("contacts:PhysicalAddress:")
                        .and_then(|r| r.split_once('/'))
                        .is_some_and(|(p, _)| p == *part)
                });
                if wanted {
                    w.opt_leaf(&format!("t:{part}"), a.part(part));
                }
            }
            w.close();
        }
        w.close();
    }
    let phones: Vec<(&String, &String)> = c
        .phones
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o == format!("contacts:PhoneNumber/{k}")))
        .collect();
    if !phones.is_empty() {
        w.open("t:PhoneNumbers", &[]);
        for (k, v) in phones {
            w.leaf_attrs("t:Entry", &[("Key", k)], v);
        }
        w.close();
    }
    if want("contacts:AssistantName") {
        w.opt_leaf("t:AssistantName", c.assistant_name.as_deref());
    }
    if want("contacts:Birthday")
        && let Some(b) = c.birthday
    {
        w.leaf("t:Birthday", &format!("{}T00:00:00Z", b.format("%Y-%m-%d")));
    }
    if want("contacts:Department") {
        w.opt_leaf("t:Department", c.department.as_deref());
    }
    if want("contacts:JobTitle") {
        w.opt_leaf("t:JobTitle", c.job_title.as_deref());
    }
    if want("contacts:Surname") {
        w.opt_leaf("t:Surname", c.surname.as_deref());
    }
}

/// A `t:Contact` holding a single field, as SetItemField needs.
pub fn write_contact_field(w: &mut Writer, c: &Contact, field: &str) {
    w.open("t:Contact", &[]);
    match field {
        "item:Body" => write_body(w, c.notes.as_deref()),
        "item:Categories" => write_categories(w, &c.categories),
        _ => write_contact_part(w, c, Some(field)),
    }
    w.close();
}

fn write_mailbox(w: &mut Writer, m: &MailboxAddress) {
    w.open("t:Mailbox", &[]);
    w.opt_leaf("t:Name", m.name.as_deref());
    // EmailAddress is a non-empty string: an unresolved mailbox goes by its name only.
    w.opt_leaf("t:EmailAddress", m.smtp());
    w.close();
}

fn write_attendees(w: &mut Writer, name: &str, list: &[Attendee], mode: Mode) {
    if list.is_empty() {
        return;
    }
    w.open(name, &[]);
    for a in list {
        w.open("t:Attendee", &[]);
        write_mailbox(w, &a.mailbox);
        if mode == Mode::Response
            && let Some(r) = &a.response
        {
            w.leaf("t:ResponseType", r);
        }
        w.close();
    }
    w.close();
}

pub fn write_recurrence(w: &mut Writer, r: &Recurrence) {
    w.open("t:Recurrence", &[]);
    match &r.pattern {
        Pattern::Daily { interval } => {
            w.open("t:DailyRecurrence", &[]);
            w.leaf("t:Interval", &interval.to_string());
        }
        Pattern::Weekly {
            interval,
            days,
            first_day,
        } => {
            w.open("t:WeeklyRecurrence", &[]);
            w.leaf("t:Interval", &interval.to_string());
            let d: Vec<&str> = days.iter().map(|d| weekday_name(*d)).collect();
            w.leaf("t:DaysOfWeek", &d.join(" "));
            if let Some(f) = first_day {
                w.leaf("t:FirstDayOfWeek", weekday_name(*f));
            }
        }
        Pattern::AbsoluteMonthly { interval, day } => {
            w.open("t:AbsoluteMonthlyRecurrence", &[]);
            w.leaf("t:Interval", &interval.to_string());
            w.leaf("t:DayOfMonth", &day.to_string());
        }
        Pattern::RelativeMonthly {
            interval,
            weekday,
            index,
        } => {
            w.open("t:RelativeMonthlyRecurrence", &[]);
            w.leaf("t:Interval", &interval.to_string());
            w.leaf("t:DaysOfWeek", weekday_name(*weekday));
            w.leaf("t:DayOfWeekIndex", index.as_str());
        }
        Pattern::AbsoluteYearly { month, day } => {
            w.open("t:AbsoluteYearlyRecurrence", &[]);
            w.leaf("t:DayOfMonth", &day.to_string());
            w.leaf("t:Month", month_name(*month));
        }
        Pattern::RelativeYearly {
            month,
            weekday,
            index,
        } => {
            w.open("t:RelativeYearlyRecurrence", &[]);
            w.leaf("t:DaysOfWeek", weekday_name(*weekday));
            w.leaf("t:DayOfWeekIndex", index.as_str());
            w.leaf("t:Month", month_name(*month));
        }
    }
    w.close();
    let start = r.start.format("%Y-%m-%d").to_string();
    match &r.end {
        RangeEnd::NoEnd => {
            w.open("t:NoEndRecurrence", &[]);
            w.leaf("t:StartDate", &start);
        }
        RangeEnd::EndDate(d) => {
            w.open("t:EndDateRecurrence", &[]);
            w.leaf("t:StartDate", &start);
            w.leaf("t:EndDate", &d.format("%Y-%m-%d").to_string());
        }
        RangeEnd::Count(n) => {
            w.open("t:NumberedRecurrence", &[]);
            w.leaf("t:StartDate", &start);
            w.leaf("t:NumberOfOccurrences", &n.to_string());
        }
    }
    w.close();
    w.close();
}

/// The whole `t:CalendarItem` element.
pub fn write_event(w: &mut Writer, e: &CalendarEvent, mode: Mode) {
    w.open("t:CalendarItem", &[]);
    write_event_fields(w, e, mode, None);
    w.close();
}

/// A `t:CalendarItem` holding a single field, as SetItemField needs.
pub fn write_event_field(w: &mut Writer, e: &CalendarEvent, field: &str) {
    w.open("t:CalendarItem", &[]);
    write_event_fields(w, e, Mode::Request, Some(field));
    w.close();
}

fn write_event_fields(w: &mut Writer, e: &CalendarEvent, mode: Mode, only: Option<&str>) {
    let want = |f: &str| only.is_none_or(|o| o == f);
    let resp = mode == Mode::Response;
    if resp && let Some(id) = &e.item_id {
        id.write(w, "t:ItemId");
    }
    if resp {
        w.leaf("t:ItemClass", "IPM.Appointment");
    }
    if want("item:Subject") {
        w.opt_leaf("t:Subject", e.subject.as_deref());
    }
    if want("item:Sensitivity")
        && let Some(s) = e.sensitivity
    {
        w.leaf("t:Sensitivity", s.as_str());
    }
    if want("item:Body") {
        write_body(w, e.body.as_deref());
    }
    if want("item:Categories") {
        write_categories(w, &e.categories);
    }
    if only.is_none() {
        for (k, v) in &e.extended {
            write_extended(w, k, v);
        }
    }
    if resp && let Some(t) = &e.last_modified {
        w.leaf("t:LastModifiedTime", &fmt_datetime(t));
    }
    if resp && let Some(u) = &e.uid {
        w.leaf("t:UID", u);
    }
    if want("calendar:Start") {
        w.leaf("t:Start", &fmt_datetime(&e.start));
    }
    if want("calendar:End") {
        w.leaf("t:End", &fmt_datetime(&e.end));
    }
    if resp && let Some(o) = &e.original_start {
        w.leaf("t:OriginalStart", &fmt_datetime(o));
    }
    if want("calendar:IsAllDayEvent") {
        w.leaf(
            "t:IsAllDayEvent",
            if e.is_all_day { "true" } else { "false" },
        );
    }
    if want("calendar:LegacyFreeBusyStatus")
        && let Some(f) = e.free_busy
    {
        w.leaf("t:LegacyFreeBusyStatus", f.as_str());
    }
    if want("calendar:Location") {
        w.opt_leaf("t:Location", e.location.as_deref());
    }
    if resp {
        w.leaf(
            "t:IsRecurring",
            if matches!(
                e.item_type,
                Some(CalendarItemType::Occurrence | CalendarItemType::Exception)
            ) {
                "true"
            } else {
                "false"
            },
        );
        if let Some(t) = e.item_type {
            w.leaf("t:CalendarItemType", t.as_str());
        }
        if let Some(o) = &e.organizer {
            w.open("t:Organizer", &[]);
            write_mailbox(w, o);
            w.close();
        }
    }
    if want("calendar:RequiredAttendees") {
        write_attendees(w, "t:RequiredAttendees", &e.required_attendees, mode);
    }
    if want("calendar:OptionalAttendees") {
        write_attendees(w, "t:OptionalAttendees", &e.optional_attendees, mode);
    }
    if want("calendar:Recurrence")
        && let Some(r) = &e.recurrence
    {
        write_recurrence(w, r);
    }
    if resp && !e.modified_occurrences.is_empty() {
        w.open("t:ModifiedOccurrences", &[]);
        for o in &e.modified_occurrences {
            w.open("t:Occurrence", &[]);
            o.item_id.write(w, "t:ItemId");
            w.leaf("t:Start", &fmt_datetime(&o.start));
            w.leaf("t:End", &fmt_datetime(&o.end));
            w.leaf("t:OriginalStart", &fmt_datetime(&o.original_start));
            w.close();
        }
        w.close();
    }
    if resp && !e.deleted_occurrences.is_empty() {
        w.open("t:DeletedOccurrences", &[]);
        for d in &e.deleted_occurrences {
            w.open("t:DeletedOccurrence", &[]);
            w.leaf("t:Start", &fmt_datetime(d));
            w.close();
        }
        w.close();
    }
    if want("calendar:StartTimeZone")
        && let Some(z) = &e.start_time_zone
    {
        w.empty("t:StartTimeZone", &[("Id", z)]);
    }
    if want("calendar:EndTimeZone")
        && let Some(z) = e.end_time_zone.as_ref().or(e.start_time_zone.as_ref())
    {
        w.empty("t:EndTimeZone", &[("Id", z)]);
    }
}

// ---------------------------------------------------------------------------------------
// Parsing (tolerant: unknown elements are ignored)

fn text(el: &Element, name: &str) -> Option<String> {
    el.child(NS_T, name).map(|c| c.text.clone())
}

pub(crate) fn parse_extended(el: &Element) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in el.children_named(NS_T, "ExtendedProperty") {
        let Some(uri) = p.child(NS_T, "ExtendedFieldURI") else {
            continue;
        };
        let (Some("PublicStrings"), Some(name)) = (
            uri.attr("DistinguishedPropertySetId"),
            uri.attr("PropertyName"),
        ) else {
            continue;
        };
        if let Some(v) = p.child_text(NS_T, "Value") {
            out.insert(name.to_string(), v.to_string());
        }
    }
    out
}

fn parse_categories(el: &Element) -> Vec<String> {
    el.child(NS_T, "Categories")
        .map(|c| {
            c.children_named(NS_T, "String")
                .map(|s| s.text.clone())
                .collect()
        })
        .unwrap_or_default()
}

pub fn parse_contact(el: &Element) -> Contact {
    let mut c = Contact {
        item_id: el.child(NS_T, "ItemId").and_then(ItemId::parse),
        file_as: text(el, "FileAs"),
        display_name: text(el, "DisplayName"),
        given_name: text(el, "GivenName"),
        middle_name: text(el, "MiddleName"),
        nickname: text(el, "Nickname"),
        company_name: text(el, "CompanyName"),
        assistant_name: text(el, "AssistantName"),
        birthday: el.child_text(NS_T, "Birthday").and_then(parse_birthday),
        department: text(el, "Department"),
        job_title: text(el, "JobTitle"),
        surname: text(el, "Surname"),
        notes: text(el, "Body"),
        categories: parse_categories(el),
        extended: parse_extended(el),
        last_modified: el
            .child_text(NS_T, "LastModifiedTime")
            .and_then(parse_datetime),
        ..Contact::default()
    };
    if let Some(list) = el.child(NS_T, "EmailAddresses") {
        for e in list.children_named(NS_T, "Entry") {
            if let Some(i) = e
                .attr("Key")
                .and_then(|k| EMAIL_KEYS.iter().position(|x| *x == k))
            {
                c.emails[i] = Some(e.text.clone());
            }
        }
    }
    if let Some(list) = el.child(NS_T, "PhoneNumbers") {
        for e in list.children_named(NS_T, "Entry") {
            if let Some(k) = e.attr("Key") {
                c.phones.insert(k.to_string(), e.text.clone());
            }
        }
    }
    if let Some(list) = el.child(NS_T, "PhysicalAddresses") {
        for e in list.children_named(NS_T, "Entry") {
            if let Some(k) = e.attr("Key") {
                let mut a = PhysicalAddress::default();
                for part in ADDRESS_PARTS {
                    a.set_part(part, text(e, part));
                }
                c.addresses.insert(k.to_string(), a);
            }
        }
    }
    c
}

/// An SMTP address, as opposed to an X.500 one (`/O=EXCHANGELABS/OU=…/CN=…`) or a display
/// name.
fn looks_like_smtp(s: &str) -> bool {
    let s = s.trim();
    !s.starts_with('/')
        && !s.contains(char::is_whitespace)
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

/// A Mailbox (organizer, attendee). Its EmailAddress is SMTP only with RoutingType SMTP (or
/// none given, as some servers write it); an EX address is an Exchange-internal X.500 name,
/// never an email: the SMTP address is then taken from the Mailbox's other fields when one
/// holds it, else the mailbox stays unresolved (empty `email`).
fn parse_mailbox(el: &Element) -> Option<MailboxAddress> {
    let m = el.child(NS_T, "Mailbox")?;
    let name = text(m, "Name");
    let address = m.child_text(NS_T, "EmailAddress").map(str::trim);
    let routing = m.child_text(NS_T, "RoutingType").map(str::trim);
    let smtp_routed = routing.is_none_or(|r| r.eq_ignore_ascii_case("SMTP"));
    if address.is_none() && name.is_none() {
        return None;
    }
    let email = address
        .filter(|a| smtp_routed && !a.is_empty() && !a.starts_with('/'))
        .or_else(|| {
            [m.child_text(NS_T, "OriginalDisplayName"), name.as_deref()]
                .into_iter()
                .flatten()
                .map(str::trim)
                .find(|s| looks_like_smtp(s))
        })
        .unwrap_or_default()
        .to_string();
    Some(MailboxAddress { name, email })
}

fn parse_attendees(el: &Element, name: &str) -> Vec<Attendee> {
    el.child(NS_T, name)
        .map(|list| {
            list.children_named(NS_T, "Attendee")
                .filter_map(|a| {
                    Some(Attendee {
                        mailbox: parse_mailbox(a)?,
                        response: text(a, "ResponseType"),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn num(el: &Element, name: &str) -> Option<u32> {
    el.child_text(NS_T, name)?.trim().parse().ok()
}

pub fn parse_recurrence(el: &Element) -> Option<Recurrence> {
    let mut pattern = None;
    let mut range = None;
    for c in &el.children {
        if c.ns != NS_T {
            continue;
        }
        let interval = || num(c, "Interval").filter(|i| *i >= 1);
        let weekday = || c.child_text(NS_T, "DaysOfWeek").and_then(parse_weekday);
        let index = || {
            c.child_text(NS_T, "DayOfWeekIndex")
                .and_then(WeekIndex::parse)
        };
        let month = || c.child_text(NS_T, "Month").and_then(parse_month);
        let p = match c.name.as_str() {
            "DailyRecurrence" => Some(Pattern::Daily {
                interval: interval()?,
            }),
            "WeeklyRecurrence" => Some(Pattern::Weekly {
                interval: interval()?,
                days: c
                    .child_text(NS_T, "DaysOfWeek")?
                    .split_whitespace()
                    .map(parse_weekday)
                    .collect::<Option<Vec<_>>>()?,
                first_day: c.child_text(NS_T, "FirstDayOfWeek").and_then(parse_weekday),
            }),
            "AbsoluteMonthlyRecurrence" => Some(Pattern::AbsoluteMonthly {
                interval: interval()?,
                day: num(c, "DayOfMonth")?,
            }),
            "RelativeMonthlyRecurrence" => Some(Pattern::RelativeMonthly {
                interval: interval()?,
                weekday: weekday()?,
                index: index()?,
            }),
            "AbsoluteYearlyRecurrence" => Some(Pattern::AbsoluteYearly {
                month: month()?,
                day: num(c, "DayOfMonth")?,
            }),
            "RelativeYearlyRecurrence" => Some(Pattern::RelativeYearly {
                month: month()?,
                weekday: weekday()?,
                index: index()?,
            }),
            _ => None,
        };
        if p.is_some() {
            pattern = p;
            continue;
        }
        let start = || c.child_text(NS_T, "StartDate").and_then(parse_date);
        let r = match c.name.as_str() {
            "NoEndRecurrence" => Some((start()?, RangeEnd::NoEnd)),
            "EndDateRecurrence" => Some((
                start()?,
                RangeEnd::EndDate(c.child_text(NS_T, "EndDate").and_then(parse_date)?),
            )),
            "NumberedRecurrence" => {
                Some((start()?, RangeEnd::Count(num(c, "NumberOfOccurrences")?)))
            }
            _ => None,
        };
        if r.is_some() {
            range = r;
        }
    }
    let (start, end) = range?;
    Some(Recurrence {
        pattern: pattern?,
        start,
        end,
    })
}

/// A calendar item; `None` when Start or End is missing (the shape did not ask for them).
pub fn parse_event(el: &Element) -> Option<CalendarEvent> {
    let start = el.child_text(NS_T, "Start").and_then(parse_datetime)?;
    let end = el.child_text(NS_T, "End").and_then(parse_datetime)?;
    Some(parse_event_fields(el, start, end))
}

/// The fields present in a partial calendar item (SetItemField), Start/End defaulting to
/// the Unix epoch when absent.
pub fn parse_event_patch(el: &Element) -> CalendarEvent {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let start = el.child_text(NS_T, "Start").and_then(parse_datetime);
    let end = el.child_text(NS_T, "End").and_then(parse_datetime);
    parse_event_fields(el, start.unwrap_or(epoch), end.unwrap_or(epoch))
}

fn parse_event_fields(el: &Element, start: DateTime<Utc>, end: DateTime<Utc>) -> CalendarEvent {
    let mut e = CalendarEvent::new(start, end);
    e.item_id = el.child(NS_T, "ItemId").and_then(ItemId::parse);
    e.subject = text(el, "Subject");
    e.sensitivity = el
        .child_text(NS_T, "Sensitivity")
        .and_then(Sensitivity::parse);
    e.body = text(el, "Body");
    e.categories = parse_categories(el);
    e.extended = parse_extended(el);
    e.last_modified = el
        .child_text(NS_T, "LastModifiedTime")
        .and_then(parse_datetime);
    e.uid = text(el, "UID");
    e.original_start = el
        .child_text(NS_T, "OriginalStart")
        .and_then(parse_datetime);
    e.is_all_day = el
        .child_text(NS_T, "IsAllDayEvent")
        .and_then(parse_bool)
        .unwrap_or(false);
    e.free_busy = el
        .child_text(NS_T, "LegacyFreeBusyStatus")
        .and_then(FreeBusy::parse);
    e.location = text(el, "Location");
    e.item_type = el
        .child_text(NS_T, "CalendarItemType")
        .and_then(CalendarItemType::parse);
    e.organizer = el.child(NS_T, "Organizer").and_then(parse_mailbox);
    e.required_attendees = parse_attendees(el, "RequiredAttendees");
    e.optional_attendees = parse_attendees(el, "OptionalAttendees");
    e.recurrence = el.child(NS_T, "Recurrence").and_then(parse_recurrence);
    if let Some(list) = el.child(NS_T, "ModifiedOccurrences") {
        e.modified_occurrences = list
            .children_named(NS_T, "Occurrence")
            .filter_map(|o| {
                Some(OccurrenceInfo {
                    item_id: o.child(NS_T, "ItemId").and_then(ItemId::parse)?,
                    start: o.child_text(NS_T, "Start").and_then(parse_datetime)?,
                    end: o.child_text(NS_T, "End").and_then(parse_datetime)?,
                    original_start: o
                        .child_text(NS_T, "OriginalStart")
                        .and_then(parse_datetime)?,
                })
            })
            .collect();
    }
    if let Some(list) = el.child(NS_T, "DeletedOccurrences") {
        e.deleted_occurrences = list
            .children_named(NS_T, "DeletedOccurrence")
            .filter_map(|o| o.child_text(NS_T, "Start").and_then(parse_datetime))
            .collect();
    }
    e.start_time_zone = el
        .child(NS_T, "StartTimeZone")
        .and_then(|z| z.attr("Id"))
        .map(str::to_string);
    e.end_time_zone = el
        .child(NS_T, "EndTimeZone")
        .and_then(|z| z.attr("Id"))
        .map(str::to_string);
    e
}

/// Any item element inside `m:Items` / `t:Create` etc.
pub fn parse_item(el: &Element) -> Item {
    if el.ns == NS_T && el.name == "Contact" {
        return Item::Contact(Box::new(parse_contact(el)));
    }
    if el.ns == NS_T
        && el.name == "CalendarItem"
        && let Some(e) = parse_event(el)
    {
        return Item::Event(Box::new(e));
    }
    Item::Other(el.child(NS_T, "ItemId").and_then(ItemId::parse))
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
    fn birthdays_survive_time_zone_shifts() {
        for s in [
            "1815-12-10T00:00:00Z",
            "1815-12-09T23:00:00Z",
            "1815-12-10T08:00:00Z",
            "1815-12-10T11:00:00Z",
            "1815-12-09T13:00:00Z",
            "1815-12-10",
        ] {
            assert_eq!(parse_birthday(s), Some(d(1815, 12, 10)), "{s}");
        }
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
