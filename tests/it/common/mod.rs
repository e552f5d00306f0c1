//! Helpers shared by the integration tests: run the real binary in a scratch directory.
#![allow(dead_code)]

pub mod pg;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment the base configurations reference, so "not set" warnings stay out of the way.
pub const TEST_ENV: &[(&str, &str)] = &[
    ("TETHER_TEST_PASSWORD", "not-a-real-password"),
    ("TETHER_TEST_TOKEN", "not-a-real-token"),
];

/// The service account the emulated Exchanges let in (impersonating the Sales department),
/// its password, and the emulated Salesforce's connected-app secret: one set for every test.
pub const SVC: &str = "svc-tether@corp.com";
pub const PASSWORD: &str = "Ews-Pa55w0rd-7431";
pub const SF_SECRET: &str = "sandbox-client-secret";
/// The connected app's client id in the emulated orgs.
pub const SF_CLIENT_ID: &str = "3MVG9tether.sandbox.client";

/// Rep `n`'s address, in mailboxes and as a Salesforce username.
pub fn rep_mail(n: usize) -> String {
    format!("rep{n}@corp.com")
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

pub fn tether(args: &[&str], cwd: &Path) -> Output {
    tether_with_env(args, cwd, &[])
}

/// Runs tether with `TEST_ENV` plus `env`.
pub fn tether_with_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .current_dir(cwd)
        .envs(TEST_ENV.iter().copied())
        .envs(env.iter().copied())
        .output()
        .expect("run tether");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// 1-based line and column (in characters) of the first occurrence of `needle`.
pub fn position_of(text: &str, needle: &str) -> (u64, u64) {
    let byte = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the test text"));
    let before = &text[..byte];
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..byte].chars().count() as u64 + 1;
    (line, column)
}

/// The one diagnostic with this summary; panics with the whole report otherwise.
pub fn find<'a>(report: &'a Value, summary: &str) -> &'a Value {
    let diags = report["diagnostics"].as_array().expect("diagnostics array");
    let found: Vec<&Value> = diags.iter().filter(|d| d["summary"] == summary).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one diagnostic `{summary}`, report:\n{}",
        serde_json::to_string_pretty(report).unwrap()
    );
    found[0]
}

/// Asserts severity, file name, line and column of a diagnostic.
pub fn assert_at(d: &Value, severity: &str, file: &str, (line, column): (u64, u64)) {
    assert_eq!(d["severity"], severity, "{d}");
    let filename = d["range"]["filename"].as_str().expect("range.filename");
    assert!(
        filename.ends_with(file),
        "{filename} should end with {file}"
    );
    assert_eq!(d["range"]["start"]["line"], line, "{d}");
    assert_eq!(d["range"]["start"]["column"], column, "{d}");
}
