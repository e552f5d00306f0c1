//! The shipped examples and the checked-in schema stay valid and current.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_validates() {
    let out = tether(&["validate", "examples/"], &repo());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = tether(&["validate", "--format", "json", "examples/"], &repo());
    let report = out.json();
    assert_eq!(report["error_count"], 0);
    // Only warnings about secrets not set on this machine, Exchange Online's EWS
    // retirement for the examples that use it, and (until the Graph connector ships)
    // exchange-online.yaml's Graph connection that only test-connection opens.
    for d in report["diagnostics"].as_array().unwrap() {
        if d["severity"] == "warning" {
            let s = d["summary"].as_str().unwrap();
            assert!(
                s.starts_with("environment variable")
                    || s.starts_with("secret file")
                    || s.starts_with("Exchange Online blocks EWS")
                    || s.starts_with("syncing through Microsoft Graph is not available"),
                "{d}"
            );
        }
    }
    for file in [
        "examples/quickstart.yaml",
        "examples/full.yaml",
        "examples/exchange-online.yaml",
    ] {
        assert_eq!(tether(&["validate", file], &repo()).code, 0, "{file}");
    }
}

#[test]
fn every_example_names_the_schema_for_editors() {
    let mut files = Vec::new();
    yaml_files(&repo().join("examples"), &mut files);
    // examples/ci holds CI workflows, not tether configuration.
    files.retain(|f| !f.starts_with(repo().join("examples/ci")));
    assert!(files.len() >= 7, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let schema = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{} must start with the schema line", file.display()));
        let target = file.parent().unwrap().join(schema);
        assert!(
            target.canonicalize().unwrap()
                == repo()
                    .join("schemas/tether.schema.json")
                    .canonicalize()
                    .unwrap(),
            "{}: {schema} does not point at schemas/tether.schema.json",
            file.display()
        );
    }
}

#[test]
fn multi_org_example_validates_as_two_orgs_together() {
    let out = tether(
        &[
            "validate",
            "examples/multi-org/sandbox",
            "examples/multi-org/production",
        ],
        &repo(),
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn multi_org_example_refuses_a_user_active_in_both_orgs() {
    let s = Scratch::new();
    for org in ["sandbox", "production"] {
        let mut files = Vec::new();
        yaml_files(&repo().join("examples/multi-org").join(org), &mut files);
        for file in files {
            let rel = file
                .strip_prefix(repo().join("examples/multi-org"))
                .unwrap();
            s.write(rel.to_str().unwrap(), std::fs::read(&file).unwrap());
        }
    }
    // Add the production rep to the sandbox pilot as well.
    let pilot = s.path("sandbox/sync/pilot.yaml");
    let text = std::fs::read_to_string(&pilot).unwrap();
    let text = text.replace(
        "users: [qa.rep@awcomputing.com,",
        "users: [celia.kung@awcomputing.com, qa.rep@awcomputing.com,",
    );
    std::fs::write(&pilot, &text).unwrap();
    let out = tether(
        &["validate", "--format", "json", "sandbox", "production"],
        s.dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let report = out.json();
    let d = find(
        &report,
        "user `celia.kung@awcomputing.com` is active in two orgs: `awcomputing-uat` and `awcomputing-prod`",
    );
    let europe = std::fs::read_to_string(s.path("production/sync/europe.yaml")).unwrap();
    assert_at(
        d,
        "error",
        "production/sync/europe.yaml",
        position_of(&europe, "celia.kung"),
    );
    let related = &d["related"][0]["range"];
    assert!(
        related["filename"]
            .as_str()
            .unwrap()
            .ends_with("sandbox/sync/pilot.yaml")
    );
    assert_eq!(related["start"]["line"], position_of(&text, "celia.kung").0);
}

#[test]
fn checked_in_schema_is_current() {
    let out = tether(&["schema"], &repo());
    assert_eq!(out.code, 0);
    let checked_in = std::fs::read_to_string(repo().join("schemas/tether.schema.json")).unwrap();
    assert!(
        out.stdout == checked_in,
        "schemas/tether.schema.json is stale; regenerate it with:\n    cargo run -- schema > schemas/tether.schema.json"
    );
    let schema: serde_json::Value = serde_json::from_str(&checked_in).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn checked_in_plan_schema_is_current() {
    let out = tether(&["schema", "plan"], &repo());
    assert_eq!(out.code, 0);
    let checked_in = std::fs::read_to_string(repo().join("schemas/plan.schema.json")).unwrap();
    assert!(
        out.stdout == checked_in,
        "schemas/plan.schema.json is stale; regenerate it with:\n    cargo run -- schema plan > schemas/plan.schema.json"
    );
}

/// The command lines of examples/deploy (the systemd unit's ExecStart, the image's
/// ENTRYPOINT and CMD) are ones tether accepts, and the image's health check asks the port
/// that `run --listen` serves.
#[test]
fn the_deploy_examples_run_commands_tether_accepts() {
    use clap::Parser;
    let read = |name: &str| {
        std::fs::read_to_string(repo().join("examples/deploy").join(name))
            .unwrap()
            .replace("\\\n", " ")
    };
    let unit = read("tether.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let unit_args: Vec<&str> = exec.split_whitespace().collect();
    assert!(unit_args[0].ends_with("/tether"), "{exec}");
    let docker = read("Dockerfile");
    let json_line = |key: &str| -> Vec<String> {
        let line = docker
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"));
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{key} {line}: {e}"))
    };
    let mut image_args = json_line("ENTRYPOINT ");
    image_args.extend(json_line("CMD "));
    for args in [
        unit_args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        image_args,
    ] {
        let cli =
            tether::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let tether::cli::Command::Run(run) = cli.command else {
            panic!("{args:?} is not `tether run`")
        };
        let listen = run.listen.expect("--listen");
        assert!(
            unit.contains(&format!("--listen {listen}"))
                || docker.contains(&format!("http://127.0.0.1:{}/healthz", listen.port())),
            "{args:?}: the health check asks another port"
        );
        assert_eq!(cli.log_format, tether::cli::logging::LogFormat::Json);
    }
}
