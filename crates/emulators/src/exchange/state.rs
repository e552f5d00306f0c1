//! The emulator's store: mailboxes, folders, items, change tracking, credentials.

use crate::exchange::model::{CalendarEvent, CalendarItemType, Item, ItemId, OccurrenceInfo};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// What a service account (or app) may impersonate, like an ApplicationImpersonation role
/// assignment with an optional management scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImpersonationScope {
    /// Every mailbox in the organisation.
    All,
    /// Only these addresses.
    List(Vec<String>),
    /// A recipient filter; supported: `Department -eq 'Sales'` (and `-ne`).
    Filter(String),
    /// No impersonation rights at all.
    None,
}

impl ImpersonationScope {
    pub fn allows(&self, smtp: &str, department: Option<&str>) -> bool {
        match self {
            ImpersonationScope::All => true,
            ImpersonationScope::None => false,
            ImpersonationScope::List(l) => l.iter().any(|a| a.eq_ignore_ascii_case(smtp)),
            ImpersonationScope::Filter(f) => {
                let mut parts = f.splitn(3, ' ');
                let (Some(attr), Some(op), Some(value)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return false;
                };
                if !attr.eq_ignore_ascii_case("Department") {
                    return false;
                }
                let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
                let eq = department.is_some_and(|d| d.eq_ignore_ascii_case(value));
                match op.to_ascii_lowercase().as_str() {
                    "-eq" => eq,
                    "-ne" => !eq,
                    _ => false,
                }
            }
        }
    }
}

/// Faults a test can queue (`inject`: the next request; `inject_on`: the next request for
/// one operation). `ServerBusy`, `Soap`, `Http`, `Unavailable`, `Unauthorized` and
/// `DropConnection` replace the answer; `DropResponse` lets the server do the work and breaks
/// the answer; `StaleChangeKey` makes the next UpdateItem see a newer ChangeKey than the
/// caller's (as if a user had just edited the item); `InvalidSyncState` makes the next
/// SyncFolderItems that carries a state answer ErrorInvalidSyncStateData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    ServerBusy {
        back_off_ms: u64,
    },
    Soap {
        code: String,
    },
    Http(u16),
    /// HTTP 503 with `Retry-After: <seconds>` (a server or front end that is queueing).
    Unavailable {
        retry_after_secs: u64,
    },
    Unauthorized,
    /// The connection breaks in the middle of the answer; the request was not carried out.
    DropConnection,
    /// The request is carried out, then the connection breaks in the middle of the answer:
    /// the caller cannot tell whether its write happened.
    DropResponse,
    StaleChangeKey,
    InvalidSyncState,
}

/// Items whose request XML contains `contains` fail in CreateItem / UpdateItem with a
/// per-item error message (the rest of the batch succeeds).
#[derive(Debug, Clone)]
pub(crate) struct ItemFault {
    pub contains: String,
    pub code: String,
    pub message: String,
    /// How many more times it fires; None: always.
    pub remaining: Option<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub username: String,
    pub password: String,
    pub scope: ImpersonationScope,
}

#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub name: String,
    pub scope: ImpersonationScope,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Folder {
    pub id: String,
    pub change_key: String,
    pub parent: Option<String>,
    pub class: String,
    pub name: String,
    pub distinguished: Option<String>,
    /// (sequence, item id) of deletions, for SyncFolderItems.
    pub tombstones: Vec<(u64, String)>,
    /// PublicStrings string properties by name (ExtendedProperty on a folder; Graph's
    /// singleValueExtendedProperties of a contactFolder).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredItem {
    pub id: String,
    pub change_key: String,
    pub folder: String,
    pub item: Item,
    pub created_seq: u64,
    pub seq: u64,
    /// Exceptions of a recurring master: original start → Some(new start, end) or None
    /// (deleted), with the exception's own ChangeKey.
    pub exceptions: BTreeMap<DateTime<Utc>, Exception>,
}

/// A moved occurrence (new start and end) or a deleted one (`None`), and its ChangeKey.
pub(crate) type Exception = (Option<(DateTime<Utc>, DateTime<Utc>)>, String);

