//! The SQLite state store: one file (default `.tether/state.db` next to the configuration),
//! mode 0600, versioned schema migrated forward on open, integrity-checked on open. A file
//! that is damaged, empty, foreign or from a newer tether is refused with a way out; tether
//! never silently starts fresh, because a fresh state would duplicate every record.

use super::*;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};

/// Marks a SQLite file as tether's (`PRAGMA application_id`, "tthr").
const APPLICATION_ID: i64 = 0x7474_6872;

/// The schema this build writes. Each entry of `MIGRATIONS` moves one version up.
pub const SCHEMA_VERSION: i64 = 4;

const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE revisions (generation INTEGER PRIMARY KEY, canonical TEXT NOT NULL,
        hash TEXT NOT NULL, applied_at TEXT NOT NULL, applied_by TEXT NOT NULL);
     CREATE TABLE links (id INTEGER PRIMARY KEY AUTOINCREMENT, rep TEXT NOT NULL,
        object TEXT NOT NULL, ex_item_id TEXT, ex_change_key TEXT, sf_id TEXT,
        sf_modstamp TEXT, hash TEXT NOT NULL);
     CREATE INDEX links_rep ON links (rep, object);
     CREATE INDEX links_sf ON links (object, sf_id);
     CREATE TABLE cursors (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE statuses (rep TEXT NOT NULL, object TEXT NOT NULL, direction TEXT NOT NULL,
        status TEXT NOT NULL, records_in_sync INTEGER NOT NULL, updated TEXT NOT NULL,
        PRIMARY KEY (rep, object, direction));
     CREATE TABLE resets (rep TEXT PRIMARY KEY, mark TEXT NOT NULL);
     CREATE TABLE errors (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
        rep TEXT NOT NULL, object TEXT, direction TEXT, record_ids TEXT NOT NULL,
        code TEXT NOT NULL, message TEXT NOT NULL, suggestion TEXT NOT NULL);
     CREATE TABLE activity (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
        object TEXT NOT NULL, records INTEGER NOT NULL);
     CREATE TABLE journal (marker TEXT PRIMARY KEY, rep TEXT NOT NULL, object TEXT NOT NULL,
        target TEXT NOT NULL, source_id TEXT NOT NULL, hash TEXT NOT NULL, at TEXT NOT NULL);
     CREATE TABLE unresolved (id INTEGER PRIMARY KEY AUTOINCREMENT, rep TEXT NOT NULL,
        event_id TEXT NOT NULL, email TEXT NOT NULL, at TEXT NOT NULL);",
    // 1 → 2: values of the store itself, such as the plan-signing key.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2 → 3: the email of each rep (links and statuses name reps by Salesforce user id),
    // for `status`, `errors` and `reset EMAIL`.
    "CREATE TABLE reps (rep TEXT PRIMARY KEY, email TEXT NOT NULL);",
    // 3 → 4: saved plans applied (`tether apply FILE`), so none is applied twice; with the
    // generation its apply recorded.
    "CREATE TABLE applied_plans (plan_id TEXT PRIMARY KEY, applied_at TEXT NOT NULL,
        generation INTEGER NOT NULL);",
];

const PLAN_KEY: &str = "plan_signing_key";

pub struct SqliteState {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteState")
            .field("path", &self.path)
            .finish()
    }
}

const WAY_OUT: &str = "restore the file from a backup; or move it aside and run again to start \
     a new state file (the first sync then re-links existing records by matching them instead of \
     duplicating them)";

