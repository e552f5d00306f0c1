//! The EWS decoders against golden answers (tests/fixtures/golden/ews, provenance in its
//! PROVENANCE.md): each answer goes through the path a live one takes (`soap` parse, response
//! messages, the operation's reader in `client::answers`) and the facts it carries are checked.

use super::client::{Discovered, answers};
use super::error::EwsError;
use super::model::{CalendarItemType, FreeBusy, Item, ItemId, Sensitivity};
use super::soap::{self, ResponseMessage};
use super::version::ServerBuild;
use super::{ChangeKind, ItemKind};
use crate::golden;
use chrono::{DateTime, Utc};

fn bytes(file: &str) -> Vec<u8> {
    golden::read("ews", file)
}

/// The answer's response messages and the build its header names.
fn messages(file: &str) -> (Vec<ResponseMessage>, Option<ServerBuild>) {
    let (op, build) = soap::parse_response_and_build(&bytes(file))
        .unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
    let msgs = soap::response_messages(&op).unwrap_or_else(|e| panic!("{file}: {e}"));
    (msgs, build)
}

/// The one response message of a single-message answer.
fn only(file: &str) -> ResponseMessage {
    let (mut msgs, _) = messages(file);
    assert_eq!(msgs.len(), 1, "{file}");
    msgs.remove(0)
}

fn build(file: &str) -> ServerBuild {
    messages(file).1.expect("ServerVersionInfo header")
}

fn error_of(m: &ResponseMessage) -> (&str, &str) {
    assert!(m.is_error(), "expected an Error message, got {}", m.class);
    (&m.code, &m.text)
}

