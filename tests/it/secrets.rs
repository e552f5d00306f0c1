//! No secret leaks, whatever tether is asked to do. Two orgs against both emulators cover
//! every kind of credential: an Exchange service-account password and a Salesforce client
//! secret (client credentials); an Exchange app secret (OAuth client credentials) and a
//! Salesforce private key (JWT bearer). Every command runs with `RUST_LOG=trace` and a log
//! file; then stdout, stderr, the log files, the saved plan file, the state database (raw
//! bytes, with its journal) are scanned for each secret, the access tokens the emulators issued, a wrong
//! password tried, and the plan-signing key (everywhere but the state, which keeps it).
//! The scanner is shown to find a planted secret first, so a pass means something.

use crate::common;
use crate::common::{SF_CLIENT_ID, SVC};
use crate::emulated::{self, ONE_REP_SYNC, REP};

use common::{Output, Scratch, tether_with_env};
use serde_json::json;
use std::path::{Path, PathBuf};
use tether::secret::Secret;
use tether_emulators::exchange::{self, ImpersonationScope};
use tether_emulators::salesforce;

const EWS_APP: &str = "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
// TEST-ONLY key pair (tests/fixtures/README.md).
const JWT_KEY: &str = include_str!("../fixtures/sf_test_jwt_key.pem");
const JWT_CERT: &str = include_str!("../fixtures/sf_test_jwt_cert.pem");

/// A value no test data contains by chance.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos:x}-{:x}", std::process::id())
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn url_encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What to look for, and the forms a secret travels in: as is, form-encoded, base64 (and
/// for a password, the Basic credentials it goes out in).
struct Needles(Vec<(String, String)>);

impl Needles {
    fn new() -> Self {
        Needles(Vec::new())
    }

    fn add(&mut self, name: &str, secret: &str) {
        assert!(secret.len() >= 8, "{name} is too short to scan for");
        for (form, text) in [
            ("", secret.to_string()),
            (" (form-encoded)", url_encoded(secret)),
            (" (base64)", base64(secret)),
        ] {
            if !self.0.iter().any(|(_, t)| *t == text) {
                self.0.push((format!("{name}{form}"), text));
            }
        }
    }

    fn add_basic(&mut self, name: &str, user: &str, password: &str) {
        self.add(name, password);
        self.0.push((
            format!("{name} (Basic credentials)"),
            base64(&format!("{user}:{password}")),
        ));
    }

    /// A PEM key leaks if any line of its body does.
    fn add_pem(&mut self, name: &str, pem: &str) {
        for (i, line) in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 32)
            .enumerate()
        {
            self.0
                .push((format!("{name} (line {})", i + 2), line.to_string()));
        }
    }

    /// Every needle found in `haystack`, named with `place`.
    fn scan(&self, place: &str, haystack: &[u8]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, text)| haystack.windows(text.len()).any(|w| w == text.as_bytes()))
            .map(|(name, _)| format!("{name} in {place}"))
            .collect()
    }
}

/// Everything one org's commands produced.
struct Transcript {
    outputs: Vec<(String, Output)>,
}

impl Transcript {
    fn new() -> Self {
        Transcript {
            outputs: Vec::new(),
        }
    }

    fn push(&mut self, what: &str, out: Output) -> &Output {
        self.outputs.push((what.to_string(), out));
        &self.outputs.last().unwrap().1
    }

    fn hits(&self, needles: &Needles) -> Vec<String> {
        let mut hits = Vec::new();
        for (what, out) in &self.outputs {
            hits.extend(needles.scan(&format!("stdout of `{what}`"), out.stdout.as_bytes()));
            hits.extend(needles.scan(&format!("stderr of `{what}`"), out.stderr.as_bytes()));
        }
        hits
    }
}

/// Runs tether off the async runtime the emulators serve on, with RUST_LOG=trace, a log file
/// and the org's secrets in the environment.
async fn tether(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut env = env.to_vec();
    env.push(("RUST_LOG".into(), "trace".into()));
    env.push((
        "TETHER_LOG_FILE".into(),
        dir.join("logs/tether.log").display().to_string(),
    ));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tether_with_env(&args, &dir, &env)
    })
    .await
    .unwrap()
}

fn expect(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.code, code,
        "`{what}` exited {}:\n{}{}",
        out.code, out.stdout, out.stderr
    );
}

