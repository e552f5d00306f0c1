//! The fields Salesforce indexes, so that a query costs what it returns. The platform's
//! standard indexes ("Query & Search Optimization Cheat Sheet"; Large Data Volumes guide,
//! "Indexes"): Id, Name, OwnerId, RecordTypeId, lookup and master-detail fields,
//! CreatedDate and SystemModstamp, Email on Contact and Lead, and fields marked unique or
//! External ID.
//!
//! A WHERE clause with a conjunct that tests an indexed field (`=` or `IN` with text values;
//! `=`, `<`, `<=`, `>`, `>=` with a datetime on the two dates) reads the rows its index names
//! instead of scanning the table; the whole clause is still applied to each of them, and they
//! come in table order, so the result is exactly what a scan gives.
//!
//! Entries are only ever added, as for the store's uniqueness index: every value a record has
//! held stays listed, so a rollback, a direct edit or a delete can never hide a row; a stale
//! entry is merely a candidate the clause rejects. A record put in a table other than by
//! `Store::write` must be passed to `Store::index_record`.

use super::schema::{FieldMeta, ObjectSchema};
use super::soql::{self, Cond, Literal};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

/// Per lower-case object name, per field: `V` (values to ids).
type PerField<V> = HashMap<String, HashMap<String, V>>;

/// Ids by (lower-case object name, field) and value.
#[derive(Debug, Default)]
pub struct QueryIndex {
    /// Text values as SOQL compares them (lower-cased; ids in 18 characters).
    text: PerField<HashMap<String, BTreeSet<String>>>,
    /// Datetime values, ordered for ranges.
    time: PerField<BTreeMap<DateTime<Utc>, BTreeSet<String>>>,
}

/// What an index offers a query: the field it reads and the ids it names, in id (table)
/// order.
pub struct Candidates<'a> {
    pub field: &'a str,
    pub ids: BTreeSet<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Time,
}

/// How `meta` is indexed on `object`, if it is.
fn kind(object: &ObjectSchema, meta: &FieldMeta) -> Option<Kind> {
    match meta.name.as_str() {
        "CreatedDate" | "SystemModstamp" => Some(Kind::Time),
        "Id" | "Name" | "OwnerId" | "RecordTypeId" => Some(Kind::Text),
        "Email" if matches!(object.name.as_str(), "Contact" | "Lead") => Some(Kind::Text),
        _ if meta.kind == "reference" || meta.unique => Some(Kind::Text),
        _ => None,
    }
}

impl QueryIndex {
    /// Lists a record's values of the indexed fields (see the module's note).
    pub fn add(&mut self, object: &ObjectSchema, fields: &Map<String, Value>) {
        let Some(id) = fields.get("Id").and_then(Value::as_str) else {
            return;
        };
        let table = object.name.to_ascii_lowercase();
        for meta in &object.fields {
            let Some(value) = fields.get(&meta.name) else {
                continue;
            };
            match kind(object, meta) {
                Some(Kind::Text) => {
                    if let Some(key) = soql::text_key(meta, value) {
                        slot(&mut self.text, &table, &meta.name)
                            .entry(key)
                            .or_default()
                            .insert(id.to_string());
                    }
                }
                Some(Kind::Time) => {
                    if let Some(key) = soql::time_key(meta, value) {
                        slot(&mut self.time, &table, &meta.name)
                            .entry(key)
                            .or_default()
                            .insert(id.to_string());
                    }
                }
                None => {}
            }
        }
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.time.clear();
    }

