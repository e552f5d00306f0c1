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

/// Reads a PEM file of private certificate authorities to trust besides the system's roots
/// (on-premises servers signed by a company CA).
pub fn load_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read CA file `{}`: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("CA file `{}` is not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("CA file `{}` holds no certificate", path.display()));
    }
    Ok(certs)
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
}
