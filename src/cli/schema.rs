use std::process::ExitCode;

pub fn run() -> ExitCode {
    print!("{}", crate::config::schema::schema_text());
    ExitCode::SUCCESS
}