    /// The records of `object` that may satisfy `filter`, from its most selective indexed
    /// conjunct; None when none of its conjuncts is indexed.
    pub fn candidates<'a>(
        &'a self,
        object: &ObjectSchema,
        filter: &'a Cond,
    ) -> Option<Candidates<'a>> {
        let table = object.name.to_ascii_lowercase();
        let mut conjuncts = Vec::new();
        flatten_and(filter, &mut conjuncts);
        conjuncts
            .into_iter()
            .filter_map(|c| self.lookup(object, &table, c))
            .min_by_key(|(_, sets)| sets.iter().map(|s| s.len()).sum::<usize>())
            .map(|(field, sets)| Candidates {
                field,
                ids: sets.into_iter().flatten().map(String::as_str).collect(),
            })
    }

    /// The indexed field one conjunct tests and the id sets it names, if it tests an indexed
    /// field of the record itself.
    fn lookup<'a>(
        &'a self,
        object: &ObjectSchema,
        table: &str,
        c: &'a Cond,
    ) -> Option<(&'a str, Vec<&'a BTreeSet<String>>)> {
        let (path, op, lits): (_, _, &[Literal]) = match c {
            Cond::Cmp(p, op, lit) => (p, *op, std::slice::from_ref(lit)),
            Cond::In(p, false, lits) => (p, "=", lits.as_slice()),
            _ => return None,
        };
        if !path.hops.is_empty() {
            return None;
        }
        let meta = &path.leaf;
        match kind(object, meta)? {
            Kind::Text if op == "=" => {
                let keys = lits
                    .iter()
                    .map(|l| soql::literal_text_key(meta, l))
                    .collect::<Option<Vec<String>>>()?;
                let by_value = self.text.get(table).and_then(|t| t.get(&meta.name));
                Some((
                    &meta.name,
                    keys.iter()
                        .filter_map(|k| by_value.and_then(|v| v.get(k)))
                        .collect(),
                ))
            }
            Kind::Time => {
                let [lit] = lits else { return None };
                let t = soql::literal_time_key(meta, lit)?;
                let range = match op {
                    "=" => (Bound::Included(t), Bound::Included(t)),
                    ">" => (Bound::Excluded(t), Bound::Unbounded),
                    ">=" => (Bound::Included(t), Bound::Unbounded),
                    "<" => (Bound::Unbounded, Bound::Excluded(t)),
                    "<=" => (Bound::Unbounded, Bound::Included(t)),
                    _ => return None,
                };
                let by_time = self.time.get(table).and_then(|t| t.get(&meta.name));
                Some((
                    &meta.name,
                    by_time
                        .into_iter()
                        .flat_map(|m| m.range(range).map(|(_, ids)| ids))
                        .collect(),
                ))
            }
            Kind::Text => None,
        }
    }
}

/// The conditions that must all hold (nested ANDs flattened).
fn flatten_and<'c>(c: &'c Cond, out: &mut Vec<&'c Cond>) {
    match c {
        Cond::And(items) => items.iter().for_each(|i| flatten_and(i, out)),
        other => out.push(other),
    }
}

fn slot<'m, V: Default>(index: &'m mut PerField<V>, table: &str, field: &str) -> &'m mut V {
    index
        .entry(table.to_string())
        .or_default()
        .entry(field.to_string())
        .or_default()
}

#[cfg(test)]
mod tests {
    use super::super::soql::{self, Filter};
    use super::super::store::{Store, WriteKind};
    use super::*;
    use chrono::{Duration, TimeZone};
    use serde_json::json;

    /// An org with stale index entries of every kind: contacts whose email, owner and name
    /// changed, some deleted, stamps moving forwards and (a late commit) backwards.
    fn org() -> (Store, Vec<String>, chrono::DateTime<Utc>) {
        let mut store = Store::new(7);
        let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap();
        let owners = ["005000000000001AAA", "005000000000002AAA"];
        let mut ids = Vec::new();
        for i in 0..60 {
            let input = json!({
                "LastName": format!("Name{}", i % 7),
                "FirstName": if i % 5 == 0 { json!(null) } else { json!("Ann") },
                "Email": if i % 9 == 0 { json!(null) } else { json!(format!("P{i}@Example.com")) },
            });
            let id = store
                .write(
                    "Contact",
                    WriteKind::Create,
                    input.as_object().unwrap(),
                    owners[i % 2],
                    t0 + Duration::seconds(i as i64),
                )
                .unwrap();
            ids.push(id);
        }
        for (n, id) in ids.iter().enumerate().step_by(4) {
            let input = json!({"Email": format!("moved{n}@example.com"), "LastName": "Moved"});
            store
                .write(
                    "Contact",
                    WriteKind::Update(id),
                    input.as_object().unwrap(),
                    owners[1],
                    t0 + Duration::minutes(10 + n as i64),
                )
                .unwrap();
        }
        // A late commit stamps a record earlier than it was.
        let input = json!({"Title": "Late"});
        store
            .write(
                "Contact",
                WriteKind::Update(&ids[8]),
                input.as_object().unwrap(),
                owners[0],
                t0 - Duration::hours(1),
            )
            .unwrap();
        for id in ids.iter().skip(3).step_by(6) {
            store.delete(id, t0 + Duration::hours(2)).unwrap();
        }
        (store, ids, t0)
    }

