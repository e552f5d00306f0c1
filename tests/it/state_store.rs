//! The SQLite state store: creation, reopening, refusal of files it must not touch, and
//! all-or-nothing writes.

use chrono::{DateTime, Utc};
use tether::model::ObjectKind;
use tether::state::*;

fn now() -> DateTime<Utc> {
    "2026-06-15T12:00:00Z".parse().unwrap()
}

fn link(rep: &str, ex: &str, sf: &str) -> Link {
    Link {
        rep: rep.into(),
        object: ObjectKind::Contact,
        exchange: Some(ExchangeSide {
            item_id: ex.into(),
            change_key: "ck".into(),
        }),
        salesforce: Some(SalesforceSide {
            id: sf.into(),
            modstamp: "1".into(),
        }),
        hash: "h".into(),
    }
}

#[test]
fn state_file_is_created_with_mode_0600_and_everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".tether/state.db");
    {
        let mut s = SqliteState::open(&path).unwrap();
        s.apply(vec![
            StateChange::RecordApply {
                canonical: "{}".into(),
                hash: "abc".into(),
                applied_at: now(),
                applied_by: "ci".into(),
            },
            StateChange::RecordApply {
                canonical: "{\"v\":2}".into(),
                hash: "def".into(),
                applied_at: now(),
                applied_by: "ana".into(),
            },
            StateChange::PutLink {
                id: None,
                link: link("r1", "AAMk1", "003A"),
            },
            StateChange::SetCursor {
                key: CursorKey::Folder {
                    rep: "r1".into(),
                    object: ObjectKind::Contact,
                },
                value: Some("sync-state".into()),
            },
            StateChange::SetStatus(StatusEntry {
                rep: "r1".into(),
                object: ObjectKind::Event,
                direction: SyncDirection::ExchangeToSalesforce,
                status: SyncStatus::InSync,
                records_in_sync: 7,
                updated: now(),
            }),
            StateChange::SetResetMark {
                rep: "r2".into(),
                mark: Some(ResetMark::MarkedForReset),
            },
            StateChange::AddError(ErrorEntry {
                at: now(),
                rep: "r1".into(),
                object: Some(ObjectKind::Contact),
                direction: Some(SyncDirection::SalesforceToExchange),
                record_ids: vec!["003A".into()],
                code: "X".into(),
                message: "m".into(),
                suggestion: "s".into(),
                version: Some("ck1 ms1".into()),
            }),
            StateChange::Acknowledge(Acknowledgement {
                record_id: "003A".into(),
                version: Some("ck1 ms1".into()),
                at: now(),
            }),
            StateChange::AddActivity(ActivityEntry {
                at: now(),
                object: ObjectKind::Contact,
                records: 3,
            }),
            StateChange::JournalAdd(JournalEntry {
                marker: "tether-1".into(),
                rep: "r1".into(),
                object: ObjectKind::Contact,
                target: CreateTarget::Salesforce,
                source_id: "AAMk2".into(),
                hash: "h2".into(),
                at: now(),
            }),
        ])
        .unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let s = SqliteState::open(&path).unwrap();
    assert_eq!(s.generation().unwrap(), 2);
    let rev = s.latest_revision().unwrap().unwrap();
    assert_eq!(
        (rev.generation, rev.hash.as_str(), rev.applied_by.as_str()),
        (2, "def", "ana")
    );
    assert_eq!(
        s.links("r1", ObjectKind::Contact).unwrap()[0].1,
        link("r1", "AAMk1", "003A")
    );
    assert_eq!(
        s.cursor(&CursorKey::Folder {
            rep: "r1".into(),
            object: ObjectKind::Contact
        })
        .unwrap()
        .as_deref(),
        Some("sync-state")
    );
    let st = s
        .status("r1", ObjectKind::Event, SyncDirection::ExchangeToSalesforce)
        .unwrap()
        .unwrap();
    assert_eq!((st.status, st.records_in_sync), (SyncStatus::InSync, 7));
    assert_eq!(
        s.reset_marks().unwrap().get("r2"),
        Some(&ResetMark::MarkedForReset)
    );
    let error = &s.errors().unwrap()[0];
    assert_eq!(error.record_ids, vec!["003A".to_string()]);
    assert_eq!(error.version.as_deref(), Some("ck1 ms1"));
    let acks = s.acknowledgements().unwrap();
    assert_eq!(acks["003A"].version.as_deref(), Some("ck1 ms1"));
    assert!(Acknowledgement::covers(&acks, error));
    assert_eq!(
        s.activity_since(now() - chrono::Duration::minutes(60))
            .unwrap()
            .get(&ObjectKind::Contact),
        Some(&3)
    );
    assert!(
        s.activity_since(now() + chrono::Duration::seconds(1))
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.pending_creates().unwrap()[0].hash, "h2");
}

