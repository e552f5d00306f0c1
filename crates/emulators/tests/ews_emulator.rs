//! The EWS emulator against requests written from Microsoft's documentation (raw SOAP, no
//! client): error codes per operation, Deleted Items, distinguished folders, response shapes,
//! time zones, sync states and schema validation behave as Exchange's do.

use std::path::PathBuf;
use tether_emulators::exchange::model::Item;
use tether_emulators::exchange::{Emulator, EmulatorOptions, ImpersonationScope, RunningEmulator};

const REP: &str = "rep@corp.example";
const SVC: &str = "svc@corp.example";
const PASSWORD: &str = "pw-for-tests";

fn schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/ews-schema/messages.xsd")
}

async fn emulator(validate: bool) -> RunningEmulator {
    let emu = Emulator::start(EmulatorOptions {
        schema: validate.then(schema),
        ..EmulatorOptions::default()
    })
    .await
    .expect("emulator starts");
    emu.add_service_account(SVC, PASSWORD, ImpersonationScope::All);
    emu.add_mailbox(REP, None);
    emu
}

/// Posts one operation for REP (impersonated), with an optional TimeZoneContext; returns the
/// HTTP status and the answer.
async fn call_in(emu: &RunningEmulator, zone: Option<&str>, op: &str) -> (u16, String) {
    let tz = zone
        .map(|z| {
            format!(r#"<t:TimeZoneContext><t:TimeZoneDefinition Id="{z}"/></t:TimeZoneContext>"#)
        })
        .unwrap_or_default();
    let envelope = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/><t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{REP}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>{tz}</soap:Header><soap:Body>{op}</soap:Body></soap:Envelope>"#
    );
    let answer = reqwest::Client::new()
        .post(emu.ews_url())
        .basic_auth(SVC, Some(PASSWORD))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("X-AnchorMailbox", REP)
        .body(envelope)
        .send()
        .await
        .expect("emulator answers");
    let status = answer.status().as_u16();
    (status, answer.text().await.expect("answer body"))
}

async fn call(emu: &RunningEmulator, op: &str) -> (u16, String) {
    call_in(emu, None, op).await
}

/// The response codes of the answer's messages, in order.
fn codes(answer: &str) -> Vec<String> {
    answer
        .split("<m:ResponseCode>")
        .skip(1)
        .filter_map(|s| {
            s.split_once("</m:ResponseCode>")
                .map(|(c, _)| c.to_string())
        })
        .collect()
}

/// The value of `attr` on the first `element` in the answer.
fn attr(answer: &str, element: &str, attr: &str) -> Option<String> {
    let at = answer.find(&format!("<{element} "))?;
    let rest = &answer[at..];
    let rest = &rest[..rest.find('>')?];
    let v = rest.split_once(&format!(" {attr}=\""))?.1;
    Some(v[..v.find('"')?].to_string())
}

fn get_folder(folder: &str) -> String {
    format!(
        "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>{folder}</m:FolderIds></m:GetFolder>"
    )
}

