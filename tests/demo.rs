//! `tether demo`, the README's first command, runs the whole loop on the built-in sandbox
//! and ends with "No changes" after its last apply.

mod common;

#[test]
fn demo_runs_the_loop_and_ends_with_no_changes() {
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
