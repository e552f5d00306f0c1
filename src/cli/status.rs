//! `tether status`: the admin guide's status tables, from the state alone (no server is
//! asked, so it answers when Exchange or Salesforce is down). The checks come from what the
//! last apply or run recorded (`engine::facts`); each "no" says what to do.

use super::StateArg;
use super::error::{CommandError, CommandResult, Done};
use super::output::{out, outln};
use crate::config::model::Config;
use crate::exchange::version::BuildVerdict;
use crate::model::ObjectKind;
use crate::state::{OutlookIntegrationFact, RepFacts, StateLocation, StateStore, SystemFacts};
use chrono::{DateTime, Duration, Utc};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Version of `--format json`, `MAJOR.MINOR` as in every JSON output of tether (2.0: a
/// string like the plan's and validate's, and `problems` per rep); consumers must ignore
/// keys they do not know.
pub const STATUS_FORMAT_VERSION: &str = "2.0";

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum StatusFormat {
    #[default]
    Table,
    Json,
}

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
    pub format: StatusFormat,
    /// Exit 0 even when a check fails or records failed (the report still says so).
    #[arg(long)]
    pub exit_zero: bool,
}

/// Opens an existing state (only to read it, for a command that only reads), or says why
/// there is none.
pub fn open_existing(
    location: &StateLocation,
    read_only: bool,
) -> Result<Box<dyn StateStore>, CommandError> {
    if !location.exists().map_err(CommandError::state)? {
        return Err(CommandError::state(format!(
            "no state at {location}: nothing has been applied yet"
        ))
        .hint("run `tether apply` first"));
    }
    if read_only {
        location.open_read_only()
    } else {
        location.open()
    }
    .map_err(CommandError::state)
}

/// The state of the configuration at `paths`, whose `state:` setting counts when it loads.
pub fn location_of(
    state: &super::StateArg,
    paths: &[std::path::PathBuf],
) -> Result<StateLocation, CommandError> {
    let loaded = super::load_configuration(paths).ok();
    state.location(paths, loaded.as_ref())
}

pub fn run(args: &Args) -> CommandResult {
    let state = open_existing(&location_of(&args.state, &args.paths)?, true)?;
    let report = report(&state, args.user.as_deref(), Utc::now()).map_err(CommandError::state)?;
    match args.format {
        StatusFormat::Json => outln!("{}", serde_json::to_string_pretty(&report).expect("json")),
        // One line per rep; every check of a rep with --user.
        StatusFormat::Table if args.user.is_some() => out!("{}", table(&report)),
        StatusFormat::Table => out!("{}", compact_table(&report)),
    }
    Ok(if has_problems(&report) && !args.exit_zero {
        Done::Problems
    } else {
        Done::Success
    })
}

/// A check of the system or of a rep answered "no", or a rep's last cycle failed records.
fn has_problems(report: &serde_json::Value) -> bool {
    let system = &report["system"];
    let system_no = ["service_account_recognised", "outlook_integration_enabled"]
        .iter()
        .any(|k| system[*k]["value"] == "no");
    system_no
        || report["reps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["problems"].as_array().is_some_and(|p| !p.is_empty()))
}

/// The rep checks, with the words `status` uses for a "no" on one line.
const REP_CHECKS: [(&str, &str, &str); 6] = [
    (
        "Assigned to an active configuration",
        "assigned_to_active_configuration",
        "not in an active configuration",
    ),
    (
        "Mailbox on a supported Exchange version",
        "mailbox_on_supported_exchange_version",
        "unsupported Exchange version",
    ),
    (
        "Recognised by the service account",
        "recognised_by_service_account",
        "not recognised by the service account",
    ),
    (
        "Salesforce_Sync folder found",
        "salesforce_sync_folder_found",
        "no Salesforce_Sync folder",
    ),
    ("Calendar found", "calendar_found", "no calendar"),
    (
        "Addresses linked",
        "addresses_linked",
        "addresses not linked",
    ),
];

/// What is wrong with a rep, in a few words each: failed checks, failed records of its last
/// cycle. A rep in no active configuration was taken out on purpose: not a problem.
fn rep_problems(checks: &serde_json::Value, open_errors: usize) -> Vec<String> {
    let mut out: Vec<String> = REP_CHECKS[1..]
        .iter()
        .filter(|(_, key, _)| checks[*key]["value"] == "no")
        .map(|(_, _, short)| short.to_string())
        .collect();
    if open_errors > 0 {
        out.push(if open_errors == 1 {
            "1 failed record".to_string()
        } else {
            format!("{open_errors} failed records")
        });
    }
    out
}

/// One line of the guide's tables: yes, no (with what to do), or not checked (with why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Check {
    value: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    remediation: Option<String>,
}