fn db_err(path: &Path, what: &str, e: rusqlite::Error) -> StateError {
    StateError::new(
        format!("state file {}: {what}: {e}", path.display()),
        WAY_OUT,
    )
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn object(s: &str) -> ObjectKind {
    ObjectKind::parse(s).unwrap_or(ObjectKind::Contact)
}

impl SqliteState {
    /// Open the state file at `path`, creating it (and its directory) when it does not exist.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let fresh = !path.exists();
        if fresh {
            create_private_file(path)?;
        } else {
            let meta = std::fs::metadata(path).map_err(|e| {
                StateError::new(format!("state file {}: {e}", path.display()), WAY_OUT)
            })?;
            if !meta.is_file() {
                return Err(StateError::new(
                    format!("state file {} is not a file", path.display()),
                    "point --state at a file",
                ));
            }
            if meta.len() == 0 {
                return Err(StateError::new(
                    format!("state file {} is empty (truncated?)", path.display()),
                    WAY_OUT,
                ));
            }
            restrict_permissions(path)?;
        }
        let conn = Connection::open(path).map_err(|e| db_err(path, "cannot open", e))?;
        let mut store = SqliteState {
            conn,
            path: path.to_path_buf(),
        };
        store.check_and_migrate(fresh)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_and_migrate(&mut self, fresh: bool) -> Result<(), StateError> {
        let path = self.path.clone();
        let integrity: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| db_err(&path, "not a tether state file (or damaged)", e))?;
        if integrity != "ok" {
            return Err(StateError::new(
                format!(
                    "state file {} failed its integrity check: {integrity}",
                    path.display()
                ),
                WAY_OUT,
            ));
        }
        let app_id: i64 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| db_err(&path, "cannot read", e))?;
        if fresh {
            self.conn
                .execute_batch(&format!(
                    "PRAGMA application_id = {APPLICATION_ID};
                     PRAGMA journal_mode = WAL;
                     CREATE TABLE schema_version (version INTEGER NOT NULL);
                     INSERT INTO schema_version VALUES (0);"
                ))
                .map_err(|e| db_err(&path, "cannot initialise", e))?;
        } else if app_id != APPLICATION_ID {
            return Err(StateError::new(
                format!(
                    "{} is not a tether state file (it is some other SQLite database)",
                    path.display()
                ),
                "point --state at tether's state file (default .tether/state.db next to the \
                 configuration); tether will not write into another program's database",
            ));
        }
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
            .map_err(|e| db_err(&path, "cannot configure", e))?;
        let version: i64 = self
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .map_err(|e| db_err(&path, "has no schema version", e))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::new(
                format!(
                    "state file {} has schema version {version}, written by a newer tether \
                     (this one knows up to {SCHEMA_VERSION})",
                    path.display()
                ),
                "upgrade tether to the version that wrote the file; do not downgrade a state file",
            ));
        }
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_err(&path, "cannot migrate", e))?;
        for (v, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .map_err(|e| db_err(&path, &format!("migration to version {}", v + 1), e))?;
        }
        tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])
            .map_err(|e| db_err(&path, "cannot migrate", e))?;
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![PLAN_KEY, new_signing_key()?.expose()],
        )
        .map_err(|e| db_err(&path, "cannot migrate", e))?;
        tx.commit().map_err(|e| db_err(&path, "cannot migrate", e))
    }
}

/// 32 random bytes, hex: the key saved plans are signed with.
pub(super) fn new_signing_key() -> Result<crate::secret::Secret, StateError> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| {
            StateError::new(
                "no randomness available for the plan-signing key",
                "check the system's random source",
            )
        })?;
    Ok(crate::secret::Secret::new(
        key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| {
        StateError::new(
            format!("cannot create state file {}: {e}", path.display()),
            "check that the directory is writable",
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    Ok(())
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> Result<(), StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StateError::new(e.to_string(), ""))?;
    }
    Ok(())
}

/// The state names every rep and record; only the owner may read it.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        StateError::new(
            format!("cannot make state file {} private: {e}", path.display()),
            "run tether as the file's owner",
        )
    })
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> Result<(), StateError> {
    Ok(())
}

