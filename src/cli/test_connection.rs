use super::error::{CommandResult, Done};
use super::output::outln;
use super::{Format, load_configuration};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory (one org). Default: $TETHER_CONFIG, else the current directory.
    pub paths: Vec<PathBuf>,
    /// Test impersonation and folders of this rep's mailbox (default: the first user listed
    /// in an active configuration).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Exit 0 when every check passed, 1 otherwise.
pub fn run(args: &Args) -> CommandResult {
    let super::Loaded { config, home, .. } = load_configuration(&args.paths)?;
    let runtime = super::runtime();
    let checks = runtime.block_on(crate::checks::run(
        &config,
        &home,
        args.user.as_deref(),
        Arc::new(crate::clock::SystemClock),
    ));
    match args.format {
        Format::Human => {
            for c in &checks {
                outln!(
                    "{} {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
                if let Some(r) = &c.remediation {
                    outln!("     → {r}");
                }
            }
            let failed = checks.iter().filter(|c| !c.passed).count();
            if failed == 0 {
                outln!("\nAll {} checks passed.", checks.len());
            } else {
                outln!("\n{failed} of {} checks failed.", checks.len());
            }
        }
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "passed": checks.iter().all(|c| c.passed),
                "checks": checks,
            }))
            .expect("checks serialize")
        ),
    }
    Ok(if checks.iter().all(|c| c.passed) {
        Done::Success
    } else {
        Done::Problems
    })
}
