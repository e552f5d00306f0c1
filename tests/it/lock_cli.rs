//! `tether force-unlock` releases a lock left behind, only with its id, and asks before it
//! frees a holder that may still run; `apply` and `run` wait for a holder, saying whom.

use crate::common;

use common::*;

#[test]
fn force_unlock_releases_a_stale_lock_by_id() {
    let s = Scratch::new();
    s.write("org/tether.yaml", "version: 1\n");
    let state = s.path("org/.tether/state.db");
    let pid = dead_pid();
    lock_file(&state, |l| l["pid"] = pid.into()); // the holder died
    let id = lock_id(&state);

    let wrong = tether(&["force-unlock", "not-the-id", "org"], s.dir.path());
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("does not match the lock held"),
        "{}",
        wrong.stderr
    );

    let out = tether(&["force-unlock", &id, "org"], s.dir.path());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("Released the lock held by `apply` by "),
        "{}",
        out.stdout
    );
    assert!(!tether::lock::lock_path(&state).exists());

    let again = tether(
        &["force-unlock", &id, "--state", state.to_str().unwrap()],
        s.dir.path(),
    );
    assert_eq!(again.code, 1);
    assert_eq!(again.stderr.trim(), "error: the state is not locked");
}

/// A lock taken by this test process (which lives on), then rewritten as `edit` says.
fn lock_file(state: &std::path::Path, edit: impl FnOnce(&mut serde_json::Value)) {
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(tether::lock::lock_path(state));
    let lock = tether::lock::acquire(state, "apply", chrono::Utc::now()).unwrap();
    std::mem::forget(lock);
    let path = tether::lock::lock_path(state);
    let mut held: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut held);
    std::fs::write(&path, held.to_string()).unwrap();
}

fn lock_id(state: &std::path::Path) -> String {
    let text = std::fs::read_to_string(tether::lock::lock_path(state)).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u64 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    u64::from(child.id())
}

/// An empty state, so `run --once` gets as far as taking the lock.
fn empty_state(s: &Scratch) -> std::path::PathBuf {
    s.write("org/tether.yaml", "version: 1\n");
    let state = s.path("org/.tether/state.db");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    drop(tether::state::SqliteState::open(&state).unwrap());
    state
}

#[test]
fn force_unlock_clears_an_empty_lock_file() {
    let s = Scratch::new();
    let state = empty_state(&s);
    let lock = tether::lock::lock_path(&state);
    std::fs::write(&lock, "").unwrap();
    let refused = tether(&["run", "org", "--once"], s.dir.path());
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("state.db.lock is empty: no tether holds it")
            && refused
                .stderr
                .contains("run `tether force-unlock empty` to remove it"),
        "{}",
        refused.stderr
    );
    let out = tether(&["force-unlock", "empty", "org"], s.dir.path());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Removed the empty lock file ")
            && out.stdout.contains("state.db.lock; it held no lock."),
        "{}",
        out.stdout
    );
    assert!(!lock.exists());
}

