//! The executor: runs a plan through the connectors in batches and records each success in
//! the state store at once; each failure becomes an error-report line with a suggestion and
//! the rest carries on. Creates are crash-safe: every create is journalled before it is
//! sent, and a create whose journal entry is still pending (a crash or an ambiguous answer
//! last time) is looked up on the target side before it is sent again; a Salesforce record
//! found in the recycle bin was made and deleted since, and is not sent again.
//!
//! Every remote call and every state transaction is a "step" drawn from a `StepBudget`, so
//! tests can kill the executor between any two steps and restart it from the state store.
//! A budget can also carry a stop request (SIGTERM): the executor then stops at the next
//! batch boundary, with the batch in flight written and recorded.

use crate::engine::connector::{
    CallError, CrmConnector, CrmCreate, CrmRecord, ErrorKind, Folder, MailConnector, MailCreate,
    MailItem, Mailbox, Outcome, Person, RecordError,
};
use crate::engine::plan::{Action, Operation, Plan, Side};
use crate::model::normalize::truncate_for_salesforce;
use crate::model::{EffectiveMapping, ObjectKind, Record};
use crate::state::{
    CreateTarget, ErrorEntry, ExchangeSide, JournalEntry, Link, LinkId, SalesforceSide,
    StateChange, StateError, StateStore, SyncDirection, UnresolvedItem,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How far the mail server's clock may run behind tether's. An item the server says it
/// created after a create's journal entry, less this, is taken for that create's (see
/// `create_in_exchange`); an older copy tether deleted itself within this margin before the
/// entry would be taken for it too, and not made again: a far smaller risk than undoing a
/// rep's delete whenever the clocks disagree by a few seconds.
const SERVER_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The executor was killed (tests) before finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Killed;

/// How many steps the executor may still take (`None`: no limit), and whether a stop was
/// requested.
#[derive(Debug, Clone, Default)]
pub struct StepBudget {
    left: Option<usize>,
    pub taken: usize,
    stop: Option<Arc<AtomicBool>>,
}

impl StepBudget {
    pub fn unlimited() -> Self {
        StepBudget::default()
    }
    pub fn kill_after(steps: usize) -> Self {
        StepBudget {
            left: Some(steps),
            ..StepBudget::default()
        }
    }
    /// No limit, but once `stop` is set the executor stops at the next batch boundary.
    pub fn until_stopped(stop: Arc<AtomicBool>) -> Self {
        StepBudget {
            stop: Some(stop),
            ..StepBudget::default()
        }
    }
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
    /// A batch boundary: everything before it is written and recorded; stop here if asked.
    pub fn checkpoint(&self) -> Result<(), Killed> {
        if self.stop_requested() {
            Err(Killed)
        } else {
            Ok(())
        }
    }
    pub fn step(&mut self) -> Result<(), Killed> {
        match &mut self.left {
            Some(0) => Err(Killed),
            Some(n) => {
                *n -= 1;
                self.taken += 1;
                Ok(())
            }
            None => {
                self.taken += 1;
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    Killed,
    State(StateError),
}

impl From<Killed> for ExecError {
    fn from(_: Killed) -> Self {
        ExecError::Killed
    }
}
impl From<StateError> for ExecError {
    fn from(e: StateError) -> Self {
        ExecError::State(e)
    }
}

/// What execution did to the records of one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideCounts {
    pub created: usize,
    pub updated: usize,
    /// Deleted, or found deleted already.
    pub deleted: usize,
    /// Writes that failed (see the error report).
    pub failed: usize,
}

impl SideCounts {
    fn add(&mut self, other: &SideCounts) {
        self.created += other.created;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.failed += other.failed;
    }
}

/// What execution did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecReport {
    pub succeeded: usize,
    pub failed: Vec<ErrorEntry>,
    pub salesforce: SideCounts,
    pub exchange: SideCounts,
    /// (rep, object) whose writes did not all succeed: their feeds must be read again.
    pub failed_reps: BTreeSet<(String, ObjectKind)>,
    /// Objects with a failed write sourced from Salesforce: the org watermark stays.
    pub failed_objects: BTreeSet<ObjectKind>,
    /// Records written, per object (activity counts).
    pub written: BTreeMap<ObjectKind, u64>,
    /// Records written, per object and the side written to (`run --listen`'s metrics).
    pub written_to: BTreeMap<(ObjectKind, Side), u64>,
}

impl ExecReport {
    /// Adds what the execution of another group of reps did.
    pub fn append(&mut self, other: ExecReport) {
        self.succeeded += other.succeeded;
        self.failed.extend(other.failed);
        self.salesforce.add(&other.salesforce);
        self.exchange.add(&other.exchange);
        self.failed_reps.extend(other.failed_reps);
        self.failed_objects.extend(other.failed_objects);
        for (object, n) in other.written {
            *self.written.entry(object).or_default() += n;
        }
        for (key, n) in other.written_to {
            *self.written_to.entry(key).or_default() += n;
        }
    }

    fn side(&mut self, salesforce: bool) -> &mut SideCounts {
        if salesforce {
            &mut self.salesforce
        } else {
            &mut self.exchange
        }
    }
}

pub struct Executor<'a, M, C, S> {
    pub mail: &'a M,
    pub crm: &'a C,
    pub state: &'a mut S,
    pub now: DateTime<Utc>,
    pub budget: &'a mut StepBudget,
    /// Each rep's mapping per object, to cut values to Salesforce field lengths.
    pub mappings: &'a HashMap<(String, ObjectKind), EffectiveMapping>,
    /// Told of each record written, for progress display.
    pub progress: &'a dyn Progress,
}

/// Follows an execution, for progress display: the executor reports, the caller draws. Calls
/// come between the executor's steps; implementations must be quick and cannot fail it.
pub trait Progress: Send + Sync {
    /// Before the first write: how many records each rep's writes touch (by mailbox address).
    fn start(&self, _reps: &[(String, usize)]) {}
    /// One record's write is done (`ok`) or failed.
    fn record(&self, _rep: &str, _ok: bool) {}
    /// After the last write.
    fn finish(&self) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A progress display to hand to a sync (`SyncOptions::progress`); none by default.
#[derive(Clone)]
pub struct ProgressHandle(pub std::sync::Arc<dyn Progress>);

impl Default for ProgressHandle {
    fn default() -> Self {
        ProgressHandle(std::sync::Arc::new(NoProgress))
    }
}

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHandle")
    }
}

