//! The mail side the configuration names: `connections.exchange.api` picks the connector
//! (EWS, or Microsoft Graph). Code outside a mail module holds a [`MailSide`] and never
//! names one API's connector or client.

use crate::checks::Check;
use crate::clock::Clock;
use crate::config::model::{Config, ExchangeApi};
use crate::connect::{self, ConnectError};
use crate::engine::connector::{
    CallError, ErrorKind, EventWindow, Folder, FolderMarker, FolderPage, MailConnector, MailCreate,
    MailItem, MailRef, Mailbox, MailboxMarker, Outcome, RecordError, RepError,
};
use crate::exchange::EwsClient;
use crate::exchange::connector::EwsConnector;
use crate::graph::GraphConnector;
use crate::model::{EffectiveMapping, ObjectKind, Record};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One mail connector, of the API the configuration chose.
/// One per run: the size of a variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum MailSide {
    Ews(EwsConnector),
    Graph(GraphConnector),
}

impl MailSide {
    /// The connector the configuration names, its secrets resolved (`home` resolves
    /// `${file:…}` references).
    pub fn open(
        config: &Config,
        home: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<MailSide, ConnectError> {
        match config.connections.exchange.api() {
            ExchangeApi::Ews => {
                let client = EwsClient::new(connect::exchange_options(config, home)?, clock)
                    .map_err(|e| ConnectError {
                        setting: "connections.exchange".into(),
                        message: e.to_string(),
                    })?;
                Ok(MailSide::Ews(
                    EwsConnector::new(client).with_contact_mapping(connect::connector_mapping(
                        config,
                        ObjectKind::Contact,
                    )),
                ))
            }
            ExchangeApi::Graph => Ok(MailSide::Graph(
                GraphConnector::new(connect::graph(config, home, clock)?)
                    .with_contact_mapping(connect::connector_mapping(config, ObjectKind::Contact)),
            )),
        }
    }

    /// Requests sent to the mail server so far, by operation (retries included).
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        match self {
            MailSide::Ews(c) => c.client().calls(),
            MailSide::Graph(c) => c.client().calls(),
        }
    }

    /// `tether test-connection`'s mail checks, in the connector's own terms, acting for
    /// `mailbox` (a rep) where a check needs one.
    pub async fn connection_checks(&self, mailbox: Option<String>, out: &mut Vec<Check>) {
        match self {
            MailSide::Ews(c) => crate::exchange::checks::run(c.client(), mailbox, out).await,
            MailSide::Graph(c) => crate::checks::graph(c.client(), mailbox.as_slice(), out).await,
        }
    }
}

