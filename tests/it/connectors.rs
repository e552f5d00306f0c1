//! The connectors' own contracts against the emulators: the crash-recovery lookups (FindItem
//! with a Restriction on `tether.SalesforceId`, a query on the `Tether_Sync_Key__c` External
//! ID), schema-valid EWS bodies, and stale ChangeKeys; and the connector contract suite, the
//! same behaviours over every implementation of a connector trait (at the end).

use crate::ews;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tether::clock::ManualClock;
use tether::engine::connector::{
    CrmConnector, CrmCreate, CrmRef, ErrorKind, EventWindow, Folder, MailChange, MailConnector,
    MailCreate, MailItem, MailRef, Mailbox, Outcome, RecordError, RepError,
};
use tether::engine::memory::{Faults, MemoryCrm, MemoryExchange};
use tether::exchange::connector::EwsConnector;
use tether::model::{Contact, ObjectKind, Record};
use tether::salesforce::connector::{SYNC_KEY_FIELD, SalesforceConnector};
use tether::salesforce::{Auth, ClientOptions, SalesforceClient};
use tether::secret::Secret;
use tether_emulators::exchange::model::Item;
use tether_emulators::exchange::{Fault, RunningEmulator};
use tether_emulators::salesforce as sf_emu;

fn contact(first: &str, last: &str, email: &str) -> Record {
    Record::Contact(
        Contact::default()
            .with("FirstName", first)
            .with("LastName", last)
            .with("Email", email),
    )
}

fn mailbox(a: &str) -> Mailbox {
    Mailbox { address: a.into() }
}

#[tokio::test]
async fn find_by_salesforce_ids_uses_a_schema_valid_restricted_find_item() {
    let clock = ews::clock();
    let emu = ews::emulator(&clock, true).await;
    let c = EwsConnector::new(ews::client(&emu, &clock));
    let celia = mailbox(ews::CELIA);
    c.ensure_folder(&celia, Folder::SalesforceSyncContacts)
        .await
        .unwrap();
    let creates: Vec<MailCreate> = (1..=3)
        .map(|i| MailCreate {
            salesforce_id: format!("003000000000000AA{i}"),
            record: contact("N", &format!("L{i}"), &format!("n{i}@x.com")),
        })
        .collect();
    let out = c
        .create(&celia, Folder::SalesforceSyncContacts, &creates)
        .await
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Ok(_))), "{out:?}");

    let wanted = vec![
        "003000000000000AA1".to_string(),
        "003000000000000AA3".to_string(),
        "003000000000000ZZZ".to_string(),
    ];
    let mut found = c
        .find_by_salesforce_ids(&celia, Folder::SalesforceSyncContacts, &wanted)
        .await
        .unwrap();
    found.sort_by(|a, b| a.salesforce_id.cmp(&b.salesforce_id));
    let ids: Vec<&str> = found
        .iter()
        .filter_map(|i| i.salesforce_id.as_deref())
        .collect();
    assert_eq!(ids, ["003000000000000AA1", "003000000000000AA3"]);
    assert_eq!(found[1].record.as_contact().unwrap().email(), "n3@x.com");
    // One id: IsEqualTo without Or, also valid.
    let one = c
        .find_by_salesforce_ids(&celia, Folder::SalesforceSyncContacts, &wanted[1..2])
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let bodies = emu.bodies();
    assert!(bodies.iter().any(|b| b.contains("Restriction")));
    ews::validate_all(&bodies);
}

#[tokio::test]
async fn an_edit_since_the_last_read_is_not_overwritten() {
    let clock = ews::clock();
    let emu = ews::emulator(&clock, false).await;
    let c = EwsConnector::new(ews::client(&emu, &clock));
    let celia = mailbox(ews::CELIA);
    c.ensure_folder(&celia, Folder::SalesforceSyncContacts)
        .await
        .unwrap();
    let page = c
        .sync_folder(&celia, Folder::SalesforceSyncContacts, None, None)
        .await
        .unwrap();
    let created = c
        .create(
            &celia,
            Folder::SalesforceSyncContacts,
            &[MailCreate {
                salesforce_id: "003000000000000AAA".into(),
                record: contact("Ana", "Diaz", "ana@x.com"),
            }],
        )
        .await
        .unwrap();
    let Outcome::Ok(r) = &created[0] else {
        panic!("{created:?}")
    };
    // The rep edits the contact in Outlook after tether wrote it.
    emu.edit_item(ews::CELIA, &r.item_id, |i| {
        if let Item::Contact(c) = i {
            c.job_title = Some("CTO".into());
            c.middle_name = Some("Maria".into());
        }
    })
    .unwrap();
    let out = c
        .update(
            &celia,
            &[(r.item_id.clone(), contact("Ana", "Diaz", "ana@new.com"))],
        )
        .await
        .unwrap();
    match &out[0] {
        Outcome::Failed(e) => {
            assert_eq!(e.code, "ErrorIrresolvableConflict");
            assert!(e.retryable);
        }
        other => panic!("stale ChangeKey must not overwrite: {other:?}"),
    }
    // After reading the edit, the update goes through; the middle name (not mapped) that
    // the rep set survives it.
    let next = c
        .sync_folder(
            &celia,
            Folder::SalesforceSyncContacts,
            Some(&page.cursor),
            None,
        )
        .await
        .unwrap();
    assert_eq!(next.changes.len(), 1);
    let out = c
        .update(
            &celia,
            &[(r.item_id.clone(), contact("Ana", "Diaz", "ana@new.com"))],
        )
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Ok(_)), "{out:?}");
    let Some(Item::Contact(stored)) = emu.item(ews::CELIA, &r.item_id) else {
        panic!("the contact is gone")
    };
    assert_eq!(stored.middle_name.as_deref(), Some("Maria"));
    assert_eq!(stored.emails[0].as_deref(), Some("ana@new.com"));
}

#[tokio::test]
async fn a_mailbox_outside_the_scope_is_a_rep_error() {
    let clock = ews::clock();
    let emu = ews::emulator(&clock, false).await;
    let c = EwsConnector::new(ews::client(&emu, &clock));
    let e = c
        .sync_folder(&mailbox(ews::FINANCE), Folder::Calendar, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, RepError::ImpersonationDenied(_)), "{e:?}");
    let e = c
        .sync_folder(&mailbox("nobody@corp.com"), Folder::Calendar, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, RepError::NoMailbox(_) | RepError::ImpersonationDenied(_)),
        "{e:?}"
    );
}

