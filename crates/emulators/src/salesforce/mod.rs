//! A local Salesforce: OAuth token endpoint and the REST API under `/services/data/vNN.N/`,
//! behaving as the real service documents it, with fault injection for tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use tether_emulators::salesforce::{Emulator, EmulatorOptions};
//! let emu = Emulator::start(EmulatorOptions::deterministic()).await?;
//! let contact = emu.handle().insert("Contact", serde_json::json!({"LastName": "Kung"}));
//! # let _ = (emu.url(), contact); Ok(()) }
//! ```
//!
//! Org settings a test can change through the handle: Shared Activities
//! (`set_shared_activities`, on by default; it governs EventRelation's parent relations and
//! Event's `EventWhoRelations`) and the sharing model behind UserRecordAccess (`set_private`,
//! `share`; see [`sharing`]). Where the documentation names a rule but not its error code
//! (EventRelation's), the emulator answers FIELD_INTEGRITY_EXCEPTION, saying which rule.

pub(crate) mod bulk;
pub(crate) mod cert;
mod csv;
pub mod ids;
pub mod index;
mod metadata;
pub mod schema;
mod server;
pub mod sharing;
pub mod soql;
pub mod store;

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::{RecError, RecordFault, Store, WriteKind};
use tokio::sync::oneshot;

pub use store::RecError as RecordError;

/// The connected app the emulated org trusts.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub client_id: String,
    pub client_secret: Secret,
    /// The certificate uploaded to the connected app for the JWT bearer flow: PEM
    /// `CERTIFICATE` (as in Salesforce) or a bare `PUBLIC KEY`.
    pub jwt_certificate_pem: Option<String>,
    /// Client credentials flow: the "run as" user; None: the flow is not enabled.
    pub client_credentials_user: Option<String>,
}

pub struct EmulatorOptions {
    /// 0: any free port on 127.0.0.1.
    pub port: u16,
    /// The newest API version the org offers; any vNN.N from 31.0 up to it is served.
    pub api_version: String,
    pub clock: Arc<dyn Clock>,
    /// First value of the id counter (fixed in deterministic mode).
    pub id_seed: u64,
    /// DailyApiRequests Max.
    pub daily_api_allowance: u64,
    pub app: ConnectedApp,
    /// Username-password flow is blocked by default in newer orgs.
    pub username_password_enabled: bool,
    /// The integration user (created with the "System Administrator" profile).
    pub integration_username: String,
    pub integration_password: Secret,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// The admin ran tether's setup step: Contact and Event have `Tether_Sync_Key__c`.
    pub sync_key_field: bool,
    /// Serve https with this certificate instead of plain http.
    pub tls: Option<crate::tls::TlsIdentity>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            port: 0,
            api_version: "62.0".into(),
            clock: Arc::new(SystemClock),
            id_seed: (Utc::now().timestamp_millis() as u64) % 1_000_000_000_000,
            daily_api_allowance: 15_000,
            app: ConnectedApp {
                client_id: "3MVG9tether.sandbox.client".into(),
                client_secret: Secret::new("sandbox-client-secret"),
                jwt_certificate_pem: None,
                client_credentials_user: Some("integration@tether.test".into()),
            },
            username_password_enabled: false,
            integration_username: "integration@tether.test".into(),
            integration_password: Secret::new("sandbox-password"),
            max_body_bytes: 8 * 1024 * 1024,
            sync_key_field: true,
            tls: None,
        }
    }
}

/// The fixed start time of deterministic mode.
pub fn deterministic_epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-15T09:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

impl EmulatorOptions {
    /// Fixed clock (2026-01-15T09:00:00Z, advanced only by the handle or shared clock) and id
    /// seed: the same test gives the same ids and timestamps every run.
    pub fn deterministic() -> Self {
        EmulatorOptions {
            clock: Arc::new(ManualClock::new(deterministic_epoch())),
            id_seed: 1,
            ..Default::default()
        }
    }
}

