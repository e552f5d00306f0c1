//! The emulator's responses, checked field by field against the shapes the Salesforce REST API
//! documents, and its SOQL against a table of valid and invalid queries.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use tether::clock::{Clock, ManualClock};
use tether::salesforce::ids;
use tether_emulators::salesforce::{
    Emulator, EmulatorOptions, RunningEmulator, deterministic_epoch,
};

// TEST-ONLY key pair (tests/fixtures/README.md).
const KEY: &str = include_str!("../fixtures/sf_test_jwt_key.pem");
const CERT: &str = include_str!("../fixtures/sf_test_jwt_cert.pem");
const CLIENT_ID: &str = "3MVG9tether.sandbox.client";
const USER: &str = "integration@tether.test";
/// The JWT audience Salesforce documents (the emulator's own URL is not one).
const LOGIN: &str = "https://login.salesforce.com";

struct T {
    emu: RunningEmulator,
    clock: ManualClock,
    http: reqwest::Client,
    token: String,
}

fn assertion(clock: &ManualClock, aud: &str, exp_in: i64, sub: &str) -> String {
    let claims =
        json!({"iss": CLIENT_ID, "sub": sub, "aud": aud, "exp": clock.now().timestamp() + exp_in});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn token_call(t: &T, form: &[(&str, String)]) -> (StatusCode, Value) {
    let r = t
        .http
        .post(format!("{}/services/oauth2/token", t.emu.url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap())
}

async fn start() -> T {
    let clock = ManualClock::new(deterministic_epoch());
    let mut o = EmulatorOptions::deterministic();
    o.clock = Arc::new(clock.clone());
    o.app.jwt_certificate_pem = Some(CERT.into());
    let emu = Emulator::start(o).await.unwrap();
    let mut t = T {
        emu,
        clock,
        http: reqwest::Client::new(),
        token: String::new(),
    };
    let a = assertion(&t.clock, LOGIN, 120, USER);
    let (s, v) = token_call(
        &t,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
            ),
            ("assertion", a),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    t.token = v["access_token"].as_str().unwrap().to_string();
    t
}

impl T {
    fn url(&self, rest: &str) -> String {
        format!("{}/services/data/v62.0/{rest}", self.emu.url())
    }
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = req.bearer_auth(&self.token).send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, v)
    }
    async fn get(&self, rest: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send(self.http.get(self.url(rest))).await
    }
    async fn query(&self, q: &str) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(self.http.get(self.url("query")).query(&[("q", q)]))
            .await;
        (s, v)
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(k: &[&str]) -> BTreeSet<String> {
    k.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn token_response_and_oauth_errors() {
    let t = start().await;
    let a = assertion(&t.clock, LOGIN, 120, USER);
    let (s, v) = token_call(
        &t,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
            ),
            ("assertion", a),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // The JWT bearer flow's documented response has no issued_at and no signature.
    assert_eq!(
        keys(&v),
        set(&["access_token", "scope", "instance_url", "id", "token_type"])
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["instance_url"], t.emu.url());
    let id = v["id"].as_str().unwrap();
    let (org, user) = id
        .strip_prefix(&format!("{}/id/", t.emu.url()))
        .unwrap()
        .split_once('/')
        .unwrap();
    assert!(
        org.starts_with("00D") && ids::is_valid(org) && org.len() == 18,
        "{id}"
    );
    assert!(
        user.starts_with("005") && ids::is_valid(user) && user.len() == 18,
        "{id}"
    );

    // Client credentials (and refresh token) add issued_at, epoch millis as a string, and
    // signature, an HMAC-SHA256 over id + issued_at keyed with the client secret.
    let (s, v) = token_call(
        &t,
        &[
            ("grant_type", "client_credentials".into()),
            ("client_id", CLIENT_ID.into()),
            ("client_secret", "sandbox-client-secret".into()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        keys(&v),
        set(&[
            "access_token",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at",
            "signature"
        ])
    );
    assert_eq!(
        v["issued_at"],
        deterministic_epoch().timestamp_millis().to_string()
    );
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(v["signature"].as_str().unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"sandbox-client-secret");
    let msg = format!(
        "{}{}",
        v["id"].as_str().unwrap(),
        v["issued_at"].as_str().unwrap()
    );
    assert!(ring::hmac::verify(&key, msg.as_bytes(), &sig).is_ok());

    let jwt = |a: String| {
        vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
            ),
            ("assertion", a),
        ]
    };
    let cases = [
        (
            jwt(assertion(&t.clock, "https://elsewhere.example", 120, USER)),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            // A My Domain (the emulator's own URL) is not an audience.
            jwt(assertion(&t.clock, t.emu.url(), 120, USER)),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            jwt(assertion(&t.clock, LOGIN, -10, USER)),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            jwt(assertion(&t.clock, LOGIN, 600, USER)),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt("not.a.jwt".into()),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt(assertion(&t.clock, LOGIN, 60, "ghost@tether.test")),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (
            vec![("grant_type", "authorization_code".to_string())],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", CLIENT_ID.into()),
                ("client_secret", "nope".into()),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            vec![
                ("grant_type", "password".into()),
                ("client_id", CLIENT_ID.into()),
                ("client_secret", "sandbox-client-secret".into()),
                ("username", USER.into()),
                ("password", "sandbox-password".into()),
            ],
            "invalid_grant",
            "authentication failure",
        ),
    ];
    for (form, error, description) in cases {
        let (s, v) = token_call(&t, &form).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(
            v,
            json!({"error": error, "error_description": description}),
            "{form:?}"
        );
    }
    // Client credentials in the body are accepted too.
    let (s, _) = token_call(
        &t,
        &[
            ("grant_type", "client_credentials".into()),
            ("client_id", CLIENT_ID.into()),
            ("client_secret", "sandbox-client-secret".into()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

/// The profile of a 400-rep benchmark: most of the initial sync's CPU was the emulator
/// testing every row of a table against every value of an `IN` list. Salesforce reads
/// indexed fields (Email on contacts, owners, ids, SystemModstamp) through their index, and
/// says so through `query?explain=` ("Get Feedback on Query Performance").
#[tokio::test]
async fn an_in_query_on_an_indexed_field_reads_the_rows_it_names_not_the_whole_table() {
    let t = start().await;
    for i in 0..300 {
        t.emu
            .handle()
            .insert(
                "Contact",
                json!({"LastName": format!("C{i:03}"), "Email": format!("c{i}@example.com")}),
            )
            .unwrap();
    }
    let explain = |q: &'static str| {
        let req = t.http.get(t.url("query")).query(&[("explain", q)]);
        t.send(req)
    };
    let (s, _, v) = explain(
        "SELECT Id FROM Contact WHERE Email IN ('C7@example.com', 'c8@example.com', 'nobody@example.com') AND LastName != null",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let plan = &v["plans"][0];
    assert_eq!(plan["leadingOperationType"], "Index", "{v}");
    assert_eq!(plan["fields"], json!(["Email"]), "{v}");
    assert_eq!(plan["cardinality"], 2, "{v}");
    assert_eq!(plan["sobjectCardinality"], 300, "{v}");
    assert_eq!(plan["sobjectType"], "Contact", "{v}");
    // The query itself answers what the plan read.
    let (s, v) = t
        .query("SELECT Email FROM Contact WHERE Email IN ('C7@example.com', 'c8@example.com', 'nobody@example.com')")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalSize"], 2, "{v}");

    // Title is not indexed: a table scan.
    let (s, _, v) = explain("SELECT Id FROM Contact WHERE Title IN ('CFO')").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["plans"][0]["leadingOperationType"], "TableScan", "{v}");
    assert_eq!(v["plans"][0]["cardinality"], 300, "{v}");
    // A query the emulator cannot parse is refused as the query endpoint refuses it.
    let (s, _, v) = explain("SELECT Id FROM Nothing").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v[0]["errorCode"], "INVALID_TYPE", "{v}");
}

#[tokio::test]
async fn query_pages_follow_the_documented_shape() {
    let t = start().await;
    for i in 0..450 {
        t.emu
            .handle()
            .insert("Contact", json!({"LastName": format!("C{i:03}")}))
            .unwrap();
    }
    let req = t
        .http
        .get(t.url("query"))
        .query(&[("q", "SELECT Id, LastName FROM Contact ORDER BY LastName")])
        .header("Sforce-Query-Options", "batchSize=200");
    let (s, h, v) = t.send(req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        keys(&v),
        set(&["totalSize", "done", "nextRecordsUrl", "records"])
    );
    assert_eq!(v["totalSize"], 450);
    assert_eq!(v["done"], false);
    let next = v["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with("/services/data/v62.0/query/0r8"), "{next}");
    // The documented form: an 18-character locator id, a dash, the rows returned so far.
    let (locator, offset) = next
        .trim_start_matches("/services/data/v62.0/query/")
        .split_once('-')
        .unwrap();
    assert!(ids::is_valid(locator) && locator.len() == 18, "{locator}");
    assert_eq!(offset, "200");
    let rec = &v["records"][0];
    assert_eq!(keys(rec), set(&["attributes", "Id", "LastName"]));
    let id = rec["Id"].as_str().unwrap();
    assert_eq!(
        rec["attributes"],
        json!({"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/{id}")})
    );
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("003") && ids::is_valid(id));
    let limit = h.get("Sforce-Limit-Info").unwrap().to_str().unwrap();
    assert_eq!(limit, "api-usage=1/15000");

    let (_, _, p2) = t.send(t.http.get(format!("{}{next}", t.emu.url()))).await;
    assert_eq!(p2["records"].as_array().unwrap().len(), 200);
    let (_, _, p3) = t
        .send(t.http.get(format!(
            "{}{}",
            t.emu.url(),
            p2["nextRecordsUrl"].as_str().unwrap()
        )))
        .await;
    assert_eq!(keys(&p3), set(&["totalSize", "done", "records"]));
    assert_eq!(p3["done"], true);
    assert_eq!(p3["records"].as_array().unwrap().len(), 50);
    assert_eq!(p3["records"][49]["LastName"], "C449");

    // No limit on open cursors ("API Query Cursor Limits", API 56.0 on): eleven stay usable,
    // for two days after their query ran, then INVALID_QUERY_LOCATOR.
    let mut nexts = Vec::new();
    for _ in 0..11 {
        let req = t
            .http
            .get(t.url("query"))
            .query(&[("q", "SELECT Id FROM Contact")])
            .header("Sforce-Query-Options", "batchSize=200");
        let (_, _, v) = t.send(req).await;
        nexts.push(v["nextRecordsUrl"].as_str().unwrap().to_string());
    }
    let (s, _, _) = t
        .send(t.http.get(format!("{}{}", t.emu.url(), nexts[0])))
        .await;
    assert_eq!(s, StatusCode::OK);
    t.clock
        .advance(std::time::Duration::from_secs(2 * 86400 - 1));
    let (s, _, _) = t
        .send(t.http.get(format!("{}{}", t.emu.url(), nexts[10])))
        .await;
    assert_eq!(s, StatusCode::OK);
    t.clock.advance(std::time::Duration::from_secs(2));
    let (s, _, v) = t
        .send(t.http.get(format!("{}{}", t.emu.url(), nexts[9])))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
    );

    // Without the header: 2,000 a page, so one page here.
    let (_, v) = t.query("SELECT Id FROM Contact").await;
    assert_eq!(v["done"], true);
    assert_eq!(v["records"].as_array().unwrap().len(), 450);
}

#[tokio::test]
async fn collection_results_and_single_record_crud() {
    let t = start().await;
    let body = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "Ok", "Email": "ok@example.com"},
        {"attributes": {"type": "Contact"}, "FirstName": "NoLast"},
        {"attributes": {"type": "Contact"}, "LastName": "Bad", "Email": "not-an-email"},
    ]});
    let (s, _, v) = t
        .send(t.http.post(t.url("composite/sobjects")).json(&body))
        .await;
    assert_eq!(s, StatusCode::OK);
    let id = v[0]["id"].as_str().unwrap().to_string();
    assert_eq!(v[0], json!({"id": id, "success": true, "errors": []}));
    assert_eq!(
        v[1],
        json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]})
    );
    assert_eq!(v[2]["errors"][0]["statusCode"], "INVALID_EMAIL_ADDRESS");

    let too_many: Vec<Value> = (0..201)
        .map(|_| json!({"attributes": {"type": "Contact"}, "LastName": "x"}))
        .collect();
    let (s, _, v) = t
        .send(
            t.http
                .post(t.url("composite/sobjects"))
                .json(&json!({"records": too_many})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "EXCEEDED_ID_LIMIT");

    // allOrNone rolls back the good records.
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "Kept?"},
        {"attributes": {"type": "Contact"}},
    ]});
    let (_, _, v) = t
        .send(t.http.post(t.url("composite/sobjects")).json(&body))
        .await;
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(t.emu.handle().records("Contact").len(), 1);

    // Retrieve, update, delete through collections.
    let (_, _, v) = t
        .send(
            t.http
                .post(t.url("composite/sobjects/Contact"))
                .json(&json!({"ids": [id, "0030g5000000zzzAAA"], "fields": ["LastName"]})),
        )
        .await;
    assert_eq!(v[0]["LastName"], "Ok");
    assert_eq!(v[1], Value::Null);
    let (_, _, v) = t
        .send(t.http.patch(t.url("composite/sobjects")).json(
            &json!({"records": [{"attributes": {"type": "Contact"}, "id": id, "Title": "CTO"}]}),
        ))
        .await;
    assert_eq!(v, json!([{"id": id, "success": true, "errors": []}]));

    // Single records.
    let (s, _, v) = t
        .send(
            t.http
                .post(t.url("sobjects/Contact/"))
                .json(&json!({"LastName": "Single"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let single = v["id"].as_str().unwrap().to_string();
    assert_eq!(v, json!({"id": single, "success": true, "errors": []}));
    let (s, _, v) = t.get(&format!("sobjects/Contact/{single}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["attributes"]["type"], "Contact");
    assert_eq!(v["OwnerId"], t.emu.handle().integration_user_id());
    assert_eq!(v["CreatedDate"], "2026-01-15T09:00:00.000+0000");
    t.clock.advance(std::time::Duration::from_secs(60));
    let (s, _, _) = t
        .send(
            t.http
                .patch(t.url(&format!("sobjects/Contact/{single}")))
                .json(&json!({"Title": "VP"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let rec = t.emu.handle().get(&single).unwrap();
    assert_eq!(rec["SystemModstamp"], "2026-01-15T09:01:00.000+0000");
    assert_eq!(rec["LastModifiedDate"], "2026-01-15T09:01:00.000+0000");
    assert_eq!(rec["CreatedDate"], "2026-01-15T09:00:00.000+0000");
    let (s, _, v) = t
        .send(
            t.http
                .patch(t.url(&format!("sobjects/Contact/{single}")))
                .json(&json!({"SystemModstamp": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!([{"message": "Unable to create/update fields: SystemModstamp. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "fields": ["SystemModstamp"]}])
    );
    let (s, _, v) = t
        .send(
            t.http.post(t.url("sobjects/Contact/")).json(
                &json!({"LastName": "X", "CreatedDate": "2020-01-01T00:00:00Z", "Name": "X"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v[0]["message"],
        "Unable to create/update fields: CreatedDate, Name. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
    );
    let (s, _, _) = t
        .send(t.http.delete(t.url(&format!("sobjects/Contact/{single}"))))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, v) = t.get(&format!("sobjects/Contact/{single}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );
    let (_, all) = {
        let (s, _, v) = t
            .send(t.http.get(t.url("queryAll")).query(&[(
                "q",
                "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true",
            )]))
            .await;
        (s, v)
    };
    assert_eq!(all["totalSize"], 1);
    let (_, live) = t.query("SELECT Id FROM Contact").await;
    assert_eq!(live["totalSize"], 1);
    let (_, _, v) = t
        .send(t.http.delete(t.url("composite/sobjects")).query(&[
            ("ids", format!("{id},{single}")),
            ("allOrNone", "false".into()),
        ]))
        .await;
    assert_eq!(v[0], json!({"id": id, "success": true, "errors": []}));
    assert_eq!(v[1]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
}

#[tokio::test]
async fn error_arrays_limits_and_describe() {
    let t = start().await;
    let r = t
        .http
        .get(t.url("limits"))
        .header("Authorization", "Bearer bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers().get("Sforce-Limit-Info").is_some(),
        "on errors too"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    t.emu.handle().fail_next(&[503]);
    let (s, h, v) = t.get("limits").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v[0]["errorCode"], "SERVER_UNAVAILABLE");
    assert!(
        h.get("Sforce-Limit-Info").is_some(),
        "on injected faults too"
    );

    let (s, v) = t.query("SELECT Foo FROM Contact").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(keys(&v[0]), set(&["message", "errorCode"]));
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD");
    let msg = v[0]["message"].as_str().unwrap();
    assert!(msg.starts_with("\nSELECT Foo FROM Contact\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Contact'."), "{msg:?}");

    // A method the resource lacks: 405 and the message real responses carry.
    let (s, _, v) = t
        .send(
            t.http
                .patch(t.url("sobjects/Contact"))
                .json(&json!({"LastName": "X"})),
        )
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        v,
        json!([{"message": "HTTP Method 'PATCH' not allowed. Allowed are HEAD,GET,POST", "errorCode": "METHOD_NOT_ALLOWED"}])
    );

    let (s, _, v) = t.get("limits").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(keys(&v["DailyApiRequests"]), set(&["Max", "Remaining"]));
    assert_eq!(
        v["DailyApiRequests"],
        json!({"Max": 15000, "Remaining": 14997})
    );
    assert_eq!(t.emu.handle().api_usage(), (3, 15000));

    let (s, _, v) = t.get("sobjects/Contact/describe").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "Contact");
    assert_eq!(v["keyPrefix"], "003");
    assert!(v["urls"]["describe"].as_str().unwrap().contains("/v62.0/"));
    let last = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "LastName")
        .unwrap();
    assert_eq!(last["length"], 80);
    let (s, _, _) = t.get("sobjects/EventRelation/describe").await;
    assert_eq!(s, StatusCode::OK);
    // An object the org lacks: the generic 404 body, naming nothing.
    for path in ["sobjects/Widget__c/describe", "sobjects/Widget__c/updated/"] {
        let (s, _, v) = t.get(path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            v,
            json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]),
            "{path}"
        );
    }

    let (s, _, v) = t
        .send(
            t.http
                .get(format!("{}/services/data/v99.0/limits", t.emu.url())),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v[0]["errorCode"], "NOT_FOUND");

    // getUpdated / getDeleted shapes and window.
    let start = (t.clock.now() - chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let end = t.clock.now().format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let (_, _, v) = t
        .send(
            t.http
                .get(t.url("sobjects/Contact/deleted/"))
                .query(&[("start", &start), ("end", &end)]),
        )
        .await;
    assert_eq!(
        keys(&v),
        set(&[
            "deletedRecords",
            "earliestDateAvailable",
            "latestDateCovered"
        ])
    );
    let (_, _, v) = t
        .send(
            t.http
                .get(t.url("sobjects/Contact/updated/"))
                .query(&[("start", &start), ("end", &end)]),
        )
        .await;
    assert_eq!(keys(&v), set(&["ids", "latestDateCovered"]));
    let old = (t.clock.now() - chrono::Duration::days(31))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let (s, _, v) = t
        .send(
            t.http
                .get(t.url("sobjects/Contact/updated/"))
                .query(&[("start", &old), ("end", &end)]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "INVALID_REPLICATION_DATE");

    // Daily allowance.
    t.emu.handle().set_api_used(15000);
    let (s, h, v) = t.get("limits").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        v,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(h.get("Sforce-Limit-Info").unwrap(), "api-usage=15000/15000");
}

enum Expect {
    Rows(u64),
    Err(&'static str),
}
use Expect::{Err as E, Rows as R};

#[tokio::test]
async fn soql_table() {
    let t = start().await;
    let h = t.emu.handle();
    let acme = h.insert("Account", json!({"Name": "Acme"})).unwrap();
    let globex = h.insert("Account", json!({"Name": "Globex"})).unwrap();
    h.insert("Contact", json!({"LastName": "Kung", "FirstName": "Celia", "Email": "celia@acme.com", "Title": "CEO", "AccountId": acme, "Birthdate": "1980-05-01"})).unwrap();
    h.insert("Contact", json!({"LastName": "O'Brien", "FirstName": "Pat", "Email": "pat@globex.com", "AccountId": globex})).unwrap();
    h.insert(
        "Contact",
        json!({"LastName": "Smith", "FirstName": "John", "Title": "Sales"}),
    )
    .unwrap();
    h.insert("Contact", json!({"LastName": "smith", "FirstName": "Anna", "Email": "anna@acme.com", "Title": "Sales Rep", "AccountId": acme})).unwrap();
    let gone = h.insert("Contact", json!({"LastName": "Gone"})).unwrap();
    h.delete(&gone).unwrap();
    for start in [
        "2026-01-15T10:00:00Z",
        "2026-01-14T10:00:00Z",
        "2025-12-20T10:00:00Z",
        "2026-01-05T10:00:00Z",
    ] {
        h.insert(
            "Event",
            json!({"Subject": "Meet", "StartDateTime": start, "DurationInMinutes": 60}),
        )
        .unwrap();
    }
    h.insert(
        "Lead",
        json!({"LastName": "Lead1", "Company": "Initech", "Email": "lead@initech.com"}),
    )
    .unwrap();

    let table: Vec<(&str, Expect)> = vec![
        ("SELECT Id FROM Contact", R(4)),
        (
            "SELECT Id, LastName FROM Contact WHERE LastName = 'Smith'",
            R(2),
        ),
        ("SELECT Id FROM Contact WHERE LastName != 'Smith'", R(2)),
        ("SELECT Id FROM Contact WHERE LastName <> 'Smith'", R(2)),
        ("SELECT Id FROM Contact WHERE Email = null", R(1)),
        ("SELECT Id FROM Contact WHERE Email != null", R(3)),
        ("SELECT Id FROM Contact WHERE Title LIKE 'Sales%'", R(2)),
        ("SELECT Id FROM Contact WHERE Title LIKE '%rep'", R(1)),
        ("SELECT Id FROM Contact WHERE FirstName LIKE '_at'", R(1)),
        (
            "SELECT Id FROM Contact WHERE LastName IN ('Kung', 'Smith')",
            R(3),
        ),
        (
            "SELECT Id FROM Contact WHERE LastName NOT IN ('Kung')",
            R(3),
        ),
        ("SELECT Id FROM Contact WHERE LastName = 'O\\'Brien'", R(1)),
        ("SELECT Id FROM Contact WHERE Account.Name = 'Acme'", R(2)),
        (
            "SELECT Id, Account.Name, Owner.Email FROM Contact WHERE Account.Name != null",
            R(3),
        ),
        (
            "SELECT Id FROM Contact WHERE (LastName = 'Smith' AND FirstName = 'John') OR LastName = 'Kung'",
            R(2),
        ),
        ("SELECT Id FROM Contact WHERE NOT LastName = 'Smith'", R(2)),
        (
            "SELECT Id FROM Contact WHERE LastName = 'Smith' AND (Title = 'Sales' OR Title = 'Sales Rep')",
            R(2),
        ),
        ("SELECT Id FROM Contact WHERE Birthdate > 1979-12-31", R(1)),
        ("SELECT Id FROM Contact WHERE Birthdate < 1979-12-31", R(0)),
        ("SELECT Id FROM Contact WHERE CreatedDate = TODAY", R(4)),
        (
            "SELECT Id FROM Contact WHERE CreatedDate > 2026-01-01T00:00:00Z",
            R(4),
        ),
        (
            "SELECT Id FROM Contact WHERE CreatedDate < 2026-01-01T00:00:00.000+0000",
            R(0),
        ),
        (
            "SELECT Id FROM Contact WHERE SystemModstamp >= 2026-01-15T10:00:00+01:00",
            R(4),
        ),
        (
            "SELECT Id FROM Contact ORDER BY LastName DESC LIMIT 2",
            R(2),
        ),
        (
            "SELECT Id FROM Contact ORDER BY Email NULLS LAST, LastName LIMIT 10 OFFSET 3",
            R(1),
        ),
        ("SELECT COUNT() FROM Contact", R(4)),
        (
            "SELECT COUNT() FROM Contact WHERE Account.Name = 'Globex'",
            R(1),
        ),
        ("SELECT Id FROM Event WHERE StartDateTime = TODAY", R(1)),
        ("SELECT Id FROM Event WHERE StartDateTime = YESTERDAY", R(1)),
        (
            "SELECT Id FROM Event WHERE StartDateTime = LAST_MONTH",
            R(1),
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime = THIS_MONTH",
            R(3),
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime = LAST_N_DAYS:10",
            R(3),
        ),
        ("SELECT Id FROM Event WHERE EndDateTime >= TODAY", R(1)),
        // Today is Thursday 2026-01-15; its (en_US) week started on Sunday 2026-01-11.
        (
            "SELECT Id FROM Event WHERE StartDateTime = N_DAYS_AGO:1",
            R(1),
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime = LAST_N_WEEKS:2",
            R(1),
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime = N_WEEKS_AGO:1",
            R(1),
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime = THIS_QUARTER",
            R(3),
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime = LAST_QUARTER",
            R(1),
        ),
        (
            "SELECT Id FROM Event WHERE ActivityDate = N_YEARS_AGO:1",
            R(1),
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime = N_DAYS_AGO",
            E("MALFORMED_QUERY"),
        ),
        (
            "SELECT Id FROM Event WHERE ActivityDate < LAST_N_DAYS:1",
            R(2),
        ),
        (
            "SELECT Id FROM Event WHERE IsAllDayEvent = false AND DurationInMinutes > 30",
            R(4),
        ),
        (
            "SELECT Id, Subject, Owner.Email FROM Event WHERE Owner.Email = 'integration@tether.test'",
            R(4),
        ),
        ("SELECT Id FROM Lead WHERE IsConverted = false", R(1)),
        (
            "SELECT Id, Name, Email, Profile.Name FROM User WHERE IsActive = true",
            R(1),
        ),
        (
            "SELECT Id FROM User WHERE Profile.Name = 'System Administrator'",
            R(1),
        ),
        ("select id from contact where lastname = 'kung'", R(1)),
        (
            "SELECT Contact.LastName FROM Contact WHERE Contact.Email LIKE '%acme.com'",
            R(2),
        ),
        ("SELECT Id FROM EventRelation", R(0)),
        (
            "SELECT Id FROM Contact WHERE AccountId = '001000000000000'",
            R(0),
        ),
        ("SELECT Id FROM Contact WHERE AccountId = ''", R(0)),
        (
            "SELECT Id FROM Contact WHERE AccountId = 'not-an-id'",
            E("INVALID_QUERY_FILTER_OPERATOR"),
        ),
        ("SELECT Foo FROM Contact", E("INVALID_FIELD")),
        ("SELECT Id FROM Nope", E("INVALID_TYPE")),
        ("SELECT Id Contact", E("MALFORMED_QUERY")),
        ("SELECT FROM Contact", E("MALFORMED_QUERY")),
        ("SELECT Id FROM Contact WHERE", E("MALFORMED_QUERY")),
        (
            "SELECT Id FROM Contact WHERE LastName = 'a' AND FirstName = 'b' OR Title = 'c'",
            E("MALFORMED_QUERY"),
        ),
        (
            "SELECT Id FROM Contact WHERE CreatedDate = '2026-01-01'",
            E("INVALID_FIELD"),
        ),
        (
            "SELECT Id FROM Contact WHERE LastName = 5",
            E("INVALID_FIELD"),
        ),
        (
            "SELECT Id FROM Contact WHERE Foo.Name = 'x'",
            E("INVALID_FIELD"),
        ),
        (
            "SELECT Id FROM Contact OFFSET 2001",
            E("NUMBER_OUTSIDE_VALID_RANGE"),
        ),
        (
            "SELECT Id FROM Contact WHERE LastName = 'unterminated",
            E("MALFORMED_QUERY"),
        ),
        ("SELECT Id FROM Contact LIMIT abc", E("MALFORMED_QUERY")),
        (
            "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS",
            E("MALFORMED_QUERY"),
        ),
        (
            "SELECT Id FROM Contact WHERE CreatedDate = SOMEDAY",
            E("MALFORMED_QUERY"),
        ),
        (
            "SELECT Id FROM Contact GROUP BY LastName",
            E("MALFORMED_QUERY"),
        ),
        ("SELECT Id, Id FROM Contact", E("MALFORMED_QUERY")),
        (
            "SELECT Id FROM Contact WHERE IsDeleted > true",
            E("INVALID_FIELD"),
        ),
        (
            "SELECT Id FROM Contact WHERE Description = 'x'",
            E("INVALID_FIELD"),
        ),
        (
            "SELECT Id FROM Contact WHERE LastName LIKE 5",
            E("MALFORMED_QUERY"),
        ),
        (
            "SELECT Id FROM Contact WHERE LastName = 'a\\q'",
            E("MALFORMED_QUERY"),
        ),
        ("SELECT Id FROM Contact; DELETE", E("MALFORMED_QUERY")),
        ("", E("MALFORMED_QUERY")),
    ];
    assert!(table.len() >= 40);
    for (q, expect) in &table {
        let (s, v) = t.query(q).await;
        match expect {
            R(n) => {
                assert_eq!(s, StatusCode::OK, "{q}: {v}");
                assert_eq!(v["totalSize"], json!(n), "{q}: {v}");
                if !q.contains("COUNT()") {
                    assert_eq!(v["records"].as_array().unwrap().len() as u64, *n, "{q}");
                }
            }
            E(code) => {
                assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
                assert_eq!(v[0]["errorCode"], *code, "{q}: {v}");
                assert!(
                    v[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{q}"
                );
            }
        }
    }
    // A 15-character id finds the record its 18-character form names.
    let acme15 = &acme[..15];
    let (_, v) = t
        .query(&format!(
            "SELECT Id FROM Contact WHERE AccountId = '{acme15}'"
        ))
        .await;
    assert_eq!(v["totalSize"], 2, "{v}");
    // Relationship fields nest under the relationship name, null when the reference is empty.
    let (_, v) = t
        .query("SELECT LastName, Account.Name FROM Contact ORDER BY FirstName")
        .await;
    assert_eq!(v["records"][0]["LastName"], "smith");
    assert_eq!(v["records"][0]["Account"]["Name"], "Acme");
    assert_eq!(v["records"][0]["Account"]["attributes"]["type"], "Account");
    assert_eq!(v["records"][2]["LastName"], "Smith");
    assert_eq!(v["records"][2]["Account"], Value::Null);
}

/// getUpdated()/getDeleted() rules (SOAP API guide, referenced by the REST sObject Get
/// Updated / Get Deleted pages): the seconds of start and end are ignored; startDate must
/// precede endDate (getDeleted: by more than one minute); equal or later is
/// INVALID_REPLICATION_DATE.
#[tokio::test]
async fn replication_start_must_precede_end() {
    let t = start().await;
    let fmt = |d: chrono::Duration| {
        (t.clock.now() + d)
            .format("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string()
    };
    let now = fmt(chrono::Duration::zero());
    let earlier = fmt(chrono::Duration::hours(-1));
    // 09:00:05 and 09:00:55 are both 09:00 once the seconds are dropped.
    let (s5, s55) = (
        fmt(chrono::Duration::seconds(5)),
        fmt(chrono::Duration::seconds(55)),
    );
    let one_min = fmt(chrono::Duration::seconds(60));
    let two_min = fmt(chrono::Duration::seconds(120));
    let get = |kind: &str, start: &str, end: &str| {
        t.http
            .get(t.url(&format!("sobjects/Contact/{kind}/")))
            .query(&[("start", start), ("end", end)])
    };
    let (s, _, v) = t.send(get("updated", &s5, &s55)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, _) = t.send(get("updated", &s55, &one_min)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = t.send(get("deleted", &now, &one_min)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "INVALID_REPLICATION_DATE");
    let (s, _, _) = t.send(get("deleted", &s55, &two_min)).await;
    assert_eq!(s, StatusCode::OK);
    for kind in ["updated", "deleted"] {
        for (start, end) in [(&now, &now), (&now, &earlier)] {
            let (s, _, v) = t
                .send(
                    t.http
                        .get(t.url(&format!("sobjects/Contact/{kind}/")))
                        .query(&[("start", start), ("end", end)]),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{kind} {start} {end}");
            assert_eq!(v[0]["errorCode"], "INVALID_REPLICATION_DATE", "{v}");
        }
        let (s, _, _) = t
            .send(
                t.http
                    .get(t.url(&format!("sobjects/Contact/{kind}/")))
                    .query(&[("start", &earlier), ("end", &now)]),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
}

/// "Delete Records Using sObject Collections" examples: with allOrNone=false a malformed id's
/// result has no `id`, only `success` and `errors` (MALFORMED_ID, "malformed id …"); with
/// allOrNone=true the valid ids come back with their id, success false and
/// ALL_OR_NONE_OPERATION_ROLLED_BACK, in request order.
#[tokio::test]
async fn collection_delete_results_follow_the_documented_examples() {
    let t = start().await;
    let h = t.emu.handle();
    let a = h.insert("Contact", json!({"LastName": "A"})).unwrap();
    let b = h.insert("Contact", json!({"LastName": "B"})).unwrap();
    let bad = "003RM000003oLrB000";
    let (s, _, v) = t
        .send(t.http.delete(t.url("composite/sobjects")).query(&[
            ("ids", format!("{},{bad}", &a[..15])),
            ("allOrNone", "true".into()),
        ]))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!([
            {"id": a, "success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]},
            {"success": false, "errors": [{"statusCode": "MALFORMED_ID", "message": format!("malformed id {bad}"), "fields": []}]},
        ])
    );
    assert!(h.get(&a).is_some(), "rolled back");
    let (_, _, v) = t
        .send(
            t.http
                .delete(t.url("composite/sobjects"))
                .query(&[("ids", format!("{b},{bad}")), ("allOrNone", "false".into())]),
        )
        .await;
    assert_eq!(
        v,
        json!([
            {"id": b, "success": true, "errors": []},
            {"success": false, "errors": [{"statusCode": "MALFORMED_ID", "message": format!("malformed id {bad}"), "fields": []}]},
        ])
    );
}

/// `Sforce-Limit-Info` in the documented form (REST API Developer Guide, "Limit Info
/// Header"): `api-usage=25/5000`, and `; per-app-api-usage=17/250(appName=…)` when the
/// connected app has a quota.
#[tokio::test]
async fn limit_info_header_has_the_documented_form() {
    let t = start().await;
    let h = t.emu.handle();
    h.set_daily_allowance(5000);
    let (_, hd, _) = t.get("limits").await;
    assert_eq!(hd.get("Sforce-Limit-Info").unwrap(), "api-usage=1/5000");
    h.set_app_quota("sample-connected-app", 250);
    let (_, hd, _) = t.get("limits").await;
    assert_eq!(
        hd.get("Sforce-Limit-Info").unwrap(),
        "api-usage=2/5000; per-app-api-usage=2/250(appName=sample-connected-app)"
    );
}

/// The daily allowance counts the calls of the preceding 24 hours ("API Request Limits and
/// Allocations"; Help, System Overview: API Usage): once blocked, calls succeed again when
/// the oldest calls leave the window; Sforce-Limit-Info and /limits show the window's count.
#[tokio::test]
async fn daily_allowance_is_a_rolling_24_hour_window() {
    let t = start().await;
    let h = t.emu.handle();
    h.set_daily_allowance(3);
    let (s, hd, _) = t.get("limits").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hd.get("Sforce-Limit-Info").unwrap(), "api-usage=1/3");
    t.clock.advance(std::time::Duration::from_secs(3600));
    t.get("limits").await;
    t.get("limits").await;
    let (s, hd, v) = t.get("limits").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(hd.get("Sforce-Limit-Info").unwrap(), "api-usage=3/3");
    // The first call leaves the window 24 hours after it was made.
    t.clock
        .advance(std::time::Duration::from_secs(23 * 3600 + 1));
    let (s, hd, v) = t.get("limits").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hd.get("Sforce-Limit-Info").unwrap(), "api-usage=3/3");
    assert_eq!(v["DailyApiRequests"], json!({"Max": 3, "Remaining": 0}));
    assert_eq!(h.api_usage(), (3, 3));
    t.clock.advance(std::time::Duration::from_secs(86400));
    assert_eq!(h.api_usage(), (0, 3));
}

/// STRING_TOO_LONG names the field by its label, quotes the value whole and gives the
/// describe length, as real responses do ("Billing City: data value too large: … (max
/// length=40)"); the field list names the field.
#[tokio::test]
async fn string_too_long_quotes_the_value() {
    let t = start().await;
    let long = "Giugliano in Campania, Metropolitan City of Naples";
    let (s, _, v) = t
        .send(
            t.http
                .post(t.url("sobjects/Contact/"))
                .json(&json!({"LastName": "X", "MailingCity": long})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!([{"message": format!("Mailing City: data value too large: {long} (max length=40)"), "errorCode": "STRING_TOO_LONG", "fields": ["MailingCity"]}])
    );
}

/// EventRelation (Object Reference, Shared Activities): a person who is both invitee and Who
/// has one record with IsInvitee and IsParent true; deleting the relation that is the event's
/// WhoId promotes another related contact or lead to WhoId, or clears it when none is left.
#[tokio::test]
async fn event_relations_follow_the_who() {
    let t = start().await;
    let h = t.emu.handle();
    let c: Vec<String> = (1..=3)
        .map(|i| {
            h.insert("Contact", json!({"LastName": format!("C{i}")}))
                .unwrap()
        })
        .collect();
    let ev = h
        .insert(
            "Event",
            json!({"Subject": "S", "StartDateTime": "2026-01-20T10:00:00Z", "DurationInMinutes": 30, "WhoId": c[0]}),
        )
        .unwrap();
    let rels = |t: &T| {
        let h = t.emu.handle();
        let mut v: Vec<(String, bool, bool)> = h
            .records("EventRelation")
            .iter()
            .map(|r| {
                (
                    r["RelationId"].as_str().unwrap().to_string(),
                    r["IsInvitee"] == json!(true),
                    r["IsParent"] == json!(true),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(rels(&t), vec![(c[0].clone(), false, true)]);
    let invite = h
        .insert(
            "EventRelation",
            json!({"EventId": ev, "RelationId": c[1], "IsInvitee": true}),
        )
        .unwrap();
    h.update("Event", &ev, json!({"WhoId": c[1]})).unwrap();
    assert_eq!(rels(&t), vec![(c[1].clone(), true, true)]);
    h.insert(
        "EventRelation",
        json!({"EventId": ev, "RelationId": c[2], "IsParent": true}),
    )
    .unwrap();
    let (s, _, _) = t
        .send(
            t.http
                .delete(t.url(&format!("sobjects/EventRelation/{invite}"))),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h.get(&ev).unwrap()["WhoId"], json!(c[2]));
    let last = h
        .records("EventRelation")
        .iter()
        .find(|r| r["RelationId"] == json!(c[2]))
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .unwrap();
    h.delete(&last).unwrap();
    assert_eq!(h.get(&ev).unwrap()["WhoId"], Value::Null);
}

/// QueryAll More Results: a queryAll's nextRecordsUrl names `query`, not `queryAll`, and the
/// locator can be followed through either resource; deleted matches stay in the results.
#[tokio::test]
async fn query_all_locator_names_query() {
    let t = start().await;
    let h = t.emu.handle();
    let ids: Vec<String> = (0..250)
        .map(|i| {
            h.insert("Contact", json!({"LastName": format!("Q{i:03}")}))
                .unwrap()
        })
        .collect();
    h.delete(&ids[249]).unwrap();
    let req = t
        .http
        .get(t.url("queryAll"))
        .query(&[("q", "SELECT Id, IsDeleted FROM Contact ORDER BY LastName")])
        .header("Sforce-Query-Options", "batchSize=200");
    let (_, _, v) = t.send(req).await;
    assert_eq!(v["totalSize"], 250);
    let next = v["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with("/services/data/v62.0/query/0r8"), "{next}");
    let via_all = next.replace("/query/", "/queryAll/");
    let (s, _, p2) = t
        .send(t.http.get(format!("{}{via_all}", t.emu.url())))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p2["done"], true);
    assert_eq!(p2["records"].as_array().unwrap().len(), 50);
    assert_eq!(p2["records"][49]["IsDeleted"], true);
}

/// Event (Object Reference, EndDateTime / DurationInMinutes): both may be given only when they
/// add up to the same time; an all-day event takes its length from either (one day when
/// neither); from API 39.0 the error names DurationInMinutes when it has a value, else
/// EndDateTime.
#[tokio::test]
async fn event_end_and_duration_must_agree() {
    let t = start().await;
    let h = t.emu.handle();
    let ok = h
        .insert(
            "Event",
            json!({"Subject": "Both", "StartDateTime": "2026-01-20T10:00:00Z", "EndDateTime": "2026-01-20T11:30:00Z", "DurationInMinutes": 90}),
        )
        .unwrap();
    assert_eq!(h.get(&ok).unwrap()["DurationInMinutes"], 90);
    let err = h
        .insert(
            "Event",
            json!({"Subject": "Both", "StartDateTime": "2026-01-20T10:00:00Z", "EndDateTime": "2026-01-20T11:00:00Z", "DurationInMinutes": 90}),
        )
        .unwrap_err();
    assert_eq!(err.status_code, "FIELD_INTEGRITY_EXCEPTION");
    assert_eq!(err.fields, vec!["DurationInMinutes"]);
    let err = h
        .insert(
            "Event",
            json!({"Subject": "Back", "StartDateTime": "2026-01-20T10:00:00Z", "EndDateTime": "2026-01-20T09:00:00Z"}),
        )
        .unwrap_err();
    assert_eq!(err.fields, vec!["EndDateTime"]);

    // All-day: three days through EndDateTime (midnight UTC of the last day), or one by default.
    let three = h
        .insert(
            "Event",
            json!({"Subject": "Fair", "IsAllDayEvent": true, "ActivityDate": "2026-02-02", "EndDateTime": "2026-02-04T00:00:00Z"}),
        )
        .unwrap();
    let rec = h.get(&three).unwrap();
    assert_eq!(rec["DurationInMinutes"], 3 * 1440);
    assert_eq!(rec["EndDate"], "2026-02-04");
    let one = h
        .insert(
            "Event",
            json!({"Subject": "Day", "IsAllDayEvent": true, "ActivityDate": "2026-02-02"}),
        )
        .unwrap();
    assert_eq!(h.get(&one).unwrap()["DurationInMinutes"], 1440);
    let err = h
        .insert(
            "Event",
            json!({"Subject": "Fair", "IsAllDayEvent": true, "ActivityDate": "2026-02-02", "EndDateTime": "2026-02-04T00:00:00Z", "DurationInMinutes": 1440}),
        )
        .unwrap_err();
    assert_eq!(err.status_code, "FIELD_INTEGRITY_EXCEPTION");
}

/// SOQL ORDER BY: nulls sort first by default in either direction; NULLS LAST moves them;
/// text sorts case-insensitively.
#[tokio::test]
async fn order_by_puts_nulls_first_by_default() {
    let t = start().await;
    let h = t.emu.handle();
    h.insert("Contact", json!({"LastName": "b", "Email": "b@x.com"}))
        .unwrap();
    h.insert("Contact", json!({"LastName": "None"})).unwrap();
    h.insert("Contact", json!({"LastName": "A", "Email": "A@x.com"}))
        .unwrap();
    let names = |v: &Value| -> Vec<String> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["LastName"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, v) = t
        .query("SELECT LastName FROM Contact ORDER BY Email DESC")
        .await;
    assert_eq!(names(&v), ["None", "b", "A"]);
    let (_, v) = t.query("SELECT LastName FROM Contact ORDER BY Email").await;
    assert_eq!(names(&v), ["None", "A", "b"]);
    let (_, v) = t
        .query("SELECT LastName FROM Contact ORDER BY Email DESC NULLS LAST")
        .await;
    assert_eq!(names(&v), ["b", "A", "None"]);
}

/// "Update Records Using sObject Collections" examples: an id of the wrong type fails with
/// MALFORMED_ID "Contact ID: id value of incorrect type: …", fields [Id], and no `id`; with
/// allOrNone the valid record comes back with its id, rolled back.
#[tokio::test]
async fn collection_update_results_follow_the_documented_examples() {
    let t = start().await;
    let h = t.emu.handle();
    let c = h.insert("Contact", json!({"LastName": "C"})).unwrap();
    let bad = "001xx000003DGb2999";
    let body = |all: bool| {
        json!({"allOrNone": all, "records": [
            {"attributes": {"type": "Contact"}, "id": &c[..15], "Title": "Lead Engineer"},
            {"attributes": {"type": "Contact"}, "id": bad, "Title": "Lead Engineer"},
        ]})
    };
    let malformed = json!({"success": false, "errors": [{"statusCode": "MALFORMED_ID", "message": format!("Contact ID: id value of incorrect type: {bad}"), "fields": ["Id"]}]});
    let (_, _, v) = t
        .send(t.http.patch(t.url("composite/sobjects")).json(&body(true)))
        .await;
    assert_eq!(
        v,
        json!([
            {"id": c, "success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]},
            malformed,
        ])
    );
    assert!(h.get(&c).unwrap().get("Title").is_none_or(Value::is_null));
    let (_, _, v) = t
        .send(t.http.patch(t.url("composite/sobjects")).json(&body(false)))
        .await;
    assert_eq!(
        v,
        json!([{"id": c, "success": true, "errors": []}, malformed])
    );
}

/// A unique field's value is taken while a live record holds it, and free again once that
/// record changes it or is deleted; a restored org keeps the rule.
#[tokio::test]
async fn unique_values_are_held_by_live_records_only() {
    let emu = Emulator::start(EmulatorOptions::deterministic())
        .await
        .unwrap();
    let h = emu.handle();
    let key = "Tether_Sync_Key__c";
    let dup =
        |r: Result<String, tether_emulators::salesforce::RecordError>| r.map_err(|e| e.status_code);
    let a = h
        .insert("Contact", json!({"LastName": "A", key: "k1"}))
        .unwrap();
    assert_eq!(
        dup(h.insert("Contact", json!({"LastName": "B", key: "K1"}))),
        Err("DUPLICATE_VALUE".into())
    );
    // Updating a record to its own value is no clash.
    h.update("Contact", &a, json!({key: "k1", "Title": "CFO"}))
        .unwrap();
    h.update("Contact", &a, json!({key: "k2"})).unwrap();
    let b = h
        .insert("Contact", json!({"LastName": "B", key: "k1"}))
        .unwrap();
    assert_eq!(
        dup(h.insert("Contact", json!({"LastName": "C", key: "k2"}))),
        Err("DUPLICATE_VALUE".into())
    );
    h.delete(&a).unwrap();
    h.insert("Contact", json!({"LastName": "C", key: "k2"}))
        .unwrap();

    let restored = Emulator::start(EmulatorOptions::deterministic())
        .await
        .unwrap();
    restored.handle().restore(h.snapshot());
    assert_eq!(
        dup(restored
            .handle()
            .insert("Contact", json!({"LastName": "D", key: "k1"}))),
        Err("DUPLICATE_VALUE".into())
    );
    assert!(restored.handle().get(&b).is_some());
}

#[tokio::test]
async fn a_blocking_duplicate_rule_answers_duplicates_detected_with_the_matches() {
    let t = start().await;
    t.emu.handle().duplicate_rule("Contact", "Email");
    let existing = t
        .emu
        .handle()
        .insert(
            "Contact",
            json!({"LastName": "Kung", "Email": "celia@customer.com"}),
        )
        .unwrap();
    let body = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "Other", "Email": "other@customer.com"},
        {"attributes": {"type": "Contact"}, "LastName": "Kung", "Email": "CELIA@customer.com"},
    ]});
    let (s, _, v) = t
        .send(t.http.post(t.url("composite/sobjects")).json(&body))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["success"], true);
    let e = &v[1]["errors"][0];
    assert_eq!(v[1]["success"], false);
    assert_eq!(e["statusCode"], "DUPLICATES_DETECTED");
    assert_eq!(e["message"], "Use one of these records?");
    let d = &e["duplicateResult"];
    assert_eq!(d["allowSave"], false);
    assert_eq!(d["duplicateRuleEntityType"], "Contact");
    let m = &d["matchResults"][0];
    assert_eq!(m["entityType"], "Contact");
    assert_eq!(m["size"], 1);
    assert_eq!(m["matchRecords"][0]["record"]["Id"], existing.as_str());
    assert_eq!(
        m["matchRecords"][0]["record"]["attributes"]["type"],
        "Contact"
    );
    // An update into a duplicate is blocked too; the record itself is no duplicate of itself.
    let (_, _, v) = t
        .send(t.http.patch(t.url("composite/sobjects")).json(&json!({"records": [
            {"attributes": {"type": "Contact"}, "id": existing, "Title": "CTO"},
            {"attributes": {"type": "Contact"}, "id": v[0]["id"], "Email": "celia@customer.com"},
        ]})))
        .await;
    assert_eq!(v[0]["success"], true, "{v}");
    assert_eq!(v[1]["errors"][0]["statusCode"], "DUPLICATES_DETECTED");
}

#[tokio::test]
async fn a_create_whose_answer_breaks_off_was_still_made() {
    use tether_emulators::salesforce::KindFault;
    let t = start().await;
    t.emu
        .handle()
        .fault_next("collection", KindFault::DropResponse);
    let body = json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "Made"}]});
    // The connection resets before the answer is complete (hyper may not even have sent
    // the head by then): the caller gets no result either way.
    let answered = match t
        .http
        .post(t.url("composite/sobjects"))
        .bearer_auth(&t.token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!answered, "the answer breaks off");
    assert_eq!(t.emu.handle().records("Contact").len(), 1);

    t.emu
        .handle()
        .fault_next("query", KindFault::ExpireSessions);
    let (s, v) = t.query("SELECT Id FROM Contact").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v[0]["errorCode"], "INVALID_SESSION_ID");
}

/// EventRelation (Object Reference): IsInvitee defaults to true and IsParent to false;
/// IsWhat is read-only and set by the platform; a relation is an invitee or a parent (Who or
/// What) or both; parent relations need Shared Activities, users are only ever invitees, and
/// an event has up to 50 contacts or one lead as Whos, the first becoming its WhoId.
#[tokio::test]
async fn emulator_enforces_event_relation_rules() {
    let t = start().await;
    let h = t.emu.handle();
    let contact = |i: usize| {
        h.insert("Contact", json!({"LastName": format!("C{i}")}))
            .unwrap()
    };
    let event = || {
        h.insert(
            "Event",
            json!({"Subject": "S", "StartDateTime": "2026-01-20T10:00:00Z", "DurationInMinutes": 30}),
        )
        .unwrap()
    };
    let tr = &t;
    let post = move |body: Value| async move {
        let (s, _, v) = tr
            .send(tr.http.post(tr.url("sobjects/EventRelation/")).json(&body))
            .await;
        (s, v)
    };
    let who = |e: &str| {
        h.get(e)
            .unwrap()
            .get("WhoId")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let code = |v: &Value| v[0]["errorCode"].as_str().unwrap_or("").to_string();
    let ev = event();
    let (c1, c2) = (contact(1), contact(2));

    // Defaults: an invitee, not a parent; IsWhat false for a person.
    let (s, v) = post(json!({"EventId": ev, "RelationId": c1})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let invitee = h.get(v["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            &invitee["IsInvitee"],
            &invitee["IsParent"],
            &invitee["IsWhat"]
        ),
        (&json!(true), &json!(false), &json!(false))
    );
    assert_eq!(who(&ev), Value::Null, "an invitee is no Who");

    // Neither invitee nor parent: refused.
    let (s, v) = post(json!({"EventId": ev, "RelationId": c2, "IsInvitee": false})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&v), "FIELD_INTEGRITY_EXCEPTION", "{v}");
    // IsWhat is the platform's.
    let (s, v) =
        post(json!({"EventId": ev, "RelationId": c2, "IsParent": true, "IsWhat": true})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&v), "INVALID_FIELD_FOR_INSERT_UPDATE", "{v}");
    // A user is invited, never related.
    let user = h.integration_user_id();
    let (_, v) =
        post(json!({"EventId": ev, "RelationId": user, "IsParent": true, "IsInvitee": false}))
            .await;
    assert_eq!(code(&v), "FIELD_INTEGRITY_EXCEPTION", "{v}");

    // The documented example: a Who relation; the first one becomes the WhoId.
    let (s, v) =
        post(json!({"EventId": ev, "RelationId": c2, "IsParent": true, "IsInvitee": false})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(who(&ev), json!(c2));
    let c3 = contact(3);
    post(json!({"EventId": ev, "RelationId": c3, "IsParent": true, "IsInvitee": false})).await;
    assert_eq!(who(&ev), json!(c2), "the primary stays");

    // An account is a What: IsWhat set, and it cannot be an invitee.
    let acct = h.insert("Account", json!({"Name": "Acme"})).unwrap();
    let (_, v) = post(json!({"EventId": ev, "RelationId": acct})).await;
    assert_eq!(code(&v), "FIELD_INTEGRITY_EXCEPTION", "{v}");
    let (s, v) =
        post(json!({"EventId": ev, "RelationId": acct, "IsParent": true, "IsInvitee": false}))
            .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        h.get(v["id"].as_str().unwrap()).unwrap()["IsWhat"],
        json!(true)
    );

    // One lead or up to 50 contacts: a lead cannot join contacts (an invitee lead can).
    let lead = h
        .insert("Lead", json!({"LastName": "L", "Company": "Acme"}))
        .unwrap();
    let (_, v) =
        post(json!({"EventId": ev, "RelationId": lead, "IsParent": true, "IsInvitee": false}))
            .await;
    assert_eq!(code(&v), "FIELD_INTEGRITY_EXCEPTION", "{v}");
    let (s, _) = post(json!({"EventId": ev, "RelationId": lead})).await;
    assert_eq!(s, StatusCode::CREATED);
    let full = event();
    for i in 0..50 {
        let (s, v) = post(json!({"EventId": full, "RelationId": contact(10 + i), "IsParent": true, "IsInvitee": false})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (_, v) = post(
        json!({"EventId": full, "RelationId": contact(99), "IsParent": true, "IsInvitee": false}),
    )
    .await;
    assert_eq!(code(&v), "FIELD_INTEGRITY_EXCEPTION", "{v}");
    assert!(
        v[0]["message"].as_str().unwrap().contains("50 contacts"),
        "{v}"
    );
    let only_lead = event();
    post(json!({"EventId": only_lead, "RelationId": lead, "IsParent": true, "IsInvitee": false}))
        .await;
    assert_eq!(who(&only_lead), json!(lead));
    let (_, v) =
        post(json!({"EventId": only_lead, "RelationId": c1, "IsParent": true, "IsInvitee": false}))
            .await;
    assert_eq!(code(&v), "FIELD_INTEGRITY_EXCEPTION", "{v}");

    // Shared Activities off: only invitees; Event's describe loses EventWhoRelations.
    let children = |v: &Value| -> Vec<String> {
        v["childRelationships"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["relationshipName"].as_str().map(str::to_string))
            .collect()
    };
    let (_, _, d) = t.get("sobjects/Event/describe").await;
    assert!(children(&d).contains(&"EventWhoRelations".to_string()));
    h.set_shared_activities(false);
    let (_, _, d) = t.get("sobjects/Event/describe").await;
    assert!(!children(&d).contains(&"EventWhoRelations".to_string()));
    let ev2 = event();
    let (s, v) =
        post(json!({"EventId": ev2, "RelationId": c1, "IsParent": true, "IsInvitee": false})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&v), "FIELD_INTEGRITY_EXCEPTION", "{v}");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap()
            .contains("Shared Activities"),
        "{v}"
    );
    let (s, _) = post(json!({"EventId": ev2, "RelationId": c1})).await;
    assert_eq!(s, StatusCode::CREATED, "invitees need no Shared Activities");
    // Event.WhoId is a plain field then: no relation appears for it.
    h.update("Event", &ev2, json!({"WhoId": c2})).unwrap();
    let rels: Vec<_> = h
        .records("EventRelation")
        .into_iter()
        .filter(|r| r["EventId"] == json!(ev2))
        .collect();
    assert_eq!(rels.len(), 1, "{rels:?}");
}

/// UserRecordAccess answers from the emulated org's sharing: Public Read Only by default;
/// with a private default a user reads what they own or what is shared with them, a
/// System Administrator everything. The query must name one user and the records (≤ 200).
#[tokio::test]
async fn user_record_access_answers_from_the_sharing_model() {
    let t = start().await;
    let h = t.emu.handle();
    let rep = h.add_user(
        "rep@corp.com",
        "rep@corp.com",
        "Rep",
        "Sales User",
        "Europe/Berlin",
    );
    let other = h.add_user(
        "oth@corp.com",
        "oth@corp.com",
        "Oth",
        "Sales User",
        "Europe/Berlin",
    );
    let own = h
        .insert("Contact", json!({"LastName": "Own", "OwnerId": rep}))
        .unwrap();
    let theirs = h
        .insert("Contact", json!({"LastName": "Theirs", "OwnerId": other}))
        .unwrap();
    let shared = h
        .insert("Contact", json!({"LastName": "Shared", "OwnerId": other}))
        .unwrap();
    let access = |user: String| {
        let q = format!(
            "SELECT RecordId, HasReadAccess, MaxAccessLevel FROM UserRecordAccess WHERE UserId = '{user}' AND RecordId IN ('{own}', '{theirs}', '{shared}')"
        );
        let t = &t;
        async move {
            let (s, v) = t.query(&q).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let mut out: Vec<(String, bool, String)> = v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["RecordId"].as_str().unwrap().to_string(),
                        r["HasReadAccess"].as_bool().unwrap(),
                        r["MaxAccessLevel"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            out.sort();
            out
        }
    };
    let mut expected = vec![
        (own.clone(), true, "All".to_string()),
        (theirs.clone(), true, "Read".to_string()),
        (shared.clone(), true, "Read".to_string()),
    ];
    expected.sort();
    assert_eq!(access(rep.clone()).await, expected, "Public Read Only");

    h.set_private("Contact");
    h.share(&shared, &rep);
    let mut expected = vec![
        (own.clone(), true, "All".to_string()),
        (theirs.clone(), false, "None".to_string()),
        (shared.clone(), true, "Read".to_string()),
    ];
    expected.sort();
    assert_eq!(access(rep.clone()).await, expected, "Private");
    assert!(
        access(h.integration_user_id())
            .await
            .iter()
            .all(|(_, read, level)| *read && level == "All"),
        "View All Data"
    );

    // Without one user and the records, or with more than 200: MALFORMED_QUERY.
    let (s, v) = t.query("SELECT RecordId FROM UserRecordAccess").await;
    assert_eq!(
        (s, v[0]["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("MALFORMED_QUERY"))
    );
    let many: Vec<String> = (0..201).map(|_| format!("'{own}'")).collect();
    let (s, v) = t
        .query(&format!(
            "SELECT RecordId FROM UserRecordAccess WHERE UserId = '{rep}' AND RecordId IN ({})",
            many.join(",")
        ))
        .await;
    assert_eq!(
        (s, v[0]["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("MALFORMED_QUERY"))
    );
    // Not writable.
    let (s, _, v) = t
        .send(
            t.http
                .post(t.url("sobjects/UserRecordAccess/"))
                .json(&json!({"RecordId": own})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

/// A raw Bulk API 2.0 call: status and body text.
async fn bulk_call(t: &T, req: reqwest::RequestBuilder) -> (StatusCode, String) {
    let r = req.bearer_auth(&t.token).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn bulk_job(t: &T, body: Value) -> (StatusCode, Value) {
    let (s, text) = bulk_call(t, t.http.post(t.url("jobs/ingest")).json(&body)).await;
    (s, serde_json::from_str(&text).unwrap())
}

async fn bulk_state(t: &T, id: &str) -> Value {
    let (s, text) = bulk_call(t, t.http.get(t.url(&format!("jobs/ingest/{id}")))).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn bulk_upload(t: &T, id: &str, csv: &str) -> StatusCode {
    let req = t
        .http
        .put(t.url(&format!("jobs/ingest/{id}/batches")))
        .header("Content-Type", "text/csv")
        .body(csv.to_string());
    bulk_call(t, req).await.0
}

async fn bulk_close(t: &T, id: &str, state: &str) -> (StatusCode, Value) {
    let req = t
        .http
        .patch(t.url(&format!("jobs/ingest/{id}")))
        .json(&json!({"state": state}));
    let (s, text) = bulk_call(t, req).await;
    (s, serde_json::from_str(&text).unwrap())
}

async fn bulk_results(t: &T, id: &str, kind: &str) -> (StatusCode, String) {
    bulk_call(t, t.http.get(t.url(&format!("jobs/ingest/{id}/{kind}/")))).await
}

/// Bulk API 2.0 Developer Guide, "Create a Job", "Upload Job Data", "Upload Complete", "Get
/// Job Info", "Get Job Successful/Failed Record Results": a job goes Open → UploadComplete →
/// InProgress (one poll at least) → JobComplete, each row validated as the REST API would,
/// and its results carry sf__Id/sf__Created or sf__Id/sf__Error before the row's own columns.
#[tokio::test]
async fn bulk_ingest_job_lifecycle_follows_the_guide() {
    let t = start().await;
    let (s, job) = bulk_job(
        &t,
        json!({"object": "Contact", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750"), "{id}");
    assert_eq!(job["state"], "Open");
    assert_eq!(job["operation"], "insert");
    assert_eq!(job["columnDelimiter"], "COMMA");
    assert_eq!(
        job["contentUrl"],
        format!("services/data/v62.0/jobs/ingest/{id}/batches")
    );
    // Results are not there before the job has run.
    let (s, _) = bulk_results(&t, &id, "successfulResults").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let csv = "LastName,Title,Tether_Sync_Key__c\nKung,\"CFO, \"\"acting\"\"\",k1\n,Nobody,k2\nLi,#N/A,k3\n";
    assert_eq!(bulk_upload(&t, &id, csv).await, StatusCode::CREATED);
    // One upload per job.
    assert_eq!(bulk_upload(&t, &id, csv).await, StatusCode::BAD_REQUEST);
    let (s, closed) = bulk_close(&t, &id, "UploadComplete").await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    assert_eq!(closed["state"], "UploadComplete");
    assert!(t.emu.handle().records("Contact").is_empty(), "not run yet");
    assert_eq!(bulk_state(&t, &id).await["state"], "InProgress");
    let done = bulk_state(&t, &id).await;
    assert_eq!(done["state"], "JobComplete", "{done}");
    assert_eq!(done["numberRecordsProcessed"], 3);
    assert_eq!(done["numberRecordsFailed"], 1);
    assert!(done.get("contentUrl").is_none());

    let (s, ok) = bulk_results(&t, &id, "successfulResults").await;
    assert_eq!(s, StatusCode::OK);
    let lines: Vec<&str> = ok.lines().collect();
    assert_eq!(
        lines[0],
        r#""sf__Id","sf__Created","LastName","Title","Tether_Sync_Key__c""#
    );
    assert_eq!(lines.len(), 3, "{ok}");
    let kung = lines.iter().find(|l| l.contains("Kung")).unwrap();
    assert!(
        kung.contains(r#""true","Kung","CFO, ""acting""","k1""#),
        "{kung}"
    );
    let kung_id = kung.split('"').nth(1).unwrap();
    assert_eq!(
        t.emu.handle().get(kung_id).unwrap()["Title"],
        "CFO, \"acting\""
    );
    let (_, failed) = bulk_results(&t, &id, "failedResults").await;
    let lines: Vec<&str> = failed.lines().collect();
    assert_eq!(
        lines[0],
        r#""sf__Id","sf__Error","LastName","Title","Tether_Sync_Key__c""#
    );
    assert!(
        lines[1]
            .starts_with(r#""","REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]"#),
        "{failed}"
    );
    let (_, unprocessed) = bulk_results(&t, &id, "unprocessedrecords").await;
    assert_eq!(
        unprocessed.trim(),
        r#""LastName","Title","Tether_Sync_Key__c""#
    );

    // An update job: empty values are left as they are, #N/A clears.
    let (_, job) = bulk_job(&t, json!({"object": "Contact", "operation": "update"})).await;
    let upd = job["id"].as_str().unwrap().to_string();
    let csv = format!("Id,Title,Department\n{kung_id},,Finance\n{kung_id}X,CEO,\n");
    assert_eq!(bulk_upload(&t, &upd, &csv).await, StatusCode::CREATED);
    bulk_close(&t, &upd, "UploadComplete").await;
    bulk_state(&t, &upd).await;
    assert_eq!(bulk_state(&t, &upd).await["state"], "JobComplete");
    let rec = t.emu.handle().get(kung_id).unwrap();
    assert_eq!(rec["Title"], "CFO, \"acting\"");
    assert_eq!(rec["Department"], "Finance");
    let (_, failed) = bulk_results(&t, &upd, "failedResults").await;
    assert!(failed.contains("MALFORMED_ID"), "{failed}");

    // Bad jobs are refused with the documented error shape.
    let (s, e) = bulk_job(&t, json!({"object": "Nope__c", "operation": "insert"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        e[0]["errorCode"].is_string() && e[0]["message"].is_string(),
        "{e}"
    );
    let (s, _) = bulk_job(&t, json!({"object": "Contact", "operation": "upsert"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = bulk_job(
        &t,
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = bulk_close(&t, &id, "UploadComplete").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a finished job stays finished");
    let (s, _) = bulk_call(&t, t.http.get(t.url("jobs/ingest/750000000000000AAA"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// "Get Job Unprocessed Record Results": an aborted job processes nothing; a job that fails
/// part way (here the daily batch allocation: "the remaining data isn't processed. The ingest
/// job is marked as having failed") keeps what it did and lists the rest as unprocessed;
/// /limits counts a batch per 10,000 records in DailyBulkApiBatches.
#[tokio::test]
async fn bulk_aborted_and_failed_jobs_leave_rows_unprocessed() {
    let t = start().await;
    let h = t.emu.handle();
    let (_, job) = bulk_job(&t, json!({"object": "Contact", "operation": "insert"})).await;
    let id = job["id"].as_str().unwrap().to_string();
    bulk_upload(&t, &id, "LastName\nA\nB\n").await;
    bulk_close(&t, &id, "UploadComplete").await;
    let (s, aborted) = bulk_close(&t, &id, "Aborted").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(aborted["state"], "Aborted");
    assert_eq!(bulk_state(&t, &id).await["state"], "Aborted");
    let (_, un) = bulk_results(&t, &id, "unprocessedrecords").await;
    assert_eq!(un.lines().count(), 3, "{un}");
    assert!(h.records("Contact").is_empty());

    h.bulk_fail_after(1);
    let (_, job) = bulk_job(&t, json!({"object": "Contact", "operation": "insert"})).await;
    let id = job["id"].as_str().unwrap().to_string();
    bulk_upload(&t, &id, "LastName\nA\nB\nC\n").await;
    bulk_close(&t, &id, "UploadComplete").await;
    bulk_state(&t, &id).await;
    let failed = bulk_state(&t, &id).await;
    assert_eq!(failed["state"], "Failed");
    assert!(failed["errorMessage"].is_string(), "{failed}");
    assert_eq!(failed["numberRecordsProcessed"], 1);
    let (_, ok) = bulk_results(&t, &id, "successfulResults").await;
    assert_eq!(ok.lines().count(), 2, "{ok}");
    let (_, un) = bulk_results(&t, &id, "unprocessedrecords").await;
    assert_eq!(un.lines().count(), 3, "{un}");
    assert_eq!(h.records("Contact").len(), 1);

    let (_, limits, _) = {
        let (s, hd, v) = t.get("limits").await;
        (s, v, hd)
    };
    assert_eq!(limits["DailyBulkApiBatches"]["Max"], 15000);
    assert_eq!(limits["DailyBulkApiBatches"]["Remaining"], 14999);
    h.set_bulk_batches_used(15000);
    let (_, job) = bulk_job(&t, json!({"object": "Contact", "operation": "insert"})).await;
    let id = job["id"].as_str().unwrap().to_string();
    bulk_upload(&t, &id, "LastName\nZ\n").await;
    bulk_close(&t, &id, "UploadComplete").await;
    bulk_state(&t, &id).await;
    let over = bulk_state(&t, &id).await;
    assert_eq!(over["state"], "Failed");
    assert!(
        over["errorMessage"]
            .as_str()
            .unwrap()
            .contains("ExceededQuota")
    );
    assert_eq!(h.records("Contact").len(), 1);

    // A header naming no field fails the job; a CRLF file in an LF job too.
    for (csv, want) in [
        ("LastName,Nope__c\nA,1\n", "Field name not found : Nope__c"),
        ("LastName\r\nA\r\n", "LineEnding is invalid"),
    ] {
        h.set_bulk_batches_used(0);
        let (_, job) = bulk_job(&t, json!({"object": "Contact", "operation": "insert"})).await;
        let id = job["id"].as_str().unwrap().to_string();
        bulk_upload(&t, &id, csv).await;
        bulk_close(&t, &id, "UploadComplete").await;
        bulk_state(&t, &id).await;
        let v = bulk_state(&t, &id).await;
        assert_eq!(v["state"], "Failed", "{v}");
        assert!(v["errorMessage"].as_str().unwrap().contains(want), "{v}");
    }
}

/// A closed job runs whether or not anyone polls it ("Upload Complete": "Salesforce queues
/// the job and uploaded data for processing"): a client that dies after closing it finds
/// its records written.
#[tokio::test]
async fn bulk_a_closed_job_nobody_polls_still_runs() {
    let t = start().await;
    let (_, job) = bulk_job(&t, json!({"object": "Contact", "operation": "insert"})).await;
    let id = job["id"].as_str().unwrap().to_string();
    bulk_upload(&t, &id, "LastName\nA\nB\n").await;
    bulk_close(&t, &id, "UploadComplete").await;
    t.clock.advance(std::time::Duration::from_secs(30));
    t.get("limits").await;
    assert!(t.emu.handle().records("Contact").is_empty(), "still queued");
    t.clock.advance(std::time::Duration::from_secs(31));
    t.get("limits").await;
    assert_eq!(t.emu.handle().records("Contact").len(), 2);
    assert_eq!(bulk_state(&t, &id).await["state"], "JobComplete");
}
