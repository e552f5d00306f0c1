//! The typed configuration. Doc comments become the JSON Schema's descriptions, which editors
//! show on hover, so they are written for the admin. Defaults follow the Lightning Sync admin
//! guide.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A tether configuration: one Salesforce org, its Exchange connection and its sync
/// configurations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Version of this file format. Only 1 exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    pub org: Org,
    pub connections: Connections,
    #[serde(default)]
    pub outlook_integration: OutlookIntegration,
    /// Sync configurations: who syncs, and how. A user syncs under at most one.
    #[serde(default)]
    pub sync_configurations: Vec<SyncConfiguration>,
    /// Where tether keeps its state. Absent: the SQLite file `.tether/state.db` next to the
    /// configuration. `--state` and `TETHER_STATE` override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSetting>,
}

/// The state: an SQLite file, or a Postgres database a team, CI and services share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StateSetting {
    /// An SQLite file, relative to this configuration's directory.
    File(String),
    Postgres(PostgresState),
}

/// A Postgres state. Several orgs share one database, each in its own schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresState {
    /// `postgres://USER@HOST:PORT/DATABASE`, without a password. TLS is used (and the
    /// server's certificate verified) except to loopback hosts.
    pub url: String,
    /// The password: `${env:NAME}` or `${file:PATH}`. Absent: PGPASSWORD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// The org's schema in the database. Absent: `tether_` and the org's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-z_][a-z0-9_]{0,62}$"))]
    pub schema: Option<String>,
    /// PEM file of the certificate authority that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// The Salesforce org this configuration manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Org {
    /// A name for the org, e.g. `acme-prod`. Used in plans and in the state.
    #[schemars(length(min = 1, max = 80))]
    pub name: String,
    pub kind: OrgKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Production,
    Sandbox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    pub exchange: ExchangeConnection,
    pub salesforce: SalesforceConnection,
}

/// How tether reaches Exchange. `method` picks the kind of credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExchangeConnection {
    /// Exchange on premises: a service account with the ApplicationImpersonation role.
    ServiceAccount {
        /// EWS endpoint, e.g. `https://mail.example.com/EWS/Exchange.asmx`. Absent: found
        /// by Autodiscover from each rep's email domain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ews_url: Option<String>,
        /// The service account, as `svc@example.com` (UPN) or `example.com\svc` (down-level).
        username: String,
        /// Password: `${env:NAME}` or `${file:PATH}`, never the value itself.
        password: SecretRef,
        /// Mail domains of reps besides the service account's own.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        additional_domains: Vec<String>,
        /// PEM file of a private certificate authority that signed the server certificate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<String>,
    },
    /// Exchange Online: an app registration using the OAuth 2.0 client credentials grant.
    Oauth2 {
        /// Microsoft Entra tenant id or domain.
        tenant: String,
        /// Application (client) id of the app registration.
        client_id: String,
        /// Client secret, `${env:NAME}` or `${file:PATH}`. Give this or `certificate`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<SecretRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<ClientCertificate>,
        /// Token endpoint. Default:
        /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_url: Option<String>,
        #[serde(default)]
        api: ExchangeApi,
        /// Microsoft Graph endpoint (`api: graph`). Default: `https://graph.microsoft.com/v1.0`;
        /// national clouds by their URL, e.g. `https://graph.microsoft.us/v1.0`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        graph_url: Option<String>,
        /// EWS endpoint (`api: ews`). Default: `https://outlook.office365.com/EWS/Exchange.asmx`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ews_url: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        additional_domains: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<String>,
    },
}

impl ExchangeConnection {
    /// The API the connection syncs through (a service account speaks EWS only).
    pub fn api(&self) -> ExchangeApi {
        match self {
            ExchangeConnection::ServiceAccount { .. } => ExchangeApi::Ews,
            ExchangeConnection::Oauth2 { api, .. } => *api,
        }
    }
}

/// Certificate credential of an app registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    /// The certificate's private key (PEM), `${file:PATH}` or `${env:NAME}`.
    pub private_key: SecretRef,
    /// Thumbprint of the certificate uploaded to the app registration (hex): SHA-256
    /// (64 digits; the assertion is then signed PS256 with `x5t#S256`) or SHA-1 (40 digits,
    /// the portal's "Thumbprint"; RS256 with `x5t`).
    #[schemars(pattern(r"^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$"))]
    pub thumbprint: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeApi {
    /// Exchange Web Services. Exchange Online blocks EWS since 1 October 2026 unless the
    /// tenant allow-listed the app, and turns it off on 1 April 2027.
    #[default]
    Ews,
    /// Microsoft Graph (needs `method: oauth2`).
    Graph,
}

