//! `tether man`: the manual page (roff), generated from the command line's own definition.

use super::error::{CommandError, CommandResult, Done};
use super::output::out;
use clap::CommandFactory;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tether man | man -l -
  tether man --out /usr/local/share/man/man1")]
pub struct Args {
    /// Write tether.1 and a page per subcommand (tether-plan.1, …) into DIR instead of
    /// printing tether.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &Args) -> CommandResult {
    let command = super::Cli::command();
    match &args.out {
        Some(dir) => clap_mangen::generate_to(command, dir).map_err(|e| {
            CommandError::input(format!("cannot write the man pages into {}", dir.display()))
                .caused_by(e)
                .hint("name an existing directory you can write to")
        })?,
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| CommandError::failed(format!("cannot render the man page: {e}")))?;
            out!("{}", String::from_utf8_lossy(&page));
        }
    }
    Ok(Done::Success)
}
