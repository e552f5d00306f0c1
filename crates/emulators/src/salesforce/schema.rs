//! The emulator's objects. Contact, Event and Lead follow describe results recorded from a real
//! org; Account, User, Profile, EventRelation and UserRecordAccess are reduced to the fields a sync touches, in
//! the same describe shape.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const CONTACT: &str = include_str!("describe/describe_Contact.json");
const EVENT: &str = include_str!("describe/describe_Event.json");
const LEAD: &str = include_str!("describe/describe_Lead.json");

#[derive(Debug, Clone)]
pub struct FieldMeta {
    pub name: String,
    pub label: String,
    pub kind: String,
    pub length: u64,
    pub createable: bool,
    pub updateable: bool,
    pub nillable: bool,
    pub defaulted_on_create: bool,
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    /// No two records may hold the same value (case-insensitive unless `caseSensitive`).
    pub unique: bool,
    pub case_sensitive: bool,
}

impl FieldMeta {
    /// Must be given on create: the platform has no default and null is not allowed.
    pub fn required_on_create(&self) -> bool {
        self.createable && !self.nillable && !self.defaulted_on_create && self.kind != "boolean"
    }
    pub fn is_text(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "string"
                | "textarea"
                | "email"
                | "phone"
                | "url"
                | "picklist"
                | "multipicklist"
                | "combobox"
                | "id"
                | "reference"
        )
    }
}

#[derive(Debug)]
pub struct ObjectSchema {
    pub name: String,
    pub key_prefix: String,
    pub fields: Vec<FieldMeta>,
    by_lower: BTreeMap<String, usize>,
    /// The describe body served by `sobjects/X/describe` (URLs carry `vxx.0`).
    pub describe: Value,
}

impl ObjectSchema {
    fn from_describe(describe: Value) -> Option<ObjectSchema> {
        let name = describe.get("name")?.as_str()?.to_string();
        // UserRecordAccess has none (null).
        let key_prefix = match describe.get("keyPrefix")? {
            Value::Null => String::new(),
            v => v.as_str()?.to_string(),
        };
        let mut fields = Vec::new();
        for f in describe.get("fields")?.as_array()? {
            let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
            let b = |k: &str| f.get(k).and_then(Value::as_bool).unwrap_or(false);
            fields.push(FieldMeta {
                name: s("name")?,
                label: s("label").unwrap_or_default(),
                kind: s("type")?,
                length: f.get("length").and_then(Value::as_u64).unwrap_or(0),
                createable: b("createable"),
                updateable: b("updateable"),
                nillable: b("nillable"),
                defaulted_on_create: b("defaultedOnCreate"),
                reference_to: f
                    .get("referenceTo")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                relationship_name: s("relationshipName"),
                unique: b("unique"),
                case_sensitive: b("caseSensitive"),
            });
        }
        let by_lower = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        Some(ObjectSchema {
            name,
            key_prefix,
            fields,
            by_lower,
            describe,
        })
    }

    /// Field names are case-insensitive in Salesforce.
    pub fn field(&self, name: &str) -> Option<&FieldMeta> {
        self.by_lower
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.fields[i])
    }

    pub fn relationship(&self, rel: &str) -> Option<&FieldMeta> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(rel))
        })
    }
}

/// (name, type, length, createable, updateable, nillable, defaultedOnCreate, referenceTo,
/// relationshipName)
type Spec = (
    &'static str,
    &'static str,
    u64,
    bool,
    bool,
    bool,
    bool,
    &'static [&'static str],
    Option<&'static str>,
);

const SYSTEM: [Spec; 6] = [
    ("Id", "id", 18, false, false, false, true, &[], None),
    (
        "IsDeleted",
        "boolean",
        0,
        false,
        false,
        false,
        true,
        &[],
        None,
    ),
    (
        "CreatedDate",
        "datetime",
        0,
        false,
        false,
        false,
        true,
        &[],
        None,
    ),
    (
        "CreatedById",
        "reference",
        18,
        false,
        false,
        false,
        true,
        &["User"],
        Some("CreatedBy"),
    ),
    (
        "LastModifiedDate",
        "datetime",
        0,
        false,
        false,
        false,
        true,
        &[],
        None,
    ),
    (
        "SystemModstamp",
        "datetime",
        0,
        false,
        false,
        false,
        true,
        &[],
        None,
    ),
];

