//! Hostile answers to each kind of request both clients make: bodies beyond the size caps
//! (announced, or streamed without end and without a length), JSON and XML nested without
//! end, XML with a DTD. Each ends in an error that names the server (and the cap), never in
//! a panic, a hang or memory growing with what the server sends.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tether::clock::SystemClock;
use tether::exchange::{
    self, AutodiscoverOptions, Endpoint, EwsClient, EwsError, ExchangeOptions, FolderRef,
};
use tether::salesforce::{Auth, ClientOptions, RetryPolicy, SalesforceClient, SfError};
use tether::secret::Secret;

#[derive(Clone)]
enum Answer {
    /// This body, with its Content-Length.
    Fixed(Vec<u8>),
    /// This chunk repeated for ever, chunked (no length announced).
    Endless(Bytes),
}

/// A server answering every request, whatever its method and path, with `status` and
/// `answer`. Returns its base URL.
async fn serve(status: u16, answer: Answer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(move || {
        let answer = answer.clone();
        async move {
            let body = match answer {
                Answer::Fixed(b) => Body::from(b),
                Answer::Endless(chunk) => {
                    Body::from_stream(futures_util::stream::repeat_with(move || {
                        Ok::<_, std::convert::Infallible>(chunk.clone())
                    }))
                }
            };
            Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("Content-Type", "application/json")
                .body(body)
                .unwrap()
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// `piece` repeated to about 16 KiB: a chunk as a server streams it.
fn chunk(piece: &[u8]) -> Bytes {
    Bytes::from(piece.repeat(16 * 1024 / piece.len()))
}

/// Bounded: a test that hangs fails instead.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("no hang")
}

const CAP: usize = 64 * 1024;

fn sf_client(base: &str, auth: Auth) -> SalesforceClient {
    let mut o = ClientOptions::new(base.parse().unwrap(), auth);
    o.login_url = base.parse().unwrap();
    o.max_response_bytes = CAP;
    o.retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    SalesforceClient::new(o).unwrap()
}

fn token() -> Auth {
    Auth::AccessToken {
        token: Secret::new("00Dxx!token"),
    }
}

fn client_credentials() -> Auth {
    Auth::ClientCredentials {
        client_id: "id".into(),
        client_secret: Secret::new("client-secret-value"),
    }
}

fn assert_too_large(err: &SfError, base: &str) {
    assert!(
        matches!(err, SfError::TooLarge { server, limit } if server == base && *limit == CAP),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(base) && text.contains("64 KiB"), "{text}");
}

#[tokio::test]
async fn salesforce_answers_past_the_cap_stop_at_the_cap() {
    // Streamed for ever, no length announced: a query page, a describe, a token answer.
    let endless = serve(
        200,
        Answer::Endless(chunk(b"{\"records\":[1,2,3,4,5,6,7,8],")),
    )
    .await;
    let c = sf_client(&endless, token());
    let err = within(c.query_collect("SELECT Id FROM Contact"))
        .await
        .unwrap_err();
    assert_too_large(&err, &endless);
    let err = within(c.describe("Contact")).await.unwrap_err();
    assert_too_large(&err, &endless);
    let c = sf_client(&endless, client_credentials());
    let err = within(c.limits()).await.unwrap_err();
    assert_too_large(&err, &endless);
    assert!(!format!("{err}{err:?}").contains("client-secret-value"));
    // Announced: refused before reading.
    let announced = serve(200, Answer::Fixed(vec![b' '; CAP + 1])).await;
    let c = sf_client(&announced, token());
    let err = within(c.get_updated("Contact", chrono::Utc::now(), chrono::Utc::now()))
        .await
        .unwrap_err();
    assert_too_large(&err, &announced);
    // An error answer is capped too.
    let error = serve(400, Answer::Endless(chunk(b"[{\"message\":\"x\","))).await;
    let c = sf_client(&error, token());
    let err = within(c.delete(&["003000000000001AAA".into()])).await;
    assert!(
        matches!(err.stopped, Some(SfError::TooLarge { .. })),
        "{:?}",
        err.stopped
    );
}

#[tokio::test]
async fn salesforce_json_nested_without_end_is_malformed() {
    let mut deep = b"{\"totalSize\":1,\"done\":true,\"records\":[{\"a\":".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 50_000));
    let base = serve(200, Answer::Fixed(deep.clone())).await;
    let c = sf_client(&base, token());
    let err = within(c.query_collect("SELECT Id FROM Contact"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SfError::Malformed { context, detail } if context == "query" && detail.contains("recursion limit")),
        "{err:?}"
    );
    let err = within(c.describe("Contact")).await.unwrap_err();
    assert!(matches!(err, SfError::Malformed { .. }), "{err:?}");
    let err = within(c.create("Contact", &[serde_json::Map::new()])).await;
    assert!(
        matches!(err.stopped, Some(SfError::Malformed { .. })),
        "{:?}",
        err.stopped
    );
    // From the token endpoint.
    let c = sf_client(&base, client_credentials());
    let err = within(c.limits()).await.unwrap_err();
    assert!(
        matches!(&err, SfError::Auth { description, .. } if description.contains("did not answer JSON")),
        "{err:?}"
    );
}

fn ews_client(url: &str, auth: exchange::Auth) -> EwsClient {
    let mut o = ExchangeOptions::new(Endpoint::Url(url.parse().unwrap()), auth);
    o.max_retries = 0;
    EwsClient::new(o, Arc::new(SystemClock)).unwrap()
}

fn basic() -> exchange::Auth {
    exchange::Auth::Basic {
        username: "svc@corp.com".into(),
        password: Secret::new("ews-password-value"),
    }
}

#[tokio::test]
async fn ews_answers_past_the_cap_stop_at_the_cap() {
    let base = serve(200, Answer::Endless(chunk(b"<a><b>0123456789</b></a>"))).await;
    let c = ews_client(&format!("{base}/EWS/Exchange.asmx"), basic());
    let err = within(c.get_folder("rep@corp.com", &FolderRef::contacts()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EwsError::Xml(_)), "{err:?}");
    assert!(
        text.contains(&base) && text.contains("32 MiB") && text.contains("EWS"),
        "{text}"
    );
    // The OAuth token endpoint: a token answer is a few kB, capped at 1 MiB.
    let c = ews_client(
        &format!("{base}/EWS/Exchange.asmx"),
        exchange::Auth::OAuth2(tether::entra::AppCredentials {
            token_url: format!("{base}/token").parse().unwrap(),
            client_id: "app".into(),
            credential: tether::entra::ClientCredential::Secret(Secret::new("app-secret-value")),
            scope: "https://outlook.office365.com/.default".into(),
        }),
    );
    let err = within(c.get_folder("rep@corp.com", &FolderRef::contacts()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EwsError::Token(_)), "{err:?}");
    assert!(text.contains(&base) && text.contains("1 MiB"), "{text}");
    assert!(!text.contains("app-secret-value"), "{text}");
}

/// A client that finds EWS by Autodiscover, every host resolving to `base`.
fn autodiscover_client(base: &str) -> EwsClient {
    let base: url::Url = format!("{base}/").parse().unwrap();
    let mut o = ExchangeOptions::new(
        Endpoint::Autodiscover {
            address: "rep@corp.com".into(),
        },
        basic(),
    );
    o.max_retries = 0;
    o.autodiscover = AutodiscoverOptions {
        max_hops: 3,
        resolver: Some(Arc::new(move |_host: &str| Some(base.clone()))),
    };
    EwsClient::new(o, Arc::new(SystemClock)).unwrap()
}

#[tokio::test]
async fn autodiscover_refuses_oversized_deep_and_dtd_answers() {
    let endless = serve(200, Answer::Endless(chunk(b"<Autodiscover>"))).await;
    let err = within(autodiscover_client(&endless).ews_url())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EwsError::Autodiscover(_)), "{err:?}");
    assert!(
        text.contains(&endless)
            && text.contains("Autodiscover answer larger than")
            && text.contains("32 MiB"),
        "{text}"
    );
    let dtd = br#"<?xml version="1.0"?><!DOCTYPE Autodiscover [<!ENTITY x "https://evil.example/EWS/Exchange.asmx">]><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><Account><Protocol><Type>EXPR</Type><EwsUrl>&x;</EwsUrl></Protocol></Account></Response></Autodiscover>"#;
    let base = serve(200, Answer::Fixed(dtd.to_vec())).await;
    let err = within(autodiscover_client(&base).ews_url())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("DTD"), "{text}");
    assert!(!text.contains("evil.example/EWS"), "{text}");
    let deep = "<a>".repeat(100_000).into_bytes();
    let base = serve(200, Answer::Fixed(deep)).await;
    let err = within(autodiscover_client(&base).ews_url())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("nesting deeper than 64 levels"), "{text}");
    assert!(!format!("{text}{err:?}").contains("ews-password-value"));
}

