//! The EWS client: authentication, transport with bounded retries and throttling back-off,
//! Autodiscover, and the operations the sync engine needs.

use super::error::{EwsError, ItemError};
use super::model::{
    self, ADDRESS_KEYS, ADDRESS_PARTS, CalendarEvent, Contact, EMAIL_KEYS, FolderInfo, Item,
    ItemId, PROP_OUTLOOK_RELATED, PROP_SALESFORCE_ID, PROP_SYNCED_BY,
};
use super::soap::{self, RequestHeaders, ResponseMessage};
use super::version::ServerBuild;
use super::xml::{self, Element, Limits, NS_AD_RESP_A, NS_AD_SOAP, NS_M, NS_T, Writer};
use crate::clock::Clock;
use crate::mutex::lock;
use crate::net::{BodyError, certificate_problem, check_transport, describe_request_error};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// How the service account authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Basic authentication (on-premises). `username` as configured: UPN `svc@corp.com` or
    /// down-level `CORP\svc`.
    Basic { username: String, password: Secret },
    /// OAuth 2.0 client credentials (Exchange Online app registration, a client secret or
    /// a certificate); scope e.g. `https://outlook.office365.com/.default`.
    OAuth2(crate::entra::AppCredentials),
}

/// Where EWS is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A configured `ews_url`.
    Url(Url),
    /// Find it with Autodiscover, per rep: each rep's mailbox domain is looked up once
    /// (cached per domain). `address` is an email address or a bare domain; with an
    /// address it is also the fallback when a rep's own domain has no Autodiscover, and
    /// what `ews_url()` looks up.
    Autodiscover { address: String },
}

/// Maps a host name (`corp.com`, `autodiscover.corp.com`) to the base URL Autodiscover
/// requests go to. The default is `https://<host>`; tests point it at the emulator.
pub type HostResolver = Arc<dyn Fn(&str) -> Option<Url> + Send + Sync>;

#[derive(Clone)]
pub struct AutodiscoverOptions {
    /// Redirects (redirectAddr, redirectUrl, RedirectAddress, HTTP 302) followed at most.
    pub max_hops: u32,
    pub resolver: Option<HostResolver>,
}

impl Default for AutodiscoverOptions {
    fn default() -> Self {
        AutodiscoverOptions {
            max_hops: 10,
            resolver: None,
        }
    }
}

impl std::fmt::Debug for AutodiscoverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutodiscoverOptions")
            .field("max_hops", &self.max_hops)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictResolution {
    NeverOverwrite,
    AutoResolve,
    AlwaysOverwrite,
}

impl ConflictResolution {
    fn as_str(self) -> &'static str {
        match self {
            ConflictResolution::NeverOverwrite => "NeverOverwrite",
            ConflictResolution::AutoResolve => "AutoResolve",
            ConflictResolution::AlwaysOverwrite => "AlwaysOverwrite",
        }
    }
}

/// Client settings (the lead maps the YAML connection onto this).
#[derive(Debug, Clone)]
pub struct ExchangeOptions {
    pub endpoint: Endpoint,
    pub auth: Auth,
    /// RequestServerVersion, `Exchange2013_SP1` by default.
    pub server_version: String,
    /// Items per GetItem / CreateItem / UpdateItem / DeleteItem call (default 50).
    pub batch_size: usize,
    /// Extra trusted CA certificates (PEM), besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Retries for 503, connection errors and ErrorServerBusy before giving up.
    pub max_retries: u32,
    /// Windows zone id sent in TimeZoneContext.
    pub time_zone: String,
    /// UpdateItem's ConflictResolution; NeverOverwrite so a stale ChangeKey is detected.
    pub conflict_resolution: ConflictResolution,
    pub autodiscover: AutodiscoverOptions,
    /// Per HTTP request.
    pub timeout: Duration,
}

impl ExchangeOptions {
    pub fn new(endpoint: Endpoint, auth: Auth) -> Self {
        ExchangeOptions {
            endpoint,
            auth,
            server_version: "Exchange2013_SP1".into(),
            batch_size: 50,
            ca_file: None,
            max_retries: 5,
            time_zone: "UTC".into(),
            conflict_resolution: ConflictResolution::NeverOverwrite,
            autodiscover: AutodiscoverOptions::default(),
            timeout: Duration::from_secs(120),
        }
    }
}

/// A folder to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderRef {
    /// `contacts`, `calendar`, `msgfolderroot`, …
    Distinguished(String),
    Id(String),
}

impl FolderRef {
    pub fn contacts() -> Self {
        FolderRef::Distinguished("contacts".into())
    }
    pub fn calendar() -> Self {
        FolderRef::Distinguished("calendar".into())
    }
    fn write(&self, w: &mut Writer) {
        match self {
            FolderRef::Distinguished(d) => w.empty("t:DistinguishedFolderId", &[("Id", d)]),
            FolderRef::Id(id) => w.empty("t:FolderId", &[("Id", id)]),
        };
    }
}

