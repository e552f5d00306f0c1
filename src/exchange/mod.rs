//! Exchange Web Services (EWS) client.
//!
//! `client::EwsClient` is what the sync engine uses: folders, SyncFolderItems paging,
//! CalendarView, batched GetItem/CreateItem/UpdateItem/DeleteItem on `model` values, with
//! typed per-item outcomes (`ItemError`) and run-level errors (`EwsError`).

pub mod client;
pub mod error;
pub mod model;
pub mod soap;
pub mod tz;
pub mod xml;

pub use client::{
    Auth, AutodiscoverOptions, ChangeKind, ConflictResolution, Endpoint, EwsClient,
    ExchangeOptions, FolderRef, ItemKind, SyncChange, SyncPage, SyncSummary,
};
pub use error::{EwsError, ItemError};
