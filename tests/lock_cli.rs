//! `tether force-unlock` releases a lock left behind, only with its id.

mod common;

use common::*;

#[test]
fn force_unlock_releases_a_stale_lock_by_id() {
    let s = Scratch::new();
    s.write("org/tether.yaml", "version: 1\n");
    let state = s.path("org/.tether/state.db");
    let lock = tether::lock::acquire(&state, "apply", chrono::Utc::now()).unwrap();
    let id = lock.info.id.clone();
    std::mem::forget(lock); // the holder died

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
