//! Command-line interface: one file per subcommand, each thin.

pub mod apply;
pub mod color;
pub mod completions;
pub mod demo;
mod duration;
pub mod error;
pub mod errors;
pub mod force_unlock;
mod help;
pub mod init;
pub mod logging;
pub mod man;
pub mod output;
pub mod plan;
pub mod progress;
pub mod reset;
pub mod run;
pub mod sandbox;
pub mod schema;
mod service;
pub mod setup;
pub mod show;
pub mod state;
pub mod status;
mod stop;
pub mod test_connection;
pub mod validate;

use crate::config::model::Config;
use clap::{Parser, Subcommand, ValueEnum};
use error::{CommandError, CommandResult, Settings};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// The one configuration a command works on, validated, with where each setting is written.
pub struct Loaded {
    pub config: Config,
    /// Where `${file:…}` references are resolved from.
    pub home: PathBuf,
    pub settings: Settings,
}

/// The configuration paths a command was given; none: `$TETHER_CONFIG` (one path), else the
/// current directory.
pub fn config_paths(given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    match std::env::var_os("TETHER_CONFIG").filter(|v| !v.is_empty()) {
        Some(path) => vec![PathBuf::from(path)],
        None => vec![PathBuf::from(".")],
    }
}

/// The one configuration a command works on; its findings are the error when it is not
/// valid (or is not exactly one org).
pub fn load_configuration(paths: &[PathBuf]) -> Result<Loaded, CommandError> {
    load_configuration_checking(paths, true)
}

/// [`load_configuration`]; with `secrets_needed` false, a secret that cannot be read here
/// is a warning, for commands that connect nowhere.
pub fn load_configuration_checking(
    paths: &[PathBuf],
    secrets_needed: bool,
) -> Result<Loaded, CommandError> {
    let paths = config_paths(paths);
    let mut validation = crate::config::validate(&paths, secrets_needed);
    if !validation.is_valid() {
        return Err(CommandError::findings(validation.render_human()));
    }
    let typed: Vec<usize> = (0..validation.units.len())
        .filter(|&i| validation.units[i].1.is_some())
        .collect();
    let [unit] = typed[..] else {
        return Err(CommandError::input(format!(
            "expected one org's configuration, found {}",
            typed.len()
        ))
        .hint("name the file or directory of one org"));
    };
    let config = validation.units[unit].1.take().expect("typed");
    let home = validation.units[unit].0.home.clone();
    Ok(Loaded {
        config,
        home,
        settings: Settings::new(validation, unit),
    })
}

/// `--state`: where the state is; default `$TETHER_STATE`, the configuration's `state:`
/// setting, or `.tether/state.db` next to the configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArg {
    /// The state: a file, or a Postgres database as
    /// postgres://USER@HOST:PORT/DATABASE?schema=NAME (the password from PGPASSWORD or the
    /// configuration's `state:` setting). Default: $TETHER_STATE, the configuration's
    /// `state:`, or `.tether/state.db` in the configuration's directory.
    #[arg(long = "state", value_name = "FILE|URL")]
    pub file: Option<String>,
}

impl StateArg {
    /// `--state`, else `TETHER_STATE`.
    fn given(&self) -> Option<String> {
        self.file
            .clone()
            .or_else(|| std::env::var("TETHER_STATE").ok())
            .filter(|s| !s.is_empty())
    }

    /// Where the state is, for the configuration `loaded` (its `state:` setting and its
    /// org's schema) when the command has one.
    pub fn location(
        &self,
        config_paths: &[PathBuf],
        loaded: Option<&Loaded>,
    ) -> Result<crate::state::StateLocation, CommandError> {
        crate::state::StateLocation::resolve(
            self.given().as_deref(),
            loaded.map(|l| (&l.config, l.home.as_path())),
            Self::default_file(config_paths),
        )
        .map_err(CommandError::state)
    }

    /// `.tether/state.db` in the configuration's directory.
    fn default_file(config_paths: &[PathBuf]) -> PathBuf {
        let first = self::config_paths(config_paths)
            .first()
            .cloned()
            .unwrap_or_default();
        let home = if first.is_file() {
            first.parent().map(PathBuf::from).unwrap_or_default()
        } else {
            first
        };
        home.join(".tether").join("state.db")
    }
}

/// `--lock-timeout`: how long `apply`, `run` and `reset` wait for another tether's cycle to
/// finish.
#[derive(Debug, Clone, clap::Args)]
pub struct LockArg {
    /// How long to wait for the state lock while another apply or run cycle holds it, e.g.
    /// 0s (fail at once), 30s, 5m.
    #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "5m", value_parser = duration::timeout)]
    pub lock_timeout: std::time::Duration,
}

/// `--reps-per-group`: how many reps a cycle reads, plans and executes at a time.
#[derive(Debug, Clone, clap::Args)]
pub struct GroupArg {
    /// Reps read, planned and synced at a time: memory follows this, not the org's size
    /// [default: 50]. Salesforce's org-wide changes are read once per cycle whatever it is.
    #[arg(long = "reps-per-group", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reps_per_group: Option<u32>,
}

impl GroupArg {
    pub fn group_size(&self) -> Option<usize> {
        self.reps_per_group.map(|n| n as usize)
    }
}

