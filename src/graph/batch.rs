//! JSON batching (`POST /$batch`): up to 20 requests in one, each answered on its own
//! (any order, its own status). Items are throttled one by one: those answered 429/503, and
//! those that failed only because one they depend on did (424), are sent again after the
//! largest `Retry-After` among them.

use super::client::{GraphClient, Request};
use super::error::{self, ErrorKind, GraphError};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Graph's limit of requests per batch.
pub const MAX_BATCH: usize = 20;

/// One request of a batch. `url` is relative to the Graph version root (`/users/…`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// Unique within the batch.
    pub id: String,
    pub method: Method,
    pub url: String,
    pub body: Option<Value>,
    /// Ids of items of the same batch that must succeed first.
    pub depends_on: Vec<String>,
}

impl BatchItem {
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> Self {
        BatchItem {
            id: id.into(),
            method: Method::GET,
            url: url.into(),
            body: None,
            depends_on: Vec::new(),
        }
    }

    /// The item as a member of `requests`: a body comes with its Content-Type.
    fn to_json(&self) -> Value {
        let mut headers = serde_json::Map::new();
        headers.insert(
            "Prefer".into(),
            json!(format!(
                r#"IdType="ImmutableId", {}"#,
                super::client::TEXT_BODIES
            )),
        );
        let mut item = json!({"id": self.id, "method": self.method.as_str(), "url": self.url});
        if let Some(body) = &self.body {
            headers.insert("Content-Type".into(), json!("application/json"));
            item["body"] = body.clone();
        }
        item["headers"] = Value::Object(headers);
        if !self.depends_on.is_empty() {
            item["dependsOn"] = json!(self.depends_on);
        }
        item
    }
}

/// One item's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchAnswer {
    /// 0 when the batch answer did not include this item.
    pub status: u16,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl BatchAnswer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The item's body, or its failure decoded (`what` names the item in the message).
    pub fn into_result(self, what: &str) -> Result<Value, GraphError> {
        match self.status {
            s if (200..300).contains(&s) => Ok(self.body),
            0 => Err(GraphError::new(
                ErrorKind::Unavailable,
                format!("{what}: the batch answer did not include it"),
            )),
            s => Err(error::decode(s, &self.body, what, false)),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        let secs: u64 = self.headers.get("retry-after")?.trim().parse().ok()?;
        Some(Duration::from_secs(secs.min(300)))
    }
}

/// The request body of one batch (for tests that validate it against the schema).
pub fn batch_body(items: &[BatchItem]) -> Value {
    json!({"requests": items.iter().map(BatchItem::to_json).collect::<Vec<_>>()})
}

impl GraphClient {
    /// Sends `items` (for one mailbox) in batches of at most 20 and returns each item's
    /// final answer by id. Throttled items are retried up to the client's retry count; an
    /// item created without an idempotency key (a POST) is resent only after a 429 or 503,
    /// which say it was not run. Dependencies must lie in the same batch of 20.
    pub async fn batch(
        &self,
        mailbox: &str,
        items: &[BatchItem],
    ) -> Result<BTreeMap<String, BatchAnswer>, GraphError> {
        // Graph compares ids without case.
        let mut ids = BTreeSet::new();
        if let Some(dup) = items
            .iter()
            .find(|i| !ids.insert(i.id.to_ascii_lowercase()))
        {
            return Err(GraphError::new(
                ErrorKind::Invalid,
                format!("batch for {mailbox}: id `{}` used twice", dup.id),
            ));
        }
        let mut out = BTreeMap::new();
        for chunk in items.chunks(MAX_BATCH) {
            let inside: BTreeSet<&str> = chunk.iter().map(|i| i.id.as_str()).collect();
            if let Some(i) = chunk
                .iter()
                .find(|i| i.depends_on.iter().any(|d| !inside.contains(d.as_str())))
            {
                return Err(GraphError::new(
                    ErrorKind::Invalid,
                    format!(
                        "batch for {mailbox}: `{}` depends on an item outside its batch of {MAX_BATCH}",
                        i.id
                    ),
                ));
            }
            out.extend(self.batch_of_twenty(mailbox, chunk).await?);
        }
        Ok(out)
    }

    async fn batch_of_twenty(
        &self,
        mailbox: &str,
        chunk: &[BatchItem],
    ) -> Result<BTreeMap<String, BatchAnswer>, GraphError> {
        let mut done: BTreeMap<String, BatchAnswer> = BTreeMap::new();
        let mut pending: Vec<BatchItem> = chunk.to_vec();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            let mut req = Request::new(Method::POST, self.service_url("/$batch"), "$batch")
                .body(batch_body(&pending));
            // A lost answer to a batch that creates must not create twice.
            req.once = pending.iter().any(|i| i.method == Method::POST);
            let answer = self.send(mailbox, &req).await?;
            let mut answers = decode_responses(&answer.body).ok_or_else(|| {
                GraphError::new(
                    ErrorKind::Transport,
                    format!("$batch for {mailbox}: the answer has no `responses` list"),
                )
            })?;
            // Retry: not run (429, 503), and 424 whose dependency is retried.
            let mut retry: BTreeSet<String> = pending
                .iter()
                .filter(|i| {
                    answers
                        .get(&i.id)
                        .is_some_and(|a| matches!(a.status, 429 | 503))
                })
                .map(|i| i.id.clone())
                .collect();
            loop {
                let more: Vec<String> = pending
                    .iter()
                    .filter(|i| !retry.contains(&i.id))
                    .filter(|i| answers.get(&i.id).is_some_and(|a| a.status == 424))
                    .filter(|i| i.depends_on.iter().any(|d| retry.contains(d)))
                    .map(|i| i.id.clone())
                    .collect();
                if more.is_empty() {
                    break;
                }
                retry.extend(more);
            }
            if attempt > self.max_retries() {
                retry.clear();
            }
            let wait = retry
                .iter()
                .filter_map(|id| answers.get(id).and_then(BatchAnswer::retry_after))
                .max();
            let mut next = Vec::new();
            for item in pending {
                let answer = answers.remove(&item.id).unwrap_or(BatchAnswer {
                    status: 0,
                    headers: BTreeMap::new(),
                    body: Value::Null,
                });
                if retry.contains(&item.id) {
                    next.push(item);
                } else {
                    done.insert(item.id, answer);
                }
            }
            pending = next;
            if !pending.is_empty() {
                tracing::info!(
                    mailbox,
                    items = pending.len(),
                    attempt,
                    "Graph batch items throttled; retrying them"
                );
                self.wait_before_retry(attempt, wait).await;
            }
        }
        Ok(done)
    }
}

/// The `responses` of a batch answer by id (header names lower-cased).
fn decode_responses(body: &Value) -> Option<BTreeMap<String, BatchAnswer>> {
    let mut out = BTreeMap::new();
    for r in body.get("responses")?.as_array()? {
        let id = r.get("id")?.as_str()?.to_string();
        let status = r
            .get("status")?
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())?;
        let headers = r
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let body = r.get("body").cloned().unwrap_or(Value::Null);
        out.insert(
            id,
            BatchAnswer {
                status,
                headers,
                body,
            },
        );
    }
    Some(out)
}