fn id(id: &str, change_key: Option<&str>) -> ItemId {
    ItemId::new(id, change_key.map(str::to_string))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn b(major: u32, minor: u32, build: u32, revision: u32) -> ServerBuild {
    ServerBuild {
        major,
        minor,
        build,
        revision,
    }
}

#[test]
fn every_ews_golden_answer_has_provenance_and_a_test() {
    golden::assert_complete("ews", ".xml", include_str!("golden.rs"));
}

#[test]
fn getfolder_answer_gives_the_folder_id_change_key_and_name() {
    let m = only("getfolder_inbox.xml");
    let f = answers::folder(&m).unwrap();
    assert_eq!(f.id, id("AQApA=", Some("AQAAAB")));
    assert_eq!(f.display_name, "Inbox");
    assert_eq!(f.folder_class, None);
    let exchange_2007 = build("getfolder_inbox.xml");
    assert_eq!(exchange_2007, b(8, 0, 628, 0));
    assert_eq!(exchange_2007.product(), "Exchange Server 2007");
    assert!(!exchange_2007.supported());
}

#[test]
fn getfolder_errors_carry_their_code_and_no_folder() {
    for file in [
        "getfolder_error_id_malformed.xml",
        "getfolder_error_id_malformed_exchange2010.xml",
    ] {
        let m = only(file);
        assert_eq!(
            error_of(&m),
            ("ErrorInvalidIdMalformed", "Id is malformed."),
            "{file}"
        );
        assert!(answers::folder(&m).is_err(), "{file}");
        assert!(
            !m.error().is_per_rep() && !m.error().is_conflict(),
            "{file}"
        );
    }
    // The Exchange 2010 header: `h:` prefix, a Version attribute, a default namespace.
    let exchange_2010 = build("getfolder_error_id_malformed_exchange2010.xml");
    assert_eq!(exchange_2010, b(14, 1, 164, 0));
    assert_eq!(exchange_2010.product(), "Exchange Server 2010");
}

#[test]
fn findfolder_answer_finds_the_folder_by_name_whatever_its_case() {
    let m = only("findfolder_testfolder.xml");
    let f = answers::found_folder(&m, "testfolder").unwrap();
    assert_eq!(f.id, id("AQAnAH", Some("AQAAABY")));
    assert_eq!(f.display_name, "TestFolder");
    assert_eq!(answers::found_folder(&m, "Salesforce_Sync"), None);
    assert_eq!(build("findfolder_testfolder.xml"), b(8, 0, 652, 0));

    let err = only("findfolder_error_id_malformed.xml");
    assert_eq!(error_of(&err).0, "ErrorInvalidIdMalformed");
    assert_eq!(answers::found_folder(&err, "TestFolder"), None);
}

#[test]
fn createfolder_answers_give_each_new_id_or_folder_exists() {
    let (msgs, _) = messages("createfolder_two_folders.xml");
    let ids: Vec<Option<ItemId>> = msgs.iter().map(answers::created_folder).collect();
    // The documented answer gives both folders the same (shortened) id and no ChangeKey.
    assert_eq!(ids, vec![Some(id("AS4AUn==", None)); 2]);

    let exists = only("createfolder_error_folder_exists.xml");
    assert_eq!(
        error_of(&exists),
        (
            "ErrorFolderExists",
            "A folder with the specified name already exists."
        )
    );
    assert_eq!(answers::created_folder(&exists), None);
}

#[test]
fn syncfolderitems_page_lists_a_create_with_its_id_state_and_end_flag() {
    let m = only("syncfolderitems_meeting_request.xml");
    let page = answers::sync_page(&m).unwrap();
    assert_eq!(page.sync_state, "H4sIAAAAA=");
    assert!(page.includes_last);
    assert_eq!(page.changes.len(), 1);
    let c = &page.changes[0];
    assert_eq!(c.kind, ChangeKind::Create);
    // A MeetingRequest is neither a contact nor a calendar item.
    assert_eq!(c.item_kind, ItemKind::Other);
    assert_eq!(c.item_id, id("AQApAHRwA==", Some("CwAAABYA")));
}

#[test]
fn syncfolderitems_invalid_sync_state_is_an_error_message_with_that_code() {
    let m = only("syncfolderitems_error_invalid_sync_state.xml");
    assert_eq!(
        error_of(&m),
        (
            "ErrorInvalidSyncStateData",
            "Synchronization state data is corrupt or otherwise invalid."
        )
    );
    assert!(!m.error().is_per_rep());
}

#[test]
fn getitem_calendar_item_in_idonly_shape_is_only_an_id() {
    let (msgs, _) = messages("getitem_calendar_idonly.xml");
    let items = answers::items(&msgs);
    assert_eq!(items.len(), 1);
    // Without Start and End no event can be made up: the item stays an id.
    match &items[0] {
        Ok(Item::Other(Some(i))) => assert_eq!(*i, id("ASUAd", Some("otlIqB=="))),
        other => panic!("{other:?}"),
    }
    assert!(answers::recurring_master(&msgs[0]).is_err());
}

#[test]
fn getitem_calendar_item_in_default_shape_gives_times_status_and_organizer() {
    let (msgs, _) = messages("getitem_calendar_default.xml");
    let Ok(Item::Event(e)) = &answers::items(&msgs)[0] else {
        panic!("not an event");
    };
    assert_eq!(e.item_id, Some(id("ASUAdTB", Some("otlIqBwrt=="))));
    assert_eq!(e.start, at("2006-06-16T00:30:00Z"));
    assert_eq!(e.end, at("2006-06-16T01:00:00Z"));
    assert_eq!(e.free_busy, Some(FreeBusy::Busy));
    assert_eq!(e.item_type, Some(CalendarItemType::Single));
    let organizer = e.organizer.as_ref().unwrap();
    assert_eq!(organizer.name.as_deref(), Some("Bob"));
    assert_eq!(organizer.email, "someone@example.com");
    assert_eq!(e.subject, None);
    assert!(!e.is_all_day);
}

#[test]
fn getitem_calendar_item_in_allproperties_shape_keeps_conflicting_meetings_out() {
    let (msgs, build) = messages("getitem_calendar_allproperties.xml");
    assert_eq!(build, Some(b(8, 0, 602, 0)));
    let master = answers::recurring_master(&msgs[0]).unwrap();
    assert_eq!(master.item_id, Some(id("ASUAdT", Some("otlIqB=="))));
    assert_eq!(master.sensitivity, Some(Sensitivity::Normal));
    assert_eq!(master.body.as_deref().unwrap_or(""), "");
    assert_eq!(master.start, at("2006-06-16T00:30:00Z"));
    assert_eq!(master.end, at("2006-06-16T01:00:00Z"));
    assert!(!master.is_all_day);
    assert_eq!(master.organizer.unwrap().email, "someone@example.com");
    // The nested ConflictingMeetings items (with their own Location) are not this item's.
    assert_eq!(master.location, None);
    assert!(master.required_attendees.is_empty());
    assert_eq!(master.recurrence, None);
    // Exchange 2007's legacy TimeZone element is not StartTimeZone.
    assert_eq!(master.start_time_zone, None);
}

#[test]
fn getitem_contact_gives_names_addresses_phones_and_emails() {
    let (msgs, _) = messages("getitem_contact_allproperties.xml");
    let Ok(Item::Contact(c)) = &answers::items(&msgs)[0] else {
        panic!("not a contact");
    };
    assert_eq!(c.item_id, Some(id("AAAtAEA=", Some("EQAAABYq"))));
    assert_eq!(c.file_as.as_deref(), Some("SampleContact"));
    assert_eq!(c.display_name.as_deref(), Some("Tanja Plate"));
    assert_eq!(c.given_name.as_deref(), Some("Tanja"));
    assert_eq!(c.surname.as_deref(), Some("Plate"));
    assert_eq!(c.company_name.as_deref(), Some("Northwind Traders"));
    assert_eq!(c.job_title.as_deref(), Some("Project Manager"));
    assert_eq!(
        c.emails,
        [
            Some("tplate@example.com".to_string()),
            Some("tplate@example.com".to_string()),
            None
        ]
    );
    assert_eq!(
        c.phones.get("BusinessPhone").map(String::as_str),
        Some("5625550199")
    );
    let business = &c.addresses["Business"];
    assert_eq!(business.street.as_deref(), Some("12345 67th Ave"));
    assert_eq!(business.city.as_deref(), Some("Whittier"));
    assert_eq!(business.state.as_deref(), Some("CA"));
    // The page writes `t:Country`, which is not the schema's CountryOrRegion: no country.
    assert_eq!(business.country, None);
    assert_eq!(c.notes.as_deref().unwrap_or(""), "");
}

#[test]
fn getitem_of_an_item_tether_does_not_map_is_only_its_id() {
    let (msgs, _) = messages("getitem_task.xml");
    match &answers::items(&msgs)[0] {
        Ok(Item::Other(Some(i))) => assert_eq!(*i, id("AAAtAEA=", Some("EwAAAB"))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn getitem_errors_are_per_item_errors_with_code_and_text() {
    for (file, code, text) in [
        (
            "getitem_contact_error_mime.xml",
            "ErrorUnsupportedMimeConversion",
            "Mime conversion is not supported for this item type.",
        ),
        (
            "getitem_message_error_invalid_property.xml",
            "ErrorInvalidPropertyRequest",
            "Property is not valid for this object type.",
        ),
    ] {
        let (msgs, _) = messages(file);
        let e = answers::items(&msgs).remove(0).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (code, text),
            "{file}"
        );
        assert!(!e.is_conflict() && !e.is_per_rep(), "{file}");
    }
}

#[test]
fn createitem_and_updateitem_answers_give_the_new_id_and_change_key() {
    for (file, expected, server) in [
        (
            "createitem_contact.xml",
            id("AAAtA=", Some("EQAAAB")),
            b(8, 0, 602, 0),
        ),
        (
            "createitem_calendar.xml",
            id("AAAlAFV", Some("DwAAABYA")),
            b(8, 0, 685, 8),
        ),
        (
            "updateitem_contact.xml",
            id("AAAtAE=", Some("EQAAABYx")),
            b(8, 0, 602, 0),
        ),
    ] {
        let (msgs, build) = messages(file);
        assert_eq!(answers::ids(&msgs), vec![Ok(expected)], "{file}");
        assert_eq!(build, Some(server), "{file}");
    }
}

#[test]
fn createitem_success_without_an_item_is_not_taken_for_a_created_id() {
    // Sending a message or accepting a meeting succeeds with an empty Items: there is no id
    // to record, and the reader says so instead of making one up.
    for file in [
        "createitem_message_no_items.xml",
        "createitem_accept_no_items.xml",
    ] {
        let (msgs, _) = messages(file);
        assert_eq!(msgs[0].class, "Success", "{file}");
        let e = answers::ids(&msgs).remove(0).unwrap_err();
        assert_eq!(e.code, "ErrorInvalidResponse", "{file}");
    }
}

#[test]
fn createitem_errors_are_per_item_errors_with_code_and_text() {
    for (file, code, text) in [
        (
            "createitem_contact_error_non_contact_folder.xml",
            "ErrorCannotCreateContactInNonContactFolder",
            "Cannot create a contact in a non-contact Folder.",
        ),
        (
            "createitem_message_error_send_as_denied.xml",
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
        ),
        (
            "createitem_accept_error_item_not_found.xml",
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
    ] {
        let (msgs, _) = messages(file);
        let e = answers::ids(&msgs).remove(0).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (code, text),
            "{file}"
        );
        assert!(!e.is_conflict() && !e.is_per_rep(), "{file}");
    }
}

#[test]
fn deleteitem_answers_give_success_or_item_not_found() {
    let (ok, _) = messages("deleteitem_success.xml");
    assert_eq!(answers::deleted(&ok), vec![Ok(())]);
    let (gone, build) = messages("deleteitem_error_item_not_found.xml");
    let e = answers::deleted(&gone).remove(0).unwrap_err();
    assert_eq!(e.code, "ErrorItemNotFound");
    assert_eq!(
        e.message,
        "The specified object was not found in the store."
    );
    assert_eq!(build, Some(b(8, 0, 595, 0)));
}

#[test]
fn mixed_answer_keeps_each_message_outcome_in_order_and_spots_the_missing_mailbox() {
    let (msgs, build) = messages("exportitems_errors_nonexistent_mailbox.xml");
    let codes: Vec<&str> = msgs.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "NoError",
            "ErrorInvalidChangeKey",
            "ErrorNonExistentMailbox"
        ]
    );
    assert!(!msgs[0].is_error());
    assert!(!msgs[1].error().is_per_rep());
    // A mailbox that does not exist is the rep's problem, not the run's.
    assert!(msgs[2].is_error() && msgs[2].error().is_per_rep());
    assert_eq!(msgs[2].text, "No mailbox with such guid.");
    assert_eq!(build, Some(b(14, 1, 164, 0)));

    let (all_ok, build) = messages("exportitems_success_exchange2010.xml");
    assert_eq!(all_ok.len(), 3);
    assert!(all_ok.iter().all(|m| !m.is_error() && m.code == "NoError"));
    // `t:` prefix, a Version attribute and a default namespace on the header.
    assert_eq!(build, Some(b(14, 1, 139, 0)));
}

#[test]
fn schema_validation_fault_is_a_fault_with_its_code_and_text() {
    let e =
        soap::parse_response(&bytes("updateitem_contact_fault_schema_validation.xml")).unwrap_err();
    assert_eq!(
        e,
        EwsError::Fault {
            code: "ErrorSchemaValidation".into(),
            message: "The request failed schema validation.".into(),
            back_off_ms: None,
        }
    );
    assert!(!e.is_per_rep());
}

#[test]
fn server_busy_fault_gives_the_back_off_the_server_asks_for() {
    let e = soap::parse_response(&bytes("fault_server_busy_backoff.xml")).unwrap_err();
    // The code comes from detail/ResponseCode, not the prefixed faultcode `a:ErrorServerBusy`.
    assert_eq!(
        e,
        EwsError::Fault {
            code: "ErrorServerBusy".into(),
            message: "The server cannot service this request right now. Try again later.".into(),
            back_off_ms: Some(297_749),
        }
    );
}

#[test]
fn autodiscover_answer_without_an_ews_url_setting_is_an_error_not_a_guess() {
    // The documented request asked for display name, DN, server names… but no EWS URL.
    match answers::autodiscover_soap(&bytes("autodiscover_getusersettings_no_ews_url.xml")) {
        Err(EwsError::Autodiscover(m)) => assert!(m.contains("no EWS URL"), "{m}"),
        Ok(Discovered::Url(u)) => panic!("made up {u}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn syncfolderitems_page_reads_updates_creates_read_flags_and_deletes_in_order() {
    let m = only("syncfolderitems_update_creates_readflag_delete.xml");
    let page = answers::sync_page(&m).unwrap();
    assert_eq!(page.sync_state, "H4sIAAAAAAAEAO29B2AcSZY==");
    assert!(page.includes_last);
    let changes: Vec<(ChangeKind, ItemKind, ItemId)> = page
        .changes
        .iter()
        .map(|c| (c.kind, c.item_kind, c.item_id.clone()))
        .collect();
    // Ids as the page prints them, the stray leading spaces included.
    assert_eq!(
        changes,
        [
            (
                ChangeKind::Update,
                ItemKind::Other,
                id(
                    "q04QAAAA==",
                    Some("CQAAABYAAADZGACZQpSgSpyNkexYe2b7AAAAird/")
                )
            ),
            (ChangeKind::Create, ItemKind::Other, id("AQMkAD+", None)),
            (
                ChangeKind::Create,
                ItemKind::Other,
                id("Q04AAAAA==", Some("AAAirbnd"))
            ),
            (
                ChangeKind::ReadFlagChange,
                ItemKind::Other,
                id(" q07AAAAA==", Some("CQAAAA=="))
            ),
            (
                ChangeKind::Delete,
                ItemKind::Other,
                id(" q1AwAAAA==", Some("CQAAAA=="))
            ),
        ]
    );
    let exchange_2013 = build("syncfolderitems_update_creates_readflag_delete.xml");
    assert_eq!(exchange_2013, b(15, 0, 731, 10));
    assert_eq!(exchange_2013.product(), "Exchange Server 2013 before SP1");
    assert!(!exchange_2013.supported());
}

#[test]
fn finditem_idonly_page_lists_every_id() {
    let m = only("finditem_paged_first_page.xml");
    assert_eq!(
        answers::found_ids(&m),
        vec![id("AAMkAGM2...", Some("CQAAABYA...")); 6]
    );
    assert_eq!(build("finditem_paged_first_page.xml"), b(15, 0, 775, 35));
}

#[test]
fn finditem_calendar_answers_give_subject_times_location_and_type() {
    let m = only("finditem_calendarview_exchange2013.xml");
    let events = answers::calendar_view(&m);
    let seen: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> = events
        .iter()
        .map(|e| (e.subject.as_deref().unwrap(), e.start, e.end))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "Contoso devs team meeting",
                at("2013-08-21T19:30:00Z"),
                at("2013-08-21T20:00:00Z")
            ),
            (
                "Daily status meeting",
                at("2013-08-21T20:00:00Z"),
                at("2013-08-21T21:00:00Z")
            ),
            (
                "Lunch with sales team",
                at("2013-08-21T21:30:00Z"),
                at("2013-08-21T22:30:00Z")
            ),
            (
                "Tennis at the club",
                at("2013-08-22T18:00:00Z"),
                at("2013-08-22T19:00:00Z")
            ),
            (
                "Online training webcast",
                at("2013-08-22T21:00:00Z"),
                at("2013-08-22T22:00:00Z")
            ),
        ]
    );
    assert_eq!(events[4].item_id, Some(id("AAMkA", Some("DwAA"))));

    let m = only("finditem_indexed_recurring_master.xml");
    let [master] = answers::calendar_view(&m).try_into().unwrap();
    assert_eq!(master.item_id, Some(id("AAMkADA5...", Some("DwAAABYA..."))));
    assert_eq!(master.subject.as_deref(), Some("Swim Team Practice"));
    assert_eq!(master.start, at("2014-07-02T15:30:00Z"));
    assert_eq!(master.end, at("2014-07-02T17:00:00Z"));
    assert_eq!(
        master.location.as_deref(),
        Some("Neighborhood Swimming Pool")
    );
    assert_eq!(master.item_type, Some(CalendarItemType::RecurringMaster));
}

