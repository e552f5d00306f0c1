//! `tether test-connection` end to end against both emulators: every check passes on a
//! good setup; a wrong password and a mailbox outside the impersonation scope fail with
//! what to do, and the exit code says so. Secrets never appear in the output.

use crate::common;
use crate::emulated;

use common::Output;
use emulated::*;
use tether_emulators::salesforce;

async fn setup() -> Org {
    setup_with(salesforce::EmulatorOptions::default()).await
}

async fn setup_with(sf_options: salesforce::EmulatorOptions) -> Org {
    let org = start(
        sf_options,
        "  - name: Reps\n    members: { users: [celia.kung@corp.com] }\n    contacts: { direction: both, conflict: salesforce_wins, scope: users_records }\n    events: { direction: exchange_to_salesforce }\n",
    )
    .await;
    org.ews.add_mailbox("celia.kung@corp.com", Some("Sales"));
    org.ews.add_mailbox("fin.person@corp.com", Some("Finance"));
    org
}

async fn run(s: &Org, args: &[&str], password: &str) -> Output {
    let mut all = vec!["test-connection", "org"];
    all.extend_from_slice(args);
    s.tether(&all, password).await
}

fn no_secrets(out: &Output) {
    for secret in [PASSWORD, SF_SECRET, "Wrong-Password-99"] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} leaked:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_check_passes_on_a_good_setup() {
    let s = setup().await;
    let out = run(&s, &[], PASSWORD).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for line in [
        "PASS Exchange: service account credentials: accepted",
        "PASS Exchange: impersonation of celia.kung@corp.com: allowed",
        "PASS Exchange: Salesforce_Sync folder of celia.kung@corp.com: not there yet; the first apply creates it under Contacts",
        "PASS Exchange: calendar of celia.kung@corp.com: found",
        "PASS Salesforce: authentication (client_credentials): signed in",
        "PASS Salesforce: API version 62.0: offered by the org",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing `{line}` in:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .contains("PASS Salesforce: mapped Contact fields:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("PASS Salesforce: API usage:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.trim_end().ends_with("checks passed."),
        "{}",
        out.stdout
    );
    no_secrets(&out);
    let json = run(&s, &["--format", "json"], PASSWORD).await;
    let report = json.json();
    assert_eq!(report["passed"], true);
    assert!(report["checks"].as_array().unwrap().len() >= 8);
}

/// The emulator sends `Sforce-Limit-Info` as documented, `api-usage=N/M; per-app-api-usage=
/// n/m(appName=…)`: the usage is shown, and past 90 % the check fails with what to do.
#[tokio::test(flavor = "multi_thread")]
async fn documented_limit_info_header_shows_usage_and_warns_at_90_percent() {
    let s = setup().await;
    let h = s.sf.handle();
    h.set_daily_allowance(1000);
    h.set_app_quota("tether-app", 5000);
    h.set_api_used(100);
    let out = run(&s, &[], PASSWORD).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Salesforce: API usage"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.starts_with("PASS Salesforce: API usage: 1")
            && line.contains(" of 1000 daily API requests used (1")
            && line.contains("connected app tether-app: 1")
            && line.contains(" of 5000 ("),
        "{}",
        out.stdout
    );
    h.set_api_used(950);
    let out = run(&s, &[], PASSWORD).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("FAIL Salesforce: API usage: 9")
            && out.stdout.contains(" of 1000 daily API requests used (9")
            && out
                .stdout
                .contains("→ the org (or the connected app) is close to its daily API allowance"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_fails_with_what_to_do() {
    let s = setup().await;
    let out = run(&s, &[], "Wrong-Password-99").await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("FAIL Exchange: service account credentials:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("→ check the username and password"),
        "{}",
        out.stdout
    );
    // Salesforce is still checked.
    assert!(
        out.stdout
            .contains("PASS Salesforce: authentication (client_credentials)"),
        "{}",
        out.stdout
    );
    no_secrets(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mailbox_outside_the_impersonation_scope_fails_with_what_to_do() {
    let s = setup().await;
    let out = run(&s, &["--user", "fin.person@corp.com"], PASSWORD).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("FAIL Exchange: impersonation of fin.person@corp.com:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("→ give the service account the ApplicationImpersonation role"),
        "{}",
        out.stdout
    );
    no_secrets(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_sync_key_field_fails_naming_it() {
    let s = setup_with(salesforce::EmulatorOptions {
        sync_key_field: false,
        ..salesforce::EmulatorOptions::default()
    })
    .await;
    let out = run(&s, &[], PASSWORD).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("FAIL Salesforce: mapped Contact fields:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Tether_Sync_Key__c"), "{}", out.stdout);
}

/// Auto-relate relates attendees as the event's contacts or lead (EventRelation.IsParent),
/// which Salesforce allows only with Shared Activities: test-connection says when it is off.
#[tokio::test(flavor = "multi_thread")]
async fn test_connection_reports_shared_activities_off() {
    let s = setup().await;
    let on = run(&s, &[], PASSWORD).await;
    assert!(
        on.stdout.contains("PASS Salesforce: Shared Activities: on"),
        "{}",
        on.stdout
    );

    s.sf.handle().set_shared_activities(false);
    let off = run(&s, &[], PASSWORD).await;
    assert_eq!(off.code, 1, "{}", off.stdout);
    assert!(
        off.stdout.contains(
            "FAIL Salesforce: Shared Activities: off: Salesforce refuses to relate contacts and leads to events"
        ),
        "{}",
        off.stdout
    );
    assert!(
        off.stdout.contains("→ enable Shared Activities"),
        "{}",
        off.stdout
    );

    // Without auto-relate it is not needed: said, not failed.
    let quiet = start(
        salesforce::EmulatorOptions::default(),
        "  - name: Reps\n    members: { users: [celia.kung@corp.com] }\n    events: { direction: exchange_to_salesforce, auto_relate: false }\n",
    )
    .await;
    quiet.ews.add_mailbox("celia.kung@corp.com", Some("Sales"));
    quiet.sf.handle().set_shared_activities(false);
    let out = run(&quiet, &[], PASSWORD).await;
    assert!(
        out.stdout
            .contains("PASS Salesforce: Shared Activities: off; not needed"),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
}

/// Certificate credentials (an Entra app registration's uploaded certificate): the signed
/// client assertion gets a token from the tenant's endpoint for Graph and for Exchange
/// Online's EWS alike; a thumbprint of another certificate, or an assertion outside its time
/// range, fails with what to fix.
mod certificate {
    use super::*;
    use base64::Engine;
    use std::sync::Arc;
    use tether_emulators::exchange::{self, ImpersonationScope};
    use tether_emulators::graph::{GraphApp, TENANT_ID};

    const APP: &str = "6c2f0e1d-0000-4000-8000-0000000ce271";
    const CERT: &str = include_str!("../fixtures/sf_test_jwt_cert.pem");
    const KEY: &str = include_str!("../fixtures/sf_test_jwt_key.pem");

    /// The SHA-256 thumbprint of the registered certificate, as the portal shows it (hex).
    fn thumbprint() -> String {
        let b64: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        ring::digest::digest(&ring::digest::SHA256, &der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// The org with the app registered (certificate only; RBAC scope: the Sales
    /// department), the emulated Exchange's clock `skew` ahead of this machine's, and one
    /// configuration per API in `graph/` and `ews/`, the key in a file beside each.
    async fn org(skew: chrono::Duration, thumbprint: &str) -> Org {
        let s = start_with(
            exchange::EmulatorOptions {
                clock: Some(Arc::new(tether_emulators::clock::ManualClock::new(
                    chrono::Utc::now() + skew,
                ))),
                ..exchange::EmulatorOptions::default()
            },
            salesforce::EmulatorOptions::default(),
            ONE_REP_SYNC,
        )
        .await;
        s.ews.add_mailbox(REP, Some("Sales"));
        s.ews.add_graph_app(GraphApp {
            client_id: APP.into(),
            client_secret: None,
            certificate_pem: Some(CERT.into()),
            scope: ImpersonationScope::Filter("Department -eq 'Sales'".into()),
        });
        s.sf.handle()
            .add_user(REP, REP, "Celia Kung", "Sales User", "Europe/Berlin");
        for (api, endpoint) in [
            ("graph", format!("graph_url: {}", s.ews.graph_url())),
            ("ews", format!("ews_url: {}", s.ews.ews_url())),
        ] {
            s.scratch.write(&format!("{api}/app.key"), KEY);
            s.scratch.write(
                &format!("{api}/tether.yaml"),
                format!(
                    r#"version: 1
org: {{ name: corp, kind: production }}
connections:
  exchange:
    method: oauth2
    api: {api}
    tenant: {TENANT_ID}
    client_id: {APP}
    certificate:
      private_key: ${{file:app.key}}
      thumbprint: {thumbprint}
    token_url: {token_url}
    {endpoint}
    additional_domains: [corp.com]
  salesforce:
    instance_url: {sf}
    login_url: {sf}
    auth:
      flow: client_credentials
      client_id: {SF_CLIENT_ID}
      client_secret: ${{env:TEST_SF_SECRET}}
sync_configurations:
{ONE_REP_SYNC}"#,
                    token_url = s.ews.graph_token_url(),
                    sf = s.sf.url(),
                ),
            );
        }
        s
    }

    async fn check(s: &Org, api: &str) -> Output {
        let out = s
            .tether(&["test-connection", api, "--user", REP], PASSWORD)
            .await;
        assert!(
            !out.stdout.contains("PRIVATE KEY") && !out.stderr.contains("PRIVATE KEY"),
            "{}{}",
            out.stdout,
            out.stderr
        );
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_certificate_credential_opens_graph_and_ews_through_the_tenant_token_endpoint() {
        let s = org(chrono::Duration::zero(), &thumbprint()).await;
        let graph = check(&s, "graph").await;
        assert_eq!(graph.code, 0, "{}{}", graph.stdout, graph.stderr);
        let ews = check(&s, "ews").await;
        assert_eq!(ews.code, 0, "{}{}", ews.stdout, ews.stderr);
        assert!(
            ews.stdout
                .contains(&format!("PASS Exchange: impersonation of {REP}: allowed")),
            "{}",
            ews.stdout
        );
        // Each API's sign-in asked the tenant's endpoint once for its own resource.
        assert_eq!(
            s.ews.graph_calls().get("token"),
            Some(&2),
            "{:?}",
            s.ews.graph_calls()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_thumbprint_of_another_certificate_fails_saying_to_check_the_thumbprint() {
        let s = org(chrono::Duration::zero(), &"AB".repeat(32)).await;
        for api in ["graph", "ews"] {
            let out = check(&s, api).await;
            assert_eq!(out.code, 1, "{api}: {}{}", out.stdout, out.stderr);
            assert!(
                out.stdout.contains("AADSTS700027")
                    && out
                        .stdout
                        .contains("`certificate.thumbprint` is that certificate's thumbprint"),
                "{api}: {}",
                out.stdout
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_assertion_outside_its_time_range_fails_saying_to_check_the_clock() {
        // The token endpoint's clock is an hour ahead: the assertion tether signs now has
        // expired by its time.
        let s = org(chrono::Duration::hours(1), &thumbprint()).await;
        for api in ["graph", "ews"] {
            let out = check(&s, api).await;
            assert_eq!(out.code, 1, "{api}: {}{}", out.stdout, out.stderr);
            assert!(
                out.stdout.contains("AADSTS700024")
                    && out.stdout.contains("check this machine's clock (NTP)"),
                "{api}: {}",
                out.stdout
            );
        }
    }
}

/// The org's Outlook integration is read through the Metadata API (readMetadata of
/// EmailIntegrationSettings): `test-connection` says enabled or disabled, `plan` refuses a
/// `which: user_selected` configuration while it is off (saying what to do), `status` reports
/// what the last apply read, and without the Metadata API's permission it is "not checked",
/// with why, instead of a failure.
#[tokio::test(flavor = "multi_thread")]
async fn outlook_integration_status_is_read_from_the_org_and_a_disabled_one_fails_plan() {
    let s = start(
        salesforce::EmulatorOptions::default(),
        "  - name: Reps\n    members: { users: [celia.kung@corp.com] }\n    events: { direction: exchange_to_salesforce, which: user_selected }\n",
    )
    .await;
    add_rep_with_a_contact(&s.ews, &s.sf);
    let path = s.scratch.path("org/tether.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "sync_configurations:\n",
        "outlook_integration: { enabled: true }\nsync_configurations:\n",
    );
    s.scratch.write("org/tether.yaml", text);

    // Off in the org (a new org's default).
    let out = run(&s, &[], PASSWORD).await;
    assert!(
        out.stdout.contains(
            "FAIL Salesforce: Outlook integration: disabled, and Reps sync only the events reps \
             relate to Salesforce in Outlook (events.which: user_selected)"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, 1);
    let plan = s.tether(&["plan", "org"], PASSWORD).await;
    assert_eq!(plan.code, 1, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stderr.contains(
            "the org's Outlook integration is disabled, and sync configuration \"Reps\" sync only \
             the events reps relate to Salesforce in Outlook"
        ) && plan.stderr.contains("Enable it in Salesforce Setup (Outlook Integration and Sync), or set `events.which: all`"),
        "{}",
        plan.stderr
    );

    // On: checked, planned and applied; status says so.
    s.sf.handle()
        .set_email_integration("enableOutlookIntegration", true);
    let out = run(&s, &[], PASSWORD).await;
    assert!(
        out.stdout
            .contains("PASS Salesforce: Outlook integration: enabled"),
        "{}",
        out.stdout
    );
    let apply = s
        .tether(&["apply", "org", "--auto-approve"], PASSWORD)
        .await;
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let status = s.tether(&["status", "org", "--user", REP], PASSWORD).await;
    assert!(
        status
            .stdout
            .contains("Outlook integration enabled: yes — enabled in the org (EmailIntegrationSettings, read at "),
        "{}",
        status.stdout
    );

    // Without Modify All Data / Modify Metadata: not checked, with why; nothing fails.
    s.sf.handle().set_metadata_access(false);
    let out = run(&s, &[], PASSWORD).await;
    assert!(
        out.stdout.contains(
            "PASS Salesforce: Outlook integration: not checked: the integration user may not use \
             the Metadata API"
        ) && out
            .stdout
            .contains("Modify Metadata Through Metadata API Functions"),
        "{}",
        out.stdout
    );
    let apply = s
        .tether(&["apply", "org", "--auto-approve"], PASSWORD)
        .await;
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let status = s
        .tether(&["status", "org", "--user", REP, "--exit-zero"], PASSWORD)
        .await;
    assert!(
        status.stdout.contains(
            "Outlook integration enabled: not checked — the integration user may not use the \
             Metadata API"
        ),
        "{}",
        status.stdout
    );
    no_secrets(&out);
}
