//! The Salesforce client driven against the in-process emulator.

use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tether::clock::{Clock, ManualClock};
use tether::salesforce::soql::{Lit, Op, SoqlBuilder};
use tether::salesforce::{
    Auth, CallKind, ClientOptions, DeleteDetection, FieldUse, RecordOutcome, SalesforceClient,
    SfError,
};
use tether::secret::Secret;
use tether_emulators::salesforce::{
    Emulator, EmulatorOptions, KindFault, RecordError, RunningEmulator, deterministic_epoch,
};
use url::Url;

// TEST-ONLY key pairs (tests/fixtures/README.md).
const KEY: &str = include_str!("../fixtures/sf_test_jwt_key.pem");
const CERT: &str = include_str!("../fixtures/sf_test_jwt_cert.pem");
const OTHER_KEY: &str = include_str!("../fixtures/sf_test_other_key.pem");
const CLIENT_ID: &str = "3MVG9tether.sandbox.client";
const USER: &str = "integration@tether.test";

struct Env {
    emu: RunningEmulator,
    clock: ManualClock,
}

async fn env_with(f: impl FnOnce(&mut EmulatorOptions)) -> Env {
    let clock = ManualClock::new(deterministic_epoch());
    let mut o = EmulatorOptions::deterministic();
    o.clock = Arc::new(clock.clone());
    o.app.jwt_certificate_pem = Some(CERT.into());
    f(&mut o);
    let emu = Emulator::start(o).await.expect("emulator starts");
    Env { emu, clock }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

fn jwt(key: &str) -> Auth {
    Auth::JwtBearer {
        client_id: CLIENT_ID.into(),
        username: USER.into(),
        private_key_pem: Secret::new(key),
    }
}

impl Env {
    fn options(&self, auth: Auth) -> ClientOptions {
        let url = Url::parse(self.emu.url()).unwrap();
        let mut o = ClientOptions::new(url.clone(), auth);
        o.login_url = url;
        o
    }
    fn client_with(&self, o: ClientOptions) -> SalesforceClient {
        SalesforceClient::with_clock(o, Arc::new(self.clock.clone())).unwrap()
    }
    fn client(&self) -> SalesforceClient {
        self.client_with(self.options(jwt(KEY)))
    }
    fn seed_contacts(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.emu
                    .handle()
                    .insert(
                        "Contact",
                        json!({"LastName": format!("Rep{i:04}"), "Email": format!("c{i}@example.com")}),
                    )
                    .unwrap()
            })
            .collect()
    }
    /// The client's count of HTTP calls equals what the emulator served, kind by kind.
    fn assert_counts_match(&self, c: &SalesforceClient) {
        let by_kind: std::collections::BTreeMap<String, u64> = c
            .call_counts()
            .into_iter()
            .map(|(k, n)| (k.name().to_string(), n))
            .collect();
        assert_eq!(by_kind, self.emu.handle().served());
        assert_eq!(
            c.total_calls(),
            self.emu.handle().served_total(),
            "client {:?} vs emulator {:?}",
            c.call_counts(),
            self.emu.handle().served()
        );
    }
}

fn contact(last: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("LastName".into(), json!(last));
    m
}

fn auth_error(e: SfError) -> (String, String, String) {
    let text = e.to_string();
    match e {
        SfError::Auth {
            flow,
            error,
            description,
        } => (flow.to_string(), error, format!("{description}|{text}")),
        other => panic!("expected an auth error, got {other}"),
    }
}

#[tokio::test]
async fn jwt_bearer_flow_and_its_failures() {
    let env = env().await;
    let c = env.client();
    assert_eq!(c.limits().await.unwrap()["DailyApiRequests"].max, 15000);
    assert_eq!(c.call_counts()[&CallKind::Auth], 1);

    let (flow, error, text) = auth_error(
        env.client_with(env.options(jwt(OTHER_KEY)))
            .limits()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (flow.as_str(), error.as_str()),
        ("jwt_bearer", "invalid_grant")
    );
    assert!(
        text.contains("invalid assertion") && text.contains("jwt_bearer flow"),
        "{text}"
    );

    let unknown = Auth::JwtBearer {
        client_id: CLIENT_ID.into(),
        username: "nobody@tether.test".into(),
        private_key_pem: Secret::new(KEY),
    };
    let (_, error, text) = auth_error(
        env.client_with(env.options(unknown))
            .limits()
            .await
            .unwrap_err(),
    );
    assert_eq!(error, "invalid_grant");
    assert!(text.contains("user hasn't approved this consumer"));

    let wrong_app = Auth::JwtBearer {
        client_id: "someone-else".into(),
        username: USER.into(),
        private_key_pem: Secret::new(KEY),
    };
    let (_, error, _) = auth_error(
        env.client_with(env.options(wrong_app))
            .limits()
            .await
            .unwrap_err(),
    );
    assert_eq!(error, "invalid_client_id");

    let bad_pem = Auth::JwtBearer {
        client_id: CLIENT_ID.into(),
        username: USER.into(),
        private_key_pem: Secret::new(
            "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
        ),
    };
    let err = env
        .client_with(env.options(bad_pem))
        .limits()
        .await
        .unwrap_err();
    assert!(matches!(err, SfError::Config(_)));
    assert!(
        !err.to_string().contains("not a key"),
        "key material must not leak"
    );
}

