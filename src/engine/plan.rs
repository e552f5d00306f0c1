//! Planning: a pure function of (configuration, state, changes from both sides) →
//! operations, each with its reason. No I/O, so every rule is unit- and property-testable.
//!
//! Each linked pair is decided three-way against the hash of the record as last synced:
//! unchanged, changed or gone on each side. Records not linked yet are matched across the
//! sides (the Salesforce id tether stamped on Exchange items, the create journal's marker,
//! then the admin guide's natural keys) before anything is created, so a first sync, a reset
//! or a retry after a crash re-links instead of duplicating.

use crate::config::model::{Config, ConflictPolicy, ContactScope};
use crate::engine::connector::{CrmRecord, MailItem, Mailbox};
use crate::engine::reps::Rep;
use crate::engine::rules::{self, ObjectSettings};
use crate::model::merge::fill_empty;
use crate::model::normalize::{comparison_form, record_hash};
use crate::model::{ObjectKind, Record};
use crate::state::{
    CreateTarget, ExchangeSide, JournalEntry, Link, LinkId, SalesforceSide, SyncDirection,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A side that had at least this many linked records and now shows none of them is taken
/// for a wrong mailbox or a lost permission, not for a mass delete.
pub const EMPTY_SIDE_MIN_LINKS: usize = 5;

/// Why a create is planned whose earlier create was journalled and never confirmed (killed,
/// or an ambiguous answer): it is looked up first and linked if found; a Salesforce record
/// made and deleted since (in the recycle bin) is not made again, which would undo a delete.
pub const UNCONFIRMED_TO_SALESFORCE: &str = "new in Exchange; tether's earlier create of it was \
    not confirmed: looked up first, linked if found, left unlinked if it was deleted since";
pub const UNCONFIRMED_TO_EXCHANGE: &str = "new in Salesforce; tether's earlier create of it was \
    not confirmed: looked up first, linked if found";
/// The reason of a delete in Exchange of a meeting the rep organised with attendees, where
/// the mail side mails them a cancellation (Graph): done, as `events.send_cancellations`
/// allows it ...
pub const SENDS_CANCELLATIONS: &str = "deleted in Salesforce (delete_synced); a meeting the \
    rep organised with attendees: deleting it mails them a cancellation \
    (events.send_cancellations)";
/// ... or not done: the pair is unlinked and reported instead.
pub const WOULD_SEND_CANCELLATIONS: &str = "deleted in Salesforce; a meeting the rep organised \
    with attendees: deleting it would mail them a cancellation, so it is unlinked and reported \
    instead (events.send_cancellations is off)";

const STAMPED_WITH_A_KNOWN_ID: &str = "carries the id of a Salesforce record that exists \
    (tether's stamp): not created in Salesforce again";
const HAS_A_STAMPED_ITEM: &str =
    "an Exchange item carries its id (tether's stamp): not created in Exchange again";

/// What one side's change feed (or full read) says, for one rep and object.
#[derive(Debug, Clone, PartialEq)]
pub struct SideView<T> {
    /// A full read: linked records missing from it are gone.
    pub full: bool,
    pub upserts: Vec<T>,
    pub deleted: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RepObjectInput {
    pub rep: Rep,
    pub object: ObjectKind,
    pub links: Vec<(LinkId, Link)>,
    pub mail: SideView<MailItem>,
    /// Salesforce records sorted to this rep (see `crm_view`).
    pub crm: SideView<CrmRecord>,
    /// Of those, the ids the rep cannot read in Salesforce (UserRecordAccess): out of the
    /// rep's scope whatever the scope says (`all_contacts` is what the rep can see).
    pub unreadable: BTreeSet<String>,
    /// Links' Exchange item ids another mail API gave → the id the mail side names the same
    /// item by now (an org that switched `api: ews` to `api: graph`; see
    /// `MailConnector::translate_foreign_ids`).
    pub renamed: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub config: &'a Config,
    pub now: DateTime<Utc>,
    /// Override the empty-side guard.
    pub force: bool,
    pub items: Vec<RepObjectInput>,
    pub pending: Vec<JournalEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Exchange,
    Salesforce,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Link two records that already agree (first-sync match, or retry after a crash).
    Link {
        exchange: ExchangeSide,
        salesforce: SalesforceSide,
        hash: String,
    },
    /// Both sides changed to the same values: remember the new hash only.
    Refresh {
        link: LinkId,
        exchange: ExchangeSide,
        salesforce: SalesforceSide,
        hash: String,
    },
    CreateInSalesforce {
        exchange: ExchangeSide,
        record: Record,
        hash: String,
        /// Attendee emails to auto-relate (events only, first sync, never private).
        relate: Vec<String>,
        /// The link this create replaces (re-creating a deleted record whose partner was
        /// edited).
        replaces: Option<LinkId>,
    },
    CreateInExchange {
        salesforce: SalesforceSide,
        record: Record,
        hash: String,
        replaces: Option<LinkId>,
    },
    /// Write Exchange's record to Salesforce. `link: None` links a first-sync match.
    UpdateSalesforce {
        link: Option<LinkId>,
        exchange: ExchangeSide,
        salesforce_id: String,
        record: Record,
        hash: String,
        /// One half of a first link's merge that writes both sides (see `merge_half`).
        merge_half: bool,
    },
    UpdateExchange {
        link: Option<LinkId>,
        salesforce: SalesforceSide,
        item_id: String,
        record: Record,
        hash: String,
        /// One half of a first link's merge that writes both sides: the Salesforce half
        /// records no link, and the Exchange half links the pair only when the Salesforce
        /// half was written in the same run, so a half that failed is merged again next time
        /// instead of being taken for an edit.
        merge_half: bool,
    },
    DeleteInSalesforce {
        link: LinkId,
        salesforce_id: String,
    },
    DeleteInExchange {
        link: LinkId,
        item_id: String,
    },
    /// The partner is gone and the delete does not propagate: keep the remaining record,
    /// remembered so it is not synced back.
    Detach {
        link: LinkId,
        remaining: Link,
    },
    /// Both records are gone.
    Forget {
        link: LinkId,
    },
}

impl Action {
    /// The side this action writes to, if any.
    pub fn writes_to(&self) -> Option<Side> {
        match self {
            Action::CreateInSalesforce { .. }
            | Action::UpdateSalesforce { .. }
            | Action::DeleteInSalesforce { .. } => Some(Side::Salesforce),
            Action::CreateInExchange { .. }
            | Action::UpdateExchange { .. }
            | Action::DeleteInExchange { .. } => Some(Side::Exchange),
            _ => None,
        }
    }
}

impl Action {
    /// The record a create in or update of Salesforce writes.
    pub fn salesforce_record(&self) -> Option<&Record> {
        match self {
            Action::CreateInSalesforce { record, .. } | Action::UpdateSalesforce { record, .. } => {
                Some(record)
            }
            _ => None,
        }
    }

    /// A stable name, for saved plans.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Link { .. } => "link",
            Action::Refresh { .. } => "refresh",
            Action::CreateInSalesforce { .. } => "create_in_salesforce",
            Action::CreateInExchange { .. } => "create_in_exchange",
            Action::UpdateSalesforce { .. } => "update_salesforce",
            Action::UpdateExchange { .. } => "update_exchange",
            Action::DeleteInSalesforce { .. } => "delete_in_salesforce",
            Action::DeleteInExchange { .. } => "delete_in_exchange",
            Action::Detach { .. } => "detach",
            Action::Forget { .. } => "forget",
        }
    }
}

/// A record an operation touches and the version it was planned against: the Exchange
/// ChangeKey or the Salesforce SystemModstamp; `None` when the record is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordVersion {
    pub id: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub rep: String,
    pub mailbox: Mailbox,
    pub object: ObjectKind,
    pub action: Action,
    pub reason: String,
    /// The records it touches on each side, as read when it was planned.
    pub exchange: Option<RecordVersion>,
    pub salesforce: Option<RecordVersion>,
    /// For an update: the record it writes over, when this plan read it (an incremental
    /// read does not show an unchanged side; the plan document reads those by id).
    pub replaced: Option<Record>,
}

/// What identifies an operation across two plans: the rep, object and action, and the
/// versions of the records it touches. A saved plan lists the keys it allows; an operation
/// whose record changed since then has another key and is held back.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct OperationKey {
    pub rep: String,
    pub object: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salesforce_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salesforce_version: Option<String>,
}

impl OperationKey {
    /// The side the operation writes to (`None` for bookkeeping: link, refresh, unlink).
    pub fn writes_to(&self) -> Option<Side> {
        match self.action.as_str() {
            "create_in_salesforce" | "update_salesforce" | "delete_in_salesforce" => {
                Some(Side::Salesforce)
            }
            "create_in_exchange" | "update_exchange" | "delete_in_exchange" => Some(Side::Exchange),
            _ => None,
        }
    }

