//! The Graph client against a scripted fake server: token, retries, batches, delta rounds,
//! the per-mailbox limit, folders, items. Every body tether sends and every canned answer is
//! validated against Microsoft's description (`openapi`).

pub(crate) mod fake;
mod openapi;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::entra::{AppCredentials, ClientCredential, Thumbprint};
use crate::secret::Secret;
use base64::Engine;
use fake::{Canned, Fake, Seen};
use openapi::assert_valid;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const TOKEN_OK: &str = include_str!("../../../tests/fixtures/graph/token-success.json");
const TOKEN_70011: &str = include_str!("../../../tests/fixtures/graph/token-error-70011.json");
const BATCH_DOCS: &str = include_str!("../../../tests/fixtures/graph/batch-response-docs.json");
const THROTTLED: &str =
    include_str!("../../../tests/fixtures/graph/error-application-throttled.json");
pub(crate) const NO_MAILBOX: &str =
    include_str!("../../../tests/fixtures/graph/error-mailbox-not-enabled.json");
pub(crate) const DENIED: &str =
    include_str!("../../../tests/fixtures/graph/error-access-denied-odata.json");
const SYNC_STATE: &str =
    include_str!("../../../tests/fixtures/graph/error-sync-state-not-found.json");
const KEY: &str = include_str!("../../../tests/fixtures/sf_test_jwt_key.pem");
const PUBLIC_KEY: &str = include_str!("../../../tests/fixtures/sf_test_jwt_pub.pem");
const CERT: &str = include_str!("../../../tests/fixtures/sf_test_jwt_cert.pem");

const ANA: &str = "ana@corp.com";
const SECRET: &str = "s3cr3t-value-never-shown";

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn clock() -> ManualClock {
    ManualClock::new("2026-12-03T09:00:00Z".parse().unwrap())
}

/// Answers token requests with the documented success; the rest with `graph`.
pub(crate) fn with_token(
    mut graph: impl FnMut(&Seen) -> Canned + Send + 'static,
) -> impl FnMut(&Seen) -> Canned + Send + 'static {
    move |req: &Seen| {
        if req.path.ends_with("/oauth2/v2.0/token") {
            Canned::raw(200, TOKEN_OK)
        } else {
            graph(req)
        }
    }
}

fn client_with(fake: &Fake, clock: &ManualClock, credential: ClientCredential) -> GraphClient {
    let opts = GraphOptions::new(fake.graph_url().parse().unwrap());
    let app = AppCredentials {
        token_url: fake.token_url().parse().unwrap(),
        client_id: "app-1".into(),
        credential,
        scope: opts.scope(),
    };
    GraphClient::new(opts, app, Arc::new(clock.clone())).unwrap()
}

fn client(fake: &Fake, clock: &ManualClock) -> GraphClient {
    client_with(fake, clock, ClientCredential::Secret(Secret::new(SECRET)))
}

fn list(value: Value) -> Canned {
    Canned::json(200, &json!({"value": value}))
}

#[test]
fn documented_answers_are_valid_against_the_description() {
    assert_valid("extra:tokenResponse", &parse(TOKEN_OK));
    assert_valid("extra:tokenError", &parse(TOKEN_70011));
    assert_valid("extra:batchResponse", &parse(BATCH_DOCS));
    for body in [THROTTLED, NO_MAILBOX, DENIED, SYNC_STATE] {
        assert_valid("microsoft.graph.ODataErrors.ODataError", &parse(body));
    }
}

// ---------------------------------------------------------------------------------------
// Token

#[tokio::test]
async fn secret_token_is_cached_and_asked_for_again_before_it_expires() {
    let fake = Fake::start(with_token(|_| list(json!([])))).await;
    let clock = clock();
    let c = client(&fake, &clock);
    c.check_mailbox(ANA).await.unwrap();
    c.check_mailbox(ANA).await.unwrap();
    assert_eq!(c.calls()["token"], 1, "token reused");
    // 56 minutes on, the 3599 s token is within five minutes of expiry: asked for again.
    clock.advance(Duration::from_secs(56 * 60));
    c.check_mailbox(ANA).await.unwrap();
    assert_eq!(c.calls()["token"], 2);
    let token = fake
        .seen()
        .into_iter()
        .find(|s| s.path.contains("oauth2"))
        .unwrap();
    assert_eq!(token.path, "/tenant-1/oauth2/v2.0/token");
    let form = token.form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "app-1");
    assert_eq!(form["client_secret"], SECRET);
    assert_eq!(form["scope"], format!("{}/.default", fake.base));
    assert!(!form.contains_key("client_assertion"));
    for r in fake.graph_requests() {
        assert_eq!(
            r.header_values("authorization"),
            vec!["Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsIng1dCI6Ik1uQ19WWmNBVGZNNXBP..."]
        );
    }
}

