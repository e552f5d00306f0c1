//! The state lock: `apply`, `run` (for each cycle, not for its life) and `reset` hold it so
//! that two of them never write one state. [`Locks`] is what a state backend offers: taking
//! never blocks, and [`wait_for`] waits up to a timeout for a holder to finish, telling who
//! holds it. For an SQLite state it is a file created exclusively next to the state
//! ([`FileLocks`]), holding who, where and what (and the holder's process start, so a
//! reused pid is told apart). A holder that provably died (same host, and no such process
//! or another process under its pid) is taken over with a note; otherwise
//! `tether force-unlock LOCK_ID` removes the lock, and only with the right id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::{self, ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a state's lock is kept: the lock file beside an SQLite state, or whatever another
/// backend (a database's own locks) provides.
pub trait Locks {
    /// A held lock, released when dropped.
    type Held: HeldLock;
    /// Takes the lock for `operation`, or fails at once naming the holder
    /// ([`LockError::Held`]); a holder that is provably gone is taken over.
    fn try_take(&self, operation: &str, now: DateTime<Utc>) -> Result<Self::Held, LockError>;
    /// Removes the lock `id`, held by a tether that is gone or that the user chose to stop
    /// waiting for; `None` when there was nothing but an empty lock.
    fn force_unlock(&self, id: &str) -> Result<Option<LockInfo>, LockError>;
    /// The lock held now, if any.
    fn holder(&self) -> Result<Option<LockInfo>, LockError>;
    /// Why the holder of `held` is certainly gone, or `None` when it may still run. By
    /// default: the same host, and its process no longer runs (a backend with leases adds
    /// an expired lease).
    fn holder_gone(&self, held: &LockInfo) -> Option<String> {
        holder_gone(held)
    }
}

/// What every backend's held lock tells.
pub trait HeldLock {
    fn info(&self) -> &LockInfo;
    /// The note to show when this lock replaced a holder that is gone.
    fn takeover_note(&self) -> Option<String>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub operation: String,
    pub started_at: DateTime<Utc>,
    /// The holder's start in clock ticks after boot (/proc/PID/stat, field 22), and the boot
    /// (/proc/sys/kernel/random/boot_id): together they name the process exactly. Absent in
    /// locks from older tethers and off Linux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
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
    Held(Box<LockInfo>),
    /// A lock file with nothing in it: no holder, so `force-unlock` removes it.
    Empty(PathBuf),
    /// A lock file that cannot be read: say where, so it can be looked at.
    Unreadable(PathBuf, String),
    Io(PathBuf, io::Error),
    WrongId {
        expected: String,
        given: String,
    },
    NotLocked,
    /// Still held by another tether after waiting this long.
    TimedOut(Box<LockInfo>, Duration),
    /// The wait was given up on request (SIGTERM): nothing was done.
    Interrupted,
    /// A backend's own failure, said whole (e.g. the database holding the lock is down).
    Backend(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(info) if info.host != host_name() => write!(
                f,
                "the state is locked: {info}, another host, where tether cannot see whether \
                 that process still runs. Wait for it to finish; if it is gone, run \
                 `tether force-unlock {}`",
                info.id
            ),
            LockError::Held(info) => write!(
                f,
                "the state is locked: {info}. Wait for it to finish; if that process is gone, run `tether force-unlock {}`",
                info.id
            ),
            LockError::Empty(path) => write!(
                f,
                "lock file {} is empty: no tether holds it (one that could not write it, e.g. \
                 on a full disk, left it behind); run `tether force-unlock empty` to remove it",
                path.display()
            ),
            LockError::Unreadable(path, e) => write!(
                f,
                "lock file {} cannot be read ({e}); if no tether runs against this state, delete it",
                path.display()
            ),
            LockError::Io(path, e) => {
                let what = match e.kind() {
                    ErrorKind::StorageFull => {
                        "no space left on device: free some space on that file system, then run again"
                    }
                    ErrorKind::PermissionDenied => {
                        "permission denied: run tether as a user who may write there, or give \
                         `--state` a path that user may write"
                    }
                    ErrorKind::ReadOnlyFilesystem => {
                        "the file system is read-only: give `--state` a path on a writable one"
                    }
                    _ => return write!(f, "lock file {}: {e}", path.display()),
                };
                write!(f, "lock file {}: {what}", path.display())
            }
            LockError::WrongId { expected, given } => write!(
                f,
                "lock id `{given}` does not match the lock held ({expected}); nothing was unlocked"
            ),
            LockError::NotLocked => write!(f, "the state is not locked"),
            LockError::TimedOut(info, waited) => write!(
                f,
                "the state is still locked after waiting {}: {info}. A cycle usually \
                 finishes within minutes: run again, or wait longer with --lock-timeout; if \
                 that process is gone, run `tether force-unlock {}`",
                span(*waited),
                info.id
            ),
            LockError::Backend(message) => f.write_str(message),
            LockError::Interrupted => {
                write!(
                    f,
                    "stopped while waiting for the state lock; nothing was done"
                )
            }
        }
    }
}