fn write(tx: &Transaction<'_>, change: StateChange) -> rusqlite::Result<()> {
    match change {
        StateChange::PutLink { id, link } => {
            let (ex_id, ex_ck) = match &link.exchange {
                Some(e) => (Some(e.item_id.as_str()), Some(e.change_key.as_str())),
                None => (None, None),
            };
            let (sf_id, sf_ms) = match &link.salesforce {
                Some(s) => (Some(s.id.as_str()), Some(s.modstamp.as_str())),
                None => (None, None),
            };
            tx.execute(
                "INSERT OR REPLACE INTO links
                   (id, rep, object, ex_item_id, ex_change_key, sf_id, sf_modstamp, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id.map(|i| i.0),
                    link.rep,
                    link.object.name(),
                    ex_id,
                    ex_ck,
                    sf_id,
                    sf_ms,
                    link.hash
                ],
            )?;
        }
        StateChange::DeleteLink(id) => {
            tx.execute("DELETE FROM links WHERE id = ?1", [id.0])?;
        }
        StateChange::ClearRep { rep } => {
            tx.execute("DELETE FROM links WHERE rep = ?1", [&rep])?;
            for object in ObjectKind::ALL {
                let key = CursorKey::Folder {
                    rep: rep.clone(),
                    object,
                };
                tx.execute("DELETE FROM cursors WHERE key = ?1", [key.encode()])?;
            }
        }
        StateChange::SetCursor { key, value } => match value {
            Some(v) => {
                tx.execute(
                    "INSERT OR REPLACE INTO cursors (key, value) VALUES (?1, ?2)",
                    params![key.encode(), v],
                )?;
            }
            None => {
                tx.execute("DELETE FROM cursors WHERE key = ?1", [key.encode()])?;
            }
        },
        StateChange::SetStatus(s) => {
            tx.execute(
                "INSERT OR REPLACE INTO statuses VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.rep,
                    s.object.name(),
                    s.direction.name(),
                    s.status.label(),
                    s.records_in_sync as i64,
                    s.updated.to_rfc3339()
                ],
            )?;
        }
        StateChange::SetResetMark { rep, mark } => match mark {
            Some(m) => {
                tx.execute(
                    "INSERT OR REPLACE INTO resets VALUES (?1, ?2)",
                    params![rep, m.label()],
                )?;
            }
            None => {
                tx.execute("DELETE FROM resets WHERE rep = ?1", [rep])?;
            }
        },
        StateChange::AddError(e) => {
            tx.execute(
                "INSERT INTO errors (at, rep, object, direction, record_ids, code, message,
                   suggestion) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.at.to_rfc3339(),
                    e.rep,
                    e.object.map(|o| o.name()),
                    e.direction.map(|d| d.name()),
                    serde_json::to_string(&e.record_ids).unwrap_or_default(),
                    e.code,
                    e.message,
                    e.suggestion
                ],
            )?;
        }
        StateChange::AddActivity(a) => {
            tx.execute(
                "INSERT INTO activity (at, object, records) VALUES (?1, ?2, ?3)",
                params![a.at.to_rfc3339(), a.object.name(), a.records as i64],
            )?;
        }
        StateChange::JournalAdd(j) => {
            tx.execute(
                "INSERT OR REPLACE INTO journal VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    j.marker,
                    j.rep,
                    j.object.name(),
                    match j.target {
                        CreateTarget::Exchange => "exchange",
                        CreateTarget::Salesforce => "salesforce",
                    },
                    j.source_id,
                    j.hash,
                    j.at.to_rfc3339()
                ],
            )?;
        }
        StateChange::JournalDone { marker } => {
            tx.execute("DELETE FROM journal WHERE marker = ?1", [marker])?;
        }
        StateChange::SetRepEmail { rep, email } => {
            tx.execute(
                "INSERT INTO reps (rep, email) VALUES (?1, ?2)
                 ON CONFLICT (rep) DO UPDATE SET email = excluded.email",
                params![rep, email],
            )?;
        }
        StateChange::AddUnresolved(u) => {
            tx.execute(
                "INSERT INTO unresolved (rep, event_id, email, at) VALUES (?1, ?2, ?3, ?4)",
                params![u.rep, u.event_id, u.email, u.at.to_rfc3339()],
            )?;
        }
        StateChange::RecordApply {
            canonical,
            hash,
            applied_at,
            applied_by,
        } => {
            tx.execute(
                "INSERT INTO revisions (generation, canonical, hash, applied_at, applied_by)
                 VALUES ((SELECT COALESCE(MAX(generation), 0) + 1 FROM revisions), ?1, ?2, ?3, ?4)",
                params![canonical, hash, applied_at.to_rfc3339(), applied_by],
            )?;
        }
        StateChange::RecordPlanApplied {
            plan_id,
            applied_at,
        } => {
            tx.execute(
                "INSERT INTO applied_plans (plan_id, applied_at, generation)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(generation), 0) FROM revisions))",
                params![plan_id, applied_at.to_rfc3339()],
            )?;
        }
    }
    Ok(())
}

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(LinkId, Link)> {
    let ex_id: Option<String> = r.get(3)?;
    let ex_ck: Option<String> = r.get(4)?;
    let sf_id: Option<String> = r.get(5)?;
    let sf_ms: Option<String> = r.get(6)?;
    Ok((
        LinkId(r.get(0)?),
        Link {
            rep: r.get(1)?,
            object: object(&r.get::<_, String>(2)?),
            exchange: ex_id.map(|item_id| ExchangeSide {
                item_id,
                change_key: ex_ck.unwrap_or_default(),
            }),
            salesforce: sf_id.map(|id| SalesforceSide {
                id,
                modstamp: sf_ms.unwrap_or_default(),
            }),
            hash: r.get(7)?,
        },
    ))
}

