//! Bulk API 2.0 ingest jobs, as the Bulk API 2.0 Developer Guide describes them
//! (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/):
//!
//! - `POST jobs/ingest` creates a job (`object`, `operation` insert | update | upsert | delete,
//!   `externalIdFieldName` for upsert, `contentType` CSV, `lineEnding`, `columnDelimiter`) in
//!   state Open; `PUT jobs/ingest/{id}/batches` takes its CSV (201, no body; one upload of at
//!   most 150 MB base64, [`MAX_UPLOAD_BYTES`] raw); `PATCH` with state UploadComplete queues
//!   it, Aborted drops it unprocessed; `GET` tells its state and counts; `DELETE` removes it.
//! - Processing is asynchronous: a queued job reads UploadComplete, then InProgress for at least
//!   one poll (`Bulk::polls_in_progress`), then JobComplete (or Failed, with `errorMessage`);
//!   a queued job nobody polls for a minute runs anyway, as a closed job does in Salesforce.
//!   Each row goes through the same store writes, validation and record faults as the REST
//!   API's.
//! - Results: `successfulResults/` (`sf__Id`, `sf__Created` + the row), `failedResults/`
//!   (`sf__Id`, `sf__Error` + the row), `unprocessedrecords/` (the row), in no guaranteed
//!   order ("The order of records in the response is not guaranteed to match the ordering of
//!   records in the original job data"): this emulator answers them in reverse.
//! - Limits: every 10,000 records processed are a batch of DailyBulkApiBatches (15,000 per
//!   rolling 24 hours, shared with Bulk API); past it "the remaining data isn't processed. The
//!   ingest job is marked as having failed."

use super::Org;
use super::csv::{self, LineEnding};
use super::store::{RecError, WriteKind};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// "A request can provide CSV data that does not in total exceed 150 MB of base64 encoded
/// content": the raw bytes that encode to 150 MB.
pub const MAX_UPLOAD_BYTES: usize = 150 * 1024 * 1024 / 4 * 3;
/// "Salesforce creates a separate batch for every 10,000 records in your job data."
const RECORDS_PER_BATCH: usize = 10_000;
/// "You can submit up to 15,000 batches per rolling 24-hour period."
const DAILY_BATCHES: u64 = 15_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    fn name(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }
    fn done(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Insert,
    Update,
    Upsert,
    Delete,
}

impl Operation {
    fn parse(s: &str) -> Option<Operation> {
        Some(match s {
            "insert" => Operation::Insert,
            "update" => Operation::Update,
            "upsert" => Operation::Upsert,
            "delete" => Operation::Delete,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
        }
    }
}

pub(crate) struct IngestJob {
    id: String,
    object: String,
    operation: Operation,
    external_id: Option<String>,
    line_ending: LineEnding,
    delimiter_name: String,
    delimiter: u8,
    created_by: String,
    created: DateTime<Utc>,
    modstamp: DateTime<Utc>,
    api_version: String,
    state: JobState,
    data: Option<Vec<u8>>,
    polls_left: u32,
    error_message: Option<String>,
    header: Vec<String>,
    successful: Vec<(String, bool, Vec<String>)>,
    failed: Vec<(String, String, Vec<String>)>,
    unprocessed: Vec<Vec<String>>,
}

/// The org's Bulk API 2.0 side.
pub(crate) struct Bulk {
    jobs: BTreeMap<String, IngestJob>,
    /// Batches processed in the rolling 24 hours, as (time, count).
    batches: VecDeque<(DateTime<Utc>, u64)>,
    pub batches_max: u64,
    /// Polls a queued job answers InProgress before it is processed (at least one).
    pub polls_in_progress: u32,
    /// Fault: the next job processed fails after this many rows (the rest unprocessed).
    pub fail_after: Option<usize>,
}

impl Default for Bulk {
    fn default() -> Self {
        Bulk {
            jobs: BTreeMap::new(),
            batches: VecDeque::new(),
            batches_max: DAILY_BATCHES,
            polls_in_progress: 1,
            fail_after: None,
        }
    }
}

impl Bulk {
    /// DailyBulkApiBatches used in the 24 hours before `now`.
    pub fn batches_used(&mut self, now: DateTime<Utc>) -> u64 {
        let cutoff = now - chrono::Duration::hours(24);
        while self.batches.front().is_some_and(|(t, _)| *t <= cutoff) {
            self.batches.pop_front();
        }
        self.batches.iter().map(|(_, n)| n).sum()
    }
    pub fn use_batches(&mut self, now: DateTime<Utc>, n: u64) {
        self.batches.push_back((now, n));
    }
    /// Jobs by state name (for tests).
    pub fn states(&self) -> Vec<(String, String)> {
        self.jobs
            .values()
            .map(|j| (j.id.clone(), j.state.name().to_string()))
            .collect()
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!([{"errorCode": code, "message": message}]))
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested resource does not exist",
    )
}

