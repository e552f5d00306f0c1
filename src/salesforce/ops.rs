//! The operations the sync engine uses, on top of `SalesforceClient::call`.

use super::soql::{Lit, Op, SoqlBuilder};
use super::{CallKind, Idempotency, Result, SalesforceClient, SfError, ids};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The org's daily API usage from `Sforce-Limit-Info`, and the connected app's quota when the
/// org sets one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
    pub per_app: Option<AppUsage>,
}

/// `per-app-api-usage=17/250(appName=sample-connected-app)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUsage {
    pub app: String,
    pub used: u64,
    pub max: u64,
}

/// Parses `Sforce-Limit-Info`. The REST API Developer Guide ("Limit Info Header") documents
/// `api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)`: parts
/// separated by `;`, the per-app part only when the app has a quota (newer orgs add others,
/// such as `api-bursts=1/750`, which are skipped). Commas are accepted as well.
pub(crate) fn parse_limit_info(v: &str) -> Option<ApiUsage> {
    let mut org = None;
    let mut per_app = None;
    for part in v.split([';', ',']) {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        match key.trim() {
            "api-usage" => org = org.or(used_of(value)),
            "per-app-api-usage" => {
                let (counts, app) = match value.split_once('(') {
                    Some((counts, rest)) => {
                        let inner = rest.trim().trim_end_matches(')');
                        let name = inner.strip_prefix("appName=").unwrap_or(inner);
                        (counts, name.trim().to_string())
                    }
                    None => (value, String::new()),
                };
                if let Some((used, max)) = used_of(counts) {
                    per_app = per_app.or(Some(AppUsage { app, used, max }));
                }
            }
            _ => {}
        }
    }
    let (used, max) = org?;
    Some(ApiUsage { used, max, per_app })
}

/// `used/max`, e.g. `25/5000`.
fn used_of(v: &str) -> Option<(u64, u64)> {
    let (used, max) = v.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

fn malformed(context: &str, detail: impl std::fmt::Display) -> SfError {
    SfError::Malformed {
        context: context.into(),
        detail: detail.to_string(),
    }
}

fn json_of(context: &str, body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| malformed(context, format!("invalid JSON ({e})")))
}

enum Next {
    First { soql: String, all: bool },
    More(String),
    Done,
}

/// A query's result, one page at a time (at most one page in memory).
pub struct QueryPages {
    client: SalesforceClient,
    next: Next,
    total_size: Option<u64>,
}

impl QueryPages {
    /// The next page of records (each with its `attributes`), or None when done.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Map<String, Value>>>> {
        let c = &self.client;
        let reply = match std::mem::replace(&mut self.next, Next::Done) {
            Next::Done => return Ok(None),
            Next::First { soql, all } => {
                let path = c.data_path(if all { "queryAll" } else { "query" });
                c.call(
                    CallKind::Query,
                    Method::GET,
                    &path,
                    &[("q", soql)],
                    None,
                    Idempotency::Safe,
                )
                .await?
            }
            Next::More(path) => {
                c.call(
                    CallKind::QueryMore,
                    Method::GET,
                    &path,
                    &[],
                    None,
                    Idempotency::Safe,
                )
                .await?
            }
        };
        let page = decode_query_page(&reply.body)?;
        self.total_size = Some(page.total_size);
        if let Some(next) = page.next {
            self.next = Next::More(next);
        }
        Ok(Some(page.records))
    }

    /// totalSize as reported by the first page.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }
}

/// One page of a query result.
#[derive(Debug)]
pub(crate) struct QueryPage {
    pub records: Vec<Map<String, Value>>,
    pub total_size: u64,
    /// The path of the next page when the result is not done.
    pub next: Option<String>,
}

