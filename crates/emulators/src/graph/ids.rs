//! How the Graph face names the store's items, and `translateExchangeIds`.
//!
//! Exchange Online answers Graph with REST ids unless a request says
//! `Prefer: IdType="ImmutableId"`; then with immutable ids, which name an item for its life in
//! the mailbox, across folder moves (learn.microsoft.com/graph/outlook-immutable-id). Neither
//! is the EWS ItemId of the same item, whose id changes when it moves. Folders have no
//! immutable ids ("their regular IDs were already constant"): they keep their REST ids.
//!
//! Here the store's ids are the EWS ItemIds (standard base64 of a binary key); a REST id is
//! the same bytes in URL-safe base64; an immutable id is URL-safe base64 of another binary
//! (a tag and the key the item was created with); the binary MAPI formats (`entryId`,
//! `immutableEntryId`) are URL-safe base64 without padding plus the number of padding
//! characters removed, as the translateExchangeIds page describes.

use crate::exchange::state::Mailbox;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

/// How an answer names items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    Rest,
    Immutable,
}

/// The binary a `restImmutableEntryId` / `immutableEntryId` wraps starts with this tag.
const IMMUTABLE_TAG: [u8; 4] = [0x00, 0x09, 0x00, 0x2e];
/// The binary an `entryId` wraps starts with this tag (a MAPI entry id's flags).
const ENTRY_TAG: [u8; 4] = [0x00, 0x00, 0x00, 0x00];

/// The REST spelling of a store (EWS) id; folders are always named so.
pub fn rest_id(store_id: &str) -> String {
    match STANDARD.decode(store_id) {
        Ok(bytes) => URL_SAFE.encode(bytes),
        Err(_) => store_id.replace('+', "-").replace('/', "_"),
    }
}

fn from_rest(rest: &str) -> Option<String> {
    URL_SAFE.decode(rest).ok().map(|b| STANDARD.encode(b))
}

fn key_of(store_id: &str) -> Vec<u8> {
    STANDARD
        .decode(store_id)
        .unwrap_or_else(|_| store_id.as_bytes().to_vec())
}

fn tagged(tag: [u8; 4], store_id: &str) -> Vec<u8> {
    let mut bytes = tag.to_vec();
    bytes.extend(key_of(store_id));
    bytes
}

fn untagged(tag: [u8; 4], bytes: &[u8]) -> Option<String> {
    let key = bytes.strip_prefix(&tag)?;
    (!key.is_empty()).then(|| STANDARD.encode(key))
}

/// The binary formats' URL-safe spelling: no padding, then how many `=` were removed.
fn binary_text(bytes: &[u8]) -> String {
    let padded = URL_SAFE.encode(bytes);
    let pad = padded.len() - padded.trim_end_matches('=').len();
    format!("{}{pad}", URL_SAFE_NO_PAD.encode(bytes))
}

fn binary_bytes(text: &str) -> Option<Vec<u8>> {
    let (body, pad) = text.split_at(text.len().checked_sub(1)?);
    if !matches!(pad, "0" | "1" | "2") {
        return None;
    }
    URL_SAFE_NO_PAD.decode(body).ok()
}

/// The id the item `store_id` was created with (the immutable id's key).
fn first_id<'a>(mb: &'a Mailbox, store_id: &'a str) -> &'a str {
    mb.first_ids.get(store_id).map_or(store_id, String::as_str)
}

pub(crate) fn immutable_id(mb: &Mailbox, store_id: &str) -> String {
    URL_SAFE.encode(tagged(IMMUTABLE_TAG, first_id(mb, store_id)))
}

/// The id an answer gives the item `store_id` (which may be deleted: a delta's `@removed`).
pub(crate) fn item_id(mb: &Mailbox, store_id: &str, ty: IdType) -> String {
    match ty {
        IdType::Rest => rest_id(store_id),
        IdType::Immutable => immutable_id(mb, store_id),
    }
}

/// The store item an immutable key names now: itself, or where it has moved.
fn current_of(mb: &Mailbox, first: String) -> String {
    if mb.items.contains_key(&first) && !mb.first_ids.contains_key(&first) {
        return first;
    }
    mb.first_ids
        .iter()
        .filter(|(now, f)| **f == first && mb.items.contains_key(*now))
        .map(|(now, _)| now.clone())
        .next()
        .unwrap_or(first)
}

/// The store id a request's item id names, in either Graph format (Graph takes both
/// whatever the `Prefer` header says); it may name no item.
pub(crate) fn store_item_id(mb: &Mailbox, graph_id: &str) -> String {
    if let Some(first) = URL_SAFE
        .decode(graph_id)
        .ok()
        .and_then(|b| untagged(IMMUTABLE_TAG, &b))
    {
        return current_of(mb, first);
    }
    from_rest(graph_id).unwrap_or_else(|| graph_id.replace('-', "+").replace('_', "/"))
}

/// The store id of a folder's REST id.
pub fn store_folder_id(graph_id: &str) -> String {
    from_rest(graph_id).unwrap_or_else(|| graph_id.replace('-', "+").replace('_', "/"))
}

