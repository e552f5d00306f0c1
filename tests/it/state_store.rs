//! The state stores, SQLite and Postgres, through the same tests (`on_both_backends!`):
//! reopening, migrations, refusal of states they must not touch, all-or-nothing writes, the
//! copy between them and the lock; and what only a file has (mode, damage, links).

use crate::common::{self, pg};
use crate::emulated;
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

/// A state store under test, SQLite or Postgres: opened (again) at the same place, and
/// tampered with from outside as another program would.
trait Backend: Sized {
    fn location(&self) -> StateLocation;
    fn open(&self) -> Box<dyn StateStore> {
        self.location().open().unwrap()
    }
    /// Another, separate state on the same backend.
    fn another(&self) -> Self;
    /// A new state on the other backend.
    fn of_the_other_kind(&self) -> Box<dyn StateStore>;
    fn tamper(&self, sql: &str);
    fn schema_version(&self) -> i64;
}

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Self {
        Sqlite {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join(".tether/state.db")
    }
}

impl Backend for Sqlite {
    fn location(&self) -> StateLocation {
        StateLocation::File(self.path())
    }
    fn another(&self) -> Self {
        Sqlite::new()
    }
    fn of_the_other_kind(&self) -> Box<dyn StateStore> {
        Postgres::new().open()
    }
    fn tamper(&self, sql: &str) {
        tether_sqlite_conn(&self.path()).execute_batch(sql).unwrap();
    }
    fn schema_version(&self) -> i64 {
        tether_sqlite_conn(&self.path())
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap()
    }
}

struct Postgres {
    url: String,
}

impl Postgres {
    fn new() -> Self {
        Postgres {
            url: pg::fresh_url(),
        }
    }
    fn target(&self) -> PostgresTarget {
        PostgresTarget::parse(&self.url, None, std::path::Path::new(".")).unwrap()
    }
    fn client(&self) -> ::postgres::Client {
        pg::raw_client(self.target().schema().unwrap())
    }
}

impl Backend for Postgres {
    fn location(&self) -> StateLocation {
        StateLocation::Postgres(Box::new(self.target()))
    }
    fn another(&self) -> Self {
        Postgres::new()
    }
    fn of_the_other_kind(&self) -> Box<dyn StateStore> {
        Sqlite::new().open()
    }
    fn tamper(&self, sql: &str) {
        self.client().batch_execute(sql).unwrap();
    }
    fn schema_version(&self) -> i64 {
        self.client()
            .query_one("SELECT version FROM schema_version", &[])
            .unwrap()
            .get(0)
    }
}

/// Each named test, once over SQLite and once over Postgres.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $test() { super::$test(super::Sqlite::new()) })*
        }
        mod postgres {
            $(#[test] fn $test() { super::$test(super::Postgres::new()) })*
        }
    };
}

on_both_backends!(
    everything_survives_reopening,
    reset_clears_a_reps_links_and_folder_cursors_only,
    a_failed_write_leaves_nothing_behind,
    a_state_from_a_newer_tether_is_refused,
    every_apply_increments_the_generation_and_keeps_the_canonical_configuration,
    an_older_state_is_migrated_forward_and_keeps_its_data,
    the_plan_signing_key_is_kept_in_the_state_and_differs_between_states,
    a_copy_into_the_other_backend_and_back_is_row_for_row_the_same,
    a_copy_refuses_a_target_with_records_unless_told,
    a_second_locker_is_refused_naming_the_holder_until_the_first_lets_go,
    workers_take_turns_to_read_and_claim_groups_on_leases_that_expire,
);

