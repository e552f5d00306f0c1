//! The engine's mail side over Microsoft Graph: [`GraphConnector`] implements
//! [`MailConnector`] with a [`GraphClient`], as the EWS connector does over EWS.
//!
//! - Contacts: the rep's `Salesforce_Sync` child of the default Contacts folder; changes
//!   through `contactFolders/{id}/contacts/delta` (`$select`, `Prefer: odata.maxpagesize`),
//!   one Graph page per `sync_folder` call. The cursor is `<folder id> <link>`: the round's
//!   nextLink while it goes on, its deltaLink when done. Changed items are then read by id
//!   in `$batch` (with tether's extended property and the phones Graph keeps as MAPI
//!   properties), `@removed` ones are deletes.
//! - Events: the default calendar. A full read (no cursor) lists `calendar/events` first
//!   (single events and series masters of every date, as EWS's SyncFolderItems reads the
//!   whole calendar), so a full view never misses an event because it lies outside the
//!   window, then starts a `calendarView/delta` round over the window: from the engine's
//!   `EventWindow` start to [`HORIZON_DAYS`] days after it (events further ahead are read
//!   when the window reaches them). The window is frozen in the round's token, so the cursor
//!   carries the window start: `list|round <window start> <link> [<series ids>]`. When the engine's window
//!   moves (TODAY moves daily), the old round is read to its end (real changes and deletes
//!   since the last read) and a new round starts over the new window; its items are
//!   upserts, and nothing is deleted because an event left the window. Delta returns
//!   occurrences and exceptions, not masters: they are folded into their series by reading
//!   the master by id. An `@removed` event is read by id: only a 404 is a delete (Graph
//!   also removes events that moved out of the window). When some are gone, the series
//!   masters the cursor remembers are read by id too: a series deleted in Outlook shows in
//!   the delta only as its occurrences' `@removed`.
//! - Writes and reads by id go through `$batch`, at most [`MAILBOX_CONCURRENCY`] requests
//!   each (Outlook runs no more at once per mailbox; the rest would be throttled), with the
//!   client's per-item retries. An update overlays the mapped members on the item as it is
//!   now and refuses (retryable conflict) when its changeKey moved since tether read it.
//! - No invitations, no cancellations: no attendee is ever written; an update that would
//!   change the time or place of a meeting the rep organised with attendees is declined
//!   (the engine reports it once and leaves the link), and a delete of one is declined (the
//!   engine unlinks the pair and reports it), unless the rep's configuration opts in
//!   (`events.update_meetings`, `events.send_cancellations`).

use super::client::{GraphClient, MAILBOX_CONCURRENCY};
use super::delta::{PageOutcome, Window};
use super::error::{ErrorKind as GraphKind, GraphError};
use super::folders::{ContactFolder, SYNC_FOLDER};
use super::translate::TRANSLATE_LIMIT;
use super::{BatchItem, contact, event, property};
use crate::engine::connector::{
    CallError, ErrorKind, EventWindow, Folder, FolderMarker, FolderPage, MailChange, MailConnector,
    MailCreate, MailItem, MailRef, Mailbox, MailboxMarker, Outcome, RecordError, Refusal, RepError,
};
use crate::mail::{ContactMappings, undatable_read, undatable_write};
use crate::model::{EffectiveMapping, ObjectKind, Record};
use crate::mutex::lock;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use url::Url;

/// How far after the window start the calendar delta reads.
pub const HORIZON_DAYS: i64 = 365;
/// Records per write or read by id the engine sends.
const BATCH_SIZE: usize = 20;

/// The mail side of the engine over Microsoft Graph.
pub struct GraphConnector {
    client: GraphClient,
    contact_mappings: ContactMappings,
    /// Windows zone new all-day events and series are created in.
    time_zone: String,
    /// Salesforce_Sync folder id per mailbox (lower case).
    folders: Mutex<HashMap<String, String>>,
    /// changeKey per item id as last read or written: what an update is based on.
    change_keys: Mutex<HashMap<String, String>>,
    /// The folder of each item id read or written this run (a delete names ids only).
    kinds: Mutex<HashMap<String, Folder>>,
    /// Mailboxes (lower case) whose meetings may be deleted although Graph then mails their
    /// attendees a cancellation (`events.send_cancellations`).
    cancellations: Mutex<BTreeSet<String>>,
    /// The marker new Salesforce_Sync folders are created with (encoded).
    marker: Mutex<Option<String>>,
    /// The marker on each mailbox's (lower case) Salesforce_Sync as last read with it.
    markers: Mutex<HashMap<String, FolderMarker>>,
    /// Mailboxes (lower case) whose meetings may be moved although Graph then mails their
    /// attendees an update (`events.update_meetings`).
    meeting_updates: Mutex<BTreeSet<String>>,
    /// Folders (mailbox lower case) read this run from a cursor another API saved: the
    /// switch from EWS, whose links name items by EWS ids (see `translate_foreign_ids`).
    foreign_cursors: Mutex<BTreeSet<(String, Folder)>>,
}

impl std::fmt::Debug for GraphConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConnector")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Adds or removes `mailbox` (lower case) from an opt-in set.
fn allow(set: &Mutex<BTreeSet<String>>, mailbox: &Mailbox, allowed: bool) {
    let key = mailbox.address.to_lowercase();
    if allowed {
        lock(set).insert(key);
    } else {
        lock(set).remove(&key);
    }
}

fn kind_of(e: &GraphError) -> ErrorKind {
    match e.kind {
        GraphKind::Gone => ErrorKind::Gone,
        GraphKind::Denied => ErrorKind::Denied,
        GraphKind::Throttled => ErrorKind::Throttled,
        GraphKind::Auth => ErrorKind::Auth,
        GraphKind::Conflict => ErrorKind::Conflict,
        GraphKind::Invalid => ErrorKind::Validation,
        GraphKind::NoMailbox
        | GraphKind::Unavailable
        | GraphKind::CursorExpired
        | GraphKind::Transport => ErrorKind::Other,
    }
}

