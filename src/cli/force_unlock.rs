use std::path::PathBuf;
use std::process::ExitCode;

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
pub fn run(args: &Args) -> ExitCode {
    let state = args.state.path(&args.paths);
    match crate::lock::force_unlock(&state, &args.lock_id) {
        Ok(Some(info)) => {
            println!("Released the lock held by {info}.");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!(
                "Removed the empty lock file {}; it held no lock.",
                crate::lock::lock_path(&state).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
