//! The two connector traits the engine talks to: the mail side (Exchange) and the CRM side
//! (Salesforce). They speak only the canonical model. Reads follow the performance model:
//! the CRM side reads changes org-wide per object since a watermark (the engine sorts them
//! to reps by owner); the mail side reads one change feed per folder per rep with an opaque
//! cursor. Writes take batches (at most the connector's `batch_size()` records) and answer
//! per record. A whole call that fails is an `Err(CallError)`; a rep that cannot be reached
//! at all (impersonation denied, no mailbox) is an `Err(RepError)` that fails that rep only.
//! Connectors classify every failure into an [`ErrorKind`] and give its hint: the engine
//! never reads a vendor's error code.

use crate::model::{ObjectKind, Record};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::future::Future;

/// The mailbox of one rep, as the mail side addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox {
    /// The rep's primary SMTP address.
    pub address: String,
}

/// The Exchange folder an object syncs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Folder {
    /// Contacts/Salesforce_Sync: the only contacts folder tether reads or writes.
    SalesforceSyncContacts,
    /// The default calendar.
    Calendar,
    /// The rep's own Contacts folder. Never read or written: only Salesforce_Sync syncs.
    /// Named so connectors and tests can say so.
    Contacts,
}

impl Folder {
    pub fn for_object(object: ObjectKind) -> Folder {
        match object {
            ObjectKind::Contact => Folder::SalesforceSyncContacts,
            ObjectKind::Event => Folder::Calendar,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Folder::SalesforceSyncContacts => "Contacts/Salesforce_Sync",
            Folder::Calendar => "Calendar",
            Folder::Contacts => "Contacts",
        }
    }
}

/// An Exchange item as read.
#[derive(Debug, Clone, PartialEq)]
pub struct MailItem {
    pub item_id: String,
    pub change_key: String,
    pub record: Record,
    /// The Salesforce id tether stamped on the item (extended property) when it created it.
    pub salesforce_id: Option<String>,
    /// Events only: the rep related it to Salesforce in the Outlook integration.
    pub related_in_outlook: bool,
}

/// Most changes are upserts, so boxing the item would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum MailChange {
    Upsert(MailItem),
    Delete { item_id: String },
}

/// One page of a folder's change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderPage {
    pub changes: Vec<MailChange>,
    /// Cursor after this page (the server's sync state). Opaque to the engine.
    pub cursor: String,
    /// More pages wait behind this one.
    pub more: bool,
}

/// Reference to an item tether wrote, with its new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRef {
    pub item_id: String,
    pub change_key: String,
}

/// A Salesforce user, for rep resolution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrmUser {
    pub id: String,
    pub email: String,
    pub profile: String,
    pub active: bool,
    /// IANA zone (TimeZoneSidKey), e.g. `Europe/Berlin`.
    pub time_zone: String,
}

/// A Salesforce record as read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CrmRecord {
    pub id: String,
    pub owner_id: String,
    /// SystemModstamp.
    pub modstamp: String,
    pub record: Record,
    /// The create-journal marker tether sent with the create, when the record carries one.
    pub marker: Option<String>,
}

/// Changes to one object org-wide since a watermark.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CrmChanges {
    pub upserts: Vec<CrmRecord>,
    pub deleted: Vec<String>,
    /// The watermark to read from next time. Opaque to the engine.
    pub watermark: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmRef {
    pub id: String,
    pub modstamp: String,
}

/// A record create for Salesforce: owner, journal marker and the record.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmCreate {
    pub owner_id: String,
    pub marker: String,
    pub record: Record,
}

/// An item create for Exchange, stamped with the Salesforce id it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MailCreate {
    pub salesforce_id: String,
    pub record: Record,
}

/// A person an attendee email resolved to, for auto-relate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    Contact { id: String, email: String },
    Lead { id: String, email: String },
}

