//! The SQLite state store: one file (default `.tether/state.db` next to the configuration),
//! mode 0600, versioned schema migrated forward on open, integrity-checked on open. A file
//! that is damaged, empty, foreign or from a newer tether is refused with a way out; tether
//! never silently starts fresh, because a fresh state would duplicate every record. A new
//! file appears only whole, so a kill while creating it cannot leave one that looks damaged;
//! a full disk or a place tether may not write is said as such, never called damage.

use super::*;
use rusqlite::types::Type;
use rusqlite::{Connection, DatabaseName, OpenFlags, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};

/// Marks a SQLite file as tether's (`PRAGMA application_id`, "tthr").
const APPLICATION_ID: i64 = 0x7474_6872;

/// The schema this build writes. Each entry of `MIGRATIONS` moves one version up.
pub const SCHEMA_VERSION: i64 = 7;

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
    // 4 → 5: what the last cycle learned about each rep and about the Exchange connection,
    // for `tether status` offline. JSON, so a check added later needs no migration.
    "CREATE TABLE rep_facts (email TEXT PRIMARY KEY, facts TEXT NOT NULL);
     CREATE TABLE system_facts (id INTEGER PRIMARY KEY CHECK (id = 1), facts TEXT NOT NULL);",
    // 5 → 6: the versions each failed write was planned on, and the failed records an
    // admin acknowledged (`tether errors ack`) at such a version.
    "ALTER TABLE errors ADD COLUMN version TEXT;
     CREATE TABLE acknowledgements (record_id TEXT PRIMARY KEY, version TEXT,
        at TEXT NOT NULL);",
    // 6 → 7: workers sharing the cycles (`engine::workers`): per cycle generation who
    // reads the org until when and the read itself (so Salesforce is read once, whatever
    // the number of workers); its groups of reps, who works each until when; and every
    // claim made (who, from when, until when).
    "CREATE TABLE shared_cycles (generation INTEGER PRIMARY KEY, started_at TEXT NOT NULL,
        reader TEXT NOT NULL, lease_until TEXT NOT NULL, org_read TEXT, finished_at TEXT);
     CREATE TABLE rep_groups (generation INTEGER NOT NULL, grp INTEGER NOT NULL,
        reps TEXT NOT NULL, worker TEXT, lease_until TEXT, done_at TEXT,
        held TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (generation, grp));
     CREATE TABLE claims (id INTEGER PRIMARY KEY AUTOINCREMENT, generation INTEGER NOT NULL,
        grp INTEGER NOT NULL, worker TEXT NOT NULL, claimed_at TEXT NOT NULL,
        until TEXT NOT NULL);",
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

/// `conn`: the connection that failed, when there is one, for the system error behind it.
fn db_err(conn: Option<&Connection>, path: &Path, what: &str, e: rusqlite::Error) -> StateError {
    if let Some(problem) = storage_problem(path, &e, conn) {
        return problem;
    }
    let message = match &e {
        rusqlite::Error::FromSqlConversionFailure(_, _, cause)
            if let Some(undecodable) = cause.downcast_ref::<Undecodable>() =>
        {
            format!("state file {} is damaged: {undecodable}", path.display())
        }
        e => format!("state file {}: {what}: {e}", path.display()),
    };
    StateError::new(message, WAY_OUT)
}

/// A full disk or a location tether may not write is not damage: the file is intact, and
/// restoring a backup would lose what it holds. Said as what it is, with what to do.
fn storage_problem(
    path: &Path,
    e: &rusqlite::Error,
    conn: Option<&Connection>,
) -> Option<StateError> {
    use rusqlite::ErrorCode::*;
    let rusqlite::Error::SqliteFailure(failure, _) = e else {
        return None;
    };
    // SAFETY: the handle is the live connection's; this reads the errno of its last I/O.
    let errno = conn.map_or(0, |c| unsafe {
        rusqlite::ffi::sqlite3_system_errno(c.handle())
    });
    let os = (errno != 0).then(|| std::io::Error::from_raw_os_error(errno));
    let os_problem = || os.as_ref().and_then(|os| io_problem(path, os));
    match failure.code {
        DiskFull => Some(no_space(path, "database or disk is full")),
        ReadOnly | PermissionDenied => {
            Some(os_problem().unwrap_or_else(|| not_writable(path, &e.to_string())))
        }
        // The errno is only the cause when SQLite says the failure was the system's.
        SystemIoFailure => os_problem(),
        CannotOpen => Some(os_problem().unwrap_or_else(|| {
            StateError::new(
                format!("state file {}: cannot open it: {e}", path.display()),
                "check that the file and its directory exist and that this user may read and \
                 write them; the file itself is not known to be damaged",
            )
        })),
        _ => None,
    }
}

/// The storage problems among I/O errors (no space, permission denied, read-only).
fn io_problem(path: &Path, e: &std::io::Error) -> Option<StateError> {
    use std::io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded => Some(no_space(path, &e.to_string())),
        PermissionDenied | ReadOnlyFilesystem => Some(not_writable(path, &e.to_string())),
        _ => None,
    }
}

