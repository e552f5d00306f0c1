//! Items in and out of EWS messages, written from types.xsd.
//!
//! Reading walks an item element's children against the schema's sequence for its type
//! (ItemType's members, then ContactItemType's or CalendarItemType's): a member the schema
//! does not name, or one out of order, is a schema violation, as Exchange's validating
//! reader finds it; a member the schema names but this emulator does not store is refused
//! too (accepting it with NoError and dropping it would hide a client's mistake).
//!
//! Writing collects an item's members in any order and emits them sorted by their place
//! in the same sequence, so an answer is in schema order by construction.

use super::emit::Out;
use super::model::{
    Attendee, CalendarEvent, CalendarItemType, Contact, FreeBusy, Item, ItemId, MailboxAddress,
    Pattern, PhysicalAddress, RangeEnd, Recurrence, Sensitivity, WeekIndex, parse_weekday,
    weekday_name,
};
use super::xml::{Element, NS_T};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// types.xsd, complexType ItemType: its sequence, in order.
pub(crate) const ITEM_TYPE: &[&str] = &[
    "MimeContent",
    "ItemId",
    "ParentFolderId",
    "ItemClass",
    "Subject",
    "Sensitivity",
    "Body",
    "Attachments",
    "DateTimeReceived",
    "Size",
    "Categories",
    "Importance",
    "InReplyTo",
    "IsSubmitted",
    "IsDraft",
    "IsFromMe",
    "IsResend",
    "IsUnmodified",
    "InternetMessageHeaders",
    "DateTimeSent",
    "DateTimeCreated",
    "ResponseObjects",
    "ReminderDueBy",
    "ReminderIsSet",
    "ReminderNextTime",
    "ReminderMinutesBeforeStart",
    "DisplayCc",
    "DisplayTo",
    "DisplayBcc",
    "HasAttachments",
    "ExtendedProperty",
    "Culture",
    "EffectiveRights",
    "LastModifiedName",
    "LastModifiedTime",
    "IsAssociated",
    "WebClientReadFormQueryString",
    "WebClientEditFormQueryString",
    "ConversationId",
    "UniqueBody",
    "Flag",
    "StoreEntryId",
    "InstanceKey",
    "NormalizedBody",
    "EntityExtractionResult",
    "PolicyTag",
    "ArchiveTag",
    "RetentionDate",
    "Preview",
    "RightsManagementLicenseData",
    "PredictedActionReasons",
    "IsClutter",
    "BlockStatus",
    "HasBlockedImages",
    "TextBody",
    "IconIndex",
    "SearchKey",
    "SortKey",
    "Hashtags",
    "Mentions",
    "MentionedMe",
    "MentionsPreview",
    "MentionsEx",
    "AppliedHashtags",
    "AppliedHashtagsPreview",
    "Likes",
    "LikesPreview",
    "PendingSocialActivityTagIds",
    "AtAllMention",
    "CanDelete",
    "InferenceClassification",
];

/// types.xsd, complexType ContactItemType: the sequence of its extension of ItemType.
pub(crate) const CONTACT_ITEM_TYPE: &[&str] = &[
    "FileAs",
    "FileAsMapping",
    "DisplayName",
    "GivenName",
    "Initials",
    "MiddleName",
    "Nickname",
    "CompleteName",
    "CompanyName",
    "EmailAddresses",
    "AbchEmailAddresses",
    "PhysicalAddresses",
    "PhoneNumbers",
    "AssistantName",
    "Birthday",
    "BusinessHomePage",
    "Children",
    "Companies",
    "ContactSource",
    "Department",
    "Generation",
    "ImAddresses",
    "JobTitle",
    "Manager",
    "Mileage",
    "OfficeLocation",
    "PostalAddressIndex",
    "Profession",
    "SpouseName",
    "Surname",
    "WeddingAnniversary",
    "HasPicture",
    "PhoneticFullName",
    "PhoneticFirstName",
    "PhoneticLastName",
    "Alias",
    "Notes",
    "Photo",
    "UserSMIMECertificate",
    "MSExchangeCertificate",
    "DirectoryId",
    "ManagerMailbox",
    "DirectReports",
    "AccountName",
    "IsAutoUpdateDisabled",
    "IsMessengerEnabled",
    "Comment",
    "ContactShortId",
    "ContactType",
    "Gender",
    "IsHidden",
    "ObjectId",
    "PassportId",
    "IsPrivate",
    "SourceId",
    "TrustLevel",
    "CreatedBy",
    "Urls",
    "Cid",
    "SkypeAuthCertificate",
    "SkypeContext",
    "SkypeId",
    "SkypeRelationship",
    "YomiNickname",
    "XboxLiveTag",
    "InviteFree",
    "HidePresenceAndProfile",
    "IsPendingOutbound",
    "SupportGroupFeeds",
    "UserTileHash",
    "UnifiedInbox",
    "Mris",
    "Wlid",
    "AbchContactId",
    "NotInBirthdayCalendar",
    "ShellContactType",
    "ImMri",
    "PresenceTrustLevel",
    "OtherMri",
    "ProfileLastChanged",
    "MobileIMEnabled",
    "PartnerNetworkProfilePhotoUrl",
    "PartnerNetworkThumbnailPhotoUrl",
    "PersonId",
    "ConversationGuid",
];

