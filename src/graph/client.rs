//! The Graph HTTP core: URLs under `/users/{mailbox}`, the app's bearer token, at most four
//! requests in flight per mailbox (Outlook's per-app, per-mailbox concurrency limit), ids
//! that survive folder moves (`Prefer: IdType="ImmutableId"`), and bounded retries: 429 and
//! 503/504 after their `Retry-After`, else after an exponential back-off.

use super::error::{self, ErrorKind, GraphError};
use crate::clock::Clock;
use crate::entra::{TokenClient, TokenErrorKind};
use crate::mutex::lock;
use crate::net::{BodyError, certificate_problem, check_transport, describe_request_error};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use url::Url;

/// Microsoft Graph v1.0 in the worldwide cloud.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
/// Outlook's limit of concurrent requests per app and mailbox.
pub const MAILBOX_CONCURRENCY: usize = 4;
/// Longest Graph answer read.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Every request asks for immutable ids, so an item moved between folders keeps its id.
const IMMUTABLE_IDS: &str = r#"IdType="ImmutableId""#;
/// And for bodies as text (Graph answers HTML otherwise): tether syncs notes and
/// descriptions as text.
pub(crate) const TEXT_BODIES: &str = r#"outlook.body-content-type="text""#;

/// Client settings.
#[derive(Debug, Clone)]
pub struct GraphOptions {
    /// e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_url: Url,
    /// Retries of a throttled or failed request before giving up.
    pub max_retries: u32,
    /// Requests in flight per mailbox.
    pub mailbox_concurrency: usize,
    /// Items per delta page asked for (`Prefer: odata.maxpagesize`).
    pub page_size: u32,
    /// Extra trusted CA certificates (PEM), besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Per HTTP request.
    pub timeout: Duration,
}

impl GraphOptions {
    pub fn new(graph_url: Url) -> Self {
        GraphOptions {
            graph_url,
            max_retries: 5,
            mailbox_concurrency: MAILBOX_CONCURRENCY,
            page_size: 100,
            ca_file: None,
            timeout: Duration::from_secs(120),
        }
    }