    /// Whether both keys touch a record in common (the same operation, planned against
    /// another version of it or turned into another action).
    pub fn shares_a_record_with(&self, other: &OperationKey) -> bool {
        (self.exchange_id.is_some() && self.exchange_id == other.exchange_id)
            || (self.salesforce_id.is_some() && self.salesforce_id == other.salesforce_id)
    }
}

impl Operation {
    pub fn key(&self) -> OperationKey {
        OperationKey {
            rep: self.rep.clone(),
            object: self.object.name().to_string(),
            action: self.action.name().to_string(),
            exchange_id: self.exchange.as_ref().map(|r| r.id.clone()),
            exchange_version: self.exchange.as_ref().and_then(|r| r.version.clone()),
            salesforce_id: self.salesforce.as_ref().map(|r| r.id.clone()),
            salesforce_version: self.salesforce.as_ref().and_then(|r| r.version.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub rep: String,
    pub object: ObjectKind,
    pub exchange_id: String,
    pub salesforce_id: String,
    pub winner: Side,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub rep: String,
    pub object: ObjectKind,
    pub record_id: String,
    pub reason: String,
}

/// Unlinked contacts of one name and company that cannot be told apart (no email decides):
/// none of them is linked or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbiguousMatch {
    pub rep: String,
    pub object: ObjectKind,
    pub exchange_ids: Vec<String>,
    pub salesforce_ids: Vec<String>,
}

/// The empty-side guard refused deletes for a rep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rep: String,
    pub object: ObjectKind,
    pub side: Side,
    pub linked: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overwrite {
    pub rep: String,
    pub salesforce_id: String,
    /// Salesforce fields whose differing values are overwritten.
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub operations: Vec<Operation>,
    pub conflicts: Vec<Conflict>,
    pub skipped: Vec<Skipped>,
    pub refusals: Vec<Refusal>,
    pub ambiguous: Vec<AmbiguousMatch>,
    /// Salesforce values a one-way Exchange→Salesforce sync overwrites (the reason TODAY is
    /// the default window): the plan warns about each.
    pub overwrites: Vec<Overwrite>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Adds the plan of another group of reps.
    pub fn append(&mut self, other: Plan) {
        self.operations.extend(other.operations);
        self.conflicts.extend(other.conflicts);
        self.skipped.extend(other.skipped);
        self.refusals.extend(other.refusals);
        self.ambiguous.extend(other.ambiguous);
        self.overwrites.extend(other.overwrites);
    }

    /// Orders the plans of groups of reps as one plan of them all: object by object, and
    /// within an object in the order of the reps (a stable sort).
    pub fn sort_by_object(&mut self) {
        self.operations.sort_by_key(|o| o.object);
        self.conflicts.sort_by_key(|c| c.object);
        self.skipped.sort_by_key(|s| s.object);
        self.refusals.sort_by_key(|r| r.object);
        self.ambiguous.sort_by_key(|a| a.object);
    }
}

/// An org-wide read of one object, indexed by owner and id, so that sorting it to each rep
/// costs that rep's share of it rather than the whole read.
pub struct CrmRead<'a> {
    records: &'a [CrmRecord],
    by_owner: HashMap<&'a str, Vec<usize>>,
    by_id: HashMap<&'a str, usize>,
}

impl<'a> CrmRead<'a> {
    pub fn new(records: &'a [CrmRecord]) -> Self {
        let mut by_owner: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_id = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            by_owner.entry(r.owner_id.as_str()).or_default().push(i);
            by_id.insert(r.id.as_str(), i);
        }
        CrmRead {
            records,
            by_owner,
            by_id,
        }
    }
}

/// Which Salesforce records of an org-wide read belong to a rep: in scope (owned by the rep,
/// or every contact with `all_contacts`), plus records linked to the rep so that leaving the
/// scope is noticed. In the read's order.
pub fn crm_view(
    rep: &Rep,
    settings: &ObjectSettings,
    links: &[(LinkId, Link)],
    read: &CrmRead<'_>,
    deleted: &[String],
    full: bool,
) -> SideView<CrmRecord> {
    let linked: BTreeSet<&str> = links
        .iter()
        .filter_map(|(_, l)| l.salesforce.as_ref().map(|s| s.id.as_str()))
        .collect();
    let everyone =
        settings.object == ObjectKind::Contact && settings.scope == ContactScope::AllContacts;
    let mut picked: Vec<usize> = if everyone {
        (0..read.records.len()).collect()
    } else {
        let mut own = read
            .by_owner
            .get(rep.user_id.as_str())
            .cloned()
            .unwrap_or_default();
        own.extend(linked.iter().filter_map(|id| read.by_id.get(id).copied()));
        own.sort_unstable();
        own.dedup();
        own
    };
    picked.retain(|&i| {
        let r = &read.records[i];
        in_scope(rep, settings, r) || linked.contains(r.id.as_str())
    });
    SideView {
        full,
        upserts: picked.iter().map(|&i| read.records[i].clone()).collect(),
        deleted: deleted
            .iter()
            .filter(|d| linked.contains(d.as_str()))
            .cloned()
            .collect(),
    }
}

fn in_scope(rep: &Rep, s: &ObjectSettings, r: &CrmRecord) -> bool {
    match s.object {
        ObjectKind::Contact => s.scope == ContactScope::AllContacts || r.owner_id == rep.user_id,
        ObjectKind::Event => r.owner_id == rep.user_id,
    }
}

/// The plan for every rep and object in `input`.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut out = Plan::default();
    for item in &input.items {
        let Some(configuration) = input.config.sync_configurations.get(item.rep.configuration)
        else {
            continue;
        };
        let settings = ObjectSettings::of(configuration, item.object);
        if settings.direction == crate::config::model::Direction::None {
            continue;
        }
        RepPlanner {
            input,
            item,
            s: &settings,
            window_start: rules::window_start(settings.since, input.now, item.rep.time_zone),
            versions: Versions::of(item),
            read: ReadRecords::of(item),
            out: &mut out,
        }
        .run();
    }
    out
}

/// What one side shows for a linked record.
enum Obs<'a, T> {
    Same,
    Changed(&'a T, &'a str),
    Gone { left_scope: bool },
}

impl<T> Clone for Obs<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Obs<'_, T> {}

struct RepPlanner<'a, 'o> {
    input: &'a PlanInput<'a>,
    item: &'a RepObjectInput,
    s: &'a ObjectSettings,
    window_start: DateTime<Utc>,
    versions: Versions<'a>,
    read: ReadRecords<'a>,
    out: &'o mut Plan,
}

/// The records this plan read, by id: what an update writes over, when known.
struct ReadRecords<'a> {
    exchange: HashMap<&'a str, &'a Record>,
    salesforce: HashMap<&'a str, &'a Record>,
}

impl<'a> ReadRecords<'a> {
    fn of(item: &'a RepObjectInput) -> Self {
        ReadRecords {
            exchange: item
                .mail
                .upserts
                .iter()
                .map(|m| (m.item_id.as_str(), &m.record))
                .collect(),
            salesforce: item
                .crm
                .upserts
                .iter()
                .map(|r| (r.id.as_str(), &r.record))
                .collect(),
        }
    }
}

/// The version of every record of one rep and object as this plan sees it: as read, else
/// (an incremental read, the record unchanged) as last synced; gone records have none.
struct Versions<'a> {
    exchange: HashMap<&'a str, Option<&'a str>>,
    salesforce: HashMap<&'a str, Option<&'a str>>,
    links: HashMap<LinkId, &'a Link>,
}

impl<'a> Versions<'a> {
    fn of(item: &'a RepObjectInput) -> Self {
        let mut exchange = HashMap::new();
        let mut salesforce = HashMap::new();
        for (_, l) in &item.links {
            if let Some(e) = l.exchange.as_ref().filter(|_| !item.mail.full) {
                exchange.insert(e.item_id.as_str(), Some(e.change_key.as_str()));
            }
            if let Some(s) = l.salesforce.as_ref().filter(|_| !item.crm.full) {
                salesforce.insert(s.id.as_str(), Some(s.modstamp.as_str()));
            }
        }
        for id in &item.mail.deleted {
            exchange.insert(id.as_str(), None);
        }
        for id in &item.crm.deleted {
            salesforce.insert(id.as_str(), None);
        }
        for m in &item.mail.upserts {
            exchange.insert(m.item_id.as_str(), Some(m.change_key.as_str()));
        }
        for r in &item.crm.upserts {
            salesforce.insert(r.id.as_str(), Some(r.modstamp.as_str()));
        }
        Versions {
            exchange,
            salesforce,
            links: item.links.iter().map(|(id, l)| (*id, l)).collect(),
        }
    }

