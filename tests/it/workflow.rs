//! The GitOps loop end to end against both emulators: plan shows the change, apply makes
//! it, and planning again says "No changes." (exit 0 with --detailed-exitcode). A second
//! apply told not to wait (`--lock-timeout 0s`) while the state is locked fails at once
//! naming the holder, and no secret appears
//! in any output or in the state file.

use crate::cli_world;
use crate::common;
use crate::emulated;
use crate::reliability_doc;

use emulated::*;
use serde_json::json;
use tether_emulators::salesforce;

const REP: &str = "celia.kung@corp.com";

async fn setup() -> Org {
    let org = start(
        salesforce::EmulatorOptions::default(),
        &format!(
            "  - name: Reps\n    members: {{ users: [{REP}] }}\n    contacts: {{ direction: both, conflict: salesforce_wins, scope: users_records }}\n"
        ),
    )
    .await;
    org.ews.add_mailbox(REP, Some("Sales"));
    let rep_id = org
        .sf
        .handle()
        .add_user(REP, REP, "Celia Kung", "Sales User", "Europe/Berlin");
    org.sf
        .handle()
        .insert("Contact", json!({"FirstName": "Ana", "LastName": "Diaz", "Email": "ana@customer.com", "OwnerId": rep_id}))
        .unwrap();
    org
}

async fn tether_async(s: &Org, args: &[&str]) -> common::Output {
    s.tether(args, PASSWORD).await
}