/// The DER of the test certificate.
fn cert_der() -> Vec<u8> {
    let b64: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// Checks a client assertion as Entra would with the registered certificate: signature,
/// header thumbprint, claims. Returns (header, claims).
fn verify_assertion(
    jwt: &str,
    token_url: &str,
    alg: jsonwebtoken::Algorithm,
) -> (jsonwebtoken::Header, Value) {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[token_url]);
    v.set_issuer(&["app-1"]);
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    // The times are the test clock's, checked by the caller.
    v.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &v).unwrap();
    (data.header, data.claims)
}

#[tokio::test]
async fn certificate_assertion_is_signed_ps256_with_x5t_s256_and_the_documented_claims() {
    use sha2::Digest;
    let fake = Fake::start(with_token(|_| list(json!([])))).await;
    let clock = clock();
    let sha256: [u8; 32] = sha2::Sha256::digest(cert_der()).into();
    let hex: String = sha256.iter().map(|b| format!("{b:02X}")).collect();
    let credential = ClientCredential::Certificate {
        private_key_pem: Secret::new(KEY),
        thumbprint: Thumbprint::parse(&hex).unwrap(),
    };
    let c = client_with(&fake, &clock, credential);
    c.sign_in().await.unwrap();
    let form = fake.seen()[0].form();
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(!form.contains_key("client_secret"));
    let (header, claims) = verify_assertion(
        &form["client_assertion"],
        &fake.token_url(),
        jsonwebtoken::Algorithm::PS256,
    );
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        header.x5t_s256.as_deref(),
        Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha256)
                .as_str()
        )
    );
    assert_eq!(claims["sub"], "app-1");
    let now = clock.now().timestamp();
    assert_eq!(claims["nbf"], now);
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > now && exp - now <= 600, "{claims}");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    // A second assertion has its own jti.
    let c2 = client_with(
        &fake,
        &clock,
        ClientCredential::Certificate {
            private_key_pem: Secret::new(KEY),
            thumbprint: Thumbprint::parse(&hex).unwrap(),
        },
    );
    c2.sign_in().await.unwrap();
    let (_, again) = verify_assertion(
        &fake.seen()[1].form()["client_assertion"],
        &fake.token_url(),
        jsonwebtoken::Algorithm::PS256,
    );
    assert_ne!(again["jti"], claims["jti"]);
}

#[tokio::test]
async fn sha1_thumbprint_signs_rs256_with_x5t() {
    use sha2::Digest;
    let fake = Fake::start(with_token(|_| list(json!([])))).await;
    let clock = clock();
    // Any 20 bytes stand for the SHA-1 thumbprint (sha2 has no SHA-1): it is only carried.
    let sha1 = &sha2::Sha256::digest(cert_der())[..20];
    let hex: String = sha1.iter().map(|b| format!("{b:02x}")).collect();
    let c = client_with(
        &fake,
        &clock,
        ClientCredential::Certificate {
            private_key_pem: Secret::new(KEY),
            thumbprint: Thumbprint::parse(&hex).unwrap(),
        },
    );
    c.sign_in().await.unwrap();
    let (header, _) = verify_assertion(
        &fake.seen()[0].form()["client_assertion"],
        &fake.token_url(),
        jsonwebtoken::Algorithm::RS256,
    );
    assert_eq!(
        header.x5t.as_deref(),
        Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha1)
                .as_str()
        )
    );
    assert_eq!(header.x5t_s256, None);
}

/// An AADSTS error body in the documented shape (entra-docs error response).
fn aadsts(error: &str, code: u64, text: &str) -> Value {
    json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2026-12-03 09:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-12-03 09:00:00Z",
        "trace_id": "255d1aef-8c98-452f-ac51-23d051240864",
        "correlation_id": "fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    })
}