/// Faults applied to the next requests.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub statuses: VecDeque<u16>,
    pub latency: Option<Duration>,
    pub drop_next: u32,
    pub malformed_next: u32,
    pub concurrent_limit_next: u32,
    /// Faults for the next request of one kind (see `EmulatorHandle::served`), in order.
    pub targeted: Vec<(String, KindFault)>,
}

/// A fault aimed at the next request of one kind (`query`, `collection`, `auth`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindFault {
    /// Answer this HTTP status (500: UNKNOWN_EXCEPTION, 503: SERVER_UNAVAILABLE).
    Status(u16),
    /// Every session expires just before this request: it answers 401 INVALID_SESSION_ID.
    ExpireSessions,
    /// 403 REQUEST_LIMIT_EXCEEDED "ConcurrentPerOrgLongTxn Limit exceeded."
    ConcurrentLimit,
    /// The request is carried out, then the connection breaks while the answer is sent.
    DropResponse,
}

pub(crate) struct Session {
    pub user_id: String,
    pub valid: bool,
}

pub(crate) struct Cursor {
    /// When the initial query ran: the locator lives two days from then.
    pub created: DateTime<Utc>,
    pub rows: Vec<Value>,
    pub total: usize,
    pub page: usize,
}

pub(crate) struct Org {
    pub store: Store,
    pub org_id: String,
    pub sessions: HashMap<String, Session>,
    pub refresh_tokens: HashMap<String, String>,
    pub passwords: HashMap<String, Secret>,
    pub cursors: HashMap<String, Cursor>,
    /// Calls in the rolling 24 hours, as (time, count); `api_used` is their sum as of the last
    /// `refresh_usage`.
    pub api_calls: VecDeque<(DateTime<Utc>, u64)>,
    pub api_used: u64,
    pub api_max: u64,
    /// The connected app's API quota (name, max), when one is set (`set_app_quota`).
    pub app_quota: Option<(String, u64)>,
    pub faults: Faults,
    pub served: BTreeMap<String, u64>,
    pub token_counter: u64,
    pub integration_user: String,
    pub bulk: bulk::Bulk,
    /// The integration user holds Modify All Data or Modify Metadata (the Metadata API's
    /// permission).
    pub metadata_access: bool,
    /// EmailIntegrationSettings, field by field (Metadata API `readMetadata`).
    pub email_integration: BTreeMap<String, bool>,
}

impl Org {
    /// The daily allowance is a rolling window: "Limits are enforced against the aggregate of
    /// all API calls made to the org in a 24-hour period … Calls are blocked until usage for the
    /// preceding 24 hours drops below the limit" (Salesforce Help, System Overview: API Usage).
    pub fn refresh_usage(&mut self, now: DateTime<Utc>) {
        let cutoff = now - chrono::Duration::hours(24);
        while self.api_calls.front().is_some_and(|(t, _)| *t <= cutoff) {
            self.api_calls.pop_front();
        }
        self.api_used = self.api_calls.iter().map(|(_, n)| n).sum();
    }

    pub fn record_call(&mut self, now: DateTime<Utc>) {
        match self.api_calls.back_mut() {
            Some((t, n)) if *t == now => *n += 1,
            _ => self.api_calls.push_back((now, 1)),
        }
        self.api_used += 1;
    }
}

pub(crate) struct Shared {
    pub org: Mutex<Org>,
    pub clock: Arc<dyn Clock>,
    pub version: String,
    pub app: ConnectedApp,
    pub username_password_enabled: bool,
    pub max_body_bytes: usize,
    pub base_url: String,
}

