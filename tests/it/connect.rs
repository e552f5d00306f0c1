//! From a YAML configuration to working clients, with secrets resolved only at connect time.

use crate::common;

use common::Scratch;
use std::path::PathBuf;
use tether_emulators::salesforce::{Emulator, EmulatorOptions};

fn config_for(url: &str, secret_ref: &str) -> String {
    format!(
        r#"version: 1
org: {{ name: acme, kind: production }}
connections:
  exchange:
    method: service_account
    ews_url: http://127.0.0.1:1/EWS/Exchange.asmx
    username: svc@acme.com
    password: ${{file:secrets/ews}}
  salesforce:
    instance_url: {url}
    login_url: {url}
    auth:
      flow: client_credentials
      client_id: 3MVG9tether.sandbox.client
      client_secret: {secret_ref}
"#
    )
}

fn load(s: &Scratch) -> (tether::config::model::Config, PathBuf) {
    let v = tether::config::validate(&[s.path("org")], true);
    assert!(v.is_valid(), "{}", v.render_human());
    let (unit, config) = v.units.into_iter().next().unwrap();
    (config.unwrap(), unit.home)
}

#[tokio::test]
async fn salesforce_client_from_configuration_queries_the_org() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let s = Scratch::new();
    s.write("org/secrets/ews", "unused\n");
    s.write("org/secrets/sf", "sandbox-client-secret\n");
    s.write(
        "org/tether.yaml",
        config_for(emu.url(), "${file:secrets/sf}"),
    );
    let (config, home) = load(&s);
    let client = tether::connect::salesforce(&config, &home).unwrap();
    let rows = client
        .query_collect("SELECT Id FROM Contact")
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert_eq!(client.total_calls(), 2, "one token call, one query page");
}

#[tokio::test]
async fn wrong_secret_is_an_auth_error_that_does_not_show_it() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let s = Scratch::new();
    s.write("org/secrets/ews", "unused\n");
    s.write("org/secrets/sf", "Wrong-Secret-4711\n");
    s.write(
        "org/tether.yaml",
        config_for(emu.url(), "${file:secrets/sf}"),
    );
    let (config, home) = load(&s);
    let client = tether::connect::salesforce(&config, &home).unwrap();
    let err = client
        .query_collect("SELECT Id FROM Contact")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("client_credentials"), "{text}");
    assert!(!text.contains("Wrong-Secret-4711"), "{text}");
}

#[test]
fn missing_secret_names_the_setting() {
    let s = Scratch::new();
    s.write("org/secrets/ews", "unused\n");
    s.write(
        "org/tether.yaml",
        config_for("https://acme.my.salesforce.com", "${file:secrets/none}"),
    );
    let v = tether::config::validate(&[s.path("org")], false);
    let (unit, config) = v.units.into_iter().next().unwrap();
    let err = tether::connect::salesforce(&config.unwrap(), &unit.home).unwrap_err();
    assert_eq!(err.setting, "connections.salesforce.auth.client_secret");
    assert!(
        err.message.starts_with("secret file `")
            && err.message.ends_with("org/secrets/none` does not exist"),
        "{err}"
    );
}

/// `connections.salesforce.change_lookback_minutes` sets how far back change reads start
/// again; without it, the connector's default (15 minutes) applies.
#[test]
fn change_lookback_comes_from_the_configuration_or_the_default() {
    let s = Scratch::new();
    s.write("org/secrets/ews", "x");
    s.write("org/secrets/sf", "x");
    let text = config_for("https://acme.my.salesforce.com", "${file:secrets/sf}");
    s.write("org/tether.yaml", &text);
    let (config, _) = load(&s);
    assert_eq!(
        tether::connect::change_lookback(&config),
        tether::salesforce::connector::DEFAULT_CHANGE_LOOKBACK
    );
    assert_eq!(
        tether::salesforce::connector::DEFAULT_CHANGE_LOOKBACK,
        chrono::Duration::minutes(15)
    );
    let text = text.replace(
        "    auth:\n",
        "    change_lookback_minutes: 30\n    auth:\n",
    );
    s.write("org/tether.yaml", &text);
    let (config, _) = load(&s);
    assert_eq!(
        tether::connect::change_lookback(&config),
        chrono::Duration::minutes(30)
    );
}
