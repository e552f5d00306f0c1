//! The EWS operations of the emulator, and Autodiscover.

use super::state::{
    Emu, EmuResult, Fault, Folder, StoredItem, err, occurrence, occurrence_id, parse_occurrence_id,
};
use super::{Shared, authenticate, unauthorized};
use crate::exchange::codec::{self, Shape, parse_datetime};
use crate::exchange::emit::{Out, escape};
use crate::exchange::model::{CalendarEvent, Contact, Item, ItemId};
use crate::exchange::soap::{self, write_message_head};
use crate::exchange::xml::{self, Element, Limits, NS_AD_REQ, NS_M, NS_T};
use crate::exchange::{recur, tz};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeSet;

/// Times without an offset are local to the request's TimeZoneContext (UTC without one),
/// as in Exchange 2010+; they are rewritten as UTC before the operation runs.
fn normalize_times(el: &mut Element, zone: chrono_tz::Tz) {
    fn fix(s: &str, zone: chrono_tz::Tz) -> Option<String> {
        let t = s.trim();
        let has_offset = t.ends_with('Z') || t.get(19..).is_some_and(|r| r.contains(['+', '-']));
        if has_offset {
            return None;
        }
        let naive = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        let utc = zone
            .from_local_datetime(&naive)
            .earliest()?
            .with_timezone(&Utc);
        Some(codec::fmt_datetime(&utc))
    }
    if el.ns == NS_T
        && matches!(el.name.as_str(), "Start" | "End" | "OriginalStart")
        && let Some(f) = fix(&el.text, zone)
    {
        el.text = f;
    }
    if el.ns == NS_M && el.name == "CalendarView" {
        for (k, v) in el.attrs.iter_mut() {
            if (k == "StartDate" || k == "EndDate")
                && let Some(f) = fix(v, zone)
            {
                *v = f;
            }
        }
    }
    for c in &mut el.children {
        normalize_times(c, zone);
    }
}

pub(crate) fn dispatch(
    shared: &Shared,
    mailbox: &str,
    tz: Option<&str>,
    op: &Element,
) -> EmuResult<String> {
    if op.ns != NS_M {
        return err(
            "ErrorInvalidRequest",
            "The request is not an EWS operation.",
        );
    }
    let zone = match tz {
        None => chrono_tz::UTC,
        Some(id) => tz::windows_tz(id).ok_or((
            "ErrorTimeZone".to_string(),
            format!("The time zone {id} is not known to this server."),
        ))?,
    };
    let mut op = op.clone();
    normalize_times(&mut op, zone);
    let op = &op;
    let now = shared.clock.now();
    let mut emu = shared.lock();
    match op.name.as_str() {
        "GetFolder" => get_folder(&mut emu, mailbox, op),
        "FindFolder" => find_folder(&mut emu, mailbox, op),
        "CreateFolder" => create_folder(&mut emu, mailbox, op),
        "UpdateFolder" => update_folder(&mut emu, mailbox, op),
        "SyncFolderItems" => sync_folder_items(&mut emu, mailbox, op),
        "FindItem" => find_item(&mut emu, mailbox, op),
        "GetItem" => get_item(&mut emu, mailbox, op),
        "CreateItem" => create_item(&mut emu, mailbox, op, now),
        "UpdateItem" => update_item(&mut emu, mailbox, op, now),
        "DeleteItem" => delete_item(&mut emu, mailbox, op),
        "DeleteFolder" => delete_folder(&mut emu, mailbox, op),
        other => err(
            "ErrorInvalidRequest",
            &format!("The operation {other} is not supported by this server."),
        ),
    }
}

fn mbx<'a>(emu: &'a Emu, smtp: &str) -> EmuResult<&'a super::state::Mailbox> {
    emu.mailbox(smtp).ok_or((
        "ErrorNonExistentMailbox".to_string(),
        "The mailbox does not exist.".to_string(),
    ))
}

fn folder_ref(mb: &super::state::Mailbox, el: &Element) -> Option<String> {
    if let Some(d) = el.child(NS_T, "DistinguishedFolderId") {
        return mb.distinguished(d.attr("Id")?).map(|f| f.id.clone());
    }
    let id = el.child(NS_T, "FolderId")?.attr("Id")?;
    mb.folder(id).map(|f| f.id.clone())
}

fn folder_element(f: &Folder) -> &'static str {
    match f.class.as_str() {
        "IPF.Contact" => "t:ContactsFolder",
        "IPF.Appointment" => "t:CalendarFolder",
        _ => "t:Folder",
    }
}

