//! Saved plans end to end against both emulators: `tether plan --out FILE` then
//! `tether apply FILE` does exactly that plan; a plan that is stale, expired, edited or
//! applied already is refused saying why; a record changed between plan and apply is left
//! alone, reported, and planned next time. Also `plan --user` and `plan --refresh=false`.

use crate::common;
use crate::emulated;

use emulated::*;
use serde_json::{Value, json};
use tether_emulators::salesforce;

const REP: &str = "celia.kung@corp.com";
const OTHER: &str = "omar.reyes@corp.com";

/// Celia syncs; with `omar`, Omar too, though his mailbox cannot be read.
async fn setup(contacts: &[&str], omar: bool) -> (Org, String) {
    let members = if omar {
        format!("{REP}, {OTHER}")
    } else {
        REP.to_string()
    };
    let org = start(
        salesforce::EmulatorOptions::default(),
        &format!(
            "  - name: Reps\n    members: {{ users: [{members}] }}\n    contacts: {{ direction: both, conflict: salesforce_wins, scope: users_records }}\n"
        ),
    )
    .await;
    org.ews.add_mailbox(REP, Some("Sales"));
    // Omar's mailbox is outside the service account's impersonation scope: reading it fails.
    org.ews.add_mailbox(OTHER, Some("Marketing"));
    let rep_id = org
        .sf
        .handle()
        .add_user(REP, REP, "Celia Kung", "Sales User", "Europe/Berlin");
    org.sf
        .handle()
        .add_user(OTHER, OTHER, "Omar Reyes", "Sales User", "Europe/Berlin");
    for last in contacts {
        add_contact(&org, &rep_id, last);
    }
    (org, rep_id)
}

fn add_contact(org: &Org, owner: &str, last: &str) -> String {
    org.sf
        .handle()
        .insert(
            "Contact",
            json!({"LastName": last, "Email": format!("{}@customer.com", last.to_lowercase()),
                   "Title": "Buyer", "OwnerId": owner}),
        )
        .unwrap()
}

fn sf_id(org: &Org, last: &str) -> String {
    org.sf
        .handle()
        .records("Contact")
        .into_iter()
        .find(|r| r.get("LastName").and_then(Value::as_str) == Some(last))
        .and_then(|r| r.get("Id").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| panic!("no Salesforce contact {last}"))
}

fn retitle_in_salesforce(org: &Org, last: &str, title: &str) {
    org.sf
        .handle()
        .update("Contact", &sf_id(org, last), json!({ "Title": title }))
        .unwrap();
}

