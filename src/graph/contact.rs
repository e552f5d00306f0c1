//! Graph contacts ↔ the canonical [`Contact`]: the rep's contact mapping names Exchange
//! properties by their EWS names (`GivenName`, `EmailAddress1`, `BusinessFax` …); each is a
//! member of Graph's `contact`, a position in one of its lists (`emailAddresses`,
//! `businessPhones`, `homePhones`), a part of an address, or, for the phones Graph's contact
//! does not declare, a MAPI property by its tag (`String 0x3A24`). A write names only the
//! members the mapping reaches, each taken from the item as it is now and changed where the
//! mapping says, so nothing the mapping does not name is touched, and nothing the answer
//! carried besides declared members (`@odata.etag`, …) is written back.

use super::property;
use crate::model::{Contact, EffectiveMapping, Record};
use chrono::NaiveDate;
use serde_json::{Map, Value, json};

/// Phones Graph's contact has no member for, by MAPI property tag (MS-OXPROPS).
const TAGGED_PHONES: &[(&str, &str)] = &[
    ("OtherTelephone", "String 0x3A1F"),
    ("Pager", "String 0x3A21"),
    ("BusinessFax", "String 0x3A24"),
    ("HomeFax", "String 0x3A25"),
    ("AssistantPhone", "String 0x3A2E"),
];

const ADDRESSES: &[(&str, &str)] = &[
    ("Business", "businessAddress"),
    ("Home", "homeAddress"),
    ("Other", "otherAddress"),
];
const ADDRESS_PARTS: &[(&str, &str)] = &[
    ("Street", "street"),
    ("City", "city"),
    ("State", "state"),
    ("PostalCode", "postalCode"),
    ("CountryOrRegion", "countryOrRegion"),
];

