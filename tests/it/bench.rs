//! `tether-bench` with tiny parameters, so the benchmark keeps working: every phase runs
//! (the emulators in their own process or in the benchmark's; one size or a sweep),
//! the table and the JSON report come out, and the figures that do not depend on the
//! machine hold (a no-change cycle plans nothing, reads Salesforce in a fixed handful of
//! calls and each synced folder once per rep; the org converges).

use serde_json::Value;
use std::process::Command;

#[test]
fn the_benchmark_runs_every_phase_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("bench/results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .args([
            "--reps",
            "3",
            "--contacts",
            "10",
            "--events",
            "10",
            "--change-percent",
            "10",
            "--out",
        ])
        .arg(&out_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for row in [
        "initial sync",
        "next cycle (own writes)",
        "no-change cycle",
        "plan (no change)",
        "incremental (10% each side)",
        "Targets",
        "Converged after the incremental cycle: yes",
    ] {
        assert!(stdout.contains(row), "missing `{row}`:\n{stdout}");
    }

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(report["params"]["reps"], 3);
    assert_eq!(report["synced_reps"], 3);
    assert_eq!(report["converged"], true);
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 5);
    let phase = |name: &str| {
        phases
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no phase {name}: {report}"))
    };

    let initial = phase("initial sync");
    assert!(initial["records"].as_u64().unwrap() > 30, "{initial}");
    assert_eq!(initial["failed"], 0, "{initial}");
    assert_eq!(initial["written"], initial["planned_changes"], "{initial}");
    for side in ["salesforce", "exchange"] {
        let calls = &initial[side];
        assert!(calls["floor"].as_u64().unwrap() > 0, "{calls}");
        assert!(
            calls["total"].as_u64().unwrap() >= calls["floor"].as_u64().unwrap(),
            "{calls}"
        );
    }

    let quiet = phase("no-change cycle");
    assert_eq!(quiet["planned_changes"], 0, "{quiet}");
    assert!(
        quiet["salesforce"]["total"].as_u64().unwrap() <= 4,
        "{quiet}"
    );
    assert_eq!(
        quiet["exchange"]["by_kind"]["SyncFolderItems"], 6,
        "{quiet}"
    );
    assert_eq!(phase("plan (no change)")["planned_changes"], 0);

    let incremental = phase("incremental (10% each side)");
    assert!(
        incremental["records"].as_u64().unwrap() >= 2,
        "{incremental}"
    );
    assert_eq!(
        incremental["written"], incremental["records"],
        "{incremental}"
    );

    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6, "{report}");
    for t in targets {
        assert!(t["met"].is_boolean() && t["measured"].is_string(), "{t}");
    }
}

