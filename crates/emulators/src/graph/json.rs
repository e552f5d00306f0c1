//! The Graph face's JSON codec for the store's items: contact, contactFolder and event as
//! Microsoft's v1.0 description (openapi-subset.json) names their members. Written from that
//! description and GRAPH.md, not from any client. Input is checked member by member: an
//! undeclared (or misspelt) member is a 400, as Graph's OData reader answers.

use super::ids::rest_id;
use crate::exchange::model::{
    Attendee, CalendarEvent, CalendarItemType, Contact, FreeBusy, MailboxAddress, Pattern,
    PhysicalAddress, RangeEnd, Recurrence, Sensitivity, WeekIndex,
};
use crate::exchange::tz;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use serde_json::{Map, Value, json};

/// PS_PUBLIC_STRINGS, the property set EWS calls `PublicStrings`.
pub const PUBLIC_STRINGS: &str = "00020329-0000-0000-C000-000000000046";

/// A request body the service refuses: (code, message), answered with 400.
pub type BodyError = (String, String);

fn bad(code: &str, msg: impl Into<String>) -> BodyError {
    (code.to_string(), msg.into())
}

/// The OData reader's answer to an undeclared member.
fn unknown_member(name: &str, ty: &str) -> BodyError {
    bad(
        "RequestBodyRead",
        format!(
            "The property '{name}' does not exist on type 'microsoft.graph.{ty}'. Make sure to \
             only use property names that are defined by the type or mark the type as open type."
        ),
    )
}

/// Checks every member of `obj` against the type's declared members; annotations
/// (`@odata.type`, `@odata.etag`) are allowed. `ignored`: declared members the service sets
/// itself (ids, change keys, times), accepted and not written.
fn check_members(
    obj: &Map<String, Value>,
    ty: &str,
    modelled: &[&str],
    ignored: &[&str],
    unmodelled: &[&str],
) -> Result<(), BodyError> {
    for k in obj.keys() {
        if k.starts_with('@') || modelled.contains(&k.as_str()) || ignored.contains(&k.as_str()) {
            continue;
        }
        if unmodelled.contains(&k.as_str()) {
            // Declared by Graph but not kept by this emulator's store: refused rather than
            // dropped, so a client never believes it wrote something that was lost.
            return Err(bad(
                "ErrorInvalidProperty",
                format!("The emulator does not store '{k}' of microsoft.graph.{ty}."),
            ));
        }
        return Err(unknown_member(k, ty));
    }
    Ok(())
}

fn object<'a>(v: &'a Value, ty: &str) -> Result<&'a Map<String, Value>, BodyError> {
    v.as_object().ok_or_else(|| {
        bad(
            "RequestBodyRead",
            format!("A value of type 'microsoft.graph.{ty}' must be a JSON object."),
        )
    })
}

fn opt_string(v: &Value, name: &str) -> Result<Option<String>, BodyError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(bad(
            "RequestBodyRead",
            format!("Cannot convert the literal for '{name}' to the expected type 'Edm.String'."),
        )),
    }
}

fn string_list(v: &Value, name: &str) -> Result<Vec<String>, BodyError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|x| opt_string(x, name).map(Option::unwrap_or_default))
            .collect(),
        _ => Err(bad(
            "RequestBodyRead",
            format!("'{name}' must be a collection of strings."),
        )),
    }
}

fn str_or_null(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_string()))
}

// ---------------------------------------------------------------------------------------
// Ids

pub fn etag(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

// ---------------------------------------------------------------------------------------
// translateExchangeIds (api-reference/v1.0/api/user-translateexchangeids.md)

/// The body of `POST /users/{id}/translateExchangeIds`: (inputIds, sourceIdType,
/// targetIdType), each format one of `ids::FORMATS`.
pub fn read_translate_request(body: &Value) -> Result<(Vec<String>, String, String), BodyError> {
    const TY: &str = "translateExchangeIdsRequestBody";
    let o = object(body, TY)?;
    check_members(
        o,
        TY,
        &["inputIds", "sourceIdType", "targetIdType"],
        &[],
        &[],
    )?;
    let ids = string_list(o.get("inputIds").unwrap_or(&Value::Null), "inputIds")?;
    let format = |name: &str| -> Result<String, BodyError> {
        let v = opt_string(o.get(name).unwrap_or(&Value::Null), name)?
            .ok_or_else(|| bad("ErrorInvalidParameter", format!("'{name}' is required.")))?;
        super::ids::FORMATS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(&v))
            .map(|f| f.to_string())
            .ok_or_else(|| {
                bad(
                    "RequestBodyRead",
                    format!(
                        "The value '{v}' of '{name}' is not a member of \
                         'microsoft.graph.exchangeIdFormat'."
                    ),
                )
            })
    };
    Ok((ids, format("sourceIdType")?, format("targetIdType")?))
}

// ---------------------------------------------------------------------------------------
// Extended properties