/// types.xsd, complexType CalendarItemType: the sequence of its extension of ItemType.
pub(crate) const CALENDAR_ITEM_TYPE: &[&str] = &[
    "UID",
    "RecurrenceId",
    "DateTimeStamp",
    "Start",
    "End",
    "OriginalStart",
    "IsAllDayEvent",
    "LegacyFreeBusyStatus",
    "Location",
    "When",
    "IsMeeting",
    "IsCancelled",
    "IsRecurring",
    "MeetingRequestWasSent",
    "IsResponseRequested",
    "CalendarItemType",
    "MyResponseType",
    "Organizer",
    "RequiredAttendees",
    "OptionalAttendees",
    "Resources",
    "InboxReminders",
    "ConflictingMeetingCount",
    "AdjacentMeetingCount",
    "ConflictingMeetings",
    "AdjacentMeetings",
    "Duration",
    "TimeZone",
    "AppointmentReplyTime",
    "AppointmentSequenceNumber",
    "AppointmentState",
    "Recurrence",
    "FirstOccurrence",
    "LastOccurrence",
    "ModifiedOccurrences",
    "DeletedOccurrences",
    "MeetingTimeZone",
    "StartTimeZone",
    "EndTimeZone",
    "ConferenceType",
    "AllowNewTimeProposal",
    "IsOnlineMeeting",
    "MeetingWorkspaceUrl",
    "NetShowUrl",
    "EnhancedLocation",
    "StartWallClock",
    "EndWallClock",
    "StartTimeZoneId",
    "EndTimeZoneId",
    "IntendedFreeBusyStatus",
    "JoinOnlineMeetingUrl",
    "OnlineMeetingSettings",
    "IsOrganizer",
    "CalendarActivityData",
];

/// types.xsd's key enumerations of a contact's dictionaries, as the schema lists them.
const EMAIL_ADDRESS_KEY_TYPE: &str = "EmailAddress1 EmailAddress2 EmailAddress3";
const PHYSICAL_ADDRESS_KEY_TYPE: &str = "Home Business Other";
const PHONE_NUMBER_KEY_TYPE: &str = "AssistantPhone BusinessFax BusinessPhone BusinessPhone2 \
    Callback CarPhone CompanyMainPhone HomeFax HomePhone HomePhone2 Isdn MobilePhone OtherFax \
    OtherTelephone Pager PrimaryPhone RadioPhone Telex TtyTddPhone BusinessMobile IPPhone Mms Msn";

/// PhysicalAddressDictionaryEntryType's sequence.
pub const ADDRESS_PARTS: [&str; 5] = ["Street", "City", "State", "CountryOrRegion", "PostalCode"];

/// The slot of an EmailAddressKeyType value in `Contact::emails`.
pub fn email_slot(key: &str) -> Option<usize> {
    EMAIL_ADDRESS_KEY_TYPE.split(' ').position(|k| k == key)
}

pub fn is_phone_key(key: &str) -> bool {
    PHONE_NUMBER_KEY_TYPE.split_whitespace().any(|k| k == key)
}

pub fn is_address_key(key: &str) -> bool {
    PHYSICAL_ADDRESS_KEY_TYPE.split(' ').any(|k| k == key)
}

/// The two item types the emulator stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Contact,
    Calendar,
}

impl Kind {
    fn own_members(self) -> &'static [&'static str] {
        match self {
            Kind::Contact => CONTACT_ITEM_TYPE,
            Kind::Calendar => CALENDAR_ITEM_TYPE,
        }
    }

    /// A member's place in the type's whole sequence (ItemType's first).
    fn position(self, member: &str) -> Option<usize> {
        ITEM_TYPE
            .iter()
            .chain(self.own_members())
            .position(|m| *m == member)
    }
}

/// Why a request's item cannot be taken: the EWS response code and its message.
pub type Refusal = (String, String);

fn schema_violation(why: String) -> Refusal {
    ("ErrorSchemaValidation".to_string(), why)
}

fn unstored(member: &str) -> Refusal {
    (
        "ErrorInvalidPropertySet".to_string(),
        format!(
            "This server does not store the property {member}; it refuses it rather than drop it."
        ),
    )
}

/// The children of an item element as the schema allows them: each a types-namespace
/// member of the type's sequence, none before one that precedes it in the sequence
/// (ExtendedProperty is the one member that repeats).
fn members(el: &Element, kind: Kind) -> Result<Vec<(&str, &Element)>, Refusal> {
    let mut last: Option<usize> = None;
    let mut out = Vec::with_capacity(el.children.len());
    for child in &el.children {
        let at = Some(child)
            .filter(|c| c.ns == NS_T)
            .and_then(|c| kind.position(&c.name))
            .ok_or_else(|| {
                schema_violation(format!(
                    "The element {} is not allowed in {} (types.xsd).",
                    child.name, el.name
                ))
            })?;
        let repeats = last == Some(at) && child.name == "ExtendedProperty";
        if last.is_some_and(|l| at < l || (at == l && !repeats)) {
            return Err(schema_violation(format!(
                "The element {} is out of the order types.xsd gives {}'s members.",
                child.name, el.name
            )));
        }
        last = Some(at);
        out.push((child.name.as_str(), child));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Lexical forms (xs:dateTime, xs:date, xs:int, the schema's enumerations)

/// xs:dateTime as EWS answers it: UTC, whole seconds, `Z`.
pub fn fmt_datetime(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// xs:dateTime: with an offset or `Z`, or without one (then UTC: request times without an
/// offset have been made UTC from the TimeZoneContext before an operation reads them).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Some(t.to_utc()),
        Err(_) => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|n| n.and_utc()),
    }
}

/// xs:boolean's four lexical forms.
fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    let yes = s == "true" || s == "1";
    (yes || s == "false" || s == "0").then_some(yes)
}

/// xs:date, an offset after the date ignored (`2026-01-05Z`, `2026-01-05-08:00`).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let day = s.trim().get(..10)?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

fn fmt_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Contact Birthday is an xs:dateTime standing for a date: clients write local midnight
/// (or noon), up to 12 hours either side of 00:00Z, so the date is that of the nearest
/// UTC midnight.
fn birthday_date(s: &str) -> Option<NaiveDate> {
    match parse_datetime(s) {
        Some(t) => Some((t + chrono::Duration::hours(12)).date_naive()),
        None => parse_date(s),
    }
}

/// MonthNamesType: the English month names, as chrono spells them.
fn month_name(month: u32) -> &'static str {
    let month = u8::try_from(month.clamp(1, 12)).unwrap_or(1);
    chrono::Month::try_from(month).map_or("January", |m| m.name())
}

fn month_number(name: &str) -> Option<u32> {
    let name = name.trim();
    (1..=12u32).find(|m| month_name(*m) == name)
}

