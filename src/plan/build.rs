//! From the engine's plan to the plan document a reviewer reads: operations counted per
//! configuration, rep, object and direction; skipped records by reason; conflicts; and the
//! warnings that matter (overwrites, refused mass deletes, reps that cannot sync, deletes
//! over the threshold, initial sync sizes).

use super::document::*;
use super::settings::SettingChange;
use crate::config::model::Config;
use crate::engine::cycle::ReadOutcome;
use crate::engine::plan::{Action, Plan, Side};
use crate::model::merge::FieldEffects;
use crate::model::normalize::{comparison_form, display_form};
use crate::model::{EffectiveMapping, ObjectKind, Record};
use crate::state::{ResetMark, StateError, StateStore};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `--delete-threshold` of `plan` and `apply` when not given.
pub const DEFAULT_DELETE_THRESHOLD: usize = 100;

/// Options of `tether plan` that shape the document.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// List each record and the fields that change (`--detail`).
    pub detail: bool,
    /// With `detail`: the values before and after. Record contents are personal data, so
    /// without this the document holds ids and field names only.
    pub show_values: bool,
    /// Deletes above this count refuse to apply without `--allow-deletes`.
    pub delete_threshold: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            detail: false,
            show_values: false,
            delete_threshold: DEFAULT_DELETE_THRESHOLD,
        }
    }
}

/// What the plan reads besides the changes: the records updates would overwrite that the
/// read did not show (an incremental read sees just the side that changed), keyed by
/// Salesforce id and by Exchange item id; and the companies of the contacts written to
/// Salesforce that have no Account yet, which the write creates.
#[derive(Debug, Clone, Default)]
pub struct TargetRecords {
    pub salesforce: HashMap<String, Record>,
    pub exchange: HashMap<String, Record>,
    pub new_accounts: BTreeSet<String>,
}

/// What the state remembers that a plan compares the read with: the configuration each rep
/// synced under at the last cycle, the reps marked for reset and the records whose write
/// failed.
#[derive(Debug, Clone, Default)]
pub struct Past {
    /// Lower-cased email → the active configuration the rep synced under (`None`: none).
    pub configurations: BTreeMap<String, Option<String>>,
    /// Salesforce user id → reset mark.
    pub resets: BTreeMap<String, ResetMark>,
    /// Ids of records whose write failed (the error report's record ids).
    pub failed: BTreeSet<String>,
}

impl Past {
    /// From the state; with `only_reps` (`--user`), only those reps' memberships.
    pub fn read<S: StateStore>(
        state: &S,
        only_reps: Option<&BTreeSet<String>>,
    ) -> Result<Past, StateError> {
        let configurations = state
            .rep_facts()?
            .into_iter()
            .map(|f| (f.email.to_lowercase(), f.configuration))
            .filter(|(email, _)| only_reps.is_none_or(|only| only.contains(email)))
            .collect();
        let failed = state
            .errors()?
            .into_iter()
            .flat_map(|e| e.record_ids)
            .collect();
        Ok(Past {
            configurations,
            resets: state.reset_marks()?,
            failed,
        })
    }
}