#[tokio::test]
async fn servers_cannot_steer_the_clients_onto_plain_http() {
    // A token answer sending the client to a plain-http instance.
    let base = serve(
        200,
        Answer::Fixed(
            br#"{"access_token":"00Dxx!abc","instance_url":"http://evil.example","token_type":"Bearer"}"#
                .to_vec(),
        ),
    )
    .await;
    let err = within(sf_client(&base, client_credentials()).limits())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SfError::Auth { description, .. } if description.contains("instance_url refused") && description.contains("http://evil.example/ uses plain http")),
        "{err:?}"
    );
    // Autodiscover naming a plain-http EWS endpoint, or redirecting to a plain-http server.
    for account in [
        "<Account><Protocol><Type>EXPR</Type><EwsUrl>http://mail.corp.example/EWS/Exchange.asmx</EwsUrl></Protocol></Account>",
        "<Account><Action>redirectUrl</Action><RedirectUrl>http://autodiscover.corp.example/autodiscover/autodiscover.xml</RedirectUrl></Account>",
    ] {
        let answer = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">{account}</Response></Autodiscover>"#
        );
        let base = serve(200, Answer::Fixed(answer.into_bytes())).await;
        let err = within(autodiscover_client(&base).ews_url())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("corp.example") && text.contains("uses plain http"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn ews_token_endpoint_429_is_throttling_not_bad_credentials() {
    let base = serve(
        429,
        Answer::Fixed(br#"{"error":"temporarily_unavailable"}"#.to_vec()),
    )
    .await;
    let mut o = ExchangeOptions::new(
        Endpoint::Url(format!("{base}/EWS/Exchange.asmx").parse().unwrap()),
        exchange::Auth::OAuth2(tether::entra::AppCredentials {
            token_url: format!("{base}/oauth2/v2.0/token").parse().unwrap(),
            client_id: "app-id".into(),
            credential: tether::entra::ClientCredential::Secret(Secret::new("app-secret-value")),
            scope: "https://outlook.office365.com/.default".into(),
        }),
    );
    o.max_retries = 1;
    let c = EwsClient::new(o, Arc::new(SystemClock)).unwrap();
    let err = within(c.get_folder("ana@corp.com", &FolderRef::contacts()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EwsError::Token(_)), "{err:?}");
    assert!(
        text.contains("is throttling") && text.contains("wait a few minutes and run again"),
        "{text}"
    );
    assert!(!text.contains("refused the client credentials"), "{text}");
    // Asked again once after the back-off, then given up.
    assert_eq!(c.calls().get("Token"), Some(&2));
}