fn no_secrets(text: &str) {
    for secret in [PASSWORD, SF_SECRET] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_apply_plan_ends_with_no_changes() {
    let s = setup().await;
    let plan = tether_async(&s, &["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("+ sync configuration \"Reps\""),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("contacts Salesforce → Exchange: 1 to create"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .trim_end()
            .ends_with("Exchange: 1 to create, 0 to update, 0 to delete."),
        "{}",
        plan.stdout
    );
    assert!(
        !s.scratch.path("org/.tether/state.db").exists(),
        "plan must not create the state"
    );
    assert!(
        plan.stdout
            .contains(&format!("+ {REP}: create folder: Contacts/Salesforce_Sync")),
        "{}",
        plan.stdout
    );
    assert!(
        s.ews.find_folder(REP, "Salesforce_Sync").is_none(),
        "plan must not create the folder"
    );

    let refused = tether_async(&s, &["apply", "org"]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("pass --auto-approve"),
        "{}",
        refused.stderr
    );

    let apply = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply
            .stdout
            .contains("Applied: 1 records written, 0 failed."),
        "{}",
        apply.stdout
    );
    assert!(
        s.ews.find_folder(REP, "Salesforce_Sync").is_some(),
        "apply creates the folder"
    );

    let again = tether_async(&s, &["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again
            .stdout
            .contains("No changes. Sync settings and data are up to date."),
        "{}",
        again.stdout
    );

    let json = tether_async(&s, &["plan", "org", "--format", "json"]).await;
    assert_eq!(json.json()["summary"]["no_changes"], true);

    for out in [&plan, &refused, &apply, &again, &json] {
        no_secrets(&out.stdout);
        no_secrets(&out.stderr);
    }
    let state = std::fs::read(s.scratch.path("org/.tether/state.db")).unwrap();
    no_secrets(&String::from_utf8_lossy(&state));
    assert_eq!(
        s.sf.handle().records("Contact").len(),
        1,
        "no duplicate in Salesforce"
    );
}

/// `api_budget_percent` stops a sync before a call once the org's usage, read from the
/// documented `Sforce-Limit-Info` (`api-usage=…; per-app-api-usage=…(appName=…)`), reaches
/// the budget; nothing is written, and the message says what to do.
#[tokio::test(flavor = "multi_thread")]
async fn api_budget_stop_fires_end_to_end_on_the_documented_header() {
    let s = setup().await;
    let config = s.scratch.path("org/tether.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        yaml.replacen("    auth:\n", "    api_budget_percent: 50\n    auth:\n", 1),
    )
    .unwrap();
    let h = s.sf.handle();
    h.set_daily_allowance(100);
    h.set_app_quota("tether", 1000);
    h.set_api_used(49);
    let out = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("stopped before exceeding tether's API budget: the org has used 50 of 100 daily API requests and tether may use the org only up to 50; raise the budget or run later"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(h.records("Contact").len() == 1, "nothing written");
    assert_eq!(h.api_usage().0, 50, "the stop sends no further call");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_apply_fails_at_once_naming_the_lock_holder() {
    let s = setup().await;
    let state = s.scratch.path("org/.tether/state.db");
    let held = tether::lock::acquire(&state, "apply", chrono::Utc::now()).unwrap();
    let out = tether_async(
        &s,
        &["apply", "org", "--auto-approve", "--lock-timeout", "0s"],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("the state is locked: `apply` by "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("tether force-unlock {}", held.info.id)),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_syncs_with_the_applied_configuration_and_stops_cleanly_on_sigterm() {
    let s = setup().await;
    let before = tether_async(&s, &["run", "org", "--once"]).await;
    assert_eq!(before.code, 1);
    assert!(
        before.stderr.contains("run `tether apply` first"),
        "{}",
        before.stderr
    );

    let apply = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let rep_id =
        s.sf.handle()
            .records("User")
            .into_iter()
            .find(|u| u.get("Email").and_then(|v| v.as_str()) == Some(REP))
            .and_then(|u| u.get("Id").and_then(|v| v.as_str()).map(String::from))
            .unwrap();
    s.sf.handle()
        .insert("Contact", json!({"FirstName": "Eva", "LastName": "Nowak", "Email": "eva@litware.example", "OwnerId": rep_id}))
        .unwrap();
    let once = tether_async(&s, &["run", "org", "--once"]).await;
    assert_eq!(once.code, 0, "{}{}", once.stdout, once.stderr);
    assert!(
        once.stdout.contains(" cycle: 1 records written, 0 failed"),
        "{}",
        once.stdout
    );
    let plan = tether_async(&s, &["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);

    // SIGTERM between cycles: exit 0 at once, state saved.
    let dir = s.scratch.dir.path().to_path_buf();
    let code = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["run", "org", "--interval", "1h"])
            .current_dir(&dir)
            .envs([
                ("TEST_EWS_PASSWORD", PASSWORD),
                ("TEST_SF_SECRET", SF_SECRET),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.contains(" cycle: "), "{first}");
        let started = std::time::Instant::now();
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert_eq!(
            rest,
            ["stopping: the last cycle finished and its state is saved"]
        );
        status.code()
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_errors_and_reset_report_and_relink_without_duplicates() {
    let s = setup().await;
    // A contact Celia keeps in Outlook that the org's validation rule refuses.
    let contacts = s.ews.folder_id(REP, "contacts").unwrap();
    let folder = s
        .ews
        .create_folder(REP, &contacts, "Salesforce_Sync", "IPF.Contact")
        .unwrap();
    s.ews.put_contact(
        REP,
        &folder,
        tether_emulators::exchange::model::Contact {
            given_name: Some("Rex".into()),
            surname: Some("Reject".into()),
            emails: [Some("rex@customer.com".into()), None, None],
            ..Default::default()
        },
    );
    s.sf.handle().validation_rule(
        "Contact",
        "LastName",
        json!("Reject"),
        "Last name may not be Reject",
    );
    let apply = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(
        apply.code, 1,
        "a failed record makes apply exit non-zero:\n{}",
        apply.stdout
    );
    assert!(
        apply.stdout.contains("1 failed (see `tether errors`)"),
        "{}",
        apply.stdout
    );

    let compact = tether_async(&s, &["status", "org"]).await;
    assert_eq!(compact.code, 1, "a failed record: {}", compact.stderr);
    assert!(
        compact
            .stdout
            .contains(&format!("! {REP} (Reps): 1 failed record; ")),
        "{}",
        compact.stdout
    );
    let status = tether_async(&s, &["status", "org", "--user", REP]).await;
    assert_eq!(status.code, 1, "{}", status.stderr);
    assert!(
        status.stdout.contains(&format!("  {REP}\n")),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("Reps with linked Exchange and Salesforce addresses: 1"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains(&format!("Errors: 1 (see `tether errors --user {REP}`)")),
        "{}",
        status.stdout
    );
    let json = tether_async(&s, &["status", "org", "--format", "json"])
        .await
        .json();
    assert_eq!(json["reps"][0]["rep"], REP);

    let errors = tether_async(&s, &["errors", "org", "--user", REP]).await;
    assert_eq!(errors.code, 1, "a record failed in the last cycle");
    assert!(
        errors.stdout.contains(" contact, Exchange item ")
            && errors
                .stdout
                .contains(" (exchange to salesforce): FIELD_CUSTOM_VALIDATION_EXCEPTION\n"),
        "named by the record, labelled by the code (the rule's message names no field):\n{}",
        errors.stdout
    );
    assert!(
        errors
            .stdout
            .contains("FIELD_CUSTOM_VALIDATION_EXCEPTION: Last name may not be Reject"),
        "{}",
        errors.stdout
    );
    assert!(
        errors
            .stdout
            .contains("    → Fix the record so it passes the org's validation rules"),
        "{}",
        errors.stdout
    );
    let csv = tether_async(&s, &["errors", "org", "--format", "csv", "--since", "1h"]).await;
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "time,rep,object,direction,record_ids,code,message,suggestion,first_time,count,label,acknowledged"
    );
    assert_eq!(lines.len(), 2, "{}", csv.stdout);

    let contacts_before = s.sf.handle().records("Contact").len();
    let reset = tether_async(&s, &["reset", "org", "--user", REP]).await;
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    assert!(!reset.stderr.contains("deprecated"), "{}", reset.stderr);
    assert!(
        reset.stdout.contains("Marked for reset"),
        "{}",
        reset.stdout
    );
    assert!(
        tether_async(&s, &["status", "org", "--user", REP])
            .await
            .stdout
            .contains("Reset status: Marked for reset")
    );
    let compact = tether_async(&s, &["status", "org"]).await.stdout;
    assert!(compact.contains("; marked for reset"), "{compact}");
    // The older form still works, saying it is deprecated.
    let unknown = tether_async(&s, &["reset", "nobody@corp.com", "--config", "org"]).await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("note: `--config` is deprecated; write `tether reset org --user EMAIL`"),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown
            .stderr
            .contains("nobody@corp.com has not been synced"),
        "{}",
        unknown.stderr
    );

    let again = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert!(
        again.stdout.contains("Applied:"),
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert_eq!(
        s.sf.handle().records("Contact").len(),
        contacts_before,
        "reset re-links, never duplicates"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_change_is_planned_applied_and_then_quiet() {
    let s = setup().await;
    assert_eq!(
        tether_async(&s, &["apply", "org", "--auto-approve"])
            .await
            .code,
        0
    );
    let path = s.scratch.path("org/tether.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replace(
        "contacts: { direction: both, conflict: salesforce_wins, scope: users_records }",
        "contacts: { direction: both, conflict: exchange_wins, scope: users_records }\n    events: { direction: exchange_to_salesforce, since: LAST_N_DAYS:7 }",
    );
    assert_ne!(text, changed);
    std::fs::write(&path, changed).unwrap();

    let plan = tether_async(&s, &["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(
            "~ sync configuration \"Reps\": contacts.conflict: salesforce_wins → exchange_wins"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("+ sync configuration \"Reps\": events.since: LAST_N_DAYS:7"),
        "{}",
        plan.stdout
    );
    let apply = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let again = tether_async(&s, &["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

/// SIGTERM in the middle of a large sync: the batch in flight is finished and recorded, the
/// process exits 0 soon after, and the next run carries on without a duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_sync_finishes_the_batch_in_flight_and_the_next_run_converges() {
    use cli_world::World;
    use tether::state::StateStore;
    // Every EWS request takes 40 ms, so the Exchange writes (one CreateItem batch per rep
    // and object) take a while.
    let mut w = World::start_with(
        6,
        tether_emulators::exchange::EmulatorOptions {
            latency: Some(std::time::Duration::from_millis(40)),
            ..Default::default()
        },
    )
    .await;
    let apply = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    w.seed(6);
    let batches = 2 * w.reps.len() as u64; // Salesforce → Exchange creates: contacts, events
    let creates_before = w.ews.calls("CreateItem");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["run", "org", "--interval", "1h"])
        .current_dir(w.dir())
        .envs(cli_world::secrets())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first Exchange write batch, then ask the run to stop.
    let waited = std::time::Instant::now();
    while w.ews.calls("CreateItem") == creates_before {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "no write started"
        );
        assert!(child.try_wait().unwrap().is_none(), "run ended early");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let signalled = std::time::Instant::now();
    let pid = child.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let took = signalled.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("SIGTERM to exit: {took:?}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "took {took:?} to stop"
    );
    assert_eq!(
        stdout.trim(),
        "stopping: the batch in flight finished and its state is saved; the next run carries on from there"
    );
    // It stopped part way, with what it wrote recorded.
    let written = w.ews.calls("CreateItem") - creates_before;
    assert!(
        written < batches,
        "{written} of {batches} batches: not stopped"
    );
    let partial = w.tally(); // panics on a duplicate
    assert!(!partial.unsynced.is_empty());
    let state = tether::state::SqliteState::open(&w.state_path()).unwrap();
    let linked: usize = w
        .rep_ids
        .iter()
        .map(|rep| {
            state
                .links(rep, tether::model::ObjectKind::Contact)
                .unwrap()
                .len()
                + state
                    .links(rep, tether::model::ObjectKind::Event)
                    .unwrap()
                    .len()
        })
        .sum();
    assert_eq!(
        linked,
        partial.synced.len(),
        "every record written before the stop is recorded"
    );
    drop(state);

    let next = w.tether(&["run", "org", "--once"]).await;
    assert_eq!(next.code, 0, "{}{}", next.stdout, next.stderr);
    let t = w.tally();
    assert!(t.unsynced.is_empty(), "{:?}", t.unsynced);
    let plan = w.tether(&["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);
    reliability_doc::row(
        &reliability_doc::CRASHES,
        "sigterm_mid_sync_finishes_the_batch_in_flight_and_the_next_run_converges",
        &[
            &format!(
                "SIGTERM to `tether run` while it writes ({} reps × 24 records; every EWS request takes 40 ms)",
                w.reps.len()
            ),
            "finishes and records the batch in flight, starts no other, exits 0; cursors stay where they were, so the next run carries on",
            "exit 0 within 5 s of the signal; every record written before the stop recorded in the state; the next `run --once` converged with no duplicate; next plan No changes",
        ],
    );
}

/// `plan --detail` after an edit in Salesforce: the Exchange item the update overwrites is
/// read by id, so the plan names exactly the field that changes; its values show only with
/// --show-values. Apply shows plain progress lines on stderr (no terminal here).
#[tokio::test(flavor = "multi_thread")]
async fn detail_names_the_changed_field_and_apply_shows_progress() {
    let s = setup().await;
    let apply = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply.stderr.contains("syncing 1 record for 1 rep\n"),
        "{}",
        apply.stderr
    );
    assert!(
        apply
            .stderr
            .contains(&format!("{REP}: 1 written, 0 failed (")),
        "{}",
        apply.stderr
    );
    assert!(
        apply.stderr.contains("done: 1 of 1 records in "),
        "{}",
        apply.stderr
    );
    let contact = s.sf.handle().records("Contact")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    s.sf.handle()
        .update("Contact", &contact, json!({"Title": "Head of Sales"}))
        .unwrap();

    let names = tether_async(&s, &["plan", "org", "--detail"]).await;
    assert_eq!(names.code, 0, "{}{}", names.stdout, names.stderr);
    assert!(
        names
            .stdout
            .contains("contacts Salesforce → Exchange: 1 to update"),
        "{}",
        names.stdout
    );
    assert!(
        names
            .stdout
            .contains("(changed in Salesforce)\n          fields: JobTitle\n"),
        "{}",
        names.stdout
    );
    for value in ["Head of Sales", "Ana", "ana@customer.com"] {
        assert!(!names.stdout.contains(value), "{value}:\n{}", names.stdout);
    }

    let values = tether_async(&s, &["plan", "org", "--show-values"]).await;
    assert_eq!(values.code, 0, "{}{}", values.stdout, values.stderr);
    assert!(
        values
            .stdout
            .contains("          JobTitle: \"\" → \"Head of Sales\"\n"),
        "{}",
        values.stdout
    );
    // A saved plan keeps the field names but never the values: plan files travel.
    let saved = tether_async(
        &s,
        &["plan", "org", "--show-values", "--out", "edit.tfplan"],
    )
    .await;
    assert_eq!(saved.code, 0, "{}{}", saved.stdout, saved.stderr);
    assert!(
        saved.stdout.contains("\"Head of Sales\""),
        "{}",
        saved.stdout
    );
    let file = std::fs::read_to_string(s.scratch.path("edit.tfplan")).unwrap();
    assert!(
        file.contains("JobTitle") && !file.contains("Head of Sales"),
        "{file}"
    );
    let json = tether_async(&s, &["plan", "org", "--detail", "--format", "json"]).await;
    let fields = &json.json()["record_changes"][0]["records"][0]["fields"];
    assert_eq!(fields, &json!([{"field": "JobTitle"}]), "{}", json.stdout);
}

/// A contact Celia keeps in Outlook, in Salesforce_Sync (created when missing), working for
/// `company`.
fn outlook_contact(s: &Org, first: &str, last: &str, company: &str) {
    let folder = s
        .ews
        .find_folder(REP, "Salesforce_Sync")
        .unwrap_or_else(|| {
            let contacts = s.ews.folder_id(REP, "contacts").unwrap();
            s.ews
                .create_folder(REP, &contacts, "Salesforce_Sync", "IPF.Contact")
                .unwrap()
        });
    s.ews.put_contact(
        REP,
        &folder,
        tether_emulators::exchange::model::Contact {
            given_name: Some(first.into()),
            surname: Some(last.into()),
            company_name: Some(company.into()),
            emails: [
                Some(format!("{}@customer.com", first.to_lowercase())),
                None,
                None,
            ],
            ..Default::default()
        },
    );
}

fn account_names(s: &Org) -> Vec<String> {
    s.sf.handle()
        .records("Account")
        .iter()
        .filter_map(|a| a["Name"].as_str().map(String::from))
        .collect()
}

/// The Account apply creates for a contact's company is a write like any other: the plan
/// lists it under its own row in every format (its name only with --show-values).
#[tokio::test(flavor = "multi_thread")]
async fn plan_lists_accounts_apply_creates() {
    let s = setup().await;
    outlook_contact(&s, "Bo", "Lund", "Globex Nordic");
    let plan = tether_async(&s, &["plan", "org", "--detail"]).await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout
            .contains("accounts Exchange → Salesforce: 1 to create"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("Globex"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Salesforce: 2 to create, 0 to update, 0 to delete"),
        "the contact and its Account: {}",
        plan.stdout
    );
    let markdown = tether_async(&s, &["plan", "org", "--format", "markdown"]).await;
    assert!(
        markdown
            .stdout
            .contains("| accounts | Exchange → Salesforce | 1 to create |"),
        "{}",
        markdown.stdout
    );
    let json = tether_async(&s, &["plan", "org", "--format", "json"])
        .await
        .json();
    let rows = json["record_changes"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["object"] == "account" && r["target"] == "salesforce" && r["create"] == 1),
        "{json:#}"
    );
    let values = tether_async(&s, &["plan", "org", "--show-values"]).await;
    assert!(
        values.stdout.contains("Name: \"Globex Nordic\""),
        "{}",
        values.stdout
    );

    let apply = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(account_names(&s), ["Globex Nordic"]);
    let again = tether_async(&s, &["plan", "org"]).await;
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

/// A contact create Salesforce refuses leaves no Account behind: the Account created for
/// its company is deleted again, and its error says so. The Account of a contact written
/// in the same batch stays.
#[tokio::test(flavor = "multi_thread")]
async fn failed_contact_create_leaves_no_orphan_account() {
    let s = setup().await;
    outlook_contact(&s, "Rex", "Reject", "Initech");
    outlook_contact(&s, "Bo", "Lund", "Globex Nordic");
    s.sf.handle().validation_rule(
        "Contact",
        "LastName",
        json!("Reject"),
        "Last name may not be Reject",
    );
    let apply = tether_async(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(account_names(&s), ["Globex Nordic"], "no orphan Account");
    let errors = tether_async(&s, &["errors", "org"]).await;
    assert!(
        errors.stdout.contains("Last name may not be Reject")
            && errors
                .stdout
                .contains("created for its company was deleted again"),
        "{}",
        errors.stdout
    );
}

/// The rep deletes Salesforce_Sync in Outlook: Exchange moves it, with its id, to Deleted
/// Items. The next apply makes a new one under Contacts, and deletes none of the contacts it
/// held in Salesforce (they are unknown in Exchange now, not deleted there).
#[tokio::test(flavor = "multi_thread")]
async fn a_sync_folder_moved_to_deleted_items_is_recreated_and_its_contacts_stay_in_salesforce() {
    let mut w = cli_world::World::start(1).await;
    w.seed(3);
    let first = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let mail = w.reps[0].clone();
    let contacts_in_salesforce = w.org.sf.handle().records("Contact").len();
    assert_eq!(contacts_in_salesforce, 6, "3 from each side");
    let old = w.org.ews.find_folder(&mail, "Salesforce_Sync").unwrap();
    assert!(w.org.ews.delete_folder(&mail, &old, false));
    let deleted_items = w.org.ews.folder_id(&mail, "deleteditems").unwrap();
    assert_eq!(w.org.ews.folder_parent(&mail, &old), Some(deleted_items));

    let next = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(next.code, 0, "{}{}", next.stdout, next.stderr);
    let contacts = w.org.ews.folder_id(&mail, "contacts").unwrap();
    let new = w
        .org
        .ews
        .find_folder_in(&mail, &contacts, "Salesforce_Sync")
        .expect("Salesforce_Sync made again under Contacts");
    assert_ne!(new, old);
    assert_eq!(
        w.org.sf.handle().records("Contact").len(),
        contacts_in_salesforce,
        "no contact deleted in Salesforce:\n{}",
        next.stdout
    );
    let plan = w.tether(&["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
}

/// All-day events in zones east of UTC that the old 38-zone table did not know: midnight
/// in Taipei or Nairobi is the previous day in UTC, so a UTC fallback dates them a day early.
#[tokio::test(flavor = "multi_thread")]
async fn all_day_events_in_taipei_and_east_africa_reach_salesforce_on_their_day() {
    use tether_emulators::exchange::model::CalendarEvent;
    let w = cli_world::World::start(1).await;
    let mail = w.reps[0].clone();
    let day = (chrono::Utc::now() + chrono::Duration::days(3)).date_naive();
    for (subject, zone) in [
        ("Taipei fair", "Taipei Standard Time"),
        ("Nairobi summit", "E. Africa Standard Time"),
    ] {
        let mut e = CalendarEvent::all_day(day, day + chrono::Duration::days(1), zone).unwrap();
        e.subject = Some(subject.into());
        w.org.ews.put_event(&mail, e).unwrap();
    }
    let out = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let events = w.org.sf.handle().records("Event");
    for subject in ["Taipei fair", "Nairobi summit"] {
        let e = events
            .iter()
            .find(|e| e.get("Subject").and_then(|s| s.as_str()) == Some(subject))
            .unwrap_or_else(|| panic!("{subject} not in Salesforce:\n{}", out.stdout));
        assert_eq!(e.get("IsAllDayEvent"), Some(&json!(true)), "{subject}");
        assert_eq!(
            e.get("ActivityDate").and_then(|d| d.as_str()),
            Some(day.to_string().as_str()),
            "{subject}"
        );
    }
}
