//! The org's Outlook integration setting, read through the Metadata API: one SOAP
//! `readMetadata` of type `EmailIntegrationSettings`, full name `EmailIntegration` (the
//! `EmailIntegration.settings` component), at `/services/Soap/m/{version}` with the session
//! in `SessionHeader` (Metadata API Developer Guide: "readMetadata()",
//! https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_readMetadata.htm,
//! and "EmailIntegrationSettings",
//! https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_emailintegrationsettings.htm).
//! The call needs Modify All Data or Modify Metadata Through Metadata API Functions; without
//! it Salesforce answers the SOAP fault `sf:INSUFFICIENT_ACCESS`, which callers report as
//! "not checked" with why.

use super::{ApiError, Auth, CallKind, Result, SalesforceClient, SfError};
use crate::exchange::xml::{self, Element, Limits};

const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_MET: &str = "http://soap.sforce.com/2006/04/metadata";

/// The EmailIntegrationSettings fields tether reads. A field the answer leaves out has the
/// type's documented default (both `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailIntegration {
    /// `enableOutlookIntegration`: reps can work with Salesforce data in Outlook (and relate
    /// events to records there).
    pub outlook_integration: bool,
    /// `enableContactAndEventSync`: Lightning Sync or Einstein Activity Capture syncs
    /// contacts and events (tether does that job; both at once would sync twice).
    pub contact_and_event_sync: bool,
}

fn request(session: &str) -> String {
    let mut w = xml::Writer::new();
    w.open(
        "soapenv:Envelope",
        &[("xmlns:soapenv", NS_SOAP), ("xmlns:met", NS_MET)],
    );
    w.open("soapenv:Header", &[])
        .open("met:SessionHeader", &[])
        .leaf("met:sessionId", session)
        .close()
        .close();
    w.open("soapenv:Body", &[]).open("met:readMetadata", &[]);
    w.leaf("met:type", "EmailIntegrationSettings")
        .leaf("met:fullNames", "EmailIntegration");
    w.finish()
}

/// A SOAP fault as the error it carries (`sf:INSUFFICIENT_ACCESS` → `INSUFFICIENT_ACCESS`).
fn fault(status: u16, body: &Element) -> SfError {
    let fault = body.child(NS_SOAP, "Fault");
    let text = |name: &str| {
        fault
            .and_then(|f| f.children.iter().find(|c| c.name == name))
            .map(|c| c.text.trim().to_string())
            .unwrap_or_default()
    };
    let code = text("faultcode");
    let code = code.rsplit(':').next().unwrap_or_default().to_string();
    let message = text("faultstring");
    let message = message
        .strip_prefix(&format!("{code}: "))
        .unwrap_or(&message)
        .to_string();
    SfError::Api {
        status,
        errors: vec![ApiError {
            message,
            error_code: code,
            fields: Vec::new(),
        }],
    }
}

/// The answer to the request above: the settings, or the fault it carries.
pub(crate) fn decode(status: u16, body: &[u8]) -> Result<EmailIntegration> {
    let malformed = |detail: String| SfError::Malformed {
        context: "readMetadata EmailIntegrationSettings".into(),
        detail,
    };
    let envelope = xml::parse(body, Limits::default()).map_err(|e| malformed(e.to_string()))?;
    let body = envelope
        .child(NS_SOAP, "Body")
        .ok_or_else(|| malformed("no SOAP Body".into()))?;
    if body.child(NS_SOAP, "Fault").is_some() || status != 200 {
        return Err(fault(status, body));
    }
    let record = body
        .path(&[
            (NS_MET, "readMetadataResponse"),
            (NS_MET, "result"),
            (NS_MET, "records"),
        ])
        .ok_or_else(|| malformed("the org returned no EmailIntegrationSettings".into()))?;
    let flag = |name: &str| {
        record
            .child_text(NS_MET, name)
            .and_then(xml::parse_bool)
            .unwrap_or(false)
    };
    Ok(EmailIntegration {
        outlook_integration: flag("enableOutlookIntegration"),
        contact_and_event_sync: flag("enableContactAndEventSync"),
    })
}

/// Why the setting could not be read, in words an admin can act on.
pub fn why_not_read(e: &SfError) -> String {
    match e.error_code() {
        Some("INSUFFICIENT_ACCESS") => format!(
            "the integration user may not use the Metadata API ({e}); give it Modify All Data \
             or Modify Metadata Through Metadata API Functions (and API Enabled) to have it \
             checked"
        ),
        _ => format!("the Metadata API could not be read: {e}"),
    }
}

