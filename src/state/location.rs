//! Where the state is, and the one way every command opens and locks it: an SQLite file (the
//! default, `.tether/state.db` next to the configuration) or a Postgres schema. Chosen by
//! `--state FILE|URL`, else `TETHER_STATE`, else the configuration's `state:` setting.

use super::postgres::{PostgresLock, PostgresLocks, PostgresState, PostgresTarget, is_url};
use super::{SqliteState, StateError, StateStore};
use crate::config::model::{Config, StateSetting};
use crate::lock::{FileLocks, HeldLock, LockError, LockInfo, Locks};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub enum StateLocation {
    File(PathBuf),
    Postgres(Box<PostgresTarget>),
}

impl std::fmt::Display for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::File(path) => write!(f, "{}", path.display()),
            StateLocation::Postgres(target) => write!(f, "{target}"),
        }
    }
}

/// The state lock, held while this value lives.
#[derive(Debug)]
pub enum StateLockGuard {
    File(crate::lock::StateLock),
    Postgres(PostgresLock),
}

impl HeldLock for StateLockGuard {
    fn info(&self) -> &LockInfo {
        match self {
            StateLockGuard::File(lock) => lock.info(),
            StateLockGuard::Postgres(lock) => lock.info(),
        }
    }
    fn takeover_note(&self) -> Option<String> {
        match self {
            StateLockGuard::File(lock) => HeldLock::takeover_note(lock),
            StateLockGuard::Postgres(lock) => lock.takeover_note(),
        }
    }
}

/// The locks of a state, whichever backend keeps it.
#[derive(Debug, Clone)]
pub enum StateLocks {
    File(FileLocks),
    Postgres(Box<PostgresLocks>),
}

impl Locks for StateLocks {
    type Held = StateLockGuard;

    fn try_take(&self, operation: &str, now: DateTime<Utc>) -> Result<StateLockGuard, LockError> {
        match self {
            StateLocks::File(l) => l.try_take(operation, now).map(StateLockGuard::File),
            StateLocks::Postgres(l) => l.try_take(operation, now).map(StateLockGuard::Postgres),
        }
    }
    fn force_unlock(&self, id: &str) -> Result<Option<LockInfo>, LockError> {
        match self {
            StateLocks::File(l) => l.force_unlock(id),
            StateLocks::Postgres(l) => l.force_unlock(id),
        }
    }
    fn holder(&self) -> Result<Option<LockInfo>, LockError> {
        match self {
            StateLocks::File(l) => l.holder(),
            StateLocks::Postgres(l) => l.holder(),
        }
    }
}

impl StateLocation {
    /// `given`: `--state` or `TETHER_STATE`. `config` and `home`: the configuration (its
    /// `state:` setting, its org's schema) and where its relative paths start. `default`:
    /// the state file when nothing names one.
    pub fn resolve(
        given: Option<&str>,
        config: Option<(&Config, &Path)>,
        default: PathBuf,
    ) -> Result<Self, StateError> {
        let org = config.map(|(c, _)| c.org.name.as_str());
        let with_org = |target: PostgresTarget| match org {
            Some(org) => target.or_schema_of_org(org),
            None => target,
        };
        if let Some(given) = given {
            if !is_url(given) {
                return Ok(StateLocation::File(PathBuf::from(given)));
            }
            // Another URL (say, a read-only role's) for the `state:` setting's database: its
            // schema and CA file still apply unless the URL names its own.
            let mut target = PostgresTarget::parse(given, None, Path::new("."))?;
            if let Some((config, home)) = config
                && let Some(StateSetting::Postgres(pg)) = &config.state
            {
                target = target
                    .with_schema(pg.schema.clone())
                    .with_ca_file(pg.ca_file.as_ref().map(|f| home.join(f)));
            }
            return Ok(StateLocation::Postgres(Box::new(with_org(target))));
        }
        let Some((config, home)) = config else {
            return Ok(StateLocation::File(default));
        };
        Ok(match &config.state {
            None => StateLocation::File(default),
            Some(StateSetting::File(file)) => StateLocation::File(home.join(file)),
            // `tether validate` refuses a password written into this URL.
            Some(StateSetting::Postgres(pg)) => {
                let password = pg
                    .password
                    .as_ref()
                    .map(|r| crate::config::secrets::resolve(r, home))
                    .transpose()
                    .map_err(|e| {
                        StateError::new(
                            format!("the `state:` setting's password: {e}"),
                            "set the variable or file its reference names",
                        )
                    })?;
                let target = PostgresTarget::parse(&pg.url, password, home)?
                    .with_schema(pg.schema.clone())
                    .with_ca_file(pg.ca_file.as_ref().map(|f| home.join(f)));
                StateLocation::Postgres(Box::new(with_org(target)))
            }
        })
    }

    /// The state file, for the commands that work on files only.
    pub fn file(&self) -> Option<&Path> {
        match self {
            StateLocation::File(path) => Some(path),
            StateLocation::Postgres(_) => None,
        }
    }

    /// Whether a state is there (a dangling symbolic link is an error, not "no state").
    pub fn exists(&self) -> Result<bool, StateError> {
        match self {
            StateLocation::File(path) => SqliteState::exists(path),
            StateLocation::Postgres(target) => PostgresState::exists(target),
        }
    }

    /// Opens the state to read and write it, migrated to this build's schema; creates it
    /// when there is none.
    pub fn open(&self) -> Result<Box<dyn StateStore>, StateError> {
        Ok(match self {
            StateLocation::File(path) => Box::new(SqliteState::open(path)?),
            StateLocation::Postgres(target) => Box::new(PostgresState::open(target)?),
        })
    }

    /// Opens an existing state to read it (an SQLite file on a read-only file system too).
    pub fn open_read_only(&self) -> Result<Box<dyn StateStore>, StateError> {
        Ok(match self {
            StateLocation::File(path) => Box::new(SqliteState::open_read_only(path)?),
            StateLocation::Postgres(target) => Box::new(PostgresState::open_read_only(target)?),
        })
    }

    /// The state's locks (`crate::lock::wait_for` waits on them).
    pub fn locks(&self) -> StateLocks {
        match self {
            StateLocation::File(path) => StateLocks::File(FileLocks::new(path)),
            StateLocation::Postgres(target) => {
                StateLocks::Postgres(Box::new(PostgresLocks::new(target)))
            }
        }
    }

    /// Takes the state lock for `operation`, or fails at once naming the holder.
    pub fn lock(&self, operation: &str, now: DateTime<Utc>) -> Result<StateLockGuard, LockError> {
        self.locks().try_take(operation, now)
    }
}
