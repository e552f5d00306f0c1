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
    // Only warnings about secrets not set on this machine and Exchange Online's EWS
    // retirement for the examples that use it.
    for d in report["diagnostics"].as_array().unwrap() {
        if d["severity"] == "warning" {
            let s = d["summary"].as_str().unwrap();
            assert!(
                s.starts_with("environment variable")
                    || s.starts_with("secret file")
                    || s.starts_with("Exchange Online blocks EWS"),
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

/// examples/ci/update-pr-comment.sh updates the comment that starts with the plan's marker
/// and posts a new one when there is none. `gh` is a stand-in that logs its calls and
/// answers the comment search with `$FOUND`.
#[test]
fn the_ci_example_updates_the_plan_comment_in_place_by_its_marker() {
    let s = Scratch::new();
    s.write(
        "bin/gh",
        "#!/bin/sh\necho \"$MARKER|$*\" >> \"$GH_LOG\"\ncase \"$*\" in *--jq*) [ -n \"$FOUND\" ] && echo \"$FOUND\";; esac\nexit 0\n",
    );
    let gh = s.path("bin/gh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.write(
        "plan.md",
        "<!-- tether:plan org=acme -->\n### tether plan: `acme`\n",
    );
    s.write("other.md", "### not a plan\n");
    let run = |plan: &str, found: &str| {
        let log = s.path("gh.log");
        let _ = std::fs::remove_file(&log);
        let out = std::process::Command::new(repo().join("examples/ci/update-pr-comment.sh"))
            .args([plan, "7", "o/r"])
            .current_dir(s.dir.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    s.path("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("GH_LOG", &log)
            .env("FOUND", found)
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        (out, calls)
    };
    let (out, calls) = run("plan.md", "42");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(
        lines,
        [
            "<!-- tether:plan org=acme -->|api --paginate repos/o/r/issues/7/comments --jq .[] | select(.body | startswith(env.MARKER)) | .id",
            "|api --method PATCH repos/o/r/issues/comments/42 -F body=@plan.md",
        ]
    );
    let (out, calls) = run("plan.md", "");
    assert!(out.status.success(), "{out:?}");
    assert!(
        calls.ends_with("|api --method POST repos/o/r/issues/7/comments -F body=@plan.md\n"),
        "{calls}"
    );
    let (out, calls) = run("other.md", "");
    assert_eq!(out.status.code(), Some(1));
    assert!(calls.is_empty(), "{calls}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not start with tether's marker line"),
        "{out:?}"
    );
}

/// The exit codes are documented twice, in `--help` and README's table, with the same codes.
#[test]
fn help_and_readme_list_the_exit_codes() {
    let help = tether(&["--help"], &repo());
    assert_eq!(help.code, 0);
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table = readme
        .split("### Exit codes")
        .nth(1)
        .expect("README has an exit-code table");
    for code in ["0", "1", "2"] {
        assert!(
            help.stdout.contains(&format!("\n  {code}  ")),
            "{code}:\n{}",
            help.stdout
        );
        assert!(table.contains(&format!("\n| {code} | ")), "{code}");
    }
    assert!(help.stdout.contains("--exit-zero"), "{}", help.stdout);
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
