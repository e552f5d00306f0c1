//! The engine's CRM side over the REST API: [`SalesforceConnector`] implements
//! [`CrmConnector`](crate::engine::connector::CrmConnector) with a [`SalesforceClient`].
//!
//! - Reads: one org-wide `queryAll` per object on `SystemModstamp >= watermark - lookback`
//!   (queryAll so that deletions still in the recycle bin come back in the same call as
//!   `IsDeleted = true`: one call where query + getDeleted would be two; the lookback catches
//!   long transactions that commit after a read with stamps before its watermark, see
//!   [`DEFAULT_CHANGE_LOOKBACK`]); `read_owned` chunks `OwnerId IN (…)`; every query is
//!   streamed page by page (≤ 2,000 rows).
//! - Writes: sObject Collections, ≤ 200 records a call, allOrNone=false, outcomes in order;
//!   a phase of at least `bulk_threshold` records goes through one Bulk API 2.0 ingest job
//!   per object and operation instead ([`super::bulk`]), with the same outcomes.
//! - Crash-safe creates: each create carries the engine's journal marker in the text External
//!   ID field `Tether_Sync_Key__c` (unique, 64 characters) that the admin adds to Contact and
//!   Event when setting tether up; `find_created` looks creates up by it.
//! - The company (`Account.Name`) is the contact's Account: existing Accounts are matched by
//!   exact name, missing ones are created, so the value reads back as written.
//! - Event attendees are not Event fields in Salesforce (they are EventRelations); they read
//!   back empty, and auto-relate (`relate`) writes the relations.

use super::bulk::BulkOperation;
use super::soql::{Lit, Op, SoqlBuilder};
use super::{RecordOutcome, SalesforceClient, SfError, WriteReport};
use crate::engine::connector::{
    CallError, CrmChanges, CrmConnector, CrmCreate, CrmRecord, CrmRef, CrmUser, ErrorKind, Outcome,
    Person, RecordError,
};
use crate::model::catalog::{ACCOUNT_NAME, ATTENDEES};
use crate::model::rrule;
use crate::model::{
    Contact, EffectiveMapping, Event, EventTime, ObjectKind, Record, Recurrence, ShowAs,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The External ID field holding the create-journal marker (admin setup step).
pub const SYNC_KEY_FIELD: &str = "Tether_Sync_Key__c";

/// RecordIds one UserRecordAccess query may name (Object Reference: "up to 200").
const USER_RECORD_ACCESS_IDS: usize = 200;
/// Unreadable verdicts remembered (about 100 bytes each); past it they are asked again.
const UNREADABLE_REMEMBERED: usize = 100_000;
/// How far before the watermark each change read starts again: 15 minutes.
///
/// Salesforce stamps a record (SystemModstamp) when a transaction writes it, but others see
/// it only when the transaction commits; a long transaction can therefore commit, after a
/// read, records stamped before that read's newest stamp (the reason getUpdated() answers
/// `latestDateCovered`, "the start time of that long-running transaction", SOAP API Developer
/// Guide, GetUpdatedResult). A transaction runs at most 10 minutes ("Maximum execution time
/// for each Apex transaction", Apex Developer Guide, Execution Governors and Limits): 15
/// minutes covers it with room for the clocks of Salesforce's servers. Records re-read from the window plan nothing
/// when unchanged (the planner compares content hashes), and the read is the same single
/// query, so a no-change cycle costs no more calls; the price is rows: whatever changed in
/// the last 15 minutes is read again each cycle.
///
/// Why not getUpdated()/`latestDateCovered`: it returns ids only, so every cycle would need
/// getUpdated, getDeleted and a retrieve besides: more calls per object, where this is one.
pub const DEFAULT_CHANGE_LOOKBACK: Duration = Duration::minutes(15);

/// Event fields the canonical event is built from (besides custom mappings).
const EVENT_FIELDS: &[&str] = &[
    "Subject",
    "StartDateTime",
    "EndDateTime",
    "IsAllDayEvent",
    "ActivityDate",
    "DurationInMinutes",
    "Location",
    "Description",
    "ShowAs",
    "IsPrivate",
    "IsRecurrence",
    "IsRecurrence2",
    "Recurrence2PatternText",
];

/// The CRM side of the engine over the Salesforce REST API.
#[derive(Debug, Clone)]
pub struct SalesforceConnector {
    client: SalesforceClient,
    contact_mapping: EffectiveMapping,
    event_mapping: EffectiveMapping,
    /// Contact fields the configurations' `filters` name: read (never written) so the
    /// filters can see them, since a filter may name any Contact field, mapped or not.
    filter_fields: Vec<String>,
    /// Account ids by name, resolved for a whole write phase by `prepare_writes` (and added
    /// to as Accounts are created), so that each batch of 200 does not query them again.
    /// Replaced at the start of every write phase: it never outlives one cycle's writes.
    accounts: Arc<Mutex<BTreeMap<String, String>>>,
    /// (user id, record id) → the SystemModstamp the record had when the user could not
    /// read it (see `readable`).
    unreadable: Arc<Mutex<HashMap<(String, String), String>>>,
    /// See [`DEFAULT_CHANGE_LOOKBACK`].
    change_lookback: Duration,
}

/// The Accounts of a write's contacts by name, and those the write created.
struct Accounts {
    ids: BTreeMap<String, String>,
    created: BTreeSet<String>,
}

/// sObject Collections take at most 200 records a call.
pub const COLLECTION_SIZE: usize = 200;

fn object_name(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Contact => "Contact",
        ObjectKind::Event => "Event",
    }
}

