//! Before a delete or an overwrite is sent, the record it writes is read again by id — its
//! version only, one call per batch of the connector's size (Salesforce: `Id,
//! SystemModstamp`; Exchange: ids and change keys) — so that an edit made between the cycle's
//! read and its write is not deleted or overwritten. An operation whose record changed (or, for an overwrite, went)
//! since the read is left for the next cycle, which reads the edit and decides again (an edit
//! beats a delete). Checked: deletes on either side, and updates of a linked pair (they
//! overwrite the other side's record). Creates need no check: there is nothing on the
//! target side to lose.
//!
//! A record whose planned version is unknown (a Salesforce record tether wrote and has not
//! read back since: sObject Collections answer no SystemModstamp) cannot be checked and goes
//! ahead, as it did before this check existed.

use crate::engine::connector::{CallError, CrmConnector, Folder, MailConnector, Mailbox};
use crate::engine::plan::{Action, Operation, Plan, RecordVersion, Side};
use crate::model::ObjectKind;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a checked operation does to the record it is checked on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Delete,
    Overwrite,
}

/// The side and record an operation deletes or overwrites, with the version it was planned
/// against; `None` for operations that need no check, or whose record's version is unknown.
fn target(op: &Operation) -> Option<(Side, &RecordVersion, Write)> {
    let (side, write) = match &op.action {
        Action::DeleteInSalesforce { .. } => (Side::Salesforce, Write::Delete),
        Action::UpdateSalesforce { link: Some(_), .. } => (Side::Salesforce, Write::Overwrite),
        Action::DeleteInExchange { .. } => (Side::Exchange, Write::Delete),
        Action::UpdateExchange { link: Some(_), .. } => (Side::Exchange, Write::Overwrite),
        _ => return None,
    };
    let planned = match side {
        Side::Salesforce => op.salesforce.as_ref(),
        Side::Exchange => op.exchange.as_ref(),
    }?;
    let known = planned.version.as_deref().is_some_and(|v| !v.is_empty());
    known.then_some((side, planned, write))
}

/// Whether the operation may go ahead, given the record's version now (`None`: gone).
fn still_current(planned: &RecordVersion, now: Option<&String>, write: Write) -> bool {
    match now {
        Some(v) => planned.version.as_ref() == Some(v),
        // Already gone: nothing is lost by deleting it; an overwrite waits for the next read.
        None => write == Write::Delete,
    }
}

/// The indexes in `plan.operations` of the deletes and overwrites whose record changed since
/// the plan read it. A check that cannot be made (the call failed) leaves its operations for
/// the next cycle too: nothing is deleted or overwritten unseen. No operation to check, no
/// call.
pub async fn changed_since_read<M: MailConnector, C: CrmConnector>(
    mail: &M,
    crm: &C,
    plan: &Plan,
) -> BTreeSet<usize> {
    let mut salesforce: BTreeMap<ObjectKind, Vec<usize>> = BTreeMap::new();
    let mut exchange: BTreeMap<(&Mailbox, ObjectKind), Vec<usize>> = BTreeMap::new();
    for (i, op) in plan.operations.iter().enumerate() {
        match target(op) {
            Some((Side::Salesforce, ..)) => salesforce.entry(op.object).or_default().push(i),
            Some((Side::Exchange, ..)) => exchange
                .entry((&op.mailbox, op.object))
                .or_default()
                .push(i),
            None => {}
        }
    }
    let mut changed = BTreeSet::new();
    for (object, ops) in salesforce {
        for chunk in ops.chunks(crm.batch_size()) {
            let ids = ids(plan, chunk);
            let now = crm.modstamps(object, &ids).await.map(|refs| {
                refs.into_iter()
                    .map(|r| (r.id, r.modstamp))
                    .collect::<HashMap<_, _>>()
            });
            changed.extend(stale(plan, chunk, now, "Salesforce"));
        }
    }
    for ((mailbox, object), ops) in exchange {
        for chunk in ops.chunks(mail.batch_size()) {
            let ids = ids(plan, chunk);
            let now = mail
                .change_keys(mailbox, Folder::for_object(object), &ids)
                .await
                .map(|refs| {
                    refs.into_iter()
                        .map(|r| (r.item_id, r.change_key))
                        .collect::<HashMap<_, _>>()
                });
            changed.extend(stale(plan, chunk, now, "Exchange"));
        }
    }
    if !changed.is_empty() {
        tracing::info!(
            operations = changed.len(),
            "records changed after the read: their deletes and overwrites are left for the next cycle"
        );
    }
    changed
}

fn ids(plan: &Plan, chunk: &[usize]) -> Vec<String> {
    chunk
        .iter()
        .filter_map(|&i| target(&plan.operations[i]).map(|(_, v, _)| v.id.clone()))
        .collect()
}

fn stale(
    plan: &Plan,
    chunk: &[usize],
    now: Result<HashMap<String, String>, CallError>,
    side: &str,
) -> Vec<usize> {
    let now = match now {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(code = %e.code, "{side} versions could not be read before writing; the writes wait for the next cycle: {}", e.message);
            return chunk.to_vec();
        }
    };
    chunk
        .iter()
        .copied()
        .filter(|&i| {
            target(&plan.operations[i]).is_some_and(|(_, planned, write)| {
                !still_current(planned, now.get(&planned.id), write)
            })
        })
        .collect()
}
