//! HTTP side of the emulator: the OAuth token endpoint and a dispatcher for the REST API.

use super::soql::{self, Resolver, format_datetime, parse_datetime};
use super::store::{RecError, WriteKind};
use super::{KindFault, Org, Shared, find_user};
use crate::secret::Secret;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};
use std::sync::Arc;

type App = Arc<Shared>;

/// "API Query Cursor Limits": cursors and their results are available for 2 days, and
/// there is no limit on open cursors (the old 10-per-user limit ended with API 56.0, for all
/// versions).
fn cursor_lifetime() -> Duration {
    Duration::days(2)
}

pub(super) fn router(shared: App) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/Soap/m/{version}", post(super::metadata::soap))
        .fallback(dispatch)
        // Bodies are capped by max_body_bytes in the handlers (413 in the API's error shape).
        .layer(axum::extract::DefaultBodyLimit::max(
            shared
                .max_body_bytes
                .max(super::bulk::MAX_UPLOAD_BYTES)
                .saturating_add(1),
        ))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!([{"message": message, "errorCode": code}]))
}

fn form(body: &[u8]) -> Map<String, Value> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

fn s<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    {
        let mut org = app.org();
        *org.served.entry("auth".into()).or_default() += 1;
    }
    if let Some(r) = pre_faults(&app).await {
        return r;
    }
    if let Some(KindFault::Status(code)) = take_targeted(&app, "auth") {
        return status_error(code);
    }
    let f = form(&body);
    let grant = s(&f, "grant_type");
    let user = match grant {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => jwt_grant(&app, s(&f, "assertion")),
        "client_credentials" => {
            let (id, secret) = basic_credentials(&headers)
                .unwrap_or_else(|| (s(&f, "client_id").into(), s(&f, "client_secret").into()));
            if id != app.app.client_id {
                Err(("invalid_client_id", "client identifier invalid"))
            } else if secret != app.app.client_secret.expose() {
                Err(("invalid_client", "invalid client credentials"))
            } else {
                match &app.app.client_credentials_user {
                    None => Err(("invalid_grant", "no client credentials user enabled")),
                    Some(u) => find_user(&app.org().store, u)
                        .ok_or(("invalid_grant", "no client credentials user enabled")),
                }
            }
        }
        "refresh_token" => {
            if s(&f, "client_id") != app.app.client_id {
                Err(("invalid_client_id", "client identifier invalid"))
            } else if f.contains_key("client_secret")
                && s(&f, "client_secret") != app.app.client_secret.expose()
            {
                Err(("invalid_client", "invalid client credentials"))
            } else {
                app.org()
                    .refresh_tokens
                    .get(s(&f, "refresh_token"))
                    .cloned()
                    .ok_or(("invalid_grant", "expired access/refresh token"))
            }
        }
        "password" => {
            if s(&f, "client_id") != app.app.client_id {
                Err(("invalid_client_id", "client identifier invalid"))
            } else if s(&f, "client_secret") != app.app.client_secret.expose() {
                Err(("invalid_client", "invalid client credentials"))
            } else if !app.username_password_enabled {
                Err(("invalid_grant", "authentication failure"))
            } else {
                let org = app.org();
                let username = s(&f, "username");
                let ok = org
                    .passwords
                    .get(&username.to_ascii_lowercase())
                    .is_some_and(|p| p == &Secret::new(s(&f, "password")));
                match find_user(&org.store, username) {
                    Some(u) if ok => Ok(u),
                    _ => Err(("invalid_grant", "authentication failure")),
                }
            }
        }
        "" => Err(("invalid_request", "grant type not supported")),
        _ => Err(("unsupported_grant_type", "grant type not supported")),
    };
    match user {
        Ok(user_id) => issue_token(&app, &user_id, grant),
        Err((e, d)) => oauth_error(e, d),
    }
}