/// The engine's kind of a Salesforce status or error code.
fn kind(code: &str) -> ErrorKind {
    match code {
        "ENTITY_IS_DELETED" | "NOT_FOUND" => ErrorKind::Gone,
        "INSUFFICIENT_ACCESS" | "INSUFFICIENT_ACCESS_OR_READONLY" => ErrorKind::Denied,
        "STRING_TOO_LONG" => ErrorKind::TooLong,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" | "REQUIRED_FIELD_MISSING" => ErrorKind::Validation,
        "DUPLICATES_DETECTED" => ErrorKind::Duplicate,
        "ENTITY_IS_LOCKED" | "UNABLE_TO_LOCK_ROW" => ErrorKind::Locked,
        "REQUEST_LIMIT_EXCEEDED" | "API_BUDGET_EXHAUSTED" | "THROTTLED" => ErrorKind::Throttled,
        "AUTH" | "INVALID_SESSION_ID" => ErrorKind::Auth,
        _ => ErrorKind::Other,
    }
}

/// What the user can do about a failure with `code`, in Salesforce's terms.
fn hint(code: &str, retryable: bool) -> &'static str {
    match kind(code) {
        ErrorKind::Gone => "The record was deleted meanwhile; the next run unlinks it.",
        ErrorKind::Denied => "Give the integration user access to this record.",
        ErrorKind::TooLong => "Shorten the value, or map it to a longer field.",
        ErrorKind::Validation => {
            "Fix the record so it passes the org's validation rules; tether retries on the next \
             run."
        }
        ErrorKind::Duplicate => {
            "A Salesforce duplicate rule blocks this record: merge it with the matching record \
             (or let the rule allow the integration user's saves); tether retries on the next run."
        }
        ErrorKind::Locked if code == "ENTITY_IS_LOCKED" => {
            "The record is locked (e.g. in an approval process); tether retries on the next run."
        }
        _ if code == "AMBIGUOUS" => crate::engine::connector::AMBIGUOUS_HINT,
        _ if retryable => "tether retries on the next run.",
        _ => "Check the record on its side; tether retries on the next run.",
    }
}

/// A call error of `code`, classified.
fn failed_call(code: &str, message: String, retryable: bool, ambiguous: bool) -> CallError {
    CallError {
        kind: kind(code),
        code: code.to_string(),
        message,
        retryable,
        ambiguous,
        hint: hint(code, retryable).into(),
    }
}

/// A record error of `code`, classified.
fn failed_record(code: String, message: String, retryable: bool) -> RecordError {
    RecordError {
        kind: kind(&code),
        hint: hint(&code, retryable).into(),
        code,
        message,
        retryable,
    }
}

fn call_error(e: SfError) -> CallError {
    let retryable = matches!(
        e,
        SfError::Transport { .. }
            | SfError::LimitExceeded { .. }
            | SfError::Ambiguous { .. }
            | SfError::Throttled { .. }
    ) || matches!(&e, SfError::Api { status, .. } if *status >= 500);
    let code = match &e {
        SfError::Api { errors, .. } => errors
            .first()
            .map(|x| x.error_code.clone())
            .unwrap_or_else(|| "API_ERROR".into()),
        SfError::LimitExceeded { .. } => "REQUEST_LIMIT_EXCEEDED".into(),
        SfError::BudgetExhausted { .. } => "API_BUDGET_EXHAUSTED".into(),
        SfError::Transport { .. } => "TRANSPORT".into(),
        SfError::Throttled { .. } => "THROTTLED".into(),
        SfError::Ambiguous { .. } => "AMBIGUOUS".into(),
        SfError::Auth { .. } => "AUTH".into(),
        _ => "SALESFORCE".into(),
    };
    failed_call(
        &code,
        e.to_string(),
        retryable,
        matches!(e, SfError::Ambiguous { .. }),
    )
}

/// A failed write's error with what was done about its contacts' new Accounts.
fn with_accounts_note(mut e: CallError, note: Option<String>) -> CallError {
    if let Some(n) = note {
        e.message.push_str(
            &n.replace("the Account", "the Accounts")
                .replace("its company", "their companies"),
        );
    }
    e
}

fn build_error(e: impl std::fmt::Display) -> CallError {
    failed_call("INVALID_QUERY", e.to_string(), false, false)
}

/// A value as canonical text: strings as they are, booleans and numbers spelled out.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `a.b` through relationship objects.
fn at<'r>(rec: &'r Map<String, Value>, path: &str) -> Option<&'r Value> {
    let mut parts = path.split('.');
    let mut cur = rec.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Salesforce writes `2026-01-15T09:00:00.000+0000`; RFC 3339 is accepted too.
fn datetime(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?.trim();
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn date(v: Option<&Value>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v?.as_str()?, "%Y-%m-%d").ok()
}

fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn outcome_error(o: &RecordOutcome) -> RecordError {
    match o {
        RecordOutcome::Failed { errors } => {
            let code = errors
                .first()
                .map(|e| e.status_code.clone())
                .unwrap_or_else(|| "UNKNOWN".into());
            let message = errors
                .iter()
                .map(|e| e.message.trim().to_string())
                .collect::<Vec<_>>()
                .join("; ");
            let retryable = code == "UNABLE_TO_LOCK_ROW";
            failed_record(code, message, retryable)
        }
        RecordOutcome::NotAttempted => failed_record(
            "NOT_ATTEMPTED".into(),
            "the run stopped before this record was sent".into(),
            true,
        ),
        _ => failed_record("UNKNOWN".into(), "unexpected outcome".into(), true),
    }
}

/// A create refused with DUPLICATE_VALUE on the marker field: a record holding this
/// create's marker exists, so the create happened before (its answer lost; or a Bulk API job
/// given up on ran on). It is ambiguous: the journal looks the record up and links it.
fn marker_taken(o: &RecordOutcome) -> bool {
    let RecordOutcome::Failed { errors } = o else {
        return false;
    };
    errors.iter().any(|e| {
        e.status_code == "DUPLICATE_VALUE"
            && (e
                .fields
                .iter()
                .any(|f| f.eq_ignore_ascii_case(SYNC_KEY_FIELD))
                || e.message.contains(SYNC_KEY_FIELD))
    })
}

