//! Snapshots of rendered plans for the cases a reviewer meets most.

use super::document::*;
use super::render;
use super::settings::{Action, SettingChange};
use std::collections::BTreeMap;

fn setting(
    action: Action,
    scope: &str,
    field: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> SettingChange {
    SettingChange {
        action,
        scope: scope.into(),
        field: field.into(),
        before: before.map(String::from),
        after: after.map(String::from),
        text_diff: vec![],
    }
}

fn changes(
    rep: &str,
    object: Object,
    target: Target,
    c: usize,
    u: usize,
    d: usize,
) -> RecordChanges {
    RecordChanges {
        configuration: "Sales Reps Europe".into(),
        rep: rep.into(),
        object,
        target,
        create: c,
        update: u,
        delete: d,
        unlink: 0,
        link: 0,
        skip: BTreeMap::new(),
        records: vec![],
    }
}

const CELIA: &str = "celia.kung@awcomputing.com";
const LARS: &str = "lars.berg@awcomputing.com";

fn first_apply() -> PlanDocument {
    let mut contacts = changes(CELIA, Object::Contact, Target::Salesforce, 120, 0, 0);
    contacts.link = 14;
    let mut events = changes(CELIA, Object::Event, Target::Salesforce, 37, 0, 0);
    events.skip.insert("private".into(), 3);
    events.skip.insert("outside the date window".into(), 211);
    PlanDocument::new(
        "awcomputing-prod".into(),
        vec![
            setting(Action::Add, "sync configuration \"Sales Reps Europe\"", "", None, None),
            setting(Action::Add, "sync configuration \"Sales Reps Europe\"", "members.users", None, Some(CELIA)),
            setting(Action::Add, "connections", "exchange.password", None, Some("(set)")),
        ],
        vec![
            RepChange { kind: RepChangeKind::CreateFolder, rep: CELIA.into(), configuration: Some("Sales Reps Europe".into()), previous_configuration: None, detail: "Contacts/Salesforce_Sync".into() },
            RepChange { kind: RepChangeKind::CannotSync, rep: LARS.into(), configuration: Some("Sales Reps Europe".into()), previous_configuration: None, detail: "mailbox outside the service account's impersonation scope (ErrorImpersonateUserDenied)".into() },
        ],
        vec![
            contacts,
            changes(CELIA, Object::Contact, Target::Exchange, 45, 0, 0),
            events,
        ],
        vec![],
        vec![
            Warning { kind: WarningKind::InitialSync, message: format!("initial sync for {CELIA}: 202 records"), rep: Some(CELIA.into()), fields: vec![] },
            Warning { kind: WarningKind::RepCannotSync, message: format!("{LARS} cannot be synced: give the service account the ApplicationImpersonation role for this mailbox"), rep: Some(LARS.into()), fields: vec![] },
        ],
    )
}

#[test]
fn snapshot_first_apply() {
    let doc = first_apply();
    insta::assert_snapshot!("first_apply_human", render::human(&doc, false));
    insta::assert_snapshot!("first_apply_markdown", render::markdown(&doc));
}

#[test]
fn snapshot_settings_change() {
    let mut description = setting(
        Action::Change,
        "sync configuration \"Sales Reps Europe\"",
        "description",
        None,
        None,
    );
    description.text_diff = vec![
        " Reps in Europe".into(),
        "-keep contacts in step both ways.".into(),
        "+send contacts to Salesforce only.".into(),
    ];
    let doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![
            setting(
                Action::Change,
                "sync configuration \"Sales Reps Europe\"",
                "contacts.direction",
                Some("both"),
                Some("exchange_to_salesforce"),
            ),
            setting(
                Action::Remove,
                "sync configuration \"Sales Reps Europe\"",
                "contacts.conflict",
                Some("salesforce_wins"),
                None,
            ),
            setting(
                Action::Remove,
                "sync configuration \"Sales Reps Europe\"",
                "members.users",
                Some(LARS),
                None,
            ),
            description,
        ],
        vec![RepChange {
            kind: RepChangeKind::Leave,
            rep: LARS.into(),
            configuration: Some("Sales Reps Europe".into()),
            previous_configuration: None,
            detail: "in no active configuration: its records stay on both sides and stop syncing"
                .into(),
        }],
        vec![],
        vec![],
        vec![],
    );
    insta::assert_snapshot!("settings_change_human", render::human(&doc, false));
    insta::assert_snapshot!("settings_change_markdown", render::markdown(&doc));
}

