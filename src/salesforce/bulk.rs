//! Bulk API 2.0 ingest jobs for large writes (Bulk API 2.0 Developer Guide,
//! https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/): create a
//! job, upload its CSV once, mark it UploadComplete, poll with back-off until it is
//! JobComplete, Failed or Aborted, then read `successfulResults/`, `failedResults/` and (for
//! a job that did not complete) `unprocessedrecords/`, and map every row back to the record
//! it came from, as a [`WriteReport`] in input order like sObject Collections'.
//!
//! Results are not in input order ("The order of records in the response is not guaranteed
//! to match the ordering of records in the original job data"): rows are matched by a key
//! column the caller names (the create-journal marker for inserts, `Id` for updates), which
//! every result row repeats from the original data.
//!
//! Measured with `tether-bench --reps 500 --contacts 100 --events 50` (67,500 records, a debug
//! build): the initial sync's Salesforce writes took 24 calls in three jobs (contacts, events,
//! event relations: per job a limits check, create, upload, close, two polls, two result
//! reads) where sObject Collections took 250; the whole sync 103 Salesforce calls against 329
//! (the collections floor is 244), the rest being reads and lookups.
//!
//! Failure rules, so that nothing is duplicated or lost:
//! - Before `UploadComplete` is accepted, nothing can be processed: any failure aborts the job
//!   (best effort; an Open job is never processed) and its rows are `NotAttempted`.
//! - After it, a row the results do not account for is `Ambiguous` (the journal looks the
//!   create up before it is sent again); rows listed as unprocessed are `NotAttempted`.
//! - A job still running after `bulk_max_wait` is aborted; what it did by then is read back,
//!   the rest is unprocessed, or ambiguous when even that cannot be told.

use super::ops::{RecordError, RecordOutcome, WriteReport};
use super::{Answer, CallKind, Idempotency, Payload, Result, SalesforceClient, SfError, csv};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Records a write phase needs before it goes through Bulk API 2.0. Salesforce's own advice
/// ("Bulk API and Bulk API 2.0 Limits and Allocations"): "Any data operation that includes
/// more than 2,000 records is a good candidate for Bulk API 2.0 … Jobs with fewer than 2,000
/// records should involve 'bulkified' synchronous calls in REST (for example, Composite)".
/// It is also where the calls cross: a job costs about 8 calls (limits check, create, upload,
/// close, two polls or more, two result reads) where collections take one call per 200
/// records, so 2,000 records are 10 collection calls against 8.
pub const DEFAULT_BULK_THRESHOLD: usize = 2_000;

/// Longest wait for a job before it is aborted: Salesforce gives each 10,000-record batch up
/// to 5 minutes before retrying it, so a sync waits for two such rounds.
pub const DEFAULT_BULK_MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// "Salesforce creates a separate batch for every 10,000 records in your job data"; each
/// counts against DailyBulkApiBatches.
const RECORDS_PER_BATCH: usize = 10_000;

/// "To account for the base64 conversion increase, upload data that does not exceed 100 MB":
/// more records than that go in further jobs.
const MAX_JOB_BYTES: usize = 100 * 1024 * 1024;

/// First wait between polls; doubled each poll up to [`MAX_POLL_DELAY`].
const FIRST_POLL_DELAY: Duration = Duration::from_millis(500);
const MAX_POLL_DELAY: Duration = Duration::from_secs(20);

/// A Bulk API 2.0 ingest operation tether uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOperation {
    Insert,
    Update,
}

impl BulkOperation {
    fn name(self) -> &'static str {
        match self {
            BulkOperation::Insert => "insert",
            BulkOperation::Update => "update",
        }
    }
}

/// What a job said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobInfo {
    id: String,
    state: String,
    error_message: Option<String>,
}

impl JobInfo {
    fn finished(&self) -> bool {
        matches!(self.state.as_str(), "JobComplete" | "Failed" | "Aborted")
    }
}

fn decode_job(body: &[u8]) -> Result<JobInfo> {
    let v: Value = serde_json::from_slice(body).map_err(|e| SfError::Malformed {
        context: "bulk_job".into(),
        detail: format!("invalid JSON ({e})"),
    })?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match (s("id"), s("state")) {
        (Some(id), Some(state)) => Ok(JobInfo {
            id,
            state,
            error_message: s("errorMessage"),
        }),
        _ => Err(SfError::Malformed {
            context: "bulk_job".into(),
            detail: "the job info has no id or state".into(),
        }),
    }
}

