use super::StateArg;
use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use super::service::{self, CycleOutcome, Metrics};
use super::stop::Stop;
use crate::config::model::Config;
use crate::engine::cycle::{CycleError, SyncOptions, run_cycle};
use crate::engine::execute::StepBudget;
use crate::state::{StateLocation, StateStore};
use crate::workflow::Connectors;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory (one org): where the state and `${file:…}` secrets
    /// are. The settings synced are the last *applied* ones, never unreviewed edits: each
    /// cycle reads them from the state, so an `apply` (from CI) is used from the next cycle.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub lock: super::LockArg,
    #[command(flatten)]
    pub group: super::GroupArg,
    /// Time between the starts of two cycles, e.g. 30s, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = super::duration::interval)]
    pub interval: Duration,
    /// Run one cycle and exit, as apply does: 1 when the cycle failed, a rep could not be
    /// synced or a record failed (not acknowledged with `tether errors ack`).
    #[arg(long)]
    pub once: bool,
    /// Serve `/healthz` (503 when the last cycle failed or is older than three intervals)
    /// and `/metrics` (Prometheus text format) on ADDR, e.g. 127.0.0.1:9464; port 0 picks a
    /// free one (the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// The applied configuration a cycle runs with, and its connections (opened again only
/// when another configuration is applied).
struct Applied {
    hash: String,
    config: Config,
    connectors: Connectors,
}

/// Sync cycles with the last applied configuration, as the hosted service did. The state
/// lock is taken for each cycle (waiting up to --lock-timeout for an apply in flight) and
/// released between cycles. SIGINT or SIGTERM lets the batch in flight finish and be
/// recorded, then exits 0; the next run carries on from there (cursors advance only when a
/// cycle completes). A rep that fails does not stop the others; its errors are in
/// `tether errors`.
pub fn run(args: &Args) -> CommandResult {
    let paths = super::config_paths(&args.paths);
    let home = match paths.first() {
        Some(p) if p.is_file() => p.parent().map(PathBuf::from).unwrap_or_default(),
        Some(p) => p.clone(),
        None => PathBuf::from("."),
    };
    let location = super::status::location_of(&args.state, &paths)?;
    // A first apply holds the lock while it creates the state: wait for it then.
    let exists = location.exists().map_err(CommandError::state)?;
    let being_created = location
        .file()
        .is_some_and(|file| crate::lock::lock_path(file).exists());
    if !exists && !being_created {
        return Err(no_state(&location));
    }
    let runtime = super::runtime();
    // Listen from the start, so a signal during a cycle lets it finish instead of killing
    // the process mid-write.
    let mut stop = Stop::listen(&runtime);
    let metrics = Metrics::new(args.interval);
    if let Some(addr) = args.listen {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| {
                CommandError::input(format!("--listen {addr}: cannot listen there: {e}"))
                    .hint("give a free port, or port 0 for any free one")
            })?;
        let bound = listener
            .local_addr()
            .map_err(|e| CommandError::input(format!("--listen {addr}: {e}")))?;
        outln!("serving /healthz and /metrics on http://{bound}");
        runtime.spawn(service::serve(listener, metrics.clone()));
    }
    let options = SyncOptions {
        progress: super::progress::for_stderr(),
        group_size: args.group.group_size(),
        ..SyncOptions::default()
    };
    let locks = location.locks();
    let mut applied: Option<Applied> = None;
    loop {
        let started = tokio::time::Instant::now();
        let (lock, lock_wait) =
            match super::wait_for_lock(&locks, "run", args.lock.lock_timeout, &|| stop.requested())
            {
                Ok(held) => held,
                Err(crate::lock::LockError::Interrupted) => {
                    outln!("stopping: no cycle was in flight");
                    return Ok(Done::Success);
                }
                // The holder is still busy: a service tries again next cycle, `--once` fails.
                Err(e @ crate::lock::LockError::TimedOut(..)) if !args.once => {
                    let waited = args.lock.lock_timeout;
                    skipped(&metrics, waited, "lock", e.to_string());
                    if wait_for_next(&runtime, &mut stop, started + args.interval) {
                        return Ok(Done::Success);
                    }
                    continue;
                }
                Err(e) => return Err(CommandError::state(e)),
            };
        if !location.exists().map_err(CommandError::state)? {
            return Err(no_state(&location));
        }
        // The cycle proper starts once the lock is held.
        let (now, cycle_started) = (chrono::Utc::now(), tokio::time::Instant::now());
        let mut state = location.open().map_err(CommandError::state)?;
        let running = applied.is_some();
        let applied = match reload(&mut applied, &state, &home) {
            Ok(applied) => applied,
            // A configuration applied since that cannot be used (say, a secret this host
            // lacks): fail the cycle visibly and try again, rather than sync with the old one.
            Err(e) if running && !args.once => {
                drop(state);
                drop(lock);
                skipped(&metrics, lock_wait, "config", e.to_string());
                if wait_for_next(&runtime, &mut stop, started + args.interval) {
                    return Ok(Done::Success);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let calls_before = service::calls(&applied.connectors);
        let result = runtime.block_on(run_cycle(
            &applied.config,
            &applied.connectors.mail,
            &applied.connectors.crm,
            &mut state,
            now,
            &options,
            &mut StepBudget::until_stopped(stop.flag()),
        ));
        // `--once` exits as apply does: 1 when a rep could not be read or a record failed
        // (unless acknowledged), and when the cycle itself failed.
        let once_done = match &result {
            Ok(report) if args.once => super::apply::cycle_done(state.as_ref(), report)?,
            _ => Done::Problems,
        };
        drop(state);
        drop(lock);
        let outcome = |result| CycleOutcome {
            duration: Some(cycle_started.elapsed()),
            lock_wait,
            result,
            api_calls: service::calls_since(&calls_before, &service::calls(&applied.connectors)),
            api_usage: service::api_usage(&applied.connectors),
        };
        match result {
            Ok(report) => {
                let reps_failed = report.read.rep_errors.len() + report.read.problems.len();
                tracing::info!(
                    written = report.exec.succeeded,
                    failed = report.exec.failed.len(),
                    reps = report.read.reps.len(),
                    reps_failed,
                    ms = cycle_started.elapsed().as_millis() as u64,
                    lock_wait_ms = lock_wait.as_millis() as u64,
                    "cycle finished"
                );
                service::record(&metrics, outcome(Ok(&report)));
                outln!(
                    "{} cycle: {} records written, {} failed, {} reps could not be synced{}",
                    now.format("%Y-%m-%dT%H:%M:%SZ"),
                    report.exec.succeeded,
                    report.exec.failed.len(),
                    reps_failed,
                    left_for_the_next_cycle(report.held_back.len())
                )
            }
            Err(CycleError::Killed) if stop.requested() => {
                tracing::info!("stopped between batches on request");
                outln!(
                    "stopping: the batch in flight finished and its state is saved; the next run carries on from there"
                );
                return Ok(Done::Success);
            }
            // A cycle that cannot read Salesforce at all is logged; the next one retries.
            Err(e) => {
                let message = crate::workflow::cycle_error(&e);
                tracing::warn!(error = %message, "cycle failed");
                service::record(&metrics, outcome(Err(("cycle", message.clone()))));
                eprintln!(
                    "{} cycle failed: {message}",
                    now.format("%Y-%m-%dT%H:%M:%SZ")
                )
            }
        }
        if args.once {
            return Ok(once_done);
        }
        if wait_for_next(&runtime, &mut stop, started + args.interval) {
            return Ok(Done::Success);
        }
    }
}

fn no_state(location: &StateLocation) -> CommandError {
    CommandError::state(format!(
        "no state at {location}: nothing has been applied yet"
    ))
    .hint("run `tether apply` first")
}

/// The configuration applied last, with its connections: those of the cycle before when it
/// is still the same, else opened anew (an `apply` since then changed it).
fn reload<'a>(
    applied: &'a mut Option<Applied>,
    state: &dyn StateStore,
    home: &std::path::Path,
) -> Result<&'a Applied, CommandError> {
    let Some(revision) = state.latest_revision().map_err(CommandError::state)? else {
        return Err(CommandError::state("no configuration has been applied yet")
            .hint("run `tether apply` first"));
    };
    if let Some(current) = applied.as_ref()
        && current.hash == revision.hash
    {
        return Ok(applied.as_ref().expect("just checked"));
    }
    let config = crate::workflow::applied_config(state)
        .map_err(CommandError::state)?
        .expect("a revision was read");
    // The applied configuration came from the state, so no file position to point at.
    let connectors = crate::workflow::open(&config, home, Arc::new(crate::clock::SystemClock))
        .map_err(CommandError::input)?;
    if applied.is_some() {
        tracing::info!(hash = %revision.hash, applied_by = %revision.applied_by, "configuration applied since the last cycle");
        outln!(
            "using the configuration applied {} by {}",
            revision.applied_at.format("%Y-%m-%dT%H:%M:%SZ"),
            revision.applied_by
        );
    }
    Ok(applied.insert(Applied {
        hash: revision.hash,
        config,
        connectors,
    }))
}