#[test]
fn snapshot_conflict() {
    let mut rc = changes(CELIA, Object::Contact, Target::Exchange, 0, 1, 0);
    rc.records = vec![RecordDetail {
        action: RecordAction::Update,
        id: "AAMkADk0Zj".into(),
        reason: ActionReason::Conflict,
        description: "changed on both sides; salesforce_wins".into(),
        clears: vec![],
        overwrites: vec!["JobTitle".into()],
        fields: vec![FieldChange {
            field: "JobTitle".into(),
            before: None,
            after: None,
        }],
    }];
    let doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![],
        vec![rc],
        vec![ConflictEntry {
            rep: CELIA.into(),
            object: Object::Contact,
            exchange_id: "AAMkADk0Zj".into(),
            salesforce_id: "003A000001xyzAbQAI".into(),
            winner: Target::Salesforce,
            fields: vec!["Title".into()],
        }],
        vec![],
    );
    insta::assert_snapshot!("conflict_human_detail", render::human(&doc, true));
    insta::assert_snapshot!("conflict_markdown", render::markdown(&doc));
}

#[test]
fn snapshot_one_way_overwrite_warning() {
    let doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![],
        vec![changes(CELIA, Object::Event, Target::Salesforce, 0, 4, 0)],
        vec![],
        vec![Warning {
            kind: WarningKind::Overwrite,
            message: format!(
                "one-way Exchange → Salesforce sync overwrites Salesforce edits of 4 events for {CELIA}: Subject, Location, Description"
            ),
            rep: Some(CELIA.into()),
            fields: vec!["Subject".into(), "Location".into(), "Description".into()],
        }],
    );
    insta::assert_snapshot!("overwrite_human", render::human(&doc, false));
    insta::assert_snapshot!("overwrite_markdown", render::markdown(&doc));
}

#[test]
fn snapshot_delete_over_threshold() {
    let doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![],
        vec![changes(CELIA, Object::Event, Target::Exchange, 0, 0, 312)],
        vec![],
        vec![Warning {
            kind: WarningKind::DeletesOverThreshold,
            message:
                "312 deletes exceed the threshold of 100: apply refuses without --allow-deletes"
                    .into(),
            rep: None,
            fields: vec![],
        }],
    );
    insta::assert_snapshot!("deletes_human", render::human(&doc, false));
    insta::assert_snapshot!("deletes_markdown", render::markdown(&doc));
}

#[test]
fn snapshot_no_changes() {
    let doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    insta::assert_snapshot!("no_changes_human", render::human(&doc, false));
    insta::assert_snapshot!("no_changes_markdown", render::markdown(&doc));
}

fn field(name: &str, values: Option<(&str, &str)>) -> FieldChange {
    FieldChange {
        field: name.into(),
        before: values.map(|(b, _)| b.to_string()),
        after: values.map(|(_, a)| a.to_string()),
    }
}

fn created(name: &str, value: Option<&str>) -> FieldChange {
    FieldChange {
        field: name.into(),
        before: None,
        after: value.map(String::from),
    }
}