    /// A link's sides at the versions this plan sees them: tether's own write, read back, is
    /// newer than the link remembers when its state write was lost. A link recorded with the
    /// older version would have every later delete or overwrite of it held back as "changed
    /// after the read".
    fn current(
        &self,
        exchange: &ExchangeSide,
        salesforce: &SalesforceSide,
    ) -> (ExchangeSide, SalesforceSide) {
        let read = |versions: &HashMap<&str, Option<&str>>, id: &str, stored: &str| {
            versions
                .get(id)
                .copied()
                .flatten()
                .unwrap_or(stored)
                .to_string()
        };
        (
            ExchangeSide {
                item_id: exchange.item_id.clone(),
                change_key: read(&self.exchange, &exchange.item_id, &exchange.change_key),
            },
            SalesforceSide {
                id: salesforce.id.clone(),
                modstamp: read(&self.salesforce, &salesforce.id, &salesforce.modstamp),
            },
        )
    }

    /// The records `action` touches: those it names and those of the link it changes.
    fn touched(&self, action: &Action) -> (Option<RecordVersion>, Option<RecordVersion>) {
        let link = |id: &Option<LinkId>| id.and_then(|id| self.links.get(&id).copied());
        let (ex, sf, link): (Option<&str>, Option<&str>, Option<&Link>) = match action {
            Action::Link {
                exchange,
                salesforce,
                ..
            }
            | Action::Refresh {
                exchange,
                salesforce,
                ..
            } => (Some(&exchange.item_id), Some(&salesforce.id), None),
            Action::CreateInSalesforce {
                exchange, replaces, ..
            } => (Some(&exchange.item_id), None, link(replaces)),
            Action::CreateInExchange {
                salesforce,
                replaces,
                ..
            } => (None, Some(&salesforce.id), link(replaces)),
            Action::UpdateSalesforce {
                exchange,
                salesforce_id,
                ..
            } => (Some(&exchange.item_id), Some(salesforce_id), None),
            Action::UpdateExchange {
                salesforce,
                item_id,
                ..
            } => (Some(item_id), Some(&salesforce.id), None),
            Action::DeleteInSalesforce {
                link: id,
                salesforce_id,
            } => (None, Some(salesforce_id), link(&Some(*id))),
            Action::DeleteInExchange { link: id, item_id } => {
                (Some(item_id), None, link(&Some(*id)))
            }
            Action::Detach { link: id, .. } | Action::Forget { link: id } => {
                (None, None, link(&Some(*id)))
            }
        };
        let ex = ex.or_else(|| link?.exchange.as_ref().map(|e| e.item_id.as_str()));
        let sf = sf.or_else(|| link?.salesforce.as_ref().map(|s| s.id.as_str()));
        (
            ex.map(|id| RecordVersion {
                id: id.to_string(),
                version: self.exchange.get(id).copied().flatten().map(String::from),
            }),
            sf.map(|id| RecordVersion {
                id: id.to_string(),
                version: self.salesforce.get(id).copied().flatten().map(String::from),
            }),
        )
    }
}

fn ex_side(m: &MailItem) -> ExchangeSide {
    ExchangeSide {
        item_id: m.item_id.clone(),
        change_key: m.change_key.clone(),
    }
}

fn sf_side(r: &CrmRecord) -> SalesforceSide {
    SalesforceSide {
        id: r.id.clone(),
        modstamp: r.modstamp.clone(),
    }
}

impl RepPlanner<'_, '_> {
    fn push(&mut self, action: Action, reason: impl Into<String>) {
        self.push_over(action, reason, None);
    }

    /// Push an update, with the record it writes over if read.
    fn push_over(&mut self, action: Action, reason: impl Into<String>, replaced: Option<&Record>) {
        let rep = &self.item.rep;
        let (exchange, salesforce) = self.versions.touched(&action);
        self.out.operations.push(Operation {
            rep: rep.user_id.clone(),
            mailbox: rep.mailbox.clone(),
            object: self.item.object,
            action,
            reason: reason.into(),
            exchange,
            salesforce,
            replaced: replaced.cloned(),
        });
    }

    fn skip(&mut self, id: &str, reason: &str) {
        self.out.skipped.push(Skipped {
            rep: self.item.rep.user_id.clone(),
            object: self.item.object,
            record_id: id.to_string(),
            reason: reason.to_string(),
        });
    }

    fn hash(&self, record: &Record) -> String {
        record_hash(record, &self.s.mapping)
    }