impl StoredItem {
    /// The item as the server returns it: with its id and ChangeKey, and for a recurring
    /// master its modified and deleted occurrences.
    pub fn current(&self) -> Item {
        let id = ItemId::new(self.id.clone(), Some(self.change_key.clone()));
        match &self.item {
            Item::Contact(c) => {
                let mut c = c.clone();
                c.item_id = Some(id);
                Item::Contact(c)
            }
            Item::Event(e) => {
                let mut e = e.clone();
                e.item_id = Some(id);
                if e.recurrence.is_some() {
                    e.item_type = Some(CalendarItemType::RecurringMaster);
                    e.modified_occurrences = self
                        .exceptions
                        .iter()
                        .filter_map(|(orig, (moved, ck))| {
                            let (start, end) = (*moved)?;
                            Some(OccurrenceInfo {
                                item_id: ItemId::new(
                                    occurrence_id(&self.id, orig),
                                    Some(ck.clone()),
                                ),
                                start,
                                end,
                                original_start: *orig,
                            })
                        })
                        .collect();
                    e.deleted_occurrences = self
                        .exceptions
                        .iter()
                        .filter(|(_, (moved, _))| moved.is_none())
                        .map(|(orig, _)| *orig)
                        .collect();
                } else if e.item_type.is_none() {
                    e.item_type = Some(CalendarItemType::Single);
                }
                Item::Event(e)
            }
            Item::Other(_) => Item::Other(Some(id)),
        }
    }
}

/// Occurrence ids encode the master and the original start, like Exchange's occurrence ids
/// (which also embed the master's id); they are opaque to clients.
pub(crate) fn occurrence_id(master: &str, original_start: &DateTime<Utc>) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!("occ|{master}|{}", original_start.timestamp()))
}

pub(crate) fn parse_occurrence_id(id: &str) -> Option<(String, DateTime<Utc>)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(id).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.splitn(3, '|');
    if parts.next()? != "occ" {
        return None;
    }
    let master = parts.next()?.to_string();
    let ts: i64 = parts.next()?.parse().ok()?;
    Some((master, DateTime::from_timestamp(ts, 0)?))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Mailbox {
    pub smtp: String,
    pub department: Option<String>,
    pub folders: Vec<Folder>,
    pub items: BTreeMap<String, StoredItem>,
    /// Moved items: each id an item has had → the id it was created with (an EWS id names
    /// an item in its folder; Graph's immutable id names it for its life in the mailbox).
    #[serde(default)]
    pub first_ids: BTreeMap<String, String>,
}

impl Mailbox {
    pub fn folder(&self, id: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| f.id == id)
    }
    pub fn distinguished(&self, name: &str) -> Option<&Folder> {
        self.folders
            .iter()
            .find(|f| f.distinguished.as_deref() == Some(name))
    }
}

pub(crate) type EmuResult<T> = Result<T, (String, String)>;

pub(crate) fn err<T>(code: &str, msg: &str) -> EmuResult<T> {
    Err((code.to_string(), msg.to_string()))
}

#[derive(Debug)]
pub(crate) struct Emu {
    seed: u64,
    counter: u64,
    pub seq: u64,
    pub accounts: Vec<Account>,
    pub apps: Vec<Account>,
    pub tokens: HashMap<String, (String, DateTime<Utc>)>,
    pub tokens_issued: u64,
    pub mailboxes: Vec<Mailbox>,
    pub faults: VecDeque<Fault>,
    /// Faults for the next request of one operation (local name, e.g. `CreateItem`).
    pub op_faults: Vec<(String, Fault)>,
    pub item_faults: Vec<ItemFault>,
    pub ad_redirects: HashMap<String, String>,
    pub ad_redirect_urls: std::collections::HashSet<String>,
    pub calls: HashMap<String, u64>,
    pub bodies: Vec<String>,
    pub anchor_mismatches: u64,
    /// EWS requests answered 401 (bad credentials or an injected 401).
    pub rejected_logons: u64,
    /// The Graph face's tokens, delta states and records (crate::graph).
    pub graph: crate::graph::GraphState,
}

