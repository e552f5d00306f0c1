//! Microsoft Graph client for Exchange Online mailboxes, as an app (no signed-in user):
//! the HTTP core with its limits and retries ([`client`]), failures in kinds
//! ([`error`]), `$batch` ([`batch`]), delta rounds ([`delta`]), the `Salesforce_Sync`
//! folder ([`folders`]), tether's extended property ([`property`]), creates that survive a
//! lost answer ([`items`]), the per-mailbox access check ([`mailbox`]) and the Graph ids of
//! items EWS named ([`translate`]); the engine's
//! mail side over it is [`connector`], with its contact and event codecs ([`contact`],
//! [`event`]). The app's token
//! comes from [`crate::entra`].

pub mod batch;
pub mod client;
pub mod connector;
pub mod contact;
pub mod delta;
pub mod error;
pub mod event;
pub mod folders;
pub mod items;
pub mod mailbox;
pub mod property;
pub mod translate;

pub use batch::{BatchAnswer, BatchItem};
pub use client::{GraphClient, GraphOptions, Request};
pub use connector::GraphConnector;
pub use delta::{DeltaOutcome, DeltaPage, DeltaRound, PageOutcome, Window};
pub use error::{ErrorKind, GraphError};

#[cfg(test)]
pub(crate) mod tests;
