//! Crash safety of the real binary: `tether apply --auto-approve` is killed with SIGKILL at
//! random moments during a large initial sync (and the incremental syncs after it), while
//! users keep editing and adding records on both sides; after each kill apply runs again,
//! and takes over the lock the dead run left, with a note, as its process is gone. A third
//! of the kills fall at any moment of a run, the rest while it writes (after its first write
//! reached a server). A final
//! clean apply must converge: every record exactly once on each side, every latest edit on
//! both sides, the state file intact, and the next plan "No changes".
//!
//! The emulators run in this process, so they outlive every kill. The seed is printed;
//! `TETHER_CRASH_SEED=<n>` replays a run. The default run kills 20 times;
//! `cargo test --test it crash:: -- --ignored` kills 500 times.
//!
//! Also: the first apply or `plan --out` of a new state killed while it creates the state
//! file, 100 times (1000 with `--ignored`); every command then works on what it left.

use crate::cli_world;
use crate::common;
use crate::reliability_doc;

use cli_world::{Side, World};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// splitmix64: a tiny seeded generator, so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Figures {
    kills: usize,
    /// Kills that landed after the run had started writing.
    mid_write: usize,
    /// Runs that finished before their kill was due.
    finished: usize,
    edits: usize,
    added: usize,
    /// Runs that took over the lock of a killed one.
    took_over: usize,
}