/// The coordination of workers (schema 7): one reader per cycle, groups claimed one worker
/// at a time, a dead worker's group and reading turn taken over once its lease ends, every
/// claim recorded, and a cycle finished once.
fn workers_take_turns_to_read_and_claim_groups_on_leases_that_expire(b: impl Backend) {
    let mut w1 = b.open();
    let mut w2 = b.open();
    let t0 = now();
    let lease = chrono::Duration::seconds(60);
    let interval = chrono::Duration::seconds(90);
    assert_eq!(
        w1.read_turn("w1", t0, t0 + lease, interval).unwrap(),
        ReadTurn::Read(1)
    );
    assert_eq!(
        w2.read_turn("w2", t0, t0 + lease, interval).unwrap(),
        ReadTurn::Wait
    );
    let groups = vec![vec!["005A".to_string()], vec!["005B".to_string()]];
    w1.publish_org_read(1, "{\"read\":1}", &groups).unwrap();
    assert_eq!(
        w2.read_turn("w2", t0, t0 + lease, interval).unwrap(),
        ReadTurn::Join(1)
    );
    assert_eq!(w2.org_read(1).unwrap().as_deref(), Some("{\"read\":1}"));

    let g0 = w1.claim_group(1, "w1", t0, t0 + lease).unwrap().unwrap();
    let g1 = w2.claim_group(1, "w2", t0, t0 + lease).unwrap().unwrap();
    assert_eq!((g0.group, g0.reps.clone()), (0, groups[0].clone()));
    assert_eq!((g1.group, g1.worker.as_deref()), (1, Some("w2")));
    assert_eq!(
        w1.claim_group(1, "w1", t0, t0 + lease).unwrap(),
        None,
        "both held"
    );
    let t1 = t0 + chrono::Duration::seconds(5);
    w1.apply(vec![StateChange::GroupDone {
        generation: 1,
        group: 0,
        held: vec![ObjectKind::Event],
        at: t1,
    }])
    .unwrap();
    // w2 dies holding group 1: nobody takes it until its lease ends.
    assert_eq!(w1.claim_group(1, "w1", t1, t1 + lease).unwrap(), None);
    let t2 = t0 + lease + chrono::Duration::seconds(1);
    let taken = w1.claim_group(1, "w1", t2, t2 + lease).unwrap().unwrap();
    assert_eq!(taken.group, 1);
    w1.apply(vec![StateChange::GroupDone {
        generation: 1,
        group: 1,
        held: vec![],
        at: t2,
    }])
    .unwrap();
    let done = w2.rep_groups(1).unwrap();
    assert!(done.iter().all(|g| g.done_at.is_some()), "{done:?}");
    assert_eq!(done[0].held, [ObjectKind::Event]);
    let claims: Vec<(u64, String, DateTime<Utc>, DateTime<Utc>)> = w2
        .claims()
        .unwrap()
        .into_iter()
        .map(|c| (c.group, c.worker, c.claimed_at, c.until))
        .collect();
    assert_eq!(
        claims,
        [
            (0, "w1".to_string(), t0, t1),
            (1, "w2".to_string(), t0, t0 + lease),
            (1, "w1".to_string(), t2, t2),
        ]
    );

    // Finished once: a second finisher's transaction is refused whole.
    let finish = |at| StateChange::FinishSharedCycle { generation: 1, at };
    w1.apply(vec![finish(t2)]).unwrap();
    let cursor = StateChange::SetCursor {
        key: CursorKey::Settings,
        value: Some("second".into()),
    };
    assert!(w2.apply(vec![cursor, finish(t2)]).is_err());
    assert_eq!(w2.cursor(&CursorKey::Settings).unwrap(), None);
    assert!(w2.shared_cycle_finished(1).unwrap());

    // The next cycle is due `interval` after the last one started, whoever asks.
    assert_eq!(
        w2.read_turn("w2", t2, t2 + lease, interval).unwrap(),
        ReadTurn::Wait
    );
    let t3 = t0 + interval;
    // Its reader dies before it publishes: the turn passes on once the lease ends.
    assert_eq!(
        w2.read_turn("w2", t3, t3 + lease, interval).unwrap(),
        ReadTurn::Read(2)
    );
    assert_eq!(
        w1.read_turn("w1", t3, t3 + lease, interval).unwrap(),
        ReadTurn::Wait
    );
    let t4 = t3 + lease + chrono::Duration::seconds(1);
    assert_eq!(
        w1.read_turn("w1", t4, t4 + lease, interval).unwrap(),
        ReadTurn::Read(2)
    );
}