#[tokio::test]
async fn aadsts_errors_say_what_to_fix_without_the_secret() {
    let cases = [
        (
            401,
            aadsts(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'app-1'.",
            ),
            "set `client_secret` to the secret's Value",
        ),
        (
            401,
            aadsts(
                "invalid_client",
                7000222,
                "The provided client secret keys for app 'app-1' are expired.",
            ),
            "the client secret has expired",
        ),
        (
            400,
            aadsts("invalid_request", 90002, "Tenant 'tenant-1' not found."),
            "set `tenant` to the directory (tenant) id",
        ),
        (
            401,
            aadsts(
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ),
            "`certificate.thumbprint` is that certificate's thumbprint",
        ),
        (
            400,
            aadsts(
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ),
            "check this machine's clock",
        ),
        (400, parse(TOKEN_70011), "the scope was refused"),
    ];
    for (status, body, fix) in cases {
        assert_valid("extra:tokenError", &body);
        let b = body.clone();
        let fake = Fake::start(move |_| Canned::json(status, &b)).await;
        let err = client(&fake, &clock()).sign_in().await.unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind, ErrorKind::Auth, "{text}");
        assert!(text.contains(fix), "{text}");
        assert!(text.contains("refused the client credentials"), "{text}");
        assert!(
            !text.contains("Trace ID") && !text.contains(SECRET),
            "{text}"
        );
        assert_eq!(fake.seen().len(), 1, "a refusal is not retried");
    }
}

#[tokio::test]
async fn token_endpoint_429_is_throttling_not_bad_credentials() {
    let fake = Fake::start(|_| {
        Canned::json(429, &json!({"error": "temporarily_unavailable", "error_description": "AADSTS50196: The server terminated an operation because it encountered a loop."}))
            .with_header("Retry-After", "3")
    })
    .await;
    let clock = clock();
    let err = client(&fake, &clock).sign_in().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled, "{err}");
    assert!(
        err.to_string().contains("the credentials were not refused"),
        "{err}"
    );
    // Five retries, each after the asked 3 s.
    assert_eq!(fake.seen().len(), 6);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(3); 5]);
}

// ---------------------------------------------------------------------------------------
// Retries and errors

#[tokio::test]
async fn throttled_429_waits_its_retry_after_then_succeeds() {
    let mut n = 0;
    let fake = Fake::start(with_token(move |_| {
        n += 1;
        match n {
            1 => Canned::raw(429, THROTTLED).with_header("Retry-After", "7"),
            // An empty-bodied 503 without Retry-After: back off (second attempt: 10 s).
            2 => Canned::empty(503),
            _ => list(json!([{"id": "AAMkFolder", "displayName": "Salesforce_Sync"}])),
        }
    }))
    .await;
    let clock = clock();
    let c = client(&fake, &clock);
    let id = c.find_contact_folder(ANA, "Salesforce_Sync").await.unwrap();
    assert_eq!(id.as_deref(), Some("AAMkFolder"));
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(7), Duration::from_secs(10)]
    );
    assert_eq!(c.calls()["contactFolders"], 3);
}

#[tokio::test]
async fn back_off_without_retry_after_doubles_from_5_to_120_seconds_then_gives_up() {
    let fake = Fake::start(with_token(|_| Canned::empty(504))).await;
    let clock = clock();
    let mut opts = GraphOptions::new(fake.graph_url().parse().unwrap());
    opts.max_retries = 6;
    let app = AppCredentials {
        token_url: fake.token_url().parse().unwrap(),
        client_id: "app-1".into(),
        credential: ClientCredential::Secret(Secret::new(SECRET)),
        scope: opts.scope(),
    };
    let c = GraphClient::new(opts, app, Arc::new(clock.clone())).unwrap();
    let err = c.check_mailbox(ANA).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message.contains("HTTP 504 without an error body"),
        "{err}"
    );
    let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![5, 10, 20, 40, 80, 120]);
}

#[tokio::test]
async fn empty_bodied_404_is_gone_and_a_lost_create_answer_is_not_resent() {
    let fake = Fake::start(with_token(|req| match req.method.as_str() {
        "GET" => Canned::empty(404),
        _ => Canned::empty(504),
    }))
    .await;
    let clock = clock();
    let c = client(&fake, &clock);
    let err = c
        .find_contact_folder(ANA, "Salesforce_Sync")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Gone);
    // A contact create answered 504 may have been made: sent once, reported as unknown.
    let err = c
        .create_contact(
            ANA,
            "AAMkFolder",
            json!({"givenName": "Ana"}),
            "003000000000001AAA",
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(c.calls()["contacts"], 1);
}

