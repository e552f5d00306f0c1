use super::{StateArg, load_configuration};
use crate::engine::cycle::{SyncOptions, run_cycle};
use crate::engine::execute::StepBudget;
use crate::plan::build::BuildOptions;
use crate::plan::render;
use crate::state::{ConfigRevision, SqliteState, StateChange, StateStore};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory (one org). Default: the current directory.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    /// Apply without asking (required without a terminal, e.g. in CI).
    #[arg(long)]
    pub auto_approve: bool,
    /// Apply even when the plan deletes more records than --delete-threshold.
    #[arg(long)]
    pub allow_deletes: bool,
    #[arg(long, default_value_t = 100)]
    pub delete_threshold: usize,
    /// Override the empty-side guard (a side that suddenly shows no records).
    #[arg(long)]
    pub force: bool,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

/// Plans, shows the plan, asks, records the configuration and syncs. Exits non-zero when
/// anything failed (the failed records are in `tether errors`).
pub fn run(args: &Args) -> ExitCode {
    let Some((config, home)) = load_configuration(&args.paths) else {
        return ExitCode::from(1);
    };
    let state_path = args.state.path(&args.paths);
    let now = chrono::Utc::now();
    let _lock = match crate::lock::acquire(&state_path, "apply", now) {
        Ok(lock) => lock,
        Err(e) => return fail(e),
    };
    let mut state = match SqliteState::open(&state_path) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let connectors =
        match crate::workflow::open(&config, &home, Arc::new(crate::clock::SystemClock)) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
    let runtime = super::runtime();
    let options = SyncOptions {
        force: args.force,
        progress: super::progress::for_stderr(),
        ..SyncOptions::default()
    };
    let build = BuildOptions {
        delete_threshold: args.delete_threshold,
        ..BuildOptions::default()
    };
    let planned = match runtime.block_on(crate::workflow::plan(
        &config,
        &connectors,
        &state,
        now,
        &options,
        &build,
    )) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let doc = &planned.document;
    print!("{}", render::human(doc, false));
    if doc.summary.no_changes {
        return ExitCode::SUCCESS;
    }
    let deletes = doc.summary.salesforce.delete + doc.summary.exchange.delete;
    if deletes > args.delete_threshold && !args.allow_deletes {
        return fail(format!(
            "the plan deletes {deletes} records, more than the threshold of {}; review it, then apply with --allow-deletes",
            args.delete_threshold
        ));
    }
    if !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            return fail("no terminal to confirm on; review the plan and pass --auto-approve");
        }
        print!("\nApply this plan? Only `yes` is accepted: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            println!("Apply cancelled.");
            return ExitCode::from(1);
        }
    }
    let (canonical, hash) = ConfigRevision::canonical(&config);
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown user".into());
    if let Err(e) = state.apply(vec![StateChange::RecordApply {
        canonical,
        hash,
        applied_at: now,
        applied_by: who,
    }]) {
        return fail(e);
    }
    let report = match runtime.block_on(run_cycle(
        &config,
        &connectors.mail,
        &connectors.crm,
        &mut state,
        now,
        &options,
        &mut StepBudget::unlimited(),
    )) {
        Ok(r) => r,
        Err(e) => return fail(crate::workflow::cycle_error(&e)),
    };
    let exec = &report.exec;
    println!(
        "\nApplied: {} records written, {} failed{}.",
        exec.succeeded,
        exec.failed.len(),
        if exec.failed.is_empty() {
            ""
        } else {
            " (see `tether errors`)"
        }
    );
    if exec.failed.is_empty() && report.read.rep_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