fn retryable(e: &GraphError) -> bool {
    matches!(
        e.kind,
        GraphKind::Throttled | GraphKind::Unavailable | GraphKind::Transport | GraphKind::Conflict
    )
}

fn hint(e: &GraphError) -> String {
    if let Some(h) = &e.hint {
        // The client's hints are clauses; the engine's are sentences.
        let mut chars = h.chars();
        let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
        return format!("{}{}.", first.unwrap_or_default(), chars.as_str());
    }
    match e.kind {
        GraphKind::Gone => "The item was deleted meanwhile; the next run unlinks it.",
        GraphKind::Conflict => {
            "The item was saved in Outlook while tether wrote it; the next run reads the save \
             and applies the conflict policy."
        }
        GraphKind::Invalid => "Check the values in Salesforce; tether retries on the next run.",
        _ => "tether retries on the next run.",
    }
    .into()
}

fn code_of(e: &GraphError) -> String {
    if e.code.is_empty() {
        match e.status {
            0 => "GRAPH_TRANSPORT".into(),
            s => format!("HTTP_{s}"),
        }
    } else {
        e.code.clone()
    }
}

/// `ambiguous`: the call wrote, so an answer lost after sending may mean it happened.
fn call_error(e: &GraphError, ambiguous: bool) -> CallError {
    CallError {
        kind: kind_of(e),
        code: code_of(e),
        message: e.message.clone(),
        retryable: retryable(e),
        ambiguous: ambiguous && matches!(e.kind, GraphKind::Unavailable | GraphKind::Transport),
        hint: hint(e),
    }
}

fn record_error(e: &GraphError) -> RecordError {
    RecordError {
        kind: kind_of(e),
        code: code_of(e),
        message: e.message.clone(),
        retryable: retryable(e),
        hint: hint(e),
    }
}

fn rep_error(e: GraphError) -> RepError {
    let refusal = |e: &GraphError| Refusal {
        code: code_of(e),
        message: e.message.clone(),
        hint: hint(e),
    };
    match e.kind {
        GraphKind::Denied => RepError::ImpersonationDenied(refusal(&e)),
        GraphKind::NoMailbox => RepError::NoMailbox(refusal(&e)),
        GraphKind::CursorExpired => RepError::cursor_expired(&code_of(&e), &e.message),
        _ => RepError::Call(call_error(&e, false)),
    }
}

