//! `tether setup exchange` and the sandbox's two users Exchange does not let tether reach,
//! against the sandbox's seeded org (both emulators in this process) and
//! `examples/exchange-online.yaml`.

use crate::common::{Output, Scratch, tether_with_env};
use tether_emulators::generate::Shape;
use tether_emulators::seed::{self, NO_MAILBOX_USER, OUT_OF_SCOPE_USER, SandboxOrg};

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A seeded sandbox org of 6 reps (rep 5 a Sales Manager) on free ports, and the example
/// `file` pointed at them.
async fn sandbox(file: &str) -> (SandboxOrg, Scratch) {
    let mut org = seed::start_empty(0, 0).await.unwrap();
    let shape = Shape {
        reps: 6,
        contacts_per_rep: 2,
        events_per_rep: 2,
        seed: 1,
    };
    org.seed(&shape, chrono::Utc::now()).unwrap();
    let ews = org.exchange.url().trim_start_matches("http://").to_string();
    let sf = org
        .salesforce
        .url()
        .trim_start_matches("http://")
        .to_string();
    let scratch = Scratch::new();
    scratch.write(
        file,
        repo_file(&format!("examples/{file}"))
            .replace("127.0.0.1:8081", &ews)
            .replace("127.0.0.1:8082", &sf),
    );
    (org, scratch)
}

/// Runs tether in the scratch directory with sandbox.env's variables, off the runtime the
/// emulators serve on.
async fn run(org: &SandboxOrg, scratch: &Scratch, args: &[&str]) -> Output {
    let mut env: Vec<(String, String)> = seed::ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(org.graph_env().into_iter().map(|(k, v)| (k.to_string(), v)));
    let dir = scratch.dir.path().to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tether_with_env(&args, &dir, &env)
    })
    .await
    .unwrap();
    for secret in [
        seed::SANDBOX_CLIENT_SECRET,
        seed::SANDBOX_EXCHANGE_PASSWORD,
        seed::SANDBOX_GRAPH_CLIENT_SECRET,
    ] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "a secret was printed:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    out
}

