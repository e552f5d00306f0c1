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
/// A skipped record from Salesforce was held back from Exchange, and the other way round.
fn skipped_towards(record_id: &str) -> Target {
    let salesforce =
        matches!(record_id.len(), 15 | 18) && record_id.chars().all(|c| c.is_ascii_alphanumeric());
    if salesforce {
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
        if !options.detail && effects.is_empty() {
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
            reason: op.reason.clone(),
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
                reason: "no Account has this contact's company as its name".into(),
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
    let mut rep_changes = Vec::new();
    for rep in &read.folders_to_create {
        rep_changes.push(RepChange {
            kind: RepChangeKind::CreateFolder,
            rep: rep.clone(),
            configuration: None,
            detail: "Contacts/Salesforce_Sync".into(),
        });
    }
    for p in &read.problems {
        rep_changes.push(RepChange {
            kind: RepChangeKind::CannotSync,
            rep: p.user.clone(),
            configuration: None,
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
    // Reps read in full for the first time: say how big their initial sync is.
    let mut initial: BTreeMap<String, usize> = BTreeMap::new();
    for (user_id, kind) in &read.full {
        let rep = email(user_id);
        for r in record_changes
            .iter()
            .filter(|r| r.rep == rep && r.object == object(*kind))
        {
            *initial.entry(rep.clone()).or_default() += r.create + r.link;
        }
    }
    for (rep, n) in initial.into_iter().filter(|(_, n)| *n > 0) {
        warnings.push(Warning {
            kind: WarningKind::InitialSync,
            message: format!("initial sync for {rep}: {}", plural(n, "record", "records")),
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
    doc
}
