//! `tether status` end to end against both emulators: after an apply it shows the admin
//! guide's checks for the system and each rep, from the state alone; a mailbox outside the
//! impersonation scope, a wrong Exchange password and an email with no mailbox each show
//! "no" with what to do, while the other reps carry on.

use crate::common;
use crate::emulated;

use emulated::*;
use serde_json::json;
use tether_emulators::salesforce;

const REP: &str = "celia.kung@corp.com";
/// A mailbox in the Finance department: outside the service account's Sales scope.
const FIN: &str = "fin.person@corp.com";
/// A Salesforce user whose email no mailbox answers to.
const GHOST: &str = "ghost@corp.com";

async fn setup(users: &[&str]) -> Org {
    let org = start(
        salesforce::EmulatorOptions::default(),
        &format!(
            "  - name: Reps\n    members: {{ users: [{}] }}\n    contacts: {{ direction: both, conflict: salesforce_wins, scope: users_records }}\n    events: {{ direction: exchange_to_salesforce }}\n",
            users.join(", ")
        ),
    )
    .await;
    org.ews.add_mailbox(REP, Some("Sales"));
    org.ews.add_mailbox(FIN, Some("Finance"));
    for (i, email) in users.iter().enumerate() {
        let id = org.sf.handle().add_user(
            email,
            email,
            &format!("Rep{i}"),
            "Sales User",
            "Europe/Berlin",
        );
        org.sf
            .handle()
            .insert(
                "Contact",
                json!({"LastName": format!("Client{i}"), "Email": format!("client{i}@customer.com"), "OwnerId": id}),
            )
            .unwrap();
    }
    org
}

async fn tether(s: &Org, args: &[&str]) -> common::Output {
    s.tether(args, PASSWORD).await
}

/// The block of `status` output about one rep: its line and the indented lines below it.
fn rep_block(stdout: &str, email: &str) -> String {
    let mut lines = stdout.lines().skip_while(|l| *l != format!("  {email}"));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no block for {email} in:\n{stdout}"));
    let body: Vec<&str> = lines.take_while(|l| l.starts_with("   ")).collect();
    format!("{head}\n{}\n", body.join("\n"))
}