    /// Ids a query selects, through `select` and by testing every row of the table.
    fn both(store: &Store, soql_text: &str, all: bool) -> (Vec<String>, Vec<String>) {
        let now = Utc.with_ymd_and_hms(2026, 5, 2, 0, 0, 0).unwrap();
        let q = soql::parse(soql_text, &store.catalog, now).unwrap_or_else(|e| panic!("{e:?}"));
        let filter = q.filter.as_ref().map(Filter::new);
        let id = |f: &Map<String, Value>| f["Id"].as_str().unwrap().to_string();
        let selected = store
            .select(&q, filter.as_ref(), all)
            .into_iter()
            .map(id)
            .collect();
        let scanned = store
            .table("Contact")
            .unwrap()
            .values()
            .filter(|r| all || r.deleted.is_none())
            .filter(|r| {
                q.filter
                    .as_ref()
                    .is_none_or(|c| soql::matches(c, &r.fields, store))
            })
            .map(|r| id(&r.fields))
            .collect();
        (selected, scanned)
    }

    #[test]
    fn indexed_queries_select_exactly_the_rows_a_table_scan_does_in_the_same_order() {
        let (store, ids, t0) = org();
        let stamp = |d: Duration| (t0 + d).format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let id15 = &ids[5][..15];
        let (a, b, moved) = (&ids[1], &ids[2], "moved4@EXAMPLE.com");
        let queries = [
            format!("SELECT Id FROM Contact WHERE Email IN ('p1@example.com', 'P2@EXAMPLE.COM', '{moved}', 'p4@example.com', 'none@x.org')"),
            "SELECT Id FROM Contact WHERE Email IN ('p1@example.com', null)".to_string(),
            "SELECT Id FROM Contact WHERE Email = 'P10@example.com'".into(),
            "SELECT Id FROM Contact WHERE Email != 'P10@example.com'".into(),
            "SELECT Id FROM Contact WHERE Email NOT IN ('P10@example.com')".into(),
            "SELECT Id FROM Contact WHERE NOT Email IN ('P10@example.com')".into(),
            "SELECT Id FROM Contact WHERE Email = null".into(),
            "SELECT Id FROM Contact WHERE OwnerId IN ('005000000000001', '005000000000002AAA')".into(),
            "SELECT Id FROM Contact WHERE OwnerId = '005000000000001AAA' AND LastName = 'Moved'".into(),
            format!("SELECT Id FROM Contact WHERE Id IN ('{a}', '{id15}', '{a}')"),
            format!("SELECT Id FROM Contact WHERE Id = '{b}' AND (LastName = 'Name2' OR Email = null)"),
            "SELECT Id FROM Contact WHERE Name IN ('Ann Name3', 'name1', 'Ann MOVED')".into(),
            "SELECT Id FROM Contact WHERE LastName = 'Name3'".into(),
            "SELECT Id FROM Contact WHERE Email = 'p7@example.com' OR Email = 'p8@example.com'".into(),
            format!("SELECT Id FROM Contact WHERE SystemModstamp >= {}", stamp(Duration::seconds(30))),
            format!("SELECT Id FROM Contact WHERE SystemModstamp > {}", stamp(Duration::seconds(30))),
            format!("SELECT Id FROM Contact WHERE SystemModstamp < {}", stamp(Duration::seconds(30))),
            format!("SELECT Id FROM Contact WHERE SystemModstamp <= {}", stamp(Duration::minutes(20))),
            format!("SELECT Id FROM Contact WHERE SystemModstamp = {}", stamp(Duration::minutes(14))),
            format!("SELECT Id FROM Contact WHERE SystemModstamp != {}", stamp(Duration::minutes(14))),
            format!("SELECT Id FROM Contact WHERE SystemModstamp >= {} AND OwnerId = '005000000000002AAA'", stamp(Duration::minutes(15))),
            format!("SELECT Id FROM Contact WHERE CreatedDate < {}", stamp(Duration::seconds(10))),
            "SELECT Id FROM Contact WHERE SystemModstamp = TODAY".into(),
            "SELECT Id FROM Contact WHERE SystemModstamp >= 2026-05-01T09:00:30Z ORDER BY SystemModstamp DESC".into(),
            "SELECT Id FROM Contact".into(),
        ];
        for q in &queries {
            for all in [false, true] {
                let (selected, scanned) = both(&store, q, all);
                assert_eq!(selected, scanned, "{q} (all rows: {all})");
            }
        }
        // Some of them select something, so the comparison is not of empty lists.
        assert_eq!(both(&store, &queries[0], false).0.len(), 3);
        assert!(both(&store, &queries[14], true).0.len() > 20);
    }
}
