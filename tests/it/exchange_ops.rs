//! Integration tests of the EWS client against the emulator, operation by operation.

use crate::ews;

use chrono::{NaiveDate, Weekday};
use ews::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tether::exchange::model::{
    Attendee, CalendarEvent, CalendarItemType, Contact, FreeBusy, ItemId, MailboxAddress,
    PROP_SALESFORCE_ID, Pattern, PhysicalAddress, RangeEnd, Recurrence, Sensitivity,
};
use tether::exchange::{Auth, ChangeKind, Endpoint, EwsClient, ExchangeOptions, FolderRef};
use tether::secret::Secret;
use tether_emulators::exchange::model::Item as EmuItem;
use tether_emulators::exchange::{Fault, ImpersonationScope};

fn full_contact(n: usize) -> Contact {
    let mut c = Contact {
        given_name: Some(format!("Ada{n}")),
        middle_name: Some("M".into()),
        surname: Some("Lovelace".into()),
        nickname: Some("Countess".into()),
        display_name: Some(format!("Ada{n} Lovelace")),
        file_as: Some("Lovelace, Ada".into()),
        company_name: Some("Analytical Engines & Co <Ltd>".into()),
        job_title: Some("Mathematician".into()),
        department: Some("R&D".into()),
        assistant_name: Some("Charles".into()),
        birthday: NaiveDate::from_ymd_opt(1815, 12, 10),
        notes: Some("Met at the \"Difference\" expo.\nLine two.".into()),
        emails: [
            Some(format!("ada{n}@engines.example")),
            Some("ada.private@example.org".into()),
            None,
        ],
        categories: vec!["Customer".into()],
        ..Contact::default()
    };
    c.phones
        .insert("BusinessPhone".into(), "+44 20 7946 0000".into());
    c.phones
        .insert("MobilePhone".into(), "+44 7700 900000".into());
    c.phones
        .insert("AssistantPhone".into(), "+44 20 7946 0001".into());
    c.addresses.insert(
        "Business".into(),
        PhysicalAddress {
            street: Some("12 Marylebone St".into()),
            city: Some("London".into()),
            state: None,
            country: Some("United Kingdom".into()),
            postal_code: Some("W1G 8JQ".into()),
        },
    );
    c.extended
        .insert(PROP_SALESFORCE_ID.into(), format!("003000000000{n:03}AAA"));
    c
}

/// What a round trip must preserve: everything but the server-maintained fields.
fn comparable(mut c: Contact) -> Contact {
    c.item_id = None;
    c.last_modified = None;
    c
}

#[tokio::test]
async fn folders_get_find_create_and_exists() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let contacts = client
        .get_folder(CELIA, &FolderRef::contacts())
        .await
        .unwrap();
    assert_eq!(contacts.folder_class.as_deref(), Some("IPF.Contact"));
    assert_eq!(
        Some(contacts.id.id.clone()),
        emu.folder_id(CELIA, "contacts")
    );
    let cal = client
        .get_folder(CELIA, &FolderRef::calendar())
        .await
        .unwrap();
    assert_eq!(cal.folder_class.as_deref(), Some("IPF.Appointment"));

    assert!(
        client
            .find_folder(CELIA, &FolderRef::contacts(), "Salesforce_Sync")
            .await
            .unwrap()
            .is_none()
    );
    let created = client.ensure_sync_folder(CELIA).await.unwrap();
    assert_eq!(
        emu.find_folder(CELIA, "Salesforce_Sync"),
        Some(created.id.id.clone())
    );
    // Second time: found, not created again.
    let again = client.ensure_sync_folder(CELIA).await.unwrap();
    assert_eq!(again.id.id, created.id.id);
    // CreateFolder on an existing name: ErrorFolderExists means it is there.
    let exists = client
        .create_folder(
            CELIA,
            &FolderRef::contacts(),
            "Salesforce_Sync",
            "IPF.Contact",
        )
        .await
        .unwrap();
    assert!(exists.is_none());
    assert_eq!(emu.calls("CreateFolder"), 2);
    assert_eq!(emu.anchor_mismatches(), 0, "X-AnchorMailbox on every call");
    validate_all(&emu.bodies());
}

