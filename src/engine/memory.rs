//! In-memory connectors for tests and property tests: an Exchange with mailboxes and change
//! feeds, and a Salesforce org with users, records and an org-wide change log. They count
//! every call the way the real services would be called, enforce the batch limits, store
//! values the way the real services reformat them (Exchange turns newlines into CRLF;
//! Salesforce rejects values longer than a field), and inject faults on request.

use crate::engine::connector::*;
use crate::model::catalog::{SalesforceObject, salesforce_field};
use crate::model::{Event, ObjectKind, Record};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

/// Faults to inject. Record keys are item ids, Salesforce ids, contact emails or event
/// subjects.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Writes touching these records fail (per record, retryable).
    pub fail_records: BTreeSet<String>,
    /// The next N write calls fail whole.
    pub fail_write_calls: u32,
    /// The next N create calls do the creates, then break off (ambiguous).
    pub ambiguous_creates: u32,
    /// Mailboxes whose impersonation is denied.
    pub denied: BTreeSet<String>,
    /// The next N version reads (`modstamps`, `change_keys`) fail whole.
    pub fail_version_reads: u32,
    /// The next N change-feed reads from a cursor find it no longer accepted.
    pub expire_cursors: u32,
}

impl Faults {
    fn hits(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.fail_records.contains(*k))
    }

    /// A version read: fails when one is due to.
    fn version_read(&mut self) -> Result<(), CallError> {
        if self.fail_version_reads == 0 {
            return Ok(());
        }
        self.fail_version_reads -= 1;
        Err(call_failed(false))
    }
}

fn identity(record: &Record) -> String {
    match record {
        Record::Contact(c) => c.email().to_lowercase(),
        Record::Event(e) => e.subject.clone(),
    }
}

/// The error codes the in-memory connectors answer with: their own, as a third vendor's
/// would be, classified into the engine's kinds like any connector's.
pub mod codes {
    pub const LOCKED: &str = "LOCKED";
    pub const TRANSIENT: &str = "TRANSIENT";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const CONNECTION_RESET: &str = "CONNECTION_RESET";
    pub const GONE: &str = "GONE";
    pub const TOO_LONG: &str = "TOO_LONG";
    pub const DENIED: &str = "DENIED";
    pub const NO_MAILBOX: &str = "NO_MAILBOX";
    pub const FOLDER_MISSING: &str = "FOLDER_MISSING";
    pub const BAD_CURSOR: &str = "BAD_CURSOR";
}

const RETRY_HINT: &str = "tether retries on the next run.";

fn record_error(kind: ErrorKind, code: &str, message: &str, retryable: bool) -> RecordError {
    let hint = match kind {
        ErrorKind::Gone => "The record was deleted meanwhile; the next run unlinks it.",
        ErrorKind::TooLong => "Shorten the value, or map it to a longer field.",
        _ => RETRY_HINT,
    };
    RecordError {
        kind,
        code: code.into(),
        message: message.into(),
        retryable,
        hint: hint.into(),
    }
}

/// An injected per-record failure: a passing one, as a lock or a server hiccup would be.
fn record_failed(kind: ErrorKind, code: &str) -> RecordError {
    record_error(kind, code, "injected failure", true)
}

