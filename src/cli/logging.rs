//! Logging: `tracing` events, filtered by `RUST_LOG` (default: warnings only), to stderr;
//! with `--log-file FILE` (or `TETHER_LOG_FILE`) also appended to a file (default: info, so
//! a `tether run` service keeps each cycle's counts). Nothing logged carries a credential:
//! HTTP calls are logged by method, path, status and duration, never headers or bodies.
//! `--log-format json` writes one JSON object per event (for a log collector), on stderr and
//! in the file alike.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The environment variable naming a log file when `--log-file` is not given.
pub const LOG_FILE_ENV: &str = "TETHER_LOG_FILE";

/// `--log-file`, else `TETHER_LOG_FILE` (empty means none).
pub fn log_file(arg: Option<&Path>) -> Option<PathBuf> {
    arg.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(LOG_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

fn filter(default: LevelFilter) -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env_lossy()
}

/// How log events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Human,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

/// A layer writing to `writer` in `format`, with colours only when `ansi`.
fn layer<S, W>(
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Human => fmt::layer().with_writer(writer).with_ansi(ansi).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .boxed(),
    }
}

/// Installs the subscriber. A log file that cannot be opened is an error: a service that was
/// told to log somewhere must not run blind.
pub fn init(file: Option<&Path>, format: LogFormat) -> Result<(), String> {
    let stderr = layer(
        format,
        std::io::stderr,
        super::color::enabled(super::color::Stream::Stderr),
    )
    .with_filter(filter(LevelFilter::WARN));
    let file_layer = match file {
        None => None,
        Some(path) => {
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                // Logs name reps and records: readable by the owner only.
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("cannot create the log directory {}: {e}", dir.display())
                })?;
            }
            let f = options
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            Some(layer(format, Mutex::new(f), false).with_filter(filter(LevelFilter::INFO)))
        }
    };
    // A second init (tests calling the CLI in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    Ok(())
}
