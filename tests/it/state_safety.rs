//! The state file under stress, through the binary: two applies at once (one runs, the other
//! is refused at once naming the holder), a file from a newer tether, a damaged file (bytes
//! overwritten in the middle, truncated, not SQLite at all) — each refused by every command
//! with the way out, the file untouched, and nothing written to either side — and writes
//! that stay all-or-nothing when the writing process is killed mid-transaction.

use crate::cli_world;
use crate::reliability_doc;

use cli_world::World;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tether::model::ObjectKind;
use tether::state::*;

/// An org synced once, so the state holds links, cursors, statuses and a revision.
async fn synced_world() -> World {
    let mut w = World::start(2).await;
    w.seed(3);
    let out = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    w
}

/// Every command that opens the state refuses it: exit 1, the `expect`ed words on stderr,
/// the file byte for byte as it was, and no write to Exchange or Salesforce.
async fn refused_by_every_command(w: &World, expect: &[&str]) {
    let path = w.state_path();
    let before = std::fs::read(&path).unwrap();
    let writes_before = w.writes();
    for args in [
        &["plan", "org"][..],
        &["apply", "org", "--auto-approve"],
        &["run", "org", "--once"],
        &["status", "org"],
        &["errors", "org"],
        &["reset", "rep0@corp.com", "--config", "org"],
    ] {
        let out = w.tether(args).await;
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        for e in expect {
            assert!(
                out.stderr.contains(e),
                "{args:?}: `{e}` not in\n{}",
                out.stderr
            );
        }
        assert!(
            out.stderr.contains("org/.tether/state.db"),
            "{args:?} names the file: {}",
            out.stderr
        );
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was changed"
    );
    assert_eq!(w.writes(), writes_before, "something was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_apply_while_one_runs_is_refused_at_once_and_the_first_completes() {
    let mut w = World::start_with(
        2,
        tether_emulators::exchange::EmulatorOptions {
            latency: Some(Duration::from_millis(30)),
            ..Default::default()
        },
    )
    .await;
    w.seed(4);
    let first = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["apply", "org", "--auto-approve"])
        .current_dir(w.dir())
        .envs(cli_world::secrets())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = tether::lock::lock_path(&w.state_path());
    let waited = Instant::now();
    while !lock.exists() {
        assert!(waited.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Told not to wait (`--lock-timeout 0s`; by default they wait for the apply to finish).
    for args in [
        &["apply", "org", "--auto-approve", "--lock-timeout", "0s"][..],
        &["run", "org", "--once", "--lock-timeout", "0s"],
    ] {
        let started = Instant::now();
        let second = w.tether(args).await;
        assert_eq!(second.code, 1, "{}{}", second.stdout, second.stderr);
        assert!(
            second.stderr.contains("the state is locked: `apply` by ")
                && second.stderr.contains(&format!("(pid {})", first.id())),
            "{}",
            second.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(5), "not at once");
    }
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = w.tally(); // panics on a duplicate
    assert!(t.unsynced.is_empty(), "{:?}", t.unsynced);
    assert!(!lock.exists(), "released");
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "a_second_apply_while_one_runs_is_refused_at_once_and_the_first_completes",
        &[
            "a second `tether apply`, and a `tether run`, with `--lock-timeout 0s`, while an apply is syncing the same state",
            "refused at once (exit 1), naming the holder's operation, user, host, pid and lock id; the first apply goes on undisturbed",
            "both refused within 5 s; the first apply converged with no duplicate and released the lock",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_file_from_a_newer_tether_is_refused_with_a_clear_message() {
    let w = synced_world().await;
    rusqlite::Connection::open(w.state_path())
        .unwrap()
        .execute_batch(&format!(
            "UPDATE schema_version SET version = {}",
            tether::state::SCHEMA_VERSION + 1
        ))
        .unwrap();
    refused_by_every_command(
        &w,
        &[
            &format!(
                "has schema version {}, written by a newer tether",
                tether::state::SCHEMA_VERSION + 1
            ),
            "upgrade tether to the version that wrote the file; do not downgrade a state file",
        ],
    )
    .await;
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "a_state_file_from_a_newer_tether_is_refused_with_a_clear_message",
        &[
            "the state file's schema version is newer than this tether knows",
            "every command that opens it (plan, apply, run, status, errors, reset) refuses it, names the file and says to upgrade tether; nothing is migrated",
            REFUSED,
        ],
    );
}

/// What `refused_by_every_command` checked.
const REFUSED: &str = "exit 1 from each command; the file byte for byte unchanged; nothing written to Exchange or Salesforce";

const DAMAGED: &str = "detected when the file is opened (empty file, SQLite header, `PRAGMA integrity_check`); every command refuses it, names the file and gives the way out: restore a backup, or move it aside and run again (the first sync re-links by matching)";

const WAY_OUT_WORKS: &str =
    "; the way out followed: every record re-linked without a duplicate, next plan No changes";

const WAY_OUT: &[&str] = &[
    "restore the file from a backup",
    "move it aside and run again to start a new state file",
    "re-links existing records by matching them",
];

/// After the refusal, the way out works: the damaged file moved aside, the next apply
/// re-links what both sides hold instead of duplicating it.
async fn way_out_relinks_without_duplicates(w: &World) {
    let path = w.state_path();
    let mut aside = path.as_os_str().to_owned();
    aside.push(".damaged");
    std::fs::rename(&path, &aside).unwrap();
    let out = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let t = w.tally(); // panics on a duplicate
    assert!(t.unsynced.is_empty(), "{:?}", t.unsynced);
    let plan = w.tether(&["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_file_overwritten_in_the_middle_is_detected_on_open() {
    let w = synced_world().await;
    let path = w.state_path();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(
        !Path::new(&format!("{}-wal", path.display())).exists()
            || std::fs::metadata(format!("{}-wal", path.display()))
                .unwrap()
                .len()
                == 0,
        "tether leaves no unmerged write-ahead log behind"
    );
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid - 2048..mid + 2048].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut expect = vec!["state file"];
    expect.extend(WAY_OUT);
    refused_by_every_command(&w, &expect).await;
    way_out_relinks_without_duplicates(&w).await;
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "a_state_file_overwritten_in_the_middle_is_detected_on_open",
        &[
            "4 KB in the middle of the state file overwritten",
            DAMAGED,
            &format!("{REFUSED}{WAY_OUT_WORKS}"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_state_file_is_detected_on_open() {
    let w = synced_world().await;
    let path = w.state_path();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    refused_by_every_command(&w, WAY_OUT).await;
    // Truncated to nothing.
    std::fs::write(&path, b"").unwrap();
    let mut expect = vec!["is empty (truncated?)"];
    expect.extend(WAY_OUT);
    refused_by_every_command(&w, &expect).await;
    way_out_relinks_without_duplicates(&w).await;
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "a_truncated_state_file_is_detected_on_open",
        &[
            "the state file truncated to half its size, then to nothing",
            DAMAGED,
            &format!("{REFUSED}{WAY_OUT_WORKS}"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_file_that_is_not_sqlite_is_detected_on_open() {
    let w = synced_world().await;
    std::fs::write(
        w.state_path(),
        "links:\n  - rep0@corp.com: c0x0\n(someone saved a text file here)\n".repeat(40),
    )
    .unwrap();
    let mut expect = vec!["not a tether state file (or damaged)"];
    expect.extend(WAY_OUT);
    refused_by_every_command(&w, &expect).await;
    way_out_relinks_without_duplicates(&w).await;
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "a_state_file_that_is_not_sqlite_is_detected_on_open",
        &[
            "a text file where the state file should be",
            DAMAGED,
            &format!("{REFUSED}{WAY_OUT_WORKS}"),
        ],
    );
}

fn db_fix(w: &World, sql: &str) {
    rusqlite::Connection::open(w.state_path())
        .unwrap()
        .execute(sql, [])
        .unwrap();
}

/// A row whose value this build cannot decode (an unknown object kind, a time that is not
/// one) is the state damaged: refused naming the table, row and column, with the way out;
/// never a value made up in its place (a Contact, the epoch).
#[tokio::test(flavor = "multi_thread")]
async fn undecodable_state_row_is_an_error_with_a_way_out() {
    let w = synced_world().await;
    db_fix(&w, "UPDATE statuses SET updated = 'last Tuesday'");
    db_fix(&w, "UPDATE activity SET object = 'meeting'");
    db_fix(
        &w,
        "INSERT INTO errors (at, rep, object, record_ids, code, message, suggestion)
         VALUES ('soon', 'rep0', 'contact', '[]', 'X', 'x', 'x')",
    );
    let before = std::fs::read(w.state_path()).unwrap();
    let writes_before = w.writes();
    let (mut plan_stderr, mut errors_stderr) = (String::new(), String::new());
    for args in [
        &["plan", "org"][..],
        &["apply", "org", "--auto-approve"],
        &["run", "org", "--once"],
        &["status", "org"],
        &["errors", "org"],
    ] {
        let out = w.tether(args).await;
        match args[0] {
            "plan" => plan_stderr = out.stderr.clone(),
            "errors" => errors_stderr = out.stderr.clone(),
            _ => {}
        }
        // `run --once` ends after the failed cycle, exiting 1 as apply does.
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        for e in ["org/.tether/state.db is damaged: table "]
            .iter()
            .chain(WAY_OUT)
        {
            assert!(
                out.stderr.contains(e),
                "{args:?}: `{e}` not in\n{}",
                out.stderr
            );
        }
    }
    assert_eq!(
        std::fs::read(w.state_path()).unwrap(),
        before,
        "the file was changed"
    );
    assert_eq!(w.writes(), writes_before, "something was written");
    // Each damaged value named where it is.
    assert!(
        plan_stderr.contains("org/.tether/state.db is damaged: table statuses, row ")
            && plan_stderr.contains("column updated: `last Tuesday` is not an RFC 3339 time"),
        "{plan_stderr}"
    );
    let errors_row: i64 = rusqlite::Connection::open(w.state_path())
        .unwrap()
        .query_row("SELECT id FROM errors WHERE at = 'soon'", [], |r| r.get(0))
        .unwrap();
    assert!(
        errors_stderr.contains(&format!(
            "table errors, row {errors_row}, column at: `soon` is not an RFC 3339 time"
        )),
        "{errors_stderr}"
    );
    db_fix(&w, "UPDATE statuses SET updated = '2026-01-01T00:00:00Z'");
    let status = w.tether(&["status", "org"]).await;
    assert_eq!(status.code, 1, "{}{}", status.stdout, status.stderr);
    assert!(
        status
            .stderr
            .contains("column object: `meeting` is not contact or event"),
        "{}",
        status.stderr
    );
    way_out_relinks_without_duplicates(&w).await;
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "undecodable_state_row_is_an_error_with_a_way_out",
        &[
            "a value in the state file this tether cannot decode (an unknown object kind, a time that is not one)",
            "every command that reads it refuses it, naming the file, table, row and column, and gives the way out; no value is made up in its place",
            &format!(
                "exit 1 from plan, apply, status and errors (`run` logs the failed cycle and carries on); the file byte for byte unchanged; nothing written to Exchange or Salesforce{WAY_OUT_WORKS}"
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// All-or-nothing writes under SIGKILL

/// Links per transaction; each transaction also adds one error entry, so a whole state
/// always holds exactly BATCH links per error entry.
const BATCH: usize = 50;
const WRITER: &str = "TETHER_TEST_STATE_WRITER";

fn batch(n: usize) -> Vec<StateChange> {
    let now = chrono::Utc::now();
    let mut changes: Vec<StateChange> = (0..BATCH)
        .map(|i| StateChange::PutLink {
            id: None,
            link: Link {
                rep: "005rep".into(),
                object: ObjectKind::Contact,
                exchange: Some(ExchangeSide {
                    item_id: format!("AAMk-{n}-{i}-{}", "x".repeat(200)),
                    change_key: "CQAAAB".into(),
                }),
                salesforce: Some(SalesforceSide {
                    id: format!("003{n:06}{i:06}"),
                    modstamp: now.to_rfc3339(),
                }),
                hash: format!("{n}-{i}"),
            },
        })
        .collect();
    changes.push(StateChange::AddError(ErrorEntry {
        at: now,
        rep: "005rep".into(),
        object: None,
        direction: None,
        record_ids: vec![],
        code: format!("TX{n}"),
        message: "one per transaction".into(),
        suggestion: "none".into(),
        version: None,
    }));
    changes
}

/// (transactions, links) in a state file, after tether's own open (integrity-checked).
fn count(path: &Path) -> (usize, usize) {
    let s = SqliteState::open(path).unwrap_or_else(|e| panic!("{e}"));
    let links = s.links("005rep", ObjectKind::Contact).unwrap().len();
    (s.errors().unwrap().len(), links)
}

/// Transactions committed so far, read without writing (the writer runs meanwhile).
fn committed(path: &Path) -> usize {
    SqliteState::open_read_only(path)
        .and_then(|s| s.errors())
        .map_or(0, |e| e.len())
}

/// Run in a child process by the test below: writes transactions until killed.
#[test]
#[ignore = "helper: the child process of state_writes_stay_all_or_nothing_when_the_writer_is_killed"]
fn state_writer_child() {
    let Some(path) = std::env::var_os(WRITER) else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let mut s = SqliteState::open(&path).unwrap();
    let mut n = s.errors().unwrap().len();
    loop {
        s.apply(batch(n)).unwrap();
        n += 1;
    }
}

#[test]
fn state_writes_stay_all_or_nothing_when_the_writer_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteState::open(&path).unwrap());
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut last = 0;
    let mut kills = 0;
    let mut grew = 0;
    while kills < 20 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                // The test binary holds every test file: its name is module-qualified.
                "state_safety::state_writer_child",
                "--test-threads=1",
            ])
            .env(WRITER, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // The kill falls a random moment after the writer's first commit of this run: how
        // long the child takes to start follows the machine's load, not a fixed guess.
        let started = Instant::now();
        while committed(&path) <= last {
            assert!(child.try_wait().unwrap().is_none(), "the writer stopped");
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the writer wrote nothing in a minute"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis((seed >> 33) % 100));
        assert!(child.try_wait().unwrap().is_none(), "the writer stopped");
        child.kill().unwrap(); // SIGKILL, most likely mid-transaction
        child.wait().unwrap();
        kills += 1;
        let (transactions, links) = count(&path);
        assert_eq!(
            links,
            transactions * BATCH,
            "a torn transaction after kill {kills} (seed {seed})"
        );
        assert!(transactions >= last, "committed transactions were lost");
        if transactions > last {
            grew += 1;
        }
        last = transactions;
    }
    assert_eq!(grew, kills, "every run committed before its kill");
    let integrity: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    println!("{kills} kills, {last} whole transactions");
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "state_writes_stay_all_or_nothing_when_the_writer_is_killed",
        &[
            &format!(
                "the process writing the state killed with SIGKILL {kills} times at random moments while it commits transactions back to back"
            ),
            "each change set is one SQLite transaction (write-ahead log, synchronous=FULL): a kill leaves the last committed state",
            &format!(
                "after each of the {kills} kills: the file opens and passes its integrity check, no transaction torn ({BATCH} links per transaction), none lost"
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Full disks and places tether may not write: said as what they are, never as damage

/// A privileged change to the scratch files (a mount, the immutable flag), undone when
/// dropped. Root ignores permission bits, so a read-only place needs a read-only mount or
/// `chattr +i`, and a full disk a small tmpfs; tests and CI run as root. Without the
/// privilege the test fails here, loudly, instead of passing unchecked.
struct Privileged {
    undo: Vec<Vec<String>>,
}

impl Privileged {
    fn new() -> Self {
        Privileged { undo: Vec::new() }
    }

    fn run(&mut self, cmd: &[&str], undo: &[&str]) {
        let out = Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .unwrap_or_else(|e| panic!("`{}`: {e}", cmd.join(" ")));
        assert!(
            out.status.success(),
            "`{}` failed; this test needs root (as CI has): {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        self.undo.push(undo.iter().map(|s| s.to_string()).collect());
    }
}

impl Drop for Privileged {
    fn drop(&mut self) {
        for cmd in self.undo.iter().rev() {
            let _ = Command::new(&cmd[0]).args(&cmd[1..]).status();
        }
    }
}

const NOT_DAMAGE: &[&str] = &[
    "restore the file from a backup",
    "damaged",
    "not a tether state file",
];

fn says_not_damage(args: &[&str], stderr: &str) {
    for e in NOT_DAMAGE {
        assert!(!stderr.contains(e), "{args:?} calls it damage:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_disk_is_reported_as_no_space_not_damage() {
    let mut w = World::start(2).await;
    w.seed(3);
    let dir = w.state_path().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let mut root = Privileged::new();
    root.run(
        &["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", d],
        &["umount", "-l", d],
    );
    let out = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Fill the disk, then free two pages: room for the lock file, none for SQLite's
    // shared-memory file or its log.
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let full = loop {
        if let Err(e) = std::io::Write::write_all(&mut file, &[7u8; 4096]) {
            break e;
        }
    };
    assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    let len = file.metadata().unwrap().len();
    file.set_len(len - 8192).unwrap();
    let before = std::fs::read(w.state_path()).unwrap();
    let writes_before = w.writes();
    for args in [
        &["apply", "org", "--auto-approve"][..],
        &["run", "org", "--once"],
    ] {
        let out = w.tether(args).await;
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr
                .contains("org/.tether/state.db: no space left on device")
                && out.stderr.contains("free space on the device")
                && out.stderr.contains("the state is intact"),
            "{args:?}:\n{}",
            out.stderr
        );
        says_not_damage(args, &out.stderr);
    }
    // What only reads the state still answers.
    for args in [&["status", "org"][..], &["errors", "org"], &["plan", "org"]] {
        let out = w.tether(args).await;
        assert_eq!(
            out.code, 0,
            "{args:?} on a full disk: {}{}",
            out.stdout, out.stderr
        );
    }
    assert_eq!(
        std::fs::read(w.state_path()).unwrap(),
        before,
        "the file was changed"
    );
    assert_eq!(w.writes(), writes_before, "something was written");
    // Space freed, the state is as it was: the next apply syncs on from it.
    drop(file);
    std::fs::remove_file(&filler).unwrap();
    w.add_contact(0, cli_world::Side::Exchange);
    let out = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let t = w.tally(); // panics on a duplicate
    assert!(t.unsynced.is_empty(), "{:?}", t.unsynced);
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "full_disk_is_reported_as_no_space_not_damage",
        &[
            "the disk holding the state file full (a tmpfs filled to 8 KB from its end)",
            "apply and run refuse before writing anything, saying no space left on device, to free space, and that the state is intact; status, errors and plan read the state as it is",
            "exit 1 from apply and run, never called damage; exit 0 from status, errors and plan; the file byte for byte unchanged; nothing written to Exchange or Salesforce; after space is freed the next apply syncs on without a duplicate",
        ],
    );
}

/// Commands that write the state are refused saying `expect`; those that only read it
/// answer. The file is unchanged and nothing is written to either side.
async fn writers_refused_readers_served(w: &World, expect: &str) {
    let before = std::fs::read(w.state_path()).unwrap();
    let writes_before = w.writes();
    for args in [
        &["apply", "org", "--auto-approve"][..],
        &["run", "org", "--once"],
        &["reset", "rep0@corp.com", "--config", "org"],
    ] {
        let out = w.tether(args).await;
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.to_lowercase().contains(expect),
            "{args:?}: `{expect}` not in\n{}",
            out.stderr
        );
        says_not_damage(args, &out.stderr);
    }
    for args in [
        &["status", "org"][..],
        &["errors", "org"],
        &["plan", "org"],
        &["plan", "org", "--out", "saved.plan"],
    ] {
        let out = w.tether(args).await;
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    }
    let status = w.tether(&["status", "org", "--format", "json"]).await;
    assert!(status.stdout.contains("rep0@corp.com"), "{}", status.stdout);
    assert_eq!(
        std::fs::read(w.state_path()).unwrap(),
        before,
        "the file was changed"
    );
    assert_eq!(w.writes(), writes_before, "something was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_state_directory_is_reported_as_such() {
    let w = synced_world().await;
    let dir = w.state_path().parent().unwrap().to_path_buf();
    let d = dir.to_str().unwrap();
    let mut root = Privileged::new();
    root.run(&["mount", "--bind", d, d], &["umount", "-l", d]);
    root.run(&["mount", "-o", "remount,bind,ro", d], &["true"]);
    writers_refused_readers_served(&w, "read-only").await;
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "read_only_state_directory_is_reported_as_such",
        &[
            "the state file's directory mounted read-only",
            "apply, run and reset refuse, saying read-only; status, errors and plan read the state as it is (as immutable, since SQLite cannot create its shared-memory file there)",
            "exit 1 from apply, run and reset, never called damage; exit 0 from status, errors, plan and plan --out; the file byte for byte unchanged; nothing written to Exchange or Salesforce",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_state_file_still_serves_status_and_errors() {
    let w = synced_world().await;
    let state = w.state_path();
    let s = state.to_str().unwrap();
    let mut root = Privileged::new();
    root.run(&["chattr", "+i", s], &["chattr", "-i", s]);
    writers_refused_readers_served(&w, "permission denied or read-only").await;
    let out = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert!(
        out.stderr
            .contains("make the file and its directory writable"),
        "{}",
        out.stderr
    );
    drop(root);
    let out = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(out.code, 0, "writable again: {}{}", out.stdout, out.stderr);
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "read_only_state_file_still_serves_status_and_errors",
        &[
            "the state file marked immutable (`chattr +i`)",
            "apply, run and reset refuse before writing anything, saying permission denied or read-only and what to check; status, errors and plan open it read-only and answer",
            "exit 1 from apply, run and reset, never called damage; exit 0 from status, errors, plan and plan --out; the file byte for byte unchanged; nothing written to Exchange or Salesforce; writable again, the next apply works",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dangling_state_symlink_is_refused_not_planned_as_a_first_sync() {
    let w = synced_world().await;
    let path = w.state_path();
    // The state moved away (a volume not mounted, a file renamed) behind its link.
    std::fs::rename(&path, path.with_extension("moved")).unwrap();
    std::os::unix::fs::symlink(path.with_extension("gone"), &path).unwrap();
    let writes_before = w.writes();
    for args in [
        &["plan", "org"][..],
        &["plan", "org", "--out", "p.plan"],
        &["apply", "org", "--auto-approve"],
        &["run", "org", "--once"],
        &["status", "org"],
        &["errors", "org"],
    ] {
        let out = w.tether(args).await;
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr
                .contains("org/.tether/state.db is a symbolic link to ")
                && out.stderr.contains("which does not exist"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(w.writes(), writes_before, "something was written");
    assert!(
        !path.with_extension("gone").exists(),
        "nothing created behind the link"
    );
}
