//! A short libFuzzer run of every fuzz target (`fuzz/`), behind `--ignored` because it
//! builds the targets in release mode and fuzzes each for a while:
//!
//!     cargo test --test it fuzz_smoke:: -- --ignored --nocapture
//!
//! Needs cargo-fuzz (`cargo install cargo-fuzz`). It runs on the stable toolchain without a
//! sanitizer (`-s none`: all of tether is safe Rust, so panics, stack overflows, timeouts
//! and memory blow-ups are what there is to find). `FUZZ_SECONDS` sets the time per target
//! (30 by default). New inputs go to a temporary directory and the seeds are not touched;
//! a failing input is saved under `fuzz/artifacts/<target>/`.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "builds and runs cargo-fuzz for FUZZ_SECONDS (30) per target"]
fn every_fuzz_target_survives_a_short_libfuzzer_run() {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "cargo-fuzz is not installed: run `cargo install cargo-fuzz`, then this test again"
    );
    let seconds = std::env::var("FUZZ_SECONDS").unwrap_or_else(|_| "30".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, _) in tether::fuzzing::TARGETS {
        let scratch = tempfile::tempdir().unwrap();
        let seeds = root.join("fuzz/corpus").join(target);
        let out = Command::new("cargo")
            .current_dir(root.join("fuzz"))
            .args(["fuzz", "run", "-s", "none", target])
            .arg(scratch.path())
            .arg(&seeds)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
                "-timeout=10",
                "-max_len=131072",
                "-print_final_stats=1",
            ])
            .output()
            .expect("run cargo fuzz");
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(str::trim)
            .unwrap_or("?");
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            out.status.success(),
            "fuzz target `{target}` failed after {runs} executions; the input is in fuzz/artifacts/{target}/:\n{}",
            lines[lines.len().saturating_sub(60)..].join("\n")
        );
        eprintln!("{target}: {runs} executions in {seconds} s, no failure");
    }
}