/// The error of a job that was never closed for processing: whatever its answer was, none of
/// its records can have been written, so it is not ambiguous.
fn not_processed(e: SfError) -> SfError {
    match e {
        SfError::Ambiguous { message } => SfError::Transport {
            attempts: 1,
            message: format!("{message}; the Bulk API job was not processed"),
        },
        other => other,
    }
}

/// A value as job data: `#N/A` sets null ("To set a field value to null, use a field value
/// of #N/A"); an absent value is empty, which an update leaves as it is. (A text value that is
/// literally `#N/A` cannot be written through Bulk API: it is null there too.)
fn cell(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Null) => "#N/A".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// `sf__Error`: `STATUS_CODE:message:fields --`.
fn decode_error(text: &str) -> RecordError {
    let text = text.trim().trim_end_matches("--").trim_end();
    let (code, rest) = text.split_once(':').unwrap_or(("UNKNOWN_EXCEPTION", text));
    let (message, fields) = match rest.rsplit_once(':') {
        // The last part names fields only when it looks like a field list.
        Some((m, f)) if !f.is_empty() && f.split(',').all(|x| super::soql::ident(x).is_ok()) => {
            (m, f.split(',').map(str::to_string).collect())
        }
        Some((m, "")) => (m, Vec::new()),
        _ => (rest, Vec::new()),
    };
    RecordError {
        status_code: code.trim().to_string(),
        message: message.trim().to_string(),
        fields,
    }
}

/// The job data of `records`: the columns any record names, in first-seen order.
fn job_data(records: &[&Map<String, Value>]) -> String {
    let mut columns: Vec<String> = Vec::new();
    for r in records {
        for k in r.keys() {
            if !columns.iter().any(|c| c == k) {
                columns.push(k.clone());
            }
        }
    }
    let mut text = String::new();
    csv::write_row(&mut text, &columns);
    for r in records {
        let row: Vec<String> = columns.iter().map(|c| cell(r.get(c))).collect();
        csv::write_row(&mut text, &row);
    }
    text
}