    /// The token scope for this Graph: `<scheme>://<host>/.default` (national clouds differ).
    pub fn scope(&self) -> String {
        format!("{}/.default", crate::net::server_of(&self.graph_url))
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub body: Option<Value>,
    /// `Prefer` preferences besides immutable ids (e.g. `odata.maxpagesize=100`).
    pub prefer: Vec<String>,
    /// The request creates something and carries no idempotency key: it is sent again only
    /// after answers that say it was not run (429, 503), never after a lost answer.
    pub once: bool,
    /// It follows a delta cursor: a refused cursor is `CursorExpired`.
    pub delta: bool,
    /// Names the request in counts and messages: `delta`, `$batch`, `contactFolders` …
    pub op: &'static str,
}

impl Request {
    pub fn new(method: Method, url: Url, op: &'static str) -> Self {
        Request {
            method,
            url,
            body: None,
            prefer: Vec::new(),
            once: false,
            delta: false,
            op,
        }
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// `Value::Null` for an empty body (204).
    pub body: Value,
}

pub struct GraphClient {
    http: reqwest::Client,
    opts: GraphOptions,
    token: TokenClient,
    clock: Arc<dyn Clock>,
    mailboxes: Mutex<HashMap<String, Arc<Semaphore>>>,
    calls: Mutex<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// `app.scope` should be [`GraphOptions::scope`].
    pub fn new(
        opts: GraphOptions,
        app: crate::entra::AppCredentials,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GraphError> {
        let config = |m: String| GraphError::new(ErrorKind::Invalid, m);
        check_transport(&opts.graph_url).map_err(config)?;
        check_transport(&app.token_url).map_err(config)?;
        if opts.mailbox_concurrency == 0 || opts.page_size == 0 {
            return Err(config(
                "mailbox concurrency and page size must be at least 1".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(opts.timeout);
        if let Some(path) = &opts.ca_file {
            for c in crate::net::load_ca_file(path).map_err(config)? {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| config(format!("HTTP client: {e}")))?;
        let token = TokenClient::new(app, http.clone(), clock.clone(), opts.max_retries);
        Ok(GraphClient {
            http,
            opts,
            token,
            clock,
            mailboxes: Mutex::new(HashMap::new()),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn options(&self) -> &GraphOptions {
        &self.opts
    }

    /// Requests sent so far by kind (`op`, and `token`); retries count.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let mut calls = lock(&self.calls).clone();
        if self.token.requests() > 0 {
            calls.insert("token".into(), self.token.requests());
        }
        calls
    }

    /// Checks that the app gets a token (the first failure of a run says what to fix).
    pub async fn sign_in(&self) -> Result<(), GraphError> {
        self.bearer(false).await.map(|_| ())
    }

    /// `<graph_url>/users/<mailbox>/<segments…>?<query>`. Segments are percent-encoded as
    /// needed; query values with `%20` for spaces (OData reads `+` literally).
    pub fn user_url(&self, mailbox: &str, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.opts.graph_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .push("users")
                .push(mailbox)
                .extend(segments);
        }
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
                .collect();
            url.set_query(Some(&q.join("&")));
        }
        url
    }

    /// Graph's own URL for `path` (`/$batch`).
    pub fn service_url(&self, path: &str) -> Url {
        let mut url = self.opts.graph_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url
    }

    /// True when `link` (a nextLink or deltaLink) points at this Graph: links are followed
    /// with the app's token, so never to another host.
    pub fn is_own_link(&self, link: &Url) -> bool {
        crate::net::server_of(link) == crate::net::server_of(&self.opts.graph_url)
            && link
                .path()
                .starts_with(self.opts.graph_url.path().trim_end_matches('/'))
    }

    fn mailbox_slots(&self, mailbox: &str) -> Arc<Semaphore> {
        lock(&self.mailboxes)
            .entry(mailbox.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(self.opts.mailbox_concurrency)))
            .clone()
    }

    fn count(&self, op: &str) {
        *lock(&self.calls).entry(op.to_string()).or_default() += 1;
    }

    async fn bearer(&self, force_new: bool) -> Result<HeaderValue, GraphError> {
        let token = self.token.access_token(force_new).await.map_err(|e| {
            let kind = match e.kind {
                TokenErrorKind::Throttled => ErrorKind::Throttled,
                TokenErrorKind::Unavailable => ErrorKind::Transport,
                TokenErrorKind::Refused | TokenErrorKind::Config => ErrorKind::Auth,
            };
            GraphError::new(kind, format!("sign-in: {}", e.message))
        })?;
        let mut header = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| GraphError::new(ErrorKind::Auth, "the access token is not a header"))?;
        header.set_sensitive(true);
        Ok(header)
    }

    /// Waits before retry `attempt` (1-based): `Retry-After` if given, else 5 s doubling to
    /// 120 s.
    pub(crate) async fn wait_before_retry(&self, attempt: u32, retry_after: Option<Duration>) {
        let wait = retry_after.unwrap_or_else(|| {
            Duration::from_secs((5u64 << attempt.saturating_sub(1).min(5)).min(120))
        });
        self.clock.sleep(wait).await;
    }

    pub(crate) fn max_retries(&self) -> u32 {
        self.opts.max_retries
    }

    /// Sends `req` for `mailbox` and returns its 2xx answer; any other answer is decoded
    /// into a [`GraphError`].
    pub async fn send(&self, mailbox: &str, req: &Request) -> Result<Answer, GraphError> {
        let what = format!("{} {} of {mailbox}", req.method, req.op);
        let slots = self.mailbox_slots(mailbox);
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            let auth = self.bearer(false).await?;
            let permit = slots
                .acquire()
                .await
                .map_err(|_| GraphError::new(ErrorKind::Transport, "mailbox slots closed"))?;
            self.count(req.op);
            let started = std::time::Instant::now();
            let mut builder = self
                .http
                .request(req.method.clone(), req.url.clone())
                .header("Authorization", auth)
                .header("Prefer", IMMUTABLE_IDS)
                .header("Prefer", TEXT_BODIES);
            for p in &req.prefer {
                builder = builder.header("Prefer", p.as_str());
            }
            if let Some(body) = &req.body {
                builder = builder.json(body);
            }
            let sent = builder.send().await;
            let result = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let body = crate::net::read_capped(resp, MAX_RESPONSE_BYTES).await;
                    Ok((status, headers, body))
                }
                Err(e) => Err(e),
            };
            drop(permit);
            let (status, headers, body) = match result {
                Ok(r) => r,
                Err(e) => {
                    let retry = certificate_problem(&e).is_none()
                        && attempt <= self.opts.max_retries
                        && (!req.once || e.is_connect());
                    if retry {
                        tracing::info!(op = req.op, attempt, "Graph request failed; retrying");
                        self.wait_before_retry(attempt, None).await;
                        continue;
                    }
                    // A create whose answer was lost may have been made.
                    let kind = if req.once && !e.is_connect() {
                        ErrorKind::Unavailable
                    } else {
                        ErrorKind::Transport
                    };
                    return Err(GraphError::new(
                        kind,
                        format!("{what}: {}", describe_request_error(&e)),
                    ));
                }
            };
            tracing::debug!(
                method = %req.method,
                op = req.op,
                mailbox,
                status,
                ms = started.elapsed().as_millis() as u64,
                attempt,
                "Graph request"
            );
            let body = match body {
                Ok(bytes) => bytes,
                Err(BodyError::TooLarge) => {
                    return Err(GraphError::new(
                        ErrorKind::Transport,
                        format!(
                            "{what}: answer larger than tether's cap of {}",
                            crate::net::size_text(MAX_RESPONSE_BYTES)
                        ),
                    ));
                }
                Err(BodyError::Io(m)) => {
                    return Err(GraphError::new(
                        ErrorKind::Transport,
                        format!("{what}: {m}"),
                    ));
                }
            };
            let json: Value = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    // An error page (a proxy's HTML) decodes by status alone.
                    Err(_) if !(200..300).contains(&status) => Value::Null,
                    Err(_) => {
                        return Err(GraphError::new(
                            ErrorKind::Transport,
                            format!("{what}: HTTP {status} answer is not JSON"),
                        ));
                    }
                }
            };
            if (200..300).contains(&status) {
                return Ok(Answer {
                    status,
                    headers,
                    body: json,
                });
            }
            if status == 401 && !renewed {
                // The token may have been revoked: ask for a new one, once.
                renewed = true;
                self.bearer(true).await?;
                continue;
            }
            // 429 and 503 say the request was not run; a gateway's 502/504 does not.
            let not_run = matches!(status, 429 | 503);
            let transient = not_run || matches!(status, 502 | 504);
            if transient && attempt <= self.opts.max_retries && (not_run || !req.once) {
                let retry_after = crate::net::retry_after(&headers);
                tracing::info!(
                    op = req.op,
                    status,
                    attempt,
                    "Graph throttled or busy; retrying"
                );
                self.wait_before_retry(attempt, retry_after).await;
                continue;
            }
            return Err(error::decode(status, &json, &what, req.delta));
        }
    }
}

/// Percent-encodes a query value: everything but unreserved characters and the few OData
/// punctuation marks Graph's own examples leave as they are (the URL parser encodes `'`
/// itself).
fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$(),:/'".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_encode_spaces_as_percent_20_and_keep_odata_punctuation() {
        assert_eq!(
            encode_query_value("displayName eq 'Salesforce_Sync'"),
            "displayName%20eq%20'Salesforce_Sync'"
        );
        assert_eq!(encode_query_value("a+b=c&d"), "a%2Bb%3Dc%26d");
    }
}
