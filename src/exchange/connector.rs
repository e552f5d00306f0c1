//! The engine's mail side over EWS: [`EwsConnector`] implements
//! [`MailConnector`](crate::engine::connector::MailConnector) with an [`EwsClient`].
//!
//! - Change feed: one SyncFolderItems per call (ids only, ≤ 512 changes), then GetItem in
//!   batches for the created and updated items, since SyncFolderItems cannot return bodies. A
//!   page without creates or updates costs that one call. The cursor carries the folder id
//!   with the SyncState (`<folder id> <SyncState>`), so reading Salesforce_Sync never needs a
//!   FindFolder once the folder is known; the first page of each read costs one GetFolder
//!   more, which tells a folder the rep deleted (gone, or moved into Deleted Items with its
//!   id) from one still under Contacts: a deleted one is `RepError::FolderMissing`, and the
//!   engine creates Salesforce_Sync again.
//! - Writes: CreateItem / UpdateItem / DeleteItem in batches (the client's batch size, at
//!   most 50). Every created item carries `tether.SalesforceId`. Updates overlay the mapped
//!   properties on the item as it is now (so unmapped properties such as categories or a
//!   middle name survive) and send the ChangeKey tether last read: an edit made since comes
//!   back as a conflict, reported per record as retryable, and the next cycle reads the edit
//!   and decides again.
//! - Per-rep errors (ErrorImpersonateUserDenied, ErrorNonExistentMailbox) become `RepError`.
//! - An event tether cannot date (all-day, in a zone CLDR's table does not know, or with no
//!   zone in the answer) is never dated in UTC: a write fails per record, a read fails the
//!   rep's calendar read with the item and the zone named (nothing is taken as deleted).
//! - Organizers and attendees known only by an Exchange-internal address (RoutingType EX)
//!   count as unresolved: no email, so no Salesforce match is made from them.

use super::client::{EwsClient, FolderRef, ItemResult};
use super::error::{self, EwsError, ItemError, MailboxProblem};
use super::model::{
    self, ADDRESS_KEYS, ADDRESS_PARTS, Attendee, CalendarEvent, Contact as EwsContact, EMAIL_KEYS,
    FreeBusy, ItemId, MailboxAddress, PROP_SALESFORCE_ID, Sensitivity,
};
use crate::engine::connector::{
    CallError, ErrorKind, EventWindow, Folder, FolderMarker, FolderPage, MailChange, MailConnector,
    MailCreate, MailItem, MailRef, Mailbox, MailboxMarker, Outcome, RecordError, Refusal, RepError,
};
use crate::mail::{ContactMappings, undatable_read, undatable_write};
use crate::model::rrule;
use crate::model::{
    Contact, EffectiveMapping, Event, EventTime, ObjectKind, Record, Recurrence, ShowAs,
};
use crate::mutex::lock;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SYNC_FOLDER: &str = "Salesforce_Sync";
/// SyncFolderItems' largest page.
const PAGE: u16 = 512;

/// The mail side of the engine over EWS.
pub struct EwsConnector {
    client: EwsClient,
    contact_mappings: ContactMappings,
    /// Windows zone new all-day events and series are created in.
    time_zone: String,
    /// Salesforce_Sync folder id per mailbox (found or created this run).
    folders: Mutex<HashMap<String, String>>,
    /// The Salesforce_Sync folder id per mailbox whose read is under way, checked at its
    /// first page to be neither gone nor in Deleted Items.
    checked: Mutex<HashMap<String, String>>,
    /// ChangeKey per item id as last read or written: what an update is based on.
    change_keys: Mutex<HashMap<String, String>>,
    /// The marker new Salesforce_Sync folders are created with (encoded).
    marker: Mutex<Option<String>>,
    /// The marker on each mailbox's Salesforce_Sync as last read with the folder.
    markers: Mutex<HashMap<String, FolderMarker>>,
}

impl std::fmt::Debug for EwsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsConnector")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn call_error(e: &EwsError, ambiguous: bool) -> CallError {
    let code = e.code().unwrap_or(match e {
        EwsError::Transport(_) => "TRANSPORT",
        EwsError::Unauthorized(_) => "UNAUTHORIZED",
        EwsError::Http { .. } => "HTTP",
        EwsError::Xml(_) => "INVALID_RESPONSE",
        EwsError::Autodiscover(_) => "AUTODISCOVER",
        EwsError::Token(_) => "TOKEN",
        _ => "EWS",
    });
    let retryable = matches!(
        e,
        EwsError::Transport(_) | EwsError::Http { .. } | EwsError::Fault { .. }
    );
    let kind = e.kind();
    CallError {
        kind,
        code: code.to_string(),
        message: e.to_string(),
        retryable,
        // A transport failure after the request left may have created the items.
        ambiguous: ambiguous && matches!(e, EwsError::Transport(_) | EwsError::Http { .. }),
        hint: error::hint(kind, retryable).into(),
    }
}

fn rep_error(e: EwsError) -> RepError {
    let refusal = |problem| Refusal {
        code: e.code().unwrap_or_default().to_string(),
        message: e.to_string(),
        hint: error::mailbox_hint(problem).into(),
    };
    match e.code() {
        _ if e.is_folder_missing() => {
            RepError::folder_missing(e.code().unwrap_or_default(), &e.to_string())
        }
        Some("ErrorInvalidSyncStateData") => {
            RepError::cursor_expired("ErrorInvalidSyncStateData", &e.to_string())
        }
        code => match code.and_then(error::mailbox_problem) {
            Some(p @ MailboxProblem::ImpersonationDenied) => {
                RepError::ImpersonationDenied(refusal(p))
            }
            Some(p @ MailboxProblem::NoMailbox) => RepError::NoMailbox(refusal(p)),
            // Moving, or its store down: this rep waits for the next run.
            Some(p @ MailboxProblem::Unavailable) => RepError::Call(CallError {
                retryable: true,
                hint: error::mailbox_hint(p).into(),
                ..call_error(&e, false)
            }),
            None => RepError::Call(call_error(&e, false)),
        },
    }
}

/// The folder tether syncs through is not there (found missing before any call about it).
fn sync_folder_missing() -> RepError {
    RepError::folder_missing(
        "ErrorFolderNotFound",
        &format!("the {SYNC_FOLDER} folder does not exist"),
    )
}

/// A rep error as the error of a call about one of the rep's items.
fn rep_call_error(e: RepError) -> CallError {
    match e {
        RepError::Call(c) => CallError {
            retryable: true,
            ..c
        },
        other => CallError {
            kind: ErrorKind::Other,
            code: other.code().to_string(),
            message: other.message(),
            retryable: true,
            ambiguous: false,
            hint: other.suggestion().to_string(),
        },
    }
}

/// A per-item failure of a read by id: the whole read is retried later.
fn read_error(e: &ItemError) -> CallError {
    let kind = error::kind(&e.code);
    CallError {
        kind,
        code: e.code.clone(),
        message: e.message.clone(),
        retryable: true,
        ambiguous: false,
        hint: error::hint(kind, true).into(),
    }
}

/// The id asked for names no item: gone since it was read, or (malformed) damaged in the
/// state.
fn names_no_item(e: &ItemError) -> bool {
    e.code == "ErrorItemNotFound" || e.code == "ErrorInvalidIdMalformed"
}

fn record_error(e: &ItemError) -> RecordError {
    // A stale ChangeKey: the next cycle reads the edit and decides again. The others are the
    // server's passing troubles.
    let retryable = e.is_conflict() || e.is_transient();
    let kind = error::kind(&e.code);
    RecordError {
        kind,
        code: e.code.clone(),
        message: e.message.clone(),
        retryable,
        hint: error::hint(kind, retryable).into(),
    }
}

fn some(v: &str) -> Option<String> {
    let t = v.trim();
    (!t.is_empty()).then(|| v.to_string())
}