/// The PublicStrings properties a FolderShape's AdditionalProperties names (EWS returns
/// only those).
fn requested_folder_extended(op: &Element) -> BTreeSet<String> {
    op.path(&[(NS_M, "FolderShape"), (NS_T, "AdditionalProperties")])
        .map(|ap| {
            ap.children_named(NS_T, "ExtendedFieldURI")
                .filter(|u| u.attr("DistinguishedPropertySetId") == Some("PublicStrings"))
                .filter_map(|u| u.attr("PropertyName").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A folder as GetFolder and FindFolder answer it, with those of the `extended` properties
/// it holds (BaseFolderType puts ExtendedProperty after ChildFolderCount).
fn write_folder(w: &mut Out, mb: &super::state::Mailbox, f: &Folder, extended: &BTreeSet<String>) {
    w.start(folder_element(f));
    w.start("t:FolderId")
        .attrs(&[("Id", &f.id), ("ChangeKey", &f.change_key)])
        .end();
    if let Some(p) = &f.parent {
        let pck = mb.folder(p).map(|p| p.change_key.as_str()).unwrap_or("");
        w.start("t:ParentFolderId")
            .attrs(&[("Id", p), ("ChangeKey", pck)])
            .end();
    }
    w.value("t:FolderClass", &f.class);
    w.value("t:DisplayName", &f.name);
    let total = mb.items.values().filter(|i| i.folder == f.id).count();
    w.value("t:TotalCount", &total.to_string());
    let children = mb
        .folders
        .iter()
        .filter(|c| c.parent.as_deref() == Some(&f.id))
        .count();
    w.value("t:ChildFolderCount", &children.to_string());
    for (name, value) in f.extended.iter().filter(|(n, _)| extended.contains(*n)) {
        w.start("t:ExtendedProperty");
        w.start("t:ExtendedFieldURI")
            .attrs(&[
                ("DistinguishedPropertySetId", "PublicStrings"),
                ("PropertyName", name),
                ("PropertyType", "String"),
            ])
            .end();
        w.value("t:Value", value);
        w.end();
    }
    w.end();
}

fn error_message(w: &mut Out, element: &str, code: &str, text: &str) {
    write_message_head(w, element, code, text);
    w.end();
}

/// Error messages of item operations still carry an empty `m:Items` (the schema requires it,
/// and Exchange sends `<m:Items />`).
fn item_error_message(w: &mut Out, element: &str, code: &str, text: &str) {
    write_message_head(w, element, code, text);
    w.start("m:Items").end();
    w.end();
}

fn get_folder(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let mb = mbx(emu, mailbox)?;
    let extended = requested_folder_extended(op);
    let ids = op.child(NS_M, "FolderIds").ok_or((
        "ErrorSchemaValidation".to_string(),
        "FolderIds missing".to_string(),
    ))?;
    let mut w = soap::answer("m:GetFolderResponse");
    w.start("m:ResponseMessages");
    for id in &ids.children {
        let found = match id.name.as_str() {
            "DistinguishedFolderId" => id.attr("Id").and_then(|d| mb.distinguished(d)),
            _ => id.attr("Id").and_then(|i| mb.folder(i)),
        };
        match found {
            Some(f) => {
                write_message_head(&mut w, "m:GetFolderResponseMessage", "NoError", "");
                w.start("m:Folders");
                write_folder(&mut w, mb, f, &extended);
                w.end().end();
            }
            // Exchange answers a folder id that names no folder with the generic code.
            None => error_message(
                &mut w,
                "m:GetFolderResponseMessage",
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            ),
        }
    }
    Ok(w.finish())
}

fn find_folder(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let mb = mbx(emu, mailbox)?;
    let extended = requested_folder_extended(op);
    let deep = op.attr("Traversal") == Some("Deep");
    // Supported restriction: IsEqualTo folder:DisplayName (what clients use to find a folder).
    let name_eq = op
        .path(&[(NS_M, "Restriction"), (NS_T, "IsEqualTo")])
        .filter(|eq| {
            eq.child(NS_T, "FieldURI").and_then(|f| f.attr("FieldURI"))
                == Some("folder:DisplayName")
        })
        .and_then(|eq| eq.path(&[(NS_T, "FieldURIOrConstant"), (NS_T, "Constant")]))
        .and_then(|c| c.attr("Value"))
        .map(str::to_string);
    if op.child(NS_M, "Restriction").is_some() && name_eq.is_none() {
        return err(
            "ErrorUnsupportedQueryFilter",
            "This server supports FindFolder restrictions of IsEqualTo on folder:DisplayName only.",
        );
    }
    let parents = op.child(NS_M, "ParentFolderIds").ok_or((
        "ErrorSchemaValidation".to_string(),
        "ParentFolderIds missing".to_string(),
    ))?;
    let mut w = soap::answer("m:FindFolderResponse");
    w.start("m:ResponseMessages");
    for p in &parents.children {
        let wrapper = Element {
            children: vec![p.clone()],
            ..Element::default()
        };
        let Some(pid) = folder_ref(mb, &wrapper) else {
            error_message(
                &mut w,
                "m:FindFolderResponseMessage",
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            );
            continue;
        };
        let mut matches: Vec<&Folder> = Vec::new();
        let mut frontier = vec![pid];
        while let Some(parent) = frontier.pop() {
            for f in mb
                .folders
                .iter()
                .filter(|f| f.parent.as_deref() == Some(&parent))
            {
                if name_eq
                    .as_deref()
                    .is_none_or(|n| f.name.eq_ignore_ascii_case(n))
                {
                    matches.push(f);
                }
                if deep {
                    frontier.push(f.id.clone());
                }
            }
        }
        write_message_head(&mut w, "m:FindFolderResponseMessage", "NoError", "");
        w.start("m:RootFolder").attrs(&[
            ("TotalItemsInView", &matches.len().to_string()),
            ("IncludesLastItemInRange", "true"),
        ]);
        w.start("t:Folders");
        for f in matches {
            write_folder(&mut w, mb, f, &extended);
        }
        w.end().end().end();
    }
    Ok(w.finish())
}

fn create_folder(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let parent = {
        let mb = mbx(emu, mailbox)?;
        op.child(NS_M, "ParentFolderId")
            .and_then(|p| folder_ref(mb, p))
    };
    let folders = op.child(NS_M, "Folders").ok_or((
        "ErrorSchemaValidation".to_string(),
        "Folders missing".to_string(),
    ))?;
    let mut w = soap::answer("m:CreateFolderResponse");
    w.start("m:ResponseMessages");
    for f in &folders.children {
        let name = f.child_text(NS_T, "DisplayName").unwrap_or("").to_string();
        let class = f
            .child_text(NS_T, "FolderClass")
            .map(str::to_string)
            .unwrap_or_else(|| match f.name.as_str() {
                "ContactsFolder" => "IPF.Contact".into(),
                "CalendarFolder" => "IPF.Appointment".into(),
                _ => "IPF.Note".into(),
            });
        let extended = codec::read_folder_extended(f)?;
        let result = match &parent {
            Some(p) => emu.create_folder(mailbox, p, &name, &class),
            None => err(
                "ErrorParentFolderNotFound",
                "The parent folder could not be found in the store.",
            ),
        };
        match result {
            Ok(id) => {
                let mb = emu.mailbox_mut(mailbox)?;
                let ck = match mb.folders.iter_mut().find(|f| f.id == id) {
                    Some(f) => {
                        f.extended = extended;
                        f.change_key.clone()
                    }
                    None => String::new(),
                };
                let el = match class.as_str() {
                    "IPF.Contact" => "t:ContactsFolder",
                    "IPF.Appointment" => "t:CalendarFolder",
                    _ => "t:Folder",
                };
                write_message_head(&mut w, "m:CreateFolderResponseMessage", "NoError", "");
                w.start("m:Folders").start(el);
                w.start("t:FolderId")
                    .attrs(&[("Id", &id), ("ChangeKey", &ck)])
                    .end();
                w.end().end().end();
            }
            Err((code, text)) => {
                error_message(&mut w, "m:CreateFolderResponseMessage", &code, &text);
            }
        }
    }
    Ok(w.finish())
}

/// UpdateFolder: each FolderChange names a folder and its Updates. The server keeps the
/// display name and PublicStrings string properties of folders: SetFolderField of
/// folder:DisplayName or of an ExtendedFieldURI (the value in the folder element that
/// follows the path), DeleteFolderField of an ExtendedFieldURI. Another path is refused
/// rather than dropped. Each folder changed gets a new ChangeKey.
fn update_folder(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let changes = op.child(NS_M, "FolderChanges").ok_or((
        "ErrorSchemaValidation".to_string(),
        "FolderChanges missing".to_string(),
    ))?;
    let mut w = soap::answer("m:UpdateFolderResponse");
    w.start("m:ResponseMessages");
    for change in changes.children_named(NS_T, "FolderChange") {
        let id = folder_ref(mbx(emu, mailbox)?, change);
        let Some(id) = id else {
            error_message(
                &mut w,
                "m:UpdateFolderResponseMessage",
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            );
            continue;
        };
        let updates = change.child(NS_T, "Updates").ok_or((
            "ErrorSchemaValidation".to_string(),
            "FolderChange needs its Updates element.".to_string(),
        ))?;
        let ck = emu.new_change_key();
        let folder = emu
            .mailbox_mut(mailbox)?
            .folders
            .iter_mut()
            .find(|f| f.id == id)
            .ok_or((
                "ErrorFolderNotFound".to_string(),
                "folder vanished".to_string(),
            ))?;
        let mut edited = folder.clone();
        let mut refused = None;
        for u in &updates.children {
            match folder_update(&mut edited, u) {
                Ok(()) => {}
                Err(e) if e.0 == "ErrorSchemaValidation" => return Err(e),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if let Some((code, text)) = refused {
            error_message(&mut w, "m:UpdateFolderResponseMessage", &code, &text);
            continue;
        }
        edited.change_key = ck;
        *folder = edited;
        let element = folder_element(folder);
        write_message_head(&mut w, "m:UpdateFolderResponseMessage", "NoError", "");
        w.start("m:Folders").start(element);
        w.start("t:FolderId")
            .attrs(&[("Id", &folder.id), ("ChangeKey", &folder.change_key)])
            .end();
        w.end().end().end();
    }
    Ok(w.finish())
}

/// One SetFolderField or DeleteFolderField of UpdateFolder, applied to `folder`.
fn folder_update(folder: &mut Folder, update: &Element) -> EmuResult<()> {
    let unsupported = |what: &str| {
        (
            "ErrorInvalidPropertySet".to_string(),
            format!("This server does not update the folder property {what}."),
        )
    };
    let set = match update.name.as_str() {
        "SetFolderField" => true,
        "DeleteFolderField" => false,
        other => return Err(unsupported(other)),
    };
    if let Some(uri) = update.child(NS_T, "ExtendedFieldURI") {
        let name = match (
            uri.attr("DistinguishedPropertySetId"),
            uri.attr("PropertyName"),
        ) {
            (Some("PublicStrings"), Some(n)) => n.to_string(),
            _ => {
                return Err(unsupported(
                    "ExtendedProperty (other than a PublicStrings name)",
                ));
            }
        };
        if !set {
            folder.extended.remove(&name);
            return Ok(());
        }
        let value = update
            .children
            .iter()
            .find(|c| c.ns == NS_T && c.name.ends_with("Folder"))
            .map(codec::read_folder_extended)
            .transpose()?
            .and_then(|mut props| props.remove(&name))
            .ok_or((
                "ErrorSchemaValidation".to_string(),
                format!("SetFolderField of {name} holds no folder with that ExtendedProperty."),
            ))?;
        folder.extended.insert(name, value);
        return Ok(());
    }
    match update
        .child(NS_T, "FieldURI")
        .and_then(|f| f.attr("FieldURI"))
    {
        Some("folder:DisplayName") if set => {
            let name = update
                .children
                .iter()
                .find(|c| c.ns == NS_T && c.name.ends_with("Folder"))
                .and_then(|f| f.child_text(NS_T, "DisplayName"))
                .ok_or((
                    "ErrorSchemaValidation".to_string(),
                    "SetFolderField of folder:DisplayName holds no DisplayName.".to_string(),
                ))?;
            folder.name = name.to_string();
            Ok(())
        }
        other => Err(unsupported(other.unwrap_or("(no path)"))),
    }
}

fn encode_state(folder: &str, seq: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("tether-emu|{folder}|{seq}"))
}

fn decode_state(s: &str, folder: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.splitn(3, '|');
    if parts.next()? != "tether-emu" || parts.next()? != folder {
        return None;
    }
    parts.next()?.parse().ok()
}

fn item_element_name(item: &Item) -> &'static str {
    match item {
        Item::Contact(_) => "t:Contact",
        Item::Event(_) => "t:CalendarItem",
        Item::Other(_) => "t:Item",
    }
}

/// Extended properties the request's shape asked for (EWS returns only those).
fn requested_extended(op: &Element) -> BTreeSet<String> {
    op.path(&[(NS_M, "ItemShape"), (NS_T, "AdditionalProperties")])
        .map(|ap| {
            ap.children_named(NS_T, "ExtendedFieldURI")
                .filter_map(|u| u.attr("PropertyName").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The properties the request's ItemShape names: None for BaseShape Default and
/// AllProperties (every modeled property), the AdditionalProperties for IdOnly (the item id
/// always comes back; IdOnly alone returns nothing else).
fn requested_fields(op: &Element) -> Option<BTreeSet<String>> {
    let shape = op.child(NS_M, "ItemShape")?;
    if shape.child_text(NS_T, "BaseShape").map(str::trim) != Some("IdOnly") {
        return None;
    }
    let mut fields = BTreeSet::new();
    for p in shape
        .child(NS_T, "AdditionalProperties")
        .map(|a| a.children.as_slice())
        .unwrap_or_default()
    {
        let uri = p.attr("FieldURI");
        match (p.name.as_str(), uri, p.attr("FieldIndex")) {
            ("FieldURI", Some(uri), _) => {
                fields.insert(uri.to_string());
            }
            ("IndexedFieldURI", Some(uri), Some(index)) => {
                fields.insert(format!("{uri}/{index}"));
            }
            _ => {}
        }
    }
    Some(fields)
}

/// Writes an item as a response would, with the requested properties and extended
/// properties and, for FindItem/SyncFolderItems, leaving out what those operations cannot
/// return (Body, attendees, recurrence).
fn write_item(
    w: &mut Out,
    item: &Item,
    fields: Option<&BTreeSet<String>>,
    ext: &BTreeSet<String>,
    full: bool,
) {
    let shape = fields.map_or(Shape::All, Shape::Only);
    match item {
        Item::Contact(c) => {
            let mut c = (**c).clone();
            c.extended.retain(|k, _| ext.contains(k));
            if !full {
                c.notes = None;
            }
            codec::write_contact(w, &c, shape);
        }
        Item::Event(e) => {
            let mut e = (**e).clone();
            e.extended.retain(|k, _| ext.contains(k));
            if !full {
                e.body = None;
                e.required_attendees.clear();
                e.optional_attendees.clear();
                e.recurrence = None;
                e.modified_occurrences.clear();
                e.deleted_occurrences.clear();
            }
            codec::write_event(w, &e, shape);
        }
        Item::Other(id) => {
            w.start("t:Item");
            if let Some(id) = id {
                codec::write_item_id(w, "ItemId", id);
            }
            w.end();
        }
    }
}

fn sync_folder_items(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let has_state = op
        .child_text(NS_M, "SyncState")
        .is_some_and(|s| !s.trim().is_empty());
    let invalid_state_fault =
        has_state && matches!(emu.faults.front(), Some(Fault::InvalidSyncState));
    if invalid_state_fault {
        emu.faults.pop_front();
    }
    let mb = mbx(emu, mailbox)?;
    let folder = op
        .child(NS_M, "SyncFolderId")
        .and_then(|f| folder_ref(mb, f));
    let max: usize = op
        .child_text(NS_M, "MaxChangesReturned")
        .and_then(|m| m.trim().parse().ok())
        .filter(|m| (1..=512).contains(m))
        .ok_or((
            "ErrorSchemaValidation".to_string(),
            "MaxChangesReturned must be between 1 and 512.".to_string(),
        ))?;
    let fields = requested_fields(op);
    let ext = requested_extended(op);
    let mut w = soap::answer("m:SyncFolderItemsResponse");
    w.start("m:ResponseMessages");
    let Some(folder) = folder else {
        error_message(
            &mut w,
            "m:SyncFolderItemsResponseMessage",
            "ErrorSyncFolderNotFound",
            "The synchronization folder could not be found.",
        );
        return Ok(w.finish());
    };
    let state = op
        .child_text(NS_M, "SyncState")
        .filter(|s| !s.trim().is_empty());
    let since = match state {
        None => 0,
        Some(s) => {
            let decoded = decode_state(s, &folder);
            if invalid_state_fault || decoded.is_none() {
                error_message(
                    &mut w,
                    "m:SyncFolderItemsResponseMessage",
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                );
                return Ok(w.finish());
            }
            decoded.unwrap_or(0)
        }
    };
    enum Change<'a> {
        Upsert(&'a StoredItem),
        Delete(&'a str),
    }
    let mut changes: Vec<(u64, Change)> = mb
        .items
        .values()
        .filter(|i| i.folder == folder && i.seq > since)
        .map(|i| (i.seq, Change::Upsert(i)))
        .collect();
    // Without a SyncState the answer lists what the folder holds now, all as Creates.
    if let Some(f) = mb.folder(&folder).filter(|_| since > 0) {
        changes.extend(
            f.tombstones
                .iter()
                .filter(|(s, _)| *s > since)
                .map(|(s, id)| (*s, Change::Delete(id.as_str()))),
        );
    }
    changes.sort_by_key(|(s, _)| *s);
    let last = changes.len() <= max;
    changes.truncate(max);
    let new_seq = if last {
        emu.seq.max(since)
    } else {
        changes.last().map(|(s, _)| *s).unwrap_or(since)
    };
    write_message_head(&mut w, "m:SyncFolderItemsResponseMessage", "NoError", "");
    w.value("m:SyncState", &encode_state(&folder, new_seq));
    w.value(
        "m:IncludesLastItemInRange",
        if last { "true" } else { "false" },
    );
    w.start("m:Changes");
    for (_, c) in &changes {
        match c {
            Change::Upsert(i) => {
                let tag = if i.created_seq > since {
                    "t:Create"
                } else {
                    "t:Update"
                };
                w.start(tag);
                let item = i.current();
                write_item(&mut w, &item, fields.as_ref(), &ext, false);
                w.end();
            }
            Change::Delete(id) => {
                w.start("t:Delete");
                w.start("t:ItemId").attrs(&[("Id", id)]).end();
                w.end();
            }
        }
    }
    w.end().end();
    Ok(w.finish())
}

/// Occurrences and singles of the calendar folder that overlap [start, end).
pub(crate) fn calendar_view(
    mb: &super::state::Mailbox,
    folder: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<CalendarEvent> {
    let mut out = Vec::new();
    for stored in mb.items.values().filter(|i| i.folder == folder) {
        let Item::Event(e) = stored.current() else {
            continue;
        };
        match &e.recurrence {
            None => {
                if e.start < end && e.end > start {
                    out.push(*e);
                }
            }
            Some(rec) => {
                let zone = e
                    .start_time_zone
                    .as_deref()
                    .and_then(tz::windows_tz)
                    .unwrap_or(chrono_tz::UTC);
                let local_start = e.start.with_timezone(&zone);
                let time = local_start.time();
                let local_end = end.with_timezone(&zone).date_naive();
                let until = local_end.succ_opt().unwrap_or(local_end);
                for date in recur::occurrence_dates(rec, until, 20_000) {
                    let Some(orig) = zone
                        .from_local_datetime(&date.and_time(time))
                        .earliest()
                        .map(|t| t.with_timezone(&Utc))
                    else {
                        continue;
                    };
                    if let Some(o) = occurrence(stored, &e, orig)
                        && o.start < end
                        && o.end > start
                    {
                        out.push(o);
                    }
                }
            }
        }
    }
    out.sort_by_key(|e| e.start);
    out
}

fn find_item(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let mb = mbx(emu, mailbox)?;
    let parent = op
        .child(NS_M, "ParentFolderIds")
        .and_then(|p| folder_ref(mb, p));
    let ext = requested_extended(op);
    let fields = requested_fields(op);
    let mut w = soap::answer("m:FindItemResponse");
    w.start("m:ResponseMessages");
    let Some(folder) = parent else {
        error_message(
            &mut w,
            "m:FindItemResponseMessage",
            "ErrorFolderNotFound",
            "The specified folder could not be found in the store.",
        );
        return Ok(w.finish());
    };
    let items: Page = if let Some(cv) = op.child(NS_M, "CalendarView") {
        let (Some(start), Some(end)) = (
            cv.attr("StartDate").and_then(parse_datetime),
            cv.attr("EndDate").and_then(parse_datetime),
        ) else {
            return err(
                "ErrorSchemaValidation",
                "CalendarView needs StartDate and EndDate.",
            );
        };
        let is_calendar = mb
            .folder(&folder)
            .is_some_and(|f| f.class.starts_with("IPF.Appointment"));
        if !is_calendar {
            error_message(
                &mut w,
                "m:FindItemResponseMessage",
                "ErrorCalendarFolderIsInvalidForCalendarView",
                "The folder is not a calendar folder.",
            );
            return Ok(w.finish());
        }
        if end < start {
            error_message(
                &mut w,
                "m:FindItemResponseMessage",
                "ErrorCalendarEndDateIsEarlierThanStartDate",
                "EndDate is earlier than StartDate",
            );
            return Ok(w.finish());
        }
        // Exchange refuses CalendarView windows over two years (plus a day of slack).
        if end - start > Duration::days(2 * 365 + 1) {
            error_message(
                &mut w,
                "m:FindItemResponseMessage",
                "ErrorCalendarViewRangeTooBig",
                "The specified view range exceeds the maximum range of two years.",
            );
            return Ok(w.finish());
        }
        let mut v: Vec<Item> = calendar_view(mb, &folder, start, end)
            .into_iter()
            .map(|e| Item::Event(Box::new(e)))
            .collect();
        let total = v.len();
        let max = cv
            .attr("MaxEntriesReturned")
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        v.truncate(max);
        Page {
            offset: None,
            last: v.len() == total,
            total,
            items: v,
        }
    } else {
        let mut found = Vec::new();
        let restriction = op.child(NS_M, "Restriction").and_then(Element::first_child);
        for item in mb
            .items
            .values()
            .filter(|i| i.folder == folder)
            .map(|i| i.current())
        {
            let keep = match restriction {
                Some(r) => restriction_matches(r, &item)?,
                None => true,
            };
            if keep {
                found.push(item);
            }
        }
        if let Some(order) = op.child(NS_M, "SortOrder") {
            sort_items(&mut found, order)?;
        }
        page(found, op.child(NS_M, "IndexedPageItemView"))?
    };
    let Page {
        items,
        total,
        offset,
        last,
    } = items;
    write_message_head(&mut w, "m:FindItemResponseMessage", "NoError", "");
    let total = total.to_string();
    let offset = offset.map(|o| o.to_string());
    let mut attrs = vec![
        ("TotalItemsInView", total.as_str()),
        (
            "IncludesLastItemInRange",
            if last { "true" } else { "false" },
        ),
    ];
    if let Some(o) = &offset {
        attrs.insert(0, ("IndexedPagingOffset", o.as_str()));
    }
    w.start("m:RootFolder").attrs(&attrs);
    w.start("t:Items");
    for it in &items {
        write_item(&mut w, it, fields.as_ref(), &ext, false);
    }
    w.end().end().end();
    Ok(w.finish())
}

/// One FindItem page: the items, how many the view holds, the offset of the next page
/// (IndexedPageItemView) and whether this page reaches the end.
struct Page {
    items: Vec<Item>,
    total: usize,
    offset: Option<usize>,
    last: bool,
}

/// EWSFindCountLimit: at most 1000 items per FindItem answer.
const FIND_COUNT_LIMIT: usize = 1000;

/// IndexedPageItemView: Offset items from the BasePoint (Beginning or End), at most
/// MaxEntriesReturned of them; IncludesLastItemInRange says whether the page reaches the end.
fn page(items: Vec<Item>, view: Option<&Element>) -> EmuResult<Page> {
    let total = items.len();
    let number = |name: &str| -> EmuResult<Option<usize>> {
        match view.and_then(|v| v.attr(name)) {
            None => Ok(None),
            Some(n) => n.trim().parse().map(Some).map_err(|_| {
                (
                    "ErrorSchemaValidation".to_string(),
                    format!("The {name} attribute must be a non-negative integer: {n}"),
                )
            }),
        }
    };
    let offset = number("Offset")?.unwrap_or(0);
    let max = number("MaxEntriesReturned")?
        .unwrap_or(usize::MAX)
        .min(FIND_COUNT_LIMIT);
    let from_end = view.and_then(|v| v.attr("BasePoint")) == Some("End");
    let (start, end) = if from_end {
        let end = total.saturating_sub(offset);
        (end.saturating_sub(max), end)
    } else {
        let start = offset.min(total);
        (start, start.saturating_add(max).min(total))
    };
    let items: Vec<Item> = items.into_iter().skip(start).take(end - start).collect();
    let last = if from_end { start == 0 } else { end == total };
    Ok(Page {
        offset: view.map(|_| if from_end { total - start } else { end }),
        last,
        total,
        items,
    })
}

/// A property value a restriction or sort order compares: text (compared ignoring case, as
/// Exchange's default collation does) or an instant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Time(DateTime<Utc>),
    Text(String),
}

fn unsupported_path(path: &Element) -> (String, String) {
    let name = path
        .attr("FieldURI")
        .or_else(|| path.attr("PropertyName"))
        .unwrap_or(&path.name);
    (
        "ErrorUnsupportedPathForQuery".to_string(),
        format!(
            "The property {name} is not supported in restrictions or sort orders by this server."
        ),
    )
}

/// The item's value for a property path: PublicStrings extended properties (tether's
/// markers), and the contact and calendar properties clients search and sort by. A path the
/// emulator does not model is refused, never taken as "no value".
fn property_value(path: &Element, item: &Item) -> EmuResult<Option<Value>> {
    let text = |s: &Option<String>| Ok(s.clone().map(Value::Text));
    let time = |t: Option<DateTime<Utc>>| Ok(t.map(Value::Time));
    let extended = match item {
        Item::Contact(c) => Some(&c.extended),
        Item::Event(e) => Some(&e.extended),
        Item::Other(_) => None,
    };
    if path.is(NS_T, "ExtendedFieldURI") {
        let name = path
            .attr("PropertyName")
            .ok_or_else(|| unsupported_path(path))?;
        return Ok(extended.and_then(|x| x.get(name)).cloned().map(Value::Text));
    }
    if path.is(NS_T, "IndexedFieldURI") {
        let (Some("contacts:EmailAddress"), Some(index)) =
            (path.attr("FieldURI"), path.attr("FieldIndex"))
        else {
            return Err(unsupported_path(path));
        };
        let slot = codec::email_slot(index).ok_or_else(|| unsupported_path(path))?;
        return Ok(match item {
            Item::Contact(c) => c.emails[slot].clone().map(Value::Text),
            _ => None,
        });
    }
    if !path.is(NS_T, "FieldURI") {
        return Err(unsupported_path(path));
    }
    let uri = path.attr("FieldURI").unwrap_or("");
    match (uri, item) {
        ("item:Subject", Item::Event(e)) => text(&e.subject),
        ("item:LastModifiedTime", Item::Contact(c)) => time(c.last_modified),
        ("item:LastModifiedTime", Item::Event(e)) => time(e.last_modified),
        ("item:DateTimeCreated", Item::Contact(c)) => time(c.created),
        ("item:DateTimeCreated", Item::Event(e)) => time(e.created),
        ("contacts:DisplayName", Item::Contact(c)) => text(&c.display_name),
        ("contacts:GivenName", Item::Contact(c)) => text(&c.given_name),
        ("contacts:Surname", Item::Contact(c)) => text(&c.surname),
        ("contacts:CompanyName", Item::Contact(c)) => text(&c.company_name),
        ("contacts:FileAs", Item::Contact(c)) => text(&c.file_as),
        ("calendar:Start", Item::Event(e)) => time(Some(e.start)),
        ("calendar:End", Item::Event(e)) => time(Some(e.end)),
        ("calendar:Location", Item::Event(e)) => text(&e.location),
        ("calendar:UID", Item::Event(e)) => text(&e.uid),
        // Properties of another item class: that item has no value.
        (
            "item:Subject"
            | "contacts:DisplayName"
            | "contacts:GivenName"
            | "contacts:Surname"
            | "contacts:CompanyName"
            | "contacts:FileAs"
            | "calendar:Start"
            | "calendar:End"
            | "calendar:Location"
            | "calendar:UID"
            | "item:LastModifiedTime"
            | "item:DateTimeCreated",
            _,
        ) => Ok(None),
        _ => Err(unsupported_path(path)),
    }
}

/// The constant a comparison is against, read as the property's kind of value.
fn constant_like(constant: &str, like: &Value) -> EmuResult<Value> {
    match like {
        Value::Text(_) => Ok(Value::Text(constant.to_string())),
        Value::Time(_) => parse_datetime(constant).map(Value::Time).ok_or((
            "ErrorInvalidValueForProperty".to_string(),
            format!("The value {constant} is not a valid date and time."),
        )),
    }
}

fn fold(v: Value) -> Value {
    match v {
        Value::Text(t) => Value::Text(t.to_lowercase()),
        t => t,
    }
}

/// Evaluates a Restriction's search expression against an item, as Exchange does for
/// FindItem: IsEqualTo, IsNotEqualTo, IsGreaterThan(OrEqualTo), IsLessThan(OrEqualTo),
/// Contains, Exists, And, Or, Not. Anything else is refused with an error.
fn restriction_matches(expr: &Element, item: &Item) -> EmuResult<bool> {
    let path = || {
        expr.children
            .iter()
            .find(|c| c.ns == NS_T && !matches!(c.name.as_str(), "FieldURIOrConstant" | "Constant"))
            .ok_or((
                "ErrorSchemaValidation".to_string(),
                format!("{} needs a property path.", expr.name),
            ))
    };
    match expr.name.as_str() {
        "IsEqualTo"
        | "IsNotEqualTo"
        | "IsGreaterThan"
        | "IsGreaterThanOrEqualTo"
        | "IsLessThan"
        | "IsLessThanOrEqualTo" => {
            let other = expr.child(NS_T, "FieldURIOrConstant").ok_or((
                "ErrorSchemaValidation".to_string(),
                format!("{} needs FieldURIOrConstant.", expr.name),
            ))?;
            let Some(constant) = other.child(NS_T, "Constant").and_then(|c| c.attr("Value")) else {
                return err(
                    "ErrorUnsupportedQueryFilter",
                    "Comparing two properties is not supported by this server.",
                );
            };
            let Some(value) = property_value(path()?, item)? else {
                // No value: only IsNotEqualTo holds.
                return Ok(expr.name == "IsNotEqualTo");
            };
            let constant = fold(constant_like(constant, &value)?);
            let value = fold(value);
            Ok(match expr.name.as_str() {
                "IsEqualTo" => value == constant,
                "IsNotEqualTo" => value != constant,
                "IsGreaterThan" => value > constant,
                "IsGreaterThanOrEqualTo" => value >= constant,
                "IsLessThan" => value < constant,
                _ => value <= constant,
            })
        }
        "Contains" => {
            let needle = expr
                .child(NS_T, "Constant")
                .and_then(|c| c.attr("Value"))
                .ok_or((
                    "ErrorSchemaValidation".to_string(),
                    "Contains needs a Constant.".to_string(),
                ))?;
            let exact = matches!(expr.attr("ContainmentComparison"), Some("Exact"));
            let (hay, needle) = match property_value(path()?, item)? {
                Some(Value::Text(t)) if exact => (t, needle.to_string()),
                Some(Value::Text(t)) => (t.to_lowercase(), needle.to_lowercase()),
                Some(Value::Time(_)) => {
                    return err(
                        "ErrorUnsupportedQueryFilter",
                        "Contains applies to text properties only.",
                    );
                }
                None => return Ok(false),
            };
            Ok(match expr.attr("ContainmentMode").unwrap_or("FullString") {
                "FullString" => hay == needle,
                "Prefixed" => hay.starts_with(&needle),
                "Substring" => hay.contains(&needle),
                "PrefixOnWords" => hay.split_whitespace().any(|w| w.starts_with(&needle)),
                "ExactPhrase" => hay.contains(&needle),
                other => {
                    return err(
                        "ErrorSchemaValidation",
                        &format!("Unknown ContainmentMode {other}."),
                    );
                }
            })
        }
        "Exists" => Ok(property_value(path()?, item)?.is_some()),
        "And" | "Or" => {
            let mut results = Vec::with_capacity(expr.children.len());
            for c in &expr.children {
                results.push(restriction_matches(c, item)?);
            }
            Ok(if expr.name == "And" {
                results.iter().all(|r| *r)
            } else {
                results.iter().any(|r| *r)
            })
        }
        "Not" => {
            let inner = expr.first_child().ok_or((
                "ErrorSchemaValidation".to_string(),
                "Not needs one expression.".to_string(),
            ))?;
            Ok(!restriction_matches(inner, item)?)
        }
        other => err(
            "ErrorUnsupportedQueryFilter",
            &format!("The restriction {other} is not supported by this server."),
        ),
    }
}

/// SortOrder: FieldOrder elements, first one first; items without a value sort first.
fn sort_items(items: &mut Vec<Item>, order: &Element) -> EmuResult<()> {
    let mut keyed = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        let mut key = Vec::new();
        for f in order.children_named(NS_T, "FieldOrder") {
            let path = f.first_child().ok_or((
                "ErrorSchemaValidation".to_string(),
                "FieldOrder needs a property path.".to_string(),
            ))?;
            key.push((
                f.attr("Order") == Some("Descending"),
                property_value(path, &item)?.map(fold),
            ));
        }
        keyed.push((key, item));
    }
    keyed.sort_by(|(a, _), (b, _)| {
        a.iter()
            .zip(b)
            .map(|((desc, x), (_, y))| if *desc { y.cmp(x) } else { x.cmp(y) })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    items.extend(keyed.into_iter().map(|(_, i)| i));
    Ok(())
}

/// Resolves an id: a stored item, or an occurrence of a stored master.
fn lookup(mb: &super::state::Mailbox, el: &Element) -> Result<Item, (String, String)> {
    let not_found = || {
        (
            "ErrorItemNotFound".to_string(),
            "The specified object was not found in the store.".to_string(),
        )
    };
    let malformed = || {
        (
            "ErrorInvalidIdMalformed".to_string(),
            "Id is malformed.".to_string(),
        )
    };
    let id = match el.name.as_str() {
        "RecurringMasterItemId" => el.attr("OccurrenceId"),
        _ => el.attr("Id"),
    }
    .ok_or_else(malformed)?;
    if base64::engine::general_purpose::STANDARD
        .decode(id)
        .is_err()
    {
        return Err(malformed());
    }
    if let Some((master, orig)) = parse_occurrence_id(id) {
        let stored = mb.items.get(&master).ok_or_else(not_found)?;
        if el.name == "RecurringMasterItemId" {
            return Ok(stored.current());
        }
        let Item::Event(e) = stored.current() else {
            return Err(not_found());
        };
        return occurrence(stored, &e, orig)
            .map(|o| Item::Event(Box::new(o)))
            .ok_or_else(not_found);
    }
    let stored = mb.items.get(id).ok_or_else(not_found)?;
    Ok(stored.current())
}

fn get_item(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let mb = mbx(emu, mailbox)?;
    let ext = requested_extended(op);
    let fields = requested_fields(op);
    let ids = op.child(NS_M, "ItemIds").ok_or((
        "ErrorSchemaValidation".to_string(),
        "ItemIds missing".to_string(),
    ))?;
    let mut w = soap::answer("m:GetItemResponse");
    w.start("m:ResponseMessages");
    for id in &ids.children {
        match lookup(mb, id) {
            Ok(item) => {
                write_message_head(&mut w, "m:GetItemResponseMessage", "NoError", "");
                w.start("m:Items");
                write_item(&mut w, &item, fields.as_ref(), &ext, true);
                w.end().end();
            }
            Err((code, text)) => {
                item_error_message(&mut w, "m:GetItemResponseMessage", &code, &text)
            }
        }
    }
    Ok(w.finish())
}

fn create_item(
    emu: &mut Emu,
    mailbox: &str,
    op: &Element,
    now: DateTime<Utc>,
) -> EmuResult<String> {
    let (saved, defaults) = {
        let mb = mbx(emu, mailbox)?;
        let saved = op
            .child(NS_M, "SavedItemFolderId")
            .and_then(|f| folder_ref(mb, f));
        let d = |n: &str| mb.distinguished(n).map(|f| f.id.clone());
        (saved, [d("contacts"), d("calendar"), d("inbox")])
    };
    let items = op.child(NS_M, "Items").ok_or((
        "ErrorSchemaValidation".to_string(),
        "Items missing".to_string(),
    ))?;
    let mut w = soap::answer("m:CreateItemResponse");
    w.start("m:ResponseMessages");
    for el in &items.children {
        let item = match codec::read_item(el) {
            Ok(item) => item,
            // A schema violation fails the whole request, as Exchange validates it first.
            Err((code, text)) if code == "ErrorSchemaValidation" => return Err((code, text)),
            Err((code, text)) => {
                item_error_message(&mut w, "m:CreateItemResponseMessage", &code, &text);
                continue;
            }
        };
        if let Some((code, text)) = emu.item_fault(&el.to_xml()) {
            item_error_message(&mut w, "m:CreateItemResponseMessage", &code, &text);
            continue;
        }
        let folder = saved.clone().or_else(|| match item {
            Item::Contact(_) => defaults[0].clone(),
            Item::Event(_) => defaults[1].clone(),
            Item::Other(_) => defaults[2].clone(),
        });
        let result = match (&item, folder) {
            // Calendar items need an explicit choice about invitations.
            (Item::Event(_), _) if op.attr("SendMeetingInvitations").is_none() => err(
                "ErrorSendMeetingInvitationsRequired",
                "SendMeetingInvitations attribute is required for calendar items.",
            ),
            (Item::Other(_), _) if el.name == "CalendarItem" => err(
                "ErrorCalendarInvalidPropertyState",
                "A calendar item needs Start and End.",
            ),
            (_, None) => err(
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            ),
            (_, Some(f)) => emu.create_item(mailbox, &f, item.clone(), now),
        };
        match result {
            Ok(id) => {
                write_message_head(&mut w, "m:CreateItemResponseMessage", "NoError", "");
                w.start("m:Items").start(item_element_name(&item));
                codec::write_item_id(&mut w, "ItemId", &id);
                w.end().end().end();
            }
            Err((code, text)) => {
                item_error_message(&mut w, "m:CreateItemResponseMessage", &code, &text)
            }
        }
    }
    Ok(w.finish())
}

/// The key of an updated field: FieldURI, `FieldURI/FieldIndex`, or `ext:PropertyName`.
fn field_key(update: &Element) -> Option<String> {
    if let Some(f) = update.child(NS_T, "FieldURI") {
        return f.attr("FieldURI").map(str::to_string);
    }
    if let Some(f) = update.child(NS_T, "IndexedFieldURI") {
        return Some(format!("{}/{}", f.attr("FieldURI")?, f.attr("FieldIndex")?));
    }
    if let Some(f) = update.child(NS_T, "ExtendedFieldURI") {
        return Some(format!("ext:{}", f.attr("PropertyName")?));
    }
    None
}

fn apply_contact(dst: &mut Contact, src: Option<&Contact>, key: &str) -> Result<(), ()> {
    macro_rules! simple {
        ($f:ident) => {{
            dst.$f = src.and_then(|s| s.$f.clone());
            Ok(())
        }};
    }
    match key {
        "item:Body" => simple!(notes),
        "contacts:FileAs" => simple!(file_as),
        "contacts:DisplayName" => simple!(display_name),
        "contacts:GivenName" => simple!(given_name),
        "contacts:MiddleName" => simple!(middle_name),
        "contacts:Nickname" => simple!(nickname),
        "contacts:CompanyName" => simple!(company_name),
        "contacts:AssistantName" => simple!(assistant_name),
        "contacts:Department" => simple!(department),
        "contacts:JobTitle" => simple!(job_title),
        "contacts:Surname" => simple!(surname),
        "contacts:Birthday" => {
            dst.birthday = src.and_then(|s| s.birthday);
            Ok(())
        }
        "item:Categories" => {
            dst.categories = src.map(|s| s.categories.clone()).unwrap_or_default();
            Ok(())
        }
        _ => {
            if let Some(name) = key.strip_prefix("ext:") {
                match src.and_then(|s| s.extended.get(name)) {
                    Some(v) => dst.extended.insert(name.to_string(), v.clone()),
                    None => dst.extended.remove(name),
                };
                return Ok(());
            }
            let (uri, index) = key.split_once('/').ok_or(())?;
            match uri {
                "contacts:EmailAddress" => {
                    let i = codec::email_slot(index).ok_or(())?;
                    dst.emails[i] = src.and_then(|s| s.emails[i].clone());
                }
                "contacts:PhoneNumber" => {
                    if !codec::is_phone_key(index) {
                        return Err(());
                    }
                    match src.and_then(|s| s.phones.get(index)) {
                        Some(v) => dst.phones.insert(index.to_string(), v.clone()),
                        None => dst.phones.remove(index),
                    };
                }
                _ => {
                    let part = uri.strip_prefix("contacts:PhysicalAddress:").ok_or(())?;
                    if !codec::is_address_key(index) || !codec::ADDRESS_PARTS.contains(&part) {
                        return Err(());
                    }
                    let value = src
                        .and_then(|s| s.addresses.get(index))
                        .and_then(|a| a.part(part))
                        .map(str::to_string);
                    let a = dst.addresses.entry(index.to_string()).or_default();
                    a.set_part(part, value);
                    if a.is_empty() {
                        dst.addresses.remove(index);
                    }
                }
            }
            Ok(())
        }
    }
}

fn apply_event(dst: &mut CalendarEvent, src: Option<&CalendarEvent>, key: &str) -> Result<(), ()> {
    macro_rules! simple {
        ($f:ident) => {{
            dst.$f = src.and_then(|s| s.$f.clone());
            Ok(())
        }};
    }
    match key {
        "item:Subject" => simple!(subject),
        "item:Body" => simple!(body),
        "item:Sensitivity" => simple!(sensitivity),
        "calendar:LegacyFreeBusyStatus" => simple!(free_busy),
        "calendar:Location" => simple!(location),
        "calendar:Recurrence" => simple!(recurrence),
        "calendar:StartTimeZone" => simple!(start_time_zone),
        "calendar:EndTimeZone" => simple!(end_time_zone),
        "item:Categories" => {
            dst.categories = src.map(|s| s.categories.clone()).unwrap_or_default();
            Ok(())
        }
        "calendar:Start" => {
            dst.start = src.ok_or(())?.start;
            Ok(())
        }
        "calendar:End" => {
            dst.end = src.ok_or(())?.end;
            Ok(())
        }
        "calendar:IsAllDayEvent" => {
            dst.is_all_day = src.is_some_and(|s| s.is_all_day);
            Ok(())
        }
        "calendar:RequiredAttendees" => {
            dst.required_attendees = src
                .map(|s| s.required_attendees.clone())
                .unwrap_or_default();
            Ok(())
        }
        "calendar:OptionalAttendees" => {
            dst.optional_attendees = src
                .map(|s| s.optional_attendees.clone())
                .unwrap_or_default();
            Ok(())
        }
        _ => {
            let name = key.strip_prefix("ext:").ok_or(())?;
            match src.and_then(|s| s.extended.get(name)) {
                Some(v) => dst.extended.insert(name.to_string(), v.clone()),
                None => dst.extended.remove(name),
            };
            Ok(())
        }
    }
}

/// Applies the Updates of one ItemChange to a copy of the item.
fn apply_updates(item: &Item, updates: &Element) -> Result<Item, (String, String)> {
    let mut item = item.clone();
    let bad = |k: &str| {
        (
            "ErrorInvalidPropertySet".to_string(),
            format!("The property {k} cannot be used with this type of item."),
        )
    };
    for u in &updates.children {
        let key = field_key(u).ok_or_else(|| bad("(none)"))?;
        // The item inside the change must be schema-valid; one the emulator would not store
        // is named by the change's path.
        let refused = |r: (String, String)| match r.0.as_str() {
            "ErrorSchemaValidation" => r,
            _ => bad(&key),
        };
        let set = match u.name.as_str() {
            "SetItemField" | "AppendToItemField" => true,
            "DeleteItemField" => false,
            _ => return Err(bad(&u.name)),
        };
        match &mut item {
            Item::Contact(c) => {
                let src = if set {
                    let el = u.child(NS_T, "Contact").ok_or_else(|| bad(&key))?;
                    Some(codec::read_contact(el).map_err(refused)?)
                } else {
                    None
                };
                apply_contact(c, src.as_ref(), &key).map_err(|_| bad(&key))?;
            }
            Item::Event(e) => {
                let src = if set {
                    let el = u.child(NS_T, "CalendarItem").ok_or_else(|| bad(&key))?;
                    Some(codec::read_event(el).map_err(refused)?.0)
                } else {
                    None
                };
                if !set && matches!(key.as_str(), "calendar:Start" | "calendar:End") {
                    return Err(bad(&key));
                }
                apply_event(e, src.as_ref(), &key).map_err(|_| bad(&key))?;
            }
            Item::Other(_) => return Err(bad(&key)),
        }
    }
    if let Item::Event(e) = &item
        && e.end < e.start
    {
        return Err((
            "ErrorCalendarEndDateIsEarlierThanStartDate".into(),
            "EndDate is earlier than StartDate".into(),
        ));
    }
    Ok(item)
}

fn update_item(
    emu: &mut Emu,
    mailbox: &str,
    op: &Element,
    now: DateTime<Utc>,
) -> EmuResult<String> {
    let resolution = op.attr("ConflictResolution").unwrap_or("").to_string();
    if !matches!(
        resolution.as_str(),
        "NeverOverwrite" | "AutoResolve" | "AlwaysOverwrite"
    ) {
        return err(
            "ErrorSchemaValidation",
            "The ConflictResolution attribute is required.",
        );
    }
    let changes = op
        .child(NS_M, "ItemChanges")
        .ok_or((
            "ErrorSchemaValidation".to_string(),
            "ItemChanges missing".to_string(),
        ))?
        .clone();
    let mut w = soap::answer("m:UpdateItemResponse");
    w.start("m:ResponseMessages");
    for change in changes.children_named(NS_T, "ItemChange") {
        let send_choice = op.attr("SendMeetingInvitationsOrCancellations").is_some();
        let outcome = match emu.item_fault(&change.to_xml()) {
            Some(failure) => Err(failure),
            None => update_one(emu, mailbox, change, &resolution, send_choice, now),
        };
        match outcome {
            Ok((tag, id)) => {
                write_message_head(&mut w, "m:UpdateItemResponseMessage", "NoError", "");
                w.start("m:Items").start(tag);
                codec::write_item_id(&mut w, "ItemId", &id);
                w.end().end();
                w.start("m:ConflictResults").value("t:Count", "0").end();
                w.end();
            }
            Err((code, text)) if code == "ErrorSchemaValidation" => return Err((code, text)),
            Err((code, text)) => {
                item_error_message(&mut w, "m:UpdateItemResponseMessage", &code, &text)
            }
        }
    }
    Ok(w.finish())
}

fn update_one(
    emu: &mut Emu,
    mailbox: &str,
    change: &Element,
    resolution: &str,
    send_choice: bool,
    now: DateTime<Utc>,
) -> Result<(&'static str, ItemId), (String, String)> {
    let id_el = change.child(NS_T, "ItemId").ok_or((
        "ErrorInvalidIdEmpty".to_string(),
        "Id is empty.".to_string(),
    ))?;
    let id = id_el.attr("Id").unwrap_or("").to_string();
    let ck = id_el.attr("ChangeKey").map(str::to_string);
    let is_calendar = parse_occurrence_id(&id).is_some()
        || emu
            .mailbox(mailbox)
            .and_then(|m| m.items.get(&id))
            .is_some_and(|s| matches!(s.item, Item::Event(_)));
    if is_calendar && !send_choice {
        return err(
            "ErrorSendMeetingInvitationsOrCancellationsRequired",
            "SendMeetingInvitationsOrCancellations attribute is required for calendar items.",
        );
    }
    let updates = change.child(NS_T, "Updates").ok_or((
        "ErrorSchemaValidation".to_string(),
        "Updates missing".to_string(),
    ))?;
    // An injected stale ChangeKey: a user saved the item just before this request.
    if matches!(emu.faults.front(), Some(Fault::StaleChangeKey)) {
        emu.faults.pop_front();
        emu.edit_item(mailbox, &id, |_| {}, now)?;
    }
    let mb = emu.mailbox_mut(mailbox)?;
    if let Some((master, orig)) = parse_occurrence_id(&id) {
        // Moving one occurrence creates an exception.
        let stored = mb.items.get(&master).ok_or((
            "ErrorItemNotFound".to_string(),
            "The specified object was not found in the store.".to_string(),
        ))?;
        let Item::Event(e) = stored.current() else {
            return err("ErrorItemNotFound", "Not a calendar item.");
        };
        let occ = occurrence(stored, &e, orig).ok_or((
            "ErrorItemNotFound".to_string(),
            "The occurrence was deleted.".to_string(),
        ))?;
        let Item::Event(updated) = apply_updates(&Item::Event(Box::new(occ)), updates)? else {
            return err("ErrorItemNotFound", "Not a calendar item.");
        };
        emu.modify_occurrence(
            mailbox,
            &master,
            orig,
            Some((updated.start, updated.end)),
            now,
        )?;
        let mb = emu.mailbox_mut(mailbox)?;
        let ck = mb
            .items
            .get(&master)
            .and_then(|s| s.exceptions.get(&orig))
            .map(|(_, ck)| ck.clone());
        return Ok((
            "t:CalendarItem",
            ItemId::new(occurrence_id(&master, &orig), ck),
        ));
    }
    let stored = mb.items.get(&id).ok_or((
        "ErrorItemNotFound".to_string(),
        "The specified object was not found in the store.".to_string(),
    ))?;
    if resolution != "AlwaysOverwrite" {
        match &ck {
            None => {
                return err(
                    "ErrorChangeKeyRequiredForWriteOperations",
                    "When making a request that requires a change key, you must specify the ChangeKey.",
                );
            }
            // AutoResolve merges a stale write into the newer version; the emulator does not
            // track which properties the other writer changed, so it never finds the
            // merge irresolvable. NeverOverwrite refuses any stale write.
            Some(ck) if *ck != stored.change_key && resolution == "NeverOverwrite" => {
                return err(
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                );
            }
            _ => {}
        }
    }
    let updated = apply_updates(&stored.item, updates)?;
    let tag = item_element_name(&updated);
    let new_id = emu.edit_item(mailbox, &id, |i| *i = updated, now)?;
    Ok((tag, new_id))
}

/// DeleteType of DeleteItem and DeleteFolder: true for MoveToDeletedItems, false for
/// HardDelete and SoftDelete (gone from the mailbox's folders).
fn moves_to_deleted_items(op: &Element) -> EmuResult<bool> {
    match op.attr("DeleteType") {
        Some("MoveToDeletedItems") => Ok(true),
        Some("HardDelete" | "SoftDelete") => Ok(false),
        Some(other) => err(
            "ErrorSchemaValidation",
            &format!("The DeleteType attribute has an invalid value: {other}."),
        ),
        None => err(
            "ErrorSchemaValidation",
            "The DeleteType attribute is required.",
        ),
    }
}

/// An item deleted with MoveToDeletedItems moves to Deleted Items (under a new id, see
/// `Emu::move_item`); deleted there again, it leaves the mailbox's folders.
fn move_to_deleted_items(emu: &mut Emu, mailbox: &str, id: &str) -> EmuResult<()> {
    let mb = mbx(emu, mailbox)?;
    let bin = mb.distinguished("deleteditems").map(|f| f.id.clone());
    let current = mb.items.get(id).map(|s| s.folder.clone());
    match (bin, current) {
        (Some(bin), Some(folder)) if folder != bin => emu.move_item(mailbox, id, &bin).map(|_| ()),
        _ => emu.delete_item(mailbox, id),
    }
}

fn delete_folder(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let move_to_bin = moves_to_deleted_items(op)?;
    let ids = op.child(NS_M, "FolderIds").ok_or((
        "ErrorSchemaValidation".to_string(),
        "FolderIds missing".to_string(),
    ))?;
    let mut w = soap::answer("m:DeleteFolderResponse");
    w.start("m:ResponseMessages");
    for id in &ids.children {
        let mb = mbx(emu, mailbox)?;
        let folder = match id.name.as_str() {
            "DistinguishedFolderId" => id.attr("Id").and_then(|d| mb.distinguished(d)),
            _ => id.attr("Id").and_then(|i| mb.folder(i)),
        }
        .map(|f| f.id.clone());
        let result = match folder {
            Some(f) => emu.delete_folder(mailbox, &f, !move_to_bin),
            None => err(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            ),
        };
        match result {
            Ok(()) => {
                write_message_head(&mut w, "m:DeleteFolderResponseMessage", "NoError", "");
                w.end();
            }
            Err((code, text)) => {
                error_message(&mut w, "m:DeleteFolderResponseMessage", &code, &text)
            }
        }
    }
    Ok(w.finish())
}

fn delete_item(emu: &mut Emu, mailbox: &str, op: &Element) -> EmuResult<String> {
    let move_to_bin = moves_to_deleted_items(op)?;
    let ids = op
        .child(NS_M, "ItemIds")
        .ok_or((
            "ErrorSchemaValidation".to_string(),
            "ItemIds missing".to_string(),
        ))?
        .clone();
    let now = DateTime::<Utc>::UNIX_EPOCH;
    let mut w = soap::answer("m:DeleteItemResponse");
    w.start("m:ResponseMessages");
    for id in &ids.children {
        let raw = id.attr("Id").unwrap_or("");
        let is_calendar = parse_occurrence_id(raw).is_some()
            || emu
                .mailbox(mailbox)
                .and_then(|m| m.items.get(raw))
                .is_some_and(|s| matches!(s.item, Item::Event(_)));
        let result = if is_calendar && op.attr("SendMeetingCancellations").is_none() {
            err(
                "ErrorSendMeetingCancellationsRequired",
                "SendMeetingCancellations attribute is required for calendar items.",
            )
        } else if let Some((master, orig)) = parse_occurrence_id(raw) {
            let last_modified = emu
                .mailbox(mailbox)
                .and_then(|m| m.items.get(&master))
                .and_then(|s| match &s.item {
                    Item::Event(e) => e.last_modified,
                    _ => None,
                })
                .unwrap_or(now);
            emu.modify_occurrence(mailbox, &master, orig, None, last_modified)
        } else if move_to_bin {
            move_to_deleted_items(emu, mailbox, raw)
        } else {
            emu.delete_item(mailbox, raw)
        };
        match result {
            Ok(()) => {
                write_message_head(&mut w, "m:DeleteItemResponseMessage", "NoError", "");
                w.end();
            }
            Err((code, text)) => error_message(&mut w, "m:DeleteItemResponseMessage", &code, &text),
        }
    }
    Ok(w.finish())
}

// ---------------------------------------------------------------------------------------
// Autodiscover

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// POX Autodiscover: settings, a redirectAddr, or error 500 for unknown addresses.
pub(crate) async fn autodiscover_pox(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pox(shared, headers, body, false)
}

/// The target of a POX redirectUrl: a server that knows the user (no further redirects).
pub(crate) async fn autodiscover_pox_redirected(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pox(shared, headers, body, true)
}

fn pox(shared: Shared, headers: HeaderMap, body: Bytes, redirected: bool) -> Response {
    if !shared.options.autodiscover_pox {
        return StatusCode::NOT_FOUND.into_response();
    }
    if authenticate(&shared, &headers).is_none() {
        return unauthorized();
    }
    let email = xml::parse(&body, Limits::default()).ok().and_then(|r| {
        r.path(&[(NS_AD_REQ, "Request"), (NS_AD_REQ, "EMailAddress")])
            .map(|e| e.text.trim().to_string())
    });
    let Some(email) = email else {
        return xml_response(StatusCode::OK, pox_error("600", "Invalid Request"));
    };
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let emu = shared.lock();
    let account = if let (false, Some(target)) = (redirected, emu.ad_redirects.get(&domain)) {
        format!(
            "<Account><AccountType>email</AccountType><Action>redirectAddr</Action><RedirectAddr>{}</RedirectAddr></Account>",
            escape(target)
        )
    } else if !redirected && emu.ad_redirect_urls.contains(&domain) {
        format!(
            "<Account><AccountType>email</AccountType><Action>redirectUrl</Action><RedirectUrl>{}</RedirectUrl></Account>",
            escape(&format!(
                "{}/autodiscover/redirected/autodiscover.xml",
                shared.base
            ))
        )
    } else if emu.mailbox(&email).is_some() {
        let url = escape(&format!("{}/EWS/Exchange.asmx", shared.base));
        format!(
            "<Account><AccountType>email</AccountType><Action>settings</Action>\
             <Protocol><Type>EXCH</Type><Server>emulator</Server><EwsUrl>{url}</EwsUrl></Protocol>\
             <Protocol><Type>EXPR</Type><Server>127.0.0.1</Server><EwsUrl>{url}</EwsUrl></Protocol></Account>"
        )
    } else {
        return xml_response(
            StatusCode::OK,
            pox_error("500", "The e-mail address cannot be found."),
        );
    };
    xml_response(
        StatusCode::OK,
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><User><EMailAddress>{}</EMailAddress></User>{account}</Response></Autodiscover>"#,
            escape(&email)
        ),
    )
}

fn pox_error(code: &str, message: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response><Error Time="09:00:00.0000000" Id="2657365762"><ErrorCode>{code}</ErrorCode><Message>{message}</Message><DebugData /></Error></Response></Autodiscover>"#
    )
}

/// SOAP Autodiscover GetUserSettings (ExternalEwsUrl), with RedirectAddress for redirected
/// domains and InvalidUser for unknown addresses.
/// The value of one GetUserSettings setting this server knows (the string settings that
/// describe where and how to reach EWS); None for any other, answered as a UserSettingError.
fn user_setting(name: &str, smtp: &str, ews_url: &str) -> Option<String> {
    Some(match name {
        "ExternalEwsUrl" | "InternalEwsUrl" => ews_url.to_string(),
        "AutoDiscoverSMTPAddress" => smtp.to_string(),
        "UserDisplayName" => smtp.split('@').next().unwrap_or(smtp).to_string(),
        "CasVersion" => "15.01.2507.006".to_string(),
        "EwsSupportedSchemas" => "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1".to_string(),
        _ => return None,
    })
}

pub(crate) async fn autodiscover_soap(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::exchange::xml::NS_AD_SOAP;
    if authenticate(&shared, &headers).is_none() {
        return unauthorized();
    }
    let request = xml::parse(&body, Limits::default()).ok().and_then(|r| {
        let body = r.children.iter().find(|c| c.name == "Body")?;
        let req = body.first_child()?.child(NS_AD_SOAP, "Request")?;
        let email = req
            .child(NS_AD_SOAP, "Users")?
            .child(NS_AD_SOAP, "User")?
            .child_text(NS_AD_SOAP, "Mailbox")?
            .trim()
            .to_string();
        let settings: Vec<String> = req
            .child(NS_AD_SOAP, "RequestedSettings")
            .map(|r| {
                r.children_named(NS_AD_SOAP, "Setting")
                    .map(|s| s.text.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        Some((email, settings))
    });
    let Some((email, requested)) = request else {
        return xml_response(StatusCode::BAD_REQUEST, String::new());
    };
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let emu = shared.lock();
    let user = if let Some(target) = emu.ad_redirects.get(&domain) {
        format!(
            "<UserResponse><ErrorCode>RedirectAddress</ErrorCode><ErrorMessage>Redirection address.</ErrorMessage><RedirectTarget>{}</RedirectTarget><UserSettingErrors/><UserSettings/></UserResponse>",
            escape(target)
        )
    } else if let Some(mb) = emu.mailbox(&email) {
        let ews_url = format!("{}/EWS/Exchange.asmx", shared.base);
        let (mut settings, mut errors) = (String::new(), String::new());
        for name in &requested {
            match user_setting(name, &mb.smtp, &ews_url) {
                Some(value) => settings.push_str(&format!(
                    "<UserSetting i:type=\"StringSetting\"><Name>{}</Name><Value>{}</Value></UserSetting>",
                    escape(name),
                    escape(&value)
                )),
                None => errors.push_str(&format!(
                    "<UserSettingError><ErrorCode>InvalidSetting</ErrorCode><ErrorMessage>The requested setting is invalid or not supported.</ErrorMessage><SettingName>{}</SettingName></UserSettingError>",
                    escape(name)
                )),
            }
        }
        format!(
            "<UserResponse><ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage><RedirectTarget i:nil=\"true\"/><UserSettingErrors>{errors}</UserSettingErrors><UserSettings>{settings}</UserSettings></UserResponse>"
        )
    } else {
        "<UserResponse><ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user.</ErrorMessage><UserSettingErrors/><UserSettings/></UserResponse>".to_string()
    };
    xml_response(
        StatusCode::OK,
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action></s:Header><s:Body><GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover"><Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses>{user}</UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>"#
        ),
    )
}
