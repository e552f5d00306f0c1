//! A local Exchange Web Services emulator for tests, benchmarks and `tether sandbox`.
//!
//! It behaves like Exchange as Microsoft documents it (response shapes, per-message errors,
//! SOAP faults, impersonation rights, sync states, CalendarView expansion), not like our
//! client happens to call it. Every response body it writes is recorded so tests can
//! validate them against the official schema, and with `schema` set it validates each
//! request body with xmllint and answers ErrorSchemaValidation, as a real server does.

pub(crate) mod codec;
pub(crate) mod emit;
pub mod model;
pub(crate) mod ops;
pub(crate) mod recur;
pub mod soap;
pub(crate) mod state;
pub mod tz;
pub mod xml;

pub use state::{Fault, ImpersonationScope, Snapshot};

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::exchange::model::{CalendarEvent, Contact, Item, ItemId};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use chrono::{DateTime, Utc};
use state::{Emu, Principal};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use xml::{Limits, NS_SOAP, NS_T};

/// How to start the emulator.
#[derive(Clone)]
pub struct EmulatorOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// Fixed clock (2026-01-05T09:00:00Z unless `clock` is given) and a fixed id seed, so
    /// two runs produce byte-identical answers.
    pub deterministic: bool,
    pub clock: Option<Arc<dyn Clock>>,
    /// Path to messages.xsd: validate every request body with `xmllint` and answer
    /// ErrorSchemaValidation when it does not validate.
    pub schema: Option<PathBuf>,
    /// EWSMaxConcurrency: concurrent requests per service account (27 on Exchange 2013+).
    pub max_concurrency: usize,
    /// BackOffMilliseconds sent with ErrorServerBusy.
    pub back_off_ms: u64,
    /// Lifetime of the bearer tokens from the token endpoint.
    pub token_lifetime_secs: i64,
    /// Serve POX Autodiscover (autodiscover.xml); off, it answers 404 like servers that
    /// only offer SOAP Autodiscover.
    pub autodiscover_pox: bool,
    /// Keep every request and response body for `bodies()` (tests); turn off for long
    /// benchmark runs so memory stays flat.
    pub record_bodies: bool,
    /// Time each EWS request takes (real time), to exercise concurrency limits.
    pub latency: Option<std::time::Duration>,
    /// Serve https with this certificate instead of plain http.
    pub tls: Option<crate::tls::TlsIdentity>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            port: 0,
            deterministic: true,
            clock: None,
            schema: None,
            max_concurrency: 27,
            back_off_ms: 5_000,
            token_lifetime_secs: 3599,
            autodiscover_pox: true,
            record_bodies: true,
            latency: None,
            tls: None,
        }
    }
}

impl std::fmt::Debug for EmulatorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorOptions")
            .field("port", &self.port)
            .field("deterministic", &self.deterministic)
            .field("schema", &self.schema)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

pub struct Emulator;

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) emu: Arc<Mutex<Emu>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) options: EmulatorOptions,
    /// Requests in progress per caller (EWSMaxConcurrency is a per-user budget).
    pub(crate) in_flight: Arc<Mutex<HashMap<String, usize>>>,
    pub(crate) base: String,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Emu> {
        // A panic while holding the lock (a bug in the emulator) must not wedge every test.
        self.emu.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Emulator {
    pub async fn start(options: EmulatorOptions) -> std::io::Result<RunningEmulator> {
        let clock: Arc<dyn Clock> = match (&options.clock, options.deterministic) {
            (Some(c), _) => c.clone(),
            (None, true) => Arc::new(ManualClock::new(
                DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|_| Utc::now()),
            )),
            (None, false) => Arc::new(SystemClock),
        };
        let seed = if options.deterministic {
            1
        } else {
            clock.now().timestamp_nanos_opt().unwrap_or(7) as u64
        };
        let tls = crate::tls::config(options.tls.as_ref()).map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let base = format!("{}://{addr}", crate::tls::scheme(options.tls.as_ref()));
        let mut store = Emu::new(seed);
        store.graph.skip_bodies = !options.record_bodies;
        let shared = Shared {
            emu: Arc::new(Mutex::new(store)),
            clock,
            options,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            base: base.clone(),
        };
        let app = Router::new()
            .route("/EWS/Exchange.asmx", post(ews))
            .route("/ews/exchange.asmx", post(ews))
            .route(
                "/autodiscover/autodiscover.xml",
                post(ops::autodiscover_pox),
            )
            .route(
                "/Autodiscover/Autodiscover.xml",
                post(ops::autodiscover_pox),
            )
            .route(
                "/autodiscover/autodiscover.svc",
                post(ops::autodiscover_soap),
            )
            .route(
                "/autodiscover/redirected/autodiscover.xml",
                post(ops::autodiscover_pox_redirected),
            )
            .route("/oauth2/v2.0/token", post(token))
            // The same mailboxes through Microsoft Graph, as Exchange Online serves them.
            .merge(crate::graph::router())
            // Large batches are legal EWS; beyond this, 413 like an IIS request limit.
            .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(crate::tls::serve(listener, app, tls, async {
            let _ = rx.await;
        }));
        Ok(RunningEmulator {
            shared,
            base,
            shutdown: Some(tx),
        })
    }
}

