//! Malformed or hostile answers from a server are errors, never panics or hangs.

use crate::ews;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use ews::*;
use std::sync::Arc;
use std::time::Duration;
use tether::exchange::xml::{self, Limits};
use tether::exchange::{Auth, Endpoint, EwsClient, EwsError, ExchangeOptions, FolderRef};
use tether::secret::Secret;

/// A server that answers every POST with `body` and `status`.
async fn serve(status: u16, body: Arc<Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/EWS/Exchange.asmx",
        post(move || {
            let body = body.clone();
            async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("Content-Type", "text/xml; charset=utf-8")],
                    body.as_ref().clone(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/EWS/Exchange.asmx")
}

/// A client of a server that answers every request with `body`.
async fn client_answered(status: u16, body: Vec<u8>) -> EwsClient {
    let url = serve(status, Arc::new(body)).await;
    let mut o = ExchangeOptions::new(
        Endpoint::Url(url.parse().unwrap()),
        Auth::Basic {
            username: SVC.into(),
            password: Secret::new(PASSWORD),
        },
    );
    o.max_retries = 0;
    EwsClient::new(o, Arc::new(clock())).unwrap()
}

async fn answer(status: u16, body: Vec<u8>) -> EwsError {
    let c = client_answered(status, body).await;
    tokio::time::timeout(
        Duration::from_secs(60),
        c.get_folder(CELIA, &FolderRef::contacts()),
    )
    .await
    .expect("no hang")
    .expect_err("hostile answer must be an error")
}

const ENV_START: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages>"#;

#[tokio::test]
async fn truncated_answer_is_an_error() {
    let err = answer(200, ENV_START.as_bytes().to_vec()).await;
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
}

#[tokio::test]
async fn dtd_and_entity_expansion_are_refused() {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol2;</s:Body></s:Envelope>"#;
    let err = answer(200, laughs.as_bytes().to_vec()).await;
    assert!(
        matches!(&err, EwsError::Xml(m) if m.contains("DTD")),
        "{err:?}"
    );
    let external = r#"<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>"#;
    let err = answer(200, external.as_bytes().to_vec()).await;
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
}

#[tokio::test]
async fn hundred_megabytes_of_nesting_is_an_error() {
    let deep = "<a>".repeat(100 * 1024 * 1024 / 3).into_bytes();
    let started = std::time::Instant::now();
    // Straight into the parser: refused by size before any work.
    assert!(xml::parse(&deep, Limits::default()).is_err());
    // Under the size cap but absurdly deep: refused by depth.
    assert!(xml::parse(&deep[..3 * 1_000_000], Limits::default()).is_err());
    // From a server: the client stops reading at 32 MB.
    let err = answer(200, deep).await;
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn wrong_shapes_and_garbage_are_errors() {
    // Not SOAP at all.
    let err = answer(200, b"<html><body>Login</body></html>".to_vec()).await;
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
    // A 500 without a SOAP fault (a proxy's error page).
    let err = answer(500, b"Internal Server Error".to_vec()).await;
    assert!(matches!(err, EwsError::Http { status: 500, .. }), "{err:?}");
    // A response with no messages where one was expected.
    let empty =
        format!("{ENV_START}</m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>");
    let err = answer(200, empty.into_bytes()).await;
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
    // Invalid UTF-8 and binary noise.
    let err = answer(200, vec![0xff, 0xfe, 0x00, 0x3c, 0x80, 0x81]).await;
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
    // Prefixes bound to other namespaces are not EWS, however they are named.
    let fake = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:GetFolderResponse xmlns:m="urn:not-ews"><m:ResponseMessages/></m:GetFolderResponse></s:Body></s:Envelope>"#;
    let err = answer(200, fake.as_bytes().to_vec()).await;
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
}

#[tokio::test]
async fn every_truncation_of_a_real_answer_is_an_error_not_a_panic() {
    use tether::exchange::soap;
    // A real, rich answer from the emulator…
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let folder = emu.folder_id(CELIA, "contacts").unwrap();
    let mut c = tether_emulators::exchange::model::Contact {
        given_name: Some("Ada & <Co>".into()),
        notes: Some("ünïcödé ✓".into()),
        ..Default::default()
    };
    c.phones.insert("MobilePhone".into(), "1".into());
    let id = emu.put_contact(CELIA, &folder, c).unwrap();
    let body = format!(
        "<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id=\"{}\"/></m:ItemIds></m:GetItem>",
        id.id
    );
    let headers = soap::RequestHeaders {
        server_version: "Exchange2013_SP1",
        impersonate: Some(CELIA),
        time_zone: None,
    };
    let answer = reqwest::Client::new()
        .post(emu.ews_url())
        .basic_auth(SVC, Some(PASSWORD))
        .header("X-AnchorMailbox", CELIA)
        .body(soap::request_envelope(&headers, &body))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(soap::parse_response(&answer).is_ok());
    // …cut at every byte: never a panic, and never a success for a cut document.
    for n in 0..answer.len() - 1 {
        let cut = &answer[..n];
        let r = std::panic::catch_unwind(|| soap::parse_response(cut));
        let r = r.unwrap_or_else(|_| panic!("panic at cut {n}"));
        assert!(r.is_err(), "cut at {n} parsed");
    }
}

#[tokio::test]
async fn emulator_refuses_hostile_requests_with_a_fault() {
    use tether::exchange::soap;
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let http = reqwest::Client::new();
    let hostile: Vec<Vec<u8>> = vec![
        br#"<!DOCTYPE x [<!ENTITY a "b">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>"#.to_vec(),
        b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>".to_vec(),
        "<a>".repeat(1_000_000).into_bytes(),
        vec![0xff; 64],
    ];
    for body in hostile {
        let resp = http
            .post(emu.ews_url())
            .basic_auth(SVC, Some(PASSWORD))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 500);
        let err = soap::parse_response(&resp.bytes().await.unwrap()).unwrap_err();
        assert_eq!(err.code(), Some("ErrorSchemaValidation"));
    }
    // Still serving.
    assert_eq!(emu.calls("GetFolder"), 0);
}

/// A golden answer (tests/fixtures/golden/ews, provenance in its PROVENANCE.md).
fn golden(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/golden/ews/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn calendar_view_the_server_cut_short_is_not_taken_for_the_whole_window() {
    // Microsoft's documented answer: 5 of the 33 appointments in the window, and the
    // server says the last one is not among them.
    let c = client_answered(200, golden("finditem_calendarview_exchange2013.xml")).await;
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        c.calendar_view(
            CELIA,
            t("2013-08-21T17:30:24Z"),
            t("2013-09-20T17:30:24Z"),
            5,
        ),
    )
    .await
    .expect("no hang");
    assert!(
        !matches!(&r, Ok(events) if events.len() < 33),
        "{:?} of 33 appointments taken for the whole window",
        r.map(|e| e.len())
    );
}

#[tokio::test]
async fn find_by_marker_the_server_cut_short_is_not_taken_for_every_match() {
    // Microsoft's documented answer: 6 of 8 items, the last not among them.
    let c = client_answered(200, golden("finditem_paged_first_page.xml")).await;
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        c.find_by_extended(
            CELIA,
            &FolderRef::contacts(),
            "tether.SalesforceId",
            &["003D000000QzA1bIAF".to_string()],
        ),
    )
    .await
    .expect("no hang");
    assert!(
        !matches!(&r, Ok(ids) if ids.len() < 8),
        "{:?} of 8 ids taken for every match",
        r.map(|ids| ids.len())
    );
}