fn csv_response(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv;charset=UTF-8"),
    );
    r
}

fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn info(job: &IngestJob) -> Value {
    let mut v = json!({
        "id": job.id,
        "operation": job.operation.name(),
        "object": job.object,
        "createdById": job.created_by,
        "createdDate": format_time(job.created),
        "systemModstamp": format_time(job.modstamp),
        "state": job.state.name(),
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": job.api_version.parse::<f64>().unwrap_or(0.0),
        "jobType": "V2Ingest",
        "lineEnding": job.line_ending.name(),
        "columnDelimiter": job.delimiter_name,
        "numberRecordsProcessed": job.successful.len() + job.failed.len(),
        "numberRecordsFailed": job.failed.len(),
        "retries": 0,
        "totalProcessingTime": 0,
        "apiActiveProcessingTime": 0,
        "apexProcessingTime": 0,
    });
    if let Some(f) = &job.external_id {
        v["externalIdFieldName"] = json!(f);
    }
    if job.state == JobState::Open {
        v["contentUrl"] = json!(format!(
            "services/data/v{}/jobs/ingest/{}/batches",
            job.api_version, job.id
        ));
    }
    if let Some(m) = &job.error_message {
        v["errorMessage"] = json!(m);
    }
    v
}

/// Requests under `jobs/ingest`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ingest(
    org: &mut Org,
    version: &str,
    user_id: &str,
    now: DateTime<Utc>,
    method: &Method,
    rest: &[&str],
    body: &[u8],
) -> Response {
    match (rest, method) {
        ([], &Method::POST) => create(org, version, user_id, now, body),
        ([], &Method::GET) => {
            let all: Vec<Value> = org.bulk.jobs.values().map(info).collect();
            json_response(
                StatusCode::OK,
                &json!({"done": true, "records": all, "nextRecordsUrl": null}),
            )
        }
        ([id], &Method::GET) => poll(org, id, now),
        ([id], &Method::PATCH) => change_state(org, id, now, body),
        ([id], &Method::DELETE) => match org.bulk.jobs.get(*id).map(|j| j.state) {
            None => not_found(),
            Some(JobState::Open | JobState::InProgress) => error(
                StatusCode::BAD_REQUEST,
                "InvalidJobState",
                "A job can be deleted only in the UploadComplete, JobComplete, Aborted or Failed state",
            ),
            Some(_) => {
                org.bulk.jobs.remove(*id);
                StatusCode::NO_CONTENT.into_response()
            }
        },
        ([id, "batches"], &Method::PUT) => upload(org, id, body),
        (
            [
                id,
                kind @ ("successfulResults" | "failedResults" | "unprocessedrecords"),
            ],
            &Method::GET,
        ) => results(org, id, kind),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("HTTP Method '{method}' not allowed for this resource"),
        ),
    }
}

