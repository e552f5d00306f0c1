//! The command-line conventions admins expect: shell completions, a man page, `--version`
//! with the commit and build date, examples and environment variables in `--help`.

use crate::common::*;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Subcommands every generated document must know (a sample across the list).
const COMMANDS: [&str; 6] = ["plan", "apply", "show", "run", "status", "validate"];

#[test]
fn completions_script_for_each_shell_names_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = tether(&["completions", shell], &repo());
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for command in COMMANDS {
            assert!(
                out.stdout.contains(command),
                "{shell} script lacks {command}:\n{}",
                out.stdout
            );
        }
    }
    let bash = tether(&["completions", "bash"], &repo());
    assert!(bash.stdout.contains("complete -F"), "{}", bash.stdout);
    assert!(bash.stdout.contains("--lock-timeout"), "{}", bash.stdout);
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let out = tether(&["completions", "tcsh"], &repo());
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bash"), "{}", out.stderr);
}

#[test]
fn man_page_is_roff_and_lists_the_commands() {
    let out = tether(&["man"], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(".TH tether 1"), "{}", out.stdout);
    for command in COMMANDS {
        assert!(
            out.stdout.contains(&format!("tether\\-{command}(1)")),
            "{command}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn man_out_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = tether(&["man", "--out", dir.path().to_str().unwrap()], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dir.path().join("tether.1").is_file());
    for command in COMMANDS {
        let page = std::fs::read_to_string(dir.path().join(format!("tether-{command}.1")))
            .unwrap_or_else(|e| panic!("tether-{command}.1: {e}"));
        assert!(page.contains(".TH"), "{page}");
    }
}

#[test]
fn man_out_into_a_missing_directory_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let out = tether(&["man", "--out", missing.to_str().unwrap()], &repo());
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no/such/dir"), "{}", out.stderr);
}

/// `--version` names the package version, the commit it was built from (the checkout's
/// HEAD here; "unknown" only without git) and the build date.
#[test]
fn version_shows_the_commit_and_build_date() {
    let out = tether(&["--version"], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.trim();
    let prefix = format!("tether {} (commit ", env!("CARGO_PKG_VERSION"));
    let rest = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, rest) = rest
        .split_once(", built ")
        .unwrap_or_else(|| panic!("{line}"));
    let date = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line}"));
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{line}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit, head, "{line}"),
        None => assert_eq!(commit, "unknown", "{line}"),
    }
}

#[test]
fn help_of_plan_apply_and_run_has_examples_that_parse() {
    use clap::Parser;
    for command in ["plan", "apply", "run"] {
        let out = tether(&[command, "--help"], &repo());
        assert_eq!(out.code, 0, "{}", out.stderr);
        let examples = out
            .stdout
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command} --help has no examples:\n{}", out.stdout));
        for line in examples
            .lines()
            .filter(|l| l.trim_start().starts_with("tether "))
        {
            let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
            assert_eq!(words[1], command, "{line}");
            if let Err(e) = tether::cli::Cli::try_parse_from(&words) {
                panic!("{line}: {e}");
            }
        }
    }
}

/// The top-level `--help` lists the environment variables tether reads.
#[test]
fn top_level_help_lists_the_environment_variables() {
    let out = tether(&["--help"], &repo());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let environment = out
        .stdout
        .split("Environment:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", out.stdout));
    for name in ["TETHER_STATE", "TETHER_LOG_FILE", "RUST_LOG", "PGPASSWORD"] {
        assert!(environment.contains(name), "{name}:\n{}", out.stdout);
    }
}
