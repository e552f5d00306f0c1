//! The state store: what tether remembers between runs — applied configuration revisions,
//! the links between Exchange items and Salesforce records with the hash of each record as
//! last synced, change cursors, statuses, reset marks, the error report, activity counts and
//! the create journal. Every write goes through `apply`, one transaction, so a crash leaves
//! either all or none of a step. SQLite is the embedded default, Postgres the shared one
//! (`StateLocation` says which); `MemoryState` serves tests.

mod copy;
mod location;
mod memory;
mod postgres;
mod sqlite;

pub use copy::{Cell, Dump, TABLES, Table, copy_state};
pub use location::{StateLocation, StateLockGuard, StateLocks};
pub use memory::MemoryState;
pub use postgres::{PostgresLock, PostgresLocks, PostgresState, PostgresTarget};
pub use sqlite::{SCHEMA_VERSION, SqliteState};

use crate::model::ObjectKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// This state's identity, as tether marks the mailboxes it syncs with it: derived from the
/// random key made when the store was created (a one-way hash, so it tells nothing of the
/// key), so every state has one without a schema change, and `state migrate` keeps it (the
/// copy is the same state).
pub fn identity<S: StateStore + ?Sized>(state: &S) -> Result<String, StateError> {
    use sha2::{Digest, Sha256};
    let key = state.plan_signing_key()?;
    let mut h = Sha256::new();
    h.update(b"tether state identity\0");
    h.update(key.expose().as_bytes());
    let digest = h.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Default place of the state file, relative to the configuration's directory.
pub const DEFAULT_STATE_PATH: &str = ".tether/state.db";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkId(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeSide {
    pub item_id: String,
    pub change_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesforceSide {
    pub id: String,
    pub modstamp: String,
}

/// A rep's Exchange item linked to a Salesforce record. One side is absent when the link was
/// detached: its partner was deleted (contacts, or events without delete_synced), and the
/// remaining record must not be synced again, or the delete would be undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The rep's Salesforce user id.
    pub rep: String,
    pub object: ObjectKind,
    pub exchange: Option<ExchangeSide>,
    pub salesforce: Option<SalesforceSide>,
    /// Hash of the record's comparison form as last synced.
    pub hash: String,
}

impl Link {
    pub fn is_detached(&self) -> bool {
        self.exchange.is_none() || self.salesforce.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncDirection {
    ExchangeToSalesforce,
    SalesforceToExchange,
}

impl SyncDirection {
    pub fn name(self) -> &'static str {
        match self {
            SyncDirection::ExchangeToSalesforce => "exchange_to_salesforce",
            SyncDirection::SalesforceToExchange => "salesforce_to_exchange",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "exchange_to_salesforce" => Some(SyncDirection::ExchangeToSalesforce),
            "salesforce_to_exchange" => Some(SyncDirection::SalesforceToExchange),
            _ => None,
        }
    }
}

/// The admin guide's sync statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncStatus {
    NotStarted,
    InitialSyncInProgress,
    InitialSyncCompleted,
    SyncInProgress,
    InSync,
    NotSetToSync,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 6] = [
        SyncStatus::NotStarted,
        SyncStatus::InitialSyncInProgress,
        SyncStatus::InitialSyncCompleted,
        SyncStatus::SyncInProgress,
        SyncStatus::InSync,
        SyncStatus::NotSetToSync,
    ];

    /// As the admin guide words it.
    pub fn label(self) -> &'static str {
        match self {
            SyncStatus::NotStarted => "Not started",
            SyncStatus::InitialSyncInProgress => "Initial sync in progress",
            SyncStatus::InitialSyncCompleted => "Initial sync completed",
            SyncStatus::SyncInProgress => "Sync in progress",
            SyncStatus::InSync => "In sync",
            SyncStatus::NotSetToSync => "Exchange configuration not set to sync",
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.label() == s)
    }

    /// The initial sync finished at some point.
    pub fn initial_done(self) -> bool {
        matches!(
            self,
            SyncStatus::InitialSyncCompleted | SyncStatus::SyncInProgress | SyncStatus::InSync
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    pub rep: String,
    pub object: ObjectKind,
    pub direction: SyncDirection,
    pub status: SyncStatus,
    pub records_in_sync: u64,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetMark {
    MarkedForReset,
    ResetInProgress,
}

impl ResetMark {
    pub fn label(self) -> &'static str {
        match self {
            ResetMark::MarkedForReset => "Marked for reset",
            ResetMark::ResetInProgress => "Reset in progress",
        }
    }
    fn from_label(s: &str) -> Option<Self> {
        [ResetMark::MarkedForReset, ResetMark::ResetInProgress]
            .into_iter()
            .find(|m| m.label() == s)
    }
}

/// One line of the error report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub at: DateTime<Utc>,
    pub rep: String,
    pub object: Option<ObjectKind>,
    pub direction: Option<SyncDirection>,
    pub record_ids: Vec<String>,
    pub code: String,
    pub message: String,
    pub suggestion: String,
    /// The versions of the records the failed write was planned on (ChangeKey and
    /// SystemModstamp): an acknowledgement holds while they stay the same.
    #[serde(default)]
    pub version: Option<String>,
}

/// A failed record an admin acknowledged (`tether errors ack ID`): while it fails at the
/// version it was acknowledged at, it stays listed but fails no exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub record_id: String,
    /// The failure's `ErrorEntry::version` when acknowledged.
    pub version: Option<String>,
    pub at: DateTime<Utc>,
}