impl From<&FolderInfo> for FolderRef {
    fn from(f: &FolderInfo) -> Self {
        FolderRef::Id(f.id.id.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    ReadFlagChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Contact,
    CalendarItem,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncChange {
    pub kind: ChangeKind,
    pub item_kind: ItemKind,
    pub item_id: ItemId,
}

/// One SyncFolderItems page; persist `sync_state` once its changes are handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    pub changes: Vec<SyncChange>,
    pub sync_state: String,
    pub includes_last: bool,
    /// This page belongs to a sync that started without a state (first sync, or a restart
    /// after ErrorInvalidSyncStateData): its pages together list every item in the folder,
    /// so an item missing from them is gone.
    pub from_scratch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    pub sync_state: String,
    pub pages: u32,
    pub changes: usize,
    /// The server refused the saved state (ErrorInvalidSyncStateData) and the sync started
    /// over from nothing: every item comes back as a Create.
    pub restarted: bool,
}

/// Per-item outcome of a batch.
pub type ItemResult<T> = Result<T, ItemError>;

const CONTACT_FIELDS: &[&str] = &[
    "item:Body",
    "item:Categories",
    "item:LastModifiedTime",
    "contacts:FileAs",
    "contacts:DisplayName",
    "contacts:GivenName",
    "contacts:MiddleName",
    "contacts:Nickname",
    "contacts:CompanyName",
    "contacts:EmailAddresses",
    "contacts:PhysicalAddresses",
    "contacts:PhoneNumbers",
    "contacts:AssistantName",
    "contacts:Birthday",
    "contacts:Department",
    "contacts:JobTitle",
    "contacts:Surname",
];

const EVENT_FIELDS: &[&str] = &[
    "item:Subject",
    "item:Sensitivity",
    "item:Body",
    "item:Categories",
    "item:LastModifiedTime",
    "calendar:UID",
    "calendar:Start",
    "calendar:End",
    "calendar:OriginalStart",
    "calendar:IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:CalendarItemType",
    "calendar:Organizer",
    "calendar:RequiredAttendees",
    "calendar:OptionalAttendees",
    "calendar:Recurrence",
    "calendar:ModifiedOccurrences",
    "calendar:DeletedOccurrences",
    "calendar:StartTimeZone",
    "calendar:EndTimeZone",
];

/// What `FolderInfo` holds beyond the Default folder shape.
const FOLDER_FIELDS: &[&str] = &["folder:FolderClass", "folder:ParentFolderId"];

/// What FindItem can return of what `model::parse_event` reads: not Body, attendees,
/// Recurrence or the occurrence lists (GetItem gives those). A real server answers only what
/// the shape asks for; the zones date all-day events.
const CALENDAR_VIEW_FIELDS: &[&str] = &[
    "item:Subject",
    "item:Sensitivity",
    "item:Categories",
    "item:LastModifiedTime",
    "calendar:UID",
    "calendar:Start",
    "calendar:End",
    "calendar:OriginalStart",
    "calendar:IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:CalendarItemType",
    "calendar:Organizer",
    "calendar:StartTimeZone",
    "calendar:EndTimeZone",
];

/// Phone keys tether maps: cleared on update when the record has none.
const MAPPED_PHONE_KEYS: &[&str] = &[
    "BusinessPhone",
    "BusinessPhone2",
    "MobilePhone",
    "HomePhone",
    "BusinessFax",
    "AssistantPhone",
    "OtherTelephone",
];

/// FindItem pages read for one query before giving up on a server that never ends.
const MAX_FIND_PAGES: u32 = 1_000;

/// Longest EWS or Autodiscover answer read (EWS itself limits requests to tens of MB).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

pub struct EwsClient {
    http: reqwest::Client,
    opts: ExchangeOptions,
    clock: Arc<dyn Clock>,
    /// The app's token, for `Auth::OAuth2`.
    token: Option<crate::entra::TokenClient>,
    calls: Mutex<BTreeMap<String, u64>>,
    autodiscover_cache: Mutex<HashMap<String, Url>>,
    /// The build each mailbox (lower-cased) last answered from, for `tether status`.
    builds: Mutex<HashMap<String, ServerBuild>>,
    /// Exchange refused the credentials in this run: every later call fails at once, since
    /// each further attempt is a failed logon that can lock the account out.
    refused: Mutex<Option<String>>,
}

impl std::fmt::Debug for EwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsClient")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// An OAuth 2.0 token endpoint's answer (see [`crate::entra::token_answer`]), its error in
/// words.
pub(crate) fn token_answer(status: u16, body: &[u8]) -> Result<(Secret, i64), String> {
    crate::entra::token_answer(status, body).map_err(|e| e.message)
}

fn same_domain(a: &str, b: &str) -> bool {
    let d = |s: &str| s.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
    d(a) == d(b)
}

pub(crate) enum Discovered {
    Url(Url),
    RedirectAddr(String),
    RedirectUrl(Url),
}

impl EwsClient {
    pub fn new(opts: ExchangeOptions, clock: Arc<dyn Clock>) -> Result<Self, EwsError> {
        if let Endpoint::Url(u) = &opts.endpoint {
            check_transport(u).map_err(EwsError::Config)?;
        }
        if let Auth::OAuth2(app) = &opts.auth {
            check_transport(&app.token_url).map_err(EwsError::Config)?;
        }
        if opts.batch_size == 0 {
            return Err(EwsError::Config("batch size must be at least 1".into()));
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(opts.timeout)
            .https_only(false);
        if let Some(path) = &opts.ca_file {
            for c in crate::net::load_ca_file(path).map_err(EwsError::Config)? {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| EwsError::Config(format!("HTTP client: {e}")))?;
        let token = match &opts.auth {
            Auth::OAuth2(app) => Some(crate::entra::TokenClient::new(
                app.clone(),
                http.clone(),
                clock.clone(),
                opts.max_retries,
            )),
            Auth::Basic { .. } => None,
        };
        Ok(EwsClient {
            http,
            opts,
            clock,
            token,
            calls: Mutex::new(BTreeMap::new()),
            autodiscover_cache: Mutex::new(HashMap::new()),
            builds: Mutex::new(HashMap::new()),
            refused: Mutex::new(None),
        })
    }

    /// Requests sent so far, by operation (EWS operations, `Autodiscover`, `Token`);
    /// retries count, since each costs the server.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let mut calls = self.calls.lock().map(|c| c.clone()).unwrap_or_default();
        if let Some(t) = self.token.as_ref().filter(|t| t.requests() > 0) {
            calls.insert("Token".into(), t.requests());
        }
        calls
    }

    /// The Exchange build `mailbox` last answered from (its `ServerVersionInfo`), once a
    /// call for it succeeded.
    pub fn server_build(&self, mailbox: &str) -> Option<ServerBuild> {
        let builds = self.builds.lock().ok()?;
        builds.get(&mailbox.to_ascii_lowercase()).copied()
    }

    fn count(&self, op: &str) {
        if let Ok(mut c) = self.calls.lock() {
            *c.entry(op.to_string()).or_default() += 1;
        }
    }

    pub fn batch_size(&self) -> usize {
        self.opts.batch_size
    }

    // ---------------------------------------------------------------------------------
    // Authentication

    /// The Authorization header's value, marked sensitive so no Debug of the request shows it.
    async fn authorization(&self, force_new: bool) -> Result<HeaderValue, EwsError> {
        let value = self.credentials(force_new).await?;
        let mut header = HeaderValue::from_str(value.expose()).map_err(|_| {
            EwsError::Config("the credentials are not valid in an HTTP header".into())
        })?;
        header.set_sensitive(true);
        Ok(header)
    }

    async fn credentials(&self, force_new: bool) -> Result<Secret, EwsError> {
        match &self.opts.auth {
            Auth::Basic { username, password } => {
                use base64::Engine;
                let raw = Secret::new(format!("{username}:{}", password.expose()));
                Ok(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw.expose())
                )))
            }
            Auth::OAuth2(_) => {
                let tokens = self
                    .token
                    .as_ref()
                    .ok_or_else(|| EwsError::Config("OAuth 2.0 without a token client".into()))?;
                let token = tokens
                    .access_token(force_new)
                    .await
                    .map_err(|e| EwsError::Token(e.message))?;
                Ok(Secret::new(format!("Bearer {}", token.expose())))
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Transport

    /// Waits before retry `attempt` (1-based): 1 s, 2 s, 4 s … capped at 60 s.
    async fn back_off(&self, attempt: u32) {
        let secs = 1u64 << attempt.saturating_sub(1).min(6);
        self.clock.sleep(Duration::from_secs(secs.min(60))).await;
    }

    /// The body of `resp`, at most `limit` bytes of it (`what`: "an EWS", for the message).
    async fn read_body(
        resp: reqwest::Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, EwsError> {
        let server = crate::net::server_of(resp.url());
        crate::net::read_capped(resp, limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => EwsError::Xml(format!(
                    "{server} sent {what} answer larger than tether's cap of {}; reading stopped there",
                    crate::net::size_text(limit)
                )),
                BodyError::Io(m) => EwsError::Transport(format!("{server}: {m}")),
            })
    }

    /// Sends one operation (for `mailbox` through impersonation) and returns the
    /// operation's response element. Retries up to `max_retries`: ErrorServerBusy after the
    /// BackOffMilliseconds it carries, 503 and 429 after their Retry-After (else exponential
    /// back-off), and connection failures — except that a CreateItem that may have reached
    /// the server is never sent twice (it would create the items twice): that failure is
    /// returned for the caller to resolve. Renews an OAuth token once on 401; after a 401
    /// that stands, every later call in this client fails without being sent.
    async fn call(&self, op: &str, mailbox: Option<&str>, body: &str) -> Result<Element, EwsError> {
        if let Some(m) = lock(&self.refused).clone() {
            return Err(EwsError::Unauthorized(format!(
                "{m}; not tried again in this run, so the account is not locked out"
            )));
        }
        // Only a request the server provably did not run may be sent again.
        let resend_after_failure = op != "CreateItem";
        let url = self.endpoint_for(mailbox).await?;
        let headers = RequestHeaders {
            server_version: &self.opts.server_version,
            impersonate: mailbox,
            time_zone: Some(&self.opts.time_zone),
        };
        let envelope = soap::request_envelope(&headers, body);
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            self.count(op);
            let auth = self.authorization(false).await?;
            let started = std::time::Instant::now();
            let mut req = self
                .http
                .post(url.clone())
                .header("Content-Type", "text/xml; charset=utf-8")
                .header("Authorization", auth)
                .body(envelope.clone());
            if let Some(mb) = mailbox {
                req = req.header("X-AnchorMailbox", mb);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                // Retrying cannot make an untrusted certificate trusted.
                Err(e) if certificate_problem(&e).is_some() => {
                    return Err(EwsError::Transport(format!(
                        "{url}: {}",
                        describe_request_error(&e)
                    )));
                }
                Err(e)
                    if attempt <= self.opts.max_retries
                        && (resend_after_failure || e.is_connect()) =>
                {
                    tracing::info!(
                        op,
                        attempt,
                        error = %e.without_url(),
                        "EWS request failed; retrying after back-off"
                    );
                    self.back_off(attempt).await;
                    continue;
                }
                Err(e) => {
                    return Err(EwsError::Transport(format!(
                        "{url}: {} (after {attempt} attempts)",
                        describe_request_error(&e)
                    )));
                }
            };
            let status = resp.status().as_u16();
            tracing::debug!(
                method = "POST",
                path = url.path(),
                op,
                mailbox = mailbox.unwrap_or(""),
                status,
                ms = started.elapsed().as_millis() as u64,
                attempt,
                "EWS request"
            );
            match status {
                401 => {
                    if matches!(self.opts.auth, Auth::OAuth2(_)) && !renewed {
                        renewed = true;
                        self.authorization(true).await?;
                        continue;
                    }
                    let message = format!("{url} answered 401 for the service account");
                    *lock(&self.refused) = Some(message.clone());
                    return Err(EwsError::Unauthorized(message));
                }
                403 => {
                    return Err(EwsError::Unauthorized(format!("{url} answered 403")));
                }
                503 | 502 | 504 | 429 => {
                    // 503 and 429 say the request was not served; a gateway's 502 or 504 does
                    // not say whether the server behind it ran it.
                    let not_run = matches!(status, 503 | 429);
                    if attempt <= self.opts.max_retries && (resend_after_failure || not_run) {
                        let wait = crate::net::retry_after(resp.headers());
                        tracing::info!(
                            op,
                            status,
                            attempt,
                            retry_after_s = wait.map(|w| w.as_secs()),
                            "EWS unavailable; retrying after back-off"
                        );
                        match wait {
                            Some(wait) => self.clock.sleep(wait).await,
                            None => self.back_off(attempt).await,
                        }
                        continue;
                    }
                    return Err(EwsError::Http {
                        status,
                        detail: format!("still unavailable after {attempt} attempts"),
                    });
                }
                200 | 500 => {}
                _ => {
                    return Err(EwsError::Http {
                        status,
                        detail: format!("{url} answered {op} unexpectedly"),
                    });
                }
            }
            let bytes = match Self::read_body(resp, MAX_RESPONSE_BYTES, "an EWS").await {
                Ok(b) => b,
                Err(EwsError::Transport(m))
                    if attempt <= self.opts.max_retries && resend_after_failure =>
                {
                    tracing::info!(op, attempt, error = %m, "EWS answer broke off; retrying after back-off");
                    self.back_off(attempt).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match soap::parse_response_and_build(&bytes) {
                Ok((op, build)) => {
                    if let (Some(mb), Some(build)) = (mailbox, build)
                        && let Ok(mut builds) = self.builds.lock()
                    {
                        builds.insert(mb.to_ascii_lowercase(), build);
                    }
                    return Ok(op);
                }
                Err(EwsError::Fault {
                    code, back_off_ms, ..
                }) if code == "ErrorServerBusy" && attempt <= self.opts.max_retries => {
                    // Throttled: wait exactly what the server asked (at most 5 minutes).
                    let ms = back_off_ms.unwrap_or(5_000).min(300_000);
                    tracing::info!(
                        op,
                        back_off_ms = ms,
                        attempt,
                        "EWS throttled (ErrorServerBusy); backing off"
                    );
                    self.clock.sleep(Duration::from_millis(ms)).await;
                    continue;
                }
                Err(EwsError::Xml(m)) if status == 500 => {
                    return Err(EwsError::Http {
                        status,
                        detail: format!("not a SOAP answer: {m}"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Calls and returns the response messages, checking there is one per request part.
    async fn call_messages(
        &self,
        op: &str,
        mailbox: Option<&str>,
        body: &str,
        expected: usize,
    ) -> Result<Vec<ResponseMessage>, EwsError> {
        let resp = self.call(op, mailbox, body).await?;
        let msgs = soap::response_messages(&resp)?;
        if msgs.len() != expected {
            return Err(EwsError::Xml(format!(
                "{op}: {} response messages for {expected} requests",
                msgs.len()
            )));
        }
        Ok(msgs)
    }

    /// A single-message operation: an Error message becomes `EwsError::Response`.
    async fn call_one(
        &self,
        op: &str,
        mailbox: Option<&str>,
        body: &str,
    ) -> Result<ResponseMessage, EwsError> {
        let mut msgs = self.call_messages(op, mailbox, body, 1).await?;
        let m = msgs.remove(0);
        if m.is_error() {
            return Err(EwsError::Response {
                code: m.code,
                message: m.text,
            });
        }
        Ok(m)
    }

    // ---------------------------------------------------------------------------------
    // Autodiscover

    /// The EWS URL: configured, or found by Autodiscover for the configured address.
    pub async fn ews_url(&self) -> Result<Url, EwsError> {
        self.endpoint_for(None).await
    }

    /// The EWS URL for a call made for `mailbox`.
    async fn endpoint_for(&self, mailbox: Option<&str>) -> Result<Url, EwsError> {
        let address = match &self.opts.endpoint {
            Endpoint::Url(u) => return Ok(u.clone()),
            Endpoint::Autodiscover { address } => address,
        };
        let configured = address.contains('@').then_some(address.as_str());
        match (mailbox, configured) {
            (Some(m), Some(c)) => match self.autodiscover(m).await {
                Ok(u) => Ok(u),
                Err(first) if !same_domain(m, c) => self.autodiscover(c).await.map_err(|_| first),
                Err(e) => Err(e),
            },
            (Some(m), None) => self.autodiscover(m).await,
            (None, Some(c)) => self.autodiscover(c).await,
            (None, None) => Err(EwsError::Config(format!(
                "Autodiscover for {address} needs a mailbox address"
            ))),
        }
    }

    fn host_base(&self, host: &str) -> Option<Url> {
        match &self.opts.autodiscover.resolver {
            Some(r) => r(host),
            None => Url::parse(&format!("https://{host}/")).ok(),
        }
    }

    /// Finds the EWS URL for `email`: POX at the domain, then at `autodiscover.<domain>`, then
    /// SOAP GetUserSettings; follows redirects up to the hop limit. Cached per domain.
    pub async fn autodiscover(&self, email: &str) -> Result<Url, EwsError> {
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .ok_or_else(|| EwsError::Autodiscover(format!("`{email}` is not an email address")))?;
        if let Some(u) = self
            .autodiscover_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&domain).cloned())
        {
            return Ok(u);
        }
        let max = self.opts.autodiscover.max_hops;
        let mut address = email.to_string();
        let mut explicit: Option<Url> = None;
        let mut hops = 0u32;
        'hop: loop {
            let dom = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            let mut candidates: Vec<(Url, bool)> = Vec::new();
            if let Some(u) = explicit.take() {
                let soap = u.path().to_ascii_lowercase().ends_with(".svc");
                candidates.push((u, soap));
            } else {
                for host in [dom.clone(), format!("autodiscover.{dom}")] {
                    if let Some(b) = self.host_base(&host)
                        && let Ok(u) = b.join("autodiscover/autodiscover.xml")
                    {
                        candidates.push((u, false));
                    }
                }
                for host in [format!("autodiscover.{dom}"), dom.clone()] {
                    if let Some(b) = self.host_base(&host)
                        && let Ok(u) = b.join("autodiscover/autodiscover.svc")
                    {
                        candidates.push((u, true));
                    }
                }
            }
            let mut failures = Vec::new();
            for (url, soap) in candidates {
                if let Err(e) = check_transport(&url) {
                    failures.push(e);
                    continue;
                }
                let found = if soap {
                    self.autodiscover_soap(&url, &address).await
                } else {
                    self.autodiscover_pox(&url, &address).await
                };
                match found {
                    Ok(Discovered::Url(u)) => {
                        check_transport(&u).map_err(EwsError::Autodiscover)?;
                        if let Ok(mut c) = self.autodiscover_cache.lock() {
                            c.insert(domain, u.clone());
                        }
                        return Ok(u);
                    }
                    Ok(next) => {
                        hops += 1;
                        if hops > max {
                            return Err(EwsError::Autodiscover(format!(
                                "gave up after {max} redirects looking up {email} (last: {address}); check the Autodiscover records of {domain}"
                            )));
                        }
                        match next {
                            Discovered::RedirectAddr(a) => address = a,
                            Discovered::RedirectUrl(u) => explicit = Some(u),
                            Discovered::Url(_) => {}
                        }
                        continue 'hop;
                    }
                    Err(e) => failures.push(format!("{url}: {e}")),
                }
            }
            return Err(EwsError::Autodiscover(format!(
                "no Autodiscover endpoint answered for {address}: {}",
                failures.join("; ")
            )));
        }
    }

    async fn autodiscover_post(
        &self,
        url: &Url,
        body: String,
        soap: bool,
    ) -> Result<(u16, Vec<u8>, Option<String>), EwsError> {
        self.count("Autodiscover");
        let auth = self.authorization(false).await?;
        let started = std::time::Instant::now();
        let ct = if soap {
            "text/xml; charset=utf-8"
        } else {
            "text/xml"
        };
        let resp = self
            .http
            .post(url.clone())
            .header("Content-Type", ct)
            .header("Authorization", auth)
            .body(body)
            .send()
            .await
            .map_err(|e| EwsError::Transport(describe_request_error(&e)))?;
        let status = resp.status().as_u16();
        tracing::debug!(
            method = "POST",
            host = url.host_str().unwrap_or(""),
            path = url.path(),
            status,
            ms = started.elapsed().as_millis() as u64,
            "Autodiscover request"
        );
        let location = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = Self::read_body(resp, MAX_RESPONSE_BYTES, "an Autodiscover").await?;
        Ok((status, bytes, location))
    }

    async fn autodiscover_pox(&self, url: &Url, email: &str) -> Result<Discovered, EwsError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{}"><Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>{NS_AD_RESP_A}</AcceptableResponseSchema></Request></Autodiscover>"#,
            xml::NS_AD_REQ,
            xml::escape(email)
        );
        let (status, bytes, location) = self.autodiscover_post(url, body, false).await?;
        if matches!(status, 301 | 302 | 307 | 308) {
            let loc = location
                .and_then(|l| url.join(&l).ok())
                .ok_or_else(|| EwsError::Autodiscover("redirect without Location".into()))?;
            return Ok(Discovered::RedirectUrl(loc));
        }
        if status != 200 {
            return Err(EwsError::Http {
                status,
                detail: "Autodiscover".into(),
            });
        }
        answers::autodiscover_pox(&bytes)
    }

    async fn autodiscover_soap(&self, url: &Url, email: &str) -> Result<Discovered, EwsError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="{NS_AD_SOAP}" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action><wsa:To>{}</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>"#,
            xml::escape(url.as_str()),
            xml::escape(email)
        );
        let (status, bytes, location) = self.autodiscover_post(url, body, true).await?;
        if matches!(status, 301 | 302 | 307 | 308) {
            let loc = location
                .and_then(|l| url.join(&l).ok())
                .ok_or_else(|| EwsError::Autodiscover("redirect without Location".into()))?;
            return Ok(Discovered::RedirectUrl(loc));
        }
        if status != 200 {
            return Err(EwsError::Http {
                status,
                detail: "Autodiscover".into(),
            });
        }
        answers::autodiscover_soap(&bytes)
    }

    // ---------------------------------------------------------------------------------
    // Folders

    /// FolderShape: the Default shape lacks FolderClass and ParentFolderId, which
    /// `FolderInfo` holds, so they are asked for.
    fn folder_shape(w: &mut Writer) {
        w.open("m:FolderShape", &[]).leaf("t:BaseShape", "Default");
        w.open("t:AdditionalProperties", &[]);
        for f in FOLDER_FIELDS {
            w.empty("t:FieldURI", &[("FieldURI", f)]);
        }
        model::write_extended_uri(w, PROP_SYNCED_BY);
        w.close().close();
    }

    /// GetFolder for a folder (e.g. `FolderRef::contacts()`).
    pub async fn get_folder(
        &self,
        mailbox: &str,
        folder: &FolderRef,
    ) -> Result<FolderInfo, EwsError> {
        let mut w = Writer::new();
        w.open("m:GetFolder", &[]);
        Self::folder_shape(&mut w);
        w.open("m:FolderIds", &[]);
        folder.write(&mut w);
        let m = self
            .call_one("GetFolder", Some(mailbox), &w.finish())
            .await?;
        answers::folder(&m)
    }

    /// The folder with this id, or `None` when it is gone: deleted for good (GetFolder
    /// answers ErrorItemNotFound), or deleted by the rep, which moves it into Deleted Items
    /// with its id. One GetFolder for the folder and Deleted Items together.
    pub async fn folder_unless_deleted(
        &self,
        mailbox: &str,
        id: &str,
    ) -> Result<Option<FolderInfo>, EwsError> {
        let mut w = Writer::new();
        w.open("m:GetFolder", &[]);
        Self::folder_shape(&mut w);
        w.open("m:FolderIds", &[]);
        FolderRef::Id(id.to_string()).write(&mut w);
        FolderRef::Distinguished("deleteditems".into()).write(&mut w);
        let msgs = self
            .call_messages("GetFolder", Some(mailbox), &w.finish(), 2)
            .await?;
        answers::folder_unless_deleted(&msgs)
    }

    /// FindFolder by display name directly under `parent`.
    pub async fn find_folder(
        &self,
        mailbox: &str,
        parent: &FolderRef,
        name: &str,
    ) -> Result<Option<FolderInfo>, EwsError> {
        let mut w = Writer::new();
        w.open("m:FindFolder", &[("Traversal", "Shallow")]);
        Self::folder_shape(&mut w);
        w.open("m:Restriction", &[]).open("t:IsEqualTo", &[]);
        w.empty("t:FieldURI", &[("FieldURI", "folder:DisplayName")]);
        w.open("t:FieldURIOrConstant", &[])
            .empty("t:Constant", &[("Value", name)])
            .close();
        w.close().close();
        w.open("m:ParentFolderIds", &[]);
        parent.write(&mut w);
        let m = self
            .call_one("FindFolder", Some(mailbox), &w.finish())
            .await?;
        let found = answers::found_folder(&m, name);
        // Not on a page that is not the last: it may be on a later one.
        if found.is_none() && !answers::paging(&m).includes_last {
            return Err(EwsError::Xml(format!(
                "FindFolder for {name} answered part of the list (IncludesLastItemInRange false)"
            )));
        }
        Ok(found)
    }

    /// CreateFolder; `Ok(None)` when it already exists (ErrorFolderExists).
    pub async fn create_folder(
        &self,
        mailbox: &str,
        parent: &FolderRef,
        name: &str,
        class: &str,
    ) -> Result<Option<FolderInfo>, EwsError> {
        self.create_folder_marked(mailbox, parent, name, class, None)
            .await
    }

    /// CreateFolder with the folder's [`PROP_SYNCED_BY`] set to `synced_by`, when given.
    async fn create_folder_marked(
        &self,
        mailbox: &str,
        parent: &FolderRef,
        name: &str,
        class: &str,
        synced_by: Option<&str>,
    ) -> Result<Option<FolderInfo>, EwsError> {
        let mut w = Writer::new();
        w.open("m:CreateFolder", &[]);
        w.open("m:ParentFolderId", &[]);
        parent.write(&mut w);
        w.close();
        let el = if class == "IPF.Contact" {
            "t:ContactsFolder"
        } else {
            "t:Folder"
        };
        w.open("m:Folders", &[]).open(el, &[]);
        w.leaf("t:FolderClass", class).leaf("t:DisplayName", name);
        if let Some(v) = synced_by {
            model::write_extended(&mut w, PROP_SYNCED_BY, v);
        }
        match self
            .call_one("CreateFolder", Some(mailbox), &w.finish())
            .await
        {
            Ok(m) => Ok(answers::created_folder(&m).map(|id| FolderInfo {
                id,
                parent: None,
                display_name: name.to_string(),
                folder_class: Some(class.to_string()),
                synced_by: synced_by.map(str::to_string),
            })),
            Err(e) if e.code() == Some("ErrorFolderExists") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// UpdateFolder: sets the contacts folder's [`PROP_SYNCED_BY`] to `value`.
    pub async fn set_synced_by(
        &self,
        mailbox: &str,
        folder_id: &str,
        value: &str,
    ) -> Result<(), EwsError> {
        let mut w = Writer::new();
        w.open("m:UpdateFolder", &[]).open("m:FolderChanges", &[]);
        w.open("t:FolderChange", &[]);
        FolderRef::Id(folder_id.to_string()).write(&mut w);
        w.open("t:Updates", &[]).open("t:SetFolderField", &[]);
        model::write_extended_uri(&mut w, PROP_SYNCED_BY);
        w.open("t:ContactsFolder", &[]);
        model::write_extended(&mut w, PROP_SYNCED_BY, value);
        self.call_one("UpdateFolder", Some(mailbox), &w.finish())
            .await
            .map(|_| ())
    }

    /// The rep's `Salesforce_Sync` folder under Contacts, created when missing.
    pub async fn ensure_sync_folder(&self, mailbox: &str) -> Result<FolderInfo, EwsError> {
        self.ensure_sync_folder_marked(mailbox, None).await
    }

    /// The rep's `Salesforce_Sync` folder under Contacts, created when missing (with its
    /// [`PROP_SYNCED_BY`] set to `synced_by`, when given). A folder found is left as it is.
    pub async fn ensure_sync_folder_marked(
        &self,
        mailbox: &str,
        synced_by: Option<&str>,
    ) -> Result<FolderInfo, EwsError> {
        const NAME: &str = "Salesforce_Sync";
        if let Some(f) = self
            .find_folder(mailbox, &FolderRef::contacts(), NAME)
            .await?
        {
            return Ok(f);
        }
        if let Some(f) = self
            .create_folder_marked(
                mailbox,
                &FolderRef::contacts(),
                NAME,
                "IPF.Contact",
                synced_by,
            )
            .await?
        {
            return Ok(f);
        }
        // ErrorFolderExists: created meanwhile (another run); it is there.
        self.find_folder(mailbox, &FolderRef::contacts(), NAME)
            .await?
            .ok_or_else(|| EwsError::Response {
                code: "ErrorFolderExists".into(),
                message: "Salesforce_Sync exists but cannot be found".into(),
            })
    }

    // ---------------------------------------------------------------------------------
    // Changes

    /// One SyncFolderItems call (ids only; fetch the items with GetItem).
    pub async fn sync_page(
        &self,
        mailbox: &str,
        folder: &FolderRef,
        state: Option<&str>,
        max_changes: u16,
    ) -> Result<SyncPage, EwsError> {
        let max = max_changes.clamp(1, 512);
        let mut w = Writer::new();
        w.open("m:SyncFolderItems", &[]);
        w.open("m:ItemShape", &[])
            .leaf("t:BaseShape", "IdOnly")
            .close();
        w.open("m:SyncFolderId", &[]);
        folder.write(&mut w);
        w.close();
        if let Some(s) = state {
            w.leaf("m:SyncState", s);
        }
        w.leaf("m:MaxChangesReturned", &max.to_string());
        w.leaf("m:SyncScope", "NormalItems");
        let m = self
            .call_one("SyncFolderItems", Some(mailbox), &w.finish())
            .await?;
        answers::sync_page(&m)
    }

    /// SyncFolderItems until IncludesLastItemInRange, handing each page to `on_page` (which
    /// should persist its SyncState). A refused state (ErrorInvalidSyncStateData) restarts
    /// once from nothing.
    pub async fn sync_folder<F>(
        &self,
        mailbox: &str,
        folder: &FolderRef,
        state: Option<String>,
        max_changes: u16,
        mut on_page: F,
    ) -> Result<SyncSummary, EwsError>
    where
        F: FnMut(&SyncPage),
    {
        let mut state = state;
        let mut from_scratch = state.is_none();
        let mut summary = SyncSummary {
            sync_state: String::new(),
            pages: 0,
            changes: 0,
            restarted: false,
        };
        // 1,000,000 items / 512 per page: a hard stop against a server that never ends.
        for _ in 0..2_000 {
            let page = match self
                .sync_page(mailbox, folder, state.as_deref(), max_changes)
                .await
            {
                Err(e)
                    if e.code() == Some("ErrorInvalidSyncStateData")
                        && !summary.restarted
                        && state.is_some() =>
                {
                    summary.restarted = true;
                    from_scratch = true;
                    state = None;
                    continue;
                }
                other => other?,
            };
            let mut page = page;
            page.from_scratch = from_scratch;
            summary.pages += 1;
            summary.changes += page.changes.len();
            on_page(&page);
            state = Some(page.sync_state.clone());
            summary.sync_state = page.sync_state.clone();
            if page.includes_last {
                return Ok(summary);
            }
        }
        Err(EwsError::Xml(
            "SyncFolderItems never reported the last page".into(),
        ))
    }

    /// FindItem with a CalendarView: singles, occurrences and exceptions overlapping
    /// [start, end) in the default calendar (recurring masters are expanded by the server).
    /// Returns the summary properties; fetch bodies and attendees with `get_events`.
    pub async fn calendar_view(
        &self,
        mailbox: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        max_entries: u32,
    ) -> Result<Vec<CalendarEvent>, EwsError> {
        let mut w = Writer::new();
        w.open("m:FindItem", &[("Traversal", "Shallow")]);
        w.open("m:ItemShape", &[]).leaf("t:BaseShape", "IdOnly");
        w.open("t:AdditionalProperties", &[]);
        for f in CALENDAR_VIEW_FIELDS {
            w.empty("t:FieldURI", &[("FieldURI", f)]);
        }
        model::write_extended_uri(&mut w, PROP_SALESFORCE_ID);
        model::write_extended_uri(&mut w, PROP_OUTLOOK_RELATED);
        w.close().close();
        w.empty(
            "m:CalendarView",
            &[
                ("MaxEntriesReturned", &max_entries.to_string()),
                ("StartDate", &model::fmt_datetime(&start)),
                ("EndDate", &model::fmt_datetime(&end)),
            ],
        );
        w.open("m:ParentFolderIds", &[]);
        FolderRef::calendar().write(&mut w);
        let m = self
            .call_one("FindItem", Some(mailbox), &w.finish())
            .await?;
        let events = answers::calendar_view(&m);
        // A CalendarView has no offset to page by: an answer that is not the whole window is
        // an error, never a silently shorter calendar.
        if !answers::paging(&m).includes_last {
            return Err(EwsError::Xml(format!(
                "CalendarView answered {} items and not the last of the window \
                 (IncludesLastItemInRange false): ask for a shorter window or more entries",
                events.len()
            )));
        }
        Ok(events)
    }

    /// FindItem in `folder` for items whose PublicStrings extended property `property` equals
    /// one of `values` (a Restriction of IsEqualTo terms joined by Or). Ids only: fetch the
    /// items with GetItem. One call per chunk of 50 values, so a Restriction stays small.
    pub async fn find_by_extended(
        &self,
        mailbox: &str,
        folder: &FolderRef,
        property: &str,
        values: &[String],
    ) -> Result<Vec<ItemId>, EwsError> {
        let pages = self
            .find_by_extended_pages(mailbox, folder, property, values, None)
            .await?;
        Ok(pages.iter().flat_map(answers::found_ids).collect())
    }

    /// The values of `property` on the items of `folder` that carry one of `values` and were
    /// created (DateTimeCreated) at or after `since`: what is there of items made since, say,
    /// in Deleted Items. The same calls as `find_by_extended`, no GetItem.
    pub async fn extended_values_created_since(
        &self,
        mailbox: &str,
        folder: &FolderRef,
        property: &str,
        values: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, EwsError> {
        let pages = self
            .find_by_extended_pages(mailbox, folder, property, values, Some(since))
            .await?;
        Ok(pages
            .iter()
            .flat_map(|m| answers::found_extended_values(m, property))
            .collect())
    }

    /// Every page of a FindItem by `property` (and, with `created_since`, by creation time).
    async fn find_by_extended_pages(
        &self,
        mailbox: &str,
        folder: &FolderRef,
        property: &str,
        values: &[String],
        created_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ResponseMessage>, EwsError> {
        let mut out = Vec::new();
        for chunk in values.chunks(50) {
            let mut offset = 0u64;
            // Pages of 1,000 (EWSFindCountLimit); 50 values hardly match more than a page,
            // but a server that never says it is done must not keep tether here.
            for page in 0.. {
                if page == MAX_FIND_PAGES {
                    return Err(EwsError::Xml(format!(
                        "FindItem never reported its last page ({MAX_FIND_PAGES} pages)"
                    )));
                }
                let m = self
                    .find_by_extended_page(mailbox, folder, property, chunk, created_since, offset)
                    .await?;
                let paging = answers::paging(&m);
                let listed = answers::found_ids(&m).len() as u64;
                out.push(m);
                if paging.includes_last {
                    break;
                }
                let next = paging.next_offset.unwrap_or(offset + listed);
                if next <= offset {
                    return Err(EwsError::Xml(
                        "FindItem answered a page that is not the last without moving on \
                         (IncludesLastItemInRange false, no items): the server is not making \
                         progress"
                            .into(),
                    ));
                }
                offset = next;
            }
        }
        Ok(out)
    }

    /// One page of `find_by_extended_pages`, from `offset`. With `created_since`, the items
    /// carry the property's value (the restriction then also asks DateTimeCreated ≥ it).
    async fn find_by_extended_page(
        &self,
        mailbox: &str,
        folder: &FolderRef,
        property: &str,
        chunk: &[String],
        created_since: Option<DateTime<Utc>>,
        offset: u64,
    ) -> Result<ResponseMessage, EwsError> {
        let mut w = Writer::new();
        w.open("m:FindItem", &[("Traversal", "Shallow")]);
        w.open("m:ItemShape", &[]).leaf("t:BaseShape", "IdOnly");
        if created_since.is_some() {
            w.open("t:AdditionalProperties", &[]);
            model::write_extended_uri(&mut w, property);
            w.close();
        }
        w.close();
        w.empty(
            "m:IndexedPageItemView",
            &[
                ("MaxEntriesReturned", "1000"),
                ("Offset", &offset.to_string()),
                ("BasePoint", "Beginning"),
            ],
        );
        w.open("m:Restriction", &[]);
        if let Some(since) = created_since {
            w.open("t:And", &[]);
            w.open("t:IsGreaterThanOrEqualTo", &[]);
            w.empty("t:FieldURI", &[("FieldURI", "item:DateTimeCreated")]);
            w.open("t:FieldURIOrConstant", &[])
                .empty("t:Constant", &[("Value", &model::fmt_datetime(&since))])
                .close();
            w.close();
        }
        if chunk.len() > 1 {
            w.open("t:Or", &[]);
        }
        for v in chunk {
            w.open("t:IsEqualTo", &[]);
            model::write_extended_uri(&mut w, property);
            w.open("t:FieldURIOrConstant", &[])
                .empty("t:Constant", &[("Value", v)])
                .close();
            w.close();
        }
        if chunk.len() > 1 {
            w.close();
        }
        if created_since.is_some() {
            w.close();
        }
        w.close();
        w.open("m:ParentFolderIds", &[]);
        folder.write(&mut w);
        self.call_one("FindItem", Some(mailbox), &w.finish()).await
    }

    /// The recurring master of an occurrence or exception.
    pub async fn recurring_master(
        &self,
        mailbox: &str,
        occurrence: &ItemId,
    ) -> Result<CalendarEvent, EwsError> {
        let mut w = Writer::new();
        w.open("m:GetItem", &[]);
        Self::item_shape(&mut w, EVENT_FIELDS);
        w.open("m:ItemIds", &[]);
        w.empty(
            "t:RecurringMasterItemId",
            &[("OccurrenceId", &occurrence.id)],
        );
        let m = self.call_one("GetItem", Some(mailbox), &w.finish()).await?;
        answers::recurring_master(&m)
    }

    // ---------------------------------------------------------------------------------
    // Items

    fn item_shape(w: &mut Writer, fields: &[&str]) {
        w.open("m:ItemShape", &[]);
        w.leaf("t:BaseShape", "IdOnly");
        w.leaf("t:BodyType", "Text");
        w.open("t:AdditionalProperties", &[]);
        for f in fields {
            w.empty("t:FieldURI", &[("FieldURI", f)]);
        }
        model::write_extended_uri(w, PROP_SALESFORCE_ID);
        model::write_extended_uri(w, PROP_OUTLOOK_RELATED);
        w.close().close();
    }

    async fn get_items(
        &self,
        mailbox: &str,
        ids: &[ItemId],
        fields: &[&str],
    ) -> Result<Vec<ItemResult<Item>>, EwsError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.opts.batch_size) {
            let mut w = Writer::new();
            w.open("m:GetItem", &[]);
            Self::item_shape(&mut w, fields);
            w.open("m:ItemIds", &[]);
            for id in chunk {
                // No ChangeKey: GetItem must return the current version, not fail on an
                // older one.
                w.empty("t:ItemId", &[("Id", &id.id)]);
            }
            let msgs = self
                .call_messages("GetItem", Some(mailbox), &w.finish(), chunk.len())
                .await?;
            out.extend(answers::items(&msgs));
        }
        Ok(out)
    }

    /// GetItem with the IdOnly shape, in batches: each item's current id and ChangeKey, or
    /// why not (ErrorItemNotFound when it is gone), one result per id, in order.
    pub async fn get_item_ids(
        &self,
        mailbox: &str,
        ids: &[ItemId],
    ) -> Result<Vec<ItemResult<ItemId>>, EwsError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.opts.batch_size) {
            let mut w = Writer::new();
            w.open("m:GetItem", &[]);
            w.open("m:ItemShape", &[])
                .leaf("t:BaseShape", "IdOnly")
                .close();
            w.open("m:ItemIds", &[]);
            for id in chunk {
                w.empty("t:ItemId", &[("Id", &id.id)]);
            }
            let msgs = self
                .call_messages("GetItem", Some(mailbox), &w.finish(), chunk.len())
                .await?;
            out.extend(answers::ids(&msgs));
        }
        Ok(out)
    }

    /// GetItem for contacts, in batches; one result per id, in order.
    pub async fn get_contacts(
        &self,
        mailbox: &str,
        ids: &[ItemId],
    ) -> Result<Vec<ItemResult<Contact>>, EwsError> {
        Ok(self
            .get_items(mailbox, ids, CONTACT_FIELDS)
            .await?
            .into_iter()
            .map(|r| match r? {
                Item::Contact(c) => Ok(*c),
                _ => Err(ItemError {
                    code: "ErrorItemNotFound".into(),
                    message: "the item is not a contact".into(),
                }),
            })
            .collect())
    }

    /// GetItem for calendar items, in batches; one result per id, in order.
    pub async fn get_events(
        &self,
        mailbox: &str,
        ids: &[ItemId],
    ) -> Result<Vec<ItemResult<CalendarEvent>>, EwsError> {
        Ok(self
            .get_items(mailbox, ids, EVENT_FIELDS)
            .await?
            .into_iter()
            .map(|r| match r? {
                Item::Event(e) => Ok(*e),
                _ => Err(ItemError {
                    code: "ErrorItemNotFound".into(),
                    message: "the item is not a calendar item".into(),
                }),
            })
            .collect())
    }

    /// CreateItem for contacts in `folder`, in batches.
    pub async fn create_contacts(
        &self,
        mailbox: &str,
        folder: &FolderRef,
        contacts: &[Contact],
    ) -> Result<Vec<ItemResult<ItemId>>, EwsError> {
        let mut out = Vec::with_capacity(contacts.len());
        for chunk in contacts.chunks(self.opts.batch_size) {
            let mut w = Writer::new();
            w.open("m:CreateItem", &[]);
            w.open("m:SavedItemFolderId", &[]);
            folder.write(&mut w);
            w.close();
            w.open("m:Items", &[]);
            for c in chunk {
                model::write_contact(&mut w, c, model::Mode::Request);
            }
            let msgs = self
                .call_messages("CreateItem", Some(mailbox), &w.finish(), chunk.len())
                .await?;
            out.extend(answers::ids(&msgs));
        }
        Ok(out)
    }

    /// CreateItem for events in the default calendar, in batches, never sending invitations.
    pub async fn create_events(
        &self,
        mailbox: &str,
        events: &[CalendarEvent],
    ) -> Result<Vec<ItemResult<ItemId>>, EwsError> {
        let mut out = Vec::with_capacity(events.len());
        for chunk in events.chunks(self.opts.batch_size) {
            let mut w = Writer::new();
            w.open("m:CreateItem", &[("SendMeetingInvitations", "SendToNone")]);
            w.open("m:SavedItemFolderId", &[]);
            FolderRef::calendar().write(&mut w);
            w.close();
            w.open("m:Items", &[]);
            for e in chunk {
                model::write_event(&mut w, e, model::Mode::Request);
            }
            let msgs = self
                .call_messages("CreateItem", Some(mailbox), &w.finish(), chunk.len())
                .await?;
            out.extend(answers::ids(&msgs));
        }
        Ok(out)
    }

    fn set_or_delete(
        w: &mut Writer,
        uri: (&str, Option<&str>),
        present: bool,
        write_value: impl FnOnce(&mut Writer),
    ) {
        let (field, index) = uri;
        let write_uri = |w: &mut Writer| match index {
            Some(i) => {
                w.empty(
                    "t:IndexedFieldURI",
                    &[("FieldURI", field), ("FieldIndex", i)],
                );
            }
            None => {
                w.empty("t:FieldURI", &[("FieldURI", field)]);
            }
        };
        if present {
            w.open("t:SetItemField", &[]);
            write_uri(w);
            write_value(w);
            w.close();
        } else {
            w.open("t:DeleteItemField", &[]);
            write_uri(w);
            w.close();
        }
    }

    fn contact_updates(w: &mut Writer, c: &Contact) {
        let simple: [(&str, bool); 13] = [
            ("item:Body", c.notes.is_some()),
            ("item:Categories", !c.categories.is_empty()),
            ("contacts:FileAs", c.file_as.is_some()),
            ("contacts:DisplayName", c.display_name.is_some()),
            ("contacts:GivenName", c.given_name.is_some()),
            ("contacts:MiddleName", c.middle_name.is_some()),
            ("contacts:Nickname", c.nickname.is_some()),
            ("contacts:CompanyName", c.company_name.is_some()),
            ("contacts:AssistantName", c.assistant_name.is_some()),
            ("contacts:Birthday", c.birthday.is_some()),
            ("contacts:Department", c.department.is_some()),
            ("contacts:JobTitle", c.job_title.is_some()),
            ("contacts:Surname", c.surname.is_some()),
        ];
        for (f, present) in simple {
            Self::set_or_delete(w, (f, None), present, |w| {
                model::write_contact_field(w, c, f)
            });
        }
        for (i, key) in EMAIL_KEYS.iter().enumerate() {
            let f = format!("contacts:EmailAddress/{key}");
            Self::set_or_delete(
                w,
                ("contacts:EmailAddress", Some(key)),
                c.emails[i].is_some(),
                |w| model::write_contact_field(w, c, &f),
            );
        }
        let mut phone_keys: Vec<&str> = MAPPED_PHONE_KEYS.to_vec();
        for k in c.phones.keys() {
            if !phone_keys.contains(&k.as_str()) {
                phone_keys.push(k);
            }
        }
        for key in phone_keys {
            let f = format!("contacts:PhoneNumber/{key}");
            Self::set_or_delete(
                w,
                ("contacts:PhoneNumber", Some(key)),
                c.phones.contains_key(key),
                |w| model::write_contact_field(w, c, &f),
            );
        }
        for key in ADDRESS_KEYS {
            for part in ADDRESS_PARTS {
                let uri = format!("contacts:PhysicalAddress:{part}");
                let f = format!("{uri}/{key}");
                let present = c.addresses.get(key).and_then(|a| a.part(part)).is_some();
                Self::set_or_delete(w, (&uri, Some(key)), present, |w| {
                    model::write_contact_field(w, c, &f)
                });
            }
        }
        for (name, value) in &c.extended {
            w.open("t:SetItemField", &[]);
            model::write_extended_uri(w, name);
            w.open("t:Contact", &[]);
            model::write_extended(w, name, value);
            w.close().close();
        }
    }

    fn event_updates(w: &mut Writer, e: &CalendarEvent) {
        // Time zones first: Exchange interprets Start/End and all-day with them.
        let fields: [(&str, bool); 14] = [
            ("calendar:StartTimeZone", e.start_time_zone.is_some()),
            (
                "calendar:EndTimeZone",
                e.start_time_zone.is_some() || e.end_time_zone.is_some(),
            ),
            ("item:Subject", e.subject.is_some()),
            ("item:Sensitivity", e.sensitivity.is_some()),
            ("item:Body", e.body.is_some()),
            ("item:Categories", !e.categories.is_empty()),
            ("calendar:Start", true),
            ("calendar:End", true),
            ("calendar:IsAllDayEvent", true),
            ("calendar:LegacyFreeBusyStatus", e.free_busy.is_some()),
            ("calendar:Location", e.location.is_some()),
            (
                "calendar:RequiredAttendees",
                !e.required_attendees.is_empty(),
            ),
            (
                "calendar:OptionalAttendees",
                !e.optional_attendees.is_empty(),
            ),
            ("calendar:Recurrence", e.recurrence.is_some()),
        ];
        for (f, present) in fields {
            // Time zones are only ever set; an event keeps its zone otherwise.
            if !present && f.ends_with("TimeZone") {
                continue;
            }
            Self::set_or_delete(w, (f, None), present, |w| model::write_event_field(w, e, f));
        }
        for (name, value) in &e.extended {
            w.open("t:SetItemField", &[]);
            model::write_extended_uri(w, name);
            w.open("t:CalendarItem", &[]);
            model::write_extended(w, name, value);
            w.close().close();
        }
    }

    async fn update_items<T>(
        &self,
        mailbox: &str,
        items: &[(ItemId, T)],
        calendar: bool,
        updates: fn(&mut Writer, &T),
    ) -> Result<Vec<ItemResult<ItemId>>, EwsError> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(self.opts.batch_size) {
            let mut w = Writer::new();
            let mut attrs = vec![("ConflictResolution", self.opts.conflict_resolution.as_str())];
            if calendar {
                attrs.push(("SendMeetingInvitationsOrCancellations", "SendToNone"));
            }
            w.open("m:UpdateItem", &attrs);
            w.open("m:ItemChanges", &[]);
            for (id, item) in chunk {
                w.open("t:ItemChange", &[]);
                id.write(&mut w, "t:ItemId");
                w.open("t:Updates", &[]);
                updates(&mut w, item);
                w.close().close();
            }
            let msgs = self
                .call_messages("UpdateItem", Some(mailbox), &w.finish(), chunk.len())
                .await?;
            out.extend(answers::ids(&msgs));
        }
        Ok(out)
    }

    /// UpdateItem for contacts: every mapped property is set to the given value, or deleted
    /// when the record has none. The ItemId must carry the ChangeKey the decision was based
    /// on; a stale one comes back as ErrorIrresolvableConflict (`ItemError::is_conflict`):
    /// refetch and decide again.
    pub async fn update_contacts(
        &self,
        mailbox: &str,
        items: &[(ItemId, Contact)],
    ) -> Result<Vec<ItemResult<ItemId>>, EwsError> {
        self.update_items(mailbox, items, false, Self::contact_updates)
            .await
    }

    /// UpdateItem for events, never sending updates to attendees.
    pub async fn update_events(
        &self,
        mailbox: &str,
        items: &[(ItemId, CalendarEvent)],
    ) -> Result<Vec<ItemResult<ItemId>>, EwsError> {
        self.update_items(mailbox, items, true, Self::event_updates)
            .await
    }

    /// DeleteItem (to Deleted Items), in batches, never sending cancellations.
    pub async fn delete_items(
        &self,
        mailbox: &str,
        ids: &[ItemId],
    ) -> Result<Vec<ItemResult<()>>, EwsError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.opts.batch_size) {
            let mut w = Writer::new();
            w.open(
                "m:DeleteItem",
                &[
                    ("DeleteType", "MoveToDeletedItems"),
                    ("SendMeetingCancellations", "SendToNone"),
                ],
            );
            w.open("m:ItemIds", &[]);
            for id in chunk {
                w.empty("t:ItemId", &[("Id", &id.id)]);
            }
            let msgs = self
                .call_messages("DeleteItem", Some(mailbox), &w.finish(), chunk.len())
                .await?;
            out.extend(answers::deleted(&msgs));
        }
        Ok(out)
    }
}

/// Reading each answer the client asks for, apart from the I/O (so that hostile answers can
/// be fuzzed without a server): each takes a response message or body and gives what the
/// operation returns, or why the answer cannot be used.
pub(crate) mod answers {
    use super::*;