/// How tether reaches Salesforce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConnection {
    /// The org's My Domain URL, e.g. `https://acme.my.salesforce.com`.
    pub instance_url: String,
    /// OAuth login host. Default: `https://login.salesforce.com`
    /// (`https://test.salesforce.com` for sandbox orgs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
    /// REST API version, e.g. `62.0`.
    #[serde(default = "default_api_version")]
    #[schemars(pattern(r"^[0-9]{2,3}\.0$"))]
    pub api_version: String,
    pub auth: SalesforceAuth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Minutes before the newest change already read that each read of Salesforce changes
    /// starts again, so that a long transaction committing records stamped earlier is still
    /// seen. Salesforce transactions run up to 10 minutes. Default: 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 1440))]
    pub change_lookback_minutes: Option<u32>,
    /// Share of the org's daily API allowance, in percent, that tether may use: a sync stops
    /// before a call once the org's usage (from `Sforce-Limit-Info`) reaches it. No limit
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub api_budget_percent: Option<u8>,
    /// Records a write phase (the creates, or the updates, of contacts or of events in one
    /// run) needs before it goes through one Bulk API 2.0 ingest job instead of sObject
    /// Collections (200 records a call), while the org's daily Bulk batches allow it. 0 keeps
    /// every write on sObject Collections. Default: 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_threshold: Option<u32>,
}

pub fn default_api_version() -> String {
    "62.0".into()
}

/// The OAuth 2.0 flow tether uses to get a Salesforce access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "flow", rename_all = "snake_case", deny_unknown_fields)]
pub enum SalesforceAuth {
    /// JWT bearer flow with a connected app's certificate (recommended for servers).
    JwtBearer {
        /// Consumer key of the connected app.
        client_id: String,
        /// The integration user to act as.
        username: String,
        /// Private key (PEM) matching the connected app's certificate.
        private_key: SecretRef,
    },
    /// Client credentials flow; runs as the connected app's "run as" user.
    ClientCredentials {
        client_id: String,
        client_secret: SecretRef,
    },
    /// A refresh token obtained once through the web server flow.
    RefreshToken {
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<SecretRef>,
        refresh_token: SecretRef,
    },
    /// Username-password flow. Blocked by default in newer orgs; prefer jwt_bearer.
    UsernamePassword {
        client_id: String,
        client_secret: SecretRef,
        username: String,
        password: SecretRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        security_token: Option<SecretRef>,
    },
    /// A ready access token (for short tests; it expires and cannot be renewed).
    AccessToken { access_token: SecretRef },
}

/// Salesforce's Outlook integration, through which reps relate events to records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlookIntegration {
    /// Whether the Outlook integration is enabled in the org. Needed for
    /// `events.which: user_selected`.
    #[serde(default)]
    pub enabled: bool,
}

/// One sync configuration: its members and how their contacts and events sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfiguration {
    /// Unique name, e.g. `Sales Reps Europe`.
    #[schemars(length(min = 1, max = 80))]
    pub name: String,
    /// Inactive configurations are kept but sync nobody.
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub members: Members,
    /// Contact sync. Absent: contacts do not sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<ContactSync>,
    /// Event sync. Absent: events do not sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventSync>,
}

fn yes() -> bool {
    true
}

/// Who syncs under a configuration. Users listed here win over membership by profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Members {
    /// Salesforce users, by email.
    #[serde(default)]
    pub users: Vec<String>,
    /// Salesforce profiles, by name; every active user with the profile is a member.
    #[serde(default)]
    pub profiles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ExchangeToSalesforce,
    SalesforceToExchange,
    Both,
    None,
}

impl Direction {
    pub fn to_exchange(self) -> bool {
        matches!(self, Direction::SalesforceToExchange | Direction::Both)
    }
    pub fn to_salesforce(self) -> bool {
        matches!(self, Direction::ExchangeToSalesforce | Direction::Both)
    }
}

/// Which side wins when a record changed on both sides since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    ExchangeWins,
    SalesforceWins,
}

/// Which Salesforce contacts sync to a rep's Exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactScope {
    /// Contacts the rep owns, plus those the rep selected ("Selected Contacts and User's
    /// Records").
    UsersRecords,
    /// All contacts the rep can see.
    AllContacts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactSync {
    pub direction: Direction,
    /// Required when `direction` is `both`; not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictPolicy>,
    /// Required when contacts sync Salesforce to Exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ContactScope>,
    /// Conditions on Salesforce Contact fields, all of which must hold. They apply to
    /// Salesforce→Exchange sync only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Extra or changed mappings: Salesforce field → Exchange property. `~` (null) removes
    /// a default mapping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mappings: BTreeMap<String, Option<String>>,
}

/// A condition on a Salesforce Contact field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Salesforce Contact field API name, e.g. `MailingCountry`.
    pub field: String,
    pub op: FilterOp,
    /// The value to compare with (all operators but `in` and `not_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ScalarValue>,
    /// The values, for `in` and `not_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<ScalarValue>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScalarValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Equals,
    NotEquals,
    In,
    NotIn,
    LessThan,
    LessOrEqual,
    GreaterThan,
    GreaterOrEqual,
    StartsWith,
    Contains,
}

