//! The plan as a document: what a reviewer reads in a pull request and what `--format json`
//! prints. It is built from the engine's operations but holds only counts, ids, field names
//! and (with `--show-values`) values, so every renderer works from the same facts.

use super::settings::SettingChange;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `MAJOR.MINOR`, as in every `--format json` output of tether: the major part changes when
/// a field changes meaning or goes, the minor when one is added; consumers must ignore
/// unknown keys. 2.0: the Reps section's kinds (join, leave, move, reset), records' reason
/// as an enumerated `reason` with the text in `description`, and rows only for reps with
/// writes.
pub const FORMAT_VERSION: &str = "2.0";

/// The JSON Schema of `tether plan --format json`, checked in at `schemas/plan.schema.json`.
pub fn schema_text() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(PlanDocument)).expect("schema");
    let obj = schema.as_object_mut().expect("schema is an object");
    obj.insert(
        "$id".into(),
        "https://tether.dev/schemas/plan.schema.json".into(),
    );
    obj.insert("title".into(), "tether plan (JSON format)".into());
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serializes");
    text.push('\n');
    text
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct PlanDocument {
    pub format_version: String,
    pub org: String,
    /// The commit of the configuration planned (`GITHUB_SHA`, `CI_COMMIT_SHA`, or `git
    /// rev-parse HEAD` in its directory), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// `false` when the plan was made with `--refresh=false`: neither Exchange nor
    /// Salesforce was read, so the data sections are empty.
    #[serde(default = "data_read_default")]
    pub data_read: bool,
    pub settings_changes: Vec<SettingChange>,
    /// Each configuration's field mappings that differ from the defaults, as this plan
    /// applies them (every rep syncs with their own configuration's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_mappings: Vec<ConfigurationMappings>,
    pub rep_changes: Vec<RepChange>,
    pub record_changes: Vec<RecordChanges>,
    pub conflicts: Vec<ConflictEntry>,
    pub warnings: Vec<Warning>,
    pub summary: Summary,
}

/// One configuration's mapping of one object, where it differs from the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigurationMappings {
    pub configuration: String,
    pub object: Object,
    pub differences: Vec<crate::model::mapping::MappingDifference>,
}

impl ConfigurationMappings {
    /// `Sales contacts: OtherPhone → BusinessPhone2 (default OtherTelephone); …`
    pub fn line(&self) -> String {
        let d: Vec<String> = self.differences.iter().map(|d| d.to_string()).collect();
        format!(
            "{} {}: {}",
            self.configuration,
            self.object.plural(),
            d.join("; ")
        )
    }
}

/// What happens to a rep, in the order a reviewer reads them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RepChangeKind {
    /// Rep newly in an active configuration: their mailbox starts syncing.
    Join,
    /// Rep who synced before and is now in no active configuration: their records stay on
    /// both sides and stop syncing.
    Leave,
    /// Rep who synced under another configuration before: its settings apply from now on.
    Move,
    /// Rep marked for reset (`tether reset`): links dropped, records matched again.
    Reset,
    /// Rep in a configuration who cannot be synced (no mailbox, outside the impersonation
    /// scope, email not linked).
    CannotSync,
    /// Salesforce_Sync folder to create in the rep's mailbox.
    CreateFolder,
    /// The rep's Salesforce_Sync folder gets this tether's marker (the org and state that
    /// sync the mailbox): it has none yet, or a reset takes the mailbox over from another.
    MarkMailbox,
}