#[tokio::test]
async fn sync_1300_changes_in_exactly_three_calls_then_incremental() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    for i in 0..1300 {
        emu.put_contact(CELIA, &folder.id.id, bridge(full_contact(i)))
            .unwrap();
    }
    let mut states = Vec::new();
    let mut ids = Vec::new();
    let summary = client
        .sync_folder(CELIA, &FolderRef::from(&folder), None, 512, |p| {
            assert!(p.from_scratch);
            states.push(p.sync_state.clone());
            ids.extend(p.changes.iter().map(|c| {
                assert_eq!(c.kind, ChangeKind::Create);
                c.item_id.clone()
            }));
        })
        .await
        .unwrap();
    assert_eq!(emu.calls("SyncFolderItems"), 3);
    assert_eq!(summary.pages, 3);
    assert_eq!(ids.len(), 1300);
    assert_eq!(states.len(), 3, "state handed back after each page");

    // No change: one call, no changes.
    let s2 = client
        .sync_folder(
            CELIA,
            &FolderRef::from(&folder),
            Some(summary.sync_state.clone()),
            512,
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(s2.changes, 0);
    assert_eq!(emu.calls("SyncFolderItems"), 4);

    // An edit and a delete come back as Update and Delete.
    emu.edit_item(CELIA, &ids[5].id, |i| {
        if let EmuItem::Contact(c) = i {
            c.job_title = Some("Countess".into());
        }
    })
    .unwrap();
    assert!(emu.delete_item(CELIA, &ids[6].id));
    let mut kinds = Vec::new();
    client
        .sync_folder(
            CELIA,
            &FolderRef::from(&folder),
            Some(s2.sync_state.clone()),
            512,
            |p| {
                kinds.extend(p.changes.iter().map(|c| (c.kind, c.item_id.id.clone())));
            },
        )
        .await
        .unwrap();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::Update, ids[5].id.clone()),
            (ChangeKind::Delete, ids[6].id.clone())
        ]
    );

    // The GetItem batches for the 1,300: ceil(1300 / 50) calls, one result per id in order.
    let got = client.get_contacts(CELIA, &ids).await.unwrap();
    assert_eq!(emu.calls("GetItem"), 26);
    assert_eq!(got.len(), 1300);
    assert!(
        got[6]
            .as_ref()
            .is_err_and(|e| e.code == "ErrorItemNotFound")
    );
    assert_eq!(
        got[7].as_ref().unwrap().item_id.as_ref().unwrap().id,
        ids[7].id
    );
}

#[tokio::test]
async fn invalid_sync_state_restarts_from_scratch() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    for i in 0..3 {
        emu.put_contact(CELIA, &folder.id.id, bridge(full_contact(i)))
            .unwrap();
    }
    let first = client
        .sync_folder(CELIA, &FolderRef::from(&folder), None, 512, |_| {})
        .await
        .unwrap();
    emu.inject(Fault::InvalidSyncState);
    let mut creates = 0;
    let again = client
        .sync_folder(
            CELIA,
            &FolderRef::from(&folder),
            Some(first.sync_state),
            512,
            |p| {
                creates += p.changes.len();
            },
        )
        .await
        .unwrap();
    assert!(again.restarted);
    assert_eq!(creates, 3, "a restart returns every item again");
    // A state from another folder is just as invalid.
    let other = client
        .get_folder(CELIA, &FolderRef::calendar())
        .await
        .unwrap();
    let err = client
        .sync_page(CELIA, &FolderRef::from(&other), Some(&again.sync_state), 10)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ErrorInvalidSyncStateData"));
}

#[tokio::test]
async fn contact_round_trip_preserves_every_mapped_property_and_updates_fields() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    let originals: Vec<Contact> = (0..3).map(full_contact).collect();
    let ids: Vec<_> = client
        .create_contacts(CELIA, &FolderRef::from(&folder), &originals)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let got = client.get_contacts(CELIA, &ids).await.unwrap();
    for (o, g) in originals.iter().zip(&got) {
        let g = g.as_ref().unwrap();
        assert_eq!(comparable(g.clone()), comparable(o.clone()));
        assert_eq!(g.salesforce_id(), o.salesforce_id());
        assert!(g.last_modified.is_some());
    }
    // Update: change some fields, clear others (incl. indexed email 2 and a phone).
    let mut changed = got[0].clone().unwrap();
    changed.job_title = Some("Chief Analyst".into());
    changed.emails[1] = None;
    changed.emails[2] = Some("third@example.com".into());
    changed.phones.remove("MobilePhone");
    changed
        .phones
        .insert("HomePhone".into(), "+1 555 0100".into());
    changed.addresses.get_mut("Business").unwrap().city = Some("Cambridge".into());
    changed.addresses.insert(
        "Home".into(),
        PhysicalAddress {
            city: Some("Ockham".into()),
            ..PhysicalAddress::default()
        },
    );
    changed.nickname = None;
    changed.birthday = None;
    let old_id = changed.item_id.clone().unwrap();
    let res = client
        .update_contacts(CELIA, &[(old_id.clone(), changed.clone())])
        .await
        .unwrap();
    let new_id = res[0].clone().unwrap();
    assert_eq!(new_id.id, old_id.id);
    assert_ne!(
        new_id.change_key, old_id.change_key,
        "ChangeKey changes on every write"
    );
    let after = client.get_contacts(CELIA, &[new_id]).await.unwrap();
    assert_eq!(comparable(after[0].clone().unwrap()), comparable(changed));
    validate_all(&emu.bodies());
}

fn rich_event() -> CalendarEvent {
    let mut e = CalendarEvent::new(t("2026-01-12T08:00:00Z"), t("2026-01-12T09:30:00Z"));
    e.subject = Some("Quarterly review".into());
    e.body = Some("Agenda:\n1. numbers".into());
    e.location = Some("Room 4 / Teams".into());
    e.sensitivity = Some(Sensitivity::Private);
    e.free_busy = Some(FreeBusy::OOF);
    e.categories = vec!["Salesforce".into(), "Red".into()];
    e.start_time_zone = Some("W. Europe Standard Time".into());
    e.end_time_zone = Some("W. Europe Standard Time".into());
    e.required_attendees = vec![Attendee {
        mailbox: MailboxAddress {
            name: Some("Dana".into()),
            email: "dana@customer.example".into(),
        },
        response: None,
    }];
    e.optional_attendees = vec![Attendee {
        mailbox: MailboxAddress {
            name: None,
            email: "eve@customer.example".into(),
        },
        response: None,
    }];
    e.extended
        .insert(PROP_SALESFORCE_ID.into(), "00U000000000001AAA".into());
    e
}

