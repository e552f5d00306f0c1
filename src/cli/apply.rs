use super::error::{self, CommandError, CommandResult, Done, Kind, Settings};
use super::output::{out, outln};
use super::plan::{PlanFormat, render_as};
use super::stop::Stop;
use super::{Loaded, StateArg, load_configuration};
use crate::config::model::Config;
use crate::engine::cycle::{CycleError, CycleReport, Reviewed, SyncOptions, run_cycle};
use crate::engine::execute::{SideCounts, StepBudget};
use crate::engine::plan::{OperationKey, Side};
use crate::plan::build::{BuildOptions, DEFAULT_DELETE_THRESHOLD};
use crate::plan::document::{PlanDocument, plural};
use crate::plan::file::{self, CurrentState, SavedPlan};
use crate::state::{ConfigRevision, StateChange, StateLocation, StateStore};
use crate::workflow::Connectors;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory (one org), default the current directory; or a plan
    /// saved by `tether plan --out FILE`, optionally followed by the configuration (default:
    /// the paths the plan was made from).
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub lock: super::LockArg,
    #[command(flatten)]
    pub group: super::GroupArg,
    /// Apply without asking (required without a terminal, e.g. in CI). A saved plan is
    /// applied without asking: it was reviewed when it was made.
    #[arg(long)]
    pub auto_approve: bool,
    /// Apply even when the plan deletes more records than --delete-threshold.
    #[arg(long)]
    pub allow_deletes: bool,
    /// Deletes above this count need --allow-deletes [default: 100]. A saved plan keeps the
    /// threshold it was made with (`plan --delete-threshold`); a lower one given here holds too.
    #[arg(long)]
    pub delete_threshold: Option<usize>,
    /// Override the empty-side guard (a side that suddenly shows no records).
    #[arg(long)]
    pub force: bool,
}

/// Plans, shows the plan, asks, records the configuration and syncs; or applies a saved
/// plan. Only the operations of the plan shown are done. Exits non-zero when anything
/// failed (the failed records are in `tether errors`).
pub fn run(args: &Args) -> CommandResult {
    if let Some(first) = args.paths.first()
        && let Some(saved) = file::peek(first).map_err(CommandError::input)?
    {
        return apply_saved(args, saved);
    }
    let loaded = load_configuration(&args.paths)?;
    let config = &loaded.config;
    let location = args.state.location(&args.paths, Some(&loaded))?;
    let (_lock, mut state) = lock_and_open(&location, args)?;
    let now = chrono::Utc::now();
    let connectors = open_connectors(&loaded)?;
    let runtime = super::runtime();
    let options = SyncOptions {
        force: args.force,
        progress: super::progress::for_stderr(),
        group_size: args.group.group_size(),
        ..SyncOptions::default()
    };
    let threshold = args.delete_threshold.unwrap_or(DEFAULT_DELETE_THRESHOLD);
    let build = BuildOptions {
        delete_threshold: threshold,
        ..BuildOptions::default()
    };
    let planned = runtime
        .block_on(crate::workflow::plan(
            config,
            &connectors,
            &state,
            now,
            &options,
            &build,
        ))
        .map_err(|e| error::plan_failed(e, config, &loaded.settings))?;
    let doc = &planned.document;
    out!("{}", render_as(doc, PlanFormat::Human, false));
    if doc.summary.no_changes {
        // No sync cycle follows to record what the read learned; `tether status` shows it.
        record_facts(config, &connectors, &mut state, &planned.read, now)
            .map_err(CommandError::state)?;
        return match crate::engine::facts::exchange_refused(&planned.read) {
            Some(why) => Err(refused(&why, &loaded.settings)),
            None => Ok(Done::Success),
        };
    }
    let deletes = doc.summary.salesforce.delete + doc.summary.exchange.delete;
    if deletes > threshold && !args.allow_deletes {
        return Err(CommandError::input(format!(
            "the plan deletes {deletes} records, more than the threshold of {threshold}"
        ))
        .hint("review it, then apply with --allow-deletes"));
    }
    if !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err(CommandError::input("no terminal to confirm on")
                .hint("review the plan and pass --auto-approve"));
        }
        out!("\nApply this plan? Only `yes` is accepted: ");
        super::output::flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            outln!("Apply cancelled.");
            return Ok(Done::Problems);
        }
    }
    state
        .apply(vec![record_apply(config, now)])
        .map_err(CommandError::state)?;
    // Only what was shown: a record that changed while the plan was on screen is held back,
    // and the guards hold for what the sync plans again.
    let approved: Vec<OperationKey> = planned.plan.operations.iter().map(|o| o.key()).collect();
    let options = SyncOptions {
        reviewed: Some(Reviewed::new(
            (!args.allow_deletes).then_some(threshold),
            &planned.plan,
        )),
        ..options
    };
    sync(
        &runtime,
        &loaded,
        &connectors,
        &mut state,
        now,
        options,
        &approved,
    )
}

