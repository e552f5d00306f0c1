use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use super::status::open_existing;
use super::{LockArg, StateArg};
use crate::state::{ResetMark, StateChange, StateStore};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory whose state to change, as for the other commands.
    /// Default: $TETHER_CONFIG, else the current directory. (With the deprecated --config,
    /// these are the reps' emails.)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A rep to reset, by email (repeatable).
    #[arg(long = "user", value_name = "EMAIL")]
    pub users: Vec<String>,
    /// Deprecated: `tether reset PATH --user EMAIL` instead. The configuration, when the
    /// reps are given as `tether reset EMAIL… --config PATH`.
    #[arg(long = "config", value_name = "PATH", hide = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub lock: LockArg,
}

impl Args {
    /// The configuration paths and the reps, from `PATH… --user EMAIL…` or the older
    /// `EMAIL… --config PATH` (said to be deprecated on stderr).
    fn paths_and_users(&self) -> Result<(Vec<PathBuf>, Vec<String>), CommandError> {
        let (paths, users) = match &self.config {
            None => (self.paths.clone(), self.users.clone()),
            Some(config) => {
                eprintln!(
                    "note: `--config` is deprecated; write `tether reset {} --user EMAIL` (as for the other commands)",
                    config.display()
                );
                let mut users = self.users.clone();
                users.extend(self.paths.iter().map(|p| p.to_string_lossy().into_owned()));
                (vec![config.clone()], users)
            }
        };
        if users.is_empty() {
            return Err(
                CommandError::input("name the reps to reset with --user EMAIL")
                    .hint("tether reset path/to/config --user rep@example.com"),
            );
        }
        Ok((paths, users))
    }
}

/// Marks reps for reset: the next apply or run clears their links and re-syncs them by
/// matching existing records, never duplicating them.
pub fn run(args: &Args) -> CommandResult {
    let (paths, users) = args.paths_and_users()?;
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
    for user in &users {
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
    for user in &users {
        outln!("{user}: Marked for reset; the next `tether apply` or `tether run` re-links them.");
    }
    Ok(Done::Success)
}
