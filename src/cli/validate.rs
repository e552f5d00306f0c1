use super::error::{CommandResult, Done};
use super::output::out;
use clap::ValueEnum;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum ValidateFormat {
    /// file:line:column findings with the source line and a hint.
    #[default]
    Human,
    /// A versioned report (`format_version`), for tools.
    Json,
    /// GitHub Actions workflow commands: each finding an annotation on its line.
    Github,
    /// A SARIF 2.1.0 log, for code-scanning tools.
    Sarif,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration files or directories. Several are checked together (e.g. a sandbox and
    /// a production org). Default: $TETHER_CONFIG, else the current directory.
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: ValidateFormat,
    /// Treat unset environment variables and missing secret files as errors.
    #[arg(long)]
    pub strict: bool,
}

/// Exit 0 when valid (warnings allowed), 1 when not.
pub fn run(args: &Args) -> CommandResult {
    let paths = super::config_paths(&args.paths);
    let validation = crate::config::validate(&paths, args.strict);
    let report = match args.format {
        ValidateFormat::Human => super::color::diagnostics(
            &validation.render_human(),
            super::color::enabled(super::color::Stream::Stdout),
        ),
        ValidateFormat::Json => format!("{}\n", validation.render_json()),
        ValidateFormat::Github => validation.render_github(),
        ValidateFormat::Sarif => format!("{}\n", validation.render_sarif()),
    };
    out!("{report}");
    Ok(if validation.is_valid() {
        Done::Success
    } else {
        Done::Problems
    })
}