const LINK_COLUMNS: &str =
    "SELECT id, rep, object, ex_item_id, ex_change_key, sf_id, sf_modstamp, hash FROM links";

impl SqliteState {
    fn read<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| db_err(&self.path, "read failed", e))?;
        let rows = stmt
            .query_map(params, row)
            .map_err(|e| db_err(&self.path, "read failed", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_err(&self.path, "read failed", e))
    }
}

impl StateStore for SqliteState {
    fn apply(&mut self, changes: Vec<StateChange>) -> Result<(), StateError> {
        let path = self.path.clone();
        let fail = |e| db_err(&path, "write failed", e);
        let started = std::time::Instant::now();
        let count = changes.len();
        let tx = self.conn.transaction().map_err(fail)?;
        for c in changes {
            write(&tx, c).map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        tracing::debug!(
            changes = count,
            ms = started.elapsed().as_millis() as u64,
            "state transaction committed"
        );
        Ok(())
    }

    fn links(&self, rep: &str, object: ObjectKind) -> Result<Vec<(LinkId, Link)>, StateError> {
        self.read(
            &format!("{LINK_COLUMNS} WHERE rep = ?1 AND object = ?2 ORDER BY id"),
            params![rep, object.name()],
            link_row,
        )
    }

    fn all_links(&self) -> Result<Vec<(LinkId, Link)>, StateError> {
        self.read(&format!("{LINK_COLUMNS} ORDER BY id"), [], link_row)
    }

    fn cursor(&self, key: &CursorKey) -> Result<Option<String>, StateError> {
        self.conn
            .query_row(
                "SELECT value FROM cursors WHERE key = ?1",
                [key.encode()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err(&self.path, "read failed", e))
    }

    fn status(
        &self,
        rep: &str,
        object: ObjectKind,
        direction: SyncDirection,
    ) -> Result<Option<StatusEntry>, StateError> {
        Ok(self
            .statuses()?
            .into_iter()
            .find(|s| s.rep == rep && s.object == object && s.direction == direction))
    }

    fn statuses(&self) -> Result<Vec<StatusEntry>, StateError> {
        let rows = self.read(
            "SELECT rep, object, direction, status, records_in_sync, updated FROM statuses
             ORDER BY rep, object, direction",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(rep, o, d, s, n, t)| {
                Some(StatusEntry {
                    rep,
                    object: object(&o),
                    direction: SyncDirection::parse(&d)?,
                    status: SyncStatus::from_label(&s)?,
                    records_in_sync: n.max(0) as u64,
                    updated: time(&t),
                })
            })
            .collect())
    }

