//! `tether sandbox`: a local Exchange and Salesforce with a generated org, for trying tether
//! by hand with `examples/quickstart.yaml`. The org is kept in the data directory between
//! runs (saved a moment after each change and on Ctrl-C / SIGTERM); `--reset` seeds anew.

use super::error::{CommandError, CommandResult, Done};
use super::output::outln;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tether_emulators::generate::{Shape, Summary};
use tether_emulators::persist;
use tether_emulators::seed::{self, SandboxOrg};

/// Records per rep of a generated sandbox org (see `tether_emulators::generate`).
const CONTACTS_PER_REP: usize = 10;
const EVENTS_PER_REP: usize = 10;
const DEFAULT_REPS: usize = 10;
const DEFAULT_SEED: u64 = 1;
/// How often the sandbox checks for changes to save.
const SAVE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the sandbox keeps its org and `sandbox.env`.
    #[arg(long, value_name = "DIR", default_value = ".tether-sandbox")]
    pub data: PathBuf,
    /// Sales reps in a newly seeded org (at least 2) [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub reps: Option<u32>,
    /// Seed of the generated org: the same seed gives the same people and meetings [default: 1].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Discard the saved org and seed a new one.
    #[arg(long)]
    pub reset: bool,
    /// Port of the Exchange (EWS) emulator on 127.0.0.1.
    #[arg(long, value_name = "PORT", default_value_t = seed::EWS_PORT)]
    pub exchange_port: u16,
    /// Port of the Salesforce emulator on 127.0.0.1.
    #[arg(long, value_name = "PORT", default_value_t = seed::SALESFORCE_PORT)]
    pub salesforce_port: u16,
}

pub fn run(args: &Args) -> CommandResult {
    super::runtime()
        .block_on(serve(args))
        .map_err(CommandError::failed)?;
    Ok(Done::Success)
}

async fn serve(args: &Args) -> Result<(), String> {
    let dir = &args.data;
    create_private_dir(dir)?;
    let saved = if args.reset {
        None
    } else {
        persist::load(dir)?
    };
    let mut org = seed::start_empty(args.exchange_port, args.salesforce_port).await?;
    let (shape, summary) = match saved {
        Some(saved) => {
            let (shape, summary) = (saved.shape, saved.summary.clone());
            org.restore(saved);
            outln!(
                "Restored the org saved in {} ({} reps, seed {}).",
                dir.display(),
                shape.reps,
                shape.seed
            );
            let asked = Shape {
                reps: args.reps.map_or(shape.reps, |n| n as usize),
                seed: args.seed.unwrap_or(shape.seed),
                ..shape
            };
            if asked != shape {
                outln!(
                    "note: --reps/--seed apply to a new org only; add --reset to replace this one."
                );
            }
            (shape, summary)
        }
        None => {
            let shape = Shape {
                reps: args.reps.map_or(DEFAULT_REPS, |n| n as usize),
                contacts_per_rep: CONTACTS_PER_REP,
                events_per_rep: EVENTS_PER_REP,
                seed: args.seed.unwrap_or(DEFAULT_SEED),
            };
            let summary = org.seed(&shape, chrono::Utc::now())?;
            persist::save(dir, &org.snapshot(shape, summary.clone()))?;
            outln!(
                "Seeded a new org ({} reps, seed {}) in {}.",
                shape.reps,
                shape.seed,
                dir.display()
            );
            (shape, summary)
        }
    };
    let env = environment(&org);
    let env_file = write_env(dir, &env)?;
    let reps = tether_emulators::generate::reps(&shape);
    let reps_file = write_reps(dir, &reps)?;
    let config = quickstart_for(args, &org)?;
    print_banner(&org, &summary, &env_file, &env);
    print_reps(&reps, &reps_file);
    print_try(args, &env_file, &config);

    let mut last_activity = activity(&org);
    let mut tick = tokio::time::interval(SAVE_EVERY);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = activity(&org);
                if now != last_activity {
                    // Save what clients changed; a failed save is retried on the next tick.
                    match persist::save(dir, &org.snapshot(shape, summary.clone())) {
                        Ok(()) => last_activity = now,
                        Err(e) => eprintln!("warning: {e}"),
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    persist::save(dir, &org.snapshot(shape, summary))?;
    outln!("Saved the org in {}; stopped.", dir.display());
    Ok(())
}

/// Requests served by both emulators: any request may have changed the org, so a new count
/// means there is something to save (an extra save after a read costs little).
fn activity(org: &SandboxOrg) -> u64 {
    org.exchange.all_calls().values().sum::<u64>() + org.salesforce.handle().served_total()
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))
}

/// The variables `examples/quickstart.yaml` reads, then the Graph face's (GRAPH_URL, …,
/// and the two users Exchange does not let tether reach).
fn environment(org: &SandboxOrg) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = seed::ENV
        .iter()
        .map(|(name, value)| (*name, value.to_string()))
        .collect();
    env.extend(org.graph_env());
    env
}