fn no_space(path: &Path, cause: &str) -> StateError {
    StateError::new(
        format!(
            "state file {}: no space left on device ({cause})",
            path.display()
        ),
        "free space on the device that holds it and run again; the state is intact (nothing \
         was half-written)",
    )
}

fn not_writable(path: &Path, cause: &str) -> StateError {
    StateError::new(
        format!(
            "state file {}: permission denied or read-only ({cause})",
            path.display()
        ),
        "make the file and its directory writable for this user (check the owner, the mode, \
         `lsattr` for the immutable flag, and whether the file system is mounted read-only); \
         the state is intact, and `tether status` and `tether errors` can read it as it is",
    )
}

/// An I/O error on the state file or its directory: a storage problem said as such, any
/// other with the way out.
fn io_err(path: &Path, what: &str, e: std::io::Error) -> StateError {
    io_problem(path, &e).unwrap_or_else(|| {
        StateError::new(
            format!("state file {}: {what}: {e}", path.display()),
            WAY_OUT,
        )
    })
}

/// A value of the state this build cannot decode, and where it is.
#[derive(Debug)]
struct Undecodable(String);

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Undecodable {}

/// The row a value is decoded from, to name it when it cannot be: a damaged state is an
/// error with the way out, never a value made up in its place.
struct Row {
    table: &'static str,
    key: String,
}

impl Row {
    fn new(table: &'static str, key: impl std::fmt::Display) -> Row {
        Row {
            table,
            key: key.to_string(),
        }
    }

    fn decode<T>(
        &self,
        column: &str,
        value: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> rusqlite::Result<T> {
        parse(value).ok_or_else(|| {
            let why = format!(
                "table {}, row {}, column {column}: `{value}` is not {expected}",
                self.table, self.key
            );
            rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(Undecodable(why)))
        })
    }

    fn time(&self, column: &str, value: &str) -> rusqlite::Result<DateTime<Utc>> {
        self.decode(column, value, "an RFC 3339 time", |s| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
    }

    fn object(&self, value: &str) -> rusqlite::Result<ObjectKind> {
        self.decode("object", value, "contact or event", ObjectKind::parse)
    }

    fn direction(&self, value: &str) -> rusqlite::Result<SyncDirection> {
        self.decode(
            "direction",
            value,
            "exchange_to_salesforce or salesforce_to_exchange",
            SyncDirection::parse,
        )
    }
}

impl SqliteState {
    /// Whether there is a state file at `path`; a symbolic link to nowhere is an error,
    /// not "no state" (planning as if nothing had been applied would plan every create).
    pub fn exists(path: &Path) -> Result<bool, StateError> {
        refuse_dangling_link(path)?;
        Ok(path.exists())
    }

    /// Open the state file at `path` to read and write it, migrated to this build's schema;
    /// when there is none, create it (and its directory) first, whole.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        refuse_dangling_link(path)?;
        if !path.exists() {
            create(path)?;
        }
        existing_file(path)?;
        restrict_permissions(path)?;
        let store = Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let version = store.check()?;
        // SQLite opens a file it may not write read-only; say so now, before a command that
        // writes has sent anything to either side it could not record.
        if store.conn.is_readonly(DatabaseName::Main).unwrap_or(false) {
            return Err(not_writable(path, "it can only be opened for reading"));
        }
        store.migrate(version)?;
        Ok(store)
    }

    /// Open an existing state file only to read it (`status`, `errors`, `plan`): nothing is
    /// written, so a state on a full or read-only file system, or marked immutable, can still
    /// be shown. A file of an older schema is migrated first, through `open`, as by any
    /// command.
    pub fn open_read_only(path: &Path) -> Result<Self, StateError> {
        existing_file(path)?;
        let mut store = Self::connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // Reading a write-ahead-log database needs its shared-memory file, which SQLite
        // cannot create in a directory it may not write to (or on a full disk). With no log
        // pending in that directory, nobody is writing the file: read it as immutable.
        if let Err(e) = store
            .conn
            .query_row("PRAGMA schema_version", [], |_| Ok(()))
            && cannot_share(&e)
            && !has_pending_log(path)
        {
            store = Self::connect(&immutable_uri(path)?, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            store.path = path.to_path_buf();
        }
        if store.check()? < SCHEMA_VERSION {
            drop(store);
            return Self::open(path);
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(path: &Path, mode: OpenFlags) -> Result<Self, StateError> {
        let flags = mode | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| db_err(None, path, "cannot open", e))?;
        // Room for every statement the store uses (the default cache holds 16).
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteState {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn fail<'a>(&'a self, what: &'a str) -> impl Fn(rusqlite::Error) -> StateError + 'a {
        move |e| db_err(Some(&self.conn), &self.path, what, e)
    }

    /// Refuses a file that is damaged, another program's or from a newer tether; returns its
    /// schema version.
    fn check(&self) -> Result<i64, StateError> {
        let integrity: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(self.fail("not a tether state file (or damaged)"))?;
        if integrity != "ok" {
            return Err(StateError::new(
                format!(
                    "state file {} failed its integrity check: {integrity}",
                    self.path.display()
                ),
                WAY_OUT,
            ));
        }
        let app_id: i64 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(self.fail("cannot read"))?;
        if app_id != APPLICATION_ID {
            return Err(StateError::new(
                format!(
                    "{} is not a tether state file (it is some other SQLite database)",
                    self.path.display()
                ),
                "point --state at tether's state file (default .tether/state.db next to the \
                 configuration); tether will not write into another program's database",
            ));
        }
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
            .map_err(self.fail("cannot configure"))?;
        let version: i64 = self
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .map_err(self.fail("has no schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::new(
                format!(
                    "state file {} has schema version {version}, written by a newer tether \
                     (this one knows up to {SCHEMA_VERSION})",
                    self.path.display()
                ),
                "upgrade tether to the version that wrote the file; do not downgrade a state file",
            ));
        }
        Ok(version)
    }

    /// Moves the schema from `version` to this build's, in one transaction. A file already
    /// there is not written (so it opens on a full disk and in a read-only place).
    fn migrate(&self, version: i64) -> Result<(), StateError> {
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.fail("cannot migrate"))?;
        for (v, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .map_err(self.fail(&format!("migration to version {}", v + 1)))?;
        }
        tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])
            .map_err(self.fail("cannot migrate"))?;
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![PLAN_KEY, new_signing_key()?.expose()],
        )
        .map_err(self.fail("cannot migrate"))?;
        tx.commit().map_err(self.fail("cannot migrate"))
    }
}

