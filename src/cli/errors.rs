use super::StateArg;
use super::error::{CommandError, CommandResult, Done};
use super::output::out;
use super::status::open_existing;
use crate::plan::build::is_salesforce_id;
use crate::state::{Acknowledgement, ErrorEntry, StateChange, StateStore};
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum ErrorsFormat {
    #[default]
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Configuration file or directory whose state to read. Default: $TETHER_CONFIG, else the current directory.
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
    /// Exit 0 even when records failed in their rep's last cycle.
    #[arg(long)]
    pub exit_zero: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Acknowledge failed records: they stay listed, but fail neither `apply` nor `errors`
    /// until the record changes (a new version fails again).
    Ack(AckArgs),
}

#[derive(Debug, clap::Args)]
pub struct AckArgs {
    /// The failed records, by the Salesforce id or Exchange item id `tether errors` lists.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Configuration file or directory whose state to change. Default: $TETHER_CONFIG, else the current directory.
    #[arg(long = "config", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
}

/// Acknowledges each record at the versions of its last failure.
fn acknowledge(args: &AckArgs) -> CommandResult {
    let paths: Vec<PathBuf> = args.config.iter().cloned().collect();
    let location = super::status::location_of(&args.state, &paths)?;
    let now = Utc::now();
    let _lock = super::lock_state(&location, "errors ack", now).map_err(CommandError::state)?;
    let mut state = open_existing(&location, false)?;
    let errors = state.errors().map_err(CommandError::state)?;
    let mut changes = Vec::new();
    for id in &args.ids {
        let Some(last) = errors.iter().rev().find(|e| e.record_ids.contains(id)) else {
            return Err(CommandError::input(format!(
                "no failed record has the id {id}; nothing acknowledged"
            ))
            .hint("`tether errors` lists the failed records and their ids"));
        };
        changes.push(StateChange::Acknowledge(Acknowledgement {
            record_id: id.clone(),
            version: last.version.clone(),
            at: now,
        }));
    }
    state.apply(changes).map_err(CommandError::state)?;
    for id in &args.ids {
        out!(
            "{id}: acknowledged; it stays listed in `tether errors` and fails no exit code until the record changes.\n"
        );
    }
    Ok(Done::Success)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The record a failure is about, as a reviewer finds it: `contact, Salesforce 003…` or
/// `event, Exchange item AAMk…`; `None` for a failure of the rep (its mailbox).
fn record_name(e: &ErrorEntry) -> Option<String> {
    let kind = e.object.map_or("record", |o| o.name());
    let ids: Vec<String> = e
        .record_ids
        .iter()
        .map(|id| {
            if is_salesforce_id(id) {
                format!("Salesforce {id}")
            } else {
                format!("Exchange item {id}")
            }
        })
        .collect();
    (!ids.is_empty()).then(|| format!("{kind}, {}", ids.join(", ")))
}

/// A short label without personal data: the field names a message gives (`[LastName]`, or
/// `Email:` at its start), else the code. The message itself may quote values, so only
/// names of fields tether maps (or custom fields, `…__c`) are taken.
fn label(code: &str, message: &str) -> String {
    let field = |s: &str| {
        let s = s.trim();
        let mapped = crate::model::ObjectKind::ALL.iter().any(|o| {
            let m = crate::model::EffectiveMapping::defaults(*o);
            m.maps(s) || m.salesforce_for(s).is_some()
        });
        mapped || (s.ends_with("__c") && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    };
    if let Some(inside) = message
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(inside, _)| inside)
        && inside.split(',').all(field)
    {
        return inside
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(", ");
    }
    match message.split_once(':') {
        Some((head, _)) if field(head) && head != code => head.trim().to_string(),
        _ => code.to_string(),
    }
}

/// One failure of one record: rep email, object, direction, code, record ids.
type GroupKey = (String, String, String, String, Vec<String>);

/// The error report: one row per failed record and kind of failure (repeats counted), with
/// what to do.
pub fn run(args: &Args) -> CommandResult {
    if let Some(Action::Ack(ack)) = &args.action {
        return acknowledge(ack);
    }
    let state = open_existing(&super::status::location_of(&args.state, &args.paths)?, true)?;
    let errors = state.errors().map_err(CommandError::state)?;
    let acks = state.acknowledgements().map_err(CommandError::state)?;
    let emails = state.rep_emails().map_err(CommandError::state)?;
    let cutoff = args.since.map(|d| chrono::Utc::now() - d);
    // When each rep was last synced: failures before it were retried since.
    let last_cycle: HashMap<String, DateTime<Utc>> = state
        .rep_facts()
        .map_err(CommandError::state)?
        .into_iter()
        .filter_map(|f| Some((f.user_id?, f.at)))
        .collect();
    // Repeats of one failure of one record: one row, counted, first and last time.
    let mut groups: BTreeMap<GroupKey, Vec<&ErrorEntry>> = BTreeMap::new();
    for e in errors.iter().filter(|e| cutoff.is_none_or(|c| e.at >= c)) {
        let rep = emails.get(&e.rep).cloned().unwrap_or_else(|| e.rep.clone());
        if args
            .user
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(&rep))
        {
            continue;
        }
        let key = (
            rep,
            e.object.map(|o| o.name()).unwrap_or_default().to_string(),
            e.direction
                .map(|d| d.name())
                .unwrap_or_default()
                .to_string(),
            e.code.clone(),
            e.record_ids.clone(),
        );
        groups.entry(key).or_default().push(e);
    }
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut rows: Vec<serde_json::Value> = groups
        .into_iter()
        .map(|((rep, _, _, _, _), entries)| {
            let last = entries.last().expect("a group has an entry");
            let first = entries[0];
            serde_json::json!({
                "time": time(last.at),
                "first_time": time(first.at),
                "count": entries.len(),
                "rep": rep,
                "object": last.object.map(|o| o.name()),
                "direction": last.direction.map(|d| d.name()),
                "record": record_name(last),
                "label": label(&last.code, &last.message),
                "record_ids": last.record_ids,
                "code": last.code,
                "message": last.message,
                "suggestion": last.suggestion,
                "in_last_cycle": last_cycle.get(&last.rep).is_none_or(|at| last.at >= *at),
                "acknowledged": Acknowledgement::covers(&acks, last),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (a["time"].as_str(), a["rep"].as_str()).cmp(&(b["time"].as_str(), b["rep"].as_str()))
    });
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
            // The columns added later go last, so readers of the first ones keep working.
            out.push_str(
                "time,rep,object,direction,record_ids,code,message,suggestion,first_time,count,label,acknowledged\n",
            );
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
                    text(&r["first_time"]),
                    r["count"].to_string(),
                    text(&r["label"]),
                    r["acknowledged"].to_string(),
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
                let what = match r["record"].as_str() {
                    Some(record) => record.to_string(),
                    None => "the rep's mailbox".to_string(),
                };
                let repeats = match r["count"].as_u64() {
                    Some(n) if n > 1 => format!(" ×{n} since {}", text(&r["first_time"])),
                    _ => String::new(),
                };
                let direction = match r["direction"].as_str() {
                    Some(d) => format!(" ({})", d.replace('_', " ")),
                    None => String::new(),
                };
                out.push_str(&format!(
                    "{} {} {what}{direction}: {}{repeats}\n    {}: {}\n    → {}\n",
                    text(&r["time"]),
                    text(&r["rep"]),
                    text(&r["label"]),
                    text(&r["code"]),
                    text(&r["message"]),
                    text(&r["suggestion"])
                ));
                if r["acknowledged"] == true {
                    out.push_str(
                        "    (acknowledged: fails no exit code until the record changes)\n",
                    );
                }
            }
        }
    }
    out!("{out}");
    let failing = rows
        .iter()
        .any(|r| r["in_last_cycle"] == true && r["acknowledged"] == false);
    Ok(if failing && !args.exit_zero {
        Done::Problems
    } else {
        Done::Success
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKind;
    use crate::state::SyncDirection;

    #[test]
    fn a_failure_is_named_by_its_record_and_a_label_without_values() {
        assert_eq!(
            label(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [LastName]"
            ),
            "LastName"
        );
        assert_eq!(
            label(
                "INVALID_EMAIL_ADDRESS",
                "Email: invalid email address: ana@x"
            ),
            "Email"
        );
        // A message that quotes a value gives the code, not the value.
        for message in [
            "value too long: [Ana María López]",
            "Diaz: duplicate",
            "[Diaz]",
        ] {
            assert_eq!(label("DUPLICATE", message), "DUPLICATE", "{message}");
        }
        assert_eq!(label("X", "bad [Region__c, Title]"), "Region__c, Title");
        let entry = |ids: &[&str]| ErrorEntry {
            at: Utc::now(),
            rep: "005".into(),
            object: Some(ObjectKind::Contact),
            direction: Some(SyncDirection::ExchangeToSalesforce),
            record_ids: ids.iter().map(|s| s.to_string()).collect(),
            code: "X".into(),
            message: "m".into(),
            suggestion: "s".into(),
            version: None,
        };
        assert_eq!(
            record_name(&entry(&["003A000001xyzAbQAI"])).as_deref(),
            Some("contact, Salesforce 003A000001xyzAbQAI")
        );
        assert_eq!(
            record_name(&entry(&["AAMkADk0ZjE2LTQ3="])).as_deref(),
            Some("contact, Exchange item AAMkADk0ZjE2LTQ3=")
        );
        assert_eq!(record_name(&entry(&[])), None);
    }
}