/// The enumerated reason of an operation; `failed_before` when its record's write failed.
fn action_reason(action: &Action, description: &str, failed_before: bool) -> ActionReason {
    use crate::engine::plan::{
        SENDS_CANCELLATIONS, UNCONFIRMED_TO_EXCHANGE, UNCONFIRMED_TO_SALESFORCE,
        WOULD_SEND_CANCELLATIONS,
    };
    match action {
        Action::CreateInSalesforce { replaces, .. } | Action::CreateInExchange { replaces, .. } => {
            if replaces.is_some() {
                ActionReason::EditBeatsDelete
            } else if failed_before {
                ActionReason::RetryOfFailed
            } else if [UNCONFIRMED_TO_SALESFORCE, UNCONFIRMED_TO_EXCHANGE].contains(&description) {
                ActionReason::UnconfirmedCreate
            } else {
                ActionReason::NewInSource
            }
        }
        Action::UpdateSalesforce { link: None, .. } | Action::UpdateExchange { link: None, .. } => {
            ActionReason::FirstMatch
        }
        Action::UpdateSalesforce { .. } | Action::UpdateExchange { .. } => {
            if ["changed in Exchange", "changed in Salesforce"].contains(&description) {
                ActionReason::ChangedInSource
            } else {
                ActionReason::Conflict
            }
        }
        Action::DeleteInExchange { .. } if description == SENDS_CANCELLATIONS => {
            ActionReason::SendsCancellations
        }
        Action::DeleteInExchange { .. } if description == WOULD_SEND_CANCELLATIONS => {
            ActionReason::WouldSendCancellations
        }
        Action::DeleteInSalesforce { .. } | Action::DeleteInExchange { .. } => {
            ActionReason::DeletedInSource
        }
        Action::Detach { .. } if description.contains("edit kept") => ActionReason::EditBeatsDelete,
        Action::Detach { .. } => ActionReason::PartnerDeleted,
        Action::Link { .. } | Action::Refresh { .. } | Action::Forget { .. } => {
            ActionReason::Matched
        }
    }
}

/// The Reps section: who joins, leaves or moves between configurations (against the
/// configuration each rep synced under at the last cycle) and who is marked for reset.
fn membership_changes(config: &Config, read: &ReadOutcome, past: &Past) -> Vec<RepChange> {
    let name = |i: usize| config.sync_configurations.get(i).map(|c| c.name.clone());
    let mut out = Vec::new();
    for rep in &read.reps {
        let now = name(rep.configuration);
        let change = |kind, previous_configuration, detail: &str| RepChange {
            kind,
            rep: rep.email.clone(),
            configuration: now.clone(),
            previous_configuration,
            detail: detail.to_string(),
        };
        match past.configurations.get(&rep.email) {
            None | Some(None) => out.push(change(RepChangeKind::Join, None, "starts syncing")),
            Some(Some(before)) if Some(before) != now.as_ref() => out.push(change(
                RepChangeKind::Move,
                Some(before.clone()),
                "syncs under this configuration's settings from now on",
            )),
            Some(Some(_)) => {}
        }
        if let Some(mark) = past.resets.get(&rep.user_id) {
            let detail = match mark {
                ResetMark::MarkedForReset => {
                    "marked for reset: its links are dropped and its records matched again"
                }
                ResetMark::ResetInProgress => "reset in progress: its records are matched again",
            };
            out.push(change(RepChangeKind::Reset, None, detail));
        }
    }
    let present: BTreeSet<String> = read
        .reps
        .iter()
        .map(|r| r.email.clone())
        .chain(read.problems.iter().map(|p| p.user.trim().to_lowercase()))
        .collect();
    for (email, before) in &past.configurations {
        if let Some(before) = before
            && !present.contains(email)
        {
            out.push(RepChange {
                kind: RepChangeKind::Leave,
                rep: email.clone(),
                configuration: Some(before.clone()),
                previous_configuration: None,
                detail: "in no active configuration: its records stay on both sides and stop \
                         syncing"
                    .into(),
            });
        }
    }
    out
}

/// The name a reviewer of a write to `target` knows a field by: the Salesforce field, or the
/// Exchange property it maps to.
fn field_name(key: &str, t: Target, mapping: &EffectiveMapping) -> String {
    match t {
        Target::Salesforce => key.to_string(),
        Target::Exchange => match key {
            "ActivityDate" => "Start".into(),
            "EndDate" => "End".into(),
            _ => mapping.exchange_for(key).unwrap_or(key).to_string(),
        },
    }
}