#[tokio::test]
async fn event_round_trip_time_zones_all_day_and_recurrence() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let timed = rich_event();
    let all_day = {
        // 2026-03-02 (whole day) in Pacific time: midnight local is 08:00Z.
        let mut e = CalendarEvent::all_day(
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
            "Pacific Standard Time",
        )
        .unwrap();
        assert_eq!(
            (e.start, e.end),
            (t("2026-03-02T08:00:00Z"), t("2026-03-03T08:00:00Z"))
        );
        e.subject = Some("Offsite".into());
        e.set_salesforce_id("00U000000000002AAA");
        e
    };
    let series = {
        let mut e = CalendarEvent::new(t("2026-01-05T15:00:00Z"), t("2026-01-05T15:30:00Z"));
        e.subject = Some("Standup".into());
        e.start_time_zone = Some("Eastern Standard Time".into());
        e.end_time_zone = Some("Eastern Standard Time".into());
        e.recurrence = Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![Weekday::Mon, Weekday::Wed],
                first_day: Some(Weekday::Sun),
            },
            start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
            end: RangeEnd::Count(10),
        });
        e
    };
    let originals = vec![timed, all_day, series];
    let ids: Vec<_> = client
        .create_events(CELIA, &originals)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let got = client.get_events(CELIA, &ids).await.unwrap();
    for (o, g) in originals.iter().zip(&got) {
        let g = g.as_ref().unwrap();
        assert_eq!(g.subject, o.subject);
        assert_eq!(g.body, o.body);
        assert_eq!((g.start, g.end), (o.start, o.end));
        assert_eq!(g.is_all_day, o.is_all_day);
        assert_eq!(g.location, o.location);
        assert_eq!(g.sensitivity, o.sensitivity);
        assert_eq!(g.free_busy, o.free_busy);
        assert_eq!(g.categories, o.categories);
        assert_eq!(g.start_time_zone, o.start_time_zone);
        assert_eq!(g.end_time_zone, o.end_time_zone);
        assert_eq!(g.recurrence, o.recurrence);
        assert_eq!(g.required_attendees, o.required_attendees);
        assert_eq!(g.optional_attendees, o.optional_attendees);
        assert_eq!(g.extended, o.extended);
        assert_eq!(g.organizer.as_ref().map(|m| m.email.as_str()), Some(CELIA));
        assert!(g.last_modified.is_some());
    }
    assert!(
        got[0].as_ref().unwrap().is_outlook_related(),
        "Salesforce category"
    );
    assert!(!got[1].as_ref().unwrap().is_outlook_related());
    let day = got[1].as_ref().unwrap().all_day_dates().unwrap().unwrap();
    assert_eq!(
        day,
        (
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 3).unwrap()
        )
    );
    assert_eq!(
        got[2].as_ref().unwrap().item_type,
        Some(CalendarItemType::RecurringMaster)
    );

    // Update: move the timed event, make it all-day, drop the attendees.
    let mut changed = got[0].clone().unwrap();
    changed.start = t("2026-01-13T23:00:00Z");
    changed.end = t("2026-01-14T23:00:00Z");
    changed.is_all_day = true;
    changed.required_attendees.clear();
    changed.location = None;
    let id = changed.item_id.clone().unwrap();
    let new_id = client
        .update_events(CELIA, &[(id, changed.clone())])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let after = client.get_events(CELIA, &[new_id]).await.unwrap()[0]
        .clone()
        .unwrap();
    assert!(after.is_all_day);
    assert_eq!((after.start, after.end), (changed.start, changed.end));
    assert_eq!(
        after.all_day_dates().unwrap().unwrap().0,
        NaiveDate::from_ymd_opt(2026, 1, 14).unwrap(),
        "all-day in Berlin time"
    );
    assert!(after.required_attendees.is_empty());
    assert_eq!(after.location, None);
    validate_all(&emu.bodies());
}