#[tokio::test]
async fn creates_carry_the_marker_in_the_external_id_field_and_are_found_by_it() {
    let clock = ManualClock::new(sf_emu::deterministic_epoch());
    let mut o = sf_emu::EmulatorOptions::deterministic();
    o.clock = Arc::new(clock.clone());
    let emu = sf_emu::Emulator::start(o).await.unwrap();
    let owner = emu
        .handle()
        .add_user("r@x.com", "r@x.com", "R", "Sales User", "Europe/Berlin");
    let c = sf_connector(&emu, &clock, None);
    let out = c
        .create(
            ObjectKind::Contact,
            &[CrmCreate {
                owner_id: owner.clone(),
                marker: "tether-0123456789abcdef01234567".into(),
                record: contact("Ana", "Diaz", "ana@x.com").clone(),
            }],
        )
        .await
        .unwrap();
    let Outcome::Ok(r) = &out[0] else {
        panic!("{out:?}")
    };
    let stored = emu.handle().get(&r.id).unwrap();
    assert_eq!(
        stored.get(SYNC_KEY_FIELD).and_then(|v| v.as_str()),
        Some("tether-0123456789abcdef01234567")
    );
    let lost = |marker: &str| CrmCreate {
        owner_id: owner.clone(),
        marker: marker.into(),
        record: contact("Ana", "Diaz", "ana@x.com"),
    };
    let found = c
        .find_created(
            ObjectKind::Contact,
            &[
                lost("tether-0123456789abcdef01234567"),
                lost("tether-ffffffffffffffffffffffff"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, r.id);
    assert_eq!(found[0].owner_id, owner);
    assert_eq!(
        found[0].marker.as_deref(),
        Some("tether-0123456789abcdef01234567")
    );
    assert_eq!(found[0].record.as_contact().unwrap().email(), "ana@x.com");
    // The field is unique, as the setup creates it: the same marker cannot be stored twice.
    let dup = emu.handle().insert(
        "Contact",
        serde_json::json!({"LastName": "Other", SYNC_KEY_FIELD: "TETHER-0123456789ABCDEF01234567"}),
    );
    assert_eq!(dup.unwrap_err().status_code, "DUPLICATE_VALUE");
}

/// Auto-relate writes every event's relations together, in collections of 200, and answers
/// per event: one call for many events, a failure only where it happened.
#[tokio::test]
async fn relations_of_many_events_go_in_one_collection_and_fail_per_event() {
    let clock = ManualClock::new(sf_emu::deterministic_epoch());
    let mut o = sf_emu::EmulatorOptions::deterministic();
    o.clock = Arc::new(clock.clone());
    let emu = sf_emu::Emulator::start(o).await.unwrap();
    let h = emu.handle();
    let owner = h.add_user("r@x.com", "r@x.com", "R", "Sales User", "Europe/Berlin");
    let event = |subject: &str| {
        h.insert(
            "Event",
            serde_json::json!({"Subject": subject, "OwnerId": owner,
                "StartDateTime": "2026-01-20T09:00:00.000+0000",
                "EndDateTime": "2026-01-20T10:00:00.000+0000"}),
        )
        .unwrap()
    };
    let (e1, e2, e3) = (event("One"), event("Two"), event("Three"));
    let ana = h
        .insert(
            "Contact",
            serde_json::json!({"LastName": "Diaz", "Email": "ana@x.com"}),
        )
        .unwrap();
    let ben = h
        .insert(
            "Contact",
            serde_json::json!({"LastName": "Okafor", "Email": "ben@x.com"}),
        )
        .unwrap();
    let lead = h
        .insert(
            "Lead",
            serde_json::json!({"LastName": "Patel", "Company": "Tailspin", "Email": "dev@x.com"}),
        )
        .unwrap();
    let c = sf_connector(&emu, &clock, None);
    let before = h.served().get("collection").copied().unwrap_or(0);
    let out = c
        .relate(&[
            (e1.clone(), vec![ana.clone(), ben.clone()]),
            // A lead with contacts: the platform refuses the mix.
            (e2.clone(), vec![ana.clone(), lead.clone()]),
            (e3.clone(), vec![lead.clone()]),
        ])
        .await
        .unwrap();
    assert_eq!(
        h.served().get("collection").copied().unwrap_or(0),
        before + 1
    );
    assert!(matches!(out[0], Outcome::Ok(())), "{out:?}");
    assert!(
        matches!(&out[1], Outcome::Failed(e) if e.code == "RELATE_FAILED"),
        "{out:?}"
    );
    assert!(matches!(out[2], Outcome::Ok(())), "{out:?}");
    let related = |event: &str| {
        h.records("EventRelation")
            .iter()
            .filter(|r| r["EventId"] == event)
            .count()
    };
    assert_eq!((related(&e1), related(&e3)), (2, 1));
    // Related already (a retry after an interrupted run): nothing to do, no failure.
    let again = c.relate(&[(e1.clone(), vec![ana.clone()])]).await.unwrap();
    assert!(matches!(again[0], Outcome::Ok(())), "{again:?}");
    assert_eq!(related(&e1), 2);
}

/// UserRecordAccess, 200 RecordIds a query for one user; an unreadable record is not asked
/// about again while its SystemModstamp is unchanged, and is once it changes.
#[tokio::test]
async fn readable_asks_user_record_access_200_ids_at_a_time_and_remembers_the_unreadable() {
    let clock = ManualClock::new(sf_emu::deterministic_epoch());
    let mut o = sf_emu::EmulatorOptions::deterministic();
    o.clock = Arc::new(clock.clone());
    let emu = sf_emu::Emulator::start(o).await.unwrap();
    let h = emu.handle();
    let rep = h.add_user("r@x.com", "r@x.com", "R", "Sales User", "Europe/Berlin");
    let other = h.add_user("o@x.com", "o@x.com", "O", "Sales User", "Europe/Berlin");
    h.set_private("Contact");
    let refs: Vec<CrmRef> = (0..250)
        .map(|i| {
            let owner = if i % 2 == 0 { &rep } else { &other };
            let id = h
                .insert(
                    "Contact",
                    serde_json::json!({"LastName": format!("C{i}"), "OwnerId": owner}),
                )
                .unwrap();
            let modstamp = h.get(&id).unwrap()["SystemModstamp"]
                .as_str()
                .unwrap()
                .to_string();
            CrmRef { id, modstamp }
        })
        .collect();
    h.share(&refs[1].id, &rep);
    let c = sf_connector(&emu, &clock, None);
    let queries = || h.served().get("query").copied().unwrap_or(0);
    let before = queries();
    let readable = c.readable(&rep, &refs).await.unwrap();
    assert_eq!(queries(), before + 2, "250 ids: two queries");
    let expected: std::collections::BTreeSet<String> = refs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0 || *i == 1)
        .map(|(_, r)| r.id.clone())
        .collect();
    assert_eq!(readable, expected);

    // The unreadable ones again, unchanged: nothing asked, still unreadable.
    let unreadable: Vec<CrmRef> = refs
        .iter()
        .filter(|r| !expected.contains(&r.id))
        .cloned()
        .collect();
    assert!(c.readable(&rep, &unreadable).await.unwrap().is_empty());
    assert_eq!(queries(), before + 2);
    // Changed since (and shared meanwhile): asked again.
    h.share(&unreadable[0].id, &rep);
    let changed = CrmRef {
        id: unreadable[0].id.clone(),
        modstamp: "2026-02-01T00:00:00.000+0000".into(),
    };
    let again = c.readable(&rep, &[changed]).await.unwrap();
    assert_eq!(queries(), before + 3);
    assert!(again.contains(&unreadable[0].id));
}

// ---------------------------------------------------------------------------------------
// The connector contract: the same behaviours over every implementation of a connector
// trait, each test named after its implementation (`contract_ews_mail::round_trip_…`). A
// new implementation is a world (its connector and the levers the behaviours pull) and one
// entry in `mail_contract!` or `crm_contract!`.

/// One mail-side implementation and the levers the contract pulls.
trait MailWorld {
    type C: MailConnector;
    fn mail(&self) -> &Self::C;
    /// Two reps the service account may act for.
    fn reps(&self) -> [Mailbox; 2];
    /// A mailbox it may not act for, and an address that names no mailbox.
    fn denied(&self) -> Mailbox;
    fn nobody(&self) -> Mailbox;
    /// Most changes one page of the change feed holds.
    fn page_size(&self) -> usize;
    /// The rep deletes the Salesforce_Sync folder (a hard delete).
    fn delete_sync_folder(&self, rep: &Mailbox);
    /// The server no longer accepts the next cursor it is given.
    fn refuse_next_cursor(&self);
    /// The next create is carried out, but its answer never arrives.
    fn lose_next_create_answer(&self);
    /// The next change-feed read is throttled: the back-off the server asks for.
    fn throttle_next_read(&self) -> Duration;
    /// Every wait the connector made.
    fn waits(&self) -> Vec<Duration>;
    /// The mail server's clock, and time passing on it.
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
    fn time_passes(&self, by: Duration);
    /// The rep deletes an item in Outlook (it moves to Deleted Items).
    fn user_deletes(&self, rep: &Mailbox, item_id: &str);
}

/// One CRM-side implementation and the levers the contract pulls.
trait CrmWorld {
    type C: CrmConnector;
    fn crm(&self) -> &Self::C;
    /// A user records are created for.
    fn owner(&self) -> String;
    /// Most records one page of a read holds.
    fn page_size(&self) -> usize;
    /// A user creates a contact behind tether's back.
    fn user_creates_contact(&self, last_name: &str) -> String;
    /// The next create is carried out, but its answer never arrives.
    fn lose_next_create_answer(&self);
    /// The next call is throttled.
    fn throttle_next_call(&self);
    fn waits(&self) -> Vec<Duration>;
    /// How many contacts the CRM holds.
    fn contacts(&self) -> usize;
}

/// A contact with a value in every field the default mapping maps.
fn every_mapped_contact_field() -> Record {
    use tether::model::catalog::DEFAULT_CONTACT_MAPPINGS;
    let mut c = Contact::default();
    for (i, m) in DEFAULT_CONTACT_MAPPINGS.iter().enumerate() {
        // Values that fit every field (postal codes hold 20 characters).
        let value = match m.salesforce {
            "Email" => "ana.diaz@contoso.com".to_string(),
            "Birthdate" => "1980-02-29".to_string(),
            f if f.contains("Phone") || f == "Fax" => format!("+49 30 12345{i:02}"),
            _ => format!("Ana {i}"),
        };
        c.set(m.salesforce, value);
    }
    Record::Contact(c)
}

/// An event with every mapped property off its default.
fn every_mapped_event_field() -> Record {
    use tether::model::{Event, EventTime, ShowAs};
    let mut e = Event::new(
        "Quarterly review",
        EventTime::Timed {
            start: ews::t("2026-02-10T09:00:00Z"),
            end: ews::t("2026-02-10T10:30:00Z"),
        },
    );
    e.location = "Room 4".into();
    e.body = "Agenda: numbers".into();
    e.show_as = ShowAs::Free;
    e.private = true;
    Record::Event(e)
}

/// `got` holds what `sent` did in every field the default mapping maps.
fn assert_mapped_fields_equal(sent: &Record, got: &Record) {
    match (sent, got) {
        (Record::Contact(s), Record::Contact(g)) => {
            for m in tether::model::catalog::DEFAULT_CONTACT_MAPPINGS {
                assert_eq!(g.get(m.salesforce), s.get(m.salesforce), "{}", m.salesforce);
            }
        }
        (Record::Event(s), Record::Event(g)) => {
            assert_eq!(
                (
                    &g.subject,
                    &g.time,
                    &g.location,
                    g.body.trim(),
                    g.show_as,
                    g.private
                ),
                (
                    &s.subject,
                    &s.time,
                    &s.location,
                    s.body.trim(),
                    s.show_as,
                    s.private
                )
            );
        }
        _ => panic!("{got:?} is not the kind of {sent:?}"),
    }
}

/// Every change of the folder's feed from `cursor`, page by page: (changes, pages, cursor).
async fn whole_feed<M: MailConnector>(
    mail: &M,
    rep: &Mailbox,
    folder: Folder,
    mut cursor: Option<String>,
) -> (Vec<MailChange>, usize, String) {
    let window = (folder == Folder::Calendar).then(|| EventWindow {
        start: ews::t("2026-01-01T00:00:00Z"),
    });
    let mut changes = Vec::new();
    let mut pages = 0;
    loop {
        let page = mail
            .sync_folder(rep, folder, cursor.as_deref(), window)
            .await
            .unwrap();
        pages += 1;
        changes.extend(page.changes);
        cursor = Some(page.cursor);
        if !page.more {
            return (changes, pages, cursor.unwrap_or_default());
        }
    }
}

fn upserts(changes: &[MailChange]) -> Vec<&MailItem> {
    changes
        .iter()
        .filter_map(|c| match c {
            MailChange::Upsert(i) => Some(i),
            MailChange::Delete { .. } => None,
        })
        .collect()
}

async fn create_contacts<M: MailConnector>(mail: &M, rep: &Mailbox, n: usize) -> Vec<MailRef> {
    mail.ensure_folder(rep, Folder::SalesforceSyncContacts)
        .await
        .unwrap();
    let creates: Vec<MailCreate> = (0..n)
        .map(|i| MailCreate {
            salesforce_id: format!("003{i:015}"),
            record: contact("N", &format!("L{i}"), &format!("n{i}@x.com")),
        })
        .collect();
    let mut refs = Vec::new();
    for chunk in creates.chunks(mail.batch_size()) {
        for o in mail
            .create(rep, Folder::SalesforceSyncContacts, chunk)
            .await
            .unwrap()
        {
            match o {
                Outcome::Ok(r) => refs.push(r),
                other => panic!("create failed: {other:?}"),
            }
        }
    }
    refs
}

mod mail_behaviour {
    use super::*;

    pub async fn a_deleted_create_is_found_only_when_made_since(w: impl MailWorld) {
        let [rep, _] = w.reps();
        let mail = w.mail();
        // An older copy of the first record, deleted by tether itself.
        let old = create_contacts(mail, &rep, 1).await;
        let out = mail.delete(&rep, &[old[0].item_id.clone()]).await.unwrap();
        assert!(matches!(out[..], [Outcome::Ok(())]), "{out:?}");
        w.time_passes(Duration::from_secs(3600));
        let since = w.now();
        // Made again with two more; the rep deletes the first two.
        let new = create_contacts(mail, &rep, 3).await;
        w.user_deletes(&rep, &new[0].item_id);
        w.user_deletes(&rep, &new[1].item_id);
        let ids: Vec<String> = (0..4).map(|i| format!("003{i:015}")).collect();
        let find =
            |since| mail.find_deleted_created(&rep, Folder::SalesforceSyncContacts, &ids, since);
        let mut found = find(since).await.unwrap();
        found.sort();
        assert_eq!(found, ids[..2]);
        // Deleted copies made before `since` are not found.
        let later = since + chrono::Duration::hours(1);
        assert_eq!(find(later).await.unwrap(), Vec::<String>::new());
    }

    pub async fn round_trip_of_every_mapped_field(w: impl MailWorld) {
        let [rep, _] = w.reps();
        let mail = w.mail();
        mail.ensure_folder(&rep, Folder::SalesforceSyncContacts)
            .await
            .unwrap();
        for (folder, record) in [
            (Folder::SalesforceSyncContacts, every_mapped_contact_field()),
            (Folder::Calendar, every_mapped_event_field()),
        ] {
            let out = mail
                .create(
                    &rep,
                    folder,
                    &[MailCreate {
                        salesforce_id: "003000000000001AAA".into(),
                        record: record.clone(),
                    }],
                )
                .await
                .unwrap();
            let Outcome::Ok(r) = &out[0] else {
                panic!("{out:?}")
            };
            let (changes, _, _) = whole_feed(mail, &rep, folder, None).await;
            let read = upserts(&changes)
                .into_iter()
                .find(|i| i.item_id == r.item_id)
                .expect("the created item is in the feed");
            assert_eq!(read.salesforce_id.as_deref(), Some("003000000000001AAA"));
            assert_mapped_fields_equal(&record, &read.record);
            let by_id = mail
                .get_items(&rep, folder, std::slice::from_ref(&r.item_id))
                .await
                .unwrap();
            assert_mapped_fields_equal(&record, &by_id[0].record);
        }
    }

    pub async fn the_change_feed_comes_in_pages(w: impl MailWorld) {
        let [rep, _] = w.reps();
        let n = w.page_size() + 2;
        let created = create_contacts(w.mail(), &rep, n).await;
        let (changes, pages, cursor) =
            whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, None).await;
        assert!(pages > 1, "{n} changes in {pages} page");
        let mut seen: Vec<&str> = upserts(&changes)
            .iter()
            .map(|i| i.item_id.as_str())
            .collect();
        seen.sort();
        let mut want: Vec<&str> = created.iter().map(|r| r.item_id.as_str()).collect();
        want.sort();
        assert_eq!(seen, want, "every item once");
        let (after, _, _) =
            whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, Some(cursor)).await;
        assert!(after.is_empty(), "nothing changed since: {after:?}");
    }

    pub async fn a_refused_cursor_is_told_and_a_full_read_deletes_nothing(w: impl MailWorld) {
        let [rep, _] = w.reps();
        let created = create_contacts(w.mail(), &rep, 2).await;
        let (_, _, cursor) = whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, None).await;
        w.refuse_next_cursor();
        let e = w
            .mail()
            .sync_folder(&rep, Folder::SalesforceSyncContacts, Some(&cursor), None)
            .await
            .unwrap_err();
        assert!(matches!(e, RepError::CursorExpired(_)), "{e:?}");
        let (changes, _, _) =
            whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, None).await;
        assert!(
            changes.iter().all(|c| matches!(c, MailChange::Upsert(_))),
            "a full read lists what is there, deletes nothing: {changes:?}"
        );
        assert_eq!(upserts(&changes).len(), created.len());
    }

    pub async fn a_missing_folder_is_told_and_recreated(w: impl MailWorld) {
        let [rep, _] = w.reps();
        create_contacts(w.mail(), &rep, 1).await;
        let (_, _, cursor) = whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, None).await;
        w.delete_sync_folder(&rep);
        let e = w
            .mail()
            .sync_folder(&rep, Folder::SalesforceSyncContacts, Some(&cursor), None)
            .await
            .unwrap_err();
        assert!(matches!(e, RepError::FolderMissing(_)), "{e:?}");
        w.mail()
            .ensure_folder(&rep, Folder::SalesforceSyncContacts)
            .await
            .unwrap();
        let (changes, _, _) =
            whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, None).await;
        assert!(changes.is_empty(), "a new, empty folder: {changes:?}");
        create_contacts(w.mail(), &rep, 1).await;
    }

    pub async fn a_denied_rep_or_one_without_mailbox_fails_alone(w: impl MailWorld) {
        let [rep, _] = w.reps();
        let e = w
            .mail()
            .sync_folder(&w.denied(), Folder::Calendar, None, Some(window()))
            .await
            .unwrap_err();
        assert!(matches!(e, RepError::ImpersonationDenied(_)), "{e:?}");
        assert!(!e.suggestion().is_empty());
        let e = w
            .mail()
            .sync_folder(&w.nobody(), Folder::Calendar, None, Some(window()))
            .await
            .unwrap_err();
        // Exchange may refuse to act for an unknown address before it looks it up.
        assert!(
            matches!(e, RepError::NoMailbox(_) | RepError::ImpersonationDenied(_)),
            "{e:?}"
        );
        whole_feed(w.mail(), &rep, Folder::Calendar, None).await;
    }

    pub async fn a_lost_create_answer_is_found_by_its_marker(w: impl MailWorld) {
        let [rep, _] = w.reps();
        let mail = w.mail();
        mail.ensure_folder(&rep, Folder::SalesforceSyncContacts)
            .await
            .unwrap();
        w.lose_next_create_answer();
        let create = MailCreate {
            salesforce_id: "003000000000002AAA".into(),
            record: contact("Ana", "Diaz", "ana@x.com"),
        };
        match mail
            .create(
                &rep,
                Folder::SalesforceSyncContacts,
                std::slice::from_ref(&create),
            )
            .await
        {
            Err(e) => assert!(e.ambiguous, "{e:?}"),
            Ok(out) => assert!(matches!(out[0], Outcome::Ambiguous(_)), "{out:?}"),
        }
        let found = mail
            .find_by_salesforce_ids(
                &rep,
                Folder::SalesforceSyncContacts,
                std::slice::from_ref(&create.salesforce_id),
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let (changes, _, _) = whole_feed(mail, &rep, Folder::SalesforceSyncContacts, None).await;
        assert_eq!(upserts(&changes).len(), 1, "no duplicate");
    }

    pub async fn throttling_is_honoured(w: impl MailWorld) {
        let [rep, _] = w.reps();
        create_contacts(w.mail(), &rep, 1).await;
        let back_off = w.throttle_next_read();
        let (changes, _, _) =
            whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, None).await;
        assert_eq!(upserts(&changes).len(), 1);
        assert!(w.waits().contains(&back_off), "{:?}", w.waits());
    }

    pub async fn a_batch_with_some_records_failing_answers_per_record(w: impl MailWorld) {
        let [rep, _] = w.reps();
        let created = create_contacts(w.mail(), &rep, 3).await;
        let gone = w
            .mail()
            .delete(&rep, std::slice::from_ref(&created[1].item_id))
            .await
            .unwrap();
        assert!(matches!(gone[0], Outcome::Ok(())), "{gone:?}");
        whole_feed(w.mail(), &rep, Folder::SalesforceSyncContacts, None).await;
        let updates: Vec<(String, Record)> = created
            .iter()
            .map(|r| (r.item_id.clone(), contact("N", "New", "new@x.com")))
            .collect();
        let out = w.mail().update(&rep, &updates).await.unwrap();
        assert_eq!(out.len(), 3);
        assert!(matches!(out[0], Outcome::Ok(_)), "{out:?}");
        let gone = |e: &RecordError| e.kind == ErrorKind::Gone && !e.hint.is_empty();
        assert!(matches!(&out[1], Outcome::Failed(e) if gone(e)), "{out:?}");
        assert!(matches!(out[2], Outcome::Ok(_)), "{out:?}");
    }

    fn window() -> EventWindow {
        EventWindow {
            start: ews::t("2026-01-01T00:00:00Z"),
        }
    }
}

