//! The Microsoft Graph face of the emulated mailboxes: the same store the EWS face serves
//! (an item created over one is seen over the other, under Graph's own ids: see `ids`), as
//! Exchange Online serves one mailbox through both APIs.
//!
//! It behaves as ../shared/GRAPH.md documents Graph v1.0 (token endpoint with client secret
//! or certificate assertion, RBAC-for-Applications scopes, contactFolders, contacts, events,
//! calendarView, the delta functions, `$batch`, the 4-concurrent-requests-per-mailbox limit,
//! extended properties, transactionId, multi-value limits, invitations), and answers with
//! shapes Microsoft's OpenAPI description declares; every answer is recorded with the schema
//! it must match (`graph_bodies`), so tests validate them with graph-openapi/validate.py.

mod delta;
pub mod ids;
pub mod json;
mod routes;
mod token;

use crate::exchange::ImpersonationScope;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The emulated tenant's id (a GUID, as `/{tenant}/oauth2/v2.0/token` takes it).
pub const TENANT_ID: &str = "9b2d4e8a-5c1f-4a3b-9e7d-1a2b3c4d5e6f";
/// The tenant's initial domain, also accepted in the token URL.
pub const TENANT_DOMAIN: &str = "emulated.onmicrosoft.com";
/// Concurrent requests per app and mailbox (Outlook service limit).
pub const MAILBOX_CONCURRENCY: usize = 4;
/// `$batch` holds at most this many requests.
pub const BATCH_LIMIT: usize = 20;

/// An app registration as Entra ID keeps it: a client secret and/or a certificate (PEM), and
/// the mailboxes its Graph permissions reach (RBAC for Applications: a management scope).
#[derive(Debug, Clone)]
pub struct GraphApp {
    pub client_id: String,
    pub client_secret: Option<String>,
    /// The registered certificate (PEM `CERTIFICATE`); assertions must name its SHA-256
    /// thumbprint (`x5t#S256`) and be signed with its key.
    pub certificate_pem: Option<String>,
    pub scope: ImpersonationScope,
}

/// An invitation, update or cancellation the service would have mailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMeetingMessage {
    /// "invitation", "update" or "cancellation".
    pub kind: &'static str,
    pub mailbox: String,
    /// The event's store (EWS) id.
    pub event_id: String,
    pub recipients: Vec<String>,
}

/// An answer body of the Graph face, or a body a client sent it, and the schema it must
/// validate against: a validate.py target (`"GET /users/{user-id}/contactFolders"`,
/// `"POST /users/{user-id}/events request"`, `microsoft.graph.contact`,
/// `extra:tokenResponse`, `extra:batchRequest`, …).
#[derive(Debug, Clone)]
pub struct GraphBody {
    pub schema: String,
    pub status: u16,
    pub body: Value,
}

/// Faults a test can queue on the Graph face.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphFault {
    /// The next request (or `$batch` item) answers 429 ApplicationThrottled with this
    /// Retry-After.
    Throttle { retry_after_secs: u64 },
    /// The next request answers this status with an empty body (503/504/404 happen so).
    EmptyStatus(u16),
    /// The next request (a whole `$batch`) is carried out, but its answer is lost: the
    /// gateway answers an empty 504, as when the service took longer than it waits.
    LoseAnswer,
}

#[derive(Debug, Default)]
pub(crate) struct GraphState {
    pub apps: Vec<GraphApp>,
    /// access token → (client id, expiry).
    pub tokens: HashMap<String, (String, DateTime<Utc>)>,
    /// Users in the directory without an Exchange Online mailbox (lower case).
    pub no_mailbox: Vec<String>,
    /// Delta and paging tokens, oldest first (tokens are fixed-width hex counters); the
    /// oldest are evicted beyond `delta::MAX_TOKENS`, as Exchange's cache evicts sync states.
    pub deltas: BTreeMap<String, delta::DeltaState>,
    pub pages: BTreeMap<String, delta::Page>,
    /// (mailbox, transactionId) → the event's store id.
    pub transactions: HashMap<(String, String), String>,
    /// Store id → the transactionId it was created with.
    pub transactions_by_item: HashMap<String, String>,
    pub sent: Vec<SentMeetingMessage>,
    pub faults: std::collections::VecDeque<GraphFault>,
    pub bodies: Vec<GraphBody>,
    pub calls: BTreeMap<String, u64>,
    /// Requests in progress per (app, mailbox).
    pub in_flight: HashMap<(String, String), usize>,
    pub retry_after_secs: u64,
    /// `EmulatorOptions::record_bodies` off (long sandbox runs): answers are not kept.
    pub skip_bodies: bool,
}