fn basic_credentials(h: &HeaderMap) -> Option<(String, String)> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    // Basic credentials are form-encoded before base64 (RFC 6749 §2.3.1).
    let dec = |x: &str| {
        url::form_urlencoded::parse(format!("a={x}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((dec(id), dec(secret)))
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
}

fn jwt_grant(app: &Shared, assertion: &str) -> Result<String, (&'static str, &'static str)> {
    let invalid = ("invalid_grant", "invalid assertion");
    let pem = app.app.jwt_certificate_pem.as_deref().ok_or(invalid)?;
    let key = super::cert::decoding_key(pem).ok_or(invalid)?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // Expiry and audience are checked below against the emulator's clock and URLs.
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(assertion, &key, &v).map_err(|_| invalid)?;
    let c = data.claims;
    if c.iss.as_deref() != Some(app.app.client_id.as_str()) {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    let auds: Vec<String> = match c.aud {
        Some(Value::String(a)) => vec![a],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    // OAuth 2.0 JWT Bearer Flow: aud is https://login.salesforce.com (https://test.salesforce.com
    // for sandboxes), whatever host receives the token request; a My Domain (here, the
    // emulator's own URL) is not an accepted audience.
    let accepted = |a: &str| {
        let a = a.trim_end_matches('/');
        a == "https://login.salesforce.com" || a == "https://test.salesforce.com"
    };
    if !auds.iter().any(|a| accepted(a)) {
        return Err(("invalid_grant", "audience is invalid"));
    }
    let now = app.clock.now().timestamp();
    match c.exp {
        Some(exp) if exp < now => return Err(("invalid_grant", "expired authorization code")),
        Some(exp) if exp > now + 180 => return Err(("invalid_grant", "invalid assertion")),
        Some(_) => {}
        None => return Err(invalid),
    }
    let sub = c.sub.unwrap_or_default();
    find_user(&app.org().store, &sub).ok_or(("invalid_grant", "user hasn't approved this consumer"))
}

/// The success body differs by flow, as the OAuth flow pages' examples show: JWT bearer gives
/// access_token, scope, instance_url, id, token_type (no issued_at, no signature); refresh
/// token and client credentials add issued_at (epoch millis as a string) and signature;
/// username-password has issued_at and signature but no scope.
fn issue_token(app: &Shared, user_id: &str, grant: &str) -> Response {
    let now = app.clock.now();
    let mut org = app.org();
    org.token_counter += 1;
    let token = format!(
        "{}!AQtether.session.{}",
        &org.org_id[..15],
        org.token_counter
    );
    org.sessions.insert(
        token.clone(),
        super::Session {
            user_id: user_id.into(),
            valid: true,
        },
    );
    let id_url = format!("{}/id/{}/{}", app.base_url, org.org_id, user_id);
    let issued = now.timestamp_millis().to_string();
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        app.app.client_secret.expose().as_bytes(),
    );
    let sig = ring::hmac::sign(&key, format!("{id_url}{issued}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(sig.as_ref());
    let mut body = json!({
        "access_token": token,
        "instance_url": app.base_url,
        "id": id_url,
        "token_type": "Bearer",
    });
    if grant != "password" {
        body["scope"] = json!("api");
    }
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        body["issued_at"] = json!(issued);
        body["signature"] = json!(signature);
    }
    json_response(StatusCode::OK, &body)
}

/// Latency, dropped connections and injected statuses, applied before any handling.
async fn pre_faults(app: &Shared) -> Option<Response> {
    let (latency, drop, status) = {
        let mut org = app.org();
        let f = &mut org.faults;
        let drop = if f.drop_next > 0 {
            f.drop_next -= 1;
            true
        } else {
            false
        };
        let status = if drop { None } else { f.statuses.pop_front() };
        (f.latency, drop, status)
    };
    if let Some(l) = latency {
        tokio::time::sleep(l).await;
    }
    if drop {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(
                b"{\"totalSize\":1,\"done\":true,\"records\":[",
            )),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "dropped",
            )),
        ];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        return Some((StatusCode::OK, body).into_response());
    }
    Some(status_error(status?))
}

/// The answer for an injected HTTP status.
fn status_error(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        503 => errors(
            code,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable. Please try again later.",
        ),
        _ => errors(
            code,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
        ),
    }
}

/// The first fault queued for this kind of request, taken off the queue.
fn take_targeted(app: &Shared, kind: &str) -> Option<KindFault> {
    let mut org = app.org();
    let at = org.faults.targeted.iter().position(|(k, _)| k == kind)?;
    Some(org.faults.targeted.remove(at).1)
}