/// What a failure means, as the connector that met it classified it. The engine branches on
/// the kind only; the code and message are the vendor's own, for the error report, and the
/// hint is the connector's advice in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The record or item no longer exists: a delete is done, a link can go.
    Gone,
    /// The account tether writes with may not touch this record.
    Denied,
    /// Someone changed the record while tether wrote it.
    Conflict,
    /// The other side's validation rules refused the values.
    Validation,
    /// A value is longer than its field holds.
    TooLong,
    /// A duplicate rule or a unique field refused the record.
    Duplicate,
    /// The record is locked (approval process, a row lock).
    Locked,
    /// The server asks tether to slow down, or the API allowance is spent.
    Throttled,
    /// The server refused the credentials themselves.
    Auth,
    /// The write would mail people the configuration does not let tether mail (a meeting's
    /// attendees): nothing was written; a delete unlinks the pair instead, and the record is
    /// reported.
    WouldNotify,
    /// Anything else (network, server errors, unexpected answers).
    Other,
}

/// Why one record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub retryable: bool,
    /// What the user can do about it.
    pub hint: String,
}

/// The hint of an outcome the engine itself cannot tell (the call broke off after sending).
pub const AMBIGUOUS_HINT: &str =
    "tether looks the record up before it retries, so no duplicate is made.";

impl RecordError {
    /// A write whose answer was lost: the engine looks the record up before it retries.
    pub fn ambiguous(message: &str) -> RecordError {
        RecordError {
            kind: ErrorKind::Other,
            code: "AMBIGUOUS".into(),
            message: message.to_string(),
            retryable: true,
            hint: AMBIGUOUS_HINT.into(),
        }
    }
}

impl From<&CallError> for RecordError {
    /// Each record of a call that failed as a whole fails with the call's error.
    fn from(e: &CallError) -> RecordError {
        RecordError {
            kind: e.kind,
            code: e.code.clone(),
            message: e.message.clone(),
            retryable: e.retryable,
            hint: e.hint.clone(),
        }
    }
}

/// What happened to one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Ok(T),
    Failed(RecordError),
    /// The call broke off after sending: the write may or may not have happened.
    Ambiguous(String),
}

/// A whole call failed (network, throttling, server error); nothing in it is known done,
/// except that a create may have happened when `ambiguous` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub retryable: bool,
    pub ambiguous: bool,
    /// What the user can do about it.
    pub hint: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A mailbox-wide refusal as the mail side told it: its code and message for the report
/// and the connector's hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub hint: String,
}

/// A rep's mailbox cannot be used at all; the rest of the run goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepError {
    /// The service account may not act for this mailbox.
    ImpersonationDenied(Refusal),
    /// The address names no mailbox.
    NoMailbox(Refusal),
    /// The folder is gone (e.g. the rep deleted Salesforce_Sync); the engine recreates it.
    FolderMissing(Refusal),
    /// The server no longer accepts the feed's cursor; the engine reads the folder again
    /// from the start.
    CursorExpired(Refusal),
    /// Another org or tether state syncs the mailbox (its Salesforce_Sync folder's marker,
    /// see `engine::claim`): this one leaves it alone.
    ClaimedElsewhere(Refusal),
    Call(CallError),
}

impl RepError {
    /// The folder is gone: what the engine does about it is its hint.
    pub fn folder_missing(code: &str, message: &str) -> RepError {
        RepError::FolderMissing(Refusal {
            code: code.into(),
            message: message.into(),
            hint: "tether recreates the folder on the next run.".into(),
        })
    }
    /// The cursor is refused: what the engine does about it is its hint.
    pub fn cursor_expired(code: &str, message: &str) -> RepError {
        RepError::CursorExpired(Refusal {
            code: code.into(),
            message: message.into(),
            hint: "tether reads the folder again from the start.".into(),
        })
    }
    /// Code, message and hint.
    fn parts(&self) -> (&str, &str, &str) {
        match self {
            RepError::ImpersonationDenied(r)
            | RepError::NoMailbox(r)
            | RepError::FolderMissing(r)
            | RepError::CursorExpired(r)
            | RepError::ClaimedElsewhere(r) => (&r.code, &r.message, &r.hint),
            RepError::Call(e) => (&e.code, &e.message, &e.hint),
        }
    }
    pub fn code(&self) -> &str {
        self.parts().0
    }
    pub fn message(&self) -> String {
        self.parts().1.to_string()
    }
    pub fn suggestion(&self) -> &str {
        self.parts().2
    }
}

