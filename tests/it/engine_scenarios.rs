//! One test per sync rule, over the in-memory connectors, each named after the rule.

use crate::engine_world;

use engine_world::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tether::engine::connector::Folder;
use tether::engine::cycle::{SyncOptions, read_and_plan, run_cycle};
use tether::engine::execute::StepBudget;
use tether::engine::memory::{Faults, MemoryCrm};
use tether::engine::plan::Side;
use tether::model::{EventTime, ObjectKind, Record, Recurrence};
use tether::state::{ResetMark, StateChange, StateStore, SyncDirection, SyncStatus};

const NONE: Value = Value::Null;

fn sf_ex_event(w: &World, rep: usize, subject: &str) -> Option<tether::model::Event> {
    w.ex_events(rep).into_iter().find(|e| e.subject == subject)
}

// ---------------------------------------------------------------------------------------
// Contacts

#[tokio::test]
async fn contact_created_in_exchange_syncs_to_salesforce_and_back_is_quiet() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.sync().await;
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    let r = w.sync().await;
    assert_eq!(r.exec.succeeded, 1, "{:?}", r.plan);
    let sf = w.sf.records(ObjectKind::Contact);
    assert_eq!(sf.len(), 1);
    assert_eq!(sf[0].owner_id, rep_id(0));
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn a_contact_outside_salesforce_sync_never_syncs() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::Contacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.sync().await;
    w.sync().await;
    assert!(w.sf_contacts().is_empty());
    assert_eq!(w.ex.counts().sync_folder_by.get(&Folder::Contacts), None);
}

#[tokio::test]
async fn the_salesforce_sync_folder_is_created_when_missing() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    assert!(
        !w.ex
            .folder_exists(&rep_mail(0), Folder::SalesforceSyncContacts)
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Bo", "Li", "bo@x.com"),
    );
    w.sync().await;
    assert!(w.ex.folder_exists(&rep_mail(0), Folder::SalesforceSyncContacts));
    assert_eq!(w.ex_contacts(0).len(), 1);
}

#[tokio::test]
async fn a_deleted_sync_folder_is_recreated_and_the_contacts_it_held_stay_in_salesforce() {
    // Few contacts (under the empty-side guard) and many: the guard is not what keeps them.
    for n in [2, 8] {
        let mut w = World::new(config(both_contacts(), NONE), 1);
        for i in 0..n {
            w.ex.user_create(
                &rep_mail(0),
                Folder::SalesforceSyncContacts,
                contact("A", &format!("One{i}"), &format!("a{i}@x.com")),
            );
        }
        w.sync().await;
        assert_eq!(w.sf_contacts().len(), n);
        assert!(w.ex.user_delete_folder(&rep_mail(0), Folder::SalesforceSyncContacts));
        let r = w.sync().await;
        assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
        assert!(r.read.rep_errors.is_empty(), "{:?}", r.read.rep_errors);
        assert!(w.ex.folder_exists(&rep_mail(0), Folder::SalesforceSyncContacts));
        // Unknown to Exchange now, not deleted: Salesforce keeps every one, then and after.
        assert_eq!(w.sf_contacts().len(), n, "{n} contacts");
        w.sync().await;
        assert_eq!(w.sf_contacts().len(), n, "{n} contacts, a cycle later");
    }
}

#[tokio::test]
async fn a_deleted_contact_is_not_deleted_on_the_other_side() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    let ex_id = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    let sf_id = w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("B", "Two", "b@x.com"),
    );
    w.sync().await;
    assert_eq!((w.ex_contacts(0).len(), w.sf_contacts().len()), (2, 2));
    // Deleted in Exchange: Salesforce keeps it. Deleted in Salesforce: Exchange keeps it.
    w.ex.user_delete(&rep_mail(0), &ex_id);
    w.sf.user_delete(ObjectKind::Contact, &sf_id);
    let r = w.sync().await;
    assert!(r.exec.failed.is_empty());
    assert_eq!(
        w.sf_contacts()
            .iter()
            .filter(|c| c.email() == "a@x.com")
            .count(),
        1
    );
    assert_eq!(
        w.ex_contacts(0)
            .iter()
            .filter(|c| c.email() == "b@x.com")
            .count(),
        1
    );
    // ...and neither is synced back (which would undo the delete).
    w.sync().await;
    assert!(!w.ex_contacts(0).iter().any(|c| c.email() == "a@x.com"));
    assert!(!w.sf_contacts().iter().any(|c| c.email() == "b@x.com"));
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn contact_filters_apply_salesforce_to_exchange_only() {
    let contacts = json!({ "direction": "both", "conflict": "salesforce_wins", "scope": "users_records",
        "filters": [ { "field": "MailingCountry", "op": "in", "values": ["DE", "FR"] } ] });
    let mut w = World::new(config(contacts, NONE), 1);
    let with = |r: Record, country: &str| match r {
        Record::Contact(c) => Record::Contact(c.with("MailingCountry", country)),
        other => other,
    };
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        with(contact("In", "De", "de@x.com"), "de"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        with(contact("Out", "Us", "us@x.com"), "US"),
    );
    // Exchange→Salesforce ignores the filter.
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        with(contact("Ex", "Us", "exus@x.com"), "US"),
    );
    let r = w.sync().await;
    let ex: BTreeSet<String> = w
        .ex_contacts(0)
        .iter()
        .map(|c| c.email().to_string())
        .collect();
    assert_eq!(
        ex,
        BTreeSet::from(["de@x.com".to_string(), "exus@x.com".to_string()])
    );
    assert!(w.sf_contacts().iter().any(|c| c.email() == "exus@x.com"));
    assert!(r.plan.skipped.iter().any(|s| s.reason.contains("filters")));
}

/// Filters choose which Salesforce contacts go to Exchange; a linked pair converges.
#[tokio::test]
async fn contact_filters_do_not_stop_salesforce_edits_of_a_contact_born_in_exchange() {
    let contacts = json!({ "direction": "both", "conflict": "salesforce_wins", "scope": "users_records",
        "filters": [ { "field": "MailingCountry", "op": "in", "values": ["DE"] } ] });
    let mut w = World::new(config(contacts, NONE), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ex", "Us", "exus@x.com"),
    );
    w.sync().await;
    let sf_id = w.sf.records(ObjectKind::Contact)[0].id.clone();
    w.sf.user_edit(ObjectKind::Contact, &sf_id, |r| {
        if let Record::Contact(c) = &mut r.record {
            c.set("Title", "Edited in Salesforce")
        }
    });
    w.sync().await;
    assert_eq!(w.ex_contacts(0)[0].get("Title"), "Edited in Salesforce");
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn contact_scope_users_records_syncs_only_the_reps_own_and_all_contacts_syncs_all() {
    let mut w = World::new(config(both_contacts(), NONE), 2);
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Own", "Zero", "own0@x.com"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(1),
        contact("Own", "One", "own1@x.com"),
    );
    w.sync().await;
    assert_eq!(w.ex_contacts(0).len(), 1);
    assert_eq!(w.ex_contacts(0)[0].email(), "own0@x.com");

    let all = json!({ "direction": "salesforce_to_exchange", "scope": "all_contacts" });
    let mut w = World::new(config(all, NONE), 2);
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Own", "Zero", "own0@x.com"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(1),
        contact("Own", "One", "own1@x.com"),
    );
    w.sync().await;
    assert_eq!(w.ex_contacts(0).len(), 2);
    assert_eq!(w.ex_contacts(1).len(), 2);
    assert!(w.plan().await.is_empty());
}