fn create(
    org: &mut Org,
    version: &str,
    user_id: &str,
    now: DateTime<Utc>,
    body: &[u8],
) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body is not a JSON object",
        );
    };
    let s = |k: &str| req.get(k).and_then(Value::as_str);
    let invalid = |m: String| error(StatusCode::BAD_REQUEST, "InvalidJob", &m);
    let Some(schema) = s("object").and_then(|o| org.store.catalog.get(o)).cloned() else {
        return invalid(format!(
            "Entity '{}' is not supported by the Bulk API",
            s("object").unwrap_or("")
        ));
    };
    if schema.key_prefix.is_empty() {
        return invalid(format!(
            "Entity '{}' is not supported by the Bulk API",
            schema.name
        ));
    }
    let Some(operation) = s("operation").and_then(Operation::parse) else {
        return invalid(format!(
            "Invalid operation '{}': insert, update, upsert or delete",
            s("operation").unwrap_or("")
        ));
    };
    let external_id = match (operation, s("externalIdFieldName")) {
        (Operation::Upsert, None) => {
            return invalid("An upsert job needs externalIdFieldName".into());
        }
        (Operation::Upsert, Some(f)) => {
            let is_external = schema.field(f).is_some_and(|m| {
                m.name == "Id"
                    || schema.describe["fields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|d| d["name"] == json!(m.name) && d["externalId"] == json!(true))
            });
            if !is_external {
                return invalid(format!(
                    "Field '{f}' is not an External ID field of {}",
                    schema.name
                ));
            }
            schema.field(f).map(|m| m.name.clone())
        }
        (_, _) => None,
    };
    if s("contentType").is_some_and(|c| c != "CSV") {
        return invalid("contentType must be CSV".into());
    }
    let Some(line_ending) = LineEnding::parse(s("lineEnding").unwrap_or("LF")) else {
        return invalid("lineEnding must be LF or CRLF".into());
    };
    let delimiter_name = s("columnDelimiter").unwrap_or("COMMA").to_string();
    let Some(delimiter) = csv::delimiter(&delimiter_name) else {
        return invalid(format!("Invalid columnDelimiter '{delimiter_name}'"));
    };
    let id = org.store.ids.next("750");
    let job = IngestJob {
        id: id.clone(),
        object: schema.name.clone(),
        operation,
        external_id,
        line_ending,
        delimiter_name,
        delimiter,
        created_by: user_id.to_string(),
        created: now,
        modstamp: now,
        api_version: version.to_string(),
        state: JobState::Open,
        data: None,
        polls_left: 0,
        error_message: None,
        header: Vec::new(),
        successful: Vec::new(),
        failed: Vec::new(),
        unprocessed: Vec::new(),
    };
    let body = info(&job);
    org.bulk.jobs.insert(id, job);
    json_response(StatusCode::OK, &body)
}

fn upload(org: &mut Org, id: &str, body: &[u8]) -> Response {
    let Some(job) = org.bulk.jobs.get_mut(id) else {
        return not_found();
    };
    if job.state != JobState::Open || job.data.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidJobState",
            "Data can be uploaded only once, to a job in the Open state",
        );
    }
    if body.len() > MAX_UPLOAD_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ClientInputError",
            "The job data exceeds 150 MB of base64 encoded content",
        );
    }
    job.data = Some(body.to_vec());
    StatusCode::CREATED.into_response()
}

fn change_state(org: &mut Org, id: &str, now: DateTime<Utc>, body: &[u8]) -> Response {
    let polls = org.bulk.polls_in_progress.max(1);
    let Some(job) = org.bulk.jobs.get_mut(id) else {
        return not_found();
    };
    let wanted = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_string));
    match (wanted.as_deref(), job.state) {
        (Some("UploadComplete"), JobState::Open) => {
            job.state = JobState::UploadComplete;
            job.polls_left = polls;
        }
        // "If you abort a job, Salesforce doesn't process the job": what was not processed
        // yet stays unprocessed.
        (Some("Aborted"), JobState::Open | JobState::UploadComplete | JobState::InProgress) => {
            job.state = JobState::Aborted;
            if let Some(data) = job.data.take()
                && let Ok(mut rows) = csv::parse(&data, job.delimiter, job.line_ending)
                && !rows.is_empty()
            {
                job.header = rows.remove(0);
                job.unprocessed = rows;
            }
        }
        (Some(s @ ("UploadComplete" | "Aborted")), state) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidJobState",
                &format!("A job in the {} state cannot change to {s}", state.name()),
            );
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidJobState",
                "state must be UploadComplete or Aborted",
            );
        }
    }
    job.modstamp = now;
    let body = info(job);
    json_response(StatusCode::OK, &body)
}

/// How long a queued job waits for a poll before it is processed anyway: Salesforce runs
/// a closed job whether or not anyone asks about it (a client may be gone).
const UNPOLLED_RUN_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// Processes the queued jobs nobody polled for [`UNPOLLED_RUN_AFTER`]. Called on every
/// request, so a job closed by a client that then died still runs.
pub(crate) fn run_unpolled(org: &mut Org, now: DateTime<Utc>) {
    let due: Vec<String> = org
        .bulk
        .jobs
        .values()
        .filter(|j| matches!(j.state, JobState::UploadComplete | JobState::InProgress))
        .filter(|j| now - j.modstamp >= UNPOLLED_RUN_AFTER)
        .map(|j| j.id.clone())
        .collect();
    for id in due {
        process(org, &id, now);
    }
}