impl RepChangeKind {
    /// Whether applying the plan changes something for the rep (a rep who cannot sync is
    /// reported, not changed).
    pub fn is_change(self) -> bool {
        self != RepChangeKind::CannotSync
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct RepChange {
    pub kind: RepChangeKind,
    pub rep: String,
    /// The configuration the rep syncs under with this plan (for `leave`: the one left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// For `move`: the configuration the rep synced under before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_configuration: Option<String>,
    pub detail: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Object {
    Contact,
    Event,
    /// A Salesforce Account created for a contact's company.
    Account,
}

impl Object {
    pub fn plural(self) -> &'static str {
        match self {
            Object::Contact => "contacts",
            Object::Event => "events",
            Object::Account => "accounts",
        }
    }
}

/// Where records go.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Salesforce,
    Exchange,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Salesforce => "Salesforce",
            Target::Exchange => "Exchange",
        }
    }
    pub fn arrow(self) -> &'static str {
        match self {
            Target::Salesforce => "Exchange → Salesforce",
            Target::Exchange => "Salesforce → Exchange",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordAction {
    Create,
    Update,
    Delete,
    Unlink,
    Link,
}

impl RecordAction {
    pub fn symbol(self) -> char {
        match self {
            RecordAction::Create => '+',
            RecordAction::Update => '~',
            RecordAction::Delete => '-',
            RecordAction::Unlink => '/',
            RecordAction::Link => '=',
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            RecordAction::Create => "create",
            RecordAction::Update => "update",
            RecordAction::Delete => "delete",
            RecordAction::Unlink => "unlink",
            RecordAction::Link => "link",
        }
    }
}

/// One field's change; values only with `--show-values` (record contents are personal data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Why a record is written, as a fixed set (like Terraform's `action_reason`); the
/// record's `description` words it for a reader.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionReason {
    /// New on the other side since the last sync (or found by a first, full read).
    NewInSource,
    /// A create that failed before (see `tether errors`), tried again.
    RetryOfFailed,
    /// tether's earlier create of it was never confirmed: looked up first, linked if found.
    UnconfirmedCreate,
    /// Changed on the other side only.
    ChangedInSource,
    /// Changed on both sides: the configuration's conflict policy picks the winner.
    Conflict,
    /// Linked for the first time (first sync, reset): the winner's empty fields filled.
    FirstMatch,
    /// Deleted on the other side, and the configuration propagates deletes.
    DeletedInSource,
    /// Deleted in Salesforce: a meeting the rep organised with attendees, deleted in
    /// Exchange over Microsoft Graph, which mails them a cancellation
    /// (`events.send_cancellations`).
    SendsCancellations,
    /// Deleted in Salesforce: a meeting whose delete would mail its attendees a
    /// cancellation; not deleted (`events.send_cancellations` is off), unlinked and
    /// reported instead.
    WouldSendCancellations,
    /// Its partner was deleted and the delete does not propagate: unlinked, kept.
    PartnerDeleted,
    /// Deleted on one side but edited on the other: the edit wins.
    EditBeatsDelete,
    /// Matched by first-sync matching with nothing to write.
    Matched,
    /// An Account for a contact's company that no Account names.
    NewCompany,
}

/// One record's change: every record with `--detail`, and always each update that clears
/// or overwrites a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordDetail {
    pub action: RecordAction,
    /// The record's id on the side written (for creates: the source record's id).
    pub id: String,
    pub reason: ActionReason,
    /// The reason in words.
    pub description: String,
    /// With `--detail`: the fields the write sets or changes.
    pub fields: Vec<FieldChange>,
    /// For updates: the fields whose value the write empties (names only).
    #[serde(default)]
    pub clears: Vec<String>,
    /// For updates: the fields whose value the write replaces with another (names only).
    #[serde(default)]
    pub overwrites: Vec<String>,
}

impl RecordDetail {
    /// Whether the write loses a value the record holds now.
    pub fn is_destructive(&self) -> bool {
        !self.clears.is_empty() || !self.overwrites.is_empty()
    }

    /// A delete of a meeting that mails (or, declined, would mail) its attendees a
    /// cancellation: always named in the plan.
    pub fn mails_attendees(&self) -> bool {
        matches!(
            self.reason,
            ActionReason::SendsCancellations | ActionReason::WouldSendCancellations
        )
    }
}

/// What one rep's sync does to one object in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordChanges {
    pub configuration: String,
    pub rep: String,
    pub object: Object,
    pub target: Target,
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unlink: usize,
    pub link: usize,
    /// Records left out, by reason (filtered, private, outside the date window, series off).
    pub skip: BTreeMap<String, usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordDetail>,
}

