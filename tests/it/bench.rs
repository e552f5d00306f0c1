//! `tether-bench` with tiny parameters, so the benchmark keeps working: every phase runs,
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