#[test]
fn lock_of_a_dead_holder_is_taken_over_with_a_note() {
    let s = Scratch::new();
    let state = empty_state(&s);
    let pid = dead_pid();
    lock_file(&state, |l| l["pid"] = pid.into());
    // `run` takes the lock, then stops: nothing has been applied to this state.
    let out = tether(&["run", "org", "--once"], s.dir.path());
    assert!(
        out.stderr.contains("no configuration has been applied yet"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("note: took over the state lock held by `apply` by ")
            && out.stderr.contains(&format!("(pid {pid}) since"))
            && out.stderr.contains(&format!("no process {pid} runs on ")),
        "{}",
        out.stderr
    );
    assert!(!tether::lock::lock_path(&state).exists(), "released");
}

#[test]
fn lock_of_a_live_holder_is_respected() {
    let s = Scratch::new();
    let state = empty_state(&s);
    // This test process holds it, and lives.
    lock_file(&state, |_| {});
    let out = tether(
        &["run", "org", "--once", "--lock-timeout", "0s"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: the state is locked: `apply` by ")
            && out
                .stderr
                .contains(&format!("(pid {})", std::process::id())),
        "{}",
        out.stderr
    );
    // Held from another host, whose processes tether cannot see: never taken over.
    let pid = dead_pid();
    lock_file(&state, |l| {
        l["pid"] = pid.into();
        l["host"] = "build-7.example.com".into();
        l["id"] = "17-2a".into();
    });
    let out = tether(
        &["run", "org", "--once", "--lock-timeout", "0s"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!(
            "on build-7.example.com (pid {pid}) since "
        )) && out.stderr.contains(
            "another host, where tether cannot see whether that process still runs. Wait for it to finish; if it is gone, run `tether force-unlock 17-2a`"
        ),
        "{}",
        out.stderr
    );
    assert!(tether::lock::lock_path(&state).exists());
}

#[test]
fn pid_reused_after_the_lock_was_taken_is_not_the_holder() {
    let s = Scratch::new();
    let state = s.path("org/.tether/state.db");
    let mut later = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = u64::from(later.id());
    // The lock says which process took it (its start after boot): not this one.
    lock_file(&state, |l| {
        l["pid"] = pid.into();
        l["process_start"] = 1.into();
    });
    // A lock from an older tether, without the process start: taken an hour before the
    // process now under that pid started.
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let legacy = |l: &mut serde_json::Value| {
        l["pid"] = pid.into();
        l["started_at"] = an_hour_ago.to_rfc3339().into();
        l.as_object_mut().unwrap().remove("process_start");
    };
    for edit in [None, Some(legacy)] {
        if let Some(edit) = edit {
            lock_file(&state, edit);
        }
        let lock = tether::lock::acquire(&state, "run", chrono::Utc::now()).unwrap();
        let note = lock.takeover_note().unwrap();
        assert!(
            note.contains(&format!("(pid {pid})"))
                && note.ends_with(&format!(
                    ": pid {pid} now belongs to a process started after the lock was taken"
                )),
            "{note}"
        );
        drop(lock);
    }
    later.kill().unwrap();
    later.wait().unwrap();
}

#[test]
fn force_unlock_of_a_live_holder_refuses_without_a_terminal_and_frees_it_with_yes() {
    let s = Scratch::new();
    let state = empty_state(&s);
    // This test process holds it, and lives.
    lock_file(&state, |_| {});
    let id = lock_id(&state);
    let refused = tether(&["force-unlock", &id, "org"], s.dir.path());
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains(&format!(
            "and process {} still runs on ",
            std::process::id()
        )) && refused
            .stderr
            .contains("freeing it lets two tethers write one state")
            && refused
                .stderr
                .contains("pass --yes to free the lock anyway"),
        "{}",
        refused.stderr
    );
    assert!(tether::lock::lock_path(&state).exists(), "still locked");
    let freed = tether(&["force-unlock", &id, "org", "--yes"], s.dir.path());
    assert_eq!(freed.code, 0, "{}", freed.stderr);
    assert!(
        freed
            .stdout
            .starts_with("Released the lock held by `apply` by "),
        "{}",
        freed.stdout
    );
    assert!(!tether::lock::lock_path(&state).exists());
}

/// `run` (and `apply`, which shares the wait) finds the state locked by a live holder:
/// it says whom it waits for, and goes on as soon as the lock is released.
#[test]
fn waiting_for_the_lock_shows_the_holder_and_goes_on_once_it_is_released() {
    use std::io::BufRead;
    let s = Scratch::new();
    let state = empty_state(&s);
    let held = tether::lock::acquire(&state, "apply", chrono::Utc::now()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["run", "org", "--once", "--lock-timeout", "10m"])
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = stderr.next().unwrap().unwrap();
    assert_eq!(
        first,
        format!(
            "waiting up to 10m for the state lock, held by {}",
            held.info
        ),
        "names who, where, the pid, since when and what"
    );
    assert!(
        first.contains(&format!("(pid {})", std::process::id())) && first.contains("`apply` by "),
        "{first}"
    );
    drop(held);
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    // It took the lock: past it, nothing has been applied to this state.
    assert_eq!(status.code(), Some(1));
    assert!(
        rest.iter()
            .any(|l| l.contains("no configuration has been applied yet")),
        "{rest:?}"
    );
    assert!(!tether::lock::lock_path(&state).exists(), "released");
}

#[test]
fn a_lock_still_held_after_the_timeout_fails_naming_the_holder() {
    let s = Scratch::new();
    let state = empty_state(&s);
    lock_file(&state, |_| {});
    let id = lock_id(&state);
    let out = tether(
        &["run", "org", "--once", "--lock-timeout", "1s"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("waiting up to 1s for the state lock, held by `apply` by "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("error: the state is still locked after waiting 1s: `apply` by ")
            && out.stderr.contains("wait longer with --lock-timeout")
            && out
                .stderr
                .contains(&format!("run `tether force-unlock {id}`")),
        "{}",
        out.stderr
    );
}

/// A holder that dies while `run` waits for it is noticed at the next attempt: its lock is
/// taken over with a note, and run goes on.
#[test]
fn a_holder_that_dies_while_waited_for_is_taken_over_with_a_note() {
    use std::io::BufRead;
    let s = Scratch::new();
    let state = empty_state(&s);
    let mut holder = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid = u64::from(holder.id());
    // A lock of that process (without the process start, as an older tether wrote it, and
    // taken after the process started, so it counts as that process's).
    lock_file(&state, |l| {
        l["pid"] = pid.into();
        l["started_at"] = (chrono::Utc::now() + chrono::Duration::seconds(5))
            .to_rfc3339()
            .into();
        let l = l.as_object_mut().unwrap();
        l.remove("process_start");
        l.remove("boot_id");
    });
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["run", "org", "--once", "--lock-timeout", "10m"])
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = stderr.next().unwrap().unwrap();
    assert!(
        first.starts_with("waiting up to 10m for the state lock, held by `apply` by ")
            && first.contains(&format!("(pid {pid})")),
        "{first}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert!(
        rest.iter().any(
            |l| l.starts_with("note: took over the state lock held by `apply` by ")
                && l.ends_with(&format!(
                    ": no process {pid} runs on {}",
                    tether::lock::host_name()
                ))
        ),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.contains("no configuration has been applied yet")),
        "{rest:?}"
    );
}

/// `reset` had no `--lock-timeout` and failed at once while a `run` cycle held the lock: it
/// waits as apply and run do, naming the holder, and goes on once the lock is released.
#[test]
fn reset_has_a_lock_timeout_and_waits_for_a_cycle_in_flight() {
    use std::io::BufRead;
    let s = Scratch::new();
    let state = empty_state(&s);
    let held = tether::lock::acquire(&state, "run", chrono::Utc::now()).unwrap();
    let timed_out = tether(
        &[
            "reset",
            "rep@example.com",
            "--config",
            "org",
            "--lock-timeout",
            "1s",
        ],
        s.dir.path(),
    );
    assert_eq!(timed_out.code, 1, "{}", timed_out.stderr);
    assert!(
        timed_out
            .stderr
            .contains("waiting up to 1s for the state lock, held by `run` by ")
            && timed_out
                .stderr
                .contains("error: the state is still locked after waiting 1s"),
        "{}",
        timed_out.stderr
    );

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["reset", "rep@example.com", "--config", "org"])
        .current_dir(s.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = stderr.next().unwrap().unwrap();
    assert_eq!(
        first,
        format!("waiting up to 5m for the state lock, held by {}", held.info),
        "waits by default as long as apply and run do"
    );
    drop(held);
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    // It took the lock: past it, this empty state has no such rep.
    assert_eq!(status.code(), Some(1));
    assert!(
        rest.iter()
            .any(|l| l.contains("rep@example.com has not been synced by this state")),
        "{rest:?}"
    );
    assert!(!tether::lock::lock_path(&state).exists(), "released");
}