/// translateExchangeIds' `exchangeIdFormat` members.
pub const FORMATS: [&str; 5] = [
    "entryId",
    "ewsId",
    "immutableEntryId",
    "restId",
    "restImmutableEntryId",
];

/// One id of a translateExchangeIds call: the target spelling, or a genericError
/// (code, message). An id that does not parse as `from`, or names no item of the mailbox,
/// fails on its own; the others translate.
pub(crate) fn translate(
    mb: &Mailbox,
    id: &str,
    from: &str,
    to: &str,
) -> Result<String, (String, String)> {
    let malformed = || {
        (
            "ErrorInvalidIdMalformed".to_string(),
            format!("Id is malformed: '{id}' is not an {from}."),
        )
    };
    let store = match from {
        "ewsId" => STANDARD
            .decode(id)
            .is_ok()
            .then(|| id.to_string())
            .ok_or_else(malformed)?,
        "restId" => from_rest(id).ok_or_else(malformed)?,
        "restImmutableEntryId" => URL_SAFE
            .decode(id)
            .ok()
            .and_then(|b| untagged(IMMUTABLE_TAG, &b))
            .map(|first| current_of(mb, first))
            .ok_or_else(malformed)?,
        "immutableEntryId" => binary_bytes(id)
            .and_then(|b| untagged(IMMUTABLE_TAG, &b))
            .map(|first| current_of(mb, first))
            .ok_or_else(malformed)?,
        "entryId" => binary_bytes(id)
            .and_then(|b| untagged(ENTRY_TAG, &b))
            .ok_or_else(malformed)?,
        _ => return Err(malformed()),
    };
    if !mb.items.contains_key(&store) {
        return Err((
            "ErrorItemNotFound".to_string(),
            "The specified object was not found in the store.".to_string(),
        ));
    }
    Ok(match to {
        "ewsId" => store,
        "restId" => rest_id(&store),
        "restImmutableEntryId" => immutable_id(mb, &store),
        "immutableEntryId" => binary_text(&tagged(IMMUTABLE_TAG, first_id(mb, &store))),
        _ => binary_text(&tagged(ENTRY_TAG, &store)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn mailbox(items: &[&str]) -> Mailbox {
        use crate::exchange::model::Item;
        use crate::exchange::state::StoredItem;
        let mut mb = Mailbox {
            smtp: "ann@corp.com".into(),
            department: None,
            folders: Vec::new(),
            items: BTreeMap::new(),
            first_ids: BTreeMap::new(),
        };
        for id in items {
            let stored = StoredItem {
                id: id.to_string(),
                change_key: "ck".into(),
                folder: "f".into(),
                item: Item::Other(None),
                created_seq: 1,
                seq: 1,
                exceptions: BTreeMap::new(),
            };
            mb.items.insert(id.to_string(), stored);
        }
        mb
    }

    #[test]
    fn rest_and_immutable_ids_differ_from_the_ews_id_and_name_the_same_item() {
        let ews = "AAMk+/abcA==";
        let mb = mailbox(&[ews]);
        let rest = item_id(&mb, ews, IdType::Rest);
        let imm = item_id(&mb, ews, IdType::Immutable);
        assert_eq!(rest, "AAMk-_abcA==");
        assert!(imm != ews && imm != rest, "{imm}");
        assert_eq!(store_item_id(&mb, &rest), ews);
        assert_eq!(store_item_id(&mb, &imm), ews);
    }

    #[test]
    fn an_immutable_id_survives_a_move_and_the_ews_id_does_not() {
        let mut mb = mailbox(&["AAMkbmV3"]);
        let before = immutable_id(&mb, "AAMkb2xk");
        mb.first_ids.insert("AAMkbmV3".into(), "AAMkb2xk".into());
        assert_eq!(immutable_id(&mb, "AAMkbmV3"), before);
        assert_eq!(store_item_id(&mb, &before), "AAMkbmV3");
    }

    #[test]
    fn translate_round_trips_every_format_and_fails_per_id() {
        let ews = &STANDARD.encode("AAMkitm1-00000007");
        let mb = mailbox(&[ews]);
        for to in FORMATS {
            let out = translate(&mb, ews, "ewsId", to).unwrap();
            assert_eq!(translate(&mb, &out, to, "ewsId").unwrap(), *ews, "{to}");
        }
        let entry = translate(&mb, ews, "ewsId", "entryId").unwrap();
        assert!(
            entry.ends_with(['0', '1', '2']) && !entry.contains('='),
            "{entry}"
        );
        assert_eq!(
            translate(&mb, "not base64!", "ewsId", "restId")
                .unwrap_err()
                .0,
            "ErrorInvalidIdMalformed"
        );
        assert_eq!(
            translate(&mb, &STANDARD.encode("AAMkgone"), "ewsId", "restId")
                .unwrap_err()
                .0,
            "ErrorItemNotFound"
        );
    }
}