/// Celia's Salesforce_Sync contacts in Exchange: surname → job title.
fn exchange_titles(org: &Org) -> Vec<(String, String)> {
    let Some(folder) = org.ews.find_folder(REP, "Salesforce_Sync") else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = org
        .ews
        .items(REP, &folder)
        .into_iter()
        .filter_map(|i| match i {
            tether_emulators::exchange::model::Item::Contact(c) => Some((
                c.surname.clone().unwrap_or_default(),
                c.job_title.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn titles(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn tether(org: &Org, args: &[&str]) -> common::Output {
    let out = org.tether(args, PASSWORD).await;
    for text in [&out.stdout, &out.stderr] {
        no_secrets(text);
    }
    out
}

fn no_secrets(text: &str) {
    for secret in [PASSWORD, SF_SECRET] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

fn ok(out: &common::Output) {
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

fn refused(out: &common::Output, reason: &str) {
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(reason),
        "expected `{reason}` in:\n{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_applies_exactly_and_the_next_plan_is_quiet() {
    let (s, _) = setup(&["Diaz"], false).await;
    let state = s.scratch.path("org/.tether/state.db");
    let plan = tether(&s, &["plan", "org", "--out", "first.tfplan"]).await;
    ok(&plan);
    assert!(
        plan.stdout
            .contains("Saved the plan to first.tfplan; apply it with `tether apply first.tfplan`"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stderr.contains("Created the state file"),
        "{}",
        plan.stderr
    );
    assert!(
        state.exists(),
        "--out creates the state the plan is signed with"
    );
    assert!(
        s.ews.find_folder(REP, "Salesforce_Sync").is_none(),
        "planning writes nothing"
    );
    let text = std::fs::read_to_string(s.scratch.path("first.tfplan")).unwrap();
    no_secrets(&text);
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["plan"]["config_paths"], json!(["org"]));
    let ops = file["plan"]["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{text}");
    assert_eq!(ops[0]["action"], "create_in_exchange");
    assert_eq!(ops[0]["salesforce_id"], sf_id(&s, "Diaz").as_str());
    assert!(
        ops[0]["salesforce_version"].as_str().is_some(),
        "the SystemModstamp it was planned against: {text}"
    );

    // No --auto-approve and no terminal: a saved plan was reviewed when it was made.
    let apply = tether(&s, &["apply", "first.tfplan"]).await;
    ok(&apply);
    assert!(
        apply
            .stdout
            .contains("contacts Salesforce → Exchange: 1 to create"),
        "the saved plan is shown:\n{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("  Exchange: 1 created, 0 updated, 0 deleted, 0 failed, 0 not attempted"),
        "{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("  Salesforce: 0 created, 0 updated, 0 deleted, 0 failed, 0 not attempted"),
        "{}",
        apply.stdout
    );
    assert_eq!(exchange_titles(&s), titles(&[("Diaz", "Buyer")]));

    let again = tether(&s, &["plan", "org", "--detailed-exitcode"]).await;
    ok(&again);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    let twice = tether(&s, &["apply", "first.tfplan"]).await;
    refused(
        &twice,
        "the saved plan was already applied; run `tether plan` again",
    );
    assert_eq!(s.sf.handle().records("Contact").len(), 1, "no duplicate");
    no_secrets(&String::from_utf8_lossy(&std::fs::read(&state).unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_is_refused_when_edited_expired_or_stale() {
    let (s, _) = setup(&["Diaz"], false).await;
    for (file, expiry) in [("a", "24h"), ("b", "1s"), ("c", "24h"), ("d", "24h")] {
        let out = tether(
            &s,
            &[
                "plan",
                "org",
                "--out",
                &format!("{file}.tfplan"),
                "--expires-in",
                expiry,
            ],
        )
        .await;
        ok(&out);
    }

    // Edited by hand: one byte of the plan id changed.
    let path = s.scratch.path("c.tfplan");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\"plan_id\": \"").unwrap() + "\"plan_id\": \"".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, bytes).unwrap();
    refused(
        &tether(&s, &["apply", "c.tfplan"]).await,
        "the saved plan does not verify: it was edited, or made against another state; run `tether plan` again",
    );

    // Expired: wait until its expiry has passed.
    let text = std::fs::read_to_string(s.scratch.path("b.tfplan")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    let expires: chrono::DateTime<chrono::Utc> = file["plan"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wait = expires - chrono::Utc::now() + chrono::Duration::milliseconds(100);
    if let Ok(wait) = wait.to_std() {
        tokio::time::sleep(wait).await;
    }
    refused(
        &tether(&s, &["apply", "b.tfplan"]).await,
        &format!(
            "the saved plan expired at {}; run `tether plan` again",
            expires.format("%Y-%m-%d %H:%M UTC")
        ),
    );

    // Stale: another apply happened since d was made.
    ok(&tether(&s, &["apply", "a.tfplan"]).await);
    refused(
        &tether(&s, &["apply", "d.tfplan"]).await,
        "saved plan is stale: state generation 1, plan made at 0; run `tether plan` again",
    );
    // Nothing refused wrote anything.
    assert_eq!(exchange_titles(&s), titles(&[("Diaz", "Buyer")]));

    // A changed configuration is refused too.
    let e = tether(&s, &["plan", "org", "--out", "e.tfplan"]).await;
    ok(&e);
    let config = s.scratch.path("org/tether.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, yaml.replace("salesforce_wins", "exchange_wins")).unwrap();
    refused(
        &tether(&s, &["apply", "e.tfplan"]).await,
        "the configuration changed since the plan was made; run `tether plan` again",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_changed_after_the_plan_are_left_for_the_next_plan() {
    let (s, rep_id) = setup(&["Alba", "Bose", "Dunn"], false).await;
    ok(&tether(&s, &["apply", "org", "--auto-approve"]).await);
    assert_eq!(
        exchange_titles(&s),
        titles(&[("Alba", "Buyer"), ("Bose", "Buyer"), ("Dunn", "Buyer")])
    );

    for last in ["Alba", "Bose", "Dunn"] {
        retitle_in_salesforce(&s, last, "Director");
    }
    let plan = tether(&s, &["plan", "org", "--out", "p.tfplan"]).await;
    ok(&plan);
    assert!(
        plan.stdout
            .contains("contacts Salesforce → Exchange: 3 to update"),
        "{}",
        plan.stdout
    );
    // Between plan and apply: Bose is edited again in Salesforce, Celia edits Dunn in
    // Outlook, and a new contact appears. SystemModstamp has whole seconds, so the edit
    // comes a second later, as a person's would: one in the same second would carry the
    // version the plan saw.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    retitle_in_salesforce(&s, "Bose", "CEO");
    let folder = s.ews.find_folder(REP, "Salesforce_Sync").unwrap();
    let dunn = s
        .ews
        .items(REP, &folder)
        .into_iter()
        .find_map(|i| match i {
            tether_emulators::exchange::model::Item::Contact(c)
                if c.surname.as_deref() == Some("Dunn") =>
            {
                c.item_id
            }
            _ => None,
        })
        .unwrap();
    s.ews
        .edit_item(REP, &dunn.id, |i| {
            if let tether_emulators::exchange::model::Item::Contact(c) = i {
                c.job_title = Some("Partner".into());
            }
        })
        .unwrap();
    add_contact(&s, &rep_id, "Cruz");

    let apply = tether(&s, &["apply", "p.tfplan"]).await;
    ok(&apply);
    assert!(
        apply
            .stdout
            .contains("  Exchange: 0 created, 1 updated, 0 deleted, 0 failed, 2 not attempted"),
        "{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("2 records changed since the plan was made were left for the next plan."),
        "{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("1 change that appeared since the plan was made was left for the next plan."),
        "{}",
        apply.stdout
    );
    assert_eq!(
        exchange_titles(&s),
        titles(&[("Alba", "Director"), ("Bose", "Buyer"), ("Dunn", "Partner")]),
        "only the record still as planned was written"
    );

    let next = tether(&s, &["plan", "org", "--detailed-exitcode"]).await;
    assert_eq!(next.code, 2, "{}\n{}", next.stdout, next.stderr);
    assert!(
        next.stdout
            .contains("contacts Salesforce → Exchange: 1 to create, 2 to update"),
        "{}",
        next.stdout
    );
    assert!(
        next.stdout
            .contains("changed on both sides; Salesforce wins"),
        "Dunn is a conflict now:\n{}",
        next.stdout
    );
    ok(&tether(&s, &["apply", "org", "--auto-approve"]).await);
    assert_eq!(
        exchange_titles(&s),
        titles(&[
            ("Alba", "Director"),
            ("Bose", "CEO"),
            ("Cruz", "Buyer"),
            ("Dunn", "Director")
        ])
    );
    let quiet = tether(&s, &["plan", "org", "--detailed-exitcode"]).await;
    ok(&quiet);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_for_one_user_and_plan_without_refresh() {
    let (s, _) = setup(&["Diaz"], true).await;
    // Everyone: Omar's mailbox cannot be read.
    let all = tether(&s, &["plan", "org"]).await;
    ok(&all);
    let omar_cannot_sync = format!("! {OTHER} (Reps): cannot sync");
    assert!(all.stdout.contains(&omar_cannot_sync), "{}", all.stdout);

    // Celia only: Omar's mailbox is not read, so nothing about him.
    let one = tether(&s, &["plan", "org", "--user", "Celia.Kung@corp.com"]).await;
    ok(&one);
    assert!(!one.stdout.contains("cannot sync"), "{}", one.stdout);
    assert!(
        one.stdout.contains(&format!(
            "Reps / {REP}\n    contacts Salesforce → Exchange: 1 to create"
        )),
        "{}",
        one.stdout
    );
    let unknown = tether(&s, &["plan", "org", "--user", "nobody@corp.com"]).await;
    refused(
        &unknown,
        "--user nobody@corp.com: not a member of an active sync configuration of org `corp`",
    );

    // Settings only: neither side is asked anything.
    let (ews_before, sf_before) = (
        s.ews.all_calls().values().sum::<u64>(),
        s.sf.handle().served_total(),
    );
    let settings = tether(
        &s,
        &["plan", "org", "--refresh=false", "--out", "settings.tfplan"],
    )
    .await;
    ok(&settings);
    assert!(
        settings.stdout.contains("Data not read (--refresh=false)"),
        "{}",
        settings.stdout
    );
    assert!(
        settings.stdout.contains("+ sync configuration \"Reps\""),
        "{}",
        settings.stdout
    );
    let apply = tether(&s, &["apply", "settings.tfplan"]).await;
    ok(&apply);
    assert!(
        apply.stdout.contains("no data was synced"),
        "{}",
        apply.stdout
    );
    assert_eq!(s.ews.all_calls().values().sum::<u64>(), ews_before);
    assert_eq!(s.sf.handle().served_total(), sf_before);
    assert!(s.ews.find_folder(REP, "Salesforce_Sync").is_none());
    let after = tether(
        &s,
        &["plan", "org", "--refresh=false", "--detailed-exitcode"],
    )
    .await;
    ok(&after);
    assert!(
        after
            .stdout
            .contains("No changes in the settings. Data not read (--refresh=false)."),
        "{}",
        after.stdout
    );

    // A saved plan for Celia only is applied to Celia only: Omar is not read, so his
    // mailbox's failure does not fail the apply.
    ok(&tether(&s, &["plan", "org", "--user", REP, "--out", "celia.tfplan"]).await);
    let apply = tether(&s, &["apply", "celia.tfplan"]).await;
    ok(&apply);
    assert!(!apply.stdout.contains("cannot sync"), "{}", apply.stdout);
    assert_eq!(exchange_titles(&s), titles(&[("Diaz", "Buyer")]));
    let everyone = tether(&s, &["plan", "org"]).await;
    assert!(
        everyone.stdout.contains(&omar_cannot_sync),
        "Omar is still planned for: {}",
        everyone.stdout
    );
}

/// Celia syncs events both ways; Salesforce holds `count` of her meetings, tomorrow.
async fn setup_events(count: usize) -> (Org, Vec<String>) {
    let org = start(
        salesforce::EmulatorOptions::default(),
        &format!(
            "  - name: Reps\n    members: {{ users: [{REP}] }}\n    events: {{ direction: both, conflict: salesforce_wins }}\n"
        ),
    )
    .await;
    org.ews.add_mailbox(REP, Some("Sales"));
    let rep_id = org
        .sf
        .handle()
        .add_user(REP, REP, "Celia Kung", "Sales User", "Europe/Berlin");
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    let ids = (0..count)
        .map(|i| {
            let start = tomorrow.and_hms_opt(8 + i as u32, 0, 0).unwrap().and_utc();
            org.sf
                .handle()
                .insert(
                    "Event",
                    json!({"Subject": format!("Meeting {i}"), "OwnerId": rep_id,
                           "StartDateTime": start.to_rfc3339(),
                           "EndDateTime": (start + chrono::Duration::minutes(30)).to_rfc3339()}),
                )
                .unwrap()
        })
        .collect();
    (org, ids)
}

/// Celia's calendar items in Exchange.
fn exchange_events(org: &Org) -> usize {
    let folder = org.ews.find_folder(REP, "Calendar").expect("a calendar");
    org.ews
        .items(REP, &folder)
        .into_iter()
        .filter(|i| matches!(i, tether_emulators::exchange::model::Item::Event(_)))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_plan_keeps_the_delete_threshold() {
    let (s, ids) = setup_events(3).await;
    ok(&tether(&s, &["apply", "org", "--auto-approve"]).await);
    assert_eq!(exchange_events(&s), 3);
    for id in &ids {
        s.sf.handle().delete(id).unwrap();
    }
    let plan = tether(
        &s,
        &[
            "plan",
            "org",
            "--delete-threshold",
            "1",
            "--out",
            "p.tfplan",
        ],
    )
    .await;
    ok(&plan);
    assert!(
        plan.stdout.contains("3 deletes exceed the threshold of 1"),
        "{}",
        plan.stdout
    );

    // The threshold the plan was made with holds at apply, as in the CI example's flow.
    let apply = tether(&s, &["apply", "p.tfplan"]).await;
    refused(
        &apply,
        "the plan deletes 3 records, more than the threshold of 1; apply with --allow-deletes",
    );
    assert_eq!(exchange_events(&s), 3, "nothing deleted");
    // A higher threshold given to apply does not lift the plan's.
    let higher = tether(&s, &["apply", "p.tfplan", "--delete-threshold", "10"]).await;
    refused(&higher, "more than the threshold of 1");
    assert_eq!(exchange_events(&s), 3, "nothing deleted");

    ok(&tether(&s, &["apply", "p.tfplan", "--allow-deletes"]).await);
    assert_eq!(exchange_events(&s), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_plan_keeps_the_empty_side_guard() {
    let (s, ids) = setup_events(6).await;
    ok(&tether(&s, &["apply", "org", "--auto-approve"]).await);
    assert_eq!(exchange_events(&s), 6);
    // Reviewed: one meeting deleted in Salesforce, so one delete in Exchange.
    s.sf.handle().delete(&ids[0]).unwrap();
    let plan = tether(&s, &["plan", "org", "--out", "p.tfplan"]).await;
    ok(&plan);
    assert!(
        plan.stdout
            .contains("Exchange: 0 to create, 0 to update, 1 to delete"),
        "the reviewed plan: {}",
        plan.stdout
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(s.scratch.path("p.tfplan")).unwrap())
            .unwrap();
    assert_eq!(
        file["plan"]["guards"],
        json!({"delete_threshold": 100, "refused": []}),
        "the guards as decided when the plan was made"
    );

    // Before apply every other meeting goes too: Salesforce looks empty, which the reviewer
    // never saw. The apply stops before it writes anything.
    for id in &ids[1..] {
        s.sf.handle().delete(id).unwrap();
    }
    let apply = tether(&s, &["apply", "p.tfplan"]).await;
    refused(
        &apply,
        "are gone from Salesforce at once; refusing to delete or unlink them",
    );
    refused(
        &apply,
        "The plan reviewed did not show this refusal, so nothing was applied",
    );
    assert_eq!(exchange_events(&s), 6, "nothing deleted");
}

/// Durations beyond 100 years panicked (`errors --since`, `plan --expires-in` whose expiry
/// overflowed the date, `run --interval` whose seconds overflowed) or became 24 h silently
/// (`--expires-in` too large for a time span): each is now a usage error naming the flag
/// and the limit, before anything is read.
#[test]
fn huge_durations_are_a_usage_error() {
    let s = common::Scratch::new();
    std::fs::create_dir_all(s.path(".tether")).unwrap();
    drop(tether::state::SqliteState::open(&s.path(".tether/state.db")).unwrap());
    for (args, limit) in [
        (&["errors", "--since", "100000000d"][..], "36525d"),
        (
            &["plan", "--out", "p", "--expires-in", "2400000000h"],
            "876600h",
        ),
        (
            &["plan", "--out", "p", "--expires-in", "99999999999999h"],
            "876600h",
        ),
        (
            &["run", "--once", "--interval", "9999999999999999h"],
            "876600h",
        ),
        (
            &["run", "--once", "--interval", "99999999999999999999s"],
            "3155760000s",
        ),
    ] {
        let out = common::tether(args, s.dir.path());
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        let flag = args[args.len() - 2];
        assert!(
            out.stderr.contains(&format!("for '{flag} ")),
            "{args:?} names the flag: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("at most 100 years ({limit})")),
            "{args:?} names the limit: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(!s.path("p").exists(), "no plan saved");
    }
}

/// `tether show` prints a saved plan as `plan` printed it: the same JSON (valid against the
/// plan schema), and markdown with the org's marker and the commit planned.
#[tokio::test(flavor = "multi_thread")]
async fn show_prints_a_saved_plan_as_plan_printed_it() {
    let (s, _) = setup(&["Diaz"], false).await;
    let dir = s.scratch.dir.path();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "configuration"]);
    let head = git(&["rev-parse", "HEAD"]);

    let plan = tether(
        &s,
        &["plan", "org", "--format", "json", "--out", "p.tfplan"],
    )
    .await;
    ok(&plan);
    let show = tether(&s, &["show", "--format", "json", "p.tfplan"]).await;
    ok(&show);
    assert_eq!(show.stdout, plan.stdout);
    let json = show.json();
    assert_eq!(json["commit"], head.as_str());
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/plan.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let markdown = tether(&s, &["show", "--format", "markdown", "p.tfplan"]).await;
    ok(&markdown);
    assert!(
        markdown
            .stdout
            .starts_with("<!-- tether:plan org=corp -->\n### tether plan: `corp`"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown.stdout.contains(&format!("Commit `{head}`")),
        "{}",
        markdown.stdout
    );
    let human = tether(&s, &["show", "p.tfplan"]).await;
    ok(&human);
    assert!(
        human
            .stdout
            .starts_with("tether plan for org corp\ncommit "),
        "{}",
        human.stdout
    );

    let not_a_plan = tether(&s, &["show", "org/tether.yaml"]).await;
    refused(&not_a_plan, "org/tether.yaml is not a tether plan file");
}

/// A record Exchange refuses at every apply fails the apply until an admin acknowledges it
/// (`tether errors ack ID`); then it stays listed and fails no exit code, until it changes.
#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_failing_record_no_longer_fails_apply_until_it_changes() {
    let (s, _) = setup(&["Diaz", "Lee"], false).await;
    s.ews.fail_items(
        "diaz@customer.com",
        "ErrorInvalidPropertyRequest",
        "The property cannot be set.",
        None,
    );
    let diaz = sf_id(&s, "Diaz");
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    let again = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(again.code, 1, "still failing:\n{}", again.stdout);
    let errors = tether(&s, &["errors", "org"]).await;
    assert_eq!(errors.code, 1, "{}", errors.stdout);
    assert!(
        errors.stdout.contains(&format!(
            "contact, Salesforce {diaz} (salesforce to exchange): ErrorInvalidPropertyRequest"
        )),
        "{}",
        errors.stdout
    );

    let unknown = tether(&s, &["errors", "ack", "--config", "org", "003nosuchrecord"]).await;
    refused(&unknown, "no failed record has the id 003nosuchrecord");
    let ack = tether(&s, &["errors", "ack", "--config", "org", &diaz]).await;
    ok(&ack);
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(
        apply.code, 0,
        "acknowledged:\n{}{}",
        apply.stdout, apply.stderr
    );
    assert!(
        apply.stdout.contains("1 failed"),
        "still tried:\n{}",
        apply.stdout
    );
    let errors = tether(&s, &["errors", "org"]).await;
    assert_eq!(errors.code, 0, "{}", errors.stdout);
    let status = tether(&s, &["status", "org"]).await;
    assert_eq!(status.code, 0, "acknowledged:\n{}", status.stdout);
    assert!(
        errors.stdout.contains(&diaz) && errors.stdout.contains("(acknowledged"),
        "stays listed:\n{}",
        errors.stdout
    );

    // Edited: a new version of the record, and its failure counts again. SystemModstamp has
    // whole seconds, so the edit comes a second after the failed write, as a person's would.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    retitle_in_salesforce(&s, "Diaz", "Head of Buying");
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(
        apply.code, 1,
        "changed since:\n{}{}",
        apply.stdout, apply.stderr
    );
}

/// The defect: `run --once` exited 0 after a cycle in which records failed. It exits as
/// apply does: 1 while a record fails, 0 once that failure is acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn run_once_exits_1_when_a_record_failed_as_apply_does() {
    let (s, _) = setup(&["Diaz", "Lee"], false).await;
    s.ews.fail_items(
        "diaz@customer.com",
        "ErrorInvalidPropertyRequest",
        "The property cannot be set.",
        None,
    );
    let diaz = sf_id(&s, "Diaz");
    let apply = tether(&s, &["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    let once = tether(&s, &["run", "org", "--once"]).await;
    assert!(
        once.stdout.contains(" cycle: 0 records written, 1 failed"),
        "{}",
        once.stdout
    );
    assert_eq!(
        once.code, 1,
        "a record failed:\n{}{}",
        once.stdout, once.stderr
    );
    ok(&tether(&s, &["errors", "ack", "--config", "org", &diaz]).await);
    let once = tether(&s, &["run", "org", "--once"]).await;
    assert!(
        once.stdout.contains(", 1 failed"),
        "still tried:\n{}",
        once.stdout
    );
    assert_eq!(
        once.code, 0,
        "acknowledged:\n{}{}",
        once.stdout, once.stderr
    );
}
