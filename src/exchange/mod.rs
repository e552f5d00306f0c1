//! Exchange Web Services (EWS) client.
//!
//! What the sync engine uses is [`EwsClient`] (built from [`ExchangeOptions`] and a
//! [`Clock`](crate::clock::Clock)); every call takes the rep's SMTP address and acts for the
//! rep through `ExchangeImpersonation` (plus `X-AnchorMailbox`):
//!
//! - folders: `get_folder`, `find_folder`, `create_folder`, `ensure_sync_folder` (the
//!   rep's `Salesforce_Sync` folder under Contacts), `folder_unless_deleted` (a folder by
//!   id, unless gone or in Deleted Items); a missing folder is `EwsError::is_folder_missing`
//!   (each operation has its own code);
//! - changes: `sync_page` / `sync_folder` (SyncFolderItems, ≤ 512 a page, the SyncState
//!   handed to a callback after each page, one restart on ErrorInvalidSyncStateData),
//!   `calendar_view` (FindItem + CalendarView, occurrences expanded by the server) and
//!   `recurring_master`; every page follows IncludesLastItemInRange, and a page that is not
//!   the last yet brings nothing new is an error, never an endless loop;
//! - items, in batches of `batch_size`: `get_contacts`, `get_events`, `create_contacts`,
//!   `create_events`, `update_contacts`, `update_events`, `delete_items`. Each returns one
//!   [`ItemError`]-or-value per input, in order; the call itself fails only for run-level
//!   problems ([`EwsError`]).
//! - `calls()` counts every request by operation (retries included);
//!   `server_build(mailbox)` is the Exchange build the mailbox last answered from.
//!
//! Errors: `EwsError::is_per_rep()` (ErrorImpersonateUserDenied, ErrorNonExistentMailbox…)
//! is the rep's problem, not the run's; `ItemError::is_conflict()` (ErrorIrresolvableConflict,
//! ErrorStaleObject) means refetch and decide again.
//!
//! Markers on items (PublicStrings extended properties, see [`model`]):
//! `tether.SalesforceId` holds the Salesforce id of every item tether creates (so a crash
//! between the create and the state write never duplicates), and an event counts as related
//! to Salesforce in the Outlook integration when it has `tether.RelatedToSalesforce` set
//! (true/1/non-empty) or the Outlook category `Salesforce`
//! (`CalendarEvent::is_outlook_related`).

#[cfg(test)]
mod canned;
pub mod checks;
pub mod client;
pub mod connector;
pub mod error;
#[cfg(test)]
mod golden;
pub mod model;
pub mod soap;
pub mod tz;
pub mod version;
pub mod xml;

pub use client::{
    Auth, AutodiscoverOptions, ChangeKind, ConflictResolution, Endpoint, EwsClient,
    ExchangeOptions, FolderRef, ItemKind, SyncChange, SyncPage, SyncSummary,
};
pub use error::{EwsError, ItemError};
pub use version::ServerBuild;