/// Reads a typed value out of an element's text, refusing what the schema type does not allow.
fn typed<T>(el: &Element, what: &str, read: impl FnOnce(&str) -> Option<T>) -> Result<T, Refusal> {
    read(&el.text).ok_or_else(|| {
        schema_violation(format!(
            "The value '{}' of {} is not a valid {what}.",
            el.text.trim(),
            el.name
        ))
    })
}

fn int(el: &Element) -> Result<u32, Refusal> {
    typed(el, "number", |s| s.trim().parse().ok())
}

fn one_child<'a>(el: &'a Element, name: &str) -> Result<&'a Element, Refusal> {
    el.child(NS_T, name)
        .ok_or_else(|| schema_violation(format!("{} needs its {name} element.", el.name)))
}

// ---------------------------------------------------------------------------------------
// Reading items from requests

/// ItemIdType and its kin: the Id attribute (required) and ChangeKey.
pub fn read_item_id(el: &Element) -> Option<ItemId> {
    let id = el.attr("Id")?;
    Some(ItemId::new(id, el.attr("ChangeKey").map(str::to_string)))
}

/// An item of CreateItem's Items: a Contact or a CalendarItem the emulator stores, or any
/// other item type (kept as its id only). A CalendarItem without Start or End comes back as
/// `Item::Other`: the caller refuses it.
pub fn read_item(el: &Element) -> Result<Item, Refusal> {
    if el.ns == NS_T && el.name == "Contact" {
        return Ok(Item::Contact(Box::new(read_contact(el)?)));
    }
    if el.ns == NS_T && el.name == "CalendarItem" {
        let (event, timed) = read_event(el)?;
        return Ok(match timed {
            true => Item::Event(Box::new(event)),
            false => Item::Other(None),
        });
    }
    Ok(Item::Other(el.child(NS_T, "ItemId").and_then(read_item_id)))
}

/// The members of a Contact (a whole one, or the one member of a SetItemField).
pub fn read_contact(el: &Element) -> Result<Contact, Refusal> {
    let mut c = Contact::default();
    for (name, m) in members(el, Kind::Contact)? {
        let text = || Some(m.text.clone());
        match name {
            "Body" => c.notes = text(),
            "Categories" => c.categories = strings(m),
            "ExtendedProperty" => read_extended(m, &mut c.extended)?,
            "FileAs" => c.file_as = text(),
            "DisplayName" => c.display_name = text(),
            "GivenName" => c.given_name = text(),
            "MiddleName" => c.middle_name = text(),
            "Nickname" => c.nickname = text(),
            "CompanyName" => c.company_name = text(),
            "EmailAddresses" => {
                for (key, entry) in entries(m, EMAIL_ADDRESS_KEY_TYPE)? {
                    if let Some(slot) = email_slot(key) {
                        c.emails[slot] = Some(entry.text.clone());
                    }
                }
            }
            "PhysicalAddresses" => {
                for (key, entry) in entries(m, PHYSICAL_ADDRESS_KEY_TYPE)? {
                    c.addresses
                        .insert(key.to_string(), read_physical_address(entry)?);
                }
            }
            "PhoneNumbers" => {
                for (key, entry) in entries(m, PHONE_NUMBER_KEY_TYPE)? {
                    c.phones.insert(key.to_string(), entry.text.clone());
                }
            }
            "AssistantName" => c.assistant_name = text(),
            "Birthday" => c.birthday = Some(typed(m, "xs:dateTime", birthday_date)?),
            "Department" => c.department = text(),
            "JobTitle" => c.job_title = text(),
            "Surname" => c.surname = text(),
            other => return Err(unstored(other)),
        }
    }
    Ok(c)
}

/// The members of a CalendarItem, and whether it had both Start and End (a SetItemField
/// carries one member; Start and End absent are then the Unix epoch, never read).
pub fn read_event(el: &Element) -> Result<(CalendarEvent, bool), Refusal> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let mut e = CalendarEvent::new(epoch, epoch);
    let (mut has_start, mut has_end) = (false, false);
    let instant = |m: &Element| typed(m, "xs:dateTime", parse_datetime);
    for (name, m) in members(el, Kind::Calendar)? {
        let text = || Some(m.text.clone());
        match name {
            "Subject" => e.subject = text(),
            "Sensitivity" => {
                e.sensitivity = Some(typed(m, "SensitivityChoicesType", Sensitivity::parse)?)
            }
            "Body" => e.body = text(),
            "Categories" => e.categories = strings(m),
            "ExtendedProperty" => read_extended(m, &mut e.extended)?,
            "UID" => e.uid = text(),
            "Start" => {
                e.start = instant(m)?;
                has_start = true;
            }
            "End" => {
                e.end = instant(m)?;
                has_end = true;
            }
            "IsAllDayEvent" => e.is_all_day = typed(m, "xs:boolean", parse_bool)?,
            "LegacyFreeBusyStatus" => {
                e.free_busy = Some(typed(m, "LegacyFreeBusyType", FreeBusy::parse)?)
            }
            "Location" => e.location = text(),
            "RequiredAttendees" => e.required_attendees = read_attendees(m)?,
            "OptionalAttendees" => e.optional_attendees = read_attendees(m)?,
            "Recurrence" => e.recurrence = Some(read_recurrence(m)?),
            "StartTimeZone" => e.start_time_zone = Some(zone_id(m)?),
            "EndTimeZone" => e.end_time_zone = Some(zone_id(m)?),
            other => return Err(unstored(other)),
        }
    }
    Ok((e, has_start && has_end))
}

/// ArrayOfStringsType.
fn strings(el: &Element) -> Vec<String> {
    el.children_named(NS_T, "String")
        .map(|s| s.text.clone())
        .collect()
}

/// The ExtendedProperty children of a folder in a request (CreateFolder, UpdateFolder's
/// SetFolderField): PublicStrings string properties by name.
pub fn read_folder_extended(folder: &Element) -> Result<BTreeMap<String, String>, Refusal> {
    let mut out = BTreeMap::new();
    for p in folder.children_named(NS_T, "ExtendedProperty") {
        read_extended(p, &mut out)?;
    }
    Ok(out)
}

