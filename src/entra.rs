//! Microsoft Entra ID app sign-in (OAuth 2.0 client credentials): the access token that
//! Exchange Online's EWS and Microsoft Graph both take. The app proves itself with a client
//! secret or with a certificate (a signed `client_assertion`); tokens are cached and asked for
//! again before they expire (client credentials have no refresh token).

use crate::clock::Clock;
use crate::net::{BodyError, describe_request_error, read_capped, size_text};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::Url;

/// How the app registration proves who it is.
#[derive(Debug, Clone)]
pub enum ClientCredential {
    /// A client secret (the secret's Value).
    Secret(Secret),
    /// A certificate uploaded to the app registration: its private key (PEM) signs the
    /// assertion, its thumbprint names it.
    Certificate {
        private_key_pem: Secret,
        thumbprint: Thumbprint,
    },
}

/// A certificate thumbprint as the app registration shows it: SHA-1 (40 hex digits, the
/// portal's "Thumbprint") or SHA-256 (64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thumbprint {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl Thumbprint {
    /// Parses hex digits (either case; spaces and colons between bytes are ignored).
    pub fn parse(text: &str) -> Result<Thumbprint, String> {
        let hex: String = text.chars().filter(|c| !matches!(c, ' ' | ':')).collect();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<Vec<u8>>>();
        let bad = || {
            "a certificate thumbprint is 40 (SHA-1) or 64 (SHA-256) hexadecimal digits".to_string()
        };
        match bytes {
            Some(b) if b.len() == 20 => Ok(Thumbprint::Sha1(b.try_into().map_err(|_| bad())?)),
            Some(b) if b.len() == 32 => Ok(Thumbprint::Sha256(b.try_into().map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    }
}

/// An app registration's sign-in to one resource.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub token_url: Url,
    pub client_id: String,
    pub credential: ClientCredential,
    /// `<resource>/.default`, e.g. `https://graph.microsoft.com/.default`.
    pub scope: String,
}

/// Longest token endpoint answer read: a token response is a few kB.
const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;
/// A token is asked for again this long before it expires, so no batch starts on a dying one.
const RENEW_BEFORE: chrono::Duration = chrono::Duration::minutes(5);
/// Lifetime of a client assertion; Entra accepts at most 10 minutes.
const ASSERTION_LIFETIME_SECS: i64 = 5 * 60;

/// Why no token could be had, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub kind: TokenErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenErrorKind {
    /// The endpoint refused the app's credentials or settings (an AADSTS error).
    Refused,
    /// HTTP 429 after the retries: the credentials were not refused.
    Throttled,
    /// The endpoint could not be reached, or its answer was not a token answer.
    Unavailable,
    /// The configured credential cannot be used (e.g. the private key is not an RSA key).
    Config,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TokenError {}

/// Gets and caches an app's access token.
pub struct TokenClient {
    creds: AppCredentials,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    max_retries: u32,
    cached: tokio::sync::Mutex<Option<(Secret, DateTime<Utc>)>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient")
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// `http` is the caller's client (its trusted roots and timeouts); `max_retries` bounds
    /// the retries of a throttled (429) token request.
    pub fn new(
        creds: AppCredentials,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        max_retries: u32,
    ) -> Self {
        TokenClient {
            creds,
            http,
            clock,
            max_retries,
            cached: tokio::sync::Mutex::new(None),
            requests: AtomicU64::new(0),
        }
    }

    pub fn token_url(&self) -> &Url {
        &self.creds.token_url
    }

    /// Token requests sent so far (retries count).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The access token: the cached one unless it expires within five minutes or
    /// `force_new` (the resource answered 401: the token was revoked).
    pub async fn access_token(&self, force_new: bool) -> Result<Secret, TokenError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        if !force_new
            && let Some((token, expires)) = cached.as_ref()
            && *expires - RENEW_BEFORE > now
        {
            return Ok(token.clone());
        }
        let (token, expires_in) = self.request_token().await?;
        *cached = Some((token.clone(), now + chrono::Duration::seconds(expires_in)));
        Ok(token)
    }

    async fn request_token(&self) -> Result<(Secret, i64), TokenError> {
        let url = &self.creds.token_url;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // A fresh assertion per request: each has its own jti and time window.
            let form = self.form()?;
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.expose())).collect();
            self.requests.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let resp = self
                .http
                .post(url.clone())
                .form(&fields)
                .send()
                .await
                .map_err(|e| unavailable(format!("{url}: {}", describe_request_error(&e))))?;
            let status = resp.status().as_u16();
            tracing::debug!(
                method = "POST",
                path = url.path(),
                status,
                ms = started.elapsed().as_millis() as u64,
                attempt,
                "token request"
            );
            if status == 429 {
                // Throttled, not refused: wait as asked, a bounded number of times.
                if attempt > self.max_retries {
                    return Err(TokenError {
                        kind: TokenErrorKind::Throttled,
                        message: format!(
                            "{url} is throttling tether's sign-in (HTTP 429 Too Many Requests, \
                             {attempt} attempt(s)); the credentials were not refused: wait a few \
                             minutes and run again"
                        ),
                    });
                }
                let wait = crate::net::retry_after(resp.headers())
                    .unwrap_or_else(|| Duration::from_secs((1u64 << (attempt - 1).min(6)).min(60)));
                self.clock.sleep(wait).await;
                continue;
            }
            let body = read_capped(resp, MAX_TOKEN_RESPONSE_BYTES)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge => unavailable(format!(
                        "{url} answered with more than {} (a token answer is a few kB)",
                        size_text(MAX_TOKEN_RESPONSE_BYTES)
                    )),
                    BodyError::Io(m) => unavailable(format!("{url}: {m}")),
                })?;
            return token_answer(status, &body).map_err(|mut e| {
                e.message = self.redact(format!("{url} {}", e.message));
                e
            });
        }
    }

    /// The form fields of a token request (values kept secret up to the request body).
    fn form(&self) -> Result<Vec<(&'static str, Secret)>, TokenError> {
        let c = &self.creds;
        let mut form = vec![
            ("grant_type", Secret::new("client_credentials")),
            ("client_id", Secret::new(c.client_id.clone())),
            ("scope", Secret::new(c.scope.clone())),
        ];
        match &c.credential {
            ClientCredential::Secret(secret) => form.push(("client_secret", secret.clone())),
            ClientCredential::Certificate {
                private_key_pem,
                thumbprint,
            } => {
                let jwt = client_assertion(
                    &c.token_url,
                    &c.client_id,
                    private_key_pem,
                    thumbprint,
                    self.clock.now(),
                )?;
                form.push((
                    "client_assertion_type",
                    Secret::new("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ));
                form.push(("client_assertion", jwt));
            }
        }
        Ok(form)
    }

    /// An error text with the client secret, should an endpoint echo it, blanked out.
    fn redact(&self, text: String) -> String {
        match &self.creds.credential {
            ClientCredential::Secret(s) if s.expose().len() >= 4 => text.replace(s.expose(), "***"),
            _ => text,
        }
    }
}

fn unavailable(message: String) -> TokenError {
    TokenError {
        kind: TokenErrorKind::Unavailable,
        message,
    }
}

/// The signed client assertion (certificate-credentials): PS256 with `x5t#S256` for a SHA-256
/// thumbprint, RS256 with `x5t` for a SHA-1 one (the older form Entra still takes);
/// aud = token URL, iss = sub = client id, a fresh jti, valid from now for five minutes.
pub fn client_assertion(
    token_url: &Url,
    client_id: &str,
    private_key_pem: &Secret,
    thumbprint: &Thumbprint,
    now: DateTime<Utc>,
) -> Result<Secret, TokenError> {
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let config = |message: &str| TokenError {
        kind: TokenErrorKind::Config,
        message: message.to_string(),
    };
    let key = EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes()).map_err(|_| {
        config(
            "`certificate.private_key` is not an RSA private key in PEM form \
             (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
        )
    })?;
    let mut header = match thumbprint {
        Thumbprint::Sha256(t) => {
            let mut h = Header::new(Algorithm::PS256);
            h.x5t_s256 = Some(b64(t));
            h
        }
        Thumbprint::Sha1(t) => {
            let mut h = Header::new(Algorithm::RS256);
            h.x5t = Some(b64(t));
            h
        }
    };
    header.typ = Some("JWT".into());
    let nbf = now.timestamp();
    let claims = serde_json::json!({
        "aud": token_url.as_str(),
        "iss": client_id,
        "sub": client_id,
        "jti": random_guid(),
        "nbf": nbf,
        "iat": nbf,
        "exp": nbf + ASSERTION_LIFETIME_SECS,
    });
    jsonwebtoken::encode(&header, &claims, &key)
        .map(Secret::new)
        .map_err(|e| config(&format!("cannot sign the client assertion: {e}")))
}

/// A random (version 4) GUID, for the assertion's `jti`.
fn random_guid() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // The system's random source failing leaves zeros: the jti is then only less unique.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A token endpoint's answer: the access token and its lifetime in seconds, or what is
/// wrong and what to fix (the caller adds the endpoint to the message).
pub fn token_answer(status: u16, body: &[u8]) -> Result<(Secret, i64), TokenError> {
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| unavailable(format!("answered HTTP {status} without JSON")))?;
    if !(200..300).contains(&status) {
        return Err(refusal(status, &body));
    }
    let access = body["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unavailable("answered without an access_token".into()))?;
    // Bounded: the lifetime comes from the network.
    let expires_in = body["expires_in"].as_i64().unwrap_or(3600).clamp(0, 86_400);
    Ok((Secret::new(access), expires_in))
}

/// An error answer (`error`, `error_description` "AADSTSnnnn: text\r\nTrace ID: …",
/// `error_codes`) in words that say what to fix.
fn refusal(status: u16, body: &serde_json::Value) -> TokenError {
    let error = body["error"].as_str().unwrap_or("unknown error");
    let description = body["error_description"].as_str().unwrap_or("");
    // The first line only: the rest is trace ids and timestamps.
    let first_line = description.lines().next().unwrap_or("").trim();
    let code = body["error_codes"][0].as_u64().or_else(|| {
        let digits: String = first_line
            .strip_prefix("AADSTS")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    let fix = code.and_then(aadsts_fix);
    let mut message = format!("refused the client credentials: HTTP {status} {error}");
    if !first_line.is_empty() {
        message.push_str(&format!(" ({first_line})"));
    } else if let Some(code) = code {
        message.push_str(&format!(" (AADSTS{code})"));
    }
    if let Some(fix) = fix {
        message.push_str(&format!("; {fix}"));
    }
    TokenError {
        kind: TokenErrorKind::Refused,
        message,
    }
}

/// What to do about an AADSTS error code tether knows.
fn aadsts_fix(code: u64) -> Option<&'static str> {
    Some(match code {
        7000215 => {
            "the client secret is wrong: set `client_secret` to the secret's Value (not its \
             Secret ID) from the app registration's Certificates & secrets"
        }
        7000222 => {
            "the client secret has expired: add a new client secret to the app registration \
             (Certificates & secrets) and update `client_secret`"
        }
        90002 | 900023 => {
            "the tenant was not found: set `tenant` to the directory (tenant) id or a verified \
             domain such as contoso.onmicrosoft.com"
        }
        700016 => {
            "no such application in this tenant: check `client_id` (the Application (client) \
             id) and `tenant`"
        }
        70011 => "the scope was refused: the app asks for `<resource>/.default`; check `graph_url`",
        700027 => {
            "the certificate assertion was refused (signature, key not found or key expired): \
             check that `certificate.private_key` belongs to the certificate uploaded to the app \
             registration, that `certificate.thumbprint` is that certificate's thumbprint, and \
             that the certificate has not expired"
        }
        700024 => {
            "the client assertion is outside its time range: check this machine's clock (NTP)"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_both_lengths_and_refuse_others() {
        let sha1 = "A1B2C3D4E5F60718293A4B5C6D7E8F9001122334";
        assert!(matches!(Thumbprint::parse(sha1), Ok(Thumbprint::Sha1(_))));
        let sha256 = "a1".repeat(32);
        assert!(matches!(
            Thumbprint::parse(&sha256),
            Ok(Thumbprint::Sha256(_))
        ));
        assert!(matches!(
            Thumbprint::parse("a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90:01:12:23:34"),
            Ok(Thumbprint::Sha1(_))
        ));
        assert!(Thumbprint::parse("abc").is_err());
        assert!(Thumbprint::parse(&"zz".repeat(20)).is_err());
        assert!(Thumbprint::parse(&"a".repeat(41)).is_err());
    }

    #[test]
    fn random_guids_are_version_4_and_differ() {
        let (a, b) = (random_guid(), random_guid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
