use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match tether::cli::run(tether::cli::Cli::parse()) {
        Ok(done) => done.into(),
        // The one place an error is printed.
        Err(e) => {
            let on = tether::cli::color::enabled(tether::cli::color::Stream::Stderr);
            eprint!("{}", tether::cli::color::diagnostics(&e.to_string(), on));
            e.exit_code()
        }
    }
}