/// The journal marker of a create: derived from what is created, so a retry reuses it.
pub fn create_marker(
    target: CreateTarget,
    rep: &str,
    object: ObjectKind,
    source_id: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "{target:?}\u{1f}{rep}\u{1f}{}\u{1f}{source_id}",
        object.name()
    ));
    let hex: String = h
        .finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("tether-{hex}")
}

/// The journal marker of an update intent: written before an update is sent, so that if
/// the run dies before recording it, the written side's new value is known to be tether's.
pub fn intent_marker(link: LinkId, target: CreateTarget) -> String {
    format!("intent-{target:?}-{}", link.0)
}

fn intent(
    rep: &str,
    object: ObjectKind,
    link: Option<LinkId>,
    target: CreateTarget,
    hash: &str,
    now: DateTime<Utc>,
) -> Option<StateChange> {
    let link = link?;
    Some(StateChange::JournalAdd(JournalEntry {
        marker: intent_marker(link, target),
        rep: rep.to_string(),
        object,
        target,
        source_id: format!("link:{}", link.0),
        hash: hash.to_string(),
        at: now,
    }))
}

fn call_outcomes<T>(n: usize, e: &CallError) -> Vec<Outcome<T>> {
    (0..n)
        .map(|_| {
            if e.ambiguous {
                Outcome::Ambiguous(e.to_string())
            } else {
                Outcome::Failed(RecordError::from(e))
            }
        })
        .collect()
}

fn gone(e: &RecordError) -> bool {
    e.kind == ErrorKind::Gone
}

/// Contacts and Leads by email (lower case), for auto-relate. Where an email is both a
/// Contact's and a Lead's, the Contact is kept: contacts are related first.
#[derive(Default)]
struct People(HashMap<String, Person>);

impl People {
    fn new(found: Vec<Person>) -> Self {
        let mut by_email = HashMap::new();
        let (contacts, leads): (Vec<Person>, Vec<Person>) = found
            .into_iter()
            .partition(|p| matches!(p, Person::Contact { .. }));
        for p in contacts.into_iter().chain(leads) {
            let (Person::Contact { email, .. } | Person::Lead { email, .. }) = &p;
            by_email
                .entry(email.trim().to_ascii_lowercase())
                .or_insert(p);
        }
        People(by_email)
    }

    fn get(&self, email: &str) -> Option<&Person> {
        self.0.get(&email.trim().to_ascii_lowercase())
    }
}