/// ExtendedPropertyType: the emulator keeps PublicStrings string properties by name.
fn read_extended(el: &Element, into: &mut BTreeMap<String, String>) -> Result<(), Refusal> {
    let uri = one_child(el, "ExtendedFieldURI")?;
    let value = one_child(el, "Value")?;
    match (
        uri.attr("DistinguishedPropertySetId"),
        uri.attr("PropertyName"),
    ) {
        (Some("PublicStrings"), Some(name)) => {
            into.insert(name.to_string(), value.text.clone());
            Ok(())
        }
        _ => Err(unstored(
            "ExtendedProperty (other than a PublicStrings name)",
        )),
    }
}

/// The Entry children of a dictionary (EmailAddresses, PhysicalAddresses, PhoneNumbers),
/// each with a Key of the schema's key enumeration `keys` (space-separated).
fn entries<'a>(el: &'a Element, keys: &str) -> Result<Vec<(&'a str, &'a Element)>, Refusal> {
    let allowed = |key: &str| keys.split_whitespace().any(|k| k == key);
    el.children
        .iter()
        .map(|entry| match entry.attr("Key") {
            Some(key) if entry.is(NS_T, "Entry") && allowed(key) => Ok((key, entry)),
            _ => Err(schema_violation(format!(
                "{} holds Entry elements keyed {}.",
                el.name,
                keys.split_whitespace().collect::<Vec<_>>().join(", ")
            ))),
        })
        .collect()
}

/// PhysicalAddressDictionaryEntryType: Street, City, State, CountryOrRegion, PostalCode.
fn read_physical_address(entry: &Element) -> Result<PhysicalAddress, Refusal> {
    let mut a = PhysicalAddress::default();
    for part in &entry.children {
        match a.slot_mut(&part.name).filter(|_| part.ns == NS_T) {
            Some(slot) => *slot = Some(part.text.clone()),
            None => {
                return Err(schema_violation(format!(
                    "The element {} is not allowed in a physical address.",
                    part.name
                )));
            }
        }
    }
    Ok(a)
}

/// TimeZoneDefinitionType as CalendarItem's StartTimeZone and EndTimeZone: its Id.
fn zone_id(el: &Element) -> Result<String, Refusal> {
    el.attr("Id")
        .map(str::to_string)
        .ok_or_else(|| schema_violation(format!("{} needs an Id attribute.", el.name)))
}

/// EmailAddressType inside a Mailbox: Name and EmailAddress.
fn read_mailbox(el: &Element) -> Result<MailboxAddress, Refusal> {
    let mailbox = one_child(el, "Mailbox")?;
    Ok(MailboxAddress {
        name: mailbox.child_text(NS_T, "Name").map(str::to_string),
        email: one_child(mailbox, "EmailAddress")?.text.clone(),
    })
}

/// NonEmptyArrayOfAttendeesType.
fn read_attendees(el: &Element) -> Result<Vec<Attendee>, Refusal> {
    el.children_named(NS_T, "Attendee")
        .map(|a| {
            Ok(Attendee {
                mailbox: read_mailbox(a)?,
                response: None,
            })
        })
        .collect()
}

/// RecurrenceType: one pattern, then one range.
pub fn read_recurrence(el: &Element) -> Result<Recurrence, Refusal> {
    let [pattern, range] = el.children.as_slice() else {
        return Err(schema_violation(
            "Recurrence holds one recurrence pattern and one recurrence range.".to_string(),
        ));
    };
    let field = |name: &str| one_child(pattern, name);
    // IntervalRecurrencePatternBaseType: a positive xs:int.
    let interval = || match int(field("Interval")?)? {
        0 => Err(schema_violation(
            "A recurrence Interval is at least 1.".to_string(),
        )),
        n => Ok(n),
    };
    let weekday = || typed(field("DaysOfWeek")?, "DayOfWeekType", parse_weekday);
    let index = || {
        typed(
            field("DayOfWeekIndex")?,
            "DayOfWeekIndexType",
            WeekIndex::parse,
        )
    };
    let month = || typed(field("Month")?, "MonthNamesType", month_number);
    let pattern = match pattern.name.as_str() {
        "DailyRecurrence" => Pattern::Daily {
            interval: interval()?,
        },
        "WeeklyRecurrence" => Pattern::Weekly {
            interval: interval()?,
            days: typed(field("DaysOfWeek")?, "DaysOfWeekType", |s| {
                s.split_whitespace().map(parse_weekday).collect()
            })?,
            first_day: match pattern.child(NS_T, "FirstDayOfWeek") {
                Some(f) => Some(typed(f, "DayOfWeekType", parse_weekday)?),
                None => None,
            },
        },
        "AbsoluteMonthlyRecurrence" => Pattern::AbsoluteMonthly {
            interval: interval()?,
            day: int(field("DayOfMonth")?)?,
        },
        "RelativeMonthlyRecurrence" => Pattern::RelativeMonthly {
            interval: interval()?,
            weekday: weekday()?,
            index: index()?,
        },
        "AbsoluteYearlyRecurrence" => Pattern::AbsoluteYearly {
            month: month()?,
            day: int(field("DayOfMonth")?)?,
        },
        "RelativeYearlyRecurrence" => Pattern::RelativeYearly {
            month: month()?,
            weekday: weekday()?,
            index: index()?,
        },
        other => {
            return Err(schema_violation(format!(
                "{other} is not a recurrence pattern this server knows."
            )));
        }
    };
    let start = typed(one_child(range, "StartDate")?, "xs:date", parse_date)?;
    let end = match range.name.as_str() {
        "NoEndRecurrence" => RangeEnd::NoEnd,
        "EndDateRecurrence" => {
            RangeEnd::EndDate(typed(one_child(range, "EndDate")?, "xs:date", parse_date)?)
        }
        "NumberedRecurrence" => RangeEnd::Count(int(one_child(range, "NumberOfOccurrences")?)?),
        other => {
            return Err(schema_violation(format!(
                "{other} is not a recurrence range."
            )));
        }
    };
    Ok(Recurrence {
        pattern,
        start,
        end,
    })
}

