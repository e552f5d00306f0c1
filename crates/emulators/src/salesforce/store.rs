//! The emulated org's data: records kept as the REST API shows them, and the write rules the
//! real service enforces (describe-driven field checks, Event timing, EventRelation limits,
//! converted Leads, system fields).

use super::index::QueryIndex;
use super::schema::{Catalog, FieldMeta, ObjectSchema};
use super::soql::{Filter, Query, Resolver, format_datetime, parse_datetime};
use crate::salesforce::ids;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A per-record error as sObject Collections reports it (`statusCode`, `message`, `fields`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
    /// DUPLICATES_DETECTED carries the duplicate rule's verdict (`duplicateResult`).
    pub duplicate_result: Option<Value>,
}

impl RecError {
    pub fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> RecError {
        RecError {
            status_code: code.into(),
            message: message.into(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            duplicate_result: None,
        }
    }
    pub fn collection_json(&self) -> Value {
        let mut v =
            json!({"statusCode": self.status_code, "message": self.message, "fields": self.fields});
        if let Some(d) = &self.duplicate_result {
            v["duplicateResult"] = d.clone();
        }
        v
    }
    pub fn request_json(&self) -> Value {
        let mut v =
            json!({"message": self.message, "errorCode": self.status_code, "fields": self.fields});
        if let Some(d) = &self.duplicate_result {
            v["duplicateResult"] = d.clone();
        }
        v
    }
}

/// An active duplicate rule with the Block action, whose matching rule compares one field
/// exactly (case-insensitive), e.g. Contact Email.
#[derive(Debug, Clone)]
pub struct DuplicateRule {
    pub object: String,
    pub field: String,
    /// Developer names, as the response reports them.
    pub rule: String,
    pub matching_rule: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rec {
    pub fields: Map<String, Value>,
    pub deleted: Option<DateTime<Utc>>,
}

/// A rule that makes writes of matching records fail (fault injection).
#[derive(Debug, Clone)]
pub struct RecordFault {
    pub object: String,
    pub field: String,
    pub value: Value,
    pub error: RecError,
    /// How many more times it fires; None: always.
    pub remaining: Option<u32>,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IdGen {
    next: u64,
}

impl IdGen {
    pub fn new(seed: u64) -> IdGen {
        IdGen { next: seed }
    }
    /// prefix + pod "0g5" + a 9-digit base-62 counter (so ids sort in creation order), then the
    /// case-safe suffix.
    pub fn next(&mut self, prefix: &str) -> String {
        let mut n = self.next;
        self.next += 1;
        let mut digits = [b'0'; 9];
        for d in digits.iter_mut().rev() {
            *d = BASE62[(n % 62) as usize];
            n /= 62;
        }
        let id15 = format!("{prefix}0g5{}", String::from_utf8_lossy(&digits));
        ids::to_18(&id15).unwrap_or(id15)
    }
}

pub struct Store {
    pub catalog: Catalog,
    /// object (lower-case name) → id → record; ids sort in creation order. A record put
    /// here other than by `write` must be passed to `index_record` (or `reindex` called).
    pub tables: HashMap<String, BTreeMap<String, Rec>>,
    pub ids: IdGen,
    pub faults: Vec<RecordFault>,
    pub duplicate_rules: Vec<DuplicateRule>,
    /// Deleted records before this are purged: getDeleted cannot report them.
    pub deleted_purged_before: Option<DateTime<Utc>>,
    /// Shared Activities (Setup → Activity Settings): events relate to up to 50 contacts
    /// (EventRelation.IsParent) and Event's describe lists `EventWhoRelations`. On by
    /// default; `EmulatorHandle::set_shared_activities` switches it off.
    pub shared_activities: bool,
    pub sharing: super::sharing::Sharing,
    /// Ids by (object, field) and value, for the checks that would otherwise scan a whole
    /// table on every write (unique fields; an event's relations). Entries are only ever
    /// added: each lookup checks its candidates against the records as they are now, so an
    /// entry that a later write, delete or rollback made stale is merely skipped.
    index: HashMap<(String, String), HashMap<String, BTreeSet<String>>>,
    /// The platform's standard indexes, for queries (see `index`).
    query_index: QueryIndex,
}

/// EventRelation.EventId, indexed: an event's relations are read on every relation write.
const EVENT_ID: &str = "EventId";

impl Resolver for Store {
    fn lookup(&self, id: &str) -> Option<(Arc<ObjectSchema>, &Map<String, Value>)> {
        let schema = self.catalog.by_prefix(ids::key_prefix(id)?)?.clone();
        let rec = self
            .tables
            .get(&schema.name.to_ascii_lowercase())?
            .get(&ids::to_18(id)?)?;
        Some((schema, &rec.fields))
    }
}

pub enum WriteKind<'a> {
    Create,
    Update(&'a str),
}

impl Store {
    pub fn new(seed: u64) -> Store {
        Store {
            catalog: Catalog::load(),
            tables: HashMap::new(),
            ids: IdGen::new(seed),
            faults: Vec::new(),
            duplicate_rules: Vec::new(),
            deleted_purged_before: None,
            shared_activities: true,
            sharing: Default::default(),
            index: HashMap::new(),
            query_index: QueryIndex::default(),
        }
    }

