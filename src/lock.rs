//! The state lock: `apply` and `run` hold it so that two of them never write one state.
//! It is a file created exclusively next to the state, holding who, where and what; a
//! second taker fails at once and names the holder. A holder that died leaves the file;
//! `tether force-unlock LOCK_ID` removes it, and only with the right id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub operation: String,
    pub started_at: DateTime<Utc>,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` by {} on {} (pid {}) since {} (lock id {})",
            self.operation,
            self.who,
            self.host,
            self.pid,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.id
        )
    }
}

#[derive(Debug)]
pub enum LockError {
    Held(LockInfo),
    /// A lock file that cannot be read: say where, so it can be looked at.
    Unreadable(PathBuf, String),
    Io(PathBuf, std::io::Error),
    WrongId {
        expected: String,
        given: String,
    },
    NotLocked,
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(info) => write!(
                f,
                "the state is locked: {info}. Wait for it to finish; if that process is gone, run `tether force-unlock {}`",
                info.id
            ),
            LockError::Unreadable(path, e) => write!(
                f,
                "lock file {} cannot be read ({e}); if no tether runs against this state, delete it",
                path.display()
            ),
            LockError::Io(path, e) => write!(f, "lock file {}: {e}", path.display()),
            LockError::WrongId { expected, given } => write!(
                f,
                "lock id `{given}` does not match the lock held ({expected}); nothing was unlocked"
            ),
            LockError::NotLocked => write!(f, "the state is not locked"),
        }
    }
}

impl std::error::Error for LockError {}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    pub info: LockInfo,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Only remove our own lock (force-unlock may have handed it to someone else).
        if read(&self.path).is_ok_and(|held| held.id == self.info.id) {
            let _ = std::fs::remove_file(&self.path);
            tracing::debug!(lock = %self.path.display(), id = %self.info.id, "state lock released");
        }
    }
}

/// The lock file of a state file: `state.db` → `state.db.lock`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<LockInfo, LockError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LockError::Unreadable(path.to_path_buf(), e.to_string()))?;
    serde_json::from_str(&text)
        .map_err(|e| LockError::Unreadable(path.to_path_buf(), e.to_string()))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown user".into())
}

/// Takes the lock for `operation`, or fails at once naming the holder.
pub fn acquire(state: &Path, operation: &str, now: DateTime<Utc>) -> Result<StateLock, LockError> {
    let path = lock_path(state);
    let pid = std::process::id();
    let info = LockInfo {
        id: format!(
            "{:x}-{pid:x}",
            now.timestamp_nanos_opt().unwrap_or_default()
        ),
        who: user_name(),
        host: host_name(),
        pid,
        operation: operation.to_string(),
        started_at: now,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| LockError::Io(dir.to_path_buf(), e))?;
    }
    let text = serde_json::to_string_pretty(&info).expect("lock info serializes");
    // Write the whole lock under a private name, then link it into place: linking fails if
    // the lock exists, and a process killed at any moment leaves either no lock or a
    // complete one, never an empty file nobody can read.
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}.tmp", info.id));
    let staged = PathBuf::from(staged);
    let written = std::fs::File::create(&staged)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
    let linked = written.and_then(|()| std::fs::hard_link(&staged, &path));
    let _ = std::fs::remove_file(&staged);
    let created = match linked {
        // A file system without hard links: create the lock in place.
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all())),
        other => other,
    };
    match created {
        Ok(()) => {
            tracing::debug!(lock = %path.display(), id = %info.id, operation, "state lock taken");
            Ok(StateLock { path, info })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(LockError::Held(read(&path)?))
        }
        Err(e) => Err(LockError::Io(path, e)),
    }
}

/// Removes a lock left by a holder that is gone. The id must match, so a typo or an old
/// id never breaks a lock someone else holds now.
pub fn force_unlock(state: &Path, id: &str) -> Result<LockInfo, LockError> {
    let path = lock_path(state);
    if !path.exists() {
        return Err(LockError::NotLocked);
    }
    let held = read(&path)?;
    if held.id != id {
        return Err(LockError::WrongId {
            expected: held.id,
            given: id.to_string(),
        });
    }
    std::fs::remove_file(&path).map_err(|e| LockError::Io(path, e))?;
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_second_taker_fails_at_once_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".tether/state.db");
        let held = acquire(&state, "apply", now()).unwrap();
        let err = acquire(&state, "run", now()).unwrap_err();
        let LockError::Held(info) = &err else {
            panic!("{err}")
        };
        assert_eq!(info, &held.info);
        let text = err.to_string();
        assert!(
            text.starts_with("the state is locked: `apply` by "),
            "{text}"
        );
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(
            text.ends_with(&format!("run `tether force-unlock {}`", held.info.id)),
            "{text}"
        );
        drop(held);
        assert!(acquire(&state, "run", now()).is_ok(), "released on drop");
    }

    #[test]
    fn force_unlock_needs_the_right_id() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let held = acquire(&state, "apply", now()).unwrap();
        let id = held.info.id.clone();
        std::mem::forget(held); // as if the process died
        assert!(matches!(
            force_unlock(&state, "nope"),
            Err(LockError::WrongId { .. })
        ));
        assert_eq!(force_unlock(&state, &id).unwrap().id, id);
        assert!(matches!(
            force_unlock(&state, &id),
            Err(LockError::NotLocked)
        ));
        assert!(acquire(&state, "apply", now()).is_ok());
    }

    #[test]
    fn a_garbled_lock_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        std::fs::write(lock_path(&state), "garbage").unwrap();
        let err = acquire(&state, "apply", now()).unwrap_err();
        assert!(
            err.to_string().contains("state.db.lock cannot be read"),
            "{err}"
        );
    }
}
