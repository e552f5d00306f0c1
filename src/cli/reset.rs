use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use super::status::open_existing;
use super::{LockArg, StateArg};
use crate::state::{ResetMark, StateChange, StateStore};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The reps to reset, by email.
    #[arg(required = true, value_name = "EMAIL")]
    pub users: Vec<String>,
    /// Configuration file or directory whose state to change. Default: the current directory.
    #[arg(long = "config", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub lock: LockArg,
}

/// Marks reps for reset: the next apply or run clears their links and re-syncs them by
/// matching existing records, never duplicating them.
pub fn run(args: &Args) -> CommandResult {
    let paths: Vec<PathBuf> = args.config.iter().cloned().collect();
    let location = super::status::location_of(&args.state, &paths)?;
    // Waits, as apply and run do, for a cycle in flight: a `run` service holds the lock only
    // while a cycle runs.
    let (_lock, _waited) =
        super::wait_for_lock(&location.locks(), "reset", args.lock.lock_timeout, &|| {
            false
        })
        .map_err(CommandError::state)?;
    let mut state = open_existing(&location, false)?;
    let emails = state.rep_emails().map_err(CommandError::state)?;
    let mut changes = Vec::new();
    for user in &args.users {
        match emails.iter().find(|(_, e)| e.eq_ignore_ascii_case(user)) {
            Some((rep, _)) => changes.push(StateChange::SetResetMark {
                rep: rep.clone(),
                mark: Some(ResetMark::MarkedForReset),
            }),
            None => {
                return Err(CommandError::input(format!(
                    "{user} has not been synced by this state; nothing to reset"
                )));
            }
        }
    }
    state.apply(changes).map_err(CommandError::state)?;
    for user in &args.users {
        outln!("{user}: Marked for reset; the next `tether apply` or `tether run` re-links them.");
    }
    Ok(Done::Success)
}