/// Sleeps until `next` (the next cycle's start); true when a stop was asked for first.
fn wait_for_next(
    runtime: &tokio::runtime::Runtime,
    stop: &mut Stop,
    next: tokio::time::Instant,
) -> bool {
    if stop.requested() {
        outln!("stopping: the last cycle finished and its state is saved");
        return true;
    }
    runtime.block_on(async {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => false,
            _ = stop.asked() => {
                outln!("stopping: the last cycle finished and its state is saved");
                true
            }
        }
    })
}

/// A cycle that could not start: said on stderr and in the metrics, as failed.
fn skipped(metrics: &service::Shared, lock_wait: Duration, kind: &'static str, message: String) {
    let message = message.trim().trim_start_matches("error: ").to_string();
    tracing::warn!(error = %message, "cycle skipped");
    eprintln!(
        "{} cycle skipped: {message}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    service::record(
        metrics,
        CycleOutcome {
            duration: None,
            lock_wait,
            result: Err((kind, message)),
            api_calls: BTreeMap::new(),
            api_usage: None,
        },
    );
}

/// The deletes and overwrites a cycle did not send because their records changed after it
/// read them (the next cycle reads the edits and decides again).
fn left_for_the_next_cycle(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "; 1 record changed after the read was left for the next cycle".into(),
        n => format!("; {n} records changed after the read were left for the next cycle"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_says_how_many_records_changed_after_its_read_were_left_alone() {
        assert_eq!(left_for_the_next_cycle(0), "");
        assert_eq!(
            left_for_the_next_cycle(1),
            "; 1 record changed after the read was left for the next cycle"
        );
        assert_eq!(
            left_for_the_next_cycle(3),
            "; 3 records changed after the read were left for the next cycle"
        );
    }
}
