use super::error::{self, CommandError, CommandResult, Done};
use super::output::out;
use super::{Loaded, StateArg, load_configuration};
use crate::engine::cycle::SyncOptions;
use crate::plan::build::BuildOptions;
use crate::plan::render;
use crate::state::{MemoryState, StateStore};
use clap::ValueEnum;
use std::collections::BTreeSet;
use std::path::PathBuf;
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
    /// Configuration file or directory (one org). Default: $TETHER_CONFIG, else the current directory.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub group: super::GroupArg,
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
    /// Deletes above this count make apply refuse without --allow-deletes (a saved plan
    /// keeps it: `apply FILE` holds to it).
    #[arg(long, default_value_t = crate::plan::build::DEFAULT_DELETE_THRESHOLD)]
    pub delete_threshold: usize,
    /// Save the plan to FILE; `tether apply FILE` then applies exactly this plan. The file
    /// is signed with a key kept in the state file, so before the first apply (no state
    /// file yet) this creates the state file, empty.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How long a saved plan may be applied, e.g. 30m, 24h.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = super::duration::expiry)]
    pub expires_in: chrono::Duration,
    /// Plan the data of this rep only (repeatable); only their mailboxes are read.
    #[arg(long = "user", value_name = "EMAIL")]
    pub users: Vec<String>,
    /// `--refresh=false`: plan the settings only, reading neither Exchange nor Salesforce.
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub refresh: bool,
}

/// The plan in `format`, for stdout; `detail` lists each record in the human form.
pub fn render_as(
    doc: &crate::plan::document::PlanDocument,
    format: PlanFormat,
    detail: bool,
) -> String {
    match format {
        PlanFormat::Human => super::color::plan(
            &render::human(doc, detail),
            super::color::enabled(super::color::Stream::Stdout),
        ),
        PlanFormat::Markdown => render::markdown(doc),
        PlanFormat::Json => format!("{}\n", render::json(doc)),
    }
}

/// Shows what `apply` would change. Reads only: it writes neither side, and not the state
/// (`--out` creates an empty state file when there is none, to sign the plan with).
pub fn run(args: &Args) -> CommandResult {
    let loaded = load_configuration(&args.paths)?;
    let location = args.state.location(&args.paths, Some(&loaded))?;
    let created = !location.exists().map_err(CommandError::state)?;
    if created && args.out.is_none() {
        // No state yet means a first apply; planning must not create the state file.
        return plan_with(args, &loaded, &MemoryState::new());
    }
    // Planning only reads an existing state, so it works on one it may not write.
    let state = if created {
        location.open()
    } else {
        location.open_read_only()
    }
    .map_err(CommandError::state)?;
    if created {
        let what = if location.file().is_some() {
            "state file"
        } else {
            "state"
        };
        eprintln!(
            "Created the {what} {location} (empty) to sign the saved plan with; `tether apply` needs it."
        );
    }
    plan_with(args, &loaded, &state)
}

fn plan_with<S: StateStore>(args: &Args, loaded: &Loaded, state: &S) -> CommandResult {
    let config = &loaded.config;
    let options = BuildOptions {
        detail: args.detail || args.show_values,
        show_values: args.show_values,
        delete_threshold: args.delete_threshold,
    };
    let users: BTreeSet<String> = args.users.iter().map(|u| u.trim().to_lowercase()).collect();
    let now = chrono::Utc::now();
    let mut planned = if args.refresh {
        let clock = Arc::new(crate::clock::SystemClock);
        let connectors = crate::workflow::open(config, &loaded.home, clock)
            .map_err(|e| error::connect_failed(e, &loaded.settings))?;
        let sync = SyncOptions {
            only_reps: (!users.is_empty()).then(|| users.clone()),
            group_size: args.group.group_size(),
            ..SyncOptions::default()
        };
        super::runtime()
            .block_on(crate::workflow::plan(
                config,
                &connectors,
                state,
                now,
                &sync,
                &options,
            ))
            .map_err(|e| error::plan_failed(e, config, &loaded.settings))?
    } else {
        crate::workflow::plan_settings(config, state, &options).map_err(CommandError::failed)?
    };
    if args.refresh {
        let read = &planned.read;
        for user in &users {
            let known = read.reps.iter().any(|r| &r.email == user)
                || read.problems.iter().any(|p| &p.user.to_lowercase() == user);
            if !known {
                return Err(CommandError::input(format!(
                    "--user {user}: not a member of an active sync configuration of org `{}`",
                    config.org.name
                )));
            }
        }
    }
    planned.document.commit = crate::ci::commit(&loaded.home);
    let doc = &planned.document;
    out!(
        "{}",
        render_as(doc, args.format, args.detail || args.show_values)
    );
    if let Some(out) = &args.out {
        let save = crate::workflow::SaveOptions {
            expires_in: args.expires_in,
            config_paths: super::config_paths(&args.paths)
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            refresh: args.refresh,
            users: users.iter().cloned().collect(),
            delete_threshold: args.delete_threshold,
        };
        crate::workflow::save_plan(out, config, &planned, state, now, &save)
            .map_err(CommandError::failed)?;
        let saved = format!(
            "Saved the plan to {0}; apply it with `tether apply {0}`",
            out.display()
        );
        // Keep machine-readable output on stdout clean.
        match args.format {
            PlanFormat::Human => out!("\n{saved}\n"),
            PlanFormat::Markdown | PlanFormat::Json => eprintln!("{saved}"),
        }
    }
    Ok(if args.detailed_exitcode && !doc.summary.no_changes {
        Done::Changes
    } else {
        Done::Success
    })
}