#[tokio::test]
async fn denied_and_missing_mailboxes_are_per_rep_kinds_with_what_to_do() {
    let fake = Fake::start(with_token(|req| match req.mailbox().as_deref() {
        Some("out@corp.com") => Canned::raw(403, DENIED),
        Some("gone@corp.com") => Canned::raw(404, NO_MAILBOX),
        _ => list(json!([])),
    }))
    .await;
    let c = client(&fake, &clock());
    let denied = c.check_mailbox("out@corp.com").await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::Denied);
    assert_eq!(denied.code, "ErrorAccessDenied");
    let text = denied.to_string();
    assert!(
        text.contains("out@corp.com")
            && text.contains("Access to OData is disabled.")
            && text.contains("Test-ServicePrincipalAuthorization"),
        "{text}"
    );
    let missing = c.check_mailbox("gone@corp.com").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NoMailbox);
    assert!(
        missing.to_string().contains("no Exchange Online mailbox"),
        "{missing}"
    );
    c.check_mailbox(ANA).await.unwrap();
    assert_valid("GET /users/{user-id}/contactFolders", &json!({"value": []}));
    assert_valid(
        "GET /users/{user-id}/calendar/events",
        &json!({"value": []}),
    );
    // Each probe reads contact folders and events of the rep, ids only, immutable ids.
    let ana: Vec<Seen> = fake
        .graph_requests()
        .into_iter()
        .filter(|r| r.mailbox().as_deref() == Some(ANA))
        .collect();
    assert_eq!(ana.len(), 2);
    assert_eq!(ana[0].path, "/v1.0/users/ana@corp.com/contactFolders");
    assert_eq!(ana[1].path, "/v1.0/users/ana@corp.com/calendar/events");
    assert_eq!(ana[0].query, "$top=1&$select=id");
    for r in fake.graph_requests() {
        let prefer = r.header_values("prefer");
        assert!(prefer.contains(&r#"IdType="ImmutableId""#.to_string()));
    }
}

/// Graph answers item bodies as HTML unless asked for text: the HTML would have gone to
/// Salesforce as a contact's notes or an event's description.
#[tokio::test]
async fn graph_requests_and_batch_items_ask_for_text_bodies_not_html() {
    let fake = Fake::start(with_token(|req: &Seen| {
        if req.path.ends_with("/$batch") {
            Canned::json(
                200,
                &json!({"responses": [{"id": "1", "status": 200, "headers": {}, "body": {"value": []}}]}),
            )
        } else {
            list(json!([]))
        }
    }))
    .await;
    let c = client(&fake, &clock());
    c.check_mailbox(ANA).await.unwrap();
    c.batch(
        ANA,
        &[BatchItem::get("1", "/users/ana@corp.com/events/AAMk")],
    )
    .await
    .unwrap();
    let text = r#"outlook.body-content-type="text""#;
    for r in fake.graph_requests() {
        if r.path.ends_with("/$batch") {
            let prefer = r.json()["requests"][0]["headers"]["Prefer"].clone();
            assert!(prefer.as_str().unwrap().contains(text), "{prefer}");
        } else {
            assert!(
                r.header_values("prefer").contains(&text.to_string()),
                "{r:?}"
            );
        }
    }
}

#[tokio::test]
async fn at_most_four_requests_in_flight_per_mailbox_while_others_proceed() {
    let fake = Fake::start(with_token(|_| list(json!([])))).await;
    fake.set_delay(Duration::from_millis(40));
    let c = Arc::new(client(&fake, &clock()));
    c.sign_in().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = c.clone();
        let mailbox = if i % 2 == 0 {
            "ana@corp.com"
        } else {
            "bob@corp.com"
        };
        tasks.push(tokio::spawn(async move {
            c.find_contact_folder(mailbox, "Salesforce_Sync").await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.max_in_flight("ana@corp.com"), 4);
    assert_eq!(fake.max_in_flight("bob@corp.com"), 4);
}

// ---------------------------------------------------------------------------------------
// $batch

fn get(id: &str) -> BatchItem {
    BatchItem::get(id, format!("/users/{ANA}/contacts/{id}"))
}

#[tokio::test]
async fn batch_items_answered_429_are_retried_after_the_largest_retry_after() {
    let mut n = 0;
    let fake = Fake::start(with_token(move |req| {
        n += 1;
        let body = req.json();
        assert_valid("extra:batchRequest", &body);
        let ids: Vec<&str> = body["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        let ok = |id: &str| json!({"id": id, "status": 200, "headers": {"Content-Type": "application/json"}, "body": {"id": id, "givenName": "G"}});
        let answer = if n == 1 {
            json!({"responses": [
                ok("c"),
                {"id": "a", "status": 429, "headers": {"Retry-After": "3"}, "body": parse(THROTTLED)},
                {"id": "b", "status": 429, "headers": {"Retry-After": "9"}, "body": parse(THROTTLED)},
            ]})
        } else {
            json!({"responses": ids.iter().map(|id| ok(id)).collect::<Vec<_>>()})
        };
        assert_valid("extra:batchResponse", &answer);
        Canned::json(200, &answer)
    }))
    .await;
    let clock = clock();
    let c = client(&fake, &clock);
    let answers = c.batch(ANA, &[get("a"), get("b"), get("c")]).await.unwrap();
    assert!(answers.values().all(BatchAnswer::is_success), "{answers:?}");
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(9)]);
    let sent = fake.graph_requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].path, "/v1.0/$batch");
    let second: Vec<String> = sent[1].json()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(second, ["a", "b"]);
    assert_eq!(answers["a"].clone().into_result("a").unwrap()["id"], "a");
}

