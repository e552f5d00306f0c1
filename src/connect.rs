//! Opening connections from the configuration: secrets are resolved here, at connect time,
//! and go straight into the clients' `Secret`s.

use crate::config::model::{Config, ExchangeConnection, OrgKind, SalesforceAuth};
use crate::config::secrets::{resolve, resolve_value};
use crate::exchange::{self, Endpoint, ExchangeOptions};
use crate::salesforce::{Auth, ClientOptions, SalesforceClient};
use crate::secret::Secret;
use std::path::Path;
use url::Url;

/// Why a connection could not be opened, naming the setting to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    pub setting: String,
    pub message: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConnectError {}

fn at(setting: &str) -> impl Fn(String) -> ConnectError + '_ {
    move |message| ConnectError {
        setting: setting.to_string(),
        message,
    }
}

fn url(setting: &str, text: &str) -> Result<Url, ConnectError> {
    Url::parse(text).map_err(|e| at(setting)(format!("`{text}` is not a valid URL: {e}")))
}

/// Client options for the org, with every secret resolved. `home` is the configuration's
/// directory, for `${file:…}` references.
pub fn salesforce_options(config: &Config, home: &Path) -> Result<ClientOptions, ConnectError> {
    let sf = &config.connections.salesforce;
    const AUTH: &str = "connections.salesforce.auth";
    let field = |name: &'static str| format!("{AUTH}.{name}");
    let auth = match &sf.auth {
        SalesforceAuth::JwtBearer {
            client_id,
            username,
            private_key,
        } => Auth::JwtBearer {
            client_id: resolve_value(client_id, home).map_err(at(&field("client_id")))?,
            username: username.clone(),
            private_key_pem: resolve(private_key, home).map_err(at(&field("private_key")))?,
        },
        SalesforceAuth::ClientCredentials {
            client_id,
            client_secret,
        } => Auth::ClientCredentials {
            client_id: resolve_value(client_id, home).map_err(at(&field("client_id")))?,
            client_secret: resolve(client_secret, home).map_err(at(&field("client_secret")))?,
        },
        SalesforceAuth::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => Auth::RefreshToken {
            client_id: resolve_value(client_id, home).map_err(at(&field("client_id")))?,
            client_secret: client_secret
                .as_ref()
                .map(|s| resolve(s, home))
                .transpose()
                .map_err(at(&field("client_secret")))?,
            refresh_token: resolve(refresh_token, home).map_err(at(&field("refresh_token")))?,
        },
        SalesforceAuth::UsernamePassword {
            client_id,
            client_secret,
            username,
            password,
            security_token,
        } => {
            let mut password = resolve(password, home).map_err(at(&field("password")))?;
            // The password flow takes the security token appended to the password.
            if let Some(token) = security_token {
                let token = resolve(token, home).map_err(at(&field("security_token")))?;
                password = Secret::new(format!("{}{}", password.expose(), token.expose()));
            }
            Auth::UsernamePassword {
                client_id: resolve_value(client_id, home).map_err(at(&field("client_id")))?,
                client_secret: resolve(client_secret, home).map_err(at(&field("client_secret")))?,
                username: username.clone(),
                password,
            }
        }
        SalesforceAuth::AccessToken { access_token } => Auth::AccessToken {
            token: resolve(access_token, home).map_err(at(&field("access_token")))?,
        },
    };
    let instance_url = url("connections.salesforce.instance_url", &sf.instance_url)?;
    let mut opts = ClientOptions::new(instance_url, auth);
    opts.login_url = match (&sf.login_url, config.org.kind) {
        (Some(login), _) => url("connections.salesforce.login_url", login)?,
        (None, OrgKind::Sandbox) => url("connections.salesforce.login_url", SANDBOX_LOGIN)?,
        (None, OrgKind::Production) => url("connections.salesforce.login_url", PRODUCTION_LOGIN)?,
    };
    opts.api_version = sf.api_version.clone();
    opts.ca_file = sf.ca_file.as_ref().map(|f| home.join(f));
    opts.api_budget = sf.api_budget_percent.map(|p| f64::from(p) / 100.0);
    Ok(opts)
}

const PRODUCTION_LOGIN: &str = "https://login.salesforce.com";
const SANDBOX_LOGIN: &str = "https://test.salesforce.com";

/// How far back each read of Salesforce changes starts again
/// (`connections.salesforce.change_lookback_minutes`, else the connector's default).
pub fn change_lookback(config: &Config) -> chrono::Duration {
    config
        .connections
        .salesforce
        .change_lookback_minutes
        .map_or(crate::salesforce::connector::DEFAULT_CHANGE_LOOKBACK, |m| {
            chrono::Duration::minutes(i64::from(m))
        })
}