/// The PublicStrings name of `String {00020329-…} Name X` (the only set the store keeps).
pub fn extended_name(id: &str) -> Result<String, BodyError> {
    if let Some(key) = tagged_phone(id) {
        return Ok(format!("{TAG_PREFIX}{key}"));
    }
    let mut parts = id.trim().splitn(4, ' ');
    let (Some(ty), Some(guid), Some(kind), Some(name)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            "ErrorInvalidExtendedPropertyValue",
            format!("'{id}' is not an extended property id (\"String {{guid}} Name name\")."),
        ));
    };
    let guid = guid.trim_matches(|c| c == '{' || c == '}');
    if !ty.eq_ignore_ascii_case("String")
        || !kind.eq_ignore_ascii_case("Name")
        || !guid.eq_ignore_ascii_case(PUBLIC_STRINGS)
    {
        return Err(bad(
            "ErrorInvalidProperty",
            format!("The emulator stores only String PublicStrings named properties, not '{id}'."),
        ));
    }
    Ok(name.to_string())
}

/// MAPI phone properties by tag (MS-OXPROPS): Graph's contact declares no member for them,
/// so a client reaches them as `String 0x3A24`; the store keeps them as phones.
const TAGGED_PHONES: &[(&str, &str)] = &[
    ("0x3A1F", "OtherTelephone"),
    ("0x3A21", "Pager"),
    ("0x3A24", "BusinessFax"),
    ("0x3A25", "HomeFax"),
    ("0x3A2E", "AssistantPhone"),
];

/// The store's phone key of a tagged phone property id (`String 0x3A24`).
fn tagged_phone(id: &str) -> Option<&'static str> {
    let (ty, tag) = id.trim().split_once(' ')?;
    if !ty.eq_ignore_ascii_case("String") {
        return None;
    }
    TAGGED_PHONES
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(tag.trim()))
        .map(|(_, key)| *key)
}

/// How `$expand` names a tagged phone among extended property names.
const TAG_PREFIX: &str = "0x:";

pub fn extended_id(name: &str) -> String {
    format!("String {{{PUBLIC_STRINGS}}} Name {name}")
}

fn read_extended(
    v: &Value,
    into: &mut std::collections::BTreeMap<String, String>,
) -> Result<(), BodyError> {
    let Value::Array(list) = v else {
        return Err(bad(
            "RequestBodyRead",
            "singleValueExtendedProperties must be a collection.",
        ));
    };
    for p in list {
        let o = object(p, "singleValueLegacyExtendedProperty")?;
        check_members(
            o,
            "singleValueLegacyExtendedProperty",
            &["id", "value"],
            &[],
            &[],
        )?;
        let id = o.get("id").and_then(Value::as_str).unwrap_or("");
        let name = extended_name(id)?;
        match o.get("value").map(|v| opt_string(v, "value")).transpose()? {
            Some(Some(value)) => {
                into.insert(name, value);
            }
            _ => {
                into.remove(&name);
            }
        }
    }
    Ok(())
}

/// `singleValueExtendedProperties` of an item for `$expand=…($filter=id eq '…')`: the
/// requested ones it has (all of them with no filter).
fn write_extended(
    extended: &std::collections::BTreeMap<String, String>,
    wanted: &ExpandExtended,
) -> Value {
    Value::Array(
        extended
            .iter()
            .filter(|(name, _)| match wanted {
                ExpandExtended::All => true,
                ExpandExtended::Names(n) => n.iter().any(|w| w == *name),
            })
            .map(|(name, value)| json!({"id": extended_id(name), "value": value}))
            .collect(),
    )
}

/// What `$expand=singleValueExtendedProperties(…)` asked for.
#[derive(Debug, Clone)]
pub enum ExpandExtended {
    All,
    Names(Vec<String>),
}

/// How to write an item: `$select` (None: every member), `$expand` of extended properties,
/// the `Prefer: outlook.timezone` zone.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub select: Option<Vec<String>>,
    pub expand: Option<ExpandExtended>,
    pub zone: Option<String>,
}