fn kind_of(rest: &[&str]) -> &'static str {
    match rest {
        ["query" | "queryAll"] => "query",
        ["query" | "queryAll", _] => "query_more",
        ["limits"] => "limits",
        ["sobjects", _, "describe"] => "describe",
        ["sobjects", _, "updated"] => "updated",
        ["sobjects", _, "deleted"] => "deleted",
        ["sobjects", ..] => "sobject",
        ["composite", ..] => "collection",
        ["jobs", "ingest", _, "batches"] => "bulk_upload",
        ["jobs", "ingest", _, _] => "bulk_results",
        ["jobs", ..] => "bulk_job",
        _ => "other",
    }
}

/// Every REST response carries `Sforce-Limit-Info`, errors and injected faults included.
async fn dispatch(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = dispatch_inner(&app, method, uri, headers, body).await;
    let now = app.clock.now();
    let mut org = app.org();
    org.refresh_usage(now);
    with_limit_header(r, &org)
}

async fn dispatch_inner(
    app: &App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    let (version, rest): (Option<&str>, Vec<&str>) = match segs.as_slice() {
        ["services", "data", v, rest @ ..] => (Some(*v), rest.to_vec()),
        _ => (None, vec![]),
    };
    {
        let mut org = app.org();
        *org.served.entry(kind_of(&rest).into()).or_default() += 1;
    }
    if let Some(r) = pre_faults(app).await {
        return r;
    }
    let targeted = take_targeted(app, kind_of(&rest));
    match targeted {
        Some(KindFault::Status(code)) => return status_error(code),
        Some(KindFault::ExpireSessions) => {
            for sess in app.org().sessions.values_mut() {
                sess.valid = false;
            }
        }
        _ => {}
    }
    if segs == ["services", "data"] {
        return json_response(
            StatusCode::OK,
            &json!([{"label": "Winter '25", "url": format!("/services/data/v{}", app.version), "version": app.version}]),
        );
    }
    let Some(version) = version
        .and_then(|v| v.strip_prefix('v'))
        .filter(|v| valid_version(v, &app.version))
    else {
        return errors(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    let version = version.to_string();
    // Session check.
    let now = app.clock.now();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim)
        .unwrap_or("");
    let mut org = app.org();
    let user_id = match org.sessions.get(bearer) {
        Some(sess) if sess.valid => sess.user_id.clone(),
        _ => {
            return errors(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            );
        }
    };
    let concurrent_limit = targeted == Some(KindFault::ConcurrentLimit);
    if concurrent_limit || org.faults.concurrent_limit_next > 0 {
        if !concurrent_limit {
            org.faults.concurrent_limit_next -= 1;
        }
        let r = errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        );
        return with_limit_header(r, &org);
    }
    org.refresh_usage(now);
    if org.api_used >= org.api_max {
        let r = errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        );
        return with_limit_header(r, &org);
    }
    org.record_call(now);
    super::bulk::run_unpolled(&mut org, now);
    let query: Map<String, Value> = form(uri.query().unwrap_or("").as_bytes());
    let ctx = Ctx {
        version: &version,
        user_id: &user_id,
        now,
        headers: &headers,
    };
    // Bulk API 2.0 job data has its own limit (see `bulk::upload`).
    let body_limit = match rest.as_slice() {
        ["jobs", "ingest", _, "batches"] => super::bulk::MAX_UPLOAD_BYTES,
        _ => app.max_body_bytes,
    };
    let mut resp = if body.len() > body_limit {
        errors(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_ENTITY_TOO_LARGE",
            "Request entity too large",
        )
    } else {
        route(&ctx, &mut org, &method, &rest, &query, &body)
    };
    if targeted == Some(KindFault::DropResponse) {
        // The work is done; the answer breaks off half way.
        use futures_util::StreamExt;
        let (parts, body) = with_limit_header(resp, &org).into_parts();
        let half = body.into_data_stream().take(1).map(|chunk| {
            chunk
                .map(|b| b.slice(..b.len() / 2))
                .map_err(std::io::Error::other)
        });
        let reset = futures_util::stream::iter([Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "dropped",
        ))]);
        return Response::from_parts(parts, Body::from_stream(half.chain(reset)));
    }
    if org.faults.malformed_next > 0 && resp.status().is_success() {
        org.faults.malformed_next -= 1;
        resp = (StatusCode::OK, "{\"totalSize\":3,\"done\":tr").into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
    }
    with_limit_header(resp, &org)
}

