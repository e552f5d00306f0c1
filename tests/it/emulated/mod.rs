//! Both emulators and a configuration pointing at them, for tests that run the `tether`
//! binary against a running org: a service account that may impersonate the Sales
//! department, and a connected app for the client credentials flow.
#![allow(dead_code)]

use crate::common::{Output, Scratch, tether_with_env};
use tether::sandbox::exchange::{self, ImpersonationScope};
use tether::sandbox::salesforce;

pub const SVC: &str = "svc-tether@corp.com";
pub const PASSWORD: &str = "Ews-Pa55w0rd-7431";
pub const SF_SECRET: &str = "sandbox-client-secret";

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
        format!(
            r#"version: 1
org: {{ name: corp, kind: production }}
connections:
  exchange:
    method: service_account
    ews_url: {}
    username: {SVC}
    password: ${{env:TEST_EWS_PASSWORD}}
  salesforce:
    instance_url: {sf}
    login_url: {sf}
    auth:
      flow: client_credentials
      client_id: 3MVG9tether.sandbox.client
      client_secret: ${{env:TEST_SF_SECRET}}
sync_configurations:
{sync_configurations}"#,
            ews.ews_url(),
            sf = sf.url()
        ),
    );
    Org { ews, sf, scratch }
}

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