/// A client for the org.
pub fn salesforce(config: &Config, home: &Path) -> Result<SalesforceClient, ConnectError> {
    let opts = salesforce_options(config, home)?;
    SalesforceClient::new(opts).map_err(|e| at("connections.salesforce")(e.to_string()))
}

/// Exchange Online's EWS endpoint, used when an oauth2 connection names none.
const EXCHANGE_ONLINE_EWS: &str = "https://outlook.office365.com/EWS/Exchange.asmx";
/// The scope an app registration asks for to use EWS.
const EXCHANGE_ONLINE_SCOPE: &str = "https://outlook.office365.com/.default";

/// Client options for Exchange, with every secret resolved.
pub fn exchange_options(config: &Config, home: &Path) -> Result<ExchangeOptions, ConnectError> {
    const EX: &str = "connections.exchange";
    let field = |name: &'static str| format!("{EX}.{name}");
    let (endpoint, auth, ca_file) = match &config.connections.exchange {
        ExchangeConnection::ServiceAccount {
            ews_url,
            username,
            password,
            ca_file,
            ..
        } => {
            let endpoint = match ews_url {
                Some(u) => Endpoint::Url(url(&field("ews_url"), u)?),
                // Autodiscover from the service account's domain: its UPN, or the domain
                // of a down-level `corp.com\svc` name.
                None => Endpoint::Autodiscover {
                    address: match username.split_once('\\') {
                        Some((domain, _)) => domain.to_string(),
                        None => username.clone(),
                    },
                },
            };
            let auth = exchange::Auth::Basic {
                username: username.clone(),
                password: resolve(password, home).map_err(at(&field("password")))?,
            };
            (endpoint, auth, ca_file)
        }
        ExchangeConnection::Oauth2 {
            tenant,
            client_id,
            client_secret,
            certificate,
            token_url,
            ews_url,
            ca_file,
            ..
        } => {
            let Some(secret) = client_secret else {
                let message = if certificate.is_some() {
                    "certificate credentials are not supported yet; give `client_secret`"
                } else {
                    "give `client_secret`"
                };
                return Err(at(&field("client_secret"))(message.into()));
            };
            let token_url = match token_url {
                Some(u) => url(&field("token_url"), u)?,
                None => url(
                    &field("tenant"),
                    &format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
                )?,
            };
            let auth = exchange::Auth::OAuth2 {
                token_url,
                client_id: resolve_value(client_id, home).map_err(at(&field("client_id")))?,
                client_secret: resolve(secret, home).map_err(at(&field("client_secret")))?,
                scope: EXCHANGE_ONLINE_SCOPE.into(),
            };
            let endpoint = Endpoint::Url(url(
                &field("ews_url"),
                ews_url.as_deref().unwrap_or(EXCHANGE_ONLINE_EWS),
            )?);
            (endpoint, auth, ca_file)
        }
    };
    let mut opts = ExchangeOptions::new(endpoint, auth);
    opts.ca_file = ca_file.as_ref().map(|f| home.join(f));
    Ok(opts)
}

/// Contact fields the active configurations' contact `filters` name, for
/// [`SalesforceConnector::with_filter_fields`](crate::salesforce::connector::SalesforceConnector::with_filter_fields):
/// a filter may name any Contact field, and the connector reads only what it is told to.
pub fn contact_filter_fields(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in config.sync_configurations.iter().filter(|c| c.active) {
        for f in c.contacts.iter().flat_map(|s| &s.filters) {
            if !out.iter().any(|x| x.eq_ignore_ascii_case(&f.field)) {
                out.push(f.field.clone());
            }
        }
    }
    out
}

/// The fields the Salesforce connector reads and may write for `object`: the union of
/// every active configuration's mapping that syncs it (first one wins a field's Exchange
/// property). Each rep's comparisons and writes use only their own configuration's
/// mapping (`EffectiveMapping::project`, `MailConnector::use_contact_mapping`); the union
/// is what an org-wide read must select for all of them. With one configuration this is
/// exactly its mapping.
pub fn connector_mapping(
    config: &Config,
    object: crate::model::ObjectKind,
) -> crate::model::EffectiveMapping {
    use crate::config::model::Direction;
    use crate::engine::rules::ObjectSettings;
    let mut out: Option<crate::model::EffectiveMapping> = None;
    for c in config.sync_configurations.iter().filter(|c| c.active) {
        let s = ObjectSettings::of(c, object);
        if s.direction == Direction::None {
            continue;
        }
        out = Some(match out {
            None => s.mapping,
            Some(mut m) => {
                for f in s.mapping.fields {
                    if !m.maps(&f.salesforce) {
                        m.fields.push(f);
                    }
                }
                m
            }
        });
    }
    out.unwrap_or_else(|| crate::model::EffectiveMapping::defaults(object))
}
