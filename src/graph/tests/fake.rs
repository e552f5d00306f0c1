//! A small scripted HTTP server for the Graph client's tests: it records every request and
//! answers what the test's script says. Not an emulator: it knows no Graph behaviour.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Seen {
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The form fields of a token request.
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    /// The mailbox a `/users/{mailbox}/…` request is for.
    pub fn mailbox(&self) -> Option<String> {
        let rest = self.path.split("/users/").nth(1)?;
        Some(rest.split('/').next()?.to_string())
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Canned {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Canned {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Script = Box<dyn FnMut(&Seen) -> Canned + Send>;

/// Requests in flight per mailbox: now, and the most ever.
#[derive(Default)]
struct InFlight {
    now: HashMap<String, usize>,
    max: HashMap<String, usize>,
}

pub struct Fake {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
    in_flight: Arc<Mutex<InFlight>>,
    delay: Arc<Mutex<Duration>>,
}

impl Fake {
    pub async fn start(script: impl FnMut(&Seen) -> Canned + Send + 'static) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake {
            base,
            seen: Arc::default(),
            script: Arc::new(Mutex::new(Box::new(script))),
            in_flight: Arc::default(),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
        };
        let (seen, script, in_flight, delay) = (
            fake.seen.clone(),
            fake.script.clone(),
            fake.in_flight.clone(),
            fake.delay.clone(),
        );
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (seen, script, in_flight, delay) = (
                    seen.clone(),
                    script.clone(),
                    in_flight.clone(),
                    delay.clone(),
                );
                async move {
                    let req = Seen {
                        method: method.to_string(),
                        path: percent_decode(uri.path()),
                        query: uri.query().unwrap_or("").to_string(),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    let mailbox = req.mailbox().unwrap_or_default().to_ascii_lowercase();
                    {
                        let mut f = in_flight.lock().unwrap();
                        let now = f.now.entry(mailbox.clone()).or_default();
                        *now += 1;
                        let now = *now;
                        let max = f.max.entry(mailbox.clone()).or_default();
                        *max = (*max).max(now);
                    }
                    let wait = *delay.lock().unwrap();
                    if !wait.is_zero() && !req.path.contains("/oauth2/") {
                        tokio::time::sleep(wait).await;
                    }
                    seen.lock().unwrap().push(req.clone());
                    let answer = (script.lock().unwrap())(&req);
                    *in_flight.lock().unwrap().now.get_mut(&mailbox).unwrap() -= 1;
                    respond(answer)
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn token_url(&self) -> String {
        format!("{}/tenant-1/oauth2/v2.0/token", self.base)
    }

    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests other than token requests.
    pub fn graph_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| !s.path.contains("/oauth2/"))
            .collect()
    }

    /// Each answer to a Graph request waits this long (to overlap requests).
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    /// Most requests for `mailbox` (lower case) ever in flight at once.
    pub fn max_in_flight(&self, mailbox: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap()
            .max
            .get(mailbox)
            .copied()
            .unwrap_or(0)
    }
}

fn respond(c: Canned) -> Response {
    let mut resp = (StatusCode::from_u16(c.status).unwrap(), c.body).into_response();
    for (k, v) in c.headers {
        resp.headers_mut().append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
