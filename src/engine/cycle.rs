//! One sync cycle: resolve reps, read changes (org-wide per object from Salesforce, one
//! folder feed per rep from Exchange), plan, execute, then advance cursors and statuses
//! and record what the read learned about each rep (`facts`).
//!
//! Cursors advance only at the end and only where everything read was applied; a rep whose
//! writes partly failed, or whose mailbox could not be read, loses its folder cursor and is
//! read in full next time (matching re-links what is already there), so the org watermark
//! can always advance and one broken mailbox never makes everyone re-read.
//!
//! A cycle may be limited to the operations of a reviewed plan (`SyncOptions::approved`).
//! What else the read shows (a record changed since the plan, or new since) is held back:
//! the rep's folder cursor and the object's org watermark stay where they were, so the next
//! read shows those changes again and the next plan lists them.
//!
//! Every cycle also holds back the deletes and overwrites whose record changed after the
//! read (`recheck`), the same way: the next cycle reads the edit and decides again.

use crate::config::model::{Config, ContactScope, Direction};
use crate::engine::claim::{self, MarkerWrite};
use crate::engine::connector::{
    CallError, CrmConnector, CrmRecord, CrmRef, EventWindow, Folder, MailChange, MailConnector,
    MailItem, MailboxMarker, RepError,
};
use crate::engine::execute::{ExecError, ExecReport, Executor, Killed, ProgressHandle, StepBudget};
use crate::engine::outlook;
use crate::engine::plan::{self, Plan, PlanInput, RepObjectInput, SideView};
use crate::engine::plan::{Action, Operation, OperationKey, Side};
use crate::engine::reps::{Rep, RepProblem, resolve_reps};
use crate::engine::rules::{self, ObjectSettings};
use crate::model::{EffectiveMapping, ObjectKind};
use crate::state::{
    ActivityEntry, CursorKey, ErrorEntry, Link, LinkId, OutlookIntegrationFact, ResetMark,
    StateChange, StateError, StateStore, StatusEntry, SyncDirection, SyncStatus,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Override the empty-side guard.
    pub force: bool,
    /// Plan only: create nothing, not even a missing Salesforce_Sync folder (it is
    /// reported in `ReadOutcome::folders_to_create` instead).
    pub read_only: bool,
    /// Told of each record written (progress bars or lines); nothing by default.
    pub progress: ProgressHandle,
    /// Execute only these operations (a plan that was reviewed); every other operation is
    /// held back for the next plan. `None`: execute everything planned.
    pub approved: Option<Arc<BTreeSet<OperationKey>>>,
    /// Read and sync only these reps (lower-cased emails); the others are left as they are.
    /// `None`: every rep.
    pub only_reps: Option<BTreeSet<String>>,
    /// The guards of the reviewed plan, checked again on what is about to be executed.
    pub reviewed: Option<Reviewed>,
    /// Reps read, planned and executed at a time; `None`: `DEFAULT_GROUP_SIZE`.
    pub group_size: Option<usize>,
}

/// Reps a cycle reads, plans and executes at a time, unless told otherwise. A group's
/// mailboxes, links and plan are in memory together; 50 reps of a few thousand records each
/// stay within tens of megabytes, and the per-group Salesforce calls (an owner-filtered
/// read for reps read in full, a collection call left part-full) stay a few percent of the
/// cycle's.
pub const DEFAULT_GROUP_SIZE: usize = 50;

/// What the guards of `apply` allowed in the plan a reviewer saw. The cycle plans again before
/// it writes; more deletes than the threshold, or a refusal of the empty-side guard the
/// reviewer did not see, stop it before anything is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reviewed {
    /// `None`: deletes over the threshold were allowed (`--allow-deletes`).
    pub delete_threshold: Option<usize>,
    /// What the empty-side guard refused in the reviewed plan: rep, object and side.
    pub refusals: BTreeSet<(String, ObjectKind, Side)>,
}

impl Reviewed {
    pub fn new(delete_threshold: Option<usize>, plan: &Plan) -> Reviewed {
        Reviewed {
            delete_threshold,
            refusals: plan
                .refusals
                .iter()
                .map(|r| (r.rep.clone(), r.object, r.side))
                .collect(),
        }
    }

    /// Why the cycle must not execute `plan`, a group's, in words an admin can act on;
    /// `before` is what the cycle's groups before it executed (the threshold counts them too).
    fn check(&self, plan: &Plan, before: &Plan) -> Result<(), CycleError> {
        let deletes = |plan: &Plan| {
            plan.operations
                .iter()
                .filter(|o| {
                    matches!(
                        o.action,
                        Action::DeleteInSalesforce { .. } | Action::DeleteInExchange { .. }
                    )
                })
                .count()
        };
        let nothing = if before.is_empty() {
            "nothing was applied"
        } else {
            "nothing more was applied (the operations before it were reviewed)"
        };
        let deletes = deletes(before) + deletes(plan);
        if let Some(threshold) = self.delete_threshold
            && deletes > threshold
        {
            return Err(CycleError::Unreviewed(format!(
                "the plan now deletes {deletes} records, more than the threshold of {threshold}; \
                 {nothing}. Review it with `tether plan`, then apply with --allow-deletes"
            )));
        }
        let new = plan
            .refusals
            .iter()
            .find(|r| !self.refusals.contains(&(r.rep.clone(), r.object, r.side)));
        match new {
            Some(r) => Err(CycleError::Unreviewed(format!(
                "{} The plan reviewed did not show this refusal, so {nothing}; run \
                 `tether plan` to review it.",
                r.message
            ))),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CycleError {
    Killed,
    State(StateError),
    /// Salesforce could not be read at all: nothing was planned.
    Crm(CallError),
    /// An org setting the configuration relies on is off (what, and what to do): nothing
    /// was planned.
    OrgSetting(String),
    /// The plan about to be executed breaks a guard the reviewed plan kept (see `Reviewed`):
    /// nothing was written.
    Unreviewed(String),
}

impl From<StateError> for CycleError {
    fn from(e: StateError) -> Self {
        CycleError::State(e)
    }
}
impl From<Killed> for CycleError {
    fn from(_: Killed) -> Self {
        CycleError::Killed
    }
}
impl From<ExecError> for CycleError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Killed => CycleError::Killed,
            ExecError::State(s) => CycleError::State(s),
        }
    }
}

/// What was read, besides the plan: what the cycle needs to finish.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub reps: Vec<Rep>,
    pub problems: Vec<RepProblem>,
    /// Reps whose mailbox could not be read, with why.
    pub rep_errors: Vec<(Rep, RepError)>,
    /// New cursors: org watermarks, and folder cursors per (rep, object).
    pub org_cursors: Vec<(ObjectKind, String)>,
    pub folder_cursors: BTreeMap<(String, ObjectKind), String>,
    /// (rep, object) read in full this time (first sync, reset, or recovering).
    pub full: BTreeSet<(String, ObjectKind)>,
    pub mappings: HashMap<(String, ObjectKind), EffectiveMapping>,
    /// Hash of the sync settings this read was made under.
    pub settings_hash: String,
    /// Reps whose Salesforce_Sync folder does not exist yet (read-only planning).
    pub folders_to_create: Vec<String>,
    /// The org's Outlook integration setting, when a configuration needs it and it was read.
    pub outlook_integration: Option<OutlookIntegrationFact>,
    /// The marker this tether claims mailboxes with (`None`: the org id is not known).
    pub marker: Option<MailboxMarker>,
    /// Mailboxes whose Salesforce_Sync folder gets this tether's marker (see `claim`).
    pub markers_to_write: Vec<MarkerWrite>,
    /// Links whose records the read shows at another version than the link remembers (an
    /// edit to an unmapped field, tether's own Salesforce write read back): the link as
    /// stored and with the versions read. Recorded after the cycle, so that a record's
    /// version is known when a later delete or overwrite is checked against it.
    pub newer_versions: Vec<NewerVersion>,
}