mod crm_behaviour {
    use super::*;

    fn create(w: &impl CrmWorld, marker: &str, record: Record) -> CrmCreate {
        CrmCreate {
            owner_id: w.owner(),
            marker: marker.into(),
            record,
        }
    }

    pub async fn round_trip_of_every_mapped_field(w: impl CrmWorld) {
        for (object, record) in [
            (ObjectKind::Contact, every_mapped_contact_field()),
            (ObjectKind::Event, every_mapped_event_field()),
        ] {
            let out = w
                .crm()
                .create(
                    object,
                    &[create(
                        &w,
                        "tether-000000000000000000000001",
                        record.clone(),
                    )],
                )
                .await
                .unwrap();
            let Outcome::Ok(r) = &out[0] else {
                panic!("{out:?}")
            };
            let read = w
                .crm()
                .read_by_ids(object, std::slice::from_ref(&r.id))
                .await
                .unwrap();
            assert_eq!(read.len(), 1);
            assert_eq!(read[0].owner_id, w.owner());
            assert_mapped_fields_equal(&record, &read[0].record);
            let changes = w.crm().read_changes(object, None).await.unwrap();
            let fed = changes.upserts.iter().find(|u| u.id == r.id).unwrap();
            assert_mapped_fields_equal(&record, &fed.record);
        }
    }