/// `all_contacts` is what the rep can read: the engine asks (one call per 200 contacts per
/// rep) only about others' contacts it would put in the mailbox, and a quiet cycle asks
/// nothing.
#[tokio::test]
async fn all_contacts_asks_only_about_contacts_it_would_put_in_the_mailbox() {
    let all = json!({ "direction": "salesforce_to_exchange", "scope": "all_contacts" });
    let mut w = World::new(config(all, NONE), 2);
    let zero = contact("Own", "Zero", "own0@x.com");
    w.sf.user_create(ObjectKind::Contact, &rep_id(0), zero);
    let hidden = w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(1),
        contact("Own", "One", "own1@x.com"),
    );
    w.sf.hide_from(&rep_id(0), &hidden);
    w.sync().await;
    let emails = |w: &World, n| -> Vec<String> {
        w.ex_contacts(n)
            .iter()
            .map(|c| c.email().to_string())
            .collect()
    };
    assert_eq!(emails(&w, 0), ["own0@x.com"]);
    assert_eq!(emails(&w, 1).len(), 2);
    assert_eq!(w.sf.counts().record_access, 2, "one call per rep");

    let before = w.sf.counts().record_access;
    w.sync().await;
    assert_eq!(
        w.sf.counts().record_access,
        before,
        "a quiet cycle asks nothing"
    );
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn first_sync_matches_contacts_by_email_then_by_name_and_company_instead_of_duplicating() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    let company = |r: Record, co: &str| match r {
        Record::Contact(c) => Record::Contact(c.with("Account.Name", co)),
        other => other,
    };
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ANA@x.com "),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        company(contact("Bo", "Li", ""), "Acme"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        company(contact("bo", "LI", ""), "acme"),
    );
    let r = w.sync().await;
    assert_eq!(w.ex_contacts(0).len(), 2, "{:#?}", r.plan.operations);
    assert_eq!(w.sf_contacts().len(), 2);
    assert_eq!(
        w.state
            .links(&rep_id(0), ObjectKind::Contact)
            .unwrap()
            .len(),
        2
    );
    assert!(w.plan().await.is_empty());
}

fn at_company(r: Record, company: &str) -> Record {
    match r {
        Record::Contact(c) => Record::Contact(c.with("Account.Name", company)),
        other => other,
    }
}

/// Two different people of one name at one company, with different emails, were paired by
/// first + last name + company, and salesforce_wins then overwrote the Outlook contact's
/// email with the other person's.
#[tokio::test]
async fn name_match_never_pairs_contacts_with_different_emails() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        at_company(contact("Dmitri", "Kowalski", "dk@acme.com"), "Acme"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        at_company(contact("Dmitri", "Kowalski", "dmitri.k@acme.com"), "Acme"),
    );
    let r = w.sync().await;
    let emails = |mut v: Vec<tether::model::Contact>| {
        let mut e: Vec<String> = v.drain(..).map(|c| c.email().to_string()).collect();
        e.sort();
        e
    };
    let both = ["dk@acme.com", "dmitri.k@acme.com"];
    assert_eq!(emails(w.ex_contacts(0)), both, "{:#?}", r.plan.operations);
    assert_eq!(emails(w.sf_contacts()), both);
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn a_conflict_follows_the_policy_and_is_reported() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    let ex_id = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    w.sync().await;
    let sf_id = w.sf.records(ObjectKind::Contact)[0].id.clone();
    w.ex.user_edit(&rep_mail(0), &ex_id, |r| {
        if let Record::Contact(c) = r {
            c.set("Title", "From Exchange")
        }
    });
    w.sf.user_edit(ObjectKind::Contact, &sf_id, |r| {
        if let Record::Contact(c) = &mut r.record {
            c.set("Title", "From Salesforce")
        }
    });
    let r = w.sync().await;
    assert_eq!(r.plan.conflicts.len(), 1);
    assert_eq!(w.ex_contacts(0)[0].get("Title"), "From Salesforce");
    assert_eq!(w.sf_contacts()[0].get("Title"), "From Salesforce");
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn one_way_sync_never_writes_to_its_source() {
    let contacts = json!({ "direction": "exchange_to_salesforce" });
    let mut w = World::new(config(contacts, NONE), 1);
    let ex_id = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Sf", "Only", "sf@x.com"),
    );
    w.sync().await;
    let sf_a =
        w.sf.records(ObjectKind::Contact)
            .into_iter()
            .find(|r| r.record.as_contact().unwrap().email() == "a@x.com")
            .unwrap();
    let before = w.ex.counts();
    w.sf.user_edit(ObjectKind::Contact, &sf_a.id, |r| {
        if let Record::Contact(c) = &mut r.record {
            c.set("Title", "SF edit")
        }
    });
    let r = w.sync().await;
    let after = w.ex.counts();
    assert_eq!(
        (after.create, after.update, after.delete),
        (before.create, before.update, before.delete)
    );
    assert!(
        r.plan
            .operations
            .iter()
            .all(|o| o.action.writes_to() != Some(tether::engine::plan::Side::Exchange))
    );
    assert_eq!(w.ex_contacts(0).len(), 1);
    // The Exchange edit overwrites the Salesforce edit, and the plan names the field.
    w.ex.user_edit(&rep_mail(0), &ex_id, |r| {
        if let Record::Contact(c) = r {
            c.set("Title", "Ex edit")
        }
    });
    w.sf.user_edit(ObjectKind::Contact, &sf_a.id, |r| {
        if let Record::Contact(c) = &mut r.record {
            c.set("Department", "Sales")
        }
    });
    let r = w.sync().await;
    assert_eq!(r.plan.overwrites.len(), 1);
    assert_eq!(
        r.plan.overwrites[0].fields,
        vec!["Department".to_string(), "Title".to_string()]
    );
    assert_eq!(
        w.sf_contacts()
            .iter()
            .find(|c| c.email() == "a@x.com")
            .unwrap()
            .get("Title"),
        "Ex edit"
    );
}

#[tokio::test]
async fn a_record_read_back_reformatted_never_looks_changed() {
    let mut w = World::new(config(both_contacts(), both_events()), 1);
    let c = match contact("A", "One", "a@x.com") {
        Record::Contact(c) => c
            .with("Description", "line one\nline two")
            .with("Phone", "(555) 010-2030"),
        _ => unreachable!(),
    };
    w.sf.user_create(ObjectKind::Contact, &rep_id(0), Record::Contact(c));
    let mut e = event("Review", "2026-06-16T09:00:00.500Z", 30);
    e.body = "agenda\n- one\n- two".into();
    w.sf.user_create(ObjectKind::Event, &rep_id(0), Record::Event(e));
    w.sync().await;
    // Exchange stored the bodies with CRLF; reading them back must not look like an edit.
    assert!(w.ex_contacts(0)[0].get("Description").contains("\r\n"));
    // Exchange also formats the phone its own way.
    let id = w.ex.items(&rep_mail(0), Folder::SalesforceSyncContacts)[0]
        .item_id
        .clone();
    w.ex.user_edit(&rep_mail(0), &id, |r| {
        if let Record::Contact(c) = r {
            c.set("Phone", "555.010.2030 ")
        }
    });
    let r = w.sync().await;
    assert!(r.plan.is_empty(), "{:#?}", r.plan.operations);
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn a_value_too_long_for_salesforce_is_truncated_with_a_warning_not_a_failed_sync() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let mut e = event("Offsite", "2026-06-16T09:00:00Z", 60);
    e.location = "L".repeat(300);
    w.ex.user_create(&rep_mail(0), Folder::Calendar, Record::Event(e));
    let r = w.sync().await;
    assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
    assert_eq!(w.sf_events()[0].location.len(), 255);
    let warnings: Vec<_> = w
        .state
        .errors()
        .unwrap()
        .into_iter()
        .filter(|e| e.code == "VALUE_TRUNCATED")
        .collect();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].message.contains("Location"));
    assert!(w.plan().await.is_empty());
    assert_eq!(sf_ex_event(&w, 0, "Offsite").unwrap().location.len(), 300);
}

// ---------------------------------------------------------------------------------------
// Events

fn events(v: Value) -> Value {
    let mut base = both_events();
    for (k, val) in v.as_object().unwrap() {
        base[k] = val.clone();
    }
    base
}

#[tokio::test]
async fn exchange_to_salesforce_events_with_today_leave_past_salesforce_edits_untouched() {
    let cfg = events(json!({ "direction": "exchange_to_salesforce", "since": "LAST_N_DAYS:30" }));
    let mut w = World::new(config(NONE, cfg), 1);
    // Yesterday's meeting (Berlin) syncs while the window reaches back 30 days...
    let past = w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Yesterday", "2026-06-14T08:00:00Z", 60)),
    );
    w.sync().await;
    let sf_id = w.sf.records(ObjectKind::Event)[0].id.clone();
    // ...then the window becomes TODAY; Salesforce edits the past event, and so does Exchange.
    w.config.sync_configurations[0]
        .events
        .as_mut()
        .unwrap()
        .since = tether::config::model::Since("TODAY".into());
    w.sf.user_edit(ObjectKind::Event, &sf_id, |r| {
        if let Record::Event(e) = &mut r.record {
            e.body = "notes taken in Salesforce".into()
        }
    });
    w.ex.user_edit(&rep_mail(0), &past, |r| {
        if let Record::Event(e) = r {
            e.location = "Room 2".into()
        }
    });
    let r = w.sync().await;
    assert!(r.plan.operations.is_empty(), "{:#?}", r.plan.operations);
    assert_eq!(w.sf_events()[0].body, "notes taken in Salesforce");
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.reason.contains("since window"))
    );
}