async fn create_contacts_folder(emu: &RunningEmulator, name: &str) -> String {
    let (_, answer) = call(
        emu,
        &format!(
            r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>{name}</t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    attr(&answer, "t:FolderId", "Id").expect("the new folder's id")
}

async fn create_contact(emu: &RunningEmulator, folder_id: &str, given: &str) -> String {
    let (_, answer) = call(
        emu,
        &format!(
            r#"<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="{folder_id}"/></m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>{given}</t:GivenName><t:CompanyName>Analytical Engines</t:CompanyName><t:Surname>Lovelace</t:Surname></t:Contact></m:Items></m:CreateItem>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    attr(&answer, "t:ItemId", "Id").expect("the new item's id")
}

#[tokio::test]
async fn get_folder_of_a_missing_folder_answers_error_item_not_found() {
    let emu = emulator(false).await;
    let (status, answer) = call(&emu, &get_folder(r#"<t:FolderId Id="AAMkAGdvbmU="/>"#)).await;
    assert_eq!(status, 200);
    assert_eq!(codes(&answer), ["ErrorItemNotFound"], "{answer}");
}

#[tokio::test]
async fn create_folder_under_a_missing_parent_answers_error_parent_folder_not_found() {
    let emu = emulator(false).await;
    let (_, answer) = call(
        &emu,
        r#"<m:CreateFolder><m:ParentFolderId><t:FolderId Id="AAMkAGdvbmU="/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>Salesforce_Sync</t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>"#,
    )
    .await;
    assert_eq!(codes(&answer), ["ErrorParentFolderNotFound"], "{answer}");
}

#[tokio::test]
async fn sync_folder_items_on_a_missing_folder_answers_error_sync_folder_not_found() {
    let emu = emulator(false).await;
    let (_, answer) = call(
        &emu,
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:FolderId Id="AAMkAGdvbmU="/></m:SyncFolderId><m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#,
    )
    .await;
    assert_eq!(codes(&answer), ["ErrorSyncFolderNotFound"], "{answer}");
}

#[tokio::test]
async fn the_distinguished_folders_root_msgfolderroot_contacts_calendar_deleteditems_inbox_exist() {
    let emu = emulator(false).await;
    let names = [
        "root",
        "msgfolderroot",
        "contacts",
        "calendar",
        "deleteditems",
        "inbox",
    ];
    let ids: String = names
        .iter()
        .map(|n| format!(r#"<t:DistinguishedFolderId Id="{n}"/>"#))
        .collect();
    let (_, answer) = call(&emu, &get_folder(&ids)).await;
    assert_eq!(codes(&answer), ["NoError"; 6], "{answer}");
    for n in names {
        assert!(emu.folder_id(REP, n).is_some(), "{n}");
    }
    // msgfolderroot sits under the mailbox root; the well-known folders under msgfolderroot.
    let root = emu.folder_id(REP, "root").unwrap();
    let top = emu.folder_id(REP, "msgfolderroot").unwrap();
    assert_eq!(emu.folder_parent(REP, &top), Some(root));
    for n in ["contacts", "calendar", "deleteditems", "inbox"] {
        let id = emu.folder_id(REP, n).unwrap();
        assert_eq!(emu.folder_parent(REP, &id).as_ref(), Some(&top), "{n}");
    }
}

#[tokio::test]
async fn a_folder_deleted_through_ews_appears_under_deleted_items_with_its_id() {
    let emu = emulator(false).await;
    let folder = create_contacts_folder(&emu, "Salesforce_Sync").await;
    let contact = create_contact(&emu, &folder, "Ada").await;
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:DeleteFolder DeleteType="MoveToDeletedItems"><m:FolderIds><t:FolderId Id="{folder}"/></m:FolderIds></m:DeleteFolder>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    // Same id, now under Deleted Items, contents kept.
    let (_, answer) = call(
        &emu,
        &get_folder(&format!(r#"<t:FolderId Id="{folder}"/>"#)),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    let bin = emu.folder_id(REP, "deleteditems").unwrap();
    assert_eq!(
        attr(&answer, "t:ParentFolderId", "Id").as_deref(),
        Some(bin.as_str())
    );
    assert!(emu.item(REP, &contact).is_some());
    // Gone from under Contacts: FindFolder there no longer finds it.
    let (_, answer) = call(
        &emu,
        r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="folder:DisplayName"/><t:FieldURIOrConstant><t:Constant Value="Salesforce_Sync"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindFolder>"#,
    )
    .await;
    assert_eq!(
        attr(&answer, "m:RootFolder", "TotalItemsInView").as_deref(),
        Some("0"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_hard_deleted_folder_is_gone_with_its_items() {
    let emu = emulator(false).await;
    let folder = create_contacts_folder(&emu, "Scratch").await;
    let contact = create_contact(&emu, &folder, "Ada").await;
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:DeleteFolder DeleteType="HardDelete"><m:FolderIds><t:FolderId Id="{folder}"/></m:FolderIds></m:DeleteFolder>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    let (_, answer) = call(
        &emu,
        &get_folder(&format!(r#"<t:FolderId Id="{folder}"/>"#)),
    )
    .await;
    assert_eq!(codes(&answer), ["ErrorItemNotFound"], "{answer}");
    assert!(emu.item(REP, &contact).is_none());
    // A distinguished folder cannot be deleted.
    let (_, answer) = call(
        &emu,
        r#"<m:DeleteFolder DeleteType="HardDelete"><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:DeleteFolder>"#,
    )
    .await;
    assert_eq!(
        codes(&answer),
        ["ErrorDeleteDistinguishedFolder"],
        "{answer}"
    );
}

#[tokio::test]
async fn delete_item_move_to_deleted_items_moves_it_there_and_hard_delete_removes() {
    let emu = emulator(false).await;
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    let bin = emu.folder_id(REP, "deleteditems").unwrap();
    let moved = create_contact(&emu, &contacts, "Ada").await;
    let removed = create_contact(&emu, &contacts, "Grace").await;
    let delete = |id: &str, how: &str| {
        format!(
            r#"<m:DeleteItem DeleteType="{how}"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:DeleteItem>"#
        )
    };
    let (_, answer) = call(&emu, &delete(&moved, "MoveToDeletedItems")).await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    let (_, answer) = call(&emu, &delete(&removed, "HardDelete")).await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    assert!(emu.items(REP, &contacts).is_empty());
    // The moved contact is in Deleted Items, under the new id an item gets in a new folder;
    // the hard-deleted one is nowhere.
    let in_bin = emu.items(REP, &bin);
    assert_eq!(in_bin.len(), 1);
    let Item::Contact(c) = &in_bin[0] else {
        panic!("{in_bin:?}")
    };
    assert_eq!(c.given_name.as_deref(), Some("Ada"));
    let get = |id: &str| {
        format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        )
    };
    let new_id = c.item_id.as_ref().unwrap().id.clone();
    let (_, answer) = call(&emu, &get(&new_id)).await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    for gone in [&moved, &removed] {
        let (_, answer) = call(&emu, &get(gone)).await;
        assert_eq!(codes(&answer), ["ErrorItemNotFound"], "{answer}");
    }
}

#[tokio::test]
async fn get_item_with_id_only_returns_no_properties() {
    let emu = emulator(false).await;
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    let id = create_contact(&emu, &contacts, "Ada").await;
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    let items = answer
        .split_once("<m:Items>")
        .and_then(|(_, r)| r.split_once("</m:Items>"))
        .map(|(i, _)| i)
        .expect("an Items element");
    assert!(
        items.starts_with("<t:Contact><t:ItemId ") && items.ends_with("/></t:Contact>"),
        "only the id comes back: {items}"
    );
}

#[tokio::test]
async fn id_only_with_additional_properties_returns_exactly_those() {
    let emu = emulator(false).await;
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    let id = create_contact(&emu, &contacts, "Ada").await;
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="contacts:GivenName"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        ),
    )
    .await;
    assert!(
        answer.contains("<t:GivenName>Ada</t:GivenName>"),
        "{answer}"
    );
    for absent in [
        "t:Surname",
        "t:CompanyName",
        "t:ItemClass",
        "t:LastModifiedTime",
    ] {
        assert!(
            !answer.contains(absent),
            "{absent} was not asked for: {answer}"
        );
    }
    // Default returns the contact's properties.
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        ),
    )
    .await;
    assert!(
        answer.contains("<t:Surname>Lovelace</t:Surname>"),
        "{answer}"
    );
}

#[tokio::test]
async fn sync_folder_items_without_a_sync_state_lists_only_current_items_as_creates() {
    let emu = emulator(false).await;
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    let kept = create_contact(&emu, &contacts, "Ada").await;
    let gone = create_contact(&emu, &contacts, "Grace").await;
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{gone}"/></m:ItemIds></m:DeleteItem>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    let (_, answer) = call(
        &emu,
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="contacts"/></m:SyncFolderId><m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#,
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    assert_eq!(answer.matches("<t:Create>").count(), 1, "{answer}");
    assert!(answer.contains(&kept));
    assert!(!answer.contains("<t:Delete>"), "{answer}");
}

#[tokio::test]
async fn a_request_with_an_unknown_element_gets_the_schema_validation_fault() {
    let emu = emulator(true).await;
    let (status, answer) = call(
        &emu,
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape><t:Colour>Blue</t:Colour></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder>"#,
    )
    .await;
    assert_eq!(status, 500, "{answer}");
    assert!(answer.contains("<s:Fault>"), "{answer}");
    assert!(
        answer.contains(">ErrorSchemaValidation</e:ResponseCode>"),
        "{answer}"
    );
}

/// FindItem in Contacts with this restriction (and optional sort and paging view).
fn find_contacts(restriction: &str, rest: &str) -> String {
    let restriction = if restriction.is_empty() {
        String::new()
    } else {
        format!("<m:Restriction>{restriction}</m:Restriction>")
    };
    let (view, sort) = rest.split_once('|').unwrap_or((rest, ""));
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="contacts:GivenName"/></t:AdditionalProperties></m:ItemShape>{view}{restriction}{sort}<m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindItem>"#
    )
}

/// The given names in a FindItem answer, in order.
fn given_names(answer: &str) -> Vec<String> {
    answer
        .split("<t:GivenName>")
        .skip(1)
        .filter_map(|s| s.split_once("</t:GivenName>").map(|(n, _)| n.to_string()))
        .collect()
}

fn compare(op: &str, field: &str, value: &str) -> String {
    format!(
        r#"<t:{op}><t:FieldURI FieldURI="{field}"/><t:FieldURIOrConstant><t:Constant Value="{value}"/></t:FieldURIOrConstant></t:{op}>"#
    )
}

async fn four_contacts() -> RunningEmulator {
    let emu = emulator(true).await;
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    for name in ["Dora", "Ada", "Cleo", "Bea"] {
        create_contact(&emu, &contacts, name).await;
    }
    emu
}

#[tokio::test]
async fn find_item_restrictions_compare_contain_and_combine() {
    let emu = four_contacts().await;
    let sort = r#"<m:SortOrder><t:FieldOrder Order="Ascending"><t:FieldURI FieldURI="contacts:GivenName"/></t:FieldOrder></m:SortOrder>"#;
    let cases = [
        (compare("IsEqualTo", "contacts:GivenName", "ada"), vec!["Ada"]),
        (compare("IsGreaterThan", "contacts:GivenName", "Bea"), vec!["Cleo", "Dora"]),
        (
            compare("IsGreaterThanOrEqualTo", "contacts:GivenName", "Bea"),
            vec!["Bea", "Cleo", "Dora"],
        ),
        (compare("IsLessThan", "contacts:GivenName", "Bea"), vec!["Ada"]),
        (compare("IsLessThanOrEqualTo", "contacts:GivenName", "Bea"), vec!["Ada", "Bea"]),
        (
            r#"<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="contacts:GivenName"/><t:Constant Value="E"/></t:Contains>"#.to_string(),
            vec!["Bea", "Cleo"],
        ),
        (
            format!(
                "<t:Or>{}{}</t:Or>",
                compare("IsEqualTo", "contacts:GivenName", "Ada"),
                compare("IsEqualTo", "contacts:GivenName", "Dora")
            ),
            vec!["Ada", "Dora"],
        ),
        (
            format!(
                "<t:And>{}<t:Not>{}</t:Not></t:And>",
                compare("IsGreaterThan", "contacts:GivenName", "A"),
                compare("IsEqualTo", "contacts:GivenName", "Cleo")
            ),
            vec!["Ada", "Bea", "Dora"],
        ),
    ];
    for (restriction, expected) in cases {
        let (_, answer) = call(&emu, &find_contacts(&restriction, &format!("|{sort}"))).await;
        assert_eq!(codes(&answer), ["NoError"], "{restriction}: {answer}");
        assert_eq!(given_names(&answer), expected, "{restriction}");
    }
}

#[tokio::test]
async fn find_item_refuses_a_restriction_it_cannot_evaluate_instead_of_matching_nothing() {
    let emu = four_contacts().await;
    let restriction = compare("IsEqualTo", "item:DateTimeReceived", "2026-01-01T00:00:00Z");
    let (status, answer) = call(&emu, &find_contacts(&restriction, "")).await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer.contains(">ErrorUnsupportedPathForQuery</e:ResponseCode>"),
        "{answer}"
    );
}

#[tokio::test]
async fn find_item_sorts_and_pages_with_an_honest_includes_last_item_in_range() {
    let emu = four_contacts().await;
    let sort = r#"<m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="contacts:GivenName"/></t:FieldOrder></m:SortOrder>"#;
    let view = |offset: usize| {
        format!(
            r#"<m:IndexedPageItemView MaxEntriesReturned="3" Offset="{offset}" BasePoint="Beginning"/>|{sort}"#
        )
    };
    let (_, first) = call(&emu, &find_contacts("", &view(0))).await;
    assert_eq!(given_names(&first), ["Dora", "Cleo", "Bea"], "{first}");
    assert_eq!(
        attr(&first, "m:RootFolder", "IncludesLastItemInRange").as_deref(),
        Some("false")
    );
    assert_eq!(
        attr(&first, "m:RootFolder", "IndexedPagingOffset").as_deref(),
        Some("3")
    );
    assert_eq!(
        attr(&first, "m:RootFolder", "TotalItemsInView").as_deref(),
        Some("4")
    );
    let (_, second) = call(&emu, &find_contacts("", &view(3))).await;
    assert_eq!(given_names(&second), ["Ada"], "{second}");
    assert_eq!(
        attr(&second, "m:RootFolder", "IncludesLastItemInRange").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn autodiscover_get_user_settings_answers_every_requested_setting_or_a_user_setting_error() {
    let emu = emulator(false).await;
    let envelope = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{REP}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting><a:Setting>UserDisplayName</a:Setting><a:Setting>ExternalMailboxServer</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>"#
    );
    let answer = reqwest::Client::new()
        .post(format!("{}/autodiscover/autodiscover.svc", emu.url()))
        .basic_auth(SVC, Some(PASSWORD))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(envelope)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for setting in ["ExternalEwsUrl", "InternalEwsUrl", "UserDisplayName"] {
        assert!(
            answer.contains(&format!("<Name>{setting}</Name><Value>")),
            "{setting}: {answer}"
        );
    }
    assert!(
        answer.contains("<UserSettingError><ErrorCode>InvalidSetting</ErrorCode>")
            && answer.contains("<SettingName>ExternalMailboxServer</SettingName>"),
        "{answer}"
    );
}

#[tokio::test]
async fn create_item_refuses_a_property_it_does_not_store_instead_of_dropping_it() {
    let emu = emulator(true).await;
    let (_, answer) = call(
        &emu,
        r#"<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>Ada</t:GivenName><t:SpouseName>William</t:SpouseName></t:Contact></m:Items></m:CreateItem>"#,
    )
    .await;
    assert_eq!(codes(&answer), ["ErrorInvalidPropertySet"], "{answer}");
    assert!(answer.contains("SpouseName"), "{answer}");
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    assert!(emu.items(REP, &contacts).is_empty(), "nothing half-stored");
}

/// Creates an all-day event on 2026-03-10 in `zone` (times local to the TimeZoneContext, as
/// Outlook writes them) and reads it back in UTC.
async fn all_day_event_in(zone: &str) -> String {
    let emu = emulator(true).await;
    let (status, answer) = call_in(
        &emu,
        Some(zone),
        &format!(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>Trade fair</t:Subject><t:Start>2026-03-10T00:00:00</t:Start><t:End>2026-03-11T00:00:00</t:End><t:IsAllDayEvent>true</t:IsAllDayEvent><t:StartTimeZone Id="{zone}"/><t:EndTimeZone Id="{zone}"/></t:CalendarItem></m:Items></m:CreateItem>"#
        ),
    )
    .await;
    assert_eq!(
        (status, codes(&answer)),
        (200, vec!["NoError".to_string()]),
        "{answer}"
    );
    let id = attr(&answer, "t:ItemId", "Id").unwrap();
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="calendar:Start"/><t:FieldURI FieldURI="calendar:End"/><t:FieldURI FieldURI="calendar:IsAllDayEvent"/><t:FieldURI FieldURI="calendar:StartTimeZone"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    assert!(
        answer.contains("<t:IsAllDayEvent>true</t:IsAllDayEvent>"),
        "{answer}"
    );
    assert_eq!(
        attr(&answer, "t:StartTimeZone", "Id").as_deref(),
        Some(zone),
        "{answer}"
    );
    answer
}

#[tokio::test]
async fn an_all_day_event_in_taipei_standard_time_is_stored_and_returned() {
    // Taipei is UTC+8: local midnight of 10 March is 16:00 UTC on the 9th.
    let answer = all_day_event_in("Taipei Standard Time").await;
    assert!(
        answer.contains("<t:Start>2026-03-09T16:00:00Z</t:Start>"),
        "{answer}"
    );
    assert!(
        answer.contains("<t:End>2026-03-10T16:00:00Z</t:End>"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_all_day_event_in_e_africa_standard_time_is_stored_and_returned() {
    // Nairobi is UTC+3.
    let answer = all_day_event_in("E. Africa Standard Time").await;
    assert!(
        answer.contains("<t:Start>2026-03-09T21:00:00Z</t:Start>"),
        "{answer}"
    );
    assert!(
        answer.contains("<t:End>2026-03-10T21:00:00Z</t:End>"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_sync_state_the_server_cannot_read_answers_error_invalid_sync_state_data() {
    let emu = emulator(true).await;
    let sync = |folder: &str, state: &str| {
        format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="{folder}"/></m:SyncFolderId><m:SyncState>{state}</m:SyncState><m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#
        )
    };
    let (_, answer) = call(&emu, &sync("contacts", "AEbJ94eMOAAA=")).await;
    assert_eq!(codes(&answer), ["ErrorInvalidSyncStateData"], "{answer}");
    assert!(answer.contains(r#"ResponseClass="Error""#), "{answer}");
    // A state the server issued for another folder is no state for this one.
    let (_, first) = call(
        &emu,
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId><m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#,
    )
    .await;
    let state = first
        .split_once("<m:SyncState>")
        .and_then(|(_, r)| r.split_once("</m:SyncState>"))
        .map(|(s, _)| s.to_string())
        .expect("a sync state");
    let (_, answer) = call(&emu, &sync("contacts", &state)).await;
    assert_eq!(codes(&answer), ["ErrorInvalidSyncStateData"], "{answer}");
}

/// The emulators judge tether's clients, so they must not share their code: the crate
/// depends on no tether package but the published facts, and no source file names tether.
#[test]
fn the_emulators_depend_on_no_crate_holding_a_client_and_import_no_client_code() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let tether_deps: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| name.starts_with("tether"))
        .collect();
    assert_eq!(tether_deps, ["tether-spec"], "{manifest}");
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in ["tether::", "use tether;", "extern crate tether"] {
                    assert!(!text.contains(needle), "{} names {needle}", path.display());
                }
            }
        }
    }
}

/// The text of the first `element` in the answer.
fn text(answer: &str, element: &str) -> Option<String> {
    let rest = answer.split_once(&format!("<{element}>"))?.1;
    Some(rest.split_once(&format!("</{element}>"))?.0.to_string())
}

#[tokio::test]
async fn date_time_created_is_set_at_create_kept_in_deleted_items_and_searchable() {
    let emu = emulator(true).await;
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    let id = create_contact(&emu, &contacts, "Ada").await;
    let shape = r#"<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:DateTimeCreated"/></t:AdditionalProperties></m:ItemShape>"#;
    let (_, answer) = call(
        &emu,
        &format!(r#"<m:GetItem>{shape}<m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    let created = text(&answer, "t:DateTimeCreated").expect("DateTimeCreated");
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:DeleteItem DeleteType="MoveToDeletedItems"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:DeleteItem>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    let find = |since: &str| {
        format!(
            r#"<m:FindItem Traversal="Shallow">{shape}<m:Restriction>{}</m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="deleteditems"/></m:ParentFolderIds></m:FindItem>"#,
            compare("IsGreaterThanOrEqualTo", "item:DateTimeCreated", since)
        )
    };
    let (_, answer) = call(&emu, &find(&created)).await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    assert_eq!(
        text(&answer, "t:DateTimeCreated").as_deref(),
        Some(created.as_str()),
        "kept when moved to Deleted Items: {answer}"
    );
    let later: chrono::DateTime<chrono::Utc> = created.parse().unwrap();
    let later =
        (later + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, answer) = call(&emu, &find(&later)).await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    assert!(
        !answer.contains("<t:Contact>"),
        "created before {later}: {answer}"
    );
}

/// Exchange validates a request against messages.xsd before it runs it, whether or not
/// this emulator has the schema file: members out of ContactItemType's order fail the
/// request as a whole, nothing is stored.
#[tokio::test]
async fn a_contact_with_members_out_of_schema_order_gets_the_schema_validation_fault() {
    let emu = emulator(false).await;
    let (status, answer) = call(
        &emu,
        r#"<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId><m:Items><t:Contact><t:Surname>Lovelace</t:Surname><t:GivenName>Ada</t:GivenName></t:Contact></m:Items></m:CreateItem>"#,
    )
    .await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer.contains(">ErrorSchemaValidation</e:ResponseCode>"),
        "{answer}"
    );
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    assert!(emu.items(REP, &contacts).is_empty(), "nothing stored");
}

/// EmailAddressKeyType allows EmailAddress1..3 only; an address under another key was
/// answered NoError and lost.
#[tokio::test]
async fn an_email_address_under_a_key_the_schema_does_not_define_is_refused_not_dropped() {
    let emu = emulator(false).await;
    let (status, answer) = call(
        &emu,
        r#"<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>Ada</t:GivenName><t:EmailAddresses><t:Entry Key="EmailAddress4">ada@example.com</t:Entry></t:EmailAddresses></t:Contact></m:Items></m:CreateItem>"#,
    )
    .await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer.contains(">ErrorSchemaValidation</e:ResponseCode>"),
        "{answer}"
    );
    let contacts = emu.folder_id(REP, "contacts").unwrap();
    assert!(emu.items(REP, &contacts).is_empty(), "nothing stored");
}

/// PhoneNumberKeyType has BusinessMobile, IPPhone, Mms and Msn too; UpdateItem refused
/// them with ErrorInvalidPropertySet.
#[tokio::test]
async fn update_item_sets_a_phone_number_under_every_key_types_xsd_defines() {
    let emu = emulator(true).await;
    let folder = emu.folder_id(REP, "contacts").unwrap();
    let id = create_contact(&emu, &folder, "Ada").await;
    let ck = match emu.item(REP, &id) {
        Some(Item::Contact(c)) => c.item_id.and_then(|i| i.change_key).unwrap(),
        other => panic!("{other:?}"),
    };
    let (_, answer) = call(
        &emu,
        &format!(
            r#"<m:UpdateItem ConflictResolution="AutoResolve" MessageDisposition="SaveOnly"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:Updates><t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessMobile"/><t:Contact><t:PhoneNumbers><t:Entry Key="BusinessMobile">+44 20 7946 0000</t:Entry></t:PhoneNumbers></t:Contact></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ),
    )
    .await;
    assert_eq!(codes(&answer), ["NoError"], "{answer}");
    match emu.item(REP, &id) {
        Some(Item::Contact(c)) => assert_eq!(
            c.phones.get("BusinessMobile").map(String::as_str),
            Some("+44 20 7946 0000")
        ),
        other => panic!("{other:?}"),
    }
}