fn synth(name: &str, prefix: &str, label_plural: &str, own: &[Spec]) -> Value {
    let fields: Vec<Value> = SYSTEM
        .iter()
        .chain(own.iter())
        .map(|(n, t, len, c, u, nil, d, refs, rel)| {
            json!({
                "name": n, "label": n, "type": t, "length": len, "createable": c,
                "updateable": u, "nillable": nil, "defaultedOnCreate": d,
                "referenceTo": refs, "relationshipName": rel, "custom": false,
                "filterable": true, "sortable": t != &"textarea",
            })
        })
        .collect();
    json!({
        "name": name, "label": name, "labelPlural": label_plural, "keyPrefix": prefix,
        "createable": true, "updateable": true, "deletable": true, "queryable": true,
        "retrieveable": true, "replicateable": true, "custom": false, "fields": fields,
        "urls": {
            "sobject": format!("/services/data/vxx.0/sobjects/{name}"),
            "describe": format!("/services/data/vxx.0/sobjects/{name}/describe"),
            "rowTemplate": format!("/services/data/vxx.0/sobjects/{name}/{{ID}}"),
        },
    })
}

/// The custom field an admin creates when setting tether up (see the setup guide): a text
/// External ID, unique, 64 characters, on Contact and Event. tether stores each create's
/// journal marker in it, so a create whose answer was lost can be found again. It is not in
/// the recorded describe files (they come from an org without tether); the emulated org
/// behaves as one where the setup step was done.
pub const SYNC_KEY_FIELD: &str = "Tether_Sync_Key__c";

fn add_sync_key_field(describe: &mut Value) {
    let field = json!({
        "name": SYNC_KEY_FIELD, "label": "Tether Sync Key", "type": "string", "length": 64,
        "byteLength": 192, "createable": true, "updateable": true, "nillable": true,
        "defaultedOnCreate": false, "custom": true, "externalId": true, "unique": true,
        "caseSensitive": false, "idLookup": true, "filterable": true, "sortable": true,
        "soapType": "xsd:string", "referenceTo": [], "relationshipName": null,
        "picklistValues": [], "calculated": false, "autoNumber": false,
    });
    if let Some(fields) = describe.get_mut("fields").and_then(Value::as_array_mut) {
        fields.push(field);
    }
}

/// With Shared Activities, Event's describe lists the `EventWhoRelations` child relationship
/// (EventWhoRelation: the event's contacts and lead, "available only if you've enabled
/// Shared Activities"); the recorded describe comes from an org without it.
pub fn with_event_who_relations(describe: &mut Value) {
    let child = json!({
        "cascadeDelete": true, "childSObject": "EventWhoRelation", "deprecatedAndHidden": false,
        "field": "EventId", "junctionIdListNames": [], "junctionReferenceTo": [],
        "relationshipName": "EventWhoRelations", "restrictedDelete": false,
    });
    if let Some(children) = describe
        .get_mut("childRelationships")
        .and_then(Value::as_array_mut)
    {
        children.push(child);
    }
}

#[derive(Debug)]
pub struct Catalog {
    pub objects: BTreeMap<String, Arc<ObjectSchema>>,
}

impl Catalog {
    /// The org after tether's setup step (with `Tether_Sync_Key__c`).
    pub fn load() -> Catalog {
        Catalog::load_with(true)
    }