impl std::error::Error for LockError {}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    pub info: LockInfo,
    /// The dead holder whose lock this one replaced, and how it is known to be gone.
    pub taken_over: Option<(LockInfo, String)>,
}

impl StateLock {
    /// The note to show when this lock replaced a dead holder's.
    pub fn takeover_note(&self) -> Option<String> {
        self.taken_over
            .as_ref()
            .map(|(dead, why)| format!("note: took over the state lock held by {dead}: {why}"))
    }
}

impl HeldLock for StateLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }
    fn takeover_note(&self) -> Option<String> {
        StateLock::takeover_note(self)
    }
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

/// `path` with `suffix` appended to its name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<LockInfo, LockError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LockError::Unreadable(path.to_path_buf(), e.to_string()))?;
    if text.trim().is_empty() {
        return Err(LockError::Empty(path.to_path_buf()));
    }
    serde_json::from_str(&text)
        .map_err(|e| LockError::Unreadable(path.to_path_buf(), e.to_string()))
}

/// This machine's name, as locks record it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

fn user_name() -> String {
    local_user().unwrap_or_else(|| "unknown user".into())
}

/// Who runs this process: `USER`/`USERNAME`, else the account of its uid (a systemd unit or
/// a container sets no `USER`), else `uid N`.
pub fn local_user() -> Option<String> {
    local_user_with(
        |name| std::env::var(name).ok(),
        &std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
        &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
    )
}

fn local_user_with(
    env: impl Fn(&str) -> Option<String>,
    proc_status: &str,
    passwd: &str,
) -> Option<String> {
    if let Some(user) = ["USER", "USERNAME"]
        .iter()
        .find_map(|name| env(name).filter(|u| !u.is_empty()))
    {
        return Some(user);
    }
    let uid = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?;
    Some(account_of(passwd, uid).unwrap_or_else(|| format!("uid {uid}")))
}

/// The account name of `uid` in an /etc/passwd text.
fn account_of(passwd: &str, uid: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|id| !id.is_empty())
}

/// A process as /proc shows it: its state letter and its start in clock ticks after boot.
struct Process {
    state: char,
    start: u64,
}

/// The process `pid` on this machine: `Ok(None)` when there is none, `Err` when this system
/// cannot tell (no /proc).
fn process(pid: u32) -> Result<Option<Process>, ()> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(_) if std::fs::metadata("/proc/self/stat").is_err() => return Err(()),
        Err(_) => return Ok(None),
    };
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so fields count
    // from the last `)`; after it come field 3 (state) … field 22 (starttime).
    let after = stat.rsplit_once(')').ok_or(())?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first().and_then(|s| s.chars().next()).ok_or(())?;
    let start = fields.get(19).and_then(|s| s.parse().ok()).ok_or(())?;
    Ok(Some(Process { state, start }))
}