impl RecordChanges {
    pub fn writes(&self) -> usize {
        self.create + self.update + self.delete + self.unlink
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConflictEntry {
    pub rep: String,
    pub object: Object,
    pub exchange_id: String,
    pub salesforce_id: String,
    /// The side whose version is kept, by the configuration's policy.
    pub winner: Target,
    pub fields: Vec<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// Deletes over the threshold: apply refuses without --allow-deletes.
    DeletesOverThreshold,
    /// A side that had linked records shows none; deletes refused (empty-side guard).
    EmptySide,
    /// A one-way Exchange→Salesforce sync overwrites these Salesforce fields.
    Overwrite,
    /// A rep who cannot be synced.
    RepCannotSync,
    /// The size of a rep's initial sync.
    InitialSync,
    /// Creates of records whose write failed before, tried again.
    Retry,
    /// Records a first-sync match cannot tell apart: none is linked or created.
    AmbiguousMatch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep: Option<String>,
    /// For overwrites: the Salesforce fields written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl Warning {
    /// Destructive warnings go first in a pull-request comment.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self.kind,
            WarningKind::DeletesOverThreshold | WarningKind::EmptySide | WarningKind::Overwrite
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub settings: usize,
    pub salesforce: Counts,
    pub exchange: Counts,
    pub conflicts: usize,
    /// Fields the updates overwrite and clear, and in how many records.
    #[serde(default)]
    pub overwrites: usize,
    #[serde(default)]
    pub clears: usize,
    #[serde(default)]
    pub records_losing_values: usize,
    /// Reps read whose data needs no write (they have no row), and the records left out
    /// for them, by reason.
    #[serde(default)]
    pub reps_without_writes: usize,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped_without_writes: BTreeMap<String, usize>,
    pub no_changes: bool,
    /// The one-line summary, as printed.
    pub text: String,
}

impl PlanDocument {
    /// Assembles a document and its summary.
    pub fn new(
        org: String,
        settings_changes: Vec<SettingChange>,
        mut rep_changes: Vec<RepChange>,
        mut record_changes: Vec<RecordChanges>,
        conflicts: Vec<ConflictEntry>,
        warnings: Vec<Warning>,
    ) -> Self {
        rep_changes.sort();
        // A rep's row is there for its writes; the skips of rows without any are totalled.
        let mut skipped_without_writes: BTreeMap<String, usize> = BTreeMap::new();
        record_changes.retain(|rc| {
            let writes = rc.writes() + rc.link > 0;
            if !writes {
                for (reason, n) in &rc.skip {
                    *skipped_without_writes.entry(reason.clone()).or_default() += n;
                }
            }
            writes
        });
        record_changes.sort_by(|a, b| {
            (&a.configuration, &a.rep, a.object, a.target).cmp(&(
                &b.configuration,
                &b.rep,
                b.object,
                b.target,
            ))
        });
        let mut salesforce = Counts::default();
        let mut exchange = Counts::default();
        for rc in &record_changes {
            let counts = match rc.target {
                Target::Salesforce => &mut salesforce,
                Target::Exchange => &mut exchange,
            };
            counts.create += rc.create;
            counts.update += rc.update;
            counts.delete += rc.delete;
        }
        let settings = settings_changes.len();
        let data = salesforce != Counts::default() || exchange != Counts::default();
        let unlinks: usize = record_changes.iter().map(|r| r.unlink + r.link).sum();
        let reps_changed = rep_changes.iter().filter(|r| r.kind.is_change()).count();
        let no_changes = settings == 0 && !data && unlinks == 0 && reps_changed == 0;
        let losing: Vec<&RecordDetail> = record_changes
            .iter()
            .flat_map(|r| &r.records)
            .filter(|d| d.is_destructive())
            .collect();
        let overwrites: usize = losing.iter().map(|d| d.overwrites.len()).sum();
        let clears: usize = losing.iter().map(|d| d.clears.len()).sum();
        let text = if no_changes {
            "No changes. Sync settings and data are up to date.".to_string()
        } else {
            let mut parts = vec![format!(
                "{} to change",
                plural(settings, "setting", "settings")
            )];
            parts.push(format!("Salesforce: {}", counts_text(salesforce)));
            parts.push(format!("Exchange: {}", counts_text(exchange)));
            if !losing.is_empty() {
                parts.push(format!(
                    "overwrites {} and clears {} in {}",
                    plural(overwrites, "field", "fields"),
                    plural(clears, "field", "fields"),
                    plural(losing.len(), "record", "records")
                ));
            }
            format!("Plan: {}.", parts.join("; "))
        };
        let records_losing_values = losing.len();
        PlanDocument {
            field_mappings: Vec::new(),
            format_version: FORMAT_VERSION.to_string(),
            org,
            commit: None,
            data_read: true,
            settings_changes,
            rep_changes,
            record_changes,
            summary: Summary {
                settings,
                salesforce,
                exchange,
                conflicts: conflicts.len(),
                overwrites,
                clears,
                records_losing_values,
                reps_without_writes: 0,
                skipped_without_writes,
                no_changes,
                text,
            },
            conflicts,
            warnings,
        }
    }
}

impl PlanDocument {
    /// Counts the reps read (`reps` by email) that have no row: their data needs no write.
    pub fn count_reps_without_writes<'a>(&mut self, reps: impl IntoIterator<Item = &'a str>) {
        let with_rows: std::collections::BTreeSet<&str> =
            self.record_changes.iter().map(|r| r.rep.as_str()).collect();
        self.summary.reps_without_writes = reps
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .difference(&with_rows)
            .count();
    }
}

fn data_read_default() -> bool {
    true
}

/// What the plan says instead of the data sections with `--refresh=false`.
pub const DATA_NOT_READ: &str = "Data not read (--refresh=false)";

impl PlanDocument {
    /// Marks a plan made without reading either side (`--refresh=false`).
    pub fn data_not_read(&mut self) {
        self.data_read = false;
        self.summary.text = if self.summary.settings == 0 {
            format!("No changes in the settings. {DATA_NOT_READ}.")
        } else {
            format!(
                "Plan: {} to change. {DATA_NOT_READ}.",
                plural(self.summary.settings, "setting", "settings")
            )
        };
    }
}

impl PlanDocument {
    /// The same plan with record values (`--show-values`) left out: field names remain.
    pub fn without_values(&self) -> PlanDocument {
        let mut doc = self.clone();
        for f in doc
            .record_changes
            .iter_mut()
            .flat_map(|r| r.records.iter_mut())
            .flat_map(|d| d.fields.iter_mut())
        {
            f.before = None;
            f.after = None;
        }
        doc
    }
}

fn counts_text(c: Counts) -> String {
    format!(
        "{} to create, {} to update, {} to delete",
        thousands(c.create),
        thousands(c.update),
        thousands(c.delete)
    )
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", thousands(n))
    }
}

/// 1240 → "1,240".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_reads_like_the_spec() {
        let rc = |target, create, update| RecordChanges {
            configuration: "Reps".into(),
            rep: "a@x.com".into(),
            object: Object::Contact,
            target,
            create,
            update,
            delete: 0,
            unlink: 0,
            link: 0,
            skip: BTreeMap::new(),
            records: vec![],
        };
        let doc = PlanDocument::new(
            "acme".into(),
            vec![],
            vec![],
            vec![
                rc(Target::Salesforce, 1240, 37),
                rc(Target::Exchange, 12, 0),
            ],
            vec![],
            vec![],
        );
        assert_eq!(
            doc.summary.text,
            "Plan: 0 settings to change; Salesforce: 1,240 to create, 37 to update, 0 to delete; Exchange: 12 to create, 0 to update, 0 to delete."
        );
        let empty = PlanDocument::new("acme".into(), vec![], vec![], vec![], vec![], vec![]);
        assert_eq!(
            empty.summary.text,
            "No changes. Sync settings and data are up to date."
        );
        assert!(empty.summary.no_changes);
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
