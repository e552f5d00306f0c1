//! The Metadata API's SOAP endpoint (`POST /services/Soap/m/{version}`), for the one call
//! an integration reads settings with: `readMetadata(type, fullNames)` ("readMetadata()",
//! Metadata API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_readMetadata.htm).
//! The session id travels in `SessionHeader/sessionId`; the answer is
//! `readMetadataResponse/result/records` with `xsi:type` naming the type ("ReadResult").
//! The user needs Modify All Data or Modify Metadata Through Metadata API Functions; without
//! it the call is a SOAP fault `sf:INSUFFICIENT_ACCESS` (HTTP 500). Settings types are read
//! by the settings name without its suffix (`EmailIntegration` for EmailIntegrationSettings,
//! as its page names the `EmailIntegration.settings` file); the org keeps only
//! EmailIntegrationSettings (https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_emailintegrationsettings.htm).

use super::Shared;
use crate::exchange::emit::escape;
use crate::exchange::xml::{self, Limits};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_MET: &str = "http://soap.sforce.com/2006/04/metadata";

/// The org's EmailIntegrationSettings fields as the Setup pages leave a new org: the
/// defaults the type's page gives (the Outlook integration off, contact and event sync off).
pub(crate) fn default_email_integration() -> BTreeMap<String, bool> {
    [
        ("doesEmailLogAsEmailMessageInOutlook", true),
        ("enableContactAndEventSync", false),
        ("enableEmailTrackingInMobile", true),
        ("enableGmailIntegration", true),
        ("enableOutlookIntegration", false),
        ("enableProductivityFeatures", false),
        ("enableSupplementalContactInfoInMobile", false),
        ("isLayoutCustomizationAllowed", true),
        ("shouldUseTrustedDomainsList", true),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    r
}

fn fault(code: &str, message: &str) -> Response {
    xml_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\" \
             xmlns:sf=\"{NS_MET}\"><soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>\
             <faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
            escape(&format!("{code}: {message}"))
        ),
    )
}

pub(super) async fn soap(
    State(app): State<Arc<Shared>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    let newest: f64 = app.version.parse().unwrap_or(0.0);
    if version
        .parse::<f64>()
        .map_or(true, |v| v < 30.0 || v > newest)
    {
        return fault(
            "UNKNOWN_EXCEPTION",
            &format!("the Metadata API has no version {version} here"),
        );
    }
    let Ok(envelope) = xml::parse(&body, Limits::default()) else {
        return fault("INVALID_XML", "the request is not well-formed XML");
    };
    let session = envelope
        .path(&[
            (NS_SOAP, "Header"),
            (NS_MET, "SessionHeader"),
            (NS_MET, "sessionId"),
        ])
        .map(|s| s.text.trim().to_string())
        .unwrap_or_default();
    let call = envelope
        .child(NS_SOAP, "Body")
        .and_then(|b| b.first_child())
        .cloned();
    let now = app.clock.now();
    let mut org = app.org();
    *org.served.entry("metadata".into()).or_default() += 1;
    match org.sessions.get(&session) {
        Some(s) if s.valid => {}
        _ => {
            return fault(
                "INVALID_SESSION_ID",
                "Invalid Session ID found in SessionHeader",
            );
        }
    }
    org.refresh_usage(now);
    if org.api_used >= org.api_max {
        return fault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
    }
    org.record_call(now);
    let Some(call) = call.filter(|c| c.is(NS_MET, "readMetadata")) else {
        return fault("UNKNOWN_EXCEPTION", "this server answers readMetadata only");
    };
    if !org.metadata_access {
        return fault(
            "INSUFFICIENT_ACCESS",
            "use of the Metadata API requires a user with the ModifyAllData or ModifyMetadata \
             permissions",
        );
    }
    let kind = call.child_text(NS_MET, "type").unwrap_or("").trim();
    let names: Vec<&str> = call
        .children_named(NS_MET, "fullNames")
        .map(|n| n.text.trim())
        .collect();
    let mut records = String::new();
    for name in names {
        if kind == "EmailIntegrationSettings" && name == "EmailIntegration" {
            records.push_str(
                "<records xsi:type=\"EmailIntegrationSettings\"><fullName>EmailIntegration</fullName>",
            );
            for (field, on) in &org.email_integration {
                records.push_str(&format!("<{field}>{on}</{field}>"));
            }
            records.push_str("</records>");
        }
        // A name the org has no component for reads as nothing, as readMetadata answers it.
    }
    xml_response(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\" \
             xmlns=\"{NS_MET}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
             <soapenv:Body><readMetadataResponse><result>{records}</result></readMetadataResponse>\
             </soapenv:Body></soapenv:Envelope>"
        ),
    )
}