#[tokio::test]
async fn last_n_days_30_includes_an_event_that_ended_29_days_ago_and_excludes_one_that_ended_31_days_ago()
 {
    let mut w = World::new(
        config(NONE, events(json!({ "since": "LAST_N_DAYS:30" }))),
        1,
    );
    let ended = |days: i64, subject: &str| {
        let end = now() - chrono::Duration::days(days);
        let mut e = event(subject, NOW, 60);
        e.time = EventTime::Timed {
            start: end - chrono::Duration::hours(1),
            end,
        };
        Record::Event(e)
    };
    w.ex.user_create(&rep_mail(0), Folder::Calendar, ended(29, "29 days"));
    w.ex.user_create(&rep_mail(0), Folder::Calendar, ended(31, "31 days"));
    w.sync().await;
    let subjects: Vec<String> = w.sf_events().into_iter().map(|e| e.subject).collect();
    assert_eq!(subjects, vec!["29 days".to_string()]);
}

#[tokio::test]
async fn a_private_event_stays_out_unless_sync_private_and_then_stays_private() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let mut e = event("Doctor", "2026-06-16T09:00:00Z", 60);
    e.private = true;
    w.ex.user_create(&rep_mail(0), Folder::Calendar, Record::Event(e.clone()));
    let r = w.sync().await;
    assert!(w.sf_events().is_empty());
    assert!(r.plan.skipped.iter().any(|s| s.reason.contains("private")));

    let mut w = World::new(
        config(
            NONE,
            events(json!({ "sync_private": true, "auto_relate": true })),
        ),
        1,
    );
    e.attendees = vec!["someone@x.com".into()];
    w.ex.user_create(&rep_mail(0), Folder::Calendar, Record::Event(e));
    w.sf.add_lead("00Q1", "someone@x.com");
    w.sync().await;
    let sf = w.sf.records(ObjectKind::Event);
    assert!(sf[0].record.as_event().unwrap().private);
    // Never auto-related.
    assert!(w.sf.relations(&sf[0].id).is_empty());
    assert_eq!(w.sf.counts().find_people, 0);
}

#[tokio::test]
async fn user_selected_syncs_only_related_events_to_salesforce_while_salesforce_to_exchange_syncs_all()
 {
    let mut w = World::new(config(NONE, events(json!({ "which": "user_selected" }))), 1);
    w.ex.user_create_item(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Related", "2026-06-16T09:00:00Z", 60)),
        true,
    );
    w.ex.user_create_item(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Personal", "2026-06-16T11:00:00Z", 60)),
        false,
    );
    w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event("From SF", "2026-06-17T09:00:00Z", 60)),
    );
    w.sync().await;
    let sf: BTreeSet<String> = w.sf_events().into_iter().map(|e| e.subject).collect();
    assert_eq!(
        sf,
        BTreeSet::from(["Related".to_string(), "From SF".to_string()])
    );
    assert!(sf_ex_event(&w, 0, "From SF").is_some());
}

/// user_selected chooses which Exchange events enter Salesforce; a linked pair converges.
#[tokio::test]
async fn user_selected_still_syncs_outlook_edits_of_events_that_came_from_salesforce() {
    let mut w = World::new(config(NONE, events(json!({ "which": "user_selected" }))), 1);
    w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event("From SF", "2026-06-17T09:00:00Z", 60)),
    );
    w.sync().await;
    let copy = w.ex.items(&rep_mail(0), Folder::Calendar)[0]
        .item_id
        .clone();
    w.ex.user_edit(&rep_mail(0), &copy, |r| {
        if let Record::Event(e) = r {
            e.location = "Moved in Outlook".into()
        }
    });
    w.sync().await;
    assert_eq!(w.sf_events()[0].location, "Moved in Outlook");
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn delete_synced_deletes_on_the_other_side_otherwise_unlinks() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let id = w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Gone", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    w.ex.user_delete(&rep_mail(0), &id);
    w.sync().await;
    assert!(w.sf_events().is_empty());

    let mut w = World::new(config(NONE, events(json!({ "delete_synced": false }))), 1);
    let id = w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Kept", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    w.ex.user_delete(&rep_mail(0), &id);
    w.sync().await;
    assert_eq!(w.sf_events().len(), 1);
    w.sync().await;
    assert!(
        w.ex_events(0).is_empty(),
        "an unlinked event is not synced back"
    );
}

#[tokio::test]
async fn an_edit_beats_a_delete() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let id = w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Plan", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    let sf_id = w.sf.records(ObjectKind::Event)[0].id.clone();
    w.ex.user_delete(&rep_mail(0), &id);
    w.sf.user_edit(ObjectKind::Event, &sf_id, |r| {
        if let Record::Event(e) = &mut r.record {
            e.location = "Moved".into()
        }
    });
    w.sync().await;
    assert_eq!(sf_ex_event(&w, 0, "Plan").unwrap().location, "Moved");
    assert_eq!(w.sf_events().len(), 1);
    assert!(w.plan().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// A user's edit between a cycle's read and its writes (issue 12, item 13): the delete or
// overwrite planned from the read is not sent; the next cycle reads the edit and decides.

fn retitle_event(w: &MemoryCrm, id: &str, location: &str) {
    assert!(w.user_edit(ObjectKind::Event, id, |r| {
        if let Record::Event(e) = &mut r.record {
            e.location = location.into()
        }
    }));
}

fn held_back(r: &tether::engine::cycle::CycleReport) -> Vec<&'static str> {
    r.held_back.iter().map(|o| o.action.name()).collect()
}