#[test]
fn recurring_master_answer_gives_its_weekly_pattern_and_numbered_range() {
    use super::model::{Pattern, RangeEnd, Recurrence, parse_recurrence};
    use chrono::{NaiveDate, Weekday};
    let (msgs, build) = messages("getitem_recurring_master_weekly.xml");
    assert_eq!(build, Some(b(15, 0, 893, 10)));
    let item = msgs[0]
        .element
        .path(&[
            (super::xml::NS_M, "Items"),
            (super::xml::NS_T, "CalendarItem"),
        ])
        .unwrap();
    let recurrence = item.child(super::xml::NS_T, "Recurrence").unwrap();
    // The StartDate carries an offset, "2014-03-08-08:00": the date is the 8th.
    assert_eq!(
        parse_recurrence(recurrence),
        Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![Weekday::Sat],
                first_day: None,
            },
            start: NaiveDate::from_ymd_opt(2014, 3, 8).unwrap(),
            end: RangeEnd::Count(10),
        })
    );
    // The documented request asked for no Start or End: no event is made up from the
    // FirstOccurrence's times, the item stays an id.
    assert!(answers::recurring_master(&msgs[0]).is_err());
    match &answers::items(&msgs)[0] {
        Ok(Item::Other(Some(i))) => assert_eq!(*i, id("AAMkAD", Some("DwAAAB"))),
        other => panic!("{other:?}"),
    }
    let (created, _) = messages("createitem_recurring_series.xml");
    assert_eq!(
        answers::ids(&created),
        vec![Ok(id("AAMkAD", Some("DwAAAB")))]
    );
}

