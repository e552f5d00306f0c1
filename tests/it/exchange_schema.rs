//! Every request body the client sends and every response body the emulator serves
//! validates against the official messages.xsd (xmllint), and the emulator refuses invalid
//! requests with ErrorSchemaValidation like a real server.

use crate::ews;

use chrono::{NaiveDate, Weekday};
use ews::*;
use tether::exchange::model::{
    CalendarEvent, Contact, PROP_SALESFORCE_ID, Pattern, RangeEnd, Recurrence, WeekIndex,
};
use tether::exchange::soap::{self, RequestHeaders};
use tether::exchange::{FolderRef, xml};

#[tokio::test]
async fn every_client_request_and_emulator_response_validates() {
    let clock = clock();
    // The emulator validates each request with xmllint and faults on any invalid one, so
    // every call below succeeding means every request body validated.
    let emu = emulator(&clock, true).await;
    let client = client(&emu, &clock);
    let folder = client.ensure_sync_folder(CELIA).await.unwrap();
    client.ensure_sync_folder(CELIA).await.unwrap();
    client
        .create_folder(
            CELIA,
            &FolderRef::contacts(),
            "Salesforce_Sync",
            "IPF.Contact",
        )
        .await
        .unwrap();
    client
        .get_folder(CELIA, &FolderRef::calendar())
        .await
        .unwrap();
    let mut c = Contact {
        given_name: Some("Ada".into()),
        surname: Some("Lovelace".into()),
        emails: [Some("ada@x.example".into()), None, None],
        birthday: NaiveDate::from_ymd_opt(1815, 12, 10),
        notes: Some("n".into()),
        ..Contact::default()
    };
    c.phones.insert("MobilePhone".into(), "1".into());
    c.extended.insert(PROP_SALESFORCE_ID.into(), "003xx".into());
    let ids = client
        .create_contacts(CELIA, &FolderRef::from(&folder), &[c.clone(), c.clone()])
        .await
        .unwrap();
    let id = ids[0].clone().unwrap();
    let sync = client
        .sync_folder(CELIA, &FolderRef::from(&folder), None, 1, |_| {})
        .await
        .unwrap();
    assert_eq!(sync.pages, 2);
    let got = client
        .get_contacts(CELIA, std::slice::from_ref(&id))
        .await
        .unwrap();
    let mut changed = got[0].clone().unwrap();
    changed.job_title = Some("Countess".into());
    changed.emails[0] = None;
    client
        .update_contacts(CELIA, &[(changed.item_id.clone().unwrap(), changed)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let mut e = CalendarEvent::new(t("2026-01-12T08:00:00Z"), t("2026-01-12T09:00:00Z"));
    e.subject = Some("Review".into());
    e.start_time_zone = Some("W. Europe Standard Time".into());
    e.recurrence = Some(Recurrence {
        pattern: Pattern::RelativeMonthly {
            interval: 1,
            weekday: Weekday::Mon,
            index: WeekIndex::Second,
        },
        start: NaiveDate::from_ymd_opt(2026, 1, 12).unwrap(),
        end: RangeEnd::EndDate(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()),
    });
    let eid = client.create_events(CELIA, &[e.clone()]).await.unwrap()[0]
        .clone()
        .unwrap();
    let ev = client
        .get_events(CELIA, std::slice::from_ref(&eid))
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let mut moved = ev.clone();
    moved.recurrence = None;
    moved.is_all_day = true;
    client
        .update_events(CELIA, &[(eid.clone(), moved)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    client
        .update_events(CELIA, &[(eid.clone(), ev)])
        .await
        .unwrap();
    let view = client
        .calendar_view(
            CELIA,
            t("2026-01-01T00:00:00Z"),
            t("2026-04-01T00:00:00Z"),
            100,
        )
        .await
        .unwrap();
    client
        .recurring_master(CELIA, view[0].item_id.as_ref().unwrap())
        .await
        .unwrap();
    // Error responses too.
    client
        .calendar_view(
            CELIA,
            t("2026-01-01T00:00:00Z"),
            t("2029-01-01T00:00:00Z"),
            10,
        )
        .await
        .unwrap_err();
    client
        .delete_items(
            CELIA,
            &[
                id,
                eid,
                tether::exchange::model::ItemId::new("AAMkZ29uZQ==", None),
            ],
        )
        .await
        .unwrap();
    let bodies = emu.bodies();
    assert!(bodies.len() > 30, "{}", bodies.len());
    validate_all(&bodies);
}

#[test]
fn request_headers_validate() {
    let headers = soap::header_elements(&RequestHeaders {
        server_version: "Exchange2013_SP1",
        impersonate: Some(CELIA),
        time_zone: Some("W. Europe Standard Time"),
    });
    assert_eq!(headers.len(), 3);
    let mut all = headers;
    // And the header the emulator answers with.
    all.push(soap::server_version_info());
    validate_all(&all);
}

#[tokio::test]
async fn emulator_answers_schema_validation_fault_for_invalid_requests() {
    let clock = clock();
    let emu = emulator(&clock, true).await;
    let headers = RequestHeaders {
        server_version: "Exchange2013_SP1",
        impersonate: Some(CELIA),
        time_zone: None,
    };
    // Wrong element order: FolderIds before FolderShape.
    let wrong_order = "<m:GetFolder><m:FolderIds><t:DistinguishedFolderId Id=\"contacts\"/></m:FolderIds><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape></m:GetFolder>";
    // Unknown element.
    let unknown = "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id=\"contacts\"/></m:FolderIds><m:Bogus/></m:GetFolder>";
    // MaxChangesReturned above 512.
    let too_many = "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id=\"contacts\"/></m:SyncFolderId><m:MaxChangesReturned>513</m:MaxChangesReturned></m:SyncFolderItems>";
    let http = reqwest::Client::new();
    for body in [wrong_order, unknown, too_many] {
        let resp = http
            .post(emu.ews_url())
            .basic_auth(SVC, Some(PASSWORD))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("X-AnchorMailbox", CELIA)
            .body(soap::request_envelope(&headers, body))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 500);
        let bytes = resp.bytes().await.unwrap();
        let err = soap::parse_response(&bytes).unwrap_err();
        assert_eq!(err.code(), Some("ErrorSchemaValidation"), "{body}");
    }
    // And a valid one goes through.
    let ok = "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id=\"contacts\"/></m:FolderIds></m:GetFolder>";
    let resp = http
        .post(emu.ews_url())
        .basic_auth(SVC, Some(PASSWORD))
        .header("X-AnchorMailbox", CELIA)
        .body(soap::request_envelope(&headers, ok))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let op = soap::parse_response(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(op.name, "GetFolderResponse");
    assert_eq!(op.ns, xml::NS_M);
}

/// The checker itself bites: a body with elements out of order fails validation.
#[test]
#[should_panic(expected = "schema validation failed")]
fn validation_helper_rejects_wrong_order() {
    validate_all(&[soap::standalone(
        "<m:GetFolder><m:FolderIds><t:DistinguishedFolderId Id=\"contacts\"/></m:FolderIds><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape></m:GetFolder>",
    )]);
}
