//! Puts the commit and the build date into `tether --version`: TETHER_GIT_COMMIT (the short
//! hash, or "unknown" outside a git checkout, as in a crate tarball) and TETHER_BUILD_DATE
//! (UTC, from SOURCE_DATE_EPOCH for reproducible builds, else today).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = commit(&manifest_dir).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TETHER_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=TETHER_BUILD_DATE={}", build_date());
}

/// The short hash of HEAD when this package is the top of its own git checkout (not a
/// tarball unpacked inside some other repository); re-run only when HEAD moves.
fn commit(manifest_dir: &Path) -> Option<String> {
    let top = git(manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    // A worktree's HEAD is in its own git dir, branch refs in the common one.
    let git_dir = manifest_dir.join(git(manifest_dir, &["rev-parse", "--git-dir"])?);
    let common_dir = manifest_dir.join(git(manifest_dir, &["rev-parse", "--git-common-dir"])?);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Some(branch) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        println!(
            "cargo:rerun-if-changed={}",
            common_dir.join(branch).display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            common_dir.join("packed-refs").display()
        );
    }
    git(manifest_dir, &["rev-parse", "--short", "HEAD"])
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn build_date() -> String {
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}
