//! Salesforce REST client: OAuth flows, SOQL reads streamed page by page, sObject Collections
//! writes with per-record outcomes (and Bulk API 2.0 ingest jobs for large ones, [`bulk`]),
//! replication reads (getUpdated / getDeleted), describe checks, API-limit accounting,
//! bounded retries through the injectable clock, and a count of every HTTP call by kind.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether::salesforce::SfError> {
//! use tether::salesforce::{Auth, ClientOptions, RecordOutcome, SalesforceClient};
//! use tether::secret::Secret;
//! let url = url::Url::parse("https://example.my.salesforce.com").expect("valid URL");
//! let auth = Auth::ClientCredentials {
//!     client_id: "3MVG9…".into(),
//!     client_secret: Secret::new("from ${env:SF_SECRET}"),
//! };
//! let sf = SalesforceClient::new(ClientOptions::new(url, auth))?;
//! let watermark = chrono::Utc::now() - chrono::Duration::hours(1);
//! let mut pages = sf.changes_since("Contact", &["Email", "OwnerId"], watermark, true)?;
//! while let Some(page) = pages.next_page().await? {
//!     // sort records to reps by OwnerId …
//! #   let _ = page;
//! }
//! let report = sf.create("Contact", &[]).await;
//! for outcome in &report.outcomes {
//!     if let RecordOutcome::Ambiguous { .. } = outcome { /* journal: look up before retrying */ }
//! }
//! # Ok(()) }
//! ```

pub mod bulk;
pub mod connector;
mod csv;
#[cfg(test)]
mod golden;
pub mod ids;
pub mod metadata;
mod ops;
pub mod soql;

pub use ops::{
    ApiUsage, AppUsage, DeleteDetection, DeletedIds, DeletedRecords, FieldInfo, FieldUse,
    LimitValue, ObjectDescribe, QueryPages, RecordError, RecordOutcome, UpdatedIds, WriteReport,
};

use crate::clock::{Clock, SystemClock};
use crate::mutex::lock;
use crate::net::{BodyError, certificate_problem, describe_request_error};
use crate::secret::Secret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// How tether authenticates to the org.
#[derive(Debug, Clone)]
pub enum Auth {
    /// RS256 assertion signed with the connected app's private key (PEM, PKCS#1 or PKCS#8).
    JwtBearer {
        client_id: String,
        username: String,
        private_key_pem: Secret,
    },
    /// Against the My Domain host (the instance URL), credentials sent as HTTP Basic.
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
    RefreshToken {
        client_id: String,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    },
    /// Blocked by default in newer orgs; `password` includes the security token if one is needed.
    UsernamePassword {
        client_id: String,
        client_secret: Secret,
        username: String,
        password: Secret,
    },
    /// A token minted elsewhere; it cannot be renewed, so a 401 ends the run.
    AccessToken { token: Secret },
}

impl Auth {
    pub fn flow(&self) -> &'static str {
        match self {
            Auth::JwtBearer { .. } => "jwt_bearer",
            Auth::ClientCredentials { .. } => "client_credentials",
            Auth::RefreshToken { .. } => "refresh_token",
            Auth::UsernamePassword { .. } => "username_password",
            Auth::AccessToken { .. } => "access_token",
        }
    }
}

/// Bounded exponential backoff with jitter for 5xx, timeouts and connection errors.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Total time one call may spend waiting between attempts.
    pub max_total_delay: Duration,
    /// Extra rounds for records that failed with UNABLE_TO_LOCK_ROW.
    pub lock_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_total_delay: Duration::from_secs(120),
            lock_retries: 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The org's My Domain URL, e.g. https://awcomputing.my.salesforce.com.
    pub instance_url: Url,
    /// https://login.salesforce.com (production) or https://test.salesforce.com (sandbox).
    pub login_url: Url,
    /// e.g. "62.0".
    pub api_version: String,
    pub auth: Auth,
    /// Per HTTP request.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Share (0–1] of DailyApiRequests Max that tether may use; the run stops before it.
    pub api_budget: Option<f64>,
    pub max_response_bytes: usize,
    /// Query page size hint (Sforce-Query-Options: batchSize, 200–2,000).
    pub query_batch_size: Option<u32>,
    /// Longest URL-encoded SOQL statement for chunked `IN (…)` queries.
    pub max_query_chars: usize,
    /// PEM file of private certificate authorities to trust besides the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Records a write phase needs before it goes through Bulk API 2.0 ingest jobs rather
    /// than sObject Collections; None: never (see [`bulk::DEFAULT_BULK_THRESHOLD`]).
    pub bulk_threshold: Option<usize>,
    /// Longest wait for an ingest job to finish before it is aborted (see
    /// [`bulk::DEFAULT_BULK_MAX_WAIT`]).
    pub bulk_max_wait: Duration,
}