    /// The indexed fields of a table, each with whether its values compare case-sensitively.
    fn indexed_fields(&self, table_key: &str) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = self
            .catalog
            .get(table_key)
            .map(|s| {
                s.fields
                    .iter()
                    .filter(|m| m.unique)
                    .map(|m| (m.name.clone(), m.case_sensitive))
                    .collect()
            })
            .unwrap_or_default();
        if table_key == "eventrelation" {
            out.push((EVENT_ID.into(), true));
        }
        out
    }

    fn index_key(value: &str, case_sensitive: bool) -> String {
        if case_sensitive {
            value.to_string()
        } else {
            value.to_ascii_lowercase()
        }
    }

    /// Adds a record's indexed values (see `index` and `query_index`).
    pub fn index_record(&mut self, table_key: &str, fields: &Map<String, Value>) {
        let Some(id) = fields.get("Id").and_then(Value::as_str) else {
            return;
        };
        if let Some(schema) = self.catalog.get(table_key) {
            self.query_index.add(schema, fields);
        }
        for (field, case_sensitive) in self.indexed_fields(table_key) {
            if let Some(v) = fields.get(&field).and_then(Value::as_str) {
                self.index
                    .entry((table_key.to_string(), field))
                    .or_default()
                    .entry(Self::index_key(v, case_sensitive))
                    .or_default()
                    .insert(id.to_string());
            }
        }
    }

    /// Rebuilds the index from the tables (after they were replaced wholesale).
    pub fn reindex(&mut self) {
        self.index.clear();
        self.query_index.clear();
        let records: Vec<(String, Map<String, Value>)> = self
            .tables
            .iter()
            .flat_map(|(key, t)| t.values().map(|r| (key.clone(), r.fields.clone())))
            .collect();
        for (key, fields) in records {
            self.index_record(&key, &fields);
        }
    }

    /// Live records of `table_key` whose `field` holds `value` (compared as the field
    /// compares); `field` must be indexed.
    fn indexed<'a>(
        &'a self,
        table_key: &str,
        field: &'a str,
        value: &'a str,
        case_sensitive: bool,
    ) -> impl Iterator<Item = &'a Rec> + 'a {
        let table = self.tables.get(table_key);
        self.index
            .get(&(table_key.to_string(), field.to_string()))
            .and_then(|by_value| by_value.get(&Self::index_key(value, case_sensitive)))
            .into_iter()
            .flatten()
            .filter_map(move |id| table?.get(id))
            .filter(move |r| {
                r.deleted.is_none()
                    && r.fields
                        .get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|v| {
                            if case_sensitive {
                                v == value
                            } else {
                                v.eq_ignore_ascii_case(value)
                            }
                        })
            })
    }

    /// Indexes a record again after its fields were changed in place.
    fn reindex_record(&mut self, table_key: &str, id: &str) {
        if let Some(fields) = self
            .tables
            .get(table_key)
            .and_then(|t| t.get(id))
            .map(|r| r.fields.clone())
        {
            self.index_record(table_key, &fields);
        }
    }