/// A link whose records a read shows at another version than the link remembers.
#[derive(Debug, Clone)]
pub struct NewerVersion {
    pub id: LinkId,
    pub stored: Link,
    pub read: Link,
}

/// The links of `item` whose records its read shows at another version.
fn newer_versions(item: &RepObjectInput) -> Vec<NewerVersion> {
    let ex: HashMap<&str, &str> = item
        .mail
        .upserts
        .iter()
        .map(|m| (m.item_id.as_str(), m.change_key.as_str()))
        .collect();
    let sf: HashMap<&str, &str> = item
        .crm
        .upserts
        .iter()
        .map(|r| (r.id.as_str(), r.modstamp.as_str()))
        .collect();
    let mut out = Vec::new();
    for (id, link) in &item.links {
        let mut read = link.clone();
        if let Some(e) = &mut read.exchange
            && let Some(ck) = ex.get(e.item_id.as_str())
        {
            e.change_key = ck.to_string();
        }
        if let Some(s) = &mut read.salesforce
            && let Some(m) = sf.get(s.id.as_str())
        {
            s.modstamp = m.to_string();
        }
        if read != *link {
            out.push(NewerVersion {
                id: *id,
                stored: link.clone(),
                read,
            });
        }
    }
    out
}

/// What a change of which invalidates incremental reads: who syncs, and how.
fn settings_hash(config: &Config) -> String {
    let domains = crate::engine::reps::mail_domains(config);
    crate::state::canonical_json(&(&config.sync_configurations, domains)).1
}

#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    /// The operations executed (with `approved`: only those).
    pub plan: Plan,
    pub exec: ExecReport,
    pub read: ReadOutcome,
    /// Operations planned now but not approved, or whose record changed after the read:
    /// left for the next plan.
    pub held_back: Vec<Operation>,
}

/// Splits off the operations `approved` does not list.
fn hold_back(plan: &mut Plan, approved: &BTreeSet<OperationKey>) -> Vec<Operation> {
    let (keep, held) = std::mem::take(&mut plan.operations)
        .into_iter()
        .partition(|op| approved.contains(&op.key()));
    plan.operations = keep;
    held
}

fn settings(config: &Config, rep: &Rep, object: ObjectKind) -> Option<ObjectSettings> {
    let c = config.sync_configurations.get(rep.configuration)?;
    let s = ObjectSettings::of(c, object);
    (s.direction != Direction::None).then_some(s)
}