impl ClientOptions {
    pub fn new(instance_url: Url, auth: Auth) -> ClientOptions {
        ClientOptions {
            instance_url,
            login_url: Url::parse("https://login.salesforce.com").expect("constant URL parses"),
            api_version: "62.0".into(),
            auth,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            api_budget: None,
            max_response_bytes: 64 * 1024 * 1024,
            query_batch_size: None,
            max_query_chars: soql::DEFAULT_MAX_QUERY_CHARS,
            ca_file: None,
            bulk_threshold: Some(bulk::DEFAULT_BULK_THRESHOLD),
            bulk_max_wait: bulk::DEFAULT_BULK_MAX_WAIT,
        }
    }
}

/// A request-level error as Salesforce sends it: `[{message, errorCode, fields}]`, or one such
/// object alone.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "errorCode", default)]
    pub error_code: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(Debug)]
pub enum SfError {
    Config(String),
    /// An OAuth flow failed: `error`/`error_description` from the token endpoint.
    Auth {
        flow: &'static str,
        error: String,
        description: String,
    },
    Api {
        status: u16,
        errors: Vec<ApiError>,
    },
    /// REQUEST_LIMIT_EXCEEDED: the org refuses further calls.
    LimitExceeded {
        message: String,
    },
    /// tether's own budget (a share of the daily allowance) is used up.
    BudgetExhausted {
        used: u64,
        max: u64,
        allowed: u64,
    },
    /// The token endpoint kept answering 429 Too Many Requests: throttling, not refused
    /// credentials.
    Throttled {
        attempts: u32,
    },
    /// Gave up after retries on 5xx, timeouts or connection errors.
    Transport {
        attempts: u32,
        message: String,
    },
    /// A non-idempotent call (create) failed in a way that leaves its effect unknown.
    Ambiguous {
        message: String,
    },
    Malformed {
        context: String,
        detail: String,
    },
    /// A response longer than `max_response_bytes`; reading stopped at the cap.
    TooLarge {
        server: String,
        limit: usize,
    },
    /// Mapped fields missing or not writable in this org.
    Mapping {
        object: String,
        problems: Vec<String>,
    },
}

impl SfError {
    pub fn error_code(&self) -> Option<&str> {
        match self {
            SfError::Api { errors, .. } => errors.first().map(|e| e.error_code.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for SfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SfError::Config(m) => write!(f, "Salesforce connection settings: {m}"),
            SfError::Auth {
                flow,
                error,
                description,
            } => write!(
                f,
                "Salesforce authentication failed ({flow} flow): {error}: {description}"
            ),
            SfError::Api { status, errors } => {
                write!(f, "Salesforce answered HTTP {status}")?;
                for e in errors {
                    write!(f, "; {}: {}", e.error_code, e.message.trim())?;
                }
                Ok(())
            }
            SfError::LimitExceeded { message } => {
                let which = if message.contains("TotalRequests") {
                    "the org's daily API request limit (DailyApiRequests) is used up; wait until the rolling 24-hour usage falls or ask Salesforce for a higher limit, then run again"
                } else if message.contains("Concurrent") {
                    "the org's limit on concurrent long-running API requests is reached; run again when other integrations are quieter"
                } else {
                    "an org API limit is reached; check Setup > Company Information > API Requests"
                };
                write!(
                    f,
                    "Salesforce refused the call with REQUEST_LIMIT_EXCEEDED ({}): {which}",
                    message.trim()
                )
            }
            SfError::BudgetExhausted { used, max, allowed } => write!(
                f,
                "stopped before exceeding tether's API budget: the org has used {used} of {max} daily API requests and tether may use the org only up to {allowed}; raise the budget or run later"
            ),
            SfError::Throttled { attempts } => write!(
                f,
                "Salesforce's token endpoint is throttling tether's sign-in (HTTP 429 Too Many Requests, {attempts} attempt(s)); the credentials were not refused: wait a few minutes and run again"
            ),
            SfError::Transport { attempts, message } => {
                write!(
                    f,
                    "Salesforce unreachable after {attempts} attempt(s): {message}"
                )
            }
            SfError::Ambiguous { message } => write!(
                f,
                "the outcome of a Salesforce create is unknown ({message}); it was not retried so no duplicate is made"
            ),
            SfError::Malformed { context, detail } => {
                write!(
                    f,
                    "Salesforce sent an unexpected response to {context}: {detail}"
                )
            }
            SfError::TooLarge { server, limit } => write!(
                f,
                "{server} sent a Salesforce response larger than tether's cap of {}; reading stopped there",
                crate::net::size_text(*limit)
            ),
            SfError::Mapping { object, problems } => {
                write!(
                    f,
                    "field mapping does not fit {object} in this org: {}",
                    problems.join("; ")
                )
            }
        }
    }
}

impl std::error::Error for SfError {}

pub type Result<T> = std::result::Result<T, SfError>;

/// What an HTTP call was for, to count calls per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    Auth,
    Query,
    QueryMore,
    SObject,
    Collection,
    Describe,
    Updated,
    Deleted,
    Limits,
    /// Bulk API 2.0: creating, closing, aborting or polling an ingest job.
    BulkJob,
    /// Bulk API 2.0: a job's CSV data.
    BulkUpload,
    /// Bulk API 2.0: a job's successful, failed or unprocessed records.
    BulkResults,
    /// A Metadata API (SOAP) call.
    Metadata,
}