/// Where an Exchange property lives in a Graph contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A string member.
    Member(&'static str),
    /// A position in a list of strings.
    Listed(&'static str, usize),
    /// A position in `emailAddresses`.
    Email(usize),
    /// A part of an address member.
    Address(&'static str, &'static str),
    Birthday,
    /// A MAPI property by tag.
    Tagged(&'static str),
}

fn place(property: &str) -> Option<Place> {
    Some(match property {
        "GivenName" => Place::Member("givenName"),
        "MiddleName" => Place::Member("middleName"),
        "Surname" => Place::Member("surname"),
        "Nickname" => Place::Member("nickName"),
        "DisplayName" => Place::Member("displayName"),
        "CompanyName" => Place::Member("companyName"),
        "JobTitle" => Place::Member("jobTitle"),
        "Department" => Place::Member("department"),
        "AssistantName" => Place::Member("assistantName"),
        "Body" => Place::Member("personalNotes"),
        "MobilePhone" => Place::Member("mobilePhone"),
        "Birthday" => Place::Birthday,
        "EmailAddress1" => Place::Email(0),
        "EmailAddress2" => Place::Email(1),
        "EmailAddress3" => Place::Email(2),
        "BusinessPhone" => Place::Listed("businessPhones", 0),
        "BusinessPhone2" => Place::Listed("businessPhones", 1),
        "HomePhone" => Place::Listed("homePhones", 0),
        "HomePhone2" => Place::Listed("homePhones", 1),
        p => {
            if let Some((_, tag)) = TAGGED_PHONES.iter().find(|(k, _)| *k == p) {
                return Some(Place::Tagged(tag));
            }
            return ADDRESSES.iter().find_map(|(key, member)| {
                let rest = p.strip_prefix(key)?;
                ADDRESS_PARTS
                    .iter()
                    .find(|(part, _)| *part == rest)
                    .map(|(_, m)| Place::Address(member, m))
            });
        }
    })
}

/// The member a place is written through.
fn member_of(place: Place) -> &'static str {
    match place {
        Place::Member(m) | Place::Listed(m, _) | Place::Address(m, _) => m,
        Place::Email(_) => "emailAddresses",
        Place::Birthday => "birthday",
        Place::Tagged(_) => "singleValueExtendedProperties",
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

fn read(item: &Value, place: Place) -> Option<String> {
    match place {
        Place::Member(m) => text(item.get(m)),
        Place::Listed(m, i) => text(item.get(m).and_then(|l| l.get(i))),
        Place::Email(i) => text(
            item.get("emailAddresses")
                .and_then(|l| l.get(i))
                .and_then(|e| e.get("address")),
        ),
        Place::Address(m, part) => text(item.get(m).and_then(|a| a.get(part))),
        // A DateTimeOffset; its date is the birthday.
        Place::Birthday => text(item.get("birthday")).and_then(|b| b.get(..10).map(str::to_string)),
        Place::Tagged(tag) => super::property::value(item, tag)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string),
    }
}

/// `$select` for reads: every member a mapping can reach, and `changeKey`.
pub fn select() -> Vec<&'static str> {
    let mut out = vec!["changeKey"];
    for m in [
        "givenName",
        "middleName",
        "surname",
        "nickName",
        "displayName",
        "companyName",
        "jobTitle",
        "department",
        "assistantName",
        "personalNotes",
        "mobilePhone",
        "birthday",
        "emailAddresses",
        "businessPhones",
        "homePhones",
        "businessAddress",
        "homeAddress",
        "otherAddress",
    ] {
        out.push(m);
    }
    out
}

/// `$expand` for reads: tether's Salesforce id and the tagged phones.
pub fn expand() -> String {
    property::expand_with(&TAGGED_PHONES.iter().map(|(_, t)| *t).collect::<Vec<_>>())
}

/// The canonical contact of a Graph contact read with [`expand`].
pub fn to_record(item: &Value, mapping: &EffectiveMapping) -> Record {
    let mut out = Contact::default();
    for f in &mapping.fields {
        if let Some(v) = place(&f.exchange).and_then(|p| read(item, p)) {
            out.set(&f.salesforce, v);
        }
    }
    Record::Contact(out)
}

fn set_text(slot: &mut Value, value: Option<&str>) {
    *slot = value.map_or(Value::Null, |v| Value::String(v.to_string()));
}

/// Sets `value` at `place` in `body`, whose member for it already holds the item's value.
fn write(body: &mut Map<String, Value>, place: Place, value: Option<&str>) {
    let slot = body.entry(member_of(place)).or_insert(Value::Null);
    match place {
        Place::Member(_) => set_text(slot, value),
        Place::Birthday => {
            let date = value.and_then(|v| NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok());
            // Outlook keeps a birthday at 11:59 so it shows on its day in every zone.
            *slot = date.map_or(Value::Null, |d| json!(format!("{d}T11:59:00Z")));
        }
        Place::Listed(_, i) | Place::Email(i) => {
            let mut list: Vec<Value> = slot.as_array().cloned().unwrap_or_default();
            let empty = || match place {
                Place::Email(_) => json!({"address": ""}),
                _ => json!(""),
            };
            while list.len() <= i {
                list.push(empty());
            }
            list[i] = match (place, value) {
                (Place::Email(_), Some(v)) => json!({"name": v, "address": v}),
                (_, Some(v)) => json!(v),
                (_, None) => empty(),
            };
            // Graph keeps lists without gaps: empty entries go (later ones move up).
            list.retain(|e| match e {
                Value::String(s) => !s.is_empty(),
                e => e
                    .get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| !a.is_empty()),
            });
            *slot = Value::Array(list);
        }
        Place::Address(_, part) => {
            if !slot.is_object() {
                *slot = json!({});
            }
            set_text(&mut slot[part], value);
        }
        Place::Tagged(tag) => {
            let mut list: Vec<Value> = slot.as_array().cloned().unwrap_or_default();
            list.retain(|p| p.get("id").and_then(Value::as_str) != Some(tag));
            // Graph cannot remove an extended property in a PATCH: empty clears it.
            list.push(json!({"id": tag, "value": value.unwrap_or("")}));
            *slot = Value::Array(list);
        }
    }
}

/// Only the declared members of what the item holds now (the start of a write).
fn declared(current: &Value, member: &str) -> Value {
    let Some(v) = current.get(member) else {
        return Value::Null;
    };
    match member {
        "emailAddresses" => Value::Array(
            v.as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    json!({"name": e.get("name").cloned().unwrap_or(Value::Null),
                                "address": e.get("address").cloned().unwrap_or(Value::Null)})
                })
                .collect(),
        ),
        "businessAddress" | "homeAddress" | "otherAddress" => {
            let mut a = Map::new();
            for (_, part) in ADDRESS_PARTS {
                a.insert(
                    part.to_string(),
                    v.get(part).cloned().unwrap_or(Value::Null),
                );
            }
            Value::Object(a)
        }
        // Tagged properties are written one by one, not copied.
        "singleValueExtendedProperties" => json!([]),
        _ => v.clone(),
    }
}