/// A started emulator; shuts down when dropped.
pub struct RunningEmulator {
    shared: Shared,
    base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl RunningEmulator {
    /// Base URL, e.g. `http://127.0.0.1:40123` (https with `tls`).
    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn ews_url(&self) -> String {
        format!("{}/EWS/Exchange.asmx", self.base)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v2.0/token", self.base)
    }

    fn lock(&self) -> MutexGuard<'_, Emu> {
        self.shared.lock()
    }

    /// The store and options, for the Graph face (crate::graph) that serves the same store.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// A service account for Basic authentication. `username` is matched as configured
    /// (UPN `svc@corp.com` or down-level `CORP\svc`, case-insensitive).
    pub fn add_service_account(&self, username: &str, password: &str, scope: ImpersonationScope) {
        self.lock().accounts.push(state::Account {
            username: username.to_string(),
            password: password.to_string(),
            scope,
        });
    }

    /// An app registration for OAuth 2.0 client credentials.
    pub fn add_app(&self, client_id: &str, client_secret: &str, scope: ImpersonationScope) {
        self.lock().apps.push(state::Account {
            username: client_id.to_string(),
            password: client_secret.to_string(),
            scope,
        });
    }

    /// A mailbox with its default folders (root, msgfolderroot, Contacts, Calendar, Inbox,
    /// Deleted Items).
    pub fn add_mailbox(&self, smtp: &str, department: Option<&str>) {
        let now = self.shared.clock.now();
        self.lock().add_mailbox(smtp, department, now);
    }

    /// The id of a distinguished folder ("contacts", "calendar", "msgfolderroot").
    pub fn folder_id(&self, smtp: &str, distinguished: &str) -> Option<String> {
        let emu = self.lock();
        let mb = emu.mailbox(smtp)?;
        mb.folders
            .iter()
            .find(|f| f.distinguished.as_deref() == Some(distinguished))
            .map(|f| f.id.clone())
    }

    /// Creates a folder under `parent_id`.
    pub fn create_folder(
        &self,
        smtp: &str,
        parent_id: &str,
        name: &str,
        class: &str,
    ) -> Option<String> {
        self.lock().create_folder(smtp, parent_id, name, class).ok()
    }

    /// A PublicStrings string property of a folder (an ExtendedProperty set through EWS, or
    /// a singleValueExtendedProperty through Graph).
    pub fn folder_property(&self, smtp: &str, folder_id: &str, name: &str) -> Option<String> {
        let emu = self.lock();
        emu.mailbox(smtp)?
            .folder(folder_id)?
            .extended
            .get(name)
            .cloned()
    }

    /// Deletes a folder as a user would in Outlook: moved under Deleted Items with its id
    /// and contents, or with `hard` (Shift+Delete) removed with everything in it.
    pub fn delete_folder(&self, smtp: &str, folder_id: &str, hard: bool) -> bool {
        self.lock().delete_folder(smtp, folder_id, hard).is_ok()
    }

    /// The id of a folder's parent (None for the mailbox root or an unknown folder).
    pub fn folder_parent(&self, smtp: &str, folder_id: &str) -> Option<String> {
        let emu = self.lock();
        emu.mailbox(smtp)?.folder(folder_id)?.parent.clone()
    }