    pub async fn the_change_feed_comes_in_pages(w: impl CrmWorld) {
        let n = w.page_size() + 5;
        let ids: BTreeSet<String> = (0..n)
            .map(|i| w.user_creates_contact(&format!("C{i}")))
            .collect();
        let all = w
            .crm()
            .read_changes(ObjectKind::Contact, None)
            .await
            .unwrap();
        let read: BTreeSet<String> = all.upserts.iter().map(|r| r.id.clone()).collect();
        assert!(read.is_superset(&ids), "{} of {n} read", read.len());
        assert_eq!(all.upserts.len(), read.len(), "every record once");
        let later = w.user_creates_contact("Later");
        let next = w
            .crm()
            .read_changes(ObjectKind::Contact, Some(&all.watermark))
            .await
            .unwrap();
        // (Records changed a little before the watermark may come again.)
        assert!(next.upserts.iter().any(|r| r.id == later), "{next:?}");
    }

    pub async fn a_lost_create_answer_is_found_by_its_marker(w: impl CrmWorld) {
        let c = create(
            &w,
            "tether-000000000000000000000002",
            contact("Ana", "Diaz", "ana@x.com"),
        );
        let before = w.contacts();
        w.lose_next_create_answer();
        match w
            .crm()
            .create(ObjectKind::Contact, std::slice::from_ref(&c))
            .await
        {
            Err(e) => assert!(e.ambiguous, "{e:?}"),
            Ok(out) => assert!(matches!(out[0], Outcome::Ambiguous(_)), "{out:?}"),
        }
        let found = w
            .crm()
            .find_created(ObjectKind::Contact, std::slice::from_ref(&c))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].marker.as_deref(), Some(c.marker.as_str()));
        assert_eq!(w.contacts(), before + 1, "no duplicate");
    }

    pub async fn throttling_is_honoured(w: impl CrmWorld) {
        let id = w.user_creates_contact("Busy");
        let waits = w.waits().len();
        w.throttle_next_call();
        let read = w
            .crm()
            .read_by_ids(ObjectKind::Contact, std::slice::from_ref(&id))
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        assert!(w.waits().len() > waits, "waited before asking again");
    }

    pub async fn a_batch_with_some_records_failing_answers_per_record(w: impl CrmWorld) {
        let ids: Vec<String> = (0..3)
            .map(|i| w.user_creates_contact(&format!("B{i}")))
            .collect();
        let gone = w
            .crm()
            .delete(ObjectKind::Contact, std::slice::from_ref(&ids[1]))
            .await
            .unwrap();
        assert!(matches!(gone[0], Outcome::Ok(())), "{gone:?}");
        let updates: Vec<(String, Record)> = ids
            .iter()
            .map(|id| (id.clone(), contact("N", "New", "new@x.com")))
            .collect();
        let out = w.crm().update(ObjectKind::Contact, &updates).await.unwrap();
        assert_eq!(out.len(), 3);
        assert!(matches!(out[0], Outcome::Ok(_)), "{out:?}");
        let gone = |e: &RecordError| e.kind == ErrorKind::Gone && !e.hint.is_empty();
        assert!(matches!(&out[1], Outcome::Failed(e) if gone(e)), "{out:?}");
        assert!(matches!(out[2], Outcome::Ok(_)), "{out:?}");
    }
}

