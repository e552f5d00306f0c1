//! The Exchange build a mailbox answers from: the `ServerVersionInfo` SOAP header of every
//! EWS response (MajorVersion, MinorVersion, MajorBuildNumber, MinorBuildNumber), and
//! whether tether supports it. EWS as tether uses it (SyncFolderItems with the Exchange2013_SP1
//! schema, impersonation by PrimarySmtpAddress) needs Exchange 2013 SP1 (15.0.847) or later;
//! Exchange Online answers with 15.20 and up.

use super::xml::{Element, NS_T};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerBuild {
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub revision: u32,
}

/// Exchange 2013 SP1: the first build tether supports.
const OLDEST_SUPPORTED: ServerBuild = ServerBuild {
    major: 15,
    minor: 0,
    build: 847,
    revision: 0,
};

impl ServerBuild {
    /// From a response's `ServerVersionInfo` header element.
    pub fn from_header(el: &Element) -> Option<Self> {
        let n = |name: &str| el.attr(name)?.trim().parse::<u32>().ok();
        Some(ServerBuild {
            major: n("MajorVersion")?,
            minor: n("MinorVersion")?,
            build: n("MajorBuildNumber").unwrap_or(0),
            revision: n("MinorBuildNumber").unwrap_or(0),
        })
    }

    /// From a SOAP envelope's Header, when it carries `ServerVersionInfo`.
    pub fn from_soap_header(header: &Element) -> Option<Self> {
        header
            .child(NS_T, "ServerVersionInfo")
            .and_then(Self::from_header)
    }

    /// `15.1.2507.6`, as stored in the state.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
        let mut next = || parts.next().flatten();
        Some(ServerBuild {
            major: next()?,
            minor: next()?,
            build: next().unwrap_or(0),
            revision: next().unwrap_or(0),
        })
    }

    pub fn supported(&self) -> bool {
        *self >= OLDEST_SUPPORTED
    }

    /// The product a build belongs to, as admins know it.
    pub fn product(&self) -> &'static str {
        match (self.major, self.minor) {
            (15, m) if m >= 20 => "Exchange Online",
            (15, 2) => "Exchange Server 2019",
            (15, 1) => "Exchange Server 2016",
            (15, 0) if self.build >= 847 => "Exchange Server 2013 SP1 or later",
            (15, 0) => "Exchange Server 2013 before SP1",
            (14, _) => "Exchange Server 2010",
            (8, _) => "Exchange Server 2007",
            (m, _) if m > 15 => "Exchange (newer than tether knows)",
            _ => "an Exchange version tether does not know",
        }
    }
}

/// The status check "Mailbox on a supported Exchange version", in Exchange's terms: what
/// the build a mailbox answered from means for tether.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildVerdict {
    Supported(String),
    Unsupported {
        detail: String,
        remediation: &'static str,
    },
    /// Not judged: the build could not be read, or the mailbox named none.
    Unknown(String),
}

impl BuildVerdict {
    /// The verdict on `build` as the mailbox reported it (`None`: it named none).
    pub fn of(build: Option<&str>) -> BuildVerdict {
        let Some(text) = build else {
            return BuildVerdict::Unknown(
                "Exchange did not name its version (no ServerVersionInfo header)".into(),
            );
        };
        match ServerBuild::parse(text) {
            Some(b) if b.supported() => {
                BuildVerdict::Supported(format!("{} (build {b})", b.product()))
            }
            Some(b) => BuildVerdict::Unsupported {
                detail: format!("{} (build {b})", b.product()),
                remediation: "Move the mailbox to Exchange Server 2013 SP1 or later, or to \
                              Exchange Online: tether's EWS calls need Exchange 2013 SP1 at \
                              least.",
            },
            None => {
                BuildVerdict::Unknown(format!("Exchange named a build tether cannot read: {text}"))
            }
        }
    }
}

impl std::fmt::Display for ServerBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.build, self.revision
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_2013_sp1_and_later_are_supported() {
        let b = |s: &str| ServerBuild::parse(s).unwrap();
        assert!(b("15.0.847.32").supported());
        assert!(!b("15.0.620.29").supported(), "2013 RTM/CU1-3 predate SP1");
        assert!(!b("14.3.123.4").supported());
        assert!(b("15.1.2507.6").supported());
        assert!(b("15.20.7452.28").supported());
        assert_eq!(b("15.20.7452.28").product(), "Exchange Online");
        assert_eq!(b("14.3.123.4").product(), "Exchange Server 2010");
        assert_eq!(b("15.1.2507.6").to_string(), "15.1.2507.6");
        assert_eq!(ServerBuild::parse("fifteen"), None);
    }

    #[test]
    fn the_header_the_emulator_sends_reads_as_exchange_2016() {
        let envelope = format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>{}</s:Header><s:Body/></s:Envelope>"#,
            super::super::soap::server_version_info()
        );
        let root =
            super::super::xml::parse(envelope.as_bytes(), super::super::xml::Limits::default())
                .unwrap();
        let header = root.child(super::super::xml::NS_SOAP, "Header").unwrap();
        let build = ServerBuild::from_soap_header(header).unwrap();
        assert_eq!(build.to_string(), "15.1.2507.6");
        assert_eq!(build.product(), "Exchange Server 2016");
    }
}