/// When a process started, from its start in ticks: boot time (/proc/stat `btime`) plus the
/// ticks at USER_HZ, which is 100 on every Linux architecture tether builds for.
fn started_at(ticks: u64) -> Option<DateTime<Utc>> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    DateTime::from_timestamp(boot.checked_add(i64::try_from(ticks / 100).ok()?)?, 0)
}

/// Why the holder of `held` is certainly gone, or `None` when it may still run (another
/// host, or this system cannot tell).
pub fn holder_gone(held: &LockInfo) -> Option<String> {
    if held.host != host_name() {
        return None;
    }
    let pid = held.pid;
    if let (Some(then), Some(now)) = (&held.boot_id, boot_id())
        && *then != now
    {
        return Some("this machine has restarted since".into());
    }
    let Some(process) = process(pid).ok()? else {
        return Some(format!("no process {pid} runs on {}", held.host));
    };
    if matches!(process.state, 'Z' | 'X') {
        return Some(format!("process {pid} has exited"));
    }
    let reused = match held.process_start {
        Some(start) => start != process.start,
        // A lock from an older tether: a process started after the lock was taken cannot
        // have taken it (the slack covers btime's whole seconds).
        None => started_at(process.start).is_some_and(|s| {
            held.started_at
                .checked_add_signed(chrono::Duration::seconds(2))
                .is_some_and(|taken| s > taken)
        }),
    };
    reused.then(|| format!("pid {pid} now belongs to a process started after the lock was taken"))
}

/// Writes the whole of `text` to `file` and flushes it to disk.
fn write_synced(file: &mut std::fs::File, text: &[u8]) -> io::Result<()> {
    file.write_all(text)?;
    file.sync_all()
}

/// The lock file of an SQLite state (`state.db.lock`).
#[derive(Debug, Clone)]
pub struct FileLocks {
    state: PathBuf,
}

impl FileLocks {
    pub fn new(state: &Path) -> Self {
        FileLocks {
            state: state.to_path_buf(),
        }
    }
}

impl Locks for FileLocks {
    type Held = StateLock;

