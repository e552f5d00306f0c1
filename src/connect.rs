//! Opening connections from the configuration: secrets are resolved here, at connect time,
//! and go straight into the clients' `Secret`s.

use crate::config::model::{Config, OrgKind, SalesforceAuth};
use crate::config::secrets::{resolve, resolve_value};
use crate::salesforce::{Auth, ClientOptions, SalesforceClient};
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
            let mut password = resolve(password, home)
                .map_err(at(&field("password")))?
                .expose()
                .to_string();
            // The password flow takes the security token appended to the password.
            if let Some(token) = security_token {
                password.push_str(
                    resolve(token, home)
                        .map_err(at(&field("security_token")))?
                        .expose(),
                );
            }
            Auth::UsernamePassword {
                client_id: resolve_value(client_id, home).map_err(at(&field("client_id")))?,
                client_secret: resolve(client_secret, home).map_err(at(&field("client_secret")))?,
                username: username.clone(),
                password: crate::secret::Secret::new(password),
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
    Ok(opts)
}

const PRODUCTION_LOGIN: &str = "https://login.salesforce.com";
const SANDBOX_LOGIN: &str = "https://test.salesforce.com";

/// A client for the org.
pub fn salesforce(config: &Config, home: &Path) -> Result<SalesforceClient, ConnectError> {
    let opts = salesforce_options(config, home)?;
    SalesforceClient::new(opts).map_err(|e| at("connections.salesforce")(e.to_string()))
}

/// The field mapping the connectors read and write `object` with. Connectors do not know
/// which configuration a rep syncs under, and an empty canonical value means "clear it", so
/// they use the fields every configuration that syncs `object` maps (to the same Exchange
/// property): a field one configuration leaves unmapped is never cleared for its reps by
/// another's mapping. With one configuration this is exactly its mapping.
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
                m.fields.retain(|f| {
                    s.mapping
                        .get(&f.salesforce)
                        .is_some_and(|g| g.exchange == f.exchange)
                });
                m
            }
        });
    }
    out.unwrap_or_else(|| crate::model::EffectiveMapping::defaults(object))
}