#[tokio::test]
async fn calendar_view_expands_series_with_exceptions_and_deletions() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    // Daily at 10:00 Berlin, 5 occurrences from Mon 2026-01-05.
    let mut daily = CalendarEvent::new(t("2026-01-05T09:00:00Z"), t("2026-01-05T10:00:00Z"));
    daily.subject = Some("Daily".into());
    daily.start_time_zone = Some("W. Europe Standard Time".into());
    daily.recurrence = Some(Recurrence {
        pattern: Pattern::Daily { interval: 1 },
        start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
        end: RangeEnd::Count(5),
    });
    let master = emu.put_event(CELIA, bridge(daily)).unwrap();
    // Monthly on the 15th, no end; a single event; and one outside the window.
    let mut monthly = CalendarEvent::new(t("2026-01-15T14:00:00Z"), t("2026-01-15T15:00:00Z"));
    monthly.subject = Some("Monthly".into());
    monthly.recurrence = Some(Recurrence {
        pattern: Pattern::AbsoluteMonthly {
            interval: 1,
            day: 15,
        },
        start: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
        end: RangeEnd::NoEnd,
    });
    emu.put_event(CELIA, bridge(monthly)).unwrap();
    let mut single = CalendarEvent::new(t("2026-01-06T12:00:00Z"), t("2026-01-06T13:00:00Z"));
    single.subject = Some("Lunch".into());
    emu.put_event(CELIA, bridge(single)).unwrap();
    let mut later = CalendarEvent::new(t("2026-06-01T12:00:00Z"), t("2026-06-01T13:00:00Z"));
    later.subject = Some("Later".into());
    emu.put_event(CELIA, bridge(later)).unwrap();

    // Move Wednesday's occurrence, delete Thursday's.
    assert!(emu.modify_occurrence(
        CELIA,
        &master.id,
        t("2026-01-07T09:00:00Z"),
        t("2026-01-07T13:00:00Z"),
        t("2026-01-07T14:00:00Z")
    ));
    assert!(emu.delete_occurrence(CELIA, &master.id, t("2026-01-08T09:00:00Z")));

    let view = client
        .calendar_view(
            CELIA,
            t("2026-01-01T00:00:00Z"),
            t("2026-02-28T00:00:00Z"),
            1000,
        )
        .await
        .unwrap();
    let got: Vec<(String, String, Option<CalendarItemType>)> = view
        .iter()
        .map(|e| {
            (
                e.subject.clone().unwrap(),
                e.start.format("%m-%d %H:%M").to_string(),
                e.item_type,
            )
        })
        .collect();
    use CalendarItemType::*;
    let want: Vec<(String, String, Option<CalendarItemType>)> = [
        ("Daily", "01-05 09:00", Occurrence),
        ("Daily", "01-06 09:00", Occurrence),
        ("Lunch", "01-06 12:00", Single),
        ("Daily", "01-07 13:00", Exception),
        ("Daily", "01-09 09:00", Occurrence),
        ("Monthly", "01-15 14:00", Occurrence),
        ("Monthly", "02-15 14:00", Occurrence),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), Some(c)))
    .collect();
    assert_eq!(got, want);

    // The master of an occurrence, with its modified and deleted occurrences.
    let occ = view[0].item_id.clone().unwrap();
    let m = client.recurring_master(CELIA, &occ).await.unwrap();
    assert_eq!(m.item_type, Some(RecurringMaster));
    assert_eq!(m.modified_occurrences.len(), 1);
    assert_eq!(m.deleted_occurrences, vec![t("2026-01-08T09:00:00Z")]);

    // More than two years: ErrorCalendarViewRangeTooBig.
    let err = client
        .calendar_view(
            CELIA,
            t("2026-01-01T00:00:00Z"),
            t("2028-06-01T00:00:00Z"),
            1000,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ErrorCalendarViewRangeTooBig"));
    validate_all(&emu.bodies());
}

#[tokio::test]
async fn stale_change_key_is_detected_and_resolved_by_refetching() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    let id: ItemId = bridge(
        emu.put_contact(CELIA, &folder.id.id, bridge(full_contact(1)))
            .unwrap(),
    );
    let mut ours = client
        .get_contacts(CELIA, std::slice::from_ref(&id))
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    // The rep edits the contact in Outlook after we read it.
    emu.edit_item(CELIA, &id.id, |i| {
        if let EmuItem::Contact(c) = i {
            c.department = Some("Sales Ops".into());
        }
    })
    .unwrap();
    ours.job_title = Some("Engineer".into());
    let res = client
        .update_contacts(CELIA, &[(ours.item_id.clone().unwrap(), ours.clone())])
        .await
        .unwrap();
    let err = res[0].clone().unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.code, "ErrorIrresolvableConflict");
    // Nothing was overwritten.
    match emu.item(CELIA, &id.id).unwrap() {
        EmuItem::Contact(c) => {
            assert_eq!(c.department.as_deref(), Some("Sales Ops"));
            assert_eq!(c.job_title.as_deref(), Some("Mathematician"));
        }
        other => panic!("{other:?}"),
    }
    // Refetch, decide again (keep their department, apply our title), update.
    let mut fresh = client
        .get_contacts(CELIA, std::slice::from_ref(&id))
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    fresh.job_title = Some("Engineer".into());
    let ok = client
        .update_contacts(CELIA, &[(fresh.item_id.clone().unwrap(), fresh)])
        .await
        .unwrap();
    assert!(ok[0].is_ok());
    match emu.item(CELIA, &id.id).unwrap() {
        EmuItem::Contact(c) => {
            assert_eq!(c.department.as_deref(), Some("Sales Ops"));
            assert_eq!(c.job_title.as_deref(), Some("Engineer"));
        }
        other => panic!("{other:?}"),
    }
    // The injected variant (a save lands between our read and our write) behaves the same.
    let current = client
        .get_contacts(CELIA, std::slice::from_ref(&id))
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    emu.inject(Fault::StaleChangeKey);
    let res = client
        .update_contacts(CELIA, &[(current.item_id.clone().unwrap(), current)])
        .await
        .unwrap();
    assert!(res[0].as_ref().unwrap_err().is_conflict());
}