#[tokio::test]
async fn batch_failed_dependency_is_retried_with_its_throttled_dependency_and_other_failures_stand()
{
    let mut n = 0;
    let fake = Fake::start(with_token(move |_| {
        n += 1;
        let answer = if n == 1 {
            json!({"responses": [
                {"id": "1", "status": 429, "headers": {"Retry-After": "2"}, "body": parse(THROTTLED)},
                {"id": "2", "status": 424, "body": {"error": {"code": "FailedDependency", "message": "The request failed because it depends on another request."}}},
                {"id": "3", "status": 404, "body": {"error": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}}},
            ]})
        } else {
            json!({"responses": [
                {"id": "1", "status": 201, "body": {"id": "new"}},
                {"id": "2", "status": 200, "body": {"id": "x"}},
            ]})
        };
        Canned::json(200, &answer)
    }))
    .await;
    let clock = clock();
    let c = client(&fake, &clock);
    let mut second = get("2");
    second.depends_on = vec!["1".into()];
    let mut create = BatchItem::get("1", format!("/users/{ANA}/contactFolders/F/contacts"));
    create.method = reqwest::Method::POST;
    create.body = Some(json!({"givenName": "Ana"}));
    let items = [create, second, get("3")];
    let body = batch::batch_body(&items);
    assert_valid("extra:batchRequest", &body);
    assert_valid(
        "POST /users/{user-id}/contactFolders/{contactFolder-id}/contacts request",
        &body["requests"][0]["body"],
    );
    let answers = c.batch(ANA, &items).await.unwrap();
    assert_eq!(answers["1"].status, 201);
    assert_eq!(answers["2"].status, 200);
    let gone = answers["3"].clone().into_result("contact 3").unwrap_err();
    assert_eq!(gone.kind, ErrorKind::Gone);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(2)]);
}

#[tokio::test]
async fn batches_hold_at_most_twenty_requests() {
    let fake = Fake::start(with_token(|req| {
        let ids: Vec<Value> = req.json()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!({"id": r["id"], "status": 200, "body": {}}))
            .collect();
        Canned::json(200, &json!({"responses": ids}))
    }))
    .await;
    let c = client(&fake, &clock());
    let items: Vec<BatchItem> = (0..45).map(|i| get(&i.to_string())).collect();
    let answers = c.batch(ANA, &items).await.unwrap();
    assert_eq!(answers.len(), 45);
    let sizes: Vec<usize> = fake
        .graph_requests()
        .iter()
        .map(|r| r.json()["requests"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [20, 20, 5]);
    // The documented example decodes item by item.
    let docs = parse(BATCH_DOCS);
    let fake = Fake::start(with_token(move |_| Canned::json(200, &docs))).await;
    let c = client(&fake, &clock());
    let items: Vec<BatchItem> = (1..=5).map(|i| get(&i.to_string())).collect();
    let answers = c.batch(ANA, &items).await.unwrap();
    assert_eq!(
        answers["3"].clone().into_result("3").unwrap_err().kind,
        ErrorKind::Denied
    );
    assert!(answers["5"].is_success());
}