    /// The id of a folder by display name (any parent).
    pub fn find_folder(&self, smtp: &str, name: &str) -> Option<String> {
        let emu = self.lock();
        emu.mailbox(smtp)?
            .folders
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.id.clone())
    }

    /// The id of the folder named `name` directly under `parent_id`.
    pub fn find_folder_in(&self, smtp: &str, parent_id: &str, name: &str) -> Option<String> {
        let emu = self.lock();
        emu.mailbox(smtp)?
            .folders
            .iter()
            .find(|f| f.name == name && f.parent.as_deref() == Some(parent_id))
            .map(|f| f.id.clone())
    }

    /// Stores a contact in `folder_id` as if a user created it in Outlook.
    pub fn put_contact(&self, smtp: &str, folder_id: &str, c: Contact) -> Option<ItemId> {
        let now = self.shared.clock.now();
        self.lock()
            .create_item(smtp, folder_id, Item::Contact(Box::new(c)), now)
            .ok()
    }

    /// Stores an event in the default calendar as if a user created it in Outlook.
    pub fn put_event(&self, smtp: &str, e: CalendarEvent) -> Option<ItemId> {
        let now = self.shared.clock.now();
        let folder = self.folder_id(smtp, "calendar")?;
        self.lock()
            .create_item(smtp, &folder, Item::Event(Box::new(e)), now)
            .ok()
    }

    /// Stores an event in another calendar folder (e.g. a secondary calendar) as if a user
    /// created it there in Outlook.
    pub fn put_event_in(&self, smtp: &str, folder_id: &str, e: CalendarEvent) -> Option<ItemId> {
        let now = self.shared.clock.now();
        self.lock()
            .create_item(smtp, folder_id, Item::Event(Box::new(e)), now)
            .ok()
    }

    /// The stored item, as the server would return it.
    pub fn item(&self, smtp: &str, id: &str) -> Option<Item> {
        let emu = self.lock();
        emu.mailbox(smtp)?.items.get(id).map(|s| s.current())
    }

    /// All items in a folder.
    pub fn items(&self, smtp: &str, folder_id: &str) -> Vec<Item> {
        let emu = self.lock();
        emu.mailbox(smtp)
            .map(|m| {
                m.items
                    .values()
                    .filter(|s| s.folder == folder_id)
                    .map(|s| s.current())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Edits an item as a user would (new ChangeKey, new LastModifiedTime, sync change).
    pub fn edit_item(&self, smtp: &str, id: &str, edit: impl FnOnce(&mut Item)) -> Option<ItemId> {
        let now = self.shared.clock.now();
        self.lock().edit_item(smtp, id, edit, now).ok()
    }

    /// Deletes an item as a user would.
    pub fn delete_item(&self, smtp: &str, id: &str) -> bool {
        self.lock().delete_item(smtp, id).is_ok()
    }

    /// Deletes an item as Outlook does: moved to Deleted Items, under a new id (returned).
    pub fn move_to_deleted_items(&self, smtp: &str, id: &str) -> Option<ItemId> {
        let mut emu = self.lock();
        let bin = emu.mailbox(smtp)?.distinguished("deleteditems")?.id.clone();
        emu.move_item(smtp, id, &bin).ok()
    }

    /// Moves one occurrence of a recurring master (an exception).
    pub fn modify_occurrence(
        &self,
        smtp: &str,
        master_id: &str,
        original_start: DateTime<Utc>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        let now = self.shared.clock.now();
        self.lock()
            .modify_occurrence(smtp, master_id, original_start, Some((start, end)), now)
            .is_ok()
    }

    /// Deletes one occurrence of a recurring master.
    pub fn delete_occurrence(
        &self,
        smtp: &str,
        master_id: &str,
        original_start: DateTime<Utc>,
    ) -> bool {
        let now = self.shared.clock.now();
        self.lock()
            .modify_occurrence(smtp, master_id, original_start, None, now)
            .is_ok()
    }

    /// Queues a fault for the coming requests (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Queues a fault for the next request of one operation (`CreateItem`, `SyncFolderItems`,
    /// …); faults for the same operation fire in order.
    pub fn inject_on(&self, operation: &str, fault: Fault) {
        self.lock().op_faults.push((operation.to_string(), fault));
    }

    /// Items written by CreateItem / UpdateItem whose request XML contains `contains` (a
    /// name, an address, a subject) fail with this per-item error while the rest of the
    /// batch succeeds; `times`: how often (None: always).
    pub fn fail_items(&self, contains: &str, code: &str, message: &str, times: Option<u32>) {
        self.lock().item_faults.push(state::ItemFault {
            contains: contains.to_string(),
            code: code.to_string(),
            message: message.to_string(),
            remaining: times,
        });
    }

    /// Changes a service account's password, as an admin resetting it in Active Directory
    /// does: requests with the old one answer 401.
    pub fn set_password(&self, username: &str, password: &str) {
        for a in self.lock().accounts.iter_mut() {
            if a.username.eq_ignore_ascii_case(username) {
                a.password = password.to_string();
            }
        }
    }

    /// EWS requests answered 401 so far (each counts as a failed logon against the account).
    pub fn rejected_logons(&self) -> u64 {
        self.lock().rejected_logons
    }

    /// Changes what a service account (or app) may impersonate, as an admin editing its
    /// role assignment's management scope does.
    pub fn set_impersonation_scope(&self, username: &str, scope: ImpersonationScope) {
        let mut emu = self.lock();
        let emu = &mut *emu;
        for a in emu.accounts.iter_mut().chain(emu.apps.iter_mut()) {
            if a.username.eq_ignore_ascii_case(username) {
                a.scope = scope.clone();
            }
        }
    }

    /// Autodiscover for `domain` answers with a redirect to `target_email` (POX
    /// redirectAddr; SOAP RedirectAddress).
    pub fn autodiscover_redirect(&self, domain: &str, target_email: &str) {
        self.lock()
            .ad_redirects
            .insert(domain.to_ascii_lowercase(), target_email.to_string());
    }

    /// POX Autodiscover for `domain` answers redirectUrl, pointing at another (emulated)
    /// Autodiscover server that knows the users.
    pub fn autodiscover_redirect_url(&self, domain: &str) {
        self.lock()
            .ad_redirect_urls
            .insert(domain.to_ascii_lowercase());
    }

    /// The mailboxes and their contents, to save and `restore` later.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().snapshot()
    }

    /// Replaces every mailbox with a snapshot's (service accounts and apps stay as added).
    pub fn restore(&self, snapshot: Snapshot) {
        self.lock().restore(snapshot);
    }

    /// Every bearer token the token endpoint has issued, expired ones too (tests check that
    /// none leaks into output, logs, plans or the state).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }

    /// Number of requests per EWS operation (local name of the Body child).
    pub fn calls(&self, operation: &str) -> u64 {
        self.lock().calls.get(operation).copied().unwrap_or(0)
    }

    pub fn all_calls(&self) -> HashMap<String, u64> {
        self.lock().calls.clone()
    }

    /// Every request and response body exchanged so far (the element inside soap:Body,
    /// standalone), for schema validation in tests.
    pub fn bodies(&self) -> Vec<String> {
        self.lock().bodies.clone()
    }

    /// Requests made for a mailbox whose X-AnchorMailbox header was missing or different.
    pub fn anchor_mismatches(&self) -> u64 {
        self.lock().anchor_mismatches
    }

    /// Current time of the emulator's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }
}

// ---------------------------------------------------------------------------------------
// HTTP handlers

fn soap_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn fault(
    _shared: &Shared,
    code: &str,
    message: &str,
    back_off: Option<u64>,
) -> Response {
    // Faults are SOAP, not EWS message bodies: they are not recorded for schema checks.
    let env = soap::fault_envelope(code, message, back_off);
    soap_response(StatusCode::INTERNAL_SERVER_ERROR, env)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"127.0.0.1\"")],
        "",
    )
        .into_response()
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<Principal> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let emu = shared.lock();
    if let Some(b64) = auth.strip_prefix("Basic ") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (user, pass) = raw.split_once(':')?;
        let acct = emu
            .accounts
            .iter()
            .find(|a| a.username.eq_ignore_ascii_case(user) && a.password == pass)?;
        return Some(Principal {
            name: acct.username.clone(),
            scope: acct.scope.clone(),
        });
    }
    if let Some(tok) = auth.strip_prefix("Bearer ") {
        let (app, expires) = emu.tokens.get(tok.trim())?;
        if *expires <= shared.clock.now() {
            return None;
        }
        // An app of the EWS token endpoint, or one registered in Entra ID whose token
        // (from the tenant's endpoint, for Exchange Online's scope) carries its RBAC scope.
        let scope = emu
            .apps
            .iter()
            .find(|a| &a.username == app)
            .map(|a| a.scope.clone())
            .or_else(|| {
                emu.graph
                    .apps
                    .iter()
                    .find(|a| &a.client_id == app)
                    .map(|a| a.scope.clone())
            })?;
        return Some(Principal {
            name: app.clone(),
            scope,
        });
    }
    None
}