/// The addresses the management scope's filter names.
fn scoped(script: &str) -> Vec<String> {
    let filter = script
        .lines()
        .find(|l| l.starts_with("New-ManagementScope"))
        .unwrap_or_else(|| panic!("no New-ManagementScope:\n{script}"));
    filter
        .split("PrimarySmtpAddress -eq ''")
        .skip(1)
        .map(|s| s.split("''").next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_exchange_for_the_graph_example_scopes_rbac_to_its_listed_users() {
    let (org, scratch) = sandbox("exchange-online.yaml").await;
    let out = run(
        &org,
        &scratch,
        &["setup", "exchange", "exchange-online.yaml"],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let script = &out.stdout;
    assert!(
        script.contains(&format!("$AppId = '{}'", seed::GRAPH_CLIENT_ID)),
        "{script}"
    );
    assert_eq!(
        scoped(script),
        [OUT_OF_SCOPE_USER.0, NO_MAILBOX_USER.0],
        "{script}"
    );
    for role in [
        "'Application Contacts.ReadWrite'",
        "'Application Calendars.ReadWrite'",
    ] {
        assert!(
            script.contains(&format!("-Role {role} -CustomResourceScope $Scope")),
            "{script}"
        );
    }
    for user in [NO_MAILBOX_USER.0, OUT_OF_SCOPE_USER.0] {
        assert!(
            script.contains(&format!(
                "Test-ServicePrincipalAuthorization -Identity $AppId -Resource '{user}'"
            )),
            "{script}"
        );
    }
    // The profile's members are Salesforce's to know: said, not guessed.
    assert!(script.contains("profiles 'Sales User'"), "{script}");
    assert!(script.contains("--from-salesforce"), "{script}");
    assert!(
        script.contains("RBAC for Applications is additive"),
        "{script}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_exchange_from_salesforce_lists_the_profiles_members_as_plan_resolves_them() {
    let (org, scratch) = sandbox("exchange-online.yaml").await;
    let out = run(
        &org,
        &scratch,
        &[
            "setup",
            "exchange",
            "--from-salesforce",
            "exchange-online.yaml",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let reps = tether_emulators::generate::reps(&Shape {
        reps: 6,
        contacts_per_rep: 2,
        events_per_rep: 2,
        seed: 1,
    });
    let mut expected: Vec<String> = reps
        .iter()
        .filter(|r| r.profile == tether_emulators::generate::SALES_USER)
        .map(|r| r.email.clone())
        .chain([
            NO_MAILBOX_USER.0.to_string(),
            OUT_OF_SCOPE_USER.0.to_string(),
        ])
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 7);
    assert_eq!(scoped(&out.stdout), expected, "{}", out.stdout);
    assert!(!out.stdout.contains("Not listed"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_exchange_for_the_quickstart_gives_the_service_account_scoped_impersonation() {
    let (org, scratch) = sandbox("quickstart.yaml").await;
    let out = run(&org, &scratch, &["setup", "exchange", "quickstart.yaml"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "New-ManagementRoleAssignment -Name 'tether demo impersonation' -Role ApplicationImpersonation -User 'svc-tether@example.com' -CustomRecipientWriteScope $Scope"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(
        scoped(&out.stdout),
        ["celia.kung@example.com", "omar.haddad@example.com"]
    );
    assert!(
        !out.stdout.contains("New-ServicePrincipal"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_exchange_says_which_setting_when_the_client_id_cannot_be_read() {
    let (org, scratch) = sandbox("exchange-online.yaml").await;
    let yaml = std::fs::read_to_string(scratch.path("exchange-online.yaml")).unwrap();
    scratch.write(
        "exchange-online.yaml",
        yaml.replace(
            "${env:GRAPH_CLIENT_ID}",
            "${env:TETHER_TEST_NOT_SET_CLIENT_ID}",
        ),
    );
    let out = run(
        &org,
        &scratch,
        &["setup", "exchange", "exchange-online.yaml"],
    )
    .await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("connections.exchange.client_id")
            && out.stderr.contains("TETHER_TEST_NOT_SET_CLIENT_ID"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_exchange_needs_no_secret_but_from_salesforce_names_the_one_it_cannot_read() {
    let (org, scratch) = sandbox("exchange-online.yaml").await;
    let yaml = std::fs::read_to_string(scratch.path("exchange-online.yaml")).unwrap();
    scratch.write(
        "exchange-online.yaml",
        yaml.replace(
            "${env:GRAPH_CLIENT_SECRET}",
            "${env:TETHER_TEST_NOT_SET_APP}",
        )
        .replace("${env:SF_CLIENT_SECRET}", "${env:TETHER_TEST_NOT_SET_SF}"),
    );
    let out = run(
        &org,
        &scratch,
        &["setup", "exchange", "exchange-online.yaml"],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = run(
        &org,
        &scratch,
        &[
            "setup",
            "exchange",
            "--from-salesforce",
            "exchange-online.yaml",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("connections.salesforce.auth.client_secret")
            && out.stderr.contains("TETHER_TEST_NOT_SET_SF"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_graph_example_reports_the_out_of_scope_and_the_mailboxless_user_with_what_to_do() {
    let (org, scratch) = sandbox("exchange-online.yaml").await;
    let check = |user: &'static str| {
        let (org, scratch) = (&org, &scratch);
        async move {
            run(
                org,
                scratch,
                &["test-connection", "exchange-online.yaml", "--user", user],
            )
            .await
        }
    };
    let ok = check(seed::REPS[0].0).await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let denied = check(OUT_OF_SCOPE_USER.0).await;
    assert_eq!(denied.code, 1, "{}{}", denied.stdout, denied.stderr);
    assert!(
        denied
            .stdout
            .contains("User recognized by Exchange service account: no")
            && denied.stdout.contains("Test-ServicePrincipalAuthorization")
            && denied
                .stdout
                .contains("`tether setup exchange` prints the PowerShell"),
        "{}",
        denied.stdout
    );
    let missing = check(NO_MAILBOX_USER.0).await;
    assert_eq!(missing.code, 1, "{}{}", missing.stdout, missing.stderr);
    assert!(
        missing.stdout.contains("no Exchange Online mailbox"),
        "{}",
        missing.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn over_ews_the_two_users_are_reported_per_rep_and_the_others_sync() {
    let (org, scratch) = sandbox("quickstart.yaml").await;
    let yaml = std::fs::read_to_string(scratch.path("quickstart.yaml")).unwrap();
    scratch.write(
        "quickstart.yaml",
        yaml.replace(
            "users: [celia.kung@example.com, omar.haddad@example.com]",
            &format!("users: [{}, {}]", OUT_OF_SCOPE_USER.0, NO_MAILBOX_USER.0),
        ),
    );
    let apply = run(
        &org,
        &scratch,
        &["apply", "quickstart.yaml", "--auto-approve"],
    )
    .await;
    // The two reps fail; the Sales Users sync.
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    let errors = run(
        &org,
        &scratch,
        &["errors", "quickstart.yaml", "--format", "json"],
    )
    .await;
    let report = errors.json();
    let rows = report.as_array().expect("an array of rows");
    for user in [OUT_OF_SCOPE_USER.0, NO_MAILBOX_USER.0] {
        assert!(
            rows.iter().any(|r| r["rep"] == user),
            "{user} not reported: {report:#}"
        );
    }
    assert!(
        rows.iter()
            .all(|r| r["rep"] == OUT_OF_SCOPE_USER.0 || r["rep"] == NO_MAILBOX_USER.0),
        "{report:#}"
    );
    let plan = run(&org, &scratch, &["plan", "quickstart.yaml"]).await;
    assert!(
        !plan.stdout.contains(&format!("/ {}", seed::REPS[0].0)),
        "Celia synced in full, nothing left to plan for her:\n{}",
        plan.stdout
    );
}