// ---------------------------------------------------------------------------------------
// Writing items into answers

/// Which properties an answer carries: every modeled one (BaseShape Default or
/// AllProperties), or only those the request named (IdOnly with AdditionalProperties).
/// The item id always comes back. Names are FieldURIs (`contacts:GivenName`), indexed ones
/// `uri/index` (`contacts:EmailAddress/EmailAddress1`).
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    All,
    Only(&'a BTreeSet<String>),
}

impl Shape<'_> {
    pub fn wants(&self, field: &str) -> bool {
        match self {
            Shape::All => true,
            Shape::Only(named) => named.contains(field),
        }
    }

    /// A dictionary entry, asked for as the whole dictionary or by its index.
    fn wants_entry(&self, dictionary: &str, indexed: &str) -> bool {
        self.wants(dictionary) || self.wants(indexed)
    }
}

/// An element of an answer, built before it is written (members are sorted first).
#[derive(Debug, Clone)]
struct Node {
    name: &'static str,
    attrs: Vec<(&'static str, String)>,
    text: Option<String>,
    children: Vec<Node>,
}

impl Node {
    fn new(name: &'static str) -> Self {
        Node {
            name,
            attrs: Vec::new(),
            text: None,
            children: Vec::new(),
        }
    }

    fn text(name: &'static str, text: impl Into<String>) -> Self {
        Node {
            text: Some(text.into()),
            ..Node::new(name)
        }
    }

    fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.push((name, value.into()));
        self
    }

    fn with(mut self, children: impl IntoIterator<Item = Node>) -> Self {
        self.children.extend(children);
        self
    }

    /// Written with the types prefix the answer's envelope declares.
    fn write(&self, out: &mut Out) {
        out.start(&format!("t:{}", self.name));
        for (name, value) in &self.attrs {
            out.attr(name, value);
        }
        if let Some(t) = &self.text {
            out.text(t);
        }
        for c in &self.children {
            c.write(out);
        }
        out.end();
    }
}

/// ItemIdType (and FolderIdType, OccurrenceInfo's ItemId…): Id and, when known, ChangeKey.
fn id_node(name: &'static str, id: &ItemId) -> Node {
    let node = Node::new(name).attr("Id", id.id.clone());
    match &id.change_key {
        Some(ck) => node.attr("ChangeKey", ck.clone()),
        None => node,
    }
}

/// Writes an `ItemId`-typed element.
pub fn write_item_id(out: &mut Out, name: &'static str, id: &ItemId) {
    id_node(name, id).write(out);
}

/// Writes the item element with its members sorted into the type's sequence.
fn write_members(out: &mut Out, element: &'static str, kind: Kind, mut members: Vec<Node>) {
    // Stable: repeated members (ExtendedProperty) keep the order they were collected in.
    members.sort_by_key(|m| kind.position(m.name).unwrap_or(usize::MAX));
    debug_assert!(members.iter().all(|m| kind.position(m.name).is_some()));
    Node::new(element).with(members).write(out);
}

/// The members every stored item shares: ItemId, ItemClass, Body, Categories,
/// DateTimeCreated, ExtendedProperty, LastModifiedTime.
struct Common<'a> {
    id: Option<&'a ItemId>,
    class: &'static str,
    body: Option<&'a str>,
    categories: &'a [String],
    created: Option<DateTime<Utc>>,
    extended: &'a BTreeMap<String, String>,
    modified: Option<DateTime<Utc>>,
}

fn common_members(c: Common<'_>, shape: Shape<'_>) -> Vec<Node> {
    let mut m = Vec::new();
    m.extend(c.id.map(|id| id_node("ItemId", id)));
    if shape.wants("item:ItemClass") {
        m.push(Node::text("ItemClass", c.class));
    }
    if let Some(body) = c.body.filter(|_| shape.wants("item:Body")) {
        m.push(Node::text("Body", body).attr("BodyType", "Text"));
    }
    if !c.categories.is_empty() && shape.wants("item:Categories") {
        let strings = c.categories.iter().map(|s| Node::text("String", s.clone()));
        m.push(Node::new("Categories").with(strings));
    }
    if let Some(t) = c.created.filter(|_| shape.wants("item:DateTimeCreated")) {
        m.push(Node::text("DateTimeCreated", fmt_datetime(&t)));
    }
    // Extended properties are those the request named (the caller keeps only those).
    for (name, value) in c.extended {
        m.push(extended_node(name, value));
    }
    if let Some(t) = c.modified.filter(|_| shape.wants("item:LastModifiedTime")) {
        m.push(Node::text("LastModifiedTime", fmt_datetime(&t)));
    }
    m
}

/// A PublicStrings string property.
fn extended_node(name: &str, value: &str) -> Node {
    let uri = Node::new("ExtendedFieldURI")
        .attr("DistinguishedPropertySetId", "PublicStrings")
        .attr("PropertyName", name)
        .attr("PropertyType", "String");
    Node::new("ExtendedProperty").with([uri, Node::text("Value", value)])
}

