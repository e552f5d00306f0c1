//! Shared test setup: an emulator with a service account and reps, a client on a manual
//! clock, and schema validation of recorded bodies with xmllint.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use tether::clock::ManualClock;
use tether::exchange::{Auth, Endpoint, EwsClient, ExchangeOptions};
use tether::secret::Secret;
use tether_emulators::exchange::{Emulator, EmulatorOptions, ImpersonationScope, RunningEmulator};

/// The emulator keeps its own store model (it shares no code with the client it judges);
/// both name their fields alike, so a test builds a value once and hands the other side
/// serde's copy of it.
pub fn bridge<T: serde::Serialize, U: serde::de::DeserializeOwned>(value: T) -> U {
    serde_json::from_value(serde_json::to_value(value).expect("serializable"))
        .expect("the emulator's model takes the client's fields")
}

pub use crate::common::{PASSWORD, SVC};
pub const CELIA: &str = "celia.kung@corp.com";
pub const BOB: &str = "bob.lee@corp.com";
pub const FINANCE: &str = "fin.person@corp.com";

pub fn schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/ews-schema/messages.xsd")
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn clock() -> ManualClock {
    ManualClock::new(t("2026-01-05T09:00:00Z"))
}

/// Emulator with mailboxes for two Sales reps and one Finance user, and a service account
/// that may impersonate `Department -eq 'Sales'`.
pub async fn emulator(clock: &ManualClock, validate_requests: bool) -> RunningEmulator {
    let emu = Emulator::start(EmulatorOptions {
        clock: Some(Arc::new(clock.clone())),
        schema: validate_requests.then(schema),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    emu.add_service_account(
        SVC,
        PASSWORD,
        ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    );
    emu.add_mailbox(CELIA, Some("Sales"));
    emu.add_mailbox(BOB, Some("Sales"));
    emu.add_mailbox(FINANCE, Some("Finance"));
    emu
}

pub fn options(emu: &RunningEmulator) -> ExchangeOptions {
    ExchangeOptions::new(
        Endpoint::Url(emu.ews_url().parse().unwrap()),
        Auth::Basic {
            username: SVC.into(),
            password: Secret::new(PASSWORD),
        },
    )
}

pub fn client(emu: &RunningEmulator, clock: &ManualClock) -> EwsClient {
    EwsClient::new(options(emu), Arc::new(clock.clone())).unwrap()
}

/// Validates every body against messages.xsd in one xmllint run; panics listing failures.
pub fn validate_all(bodies: &[String]) {
    assert!(!bodies.is_empty(), "nothing to validate");
    let dir = std::env::temp_dir().join(format!(
        "tether-xsd-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        let p = dir.join(format!("body{i:04}.xml"));
        std::fs::write(&p, b).unwrap();
        files.push(p);
    }
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .args(&files)
        .output()
        .expect("xmllint is installed (apt-get install libxml2-utils)");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "schema validation failed:\n{}",
        stderr
            .lines()
            .filter(|l| !l.ends_with(" validates"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