/// Files a run leaves next to the configuration: the state (and any journal), the lock.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The plan-signing key the state holds: it must never leave the state.
fn signing_key(state: &Path) -> String {
    let db = rusqlite::Connection::open(state).unwrap();
    db.query_row(
        "SELECT value FROM meta WHERE key = 'plan_signing_key'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// The commands every org goes through, in the order an admin would run them. `edit`
/// changes data on both sides after the first apply, so the later plans have updates.
async fn every_command(
    dir: &Path,
    env: &[(String, String)],
    wrong: &[(String, String)],
    edit: impl FnOnce(),
) -> Transcript {
    let mut t = Transcript::new();
    let run = |args: &'static [&'static str]| tether(dir, args, env);
    expect(
        t.push("validate", run(&["validate", "org"]).await),
        0,
        "validate",
    );
    expect(
        t.push("test-connection", run(&["test-connection", "org"]).await),
        0,
        "test-connection",
    );
    // Signs in to Salesforce to list the members: its output goes to an admin's terminal.
    expect(
        t.push(
            "setup exchange --from-salesforce",
            run(&["setup", "exchange", "--from-salesforce", "org"]).await,
        ),
        0,
        "setup exchange --from-salesforce",
    );
    let failing = tether(dir, &["test-connection", "org"], wrong).await;
    expect(
        t.push("test-connection (wrong credential)", failing),
        1,
        "test-connection with a wrong credential",
    );
    // A rep whose mailbox cannot be read is a warning in the plan, not a failure.
    let failing = tether(dir, &["plan", "org"], wrong).await;
    t.push("plan (wrong credential)", failing);
    for args in [
        &["plan", "org"][..],
        &["plan", "org", "--format", "markdown"],
        &["plan", "org", "--format", "json"],
        &["plan", "org", "--detail", "--show-values"],
        &[
            "plan",
            "org",
            "--detail",
            "--show-values",
            "--format",
            "markdown",
        ],
        &[
            "plan",
            "org",
            "--detail",
            "--show-values",
            "--format",
            "json",
        ],
    ] {
        let out = tether(dir, args, env).await;
        expect(t.push(&args.join(" "), out), 0, &args.join(" "));
    }
    expect(
        t.push("apply", run(&["apply", "org", "--auto-approve"]).await),
        0,
        "apply",
    );
    edit();
    for args in [
        &["plan", "org", "--detail", "--show-values"][..],
        &["plan", "org", "--detail", "--format", "markdown"],
        &[
            "plan",
            "org",
            "--detail",
            "--show-values",
            "--format",
            "json",
        ],
    ] {
        let out = tether(dir, args, env).await;
        expect(t.push(&args.join(" "), out), 0, &args.join(" "));
    }
    // A saved plan, and applying it.
    std::fs::create_dir_all(dir.join("plans")).unwrap();
    for args in [
        &[
            "plan",
            "org",
            "--detail",
            "--show-values",
            "--out",
            "plans/edit.tfplan",
        ][..],
        &["apply", "plans/edit.tfplan"],
    ] {
        let out = tether(dir, args, env).await;
        expect(t.push(&args.join(" "), out), 0, &args.join(" "));
    }
    let once = tether(
        dir,
        &["run", "org", "--once", "--log-file", "logs/run.log"],
        env,
    )
    .await;
    expect(t.push("run --once --log-file", once), 0, "run --once");
    for args in [
        &["status", "org"][..],
        &["status", "org", "--format", "json"],
        &["errors", "org"],
        &["errors", "org", "--format", "csv"],
        &["errors", "org", "--format", "json"],
        &["reset", REP, "--config", "org"],
        &["run", "org", "--once"],
        &["status", "org", "--user", REP],
    ] {
        let out = tether(dir, args, env).await;
        expect(t.push(&args.join(" "), out), 0, &args.join(" "));
    }
    let failing = tether(dir, &["run", "org", "--once"], wrong).await;
    t.push("run --once (wrong credential)", failing);
    t
}

/// Scans everything one org left behind; returns the hits and checks the scan had matter.
fn scan_all(dir: &Path, t: &Transcript, needles: &Needles) -> Vec<String> {
    let state = dir.join("org/.tether/state.db");
    let key = Secret::new(signing_key(&state));
    let mut hits = t.hits(needles);
    let mut with_key = Needles::new();
    with_key.add("plan-signing key", key.expose());
    hits.extend(t.hits(&with_key));
    for file in files_under(&dir.join("logs")) {
        let bytes = std::fs::read(&file).unwrap();
        let place = file.display().to_string();
        hits.extend(needles.scan(&place, &bytes));
        hits.extend(with_key.scan(&place, &bytes));
    }
    let plans = files_under(&dir.join("plans"));
    assert!(!plans.is_empty(), "a plan file was saved");
    for file in plans {
        let bytes = std::fs::read(&file).unwrap();
        let place = file.display().to_string();
        hits.extend(needles.scan(&place, &bytes));
        hits.extend(with_key.scan(&place, &bytes));
    }
    // The state: raw bytes of the database and of any journal or lock beside it.
    let state_files = files_under(&dir.join("org/.tether"));
    assert!(state_files.contains(&state), "{state_files:?}");
    for file in state_files {
        hits.extend(needles.scan(&file.display().to_string(), &std::fs::read(&file).unwrap()));
    }
    // The scan had something to look at: HTTP calls logged at debug, without headers.
    let log = std::fs::read_to_string(dir.join("logs/tether.log")).unwrap();
    for expected in [
        "EWS request",
        "path=\"/EWS/Exchange.asmx\"",
        "Salesforce request",
        "/services/oauth2/token",
        "status=200",
        "state transaction committed",
        "cycle finished",
    ] {
        assert!(log.contains(expected), "`{expected}` not logged:\n{log}");
    }
    let run_log = std::fs::read_to_string(dir.join("logs/run.log")).unwrap();
    assert!(run_log.contains("cycle finished"), "{run_log}");
    assert!(
        !log.contains("Authorization") && !log.contains("Bearer"),
        "{log}"
    );
    hits
}

/// Both emulators: the rep's mailbox (after `credentials` adds the Exchange account or app),
/// the rep in Salesforce and one of their contacts, whose id is returned.
async fn emulators(
    credentials: impl FnOnce(&exchange::RunningEmulator),
    sf_options: salesforce::EmulatorOptions,
) -> (
    exchange::RunningEmulator,
    salesforce::RunningEmulator,
    String,
) {
    let ews = exchange::Emulator::start(exchange::EmulatorOptions::default())
        .await
        .unwrap();
    credentials(&ews);
    let sf = salesforce::Emulator::start(sf_options).await.unwrap();
    let contact = emulated::add_rep_with_a_contact(&ews, &sf);
    (ews, sf, contact)
}

fn sales() -> ImpersonationScope {
    ImpersonationScope::Filter("Department -eq 'Sales'".into())
}

#[test]
fn the_scanner_finds_a_planted_secret() {
    let scratch = Scratch::new();
    let password = unique("planted-password");
    let mut needles = Needles::new();
    needles.add_basic("password", SVC, &password);
    needles.add_pem("private key", JWT_KEY);
    let raw = scratch.write("control/raw.log", format!("2026 DEBUG x={password} y\n"));
    let basic = scratch.write(
        "control/basic.txt",
        format!(
            "Authorization: Basic {}\n",
            base64(&format!("{SVC}:{password}"))
        ),
    );
    let key_line = JWT_KEY.lines().nth(5).unwrap();
    let pem = scratch.write("control/key.txt", format!("...{key_line}..."));
    let clean = scratch.write("control/clean.txt", "nothing to see: planted-password\n");
    let found = |p: &PathBuf| needles.scan("control", &std::fs::read(p).unwrap());
    assert_eq!(found(&raw), ["password in control"]);
    assert_eq!(found(&basic), ["password (Basic credentials) in control"]);
    assert_eq!(found(&pem).len(), 1, "{:?}", found(&pem));
    assert!(found(&clean).is_empty());
}

/// Org A: Exchange service account (password), Salesforce client credentials (secret).
#[tokio::test(flavor = "multi_thread")]
async fn no_password_or_client_secret_leaks_from_any_command() {
    let password = unique("Ews-Pa55w0rd");
    let wrong_password = unique("Wrong-Pa55w0rd");
    let sf_secret = unique("sf-client-secret");
    let mut options = salesforce::EmulatorOptions::default();
    options.app.client_secret = tether_emulators::secret::Secret::new(sf_secret.clone());
    let (ews, sf, contact) = emulators(
        |ews| ews.add_service_account(SVC, &password, sales()),
        options,
    )
    .await;
    let scratch = Scratch::new();
    scratch.write(
        "org/tether.yaml",
        emulated::config(&ews.ews_url(), sf.url(), "", ONE_REP_SYNC),
    );
    let env = |pw: &str| {
        vec![
            ("TEST_EWS_PASSWORD".to_string(), pw.to_string()),
            ("TEST_SF_SECRET".to_string(), sf_secret.clone()),
        ]
    };
    let handle = sf.handle().clone();
    let t = every_command(
        scratch.dir.path(),
        &env(&password),
        &env(&wrong_password),
        || {
            handle
                .update("Contact", &contact, json!({"Title": "Head of Sales"}))
                .unwrap();
        },
    )
    .await;
    // The edit made the later plans show an update, values and all.
    let detailed = &t
        .outputs
        .iter()
        .rfind(|(w, _)| w == "plan org --detail --show-values")
        .unwrap()
        .1;
    assert!(
        detailed.stdout.contains("\"Head of Sales\""),
        "{}",
        detailed.stdout
    );

    let tokens = sf.handle().issued_tokens();
    assert!(!tokens.is_empty(), "the emulator issued access tokens");
    let mut needles = Needles::new();
    needles.add_basic("Exchange password", SVC, &password);
    needles.add_basic("wrong Exchange password", SVC, &wrong_password);
    needles.add("Salesforce client secret", &sf_secret);
    for token in &tokens {
        needles.add("Salesforce access token", token);
    }
    let hits = scan_all(scratch.dir.path(), &t, &needles);
    assert!(hits.is_empty(), "secrets found:\n{}", hits.join("\n"));
}

/// Org B: Exchange app registration (client secret, bearer tokens), Salesforce JWT bearer
/// (private key).
#[tokio::test(flavor = "multi_thread")]
async fn no_app_secret_private_key_or_token_leaks_from_any_command() {
    let app_secret = unique("ews-app-secret");
    let wrong_secret = unique("wrong-app-secret");
    let mut options = salesforce::EmulatorOptions::default();
    options.app.jwt_certificate_pem = Some(JWT_CERT.into());
    let (ews, sf, contact) =
        emulators(|ews| ews.add_app(EWS_APP, &app_secret, sales()), options).await;
    let scratch = Scratch::new();
    scratch.write("org/keys/sf.pem", JWT_KEY);
    scratch.write(
        "org/tether.yaml",
        format!(
            "version: 1
org: {{ name: corp, kind: production }}
connections:
  exchange:
    method: oauth2
    tenant: corp.onmicrosoft.com
    additional_domains: [corp.com]
    client_id: {EWS_APP}
    client_secret: ${{env:TEST_EWS_APP_SECRET}}
    token_url: {}
    ews_url: {}
  salesforce:
    instance_url: {sf}
    login_url: {sf}
    auth:
      flow: jwt_bearer
      client_id: {SF_CLIENT_ID}
      username: integration@tether.test
      private_key: ${{file:keys/sf.pem}}
sync_configurations:
{ONE_REP_SYNC}",
            ews.token_url(),
            ews.ews_url(),
            sf = sf.url()
        ),
    );
    let env = |secret: &str| vec![("TEST_EWS_APP_SECRET".to_string(), secret.to_string())];
    let handle = sf.handle().clone();
    let t = every_command(
        scratch.dir.path(),
        &env(&app_secret),
        &env(&wrong_secret),
        || {
            handle
                .update("Contact", &contact, json!({"Title": "Buyer"}))
                .unwrap();
        },
    )
    .await;

    let ews_tokens = ews.issued_tokens();
    let sf_tokens = sf.handle().issued_tokens();
    assert!(
        !ews_tokens.is_empty() && !sf_tokens.is_empty(),
        "tokens were issued"
    );
    let mut needles = Needles::new();
    needles.add("Exchange app secret", &app_secret);
    needles.add("wrong Exchange app secret", &wrong_secret);
    needles.add_pem("Salesforce private key", JWT_KEY);
    for token in &ews_tokens {
        needles.add("Exchange access token", token);
    }
    for token in &sf_tokens {
        needles.add("Salesforce access token", token);
    }
    let hits = scan_all(scratch.dir.path(), &t, &needles);
    assert!(hits.is_empty(), "secrets found:\n{}", hits.join("\n"));
}