#[tokio::test]
async fn server_busy_back_off_is_honoured_without_sleeping() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    emu.inject(Fault::ServerBusy { back_off_ms: 7_250 });
    emu.inject(Fault::ServerBusy { back_off_ms: 1_500 });
    let started = std::time::Instant::now();
    let f = client
        .get_folder(CELIA, &FolderRef::contacts())
        .await
        .unwrap();
    assert_eq!(f.display_name, "Contacts");
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_millis(7_250), Duration::from_millis(1_500)]
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no real sleeping"
    );
    assert_eq!(client.calls().get("GetFolder"), Some(&3));
}

#[tokio::test]
async fn unavailable_and_faults_retry_bounded_then_fail_typed() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    emu.inject(Fault::Http(503));
    emu.inject(Fault::Http(503));
    client
        .get_folder(CELIA, &FolderRef::calendar())
        .await
        .unwrap();
    assert_eq!(clock.sleeps().len(), 2);
    // More 503s than retries: a typed error, not a hang.
    for _ in 0..10 {
        emu.inject(Fault::Http(503));
    }
    let err = client
        .get_folder(CELIA, &FolderRef::calendar())
        .await
        .unwrap_err();
    assert!(
        matches!(err, tether::exchange::EwsError::Http { status: 503, .. }),
        "{err:?}"
    );
    // A SOAP fault is typed with its response code.
    let clock2 = ews::clock();
    let emu2 = emulator(&clock2, false).await;
    let client2 = ews::client(&emu2, &clock2);
    emu2.inject(Fault::Soap {
        code: "ErrorInternalServerTransientError".into(),
    });
    let err = client2
        .get_folder(CELIA, &FolderRef::calendar())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ErrorInternalServerTransientError"));
    // Connection refused: bounded retries, then a transport error.
    let mut opts = options(&emu2);
    opts.endpoint = Endpoint::Url("http://127.0.0.1:9/EWS/Exchange.asmx".parse().unwrap());
    opts.max_retries = 2;
    let dead = EwsClient::new(opts, Arc::new(clock2.clone())).unwrap();
    let err = dead
        .get_folder(CELIA, &FolderRef::calendar())
        .await
        .unwrap_err();
    assert!(
        matches!(err, tether::exchange::EwsError::Transport(_)),
        "{err:?}"
    );
    assert!(!format!("{err}").contains(PASSWORD));
}

#[tokio::test]
async fn impersonation_scope_gives_per_rep_errors_while_others_sync() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let mut outcomes = BTreeMap::new();
    for rep in [CELIA, FINANCE, "ghost@corp.com", BOB] {
        let r = client.ensure_sync_folder(rep).await;
        outcomes.insert(rep, r);
    }
    assert!(outcomes[CELIA].is_ok());
    assert!(outcomes[BOB].is_ok());
    let denied = outcomes[FINANCE].as_ref().unwrap_err();
    assert_eq!(denied.code(), Some("ErrorImpersonateUserDenied"));
    assert!(denied.is_per_rep());
    let unknown = outcomes["ghost@corp.com"].as_ref().unwrap_err();
    assert_eq!(unknown.code(), Some("ErrorNonExistentMailbox"));
    assert!(unknown.is_per_rep());
    // A list scope.
    emu.add_service_account(
        "CORP\\svc-list",
        "pw",
        ImpersonationScope::List(vec![BOB.into()]),
    );
    let mut opts = options(&emu);
    opts.auth = Auth::Basic {
        username: "CORP\\svc-list".into(),
        password: Secret::new("pw"),
    };
    let listed = EwsClient::new(opts, Arc::new(clock.clone())).unwrap();
    assert!(listed.get_folder(BOB, &FolderRef::contacts()).await.is_ok());
    assert!(
        listed
            .get_folder(CELIA, &FolderRef::contacts())
            .await
            .unwrap_err()
            .is_per_rep()
    );
}

