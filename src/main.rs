use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match tether::cli::run(tether::cli::Cli::parse()) {
        Ok(done) => done.into(),
        // The one place an error is printed.
        Err(e) => {
            eprint!("{e}");
            e.exit_code()
        }
    }
}
