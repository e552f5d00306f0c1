//! `tether completions SHELL`: the shell's completion script, generated from the command
//! line's own definition, so it knows every subcommand and flag of this build.

use super::error::{CommandResult, Done};
use super::output::out;
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tether completions bash > /etc/bash_completion.d/tether
  tether completions zsh > \"${fpath[1]}/_tether\"
  tether completions fish > ~/.config/fish/completions/tether.fish")]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: &Args) -> CommandResult {
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut super::Cli::command(),
        "tether",
        &mut script,
    );
    out!("{}", String::from_utf8_lossy(&script));
    Ok(Done::Success)
}