/// A rep error as the error of a call about one of the rep's items.
fn rep_call_error(e: RepError) -> CallError {
    match e {
        RepError::Call(c) => c,
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

fn invalid_answer(message: String) -> GraphError {
    GraphError::new(GraphKind::Transport, message)
}

/// A write Graph would mail to a meeting's attendees: refused per record (a delete is
/// unlinked instead).
fn would_notify(item_id: &str, what: &str, hint: &str) -> RecordError {
    RecordError {
        kind: ErrorKind::WouldNotify,
        code: "MEETING_WOULD_NOTIFY_ATTENDEES".into(),
        message: format!(
            "event {item_id} is a meeting the rep organised with attendees: {what} over \
             Microsoft Graph would mail them"
        ),
        retryable: false,
        hint: hint.into(),
    }
}

const MOVE_HINT: &str = "Not synced, and not tried again until the event changes: move the \
     meeting in Outlook, or set `events.update_meetings: true` to let tether move such meetings \
     (Graph then mails the attendees an update).";
const DELETE_HINT: &str = "tether unlinked the meeting and left it in the calendar: cancel it in \
     Outlook, or set `events.send_cancellations: true` to let tether delete such meetings \
     (Graph then mails the attendees a cancellation).";

fn no_answer() -> RecordError {
    RecordError {
        kind: ErrorKind::Other,
        code: "GRAPH_NO_ANSWER".into(),
        message: "no answer for the item".into(),
        retryable: true,
        hint: "tether retries on the next run.".into(),
    }
}

/// Which phase of a calendar read a cursor is in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Listing `calendar/events` (a full read), page by page.
    List,
    /// A calendarView delta round over the window from the cursor's start.
    Round,
}

/// The calendar cursor: the phase, the window start of its round, the link, and the series
/// masters read so far. A series deleted in Outlook leaves only its occurrences' `@removed`
/// in the delta (masters are not in it), so on such a page these masters are read by id:
/// a 404 is the series' delete. Ids hold no `,` or space.
#[derive(Debug, Clone, PartialEq)]
struct CalendarCursor {
    phase: Phase,
    start: DateTime<Utc>,
    link: String,
    series: BTreeSet<String>,
}

impl CalendarCursor {
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(4, ' ');
        let (phase, start, link) = (parts.next()?, parts.next()?, parts.next()?);
        let start = DateTime::parse_from_rfc3339(start)
            .ok()?
            .with_timezone(&Utc);
        let phase = match phase {
            "list" => Phase::List,
            "round" => Phase::Round,
            _ => return None,
        };
        let series = parts
            .next()
            .map(|m| {
                m.split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Some(CalendarCursor {
            phase,
            start,
            link: link.to_string(),
            series,
        })
    }

    fn render(&self) -> String {
        let phase = match self.phase {
            Phase::List => "list",
            Phase::Round => "round",
        };
        let mut out = format!("{phase} {} {}", self.start.to_rfc3339(), self.link);
        if !self.series.is_empty() {
            out.push(' ');
            out.push_str(&self.series.iter().cloned().collect::<Vec<_>>().join(","));
        }
        out
    }
}

fn window_of(start: DateTime<Utc>) -> Window {
    Window {
        start,
        end: start + chrono::Duration::days(HORIZON_DAYS),
    }
}

/// The item ids of a page, each once, in order.
fn ids_once<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .filter(|i| seen.insert(i.to_string()))
        .map(str::to_string)
        .collect()
}

impl GraphConnector {
    /// A connector with the admin guide's default contact mapping; new all-day events and
    /// series are created in UTC unless [`with_time_zone`](Self::with_time_zone) says otherwise.
    pub fn new(client: GraphClient) -> Self {
        GraphConnector {
            client,
            contact_mappings: ContactMappings::default(),
            time_zone: "UTC".into(),
            folders: Mutex::default(),
            change_keys: Mutex::default(),
            kinds: Mutex::default(),
            cancellations: Mutex::default(),
            marker: Mutex::default(),
            markers: Mutex::default(),
            meeting_updates: Mutex::default(),
            foreign_cursors: Mutex::default(),
        }
    }

    pub fn with_contact_mapping(mut self, mapping: EffectiveMapping) -> Self {
        self.contact_mappings.set_default(mapping);
        self
    }

    /// Windows zone id new all-day events and series are created in.
    pub fn with_time_zone(mut self, windows_zone: impl Into<String>) -> Self {
        self.time_zone = windows_zone.into();
        self
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    fn contact_mapping(&self, mailbox: &str) -> Arc<EffectiveMapping> {
        self.contact_mappings.of(mailbox)
    }

    fn remember(&self, id: &str, change_key: &str, folder: Folder) {
        if !change_key.is_empty() {
            lock(&self.change_keys).insert(id.to_string(), change_key.to_string());
        }
        lock(&self.kinds).insert(id.to_string(), folder);
    }

    /// The folder's saved cursor is not this connector's (EWS's, from before `api: graph`):
    /// remember it, so the links' ids are translated, and read the folder anew.
    fn foreign_cursor(&self, mailbox: &Mailbox, folder: Folder) -> RepError {
        lock(&self.foreign_cursors).insert((mailbox.address.to_lowercase(), folder));
        RepError::cursor_expired(
            "INVALID_CURSOR",
            "the saved cursor is not a Microsoft Graph one (saved over EWS?)",
        )
    }

    fn forget_folder(&self, mailbox: &Mailbox) {
        lock(&self.folders).remove(&mailbox.address.to_lowercase());
    }

    /// The Salesforce_Sync folder id (looked up, not created, when not yet known).
    async fn sync_folder_id(&self, mailbox: &Mailbox) -> Result<String, RepError> {
        let key = mailbox.address.to_lowercase();
        if let Some(id) = lock(&self.folders).get(&key) {
            return Ok(id.clone());
        }
        let found = self
            .client
            .find_contact_folder_marked(&mailbox.address, SYNC_FOLDER)
            .await
            .map_err(rep_error)?
            .ok_or_else(|| {
                RepError::folder_missing(
                    "ErrorItemNotFound",
                    &format!("the {SYNC_FOLDER} folder does not exist"),
                )
            })?;
        self.note_marker(mailbox, &found);
        lock(&self.folders).insert(key, found.id.clone());
        Ok(found.id)
    }

    /// Keeps what the Salesforce_Sync folder just read says of who syncs the mailbox.
    fn note_marker(&self, mailbox: &Mailbox, folder: &ContactFolder) {
        let seen = match &folder.synced_by {
            Some(v) => FolderMarker::Marked(v.clone()),
            None => FolderMarker::Unmarked,
        };
        lock(&self.markers).insert(mailbox.address.to_lowercase(), seen);
    }

    /// A URL of this Graph as a `$batch` item names it (relative to the version root).
    fn relative(&self, url: &Url) -> String {
        let root = self
            .client
            .options()
            .graph_url
            .as_str()
            .trim_end_matches('/');
        url.as_str()
            .strip_prefix(root)
            .unwrap_or(url.as_str())
            .to_string()
    }

    /// The collection of `folder`'s items (`…/contactFolders/{id}/contacts`, `…/events`).
    async fn collection(&self, mailbox: &Mailbox, folder: Folder) -> Result<Vec<String>, RepError> {
        Ok(match folder {
            Folder::SalesforceSyncContacts => vec![
                "contactFolders".into(),
                self.sync_folder_id(mailbox).await?,
                "contacts".into(),
            ],
            Folder::Contacts => vec!["contacts".into()],
            Folder::Calendar => vec!["events".into()],
        })
    }

    fn item_url(
        &self,
        mailbox: &str,
        collection: &[String],
        id: Option<&str>,
        query: &[(&str, &str)],
    ) -> String {
        let mut segments: Vec<&str> = collection.iter().map(String::as_str).collect();
        segments.extend(id);
        self.relative(&self.client.user_url(mailbox, &segments, query))
    }

    /// Sends `items` in `$batch`es of at most [`MAILBOX_CONCURRENCY`]: each item's body or
    /// failure, in order.
    async fn run_batch(
        &self,
        mailbox: &str,
        items: Vec<BatchItem>,
    ) -> Result<Vec<Result<Value, GraphError>>, GraphError> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(MAILBOX_CONCURRENCY) {
            let mut answers = self.client.batch(mailbox, chunk).await?;
            for item in chunk {
                let what = format!("{} {} of {mailbox}", item.method, item.url);
                out.push(match answers.remove(&item.id) {
                    Some(a) => a.into_result(&what),
                    None => Err(GraphError::new(
                        GraphKind::Unavailable,
                        format!("{what}: the batch answer did not include it"),
                    )),
                });
            }
        }
        Ok(out)
    }

    /// Items of `folder` by id, as Graph answers them (with the properties tether reads);
    /// `Ok(None)` for those that are gone.
    async fn fetch(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        ids: &[String],
    ) -> Result<Vec<Result<Option<Value>, GraphError>>, RepError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let collection = self.collection(mailbox, folder).await?;
        let (select, expand) = match folder {
            Folder::Calendar => (None, event::expand()),
            _ => (Some(contact::select().join(",")), contact::expand()),
        };
        let mut query = vec![("$expand", expand.as_str())];
        if let Some(s) = &select {
            query.push(("$select", s.as_str()));
        }
        let items: Vec<BatchItem> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                BatchItem::get(
                    (i + 1).to_string(),
                    self.item_url(&mailbox.address, &collection, Some(id), &query),
                )
            })
            .collect();
        let answers = self
            .run_batch(&mailbox.address, items)
            .await
            .map_err(rep_error)?;
        Ok(answers
            .into_iter()
            .map(|a| match a {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.kind == GraphKind::Gone => Ok(None),
                Err(e) => Err(e),
            })
            .collect())
    }

    /// The engine's view of an item read from `folder`.
    fn item(&self, mailbox: &Mailbox, folder: Folder, v: &Value) -> Result<MailItem, CallError> {
        let id = v["id"]
            .as_str()
            .ok_or_else(|| call_error(&invalid_answer("an item without `id`".into()), false))?
            .to_string();
        let change_key = v["changeKey"].as_str().unwrap_or("").to_string();
        let (record, related) = match folder {
            Folder::Calendar => (
                event::to_record(v, &mailbox.address).map_err(|why| undatable_read(&id, why))?,
                event::related_in_outlook(v),
            ),
            _ => (
                contact::to_record(v, &self.contact_mapping(&mailbox.address)),
                false,
            ),
        };
        self.remember(&id, &change_key, folder);
        Ok(MailItem {
            item_id: id,
            change_key,
            record,
            salesforce_id: property::value_of(v).map(str::to_string),
            related_in_outlook: related,
        })
    }

    async fn sync_contacts(
        &self,
        mailbox: &Mailbox,
        cursor: Option<&str>,
    ) -> Result<FolderPage, RepError> {
        let (folder, url, resumed) = match cursor.map(|c| c.split_once(' ')) {
            Some(None) => return Err(self.foreign_cursor(mailbox, Folder::SalesforceSyncContacts)),
            Some(Some((folder, link))) => {
                let url = self
                    .client
                    .cursor_url(link)
                    .map_err(|_| self.foreign_cursor(mailbox, Folder::SalesforceSyncContacts))?;
                // A new read (from the last round's deltaLink): is the folder still the
                // rep's Salesforce_Sync? A folder the rep deleted in Outlook sits in Deleted
                // Items with its id, and its delta goes on as before. One call a read.
                if url.query().is_some_and(|q| q.contains("deltatoken")) {
                    let now = self
                        .client
                        .find_contact_folder_marked(&mailbox.address, SYNC_FOLDER)
                        .await
                        .map_err(rep_error)?;
                    if let Some(f) = &now {
                        self.note_marker(mailbox, f);
                    }
                    if now.as_ref().map(|f| f.id.as_str()) != Some(folder) {
                        self.forget_folder(mailbox);
                        return Err(RepError::folder_missing(
                            "ErrorItemNotFound",
                            &format!(
                                "the {SYNC_FOLDER} folder is gone from Contacts (deleted, or in \
                                 Deleted Items)"
                            ),
                        ));
                    }
                }
                lock(&self.folders).insert(mailbox.address.to_lowercase(), folder.to_string());
                (folder.to_string(), url, true)
            }
            None => {
                let folder = self.sync_folder_id(mailbox).await?;
                let url = self
                    .client
                    .contacts_delta_url(&mailbox.address, &folder, &["changeKey"]);
                (folder, url, false)
            }
        };
        let page = match self.client.delta_page(&mailbox.address, url, resumed).await {
            Ok(PageOutcome::Page(p)) => p,
            Ok(PageOutcome::CursorExpired(e)) => {
                return Err(RepError::cursor_expired(&code_of(&e), &e.message));
            }
            Err(e) if e.kind == GraphKind::Gone => {
                self.forget_folder(mailbox);
                return Err(RepError::folder_missing(&code_of(&e), &e.message));
            }
            Err(e) => return Err(rep_error(e)),
        };
        let mut changes = Vec::new();
        let changed = ids_once(page.changed.iter().filter_map(|i| i["id"].as_str()));
        let removed: BTreeSet<&str> = page.removed.iter().map(String::as_str).collect();
        let changed: Vec<String> = changed
            .into_iter()
            .filter(|i| !removed.contains(i.as_str()))
            .collect();
        let fetched = self
            .fetch(mailbox, Folder::SalesforceSyncContacts, &changed)
            .await?;
        for answer in fetched {
            match answer {
                Ok(Some(v)) => changes.push(MailChange::Upsert(
                    self.item(mailbox, Folder::SalesforceSyncContacts, &v)
                        .map_err(RepError::Call)?,
                )),
                // Deleted since the page: the next round reports it.
                Ok(None) => {}
                Err(e) => return Err(RepError::Call(call_error(&e, false))),
            }
        }
        for id in ids_once(page.removed.iter().map(String::as_str)) {
            lock(&self.change_keys).remove(&id);
            changes.push(MailChange::Delete { item_id: id });
        }
        Ok(FolderPage {
            changes,
            cursor: format!("{folder} {}", page.link),
            more: !page.last,
        })
    }

    async fn sync_calendar(
        &self,
        mailbox: &Mailbox,
        cursor: Option<&str>,
        window: EventWindow,
    ) -> Result<FolderPage, RepError> {
        let parsed = match cursor {
            None => None,
            Some(c) => Some(
                CalendarCursor::parse(c)
                    .ok_or_else(|| self.foreign_cursor(mailbox, Folder::Calendar))?,
            ),
        };
        let fresh_round = |start: DateTime<Utc>, series: BTreeSet<String>| CalendarCursor {
            phase: Phase::Round,
            start,
            link: self
                .client
                .calendar_view_delta_url(&mailbox.address, window_of(start))
                .to_string(),
            series,
        };
        match parsed {
            None => {
                // A full read: every event of the calendar, then a round for the cursor.
                let url = self.client.user_url(
                    &mailbox.address,
                    &["calendar", "events"],
                    &[("$expand", &event::expand())],
                );
                self.list_calendar(mailbox, url, window.start, BTreeSet::new())
                    .await
            }
            Some(c) if c.phase == Phase::List => {
                let url = self.client.cursor_url(&c.link).map_err(rep_error)?;
                self.list_calendar(mailbox, url, window.start, c.series)
                    .await
            }
            Some(mut c) => {
                let url = self.client.cursor_url(&c.link).map_err(rep_error)?;
                let page = match self.client.delta_page(&mailbox.address, url, true).await {
                    Ok(PageOutcome::Page(p)) => p,
                    Ok(PageOutcome::CursorExpired(e)) => {
                        return Err(RepError::cursor_expired(&code_of(&e), &e.message));
                    }
                    Err(e) => return Err(rep_error(e)),
                };
                let changes = self
                    .fold_events(mailbox, &page.changed, &page.removed, &mut c.series)
                    .await?;
                let (cursor, more) = match (page.last, c.start == window.start) {
                    (false, _) | (true, true) => (
                        CalendarCursor {
                            link: page.link,
                            ..c
                        },
                        !page.last,
                    ),
                    // The window moved: the old round is read to its end; a new one starts
                    // over the new window (its events come as upserts, none as deletes).
                    (true, false) => (fresh_round(window.start, c.series), true),
                };
                Ok(FolderPage {
                    changes,
                    cursor: cursor.render(),
                    more,
                })
            }
        }
    }

    /// One page of the calendar listing; after its last page, a round over the window.
    async fn list_calendar(
        &self,
        mailbox: &Mailbox,
        url: Url,
        start: DateTime<Utc>,
        mut series: BTreeSet<String>,
    ) -> Result<FolderPage, RepError> {
        let mut req = super::Request::new(Method::GET, url, "events");
        req.prefer.push(format!(
            "odata.maxpagesize={}",
            self.client.options().page_size
        ));
        let page = self
            .client
            .send(&mailbox.address, &req)
            .await
            .map_err(rep_error)?
            .body;
        let mut changes = Vec::new();
        for v in page["value"].as_array().into_iter().flatten() {
            if event::kind(v) == "seriesMaster"
                && let Some(id) = v["id"].as_str()
            {
                series.insert(id.to_string());
            }
            changes.push(MailChange::Upsert(
                self.item(mailbox, Folder::Calendar, v)
                    .map_err(RepError::Call)?,
            ));
        }
        let cursor = match page["@odata.nextLink"].as_str() {
            Some(next) => CalendarCursor {
                phase: Phase::List,
                start,
                link: next.to_string(),
                series,
            },
            None => CalendarCursor {
                phase: Phase::Round,
                start,
                link: self
                    .client
                    .calendar_view_delta_url(&mailbox.address, window_of(start))
                    .to_string(),
                series,
            },
        };
        Ok(FolderPage {
            changes,
            cursor: cursor.render(),
            more: true,
        })
    }

    /// The changes of a calendarView delta page as the engine knows events: occurrences and
    /// exceptions folded into their series master (read by id), `@removed` events read by id
    /// (only those gone are deletes). When some are gone, the known series masters are read
    /// by id too: a deleted series shows in the delta only as its occurrences' `@removed`.
    async fn fold_events(
        &self,
        mailbox: &Mailbox,
        changed: &[Value],
        removed: &[String],
        series: &mut BTreeSet<String>,
    ) -> Result<Vec<MailChange>, RepError> {
        let wanted = ids_once(
            changed
                .iter()
                .filter_map(|v| match event::kind(v) {
                    "occurrence" | "exception" => v["seriesMasterId"].as_str(),
                    _ => v["id"].as_str(),
                })
                .chain(removed.iter().map(String::as_str)),
        );
        let mut changes = Vec::new();
        let mut masters = Vec::new();
        let mut gone = Vec::new();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let fetched = self.fetch(mailbox, Folder::Calendar, &wanted).await?;
        for (id, answer) in wanted.iter().zip(fetched) {
            match answer {
                Ok(Some(v)) => match (event::kind(&v), v["seriesMasterId"].as_str()) {
                    ("occurrence" | "exception", Some(master)) => masters.push(master.to_string()),
                    (kind, _) => {
                        if kind == "seriesMaster" {
                            series.insert(id.clone());
                        }
                        done.insert(id.clone());
                        changes.push(MailChange::Upsert(
                            self.item(mailbox, Folder::Calendar, &v)
                                .map_err(RepError::Call)?,
                        ));
                    }
                },
                Ok(None) if removed.contains(id) => {
                    gone.push(id.clone());
                }
                Ok(None) => {}
                Err(e) => return Err(RepError::Call(call_error(&e, false))),
            }
        }
        series.extend(masters.iter().cloned());
        // Occurrences gone: their series may be gone with them.
        if !gone.is_empty() {
            masters.extend(series.iter().cloned());
        }
        let masters: Vec<String> = ids_once(masters.iter().map(String::as_str))
            .into_iter()
            .filter(|m| !done.contains(m) && !gone.contains(m))
            .collect();
        for (id, answer) in masters
            .iter()
            .zip(self.fetch(mailbox, Folder::Calendar, &masters).await?)
        {
            match answer {
                Ok(Some(v)) => changes.push(MailChange::Upsert(
                    self.item(mailbox, Folder::Calendar, &v)
                        .map_err(RepError::Call)?,
                )),
                Ok(None) if series.contains(id) => gone.push(id.clone()),
                Ok(None) => {}
                Err(e) => return Err(RepError::Call(call_error(&e, false))),
            }
        }
        for id in gone {
            series.remove(&id);
            lock(&self.change_keys).remove(&id);
            changes.push(MailChange::Delete { item_id: id });
        }
        Ok(changes)
    }

    /// The transactionId of a create: the same for every attempt at the same event, another
    /// for another event (Graph refuses reuse for a different one).
    fn transaction_id(salesforce_id: &str, body: &Value) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, body.to_string().as_bytes());
        let hex: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("tether-{salesforce_id}-{hex}")
    }

    /// The body of each create (or why it cannot be made).
    fn create_body(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        c: &MailCreate,
    ) -> Result<Value, RecordError> {
        let mut body = match (&c.record, folder) {
            (Record::Event(e), Folder::Calendar) => {
                event::body(e, &self.time_zone, None).map_err(undatable_write)?
            }
            (Record::Contact(r), Folder::SalesforceSyncContacts | Folder::Contacts) => {
                contact::body(r, &self.contact_mapping(&mailbox.address), None)
            }
            _ => {
                return Err(RecordError {
                    kind: ErrorKind::Other,
                    code: "INVALID_RECORD".into(),
                    message: format!(
                        "a {} cannot be created in {}",
                        c.record.kind().name(),
                        folder.name()
                    ),
                    retryable: false,
                    hint: "tether retries on the next run.".into(),
                });
            }
        };
        let mut props = body["singleValueExtendedProperties"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        props.extend(
            property::member(&c.salesforce_id)
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        body["singleValueExtendedProperties"] = Value::Array(props);
        if folder == Folder::Calendar {
            body["transactionId"] = Value::String(Self::transaction_id(&c.salesforce_id, &body));
        }
        Ok(body)
    }
}

impl MailConnector for GraphConnector {
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    fn use_contact_mapping(&self, mailbox: &Mailbox, mapping: &EffectiveMapping) {
        self.contact_mappings.set(&mailbox.address, mapping);
    }

    fn allow_cancellations(&self, mailbox: &Mailbox, allowed: bool) {
        allow(&self.cancellations, mailbox, allowed);
    }

    fn allow_meeting_updates(&self, mailbox: &Mailbox, allowed: bool) {
        allow(&self.meeting_updates, mailbox, allowed);
    }

    async fn sync_folder(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        cursor: Option<&str>,
        window: Option<EventWindow>,
    ) -> Result<FolderPage, RepError> {
        match folder {
            Folder::Calendar => {
                let window = window.ok_or_else(|| {
                    RepError::Call(CallError {
                        kind: ErrorKind::Other,
                        code: "NO_EVENT_WINDOW".into(),
                        message: "the calendar is read over an event window; none was given".into(),
                        retryable: false,
                        ambiguous: false,
                        hint: "tether retries on the next run.".into(),
                    })
                })?;
                self.sync_calendar(mailbox, cursor, window).await
            }
            Folder::SalesforceSyncContacts => self.sync_contacts(mailbox, cursor).await,
            Folder::Contacts => Err(RepError::Call(CallError {
                kind: ErrorKind::Other,
                code: "NOT_SYNCED".into(),
                message: "the rep's own Contacts folder is never read".into(),
                retryable: false,
                ambiguous: false,
                hint: "only Salesforce_Sync syncs.".into(),
            })),
        }
    }

    async fn ensure_folder(&self, mailbox: &Mailbox, folder: Folder) -> Result<(), RepError> {
        if folder != Folder::SalesforceSyncContacts {
            return Ok(());
        }
        self.forget_folder(mailbox);
        let marker = lock(&self.marker).clone();
        let f = self
            .client
            .ensure_contact_folder_marked(&mailbox.address, SYNC_FOLDER, marker.as_deref())
            .await
            .map_err(rep_error)?;
        self.note_marker(mailbox, &f);
        lock(&self.folders).insert(mailbox.address.to_lowercase(), f.id);
        Ok(())
    }

    fn use_marker(&self, marker: &MailboxMarker) {
        *lock(&self.marker) = Some(marker.encode());
    }

    fn folder_marker(&self, mailbox: &Mailbox) -> Option<FolderMarker> {
        let seen = lock(&self.markers)
            .get(&mailbox.address.to_lowercase())
            .cloned()?;
        // A folder this connector made with this tether's marker needs nothing.
        match (&seen, lock(&self.marker).as_deref()) {
            (FolderMarker::Marked(v), Some(ours)) if v == ours => None,
            _ => Some(seen),
        }
    }

    async fn mark_folder(&self, mailbox: &Mailbox, marker: &MailboxMarker) -> Result<(), RepError> {
        let id = self.sync_folder_id(mailbox).await?;
        let value = marker.encode();
        self.client
            .set_contact_folder_marker(&mailbox.address, &id, &value)
            .await
            .map_err(rep_error)?;
        lock(&self.markers).insert(mailbox.address.to_lowercase(), FolderMarker::Marked(value));
        Ok(())
    }

    async fn create(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        items: &[MailCreate],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        let collection = self
            .collection(mailbox, folder)
            .await
            .map_err(rep_call_error)?;
        let url = self.item_url(&mailbox.address, &collection, None, &[]);
        let prepared: Vec<Result<Value, RecordError>> = items
            .iter()
            .map(|c| self.create_body(mailbox, folder, c))
            .collect();
        let batch: Vec<BatchItem> = prepared
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let body = p.as_ref().ok()?;
                Some(BatchItem {
                    id: (i + 1).to_string(),
                    method: Method::POST,
                    url: url.clone(),
                    body: Some(body.clone()),
                    depends_on: Vec::new(),
                })
            })
            .collect();
        let mut sent = self
            .run_batch(&mailbox.address, batch)
            .await
            .map_err(|e| call_error(&e, true))?
            .into_iter();
        Ok(prepared
            .into_iter()
            .map(|p| match p {
                Err(e) => Outcome::Failed(e),
                Ok(_) => match sent.next() {
                    Some(Ok(v)) => {
                        let id = v["id"].as_str().unwrap_or("").to_string();
                        let change_key = v["changeKey"].as_str().unwrap_or("").to_string();
                        if id.is_empty() {
                            return Outcome::Failed(no_answer());
                        }
                        self.remember(&id, &change_key, folder);
                        Outcome::Ok(MailRef {
                            item_id: id,
                            change_key,
                        })
                    }
                    // Not run (throttled beyond the retries) or refused.
                    Some(Err(e)) => Outcome::Failed(record_error(&e)),
                    None => Outcome::Failed(no_answer()),
                },
            })
            .collect())
    }

    async fn update(
        &self,
        mailbox: &Mailbox,
        items: &[(String, Record)],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        let may_move = lock(&self.meeting_updates).contains(&mailbox.address.to_lowercase());
        let mut out: Vec<Option<Outcome<MailRef>>> = vec![None; items.len()];
        for object in ObjectKind::ALL {
            let idx: Vec<usize> = (0..items.len())
                .filter(|&i| items[i].1.kind() == object)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let folder = Folder::for_object(object);
            let ids: Vec<String> = idx.iter().map(|&i| items[i].0.clone()).collect();
            // The item as it is now, so what the mapping does not name survives.
            let current = self
                .fetch(mailbox, folder, &ids)
                .await
                .map_err(rep_call_error)?;
            let collection = self
                .collection(mailbox, folder)
                .await
                .map_err(rep_call_error)?;
            let mut send = Vec::new();
            let mut batch = Vec::new();
            for (&i, cur) in idx.iter().zip(current) {
                let (id, record) = &items[i];
                let now = match cur {
                    Ok(Some(v)) => v,
                    Ok(None) => {
                        out[i] = Some(Outcome::Failed(record_error(&GraphError::new(
                            GraphKind::Gone,
                            format!("item {id} of {} is gone", mailbox.address),
                        ))));
                        continue;
                    }
                    Err(e) => {
                        out[i] = Some(Outcome::Failed(record_error(&e)));
                        continue;
                    }
                };
                // The version tether last saw; an edit since then must not be overwritten.
                let seen = lock(&self.change_keys).get(id).cloned();
                let now_key = now["changeKey"].as_str().unwrap_or("");
                if seen.as_deref().is_some_and(|s| s != now_key) {
                    out[i] = Some(Outcome::Failed(record_error(&GraphError::new(
                        GraphKind::Conflict,
                        format!(
                            "item {id} of {} changed since tether read it",
                            mailbox.address
                        ),
                    ))));
                    continue;
                }
                let body = match record {
                    Record::Contact(c) => {
                        contact::body(c, &self.contact_mapping(&mailbox.address), Some(&now))
                    }
                    Record::Event(e) => match event::body(e, &self.time_zone, Some(&now)) {
                        Ok(b)
                            if !may_move
                                && event::is_meeting_the_rep_organised(&now)
                                && event::changes_time_or_place(&b, &now) =>
                        {
                            out[i] =
                                Some(Outcome::Failed(would_notify(id, "moving it", MOVE_HINT)));
                            continue;
                        }
                        Ok(b) => b,
                        Err(why) => {
                            out[i] = Some(Outcome::Failed(undatable_write(why)));
                            continue;
                        }
                    },
                };
                batch.push(BatchItem {
                    id: (i + 1).to_string(),
                    method: Method::PATCH,
                    url: self.item_url(&mailbox.address, &collection, Some(id), &[]),
                    body: Some(body),
                    depends_on: Vec::new(),
                });
                send.push(i);
            }
            let answers = self
                .run_batch(&mailbox.address, batch)
                .await
                .map_err(|e| call_error(&e, false))?;
            for (i, answer) in send.into_iter().zip(answers) {
                out[i] = Some(match answer {
                    Ok(v) => {
                        let change_key = v["changeKey"].as_str().unwrap_or("").to_string();
                        self.remember(&items[i].0, &change_key, folder);
                        Outcome::Ok(MailRef {
                            item_id: items[i].0.clone(),
                            change_key,
                        })
                    }
                    Err(e) => Outcome::Failed(record_error(&e)),
                });
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Failed(no_answer())))
            .collect())
    }

    async fn delete(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        // The folder of each item: known from this run's reads and writes, else found out
        // (an event read by id, or else a contact), so no delete goes to the wrong
        // collection and takes a 404 there for "already deleted".
        let mut known: Vec<Option<Folder>> = {
            let kinds = lock(&self.kinds);
            item_ids.iter().map(|id| kinds.get(id).copied()).collect()
        };
        // A meeting the rep organised with attendees: a delete would cancel it for them.
        let may_cancel = lock(&self.cancellations).contains(&mailbox.address.to_lowercase());
        let probe: Vec<usize> = (0..item_ids.len())
            .filter(|&i| match known[i] {
                None => true,
                Some(f) => f == Folder::Calendar && !may_cancel,
            })
            .collect();
        let probe_ids: Vec<String> = probe.iter().map(|&i| item_ids[i].clone()).collect();
        let mut meetings = BTreeSet::new();
        for (&i, answer) in probe.iter().zip(
            self.fetch(mailbox, Folder::Calendar, &probe_ids)
                .await
                .map_err(rep_call_error)?,
        ) {
            match answer {
                Ok(Some(v)) => {
                    known[i] = Some(Folder::Calendar);
                    if !may_cancel && event::is_meeting_the_rep_organised(&v) {
                        meetings.insert(item_ids[i].clone());
                    }
                }
                _ => {
                    known[i].get_or_insert(Folder::SalesforceSyncContacts);
                }
            }
        }
        let known: Vec<Folder> = known
            .into_iter()
            .map(|f| f.unwrap_or(Folder::SalesforceSyncContacts))
            .collect();
        let mut batch = Vec::new();
        let mut sent = Vec::new();
        for (i, (id, folder)) in item_ids.iter().zip(&known).enumerate() {
            if meetings.contains(id) {
                continue;
            }
            let collection = self
                .collection(mailbox, *folder)
                .await
                .map_err(rep_call_error)?;
            batch.push(BatchItem {
                id: (i + 1).to_string(),
                method: Method::DELETE,
                url: self.item_url(&mailbox.address, &collection, Some(id), &[]),
                body: None,
                depends_on: Vec::new(),
            });
            sent.push(i);
        }
        let mut answers = self
            .run_batch(&mailbox.address, batch)
            .await
            .map_err(|e| call_error(&e, false))?
            .into_iter();
        Ok(item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                if meetings.contains(id) {
                    return Outcome::Failed(would_notify(id, "deleting it", DELETE_HINT));
                }
                debug_assert!(sent.contains(&i));
                match answers.next() {
                    Some(Ok(_)) => {
                        lock(&self.change_keys).remove(id);
                        Outcome::Ok(())
                    }
                    Some(Err(e)) => Outcome::Failed(record_error(&e)),
                    None => Outcome::Failed(no_answer()),
                }
            })
            .collect())
    }

    async fn get_items(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        let mut out = Vec::new();
        for answer in self
            .fetch(mailbox, folder, item_ids)
            .await
            .map_err(rep_call_error)?
        {
            match answer {
                Ok(Some(v)) => out.push(self.item(mailbox, folder, &v)?),
                Ok(None) => {}
                Err(e) => return Err(call_error(&e, false)),
            }
        }
        Ok(out)
    }

    async fn change_keys(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailRef>, CallError> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let collection = self
            .collection(mailbox, folder)
            .await
            .map_err(rep_call_error)?;
        let batch: Vec<BatchItem> = item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                BatchItem::get(
                    (i + 1).to_string(),
                    self.item_url(
                        &mailbox.address,
                        &collection,
                        Some(id),
                        &[("$select", "changeKey")],
                    ),
                )
            })
            .collect();
        let mut out = Vec::new();
        for (id, answer) in item_ids.iter().zip(
            self.run_batch(&mailbox.address, batch)
                .await
                .map_err(|e| call_error(&e, false))?,
        ) {
            match answer {
                Ok(v) => out.push(MailRef {
                    item_id: id.clone(),
                    change_key: v["changeKey"].as_str().unwrap_or("").to_string(),
                }),
                Err(e) if e.kind == GraphKind::Gone => {}
                Err(e) => return Err(call_error(&e, false)),
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
        let collection = match self.collection(mailbox, folder).await {
            Ok(c) => c,
            // No folder, so nothing tether created in it.
            Err(RepError::FolderMissing(_)) => return Ok(Vec::new()),
            Err(e) => return Err(rep_call_error(e)),
        };
        let expand = match folder {
            Folder::Calendar => event::expand(),
            _ => contact::expand(),
        };
        let filters: Vec<String> = salesforce_ids.iter().map(|s| property::filter(s)).collect();
        let batch: Vec<BatchItem> = filters
            .iter()
            .enumerate()
            .map(|(i, filter)| {
                BatchItem::get(
                    (i + 1).to_string(),
                    self.item_url(
                        &mailbox.address,
                        &collection,
                        None,
                        &[("$filter", filter), ("$expand", &expand)],
                    ),
                )
            })
            .collect();
        let mut out = Vec::new();
        for answer in self
            .run_batch(&mailbox.address, batch)
            .await
            .map_err(|e| call_error(&e, false))?
        {
            let list = answer.map_err(|e| call_error(&e, false))?;
            for v in list["value"].as_array().into_iter().flatten() {
                // Only items that really carry one of the ids: the filter is the service's.
                if property::value_of(v).is_some_and(|s| salesforce_ids.iter().any(|w| w == s)) {
                    out.push(self.item(mailbox, folder, v)?);
                }
            }
        }
        Ok(out)
    }

    async fn meetings_a_delete_would_cancel(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<String>, CallError> {
        let answers = self
            .fetch(mailbox, Folder::Calendar, item_ids)
            .await
            .map_err(rep_call_error)?;
        Ok(item_ids
            .iter()
            .zip(answers)
            .filter(|(_, a)| matches!(a, Ok(Some(v)) if event::is_meeting_the_rep_organised(v)))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn translate_foreign_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<(String, String)>, CallError> {
        let key = (mailbox.address.to_lowercase(), folder);
        if !lock(&self.foreign_cursors).contains(&key) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for chunk in item_ids.chunks(TRANSLATE_LIMIT) {
            let translated = self
                .client
                .translate_ews_ids(&mailbox.address, chunk)
                .await
                .map_err(|e| CallError {
                    hint: format!(
                        "tether keeps this rep's links as they are and retries on the next run \
                         (nothing is created or deleted meanwhile); {}",
                        hint(&e)
                    ),
                    ..call_error(&e, false)
                })?;
            out.extend(translated);
        }
        Ok(out)
    }
}