impl CallKind {
    /// Stable snake_case name, as `status` reports it (and the emulator counts it).
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Auth => "auth",
            CallKind::Query => "query",
            CallKind::QueryMore => "query_more",
            CallKind::SObject => "sobject",
            CallKind::Collection => "collection",
            CallKind::Describe => "describe",
            CallKind::Updated => "updated",
            CallKind::Deleted => "deleted",
            CallKind::Limits => "limits",
            CallKind::BulkJob => "bulk_job",
            CallKind::BulkUpload => "bulk_upload",
            CallKind::BulkResults => "bulk_results",
            CallKind::Metadata => "metadata",
        }
    }
}

#[derive(Clone)]
pub(crate) struct Session {
    token: Secret,
    instance_url: Url,
    generation: u64,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    opts: ClientOptions,
    clock: Arc<dyn Clock>,
    session: tokio::sync::Mutex<Option<Session>>,
    generation: Mutex<u64>,
    counts: Mutex<BTreeMap<CallKind, u64>>,
    usage: Mutex<Option<ApiUsage>>,
    rng: Mutex<u64>,
    describes: Mutex<BTreeMap<String, Arc<ObjectDescribe>>>,
    /// The organization id the last token was minted for (15 characters).
    org_id: Mutex<Option<String>>,
}

/// The client; cheap to clone (shared connection pool, token and counters).
#[derive(Clone)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("instance_url", &self.inner.opts.instance_url.as_str())
            .field("flow", &self.inner.opts.auth.flow())
            .finish()
    }
}

/// Whether a call may be repeated after a failure whose effect is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    Safe,
    /// Creates: repeated only when the request provably never reached the server.
    Unsafe,
}

pub(crate) struct Reply {
    pub body: Vec<u8>,
}

/// A request body: JSON, or CSV job data (Bulk API 2.0).
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    Json(&'a Value),
    Csv(&'a [u8]),
}

/// What an answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Json,
    /// Bulk API 2.0 results.
    Csv,
}

impl Answer {
    fn media_type(self) -> &'static str {
        match self {
            Answer::Json => "application/json",
            Answer::Csv => "text/csv",
        }
    }
}

impl SalesforceClient {
    pub fn new(opts: ClientOptions) -> Result<SalesforceClient> {
        Self::with_clock(opts, Arc::new(SystemClock))
    }