/// Refuses what cannot be a state file before SQLite is asked: a directory, an empty file.
fn existing_file(path: &Path) -> Result<(), StateError> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, "cannot read", e))?;
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
    Ok(())
}

/// `path` with `suffix` appended to its file name (SQLite's side files, the staged state).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// SQLite could not open or create what readers share (the shared-memory file).
fn cannot_share(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(CannotOpen | ReadOnly | SystemIoFailure | DiskFull)
    )
}

/// A write-ahead log with frames not yet checkpointed into the file.
fn has_pending_log(path: &Path) -> bool {
    std::fs::metadata(with_suffix(path, "-wal")).is_ok_and(|m| m.len() > 0)
}

/// A `file:` URI that opens `path` as immutable: no locks, no shared memory, no log.
fn immutable_uri(path: &Path) -> Result<PathBuf, StateError> {
    let absolute = std::fs::canonicalize(path).map_err(|e| io_err(path, "cannot read", e))?;
    let mut uri = String::from("file:");
    for b in absolute.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    Ok(PathBuf::from(uri))
}

/// Where a process stages the state file it creates: beside it, named by its pid.
const STAGED: &str = ".creating.";

/// Creates the state file whole: initialised and migrated under a private name, flushed,
/// then linked into place, so a process killed at any moment leaves no state or a valid
/// empty one, never a file every command refuses. Linking fails when another process
/// created the state meanwhile; that one is then the state.
fn create(path: &Path) -> Result<(), StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(path, "cannot create its directory", e))?;
    }
    remove_dead_stagings(path);
    let staged = with_suffix(path, &format!("{STAGED}{}", std::process::id()));
    remove_staged(&staged);
    let created = initialise(&staged).and_then(|()| link_into_place(&staged, path));
    remove_staged(&staged);
    created
}

fn initialise(staged: &Path) -> Result<(), StateError> {
    create_private_file(staged)?;
    let store = SqliteState::connect(staged, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    store
        .conn
        .execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID};
             CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (0);"
        ))
        .map_err(store.fail("cannot initialise"))?;
    store.migrate(0)?;
    store
        .conn
        .execute_batch("PRAGMA journal_mode = WAL;")
        .map_err(store.fail("cannot initialise"))?;
    // Closing checkpoints the log into the file, so the file alone is the state.
    store
        .conn
        .close()
        .map_err(|(conn, e)| db_err(Some(&conn), staged, "cannot initialise", e))?;
    std::fs::File::open(staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(staged, "cannot flush", e))
}

fn link_into_place(staged: &Path, path: &Path) -> Result<(), StateError> {
    match std::fs::hard_link(staged, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        // A file system without hard links.
        Err(_) if !path.exists() => {
            std::fs::rename(staged, path).map_err(|e| io_err(path, "cannot create", e))?
        }
        Err(_) => return Ok(()),
    }
    // The new name reaches the disk with the file.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(path, "cannot flush its directory", e))?;
    }
    Ok(())
}

/// The staged file and SQLite's side files of it.
fn remove_staged(staged: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(staged, suffix));
    }
}

/// What processes killed while creating the state left behind.
fn remove_dead_stagings(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}{STAGED}", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Without a portable way to ask, every other process's staging is left alone.
#[cfg(not(target_os = "linux"))]
fn process_alive(pid: u32) -> bool {
    pid != std::process::id()
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

/// A symbolic link to nowhere is not a missing state file: `exists` says no, and creating
/// the file would then fail with a puzzling "File exists".
fn refuse_dangling_link(path: &Path) -> Result<(), StateError> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link || path.exists() {
        return Ok(());
    }
    let target = std::fs::read_link(path).unwrap_or_default();
    Err(StateError::new(
        format!(
            "the state file path {} is a symbolic link to {}, which does not exist",
            path.display(),
            target.display()
        ),
        format!("point the link at the state file; or {WAY_OUT}"),
    ))
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err(path, "cannot create", e))?;
    Ok(())
}