/// The connections of the configuration, or the setting that keeps one from opening.
fn open_connectors(loaded: &Loaded) -> Result<Connectors, CommandError> {
    crate::workflow::open(
        &loaded.config,
        &loaded.home,
        Arc::new(crate::clock::SystemClock),
    )
    .map_err(|e| error::connect_failed(e, &loaded.settings))
}

/// Exchange refused the service account: nothing can sync until the credentials work.
fn refused(why: &str, settings: &Settings) -> CommandError {
    CommandError::new(
        Kind::Connection,
        "Exchange refused the service account; nothing was synced with Exchange",
    )
    .caused_by(why)
    .hint(format!(
        "check {}: the username, and the password or token its secret reference names",
        settings.describe("connections.exchange")
    ))
    .hint("`tether test-connection` checks the credentials, and `tether status` shows what the last sync saw")
}

/// Records what the plan's read learned about the reps and Exchange (`tether status`), when
/// apply ends without a sync cycle (which would record it).
fn record_facts(
    config: &Config,
    connectors: &Connectors,
    state: &mut Box<dyn StateStore>,
    read: &crate::engine::cycle::ReadOutcome,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let changes = crate::engine::facts::changes(config, read, &connectors.mail, &*state, None, now)
        .map_err(|e| e.to_string())?;
    state.apply(changes).map_err(|e| e.to_string())
}

/// The state, locked for this apply: waits up to --lock-timeout for a cycle in flight.
fn lock_and_open(
    location: &StateLocation,
    args: &Args,
) -> Result<(crate::state::StateLockGuard, Box<dyn StateStore>), CommandError> {
    // Until the sync starts, SIGINT and SIGTERM end apply as usual: nothing is written
    // before it (and a lock left by a killed apply is taken over, its holder gone).
    let (lock, _waited) =
        super::wait_for_lock(&location.locks(), "apply", args.lock.lock_timeout, &|| {
            false
        })
        .map_err(CommandError::state)?;
    let state = location.open().map_err(CommandError::state)?;
    Ok((lock, state))
}

fn record_apply(config: &Config, now: DateTime<Utc>) -> StateChange {
    let (canonical, hash) = ConfigRevision::canonical(config);
    StateChange::RecordApply {
        canonical,
        hash,
        applied_at: now,
        applied_by: crate::ci::applied_by(),
    }
}