    pub fn with_clock(opts: ClientOptions, clock: Arc<dyn Clock>) -> Result<SalesforceClient> {
        crate::net::check_transport(&opts.instance_url).map_err(SfError::Config)?;
        crate::net::check_transport(&opts.login_url).map_err(SfError::Config)?;
        if let Some(b) = opts.api_budget
            && !(b > 0.0 && b <= 1.0)
        {
            return Err(SfError::Config(format!(
                "api budget {b} must be a share in (0, 1]"
            )));
        }
        if let Some(n) = opts.query_batch_size
            && !(200..=2000).contains(&n)
        {
            return Err(SfError::Config(format!(
                "query batch size {n} must be between 200 and 2000"
            )));
        }
        let v = &opts.api_version;
        if v.split_once('.')
            .is_none_or(|(a, b)| a.parse::<u32>().is_err() || b.parse::<u32>().is_err())
        {
            return Err(SfError::Config(format!(
                "API version `{v}` must look like 62.0"
            )));
        }
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &opts.ca_file {
            for cert in crate::net::load_ca_file(path).map_err(SfError::Config)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .timeout(opts.timeout)
            .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
            // Redirects could carry the bearer token elsewhere; Salesforce does not need them.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SfError::Config(format!("HTTP client: {e}")))?;
        let seed = (clock.now().timestamp_nanos_opt().unwrap_or(0) as u64) | 1;
        Ok(SalesforceClient {
            inner: Arc::new(Inner {
                http,
                opts,
                clock,
                session: tokio::sync::Mutex::new(None),
                generation: Mutex::new(0),
                counts: Mutex::new(BTreeMap::new()),
                usage: Mutex::new(None),
                rng: Mutex::new(seed),
                describes: Mutex::new(BTreeMap::new()),
                org_id: Mutex::new(None),
            }),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// HTTP calls made so far, by kind (retries and re-authentication included).
    pub fn call_counts(&self) -> BTreeMap<CallKind, u64> {
        lock(&self.inner.counts).clone()
    }

    pub fn total_calls(&self) -> u64 {
        lock(&self.inner.counts).values().sum()
    }

    /// The org's API usage as of the last response (`Sforce-Limit-Info`).
    pub fn api_usage(&self) -> Option<ApiUsage> {
        lock(&self.inner.usage).clone()
    }

    fn count(&self, kind: CallKind) {
        *lock(&self.inner.counts).entry(kind).or_default() += 1;
    }

    fn data_path(&self, rest: &str) -> String {
        format!("/services/data/v{}/{rest}", self.inner.opts.api_version)
    }

    fn jitter(&self, d: Duration) -> Duration {
        let mut s = lock(&self.inner.rng);
        // xorshift64: enough to spread retries of many clients apart.
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let frac = (*s % 1000) as f64 / 1000.0;
        Duration::try_from_secs_f64(d.as_secs_f64() * (0.5 + frac * 0.5)).unwrap_or(d)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let p = &self.inner.opts.retry;
        let exp = p
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        self.jitter(exp.min(p.max_delay))
    }

    fn check_budget(&self) -> Result<()> {
        let (Some(share), Some(u)) = (self.inner.opts.api_budget, self.api_usage()) else {
            return Ok(());
        };
        let allowed = (u.max as f64 * share).floor() as u64;
        if u.used >= allowed {
            return Err(SfError::BudgetExhausted {
                used: u.used,
                max: u.max,
                allowed,
            });
        }
        Ok(())
    }

    fn record_usage(&self, headers: &reqwest::header::HeaderMap) {
        let parsed = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ops::parse_limit_info);
        if let Some(u) = parsed {
            *lock(&self.inner.usage) = Some(u);
        }
    }

    /// The body of `resp`, at most `max_response_bytes` of it.
    async fn read_body(
        &self,
        resp: reqwest::Response,
    ) -> Result<std::result::Result<Vec<u8>, String>> {
        let server = crate::net::server_of(resp.url());
        let limit = self.inner.opts.max_response_bytes;
        match crate::net::read_capped(resp, limit).await {
            Ok(body) => Ok(Ok(body)),
            Err(BodyError::TooLarge) => Err(SfError::TooLarge { server, limit }),
            Err(BodyError::Io(m)) => Ok(Err(m)),
        }
    }

    /// The current session, minting one when there is none.
    async fn session(&self) -> Result<Session> {
        let mut guard = self.inner.session.lock().await;
        if let Some(s) = guard.as_ref() {
            return Ok(s.clone());
        }
        let (token, instance_url) = self.mint().await?;
        let generation = {
            let mut g = lock(&self.inner.generation);
            *g += 1;
            *g
        };
        let s = Session {
            token,
            instance_url,
            generation,
        };
        *guard = Some(s.clone());
        Ok(s)
    }

    async fn drop_session(&self, generation: u64) {
        let mut guard = self.inner.session.lock().await;
        if guard.as_ref().is_some_and(|s| s.generation == generation) {
            *guard = None;
        }
    }

    /// Runs one OAuth flow against the token endpoint.
    async fn mint(&self) -> Result<(Secret, Url)> {
        let o = &self.inner.opts;
        let flow = o.auth.flow();
        // Credentials stay in `Secret`s up to the request body.
        let mut form: Vec<(&str, Secret)> = Vec::new();
        let mut basic: Option<(String, Secret)> = None;
        let mut host = &o.login_url;
        match &o.auth {
            Auth::AccessToken { token } => {
                // A session id starts with the org id it belongs to (`00D…!…`).
                let org = token.expose().split_once('!').map(|(org, _)| org);
                *lock(&self.inner.org_id) = org.and_then(org_id_of).map(str::to_string);
                return Ok((token.clone(), o.instance_url.clone()));
            }
            Auth::JwtBearer {
                client_id,
                username,
                private_key_pem,
            } => {
                let key =
                    jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
                        .map_err(|_| {
                            SfError::Config(
                        "jwt_bearer: private_key is not a valid RSA private key in PEM form".into(),
                    )
                        })?;
                let claims = serde_json::json!({
                    "iss": client_id,
                    "sub": username,
                    "aud": jwt_audience(&o.login_url),
                    // Salesforce accepts at most 3 minutes ahead.
                    "exp": self.inner.clock.now().timestamp() + 170,
                });
                let jwt = jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
                    &claims,
                    &key,
                )
                .map_err(|e| {
                    SfError::Config(format!("jwt_bearer: cannot sign the assertion: {e}"))
                })?;
                form.push((
                    "grant_type",
                    Secret::new("urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ));
                form.push(("assertion", Secret::new(jwt)));
            }
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => {
                host = &o.instance_url;
                form.push(("grant_type", Secret::new("client_credentials")));
                basic = Some((client_id.clone(), client_secret.clone()));
            }
            Auth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => {
                form.push(("grant_type", Secret::new("refresh_token")));
                form.push(("client_id", Secret::new(client_id.as_str())));
                if let Some(s) = client_secret {
                    form.push(("client_secret", s.clone()));
                }
                form.push(("refresh_token", refresh_token.clone()));
            }
            Auth::UsernamePassword {
                client_id,
                client_secret,
                username,
                password,
            } => {
                form.push(("grant_type", Secret::new("password")));
                form.push(("client_id", Secret::new(client_id.as_str())));
                form.push(("client_secret", client_secret.clone()));
                form.push(("username", Secret::new(username.as_str())));
                form.push(("password", password.clone()));
            }
        }
        let url = host
            .join("/services/oauth2/token")
            .map_err(|e| SfError::Config(format!("token URL: {e}")))?;
        let body = {
            let mut encoded = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &form {
                encoded.append_pair(k, v.expose());
            }
            Secret::new(encoded.finish())
        };
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            // Set when this attempt met 429: the wait the endpoint asked for, if any.
            let mut throttled: Option<Option<Duration>> = None;
            let mut req = self
                .inner
                .http
                .post(url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.expose().to_string());
            if let Some((id, secret)) = &basic {
                // RFC 6749 §2.3.1: form-encode both parts before Basic encoding.
                let enc = |s: &str| {
                    Secret::new(
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>(),
                    )
                };
                // reqwest marks the header sensitive.
                req = req.basic_auth(enc(id).expose(), Some(enc(secret.expose()).expose()));
            }
            self.count(CallKind::Auth);
            let started = std::time::Instant::now();
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    tracing::debug!(
                        method = "POST",
                        path = url.path(),
                        flow,
                        status,
                        ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "Salesforce token request"
                    );
                    let retry_after = crate::net::retry_after(resp.headers());
                    match self.read_body(resp).await? {
                        Ok(_) if status == 429 => {
                            throttled = Some(retry_after);
                            Err("HTTP 429 Too Many Requests".into())
                        }
                        Ok(body) if status < 500 => Ok((status, body)),
                        Ok(_) => Err(format!("HTTP {status}")),
                        Err(m) => Err(m),
                    }
                }
                Err(e) => {
                    let message = describe_request_error(&e);
                    // Retrying cannot make an untrusted certificate trusted.
                    if certificate_problem(&e).is_some() {
                        return Err(SfError::Transport {
                            attempts: attempt,
                            message: format!("{url}: {message}"),
                        });
                    }
                    Err(message)
                }
            };
            let (status, body) = match outcome {
                Ok(x) => x,
                Err(message) => {
                    let delay = throttled.flatten().unwrap_or_else(|| self.backoff(attempt));
                    if attempt >= o.retry.max_attempts || waited + delay > o.retry.max_total_delay {
                        if throttled.is_some() {
                            return Err(SfError::Throttled { attempts: attempt });
                        }
                        return Err(SfError::Transport {
                            attempts: attempt,
                            message,
                        });
                    }
                    tracing::info!(
                        flow,
                        attempt,
                        error = %message,
                        delay_ms = delay.as_millis() as u64,
                        "Salesforce token request failed; retrying after back-off"
                    );
                    waited += delay;
                    self.inner.clock.sleep(delay).await;
                    continue;
                }
            };
            let minted = decode_token(flow, status, &body, &o.instance_url)?;
            *lock(&self.inner.org_id) = identity_org(&body);
            return Ok(minted);
        }
    }

    /// The organization id (15 characters) of the session, once one was minted: from the
    /// token answer's identity URL (`…/id/<org id>/<user id>`), or an access token's prefix.
    pub fn org_id(&self) -> Option<String> {
        lock(&self.inner.org_id).clone()
    }

    /// One REST call with re-authentication (once, on 401 INVALID_SESSION_ID), limit
    /// accounting and bounded retries. `target` is a path under the instance URL.
    pub(crate) async fn call(
        &self,
        kind: CallKind,
        method: reqwest::Method,
        target: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<Reply> {
        let body = body.map(Payload::Json);
        self.call_with(kind, method, target, query, body, Answer::Json, idempotency)
            .await
    }

    /// [`call`](Self::call) with any payload, answered in JSON or CSV (Bulk API 2.0).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call_with(
        &self,
        kind: CallKind,
        method: reqwest::Method,
        target: &str,
        query: &[(&str, String)],
        body: Option<Payload<'_>>,
        answer: Answer,
        idempotency: Idempotency,
    ) -> Result<Reply> {
        let retry = &self.inner.opts.retry;
        let mut attempt = 0u32;
        let mut reauthed = false;
        let mut waited = Duration::ZERO;
        // The last attempt was refused by the concurrent-request limit.
        let mut concurrent_limit: Option<String> = None;
        // The last attempt was a read answered with a body that is not JSON.
        let mut malformed: Option<String> = None;
        loop {
            self.check_budget()?;
            let session = self.session().await?;
            let url = session
                .instance_url
                .join(target)
                .map_err(|e| SfError::Malformed {
                    context: target.into(),
                    detail: format!("bad URL: {e}"),
                })?;
            // The path only: a query string holds SOQL, whose literals may be record data.
            let path = url.path().to_string();
            let mut req = self
                .inner
                .http
                .request(method.clone(), url)
                .bearer_auth(session.token.expose())
                .header(reqwest::header::ACCEPT, answer.media_type());
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(n) = self.inner.opts.query_batch_size
                && matches!(kind, CallKind::Query)
            {
                req = req.header("Sforce-Query-Options", format!("batchSize={n}"));
            }
            match body {
                Some(Payload::Json(b)) => req = req.json(b),
                Some(Payload::Csv(b)) => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, "text/csv")
                        .body(b.to_vec());
                }
                None => {}
            }
            attempt += 1;
            self.count(kind);
            let started = std::time::Instant::now();
            let failure: String = match req.send().await {
                Err(e) => {
                    tracing::debug!(
                        method = %method,
                        path,
                        kind = kind.name(),
                        error = %describe_request_error(&e),
                        ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "Salesforce request failed"
                    );
                    if certificate_problem(&e).is_some() {
                        // Nothing was sent; retrying cannot make the certificate trusted.
                        return Err(SfError::Transport {
                            attempts: attempt,
                            message: format!(
                                "{}: {}",
                                crate::net::server_of(&session.instance_url),
                                describe_request_error(&e)
                            ),
                        });
                    }
                    // A request that never connected cannot have had an effect.
                    if idempotency == Idempotency::Unsafe && !e.is_connect() {
                        return Err(SfError::Ambiguous {
                            message: describe_request_error(&e),
                        });
                    }
                    describe_request_error(&e)
                }
                Ok(resp) => {
                    self.record_usage(resp.headers());
                    let status = resp.status().as_u16();
                    tracing::debug!(
                        method = %method,
                        path,
                        kind = kind.name(),
                        status,
                        ms = started.elapsed().as_millis() as u64,
                        attempt,
                        "Salesforce request"
                    );
                    let body = match self.read_body(resp).await? {
                        Ok(b) => Some(b),
                        Err(m) => {
                            if idempotency == Idempotency::Unsafe {
                                return Err(SfError::Ambiguous { message: m });
                            }
                            None
                        }
                    };
                    match body {
                        None => "connection dropped while reading the response".into(),
                        Some(body) => {
                            if status == 401 {
                                let errors = parse_errors(&body);
                                if errors.iter().any(|e| e.error_code == "INVALID_SESSION_ID") {
                                    if let Auth::AccessToken { .. } = self.inner.opts.auth {
                                        return Err(SfError::Auth {
                                            flow: "access_token",
                                            error: "INVALID_SESSION_ID".into(),
                                            description: "the access token expired or was revoked; a static token cannot be renewed, use another flow".into(),
                                        });
                                    }
                                    if !reauthed {
                                        tracing::info!(
                                            "Salesforce session expired; signing in again"
                                        );
                                        reauthed = true;
                                        self.drop_session(session.generation).await;
                                        attempt -= 1;
                                        continue;
                                    }
                                }
                                return Err(SfError::Api { status, errors });
                            }
                            if status == 403 {
                                let errors = parse_errors(&body);
                                match errors
                                    .iter()
                                    .find(|e| e.error_code == "REQUEST_LIMIT_EXCEEDED")
                                {
                                    // Too many long-running requests at once: this one was
                                    // refused, not run, so it may be sent again after a wait.
                                    Some(e) if e.message.contains("Concurrent") => {
                                        concurrent_limit = Some(e.message.clone());
                                        format!("REQUEST_LIMIT_EXCEEDED: {}", e.message)
                                    }
                                    Some(e) => {
                                        return Err(SfError::LimitExceeded {
                                            message: e.message.clone(),
                                        });
                                    }
                                    None => return Err(SfError::Api { status, errors }),
                                }
                            } else if status >= 500 {
                                if idempotency == Idempotency::Unsafe {
                                    return Err(SfError::Ambiguous {
                                        message: format!("HTTP {status}"),
                                    });
                                }
                                format!("HTTP {status}")
                            } else if status >= 400 {
                                return Err(SfError::Api {
                                    status,
                                    errors: parse_errors(&body),
                                });
                            } else if let Some(junk) = (answer == Answer::Json)
                                .then(|| unreadable_read(idempotency, &body))
                                .flatten()
                            {
                                // A read answered 200 with a body cut short or garbled is a
                                // glitch like a 5xx: ask again. A create's is not repeated.
                                malformed = Some(junk.clone());
                                junk
                            } else {
                                return Ok(Reply { body });
                            }
                        }
                    }
                }
            };
            let delay = self.backoff(attempt);
            if attempt >= retry.max_attempts || waited + delay > retry.max_total_delay {
                if let Some(message) = concurrent_limit {
                    return Err(SfError::LimitExceeded { message });
                }
                if let Some(detail) = malformed {
                    return Err(SfError::Malformed {
                        context: kind.name().into(),
                        detail: format!("{detail} (after {attempt} attempt(s))"),
                    });
                }
                return Err(SfError::Transport {
                    attempts: attempt,
                    message: failure,
                });
            }
            concurrent_limit = None;
            malformed = None;
            tracing::info!(
                path,
                attempt,
                error = %failure,
                delay_ms = delay.as_millis() as u64,
                "Salesforce request failed; retrying after back-off"
            );
            waited += delay;
            self.inner.clock.sleep(delay).await;
        }
    }
}

