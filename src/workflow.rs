//! What `plan` and `apply` share: opening the connectors for a configuration, turning the
//! engine's plan into the document a reviewer reads, and saving it as a signed plan file.

use crate::clock::Clock;
use crate::config::model::Config;
use crate::connect::{self, ConnectError};
use crate::engine::connector::{CrmConnector, Folder, MailConnector, Mailbox};
use crate::engine::cycle::{CycleError, ReadOutcome, SyncOptions, read_and_plan};
use crate::engine::plan::{Action, Plan};
use crate::mail::MailSide;
use crate::model::ObjectKind;
use crate::plan::build::{BuildOptions, Past, TargetRecords, build};
use crate::plan::document::PlanDocument;
use crate::plan::file::{self, SavedPlan};
use crate::plan::settings;
use crate::salesforce::connector::SalesforceConnector;
use crate::state::{ConfigRevision, StateStore};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Both connectors of one org.
pub struct Connectors {
    pub mail: MailSide,
    pub crm: SalesforceConnector,
}

pub fn open(
    config: &Config,
    home: &Path,
    clock: Arc<dyn Clock>,
) -> Result<Connectors, ConnectError> {
    let mail = MailSide::open(config, home, clock)?;
    let sf = connect::salesforce(config, home)?;
    Ok(Connectors {
        mail,
        crm: SalesforceConnector::new(sf)
            .with_mappings(
                connect::connector_mapping(config, ObjectKind::Contact),
                connect::connector_mapping(config, ObjectKind::Event),
            )
            // Filters may name fields outside the mapping; they must be read to be applied.
            .with_filter_fields(connect::contact_filter_fields(config))
            .with_change_lookback(connect::change_lookback(config)),
    })
}

/// The last applied configuration, if any, to diff the settings against.
pub fn applied_config<S: StateStore + ?Sized>(state: &S) -> Result<Option<Config>, String> {
    let Some(revision) = state.latest_revision().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    serde_json::from_str(&revision.canonical)
        .map(Some)
        .map_err(|e| format!("the applied configuration in the state cannot be read: {e}"))
}

/// Everything a plan shows: the document, and the engine's plan and read it came from.
pub struct Planned {
    pub document: PlanDocument,
    pub plan: Plan,
    pub read: ReadOutcome,
}

pub async fn plan<S: StateStore>(
    config: &Config,
    connectors: &Connectors,
    state: &S,
    now: DateTime<Utc>,
    options: &SyncOptions,
    build_options: &BuildOptions,
) -> Result<Planned, PlanError> {
    let applied = applied_config(state)?;
    let settings = settings::diff(applied.as_ref(), config);
    // A plan reads only: not even a missing Salesforce_Sync folder is created.
    let options = SyncOptions {
        read_only: true,
        ..options.clone()
    };
    let (plan, read) = read_and_plan(
        config,
        &connectors.mail,
        &connectors.crm,
        state,
        now,
        &options,
    )
    .await
    .map_err(PlanError::Read)?;
    // The plan says which fields each update clears or overwrites, so it needs what they
    // write over.
    let targets = read_targets(&plan, &connectors.mail, &connectors.crm).await?;
    let past =
        Past::read(state, options.only_reps.as_ref()).map_err(|e| PlanError::Read(e.into()))?;
    let document = build(
        config,
        settings,
        &plan,
        &read,
        &targets,
        &past,
        build_options,
    );
    Ok(Planned {
        document,
        plan,
        read,
    })
}

/// Why a plan could not be made: the read before it failed (the CLI names the settings of a
/// connection that failed), or something after it.
#[derive(Debug)]
pub enum PlanError {
    Read(CycleError),
    Other(String),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::Read(e) => f.write_str(&cycle_error(e)),
            PlanError::Other(m) => f.write_str(m),
        }
    }
}

impl From<String> for PlanError {
    fn from(message: String) -> Self {
        PlanError::Other(message)
    }
}

impl From<PlanError> for String {
    fn from(e: PlanError) -> String {
        e.to_string()
    }
}

