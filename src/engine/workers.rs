//! Workers sharing the cycles of one state (Postgres; an SQLite state has one process): the
//! org-wide Salesforce read is made once per cycle by the worker whose turn it is to read
//! (`ReadTurn`), stored in the state with the cycle's groups of reps, and every worker
//! then claims groups (leases that expire, each claim recorded), reads, plans, executes and
//! records each group. Whoever finds every group done finishes the cycle: the org
//! watermarks move once, as in a cycle of one process. A worker that dies holds its group
//! until the lease ends; another then takes the group over (the create journal makes
//! writing it again safe, as after a crash).

use crate::clock::Clock;
use crate::config::model::Config;
use crate::engine::connector::{CrmChanges, CrmConnector, CrmUser, MailConnector};
use crate::engine::cycle::{
    self, CycleError, CycleReport, OrgChanges, OrgRead, SyncOptions, read_org,
};
use crate::engine::execute::StepBudget;
use crate::model::ObjectKind;
use crate::state::{ReadTurn, StateError, StateStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One worker: its name in the claims, how long a claim holds, and the time between the
/// starts of two cycles (whichever worker starts them).
#[derive(Debug, Clone)]
pub struct Worker {
    pub name: String,
    pub lease: chrono::Duration,
    pub interval: chrono::Duration,
}

/// What a worker's turn did.
#[derive(Debug, Clone)]
pub enum WorkerTurn {
    /// Another worker is reading the org: try again shortly.
    Wait,
    /// The groups this worker did in `generation` (none: every group is taken), and whether
    /// it finished the cycle.
    Worked {
        generation: u64,
        report: Box<CycleReport>,
        finished: bool,
    },
}

/// The org read as stored for the workers: the users (each worker resolves the reps under
/// its configuration) and each object's changes since its watermark.
#[derive(Debug, Serialize, Deserialize)]
struct StoredOrgRead {
    users: Vec<CrmUser>,
    objects: Vec<(ObjectKind, Option<String>, CrmChanges)>,
}

/// One turn: read the org if it is this worker's turn, then claim and work groups until none
/// is free, then finish the cycle if every group is done. Each claim's lease runs from the
/// time it is made (`clock`), so a long turn never claims a group already expired.
#[allow(clippy::too_many_arguments)]
pub async fn run_worker_turn<M: MailConnector, C: CrmConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    crm: &C,
    state: &mut S,
    clock: &dyn Clock,
    options: &SyncOptions,
    budget: &mut StepBudget,
    worker: &Worker,
) -> Result<WorkerTurn, CycleError> {
    let now = clock.now();
    let turn = state.read_turn(&worker.name, now, now + worker.lease, worker.interval)?;
    let generation = match turn {
        ReadTurn::Wait => return Ok(WorkerTurn::Wait),
        ReadTurn::Join(g) => g,
        ReadTurn::Read(g) => {
            publish(config, mail, crm, state, options, budget, g).await?;
            g
        }
    };
    let stored: StoredOrgRead = match state.org_read(generation)? {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            StateError::new(
                format!("the org read of cycle {generation} in the state cannot be read: {e}"),
                "run again: the next cycle reads the org anew",
            )
        })?,
        None => return Ok(WorkerTurn::Wait),
    };
    let objects = stored
        .objects
        .into_iter()
        .map(|(object, watermark, changes)| OrgChanges::new(object, watermark, changes))
        .collect();
    let mut org = OrgRead::of(config, &*state, options, &stored.users, objects)?;
    org.use_marker(config, mail, crm, &*state)?;
    let mut report = CycleReport::default();
    loop {
        let now = clock.now();
        let Some(group) = state.claim_group(generation, &worker.name, now, now + worker.lease)?
        else {
            break;
        };
        let reps = org
            .reps
            .iter()
            .filter(|r| group.reps.contains(&r.user_id))
            .cloned()
            .collect();
        let done = cycle::run_group(
            config,
            mail,
            crm,
            state,
            now,
            options,
            budget,
            &mut org,
            reps,
            &report,
            Some((generation, group.group)),
        )
        .await?;
        report.append(done);
    }
    let groups = state.rep_groups(generation)?;
    if groups.iter().any(|g| g.done_at.is_none()) || state.shared_cycle_finished(generation)? {
        return Ok(WorkerTurn::Worked {
            generation,
            report: Box::new(report),
            finished: false,
        });
    }
    let held: BTreeSet<ObjectKind> = groups.iter().flat_map(|g| g.held.clone()).collect();
    match cycle::finish_cycle(
        config,
        mail,
        state,
        clock.now(),
        options,
        budget,
        org,
        report,
        &held,
        Some(generation),
    ) {
        Ok(report) => Ok(WorkerTurn::Worked {
            generation,
            report: Box::new(report),
            finished: true,
        }),
        // Another worker finished it first (this turn's report went with the attempt).
        Err(_) if state.shared_cycle_finished(generation)? => Ok(WorkerTurn::Worked {
            generation,
            report: Box::default(),
            finished: false,
        }),
        Err(e) => Err(e),
    }
}

/// The reader's part: reps marked for reset start over, then the org is read once and
/// stored with the cycle's groups of reps.
async fn publish<M: MailConnector, C: CrmConnector, S: StateStore>(
    config: &Config,
    mail: &M,
    crm: &C,
    state: &mut S,
    options: &SyncOptions,
    budget: &mut StepBudget,
    generation: u64,
) -> Result<(), CycleError> {
    let marks = cycle::reset_changes(&*state)?;
    if !marks.is_empty() {
        budget.step()?;
        state.apply(marks)?;
    }
    let org = read_org(config, mail, crm, &*state, options).await?;
    let stored = StoredOrgRead {
        users: org.users.clone(),
        objects: org
            .objects
            .iter()
            .map(|o| (o.object, o.watermark.clone(), o.changes.clone()))
            .collect(),
    };
    let groups: Vec<Vec<String>> = cycle::groups(&org, options)
        .into_iter()
        .map(|range| org.reps[range].iter().map(|r| r.user_id.clone()).collect())
        .collect();
    let text = serde_json::to_string(&stored).map_err(|e| {
        StateError::new(format!("the org read cannot be stored: {e}"), "report this")
    })?;
    state.publish_org_read(generation, &text, &groups)?;
    Ok(())
}
