use super::StateArg;
use super::status::open_existing;
use crate::state::{ResetMark, StateChange, StateStore};
use std::path::PathBuf;
use std::process::ExitCode;

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
}

/// Marks reps for reset: the next apply or run clears their links and re-syncs them by
/// matching existing records, never duplicating them.
pub fn run(args: &Args) -> ExitCode {
    let paths: Vec<PathBuf> = args.config.iter().cloned().collect();
    let path = args.state.path(&paths);
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    };
    let _lock = match super::lock_state(&path, "reset", chrono::Utc::now()) {
        Ok(lock) => lock,
        Err(e) => return fail(e.to_string()),
    };
    let mut state = match open_existing(&path, crate::state::SqliteState::open) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let emails = match state.rep_emails() {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    let mut changes = Vec::new();
    for user in &args.users {
        match emails.iter().find(|(_, e)| e.eq_ignore_ascii_case(user)) {
            Some((rep, _)) => changes.push(StateChange::SetResetMark {
                rep: rep.clone(),
                mark: Some(ResetMark::MarkedForReset),
            }),
            None => {
                return fail(format!(
                    "{user} has not been synced by this state; nothing to reset"
                ));
            }
        }
    }
    if let Err(e) = state.apply(changes) {
        return fail(e.to_string());
    }
    for user in &args.users {
        println!(
            "{user}: Marked for reset; the next `tether apply` or `tether run` re-links them."
        );
    }
    ExitCode::SUCCESS
}
