//! Command-line interface: one file per subcommand, each thin.

pub mod schema;
pub mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Print a JSON Schema: of the configuration (for editors and CI) or of the JSON plan.
    Schema(schema::Args),
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
    }
}
