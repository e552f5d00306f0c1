//! Transport rules end to end: both emulators serve https with a certificate from a private
//! CA made for the test. With `ca_file` naming that CA, `test-connection` and `apply` work;
//! without it, or with another CA, they fail at once saying the certificate is not trusted
//! and to set `ca_file` (certificate verification cannot be turned off). Plain http is
//! refused for any host but loopback, for both connections.

use crate::common;
use crate::common::{PASSWORD, SF_SECRET, SVC};
use crate::emulated::{self, ONE_REP_SYNC, REP};

use common::{Output, Scratch, tether_with_env};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::time::{Duration, Instant};
use tether_emulators::exchange::{self, ImpersonationScope};
use tether_emulators::salesforce;
use tether_emulators::tls::TlsIdentity;

/// A private CA: its certificate (PEM) and what it takes to sign server certificates.
struct Ca {
    pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        cert,
        key,
    }
}

/// A server certificate for 127.0.0.1 and localhost, signed by `ca`.
fn server_identity(ca: &Ca) -> TlsIdentity {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "emulator");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    TlsIdentity {
        cert_chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

struct Org {
    ews: exchange::RunningEmulator,
    sf: salesforce::RunningEmulator,
    scratch: Scratch,
}

/// Both emulators over https with certificates from `issuer`; a configuration in `org/`
/// whose connections name `ca_file` (a path under `org/`) when given.
async fn start(issuer: &Ca, ca_file: Option<(&str, &str)>) -> Org {
    let ews = exchange::Emulator::start(exchange::EmulatorOptions {
        tls: Some(server_identity(issuer)),
        ..Default::default()
    })
    .await
    .unwrap();
    ews.add_service_account(
        SVC,
        PASSWORD,
        ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    );
    let sf = salesforce::Emulator::start(salesforce::EmulatorOptions {
        tls: Some(server_identity(issuer)),
        ..Default::default()
    })
    .await
    .unwrap();
    emulated::add_rep_with_a_contact(&ews, &sf);
    assert!(ews.ews_url().starts_with("https://127.0.0.1:"));
    assert!(sf.url().starts_with("https://127.0.0.1:"));
    let scratch = Scratch::new();
    let ca_line = match ca_file {
        Some((path, pem)) => {
            scratch.write(&format!("org/{path}"), pem);
            format!("\n    ca_file: {path}")
        }
        None => String::new(),
    };
    scratch.write(
        "org/tether.yaml",
        emulated::config(&ews.ews_url(), sf.url(), &ca_line, ONE_REP_SYNC),
    );
    Org { ews, sf, scratch }
}

impl Org {
    async fn tether(&self, args: &[&str]) -> Output {
        let dir = self.scratch.dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tether_with_env(
                &args,
                &dir,
                &[
                    ("TEST_EWS_PASSWORD", PASSWORD),
                    ("TEST_SF_SECRET", SF_SECRET),
                ],
            )
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_the_private_ca_in_ca_file_connects_and_applies() {
    let ca = ca("tether test CA");
    let org = start(&ca, Some(("certs/corp-ca.pem", &ca.pem))).await;
    let check = org.tether(&["test-connection", "org"]).await;
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(
        check
            .stdout
            .contains("PASS Exchange: service account credentials: accepted"),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("PASS Salesforce: authentication (client_credentials): signed in"),
        "{}",
        check.stdout
    );
    let apply = org.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply
            .stdout
            .contains("Applied: 1 records written, 0 failed."),
        "{}",
        apply.stdout
    );
    assert!(org.ews.find_folder(REP, "Salesforce_Sync").is_some());
    let again = org.tether(&["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(org.sf.handle().records("Contact").len(), 1);
}

/// Both connections fail, each saying the certificate is not trusted and to set `ca_file`,
/// without retrying (a certificate does not become trusted by waiting).
fn assert_untrusted(out: &Output, started: Instant) {
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 0, "{text}");
    for side in ["FAIL Exchange", "FAIL Salesforce"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(side))
            .unwrap_or_else(|| panic!("no `{side}` line in:\n{text}"));
        assert!(line.contains("certificate is not trusted"), "{line}");
        assert!(line.contains("ca_file"), "{line}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "an untrusted certificate must not be retried ({:?})",
        started.elapsed()
    );
    for secret in [PASSWORD, SF_SECRET] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_without_ca_file_is_refused_with_what_to_do() {
    let ca = ca("tether test CA");
    let org = start(&ca, None).await;
    let started = Instant::now();
    let out = org.tether(&["test-connection", "org"]).await;
    assert_untrusted(&out, started);
    let apply = org.tether(&["apply", "org", "--auto-approve"]).await;
    assert_ne!(apply.code, 0);
    let text = format!("{}{}", apply.stdout, apply.stderr);
    assert!(text.contains("certificate is not trusted"), "{text}");
    assert!(text.contains("ca_file"), "{text}");
    assert!(org.ews.find_folder(REP, "Salesforce_Sync").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_another_ca_in_ca_file_is_refused() {
    let ca_used = ca("tether test CA");
    let other = ca("some other CA");
    let org = start(&ca_used, Some(("certs/other-ca.pem", &other.pem))).await;
    let started = Instant::now();
    let out = org.tether(&["test-connection", "org"]).await;
    assert_untrusted(&out, started);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_is_refused_off_loopback_for_both_connections() {
    let scratch = Scratch::new();
    scratch.write(
        "org/tether.yaml",
        format!(
            r#"version: 1
org: {{ name: corp, kind: production }}
connections:
  exchange:
    method: service_account
    ews_url: http://mail.corp.example/EWS/Exchange.asmx
    username: {SVC}
    password: ${{env:TEST_EWS_PASSWORD}}
  salesforce:
    instance_url: http://corp.my.salesforce.example
    login_url: http://login.salesforce.example
    auth:
      flow: client_credentials
      client_id: 3MVG9tether.sandbox.client
      client_secret: ${{env:TEST_SF_SECRET}}
sync_configurations:
  - name: Reps
    members: {{ users: [{REP}] }}
    contacts: {{ direction: both, conflict: salesforce_wins, scope: users_records }}
"#
        ),
    );
    let out = tether_with_env(
        &["test-connection", "org"],
        scratch.dir.path(),
        &[
            ("TEST_EWS_PASSWORD", PASSWORD),
            ("TEST_SF_SECRET", SF_SECRET),
        ],
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 0, "{text}");
    for url in [
        "http://mail.corp.example/EWS/Exchange.asmx",
        "http://corp.my.salesforce.example/",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(url))
            .unwrap_or_else(|| panic!("no message names {url}:\n{text}"));
        assert!(line.contains("plain http"), "{line}");
        assert!(line.contains("use https"), "{line}");
    }
}

/// A refused connection names the settings that say where tether connects, at the file, line
/// and column they are written at, and says what failed beneath it.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_salesforce_connection_names_the_settings_file_line_and_column() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let scratch = Scratch::new();
    let text = emulated::config(
        &format!("{closed}/EWS/Exchange.asmx"),
        &closed,
        "",
        ONE_REP_SYNC,
    );
    scratch.write("org/tether.yaml", &text);
    let out = tether_with_env(
        &["plan", "org"],
        scratch.dir.path(),
        &[
            ("TEST_EWS_PASSWORD", PASSWORD),
            ("TEST_SF_SECRET", SF_SECRET),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let at = |key: &str| {
        let (line, column) = common::position_of(&text, &format!("{key}: {closed}"));
        format!("org/tether.yaml:{line}:{}", column + key.len() as u64 + 2)
    };
    for expected in [
        "error: Salesforce could not be read; nothing was planned\n".to_string(),
        "\nCaused by: Salesforce unreachable after ".to_string(),
        format!("connections.salesforce.login_url ({})", at("login_url")),
        format!(
            "connections.salesforce.instance_url ({})",
            at("instance_url")
        ),
    ] {
        assert!(
            out.stderr.contains(&expected),
            "no `{expected}` in:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("\nHint: "), "{}", out.stderr);
}

/// A connection that cannot be opened from its settings names the section at its file, line
/// and column (here a `ca_file` that does not exist).
#[test]
fn a_connection_that_cannot_be_opened_names_its_settings_file_line_and_column() {
    let scratch = Scratch::new();
    let text = emulated::config(
        "https://127.0.0.1:9/EWS/Exchange.asmx",
        "https://127.0.0.1:9",
        "\n    ca_file: certs/missing.pem",
        ONE_REP_SYNC,
    );
    scratch.write("org/tether.yaml", &text);
    let out = tether_with_env(
        &["plan", "org"],
        scratch.dir.path(),
        &[
            ("TEST_EWS_PASSWORD", PASSWORD),
            ("TEST_SF_SECRET", SF_SECRET),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (line, column) = common::position_of(&text, "exchange:");
    let expected = format!("error: connections.exchange (org/tether.yaml:{line}:{column}): ");
    assert!(
        out.stderr.starts_with(&expected) && out.stderr.contains("certs/missing.pem"),
        "no `{expected}` in:\n{}",
        out.stderr
    );
}