    fn folder_info(el: &Element) -> Option<FolderInfo> {
        Some(FolderInfo {
            id: ItemId::parse(el.child(NS_T, "FolderId")?)?,
            parent: el.child(NS_T, "ParentFolderId").and_then(ItemId::parse),
            display_name: el.child_text(NS_T, "DisplayName").unwrap_or("").to_string(),
            folder_class: el.child_text(NS_T, "FolderClass").map(str::to_string),
            synced_by: model::parse_extended(el).remove(PROP_SYNCED_BY),
        })
    }

    /// GetFolder.
    pub(crate) fn folder(m: &ResponseMessage) -> Result<FolderInfo, EwsError> {
        m.element
            .child(NS_M, "Folders")
            .and_then(|f| f.first_child())
            .and_then(folder_info)
            .ok_or_else(|| EwsError::Xml("GetFolder answer without a folder".into()))
    }

    /// GetFolder of a folder and of Deleted Items (in that order): the folder, unless it is
    /// gone or in Deleted Items. A mailbox without Deleted Items cannot hold it there.
    pub(crate) fn folder_unless_deleted(
        msgs: &[ResponseMessage],
    ) -> Result<Option<FolderInfo>, EwsError> {
        let [folder, deleted_items] = msgs else {
            return Err(EwsError::Xml("GetFolder: two answers expected".into()));
        };
        if folder.is_error() {
            let e = EwsError::Response {
                code: folder.code.clone(),
                message: folder.text.clone(),
            };
            // A malformed id (a damaged cursor) names no folder either.
            return if e.is_folder_missing() || e.code() == Some("ErrorInvalidIdMalformed") {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let folder = self::folder(folder)?;
        let in_deleted_items = !deleted_items.is_error()
            && self::folder(deleted_items)
                .is_ok_and(|d| folder.parent.as_ref().is_some_and(|p| p.id == d.id.id));
        Ok((!in_deleted_items).then_some(folder))
    }

    /// FindFolder: the folder called `name`, if listed on this page.
    pub(crate) fn found_folder(m: &ResponseMessage, name: &str) -> Option<FolderInfo> {
        m.element
            .path(&[(NS_M, "RootFolder"), (NS_T, "Folders")])
            .and_then(|f| {
                f.children
                    .iter()
                    .filter_map(folder_info)
                    .find(|f| f.display_name.eq_ignore_ascii_case(name))
            })
    }

    /// CreateFolder: the new folder's id.
    pub(crate) fn created_folder(m: &ResponseMessage) -> Option<ItemId> {
        m.element
            .child(NS_M, "Folders")
            .and_then(|f| f.first_child())
            .and_then(|f| ItemId::parse(f.child(NS_T, "FolderId")?))
    }

    /// SyncFolderItems.
    pub(crate) fn sync_page(m: &ResponseMessage) -> Result<SyncPage, EwsError> {
        let sync_state = m
            .element
            .child_text(NS_M, "SyncState")
            .ok_or_else(|| EwsError::Xml("SyncFolderItems answer without SyncState".into()))?
            .trim()
            .to_string();
        let includes_last = m
            .element
            .child_text(NS_M, "IncludesLastItemInRange")
            .and_then(xml::parse_bool)
            .ok_or_else(|| {
                EwsError::Xml("SyncFolderItems answer without IncludesLastItemInRange".into())
            })?;
        let listed = m
            .element
            .child(NS_M, "Changes")
            .map_or(0, |l| l.children.iter().filter(|c| c.ns == NS_T).count());
        if listed == 0 && !includes_last {
            // Following such a page would never end.
            return Err(EwsError::Xml(
                "SyncFolderItems answered a page with no changes that is not the last \
                 (IncludesLastItemInRange false): the server is not making progress"
                    .into(),
            ));
        }
        let mut changes = Vec::new();
        if let Some(list) = m.element.child(NS_M, "Changes") {
            for c in list.children.iter().filter(|c| c.ns == NS_T) {
                let kind = match c.name.as_str() {
                    "Create" => ChangeKind::Create,
                    "Update" => ChangeKind::Update,
                    "Delete" => ChangeKind::Delete,
                    "ReadFlagChange" => ChangeKind::ReadFlagChange,
                    _ => continue,
                };
                let (item_kind, id_el) = match c.first_child() {
                    Some(i) if i.name == "ItemId" => (ItemKind::Other, Some(i)),
                    Some(i) => (
                        match i.name.as_str() {
                            "Contact" => ItemKind::Contact,
                            "CalendarItem" => ItemKind::CalendarItem,
                            _ => ItemKind::Other,
                        },
                        i.child(NS_T, "ItemId"),
                    ),
                    None => (ItemKind::Other, None),
                };
                if let Some(item_id) = id_el.and_then(ItemId::parse) {
                    changes.push(SyncChange {
                        kind,
                        item_kind,
                        item_id,
                    });
                }
            }
        }
        Ok(SyncPage {
            changes,
            sync_state,
            includes_last,
            from_scratch: false,
        })
    }

    /// Where a FindItem or FindFolder answer's page ends (its RootFolder's paging
    /// attributes): whether it holds the last item, and the offset of the next page.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Paging {
        pub(crate) includes_last: bool,
        pub(crate) next_offset: Option<u64>,
    }

    pub(crate) fn paging(m: &ResponseMessage) -> Paging {
        let root = m.element.child(NS_M, "RootFolder");
        let attr = |name: &str| root.and_then(|r| r.attr(name)).map(str::trim);
        Paging {
            // Exchange always says; an answer that does not is taken as complete.
            includes_last: attr("IncludesLastItemInRange")
                .and_then(xml::parse_bool)
                .unwrap_or(true),
            next_offset: attr("IndexedPagingOffset").and_then(|o| o.parse().ok()),
        }
    }

    /// FindItem with a CalendarView: the events on this page.
    pub(crate) fn calendar_view(m: &ResponseMessage) -> Vec<CalendarEvent> {
        m.element
            .path(&[(NS_M, "RootFolder"), (NS_T, "Items")])
            .map(|items| {
                items
                    .children
                    .iter()
                    .filter_map(model::parse_event)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// FindItem with IdOnly: the ids listed on this page.
    pub(crate) fn found_ids(m: &ResponseMessage) -> Vec<ItemId> {
        m.element
            .path(&[(NS_M, "RootFolder"), (NS_T, "Items")])
            .map(|items| {
                items
                    .children
                    .iter()
                    .filter_map(|i| i.child(NS_T, "ItemId").and_then(ItemId::parse))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// FindItem whose shape asked for the PublicStrings property `property`: its value on
    /// each item listed on this page that has it.
    pub(crate) fn found_extended_values(m: &ResponseMessage, property: &str) -> Vec<String> {
        let Some(items) = m.element.path(&[(NS_M, "RootFolder"), (NS_T, "Items")]) else {
            return Vec::new();
        };
        items
            .children
            .iter()
            .filter_map(|i| model::parse_extended(i).remove(property))
            .collect()
    }

    /// GetItem for a RecurringMasterItemId.
    pub(crate) fn recurring_master(m: &ResponseMessage) -> Result<CalendarEvent, EwsError> {
        m.element
            .child(NS_M, "Items")
            .and_then(|i| i.first_child())
            .and_then(model::parse_event)
            .ok_or_else(|| EwsError::Xml("GetItem answer without a calendar item".into()))
    }

    /// GetItem: one item or error per message.
    pub(crate) fn items(msgs: &[ResponseMessage]) -> Vec<ItemResult<Item>> {
        msgs.iter()
            .map(|m| {
                if m.is_error() {
                    return Err(m.error());
                }
                match m.element.child(NS_M, "Items").and_then(|i| i.first_child()) {
                    Some(el) => Ok(model::parse_item(el)),
                    None => Err(ItemError {
                        code: "ErrorItemNotFound".into(),
                        message: "empty Items".into(),
                    }),
                }
            })
            .collect()
    }

    /// CreateItem and UpdateItem: the (new) id of each item, or its error.
    pub(crate) fn ids(msgs: &[ResponseMessage]) -> Vec<ItemResult<ItemId>> {
        msgs.iter()
            .map(|m| {
                if m.is_error() {
                    return Err(m.error());
                }
                m.element
                    .child(NS_M, "Items")
                    .and_then(|i| i.first_child())
                    .and_then(|i| i.child(NS_T, "ItemId"))
                    .and_then(ItemId::parse)
                    .ok_or(ItemError {
                        code: "ErrorInvalidResponse".into(),
                        message: "no ItemId in the answer".into(),
                    })
            })
            .collect()
    }

    /// DeleteItem.
    pub(crate) fn deleted(msgs: &[ResponseMessage]) -> Vec<ItemResult<()>> {
        msgs.iter()
            .map(|m| if m.is_error() { Err(m.error()) } else { Ok(()) })
            .collect()
    }

    /// A POX Autodiscover answer (HTTP 200).
    pub(crate) fn autodiscover_pox(bytes: &[u8]) -> Result<Discovered, EwsError> {
        let root = xml::parse(bytes, Limits::default()).map_err(|e| EwsError::Xml(e.0))?;
        let resp = root
            .children
            .iter()
            .find(|c| c.name == "Response")
            .ok_or_else(|| EwsError::Xml("Autodiscover answer without Response".into()))?;
        if let Some(err) = resp.children.iter().find(|c| c.name == "Error") {
            let code = err
                .children
                .iter()
                .find(|c| c.name == "ErrorCode")
                .map(|c| c.text.clone())
                .unwrap_or_default();
            let msg = err
                .children
                .iter()
                .find(|c| c.name == "Message")
                .map(|c| c.text.clone())
                .unwrap_or_default();
            return Err(EwsError::Autodiscover(format!("error {code}: {msg}")));
        }
        let account = resp
            .child(NS_AD_RESP_A, "Account")
            .ok_or_else(|| EwsError::Xml("Autodiscover answer without Account".into()))?;
        match account.child_text(NS_AD_RESP_A, "Action").map(str::trim) {
            Some("redirectAddr") => account
                .child_text(NS_AD_RESP_A, "RedirectAddr")
                .map(|a| Discovered::RedirectAddr(a.trim().to_string()))
                .ok_or_else(|| EwsError::Xml("redirectAddr without an address".into())),
            Some("redirectUrl") => account
                .child_text(NS_AD_RESP_A, "RedirectUrl")
                .and_then(|u| Url::parse(u.trim()).ok())
                .map(Discovered::RedirectUrl)
                .ok_or_else(|| EwsError::Xml("redirectUrl without a URL".into())),
            _ => {
                let protos: Vec<&Element> =
                    account.children_named(NS_AD_RESP_A, "Protocol").collect();
                // EXPR is the outside-facing endpoint; EXCH the internal one.
                for kind in ["EXPR", "EXCH"] {
                    if let Some(u) = protos
                        .iter()
                        .filter(|p| p.child_text(NS_AD_RESP_A, "Type").map(str::trim) == Some(kind))
                        .find_map(|p| p.child_text(NS_AD_RESP_A, "EwsUrl"))
                        .and_then(|u| Url::parse(u.trim()).ok())
                    {
                        return Ok(Discovered::Url(u));
                    }
                }
                Err(EwsError::Autodiscover(
                    "the answer carries no EwsUrl".into(),
                ))
            }
        }
    }

    /// A SOAP Autodiscover GetUserSettings answer (HTTP 200).
    pub(crate) fn autodiscover_soap(bytes: &[u8]) -> Result<Discovered, EwsError> {
        let root = xml::parse(bytes, Limits::default()).map_err(|e| EwsError::Xml(e.0))?;
        let user = root
            .children
            .iter()
            .find(|c| c.name == "Body")
            .and_then(|b| b.first_child())
            .and_then(|m| m.child(NS_AD_SOAP, "Response"))
            .and_then(|r| r.child(NS_AD_SOAP, "UserResponses"))
            .and_then(|u| u.child(NS_AD_SOAP, "UserResponse"))
            .ok_or_else(|| EwsError::Xml("GetUserSettings answer without UserResponse".into()))?;
        let code = user
            .child_text(NS_AD_SOAP, "ErrorCode")
            .unwrap_or("")
            .trim();
        let target = user
            .child_text(NS_AD_SOAP, "RedirectTarget")
            .map(|t| t.trim().to_string());
        match code {
            "NoError" => {
                let settings = user
                    .child(NS_AD_SOAP, "UserSettings")
                    .map(|s| {
                        s.children_named(NS_AD_SOAP, "UserSetting")
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                for name in ["ExternalEwsUrl", "InternalEwsUrl"] {
                    if let Some(u) = settings
                        .iter()
                        .find(|s| s.child_text(NS_AD_SOAP, "Name").map(str::trim) == Some(name))
                        .and_then(|s| s.child_text(NS_AD_SOAP, "Value"))
                        .and_then(|v| Url::parse(v.trim()).ok())
                    {
                        return Ok(Discovered::Url(u));
                    }
                }
                Err(EwsError::Autodiscover(
                    "GetUserSettings returned no EWS URL".into(),
                ))
            }
            "RedirectAddress" => target
                .map(Discovered::RedirectAddr)
                .ok_or_else(|| EwsError::Xml("RedirectAddress without a target".into())),
            "RedirectUrl" => target
                .and_then(|t| Url::parse(&t).ok())
                .map(Discovered::RedirectUrl)
                .ok_or_else(|| EwsError::Xml("RedirectUrl without a target".into())),
            other => Err(EwsError::Autodiscover(format!("GetUserSettings: {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::canned::{Canned, REP, response};
    use chrono::NaiveDate;

    fn find_items(root_attrs: &str, items: &str) -> String {
        response(
            "FindItem",
            &format!(
                r#"<m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder {root_attrs}><t:Items>{items}</t:Items></m:RootFolder></m:FindItemResponseMessage>"#
            ),
        )
    }

    fn contact_id(n: u32) -> String {
        format!(
            r#"<t:Contact><t:ItemId Id="AAMkADk0N2E4OWM5LWY1NjgtNDMyZi1hNDMyLTMzYjE2ZjZhMzIxMABGAAAAAACKu3EhvuDvQZb9mLyWwOnTBwDwsfS1D0n+SJH9c5R0Sj0yAAAAAAEOAADwsfS1D0n+SJH9c5R0Sj0yAAA{n:04}AAA=" ChangeKey="EQAAABYAAADwsfS1D0n+SJH9c5R0Sj0yAAA{n:04}"/></t:Contact>"#
        )
    }

    /// Exchange Online's answer to a CalendarView of one all-day event in India, carrying
    /// only the properties the request asked for (as a real server does).
    fn india_all_day(request: &str) -> String {
        let zone = if request.contains(r#"FieldURI="calendar:StartTimeZone""#) {
            r#"<t:StartTimeZone Name="(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi" Id="India Standard Time"/>"#
        } else {
            ""
        };
        find_items(
            r#"TotalItemsInView="1" IncludesLastItemInRange="true""#,
            &format!(
                r#"<t:CalendarItem><t:ItemId Id="AAMkAGE1M2IyNGNmLWI4MjctNDM3Ni04ZjI5LTE1ZjVhM2I1YzVjZQFRAAgI2Rwu9nNAAEYAAAAA" ChangeKey="DwAAABYAAABeqKvJHFz9QqWxUpbkILXhAAAvBMQy"/><t:Subject>Diwali</t:Subject><t:Sensitivity>Normal</t:Sensitivity><t:Start>2026-11-07T18:30:00Z</t:Start><t:End>2026-11-08T18:30:00Z</t:End><t:IsAllDayEvent>true</t:IsAllDayEvent><t:LegacyFreeBusyStatus>Free</t:LegacyFreeBusyStatus><t:CalendarItemType>Single</t:CalendarItemType>{zone}</t:CalendarItem>"#
            ),
        )
    }

    #[tokio::test]
    async fn calendar_view_asks_for_start_time_zone_so_an_india_all_day_event_keeps_its_day() {
        let server = Canned::default();
        server.answer_with("FindItem", india_all_day);
        let client = server.client().await;
        let start = "2026-11-01T00:00:00Z".parse().unwrap();
        let end = "2026-12-01T00:00:00Z".parse().unwrap();
        let view = client.calendar_view(REP, start, end, 100).await.unwrap();
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        assert_eq!(view[0].all_day_dates(), Ok(Some((d(8), d(9)))));
    }

    #[tokio::test]
    async fn find_by_extended_follows_includes_last_item_in_range_and_the_paging_offset() {
        let server = Canned::default();
        server
            .answer(
                "FindItem",
                &find_items(
                    r#"IndexedPagingOffset="2" TotalItemsInView="3" IncludesLastItemInRange="false""#,
                    &(contact_id(1) + &contact_id(2)),
                ),
            )
            .answer(
                "FindItem",
                &find_items(
                    r#"IndexedPagingOffset="3" TotalItemsInView="3" IncludesLastItemInRange="true""#,
                    &contact_id(3),
                ),
            );
        let client = server.client().await;
        let ids = client
            .find_by_extended(
                REP,
                &FolderRef::contacts(),
                PROP_SALESFORCE_ID,
                &["003000000000001AAA".to_string()],
            )
            .await
            .unwrap();
        assert_eq!(ids.len(), 3);
        let offsets: Vec<bool> = server
            .requests()
            .iter()
            .map(|(_, body)| body.contains(r#"Offset="2""#))
            .collect();
        assert_eq!(offsets, [false, true], "the second page starts at offset 2");
    }

    #[tokio::test]
    async fn a_find_page_that_is_not_the_last_but_lists_nothing_is_an_error_not_a_loop() {
        let server = Canned::default();
        server.answer(
            "FindItem",
            &find_items(
                r#"IndexedPagingOffset="0" TotalItemsInView="5" IncludesLastItemInRange="false""#,
                "",
            ),
        );
        let client = server.client().await;
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            client.find_by_extended(
                REP,
                &FolderRef::contacts(),
                PROP_SALESFORCE_ID,
                &["003000000000001AAA".to_string()],
            ),
        )
        .await
        .expect("no endless loop");
        assert!(
            matches!(&got, Err(EwsError::Xml(m)) if m.contains("not making progress")),
            "{got:?}"
        );
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_calendar_view_that_is_not_the_whole_window_is_an_error() {
        let server = Canned::default();
        server.answer(
            "FindItem",
            &find_items(
                r#"TotalItemsInView="2" IncludesLastItemInRange="false""#,
                "",
            ),
        );
        let client = server.client().await;
        let start = "2026-11-01T00:00:00Z".parse().unwrap();
        let end = "2026-12-01T00:00:00Z".parse().unwrap();
        let got = client.calendar_view(REP, start, end, 1).await;
        assert!(
            matches!(&got, Err(EwsError::Xml(m)) if m.contains("IncludesLastItemInRange false")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn an_empty_sync_page_that_is_not_the_last_is_an_error_not_a_loop() {
        let server = Canned::default();
        server.answer(
            "SyncFolderItems",
            &response(
                "SyncFolderItems",
                r#"<m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes/></m:SyncFolderItemsResponseMessage>"#,
            ),
        );
        let client = server.client().await;
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            client.sync_folder(REP, &FolderRef::calendar(), None, 512, |_| {}),
        )
        .await
        .expect("no endless loop");
        assert!(
            matches!(&got, Err(EwsError::Xml(m)) if m.contains("not making progress")),
            "{got:?}"
        );
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn find_folder_not_found_on_a_partial_page_is_an_error_not_absent() {
        let server = Canned::default();
        server.answer(
            "FindFolder",
            &response(
                "FindFolder",
                r#"<m:FindFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder IndexedPagingOffset="1" TotalItemsInView="2" IncludesLastItemInRange="false"><t:Folders><t:ContactsFolder><t:FolderId Id="AAMkADk0AAA=" ChangeKey="AQAAAA=="/><t:DisplayName>Suppliers</t:DisplayName></t:ContactsFolder></t:Folders></m:RootFolder></m:FindFolderResponseMessage>"#,
            ),
        );
        let client = server.client().await;
        let got = client
            .find_folder(REP, &FolderRef::contacts(), "Salesforce_Sync")
            .await;
        assert!(matches!(got, Err(EwsError::Xml(_))), "{got:?}");
    }
}