/// A day's edits for one rep: a contact created in Exchange, one edited in Exchange, one
/// deleted in Exchange (delete_synced) and one whose partner is gone (unlinked) — with
/// values or field names only.
fn detailed(values: bool) -> PlanDocument {
    let v = |x: &'static str| values.then_some(x);
    let mut rc = changes(CELIA, Object::Contact, Target::Salesforce, 1, 1, 1);
    rc.unlink = 1;
    rc.records = vec![
        RecordDetail {
            action: RecordAction::Create,
            id: "AAMkADk0Zj-new".into(),
            reason: ActionReason::NewInSource,
            description: "new in Exchange".into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![
                created("Email", v("ana.diaz@customer.com")),
                created("FirstName", v("Ana")),
                created("LastName", v("Diaz")),
            ],
        },
        RecordDetail {
            action: RecordAction::Update,
            id: "003A000001xyzAbQAI".into(),
            reason: ActionReason::ChangedInSource,
            description: "changed in Exchange".into(),
            clears: vec![],
            overwrites: vec!["Description".into()],
            fields: vec![
                field(
                    "Description",
                    values.then_some((
                        "Met at the fair.",
                        "Met at the fair.\nWants a demo in March.",
                    )),
                ),
                field("Title", values.then_some(("", "Head of Sales"))),
            ],
        },
        RecordDetail {
            action: RecordAction::Delete,
            id: "003A000001xyzDelQAI".into(),
            reason: ActionReason::DeletedInSource,
            description: "deleted in Exchange (delete_synced)".into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![],
        },
        RecordDetail {
            action: RecordAction::Unlink,
            id: "003A000001xyzUnlQAI".into(),
            reason: ActionReason::PartnerDeleted,
            description: "deleted in Exchange; unlinked".into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![],
        },
    ];
    let mut to_exchange = changes(CELIA, Object::Event, Target::Exchange, 0, 1, 0);
    to_exchange.records = vec![RecordDetail {
        action: RecordAction::Update,
        id: "AAMkADk0Zj-event".into(),
        reason: ActionReason::ChangedInSource,
        description: "changed in Salesforce".into(),
        clears: vec![],
        overwrites: vec!["Location".into()],
        fields: vec![field(
            "Location",
            values.then_some(("Room 4", "Room 5 | <b>east</b>")),
        )],
    }];
    PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![],
        vec![rc, to_exchange],
        vec![],
        vec![],
    )
}

#[test]
fn snapshot_detail_names_fields_but_no_values() {
    let doc = detailed(false);
    let human = render::human(&doc, true);
    let markdown = render::markdown(&doc);
    let json = render::json(&doc);
    for text in [&human, &markdown, &json] {
        for value in ["Ana", "Head of Sales", "Room"] {
            assert!(!text.contains(value), "{value}:\n{text}");
        }
    }
    assert!(
        !json.contains("\"before\"") && !json.contains("\"after\""),
        "{json}"
    );
    insta::assert_snapshot!("detail_human", human);
    insta::assert_snapshot!("detail_markdown", markdown);
}

#[test]
fn snapshot_detail_with_values() {
    let doc = detailed(true);
    insta::assert_snapshot!("show_values_human", render::human(&doc, true));
    insta::assert_snapshot!("show_values_markdown", render::markdown(&doc));
    let json = render::json(&doc);
    assert!(
        json.contains("\"before\": \"Room 4\"")
            && json.contains("\"after\": \"Room 5 | <b>east</b>\""),
        "{json}"
    );
}

#[test]
fn markdown_folds_details_that_do_not_fit_and_says_so() {
    let mut rc = changes(CELIA, Object::Contact, Target::Salesforce, 3000, 0, 0);
    rc.records = (0..3000)
        .map(|i| RecordDetail {
            action: RecordAction::Create,
            id: format!("AAMkADk0Zj-{i:05}-{}", "x".repeat(100)),
            reason: ActionReason::NewInSource,
            description: "new in Exchange".into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![created("LastName", None)],
        })
        .collect();
    let mut deletes = changes(LARS, Object::Event, Target::Exchange, 0, 0, 2);
    deletes.records = (0..2)
        .map(|i| RecordDetail {
            action: RecordAction::Delete,
            id: format!("AAMkDel{i}"),
            reason: ActionReason::DeletedInSource,
            description: "deleted in Salesforce (delete_synced)".into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![],
        })
        .collect();
    let mut long = changes(
        "zoe@awcomputing.com",
        Object::Contact,
        Target::Salesforce,
        300,
        0,
        0,
    );
    long.records = (0..300)
        .map(|i| RecordDetail {
            action: RecordAction::Create,
            id: format!("AAMkLong{i:05}-{}", "y".repeat(500)),
            reason: ActionReason::NewInSource,
            description: "new in Exchange".into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![],
        })
        .collect();
    let doc = PlanDocument::new(
        "big".into(),
        vec![],
        vec![],
        vec![rc, deletes, long],
        vec![],
        vec![],
    );
    let md = render::markdown(&doc);
    assert!(md.len() <= render::MARKDOWN_LIMIT, "{}", md.len());
    // The rows that delete come first, details and all.
    let lars = md.find(LARS).unwrap();
    let celia = md.find(CELIA).unwrap();
    assert!(lars < celia, "{md}");
    assert!(
        md.contains("- event AAMkDel1 (deleted in Salesforce (delete_synced))"),
        "{md}"
    );
    assert!(
        md.find("- event AAMkDel1").unwrap() < md.find("+ contact AAMkADk0Zj-00000").unwrap(),
        "{md}"
    );
    // 200 records listed, the rest counted, and the note says what was cut.
    assert!(
        md.contains("… and 2,800 more records"),
        "{}",
        &md[md.len() - 500..]
    );
    // Zoe's row is there; its details (100 kB) are not, and the note says so.
    assert!(md.contains("| zoe@awcomputing.com |"), "{md}");
    assert!(!md.contains("AAMkLong"), "{}", md.len());
    assert!(
        md.contains("_Cut to fit a comment: the record details of 1 row not shown. Run `tether plan --format human --detail`"),
        "{}",
        &md[md.len() - 500..]
    );
}