#[test]
fn reset_clears_a_reps_links_and_folder_cursors_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteState::open(&dir.path().join("s.db")).unwrap();
    let cursor = |rep: &str| CursorKey::Folder {
        rep: rep.into(),
        object: ObjectKind::Contact,
    };
    s.apply(vec![
        StateChange::PutLink {
            id: None,
            link: link("r1", "a", "b"),
        },
        StateChange::PutLink {
            id: None,
            link: link("r2", "c", "d"),
        },
        StateChange::SetCursor {
            key: cursor("r1"),
            value: Some("1".into()),
        },
        StateChange::SetCursor {
            key: cursor("r2"),
            value: Some("2".into()),
        },
        StateChange::SetCursor {
            key: CursorKey::Org {
                object: ObjectKind::Contact,
            },
            value: Some("9".into()),
        },
    ])
    .unwrap();
    s.apply(vec![StateChange::ClearRep { rep: "r1".into() }])
        .unwrap();
    assert!(s.links("r1", ObjectKind::Contact).unwrap().is_empty());
    assert_eq!(s.links("r2", ObjectKind::Contact).unwrap().len(), 1);
    assert_eq!(s.cursor(&cursor("r1")).unwrap(), None);
    assert_eq!(s.cursor(&cursor("r2")).unwrap().as_deref(), Some("2"));
    assert!(
        s.cursor(&CursorKey::Org {
            object: ObjectKind::Contact
        })
        .unwrap()
        .is_some()
    );
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let mut s = SqliteState::open(&path).unwrap();
    // Break a table from outside, so the second change of the batch fails.
    tether_sqlite_conn(&path)
        .execute_batch("DROP TABLE unresolved;")
        .unwrap();
    let r = s.apply(vec![
        StateChange::PutLink {
            id: None,
            link: link("r1", "a", "b"),
        },
        StateChange::AddUnresolved(UnresolvedItem {
            rep: "r1".into(),
            event_id: "00U".into(),
            email: "x@y.com".into(),
            at: now(),
        }),
    ]);
    assert!(r.is_err());
    assert!(s.links("r1", ObjectKind::Contact).unwrap().is_empty());
}

/// A second, raw connection to the file, to tamper with it as another program would.
fn tether_sqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn a_file_from_a_newer_tether_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteState::open(&path).unwrap());
    tether_sqlite_conn(&path)
        .execute_batch(&format!(
            "UPDATE schema_version SET version = {}",
            SCHEMA_VERSION + 1
        ))
        .unwrap();
    let e = SqliteState::open(&path).unwrap_err();
    assert!(e.message.contains("newer tether"), "{e}");
    assert!(e.hint.contains("upgrade tether"), "{e}");
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    tether_sqlite_conn(&path)
        .execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    let e = SqliteState::open(&path).unwrap_err();
    assert!(e.message.contains("not a tether state file"), "{e}");
    // Untouched.
    let n: i64 = tether_sqlite_conn(&path)
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_damaged_or_empty_state_file_is_a_clear_error_never_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database at all, just some text....",
    )
    .unwrap();
    let e = SqliteState::open(&garbage).unwrap_err();
    assert!(e.hint.contains("backup"), "{e}");
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        b"this is not a database at all, just some text...."
    );

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let e = SqliteState::open(&empty).unwrap_err();
    assert!(e.message.contains("empty"), "{e}");

    // A real state file with its pages overwritten in the middle.
    let damaged = dir.path().join("damaged.db");
    {
        let mut s = SqliteState::open(&damaged).unwrap();
        let links: Vec<StateChange> = (0..400)
            .map(|i| StateChange::PutLink {
                id: None,
                link: link("r", &format!("item{i:0100}"), &format!("sf{i}")),
            })
            .collect();
        s.apply(links).unwrap();
    }
    // Fold the WAL into the main file, then damage it.
    tether_sqlite_conn(&damaged)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let mut bytes = std::fs::read(&damaged).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4096] {
        *b = 0xA5;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let e = SqliteState::open(&damaged);
    assert!(e.is_err(), "a damaged file must not open");
}