impl FilterOp {
    pub fn name(self) -> &'static str {
        match self {
            FilterOp::Equals => "equals",
            FilterOp::NotEquals => "not_equals",
            FilterOp::In => "in",
            FilterOp::NotIn => "not_in",
            FilterOp::LessThan => "less_than",
            FilterOp::LessOrEqual => "less_or_equal",
            FilterOp::GreaterThan => "greater_than",
            FilterOp::GreaterOrEqual => "greater_or_equal",
            FilterOp::StartsWith => "starts_with",
            FilterOp::Contains => "contains",
        }
    }

    pub fn takes_list(self) -> bool {
        matches!(self, FilterOp::In | FilterOp::NotIn)
    }
}

/// Which events sync from Exchange to Salesforce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventSelection {
    /// Every event in the rep's default calendar.
    #[default]
    All,
    /// Only events the rep related to Salesforce in the Outlook integration
    /// (Salesforce→Exchange still syncs all).
    UserSelected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSync {
    pub direction: Direction,
    /// Required when `direction` is `both`; not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictPolicy>,
    #[serde(default)]
    pub which: EventSelection,
    /// Events that end on or after: `TODAY` (00:00 today in the rep's time zone),
    /// `LAST_MONTH` (the first day of last month) or `LAST_N_DAYS:n` (n from 1 to 180).
    #[serde(default)]
    pub since: Since,
    /// Sync events marked private (they stay private on both sides).
    #[serde(default)]
    pub sync_private: bool,
    /// A delete on one side deletes the synced event on the other; otherwise unlink.
    #[serde(default = "yes")]
    pub delete_synced: bool,
    /// Over Microsoft Graph, deleting a meeting the rep organised with attendees mails them
    /// a cancellation (Graph cannot delete it silently). With `delete_synced`, such a meeting
    /// is deleted only when this is on; otherwise it is unlinked and reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub send_cancellations: bool,
    /// Over Microsoft Graph, moving a meeting the rep organised with attendees (its time or
    /// place) mails them an update. Such a change from Salesforce is written only when this
    /// is on; otherwise it is not synced and reported once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub update_meetings: bool,
    /// On an event's first sync, relate its attendees to matching Contacts (up to 50) or
    /// one Lead.
    #[serde(default = "yes")]
    pub auto_relate: bool,
    /// Sync Lightning Experience event series with Exchange recurring meetings.
    #[serde(default)]
    pub sync_series: bool,
    /// Extra or changed mappings: Salesforce Event field → Exchange calendar property.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mappings: BTreeMap<String, Option<String>>,
}

/// The start of the event date window, as written (`TODAY`, `LAST_MONTH`, `LAST_N_DAYS:n`).
/// Its range is checked by validation, which points at the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Since(pub String);

impl Default for Since {
    fn default() -> Self {
        Since("TODAY".into())
    }
}

/// The parsed form of `Since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceWindow {
    Today,
    LastMonth,
    LastNDays(u32),
}

impl Since {
    pub const FORMS: &'static str = "TODAY, LAST_MONTH or LAST_N_DAYS:n (n from 1 to 180)";
    pub const MAX_DAYS: u32 = 180;

    pub fn window(&self) -> Option<SinceWindow> {
        match self.0.as_str() {
            "TODAY" => Some(SinceWindow::Today),
            "LAST_MONTH" => Some(SinceWindow::LastMonth),
            other => {
                let n = other.strip_prefix("LAST_N_DAYS:")?.parse::<u32>().ok()?;
                (1..=Self::MAX_DAYS)
                    .contains(&n)
                    .then_some(SinceWindow::LastNDays(n))
            }
        }
    }
}

impl JsonSchema for Since {
    fn schema_name() -> Cow<'static, str> {
        "Since".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "TODAY, LAST_MONTH or LAST_N_DAYS:n (n from 1 to 180).",
            "pattern": "^(TODAY|LAST_MONTH|LAST_N_DAYS:[0-9]{1,3})$",
            "default": "TODAY"
        })
    }
}

/// A reference to a secret: `${env:NAME}` or `${file:PATH}` (PATH relative to the file that
/// names it). The secret itself never appears in configuration, plans, state or logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A secret reference: ${env:NAME} or ${file:PATH}. Never the secret itself.",
            "pattern": "^\\$\\{(env:[A-Za-z_][A-Za-z0-9_]*|file:[^}]+)\\}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_windows() {
        assert_eq!(Since("TODAY".into()).window(), Some(SinceWindow::Today));
        assert_eq!(
            Since("LAST_N_DAYS:180".into()).window(),
            Some(SinceWindow::LastNDays(180))
        );
        assert_eq!(Since("LAST_N_DAYS:181".into()).window(), None);
        assert_eq!(Since("LAST_N_DAYS:0".into()).window(), None);
        assert_eq!(Since("YESTERDAY".into()).window(), None);
    }
}