/// Why a successful read's body cannot be JSON at all, when it cannot: the body was cut
/// short or garbled on the way, and asking again may well get it whole. Nesting beyond
/// serde_json's limit (128) is a hostile answer, not a glitch: it is left to the decoder to
/// refuse.
fn unreadable_read(idempotency: Idempotency, body: &[u8]) -> Option<String> {
    if idempotency != Idempotency::Safe || body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let e = serde_json::from_slice::<serde::de::IgnoredAny>(body).err()?;
    if nests_deeper_than(body, 128) {
        return None;
    }
    Some(format!("the answer is not JSON: {e}"))
}

/// Whether JSON text opens more than `limit` arrays or objects at once (strings skipped).
fn nests_deeper_than(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The org of a token answer's `id`, the identity URL
/// (`https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P`, as the OAuth flow
/// pages show it).
fn identity_org(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let url = Url::parse(v.get("id")?.as_str()?).ok()?;
    let segments: Vec<&str> = url.path_segments()?.collect();
    match segments.as_slice() {
        [.., "id", org, _user] => org_id_of(org).map(str::to_string),
        _ => None,
    }
}

/// The 15-character form of an organization id (`00D…`, 15 or 18 characters).
fn org_id_of(text: &str) -> Option<&str> {
    (text.starts_with("00D") && matches!(text.len(), 15 | 18) && text.is_ascii())
        .then(|| &text[..15])
}

/// A token endpoint's answer: the access token and the instance to call (`fallback` when
/// the answer names none), or the OAuth error it carries.
pub(crate) fn decode_token(
    flow: &'static str,
    status: u16,
    body: &[u8],
    fallback: &Url,
) -> Result<(Secret, Url)> {
    let v: Value = serde_json::from_slice(body).map_err(|e| SfError::Auth {
        flow,
        error: format!("HTTP {status}"),
        description: format!("the token endpoint did not answer JSON ({e})"),
    })?;
    if status != 200 {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Err(SfError::Auth {
            flow,
            error: if s("error").is_empty() {
                format!("HTTP {status}")
            } else {
                s("error")
            },
            description: s("error_description"),
        });
    }
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| SfError::Auth {
            flow,
            error: "invalid_response".into(),
            description: "no access_token in the token response".into(),
        })?;
    let instance = v
        .get("instance_url")
        .and_then(Value::as_str)
        .and_then(|u| Url::parse(u).ok())
        .unwrap_or_else(|| fallback.clone());
    crate::net::check_transport(&instance).map_err(|m| SfError::Auth {
        flow,
        error: "invalid_response".into(),
        description: format!("instance_url refused: {m}"),
    })?;
    Ok((Secret::new(token), instance))
}

