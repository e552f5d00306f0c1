//! `tether demo`, the README's first command, runs the whole loop on the built-in sandbox
//! and ends with "No changes" after its last apply.

use crate::common;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The demo serves its emulators on fixed ports: one demo at a time.
static DEMO: Mutex<()> = Mutex::new(());

#[test]
fn demo_runs_the_loop_and_ends_with_no_changes() {
    let _one = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = common::tether(&["demo"], dir.path());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for step in [
        "1. Start the sandbox",
        "3. Plan",
        "4. Apply",
        "7. Plan again",
        "9. Plan once more",
    ] {
        assert!(
            out.stdout.contains(step),
            "missing step `{step}`:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("Conflicts (1)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("skipped: 1 private event"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.lines().last(),
        Some("No changes. Sync settings and data are up to date.")
    );
    let applies: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Applied: "))
        .collect();
    assert_eq!(applies.len(), 2, "{}", out.stdout);
    assert!(
        applies.iter().all(|l| l.ends_with(" 0 failed.")),
        "{applies:?}"
    );
}

/// `tether demo --api graph`: the same loop through the emulator's Microsoft Graph face.
#[test]
fn demo_over_graph_runs_the_loop_and_ends_with_no_changes() {
    let _one = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = common::tether(&["demo", "--api", "graph"], dir.path());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("A local Exchange (Microsoft Graph)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("exchange.api: graph"), "{}", out.stdout);
    assert!(out.stdout.contains("Conflicts (1)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("skipped: 1 private event"),
        "{}",
        out.stdout
    );
    let applies: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Applied: "))
        .collect();
    assert_eq!(applies.len(), 2, "{}", out.stdout);
    assert!(
        applies.iter().all(|l| l.ends_with(" 0 failed.")),
        "{applies:?}"
    );
    assert_eq!(
        out.stdout.lines().last(),
        Some("No changes. Sync settings and data are up to date.")
    );
}

/// `tether demo | head -n 3`: the reader goes away after three lines. The demo used to panic
/// on its next `println!` ("failed printing to stdout: Broken pipe", exit 101).
#[test]
fn a_closed_stdout_ends_tether_demo_quietly_without_a_panic() {
    let _one = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("demo")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next().expect("a line").unwrap();
    }
    drop(lines); // the pipe's only reader closes it, as `head` does
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// `cargo run --release -- demo` must pick tether among the crate's binaries (there is also
/// `tether-bench`), or the README's first command fails before anything runs.
#[test]
fn cargo_run_runs_tether() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = &meta["packages"][0];
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(bins.len() > 1 || bins == ["tether"], "{bins:?}");
    assert_eq!(package["default_run"], "tether", "{bins:?}");
}
