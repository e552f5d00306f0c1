use super::StateArg;
use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use crate::engine::cycle::{CycleError, SyncOptions, run_cycle};
use crate::engine::execute::StepBudget;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory (one org): where the state and `${file:…}` secrets
    /// are. The settings synced are the last *applied* ones, never unreviewed edits.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    /// Time between the starts of two cycles, e.g. 30s, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = super::duration::interval)]
    pub interval: Duration,
    /// Run one cycle and exit.
    #[arg(long)]
    pub once: bool,
}

/// Sync cycles with the last applied configuration, as the hosted service did. SIGINT or
/// SIGTERM lets the batch in flight finish and be recorded, then exits 0; the next run
/// carries on from there (cursors advance only when a cycle completes). A rep that fails
/// does not stop the others; its errors are in `tether errors`.
pub fn run(args: &Args) -> CommandResult {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let home = match paths.first() {
        Some(p) if p.is_file() => p.parent().map(PathBuf::from).unwrap_or_default(),
        Some(p) => p.clone(),
        None => PathBuf::from("."),
    };
    let location = super::status::location_of(&args.state, &paths)?;
    let no_state = || {
        Err(CommandError::state(format!(
            "no state at {location}: nothing has been applied yet"
        ))
        .hint("run `tether apply` first"))
    };
    // A first apply holds the lock while it creates the state: say it is locked by it.
    let exists = location.exists().map_err(CommandError::state)?;
    let being_created = location
        .file()
        .is_some_and(|file| crate::lock::lock_path(file).exists());
    if !exists && !being_created {
        return no_state();
    }
    let _lock =
        super::lock_state(&location, "run", chrono::Utc::now()).map_err(CommandError::state)?;
    if !location.exists().map_err(CommandError::state)? {
        return no_state();
    }
    let mut state = location.open().map_err(CommandError::state)?;
    let Some(config) = crate::workflow::applied_config(&state).map_err(CommandError::state)? else {
        return Err(CommandError::state("no configuration has been applied yet")
            .hint("run `tether apply` first"));
    };
    // The applied configuration came from the state, so no file position to point at.
    let connectors = crate::workflow::open(&config, &home, Arc::new(crate::clock::SystemClock))
        .map_err(CommandError::input)?;
    let options = SyncOptions {
        progress: super::progress::for_stderr(),
        ..SyncOptions::default()
    };
    let runtime = super::runtime();
    runtime.block_on(async {
        // Listen from the start, so a signal during a cycle lets it finish instead of
        // killing the process mid-write.
        let (stopped_tx, mut stopped) = tokio::sync::watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        tokio::spawn(async move {
            stop_signal().await;
            stop_flag.store(true, Ordering::SeqCst);
            let _ = stopped_tx.send(true);
        });
        loop {
            let started = tokio::time::Instant::now();
            let now = chrono::Utc::now();
            match run_cycle(
                &config,
                &connectors.mail,
                &connectors.crm,
                &mut state,
                now,
                &options,
                &mut StepBudget::until_stopped(stop.clone()),
            )
            .await
            {
                Ok(report) => {
                    let reps_failed = report.read.rep_errors.len() + report.read.problems.len();
                    tracing::info!(
                        written = report.exec.succeeded,
                        failed = report.exec.failed.len(),
                        reps = report.read.reps.len(),
                        reps_failed,
                        ms = started.elapsed().as_millis() as u64,
                        "cycle finished"
                    );
                    outln!(
                        "{} cycle: {} records written, {} failed, {} reps could not be synced{}",
                        now.format("%Y-%m-%dT%H:%M:%SZ"),
                        report.exec.succeeded,
                        report.exec.failed.len(),
                        reps_failed,
                        left_for_the_next_cycle(report.held_back.len())
                    )
                }
                Err(CycleError::Killed) if stop.load(Ordering::SeqCst) => {
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
                    eprintln!(
                        "{} cycle failed: {message}",
                        now.format("%Y-%m-%dT%H:%M:%SZ")
                    )
                }
            }
            if args.once {
                return Ok(Done::Success);
            }
            if *stopped.borrow() {
                outln!("stopping: the last cycle finished and its state is saved");
                return Ok(Done::Success);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(started + args.interval) => {}
                _ = stopped.changed() => {
                    outln!("stopping: the last cycle finished and its state is saved");
                    return Ok(Done::Success);
                }
            }
        }
    })
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

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
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