#[tokio::test]
async fn salesforce_edit_after_the_read_is_not_deleted() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let id = w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Plan", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    w.sync().await;
    let sf_id = w.sf.records(ObjectKind::Event)[0].id.clone();
    w.ex.user_delete(&rep_mail(0), &id);
    let queries = w.sf.counts().query_pages;
    let r = w
        .sync_with_edit_after_read(Side::Salesforce, |_, sf| retitle_event(sf, &sf_id, "Moved"))
        .await;
    assert_eq!(w.sf_events().len(), 1, "the edited event was deleted");
    assert_eq!(held_back(&r), ["delete_in_salesforce"]);
    assert_eq!(r.exec.salesforce.deleted, 0);
    // The read (one page) and the version check (one query for the one id).
    assert_eq!(w.sf.counts().query_pages - queries, 2);
    // The next cycle sees the edit: it beats the delete.
    w.sync().await;
    assert_eq!(sf_ex_event(&w, 0, "Plan").unwrap().location, "Moved");
    assert_eq!(w.sf_events().len(), 1);
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn exchange_edit_after_the_read_is_not_deleted() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let sf_id = w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event("Plan", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    w.sync().await;
    let ex_id = w.ex.items(&rep_mail(0), Folder::Calendar)[0]
        .item_id
        .clone();
    w.sf.user_delete(ObjectKind::Event, &sf_id);
    let r = w
        .sync_with_edit_after_read(Side::Exchange, |ex, _| {
            assert!(ex.user_edit(&rep_mail(0), &ex_id, |r| {
                if let Record::Event(e) = r {
                    e.location = "Moved in Outlook".into()
                }
            }));
        })
        .await;
    assert_eq!(w.ex_events(0).len(), 1, "the edited item was deleted");
    assert_eq!(held_back(&r), ["delete_in_exchange"]);
    w.sync().await;
    let sf = w.sf_events();
    assert_eq!(sf.len(), 1, "re-created in Salesforce");
    assert_eq!(sf[0].location, "Moved in Outlook");
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn salesforce_edit_after_the_read_is_not_overwritten() {
    // Salesforce wins conflicts: once the edit is read, it is what both sides keep.
    let mut w = World::new(config(both_contacts(), NONE), 1);
    let ex_id = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.sync().await;
    w.sync().await;
    let sf_id = w.sf.records(ObjectKind::Contact)[0].id.clone();
    w.ex.user_edit(&rep_mail(0), &ex_id, |r| {
        if let Record::Contact(c) = r {
            *c = c.clone().with("Title", "From Outlook");
        }
    });
    let r = w
        .sync_with_edit_after_read(Side::Salesforce, |_, sf| {
            assert!(sf.user_edit(ObjectKind::Contact, &sf_id, |r| {
                if let Record::Contact(c) = &mut r.record {
                    *c = c.clone().with("Title", "From Salesforce");
                }
            }));
        })
        .await;
    assert_eq!(held_back(&r), ["update_salesforce"]);
    assert_eq!(
        w.sf_contacts()[0].get("Title"),
        "From Salesforce",
        "overwritten"
    );
    let r = w.sync().await;
    assert_eq!(
        r.plan.conflicts.len(),
        1,
        "now a conflict, decided by the policy"
    );
    assert_eq!(w.sf_contacts()[0].get("Title"), "From Salesforce");
    assert_eq!(w.ex_contacts(0)[0].get("Title"), "From Salesforce");
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn exchange_edit_after_the_read_is_not_overwritten() {
    let contacts =
        json!({ "direction": "both", "conflict": "exchange_wins", "scope": "users_records" });
    let mut w = World::new(config(contacts, NONE), 1);
    let sf_id = w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.sync().await;
    w.sync().await;
    let ex_id = w.ex.items(&rep_mail(0), Folder::SalesforceSyncContacts)[0]
        .item_id
        .clone();
    w.sf.user_edit(ObjectKind::Contact, &sf_id, |r| {
        if let Record::Contact(c) = &mut r.record {
            *c = c.clone().with("Title", "From Salesforce");
        }
    });
    let gets = w.ex.counts().get_items;
    let r = w
        .sync_with_edit_after_read(Side::Exchange, |ex, _| {
            assert!(ex.user_edit(&rep_mail(0), &ex_id, |r| {
                if let Record::Contact(c) = r {
                    *c = c.clone().with("Title", "From Outlook");
                }
            }));
        })
        .await;
    assert_eq!(held_back(&r), ["update_exchange"]);
    assert_eq!(
        w.ex_contacts(0)[0].get("Title"),
        "From Outlook",
        "overwritten"
    );
    assert_eq!(
        w.ex.counts().get_items - gets,
        1,
        "one GetItem for the version check"
    );
    let r = w.sync().await;
    assert_eq!(r.plan.conflicts.len(), 1);
    assert_eq!(w.sf_contacts()[0].get("Title"), "From Outlook");
    assert_eq!(w.ex_contacts(0)[0].get("Title"), "From Outlook");
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn a_salesforce_edit_to_an_unmapped_field_does_not_hold_later_overwrites_back() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    let ex_id = w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.sync().await;
    let sf_id = w.sf.records(ObjectKind::Contact)[0].id.clone();
    // A field no configuration maps: a new SystemModstamp, nothing to sync.
    w.sf.user_edit(ObjectKind::Contact, &sf_id, |r| {
        if let Record::Contact(c) = &mut r.record {
            *c = c.clone().with("Unmapped_Field__c", "x");
        }
    });
    assert!(w.sync().await.plan.is_empty());
    w.ex.user_edit(&rep_mail(0), &ex_id, |r| {
        if let Record::Contact(c) = r {
            *c = c.clone().with("Title", "From Outlook");
        }
    });
    let r = w.sync().await;
    assert!(r.held_back.is_empty(), "held back: {:#?}", r.held_back);
    assert_eq!(w.sf_contacts()[0].get("Title"), "From Outlook");
}

#[tokio::test]
async fn a_version_check_that_fails_sends_no_delete_and_the_next_cycle_does() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let id = w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Gone", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    w.ex.user_delete(&rep_mail(0), &id);
    w.sf.set_faults(Faults {
        fail_version_reads: 1,
        ..Faults::default()
    });
    let r = w.sync().await;
    assert_eq!(held_back(&r), ["delete_in_salesforce"]);
    assert_eq!(w.sf_events().len(), 1, "deleted unchecked");
    w.sync().await;
    assert!(w.sf_events().is_empty());
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn a_no_change_cycle_checks_no_versions() {
    let mut w = World::new(config(both_contacts(), both_events()), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Plan", "2026-06-16T09:00:00Z", 60)),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Ana", "Diaz", "ana@x.com"),
    );
    w.sync().await;
    w.sync().await;
    let (ex, sf) = (w.ex.counts(), w.sf.counts());
    assert!(w.sync().await.plan.is_empty());
    assert_eq!(w.ex.counts().get_items, ex.get_items);
    // One page per object: the change reads only.
    assert_eq!(w.sf.counts().query_pages - sf.query_pages, 2);
}

#[tokio::test]
async fn auto_relate_relates_attendees_to_contacts_or_one_lead_and_records_the_unmatched() {
    let mut w = World::new(config(NONE, events(json!({ "auto_relate": true }))), 1);
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("C", "One", "c1@x.com"),
    );
    w.sf.add_lead("00Q1", "lead@x.com");
    let mut e = event("Demo", "2026-06-16T09:00:00Z", 60);
    e.attendees = vec![
        "C1@x.com".into(),
        "lead@x.com".into(),
        "nobody@x.com".into(),
        rep_mail(0),
    ];
    w.ex.user_create(&rep_mail(0), Folder::Calendar, Record::Event(e));
    let mut only_lead = event("Lead call", "2026-06-16T11:00:00Z", 60);
    only_lead.attendees = vec!["lead@x.com".into()];
    w.ex.user_create(&rep_mail(0), Folder::Calendar, Record::Event(only_lead));
    w.sync().await;
    let sf = w.sf.records(ObjectKind::Event);
    let demo = sf
        .iter()
        .find(|r| r.record.as_event().unwrap().subject == "Demo")
        .unwrap();
    let contact_id = w.sf.records(ObjectKind::Contact)[0].id.clone();
    assert_eq!(w.sf.relations(&demo.id), vec![contact_id]);
    let call = sf
        .iter()
        .find(|r| r.record.as_event().unwrap().subject == "Lead call")
        .unwrap();
    assert_eq!(w.sf.relations(&call.id), vec!["00Q1".to_string()]);
    let unresolved: Vec<String> = w
        .state
        .unresolved(&rep_id(0))
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(unresolved, vec!["nobody@x.com".to_string()]);
}

#[tokio::test]
async fn sync_series_off_skips_series_with_the_reason_and_classic_recurring_events_never_sync() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let mut series = event("Weekly", "2026-06-16T09:00:00Z", 30);
    series.recurrence = Recurrence::Series {
        rule: "FREQ=WEEKLY;BYDAY=TU".into(),
    };
    w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(series.clone()),
    );
    let mut classic = event("Classic", "2026-06-16T10:00:00Z", 30);
    classic.recurrence = Recurrence::ClassicRecurring;
    w.sf.user_create(ObjectKind::Event, &rep_id(0), Record::Event(classic));
    let r = w.sync().await;
    assert!(w.sf_events().iter().all(|e| e.subject != "Weekly"));
    assert!(w.ex_events(0).iter().all(|e| e.subject != "Classic"));
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.reason.contains("sync_series"))
    );
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.reason.contains("classic recurring"))
    );

    let mut w = World::new(config(NONE, events(json!({ "sync_series": true }))), 1);
    w.ex.user_create(&rep_mail(0), Folder::Calendar, Record::Event(series));
    w.sync().await;
    assert_eq!(
        w.sf_events()[0].recurrence,
        Recurrence::Series {
            rule: "FREQ=WEEKLY;BYDAY=TU".into()
        }
    );
}