#[tokio::test]
async fn bad_password_is_unauthorized_and_never_leaks() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let mut opts = options(&emu);
    opts.auth = Auth::Basic {
        username: SVC.into(),
        password: Secret::new("wrong-secret-value"),
    };
    let c = EwsClient::new(opts.clone(), Arc::new(clock.clone())).unwrap();
    let err = c
        .get_folder(CELIA, &FolderRef::contacts())
        .await
        .unwrap_err();
    assert!(matches!(err, tether::exchange::EwsError::Unauthorized(_)));
    assert!(!format!("{err} {err:?}").contains("wrong-secret-value"));
    assert!(!format!("{opts:?} {c:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn oauth_client_credentials_renews_before_expiry_and_on_401() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    emu.add_app("app-id", "app-secret", ImpersonationScope::All);
    let opts = ExchangeOptions::new(
        Endpoint::Url(emu.ews_url().parse().unwrap()),
        Auth::OAuth2(tether::entra::AppCredentials {
            token_url: emu.token_url().parse().unwrap(),
            client_id: "app-id".into(),
            credential: tether::entra::ClientCredential::Secret(Secret::new("app-secret")),
            scope: "https://outlook.office365.com/.default".into(),
        }),
    );
    let c = EwsClient::new(opts.clone(), Arc::new(clock.clone())).unwrap();
    c.get_folder(FINANCE, &FolderRef::contacts()).await.unwrap();
    c.get_folder(BOB, &FolderRef::contacts()).await.unwrap();
    assert_eq!(c.calls().get("Token"), Some(&1), "token reused");
    // 56 minutes later the token (3599 s) is within 5 minutes of expiry: renewed first.
    clock.advance(Duration::from_secs(56 * 60));
    c.get_folder(BOB, &FolderRef::contacts()).await.unwrap();
    assert_eq!(c.calls().get("Token"), Some(&2));
    // A 401 (token revoked) renews once and retries.
    emu.inject(Fault::Unauthorized);
    c.get_folder(BOB, &FolderRef::contacts()).await.unwrap();
    assert_eq!(c.calls().get("Token"), Some(&3));
    // Wrong secret: a clear token error without the secret.
    let mut bad = opts;
    bad.auth = Auth::OAuth2(tether::entra::AppCredentials {
        token_url: emu.token_url().parse().unwrap(),
        client_id: "app-id".into(),
        credential: tether::entra::ClientCredential::Secret(Secret::new("nope-secret")),
        scope: "x".into(),
    });
    let err = EwsClient::new(bad, Arc::new(clock.clone()))
        .unwrap()
        .get_folder(BOB, &FolderRef::contacts())
        .await
        .unwrap_err();
    assert!(
        matches!(err, tether::exchange::EwsError::Token(_)),
        "{err:?}"
    );
    assert!(!format!("{err}").contains("nope-secret"));
}

#[tokio::test]
async fn delete_items_and_batches_of_configured_size() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let mut opts = options(&emu);
    opts.batch_size = 7;
    let c = EwsClient::new(opts, Arc::new(clock.clone())).unwrap();
    let folder = c.ensure_sync_folder(BOB).await.unwrap();
    let contacts: Vec<Contact> = (0..20).map(full_contact).collect();
    let ids: Vec<_> = c
        .create_contacts(BOB, &FolderRef::from(&folder), &contacts)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(emu.calls("CreateItem"), 3);
    let mut to_delete = ids[..10].to_vec();
    to_delete.push(tether::exchange::model::ItemId::new(
        "AAMkbm90aGVyZQ==",
        None,
    ));
    let res = c.delete_items(BOB, &to_delete).await.unwrap();
    assert_eq!(emu.calls("DeleteItem"), 2);
    assert!(res[..10].iter().all(Result::is_ok));
    assert_eq!(res[10].as_ref().unwrap_err().code, "ErrorItemNotFound");
    assert_eq!(emu.items(BOB, &folder.id.id).len(), 10);
    let calls = c.calls();
    assert_eq!(calls.get("CreateItem"), Some(&3));
    assert_eq!(calls.get("DeleteItem"), Some(&2));
}

#[tokio::test]
async fn plain_http_only_to_loopback_and_bad_ca_file() {
    let clock = clock();
    let opts = ExchangeOptions::new(
        Endpoint::Url("http://mail.corp.com/EWS/Exchange.asmx".parse().unwrap()),
        Auth::Basic {
            username: SVC.into(),
            password: Secret::new(PASSWORD),
        },
    );
    assert!(EwsClient::new(opts.clone(), Arc::new(clock.clone())).is_err());
    let mut https = opts;
    https.endpoint = Endpoint::Url("https://mail.corp.com/EWS/Exchange.asmx".parse().unwrap());
    assert!(EwsClient::new(https.clone(), Arc::new(clock.clone())).is_ok());
    // A PEM CA (self-signed, test only) is accepted; a missing or non-PEM file is not.
    https.ca_file =
        Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-ca.pem"));
    assert!(EwsClient::new(https.clone(), Arc::new(clock.clone())).is_ok());
    https.ca_file = Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    assert!(EwsClient::new(https.clone(), Arc::new(clock.clone())).is_err());
    https.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(EwsClient::new(https, Arc::new(clock)).is_err());
}

#[tokio::test]
async fn dropped_connection_is_retried() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    emu.inject(Fault::DropConnection);
    let f = client
        .get_folder(CELIA, &FolderRef::contacts())
        .await
        .unwrap();
    assert_eq!(f.display_name, "Contacts");
    assert_eq!(client.calls().get("GetFolder"), Some(&2));
    assert_eq!(clock.sleeps().len(), 1);
}

#[tokio::test]
async fn concurrency_limit_answers_server_busy_and_client_gives_up_bounded() {
    let clock = clock();
    let emu =
        tether_emulators::exchange::Emulator::start(tether_emulators::exchange::EmulatorOptions {
            clock: Some(Arc::new(clock.clone())),
            max_concurrency: 0,
            back_off_ms: 1_234,
            ..Default::default()
        })
        .await
        .unwrap();
    emu.add_service_account(SVC, PASSWORD, ImpersonationScope::All);
    emu.add_mailbox(CELIA, None);
    let mut opts = options(&emu);
    opts.max_retries = 3;
    let c = EwsClient::new(opts, Arc::new(clock.clone())).unwrap();
    let err = c
        .get_folder(CELIA, &FolderRef::contacts())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ErrorServerBusy"));
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(1_234); 3]);
    assert_eq!(c.calls().get("GetFolder"), Some(&4));
}

