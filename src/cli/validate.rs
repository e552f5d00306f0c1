use super::Format;
use super::error::{CommandResult, Done};
use super::output::out;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration files or directories. Several are checked together (e.g. a sandbox and
    /// a production org). Default: the current directory.
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Treat unset environment variables and missing secret files as errors.
    #[arg(long)]
    pub strict: bool,
}

/// Exit 0 when valid (warnings allowed), 1 when not.
pub fn run(args: &Args) -> CommandResult {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let validation = crate::config::validate(&paths, args.strict);
    let report = match args.format {
        Format::Human => validation.render_human(),
        Format::Json => format!("{}\n", validation.render_json()),
    };
    out!("{report}");
    Ok(if validation.is_valid() {
        Done::Success
    } else {
        Done::Problems
    })
}