fn all_kinds_of_change() -> Vec<StateChange> {
    vec![
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
        StateChange::AddUnresolved(UnresolvedItem {
            rep: "r1".into(),
            event_id: "00U1".into(),
            email: "who@example.com".into(),
            at: now(),
        }),
        StateChange::SetRepEmail {
            rep: "r1".into(),
            email: "ana@acme.com".into(),
        },
        StateChange::SetRepFacts(RepFacts {
            email: "ana@acme.com".into(),
            at: now(),
            configuration: Some("Sales".into()),
            ..RepFacts::default()
        }),
        StateChange::SetSystemFacts(SystemFacts {
            at: now(),
            service_account_recognised: Some(true),
            exchange_error: None,
            outlook_integration: None,
        }),
        StateChange::RecordPlanApplied {
            plan_id: "plan-1".into(),
            applied_at: now(),
        },
    ]
}

fn everything_survives_reopening(b: impl Backend) {
    b.open().apply(all_kinds_of_change()).unwrap();
    let s = b.open();
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
    assert_eq!(s.unresolved("r1").unwrap()[0].event_id, "00U1");
    assert_eq!(s.rep_emails().unwrap()["r1"], "ana@acme.com");
    assert_eq!(
        s.rep_facts().unwrap()[0].configuration.as_deref(),
        Some("Sales")
    );
    assert_eq!(
        s.system_facts()
            .unwrap()
            .unwrap()
            .service_account_recognised,
        Some(true)
    );
    assert_eq!(s.applied_plans().unwrap(), ["plan-1"]);
    assert_eq!(s.last_activity().unwrap()[&ObjectKind::Contact], now());
}