/// `Sforce-Limit-Info` as the REST API Developer Guide ("Limit Info Header") documents it:
/// `api-usage=25/5000`, followed by `; per-app-api-usage=17/250(appName=sample-connected-app)`
/// when the connected app has a quota.
fn with_limit_header(mut r: Response, org: &Org) -> Response {
    let mut value = format!("api-usage={}/{}", org.api_used, org.api_max);
    if let Some((app, max)) = &org.app_quota {
        value.push_str(&format!(
            "; per-app-api-usage={}/{max}(appName={app})",
            org.api_used
        ));
    }
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert("Sforce-Limit-Info", v);
    }
    r
}

fn valid_version(v: &str, newest: &str) -> bool {
    let parse = |x: &str| -> Option<(u32, u32)> {
        let (a, b) = x.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    match (parse(v), parse(newest)) {
        (Some(a), Some(n)) => a >= (31, 0) && a <= n && a.1 == 0,
        _ => false,
    }
}

struct Ctx<'a> {
    version: &'a str,
    user_id: &'a str,
    now: DateTime<Utc>,
    headers: &'a HeaderMap,
}

fn not_allowed(method: &Method, allowed: &str) -> Response {
    errors(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
}

fn parse_body(body: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(errors(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character in JSON: {e}"),
        ))
    })
}

fn route(
    ctx: &Ctx<'_>,
    org: &mut Org,
    method: &Method,
    rest: &[&str],
    q: &Map<String, Value>,
    body: &[u8],
) -> Response {
    let get = *method == Method::GET;
    match rest {
        ["query"] if get && q.contains_key("explain") => explain(ctx, org, s(q, "explain")),
        [kind @ ("query" | "queryAll")] if get => {
            run_query(ctx, org, s(q, "q"), *kind == "queryAll")
        }
        ["query" | "queryAll", locator] if get => query_more(ctx, org, locator),
        ["limits"] if get => limits(org, ctx.now),
        ["jobs", "ingest", rest @ ..] => {
            super::bulk::ingest(org, ctx.version, ctx.user_id, ctx.now, method, rest, body)
        }
        ["sobjects"] if get => {
            let objs: Vec<Value> = org
                .store
                .catalog
                .objects
                .values()
                .map(|o| {
                    let prefix = (!o.key_prefix.is_empty()).then_some(&o.key_prefix);
                    json!({"name": o.name, "keyPrefix": prefix, "queryable": true})
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objs}),
            )
        }
        ["sobjects", obj, "describe"] if get => match org.store.catalog.get(obj) {
            Some(schema) => {
                let text = schema
                    .describe
                    .to_string()
                    .replace("/vxx.0/", &format!("/v{}/", ctx.version));
                let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if schema.name == "Event" && org.store.shared_activities {
                    super::schema::with_event_who_relations(&mut body);
                }
                json_response(StatusCode::OK, &body)
            }
            None => unknown_object(obj),
        },
        ["sobjects", obj, "updated"] if get => replication(ctx, org, obj, q, false),
        ["sobjects", obj, "deleted"] if get => replication(ctx, org, obj, q, true),
        ["sobjects", obj] => {
            if *method != Method::POST {
                return not_allowed(method, "HEAD,GET,POST");
            }
            let Some(schema) = org.store.catalog.get(obj).cloned() else {
                return unknown_object(obj);
            };
            let Value::Object(fields) = (match parse_body(body) {
                Ok(v) => v,
                Err(r) => return *r,
            }) else {
                return errors(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    "Expected an object",
                );
            };
            match org.store.write(
                &schema.name,
                WriteKind::Create,
                &fields,
                ctx.user_id,
                ctx.now,
            ) {
                Ok(id) => json_response(
                    StatusCode::CREATED,
                    &json!({"id": id, "success": true, "errors": []}),
                ),
                Err(e) => record_error(&e),
            }
        }
        ["sobjects", obj, id] => {
            let Some(schema) = org.store.catalog.get(obj).cloned() else {
                return unknown_object(obj);
            };
            match *method {
                Method::GET => {
                    let rec = org
                        .store
                        .find(id)
                        .filter(|(s, r)| s.name == schema.name && r.deleted.is_none())
                        .map(|(_, r)| r.fields.clone());
                    let Some(rec) = rec else {
                        return errors(
                            StatusCode::NOT_FOUND,
                            "NOT_FOUND",
                            "The requested resource does not exist",
                        );
                    };
                    let wanted: Option<Vec<String>> = q
                        .get("fields")
                        .and_then(Value::as_str)
                        .map(|f| f.split(',').map(|x| x.trim().to_string()).collect());
                    json_response(
                        StatusCode::OK,
                        &Value::Object(shape(&schema, &rec, wanted.as_deref(), ctx.version)),
                    )
                }
                Method::PATCH => {
                    let Value::Object(fields) = (match parse_body(body) {
                        Ok(v) => v,
                        Err(r) => return *r,
                    }) else {
                        return errors(
                            StatusCode::BAD_REQUEST,
                            "JSON_PARSER_ERROR",
                            "Expected an object",
                        );
                    };
                    match org.store.write(
                        &schema.name,
                        WriteKind::Update(id),
                        &fields,
                        ctx.user_id,
                        ctx.now,
                    ) {
                        Ok(_) => StatusCode::NO_CONTENT.into_response(),
                        Err(e) => record_error(&e),
                    }
                }
                Method::DELETE => {
                    if org
                        .store
                        .find(id)
                        .is_some_and(|(s, _)| s.name != schema.name)
                    {
                        return errors(
                            StatusCode::NOT_FOUND,
                            "NOT_FOUND",
                            "The requested resource does not exist",
                        );
                    }
                    match org.store.delete(id, ctx.now) {
                        Ok(_) => StatusCode::NO_CONTENT.into_response(),
                        Err(e) => record_error(&e),
                    }
                }
                _ => not_allowed(method, "HEAD,GET,PATCH,DELETE"),
            }
        }
        ["composite", "sobjects"] => collections(ctx, org, method, q, body),
        ["composite", "sobjects", obj] if *method == Method::POST || get => {
            retrieve(ctx, org, method, obj, q, body)
        }
        _ => errors(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ),
    }
}