// ---------------------------------------------------------------------------------------
// Contacts: canonical values are keyed by Salesforce field, mapped to Exchange properties.

fn contact_property(c: &EwsContact, property: &str) -> Option<String> {
    let text = |v: &Option<String>| v.clone();
    match property {
        "GivenName" => text(&c.given_name),
        "MiddleName" => text(&c.middle_name),
        "Surname" => text(&c.surname),
        "Nickname" => text(&c.nickname),
        "DisplayName" => text(&c.display_name),
        "CompanyName" => text(&c.company_name),
        "JobTitle" => text(&c.job_title),
        "Department" => text(&c.department),
        "AssistantName" => text(&c.assistant_name),
        "Body" => text(&c.notes),
        "Birthday" => c.birthday.map(|d| d.format("%Y-%m-%d").to_string()),
        p => {
            if let Some(i) = EMAIL_KEYS.iter().position(|k| *k == p) {
                return c.emails[i].clone();
            }
            if let Some((key, part)) = address_property(p) {
                return c
                    .addresses
                    .get(key)
                    .and_then(|a| a.part(part))
                    .map(str::to_string);
            }
            c.phones.get(p).cloned()
        }
    }
}

/// `BusinessCity` → (`Business`, `City`).
fn address_property(p: &str) -> Option<(&'static str, &'static str)> {
    ADDRESS_KEYS.iter().find_map(|k| {
        let rest = p.strip_prefix(k)?;
        ADDRESS_PARTS
            .iter()
            .find(|part| **part == rest)
            .map(|part| (*k, *part))
    })
}

fn set_contact_property(c: &mut EwsContact, property: &str, value: Option<String>) {
    match property {
        "GivenName" => c.given_name = value,
        "MiddleName" => c.middle_name = value,
        "Surname" => c.surname = value,
        "Nickname" => c.nickname = value,
        "DisplayName" => c.display_name = value,
        "CompanyName" => c.company_name = value,
        "JobTitle" => c.job_title = value,
        "Department" => c.department = value,
        "AssistantName" => c.assistant_name = value,
        "Body" => c.notes = value,
        "Birthday" => {
            c.birthday = value.and_then(|v| NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok())
        }
        p => {
            if let Some(i) = EMAIL_KEYS.iter().position(|k| *k == p) {
                c.emails[i] = value;
            } else if let Some((key, part)) = address_property(p) {
                let a = c.addresses.entry(key.to_string()).or_default();
                a.set_part(part, value);
                if a.is_empty() {
                    c.addresses.remove(key);
                }
            } else if model::PHONE_KEYS.contains(&p) {
                match value {
                    Some(v) => {
                        c.phones.insert(p.to_string(), v);
                    }
                    None => {
                        c.phones.remove(p);
                    }
                }
            }
            // The catalog lists only the properties above, so validation refuses others.
        }
    }
}

fn contact_to_record(c: &EwsContact, mapping: &EffectiveMapping) -> Record {
    let mut out = Contact::default();
    for f in &mapping.fields {
        if let Some(v) = contact_property(c, &f.exchange).filter(|v| !v.trim().is_empty()) {
            out.set(&f.salesforce, v);
        }
    }
    Record::Contact(out)
}