    fn reset_marks(&self) -> Result<BTreeMap<String, ResetMark>, StateError> {
        let rows = self.read("SELECT rep, mark FROM resets", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(rep, m)| Some((rep, ResetMark::from_label(&m)?)))
            .collect())
    }

    fn errors(&self) -> Result<Vec<ErrorEntry>, StateError> {
        self.read(
            "SELECT at, rep, object, direction, record_ids, code, message, suggestion
             FROM errors ORDER BY id",
            [],
            |r| {
                Ok(ErrorEntry {
                    at: time(&r.get::<_, String>(0)?),
                    rep: r.get(1)?,
                    object: r
                        .get::<_, Option<String>>(2)?
                        .as_deref()
                        .and_then(ObjectKind::parse),
                    direction: r
                        .get::<_, Option<String>>(3)?
                        .as_deref()
                        .and_then(SyncDirection::parse),
                    record_ids: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                    code: r.get(5)?,
                    message: r.get(6)?,
                    suggestion: r.get(7)?,
                })
            },
        )
    }

    fn activity_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<ObjectKind, u64>, StateError> {
        let rows = self.read("SELECT at, object, records FROM activity", [], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = BTreeMap::new();
        for (at, o, n) in rows {
            if time(&at) >= since {
                *out.entry(object(&o)).or_insert(0) += n.max(0) as u64;
            }
        }
        Ok(out)
    }

    fn pending_creates(&self) -> Result<Vec<JournalEntry>, StateError> {
        self.read(
            "SELECT marker, rep, object, target, source_id, hash, at FROM journal ORDER BY marker",
            [],
            |r| {
                Ok(JournalEntry {
                    marker: r.get(0)?,
                    rep: r.get(1)?,
                    object: object(&r.get::<_, String>(2)?),
                    target: if r.get::<_, String>(3)? == "exchange" {
                        CreateTarget::Exchange
                    } else {
                        CreateTarget::Salesforce
                    },
                    source_id: r.get(4)?,
                    hash: r.get(5)?,
                    at: time(&r.get::<_, String>(6)?),
                })
            },
        )
    }

    fn rep_emails(&self) -> Result<BTreeMap<String, String>, StateError> {
        Ok(self
            .read("SELECT rep, email FROM reps", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect())
    }

    fn unresolved(&self, rep: &str) -> Result<Vec<UnresolvedItem>, StateError> {
        self.read(
            "SELECT rep, event_id, email, at FROM unresolved WHERE rep = ?1 ORDER BY id",
            [rep],
            |r| {
                Ok(UnresolvedItem {
                    rep: r.get(0)?,
                    event_id: r.get(1)?,
                    email: r.get(2)?,
                    at: time(&r.get::<_, String>(3)?),
                })
            },
        )
    }

    fn generation(&self) -> Result<u64, StateError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(generation), 0) FROM revisions",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|g| g.max(0) as u64)
            .map_err(|e| db_err(&self.path, "read failed", e))
    }

    fn plan_signing_key(&self) -> Result<crate::secret::Secret, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [PLAN_KEY], |r| {
                r.get::<_, String>(0)
            })
            .map(crate::secret::Secret::new)
            .map_err(|e| db_err(&self.path, "no plan-signing key", e))
    }

    fn applied_plans(&self) -> Result<Vec<String>, StateError> {
        self.read(
            "SELECT plan_id FROM applied_plans ORDER BY applied_at",
            [],
            |r| r.get(0),
        )
    }

    fn latest_revision(&self) -> Result<Option<ConfigRevision>, StateError> {
        Ok(self
            .read(
                "SELECT generation, canonical, hash, applied_at, applied_by FROM revisions
                 ORDER BY generation DESC LIMIT 1",
                [],
                |r| {
                    Ok(ConfigRevision {
                        generation: r.get::<_, i64>(0)?.max(0) as u64,
                        canonical: r.get(1)?,
                        hash: r.get(2)?,
                        applied_at: time(&r.get::<_, String>(3)?),
                        applied_by: r.get(4)?,
                    })
                },
            )?
            .pop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(n: u32) -> StateChange {
        StateChange::RecordApply {
            canonical: format!("{{\"n\":{n}}}"),
            hash: format!("h{n}"),
            applied_at: Utc::now(),
            applied_by: "test".into(),
        }
    }

    #[test]
    fn a_version_3_file_migrates_to_4_keeping_its_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            // A state file as tether wrote it at schema version 3.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID};
                 CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (3);"
            ))
            .unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute("INSERT INTO meta (key, value) VALUES (?1, 'k')", [PLAN_KEY])
                .unwrap();
            conn.execute(
                "INSERT INTO revisions VALUES (1, '{}', 'h1', '2026-01-01T00:00:00Z', 'ana')",
                [],
            )
            .unwrap();
        }
        let mut s = SqliteState::open(&path).unwrap();
        let version: i64 = s
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 4);
        assert_eq!(s.generation().unwrap(), 1);
        assert_eq!(s.plan_signing_key().unwrap().expose(), "k");
        assert!(s.applied_plans().unwrap().is_empty());
        s.apply(vec![
            revision(2),
            StateChange::RecordPlanApplied {
                plan_id: "p1".into(),
                applied_at: Utc::now(),
            },
        ])
        .unwrap();
        assert_eq!(s.applied_plans().unwrap(), ["p1"]);
        let generation: i64 = s
            .conn
            .query_row(
                "SELECT generation FROM applied_plans WHERE plan_id = 'p1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(generation, 2, "the generation its apply recorded");
    }

    #[test]
    fn a_plan_id_is_recorded_with_its_revision_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteState::open(&dir.path().join("s.db")).unwrap();
        let applied = |id: &str| StateChange::RecordPlanApplied {
            plan_id: id.into(),
            applied_at: Utc::now(),
        };
        s.apply(vec![revision(1), applied("p1")]).unwrap();
        // The same id again fails the transaction: the revision is not recorded either.
        assert!(s.apply(vec![revision(2), applied("p1")]).is_err());
        assert_eq!(s.generation().unwrap(), 1);
        assert_eq!(s.applied_plans().unwrap(), ["p1"]);
    }
}
