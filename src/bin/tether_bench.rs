//! `tether-bench`: measures sync speed, API calls and memory on a generated org in the
//! in-process emulators (see `tether::bench`), prints a table and writes JSON.
//!
//!     cargo run --release --bin tether-bench -- --reps 1000 --out /tmp/results.json

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tether-bench",
    about = "Benchmark tether against the local emulators: initial sync, a no-change cycle, plan, and an incremental cycle."
)]
struct Args {
    /// The Exchange face to sync through: EWS, or Microsoft Graph.
    #[arg(long, value_enum, default_value_t = Api::Ews)]
    api: Api,
    /// Sales reps (every rep syncs).
    #[arg(long, default_value_t = 500)]
    reps: usize,
    /// Contacts per rep (Salesforce, Outlook and both; see tether_emulators::generate).
    #[arg(long, default_value_t = 100)]
    contacts: usize,
    /// Calendar items per rep (both sides, every kind).
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// Seed of the generated org.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of synced records changed on each side for the incremental cycle, in percent.
    #[arg(long, default_value_t = 1.0)]
    change_percent: f64,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Api {
    Ews,
    Graph,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let params = tether::bench::Params {
        api: match args.api {
            Api::Ews => tether::bench::Api::Ews,
            Api::Graph => tether::bench::Api::Graph,
        },
        reps: args.reps,
        contacts_per_rep: args.contacts,
        events_per_rep: args.events,
        seed: args.seed,
        change_percent: args.change_percent,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let progress = |step: &str| eprintln!("tether-bench: {step}…");
    match runtime.block_on(tether::bench::run(&params, &progress)) {
        Ok(report) => {
            print!("{}", tether::bench::table(&report));
            if let Err(e) = tether::bench::write_json(&report, &args.out) {
                eprintln!("error: cannot write the report: {e}");
                return ExitCode::from(1);
            }
            println!("\nReport written to {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