/// The fields a write of `after` over `before` changes (every field set, for a create or an
/// unknown current record), with values only when asked for.
fn field_changes(
    before: Option<&Record>,
    after: &Record,
    t: Target,
    mapping: &EffectiveMapping,
    show_values: bool,
) -> Vec<FieldChange> {
    let new = comparison_form(after, mapping);
    let old = before.map(|b| comparison_form(b, mapping));
    let (new_shown, old_shown) = if show_values {
        (
            display_form(after, mapping),
            before.map(|b| display_form(b, mapping)).unwrap_or_default(),
        )
    } else {
        (BTreeMap::new(), BTreeMap::new())
    };
    let mut keys: Vec<&String> = new.keys().collect();
    if let Some(old) = &old {
        keys.extend(old.keys().filter(|k| !new.contains_key(*k)));
        keys.retain(|k| old.get(*k) != new.get(*k));
    }
    keys.sort();
    keys.into_iter()
        .map(|k| FieldChange {
            field: field_name(k, t, mapping),
            before: (show_values && old.is_some())
                .then(|| old_shown.get(k).cloned().unwrap_or_default()),
            after: show_values.then(|| new_shown.get(k).cloned().unwrap_or_default()),
        })
        .collect()
}

fn object(kind: ObjectKind) -> Object {
    match kind {
        ObjectKind::Contact => Object::Contact,
        ObjectKind::Event => Object::Event,
    }
}

fn target(side: Side) -> Target {
    match side {
        Side::Salesforce => Target::Salesforce,
        Side::Exchange => Target::Exchange,
    }
}

/// Salesforce ids are 15 or 18 letters and digits; EWS item ids are long base64 strings.
pub fn is_salesforce_id(record_id: &str) -> bool {
    matches!(record_id.len(), 15 | 18) && record_id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A skipped record from Salesforce was held back from Exchange, and the other way round.
fn skipped_towards(record_id: &str) -> Target {
    if is_salesforce_id(record_id) {
        Target::Exchange
    } else {
        Target::Salesforce
    }
}

type Rows = BTreeMap<(String, String, Object, Target), RecordChanges>;
/// Salesforce user id → (email, configuration name).
type RepNames<'a> = BTreeMap<&'a str, (&'a str, String)>;

/// The row of one rep's object in one direction, created empty on first use.
fn row<'r>(
    rows: &'r mut Rows,
    reps: &RepNames<'_>,
    user_id: &str,
    object: Object,
    t: Target,
) -> &'r mut RecordChanges {
    let (rep, configuration) = reps
        .get(user_id)
        .map_or((user_id.to_string(), String::new()), |(e, c)| {
            (e.to_string(), c.clone())
        });
    rows.entry((configuration.clone(), rep.clone(), object, t))
        .or_insert_with(|| RecordChanges {
            configuration,
            rep,
            object,
            target: t,
            create: 0,
            update: 0,
            delete: 0,
            unlink: 0,
            link: 0,
            skip: BTreeMap::new(),
            records: Vec::new(),
        })
}

