use super::{StateArg, load_configuration};
use crate::engine::cycle::SyncOptions;
use crate::plan::build::BuildOptions;
use crate::plan::render;
use crate::state::{MemoryState, SqliteState};
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum PlanFormat {
    #[default]
    Human,
    Markdown,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory (one org). Default: the current directory.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    #[arg(long, value_enum, default_value_t)]
    pub format: PlanFormat,
    /// List each record and the fields that change (ids and field names only).
    #[arg(long)]
    pub detail: bool,
    /// With the record list, show the values before and after. Record contents (names,
    /// emails, subjects) are personal data: mind where the plan goes. Implies --detail.
    #[arg(long)]
    pub show_values: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Deletes above this count make apply refuse without --allow-deletes.
    #[arg(long, default_value_t = 100)]
    pub delete_threshold: usize,
}

/// Shows what `apply` would change. Reads only: it writes neither the state nor either side.
pub fn run(args: &Args) -> ExitCode {
    let Some((config, home)) = load_configuration(&args.paths) else {
        return ExitCode::from(1);
    };
    let state_path = args.state.path(&args.paths);
    let clock = Arc::new(crate::clock::SystemClock);
    let connectors = match crate::workflow::open(&config, &home, clock) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let options = BuildOptions {
        detail: args.detail || args.show_values,
        show_values: args.show_values,
        delete_threshold: args.delete_threshold,
    };
    let now = chrono::Utc::now();
    let runtime = super::runtime();
    // No state yet means a first apply; planning must not create the state file.
    let planned = if state_path.exists() {
        match SqliteState::open(&state_path) {
            Ok(state) => runtime.block_on(crate::workflow::plan(
                &config,
                &connectors,
                &state,
                now,
                &SyncOptions::default(),
                &options,
            )),
            Err(e) => Err(e.to_string()),
        }
    } else {
        let state = MemoryState::new();
        runtime.block_on(crate::workflow::plan(
            &config,
            &connectors,
            &state,
            now,
            &SyncOptions::default(),
            &options,
        ))
    };
    let planned = match planned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let doc = &planned.document;
    match args.format {
        PlanFormat::Human => print!("{}", render::human(doc, args.detail || args.show_values)),
        PlanFormat::Markdown => print!("{}", render::markdown(doc)),
        PlanFormat::Json => println!("{}", render::json(doc)),
    }
    if args.detailed_exitcode && !doc.summary.no_changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
