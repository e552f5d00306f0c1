//! The Microsoft identity platform's token endpoint for the client-credentials grant
//! (`POST /{tenant}/oauth2/v2.0/token`), with a client secret or a certificate assertion,
//! and its AADSTS error bodies.

use super::{GraphApp, TENANT_DOMAIN, TENANT_ID};
use crate::exchange::Shared;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Exchange Online's resource (EWS). A token is for the resource its scope names, and each
/// API takes only tokens for itself: one for this scope opens EWS, not Graph.
const EXCHANGE_ONLINE_SCOPES: &[&str] = &[
    "https://outlook.office365.com/.default",
    "https://outlook.office.com/.default",
];
/// The longest assertion lifetime the platform takes (certificate-credentials.md).
const MAX_ASSERTION_SECS: i64 = 600;

struct Refusal {
    status: StatusCode,
    error: &'static str,
    code: u32,
    text: String,
}

fn refuse(status: u16, error: &'static str, code: u32, text: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        error,
        code,
        text: text.into(),
    }
}

pub(crate) async fn token(
    State(shared): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = shared.clock.now();
    let audience = format!("{}/{tenant}/oauth2/v2.0/token", shared.base);
    let mut emu = shared.lock();
    *emu.graph.calls.entry("token".into()).or_default() += 1;
    let app = check(&emu.graph.apps, &tenant, &headers, &form, &audience, now);
    let (status, body, schema) = match app {
        Ok(app) => {
            let n = emu.next();
            let token = format!("graph-token-{n:08x}");
            let life = shared.options.token_lifetime_secs;
            let grant = (app, now + chrono::Duration::seconds(life));
            let scope = form.get("scope").map(String::as_str).unwrap_or("");
            if EXCHANGE_ONLINE_SCOPES.contains(&scope) {
                emu.tokens.insert(token.clone(), grant);
                emu.tokens_issued += 1;
            } else {
                emu.graph.tokens.insert(token.clone(), grant);
            }
            let body = json!({"token_type": "Bearer", "expires_in": life,
                "ext_expires_in": life, "access_token": token});
            (StatusCode::OK, body, "extra:tokenResponse")
        }
        Err(r) => {
            let n = emu.next();
            let trace = format!("3c5d0b1a-0000-4000-8000-{n:012x}");
            let stamp = now.format("%Y-%m-%d %H:%M:%SZ");
            let body = json!({
                "error": r.error,
                "error_description": format!("AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {trace}\r\nTimestamp: {stamp}", r.code, r.text),
                "error_codes": [r.code],
                "timestamp": stamp.to_string(),
                "trace_id": trace,
                "correlation_id": trace,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", r.code),
            });
            (r.status, body, "extra:tokenError")
        }
    };
    emu.graph.record(schema, status.as_u16(), &body);
    (status, axum::Json::<Value>(body)).into_response()
}

fn check(
    apps: &[GraphApp],
    tenant: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<String, Refusal> {
    if !tenant.eq_ignore_ascii_case(TENANT_ID) && !tenant.eq_ignore_ascii_case(TENANT_DOMAIN) {
        return Err(refuse(
            400,
            "invalid_tenant",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(refuse(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type; this endpoint takes client_credentials.",
        ));
    }
    if !form
        .get("scope")
        .is_some_and(|s| s.ends_with("/.default") && !s.contains(' '))
    {
        return Err(refuse(
            400,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid: '{}'. The scope of a client credentials request is one resource's '/.default'.",
                form.get("scope").map(String::as_str).unwrap_or("")
            ),
        ));
    }
    let basic = basic_credentials(headers);
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()))
        .unwrap_or_default();
    let Some(app) = apps.iter().find(|a| a.client_id == client_id) else {
        return Err(refuse(
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    };
    let secret = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.map(|b| b.1));
    if let Some(secret) = secret {
        return if app.client_secret.as_deref() == Some(secret.as_str()) {
            Ok(app.client_id.clone())
        } else {
            Err(refuse(
                401,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ))
        };
    }
    let Some(assertion) = form.get("client_assertion") else {
        return Err(refuse(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(refuse(
            400,
            "invalid_request",
            50027,
            format!("client_assertion_type must be '{JWT_BEARER}'."),
        ));
    }
    verify_assertion(app, assertion, audience, now)?;
    Ok(app.client_id.clone())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.strip_prefix("Basic ")?.trim())
        .ok()?;
    let (u, p) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The DER of a PEM certificate.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

/// A certificate thumbprint as the assertion header carries it: base64url of the DER's
/// SHA-256 (`x5t#S256`) or SHA-1 (`x5t`, the older form).
pub fn thumbprint(pem: &str, alg: &'static ring::digest::Algorithm) -> Option<String> {
    let der = certificate_der(pem)?;
    let digest = ring::digest::digest(alg, &der);
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

fn verify_assertion(
    app: &GraphApp,
    assertion: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let key_refused = |why: &str| {
        refuse(
            401,
            "invalid_client",
            700027,
            format!("Client assertion failed signature validation. {why}"),
        )
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        refuse(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        )
    })?;
    let registered = app.certificate_pem.as_deref();
    let s256 = registered.and_then(|p| thumbprint(p, &ring::digest::SHA256));
    let sha1 = registered.and_then(|p| thumbprint(p, &ring::digest::SHA1_FOR_LEGACY_USE_ONLY));
    let named = match (&header.x5t_s256, &header.x5t) {
        (Some(t), _) => s256.as_ref() == Some(t),
        (None, Some(t)) => sha1.as_ref() == Some(t),
        (None, None) => false,
    };
    if !named {
        return Err(refuse(
            401,
            "invalid_client",
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                header
                    .x5t_s256
                    .as_deref()
                    .or(header.x5t.as_deref())
                    .unwrap_or(""),
                app.client_id
            ),
        ));
    }
    let Some(key) = registered.and_then(crate::salesforce::cert::decoding_key) else {
        return Err(key_refused("The registered certificate has no RSA key."));
    };
    if !matches!(
        header.alg,
        jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::PS256
    ) {
        return Err(key_refused(
            "The assertion must be signed with RS256 or PS256.",
        ));
    }
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    // Times are checked below against the emulator's clock, with their own AADSTS code.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|_| {
            key_refused("The signature does not verify with the registered certificate's key.")
        })?
        .claims;
    let s = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    if s("aud") != audience {
        return Err(refuse(
            400,
            "invalid_request",
            50027,
            format!(
                "JWT token is invalid or malformed: the audience '{}' is not this token endpoint '{audience}'.",
                s("aud")
            ),
        ));
    }
    if s("iss") != app.client_id || s("sub") != app.client_id {
        return Err(refuse(
            400,
            "invalid_request",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter (iss and sub must be the client id).",
        ));
    }
    if s("jti").is_empty() {
        return Err(refuse(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed: it has no 'jti'.",
        ));
    }
    let t = |k: &str| claims.get(k).and_then(Value::as_i64);
    let at = now.timestamp();
    match (t("nbf"), t("exp")) {
        (nbf, Some(exp))
            if nbf.unwrap_or(i64::MIN) <= at + 300
                && exp > at - 300
                && exp - nbf.unwrap_or(exp - MAX_ASSERTION_SECS) <= MAX_ASSERTION_SECS =>
        {
            Ok(())
        }
        (nbf, exp) => Err(refuse(
            400,
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
                now.to_rfc3339(),
                nbf.and_then(|n| DateTime::from_timestamp(n, 0))
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default(),
                exp.and_then(|n| DateTime::from_timestamp(n, 0))
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default()
            ),
        )),
    }
}