/// A `t:Contact` of an answer, with the properties `shape` asks for.
pub fn write_contact(out: &mut Out, c: &Contact, shape: Shape<'_>) {
    let mut m = common_members(
        Common {
            id: c.item_id.as_ref(),
            class: "IPM.Contact",
            body: c.notes.as_deref(),
            categories: &c.categories,
            created: c.created,
            extended: &c.extended,
            modified: c.last_modified,
        },
        shape,
    );
    let texts = [
        ("FileAs", "contacts:FileAs", &c.file_as),
        ("DisplayName", "contacts:DisplayName", &c.display_name),
        ("GivenName", "contacts:GivenName", &c.given_name),
        ("MiddleName", "contacts:MiddleName", &c.middle_name),
        ("Nickname", "contacts:Nickname", &c.nickname),
        ("CompanyName", "contacts:CompanyName", &c.company_name),
        ("AssistantName", "contacts:AssistantName", &c.assistant_name),
        ("Department", "contacts:Department", &c.department),
        ("JobTitle", "contacts:JobTitle", &c.job_title),
        ("Surname", "contacts:Surname", &c.surname),
    ];
    for (member, uri, value) in texts {
        if let Some(v) = value.as_ref().filter(|_| shape.wants(uri)) {
            m.push(Node::text(member, v.clone()));
        }
    }
    if let Some(b) = c.birthday.filter(|_| shape.wants("contacts:Birthday")) {
        m.push(Node::text("Birthday", format!("{}T00:00:00Z", fmt_date(b))));
    }
    let emails: Vec<Node> = EMAIL_ADDRESS_KEY_TYPE
        .split(' ')
        .zip(&c.emails)
        .filter(|(key, _)| {
            shape.wants_entry(
                "contacts:EmailAddresses",
                &format!("contacts:EmailAddress/{key}"),
            )
        })
        .filter_map(|(key, v)| Some(Node::text("Entry", v.clone()?).attr("Key", key)))
        .collect();
    if !emails.is_empty() {
        m.push(Node::new("EmailAddresses").with(emails));
    }
    let addresses: Vec<Node> = c
        .addresses
        .iter()
        .filter_map(|(key, a)| {
            let parts: Vec<Node> = ADDRESS_PARTS
                .iter()
                .filter(|part| {
                    shape.wants_entry(
                        "contacts:PhysicalAddresses",
                        &format!("contacts:PhysicalAddress:{part}/{key}"),
                    )
                })
                .filter_map(|part| Some(Node::text(part, a.part(part)?.to_string())))
                .collect();
            (!parts.is_empty()).then(|| Node::new("Entry").attr("Key", key.clone()).with(parts))
        })
        .collect();
    if !addresses.is_empty() {
        m.push(Node::new("PhysicalAddresses").with(addresses));
    }
    let phones: Vec<Node> = c
        .phones
        .iter()
        .filter(|(key, _)| {
            shape.wants_entry(
                "contacts:PhoneNumbers",
                &format!("contacts:PhoneNumber/{key}"),
            )
        })
        .map(|(key, v)| Node::text("Entry", v.clone()).attr("Key", key.clone()))
        .collect();
    if !phones.is_empty() {
        m.push(Node::new("PhoneNumbers").with(phones));
    }
    write_members(out, "Contact", Kind::Contact, m);
}

/// SingleRecipientType / AttendeeType's Mailbox.
fn mailbox_node(a: &MailboxAddress) -> Node {
    let mut parts = Vec::new();
    parts.extend(a.name.clone().map(|n| Node::text("Name", n)));
    parts.push(Node::text("EmailAddress", a.email.clone()));
    Node::new("Mailbox").with(parts)
}

fn attendees_node(name: &'static str, list: &[Attendee]) -> Option<Node> {
    if list.is_empty() {
        return None;
    }
    let attendees = list.iter().map(|a| {
        let response = a.response.clone().map(|r| Node::text("ResponseType", r));
        Node::new("Attendee").with(std::iter::once(mailbox_node(&a.mailbox)).chain(response))
    });
    Some(Node::new(name).with(attendees))
}

/// RecurrenceType, each pattern's and range's members in their schema order.
fn recurrence_node(r: &Recurrence) -> Node {
    let n = |v: u32| v.to_string();
    let (name, members) = match &r.pattern {
        Pattern::Daily { interval } => (
            "DailyRecurrence",
            vec![Node::text("Interval", n(*interval))],
        ),
        Pattern::Weekly {
            interval,
            days,
            first_day,
        } => {
            let days: Vec<&str> = days.iter().map(|d| weekday_name(*d)).collect();
            let mut m = vec![
                Node::text("Interval", n(*interval)),
                Node::text("DaysOfWeek", days.join(" ")),
            ];
            m.extend(first_day.map(|f| Node::text("FirstDayOfWeek", weekday_name(f))));
            ("WeeklyRecurrence", m)
        }
        Pattern::AbsoluteMonthly { interval, day } => (
            "AbsoluteMonthlyRecurrence",
            vec![
                Node::text("Interval", n(*interval)),
                Node::text("DayOfMonth", n(*day)),
            ],
        ),
        Pattern::RelativeMonthly {
            interval,
            weekday,
            index,
        } => (
            "RelativeMonthlyRecurrence",
            vec![
                Node::text("Interval", n(*interval)),
                Node::text("DaysOfWeek", weekday_name(*weekday)),
                Node::text("DayOfWeekIndex", index.as_str()),
            ],
        ),
        Pattern::AbsoluteYearly { month, day } => (
            "AbsoluteYearlyRecurrence",
            vec![
                Node::text("DayOfMonth", n(*day)),
                Node::text("Month", month_name(*month)),
            ],
        ),
        Pattern::RelativeYearly {
            month,
            weekday,
            index,
        } => (
            "RelativeYearlyRecurrence",
            vec![
                Node::text("DaysOfWeek", weekday_name(*weekday)),
                Node::text("DayOfWeekIndex", index.as_str()),
                Node::text("Month", month_name(*month)),
            ],
        ),
    };
    let start = Node::text("StartDate", fmt_date(r.start));
    let range = match &r.end {
        RangeEnd::NoEnd => Node::new("NoEndRecurrence").with([start]),
        RangeEnd::EndDate(d) => {
            Node::new("EndDateRecurrence").with([start, Node::text("EndDate", fmt_date(*d))])
        }
        RangeEnd::Count(c) => {
            Node::new("NumberedRecurrence").with([start, Node::text("NumberOfOccurrences", n(*c))])
        }
    };
    Node::new("Recurrence").with([Node::new(name).with(members), range])
}