    /// Why `record` may not be written towards `direction`; `None` when it may.
    fn blocked(
        &self,
        record: &Record,
        direction: SyncDirection,
        related: bool,
    ) -> Option<&'static str> {
        if !self.s.syncs(direction) {
            return Some("direction does not sync this way");
        }
        match record {
            Record::Event(e) => rules::event_skip_reason(
                self.s,
                e,
                direction,
                related,
                self.window_start,
                self.item.rep.time_zone,
            ),
            Record::Contact(c) => (direction == SyncDirection::SalesforceToExchange
                && !rules::filters_pass(c, &self.s.filters))
            .then_some("does not pass the contact filters"),
        }
    }

    fn run(mut self) {
        let item = self.item;
        let ex_hashes: HashMap<&str, String> = item
            .mail
            .upserts
            .iter()
            .map(|m| (m.item_id.as_str(), self.hash(&m.record)))
            .collect();
        let sf_hashes: HashMap<&str, String> = item
            .crm
            .upserts
            .iter()
            .map(|r| (r.id.as_str(), self.hash(&r.record)))
            .collect();
        let journal: Vec<&JournalEntry> = self
            .input
            .pending
            .iter()
            .filter(|j| j.rep == item.rep.user_id && j.object == item.object)
            .collect();

        // The base of each three-way decision: the hash as last synced.
        let mut links: Vec<(LinkId, Link)> = item.links.clone();
        let mut base: BTreeMap<LinkId, String> =
            links.iter().map(|(i, l)| (*i, l.hash.clone())).collect();
        // Links whose state tether must record even if nothing is written.
        let mut record: BTreeSet<LinkId> = BTreeSet::new();
        // Links that named their item by another mail API's id now name it by this one's.
        let mut renamed: BTreeSet<LinkId> = BTreeSet::new();
        for (lid, link) in links.iter_mut() {
            if let Some(e) = link.exchange.as_mut()
                && let Some(now) = item.renamed.get(&e.item_id)
            {
                e.item_id = now.clone();
                renamed.insert(*lid);
                record.insert(*lid);
            }
        }

        let ex_deleted: BTreeSet<&str> = item.mail.deleted.iter().map(String::as_str).collect();
        let sf_deleted: BTreeSet<&str> = item.crm.deleted.iter().map(String::as_str).collect();
        let ex_gone = |l: &Link| match &l.exchange {
            None => true,
            Some(e) => {
                ex_deleted.contains(e.item_id.as_str())
                    || (item.mail.full && !ex_hashes.contains_key(e.item_id.as_str()))
            }
        };
        let sf_gone = |l: &Link| match &l.salesforce {
            None => true,
            Some(s) => {
                sf_deleted.contains(s.id.as_str())
                    || (item.crm.full && !sf_hashes.contains_key(s.id.as_str()))
            }
        };
        let linked_ex: BTreeSet<String> = links
            .iter()
            .filter_map(|(_, l)| l.exchange.as_ref().map(|e| e.item_id.clone()))
            .collect();
        let linked_sf: BTreeSet<String> = links
            .iter()
            .filter_map(|(_, l)| l.salesforce.as_ref().map(|s| s.id.clone()))
            .collect();

        // An item stamped with a link's Salesforce id takes the place of the link's gone
        // item: a record tether re-created (an edit that beat a delete) whose link write was
        // lost to a crash or an ambiguous answer, with the hash it was created with as the
        // base; or the link's item id damaged in the state (the cycle looks up a link's
        // item that an incremental read does not show, when such an item appears).
        for m in &item.mail.upserts {
            let Some(sid) = m.salesforce_id.as_deref() else {
                continue;
            };
            if linked_ex.contains(&m.item_id) {
                continue;
            }
            let Some((lid, link)) = links
                .iter_mut()
                .find(|(_, l)| l.salesforce.as_ref().is_some_and(|s| s.id == sid))
            else {
                continue;
            };
            if !ex_gone(link) {
                continue;
            }
            link.exchange = Some(ex_side(m));
            if let Some(j) = journal
                .iter()
                .find(|j| j.target == CreateTarget::Exchange && j.source_id == sid)
            {
                base.insert(*lid, j.hash.clone());
            }
            record.insert(*lid);
        }
        for r in &item.crm.upserts {
            if linked_sf.contains(&r.id) {
                continue;
            }
            let Some(j) = journal.iter().find(|j| {
                j.target == CreateTarget::Salesforce && Some(&j.marker) == r.marker.as_ref()
            }) else {
                continue;
            };
            let Some((lid, link)) = links.iter_mut().find(|(_, l)| {
                l.exchange
                    .as_ref()
                    .is_some_and(|e| e.item_id == j.source_id)
            }) else {
                continue;
            };
            if !sf_gone(link) {
                continue;
            }
            link.salesforce = Some(sf_side(r));
            base.insert(*lid, j.hash.clone());
            record.insert(*lid);
        }
        // Likewise a Salesforce record whose id a linked item carries takes the place of
        // that link's gone record (its Salesforce id damaged in the state).
        for r in &item.crm.upserts {
            if linked_sf.contains(&r.id) {
                continue;
            }
            let Some(m) = item
                .mail
                .upserts
                .iter()
                .find(|m| m.salesforce_id.as_deref() == Some(r.id.as_str()))
            else {
                continue;
            };
            let Some((lid, link)) = links
                .iter_mut()
                .find(|(_, l)| l.exchange.as_ref().is_some_and(|e| e.item_id == m.item_id))
            else {
                continue;
            };
            if link.salesforce.is_none() || !sf_gone(link) {
                continue;
            }
            link.salesforce = Some(sf_side(r));
            record.insert(*lid);
        }

        // An update tether sent but could not record (killed before the state write) left
        // an intent; when the written side shows exactly what tether wrote, that is the
        // base, so tether's own write is not taken for the rep's edit.
        let intents: HashMap<(LinkId, CreateTarget), &str> = journal
            .iter()
            .filter_map(|j| {
                let id = j.source_id.strip_prefix("link:")?.parse().ok()?;
                Some(((LinkId(id), j.target), j.hash.as_str()))
            })
            .collect();
        for (id, l) in &links {
            let shown = [
                (
                    CreateTarget::Exchange,
                    l.exchange
                        .as_ref()
                        .and_then(|e| ex_hashes.get(e.item_id.as_str())),
                ),
                (
                    CreateTarget::Salesforce,
                    l.salesforce
                        .as_ref()
                        .and_then(|s| sf_hashes.get(s.id.as_str())),
                ),
            ];
            for (target, hash) in shown {
                if let (Some(h), Some(intent)) = (hash, intents.get(&(*id, target)))
                    && h == intent
                {
                    base.insert(*id, h.clone());
                    record.insert(*id);
                }
            }
        }

        let mut by_ex: HashMap<&str, LinkId> = HashMap::new();
        let mut by_sf: HashMap<&str, LinkId> = HashMap::new();
        for (id, l) in &links {
            if let Some(e) = &l.exchange {
                by_ex.insert(&e.item_id, *id);
            }
            if let Some(s) = &l.salesforce {
                by_sf.insert(&s.id, *id);
            }
        }

        // Exchange side.
        let mut ex_obs: BTreeMap<LinkId, Obs<'_, MailItem>> = BTreeMap::new();
        let mut new_ex: Vec<&MailItem> = Vec::new();
        for m in &item.mail.upserts {
            let h = &ex_hashes[m.item_id.as_str()];
            match by_ex.get(m.item_id.as_str()) {
                Some(id) if base[id] == *h => {
                    ex_obs.insert(*id, Obs::Same);
                }
                Some(id) => {
                    ex_obs.insert(*id, Obs::Changed(m, h));
                }
                None => new_ex.push(m),
            }
        }
        for (id, l) in &links {
            if l.exchange.is_some() && ex_gone(l) {
                ex_obs.insert(*id, Obs::Gone { left_scope: false });
            }
        }

        // Salesforce side.
        let mut sf_obs: BTreeMap<LinkId, Obs<'_, CrmRecord>> = BTreeMap::new();
        let mut new_sf: Vec<&CrmRecord> = Vec::new();
        for r in &item.crm.upserts {
            let unreadable = item.unreadable.contains(&r.id);
            let scoped = in_scope(&item.rep, self.s, r) && !unreadable;
            let h = &sf_hashes[r.id.as_str()];
            if unreadable {
                self.skip(&r.id, "the rep cannot read it in Salesforce");
            }
            match by_sf.get(r.id.as_str()) {
                Some(id) if !scoped => {
                    sf_obs.insert(*id, Obs::Gone { left_scope: true });
                }
                Some(id) if base[id] == *h => {
                    sf_obs.insert(*id, Obs::Same);
                }
                Some(id) => {
                    sf_obs.insert(*id, Obs::Changed(r, h));
                }
                None if scoped => new_sf.push(r),
                None => {}
            }
        }
        for (id, l) in &links {
            if l.salesforce.is_some() && sf_gone(l) {
                sf_obs.insert(*id, Obs::Gone { left_scope: false });
            }
        }

        // Empty-side guard.
        self.guard(Side::Exchange, &mut ex_obs, |l| l.exchange.is_some());
        self.guard(Side::Salesforce, &mut sf_obs, |l| l.salesforce.is_some());

        for (id, link) in &links {
            let before = self.out.operations.len();
            let e = ex_obs.get(id).copied().unwrap_or(Obs::Same);
            let s = sf_obs.get(id).copied().unwrap_or(Obs::Same);
            self.decide(*id, link, e, s);
            if record.contains(id)
                && self.out.operations.len() == before
                && let (Some(exchange), Some(salesforce)) = (&link.exchange, &link.salesforce)
            {
                let (exchange, salesforce) = self.versions.current(exchange, salesforce);
                self.push(
                    Action::Refresh {
                        link: *id,
                        exchange,
                        salesforce,
                        hash: base[id].clone(),
                    },
                    if renamed.contains(id) {
                        "the Exchange item's id translated to the mail API's own"
                    } else {
                        "written by tether earlier; recorded now"
                    },
                );
            }
        }
        self.new_records(new_ex, new_sf, &ex_hashes, &sf_hashes);
    }

    fn guard<T>(
        &mut self,
        side: Side,
        obs: &mut BTreeMap<LinkId, Obs<'_, T>>,
        has_side: impl Fn(&Link) -> bool,
    ) {
        let linked = self.item.links.iter().filter(|(_, l)| has_side(l)).count();
        let gone = obs
            .values()
            .filter(|o| matches!(o, Obs::Gone { .. }))
            .count();
        if self.input.force || linked < EMPTY_SIDE_MIN_LINKS || gone < linked {
            return;
        }
        obs.retain(|_, o| !matches!(o, Obs::Gone { .. }));
        let name = match side {
            Side::Exchange => "Exchange",
            Side::Salesforce => "Salesforce",
        };
        self.out.refusals.push(Refusal {
            rep: self.item.rep.user_id.clone(),
            object: self.item.object,
            side,
            linked,
            message: format!(
                "all {linked} linked {}s of {} are gone from {name} at once; refusing to delete \
                 or unlink them (a wrong mailbox or a lost permission looks like this). Check \
                 the {name} side, or run with --force if the deletes are real.",
                self.item.object.name(),
                self.item.rep.email
            ),
        });
    }

    /// Why a linked record's change may not be written towards `direction`. A linked pair has
    /// a copy on both sides: `which: user_selected` and the contact `filters` choose what
    /// enters the other side, not whether a pair stays in step. (They blocked an Outlook edit
    /// of a Salesforce event, and a Salesforce edit of a contact born in Salesforce_Sync, so
    /// the two copies disagreed for good.) Privacy, series, the since window still apply.
    fn blocked_linked(&self, record: &Record, direction: SyncDirection) -> Option<&'static str> {
        match record {
            Record::Event(_) => self.blocked(record, direction, true),
            Record::Contact(_) => {
                (!self.s.syncs(direction)).then_some("direction does not sync this way")
            }
        }
    }

    fn decide(&mut self, id: LinkId, link: &Link, e: Obs<'_, MailItem>, s: Obs<'_, CrmRecord>) {
        use SyncDirection::{ExchangeToSalesforce as ToSf, SalesforceToExchange as ToEx};
        let events = self.item.object == ObjectKind::Event;
        let (Some(ex), Some(sf)) = (&link.exchange, &link.salesforce) else {
            // Detached: forget it once the remaining record is gone too.
            let remaining_gone = match (&link.exchange, &link.salesforce) {
                (Some(_), None) => matches!(e, Obs::Gone { .. }),
                (None, Some(_)) => matches!(s, Obs::Gone { .. }),
                _ => true,
            };
            if remaining_gone {
                self.push(
                    Action::Forget { link: id },
                    "the remaining record is gone too",
                );
            }
            return;
        };
        match (e, s) {
            (Obs::Same, Obs::Same) => {}
            (Obs::Changed(m, h), Obs::Same) => match self.blocked_linked(&m.record, ToSf) {
                None => self.push_over(
                    Action::UpdateSalesforce {
                        link: Some(id),
                        exchange: ex_side(m),
                        salesforce_id: sf.id.clone(),
                        record: m.record.clone(),
                        hash: h.to_string(),
                        merge_half: false,
                    },
                    "changed in Exchange",
                    self.read.salesforce.get(sf.id.as_str()).copied(),
                ),
                Some(why) => self.skip(&m.item_id, why),
            },
            (Obs::Same, Obs::Changed(r, h)) => match self.blocked_linked(&r.record, ToEx) {
                None => self.push_over(
                    Action::UpdateExchange {
                        link: Some(id),
                        salesforce: sf_side(r),
                        item_id: ex.item_id.clone(),
                        record: r.record.clone(),
                        hash: h.to_string(),
                        merge_half: false,
                    },
                    "changed in Salesforce",
                    self.read.exchange.get(ex.item_id.as_str()).copied(),
                ),
                Some(why) => self.skip(&r.id, why),
            },
            (Obs::Changed(m, he), Obs::Changed(r, hs)) => {
                if he == hs {
                    self.push(
                        Action::Refresh {
                            link: id,
                            exchange: ex_side(m),
                            salesforce: sf_side(r),
                            hash: he.to_string(),
                        },
                        "changed the same way on both sides",
                    );
                    return;
                }
                let winner = match self.s.conflict {
                    ConflictPolicy::ExchangeWins => Side::Exchange,
                    ConflictPolicy::SalesforceWins => Side::Salesforce,
                };
                if self.s.direction == crate::config::model::Direction::Both {
                    self.out.conflicts.push(Conflict {
                        rep: self.item.rep.user_id.clone(),
                        object: self.item.object,
                        exchange_id: m.item_id.clone(),
                        salesforce_id: r.id.clone(),
                        winner,
                    });
                }
                if !self.update_loser(
                    Some(id),
                    winner,
                    m,
                    r,
                    he,
                    hs,
                    "changed on both sides; conflict policy",
                ) {
                    let why = match winner {
                        Side::Exchange => self.blocked_linked(&m.record, ToSf),
                        Side::Salesforce => self.blocked_linked(&r.record, ToEx),
                    };
                    self.skip(&m.item_id, why.unwrap_or("not synced"));
                }
            }
            (Obs::Gone { .. }, Obs::Gone { .. }) => {
                self.push(Action::Forget { link: id }, "deleted on both sides")
            }
            (Obs::Gone { left_scope }, Obs::Same) => {
                // Exchange item gone: propagate for events with delete_synced, else detach.
                if events && self.s.delete_synced && self.s.syncs(ToSf) && !left_scope {
                    self.push(
                        Action::DeleteInSalesforce {
                            link: id,
                            salesforce_id: sf.id.clone(),
                        },
                        "deleted in Exchange (delete_synced)",
                    );
                } else {
                    self.detach(id, link, Side::Salesforce, "deleted in Exchange; unlinked");
                }
            }
            (Obs::Same, Obs::Gone { left_scope }) => {
                if events && self.s.delete_synced && self.s.syncs(ToEx) && !left_scope {
                    self.push(
                        Action::DeleteInExchange {
                            link: id,
                            item_id: ex.item_id.clone(),
                        },
                        "deleted in Salesforce (delete_synced)",
                    );
                } else if left_scope {
                    self.detach(
                        id,
                        link,
                        Side::Exchange,
                        "left the rep's sync scope; unlinked",
                    );
                } else {
                    self.detach(id, link, Side::Exchange, "deleted in Salesforce; unlinked");
                }
            }
            (Obs::Gone { left_scope }, Obs::Changed(r, h)) => {
                // The edit wins over the delete: re-create for events; contacts only unlink
                // (the edit stays where it was made).
                if events && !left_scope && self.blocked_linked(&r.record, ToEx).is_none() {
                    self.push(
                        Action::CreateInExchange {
                            salesforce: sf_side(r),
                            record: r.record.clone(),
                            hash: h.to_string(),
                            replaces: Some(id),
                        },
                        "deleted in Exchange but edited in Salesforce: the edit wins",
                    );
                } else {
                    self.detach(
                        id,
                        link,
                        Side::Salesforce,
                        "deleted in Exchange, edited in Salesforce; unlinked, the edit kept",
                    );
                }
            }
            (Obs::Changed(m, h), Obs::Gone { left_scope }) => {
                if events && !left_scope && self.blocked_linked(&m.record, ToSf).is_none() {
                    self.push(
                        Action::CreateInSalesforce {
                            exchange: ex_side(m),
                            record: m.record.clone(),
                            hash: h.to_string(),
                            relate: Vec::new(),
                            replaces: Some(id),
                        },
                        "deleted in Salesforce but edited in Exchange: the edit wins",
                    );
                } else {
                    self.detach(
                        id,
                        link,
                        Side::Exchange,
                        "deleted in Salesforce, edited in Exchange; unlinked, the edit kept",
                    );
                }
            }
        }
    }

    /// Warn about every Salesforce field a one-way Exchange→Salesforce write of `written`
    /// sets although it differs (a Salesforce edit, or a record matched on first sync).
    fn overwrite_warning(&mut self, written: &Record, r: &CrmRecord) {
        if self.s.direction != crate::config::model::Direction::ExchangeToSalesforce {
            return;
        }
        let ours = comparison_form(written, &self.s.mapping);
        let theirs = comparison_form(&r.record, &self.s.mapping);
        let fields: Vec<String> = ours
            .keys()
            .chain(theirs.keys())
            .filter(|k| ours.get(*k) != theirs.get(*k))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !fields.is_empty() {
            self.out.overwrites.push(Overwrite {
                rep: self.item.rep.user_id.clone(),
                salesforce_id: r.id.clone(),
                fields,
            });
        }
    }

    fn detach(&mut self, id: LinkId, link: &Link, keep: Side, reason: &str) {
        let mut remaining = link.clone();
        match keep {
            Side::Exchange => remaining.salesforce = None,
            Side::Salesforce => remaining.exchange = None,
        }
        self.push(
            Action::Detach {
                link: id,
                remaining,
            },
            reason,
        );
    }

    /// Whether `m`'s record may be written to Salesforce and `r`'s to Exchange.
    fn writable(&self, link: Option<LinkId>, m: &MailItem, r: &CrmRecord) -> (bool, bool) {
        use SyncDirection::{ExchangeToSalesforce as ToSf, SalesforceToExchange as ToEx};
        match link {
            Some(_) => (
                self.blocked_linked(&m.record, ToSf).is_none(),
                self.blocked_linked(&r.record, ToEx).is_none(),
            ),
            None => (
                self.blocked(&m.record, ToSf, m.related_in_outlook)
                    .is_none(),
                self.blocked(&r.record, ToEx, true).is_none(),
            ),
        }
    }

    /// Write the winner's record over the loser, if that direction may be written.
    #[allow(clippy::too_many_arguments)]
    fn update_loser(
        &mut self,
        link: Option<LinkId>,
        winner: Side,
        m: &MailItem,
        r: &CrmRecord,
        he: &str,
        hs: &str,
        reason: &str,
    ) -> bool {
        let (to_sf, to_ex) = self.writable(link, m, r);
        match winner {
            Side::Exchange if to_sf => self.write(
                link,
                Side::Salesforce,
                m,
                r,
                &m.record,
                he,
                false,
                format!("{reason}: Exchange wins"),
            ),
            Side::Salesforce if to_ex => self.write(
                link,
                Side::Exchange,
                m,
                r,
                &r.record,
                hs,
                false,
                format!("{reason}: Salesforce wins"),
            ),
            _ => return false,
        }
        true
    }

    /// Push the write of `record` to `to`, over the pair `m`/`r`.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        link: Option<LinkId>,
        to: Side,
        m: &MailItem,
        r: &CrmRecord,
        record: &Record,
        hash: &str,
        merge_half: bool,
        reason: String,
    ) {
        match to {
            Side::Salesforce => {
                self.overwrite_warning(record, r);
                self.push_over(
                    Action::UpdateSalesforce {
                        link,
                        exchange: ex_side(m),
                        salesforce_id: r.id.clone(),
                        record: record.clone(),
                        hash: hash.to_string(),
                        merge_half,
                    },
                    reason,
                    Some(&r.record),
                );
            }
            Side::Exchange => self.push_over(
                Action::UpdateExchange {
                    link,
                    salesforce: sf_side(r),
                    item_id: m.item_id.clone(),
                    record: record.clone(),
                    hash: hash.to_string(),
                    merge_half,
                },
                reason,
                Some(&m.record),
            ),
        }
    }

    /// Link two records that differ and have no base: the winner (by the conflict policy,
    /// or the side a one-way sync reads) keeps its values, and every field it leaves empty
    /// is filled from the other side, since an empty field there is unknown, not deleted.
    /// The merge is written to each side it changes that may be written; when the winner
    /// may not be written, the link keeps the winner's hash, so that the next plan finds
    /// nothing to do (the other side's extra fields are a change that does not sync back).
    fn first_link(&mut self, m: &MailItem, r: &CrmRecord, he: &str, hs: &str, why: &str) {
        let (to_sf, to_ex) = self.writable(None, m, r);
        let policy = match self.s.conflict {
            ConflictPolicy::ExchangeWins => Side::Exchange,
            ConflictPolicy::SalesforceWins => Side::Salesforce,
        };
        let winner = match (policy, to_sf, to_ex) {
            (_, false, false) => return,
            (Side::Exchange, false, true) => Side::Salesforce,
            (Side::Salesforce, true, false) => Side::Exchange,
            (p, _, _) => p,
        };
        let (loser, won, lost, winner_hash, loser_hash) = match winner {
            Side::Exchange => (Side::Salesforce, &m.record, &r.record, he, hs),
            Side::Salesforce => (Side::Exchange, &r.record, &m.record, hs, he),
        };
        let merged = fill_empty(won, lost, &self.s.mapping);
        let hash = self.hash(&merged);
        // Once linked, the pair follows the linked rules: the next plan writes the winner
        // only if these allow it.
        let toward_winner = match winner {
            Side::Exchange => SyncDirection::SalesforceToExchange,
            Side::Salesforce => SyncDirection::ExchangeToSalesforce,
        };
        let winner_writable = self.blocked_linked(&merged, toward_winner).is_none();
        let filled = winner_hash != hash;
        let write_loser = loser_hash != hash;
        let write_winner = winner_writable && filled;
        let base = if winner_writable {
            hash
        } else {
            winner_hash.to_string()
        };
        let both = write_loser && write_winner;
        let (winner_name, loser_name) = match winner {
            Side::Exchange => ("Exchange", "Salesforce"),
            Side::Salesforce => ("Salesforce", "Exchange"),
        };
        if write_loser {
            let filled = if filled {
                format!(", its empty fields filled from {loser_name}")
            } else {
                String::new()
            };
            let reason = format!("{why}: {winner_name} wins{filled}");
            self.write(None, loser, m, r, &merged, &base, both, reason);
        }
        if write_winner {
            let reason = format!("{why}: empty fields filled from {loser_name}");
            self.write(None, winner, m, r, &merged, &base, both, reason);
        }
        if !write_loser && !write_winner {
            self.push(
                Action::Link {
                    exchange: ex_side(m),
                    salesforce: sf_side(r),
                    hash: base,
                },
                format!("{why}; the other side's extra fields do not sync back"),
            );
        }
    }

    fn new_records(
        &mut self,
        new_ex: Vec<&MailItem>,
        new_sf: Vec<&CrmRecord>,
        ex_hashes: &HashMap<&str, String>,
        sf_hashes: &HashMap<&str, String>,
    ) {
        let mut ex_left: Vec<Option<&MailItem>> = new_ex.into_iter().map(Some).collect();
        let mut sf_left: Vec<Option<&CrmRecord>> = new_sf.into_iter().map(Some).collect();
        // (Exchange item, Salesforce record, why, hash of the record as tether created it).
        let mut pairs: Vec<(&MailItem, &CrmRecord, &'static str, Option<String>)> = Vec::new();

        // 1. The Salesforce id tether stamped on items it created.
        // 2. The create journal's marker on records tether created in Salesforce.
        let journal: Vec<&JournalEntry> = self
            .input
            .pending
            .iter()
            .filter(|j| j.rep == self.item.rep.user_id && j.object == self.item.object)
            .collect();
        for slot in ex_left.iter_mut() {
            let Some(m) = *slot else { continue };
            let mut base = None;
            let found = sf_left.iter().position(|r| {
                let Some(r) = r else { return false };
                if m.salesforce_id.as_deref() == Some(r.id.as_str()) {
                    base = journal
                        .iter()
                        .find(|j| j.target == CreateTarget::Exchange && j.source_id == r.id)
                        .map(|j| j.hash.clone());
                    return true;
                }
                let entry = journal.iter().find(|j| {
                    j.target == CreateTarget::Salesforce
                        && Some(&j.marker) == r.marker.as_ref()
                        && j.source_id == m.item_id
                });
                base = entry.map(|j| j.hash.clone());
                entry.is_some()
            });
            if let Some(si) = found
                && let Some(r) = sf_left[si].take()
            {
                pairs.push((m, r, "created by tether", base));
                *slot = None;
            }
        }

        // 3. Natural keys, strongest first.
        for rank in 0..2 {
            self.match_natural_keys(
                rank,
                &mut ex_left,
                &mut sf_left,
                &mut pairs,
                ex_hashes,
                sf_hashes,
            );
        }

        for (m, r, why, base) in pairs {
            let he = &ex_hashes[m.item_id.as_str()];
            let hs = &sf_hashes[r.id.as_str()];
            // With the hash tether created the record with, only the side that changed
            // since then wins; otherwise the conflict policy decides.
            let winner = match base.as_deref() {
                _ if he == hs => None,
                Some(b) if b == hs => Some(Side::Exchange),
                Some(b) if b == he => Some(Side::Salesforce),
                _ => Some(match self.s.conflict {
                    ConflictPolicy::ExchangeWins => Side::Exchange,
                    ConflictPolicy::SalesforceWins => Side::Salesforce,
                }),
            };
            match winner {
                None => self.push(
                    Action::Link {
                        exchange: ex_side(m),
                        salesforce: sf_side(r),
                        hash: he.clone(),
                    },
                    format!("{why}; identical"),
                ),
                // No base: merge rather than take one side whole.
                Some(_) if base.is_none() => self.first_link(m, r, he, hs, why),
                Some(winner) => {
                    if !self.update_loser(None, winner, m, r, he, hs, why) {
                        let other = match winner {
                            Side::Exchange => Side::Salesforce,
                            Side::Salesforce => Side::Exchange,
                        };
                        self.update_loser(None, other, m, r, he, hs, why);
                    }
                }
            }
        }

        // A create journalled earlier and never confirmed: the executor looks it up first.
        let unconfirmed = |target: CreateTarget, source: &str| {
            journal
                .iter()
                .any(|j| j.target == target && j.source_id == source)
        };
        // Never a second copy of a record that exists: an item stamped with the id of a
        // Salesforce record tether knows is not created in Salesforce, nor a record whose id
        // an item carries created in Exchange (a copy of a synced item, or a link whose
        // other record could not be found: re-linked once it is found gone).
        let known_sf: BTreeSet<&str> = self
            .item
            .links
            .iter()
            .filter_map(|(_, l)| l.salesforce.as_ref().map(|s| s.id.as_str()))
            .chain(self.read.salesforce.keys().copied())
            .collect();
        let stamped: BTreeSet<&str> = self
            .item
            .mail
            .upserts
            .iter()
            .filter_map(|m| m.salesforce_id.as_deref())
            .collect();
        for m in ex_left.iter_mut() {
            if let Some(m) = m.take_if(|m| {
                m.salesforce_id
                    .as_deref()
                    .is_some_and(|id| known_sf.contains(id))
            }) {
                self.skip(&m.item_id, STAMPED_WITH_A_KNOWN_ID);
            }
        }
        for r in sf_left.iter_mut() {
            if let Some(r) = r.take_if(|r| stamped.contains(r.id.as_str())) {
                self.skip(&r.id, HAS_A_STAMPED_ITEM);
            }
        }
        for m in ex_left.into_iter().flatten() {
            match self.blocked(
                &m.record,
                SyncDirection::ExchangeToSalesforce,
                m.related_in_outlook,
            ) {
                None => {
                    let relate = match &m.record {
                        Record::Event(e) if self.s.auto_relate && !e.private => e
                            .attendees
                            .iter()
                            .map(|a| crate::model::normalize::email(a))
                            .filter(|a| *a != self.item.rep.email)
                            .collect(),
                        _ => Vec::new(),
                    };
                    let reason = match unconfirmed(CreateTarget::Salesforce, &m.item_id) {
                        false => "new in Exchange",
                        true => UNCONFIRMED_TO_SALESFORCE,
                    };
                    self.push(
                        Action::CreateInSalesforce {
                            exchange: ex_side(m),
                            record: m.record.clone(),
                            hash: ex_hashes[m.item_id.as_str()].clone(),
                            relate,
                            replaces: None,
                        },
                        reason,
                    );
                }
                Some(why) if self.s.syncs(SyncDirection::ExchangeToSalesforce) => {
                    self.skip(&m.item_id, why)
                }
                Some(_) => {}
            }
        }
        for r in sf_left.into_iter().flatten() {
            match self.blocked(&r.record, SyncDirection::SalesforceToExchange, true) {
                None => self.push(
                    Action::CreateInExchange {
                        salesforce: sf_side(r),
                        record: r.record.clone(),
                        hash: sf_hashes[r.id.as_str()].clone(),
                        replaces: None,
                    },
                    match unconfirmed(CreateTarget::Exchange, &r.id) {
                        false => "new in Salesforce",
                        true => UNCONFIRMED_TO_EXCHANGE,
                    },
                ),
                Some(why) if self.s.syncs(SyncDirection::SalesforceToExchange) => {
                    self.skip(&r.id, why)
                }
                Some(_) => {}
            }
        }
    }

    /// Pairs the records left whose `rank`th natural key is the same and where each is the
    /// other's only candidate. A name match (contacts' second key) is a candidate only when
    /// the emails do not contradict each other: two people of one name at one company are
    /// two people. Records with several candidates link nothing, are not created either
    /// (that would duplicate whichever of them is the same person), and are reported.
    fn match_natural_keys<'r>(
        &mut self,
        rank: usize,
        ex_left: &mut [Option<&'r MailItem>],
        sf_left: &mut [Option<&'r CrmRecord>],
        pairs: &mut Vec<(&'r MailItem, &'r CrmRecord, &'static str, Option<String>)>,
        ex_hashes: &HashMap<&str, String>,
        sf_hashes: &HashMap<&str, String>,
    ) {
        let key = |r: &Record| rules::match_keys(r)[rank].clone();
        let mut by_key: BTreeMap<String, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (i, m) in ex_left.iter().enumerate() {
            if let Some(k) = m.and_then(|m| key(&m.record)) {
                by_key.entry(k).or_default().0.push(i);
            }
        }
        for (i, r) in sf_left.iter().enumerate() {
            if let Some(k) = r.and_then(|r| key(&r.record)) {
                by_key.entry(k).or_default().1.push(i);
            }
        }
        let by_name = self.item.object == ObjectKind::Contact && rank == 1;
        for (ex_ids, sf_ids) in by_key.values() {
            if ex_ids.is_empty() || sf_ids.is_empty() {
                continue;
            }
            if !by_name {
                // Unique on both sides, or not at all.
                if let ([ei], [si]) = (ex_ids.as_slice(), sf_ids.as_slice()) {
                    self.pair_if_allowed(*ei, *si, ex_left, sf_left, pairs, ex_hashes, sf_hashes);
                }
                continue;
            }
            let candidate = |ei: usize, si: usize| {
                let (Some(m), Some(r)) = (ex_left[ei], sf_left[si]) else {
                    return false;
                };
                let email = |r: &Record| {
                    crate::model::normalize::email(r.as_contact().map_or("", |c| c.email()))
                };
                let (a, b) = (email(&m.record), email(&r.record));
                a.is_empty() || b.is_empty() || a == b
            };
            let ex_of = |si: usize| -> Vec<usize> {
                ex_ids
                    .iter()
                    .copied()
                    .filter(|&ei| candidate(ei, si))
                    .collect()
            };
            let sf_of = |ei: usize| -> Vec<usize> {
                sf_ids
                    .iter()
                    .copied()
                    .filter(|&si| candidate(ei, si))
                    .collect()
            };
            let mut ambiguous_ex: BTreeSet<usize> = BTreeSet::new();
            let mut ambiguous_sf: BTreeSet<usize> = BTreeSet::new();
            let mut unique = Vec::new();
            for &ei in ex_ids {
                let sfs = sf_of(ei);
                match sfs.as_slice() {
                    [] => {}
                    [si] if ex_of(*si).len() == 1 => unique.push((ei, *si)),
                    _ => {
                        ambiguous_ex.insert(ei);
                        for si in sfs {
                            ambiguous_sf.insert(si);
                            ambiguous_ex.extend(ex_of(si));
                        }
                    }
                }
            }
            for (ei, si) in unique {
                self.pair_if_allowed(ei, si, ex_left, sf_left, pairs, ex_hashes, sf_hashes);
            }
            if ambiguous_ex.is_empty() {
                continue;
            }
            let reason = "ambiguous match by name and company (see the warning)";
            let mut found = AmbiguousMatch {
                rep: self.item.rep.user_id.clone(),
                object: self.item.object,
                exchange_ids: Vec::new(),
                salesforce_ids: Vec::new(),
            };
            for i in ambiguous_ex {
                if let Some(m) = ex_left[i].take() {
                    self.skip(&m.item_id, reason);
                    found.exchange_ids.push(m.item_id.clone());
                }
            }
            for i in ambiguous_sf {
                if let Some(r) = sf_left[i].take() {
                    self.skip(&r.id, reason);
                    found.salesforce_ids.push(r.id.clone());
                }
            }
            self.out.ambiguous.push(found);
        }
    }

    /// Pairs two unlinked records when `can_pair` allows it.
    #[allow(clippy::too_many_arguments)]
    fn pair_if_allowed<'r>(
        &self,
        ei: usize,
        si: usize,
        ex_left: &mut [Option<&'r MailItem>],
        sf_left: &mut [Option<&'r CrmRecord>],
        pairs: &mut Vec<(&'r MailItem, &'r CrmRecord, &'static str, Option<String>)>,
        ex_hashes: &HashMap<&str, String>,
        sf_hashes: &HashMap<&str, String>,
    ) {
        let (Some(m), Some(r)) = (ex_left[ei], sf_left[si]) else {
            return;
        };
        if self.can_pair(
            m,
            r,
            &ex_hashes[m.item_id.as_str()],
            &sf_hashes[r.id.as_str()],
        ) {
            pairs.push((m, r, "matched an existing record", None));
            ex_left[ei] = None;
            sf_left[si] = None;
        }
    }

    /// Two unlinked records may be linked when they agree or one may be written over.
    fn can_pair(&self, m: &MailItem, r: &CrmRecord, he: &str, hs: &str) -> bool {
        he == hs
            || self
                .blocked(
                    &m.record,
                    SyncDirection::ExchangeToSalesforce,
                    m.related_in_outlook,
                )
                .is_none()
            || self
                .blocked(&r.record, SyncDirection::SalesforceToExchange, true)
                .is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Contact, EffectiveMapping};
    use serde_json::json;

    fn config() -> Config {
        serde_json::from_value(json!({
            "version": 1,
            "org": { "name": "acme", "kind": "production" },
            "connections": {
                "exchange": { "method": "service_account", "username": "svc@acme.com",
                              "password": "${env:P}" },
                "salesforce": { "instance_url": "https://acme.my.salesforce.com",
                                "auth": { "flow": "access_token", "access_token": "${env:T}" } }
            },
            "sync_configurations": [{
                "name": "A", "members": { "profiles": ["Sales User"] },
                "contacts": { "direction": "both", "conflict": "exchange_wins", "scope": "users_records" }
            }]
        }))
        .unwrap()
    }

    fn rep() -> Rep {
        Rep {
            user_id: "005A".into(),
            email: "ana@acme.com".into(),
            mailbox: Mailbox {
                address: "ana@acme.com".into(),
            },
            configuration: 0,
            time_zone: chrono_tz::UTC,
        }
    }

    fn c(title: &str) -> Record {
        Record::Contact(
            Contact::default()
                .with("Email", "x@y.com")
                .with("LastName", "X")
                .with("Title", title),
        )
    }

    fn hash(r: &Record) -> String {
        record_hash(r, &EffectiveMapping::defaults(ObjectKind::Contact))
    }

    fn mail(title: &str) -> MailItem {
        MailItem {
            item_id: "AAMk1".into(),
            change_key: "ck2".into(),
            record: c(title),
            salesforce_id: None,
            related_in_outlook: false,
        }
    }

    fn crm(title: &str) -> CrmRecord {
        CrmRecord {
            id: "003A".into(),
            owner_id: "005A".into(),
            modstamp: "2".into(),
            record: c(title),
            marker: None,
        }
    }

    fn linked(title: &str) -> Vec<(LinkId, Link)> {
        vec![(
            LinkId(1),
            Link {
                rep: "005A".into(),
                object: ObjectKind::Contact,
                exchange: Some(ExchangeSide {
                    item_id: "AAMk1".into(),
                    change_key: "ck1".into(),
                }),
                salesforce: Some(SalesforceSide {
                    id: "003A".into(),
                    modstamp: "1".into(),
                }),
                hash: hash(&c(title)),
            },
        )]
    }

    fn run(links: Vec<(LinkId, Link)>, ex: Vec<MailItem>, sf: Vec<CrmRecord>) -> Plan {
        let config = config();
        plan(&PlanInput {
            config: &config,
            now: "2026-06-15T12:00:00Z".parse().unwrap(),
            force: false,
            items: vec![RepObjectInput {
                rep: rep(),
                object: ObjectKind::Contact,
                links,
                mail: SideView {
                    full: false,
                    upserts: ex,
                    deleted: vec![],
                },
                crm: SideView {
                    full: false,
                    upserts: sf,
                    deleted: vec![],
                },
                unreadable: BTreeSet::new(),
                renamed: BTreeMap::new(),
            }],
            pending: vec![],
        })
    }

    #[test]
    fn planning_is_a_pure_function_of_its_input() {
        let a = run(linked("old"), vec![mail("new")], vec![crm("other")]);
        let b = run(linked("old"), vec![mail("new")], vec![crm("other")]);
        assert_eq!(a, b);
    }

    #[test]
    fn a_record_read_back_unchanged_plans_nothing() {
        let p = run(linked("same"), vec![mail("same")], vec![crm(" same ")]);
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn changed_on_one_side_updates_the_other_with_its_reason() {
        let p = run(linked("old"), vec![mail("new")], vec![]);
        assert_eq!(p.operations.len(), 1);
        assert!(matches!(
            &p.operations[0].action,
            Action::UpdateSalesforce { salesforce_id, .. } if salesforce_id == "003A"
        ));
        assert_eq!(p.operations[0].reason, "changed in Exchange");
    }

    #[test]
    fn identical_changes_on_both_sides_only_relink() {
        let p = run(linked("old"), vec![mail("new")], vec![crm("new")]);
        assert!(p.conflicts.is_empty());
        assert_eq!(p.operations.len(), 1);
        assert!(matches!(p.operations[0].action, Action::Refresh { .. }));
        assert_eq!(p.operations[0].action.writes_to(), None);
    }

    #[test]
    fn different_changes_on_both_sides_follow_the_policy_and_are_reported() {
        let p = run(linked("old"), vec![mail("ex")], vec![crm("sf")]);
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts[0].winner, Side::Exchange);
        assert!(matches!(
            &p.operations[0].action,
            Action::UpdateSalesforce { record, .. } if *record == c("ex")
        ));
    }

    #[test]
    fn operations_carry_the_versions_of_the_records_they_touch() {
        // Exchange changed; Salesforce not read (unchanged): its version is as last synced.
        let p = run(linked("old"), vec![mail("new")], vec![]);
        let key = p.operations[0].key();
        assert_eq!(key.action, "update_salesforce");
        assert_eq!(
            (key.exchange_id.as_deref(), key.exchange_version.as_deref()),
            (Some("AAMk1"), Some("ck2"))
        );
        assert_eq!(
            (
                key.salesforce_id.as_deref(),
                key.salesforce_version.as_deref()
            ),
            (Some("003A"), Some("1"))
        );
        // Read on both sides: the versions as read.
        let p = run(linked("old"), vec![mail("ex")], vec![crm("sf")]);
        assert_eq!(
            p.operations[0].key().salesforce_version.as_deref(),
            Some("2")
        );
        // A record edited again has another key: a saved plan does not cover it.
        let mut again = mail("newer");
        again.change_key = "ck3".into();
        let q = run(linked("old"), vec![again], vec![]);
        assert_ne!(
            q.operations[0].key(),
            run(linked("old"), vec![mail("new")], vec![]).operations[0].key()
        );
        assert!(q.operations[0].key().shares_a_record_with(&key));
        // A gone record has no version.
        let config = config();
        let gone = plan(&PlanInput {
            config: &config,
            now: "2026-06-15T12:00:00Z".parse().unwrap(),
            force: false,
            items: vec![RepObjectInput {
                rep: rep(),
                object: ObjectKind::Contact,
                links: linked("old"),
                mail: SideView {
                    full: false,
                    upserts: vec![],
                    deleted: vec!["AAMk1".into()],
                },
                crm: SideView {
                    full: false,
                    upserts: vec![],
                    deleted: vec![],
                },
                unreadable: BTreeSet::new(),
                renamed: BTreeMap::new(),
            }],
            pending: vec![],
        });
        let key = gone.operations[0].key();
        assert_eq!(key.action, "detach");
        assert_eq!(key.exchange_id.as_deref(), Some("AAMk1"));
        assert_eq!(key.exchange_version, None);
        assert_eq!(key.salesforce_version.as_deref(), Some("1"));
    }

    #[test]
    fn unlinked_records_that_match_link_instead_of_duplicating() {
        let p = run(vec![], vec![mail("same")], vec![crm("same")]);
        assert_eq!(p.operations.len(), 1);
        assert!(matches!(p.operations[0].action, Action::Link { .. }));
    }

    #[test]
    fn a_first_link_fills_empty_fields_from_both_sides_and_clears_none() {
        let ex = mail("ex");
        let mut sf = crm("sf");
        if let Record::Contact(contact) = &mut sf.record {
            contact.set("Phone", "+1 555 0100");
        }
        let p = run(vec![], vec![ex], vec![sf.clone()]);
        let merged = Record::Contact(
            c("ex")
                .as_contact()
                .unwrap()
                .clone()
                .with("Phone", "+1 555 0100"),
        );
        // Exchange wins Title; Salesforce's Phone fills Exchange's empty one. Both halves are
        // written with the merge's hash, and only the Exchange half links.
        let writes: Vec<(&str, &Record, bool, &str)> = p
            .operations
            .iter()
            .map(|o| match &o.action {
                Action::UpdateSalesforce {
                    record,
                    merge_half,
                    hash,
                    ..
                }
                | Action::UpdateExchange {
                    record,
                    merge_half,
                    hash,
                    ..
                } => (o.action.name(), record, *merge_half, hash.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        let h = hash(&merged);
        assert_eq!(
            writes,
            [
                ("update_salesforce", &merged, true, h.as_str()),
                ("update_exchange", &merged, true, h.as_str()),
            ]
        );
        assert_eq!(p.operations[0].replaced.as_ref(), Some(&sf.record));
        let mapping = EffectiveMapping::defaults(ObjectKind::Contact);
        let effects = crate::model::merge::FieldEffects::of(&sf.record, &merged, &mapping);
        assert_eq!(
            (effects.clears, effects.overwrites),
            (vec![], vec!["Title".to_string()]),
            "the plan says Title is overwritten and nothing cleared"
        );
    }

    #[test]
    fn damaged_link_salesforce_id_relinks_through_the_stamp_and_never_creates_a_copy() {
        // The link's Salesforce id lost a character; the linked item carries the real id.
        let mut links = linked("old");
        links[0].1.salesforce.as_mut().unwrap().id = "003B".into();
        let mut m = mail("old");
        m.salesforce_id = Some("003A".into());
        let config = config();
        let plan_with = |full: bool| {
            plan(&PlanInput {
                config: &config,
                now: "2026-06-15T12:00:00Z".parse().unwrap(),
                force: false,
                items: vec![RepObjectInput {
                    rep: rep(),
                    object: ObjectKind::Contact,
                    links: links.clone(),
                    mail: SideView {
                        full,
                        upserts: vec![m.clone()],
                        deleted: vec![],
                    },
                    crm: SideView {
                        full,
                        upserts: vec![crm("new")],
                        deleted: vec![],
                    },
                    unreadable: BTreeSet::new(),
                    renamed: BTreeMap::new(),
                }],
                pending: vec![],
            })
        };
        // A full read shows the damaged id gone: the stamped record takes its place, and
        // its edit is written to the item.
        let p = plan_with(true);
        assert_eq!(p.operations.len(), 1, "{p:#?}");
        assert!(
            matches!(&p.operations[0].action,
                Action::UpdateExchange { link: Some(LinkId(1)), salesforce, .. } if salesforce.id == "003A"),
            "{p:#?}"
        );
        // An incremental read cannot tell: nothing is created while the stamped item exists.
        let p = plan_with(false);
        assert!(
            !p.operations
                .iter()
                .any(|o| matches!(o.action, Action::CreateInExchange { .. })),
            "{p:#?}"
        );
        assert!(p.skipped.iter().any(|s| s.record_id == "003A"), "{p:#?}");
    }

    #[test]
    fn a_refresh_records_the_version_tether_wrote_and_read_back() {
        // Killed after writing "new" to Exchange and before recording it: the intent names
        // the hash written; the read shows the item at the ChangeKey the write gave it.
        let config = config();
        let intent = JournalEntry {
            marker: "intent".into(),
            rep: "005A".into(),
            object: ObjectKind::Contact,
            target: CreateTarget::Exchange,
            source_id: "link:1".into(),
            hash: hash(&c("new")),
            at: "2026-06-15T11:00:00Z".parse().unwrap(),
        };
        let p = plan(&PlanInput {
            config: &config,
            now: "2026-06-15T12:00:00Z".parse().unwrap(),
            force: false,
            items: vec![RepObjectInput {
                rep: rep(),
                object: ObjectKind::Contact,
                links: linked("old"),
                mail: SideView {
                    full: false,
                    upserts: vec![mail("new")],
                    deleted: vec![],
                },
                crm: SideView {
                    full: false,
                    upserts: vec![],
                    deleted: vec![],
                },
                unreadable: BTreeSet::new(),
                renamed: BTreeMap::new(),
            }],
            pending: vec![intent],
        });
        assert_eq!(p.operations.len(), 1, "{p:#?}");
        let Action::Refresh {
            exchange, hash: h, ..
        } = &p.operations[0].action
        else {
            panic!("{p:#?}");
        };
        assert_eq!(*h, hash(&c("new")));
        assert_eq!(
            exchange.change_key, "ck2",
            "the link must remember the version read, or every later write is held back"
        );
    }
}