/// Job info; a queued job moves on by one step each poll, and is processed when its
/// InProgress polls are over.
fn poll(org: &mut Org, id: &str, now: DateTime<Utc>) -> Response {
    let Some(state) = org.bulk.jobs.get(id).map(|j| j.state) else {
        return not_found();
    };
    match state {
        JobState::UploadComplete => {
            if let Some(job) = org.bulk.jobs.get_mut(id) {
                job.state = JobState::InProgress;
                job.modstamp = now;
            }
        }
        JobState::InProgress => {
            let left = org.bulk.jobs.get(id).map_or(0, |j| j.polls_left);
            if left > 1 {
                if let Some(job) = org.bulk.jobs.get_mut(id) {
                    job.polls_left -= 1;
                    job.modstamp = now;
                }
            } else {
                process(org, id, now);
            }
        }
        _ => {}
    }
    match org.bulk.jobs.get(id) {
        Some(job) => json_response(StatusCode::OK, &info(job)),
        None => not_found(),
    }
}

fn results(org: &Org, id: &str, kind: &str) -> Response {
    let Some(job) = org.bulk.jobs.get(id) else {
        return not_found();
    };
    let ready = match kind {
        "unprocessedrecords" => job.state.done(),
        _ => matches!(job.state, JobState::JobComplete | JobState::Failed),
    };
    if !ready {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidJobState",
            &format!(
                "The job is {}: its results are not available",
                job.state.name()
            ),
        );
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let with = |first: &[&str]| {
        first
            .iter()
            .map(|s| s.to_string())
            .chain(job.header.iter().cloned())
            .collect::<Vec<_>>()
    };
    match kind {
        "successfulResults" => {
            rows.push(with(&["sf__Id", "sf__Created"]));
            rows.extend(job.successful.iter().rev().map(|(id, created, row)| {
                let mut r = vec![id.clone(), created.to_string()];
                r.extend(row.iter().cloned());
                r
            }));
        }
        "failedResults" => {
            rows.push(with(&["sf__Id", "sf__Error"]));
            rows.extend(job.failed.iter().rev().map(|(id, e, row)| {
                let mut r = vec![id.clone(), e.clone()];
                r.extend(row.iter().cloned());
                r
            }));
        }
        _ => {
            rows.push(job.header.clone());
            rows.extend(job.unprocessed.iter().rev().cloned());
        }
    }
    csv_response(csv::write(&rows, job.delimiter, job.line_ending))
}

/// `sf__Error`: status code, message and fields, as in `REQUIRED_FIELD_MISSING:Required
/// fields are missing: [LastName]:LastName --`.
fn error_text(e: &RecError) -> String {
    format!("{}:{}:{} --", e.status_code, e.message, e.fields.join(","))
}