impl GraphState {
    pub(crate) fn record(&mut self, schema: &str, status: u16, body: &Value) {
        if self.skip_bodies {
            return;
        }
        self.bodies.push(GraphBody {
            schema: schema.to_string(),
            status,
            body: body.clone(),
        });
    }
}

/// The Graph state inside the store's lock (one lock: a write and its delta bookkeeping
/// happen together).
struct GraphGuard<'a>(std::sync::MutexGuard<'a, crate::exchange::state::Emu>);

impl std::ops::Deref for GraphGuard<'_> {
    type Target = GraphState;
    fn deref(&self) -> &GraphState {
        &self.0.graph
    }
}

impl std::ops::DerefMut for GraphGuard<'_> {
    fn deref_mut(&mut self) -> &mut GraphState {
        &mut self.0.graph
    }
}

impl crate::exchange::RunningEmulator {
    fn graph(&self) -> GraphGuard<'_> {
        GraphGuard(self.shared().lock())
    }

    /// Graph's service root, e.g. `http://127.0.0.1:40123/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.url())
    }

    /// The tenant's token endpoint, `…/{tenant}/oauth2/v2.0/token`: tokens for Graph, or
    /// for EWS when the scope is Exchange Online's (`https://outlook.office365.com/.default`),
    /// both for the apps of `add_graph_app` within their scope.
    pub fn graph_token_url(&self) -> String {
        format!("{}/{TENANT_ID}/oauth2/v2.0/token", self.url())
    }

    pub fn graph_tenant(&self) -> &'static str {
        TENANT_ID
    }

    /// Registers an app for Graph's client-credentials flow.
    pub fn add_graph_app(&self, app: GraphApp) {
        self.graph().apps.push(app);
    }

    /// A directory user without an Exchange Online mailbox (on-premises, unlicensed).
    pub fn add_user_without_mailbox(&self, upn: &str) {
        self.graph().no_mailbox.push(upn.to_ascii_lowercase());
    }

    /// Forgets every delta and paging token, as Exchange evicting its sync states does: the
    /// next request with one answers 410 SyncStateNotFound.
    pub fn expire_graph_delta_tokens(&self) {
        let mut g = self.graph();
        g.deltas.clear();
        g.pages.clear();
    }

    /// Queues a fault for the coming Graph requests.
    pub fn inject_graph(&self, fault: GraphFault) {
        self.graph().faults.push_back(fault);
    }

    /// The Retry-After of 429s from the concurrency limit (seconds; 1 unless set).
    pub fn set_graph_retry_after(&self, secs: u64) {
        self.graph().retry_after_secs = secs;
    }

    /// Every invitation, update and cancellation the service would have mailed.
    pub fn graph_sent_meeting_messages(&self) -> Vec<SentMeetingMessage> {
        self.graph().sent.clone()
    }

    /// Every answer body and every accepted request body, with the schema it must
    /// validate against.
    pub fn graph_bodies(&self) -> Vec<GraphBody> {
        self.graph().bodies.clone()
    }

    /// Requests per kind ("token", "batch", "GET contacts/delta", "POST events", …).
    pub fn graph_calls(&self) -> BTreeMap<String, u64> {
        self.graph().calls.clone()
    }

    /// The store (EWS) id of the item a Graph id (REST or immutable) of `mailbox` names.
    pub fn ews_id_of_graph_id(&self, mailbox: &str, graph_id: &str) -> String {
        let emu = self.shared().lock();
        match emu.mailbox(mailbox) {
            Some(mb) => ids::store_item_id(mb, graph_id),
            None => ids::store_folder_id(graph_id),
        }
    }

    /// The immutable Graph id of the item `ews_id` of `mailbox` (as answers with
    /// `Prefer: IdType="ImmutableId"` name it).
    pub fn graph_id_of_ews_id(&self, mailbox: &str, ews_id: &str) -> String {
        let emu = self.shared().lock();
        match emu.mailbox(mailbox) {
            Some(mb) => ids::item_id(mb, ews_id, ids::IdType::Immutable),
            None => ids::rest_id(ews_id),
        }
    }

    /// Every access token the Graph token endpoint issued (for leak checks).
    pub fn graph_issued_tokens(&self) -> Vec<String> {
        self.graph().tokens.keys().cloned().collect()
    }
}

pub(crate) use routes::router;

#[cfg(test)]
mod tests;