impl MailConnector for MailSide {
    fn batch_size(&self) -> usize {
        match self {
            MailSide::Ews(c) => c.batch_size(),
            MailSide::Graph(c) => c.batch_size(),
        }
    }
    async fn sync_folder(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        cursor: Option<&str>,
        window: Option<EventWindow>,
    ) -> Result<FolderPage, RepError> {
        match self {
            MailSide::Ews(c) => c.sync_folder(mailbox, folder, cursor, window).await,
            MailSide::Graph(c) => c.sync_folder(mailbox, folder, cursor, window).await,
        }
    }
    async fn ensure_folder(&self, mailbox: &Mailbox, folder: Folder) -> Result<(), RepError> {
        match self {
            MailSide::Ews(c) => c.ensure_folder(mailbox, folder).await,
            MailSide::Graph(c) => c.ensure_folder(mailbox, folder).await,
        }
    }
    async fn create(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        items: &[MailCreate],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        match self {
            MailSide::Ews(c) => c.create(mailbox, folder, items).await,
            MailSide::Graph(c) => c.create(mailbox, folder, items).await,
        }
    }
    async fn update(
        &self,
        mailbox: &Mailbox,
        items: &[(String, Record)],
    ) -> Result<Vec<Outcome<MailRef>>, CallError> {
        match self {
            MailSide::Ews(c) => c.update(mailbox, items).await,
            MailSide::Graph(c) => c.update(mailbox, items).await,
        }
    }
    async fn delete(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<Outcome<()>>, CallError> {
        match self {
            MailSide::Ews(c) => c.delete(mailbox, item_ids).await,
            MailSide::Graph(c) => c.delete(mailbox, item_ids).await,
        }
    }
    async fn get_items(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        match self {
            MailSide::Ews(c) => c.get_items(mailbox, folder, item_ids).await,
            MailSide::Graph(c) => c.get_items(mailbox, folder, item_ids).await,
        }
    }
    async fn change_keys(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<MailRef>, CallError> {
        match self {
            MailSide::Ews(c) => c.change_keys(mailbox, folder, item_ids).await,
            MailSide::Graph(c) => c.change_keys(mailbox, folder, item_ids).await,
        }
    }
    async fn find_by_salesforce_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
    ) -> Result<Vec<MailItem>, CallError> {
        match self {
            MailSide::Ews(c) => {
                c.find_by_salesforce_ids(mailbox, folder, salesforce_ids)
                    .await
            }
            MailSide::Graph(c) => {
                c.find_by_salesforce_ids(mailbox, folder, salesforce_ids)
                    .await
            }
        }
    }
    async fn find_deleted_created(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        salesforce_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, CallError> {
        match self {
            MailSide::Ews(c) => {
                c.find_deleted_created(mailbox, folder, salesforce_ids, since)
                    .await
            }
            MailSide::Graph(c) => {
                c.find_deleted_created(mailbox, folder, salesforce_ids, since)
                    .await
            }
        }
    }
    async fn translate_foreign_ids(
        &self,
        mailbox: &Mailbox,
        folder: Folder,
        item_ids: &[String],
    ) -> Result<Vec<(String, String)>, CallError> {
        match self {
            MailSide::Ews(c) => c.translate_foreign_ids(mailbox, folder, item_ids).await,
            MailSide::Graph(c) => c.translate_foreign_ids(mailbox, folder, item_ids).await,
        }
    }
    async fn meetings_a_delete_would_cancel(
        &self,
        mailbox: &Mailbox,
        item_ids: &[String],
    ) -> Result<Vec<String>, CallError> {
        match self {
            MailSide::Ews(c) => c.meetings_a_delete_would_cancel(mailbox, item_ids).await,
            MailSide::Graph(c) => c.meetings_a_delete_would_cancel(mailbox, item_ids).await,
        }
    }
    fn use_contact_mapping(&self, mailbox: &Mailbox, mapping: &EffectiveMapping) {
        match self {
            MailSide::Ews(c) => c.use_contact_mapping(mailbox, mapping),
            MailSide::Graph(c) => c.use_contact_mapping(mailbox, mapping),
        }
    }
    fn use_marker(&self, marker: &MailboxMarker) {
        match self {
            MailSide::Ews(c) => c.use_marker(marker),
            MailSide::Graph(c) => c.use_marker(marker),
        }
    }
    fn folder_marker(&self, mailbox: &Mailbox) -> Option<FolderMarker> {
        match self {
            MailSide::Ews(c) => c.folder_marker(mailbox),
            MailSide::Graph(c) => c.folder_marker(mailbox),
        }
    }
    async fn mark_folder(&self, mailbox: &Mailbox, marker: &MailboxMarker) -> Result<(), RepError> {
        match self {
            MailSide::Ews(c) => c.mark_folder(mailbox, marker).await,
            MailSide::Graph(c) => c.mark_folder(mailbox, marker).await,
        }
    }
    fn allow_cancellations(&self, mailbox: &Mailbox, allowed: bool) {
        match self {
            MailSide::Ews(c) => c.allow_cancellations(mailbox, allowed),
            MailSide::Graph(c) => c.allow_cancellations(mailbox, allowed),
        }
    }
    fn allow_meeting_updates(&self, mailbox: &Mailbox, allowed: bool) {
        match self {
            MailSide::Ews(c) => c.allow_meeting_updates(mailbox, allowed),
            MailSide::Graph(c) => c.allow_meeting_updates(mailbox, allowed),
        }
    }
    fn server_build(&self, mailbox: &Mailbox) -> Option<String> {
        match self {
            MailSide::Ews(c) => c.server_build(mailbox),
            MailSide::Graph(c) => c.server_build(mailbox),
        }
    }
}

/// What every mail connector keeps of the contact mappings: the one for mailboxes the engine
/// names none for, and each rep's own (`MailConnector::use_contact_mapping`).
#[derive(Debug)]
pub struct ContactMappings {
    default: Arc<EffectiveMapping>,
    by_mailbox: Mutex<HashMap<String, Arc<EffectiveMapping>>>,
}

impl Default for ContactMappings {
    /// The admin guide's default contact mapping.
    fn default() -> Self {
        ContactMappings {
            default: Arc::new(EffectiveMapping::defaults(ObjectKind::Contact)),
            by_mailbox: Mutex::default(),
        }
    }
}

impl ContactMappings {
    /// The mapping of mailboxes the engine names none for.
    pub fn set_default(&mut self, mapping: EffectiveMapping) {
        self.default = Arc::new(mapping);
    }

    /// `mailbox`'s own mapping (addresses compare without case).
    pub fn set(&self, mailbox: &str, mapping: &EffectiveMapping) {
        self.by_mailbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(mailbox.to_lowercase(), Arc::new(mapping.clone()));
    }

    /// The mapping `mailbox`'s contacts are read and written with.
    pub fn of(&self, mailbox: &str) -> Arc<EffectiveMapping> {
        self.by_mailbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&mailbox.to_lowercase())
            .unwrap_or(&self.default)
            .clone()
    }
}

/// An event a mail connector cannot put on a date (all-day, in a zone CLDR's table does not
/// know, or with no zone): it fails visibly instead of landing on a day guessed for it.
const UNKNOWN_TIME_ZONE: &str = "UNKNOWN_TIME_ZONE";

/// A write of an event that cannot be dated: that record fails.
pub fn undatable_write(why: String) -> RecordError {
    RecordError {
        kind: ErrorKind::Validation,
        code: UNKNOWN_TIME_ZONE.into(),
        message: why,
        retryable: false,
        hint: "Set a zone CLDR knows (connections.exchange.time_zone or the event's).".into(),
    }
}

/// A read that meets an event it cannot date stops there, so nothing is taken as deleted
/// and no edit is lost; the rep's error names the event.
pub fn undatable_read(item_id: &str, why: String) -> CallError {
    CallError {
        kind: ErrorKind::Validation,
        code: UNKNOWN_TIME_ZONE.into(),
        message: format!("calendar item {item_id}: {why}"),
        retryable: false,
        ambiguous: false,
        hint:
            "Give the event a standard time zone in Outlook; the rep's calendar then syncs again."
                .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use serde_json::json;

    fn config(exchange: serde_json::Value) -> Config {
        serde_json::from_value(json!({
            "version": 1,
            "org": { "name": "acme", "kind": "production" },
            "connections": {
                "exchange": exchange,
                "salesforce": { "instance_url": "https://acme.my.salesforce.com",
                                "auth": { "flow": "access_token", "access_token": "${env:T}" } }
            },
            "sync_configurations": []
        }))
        .unwrap()
    }

    fn open(exchange: serde_json::Value, home: &Path) -> Result<MailSide, ConnectError> {
        MailSide::open(&config(exchange), home, Arc::new(SystemClock))
    }

    #[test]
    fn the_configuration_chooses_the_mail_connector() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("secret"), "s3cret").unwrap();
        let ews = open(
            json!({ "method": "service_account", "username": "svc@acme.com",
                    "ews_url": "https://mail.acme.com/EWS/Exchange.asmx",
                    "password": "${file:secret}" }),
            home.path(),
        );
        assert!(matches!(ews, Ok(MailSide::Ews(_))), "{ews:?}");
        let online = open(
            json!({ "method": "oauth2", "tenant": "acme.onmicrosoft.com", "client_id": "app",
                    "client_secret": "${file:secret}", "api": "ews" }),
            home.path(),
        );
        assert!(matches!(online, Ok(MailSide::Ews(_))), "{online:?}");
        let graph = open(
            json!({ "method": "oauth2", "tenant": "acme.onmicrosoft.com", "client_id": "app",
                    "client_secret": "${file:secret}", "api": "graph" }),
            home.path(),
        );
        assert!(matches!(graph, Ok(MailSide::Graph(_))), "{graph:?}");
    }
}