/// Overlays the record's mapped values on `base` (a new contact, or the item as it is now).
fn record_to_contact(base: EwsContact, c: &Contact, mapping: &EffectiveMapping) -> EwsContact {
    let mut out = base;
    for f in &mapping.fields {
        set_contact_property(&mut out, &f.exchange, some(c.get(&f.salesforce)));
    }
    // What Outlook shows in lists; derived, as Outlook derives it.
    let first = out.given_name.clone().unwrap_or_default();
    let last = out.surname.clone().unwrap_or_default();
    let display = format!("{first} {last}").trim().to_string();
    if !display.is_empty() {
        out.display_name = Some(display);
        out.file_as = Some(match (first.is_empty(), last.is_empty()) {
            (false, false) => format!("{last}, {first}"),
            (true, _) => last,
            (_, true) => first,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Events

/// Salesforce's ShowAs has no Tentative: tentative reads as busy (what Salesforce would
/// store), so a tentative meeting does not look changed after every round trip; an update
/// that says busy leaves a tentative meeting tentative (see `record_to_event`).
fn show_as(f: Option<FreeBusy>) -> ShowAs {
    match f {
        Some(FreeBusy::Free) => ShowAs::Free,
        Some(FreeBusy::OOF) => ShowAs::OutOfOffice,
        _ => ShowAs::Busy,
    }
}

fn free_busy(s: ShowAs) -> FreeBusy {
    match s {
        ShowAs::Free => FreeBusy::Free,
        ShowAs::Tentative => FreeBusy::Tentative,
        ShowAs::Busy => FreeBusy::Busy,
        ShowAs::OutOfOffice => FreeBusy::OOF,
    }
}

fn event_to_record(e: &CalendarEvent, mailbox: &str) -> Result<Record, String> {
    let time = match e.all_day_dates()? {
        Some((start, end)) => EventTime::AllDay {
            start,
            end: end.max(start.succ_opt().unwrap_or(start)),
        },
        None => EventTime::Timed {
            start: e.start,
            end: e.end,
        },
    };
    let mut out = Event::new(e.subject.clone().unwrap_or_default(), time);
    out.location = e.location.clone().unwrap_or_default();
    out.body = e.body.clone().unwrap_or_default();
    out.show_as = show_as(e.free_busy);
    out.private = matches!(
        e.sensitivity,
        Some(Sensitivity::Private | Sensitivity::Confidential)
    );
    let mut attendees: Vec<String> = e
        .required_attendees
        .iter()
        .chain(&e.optional_attendees)
        .filter_map(|a| a.mailbox.smtp())
        .filter(|a| !a.eq_ignore_ascii_case(mailbox))
        .map(str::to_string)
        .collect();
    attendees.sort_by_key(|a| a.to_lowercase());
    attendees.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    out.attendees = attendees;
    out.organizer = e
        .organizer
        .as_ref()
        .and_then(|o| o.smtp())
        .map(str::to_string);
    if let Some(r) = &e.recurrence {
        out.recurrence = Recurrence::Series {
            rule: rrule::to_rrule(r),
        };
    }
    Ok(Record::Event(out))
}

/// The canonical record of an item read from `mailbox` (None for item types tether does not
/// sync), or why it cannot be read (an all-day event in a zone tether does not know).
pub(crate) fn item_to_record(
    item: &super::model::Item,
    contact_mapping: &EffectiveMapping,
    mailbox: &str,
) -> Option<Result<Record, String>> {
    match item {
        super::model::Item::Contact(c) => Some(Ok(contact_to_record(c, contact_mapping))),
        super::model::Item::Event(e) => Some(event_to_record(e, mailbox)),
        super::model::Item::Other(_) => None,
    }
}

/// Overlays the canonical event on `base` (a new item, or the item as it is now). An
/// all-day event or a new series needs its zone (the item's, else `zone`): an unknown one is
/// an error naming it.
fn record_to_event(
    base: Option<CalendarEvent>,
    e: &Event,
    zone: &str,
) -> Result<CalendarEvent, String> {
    let updating = base.is_some();
    let zone = base
        .as_ref()
        .and_then(|b| b.start_time_zone.clone())
        .unwrap_or_else(|| zone.to_string());
    let new_series = !updating && matches!(e.recurrence, Recurrence::Series { .. });
    let tz = match model::windows_zone(&zone) {
        Ok(tz) => tz,
        Err(why) if matches!(e.time, EventTime::AllDay { .. }) || new_series => return Err(why),
        // A timed event is instants: its zone only rides along.
        Err(_) => chrono_tz::UTC,
    };
    let (start, end, all_day) = match e.time {
        EventTime::Timed { start, end } => (start, end, false),
        EventTime::AllDay { start, end } => {
            let midnight = |d: NaiveDate| {
                tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|| crate::model::normalize::local_midnight(d, tz))
            };
            (midnight(start), midnight(end), true)
        }
    };
    let mut out = base.unwrap_or_else(|| CalendarEvent::new(start, end));
    out.start = start;
    out.end = end;
    out.is_all_day = all_day;
    out.start_time_zone = Some(zone.clone());
    out.end_time_zone = Some(zone);
    // What the writing rep's configuration does not map stays as the item has it.
    let mapped = |field: &str| !e.unmapped.contains(field);
    if mapped("Subject") {
        out.subject = some(&e.subject);
    }
    if mapped("Description") {
        out.body = some(&e.body);
    }
    if mapped("Location") {
        out.location = some(&e.location);
    }
    if mapped("ShowAs") {
        out.free_busy = match (e.show_as, out.free_busy) {
            (ShowAs::Busy, Some(FreeBusy::Tentative)) => Some(FreeBusy::Tentative),
            (s, _) => Some(free_busy(s)),
        };
    }
    // Private and Confidential both read as private; an update keeps whichever the item had.
    out.sensitivity = Some(match (e.private, out.sensitivity) {
        (true, Some(Sensitivity::Confidential)) => Sensitivity::Confidential,
        (true, _) => Sensitivity::Private,
        (false, Some(Sensitivity::Personal)) => Sensitivity::Personal,
        (false, _) => Sensitivity::Normal,
    });
    // Attendees are written only on create (SendToNone: nobody is invited). An update never
    // changes a meeting's attendee list: Salesforce keeps attendees as EventRelations, not on
    // the event, so what it reads back is no reason to drop anyone from the Exchange meeting.
    if !updating {
        out.required_attendees = e
            .attendees
            .iter()
            .map(|a| Attendee {
                mailbox: MailboxAddress {
                    name: None,
                    email: a.clone(),
                },
                response: None,
            })
            .collect();
        out.optional_attendees.clear();
    }
    // The pattern is written on create only (see `normalize::event_form`): Salesforce
    // cannot change a series' pattern after creation, so what it reads back is no reason to
    // rewrite (or drop) the pattern of the rep's meeting.
    if !updating {
        out.recurrence = match &e.recurrence {
            Recurrence::Series { rule } => {
                rrule::from_rrule(rule, start.with_timezone(&tz).date_naive())
            }
            _ => None,
        };
    }
    Ok(out)
}

impl EwsConnector {
    /// A connector with the admin guide's default contact mapping; new all-day events and
    /// series are created in the client's `time_zone` unless [`with_time_zone`] says otherwise.
    ///
    /// [`with_time_zone`]: EwsConnector::with_time_zone
    pub fn new(client: EwsClient) -> Self {
        EwsConnector {
            client,
            contact_mappings: ContactMappings::default(),
            time_zone: "UTC".into(),
            folders: Mutex::default(),
            checked: Mutex::default(),
            change_keys: Mutex::default(),
            marker: Mutex::default(),
            markers: Mutex::default(),
        }
    }

    /// The contact mapping of mailboxes the engine names none for (see
    /// `MailConnector::use_contact_mapping`, which gives each rep their configuration's).
    pub fn with_contact_mapping(mut self, mapping: EffectiveMapping) -> Self {
        self.contact_mappings.set_default(mapping);
        self
    }

    /// The contact mapping `mailbox`'s contacts are read and written with.
    fn contact_mapping(&self, mailbox: &str) -> Arc<EffectiveMapping> {
        self.contact_mappings.of(mailbox)
    }

    /// Windows zone id (e.g. `W. Europe Standard Time`) new all-day events are created in.
    pub fn with_time_zone(mut self, windows_zone: impl Into<String>) -> Self {
        self.time_zone = windows_zone.into();
        self
    }

    pub fn client(&self) -> &EwsClient {
        &self.client
    }

    /// Keeps what the Salesforce_Sync folder just read says of who syncs the mailbox.
    fn note_marker(&self, mailbox: &Mailbox, folder: &model::FolderInfo) {
        let seen = match &folder.synced_by {
            Some(v) => FolderMarker::Marked(v.clone()),
            None => FolderMarker::Unmarked,
        };
        lock(&self.markers).insert(mailbox.address.clone(), seen);
    }

    fn remember(&self, id: &ItemId) {
        if let Some(ck) = &id.change_key {
            lock(&self.change_keys).insert(id.id.clone(), ck.clone());
        }
    }

    /// The folder to act on; Salesforce_Sync is looked up (not created) when not yet known.
    async fn folder_ref(&self, mailbox: &Mailbox, folder: Folder) -> Result<FolderRef, RepError> {
        match folder {
            Folder::Calendar => Ok(FolderRef::calendar()),
            Folder::Contacts => Ok(FolderRef::contacts()),
            Folder::SalesforceSyncContacts => {
                if let Some(id) = lock(&self.folders).get(&mailbox.address) {
                    return Ok(FolderRef::Id(id.clone()));
                }
                let found = self
                    .client
                    .find_folder(&mailbox.address, &FolderRef::contacts(), SYNC_FOLDER)
                    .await
                    .map_err(rep_error)?
                    .ok_or_else(sync_folder_missing)?;
                self.note_marker(mailbox, &found);
                lock(&self.folders).insert(mailbox.address.clone(), found.id.id.clone());
                Ok(FolderRef::Id(found.id.id))
            }
        }
    }

    /// Before the first page of a read from a saved cursor: is the folder the cursor names
    /// still the rep's Salesforce_Sync? A rep who deletes it in Outlook moves it into
    /// Deleted Items, where it keeps its id and answers SyncFolderItems as before; tether
    /// takes it as deleted, so the engine recreates it under Contacts. One GetFolder a read.
    async fn check_sync_folder(&self, mailbox: &Mailbox, id: &str) -> Result<(), RepError> {
        if lock(&self.checked)
            .get(&mailbox.address)
            .map(String::as_str)
            == Some(id)
        {
            return Ok(());
        }
        match self
            .client
            .folder_unless_deleted(&mailbox.address, id)
            .await
            .map_err(rep_error)?
        {
            Some(f) => {
                self.note_marker(mailbox, &f);
                lock(&self.checked).insert(mailbox.address.clone(), f.id.id.clone());
                lock(&self.folders).insert(mailbox.address.clone(), f.id.id);
                Ok(())
            }
            None => {
                self.forget_sync_folder(mailbox);
                Err(RepError::folder_missing(
                    "ErrorItemNotFound",
                    &format!("the {SYNC_FOLDER} folder is gone or in Deleted Items"),
                ))
            }
        }
    }

    fn forget_sync_folder(&self, mailbox: &Mailbox) {
        lock(&self.folders).remove(&mailbox.address);
        lock(&self.checked).remove(&mailbox.address);
    }

    /// The engine's view of an item read (`None`: an item class tether does not sync).
    fn item(&self, item: model::Item, mailbox: &str) -> Result<Option<MailItem>, CallError> {
        let (id, record, salesforce_id, related) = match item {
            model::Item::Contact(c) => {
                let Some(id) = c.item_id.clone() else {
                    return Ok(None);
                };
                (
                    id,
                    contact_to_record(&c, &self.contact_mapping(mailbox)),
                    c.salesforce_id().map(str::to_string),
                    false,
                )
            }
            model::Item::Event(e) => {
                let Some(id) = e.item_id.clone() else {
                    return Ok(None);
                };
                let record =
                    event_to_record(&e, mailbox).map_err(|why| undatable_read(&id.id, why))?;
                (
                    id,
                    record,
                    e.salesforce_id().map(str::to_string),
                    e.is_outlook_related(),
                )
            }
            model::Item::Other(_) => return Ok(None),
        };
        self.remember(&id);
        Ok(Some(MailItem {
            item_id: id.id,
            change_key: id.change_key.unwrap_or_default(),
            record,
            salesforce_id,
            related_in_outlook: related,
        }))
    }

    /// The outcome of one item written.
    fn written(&self, r: ItemResult<ItemId>) -> Outcome<MailRef> {
        match r {
            Ok(id) => {
                self.remember(&id);
                Outcome::Ok(MailRef {
                    item_id: id.id,
                    change_key: id.change_key.unwrap_or_default(),
                })
            }
            Err(e) => Outcome::Failed(record_error(&e)),
        }
    }

    /// GetItem for `ids` of one folder's kind: (id, the item or why not).
    async fn fetch(
        &self,
        mailbox: &str,
        folder: Folder,
        ids: &[ItemId],
    ) -> Result<Vec<Result<model::Item, ItemError>>, EwsError> {
        Ok(match folder {
            Folder::SalesforceSyncContacts | Folder::Contacts => self
                .client
                .get_contacts(mailbox, ids)
                .await?
                .into_iter()
                .map(|r| r.map(|c| model::Item::Contact(Box::new(c))))
                .collect(),
            Folder::Calendar => self
                .client
                .get_events(mailbox, ids)
                .await?
                .into_iter()
                .map(|r| r.map(|e| model::Item::Event(Box::new(e))))
                .collect(),
        })
    }
}

fn split_cursor(cursor: &str) -> Option<(&str, &str)> {
    cursor.split_once(' ')
}

impl MailConnector for EwsConnector {
    fn batch_size(&self) -> usize {
        self.client.batch_size()
    }

    fn use_contact_mapping(&self, mailbox: &Mailbox, mapping: &EffectiveMapping) {
        self.contact_mappings.set(&mailbox.address, mapping);
    }

    fn server_build(&self, mailbox: &Mailbox) -> Option<String> {
        self.client
            .server_build(&mailbox.address)
            .map(|b| b.to_string())
    }

    async fn sync_folder(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        cursor: Option<&str>,
        // SyncFolderItems reads the whole calendar: the engine drops what ended before the
        // window.
        _window: Option<EventWindow>,
    ) -> Result<FolderPage, RepError> {
        let (folder_ref, state) = match cursor.and_then(split_cursor) {
            Some((id, state)) if folder == Folder::SalesforceSyncContacts => {
                self.check_sync_folder(mailbox, id).await?;
                (FolderRef::Id(id.to_string()), Some(state.to_string()))
            }
            Some((_, state)) => (
                self.folder_ref(mailbox, folder).await?,
                Some(state.to_string()),
            ),
            None => (self.folder_ref(mailbox, folder).await?, None),
        };
        let page = match self
            .client
            .sync_page(&mailbox.address, &folder_ref, state.as_deref(), PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                if e.is_folder_missing() {
                    self.forget_sync_folder(mailbox);
                }
                return Err(rep_error(e));
            }
        };
        if page.includes_last && folder == Folder::SalesforceSyncContacts {
            // The read is done: the next one checks the folder again.
            lock(&self.checked).remove(&mailbox.address);
        }
        let folder_id = match &folder_ref {
            FolderRef::Id(id) => id.clone(),
            FolderRef::Distinguished(d) => d.clone(),
        };
        // Later changes to an item supersede earlier ones within the page.
        let mut order: Vec<String> = Vec::new();
        let mut last: HashMap<String, Option<ItemId>> = HashMap::new();
        for c in page.changes {
            use super::client::{ChangeKind, ItemKind};
            let entry = match c.kind {
                ChangeKind::Create | ChangeKind::Update => {
                    let wanted = match folder {
                        Folder::SalesforceSyncContacts | Folder::Contacts => {
                            c.item_kind != ItemKind::CalendarItem
                        }
                        Folder::Calendar => c.item_kind != ItemKind::Contact,
                    };
                    if !wanted {
                        continue;
                    }
                    Some(c.item_id.clone())
                }
                ChangeKind::Delete => None,
                ChangeKind::ReadFlagChange => continue,
            };
            if !last.contains_key(&c.item_id.id) {
                order.push(c.item_id.id.clone());
            }
            last.insert(c.item_id.id.clone(), entry);
        }
        let fetch: Vec<ItemId> = order
            .iter()
            .filter_map(|id| last.get(id).cloned().flatten())
            .collect();
        let mut fetched: HashMap<String, MailItem> = HashMap::new();
        if !fetch.is_empty() {
            let results = self
                .fetch(&mailbox.address, folder, &fetch)
                .await
                .map_err(rep_error)?;
            for (id, r) in fetch.iter().zip(results) {
                match r {
                    Ok(item) => {
                        // Distribution lists and other item classes are not synced.
                        if let Some(i) =
                            self.item(item, &mailbox.address).map_err(RepError::Call)?
                        {
                            fetched.insert(id.id.clone(), i);
                        }
                    }
                    // Deleted between the two calls: the next page reports the delete.
                    Err(e) if e.code == "ErrorItemNotFound" => {}
                    Err(e) => {
                        return Err(RepError::Call(read_error(&e)));
                    }
                }
            }
        }
        let mut changes = Vec::new();
        for id in order {
            match last.remove(&id).flatten() {
                Some(_) => {
                    if let Some(item) = fetched.remove(&id) {
                        changes.push(MailChange::Upsert(item));
                    }
                }
                None => {
                    lock(&self.change_keys).remove(&id);
                    changes.push(MailChange::Delete { item_id: id });
                }
            }
        }
        Ok(FolderPage {
            changes,
            cursor: format!("{folder_id} {}", page.sync_state),
            more: !page.includes_last,
        })
    }

    async fn ensure_folder(&self, mailbox: &Mailbox, folder: Folder) -> Result<(), RepError> {
        if folder == Folder::Calendar {
            return Ok(());
        }
        let marker = lock(&self.marker).clone();
        let f = self
            .client
            .ensure_sync_folder_marked(&mailbox.address, marker.as_deref())
            .await
            .map_err(rep_error)?;
        self.note_marker(mailbox, &f);
        lock(&self.folders).insert(mailbox.address.clone(), f.id.id);
        Ok(())
    }

    fn use_marker(&self, marker: &MailboxMarker) {
        *lock(&self.marker) = Some(marker.encode());
    }

    fn folder_marker(&self, mailbox: &Mailbox) -> Option<FolderMarker> {
        let seen = lock(&self.markers).get(&mailbox.address).cloned()?;
        // A folder this connector made with this tether's marker needs nothing.
        match (&seen, lock(&self.marker).as_deref()) {
            (FolderMarker::Marked(v), Some(ours)) if v == ours => None,
            _ => Some(seen),
        }
    }

    async fn mark_folder(&self, mailbox: &Mailbox, marker: &MailboxMarker) -> Result<(), RepError> {
        let id = match self
            .folder_ref(mailbox, Folder::SalesforceSyncContacts)
            .await?
        {
            FolderRef::Id(id) => id,
            FolderRef::Distinguished(d) => d,
        };
        let value = marker.encode();
        self.client
            .set_synced_by(&mailbox.address, &id, &value)
            .await
            .map_err(rep_error)?;
        lock(&self.markers).insert(mailbox.address.clone(), FolderMarker::Marked(value));
        Ok(())
    }

    async fn create(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        items: &[MailCreate],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        let mapping = self.contact_mapping(&mailbox.address);
        let results = match folder {
            Folder::SalesforceSyncContacts | Folder::Contacts => {
                let folder_ref = self
                    .folder_ref(mailbox, folder)
                    .await
                    .map_err(rep_call_error)?;
                let contacts: Vec<EwsContact> = items
                    .iter()
                    .map(|c| {
                        let mut x = match &c.record {
                            Record::Contact(r) => {
                                record_to_contact(EwsContact::default(), r, &mapping)
                            }
                            Record::Event(_) => EwsContact::default(),
                        };
                        x.set_salesforce_id(c.salesforce_id.clone());
                        x
                    })
                    .collect();
                self.client
                    .create_contacts(&mailbox.address, &folder_ref, &contacts)
                    .await
            }
            Folder::Calendar => {
                let mut prepared: Vec<Result<CalendarEvent, RecordError>> = Vec::new();
                for c in items {
                    let Record::Event(e) = &c.record else {
                        return Err(CallError {
                            kind: ErrorKind::Other,
                            code: "INVALID_RECORD".into(),
                            message: "a contact cannot be created in the calendar".into(),
                            retryable: false,
                            ambiguous: false,
                            hint: error::hint(ErrorKind::Other, false).into(),
                        });
                    };
                    prepared.push(
                        record_to_event(None, e, &self.time_zone)
                            .map(|mut x| {
                                x.set_salesforce_id(c.salesforce_id.clone());
                                x
                            })
                            .map_err(undatable_write),
                    );
                }
                let events: Vec<CalendarEvent> = prepared
                    .iter()
                    .filter_map(|p| p.as_ref().ok())
                    .cloned()
                    .collect();
                let mut sent = self
                    .client
                    .create_events(&mailbox.address, &events)
                    .await
                    .map_err(|e| call_error(&e, true))?
                    .into_iter();
                return Ok(prepared
                    .into_iter()
                    .map(|p| match p {
                        Err(e) => Outcome::Failed(e),
                        Ok(_) => match sent.next() {
                            Some(r) => self.written(r),
                            None => Outcome::Failed(RecordError {
                                kind: ErrorKind::Other,
                                code: "ErrorInvalidResponse".into(),
                                message: "no answer for the item".into(),
                                retryable: true,
                                hint: error::hint(ErrorKind::Other, true).into(),
                            }),
                        },
                    })
                    .collect());
            }
        }
        .map_err(|e| call_error(&e, true))?;
        Ok(results.into_iter().map(|r| self.written(r)).collect())
    }

    async fn update(
        &self,
        mailbox: &Mailbox,
        items: &[(String, Record)],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        let mapping = self.contact_mapping(&mailbox.address);
        let mut out: Vec<Option<Outcome<MailRef>>> = vec![None; items.len()];
        for object in ObjectKind::ALL {
            let idx: Vec<usize> = (0..items.len())
                .filter(|&i| items[i].1.kind() == object)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let folder = Folder::for_object(object);
            let ids: Vec<ItemId> = idx
                .iter()
                .map(|&i| ItemId::new(items[i].0.clone(), None))
                .collect();
            // The item as it is now, so unmapped properties survive the update.
            let current = self
                .fetch(&mailbox.address, folder, &ids)
                .await
                .map_err(|e| call_error(&e, false))?;
            let mut send_idx = Vec::new();
            let mut contacts = Vec::new();
            let mut events = Vec::new();
            for (&i, cur) in idx.iter().zip(current) {
                let item = match cur {
                    Ok(item) => item,
                    Err(e) => {
                        out[i] = Some(Outcome::Failed(record_error(&e)));
                        continue;
                    }
                };
                let Some(now_id) = item.item_id().cloned() else {
                    continue;
                };
                // The version tether last saw; an edit since then must not be overwritten.
                let seen = lock(&self.change_keys).get(&now_id.id).cloned();
                let id = ItemId::new(now_id.id.clone(), seen.or(now_id.change_key.clone()));
                match (item, &items[i].1) {
                    (model::Item::Contact(c), Record::Contact(r)) => {
                        let mut c = record_to_contact(*c, r, &mapping);
                        c.extended.clear();
                        contacts.push((id, c));
                    }
                    (model::Item::Event(e), Record::Event(r)) => {
                        match record_to_event(Some(*e), r, &self.time_zone) {
                            Ok(mut e) => {
                                e.extended.clear();
                                events.push((id, e));
                            }
                            Err(why) => {
                                out[i] = Some(Outcome::Failed(undatable_write(why)));
                                continue;
                            }
                        }
                    }
                    _ => {
                        out[i] = Some(Outcome::Failed(record_error(&ItemError {
                            code: "ErrorItemNotFound".into(),
                            message: "the item is of another kind".into(),
                        })));
                        continue;
                    }
                }
                send_idx.push(i);
            }
            let results = match object {
                ObjectKind::Contact => {
                    self.client
                        .update_contacts(&mailbox.address, &contacts)
                        .await
                }
                ObjectKind::Event => self.client.update_events(&mailbox.address, &events).await,
            }
            .map_err(|e| call_error(&e, false))?;
            for (i, r) in send_idx.into_iter().zip(results) {
                out[i] = Some(self.written(r));
            }
        }
        Ok(out
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Outcome::Failed(RecordError {
                        kind: ErrorKind::Other,
                        code: "ErrorInvalidResponse".into(),
                        message: "no answer for the item".into(),
                        retryable: true,
                        hint: error::hint(ErrorKind::Other, true).into(),
                    })
                })
            })
            .collect())
    }

    async fn delete(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        let ids: Vec<ItemId> = item_ids
            .iter()
            .map(|i| ItemId::new(i.clone(), None))
            .collect();
        let results = self
            .client
            .delete_items(&mailbox.address, &ids)
            .await
            .map_err(|e| call_error(&e, false))?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(()) => Outcome::Ok(()),
                Err(e) => Outcome::Failed(record_error(&e)),
            })
            .collect())
    }

    async fn get_items(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<ItemId> = item_ids
            .iter()
            .map(|id| ItemId::new(id.clone(), None))
            .collect();
        let items = self
            .fetch(&mailbox.address, folder, &ids)
            .await
            .map_err(|e| call_error(&e, false))?;
        let mut out = Vec::new();
        for item in items {
            match item {
                Ok(i) => out.extend(self.item(i, &mailbox.address)?),
                // Gone since it was read: the next plan shows what happens to it.
                Err(e) if names_no_item(&e) => {}
                Err(e) => {
                    return Err(read_error(&e));
                }
            }
        }
        Ok(out)
    }

    async fn change_keys(
        &self,
        mailbox: &Mailbox,
        _folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailRef>, CallError> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<ItemId> = item_ids
            .iter()
            .map(|id| ItemId::new(id.clone(), None))
            .collect();
        let answers = self
            .client
            .get_item_ids(&mailbox.address, &ids)
            .await
            .map_err(|e| call_error(&e, false))?;
        let mut out = Vec::new();
        for answer in answers {
            match answer {
                Ok(id) => out.push(MailRef {
                    item_id: id.id,
                    change_key: id.change_key.unwrap_or_default(),
                }),
                Err(e) if names_no_item(&e) => {}
                Err(e) => {
                    return Err(read_error(&e));
                }
            }
        }
        Ok(out)
    }

    async fn find_by_salesforce_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        let folder_ref = match self.folder_ref(mailbox, folder).await {
            Ok(f) => f,
            // No folder, so nothing tether created in it.
            Err(RepError::FolderMissing(_)) => return Ok(Vec::new()),
            Err(e) => return Err(rep_call_error(e)),
        };
        let ids = self
            .client
            .find_by_extended(
                &mailbox.address,
                &folder_ref,
                PROP_SALESFORCE_ID,
                salesforce_ids,
            )
            .await
            .map_err(|e| call_error(&e, false))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let items = self
            .fetch(&mailbox.address, folder, &ids)
            .await
            .map_err(|e| call_error(&e, false))?;
        let mut out = Vec::new();
        for item in items.into_iter().filter_map(Result::ok) {
            out.extend(self.item(item, &mailbox.address)?.filter(|i| {
                i.salesforce_id
                    .as_ref()
                    .is_some_and(|s| salesforce_ids.contains(s))
            }));
        }
        Ok(out)
    }

    /// One FindItem in Deleted Items (where Outlook's delete and MoveToDeletedItems put an
    /// item, under a new id, DateTimeCreated kept) for items stamped with these ids and
    /// created since `since`. Contacts and events carry different kinds of Salesforce id,
    /// so the folder an item came from needs no check.
    async fn find_deleted_created(
        &self,
        mailbox: &Mailbox,
        _folder: Folder,
        salesforce_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, CallError> {
        self.client
            .extended_values_created_since(
                &mailbox.address,
                &FolderRef::Distinguished("deleteditems".into()),
                PROP_SALESFORCE_ID,
                salesforce_ids,
                since,
            )
            .await
            .map_err(|e| call_error(&e, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::canned::{Canned, REP, error_message, response};

    const SYNC_ID: &str = "AAMkADk0N2E4OWM5LWY1NjgtNDMyZi1hNDMyLTMzYjE2ZjZhMzIxMAAuAAAAAACKu3EhvuDvQZb9mLyWwOnTAQDwsfS1D0n+SJH9c5R0Sj0yAAAAAAEOAAA=";
    const DELETED_ITEMS_ID: &str = "AAMkADk0N2E4OWM5LWY1NjgtNDMyZi1hNDMyLTMzYjE2ZjZhMzIxMAAuAAAAAACKu3EhvuDvQZb9mLyWwOnTAQDwsfS1D0n+SJH9c5R0Sj0yAAAAAAELAAA=";
    const CONTACTS_ID: &str = "AAMkADk0N2E4OWM5LWY1NjgtNDMyZi1hNDMyLTMzYjE2ZjZhMzIxMAAuAAAAAACKu3EhvuDvQZb9mLyWwOnTAQDwsfS1D0n+SJH9c5R0Sj0yAAAAAAEPAAA=";
    const NEW_SYNC_ID: &str = "AAMkADk0N2E4OWM5LWY1NjgtNDMyZi1hNDMyLTMzYjE2ZjZhMzIxMAAuAAAAAACKu3EhvuDvQZb9mLyWwOnTAQDwsfS1D0n+SJH9c5R0Sj0yAAAAAAE2AAA=";

    fn rep() -> Mailbox {
        Mailbox {
            address: REP.into(),
        }
    }

    fn folder_message(element: &str, id: &str, parent: &str, class: &str, name: &str) -> String {
        format!(
            r#"<m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:{element}><t:FolderId Id="{id}" ChangeKey="AQAAABYAAADwsfS1D0n+SJH9c5R0Sj0yAAAAAAA3"/><t:ParentFolderId Id="{parent}" ChangeKey="AQAAAA=="/><t:FolderClass>{class}</t:FolderClass><t:DisplayName>{name}</t:DisplayName><t:TotalCount>2</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount><t:UnreadCount>0</t:UnreadCount></t:{element}></m:Folders></m:GetFolderResponseMessage>"#
        )
    }

    fn deleted_items() -> String {
        folder_message(
            "Folder",
            DELETED_ITEMS_ID,
            "AAMkADk0N2E4OWM5LWY1NjgtNDMyZi1hNDMyLTMzYjE2ZjZhMzIxMAAuAAAAAACKu3EhvuDvQZb9mLyWwOnTAQDwsfS1D0n+SJH9c5R0Sj0yAAAAAAEIAAA=",
            "IPF.Note",
            "Deleted Items",
        )
    }

    fn sync_folder_in(parent: &str) -> String {
        response(
            "GetFolder",
            &(folder_message(
                "ContactsFolder",
                SYNC_ID,
                parent,
                "IPF.Contact",
                "Salesforce_Sync",
            ) + &deleted_items()),
        )
    }

    /// A SyncFolderItems page with no changes.
    fn no_changes() -> String {
        response(
            "SyncFolderItems",
            r#"<m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcplVmVdZhZAzO2dvPfee++999577733ujudTif33/8/XGZkAWz2zkrayZ4hgKrIHz9+fB8/Ij76X/M3/wF/1f8DAAD//w==</m:SyncState><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange><m:Changes/></m:SyncFolderItemsResponseMessage>"#,
        )
    }

    fn cursor() -> String {
        format!("{SYNC_ID} H4sIAAAAAAAEAO29B2AcSZYlJi9tynt")
    }

    /// Microsoft's documented GetFolder error response, with the code a real server gives
    /// for an id that names no folder (any more).
    fn get_folder_not_found() -> String {
        response(
            "GetFolder",
            &(error_message(
                "GetFolder",
                "ErrorItemNotFound",
                "The specified object was not found in the store., The process failed to get the correct properties.",
                "<m:Folders />",
            ) + &deleted_items()),
        )
    }

    #[tokio::test]
    async fn a_sync_folder_moved_to_deleted_items_counts_as_deleted_not_present() {
        let server = Canned::default();
        server
            .answer("GetFolder", &sync_folder_in(DELETED_ITEMS_ID))
            .answer("SyncFolderItems", &no_changes());
        let c = EwsConnector::new(server.client().await);
        let got = c
            .sync_folder(
                &rep(),
                Folder::SalesforceSyncContacts,
                Some(&cursor()),
                None,
            )
            .await;
        assert!(
            matches!(got, Err(RepError::FolderMissing(_))),
            "{:?}",
            server.operations()
        );
        // The one GetFolder asked for the folder and Deleted Items, with ParentFolderId.
        let (op, body) = &server.requests()[0];
        assert_eq!(op, "GetFolder");
        assert!(body.contains(r#"Id="deleteditems""#), "{body}");
        assert!(
            body.contains(r#"FieldURI="folder:ParentFolderId""#),
            "{body}"
        );
        assert!(!server.operations().contains(&"SyncFolderItems".to_string()));
    }

    #[tokio::test]
    async fn a_sync_folder_still_under_contacts_is_read_and_checked_once_a_read() {
        let server = Canned::default();
        server
            .answer("GetFolder", &sync_folder_in(CONTACTS_ID))
            .answer("SyncFolderItems", &no_changes());
        let c = EwsConnector::new(server.client().await);
        for _ in 0..2 {
            let page = c
                .sync_folder(
                    &rep(),
                    Folder::SalesforceSyncContacts,
                    Some(&cursor()),
                    None,
                )
                .await
                .unwrap();
            assert!(!page.more);
            assert!(page.cursor.starts_with(SYNC_ID));
        }
        // Each read (here: one page each) checks the folder once.
        assert_eq!(
            server.operations(),
            [
                "GetFolder",
                "SyncFolderItems",
                "GetFolder",
                "SyncFolderItems"
            ]
        );
    }

    #[tokio::test]
    async fn get_folder_error_item_not_found_means_the_sync_folder_is_missing() {
        let server = Canned::default();
        server.answer("GetFolder", &get_folder_not_found());
        let c = EwsConnector::new(server.client().await);
        let got = c
            .sync_folder(
                &rep(),
                Folder::SalesforceSyncContacts,
                Some(&cursor()),
                None,
            )
            .await;
        assert!(matches!(got, Err(RepError::FolderMissing(_))), "{got:?}");
    }

    #[tokio::test]
    async fn sync_folder_items_error_sync_folder_not_found_means_the_folder_is_missing() {
        let server = Canned::default();
        server
            .answer("GetFolder", &sync_folder_in(CONTACTS_ID))
            .answer(
                "SyncFolderItems",
                &response(
                    "SyncFolderItems",
                    &error_message(
                        "SyncFolderItems",
                        "ErrorSyncFolderNotFound",
                        "The specified folder could not be found in the store.",
                        "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>",
                    ),
                ),
            );
        let c = EwsConnector::new(server.client().await);
        let got = c
            .sync_folder(
                &rep(),
                Folder::SalesforceSyncContacts,
                Some(&cursor()),
                None,
            )
            .await;
        assert!(matches!(got, Err(RepError::FolderMissing(_))), "{got:?}");
        // The calendar's feed too.
        let got = c.sync_folder(&rep(), Folder::Calendar, None, None).await;
        assert!(matches!(got, Err(RepError::FolderMissing(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_missing_sync_folder_is_created_again_under_contacts() {
        let server = Canned::default();
        server
            .answer("GetFolder", &sync_folder_in(DELETED_ITEMS_ID))
            .answer(
                "FindFolder",
                &response(
                    "FindFolder",
                    r#"<m:FindFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder TotalItemsInView="0" IncludesLastItemInRange="true"><t:Folders/></m:RootFolder></m:FindFolderResponseMessage>"#,
                ),
            )
            .answer(
                "CreateFolder",
                &response(
                    "CreateFolder",
                    &format!(
                        r#"<m:CreateFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:ContactsFolder><t:FolderId Id="{NEW_SYNC_ID}" ChangeKey="AwAAABYAAADwsfS1D0n+SJH9c5R0Sj0yAAAAAAA4"/></t:ContactsFolder></m:Folders></m:CreateFolderResponseMessage>"#
                    ),
                ),
            )
            .answer("SyncFolderItems", &no_changes());
        let c = EwsConnector::new(server.client().await);
        let folder = Folder::SalesforceSyncContacts;
        assert!(matches!(
            c.sync_folder(&rep(), folder, Some(&cursor()), None).await,
            Err(RepError::FolderMissing(_))
        ));
        // What the engine does then: recreate, and read the new folder from scratch.
        c.ensure_folder(&rep(), folder).await.unwrap();
        let page = c.sync_folder(&rep(), folder, None, None).await.unwrap();
        assert!(page.cursor.starts_with(NEW_SYNC_ID), "{}", page.cursor);
        let create = server
            .requests()
            .into_iter()
            .find(|(op, _)| op == "CreateFolder")
            .unwrap()
            .1;
        assert!(
            create.contains(r#"<t:DistinguishedFolderId Id="contacts"/>"#),
            "{create}"
        );
    }

    const EVENT_ID: &str = "AAMkADk0N2E4OWM5LWY1NjgtNDMyZi1hNDMyLTMzYjE2ZjZhMzIxMABGAAAAAACKu3EhvuDvQZb9mLyWwOnTBwDwsfS1D0n+SJH9c5R0Sj0yAAAAAAENAADwsfS1D0n+SJH9c5R0Sj0yAAAAABcqAAA=";

    /// A GetItem answer of one calendar item whose elements (after ItemId) are `inner`.
    fn get_event(inner: &str) -> String {
        response(
            "GetItem",
            &format!(
                r#"<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:CalendarItem><t:ItemId Id="{EVENT_ID}" ChangeKey="DwAAABYAAADwsfS1D0n+SJH9c5R0Sj0yAAAAABdR"/>{inner}</t:CalendarItem></m:Items></m:GetItemResponseMessage>"#
            ),
        )
    }

    const ALL_DAY_IN_A_CUSTOM_ZONE: &str = r#"<t:Subject>Trade fair</t:Subject><t:Start>2026-03-09T23:00:00Z</t:Start><t:End>2026-03-10T23:00:00Z</t:End><t:IsAllDayEvent>true</t:IsAllDayEvent><t:CalendarItemType>Single</t:CalendarItemType><t:StartTimeZone Id="Customized Time Zone" Name="Customized Time Zone"/><t:EndTimeZone Id="Customized Time Zone" Name="Customized Time Zone"/>"#;

    #[tokio::test]
    async fn an_all_day_event_in_an_unknown_zone_is_a_read_error_naming_it_not_a_utc_date() {
        let server = Canned::default();
        server
            .answer(
                "SyncFolderItems",
                &response(
                    "SyncFolderItems",
                    &format!(
                        r#"<m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt</m:SyncState><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange><m:Changes><t:Create><t:CalendarItem><t:ItemId Id="{EVENT_ID}" ChangeKey="DwAAABYAAADwsfS1D0n+SJH9c5R0Sj0yAAAAABdR"/></t:CalendarItem></t:Create></m:Changes></m:SyncFolderItemsResponseMessage>"#
                    ),
                ),
            )
            .answer("GetItem", &get_event(ALL_DAY_IN_A_CUSTOM_ZONE));
        let c = EwsConnector::new(server.client().await);
        match c.sync_folder(&rep(), Folder::Calendar, None, None).await {
            Err(RepError::Call(e)) => {
                assert_eq!(e.code, "UNKNOWN_TIME_ZONE");
                assert!(
                    e.message.contains("\"Customized Time Zone\""),
                    "{}",
                    e.message
                );
                assert!(e.message.contains(EVENT_ID), "{}", e.message);
            }
            other => panic!("an undatable event must stop the read: {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_all_day_event_for_an_unknown_zone_fails_per_record_and_the_rest_is_written() {
        let server = Canned::default();
        server.answer(
            "CreateItem",
            &response(
                "CreateItem",
                &format!(
                    r#"<m:CreateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:CalendarItem><t:ItemId Id="{EVENT_ID}" ChangeKey="DwAAABYAAADwsfS1D0n+SJH9c5R0Sj0yAAAAABdR"/></t:CalendarItem></m:Items></m:CreateItemResponseMessage>"#
                ),
            ),
        );
        let c = EwsConnector::new(server.client().await).with_time_zone("Customized Time Zone");
        let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let all_day = Event::new(
            "Trade fair",
            EventTime::AllDay {
                start: day,
                end: day.succ_opt().unwrap(),
            },
        );
        let start = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
        let timed = Event::new(
            "Call",
            EventTime::Timed {
                start,
                end: start + chrono::Duration::minutes(30),
            },
        );
        let items: Vec<MailCreate> = [all_day, timed]
            .into_iter()
            .enumerate()
            .map(|(i, e)| MailCreate {
                salesforce_id: format!("00U00000000000{i}AAA"),
                record: Record::Event(e),
            })
            .collect();
        let got = c.create(&rep(), Folder::Calendar, &items).await.unwrap();
        match &got[0] {
            Outcome::Failed(e) => {
                assert_eq!(e.code, "UNKNOWN_TIME_ZONE");
                assert!(
                    e.message.contains("\"Customized Time Zone\""),
                    "{}",
                    e.message
                );
            }
            other => panic!("never created in a guessed zone: {other:?}"),
        }
        assert!(matches!(got[1], Outcome::Ok(_)), "{:?}", got[1]);
        let create = &server.requests()[0].1;
        assert_eq!(create.matches("<t:CalendarItem>").count(), 1, "{create}");
    }

    #[tokio::test]
    async fn all_day_events_in_taipei_and_east_africa_keep_their_day_both_ways() {
        // Exchange stores an all-day event as local midnights in its zone.
        for (zone, midnight_before) in [
            ("Taipei Standard Time", "2026-03-09T16:00:00Z"),
            ("E. Africa Standard Time", "2026-03-09T21:00:00Z"),
        ] {
            let midnight_after = midnight_before.replace("03-09", "03-10");
            let server = Canned::default();
            server
                .answer(
                    "GetItem",
                    &get_event(&format!(
                        r#"<t:Subject>Offsite</t:Subject><t:Start>{midnight_before}</t:Start><t:End>{midnight_after}</t:End><t:IsAllDayEvent>true</t:IsAllDayEvent><t:CalendarItemType>Single</t:CalendarItemType><t:StartTimeZone Id="{zone}"/><t:EndTimeZone Id="{zone}"/>"#
                    )),
                )
                .answer(
                    "CreateItem",
                    &response(
                        "CreateItem",
                        &format!(
                            r#"<m:CreateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:CalendarItem><t:ItemId Id="{EVENT_ID}" ChangeKey="DwAAABYAAADwsfS1D0n+SJH9c5R0Sj0yAAAAABdR"/></t:CalendarItem></m:Items></m:CreateItemResponseMessage>"#
                        ),
                    ),
                );
            let c = EwsConnector::new(server.client().await).with_time_zone(zone);
            let read = c
                .get_items(&rep(), Folder::Calendar, &[EVENT_ID.to_string()])
                .await
                .unwrap();
            let day = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
            let all_day = EventTime::AllDay {
                start: day,
                end: day.succ_opt().unwrap(),
            };
            assert_eq!(read[0].record.as_event().unwrap().time, all_day, "{zone}");
            let created = c
                .create(
                    &rep(),
                    Folder::Calendar,
                    &[MailCreate {
                        salesforce_id: "00U000000000001AAA".into(),
                        record: Record::Event(Event::new("Offsite", all_day)),
                    }],
                )
                .await
                .unwrap();
            assert!(matches!(created[0], Outcome::Ok(_)), "{zone}: {created:?}");
            let body = &server.requests()[1].1;
            assert!(
                body.contains(&format!("<t:Start>{midnight_before}</t:Start>")),
                "{zone}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn routing_type_ex_addresses_are_never_copied_as_email() {
        const X500: &str = "/O=EXCHANGELABS/OU=EXCHANGE ADMINISTRATIVE GROUP (FYDIBOHF23SPDLT)/CN=RECIPIENTS/CN=0B3D5A8F2C1E4A7C9D6B3F0E1A2C4D5E-ANA DIAZ";
        let mailbox = |name: &str, address: &str, routing: &str, extra: &str| {
            format!(
                "<t:Mailbox><t:Name>{name}</t:Name><t:EmailAddress>{address}</t:EmailAddress><t:RoutingType>{routing}</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType>{extra}</t:Mailbox>"
            )
        };
        let attendee = |m: String| {
            format!("<t:Attendee>{m}<t:ResponseType>Unknown</t:ResponseType></t:Attendee>")
        };
        let inner = format!(
            "<t:Subject>Review</t:Subject><t:Start>2026-03-10T09:00:00Z</t:Start><t:End>2026-03-10T10:00:00Z</t:End><t:IsAllDayEvent>false</t:IsAllDayEvent><t:CalendarItemType>Single</t:CalendarItemType><t:Organizer>{}</t:Organizer><t:RequiredAttendees>{}{}{}</t:RequiredAttendees><t:StartTimeZone Id=\"UTC\"/><t:EndTimeZone Id=\"UTC\"/>",
            mailbox("Ana Diaz", X500, "EX", ""),
            attendee(mailbox("Ana Diaz", X500, "EX", "")),
            attendee(mailbox(
                "Bo Li",
                "/O=EXCHANGELABS/OU=EXCHANGE ADMINISTRATIVE GROUP (FYDIBOHF23SPDLT)/CN=RECIPIENTS/CN=BO",
                "EX",
                "<t:OriginalDisplayName>bo.li@contoso.com</t:OriginalDisplayName>"
            )),
            attendee(mailbox("Cy Orr", "cy@fabrikam.com", "SMTP", "")),
        );
        let server = Canned::default();
        server.answer("GetItem", &get_event(&inner));
        let c = EwsConnector::new(server.client().await);
        let got = c
            .get_items(&rep(), Folder::Calendar, &[EVENT_ID.to_string()])
            .await
            .unwrap();
        let e = got[0].record.as_event().unwrap();
        assert_eq!(e.organizer, None, "an unresolved organizer has no email");
        assert_eq!(e.attendees, ["bo.li@contoso.com", "cy@fabrikam.com"]);
        // The raw item keeps the unresolved mailbox, by name, without an address.
        let raw = c
            .client()
            .get_events(REP, &[ItemId::new(EVENT_ID, None)])
            .await
            .unwrap();
        let organizer = raw[0].as_ref().unwrap().organizer.clone().unwrap();
        assert_eq!(organizer.name.as_deref(), Some("Ana Diaz"));
        assert_eq!(organizer.smtp(), None);
    }

    #[tokio::test]
    async fn create_folder_error_parent_folder_not_found_is_a_missing_folder() {
        let server = Canned::default();
        server
            .answer(
                "FindFolder",
                &response(
                    "FindFolder",
                    r#"<m:FindFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder TotalItemsInView="0" IncludesLastItemInRange="true"><t:Folders/></m:RootFolder></m:FindFolderResponseMessage>"#,
                ),
            )
            .answer(
                "CreateFolder",
                &response(
                    "CreateFolder",
                    &error_message(
                        "CreateFolder",
                        "ErrorParentFolderNotFound",
                        "Parent folder not found.",
                        "<m:Folders />",
                    ),
                ),
            );
        let c = EwsConnector::new(server.client().await);
        assert!(matches!(
            c.ensure_folder(&rep(), Folder::SalesforceSyncContacts)
                .await,
            Err(RepError::FolderMissing(_))
        ));
    }

    /// One table says which codes concern one rep's mailbox and what each means: denied
    /// and unknown mailboxes are told as such, a mailbox that is moving or whose store is
    /// down fails that rep for this run and is retried.
    #[test]
    fn every_per_rep_code_fails_only_its_rep_as_the_one_table_says() {
        for (code, problem) in error::PER_REP_CODES {
            let e = rep_error(EwsError::Response {
                code: code.to_string(),
                message: "m".into(),
            });
            assert_eq!(e.code(), *code);
            match (problem, &e) {
                (MailboxProblem::ImpersonationDenied, RepError::ImpersonationDenied(r)) => {
                    assert!(r.hint.contains("ApplicationImpersonation"), "{r:?}")
                }
                (MailboxProblem::NoMailbox, RepError::NoMailbox(_)) => {}
                (MailboxProblem::Unavailable, RepError::Call(c)) => {
                    assert!(c.retryable, "{code} passes: {c:?}")
                }
                _ => panic!("{code}: {e:?}"),
            }
        }
    }

    #[test]
    fn contacts_round_trip_through_the_default_mapping() {
        let m = EffectiveMapping::defaults(ObjectKind::Contact);
        let c = Contact::default()
            .with("FirstName", "Ana")
            .with("LastName", "Diaz")
            .with("Email", "ana@x.com")
            .with("Phone", "+49 30 1234")
            .with("MailingCity", "Berlin")
            .with("Birthdate", "1980-02-29")
            .with("Description", "line1\nline2")
            .with(crate::model::catalog::ACCOUNT_NAME, "Acme");
        let ews = record_to_contact(EwsContact::default(), &c, &m);
        assert_eq!(ews.file_as.as_deref(), Some("Diaz, Ana"));
        assert_eq!(
            ews.phones.get("BusinessPhone").map(String::as_str),
            Some("+49 30 1234")
        );
        assert_eq!(
            ews.addresses
                .get("Business")
                .and_then(|a| a.city.as_deref()),
            Some("Berlin")
        );
        assert_eq!(contact_to_record(&ews, &m), Record::Contact(c));
    }

    #[test]
    fn events_round_trip_all_day_private_and_series() {
        let mut e = Event::new(
            "Offsite",
            EventTime::AllDay {
                start: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
                end: NaiveDate::from_ymd_opt(2026, 6, 3).unwrap(),
            },
        );
        e.private = true;
        e.show_as = ShowAs::OutOfOffice;
        e.recurrence = Recurrence::Series {
            rule: "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO".into(),
        };
        let ews = record_to_event(None, &e, "W. Europe Standard Time").unwrap();
        assert!(ews.is_all_day);
        assert_eq!(ews.sensitivity, Some(Sensitivity::Private));
        assert_eq!(
            event_to_record(&ews, "rep@x.com"),
            Ok(Record::Event(e.clone()))
        );

        // A tentative meeting reads as busy and stays tentative through an update.
        let mut tentative = ews.clone();
        tentative.free_busy = Some(FreeBusy::Tentative);
        let read = event_to_record(&tentative, "rep@x.com").unwrap();
        assert_eq!(read.as_event().unwrap().show_as, ShowAs::Busy);
        let updated = record_to_event(Some(tentative), read.as_event().unwrap(), "UTC").unwrap();
        assert_eq!(updated.free_busy, Some(FreeBusy::Tentative));
    }
}
