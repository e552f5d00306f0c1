//! Entry points for the fuzz targets in `fuzz/` and for `tests/it/fuzz_targets.rs`: each feeds
//! arbitrary bytes through the code that reads one kind of outside input, as tether does.
//! None may panic, hang or use memory out of proportion to its input; every outcome is a
//! value or an error. Not an API: the shapes follow the fuzz targets.

use crate::exchange::client::{answers, token_answer};
use crate::exchange::model::Item;
use crate::exchange::soap;
use crate::model::normalize::record_hash;
use crate::model::{EffectiveMapping, ObjectKind};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;
use tether_emulators::salesforce::soql;
use tether_emulators::salesforce::store::{Rec, Store};

/// A fuzz target: any bytes in, nothing out but a panic when there is a bug.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the file names under `fuzz/fuzz_targets/` and
/// `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("ews_response", ews_response),
    ("salesforce_json", salesforce_json),
    ("soql", soql),
];

/// A configuration file with these bytes, loaded and checked as `tether validate` does,
/// and its findings rendered.
pub fn config(bytes: &[u8]) {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("tether-fuzz-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    });
    let path = dir.join("tether.yaml");
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let v = crate::config::validate(std::slice::from_ref(&path), true);
    let _ = v.render_human();
    let _ = v.render_json();
}

/// One EWS answer, read the way the client reads every operation's answer (and as the
/// Autodiscover and token answers), then turned into canonical records.
pub fn ews_response(bytes: &[u8]) {
    if let Ok(op) = soap::parse_response(bytes)
        && let Ok(msgs) = soap::response_messages(&op)
    {
        let mut items: Vec<Item> = answers::items(&msgs).into_iter().flatten().collect();
        let _ = answers::ids(&msgs);
        let _ = answers::deleted(&msgs);
        for m in &msgs {
            let _ = answers::folder(m);
            let _ = answers::found_folder(m, "Salesforce_Sync");
            let _ = answers::created_folder(m);
            let _ = answers::sync_page(m);
            let events = answers::calendar_view(m).into_iter();
            items.extend(events.map(|e| Item::Event(Box::new(e))));
            let _ = answers::found_ids(m);
            if let Ok(master) = answers::recurring_master(m) {
                items.push(Item::Event(Box::new(master)));
            }
        }
        let contacts = EffectiveMapping::defaults(ObjectKind::Contact);
        let events = EffectiveMapping::defaults(ObjectKind::Event);
        for item in &items {
            let record =
                crate::exchange::connector::item_to_record(item, &contacts, "rep@corp.com");
            if let Some(Ok(r)) = record {
                let mapping = if r.kind() == ObjectKind::Contact {
                    &contacts
                } else {
                    &events
                };
                let _ = record_hash(&r, mapping);
            }
        }
    }
    let _ = answers::autodiscover_pox(bytes);
    let _ = answers::autodiscover_soap(bytes);
    for status in [200, 400] {
        let _ = token_answer(status, bytes);
    }
}

/// One Salesforce response body, decoded as each kind of answer the client reads.
pub fn salesforce_json(bytes: &[u8]) {
    crate::salesforce::decode_any(bytes);
}

fn fuzz_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// An emulated org with a user, an account, contacts and events, to run queries over.
fn soql_store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut store = Store::new(1);
        let now = fuzz_now();
        let raw = |store: &mut Store, object: &str, fields: Value| -> String {
            let prefix = store
                .catalog
                .get(object)
                .map(|s| s.key_prefix.clone())
                .unwrap_or_default();
            let id = store.ids.next(&prefix);
            let mut m: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
            m.insert("Id".into(), Value::String(id.clone()));
            let ts = Value::String(soql::format_datetime(now));
            m.insert("IsDeleted".into(), Value::Bool(false));
            m.insert("CreatedDate".into(), ts.clone());
            m.insert("LastModifiedDate".into(), ts.clone());
            m.insert("SystemModstamp".into(), ts);
            store
                .tables
                .entry(object.to_ascii_lowercase())
                .or_default()
                .insert(
                    id.clone(),
                    Rec {
                        fields: m,
                        deleted: None,
                    },
                );
            id
        };
        let user = raw(
            &mut store,
            "User",
            json!({"Username": "celia.kung@corp.com", "Email": "celia.kung@corp.com",
                   "LastName": "Kung", "FirstName": "Celia", "Name": "Celia Kung", "IsActive": true}),
        );
        let account = raw(
            &mut store,
            "Account",
            json!({"Name": "Acme", "OwnerId": user}),
        );
        for (first, last, email) in [
            ("Ana", "Diaz", "ana@customer.com"),
            ("Bo", "O'Neil", "bo@customer.com"),
            ("Ünï", "Cödé", "u@x.de"),
        ] {
            let contact = raw(
                &mut store,
                "Contact",
                json!({"FirstName": first, "LastName": last, "Email": email,
                       "OwnerId": user, "AccountId": account, "Birthdate": "1980-02-29",
                       "Tether_Sync_Key__c": format!("key-{last}")}),
            );
            raw(
                &mut store,
                "Event",
                json!({"Subject": format!("Meet {first}"), "OwnerId": user, "WhoId": contact,
                       "WhatId": account, "StartDateTime": "2026-01-16T10:00:00.000+0000",
                       "EndDateTime": "2026-01-16T11:00:00.000+0000", "IsAllDayEvent": false,
                       "DurationInMinutes": 60, "ActivityDate": "2026-01-16"}),
            );
        }
        store
    })
}

/// A SOQL statement, parsed by the emulator and run over a small org as the query
/// endpoint runs it: filter, order, offset and limit, projection.
pub fn soql(bytes: &[u8]) {
    let q = String::from_utf8_lossy(bytes);
    let store = soql_store();
    let Ok(parsed) = soql::parse(&q, &store.catalog, fuzz_now()) else {
        return;
    };
    let resolver: &dyn soql::Resolver = store;
    let mut rows: Vec<&Map<String, Value>> = store
        .table(&parsed.object.name)
        .map(|t| {
            t.values()
                .map(|r| &r.fields)
                .filter(|r| {
                    parsed
                        .filter
                        .as_ref()
                        .is_none_or(|c| soql::matches(c, r, resolver))
                })
                .collect()
        })
        .unwrap_or_default();
    soql::order(&parsed, &mut rows, resolver);
    for r in rows
        .into_iter()
        .skip(parsed.offset)
        .take(parsed.limit.unwrap_or(usize::MAX))
    {
        let _ = soql::project(&parsed, r, resolver, "62.0");
    }
}
