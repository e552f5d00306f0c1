//! The plan document built from a real engine plan: counts per rep, object and direction,
//! the summary line, the JSON schema, and "No changes." after a sync.

use crate::engine_world;

use engine_world::*;
use serde_json::Value;
use tether::engine::connector::Folder;
use tether::engine::cycle::{SyncOptions, read_and_plan};
use tether::engine::memory::Faults;
use tether::model::ObjectKind;
use tether::plan::build::{BuildOptions, Past, build};
use tether::plan::document::{
    ActionReason, Object, PlanDocument, RecordAction, RepChangeKind, Target, WarningKind,
};
use tether::plan::render;
use tether::state::StateStore;

async fn document(w: &World, options: &BuildOptions) -> PlanDocument {
    let (plan, read) = read_and_plan(
        &w.config,
        &w.ex,
        &w.sf,
        &w.state,
        w.now,
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    let targets = tether::workflow::read_targets(&plan, &w.ex, &w.sf)
        .await
        .unwrap();
    let past = Past::read(&w.state, None).unwrap();
    build(&w.config, vec![], &plan, &read, &targets, &past, options)
}

/// After a first sync of four reps under "Sales": rep1 leaves (no longer listed), rep2
/// moves to "Managers", rep3 is marked for reset and rep4 is new. The Reps section says so,
/// and rep0's contact whose create failed is a retry, not an initial sync.
#[tokio::test]
async fn the_reps_section_shows_joins_leaves_moves_resets_and_retries() {
    let mut w = World::new(config(both_contacts(), Value::Null), 4);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.sf.set_faults(Faults {
        fail_records: ["ana@x.com".to_string()].into(),
        ..Faults::default()
    });
    w.sync().await;
    w.sf.set_faults(Faults::default());
    w.ex.add_mailbox(&rep_mail(4));
    w.sf.add_user(tether::engine::connector::CrmUser {
        id: rep_id(4),
        email: rep_mail(4),
        profile: "Sales User".into(),
        active: true,
        time_zone: "Europe/Berlin".into(),
    });
    let mut json = serde_json::to_value(&w.config).unwrap();
    let sales = json["sync_configurations"][0].clone();
    let mut managers = sales.clone();
    managers["name"] = "Managers".into();
    managers["members"] = serde_json::json!({ "users": [rep_mail(2)], "profiles": [] });
    let mut sales = sales;
    sales["members"] =
        serde_json::json!({ "users": [rep_mail(0), rep_mail(3), rep_mail(4)], "profiles": [] });
    json["sync_configurations"] = serde_json::json!([sales, managers]);
    w.config = serde_json::from_value(json).unwrap();
    w.state
        .apply(vec![tether::state::StateChange::SetResetMark {
            rep: rep_id(3),
            mark: Some(tether::state::ResetMark::MarkedForReset),
        }])
        .unwrap();

    let doc = document(
        &w,
        &BuildOptions {
            detail: true,
            ..BuildOptions::default()
        },
    )
    .await;
    let reps: Vec<(RepChangeKind, String, Option<&str>, Option<&str>)> = doc
        .rep_changes
        .iter()
        .map(|r| {
            (
                r.kind,
                r.rep.clone(),
                r.configuration.as_deref(),
                r.previous_configuration.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        reps,
        [
            (RepChangeKind::Join, rep_mail(4), Some("Sales"), None),
            (RepChangeKind::Leave, rep_mail(1), Some("Sales"), None),
            (
                RepChangeKind::Move,
                rep_mail(2),
                Some("Managers"),
                Some("Sales")
            ),
            (RepChangeKind::Reset, rep_mail(3), Some("Sales"), None),
        ],
        "{:#?}",
        doc.rep_changes
    );
    let retry = doc
        .record_changes
        .iter()
        .flat_map(|r| &r.records)
        .find(|d| d.action == RecordAction::Create)
        .expect("Ana's create, again");
    assert_eq!(retry.reason, ActionReason::RetryOfFailed, "{retry:#?}");
    let kinds: Vec<WarningKind> = doc.warnings.iter().map(|w| w.kind).collect();
    assert!(
        kinds.contains(&WarningKind::Retry) && !kinds.contains(&WarningKind::InitialSync),
        "{:#?}",
        doc.warnings
    );
    let human = render::human(&doc, false);
    assert!(
        human.contains(&format!(
            "{}: retry of 1 record that failed before",
            rep_mail(0)
        )),
        "{human}"
    );
    assert!(!doc.summary.no_changes);
}

#[tokio::test]
async fn first_sync_counts_creates_per_rep_and_direction() {
    let mut w = World::new(config(both_contacts(), Value::Null), 2);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Bo", "Li", "bo@x.com"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(1),
        contact("Cy", "Ng", "cy@x.com"),
    );
    let doc = document(
        &w,
        &BuildOptions {
            detail: true,
            ..BuildOptions::default()
        },
    )
    .await;

    let row = |rep: usize, target| {
        doc.record_changes
            .iter()
            .find(|r| r.rep == rep_mail(rep) && r.object == Object::Contact && r.target == target)
    };
    let to_sf = row(0, Target::Salesforce).expect("rep0 → Salesforce");
    assert_eq!((to_sf.create, to_sf.update, to_sf.delete), (2, 0, 0));
    assert_eq!(to_sf.configuration, "Sales");
    assert_eq!(to_sf.records.len(), 2, "--detail lists each record");
    let to_ex = row(1, Target::Exchange).expect("rep1 → Exchange");
    assert_eq!(to_ex.create, 1);
    assert_eq!(
        doc.summary.text,
        "Plan: 0 settings to change; Salesforce: 2 to create, 0 to update, 0 to delete; Exchange: 1 to create, 0 to update, 0 to delete."
    );
    assert!(
        doc.warnings
            .iter()
            .any(|w| w.message == format!("initial sync for {}: 2 records", rep_mail(0)))
    );

    // The JSON form validates against the checked-in plan schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/plan.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let json: Value = serde_json::from_str(&render::json(&doc)).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    w.sync().await;
    let after = document(&w, &BuildOptions::default()).await;
    assert!(after.summary.no_changes, "{:#?}", after.record_changes);
    assert_eq!(
        render::human(&after, false).lines().last(),
        Some("No changes. Sync settings and data are up to date.")
    );
}

/// One rep with eight synced meetings, deletes propagating.
async fn eight_synced_events() -> (World, Vec<String>) {
    let events = serde_json::json!({ "direction": "both", "conflict": "exchange_wins", "since": "LAST_N_DAYS:30", "delete_synced": true });
    let mut w = World::new(config(Value::Null, events), 1);
    let ids: Vec<String> = (0..8)
        .map(|i| {
            w.ex.user_create(
                &rep_mail(0),
                Folder::Calendar,
                tether::model::Record::Event(event(
                    &format!("Call {i}"),
                    "2026-06-16T09:00:00Z",
                    30,
                )),
            )
        })
        .collect();
    w.sync().await;
    (w, ids)
}

#[tokio::test]
async fn deletes_over_the_threshold_warn() {
    let (w, ids) = eight_synced_events().await;
    // Five of eight: all of them would trip the empty-side guard instead.
    for id in &ids[..5] {
        assert!(w.ex.user_delete(&rep_mail(0), id));
    }
    let doc = document(
        &w,
        &BuildOptions {
            delete_threshold: 3,
            ..BuildOptions::default()
        },
    )
    .await;
    assert_eq!(
        doc.summary.salesforce.delete, 5,
        "{:#?}",
        doc.record_changes
    );
    let warning = doc
        .warnings
        .iter()
        .find(|w| w.message.starts_with("5 deletes exceed"))
        .expect("threshold warning");
    assert_eq!(
        warning.message,
        "5 deletes exceed the threshold of 3: apply refuses without --allow-deletes"
    );
}

#[tokio::test]
async fn a_refused_mass_delete_is_a_warning() {
    let (w, ids) = eight_synced_events().await;
    for id in &ids {
        assert!(w.ex.user_delete(&rep_mail(0), id));
    }
    let doc = document(&w, &BuildOptions::default()).await;
    assert_eq!(doc.summary.salesforce.delete, 0);
    let warning = doc
        .warnings
        .iter()
        .find(|w| w.kind == tether::plan::document::WarningKind::EmptySide)
        .expect("empty-side warning");
    assert!(
        warning.message.starts_with(&rep_mail(0)),
        "{}",
        warning.message
    );
    assert!(
        warning
            .message
            .ends_with("(refused; `tether apply --force` overrides)"),
        "{}",
        warning.message
    );
}

/// `--detail` names the fields an update changes, reading the side written (an incremental
/// read sees only the side that changed); values appear only with `--show-values`.
#[tokio::test]
async fn detail_names_changed_fields_and_values_only_with_show_values() {
    let mut w = World::new(config(both_contacts(), Value::Null), 1);
    let item = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.sync().await;
    assert!(w.ex.user_edit(&rep_mail(0), &item, |r| {
        if let tether::model::Record::Contact(c) = r {
            c.set("Title", "Head of Sales");
            c.set("LastName", "Diaz-Ruiz");
        }
    }));
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Bo", "Li", "bo@x.com"),
    );
    let names_only = document(
        &w,
        &BuildOptions {
            detail: true,
            ..BuildOptions::default()
        },
    )
    .await;
    let row = names_only
        .record_changes
        .iter()
        .find(|r| r.target == Target::Salesforce)
        .expect("a row towards Salesforce");
    assert_eq!((row.create, row.update), (1, 1), "{row:#?}");
    let update = row
        .records
        .iter()
        .find(|d| d.action == RecordAction::Update)
        .unwrap();
    let fields: Vec<&str> = update.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["LastName", "Title"], "only the fields that change");
    let create = row
        .records
        .iter()
        .find(|d| d.action == RecordAction::Create)
        .unwrap();
    let fields: Vec<&str> = create.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["Email", "FirstName", "LastName"], "the fields set");
    // Record contents are personal data: no value in any format without --show-values.
    for text in [
        render::human(&names_only, true),
        render::markdown(&names_only),
        render::json(&names_only),
    ] {
        for value in ["Ana", "Diaz", "Head of Sales", "bo@x.com", "\"Li\""] {
            assert!(
                !text.contains(value),
                "{value} shown without --show-values:\n{text}"
            );
        }
        assert!(
            !text.contains("\"before\"") && !text.contains("\"after\""),
            "{text}"
        );
    }

    let values = document(
        &w,
        &BuildOptions {
            detail: true,
            show_values: true,
            ..BuildOptions::default()
        },
    )
    .await;
    let human = render::human(&values, true);
    assert!(
        human.contains("LastName: \"Diaz\" → \"Diaz-Ruiz\""),
        "{human}"
    );
    assert!(human.contains("Title: \"\" → \"Head of Sales\""), "{human}");
    assert!(human.contains("Email: \"bo@x.com\""), "{human}");
    let json: Value = serde_json::from_str(&render::json(&values)).unwrap();
    let records = json["record_changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["records"].as_array().unwrap().iter())
        .collect::<Vec<_>>();
    let title = records
        .iter()
        .flat_map(|r| r["fields"].as_array().unwrap().iter())
        .find(|f| f["field"] == "Title")
        .unwrap();
    assert_eq!(title["before"], "");
    assert_eq!(title["after"], "Head of Sales");
}