pub(crate) fn decode_query_page(body: &[u8]) -> Result<QueryPage> {
    let v = json_of("query", body)?;
    let total = v.get("totalSize").and_then(Value::as_u64);
    let done = v.get("done").and_then(Value::as_bool);
    let (Some(total_size), Some(done)) = (total, done) else {
        return Err(malformed("query", "totalSize or done missing"));
    };
    let records = match v.get("records") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|r| {
                r.as_object()
                    .cloned()
                    .ok_or_else(|| malformed("query", "a record is not an object"))
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(malformed("query", "records missing")),
    };
    let mut next = None;
    if !done {
        let url = v
            .get("nextRecordsUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("query", "done is false but nextRecordsUrl is missing"))?;
        // Only a path on the same instance: never follow the server elsewhere.
        if !url.starts_with("/services/data/") || url.contains("://") {
            return Err(malformed(
                "query",
                "nextRecordsUrl is not a path under /services/data/",
            ));
        }
        next = Some(url.to_string());
    }
    Ok(QueryPage {
        records,
        total_size,
        next,
    })
}

/// One per-record error of an sObject Collections call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    Success {
        id: String,
    },
    Failed {
        errors: Vec<RecordError>,
    },
    /// The call carrying this create failed in a way that leaves its effect unknown; the
    /// journal must look the record up before creating it again.
    Ambiguous {
        reason: String,
    },
    /// Not sent: the run stopped first (see `WriteReport::stopped`).
    NotAttempted,
}

impl RecordOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, RecordOutcome::Success { .. })
    }
    pub fn status_codes(&self) -> Vec<&str> {
        match self {
            RecordOutcome::Failed { errors } => {
                errors.iter().map(|e| e.status_code.as_str()).collect()
            }
            _ => vec![],
        }
    }
}