#[test]
fn markdown_is_cut_to_fit_a_comment_and_says_so() {
    let reps: Vec<RecordChanges> = (0..3000)
        .map(|i| {
            changes(
                &format!("rep{i:04}@awcomputing.com"),
                Object::Contact,
                Target::Salesforce,
                i,
                1,
                0,
            )
        })
        .collect();
    let doc = PlanDocument::new("big".into(), vec![], vec![], reps, vec![], vec![]);
    let md = render::markdown(&doc);
    assert!(md.len() <= render::MARKDOWN_LIMIT, "{}", md.len());
    assert!(
        md.contains("rows not shown. Run `tether plan --format human --detail`"),
        "{}",
        &md[md.len() - 300..]
    );
}

#[test]
fn markdown_escapes_user_text() {
    let mut rc = changes("x@y.com", Object::Contact, Target::Salesforce, 1, 0, 0);
    rc.configuration = "A | <script>".into();
    let doc = PlanDocument::new("o".into(), vec![], vec![], vec![rc], vec![], vec![]);
    let md = render::markdown(&doc);
    assert!(md.contains("A \\| &lt;script&gt;"), "{md}");
}

#[test]
fn json_plans_validate_against_the_plan_schema() {
    let schema: serde_json::Value = serde_json::from_str(&super::document::schema_text()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut with_details = changes(CELIA, Object::Contact, Target::Exchange, 0, 1, 0);
    with_details.records = vec![RecordDetail {
        action: RecordAction::Update,
        id: "AAMk".into(),
        reason: ActionReason::ChangedInSource,
        description: "changed in Salesforce".into(),
        clears: vec![],
        overwrites: vec!["Location".into()],
        fields: vec![FieldChange {
            field: "JobTitle".into(),
            before: Some("a".into()),
            after: Some("b".into()),
        }],
    }];
    let detailed = PlanDocument::new(
        "o".into(),
        vec![],
        vec![],
        vec![with_details],
        vec![],
        vec![],
    );
    for doc in [
        first_apply(),
        detailed,
        PlanDocument::new("o".into(), vec![], vec![], vec![], vec![], vec![]),
    ] {
        let value: serde_json::Value = serde_json::from_str(&render::json(&doc)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(value["format_version"], FORMAT_VERSION);
        for key in [
            "settings_changes",
            "rep_changes",
            "record_changes",
            "warnings",
            "summary",
        ] {
            assert!(value.get(key).is_some(), "{key}");
        }
    }
}

/// Without --detail, each update that loses a value is listed with the field names it
/// clears and overwrites (never the values), and the summary counts them.
#[test]
fn snapshot_updates_that_clear_and_overwrite() {
    let mut rc = changes(CELIA, Object::Contact, Target::Salesforce, 0, 3, 0);
    rc.records = vec![
        RecordDetail {
            action: RecordAction::Update,
            id: "003A000001xyzAbQAI".into(),
            reason: ActionReason::ChangedInSource,
            description: "changed in Exchange".into(),
            fields: vec![],
            clears: vec!["MailingCity".into(), "Phone".into()],
            overwrites: vec!["Title".into()],
        },
        RecordDetail {
            action: RecordAction::Update,
            id: "003A000001xyzCdQAI".into(),
            reason: ActionReason::FirstMatch,
            description: "matched an existing record: Exchange wins".into(),
            fields: vec![],
            clears: vec![],
            overwrites: vec!["Department".into()],
        },
    ];
    let doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![],
        vec![rc],
        vec![],
        vec![],
    );
    assert_eq!(
        doc.summary.text,
        "Plan: 0 settings to change; Salesforce: 0 to create, 3 to update, 0 to delete; Exchange: 0 to create, 0 to update, 0 to delete; overwrites 2 fields and clears 2 fields in 2 records."
    );
    assert_eq!(
        (
            doc.summary.overwrites,
            doc.summary.clears,
            doc.summary.records_losing_values
        ),
        (2, 2, 2)
    );
    insta::assert_snapshot!("clears_and_overwrites_human", render::human(&doc, false));
    insta::assert_snapshot!("clears_and_overwrites_markdown", render::markdown(&doc));
    let json: serde_json::Value = serde_json::from_str(&render::json(&doc)).unwrap();
    let first = &json["record_changes"][0]["records"][0];
    assert_eq!(first["clears"], serde_json::json!(["MailingCity", "Phone"]));
    assert_eq!(first["overwrites"], serde_json::json!(["Title"]));
}

fn rep_change(
    kind: RepChangeKind,
    rep: &str,
    configuration: &str,
    previous: Option<&str>,
    detail: &str,
) -> RepChange {
    RepChange {
        kind,
        rep: rep.into(),
        configuration: Some(configuration.into()),
        previous_configuration: previous.map(String::from),
        detail: detail.into(),
    }
}

const OMAR: &str = "omar.haddad@awcomputing.com";
const ANA: &str = "ana.lopez@awcomputing.com";

/// A rep joining, one leaving, one moving configuration, one reset, and one whose failed
/// creates are tried again; two more reps with nothing to write.
fn reps_moving() -> PlanDocument {
    let mut joining = changes(CELIA, Object::Contact, Target::Salesforce, 12, 0, 0);
    joining.records = vec![RecordDetail {
        action: RecordAction::Create,
        id: "AAMkADk0Zj-new".into(),
        reason: ActionReason::NewInSource,
        description: "new in Exchange".into(),
        fields: vec![],
        clears: vec![],
        overwrites: vec![],
    }];
    let mut retry = changes(ANA, Object::Event, Target::Salesforce, 2, 0, 0);
    retry.records = ["AAMkADk0Zj-fail1", "AAMkADk0Zj-fail2"]
        .into_iter()
        .map(|id| RecordDetail {
            action: RecordAction::Create,
            id: id.into(),
            reason: ActionReason::RetryOfFailed,
            description: "new in Exchange; its write failed before".into(),
            fields: vec![],
            clears: vec![],
            overwrites: vec![],
        })
        .collect();
    let mut quiet = changes(
        "zoe@awcomputing.com",
        Object::Event,
        Target::Salesforce,
        0,
        0,
        0,
    );
    quiet.skip.insert("private".into(), 3);
    let mut doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![
            rep_change(
                RepChangeKind::Join,
                CELIA,
                "Sales Reps Europe",
                None,
                "starts syncing",
            ),
            rep_change(
                RepChangeKind::Leave,
                LARS,
                "Sales Reps Europe",
                None,
                "in no active configuration: its records stay on both sides and stop syncing",
            ),
            rep_change(
                RepChangeKind::Move,
                OMAR,
                "Sales Managers",
                Some("Sales Reps Europe"),
                "syncs under this configuration's settings from now on",
            ),
            rep_change(
                RepChangeKind::Reset,
                ANA,
                "Sales Reps Europe",
                None,
                "marked for reset: its links are dropped and its records matched again",
            ),
        ],
        vec![joining, retry, quiet],
        vec![],
        vec![
            Warning {
                kind: WarningKind::InitialSync,
                message: format!("initial sync for {CELIA}: 12 records"),
                rep: Some(CELIA.into()),
                fields: vec![],
            },
            Warning {
                kind: WarningKind::Retry,
                message: format!(
                    "{ANA}: retry of 2 records that failed before (see `tether errors`)"
                ),
                rep: Some(ANA.into()),
                fields: vec![],
            },
        ],
    );
    doc.count_reps_without_writes([CELIA, ANA, OMAR, "zoe@awcomputing.com"]);
    doc
}

