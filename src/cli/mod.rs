//! Command-line interface: one file per subcommand, each thin.

pub mod schema;
pub mod test_connection;
pub mod validate;

use crate::config::model::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// The one configuration a command works on, validated; findings are printed and `None`
/// returned when it is not valid (or is not exactly one org).
pub fn load_configuration(paths: &[PathBuf]) -> Option<(Config, PathBuf)> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    };
    let validation = crate::config::validate(&paths, true);
    if !validation.is_valid() {
        eprint!("{}", validation.render_human());
        return None;
    }
    let mut configs: Vec<_> = validation
        .units
        .into_iter()
        .filter_map(|(unit, config)| config.map(|c| (c, unit.home)))
        .collect();
    if configs.len() != 1 {
        eprintln!(
            "error: expected one org's configuration, found {}; name the file or directory of one org",
            configs.len()
        );
        return None;
    }
    configs.pop()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    about = "Keeps contacts and calendar events in sync between Microsoft Exchange and Salesforce, with the sync settings kept as code."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check configuration files: YAML syntax, the schema, and the sync rules.
    Validate(validate::Args),
    /// Check the connections: Exchange credentials, impersonation and folders; Salesforce
    /// sign-in, API version, mapped fields and API usage.
    TestConnection(test_connection::Args),
    /// Print a JSON Schema: of the configuration (for editors and CI) or of the JSON plan.
    Schema(schema::Args),
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::TestConnection(args) => test_connection::run(&args),
    }
}
