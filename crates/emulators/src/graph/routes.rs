//! HTTP routing of the Graph face: `/v1.0/…` (percent-decoded segments, `delta` and
//! `delta()`), `$batch`, throttling, and the mailbox resources over the shared store.

use super::delta::{self, DeltaKind, Link};
use super::ids::{self, IdType};
use super::json::{self, View};
use super::{BATCH_LIMIT, GraphApp, GraphFault, MAILBOX_CONCURRENCY, SentMeetingMessage};
use crate::exchange::Shared;
use crate::exchange::model::{CalendarEvent, Contact, Item};
use crate::exchange::state::{Emu, parse_occurrence_id};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/v1.0/{*rest}", any(graph))
        .route("/{tenant}/oauth2/v2.0/token", post(super::token::token))
}

/// One Graph request, top-level or a `$batch` item.
pub(crate) struct Req {
    pub method: Method,
    /// Decoded path segments after `/v1.0/`.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    /// Lower-case header names.
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Req {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A `Prefer` preference (`odata.maxpagesize`, `outlook.timezone`, `IdType`), unquoted.
    fn prefer(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("prefer"))
            .flat_map(|(_, v)| v.split(','))
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().trim_matches('"').to_string())
            })
    }
}

pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }
    fn empty(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: None,
        }
    }
}

/// An error in Graph's shape; the caller records it against the ODataError schema.
pub(crate) fn error(
    emu: &mut Emu,
    now: DateTime<Utc>,
    status: u16,
    code: &str,
    msg: &str,
) -> Answer {
    let n = emu.next();
    let body = json!({"error": {"code": code, "message": msg, "innerError": {
        // Graph's innerError.date carries no zone.
        "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": format!("8f1c0d2e-0000-4000-8000-{n:012x}"),
        "client-request-id": format!("8f1c0d2e-0000-4000-8000-{n:012x}"),
    }}});
    Answer::json(status, body)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `/v1.0/a/b?x=y` (or `/a/b?x=y` in a batch item) into decoded segments and query.
fn parse_target(path_and_query: &str) -> (Vec<String>, Vec<(String, String)>) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path = path.strip_prefix("/v1.0").unwrap_or(path);
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (segments, query)
}

fn bearer_app(shared: &Shared, headers: &HeaderMap) -> Result<GraphApp, &'static str> {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return Err("Access token is empty.");
    };
    let emu = shared.lock();
    let Some((client, expires)) = emu.graph.tokens.get(token.trim()) else {
        return Err("Invalid JWT token. The token is malformed.");
    };
    if *expires <= shared.clock.now() {
        return Err("Lifetime validation failed, the token is expired.");
    }
    emu.graph
        .apps
        .iter()
        .find(|a| &a.client_id == client)
        .cloned()
        .ok_or("The app registration was removed.")
}

