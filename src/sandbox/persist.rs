//! Keeps `tether sandbox`'s org on disk between runs: one JSON snapshot of both emulators,
//! written to a temporary file, flushed to disk and renamed over the last one, so a crash at
//! any moment leaves either the previous snapshot or the new one, never half of one.

use super::exchange::Snapshot as ExchangeSnapshot;
use super::generate::{self, Shape, Summary};
use super::salesforce::Snapshot as SalesforceSnapshot;
use super::seed::SandboxOrg;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const SNAPSHOT_FILE: &str = "sandbox.json";
/// Bumped when the snapshot's layout changes; an older file is refused with a hint to reset.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub format: u32,
    /// What the org was seeded with.
    pub shape: Shape,
    pub summary: Summary,
    pub exchange: ExchangeSnapshot,
    pub salesforce: SalesforceSnapshot,
}

impl SandboxOrg {
    pub fn snapshot(&self, shape: Shape, summary: Summary) -> Saved {
        Saved {
            format: FORMAT,
            shape,
            summary,
            exchange: self.exchange.snapshot(),
            salesforce: self.salesforce.handle().snapshot(),
        }
    }

    /// Puts a saved org back into freshly started emulators.
    pub fn restore(&mut self, saved: Saved) {
        self.exchange.restore(saved.exchange);
        let sf = self.salesforce.handle();
        sf.restore(saved.salesforce);
        let users = sf.records("User");
        self.rep_ids = generate::reps(&saved.shape)
            .iter()
            .filter_map(|rep| {
                users.iter().find_map(|u| {
                    (u.get("Username")?.as_str()? == rep.email)
                        .then(|| u.get("Id")?.as_str().map(str::to_string))
                        .flatten()
                })
            })
            .collect();
    }
}

pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Writes the snapshot atomically (temporary file, fsync, rename, fsync of the directory).
pub fn save(dir: &Path, saved: &Saved) -> Result<(), String> {
    let path = snapshot_path(dir);
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut out, saved)?;
        out.flush()?;
        out.get_ref().sync_all()?;
        drop(out);
        std::fs::rename(&tmp, &path)?;
        // The rename itself must reach the disk too.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot save the sandbox to {}: {e}", path.display()))
}

/// The saved org in `dir`, if there is one.
pub fn load(dir: &Path) -> Result<Option<Saved>, String> {
    let path = snapshot_path(dir);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let bad = |e: &dyn std::fmt::Display| {
        format!(
            "{} cannot be read ({e}); start with --reset to seed a new org (this replaces the sandbox's data)",
            path.display()
        )
    };
    let value: serde_json::Value =
        serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| bad(&e))?;
    let format = value.get("format").and_then(serde_json::Value::as_u64);
    if format != Some(u64::from(FORMAT)) {
        return Err(bad(&format!(
            "it is not a snapshot in format {FORMAT}, the one this tether reads"
        )));
    }
    serde_json::from_value(value).map(Some).map_err(|e| bad(&e))
}