#[test]
fn the_benchmark_runs_over_graph_and_counts_graph_calls_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("graph.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .args(["--api", "graph", "--reps", "2", "--contacts", "6"])
        // A quarter of the records edited: Salesforce-side edits of events included.
        .args(["--events", "4", "--change-percent", "25", "--out"])
        .arg(&out_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Graph calls/floor"), "{stdout}");
    assert!(stdout.contains("items in $batch"), "{stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(report["params"]["api"], "graph");
    let phase = |name: &str| {
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no phase {name}: {report}"))
            .clone()
    };
    let initial = phase("initial sync")["exchange"].clone();
    assert_eq!(initial["by_kind"]["token"], 1, "{initial}");
    assert!(
        initial["by_kind"]["$batch"].as_u64().unwrap() > 0,
        "{initial}"
    );
    assert!(
        initial["by_kind"].get("SyncFolderItems").is_none(),
        "{initial}"
    );
    let items = initial["batch_items"].as_u64().unwrap();
    let batches = initial["by_kind"]["$batch"].as_u64().unwrap();
    assert!(items >= batches && items <= 4 * batches, "{initial}");
    assert!(initial["total"].as_u64().unwrap() >= initial["floor"].as_u64().unwrap());

    // A no-change cycle: per rep one delta page per folder and the folder check, the
    // token reused, nothing batched: exactly the floor.
    let quiet = phase("no-change cycle");
    assert_eq!(quiet["planned_changes"], 0, "{quiet}");
    let mail = &quiet["exchange"];
    assert_eq!(mail["by_kind"]["delta pages"], 4, "{mail}");
    assert!(mail["by_kind"].get("token").is_none(), "{mail}");
    assert_eq!(mail["batch_items"], 0, "{mail}");
    assert_eq!(mail["total"], mail["floor"], "{mail}");

    // Defect: the incremental phase edited a meeting's place in Salesforce, which Graph
    // cannot write without mailing the attendees, so the run never converged. The bench's
    // edits over Graph are ones Graph writes: every one is written, and the org converges.
    let incremental = phase("incremental (25% each side)");
    assert_eq!(incremental["failed"], 0, "{incremental}");
    assert_eq!(report["converged"], true, "{stdout}");
}

/// The emulators run in a process of their own by default, and a sweep runs each size in
/// one more: the report gives tether's own CPU and memory and the emulators' apart, and
/// the sweep fits how each figure grows with the org.
#[test]
fn the_benchmark_sweeps_org_sizes_with_the_emulators_in_their_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("sweep.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .args(["--sweep", "2,4", "--contacts", "6", "--events", "4"])
        .args(["--change-percent", "20", "--out"])
        .arg(&out_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for row in ["records/s", "peak MB", "emu MB", "SF calls/floor", "b = "] {
        assert!(stdout.contains(row), "missing `{row}`:\n{stdout}");
    }

    let sweep: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let points = sweep["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{sweep}");
    for (point, reps) in points.iter().zip([2, 4]) {
        assert_eq!(point["reps"], reps, "{point}");
        assert_eq!(point["converged"], true, "{point}");
        assert!(point["records"].as_u64().unwrap() > 0, "{point}");
        assert!(point["peak_rss_mb"].as_f64().unwrap() > 0.0, "{point}");
        assert!(
            point["emulators_peak_rss_mb"].as_f64().unwrap() > 0.0,
            "{point}"
        );
        assert!(point["salesforce_floor"].as_u64().unwrap() > 0, "{point}");
        assert!(
            point["no_change_salesforce_calls"].as_u64().unwrap() <= 4,
            "{point}"
        );
    }
    // Twice the reps, twice the records: the Exchange calls of the initial sync (per
    // mailbox) grow in proportion.
    assert_eq!(
        points[1]["records"].as_u64().unwrap(),
        2 * points[0]["records"].as_u64().unwrap(),
        "{sweep}"
    );
    let fit = |figure: &str| {
        sweep["fits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["figure"] == figure)
            .unwrap_or_else(|| panic!("no fit of {figure}: {sweep}"))["exponent"]
            .as_f64()
            .unwrap()
    };
    assert!(
        (fit("Exchange calls, initial sync") - 1.0).abs() < 0.05,
        "{sweep}"
    );
    assert!(fit("tether peak RSS MB").is_finite(), "{sweep}");

    // Each size's report: the emulators' use beside tether's, phase by phase.
    let report = &sweep["reports"][0];
    assert_eq!(
        report["params"]["emulators"], "separate-process",
        "{report}"
    );
    assert!(report["emulators_rss_after_generate_mb"].as_f64().unwrap() > 0.0);
    for phase in report["phases"].as_array().unwrap() {
        let emulators = &phase["emulators"];
        assert!(emulators["cpu_seconds"].as_f64().unwrap() >= 0.0, "{phase}");
        assert!(emulators["peak_rss_mb"].as_f64().unwrap() > 0.0, "{phase}");
    }
}

/// `--emulators in-process` keeps the emulators in the benchmark's process: no figures
/// apart, and the same calls.
#[test]
fn the_benchmark_can_keep_the_emulators_in_its_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("in-process.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tether-bench"))
        .args([
            "--emulators",
            "in-process",
            "--reps",
            "2",
            "--contacts",
            "6",
        ])
        .args(["--events", "4", "--change-percent", "20", "--out"])
        .arg(&out_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("The emulators run in this process"),
        "{stdout}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(report["params"]["emulators"], "in-process", "{report}");
    assert_eq!(report["converged"], true, "{report}");
    assert!(
        report.get("emulators_rss_after_generate_mb").is_none(),
        "{report}"
    );
    for phase in report["phases"].as_array().unwrap() {
        assert!(phase.get("emulators").is_none(), "{phase}");
    }
    let quiet = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "no-change cycle")
        .unwrap();
    assert_eq!(
        quiet["exchange"]["by_kind"]["SyncFolderItems"], 4,
        "{quiet}"
    );
}