/// An update that empties or replaces a value says so without --detail: per record the
/// field names it clears and overwrites (never their values), and in the summary.
#[tokio::test]
async fn plan_names_the_fields_an_update_clears_and_overwrites() {
    let mut w = World::new(config(both_contacts(), Value::Null), 1);
    let item = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        tether::model::Record::Contact(
            tether::model::Contact::default()
                .with("FirstName", "Ana")
                .with("LastName", "Diaz")
                .with("Email", "ana@x.com")
                .with("Title", "Buyer")
                .with("Phone", "+1 555 0100"),
        ),
    );
    w.sync().await;
    assert!(w.ex.user_edit(&rep_mail(0), &item, |r| {
        if let tether::model::Record::Contact(c) = r {
            c.set("Title", "Head of Sales");
            c.set("Phone", "");
            c.set("MailingCity", "Lyon");
        }
    }));
    let doc = document(&w, &BuildOptions::default()).await;
    let row = doc
        .record_changes
        .iter()
        .find(|r| r.target == Target::Salesforce)
        .expect("a row towards Salesforce");
    assert_eq!(row.update, 1);
    let update = &row.records[0];
    assert_eq!(update.action, RecordAction::Update);
    assert_eq!(update.clears, ["Phone"]);
    assert_eq!(update.overwrites, ["Title"], "a filled field is neither");
    assert!(update.fields.is_empty(), "fields only with --detail");
    assert!(
        doc.summary
            .text
            .ends_with("; overwrites 1 field and clears 1 field in 1 record."),
        "{}",
        doc.summary.text
    );
    let human = render::human(&doc, false);
    assert!(
        human.contains("clears: Phone") && human.contains("overwrites: Title"),
        "{human}"
    );
    let markdown = render::markdown(&doc);
    assert!(
        markdown.contains("overwrites 1 field and clears 1 field in 1 record"),
        "{markdown}"
    );
    let json: Value = serde_json::from_str(&render::json(&doc)).unwrap();
    assert_eq!(
        json["record_changes"][0]["records"][0]["clears"],
        serde_json::json!(["Phone"])
    );
    for text in [human, markdown, render::json(&doc)] {
        for value in ["Buyer", "Head of Sales", "555", "Lyon"] {
            assert!(
                !text.contains(value),
                "{value} shown without --show-values:\n{text}"
            );
        }
    }
}