impl Acknowledgement {
    /// Whether `acks` acknowledge every record of `error` at the version it failed at.
    pub fn covers(acks: &BTreeMap<String, Acknowledgement>, error: &ErrorEntry) -> bool {
        !error.record_ids.is_empty()
            && error
                .record_ids
                .iter()
                .all(|id| acks.get(id).is_some_and(|a| a.version == error.version))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub at: DateTime<Utc>,
    pub object: ObjectKind,
    pub records: u64,
}

/// What the last cycle that read Exchange learned about the connection as a whole, so
/// `tether status` can answer offline (an engineer paged at night should not need the
/// servers to see what the last run saw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemFacts {
    pub at: DateTime<Utc>,
    /// Exchange accepted the service account: `Some(true)` when any mailbox call got an
    /// answer past authentication, `Some(false)` when the credentials were refused, `None`
    /// when no mailbox was contacted (nobody to sync, or Exchange unreachable).
    pub service_account_recognised: Option<bool>,
    /// What Exchange said when it refused or could not be reached.
    #[serde(default)]
    pub exchange_error: Option<String>,
    /// The org's Outlook integration setting, when the cycle read it (it does when a
    /// configuration syncs only the events reps relate in Outlook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlook_integration: Option<OutlookIntegrationFact>,
}

/// What a read of the org's Outlook integration setting found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutlookIntegrationFact {
    Enabled(bool),
    /// Why it could not be read (e.g. the integration user lacks the Metadata API's
    /// permission).
    NotRead(String),
}