    /// The stored rows of a query's object that `filter` (the query's, prepared) selects,
    /// deleted ones too when `all`, in table order: through an index when a conjunct of the
    /// filter tests an indexed field, else by scanning the table.
    pub fn select<'a>(
        &'a self,
        q: &Query,
        filter: Option<&Filter<'_>>,
        all: bool,
    ) -> Vec<&'a Map<String, Value>> {
        let Some(table) = self.table(&q.object.name) else {
            return Vec::new();
        };
        let keep = |r: &&'a Rec| {
            (all || r.deleted.is_none()) && filter.is_none_or(|f| f.matches(&r.fields, self))
        };
        let candidates = q
            .filter
            .as_ref()
            .and_then(|c| self.query_index.candidates(&q.object, c));
        match candidates {
            Some(c) => c
                .ids
                .into_iter()
                .filter_map(|id| table.get(id))
                .filter(keep)
                .map(|r| &r.fields)
                .collect(),
            None => table.values().filter(keep).map(|r| &r.fields).collect(),
        }
    }

    /// The query plan `select` follows, as the REST API's `explain` reports one: the
    /// index it reads (its field and how many live records it names) or a table scan.
    pub fn plan(&self, q: &Query) -> Value {
        let table = self.table(&q.object.name);
        let live = |r: &Rec| r.deleted.is_none();
        let table_size = table.map_or(0, |t| t.values().filter(|r| live(r)).count());
        let index = q
            .filter
            .as_ref()
            .and_then(|c| self.query_index.candidates(&q.object, c))
            .map(|c| {
                let named = c
                    .ids
                    .iter()
                    .filter(|id| table.and_then(|t| t.get(**id)).is_some_and(live))
                    .count();
                (c.field.to_string(), named)
            });
        let plan = |kind: &str, fields: Vec<String>, cardinality: usize| {
            json!({
                "cardinality": cardinality,
                "fields": fields,
                "leadingOperationType": kind,
                "notes": [],
                "relativeCost": if table_size == 0 { 0.0 } else { cardinality as f64 / table_size as f64 },
                "sobjectCardinality": table_size,
                "sobjectType": q.object.name,
            })
        };
        let scan = plan("TableScan", Vec::new(), table_size);
        let plans = match index {
            Some((field, named)) => vec![plan("Index", vec![field], named), scan],
            None => vec![scan],
        };
        json!({ "plans": plans })
    }

    /// The live relations of an event.
    fn relations_of<'a>(&'a self, event_id: &'a str) -> impl Iterator<Item = &'a Rec> + 'a {
        self.indexed("eventrelation", EVENT_ID, event_id, true)
    }

    pub fn table(&self, object: &str) -> Option<&BTreeMap<String, Rec>> {
        self.tables.get(&object.to_ascii_lowercase())
    }

    /// Finds a record of any type by id (15 or 18 characters).
    pub fn find(&self, id: &str) -> Option<(Arc<ObjectSchema>, &Rec)> {
        let schema = self.catalog.by_prefix(ids::key_prefix(id)?)?.clone();
        let rec = self
            .tables
            .get(&schema.name.to_ascii_lowercase())?
            .get(&ids::to_18(id)?)?;
        Some((schema, rec))
    }

    fn fault_for(&mut self, object: &str, rec: &Map<String, Value>) -> Option<RecError> {
        for f in self.faults.iter_mut() {
            if !f.object.eq_ignore_ascii_case(object) || f.remaining == Some(0) {
                continue;
            }
            if rec.get(&f.field) == Some(&f.value) {
                if let Some(n) = f.remaining.as_mut() {
                    *n -= 1;
                }
                return Some(f.error.clone());
            }
        }
        None
    }

    /// Creates or updates one record as `user_id`, enforcing the platform's rules. Returns the
    /// record id.
    pub fn write(
        &mut self,
        object: &str,
        kind: WriteKind<'_>,
        input: &Map<String, Value>,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<String, RecError> {
        let schema = self.catalog.get(object).cloned().ok_or_else(|| {
            RecError::new("NOT_FOUND", "The requested resource does not exist", &[])
        })?;
        if schema.key_prefix.is_empty() {
            return Err(RecError::new(
                "INVALID_TYPE_FOR_OPERATION",
                format!(
                    "entity type {} does not support this operation",
                    schema.name
                ),
                &[],
            ));
        }
        let table_key = schema.name.to_ascii_lowercase();
        let existing: Option<Rec> = match kind {
            WriteKind::Create => None,
            WriteKind::Update(id) => {
                let Some(id18) = ids::to_18(id).filter(|i| i.starts_with(&schema.key_prefix))
                else {
                    return Err(RecError::new(
                        "MALFORMED_ID",
                        format!("{} ID: id value of incorrect type: {id}", schema.name),
                        &["Id"],
                    ));
                };
                let rec = self
                    .tables
                    .get(&table_key)
                    .and_then(|t| t.get(&id18))
                    .cloned()
                    .ok_or_else(|| {
                        RecError::new(
                            "INVALID_CROSS_REFERENCE_KEY",
                            "invalid cross reference id",
                            &[],
                        )
                    })?;
                if rec.deleted.is_some() {
                    return Err(RecError::new("ENTITY_IS_DELETED", "entity is deleted", &[]));
                }
                if schema.name == "Lead"
                    && rec.fields.get("IsConverted") == Some(&Value::Bool(true))
                {
                    return Err(RecError::new(
                        "CANNOT_UPDATE_CONVERTED_LEAD",
                        "cannot reference converted lead",
                        &[],
                    ));
                }
                Some(rec)
            }
        };
        let creating = existing.is_none();
        let mut fields = existing
            .as_ref()
            .map(|r| r.fields.clone())
            .unwrap_or_default();
        let mut readonly = Vec::new();
        for (key, value) in input {
            if key == "attributes" {
                continue;
            }
            let Some(meta) = schema.field(key) else {
                return Err(RecError::new(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type {}", schema.name),
                    &[],
                ));
            };
            if meta.name == "Id" {
                if creating {
                    return Err(RecError::new(
                        "INVALID_FIELD",
                        "cannot specify Id in an insert call",
                        &["Id"],
                    ));
                }
                continue;
            }
            let allowed = if creating {
                meta.createable
            } else {
                meta.updateable
            };
            if !allowed {
                readonly.push(meta.name.clone());
                continue;
            }
            let v = self.coerce(&schema, meta, value)?;
            fields.insert(meta.name.clone(), v);
        }
        if !readonly.is_empty() {
            // Real responses say "create/update" literally, on inserts and updates alike.
            let refs: Vec<&str> = readonly.iter().map(String::as_str).collect();
            return Err(RecError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    readonly.join(", ")
                ),
                &refs,
            ));
        }
        // Defaults the platform fills on create.
        if creating {
            if schema.name == "EventRelation" {
                // Object Reference: IsInvitee defaults to true (an EventRelation was an
                // invitee before Shared Activities), IsParent to false.
                fields.entry("IsInvitee").or_insert(json!(true));
            }
            for meta in &schema.fields {
                if meta.createable && meta.kind == "boolean" && !fields.contains_key(&meta.name) {
                    fields.insert(meta.name.clone(), Value::Bool(false));
                }
            }
            if schema.field("OwnerId").is_some() && !fields.contains_key("OwnerId") {
                fields.insert("OwnerId".into(), Value::String(user_id.into()));
            }
            match schema.name.as_str() {
                "Event" => {
                    fields.entry("ShowAs").or_insert(json!("Busy"));
                }
                "Lead" => {
                    fields
                        .entry("Status")
                        .or_insert(json!("Open - Not Contacted"));
                }
                "User" => {
                    fields.entry("IsActive").or_insert(json!(true));
                }
                _ => {}
            }
        }
        let missing: Vec<&str> = schema
            .fields
            .iter()
            .filter(|m| m.required_on_create() && fields.get(&m.name).is_none_or(Value::is_null))
            .map(|m| m.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(RecError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
        match schema.name.as_str() {
            "Event" => event_rules(&mut fields, existing.as_ref().map(|r| &r.fields), input)?,
            "EventRelation" if creating => self.relation_rules(&mut fields)?,
            _ => {}
        }
        if let Some(err) = self.fault_for(&schema.name, &fields) {
            return Err(err);
        }
        let own_id = existing
            .as_ref()
            .and_then(|r| r.fields.get("Id"))
            .and_then(Value::as_str);
        if let Some(err) = self.duplicate_of_unique(&schema, &fields, own_id) {
            return Err(err);
        }
        if let Some(err) = self.blocked_as_duplicate(&schema, &fields, own_id) {
            return Err(err);
        }
        // Compound name fields.
        if schema.field("Name").is_some_and(|m| !m.createable) {
            let first = fields
                .get("FirstName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let last = fields.get("LastName").and_then(Value::as_str).unwrap_or("");
            let name = format!("{first} {last}").trim().to_string();
            fields.insert("Name".into(), Value::String(name));
        }
        let ts = Value::String(format_datetime(now));
        let id = match &existing {
            Some(r) => r
                .fields
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            None => {
                let id = self.ids.next(&schema.key_prefix);
                fields.insert("Id".into(), Value::String(id.clone()));
                fields.insert("IsDeleted".into(), Value::Bool(false));
                fields.insert("CreatedDate".into(), ts.clone());
                if schema.field("CreatedById").is_some() {
                    fields.insert("CreatedById".into(), Value::String(user_id.into()));
                }
                id
            }
        };
        fields.insert("LastModifiedDate".into(), ts.clone());
        if schema.field("LastModifiedById").is_some() {
            fields.insert("LastModifiedById".into(), Value::String(user_id.into()));
        }
        fields.insert("SystemModstamp".into(), ts);
        let old_who = existing
            .as_ref()
            .and_then(|r| r.fields.get("WhoId").cloned())
            .unwrap_or(Value::Null);
        let new_who = fields.get("WhoId").cloned().unwrap_or(Value::Null);
        self.index_record(&table_key, &fields);
        self.tables.entry(table_key).or_default().insert(
            id.clone(),
            Rec {
                fields,
                deleted: None,
            },
        );
        if schema.name == "Event" && old_who != new_who && self.shared_activities {
            self.sync_who_relation(&id, &old_who, &new_who, user_id, now);
        }
        if schema.name == "EventRelation"
            && creating
            && let Some(rel) = self.tables.get("eventrelation").and_then(|t| t.get(&id))
        {
            let rel = rel.fields.clone();
            self.first_who_is_primary(&rel, now);
        }
        Ok(id)
    }

    /// A unique field (e.g. an External ID marked unique) already holding this value on
    /// another live record: DUPLICATE_VALUE, as the platform answers.
    /// A blocking duplicate rule's verdict, shaped as the REST API reports it ("Use one of
    /// these records?" with `duplicateResult.matchResults[].matchRecords[].record`).
    fn blocked_as_duplicate(
        &self,
        schema: &ObjectSchema,
        fields: &Map<String, Value>,
        own_id: Option<&str>,
    ) -> Option<RecError> {
        for rule in self
            .duplicate_rules
            .iter()
            .filter(|r| r.object.eq_ignore_ascii_case(&schema.name))
        {
            let Some(value) = fields
                .get(&rule.field)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            let matches: Vec<Value> = self
                .table(&schema.name)
                .into_iter()
                .flat_map(|t| t.values())
                .filter(|r| {
                    r.deleted.is_none()
                        && r.fields.get("Id").and_then(Value::as_str) != own_id
                        && r.fields
                            .get(&rule.field)
                            .and_then(Value::as_str)
                            .is_some_and(|o| o.eq_ignore_ascii_case(value))
                })
                .filter_map(|r| r.fields.get("Id").and_then(Value::as_str))
                .map(|id| {
                    json!({
                        "additionalInformation": [],
                        "fieldDiffs": [],
                        "matchConfidence": 100.0,
                        "record": {
                            "attributes": {"type": schema.name, "url": format!("/services/data/v62.0/sobjects/{}/{id}", schema.name)},
                            "Id": id,
                        },
                    })
                })
                .collect();
            if matches.is_empty() {
                continue;
            }
            let mut e = RecError::new("DUPLICATES_DETECTED", "Use one of these records?", &[]);
            e.duplicate_result = Some(json!({
                "allowSave": false,
                "duplicateRule": rule.rule,
                "duplicateRuleEntityType": schema.name,
                "errorMessage": "You're creating a duplicate record. We recommend you use an existing record instead.",
                "matchResults": [{
                    "entityType": schema.name,
                    "errors": [],
                    "matchEngine": "ExactMatchEngine",
                    "matchRecords": matches.clone(),
                    "rule": rule.matching_rule,
                    "size": matches.len(),
                    "success": true,
                }],
            }));
            return Some(e);
        }
        None
    }

    fn duplicate_of_unique(
        &self,
        schema: &ObjectSchema,
        fields: &Map<String, Value>,
        own_id: Option<&str>,
    ) -> Option<RecError> {
        let table_key = schema.name.to_ascii_lowercase();
        for meta in schema.fields.iter().filter(|m| m.unique) {
            let Some(value) = fields.get(&meta.name).and_then(Value::as_str) else {
                continue;
            };
            let clash = self
                .indexed(&table_key, &meta.name, value, meta.case_sensitive)
                .find(|r| r.fields.get("Id").and_then(Value::as_str) != own_id);
            if let Some(r) = clash {
                let id = r.fields.get("Id").and_then(Value::as_str).unwrap_or("");
                return Some(RecError::new(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {id}",
                        meta.name
                    ),
                    &[meta.name.as_str()],
                ));
            }
        }
        None
    }

    /// Checks and normalises one value against its field's describe.
    fn coerce(
        &self,
        schema: &ObjectSchema,
        meta: &FieldMeta,
        v: &Value,
    ) -> Result<Value, RecError> {
        let name = meta.name.as_str();
        let parse_err = |what: &str| {
            RecError::new(
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {what} from {} value {v} or request may be missing a required field",
                    json_kind(v)
                ),
                &[name],
            )
        };
        if v.is_null() {
            if !meta.nillable && meta.kind != "boolean" {
                return Err(RecError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{name}]"),
                    &[name],
                ));
            }
            return Ok(Value::Null);
        }
        match meta.kind.as_str() {
            "boolean" => v
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| parse_err("boolean")),
            "int" => v.as_i64().map(|n| json!(n)).ok_or_else(|| parse_err("int")),
            "double" | "currency" | "percent" => v
                .as_f64()
                .map(|n| json!(n))
                .ok_or_else(|| parse_err("double")),
            "datetime" => v
                .as_str()
                .and_then(parse_datetime)
                .map(|t| Value::String(format_datetime(t)))
                .ok_or_else(|| parse_err("datetime")),
            "date" => v
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .ok_or_else(|| parse_err("date")),
            "reference" => {
                let s = v.as_str().ok_or_else(|| parse_err("reference"))?;
                let label = meta.label.trim_end_matches(" ID");
                let bad_type = || {
                    RecError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{label} ID: id value of incorrect type: {s}"),
                        &[name],
                    )
                };
                let Some(id18) = ids::to_18(s) else {
                    return Err(RecError::new(
                        "MALFORMED_ID",
                        format!("{label} ID: id value of incorrect type: {s}"),
                        &[name],
                    ));
                };
                let target = self
                    .catalog
                    .by_prefix(&id18[..3])
                    .filter(|t| meta.reference_to.iter().any(|r| r == &t.name))
                    .ok_or_else(bad_type)?;
                let live = self
                    .table(&target.name)
                    .and_then(|t| t.get(&id18))
                    .is_some_and(|r| r.deleted.is_none());
                if !live {
                    return Err(RecError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                        &[name],
                    ));
                }
                let _ = schema;
                Ok(Value::String(id18))
            }
            _ => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(parse_err("string")),
                };
                let len = s.chars().count() as u64;
                if meta.length > 0 && len > meta.length {
                    // Real responses quote the whole value: "Billing City: data value too
                    // large: <value> (max length=40)".
                    return Err(RecError::new(
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {s} (max length={})",
                            meta.label, meta.length
                        ),
                        &[name],
                    ));
                }
                if meta.kind == "email" && !s.is_empty() && !plausible_email(&s) {
                    return Err(RecError::new(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {s}", meta.label),
                        &[name],
                    ));
                }
                Ok(Value::String(s))
            }
        }
    }

    /// EventRelation as the Object Reference documents it. A relation is an invitee
    /// (`IsInvitee`, a user, contact or lead) and/or a parent related record (`IsParent`: a Who,
    /// i.e. a contact or lead, or a What such as an Account, for which the platform sets the
    /// read-only `IsWhat`). Parent relations need Shared Activities, and an event has up to 50
    /// contacts or one lead as Whos. `IsInvitee` defaults to true, `IsParent` to false.
    ///
    /// The Object Reference does not give the error codes; these follow the platform's
    /// pattern for cross-field integrity (FIELD_INTEGRITY_EXCEPTION), and the messages say
    /// which rule was broken.
    fn relation_rules(&self, f: &mut Map<String, Value>) -> Result<(), RecError> {
        let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (event, rel) = (text("EventId"), text("RelationId"));
        let (event, rel) = (event.as_str(), rel.as_str());
        let invitee = f.get("IsInvitee") == Some(&Value::Bool(true));
        let parent = f.get("IsParent") == Some(&Value::Bool(true));
        let is_user = rel.starts_with("005");
        let is_what = !is_person(rel) && !is_user;
        let integrity = |message: &str, field: &str| {
            Err(RecError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                message,
                &[field],
            ))
        };
        if !invitee && !parent {
            return integrity(
                "An event relation must be an invitee (IsInvitee) or a related record (IsParent).",
                "IsParent",
            );
        }
        if parent && !self.shared_activities {
            return integrity(
                "Relating contacts, leads or other records to an event (IsParent) requires Shared Activities; without it an event relation can only be an invitee.",
                "IsParent",
            );
        }
        if parent && is_user {
            return integrity(
                "A user can be invited to an event, not related to it (IsParent).",
                "IsParent",
            );
        }
        if invitee && is_what {
            return integrity(
                "Only users, contacts and leads can be invited to an event.",
                "IsInvitee",
            );
        }
        let existing: Vec<&Map<String, Value>> =
            self.relations_of(event).map(|r| &r.fields).collect();
        if let Some(dup) = existing
            .iter()
            .find(|r| r.get("RelationId").and_then(Value::as_str) == Some(rel))
        {
            let dup_id = dup.get("Id").and_then(Value::as_str).unwrap_or("");
            return Err(RecError::new(
                "DUPLICATE_VALUE",
                format!(
                    "duplicate value found: RelationId duplicates value on record with id: {dup_id}"
                ),
                &["RelationId"],
            ));
        }
        f.insert("IsWhat".into(), Value::Bool(is_what));
        if !parent || is_what {
            return Ok(());
        }
        let whos: Vec<&str> = existing.iter().filter_map(|r| who_of(r)).collect();
        let adding_lead = rel.starts_with("00Q");
        if (adding_lead && !whos.is_empty()) || whos.iter().any(|w| w.starts_with("00Q")) {
            return integrity(
                "An event can be related to one lead, or to up to 50 contacts, but not both.",
                "RelationId",
            );
        }
        if whos.len() >= 50 {
            return integrity(
                "You can relate up to 50 contacts to an event.",
                "RelationId",
            );
        }
        Ok(())
    }

    /// The first contact or lead related to an event becomes its WhoId (with Shared
    /// Activities, WhoId is the lead or the primary contact).
    fn first_who_is_primary(&mut self, rel: &Map<String, Value>, now: DateTime<Utc>) {
        let (Some(event_id), Some(who)) = (rel.get("EventId").and_then(Value::as_str), who_of(rel))
        else {
            return;
        };
        if let Some(e) = self
            .tables
            .get_mut("event")
            .and_then(|t| t.get_mut(event_id))
            .filter(|e| e.fields.get("WhoId").is_none_or(Value::is_null))
        {
            e.fields.insert("WhoId".into(), json!(who));
            let ts = json!(format_datetime(now));
            e.fields.insert("LastModifiedDate".into(), ts.clone());
            e.fields.insert("SystemModstamp".into(), ts);
            self.reindex_record("event", event_id);
        }
    }

    /// Setting Event.WhoId creates (or moves) the parent EventRelation, as the platform does.
    fn sync_who_relation(
        &mut self,
        event_id: &str,
        old: &Value,
        new: &Value,
        user: &str,
        now: DateTime<Utc>,
    ) {
        let ids: Vec<String> = self
            .relations_of(event_id)
            .filter_map(|r| r.fields.get("Id").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let table = self.tables.entry("eventrelation".into()).or_default();
        let of = |r: &Rec, rel: &str| {
            ids.iter()
                .any(|id| r.fields.get("Id").and_then(Value::as_str) == Some(id))
                && r.fields.get("RelationId").and_then(Value::as_str) == Some(rel)
        };
        // EventRelation: a person who is both invitee and related has one record with
        // IsInvitee and IsParent true; losing the Who role only clears IsParent.
        if let Some(old_id) = old.as_str() {
            for id in &ids {
                if table.get(id).is_some_and(|r| {
                    of(r, old_id) && r.fields.get("IsInvitee") != Some(&json!(true))
                }) {
                    table.remove(id);
                }
            }
            for id in &ids {
                if let Some(r) = table.get_mut(id).filter(|r| of(r, old_id)) {
                    r.fields.insert("IsParent".into(), json!(false));
                }
            }
        }
        if let Some(new_id) = new.as_str() {
            let mut exists = false;
            for id in &ids {
                if let Some(r) = table.get_mut(id).filter(|r| of(r, new_id)) {
                    r.fields.insert("IsParent".into(), json!(true));
                    exists = true;
                }
            }
            if !exists {
                let id = self.ids.next("0RE");
                let ts = format_datetime(now);
                let rec = json!({
                    "Id": id, "EventId": event_id, "RelationId": new_id, "IsInvitee": false,
                    "IsParent": true, "IsWhat": false, "Status": null, "IsDeleted": false,
                    "CreatedDate": ts, "CreatedById": user, "LastModifiedDate": ts,
                    "SystemModstamp": ts,
                });
                if let Value::Object(fields) = rec {
                    self.index_record("eventrelation", &fields);
                    self.tables
                        .entry("eventrelation".into())
                        .or_default()
                        .insert(
                            id,
                            Rec {
                                fields,
                                deleted: None,
                            },
                        );
                }
            }
        }
    }

    /// EventRelation: "If you delete the EventRelation record representing the WhoId on an
    /// event, then another Who, if any, … will be promoted to the WhoId" (else it is cleared).
    fn promote_who(&mut self, rel: &Map<String, Value>, now: DateTime<Utc>) {
        let (Some(event_id), Some(who)) = (
            rel.get("EventId").and_then(Value::as_str),
            rel.get("RelationId").and_then(Value::as_str),
        ) else {
            return;
        };
        let is_who = self
            .table("Event")
            .and_then(|t| t.get(event_id))
            .is_some_and(|e| e.fields.get("WhoId").and_then(Value::as_str) == Some(who));
        if !is_who {
            return;
        }
        let next = self
            .relations_of(event_id)
            .filter_map(|r| who_of(&r.fields))
            .find(|id| *id != who)
            .map(str::to_string);
        if let Some(e) = self
            .tables
            .get_mut("event")
            .and_then(|t| t.get_mut(event_id))
        {
            e.fields
                .insert("WhoId".into(), next.map_or(Value::Null, Value::String));
            let ts = json!(format_datetime(now));
            e.fields.insert("LastModifiedDate".into(), ts.clone());
            e.fields.insert("SystemModstamp".into(), ts);
            self.reindex_record("event", event_id);
        }
    }

    /// Moves a record to the recycle bin (visible to queryAll and getDeleted).
    pub fn delete(&mut self, id: &str, now: DateTime<Utc>) -> Result<String, RecError> {
        let Some(id18) = ids::to_18(id) else {
            return Err(RecError::new(
                "MALFORMED_ID",
                format!("malformed id {id}"),
                &[],
            ));
        };
        let Some(schema) = self.catalog.by_prefix(&id18[..3]).cloned() else {
            return Err(RecError::new(
                "MALFORMED_ID",
                format!("malformed id {id}"),
                &[],
            ));
        };
        let ts = Value::String(format_datetime(now));
        let snapshot = self
            .table(&schema.name)
            .and_then(|t| t.get(&id18))
            .map(|r| r.fields.clone());
        let Some(fields) = snapshot else {
            return Err(RecError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                &[],
            ));
        };
        if let Some(err) = self.fault_for(&schema.name, &fields) {
            return Err(err);
        }
        let table = self
            .tables
            .entry(schema.name.to_ascii_lowercase())
            .or_default();
        let Some(rec) = table.get_mut(&id18) else {
            return Err(RecError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                &[],
            ));
        };
        if rec.deleted.is_some() {
            return Err(RecError::new("ENTITY_IS_DELETED", "entity is deleted", &[]));
        }
        rec.deleted = Some(now);
        rec.fields.insert("IsDeleted".into(), Value::Bool(true));
        rec.fields.insert("SystemModstamp".into(), ts);
        self.reindex_record(&schema.name.to_ascii_lowercase(), &id18);
        if schema.name == "Event" {
            // Relations go with their event (those in the recycle bin too).
            let related: Vec<String> = self
                .index
                .get(&("eventrelation".to_string(), EVENT_ID.to_string()))
                .and_then(|by_event| by_event.get(&id18))
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            if let Some(rels) = self.tables.get_mut("eventrelation") {
                for id in related {
                    if rels.get(&id).is_some_and(|r| {
                        r.fields.get(EVENT_ID).and_then(Value::as_str) == Some(&id18)
                    }) {
                        rels.remove(&id);
                    }
                }
            }
        }
        if schema.name == "EventRelation" {
            self.promote_who(&fields, now);
        }
        Ok(id18)
    }
}