impl Shared {
    pub fn org(&self) -> MutexGuard<'_, Org> {
        // A panic while holding the lock would be a bug in the emulator; keep serving anyway.
        self.org.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Emulator;

impl Emulator {
    pub async fn start(options: EmulatorOptions) -> Result<RunningEmulator, String> {
        let tls = crate::tls::config(options.tls.as_ref())
            .map_err(|e| format!("salesforce emulator: {e}"))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|e| {
                format!(
                    "salesforce emulator: cannot bind 127.0.0.1:{}: {e}",
                    options.port
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("salesforce emulator: {e}"))?;
        let base_url = format!("{}://{addr}", crate::tls::scheme(options.tls.as_ref()));
        let mut store = Store::new(options.id_seed);
        if !options.sync_key_field {
            store.catalog = schema::Catalog::load_with(false);
        }
        let now = options.clock.now();
        let org_id = store.ids.next("00D");
        let mut org = Org {
            store: Store::new(0),
            org_id,
            sessions: HashMap::new(),
            refresh_tokens: HashMap::new(),
            passwords: HashMap::new(),
            cursors: HashMap::new(),
            api_calls: VecDeque::new(),
            api_used: 0,
            api_max: options.daily_api_allowance,
            app_quota: None,
            faults: Faults::default(),
            served: BTreeMap::new(),
            token_counter: 0,
            integration_user: String::new(),
            bulk: bulk::Bulk::default(),
            metadata_access: true,
            email_integration: metadata::default_email_integration(),
        };
        // Bootstrap the integration user and its profile without an acting user.
        let profile = seed_raw(
            &mut store,
            "Profile",
            &[("Name", "System Administrator")],
            now,
        );
        let user = seed_raw(
            &mut store,
            "User",
            &[
                ("Username", options.integration_username.as_str()),
                ("Email", options.integration_username.as_str()),
                ("LastName", "Integration"),
                ("Name", "Integration"),
                ("TimeZoneSidKey", "GMT"),
                ("ProfileId", profile.as_str()),
            ],
            now,
        );
        org.store = store;
        org.integration_user = user;
        org.passwords.insert(
            options.integration_username.to_ascii_lowercase(),
            options.integration_password.clone(),
        );
        let shared = Arc::new(Shared {
            org: Mutex::new(org),
            clock: options.clock,
            version: options.api_version,
            app: options.app,
            username_password_enabled: options.username_password_enabled,
            max_body_bytes: options.max_body_bytes,
            base_url: base_url.clone(),
        });
        let app = server::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::tls::serve(listener, app, tls, async {
            let _ = rx.await;
        }));
        Ok(RunningEmulator {
            url: base_url,
            handle: EmulatorHandle { shared },
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

fn seed_raw(
    store: &mut Store,
    object: &str,
    fields: &[(&str, &str)],
    now: DateTime<Utc>,
) -> String {
    let prefix = store
        .catalog
        .get(object)
        .map(|s| s.key_prefix.clone())
        .unwrap_or_default();
    let id = store.ids.next(&prefix);
    let ts = Value::String(soql::format_datetime(now));
    let mut m = Map::new();
    m.insert("Id".into(), Value::String(id.clone()));
    for (k, v) in fields {
        m.insert((*k).into(), Value::String((*v).into()));
    }
    if object == "User" {
        m.insert("IsActive".into(), Value::Bool(true));
        m.insert("FirstName".into(), Value::Null);
    }
    m.insert("IsDeleted".into(), Value::Bool(false));
    m.insert("CreatedDate".into(), ts.clone());
    m.insert("LastModifiedDate".into(), ts.clone());
    m.insert("SystemModstamp".into(), ts);
    store.index_record(&object.to_ascii_lowercase(), &m);
    store
        .tables
        .entry(object.to_ascii_lowercase())
        .or_default()
        .insert(
            id.clone(),
            store::Rec {
                fields: m,
                deleted: None,
            },
        );
    id
}

/// A running emulator; shuts down when dropped.
pub struct RunningEmulator {
    url: String,
    handle: EmulatorHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningEmulator {
    /// Base URL (`http://127.0.0.1:port`, https with `tls`): both the login URL and the
    /// instance URL.
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn handle(&self) -> &EmulatorHandle {
        &self.handle
    }
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The org's data (every record, recycle bin included, and the id counter), for `tether
/// sandbox` to keep between runs. Sessions, query cursors, faults and API usage belong to
/// one run and are not part of it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    org_id: String,
    integration_user: String,
    ids: store::IdGen,
    tables: HashMap<String, BTreeMap<String, store::Rec>>,
    deleted_purged_before: Option<DateTime<Utc>>,
}

/// Seeds and reads data, expires sessions and injects faults from tests.
#[derive(Clone)]
pub struct EmulatorHandle {
    shared: Arc<Shared>,
}

impl EmulatorHandle {
    fn org(&self) -> MutexGuard<'_, Org> {
        self.shared.org()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    pub fn api_version(&self) -> &str {
        &self.shared.version
    }

    /// Sets a field of the org's EmailIntegrationSettings (Setup > Outlook Integration and
    /// Sync), e.g. `enableOutlookIntegration`.
    pub fn set_email_integration(&self, field: &str, on: bool) {
        self.org().email_integration.insert(field.to_string(), on);
    }

    /// Gives or takes the integration user's Modify All Data / Modify Metadata permission,
    /// which the Metadata API requires.
    pub fn set_metadata_access(&self, allowed: bool) {
        self.org().metadata_access = allowed;
    }

    /// The organization id (18 characters; Setup shows its first 15).
    pub fn org_id(&self) -> String {
        self.org().org_id.clone()
    }

    /// The integration user's id.
    pub fn integration_user_id(&self) -> String {
        self.org().integration_user.clone()
    }

    /// Creates a record as the integration user, with every rule a REST create would apply.
    pub fn insert(&self, object: &str, fields: Value) -> Result<String, RecError> {
        let now = self.now();
        let mut org = self.org();
        let user = org.integration_user.clone();
        let map = match fields {
            Value::Object(m) => m,
            _ => {
                return Err(RecError::new(
                    "JSON_PARSER_ERROR",
                    "expected an object",
                    &[],
                ));
            }
        };
        org.store.write(object, WriteKind::Create, &map, &user, now)
    }

    /// Updates a record through the REST rules.
    pub fn update(&self, object: &str, id: &str, fields: Value) -> Result<String, RecError> {
        self.update_committed_late(object, id, fields, self.now())
    }

    /// Late commit: an update made by a long transaction that began at `started` and commits
    /// now. Salesforce stamps a record (SystemModstamp) when the transaction writes it, not when
    /// it commits, so the change becomes visible now with a stamp from `started` — earlier than
    /// records other transactions committed meanwhile (why getUpdated() answers
    /// `latestDateCovered`: "If Salesforce executes a long-running transaction on your instance,
    /// the value in this field is the start time of that long-running transaction", SOAP API
    /// Developer Guide, GetUpdatedResult). `update` is the same with `started` now.
    pub fn update_committed_late(
        &self,
        object: &str,
        id: &str,
        fields: Value,
        started: DateTime<Utc>,
    ) -> Result<String, RecError> {
        let Value::Object(map) = fields else {
            return Err(RecError::new(
                "JSON_PARSER_ERROR",
                "expected an object",
                &[],
            ));
        };
        let mut org = self.org();
        let user = org.integration_user.clone();
        org.store
            .write(object, WriteKind::Update(id), &map, &user, started)
    }

    /// Late commit of a delete (see `update_committed_late`): the record leaves now, stamped
    /// `started`.
    pub fn delete_committed_late(
        &self,
        id: &str,
        started: DateTime<Utc>,
    ) -> Result<String, RecError> {
        self.org().store.delete(id, started)
    }

    /// Sets fields directly, bypassing every rule (e.g. to mark a Lead converted); the
    /// timestamps move as for any write.
    pub fn set_raw(&self, id: &str, fields: Value) -> bool {
        let now = soql::format_datetime(self.now());
        let Some(id) = crate::salesforce::ids::to_18(id) else {
            return false;
        };
        let id = id.as_str();
        let mut org = self.org();
        let Some(prefix) = id.get(..3) else {
            return false;
        };
        let Some(name) = org
            .store
            .catalog
            .by_prefix(prefix)
            .map(|s| s.name.to_ascii_lowercase())
        else {
            return false;
        };
        let Some(rec) = org.store.tables.get_mut(&name).and_then(|t| t.get_mut(id)) else {
            return false;
        };
        if let Value::Object(m) = fields {
            rec.fields.extend(m);
        }
        rec.fields
            .insert("LastModifiedDate".into(), Value::String(now.clone()));
        rec.fields
            .insert("SystemModstamp".into(), Value::String(now));
        let fields = rec.fields.clone();
        org.store.index_record(&name, &fields);
        true
    }

    pub fn delete(&self, id: &str) -> Result<String, RecError> {
        self.delete_committed_late(id, self.now())
    }

    /// A live (not deleted) record, as stored.
    pub fn get(&self, id: &str) -> Option<Map<String, Value>> {
        let org = self.org();
        org.store
            .find(id)
            .filter(|(_, r)| r.deleted.is_none())
            .map(|(_, r)| r.fields.clone())
    }

    /// True when the record exists in the recycle bin.
    pub fn is_deleted(&self, id: &str) -> bool {
        self.org()
            .store
            .find(id)
            .is_some_and(|(_, r)| r.deleted.is_some())
    }

    /// Live records of an object, in creation order.
    pub fn records(&self, object: &str) -> Vec<Map<String, Value>> {
        let org = self.org();
        org.store
            .table(object)
            .map(|t| {
                t.values()
                    .filter(|r| r.deleted.is_none())
                    .map(|r| r.fields.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn add_profile(&self, name: &str) -> String {
        let now = self.now();
        seed_raw(&mut self.org().store, "Profile", &[("Name", name)], now)
    }

    /// Adds an active user with a profile (created when missing), a time zone and an email.
    pub fn add_user(
        &self,
        username: &str,
        email: &str,
        last_name: &str,
        profile: &str,
        time_zone: &str,
    ) -> String {
        let now = self.now();
        let mut org = self.org();
        let existing = org.store.table("Profile").and_then(|t| {
            t.values()
                .find(|r| r.fields.get("Name").and_then(Value::as_str) == Some(profile))
                .and_then(|r| {
                    r.fields
                        .get("Id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
        });
        let profile_id = match existing {
            Some(id) => id,
            None => seed_raw(&mut org.store, "Profile", &[("Name", profile)], now),
        };
        seed_raw(
            &mut org.store,
            "User",
            &[
                ("Username", username),
                ("Email", email),
                ("LastName", last_name),
                ("Name", last_name),
                ("TimeZoneSidKey", time_zone),
                ("ProfileId", profile_id.as_str()),
            ],
            now,
        )
    }

    /// A refresh token for a user, as if they had approved the connected app.
    pub fn issue_refresh_token(&self, username: &str) -> Option<String> {
        let mut org = self.org();
        let user = find_user(&org.store, username)?;
        org.token_counter += 1;
        let token = format!("5Aep861tether.refresh.{}", org.token_counter);
        org.refresh_tokens.insert(token.clone(), user);
        Some(token)
    }

    /// Sets a user's password (the security token is part of it, as the real flow appends it).
    pub fn set_password(&self, username: &str, password: &str) {
        self.org()
            .passwords
            .insert(username.to_ascii_lowercase(), Secret::new(password));
    }

    /// Every access and refresh token the org has issued, expired ones too (tests check that
    /// none leaks into output, logs, plans or the state).
    pub fn issued_tokens(&self) -> Vec<String> {
        let org = self.org();
        org.sessions
            .keys()
            .chain(org.refresh_tokens.keys())
            .cloned()
            .collect()
    }

    /// Invalidates every access token: the next REST call answers 401 INVALID_SESSION_ID.
    pub fn expire_sessions(&self) {
        for s in self.org().sessions.values_mut() {
            s.valid = false;
        }
    }

    /// The next requests answer these HTTP statuses (e.g. 500, 503), one each.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.org().faults.statuses.extend(statuses.iter().copied());
    }
    /// Every request waits this long before it is answered.
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.org().faults.latency = latency;
    }
    /// The next `n` responses break off mid-body (connection dropped).
    pub fn drop_next(&self, n: u32) {
        self.org().faults.drop_next += n;
    }
    /// The next `n` responses are 200 with a truncated JSON body.
    pub fn malformed_next(&self, n: u32) {
        self.org().faults.malformed_next += n;
    }
    /// The next `n` requests hit the concurrent-request limit (403 REQUEST_LIMIT_EXCEEDED).
    pub fn concurrent_limit_next(&self, n: u32) {
        self.org().faults.concurrent_limit_next += n;
    }
    /// The next request of `kind` (as counted by `served`: query, query_more, sobject,
    /// collection, auth, …) meets `fault`; several for one kind fire in order.
    pub fn fault_next(&self, kind: &str, fault: KindFault) {
        self.org().faults.targeted.push((kind.to_string(), fault));
    }
    /// Shared Activities on (the default) or off: off, events relate to people only as
    /// invitees (EventRelation.IsParent is refused) and Event's describe has no
    /// `EventWhoRelations`.
    pub fn set_shared_activities(&self, on: bool) {
        self.org().store.shared_activities = on;
    }
    /// Makes `object`'s organization-wide default Private: a user reads its records they own,
    /// those shared with them (`share`), or all as a System Administrator (see `sharing`).
    pub fn set_private(&self, object: &str) {
        self.org()
            .store
            .sharing
            .private
            .insert(object.to_ascii_lowercase());
    }
    /// Shares a record with a user (read access).
    pub fn share(&self, record_id: &str, user_id: &str) {
        if let (Some(r), Some(u)) = (ids::to_18(record_id), ids::to_18(user_id)) {
            self.org().store.sharing.shares.insert((r, u));
        }
    }
    /// An active duplicate rule (action Block) whose matching rule compares `field` of
    /// `object` exactly: creates and updates that match a live record fail with
    /// DUPLICATES_DETECTED, naming the matches in `duplicateResult`.
    pub fn duplicate_rule(&self, object: &str, field: &str) {
        self.org().store.duplicate_rules.push(store::DuplicateRule {
            object: object.to_string(),
            field: field.to_string(),
            rule: format!("Block_{object}_{field}_Duplicates"),
            matching_rule: format!("Exact_{object}_{field}"),
        });
    }
    /// Writes of `object` records whose `field` equals `value` fail with `error`
    /// (`times`: how often; None: always). Use field "Id" to target a record.
    pub fn fail_records(
        &self,
        object: &str,
        field: &str,
        value: Value,
        error: RecError,
        times: Option<u32>,
    ) {
        self.org().store.faults.push(RecordFault {
            object: object.into(),
            field: field.into(),
            value,
            error,
            remaining: times,
        });
    }
    /// Shortcut: a validation rule rejecting matching records.
    pub fn validation_rule(&self, object: &str, field: &str, value: Value, message: &str) {
        self.fail_records(
            object,
            field,
            value,
            RecError::new("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, &[]),
            None,
        );
    }
    /// Shortcut: matching records are locked for the next `times` writes.
    pub fn lock_rows(&self, object: &str, field: &str, value: Value, times: u32) {
        self.fail_records(
            object,
            field,
            value,
            RecError::new(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records",
                &[],
            ),
            Some(times),
        );
    }

    pub fn set_daily_allowance(&self, max: u64) {
        self.org().api_max = max;
    }
    /// Gives the connected app an API quota: `Sforce-Limit-Info` then adds
    /// `per-app-api-usage=used/max(appName=name)`. Every call the emulator serves comes
    /// through its one connected app, so the app's count is the org's. Not enforced.
    pub fn set_app_quota(&self, name: &str, max: u64) {
        self.org().app_quota = Some((name.to_string(), max));
    }
    /// Counts `used` calls as made now (they leave the rolling 24-hour window a day later).
    pub fn set_api_used(&self, used: u64) {
        let now = self.now();
        let mut org = self.org();
        org.api_calls.clear();
        if used > 0 {
            org.api_calls.push_back((now, used));
        }
        org.api_used = used;
    }
    /// (used, max) of DailyApiRequests.
    pub fn api_usage(&self) -> (u64, u64) {
        let now = self.now();
        let mut o = self.org();
        o.refresh_usage(now);
        (o.api_used, o.api_max)
    }

    /// Empties the recycle bin: deleted records vanish and getDeleted's earliest date moves to
    /// now (what happens when deletions are purged before a sync reads them).
    pub fn purge_deleted(&self) {
        let now = self.now();
        let mut org = self.org();
        for t in org.store.tables.values_mut() {
            t.retain(|_, r| r.deleted.is_none());
        }
        org.store.deleted_purged_before = Some(now);
    }

    /// The org's data, to save and `restore` later.
    pub fn snapshot(&self) -> Snapshot {
        let org = self.org();
        Snapshot {
            org_id: org.org_id.clone(),
            integration_user: org.integration_user.clone(),
            ids: org.store.ids.clone(),
            tables: org.store.tables.clone(),
            deleted_purged_before: org.store.deleted_purged_before,
        }
    }

    /// Replaces the org's data with a snapshot's. Sessions and query cursors end (they
    /// belong to the records they were opened on); clients sign in again.
    pub fn restore(&self, snapshot: Snapshot) {
        let mut org = self.org();
        org.org_id = snapshot.org_id;
        org.integration_user = snapshot.integration_user;
        org.store.ids = snapshot.ids;
        org.store.tables = snapshot.tables;
        org.store.reindex();
        org.store.deleted_purged_before = snapshot.deleted_purged_before;
        org.sessions.clear();
        org.cursors.clear();
    }

    /// Bulk API 2.0: polls a queued ingest job answers InProgress before it is processed
    /// (at least 1, the default).
    pub fn bulk_polls_in_progress(&self, polls: u32) {
        self.org().bulk.polls_in_progress = polls.max(1);
    }

    /// Bulk API 2.0: the next ingest job processed fails (state Failed) after `rows` rows;
    /// the others stay unprocessed.
    pub fn bulk_fail_after(&self, rows: usize) {
        self.org().bulk.fail_after = Some(rows);
    }

    /// DailyBulkApiBatches used in the rolling 24 hours, set to `used` (as if other jobs had
    /// run just now).
    pub fn set_bulk_batches_used(&self, used: u64) {
        let now = self.shared.clock.now();
        let mut org = self.org();
        let have = org.bulk.batches_used(now);
        org.bulk.use_batches(now, used.saturating_sub(have));
    }

    /// DailyBulkApiBatches used in the rolling 24 hours.
    pub fn bulk_batches_used(&self) -> u64 {
        let now = self.shared.clock.now();
        self.org().bulk.batches_used(now)
    }

    /// Bulk API 2.0 ingest jobs: (id, state).
    pub fn bulk_jobs(&self) -> Vec<(String, String)> {
        self.org().bulk.states()
    }

    /// Requests served, by kind (auth, query, query_more, sobject, collection, describe,
    /// updated, deleted, limits, bulk_job, bulk_upload, bulk_results, other).
    pub fn served(&self) -> BTreeMap<String, u64> {
        self.org().served.clone()
    }
    pub fn served_total(&self) -> u64 {
        self.org().served.values().sum()
    }
}

pub(crate) fn find_user(store: &Store, username: &str) -> Option<String> {
    store.table("User")?.values().find_map(|r| {
        let u = r.fields.get("Username")?.as_str()?;
        let active = r.fields.get("IsActive") != Some(&Value::Bool(false));
        (u.eq_ignore_ascii_case(username) && active && r.deleted.is_none())
            .then(|| {
                r.fields
                    .get("Id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .flatten()
    })
}