#[tokio::test]
async fn deterministic_mode_gives_the_same_ids_and_times() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emu = tether_emulators::exchange::Emulator::start(Default::default())
            .await
            .unwrap();
        emu.add_mailbox(CELIA, None);
        let folder = emu.folder_id(CELIA, "contacts").unwrap();
        let id = emu
            .put_contact(CELIA, &folder, bridge(full_contact(1)))
            .unwrap();
        let item = emu.item(CELIA, &id.id).unwrap();
        runs.push((folder, id, item));
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn emulator_insists_on_meeting_message_choices_like_exchange() {
    use tether::exchange::soap::{self, RequestHeaders};
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let mut e = CalendarEvent::new(t("2026-01-12T08:00:00Z"), t("2026-01-12T09:00:00Z"));
    e.subject = Some("x".into());
    let id = client.create_events(CELIA, &[e]).await.unwrap()[0]
        .clone()
        .unwrap();
    let headers = RequestHeaders {
        server_version: "Exchange2013_SP1",
        impersonate: Some(CELIA),
        time_zone: None,
    };
    let http = reqwest::Client::new();
    let send = |body: String| {
        let req = http
            .post(emu.ews_url())
            .basic_auth(SVC, Some(PASSWORD))
            .header("X-AnchorMailbox", CELIA)
            .body(soap::request_envelope(&headers, &body));
        async move {
            let bytes = req.send().await.unwrap().bytes().await.unwrap();
            let op = soap::parse_response(&bytes).unwrap();
            soap::response_messages(&op).unwrap()[0].code.clone()
        }
    };
    let create = "<m:CreateItem><m:Items><t:CalendarItem><t:Subject>a</t:Subject><t:Start>2026-01-12T08:00:00Z</t:Start><t:End>2026-01-12T09:00:00Z</t:End></t:CalendarItem></m:Items></m:CreateItem>";
    assert_eq!(
        send(create.into()).await,
        "ErrorSendMeetingInvitationsRequired"
    );
    let delete = format!(
        "<m:DeleteItem DeleteType=\"HardDelete\"><m:ItemIds><t:ItemId Id=\"{}\"/></m:ItemIds></m:DeleteItem>",
        id.id
    );
    assert_eq!(send(delete).await, "ErrorSendMeetingCancellationsRequired");
    let update = format!(
        "<m:UpdateItem ConflictResolution=\"AlwaysOverwrite\"><m:ItemChanges><t:ItemChange><t:ItemId Id=\"{}\"/><t:Updates><t:SetItemField><t:FieldURI FieldURI=\"item:Subject\"/><t:CalendarItem><t:Subject>b</t:Subject></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>",
        id.id
    );
    assert_eq!(
        send(update).await,
        "ErrorSendMeetingInvitationsOrCancellationsRequired"
    );
    let view_on_contacts = "<m:FindItem Traversal=\"Shallow\"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:CalendarView StartDate=\"2026-01-01T00:00:00Z\" EndDate=\"2026-02-01T00:00:00Z\"/><m:ParentFolderIds><t:DistinguishedFolderId Id=\"contacts\"/></m:ParentFolderIds></m:FindItem>";
    assert_eq!(
        send(view_on_contacts.into()).await,
        "ErrorCalendarFolderIsInvalidForCalendarView"
    );
    // The client always states its choice (SendToNone), so its calls go through.
    assert!(client.delete_items(CELIA, &[id]).await.unwrap()[0].is_ok());
}

#[tokio::test]
async fn times_without_offset_follow_the_time_zone_context() {
    use tether::exchange::soap::{self, RequestHeaders};
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let headers = RequestHeaders {
        server_version: "Exchange2013_SP1",
        impersonate: Some(CELIA),
        time_zone: Some("Eastern Standard Time"),
    };
    let create = "<m:CreateItem SendMeetingInvitations=\"SendToNone\"><m:Items><t:CalendarItem><t:Subject>a</t:Subject><t:Start>2026-01-12T09:00:00</t:Start><t:End>2026-01-12T10:00:00</t:End></t:CalendarItem></m:Items></m:CreateItem>";
    let bytes = reqwest::Client::new()
        .post(emu.ews_url())
        .basic_auth(SVC, Some(PASSWORD))
        .header("X-AnchorMailbox", CELIA)
        .body(soap::request_envelope(&headers, create))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let op = soap::parse_response(&bytes).unwrap();
    let msgs = soap::response_messages(&op).unwrap();
    assert_eq!(msgs[0].code, "NoError");
    let client = client(&emu, &clock);
    let view = client
        .calendar_view(
            CELIA,
            t("2026-01-12T00:00:00Z"),
            t("2026-01-13T00:00:00Z"),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        view[0].start,
        t("2026-01-12T14:00:00Z"),
        "09:00 in New York"
    );
}