// ---------------------------------------------------------------------------------------
// Delta

fn contact(id: &str, name: &str) -> Value {
    json!({"@odata.etag": "W/\"EQAAABYAAAA\"", "id": id, "givenName": name, "emailAddresses": [{"name": name, "address": format!("{name}@x.com")}]})
}

#[tokio::test]
async fn contact_delta_follows_next_links_to_the_delta_link_with_removed_items() {
    let base = Arc::new(std::sync::Mutex::new(String::new()));
    let b = base.clone();
    let path = "/users/{user-id}/contactFolders/{contactFolder-id}/contacts/delta()";
    let fake = Fake::start(with_token(move |req| {
        let base = b.lock().unwrap().clone();
        let folder = format!("{base}/v1.0/users/ana@corp.com/contactFolders/AAMkF/contacts/delta");
        let page = if req.query.contains("$skiptoken") {
            json!({"@odata.deltaLink": format!("{folder}?$deltatoken=D1"), "value": [
                {"id": "AAMkC3", "@removed": {"reason": "deleted"}},
                contact("AAMkC2", "Bo"),
            ]})
        } else if req.query.contains("$deltatoken=D1") {
            return Canned::raw(410, SYNC_STATE);
        } else {
            json!({"@odata.nextLink": format!("{folder}?$skiptoken=S1"), "value": [contact("AAMkC1", "Ana"), contact("AAMkC2", "Bo")]})
        };
        assert_valid(&format!("GET {path}"), &page);
        Canned::json(200, &page)
    }))
    .await;
    *base.lock().unwrap() = fake.base.clone();
    let c = client(&fake, &clock());
    let DeltaOutcome::Round(round) = c
        .contacts_delta(ANA, "AAMkF", &["givenName", "emailAddresses"], None)
        .await
        .unwrap()
    else {
        panic!("round expected")
    };
    assert_eq!(round.pages, 2);
    let changed: Vec<&str> = round
        .changed
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        ["AAMkC1", "AAMkC2", "AAMkC2"],
        "repeats are kept for the caller"
    );
    assert_eq!(round.removed, ["AAMkC3"]);
    assert!(round.delta_link.ends_with("$deltatoken=D1"));
    let sent = fake.graph_requests();
    assert_eq!(
        sent[0].path,
        "/v1.0/users/ana@corp.com/contactFolders/AAMkF/contacts/delta"
    );
    assert_eq!(sent[0].query, "$select=givenName,emailAddresses");
    assert_eq!(
        sent[1].query, "$skiptoken=S1",
        "query options only in the first call"
    );
    for r in &sent {
        assert!(
            r.header_values("prefer")
                .contains(&"odata.maxpagesize=100".to_string()),
            "{r:?}"
        );
    }
    // The next round's cursor has expired: a distinct outcome, nothing else.
    let outcome = c
        .contacts_delta(ANA, "AAMkF", &[], Some(&round.delta_link))
        .await
        .unwrap();
    let DeltaOutcome::CursorExpired(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(e.code, "SyncStateNotFound");
    assert_eq!(e.status, 410);
}