fn yes(detail: impl Into<String>) -> Check {
    Check {
        value: "yes",
        detail: detail.into(),
        remediation: None,
    }
}

fn no(detail: impl Into<String>, remediation: impl Into<String>) -> Check {
    Check {
        value: "no",
        detail: detail.into(),
        remediation: Some(remediation.into()),
    }
}

fn not_checked(why: impl Into<String>) -> Check {
    Check {
        value: "not_checked",
        detail: why.into(),
        remediation: None,
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

const RUN_AGAIN: &str = "then run `tether run --once` (or apply) to check again.";

fn service_account(facts: Option<&SystemFacts>) -> Check {
    let Some(f) = facts else {
        return not_checked(
            "no sync has recorded it yet; the next `tether apply` or `tether run` does",
        );
    };
    match f.service_account_recognised {
        Some(true) => yes(format!(
            "Exchange accepted the service account at {}",
            when(f.at)
        )),
        Some(false) => no(
            format!(
                "Exchange refused the service account at {}: {}",
                when(f.at),
                f.exchange_error.as_deref().unwrap_or("credentials refused")
            ),
            format!(
                "Check connections.exchange: the username, and the password (or OAuth 2.0 \
                 secret) its secret reference names; make sure the account is not locked or \
                 expired. `tether test-connection` checks the credentials; {RUN_AGAIN}"
            ),
        ),
        None => not_checked(match &f.exchange_error {
            Some(e) => format!("Exchange could not be asked at {}: {e}", when(f.at)),
            None => format!("no mailbox was contacted in the sync at {}", when(f.at)),
        }),
    }
}

/// tether relies on the Outlook integration only for `events.which: user_selected`, where
/// reps relate events to Salesforce in Outlook; a cycle with such a configuration reads the
/// org's setting (Metadata API EmailIntegrationSettings) and records it.
fn outlook_integration(config: Option<&Config>, facts: Option<&SystemFacts>) -> Check {
    let Some(config) = config else {
        return not_checked("no configuration has been applied yet");
    };
    let users = crate::engine::outlook::configurations_needing_it(config);
    if users.is_empty() {
        return not_checked(
            "not needed: no active configuration syncs only the events reps select in Outlook \
             (events.which: user_selected)",
        );
    }
    let names = users
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(f) = facts else {
        return not_checked(
            "no sync has recorded it yet; the next `tether apply` or `tether run` does",
        );
    };
    match &f.outlook_integration {
        Some(OutlookIntegrationFact::Enabled(true)) => yes(format!(
            "enabled in the org (EmailIntegrationSettings, read at {}); {names} sync the events \
             reps relate to Salesforce in Outlook",
            when(f.at)
        )),
        Some(OutlookIntegrationFact::Enabled(false)) => no(
            format!(
                "disabled in the org (read at {}); {names} need it",
                when(f.at)
            ),
            format!(
                "Enable it in Salesforce Setup (Outlook Integration and Sync), or set \
                 `events.which: all`; {RUN_AGAIN}"
            ),
        ),
        Some(OutlookIntegrationFact::NotRead(why)) => not_checked(why.clone()),
        None => not_checked(format!(
            "not read in the sync at {}; the next `tether apply` or `tether run` reads it",
            when(f.at)
        )),
    }
}

/// "CODE: what Exchange said", without the code twice when the message names it.
fn error_text((code, message): &(String, String)) -> String {
    match message.find(&format!("{code}: ")) {
        Some(i) => message[i..].to_string(),
        None => format!("{code}: {message}"),
    }
}

/// A time from the report as the table shows it.
fn shown(t: &serde_json::Value) -> String {
    t.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| when(t.with_timezone(&Utc)))
        .unwrap_or_else(|| t.to_string())
}

/// Why a per-rep check has no answer.
fn unreached(f: &RepFacts) -> String {
    if f.configuration.is_none() {
        return "the rep is in no active sync configuration".into();
    }
    if let Some((_, message)) = &f.problem {
        return format!("not reached: {message}");
    }
    match &f.mailbox_error {
        Some((code, _)) if code == "UNAUTHORIZED" || code == "TOKEN" => {
            "Exchange refused the service account (see System)".into()
        }
        Some(_) if f.impersonation == Some(false) => {
            "the service account may not act for the mailbox".into()
        }
        Some(_) if f.addresses_linked == Some(false) => "no such mailbox".into(),
        Some(e) => format!("the mailbox could not be read: {}", error_text(e)),
        None if f.objects.is_empty() => {
            "the rep's configuration syncs neither contacts nor events".into()
        }
        None => "not checked in the last sync".into(),
    }
}

fn assigned(f: &RepFacts) -> Check {
    if let Some(name) = &f.configuration {
        return yes(format!("\"{name}\""));
    }
    match &f.problem {
        Some((code, message)) if code == "MULTIPLE_CONFIGURATIONS" => no(
            message.clone(),
            "List the rep individually (members.users) in one active sync configuration only, \
             then apply.",
        ),
        Some((code, message)) if code == "USER_NOT_FOUND" => no(
            message.clone(),
            "Activate the Salesforce user, or correct the email in members.users, then apply.",
        ),
        _ => no(
            "in no active sync configuration",
            "Add the rep to a sync configuration (members.users, or their profile in \
             members.profiles) and make sure it is active, then apply. If the rep was removed \
             on purpose, nothing more syncs for them.",
        ),
    }
}

/// The mailbox's server version, as the EWS module judges the build it answered from.
fn exchange_version(f: &RepFacts) -> Check {
    if f.exchange_build.is_none() && f.impersonation != Some(true) {
        return not_checked(unreached(f));
    }
    match BuildVerdict::of(f.exchange_build.as_deref()) {
        BuildVerdict::Supported(detail) => yes(detail),
        BuildVerdict::Unsupported {
            detail,
            remediation,
        } => no(detail, remediation),
        BuildVerdict::Unknown(why) => not_checked(why),
    }
}

fn recognised(f: &RepFacts) -> Check {
    let mailbox = f.mailbox.as_deref().unwrap_or(&f.email);
    match f.impersonation {
        Some(true) => yes(format!("the service account may act for {mailbox}")),
        Some(false) => no(
            f.mailbox_error
                .as_ref()
                .map(error_text)
                .unwrap_or_else(|| format!("impersonation of {mailbox} denied")),
            match f.mailbox_error.as_ref().map(|(code, _)| code.as_str()) {
                // Microsoft Graph's refusal: the app's RBAC for Applications scope (or an
                // Application Access Policy) leaves the mailbox out.
                Some("ErrorAccessDenied") => format!(
                    "Add {mailbox} to the management scope of the app's \"Application \
                     Contacts.ReadWrite\" and \"Application Calendars.ReadWrite\" role \
                     assignments (or to the group of its Application Access Policy), check with \
                     `Test-ServicePrincipalAuthorization -Identity <app id> -Resource {mailbox}` \
                     (`tether setup exchange` prints the commands); {RUN_AGAIN}"
                ),
                _ => format!(
                    "Give the service account the ApplicationImpersonation role for this mailbox \
                     (a management role assignment whose scope includes {mailbox}); {RUN_AGAIN}"
                ),
            },
        ),
        None => not_checked(unreached(f)),
    }
}

fn addresses_linked(f: &RepFacts) -> Check {
    let mailbox = f.mailbox.as_deref().unwrap_or(&f.email);
    match f.addresses_linked {
        Some(true) => yes(format!("Salesforce {} ↔ mailbox {mailbox}", f.email)),
        Some(false) => match &f.problem {
            Some((_, message)) => no(
                message.clone(),
                "Add the rep's mail domain to connections.exchange.additional_domains, or make \
                 the rep's Salesforce email their mailbox's primary SMTP address; then apply.",
            ),
            None => no(
                f.mailbox_error
                    .as_ref()
                    .map(error_text)
                    .unwrap_or_else(|| format!("no mailbox answers to {mailbox}")),
                format!(
                    "Check that the rep's Salesforce email is the mailbox's primary SMTP \
                     address (not an alias), or add its domain to \
                     connections.exchange.additional_domains; {RUN_AGAIN}"
                ),
            ),
        },
        None => not_checked(unreached(f)),
    }
}

fn folder(f: &RepFacts, object: ObjectKind) -> Check {
    let (name, what) = match object {
        ObjectKind::Contact => ("Contacts/Salesforce_Sync", "contacts"),
        ObjectKind::Event => ("default calendar", "events"),
    };
    let found = match object {
        ObjectKind::Contact => f.contacts_folder,
        ObjectKind::Event => f.calendar,
    };
    match found {
        Some(true) => yes(name),
        Some(false) if object == ObjectKind::Contact => no(
            format!("{name} does not exist yet"),
            "The next apply or `tether run` creates it (a plan never does); if it stays \
             missing, check that the service account may create folders in the mailbox.",
        ),
        Some(false) => no(
            format!("the {name} could not be read"),
            "Check that the mailbox has a calendar the service account may read \
             (`tether test-connection --user EMAIL`).",
        ),
        None if f.configuration.is_some()
            && f.problem.is_none()
            && !f.objects.contains(&object) =>
        {
            not_checked(format!("{what} are not set to sync for this rep"))
        }
        None => not_checked(unreached(f)),
    }
}

/// The report, as `--format json` prints it (keys documented in the README).
fn report<S: StateStore>(
    state: &S,
    user: Option<&str>,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, String> {
    let err = |e: crate::state::StateError| e.to_string();
    let emails = state.rep_emails().map_err(err)?;
    let email = |rep: &str| {
        emails
            .get(rep)
            .cloned()
            .unwrap_or_else(|| rep.to_string())
            .to_lowercase()
    };
    let revision = state.latest_revision().map_err(err)?;
    let applied: Option<Config> = revision
        .as_ref()
        .and_then(|r| serde_json::from_str(&r.canonical).ok());
    let hour = state
        .activity_since(now - Duration::hours(1))
        .map_err(err)?;
    let day = state
        .activity_since(now - Duration::hours(24))
        .map_err(err)?;
    let last = state.last_activity().map_err(err)?;
    let system_facts = state.system_facts().map_err(err)?;
    let facts: BTreeMap<String, RepFacts> = state
        .rep_facts()
        .map_err(err)?
        .into_iter()
        .map(|f| (f.email.clone(), f))
        .collect();
    let resets = state.reset_marks().map_err(err)?;
    let errors = state.errors().map_err(err)?;
    let acks = state.acknowledgements().map_err(err)?;
    // Each configuration's mappings that differ from the defaults, as last applied.
    let mappings = applied
        .as_ref()
        .map(crate::engine::rules::mapping_differences)
        .unwrap_or_default();
    let statuses = state.statuses().map_err(err)?;

    let mut objects = serde_json::Map::new();
    for o in ObjectKind::ALL {
        objects.insert(
            o.name().to_string(),
            json!({
                "last_sync_activity": last.get(&o),
                "records_synced_last_60_minutes": hour.get(&o).copied().unwrap_or(0),
                "records_synced_last_24_hours": day.get(&o).copied().unwrap_or(0),
            }),
        );
    }
    let linked = if facts.is_empty() {
        emails.len()
    } else {
        facts
            .values()
            .filter(|f| f.configuration.is_some() && f.addresses_linked == Some(true))
            .count()
    };

    let mut all: BTreeSet<String> = facts.keys().cloned().collect();
    all.extend(statuses.iter().map(|s| email(&s.rep)));
    let mut reps = Vec::new();
    for rep_email in all {
        if user.is_some_and(|u| !u.trim().eq_ignore_ascii_case(&rep_email)) {
            continue;
        }
        let f = facts.get(&rep_email);
        let user_id = f.and_then(|f| f.user_id.clone()).or_else(|| {
            emails
                .iter()
                .find(|(_, e)| e.eq_ignore_ascii_case(&rep_email))
                .map(|(id, _)| id.clone())
        });
        let is_rep =
            |rep: &str| user_id.as_deref() == Some(rep) || rep.eq_ignore_ascii_case(&rep_email);
        let mine: Vec<_> = statuses.iter().filter(|s| is_rep(&s.rep)).collect();
        let mut in_sync: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &mine {
            let n = in_sync.entry(s.object.name()).or_default();
            *n = (*n).max(s.records_in_sync);
        }
        let checks = match f {
            Some(f) => json!({
                "assigned_to_active_configuration": assigned(f),
                "mailbox_on_supported_exchange_version": exchange_version(f),
                "recognised_by_service_account": recognised(f),
                "salesforce_sync_folder_found": folder(f, ObjectKind::Contact),
                "calendar_found": folder(f, ObjectKind::Event),
                "addresses_linked": addresses_linked(f),
            }),
            None => {
                let why = not_checked(
                    "not recorded yet (this state predates the checks); the next apply or run \
                     records them",
                );
                json!({
                    "assigned_to_active_configuration": why,
                    "mailbox_on_supported_exchange_version": why,
                    "recognised_by_service_account": why,
                    "salesforce_sync_folder_found": why,
                    "calendar_found": why,
                    "addresses_linked": why,
                })
            }
        };
        // Failures of the rep's last cycle (older ones were retried since) that no admin
        // acknowledged.
        let open_errors = errors
            .iter()
            .filter(|e| is_rep(&e.rep) && f.is_none_or(|f| e.at >= f.at))
            .filter(|e| !crate::state::Acknowledgement::covers(&acks, e))
            .count();
        let problems = rep_problems(&checks, open_errors);
        reps.push(json!({
            "rep": rep_email,
            "problems": problems,
            "user_id": user_id,
            "checked_at": f.map(|f| f.at),
            "configuration": f.and_then(|f| f.configuration.clone()),
            "field_mappings": mappings
                .iter()
                .filter(|(c, _, _)| f.and_then(|f| f.configuration.as_ref()) == Some(c))
                .map(|(_, o, d)| json!({ "object": o.name(), "differences": d }))
                .collect::<Vec<_>>(),
            "checks": checks,
            "reset": user_id.as_deref().and_then(|id| resets.get(id)).map(|m| m.label()),
            "statuses": mine.iter().map(|s| json!({
                "object": s.object.name(),
                "direction": s.direction.name(),
                "status": s.status.label(),
                "records_in_sync": s.records_in_sync,
                "updated": s.updated,
            })).collect::<Vec<_>>(),
            "records_in_sync": in_sync,
            "errors": errors.iter().filter(|e| is_rep(&e.rep)).count(),
        }));
    }
    if let Some(u) = user
        && reps.is_empty()
    {
        return Err(format!(
            "{u} is not in the state: no apply or run has seen this rep. Check the email, or run \
             `tether status` without --user to list the reps"
        ));
    }
    let counts = |m: &BTreeMap<ObjectKind, u64>| {
        m.iter()
            .map(|(o, n)| (o.name().to_string(), *n))
            .collect::<BTreeMap<_, _>>()
    };
    Ok(json!({
        "format_version": STATUS_FORMAT_VERSION,
        "system": {
            "applied": revision.map(|r| json!({"generation": r.generation, "by": r.applied_by, "at": r.applied_at})),
            "last_checked": system_facts.as_ref().map(|f| f.at),
            "service_account_recognised": service_account(system_facts.as_ref()),
            "outlook_integration_enabled": outlook_integration(applied.as_ref(), system_facts.as_ref()),
            "reps_linked": linked,
            "objects": objects,
            "records_synced_last_60_minutes": counts(&hour),
            "records_synced_last_24_hours": counts(&day),
        },
        "reps": reps,
    }))
}

fn check_lines(out: &mut String, indent: &str, label: &str, check: &serde_json::Value) {
    use std::fmt::Write as _;
    let value = match check["value"].as_str() {
        Some("not_checked") => "not checked",
        Some(v) => v,
        None => "not checked",
    };
    let detail = check["detail"].as_str().unwrap_or("");
    let _ = writeln!(out, "{indent}{label}: {value} — {detail}");
    if let Some(r) = check["remediation"].as_str() {
        let _ = writeln!(out, "{indent}  → {r}");
    }
}

/// The System section, a summary, and one line per rep, those with problems first.
fn compact_table(report: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = system_section(report);
    let reps: Vec<&serde_json::Value> = report["reps"].as_array().into_iter().flatten().collect();
    let (troubled, fine): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = reps
        .iter()
        .partition(|r| r["problems"].as_array().is_some_and(|p| !p.is_empty()));
    let _ = writeln!(
        out,
        "\nReps: {} ({} with problems)",
        reps.len(),
        troubled.len()
    );
    for rep in troubled.iter().chain(&fine) {
        let problems: Vec<&str> = rep["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .collect();
        let configuration = rep["configuration"]
            .as_str()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let in_sync = records_in_sync(rep);
        let mut line = match (problems.is_empty(), rep["configuration"].is_null()) {
            (true, true) => REP_CHECKS[0].2.to_string(),
            (true, false) => "ok".to_string(),
            (false, _) => problems.join("; "),
        };
        if let Some(reset) = rep["reset"].as_str() {
            let _ = write!(line, "; {}", reset.to_lowercase());
        }
        if !in_sync.is_empty() {
            let _ = write!(line, "; {} in sync", in_sync.join(", "));
        }
        let mark = if problems.is_empty() { ' ' } else { '!' };
        let _ = writeln!(
            out,
            "{mark} {}{configuration}: {line}",
            rep["rep"].as_str().unwrap_or("")
        );
    }
    if !reps.is_empty() {
        let _ = writeln!(
            out,
            "\nEvery check of a rep, and what to do: tether status --user EMAIL"
        );
    }
    out
}

fn system_section(report: &serde_json::Value) -> String {
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
                shown(&a["at"])
            );
        }
        None => {
            let _ = writeln!(out, "  Configuration applied: none yet");
        }
    }
    check_lines(
        &mut out,
        "  ",
        "Service account recognised",
        &system["service_account_recognised"],
    );
    check_lines(
        &mut out,
        "  ",
        "Outlook integration enabled",
        &system["outlook_integration_enabled"],
    );
    let _ = writeln!(
        out,
        "  Reps with linked Exchange and Salesforce addresses: {}",
        system["reps_linked"]
    );
    for (name, o) in system["objects"].as_object().into_iter().flatten() {
        let last = match &o["last_sync_activity"] {
            serde_json::Value::Null => "no sync activity yet".to_string(),
            t => format!("last sync activity {}", shown(t)),
        };
        let _ = writeln!(
            out,
            "  {name}s: {last}; records synced: {} in the last 60 minutes, {} in the last 24 hours",
            o["records_synced_last_60_minutes"], o["records_synced_last_24_hours"]
        );
    }
    out
}

