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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    const SHAPE: Shape = Shape {
        reps: 3,
        contacts_per_rep: 10,
        events_per_rep: 10,
        seed: 1,
    };

    #[tokio::test]
    async fn a_saved_org_comes_back_whole_and_carries_on_where_it_left_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut org = seed::start_empty(0, 0).await.unwrap();
        let summary = org.seed(&SHAPE, chrono::Utc::now()).unwrap();
        save(dir.path(), &org.snapshot(SHAPE, summary.clone())).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(snapshot_path(dir.path()))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let mut back = seed::start_empty(0, 0).await.unwrap();
        let saved = load(dir.path()).unwrap().expect("a snapshot");
        assert_eq!((saved.shape, &saved.summary), (SHAPE, &summary));
        back.restore(saved);
        assert_eq!(back.rep_ids, org.rep_ids);
        let (sf, sf_back) = (org.salesforce.handle(), back.salesforce.handle());
        for object in [
            "Contact",
            "Lead",
            "Event",
            "Account",
            "User",
            "EventRelation",
        ] {
            assert_eq!(sf.records(object), sf_back.records(object), "{object}");
        }
        let rep = seed::REPS[0].0;
        for folder in ["calendar", "contacts"] {
            let id = org.exchange.folder_id(rep, folder).unwrap();
            assert_eq!(back.exchange.folder_id(rep, folder), Some(id.clone()));
            assert_eq!(org.exchange.items(rep, &id), back.exchange.items(rep, &id));
        }
        let sync = org.sync_folder(rep).unwrap();
        assert_eq!(back.sync_folder(rep).unwrap(), sync);
        assert_eq!(
            org.exchange.items(rep, &sync),
            back.exchange.items(rep, &sync)
        );

        // New records get new ids: the counters came back too.
        let before: Vec<_> = sf_back.records("Contact");
        let id = sf_back
            .insert("Contact", serde_json::json!({"LastName": "New"}))
            .unwrap();
        assert!(before.iter().all(|r| r["Id"] != id.as_str()));
        let item = back
            .exchange
            .put_contact(rep, &sync, crate::exchange::model::Contact::default())
            .unwrap();
        assert!(org.exchange.item(rep, &item.id).is_none());
    }

    #[test]
    fn no_snapshot_is_none_and_a_damaged_one_says_how_to_start_over() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        std::fs::write(snapshot_path(dir.path()), "{\"format\": 1, \"shape\": ").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.contains("sandbox.json") && e.contains("--reset"), "{e}");
        std::fs::write(snapshot_path(dir.path()), "{\"format\": 99}").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.contains("format 1") && e.contains("--reset"), "{e}");
    }
}