/// Takes the state lock for `operation`, waiting up to `timeout` for another holder and
/// saying on stderr whom it waits for; returns it with the time waited. `stop` gives up the
/// wait (SIGTERM).
fn wait_for_lock<L: crate::lock::Locks>(
    locks: &L,
    operation: &str,
    timeout: std::time::Duration,
    stop: &dyn Fn() -> bool,
) -> Result<(L::Held, std::time::Duration), crate::lock::LockError> {
    use crate::lock::HeldLock as _;
    let waiting = &mut |held: &crate::lock::LockInfo| {
        tracing::info!(holder = %held, "waiting for the state lock");
        eprintln!(
            "waiting up to {} for the state lock, held by {held}",
            crate::lock::span(timeout)
        );
    };
    let (lock, waited) = crate::lock::wait_for(
        locks,
        operation,
        crate::lock::Wait {
            timeout,
            waiting,
            stop,
        },
    )?;
    if let Some(note) = lock.takeover_note() {
        eprintln!("{note}");
    }
    Ok((lock, waited))
}

/// Takes the state lock for `operation`, saying on stderr when it took over the lock of a
/// holder that is gone.
fn lock_state(
    state: &crate::state::StateLocation,
    operation: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::state::StateLockGuard, crate::lock::LockError> {
    use crate::lock::HeldLock as _;
    let lock = state.lock(operation, now)?;
    if let Some(note) = lock.takeover_note() {
        eprintln!("{note}");
    }
    Ok(lock)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

/// The exit codes, as README's table lists them.
pub const EXIT_CODES: &str = "Exit codes:
  0  done, nothing wrong (plan --detailed-exitcode: no changes; apply and run: also a stop
     on request)
  1  an error (configuration, command line, connection, state, lock, saved plan), or problems
     found: validate errors, apply (and run --once) records failed or reps not synced, apply
     not confirmed, a lock still held after --lock-timeout, force-unlock refused, status a
     check failing or failed records, errors records failing (status and errors:
     --exit-zero keeps 0)
  2  plan --detailed-exitcode: there are changes; or the command line could not be parsed";

/// `--version`: the package version, the commit and the build date (see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TETHER_GIT_COMMIT"),
    ", built ",
    env!("TETHER_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version = VERSION,
    about = "Keeps contacts and calendar events in sync between Microsoft Exchange and Salesforce, with the sync settings kept as code.",
    after_help = format!("{}\n\n{EXIT_CODES}", help::ENVIRONMENT)
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Also append the log to FILE (default level info; RUST_LOG sets it). Default:
    /// $TETHER_LOG_FILE. The log on stderr shows warnings unless RUST_LOG says otherwise.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// How the log is written: human (text lines) or json (one object per line, for a log
    /// collector).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Human)]
    pub log_format: logging::LogFormat,
    /// Colour the plan and the diagnostics: auto (on a terminal, unless NO_COLOR is set to
    /// anything), always, or never.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    pub color: color::ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check configuration files: YAML syntax, the schema, and the sync rules.
    Validate(validate::Args),
    /// Scaffold a GitOps repository: an org folder, schemas, .gitignore, CI workflow, README
    /// (`--from-lightning-sync CSV` writes the sync configurations from Lightning Sync's).
    Init(init::Args),
    /// Run the whole loop on the built-in sandbox (no accounts needed).
    Demo(demo::Args),
    /// Start a local Exchange and Salesforce with a generated org, kept between runs, to try
    /// tether by hand (see examples/quickstart.yaml).
    Sandbox(sandbox::Args),
    /// Show what apply would change, in the settings and in the data.
    #[command(after_help = help::PLAN_EXAMPLES)]
    Plan(plan::Args),
    /// Print a plan saved by `plan --out` (human, markdown or JSON, as `plan` prints it).
    Show(show::Args),
    /// Plan, confirm, record the configuration and sync; or apply a plan saved by `plan --out`.
    #[command(after_help = help::APPLY_EXAMPLES)]
    Apply(apply::Args),
    /// Keep syncing on an interval, with the last applied configuration.
    #[command(after_help = help::RUN_EXAMPLES)]
    Run(run::Args),
    /// The sync status of the system and of each rep, per object and direction.
    Status(status::Args),
    /// The error report: one row per failed record, with what to do.
    Errors(errors::Args),
    /// Mark reps for reset: their next sync re-links records by matching, never duplicating.
    Reset(reset::Args),
    /// Check the connections: Exchange credentials, impersonation and folders; Salesforce
    /// sign-in, API version, mapped fields and API usage.
    TestConnection(test_connection::Args),
    /// Release the state lock left by an apply or run that is gone.
    ForceUnlock(force_unlock::Args),
    /// Work on the state itself: `tether state migrate --from FILE --to URL` copies it.
    State(state::Args),
    /// Print what an administrator runs to give tether access: `setup exchange` writes the
    /// PowerShell that limits the app (or service account) to the configured reps' mailboxes.
    Setup(setup::Args),
    /// Print a JSON Schema: of the configuration (for editors and CI) or of the JSON plan.
    Schema(schema::Args),
    /// Print the shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::Args),
    /// Print the manual page (roff), or write one per command with --out DIR.
    Man(man::Args),
}

/// Runs the command; `main` prints the error, if any, and exits with the code.
pub fn run(cli: Cli) -> CommandResult {
    color::set(cli.color);
    logging::init(
        logging::log_file(cli.log_file.as_deref()).as_deref(),
        cli.log_format,
    )
    .map_err(CommandError::input)?;
    tracing::debug!(version = VERSION, "tether starts");
    let done = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Sandbox(args) => sandbox::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Show(args) => show::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Errors(args) => errors::run(&args),
        Command::Reset(args) => reset::run(&args),
        Command::TestConnection(args) => test_connection::run(&args),
        Command::ForceUnlock(args) => force_unlock::run(&args),
        Command::State(args) => state::run(&args),
        Command::Setup(args) => setup::run(&args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }?;
    match output::failure() {
        Some(e) => Err(CommandError::failed(e)),
        None => Ok(done),
    }
}