/// What the last cycle learned about one rep (keyed by lower-cased email: a user who
/// cannot be linked has no mailbox, and may not even be an active Salesforce user).
/// `None` in a check means "not checked" (e.g. the mailbox could not be reached).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepFacts {
    pub email: String,
    /// Salesforce user id, when known.
    #[serde(default)]
    pub user_id: Option<String>,
    pub at: DateTime<Utc>,
    /// The active sync configuration the rep syncs under; `None`: under none.
    #[serde(default)]
    pub configuration: Option<String>,
    /// Why the rep cannot be synced before Exchange is asked (a `RepProblem` code:
    /// USER_NOT_FOUND, MULTIPLE_CONFIGURATIONS, NO_MAILBOX_DOMAIN), with its message.
    #[serde(default)]
    pub problem: Option<(String, String)>,
    /// The mailbox the rep's email linked to.
    #[serde(default)]
    pub mailbox: Option<String>,
    /// The rep's email and mailbox match an existing mailbox (false: ErrorNonExistentMailbox
    /// or a mail domain the Exchange connection does not serve).
    #[serde(default)]
    pub addresses_linked: Option<bool>,
    /// The service account may impersonate the mailbox.
    #[serde(default)]
    pub impersonation: Option<bool>,
    /// The Exchange build the mailbox answered from (EWS ServerVersionInfo), e.g. 15.1.2507.6.
    #[serde(default)]
    pub exchange_build: Option<String>,
    /// Contacts/Salesforce_Sync was found (or created) when contacts sync.
    #[serde(default)]
    pub contacts_folder: Option<bool>,
    /// The default calendar was read when events sync.
    #[serde(default)]
    pub calendar: Option<bool>,
    /// Objects the rep's configuration syncs.
    #[serde(default)]
    pub objects: Vec<ObjectKind>,
    /// The error the mailbox answered with, when it could not be used: (code, message).
    #[serde(default)]
    pub mailbox_error: Option<(String, String)>,
}

/// Which side a journalled create writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CreateTarget {
    Exchange,
    Salesforce,
}

/// A create written down before it is sent. Until it is done, a retry first looks the
/// record up (Salesforce: by marker; Exchange: by the Salesforce id stamped on the item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub marker: String,
    pub rep: String,
    pub object: ObjectKind,
    pub target: CreateTarget,
    /// The id of the record on the other side the create copies.
    pub source_id: String,
    /// Hash of the record as created: the base for a three-way decision if the create is
    /// found later, so an edit made meanwhile on either side is not lost.
    pub hash: String,
    pub at: DateTime<Utc>,
}

/// A configuration as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRevision {
    pub generation: u64,
    /// The configuration in canonical form (sorted JSON; secret references only).
    pub canonical: String,
    pub hash: String,
    pub applied_at: DateTime<Utc>,
    pub applied_by: String,
}

impl ConfigRevision {
    /// The canonical form of a configuration (JSON with sorted keys; it holds secret
    /// references, never secrets) and its SHA-256, for `StateChange::RecordApply`.
    pub fn canonical(config: &crate::config::model::Config) -> (String, String) {
        canonical_json(config)
    }
}

/// Canonical JSON text of a value (sorted keys) and its SHA-256 in hex.
pub fn canonical_json<T: Serialize>(value: &T) -> (String, String) {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::to_value(value)
        .map(|v| sorted_json(&v))
        .unwrap_or_default();
    let hash = Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (canonical, hash)
}

/// JSON text with object keys sorted, whatever map order serde_json was built with.
fn sorted_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        sorted_json(&m[k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(sorted_json).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// An attendee auto-relate could not match to a Contact or Lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnresolvedItem {
    pub rep: String,
    pub event_id: String,
    pub email: String,
    pub at: DateTime<Utc>,
}

/// Whose turn it is to read the org for a cycle shared by workers (`engine::workers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTurn {
    /// Read the org for this cycle generation: a new one, or one whose reader's lease ended
    /// before it published its read.
    Read(u64),
    /// This generation's org read is in the state: claim its groups of reps.
    Join(u64),
    /// Nothing to do now: another worker is reading the org (its lease runs), or the last
    /// cycle finished and the next one is not due yet.
    Wait,
}

/// A group of reps of a shared cycle, and who works it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepGroup {
    pub generation: u64,
    pub group: u64,
    /// Salesforce user ids.
    pub reps: Vec<String>,
    pub worker: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
    /// Objects with operations held back in the group: their org watermark stays.
    pub held: Vec<ObjectKind>,
}

/// A claim of a group as recorded: who held it, from when, and until when (its lease, or
/// the moment the group was recorded done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub generation: u64,
    pub group: u64,
    pub worker: String,
    pub claimed_at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Times in the coordination tables, fixed-width so that text order is time order.