/// Two Salesforce contacts of one name and company, and one Outlook contact of that name
/// without an email: which one it is cannot be told, so nothing is linked (nor created, which
/// would duplicate one of them) and the plan names the candidates.
#[tokio::test]
async fn ambiguous_name_match_links_nothing_and_is_reported() {
    let mut w = World::new(config(both_contacts(), Value::Null), 1);
    let company = |r: tether::model::Record| match r {
        tether::model::Record::Contact(c) => {
            tether::model::Record::Contact(c.with("Account.Name", "Acme"))
        }
        other => other,
    };
    let ex = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        company(contact("Dmitri", "Kowalski", "")),
    );
    let sf_a = w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        company(contact("Dmitri", "Kowalski", "dk@acme.com")),
    );
    let sf_b = w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        company(contact("Dmitri", "Kowalski", "dmitri.k@acme.com")),
    );
    let text = render::human(&document(&w, &BuildOptions::default()).await, false);
    let line = text
        .lines()
        .find(|l| l.contains("cannot be told apart"))
        .unwrap_or_else(|| panic!("not reported:\n{text}"));
    for id in [&ex, &sf_a, &sf_b] {
        assert!(line.contains(id.as_str()), "{id} not named: {line}");
    }
    let r = w.sync().await;
    assert!(r.plan.operations.is_empty(), "{:#?}", r.plan.operations);
    assert!(
        w.state
            .links(&rep_id(0), ObjectKind::Contact)
            .unwrap()
            .is_empty()
    );
    assert_eq!((w.ex_contacts(0).len(), w.sf_contacts().len()), (1, 2));
    let errors = w.state.errors().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.code == "AMBIGUOUS_MATCH" && e.record_ids.len() == 3),
        "{errors:#?}"
    );

    // The rep gives the Outlook contact an email: the next run links it, without duplicates.
    assert!(w.ex.user_edit(&rep_mail(0), &ex, |r| {
        if let tether::model::Record::Contact(c) = r {
            c.set("Email", "dk@acme.com");
        }
    }));
    w.sync().await;
    let links = w.state.links(&rep_id(0), ObjectKind::Contact).unwrap();
    assert_eq!(links.len(), 2, "{links:#?}");
    assert_eq!((w.ex_contacts(0).len(), w.sf_contacts().len()), (2, 2));
    assert!(w.plan().await.is_empty());
}