/// Decodes `body` as every kind of answer the client reads (for the fuzz targets).
pub(crate) fn decode_any(body: &[u8]) {
    let login = Url::parse("https://login.salesforce.com").expect("constant URL parses");
    for status in [200, 400] {
        let _ = decode_token("client_credentials", status, body, &login);
    }
    let _ = parse_errors(body);
    let _ = ops::decode_query_page(body);
    for expected in [0, 1, 2, 200] {
        let _ = ops::decode_collection(body, expected);
        let _ = ops::decode_retrieve(body, expected);
    }
    let _ = ops::decode_updated(body);
    let _ = ops::decode_deleted(body);
    let _ = ops::decode_describe(body);
    let _ = ops::decode_limits(body);
    let _ = ops::parse_limit_info(&String::from_utf8_lossy(body));
}

/// The JWT bearer `aud`: the OAuth 2.0 JWT Bearer Flow accepts https://login.salesforce.com,
/// or https://test.salesforce.com for sandboxes, whichever host the token request goes to (a
/// My Domain login URL is not an audience).
fn jwt_audience(login_url: &Url) -> &'static str {
    let host = login_url.host_str().unwrap_or("").to_ascii_lowercase();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com"
    } else {
        "https://login.salesforce.com"
    }
}

/// Request-level errors usually come as an array, but some calls (a collection refusing a
/// field, for one) answer a single error object: both keep their `errorCode`.
fn parse_errors(body: &[u8]) -> Vec<ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<ApiError>),
        One(ApiError),
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body::Many(v)) => v,
        Ok(Body::One(e)) if !e.error_code.is_empty() => vec![e],
        _ => vec![ApiError {
            message: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            error_code: "UNPARSEABLE_ERROR".into(),
            fields: vec![],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_decode_as_an_array_or_a_single_object() {
        let one = br#"{"message":"No such column","errorCode":"INVALID_FIELD","fields":["X__c"]}"#;
        let many =
            br#"[{"message":"No such column","errorCode":"INVALID_FIELD","fields":["X__c"]}]"#;
        for body in [&one[..], &many[..]] {
            assert_eq!(
                parse_errors(body),
                vec![ApiError {
                    message: "No such column".into(),
                    error_code: "INVALID_FIELD".into(),
                    fields: vec!["X__c".into()],
                }]
            );
        }
        // Neither shape: the text is kept under UNPARSEABLE_ERROR.
        for body in [
            &b"<html>busy</html>"[..],
            b"{}",
            b"{\"error\":\"x\"}",
            b"[1]",
        ] {
            let e = parse_errors(body);
            assert_eq!(e[0].error_code, "UNPARSEABLE_ERROR", "{body:?}");
        }
    }

    #[test]
    fn only_reads_of_junk_are_asked_again_and_nesting_bombs_are_not() {
        let junk = b"{\"totalSize\":3,\"done\":tr";
        assert!(unreadable_read(Idempotency::Safe, junk).is_some());
        assert!(unreadable_read(Idempotency::Safe, b"<html>busy</html>").is_some());
        assert!(unreadable_read(Idempotency::Unsafe, junk).is_none());
        assert!(unreadable_read(Idempotency::Safe, b"{\"a\":[1]}").is_none());
        assert!(unreadable_read(Idempotency::Safe, b"  \n").is_none());
        let bomb = "[".repeat(129);
        assert!(unreadable_read(Idempotency::Safe, bomb.as_bytes()).is_none());
        // Brackets inside strings do not count.
        let quoted = format!("{{\"a\":\"{}\\\"\"", "[".repeat(200));
        assert!(!nests_deeper_than(quoted.as_bytes(), 128));
        assert!(unreadable_read(Idempotency::Safe, quoted.as_bytes()).is_some());
    }

    #[test]
    fn jwt_audience_is_login_or_test_whatever_the_login_host() {
        let aud = |u: &str| jwt_audience(&Url::parse(u).unwrap());
        assert_eq!(
            aud("https://login.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            aud("https://acme.my.salesforce.com/"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            aud("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            aud("https://acme--uat.sandbox.my.salesforce.com"),
            "https://test.salesforce.com"
        );
    }
}