/// An unknown sObject under `/sobjects/…` is the generic 404 NOT_FOUND ("Status Codes and Error
/// Responses"); the real body names no object (only SOQL's INVALID_TYPE does).
fn unknown_object(_obj: &str) -> Response {
    errors(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

fn record_error(e: &RecError) -> Response {
    let status = match e.status_code.as_str() {
        "NOT_FOUND" | "ENTITY_IS_DELETED" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    json_response(status, &json!([e.request_json()]))
}

/// A record as the sObject endpoints show it: attributes first, then all (or the asked) fields.
fn shape(
    schema: &super::schema::ObjectSchema,
    rec: &Map<String, Value>,
    wanted: Option<&[String]>,
    version: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        soql::attributes(&schema.name, rec, version),
    );
    for f in &schema.fields {
        if wanted.is_some_and(|w| !w.iter().any(|x| x.eq_ignore_ascii_case(&f.name))) {
            continue;
        }
        out.insert(
            f.name.clone(),
            rec.get(&f.name).cloned().unwrap_or(Value::Null),
        );
    }
    out
}

/// "Get Feedback on Query Performance" (`query?explain=`): the plan the query would run with.
fn explain(ctx: &Ctx<'_>, org: &Org, q: &str) -> Response {
    match soql::parse(q, &org.store.catalog, ctx.now) {
        Ok(parsed) => json_response(StatusCode::OK, &org.store.plan(&parsed)),
        Err(e) => errors(StatusCode::BAD_REQUEST, e.code, &e.message),
    }
}

fn run_query(ctx: &Ctx<'_>, org: &mut Org, q: &str, all: bool) -> Response {
    if q.trim().is_empty() {
        return errors(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    }
    let parsed = match soql::parse(q, &org.store.catalog, ctx.now) {
        Ok(p) => p,
        Err(e) => return errors(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let store = &org.store;
    let resolver: &dyn Resolver = store;
    // UserRecordAccess has no table: its rows are computed for the user and records asked.
    let computed = if parsed.object.name == "UserRecordAccess" {
        match store.user_record_access(parsed.filter.as_ref()) {
            Ok(rows) => rows,
            Err(e) => return errors(StatusCode::BAD_REQUEST, e.code, &e.message),
        }
    } else {
        Vec::new()
    };
    let filter = parsed.filter.as_ref().map(soql::Filter::new);
    let mut rows = store.select(&parsed, filter.as_ref(), all);
    rows.extend(
        computed
            .iter()
            .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r, resolver))),
    );
    soql::order(&parsed, &mut rows, resolver);
    let rows: Vec<&Map<String, Value>> = rows
        .into_iter()
        .skip(parsed.offset)
        .take(parsed.limit.unwrap_or(usize::MAX))
        .collect();
    if parsed.count_only {
        return json_response(
            StatusCode::OK,
            &json!({"totalSize": rows.len(), "done": true, "records": []}),
        );
    }
    let projected: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(soql::project(&parsed, r, resolver, ctx.version)))
        .collect();
    let page = batch_size(ctx.headers);
    let total = projected.len();
    if total <= page {
        return json_response(
            StatusCode::OK,
            &json!({"totalSize": total, "done": true, "records": projected}),
        );
    }
    // "Execute a SOQL Query": nextRecordsUrl is `/services/data/vXX.X/query/<18-character
    // locator>-<rows already returned>`; Help article 000384958: locators begin with 0r8.
    let locator = org.store.ids.next("0r8");
    let first: Vec<Value> = projected[..page].to_vec();
    let now = ctx.now;
    org.cursors
        .retain(|_, c| now - c.created <= cursor_lifetime());
    org.cursors.insert(
        locator.clone(),
        super::Cursor {
            created: now,
            rows: projected,
            total,
            page,
        },
    );
    json_response(
        StatusCode::OK,
        &json!({
            "totalSize": total,
            "done": false,
            "nextRecordsUrl": format!("/services/data/v{}/query/{locator}-{page}", ctx.version),
            "records": first,
        }),
    )
}

/// `Sforce-Query-Options: batchSize=N` (200–2,000; a hint, outside values fall back).
fn batch_size(h: &HeaderMap) -> usize {
    h.get("Sforce-Query-Options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|p| p.trim().strip_prefix("batchSize="))
                .find_map(|n| n.trim().parse::<usize>().ok())
        })
        .filter(|n| (200..=2000).contains(n))
        .unwrap_or(2000)
}