pub(crate) fn lease_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn parse_lease_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Why a shared cycle cannot be finished: another worker finished it first.
pub fn already_finished(generation: u64) -> StateError {
    StateError::new(
        format!("cycle {generation} was finished by another worker"),
        "nothing to do: the next cycle starts anew",
    )
}

/// Where a change feed stands: per folder per rep, or per object for the org.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CursorKey {
    Folder {
        rep: String,
        object: ObjectKind,
    },
    Org {
        object: ObjectKind,
    },
    /// Hash of the sync settings the cursors were read under: when the settings change
    /// (scope, filters, window, mappings), incremental feeds would miss records that now
    /// qualify, so everything is read in full once.
    Settings,
}

impl CursorKey {
    pub fn encode(&self) -> String {
        match self {
            CursorKey::Folder { rep, object } => format!("folder/{}/{rep}", object.name()),
            CursorKey::Org { object } => format!("org/{}", object.name()),
            CursorKey::Settings => "settings".into(),
        }
    }
}

/// One write. `StateStore::apply` runs a list of them as one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// Insert (`id: None`) or replace a link.
    PutLink {
        id: Option<LinkId>,
        link: Link,
    },
    DeleteLink(LinkId),
    /// Drop every link and folder cursor of a rep (reset).
    ClearRep {
        rep: String,
    },
    SetCursor {
        key: CursorKey,
        value: Option<String>,
    },
    SetStatus(StatusEntry),
    SetResetMark {
        rep: String,
        mark: Option<ResetMark>,
    },
    AddError(ErrorEntry),
    AddActivity(ActivityEntry),
    JournalAdd(JournalEntry),
    JournalDone {
        marker: String,
    },
    AddUnresolved(UnresolvedItem),
    /// Remember a rep's email (reps are keyed by Salesforce user id).
    SetRepEmail {
        rep: String,
        email: String,
    },
    /// Record an applied configuration; the store assigns the next generation.
    RecordApply {
        canonical: String,
        hash: String,
        applied_at: DateTime<Utc>,
        applied_by: String,
    },
    /// Replace what is known about one rep (`RepFacts::email`).
    SetRepFacts(RepFacts),
    SetSystemFacts(SystemFacts),
    /// Acknowledge a failed record (replacing an earlier acknowledgement of it).
    Acknowledge(Acknowledgement),
    /// Record that a saved plan was applied, so it is refused a second time. Goes in the
    /// transaction of its `RecordApply`.
    RecordPlanApplied {
        plan_id: String,
        applied_at: DateTime<Utc>,
    },
    /// A group of a shared cycle is recorded (in the transaction of its record): its claim
    /// ends.
    GroupDone {
        generation: u64,
        group: u64,
        held: Vec<ObjectKind>,
        at: DateTime<Utc>,
    },
    /// A shared cycle is finished (in the transaction that moves its org cursors); fails
    /// the transaction when another worker finished it already.
    FinishSharedCycle {
        generation: u64,
        at: DateTime<Utc>,
    },
}

/// A state store failure, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    pub message: String,
    pub hint: String,
}

impl StateError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        StateError {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  hint: {}", self.message, self.hint)
    }
}

impl std::error::Error for StateError {}

pub trait StateStore: Send {
    /// Run `changes` as one transaction: all or nothing.
    fn apply(&mut self, changes: Vec<StateChange>) -> Result<(), StateError>;