/// A `t:CalendarItem` of an answer, with the properties `shape` asks for.
pub fn write_event(out: &mut Out, e: &CalendarEvent, shape: Shape<'_>) {
    let mut m = common_members(
        Common {
            id: e.item_id.as_ref(),
            class: "IPM.Appointment",
            body: e.body.as_deref(),
            categories: &e.categories,
            created: e.created,
            extended: &e.extended,
            modified: e.last_modified,
        },
        shape,
    );
    let mut put = |uri: &str, node: Option<Node>| {
        if shape.wants(uri) {
            m.extend(node);
        }
    };
    let instant = |name, t: &DateTime<Utc>| Node::text(name, fmt_datetime(t));
    let flag = |name, b: bool| Node::text(name, if b { "true" } else { "false" });
    put(
        "item:Subject",
        e.subject.clone().map(|s| Node::text("Subject", s)),
    );
    put(
        "item:Sensitivity",
        e.sensitivity.map(|s| Node::text("Sensitivity", s.as_str())),
    );
    put("calendar:UID", e.uid.clone().map(|u| Node::text("UID", u)));
    put("calendar:Start", Some(instant("Start", &e.start)));
    put("calendar:End", Some(instant("End", &e.end)));
    put(
        "calendar:OriginalStart",
        e.original_start
            .as_ref()
            .map(|t| instant("OriginalStart", t)),
    );
    put(
        "calendar:IsAllDayEvent",
        Some(flag("IsAllDayEvent", e.is_all_day)),
    );
    put(
        "calendar:LegacyFreeBusyStatus",
        e.free_busy
            .map(|f| Node::text("LegacyFreeBusyStatus", f.as_str())),
    );
    put(
        "calendar:Location",
        e.location.clone().map(|l| Node::text("Location", l)),
    );
    let in_series = matches!(
        e.item_type,
        Some(CalendarItemType::Occurrence | CalendarItemType::Exception)
    );
    put("calendar:IsRecurring", Some(flag("IsRecurring", in_series)));
    put(
        "calendar:CalendarItemType",
        e.item_type
            .map(|t| Node::text("CalendarItemType", t.as_str())),
    );
    put(
        "calendar:Organizer",
        e.organizer
            .as_ref()
            .map(|o| Node::new("Organizer").with([mailbox_node(o)])),
    );
    put(
        "calendar:RequiredAttendees",
        attendees_node("RequiredAttendees", &e.required_attendees),
    );
    put(
        "calendar:OptionalAttendees",
        attendees_node("OptionalAttendees", &e.optional_attendees),
    );
    put(
        "calendar:Recurrence",
        e.recurrence.as_ref().map(recurrence_node),
    );
    let modified = e.modified_occurrences.iter().map(|o| {
        Node::new("Occurrence").with([
            id_node("ItemId", &o.item_id),
            instant("Start", &o.start),
            instant("End", &o.end),
            instant("OriginalStart", &o.original_start),
        ])
    });
    put(
        "calendar:ModifiedOccurrences",
        (!e.modified_occurrences.is_empty())
            .then(|| Node::new("ModifiedOccurrences").with(modified)),
    );
    let deleted = e
        .deleted_occurrences
        .iter()
        .map(|t| Node::new("DeletedOccurrence").with([instant("Start", t)]));
    put(
        "calendar:DeletedOccurrences",
        (!e.deleted_occurrences.is_empty()).then(|| Node::new("DeletedOccurrences").with(deleted)),
    );
    put(
        "calendar:StartTimeZone",
        e.start_time_zone
            .clone()
            .map(|z| Node::new("StartTimeZone").attr("Id", z)),
    );
    put(
        "calendar:EndTimeZone",
        e.end_time_zone
            .clone()
            .or_else(|| e.start_time_zone.clone())
            .map(|z| Node::new("EndTimeZone").attr("Id", z)),
    );
    write_members(out, "CalendarItem", Kind::Calendar, m);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::xml::{Limits, parse};

    fn element(xml: &str) -> Element {
        let doc = format!(r#"<r xmlns="{NS_T}">{xml}</r>"#);
        parse(doc.as_bytes(), Limits::default())
            .unwrap()
            .children
            .remove(0)
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The sequences above, read again from the official types.xsd.
    #[test]
    fn the_member_sequences_are_those_of_types_xsd() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/ews-schema/types.xsd");
        let xsd = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema = parse(&xsd, Limits::default()).unwrap();
        const XS: &str = "http://www.w3.org/2001/XMLSchema";
        fn names(el: &Element, out: &mut Vec<String>) {
            for c in &el.children {
                if c.name == "element" {
                    out.extend(c.attr("name").or(c.attr("ref")).map(str::to_string));
                }
                names(c, out);
            }
        }
        for (ty, expected) in [
            ("ItemType", ITEM_TYPE),
            ("ContactItemType", CONTACT_ITEM_TYPE),
            ("CalendarItemType", CALENDAR_ITEM_TYPE),
        ] {
            let ct = schema
                .children_named(XS, "complexType")
                .find(|c| c.attr("name") == Some(ty))
                .unwrap_or_else(|| panic!("{ty} not in types.xsd"));
            let mut found = Vec::new();
            names(ct, &mut found);
            assert_eq!(found, expected, "{ty}");
        }
        for (ty, expected) in [
            ("EmailAddressKeyType", EMAIL_ADDRESS_KEY_TYPE),
            ("PhysicalAddressKeyType", PHYSICAL_ADDRESS_KEY_TYPE),
            ("PhoneNumberKeyType", PHONE_NUMBER_KEY_TYPE),
        ] {
            let st = schema
                .children_named(XS, "simpleType")
                .find(|c| c.attr("name") == Some(ty))
                .unwrap_or_else(|| panic!("{ty} not in types.xsd"));
            let values: Vec<&str> = st
                .children
                .iter()
                .flat_map(|r| r.children_named(XS, "enumeration"))
                .filter_map(|e| e.attr("value"))
                .collect();
            assert_eq!(
                values.join(" "),
                expected.split_whitespace().collect::<Vec<_>>().join(" "),
                "{ty}"
            );
        }
        let address = schema
            .children_named(XS, "complexType")
            .find(|c| c.attr("name") == Some("PhysicalAddressDictionaryEntryType"))
            .unwrap();
        let mut parts = Vec::new();
        names(address, &mut parts);
        assert_eq!(parts, ADDRESS_PARTS);
    }

    #[test]
    fn dates_and_times_read_in_every_lexical_form_and_birthdays_keep_their_day() {
        let t = parse_datetime("2026-01-05T09:00:00Z").unwrap();
        assert_eq!(fmt_datetime(&t), "2026-01-05T09:00:00Z");
        assert_eq!(parse_datetime("2026-01-05T10:00:00+01:00"), Some(t));
        assert_eq!(parse_datetime("2026-01-05T09:00:00.000"), Some(t));
        assert_eq!(parse_datetime("monday"), None);
        assert_eq!(parse_date("2026-01-05-08:00"), Some(d(2026, 1, 5)));
        for s in [
            "1815-12-10T00:00:00Z",
            "1815-12-09T23:00:00Z",
            "1815-12-10T11:00:00Z",
            "1815-12-09T13:00:00Z",
            "1815-12-10",
        ] {
            assert_eq!(birthday_date(s), Some(d(1815, 12, 10)), "{s}");
        }
        assert_eq!(month_number(month_name(11)), Some(11));
        let booleans = [" true", "1", "false", "0 ", "yes", ""].map(parse_bool);
        assert_eq!(
            booleans,
            [Some(true), Some(true), Some(false), Some(false), None, None]
        );
    }

    #[test]
    fn a_member_out_of_schema_order_or_unknown_to_the_schema_is_a_schema_violation() {
        let ok = element("<Contact><GivenName>Ada</GivenName><Surname>L</Surname></Contact>");
        assert_eq!(
            read_contact(&ok).unwrap().given_name.as_deref(),
            Some("Ada")
        );
        for bad in [
            "<Contact><Surname>L</Surname><GivenName>Ada</GivenName></Contact>",
            "<Contact><GivenName>A</GivenName><GivenName>B</GivenName></Contact>",
            "<Contact><Colour>Blue</Colour></Contact>",
            "<Contact><EmailAddresses><Entry Key=\"EmailAddress9\">a@b</Entry></EmailAddresses></Contact>",
            "<Contact><Birthday>soon</Birthday></Contact>",
        ] {
            let err = read_contact(&element(bad)).unwrap_err();
            assert_eq!(err.0, "ErrorSchemaValidation", "{bad}: {}", err.1);
        }
        let spouse = element("<Contact><SpouseName>W</SpouseName></Contact>");
        assert_eq!(
            read_contact(&spouse).unwrap_err().0,
            "ErrorInvalidPropertySet"
        );
    }

    #[test]
    fn an_item_written_and_read_back_is_the_same_and_its_members_are_in_schema_order() {
        let mut c = Contact {
            given_name: Some("Ada".into()),
            surname: Some("Lovelace".into()),
            notes: Some("n".into()),
            birthday: Some(d(1815, 12, 10)),
            emails: [Some("ada@example.com".into()), None, None],
            categories: vec!["x".into()],
            ..Contact::default()
        };
        c.phones.insert("MobilePhone".into(), "+1".into());
        c.extended.insert("SalesforceId".into(), "003".into());
        let mut a = PhysicalAddress::default();
        *a.slot_mut("City").unwrap() = Some("London".into());
        c.addresses.insert("Business".into(), a);
        let mut out = Out::new();
        write_contact(&mut out, &c, Shape::All);
        let xml = out.finish().replace("t:", "");
        let back = element(&xml);
        let order: Vec<&str> = back.children.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "ItemClass",
                "Body",
                "Categories",
                "ExtendedProperty",
                "GivenName",
                "EmailAddresses",
                "PhysicalAddresses",
                "PhoneNumbers",
                "Birthday",
                "Surname"
            ]
        );
        let mut stripped = back.clone();
        stripped.children.retain(|m| m.name != "ItemClass");
        assert_eq!(read_contact(&stripped).unwrap(), c);

        let mut e = CalendarEvent::new(
            parse_datetime("2026-01-05T09:00:00Z").unwrap(),
            parse_datetime("2026-01-05T10:00:00Z").unwrap(),
        );
        e.subject = Some("s".into());
        e.start_time_zone = Some("Taipei Standard Time".into());
        e.end_time_zone = Some("Taipei Standard Time".into());
        e.recurrence = Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 2,
                days: vec![chrono::Weekday::Mon, chrono::Weekday::Thu],
                first_day: Some(chrono::Weekday::Mon),
            },
            start: d(2026, 1, 5),
            end: RangeEnd::Count(5),
        });
        let mut out = Out::new();
        write_event(&mut out, &e, Shape::All);
        let mut back = element(&out.finish().replace("t:", ""));
        back.children
            .retain(|m| !matches!(m.name.as_str(), "ItemClass" | "IsRecurring"));
        assert_eq!(read_event(&back).unwrap(), (e, true));
    }

    #[test]
    fn a_recurrence_needs_one_pattern_and_one_range_with_valid_values() {
        let ok = "<Recurrence><RelativeYearlyRecurrence><DaysOfWeek>Thursday</DaysOfWeek><DayOfWeekIndex>Fourth</DayOfWeekIndex><Month>November</Month></RelativeYearlyRecurrence><NoEndRecurrence><StartDate>2026-01-01</StartDate></NoEndRecurrence></Recurrence>";
        assert!(read_recurrence(&element(ok)).is_ok());
        for bad in [
            "<Recurrence><NoEndRecurrence><StartDate>2026-01-01</StartDate></NoEndRecurrence></Recurrence>",
            "<Recurrence><DailyRecurrence><Interval>0</Interval></DailyRecurrence><NoEndRecurrence><StartDate>2026-01-01</StartDate></NoEndRecurrence></Recurrence>",
            "<Recurrence><DailyRecurrence><Interval>1</Interval></DailyRecurrence><NumberedRecurrence><StartDate>2026-01-01</StartDate><NumberOfOccurrences>many</NumberOfOccurrences></NumberedRecurrence></Recurrence>",
        ] {
            assert!(read_recurrence(&element(bad)).is_err(), "{bad}");
        }
    }
}