#[tokio::test]
async fn first_sync_matches_events_by_subject_start_and_end_instead_of_duplicating() {
    let mut w = World::new(config(NONE, both_events()), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("Kickoff", "2026-06-16T09:00:00Z", 60)),
    );
    w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event(" kickoff ", "2026-06-16T09:00:00Z", 60)),
    );
    w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event("Kickoff", "2026-06-16T09:00:00Z", 90)),
    );
    w.sync().await;
    assert_eq!(w.ex_events(0).len(), 2);
    assert_eq!(w.sf_events().len(), 2);
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn all_day_events_sync_as_dates() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let mut e = event("Holiday", NOW, 0);
    e.time = EventTime::AllDay {
        start: "2026-06-18".parse().unwrap(),
        end: "2026-06-19".parse().unwrap(),
    };
    w.sf.user_create(ObjectKind::Event, &rep_id(0), Record::Event(e.clone()));
    w.sync().await;
    assert_eq!(w.ex_events(0)[0].time, e.time);
    assert!(w.plan().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Reps, reset, guard, crash safety, statuses, cost

#[tokio::test]
async fn a_reset_relinks_without_duplicates() {
    let mut w = World::new(config(both_contacts(), both_events()), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("B", "Two", "b@x.com"),
    );
    w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("E1", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    w.state
        .apply(vec![StateChange::SetResetMark {
            rep: rep_id(0),
            mark: Some(ResetMark::MarkedForReset),
        }])
        .unwrap();
    let r = w.sync().await;
    assert!(
        r.plan
            .operations
            .iter()
            .all(|o| o.action.writes_to().is_none()),
        "{:#?}",
        r.plan.operations
    );
    assert_eq!((w.ex_contacts(0).len(), w.sf_contacts().len()), (2, 2));
    assert_eq!((w.ex_events(0).len(), w.sf_events().len()), (1, 1));
    assert_eq!(
        w.state
            .links(&rep_id(0), ObjectKind::Contact)
            .unwrap()
            .len(),
        2
    );
    assert!(w.state.reset_marks().unwrap().is_empty());
    assert!(w.plan().await.is_empty());
}

/// A record that fails during a reset used to keep the reset from ever completing: while the
/// mark stood the planner ignored the rep's links, so every cycle matched again and added
/// link rows, and deletes stopped propagating.
#[tokio::test]
async fn reset_completes_when_a_record_fails() {
    let mut w = World::new(config(both_contacts(), both_events()), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("B", "Two", "b@x.com"),
    );
    let meeting = w.ex.user_create(
        &rep_mail(0),
        Folder::Calendar,
        Record::Event(event("E1", "2026-06-16T09:00:00Z", 60)),
    );
    w.sync().await;
    // A contact Salesforce refuses, every time, appears before the reset.
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("C", "Bad", "bad@x.com"),
    );
    w.sf.set_faults(Faults {
        fail_records: BTreeSet::from(["bad@x.com".to_string()]),
        ..Faults::default()
    });
    w.state
        .apply(vec![StateChange::SetResetMark {
            rep: rep_id(0),
            mark: Some(ResetMark::MarkedForReset),
        }])
        .unwrap();
    let r = w.sync().await;
    assert_eq!(r.exec.failed.len(), 1, "{:#?}", r.exec.failed);
    assert!(
        w.state.reset_marks().unwrap().is_empty(),
        "every record was matched or recorded as failed: the reset is complete"
    );
    for _ in 0..3 {
        w.sync().await;
    }
    let links = |w: &World, object| w.state.links(&rep_id(0), object).unwrap().len();
    assert_eq!(links(&w, ObjectKind::Contact), 2, "no link rows pile up");
    assert_eq!(links(&w, ObjectKind::Event), 1);
    // Deletes propagate again (events: delete_synced).
    w.ex.user_delete(&rep_mail(0), &meeting);
    w.sync().await;
    assert!(w.sf_events().is_empty());
    // The failed record is retried as an ordinary record.
    w.sf.set_faults(Faults::default());
    w.sync().await;
    assert_eq!(w.sf_contacts().len(), 3);
    assert_eq!(links(&w, ObjectKind::Contact), 3);
    assert!(w.plan().await.is_empty());
}

/// A reset cycle stopped midway leaves the reset in progress with the links it made so far;
/// the next cycle keeps them (it used to ignore them and link the same records again).
#[tokio::test]
async fn an_interrupted_reset_keeps_the_links_it_made() {
    for kill_at in 1..8 {
        let mut w = World::new(config(both_contacts(), NONE), 1);
        for n in ["a", "b", "c"] {
            w.ex.user_create(
                &rep_mail(0),
                Folder::SalesforceSyncContacts,
                contact(n, n, &format!("{n}@x.com")),
            );
        }
        w.sync().await;
        w.state
            .apply(vec![StateChange::SetResetMark {
                rep: rep_id(0),
                mark: Some(ResetMark::MarkedForReset),
            }])
            .unwrap();
        let _ = w.try_sync(&mut StepBudget::kill_after(kill_at)).await;
        w.sync().await;
        w.sync().await;
        let links = w.state.links(&rep_id(0), ObjectKind::Contact).unwrap();
        assert_eq!(links.len(), 3, "killed after {kill_at} steps: {links:#?}");
        assert!(w.state.reset_marks().unwrap().is_empty());
        assert!(w.plan().await.is_empty());
    }
}

#[tokio::test]
async fn a_side_that_suddenly_looks_empty_causes_no_mass_delete_unless_forced() {
    let mut w = World::new(config(NONE, both_events()), 1);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(w.ex.user_create(
            &rep_mail(0),
            Folder::Calendar,
            Record::Event(event(&format!("M{i}"), "2026-06-16T09:00:00Z", 60 + i)),
        ));
    }
    w.sync().await;
    for id in &ids {
        w.ex.user_delete(&rep_mail(0), id);
    }
    let r = w.sync().await;
    assert_eq!(r.plan.refusals.len(), 1);
    assert_eq!(w.sf_events().len(), 6);
    let r = run_cycle(
        &w.config,
        &w.ex,
        &w.sf,
        &mut w.state,
        w.now,
        &SyncOptions {
            force: true,
            ..SyncOptions::default()
        },
        &mut StepBudget::unlimited(),
    )
    .await
    .unwrap();
    assert!(r.plan.refusals.is_empty());
    assert!(w.sf_events().is_empty());
}