/// `tether apply FILE`: verifies the saved plan against the configuration and the state,
/// shows it, records it, and runs only its operations, on records still as it saw them.
fn apply_saved(args: &Args, saved: SavedPlan) -> CommandResult {
    let plan_path = &args.paths[0];
    if args.force {
        return Err(CommandError::input(
            "--force changes what is planned, and a saved plan was made without it",
        )
        .hint(
            "run `tether apply PATH --force` to review and apply the deletes the guard refused",
        ));
    }
    let given: Vec<PathBuf> = args.paths[1..].to_vec();
    let config_paths: Vec<PathBuf> = if given.is_empty() {
        saved.config_paths.iter().map(PathBuf::from).collect()
    } else {
        given
    };
    let loaded = load_configuration(&config_paths).map_err(|e| {
        let made_from: Vec<&str> = saved.config_paths.iter().map(String::as_str).collect();
        e.hint(format!(
            "the configuration of the saved plan (made from `{}`) could not be loaded; apply in \
             the directory the plan was made in, or name the configuration: `tether apply {} PATH`",
            made_from.join(" "),
            plan_path.display()
        ))
    })?;
    let config = &loaded.config;
    let location = args.state.location(&config_paths, Some(&loaded))?;
    if !location.exists().map_err(CommandError::state)? {
        return Err(CommandError::state(format!(
            "no state at {location}: a saved plan is checked against the state it was made with \
             (`tether plan --out` creates it when missing); pass --state if it is elsewhere"
        )));
    }
    let (_lock, mut state) = lock_and_open(&location, args)?;
    let now = chrono::Utc::now();
    let verified = verify(&state, plan_path, config, now).map_err(CommandError::input)?;
    outln!(
        "Applying the plan saved in {}, made {}; it still matches the configuration and the state.\n",
        plan_path.display(),
        verified.created_at.format("%Y-%m-%d %H:%M UTC")
    );
    match serde_json::from_value::<PlanDocument>(verified.document.clone()) {
        Ok(doc) => {
            let detail = doc.record_changes.iter().any(|r| !r.records.is_empty());
            out!("{}", render_as(&doc, PlanFormat::Human, detail));
        }
        Err(e) => {
            return Err(CommandError::input(format!(
                "the saved plan's document cannot be read: {e}"
            )));
        }
    }
    // The guards as decided when the plan was made; the sync checks them again on what it
    // plans before it writes.
    let guards = &verified.guards;
    let threshold = args
        .delete_threshold
        .map_or(guards.delete_threshold, |t| t.min(guards.delete_threshold));
    let deletes = verified
        .operations
        .iter()
        .filter(|k| k.action.starts_with("delete_"))
        .count();
    if deletes > threshold && !args.allow_deletes {
        return Err(CommandError::input(format!(
            "the plan deletes {deletes} records, more than the threshold of {threshold}; apply with --allow-deletes"
        )));
    }
    let reviewed = Reviewed {
        delete_threshold: (!args.allow_deletes).then_some(threshold),
        refusals: guards.refused.iter().filter_map(|r| r.key()).collect(),
    };
    let no_changes = verified
        .document
        .pointer("/summary/no_changes")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut changes = Vec::new();
    if !no_changes {
        changes.push(record_apply(config, now));
    }
    // In the same transaction: a saved plan is applied once.
    changes.push(StateChange::RecordPlanApplied {
        plan_id: verified.plan_id.clone(),
        applied_at: now,
    });
    state.apply(changes).map_err(CommandError::state)?;
    if no_changes {
        outln!("\nNothing to apply.");
        return Ok(Done::Success);
    }
    if !verified.refresh {
        outln!(
            "\nApplied the settings. The plan was made with --refresh=false, so no data was \
             synced; `tether run` or the next apply syncs it."
        );
        return Ok(Done::Success);
    }
    let connectors = open_connectors(&loaded)?;
    let options = SyncOptions {
        only_reps: (!verified.users.is_empty())
            .then(|| verified.users.iter().map(|u| u.to_lowercase()).collect()),
        progress: super::progress::for_stderr(),
        reviewed: Some(reviewed),
        group_size: args.group.group_size(),
        ..SyncOptions::default()
    };
    sync(
        &super::runtime(),
        &loaded,
        &connectors,
        &mut state,
        now,
        options,
        &verified.operations,
    )
}

