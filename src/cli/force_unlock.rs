use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lock id printed by the command that found the state locked (any word, e.g.
    /// `empty`, for a lock file that holds nothing).
    pub lock_id: String,
    /// Configuration file or directory whose state to unlock. Default: the current directory.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: super::StateArg,
}

/// Releases a lock left by an apply or run that is gone, or an empty lock file.
pub fn run(args: &Args) -> CommandResult {
    let location = super::status::location_of(&args.state, &args.paths)?;
    let Some(state) = location.file() else {
        return Err(CommandError::state(format!(
            "{location} is locked with a Postgres advisory lock, which Postgres frees the moment \
             its holder's connection ends: there is nothing to force"
        ))
        .hint("if a tether hangs while holding it, stop that process"));
    };
    match crate::lock::force_unlock(state, &args.lock_id).map_err(CommandError::state)? {
        Some(info) => outln!("Released the lock held by {info}."),
        None => outln!(
            "Removed the empty lock file {}; it held no lock.",
            crate::lock::lock_path(state).display()
        ),
    }
    Ok(Done::Success)
}