fn initial_done<S: StateStore>(
    state: &S,
    rep: &str,
    object: ObjectKind,
) -> Result<bool, StateError> {
    for d in [
        SyncDirection::ExchangeToSalesforce,
        SyncDirection::SalesforceToExchange,
    ] {
        if state
            .status(rep, object, d)?
            .is_some_and(|s| s.status.initial_done())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Read a folder's whole change feed from `cursor`, collapsed to the last change per item.
/// A folder read: its changes, the cursor after them, and whether the folder is missing
/// (read-only planning reads a missing folder as empty instead of creating it).
struct FolderRead {
    view: SideView<MailItem>,
    cursor: String,
    missing: bool,
}

async fn read_folder<M: MailConnector>(
    mail: &M,
    rep: &Rep,
    folder: Folder,
    mut cursor: Option<String>,
    window: Option<EventWindow>,
    read_only: bool,
) -> Result<FolderRead, RepError> {
    if cursor.is_none() && folder == Folder::SalesforceSyncContacts && !read_only {
        mail.ensure_folder(&rep.mailbox, folder).await?;
    }
    let mut full = cursor.is_none();
    let mut last: BTreeMap<String, Option<MailItem>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut recreated = false;
    let mut restarted = false;
    loop {
        let page = match mail
            .sync_folder(&rep.mailbox, folder, cursor.as_deref(), window)
            .await
        {
            Err(RepError::FolderMissing(_)) if read_only => {
                return Ok(FolderRead {
                    view: SideView {
                        full: true,
                        upserts: Vec::new(),
                        deleted: Vec::new(),
                    },
                    cursor: String::new(),
                    missing: true,
                });
            }
            Err(RepError::FolderMissing(_)) if !recreated => {
                // The rep deleted the folder: recreate it and start over from an empty feed.
                mail.ensure_folder(&rep.mailbox, folder).await?;
                recreated = true;
                None
            }
            // The saved state is refused: list the folder from the start.
            Err(RepError::CursorExpired(_)) if cursor.is_some() && !restarted => {
                restarted = true;
                None
            }
            other => Some(other?),
        };
        let Some(page) = page else {
            // Starting over makes a full view: what the folder no longer holds is deleted.
            cursor = None;
            full = true;
            last.clear();
            order.clear();
            continue;
        };
        for change in page.changes {
            let (id, item) = match change {
                MailChange::Upsert(i) => (i.item_id.clone(), Some(i)),
                MailChange::Delete { item_id } => (item_id, None),
            };
            if !last.contains_key(&id) {
                order.push(id.clone());
            }
            last.insert(id, item);
        }
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    let mut view = SideView {
        full,
        upserts: Vec::new(),
        deleted: Vec::new(),
    };
    for id in order {
        match last.remove(&id).flatten() {
            Some(item) => view.upserts.push(item),
            None => view.deleted.push(id),
        }
    }
    Ok(FolderRead {
        view,
        cursor: cursor.unwrap_or_default(),
        missing: false,
    })
}

/// An incremental read that shows an unlinked item stamped with a linked Salesforce id
/// (tether's stamp), and not the link's own item: the link's item is looked up by id, and
/// when it is gone, the read reports it deleted, so the plan re-links the stamped item in
/// its place instead of creating a second Salesforce record (a damaged item id in the
/// state, or a lost link write). A lookup that fails changes nothing: the plan then creates
/// nothing for the stamped item either.
async fn stamped_partners_gone<M: MailConnector>(
    mail: &M,
    rep: &Rep,
    object: ObjectKind,
    links: &[(LinkId, Link)],
    view: &mut SideView<MailItem>,
) {
    if view.full {
        return;
    }
    let linked: BTreeSet<&str> = links
        .iter()
        .filter_map(|(_, l)| l.exchange.as_ref().map(|e| e.item_id.as_str()))
        .collect();
    let stamps: BTreeSet<&str> = view
        .upserts
        .iter()
        .filter(|m| !linked.contains(m.item_id.as_str()))
        .filter_map(|m| m.salesforce_id.as_deref())
        .collect();
    let seen: BTreeSet<&str> = view
        .upserts
        .iter()
        .map(|m| m.item_id.as_str())
        .chain(view.deleted.iter().map(String::as_str))
        .collect();
    let unseen: Vec<String> = links
        .iter()
        .filter_map(|(_, l)| match (&l.exchange, &l.salesforce) {
            (Some(e), Some(s)) if stamps.contains(s.id.as_str()) => Some(e.item_id.as_str()),
            _ => None,
        })
        .filter(|id| !seen.contains(id))
        .map(String::from)
        .collect();
    let mut gone = Vec::new();
    for chunk in unseen.chunks(mail.batch_size()) {
        match mail
            .change_keys(&rep.mailbox, Folder::for_object(object), chunk)
            .await
        {
            Ok(found) => {
                let found: BTreeSet<&str> = found.iter().map(|r| r.item_id.as_str()).collect();
                gone.extend(
                    chunk
                        .iter()
                        .filter(|id| !found.contains(id.as_str()))
                        .cloned(),
                );
            }
            Err(e) => tracing::warn!(
                rep = %rep.email,
                code = %e.code,
                "linked items could not be looked up; their stamped copies wait: {}",
                e.message
            ),
        }
    }
    view.deleted.extend(gone);
}

/// After a full read, linked items it did not show may be there under other ids: the mail
/// side's API changed (`api: ews` → `api: graph`) and the links hold the old API's ids. The
/// connector translates those it can (it asks the server only after a cursor of the other
/// API); the plan points the links at the items' current ids and records them. A failed
/// translation fails the rep's read, so no linked record is taken for gone.
async fn translated_ids<M: MailConnector>(
    mail: &M,
    rep: &Rep,
    object: ObjectKind,
    links: &[(LinkId, Link)],
    view: &SideView<MailItem>,
) -> Result<BTreeMap<String, String>, CallError> {
    if !view.full {
        return Ok(BTreeMap::new());
    }
    let shown: BTreeSet<&str> = view.upserts.iter().map(|m| m.item_id.as_str()).collect();
    let unseen: Vec<String> = links
        .iter()
        .filter_map(|(_, l)| l.exchange.as_ref().map(|e| e.item_id.clone()))
        .filter(|id| !shown.contains(id.as_str()))
        .collect();
    if unseen.is_empty() {
        return Ok(BTreeMap::new());
    }
    let pairs = mail
        .translate_foreign_ids(&rep.mailbox, Folder::for_object(object), &unseen)
        .await?;
    Ok(pairs
        .into_iter()
        .filter(|(_, now)| shown.contains(now.as_str()))
        .collect())
}

/// Names in the plan each delete of a meeting that would mail its attendees a cancellation
/// (the mail side says which, reading the deleted events by id: a cycle without event
/// deletes asks nothing): done when the rep's `events.send_cancellations` allows it, else
/// the executor unlinks the pair and reports it. A lookup that fails names nothing (the
/// executor still declines such a delete without the opt-in).
async fn name_cancellations<M: MailConnector>(
    mail: &M,
    config: &Config,
    reps: &[Rep],
    plan: &mut Plan,
) {
    let mut by_mailbox: BTreeMap<&str, (&Rep, Vec<String>)> = BTreeMap::new();
    for op in &plan.operations {
        if let Action::DeleteInExchange { item_id, .. } = &op.action
            && op.object == ObjectKind::Event
            && let Some(rep) = reps.iter().find(|r| r.user_id == op.rep)
        {
            by_mailbox
                .entry(rep.user_id.as_str())
                .or_insert_with(|| (rep, Vec::new()))
                .1
                .push(item_id.clone());
        }
    }
    let mut cancelling: BTreeSet<String> = BTreeSet::new();
    for (rep, ids) in by_mailbox.values() {
        for chunk in ids.chunks(mail.batch_size()) {
            match mail
                .meetings_a_delete_would_cancel(&rep.mailbox, chunk)
                .await
            {
                Ok(found) => cancelling.extend(found),
                Err(e) => tracing::warn!(
                    rep = %rep.email,
                    code = %e.code,
                    "meetings to delete could not be read; the plan does not name their \
                     cancellations: {}",
                    e.message
                ),
            }
        }
    }
    for op in &mut plan.operations {
        if let Action::DeleteInExchange { item_id, .. } = &op.action
            && cancelling.contains(item_id)
        {
            let allowed = reps
                .iter()
                .find(|r| r.user_id == op.rep)
                .and_then(|r| settings(config, r, ObjectKind::Event))
                .is_some_and(|s| s.send_cancellations);
            op.reason = if allowed {
                plan::SENDS_CANCELLATIONS
            } else {
                plan::WOULD_SEND_CANCELLATIONS
            }
            .to_string();
        }
    }
}

/// The org-wide part of a cycle's read, made once per cycle before any group of reps is
/// read: who syncs, and Salesforce's changes to each object since its watermark.
#[derive(Debug, Clone, Default)]
pub struct OrgRead {
    /// The Salesforce users the reps were resolved from.
    pub users: Vec<crate::engine::connector::CrmUser>,
    pub reps: Vec<Rep>,
    pub problems: Vec<RepProblem>,
    /// Hash of the sync settings this read was made under.
    pub settings_hash: String,
    /// The settings changed since the last cycle: every rep is read in full.
    settings_changed: bool,
    resets: BTreeMap<String, ResetMark>,
    /// Per object someone syncs.
    pub objects: Vec<OrgChanges>,
    /// The marker this tether claims mailboxes with (`None`: the org id is not known).
    pub marker: Option<MailboxMarker>,
    /// The org's Outlook integration setting, when a configuration needs it.
    pub outlook_integration: Option<OutlookIntegrationFact>,
}

/// Salesforce's changes to one object org-wide since the watermark they were read from.
#[derive(Debug, Clone)]
pub struct OrgChanges {
    pub object: ObjectKind,
    pub watermark: Option<String>,
    pub changes: crate::engine::connector::CrmChanges,
    /// Every record of the object, read once per cycle when a rep read in full syncs all
    /// contacts (not once per group).
    everyone: Option<Vec<CrmRecord>>,
}

/// Reads who syncs, the org settings the configuration relies on, and the org-wide
/// Salesforce changes of each object someone syncs; tells the mail side the marker it
/// claims mailboxes with.
pub async fn read_org<M: MailConnector, C: CrmConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    crm: &C,
    state: &S,
    options: &SyncOptions,
) -> Result<OrgRead, CycleError> {
    let users = crm.users().await.map_err(CycleError::Crm)?;
    let mut org = OrgRead::of(config, state, options, &users, Vec::new())?;
    org.use_marker(config, mail, crm, state)?;
    org.outlook_integration = outlook::check(config, crm).await?;
    for object in ObjectKind::ALL {
        if !org
            .reps
            .iter()
            .any(|r| settings(config, r, object).is_some())
        {
            continue;
        }
        let watermark = state.cursor(&CursorKey::Org { object })?;
        let changes = crm
            .read_changes(object, watermark.as_deref())
            .await
            .map_err(CycleError::Crm)?;
        org.objects
            .push(OrgChanges::new(object, watermark, changes));
    }
    Ok(org)
}

impl OrgRead {
    /// The marker of this org and state, told to the mail side.
    pub(crate) fn use_marker<M: MailConnector, C: CrmConnector, S: StateStore>(
        &mut self,
        config: &Config,
        mail: &M,
        crm: &C,
        state: &S,
    ) -> Result<(), CycleError> {
        self.marker = match crm.org_id() {
            Some(org) => Some(MailboxMarker {
                org,
                name: config.org.name.clone(),
                state: crate::state::identity(state)?,
            }),
            None => None,
        };
        if let Some(m) = &self.marker {
            mail.use_marker(m);
        }
        Ok(())
    }

    /// The org read of `users` and of the changes `objects`, under `config`.
    pub(crate) fn of<S: StateStore>(
        config: &Config,
        state: &S,
        options: &SyncOptions,
        users: &[crate::engine::connector::CrmUser],
        objects: Vec<OrgChanges>,
    ) -> Result<OrgRead, CycleError> {
        let (mut reps, mut problems) = resolve_reps(config, users);
        if let Some(only) = &options.only_reps {
            reps.retain(|r| only.contains(&r.email));
            problems.retain(|p| only.contains(&p.user.to_lowercase()));
        }
        let settings_hash = settings_hash(config);
        let settings_changed = state
            .cursor(&CursorKey::Settings)?
            .is_some_and(|h| h != settings_hash);
        Ok(OrgRead {
            users: users.to_vec(),
            reps,
            problems,
            settings_hash,
            settings_changed,
            resets: state.reset_marks()?,
            objects,
            marker: None,
            outlook_integration: None,
        })
    }
}

impl OrgChanges {
    pub(crate) fn new(
        object: ObjectKind,
        watermark: Option<String>,
        changes: crate::engine::connector::CrmChanges,
    ) -> Self {
        OrgChanges {
            object,
            watermark,
            changes,
            everyone: None,
        }
    }
}

/// The reps of `org` in groups of `options.group_size`, as index ranges into `org.reps`.
pub(crate) fn groups(org: &OrgRead, options: &SyncOptions) -> Vec<std::ops::Range<usize>> {
    let size = options.group_size.unwrap_or(DEFAULT_GROUP_SIZE).max(1);
    (0..org.reps.len())
        .step_by(size)
        .map(|start| start..(start + size).min(org.reps.len()))
        .collect()
}

/// Read both sides and plan, writing nothing (`tether plan`; the idempotence check): the
/// org-wide read once, then the mailboxes a group of reps at a time (only the plan, which
/// is small, is kept whole). The plan lists its operations object by object, rep by rep, as
/// one group would.
pub async fn read_and_plan<M: MailConnector, C: CrmConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    crm: &C,
    state: &S,
    now: DateTime<Utc>,
    options: &SyncOptions,
) -> Result<(Plan, ReadOutcome), CycleError> {
    let mut org = read_org(config, mail, crm, state, options).await?;
    let mut plan = Plan::default();
    let mut out = ReadOutcome::default();
    for group in groups(&org, options) {
        let reps = org.reps[group].to_vec();
        let (p, r) = read_group(config, mail, crm, state, now, options, &mut org, reps).await?;
        plan.append(p);
        out.append(r);
    }
    plan.sort_by_object();
    out.finish(org);
    Ok((plan, out))
}

impl ReadOutcome {
    /// Adds the read of another group of reps.
    fn append(&mut self, other: ReadOutcome) {
        self.reps.extend(other.reps);
        self.problems.extend(other.problems);
        self.rep_errors.extend(other.rep_errors);
        self.org_cursors.extend(other.org_cursors);
        self.folder_cursors.extend(other.folder_cursors);
        self.full.extend(other.full);
        self.mappings.extend(other.mappings);
        self.folders_to_create.extend(other.folders_to_create);
        self.markers_to_write.extend(other.markers_to_write);
        self.newer_versions.extend(other.newer_versions);
        self.settings_hash = other.settings_hash;
        self.marker = other.marker;
    }

    /// Completes the groups' reads with the org-wide one: every rep, the problems, and the
    /// watermarks to move to.
    fn finish(&mut self, org: OrgRead) {
        self.reps = org.reps;
        self.problems = org.problems;
        self.settings_hash = org.settings_hash;
        self.marker = org.marker;
        self.outlook_integration = org.outlook_integration;
        self.org_cursors = org
            .objects
            .into_iter()
            .map(|o| (o.object, o.changes.watermark))
            .collect();
    }
}

/// Reads the mailboxes of the reps `org.reps[group]` (and, for those read in full, their
/// Salesforce records) and plans them, writing nothing.
#[allow(clippy::too_many_arguments)]
async fn read_group<M: MailConnector, C: CrmConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    crm: &C,
    state: &S,
    now: DateTime<Utc>,
    options: &SyncOptions,
    org: &mut OrgRead,
    reps: Vec<Rep>,
) -> Result<(Plan, ReadOutcome), CycleError> {
    let pending = state.pending_creates()?;
    let mut out = ReadOutcome {
        settings_hash: org.settings_hash.clone(),
        marker: org.marker.clone(),
        ..ReadOutcome::default()
    };
    let mut items: Vec<RepObjectInput> = Vec::new();
    let mut failed_reps: BTreeSet<String> = BTreeSet::new();
    let (resets, settings_changed) = (&org.resets, org.settings_changed);
    let org_marker = org.marker.clone();

    for org_object in &mut org.objects {
        let object = org_object.object;
        let syncing: Vec<(&Rep, ObjectSettings)> = reps
            .iter()
            .filter_map(|r| settings(config, r, object).map(|s| (r, s)))
            .collect();
        if syncing.is_empty() {
            continue;
        }
        let mut full_reps = Vec::new();
        for (rep, s) in &syncing {
            let folder_key = CursorKey::Folder {
                rep: rep.user_id.clone(),
                object,
            };
            // No watermark yet: the change read holds every record, and a rep recorded by
            // a cycle cut short after its group must see what is absent from it as deleted.
            let full = org_object.watermark.is_none()
                || settings_changed
                || resets.contains_key(&rep.user_id)
                || !initial_done(state, &rep.user_id, object)?
                || state.cursor(&folder_key)?.is_none();
            if full {
                full_reps.push((*rep, s.scope));
            }
        }
        // Without a watermark the change read was a read of everything already.
        let owned: Vec<CrmRecord>;
        let full_records: &[CrmRecord] = if org_object.watermark.is_some() && !full_reps.is_empty()
        {
            let everyone = object == ObjectKind::Contact
                && full_reps
                    .iter()
                    .any(|(_, scope)| *scope == ContactScope::AllContacts);
            if everyone {
                if org_object.everyone.is_none() {
                    let all = crm
                        .read_owned(object, None)
                        .await
                        .map_err(CycleError::Crm)?;
                    org_object.everyone = Some(all);
                }
                org_object.everyone.as_deref().unwrap_or_default()
            } else {
                let owners: Vec<String> =
                    full_reps.iter().map(|(r, _)| r.user_id.clone()).collect();
                owned = crm
                    .read_owned(object, Some(owners.as_slice()))
                    .await
                    .map_err(CycleError::Crm)?;
                &owned
            }
        } else {
            &[]
        };
        let changes = &org_object.changes;
        // The changes and the full reads, by id (a copy only when someone is read in full).
        let merged_full: Vec<CrmRecord> = if full_records.is_empty() {
            Vec::new()
        } else {
            let mut by_id: BTreeMap<&str, &CrmRecord> = BTreeMap::new();
            for r in changes.upserts.iter().chain(full_records.iter()) {
                by_id.insert(&r.id, r);
            }
            by_id.into_values().cloned().collect()
        };
        let full_read = plan::CrmRead::new(if full_records.is_empty() {
            &changes.upserts
        } else {
            &merged_full
        });
        let changes_read = plan::CrmRead::new(&changes.upserts);
        let full_ids: BTreeSet<&str> = full_reps.iter().map(|(r, _)| r.user_id.as_str()).collect();
        for (rep, s) in &syncing {
            if failed_reps.contains(&rep.user_id) {
                continue;
            }
            let full = full_ids.contains(rep.user_id.as_str());
            // A rep marked for reset loses its links when the cycle starts (so a plan shows
            // the re-matching); once the reset is under way its links are the ones it made.
            let links = if resets.get(&rep.user_id) == Some(&ResetMark::MarkedForReset) {
                Vec::new()
            } else {
                state.links(&rep.user_id, object)?
            };
            let crm_view = plan::crm_view(
                rep,
                s,
                &links,
                if full { &full_read } else { &changes_read },
                &changes.deleted,
                full,
            );
            let cursor = if full {
                None
            } else {
                state.cursor(&CursorKey::Folder {
                    rep: rep.user_id.clone(),
                    object,
                })?
            };
            match object {
                ObjectKind::Contact => mail.use_contact_mapping(&rep.mailbox, &s.mapping),
                ObjectKind::Event => {
                    mail.allow_cancellations(&rep.mailbox, s.send_cancellations);
                    mail.allow_meeting_updates(&rep.mailbox, s.update_meetings);
                }
            }
            let window = (object == ObjectKind::Event).then(|| EventWindow {
                start: rules::window_start(s.since, now, rep.time_zone),
            });
            match read_folder(
                mail,
                rep,
                Folder::for_object(object),
                cursor,
                window,
                options.read_only,
            )
            .await
            {
                Ok(FolderRead {
                    view: mut mail_view,
                    cursor,
                    missing,
                }) => {
                    // One mailbox, one org: checked once its Salesforce_Sync was read, before
                    // anything is written to it.
                    if let (ObjectKind::Contact, Some(ours)) = (object, &org_marker) {
                        let reset = resets.contains_key(&rep.user_id);
                        match claim::check(mail, rep, ours, reset, options.read_only).await {
                            Ok(write) => out.markers_to_write.extend(write),
                            Err(e) => {
                                failed_reps.insert(rep.user_id.clone());
                                out.rep_errors.push(((*rep).clone(), e));
                                continue;
                            }
                        }
                    }
                    stamped_partners_gone(mail, rep, object, &links, &mut mail_view).await;
                    let renamed = match translated_ids(mail, rep, object, &links, &mail_view).await
                    {
                        Ok(r) => r,
                        Err(e) => {
                            failed_reps.insert(rep.user_id.clone());
                            out.rep_errors.push(((*rep).clone(), RepError::Call(e)));
                            continue;
                        }
                    };
                    if missing {
                        out.folders_to_create.push(rep.email.clone());
                    }
                    out.folder_cursors
                        .insert((rep.user_id.clone(), object), cursor);
                    if full || mail_view.full {
                        out.full.insert((rep.user_id.clone(), object));
                    }
                    out.mappings
                        .insert((rep.user_id.clone(), object), s.mapping.clone());
                    let item = RepObjectInput {
                        rep: (*rep).clone(),
                        object,
                        links,
                        mail: mail_view,
                        crm: crm_view,
                        unreadable: BTreeSet::new(),
                        renamed,
                    };
                    out.newer_versions.extend(newer_versions(&item));
                    items.push(item);
                }
                Err(e) => {
                    failed_reps.insert(rep.user_id.clone());
                    out.rep_errors.push(((*rep).clone(), e));
                }
            }
        }
    }
    items.retain(|i| !failed_reps.contains(&i.rep.user_id));
    out.newer_versions
        .retain(|n| !failed_reps.contains(&n.stored.rep));
    out.folder_cursors
        .retain(|(rep, _), _| !failed_reps.contains(rep));
    out.reps = reps;
    let mut plan = plan_readable(
        crm,
        PlanInput {
            config,
            now,
            force: options.force,
            items,
            pending,
        },
    )
    .await
    .map_err(CycleError::Crm)?;
    name_cancellations(mail, config, &out.reps, &mut plan).await;
    Ok((plan, out))
}

