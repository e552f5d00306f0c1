use super::StateArg;
use super::error::{CommandError, CommandResult, Done};
use super::output::out;
use super::status::open_existing;
use crate::state::StateStore;
use clap::ValueEnum;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum ErrorsFormat {
    #[default]
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory whose state to read. Default: the current directory.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    /// Only this rep.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Only errors this recent, e.g. 1h, 24h, 7d.
    #[arg(long, value_parser = super::duration::age)]
    pub since: Option<chrono::Duration>,
    #[arg(long, value_enum, default_value_t)]
    pub format: ErrorsFormat,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The error report: one row per failed record, with what to do.
pub fn run(args: &Args) -> CommandResult {
    let state = open_existing(&super::status::location_of(&args.state, &args.paths)?, true)?;
    let errors = state.errors().map_err(CommandError::state)?;
    let emails = state.rep_emails().map_err(CommandError::state)?;
    let cutoff = args.since.map(|d| chrono::Utc::now() - d);
    let rows: Vec<serde_json::Value> = errors
        .iter()
        .filter(|e| cutoff.is_none_or(|c| e.at >= c))
        .map(|e| {
            let rep = emails.get(&e.rep).cloned().unwrap_or_else(|| e.rep.clone());
            serde_json::json!({
                "time": e.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "rep": rep,
                "object": e.object.map(|o| o.name()),
                "direction": e.direction.map(|d| d.name()),
                "record_ids": e.record_ids,
                "code": e.code,
                "message": e.message,
                "suggestion": e.suggestion,
            })
        })
        .filter(|r| {
            args.user
                .as_deref()
                .is_none_or(|u| r["rep"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(u)))
        })
        .collect();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let ids = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut out = String::new();
    match args.format {
        ErrorsFormat::Json => {
            out = serde_json::to_string_pretty(&rows).expect("json") + "\n";
        }
        ErrorsFormat::Csv => {
            out.push_str("time,rep,object,direction,record_ids,code,message,suggestion\n");
            for r in &rows {
                let fields = [
                    text(&r["time"]),
                    text(&r["rep"]),
                    text(&r["object"]),
                    text(&r["direction"]),
                    ids(&r["record_ids"]),
                    text(&r["code"]),
                    text(&r["message"]),
                    text(&r["suggestion"]),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
        }
        ErrorsFormat::Table => {
            if rows.is_empty() {
                out.push_str("No failed records.\n");
            }
            for r in &rows {
                out.push_str(&format!(
                    "{} {} {} {} [{}] {}: {}\n    → {}\n",
                    text(&r["time"]),
                    text(&r["rep"]),
                    text(&r["object"]),
                    text(&r["direction"]),
                    ids(&r["record_ids"]),
                    text(&r["code"]),
                    text(&r["message"]),
                    text(&r["suggestion"])
                ));
            }
        }
    }
    out!("{out}");
    Ok(Done::Success)
}
