use super::{Format, StateArg};
use crate::state::{SqliteState, StateStore};
use chrono::{Duration, Utc};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file or directory whose state to show. Default: the current directory.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    /// Only this rep.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Opens an existing state for reading, or says why there is none.
pub fn open_existing(path: &Path) -> Result<SqliteState, String> {
    if !path.exists() {
        return Err(format!(
            "no state at {}: nothing has been applied yet; run `tether apply` first",
            path.display()
        ));
    }
    SqliteState::open(path).map_err(|e| e.to_string())
}

/// The admin guide's status tables: the system, then each rep per object and direction.
pub fn run(args: &Args) -> ExitCode {
    let state = match open_existing(&args.state.path(&args.paths)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match report(&state, args.user.as_deref()) {
        Ok(report) => {
            match args.format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&report).expect("json"))
                }
                Format::Human => print!("{}", table(&report)),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn report(state: &SqliteState, user: Option<&str>) -> Result<serde_json::Value, String> {
    let err = |e: crate::state::StateError| e.to_string();
    let emails = state.rep_emails().map_err(err)?;
    let email = |rep: &str| emails.get(rep).cloned().unwrap_or_else(|| rep.to_string());
    let revision = state.latest_revision().map_err(err)?;
    let now = Utc::now();
    let hour = state
        .activity_since(now - Duration::hours(1))
        .map_err(err)?;
    let day = state
        .activity_since(now - Duration::hours(24))
        .map_err(err)?;
    let counts = |m: &std::collections::BTreeMap<crate::model::ObjectKind, u64>| {
        m.iter()
            .map(|(o, n)| (o.name().to_string(), *n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let resets = state.reset_marks().map_err(err)?;
    let errors = state.errors().map_err(err)?;
    let mut reps: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    for s in state.statuses().map_err(err)? {
        let rep_email = email(&s.rep);
        if user.is_some_and(|u| !u.eq_ignore_ascii_case(&rep_email)) {
            continue;
        }
        let entry = reps.entry(rep_email.clone()).or_insert_with(|| {
            json!({
                "rep": rep_email,
                "reset": resets.get(&s.rep).map(|m| m.label()),
                "errors": errors.iter().filter(|e| e.rep == s.rep).count(),
                "statuses": [],
            })
        });
        entry["statuses"]
            .as_array_mut()
            .expect("array")
            .push(json!({
                "object": s.object.name(),
                "direction": s.direction.name(),
                "status": s.status.label(),
                "records_in_sync": s.records_in_sync,
                "updated": s.updated,
            }));
    }
    Ok(json!({
        "system": {
            "applied": revision.map(|r| json!({"generation": r.generation, "by": r.applied_by, "at": r.applied_at})),
            "reps_linked": emails.len(),
            "records_synced_last_60_minutes": counts(&hour),
            "records_synced_last_24_hours": counts(&day),
        },
        "reps": reps.into_values().collect::<Vec<_>>(),
    }))
}

fn table(report: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let system = &report["system"];
    let _ = writeln!(out, "System");
    match system["applied"].as_object() {
        Some(a) => {
            let _ = writeln!(
                out,
                "  Configuration applied: generation {} by {} at {}",
                a["generation"],
                a["by"].as_str().unwrap_or(""),
                a["at"].as_str().unwrap_or("")
            );
        }
        None => {
            let _ = writeln!(out, "  Configuration applied: none yet");
        }
    }
    let _ = writeln!(
        out,
        "  Reps with linked Exchange and Salesforce addresses: {}",
        system["reps_linked"]
    );
    for (label, key) in [
        ("last 60 minutes", "records_synced_last_60_minutes"),
        ("last 24 hours", "records_synced_last_24_hours"),
    ] {
        let parts: Vec<String> = system[key]
            .as_object()
            .map(|m| m.iter().map(|(o, n)| format!("{n} {o}s")).collect())
            .unwrap_or_default();
        let text = if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        };
        let _ = writeln!(out, "  Records synced, {label}: {text}");
    }
    let _ = writeln!(out, "\nReps");
    for rep in report["reps"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}", rep["rep"].as_str().unwrap_or(""));
        if let Some(reset) = rep["reset"].as_str() {
            let _ = writeln!(out, "    reset: {reset}");
        }
        for s in rep["statuses"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "    {:<8} {:<24} {:<40} {} in sync",
                s["object"].as_str().unwrap_or(""),
                s["direction"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or(""),
                s["records_in_sync"]
            );
        }
        let errors = rep["errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            let _ = writeln!(
                out,
                "    {errors} failed records: see `tether errors --user {}`",
                rep["rep"].as_str().unwrap_or("")
            );
        }
    }
    out
}