#[test]
fn snapshot_reps_joining_leaving_moving_reset_and_retried() {
    let doc = reps_moving();
    assert_eq!(
        doc.summary.reps_without_writes, 2,
        "Omar and Zoe write nothing"
    );
    insta::assert_snapshot!("reps_human", render::human(&doc, false));
    insta::assert_snapshot!("reps_markdown", render::markdown(&doc));
    insta::assert_snapshot!("reps_json", render::json(&doc));
}

/// One setting changed for twelve reps who have nothing to write: no per-rep rows, a count.
#[test]
fn snapshot_a_setting_only_change_renders_no_per_rep_rows() {
    let rows = (0..12)
        .map(|i| {
            let mut rc = changes(
                &format!("rep{i:02}@awcomputing.com"),
                Object::Event,
                Target::Salesforce,
                0,
                0,
                0,
            );
            rc.skip.insert("private".into(), 1);
            rc
        })
        .collect();
    let mut doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![setting(
            Action::Change,
            "sync configuration \"Sales Reps Europe\"",
            "events.since",
            Some("LAST_N_DAYS:30"),
            Some("LAST_N_DAYS:60"),
        )],
        vec![],
        rows,
        vec![],
        vec![],
    );
    doc.count_reps_without_writes(
        (0..12)
            .map(|i| format!("rep{i:02}@awcomputing.com"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    assert!(doc.record_changes.is_empty(), "{:#?}", doc.record_changes);
    let human = render::human(&doc, false);
    let markdown = render::markdown(&doc);
    let json = render::json(&doc);
    for text in [&human, &markdown, &json] {
        assert!(!text.contains("rep00@"), "{text}");
    }
    assert!(
        human.contains("12 reps with no writes (skipped: 12 private)"),
        "{human}"
    );
    insta::assert_snapshot!("setting_only_human", human);
    insta::assert_snapshot!("setting_only_markdown", markdown);
    insta::assert_snapshot!("setting_only_json", json);
}

/// Over Microsoft Graph, a meeting the rep organised with attendees cannot be deleted
/// without mailing them a cancellation: the plan names each such delete (without
/// `--detail`), done with `events.send_cancellations`, else unlinked instead.
#[test]
fn snapshot_deletes_that_send_cancellations_are_named() {
    let mut events = changes(CELIA, Object::Event, Target::Exchange, 0, 0, 1);
    events.unlink = 1;
    events.records = vec![
        RecordDetail {
            action: RecordAction::Delete,
            id: "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A-pricing".into(),
            reason: ActionReason::SendsCancellations,
            description: crate::engine::plan::SENDS_CANCELLATIONS.into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![],
        },
        RecordDetail {
            action: RecordAction::Unlink,
            id: "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A-review".into(),
            reason: ActionReason::WouldSendCancellations,
            description: crate::engine::plan::WOULD_SEND_CANCELLATIONS.into(),
            clears: vec![],
            overwrites: vec![],
            fields: vec![],
        },
    ];
    let doc = PlanDocument::new(
        "awcomputing-prod".into(),
        vec![],
        vec![],
        vec![events],
        vec![],
        vec![],
    );
    let human = render::human(&doc, false);
    assert!(human.contains("mails them a cancellation"), "{human}");
    insta::assert_snapshot!("cancellations_human", human);
    insta::assert_snapshot!("cancellations_markdown", render::markdown(&doc));
    let json = render::json(&doc);
    for reason in ["\"sends_cancellations\"", "\"would_send_cancellations\""] {
        assert!(json.contains(reason), "{reason}:\n{json}");
    }
    insta::assert_snapshot!("cancellations_json", json);
}