/// Outcomes in input order, and the error that stopped the batch early, if any.
#[derive(Debug)]
pub struct WriteReport {
    pub outcomes: Vec<RecordOutcome>,
    pub stopped: Option<SfError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdatedIds {
    pub ids: Vec<String>,
    pub latest_date_covered: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeletedRecords {
    pub records: Vec<(String, DateTime<Utc>)>,
    pub earliest_date_available: Option<DateTime<Utc>>,
    pub latest_date_covered: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteDetection {
    GetDeleted,
    /// The getDeleted window had passed: known ids were compared with the org's id list.
    IdComparison,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeletedIds {
    pub ids: Vec<String>,
    pub via: DeleteDetection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    pub name: String,
    pub kind: String,
    pub length: u64,
    pub createable: bool,
    pub updateable: bool,
    pub nillable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDescribe {
    pub name: String,
    pub key_prefix: Option<String>,
    pub fields: Vec<FieldInfo>,
    /// The `relationshipName`s of `childRelationships` (those that have one).
    pub child_relationships: Vec<String>,
}

impl ObjectDescribe {
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldUse {
    Read,
    Create,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitValue {
    pub max: i64,
    pub remaining: i64,
}

fn sf_datetime(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The form getUpdated/getDeleted expect: ISO 8601 with an explicit offset.
fn replication_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

enum WriteOp<'a> {
    Create(&'a str),
    Update(&'a str),
    Delete,
}

impl SalesforceClient {
    /// SOQL through `query` (live records), streamed page by page.
    pub fn query(&self, soql: impl Into<String>) -> QueryPages {
        QueryPages {
            client: self.clone(),
            next: Next::First {
                soql: soql.into(),
                all: false,
            },
            total_size: None,
        }
    }

    /// SOQL through `queryAll` (deleted and archived records included).
    pub fn query_all(&self, soql: impl Into<String>) -> QueryPages {
        QueryPages {
            client: self.clone(),
            next: Next::First {
                soql: soql.into(),
                all: true,
            },
            total_size: None,
        }
    }

    /// Every record of a query, for results known to be small.
    pub async fn query_collect(&self, soql: impl Into<String>) -> Result<Vec<Map<String, Value>>> {
        let mut pages = self.query(soql);
        let mut out = Vec::new();
        while let Some(p) = pages.next_page().await? {
            out.extend(p);
        }
        Ok(out)
    }

    /// Changes to an object org-wide since a watermark (`SystemModstamp > watermark`), oldest
    /// first; with `include_deleted` through queryAll so deletions show as IsDeleted = true.
    /// One query for all reps: the caller sorts records to reps. A long transaction can
    /// commit records stamped before the newest stamp a read saw, so a poller passes that
    /// stamp less a lookback, as the connector does
    /// ([`DEFAULT_CHANGE_LOOKBACK`](super::connector::DEFAULT_CHANGE_LOOKBACK)).
    pub fn changes_since(
        &self,
        object: &str,
        fields: &[&str],
        watermark: DateTime<Utc>,
        include_deleted: bool,
    ) -> Result<QueryPages> {
        let mut all: Vec<&str> = fields.to_vec();
        for f in ["Id", "SystemModstamp"] {
            if !all.iter().any(|x| x.eq_ignore_ascii_case(f)) {
                all.push(f);
            }
        }
        if include_deleted && !all.iter().any(|x| x.eq_ignore_ascii_case("IsDeleted")) {
            all.push("IsDeleted");
        }
        let soql = SoqlBuilder::select(object, &all)
            .and_then(|b| b.filter("SystemModstamp", Op::Gt, Lit::DateTime(watermark)))
            .and_then(|b| b.order_by("SystemModstamp", false))
            .map_err(|e| SfError::Config(e.to_string()))?
            .build();
        Ok(if include_deleted {
            self.query_all(soql)
        } else {
            self.query(soql)
        })
    }

    /// Records by id, as several queries when the id list would make one too long.
    pub async fn query_by_ids(
        &self,
        object: &str,
        fields: &[&str],
        record_ids: &[String],
    ) -> Result<Vec<Map<String, Value>>> {
        if record_ids.is_empty() {
            return Ok(vec![]);
        }
        let lits: Vec<Lit> = record_ids.iter().map(|i| Lit::Str(i.clone())).collect();
        let queries = SoqlBuilder::select(object, fields)
            .and_then(|b| b.chunked_in("Id", &lits, self.inner.opts.max_query_chars))
            .map_err(|e| SfError::Config(e.to_string()))?;
        let mut out = Vec::new();
        for q in queries {
            out.extend(self.query_collect(q).await?);
        }
        Ok(out)
    }

    /// Creates records of one object, at most 200 a call, allOrNone=false.
    pub async fn create(&self, object: &str, records: &[Map<String, Value>]) -> WriteReport {
        let items: Vec<Value> = records.iter().map(|r| Value::Object(r.clone())).collect();
        self.write(WriteOp::Create(object), items).await
    }

    /// Updates records (each map must hold `Id`).
    pub async fn update(&self, object: &str, records: &[Map<String, Value>]) -> WriteReport {
        let items: Vec<Value> = records.iter().map(|r| Value::Object(r.clone())).collect();
        self.write(WriteOp::Update(object), items).await
    }

    /// Deletes records by id, at most 200 a call, allOrNone=false.
    pub async fn delete(&self, record_ids: &[String]) -> WriteReport {
        let items: Vec<Value> = record_ids
            .iter()
            .map(|i| Value::String(i.clone()))
            .collect();
        self.write(WriteOp::Delete, items).await
    }

    async fn write(&self, op: WriteOp<'_>, items: Vec<Value>) -> WriteReport {
        let mut outcomes = vec![RecordOutcome::NotAttempted; items.len()];
        let indices: Vec<usize> = (0..items.len()).collect();
        for chunk in indices.chunks(200) {
            let mut pending: Vec<usize> = chunk.to_vec();
            let mut round = 0;
            while !pending.is_empty() {
                let result = self.write_call(&op, &items, &pending).await;
                let results = match result {
                    Ok(r) => r,
                    Err(SfError::Ambiguous { message }) => {
                        for &i in &pending {
                            outcomes[i] = RecordOutcome::Ambiguous {
                                reason: message.clone(),
                            };
                        }
                        break;
                    }
                    Err(e) => {
                        return WriteReport {
                            outcomes,
                            stopped: Some(e),
                        };
                    }
                };
                let mut locked = Vec::new();
                for (&i, outcome) in pending.iter().zip(results) {
                    let is_lock = outcome.status_codes().contains(&"UNABLE_TO_LOCK_ROW");
                    if is_lock && round < self.inner.opts.retry.lock_retries {
                        locked.push(i);
                    }
                    outcomes[i] = outcome;
                }
                if !locked.is_empty() {
                    round += 1;
                    self.inner.clock.sleep(self.backoff(round)).await;
                }
                pending = locked;
            }
        }
        WriteReport {
            outcomes,
            stopped: None,
        }
    }

    async fn write_call(
        &self,
        op: &WriteOp<'_>,
        items: &[Value],
        pending: &[usize],
    ) -> Result<Vec<RecordOutcome>> {
        let path = self.data_path("composite/sobjects");
        let reply = match op {
            WriteOp::Create(object) | WriteOp::Update(object) => {
                let records: Vec<Value> = pending
                    .iter()
                    .map(|&i| {
                        let mut r = items[i].clone();
                        if let Value::Object(m) = &mut r {
                            m.insert("attributes".into(), json!({"type": object}));
                        }
                        r
                    })
                    .collect();
                let body = json!({"allOrNone": false, "records": records});
                let (method, idem) = if matches!(op, WriteOp::Create(_)) {
                    (Method::POST, Idempotency::Unsafe)
                } else {
                    (Method::PATCH, Idempotency::Safe)
                };
                self.call(CallKind::Collection, method, &path, &[], Some(&body), idem)
                    .await?
            }
            WriteOp::Delete => {
                let list: Vec<&str> = pending.iter().filter_map(|&i| items[i].as_str()).collect();
                let q = [("ids", list.join(",")), ("allOrNone", "false".to_string())];
                self.call(
                    CallKind::Collection,
                    Method::DELETE,
                    &path,
                    &q,
                    None,
                    Idempotency::Safe,
                )
                .await?
            }
        };
        decode_collection(&reply.body, pending.len())
    }

    /// Records by id through `composite/sobjects/{object}` (None where not found).
    pub async fn retrieve(
        &self,
        object: &str,
        record_ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Option<Map<String, Value>>>> {
        let mut out = Vec::with_capacity(record_ids.len());
        let path = self.data_path(&format!(
            "composite/sobjects/{}",
            super::soql::ident(object).map_err(|e| SfError::Config(e.to_string()))?
        ));
        for chunk in record_ids.chunks(200) {
            let body = json!({"ids": chunk, "fields": fields});
            let reply = self
                .call(
                    CallKind::Collection,
                    Method::POST,
                    &path,
                    &[],
                    Some(&body),
                    Idempotency::Safe,
                )
                .await?;
            out.extend(decode_retrieve(&reply.body, chunk.len())?);
        }
        Ok(out)
    }

    /// getUpdated: ids changed in [start, end] (at most 30 days back). The service ignores the
    /// seconds of both, and start must fall in an earlier minute than end
    /// (INVALID_REPLICATION_DATE otherwise).
    pub async fn get_updated(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<UpdatedIds> {
        let path = self.data_path(&format!("sobjects/{}/updated/", checked(object)?));
        let q = [
            ("start", replication_time(start)),
            ("end", replication_time(end)),
        ];
        let reply = self
            .call(
                CallKind::Updated,
                Method::GET,
                &path,
                &q,
                None,
                Idempotency::Safe,
            )
            .await?;
        decode_updated(&reply.body)
    }

    /// getDeleted: records deleted in [start, end] (at most 15 days back, fewer if purged).
    /// Seconds are ignored; start must precede end by more than one minute.
    pub async fn get_deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedRecords> {
        let path = self.data_path(&format!("sobjects/{}/deleted/", checked(object)?));
        let q = [
            ("start", replication_time(start)),
            ("end", replication_time(end)),
        ];
        let reply = self
            .call(
                CallKind::Deleted,
                Method::GET,
                &path,
                &q,
                None,
                Idempotency::Safe,
            )
            .await?;
        decode_deleted(&reply.body)
    }

    /// Which of `known_ids` were deleted since `since`: getDeleted while its window covers
    /// `since`, otherwise a comparison with the ids the org still has.
    pub async fn deleted_since(
        &self,
        object: &str,
        since: DateTime<Utc>,
        known_ids: &[String],
    ) -> Result<DeletedIds> {
        let now = self.inner.clock.now();
        // getDeleted() rules: a start equal to (or after) the end is INVALID_REPLICATION_DATE,
        // and an empty span holds no deletions, so there is nothing to ask.
        if since >= now {
            return Ok(DeletedIds {
                ids: Vec::new(),
                via: DeleteDetection::GetDeleted,
            });
        }
        // getDeleted() ignores the seconds and wants start before end by more than one
        // minute: a short span is widened backwards (an earlier start can only add records
        // that are deleted all the same).
        let start = since.min(now - chrono::Duration::minutes(2));
        match self.get_deleted(object, start, now).await {
            Ok(d) if d.earliest_date_available.is_none_or(|e| e <= since) => {
                let known: HashSet<String> =
                    known_ids.iter().filter_map(|i| ids::to_18(i)).collect();
                let ids = d
                    .records
                    .into_iter()
                    .filter_map(|(id, _)| ids::to_18(&id))
                    .filter(|id| known.contains(id))
                    .collect();
                return Ok(DeletedIds {
                    ids,
                    via: DeleteDetection::GetDeleted,
                });
            }
            Ok(_) => {}
            Err(e) if e.error_code() == Some("INVALID_REPLICATION_DATE") => {}
            Err(e) => return Err(e),
        }
        let soql = SoqlBuilder::select(object, &["Id"])
            .map_err(|e| SfError::Config(e.to_string()))?
            .build();
        let mut live = HashSet::new();
        let mut pages = self.query(soql);
        while let Some(page) = pages.next_page().await? {
            for r in page {
                if let Some(id) = r.get("Id").and_then(Value::as_str).and_then(ids::to_18) {
                    live.insert(id);
                }
            }
        }
        let ids = known_ids
            .iter()
            .filter(|k| ids::to_18(k).is_none_or(|k| !live.contains(&k)))
            .cloned()
            .collect();
        Ok(DeletedIds {
            ids,
            via: DeleteDetection::IdComparison,
        })
    }

    /// `sobjects/{object}/describe`, cached for the client's life.
    pub async fn describe(&self, object: &str) -> Result<Arc<ObjectDescribe>> {
        let key = object.to_ascii_lowercase();
        if let Some(d) = super::lock(&self.inner.describes).get(&key) {
            return Ok(d.clone());
        }
        let path = self.data_path(&format!("sobjects/{}/describe", checked(object)?));
        let reply = self
            .call(
                CallKind::Describe,
                Method::GET,
                &path,
                &[],
                None,
                Idempotency::Safe,
            )
            .await?;
        let d = Arc::new(decode_describe(&reply.body)?);
        super::lock(&self.inner.describes).insert(key, d.clone());
        Ok(d)
    }

    /// Checks that mapped fields exist in this org and allow the intended use; every problem
    /// is named (`Contact.Foo__c does not exist`, `… is not updateable`).
    pub async fn check_fields(&self, object: &str, fields: &[(&str, FieldUse)]) -> Result<()> {
        let d = self.describe(object).await?;
        let mut problems = Vec::new();
        for (name, usage) in fields {
            match d.field(name) {
                None => problems.push(format!(
                    "{}.{name} does not exist in this org (or is hidden from the integration user)",
                    d.name
                )),
                Some(f) => match usage {
                    FieldUse::Create if !f.createable => problems.push(format!(
                        "{}.{} is not createable (read-only for the integration user)",
                        d.name, f.name
                    )),
                    FieldUse::Update if !f.updateable => problems.push(format!(
                        "{}.{} is not updateable (read-only for the integration user)",
                        d.name, f.name
                    )),
                    _ => {}
                },
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SfError::Mapping {
                object: d.name.clone(),
                problems,
            })
        }
    }

    /// Whether the org has Shared Activities (events related to up to 50 contacts), read from
    /// Event's describe: the `EventWhoRelations` child relationship (EventWhoRelation is
    /// "available only if you've enabled Shared Activities", Object Reference).
    pub async fn shared_activities(&self) -> Result<bool> {
        let event = self.describe("Event").await?;
        Ok(event
            .child_relationships
            .iter()
            .any(|r| r.eq_ignore_ascii_case("EventWhoRelations")))
    }

    /// `GET /limits`.
    pub async fn limits(&self) -> Result<BTreeMap<String, LimitValue>> {
        let path = self.data_path("limits");
        let reply = self
            .call(
                CallKind::Limits,
                Method::GET,
                &path,
                &[],
                None,
                Idempotency::Safe,
            )
            .await?;
        decode_limits(&reply.body)
    }
}

/// An sObject Collections answer: one outcome per record sent, in order.
pub(crate) fn decode_collection(body: &[u8], expected: usize) -> Result<Vec<RecordOutcome>> {
    let v = json_of("sObject Collections", body)?;
    let arr = v
        .as_array()
        .ok_or_else(|| malformed("sObject Collections", "expected an array of results"))?;
    if arr.len() != expected {
        return Err(malformed(
            "sObject Collections",
            format!("{} results for {expected} records", arr.len()),
        ));
    }
    Ok(arr.iter().map(parse_outcome).collect())
}

/// A `composite/sobjects/{object}` retrieve answer: a record or null per id asked.
pub(crate) fn decode_retrieve(
    body: &[u8],
    expected: usize,
) -> Result<Vec<Option<Map<String, Value>>>> {
    let v = json_of("retrieve", body)?;
    let arr = v
        .as_array()
        .ok_or_else(|| malformed("retrieve", "expected an array"))?;
    if arr.len() != expected {
        return Err(malformed("retrieve", "result count differs from id count"));
    }
    Ok(arr.iter().map(|r| r.as_object().cloned()).collect())
}

pub(crate) fn decode_updated(body: &[u8]) -> Result<UpdatedIds> {
    let v = json_of("getUpdated", body)?;
    let ids = v
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("getUpdated", "ids missing"))?
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    Ok(UpdatedIds {
        ids,
        latest_date_covered: sf_datetime(v.get("latestDateCovered")),
    })
}

pub(crate) fn decode_deleted(body: &[u8]) -> Result<DeletedRecords> {
    let v = json_of("getDeleted", body)?;
    let mut records = Vec::new();
    for r in v
        .get("deletedRecords")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("getDeleted", "deletedRecords missing"))?
    {
        let id = r.get("id").and_then(Value::as_str);
        let when = sf_datetime(r.get("deletedDate"));
        match (id, when) {
            (Some(id), Some(when)) => records.push((id.to_string(), when)),
            _ => {
                return Err(malformed(
                    "getDeleted",
                    "a deleted record lacks id or deletedDate",
                ));
            }
        }
    }
    Ok(DeletedRecords {
        records,
        earliest_date_available: sf_datetime(v.get("earliestDateAvailable")),
        latest_date_covered: sf_datetime(v.get("latestDateCovered")),
    })
}

pub(crate) fn decode_describe(body: &[u8]) -> Result<ObjectDescribe> {
    let v = json_of("describe", body)?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("describe", "name missing"))?
        .to_string();
    let mut fields = Vec::new();
    for f in v
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("describe", "fields missing"))?
    {
        let b = |k: &str| f.get(k).and_then(Value::as_bool).unwrap_or(false);
        let Some(fname) = f.get("name").and_then(Value::as_str) else {
            return Err(malformed("describe", "a field has no name"));
        };
        fields.push(FieldInfo {
            name: fname.to_string(),
            kind: f
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            length: f.get("length").and_then(Value::as_u64).unwrap_or(0),
            createable: b("createable"),
            updateable: b("updateable"),
            nillable: b("nillable"),
        });
    }
    Ok(ObjectDescribe {
        name,
        key_prefix: v
            .get("keyPrefix")
            .and_then(Value::as_str)
            .map(str::to_string),
        fields,
        child_relationships: v
            .get("childRelationships")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("relationshipName")?.as_str().map(str::to_string))
            .collect(),
    })
}

pub(crate) fn decode_limits(body: &[u8]) -> Result<BTreeMap<String, LimitValue>> {
    let v = json_of("limits", body)?;
    let obj = v
        .as_object()
        .ok_or_else(|| malformed("limits", "expected an object"))?;
    Ok(obj
        .iter()
        .filter_map(|(k, l)| {
            Some((
                k.clone(),
                LimitValue {
                    max: l.get("Max")?.as_i64()?,
                    remaining: l.get("Remaining")?.as_i64()?,
                },
            ))
        })
        .collect())
}

fn checked(object: &str) -> Result<&str> {
    super::soql::ident(object).map_err(|e| SfError::Config(e.to_string()))
}

/// DUPLICATES_DETECTED names the records a duplicate rule matched in `duplicateResult`;
/// the message carries their ids, so the admin knows which records to merge.
fn with_duplicates(message: &str, duplicates: Option<&Value>) -> String {
    let ids: Vec<&str> = duplicates
        .and_then(|d| d.get("matchResults"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("matchRecords").and_then(Value::as_array))
        .flatten()
        .filter_map(|r| r.get("record")?.get("Id")?.as_str())
        .collect();
    if ids.is_empty() {
        message.to_string()
    } else {
        format!("{message} (matches {})", ids.join(", "))
    }
}

fn parse_outcome(r: &Value) -> RecordOutcome {
    let success = r.get("success").and_then(Value::as_bool).unwrap_or(false);
    let id = r.get("id").and_then(Value::as_str);
    match (success, id) {
        (true, Some(id)) => RecordOutcome::Success { id: id.to_string() },
        _ => {
            let errors: Vec<RecordError> = r
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| RecordError {
                            status_code: e
                                .get("statusCode")
                                .and_then(Value::as_str)
                                .unwrap_or("UNKNOWN")
                                .to_string(),
                            message: with_duplicates(
                                e.get("message").and_then(Value::as_str).unwrap_or(""),
                                e.get("duplicateResult"),
                            ),
                            fields: e
                                .get("fields")
                                .and_then(Value::as_array)
                                .map(|f| {
                                    f.iter()
                                        .filter_map(|x| x.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let errors = if errors.is_empty() {
                vec![RecordError {
                    status_code: "UNKNOWN".into(),
                    message: "Salesforce reported a failure without errors".into(),
                    fields: vec![],
                }]
            } else {
                errors
            };
            RecordOutcome::Failed { errors }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Header values as the REST API Developer Guide prints them ("Limit Info Header"):
    // `api-usage=18/5000` in its example response, the per-app form from the field list,
    // and `api-usage=10018/100000; api-bursts=1/750` from the current page.
    const DOC_PLAIN: &str = "api-usage=18/5000";
    const DOC_PER_APP: &str =
        "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)";
    const DOC_BURSTS: &str = "api-usage=10018/100000; api-bursts=1/750";

    fn usage(used: u64, max: u64, per_app: Option<AppUsage>) -> Option<ApiUsage> {
        Some(ApiUsage { used, max, per_app })
    }

    #[test]
    fn documented_limit_info_header_is_parsed() {
        assert_eq!(parse_limit_info(DOC_PLAIN), usage(18, 5000, None));
        assert_eq!(
            parse_limit_info(DOC_PER_APP),
            usage(
                25,
                5000,
                Some(AppUsage {
                    app: "sample-connected-app".into(),
                    used: 17,
                    max: 250
                })
            )
        );
        assert_eq!(parse_limit_info(DOC_BURSTS), usage(10018, 100000, None));
    }

    #[test]
    fn limit_info_header_tolerates_spacing_order_and_missing_parts() {
        assert_eq!(
            parse_limit_info(" per-app-api-usage = 1/100 ( appName=x ) ;api-usage = 25 / 5000 "),
            usage(
                25,
                5000,
                Some(AppUsage {
                    app: "x".into(),
                    used: 1,
                    max: 100
                })
            )
        );
        assert_eq!(
            parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250"),
            usage(
                25,
                5000,
                Some(AppUsage {
                    app: String::new(),
                    used: 17,
                    max: 250
                })
            )
        );
        assert_eq!(
            parse_limit_info("api-usage=25/5000;"),
            usage(25, 5000, None)
        );
        assert_eq!(
            parse_limit_info("api-usage=25/5000; per-app-api-usage=x/250(appName=a)"),
            usage(25, 5000, None)
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=a)"),
            None
        );
        assert_eq!(parse_limit_info("api-usage=x/1"), None);
        assert_eq!(parse_limit_info(""), None);
    }
}