/// Waits until `done` or the end of the run; returns how long the run took if it ended first.
async fn running_until(
    child: &mut std::process::Child,
    started: Instant,
    done: impl Fn() -> bool,
) -> Option<Duration> {
    while !done() {
        if child.try_wait().unwrap().is_some() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

async fn kill_and_restart(kills_wanted: usize) -> Figures {
    let seed = std::env::var("TETHER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    println!("crash test seed: {seed} (replay with TETHER_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let mut w = World::start(4).await;
    w.seed(12);
    let state = w.state_path();
    let lock = tether::lock::lock_path(&state);
    let mut figures = Figures {
        kills: 0,
        mid_write: 0,
        finished: 0,
        edits: 0,
        added: 0,
        took_over: 0,
    };
    // Kill moments are drawn up to about as long as a run takes, learnt from the runs that
    // finish (measured to the millisecond, averaged so one slow run on a loaded machine
    // does not push every later kill past the end of the runs), so kills land throughout
    // reading, planning and writing, on a fast machine or a slow one.
    let mut typical = Duration::from_millis(1_500);
    let mut measured = false;
    let mut attempts = 0;
    // Whether the last run was killed holding the lock, which the next run must take over.
    let mut lock_left = false;
    // Kills go on until enough of them hit a run that was writing: on a fast machine an
    // incremental run's few writes end before most kills are due.
    while figures.kills < kills_wanted || figures.mid_write * 4 < figures.kills {
        attempts += 1;
        assert!(
            attempts < kills_wanted * 10,
            "too few runs could be killed (seed {seed})"
        );
        let writes_before = w.writes();
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["apply", "org", "--auto-approve"])
            .current_dir(w.dir())
            .envs(common::TEST_ENV.iter().copied())
            .envs(cli_world::secrets())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // When the run ended, if it ended before the kill was due.
        let ended = if rng.below(3) == 0 {
            // Any moment of the run: reading, planning, writing, saving.
            let due = started + Duration::from_millis(rng.below(typical.as_millis() as u64));
            running_until(&mut child, started, || Instant::now() >= due).await
        } else {
            // A moment while it writes: after its first write reached a server.
            match running_until(&mut child, started, || w.writes() > writes_before).await {
                Some(ended) => Some(ended),
                None => {
                    // Half at once, half within 150 ms: an incremental run writes briefly.
                    let delay = if rng.below(2) == 0 { 0 } else { rng.below(150) };
                    let due = Instant::now() + Duration::from_millis(delay);
                    running_until(&mut child, started, || Instant::now() >= due).await
                }
            }
        };
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                figures.kills += 1;
                if w.writes() > writes_before {
                    figures.mid_write += 1;
                }
                // The dead run's lock stays, whole; no operator releases it.
                lock_left = match std::fs::read_to_string(&lock) {
                    Ok(text) => {
                        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| {
                            panic!("lock file {text:?} cannot be read: {e} (seed {seed})")
                        });
                        true
                    }
                    Err(_) => false,
                };
            }
            Some(status) => {
                let output = child.wait_with_output().unwrap();
                // Apply exits 1 only for records it could not write; none are refused here.
                assert!(
                    status.success(),
                    "an apply after a kill failed (seed {seed}):\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                took_over_if_left(lock_left, &String::from_utf8_lossy(&output.stderr), seed);
                figures.took_over += usize::from(lock_left);
                lock_left = false;
                figures.finished += 1;
                let took = ended.unwrap_or_else(|| started.elapsed());
                typical = if measured {
                    (typical * 3 + took) / 4
                } else {
                    took
                };
                measured = true;
            }
        }
        // Meanwhile users edit (each record only on the side it started on, so no edit is
        // a conflict that the policy may legitimately overwrite) and add records.
        for _ in 0..2 {
            let keys: Vec<String> = w.sources.keys().cloned().collect();
            let key = &keys[rng.below(keys.len() as u64) as usize];
            let side = w.sources[key].side;
            let value = format!("{key} v{attempts}");
            w.edit(key, side, &value);
            figures.edits += 1;
        }
        if rng.below(3) == 0 {
            let rep = rng.below(w.reps.len() as u64) as usize;
            let side = if rng.below(2) == 0 {
                Side::Exchange
            } else {
                Side::Salesforce
            };
            if rng.below(2) == 0 {
                w.add_contact(rep, side);
            } else {
                w.add_event(rep, side);
            }
            figures.added += 1;
        }
    }

    let last = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(
        last.code, 0,
        "the clean apply (seed {seed}):\n{}{}",
        last.stdout, last.stderr
    );
    took_over_if_left(lock_left, &last.stderr, seed);
    figures.took_over += usize::from(lock_left);
    let t = w.tally(); // panics on a lost or duplicated record
    if !t.unsynced.is_empty() {
        let plan = w.tether(&["plan", "org", "--detail"]).await;
        let copies: Vec<_> = w
            .observe()
            .into_iter()
            .filter(|(k, _)| t.unsynced.contains(k))
            .collect();
        panic!(
            "not converged (seed {seed}): {:?}\ncopies: {copies:#?}\nthe clean apply:\n{}{}\nthe next plan:\n{}{}",
            t.unsynced, last.stdout, last.stderr, plan.stdout, plan.stderr
        );
    }
    assert!(
        t.stale.is_empty(),
        "edits lost (seed {seed}): {:?}",
        t.stale
    );
    let plan = w.tether(&["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(
        plan.code, 0,
        "the next plan (seed {seed}):\n{}{}",
        plan.stdout, plan.stderr
    );
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    // The state file is whole.
    assert_eq!(state_opens_cleanly(&state), "ok", "seed {seed}");
    println!(
        "crash test: {} kills survived ({} after writing had begun), {} runs finished ({} taking over a killed run's lock), {} edits and {} new records made between runs, {} records converged",
        figures.kills,
        figures.mid_write,
        figures.finished,
        figures.took_over,
        figures.edits,
        figures.added,
        w.sources.len()
    );
    figures
}

/// A run after a killed one that held the lock says it took that lock over.
fn took_over_if_left(lock_left: bool, stderr: &str, seed: u64) {
    assert_eq!(
        stderr.contains("note: took over the state lock held by `apply` by "),
        lock_left,
        "lock left by the killed run: {lock_left} (seed {seed}); stderr:\n{stderr}"
    );
}

/// `PRAGMA integrity_check` through tether's own open (which runs it and refuses damage).
fn state_opens_cleanly(state: &std::path::Path) -> String {
    match tether::state::SqliteState::open(state) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_then_a_clean_apply_converges() {
    let f = kill_and_restart(20).await;
    assert!(f.kills >= 20);
    // Enough of the kills must hit a run that was writing, or the test proves little.
    assert!(
        f.mid_write * 4 >= f.kills,
        "only {} of {} kills landed after writing began",
        f.mid_write,
        f.kills
    );
    assert!(f.took_over > 0, "no run took over a killed run's lock");
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "sigkill_at_random_moments_then_a_clean_apply_converges",
        &[
            &format!(
                "`tether apply --auto-approve` killed with SIGKILL {} times at random moments (a third anywhere in a run, the rest while it writes) during the initial sync of 4 reps × 48 records and the syncs after it, while users edit and add records on both sides",
                f.kills
            ),
            "records each write as it succeeds; journals every create before sending it and looks it up before sending it again; moves cursors only when a cycle completes; the next apply takes over the dead run's lock (same host, no such process) with a note",
            "a clean apply converged: every record exactly once on each side with its latest edit, next plan No changes, state file passes its integrity check",
        ],
    );
}

#[test]
fn the_crash_table_has_a_row_for_every_crash_test_and_no_other() {
    assert_eq!(
        reliability_doc::rows(&reliability_doc::CRASHES),
        reliability_doc::CRASHES.tests
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long run: 500 kills"]
async fn sigkill_500_times_then_a_clean_apply_converges() {
    let f = kill_and_restart(500).await;
    assert!(f.kills >= 500);
}

// ---------------------------------------------------------------------------------------
// Kills while the state file is being created

/// The first commands of a new state, which create its file.
const CREATING: [&[&str]; 2] = [
    &["apply", "org", "--auto-approve"],
    &["plan", "org", "--out", "first.plan"],
];

/// After a kill, each command in turn is run on what the kill left (status and errors with
/// --exit-zero: a record the kill left failed is not a state they refuse).
const EVERY_COMMAND: [&[&str]; 5] = [
    &["status", "org", "--exit-zero"],
    &["errors", "org", "--exit-zero"],
    &["plan", "org"],
    &["plan", "org", "--out", "next.plan"],
    &["apply", "org", "--auto-approve"],
];

fn spawn_tether(w: &World, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .current_dir(w.dir())
        .envs(common::TEST_ENV.iter().copied())
        .envs(cli_world::secrets())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How long `args` takes, on a new state, until the state file is there.
async fn until_created(w: &World, args: &[&str]) -> Duration {
    let started = Instant::now();
    let mut child = spawn_tether(w, args);
    while !w.state_path().exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{args:?} ended without creating the state"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    assert!(child.wait().unwrap().success(), "{args:?} failed");
    took
}

/// The state file with its side files, the lock a killed apply left (releasing it is
/// tests/it/lock_cli.rs's subject) and the saved plans: a new state for the next kill.
fn start_afresh(w: &World) {
    let state = w.state_path();
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", state.display()));
    }
    for plan in ["first.plan", "next.plan"] {
        let _ = std::fs::remove_file(w.dir().join(plan));
    }
}

struct Creations {
    kills: usize,
    /// Kills that left no state file (the rest left a valid one).
    left_none: usize,
}

async fn kill_while_creating(kills_wanted: usize) -> Creations {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let seed = std::env::var("TETHER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    println!("crash test seed: {seed} (replay with TETHER_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let mut w = World::start(1).await;
    w.seed(1);
    let mut created_after = Vec::new();
    for args in CREATING {
        created_after.push(until_created(&w, args).await);
        start_afresh(&w);
    }
    let mut figures = Creations {
        kills: 0,
        left_none: 0,
    };
    let mut attempts = 0;
    while figures.kills < kills_wanted {
        attempts += 1;
        assert!(
            attempts < kills_wanted * 3,
            "too few runs could be killed (seed {seed})"
        );
        let which = attempts % CREATING.len();
        // Around the moment the file appeared when nothing was killed, where creation is;
        // learnt again from every run, so a first slow run (cold caches, a loaded machine)
        // or a fast release build does not put the kills past the end of the runs.
        let typical = created_after[which].as_micros() as u64;
        let due = Duration::from_micros(typical / 2 + rng.below(typical));
        let mut child = spawn_tether(&w, CREATING[which]);
        tokio::time::sleep(due).await;
        if child.try_wait().unwrap().is_some() {
            // It finished first: creation comes earlier than thought.
            created_after[which] = created_after[which] * 2 / 3;
            start_afresh(&w);
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        figures.kills += 1;
        let _ = std::fs::remove_file(tether::lock::lock_path(&w.state_path()));
        let state = w.state_path();
        let left = state.exists();
        if left {
            // A valid state: it opens (integrity-checked) at this build's schema.
            let opened = tether::state::SqliteState::open_read_only(&state);
            assert!(
                opened.is_ok(),
                "kill {}: {} (seed {seed})",
                figures.kills,
                opened.unwrap_err()
            );
        } else {
            figures.left_none += 1;
            // Killed before the file appeared: creation comes a little later than thought.
            created_after[which] = created_after[which] * 11 / 10;
        }
        let args = EVERY_COMMAND[figures.kills % EVERY_COMMAND.len()];
        let out = w.tether(args).await;
        let no_state_yet = !left
            && matches!(args[0], "status" | "errors")
            && out.stderr.contains("nothing has been applied yet");
        assert!(
            out.code == 0 || no_state_yet,
            "kill {} of {:?} left a state {args:?} refuses (seed {seed}):\n{}{}",
            figures.kills,
            CREATING[which],
            out.stdout,
            out.stderr
        );
        start_afresh(&w);
    }
    // A creating run clears what the killed ones staged.
    let out = w.tether(CREATING[0]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let staged: Vec<_> = std::fs::read_dir(w.state_path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".creating."))
        .collect();
    assert!(staged.is_empty(), "left behind: {staged:?}");
    println!(
        "{} kills while creating the state: {} left none, {} a valid one",
        figures.kills,
        figures.left_none,
        figures.kills - figures.left_none
    );
    figures
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_while_creating_the_state_leaves_none_or_a_valid_one() {
    let f = kill_while_creating(100).await;
    // Kills before and after the file appeared, or the moments missed the creation.
    assert!(
        f.left_none > 0 && f.left_none < f.kills,
        "{} of {} kills left no state",
        f.left_none,
        f.kills
    );
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "kill_while_creating_the_state_leaves_none_or_a_valid_one",
        &[
            &format!(
                "the first `tether apply` or `tether plan --out` of a new state killed with SIGKILL {} times around the moment it creates the state file",
                f.kills
            ),
            "creates the state file whole: initialised and migrated under a private name, flushed, then linked into place; the next creating run removes what a killed one staged",
            "after each kill: no state file, or one that opens at this schema and passes its integrity check; status, errors, plan, plan --out and apply (in turn) work on it with no restore",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long run: 1000 kills"]
async fn kill_while_creating_the_state_1000_times() {
    let f = kill_while_creating(1000).await;
    assert!(f.kills >= 1000);
}
