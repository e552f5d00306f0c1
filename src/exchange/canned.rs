//! Tests only: a tiny EWS endpoint that answers each operation with canned SOAP bodies, the
//! way a real server answers (documented or recorded answers, not the emulator), and keeps
//! the requests it got so a test can check what the client asked for.

use super::client::{Auth, Endpoint, EwsClient, ExchangeOptions};
use crate::secret::Secret;
use axum::Router;
use axum::routing::post;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

pub(crate) const REP: &str = "celia.kung@corp.com";

type Answer = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Answers by operation (the local name of the Body's first child): each call takes the
/// next queued answer, the last one repeats.
#[derive(Clone, Default)]
pub(crate) struct Canned {
    answers: Arc<Mutex<HashMap<String, VecDeque<Answer>>>>,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

/// A SOAP envelope around one operation response body, as Exchange 2013+ writes it.
pub(crate) fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="20" MajorBuildNumber="7452" MinorBuildNumber="28" Version="V2018_01_08" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" xmlns="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body></s:Envelope>"#
    )
}

fn operation(request: &str) -> String {
    let body = request.split_once(":Body>").map(|(_, b)| b).unwrap_or("");
    let start = body.find('<').map(|i| i + 1).unwrap_or(0);
    let name: String = body[start..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == ':')
        .collect();
    name.rsplit(':').next().unwrap_or("").to_string()
}

impl Canned {
    /// Queue `body` (the operation response element) as the next answer to `op`.
    pub(crate) fn answer(&self, op: &str, body: &str) -> &Self {
        let body = body.to_string();
        self.answer_with(op, move |_| body.clone())
    }

    /// Queue an answer made from the request, as a server answers the shape asked for.
    pub(crate) fn answer_with(
        &self,
        op: &str,
        body: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> &Self {
        self.answers
            .lock()
            .unwrap()
            .entry(op.to_string())
            .or_default()
            .push_back(Arc::new(move |request: &str| envelope(&body(request))));
        self
    }

    /// The requests received so far: (operation, whole envelope).
    pub(crate) fn requests(&self) -> Vec<(String, String)> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn operations(&self) -> Vec<String> {
        self.requests().into_iter().map(|(op, _)| op).collect()
    }

    fn next(&self, op: &str, request: &str) -> Option<String> {
        let answer = {
            let mut answers = self.answers.lock().unwrap();
            let queue = answers.get_mut(op)?;
            if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().cloned()
            }
        }?;
        Some(answer(request))
    }

    /// Serves on a loopback port; returns a client for it (Basic auth, no retries).
    pub(crate) async fn client(&self) -> EwsClient {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        let app = Router::new().route(
            "/EWS/Exchange.asmx",
            post(move |body: String| {
                let me = me.clone();
                async move {
                    let op = operation(&body);
                    let answer = me.next(&op, &body);
                    me.requests.lock().unwrap().push((op.clone(), body));
                    match answer {
                        Some(a) => (
                            axum::http::StatusCode::OK,
                            [("Content-Type", "text/xml; charset=utf-8")],
                            a,
                        ),
                        None => (
                            axum::http::StatusCode::NOT_IMPLEMENTED,
                            [("Content-Type", "text/plain")],
                            format!("no canned answer for {op}"),
                        ),
                    }
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut o = ExchangeOptions::new(
            Endpoint::Url(format!("http://{addr}/EWS/Exchange.asmx").parse().unwrap()),
            Auth::Basic {
                username: "svc-tether@corp.com".into(),
                password: Secret::new("Pa55w0rd!"),
            },
        );
        o.max_retries = 0;
        EwsClient::new(o, Arc::new(crate::clock::SystemClock)).unwrap()
    }
}

/// One response message of `op` inside its `…Response` element.
pub(crate) fn response(op: &str, messages: &str) -> String {
    format!(
        r#"<m:{op}Response xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>{messages}</m:ResponseMessages></m:{op}Response>"#
    )
}

/// An error response message of `op` (`extra`: the elements the schema still requires,
/// such as an empty `m:Folders`).
pub(crate) fn error_message(op: &str, code: &str, text: &str, extra: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{text}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{extra}</m:{op}ResponseMessage>"#
    )
}