    fn links(&self, rep: &str, object: ObjectKind) -> Result<Vec<(LinkId, Link)>, StateError>;
    fn all_links(&self) -> Result<Vec<(LinkId, Link)>, StateError>;
    fn cursor(&self, key: &CursorKey) -> Result<Option<String>, StateError>;
    fn status(
        &self,
        rep: &str,
        object: ObjectKind,
        direction: SyncDirection,
    ) -> Result<Option<StatusEntry>, StateError>;
    fn statuses(&self) -> Result<Vec<StatusEntry>, StateError>;
    fn reset_marks(&self) -> Result<BTreeMap<String, ResetMark>, StateError>;
    fn errors(&self) -> Result<Vec<ErrorEntry>, StateError>;
    /// Acknowledged failed records, by record id.
    fn acknowledgements(&self) -> Result<BTreeMap<String, Acknowledgement>, StateError>;
    /// Records synced per object since `since` ("last 60 minutes / last 24 hours").
    fn activity_since(&self, since: DateTime<Utc>)
    -> Result<BTreeMap<ObjectKind, u64>, StateError>;
    /// When records of each object were last synced ("last sync activity").
    fn last_activity(&self) -> Result<BTreeMap<ObjectKind, DateTime<Utc>>, StateError>;
    /// What the last cycles learned about each rep, by email.
    fn rep_facts(&self) -> Result<Vec<RepFacts>, StateError>;
    fn system_facts(&self) -> Result<Option<SystemFacts>, StateError>;
    /// Creates journalled and not yet known done.
    fn pending_creates(&self) -> Result<Vec<JournalEntry>, StateError>;
    fn unresolved(&self, rep: &str) -> Result<Vec<UnresolvedItem>, StateError>;
    /// Salesforce user id → email of every rep a cycle has seen.
    fn rep_emails(&self) -> Result<BTreeMap<String, String>, StateError>;
    /// How many times a configuration was applied.
    fn generation(&self) -> Result<u64, StateError>;
    fn latest_revision(&self) -> Result<Option<ConfigRevision>, StateError>;
    /// The ids of the saved plans applied so far.
    fn applied_plans(&self) -> Result<Vec<String>, StateError>;
    /// The key saved plans are signed with (`plan::file`): made when the store is created,
    /// kept in it, never written anywhere else. Use `expose().as_bytes()` as the HMAC key.
    fn plan_signing_key(&self) -> Result<crate::secret::Secret, StateError>;
    /// Workers: whose turn it is to read the org (see `ReadTurn`); a turn to read is held
    /// until `lease_until`. A new cycle starts no sooner than `interval` after the last one
    /// started, however many workers ask.
    fn read_turn(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        interval: chrono::Duration,
    ) -> Result<ReadTurn, StateError>;
    /// Workers: stores generation's org read and its groups of reps, to be claimed.
    fn publish_org_read(
        &mut self,
        generation: u64,
        org_read: &str,
        groups: &[Vec<String>],
    ) -> Result<(), StateError>;
    /// Workers: the org read stored for a generation.
    fn org_read(&self, generation: u64) -> Result<Option<String>, StateError>;
    /// Workers: claims a group of `generation` that is not done and that nobody holds (or
    /// whose holder's lease ended), until `lease_until`; records the claim.
    fn claim_group(
        &mut self,
        generation: u64,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RepGroup>, StateError>;
    /// Workers: the groups of a generation.
    fn rep_groups(&self, generation: u64) -> Result<Vec<RepGroup>, StateError>;
    /// Workers: every claim made, oldest first.
    fn claims(&self) -> Result<Vec<Claim>, StateError>;
    /// Workers: whether a generation was finished (its org cursors moved).
    fn shared_cycle_finished(&self, generation: u64) -> Result<bool, StateError>;
    /// Every row of every table (`TABLES`), for `tether state migrate`.
    fn dump(&self) -> Result<Dump, StateError> {
        Err(StateError::new(
            "this state store cannot be copied",
            "copy an SQLite or Postgres state",
        ))
    }
    /// Replaces the whole contents with `dump`, in one transaction.
    fn restore(&mut self, _dump: &Dump) -> Result<(), StateError> {
        Err(StateError::new(
            "this state store cannot be written from a copy",
            "copy into an SQLite or Postgres state",
        ))
    }
}

/// A store chosen at run time (`StateLocation::open`) is a store.
impl<S: StateStore + ?Sized> StateStore for Box<S> {
    fn apply(&mut self, changes: Vec<StateChange>) -> Result<(), StateError> {
        (**self).apply(changes)
    }
    fn links(&self, rep: &str, object: ObjectKind) -> Result<Vec<(LinkId, Link)>, StateError> {
        (**self).links(rep, object)
    }
    fn all_links(&self) -> Result<Vec<(LinkId, Link)>, StateError> {
        (**self).all_links()
    }
    fn cursor(&self, key: &CursorKey) -> Result<Option<String>, StateError> {
        (**self).cursor(key)
    }
    fn status(
        &self,
        rep: &str,
        object: ObjectKind,
        direction: SyncDirection,
    ) -> Result<Option<StatusEntry>, StateError> {
        (**self).status(rep, object, direction)
    }
    fn statuses(&self) -> Result<Vec<StatusEntry>, StateError> {
        (**self).statuses()
    }
    fn reset_marks(&self) -> Result<BTreeMap<String, ResetMark>, StateError> {
        (**self).reset_marks()
    }
    fn errors(&self) -> Result<Vec<ErrorEntry>, StateError> {
        (**self).errors()
    }
    fn acknowledgements(&self) -> Result<BTreeMap<String, Acknowledgement>, StateError> {
        (**self).acknowledgements()
    }
    fn activity_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<ObjectKind, u64>, StateError> {
        (**self).activity_since(since)
    }
    fn last_activity(&self) -> Result<BTreeMap<ObjectKind, DateTime<Utc>>, StateError> {
        (**self).last_activity()
    }
    fn rep_facts(&self) -> Result<Vec<RepFacts>, StateError> {
        (**self).rep_facts()
    }
    fn system_facts(&self) -> Result<Option<SystemFacts>, StateError> {
        (**self).system_facts()
    }
    fn pending_creates(&self) -> Result<Vec<JournalEntry>, StateError> {
        (**self).pending_creates()
    }
    fn unresolved(&self, rep: &str) -> Result<Vec<UnresolvedItem>, StateError> {
        (**self).unresolved(rep)
    }
    fn rep_emails(&self) -> Result<BTreeMap<String, String>, StateError> {
        (**self).rep_emails()
    }
    fn generation(&self) -> Result<u64, StateError> {
        (**self).generation()
    }
    fn latest_revision(&self) -> Result<Option<ConfigRevision>, StateError> {
        (**self).latest_revision()
    }
    fn applied_plans(&self) -> Result<Vec<String>, StateError> {
        (**self).applied_plans()
    }
    fn plan_signing_key(&self) -> Result<crate::secret::Secret, StateError> {
        (**self).plan_signing_key()
    }
    fn read_turn(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        interval: chrono::Duration,
    ) -> Result<ReadTurn, StateError> {
        (**self).read_turn(worker, now, lease_until, interval)
    }
    fn publish_org_read(
        &mut self,
        generation: u64,
        org_read: &str,
        groups: &[Vec<String>],
    ) -> Result<(), StateError> {
        (**self).publish_org_read(generation, org_read, groups)
    }
    fn org_read(&self, generation: u64) -> Result<Option<String>, StateError> {
        (**self).org_read(generation)
    }
    fn claim_group(
        &mut self,
        generation: u64,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RepGroup>, StateError> {
        (**self).claim_group(generation, worker, now, lease_until)
    }
    fn rep_groups(&self, generation: u64) -> Result<Vec<RepGroup>, StateError> {
        (**self).rep_groups(generation)
    }
    fn claims(&self) -> Result<Vec<Claim>, StateError> {
        (**self).claims()
    }
    fn shared_cycle_finished(&self, generation: u64) -> Result<bool, StateError> {
        (**self).shared_cycle_finished(generation)
    }
    fn dump(&self) -> Result<Dump, StateError> {
        (**self).dump()
    }
    fn restore(&mut self, dump: &Dump) -> Result<(), StateError> {
        (**self).restore(dump)
    }
}
