//! `tether show PLANFILE`: a plan saved by `plan --out`, in any of plan's formats (as
//! `terraform show` does), e.g. for the pull-request comment of the plan CI will apply.

use super::error::{CommandError, CommandResult, Done};
use super::output::out;
use super::plan::{PlanFormat, render_as};
use crate::plan::document::PlanDocument;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A plan file written by `tether plan --out`.
    pub plan: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub format: PlanFormat,
    /// List each record and the fields that change (the human form; a saved plan keeps ids
    /// and field names, never values).
    #[arg(long)]
    pub detail: bool,
}

/// Prints the saved plan as `tether plan` printed it. Reads only the file: its signature is
/// checked by `apply`, against the state.
pub fn run(args: &Args) -> CommandResult {
    let path = args.plan.display();
    let saved = crate::plan::file::peek(&args.plan)
        .map_err(|e| CommandError::input(e.to_string()))?
        .ok_or_else(|| {
            CommandError::input(format!("{path} is not a tether plan file"))
                .hint("write one with `tether plan --out FILE`")
        })?;
    let doc: PlanDocument = serde_json::from_value(saved.document).map_err(|e| {
        CommandError::input(format!("the plan in {path} cannot be read: {e}"))
            .hint("make the plan again with `tether plan --out FILE`")
    })?;
    out!("{}", render_as(&doc, args.format, args.detail));
    Ok(Done::Success)
}