/// The System section and every check of each rep, with what to do (`status --user`).
fn table(report: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = system_section(report);
    let _ = writeln!(out, "\nReps");
    for rep in report["reps"].as_array().into_iter().flatten() {
        let email = rep["rep"].as_str().unwrap_or("");
        let _ = writeln!(out, "  {email}");
        let checks = &rep["checks"];
        let (before_reset, after_reset) = REP_CHECKS.split_at(3);
        for (label, key, _) in before_reset {
            check_lines(&mut out, "    ", label, &checks[*key]);
        }
        let _ = writeln!(
            out,
            "    Reset status: {}",
            rep["reset"].as_str().unwrap_or("not marked for reset")
        );
        for (label, key, _) in after_reset {
            check_lines(&mut out, "    ", label, &checks[*key]);
        }
        for m in rep["field_mappings"].as_array().into_iter().flatten() {
            let differences: Vec<crate::model::mapping::MappingDifference> =
                serde_json::from_value(m["differences"].clone()).unwrap_or_default();
            let shown: Vec<String> = differences.iter().map(|d| d.to_string()).collect();
            let _ = writeln!(
                out,
                "    Field mappings ({}s, differing from the defaults): {}",
                m["object"].as_str().unwrap_or(""),
                shown.join("; ")
            );
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
        let in_sync = records_in_sync(rep);
        if !in_sync.is_empty() {
            let _ = writeln!(out, "    Records in sync: {}", in_sync.join(", "));
        }
        let errors = rep["errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            let _ = writeln!(
                out,
                "    Errors: {errors} (see `tether errors --user {email}`)"
            );
        }
    }
    out
}