impl SalesforceConnector {
    /// A connector with the admin guide's default mappings.
    pub fn new(client: SalesforceClient) -> Self {
        SalesforceConnector {
            client,
            contact_mapping: EffectiveMapping::defaults(ObjectKind::Contact),
            event_mapping: EffectiveMapping::defaults(ObjectKind::Event),
            filter_fields: Vec::new(),
            accounts: Arc::default(),
            unreadable: Arc::default(),
            change_lookback: DEFAULT_CHANGE_LOOKBACK,
        }
    }

    /// How far before the watermark change reads start (default
    /// [`DEFAULT_CHANGE_LOOKBACK`]).
    pub fn with_change_lookback(mut self, lookback: Duration) -> Self {
        self.change_lookback = lookback.max(Duration::zero());
        self
    }

    /// Contact fields the contact `filters` name (see
    /// [`contact_filter_fields`](crate::connect::contact_filter_fields)). Reads select them
    /// and the canonical contact carries them, so a filter on an unmapped field (e.g.
    /// `LeadSource`) sees its value; writes and comparisons still use the mapping only.
    pub fn with_filter_fields(mut self, fields: impl IntoIterator<Item = String>) -> Self {
        self.filter_fields = fields.into_iter().collect();
        self
    }

    /// The fields reads select and writes may name (defaults plus the configurations'
    /// `field_mappings`). With several configurations, pass their union
    /// ([`connector_mapping`](crate::connect::connector_mapping)): each rep compares only what
    /// their own mapping names, and writes name only those fields.
    pub fn with_mappings(mut self, contact: EffectiveMapping, event: EffectiveMapping) -> Self {
        self.contact_mapping = contact;
        self.event_mapping = event;
        self
    }

    pub fn client(&self) -> &SalesforceClient {
        &self.client
    }

    /// Every field a read selects.
    fn fields(&self, object: ObjectKind) -> Vec<String> {
        let mut out: Vec<String> = ["Id", "OwnerId", "SystemModstamp", SYNC_KEY_FIELD]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match object {
            ObjectKind::Contact => {
                out.extend(
                    self.contact_mapping
                        .fields
                        .iter()
                        .map(|f| f.salesforce.clone()),
                );
                out.extend(self.filter_fields.iter().cloned());
            }
            ObjectKind::Event => {
                out.extend(EVENT_FIELDS.iter().map(|s| s.to_string()));
                out.extend(self.extra_event_fields().map(str::to_string));
            }
        }
        let mut seen = BTreeSet::new();
        out.retain(|f| seen.insert(f.to_ascii_lowercase()));
        out
    }

    /// Custom event mappings: fields beyond the ones the canonical event models.
    fn extra_event_fields(&self) -> impl Iterator<Item = &str> {
        self.event_mapping
            .fields
            .iter()
            .map(|f| f.salesforce.as_str())
            .filter(|f| {
                *f != ATTENDEES
                    && !EVENT_FIELDS.contains(f)
                    && !["StartDateTime", "EndDateTime", "IsAllDayEvent"].contains(f)
            })
    }