/// The body of a create (`current` None) or of an update over the item as it is now: every
/// member the mapping reaches, and the display name derived as Outlook derives it.
pub fn body(c: &Contact, mapping: &EffectiveMapping, current: Option<&Value>) -> Value {
    let empty = json!({});
    let current = current.unwrap_or(&empty);
    let mut body = Map::new();
    for f in &mapping.fields {
        let Some(place) = place(&f.exchange) else {
            continue;
        };
        let member = member_of(place);
        if !body.contains_key(member) {
            body.insert(member.to_string(), declared(current, member));
        }
        let value = Some(c.get(&f.salesforce)).filter(|v| !v.trim().is_empty());
        write(&mut body, place, value);
    }
    let name = |m: &str| {
        body.get(m)
            .or_else(|| current.get(m))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (first, last) = (name("givenName"), name("surname"));
    let display = format!("{first} {last}").trim().to_string();
    if !display.is_empty() {
        body.insert("displayName".into(), json!(display));
        body.insert(
            "fileAs".into(),
            json!(match (first.is_empty(), last.is_empty()) {
                (false, false) => format!("{last}, {first}"),
                (true, _) => last,
                (_, true) => first,
            }),
        );
    }
    if body
        .get("singleValueExtendedProperties")
        .is_some_and(|l| l.as_array().is_some_and(Vec::is_empty))
    {
        body.remove("singleValueExtendedProperties");
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKind;
    use crate::model::catalog::{DEFAULT_CONTACT_MAPPINGS, EXCHANGE_CONTACT};

    #[test]
    fn every_exchange_contact_property_has_a_place_in_a_graph_contact() {
        for p in EXCHANGE_CONTACT {
            assert!(place(p.name).is_some(), "{}", p.name);
        }
    }

    #[test]
    fn the_default_mapping_round_trips_and_an_update_keeps_what_it_does_not_map() {
        let mapping = EffectiveMapping::defaults(ObjectKind::Contact);
        let mut c = Contact::default();
        for (i, m) in DEFAULT_CONTACT_MAPPINGS.iter().enumerate() {
            let v = match m.salesforce {
                "Birthdate" => "1980-02-29".to_string(),
                "Email" => "ana@contoso.com".to_string(),
                _ => format!("v{i}"),
            };
            c.set(m.salesforce, v);
        }
        let created = body(&c, &mapping, None);
        assert_eq!(created["birthday"], "1980-02-29T11:59:00Z");
        assert_eq!(
            created["displayName"],
            created["givenName"]
                .as_str()
                .map(|g| format!("{g} {}", created["surname"].as_str().unwrap()))
                .unwrap()
        );
        assert!(created.get("@odata.etag").is_none());
        // The item as Graph answers it: the created body plus what the mapping leaves alone.
        let mut item = created.clone();
        item["@odata.etag"] = json!("W/\"CQAAAB\"");
        item["emailAddresses"] = json!([{"name": "a", "address": "ana@contoso.com"},
                                         {"name": "b", "address": "second@contoso.com"}]);
        item["businessPhones"] = json!([c.get("Phone"), "+1 555 0100"]);
        item["singleValueExtendedProperties"] = created["singleValueExtendedProperties"].clone();
        assert_eq!(to_record(&item, &mapping), Record::Contact(c.clone()));
        let mut changed = c.clone();
        changed.set("Email", "new@contoso.com");
        let update = body(&changed, &mapping, Some(&item));
        assert_eq!(
            update["emailAddresses"],
            json!([{"name": "new@contoso.com", "address": "new@contoso.com"},
                   {"name": "b", "address": "second@contoso.com"}])
        );
        assert_eq!(update["businessPhones"][1], "+1 555 0100");
        assert!(update.get("@odata.etag").is_none(), "{update}");
    }
}
