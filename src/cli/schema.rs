use super::error::{CommandResult, Done};
use super::output::out;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Which {
    /// The configuration files (schemas/tether.schema.json).
    #[default]
    Config,
    /// One file of a multi-file configuration, without `org`: only sync configurations,
    /// only connections, ... (schemas/tether-fragment.schema.json).
    Fragment,
    /// `tether plan --format json` output (schemas/plan.schema.json).
    Plan,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum, default_value_t)]
    pub which: Which,
}

pub fn run(args: &Args) -> CommandResult {
    match args.which {
        Which::Config => out!("{}", crate::config::schema::schema_text()),
        Which::Fragment => out!("{}", crate::config::schema::fragment_schema_text()),
        Which::Plan => out!("{}", crate::plan::document::schema_text()),
    }
    Ok(Done::Success)
}