/// Who syncs a mailbox, as tether records it on the rep's Salesforce_Sync folder (an
/// extended property): the Salesforce org, its name in the configuration, and the state.
/// One mailbox syncs with one org: a second org that finds another's marker leaves the
/// mailbox alone. The org decides, not the state: a new state of the same org (the old
/// file lost, or moved aside when damaged) re-links the same records by matching, so it
/// goes on; the state is named so an admin can tell which tether wrote the marker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailboxMarker {
    /// The Salesforce organization id (the 15-character form Setup shows).
    pub org: String,
    /// The configuration's `org.name`.
    pub name: String,
    /// The state's identity (see `crate::state::identity`).
    pub state: String,
}

impl MailboxMarker {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    /// `None` for a value that is not a marker tether wrote.
    pub fn parse(value: &str) -> Option<MailboxMarker> {
        serde_json::from_str(value).ok()
    }
    /// The same org: a marker this org's tether wrote.
    pub fn is_same_org(&self, other: &MailboxMarker) -> bool {
        self.org == other.org
    }
}

impl std::fmt::Display for MailboxMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "org {} ({}, state {})", self.org, self.name, self.state)
    }
}

/// The marker on a rep's Salesforce_Sync folder as the mail side last read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderMarker {
    /// The folder carries none (made before tether marked folders, or by someone else).
    Unmarked,
    /// The property's value, as stored.
    Marked(String),
}

/// The event dates a calendar's change feed covers: the configuration's `since` window for
/// the rep. Events that ended before `start` do not sync; a mail side whose feed only works
/// over a fixed date range (a calendar view) reads from here. There is no end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventWindow {
    pub start: DateTime<Utc>,
}

/// The mail side (Exchange). Every method is one API call unless it says otherwise.
pub trait MailConnector: Send + Sync {
    /// Most items one write or read by id takes: the engine sends batches of this size.
    fn batch_size(&self) -> usize;

    /// One page of the folder's changes since `cursor` (`None`: everything, as creates).
    /// `window` is the event window for the calendar (`None` for contacts).
    fn sync_folder(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        cursor: Option<&str>,
        window: Option<EventWindow>,
    ) -> impl Future<Output = Result<FolderPage, RepError>> + Send;

    /// Create the folder when missing (Salesforce_Sync under Contacts); no-op otherwise.
    fn ensure_folder(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
    ) -> impl Future<Output = Result<(), RepError>> + Send;

    /// Create items (≤ `batch_size()`), each stamped with its Salesforce id.
    fn create(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        items: &[MailCreate],
    ) -> impl Future<Output = Result<Vec<Outcome<MailRef>>, CallError>> + Send;

    /// Update items (≤ `batch_size()`): (item id, new record).
    fn update(
        &self,
        mailbox: &Mailbox,
        items: &[(String, Record)],
    ) -> impl Future<Output = Result<Vec<Outcome<MailRef>>, CallError>> + Send;