/// Plans, keeping out of each `all_contacts` rep's mailbox the contacts the rep cannot read
/// in Salesforce: `all_contacts` is what the rep can see, not what the integration user can.
/// Only the contacts of someone else that the plan would write to the mailbox (create, or
/// write over an item) are asked about (UserRecordAccess, 200 a call, per rep), so a cycle
/// that writes nothing asks nothing. The unreadable ones leave the rep's scope and the plan
/// is made again, until it asks about nothing new.
async fn plan_readable<C: CrmConnector>(
    crm: &C,
    mut input: PlanInput<'_>,
) -> Result<Plan, CallError> {
    let all_contacts = |item: &RepObjectInput| {
        item.object == ObjectKind::Contact
            && input
                .config
                .sync_configurations
                .get(item.rep.configuration)
                .is_some_and(|c| {
                    ObjectSettings::of(c, ObjectKind::Contact).scope == ContactScope::AllContacts
                })
    };
    let asking: Vec<usize> = (0..input.items.len())
        .filter(|&i| all_contacts(&input.items[i]))
        .collect();
    let mut asked: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let plan = plan::plan(&input);
        let mut hidden = false;
        for &i in &asking {
            let item = &input.items[i];
            // Another user's contacts, as read (the rep can always read their own).
            let others: HashMap<&str, &str> = item
                .crm
                .upserts
                .iter()
                .filter(|r| r.owner_id != item.rep.user_id)
                .map(|r| (r.id.as_str(), r.modstamp.as_str()))
                .collect();
            let ask: Vec<CrmRef> = plan
                .operations
                .iter()
                .filter(|op| op.rep == item.rep.user_id && op.object == ObjectKind::Contact)
                .filter_map(|op| match &op.action {
                    plan::Action::CreateInExchange { salesforce, .. }
                    | plan::Action::UpdateExchange { salesforce, .. } => Some(&salesforce.id),
                    _ => None,
                })
                .filter_map(|id| {
                    let modstamp = others.get(id.as_str())?;
                    asked
                        .insert((item.rep.user_id.clone(), id.clone()))
                        .then(|| CrmRef {
                            id: id.clone(),
                            modstamp: modstamp.to_string(),
                        })
                })
                .collect();
            if ask.is_empty() {
                continue;
            }
            let readable = crm.readable(&item.rep.user_id, &ask).await?;
            let item = &mut input.items[i];
            for r in ask.into_iter().filter(|r| !readable.contains(&r.id)) {
                item.unreadable.insert(r.id);
                hidden = true;
            }
        }
        if !hidden {
            return Ok(plan);
        }
    }
}