#[cfg(not(unix))]
fn create_private_file(_: &Path) -> Result<(), StateError> {
    Ok(())
}

/// The state names every rep and record; only the owner may read it.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| io_err(path, "cannot read", e))?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        io_problem(path, &e).unwrap_or_else(|| {
            StateError::new(
                format!("cannot make state file {} private: {e}", path.display()),
                "run tether as the file's owner",
            )
        })
    })
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> Result<(), StateError> {
    Ok(())
}

/// Runs one statement through the connection's statement cache: a cycle writes thousands of
/// rows with the same few statements, and parsing each again would cost more than the write.
fn exec(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
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
            exec(
                tx,
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
            exec(tx, "DELETE FROM links WHERE id = ?1", [id.0])?;
        }
        StateChange::ClearRep { rep } => {
            exec(tx, "DELETE FROM links WHERE rep = ?1", [&rep])?;
            for object in ObjectKind::ALL {
                let key = CursorKey::Folder {
                    rep: rep.clone(),
                    object,
                };
                exec(tx, "DELETE FROM cursors WHERE key = ?1", [key.encode()])?;
            }
        }
        StateChange::SetCursor { key, value } => match value {
            Some(v) => {
                exec(
                    tx,
                    "INSERT OR REPLACE INTO cursors (key, value) VALUES (?1, ?2)",
                    params![key.encode(), v],
                )?;
            }
            None => {
                exec(tx, "DELETE FROM cursors WHERE key = ?1", [key.encode()])?;
            }
        },
        StateChange::SetStatus(s) => {
            exec(
                tx,
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
                exec(
                    tx,
                    "INSERT OR REPLACE INTO resets VALUES (?1, ?2)",
                    params![rep, m.label()],
                )?;
            }
            None => {
                exec(tx, "DELETE FROM resets WHERE rep = ?1", [rep])?;
            }
        },
        StateChange::AddError(e) => {
            exec(
                tx,
                "INSERT INTO errors (at, rep, object, direction, record_ids, code, message,
                   suggestion, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.at.to_rfc3339(),
                    e.rep,
                    e.object.map(|o| o.name()),
                    e.direction.map(|d| d.name()),
                    serde_json::to_string(&e.record_ids).unwrap_or_default(),
                    e.code,
                    e.message,
                    e.suggestion,
                    e.version
                ],
            )?;
        }
        StateChange::Acknowledge(a) => {
            exec(
                tx,
                "INSERT OR REPLACE INTO acknowledgements (record_id, version, at)
                   VALUES (?1, ?2, ?3)",
                params![a.record_id, a.version, a.at.to_rfc3339()],
            )?;
        }
        StateChange::AddActivity(a) => {
            exec(
                tx,
                "INSERT INTO activity (at, object, records) VALUES (?1, ?2, ?3)",
                params![a.at.to_rfc3339(), a.object.name(), a.records as i64],
            )?;
        }
        StateChange::JournalAdd(j) => {
            exec(
                tx,
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
            exec(tx, "DELETE FROM journal WHERE marker = ?1", [marker])?;
        }
        StateChange::SetRepEmail { rep, email } => {
            exec(
                tx,
                "INSERT INTO reps (rep, email) VALUES (?1, ?2)
                 ON CONFLICT (rep) DO UPDATE SET email = excluded.email",
                params![rep, email],
            )?;
        }
        StateChange::AddUnresolved(u) => {
            exec(
                tx,
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
            exec(
                tx,
                "INSERT INTO revisions (generation, canonical, hash, applied_at, applied_by)
                 VALUES ((SELECT COALESCE(MAX(generation), 0) + 1 FROM revisions), ?1, ?2, ?3, ?4)",
                params![canonical, hash, applied_at.to_rfc3339(), applied_by],
            )?;
        }
        StateChange::SetRepFacts(f) => {
            tx.execute(
                "INSERT OR REPLACE INTO rep_facts (email, facts) VALUES (?1, ?2)",
                params![f.email, facts_json(&f)?],
            )?;
        }
        StateChange::SetSystemFacts(f) => {
            tx.execute(
                "INSERT OR REPLACE INTO system_facts (id, facts) VALUES (1, ?1)",
                params![facts_json(&f)?],
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
        StateChange::GroupDone {
            generation,
            group,
            held,
            at,
        } => {
            let (generation, group, at) = (generation as i64, group as i64, lease_time(at));
            let held = serde_json::to_string(&held).unwrap_or_default();
            tx.execute(
                "UPDATE claims SET until = MIN(until, ?3) WHERE id = (SELECT MAX(c.id) FROM
                   claims c JOIN rep_groups g ON g.generation = c.generation AND g.grp = c.grp
                   AND g.worker = c.worker WHERE c.generation = ?1 AND c.grp = ?2)",
                params![generation, group, at],
            )?;
            tx.execute(
                "UPDATE rep_groups SET done_at = ?3, held = ?4 WHERE generation = ?1 AND grp = ?2",
                params![generation, group, at, held],
            )?;
        }
        StateChange::FinishSharedCycle { generation, at } => {
            let updated = tx.execute(
                "UPDATE shared_cycles SET finished_at = ?2
                 WHERE generation = ?1 AND finished_at IS NULL",
                params![generation as i64, lease_time(at)],
            )?;
            if updated == 0 {
                return Err(rusqlite::Error::StatementChangedRows(0));
            }
        }
    }
    Ok(())
}

fn facts_json<T: Serialize>(facts: &T) -> rusqlite::Result<String> {
    serde_json::to_string(facts).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(LinkId, Link)> {
    let ex_id: Option<String> = r.get(3)?;
    let ex_ck: Option<String> = r.get(4)?;
    let sf_id: Option<String> = r.get(5)?;
    let sf_ms: Option<String> = r.get(6)?;
    let id: i64 = r.get(0)?;
    Ok((
        LinkId(id),
        Link {
            rep: r.get(1)?,
            object: Row::new("links", id).object(&r.get::<_, String>(2)?)?,
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
    fn read_statuses(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StatusEntry>, StateError> {
        self.read(sql, params, |r| {
            let rep: String = r.get(0)?;
            let (o, d): (String, String) = (r.get(1)?, r.get(2)?);
            let row = Row::new("statuses", format!("{rep}/{o}/{d}"));
            Ok(StatusEntry {
                object: row.object(&o)?,
                direction: row.direction(&d)?,
                status: row.decode(
                    "status",
                    &r.get::<_, String>(3)?,
                    "a sync status",
                    SyncStatus::from_label,
                )?,
                records_in_sync: r.get::<_, i64>(4)?.max(0) as u64,
                updated: row.time("updated", &r.get::<_, String>(5)?)?,
                rep,
            })
        })
    }

    fn read<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| db_err(Some(&self.conn), &self.path, "read failed", e))?;
        let rows = stmt
            .query_map(params, row)
            .map_err(|e| db_err(Some(&self.conn), &self.path, "read failed", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_err(Some(&self.conn), &self.path, "read failed", e))
    }
}

impl StateStore for SqliteState {
    fn apply(&mut self, changes: Vec<StateChange>) -> Result<(), StateError> {
        let started = std::time::Instant::now();
        let count = changes.len();
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.fail("write failed"))?;
        for c in changes {
            write(&tx, c).map_err(self.fail("write failed"))?;
        }
        tx.commit().map_err(self.fail("write failed"))?;
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
            .map_err(|e| db_err(Some(&self.conn), &self.path, "read failed", e))
    }

    fn status(
        &self,
        rep: &str,
        object: ObjectKind,
        direction: SyncDirection,
    ) -> Result<Option<StatusEntry>, StateError> {
        // One row by its key: a cycle asks for every rep, and reading all each time would
        // make it quadratic in the number of reps.
        Ok(self
            .read_statuses(
                "SELECT rep, object, direction, status, records_in_sync, updated FROM statuses
                 WHERE rep = ?1 AND object = ?2 AND direction = ?3",
                params![rep, object.name(), direction.name()],
            )?
            .pop())
    }

    fn statuses(&self) -> Result<Vec<StatusEntry>, StateError> {
        self.read_statuses(
            "SELECT rep, object, direction, status, records_in_sync, updated FROM statuses
             ORDER BY rep, object, direction",
            [],
        )
    }

    fn reset_marks(&self) -> Result<BTreeMap<String, ResetMark>, StateError> {
        let rows = self.read("SELECT rep, mark FROM resets", [], |r| {
            let rep: String = r.get(0)?;
            let mark = Row::new("resets", &rep).decode(
                "mark",
                &r.get::<_, String>(1)?,
                "a reset mark",
                ResetMark::from_label,
            )?;
            Ok((rep, mark))
        })?;
        Ok(rows.into_iter().collect())
    }

    fn errors(&self) -> Result<Vec<ErrorEntry>, StateError> {
        self.read(
            "SELECT at, rep, object, direction, record_ids, code, message, suggestion, id,
                version
             FROM errors ORDER BY id",
            [],
            |r| {
                let row = Row::new("errors", r.get::<_, i64>(8)?);
                Ok(ErrorEntry {
                    at: row.time("at", &r.get::<_, String>(0)?)?,
                    rep: r.get(1)?,
                    object: r
                        .get::<_, Option<String>>(2)?
                        .map(|o| row.object(&o))
                        .transpose()?,
                    direction: r
                        .get::<_, Option<String>>(3)?
                        .map(|d| row.direction(&d))
                        .transpose()?,
                    record_ids: row.decode(
                        "record_ids",
                        &r.get::<_, String>(4)?,
                        "a JSON list of record ids",
                        |s| serde_json::from_str(s).ok(),
                    )?,
                    code: r.get(5)?,
                    message: r.get(6)?,
                    suggestion: r.get(7)?,
                    version: r.get(9)?,
                })
            },
        )
    }

    fn acknowledgements(&self) -> Result<BTreeMap<String, Acknowledgement>, StateError> {
        let rows = self.read(
            "SELECT record_id, version, at FROM acknowledgements",
            [],
            |r| {
                let record_id: String = r.get(0)?;
                let at =
                    Row::new("acknowledgements", &record_id).time("at", &r.get::<_, String>(2)?)?;
                Ok((
                    record_id.clone(),
                    Acknowledgement {
                        record_id,
                        version: r.get(1)?,
                        at,
                    },
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    fn activity_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<ObjectKind, u64>, StateError> {
        let rows = self.read("SELECT at, object, records, id FROM activity", [], |r| {
            let row = Row::new("activity", r.get::<_, i64>(3)?);
            Ok((
                row.time("at", &r.get::<_, String>(0)?)?,
                row.object(&r.get::<_, String>(1)?)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = BTreeMap::new();
        for (at, o, n) in rows {
            if at >= since {
                *out.entry(o).or_insert(0) += n.max(0) as u64;
            }
        }
        Ok(out)
    }

    fn last_activity(&self) -> Result<BTreeMap<ObjectKind, DateTime<Utc>>, StateError> {
        let rows = self.read(
            "SELECT object, MAX(at) FROM activity GROUP BY object",
            [],
            |r| {
                let o: String = r.get(0)?;
                let row = Row::new("activity", format!("latest of {o}"));
                Ok((row.object(&o)?, row.time("at", &r.get::<_, String>(1)?)?))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    fn rep_facts(&self) -> Result<Vec<RepFacts>, StateError> {
        let rows = self.read("SELECT facts FROM rep_facts ORDER BY email", [], |r| {
            r.get::<_, String>(0)
        })?;
        // A row this build cannot read is skipped: status shows the rep as not checked.
        Ok(rows
            .iter()
            .filter_map(|f| serde_json::from_str(f).ok())
            .collect())
    }

    fn system_facts(&self) -> Result<Option<SystemFacts>, StateError> {
        Ok(self
            .read("SELECT facts FROM system_facts WHERE id = 1", [], |r| {
                r.get::<_, String>(0)
            })?
            .first()
            .and_then(|f| serde_json::from_str(f).ok()))
    }

    fn pending_creates(&self) -> Result<Vec<JournalEntry>, StateError> {
        self.read(
            "SELECT marker, rep, object, target, source_id, hash, at FROM journal ORDER BY marker",
            [],
            |r| {
                let marker: String = r.get(0)?;
                let row = Row::new("journal", &marker);
                Ok(JournalEntry {
                    rep: r.get(1)?,
                    object: row.object(&r.get::<_, String>(2)?)?,
                    target: row.decode(
                        "target",
                        &r.get::<_, String>(3)?,
                        "exchange or salesforce",
                        |t| match t {
                            "exchange" => Some(CreateTarget::Exchange),
                            "salesforce" => Some(CreateTarget::Salesforce),
                            _ => None,
                        },
                    )?,
                    source_id: r.get(4)?,
                    hash: r.get(5)?,
                    at: row.time("at", &r.get::<_, String>(6)?)?,
                    marker,
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
            "SELECT rep, event_id, email, at, id FROM unresolved WHERE rep = ?1 ORDER BY id",
            [rep],
            |r| {
                let row = Row::new("unresolved", r.get::<_, i64>(4)?);
                Ok(UnresolvedItem {
                    rep: r.get(0)?,
                    event_id: r.get(1)?,
                    email: r.get(2)?,
                    at: row.time("at", &r.get::<_, String>(3)?)?,
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
            .map_err(|e| db_err(Some(&self.conn), &self.path, "read failed", e))
    }

    fn plan_signing_key(&self) -> Result<crate::secret::Secret, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [PLAN_KEY], |r| {
                r.get::<_, String>(0)
            })
            .map(crate::secret::Secret::new)
            .map_err(|e| db_err(Some(&self.conn), &self.path, "no plan-signing key", e))
    }

    fn applied_plans(&self) -> Result<Vec<String>, StateError> {
        self.read(
            "SELECT plan_id FROM applied_plans ORDER BY applied_at",
            [],
            |r| r.get(0),
        )
    }

    // One process at a time uses an SQLite state (its lock file): the claims are kept
    // as on Postgres, so the record is the same, but nobody competes for them.
    fn read_turn(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        interval: chrono::Duration,
    ) -> Result<ReadTurn, StateError> {
        let last = self.read(
            "SELECT generation, reader, lease_until, org_read IS NOT NULL, finished_at IS NOT NULL,
               started_at FROM shared_cycles ORDER BY generation DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )?;
        let (until, started) = (lease_time(lease_until), lease_time(now));
        let turn = match last.into_iter().next() {
            Some((g, _, _, true, false, _)) => return Ok(ReadTurn::Join(g)),
            Some((_, reader, lease, false, false, _)) if reader != worker && lease > started => {
                return Ok(ReadTurn::Wait);
            }
            Some((g, _, _, false, false, _)) => self
                .conn
                .execute(
                    "UPDATE shared_cycles SET reader = ?2, lease_until = ?3 WHERE generation = ?1",
                    params![g as i64, worker, until],
                )
                .map(|_| ReadTurn::Read(g)),
            Some((_, _, _, _, true, last)) if now < parse_lease_time(&last) + interval => {
                return Ok(ReadTurn::Wait);
            }
            last => {
                let g = last.map_or(1, |(g, ..)| g + 1);
                self.conn
                    .execute(
                        "INSERT INTO shared_cycles (generation, reader, lease_until, started_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![g as i64, worker, until, started],
                    )
                    .map(|_| ReadTurn::Read(g))
            }
        };
        turn.map_err(self.fail("write failed"))
    }

    fn publish_org_read(
        &mut self,
        generation: u64,
        org_read: &str,
        groups: &[Vec<String>],
    ) -> Result<(), StateError> {
        let fail = self.fail("write failed");
        let tx = self.conn.unchecked_transaction().map_err(&fail)?;
        tx.execute(
            "UPDATE shared_cycles SET org_read = ?2 WHERE generation = ?1",
            params![generation as i64, org_read],
        )
        .map_err(&fail)?;
        for (i, reps) in groups.iter().enumerate() {
            tx.execute(
                "INSERT INTO rep_groups (generation, grp, reps) VALUES (?1, ?2, ?3)",
                params![
                    generation as i64,
                    i as i64,
                    serde_json::to_string(reps).unwrap_or_default()
                ],
            )
            .map_err(&fail)?;
        }
        tx.commit().map_err(&fail)
    }

    fn org_read(&self, generation: u64) -> Result<Option<String>, StateError> {
        Ok(self
            .read(
                "SELECT org_read FROM shared_cycles WHERE generation = ?1",
                params![generation as i64],
                |r| r.get::<_, Option<String>>(0),
            )?
            .into_iter()
            .next()
            .flatten())
    }

    fn claim_group(
        &mut self,
        generation: u64,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RepGroup>, StateError> {
        let free = self.read(
            "SELECT grp FROM rep_groups WHERE generation = ?1 AND done_at IS NULL
               AND (lease_until IS NULL OR lease_until <= ?2) ORDER BY grp LIMIT 1",
            params![generation as i64, lease_time(now)],
            |r| r.get::<_, i64>(0),
        )?;
        let Some(group) = free.into_iter().next() else {
            return Ok(None);
        };
        let fail = self.fail("write failed");
        let tx = self.conn.unchecked_transaction().map_err(&fail)?;
        let until = lease_time(lease_until);
        tx.execute(
            "UPDATE rep_groups SET worker = ?3, lease_until = ?4 WHERE generation = ?1 AND grp = ?2",
            params![generation as i64, group, worker, until],
        )
        .map_err(&fail)?;
        tx.execute(
            "INSERT INTO claims (generation, grp, worker, claimed_at, until)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![generation as i64, group, worker, lease_time(now), until],
        )
        .map_err(&fail)?;
        tx.commit().map_err(&fail)?;
        Ok(self
            .rep_groups(generation)?
            .into_iter()
            .find(|g| g.group == group as u64))
    }

    fn rep_groups(&self, generation: u64) -> Result<Vec<RepGroup>, StateError> {
        self.read(
            "SELECT grp, reps, worker, lease_until, done_at, held FROM rep_groups
             WHERE generation = ?1 ORDER BY grp",
            params![generation as i64],
            |r| {
                Ok(RepGroup {
                    generation,
                    group: r.get::<_, i64>(0)? as u64,
                    reps: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                    worker: r.get(2)?,
                    lease_until: r
                        .get::<_, Option<String>>(3)?
                        .as_deref()
                        .map(parse_lease_time),
                    done_at: r
                        .get::<_, Option<String>>(4)?
                        .as_deref()
                        .map(parse_lease_time),
                    held: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                })
            },
        )
    }

    fn claims(&self) -> Result<Vec<Claim>, StateError> {
        self.read(
            "SELECT generation, grp, worker, claimed_at, until FROM claims ORDER BY id",
            [],
            |r| {
                Ok(Claim {
                    generation: r.get::<_, i64>(0)? as u64,
                    group: r.get::<_, i64>(1)? as u64,
                    worker: r.get(2)?,
                    claimed_at: parse_lease_time(&r.get::<_, String>(3)?),
                    until: parse_lease_time(&r.get::<_, String>(4)?),
                })
            },
        )
    }

    fn shared_cycle_finished(&self, generation: u64) -> Result<bool, StateError> {
        Ok(!self
            .read(
                "SELECT 1 FROM shared_cycles WHERE generation = ?1 AND finished_at IS NOT NULL",
                params![generation as i64],
                |r| r.get::<_, i64>(0),
            )?
            .is_empty())
    }

    fn dump(&self) -> Result<Dump, StateError> {
        let mut dump = Dump::default();
        for table in TABLES {
            let sql = format!("SELECT {} FROM {}", table.columns.join(", "), table.name);
            let rows = self.read(&sql, [], |r| {
                (0..table.columns.len())
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Cell::Null,
                            rusqlite::types::ValueRef::Integer(n) => Cell::Int(n),
                            value => Cell::Text(value.as_str()?.to_string()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
            })?;
            dump.push(table.name, rows);
        }
        Ok(dump)
    }

    fn restore(&mut self, dump: &Dump) -> Result<(), StateError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.fail("write failed"))?;
        for table in TABLES {
            tx.execute(&format!("DELETE FROM {}", table.name), [])
                .map_err(self.fail("write failed"))?;
            let placeholders: Vec<String> =
                (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                table.columns.join(", "),
                placeholders.join(", ")
            );
            for row in dump.rows(table.name) {
                let values = row.iter().map(|cell| match cell {
                    Cell::Null => rusqlite::types::Value::Null,
                    Cell::Int(n) => rusqlite::types::Value::Integer(*n),
                    Cell::Text(t) => rusqlite::types::Value::Text(t.clone()),
                });
                exec(&tx, &sql, rusqlite::params_from_iter(values))
                    .map_err(self.fail("write failed"))?;
            }
        }
        tx.commit().map_err(self.fail("write failed"))
    }

    fn latest_revision(&self) -> Result<Option<ConfigRevision>, StateError> {
        Ok(self
            .read(
                "SELECT generation, canonical, hash, applied_at, applied_by FROM revisions
                 ORDER BY generation DESC LIMIT 1",
                [],
                |r| {
                    let generation = r.get::<_, i64>(0)?;
                    Ok(ConfigRevision {
                        generation: generation.max(0) as u64,
                        canonical: r.get(1)?,
                        hash: r.get(2)?,
                        applied_at: Row::new("revisions", generation)
                            .time("applied_at", &r.get::<_, String>(3)?)?,
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

    #[test]
    fn a_link_of_an_unknown_object_is_an_error_naming_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let state = SqliteState::open(&path).unwrap();
        state
            .conn
            .execute(
                "INSERT INTO links (rep, object, ex_item_id, hash) VALUES ('r', 'meeting', 'AAMk', 'h')",
                [],
            )
            .unwrap();
        let e = state.all_links().unwrap_err();
        assert!(
            e.message.ends_with(
                "is damaged: table links, row 1, column object: `meeting` is not contact or event"
            ),
            "{e}"
        );
        assert_eq!(e.hint, WAY_OUT);
    }

    fn revision(n: u32) -> StateChange {
        StateChange::RecordApply {
            canonical: format!("{{\"n\":{n}}}"),
            hash: format!("h{n}"),
            applied_at: Utc::now(),
            applied_by: "test".into(),
        }
    }

    /// A state file as tether wrote it at schema `version`.
    fn state_file_at_version(path: &std::path::Path, version: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID};
             CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES ({version});"
        ))
        .unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    #[test]
    fn a_version_3_file_migrates_forward_keeping_its_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = state_file_at_version(&path, 3);
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
        assert_eq!(version, SCHEMA_VERSION);
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
    fn a_version_4_file_migrates_to_5_and_keeps_rep_and_system_facts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = state_file_at_version(&path, 4);
            conn.execute("INSERT INTO meta (key, value) VALUES (?1, 'k')", [PLAN_KEY])
                .unwrap();
            conn.execute("INSERT INTO reps VALUES ('005A', 'ana@acme.com')", [])
                .unwrap();
        }
        let mut s = SqliteState::open(&path).unwrap();
        assert!(s.rep_facts().unwrap().is_empty());
        assert_eq!(s.system_facts().unwrap(), None);
        let at: DateTime<Utc> = "2026-06-15T12:00:00Z".parse().unwrap();
        let ana = RepFacts {
            email: "ana@acme.com".into(),
            user_id: Some("005A".into()),
            at,
            configuration: Some("Sales".into()),
            impersonation: Some(false),
            mailbox_error: Some(("ErrorImpersonateUserDenied".into(), "denied".into())),
            objects: vec![ObjectKind::Contact],
            ..RepFacts::default()
        };
        let system = SystemFacts {
            at,
            service_account_recognised: Some(true),
            exchange_error: None,
            outlook_integration: Some(super::OutlookIntegrationFact::Enabled(true)),
        };
        s.apply(vec![
            StateChange::SetRepFacts(ana.clone()),
            StateChange::SetSystemFacts(system.clone()),
            StateChange::AddActivity(ActivityEntry {
                at,
                object: ObjectKind::Contact,
                records: 3,
            }),
            StateChange::AddActivity(ActivityEntry {
                at: at - chrono::Duration::hours(2),
                object: ObjectKind::Contact,
                records: 1,
            }),
        ])
        .unwrap();
        drop(s);
        let s = SqliteState::open(&path).unwrap();
        assert_eq!(s.rep_facts().unwrap(), [ana]);
        assert_eq!(s.system_facts().unwrap(), Some(system));
        assert_eq!(s.last_activity().unwrap()[&ObjectKind::Contact], at);
        assert_eq!(s.rep_emails().unwrap()["005A"], "ana@acme.com");
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
