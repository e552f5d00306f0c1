//! The connectors' own contracts against the emulators: the crash-recovery lookups (FindItem
//! with a Restriction on `tether.SalesforceId`, a query on the `Tether_Sync_Key__c` External
//! ID), schema-valid EWS bodies, and stale ChangeKeys.

use crate::ews;

use std::sync::Arc;
use tether::clock::ManualClock;
use tether::engine::connector::{
    CrmConnector, CrmCreate, CrmRef, Folder, MailConnector, MailCreate, Mailbox, Outcome, RepError,
};
use tether::exchange::connector::EwsConnector;
use tether::exchange::model::Item;
use tether::model::{Contact, ObjectKind, Record};
use tether::salesforce::connector::{SYNC_KEY_FIELD, SalesforceConnector};
use tether::salesforce::{Auth, ClientOptions, SalesforceClient};
use tether::sandbox::salesforce as sf_emu;
use tether::secret::Secret;

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
        .sync_folder(&celia, Folder::SalesforceSyncContacts, None)
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
        .sync_folder(&celia, Folder::SalesforceSyncContacts, Some(&page.cursor))
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
        .sync_folder(&mailbox(ews::FINANCE), Folder::Calendar, None)
        .await
        .unwrap_err();
    assert!(matches!(e, RepError::ImpersonationDenied(_)), "{e:?}");
    let e = c
        .sync_folder(&mailbox("nobody@corp.com"), Folder::Calendar, None)
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
    let url = url::Url::parse(emu.url()).unwrap();
    let mut so = ClientOptions::new(
        url.clone(),
        Auth::ClientCredentials {
            client_id: "3MVG9tether.sandbox.client".into(),
            client_secret: Secret::new("sandbox-client-secret"),
        },
    );
    so.login_url = url;
    let c = SalesforceConnector::new(SalesforceClient::with_clock(so, Arc::new(clock)).unwrap());
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
    let url = url::Url::parse(emu.url()).unwrap();
    let mut so = ClientOptions::new(
        url.clone(),
        Auth::ClientCredentials {
            client_id: "3MVG9tether.sandbox.client".into(),
            client_secret: Secret::new("sandbox-client-secret"),
        },
    );
    so.login_url = url;
    let c = SalesforceConnector::new(SalesforceClient::with_clock(so, Arc::new(clock)).unwrap());
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
    let url = url::Url::parse(emu.url()).unwrap();
    let mut so = ClientOptions::new(
        url.clone(),
        Auth::ClientCredentials {
            client_id: "3MVG9tether.sandbox.client".into(),
            client_secret: Secret::new("sandbox-client-secret"),
        },
    );
    so.login_url = url;
    let c = SalesforceConnector::new(SalesforceClient::with_clock(so, Arc::new(clock)).unwrap());
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