async fn kill_after_remote_create_then_rerun(side_of_create: &str) {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.sync().await;
    match side_of_create {
        "salesforce" => {
            w.ex.user_create(
                &rep_mail(0),
                Folder::SalesforceSyncContacts,
                contact("A", "One", "a@x.com"),
            );
        }
        _ => {
            w.sf.user_create(
                ObjectKind::Contact,
                &rep_id(0),
                contact("A", "One", "a@x.com"),
            );
        }
    }
    // Steps: statuses, journal, the remote create — killed before its state write.
    let mut budget = StepBudget::kill_after(3);
    assert!(w.try_sync(&mut budget).await.is_err());
    assert_eq!(
        (w.ex_contacts(0).len(), w.sf_contacts().len()),
        (1, 1),
        "the create happened"
    );
    assert!(
        w.state
            .links(&rep_id(0), ObjectKind::Contact)
            .unwrap()
            .is_empty(),
        "but was not recorded"
    );
    w.sync().await;
    assert_eq!((w.ex_contacts(0).len(), w.sf_contacts().len()), (1, 1));
    assert_eq!(
        w.state
            .links(&rep_id(0), ObjectKind::Contact)
            .unwrap()
            .len(),
        1
    );
    assert!(w.state.pending_creates().unwrap().is_empty());
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn killed_between_a_salesforce_create_and_the_state_write_rerun_creates_no_duplicate() {
    kill_after_remote_create_then_rerun("salesforce").await;
}

#[tokio::test]
async fn killed_between_an_exchange_create_and_the_state_write_rerun_creates_no_duplicate() {
    kill_after_remote_create_then_rerun("exchange").await;
}

/// Killed right after tether's create of a Salesforce record from a new Exchange item and
/// before its state write; the user then deletes the new record in Salesforce; the next
/// runs must not create it again (its marker is in the recycle bin), and must keep the item
/// it was copied from.
async fn delete_after_an_unrecorded_create_then_rerun(object: ObjectKind) {
    let (contacts, events) = match object {
        ObjectKind::Contact => (both_contacts(), NONE),
        ObjectKind::Event => (NONE, both_events()),
    };
    let mut w = World::new(config(contacts, events), 1);
    w.sync().await;
    let (folder, record) = match object {
        ObjectKind::Contact => (
            Folder::SalesforceSyncContacts,
            contact("A", "One", "a@x.com"),
        ),
        ObjectKind::Event => (
            Folder::Calendar,
            Record::Event(event("Review", "2026-06-16T09:00:00Z", 30)),
        ),
    };
    let source = w.ex.user_create(&rep_mail(0), folder, record);
    // Steps: statuses, journal, the remote create — killed before its state write.
    let mut budget = StepBudget::kill_after(3);
    assert!(w.try_sync(&mut budget).await.is_err());
    let sf = w.sf.records(object);
    assert_eq!(sf.len(), 1, "the create happened");
    assert!(sf[0].marker.is_some());
    assert!(w.state.links(&rep_id(0), object).unwrap().is_empty());
    // The user deletes the record tether just created.
    assert!(w.sf.user_delete(object, &sf[0].id));
    let r = w.sync().await;
    assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
    w.sync().await;
    assert!(
        w.sf.records(object).is_empty(),
        "the record the user deleted was created again"
    );
    let ex = w.ex.items(&rep_mail(0), folder);
    assert_eq!(ex.len(), 1, "the Exchange item it was copied from is kept");
    assert_eq!(ex[0].item_id, source);
    assert!(w.state.pending_creates().unwrap().is_empty());
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn item_deleted_after_an_unrecorded_create_is_not_created_again() {
    delete_after_an_unrecorded_create_then_rerun(ObjectKind::Contact).await;
}

#[tokio::test]
async fn event_deleted_after_an_unrecorded_create_is_not_created_again_and_its_source_is_kept() {
    // delete_synced events: the source is kept too (a copy tether never linked).
    delete_after_an_unrecorded_create_then_rerun(ObjectKind::Event).await;
}

/// Killed right after tether's create of an Exchange item from a new Salesforce record and
/// before its state write; the rep then deletes the new item in Outlook (it moves to Deleted
/// Items, stamp kept); the next runs must not create it again, and must keep the Salesforce
/// record it was copied from (the pair was never linked, so even delete_synced events stay).
async fn exchange_delete_after_an_unrecorded_create_then_rerun(object: ObjectKind) {
    let (contacts, events) = match object {
        ObjectKind::Contact => (both_contacts(), NONE),
        ObjectKind::Event => (NONE, both_events()),
    };
    let mut w = World::new(config(contacts, events), 1);
    w.sync().await;
    let (folder, record) = match object {
        ObjectKind::Contact => (
            Folder::SalesforceSyncContacts,
            contact("A", "One", "a@x.com"),
        ),
        ObjectKind::Event => (
            Folder::Calendar,
            Record::Event(event("Review", "2026-06-16T09:00:00Z", 30)),
        ),
    };
    let source = w.sf.user_create(object, &rep_id(0), record);
    // Steps: statuses, journal, the remote create — killed before its state write.
    let mut budget = StepBudget::kill_after(3);
    assert!(w.try_sync(&mut budget).await.is_err());
    let ex = w.ex.items(&rep_mail(0), folder);
    assert_eq!(ex.len(), 1, "the create happened");
    assert_eq!(ex[0].salesforce_id.as_deref(), Some(source.as_str()));
    assert!(w.state.links(&rep_id(0), object).unwrap().is_empty());
    // The rep deletes the item tether just created.
    assert!(w.ex.user_delete(&rep_mail(0), &ex[0].item_id));
    let r = w.sync().await;
    assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
    w.sync().await;
    assert!(
        w.ex.items(&rep_mail(0), folder).is_empty(),
        "the item the rep deleted was created again"
    );
    let sf = w.sf.records(object);
    assert_eq!(
        sf.len(),
        1,
        "the Salesforce record it was copied from is kept"
    );
    assert_eq!(sf[0].id, source);
    let links = w.state.links(&rep_id(0), object).unwrap();
    assert_eq!(links.len(), 1);
    assert!(links[0].1.exchange.is_none(), "left unlinked: {links:?}");
    assert!(w.state.pending_creates().unwrap().is_empty());
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn exchange_contact_deleted_after_an_unrecorded_create_is_not_created_again() {
    exchange_delete_after_an_unrecorded_create_then_rerun(ObjectKind::Contact).await;
}

#[tokio::test]
async fn exchange_event_deleted_after_an_unrecorded_create_is_not_created_again() {
    exchange_delete_after_an_unrecorded_create_then_rerun(ObjectKind::Event).await;
}

/// An older copy of the record in Deleted Items (made before the create was journalled)
/// is not the create's: a journalled create that never reached Exchange is sent.
#[tokio::test]
async fn an_older_deleted_copy_does_not_block_a_journalled_create_that_never_happened() {
    let mut w = World::new(config(NONE, both_events()), 1);
    w.sync().await;
    let sf_id = w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event("Review", "2026-06-16T09:00:00Z", 30)),
    );
    w.sync().await;
    let old = w.ex.items(&rep_mail(0), Folder::Calendar);
    assert_eq!(old.len(), 1);
    // An hour later the rep deletes the item in Outlook and edits the event in Salesforce:
    // the edit wins, tether makes the item again.
    w.now += chrono::Duration::hours(1);
    w.ex.set_clock(w.now);
    assert!(w.ex.user_delete(&rep_mail(0), &old[0].item_id));
    assert!(w.sf.user_edit(ObjectKind::Event, &sf_id, |r| {
        if let Record::Event(e) = &mut r.record {
            e.location = "Room 4".into();
        }
    }));
    assert_eq!(w.ex.deleted_items(&rep_mail(0)), [Some(sf_id.clone())]);
    // Killed after the journal entry, before the create is sent.
    let mut budget = StepBudget::kill_after(2);
    assert!(w.try_sync(&mut budget).await.is_err());
    assert!(w.ex.items(&rep_mail(0), Folder::Calendar).is_empty());
    assert_eq!(w.state.pending_creates().unwrap().len(), 1, "journalled");
    let r = w.sync().await;
    assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
    let items = w.ex.items(&rep_mail(0), Folder::Calendar);
    assert_eq!(items.len(), 1, "the create was not sent");
    assert_eq!(items[0].salesforce_id.as_deref(), Some(sf_id.as_str()));
    assert!(w.state.pending_creates().unwrap().is_empty());
    assert!(w.plan().await.is_empty());
}

/// An event created by the rep in Salesforce and synced to Exchange (so the item carries
/// its Salesforce id), whose link's Exchange item id is then damaged by one character in
/// the state; then the rep edits the item in Outlook and tether syncs.
async fn damaged_link_then_an_edit() -> (World, String, String) {
    let mut w = World::new(config(NONE, both_events()), 1);
    w.sync().await;
    let sf_id = w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event("Review", "2026-06-16T09:00:00Z", 30)),
    );
    w.sync().await;
    let items = w.ex.items(&rep_mail(0), Folder::Calendar);
    assert_eq!(items.len(), 1);
    let item_id = items[0].item_id.clone();
    assert_eq!(items[0].salesforce_id.as_deref(), Some(sf_id.as_str()));
    let (lid, mut link) = w.state.links(&rep_id(0), ObjectKind::Event).unwrap()[0].clone();
    let exchange = link.exchange.as_mut().unwrap();
    assert_eq!(exchange.item_id, item_id);
    let mut damaged: Vec<char> = item_id.chars().collect();
    let last = damaged.len() - 1;
    damaged[last] = if damaged[last] == 'x' { 'y' } else { 'x' };
    exchange.item_id = damaged.into_iter().collect();
    w.state
        .apply(vec![StateChange::PutLink {
            id: Some(lid),
            link,
        }])
        .unwrap();
    assert!(w.ex.user_edit(&rep_mail(0), &item_id, |r| {
        if let Record::Event(e) = r {
            e.location = "Room 4".into();
        }
    }));
    let r = w.sync().await;
    assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
    (w, sf_id, item_id)
}

fn assert_one_event_each_side(w: &World, sf_id: &str, item_id: &str) {
    let sf = w.sf.records(ObjectKind::Event);
    let ex = w.ex.items(&rep_mail(0), Folder::Calendar);
    assert_eq!(
        (ex.len(), sf.len()),
        (1, 1),
        "a duplicate: Exchange {ex:#?}, Salesforce {sf:#?}"
    );
    assert_eq!(
        (ex[0].item_id.as_str(), sf[0].id.as_str()),
        (item_id, sf_id)
    );
}