/// The newer versions the read showed, for the links execution left as they were (a link
/// it rewrote already holds what it wrote).
fn newer_versions_to_record<S: StateStore>(
    state: &S,
    newer: &[NewerVersion],
) -> Result<Vec<StateChange>, StateError> {
    let mut by_rep: BTreeMap<(&str, ObjectKind), Vec<&NewerVersion>> = BTreeMap::new();
    for n in newer {
        by_rep
            .entry((n.stored.rep.as_str(), n.stored.object))
            .or_default()
            .push(n);
    }
    let mut changes = Vec::new();
    for ((rep, object), newer) in by_rep {
        let now: HashMap<LinkId, Link> = state.links(rep, object)?.into_iter().collect();
        for n in newer {
            if now.get(&n.id) == Some(&n.stored) {
                changes.push(StateChange::PutLink {
                    id: Some(n.id),
                    link: n.read.clone(),
                });
            }
        }
    }
    Ok(changes)
}

fn apply<S: StateStore>(
    state: &mut S,
    budget: &mut StepBudget,
    changes: Vec<StateChange>,
) -> Result<(), CycleError> {
    if changes.is_empty() {
        return Ok(());
    }
    budget.step()?;
    state.apply(changes)?;
    Ok(())
}

/// Run one full cycle: the org-wide read, then each group of reps read, planned, executed
/// and recorded before the next is read (memory follows the group, not the org); the org-wide
/// cursors move last, once every group is recorded, so a cycle cut short reads the same
/// Salesforce changes again (what was synced plans nothing the second time).
pub async fn run_cycle<M: MailConnector, C: CrmConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    crm: &C,
    state: &mut S,
    now: DateTime<Utc>,
    options: &SyncOptions,
    budget: &mut StepBudget,
) -> Result<CycleReport, CycleError> {
    let changes = reset_changes(&*state)?;
    apply(state, budget, changes)?;

    let mut org = read_org(config, mail, crm, &*state, options).await?;
    let mut report = CycleReport::default();
    for group in groups(&org, options) {
        let reps = org.reps[group].to_vec();
        let done = run_group(
            config, mail, crm, state, now, options, budget, &mut org, reps, &report, None,
        )
        .await?;
        report.append(done);
    }
    report.plan.sort_by_object();
    let held: BTreeSet<ObjectKind> = report.held_back.iter().map(|op| op.object).collect();
    finish_cycle(
        config, mail, state, now, options, budget, org, report, &held, None,
    )
}

/// Reps marked for reset lose their links and cursors when a cycle starts; they re-sync by
/// matching.
pub(crate) fn reset_changes<S: StateStore>(state: &S) -> Result<Vec<StateChange>, StateError> {
    let mut changes = Vec::new();
    for (rep, mark) in state.reset_marks()? {
        if mark == ResetMark::MarkedForReset {
            changes.push(StateChange::ClearRep { rep: rep.clone() });
            changes.push(StateChange::SetResetMark {
                rep,
                mark: Some(ResetMark::ResetInProgress),
            });
        }
    }
    Ok(changes)
}

impl CycleReport {
    /// Adds what a group of reps did.
    pub(crate) fn append(&mut self, group: CycleReport) {
        self.plan.append(group.plan);
        self.exec.append(group.exec);
        self.read.append(group.read);
        self.held_back.extend(group.held_back);
    }
}