/// Each configuration's mapping differences are in the plan's settings part, so a reviewer
/// sees what each configuration's reps sync.
#[tokio::test]
async fn the_plan_shows_each_configurations_mapping_differences() {
    let contacts = |mappings: Value| {
        serde_json::json!({ "direction": "both", "conflict": "salesforce_wins",
                            "scope": "users_records", "field_mappings": mappings })
    };
    let mut cfg = config(
        contacts(serde_json::json!({ "OtherPhone": "BusinessPhone2" })),
        Value::Null,
    );
    let mut other = config(
        contacts(serde_json::json!({ "Department": null })),
        Value::Null,
    )
    .sync_configurations
    .remove(0);
    other.name = "Other".into();
    other.members.users = vec![rep_mail(1)];
    other.members.profiles = Vec::new();
    cfg.sync_configurations.push(other);
    let w = World::new(cfg, 2);
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Ana", "Diaz", "ana@x.com"),
    );
    let doc = document(&w, &BuildOptions::default()).await;
    let text = render::human(&doc, false);
    assert!(
        text.contains("    Sales contacts: OtherPhone → BusinessPhone2 (default OtherTelephone)\n"),
        "{text}"
    );
    assert!(
        text.contains("    Other contacts: Department not synced (removed)\n"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&render::json(&doc)).unwrap();
    assert_eq!(
        json["field_mappings"][1]["differences"][0]["salesforce"],
        "Department"
    );
}