#[tokio::test]
async fn concurrency_beyond_the_limit_is_throttled_per_account() {
    let clock = clock();
    let emu =
        tether_emulators::exchange::Emulator::start(tether_emulators::exchange::EmulatorOptions {
            clock: Some(Arc::new(clock.clone())),
            max_concurrency: 2,
            latency: Some(Duration::from_millis(800)),
            ..Default::default()
        })
        .await
        .unwrap();
    emu.add_service_account(SVC, PASSWORD, ImpersonationScope::All);
    emu.add_service_account("other@corp.com", "pw", ImpersonationScope::All);
    emu.add_mailbox(CELIA, None);
    let mut opts = options(&emu);
    opts.max_retries = 0;
    let c = Arc::new(EwsClient::new(opts.clone(), Arc::new(clock.clone())).unwrap());
    opts.auth = Auth::Basic {
        username: "other@corp.com".into(),
        password: Secret::new("pw"),
    };
    let other = EwsClient::new(opts, Arc::new(clock.clone())).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.get_folder(CELIA, &FolderRef::contacts()).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another account has its own budget.
    assert!(
        other
            .get_folder(CELIA, &FolderRef::contacts())
            .await
            .is_ok()
    );
    let mut ok = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.code() == Some("ErrorServerBusy") => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, busy), (2, 2));
}

#[tokio::test]
async fn conflict_resolution_modes() {
    use tether::exchange::ConflictResolution;
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let folder = client(&emu, &clock)
        .ensure_sync_folder(CELIA)
        .await
        .unwrap();
    let id: ItemId = bridge(
        emu.put_contact(CELIA, &folder.id.id, bridge(full_contact(1)))
            .unwrap(),
    );
    for (mode, ok) in [
        (ConflictResolution::NeverOverwrite, false),
        (ConflictResolution::AutoResolve, true),
        (ConflictResolution::AlwaysOverwrite, true),
    ] {
        let mut opts = options(&emu);
        opts.conflict_resolution = mode;
        let c = EwsClient::new(opts, Arc::new(clock.clone())).unwrap();
        let mut stale = c
            .get_contacts(CELIA, std::slice::from_ref(&id))
            .await
            .unwrap()[0]
            .clone()
            .unwrap();
        emu.edit_item(CELIA, &id.id, |_| {}).unwrap();
        stale.job_title = Some(format!("{mode:?}"));
        let r = c
            .update_contacts(CELIA, &[(stale.item_id.clone().unwrap(), stale)])
            .await
            .unwrap();
        assert_eq!(r[0].is_ok(), ok, "{mode:?}: {:?}", r[0]);
    }
}

#[tokio::test]
async fn a_create_item_whose_answer_breaks_off_is_not_sent_again() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    // The server creates the items, then the connection breaks while it answers: sending
    // the request again would create them twice.
    emu.inject_on("CreateItem", Fault::DropResponse);
    let err = client
        .create_contacts(CELIA, &FolderRef::from(&folder), &[full_contact(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, tether::exchange::EwsError::Transport(_)),
        "{err:?}"
    );
    assert_eq!(client.calls().get("CreateItem"), Some(&1));
    assert_eq!(emu.items(CELIA, &folder.id.id).len(), 1);
    // Refused before running (ErrorServerBusy, 503): sent again, once.
    emu.inject_on("CreateItem", Fault::ServerBusy { back_off_ms: 700 });
    emu.inject_on(
        "CreateItem",
        Fault::Unavailable {
            retry_after_secs: 3,
        },
    );
    client
        .create_contacts(CELIA, &FolderRef::from(&folder), &[full_contact(2)])
        .await
        .unwrap();
    assert_eq!(client.calls().get("CreateItem"), Some(&4));
    assert_eq!(emu.items(CELIA, &folder.id.id).len(), 2);
    // It waited what each answer asked for: BackOffMilliseconds, then Retry-After.
    let sleeps = clock.sleeps();
    assert_eq!(
        sleeps[sleeps.len() - 2..],
        [
            std::time::Duration::from_millis(700),
            std::time::Duration::from_secs(3)
        ]
    );
}

#[tokio::test]
async fn after_a_401_no_further_request_is_sent_in_the_run() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    emu.inject(Fault::Unauthorized);
    for _ in 0..3 {
        let err = client
            .get_folder(CELIA, &FolderRef::contacts())
            .await
            .unwrap_err();
        assert!(
            matches!(err, tether::exchange::EwsError::Unauthorized(_)),
            "{err:?}"
        );
    }
    // One failed logon, however many calls follow: lockout policies count each one.
    assert_eq!(emu.rejected_logons(), 1);
    assert_eq!(client.calls().get("GetFolder"), Some(&1));
}

#[tokio::test]
async fn items_of_a_batch_fail_one_by_one() {
    let clock = clock();
    let emu = emulator(&clock, false).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    let contacts: Vec<Contact> = (0..3).map(full_contact).collect();
    let marker = contacts[1].given_name.clone().unwrap();
    emu.fail_items(
        &marker,
        "ErrorInternalServerTransientError",
        "An internal server transient error occurred.",
        Some(1),
    );
    let out = client
        .create_contacts(CELIA, &FolderRef::from(&folder), &contacts)
        .await
        .unwrap();
    assert!(out[0].is_ok() && out[2].is_ok());
    assert_eq!(
        out[1].as_ref().unwrap_err().code,
        "ErrorInternalServerTransientError"
    );
    assert_eq!(emu.items(CELIA, &folder.id.id).len(), 2);
}