/// `DIR/sandbox.env`: the variables `examples/quickstart.yaml` reads, for `source`. The
/// values are the emulators' own credentials, but the file is private all the same (0600).
fn write_env(dir: &Path, env: &[(&'static str, String)]) -> Result<PathBuf, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("sandbox.env");
    let mut body = String::from(
        "# tether sandbox: the local emulators' credentials, read by examples/quickstart.yaml and\n\
         # examples/exchange-online.yaml, and the two users tether cannot reach through Exchange.\n",
    );
    for (name, value) in env {
        body.push_str(&format!("export {name}={value}\n"));
    }
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        // An existing file keeps its mode on open: make it private too.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        f.write_all(body.as_bytes())
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn print_banner(org: &SandboxOrg, s: &Summary, env_file: &Path, env: &[(&'static str, String)]) {
    outln!();
    outln!(
        "  Exchange (EWS)  {}   service account {}",
        org.exchange.ews_url(),
        seed::SERVICE_ACCOUNT
    );
    outln!(
        "  Exchange Online (Graph)  {}   token URL {}   app {}",
        org.exchange.graph_url(),
        org.exchange.graph_token_url(),
        seed::GRAPH_CLIENT_ID
    );
    outln!(
        "  Salesforce      {}   connected app {} (client credentials)",
        org.salesforce.url(),
        seed::CLIENT_ID
    );
    outln!(
        "  Org: {} reps (every fifth a Sales Manager); {} accounts, {} contacts and {} leads in Salesforce, {} Salesforce events;",
        s.reps,
        s.accounts,
        s.salesforce_contacts,
        s.leads,
        s.salesforce_events
    );
    outln!(
        "       in the mailboxes {} contacts in Salesforce_Sync ({} also in Salesforce), {} personal contacts, and {} calendar items",
        s.sync_folder_contacts,
        s.matched_contacts,
        s.personal_contacts,
        s.exchange_events()
    );
    outln!(
        "       ({} meetings, {} all-day, {} weekly series, {} private, {} past); plus the demo's records for Celia and Omar.",
        s.meetings,
        s.all_day_events,
        s.series,
        s.private_events,
        s.past_events
    );
    outln!(
        "  Two Salesforce users Exchange does not let tether reach (members in examples/exchange-online.yaml):"
    );
    outln!(
        "       {} (GRAPH_OUT_OF_SCOPE_USER): a mailbox outside the app's scope (Marketing, not Sales);",
        seed::OUT_OF_SCOPE_USER.0
    );
    outln!(
        "       {} (GRAPH_NO_MAILBOX_USER): no Exchange Online mailbox.",
        seed::NO_MAILBOX_USER.0
    );
    outln!();
    outln!(
        "Environment for examples/quickstart.yaml and examples/exchange-online.yaml (also in {}):",
        env_file.display()
    );
    for (name, value) in env {
        outln!("  export {name}={value}");
    }
}

/// The generated reps, a line each (the first 12; all of them in `reps.csv`).
fn print_reps(reps: &[tether_emulators::generate::Rep], file: &Path) {
    const SHOWN: usize = 12;
    outln!();
    outln!(
        "Reps (email, profile, time zone); examples/quickstart.yaml syncs every Sales User{}:",
        if reps.len() > SHOWN {
            format!(", all {} listed in {}", reps.len(), file.display())
        } else {
            format!(" (also in {})", file.display())
        }
    );
    for rep in reps.iter().take(SHOWN) {
        outln!("  {:<36} {:<14} {}", rep.email, rep.profile, rep.time_zone);
    }
    if reps.len() > SHOWN {
        outln!("  … and {} more", reps.len() - SHOWN);
    }
}

/// `DIR/reps.csv`: every rep of the org, `email,name,profile,time_zone`.
fn write_reps(dir: &Path, reps: &[tether_emulators::generate::Rep]) -> Result<PathBuf, String> {
    let path = dir.join("reps.csv");
    let mut body = String::from("email,name,profile,time_zone\n");
    for rep in reps {
        body.push_str(&format!(
            "{},{},{},{}\n",
            rep.email, rep.name, rep.profile, rep.time_zone
        ));
    }
    std::fs::write(&path, body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The configuration the banner's "Try:" names: examples/quickstart.yaml, or on other
/// ports than its own a copy pointed at these, written as `DIR/quickstart.yaml` (anew at
/// each start, since the ports may change).
fn quickstart_for(args: &Args, org: &SandboxOrg) -> Result<PathBuf, String> {
    const EXAMPLE: &str = include_str!("../../examples/quickstart.yaml");
    if (args.exchange_port, args.salesforce_port) == (seed::EWS_PORT, seed::SALESFORCE_PORT) {
        return Ok(PathBuf::from("examples/quickstart.yaml"));
    }
    let ews = format!("127.0.0.1:{}", seed::EWS_PORT);
    let salesforce = format!("127.0.0.1:{}", seed::SALESFORCE_PORT);
    let host = |url: String| {
        url::Url::parse(&url)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port()?)))
            .unwrap_or(url)
    };
    let body: String = EXAMPLE
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!(
        "# examples/quickstart.yaml pointed at this sandbox's ports; `tether sandbox` writes it\n\
         # anew at each start on other ports than the example's.\n{}",
        body.replace(&ews, &host(org.exchange.ews_url()))
            .replace(&salesforce, &host(org.salesforce.url().to_string()))
    );
    let path = args.data.join("quickstart.yaml");
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn print_try(args: &Args, env_file: &Path, config: &Path) {
    outln!();
    outln!(
        "Try:  source {} && tether plan {}",
        env_file.display(),
        config.display()
    );
    outln!(
        "Ready. Ctrl-C stops the sandbox; the org stays in {} (--reset starts over).",
        args.data.display()
    );
}