fn verify(
    state: &dyn StateStore,
    path: &std::path::Path,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<SavedPlan, String> {
    let key = state.plan_signing_key().map_err(|e| e.to_string())?;
    let applied = state.applied_plans().map_err(|e| e.to_string())?;
    let current = CurrentState {
        now,
        org: &config.org.name,
        config_hash: &ConfigRevision::canonical(config).1,
        state_generation: state.generation().map_err(|e| e.to_string())?,
        applied_plan_ids: &applied,
    };
    file::load(path, key.expose().as_bytes(), &current).map_err(|e| e.to_string())
}

/// Syncs the operations of `approved` (the plan shown), then says what happened. A stop
/// asked for (SIGTERM) ends it at the next batch boundary, the batch in flight recorded:
/// exit 0, and the next plan shows the rest.
fn sync(
    runtime: &tokio::runtime::Runtime,
    loaded: &Loaded,
    connectors: &Connectors,
    state: &mut Box<dyn StateStore>,
    now: DateTime<Utc>,
    options: SyncOptions,
    approved: &[OperationKey],
) -> CommandResult {
    let options = SyncOptions {
        approved: Some(Arc::new(approved.iter().cloned().collect())),
        ..options
    };
    // From here a signal stops at the next batch boundary instead of killing mid-write.
    let stop = Stop::listen(runtime);
    let result = runtime.block_on(run_cycle(
        &loaded.config,
        &connectors.mail,
        &connectors.crm,
        state,
        now,
        &options,
        &mut StepBudget::until_stopped(stop.flag()),
    ));
    if matches!(result, Err(CycleError::Killed)) && stop.requested() {
        tracing::info!("apply stopped between batches on request");
        outln!(
            "\nStopped on request: the batch in flight finished and is recorded; run `tether plan` to see what is left."
        );
        return Ok(Done::Success);
    }
    let report = result.map_err(|e| {
        error::plan_failed(
            crate::workflow::PlanError::Read(e),
            &loaded.config,
            &loaded.settings,
        )
    })?;
    out!("{}", outcome(approved, &report));
    if let Some(why) = crate::engine::facts::exchange_refused(&report.read) {
        return Err(refused(&why, &loaded.settings));
    }
    cycle_done(state.as_ref(), &report)
}

/// How a sync cycle of `apply` (and `run --once`) exits: with problems (1) when a rep could
/// not be read or a record failed, unless `tether errors ack` acknowledged that failure at
/// the versions it failed at.
pub(super) fn cycle_done(state: &dyn StateStore, report: &CycleReport) -> CommandResult {
    let acks = state.acknowledgements().map_err(CommandError::state)?;
    let failed = report
        .exec
        .failed
        .iter()
        .any(|e| !crate::state::Acknowledgement::covers(&acks, e));
    Ok(if !failed && report.read.rep_errors.is_empty() {
        Done::Success
    } else {
        Done::Problems
    })
}

/// What an apply did: per side created, updated, deleted, failed and not attempted (planned
/// but not done: held back, or no longer there to do), and what was left for the next plan.
fn outcome(approved: &[OperationKey], report: &CycleReport) -> String {
    let exec = &report.exec;
    let mut out = format!(
        "\nApplied: {} records written, {} failed{}.\n",
        exec.succeeded,
        exec.failed.len(),
        if exec.failed.is_empty() {
            ""
        } else {
            " (see `tether errors`)"
        }
    );
    let planned = |side| {
        approved
            .iter()
            .filter(|k| k.writes_to() == Some(side))
            .count()
    };
    let done = |side| {
        report
            .plan
            .operations
            .iter()
            .filter(|o| o.action.writes_to() == Some(side))
            .count()
    };
    for (name, side, counts) in [
        ("Salesforce", Side::Salesforce, exec.salesforce),
        ("Exchange", Side::Exchange, exec.exchange),
    ] {
        let SideCounts {
            created,
            updated,
            deleted,
            failed,
        } = counts;
        let not_attempted = planned(side).saturating_sub(done(side));
        out.push_str(&format!(
            "  {name}: {created} created, {updated} updated, {deleted} deleted, {failed} failed, {not_attempted} not attempted\n"
        ));
    }
    let keys: BTreeSet<&OperationKey> = approved.iter().collect();
    let (changed, new): (Vec<_>, Vec<_>) = report.held_back.iter().partition(|op| {
        let key = op.key();
        keys.iter().any(|k| k.shares_a_record_with(&key))
    });
    let was = |n: usize| if n == 1 { "was" } else { "were" };
    if !changed.is_empty() {
        out.push_str(&format!(
            "{} changed since the plan was made {} left for the next plan.\n",
            plural(changed.len(), "record", "records"),
            was(changed.len())
        ));
    }
    if !new.is_empty() {
        out.push_str(&format!(
            "{} that appeared since the plan was made {} left for the next plan.\n",
            plural(new.len(), "change", "changes"),
            was(new.len())
        ));
    }
    if !report.held_back.is_empty() {
        out.push_str("Run `tether plan` to review them.\n");
    }
    out
}
