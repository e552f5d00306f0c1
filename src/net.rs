//! Transport rules shared by every connector.

use url::{Host, Url};

/// True for hosts that never leave this machine (127.0.0.0/8, ::1, localhost).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Plain http is allowed only to loopback hosts (the local emulators); everything else must
/// be https, so credentials never cross a network in clear text.
pub fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "{url} uses plain http; use https (plain http is allowed only for loopback hosts such as the sandbox)"
        )),
        other => Err(format!("{url}: unsupported scheme `{other}`; use https")),
    }
}

/// A `Retry-After` in seconds (RFC 9110 §10.2.3), capped at five minutes; HTTP dates and
/// garbage fall back to the caller's exponential back-off.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(secs.min(300)))
}

/// Reads a PEM file of private certificate authorities to trust besides the system's roots
/// (on-premises servers signed by a company CA).
pub fn load_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    const MAX_CA_FILE: u64 = 16 * 1024 * 1024;
    let cannot = |e: std::io::Error| format!("cannot read CA file `{}`: {e}", path.display());
    // A device or a pipe would never end; a CA bundle is a few hundred kB.
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() || meta.len() > MAX_CA_FILE {
        return Err(format!(
            "CA file `{}` is not a regular file of PEM certificates under 16 MiB",
            path.display()
        ));
    }
    let pem = std::fs::read(path).map_err(cannot)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("CA file `{}` is not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("CA file `{}` holds no certificate", path.display()));
    }
    Ok(certs)
}

/// What to do about a server certificate tether does not trust.
pub const UNTRUSTED_CERTIFICATE_HINT: &str = "if the server uses a private certificate authority, set `ca_file` in this connection to a PEM file of that CA's certificate (tether always verifies certificates)";

/// The certificate problem behind a failed request, if that is what failed.
pub fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    find_certificate_problem(e)
}

fn find_certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(rustls::Error::InvalidCertificate(reason)) = err.downcast_ref::<rustls::Error>() {
        return Some(format!("{reason:?}"));
    }
    // io::Error::source() skips the error it wraps (TLS errors come wrapped twice), so
    // look inside explicitly as well as down the chain.
    if let Some(inner) = err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(found) = find_certificate_problem(inner)
    {
        return Some(found);
    }
    err.source().and_then(find_certificate_problem)
}

/// A failed request in words, without its URL (which may carry a locator) or any header:
/// what happened and the innermost cause. An untrusted server certificate says so and how
/// to fix it.
pub fn describe_request_error(e: &reqwest::Error) -> String {
    if let Some(reason) = certificate_problem(e) {
        return format!(
            "the server's TLS certificate is not trusted ({reason}); {UNTRUSTED_CERTIFICATE_HINT}"
        );
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the response"
    } else if e.is_request() {
        "request failed"
    } else {
        "HTTP error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

/// Reads a response body of at most `limit` bytes. The body is streamed and reading stops
/// at the cap, so a hostile or broken server cannot make tether hold more than that.
pub async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(BodyError::Io(describe_request_error(&e))),
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the cap.
    TooLarge,
    /// The connection failed while reading (described).
    Io(String),
}

/// A byte count for messages: `32 MiB`, `64 KiB`, `100 bytes`.
pub fn size_text(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The scheme, host and port of a URL (never its path or query), to name a server.
pub fn server_of(url: &Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) -> Result<(), String> {
        check_transport(&Url::parse(s).unwrap())
    }

    #[test]
    fn https_always_and_http_only_on_loopback() {
        assert!(check("https://mail.example.com/EWS/Exchange.asmx").is_ok());
        assert!(check("http://127.0.0.1:8080/EWS/Exchange.asmx").is_ok());
        assert!(check("http://127.9.9.9/").is_ok());
        assert!(check("http://[::1]:80/").is_ok());
        assert!(check("http://localhost:1234/").is_ok());
        assert!(check("http://mail.example.com/").is_err());
        assert!(check("http://10.0.0.1/").is_err());
        assert!(check("ftp://localhost/").is_err());
    }

    #[test]
    fn sizes_and_servers_read_well() {
        assert_eq!(size_text(32 * 1024 * 1024), "32 MiB");
        assert_eq!(size_text(64 * 1024), "64 KiB");
        assert_eq!(size_text(2048), "2 KiB");
        assert_eq!(size_text(1000), "1000 bytes");
        let u = Url::parse("https://user:pw@mail.example.com:8443/EWS/Exchange.asmx?x=1").unwrap();
        assert_eq!(server_of(&u), "https://mail.example.com:8443");
    }
}