#[cfg(unix)]
#[test]
fn state_file_is_created_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let b = Sqlite::new();
    drop(b.open());
    let mode = std::fs::metadata(b.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

fn reset_clears_a_reps_links_and_folder_cursors_only(b: impl Backend) {
    let mut s = b.open();
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

fn a_failed_write_leaves_nothing_behind(b: impl Backend) {
    let mut s = b.open();
    // Break a table from outside, so the second change of the batch fails.
    b.tamper("DROP TABLE unresolved;");
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

fn a_state_from_a_newer_tether_is_refused(b: impl Backend) {
    drop(b.open());
    b.tamper(&format!(
        "UPDATE schema_version SET version = {}",
        SCHEMA_VERSION + 1
    ));
    let Err(e) = b.location().open() else {
        panic!("a newer state opened")
    };
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

fn every_apply_increments_the_generation_and_keeps_the_canonical_configuration(b: impl Backend) {
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
    let mut other = yaml_a.clone();
    other.org.name = "acme2".into();
    assert_ne!(ConfigRevision::canonical(&other).1, hash);

    let mut s = b.open();
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

fn an_older_state_is_migrated_forward_and_keeps_its_data(b: impl Backend) {
    b.open()
        .apply(vec![StateChange::PutLink {
            id: None,
            link: link("r1", "a", "b"),
        }])
        .unwrap();
    // Make it a version 1 state: no meta or reps table yet.
    b.tamper(
        "DROP TABLE meta; DROP TABLE reps; DROP TABLE applied_plans;
         DROP TABLE rep_facts; DROP TABLE system_facts;
         ALTER TABLE errors DROP COLUMN version; DROP TABLE acknowledgements;
         DROP TABLE shared_cycles; DROP TABLE rep_groups; DROP TABLE claims;
         UPDATE schema_version SET version = 1;",
    );
    let s = b.open();
    assert_eq!(s.links("r1", ObjectKind::Contact).unwrap().len(), 1);
    assert_eq!(b.schema_version(), SCHEMA_VERSION);
    assert!(!s.plan_signing_key().unwrap().expose().is_empty());
}

fn the_plan_signing_key_is_kept_in_the_state_and_differs_between_states(b: impl Backend) {
    let a = b.open();
    let key = a.plan_signing_key().unwrap();
    assert_eq!(key.expose().len(), 64);
    assert_eq!(format!("{key:?}"), "Secret(***)");
    drop(a);
    assert_eq!(b.open().plan_signing_key().unwrap(), key);
    assert_ne!(b.another().open().plan_signing_key().unwrap(), key);
}

/// A state with one of every kind of row, some links deleted (so ids have gaps).
fn populated(b: &impl Backend) -> Box<dyn StateStore> {
    let mut s = b.open();
    s.apply(all_kinds_of_change()).unwrap();
    let extra: Vec<StateChange> = (0..5)
        .map(|i| StateChange::PutLink {
            id: None,
            link: link("r3", &format!("AAMk-{i}"), &format!("003-{i}")),
        })
        .collect();
    s.apply(extra).unwrap();
    s.apply(vec![StateChange::DeleteLink(LinkId(3))]).unwrap();
    s
}

fn a_copy_into_the_other_backend_and_back_is_row_for_row_the_same(b: impl Backend) {
    let source = populated(&b);
    let mut other = b.of_the_other_kind();
    let mut back = b.another().open();
    let sums = copy_state(&*source, &mut *other, false).unwrap();
    assert!(
        sums.iter().any(|(t, n, _)| t == "links" && *n == 5),
        "{sums:?}"
    );
    copy_state(&*other, &mut *back, false).unwrap();
    assert_eq!(back.dump().unwrap(), source.dump().unwrap());
    assert_eq!(
        back.plan_signing_key().unwrap(),
        source.plan_signing_key().unwrap()
    );
    assert_eq!(back.all_links().unwrap(), source.all_links().unwrap());
    // A link made after the copy gets a new id, never a copied one.
    back.apply(vec![StateChange::PutLink {
        id: None,
        link: link("r4", "new", "new"),
    }])
    .unwrap();
    let ids: Vec<i64> = back.all_links().unwrap().iter().map(|(i, _)| i.0).collect();
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        ids.len()
    );
    assert!(*ids.last().unwrap() > 6, "{ids:?}");
}

fn a_copy_refuses_a_target_with_records_unless_told(b: impl Backend) {
    let source = populated(&b);
    let mut target = b.another().open();
    target
        .apply(vec![StateChange::PutLink {
            id: None,
            link: link("mine", "x", "y"),
        }])
        .unwrap();
    let e = copy_state(&*source, &mut *target, false).unwrap_err();
    assert!(e.message.contains("not empty"), "{e}");
    assert!(e.hint.contains("--force"), "{e}");
    assert_eq!(target.all_links().unwrap().len(), 1, "untouched");
    copy_state(&*source, &mut *target, true).unwrap();
    assert_eq!(target.dump().unwrap(), source.dump().unwrap());
}

fn a_second_locker_is_refused_naming_the_holder_until_the_first_lets_go(b: impl Backend) {
    let location = b.location();
    drop(b.open());
    let held = location.lock("apply", now()).unwrap();
    let e = location.lock("run", now()).unwrap_err().to_string();
    assert!(e.contains("locked: `apply` by "), "{e}");
    assert!(e.contains(&format!("(pid {})", std::process::id())), "{e}");
    drop(held);
    drop(location.lock("run", now()).unwrap());
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

/// Runs the tether binary in `dir` with the emulated org's secrets and `env`, off the
/// runtime the emulators run on.
async fn tether_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> common::Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("TEST_EWS_PASSWORD".into(), emulated::PASSWORD.into()));
    env.push(("TEST_SF_SECRET".into(), emulated::SF_SECRET.into()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::tether_with_env(&args, &dir, &env)
    })
    .await
    .unwrap()
}

/// Every text value of a state, to look for what must never be in it.
fn all_text(state: &dyn StateStore) -> String {
    let dump = state.dump().unwrap();
    TABLES
        .iter()
        .flat_map(|t| dump.rows(t.name).to_vec())
        .flatten()
        .map(|cell| format!("{cell:?}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_plan_with_postgres_state_ends_in_no_changes_and_never_shows_its_password() {
    let org = emulated::start(
        tether_emulators::salesforce::EmulatorOptions::default(),
        emulated::ONE_REP_SYNC,
    )
    .await;
    emulated::add_rep_with_a_contact(&org.ews, &org.sf);
    let server = pg::server();
    let schema = pg::fresh_schema();
    let config = org.scratch.path("org/tether.yaml");
    let mut yaml = std::fs::read_to_string(&config).unwrap();
    yaml.push_str(&format!(
        "state:\n  postgres:\n    url: {}\n    password: ${{env:TEST_PG_PASSWORD}}\n    schema: {schema}\n",
        server.url
    ));
    std::fs::write(&config, yaml).unwrap();
    let dir = org.scratch.dir.path();
    let env = [("TEST_PG_PASSWORD", server.password.as_str())];
    let mut seen = String::new();
    let mut run = async |args: &[&str], env: &[(&str, &str)]| {
        let out = tether_in(dir, args, env).await;
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
        out
    };

    let first = run(&["plan", "org"], &env).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("Salesforce"), "{}", first.stdout);
    let apply = run(&["apply", "org", "--auto-approve"], &env).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains("1 created"), "{}", apply.stdout);
    let again = run(&["plan", "org"], &env).await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    assert!(
        !org.scratch.path("org/.tether").exists(),
        "the state went to Postgres, not to a file"
    );
    let target = PostgresTarget::parse(
        &server.url,
        Some(tether::secret::Secret::new(&server.password)),
        dir,
    )
    .unwrap()
    .with_schema(Some(schema.clone()));
    let state = PostgresState::open(&target).unwrap();
    assert_eq!(state.generation().unwrap(), 1);
    assert_eq!(state.all_links().unwrap().len(), 1);

    // Without the password the error says what to check, and still never shows it.
    let refused = run(&["plan", "org"], &[("TEST_PG_PASSWORD", "wrong")]).await;
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("cannot connect to the Postgres state"),
        "{}",
        refused.stderr
    );

    // Copied into a file and back into another schema, the state plans the same.
    let url = format!("{}?schema={schema}", server.url);
    let into_file = run(
        &["state", "migrate", "--from", &url, "--to", "copy.db"],
        &[("PGPASSWORD", server.password.as_str())],
    )
    .await;
    assert_eq!(
        into_file.code, 0,
        "{}{}",
        into_file.stdout, into_file.stderr
    );
    assert!(
        into_file
            .stdout
            .contains("every table's row count and SHA-256 match"),
        "{}",
        into_file.stdout
    );
    let from_file = run(&["plan", "org", "--state", "copy.db"], &env).await;
    assert!(
        from_file.stdout.contains("No changes."),
        "{}{}",
        from_file.stdout,
        from_file.stderr
    );
    let other = format!("{}?schema={}", server.url, pg::fresh_schema());
    let pg_env = [("PGPASSWORD", server.password.as_str())];
    let back = run(
        &["state", "migrate", "--from", "copy.db", "--to", &other],
        &pg_env,
    )
    .await;
    assert_eq!(back.code, 0, "{}{}", back.stdout, back.stderr);
    let twice = run(
        &["state", "migrate", "--from", "copy.db", "--to", &other],
        &pg_env,
    )
    .await;
    assert_ne!(twice.code, 0);
    assert!(twice.stderr.contains("not empty"), "{}", twice.stderr);
    let planned = run(&["plan", "org", "--state", &other], &[pg_env[0], env[0]]).await;
    assert!(
        planned.stdout.contains("No changes."),
        "{}{}",
        planned.stdout,
        planned.stderr
    );

    assert!(
        !seen.contains(&server.password),
        "the password was shown:\n{seen}"
    );
    assert!(!all_text(&state).contains(&server.password));
}

#[test]
fn a_pull_requests_plan_reads_a_postgres_state_with_a_read_only_role_and_writes_nothing() {
    let b = Postgres::new();
    b.open().apply(all_kinds_of_change()).unwrap();
    let schema = b.target().schema().unwrap().to_string();
    let reader = format!("r_{schema}");
    b.tamper(&format!(
        "CREATE ROLE {reader} LOGIN PASSWORD 'reader-pw';
         GRANT USAGE ON SCHEMA \"{schema}\" TO {reader};
         GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO {reader};"
    ));
    let mut url = url::Url::parse(&b.url).unwrap();
    url.set_username(&reader).unwrap();
    url.set_password(Some("reader-pw")).unwrap();
    let location = StateLocation::resolve(Some(url.as_str()), None, "unused".into()).unwrap();
    let mut state = location.open_read_only().unwrap();
    assert_eq!(state.generation().unwrap(), 2);
    assert_eq!(state.applied_plans().unwrap(), ["plan-1"]);
    let e = state
        .apply(vec![StateChange::ClearRep { rep: "r1".into() }])
        .unwrap_err();
    assert!(e.message.contains("read-only transaction"), "{e}");
    assert_eq!(b.open().links("r1", ObjectKind::Contact).unwrap().len(), 1);
}

#[test]
fn the_lock_taken_before_a_first_apply_creates_the_state_does_not_make_the_schema_look_foreign() {
    let b = Postgres::new();
    let location = b.location();
    assert!(!location.exists().unwrap());
    let _lock = location.lock("apply", now()).unwrap();
    assert!(!location.exists().unwrap(), "the lock alone is no state");
    let mut state = location.open().unwrap();
    state
        .apply(vec![StateChange::SetRepEmail {
            rep: "r1".into(),
            email: "ana@acme.com".into(),
        }])
        .unwrap();
    assert!(location.exists().unwrap());
}

#[test]
fn a_postgres_state_over_tls_is_reached_with_its_ca_file_and_refused_without_it() {
    let server = pg::throwaway();
    let ca = server.ca_file.as_ref().unwrap();
    let mut admin: ::postgres::Config = server.url.parse().unwrap();
    admin.password(&server.password);
    let mut client = admin.connect(::postgres::NoTls).unwrap();
    let _ = client.batch_execute(&format!(
        "CREATE ROLE {} LOGIN SUPERUSER PASSWORD 'tls-pw'",
        pg::TLS_ONLY_USER
    ));
    let mut url = url::Url::parse(&server.url).unwrap();
    url.set_username(pg::TLS_ONLY_USER).unwrap();
    url.set_password(Some("tls-pw")).unwrap();
    let schema = pg::fresh_schema();
    let with = |query: &str| format!("{url}?schema={schema}{query}");
    let open = |url: &str| {
        let location = StateLocation::resolve(Some(url), None, "unused".into()).unwrap();
        location.open().map(|_| ())
    };

    open(&with(&format!("&sslrootcert={}", ca.display()))).unwrap();
    // Plain (loopback without a CA file): the server takes this role over TLS only.
    let plain = open(&with("")).unwrap_err();
    assert!(plain.message.contains("cannot connect"), "{plain}");
    // TLS without the CA: the server's certificate is not trusted, and the hint says why.
    let untrusted = open(&with("&sslmode=verify-full")).unwrap_err();
    assert!(untrusted.hint.contains("sslrootcert"), "{untrusted}");
    assert!(!format!("{plain}{untrusted}").contains("tls-pw"));
}

#[test]
fn force_unlock_of_a_postgres_lock_ends_its_holders_session_and_the_lock_goes_to_the_next() {
    use tether::lock::{HeldLock, LockError, Locks, Wait, wait_for};
    let b = Postgres::new();
    drop(b.open());
    let location = b.location();
    let locks = location.locks();
    assert!(locks.holder().unwrap().is_none());
    let held = location.lock("apply", now()).unwrap();
    let id = held.info().id.clone();
    assert_eq!(locks.holder().unwrap().unwrap().id, id);
    assert!(matches!(
        locks.force_unlock("nope"),
        Err(LockError::WrongId { .. })
    ));
    assert_eq!(locks.force_unlock(&id).unwrap().unwrap().id, id);
    let (next, _) = wait_for(
        &locks,
        "run",
        Wait {
            timeout: std::time::Duration::from_secs(10),
            waiting: &mut |_| {},
            stop: &|| false,
        },
    )
    .unwrap();
    // The old holder letting go (its session already ended) leaves the new one's lock be.
    drop(held);
    assert_eq!(locks.holder().unwrap().unwrap().id, next.info().id);
    assert!(matches!(
        location.lock("reset", now()),
        Err(LockError::Held(_))
    ));
}