fn has(text: &str, line: &str) {
    assert!(text.contains(line), "missing `{line}` in:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_good_apply_every_check_is_yes() {
    let s = setup(&[REP]).await;
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);

    let compact = tether(&s, &["status", "org"]).await;
    assert_eq!(compact.code, 0, "{}", compact.stderr);
    has(
        &compact.stdout,
        &format!("\nReps: 1 (0 with problems)\n  {REP} (Reps): ok; 1 contacts, 0 events in sync\n"),
    );
    let status = tether(&s, &["status", "org", "--user", REP]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let out = &status.stdout;
    has(
        out,
        "  Service account recognised: yes — Exchange accepted the service account",
    );
    has(
        out,
        "  Outlook integration enabled: not checked — not needed",
    );
    has(
        out,
        "  Reps with linked Exchange and Salesforce addresses: 1",
    );
    has(out, "  contacts: last sync activity 20");
    has(
        out,
        "records synced: 1 in the last 60 minutes, 1 in the last 24 hours",
    );
    let rep = &rep_block(out, REP);
    for line in [
        "    Assigned to an active configuration: yes — \"Reps\"",
        "    Mailbox on a supported Exchange version: yes — Exchange Server 2016 (build 15.1.2507.6)",
        "    Recognised by the service account: yes",
        "    Reset status: not marked for reset",
        "    Salesforce_Sync folder found: yes",
        "    Calendar found: yes",
        &format!("    Addresses linked: yes — Salesforce {REP} ↔ mailbox {REP}"),
        "    Records in sync: 1 contacts, 0 events",
    ] {
        has(rep, line);
    }
    assert!(!rep.contains(": no —"), "{rep}");
    assert!(
        !rep.contains("→"),
        "no remediation when all is well:\n{rep}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_impersonation_shows_no_with_the_role_to_grant_and_the_others_sync() {
    let s = setup(&[REP, FIN]).await;
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(
        apply.code, 1,
        "a rep that cannot sync fails the apply:\n{}",
        apply.stdout
    );
    assert!(
        s.ews.find_folder(REP, "Salesforce_Sync").is_some(),
        "Celia synced anyway"
    );
    let once = tether(&s, &["run", "org", "--once"]).await;
    // `run --once` exits as apply does: 1 while a rep cannot be synced.
    assert_eq!(once.code, 1, "{}{}", once.stdout, once.stderr);
    has(&once.stdout, "1 reps could not be synced");

    // A failing check makes status exit 1, problems first; --exit-zero opts out.
    let compact = tether(&s, &["status", "org"]).await;
    assert_eq!(compact.code, 1, "{}{}", compact.stdout, compact.stderr);
    has(
        &compact.stdout,
        &format!(
            "Reps: 2 (1 with problems)\n! {FIN} (Reps): not recognised by the service account; 1 failed record\n  {REP} (Reps): ok"
        ),
    );
    let zero = tether(&s, &["status", "org", "--exit-zero"]).await;
    assert_eq!(zero.code, 0, "{}", zero.stderr);
    assert_eq!(zero.stdout, compact.stdout);
    let good = tether(&s, &["status", "org", "--user", REP]).await;
    assert_eq!(good.code, 0, "{}", good.stderr);
    has(&good.stdout, "  Service account recognised: yes");
    has(
        &rep_block(&good.stdout, REP),
        "    Recognised by the service account: yes",
    );
    let status = tether(&s, &["status", "org", "--user", FIN]).await;
    assert_eq!(status.code, 1, "{}", status.stderr);
    let fin = &rep_block(&status.stdout, FIN);
    has(
        fin,
        "    Recognised by the service account: no — ErrorImpersonateUserDenied:",
    );
    has(
        fin,
        "      → Give the service account the ApplicationImpersonation role for this mailbox",
    );
    has(
        fin,
        "    Mailbox on a supported Exchange version: not checked — the service account may not act for the mailbox",
    );
    has(fin, "    Assigned to an active configuration: yes");
    has(fin, &format!("see `tether errors --user {FIN}`"));

    // Failed records make errors exit 1; --exit-zero opts out.
    let errors = tether(&s, &["errors", "org", "--user", FIN]).await;
    assert_eq!(errors.code, 1, "{}", errors.stderr);
    // The apply's and the run's failure of Fin's mailbox: one row, counted.
    assert_eq!(
        errors.stdout.lines().filter(|l| l.contains(FIN)).count(),
        1,
        "{}",
        errors.stdout
    );
    has(
        &errors.stdout,
        &format!(" {FIN} the rep's mailbox: ErrorImpersonateUserDenied ×2 since "),
    );
    let zero = tether(&s, &["errors", "org", "--user", FIN, "--exit-zero"]).await;
    assert_eq!(zero.code, 0, "{}", zero.stderr);
    let none = tether(&s, &["errors", "org", "--user", REP]).await;
    assert_eq!(none.code, 0, "{}{}", none.stdout, none.stderr);
    has(&none.stdout, "No failed records.");
    has(&errors.stdout, "ErrorImpersonateUserDenied");
    has(
        &errors.stdout,
        "→ Give the service account the ApplicationImpersonation role for this mailbox.",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_exchange_password_fails_the_apply_and_status_says_what_to_do() {
    let s = setup(&[REP]).await;
    let apply = s
        .tether(&["apply", "org", "--auto-approve"], "Wrong-Password-99")
        .await;
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    has(
        &apply.stderr,
        "error: Exchange refused the service account; nothing was synced with Exchange\nCaused by: ",
    );
    has(
        &apply.stderr,
        "\nHint: check connections.exchange (org/tether.yaml:4:3): the username, and the password",
    );
    assert!(
        s.ews.find_folder(REP, "Salesforce_Sync").is_none(),
        "nothing touched"
    );

    let status = tether(&s, &["status", "org", "--user", REP]).await;
    assert_eq!(status.code, 1, "a refused service account fails status");
    has(
        &status.stdout,
        "  Service account recognised: no — Exchange refused the service account",
    );
    has(
        &status.stdout,
        "    → Check connections.exchange: the username, and the password",
    );
    let errors = tether(&s, &["errors", "org", "--user", REP]).await;
    has(&errors.stdout, "UNAUTHORIZED");
    has(
        &rep_block(&status.stdout, REP),
        "    Recognised by the service account: not checked — Exchange refused the service account (see System)",
    );
    for out in [&apply, &status] {
        assert!(
            !out.stdout.contains("Wrong-Password-99") && !out.stderr.contains("Wrong-Password-99")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_with_no_mailbox_is_not_linked_and_user_and_json_narrow_the_report() {
    let s = setup(&[REP, GHOST]).await;
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);

    let status = tether(&s, &["status", "org", "--user", "Ghost@Corp.com"]).await;
    assert_eq!(status.code, 1, "addresses not linked: {}", status.stderr);
    assert!(
        !status.stdout.contains(&format!("  {REP}\n")),
        "--user shows one rep:\n{}",
        status.stdout
    );
    let ghost = &rep_block(&status.stdout, GHOST);
    has(ghost, "    Addresses linked: no — ErrorNonExistentMailbox:");
    has(
        ghost,
        "      → Check that the rep's Salesforce email is the mailbox's primary SMTP address",
    );
    has(ghost, "additional_domains");
    has(
        &status.stdout,
        "  Reps with linked Exchange and Salesforce addresses: 1",
    );

    let json = tether(&s, &["status", "org", "--format", "json", "--user", GHOST])
        .await
        .json();
    assert_eq!(json["format_version"], "2.0");
    let system = &json["system"];
    assert_eq!(system["service_account_recognised"]["value"], "yes");
    assert_eq!(
        system["outlook_integration_enabled"]["value"],
        "not_checked"
    );
    assert_eq!(system["reps_linked"], 1);
    assert!(system["objects"]["contact"]["last_sync_activity"].is_string());
    assert_eq!(
        system["objects"]["contact"]["records_synced_last_24_hours"],
        1
    );
    let reps = json["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 1);
    let rep = &reps[0];
    assert_eq!(rep["rep"], GHOST);
    assert_eq!(rep["configuration"], "Reps");
    let checks = &rep["checks"];
    assert_eq!(checks["assigned_to_active_configuration"]["value"], "yes");
    assert_eq!(checks["addresses_linked"]["value"], "no");
    assert!(checks["addresses_linked"]["remediation"].is_string());
    assert_eq!(
        checks["recognised_by_service_account"]["value"],
        "not_checked"
    );
    assert!(
        checks["recognised_by_service_account"]
            .get("remediation")
            .is_none()
    );
    assert_eq!(rep["reset"], serde_json::Value::Null);
    assert!(rep["errors"].as_u64().unwrap() >= 1);

    let good = tether(&s, &["status", "org", "--format", "json", "--user", REP])
        .await
        .json();
    let checks = &good["reps"][0]["checks"];
    for key in [
        "assigned_to_active_configuration",
        "mailbox_on_supported_exchange_version",
        "recognised_by_service_account",
        "salesforce_sync_folder_found",
        "calendar_found",
        "addresses_linked",
    ] {
        assert_eq!(checks[key]["value"], "yes", "{key}: {}", checks[key]);
    }
    assert_eq!(good["reps"][0]["records_in_sync"]["contact"], 1);

    let unknown = tether(&s, &["status", "org", "--user", "nobody@corp.com"]).await;
    assert_eq!(unknown.code, 1);
    has(&unknown.stderr, "nobody@corp.com is not in the state");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rep_removed_from_every_configuration_shows_not_assigned() {
    let s = setup(&[REP, FIN]).await;
    tether(&s, &["apply", "org", "--auto-approve"]).await;
    let path = s.scratch.path("org/tether.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let only_celia = text.replace(
        &format!("users: [{REP}, {FIN}]"),
        &format!("users: [{REP}]"),
    );
    assert_ne!(text, only_celia);
    std::fs::write(&path, only_celia).unwrap();
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);

    // Taken out on purpose: not a problem.
    let compact = tether(&s, &["status", "org"]).await;
    assert_eq!(compact.code, 0, "{}{}", compact.stdout, compact.stderr);
    has(
        &compact.stdout,
        &format!("  {FIN}: not in an active configuration"),
    );
    let status = tether(&s, &["status", "org", "--user", FIN]).await;
    let fin = &rep_block(&status.stdout, FIN);
    has(
        fin,
        "    Assigned to an active configuration: no — in no active sync configuration",
    );
    has(fin, "      → Add the rep to a sync configuration");
    has(
        fin,
        "    Recognised by the service account: not checked — the rep is in no active sync configuration",
    );
}