fn call_failed(ambiguous: bool) -> CallError {
    CallError {
        kind: ErrorKind::Other,
        code: if ambiguous {
            codes::CONNECTION_RESET
        } else {
            codes::UNAVAILABLE
        }
        .into(),
        message: "injected failure".into(),
        retryable: true,
        ambiguous,
        hint: RETRY_HINT.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Exchange

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailCounts {
    pub sync_folder: u64,
    /// Change-feed calls per folder.
    pub sync_folder_by: BTreeMap<Folder, u64>,
    pub ensure_folder: u64,
    pub create: u64,
    pub update: u64,
    pub delete: u64,
    pub find: u64,
    pub get_items: u64,
    /// The mailbox of each change-feed read and each write, in call order: `("read", a)`,
    /// `("write", a)` (which reps a cycle had read before it wrote).
    pub mailbox_calls: Vec<(&'static str, String)>,
}

impl MailCounts {
    pub fn total(&self) -> u64 {
        self.sync_folder
            + self.ensure_folder
            + self.create
            + self.update
            + self.delete
            + self.find
            + self.get_items
    }
}

#[derive(Debug, Clone)]
struct StoredItem {
    item: MailItem,
    seq: u64,
    /// When the mailbox's clock says the item was made (Exchange's DateTimeCreated).
    created: DateTime<Utc>,
}

/// An item in the mailbox's Deleted Items: where it was deleted from.
#[derive(Debug, Clone)]
struct DeletedItem {
    folder: Folder,
    stored: StoredItem,
}

#[derive(Debug, Clone, Default)]
struct FolderData {
    exists: bool,
    items: BTreeMap<String, StoredItem>,
    deleted: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct ExchangeData {
    seq: u64,
    next_id: u64,
    mailboxes: BTreeMap<String, BTreeMap<Folder, FolderData>>,
    counts: MailCounts,
    faults: Faults,
    /// Largest batch seen per write kind, to check batching.
    max_batch: usize,
    /// The event window each mailbox's calendar feed was last read with.
    windows: BTreeMap<String, EventWindow>,
    /// Each mailbox's Deleted Items: a delete, the rep's or tether's, moves an item there
    /// (as Outlook and MoveToDeletedItems do), stamp and creation time kept.
    deleted_items: BTreeMap<String, Vec<DeletedItem>>,
    /// The time items are created at (`set_clock`).
    clock: DateTime<Utc>,
}

/// Items a MemoryExchange write or read by id takes.
pub const MEMORY_MAIL_BATCH: usize = 50;
/// Records a MemoryCrm write or read by id takes.
pub const MEMORY_CRM_BATCH: usize = 200;

/// Exchange in memory.
#[derive(Debug, Default)]
pub struct MemoryExchange {
    data: Mutex<ExchangeData>,
    /// Changes per change-feed page.
    pub page_size: usize,
}

/// Exchange stores bodies with CRLF line ends; the engine must not see that as a change.
fn as_exchange_stores(mut record: Record) -> Record {
    match &mut record {
        Record::Contact(c) => {
            if let Some(b) = c.fields.get_mut("Description") {
                *b = b.replace("\r\n", "\n").replace('\n', "\r\n");
            }
        }
        Record::Event(e) => e.body = e.body.replace("\r\n", "\n").replace('\n', "\r\n"),
    }
    record
}

/// `written` applied over `current` (`None`: a create) as the real connectors apply a
/// write: a contact's named fields change and the others stay; an event's fields its
/// writer does not map (`Event::unmapped`, custom fields it does not name) stay.
fn overlay(current: Option<&Record>, written: &Record) -> Record {
    let mut out = written.clone();
    match (current, &mut out) {
        (Some(Record::Contact(old)), Record::Contact(c)) => {
            let named = std::mem::take(&mut c.fields);
            c.fields = old.fields.clone();
            c.fields.extend(named);
        }
        (current, Record::Event(e)) => {
            let old = match current {
                Some(Record::Event(old)) => old.clone(),
                _ => Event::new("", e.time),
            };
            for f in std::mem::take(&mut e.unmapped) {
                match f.as_str() {
                    "Subject" => e.subject = old.subject.clone(),
                    "Location" => e.location = old.location.clone(),
                    "Description" => e.body = old.body.clone(),
                    "ShowAs" => e.show_as = old.show_as,
                    _ => {}
                }
            }
            for (k, v) in old.extra {
                e.extra.entry(k).or_insert(v);
            }
            e.extra.retain(|_, v| !v.is_empty());
        }
        _ => {}
    }
    if let Record::Contact(c) = &mut out {
        c.fields.retain(|_, v| !v.is_empty());
    }
    out
}

impl MemoryExchange {
    pub fn new() -> Self {
        MemoryExchange {
            data: Mutex::new(ExchangeData {
                clock: Utc::now(),
                ..ExchangeData::default()
            }),
            page_size: 512,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ExchangeData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A mailbox with a calendar (Salesforce_Sync does not exist until created).
    pub fn add_mailbox(&self, address: &str) {
        let mut d = self.lock();
        let folders = d.mailboxes.entry(address.to_string()).or_default();
        folders.entry(Folder::Calendar).or_default().exists = true;
        folders.entry(Folder::Contacts).or_default().exists = true;
        folders.entry(Folder::SalesforceSyncContacts).or_default();
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }
    /// The time the mailbox stamps on the items created from now on (DateTimeCreated).
    pub fn set_clock(&self, now: DateTime<Utc>) {
        self.lock().clock = now;
    }
    pub fn clock(&self) -> DateTime<Utc> {
        self.lock().clock
    }
    /// The Salesforce ids stamped on the items in the mailbox's Deleted Items.
    pub fn deleted_items(&self, address: &str) -> Vec<Option<String>> {
        self.lock()
            .deleted_items
            .get(address)
            .map(|b| {
                b.iter()
                    .map(|i| i.stored.item.salesforce_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
    pub fn counts(&self) -> MailCounts {
        self.lock().counts.clone()
    }
    pub fn max_batch(&self) -> usize {
        self.lock().max_batch
    }
    /// The event window the mailbox's calendar feed was last read with.
    pub fn event_window(&self, address: &str) -> Option<EventWindow> {
        self.lock().windows.get(address).copied()
    }
    pub fn folder_exists(&self, address: &str, folder: Folder) -> bool {
        self.lock()
            .mailboxes
            .get(address)
            .and_then(|f| f.get(&folder))
            .is_some_and(|f| f.exists)
    }

    fn next(d: &mut ExchangeData) -> (String, String, u64) {
        d.seq += 1;
        d.next_id += 1;
        (
            format!("AAMk{:06}", d.next_id),
            format!("CK{}", d.seq),
            d.seq,
        )
    }

    /// The rep creates an item (as Outlook would); returns its id. Creating in a folder that
    /// does not exist creates the folder.
    pub fn user_create(&self, address: &str, folder: Folder, record: Record) -> String {
        self.user_create_item(address, folder, record, false)
    }

    pub fn user_create_item(
        &self,
        address: &str,
        folder: Folder,
        record: Record,
        related: bool,
    ) -> String {
        let mut d = self.lock();
        let (id, ck, seq) = Self::next(&mut d);
        let created = d.clock;
        let f = d
            .mailboxes
            .entry(address.to_string())
            .or_default()
            .entry(folder)
            .or_default();
        f.exists = true;
        f.items.insert(
            id.clone(),
            StoredItem {
                item: MailItem {
                    item_id: id.clone(),
                    change_key: ck,
                    record: as_exchange_stores(record),
                    salesforce_id: None,
                    related_in_outlook: related,
                },
                seq,
                created,
            },
        );
        id
    }

    /// The rep edits an item; false when it does not exist.
    pub fn user_edit(&self, address: &str, item_id: &str, edit: impl FnOnce(&mut Record)) -> bool {
        let mut d = self.lock();
        d.seq += 1;
        let seq = d.seq;
        let Some(s) = d
            .mailboxes
            .get_mut(address)
            .and_then(|f| f.values_mut().find_map(|f| f.items.get_mut(item_id)))
        else {
            return false;
        };
        edit(&mut s.item.record);
        s.item.record = as_exchange_stores(s.item.record.clone());
        s.item.change_key = format!("CK{seq}");
        s.seq = seq;
        true
    }

    pub fn user_delete(&self, address: &str, item_id: &str) -> bool {
        let mut d = self.lock();
        d.seq += 1;
        let seq = d.seq;
        Self::move_to_deleted_items(&mut d, address, item_id, seq)
    }

    /// Deletes an item as Exchange's MoveToDeletedItems does (Outlook's delete too): out of
    /// its folder (a delete in that folder's feed) into Deleted Items.
    fn move_to_deleted_items(d: &mut ExchangeData, address: &str, item_id: &str, seq: u64) -> bool {
        let Some(f) = d.mailboxes.get_mut(address) else {
            return false;
        };
        let Some((folder, stored)) = f.iter_mut().find_map(|(name, folder)| {
            let stored = folder.items.remove(item_id)?;
            folder.deleted.insert(item_id.to_string(), seq);
            Some((*name, stored))
        }) else {
            return false;
        };
        d.deleted_items
            .entry(address.to_string())
            .or_default()
            .push(DeletedItem { folder, stored });
        true
    }

    /// The rep deletes a whole folder (Salesforce_Sync) with what it holds; the server then
    /// answers that the folder is missing, as EWS does for one moved to Deleted Items.
    pub fn user_delete_folder(&self, address: &str, folder: Folder) -> bool {
        let mut d = self.lock();
        d.mailboxes
            .get_mut(address)
            .and_then(|f| f.remove(&folder))
            .is_some_and(|f| f.exists)
    }

    /// Every item of a folder.
    pub fn items(&self, address: &str, folder: Folder) -> Vec<MailItem> {
        self.lock()
            .mailboxes
            .get(address)
            .and_then(|f| f.get(&folder))
            .map(|f| f.items.values().map(|s| s.item.clone()).collect())
            .unwrap_or_default()
    }

    fn mailbox<'d>(
        d: &'d mut ExchangeData,
        mailbox: &Mailbox,
    ) -> Result<&'d mut BTreeMap<Folder, FolderData>, RepError> {
        if d.faults.denied.contains(&mailbox.address) {
            return Err(RepError::ImpersonationDenied(Refusal {
                code: codes::DENIED.into(),
                message: format!("the service account may not act for {}", mailbox.address),
                hint: "Let the service account act for this mailbox.".into(),
            }));
        }
        d.mailboxes.get_mut(&mailbox.address).ok_or_else(|| {
            RepError::NoMailbox(Refusal {
                code: codes::NO_MAILBOX.into(),
                message: format!("no mailbox for {}", mailbox.address),
                hint: "Check the rep's mail address.".into(),
            })
        })
    }

    fn write_call(d: &mut ExchangeData, n: usize) -> Result<(), CallError> {
        assert!(
            n <= MEMORY_MAIL_BATCH,
            "Exchange batch of {n} exceeds {MEMORY_MAIL_BATCH}"
        );
        d.max_batch = d.max_batch.max(n);
        if d.faults.fail_write_calls > 0 {
            d.faults.fail_write_calls -= 1;
            return Err(call_failed(false));
        }
        Ok(())
    }
}

fn rep_call(e: RepError) -> CallError {
    CallError {
        kind: ErrorKind::Denied,
        code: e.code().to_string(),
        message: e.message(),
        retryable: false,
        ambiguous: false,
        hint: e.suggestion().to_string(),
    }
}

/// The build MemoryExchange's mailboxes answer from (an Exchange Online build).
pub const MEMORY_EXCHANGE_BUILD: &str = "15.20.7452.28";

impl MailConnector for MemoryExchange {
    fn batch_size(&self) -> usize {
        MEMORY_MAIL_BATCH
    }

    fn server_build(&self, mailbox: &Mailbox) -> Option<String> {
        let d = self.lock();
        let reachable = d.mailboxes.contains_key(&mailbox.address)
            && !d.faults.denied.contains(&mailbox.address);
        reachable.then(|| MEMORY_EXCHANGE_BUILD.to_string())
    }

    async fn sync_folder(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        cursor: Option<&str>,
        window: Option<EventWindow>,
    ) -> Result<FolderPage, RepError> {
        assert_eq!(
            window.is_some(),
            folder == Folder::Calendar,
            "the calendar feed, and only it, is read with the event window"
        );
        let mut d = self.lock();
        d.counts.sync_folder += 1;
        d.counts
            .mailbox_calls
            .push(("read", mailbox.address.clone()));
        if let Some(w) = window {
            d.windows.insert(mailbox.address.clone(), w);
        }
        *d.counts.sync_folder_by.entry(folder).or_insert(0) += 1;
        let page_size = self.page_size.max(1);
        let now = d.seq;
        let expired = cursor.is_some() && d.faults.expire_cursors > 0;
        if expired {
            d.faults.expire_cursors -= 1;
        }
        let f = Self::mailbox(&mut d, mailbox)?
            .get(&folder)
            .filter(|f| f.exists)
            .ok_or_else(|| {
                RepError::folder_missing(codes::FOLDER_MISSING, "the sync folder does not exist")
            })?;
        let since: u64 = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .ok()
                .filter(|_| !expired)
                .ok_or_else(|| RepError::cursor_expired(codes::BAD_CURSOR, "bad sync state"))?,
        };
        let mut changes: Vec<(u64, MailChange)> = f
            .items
            .values()
            .filter(|s| s.seq > since)
            .map(|s| (s.seq, MailChange::Upsert(s.item.clone())))
            .collect();
        if cursor.is_some() {
            changes.extend(
                f.deleted
                    .iter()
                    .filter(|(_, seq)| **seq > since)
                    .map(|(id, seq)| {
                        (
                            *seq,
                            MailChange::Delete {
                                item_id: id.clone(),
                            },
                        )
                    }),
            );
        }
        changes.sort_by_key(|(seq, _)| *seq);
        let more = changes.len() > page_size;
        changes.truncate(page_size);
        let cursor = if more {
            changes.last().map(|(s, _)| *s).unwrap_or(now)
        } else {
            now
        };
        Ok(FolderPage {
            changes: changes.into_iter().map(|(_, c)| c).collect(),
            cursor: cursor.to_string(),
            more,
        })
    }

    async fn ensure_folder(&self, mailbox: &Mailbox, folder: Folder) -> Result<(), RepError> {
        let mut d = self.lock();
        d.counts.ensure_folder += 1;
        Self::mailbox(&mut d, mailbox)?
            .entry(folder)
            .or_default()
            .exists = true;
        Ok(())
    }

    async fn create(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        items: &[MailCreate],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        let mut d = self.lock();
        d.counts.create += 1;
        d.counts
            .mailbox_calls
            .push(("write", mailbox.address.clone()));
        Self::write_call(&mut d, items.len())?;
        Self::mailbox(&mut d, mailbox).map_err(rep_call)?;
        let ambiguous = d.faults.ambiguous_creates > 0;
        if ambiguous {
            d.faults.ambiguous_creates -= 1;
        }
        let mut out = Vec::new();
        for c in items {
            let key = identity(&c.record);
            if d.faults.hits(&[&c.salesforce_id, &key]) {
                out.push(Outcome::Failed(record_failed(
                    ErrorKind::Other,
                    codes::TRANSIENT,
                )));
                continue;
            }
            let (id, ck, seq) = Self::next(&mut d);
            let created = d.clock;
            let f = d
                .mailboxes
                .get_mut(&mailbox.address)
                .and_then(|m| m.get_mut(&folder))
                .filter(|f| f.exists);
            let Some(f) = f else {
                out.push(Outcome::Failed(record_error(
                    ErrorKind::Other,
                    codes::FOLDER_MISSING,
                    &format!("{} does not exist", folder.name()),
                    true,
                )));
                continue;
            };
            f.items.insert(
                id.clone(),
                StoredItem {
                    item: MailItem {
                        item_id: id.clone(),
                        change_key: ck.clone(),
                        record: as_exchange_stores(overlay(None, &c.record)),
                        salesforce_id: Some(c.salesforce_id.clone()),
                        related_in_outlook: false,
                    },
                    seq,
                    created,
                },
            );
            out.push(Outcome::Ok(MailRef {
                item_id: id,
                change_key: ck,
            }));
        }
        if ambiguous {
            return Err(call_failed(true));
        }
        Ok(out)
    }

    async fn update(
        &self,
        mailbox: &Mailbox,
        items: &[(String, Record)],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        let mut d = self.lock();
        d.counts.update += 1;
        d.counts
            .mailbox_calls
            .push(("write", mailbox.address.clone()));
        Self::write_call(&mut d, items.len())?;
        Self::mailbox(&mut d, mailbox).map_err(rep_call)?;
        let mut out = Vec::new();
        for (id, record) in items {
            if d.faults.hits(&[id, &identity(record)]) {
                out.push(Outcome::Failed(record_failed(
                    ErrorKind::Other,
                    codes::TRANSIENT,
                )));
                continue;
            }
            d.seq += 1;
            let seq = d.seq;
            let found = d
                .mailboxes
                .get_mut(&mailbox.address)
                .and_then(|f| f.values_mut().find_map(|f| f.items.get_mut(id)));
            match found {
                Some(s) => {
                    s.item.record = as_exchange_stores(overlay(Some(&s.item.record), record));
                    s.item.change_key = format!("CK{seq}");
                    s.seq = seq;
                    out.push(Outcome::Ok(MailRef {
                        item_id: id.clone(),
                        change_key: s.item.change_key.clone(),
                    }));
                }
                None => out.push(Outcome::Failed(record_error(
                    ErrorKind::Gone,
                    codes::GONE,
                    "item not found",
                    false,
                ))),
            }
        }
        Ok(out)
    }

    async fn delete(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        let mut d = self.lock();
        d.counts.delete += 1;
        d.counts
            .mailbox_calls
            .push(("write", mailbox.address.clone()));
        Self::write_call(&mut d, item_ids.len())?;
        Self::mailbox(&mut d, mailbox).map_err(rep_call)?;
        let mut out = Vec::new();
        for id in item_ids {
            if d.faults.hits(&[id]) {
                out.push(Outcome::Failed(record_failed(
                    ErrorKind::Other,
                    codes::TRANSIENT,
                )));
                continue;
            }
            d.seq += 1;
            let seq = d.seq;
            out.push(
                match Self::move_to_deleted_items(&mut d, &mailbox.address, id, seq) {
                    true => Outcome::Ok(()),
                    false => Outcome::Failed(record_error(
                        ErrorKind::Gone,
                        codes::GONE,
                        "item not found",
                        false,
                    )),
                },
            );
        }
        Ok(out)
    }

    async fn get_items(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        let mut d = self.lock();
        d.counts.get_items += 1;
        let f = Self::mailbox(&mut d, mailbox).map_err(rep_call)?;
        Ok(f.get(&folder)
            .map(|f| {
                item_ids
                    .iter()
                    .filter_map(|id| f.items.get(id).map(|s| s.item.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn change_keys(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailRef>, CallError> {
        self.lock().faults.version_read()?;
        Ok(self
            .get_items(mailbox, folder, item_ids)
            .await?
            .into_iter()
            .map(|i| MailRef {
                item_id: i.item_id,
                change_key: i.change_key,
            })
            .collect())
    }

    async fn find_by_salesforce_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        let mut d = self.lock();
        d.counts.find += 1;
        let f = Self::mailbox(&mut d, mailbox).map_err(rep_call)?;
        Ok(f.get(&folder)
            .map(|f| {
                f.items
                    .values()
                    .filter(|s| {
                        s.item
                            .salesforce_id
                            .as_ref()
                            .is_some_and(|id| salesforce_ids.contains(id))
                    })
                    .map(|s| s.item.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn find_deleted_created(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, CallError> {
        let mut d = self.lock();
        d.counts.find += 1;
        Self::mailbox(&mut d, mailbox).map_err(rep_call)?;
        Ok(d.deleted_items
            .get(&mailbox.address)
            .into_iter()
            .flatten()
            .filter(|i| i.folder == folder && i.stored.created >= since)
            .filter_map(|i| i.stored.item.salesforce_id.clone())
            .filter(|id| salesforce_ids.contains(id))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// Salesforce

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmCounts {
    pub users: u64,
    pub query_pages: u64,
    pub get_deleted: u64,
    pub create: u64,
    pub update: u64,
    pub delete: u64,
    pub find_created: u64,
    pub find_people: u64,
    pub relate: u64,
    pub record_access: u64,
}

impl CrmCounts {
    pub fn total(&self) -> u64 {
        self.users
            + self.query_pages
            + self.get_deleted
            + self.create
            + self.update
            + self.delete
            + self.find_created
            + self.find_people
            + self.relate
            + self.record_access
    }
}

/// Rows per query page, as Salesforce serves them.
pub const QUERY_PAGE: usize = 2000;

#[derive(Debug, Default)]
struct CrmData {
    seq: u64,
    next_id: u64,
    users: Vec<CrmUser>,
    records: BTreeMap<ObjectKind, BTreeMap<String, (CrmRecord, u64)>>,
    deleted: BTreeMap<ObjectKind, BTreeMap<String, u64>>,
    /// The journal markers (Tether_Sync_Key__c) of deleted records: the recycle bin.
    recycle_bin: BTreeMap<ObjectKind, BTreeSet<String>>,
    leads: Vec<(String, String)>,
    relations: BTreeMap<String, Vec<String>>,
    /// (user id, record id): records the user cannot read; every other record is readable.
    hidden: BTreeSet<(String, String)>,
    counts: CrmCounts,
    faults: Faults,
    max_batch: usize,
}

/// A Salesforce org in memory.
#[derive(Debug, Default)]
pub struct MemoryCrm {
    data: Mutex<CrmData>,
}

fn too_long(record: &Record) -> Option<String> {
    let check = |object, field: &str, value: &str| {
        let f = salesforce_field(object, field)?;
        (f.length > 0 && value.chars().count() > f.length as usize).then(|| field.to_string())
    };
    match record {
        Record::Contact(c) => c
            .fields
            .iter()
            .find_map(|(k, v)| check(SalesforceObject::Contact, k, v)),
        Record::Event(e) => [
            ("Subject", &e.subject),
            ("Location", &e.location),
            ("Description", &e.body),
        ]
        .into_iter()
        .chain(e.extra.iter().map(|(k, v)| (k.as_str(), v)))
        .find_map(|(k, v)| check(SalesforceObject::Event, k, v)),
    }
}

impl MemoryCrm {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, CrmData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_user(&self, user: CrmUser) {
        self.lock().users.push(user);
    }
    /// The user cannot read the record (sharing).
    pub fn hide_from(&self, user_id: &str, record_id: &str) {
        self.lock()
            .hidden
            .insert((user_id.to_string(), record_id.to_string()));
    }
    pub fn add_lead(&self, id: &str, email: &str) {
        self.lock().leads.push((id.into(), email.into()));
    }
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }
    pub fn counts(&self) -> CrmCounts {
        self.lock().counts.clone()
    }
    pub fn max_batch(&self) -> usize {
        self.lock().max_batch
    }
    pub fn relations(&self, event_id: &str) -> Vec<String> {
        self.lock()
            .relations
            .get(event_id)
            .cloned()
            .unwrap_or_default()
    }

    fn next(d: &mut CrmData, object: ObjectKind) -> (String, u64) {
        d.seq += 1;
        d.next_id += 1;
        let prefix = match object {
            ObjectKind::Contact => "003",
            ObjectKind::Event => "00U",
        };
        (format!("{prefix}{:012}", d.next_id), d.seq)
    }

    /// A user (or another integration) creates a record; returns its id.
    pub fn user_create(&self, object: ObjectKind, owner: &str, record: Record) -> String {
        let mut d = self.lock();
        let (id, seq) = Self::next(&mut d, object);
        let r = CrmRecord {
            id: id.clone(),
            owner_id: owner.into(),
            modstamp: format!("{seq:012}"),
            record,
            marker: None,
        };
        d.records
            .entry(object)
            .or_default()
            .insert(id.clone(), (r, seq));
        id
    }

    pub fn user_edit(
        &self,
        object: ObjectKind,
        id: &str,
        edit: impl FnOnce(&mut CrmRecord),
    ) -> bool {
        let mut d = self.lock();
        d.seq += 1;
        let seq = d.seq;
        let Some((r, s)) = d.records.entry(object).or_default().get_mut(id) else {
            return false;
        };
        edit(r);
        r.modstamp = format!("{seq:012}");
        *s = seq;
        true
    }

    pub fn user_delete(&self, object: ObjectKind, id: &str) -> bool {
        let mut d = self.lock();
        d.seq += 1;
        let seq = d.seq;
        if let Some((r, _)) = d.records.entry(object).or_default().remove(id) {
            d.deleted.entry(object).or_default().insert(id.into(), seq);
            d.recycle_bin.entry(object).or_default().extend(r.marker);
            true
        } else {
            false
        }
    }

    pub fn records(&self, object: ObjectKind) -> Vec<CrmRecord> {
        self.lock()
            .records
            .get(&object)
            .map(|m| m.values().map(|(r, _)| r.clone()).collect())
            .unwrap_or_default()
    }

    fn pages(n: usize) -> u64 {
        n.div_ceil(QUERY_PAGE).max(1) as u64
    }

    fn write_call(d: &mut CrmData, n: usize) -> Result<(), CallError> {
        assert!(
            n <= MEMORY_CRM_BATCH,
            "Salesforce batch of {n} exceeds {MEMORY_CRM_BATCH}"
        );
        d.max_batch = d.max_batch.max(n);
        if d.faults.fail_write_calls > 0 {
            d.faults.fail_write_calls -= 1;
            return Err(call_failed(false));
        }
        Ok(())
    }
}

impl CrmConnector for MemoryCrm {
    fn batch_size(&self) -> usize {
        MEMORY_CRM_BATCH
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CallError> {
        let mut d = self.lock();
        d.counts.users += 1;
        Ok(d.users.clone())
    }

    async fn read_changes(
        &self,
        object: ObjectKind,
        watermark: Option<&str>,
    ) -> Result<CrmChanges, CallError> {
        let mut d = self.lock();
        let since: u64 = watermark.and_then(|w| w.parse().ok()).unwrap_or(0);
        let upserts: Vec<CrmRecord> = d
            .records
            .get(&object)
            .map(|m| {
                m.values()
                    .filter(|(_, s)| *s > since)
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default();
        d.counts.query_pages += Self::pages(upserts.len());
        let deleted = if watermark.is_some() {
            d.counts.get_deleted += 1;
            d.deleted
                .get(&object)
                .map(|m| {
                    m.iter()
                        .filter(|(_, s)| **s > since)
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(CrmChanges {
            upserts,
            deleted,
            watermark: d.seq.to_string(),
        })
    }

    async fn read_owned(
        &self,
        object: ObjectKind,
        owners: Option<&[String]>,
    ) -> Result<Vec<CrmRecord>, CallError> {
        let mut d = self.lock();
        let out: Vec<CrmRecord> = d
            .records
            .get(&object)
            .map(|m| {
                m.values()
                    .filter(|(r, _)| owners.is_none_or(|o| o.contains(&r.owner_id)))
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default();
        d.counts.query_pages += Self::pages(out.len());
        Ok(out)
    }

    async fn read_by_ids(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CallError> {
        let mut d = self.lock();
        d.counts.query_pages += 1;
        Ok(d.records
            .get(&object)
            .map(|m| {
                ids.iter()
                    .filter_map(|id| m.get(id).map(|(r, _)| r.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn modstamps(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<CrmRef>, CallError> {
        self.lock().faults.version_read()?;
        Ok(self
            .read_by_ids(object, ids)
            .await?
            .into_iter()
            .map(|r| CrmRef {
                id: r.id,
                modstamp: r.modstamp,
            })
            .collect())
    }

    async fn create(
        &self,
        object: ObjectKind,
        records: &[CrmCreate],
    ) -> Result<Vec<Outcome<CrmRef>>, CallError> {
        let mut d = self.lock();
        d.counts.create += 1;
        Self::write_call(&mut d, records.len())?;
        let ambiguous = d.faults.ambiguous_creates > 0;
        if ambiguous {
            d.faults.ambiguous_creates -= 1;
        }
        let mut out = Vec::new();
        for c in records {
            if d.faults.hits(&[&identity(&c.record)]) {
                out.push(Outcome::Failed(record_failed(
                    ErrorKind::Locked,
                    codes::LOCKED,
                )));
                continue;
            }
            if let Some(field) = too_long(&c.record) {
                out.push(Outcome::Failed(record_error(
                    ErrorKind::TooLong,
                    codes::TOO_LONG,
                    &format!("{field}: data value too large"),
                    false,
                )));
                continue;
            }
            let (id, seq) = Self::next(&mut d, object);
            let r = CrmRecord {
                id: id.clone(),
                owner_id: c.owner_id.clone(),
                modstamp: format!("{seq:012}"),
                record: overlay(None, &c.record),
                marker: Some(c.marker.clone()),
            };
            d.records
                .entry(object)
                .or_default()
                .insert(id.clone(), (r, seq));
            out.push(Outcome::Ok(CrmRef {
                id,
                modstamp: format!("{seq:012}"),
            }));
        }
        if ambiguous {
            return Err(call_failed(true));
        }
        Ok(out)
    }

    async fn update(
        &self,
        object: ObjectKind,
        records: &[(String, Record)],
    ) -> Result<Vec<Outcome<CrmRef>>, CallError> {
        let mut d = self.lock();
        d.counts.update += 1;
        Self::write_call(&mut d, records.len())?;
        let mut out = Vec::new();
        for (id, record) in records {
            if d.faults.hits(&[id, &identity(record)]) {
                out.push(Outcome::Failed(record_failed(
                    ErrorKind::Locked,
                    codes::LOCKED,
                )));
                continue;
            }
            if let Some(field) = too_long(record) {
                out.push(Outcome::Failed(record_error(
                    ErrorKind::TooLong,
                    codes::TOO_LONG,
                    &format!("{field}: data value too large"),
                    false,
                )));
                continue;
            }
            d.seq += 1;
            let seq = d.seq;
            match d.records.entry(object).or_default().get_mut(id) {
                Some((r, s)) => {
                    r.record = overlay(Some(&r.record), record);
                    r.modstamp = format!("{seq:012}");
                    *s = seq;
                    out.push(Outcome::Ok(CrmRef {
                        id: id.clone(),
                        modstamp: r.modstamp.clone(),
                    }));
                }
                None => out.push(Outcome::Failed(record_error(
                    ErrorKind::Gone,
                    codes::GONE,
                    "entity is deleted",
                    false,
                ))),
            }
        }
        Ok(out)
    }

    async fn delete(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        let mut d = self.lock();
        d.counts.delete += 1;
        Self::write_call(&mut d, ids.len())?;
        let mut out = Vec::new();
        for id in ids {
            if d.faults.hits(&[id]) {
                out.push(Outcome::Failed(record_failed(
                    ErrorKind::Locked,
                    codes::LOCKED,
                )));
                continue;
            }
            d.seq += 1;
            let seq = d.seq;
            if let Some((r, _)) = d.records.entry(object).or_default().remove(id) {
                d.deleted.entry(object).or_default().insert(id.clone(), seq);
                d.recycle_bin.entry(object).or_default().extend(r.marker);
                out.push(Outcome::Ok(()));
            } else {
                out.push(Outcome::Failed(record_error(
                    ErrorKind::Gone,
                    codes::GONE,
                    "entity is deleted",
                    false,
                )));
            }
        }
        Ok(out)
    }

    async fn find_created(
        &self,
        object: ObjectKind,
        creates: &[CrmCreate],
    ) -> Result<Vec<CrmRecord>, CallError> {
        let mut d = self.lock();
        d.counts.find_created += 1;
        let markers: Vec<&String> = creates.iter().map(|c| &c.marker).collect();
        Ok(d.records
            .get(&object)
            .map(|m| {
                m.values()
                    .filter(|(r, _)| r.marker.as_ref().is_some_and(|k| markers.contains(&k)))
                    .map(|(r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn find_deleted_created(
        &self,
        object: ObjectKind,
        markers: &[String],
    ) -> Result<Vec<String>, CallError> {
        let mut d = self.lock();
        d.counts.find_created += 1;
        let bin = d.recycle_bin.get(&object);
        Ok(markers
            .iter()
            .filter(|m| bin.is_some_and(|b| b.contains(*m)))
            .cloned()
            .collect())
    }

    async fn find_people(&self, emails: &[String]) -> Result<Vec<Person>, CallError> {
        let mut d = self.lock();
        d.counts.find_people += 1;
        let wanted = |e: &str| emails.iter().any(|x| x.eq_ignore_ascii_case(e));
        let mut out: Vec<Person> = d
            .records
            .get(&ObjectKind::Contact)
            .map(|m| {
                m.values()
                    .filter_map(|(r, _)| {
                        let email = r.record.as_contact()?.email();
                        wanted(email).then(|| Person::Contact {
                            id: r.id.clone(),
                            email: email.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.extend(
            d.leads
                .iter()
                .filter(|(_, e)| wanted(e))
                .map(|(id, e)| Person::Lead {
                    id: id.clone(),
                    email: e.clone(),
                }),
        );
        Ok(out)
    }

    async fn readable(
        &self,
        user_id: &str,
        records: &[CrmRef],
    ) -> Result<BTreeSet<String>, CallError> {
        let mut d = self.lock();
        d.counts.record_access += records.len().div_ceil(MEMORY_CRM_BATCH) as u64;
        Ok(records
            .iter()
            .filter(|r| !d.hidden.contains(&(user_id.to_string(), r.id.clone())))
            .map(|r| r.id.clone())
            .collect())
    }

    async fn relate(
        &self,
        relations: &[(String, Vec<String>)],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        let mut d = self.lock();
        d.counts.relate += 1;
        for (event_id, person_ids) in relations {
            d.relations
                .entry(event_id.clone())
                .or_default()
                .extend(person_ids.iter().cloned());
        }
        Ok(relations.iter().map(|_| Outcome::Ok(())).collect())
    }
}

// ---------------------------------------------------------------------------------------
// A race, made deterministic

/// An outside edit to run once.
type Edit<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Wraps a connector (in memory or real) and runs `edit` once, right after its first change
/// read returns (`read_changes` on the CRM side, `sync_folder` on the mail side): a user's
/// edit landing between a cycle's read and its writes, every time.
pub struct EditAfterRead<'a, C> {
    inner: &'a C,
    edit: Mutex<Option<Edit<'a>>>,
}

impl<'a, C> EditAfterRead<'a, C> {
    pub fn new(inner: &'a C, edit: impl FnOnce() + Send + 'a) -> Self {
        EditAfterRead {
            inner,
            edit: Mutex::new(Some(Box::new(edit))),
        }
    }

    /// Whether the edit has run.
    pub fn edited(&self) -> bool {
        self.lock().is_none()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Edit<'a>>> {
        self.edit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn after_read(&self) {
        let edit = self.lock().take();
        if let Some(edit) = edit {
            edit();
        }
    }
}

impl<C: MailConnector> MailConnector for EditAfterRead<'_, C> {
    fn batch_size(&self) -> usize {
        self.inner.batch_size()
    }
    async fn sync_folder(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        cursor: Option<&str>,
        window: Option<EventWindow>,
    ) -> Result<FolderPage, RepError> {
        let page = self
            .inner
            .sync_folder(mailbox, folder, cursor, window)
            .await;
        self.after_read();
        page
    }
    async fn ensure_folder(&self, mailbox: &Mailbox, folder: Folder) -> Result<(), RepError> {
        self.inner.ensure_folder(mailbox, folder).await
    }
    async fn create(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        items: &[MailCreate],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        self.inner.create(mailbox, folder, items).await
    }
    async fn update(
        &self,
        mailbox: &Mailbox,
        items: &[(String, Record)],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        self.inner.update(mailbox, items).await
    }
    async fn delete(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        self.inner.delete(mailbox, item_ids).await
    }
    async fn get_items(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        self.inner.get_items(mailbox, folder, item_ids).await
    }
    async fn change_keys(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailRef>, CallError> {
        self.inner.change_keys(mailbox, folder, item_ids).await
    }
    async fn find_by_salesforce_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        self.inner
            .find_by_salesforce_ids(mailbox, folder, salesforce_ids)
            .await
    }
    async fn find_deleted_created(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, CallError> {
        self.inner
            .find_deleted_created(mailbox, folder, salesforce_ids, since)
            .await
    }
    async fn translate_foreign_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<(String, String)>, CallError> {
        self.inner
            .translate_foreign_ids(mailbox, folder, item_ids)
            .await
    }
    async fn meetings_a_delete_would_cancel(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<String>, CallError> {
        self.inner
            .meetings_a_delete_would_cancel(mailbox, item_ids)
            .await
    }
    fn server_build(&self, mailbox: &Mailbox) -> Option<String> {
        self.inner.server_build(mailbox)
    }
    fn use_contact_mapping(&self, mailbox: &Mailbox, mapping: &crate::model::EffectiveMapping) {
        self.inner.use_contact_mapping(mailbox, mapping)
    }
    fn use_marker(&self, marker: &crate::engine::connector::MailboxMarker) {
        self.inner.use_marker(marker)
    }
    fn folder_marker(&self, mailbox: &Mailbox) -> Option<crate::engine::connector::FolderMarker> {
        self.inner.folder_marker(mailbox)
    }
    async fn mark_folder(
        &self,
        mailbox: &Mailbox,
        marker: &crate::engine::connector::MailboxMarker,
    ) -> Result<(), RepError> {
        self.inner.mark_folder(mailbox, marker).await
    }
    fn allow_cancellations(&self, mailbox: &Mailbox, allowed: bool) {
        self.inner.allow_cancellations(mailbox, allowed)
    }
    fn allow_meeting_updates(&self, mailbox: &Mailbox, allowed: bool) {
        self.inner.allow_meeting_updates(mailbox, allowed)
    }
}

impl<C: CrmConnector> CrmConnector for EditAfterRead<'_, C> {
    fn batch_size(&self) -> usize {
        self.inner.batch_size()
    }
    fn write_batch_size(&self, object: ObjectKind, total: usize) -> usize {
        self.inner.write_batch_size(object, total)
    }
    fn org_id(&self) -> Option<String> {
        self.inner.org_id()
    }
    async fn outlook_integration(&self) -> Result<Option<bool>, String> {
        self.inner.outlook_integration().await
    }
    async fn users(&self) -> Result<Vec<CrmUser>, CallError> {
        self.inner.users().await
    }
    async fn read_changes(
        &self,
        object: ObjectKind,
        watermark: Option<&str>,
    ) -> Result<CrmChanges, CallError> {
        let changes = self.inner.read_changes(object, watermark).await;
        self.after_read();
        changes
    }
    async fn read_owned(
        &self,
        object: ObjectKind,
        owners: Option<&[String]>,
    ) -> Result<Vec<CrmRecord>, CallError> {
        self.inner.read_owned(object, owners).await
    }
    async fn read_by_ids(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CallError> {
        self.inner.read_by_ids(object, ids).await
    }
    async fn modstamps(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<CrmRef>, CallError> {
        self.inner.modstamps(object, ids).await
    }
    async fn prepare_writes(&self, object: ObjectKind, records: &[&Record]) {
        self.inner.prepare_writes(object, records).await
    }
    async fn create(
        &self,
        object: ObjectKind,
        records: &[CrmCreate],
    ) -> Result<Vec<Outcome<CrmRef>>, CallError> {
        self.inner.create(object, records).await
    }
    async fn update(
        &self,
        object: ObjectKind,
        records: &[(String, Record)],
    ) -> Result<Vec<Outcome<CrmRef>>, CallError> {
        self.inner.update(object, records).await
    }
    async fn delete(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        self.inner.delete(object, ids).await
    }
    async fn find_created(
        &self,
        object: ObjectKind,
        creates: &[CrmCreate],
    ) -> Result<Vec<CrmRecord>, CallError> {
        self.inner.find_created(object, creates).await
    }
    async fn find_deleted_created(
        &self,
        object: ObjectKind,
        markers: &[String],
    ) -> Result<Vec<String>, CallError> {
        self.inner.find_deleted_created(object, markers).await
    }
    async fn missing_accounts(&self, records: &[&Record]) -> Result<BTreeSet<String>, CallError> {
        self.inner.missing_accounts(records).await
    }
    async fn find_people(&self, emails: &[String]) -> Result<Vec<Person>, CallError> {
        self.inner.find_people(emails).await
    }
    async fn readable(
        &self,
        user_id: &str,
        records: &[CrmRef],
    ) -> Result<BTreeSet<String>, CallError> {
        self.inner.readable(user_id, records).await
    }
    async fn relate(
        &self,
        relations: &[(String, Vec<String>)],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        self.inner.relate(relations).await
    }
}