    /// `sync_key_field: false` is an org where the admin has not created the field yet.
    pub fn load_with(sync_key_field: bool) -> Catalog {
        let mut describes: Vec<Value> = [CONTACT, EVENT, LEAD]
            .iter()
            // The recorded files ship inside the crate; a parse failure is a build defect that
            // the schema tests catch, so a bad file is skipped rather than panicking here.
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect();
        for d in describes.iter_mut() {
            if sync_key_field
                && matches!(
                    d.get("name").and_then(Value::as_str),
                    Some("Contact" | "Event")
                )
            {
                add_sync_key_field(d);
            }
        }
        describes.push(synth(
            "Account",
            "001",
            "Accounts",
            &[
                ("Name", "string", 255, true, true, false, false, &[], None),
                (
                    "OwnerId",
                    "reference",
                    18,
                    true,
                    true,
                    false,
                    true,
                    &["User"],
                    Some("Owner"),
                ),
            ],
        ));
        describes.push(synth(
            "Profile",
            "00e",
            "Profiles",
            &[("Name", "string", 255, false, false, false, false, &[], None)],
        ));
        describes.push(synth(
            "User",
            "005",
            "Users",
            &[
                (
                    "Username",
                    "string",
                    80,
                    true,
                    true,
                    false,
                    false,
                    &[],
                    None,
                ),
                ("Email", "email", 128, true, true, false, false, &[], None),
                (
                    "FirstName",
                    "string",
                    40,
                    true,
                    true,
                    true,
                    false,
                    &[],
                    None,
                ),
                (
                    "LastName",
                    "string",
                    80,
                    true,
                    true,
                    false,
                    false,
                    &[],
                    None,
                ),
                ("Name", "string", 121, false, false, false, false, &[], None),
                ("IsActive", "boolean", 0, true, true, false, true, &[], None),
                (
                    "TimeZoneSidKey",
                    "picklist",
                    40,
                    true,
                    true,
                    false,
                    false,
                    &[],
                    None,
                ),
                (
                    "ProfileId",
                    "reference",
                    18,
                    true,
                    true,
                    false,
                    false,
                    &["Profile"],
                    Some("Profile"),
                ),
            ],
        ));
        describes.push(synth(
            "EventRelation",
            "0RE",
            "Event Relations",
            &[
                (
                    "EventId",
                    "reference",
                    18,
                    true,
                    false,
                    false,
                    false,
                    &["Event"],
                    Some("Event"),
                ),
                (
                    "RelationId",
                    "reference",
                    18,
                    true,
                    false,
                    false,
                    false,
                    &["Contact", "Lead", "User", "Account"],
                    Some("Relation"),
                ),
                (
                    "IsInvitee",
                    "boolean",
                    0,
                    true,
                    true,
                    false,
                    true,
                    &[],
                    None,
                ),
                ("IsParent", "boolean", 0, true, true, false, true, &[], None),
                ("IsWhat", "boolean", 0, false, false, false, true, &[], None),
                ("Status", "picklist", 40, true, true, true, false, &[], None),
            ],
        ));
        // UserRecordAccess: a user's access to records, queried with the user and the records
        // named in the filter (see `sharing`). Read-only and without a key prefix.
        let mut access = synth(
            "UserRecordAccess",
            "",
            "User Record Access",
            &[
                (
                    "UserId",
                    "reference",
                    18,
                    false,
                    false,
                    false,
                    false,
                    &["User"],
                    Some("User"),
                ),
                (
                    "RecordId",
                    "reference",
                    18,
                    false,
                    false,
                    false,
                    false,
                    &[],
                    None,
                ),
                (
                    "HasReadAccess",
                    "boolean",
                    0,
                    false,
                    false,
                    false,
                    false,
                    &[],
                    None,
                ),
                (
                    "HasEditAccess",
                    "boolean",
                    0,
                    false,
                    false,
                    false,
                    false,
                    &[],
                    None,
                ),
                (
                    "HasDeleteAccess",
                    "boolean",
                    0,
                    false,
                    false,
                    false,
                    false,
                    &[],
                    None,
                ),
                (
                    "MaxAccessLevel",
                    "picklist",
                    40,
                    false,
                    false,
                    true,
                    false,
                    &[],
                    None,
                ),
            ],
        );
        access["keyPrefix"] = Value::Null;
        for flag in ["createable", "updateable", "deletable", "replicateable"] {
            access[flag] = json!(false);
        }
        describes.push(access);
        let objects = describes
            .into_iter()
            .filter_map(ObjectSchema::from_describe)
            .map(|o| (o.name.to_ascii_lowercase(), Arc::new(o)))
            .collect();
        Catalog { objects }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ObjectSchema>> {
        self.objects.get(&name.to_ascii_lowercase())
    }

    pub fn by_prefix(&self, prefix: &str) -> Option<&Arc<ObjectSchema>> {
        self.objects
            .values()
            .find(|o| !o.key_prefix.is_empty() && o.key_prefix == prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_describes_load_with_their_rules() {
        let c = Catalog::load();
        assert_eq!(c.objects.len(), 8);
        let contact = c.get("contact").unwrap();
        assert_eq!(contact.key_prefix, "003");
        assert!(contact.field("lastname").unwrap().required_on_create());
        assert!(!contact.field("CreatedDate").unwrap().createable);
        let event = c.get("Event").unwrap();
        assert_eq!(event.key_prefix, "00U");
        assert_eq!(event.field("Location").unwrap().length, 255);
        assert_eq!(event.field("Description").unwrap().length, 32000);
        assert_eq!(event.relationship("Owner").unwrap().name, "OwnerId");
        let lead = c.get("Lead").unwrap();
        assert_eq!(lead.key_prefix, "00Q");
        assert!(lead.field("Company").unwrap().required_on_create());
        assert_eq!(c.by_prefix("0RE").unwrap().name, "EventRelation");
    }
}
