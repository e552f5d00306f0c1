//! Opening connections from the configuration: secrets are resolved here, at connect time,
//! and go straight into the clients' `Secret`s.

use crate::clock::Clock;
use crate::config::model::{Config, ExchangeApi, ExchangeConnection, OrgKind, SalesforceAuth};
use crate::config::secrets::{resolve, resolve_value};
use crate::entra::{AppCredentials, ClientCredential, Thumbprint};
use crate::exchange::{self, Endpoint, ExchangeOptions};
use crate::salesforce::{Auth, ClientOptions, SalesforceClient};
use crate::secret::Secret;
use std::path::Path;
use std::sync::Arc;
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
    if let Some(t) = sf.bulk_threshold {
        opts.bulk_threshold = (t > 0).then_some(t as usize);
    }
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

/// The default token endpoint of an Entra tenant.
pub fn default_token_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
}

/// An app registration's credentials from an `oauth2` connection, secrets resolved:
/// `client_secret`, or `certificate` (private key + thumbprint) for a signed assertion.
pub fn app_credentials(
    home: &Path,
    tenant: &str,
    client_id: &str,
    client_secret: Option<&crate::config::model::SecretRef>,
    certificate: Option<&crate::config::model::ClientCertificate>,
    token_url: Option<&str>,
    scope: &str,
) -> Result<AppCredentials, ConnectError> {
    const EX: &str = "connections.exchange";
    let field = |name: &'static str| format!("{EX}.{name}");
    let credential = match (client_secret, certificate) {
        (Some(secret), None) => {
            ClientCredential::Secret(resolve(secret, home).map_err(at(&field("client_secret")))?)
        }
        (None, Some(cert)) => ClientCredential::Certificate {
            private_key_pem: resolve(&cert.private_key, home)
                .map_err(at(&field("certificate.private_key")))?,
            thumbprint: Thumbprint::parse(&cert.thumbprint)
                .map_err(at(&field("certificate.thumbprint")))?,
        },
        (Some(_), Some(_)) => {
            return Err(at(&field("certificate"))(
                "give `client_secret` or `certificate`, not both".into(),
            ));
        }
        (None, None) => {
            return Err(at(EX)("give `client_secret` or `certificate`".into()));
        }
    };
    let token_url = match token_url {
        Some(u) => url(&field("token_url"), u)?,
        None => url(&field("tenant"), &default_token_url(tenant))?,
    };
    Ok(AppCredentials {
        token_url,
        client_id: resolve_value(client_id, home).map_err(at(&field("client_id")))?,
        credential,
        scope: scope.into(),
    })
}

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
            api,
            ..
        } => {
            if *api == ExchangeApi::Graph {
                return Err(at(&field("api"))(
                    "`api: graph` connects through Microsoft Graph, not EWS".into(),
                ));
            }
            let auth = exchange::Auth::OAuth2(app_credentials(
                home,
                tenant,
                client_id,
                client_secret.as_ref(),
                certificate.as_ref(),
                token_url.as_deref(),
                EXCHANGE_ONLINE_SCOPE,
            )?);
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

/// A Microsoft Graph client for an `api: graph` connection, every secret resolved. The
/// token scope follows `graph_url` (national clouds have their own Graph host).
pub fn graph(
    config: &Config,
    home: &Path,
    clock: Arc<dyn Clock>,
) -> Result<crate::graph::GraphClient, ConnectError> {
    const EX: &str = "connections.exchange";
    let ExchangeConnection::Oauth2 {
        tenant,
        client_id,
        client_secret,
        certificate,
        token_url,
        api: ExchangeApi::Graph,
        graph_url,
        ca_file,
        ..
    } = &config.connections.exchange
    else {
        return Err(at(&format!("{EX}.api"))(
            "Microsoft Graph needs `method: oauth2` with `api: graph`".into(),
        ));
    };
    let graph_url = url(
        &format!("{EX}.graph_url"),
        graph_url
            .as_deref()
            .unwrap_or(crate::graph::client::DEFAULT_GRAPH_URL),
    )?;
    let mut opts = crate::graph::GraphOptions::new(graph_url);
    opts.ca_file = ca_file.as_ref().map(|f| home.join(f));
    let app = app_credentials(
        home,
        tenant,
        client_id,
        client_secret.as_ref(),
        certificate.as_ref(),
        token_url.as_deref(),
        &opts.scope(),
    )?;
    crate::graph::GraphClient::new(opts, app, clock).map_err(|e| at(EX)(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(exchange: serde_json::Value) -> Config {
        serde_json::from_value(json!({
            "version": 1,
            "org": {"name": "acme", "kind": "production"},
            "connections": {
                "exchange": exchange,
                "salesforce": {
                    "instance_url": "https://acme.my.salesforce.com",
                    "auth": {"flow": "access_token", "access_token": "${env:X}"},
                },
            },
        }))
        .unwrap()
    }

    /// An `oauth2` connection with a certificate, plus `extra` members.
    fn cert_app(extra: serde_json::Value) -> Config {
        let mut ex = json!({
            "method": "oauth2",
            "tenant": "acme.onmicrosoft.com",
            "client_id": "app-1",
            "certificate": {
                "private_key": "${env:TETHER_CONNECT_TEST_KEY}",
                "thumbprint": "A1B2C3D4E5F60718293A4B5C6D7E8F9001122334",
            },
        });
        for (k, v) in extra.as_object().unwrap() {
            ex[k] = v.clone();
        }
        config(ex)
    }

    fn set_key() {
        // SAFETY: a variable only these tests read, always to the same value.
        unsafe { std::env::set_var("TETHER_CONNECT_TEST_KEY", "-----BEGIN PRIVATE KEY-----") };
    }

    #[test]
    fn ews_oauth_with_a_certificate_is_no_longer_refused_at_connect() {
        set_key();
        let opts = exchange_options(&cert_app(json!({})), Path::new(".")).unwrap();
        let exchange::Auth::OAuth2(app) = opts.auth else {
            panic!("OAuth2 expected")
        };
        assert!(matches!(
            app.credential,
            ClientCredential::Certificate {
                thumbprint: Thumbprint::Sha1(_),
                ..
            }
        ));
        assert_eq!(
            app.token_url.as_str(),
            "https://login.microsoftonline.com/acme.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(app.scope, "https://outlook.office365.com/.default");
    }

    #[test]
    fn graph_connection_has_no_ews_options_but_builds_a_graph_client() {
        set_key();
        let graph =
            cert_app(json!({"api": "graph", "graph_url": "https://graph.microsoft.us/v1.0"}));
        let err = exchange_options(&graph, Path::new(".")).unwrap_err();
        assert_eq!(err.setting, "connections.exchange.api");
        assert!(err.message.contains("not EWS"), "{err}");
        let clock = Arc::new(crate::clock::SystemClock);
        let client = super::graph(&graph, Path::new("."), clock.clone()).unwrap();
        assert_eq!(
            client.options().scope(),
            "https://graph.microsoft.us/.default"
        );
        assert!(super::graph(&cert_app(json!({})), Path::new("."), clock).is_err());
    }

    /// The certificate credential end to end over EWS: configuration → connect → EWS client
    /// → a signed assertion at the token endpoint → the bearer token on the EWS request.
    #[tokio::test]
    async fn ews_oauth_with_a_certificate_signs_in_with_an_assertion() {
        use crate::graph::tests::fake::{Canned, Fake};
        use crate::graph::tests::{TOKEN_OK, with_token};
        let fake = Fake::start(with_token(|_| Canned::empty(400))).await;
        let config = cert_app(json!({
            "certificate": {
                "private_key": "${file:sf_test_jwt_key.pem}",
                "thumbprint": "A1B2C3D4E5F60718293A4B5C6D7E8F9001122334",
            },
            "token_url": fake.token_url(),
            "ews_url": format!("{}/EWS/Exchange.asmx", fake.base),
        }));
        let home = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let clock = crate::clock::ManualClock::new(chrono::Utc::now());
        let client = crate::exchange::EwsClient::new(
            exchange_options(&config, &home).unwrap(),
            Arc::new(clock),
        )
        .unwrap();
        let _ = client
            .get_folder(
                "ana@corp.com",
                &crate::exchange::client::FolderRef::contacts(),
            )
            .await;
        let seen = fake.seen();
        let form = seen[0].form();
        assert!(!form.contains_key("client_secret"));
        assert_eq!(form["scope"], EXCHANGE_ONLINE_SCOPE);
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(
            include_str!("../tests/fixtures/sf_test_jwt_pub.pem").as_bytes(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[fake.token_url()]);
        let jwt =
            jsonwebtoken::decode::<serde_json::Value>(&form["client_assertion"], &key, &v).unwrap();
        assert_eq!(
            jwt.header.x5t.as_deref(),
            Some("obLD1OX2BxgpOktcbX6PkAESIzQ")
        );
        assert_eq!(jwt.claims["iss"], "app-1");
        let token: serde_json::Value = serde_json::from_str(TOKEN_OK).unwrap();
        let ews = seen
            .iter()
            .find(|s| s.path == "/EWS/Exchange.asmx")
            .unwrap();
        assert_eq!(
            ews.header_values("authorization"),
            vec![format!(
                "Bearer {}",
                token["access_token"].as_str().unwrap()
            )]
        );
    }
}