/// A contact or lead id (a Who).
fn is_person(id: &str) -> bool {
    id.starts_with("003") || id.starts_with("00Q")
}

/// The contact or lead a relation relates as a Who (IsParent, not IsWhat), if it does.
fn who_of(rel: &Map<String, Value>) -> Option<&str> {
    let id = rel.get("RelationId").and_then(Value::as_str)?;
    (rel.get("IsParent") == Some(&json!(true)) && is_person(id)).then_some(id)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Null => "VALUE_NULL",
    }
}

fn plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !s.contains(' ')
        }
        None => false,
    }
}

fn dt(f: &Map<String, Value>, k: &str) -> Option<DateTime<Utc>> {
    f.get(k).and_then(Value::as_str).and_then(parse_datetime)
}

/// Event timing (Object Reference, Event: EndDateTime and DurationInMinutes): a timed event
/// needs EndDateTime or DurationInMinutes; an all-day event (IsAllDayEvent with ActivityDate)
/// may give either and defaults to one day. Both may be given only if they add up to the same
/// time. From API 39.0 errors name DurationInMinutes when it has a value, else EndDateTime.
/// The derived fields (ActivityDateTime, ActivityDate, EndDate, the missing one of
/// End/Duration) are kept consistent.
fn event_rules(
    f: &mut Map<String, Value>,
    before: Option<&Map<String, Value>>,
    input: &Map<String, Value>,
) -> Result<(), RecError> {
    let given = |k: &str| {
        input
            .iter()
            .any(|(x, v)| x.eq_ignore_ascii_case(k) && !v.is_null())
    };
    let duration_given = given("DurationInMinutes");
    let err_field = if duration_given {
        "DurationInMinutes"
    } else {
        "EndDateTime"
    };
    let mismatch = || {
        RecError::new(
            "FIELD_INTEGRITY_EXCEPTION",
            "EndDateTime and DurationInMinutes don't add up to the same amount of time.",
            &[err_field],
        )
    };
    let too_long = || {
        RecError::new(
            "FIELD_INTEGRITY_EXCEPTION",
            "Event duration can't exceed 14 days.",
            &[err_field],
        )
    };
    let all_day = f.get("IsAllDayEvent") == Some(&Value::Bool(true));
    if all_day {
        let Some(day) = f
            .get("ActivityDate")
            .and_then(Value::as_str)
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        else {
            return Err(RecError::new(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [ActivityDate]",
                &["ActivityDate"],
            ));
        };
        let from_duration = f
            .get("DurationInMinutes")
            .and_then(Value::as_i64)
            .filter(|_| duration_given)
            // Out-of-range durations fail the 14-day rule below instead of overflowing.
            .map(|m| (m.clamp(0, 15 * 1440) / 1440).max(1));
        // An all-day event's EndDateTime is midnight UTC of its last day.
        let from_end = dt(f, "EndDateTime")
            .filter(|_| given("EndDateTime"))
            .map(|e| (e.date_naive() - day).num_days() + 1);
        let days = match (from_duration, from_end) {
            (Some(a), Some(b)) if a != b => return Err(mismatch()),
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) => 1,
        };
        if days < 1 {
            return Err(RecError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "End Date Time: End time can't be earlier than start time.",
                &[err_field],
            ));
        }
        if days > 14 {
            return Err(too_long());
        }
        let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let end = start + Duration::days(days - 1);
        f.insert("StartDateTime".into(), json!(format_datetime(start)));
        f.insert("ActivityDateTime".into(), Value::Null);
        f.insert("EndDateTime".into(), json!(format_datetime(end)));
        f.insert(
            "EndDate".into(),
            json!(end.date_naive().format("%Y-%m-%d").to_string()),
        );
        f.insert("DurationInMinutes".into(), json!(days * 1440));
        return Ok(());
    }
    let start = if given("ActivityDateTime") && !given("StartDateTime") {
        dt(f, "ActivityDateTime")
    } else {
        dt(f, "StartDateTime").or_else(|| dt(f, "ActivityDateTime"))
    };
    let Some(start) = start else {
        return Err(RecError::new(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [StartDateTime]",
            &["StartDateTime"],
        ));
    };
    let by_duration = || {
        f.get("DurationInMinutes")
            .and_then(Value::as_i64)
            // Out-of-range durations fail the 14-day rule below instead of overflowing.
            .map(|m| m.clamp(-1, 15 * 1440))
            .and_then(|m| start.checked_add_signed(Duration::minutes(m)))
    };
    let end = match (given("EndDateTime"), duration_given) {
        (true, true) => {
            let e = dt(f, "EndDateTime");
            if e != by_duration() {
                return Err(mismatch());
            }
            e
        }
        (true, false) => dt(f, "EndDateTime"),
        (false, true) => by_duration(),
        (false, false) => match before {
            // Moving the start keeps the duration.
            Some(b) => match (dt(b, "StartDateTime"), dt(b, "EndDateTime")) {
                (Some(s), Some(e)) => start.checked_add_signed(e - s),
                _ => None,
            },
            None => None,
        },
    };
    let Some(end) = end else {
        return Err(RecError::new(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [DurationInMinutes]",
            &["DurationInMinutes"],
        ));
    };
    if end < start {
        return Err(RecError::new(
            "FIELD_INTEGRITY_EXCEPTION",
            "End Date Time: End time can't be earlier than start time.",
            &[err_field],
        ));
    }
    if end - start > Duration::days(14) {
        return Err(too_long());
    }
    f.insert("StartDateTime".into(), json!(format_datetime(start)));
    f.insert("ActivityDateTime".into(), json!(format_datetime(start)));
    f.insert(
        "ActivityDate".into(),
        json!(start.date_naive().format("%Y-%m-%d").to_string()),
    );
    f.insert("EndDateTime".into(), json!(format_datetime(end)));
    f.insert(
        "EndDate".into(),
        json!(end.date_naive().format("%Y-%m-%d").to_string()),
    );
    f.insert(
        "DurationInMinutes".into(),
        json!((end - start).num_minutes()),
    );
    Ok(())
}
