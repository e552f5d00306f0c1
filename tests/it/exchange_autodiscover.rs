//! Autodiscover: POX at the domain then autodiscover.<domain>, redirects with a hop limit,
//! SOAP GetUserSettings, caching per domain.

use crate::ews;

use ews::*;
use std::sync::Arc;
use tether::exchange::client::{AutodiscoverOptions, HostResolver};
use tether::exchange::{Auth, Endpoint, EwsClient, EwsError, ExchangeOptions, FolderRef};
use tether::secret::Secret;
use url::Url;

/// Hosts of corp.com and corp.net resolve to the emulator; `dead` hosts to a closed port.
fn resolver(emu_url: &str, dead: &'static [&'static str]) -> HostResolver {
    let base = format!("{emu_url}/");
    Arc::new(move |host: &str| {
        if dead.contains(&host) {
            Url::parse("http://127.0.0.1:9/").ok()
        } else {
            Url::parse(&base).ok()
        }
    })
}

fn ad_options(
    emu_url: &str,
    email: &str,
    dead: &'static [&'static str],
    max_hops: u32,
) -> ExchangeOptions {
    let mut o = ExchangeOptions::new(
        Endpoint::Autodiscover {
            address: email.into(),
        },
        Auth::Basic {
            username: SVC.into(),
            password: Secret::new(PASSWORD),
        },
    );
    o.max_retries = 0;
    o.autodiscover = AutodiscoverOptions {
        max_hops,
        resolver: Some(resolver(emu_url, dead)),
    };
    o
}

#[tokio::test]
async fn finds_the_ews_url_through_a_redirect_and_caches_it() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    // corp.net users live in corp.com's organisation.
    emu.autodiscover_redirect("corp.net", CELIA);
    // corp.net itself does not answer: the client falls back to autodiscover.corp.net.
    let c = EwsClient::new(
        ad_options(emu.url(), "celia@corp.net", &["corp.net"], 10),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let url = c.ews_url().await.unwrap();
    assert_eq!(url.as_str(), emu.ews_url());
    // Three POX requests: corp.net (refused), autodiscover.corp.net (redirect to
    // corp.com), corp.com (settings).
    assert_eq!(c.calls().get("Autodiscover"), Some(&3));
    // Cached per domain: corp.net is not looked up again.
    c.autodiscover("someone.else@corp.net").await.unwrap();
    assert_eq!(c.calls().get("Autodiscover"), Some(&3));
    // A rep in corp.com: one lookup for that domain, then EWS there.
    c.get_folder(CELIA, &FolderRef::contacts()).await.unwrap();
    c.get_folder(CELIA, &FolderRef::calendar()).await.unwrap();
    assert_eq!(c.calls().get("Autodiscover"), Some(&4));
}

#[tokio::test]
async fn gives_up_after_the_hop_limit_with_a_clear_error() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    emu.autodiscover_redirect("a.example", "x@b.example");
    emu.autodiscover_redirect("b.example", "x@a.example");
    let c = EwsClient::new(
        ad_options(emu.url(), "x@a.example", &[], 5),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let err = c.ews_url().await.unwrap_err();
    assert!(matches!(err, EwsError::Autodiscover(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("gave up after 5 redirects"), "{msg}");
    assert_eq!(c.calls().get("Autodiscover"), Some(&6));
}

async fn emulator_without_pox(
    clock: &tether::clock::ManualClock,
) -> tether_emulators::exchange::RunningEmulator {
    use tether_emulators::exchange::{Emulator, EmulatorOptions, ImpersonationScope};
    let emu = Emulator::start(EmulatorOptions {
        clock: Some(Arc::new(clock.clone())),
        autodiscover_pox: false,
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    emu.add_service_account(SVC, PASSWORD, ImpersonationScope::All);
    emu.add_mailbox(CELIA, Some("Sales"));
    emu.add_mailbox(BOB, Some("Sales"));
    emu
}

#[tokio::test]
async fn falls_back_to_soap_get_user_settings() {
    let clock = clock();
    let emu = emulator_without_pox(&clock).await;
    let c = EwsClient::new(
        ad_options(emu.url(), CELIA, &[], 3),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let url = c.ews_url().await.unwrap();
    assert_eq!(url.as_str(), emu.ews_url());
    // Two POX attempts (404), then SOAP at autodiscover.<domain>.
    assert_eq!(c.calls().get("Autodiscover"), Some(&3));
}

#[tokio::test]
async fn soap_redirect_address_is_followed() {
    let clock = clock();
    let emu = emulator_without_pox(&clock).await;
    emu.autodiscover_redirect("corp.org", BOB);
    let c = EwsClient::new(
        ad_options(emu.url(), "rep@corp.org", &[], 4),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let url = c.ews_url().await.unwrap();
    assert_eq!(url.as_str(), emu.ews_url());
}

#[tokio::test]
async fn unknown_address_is_a_clear_error() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let c = EwsClient::new(
        ad_options(emu.url(), CELIA, &[], 3),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let err = c.autodiscover("nobody@unknown.example").await.unwrap_err();
    assert!(matches!(err, EwsError::Autodiscover(_)), "{err:?}");
    assert!(err.to_string().contains("nobody@unknown.example"), "{err}");
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn bare_domain_discovers_per_rep_domain_and_caches() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let c = EwsClient::new(
        ad_options(emu.url(), "corp.com", &[], 3),
        Arc::new(clock.clone()),
    )
    .unwrap();
    // No mailbox yet: a bare domain cannot be looked up.
    assert!(matches!(c.ews_url().await, Err(EwsError::Config(_))));
    c.get_folder(CELIA, &FolderRef::contacts()).await.unwrap();
    c.get_folder(BOB, &FolderRef::contacts()).await.unwrap();
    assert_eq!(
        c.calls().get("Autodiscover"),
        Some(&1),
        "one lookup for corp.com"
    );
    assert_eq!(c.calls().get("GetFolder"), Some(&2));
}

#[tokio::test]
async fn pox_redirect_url_is_followed() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    emu.autodiscover_redirect_url("corp.com");
    let c = EwsClient::new(
        ad_options(emu.url(), CELIA, &[], 3),
        Arc::new(clock.clone()),
    )
    .unwrap();
    assert_eq!(c.ews_url().await.unwrap().as_str(), emu.ews_url());
    assert_eq!(c.calls().get("Autodiscover"), Some(&2));
}
