use super::error::{CommandError, CommandResult, Done};
use super::output::{out, outln};
use crate::lock::{LockInfo, Locks};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lock id printed by the command that found the state locked (any word, e.g.
    /// `empty`, for a lock file that holds nothing).
    pub lock_id: String,
    /// Configuration file or directory whose state to unlock. Default: $TETHER_CONFIG, else the current directory.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: super::StateArg,
    /// Free the lock without asking, even when its holder may still run.
    #[arg(long)]
    pub yes: bool,
}

/// Releases a lock left by an apply or run that is gone, or an empty lock file. A holder
/// that may still run (this host shows its process, or it is on another host) is only
/// unlocked after a `yes` on the terminal, or with --yes: freeing a live holder's lock lets
/// two tethers write one state.
pub fn run(args: &Args) -> CommandResult {
    let location = super::status::location_of(&args.state, &args.paths)?;
    let locks = location.locks();
    if let Some(held) = locks.holder().map_err(CommandError::state)?
        && held.id == args.lock_id
        && locks.holder_gone(&held).is_none()
        && !args.yes
    {
        let terminal = std::io::stdin().is_terminal();
        if !confirmed(&held, terminal, &mut std::io::stdin().lock())? {
            outln!("Nothing was unlocked.");
            return Ok(Done::Problems);
        }
    }
    match locks
        .force_unlock(&args.lock_id)
        .map_err(CommandError::state)?
    {
        Some(info) => outln!("Released the lock held by {info}."),
        None => outln!(
            "Removed the empty lock file {}; it held no lock.",
            location
                .file()
                .map(crate::lock::lock_path)
                .unwrap_or_default()
                .display()
        ),
    }
    Ok(Done::Success)
}

/// Asks on the terminal whether to free the lock of `held`, which may still run; without a
/// terminal there is no one to ask, and that is an error saying how to go on.
fn confirmed(
    held: &LockInfo,
    terminal: bool,
    answer: &mut dyn BufRead,
) -> Result<bool, CommandError> {
    let may_run = if held.host == crate::lock::host_name() {
        format!("process {} still runs on {}", held.pid, held.host)
    } else {
        format!(
            "it holds the lock from {}, where tether cannot see whether process {} still runs",
            held.host, held.pid
        )
    };
    if !terminal {
        return Err(CommandError::state(format!(
            "the lock is held by {held}, and {may_run}: freeing it lets two tethers write one state"
        ))
        .hint("wait for it to finish; if you are sure it is stuck, stop it, or pass --yes to free the lock anyway"));
    }
    out!(
        "The lock is held by {held}, and {may_run}.\nFreeing it lets two tethers write one state. Free it anyway? Only `yes` is accepted: "
    );
    super::output::flush();
    let mut line = String::new();
    let _ = answer.read_line(&mut line);
    Ok(line.trim() == "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> LockInfo {
        crate::lock::ours("run", chrono::Utc::now())
    }

    #[test]
    fn without_a_terminal_a_live_holder_is_refused_with_a_hint() {
        let err = confirmed(&held(), false, &mut "yes\n".as_bytes()).unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("still runs on"), "{text}");
        assert!(
            text.contains("pass --yes to free the lock anyway"),
            "{text}"
        );
    }

    #[test]
    fn on_a_terminal_only_yes_frees_it() {
        assert!(confirmed(&held(), true, &mut "yes\n".as_bytes()).unwrap());
        assert!(!confirmed(&held(), true, &mut "y\n".as_bytes()).unwrap());
        assert!(!confirmed(&held(), true, &mut "".as_bytes()).unwrap());
    }
}