/// Every record an update would write over that the plan did not read (an incremental read
/// sees only the side that changed), read by id as it is now; and the Accounts the contact
/// writes would create.
pub async fn read_targets<M: MailConnector, C: CrmConnector>(
    plan: &Plan,
    mail: &M,
    crm: &C,
) -> Result<TargetRecords, String> {
    let mut salesforce: BTreeMap<ObjectKind, Vec<String>> = BTreeMap::new();
    let mut exchange: BTreeMap<(&Mailbox, Folder), Vec<String>> = BTreeMap::new();
    for op in plan.operations.iter().filter(|o| o.replaced.is_none()) {
        match &op.action {
            Action::UpdateSalesforce { salesforce_id, .. } => salesforce
                .entry(op.object)
                .or_default()
                .push(salesforce_id.clone()),
            Action::UpdateExchange { item_id, .. } => exchange
                .entry((&op.mailbox, Folder::for_object(op.object)))
                .or_default()
                .push(item_id.clone()),
            _ => {}
        }
    }
    let failed = |e: crate::engine::connector::CallError| {
        format!(
            "the records the plan would update could not be read to show what they overwrite ({e}); try again"
        )
    };
    let mut out = TargetRecords::default();
    let contacts: Vec<&crate::model::Record> = plan
        .operations
        .iter()
        .filter(|o| o.object == ObjectKind::Contact)
        .filter_map(|o| o.action.salesforce_record())
        .collect();
    if !contacts.is_empty() {
        out.new_accounts = crm.missing_accounts(&contacts).await.map_err(|e| {
            format!("the Accounts the plan would create could not be looked up ({e}); try again")
        })?;
    }
    for (object, ids) in salesforce {
        for chunk in ids.chunks(crm.batch_size()) {
            for r in crm.read_by_ids(object, chunk).await.map_err(failed)? {
                out.salesforce.insert(r.id, r.record);
            }
        }
    }
    for ((mailbox, folder), ids) in exchange {
        for chunk in ids.chunks(mail.batch_size()) {
            for i in mail
                .get_items(mailbox, folder, chunk)
                .await
                .map_err(failed)?
            {
                out.exchange.insert(i.item_id, i.record);
            }
        }
    }
    Ok(out)
}

/// A plan of the settings only (`--refresh=false`): neither side is read.
pub fn plan_settings<S: StateStore>(
    config: &Config,
    state: &S,
    build_options: &BuildOptions,
) -> Result<Planned, String> {
    let applied = applied_config(state)?;
    let settings = settings::diff(applied.as_ref(), config);
    let plan = Plan::default();
    let read = ReadOutcome::default();
    let mut document = build(
        config,
        settings,
        &plan,
        &read,
        &TargetRecords::default(),
        &Past::default(),
        build_options,
    );
    document.data_not_read();
    Ok(Planned {
        document,
        plan,
        read,
    })
}

/// What a saved plan records besides the plan itself.
pub struct SaveOptions {
    pub expires_in: chrono::Duration,
    /// The configuration paths as given to `tether plan`.
    pub config_paths: Vec<String>,
    pub refresh: bool,
    pub users: Vec<String>,
    /// `plan --delete-threshold`.
    pub delete_threshold: usize,
}

/// Writes `planned` to `path` as a plan file signed with the state's key, bound to the
/// configuration, the state's generation and the version of every record it touches.
pub fn save_plan<S: StateStore>(
    path: &Path,
    config: &Config,
    planned: &Planned,
    state: &S,
    now: DateTime<Utc>,
    options: &SaveOptions,
) -> Result<SavedPlan, String> {
    let mut operations: Vec<_> = planned.plan.operations.iter().map(|o| o.key()).collect();
    operations.sort();
    operations.dedup();
    let saved = SavedPlan {
        format: file::PLAN_FILE_FORMAT,
        tether_version: env!("CARGO_PKG_VERSION").to_string(),
        org: config.org.name.clone(),
        created_at: now,
        expires_at: now + options.expires_in,
        config_hash: ConfigRevision::canonical(config).1,
        state_generation: state.generation().map_err(|e| e.to_string())?,
        plan_id: file::new_plan_id()?,
        operations,
        // Record contents stay out of plan files, which travel (CI artifacts, reviews).
        document: serde_json::to_value(planned.document.without_values())
            .map_err(|e| format!("the plan cannot be written: {e}"))?,
        config_paths: options.config_paths.clone(),
        refresh: options.refresh,
        users: options.users.clone(),
        guards: file::Guards {
            delete_threshold: options.delete_threshold,
            refused: planned
                .plan
                .refusals
                .iter()
                .map(file::RefusedSide::of)
                .collect(),
        },
    };
    let key = state.plan_signing_key().map_err(|e| e.to_string())?;
    file::save(path, &saved, key.expose().as_bytes())
        .map_err(|e| format!("cannot write the plan to {}: {e}", path.display()))?;
    Ok(saved)
}

/// A cycle failure in words an admin can act on.
pub fn cycle_error(e: &CycleError) -> String {
    match e {
        CycleError::Killed => "the sync was stopped".into(),
        CycleError::State(s) => s.to_string(),
        CycleError::Unreviewed(why) | CycleError::OrgSetting(why) => why.clone(),
        CycleError::Crm(c) => format!(
            "Salesforce could not be read ({c}); nothing was planned. Run `tether test-connection` to see why"
        ),
    }
}