#[tokio::test]
async fn damaged_link_item_id_relinks_through_the_stamped_salesforce_id() {
    let (mut w, sf_id, item_id) = damaged_link_then_an_edit().await;
    assert_one_event_each_side(&w, &sf_id, &item_id);
    assert_eq!(w.sf_events()[0].location, "Room 4", "the edit synced");
    let links = w.state.links(&rep_id(0), ObjectKind::Event).unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(
        links[0].1.exchange.as_ref().map(|e| e.item_id.as_str()),
        Some(item_id.as_str()),
        "the link is repaired"
    );
    w.sync().await;
    assert_one_event_each_side(&w, &sf_id, &item_id);
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn reset_after_a_damaged_link_adds_no_duplicate() {
    let (mut w, sf_id, item_id) = damaged_link_then_an_edit().await;
    w.state
        .apply(vec![StateChange::SetResetMark {
            rep: rep_id(0),
            mark: Some(ResetMark::MarkedForReset),
        }])
        .unwrap();
    let r = w.sync().await;
    assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
    w.sync().await;
    assert_one_event_each_side(&w, &sf_id, &item_id);
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn an_ambiguous_create_is_looked_up_before_it_is_retried() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.sync().await;
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    w.sf.set_faults(Faults {
        ambiguous_creates: 1,
        ..Faults::default()
    });
    let r = w.sync().await;
    assert_eq!(r.exec.failed[0].code, "AMBIGUOUS");
    assert_eq!(w.sf_contacts().len(), 1);
    w.sync().await;
    assert_eq!(w.sf_contacts().len(), 1);
    assert!(w.state.pending_creates().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_record_is_reported_with_a_suggestion_and_the_rest_carry_on() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("B", "Two", "b@x.com"),
    );
    w.sf.set_faults(Faults {
        fail_records: BTreeSet::from(["a@x.com".to_string()]),
        ..Faults::default()
    });
    let r = w.sync().await;
    assert_eq!(r.exec.failed.len(), 1);
    assert_eq!(w.sf_contacts().len(), 1);
    let err = &w.state.errors().unwrap()[0];
    assert_eq!(err.rep, rep_id(0));
    assert_eq!(err.direction, Some(SyncDirection::ExchangeToSalesforce));
    assert!(!err.suggestion.is_empty());
    w.sf.set_faults(Faults::default());
    w.sync().await;
    assert_eq!(w.sf_contacts().len(), 2);
}

#[tokio::test]
async fn a_rep_whose_impersonation_is_denied_gets_an_error_and_the_others_carry_on() {
    let mut w = World::new(config(both_contacts(), NONE), 2);
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("A", "One", "a@x.com"),
    );
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(1),
        contact("B", "Two", "b@x.com"),
    );
    w.ex.set_faults(Faults {
        denied: BTreeSet::from([rep_mail(0)]),
        ..Faults::default()
    });
    let r = w.sync().await;
    assert_eq!(r.read.rep_errors.len(), 1);
    assert_eq!(w.ex_contacts(1).len(), 1);
    assert!(
        w.state
            .errors()
            .unwrap()
            .iter()
            .any(|e| e.code == tether::engine::memory::codes::DENIED && e.rep == rep_id(0))
    );
    // Once allowed, the rep catches up, even though the org watermark moved on.
    w.ex.set_faults(Faults::default());
    w.sync().await;
    assert_eq!(w.ex_contacts(0).len(), 1);
}

#[tokio::test]
async fn statuses_follow_the_admin_guide() {
    let contacts = json!({ "direction": "salesforce_to_exchange", "scope": "users_records" });
    let mut w = World::new(config(contacts, NONE), 1);
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("A", "One", "a@x.com"),
    );
    let status = |w: &World, d| {
        w.state
            .status(&rep_id(0), ObjectKind::Contact, d)
            .unwrap()
            .unwrap()
    };
    w.sync().await;
    let s = status(&w, SyncDirection::SalesforceToExchange);
    assert_eq!(
        (s.status, s.records_in_sync),
        (SyncStatus::InitialSyncCompleted, 1)
    );
    assert_eq!(
        status(&w, SyncDirection::ExchangeToSalesforce).status,
        SyncStatus::NotSetToSync
    );
    w.sync().await;
    assert_eq!(
        status(&w, SyncDirection::SalesforceToExchange).status,
        SyncStatus::InSync
    );
    let activity = w
        .state
        .activity_since(w.now - chrono::Duration::minutes(60))
        .unwrap();
    assert_eq!(activity.get(&ObjectKind::Contact), Some(&1));
}

#[tokio::test]
async fn writes_go_in_full_batches() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    for i in 0..450 {
        w.ex.user_create(
            &rep_mail(0),
            Folder::SalesforceSyncContacts,
            contact("N", &format!("L{i}"), &format!("n{i}@x.com")),
        );
    }
    for i in 0..120 {
        w.sf.user_create(
            ObjectKind::Contact,
            &rep_id(0),
            contact("S", &format!("F{i}"), &format!("s{i}@x.com")),
        );
    }
    w.sync().await;
    assert_eq!(
        w.sf.counts().create,
        3,
        "450 Salesforce creates: 200 + 200 + 50"
    );
    assert_eq!(
        w.ex.counts().create,
        3,
        "120 Exchange creates: 50 + 50 + 20"
    );
    assert_eq!((w.sf.max_batch(), w.ex.max_batch()), (200, 50));
}

#[tokio::test]
async fn a_no_change_cycle_for_50_reps_costs_what_the_performance_model_says() {
    let mut w = World::new(config(both_contacts(), both_events()), 50);
    for rep in 0..50 {
        w.ex.user_create(
            &rep_mail(rep),
            Folder::SalesforceSyncContacts,
            contact("A", "B", &format!("c{rep}@x.com")),
        );
        w.sf.user_create(
            ObjectKind::Event,
            &rep_id(rep),
            Record::Event(event(&format!("e{rep}"), "2026-06-16T09:00:00Z", 30)),
        );
    }
    w.sync().await;
    w.sync().await; // reads tether's own writes back: still nothing to do
    let (ex0, sf0) = (w.ex.counts(), w.sf.counts());
    let r = w.sync().await;
    assert!(r.plan.is_empty());
    let (ex1, sf1) = (w.ex.counts(), w.sf.counts());
    // Exchange: one SyncFolderItems per synced folder per rep, nothing else.
    assert_eq!(ex1.sync_folder - ex0.sync_folder, 2 * 50);
    assert_eq!(ex1.total() - ex0.total(), 2 * 50);
    // Salesforce: users, then per object one query page and one getDeleted — whatever the
    // number of reps.
    assert_eq!(sf1.users - sf0.users, 1);
    assert_eq!(sf1.query_pages - sf0.query_pages, 2);
    assert_eq!(sf1.get_deleted - sf0.get_deleted, 2);
    assert_eq!(sf1.total() - sf0.total(), 5);
}

#[tokio::test]
async fn planning_writes_nothing() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.ex.user_create(
        &rep_mail(0),
        Folder::SalesforceSyncContacts,
        contact("A", "One", "a@x.com"),
    );
    let (plan, _) = read_and_plan(
        &w.config,
        &w.ex,
        &w.sf,
        &w.state,
        w.now,
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(plan.operations.len(), 1);
    assert!(w.sf_contacts().is_empty());
    assert!(w.state.all_links().unwrap().is_empty());
    w.sync().await;
}

#[tokio::test]
async fn a_folder_feed_longer_than_a_page_is_read_page_by_page() {
    let mut w = World::new(config(both_contacts(), NONE), 1);
    w.ex.page_size = 2;
    for i in 0..5 {
        w.ex.user_create(
            &rep_mail(0),
            Folder::SalesforceSyncContacts,
            contact("P", &format!("L{i}"), &format!("p{i}@x.com")),
        );
    }
    w.sync().await;
    assert_eq!(w.ex.counts().sync_folder, 3, "5 changes in pages of 2");
    assert_eq!(w.sf_contacts().len(), 5);
    assert!(w.plan().await.is_empty());
}

#[tokio::test]
async fn changed_sync_settings_read_everything_once_so_records_that_now_qualify_sync() {
    let contacts = json!({ "direction": "salesforce_to_exchange", "scope": "users_records",
        "filters": [ { "field": "MailingCountry", "op": "equals", "value": "DE" } ] });
    let mut w = World::new(config(contacts, NONE), 1);
    let us = match contact("Out", "Us", "us@x.com") {
        Record::Contact(c) => Record::Contact(c.with("MailingCountry", "US")),
        other => other,
    };
    w.sf.user_create(ObjectKind::Contact, &rep_id(0), us);
    w.sync().await;
    w.sync().await;
    assert!(w.ex_contacts(0).is_empty());
    // The admin drops the filter: the US contact now qualifies, though it did not change.
    w.config.sync_configurations[0]
        .contacts
        .as_mut()
        .unwrap()
        .filters
        .clear();
    w.sync().await;
    assert_eq!(w.ex_contacts(0).len(), 1);
    let before = w.ex.counts().sync_folder;
    w.sync().await;
    assert_eq!(
        w.ex.counts().sync_folder - before,
        1,
        "back to incremental reads"
    );
    assert!(w.plan().await.is_empty());
}