/// A rep's records in sync per object, as `12 contacts`.
fn records_in_sync(rep: &serde_json::Value) -> Vec<String> {
    rep["records_in_sync"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(o, n)| format!("{n} {o}s"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemoryState, StateChange, StatusEntry, SyncDirection, SyncStatus};

    fn at() -> DateTime<Utc> {
        "2026-06-15T12:00:00Z".parse().unwrap()
    }

    fn reached(email: &str, build: &str) -> RepFacts {
        RepFacts {
            email: email.into(),
            user_id: Some(format!("005-{email}")),
            at: at(),
            configuration: Some("Sales".into()),
            mailbox: Some(email.into()),
            addresses_linked: Some(true),
            impersonation: Some(true),
            exchange_build: Some(build.into()),
            contacts_folder: Some(true),
            objects: vec![ObjectKind::Contact],
            ..RepFacts::default()
        }
    }

    #[test]
    fn a_mailbox_on_exchange_2010_is_not_supported_and_says_where_to_move_it() {
        let mut state = MemoryState::new();
        state
            .apply(vec![
                StateChange::SetRepFacts(reached("old@acme.com", "14.3.123.4")),
                StateChange::SetRepFacts(reached("new@acme.com", "15.20.7452.28")),
            ])
            .unwrap();
        let r = report(&state, None, at()).unwrap();
        let old = &r["reps"][1];
        assert_eq!(old["rep"], "old@acme.com");
        let version = &old["checks"]["mailbox_on_supported_exchange_version"];
        assert_eq!(version["value"], "no");
        assert_eq!(version["detail"], "Exchange Server 2010 (build 14.3.123.4)");
        assert!(
            version["remediation"]
                .as_str()
                .unwrap()
                .contains("2013 SP1")
        );
        let new = &r["reps"][0]["checks"]["mailbox_on_supported_exchange_version"];
        assert_eq!(new["value"], "yes");
        assert_eq!(new["detail"], "Exchange Online (build 15.20.7452.28)");
        assert_eq!(
            r["reps"][0]["checks"]["calendar_found"]["detail"],
            "events are not set to sync for this rep"
        );
        assert_eq!(
            r["system"]["service_account_recognised"]["value"],
            "not_checked"
        );
        assert_eq!(r["system"]["reps_linked"], 2);
    }

    #[test]
    fn each_rep_shows_their_own_configurations_mapping_differences() {
        let config: Config = serde_json::from_value(serde_json::json!({
            "version": 1,
            "org": { "name": "acme", "kind": "production" },
            "connections": {
                "exchange": { "method": "service_account", "username": "svc@acme.com",
                              "password": "${env:P}" },
                "salesforce": { "instance_url": "https://acme.my.salesforce.com",
                                "auth": { "flow": "access_token", "access_token": "${env:T}" } }
            },
            "sync_configurations": [
                { "name": "Sales", "members": { "profiles": ["Sales User"] },
                  "contacts": { "direction": "both",
                                "field_mappings": { "OtherPhone": "BusinessPhone2" } } },
                { "name": "Other", "members": { "users": ["bo@acme.com"] },
                  "contacts": { "direction": "both", "field_mappings": { "Department": null } } }
            ]
        }))
        .unwrap();
        let (canonical, hash) = crate::state::ConfigRevision::canonical(&config);
        let mut state = MemoryState::new();
        let mut bo = reached("bo@acme.com", "15.20.7452.28");
        bo.configuration = Some("Other".into());
        state
            .apply(vec![
                StateChange::RecordApply {
                    canonical,
                    hash,
                    applied_at: at(),
                    applied_by: "ci".into(),
                },
                StateChange::SetRepFacts(reached("ana@acme.com", "15.20.7452.28")),
                StateChange::SetRepFacts(bo),
            ])
            .unwrap();
        let text = table(&report(&state, None, at()).unwrap());
        let rep_block = |email: &str| -> String {
            let mut lines = text.lines().skip_while(|l| *l != format!("  {email}"));
            lines.next();
            let block: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).collect();
            block.join("\n")
        };
        let ana = rep_block("ana@acme.com");
        assert!(
            ana.contains("Field mappings (contacts, differing from the defaults): OtherPhone → BusinessPhone2 (default OtherTelephone)"),
            "{ana}"
        );
        assert!(!ana.contains("Department"), "{ana}");
        let bo = rep_block("bo@acme.com");
        assert!(bo.contains("Department not synced (removed)"), "{bo}");
        assert!(!bo.contains("OtherPhone"), "{bo}");
    }

    #[test]
    fn a_state_from_before_the_checks_shows_its_reps_as_not_checked() {
        let mut state = MemoryState::new();
        state
            .apply(vec![
                StateChange::SetRepEmail {
                    rep: "005A".into(),
                    email: "Ana@acme.com".into(),
                },
                StateChange::SetStatus(StatusEntry {
                    rep: "005A".into(),
                    object: ObjectKind::Contact,
                    direction: SyncDirection::SalesforceToExchange,
                    status: SyncStatus::InSync,
                    records_in_sync: 7,
                    updated: at(),
                }),
            ])
            .unwrap();
        let r = report(&state, Some("ana@ACME.com"), at()).unwrap();
        let ana = &r["reps"][0];
        assert_eq!(ana["rep"], "ana@acme.com");
        assert_eq!(ana["records_in_sync"]["contact"], 7);
        assert_eq!(
            ana["checks"]["recognised_by_service_account"]["value"],
            "not_checked"
        );
        assert_eq!(r["system"]["reps_linked"], 1);
        let text = table(&r);
        assert!(
            text.contains("    Recognised by the service account: not checked — not recorded yet"),
            "{text}"
        );
        assert!(report(&state, Some("bo@acme.com"), at()).is_err());
    }
}

