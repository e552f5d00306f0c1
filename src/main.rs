use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    tether::cli::run(tether::cli::Cli::parse())
}