pub fn build(
    config: &Config,
    settings: Vec<SettingChange>,
    plan: &Plan,
    read: &ReadOutcome,
    targets: &TargetRecords,
    past: &Past,
    options: &BuildOptions,
) -> PlanDocument {
    // Operations name reps by Salesforce user id; the document names them by email.
    let reps: RepNames<'_> = read
        .reps
        .iter()
        .map(|r| {
            let configuration = config
                .sync_configurations
                .get(r.configuration)
                .map_or_else(String::new, |c| c.name.clone());
            (r.user_id.as_str(), (r.email.as_str(), configuration))
        })
        .collect();
    let email = |user_id: &str| -> String {
        reps.get(user_id)
            .map_or(user_id.to_string(), |(e, _)| e.to_string())
    };
    let mut rows: Rows = BTreeMap::new();
    let defaults: HashMap<ObjectKind, EffectiveMapping> = ObjectKind::ALL
        .iter()
        .map(|o| (*o, EffectiveMapping::defaults(*o)))
        .collect();
    // Fields each update writes, by the id written, to name a conflict's fields.
    let mut updated_fields: HashMap<String, Vec<String>> = HashMap::new();
    // Per rep: records a full read creates or links for the first time, and creates of
    // records that failed before.
    let mut initial: BTreeMap<String, usize> = BTreeMap::new();
    let mut retries: BTreeMap<String, usize> = BTreeMap::new();
    for op in &plan.operations {
        let (t, action, id) = match &op.action {
            Action::CreateInSalesforce { exchange, .. } => (
                Target::Salesforce,
                RecordAction::Create,
                exchange.item_id.clone(),
            ),
            Action::CreateInExchange { salesforce, .. } => (
                Target::Exchange,
                RecordAction::Create,
                salesforce.id.clone(),
            ),
            Action::UpdateSalesforce { salesforce_id, .. } => (
                Target::Salesforce,
                RecordAction::Update,
                salesforce_id.clone(),
            ),
            Action::UpdateExchange { item_id, .. } => {
                (Target::Exchange, RecordAction::Update, item_id.clone())
            }
            Action::DeleteInSalesforce { salesforce_id, .. } => (
                Target::Salesforce,
                RecordAction::Delete,
                salesforce_id.clone(),
            ),
            // A meeting whose delete would mail its attendees, without the opt-in: the
            // executor unlinks it instead.
            Action::DeleteInExchange { item_id, .. }
                if op.reason == crate::engine::plan::WOULD_SEND_CANCELLATIONS =>
            {
                (Target::Exchange, RecordAction::Unlink, item_id.clone())
            }
            Action::DeleteInExchange { item_id, .. } => {
                (Target::Exchange, RecordAction::Delete, item_id.clone())
            }
            // The partner is gone and the delete does not propagate: the remaining record
            // is unlinked, on the side it remains on.
            Action::Detach { remaining, .. } => {
                match (&remaining.salesforce, &remaining.exchange) {
                    (Some(s), _) => (Target::Salesforce, RecordAction::Unlink, s.id.clone()),
                    (None, Some(e)) => (Target::Exchange, RecordAction::Unlink, e.item_id.clone()),
                    (None, None) => continue,
                }
            }
            Action::Link { salesforce, .. } => (
                Target::Salesforce,
                RecordAction::Link,
                salesforce.id.clone(),
            ),
            // Bookkeeping only: no record changes.
            Action::Refresh { .. } | Action::Forget { .. } => continue,
        };
        let reason = action_reason(&op.action, &op.reason, past.failed.contains(&id));
        if reason == ActionReason::RetryOfFailed {
            *retries.entry(email(&op.rep)).or_default() += 1;
        } else if matches!(action, RecordAction::Create | RecordAction::Link)
            && read.full.contains(&(op.rep.clone(), op.object))
        {
            *initial.entry(email(&op.rep)).or_default() += 1;
        }
        let r = row(&mut rows, &reps, &op.rep, object(op.object), t);
        match action {
            RecordAction::Create => r.create += 1,
            RecordAction::Update => r.update += 1,
            RecordAction::Delete => r.delete += 1,
            RecordAction::Unlink => r.unlink += 1,
            RecordAction::Link => r.link += 1,
        }
        let mapping = read
            .mappings
            .get(&(op.rep.clone(), op.object))
            .unwrap_or(&defaults[&op.object]);
        // An update and the record it writes over: as the plan read it, else read by id.
        let update = match &op.action {
            Action::UpdateSalesforce { record, .. } => {
                Some((record, op.replaced.as_ref().or(targets.salesforce.get(&id))))
            }
            Action::UpdateExchange { record, .. } => {
                Some((record, op.replaced.as_ref().or(targets.exchange.get(&id))))
            }
            _ => None,
        };
        let effects = match update {
            Some((after, Some(before))) => FieldEffects::of(before, after, mapping),
            _ => FieldEffects::default(),
        };
        // A delete that mails a meeting's attendees is always named.
        let mails = matches!(
            reason,
            ActionReason::SendsCancellations | ActionReason::WouldSendCancellations
        );
        if !options.detail && effects.is_empty() && !mails {
            continue;
        }
        let names = |keys: Vec<String>| -> Vec<String> {
            keys.iter().map(|k| field_name(k, t, mapping)).collect()
        };
        // Deletes, unlinks and links change no field; their id and reason say it all.
        let fields = match (&op.action, update) {
            _ if !options.detail => Vec::new(),
            (_, Some((after, before))) => {
                field_changes(before, after, t, mapping, options.show_values)
            }
            (
                Action::CreateInSalesforce { record, .. } | Action::CreateInExchange { record, .. },
                None,
            ) => field_changes(None, record, t, mapping, options.show_values),
            _ => Vec::new(),
        };
        if options.detail && action == RecordAction::Update {
            updated_fields.insert(id.clone(), fields.iter().map(|f| f.field.clone()).collect());
        }
        r.records.push(RecordDetail {
            action,
            id,
            reason,
            description: if reason == ActionReason::RetryOfFailed {
                format!("{}; its write failed before", op.reason)
            } else {
                op.reason.clone()
            },
            fields,
            clears: names(effects.clears),
            overwrites: names(effects.overwrites),
        });
    }
    // Accounts the contact writes create: each under the row of the first contact needing it.
    let mut accounts = targets.new_accounts.clone();
    for op in &plan.operations {
        let (id, Some(company)) = (
            match &op.action {
                Action::CreateInSalesforce { exchange, .. } => &exchange.item_id,
                Action::UpdateSalesforce { salesforce_id, .. } => salesforce_id,
                _ => continue,
            },
            op.action
                .salesforce_record()
                .and_then(Record::as_contact)
                .map(|c| c.company().trim()),
        ) else {
            continue;
        };
        if !accounts.remove(company) {
            continue;
        }
        let r = row(
            &mut rows,
            &reps,
            &op.rep,
            Object::Account,
            Target::Salesforce,
        );
        r.create += 1;
        if options.detail {
            r.records.push(RecordDetail {
                action: RecordAction::Create,
                id: id.clone(),
                reason: ActionReason::NewCompany,
                description: "no Account has this contact's company as its name".into(),
                fields: vec![FieldChange {
                    field: "Name".into(),
                    before: None,
                    after: options.show_values.then(|| company.to_string()),
                }],
                clears: Vec::new(),
                overwrites: Vec::new(),
            });
        }
    }
    for s in &plan.skipped {
        *row(
            &mut rows,
            &reps,
            &s.rep,
            object(s.object),
            skipped_towards(&s.record_id),
        )
        .skip
        .entry(s.reason.clone())
        .or_default() += 1;
    }
    let conflicts = plan
        .conflicts
        .iter()
        .map(|c| ConflictEntry {
            rep: email(&c.rep),
            object: object(c.object),
            exchange_id: c.exchange_id.clone(),
            salesforce_id: c.salesforce_id.clone(),
            winner: target(c.winner),
            // The fields the winner's version writes (known with --detail).
            fields: updated_fields
                .get(&c.exchange_id)
                .or_else(|| updated_fields.get(&c.salesforce_id))
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    let mut warnings = Vec::new();
    let mut rep_changes = membership_changes(config, read, past);
    for rep in &read.folders_to_create {
        rep_changes.push(RepChange {
            kind: RepChangeKind::CreateFolder,
            rep: rep.clone(),
            configuration: None,
            previous_configuration: None,
            detail: "Contacts/Salesforce_Sync".into(),
        });
    }
    if let Some(ours) = &read.marker {
        for w in &read.markers_to_write {
            let marked = format!("Contacts/Salesforce_Sync marked as synced by {ours}");
            rep_changes.push(RepChange {
                kind: RepChangeKind::MarkMailbox,
                rep: w.rep.clone(),
                configuration: None,
                previous_configuration: None,
                detail: match &w.previous {
                    None => marked,
                    Some(p) => format!("taken over from {p} (reset): {marked}"),
                },
            });
        }
    }
    for p in &read.problems {
        rep_changes.push(RepChange {
            kind: RepChangeKind::CannotSync,
            rep: p.user.clone(),
            configuration: p
                .configuration
                .and_then(|i| config.sync_configurations.get(i))
                .map(|c| c.name.clone()),
            previous_configuration: None,
            detail: format!("{} ({})", p.message, p.code),
        });
        warnings.push(Warning {
            kind: WarningKind::RepCannotSync,
            message: format!(
                "{} cannot be synced: {} {}",
                p.user, p.message, p.suggestion
            ),
            rep: Some(p.user.clone()),
            fields: Vec::new(),
        });
    }
    for (rep, error) in &read.rep_errors {
        let configuration = config
            .sync_configurations
            .get(rep.configuration)
            .map(|c| c.name.clone());
        rep_changes.push(RepChange {
            kind: RepChangeKind::CannotSync,
            rep: rep.email.clone(),
            configuration,
            previous_configuration: None,
            detail: format!("{} ({})", error.message(), error.code()),
        });
        warnings.push(Warning {
            kind: WarningKind::RepCannotSync,
            message: format!("{} cannot be synced: {}", rep.email, error.suggestion()),
            rep: Some(rep.email.clone()),
            fields: Vec::new(),
        });
    }
    // The admin guide's main caution: one-way Exchange→Salesforce sync overwrites
    // Salesforce edits. One warning per rep, naming every field.
    let mut by_rep: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    for o in &plan.overwrites {
        let entry = by_rep.entry(email(&o.rep)).or_default();
        entry.0 += 1;
        for f in &o.fields {
            if !entry.1.contains(f) {
                entry.1.push(f.clone());
            }
        }
    }
    for (rep, (records, fields)) in by_rep {
        warnings.push(Warning {
            kind: WarningKind::Overwrite,
            message: format!(
                "one-way Exchange → Salesforce sync overwrites Salesforce edits of {} for {rep}: {}",
                plural(records, "record", "records"),
                fields.join(", ")
            ),
            rep: Some(rep),
            fields,
        });
    }
    for a in &plan.ambiguous {
        warnings.push(Warning {
            kind: WarningKind::AmbiguousMatch,
            message: format!(
                "{}: {}s of one name and company cannot be told apart (Exchange {}; \
                 Salesforce {}): none is linked or created until an email tells them apart",
                email(&a.rep),
                a.object.name(),
                a.exchange_ids.join(", "),
                a.salesforce_ids.join(", ")
            ),
            rep: Some(email(&a.rep)),
            fields: Vec::new(),
        });
    }
    for r in &plan.refusals {
        warnings.push(Warning {
            kind: WarningKind::EmptySide,
            message: format!(
                "{}: {} (refused; `tether apply --force` overrides)",
                email(&r.rep),
                r.message
            ),
            rep: Some(email(&r.rep)),
            fields: Vec::new(),
        });
    }
    let record_changes: Vec<RecordChanges> = rows.into_values().collect();
    let deletes: usize = record_changes.iter().map(|r| r.delete).sum();
    if deletes > options.delete_threshold {
        warnings.push(Warning {
            kind: WarningKind::DeletesOverThreshold,
            message: format!(
                "{} exceed the threshold of {}: apply refuses without --allow-deletes",
                plural(deletes, "delete", "deletes"),
                thousands(options.delete_threshold)
            ),
            rep: None,
            fields: Vec::new(),
        });
    }
    // Reps read in full for the first time: say how big their initial sync is, apart from
    // the records tried again after a failure.
    for (rep, n) in initial {
        warnings.push(Warning {
            kind: WarningKind::InitialSync,
            message: format!("initial sync for {rep}: {}", plural(n, "record", "records")),
            rep: Some(rep),
            fields: Vec::new(),
        });
    }
    for (rep, n) in retries {
        warnings.push(Warning {
            kind: WarningKind::Retry,
            message: format!(
                "{rep}: retry of {} that failed before (see `tether errors`)",
                plural(n, "record", "records")
            ),
            rep: Some(rep),
            fields: Vec::new(),
        });
    }
    warnings.sort_by(|a, b| (a.kind, &a.rep, &a.message).cmp(&(b.kind, &b.rep, &b.message)));
    let mut doc = PlanDocument::new(
        config.org.name.clone(),
        settings,
        rep_changes,
        record_changes,
        conflicts,
        warnings,
    );
    doc.field_mappings = crate::engine::rules::mapping_differences(config)
        .into_iter()
        .map(|(configuration, kind, differences)| ConfigurationMappings {
            configuration,
            object: object(kind),
            differences,
        })
        .collect();
    doc.count_reps_without_writes(read.reps.iter().map(|r| r.email.as_str()));
    doc
}
