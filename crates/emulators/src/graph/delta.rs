//! Paging and delta rounds: `@odata.nextLink` (`$skiptoken`) pages and a final
//! `@odata.deltaLink` (`$deltatoken`) holding what the client has seen, so the next round
//! sends what changed since and `@removed` for what is gone. Tokens live in the store's
//! memory; `expire_graph_delta_tokens` forgets them, as Exchange evicting sync states does.

use super::ids::{self, IdType};
use super::routes::{Answer, error};
use crate::exchange::state::Emu;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

/// What a delta token tracks: one contacts folder, or the default calendar in a window
/// (frozen in the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaKind {
    Contacts {
        folder: String,
    },
    CalendarView {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
pub struct DeltaState {
    pub mailbox: String,
    pub kind: DeltaKind,
    /// Store id → change key the client has been sent.
    pub seen: BTreeMap<String, String>,
    /// The first call's `$select`: query options go in the first call only, the token
    /// keeps them.
    pub select: Option<Vec<String>>,
}

/// Where a round's links point and what they track.
pub struct Link {
    pub select: Option<Vec<String>>,
    pub url: String,
    pub mailbox: String,
    pub kind: DeltaKind,
    /// How the round names items (the request's `Prefer: IdType`).
    pub ids: IdType,
}

#[derive(Debug)]
pub struct Page {
    remaining: VecDeque<Value>,
    page_size: usize,
    url: String,
    /// The state the deltaLink after the last page carries (None for plain lists).
    then: Option<DeltaState>,
}

/// Live delta or paging tokens kept; older ones answer 410 like evicted sync states.
pub const MAX_TOKENS: usize = 10_000;

fn token(emu: &mut Emu, prefix: &str) -> String {
    let n = emu.next();
    format!("{prefix}{n:08x}")
}

fn emit(emu: &mut Emu, mut page: Page) -> Answer {
    let take = page.page_size.min(page.remaining.len());
    let value: Vec<Value> = page.remaining.drain(..take).collect();
    let mut body = json!({ "value": value });
    if !page.remaining.is_empty() {
        let t = token(emu, "S");
        body["@odata.nextLink"] = json!(format!("{}?$skiptoken={t}", page.url));
        emu.graph.pages.insert(t, page);
        if emu.graph.pages.len() > MAX_TOKENS {
            emu.graph.pages.pop_first();
        }
    } else if let Some(state) = page.then.take() {
        let t = token(emu, "D");
        body["@odata.deltaLink"] = json!(format!("{}?$deltatoken={t}", page.url));
        emu.graph.deltas.insert(t, state);
        if emu.graph.deltas.len() > MAX_TOKENS {
            emu.graph.deltas.pop_first();
        }
    }
    Answer {
        status: 200,
        headers: Vec::new(),
        body: Some(body),
    }
}

/// The first page of a list (or of a round when `then` is set).
pub fn first_page(
    emu: &mut Emu,
    url: &str,
    values: Vec<Value>,
    page_size: usize,
    then: Option<DeltaState>,
) -> Answer {
    emit(
        emu,
        Page {
            remaining: values.into(),
            page_size,
            url: url.to_string(),
            then,
        },
    )
}

/// The page a `$skiptoken` names; a forgotten one is a dead sync state (410).
pub fn next_page(emu: &mut Emu, now: DateTime<Utc>, tok: &str) -> Result<Answer, Answer> {
    match emu.graph.pages.remove(tok) {
        Some(page) => Ok(emit(emu, page)),
        None => {
            let n = emu.next();
            let msg = format!("The sync state generation is not found; generation={n}");
            Err(error(emu, now, 410, "SyncStateNotFound", &msg))
        }
    }
}

/// A round over `current` (store id, change key, JSON) against what the client has seen.
pub fn start_round(
    emu: &mut Emu,
    link: Link,
    seen: BTreeMap<String, String>,
    current: Vec<(String, String, Value)>,
    page_size: usize,
) -> Answer {
    let mut values = Vec::new();
    let mut now_seen = BTreeMap::new();
    for (id, ck, v) in current {
        if seen.get(&id) != Some(&ck) {
            values.push(v);
        }
        now_seen.insert(id, ck);
    }
    for id in seen.keys().filter(|id| !now_seen.contains_key(*id)) {
        let id = match emu.mailbox(&link.mailbox) {
            Some(mb) => ids::item_id(mb, id, link.ids),
            None => ids::rest_id(id),
        };
        values.push(json!({"id": id, "@removed": {"reason": "deleted"}}));
    }
    let state = DeltaState {
        mailbox: link.mailbox,
        kind: link.kind,
        seen: now_seen,
        select: link.select,
    };
    first_page(emu, &link.url, values, page_size, Some(state))
}