    fn try_take(&self, operation: &str, now: DateTime<Utc>) -> Result<StateLock, LockError> {
        let path = lock_path(&self.state);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LockError::Io(dir.to_path_buf(), e))?;
        }
        take(path, ours(operation, now), &write_synced)
    }

    fn force_unlock(&self, id: &str) -> Result<Option<LockInfo>, LockError> {
        force_unlock(&self.state, id)
    }

    fn holder(&self) -> Result<Option<LockInfo>, LockError> {
        let path = lock_path(&self.state);
        match read(&path) {
            Ok(held) => Ok(Some(held)),
            Err(LockError::Unreadable(..)) if !path.exists() => Ok(None),
            Err(LockError::Empty(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Takes the lock for `operation`, or fails at once naming the holder.
pub fn acquire(state: &Path, operation: &str, now: DateTime<Utc>) -> Result<StateLock, LockError> {
    FileLocks::new(state).try_take(operation, now)
}

/// How long to wait for a lock, and what to do meanwhile.
pub struct Wait<'a> {
    pub timeout: Duration,
    /// Told of each holder waited for (again when another one takes over the wait).
    pub waiting: &'a mut dyn FnMut(&LockInfo),
    /// Asked between attempts: true gives up with [`LockError::Interrupted`].
    pub stop: &'a dyn Fn() -> bool,
}

/// Takes the lock for `operation`, waiting up to `wait.timeout` while another tether holds
/// it; returns it with the time waited. Errors other than a live holder are not waited on.
pub fn wait_for<L: Locks>(
    locks: &L,
    operation: &str,
    wait: Wait<'_>,
) -> Result<(L::Held, Duration), LockError> {
    let started = Instant::now();
    let mut told: Option<String> = None;
    let mut pause = Duration::from_millis(50);
    loop {
        let held = match locks.try_take(operation, Utc::now()) {
            Ok(lock) => return Ok((lock, started.elapsed())),
            Err(LockError::Held(held)) => held,
            Err(e) => return Err(e),
        };
        let waited = started.elapsed();
        if wait.timeout.is_zero() {
            return Err(LockError::Held(held));
        }
        if waited >= wait.timeout {
            return Err(LockError::TimedOut(held, waited));
        }
        if told.as_deref() != Some(held.id.as_str()) {
            (wait.waiting)(&held);
            told = Some(held.id.clone());
        }
        // Short pauses at first (a cycle about to end), then at most a second.
        let until = (started + wait.timeout).min(Instant::now() + pause);
        while Instant::now() < until {
            if (wait.stop)() {
                return Err(LockError::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// `d` as the command line writes durations: `5m`, `1m30s`, `250ms`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, 0) => format!("{}ms", d.as_millis()),
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// The lock this process holds for `operation`, taken at `now`.
pub fn ours(operation: &str, now: DateTime<Utc>) -> LockInfo {
    let pid = std::process::id();
    LockInfo {
        id: format!(
            "{:x}-{pid:x}",
            now.timestamp_nanos_opt().unwrap_or_default()
        ),
        who: user_name(),
        host: host_name(),
        pid,
        operation: operation.to_string(),
        started_at: now,
        process_start: process(pid).ok().flatten().map(|p| p.start),
        boot_id: boot_id(),
    }
}

/// Places the lock `info` at `path`, writing it with `write`; takes over the lock of a
/// holder that is provably gone.
fn take(
    path: PathBuf,
    info: LockInfo,
    write: &dyn Fn(&mut std::fs::File, &[u8]) -> io::Result<()>,
) -> Result<StateLock, LockError> {
    let text = serde_json::to_string_pretty(&info).expect("lock info serializes");
    let mut taken_over = None;
    // A few rounds: a lock released or taken over between our steps is looked at again.
    for _ in 0..4 {
        match place(&path, &info.id, text.as_bytes(), write) {
            Ok(()) => {
                tracing::debug!(lock = %path.display(), id = %info.id, operation = %info.operation, "state lock taken");
                return Ok(StateLock {
                    path,
                    info,
                    taken_over,
                });
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(LockError::Io(path, e)),
        }
        let held = match read(&path) {
            Err(LockError::Unreadable(..)) if !path.exists() => continue, // just released
            held => held?,
        };
        let Some(why) = holder_gone(&held) else {
            return Err(LockError::Held(Box::new(held)));
        };
        if remove_dead(&path, &held) {
            tracing::warn!(lock = %path.display(), dead = %held, reason = %why, "took over the lock of a holder that is gone");
            taken_over = Some((held, why));
        }
    }
    Err(LockError::Held(Box::new(read(&path)?)))
}

/// Creates the lock file at `path` holding `text`, whole or not at all: `AlreadyExists`
/// when a lock is there. The text is written under a private name and then linked into
/// place (the link fails if a lock exists), so a process killed at any moment, or a full
/// disk, leaves no lock or a complete one, never an empty file.
fn place(
    path: &Path,
    id: &str,
    text: &[u8],
    write: &dyn Fn(&mut std::fs::File, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let staged = beside(path, &format!(".{id}.tmp"));
    let linked = std::fs::File::create(&staged)
        .and_then(|mut f| write(&mut f, text))
        .and_then(|()| std::fs::hard_link(&staged, path));
    let _ = std::fs::remove_file(&staged);
    match linked {
        // A file system without hard links (it refuses the link, not the write): create
        // the lock in place, and remove it again if it cannot be written whole.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Unsupported | ErrorKind::PermissionDenied
            ) =>
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            write(&mut file, text).inspect_err(|_| {
                let _ = std::fs::remove_file(path);
            })
        }
        other => other,
    }
}

/// Removes the lock `dead` at `path`, whose holder is gone; true when this process did.
/// Of several takers at once exactly one removes it, and never a newer lock: each takes an
/// OS lock on a file beside it (`state.db.lock.takeover`, kept for the next takeover), and
/// under it removes the lock only if it still is the dead one. The kernel drops that OS
/// lock when its holder dies, so a taker killed midway leaves nothing that blocks the next.
fn remove_dead(path: &Path, dead: &LockInfo) -> bool {
    let guard_path = beside(path, ".takeover");
    let Ok(guard) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&guard_path)
    else {
        return false;
    };
    // Another taker holds it only for a read and a remove; one stopped (not dead) there is
    // waited for a few seconds, and then this taker reports the lock as held.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match guard.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(_) => return false,
        }
    }
    let removed = read(path).is_ok_and(|l| l.id == dead.id) && std::fs::remove_file(path).is_ok();
    let _ = guard.unlock();
    removed
}

/// Removes a lock left by a holder that is gone. The id must match, so a typo or an old
/// id never breaks a lock someone else holds now; an empty lock file holds nothing, so any
/// id removes it (`None` is returned then).
pub fn force_unlock(state: &Path, id: &str) -> Result<Option<LockInfo>, LockError> {
    let path = lock_path(state);
    if !path.exists() {
        return Err(LockError::NotLocked);
    }
    let held = match read(&path) {
        Err(LockError::Empty(_)) => None,
        held => Some(held?),
    };
    if let Some(held) = &held
        && held.id != id
    {
        return Err(LockError::WrongId {
            expected: held.id.clone(),
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
    fn a_holder_without_user_in_its_environment_is_named_by_its_account() {
        let status = "Name:\ttether\nUid:\t998\t998\t998\t998\nGid:\t998\n";
        let passwd = "root:x:0:0:root:/root:/bin/bash\ntether:x:998:998::/var/lib/tether:/usr/sbin/nologin\n";
        let none = |_: &str| None;
        assert_eq!(
            local_user_with(none, status, passwd).as_deref(),
            Some("tether")
        );
        assert_eq!(
            local_user_with(none, status, "").as_deref(),
            Some("uid 998")
        );
        let empty_user = |name: &str| (name == "USER").then(String::new);
        assert_eq!(
            local_user_with(empty_user, status, passwd).as_deref(),
            Some("tether")
        );
        let ana = |name: &str| (name == "USER").then(|| "ana".to_string());
        assert_eq!(local_user_with(ana, status, passwd).as_deref(), Some("ana"));
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
        assert_eq!(**info, held.info);
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
        assert_eq!(force_unlock(&state, &id).unwrap().unwrap().id, id);
        assert!(matches!(
            force_unlock(&state, &id),
            Err(LockError::NotLocked)
        ));
        assert!(acquire(&state, "apply", now()).is_ok());
    }

    #[test]
    fn a_takeover_killed_midway_does_not_block_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let path = lock_path(&state);
        let mut dead = ours("apply", now());
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        dead.pid = gone.id();
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        // What an older tether killed midway through a takeover left: its claim on the lock.
        std::fs::hard_link(&path, beside(&path, &format!(".{}.dead", dead.id))).unwrap();
        // And a taker killed while it held the takeover guard.
        let mut taker = std::process::Command::new("flock")
            .arg("--close") // the lock is held by flock itself, not by `sleep`
            .arg(beside(&path, ".takeover"))
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        taker.kill().unwrap();
        taker.wait().unwrap();
        let lock = acquire(&state, "run", now()).unwrap();
        assert_eq!(lock.taken_over.as_ref().map(|(l, _)| &l.id), Some(&dead.id));
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

    #[test]
    fn empty_lock_file_is_not_left_on_a_full_disk() {
        for (errno, says) in [
            (
                28,
                "no space left on device: free some space on that file system, then run again",
            ),
            (
                13,
                "permission denied: run tether as a user who may write there",
            ),
            (
                30,
                "the file system is read-only: give `--state` a path on a writable one",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = lock_path(&dir.path().join("state.db"));
            // The file is created (that takes no space), its bytes are not written.
            let full = |_: &mut std::fs::File, _: &[u8]| Err(io::Error::from_raw_os_error(errno));
            let err = take(path.clone(), ours("apply", now()), &full).unwrap_err();
            assert!(matches!(err, LockError::Io(..)), "{err}");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("lock file {}: {says}", path.display())),
                "{text}"
            );
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(left.is_empty(), "left behind: {left:?}");
            // Once there is room again the lock is taken.
            assert!(take(path, ours("apply", now()), &write_synced).is_ok());
        }
    }

    fn no_stop() -> bool {
        false
    }

    #[test]
    fn a_waiter_is_told_the_holder_once_and_takes_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let held = acquire(&state, "run", now()).unwrap();
        let holder = held.info.clone();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let mut told = Vec::new();
        let (lock, waited) = wait_for(
            &FileLocks::new(&state),
            "apply",
            Wait {
                timeout: Duration::from_secs(60),
                waiting: &mut |l| told.push(l.clone()),
                stop: &no_stop,
            },
        )
        .unwrap();
        release.join().unwrap();
        assert_eq!(told, [holder]);
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert_eq!(lock.info.operation, "apply");
    }

    #[test]
    fn a_waiter_gives_up_after_the_timeout_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let held = acquire(&state, "run", now()).unwrap();
        let err = wait_for(
            &FileLocks::new(&state),
            "apply",
            Wait {
                timeout: Duration::from_millis(200),
                waiting: &mut |_| {},
                stop: &no_stop,
            },
        )
        .unwrap_err();
        let LockError::TimedOut(info, waited) = &err else {
            panic!("{err}")
        };
        assert_eq!(**info, held.info);
        assert!(*waited >= Duration::from_millis(200));
        let text = err.to_string();
        assert!(
            text.starts_with("the state is still locked after waiting ")
                && text.contains(": `run` by ")
                && text.contains("wait longer with --lock-timeout")
                && text.ends_with(&format!("run `tether force-unlock {}`", held.info.id)),
            "{text}"
        );
        // A zero timeout fails at once, as without waiting.
        let mut told = 0;
        let err = wait_for(
            &FileLocks::new(&state),
            "apply",
            Wait {
                timeout: Duration::ZERO,
                waiting: &mut |_| told += 1,
                stop: &no_stop,
            },
        )
        .unwrap_err();
        assert!(matches!(err, LockError::Held(..)), "{err}");
        assert_eq!(told, 0);
    }

    #[test]
    fn a_waiter_stops_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let _held = acquire(&state, "run", now()).unwrap();
        let err = wait_for(
            &FileLocks::new(&state),
            "apply",
            Wait {
                timeout: Duration::from_secs(60),
                waiting: &mut |_| {},
                stop: &|| true,
            },
        )
        .unwrap_err();
        assert!(matches!(err, LockError::Interrupted), "{err}");
    }

    #[test]
    fn spans_read_as_the_command_line_writes_them() {
        assert_eq!(span(Duration::from_millis(250)), "250ms");
        assert_eq!(span(Duration::from_secs(45)), "45s");
        assert_eq!(span(Duration::from_secs(300)), "5m");
        assert_eq!(span(Duration::from_secs(90)), "1m30s");
        assert_eq!(span(Duration::from_secs(3 * 3600 + 60)), "3h01m");
    }

    #[test]
    fn the_holder_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let locks = FileLocks::new(&state);
        assert_eq!(locks.holder().unwrap(), None);
        let held = locks.try_take("run", now()).unwrap();
        assert_eq!(locks.holder().unwrap(), Some(held.info.clone()));
    }
}