/// Reads, plans, executes and records the group of `reps`: their cursors, statuses, errors
/// and links in one transaction at the end. `before` is what the groups before did (the
/// reviewed plan's guards count the whole cycle). `shared`: the (generation, group) of a
/// cycle shared by workers, recorded done in the same transaction, with what the read
/// learned about the group's reps.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_group<M: MailConnector, C: CrmConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    crm: &C,
    state: &mut S,
    now: DateTime<Utc>,
    options: &SyncOptions,
    budget: &mut StepBudget,
    org: &mut OrgRead,
    reps: Vec<Rep>,
    before: &CycleReport,
    shared: Option<(u64, u64)>,
) -> Result<CycleReport, CycleError> {
    let (mut plan, read) = read_group(config, mail, crm, &*state, now, options, org, reps).await?;
    let mut held_back = match &options.approved {
        Some(approved) => hold_back(&mut plan, approved),
        None => Vec::new(),
    };
    if let Some(reviewed) = &options.reviewed {
        reviewed.check(&plan, &before.plan)?;
    }
    // A delete or an overwrite whose record was edited since the read waits for the next
    // read, like an operation a reviewed plan did not list.
    let changed = crate::engine::recheck::changed_since_read(mail, crm, &plan).await;
    if !changed.is_empty() {
        let (changed, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.operations)
            .into_iter()
            .enumerate()
            .partition(|(i, _)| changed.contains(i));
        plan.operations = keep.into_iter().map(|(_, op)| op).collect();
        held_back.extend(changed.into_iter().map(|(_, op)| op));
    }
    let held: BTreeSet<(&str, ObjectKind)> = held_back
        .iter()
        .map(|op| (op.rep.as_str(), op.object))
        .collect();

    let mut changes = Vec::new();
    for (rep, object) in read.folder_cursors.keys() {
        for d in [
            SyncDirection::ExchangeToSalesforce,
            SyncDirection::SalesforceToExchange,
        ] {
            let syncs = read
                .reps
                .iter()
                .find(|r| &r.user_id == rep)
                .and_then(|r| settings(config, r, *object))
                .is_some_and(|s| s.syncs(d));
            let initial = !initial_done(&*state, rep, *object)?;
            let status = if !syncs {
                SyncStatus::NotSetToSync
            } else if initial {
                SyncStatus::InitialSyncInProgress
            } else {
                SyncStatus::SyncInProgress
            };
            let records_in_sync = state
                .status(rep, *object, d)?
                .map(|s| s.records_in_sync)
                .unwrap_or(0);
            changes.push(StateChange::SetStatus(StatusEntry {
                rep: rep.clone(),
                object: *object,
                direction: d,
                status,
                records_in_sync,
                updated: now,
            }));
        }
    }
    apply(state, budget, changes)?;

    // A stop asked for while reading: nothing of this group has been written yet.
    budget.checkpoint()?;
    let mut executor = Executor {
        mail,
        crm,
        state: &mut *state,
        now,
        budget: &mut *budget,
        mappings: &read.mappings,
        progress: options.progress.0.as_ref(),
    };
    let exec = executor.execute(&plan).await?;

    // Finish the group: cursors, statuses, activity, errors, reset marks — one transaction.
    let mut changes = Vec::new();
    changes.extend(newer_versions_to_record(&*state, &read.newer_versions)?);
    // Reps are keyed by Salesforce user id; remember their emails for status and reset.
    changes.extend(read.reps.iter().map(|r| StateChange::SetRepEmail {
        rep: r.user_id.clone(),
        email: r.email.clone(),
    }));
    // A reset is complete once its rep was read and planned in full and every operation ran:
    // matched, or recorded as failed (failures are retried as ordinary records, as the
    // failed rep is read in full again). Only an unreadable mailbox, a refusal or operations
    // held back leave it in progress.
    let mut reset_done: BTreeSet<&str> = read.reps.iter().map(|r| r.user_id.as_str()).collect();
    for ((rep, object), cursor) in &read.folder_cursors {
        // A refused mass delete is read again (in full) next time, so --force can apply it.
        let refused = plan
            .refusals
            .iter()
            .any(|x| &x.rep == rep && x.object == *object);
        // Records a first-sync match could not tell apart are read in full again too: an
        // incremental read would show the edit that tells them apart without the others.
        let ambiguous = plan
            .ambiguous
            .iter()
            .any(|x| &x.rep == rep && x.object == *object);
        let failed = refused || ambiguous || exec.failed_reps.contains(&(rep.clone(), *object));
        let held_back = held.contains(&(rep.as_str(), *object));
        if refused || held_back {
            reset_done.remove(rep.as_str());
        }
        if failed || !held_back {
            changes.push(StateChange::SetCursor {
                key: CursorKey::Folder {
                    rep: rep.clone(),
                    object: *object,
                },
                value: (!failed).then(|| cursor.clone()),
            });
        } else if read.full.contains(&(rep.clone(), *object)) {
            // Held back from a full read (first sync, reset, new settings): read in full
            // again, as an old cursor would miss what the new settings let in.
            changes.push(StateChange::SetCursor {
                key: CursorKey::Folder {
                    rep: rep.clone(),
                    object: *object,
                },
                value: None,
            });
        }
        let failed = failed || held_back;
        let linked = state
            .links(rep, *object)?
            .iter()
            .filter(|(_, l)| !l.is_detached())
            .count() as u64;
        let rep_def = read.reps.iter().find(|r| &r.user_id == rep);
        let s = rep_def.and_then(|r| settings(config, r, *object));
        for d in [
            SyncDirection::ExchangeToSalesforce,
            SyncDirection::SalesforceToExchange,
        ] {
            let was_initial = !initial_done(&*state, rep, *object)?
                || state
                    .status(rep, *object, d)?
                    .is_some_and(|x| x.status == SyncStatus::InitialSyncInProgress);
            let status = if !s.as_ref().is_some_and(|s| s.syncs(d)) {
                SyncStatus::NotSetToSync
            } else if failed {
                if was_initial {
                    SyncStatus::InitialSyncInProgress
                } else {
                    SyncStatus::SyncInProgress
                }
            } else if was_initial {
                SyncStatus::InitialSyncCompleted
            } else {
                SyncStatus::InSync
            };
            changes.push(StateChange::SetStatus(StatusEntry {
                rep: rep.clone(),
                object: *object,
                direction: d,
                status,
                records_in_sync: linked,
                updated: now,
            }));
        }
    }
    for (rep, e) in &read.rep_errors {
        reset_done.remove(rep.user_id.as_str());
        for object in ObjectKind::ALL {
            changes.push(StateChange::SetCursor {
                key: CursorKey::Folder {
                    rep: rep.user_id.clone(),
                    object,
                },
                value: None,
            });
        }
        changes.push(StateChange::AddError(ErrorEntry {
            at: now,
            rep: rep.user_id.clone(),
            object: None,
            direction: None,
            record_ids: Vec::new(),
            code: e.code().to_string(),
            message: e.message(),
            suggestion: e.suggestion().to_string(),
            version: None,
        }));
    }
    for r in &plan.refusals {
        changes.push(StateChange::AddError(ErrorEntry {
            at: now,
            rep: r.rep.clone(),
            object: Some(r.object),
            direction: None,
            record_ids: Vec::new(),
            code: "EMPTY_SIDE_GUARD".into(),
            message: r.message.clone(),
            suggestion: "Check the mailbox and the integration user's permissions; if the \
                         deletes are real, run again with --force."
                .into(),
            version: None,
        }));
    }
    for a in &plan.ambiguous {
        changes.push(StateChange::AddError(ErrorEntry {
            at: now,
            rep: a.rep.clone(),
            object: Some(a.object),
            direction: None,
            record_ids: a
                .exchange_ids
                .iter()
                .chain(&a.salesforce_ids)
                .cloned()
                .collect(),
            code: "AMBIGUOUS_MATCH".into(),
            message: format!(
                "{} Exchange and {} Salesforce {}s have one name and company and no email \
                 that tells them apart; none of them is linked or created",
                a.exchange_ids.len(),
                a.salesforce_ids.len(),
                a.object.name()
            ),
            suggestion: "Give the Outlook contact the email of the Salesforce contact it is \
                         (or tell the records apart by name or company); the next run links it."
                .into(),
            version: None,
        }));
    }
    for (object, n) in &exec.written {
        changes.push(StateChange::AddActivity(ActivityEntry {
            at: now,
            object: *object,
            records: *n,
        }));
    }
    for (rep, mark) in state.reset_marks()? {
        if mark == ResetMark::ResetInProgress && reset_done.contains(rep.as_str()) {
            changes.push(StateChange::SetResetMark { rep, mark: None });
        }
    }
    if let Some((generation, group)) = shared {
        // Another worker may finish the cycle: what was learned is recorded with the group.
        let emails: BTreeSet<String> = read.reps.iter().map(|r| r.email.clone()).collect();
        changes.extend(crate::engine::facts::changes(
            config,
            &read,
            mail,
            &*state,
            Some(&emails),
            now,
        )?);
        let held: BTreeSet<ObjectKind> = held.iter().map(|(_, o)| *o).collect();
        changes.push(StateChange::GroupDone {
            generation,
            group,
            held: held.into_iter().collect(),
            at: now,
        });
    }
    apply(state, budget, changes)?;
    Ok(CycleReport {
        plan,
        exec,
        read,
        held_back,
    })
}

