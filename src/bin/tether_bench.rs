//! `tether-bench`: measures sync speed, API calls and memory on a generated org in the
//! local emulators (see `tether::bench`), prints a table and writes JSON; `--sweep` does so
//! at several org sizes and fits how each figure grows.
//!
//!     cargo run --release --bin tether-bench -- --reps 1000 --out /tmp/results.json
//!     cargo run --release --bin tether-bench -- --sweep 20,50,100 --out /tmp/sweep.json

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tether::bench::emulators::Placement;

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
    /// Where the emulators run: in a process of their own (tether's CPU and memory are
    /// then measured apart from theirs), or in the benchmark's process.
    #[arg(long, value_enum, default_value_t = Placement::SeparateProcess)]
    emulators: Placement,
    /// Run at each of these numbers of reps (e.g. 50,100,200,500,1000), each in a process
    /// of its own, and fit how each figure grows; --reps is then ignored.
    #[arg(long, value_delimiter = ',', value_name = "REPS,…")]
    sweep: Option<Vec<usize>>,
    /// Where to write the JSON report (a sweep's: every size's report and the fits).
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    /// Serve the emulators for a benchmark run (its child process; see `tether::bench`).
    #[arg(long, hide = true)]
    serve_emulators: bool,
}

impl Args {
    /// Every flag a sweep passes on to each size's run (all but --reps, --out, --sweep).
    fn per_size(&self) -> Vec<String> {
        let api = match self.api {
            Api::Ews => "ews",
            Api::Graph => "graph",
        };
        let emulators = self
            .emulators
            .to_possible_value()
            .map_or(String::new(), |v| v.get_name().to_string());
        [
            ("--api", api.to_string()),
            ("--contacts", self.contacts.to_string()),
            ("--events", self.events.to_string()),
            ("--seed", self.seed.to_string()),
            ("--change-percent", self.change_percent.to_string()),
            ("--emulators", emulators),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Api {
    Ews,
    Graph,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let progress = |step: &str| eprintln!("tether-bench: {step}…");
    if args.serve_emulators {
        let shape = tether_emulators::generate::Shape {
            reps: args.reps.max(1),
            contacts_per_rep: args.contacts,
            events_per_rep: args.events,
            seed: args.seed,
        };
        return match tether::bench::emulators::serve(&shape) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: the emulators' process: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(sizes) = &args.sweep {
        return sweep(&args, sizes, &progress);
    }
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
        emulators: args.emulators,
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

/// Each size in a run of its own, then the table and the fits.
fn sweep(args: &Args, sizes: &[usize], progress: &dyn Fn(&str)) -> ExitCode {
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    };
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot find the benchmark's own program: {e}")),
    };
    let dir = std::env::temp_dir().join(format!("tether-bench-sweep-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("cannot create {}: {e}", dir.display()));
    }
    let swept = tether::bench::sweep::run(&program, sizes, &args.per_size(), &dir, progress);
    let _ = std::fs::remove_dir_all(&dir);
    match swept {
        Ok(sweep) => {
            print!("{}", tether::bench::sweep::table(&sweep));
            if let Err(e) = tether::bench::write_json(&sweep, &args.out) {
                return fail(format!("cannot write the report: {e}"));
            }
            println!("\nReport written to {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
