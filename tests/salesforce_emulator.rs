//! The emulator's responses, checked field by field against the shapes the Salesforce REST API
//! documents, and its SOQL against a table of valid and invalid queries.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use tether::clock::{Clock, ManualClock};
use tether::salesforce::ids;
use tether::sandbox::salesforce::{
    Emulator, EmulatorOptions, RunningEmulator, deterministic_epoch,
};

// TEST-ONLY key pair (tests/fixtures/README.md).
const KEY: &str = include_str!("fixtures/sf_test_jwt_key.pem");
const CERT: &str = include_str!("fixtures/sf_test_jwt_cert.pem");
const CLIENT_ID: &str = "3MVG9tether.sandbox.client";
const USER: &str = "integration@tether.test";

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
    let a = assertion(&t.clock, t.emu.url(), 120, USER);
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
    let a = assertion(&t.clock, t.emu.url(), 120, USER);
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
    assert_eq!(
        keys(&v),
        set(&[
            "access_token",
            "instance_url",
            "id",
            "token_type",
            "issued_at",
            "signature"
        ])
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["instance_url"], t.emu.url());
    assert_eq!(
        v["issued_at"],
        deterministic_epoch().timestamp_millis().to_string()
    );
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{}/id/00D", t.emu.url())), "{id}");
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(v["signature"].as_str().unwrap())
        .unwrap();
    assert_eq!(sig.len(), 32, "HMAC-SHA256");

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
            jwt(assertion(&t.clock, t.emu.url(), -10, USER)),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            jwt(assertion(&t.clock, t.emu.url(), 600, USER)),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt("not.a.jwt".into()),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt(assertion(&t.clock, t.emu.url(), 60, "ghost@tether.test")),
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
    assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
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

    // At most 10 open cursors per user: the 11th drops the oldest.
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
    let (s, _, v) = t
        .send(t.http.get(format!("{}{}", t.emu.url(), nexts[0])))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
    );
    let (s, _, _) = t
        .send(t.http.get(format!("{}{}", t.emu.url(), nexts[10])))
        .await;
    assert_eq!(s, StatusCode::OK);

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
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(v[0]["fields"], json!(["SystemModstamp"]));
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

    let (s, _, v) = t.get("limits").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(keys(&v["DailyApiRequests"]), set(&["Max", "Remaining"]));
    assert_eq!(
        v["DailyApiRequests"],
        json!({"Max": 15000, "Remaining": 14998})
    );
    assert_eq!(t.emu.handle().api_usage(), (2, 15000));

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