/// The mail contract over one implementation: `name: world => [behaviours]`, an instance
/// that cannot be provoked yet carrying its `#[ignore = "why"]`.
macro_rules! mail_contract {
    ($($name:ident: $world:expr => [$($(#[$attr:meta])* $behaviour:ident),* $(,)?]),* $(,)?) => {
        $(mod $name {
            use super::*;
            $($(#[$attr])* #[tokio::test] async fn $behaviour() {
                mail_behaviour::$behaviour($world.await).await
            })*
        })*
    };
}

macro_rules! crm_contract {
    ($($name:ident: $world:expr => [$($(#[$attr:meta])* $behaviour:ident),* $(,)?]),* $(,)?) => {
        $(mod $name {
            use super::*;
            $($(#[$attr])* #[tokio::test] async fn $behaviour() {
                crm_behaviour::$behaviour($world.await).await
            })*
        })*
    };
}

mail_contract! {
    contract_memory_mail: memory_mail() => [
        round_trip_of_every_mapped_field, the_change_feed_comes_in_pages,
        a_refused_cursor_is_told_and_a_full_read_deletes_nothing,
        a_missing_folder_is_told_and_recreated, a_denied_rep_or_one_without_mailbox_fails_alone,
        a_lost_create_answer_is_found_by_its_marker,
        #[ignore = "the in-memory Exchange has no throttling to honour"] throttling_is_honoured,
        a_batch_with_some_records_failing_answers_per_record,
        a_deleted_create_is_found_only_when_made_since,
    ],
    contract_ews_mail: ews_mail() => [
        round_trip_of_every_mapped_field, the_change_feed_comes_in_pages,
        a_refused_cursor_is_told_and_a_full_read_deletes_nothing,
        a_missing_folder_is_told_and_recreated,
        a_denied_rep_or_one_without_mailbox_fails_alone,
        a_lost_create_answer_is_found_by_its_marker, throttling_is_honoured,
        a_batch_with_some_records_failing_answers_per_record,
        a_deleted_create_is_found_only_when_made_since,
    ],
    contract_graph_mail: graph_mail() => [
        round_trip_of_every_mapped_field, the_change_feed_comes_in_pages,
        a_refused_cursor_is_told_and_a_full_read_deletes_nothing,
        a_missing_folder_is_told_and_recreated,
        a_denied_rep_or_one_without_mailbox_fails_alone,
        a_lost_create_answer_is_found_by_its_marker, throttling_is_honoured,
        a_batch_with_some_records_failing_answers_per_record,
        #[ignore = "Graph lists no contacts in Deleted Items (a mail folder): the Graph connector cannot tell, and finds none"]
        a_deleted_create_is_found_only_when_made_since,
    ],
}

crm_contract! {
    contract_memory_crm: memory_crm() => [
        round_trip_of_every_mapped_field, the_change_feed_comes_in_pages,
        a_lost_create_answer_is_found_by_its_marker,
        #[ignore = "the in-memory Salesforce has no throttling to honour"] throttling_is_honoured,
        a_batch_with_some_records_failing_answers_per_record,
    ],
    contract_salesforce_crm: salesforce_crm() => [
        round_trip_of_every_mapped_field, the_change_feed_comes_in_pages,
        a_lost_create_answer_is_found_by_its_marker, throttling_is_honoured,
        a_batch_with_some_records_failing_answers_per_record,
    ],
}

// The worlds.

const REP_A: &str = "ana@acme.com";
const REP_B: &str = "bo@acme.com";
const DENIED: &str = "denied@acme.com";

struct MemoryMail(MemoryExchange);

async fn memory_mail() -> MemoryMail {
    let mut ex = MemoryExchange::new();
    ex.page_size = 4;
    for a in [REP_A, REP_B, DENIED] {
        ex.add_mailbox(a);
    }
    ex.set_faults(Faults {
        denied: [DENIED.to_string()].into(),
        ..Faults::default()
    });
    MemoryMail(ex)
}

impl MailWorld for MemoryMail {
    type C = MemoryExchange;
    fn mail(&self) -> &MemoryExchange {
        &self.0
    }
    fn reps(&self) -> [Mailbox; 2] {
        [mailbox(REP_A), mailbox(REP_B)]
    }
    fn denied(&self) -> Mailbox {
        mailbox(DENIED)
    }
    fn nobody(&self) -> Mailbox {
        mailbox("nobody@acme.com")
    }
    fn page_size(&self) -> usize {
        self.0.page_size
    }
    fn delete_sync_folder(&self, rep: &Mailbox) {
        self.0
            .user_delete_folder(&rep.address, Folder::SalesforceSyncContacts);
    }
    fn refuse_next_cursor(&self) {
        let mut f = self.0.faults();
        f.expire_cursors += 1;
        self.0.set_faults(f);
    }
    fn lose_next_create_answer(&self) {
        let mut f = self.0.faults();
        f.ambiguous_creates += 1;
        self.0.set_faults(f);
    }
    fn throttle_next_read(&self) -> Duration {
        unreachable!("the in-memory Exchange is never throttled; its instance is ignored")
    }
    fn waits(&self) -> Vec<Duration> {
        Vec::new()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.clock()
    }
    fn time_passes(&self, by: Duration) {
        self.0
            .set_clock(self.0.clock() + chrono::Duration::from_std(by).unwrap());
    }
    fn user_deletes(&self, rep: &Mailbox, item_id: &str) {
        assert!(self.0.user_delete(&rep.address, item_id));
    }
}

struct EwsMail {
    emu: RunningEmulator,
    clock: ManualClock,
    connector: EwsConnector,
}

async fn ews_mail() -> EwsMail {
    let clock = ews::clock();
    let emu = ews::emulator(&clock, false).await;
    let connector = EwsConnector::new(ews::client(&emu, &clock));
    EwsMail {
        emu,
        clock,
        connector,
    }
}

impl MailWorld for EwsMail {
    type C = EwsConnector;
    fn mail(&self) -> &EwsConnector {
        &self.connector
    }
    fn reps(&self) -> [Mailbox; 2] {
        [mailbox(ews::CELIA), mailbox(ews::BOB)]
    }
    fn denied(&self) -> Mailbox {
        mailbox(ews::FINANCE)
    }
    fn nobody(&self) -> Mailbox {
        mailbox("nobody@corp.com")
    }
    fn page_size(&self) -> usize {
        // SyncFolderItems' largest page, which the connector asks for.
        512
    }
    fn delete_sync_folder(&self, rep: &Mailbox) {
        // A hard delete (Shift+Delete in Outlook) of the folder and what it holds.
        let folder = self
            .emu
            .find_folder(&rep.address, "Salesforce_Sync")
            .expect("the folder exists");
        assert!(self.emu.delete_folder(&rep.address, &folder, true));
    }
    fn refuse_next_cursor(&self) {
        self.emu.inject(Fault::InvalidSyncState);
    }
    fn lose_next_create_answer(&self) {
        self.emu.inject_on("CreateItem", Fault::DropResponse);
    }
    fn throttle_next_read(&self) -> Duration {
        self.emu
            .inject_on("SyncFolderItems", Fault::ServerBusy { back_off_ms: 1234 });
        Duration::from_millis(1234)
    }
    fn waits(&self) -> Vec<Duration> {
        self.clock.sleeps()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        tether::clock::Clock::now(&self.clock)
    }
    fn time_passes(&self, by: Duration) {
        self.clock.advance(by);
    }
    fn user_deletes(&self, rep: &Mailbox, item_id: &str) {
        assert!(
            self.emu
                .move_to_deleted_items(&rep.address, item_id)
                .is_some()
        );
    }
}

/// The Graph face of the same emulated mailboxes, through an app whose RBAC for
/// Applications scope covers the Sales department.
struct GraphMail {
    emu: RunningEmulator,
    clock: ManualClock,
    connector: tether::graph::GraphConnector,
}

const GRAPH_APP: &str = "5f0c9a1e-0000-4000-8000-00000000c0de";
const GRAPH_SECRET: &str = "contract-graph-secret";
/// Contacts per delta page the Graph world asks for.
const GRAPH_PAGE: usize = 5;

async fn graph_mail() -> GraphMail {
    let clock = ews::clock();
    let emu = ews::emulator(&clock, false).await;
    emu.add_graph_app(tether_emulators::graph::GraphApp {
        client_id: GRAPH_APP.into(),
        client_secret: Some(GRAPH_SECRET.into()),
        certificate_pem: None,
        scope: tether_emulators::exchange::ImpersonationScope::Filter(
            "Department -eq 'Sales'".into(),
        ),
    });
    let connector = tether::graph::GraphConnector::new(graph_client(&emu, &clock));
    GraphMail {
        emu,
        clock,
        connector,
    }
}

fn graph_client(emu: &RunningEmulator, clock: &ManualClock) -> tether::graph::GraphClient {
    let mut opts = tether::graph::GraphOptions::new(emu.graph_url().parse().unwrap());
    opts.page_size = GRAPH_PAGE as u32;
    let app = tether::entra::AppCredentials {
        token_url: emu.graph_token_url().parse().unwrap(),
        client_id: GRAPH_APP.into(),
        credential: tether::entra::ClientCredential::Secret(Secret::new(GRAPH_SECRET)),
        scope: opts.scope(),
    };
    tether::graph::GraphClient::new(opts, app, Arc::new(clock.clone())).unwrap()
}

impl MailWorld for GraphMail {
    type C = tether::graph::GraphConnector;
    fn mail(&self) -> &tether::graph::GraphConnector {
        &self.connector
    }
    fn reps(&self) -> [Mailbox; 2] {
        [mailbox(ews::CELIA), mailbox(ews::BOB)]
    }
    fn denied(&self) -> Mailbox {
        mailbox(ews::FINANCE)
    }
    fn nobody(&self) -> Mailbox {
        mailbox("nobody@corp.com")
    }
    fn page_size(&self) -> usize {
        GRAPH_PAGE
    }
    fn delete_sync_folder(&self, rep: &Mailbox) {
        let folder = self
            .emu
            .find_folder(&rep.address, "Salesforce_Sync")
            .expect("the folder exists");
        assert!(self.emu.delete_folder(&rep.address, &folder, true));
    }
    fn refuse_next_cursor(&self) {
        self.emu.expire_graph_delta_tokens();
    }
    fn lose_next_create_answer(&self) {
        self.emu
            .inject_graph(tether_emulators::graph::GraphFault::LoseAnswer);
    }
    fn throttle_next_read(&self) -> Duration {
        self.emu
            .inject_graph(tether_emulators::graph::GraphFault::Throttle {
                retry_after_secs: 7,
            });
        Duration::from_secs(7)
    }
    fn waits(&self) -> Vec<Duration> {
        self.clock.sleeps()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        tether::clock::Clock::now(&self.clock)
    }
    fn time_passes(&self, by: Duration) {
        self.clock.advance(by);
    }
    fn user_deletes(&self, rep: &Mailbox, item_id: &str) {
        let store_id = self.emu.ews_id_of_graph_id(&rep.address, item_id);
        assert!(
            self.emu
                .move_to_deleted_items(&rep.address, &store_id)
                .is_some()
        );
    }
}

struct MemoryCrmWorld(MemoryCrm);

const OWNER: &str = "005000000000001";

async fn memory_crm() -> MemoryCrmWorld {
    let sf = MemoryCrm::new();
    sf.add_user(tether::engine::connector::CrmUser {
        id: OWNER.into(),
        email: REP_A.into(),
        profile: "Sales User".into(),
        active: true,
        time_zone: "Europe/Berlin".into(),
    });
    MemoryCrmWorld(sf)
}

impl CrmWorld for MemoryCrmWorld {
    type C = MemoryCrm;
    fn crm(&self) -> &MemoryCrm {
        &self.0
    }
    fn owner(&self) -> String {
        OWNER.into()
    }
    fn page_size(&self) -> usize {
        // Reads are not paged: any number comes in one.
        10
    }
    fn user_creates_contact(&self, last_name: &str) -> String {
        self.0.user_create(
            ObjectKind::Contact,
            OWNER,
            contact("U", last_name, &format!("{last_name}@x.com")),
        )
    }
    fn lose_next_create_answer(&self) {
        let mut f = self.0.faults();
        f.ambiguous_creates += 1;
        self.0.set_faults(f);
    }
    fn throttle_next_call(&self) {
        unreachable!("the in-memory Salesforce is never throttled; its instance is ignored")
    }
    fn waits(&self) -> Vec<Duration> {
        Vec::new()
    }
    fn contacts(&self) -> usize {
        self.0.records(ObjectKind::Contact).len()
    }
}

struct SalesforceWorld {
    emu: sf_emu::RunningEmulator,
    clock: ManualClock,
    owner: String,
    connector: SalesforceConnector,
}

/// A connector on the Salesforce emulator, its client on `clock`, its queries paged at
/// `page` records.
fn sf_connector(
    emu: &sf_emu::RunningEmulator,
    clock: &ManualClock,
    page: Option<u32>,
) -> SalesforceConnector {
    let url = url::Url::parse(emu.url()).unwrap();
    let mut so = ClientOptions::new(
        url.clone(),
        Auth::ClientCredentials {
            client_id: "3MVG9tether.sandbox.client".into(),
            client_secret: Secret::new("sandbox-client-secret"),
        },
    );
    so.login_url = url;
    so.query_batch_size = page;
    SalesforceConnector::new(SalesforceClient::with_clock(so, Arc::new(clock.clone())).unwrap())
}

async fn salesforce_crm() -> SalesforceWorld {
    let clock = ManualClock::new(sf_emu::deterministic_epoch());
    let mut o = sf_emu::EmulatorOptions::deterministic();
    o.clock = Arc::new(clock.clone());
    let emu = sf_emu::Emulator::start(o).await.unwrap();
    let owner = emu
        .handle()
        .add_user(REP_A, REP_A, "Ana", "Sales User", "Europe/Berlin");
    let connector = sf_connector(&emu, &clock, Some(200));
    SalesforceWorld {
        emu,
        clock,
        owner,
        connector,
    }
}

impl CrmWorld for SalesforceWorld {
    type C = SalesforceConnector;
    fn crm(&self) -> &SalesforceConnector {
        &self.connector
    }
    fn owner(&self) -> String {
        self.owner.clone()
    }
    fn page_size(&self) -> usize {
        200
    }
    fn user_creates_contact(&self, last_name: &str) -> String {
        // A moment later, as a user's save would be.
        self.clock.advance(Duration::from_secs(1));
        self.emu
            .handle()
            .insert(
                "Contact",
                serde_json::json!({"LastName": last_name, "OwnerId": self.owner,
                    "Email": format!("{last_name}@x.com")}),
            )
            .unwrap()
    }
    fn lose_next_create_answer(&self) {
        self.emu
            .handle()
            .fault_next("collection", sf_emu::KindFault::DropResponse);
    }
    fn throttle_next_call(&self) {
        self.emu.handle().concurrent_limit_next(1);
    }
    fn waits(&self) -> Vec<Duration> {
        self.clock.sleeps()
    }
    fn contacts(&self) -> usize {
        self.emu.handle().records("Contact").len()
    }
}

// ---------------------------------------------------------------------------------------
// tether's Graph client against the emulator's Graph face (the same mailboxes as EWS).

pub(crate) mod graph_face {
    use base64::Engine;
    use serde_json::json;
    use std::sync::Arc;
    use tether::clock::ManualClock;
    use tether::entra::{AppCredentials, ClientCredential, Thumbprint};
    use tether::graph::{DeltaOutcome, ErrorKind, GraphClient, GraphOptions};
    use tether::secret::Secret;
    use tether_emulators::exchange::{
        Emulator, EmulatorOptions, ImpersonationScope, RunningEmulator,
    };
    use tether_emulators::graph::{GraphApp, GraphFault};

    const APP: &str = "7d1e2f3a-0000-4000-8000-00000000a001";
    const SECRET: &str = "graph-face-secret";
    const ANA: &str = "ana@corp.com";
    const CERT: &str = include_str!("../fixtures/sf_test_jwt_cert.pem");
    const KEY: &str = include_str!("../fixtures/sf_test_jwt_key.pem");

    async fn emulator() -> RunningEmulator {
        let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
        emu.add_mailbox(ANA, Some("Sales"));
        emu.add_graph_app(GraphApp {
            client_id: APP.into(),
            client_secret: Some(SECRET.into()),
            certificate_pem: Some(CERT.into()),
            scope: ImpersonationScope::All,
        });
        emu.set_graph_retry_after(1);
        emu
    }

    fn client(emu: &RunningEmulator, credential: ClientCredential, page_size: u32) -> GraphClient {
        let mut opts = GraphOptions::new(emu.graph_url().parse().unwrap());
        opts.page_size = page_size;
        let app = AppCredentials {
            token_url: emu.graph_token_url().parse().unwrap(),
            client_id: APP.into(),
            credential,
            scope: opts.scope(),
        };
        // The emulator's clock, so assertions are inside its time range; sleeps are instant.
        GraphClient::new(opts, app, Arc::new(ManualClock::new(emu.now()))).unwrap()
    }

    /// Every body tether sent the face and every answer it got, judged by
    /// ../shared/graph-openapi/validate.py (one python process for all).
    pub(crate) fn validate_all(emu: &RunningEmulator) {
        let list: Vec<serde_json::Value> = emu
            .graph_bodies()
            .iter()
            .map(|b| {
                let mut body = b.body.clone();
                // Documented difference (graph-openapi/README.md): the service's
                // innerError.date has no zone; the judge gets it in UTC.
                if let Some(serde_json::Value::String(d)) =
                    body.pointer_mut("/error/innerError/date")
                    && d.len() == 19
                {
                    d.push('Z');
                }
                json!([b.schema, body])
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bodies.json");
        std::fs::write(&file, serde_json::Value::Array(list).to_string()).unwrap();
        let judge = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/graph-openapi");
        let script = "import sys, json\nsys.path.insert(0, sys.argv[1])\nimport validate as v\n\
            spec = v.load('openapi-subset.json'); extra = v.load('extra-schemas.json')\n\
            extra['definitions'].update(json.load(open(sys.argv[3]))['definitions'])\n\
            bad = []\nfor i, (t, b) in enumerate(json.load(open(sys.argv[2]))):\n\
            \x20   e = v.validate(t, b, spec=spec, extra=extra)\n\
            \x20   if e: bad.append([i, t, e[:3], b])\nprint(json.dumps(bad))\n";
        let out = std::process::Command::new("python3")
            .args(["-c", script, judge])
            .arg(&file)
            // translateExchangeIds is not in the subset: its documented shapes, with their
            // sources in the file's `$comment`.
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/graph/translate-exchange-ids.schema.json"
            ))
            .output()
            .expect("python3 runs validate.py");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bad: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(bad, json!([]), "bodies that do not validate");
    }

    fn secret() -> ClientCredential {
        ClientCredential::Secret(Secret::new(SECRET))
    }

    fn certificate(thumbprint: Thumbprint) -> ClientCredential {
        ClientCredential::Certificate {
            private_key_pem: Secret::new(KEY),
            thumbprint,
        }
    }

    fn cert_sha256() -> [u8; 32] {
        let b64: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        ring::digest::digest(&ring::digest::SHA256, &der)
            .as_ref()
            .try_into()
            .unwrap()
    }

    #[tokio::test]
    async fn graph_client_gets_a_token_with_a_secret_and_with_the_registered_certificate() {
        let emu = emulator().await;
        client(&emu, secret(), 100)
            .check_mailbox(ANA)
            .await
            .unwrap();
        let cert = client(&emu, certificate(Thumbprint::Sha256(cert_sha256())), 100);
        cert.check_mailbox(ANA).await.unwrap();
        let wrong = client(&emu, certificate(Thumbprint::Sha256([7; 32])), 100);
        let err = wrong.check_mailbox(ANA).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "{err}");
        assert!(err.to_string().contains("700027"), "{err}");
        let bad_secret = client(&emu, ClientCredential::Secret(Secret::new("nope")), 100);
        let err = bad_secret.check_mailbox(ANA).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    }

    #[tokio::test]
    async fn graph_client_pages_a_contacts_delta_and_a_410_is_cursor_expired() {
        let emu = emulator().await;
        let c = client(&emu, secret(), 2);
        let folder = c
            .ensure_contact_folder(ANA, "Salesforce_Sync")
            .await
            .unwrap();
        for (i, name) in ["Ann", "Bea", "Cy"].iter().enumerate() {
            let sf = format!("00300000000000{i}AAA");
            c.create_contact(ANA, &folder, json!({"givenName": name}), &sf)
                .await
                .unwrap();
        }
        // The same folder over again: found, not created twice.
        assert_eq!(
            c.ensure_contact_folder(ANA, "Salesforce_Sync")
                .await
                .unwrap(),
            folder
        );
        let DeltaOutcome::Round(round) = c
            .contacts_delta(ANA, &folder, &["givenName"], None)
            .await
            .unwrap()
        else {
            panic!("a first round has no cursor to expire");
        };
        assert_eq!((round.changed.len(), round.pages), (3, 2));
        let found = c
            .find_contact_by_salesforce_id(ANA, &folder, "003000000000001AAA")
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["givenName"], "Bea");
        emu.expire_graph_delta_tokens();
        let outcome = c
            .contacts_delta(ANA, &folder, &["givenName"], Some(&round.delta_link))
            .await
            .unwrap();
        assert!(
            matches!(outcome, DeltaOutcome::CursorExpired(_)),
            "{outcome:?}"
        );
        // tether's POST bodies are judged too.
        let sent = emu.graph_bodies();
        assert!(sent.iter().any(|b| b.schema
            == "POST /users/{user-id}/contactFolders/{contactFolder-id}/contacts request"));
        validate_all(&emu);
    }

    #[tokio::test]
    async fn graph_client_retries_throttled_batch_items_and_a_throttled_request() {
        let emu = emulator().await;
        let c = client(&emu, secret(), 100);
        // Six items on one mailbox: the face runs four at once and throttles the others.
        let items: Vec<_> = (1..=6)
            .map(|i| {
                tether::graph::BatchItem::get(i.to_string(), format!("/users/{ANA}/contactFolders"))
            })
            .collect();
        let answers = c.batch(ANA, &items).await.unwrap();
        assert_eq!(answers.len(), 6);
        assert!(answers.values().all(|a| a.is_success()), "{answers:?}");
        assert!(
            emu.graph_bodies().iter().any(|b| b.status == 429),
            "the face throttled some items"
        );
        emu.inject_graph(GraphFault::Throttle {
            retry_after_secs: 2,
        });
        c.check_mailbox(ANA).await.unwrap();
        validate_all(&emu);
    }
}