fn query_more(ctx: &Ctx<'_>, org: &mut Org, locator: &str) -> Response {
    let invalid = || {
        errors(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((loc, start)) = locator.split_once('-') else {
        return invalid();
    };
    let Ok(start) = start.parse::<usize>() else {
        return invalid();
    };
    let Some(cursor) = org.cursors.get(loc) else {
        return invalid();
    };
    if ctx.now - cursor.created > cursor_lifetime() {
        org.cursors.remove(loc);
        return invalid();
    }
    if start >= cursor.total {
        return invalid();
    }
    let end = (start + cursor.page).min(cursor.total);
    let records: Vec<Value> = cursor.rows[start..end].to_vec();
    let total = cursor.total;
    let mut body = json!({"totalSize": total, "done": end >= total, "records": records});
    if end < total {
        body["nextRecordsUrl"] =
            json!(format!("/services/data/v{}/query/{loc}-{end}", ctx.version));
    } else {
        org.cursors.remove(loc);
    }
    json_response(StatusCode::OK, &body)
}

fn limits(org: &mut Org, now: DateTime<Utc>) -> Response {
    let bulk_used = org.bulk.batches_used(now);
    let lim = |max: u64, used: u64| json!({"Max": max, "Remaining": max.saturating_sub(used)});
    json_response(
        StatusCode::OK,
        &json!({
            "ConcurrentAsyncGetReportInstances": lim(200, 0),
            "ConcurrentSyncReportRuns": lim(20, 0),
            "DailyApiRequests": lim(org.api_max, org.api_used),
            "DailyAsyncApexExecutions": lim(250000, 0),
            "DailyBulkApiBatches": lim(org.bulk.batches_max, bulk_used),
            "DailyBulkV2QueryJobs": lim(10000, 0),
            "DataStorageMB": lim(1024, 0),
            "FileStorageMB": lim(1024, 0),
            "HourlyTimeBasedWorkflow": lim(1000, 0),
        }),
    )
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(60), 0).unwrap_or(t)
}

/// getUpdated (30 days back) and getDeleted (15 days back, or since the last purge).
fn replication(
    ctx: &Ctx<'_>,
    org: &Org,
    obj: &str,
    q: &Map<String, Value>,
    deleted: bool,
) -> Response {
    let Some(schema) = org.store.catalog.get(obj) else {
        return unknown_object(obj);
    };
    let bad = |m: &str| errors(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", m);
    let (Some(start), Some(end)) = (parse_datetime(s(q, "start")), parse_datetime(s(q, "end")))
    else {
        return errors(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "start and end must be dateTime values such as 2026-01-01T00:00:00+00:00",
        );
    };
    // getUpdated()/getDeleted() (SOAP API guide, which the REST pages defer to): "The API
    // ignores the seconds portion" of start and end; start must precede end (equal is an
    // error too), and for getDeleted by more than one minute.
    let (start_m, end_m) = (minute(start), minute(end));
    let min_gap = Duration::minutes(if deleted { 2 } else { 1 });
    if end_m - start_m < min_gap {
        return bad(if deleted {
            "startDate must precede endDate by more than one minute"
        } else {
            "startDate must chronologically precede endDate"
        });
    }
    let window = if deleted { 15 } else { 30 };
    let mut earliest = ctx.now - Duration::days(window);
    if deleted && let Some(p) = org.store.deleted_purged_before {
        earliest = earliest.max(p);
    }
    if start < earliest {
        return bad(&format!("startDate cannot be more than {window} days ago"));
    }
    let latest = minute(end.min(ctx.now));
    let in_window = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= start_m && t < latest);
    let rows = org
        .store
        .table(&schema.name)
        .into_iter()
        .flat_map(|t| t.values());
    if deleted {
        let recs: Vec<Value> = rows
            .filter(|r| in_window(r.deleted))
            .map(|r| json!({"id": r.fields.get("Id"), "deletedDate": r.deleted.map(format_datetime)}))
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "deletedRecords": recs,
                "earliestDateAvailable": format_datetime(minute(earliest)),
                "latestDateCovered": format_datetime(latest),
            }),
        )
    } else {
        let ids: Vec<Value> = rows
            .filter(|r| r.deleted.is_none())
            .filter(|r| {
                in_window(
                    r.fields
                        .get("SystemModstamp")
                        .and_then(Value::as_str)
                        .and_then(parse_datetime),
                )
            })
            .filter_map(|r| r.fields.get("Id").cloned())
            .collect();
        json_response(
            StatusCode::OK,
            &json!({"ids": ids, "latestDateCovered": format_datetime(latest)}),
        )
    }
}