/// The store's contents (mailboxes, folders, items, change sequence and id counters), for
/// `tether sandbox` to keep between runs. Credentials, tokens, faults and call counts are
/// not part of it: they belong to one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    seed: u64,
    counter: u64,
    seq: u64,
    mailboxes: Vec<Mailbox>,
}

impl Emu {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            seed: self.seed,
            counter: self.counter,
            seq: self.seq,
            mailboxes: self.mailboxes.clone(),
        }
    }

    /// Replaces the contents with a snapshot's; ids, change keys and sync states carry on
    /// from where they were, so clients' cursors stay valid.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.seed = snapshot.seed;
        self.counter = snapshot.counter;
        self.seq = snapshot.seq;
        self.mailboxes = snapshot.mailboxes;
        for i in 0..self.mailboxes.len() {
            self.add_root_and_deleted_items(i);
        }
    }

    pub fn new(seed: u64) -> Self {
        Emu {
            seed,
            counter: 0,
            seq: 0,
            accounts: Vec::new(),
            apps: Vec::new(),
            tokens: HashMap::new(),
            tokens_issued: 0,
            mailboxes: Vec::new(),
            faults: VecDeque::new(),
            op_faults: Vec::new(),
            item_faults: Vec::new(),
            ad_redirects: HashMap::new(),
            ad_redirect_urls: Default::default(),
            calls: HashMap::new(),
            bodies: Vec::new(),
            anchor_mismatches: 0,
            rejected_logons: 0,
            graph: Default::default(),
        }
    }

    /// The per-item error for an item written with this request XML, if a fault matches.
    pub fn item_fault(&mut self, xml: &str) -> Option<(String, String)> {
        let f = self
            .item_faults
            .iter_mut()
            .find(|f| f.remaining != Some(0) && xml.contains(&f.contains))?;
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
        }
        Some((f.code.clone(), f.message.clone()))
    }

    pub fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Opaque ids in the style of EWS (base64 of a store key).
    pub fn new_id(&mut self, kind: &str) -> String {
        let n = self.next();
        base64::engine::general_purpose::STANDARD
            .encode(format!("AAMk{kind}{:x}-{n:08}", self.seed))
    }

    pub fn new_change_key(&mut self) -> String {
        let n = self.next();
        base64::engine::general_purpose::STANDARD.encode(format!("CQAAABYAAA{n:010}"))
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn mailbox(&self, smtp: &str) -> Option<&Mailbox> {
        self.mailboxes
            .iter()
            .find(|m| m.smtp.eq_ignore_ascii_case(smtp))
    }

    pub fn mailbox_mut(&mut self, smtp: &str) -> EmuResult<&mut Mailbox> {
        match self
            .mailboxes
            .iter_mut()
            .find(|m| m.smtp.eq_ignore_ascii_case(smtp))
        {
            Some(m) => Ok(m),
            None => err("ErrorNonExistentMailbox", "The mailbox does not exist."),
        }
    }

    pub fn add_mailbox(&mut self, smtp: &str, department: Option<&str>, _now: DateTime<Utc>) {
        if self.mailbox(smtp).is_some() {
            return;
        }
        let root = self.new_id("root");
        let mut folders = vec![Folder {
            id: root.clone(),
            change_key: self.new_change_key(),
            parent: None,
            class: "IPF.Note".into(),
            name: "Top of Information Store".into(),
            distinguished: Some("msgfolderroot".into()),
            tombstones: Vec::new(),
            extended: BTreeMap::new(),
        }];
        for (dist, name, class) in [
            ("contacts", "Contacts", "IPF.Contact"),
            ("calendar", "Calendar", "IPF.Appointment"),
            ("inbox", "Inbox", "IPF.Note"),
        ] {
            folders.push(Folder {
                id: self.new_id(dist),
                change_key: self.new_change_key(),
                parent: Some(root.clone()),
                class: class.into(),
                name: name.into(),
                distinguished: Some(dist.into()),
                tombstones: Vec::new(),
                extended: BTreeMap::new(),
            });
        }
        self.mailboxes.push(Mailbox {
            smtp: smtp.to_string(),
            department: department.map(str::to_string),
            folders,
            items: BTreeMap::new(),
            first_ids: BTreeMap::new(),
        });
        self.add_root_and_deleted_items(self.mailboxes.len() - 1);
    }

    /// The mailbox root above the message folder root, and Deleted Items, where a mailbox
    /// lacks them (created after the other folders, so those keep the ids they always had;
    /// snapshots saved before these folders existed get them on restore).
    fn add_root_and_deleted_items(&mut self, mailbox: usize) {
        let Some(top) = self.mailboxes[mailbox]
            .distinguished("msgfolderroot")
            .map(|f| f.id.clone())
        else {
            return;
        };
        if self.mailboxes[mailbox].distinguished("root").is_none() {
            let root = Folder {
                id: self.new_id("root"),
                change_key: self.new_change_key(),
                parent: None,
                class: "IPF.Note".into(),
                name: "Root".into(),
                distinguished: Some("root".into()),
                tombstones: Vec::new(),
                extended: BTreeMap::new(),
            };
            let mb = &mut self.mailboxes[mailbox];
            if let Some(f) = mb.folders.iter_mut().find(|f| f.id == top) {
                f.parent = Some(root.id.clone());
            }
            mb.folders.push(root);
        }
        if self.mailboxes[mailbox]
            .distinguished("deleteditems")
            .is_none()
        {
            let bin = Folder {
                id: self.new_id("deleteditems"),
                change_key: self.new_change_key(),
                parent: Some(top),
                class: "IPF.Note".into(),
                name: "Deleted Items".into(),
                distinguished: Some("deleteditems".into()),
                tombstones: Vec::new(),
                extended: BTreeMap::new(),
            };
            self.mailboxes[mailbox].folders.push(bin);
        }
    }

    /// Moves an item to another folder. Exchange's item ids name the item in its folder, so
    /// the moved item answers to a new id (as MoveItem returns one) and the old id names no
    /// item; it leaves the old folder's sync (a Delete there) and arrives in the new one's (a
    /// Create). Folders, unlike items, keep their ids when moved.
    pub fn move_item(&mut self, smtp: &str, id: &str, to: &str) -> EmuResult<ItemId> {
        let seq = self.next_seq();
        let ck = self.new_change_key();
        let new_id = self.new_id("itm");
        let mb = self.mailbox_mut(smtp)?;
        if mb.folder(to).is_none() {
            return err(
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            );
        }
        let Some(mut stored) = mb.items.remove(id) else {
            return err(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            );
        };
        let from = std::mem::replace(&mut stored.folder, to.to_string());
        let first = mb
            .first_ids
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string());
        mb.first_ids.insert(new_id.clone(), first);
        stored.id = new_id.clone();
        stored.change_key = ck.clone();
        stored.created_seq = seq;
        stored.seq = seq;
        mb.items.insert(new_id.clone(), stored);
        if let Some(f) = mb.folders.iter_mut().find(|f| f.id == from) {
            f.tombstones.push((seq, id.to_string()));
        }
        Ok(ItemId::new(new_id, Some(ck)))
    }

    /// Deletes a folder: moved under Deleted Items with its id and contents, or (`hard`)
    /// removed with its subfolders and items. Distinguished folders cannot be deleted.
    pub fn delete_folder(&mut self, smtp: &str, id: &str, hard: bool) -> EmuResult<()> {
        let ck = self.new_change_key();
        let mb = self.mailbox_mut(smtp)?;
        let Some(folder) = mb.folder(id) else {
            return err(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            );
        };
        if folder.distinguished.is_some() {
            return err(
                "ErrorDeleteDistinguishedFolder",
                "Distinguished folders cannot be deleted.",
            );
        }
        let deleted_items = mb.distinguished("deleteditems").map(|f| f.id.clone());
        let already_deleted = folder.parent == deleted_items;
        match deleted_items {
            Some(bin) if !hard && !already_deleted => {
                if let Some(f) = mb.folders.iter_mut().find(|f| f.id == id) {
                    f.parent = Some(bin);
                    f.change_key = ck;
                }
            }
            // Every mailbox has Deleted Items (restore adds it): never a silent hard delete.
            None if !hard => {
                return err(
                    "ErrorFolderNotFound",
                    "The mailbox has no Deleted Items folder.",
                );
            }
            _ => {
                let mut gone = vec![id.to_string()];
                let mut i = 0;
                while i < gone.len() {
                    let parent = gone[i].clone();
                    gone.extend(
                        mb.folders
                            .iter()
                            .filter(|f| f.parent.as_deref() == Some(&parent))
                            .map(|f| f.id.clone()),
                    );
                    i += 1;
                }
                mb.folders.retain(|f| !gone.contains(&f.id));
                mb.items.retain(|_, item| !gone.contains(&item.folder));
            }
        }
        Ok(())
    }

    pub fn create_folder(
        &mut self,
        smtp: &str,
        parent: &str,
        name: &str,
        class: &str,
    ) -> EmuResult<String> {
        let id = self.new_id("fld");
        let ck = self.new_change_key();
        let mb = self.mailbox_mut(smtp)?;
        if mb.folder(parent).is_none() {
            return err(
                "ErrorParentFolderNotFound",
                "The parent folder could not be found in the store.",
            );
        }
        if mb
            .folders
            .iter()
            .any(|f| f.parent.as_deref() == Some(parent) && f.name.eq_ignore_ascii_case(name))
        {
            return err(
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            );
        }
        mb.folders.push(Folder {
            id: id.clone(),
            change_key: ck,
            parent: Some(parent.to_string()),
            class: class.to_string(),
            name: name.to_string(),
            distinguished: None,
            tombstones: Vec::new(),
            extended: BTreeMap::new(),
        });
        Ok(id)
    }

    pub fn create_item(
        &mut self,
        smtp: &str,
        folder: &str,
        mut item: Item,
        now: DateTime<Utc>,
    ) -> EmuResult<ItemId> {
        let id = self.new_id("itm");
        let ck = self.new_change_key();
        let seq = self.next_seq();
        let uid_n = self.next();
        let mb = self.mailbox_mut(smtp)?;
        if mb.folder(folder).is_none() {
            return err(
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            );
        }
        match &mut item {
            Item::Contact(c) => {
                c.item_id = None;
                c.created = Some(now);
                c.last_modified = Some(now);
            }
            Item::Event(e) => {
                e.item_id = None;
                e.created = Some(now);
                e.last_modified = Some(now);
                e.organizer = e
                    .organizer
                    .take()
                    .or(Some(crate::exchange::model::MailboxAddress {
                        name: None,
                        email: mb.smtp.clone(),
                    }));
                if e.uid.is_none() {
                    e.uid = Some(format!("040000008200E00074C5B7101A82E008{uid_n:016X}"));
                }
                e.item_type = Some(if e.recurrence.is_some() {
                    CalendarItemType::RecurringMaster
                } else {
                    CalendarItemType::Single
                });
                e.modified_occurrences.clear();
                e.deleted_occurrences.clear();
            }
            Item::Other(_) => {}
        }
        mb.items.insert(
            id.clone(),
            StoredItem {
                id: id.clone(),
                change_key: ck.clone(),
                folder: folder.to_string(),
                item,
                created_seq: seq,
                seq,
                exceptions: BTreeMap::new(),
            },
        );
        Ok(ItemId::new(id, Some(ck)))
    }

    pub fn edit_item(
        &mut self,
        smtp: &str,
        id: &str,
        edit: impl FnOnce(&mut Item),
        now: DateTime<Utc>,
    ) -> EmuResult<ItemId> {
        let ck = self.new_change_key();
        let seq = self.next_seq();
        let mb = self.mailbox_mut(smtp)?;
        let Some(stored) = mb.items.get_mut(id) else {
            return err(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            );
        };
        edit(&mut stored.item);
        match &mut stored.item {
            Item::Contact(c) => c.last_modified = Some(now),
            Item::Event(e) => e.last_modified = Some(now),
            Item::Other(_) => {}
        }
        stored.change_key = ck.clone();
        stored.seq = seq;
        Ok(ItemId::new(id, Some(ck)))
    }

    pub fn delete_item(&mut self, smtp: &str, id: &str) -> EmuResult<()> {
        let seq = self.next_seq();
        let mb = self.mailbox_mut(smtp)?;
        let Some(stored) = mb.items.remove(id) else {
            return err(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            );
        };
        if let Some(f) = mb.folders.iter_mut().find(|f| f.id == stored.folder) {
            f.tombstones.push((seq, stored.id));
        }
        Ok(())
    }

    pub fn modify_occurrence(
        &mut self,
        smtp: &str,
        master: &str,
        original_start: DateTime<Utc>,
        moved: Option<(DateTime<Utc>, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> EmuResult<()> {
        let ck = self.new_change_key();
        let ock = self.new_change_key();
        let seq = self.next_seq();
        let mb = self.mailbox_mut(smtp)?;
        let Some(stored) = mb.items.get_mut(master) else {
            return err(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            );
        };
        let Item::Event(e) = &mut stored.item else {
            return err("ErrorInvalidOperation", "Not a calendar item.");
        };
        if e.recurrence.is_none() {
            return err("ErrorInvalidOperation", "Not a recurring master.");
        }
        e.last_modified = Some(now);
        stored.exceptions.insert(original_start, (moved, ock));
        stored.change_key = ck;
        stored.seq = seq;
        Ok(())
    }
}

/// An occurrence (or exception) of a master as a calendar item of its own.
pub(crate) fn occurrence(
    stored: &StoredItem,
    master: &CalendarEvent,
    original_start: DateTime<Utc>,
) -> Option<CalendarEvent> {
    let duration = master.end - master.start;
    let mut o = master.clone();
    o.recurrence = None;
    o.modified_occurrences.clear();
    o.deleted_occurrences.clear();
    o.original_start = Some(original_start);
    match stored.exceptions.get(&original_start) {
        Some((None, _)) => return None,
        Some((Some((s, e)), ck)) => {
            o.start = *s;
            o.end = *e;
            o.item_type = Some(CalendarItemType::Exception);
            o.item_id = Some(ItemId::new(
                occurrence_id(&stored.id, &original_start),
                Some(ck.clone()),
            ));
        }
        None => {
            o.start = original_start;
            o.end = original_start
                .checked_add_signed(duration)
                .unwrap_or(original_start);
            o.item_type = Some(CalendarItemType::Occurrence);
            o.item_id = Some(ItemId::new(
                occurrence_id(&stored.id, &original_start),
                Some(stored.change_key.clone()),
            ));
        }
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let f = ImpersonationScope::Filter("Department -eq 'Sales'".into());
        assert!(f.allows("a@x", Some("sales")));
        assert!(!f.allows("a@x", Some("Finance")));
        assert!(!f.allows("a@x", None));
        let l = ImpersonationScope::List(vec!["A@x.com".into()]);
        assert!(l.allows("a@x.com", None));
        assert!(!l.allows("b@x.com", None));
    }

    #[test]
    fn a_snapshot_saved_before_root_and_deleted_items_existed_gets_them_on_restore() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let mut emu = Emu::new(1);
        emu.add_mailbox("rep@corp.example", None, now);
        let mut old = emu.snapshot();
        for mb in &mut old.mailboxes {
            mb.folders
                .retain(|f| !matches!(f.distinguished.as_deref(), Some("root" | "deleteditems")));
            for f in &mut mb.folders {
                if f.distinguished.as_deref() == Some("msgfolderroot") {
                    f.parent = None;
                }
            }
        }
        let mut restored = Emu::new(1);
        restored.restore(old);
        let mb = restored.mailbox("rep@corp.example").unwrap();
        let root = mb.distinguished("root").expect("root").id.clone();
        let top = mb.distinguished("msgfolderroot").unwrap();
        assert_eq!(top.parent.as_deref(), Some(root.as_str()));
        let bin = mb.distinguished("deleteditems").expect("Deleted Items");
        assert_eq!(bin.parent.as_deref(), Some(top.id.as_str()));
    }
}