    fn to_record(&self, object: ObjectKind, rec: &Map<String, Value>) -> Option<CrmRecord> {
        let id = text(rec.get("Id"))?;
        let record = match object {
            ObjectKind::Contact => {
                let mut c = Contact::default();
                for f in &self.contact_mapping.fields {
                    if let Some(v) = text(at(rec, &f.salesforce)).filter(|v| !v.is_empty()) {
                        c.set(&f.salesforce, v);
                    }
                }
                // Under the name the filter uses; the response spells the field its own way.
                for f in &self.filter_fields {
                    if self.contact_mapping.maps(f) {
                        continue;
                    }
                    let v = rec
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(f))
                        .and_then(|(_, v)| text(Some(v)));
                    if let Some(v) = v.filter(|v| !v.is_empty()) {
                        c.set(f, v);
                    }
                }
                Record::Contact(c)
            }
            ObjectKind::Event => Record::Event(self.to_event(rec)?),
        };
        Some(CrmRecord {
            id,
            owner_id: text(rec.get("OwnerId")).unwrap_or_default(),
            modstamp: text(rec.get("SystemModstamp")).unwrap_or_default(),
            record,
            marker: text(rec.get(SYNC_KEY_FIELD)).filter(|m| !m.is_empty()),
        })
    }

    fn to_event(&self, rec: &Map<String, Value>) -> Option<Event> {
        let all_day = rec.get("IsAllDayEvent") == Some(&Value::Bool(true));
        let time = if all_day {
            let start = date(rec.get("ActivityDate"))
                .or_else(|| datetime(rec.get("StartDateTime")).map(|t| t.date_naive()))?;
            let days = rec
                .get("DurationInMinutes")
                .and_then(Value::as_i64)
                .map(|m| (m / 1440).clamp(1, 14))
                .unwrap_or(1);
            EventTime::AllDay {
                start,
                end: start + Duration::days(days),
            }
        } else {
            EventTime::Timed {
                start: datetime(rec.get("StartDateTime"))?,
                end: datetime(rec.get("EndDateTime"))?,
            }
        };
        let mut e = Event::new(text(rec.get("Subject")).unwrap_or_default(), time);
        e.location = text(rec.get("Location")).unwrap_or_default();
        e.body = text(rec.get("Description")).unwrap_or_default();
        e.show_as = match rec.get("ShowAs").and_then(Value::as_str) {
            Some("Free") => ShowAs::Free,
            Some("OutOfOffice") => ShowAs::OutOfOffice,
            _ => ShowAs::Busy,
        };
        e.private = rec.get("IsPrivate") == Some(&Value::Bool(true));
        let pattern = text(rec.get("Recurrence2PatternText")).filter(|p| !p.trim().is_empty());
        e.recurrence = if rec.get("IsRecurrence") == Some(&Value::Bool(true)) {
            Recurrence::ClassicRecurring
        } else if let Some(p) = pattern {
            let start = match e.time {
                EventTime::Timed { start, .. } => start.date_naive(),
                EventTime::AllDay { start, .. } => start,
            };
            Recurrence::Series {
                rule: rrule::canonical(&p, start),
            }
        } else {
            Recurrence::Single
        };
        for f in self.extra_event_fields() {
            if let Some(v) = text(rec.get(f)).filter(|v| !v.is_empty()) {
                e.extra.insert(f.to_string(), v);
            }
        }
        Some(e)
    }

    /// The REST body of a record. `create` leaves empty values out; an update clears them.
    fn to_fields(
        &self,
        record: &Record,
        create: bool,
        accounts: &BTreeMap<String, String>,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            if !(create && v.is_null()) {
                m.insert(k.to_string(), v);
            }
        };
        let str_or_null = |s: &str| {
            if s.trim().is_empty() {
                Value::Null
            } else {
                Value::String(s.to_string())
            }
        };
        match record {
            Record::Contact(c) => {
                // Only the fields the record names: the writing rep's mapping
                // (`EffectiveMapping::project`); the others are left as they are.
                let named = self
                    .contact_mapping
                    .fields
                    .iter()
                    .filter(|f| c.fields.contains_key(&f.salesforce));
                for f in named {
                    if f.salesforce == ACCOUNT_NAME {
                        let company = c.company().trim();
                        put(
                            "AccountId",
                            accounts
                                .get(company)
                                .map(|id| Value::String(id.clone()))
                                .unwrap_or(Value::Null),
                        );
                        continue;
                    }
                    if f.salesforce.contains('.') {
                        continue;
                    }
                    put(&f.salesforce, str_or_null(c.get(&f.salesforce)));
                }
            }
            Record::Event(e) => {
                let mapped =
                    |name: &str| self.event_mapping.maps(name) && !e.unmapped.contains(name);
                if mapped("Subject") {
                    put("Subject", str_or_null(&e.subject));
                }
                if mapped("Location") {
                    put("Location", str_or_null(&e.location));
                }
                if mapped("Description") {
                    put("Description", str_or_null(&e.body));
                }
                if mapped("ShowAs") {
                    let show = match e.show_as {
                        ShowAs::Free => "Free",
                        ShowAs::OutOfOffice => "OutOfOffice",
                        // Salesforce has no Tentative.
                        ShowAs::Busy | ShowAs::Tentative => "Busy",
                    };
                    put("ShowAs", json!(show));
                }
                put("IsPrivate", json!(e.private));
                match e.time {
                    EventTime::Timed { start, end } => {
                        put("IsAllDayEvent", json!(false));
                        put("StartDateTime", json!(format_datetime(start)));
                        put("EndDateTime", json!(format_datetime(end)));
                    }
                    EventTime::AllDay { start, end } => {
                        let days = (end - start).num_days().max(1);
                        put("IsAllDayEvent", json!(true));
                        put("ActivityDate", json!(start.format("%Y-%m-%d").to_string()));
                        put("DurationInMinutes", json!(days * 1440));
                    }
                }
                // The series rule can be set only when the series is created.
                if let (true, Recurrence::Series { rule }) = (create, &e.recurrence) {
                    put("Recurrence2PatternText", json!(format!("RRULE:{rule}")));
                }
                // Custom fields only as the record names them (see contacts above).
                for f in self.extra_event_fields() {
                    if let Some(v) = e.extra.get(f) {
                        put(f, str_or_null(v));
                    }
                }
            }
        }
        m
    }

    fn unreadable(&self) -> MutexGuard<'_, HashMap<(String, String), String>> {
        self.unreadable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn known_accounts(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The company names of `records`, when the contact mapping writes Account.Name.
    fn account_names(&self, records: &[&Record]) -> BTreeSet<String> {
        if !self.contact_mapping.maps(ACCOUNT_NAME) {
            return BTreeSet::new();
        }
        records
            .iter()
            .filter_map(|r| r.as_contact())
            .map(|c| c.company().trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// Account ids of the Accounts named `names` that exist (queries chunked under the SOQL
    /// length limit).
    async fn find_accounts(
        &self,
        names: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, CallError> {
        let mut out = BTreeMap::new();
        if names.is_empty() {
            return Ok(out);
        }
        let lits: Vec<Lit> = names.iter().map(|n| Lit::Str(n.clone())).collect();
        let queries = SoqlBuilder::select("Account", &["Id", "Name"])
            .and_then(|b| b.chunked_in("Name", &lits, super::soql::DEFAULT_MAX_QUERY_CHARS))
            .map_err(build_error)?;
        for q in queries {
            for r in self.client.query_collect(q).await.map_err(call_error)? {
                if let (Some(id), Some(name)) = (text(r.get("Id")), text(r.get("Name"))) {
                    // The oldest of several same-named Accounts wins, every time.
                    out.entry(name).or_insert(id);
                }
            }
        }
        Ok(out)
    }

    /// Account ids by name for the companies of `records`: those `prepare_writes` found,
    /// then a query for the others; missing Accounts are created. Also the ids created.
    async fn accounts(&self, records: &[&Record]) -> Result<Accounts, CallError> {
        let names = self.account_names(records);
        let mut out: BTreeMap<String, String> = {
            let known = self.known_accounts();
            names
                .iter()
                .filter_map(|n| known.get(n).map(|id| (n.clone(), id.clone())))
                .collect()
        };
        let unknown: BTreeSet<String> = names
            .iter()
            .filter(|n| !out.contains_key(*n))
            .cloned()
            .collect();
        out.extend(self.find_accounts(&unknown).await?);
        let missing: Vec<&String> = names.iter().filter(|n| !out.contains_key(*n)).collect();
        let mut created = BTreeSet::new();
        if !missing.is_empty() {
            let bodies: Vec<Map<String, Value>> = missing
                .iter()
                .map(|n| {
                    let mut m = Map::new();
                    m.insert("Name".into(), json!(n));
                    m
                })
                .collect();
            let report = if self.bulk(bodies.len()).await {
                let op = BulkOperation::Insert;
                self.client
                    .bulk_write("Account", op, &bodies, &["Name"])
                    .await
            } else {
                self.client.create("Account", &bodies).await
            };
            for (name, o) in missing.iter().zip(&report.outcomes) {
                if let RecordOutcome::Success { id } = o {
                    out.insert((*name).clone(), id.clone());
                    created.insert(id.clone());
                }
            }
        }
        self.known_accounts()
            .extend(out.iter().map(|(n, id)| (n.clone(), id.clone())));
        Ok(Accounts { ids: out, created })
    }

    /// Deletes the Accounts this write created whose contacts all failed (none was written,
    /// nor may have been), so that a failed contact leaves no Account behind, and says so
    /// in those contacts' errors. An Account some contact refers to by now is kept.
    /// Returns the note added, for a call that failed as a whole.
    async fn remove_orphans(
        &self,
        records: &[&Record],
        accounts: &Accounts,
        report: &mut WriteReport,
    ) -> Option<String> {
        // Refused and not sent (the call stopped first) are not written; ambiguous may be.
        if accounts.created.is_empty() || report.outcomes.len() != records.len() {
            return None;
        }
        let account_of = |r: &Record| {
            let company = r.as_contact()?.company().trim();
            accounts
                .ids
                .get(company)
                .filter(|id| accounts.created.contains(*id))
        };
        let written = |o: &RecordOutcome| {
            !matches!(
                o,
                RecordOutcome::Failed { .. } | RecordOutcome::NotAttempted
            )
        };
        let mut orphans: BTreeSet<&String> = accounts.created.iter().collect();
        for (r, o) in records.iter().zip(&report.outcomes) {
            if let Some(id) = account_of(r).filter(|_| written(o)) {
                orphans.remove(id);
            }
        }
        if orphans.is_empty() {
            return None;
        }
        let ids: Vec<String> = orphans.into_iter().cloned().collect();
        // An Account some Contact refers to by now is no orphan: it stays, unmentioned.
        let (noted, note) = match self.delete_unreferenced(&ids).await {
            Ok(deleted) => {
                // Later batches of the phase must not refer to them.
                self.known_accounts().retain(|_, id| !deleted.contains(id));
                let note = "; the Account created for its company was deleted again";
                (deleted, note.to_string())
            }
            Err(e) => {
                tracing::warn!(accounts = ?ids, code = %e.code, "Accounts left without contacts");
                let note = format!(
                    "; the Account created for its company has no contacts and could not be \
                     deleted ({}): delete it in Salesforce",
                    e.code
                );
                (ids, note)
            }
        };
        if noted.is_empty() {
            return None;
        }
        for (r, o) in records.iter().zip(report.outcomes.iter_mut()) {
            let Some(id) = account_of(r).filter(|id| noted.contains(*id)) else {
                continue;
            };
            let id_note = note.replace("the Account", &format!("the Account {id}"));
            if let RecordOutcome::Failed { errors } = o
                && let Some(e) = errors.first_mut()
            {
                e.message.push_str(&id_note);
            }
        }
        Some(note)
    }

    /// Deletes the Accounts `ids` that no Contact refers to (one query and one delete);
    /// returns those deleted.
    async fn delete_unreferenced(&self, ids: &[String]) -> Result<Vec<String>, CallError> {
        let lits: Vec<Lit> = ids.iter().map(|i| Lit::Str(i.clone())).collect();
        let queries = SoqlBuilder::select("Contact", &["AccountId"])
            .and_then(|b| b.chunked_in("AccountId", &lits, super::soql::DEFAULT_MAX_QUERY_CHARS))
            .map_err(build_error)?;
        let mut referenced = BTreeSet::new();
        for q in queries {
            for r in self.query(q).await? {
                referenced.extend(text(r.get("AccountId")));
            }
        }
        let unreferenced: Vec<String> = ids
            .iter()
            .filter(|id| !referenced.contains(*id))
            .cloned()
            .collect();
        if unreferenced.is_empty() {
            return Ok(unreferenced);
        }
        let report = self.client.delete(&unreferenced).await;
        if let Some(e) = report.stopped {
            return Err(call_error(e));
        }
        match report.outcomes.iter().find(|o| !o.is_success()) {
            Some(o) => {
                let e = outcome_error(o);
                Err(failed_call(&e.code, e.message, false, false))
            }
            None => Ok(unreferenced),
        }
    }

    /// Records of `object` whose `field` is one of `values` (as many queries as the IN list
    /// needs to stay under the SOQL length limit).
    async fn read_where_in(
        &self,
        object: ObjectKind,
        field: &str,
        values: &[Lit],
    ) -> Result<Vec<CrmRecord>, CallError> {
        let fields = self.fields(object);
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let queries = SoqlBuilder::select(object_name(object), &refs)
            .and_then(|b| b.chunked_in(field, values, super::soql::DEFAULT_MAX_QUERY_CHARS))
            .map_err(build_error)?;
        let mut out = Vec::new();
        for q in queries {
            out.extend(
                self.query(q)
                    .await?
                    .iter()
                    .filter_map(|r| self.to_record(object, r)),
            );
        }
        Ok(out)
    }

    /// Whether `records` records go through Bulk API 2.0: at or above the threshold, and
    /// while the org's daily Bulk batches allow them (else sObject Collections).
    fn bulk_size(&self, records: usize) -> bool {
        self.client
            .options()
            .bulk_threshold
            .is_some_and(|t| records >= t.max(1))
    }

    async fn bulk(&self, records: usize) -> bool {
        self.bulk_size(records) && self.client.bulk_allows(records).await
    }

    async fn query(&self, soql: String) -> Result<Vec<Map<String, Value>>, CallError> {
        self.client.query_collect(soql).await.map_err(call_error)
    }

    /// Outcomes of a write. sObject Collections answer ids only; the SystemModstamp a write
    /// left arrives with the next change read (the engine decides by content hash, so a
    /// second query per batch would cost a call for nothing).
    fn written(report: WriteReport) -> Result<Vec<Outcome<CrmRef>>, CallError> {
        if let Some(e) = report.stopped
            && !report.outcomes.iter().any(RecordOutcome::is_success)
        {
            return Err(call_error(e));
        }
        Ok(report
            .outcomes
            .iter()
            .map(|o| match o {
                RecordOutcome::Success { id } => Outcome::Ok(CrmRef {
                    id: id.clone(),
                    modstamp: String::new(),
                }),
                RecordOutcome::Ambiguous { reason } => Outcome::Ambiguous(reason.clone()),
                other => Outcome::Failed(outcome_error(other)),
            })
            .collect())
    }
}

impl CrmConnector for SalesforceConnector {
    fn batch_size(&self) -> usize {
        COLLECTION_SIZE
    }

    /// A phase at or above the Bulk API threshold is written whole: one ingest job per
    /// object and operation (see [`super::bulk`]).
    fn write_batch_size(&self, _object: ObjectKind, total: usize) -> usize {
        if self.bulk_size(total) {
            total
        } else {
            COLLECTION_SIZE
        }
    }

    /// Resolves the Accounts of every contact the phase writes in a few queries. A failure
    /// here only means each batch asks for its own, as it would without this.
    async fn prepare_writes(&self, object: ObjectKind, records: &[&Record]) {
        let found = if object == ObjectKind::Contact {
            self.find_accounts(&self.account_names(records))
                .await
                .unwrap_or_else(|e| {
                    tracing::debug!(code = %e.code, "Accounts not resolved ahead: {}", e.message);
                    BTreeMap::new()
                })
        } else {
            BTreeMap::new()
        };
        *self.known_accounts() = found;
    }

    async fn missing_accounts(&self, records: &[&Record]) -> Result<BTreeSet<String>, CallError> {
        let names = self.account_names(records);
        let found = self.find_accounts(&names).await?;
        Ok(names
            .into_iter()
            .filter(|n| !found.contains_key(n))
            .collect())
    }

    fn org_id(&self) -> Option<String> {
        self.client.org_id()
    }

    async fn outlook_integration(&self) -> Result<Option<bool>, String> {
        self.client
            .email_integration()
            .await
            .map(|s| Some(s.outlook_integration))
            .map_err(|e| super::metadata::why_not_read(&e))
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CallError> {
        let soql = SoqlBuilder::select(
            "User",
            &["Id", "Email", "Profile.Name", "IsActive", "TimeZoneSidKey"],
        )
        .map_err(build_error)?
        .build();
        Ok(self
            .query(soql)
            .await?
            .iter()
            .filter_map(|u| {
                Some(CrmUser {
                    id: text(u.get("Id"))?,
                    email: text(u.get("Email")).unwrap_or_default(),
                    profile: text(at(u, "Profile.Name")).unwrap_or_default(),
                    active: u.get("IsActive") == Some(&Value::Bool(true)),
                    time_zone: text(u.get("TimeZoneSidKey")).unwrap_or_else(|| "UTC".into()),
                })
            })
            .collect())
    }

    async fn read_changes(
        &self,
        object: ObjectKind,
        watermark: Option<&str>,
    ) -> Result<CrmChanges, CallError> {
        let since = match watermark {
            None => None,
            Some(w) => Some(datetime(Some(&json!(w))).ok_or_else(|| {
                failed_call(
                    "INVALID_WATERMARK",
                    "the saved Salesforce watermark is not a date and time".into(),
                    false,
                    false,
                )
            })?),
        };
        let fields = self.fields(object);
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let mut pages = match since {
            // From the lookback before the watermark, and `>=`: a long transaction commits
            // records stamped before the newest stamp the last read saw (as may a write in
            // that stamp's second: SystemModstamp has whole seconds). The watermark itself
            // stays the newest stamp seen; unchanged records read again plan nothing.
            Some(w) => {
                let from = w - self.change_lookback;
                let mut all = refs.clone();
                all.push("IsDeleted");
                self.client.query_all(
                    SoqlBuilder::select(object_name(object), &all)
                        .and_then(|b| b.filter("SystemModstamp", Op::Ge, Lit::DateTime(from)))
                        .and_then(|b| b.order_by("SystemModstamp", false))
                        .map_err(build_error)?
                        .build(),
                )
            }
            None => self.client.query(
                SoqlBuilder::select(object_name(object), &refs)
                    .and_then(|b| b.order_by("SystemModstamp", false))
                    .map_err(build_error)?
                    .build(),
            ),
        };
        let mut latest = since;
        let mut upserts = Vec::new();
        let mut deleted = Vec::new();
        while let Some(page) = pages.next_page().await.map_err(call_error)? {
            for r in page {
                if let Some(t) = datetime(r.get("SystemModstamp")) {
                    latest = Some(latest.map_or(t, |l| l.max(t)));
                }
                if r.get("IsDeleted") == Some(&Value::Bool(true)) {
                    if let Some(id) = text(r.get("Id")) {
                        deleted.push(id);
                    }
                } else if let Some(rec) = self.to_record(object, &r) {
                    upserts.push(rec);
                }
            }
        }
        Ok(CrmChanges {
            upserts,
            deleted,
            watermark: format_datetime(latest.unwrap_or(DateTime::UNIX_EPOCH)),
        })
    }

    async fn read_owned(
        &self,
        object: ObjectKind,
        owners: Option<&[String]>,
    ) -> Result<Vec<CrmRecord>, CallError> {
        let fields = self.fields(object);
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let base = SoqlBuilder::select(object_name(object), &refs).map_err(build_error)?;
        let queries = match owners {
            None => vec![base.build()],
            Some([]) => return Ok(Vec::new()),
            Some(o) => {
                let lits: Vec<Lit> = o.iter().map(|i| Lit::Str(i.clone())).collect();
                base.chunked_in("OwnerId", &lits, super::soql::DEFAULT_MAX_QUERY_CHARS)
                    .map_err(build_error)?
            }
        };
        let mut out = Vec::new();
        for q in queries {
            let mut pages = self.client.query(q);
            while let Some(page) = pages.next_page().await.map_err(call_error)? {
                out.extend(page.iter().filter_map(|r| self.to_record(object, r)));
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        object: ObjectKind,
        records: &[CrmCreate],
    ) -> Result<Vec<Outcome<CrmRef>>, CallError> {
        let refs: Vec<&Record> = records.iter().map(|c| &c.record).collect();
        let accounts = self.accounts(&refs).await?;
        let bodies: Vec<Map<String, Value>> = records
            .iter()
            .map(|c| {
                let mut m = self.to_fields(&c.record, true, &accounts.ids);
                m.insert("OwnerId".into(), json!(c.owner_id));
                m.insert(SYNC_KEY_FIELD.into(), json!(c.marker));
                m
            })
            .collect();
        let mut report = if self.bulk(bodies.len()).await {
            let op = BulkOperation::Insert;
            self.client
                .bulk_write(object_name(object), op, &bodies, &[SYNC_KEY_FIELD])
                .await
        } else {
            self.client.create(object_name(object), &bodies).await
        };
        for o in report.outcomes.iter_mut() {
            if marker_taken(o) {
                *o = RecordOutcome::Ambiguous {
                    reason: "a record with this create's marker exists already: an earlier                              create happened"
                        .into(),
                };
            }
        }
        let note = self.remove_orphans(&refs, &accounts, &mut report).await;
        Self::written(report).map_err(|e| with_accounts_note(e, note))
    }

    async fn update(
        &self,
        object: ObjectKind,
        records: &[(String, Record)],
    ) -> Result<Vec<Outcome<CrmRef>>, CallError> {
        let refs: Vec<&Record> = records.iter().map(|(_, r)| r).collect();
        let accounts = self.accounts(&refs).await?;
        let bodies: Vec<Map<String, Value>> = records
            .iter()
            .map(|(id, r)| {
                let mut m = self.to_fields(r, false, &accounts.ids);
                m.insert("Id".into(), json!(id));
                m
            })
            .collect();
        let mut report = if self.bulk(bodies.len()).await {
            let op = BulkOperation::Update;
            self.client
                .bulk_write(object_name(object), op, &bodies, &["Id"])
                .await
        } else {
            self.client.update(object_name(object), &bodies).await
        };
        let note = self.remove_orphans(&refs, &accounts, &mut report).await;
        Self::written(report).map_err(|e| with_accounts_note(e, note))
    }

    async fn delete(
        &self,
        _object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        let report = self.client.delete(ids).await;
        if let Some(e) = report.stopped
            && !report.outcomes.iter().any(RecordOutcome::is_success)
        {
            return Err(call_error(e));
        }
        Ok(report
            .outcomes
            .iter()
            .map(|o| match o {
                RecordOutcome::Success { .. } => Outcome::Ok(()),
                other => Outcome::Failed(outcome_error(other)),
            })
            .collect())
    }

    /// By the marker in the `Tether_Sync_Key__c` External ID field (one query per chunk).
    async fn read_by_ids(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CallError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let lits: Vec<Lit> = ids.iter().map(|i| Lit::Str(i.clone())).collect();
        self.read_where_in(object, "Id", &lits).await
    }

    /// `SELECT Id, SystemModstamp … WHERE Id IN (…)`: one query per 200 ids.
    async fn modstamps(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<CrmRef>, CallError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let lits: Vec<Lit> = ids.iter().map(|i| Lit::Str(i.clone())).collect();
        let queries = SoqlBuilder::select(object_name(object), &["Id", "SystemModstamp"])
            .and_then(|b| b.chunked_in("Id", &lits, super::soql::DEFAULT_MAX_QUERY_CHARS))
            .map_err(build_error)?;
        let mut out = Vec::new();
        for q in queries {
            out.extend(self.query(q).await?.iter().filter_map(|r| {
                Some(CrmRef {
                    id: text(r.get("Id"))?,
                    modstamp: text(r.get("SystemModstamp")).unwrap_or_default(),
                })
            }));
        }
        Ok(out)
    }

    async fn find_created(
        &self,
        object: ObjectKind,
        creates: &[CrmCreate],
    ) -> Result<Vec<CrmRecord>, CallError> {
        let markers: Vec<&String> = creates.iter().map(|c| &c.marker).collect();
        if markers.is_empty() {
            return Ok(Vec::new());
        }
        let lits: Vec<Lit> = markers.iter().map(|m| Lit::Str((*m).clone())).collect();
        self.read_where_in(object, SYNC_KEY_FIELD, &lits).await
    }

    /// `queryAll` on the marker with `IsDeleted = true`: deleted records stay in the
    /// recycle bin (15 days), and only queryAll shows them.
    async fn find_deleted_created(
        &self,
        object: ObjectKind,
        markers: &[String],
    ) -> Result<Vec<String>, CallError> {
        if markers.is_empty() {
            return Ok(Vec::new());
        }
        let lits: Vec<Lit> = markers.iter().map(|m| Lit::Str(m.clone())).collect();
        let queries = SoqlBuilder::select(object_name(object), &[SYNC_KEY_FIELD])
            .and_then(|b| b.filter("IsDeleted", Op::Eq, Lit::Bool(true)))
            .and_then(|b| b.chunked_in(SYNC_KEY_FIELD, &lits, super::soql::DEFAULT_MAX_QUERY_CHARS))
            .map_err(build_error)?;
        let mut out = Vec::new();
        for q in queries {
            let mut pages = self.client.query_all(q);
            while let Some(page) = pages.next_page().await.map_err(call_error)? {
                out.extend(page.iter().filter_map(|r| text(r.get(SYNC_KEY_FIELD))));
            }
        }
        Ok(out)
    }

    async fn find_people(&self, emails: &[String]) -> Result<Vec<Person>, CallError> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let lits: Vec<Lit> = emails
            .iter()
            .map(|e| Lit::Str(e.trim().to_string()))
            .collect();
        let mut out = Vec::new();
        for object in ["Contact", "Lead"] {
            let mut b = SoqlBuilder::select(object, &["Id", "Email"]).map_err(build_error)?;
            if object == "Lead" {
                // Converted leads cannot be related.
                b = b
                    .filter("IsConverted", Op::Eq, Lit::Bool(false))
                    .map_err(build_error)?;
            }
            let queries = b
                .chunked_in("Email", &lits, super::soql::DEFAULT_MAX_QUERY_CHARS)
                .map_err(build_error)?;
            for q in queries {
                for r in self.query(q).await? {
                    let (Some(id), Some(email)) = (text(r.get("Id")), text(r.get("Email"))) else {
                        continue;
                    };
                    out.push(if object == "Contact" {
                        Person::Contact { id, email }
                    } else {
                        Person::Lead { id, email }
                    });
                }
            }
        }
        Ok(out)
    }

    /// UserRecordAccess, 200 RecordIds a query (its documented maximum), one user a query.
    /// A record found unreadable is not asked about again while its SystemModstamp is the
    /// same: a change read repeats its last second every cycle, and a quiet cycle must not
    /// ask each rep about it again.
    async fn readable(
        &self,
        user_id: &str,
        records: &[CrmRef],
    ) -> Result<BTreeSet<String>, CallError> {
        let ask: Vec<&CrmRef> = {
            let known = self.unreadable();
            records
                .iter()
                .filter(|r| known.get(&(user_id.to_string(), r.id.clone())) != Some(&r.modstamp))
                .collect()
        };
        let mut out = BTreeSet::new();
        for chunk in ask.chunks(USER_RECORD_ACCESS_IDS) {
            let lits: Vec<Lit> = chunk.iter().map(|r| Lit::Str(r.id.clone())).collect();
            let soql = SoqlBuilder::select("UserRecordAccess", &["RecordId", "HasReadAccess"])
                .and_then(|b| b.filter("UserId", Op::Eq, Lit::Str(user_id.to_string())))
                .and_then(|b| b.filter_in("RecordId", &lits, false))
                .map_err(build_error)?
                .build();
            let readable: BTreeSet<String> = self
                .query(soql)
                .await?
                .iter()
                .filter(|r| r.get("HasReadAccess") == Some(&Value::Bool(true)))
                .filter_map(|r| text(r.get("RecordId")).and_then(|id| super::ids::to_18(&id)))
                .collect();
            let mut known = self.unreadable();
            if known.len() + chunk.len() > UNREADABLE_REMEMBERED {
                known.clear();
            }
            for r in chunk {
                let key = (user_id.to_string(), r.id.clone());
                if super::ids::to_18(&r.id).is_some_and(|id| readable.contains(&id)) {
                    known.remove(&key);
                    out.insert(r.id.clone());
                } else {
                    known.insert(key, r.modstamp.clone());
                }
            }
        }
        Ok(out)
    }

    /// Every relation of every event in sObject Collections of 200, whatever event it
    /// belongs to: one call per 200 relations, not one per event.
    async fn relate(
        &self,
        relations: &[(String, Vec<String>)],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        let mut owner = Vec::new();
        let mut bodies: Vec<Map<String, Value>> = Vec::new();
        for (i, (event_id, person_ids)) in relations.iter().enumerate() {
            for p in person_ids {
                let mut m = Map::new();
                m.insert("EventId".into(), json!(event_id));
                m.insert("RelationId".into(), json!(p));
                // A related contact or lead (a Who), not an invitee: the Object Reference's
                // own example. IsInvitee defaults to true and IsParent to false, so both are
                // given. Needs Shared Activities (test-connection checks it).
                m.insert("IsParent".into(), json!(true));
                m.insert("IsInvitee".into(), json!(false));
                bodies.push(m);
                owner.push(i);
            }
        }
        let WriteReport { outcomes, stopped } = if self.bulk(bodies.len()).await {
            let key = ["EventId", "RelationId"];
            self.client
                .bulk_write("EventRelation", BulkOperation::Insert, &bodies, &key)
                .await
        } else {
            self.client.create("EventRelation", &bodies).await
        };
        if let Some(e) = stopped
            && !outcomes.iter().any(RecordOutcome::is_success)
        {
            return Err(call_error(e));
        }
        let mut failed: Vec<Vec<String>> = vec![Vec::new(); relations.len()];
        for (i, o) in owner.iter().zip(&outcomes) {
            // Related already (an earlier, interrupted run): nothing to do.
            if !o.is_success() && !o.status_codes().contains(&"DUPLICATE_VALUE") {
                failed[*i].push(outcome_error(o).message);
            }
        }
        Ok(failed
            .into_iter()
            .map(|messages| {
                if messages.is_empty() {
                    Outcome::Ok(())
                } else {
                    Outcome::Failed(failed_record(
                        "RELATE_FAILED".into(),
                        messages.join("; "),
                        false,
                    ))
                }
            })
            .collect())
    }
}