fn to_response(a: Answer) -> Response {
    let mut r = match &a.body {
        Some(b) => (
            StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            b.to_string(),
        )
            .into_response(),
        None => StatusCode::from_u16(a.status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
    };
    for (k, v) in a.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

async fn graph(
    State(shared): State<Shared>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = shared.clock.now();
    let app = match bearer_app(&shared, &headers) {
        Ok(a) => a,
        Err(msg) => {
            let mut emu = shared.lock();
            let a = error(&mut emu, now, 401, "InvalidAuthenticationToken", msg);
            finish(&mut emu, "microsoft.graph.ODataErrors.ODataError", &a);
            return to_response(a);
        }
    };
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let (segments, query) = parse_target(target);
    let parsed = if body.is_empty() {
        Ok(None)
    } else {
        serde_json::from_slice::<Value>(&body).map(Some)
    };
    let body = match parsed {
        Ok(b) => b,
        Err(e) => {
            let mut emu = shared.lock();
            let msg = format!("Unable to read JSON request payload: {e}");
            let a = error(&mut emu, now, 400, "BadRequest", &msg);
            finish(&mut emu, "microsoft.graph.ODataErrors.ODataError", &a);
            return to_response(a);
        }
    };
    let req = Req {
        method,
        segments,
        query,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
    };
    let lose_answer = {
        let mut emu = shared.lock();
        let lose = emu.graph.faults.front() == Some(&GraphFault::LoseAnswer);
        if lose {
            emu.graph.faults.pop_front();
        }
        lose
    };
    if req.segments.len() == 1 && req.segments[0] == "$batch" && req.method == Method::POST {
        let answer = batch(&shared, &app, &req);
        return to_response(if lose_answer {
            Answer::empty(504)
        } else {
            answer
        });
    }
    if lose_answer {
        let base = shared.base.clone();
        let mut emu = shared.lock();
        serve(&mut emu, now, &base, &app, &req);
        return to_response(Answer::empty(504));
    }
    let mailbox = mailbox_of(&req);
    {
        let mut emu = shared.lock();
        if let Some(a) = injected(&mut emu, now) {
            return to_response(a);
        }
        if let Some(mb) = &mailbox {
            let key = (app.client_id.clone(), mb.to_ascii_lowercase());
            let n = emu.graph.in_flight.entry(key).or_default();
            if *n >= MAILBOX_CONCURRENCY {
                let a = throttled(&mut emu, now);
                return to_response(a);
            }
            *n += 1;
        }
    }
    // Leaves the mailbox's concurrency budget however the request ends.
    let _guard = mailbox.as_ref().map(|mb| InFlight {
        shared: shared.clone(),
        key: (app.client_id.clone(), mb.to_ascii_lowercase()),
    });
    if let Some(l) = shared.options.latency {
        tokio::time::sleep(l).await;
    }
    let base = shared.base.clone();
    let mut emu = shared.lock();
    to_response(serve(&mut emu, now, &base, &app, &req))
}

struct InFlight {
    shared: Shared,
    key: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut emu = self.shared.lock();
        if let Some(n) = emu.graph.in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

fn mailbox_of(req: &Req) -> Option<String> {
    (req.segments.first().map(String::as_str) == Some("users"))
        .then(|| req.segments.get(1).cloned())
        .flatten()
}

fn throttled(emu: &mut Emu, now: DateTime<Utc>) -> Answer {
    let secs = emu.graph.retry_after_secs.max(1);
    let mut a = error(
        emu,
        now,
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
    );
    a.headers.push(("Retry-After".into(), secs.to_string()));
    finish(emu, "microsoft.graph.ODataErrors.ODataError", &a);
    a
}

fn injected(emu: &mut Emu, now: DateTime<Utc>) -> Option<Answer> {
    match emu.graph.faults.pop_front()? {
        GraphFault::Throttle { retry_after_secs } => {
            let mut a = error(
                emu,
                now,
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            );
            a.headers
                .push(("Retry-After".into(), retry_after_secs.to_string()));
            finish(emu, "microsoft.graph.ODataErrors.ODataError", &a);
            Some(a)
        }
        GraphFault::EmptyStatus(s) => Some(Answer::empty(s)),
        // Taken before the request runs (see `graph`); inside a batch, the whole batch's.
        GraphFault::LoseAnswer => None,
    }
}

/// Records the answer body with its schema.
fn finish(emu: &mut Emu, schema: &str, a: &Answer) {
    if let Some(b) = &a.body {
        let schema = if a.status >= 400 {
            "microsoft.graph.ODataErrors.ODataError"
        } else {
            schema
        };
        emu.graph.record(schema, a.status, b);
    }
}

// ---------------------------------------------------------------------------------------
// $batch

fn batch(shared: &Shared, app: &GraphApp, req: &Req) -> Answer {
    let now = shared.clock.now();
    let mut emu = shared.lock();
    *emu.graph.calls.entry("batch".into()).or_default() += 1;
    let bad = |emu: &mut Emu, msg: &str| {
        let a = error(emu, now, 400, "BadRequest", msg);
        finish(emu, "", &a);
        a
    };
    let Some(items) = req
        .body
        .as_ref()
        .and_then(|b| b.get("requests"))
        .and_then(Value::as_array)
    else {
        return bad(&mut emu, "The batch request needs a 'requests' collection.");
    };
    if items.is_empty() || items.len() > BATCH_LIMIT {
        return bad(
            &mut emu,
            &format!("The number of batch requests must be between 1 and {BATCH_LIMIT}."),
        );
    }
    let mut ids: Vec<String> = Vec::new();
    for it in items {
        let Some(id) = it.get("id").and_then(Value::as_str) else {
            return bad(&mut emu, "Every batch request needs an 'id'.");
        };
        if ids.iter().any(|i| i.eq_ignore_ascii_case(id)) {
            return bad(
                &mut emu,
                &format!("Batch request ids must be unique: '{id}'."),
            );
        }
        ids.push(id.to_string());
    }
    if let Some(body) = &req.body {
        emu.graph.record("extra:batchRequest", 200, body);
    }
    let base = shared.base.clone();
    let mut responses: Vec<Value> = Vec::new();
    let mut statuses: Vec<(String, u16)> = Vec::new();
    // Items without dependsOn run at once: per mailbox, as many as the concurrency budget
    // leaves; the others answer 429 each, as Graph throttles items one by one.
    let mut parallel: std::collections::HashMap<String, usize> = Default::default();
    for it in items {
        let id = it
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let deps: Vec<String> = it
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let answer = if let Some(failed) = deps.iter().find(|d| {
            statuses
                .iter()
                .find(|(i, _)| i.eq_ignore_ascii_case(d))
                .is_none_or(|(_, s)| *s >= 400)
        }) {
            let a = error(
                &mut emu,
                now,
                424,
                "FailedDependency",
                &format!("The request depends on request '{failed}', which failed."),
            );
            finish(&mut emu, "", &a);
            a
        } else {
            let method = it.get("method").and_then(Value::as_str).unwrap_or("GET");
            let url = it.get("url").and_then(Value::as_str).unwrap_or("");
            let (segments, query) = parse_target(url);
            let headers: Vec<(String, String)> = it
                .get("headers")
                .and_then(Value::as_object)
                .map(|h| {
                    h.iter()
                        .filter_map(|(k, v)| {
                            Some((k.to_ascii_lowercase(), v.as_str()?.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let sub = Req {
                method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
                segments,
                query,
                headers,
                body: it.get("body").cloned(),
            };
            let mailbox = mailbox_of(&sub).map(|m| m.to_ascii_lowercase());
            let over = mailbox.as_ref().is_some_and(|mb| {
                if !deps.is_empty() {
                    return false;
                }
                let busy = emu
                    .graph
                    .in_flight
                    .get(&(app.client_id.clone(), mb.clone()))
                    .copied()
                    .unwrap_or(0);
                let n = parallel.entry(mb.clone()).or_default();
                *n += 1;
                busy + *n > MAILBOX_CONCURRENCY
            });
            if let Some(a) = injected(&mut emu, now) {
                a
            } else if over {
                throttled(&mut emu, now)
            } else {
                serve(&mut emu, now, &base, app, &sub)
            }
        };
        statuses.push((id.clone(), answer.status));
        let mut headers = serde_json::Map::new();
        for (k, v) in &answer.headers {
            headers.insert(k.clone(), Value::String(v.clone()));
        }
        if answer.body.is_some() {
            headers.insert("Content-Type".into(), json!("application/json"));
        }
        let mut r = json!({"id": id, "status": answer.status, "headers": headers});
        if let Some(b) = answer.body {
            r["body"] = b;
        }
        responses.push(r);
    }
    let a = Answer::json(200, json!({"responses": responses}));
    finish(&mut emu, "extra:batchResponse", &a);
    a
}

// ---------------------------------------------------------------------------------------
// Resources

/// Context of one request on one mailbox.
struct Ctx<'a> {
    now: DateTime<Utc>,
    base: &'a str,
    smtp: String,
    /// The user segment as the caller wrote it (links repeat it).
    user: String,
    view: View,
    page_size: usize,
    /// How answers name items (`Prefer: IdType="ImmutableId"` or REST ids).
    ids: IdType,
}

impl Ctx<'_> {
    /// The id answers give the store item `store_id`.
    fn item_id(&self, emu: &Emu, store_id: &str) -> String {
        match emu.mailbox(&self.smtp) {
            Some(mb) => ids::item_id(mb, store_id, self.ids),
            None => ids::rest_id(store_id),
        }
    }

    /// The store id a request's item id names (either Graph format).
    fn store_id(&self, emu: &Emu, graph_id: &str) -> String {
        match emu.mailbox(&self.smtp) {
            Some(mb) => ids::store_item_id(mb, graph_id),
            None => ids::store_folder_id(graph_id),
        }
    }
}

fn serve(emu: &mut Emu, now: DateTime<Utc>, base: &str, app: &GraphApp, req: &Req) -> Answer {
    let segs: Vec<&str> = req
        .segments
        .iter()
        .map(|s| s.strip_suffix("()").unwrap_or(s))
        .collect();
    // Calls are counted by resource kind: ids (and the user) left out.
    const NAMES: &[&str] = &[
        "contactFolders",
        "childFolders",
        "contacts",
        "events",
        "calendar",
        "calendarView",
        "instances",
        "cancel",
        "delta",
        "translateExchangeIds",
    ];
    let resource: Vec<&str> = segs
        .iter()
        .skip(2)
        .map(|s| if NAMES.contains(s) { *s } else { "{id}" })
        .collect();
    let kind = format!("{} {}", req.method, resource.join("/"));
    *emu.graph.calls.entry(kind).or_default() += 1;
    let (schema, answer) = match resolve(emu, now, base, app, req, &segs) {
        Ok(r) => r,
        Err(a) => ("microsoft.graph.ODataErrors.ODataError".to_string(), a),
    };
    finish(emu, &schema, &answer);
    // The body the client sent, against the operation's request schema.
    if let Some(body) = &req.body
        && matches!(req.method.as_str(), "POST" | "PATCH")
        && answer.status < 400
        && !schema.is_empty()
    {
        let request = match schema.strip_prefix("extra:") {
            Some(name) => format!("extra:{name}Request"),
            None => format!("{schema} request"),
        };
        emu.graph.record(&request, answer.status, body);
    }
    answer
}

type Served = Result<(String, Answer), Answer>;

fn resolve(
    emu: &mut Emu,
    now: DateTime<Utc>,
    base: &str,
    app: &GraphApp,
    req: &Req,
    segs: &[&str],
) -> Served {
    let fail = |emu: &mut Emu, status: u16, code: &str, msg: &str| -> Answer {
        error(emu, now, status, code, msg)
    };
    if segs.first() != Some(&"users") || segs.len() < 3 {
        return Err(fail(
            emu,
            400,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                segs.first().unwrap_or(&"")
            ),
        ));
    }
    let user = segs[1].to_string();
    if emu.graph.no_mailbox.contains(&user.to_ascii_lowercase()) {
        return Err(fail(
            emu,
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    let Some(mb) = emu.mailbox(&user) else {
        return Err(fail(
            emu,
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{user}' is invalid."),
        ));
    };
    let smtp = mb.smtp.clone();
    if !app.scope.allows(&mb.smtp, mb.department.as_deref()) {
        return Err(fail(
            emu,
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    let page_size = req
        .prefer("odata.maxpagesize")
        .and_then(|v| v.parse::<usize>().ok())
        .or_else(|| req.query("$top").and_then(|v| v.parse().ok()))
        .unwrap_or(10)
        .clamp(1, 999);
    let view = match view_of(req) {
        Ok(v) => v,
        Err((code, msg)) => return Err(fail(emu, 400, &code, &msg)),
    };
    let immutable = req
        .prefer("IdType")
        .is_some_and(|v| v.eq_ignore_ascii_case("ImmutableId"));
    let cx = Ctx {
        now,
        base,
        smtp,
        user,
        view,
        page_size,
        ids: if immutable {
            IdType::Immutable
        } else {
            IdType::Rest
        },
    };
    let rest = &segs[2..];
    let m = &req.method;
    let tpl = |t: &str| format!("{m} /users/{{user-id}}/{t}");
    let r = match (m.as_str(), rest) {
        ("POST", ["translateExchangeIds"]) => {
            translate_ids(emu, &cx, req).map(|a| ("extra:translateExchangeIds".to_string(), a))
        }
        ("GET", ["contactFolders"]) => {
            let root = default_folder(emu, &cx, "contacts")?;
            list_folders(emu, &cx, req, &root).map(|a| (tpl("contactFolders"), a))
        }
        ("POST", ["contactFolders"]) => {
            let root = default_folder(emu, &cx, "contacts")?;
            create_folder(emu, &cx, req, &root).map(|a| (tpl("contactFolders"), a))
        }
        ("GET", ["contactFolders", f]) => {
            let f = contact_folder(emu, &cx, f)?;
            get_folder(emu, &cx, &f).map(|a| (tpl("contactFolders/{contactFolder-id}"), a))
        }
        ("PATCH", ["contactFolders", f]) => {
            let f = contact_folder(emu, &cx, f)?;
            update_folder(emu, &cx, req, &f).map(|a| (tpl("contactFolders/{contactFolder-id}"), a))
        }
        ("DELETE", ["contactFolders", f]) => {
            let f = contact_folder(emu, &cx, f)?;
            match emu.delete_folder(&cx.smtp, &f, false) {
                Ok(()) => Ok((String::new(), Answer::empty(204))),
                Err((c, msg)) => Err(fail(emu, 400, &c, &msg)),
            }
        }
        ("GET", ["contactFolders", f, "childFolders"]) => {
            let f = contact_folder(emu, &cx, f)?;
            list_folders(emu, &cx, req, &f)
                .map(|a| (tpl("contactFolders/{contactFolder-id}/childFolders"), a))
        }
        ("POST", ["contactFolders", f, "childFolders"]) => {
            let f = contact_folder(emu, &cx, f)?;
            create_folder(emu, &cx, req, &f)
                .map(|a| (tpl("contactFolders/{contactFolder-id}/childFolders"), a))
        }
        (_, ["contactFolders", f, "contacts", more @ ..]) => {
            let folder = contact_folder(emu, &cx, f)?;
            let path = format!("contactFolders/{}/contacts", ids::rest_id(&folder));
            contacts(
                emu,
                &cx,
                req,
                &folder,
                &path,
                more,
                "contactFolders/{contactFolder-id}/contacts",
            )
        }
        (
            _,
            [
                "contactFolders",
                parent,
                "childFolders",
                f,
                "contacts",
                more @ ..,
            ],
        ) => {
            contact_folder(emu, &cx, parent)?;
            let folder = contact_folder(emu, &cx, f)?;
            let path = format!(
                "contactFolders/{parent}/childFolders/{}/contacts",
                ids::rest_id(&folder)
            );
            contacts(
                emu,
                &cx,
                req,
                &folder,
                &path,
                more,
                "contactFolders/{contactFolder-id}/childFolders/{contactFolder-id1}/contacts",
            )
        }
        (_, ["contacts", more @ ..]) => {
            let folder = default_folder(emu, &cx, "contacts")?;
            contacts(emu, &cx, req, &folder, "contacts", more, "contacts")
        }
        ("GET", ["calendarView"] | ["calendar", "calendarView"]) => {
            calendar_view(emu, &cx, req).map(|a| (tpl("calendarView"), a))
        }
        ("GET", ["calendarView", "delta"] | ["calendar", "calendarView", "delta"]) => {
            calendar_delta(emu, &cx, req).map(|a| (tpl("calendarView/delta()"), a))
        }
        (_, ["events", more @ ..] | ["calendar", "events", more @ ..]) => {
            events(emu, &cx, req, more)
        }
        _ => Err(fail(
            emu,
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{}'.", rest.join("/")),
        )),
    };
    let (schema, mut answer) = r?;
    if immutable {
        answer
            .headers
            .push(("Preference-Applied".into(), "IdType=\"ImmutableId\"".into()));
    }
    Ok((schema, answer))
}

fn view_of(req: &Req) -> Result<View, json::BodyError> {
    let select = req.query("$select").map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    });
    let expand = match req.query("$expand") {
        None => None,
        Some(e) => {
            let e = e.trim();
            let Some(rest) = e.strip_prefix("singleValueExtendedProperties") else {
                return Err((
                    "BadRequest".into(),
                    format!("The emulator does not support $expand={e}."),
                ));
            };
            if rest.trim().is_empty() {
                Some(json::ExpandExtended::All)
            } else {
                let names = quoted_after(rest, "id eq ")
                    .into_iter()
                    .map(|id| json::extended_name(&id))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(json::ExpandExtended::Names(names))
            }
        }
    };
    Ok(View {
        select,
        expand,
        zone: req.prefer("outlook.timezone"),
    })
}

/// Every single-quoted literal that follows `marker` in an OData expression ('' escapes ').
fn quoted_after(expr: &str, marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let Some(body) = rest.strip_prefix('\'') else {
            continue;
        };
        let mut value = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = body.len();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, c)| *c) == Some('\'') {
                    value.push('\'');
                    chars.next();
                    continue;
                }
                end = i + 1;
                break;
            }
            value.push(c);
        }
        out.push(value);
        rest = &body[end.min(body.len())..];
    }
    out
}

/// An item filter: `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`.
type Filter = Option<(String, String)>;

fn item_filter(emu: &mut Emu, cx: &Ctx<'_>, req: &Req) -> Result<Filter, Answer> {
    let Some(f) = req.query("$filter") else {
        return Ok(None);
    };
    let bad =
        |emu: &mut Emu, msg: String| error(emu, cx.now, 400, "ErrorInvalidUrlQueryFilter", &msg);
    if !f.trim_start().starts_with("singleValueExtendedProperties/") {
        return Err(bad(
            emu,
            format!("The emulator does not support this $filter: {f}"),
        ));
    }
    let id = quoted_after(f, "/id eq ");
    let value = quoted_after(f, "/value eq ");
    match (id.first(), value.first()) {
        (Some(id), Some(v)) => match json::extended_name(id) {
            Ok(name) => Ok(Some((name, v.clone()))),
            Err((code, msg)) => Err(error(emu, cx.now, 400, &code, &msg)),
        },
        _ => Err(bad(
            emu,
            format!("The $filter needs ep/id eq '…' and ep/value eq '…': {f}"),
        )),
    }
}

fn matches(filter: &Filter, extended: &std::collections::BTreeMap<String, String>) -> bool {
    filter
        .as_ref()
        .is_none_or(|(name, value)| extended.get(name) == Some(value))
}

fn not_found(emu: &mut Emu, now: DateTime<Utc>) -> Answer {
    error(
        emu,
        now,
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn default_folder(emu: &mut Emu, cx: &Ctx<'_>, name: &str) -> Result<String, Answer> {
    match emu
        .mailbox(&cx.smtp)
        .and_then(|m| m.distinguished(name))
        .map(|f| f.id.clone())
    {
        Some(f) => Ok(f),
        None => Err(not_found(emu, cx.now)),
    }
}

/// A contacts folder of the mailbox by Graph id (or the well-known name `contacts`).
fn contact_folder(emu: &mut Emu, cx: &Ctx<'_>, gid: &str) -> Result<String, Answer> {
    if gid.eq_ignore_ascii_case("contacts") {
        return default_folder(emu, cx, "contacts");
    }
    let id = ids::store_folder_id(gid);
    let found = emu
        .mailbox(&cx.smtp)
        .and_then(|m| m.folder(&id))
        .is_some_and(|f| f.class == "IPF.Contact");
    if found {
        Ok(id)
    } else {
        Err(error(
            emu,
            cx.now,
            404,
            "ErrorItemNotFound",
            "The specified folder could not be found in the store.",
        ))
    }
}

fn link(cx: &Ctx<'_>, path: &str) -> String {
    format!(
        "{}/v1.0/users/{}/{path}",
        cx.base,
        url::form_urlencoded::byte_serialize(cx.user.as_bytes()).collect::<String>()
    )
}

fn list_folders(emu: &mut Emu, cx: &Ctx<'_>, req: &Req, parent: &str) -> Result<Answer, Answer> {
    let name_filter = match req.query("$filter") {
        None => None,
        Some(f) if f.trim_start().starts_with("displayName eq ") => {
            quoted_after(f, "displayName eq ").into_iter().next()
        }
        Some(f) => {
            return Err(error(
                emu,
                cx.now,
                400,
                "ErrorInvalidUrlQueryFilter",
                &format!("The emulator does not support this $filter: {f}"),
            ));
        }
    };
    let mb = emu.mailbox(&cx.smtp);
    let values: Vec<Value> = mb
        .map(|m| {
            m.folders
                .iter()
                .filter(|f| f.parent.as_deref() == Some(parent) && f.class == "IPF.Contact")
                .filter(|f| {
                    name_filter
                        .as_ref()
                        .is_none_or(|n| f.name.eq_ignore_ascii_case(n))
                })
                .map(|f| json::write_folder(&f.id, parent, &f.name, &f.extended, &cx.view))
                .collect()
        })
        .unwrap_or_default();
    let path = if Some(parent) == default_folder(emu, cx, "contacts").ok().as_deref() {
        "contactFolders".to_string()
    } else {
        format!("contactFolders/{}/childFolders", ids::rest_id(parent))
    };
    Ok(delta::first_page(
        emu,
        &link(cx, &path),
        values,
        cx.page_size,
        None,
    ))
}

fn create_folder(emu: &mut Emu, cx: &Ctx<'_>, req: &Req, parent: &str) -> Result<Answer, Answer> {
    let body = match json::read_folder(req.body.as_ref().unwrap_or(&Value::Null), true) {
        Ok(b) => b,
        Err((c, m)) => return Err(error(emu, cx.now, 400, &c, &m)),
    };
    let name = body.name.unwrap_or_default();
    match emu.create_folder(&cx.smtp, parent, &name, "IPF.Contact") {
        Ok(id) => {
            let extended: std::collections::BTreeMap<String, String> = body
                .extended
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
            if let Some(f) = emu
                .mailbox_mut(&cx.smtp)
                .ok()
                .and_then(|m| m.folders.iter_mut().find(|f| f.id == id))
            {
                f.extended = extended.clone();
            }
            Ok(Answer::json(
                201,
                json::write_folder(&id, parent, &name, &extended, &cx.view),
            ))
        }
        Err((code, msg)) if code == "ErrorFolderExists" => {
            Err(error(emu, cx.now, 409, &code, &msg))
        }
        Err((code, msg)) => Err(error(emu, cx.now, 400, &code, &msg)),
    }
}

/// PATCH of a contactFolder: its displayName and singleValueExtendedProperties (a property
/// with a null value is removed). 200 with the folder.
fn update_folder(emu: &mut Emu, cx: &Ctx<'_>, req: &Req, id: &str) -> Result<Answer, Answer> {
    let body = match json::read_folder(req.body.as_ref().unwrap_or(&Value::Null), false) {
        Ok(b) => b,
        Err((c, m)) => return Err(error(emu, cx.now, 400, &c, &m)),
    };
    let ck = emu.new_change_key();
    let Some(f) = emu
        .mailbox_mut(&cx.smtp)
        .ok()
        .and_then(|m| m.folders.iter_mut().find(|f| f.id == id))
    else {
        return Err(not_found(emu, cx.now));
    };
    if let Some(name) = body.name {
        f.name = name;
    }
    for (name, value) in body.extended {
        match value {
            Some(v) => f.extended.insert(name, v),
            None => f.extended.remove(&name),
        };
    }
    f.change_key = ck;
    let f = f.clone();
    Ok(Answer::json(
        200,
        json::write_folder(
            &f.id,
            f.parent.as_deref().unwrap_or(""),
            &f.name,
            &f.extended,
            &cx.view,
        ),
    ))
}

fn get_folder(emu: &mut Emu, cx: &Ctx<'_>, id: &str) -> Result<Answer, Answer> {
    let f = emu.mailbox(&cx.smtp).and_then(|m| m.folder(id)).cloned();
    match f {
        Some(f) => Ok(Answer::json(
            200,
            json::write_folder(
                &f.id,
                f.parent.as_deref().unwrap_or(""),
                &f.name,
                &f.extended,
                &cx.view,
            ),
        )),
        None => Err(not_found(emu, cx.now)),
    }
}

/// The contacts of a folder as (id, change key, JSON).
fn folder_contacts(
    emu: &Emu,
    cx: &Ctx<'_>,
    folder: &str,
    filter: &Filter,
) -> Vec<(String, String, Value)> {
    let Some(mb) = emu.mailbox(&cx.smtp) else {
        return Vec::new();
    };
    mb.items
        .values()
        .filter(|s| s.folder == folder)
        .filter_map(|s| match &s.item {
            Item::Contact(c) if matches(filter, &c.extended) => {
                let id = ids::item_id(mb, &s.id, cx.ids);
                let stamp = json::Stamp {
                    id: &id,
                    change_key: &s.change_key,
                    parent_folder: &s.folder,
                };
                Some((
                    s.id.clone(),
                    s.change_key.clone(),
                    json::write_contact(c, &stamp, &cx.view),
                ))
            }
            _ => None,
        })
        .collect()
}

fn contacts(
    emu: &mut Emu,
    cx: &Ctx<'_>,
    req: &Req,
    folder: &str,
    path: &str,
    more: &[&str],
    tpl: &str,
) -> Served {
    let m = req.method.as_str();
    let schema = |t: &str| format!("{m} /users/{{user-id}}/{t}");
    match (m, more) {
        ("GET", []) => {
            let filter = item_filter(emu, cx, req)?;
            if let Some(tok) = req.query("$skiptoken") {
                return delta::next_page(emu, cx.now, tok).map(|a| (schema(tpl), a));
            }
            let values = folder_contacts(emu, cx, folder, &filter)
                .into_iter()
                .map(|(_, _, v)| v)
                .collect();
            Ok((
                schema(tpl),
                delta::first_page(emu, &link(cx, path), values, cx.page_size, None),
            ))
        }
        ("POST", []) => {
            let mut c = Contact::default();
            if let Err((code, msg)) =
                json::apply_contact(req.body.as_ref().unwrap_or(&Value::Null), &mut c)
            {
                return Err(error(emu, cx.now, 400, &code, &msg));
            }
            match emu.create_item(&cx.smtp, folder, Item::Contact(Box::new(c)), cx.now) {
                Ok(id) => {
                    let a = contact_answer(emu, cx, &id.id, 201)?;
                    Ok((schema(tpl), a))
                }
                Err((code, msg)) => Err(error(emu, cx.now, 400, &code, &msg)),
            }
        }
        ("GET", ["delta"]) => {
            let kind = DeltaKind::Contacts {
                folder: folder.to_string(),
            };
            let answer = run_delta(emu, cx, req, kind, &format!("{path}/delta()"))?;
            Ok((schema(&format!("{tpl}/delta()")), answer))
        }
        (_, [gid]) => {
            let id = cx.store_id(emu, gid);
            let in_folder = emu
                .mailbox(&cx.smtp)
                .and_then(|mb| mb.items.get(&id))
                .is_some_and(|s| s.folder == folder && matches!(s.item, Item::Contact(_)));
            if !in_folder {
                return Err(not_found(emu, cx.now));
            }
            let tpl = format!("{tpl}/{{contact-id}}");
            match m {
                "GET" => Ok((schema(&tpl), contact_answer(emu, cx, &id, 200)?)),
                "PATCH" => {
                    let Some(Item::Contact(mut c)) = emu
                        .mailbox(&cx.smtp)
                        .and_then(|mb| mb.items.get(&id))
                        .map(|s| s.item.clone())
                    else {
                        return Err(not_found(emu, cx.now));
                    };
                    if let Err((code, msg)) =
                        json::apply_contact(req.body.as_ref().unwrap_or(&Value::Null), &mut c)
                    {
                        return Err(error(emu, cx.now, 400, &code, &msg));
                    }
                    let _ = emu.edit_item(&cx.smtp, &id, |item| *item = Item::Contact(c), cx.now);
                    Ok((schema(&tpl), contact_answer(emu, cx, &id, 200)?))
                }
                "DELETE" => match emu.delete_item(&cx.smtp, &id) {
                    Ok(()) => Ok((String::new(), Answer::empty(204))),
                    Err(_) => Err(not_found(emu, cx.now)),
                },
                _ => Err(error(
                    emu,
                    cx.now,
                    405,
                    "BadRequest",
                    "The method is not allowed here.",
                )),
            }
        }
        _ => Err(error(
            emu,
            cx.now,
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{}'.", more.join("/")),
        )),
    }
}

fn contact_answer(emu: &mut Emu, cx: &Ctx<'_>, id: &str, status: u16) -> Result<Answer, Answer> {
    let v = emu
        .mailbox(&cx.smtp)
        .and_then(|mb| Some((mb, mb.items.get(id)?)))
        .and_then(|(mb, s)| match &s.item {
            Item::Contact(c) => Some(json::write_contact(
                c,
                &json::Stamp {
                    id: &ids::item_id(mb, &s.id, cx.ids),
                    change_key: &s.change_key,
                    parent_folder: &s.folder,
                },
                &cx.view,
            )),
            _ => None,
        });
    match v {
        Some(v) => Ok(Answer::json(status, v)),
        None => Err(not_found(emu, cx.now)),
    }
}

/// A delta round: the first call, a `$skiptoken` page, or a `$deltatoken` round.
fn run_delta(
    emu: &mut Emu,
    cx: &Ctx<'_>,
    req: &Req,
    kind: DeltaKind,
    path: &str,
) -> Result<Answer, Answer> {
    if let Some(tok) = req.query("$skiptoken") {
        return delta::next_page(emu, cx.now, tok);
    }
    let (seen, select) = match req.query("$deltatoken") {
        Some(tok) => match emu.graph.deltas.get(tok) {
            Some(state) if state.mailbox.eq_ignore_ascii_case(&cx.smtp) && state.kind == kind => {
                (state.seen.clone(), state.select.clone())
            }
            _ => {
                let n = emu.next();
                let msg = format!("The sync state generation is not found; generation={n}");
                return Err(error(emu, cx.now, 410, "SyncStateNotFound", &msg));
            }
        },
        None => (Default::default(), cx.view.select.clone()),
    };
    let cx = &Ctx {
        now: cx.now,
        base: cx.base,
        smtp: cx.smtp.clone(),
        user: cx.user.clone(),
        view: View {
            select: select.clone(),
            ..cx.view.clone()
        },
        page_size: cx.page_size,
        ids: cx.ids,
    };
    let current = match &kind {
        DeltaKind::Contacts { folder } => folder_contacts(emu, cx, folder, &None),
        DeltaKind::CalendarView { start, end } => view_events(emu, cx, *start, *end),
    };
    let link = Link {
        select,
        url: link(cx, path),
        mailbox: cx.smtp.clone(),
        kind,
        ids: cx.ids,
    };
    Ok(delta::start_round(emu, link, seen, current, cx.page_size))
}

/// Most ids one translateExchangeIds call takes ("Maximum size of this collection is 1000
/// strings").
const TRANSLATE_LIMIT: usize = 1000;

/// `POST /users/{id}/translateExchangeIds`: each id of the mailbox in the target format, or
/// its own `errorDetails` (convertIdResult) when it is malformed or names no item. Apps
/// within their mailbox scope may call it, as the page's 2021 revision grants (application
/// `User.Read.All`); today's v1.0 page lists application permissions as not supported. The
/// per-id error codes are not documented: `ErrorInvalidIdMalformed`, `ErrorItemNotFound`.
fn translate_ids(emu: &mut Emu, cx: &Ctx<'_>, req: &Req) -> Result<Answer, Answer> {
    let (input, from, to) =
        match json::read_translate_request(req.body.as_ref().unwrap_or(&Value::Null)) {
            Ok(r) => r,
            Err((code, msg)) => return Err(error(emu, cx.now, 400, &code, &msg)),
        };
    if input.is_empty() || input.len() > TRANSLATE_LIMIT {
        let msg = format!(
            "inputIds holds {} ids; a call takes 1 to {TRANSLATE_LIMIT}.",
            input.len()
        );
        return Err(error(emu, cx.now, 400, "ErrorInvalidParameter", &msg));
    }
    let Some(mb) = emu.mailbox(&cx.smtp) else {
        return Err(not_found(emu, cx.now));
    };
    let value: Vec<Value> = input
        .iter()
        .map(|id| match ids::translate(mb, id, &from, &to) {
            Ok(target) => json!({"sourceId": id, "targetId": target}),
            Err((code, message)) => {
                json!({"sourceId": id, "errorDetails": {"code": code, "message": message}})
            }
        })
        .collect();
    Ok(Answer::json(200, json!({ "value": value })))
}

// ---------------------------------------------------------------------------------------
// Events

fn window(
    emu: &mut Emu,
    cx: &Ctx<'_>,
    req: &Req,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Answer> {
    let parse = |k: &str| {
        req.query(k).and_then(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|n| n.and_utc())
                })
        })
    };
    match (parse("startDateTime"), parse("endDateTime")) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(error(
            emu,
            cx.now,
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )),
    }
}

/// Occurrences, exceptions and single events of the default calendar in the window.
fn view_events(
    emu: &Emu,
    cx: &Ctx<'_>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(String, String, Value)> {
    let Some(mb) = emu.mailbox(&cx.smtp) else {
        return Vec::new();
    };
    let Some(cal) = mb.distinguished("calendar") else {
        return Vec::new();
    };
    crate::exchange::ops::calendar_view(mb, &cal.id, start, end)
        .into_iter()
        .filter_map(|e| {
            let id = e.item_id.clone()?;
            let master = parse_occurrence_id(&id.id).map(|(m, _)| m);
            let v = event_json(
                emu,
                cx,
                &e,
                &id.id,
                id.change_key.as_deref().unwrap_or(""),
                master.as_deref(),
            );
            Some((id.id, id.change_key.unwrap_or_default(), v))
        })
        .collect()
}

fn event_json(
    emu: &Emu,
    cx: &Ctx<'_>,
    e: &CalendarEvent,
    id: &str,
    ck: &str,
    master: Option<&str>,
) -> Value {
    let tx = emu
        .graph
        .transactions_by_item
        .get(master.unwrap_or(id))
        .map(String::as_str);
    let master = master.map(|m| cx.item_id(emu, m));
    json::write_event(
        e,
        &json::EventStamp {
            id: &cx.item_id(emu, id),
            change_key: ck,
            master_id: master.as_deref(),
            mailbox: &cx.smtp,
            transaction_id: tx,
        },
        &cx.view,
    )
}

fn calendar_view(emu: &mut Emu, cx: &Ctx<'_>, req: &Req) -> Result<Answer, Answer> {
    if let Some(tok) = req.query("$skiptoken") {
        return delta::next_page(emu, cx.now, tok);
    }
    let (s, e) = window(emu, cx, req)?;
    let filter = item_filter(emu, cx, req)?;
    let values: Vec<Value> = view_events(emu, cx, s, e)
        .into_iter()
        .filter(|(id, _, _)| {
            filter.is_none()
                || event(emu, &cx.smtp, id).is_some_and(|(ev, _, _)| matches(&filter, &ev.extended))
        })
        .map(|(_, _, v)| v)
        .collect();
    Ok(delta::first_page(
        emu,
        &link(cx, "calendarView"),
        values,
        cx.page_size,
        None,
    ))
}

fn calendar_delta(emu: &mut Emu, cx: &Ctx<'_>, req: &Req) -> Result<Answer, Answer> {
    let first = req.query("$skiptoken").is_none() && req.query("$deltatoken").is_none();
    let kind = if first {
        let (start, end) = window(emu, cx, req)?;
        DeltaKind::CalendarView { start, end }
    } else {
        // The window is frozen in the token.
        let tok = req.query("$deltatoken").unwrap_or("");
        match emu.graph.deltas.get(tok) {
            Some(s) => s.kind.clone(),
            None => DeltaKind::CalendarView {
                start: cx.now,
                end: cx.now,
            },
        }
    };
    run_delta(emu, cx, req, kind, "calendarView/delta()")
}

/// An event (stored item or occurrence) by store id: (event, change key, master id).
fn event(emu: &Emu, smtp: &str, id: &str) -> Option<(CalendarEvent, String, Option<String>)> {
    let mb = emu.mailbox(smtp)?;
    if let Some((master, orig)) = parse_occurrence_id(id) {
        let stored = mb.items.get(&master)?;
        let Item::Event(e) = stored.current() else {
            return None;
        };
        let o = crate::exchange::state::occurrence(stored, &e, orig)?;
        let ck = o.item_id.as_ref()?.change_key.clone().unwrap_or_default();
        return Some((o, ck, Some(master)));
    }
    let stored = mb.items.get(id)?;
    match stored.current() {
        Item::Event(e) => Some((*e, stored.change_key.clone(), None)),
        _ => None,
    }
}

fn attendees_of(e: &CalendarEvent) -> Vec<String> {
    e.required_attendees
        .iter()
        .chain(&e.optional_attendees)
        .map(|a| a.mailbox.email.clone())
        .collect()
}

fn is_organizer(e: &CalendarEvent, smtp: &str) -> bool {
    e.organizer
        .as_ref()
        .is_none_or(|o| o.email.eq_ignore_ascii_case(smtp))
}

fn sent(emu: &mut Emu, kind: &'static str, smtp: &str, id: &str, recipients: Vec<String>) {
    if !recipients.is_empty() {
        emu.graph.sent.push(SentMeetingMessage {
            kind,
            mailbox: smtp.to_string(),
            event_id: id.to_string(),
            recipients,
        });
    }
}

fn event_answer(emu: &mut Emu, cx: &Ctx<'_>, id: &str, status: u16) -> Result<Answer, Answer> {
    match event(emu, &cx.smtp, id) {
        Some((e, ck, master)) => Ok(Answer::json(
            status,
            event_json(emu, cx, &e, id, &ck, master.as_deref()),
        )),
        None => Err(not_found(emu, cx.now)),
    }
}

fn events(emu: &mut Emu, cx: &Ctx<'_>, req: &Req, more: &[&str]) -> Served {
    let m = req.method.as_str();
    let schema = |t: &str| format!("{m} /users/{{user-id}}/events{t}");
    let body = req.body.clone().unwrap_or(Value::Null);
    match (m, more) {
        ("GET", []) => {
            if let Some(tok) = req.query("$skiptoken") {
                return delta::next_page(emu, cx.now, tok).map(|a| (schema(""), a));
            }
            let filter = item_filter(emu, cx, req)?;
            let cal = default_folder(emu, cx, "calendar")?;
            let values: Vec<Value> = emu
                .mailbox(&cx.smtp)
                .map(|mb| {
                    mb.items
                        .values()
                        .filter(|s| s.folder == cal)
                        .filter_map(|s| match s.current() {
                            Item::Event(e) if matches(&filter, &e.extended) => {
                                Some(event_json(emu, cx, &e, &s.id, &s.change_key, None))
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((
                schema(""),
                delta::first_page(emu, &link(cx, "events"), values, cx.page_size, None),
            ))
        }
        ("POST", []) => {
            let start = cx.now;
            let mut e = CalendarEvent::new(start, start);
            let has_times = body.get("start").is_some() && body.get("end").is_some();
            let tx = match json::apply_event(&body, &mut e) {
                Ok(_) if !has_times => {
                    return Err(error(
                        emu,
                        cx.now,
                        400,
                        "ErrorInvalidRequest",
                        "An event needs a start and an end.",
                    ));
                }
                Ok(tx) => tx,
                Err((code, msg)) => return Err(error(emu, cx.now, 400, &code, &msg)),
            };
            if let Some(tx) = &tx {
                let key = (cx.smtp.to_ascii_lowercase(), tx.clone());
                if let Some(existing) = emu.graph.transactions.get(&key).cloned()
                    && let Some((prev, _, _)) = event(emu, &cx.smtp, &existing)
                {
                    if json::same_event(&prev, &e) {
                        return Ok((schema(""), event_answer(emu, cx, &existing, 201)?));
                    }
                    return Err(error(
                        emu,
                        cx.now,
                        400,
                        "ErrorDuplicateTransactionId",
                        &format!(
                            "Your request can't be completed. The transactionId '{tx}' has already been used to create a different event."
                        ),
                    ));
                }
            }
            let recipients = attendees_of(&e);
            let cal = default_folder(emu, cx, "calendar")?;
            match emu.create_item(&cx.smtp, &cal, Item::Event(Box::new(e)), cx.now) {
                Ok(id) => {
                    if let Some(tx) = tx {
                        emu.graph
                            .transactions
                            .insert((cx.smtp.to_ascii_lowercase(), tx.clone()), id.id.clone());
                        emu.graph.transactions_by_item.insert(id.id.clone(), tx);
                    }
                    sent(emu, "invitation", &cx.smtp.clone(), &id.id, recipients);
                    Ok((schema(""), event_answer(emu, cx, &id.id, 201)?))
                }
                Err((code, msg)) => Err(error(emu, cx.now, 400, &code, &msg)),
            }
        }
        ("GET", ["delta"]) => Err(error(
            emu,
            cx.now,
            400,
            "InvalidDeltaToken",
            "events/delta without a window is not available in v1.0; use calendarView/delta.",
        )),
        ("GET", [gid, "instances"]) => {
            let master = cx.store_id(emu, gid);
            let (s, e) = window(emu, cx, req)?;
            let values = view_events(emu, cx, s, e)
                .into_iter()
                .filter(|(id, _, _)| parse_occurrence_id(id).is_some_and(|(m, _)| m == master))
                .map(|(_, _, v)| v)
                .collect();
            let path = format!("events/{gid}/instances");
            Ok((
                schema("/{event-id}/instances"),
                delta::first_page(emu, &link(cx, &path), values, cx.page_size, None),
            ))
        }
        ("POST", [gid, "cancel"]) => {
            let id = cx.store_id(emu, gid);
            let Some((e, _, _)) = event(emu, &cx.smtp, &id) else {
                return Err(not_found(emu, cx.now));
            };
            if !is_organizer(&e, &cx.smtp) {
                return Err(error(
                    emu,
                    cx.now,
                    400,
                    "ErrorAccessDenied",
                    "Only the organizer can cancel a meeting.",
                ));
            }
            sent(emu, "cancellation", &cx.smtp.clone(), &id, attendees_of(&e));
            let _ = emu.delete_item(&cx.smtp, &id);
            Ok((String::new(), Answer::empty(202)))
        }
        (_, [gid]) => {
            let id = cx.store_id(emu, gid);
            let Some((before, _, master)) = event(emu, &cx.smtp, &id) else {
                return Err(not_found(emu, cx.now));
            };
            match m {
                "GET" => Ok((schema("/{event-id}"), event_answer(emu, cx, &id, 200)?)),
                "PATCH" => {
                    let mut after = match (
                        &master,
                        emu.mailbox(&cx.smtp).and_then(|mb| mb.items.get(&id)),
                    ) {
                        (None, Some(s)) => match &s.item {
                            Item::Event(e) => (**e).clone(),
                            _ => return Err(not_found(emu, cx.now)),
                        },
                        _ => before.clone(),
                    };
                    if body.get("transactionId").is_some() {
                        return Err(error(
                            emu,
                            cx.now,
                            400,
                            "ErrorInvalidProperty",
                            "transactionId is set on create and cannot be changed.",
                        ));
                    }
                    if let Err((code, msg)) = json::apply_event(&body, &mut after) {
                        return Err(error(emu, cx.now, 400, &code, &msg));
                    }
                    let result = match &master {
                        Some(master_id) => {
                            // An occurrence: only its time can change (it becomes an exception).
                            let orig = before.original_start.unwrap_or(before.start);
                            let only_times = body
                                .as_object()
                                .is_some_and(|o| o.keys().all(|k| k == "start" || k == "end"));
                            if !only_times {
                                return Err(error(
                                    emu,
                                    cx.now,
                                    400,
                                    "ErrorInvalidProperty",
                                    "The emulator changes only start and end of an occurrence.",
                                ));
                            }
                            emu.modify_occurrence(
                                &cx.smtp,
                                master_id,
                                orig,
                                Some((after.start, after.end)),
                                cx.now,
                            )
                            .map(|_| ())
                        }
                        None => emu
                            .edit_item(
                                &cx.smtp,
                                &id,
                                |item| *item = Item::Event(Box::new(after.clone())),
                                cx.now,
                            )
                            .map(|_| ()),
                    };
                    if let Err((code, msg)) = result {
                        return Err(error(emu, cx.now, 400, &code, &msg));
                    }
                    let changed = before.start != after.start
                        || before.end != after.end
                        || before.location != after.location
                        || attendees_of(&before) != attendees_of(&after);
                    if changed && is_organizer(&after, &cx.smtp) {
                        let mut to = attendees_of(&after);
                        for gone in attendees_of(&before) {
                            if !to.contains(&gone) {
                                to.push(gone);
                            }
                        }
                        sent(emu, "update", &cx.smtp.clone(), &id, to);
                    }
                    Ok((schema("/{event-id}"), event_answer(emu, cx, &id, 200)?))
                }
                "DELETE" => {
                    let result = match (&master, before.original_start) {
                        (Some(master_id), Some(orig)) => {
                            emu.modify_occurrence(&cx.smtp, master_id, orig, None, cx.now)
                        }
                        _ => emu.delete_item(&cx.smtp, &id),
                    };
                    if result.is_err() {
                        return Err(not_found(emu, cx.now));
                    }
                    if is_organizer(&before, &cx.smtp) {
                        sent(
                            emu,
                            "cancellation",
                            &cx.smtp.clone(),
                            &id,
                            attendees_of(&before),
                        );
                    }
                    Ok((String::new(), Answer::empty(204)))
                }
                _ => Err(error(
                    emu,
                    cx.now,
                    405,
                    "BadRequest",
                    "The method is not allowed here.",
                )),
            }
        }
        _ => Err(error(
            emu,
            cx.now,
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{}'.", more.join("/")),
        )),
    }
}