fn too_many() -> Response {
    errors(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

fn collections(
    ctx: &Ctx<'_>,
    org: &mut Org,
    method: &Method,
    q: &Map<String, Value>,
    body: &[u8],
) -> Response {
    if *method == Method::DELETE {
        let ids: Vec<&str> = s(q, "ids").split(',').filter(|x| !x.is_empty()).collect();
        if ids.len() > 200 {
            return too_many();
        }
        let all_or_none = s(q, "allOrNone").eq_ignore_ascii_case("true");
        let snapshot = all_or_none.then(|| org.store.tables.clone());
        let mut results: Vec<Result<String, RecError>> =
            ids.iter().map(|id| org.store.delete(id, ctx.now)).collect();
        if let Some(snap) = snapshot.filter(|_| results.iter().any(|r| r.is_err())) {
            org.store.tables = snap;
            rollback(&mut results);
        }
        // "Delete Records Using sObject Collections" examples: a failure for a malformed id
        // carries no `id`; others (rolled-back ones included) carry the 18-character id.
        let out: Vec<Value> = ids
            .iter()
            .zip(results)
            .map(|(id, r)| match r {
                Ok(id) => json!({"id": id, "success": true, "errors": []}),
                Err(e) => match crate::salesforce::ids::to_18(id) {
                    Some(id18) if e.status_code != "MALFORMED_ID" => {
                        json!({"id": id18, "success": false, "errors": [e.collection_json()]})
                    }
                    _ => json!({"success": false, "errors": [e.collection_json()]}),
                },
            })
            .collect();
        return json_response(StatusCode::OK, &Value::Array(out));
    }
    let creating = match *method {
        Method::POST => true,
        Method::PATCH => false,
        _ => return not_allowed(method, "POST,PATCH,DELETE"),
    };
    let v = match parse_body(body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(records) = v.get("records").and_then(Value::as_array) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "records is required",
        );
    };
    if records.len() > 200 {
        return too_many();
    }
    let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let snapshot = all_or_none.then(|| org.store.tables.clone());
    let mut results = Vec::with_capacity(records.len());
    for rec in records {
        let r = (|| {
            let Some(map) = rec.as_object() else {
                return Err(RecError::new(
                    "JSON_PARSER_ERROR",
                    "Expected an object",
                    &[],
                ));
            };
            let Some(ty) = map
                .get("attributes")
                .and_then(|a| a.get("type"))
                .and_then(Value::as_str)
            else {
                return Err(RecError::new(
                    "INVALID_TYPE",
                    "Must send a concrete entity type.",
                    &[],
                ));
            };
            if org.store.catalog.get(ty).is_none() {
                return Err(RecError::new(
                    "INVALID_TYPE",
                    format!("sObject type '{ty}' is not supported."),
                    &[],
                ));
            }
            if creating {
                org.store
                    .write(ty, WriteKind::Create, map, ctx.user_id, ctx.now)
            } else {
                let id = map
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("id"))
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or("")
                    .to_string();
                if id.is_empty() {
                    return Err(RecError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        &[],
                    ));
                }
                org.store
                    .write(ty, WriteKind::Update(&id), map, ctx.user_id, ctx.now)
            }
        })();
        results.push(r);
    }
    if let Some(snap) = snapshot.filter(|_| results.iter().any(|r| r.is_err())) {
        org.store.tables = snap;
        rollback(&mut results);
    }
    let out: Vec<Value> = records
        .iter()
        .zip(results)
        .map(|(rec, r)| match r {
            Ok(id) => json!({"id": id, "success": true, "errors": []}),
            Err(e) => {
                // "Update Records Using sObject Collections" examples: a MALFORMED_ID result has
                // no `id`; a rolled-back one carries the 18-character id. Creates have none.
                let id = rec
                    .get("Id")
                    .or_else(|| rec.get("id"))
                    .and_then(Value::as_str)
                    .and_then(crate::salesforce::ids::to_18);
                match id {
                    Some(id) if !creating && e.status_code != "MALFORMED_ID" => {
                        json!({"id": id, "success": false, "errors": [e.collection_json()]})
                    }
                    _ => json!({"success": false, "errors": [e.collection_json()]}),
                }
            }
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(out))
}