#[test]
fn every_apply_increments_the_generation_and_keeps_the_canonical_configuration() {
    let yaml_a: tether::config::model::Config = serde_json::from_value(serde_json::json!({
        "version": 1,
        "org": { "name": "acme", "kind": "production" },
        "connections": {
            "exchange": { "method": "service_account", "username": "svc@acme.com", "password": "${env:P}" },
            "salesforce": { "instance_url": "https://acme.my.salesforce.com",
                            "auth": { "flow": "access_token", "access_token": "${env:T}" } }
        }
    }))
    .unwrap();
    let (canonical, hash) = ConfigRevision::canonical(&yaml_a);
    assert_eq!(
        ConfigRevision::canonical(&yaml_a.clone()),
        (canonical.clone(), hash.clone())
    );
    assert!(canonical.contains("${env:P}"), "references, never secrets");
    let mut b = yaml_a.clone();
    b.org.name = "acme2".into();
    assert_ne!(ConfigRevision::canonical(&b).1, hash);

    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteState::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(s.generation().unwrap(), 0);
    for (i, by) in ["ci", "ana"].into_iter().enumerate() {
        s.apply(vec![StateChange::RecordApply {
            canonical: canonical.clone(),
            hash: hash.clone(),
            applied_at: now(),
            applied_by: by.into(),
        }])
        .unwrap();
        assert_eq!(s.generation().unwrap(), i as u64 + 1);
    }
    assert_eq!(s.latest_revision().unwrap().unwrap().canonical, canonical);
}

#[test]
fn an_older_state_file_is_migrated_forward_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let mut s = SqliteState::open(&path).unwrap();
        s.apply(vec![StateChange::PutLink {
            id: None,
            link: link("r1", "a", "b"),
        }])
        .unwrap();
    }
    // Make it a version 1 file: no meta or reps table yet.
    tether_sqlite_conn(&path)
        .execute_batch(
            "DROP TABLE meta; DROP TABLE reps; DROP TABLE applied_plans;
             DROP TABLE rep_facts; DROP TABLE system_facts;
             ALTER TABLE errors DROP COLUMN version; DROP TABLE acknowledgements;
             UPDATE schema_version SET version = 1;",
        )
        .unwrap();
    let s = SqliteState::open(&path).unwrap();
    assert_eq!(s.links("r1", ObjectKind::Contact).unwrap().len(), 1);
    let v: i64 = tether_sqlite_conn(&path)
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert!(!s.plan_signing_key().unwrap().expose().is_empty());
}

#[test]
fn the_plan_signing_key_is_kept_in_the_state_and_differs_between_states() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteState::open(&dir.path().join("a.db")).unwrap();
    let key = a.plan_signing_key().unwrap();
    assert_eq!(key.expose().len(), 64);
    assert_eq!(format!("{key:?}"), "Secret(***)");
    drop(a);
    let again = SqliteState::open(&dir.path().join("a.db")).unwrap();
    assert_eq!(again.plan_signing_key().unwrap(), key);
    let b = SqliteState::open(&dir.path().join("b.db")).unwrap();
    assert_ne!(b.plan_signing_key().unwrap(), key);
}

#[cfg(unix)]
#[test]
fn dangling_state_symlink_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let target = dir.path().join("moved-away.db");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = match SqliteState::open(&path) {
        Ok(_) => panic!("a dangling link opened as a state file"),
        Err(e) => e,
    };
    assert_eq!(
        err.message,
        format!(
            "the state file path {} is a symbolic link to {}, which does not exist",
            path.display(),
            target.display()
        )
    );
    assert!(
        err.hint.starts_with("point the link at the state file"),
        "{}",
        err.hint
    );
    // Nothing was created behind the link.
    assert!(!target.exists());
}