#[tokio::test]
async fn calendar_view_delta_asks_for_the_window_and_refuses_links_to_other_hosts() {
    let fake = Fake::start(with_token(|_| {
        let page = json!({"@odata.nextLink": "https://evil.example.com/v1.0/users/ana@corp.com/calendarView/delta?$skiptoken=X", "value": [
            {"id": "AAMkE1", "subject": "Call", "type": "singleInstance", "start": {"dateTime": "2026-12-04T09:00:00.0000000", "timeZone": "UTC"}, "end": {"dateTime": "2026-12-04T09:30:00.0000000", "timeZone": "UTC"}, "isAllDay": false, "occurrenceId": null}
        ]});
        assert_valid("GET /users/{user-id}/calendarView/delta()", &page);
        Canned::json(200, &page)
    }))
    .await;
    let c = client(&fake, &clock());
    let window = Window {
        start: "2026-12-03T00:00:00Z".parse().unwrap(),
        end: "2027-03-03T00:00:00Z".parse().unwrap(),
    };
    let err = c.calendar_view_delta(ANA, window, None).await.unwrap_err();
    assert!(err.message.contains("not on this Graph"), "{err}");
    let sent = fake.graph_requests();
    assert_eq!(sent.len(), 1, "the foreign link is not followed");
    assert_eq!(sent[0].path, "/v1.0/users/ana@corp.com/calendarView/delta");
    assert_eq!(
        sent[0].query,
        "startDateTime=2026-12-03T00:00:00Z&endDateTime=2027-03-03T00:00:00Z"
    );
    // A saved cursor on another host is refused as expired, without a request.
    let outcome = c
        .calendar_view_delta(
            ANA,
            window,
            Some("https://evil.example.com/v1.0/x?$deltatoken=1"),
        )
        .await
        .unwrap_err();
    assert_eq!(outcome.kind, ErrorKind::CursorExpired);
    assert_eq!(fake.graph_requests().len(), 1);
}

