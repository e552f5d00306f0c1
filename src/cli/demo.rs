//! `tether demo`: the whole loop on the built-in sandbox, with no accounts: start local
//! Exchange and Salesforce emulators, validate the quick-start configuration, plan, apply,
//! edit records on both sides (one edit a conflict), plan and apply again, and end on
//! "No changes". `--api graph` syncs the same story through the emulator's Microsoft Graph
//! face instead of EWS.

use super::error::{CommandError, CommandResult, Done};
use super::output::{out, outln};
use crate::engine::cycle::{SyncOptions, run_cycle};
use crate::engine::execute::StepBudget;
use crate::plan::build::BuildOptions;
use crate::state::{ConfigRevision, SqliteState, StateChange, StateStore};
use crate::workflow::{self, Connectors};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tether_emulators::exchange::model::Item;
use tether_emulators::seed::{self, SandboxOrg};

const QUICKSTART: &str = include_str!("../../examples/quickstart.yaml");

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Exchange API the demo syncs through: EWS, or Microsoft Graph (Exchange Online's);
    /// the sandbox's mailboxes answer both.
    #[arg(long, value_enum, default_value_t = Api::Ews)]
    api: Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Api {
    Ews,
    Graph,
}

/// The quick-start configuration, its Exchange connection through `api`.
fn configuration(api: Api) -> String {
    match api {
        Api::Ews => QUICKSTART.to_string(),
        Api::Graph => {
            let (head, rest) = QUICKSTART
                .split_once("  exchange:\n")
                .expect("the quick start has an exchange connection");
            let (_, salesforce) = rest
                .split_once("  salesforce:\n")
                .expect("the quick start has a salesforce connection");
            let tenant = tether_emulators::graph::TENANT_ID;
            let server = format!("http://127.0.0.1:{}", seed::EWS_PORT);
            format!(
                "{head}  exchange:\n    method: oauth2\n    api: graph\n    tenant: {tenant}\n    \
                 client_id: {}\n    client_secret: ${{env:GRAPH_CLIENT_SECRET}}\n    \
                 token_url: {server}/{tenant}/oauth2/v2.0/token\n    graph_url: {server}/v1.0\n    \
                 # The reps' addresses are @example.com; the tenant is named by its id.\n    \
                 additional_domains: [example.com]\n  salesforce:\n{salesforce}",
                seed::GRAPH_CLIENT_ID
            )
        }
    }
}

fn step(n: usize, title: &str, why: &str) {
    outln!("\n━━ {n}. {title}\n   {why}\n");
}

pub fn run(args: &Args) -> CommandResult {
    // The quick-start configuration reads its secrets from the environment; the demo
    // provides the sandbox's (local emulator credentials, not secrets of any real system).
    let graph_secret = [("GRAPH_CLIENT_SECRET", seed::SANDBOX_GRAPH_CLIENT_SECRET)];
    for (name, value) in seed::ENV.iter().chain(&graph_secret) {
        // SAFETY: called before the runtime starts, while this is the only thread.
        unsafe { std::env::set_var(name, value) };
    }
    let dir = std::env::temp_dir().join(format!("tether-demo-{}", std::process::id()));
    let result = super::runtime().block_on(demo(&dir, args.api));
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(CommandError::failed)?;
    Ok(Done::Success)
}

async fn demo(dir: &Path, api: Api) -> Result<(), String> {
    step(
        1,
        "Start the sandbox",
        &format!(
            "A local Exchange ({}) on 127.0.0.1:{} and a local Salesforce on 127.0.0.1:{}, with two reps,\n   \
             contacts on both sides, and meetings (one private) in Celia's calendar.",
            match api {
                Api::Ews => "EWS",
                Api::Graph => "Microsoft Graph",
            },
            seed::EWS_PORT,
            seed::SALESFORCE_PORT
        ),
    );
    let org = seed::start(seed::EWS_PORT, seed::SALESFORCE_PORT).await?;

    step(
        2,
        "Validate examples/quickstart.yaml",
        "YAML syntax, the schema and the sync rules, before anything touches a mailbox or the org.",
    );
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let config_path = dir.join("quickstart.yaml");
    std::fs::write(&config_path, configuration(api)).map_err(|e| e.to_string())?;
    let validation = crate::config::validate(std::slice::from_ref(&config_path), true);
    out!(
        "{}",
        super::color::diagnostics(
            &validation.render_human(),
            super::color::enabled(super::color::Stream::Stdout)
        )
    );
    let Some((unit, Some(config))) = validation.units.into_iter().next() else {
        return Err("the quick-start configuration is not valid".into());
    };
    let connectors = workflow::open(&config, &unit.home, Arc::new(crate::clock::SystemClock))
        .map_err(|e| e.to_string())?;
    let state_path: PathBuf = dir.join(".tether").join("state.db");
    let mut state = SqliteState::open(&state_path).map_err(|e| e.to_string())?;

    step(
        3,
        "Plan",
        "What apply would do: settings first, then mailboxes, then records per rep and direction.\n   \
         Dev Patel (Outlook) goes to Salesforce; Salesforce contacts go to the reps' Salesforce_Sync folders;\n   \
         the pricing call goes to Salesforce, the private dentist appointment does not.",
    );
    show_plan(&config, &connectors, &state).await?;

    step(4, "Apply", "Record the configuration, then sync.");
    apply(&config, &connectors, &mut state).await?;

    step(
        5,
        "Status",
        "Per rep, object and direction, as the admin guide's status table shows it.",
    );
    for s in state.statuses().map_err(|e| e.to_string())? {
        let rep = rep_email(&org, &s.rep);
        outln!(
            "   {rep:<26} {:<8} {:<24} {:<24} {} in sync",
            s.object.name(),
            s.direction.name(),
            s.status.label(),
            s.records_in_sync
        );
    }

    step(
        6,
        "Edit on both sides",
        "Celia changes Ana Diaz's job title in Outlook; a colleague changes it in Salesforce too (a conflict:\n   \
         the configuration says salesforce_wins). Omar gets a new contact in Salesforce.",
    );
    edit_both_sides(&org)?;

    step(
        7,
        "Plan again",
        "The conflict is reported with how the policy resolves it.",
    );
    show_plan(&config, &connectors, &state).await?;
    step(8, "Apply again", "");
    apply(&config, &connectors, &mut state).await?;

    step(9, "Plan once more", "Both sides agree: nothing left to do.");
    let done = show_plan(&config, &connectors, &state).await?;
    if !done {
        return Err("the last plan still has changes".into());
    }
    Ok(())
}

/// Prints the plan; true when it has no changes.
async fn show_plan(
    config: &crate::config::model::Config,
    connectors: &Connectors,
    state: &SqliteState,
) -> Result<bool, String> {
    let planned = workflow::plan(
        config,
        connectors,
        state,
        chrono::Utc::now(),
        &SyncOptions::default(),
        &BuildOptions::default(),
    )
    .await?;
    out!(
        "{}",
        super::plan::render_as(&planned.document, super::plan::PlanFormat::Human, false)
    );
    Ok(planned.document.summary.no_changes)
}

async fn apply(
    config: &crate::config::model::Config,
    connectors: &Connectors,
    state: &mut SqliteState,
) -> Result<(), String> {
    let now = chrono::Utc::now();
    let (canonical, hash) = ConfigRevision::canonical(config);
    state
        .apply(vec![StateChange::RecordApply {
            canonical,
            hash,
            applied_at: now,
            applied_by: "tether demo".into(),
        }])
        .map_err(|e| e.to_string())?;
    let report = run_cycle(
        config,
        &connectors.mail,
        &connectors.crm,
        state,
        now,
        &SyncOptions::default(),
        &mut StepBudget::unlimited(),
    )
    .await
    .map_err(|e| workflow::cycle_error(&e))?;
    outln!(
        "Applied: {} records written, {} failed.",
        report.exec.succeeded,
        report.exec.failed.len()
    );
    Ok(())
}

fn rep_email(org: &SandboxOrg, user_id: &str) -> String {
    org.rep_ids
        .iter()
        .position(|id| id == user_id)
        .map_or(user_id.to_string(), |i| seed::REPS[i].0.to_string())
}

fn edit_both_sides(org: &SandboxOrg) -> Result<(), String> {
    let celia = seed::REPS[0].0;
    let folder = org.sync_folder(celia)?;
    let ana = org
        .exchange
        .items(celia, &folder)
        .into_iter()
        .find_map(|item| match item {
            Item::Contact(c) if c.emails[0].as_deref() == Some("ana.diaz@northwind.example") => {
                c.item_id.map(|id| id.id)
            }
            _ => None,
        })
        .ok_or("Ana Diaz is not in Celia's Salesforce_Sync folder")?;
    org.exchange
        .edit_item(celia, &ana, |item| {
            if let Item::Contact(c) = item {
                c.job_title = Some("VP Purchasing".into());
            }
        })
        .ok_or("cannot edit Ana Diaz in Exchange")?;
    let sf = org.salesforce.handle();
    let ana_sf = sf
        .records("Contact")
        .into_iter()
        .find(|r| r.get("Email").and_then(|v| v.as_str()) == Some("ana.diaz@northwind.example"))
        .and_then(|r| r.get("Id").and_then(|v| v.as_str()).map(String::from))
        .ok_or("Ana Diaz is not in Salesforce")?;
    sf.update(
        "Contact",
        &ana_sf,
        serde_json::json!({"Title": "Chief Procurement Officer"}),
    )
    .map_err(|e| format!("{e:?}"))?;
    sf.insert(
        "Contact",
        serde_json::json!({"FirstName": "Eva", "LastName": "Nowak", "Email": "eva.nowak@litware.example",
                           "OwnerId": org.rep_ids[1]}),
    )
    .map_err(|e| format!("{e:?}"))?;
    Ok(())
}