/// Runs a queued job's rows through the store.
fn process(org: &mut Org, id: &str, now: DateTime<Utc>) {
    let Some(mut job) = org.bulk.jobs.remove(id) else {
        return;
    };
    job.modstamp = now;
    let parsed = job
        .data
        .take()
        .ok_or_else(|| "no job data was uploaded".to_string())
        .and_then(|d| csv::parse(&d, job.delimiter, job.line_ending));
    let mut rows = match parsed {
        Ok(rows) => rows,
        Err(m) => {
            job.state = JobState::Failed;
            job.error_message = Some(format!("ClientInputError : {m}"));
            org.bulk.jobs.insert(job.id.clone(), job);
            return;
        }
    };
    if rows.is_empty() {
        job.state = JobState::JobComplete;
        org.bulk.jobs.insert(job.id.clone(), job);
        return;
    }
    job.header = rows.remove(0);
    let schema = org.store.catalog.get(&job.object).cloned();
    let unknown = job
        .header
        .iter()
        .find(|h| schema.as_ref().is_none_or(|s| s.field(h).is_none()));
    if let Some(h) = unknown {
        job.state = JobState::Failed;
        job.error_message = Some(format!("InvalidBatch : Field name not found : {h}"));
        job.unprocessed = rows;
        org.bulk.jobs.insert(job.id.clone(), job);
        return;
    }
    let Some(schema) = schema else { return };
    // Batches of 10,000 records against the daily allocation.
    let remaining = org
        .bulk
        .batches_max
        .saturating_sub(org.bulk.batches_used(now)) as usize;
    let mut allowed = remaining.saturating_mul(RECORDS_PER_BATCH);
    let mut failure = None;
    if allowed < rows.len() {
        failure =
            Some("ExceededQuota : the daily Bulk API batch allocation is used up".to_string());
    }
    if let Some(n) = org.bulk.fail_after.take()
        && n < allowed.min(rows.len())
    {
        allowed = n;
        failure = Some("InternalServerError : the job failed while processing batches".into());
    }
    let take = allowed.min(rows.len());
    let rest = rows.split_off(take);
    let batches = take.div_ceil(RECORDS_PER_BATCH) as u64;
    if batches > 0 {
        org.bulk.use_batches(now, batches);
    }
    let key_column = |name: &str| job.header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let id_col = key_column("Id");
    let ext_col = job.external_id.as_deref().and_then(key_column);
    // External id value (lower-case) → record id, for upserts.
    let mut by_external: HashMap<String, String> = HashMap::new();
    if let Some(field) = &job.external_id {
        for r in org
            .store
            .table(&schema.name)
            .into_iter()
            .flat_map(|t| t.values())
        {
            if r.deleted.is_none()
                && let (Some(v), Some(id)) = (
                    r.fields.get(field).and_then(Value::as_str),
                    r.fields.get("Id").and_then(Value::as_str),
                )
            {
                by_external.insert(v.to_ascii_lowercase(), id.to_string());
            }
        }
    }
    let user = job.created_by.clone();
    for row in rows {
        let given_id = id_col.and_then(|c| row.get(c)).cloned().unwrap_or_default();
        let outcome = (|| -> Result<(String, bool), RecError> {
            if row.len() != job.header.len() {
                return Err(RecError::new(
                    "INVALID_FIELD",
                    format!(
                        "The row has {} values and the header {} columns",
                        row.len(),
                        job.header.len()
                    ),
                    &[],
                ));
            }
            let fields = values(&schema, &job.header, &row)?;
            match job.operation {
                Operation::Insert => org
                    .store
                    .write(&schema.name, WriteKind::Create, &fields, &user, now)
                    .map(|id| (id, true)),
                // The store leaves the Id column out of an update's fields.
                Operation::Update => org
                    .store
                    .write(
                        &schema.name,
                        WriteKind::Update(&given_id),
                        &fields,
                        &user,
                        now,
                    )
                    .map(|id| (id, false)),
                Operation::Upsert => {
                    let key = ext_col
                        .and_then(|c| row.get(c))
                        .map(|v| v.to_ascii_lowercase())
                        .unwrap_or_default();
                    match by_external.get(&key).cloned().filter(|_| !key.is_empty()) {
                        Some(id) => org
                            .store
                            .write(&schema.name, WriteKind::Update(&id), &fields, &user, now)
                            .map(|id| (id, false)),
                        None => {
                            let id = org.store.write(
                                &schema.name,
                                WriteKind::Create,
                                &fields,
                                &user,
                                now,
                            )?;
                            by_external.insert(key, id.clone());
                            Ok((id, true))
                        }
                    }
                }
                Operation::Delete => org.store.delete(&given_id, now).map(|id| (id, false)),
            }
        })();
        match outcome {
            Ok((id, created)) => job.successful.push((id, created, row)),
            Err(e) => job.failed.push((given_id, error_text(&e), row)),
        }
    }
    job.unprocessed = rest;
    match failure {
        Some(m) => {
            job.state = JobState::Failed;
            job.error_message = Some(m);
        }
        None => job.state = JobState::JobComplete,
    }
    org.bulk.jobs.insert(job.id.clone(), job);
}

/// A row's values as the REST API would take them: by the field's type; an empty value is
/// left out ("Empty field values are ignored when you update records"), `#N/A` is null.
fn values(
    schema: &super::schema::ObjectSchema,
    header: &[String],
    row: &[String],
) -> Result<Map<String, Value>, RecError> {
    let mut out = Map::new();
    for (name, text) in header.iter().zip(row) {
        if text.is_empty() {
            continue;
        }
        let Some(meta) = schema.field(name) else {
            continue;
        };
        let bad = |what: &str| {
            RecError::new(
                "INVALID_FIELD",
                format!("'{text}' is not a valid value for the type {what}"),
                &[meta.name.as_str()],
            )
        };
        let v = if text == "#N/A" {
            Value::Null
        } else {
            match meta.kind.as_str() {
                "boolean" => match text.to_ascii_lowercase().as_str() {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => return Err(bad("xsd:boolean")),
                },
                "int" => json!(text.parse::<i64>().map_err(|_| bad("xsd:int"))?),
                "double" | "currency" | "percent" => {
                    json!(text.parse::<f64>().map_err(|_| bad("xsd:double"))?)
                }
                _ => Value::String(text.clone()),
            }
        };
        out.insert(meta.name.clone(), v);
    }
    Ok(out)
}