/// Records split into jobs of at most [`MAX_JOB_BYTES`] of CSV (by a size estimate).
fn jobs_of(records: &[Map<String, Value>]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, r) in records.iter().enumerate() {
        let size: usize = r
            .iter()
            .map(|(k, v)| k.len() + cell(Some(v)).len() + 3)
            .sum();
        if bytes + size > MAX_JOB_BYTES && i > start {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

impl SalesforceClient {
    /// Whether the org's DailyBulkApiBatches leave room for `records` more records (one
    /// `/limits` call). Any doubt (the call fails, the limit is not listed) says no: the
    /// write then goes through sObject Collections.
    pub async fn bulk_allows(&self, records: usize) -> bool {
        match self.limits().await {
            Ok(limits) => limits.get("DailyBulkApiBatches").is_some_and(|l| {
                // A job also has an empty parent batch.
                let needed = records.div_ceil(RECORDS_PER_BATCH) + 1;
                l.remaining >= needed as i64
            }),
            Err(e) => {
                tracing::info!(error = %e, "Salesforce limits unknown; writing through sObject Collections");
                false
            }
        }
    }

    /// Writes `records` through Bulk API 2.0 ingest jobs. `key` names the columns whose values
    /// together tell every record apart (the create-journal marker for inserts, `Id` for
    /// updates, `EventId` and `RelationId` for event relations): result rows are matched to
    /// records by them. Outcomes are in input order.
    pub async fn bulk_write(
        &self,
        object: &str,
        operation: BulkOperation,
        records: &[Map<String, Value>],
        key: &[&str],
    ) -> WriteReport {
        let mut outcomes = vec![RecordOutcome::NotAttempted; records.len()];
        let mut stopped = None;
        for range in jobs_of(records) {
            let slice: Vec<&Map<String, Value>> = records[range.clone()].iter().collect();
            match self.run_job(object, operation, &slice, key).await {
                Ok(o) => {
                    for (i, o) in range.zip(o) {
                        outcomes[i] = o;
                    }
                }
                Err(e) => {
                    // Nothing of this job ran; later ones are not started either.
                    stopped = Some(e);
                    break;
                }
            }
        }
        WriteReport { outcomes, stopped }
    }

    /// One job. `Err`: nothing of it was processed (or can be).
    async fn run_job(
        &self,
        object: &str,
        operation: BulkOperation,
        records: &[&Map<String, Value>],
        key: &[&str],
    ) -> Result<Vec<RecordOutcome>> {
        let data = job_data(records);
        let body = json!({
            "object": object,
            "operation": operation.name(),
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        // A job created twice is harmless: an Open job is never processed.
        let job = self
            .job_call(Method::POST, "", Some(&body), Idempotency::Safe)
            .await?;
        tracing::info!(job = %job.id, object, operation = operation.name(), records = records.len(), "Bulk API 2.0 job created");
        let upload = self
            .call_with(
                CallKind::BulkUpload,
                Method::PUT,
                &self.data_path(&format!("jobs/ingest/{}/batches", job.id)),
                &[],
                Some(Payload::Csv(data.as_bytes())),
                Answer::Json,
                Idempotency::Unsafe,
            )
            .await;
        if let Err(e) = upload {
            self.abort(&job.id).await;
            return Err(not_processed(e));
        }
        drop(data);
        let closed = self
            .job_call(
                Method::PATCH,
                &job.id,
                Some(&json!({"state": "UploadComplete"})),
                Idempotency::Unsafe,
            )
            .await;
        match closed {
            Ok(_) => {}
            // Refused: the job stays Open and is never processed.
            Err(e @ (SfError::Api { .. } | SfError::LimitExceeded { .. })) => {
                self.abort(&job.id).await;
                return Err(not_processed(e));
            }
            // Unknown whether it was queued: the polls tell.
            Err(e) => {
                tracing::info!(job = %job.id, error = %e, "UploadComplete unanswered; polling the job")
            }
        }
        let info = match self.wait_for(&job.id).await {
            Ok(info) if info.state == "Open" => {
                self.abort(&job.id).await;
                return Err(SfError::Transport {
                    attempts: 1,
                    message: "the Bulk API job could not be closed for processing".into(),
                });
            }
            Ok(info) => info,
            Err(e) => {
                let reason = format!("the Bulk API job {} may have run: {e}", job.id);
                return Ok(vec![RecordOutcome::Ambiguous { reason }; records.len()]);
            }
        };
        if let Some(m) = &info.error_message {
            tracing::warn!(job = %info.id, state = %info.state, error = %m, "Bulk API job did not complete");
        }
        Ok(self.outcomes(&info, records, key).await)
    }

    /// Polls with back-off until the job is finished; past `bulk_max_wait` it is aborted.
    async fn wait_for(&self, id: &str) -> Result<JobInfo> {
        let mut delay = FIRST_POLL_DELAY;
        let mut waited = Duration::ZERO;
        loop {
            self.inner.clock.sleep(delay).await;
            waited += delay;
            let info = self
                .job_call(Method::GET, id, None, Idempotency::Safe)
                .await?;
            if info.finished() || info.state == "Open" {
                return Ok(info);
            }
            if waited >= self.inner.opts.bulk_max_wait {
                tracing::warn!(
                    job = id,
                    waited_s = waited.as_secs(),
                    "Bulk API job still running; aborting it"
                );
                return match self.abort(id).await {
                    Some(info) => Ok(info),
                    // Refused (it finished meanwhile) or unanswered: ask once more.
                    None => {
                        self.job_call(Method::GET, id, None, Idempotency::Safe)
                            .await
                    }
                };
            }
            delay = (delay * 2).min(MAX_POLL_DELAY);
        }
    }

    /// PATCH state Aborted; the job's info when it answered.
    async fn abort(&self, id: &str) -> Option<JobInfo> {
        let body = json!({"state": "Aborted"});
        match self
            .job_call(Method::PATCH, id, Some(&body), Idempotency::Safe)
            .await
        {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::warn!(job = id, error = %e, "Bulk API job not aborted");
                None
            }
        }
    }

    async fn job_call(
        &self,
        method: Method,
        id: &str,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<JobInfo> {
        let path = if id.is_empty() {
            self.data_path("jobs/ingest")
        } else {
            self.data_path(&format!("jobs/ingest/{id}"))
        };
        let reply = self
            .call(CallKind::BulkJob, method, &path, &[], body, idempotency)
            .await?;
        decode_job(&reply.body)
    }

    /// One results file as rows, header first.
    async fn results(&self, id: &str, kind: &str) -> Result<Vec<Vec<String>>> {
        let reply = self
            .call_with(
                CallKind::BulkResults,
                Method::GET,
                &self.data_path(&format!("jobs/ingest/{id}/{kind}/")),
                &[],
                None,
                Answer::Csv,
                Idempotency::Safe,
            )
            .await?;
        let text = String::from_utf8_lossy(&reply.body);
        csv::read(&text).map_err(|detail| SfError::Malformed {
            context: format!("bulk {kind}"),
            detail,
        })
    }

    /// Each record's outcome from the job's results.
    async fn outcomes(
        &self,
        info: &JobInfo,
        records: &[&Map<String, Value>],
        key: &[&str],
    ) -> Vec<RecordOutcome> {
        // Key value → indices of the records holding it, in input order.
        let mut by_key: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let values: Vec<String> = key.iter().map(|k| cell(r.get(*k))).collect();
            by_key
                .entry(values.join(KEY_SEPARATOR))
                .or_default()
                .push_back(i);
        }
        let reason = format!(
            "the Bulk API job {} ({}) did not report this record",
            info.id, info.state
        );
        let mut out = vec![RecordOutcome::Ambiguous { reason }; records.len()];
        // "Get Job Unprocessed Record Results": for failed or aborted jobs.
        let mut kinds = vec!["successfulResults", "failedResults"];
        if info.state != "JobComplete" {
            kinds.push("unprocessedrecords");
        }
        for kind in kinds {
            let rows = match self.results(&info.id, kind).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(job = %info.id, kind, error = %e, "Bulk API results unread; their records stay ambiguous");
                    continue;
                }
            };
            if !apply_results(kind, &rows, key, &mut by_key, &mut out) {
                tracing::warn!(job = %info.id, kind, ?key, "Bulk API results without the key columns");
            }
        }
        out
    }
}

/// Joins the values of a composite key (no field value holds it).
const KEY_SEPARATOR: &str = "\u{1f}";

/// Sets the outcome of each record a results file (`kind`, rows header first) lists,
/// matching rows to records by the `key` columns. False when the file lacks one.
fn apply_results(
    kind: &str,
    rows: &[Vec<String>],
    key: &[&str],
    by_key: &mut HashMap<String, VecDeque<usize>>,
    out: &mut [RecordOutcome],
) -> bool {
    let Some((header, rows)) = rows.split_first() else {
        // "Failed-result and unprocessed-result endpoints return an empty 200 when there are
        // none": nothing to set.
        return true;
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let Some(key_cols) = key.iter().map(|k| col(k)).collect::<Option<Vec<usize>>>() else {
        return false;
    };
    let (id_col, err_col) = (col("sf__Id"), col("sf__Error"));
    for row in rows {
        let values: Option<Vec<&str>> = key_cols
            .iter()
            .map(|c| row.get(*c).map(String::as_str))
            .collect();
        let Some(i) = values
            .and_then(|v| by_key.get_mut(&v.join(KEY_SEPARATOR)))
            .and_then(VecDeque::pop_front)
        else {
            continue;
        };
        let field = |c: Option<usize>| c.and_then(|c| row.get(c)).cloned().unwrap_or_default();
        out[i] = match kind {
            "successfulResults" => RecordOutcome::Success { id: field(id_col) },
            "failedResults" => RecordOutcome::Failed {
                errors: vec![decode_error(&field(err_col))],
            },
            _ => RecordOutcome::NotAttempted,
        };
    }
    true
}

#[cfg(test)]
mod tests {
    //! Against the answers the Bulk API 2.0 Developer Guide documents (URLs at each test).
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// "Prepare CSV Files" / "Valid CSV Record Rows"
    /// (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm):
    /// a header of field names, null as `#N/A`, an absent value empty (left alone on update).
    #[test]
    fn job_data_names_every_column_and_writes_null_as_na() {
        let a = map(json!({"Id": "003A", "Title": null, "IsPrivate": true}));
        let b = map(json!({"Id": "003B", "Department": "Sales, West"}));
        assert_eq!(
            job_data(&[&a, &b]),
            "Id,IsPrivate,Title,Department\n003A,true,#N/A,\n003B,,,\"Sales, West\"\n"
        );
    }

    /// "Get Information About an Ingest Job" and "Upload Complete" response bodies
    /// (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_info.htm,
    /// https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/close_job.htm).
    #[test]
    fn job_info_gives_the_id_state_and_error_message() {
        let complete = br#"{
            "id" : "7505fEXAMPLE4C2AAM", "operation" : "insert", "object" : "Account",
            "createdById" : "0055fEXAMPLEtG4AAM", "createdDate" : "2022-01-02T21:33:43.000+0000",
            "systemModstamp" : "2022-01-02T21:38:31.000+0000", "state" : "JobComplete",
            "concurrencyMode" : "Parallel", "contentType" : "CSV", "apiVersion" : 53.0,
            "jobType" : "V2Ingest", "lineEnding" : "LF", "columnDelimiter" : "COMMA",
            "numberRecordsProcessed" : 2, "numberRecordsFailed" : 0, "retries" : 0,
            "totalProcessingTime" : 886, "apiActiveProcessingTime" : 813, "apexProcessingTime" : 619
        }"#;
        let info = decode_job(complete).unwrap();
        assert_eq!(info.id, "7505fEXAMPLE4C2AAM");
        assert!(info.finished());
        let failed = br#"{"id":"750R0000000zlh9IAA","state":"Failed","errorMessage":"InvalidBatch : Field name not found : Nme"}"#;
        let info = decode_job(failed).unwrap();
        assert_eq!(
            info.error_message.as_deref(),
            Some("InvalidBatch : Field name not found : Nme")
        );
        assert!(!decode_job(br#"{"id":"750x","state":"Open","contentUrl":"services/data/v62.0/jobs/ingest/x/batches"}"#)
            .unwrap()
            .finished());
        assert!(decode_job(b"[]").is_err());
        assert!(decode_job(b"not json").is_err());
    }

    /// "Get Job Failed Record Results": `sf__Error` is "Error code and message"
    /// (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_failed_results.htm).
    #[test]
    fn failed_rows_keep_the_status_code_message_and_fields() {
        let e = decode_error(
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
        );
        assert_eq!(e.status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.message, "Required fields are missing: [LastName]");
        assert_eq!(e.fields, vec!["LastName"]);
        let e = decode_error("FIELD_CUSTOM_VALIDATION_EXCEPTION:Events need a type: 12:00:--");
        assert_eq!(e.status_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
        assert_eq!(e.message, "Events need a type: 12:00");
        let e = decode_error("something odd");
        assert_eq!(e.status_code, "UNKNOWN_EXCEPTION");
    }

    /// Results are matched by the key column, whatever their order ("The order of records
    /// in the response is not guaranteed to match the ordering of records in the original
    /// job data", https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_successful_results.htm);
    /// an empty answer means none; a record no file lists stays as it was (ambiguous).
    #[test]
    fn result_rows_map_back_to_their_records_in_any_order() {
        let records: Vec<Map<String, Value>> = (0..4)
            .map(|i| {
                map(json!({"LastName": format!("L{i}"), "Tether_Sync_Key__c": format!("k{i}")}))
            })
            .collect();
        let refs: Vec<&Map<String, Value>> = records.iter().collect();
        let mut by_key: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (i, r) in refs.iter().enumerate() {
            by_key
                .entry(cell(r.get("Tether_Sync_Key__c")))
                .or_default()
                .push_back(i);
        }
        let ambiguous = RecordOutcome::Ambiguous { reason: "x".into() };
        let mut out = vec![ambiguous.clone(); 4];
        let ok = csv::read("\"sf__Id\",\"sf__Created\",\"LastName\",\"Tether_Sync_Key__c\"\n\"003B\",\"true\",\"L2\",\"k2\"\n\"003A\",\"true\",\"L0\",\"k0\"\n").unwrap();
        let failed = csv::read("\"sf__Id\",\"sf__Error\",\"LastName\",\"Tether_Sync_Key__c\"\n\"\",\"DUPLICATE_VALUE:duplicate value found: Tether_Sync_Key__c:Tether_Sync_Key__c --\",\"L1\",\"k1\"\n").unwrap();
        let key = &["Tether_Sync_Key__c"][..];
        assert!(apply_results(
            "successfulResults",
            &ok,
            key,
            &mut by_key,
            &mut out
        ));
        assert!(apply_results(
            "failedResults",
            &failed,
            key,
            &mut by_key,
            &mut out
        ));
        assert!(apply_results(
            "unprocessedrecords",
            &[],
            key,
            &mut by_key,
            &mut out
        ));
        assert_eq!(out[0], RecordOutcome::Success { id: "003A".into() });
        assert_eq!(out[2], RecordOutcome::Success { id: "003B".into() });
        assert_eq!(out[1].status_codes(), vec!["DUPLICATE_VALUE"]);
        assert_eq!(
            out[3], ambiguous,
            "listed nowhere: may or may not have been written"
        );
        let keyless = csv::read("sf__Id,sf__Created\n003C,true\n").unwrap();
        assert!(!apply_results(
            "successfulResults",
            &keyless,
            key,
            &mut by_key,
            &mut out
        ));
    }

    #[test]
    fn jobs_stay_under_the_upload_limit() {
        let big = "x".repeat(1024 * 1024);
        let records: Vec<Map<String, Value>> =
            (0..250).map(|_| map(json!({"Description": big}))).collect();
        let jobs = jobs_of(&records);
        assert_eq!(jobs.len(), 3, "{jobs:?}");
        assert!(jobs.iter().all(|r| r.len() <= 100));
        assert_eq!(jobs_of(&records[..3]), vec![0..3]);
    }
}