async fn token(
    State(shared): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials");
    let mut emu = shared.lock();
    let app = form.get("client_id").and_then(|id| {
        emu.apps
            .iter()
            .find(|a| &a.username == id && Some(&a.password) == form.get("client_secret"))
            .cloned()
    });
    match (ok, app) {
        (true, Some(app)) => {
            let n = emu.next();
            let token = format!("emu-token-{n}");
            let expires =
                shared.clock.now() + chrono::Duration::seconds(shared.options.token_lifetime_secs);
            emu.tokens
                .insert(token.clone(), (app.username.clone(), expires));
            emu.tokens_issued += 1;
            axum::Json(serde_json::json!({
                "token_type": "Bearer",
                "expires_in": shared.options.token_lifetime_secs,
                "ext_expires_in": shared.options.token_lifetime_secs,
                "access_token": token,
            }))
            .into_response()
        }
        (false, _) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "unsupported_grant_type"})),
        )
            .into_response(),
        (true, None) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided."})),
        )
            .into_response(),
    }
}

struct InFlight {
    map: Arc<Mutex<HashMap<String, usize>>>,
    who: String,
}

impl InFlight {
    /// Registers one more request for `who`; returns the guard and the new count.
    fn enter(map: &Arc<Mutex<HashMap<String, usize>>>, who: &str) -> (Self, usize) {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(who.to_ascii_lowercase()).or_default();
        *n += 1;
        let count = *n;
        drop(m);
        (
            InFlight {
                map: map.clone(),
                who: who.to_ascii_lowercase(),
            },
            count,
        )
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.who) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn ews(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(principal) = authenticate(&shared, &headers) else {
        shared.lock().rejected_logons += 1;
        return unauthorized();
    };
    let (guard, n) = InFlight::enter(&shared.in_flight, &principal.name);
    if n > shared.options.max_concurrency {
        return fault(
            &shared,
            "ErrorServerBusy",
            "The server cannot service this request right now. Try again later.",
            Some(shared.options.back_off_ms),
        );
    }
    // Injected faults take the place of the next request's answer.
    let injected = {
        let mut emu = shared.lock();
        match emu.faults.front() {
            Some(Fault::StaleChangeKey | Fault::InvalidSyncState) | None => None,
            Some(_) => emu.faults.pop_front(),
        }
    };
    let mut drop_response = false;
    if let Some(f) = injected {
        match injected_answer(&shared, f) {
            Some(r) => return r,
            None => drop_response = true,
        }
    }

    let root = match xml::parse(&body, Limits::default()) {
        Ok(r) => r,
        Err(e) => return fault(&shared, "ErrorSchemaValidation", &e.to_string(), None),
    };
    // A fault queued for this operation.
    let op_name = root
        .child(NS_SOAP, "Body")
        .and_then(|b| b.first_child())
        .map(|op| op.name.clone());
    let targeted = {
        let mut emu = shared.lock();
        let at = op_name
            .as_ref()
            .and_then(|n| emu.op_faults.iter().position(|(o, _)| o == n));
        at.map(|i| emu.op_faults.remove(i).1)
    };
    if let Some(f) = targeted {
        match f {
            Fault::StaleChangeKey | Fault::InvalidSyncState => shared.lock().faults.push_front(f),
            f => match injected_answer(&shared, f) {
                Some(r) => return r,
                None => drop_response = true,
            },
        }
    }
    let (Some(header_el), Some(op)) = (
        root.child(NS_SOAP, "Header"),
        root.child(NS_SOAP, "Body").and_then(|b| b.first_child()),
    ) else {
        let op = root.child(NS_SOAP, "Body").and_then(|b| b.first_child());
        if op.is_none() {
            return fault(
                &shared,
                "ErrorSchemaValidation",
                "The request has no SOAP Body.",
                None,
            );
        }
        return fault(
            &shared,
            "ErrorInvalidServerVersion",
            "The request is missing the RequestServerVersion header.",
            None,
        );
    };
    let op_xml = op.to_xml();
    {
        let mut emu = shared.lock();
        *emu.calls.entry(op.name.clone()).or_default() += 1;
        if shared.options.record_bodies {
            emu.bodies.push(op_xml.clone());
        }
    }
    if let Some(schema) = &shared.options.schema
        && let Err(msg) = validate(schema, &op_xml).await
    {
        return fault(&shared, "ErrorSchemaValidation", &msg, None);
    }
    if header_el.child(NS_T, "RequestServerVersion").is_none() {
        return fault(
            &shared,
            "ErrorInvalidServerVersion",
            "The request is missing the RequestServerVersion header.",
            None,
        );
    }
    // Which mailbox: the impersonated one, else the caller's own.
    let imp = header_el
        .path(&[(NS_T, "ExchangeImpersonation"), (NS_T, "ConnectingSID")])
        .and_then(|sid| {
            ["PrimarySmtpAddress", "SmtpAddress", "PrincipalName"]
                .iter()
                .find_map(|n| sid.child_text(NS_T, n))
        })
        .map(|s| s.trim().to_string());
    let mailbox = match &imp {
        Some(smtp) => {
            let anchor = headers
                .get("X-AnchorMailbox")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mut emu = shared.lock();
            if !anchor.eq_ignore_ascii_case(smtp) {
                emu.anchor_mismatches += 1;
            }
            let Some(mb) = emu.mailbox(smtp) else {
                drop(emu);
                return fault(
                    &shared,
                    "ErrorNonExistentMailbox",
                    &format!("The SMTP address has no mailbox associated with it: {smtp}"),
                    None,
                );
            };
            if !principal.scope.allows(&mb.smtp, mb.department.as_deref()) {
                drop(emu);
                return fault(
                    &shared,
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                    None,
                );
            }
            mb.smtp.clone()
        }
        None => {
            let emu = shared.lock();
            match emu.mailbox(&principal.name) {
                Some(mb) => mb.smtp.clone(),
                None => {
                    drop(emu);
                    return fault(
                        &shared,
                        "ErrorNonExistentMailbox",
                        "The service account has no mailbox; use ExchangeImpersonation.",
                        None,
                    );
                }
            }
        }
    };
    let tz = header_el
        .path(&[(NS_T, "TimeZoneContext"), (NS_T, "TimeZoneDefinition")])
        .and_then(|d| d.attr("Id"))
        .map(str::to_string);
    if let Some(l) = shared.options.latency {
        tokio::time::sleep(l).await;
    }
    let result = ops::dispatch(&shared, &mailbox, tz.as_deref(), op);
    drop(guard);
    match result {
        Ok(body) => {
            let env = soap::response_envelope(&body);
            if drop_response {
                // The work is done; the answer breaks off half way.
                let mut cut = env.len() / 2;
                while !env.is_char_boundary(cut) {
                    cut -= 1;
                }
                return broken_answer(&env[..cut]);
            }
            if shared.options.record_bodies {
                shared.lock().bodies.push(body);
            }
            soap_response(StatusCode::OK, env)
        }
        Err((code, msg)) => fault(&shared, &code, &msg, None),
    }
}

/// The answer an injected fault gives in place of the real one; None for `DropResponse`,
/// which lets the request be carried out first.
fn injected_answer(shared: &Shared, f: Fault) -> Option<Response> {
    Some(match f {
        Fault::ServerBusy { back_off_ms } => fault(
            shared,
            "ErrorServerBusy",
            "The server cannot service this request right now. Try again later.",
            Some(back_off_ms),
        ),
        Fault::Soap { code } => fault(shared, &code, "Injected fault.", None),
        Fault::Http(status) => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            .into_response(),
        Fault::Unavailable { retry_after_secs } => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            "",
        )
            .into_response(),
        Fault::Unauthorized => {
            shared.lock().rejected_logons += 1;
            unauthorized()
        }
        Fault::DropConnection => {
            broken_answer("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Bo")
        }
        Fault::DropResponse => return None,
        // Handled by the operations themselves.
        Fault::StaleChangeKey | Fault::InvalidSyncState => return None,
    })
}

/// A 200 whose body breaks off: part of the answer, then the connection is reset.
fn broken_answer(partial: &str) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(partial.to_string())),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        )),
    ];
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

/// Validates one body with xmllint (blocking work kept off the async threads).
async fn validate(schema: &std::path::Path, body: &str) -> Result<(), String> {
    let schema = schema.to_path_buf();
    let body = body.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run xmllint: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(body.as_bytes())
                .map_err(|e| format!("xmllint: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("xmllint: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "The request failed schema validation: {}",
                err.lines().next().unwrap_or("invalid")
            ))
        }
    })
    .await
    .map_err(|e| format!("validation task: {e}"))?
}
