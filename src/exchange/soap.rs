//! SOAP 1.1 envelopes for EWS: request headers, response messages and faults.

use super::error::EwsError;
use super::xml::{self, Element, Limits, NS_E, NS_M, NS_SOAP, NS_T, Writer};

/// The prefixes our envelopes declare (readers must not rely on them).
pub const ENVELOPE_NS: &str = concat!(
    r#"xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" "#,
    r#"xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" "#,
    r#"xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#
);

/// Headers of one request.
#[derive(Debug, Clone)]
pub struct RequestHeaders<'a> {
    pub server_version: &'a str,
    /// The mailbox acted for (ExchangeImpersonation by PrimarySmtpAddress).
    pub impersonate: Option<&'a str>,
    /// A Windows zone id for TimeZoneContext.
    pub time_zone: Option<&'a str>,
}

/// The header elements, each of which validates on its own against the schema.
pub fn header_elements(h: &RequestHeaders<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut w = Writer::new();
    w.empty(
        "t:RequestServerVersion",
        &[
            (
                "xmlns:t",
                "http://schemas.microsoft.com/exchange/services/2006/types",
            ),
            ("Version", h.server_version),
        ],
    );
    out.push(w.finish());
    if let Some(smtp) = h.impersonate {
        let mut w = Writer::new();
        w.open(
            "t:ExchangeImpersonation",
            &[(
                "xmlns:t",
                "http://schemas.microsoft.com/exchange/services/2006/types",
            )],
        );
        w.open("t:ConnectingSID", &[]);
        w.leaf("t:PrimarySmtpAddress", smtp);
        out.push(w.finish());
    }
    if let Some(tz) = h.time_zone {
        let mut w = Writer::new();
        w.open(
            "t:TimeZoneContext",
            &[(
                "xmlns:t",
                "http://schemas.microsoft.com/exchange/services/2006/types",
            )],
        );
        w.empty("t:TimeZoneDefinition", &[("Id", tz)]);
        out.push(w.finish());
    }
    out
}

/// A request envelope around `body` (one operation element using the m:/t: prefixes).
pub fn request_envelope(h: &RequestHeaders<'_>, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 1024);
    s.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    s.push_str("<soap:Envelope ");
    s.push_str(ENVELOPE_NS);
    s.push_str("><soap:Header>");
    for hdr in header_elements(h) {
        s.push_str(&hdr);
    }
    s.push_str("</soap:Header><soap:Body>");
    s.push_str(body);
    s.push_str("</soap:Body></soap:Envelope>");
    s
}

/// Wraps a body element so it validates on its own: the operation element gets the m:/t:
/// namespace declarations (bodies are written with prefixes the envelope declares).
pub fn standalone(body: &str) -> String {
    // Insert the declarations after the first element name.
    let Some(end) = body.find([' ', '>', '/']) else {
        return body.to_string();
    };
    let (a, b) = body.split_at(end);
    format!(
        "{a} xmlns:m=\"{NS_M}\" xmlns:t=\"{NS_T}\"{b}",
        NS_M = NS_M,
        NS_T = NS_T
    )
}

/// Parsed response: the operation response element inside soap:Body, or a fault.
pub fn parse_response(bytes: &[u8]) -> Result<Element, EwsError> {
    parse_response_and_build(bytes).map(|(op, _)| op)
}

/// As `parse_response`, with the Exchange build the answer came from (`ServerVersionInfo`
/// header), when the server named it.
pub fn parse_response_and_build(
    bytes: &[u8],
) -> Result<(Element, Option<super::version::ServerBuild>), EwsError> {
    let root = xml::parse(bytes, Limits::default()).map_err(|e| EwsError::Xml(e.0))?;
    if !root.is(NS_SOAP, "Envelope") {
        return Err(EwsError::Xml(format!(
            "expected a SOAP Envelope, got {{{}}}{}",
            root.ns, root.name
        )));
    }
    let body = root
        .child(NS_SOAP, "Body")
        .ok_or_else(|| EwsError::Xml("SOAP envelope without a Body".into()))?;
    let op = body
        .first_child()
        .ok_or_else(|| EwsError::Xml("empty SOAP Body".into()))?;
    if op.is(NS_SOAP, "Fault") {
        return Err(parse_fault(op));
    }
    let build = root
        .child(NS_SOAP, "Header")
        .and_then(super::version::ServerBuild::from_soap_header);
    Ok((op.clone(), build))
}

pub fn parse_fault(f: &Element) -> EwsError {
    let faultstring = f
        .children
        .iter()
        .find(|c| c.name == "faultstring")
        .map(|c| c.text.clone())
        .unwrap_or_default();
    let detail = f.children.iter().find(|c| c.name == "detail");
    let code = detail
        .and_then(|d| d.child(NS_E, "ResponseCode"))
        .map(|c| c.text.trim().to_string())
        .or_else(|| {
            f.children
                .iter()
                .find(|c| c.name == "faultcode")
                .map(|c| c.text.trim().to_string())
        })
        .unwrap_or_else(|| "UnknownFault".into());
    let back_off_ms = detail
        .and_then(|d| {
            d.child(NS_T, "MessageXml")
                .or_else(|| d.child(NS_E, "MessageXml"))
        })
        .and_then(|mx| {
            mx.children
                .iter()
                .find(|v| v.name == "Value" && v.attr("Name") == Some("BackOffMilliseconds"))
        })
        .and_then(|v| v.text.trim().parse().ok());
    EwsError::Fault {
        code,
        message: faultstring,
        back_off_ms,
    }
}

/// One `m:*ResponseMessage`.
#[derive(Debug, Clone)]
pub struct ResponseMessage {
    pub class: String,
    pub code: String,
    pub text: String,
    pub back_off_ms: Option<u64>,
    pub element: Element,
}

impl ResponseMessage {
    pub fn is_error(&self) -> bool {
        self.class == "Error"
    }

    pub fn error(&self) -> crate::exchange::error::ItemError {
        crate::exchange::error::ItemError {
            code: self.code.clone(),
            message: self.text.clone(),
        }
    }
}

/// The response messages of an operation response, in order.
pub fn response_messages(op: &Element) -> Result<Vec<ResponseMessage>, EwsError> {
    let msgs = op
        .child(NS_M, "ResponseMessages")
        .ok_or_else(|| EwsError::Xml(format!("{} without ResponseMessages", op.name)))?;
    Ok(msgs
        .children
        .iter()
        .filter(|m| m.ns == NS_M)
        .map(|m| ResponseMessage {
            class: m.attr("ResponseClass").unwrap_or("Error").to_string(),
            code: m
                .child_text(NS_M, "ResponseCode")
                .unwrap_or("NoError")
                .trim()
                .to_string(),
            text: m.child_text(NS_M, "MessageText").unwrap_or("").to_string(),
            back_off_ms: m
                .child(NS_M, "MessageXml")
                .and_then(|mx| {
                    mx.children.iter().find(|v| {
                        v.name == "Value" && v.attr("Name") == Some("BackOffMilliseconds")
                    })
                })
                .and_then(|v| v.text.trim().parse().ok()),
            element: m.clone(),
        })
        .collect())
}

/// A ServerVersionInfo header as Exchange 2016 sends it, for the canned answers of tests.
pub fn server_version_info() -> String {
    format!(
        r#"<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" xmlns:h="{NS_T}" xmlns="{NS_T}"/>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_declares_prefixes() {
        assert_eq!(
            standalone("<m:X><t:Y/></m:X>"),
            format!("<m:X xmlns:m=\"{NS_M}\" xmlns:t=\"{NS_T}\"><t:Y/></m:X>")
        );
    }
}