#[cfg(test)]
mod compact_tests {
    use super::*;
    use crate::state::{MemoryState, StateChange};

    fn rep(n: usize, impersonation: bool) -> RepFacts {
        RepFacts {
            email: format!("rep{n:03}@acme.com"),
            user_id: Some(format!("005{n:012}")),
            at: "2026-06-15T12:00:00Z".parse().unwrap(),
            configuration: Some("Sales".into()),
            mailbox: Some(format!("rep{n:03}@acme.com")),
            addresses_linked: Some(true),
            impersonation: Some(impersonation),
            exchange_build: impersonation.then(|| "15.1.2507.6".into()),
            contacts_folder: impersonation.then_some(true),
            calendar: impersonation.then_some(true),
            objects: vec![ObjectKind::Contact, ObjectKind::Event],
            ..RepFacts::default()
        }
    }

    /// 320 reps fit a screenful or two: a line each, the one with a problem first.
    #[test]
    fn status_of_320_reps_prints_at_most_340_lines_problems_first() {
        let mut state = MemoryState::new();
        let facts = (0..320)
            .map(|n| StateChange::SetRepFacts(rep(n, n != 217)))
            .collect();
        state.apply(facts).unwrap();
        let now = "2026-06-15T12:05:00Z".parse().unwrap();
        let r = report(&state, None, now).unwrap();
        let text = compact_table(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= 340, "{} lines:\n{text}", lines.len());
        let first_rep = lines
            .iter()
            .position(|l| l.starts_with("Reps: "))
            .expect("the summary line");
        assert_eq!(lines[first_rep], "Reps: 320 (1 with problems)");
        assert_eq!(
            lines[first_rep + 1],
            "! rep217@acme.com (Sales): not recognised by the service account"
        );
        assert_eq!(lines[first_rep + 2], "  rep000@acme.com (Sales): ok");
        assert!(has_problems(&r));
        state
            .apply(vec![StateChange::SetRepFacts(rep(217, true))])
            .unwrap();
        assert!(!has_problems(&report(&state, None, now).unwrap()));
    }
}