/// The executor reports each record written to the progress display: the work per rep up
/// front, then one report per record (failed ones too), then the end.
#[tokio::test]
async fn progress_is_told_of_every_record_written() {
    use std::sync::{Arc, Mutex};
    use tether::engine::execute::{Progress, ProgressHandle};
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);
    impl Progress for Seen {
        fn start(&self, reps: &[(String, usize)]) {
            self.0.lock().unwrap().push(format!("start {reps:?}"));
        }
        fn record(&self, rep: &str, ok: bool) {
            self.0.lock().unwrap().push(format!("{rep} {ok}"));
        }
        fn finish(&self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }
    let mut w = World::new(config(both_contacts(), NONE), 2);
    for (first, email) in [("Ana", "ana@x.com"), ("Bad", "bad@x.com")] {
        w.ex.user_create(
            &rep_mail(0),
            Folder::SalesforceSyncContacts,
            contact(first, "Diaz", email),
        );
    }
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(1),
        contact("Cy", "Ng", "cy@x.com"),
    );
    w.sf.set_faults(Faults {
        fail_records: ["bad@x.com".to_string()].into(),
        ..Faults::default()
    });
    let seen = Arc::new(Seen::default());
    let report = run_cycle(
        &w.config,
        &w.ex,
        &w.sf,
        &mut w.state,
        w.now,
        &SyncOptions {
            progress: ProgressHandle(seen.clone()),
            ..SyncOptions::default()
        },
        &mut StepBudget::unlimited(),
    )
    .await
    .unwrap();
    assert_eq!(report.exec.failed.len(), 1);
    let mut seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen.first().unwrap(),
        &format!("start [({:?}, 2), ({:?}, 1)]", rep_mail(0), rep_mail(1))
    );
    assert_eq!(seen.last().unwrap(), "finish");
    let mut records = seen.drain(1..seen.len() - 1).collect::<Vec<_>>();
    records.sort();
    assert_eq!(
        records,
        [
            format!("{} false", rep_mail(0)),
            format!("{} true", rep_mail(0)),
            format!("{} true", rep_mail(1)),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Workers sharing one Postgres state

mod workers {
    use super::*;
    use crate::common::pg;
    use chrono::{DateTime, Utc};
    use tether::engine::workers::{Worker, WorkerTurn, run_worker_turn};
    use tether::state::{Claim, PostgresTarget, StateLocation};

    const REPS: usize = 6;

    /// Real time, from `start` on.
    struct RunningFrom {
        start: DateTime<Utc>,
        begun: std::time::Instant,
    }

    impl tether::clock::Clock for RunningFrom {
        fn now(&self) -> DateTime<Utc> {
            self.start + chrono::Duration::from_std(self.begun.elapsed()).unwrap()
        }
        fn sleep(&self, _: std::time::Duration) -> tether::clock::SleepFuture<'_> {
            Box::pin(std::future::ready(()))
        }
    }

    fn open(url: &str) -> Box<dyn StateStore> {
        let target = PostgresTarget::parse(url, None, std::path::Path::new(".")).unwrap();
        StateLocation::Postgres(Box::new(target)).open().unwrap()
    }

    /// Six reps, two contacts each in Salesforce.
    fn org() -> World {
        let w = World::new(config(both_contacts(), NONE), REPS);
        for n in 0..REPS {
            for k in 0..2 {
                w.sf.user_create(
                    ObjectKind::Contact,
                    &rep_id(n),
                    contact(
                        &format!("C{n}"),
                        &format!("K{k}"),
                        &format!("c{n}k{k}@x.com"),
                    ),
                );
            }
        }
        w
    }

    /// `workers` threads, each with its own connection to the state at `url`, taking turns
    /// until cycle `generation` is finished; the clock each turn reads runs from `start` in
    /// real time.
    fn one_cycle(
        w: &World,
        url: &str,
        workers: usize,
        lease: chrono::Duration,
        start: DateTime<Utc>,
        generation: u64,
    ) {
        let begun = std::time::Instant::now();
        let clock = &RunningFrom { start, begun };
        std::thread::scope(|scope| {
            for i in 0..workers {
                let (config, ex, sf) = (&w.config, &w.ex, &w.sf);
                scope.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let mut state = open(url);
                    let worker = Worker {
                        name: format!("worker-{i}"),
                        lease,
                        interval: chrono::Duration::minutes(5),
                    };
                    let options = SyncOptions {
                        group_size: Some(2),
                        ..SyncOptions::default()
                    };
                    while !state.shared_cycle_finished(generation).unwrap() {
                        let turn = rt
                            .block_on(run_worker_turn(
                                config,
                                ex,
                                sf,
                                &mut state,
                                clock,
                                &options,
                                &mut StepBudget::unlimited(),
                                &worker,
                            ))
                            .unwrap();
                        if let WorkerTurn::Worked { generation: g, .. } = turn {
                            assert_eq!(g, generation, "a turn of cycle {generation}");
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        assert!(begun.elapsed().as_secs() < 60, "the cycle never finished");
                    }
                });
            }
        });
    }

    /// No group was held by two workers at once: per group, each claim starts once the one
    /// before it ended (done, or its lease over).
    fn assert_claims_never_overlap(claims: &[Claim]) {
        let mut by_group: std::collections::BTreeMap<(u64, u64), Vec<&Claim>> = Default::default();
        for c in claims {
            by_group.entry((c.generation, c.group)).or_default().push(c);
        }
        for (group, claims) in by_group {
            for pair in claims.windows(2) {
                assert!(
                    pair[1].claimed_at >= pair[0].until,
                    "group {group:?} claimed by {} while {} held it: {claims:?}",
                    pair[1].worker,
                    pair[0].worker
                );
            }
        }
    }

    fn assert_synced_once(w: &World) {
        for n in 0..REPS {
            let mut emails: Vec<String> = w
                .ex_contacts(n)
                .iter()
                .map(|c| c.get("Email").to_string())
                .collect();
            emails.sort();
            assert_eq!(
                emails,
                [format!("c{n}k0@x.com"), format!("c{n}k1@x.com")],
                "rep {n}"
            );
        }
        assert_eq!(
            w.sf.records(ObjectKind::Contact).len(),
            2 * REPS,
            "no duplicate in Salesforce"
        );
    }

    /// Two and three workers on one Postgres state: every rep synced once, no group worked
    /// by two workers at once (from the state's record of claims), no duplicate on either
    /// side, and Salesforce called per cycle as often as with one worker (the org-wide read
    /// made once, by the cycle's reader).
    #[test]
    fn workers_share_the_reps_and_salesforce_is_read_once_per_cycle() {
        let lease = chrono::Duration::seconds(30);
        let mut calls = Vec::new();
        for workers in [1, 2, 3] {
            let w = org();
            let url = pg::fresh_url();
            one_cycle(&w, &url, workers, lease, now(), 1);
            assert_synced_once(&w);
            let initial = w.sf.counts();
            one_cycle(
                &w,
                &url,
                workers,
                lease,
                now() + chrono::Duration::minutes(10),
                2,
            );
            let state = open(&url);
            assert_claims_never_overlap(&state.claims().unwrap());
            assert_eq!(
                state.rep_groups(2).unwrap().len(),
                3,
                "six reps in groups of two"
            );
            assert!(
                state
                    .rep_groups(2)
                    .unwrap()
                    .iter()
                    .all(|g| g.done_at.is_some())
            );
            let total = w.sf.counts();
            calls.push((workers, initial, total));
            assert_synced_once(&w);
        }
        let (_, one_initial, one_total) = calls[0].clone();
        for (workers, initial, total) in &calls[1..] {
            assert_eq!(*initial, one_initial, "initial sync, {workers} workers");
            assert_eq!(
                *total, one_total,
                "the no-change cycle after it, {workers} workers"
            );
        }
    }

    /// A worker killed in the middle of its group (it read the org and claimed the first
    /// group): two others work the rest, take its group over once its lease ends, and the
    /// cycle finishes with every rep synced once.
    #[test]
    fn a_dead_workers_group_is_taken_over_when_its_lease_ends() {
        let w = org();
        let url = pg::fresh_url();
        let lease = chrono::Duration::seconds(2);
        let start = now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut dead = open(&url);
        let killed = rt.block_on(run_worker_turn(
            &w.config,
            &w.ex,
            &w.sf,
            &mut dead,
            &RunningFrom {
                start,
                begun: std::time::Instant::now(),
            },
            &SyncOptions {
                group_size: Some(2),
                ..SyncOptions::default()
            },
            &mut StepBudget::kill_after(1),
            &Worker {
                name: "dead".into(),
                lease,
                interval: chrono::Duration::minutes(5),
            },
        ));
        assert!(killed.is_err(), "{killed:?}");
        drop(dead);
        one_cycle(&w, &url, 2, lease, start, 1);
        let state = open(&url);
        let claims = state.claims().unwrap();
        assert_claims_never_overlap(&claims);
        let first: Vec<&str> = claims
            .iter()
            .filter(|c| c.group == 0)
            .map(|c| c.worker.as_str())
            .collect();
        assert_eq!(first.len(), 2, "{claims:?}");
        assert_eq!(first[0], "dead");
        assert_ne!(first[1], "dead");
        assert!(state.shared_cycle_finished(1).unwrap());
        assert_synced_once(&w);
    }
}