fn apply_select(mut out: Map<String, Value>, view: &View) -> Value {
    if let Some(sel) = &view.select {
        // OData: what `$expand` asks for comes whatever `$select` lists.
        let expanded = |k: &str| k == "singleValueExtendedProperties" && view.expand.is_some();
        out.retain(|k, _| {
            k == "id"
                || k.starts_with('@')
                || expanded(k)
                || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
        });
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------
// Contacts

const CONTACT_MODELLED: &[&str] = &[
    "givenName",
    "surname",
    "middleName",
    "displayName",
    "fileAs",
    "nickName",
    "companyName",
    "department",
    "jobTitle",
    "assistantName",
    "birthday",
    "personalNotes",
    "emailAddresses",
    "businessPhones",
    "homePhones",
    "mobilePhone",
    "businessAddress",
    "homeAddress",
    "otherAddress",
    "categories",
    "singleValueExtendedProperties",
];
const CONTACT_IGNORED: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "parentFolderId",
];
const CONTACT_UNMODELLED: &[&str] = &[
    "businessHomePage",
    "children",
    "generation",
    "imAddresses",
    "initials",
    "manager",
    "officeLocation",
    "primaryEmailAddress",
    "profession",
    "secondaryEmailAddress",
    "spouseName",
    "tertiaryEmailAddress",
    "title",
    "yomiCompanyName",
    "yomiGivenName",
    "yomiSurname",
    "extensions",
    "multiValueExtendedProperties",
    "photo",
];
const ADDRESS_MEMBERS: &[&str] = &["street", "city", "state", "postalCode", "countryOrRegion"];

/// Phone keys of the store behind `businessPhones` and `homePhones` (two each).
const BUSINESS_PHONES: [&str; 2] = ["BusinessPhone", "BusinessPhone2"];
const HOME_PHONES: [&str; 2] = ["HomePhone", "HomePhone2"];

fn read_address(v: &Value) -> Result<PhysicalAddress, BodyError> {
    if v.is_null() {
        return Ok(PhysicalAddress::default());
    }
    let o = object(v, "physicalAddress")?;
    check_members(o, "physicalAddress", ADDRESS_MEMBERS, &[], &[])?;
    let get = |k: &str| -> Result<Option<String>, BodyError> {
        o.get(k)
            .map(|v| opt_string(v, k))
            .transpose()
            .map(Option::flatten)
    };
    Ok(PhysicalAddress {
        street: get("street")?,
        city: get("city")?,
        state: get("state")?,
        postal_code: get("postalCode")?,
        country: get("countryOrRegion")?,
    })
}

fn write_address(a: Option<&PhysicalAddress>) -> Value {
    let a = a.cloned().unwrap_or_default();
    json!({
        "street": str_or_null(a.street.as_deref()),
        "city": str_or_null(a.city.as_deref()),
        "state": str_or_null(a.state.as_deref()),
        "postalCode": str_or_null(a.postal_code.as_deref()),
        "countryOrRegion": str_or_null(a.country.as_deref()),
    })
}

/// The multi-value limit Graph enforces on contacts.
fn limit(list: &[Value], max: usize, name: &str) -> Result<(), BodyError> {
    if list.len() > max {
        return Err(bad(
            "ErrorInvalidArgument",
            format!(
                "The multi value property {name} has {} entries, that exceeds the max allowed value of {max}",
                list.len()
            ),
        ));
    }
    Ok(())
}

fn read_phones(v: &Value, keys: [&str; 2], name: &str, c: &mut Contact) -> Result<(), BodyError> {
    let list = v.as_array().cloned().unwrap_or_default();
    limit(&list, 2, name)?;
    let values = string_list(v, name)?;
    for (i, key) in keys.iter().enumerate() {
        match values.get(i).filter(|s| !s.is_empty()) {
            Some(p) => c.phones.insert(key.to_string(), p.clone()),
            None => c.phones.remove(*key),
        };
    }
    Ok(())
}

/// Applies a contact body (POST: onto an empty contact; PATCH: onto the stored one).
pub fn apply_contact(body: &Value, c: &mut Contact) -> Result<(), BodyError> {
    let o = object(body, "contact")?;
    check_members(
        o,
        "contact",
        CONTACT_MODELLED,
        CONTACT_IGNORED,
        CONTACT_UNMODELLED,
    )?;
    for (k, v) in o {
        let s = || opt_string(v, k);
        match k.as_str() {
            "givenName" => c.given_name = s()?,
            "surname" => c.surname = s()?,
            "middleName" => c.middle_name = s()?,
            "displayName" => c.display_name = s()?,
            "fileAs" => c.file_as = s()?,
            "nickName" => c.nickname = s()?,
            "companyName" => c.company_name = s()?,
            "department" => c.department = s()?,
            "jobTitle" => c.job_title = s()?,
            "assistantName" => c.assistant_name = s()?,
            "personalNotes" => c.notes = s()?,
            "mobilePhone" => match s()? {
                Some(p) => {
                    c.phones.insert("MobilePhone".into(), p);
                }
                None => {
                    c.phones.remove("MobilePhone");
                }
            },
            "birthday" => {
                c.birthday = match s()? {
                    None => None,
                    Some(b) => Some(parse_birthday(&b)?),
                }
            }
            "categories" => c.categories = string_list(v, k)?,
            "emailAddresses" => {
                let list = v.as_array().cloned().unwrap_or_default();
                limit(&list, 3, "EmailAddresses")?;
                let mut emails: [Option<String>; 3] = Default::default();
                for (i, e) in list.iter().enumerate() {
                    let eo = object(e, "emailAddress")?;
                    check_members(eo, "emailAddress", &["name", "address"], &[], &[])?;
                    emails[i] = eo
                        .get("address")
                        .map(|a| opt_string(a, "address"))
                        .transpose()?
                        .flatten();
                }
                c.emails = emails;
            }
            "businessPhones" => read_phones(v, BUSINESS_PHONES, "BusinessPhones", c)?,
            "homePhones" => read_phones(v, HOME_PHONES, "HomePhones", c)?,
            "businessAddress" | "homeAddress" | "otherAddress" => {
                let key = match k.as_str() {
                    "businessAddress" => "Business",
                    "homeAddress" => "Home",
                    _ => "Other",
                };
                let a = read_address(v)?;
                if a.is_empty() {
                    c.addresses.remove(key);
                } else {
                    c.addresses.insert(key.to_string(), a);
                }
            }
            "singleValueExtendedProperties" => {
                let mut named = Vec::new();
                for p in v.as_array().into_iter().flatten() {
                    let key = p.get("id").and_then(Value::as_str).and_then(tagged_phone);
                    match (key, p.get("value").and_then(Value::as_str)) {
                        (Some(key), Some(value)) if !value.is_empty() => {
                            c.phones.insert(key.to_string(), value.to_string());
                        }
                        (Some(key), _) => {
                            c.phones.remove(key);
                        }
                        (None, _) => named.push(p.clone()),
                    }
                }
                if v.is_array() {
                    read_extended(&Value::Array(named), &mut c.extended)?;
                } else {
                    read_extended(v, &mut c.extended)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_birthday(s: &str) -> Result<NaiveDate, BodyError> {
    // DateTimeOffset in the description; date-only is accepted in requests (README).
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.date_naive())
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
        .map_err(|_| {
            bad(
                "RequestBodyRead",
                format!("Cannot convert '{s}' to Edm.DateTimeOffset for 'birthday'."),
            )
        })
}

/// What the store keeps beside a contact: its id as the answer names it (see `ids`), its
/// changeKey, and its folder's store id.
pub struct Stamp<'a> {
    pub id: &'a str,
    pub change_key: &'a str,
    pub parent_folder: &'a str,
}

pub fn write_contact(c: &Contact, stamp: &Stamp<'_>, view: &View) -> Value {
    let phones = |keys: [&str; 2]| -> Value {
        Value::Array(
            keys.iter()
                .filter_map(|k| c.phones.get(*k))
                .map(|p| Value::String(p.clone()))
                .collect(),
        )
    };
    let mut out = json!({
        "@odata.etag": etag(stamp.change_key),
        "id": stamp.id,
        "changeKey": stamp.change_key,
        "parentFolderId": rest_id(stamp.parent_folder),
        "lastModifiedDateTime": c.last_modified.map(|t| fmt_offset(&t)),
        "categories": c.categories,
        "givenName": str_or_null(c.given_name.as_deref()),
        "surname": str_or_null(c.surname.as_deref()),
        "middleName": str_or_null(c.middle_name.as_deref()),
        "displayName": str_or_null(c.display_name.as_deref()),
        "fileAs": str_or_null(c.file_as.as_deref()),
        "nickName": str_or_null(c.nickname.as_deref()),
        "companyName": str_or_null(c.company_name.as_deref()),
        "department": str_or_null(c.department.as_deref()),
        "jobTitle": str_or_null(c.job_title.as_deref()),
        "assistantName": str_or_null(c.assistant_name.as_deref()),
        "personalNotes": str_or_null(c.notes.as_deref()),
        "birthday": c.birthday.map(|d| format!("{d}T11:59:00Z")),
        "emailAddresses": c.emails.iter().flatten()
            .map(|a| json!({"name": a, "address": a})).collect::<Vec<_>>(),
        "businessPhones": phones(BUSINESS_PHONES),
        "homePhones": phones(HOME_PHONES),
        "mobilePhone": str_or_null(c.phones.get("MobilePhone").map(String::as_str)),
        "businessAddress": write_address(c.addresses.get("Business")),
        "homeAddress": write_address(c.addresses.get("Home")),
        "otherAddress": write_address(c.addresses.get("Other")),
    });
    if let (Some(wanted), Some(o)) = (&view.expand, out.as_object_mut()) {
        let mut props = write_extended(&c.extended, wanted);
        if let Value::Array(list) = &mut props {
            for (tag, key) in TAGGED_PHONES {
                let asked = match wanted {
                    ExpandExtended::All => true,
                    ExpandExtended::Names(n) => {
                        n.iter().any(|w| *w == format!("{TAG_PREFIX}{key}"))
                    }
                };
                if let (true, Some(v)) = (asked, c.phones.get(*key)) {
                    list.push(json!({"id": format!("String {tag}"), "value": v}));
                }
            }
        }
        o.insert("singleValueExtendedProperties".into(), props);
    }
    match out {
        Value::Object(o) => apply_select(o, view),
        v => v,
    }
}

// ---------------------------------------------------------------------------------------
// Contact folders

/// A contactFolder in a POST (`creating`: displayName required) or PATCH body: its
/// displayName and the singleValueExtendedProperties it sets (a null value removes one).
pub struct FolderBody {
    pub name: Option<String>,
    pub extended: std::collections::BTreeMap<String, Option<String>>,
}

pub fn read_folder(body: &Value, creating: bool) -> Result<FolderBody, BodyError> {
    let o = object(body, "contactFolder")?;
    check_members(
        o,
        "contactFolder",
        &["displayName", "singleValueExtendedProperties"],
        &["id", "parentFolderId"],
        &["childFolders", "contacts", "multiValueExtendedProperties"],
    )?;
    let name = match o.get("displayName").map(|v| opt_string(v, "displayName")) {
        Some(Ok(Some(name))) => Some(name),
        Some(Err(e)) => return Err(e),
        _ if creating => {
            return Err(bad(
                "ErrorInvalidRequest",
                "The contactFolder needs a displayName.",
            ));
        }
        _ => None,
    };
    let mut extended = std::collections::BTreeMap::new();
    if let Some(list) = o.get("singleValueExtendedProperties") {
        // Read into a scratch map to tell a set from a removal.
        let mut set = std::collections::BTreeMap::new();
        read_extended(list, &mut set)?;
        for p in list.as_array().into_iter().flatten() {
            let id = p.get("id").and_then(Value::as_str).unwrap_or("");
            let name = extended_name(id)?;
            let value = set.get(&name).cloned();
            extended.insert(name, value);
        }
    }
    Ok(FolderBody { name, extended })
}

/// A contactFolder as Graph answers it; its singleValueExtendedProperties only when
/// `$expand` asked for them.
pub fn write_folder(
    id: &str,
    parent: &str,
    name: &str,
    extended: &std::collections::BTreeMap<String, String>,
    view: &View,
) -> Value {
    let mut out =
        json!({"id": rest_id(id), "parentFolderId": rest_id(parent), "displayName": name});
    if let Some(wanted) = &view.expand {
        out["singleValueExtendedProperties"] = write_extended(extended, wanted);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Events

const EVENT_MODELLED: &[&str] = &[
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "location",
    "showAs",
    "sensitivity",
    "attendees",
    "recurrence",
    "categories",
    "transactionId",
    "singleValueExtendedProperties",
];
const EVENT_IGNORED: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "bodyPreview",
    "iCalUId",
    "isOrganizer",
    "organizer",
    "seriesMasterId",
    "type",
    "webLink",
    "originalStart",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "isCancelled",
    "responseStatus",
    "hasAttachments",
];
const EVENT_UNMODELLED: &[&str] = &[
    "allowNewTimeProposals",
    "cancelledOccurrences",
    "hideAttendees",
    "importance",
    "isDraft",
    "isOnlineMeeting",
    "isReminderOn",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "attachments",
    "calendar",
    "exceptionOccurrences",
    "extensions",
    "instances",
    "multiValueExtendedProperties",
];

/// The zone of a `dateTimeTimeZone.timeZone`: a Windows id or an IANA name, with the
/// Windows id the store keeps.
fn zone(name: &str) -> Option<(chrono_tz::Tz, String)> {
    if name.eq_ignore_ascii_case("UTC") {
        return Some((chrono_tz::UTC, "UTC".into()));
    }
    if let Some(tz) = tz::windows_tz(name) {
        return Some((tz, name.to_string()));
    }
    let tz: chrono_tz::Tz = name.parse().ok()?;
    Some((tz, tz::iana_to_windows(name).unwrap_or("UTC").to_string()))
}

fn read_time(v: &Value, name: &str) -> Result<(DateTime<Utc>, String), BodyError> {
    let o = object(v, "dateTimeTimeZone")?;
    check_members(o, "dateTimeTimeZone", &["dateTime", "timeZone"], &[], &[])?;
    let dt = o.get("dateTime").and_then(Value::as_str).unwrap_or("");
    let tzname = o.get("timeZone").and_then(Value::as_str).unwrap_or("UTC");
    let Some((tz, windows)) = zone(tzname) else {
        return Err(bad(
            "TimeZoneNotSupportedException",
            format!(
                "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{tzname}'."
            ),
        ));
    };
    let naive = NaiveDateTime::parse_from_str(dt.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| {
            bad(
                "ErrorInvalidRequest",
                format!("'{name}.dateTime' is not a date and time: '{dt}'."),
            )
        })?;
    let t = tz.from_local_datetime(&naive).earliest().ok_or_else(|| {
        bad(
            "ErrorInvalidRequest",
            format!("'{dt}' does not exist in {tzname}."),
        )
    })?;
    Ok((t.with_timezone(&Utc), windows))
}

fn fmt_offset(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `dateTimeTimeZone` in the Prefer zone (Windows or IANA), else UTC.
fn write_time(t: &DateTime<Utc>, view: &View) -> Value {
    if let Some((tz, _)) = view.zone.as_deref().and_then(zone) {
        return json!({
            "dateTime": t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S.0000000").to_string(),
            "timeZone": view.zone,
        });
    }
    json!({"dateTime": t.format("%Y-%m-%dT%H:%M:%S.0000000").to_string(), "timeZone": "UTC"})
}

fn enum_in<T>(v: &Value, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, BodyError> {
    // Enum input is accepted in any case; output is lower camel case.
    v.as_str()
        .and_then(|s| parse(&s.to_ascii_lowercase()))
        .ok_or_else(|| {
            bad(
                "RequestBodyRead",
                format!("'{v}' is not a valid value for '{name}'."),
            )
        })
}

fn weekday(s: &str) -> Option<Weekday> {
    crate::exchange::model::parse_weekday(&capitalise(s))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn index(s: &str) -> Option<WeekIndex> {
    WeekIndex::parse(&capitalise(s))
}

fn read_recurrence(v: &Value) -> Result<Option<Recurrence>, BodyError> {
    if v.is_null() {
        return Ok(None);
    }
    let o = object(v, "patternedRecurrence")?;
    check_members(o, "patternedRecurrence", &["pattern", "range"], &[], &[])?;
    let p = object(
        o.get("pattern").unwrap_or(&Value::Null),
        "recurrencePattern",
    )?;
    check_members(
        p,
        "recurrencePattern",
        &[
            "type",
            "interval",
            "daysOfWeek",
            "dayOfMonth",
            "month",
            "firstDayOfWeek",
            "index",
        ],
        &[],
        &[],
    )?;
    let r = object(o.get("range").unwrap_or(&Value::Null), "recurrenceRange")?;
    check_members(
        r,
        "recurrenceRange",
        &[
            "type",
            "startDate",
            "endDate",
            "numberOfOccurrences",
            "recurrenceTimeZone",
        ],
        &[],
        &[],
    )?;
    let num = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
    let interval = num("interval").max(1);
    let days = match p.get("daysOfWeek") {
        Some(Value::Array(d)) => d
            .iter()
            .map(|x| enum_in(x, "daysOfWeek", weekday))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let first_day = p
        .get("firstDayOfWeek")
        .filter(|v| !v.is_null())
        .map(|v| enum_in(v, "firstDayOfWeek", weekday))
        .transpose()?;
    let idx = || -> Result<WeekIndex, BodyError> {
        p.get("index")
            .map(|v| enum_in(v, "index", index))
            .unwrap_or(Ok(WeekIndex::First))
    };
    let first = || {
        days.first().copied().ok_or_else(|| {
            bad(
                "ErrorInvalidRequest",
                "The recurrence pattern needs daysOfWeek.",
            )
        })
    };
    let kind = p.get("type").cloned().unwrap_or(Value::Null);
    let pattern = match enum_in(&kind, "type", |s| Some(s.to_string()))?.as_str() {
        "daily" => Pattern::Daily { interval },
        "weekly" => Pattern::Weekly {
            interval,
            days: days.clone(),
            first_day,
        },
        "absolutemonthly" => Pattern::AbsoluteMonthly {
            interval,
            day: num("dayOfMonth"),
        },
        "relativemonthly" => Pattern::RelativeMonthly {
            interval,
            weekday: first()?,
            index: idx()?,
        },
        "absoluteyearly" => Pattern::AbsoluteYearly {
            month: num("month"),
            day: num("dayOfMonth"),
        },
        "relativeyearly" => Pattern::RelativeYearly {
            month: num("month"),
            weekday: first()?,
            index: idx()?,
        },
        other => {
            return Err(bad(
                "RequestBodyRead",
                format!("'{other}' is not a recurrencePatternType."),
            ));
        }
    };
    let date = |k: &str| -> Result<NaiveDate, BodyError> {
        let s = r.get(k).and_then(Value::as_str).unwrap_or("");
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            bad(
                "ErrorInvalidRequest",
                format!("range.{k} is not a date: '{s}'."),
            )
        })
    };
    let range_kind = r.get("type").cloned().unwrap_or(Value::Null);
    let end = match enum_in(&range_kind, "range.type", |s| Some(s.to_string()))?.as_str() {
        "noend" => RangeEnd::NoEnd,
        "enddate" => RangeEnd::EndDate(date("endDate")?),
        "numbered" => RangeEnd::Count(
            r.get("numberOfOccurrences")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
        ),
        other => {
            return Err(bad(
                "RequestBodyRead",
                format!("'{other}' is not a recurrenceRangeType."),
            ));
        }
    };
    Ok(Some(Recurrence {
        pattern,
        start: date("startDate")?,
        end,
    }))
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn write_recurrence(r: &Recurrence, zone: Option<&str>) -> Value {
    let day = |d: &Weekday| lower_first(crate::exchange::model::weekday_name(*d));
    let base = |ty: &str| {
        json!({"type": ty, "interval": 1, "month": 0, "dayOfMonth": 0,
               "firstDayOfWeek": "sunday", "index": "first", "daysOfWeek": []})
    };
    let mut p = match &r.pattern {
        Pattern::Daily { interval } => {
            let mut p = base("daily");
            p["interval"] = json!(interval);
            p
        }
        Pattern::Weekly {
            interval,
            days,
            first_day,
        } => {
            let mut p = base("weekly");
            p["interval"] = json!(interval);
            p["daysOfWeek"] = json!(days.iter().map(day).collect::<Vec<_>>());
            p["firstDayOfWeek"] = json!(day(&first_day.unwrap_or(Weekday::Sun)));
            p
        }
        Pattern::AbsoluteMonthly { interval, day: d } => {
            let mut p = base("absoluteMonthly");
            p["interval"] = json!(interval);
            p["dayOfMonth"] = json!(d);
            p
        }
        Pattern::RelativeMonthly {
            interval,
            weekday,
            index,
        } => {
            let mut p = base("relativeMonthly");
            p["interval"] = json!(interval);
            p["daysOfWeek"] = json!([day(weekday)]);
            p["index"] = json!(lower_first(index.as_str()));
            p
        }
        Pattern::AbsoluteYearly { month, day: d } => {
            let mut p = base("absoluteYearly");
            p["month"] = json!(month);
            p["dayOfMonth"] = json!(d);
            p
        }
        Pattern::RelativeYearly {
            month,
            weekday,
            index,
        } => {
            let mut p = base("relativeYearly");
            p["month"] = json!(month);
            p["daysOfWeek"] = json!([day(weekday)]);
            p["index"] = json!(lower_first(index.as_str()));
            p
        }
    };
    if let Some(o) = p.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let (ty, end, count) = match r.end {
        RangeEnd::NoEnd => ("noEnd", "0001-01-01".to_string(), 0),
        RangeEnd::EndDate(d) => ("endDate", d.to_string(), 0),
        RangeEnd::Count(n) => ("numbered", "0001-01-01".to_string(), n),
    };
    json!({"pattern": p, "range": {"type": ty, "startDate": r.start.to_string(),
        "endDate": end, "numberOfOccurrences": count,
        "recurrenceTimeZone": zone.unwrap_or("UTC")}})
}

fn read_attendees(v: &Value, e: &mut CalendarEvent) -> Result<(), BodyError> {
    e.required_attendees.clear();
    e.optional_attendees.clear();
    let list = match v {
        Value::Null => return Ok(()),
        Value::Array(l) => l,
        _ => return Err(bad("RequestBodyRead", "attendees must be a collection.")),
    };
    for a in list {
        let o = object(a, "attendee")?;
        check_members(
            o,
            "attendee",
            &["emailAddress", "type"],
            &["status", "proposedNewTime"],
            &[],
        )?;
        let ea = object(
            o.get("emailAddress").unwrap_or(&Value::Null),
            "emailAddress",
        )?;
        check_members(ea, "emailAddress", &["name", "address"], &[], &[])?;
        let email = ea
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if email.is_empty() {
            return Err(bad(
                "ErrorInvalidRecipients",
                "An attendee needs an emailAddress.address.",
            ));
        }
        let attendee = Attendee {
            mailbox: MailboxAddress {
                name: ea.get("name").and_then(Value::as_str).map(str::to_string),
                email,
            },
            response: None,
        };
        let ty = o
            .get("type")
            .map(|t| enum_in(t, "type", |s| Some(s.to_string())))
            .transpose()?
            .unwrap_or_else(|| "required".into());
        match ty.as_str() {
            "required" => e.required_attendees.push(attendee),
            "optional" | "resource" => e.optional_attendees.push(attendee),
            other => {
                return Err(bad(
                    "RequestBodyRead",
                    format!("'{other}' is not an attendeeType."),
                ));
            }
        }
    }
    Ok(())
}

/// Applies an event body (POST onto a new event, PATCH onto the stored one). Returns the
/// `transactionId` it carried.
pub fn apply_event(body: &Value, e: &mut CalendarEvent) -> Result<Option<String>, BodyError> {
    let o = object(body, "event")?;
    check_members(o, "event", EVENT_MODELLED, EVENT_IGNORED, EVENT_UNMODELLED)?;
    let mut transaction = None;
    for (k, v) in o {
        match k.as_str() {
            "subject" => e.subject = opt_string(v, k)?,
            "body" => {
                e.body = if v.is_null() {
                    None
                } else {
                    let b = object(v, "itemBody")?;
                    check_members(b, "itemBody", &["contentType", "content"], &[], &[])?;
                    if let Some(t) = b.get("contentType") {
                        enum_in(t, "contentType", |s| {
                            matches!(s, "text" | "html").then_some(())
                        })?;
                    }
                    b.get("content")
                        .map(|c| opt_string(c, "content"))
                        .transpose()?
                        .flatten()
                }
            }
            "start" => {
                let (t, z) = read_time(v, "start")?;
                e.start = t;
                e.start_time_zone = Some(z);
            }
            "end" => {
                let (t, z) = read_time(v, "end")?;
                e.end = t;
                e.end_time_zone = Some(z);
            }
            "isAllDay" => e.is_all_day = v.as_bool().unwrap_or(false),
            "location" => {
                e.location = if v.is_null() {
                    None
                } else {
                    let l = object(v, "location")?;
                    check_members(
                        l,
                        "location",
                        &["displayName"],
                        &["locationType", "uniqueIdType", "uniqueId"],
                        &[
                            "address",
                            "coordinates",
                            "locationEmailAddress",
                            "locationUri",
                        ],
                    )?;
                    l.get("displayName")
                        .map(|d| opt_string(d, "displayName"))
                        .transpose()?
                        .flatten()
                }
            }
            "showAs" => {
                e.free_busy = Some(enum_in(v, k, |s| match s {
                    "free" => Some(FreeBusy::Free),
                    "tentative" => Some(FreeBusy::Tentative),
                    "busy" => Some(FreeBusy::Busy),
                    "oof" => Some(FreeBusy::OOF),
                    "workingelsewhere" => Some(FreeBusy::WorkingElsewhere),
                    "unknown" => Some(FreeBusy::NoData),
                    _ => None,
                })?)
            }
            "sensitivity" => {
                e.sensitivity = Some(enum_in(v, k, |s| Sensitivity::parse(&capitalise(s)))?)
            }
            "attendees" => read_attendees(v, e)?,
            "recurrence" => e.recurrence = read_recurrence(v)?,
            "categories" => e.categories = string_list(v, k)?,
            "transactionId" => transaction = opt_string(v, k)?,
            "singleValueExtendedProperties" => read_extended(v, &mut e.extended)?,
            _ => {}
        }
    }
    if e.end < e.start {
        return Err(bad(
            "ErrorInvalidRequest",
            "The event's end is before its start.",
        ));
    }
    if e.is_all_day {
        let zone = e.start_time_zone.as_deref().and_then(zone).map(|z| z.0);
        let tz = zone.unwrap_or(chrono_tz::UTC);
        let midnight = |t: &DateTime<Utc>| t.with_timezone(&tz).time() == chrono::NaiveTime::MIN;
        if !midnight(&e.start) || !midnight(&e.end) {
            return Err(bad(
                "ErrorInvalidRequest",
                "An all-day event's start and end must be midnights (isAllDay).",
            ));
        }
    }
    Ok(transaction)
}

/// What the store keeps beside an event; `id` and `master_id` as the answer names them.
pub struct EventStamp<'a> {
    pub id: &'a str,
    pub change_key: &'a str,
    pub master_id: Option<&'a str>,
    pub mailbox: &'a str,
    pub transaction_id: Option<&'a str>,
}

fn attendee(a: &Attendee, ty: &str) -> Value {
    json!({"type": ty,
        "emailAddress": {"name": a.mailbox.name.as_deref().unwrap_or(&a.mailbox.email), "address": a.mailbox.email},
        "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}})
}

pub fn write_event(e: &CalendarEvent, stamp: &EventStamp<'_>, view: &View) -> Value {
    let ty = match e.item_type {
        Some(CalendarItemType::RecurringMaster) => "seriesMaster",
        Some(CalendarItemType::Occurrence) => "occurrence",
        Some(CalendarItemType::Exception) => "exception",
        _ if e.recurrence.is_some() => "seriesMaster",
        _ => "singleInstance",
    };
    let show_as = match e.free_busy {
        Some(FreeBusy::Free) => "free",
        Some(FreeBusy::Tentative) => "tentative",
        Some(FreeBusy::OOF) => "oof",
        Some(FreeBusy::WorkingElsewhere) => "workingElsewhere",
        Some(FreeBusy::NoData) => "unknown",
        Some(FreeBusy::Busy) | None => "busy",
    };
    let organizer = e.organizer.clone().unwrap_or(MailboxAddress {
        name: None,
        email: stamp.mailbox.to_string(),
    });
    let mut attendees: Vec<Value> = e
        .required_attendees
        .iter()
        .map(|a| attendee(a, "required"))
        .collect();
    attendees.extend(e.optional_attendees.iter().map(|a| attendee(a, "optional")));
    let mut out = json!({
        "@odata.etag": etag(stamp.change_key),
        "id": stamp.id,
        "changeKey": stamp.change_key,
        "lastModifiedDateTime": e.last_modified.map(|t| fmt_offset(&t)),
        "categories": e.categories,
        "subject": e.subject.as_deref().unwrap_or(""),
        "body": {"contentType": "text", "content": e.body.as_deref().unwrap_or("")},
        "start": write_time(&e.start, view),
        "end": write_time(&e.end, view),
        "originalStartTimeZone": e.start_time_zone.as_deref().unwrap_or("UTC"),
        "originalEndTimeZone": e.end_time_zone.as_deref().unwrap_or("UTC"),
        "isAllDay": e.is_all_day,
        "isCancelled": false,
        "isOrganizer": organizer.email.eq_ignore_ascii_case(stamp.mailbox),
        "location": {"displayName": e.location.as_deref().unwrap_or(""), "locationType": "default",
            "uniqueIdType": "unknown"},
        "showAs": show_as,
        "sensitivity": lower_first(e.sensitivity.unwrap_or(Sensitivity::Normal).as_str()),
        "type": ty,
        "seriesMasterId": stamp.master_id,
        "originalStart": e.original_start.map(|t| fmt_offset(&t)),
        "iCalUId": e.uid,
        "organizer": {"emailAddress": {"name": organizer.name.as_deref().unwrap_or(&organizer.email),
            "address": organizer.email}},
        "attendees": attendees,
        "recurrence": e.recurrence.as_ref().map(|r| write_recurrence(r, e.start_time_zone.as_deref())),
        "transactionId": stamp.transaction_id,
    });
    if let Some(o) = out.as_object_mut() {
        if e.original_start.is_none() {
            o.remove("originalStart");
        }
        if let Some(wanted) = &view.expand {
            o.insert(
                "singleValueExtendedProperties".into(),
                write_extended(&e.extended, wanted),
            );
        }
    }
    match out {
        Value::Object(o) => apply_select(o, view),
        v => v,
    }
}

/// Whether two events are the same request (a retried POST with one transactionId).
pub fn same_event(a: &CalendarEvent, b: &CalendarEvent) -> bool {
    a.subject == b.subject
        && a.start == b.start
        && a.end == b.end
        && a.is_all_day == b.is_all_day
        && a.recurrence == b.recurrence
        && a.body == b.body
        && a.location == b.location
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_contact_member_is_refused() {
        let mut c = Contact::default();
        let err = apply_contact(&json!({"givenNmae": "Ann"}), &mut c).unwrap_err();
        assert_eq!(err.0, "RequestBodyRead");
        assert!(err.1.contains("'givenNmae' does not exist"), "{}", err.1);
    }

    #[test]
    fn extended_property_ids_name_public_strings() {
        let id = extended_id("tether.SalesforceId");
        assert_eq!(extended_name(&id).unwrap(), "tether.SalesforceId");
        assert!(extended_name("String {11111111-0000-0000-C000-000000000046} Name x").is_err());
    }
}