#[tokio::test]
async fn client_credentials_refresh_token_and_password_flows() {
    let env = env_with(|o| o.username_password_enabled = true).await;
    let cc = Auth::ClientCredentials {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new("sandbox-client-secret"),
    };
    env.client_with(env.options(cc)).limits().await.unwrap();
    let bad_cc = Auth::ClientCredentials {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new("wrong"),
    };
    let (flow, error, text) = auth_error(
        env.client_with(env.options(bad_cc))
            .limits()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (flow.as_str(), error.as_str()),
        ("client_credentials", "invalid_client")
    );
    assert!(text.contains("invalid client credentials"));
    assert!(!text.contains("wrong"), "secret must not appear: {text}");

    let refresh = env.emu.handle().issue_refresh_token(USER).unwrap();
    let rt = Auth::RefreshToken {
        client_id: CLIENT_ID.into(),
        client_secret: None,
        refresh_token: Secret::new(refresh),
    };
    env.client_with(env.options(rt)).limits().await.unwrap();
    let bad_rt = Auth::RefreshToken {
        client_id: CLIENT_ID.into(),
        client_secret: None,
        refresh_token: Secret::new("5Aep-revoked"),
    };
    let (flow, error, text) = auth_error(
        env.client_with(env.options(bad_rt))
            .limits()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (flow.as_str(), error.as_str()),
        ("refresh_token", "invalid_grant")
    );
    assert!(text.contains("expired access/refresh token"));

    let pw = |p: &str| Auth::UsernamePassword {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new("sandbox-client-secret"),
        username: USER.into(),
        password: Secret::new(p),
    };
    env.client_with(env.options(pw("sandbox-password")))
        .limits()
        .await
        .unwrap();
    let (flow, error, text) = auth_error(
        env.client_with(env.options(pw("guess")))
            .limits()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (flow.as_str(), error.as_str()),
        ("username_password", "invalid_grant")
    );
    assert!(text.contains("authentication failure"));
}

#[tokio::test]
async fn username_password_is_blocked_by_default_and_static_token_cannot_renew() {
    let env = env().await;
    let pw = Auth::UsernamePassword {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new("sandbox-client-secret"),
        username: USER.into(),
        password: Secret::new("sandbox-password"),
    };
    let (_, error, _) = auth_error(env.client_with(env.options(pw)).limits().await.unwrap_err());
    assert_eq!(error, "invalid_grant");

    // A static token minted elsewhere works until it expires; then the run stops with advice.
    let minted = env.client();
    minted.limits().await.unwrap();
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
        ),
        ("assertion", {
            let claims = json!({"iss": CLIENT_ID, "sub": USER, "aud": "https://login.salesforce.com", "exp": env.clock.now().timestamp() + 60});
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_rsa_pem(KEY.as_bytes()).unwrap(),
            )
            .unwrap()
        }),
    ];
    let v: Value = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", env.emu.url()))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap().to_string();
    let c = env.client_with(env.options(Auth::AccessToken {
        token: Secret::new(token),
    }));
    c.limits().await.unwrap();
    env.emu.handle().expire_sessions();
    let (flow, _, text) = auth_error(c.limits().await.unwrap_err());
    assert_eq!(flow, "access_token");
    assert!(text.contains("cannot be renewed"));
}

