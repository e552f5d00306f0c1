//! `tether state migrate`: copies a state between an SQLite file and Postgres (either way),
//! with both locked, and proves the copy by reading it back (`state::copy_state`).

use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use crate::state::{StateLocation, StateStore, copy_state};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Copy a state into another, e.g. an SQLite file into Postgres (or back), verified
    /// table by table (row counts and SHA-256). The source is not changed.
    Migrate(MigrateArgs),
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The state to copy: a file, or postgres://USER@HOST:PORT/DATABASE?schema=NAME.
    #[arg(long, value_name = "FILE|URL")]
    pub from: String,
    /// Where to copy it: a file or a Postgres URL. Without ?schema=, the schema of the org
    /// the source last applied (`tether_` and its name).
    #[arg(long, value_name = "FILE|URL")]
    pub to: String,
    /// Replace what the target holds (refused otherwise when it holds anything).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &Args) -> CommandResult {
    let StateCommand::Migrate(args) = &args.command;
    let from = location(&args.from)?;
    if !from.exists().map_err(CommandError::state)? {
        return Err(CommandError::state(format!("no state at {from} to copy"))
            .hint("check --from: a state file, or a Postgres URL with its schema"));
    }
    let now = chrono::Utc::now();
    // Nobody writes the source while it is read, nor the target while it is written.
    let _from_lock = super::lock_state(&from, "state migrate", now).map_err(CommandError::state)?;
    let source = from.open_read_only().map_err(CommandError::state)?;
    let to = match location(&args.to)? {
        StateLocation::Postgres(target) if target.schema().is_none() => {
            let org = applied_org(&*source).ok_or_else(|| {
                CommandError::input(format!(
                    "{target} names no schema, and the source has no applied configuration to \
                     take the org's from"
                ))
                .hint("add ?schema=NAME to --to")
            })?;
            StateLocation::Postgres(Box::new(target.or_schema_of_org(&org)))
        }
        to => to,
    };
    let _to_lock = super::lock_state(&to, "state migrate", now).map_err(CommandError::state)?;
    let mut target = to.open().map_err(CommandError::state)?;
    let tables = copy_state(&*source, &mut *target, args.force).map_err(CommandError::state)?;
    outln!("Copied the state {from} into {to}:");
    for (table, rows, sha) in &tables {
        outln!("  {table:<14} {rows:>8} rows  sha256 {}", &sha[..16]);
    }
    let rows: usize = tables.iter().map(|(_, n, _)| n).sum();
    outln!(
        "{rows} rows in {} tables; read back, every table's row count and SHA-256 match the source.",
        tables.len()
    );
    Ok(Done::Success)
}

fn location(text: &str) -> Result<StateLocation, CommandError> {
    StateLocation::resolve(Some(text), None, PathBuf::from(text)).map_err(CommandError::state)
}

/// The org of the source's last applied configuration.
fn applied_org(state: &dyn StateStore) -> Option<String> {
    let revision = state.latest_revision().ok()??;
    let canonical: serde_json::Value = serde_json::from_str(&revision.canonical).ok()?;
    canonical
        .pointer("/org/name")
        .and_then(|n| n.as_str())
        .map(String::from)
}