#[tokio::test]
async fn every_cursor_refusal_code_is_cursor_expired() {
    for (status, code) in [
        (410, "SyncStateNotFound"),
        (410, "resyncRequired"),
        (400, "SyncStateInvalid"),
        (400, "InvalidDeltaToken"),
        (400, "ErrorInvalidIdMalformed"),
    ] {
        let fake = Fake::start(with_token(move |_| {
            Canned::json(status, &json!({"error": {"code": code, "message": "m"}}))
        }))
        .await;
        let c = client(&fake, &clock());
        let link = format!(
            "{}/v1.0/users/ana@corp.com/calendarView/delta?$deltatoken=T",
            fake.base
        );
        let window = Window {
            start: clock().now(),
            end: clock().now(),
        };
        let outcome = c
            .calendar_view_delta(ANA, window, Some(&link))
            .await
            .unwrap();
        assert!(
            matches!(outcome, DeltaOutcome::CursorExpired(ref e) if e.code == code),
            "{outcome:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Folder and items

#[tokio::test]
async fn sync_folder_created_once_and_found_by_name_after_409_folder_exists() {
    let mut n = 0;
    let fake = Fake::start(with_token(move |req| {
        n += 1;
        match (req.method.as_str(), n) {
            ("GET", 1) => list(json!([{"id": "AAMkOther", "displayName": "Friends"}])),
            ("POST", _) => {
                assert_valid("POST /users/{user-id}/contactFolders request", &req.json());
                assert_eq!(req.json(), json!({"displayName": "Salesforce_Sync"}));
                Canned::json(409, &json!({"error": {"code": "ErrorFolderExists", "message": "A folder with the specified name already exists."}}))
            }
            _ => {
                let page = json!({"value": [{"id": "AAMkSync", "displayName": "Salesforce_Sync", "parentFolderId": "AAMkContacts"}]});
                assert_valid("GET /users/{user-id}/contactFolders", &page);
                Canned::json(200, &page)
            }
        }
    }))
    .await;
    let c = client(&fake, &clock());
    let id = c
        .ensure_contact_folder(ANA, folders::SYNC_FOLDER)
        .await
        .unwrap();
    assert_eq!(id, "AAMkSync");
    let sent = fake.graph_requests();
    let kinds: Vec<&str> = sent.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(kinds, ["GET", "POST", "GET"]);
    assert_eq!(
        sent[0].query,
        "$filter=displayName%20eq%20%27Salesforce_Sync%27&$select=id,displayName\
         &$expand=singleValueExtendedProperties($filter%3Did%20eq%20%27String%20\
         %7B00020329-0000-0000-C000-000000000046%7D%20Name%20tether.SyncedBy%27)",
        "the folder's marker comes with the look-up"
    );
}

#[tokio::test]
async fn sync_folder_create_with_an_ambiguous_5xx_is_looked_up_not_created_twice() {
    let mut gets = 0;
    let fake = Fake::start(with_token(move |req| match req.method.as_str() {
        "POST" => Canned::empty(502),
        _ => {
            gets += 1;
            if gets == 1 {
                list(json!([]))
            } else {
                list(json!([{"id": "AAMkSync", "displayName": "Salesforce_Sync"}]))
            }
        }
    }))
    .await;
    let c = client(&fake, &clock());
    assert_eq!(
        c.ensure_contact_folder(ANA, "Salesforce_Sync")
            .await
            .unwrap(),
        "AAMkSync"
    );
    assert_eq!(c.calls()["contactFolders"], 3, "one create, two look-ups");
}

#[tokio::test]
async fn created_items_carry_the_salesforce_id_property_and_events_a_transaction_id() {
    let fake = Fake::start(with_token(|req| match req.method.as_str() {
        "POST" => {
            let mut body = req.json();
            body["id"] = json!("AAMkNew");
            let kind = if req.path.ends_with("/events") { "event" } else { "contact" };
            assert_valid(&format!("microsoft.graph.{kind}"), &body);
            Canned::json(201, &body)
        }
        _ => {
            let page = json!({"value": [
                {"id": "AAMk1", "singleValueExtendedProperties": [{"id": "String {00020329-0000-0000-C000-000000000046} Name tether.SalesforceId", "value": "003000000000001AAA"}]},
                {"id": "AAMk2", "singleValueExtendedProperties": []},
            ]});
            assert_valid("GET /users/{user-id}/contactFolders/{contactFolder-id}/contacts", &page);
            Canned::json(200, &page)
        }
    }))
    .await;
    let c = client(&fake, &clock());
    let event = json!({
        "subject": "Quarterly review",
        "body": {"contentType": "text", "content": "Agenda"},
        "start": {"dateTime": "2026-12-04T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-04T10:00:00", "timeZone": "UTC"},
        "isAllDay": false,
        "sensitivity": "private",
    });
    c.create_event(
        ANA,
        event,
        "00U000000000001AAA",
        "tether-00U000000000001AAA",
    )
    .await
    .unwrap();
    c.create_contact(
        ANA,
        "AAMkF",
        json!({"givenName": "Ana", "emailAddresses": [{"address": "ana@x.com"}]}),
        "003000000000001AAA",
    )
    .await
    .unwrap();
    let found = c
        .find_contact_by_salesforce_id(ANA, "AAMkF", "003000000000001AAA")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], "AAMk1");
    let sent = fake.graph_requests();
    let event_body = sent[0].json();
    assert_valid("POST /users/{user-id}/events request", &event_body);
    assert_eq!(event_body["transactionId"], "tether-00U000000000001AAA");
    assert_eq!(
        event_body["singleValueExtendedProperties"],
        property::member("00U000000000001AAA")
    );
    assert!(event_body.get("attendees").is_none(), "no invitations");
    assert_eq!(sent[0].path, "/v1.0/users/ana@corp.com/events");
    let contact_body = sent[1].json();
    assert_valid(
        "POST /users/{user-id}/contactFolders/{contactFolder-id}/contacts request",
        &contact_body,
    );
    assert_eq!(
        sent[1].path,
        "/v1.0/users/ana@corp.com/contactFolders/AAMkF/contacts"
    );
    assert_eq!(
        sent[2].query,
        "$filter=singleValueExtendedProperties/Any(ep:%20ep/id%20eq%20%27String%20%7B00020329-0000-0000-C000-000000000046%7D%20Name%20tether.SalesforceId%27%20and%20ep/value%20eq%20%27003000000000001AAA%27)&$expand=singleValueExtendedProperties($filter%3Did%20eq%20%27String%20%7B00020329-0000-0000-C000-000000000046%7D%20Name%20tether.SalesforceId%27)"
    );
}

#[tokio::test]
async fn a_401_asks_for_a_new_token_once_then_is_an_auth_error() {
    let mut n = 0;
    let fake = Fake::start(with_token(move |_| {
        n += 1;
        let revoked = json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid."}});
        if n == 1 || n >= 3 { Canned::json(401, &revoked) } else { list(json!([])) }
    }))
    .await;
    let c = client(&fake, &clock());
    c.find_contact_folder(ANA, "Salesforce_Sync").await.unwrap();
    assert_eq!(c.calls()["token"], 2, "renewed after the 401");
    let err = c
        .find_contact_folder(ANA, "Salesforce_Sync")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert_eq!(c.calls()["token"], 3, "renewed once, not in a loop");
    assert!(!format!("{err} {c:?}").contains(SECRET));
}