    /// Delete items (≤ `batch_size()`) by id.
    fn delete(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Outcome<()>>, CallError>> + Send;

    /// Items of the folder by id (≤ `batch_size()`; one call). Items that are gone are left
    /// out. `tether plan --detail` reads what an update would overwrite with it.
    fn get_items(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> impl Future<Output = Result<Vec<MailItem>, CallError>> + Send;

    /// The current ChangeKey of items of the folder (≤ `batch_size()`; one call that reads
    /// ids and versions only). Items that are gone are left out. Before a delete or an
    /// overwrite is sent, it tells whether the item changed since the cycle read it.
    fn change_keys(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> impl Future<Output = Result<Vec<MailRef>, CallError>> + Send;

    /// Items of the folder stamped with any of these Salesforce ids (one search on the
    /// property tether stamps them with).
    fn find_by_salesforce_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
    ) -> impl Future<Output = Result<Vec<MailItem>, CallError>> + Send;

    /// Of these Salesforce ids, those stamped on an item that was created in `folder` at or
    /// after `since` and has been deleted since (in Deleted Items): a journalled create that
    /// happened and that the rep deleted before tether could record it, so it must not be
    /// sent again, or the rep's delete would be undone. Only items created since the create
    /// was journalled count: tether's own deletes also leave stamped items in Deleted Items.
    /// One search. A connector that cannot tell finds none (the create is then sent again,
    /// as before).
    fn find_deleted_created(
        &self,
        _mailbox: &Mailbox,
        _folder: Folder,
        _salesforce_ids: &[String],
        _since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<String>, CallError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// This API's ids for items another mail API named: an org that switched `api: ews` to
    /// `api: graph` keeps links holding EWS ids. Asked after a full read for the linked ids
    /// it did not show; answers (old id, current id) for each it could translate, and none
    /// unless the folder's saved cursor was another API's (the switch). Default: none.
    fn translate_foreign_ids(
        &self,
        _mailbox: &Mailbox,
        _folder: Folder,
        _item_ids: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String)>, CallError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Of these calendar item ids, the meetings whose delete would mail their attendees a
    /// cancellation (the rep organised them with others), so the plan names each. One read
    /// by id (≤ `batch_size()`). A mail side that deletes without mailing anyone finds none
    /// (the default).
    fn meetings_a_delete_would_cancel(
        &self,
        _mailbox: &Mailbox,
        _item_ids: &[String],
    ) -> impl Future<Output = Result<Vec<String>, CallError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// The contact mapping of the configuration `mailbox`'s rep syncs under, told before
    /// the mailbox is read: a connector that converts items reads and writes that mailbox's
    /// contacts with it, so a rep's writes touch only the properties their mapping names.
    /// (The in-memory connector keeps canonical records and needs none.)
    fn use_contact_mapping(&self, _mailbox: &Mailbox, _mapping: &crate::model::EffectiveMapping) {}

    /// Whether a delete in `mailbox` may mail a meeting's attendees a cancellation (the
    /// rep's `events.send_cancellations`), told before the mailbox's events are written. A
    /// mail side that deletes without mailing anyone needs it not.
    fn allow_cancellations(&self, _mailbox: &Mailbox, _allowed: bool) {}

    /// The marker new Salesforce_Sync folders are created with (the engine tells it before
    /// reading any mailbox). A mail side that keeps no markers needs it not.
    fn use_marker(&self, _marker: &MailboxMarker) {}

    /// The marker on `mailbox`'s Salesforce_Sync folder as last read with the folder (no
    /// call of its own); `None` when the folder was not read, or was created with
    /// [`use_marker`](MailConnector::use_marker)'s.
    fn folder_marker(&self, _mailbox: &Mailbox) -> Option<FolderMarker> {
        None
    }

    /// Writes the marker on `mailbox`'s Salesforce_Sync folder (one call). Called only
    /// after [`folder_marker`](MailConnector::folder_marker) answered.
    fn mark_folder(
        &self,
        _mailbox: &Mailbox,
        _marker: &MailboxMarker,
    ) -> impl Future<Output = Result<(), RepError>> + Send {
        async { Ok(()) }
    }

    /// Whether an update in `mailbox` may move (time, place) a meeting although that mails
    /// its attendees an update (the rep's `events.update_meetings`), told with
    /// `allow_cancellations`. A mail side that updates without mailing anyone needs it not.
    fn allow_meeting_updates(&self, _mailbox: &Mailbox, _allowed: bool) {}

    /// The server build the mailbox answered from in this run (e.g. `15.1.2507.6`), when
    /// the mail side names one. No call of its own: what earlier calls reported.
    fn server_build(&self, _mailbox: &Mailbox) -> Option<String> {
        None
    }
}

/// The CRM side (Salesforce). Every method is one API call per page or batch.
pub trait CrmConnector: Send + Sync {
    /// Most records one write or read by id takes: the engine sends batches of this size.
    fn batch_size(&self) -> usize;

    /// Most records one create or update call takes in a write phase of `total` records (the
    /// creates, or the updates, of one object in a cycle). A CRM with a bulk interface takes
    /// a large phase whole; otherwise `batch_size()`.
    fn write_batch_size(&self, _object: ObjectKind, _total: usize) -> usize {
        self.batch_size()
    }

    /// The Salesforce organization id (15 characters) of the connection, once a call has
    /// been made (no call of its own); `None` when it cannot tell.
    fn org_id(&self) -> Option<String> {
        None
    }

    /// Whether the org's Outlook integration, through which reps relate events to records,
    /// is enabled (one call): `Ok(None)` for a CRM without such a setting, `Err(why)` when
    /// it could not be read.
    fn outlook_integration(&self) -> impl Future<Output = Result<Option<bool>, String>> + Send {
        async { Ok(None) }
    }

    /// Active and inactive users with email, profile and time zone.
    fn users(&self) -> impl Future<Output = Result<Vec<CrmUser>, CallError>> + Send;

    /// Org-wide changes to `object` since `watermark` (`None`: every record), in a fixed
    /// number of calls whatever the number of reps. Records changed a little before the
    /// watermark may come again (Salesforce reads look back for late commits); unchanged,
    /// they plan nothing.
    fn read_changes(
        &self,
        object: ObjectKind,
        watermark: Option<&str>,
    ) -> impl Future<Output = Result<CrmChanges, CallError>> + Send;

    /// Every record of `object` owned by one of `owners` (`None`: every record the
    /// integration user can see): the full read for reps syncing for the first time or
    /// after a reset. One query, paged.
    fn read_owned(
        &self,
        object: ObjectKind,
        owners: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<CrmRecord>, CallError>> + Send;

    /// Records of `object` by id (≤ `batch_size()`; one query). Records that are gone are left
    /// out. `tether plan --detail` reads what an update would overwrite with it.
    fn read_by_ids(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<CrmRecord>, CallError>> + Send;

    /// The current SystemModstamp of records of `object` by id (≤ `batch_size()`; one query of
    /// `Id, SystemModstamp`). Records that are gone are left out. Before a delete or an
    /// overwrite is sent, it tells whether the record changed since the cycle read it.
    fn modstamps(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<CrmRef>, CallError>> + Send;

    /// Called before a write phase (the creates, or the updates, of one object in a cycle)
    /// with every record it will write, so that what they refer to (Accounts by name) is
    /// resolved once for the phase rather than once per batch.
    fn prepare_writes(
        &self,
        _object: ObjectKind,
        _records: &[&Record],
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The companies of these contacts that have no Account yet: the Accounts a write of
    /// them creates, which the plan lists. A CRM without Accounts has none.
    fn missing_accounts(
        &self,
        _records: &[&Record],
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, CallError>> + Send {
        async { Ok(std::collections::BTreeSet::new()) }
    }

    fn create(
        &self,
        object: ObjectKind,
        records: &[CrmCreate],
    ) -> impl Future<Output = Result<Vec<Outcome<CrmRef>>, CallError>> + Send;

    fn update(
        &self,
        object: ObjectKind,
        records: &[(String, Record)],
    ) -> impl Future<Output = Result<Vec<Outcome<CrmRef>>, CallError>> + Send;

    fn delete(
        &self,
        object: ObjectKind,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Outcome<()>>, CallError>> + Send;

    /// Records that these journalled creates made, if they happened (the lookup before a
    /// create is retried). A connector finds them by the marker where the org has a field
    /// for it (an External ID), otherwise by owner and the first-sync match keys. Each
    /// returned record's `marker` names the create it answers.
    fn find_created(
        &self,
        object: ObjectKind,
        creates: &[CrmCreate],
    ) -> impl Future<Output = Result<Vec<CrmRecord>, CallError>> + Send;

    /// Of these journalled creates' markers, those whose record was made and has been
    /// deleted since (still in the recycle bin): the create must not be sent again, or a
    /// user's delete would be undone. A connector that cannot tell finds none (the create
    /// is then sent again, as before).
    fn find_deleted_created(
        &self,
        _object: ObjectKind,
        _markers: &[String],
    ) -> impl Future<Output = Result<Vec<String>, CallError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Contacts and Leads whose email is one of `emails` (auto-relate).
    fn find_people(
        &self,
        emails: &[String],
    ) -> impl Future<Output = Result<Vec<Person>, CallError>> + Send;

    /// The ids of those of `records` the user can read (Salesforce:
    /// UserRecordAccess.HasReadAccess), in as few calls as the API allows. A rep's mailbox
    /// only gets contacts the rep may open. A connector may remember a verdict while the
    /// record's version is unchanged.
    fn readable(
        &self,
        user_id: &str,
        records: &[CrmRef],
    ) -> impl Future<Output = Result<BTreeSet<String>, CallError>> + Send;

    /// Relate events to people (EventRelation / WhoId): (event id, person ids) each, all in
    /// as few calls as the API allows. One outcome per event, in order.
    fn relate(
        &self,
        relations: &[(String, Vec<String>)],
    ) -> impl Future<Output = Result<Vec<Outcome<()>>, CallError>> + Send;
}

/// When something happened, for error entries and activity counts.
pub type Timestamp = DateTime<Utc>;