/// Ends a cycle once every group is recorded: the org-wide cursors (each object's watermark
/// unless an operation of it was `held` back), the reps that cannot be synced, and what the
/// read learned (`facts`; a shared cycle recorded it group by group) — one transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_cycle<M: MailConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    state: &mut S,
    now: DateTime<Utc>,
    options: &SyncOptions,
    budget: &mut StepBudget,
    org: OrgRead,
    mut report: CycleReport,
    held: &BTreeSet<ObjectKind>,
    shared: Option<u64>,
) -> Result<CycleReport, CycleError> {
    report.read.finish(org);
    let read = &report.read;
    let mut changes = Vec::new();
    // Reps left unread keep their cursors, and only a read of everyone moves the org-wide
    // ones: the settings hash, and each object's watermark unless something was held back.
    let everyone = options.only_reps.is_none();
    if everyone {
        changes.push(StateChange::SetCursor {
            key: CursorKey::Settings,
            value: Some(read.settings_hash.clone()),
        });
    }
    for (object, watermark) in &read.org_cursors {
        if !everyone || held.contains(object) {
            continue;
        }
        changes.push(StateChange::SetCursor {
            key: CursorKey::Org { object: *object },
            value: Some(watermark.clone()),
        });
    }
    for p in &read.problems {
        changes.push(StateChange::AddError(ErrorEntry {
            at: now,
            rep: p.user.clone(),
            object: None,
            direction: None,
            record_ids: Vec::new(),
            code: p.code.to_string(),
            message: p.message.clone(),
            suggestion: p.suggestion.to_string(),
            version: None,
        }));
    }
    match shared {
        Some(generation) => changes.push(StateChange::FinishSharedCycle {
            generation,
            at: now,
        }),
        // What this read learned about each rep and the connection, for `tether status`.
        None => changes.extend(crate::engine::facts::changes(
            config,
            read,
            mail,
            &*state,
            options.only_reps.as_ref(),
            now,
        )?),
    }
    apply(state, budget, changes)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::CrmUser;
    use crate::engine::memory::{MemoryCrm, MemoryExchange};
    use crate::engine::plan::Action;
    use crate::model::{Contact, Record};
    use crate::state::MemoryState;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-06-15T12:00:00Z".parse().unwrap()
    }

    fn rep(n: usize) -> (String, String) {
        (format!("005{n:012}"), format!("rep{n}@acme.com"))
    }

    fn contact(last: &str, title: &str) -> Record {
        Record::Contact(
            Contact::default()
                .with("LastName", last)
                .with("Email", format!("{}@customer.com", last.to_lowercase()))
                .with("Title", title),
        )
    }

    struct World {
        config: Config,
        ex: MemoryExchange,
        sf: MemoryCrm,
        state: MemoryState,
    }

    fn world() -> World {
        let config = serde_json::from_value(json!({
            "version": 1,
            "org": { "name": "acme", "kind": "production" },
            "connections": {
                "exchange": { "method": "service_account", "username": "svc@acme.com",
                              "password": "${env:P}" },
                "salesforce": { "instance_url": "https://acme.my.salesforce.com",
                                "auth": { "flow": "access_token", "access_token": "${env:T}" } }
            },
            "sync_configurations": [{
                "name": "Sales", "members": { "profiles": ["Sales User"] },
                "contacts": { "direction": "both", "conflict": "salesforce_wins",
                              "scope": "users_records" }
            }]
        }))
        .unwrap();
        let ex = MemoryExchange::new();
        let sf = MemoryCrm::new();
        for n in 0..2 {
            let (id, email) = rep(n);
            ex.add_mailbox(&email);
            sf.add_user(CrmUser {
                id,
                email,
                profile: "Sales User".into(),
                active: true,
                time_zone: "Europe/Berlin".into(),
            });
        }
        World {
            config,
            ex,
            sf,
            state: MemoryState::new(),
        }
    }

    impl World {
        async fn cycle(&mut self, options: &SyncOptions) -> CycleReport {
            run_cycle(
                &self.config,
                &self.ex,
                &self.sf,
                &mut self.state,
                now(),
                options,
                &mut StepBudget::unlimited(),
            )
            .await
            .unwrap()
        }

        fn add_reps(&self, reps: std::ops::Range<usize>) {
            for n in reps {
                let (id, email) = rep(n);
                self.ex.add_mailbox(&email);
                self.sf.add_user(CrmUser {
                    id,
                    email,
                    profile: "Sales User".into(),
                    active: true,
                    time_zone: "Europe/Berlin".into(),
                });
            }
        }

        async fn plan(&self, options: &SyncOptions) -> Plan {
            read_and_plan(
                &self.config,
                &self.ex,
                &self.sf,
                &self.state,
                now(),
                options,
            )
            .await
            .unwrap()
            .0
        }

        fn retitle(&self, id: &str, title: &str) {
            assert!(self.sf.user_edit(ObjectKind::Contact, id, |r| {
                if let Record::Contact(c) = &mut r.record {
                    *c = c.clone().with("Title", title);
                }
            }));
        }

        fn titles(&self, n: usize) -> Vec<String> {
            let mut titles: Vec<String> = self
                .ex
                .items(&rep(n).1, Folder::SalesforceSyncContacts)
                .iter()
                .filter_map(|i| Some(i.record.as_contact()?.get("Title").to_string()))
                .collect();
            titles.sort();
            titles
        }

        fn cursor(&self, key: CursorKey) -> Option<String> {
            self.state.cursor(&key).unwrap()
        }
    }

    fn approve(plan: &Plan) -> SyncOptions {
        SyncOptions {
            approved: Some(Arc::new(plan.operations.iter().map(|o| o.key()).collect())),
            ..SyncOptions::default()
        }
    }

    /// A mail side whose calendar feed works only over a date range (Graph's calendarView
    /// delta) is told the configuration's window; the contacts feed has none.
    #[tokio::test]
    async fn the_calendar_feed_is_read_with_the_configurations_event_window() {
        let mut w = world();
        w.config.sync_configurations[0].events = Some(
            serde_json::from_value(json!({ "direction": "both", "since": "LAST_N_DAYS:30" }))
                .unwrap(),
        );
        w.cycle(&SyncOptions::default()).await;
        // 30 days before 2026-06-15 at 00:00 in the rep's Europe/Berlin (CEST).
        let start: DateTime<Utc> = "2026-05-15T22:00:00Z".parse().unwrap();
        for n in 0..2 {
            assert_eq!(
                w.ex.event_window(&rep(n).1),
                Some(EventWindow { start }),
                "rep {n}"
            );
        }
        assert!(w.ex.counts().sync_folder_by[&Folder::SalesforceSyncContacts] > 0);
    }

    #[tokio::test]
    async fn only_approved_operations_run_and_the_rest_is_left_for_the_next_plan() {
        let mut w = world();
        let (rep0, _) = rep(0);
        let (rep1, _) = rep(1);
        let a =
            w.sf.user_create(ObjectKind::Contact, &rep0, contact("Alba", "v1"));
        let b =
            w.sf.user_create(ObjectKind::Contact, &rep0, contact("Bose", "v1"));
        let c =
            w.sf.user_create(ObjectKind::Contact, &rep1, contact("Cruz", "v1"));
        w.cycle(&SyncOptions::default()).await;
        assert_eq!(w.titles(0), ["v1", "v1"]);

        for id in [&a, &b, &c] {
            w.retitle(id, "v2");
        }
        let reviewed = w.plan(&SyncOptions::default()).await;
        assert_eq!(reviewed.operations.len(), 3, "{reviewed:#?}");
        // After the review: Bose is edited again, and a new contact appears.
        w.retitle(&b, "v3");
        w.sf.user_create(ObjectKind::Contact, &rep0, contact("Dunn", "v1"));
        let folder0 = CursorKey::Folder {
            rep: rep0.clone(),
            object: ObjectKind::Contact,
        };
        let org = CursorKey::Org {
            object: ObjectKind::Contact,
        };
        let (folder_before, org_before) = (w.cursor(folder0.clone()), w.cursor(org.clone()));

        let report = w.cycle(&approve(&reviewed)).await;
        assert_eq!(report.exec.exchange.updated, 2);
        assert_eq!(
            w.titles(0),
            ["v1", "v2"],
            "Bose untouched, Dunn not created"
        );
        assert_eq!(w.titles(1), ["v2"]);
        let held: Vec<&str> = report.held_back.iter().map(|o| o.action.name()).collect();
        assert_eq!(held, ["update_exchange", "create_in_exchange"]);
        assert_eq!(w.cursor(folder0), folder_before, "the rep's cursor stays");
        assert_eq!(w.cursor(org), org_before, "the watermark stays");

        // The next plan shows exactly what was held back, at its latest version.
        let next = w.plan(&SyncOptions::default()).await;
        let keys: Vec<_> = next.operations.iter().map(|o| o.key()).collect();
        let held_keys: Vec<_> = report.held_back.iter().map(|o| o.key()).collect();
        assert_eq!(keys, held_keys);
        assert!(next.operations.iter().any(|o| matches!(
            &o.action,
            Action::UpdateExchange { record, .. } if record.as_contact().map(|c| c.get("Title")) == Some("v3")
        )));
        w.cycle(&SyncOptions::default()).await;
        assert_eq!(w.titles(0), ["v1", "v2", "v3"]);
        assert!(w.plan(&SyncOptions::default()).await.is_empty());
    }

    #[tokio::test]
    async fn held_back_from_a_full_read_is_read_in_full_again() {
        let mut w = world();
        let (rep0, _) = rep(0);
        w.sf.user_create(ObjectKind::Contact, &rep0, contact("Alba", "v1"));
        let reviewed = w.plan(&SyncOptions::default()).await;
        w.sf.user_create(ObjectKind::Contact, &rep0, contact("Bose", "v1"));
        let report = w.cycle(&approve(&reviewed)).await;
        assert_eq!(report.held_back.len(), 1);
        assert_eq!(w.titles(0), ["v1"]);
        let folder0 = CursorKey::Folder {
            rep: rep0,
            object: ObjectKind::Contact,
        };
        assert_eq!(w.cursor(folder0), None);
        let next = w.plan(&SyncOptions::default()).await;
        assert_eq!(next.operations.len(), 1, "{next:#?}");
        assert_eq!(next.operations[0].action.name(), "create_in_exchange");
    }

    #[tokio::test]
    async fn only_reps_reads_and_syncs_those_reps_and_leaves_the_org_cursors() {
        let mut w = world();
        let (rep0, email0) = rep(0);
        let (rep1, _) = rep(1);
        w.sf.user_create(ObjectKind::Contact, &rep0, contact("Alba", "v1"));
        w.sf.user_create(ObjectKind::Contact, &rep1, contact("Cruz", "v1"));
        let only = SyncOptions {
            only_reps: Some([email0].into()),
            ..SyncOptions::default()
        };
        let plan = w.plan(&only).await;
        assert!(plan.operations.iter().all(|o| o.rep == rep0), "{plan:#?}");
        assert_eq!(plan.operations.len(), 1);
        w.cycle(&only).await;
        assert_eq!(w.titles(0), ["v1"]);
        assert!(w.titles(1).is_empty());
        assert_eq!(
            w.cursor(CursorKey::Org {
                object: ObjectKind::Contact
            }),
            None
        );
        assert_eq!(w.cursor(CursorKey::Settings), None);
        w.cycle(&SyncOptions::default()).await;
        assert_eq!(w.titles(1), ["v1"]);
        assert!(w.plan(&SyncOptions::default()).await.is_empty());
    }

    /// A sync of some reps (`--user`) leaves the org watermark unset; a later cycle of
    /// everyone reads Salesforce from the start, which shows a deleted record only by its
    /// absence: the reps synced before must be read in full, or their links keep pointing
    /// at the deleted record for good (a cycle cut short after its first groups leaves the
    /// same state).
    #[tokio::test]
    async fn a_salesforce_delete_after_a_sync_of_some_reps_unlinks_their_copy() {
        let mut w = world();
        let (rep0, email0) = rep(0);
        let alba =
            w.sf.user_create(ObjectKind::Contact, &rep0, contact("Alba", "v1"));
        w.cycle(&SyncOptions {
            only_reps: Some([email0].into()),
            ..SyncOptions::default()
        })
        .await;
        assert_eq!(w.titles(0), ["v1"]);
        assert!(w.sf.user_delete(ObjectKind::Contact, &alba));
        w.cycle(&SyncOptions::default()).await;
        // A contact deleted in Salesforce is unlinked; its Outlook copy stays.
        let links = w.state.links(&rep0, ObjectKind::Contact).unwrap();
        assert!(
            links.iter().all(|(_, l)| l.salesforce.is_none()),
            "still linked to the deleted record: {links:?}"
        );
    }

    /// Groups of two reps: each group's mailboxes are read, then written, before the next
    /// group's are read; the plan of all of them is the plan of one group.
    #[tokio::test]
    async fn each_group_of_reps_is_read_and_written_before_the_next_is_read() {
        let mut w = world();
        w.add_reps(2..5);
        for n in 0..5 {
            w.sf.user_create(
                ObjectKind::Contact,
                &rep(n).0,
                contact(&format!("C{n}"), "v1"),
            );
        }
        let in_twos = SyncOptions {
            group_size: Some(2),
            ..SyncOptions::default()
        };
        let whole = w.plan(&SyncOptions::default()).await;
        assert_eq!(w.plan(&in_twos).await, whole);
        let planned = w.ex.counts().mailbox_calls.len();
        let report = w.cycle(&in_twos).await;
        assert_eq!(report.exec.exchange.created, 5);
        // The mailboxes read before each run of writes.
        let mut read_before_writes: Vec<BTreeSet<String>> = vec![BTreeSet::new()];
        let mut writing = false;
        for (call, mailbox) in w.ex.counts().mailbox_calls.into_iter().skip(planned) {
            match call {
                "read" if writing => {
                    writing = false;
                    read_before_writes.push([mailbox].into());
                }
                "read" => {
                    read_before_writes.last_mut().unwrap().insert(mailbox);
                }
                _ => writing = true,
            }
        }
        let groups: Vec<Vec<String>> = read_before_writes
            .into_iter()
            .map(|g| g.into_iter().collect())
            .collect();
        let mail = |n: usize| rep(n).1;
        assert_eq!(
            groups,
            [
                vec![mail(0), mail(1)],
                vec![mail(2), mail(3)],
                vec![mail(4)]
            ]
        );
        for n in 0..5 {
            assert_eq!(w.titles(n), ["v1"]);
        }
        assert!(w.plan(&in_twos).await.is_empty());
        assert!(
            w.cursor(CursorKey::Org {
                object: ObjectKind::Contact
            })
            .is_some()
        );
    }
}