impl SalesforceClient {
    /// The org's EmailIntegrationSettings (one Metadata API call; once more after signing in
    /// again when the session expired).
    pub async fn email_integration(&self) -> Result<EmailIntegration> {
        let mut reauthed = false;
        loop {
            self.check_budget()?;
            let session = self.session().await?;
            let url = session
                .instance_url
                .join(&format!("/services/Soap/m/{}", self.inner.opts.api_version))
                .map_err(|e| SfError::Config(format!("Metadata API URL: {e}")))?;
            self.count(CallKind::Metadata);
            let resp = self
                .inner
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=UTF-8")
                .header("SOAPAction", "\"\"")
                .body(request(session.token.expose()))
                .send()
                .await
                .map_err(|e| SfError::Transport {
                    attempts: 1,
                    message: crate::net::describe_request_error(&e),
                })?;
            let status = resp.status().as_u16();
            let body = match self.read_body(resp).await? {
                Ok(b) => b,
                Err(message) => {
                    return Err(SfError::Transport {
                        attempts: 1,
                        message,
                    });
                }
            };
            match decode(status, &body) {
                Err(e)
                    if e.error_code() == Some("INVALID_SESSION_ID")
                        && !reauthed
                        && !matches!(self.inner.opts.auth, Auth::AccessToken { .. }) =>
                {
                    reauthed = true;
                    self.drop_session(session.generation).await;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented component, as readMetadata returns it: `result/records` of its type.
    fn read_result(component: &str) -> String {
        let fields = component
            .split_once(
                "<EmailIntegrationSettings xmlns=\"http://soap.sforce.com/2006/04/metadata\">",
            )
            .and_then(|(_, rest)| rest.split_once("</EmailIntegrationSettings>"))
            .map(|(fields, _)| fields)
            .expect("the sample is one EmailIntegrationSettings element");
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
             xmlns:soapenv=\"{NS_SOAP}\" xmlns=\"{NS_MET}\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>\
             <readMetadataResponse><result><records xsi:type=\"EmailIntegrationSettings\">\
             <fullName>EmailIntegration</fullName>{fields}</records></result>\
             </readMetadataResponse></soapenv:Body></soapenv:Envelope>"
        )
    }

    #[test]
    fn every_metadata_golden_answer_has_provenance_and_a_test() {
        crate::golden::assert_complete("salesforce-metadata", ".xml", include_str!("metadata.rs"));
    }

    #[test]
    fn the_documented_email_integration_settings_read_as_enabled() {
        let sample =
            crate::golden::read("salesforce-metadata", "doc_email_integration_settings.xml");
        let answer = read_result(&String::from_utf8(sample).unwrap());
        assert_eq!(
            decode(200, answer.as_bytes()).unwrap(),
            EmailIntegration {
                outlook_integration: true,
                contact_and_event_sync: true,
            }
        );
        // The fields the answer leaves out have the documented defaults (false).
        let off = answer
            .replace(
                "<enableOutlookIntegration>true</enableOutlookIntegration>",
                "",
            )
            .replace(
                "<enableContactAndEventSync>true</enableContactAndEventSync>",
                "<enableContactAndEventSync>false</enableContactAndEventSync>",
            );
        assert_eq!(
            decode(200, off.as_bytes()).unwrap(),
            EmailIntegration {
                outlook_integration: false,
                contact_and_event_sync: false,
            }
        );
    }

    #[test]
    fn insufficient_access_is_the_faults_code_and_says_what_permission_to_give() {
        let fault = format!(
            "<soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\" xmlns:sf=\"{NS_MET}\"><soapenv:Body>\
             <soapenv:Fault><faultcode>sf:INSUFFICIENT_ACCESS</faultcode><faultstring>\
             INSUFFICIENT_ACCESS: use of the Metadata API requires a user with the ModifyAllData \
             or ModifyMetadata permissions</faultstring></soapenv:Fault></soapenv:Body>\
             </soapenv:Envelope>"
        );
        let e = decode(500, fault.as_bytes()).unwrap_err();
        assert_eq!(e.error_code(), Some("INSUFFICIENT_ACCESS"));
        let why = why_not_read(&e);
        assert!(
            why.contains("ModifyAllData or ModifyMetadata permissions")
                && why.contains("give it Modify All Data"),
            "{why}"
        );
    }

    #[test]
    fn the_request_names_the_type_and_the_settings_component() {
        let r = request("00D!token");
        assert!(
            r.contains("<met:sessionId>00D!token</met:sessionId>"),
            "{r}"
        );
        assert!(
            r.contains(
                "<met:readMetadata><met:type>EmailIntegrationSettings</met:type>\
                 <met:fullNames>EmailIntegration</met:fullNames></met:readMetadata>"
            ),
            "{r}"
        );
    }
}