fn rollback(results: &mut [Result<String, RecError>]) {
    for r in results.iter_mut() {
        if r.is_ok() {
            *r = Err(RecError::new(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
                &[],
            ));
        }
    }
}

fn retrieve(
    ctx: &Ctx<'_>,
    org: &Org,
    method: &Method,
    obj: &str,
    q: &Map<String, Value>,
    body: &[u8],
) -> Response {
    let Some(schema) = org.store.catalog.get(obj).cloned() else {
        return unknown_object(obj);
    };
    let (ids, fields): (Vec<String>, Vec<String>) = if *method == Method::GET {
        let split = |k: &str| {
            s(q, k)
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        (split("ids"), split("fields"))
    } else {
        let v = match parse_body(body) {
            Ok(v) => v,
            Err(r) => return *r,
        };
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        (list("ids"), list("fields"))
    };
    if ids.len() > 2000 {
        return too_many();
    }
    if fields.is_empty() {
        return errors(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "fields is required",
        );
    }
    if let Some(bad) = fields.iter().find(|f| schema.field(f).is_none()) {
        return errors(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            &format!("No such column '{bad}' on entity '{}'.", schema.name),
        );
    }
    let out: Vec<Value> = ids
        .iter()
        .map(|id| {
            org.store
                .find(id)
                .filter(|(s, r)| s.name == schema.name && r.deleted.is_none())
                .map(|(_, r)| {
                    let mut m = Map::new();
                    m.insert(
                        "attributes".into(),
                        soql::attributes(&schema.name, &r.fields, ctx.version),
                    );
                    for f in &fields {
                        if let Some(meta) = schema.field(f) {
                            m.insert(
                                meta.name.clone(),
                                r.fields.get(&meta.name).cloned().unwrap_or(Value::Null),
                            );
                        }
                    }
                    Value::Object(m)
                })
                .unwrap_or(Value::Null)
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(out))
}