#[test]
fn batch_answers_keep_one_outcome_per_item_in_order() {
    let (created, build) = messages("createitem_three_calendar_items.xml");
    assert_eq!(
        answers::ids(&created),
        vec![Ok(id("AAMkA", Some("DwAAA"))); 3]
    );
    // 15.0.847 is Exchange 2013 SP1, the oldest build tether supports.
    let sp1 = build.unwrap();
    assert_eq!(sp1, b(15, 0, 847, 12));
    assert!(sp1.supported());

    let (msgs, _) = messages("getitem_three_calendar_items.xml");
    let events: Vec<_> = answers::items(&msgs)
        .into_iter()
        .map(|r| match r {
            Ok(Item::Event(e)) => e,
            other => panic!("{other:?}"),
        })
        .collect();
    let subjects: Vec<&str> = events.iter().filter_map(|e| e.subject.as_deref()).collect();
    assert_eq!(
        subjects,
        [
            "Review current quarterly deliverables",
            "Food bank delivery",
            "Code Blast"
        ]
    );
    assert_eq!(events[0].location.as_deref(), Some("Local food bank"));
    assert_eq!(events[0].start, at("2014-01-19T18:59:07Z"));
    assert_eq!(events[0].item_type, Some(CalendarItemType::Single));
    // The page escaped its HTML body twice: the text really is "&lt;html&gt;…".
    let body = events[0].body.as_deref().unwrap();
    assert!(body.contains("&lt;html&gt;"), "{body}");
    assert!(body.contains("Wrap up all outstanding deliverables for this quarter"));
    assert_eq!(events[1].item_type, Some(CalendarItemType::RecurringMaster));
    assert_eq!(events[1].location, None);
    let attendees: Vec<(&str, Option<&str>)> = events[2]
        .required_attendees
        .iter()
        .map(|a| (a.mailbox.email.as_str(), a.response.as_deref()))
        .collect();
    assert_eq!(
        attendees,
        [
            ("Mack@contoso.com", Some("Unknown")),
            ("Sadie@contoso.com", Some("Unknown")),
            ("Magdalena@contoso.com", Some("Unknown"))
        ]
    );
    assert_eq!(events[2].end, at("2014-01-21T00:59:08Z"));
}

#[test]
fn autodiscover_redirects_to_another_address_in_soap_and_pox() {
    let soap = answers::autodiscover_soap(&bytes("autodiscover_soap_redirect_address.xml"));
    assert!(
        matches!(&soap, Ok(Discovered::RedirectAddr(a)) if a == "elvin@mail.contoso.com"),
        "{:?}",
        soap.map(|_| ())
    );
    let pox = answers::autodiscover_pox(&bytes("autodiscover_pox_redirect_addr.xml"));
    assert!(
        matches!(&pox, Ok(Discovered::RedirectAddr(a)) if a == "elvin@mail.contoso.com"),
        "{:?}",
        pox.map(|_| ())
    );
}