#[tokio::test]
async fn query_streams_three_pages() {
    let env = env().await;
    env.seed_contacts(450);
    let mut o = env.options(jwt(KEY));
    o.query_batch_size = Some(200);
    let c = env.client_with(o);
    let mut pages = c.query("SELECT Id, LastName FROM Contact ORDER BY LastName");
    let mut sizes = Vec::new();
    let mut names = Vec::new();
    while let Some(p) = pages.next_page().await.unwrap() {
        sizes.push(p.len());
        names.extend(
            p.iter()
                .map(|r| r["LastName"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(sizes, vec![200, 200, 50]);
    assert_eq!(pages.total_size(), Some(450));
    assert_eq!(names.first().map(String::as_str), Some("Rep0000"));
    assert_eq!(names.last().map(String::as_str), Some("Rep0449"));
    let counts = c.call_counts();
    assert_eq!(counts[&CallKind::Query], 1);
    assert_eq!(counts[&CallKind::QueryMore], 2);
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn create_450_in_three_calls_with_two_validation_failures() {
    let env = env().await;
    env.emu.handle().validation_rule(
        "Contact",
        "LastName",
        json!("Reject"),
        "Last name may not be Reject",
    );
    let records: Vec<Map<String, Value>> = (0..450)
        .map(|i| contact(if i == 100 || i == 300 { "Reject" } else { "Ok" }))
        .collect();
    let c = env.client();
    let report = c.create("Contact", &records).await;
    assert!(report.stopped.is_none());
    assert_eq!(c.call_counts()[&CallKind::Collection], 3);
    assert_eq!(report.outcomes.len(), 450);
    for (i, o) in report.outcomes.iter().enumerate() {
        if i == 100 || i == 300 {
            let RecordOutcome::Failed { errors } = o else {
                panic!("record {i}: {o:?}")
            };
            assert_eq!(errors[0].status_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
            assert_eq!(errors[0].message, "Last name may not be Reject");
        } else {
            assert!(o.is_success(), "record {i}: {o:?}");
        }
    }
    assert_eq!(env.emu.handle().records("Contact").len(), 448);
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn update_and_delete_report_per_record() {
    let env = env().await;
    let ids = env.seed_contacts(3);
    let c = env.client();
    let mut upd: Vec<Map<String, Value>> = ids
        .iter()
        .map(|id| {
            let mut m = contact("Renamed");
            m.insert("Id".into(), json!(id));
            m
        })
        .collect();
    upd[2].insert("CreatedDate".into(), json!("2020-01-01T00:00:00Z"));
    let report = c.update("Contact", &upd).await;
    assert!(report.outcomes[0].is_success() && report.outcomes[1].is_success());
    assert_eq!(
        report.outcomes[2].status_codes(),
        vec!["INVALID_FIELD_FOR_INSERT_UPDATE"]
    );
    assert_eq!(
        env.emu.handle().get(&ids[0]).unwrap()["LastName"],
        "Renamed"
    );
    assert_eq!(
        env.emu.handle().get(&ids[2]).unwrap()["LastName"],
        "Rep0002"
    );

    let report = c.delete(&ids[..2]).await;
    assert!(report.outcomes.iter().all(RecordOutcome::is_success));
    assert!(env.emu.handle().is_deleted(&ids[0]));
    let again = c.delete(&[ids[0].clone(), "003bad".to_string()]).await;
    assert_eq!(again.outcomes[0].status_codes(), vec!["ENTITY_IS_DELETED"]);
    assert_eq!(again.outcomes[1].status_codes(), vec!["MALFORMED_ID"]);
    let upd_deleted = c.update("Contact", &upd[..1]).await;
    assert_eq!(
        upd_deleted.outcomes[0].status_codes(),
        vec!["ENTITY_IS_DELETED"]
    );
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn get_deleted_and_fallback_to_id_comparison() {
    let env = env().await;
    let ids = env.seed_contacts(4);
    let since = env.clock.now();
    env.clock.advance(Duration::from_secs(120));
    env.emu.handle().delete(&ids[1]).unwrap();
    env.clock.advance(Duration::from_secs(120));
    let c = env.client();
    let raw = c
        .get_deleted("Contact", since, env.clock.now())
        .await
        .unwrap();
    assert_eq!(raw.records.len(), 1);
    assert_eq!(raw.records[0].0, ids[1]);
    let d = c.deleted_since("Contact", since, &ids).await.unwrap();
    assert_eq!(
        (d.ids.clone(), d.via),
        (vec![ids[1].clone()], DeleteDetection::GetDeleted)
    );

    // Purged recycle bin: getDeleted can no longer cover `since`, the id lists are compared.
    env.emu.handle().delete(&ids[2]).unwrap();
    env.emu.handle().purge_deleted();
    env.clock.advance(Duration::from_secs(60));
    let d = c.deleted_since("Contact", since, &ids).await.unwrap();
    assert_eq!(d.via, DeleteDetection::IdComparison);
    assert_eq!(d.ids, vec![ids[1].clone(), ids[2].clone()]);

    // Beyond the 15-day window.
    env.clock.advance(Duration::from_secs(16 * 86400));
    let d = c.deleted_since("Contact", since, &ids).await.unwrap();
    assert_eq!(d.via, DeleteDetection::IdComparison);

    let updated = c
        .get_updated(
            "Contact",
            env.clock.now() - chrono::Duration::days(1),
            env.clock.now(),
        )
        .await
        .unwrap();
    assert!(updated.ids.is_empty());
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn changes_since_watermark_reads_the_org_once() {
    let env = env().await;
    let ids = env.seed_contacts(5);
    // A minute later: getUpdated ignores seconds, so the seeding minute must be over.
    env.clock.advance(Duration::from_secs(60));
    let wm = env.clock.now();
    env.clock.advance(Duration::from_secs(5));
    env.emu
        .handle()
        .update("Contact", &ids[3], json!({"Title": "VP"}))
        .unwrap();
    env.emu.handle().delete(&ids[4]).unwrap();
    let c = env.client();
    let mut pages = c
        .changes_since("Contact", &["LastName", "Title"], wm, true)
        .unwrap();
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["Title"], "VP");
    assert_eq!(page[1]["IsDeleted"], true);
    assert!(pages.next_page().await.unwrap().is_none());
    // getUpdated() ignores seconds: within one minute start and end are the same minute,
    // which the service rejects (INVALID_REPLICATION_DATE) rather than answering empty.
    let early = c
        .get_updated("Contact", wm, env.clock.now())
        .await
        .unwrap_err();
    assert_eq!(early.error_code(), Some("INVALID_REPLICATION_DATE"));
    env.clock.advance(Duration::from_secs(120));
    let updated = c.get_updated("Contact", wm, env.clock.now()).await.unwrap();
    assert_eq!(updated.ids, vec![ids[3].clone()]);
}

#[tokio::test]
async fn builder_values_cannot_inject() {
    let env = env().await;
    env.emu
        .handle()
        .insert("Contact", json!({"LastName": "O'Brien\\"}))
        .unwrap();
    env.emu
        .handle()
        .insert("Contact", json!({"LastName": "Other"}))
        .unwrap();
    let c = env.client();
    for (value, expected) in [
        ("O'Brien\\", 1),
        ("' OR Id != '", 0),
        ("x\nOR LastName != null", 0),
    ] {
        let q = SoqlBuilder::select("Contact", &["Id", "LastName"])
            .unwrap()
            .filter("LastName", Op::Eq, Lit::Str(value.into()))
            .unwrap()
            .build();
        assert_eq!(c.query_collect(q).await.unwrap().len(), expected, "{value}");
    }
}

#[tokio::test]
async fn id_lists_are_chunked_into_several_queries() {
    let env = env().await;
    let ids = env.seed_contacts(120);
    let mut o = env.options(jwt(KEY));
    o.max_query_chars = 1500;
    let c = env.client_with(o);
    let got = c.query_by_ids("Contact", &["Id"], &ids).await.unwrap();
    assert_eq!(got.len(), 120);
    assert!(c.call_counts()[&CallKind::Query] >= 3);
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn describe_checks_name_the_field() {
    let env = env().await;
    let c = env.client();
    c.check_fields(
        "Contact",
        &[
            ("Email", FieldUse::Create),
            ("Title", FieldUse::Update),
            ("Id", FieldUse::Read),
        ],
    )
    .await
    .unwrap();
    let err = c
        .check_fields(
            "Contact",
            &[
                ("Email", FieldUse::Create),
                ("CreatedDate", FieldUse::Update),
                ("Shoe_Size__c", FieldUse::Read),
            ],
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Contact.CreatedDate is not updateable"),
        "{text}"
    );
    assert!(
        text.contains("Contact.Shoe_Size__c does not exist"),
        "{text}"
    );
    assert!(!text.contains("Email"));
    let e = c.describe("Event").await.unwrap();
    assert_eq!(e.field("Location").unwrap().length, 255);
    c.describe("Event").await.unwrap();
    assert_eq!(
        c.call_counts()[&CallKind::Describe],
        2,
        "describe results are cached"
    );
    let err = c.describe("NoSuchThing").await.unwrap_err();
    assert_eq!(err.error_code(), Some("NOT_FOUND"));
}

#[tokio::test]
async fn expired_token_costs_one_reauth() {
    let env = env().await;
    env.seed_contacts(3);
    let c = env.client();
    assert_eq!(
        c.query_collect("SELECT Id FROM Contact")
            .await
            .unwrap()
            .len(),
        3
    );
    env.emu.handle().expire_sessions();
    assert_eq!(
        c.query_collect("SELECT Id FROM Contact")
            .await
            .unwrap()
            .len(),
        3
    );
    let counts = c.call_counts();
    assert_eq!(counts[&CallKind::Auth], 2);
    assert_eq!(
        counts[&CallKind::Query],
        3,
        "the rejected call and its one retry"
    );
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn request_limit_exceeded_stops_naming_the_limit() {
    let env = env().await;
    env.emu.handle().set_daily_allowance(1000);
    env.emu.handle().set_api_used(1000);
    let c = env.client();
    let err = c.query_collect("SELECT Id FROM Contact").await.unwrap_err();
    assert!(matches!(err, SfError::LimitExceeded { .. }));
    let text = err.to_string();
    assert!(
        text.contains("REQUEST_LIMIT_EXCEEDED") && text.contains("DailyApiRequests"),
        "{text}"
    );
    assert_eq!(c.call_counts()[&CallKind::Query], 1, "not retried");

    let report = c.create("Contact", &[contact("A")]).await;
    assert!(matches!(
        report.stopped,
        Some(SfError::LimitExceeded { .. })
    ));
    env.emu.handle().set_api_used(0);
    // The concurrent-request limit refuses a request without running it: sent again after
    // a back-off, and reported only when it persists through every attempt.
    env.emu.handle().concurrent_limit_next(1);
    c.limits().await.unwrap();
    env.emu.handle().concurrent_limit_next(5);
    let err = c.limits().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("concurrent long-running API requests"),
        "{err}"
    );
    assert_eq!(report.outcomes, vec![RecordOutcome::NotAttempted]);
    env.assert_counts_match(&c);
}

/// The emulator sends `Sforce-Limit-Info` in the documented form, with the connected app's
/// quota after a `; ` (REST API Developer Guide, "Limit Info Header"): the budget stop reads
/// the org's usage from it.
#[tokio::test]
async fn api_budget_stop_fires_on_documented_header() {
    let env = env().await;
    let h = env.emu.handle();
    h.set_daily_allowance(100);
    h.set_app_quota("tether", 250);
    h.set_api_used(48);
    let mut o = env.options(jwt(KEY));
    o.api_budget = Some(0.5);
    let c = env.client_with(o);
    c.limits().await.unwrap(); // used 49
    let usage = c
        .api_usage()
        .expect("usage read from the documented header");
    assert_eq!((usage.used, usage.max), (49, 100));
    assert_eq!(
        usage.per_app.map(|a| (a.app, a.used, a.max)),
        Some(("tether".to_string(), 49, 250))
    );
    c.limits().await.unwrap(); // used 50
    let err = c.limits().await.unwrap_err();
    assert!(
        matches!(
            err,
            SfError::BudgetExhausted {
                used: 50,
                max: 100,
                allowed: 50
            }
        ),
        "{err}"
    );
    assert_eq!(h.api_usage().0, 50, "the stop sends nothing");
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_on_the_clock() {
    let env = env().await;
    env.seed_contacts(2);
    let c = env.client();
    c.limits().await.unwrap();
    env.emu.handle().fail_next(&[500, 503, 502]);
    assert_eq!(
        c.query_collect("SELECT Id FROM Contact")
            .await
            .unwrap()
            .len(),
        2
    );
    let sleeps = env.clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    // Exponential with jitter in [d/2, d]: 0.5 s, 1 s, 2 s bases.
    for (s, base) in sleeps.iter().zip([500u64, 1000, 2000]) {
        assert!(
            s.as_millis() as u64 >= base / 2 && s.as_millis() as u64 <= base,
            "{sleeps:?}"
        );
    }
    assert_eq!(c.call_counts()[&CallKind::Query], 4);

    // Bounded: a longer burst gives up.
    env.emu.handle().fail_next(&[503; 5]);
    let err = c.query_collect("SELECT Id FROM Contact").await.unwrap_err();
    assert!(
        matches!(err, SfError::Transport { attempts: 5, .. }),
        "{err}"
    );
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn creates_are_not_retried_after_an_ambiguous_failure() {
    let env = env().await;
    let c = env.client();
    c.limits().await.unwrap();
    env.emu.handle().fail_next(&[500]);
    let report = c.create("Contact", &[contact("A"), contact("B")]).await;
    assert!(report.stopped.is_none());
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| matches!(o, RecordOutcome::Ambiguous { .. })),
        "{:?}",
        report.outcomes
    );
    assert_eq!(c.call_counts()[&CallKind::Collection], 1);

    env.emu.handle().drop_next(1);
    let report = c.create("Contact", &[contact("C")]).await;
    assert!(
        matches!(report.outcomes[0], RecordOutcome::Ambiguous { .. }),
        "{:?}",
        report.outcomes
    );
    // Updates are idempotent and may be retried after a dropped connection.
    let id = env
        .emu
        .handle()
        .insert("Contact", json!({"LastName": "D"}))
        .unwrap();
    env.emu.handle().drop_next(1);
    let mut m = contact("D2");
    m.insert("Id".into(), json!(id));
    assert!(c.update("Contact", &[m]).await.outcomes[0].is_success());
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn locked_rows_are_retried() {
    let env = env().await;
    env.emu
        .handle()
        .lock_rows("Contact", "LastName", json!("Busy"), 2);
    let c = env.client();
    let report = c
        .create("Contact", &[contact("Free"), contact("Busy")])
        .await;
    assert!(
        report.outcomes.iter().all(RecordOutcome::is_success),
        "{:?}",
        report.outcomes
    );
    assert_eq!(c.call_counts()[&CallKind::Collection], 3);
    assert_eq!(env.emu.handle().records("Contact").len(), 2);
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn malformed_json_is_an_error_not_a_panic() {
    let env = env().await;
    let c = env.client();
    c.limits().await.unwrap();
    // A create is not sent twice (reads are retried: junk_json_on_a_read_is_retried).
    env.emu.handle().malformed_next(1);
    let report = c.create("Contact", &[contact("A")]).await;
    assert!(matches!(report.stopped, Some(SfError::Malformed { .. })));
    assert_eq!(c.call_counts()[&CallKind::Collection], 1);
    // A dropped connection on a read is retried.
    env.emu.handle().drop_next(1);
    c.query_collect("SELECT Id FROM Contact").await.unwrap();
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let env = env().await;
    let mut o = env.options(jwt(KEY));
    o.max_response_bytes = 2048;
    let c = env.client_with(o);
    let err = c.describe("Contact").await.unwrap_err();
    assert!(
        matches!(err, SfError::TooLarge { limit: 2048, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn timeouts_are_retried_then_given_up() {
    let env = env().await;
    let mut o = env.options(jwt(KEY));
    o.timeout = Duration::from_millis(150);
    o.retry.max_attempts = 2;
    let c = env.client_with(o);
    c.limits().await.unwrap();
    env.emu
        .handle()
        .set_latency(Some(Duration::from_millis(400)));
    let err = c.limits().await.unwrap_err();
    assert!(
        matches!(err, SfError::Transport { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    env.emu.handle().set_latency(None);
    c.limits().await.unwrap();
}

#[tokio::test]
async fn events_relations_and_converted_leads_follow_the_platform_rules() {
    let env = env().await;
    let c = env.client();
    let ev = |v: Value| v.as_object().unwrap().clone();
    let report = c
        .create(
            "Event",
            &[
                ev(json!({"Subject": "Demo", "StartDateTime": "2026-01-20T10:00:00Z", "DurationInMinutes": 90})),
                ev(json!({"Subject": "No end", "StartDateTime": "2026-01-20T10:00:00Z"})),
                ev(json!({"Subject": "All day", "IsAllDayEvent": true, "ActivityDate": "2026-01-21"})),
                ev(json!({"Subject": "Long", "Location": "x".repeat(256), "StartDateTime": "2026-01-20T10:00:00Z", "DurationInMinutes": 5})),
                ev(json!({"Subject": "Huge", "StartDateTime": "2026-01-20T10:00:00Z", "DurationInMinutes": i64::MAX})),
                ev(json!({"Subject": "Huge all day", "IsAllDayEvent": true, "ActivityDate": "2026-01-21", "DurationInMinutes": i64::MAX})),
            ],
        )
        .await;
    let RecordOutcome::Success { id } = &report.outcomes[0] else {
        panic!("{:?}", report.outcomes)
    };
    let stored = env.emu.handle().get(id).unwrap();
    assert_eq!(stored["EndDateTime"], "2026-01-20T11:30:00.000+0000");
    assert_eq!(stored["ActivityDate"], "2026-01-20");
    assert_eq!(
        report.outcomes[1].status_codes(),
        vec!["REQUIRED_FIELD_MISSING"]
    );
    assert!(report.outcomes[2].is_success());
    assert_eq!(report.outcomes[3].status_codes(), vec!["STRING_TOO_LONG"]);
    assert_eq!(
        report.outcomes[4].status_codes(),
        vec!["FIELD_INTEGRITY_EXCEPTION"]
    );
    assert_eq!(
        report.outcomes[5].status_codes(),
        vec!["FIELD_INTEGRITY_EXCEPTION"]
    );

    // Up to 50 contacts or one lead as related records (IsParent; invitees are not Whos).
    let contacts = env.seed_contacts(51);
    let rel = |who: &str| {
        ev(json!({"EventId": id, "RelationId": who, "IsParent": true, "IsInvitee": false}))
    };
    let rels: Vec<_> = contacts.iter().map(|c| rel(c)).collect();
    let report = c.create("EventRelation", &rels).await;
    assert_eq!(
        report.outcomes.iter().filter(|o| o.is_success()).count(),
        50
    );
    assert_eq!(
        report.outcomes[50].status_codes(),
        vec!["FIELD_INTEGRITY_EXCEPTION"]
    );
    let lead = env
        .emu
        .handle()
        .insert("Lead", json!({"LastName": "L", "Company": "Acme"}))
        .unwrap();
    let report = c.create("EventRelation", &[rel(&lead)]).await;
    assert_eq!(
        report.outcomes[0].status_codes(),
        vec!["FIELD_INTEGRITY_EXCEPTION"]
    );

    env.emu
        .handle()
        .set_raw(&lead, json!({"IsConverted": true}));
    let mut upd = ev(json!({"Id": lead, "Company": "New"}));
    upd.insert("Id".into(), json!(lead));
    let report = c.update("Lead", &[upd]).await;
    assert_eq!(
        report.outcomes[0].status_codes(),
        vec!["CANNOT_UPDATE_CONVERTED_LEAD"]
    );

    let owner = c
        .query_collect(format!(
            "SELECT Subject, Owner.Email FROM Event WHERE Id = '{id}'"
        ))
        .await
        .unwrap();
    assert_eq!(owner[0]["Owner"]["Email"], USER);
    assert_eq!(owner[0]["Owner"]["attributes"]["type"], "User");
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let o = ClientOptions::new(Url::parse("http://example.com").unwrap(), jwt(KEY));
    assert!(matches!(SalesforceClient::new(o), Err(SfError::Config(_))));
    let e = RecordError::new("X", "y", &[]);
    assert_eq!(e.status_code, "X");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let mut o = ClientOptions::new(
        Url::parse("https://org.my.salesforce.com").unwrap(),
        Auth::UsernamePassword {
            client_id: "cid".into(),
            client_secret: Secret::new("topsecret-1"),
            username: "u@example.com".into(),
            password: Secret::new("topsecret-2"),
        },
    );
    let text = format!("{o:?}");
    assert!(!text.contains("topsecret"), "{text}");
    o.auth = jwt("-----BEGIN PRIVATE KEY-----topsecret-3");
    let c = SalesforceClient::new(o.clone()).unwrap();
    let text = format!("{o:?} {c:?}");
    assert!(!text.contains("topsecret"), "{text}");
}

#[tokio::test]
async fn jwt_bearer_also_verifies_against_a_bare_public_key() {
    let env = env_with(|o| {
        o.app.jwt_certificate_pem = Some(include_str!("../fixtures/sf_test_jwt_pub.pem").into())
    })
    .await;
    env.client().limits().await.unwrap();
    let (_, error, _) = auth_error(
        env.client_with(env.options(jwt(OTHER_KEY)))
            .limits()
            .await
            .unwrap_err(),
    );
    assert_eq!(error, "invalid_grant");
}

/// A collections call refused as a whole can answer 400 with one error object instead of the
/// usual array. The body is the shape of a captured answer to a collection create naming a
/// field the org lacks; its code and fields must survive, not become UNPARSEABLE_ERROR.
#[tokio::test]
async fn single_object_error_body_keeps_its_code() {
    const CAPTURED: &str = r#"{"message":"No such column 'Shoe_Size__c' on sobject of type Contact","errorCode":"INVALID_FIELD","fields":["Shoe_Size__c"]}"#;
    let c = client_answered(400, CAPTURED.as_bytes().to_vec()).await;
    let mut record = Map::new();
    record.insert("LastName".into(), json!("Kung"));
    record.insert("Shoe_Size__c".into(), json!("9"));
    let report = c.create("Contact", &[record]).await;
    let Some(SfError::Api { status, errors }) = &report.stopped else {
        panic!("expected an API error, got {:?}", report.stopped);
    };
    assert_eq!(*status, 400);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_code, "INVALID_FIELD");
    assert_eq!(errors[0].fields, vec!["Shoe_Size__c".to_string()]);
    assert!(errors[0].message.contains("No such column"), "{errors:?}");
    // A query answered the same way keeps it too.
    let err = c
        .query_collect("SELECT Shoe_Size__c FROM Contact")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SfError::Api { errors, .. } if errors[0].error_code == "INVALID_FIELD"),
        "{err:?}"
    );
}

/// A client (static token) of a server that answers every request with `body`.
async fn client_answered(status: u16, body: Vec<u8>) -> SalesforceClient {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("Content-Type", "application/json;charset=UTF-8")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    SalesforceClient::new(ClientOptions::new(
        Url::parse(&url).unwrap(),
        Auth::AccessToken {
            token: Secret::new("t"),
        },
    ))
    .unwrap()
}

/// A golden answer (tests/fixtures/golden/salesforce, provenance in its PROVENANCE.md).
fn golden(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/golden/salesforce/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Salesforce's documented answers through the whole client: per-record outcomes of a
/// collection, a 404 error object, and a query page keep what the server said.
#[tokio::test]
async fn documented_answers_through_the_client_keep_outcomes_and_codes() {
    let c = client_answered(
        200,
        golden("doc_collection_create_duplicates_detected.json"),
    )
    .await;
    let report = c.create("Contact", &[contact("Ada"), contact("Bob")]).await;
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    assert_eq!(report.outcomes[0].status_codes(), ["DUPLICATES_DETECTED"]);
    assert_eq!(
        report.outcomes[1],
        RecordOutcome::Success {
            id: "003RM0000068xVCYAY".into()
        }
    );

    let c = client_answered(404, golden("doc_error_not_found_single_object.json")).await;
    let err = c.describe("Contact").await.unwrap_err();
    assert!(matches!(&err, SfError::Api { status: 404, .. }), "{err:?}");
    assert_eq!(err.error_code(), Some("NOT_FOUND"));

    let c = client_answered(200, golden("doc_query_relationship_records.json")).await;
    let records = c
        .query_collect("SELECT Name FROM Line_Item__c")
        .await
        .unwrap();
    let names: Vec<&str> = records.iter().filter_map(|r| r["Name"].as_str()).collect();
    assert_eq!(names, ["LineItem1", "LineItem2"]);
}

/// A hostile or broken server: the client must refuse, never follow or panic.
#[tokio::test]
async fn bad_pagination_from_the_server_is_refused() {
    use axum::routing::get;
    async fn page(
        axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    ) -> String {
        match q.get("q").map(String::as_str) {
            Some("SELECT Id FROM Contact") => {
                r#"{"totalSize":4,"done":false,"nextRecordsUrl":"http://evil.example/services/data/v62.0/query/x","records":[]}"#.into()
            }
            Some("SELECT Name FROM Contact") => r#"{"totalSize":4,"done":false,"records":[]}"#.into(),
            _ => r#"{"totalSize":"many","records":{}}"#.into(),
        }
    }
    let app = axum::Router::new().route("/services/data/v62.0/query", get(page));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let o = ClientOptions::new(
        Url::parse(&url).unwrap(),
        Auth::AccessToken {
            token: Secret::new("t"),
        },
    );
    let c = SalesforceClient::new(o).unwrap();
    for q in [
        "SELECT Id FROM Contact",
        "SELECT Name FROM Contact",
        "SELECT Title FROM Contact",
    ] {
        let err = c.query_collect(q).await.unwrap_err();
        assert!(matches!(err, SfError::Malformed { .. }), "{q}: {err}");
    }
    assert_eq!(c.call_counts()[&CallKind::Query], 3);
    assert!(!c.call_counts().contains_key(&CallKind::QueryMore));
}

/// getDeleted() rejects start == end (INVALID_REPLICATION_DATE); with nothing elapsed since the
/// watermark the client asks nothing and reports no deletions, instead of falling back to a
/// full id comparison.
#[tokio::test]
async fn deleted_since_now_makes_no_call() {
    let env = env().await;
    let ids = env.seed_contacts(2);
    let c = env.client();
    let before = env.emu.handle().served_total();
    let d = c
        .deleted_since("Contact", env.clock.now(), &ids)
        .await
        .unwrap();
    assert!(d.ids.is_empty());
    assert_eq!(d.via, DeleteDetection::GetDeleted);
    assert_eq!(env.emu.handle().served_total(), before);
}

/// getDeleted() ignores seconds and needs start before end by more than one minute: a
/// watermark 30 seconds old still finds the deletion through getDeleted, not a full id list.
#[tokio::test]
async fn deleted_since_a_moment_ago_uses_get_deleted() {
    let env = env().await;
    let ids = env.seed_contacts(3);
    env.clock.advance(Duration::from_secs(10));
    let since = env.clock.now();
    env.clock.advance(Duration::from_secs(20));
    env.emu.handle().delete(&ids[1]).unwrap();
    env.clock.advance(Duration::from_secs(60));
    let c = env.client();
    let d = c.deleted_since("Contact", since, &ids).await.unwrap();
    assert_eq!(
        (d.ids, d.via),
        (vec![ids[1].clone()], DeleteDetection::GetDeleted)
    );
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn junk_json_on_a_read_is_retried() {
    let env = env().await;
    env.seed_contacts(2);
    let c = env.client();
    c.limits().await.unwrap();
    // A 200 whose body is cut short is asked again, after the 5xx back-off.
    env.emu.handle().malformed_next(1);
    let rows = c.query_collect("SELECT Id FROM Contact").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(c.call_counts()[&CallKind::Query], 2);
    let sleeps = env.clock.sleeps();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert!(
        (250..=500).contains(&(sleeps[0].as_millis() as u64)),
        "{sleeps:?}"
    );
    env.emu.handle().malformed_next(1);
    c.describe("Lead").await.unwrap();
    assert_eq!(c.call_counts()[&CallKind::Describe], 2);
    // Bounded: junk every time ends in a clear error naming the call.
    env.emu.handle().malformed_next(5);
    let err = c.query_collect("SELECT Id FROM Contact").await.unwrap_err();
    assert!(
        matches!(&err, SfError::Malformed { context, detail }
            if context == "query" && detail.contains("not JSON") && detail.contains("after 5 attempt(s)")),
        "{err:?}"
    );
    assert_eq!(c.call_counts()[&CallKind::Query], 7);
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn token_endpoint_429_is_throttling_not_bad_credentials() {
    use tether_emulators::salesforce::KindFault;
    let env = env().await;
    let c = env.client();
    // Throttled twice, then served: signed in after the back-off.
    env.emu.handle().fault_next("auth", KindFault::Status(429));
    env.emu.handle().fault_next("auth", KindFault::Status(429));
    c.limits().await.unwrap();
    assert_eq!(c.call_counts()[&CallKind::Auth], 3);
    assert_eq!(env.clock.sleeps().len(), 2);
    env.assert_counts_match(&c);
    // Throttled throughout: it says so, and that the credentials are fine.
    let c = env.client();
    env.emu.handle().fail_next(&[429; 5]);
    let err = c.limits().await.unwrap_err();
    assert!(matches!(err, SfError::Throttled { attempts: 5 }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("throttling") && text.contains("wait a few minutes and run again"),
        "{text}"
    );
    assert!(!text.contains("authentication failed"), "{text}");
    assert_eq!(c.call_counts()[&CallKind::Auth], 5);
}

fn keyed(last: &str, key: &str) -> Map<String, Value> {
    let mut m = contact(last);
    m.insert("Tether_Sync_Key__c".into(), json!(key));
    m
}

#[tokio::test]
async fn a_bulk_insert_answers_per_record_in_input_order_with_the_calls_counted() {
    use tether::salesforce::bulk::BulkOperation;
    let env = env().await;
    let c = env.client();
    // The third has no LastName (required): a failed row, not a failed job.
    let mut records: Vec<Map<String, Value>> = (0..5)
        .map(|i| keyed(&format!("B{i}"), &format!("k{i}")))
        .collect();
    records[2].remove("LastName");
    let report = c
        .bulk_write(
            "Contact",
            BulkOperation::Insert,
            &records,
            &["Tether_Sync_Key__c"],
        )
        .await;
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    for (i, o) in report.outcomes.iter().enumerate() {
        match (i, o) {
            (2, o) => assert_eq!(o.status_codes(), vec!["REQUIRED_FIELD_MISSING"]),
            (i, RecordOutcome::Success { id }) => {
                let rec = env.emu.handle().get(id).unwrap();
                assert_eq!(
                    rec["LastName"],
                    format!("B{i}"),
                    "outcome {i} is its record's"
                );
            }
            (i, o) => panic!("{i}: {o:?}"),
        }
    }
    // Create, close, two polls; upload; successful and failed results.
    let counts = c.call_counts();
    assert_eq!(counts[&CallKind::BulkJob], 4);
    assert_eq!(counts[&CallKind::BulkUpload], 1);
    assert_eq!(counts[&CallKind::BulkResults], 2);
    env.assert_counts_match(&c);
}

#[tokio::test]
async fn a_bulk_upload_that_fails_aborts_the_job_and_nothing_is_ambiguous() {
    use tether::salesforce::bulk::BulkOperation;
    let env = env().await;
    let c = env.client();
    env.emu
        .handle()
        .fault_next("bulk_upload", KindFault::DropResponse);
    let records: Vec<Map<String, Value>> = (0..3)
        .map(|i| keyed(&format!("U{i}"), &format!("u{i}")))
        .collect();
    let report = c
        .bulk_write(
            "Contact",
            BulkOperation::Insert,
            &records,
            &["Tether_Sync_Key__c"],
        )
        .await;
    assert!(
        matches!(report.stopped, Some(SfError::Transport { .. })),
        "{:?}",
        report.stopped
    );
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| *o == RecordOutcome::NotAttempted)
    );
    let jobs = env.emu.handle().bulk_jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1, "Aborted");
    assert!(env.emu.handle().records("Contact").is_empty());
}

#[tokio::test]
async fn a_dropped_bulk_results_answer_is_asked_again() {
    use tether::salesforce::bulk::BulkOperation;
    let env = env().await;
    let c = env.client();
    env.emu
        .handle()
        .fault_next("bulk_results", KindFault::DropResponse);
    let records: Vec<Map<String, Value>> = (0..3)
        .map(|i| keyed(&format!("D{i}"), &format!("d{i}")))
        .collect();
    let report = c
        .bulk_write(
            "Contact",
            BulkOperation::Insert,
            &records,
            &["Tether_Sync_Key__c"],
        )
        .await;
    assert!(
        report.outcomes.iter().all(RecordOutcome::is_success),
        "{:?}",
        report.outcomes
    );
    assert_eq!(c.call_counts()[&CallKind::BulkResults], 3);
    assert_eq!(env.emu.handle().records("Contact").len(), 3);
}

#[tokio::test]
async fn bulk_is_allowed_only_while_the_daily_bulk_batches_last() {
    let env = env().await;
    let c = env.client();
    assert!(c.bulk_allows(67_500).await);
    env.emu.handle().set_bulk_batches_used(14_995);
    assert!(
        !c.bulk_allows(67_500).await,
        "8 batches needed (7 and the parent), 5 left"
    );
    assert!(c.bulk_allows(30_000).await);
    assert_eq!(c.call_counts()[&CallKind::Limits], 3);
}

#[tokio::test]
async fn bulk_event_relations_are_told_apart_by_event_and_person() {
    use tether::salesforce::bulk::BulkOperation;
    let env = env().await;
    let c = env.client();
    let h = env.emu.handle();
    let event = h
        .insert(
            "Event",
            json!({"Subject": "Review", "StartDateTime": "2026-01-15T09:00:00.000+0000",
                   "EndDateTime": "2026-01-15T10:00:00.000+0000"}),
        )
        .unwrap();
    let people = env.seed_contacts(3);
    let relation = |who: &str| {
        let mut m = Map::new();
        m.insert("EventId".into(), json!(event));
        m.insert("RelationId".into(), json!(who));
        m.insert("IsParent".into(), json!(true));
        m.insert("IsInvitee".into(), json!(false));
        m
    };
    // The same pair twice: the second is refused, and each answer is its own row's.
    let rows = vec![
        relation(&people[0]),
        relation(&people[1]),
        relation(&people[0]),
    ];
    let report = c
        .bulk_write(
            "EventRelation",
            BulkOperation::Insert,
            &rows,
            &["EventId", "RelationId"],
        )
        .await;
    let ok = report.outcomes.iter().filter(|o| o.is_success()).count();
    assert_eq!(ok, 2, "{:?}", report.outcomes);
    assert!(report.outcomes[1].is_success(), "{:?}", report.outcomes);
    let refused = report.outcomes.iter().find(|o| !o.is_success()).unwrap();
    assert!(!refused.status_codes().is_empty(), "{refused:?}");
    assert_eq!(h.records("EventRelation").len(), 2);
}