impl<M: MailConnector, C: CrmConnector, S: StateStore> Executor<'_, M, C, S> {
    pub async fn execute(&mut self, plan: &Plan) -> Result<ExecReport, ExecError> {
        let mut work: BTreeMap<&str, usize> = BTreeMap::new();
        for op in plan
            .operations
            .iter()
            .filter(|o| o.action.writes_to().is_some())
        {
            *work.entry(op.mailbox.address.as_str()).or_default() += 1;
        }
        let work: Vec<(String, usize)> =
            work.into_iter().map(|(r, n)| (r.to_string(), n)).collect();
        tracing::debug!(
            operations = plan.operations.len(),
            writes = work.iter().map(|(_, n)| n).sum::<usize>(),
            reps = work.len(),
            "executing the plan"
        );
        self.progress.start(&work);
        let report = self.execute_steps(plan).await;
        self.progress.finish();
        if let Ok(r) = &report {
            tracing::debug!(
                succeeded = r.succeeded,
                failed = r.failed.len(),
                "plan executed"
            );
        }
        report
    }

    async fn execute_steps(&mut self, plan: &Plan) -> Result<ExecReport, ExecError> {
        let mut report = ExecReport::default();
        let pending = self.state.pending_creates()?;
        self.bookkeeping(plan, &pending, &mut report)?;
        for object in ObjectKind::ALL {
            self.create_in_salesforce(plan, object, &pending, &mut report)
                .await?;
        }
        let mut mailboxes: Vec<(&Mailbox, &str, ObjectKind)> = plan
            .operations
            .iter()
            .filter(|o| o.action.writes_to() == Some(crate::engine::plan::Side::Exchange))
            .map(|o| (&o.mailbox, o.rep.as_str(), o.object))
            .collect();
        mailboxes.sort();
        mailboxes.dedup();
        // Each mailbox's operations, found once: filtering the whole plan for every mailbox
        // would be quadratic in the number of reps.
        let mut shares: HashMap<(&str, ObjectKind), Vec<&Operation>> = HashMap::new();
        for op in &plan.operations {
            if op.action.writes_to() == Some(crate::engine::plan::Side::Exchange) {
                shares
                    .entry((op.rep.as_str(), op.object))
                    .or_default()
                    .push(op);
            }
        }
        for (mb, rep, object) in &mailboxes {
            self.create_in_exchange(
                shares.get(&(*rep, *object)).map_or(&[][..], Vec::as_slice),
                mb,
                rep,
                *object,
                &pending,
                &mut report,
            )
            .await?;
        }
        // The Salesforce halves of first-link merges written: their Exchange halves link.
        let mut merged = BTreeSet::new();
        for object in ObjectKind::ALL {
            self.update_salesforce(plan, object, &mut merged, &mut report)
                .await?;
        }
        for (mb, rep, object) in &mailboxes {
            self.update_exchange(
                shares.get(&(*rep, *object)).map_or(&[][..], Vec::as_slice),
                mb,
                (rep, *object),
                &merged,
                &mut report,
            )
            .await?;
        }
        for object in ObjectKind::ALL {
            self.delete_in_salesforce(plan, object, &mut report).await?;
        }
        for (mb, rep, object) in &mailboxes {
            self.delete_in_exchange(
                shares.get(&(*rep, *object)).map_or(&[][..], Vec::as_slice),
                mb,
                rep,
                *object,
                &mut report,
            )
            .await?;
        }
        Ok(report)
    }

    fn apply(&mut self, mut changes: Vec<StateChange>) -> Result<(), ExecError> {
        if changes.is_empty() {
            return Ok(());
        }
        // A link written or dropped closes the update intents recorded for it.
        let touched: Vec<LinkId> = changes
            .iter()
            .filter_map(|c| match c {
                StateChange::PutLink { id: Some(id), .. } | StateChange::DeleteLink(id) => {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        for id in touched {
            for target in [CreateTarget::Exchange, CreateTarget::Salesforce] {
                changes.push(StateChange::JournalDone {
                    marker: intent_marker(id, target),
                });
            }
        }
        self.budget.step()?;
        self.state.apply(changes)?;
        Ok(())
    }

    fn mapping(&self, rep: &str, object: ObjectKind) -> EffectiveMapping {
        self.mappings
            .get(&(rep.to_string(), object))
            .cloned()
            .unwrap_or_else(|| EffectiveMapping::defaults(object))
    }

    /// A write that failed: its error entry, and one record done for the progress display.
    fn fail(
        &self,
        report: &mut ExecReport,
        changes: &mut Vec<StateChange>,
        op: &Operation,
        ids: Vec<String>,
        error: &RecordError,
    ) {
        self.error_entry(report, changes, op, ids, error);
        self.progress.record(&op.mailbox.address, false);
    }

    /// A write the mail side declined by design (it would have mailed a meeting's
    /// attendees): reported like a failure, but the rep is not read again for it, as a retry
    /// could only be declined again until the record changes or the configuration opts in.
    fn declined(
        &self,
        report: &mut ExecReport,
        changes: &mut Vec<StateChange>,
        op: &Operation,
        ids: Vec<String>,
        error: &RecordError,
    ) {
        let entry = self.entry_of(op, ids, error);
        report.side(false).failed += 1;
        report.failed.push(entry.clone());
        changes.push(StateChange::AddError(entry));
        self.progress.record(&op.mailbox.address, false);
    }

    /// An error entry for `op` (a failed write, or a failed follow-up of one that was done).
    fn error_entry(
        &self,
        report: &mut ExecReport,
        changes: &mut Vec<StateChange>,
        op: &Operation,
        ids: Vec<String>,
        error: &RecordError,
    ) {
        let to_sf = op.action.writes_to() == Some(crate::engine::plan::Side::Salesforce);
        let entry = self.entry_of(op, ids, error);
        report.failed_reps.insert((op.rep.clone(), op.object));
        if !to_sf {
            report.failed_objects.insert(op.object);
        }
        report.side(to_sf).failed += 1;
        report.failed.push(entry.clone());
        changes.push(StateChange::AddError(entry));
    }

    fn entry_of(&self, op: &Operation, ids: Vec<String>, error: &RecordError) -> ErrorEntry {
        let to_sf = op.action.writes_to() == Some(crate::engine::plan::Side::Salesforce);
        ErrorEntry {
            at: self.now,
            rep: op.rep.clone(),
            object: Some(op.object),
            direction: Some(if to_sf {
                SyncDirection::ExchangeToSalesforce
            } else {
                SyncDirection::SalesforceToExchange
            }),
            record_ids: ids,
            code: error.code.clone(),
            message: error.message.clone(),
            suggestion: error.hint.clone(),
            // The versions it was planned on: an acknowledgement of the failure holds while
            // the records stay at them.
            version: Some(
                [&op.exchange, &op.salesforce]
                    .iter()
                    .map(|v| v.as_ref().and_then(|v| v.version.as_deref()).unwrap_or("-"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }

    fn ok(&self, report: &mut ExecReport, op: &Operation) {
        report.succeeded += 1;
        *report.written.entry(op.object).or_insert(0) += 1;
        if let Some(side) = op.action.writes_to() {
            *report.written_to.entry((op.object, side)).or_insert(0) += 1;
        }
        self.progress.record(&op.mailbox.address, true);
        let counts = report.side(op.action.writes_to() == Some(Side::Salesforce));
        match op.action {
            Action::CreateInSalesforce { .. } | Action::CreateInExchange { .. } => {
                counts.created += 1
            }
            Action::UpdateSalesforce { .. } | Action::UpdateExchange { .. } => counts.updated += 1,
            Action::DeleteInSalesforce { .. } | Action::DeleteInExchange { .. } => {
                counts.deleted += 1
            }
            _ => {}
        }
    }

    /// The state writes that link two records, closing any create journalled for them.
    fn link_changes(
        pending: &[JournalEntry],
        op: &Operation,
        id: Option<LinkId>,
        link: Link,
    ) -> Vec<StateChange> {
        let mut out = Vec::new();
        for j in pending
            .iter()
            .filter(|j| j.rep == op.rep && j.object == op.object)
        {
            let source = match j.target {
                CreateTarget::Salesforce => link.exchange.as_ref().map(|e| &e.item_id),
                CreateTarget::Exchange => link.salesforce.as_ref().map(|s| &s.id),
            };
            if source == Some(&j.source_id) {
                out.push(StateChange::JournalDone {
                    marker: j.marker.clone(),
                });
            }
        }
        out.push(StateChange::PutLink { id, link });
        out
    }

    /// A create journalled earlier and never confirmed whose record was made and deleted
    /// since (Salesforce's recycle bin or Exchange's Deleted Items shows it): someone deleted
    /// it before tether could record it. Creating it again would undo that delete, so the
    /// record it was copied from is kept and remembered as detached, not synced again. It is
    /// not deleted in turn, even for delete_synced events: the pair was never linked.
    fn deleted_after_an_unrecorded_create(
        &self,
        report: &mut ExecReport,
        pending: &[JournalEntry],
        op: &Operation,
        replaces: Option<LinkId>,
        detached: Link,
    ) -> Vec<StateChange> {
        tracing::info!(
            rep = %op.rep,
            object = op.object.name(),
            "a record tether created and could not record is gone: left unlinked, not created again"
        );
        report.succeeded += 1;
        self.progress.record(&op.mailbox.address, true);
        Self::link_changes(pending, op, replaces, detached)
    }

    fn bookkeeping(
        &mut self,
        plan: &Plan,
        pending: &[JournalEntry],
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        let mut changes = Vec::new();
        for op in &plan.operations {
            match &op.action {
                Action::Link {
                    exchange,
                    salesforce,
                    hash,
                } => changes.extend(Self::link_changes(
                    pending,
                    op,
                    None,
                    Link {
                        rep: op.rep.clone(),
                        object: op.object,
                        exchange: Some(exchange.clone()),
                        salesforce: Some(salesforce.clone()),
                        hash: hash.clone(),
                    },
                )),
                Action::Refresh {
                    link,
                    exchange,
                    salesforce,
                    hash,
                } => changes.push(StateChange::PutLink {
                    id: Some(*link),
                    link: Link {
                        rep: op.rep.clone(),
                        object: op.object,
                        exchange: Some(exchange.clone()),
                        salesforce: Some(salesforce.clone()),
                        hash: hash.clone(),
                    },
                }),
                Action::Detach { link, remaining } => changes.push(StateChange::PutLink {
                    id: Some(*link),
                    link: remaining.clone(),
                }),
                Action::Forget { link } => changes.push(StateChange::DeleteLink(*link)),
                _ => continue,
            }
            report.succeeded += 1;
        }
        self.apply(changes)
    }

    async fn create_in_salesforce(
        &mut self,
        plan: &Plan,
        object: ObjectKind,
        pending: &[JournalEntry],
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        let ops: Vec<&Operation> = plan
            .operations
            .iter()
            .filter(|o| o.object == object && matches!(o.action, Action::CreateInSalesforce { .. }))
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let source = |op: &Operation| match &op.action {
            Action::CreateInSalesforce { exchange, .. } => exchange.item_id.clone(),
            _ => unreachable!("filtered to CreateInSalesforce"),
        };
        let marker =
            |op: &Operation| create_marker(CreateTarget::Salesforce, &op.rep, object, &source(op));
        // A create journalled before and not known done: look it up before sending it again.
        let pending_markers: BTreeSet<&str> = pending.iter().map(|j| j.marker.as_str()).collect();
        let lookups: Vec<CrmCreate> = ops
            .iter()
            .filter(|o| pending_markers.contains(marker(o).as_str()))
            .map(|o| match &o.action {
                Action::CreateInSalesforce { record, .. } => CrmCreate {
                    owner_id: o.rep.clone(),
                    marker: marker(o),
                    record: record.clone(),
                },
                _ => unreachable!("filtered to CreateInSalesforce"),
            })
            .collect();
        let mut found: HashMap<String, CrmRecord> = HashMap::new();
        let mut lookup_failed: Option<CallError> = None;
        for chunk in lookups.chunks(self.crm.batch_size()) {
            self.budget.step()?;
            match self.crm.find_created(object, chunk).await {
                Ok(records) => {
                    for r in records {
                        if let Some(m) = r.marker.clone() {
                            found.insert(m, r);
                        }
                    }
                }
                Err(e) => lookup_failed = Some(e),
            }
        }
        // Not found: made and deleted since (in the recycle bin), or never made.
        let missing: Vec<String> = lookups
            .iter()
            .map(|c| c.marker.clone())
            .filter(|m| !found.contains_key(m))
            .collect();
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        if lookup_failed.is_none() && !missing.is_empty() {
            self.budget.step()?;
            match self.crm.find_deleted_created(object, &missing).await {
                Ok(markers) => deleted.extend(markers),
                Err(e) => lookup_failed = Some(e),
            }
        }
        let mut changes = Vec::new();
        let mut to_create: Vec<&Operation> = Vec::new();
        for op in ops {
            let Action::CreateInSalesforce {
                exchange,
                hash,
                replaces,
                ..
            } = &op.action
            else {
                continue;
            };
            let m = marker(op);
            if let Some(r) = found.get(&m) {
                if let Some(old) = replaces {
                    changes.push(StateChange::DeleteLink(*old));
                }
                changes.extend(Self::link_changes(
                    pending,
                    op,
                    None,
                    Link {
                        rep: op.rep.clone(),
                        object,
                        exchange: Some(exchange.clone()),
                        salesforce: Some(SalesforceSide {
                            id: r.id.clone(),
                            modstamp: r.modstamp.clone(),
                        }),
                        hash: hash.clone(),
                    },
                ));
                self.ok(report, op);
            } else if pending_markers.contains(m.as_str()) && lookup_failed.is_some() {
                let e = lookup_failed.clone().unwrap_or_else(|| unreachable!());
                let e = RecordError {
                    retryable: true,
                    ..RecordError::from(&e)
                };
                self.fail(report, &mut changes, op, vec![exchange.item_id.clone()], &e);
            } else if deleted.contains(&m) {
                changes.extend(self.deleted_after_an_unrecorded_create(
                    report,
                    pending,
                    op,
                    *replaces,
                    Link {
                        rep: op.rep.clone(),
                        object,
                        exchange: Some(exchange.clone()),
                        salesforce: None,
                        hash: hash.clone(),
                    },
                ));
            } else {
                to_create.push(op);
            }
        }
        self.apply(changes)?;

        if to_create.is_empty() {
            return Ok(());
        }
        let records: Vec<&Record> = to_create
            .iter()
            .filter_map(|op| op.action.salesforce_record())
            .collect();
        self.crm.prepare_writes(object, &records).await;
        // Everyone the new events' attendees may be, looked up once for the phase.
        let attendees: Vec<&[String]> = to_create
            .iter()
            .filter_map(|op| match &op.action {
                Action::CreateInSalesforce { relate, .. } if !relate.is_empty() => {
                    Some(relate.as_slice())
                }
                _ => None,
            })
            .collect();
        let people = if attendees.is_empty() {
            Ok(People::default())
        } else {
            self.people(&attendees).await?
        };

        let chunk_size = self.crm.write_batch_size(object, to_create.len());
        for chunk in to_create.chunks(chunk_size) {
            self.budget.checkpoint()?;
            let journal: Vec<StateChange> = chunk
                .iter()
                .map(|op| {
                    StateChange::JournalAdd(JournalEntry {
                        marker: marker(op),
                        rep: op.rep.clone(),
                        object,
                        target: CreateTarget::Salesforce,
                        source_id: source(op),
                        hash: match &op.action {
                            Action::CreateInSalesforce { hash, .. } => hash.clone(),
                            _ => String::new(),
                        },
                        at: self.now,
                    })
                })
                .collect();
            self.apply(journal)?;
            let mut truncations = Vec::new();
            let creates: Vec<CrmCreate> = chunk
                .iter()
                .map(|op| {
                    let Action::CreateInSalesforce { record, .. } = &op.action else {
                        unreachable!("filtered to CreateInSalesforce")
                    };
                    let mapping = self.mapping(&op.rep, object);
                    let mut record = mapping.project(record);
                    let cut = truncate_for_salesforce(&mut record, &mapping);
                    truncations.push(cut);
                    CrmCreate {
                        owner_id: op.rep.clone(),
                        marker: marker(op),
                        record,
                    }
                })
                .collect();
            self.budget.step()?;
            let outcomes = match self.crm.create(object, &creates).await {
                Ok(o) => o,
                Err(e) => call_outcomes(creates.len(), &e),
            };
            let mut changes = Vec::new();
            let mut relate: Vec<(String, &Operation, &[String])> = Vec::new();
            for ((op, outcome), cut) in chunk.iter().zip(outcomes).zip(truncations) {
                let Action::CreateInSalesforce {
                    exchange,
                    hash,
                    replaces,
                    relate: attendees,
                    ..
                } = &op.action
                else {
                    continue;
                };
                match outcome {
                    Outcome::Ok(r) => {
                        if let Some(old) = replaces {
                            changes.push(StateChange::DeleteLink(*old));
                        }
                        changes.push(StateChange::JournalDone { marker: marker(op) });
                        changes.push(StateChange::PutLink {
                            id: None,
                            link: Link {
                                rep: op.rep.clone(),
                                object,
                                exchange: Some(exchange.clone()),
                                salesforce: Some(SalesforceSide {
                                    id: r.id.clone(),
                                    modstamp: r.modstamp.clone(),
                                }),
                                hash: hash.clone(),
                            },
                        });
                        for t in cut {
                            changes.push(self.truncation_warning(op, &r.id, &t));
                        }
                        if !attendees.is_empty() {
                            relate.push((r.id.clone(), op, attendees));
                        }
                        self.ok(report, op);
                    }
                    Outcome::Failed(e) => {
                        changes.push(StateChange::JournalDone { marker: marker(op) });
                        self.fail(report, &mut changes, op, vec![exchange.item_id.clone()], &e);
                    }
                    Outcome::Ambiguous(msg) => {
                        // The journal entry stays: the next run looks the record up first.
                        self.fail(
                            report,
                            &mut changes,
                            op,
                            vec![exchange.item_id.clone()],
                            &RecordError::ambiguous(&msg),
                        );
                    }
                }
            }
            self.apply(changes)?;
            self.auto_relate(relate, &people, report).await?;
        }
        Ok(())
    }

    fn truncation_warning(
        &self,
        op: &Operation,
        id: &str,
        t: &crate::model::normalize::Truncation,
    ) -> StateChange {
        StateChange::AddError(ErrorEntry {
            at: self.now,
            rep: op.rep.clone(),
            object: Some(op.object),
            direction: Some(SyncDirection::ExchangeToSalesforce),
            record_ids: vec![id.to_string()],
            code: "VALUE_TRUNCATED".into(),
            message: t.message(),
            suggestion: "Shorten the value in Exchange, or map it to a longer Salesforce field."
                .into(),
            version: None,
        })
    }

    /// The Contacts and Leads whose email is one of `attendees`' (one lookup, chunked by the
    /// connector under the query length limit).
    async fn people(
        &mut self,
        attendees: &[&[String]],
    ) -> Result<Result<People, CallError>, ExecError> {
        let mut emails: Vec<String> = attendees
            .iter()
            .flat_map(|a| a.iter().map(|e| e.trim().to_ascii_lowercase()))
            .collect();
        emails.sort();
        emails.dedup();
        self.budget.step()?;
        Ok(self.crm.find_people(&emails).await.map(People::new))
    }

    /// Relate new events' attendees to matching Contacts (up to 50), or else to one Lead;
    /// attendees that match neither become the rep's unresolved items.
    async fn auto_relate(
        &mut self,
        events: Vec<(String, &Operation, &[String])>,
        people: &Result<People, CallError>,
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        if events.is_empty() {
            return Ok(());
        }
        let people = match people {
            Ok(p) => p,
            Err(e) => {
                let mut changes = Vec::new();
                for (id, op, _) in &events {
                    let e = RecordError::from(e);
                    let e = RecordError {
                        message: format!("auto-relate: {}", e.message),
                        ..e
                    };
                    self.error_entry(report, &mut changes, op, vec![id.clone()], &e);
                }
                return self.apply(changes);
            }
        };
        let mut changes = Vec::new();
        let mut relations: Vec<(String, Vec<String>)> = Vec::new();
        let mut related: Vec<&Operation> = Vec::new();
        for (event_id, op, attendees) in events {
            let mut contacts = Vec::new();
            let mut lead = None;
            for a in attendees {
                match people.get(a) {
                    Some(Person::Contact { id, .. }) => contacts.push(id.clone()),
                    Some(Person::Lead { id, .. }) => {
                        lead.get_or_insert_with(|| id.clone());
                    }
                    None => changes.push(StateChange::AddUnresolved(UnresolvedItem {
                        rep: op.rep.clone(),
                        event_id: event_id.clone(),
                        email: a.clone(),
                        at: self.now,
                    })),
                }
            }
            contacts.truncate(50);
            let targets = if contacts.is_empty() {
                lead.into_iter().collect()
            } else {
                contacts
            };
            if targets.is_empty() {
                continue;
            }
            relations.push((event_id, targets));
            related.push(op);
        }
        if !relations.is_empty() {
            self.budget.step()?;
            let outcomes = match self.crm.relate(&relations).await {
                Ok(o) => o,
                Err(e) => call_outcomes(relations.len(), &e),
            };
            for (((event_id, _), op), outcome) in relations.iter().zip(&related).zip(outcomes) {
                let e = match outcome {
                    Outcome::Ok(()) => continue,
                    Outcome::Failed(e) => e,
                    Outcome::Ambiguous(m) => RecordError::ambiguous(&m),
                };
                let e = RecordError {
                    message: format!("auto-relate: {}", e.message),
                    ..e
                };
                self.error_entry(report, &mut changes, op, vec![event_id.clone()], &e);
            }
        }
        self.apply(changes)
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_in_exchange(
        &mut self,
        share: &[&Operation],
        mailbox: &Mailbox,
        rep: &str,
        object: ObjectKind,
        pending: &[JournalEntry],
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        let ops: Vec<&Operation> = share
            .iter()
            .copied()
            .filter(|o| {
                o.rep == rep
                    && o.object == object
                    && matches!(o.action, Action::CreateInExchange { .. })
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let folder = Folder::for_object(object);
        let sf_id = |op: &Operation| match &op.action {
            Action::CreateInExchange { salesforce, .. } => salesforce.id.clone(),
            _ => unreachable!("filtered to CreateInExchange"),
        };
        let marker =
            |op: &Operation| create_marker(CreateTarget::Exchange, rep, object, &sf_id(op));
        let pending_markers: BTreeSet<&str> = pending.iter().map(|j| j.marker.as_str()).collect();
        let lookups: Vec<String> = ops
            .iter()
            .filter(|o| pending_markers.contains(marker(o).as_str()))
            .map(|o| sf_id(o))
            .collect();
        let mut found: HashMap<String, MailItem> = HashMap::new();
        let mut lookup_failed = None;
        for chunk in lookups.chunks(self.mail.batch_size()) {
            self.budget.step()?;
            match self
                .mail
                .find_by_salesforce_ids(mailbox, folder, chunk)
                .await
            {
                Ok(items) => {
                    for i in items {
                        if let Some(s) = i.salesforce_id.clone() {
                            found.insert(s, i);
                        }
                    }
                }
                Err(e) => lookup_failed = Some(e),
            }
        }
        // Not found: made and deleted since (in Deleted Items), or never made. Only an item
        // created after its create was journalled counts (less a margin for the server's
        // clock running behind tether's): an older copy tether deleted itself sits there
        // with the same stamp.
        let missing: Vec<String> = lookups
            .iter()
            .filter(|id| !found.contains_key(*id))
            .cloned()
            .collect();
        let journalled = pending
            .iter()
            .filter(|j| j.rep == rep && j.object == object && j.target == CreateTarget::Exchange)
            .filter(|j| missing.contains(&j.source_id))
            .map(|j| j.at)
            .min();
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        if let (None, Some(at)) = (&lookup_failed, journalled) {
            self.budget.step()?;
            let since = at - SERVER_CLOCK_SKEW;
            match self
                .mail
                .find_deleted_created(mailbox, folder, &missing, since)
                .await
            {
                Ok(ids) => deleted.extend(ids),
                Err(e) => lookup_failed = Some(e),
            }
        }
        let mut changes = Vec::new();
        let mut to_create = Vec::new();
        for op in ops {
            let Action::CreateInExchange {
                salesforce,
                hash,
                replaces,
                ..
            } = &op.action
            else {
                continue;
            };
            if let Some(item) = found.get(&salesforce.id) {
                if let Some(old) = replaces {
                    changes.push(StateChange::DeleteLink(*old));
                }
                changes.extend(Self::link_changes(
                    pending,
                    op,
                    None,
                    Link {
                        rep: rep.to_string(),
                        object,
                        exchange: Some(ExchangeSide {
                            item_id: item.item_id.clone(),
                            change_key: item.change_key.clone(),
                        }),
                        salesforce: Some(salesforce.clone()),
                        hash: hash.clone(),
                    },
                ));
                self.ok(report, op);
            } else if pending_markers.contains(marker(op).as_str()) && lookup_failed.is_some() {
                let e: CallError = lookup_failed.clone().unwrap_or_else(|| unreachable!());
                let e = RecordError {
                    retryable: true,
                    ..RecordError::from(&e)
                };
                self.fail(report, &mut changes, op, vec![salesforce.id.clone()], &e);
            } else if deleted.contains(&salesforce.id) {
                changes.extend(self.deleted_after_an_unrecorded_create(
                    report,
                    pending,
                    op,
                    *replaces,
                    Link {
                        rep: rep.to_string(),
                        object,
                        exchange: None,
                        salesforce: Some(salesforce.clone()),
                        hash: hash.clone(),
                    },
                ));
            } else {
                to_create.push(op);
            }
        }
        self.apply(changes)?;
        for chunk in to_create.chunks(self.mail.batch_size()) {
            self.budget.checkpoint()?;
            let journal = chunk
                .iter()
                .map(|op| {
                    StateChange::JournalAdd(JournalEntry {
                        marker: marker(op),
                        rep: rep.to_string(),
                        object,
                        target: CreateTarget::Exchange,
                        source_id: sf_id(op),
                        hash: match &op.action {
                            Action::CreateInExchange { hash, .. } => hash.clone(),
                            _ => String::new(),
                        },
                        at: self.now,
                    })
                })
                .collect();
            self.apply(journal)?;
            let creates: Vec<MailCreate> = chunk
                .iter()
                .map(|op| match &op.action {
                    Action::CreateInExchange {
                        salesforce, record, ..
                    } => MailCreate {
                        salesforce_id: salesforce.id.clone(),
                        record: self.mapping(&op.rep, object).project(record),
                    },
                    _ => unreachable!("filtered to CreateInExchange"),
                })
                .collect();
            self.budget.step()?;
            let outcomes = match self.mail.create(mailbox, folder, &creates).await {
                Ok(o) => o,
                Err(e) => call_outcomes(creates.len(), &e),
            };
            let mut changes = Vec::new();
            for (op, outcome) in chunk.iter().zip(outcomes) {
                let Action::CreateInExchange {
                    salesforce,
                    hash,
                    replaces,
                    ..
                } = &op.action
                else {
                    continue;
                };
                match outcome {
                    Outcome::Ok(r) => {
                        if let Some(old) = replaces {
                            changes.push(StateChange::DeleteLink(*old));
                        }
                        changes.push(StateChange::JournalDone { marker: marker(op) });
                        changes.push(StateChange::PutLink {
                            id: None,
                            link: Link {
                                rep: rep.to_string(),
                                object,
                                exchange: Some(ExchangeSide {
                                    item_id: r.item_id,
                                    change_key: r.change_key,
                                }),
                                salesforce: Some(salesforce.clone()),
                                hash: hash.clone(),
                            },
                        });
                        self.ok(report, op);
                    }
                    Outcome::Failed(e) => {
                        changes.push(StateChange::JournalDone { marker: marker(op) });
                        self.fail(report, &mut changes, op, vec![salesforce.id.clone()], &e);
                    }
                    Outcome::Ambiguous(msg) => {
                        self.fail(
                            report,
                            &mut changes,
                            op,
                            vec![salesforce.id.clone()],
                            &RecordError::ambiguous(&msg),
                        );
                    }
                }
            }
            self.apply(changes)?;
        }
        Ok(())
    }

    async fn update_salesforce(
        &mut self,
        plan: &Plan,
        object: ObjectKind,
        merged: &mut BTreeSet<String>,
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        let ops: Vec<&Operation> = plan
            .operations
            .iter()
            .filter(|o| o.object == object && matches!(o.action, Action::UpdateSalesforce { .. }))
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let records: Vec<&Record> = ops
            .iter()
            .filter_map(|op| op.action.salesforce_record())
            .collect();
        self.crm.prepare_writes(object, &records).await;
        for chunk in ops.chunks(self.crm.write_batch_size(object, ops.len())) {
            self.budget.checkpoint()?;
            let mut cuts = Vec::new();
            let records: Vec<(String, Record)> = chunk
                .iter()
                .map(|op| match &op.action {
                    Action::UpdateSalesforce {
                        salesforce_id,
                        record,
                        ..
                    } => {
                        let mapping = self.mapping(&op.rep, object);
                        let mut record = mapping.project(record);
                        cuts.push(truncate_for_salesforce(&mut record, &mapping));
                        (salesforce_id.clone(), record)
                    }
                    _ => unreachable!("filtered to UpdateSalesforce"),
                })
                .collect();
            let intents = chunk
                .iter()
                .filter_map(|op| match &op.action {
                    Action::UpdateSalesforce { link, hash, .. } => intent(
                        &op.rep,
                        object,
                        *link,
                        CreateTarget::Salesforce,
                        hash,
                        self.now,
                    ),
                    _ => None,
                })
                .collect();
            self.apply(intents)?;
            self.budget.step()?;
            let outcomes = match self.crm.update(object, &records).await {
                Ok(o) => o,
                Err(e) => call_outcomes(records.len(), &e),
            };
            let mut changes = Vec::new();
            for ((op, outcome), cut) in chunk.iter().zip(outcomes).zip(cuts) {
                let Action::UpdateSalesforce {
                    link,
                    exchange,
                    salesforce_id,
                    hash,
                    merge_half,
                    ..
                } = &op.action
                else {
                    continue;
                };
                match outcome {
                    Outcome::Ok(r) if *merge_half => {
                        // The Exchange half links the pair.
                        merged.insert(salesforce_id.clone());
                        for t in cut {
                            changes.push(self.truncation_warning(op, &r.id, &t));
                        }
                        self.ok(report, op);
                    }
                    Outcome::Ok(r) => {
                        changes.push(StateChange::PutLink {
                            id: *link,
                            link: Link {
                                rep: op.rep.clone(),
                                object,
                                exchange: Some(exchange.clone()),
                                salesforce: Some(SalesforceSide {
                                    id: r.id.clone(),
                                    modstamp: r.modstamp,
                                }),
                                hash: hash.clone(),
                            },
                        });
                        for t in cut {
                            changes.push(self.truncation_warning(op, &r.id, &t));
                        }
                        self.ok(report, op);
                    }
                    Outcome::Failed(e) => {
                        // Not written: the intent is void.
                        if let Some(l) = link {
                            changes.push(StateChange::JournalDone {
                                marker: intent_marker(*l, CreateTarget::Salesforce),
                            });
                        }
                        self.fail(
                            report,
                            &mut changes,
                            op,
                            vec![exchange.item_id.clone(), salesforce_id.clone()],
                            &e,
                        )
                    }
                    Outcome::Ambiguous(m) => self.fail(
                        report,
                        &mut changes,
                        op,
                        vec![exchange.item_id.clone(), salesforce_id.clone()],
                        &RecordError::ambiguous(&m),
                    ),
                }
            }
            self.apply(changes)?;
        }
        Ok(())
    }

    async fn update_exchange(
        &mut self,
        share: &[&Operation],
        mailbox: &Mailbox,
        (rep, object): (&str, ObjectKind),
        merged: &BTreeSet<String>,
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        let ops: Vec<&Operation> = share
            .iter()
            .copied()
            .filter(|o| {
                o.rep == rep
                    && o.object == object
                    && matches!(o.action, Action::UpdateExchange { .. })
            })
            .collect();
        for chunk in ops.chunks(self.mail.batch_size()) {
            self.budget.checkpoint()?;
            let items: Vec<(String, Record)> = chunk
                .iter()
                .map(|op| match &op.action {
                    Action::UpdateExchange {
                        item_id, record, ..
                    } => (item_id.clone(), self.mapping(rep, object).project(record)),
                    _ => unreachable!("filtered to UpdateExchange"),
                })
                .collect();
            let intents = chunk
                .iter()
                .filter_map(|op| match &op.action {
                    Action::UpdateExchange { link, hash, .. } => {
                        intent(rep, object, *link, CreateTarget::Exchange, hash, self.now)
                    }
                    _ => None,
                })
                .collect();
            self.apply(intents)?;
            self.budget.step()?;
            let outcomes = match self.mail.update(mailbox, &items).await {
                Ok(o) => o,
                Err(e) => call_outcomes(items.len(), &e),
            };
            let mut changes = Vec::new();
            for (op, outcome) in chunk.iter().zip(outcomes) {
                let Action::UpdateExchange {
                    link,
                    salesforce,
                    item_id,
                    hash,
                    merge_half,
                    ..
                } = &op.action
                else {
                    continue;
                };
                match outcome {
                    // The Salesforce half was not written: left unlinked, merged again next
                    // time (linking now would take the unwritten half for an edit).
                    Outcome::Ok(_) if *merge_half && !merged.contains(&salesforce.id) => {
                        self.ok(report, op);
                    }
                    Outcome::Ok(r) => {
                        changes.push(StateChange::PutLink {
                            id: *link,
                            link: Link {
                                rep: rep.to_string(),
                                object,
                                exchange: Some(ExchangeSide {
                                    item_id: r.item_id,
                                    change_key: r.change_key,
                                }),
                                salesforce: Some(salesforce.clone()),
                                hash: hash.clone(),
                            },
                        });
                        self.ok(report, op);
                    }
                    Outcome::Failed(e) => {
                        // Not written: the intent is void.
                        if let Some(l) = link {
                            changes.push(StateChange::JournalDone {
                                marker: intent_marker(*l, CreateTarget::Exchange),
                            });
                        }
                        let ids = vec![item_id.clone(), salesforce.id.clone()];
                        // A meeting move that would mail its attendees: the link stays as it
                        // was (the Salesforce edit is not lost, nor taken as synced), reported
                        // once; it is tried again when the record is next read.
                        if e.kind == ErrorKind::WouldNotify {
                            self.declined(report, &mut changes, op, ids, &e);
                        } else {
                            self.fail(report, &mut changes, op, ids, &e);
                        }
                    }
                    Outcome::Ambiguous(m) => self.fail(
                        report,
                        &mut changes,
                        op,
                        vec![item_id.clone(), salesforce.id.clone()],
                        &RecordError::ambiguous(&m),
                    ),
                }
            }
            self.apply(changes)?;
        }
        Ok(())
    }

    async fn delete_in_salesforce(
        &mut self,
        plan: &Plan,
        object: ObjectKind,
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        let ops: Vec<&Operation> = plan
            .operations
            .iter()
            .filter(|o| o.object == object && matches!(o.action, Action::DeleteInSalesforce { .. }))
            .collect();
        for chunk in ops.chunks(self.crm.batch_size()) {
            self.budget.checkpoint()?;
            let ids: Vec<String> = chunk
                .iter()
                .map(|op| match &op.action {
                    Action::DeleteInSalesforce { salesforce_id, .. } => salesforce_id.clone(),
                    _ => unreachable!("filtered to DeleteInSalesforce"),
                })
                .collect();
            self.budget.step()?;
            let outcomes = match self.crm.delete(object, &ids).await {
                Ok(o) => o,
                Err(e) => call_outcomes(ids.len(), &e),
            };
            let changes = self.delete_outcomes(chunk, outcomes, ids, report);
            self.apply(changes)?;
        }
        Ok(())
    }

    /// Records one delete batch's outcomes: deleted, or already gone, drops the link;
    /// anything else is a per-record error and the link stays for the next run.
    fn delete_outcomes(
        &mut self,
        chunk: &[&Operation],
        outcomes: Vec<Outcome<()>>,
        ids: Vec<String>,
        report: &mut ExecReport,
    ) -> Vec<StateChange> {
        let mut changes = Vec::new();
        for ((op, outcome), id) in chunk.iter().zip(outcomes).zip(ids) {
            let (Action::DeleteInSalesforce { link, .. } | Action::DeleteInExchange { link, .. }) =
                &op.action
            else {
                continue;
            };
            match outcome {
                Outcome::Ok(()) => {
                    changes.push(StateChange::DeleteLink(*link));
                    self.ok(report, op);
                }
                Outcome::Failed(e) if gone(&e) => {
                    changes.push(StateChange::DeleteLink(*link));
                    self.progress.record(&op.mailbox.address, true);
                    report
                        .side(op.action.writes_to() == Some(Side::Salesforce))
                        .deleted += 1;
                }
                // Not deleted, as it would have mailed people: the pair is unlinked (the
                // record kept, as a detached link, so it is not taken for a new one), and
                // reported.
                Outcome::Failed(e) if e.kind == ErrorKind::WouldNotify => {
                    changes.push(match self.kept_alone(*link, op) {
                        Some(remaining) => StateChange::PutLink {
                            id: Some(*link),
                            link: remaining,
                        },
                        None => StateChange::DeleteLink(*link),
                    });
                    self.declined(report, &mut changes, op, vec![id], &e);
                }
                Outcome::Failed(e) => self.fail(report, &mut changes, op, vec![id], &e),
                Outcome::Ambiguous(m) => self.fail(
                    report,
                    &mut changes,
                    op,
                    vec![id],
                    &RecordError::ambiguous(&m),
                ),
            }
        }
        changes
    }

    /// The link of a delete that was not done, with only the side it would have deleted.
    fn kept_alone(&self, link: LinkId, op: &Operation) -> Option<Link> {
        let (_, mut l) = self
            .state
            .links(&op.rep, op.object)
            .ok()?
            .into_iter()
            .find(|(id, _)| *id == link)?;
        match op.action {
            Action::DeleteInExchange { .. } => l.salesforce = None,
            _ => l.exchange = None,
        }
        Some(l)
    }

    async fn delete_in_exchange(
        &mut self,
        share: &[&Operation],
        mailbox: &Mailbox,
        rep: &str,
        object: ObjectKind,
        report: &mut ExecReport,
    ) -> Result<(), ExecError> {
        let ops: Vec<&Operation> = share
            .iter()
            .copied()
            .filter(|o| {
                o.rep == rep
                    && o.object == object
                    && matches!(o.action, Action::DeleteInExchange { .. })
            })
            .collect();
        for chunk in ops.chunks(self.mail.batch_size()) {
            self.budget.checkpoint()?;
            let ids: Vec<String> = chunk
                .iter()
                .map(|op| match &op.action {
                    Action::DeleteInExchange { item_id, .. } => item_id.clone(),
                    _ => unreachable!("filtered to DeleteInExchange"),
                })
                .collect();
            self.budget.step()?;
            let outcomes = match self.mail.delete(mailbox, &ids).await {
                Ok(o) => o,
                Err(e) => call_outcomes(ids.len(), &e),
            };
            let changes = self.delete_outcomes(chunk, outcomes, ids, report);
            self.apply(changes)?;
        }
        Ok(())
    }
}
