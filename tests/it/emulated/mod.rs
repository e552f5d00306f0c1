//! Both emulators and a configuration pointing at them, for tests that run the `tether`
//! binary against a running org: a service account that may impersonate the Sales
//! department, and a connected app for the client credentials flow.
#![allow(dead_code)]

use crate::common::{Output, Scratch, tether_with_env};
use tether_emulators::exchange::{self, ImpersonationScope};
use tether_emulators::salesforce;

pub use crate::common::{PASSWORD, SF_CLIENT_ID, SF_SECRET, SVC};

/// The rep of the single-rep orgs.
pub const REP: &str = "celia.kung@corp.com";

pub struct Org {
    pub ews: exchange::RunningEmulator,
    pub sf: salesforce::RunningEmulator,
    pub scratch: Scratch,
}

/// Starts the emulators and writes `org/tether.yaml` with `sync_configurations` as given.
pub async fn start(sf_options: salesforce::EmulatorOptions, sync_configurations: &str) -> Org {
    start_with(
        exchange::EmulatorOptions::default(),
        sf_options,
        sync_configurations,
    )
    .await
}

/// `start`, with the Exchange emulator's options too.
pub async fn start_with(
    ews_options: exchange::EmulatorOptions,
    sf_options: salesforce::EmulatorOptions,
    sync_configurations: &str,
) -> Org {
    let ews = exchange::Emulator::start(ews_options).await.unwrap();
    ews.add_service_account(
        SVC,
        PASSWORD,
        ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    );
    let sf = salesforce::Emulator::start(sf_options).await.unwrap();
    let scratch = Scratch::new();
    scratch.write(
        "org/tether.yaml",
        config(&ews.ews_url(), sf.url(), "", sync_configurations),
    );
    Org { ews, sf, scratch }
}

/// A configuration for Exchange at `ews_url` through the service account and Salesforce at
/// `sf_url` through client credentials, the secrets read from `TEST_EWS_PASSWORD` and
/// `TEST_SF_SECRET`; `connection_lines` (e.g. `ca_file`, indented for a connection) go into
/// both connections, `sync_configurations` is the list under that key.
pub fn config(
    ews_url: &str,
    sf_url: &str,
    connection_lines: &str,
    sync_configurations: &str,
) -> String {
    format!(
        r#"version: 1
org: {{ name: corp, kind: production }}
connections:
  exchange:
    method: service_account
    ews_url: {ews_url}
    username: {SVC}
    password: ${{env:TEST_EWS_PASSWORD}}{connection_lines}
  salesforce:
    instance_url: {sf_url}
    login_url: {sf_url}{connection_lines}
    auth:
      flow: client_credentials
      client_id: {SF_CLIENT_ID}
      client_secret: ${{env:TEST_SF_SECRET}}
sync_configurations:
{sync_configurations}"#
    )
}

/// The one rep of the single-rep orgs: a Sales mailbox, a Salesforce user and one of their
/// contacts, whose id is returned.
pub fn add_rep_with_a_contact(
    ews: &exchange::RunningEmulator,
    sf: &salesforce::RunningEmulator,
) -> String {
    ews.add_mailbox(REP, Some("Sales"));
    let rep_id = sf
        .handle()
        .add_user(REP, REP, "Celia Kung", "Sales User", "Europe/Berlin");
    sf.handle()
        .insert(
            "Contact",
            serde_json::json!({"FirstName": "Ana", "LastName": "Diaz", "Email": "ana@customer.com", "OwnerId": rep_id}),
        )
        .unwrap()
}

/// The sync configuration of the single-rep orgs.
pub const ONE_REP_SYNC: &str = "  - name: Reps
    members: { users: [celia.kung@corp.com] }
    contacts: { direction: both, conflict: salesforce_wins, scope: users_records }
";

impl Org {
    /// Runs tether in the scratch directory with the org's secrets in the environment
    /// (`password` for Exchange), off the async runtime the emulators run on.
    pub async fn tether(&self, args: &[&str], password: &str) -> Output {
        let dir = self.scratch.dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tether_with_env(
                &args,
                &dir,
                &[
                    ("TEST_EWS_PASSWORD", &password),
                    ("TEST_SF_SECRET", SF_SECRET),
                ],
            )
        })
        .await
        .unwrap()
    }
}
