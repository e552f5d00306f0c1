//! SOAP 1.1 envelopes the emulator answers with: response envelopes with the
//! ServerVersionInfo header, faults as Exchange writes them, and response-message heads.

use super::xml::{self, NS_E, NS_M, NS_T, Writer};

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

/// A response envelope with the ServerVersionInfo header real servers send.
pub fn response_envelope(body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 512);
    s.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    s.push_str("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header>");
    s.push_str(&server_version_info());
    s.push_str("</s:Header><s:Body>");
    s.push_str(&standalone(body));
    s.push_str("</s:Body></s:Envelope>");
    s
}

pub fn server_version_info() -> String {
    format!(
        r#"<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" xmlns:h="{NS_T}" xmlns="{NS_T}"/>"#
    )
}

/// A SOAP fault as Exchange sends it (HTTP 500): faultcode, faultstring, and a detail with
/// e:ResponseCode, e:Message and, for throttling, t:MessageXml with BackOffMilliseconds.
pub fn fault_envelope(code: &str, message: &str, back_off_ms: Option<u64>) -> String {
    // Exchange puts the response code itself in faultcode, qualified by the types namespace.
    let faultcode = format!("a:{}", xml::escape(code));
    let mut s = String::new();
    s.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    s.push_str(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>"#,
    );
    s.push_str(&format!(
        r#"<faultcode xmlns:a="{NS_T}">{faultcode}</faultcode><faultstring xml:lang="en-US">{}</faultstring>"#,
        xml::escape(message)
    ));
    s.push_str(&format!(
        r#"<detail><e:ResponseCode xmlns:e="{NS_E}">{}</e:ResponseCode><e:Message xmlns:e="{NS_E}">{}</e:Message>"#,
        xml::escape(code),
        xml::escape(message)
    ));
    if let Some(ms) = back_off_ms {
        s.push_str(&format!(
            r#"<t:MessageXml xmlns:t="{NS_T}"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#
        ));
    }
    s.push_str("</detail></s:Fault></s:Body></s:Envelope>");
    s
}

/// Writes the start of one response message: class, then (for errors) MessageText,
/// ResponseCode, DescriptiveLinkKey — the order the schema requires.
pub fn write_message_head(w: &mut Writer, element: &str, code: &str, text: &str) {
    if code == "NoError" {
        w.open(element, &[("ResponseClass", "Success")]);
        w.leaf("m:ResponseCode", "NoError");
    } else {
        w.open(element, &[("ResponseClass", "Error")]);
        w.leaf("m:MessageText", text);
        w.leaf("m:ResponseCode", code);
        w.leaf("m:DescriptiveLinkKey", "0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_declares_prefixes() {
        let s = standalone("<m:GetItemResponse><m:ResponseMessages/></m:GetItemResponse>");
        assert!(s.starts_with(&format!(
            "<m:GetItemResponse xmlns:m=\"{NS_M}\" xmlns:t=\"{NS_T}\">"
        )));
    }

    #[test]
    fn fault_carries_code_message_and_back_off() {
        let f = fault_envelope("ErrorServerBusy", "busy <now>", Some(1234));
        assert!(f.contains("<e:ResponseCode xmlns:e=\"http://schemas.microsoft.com/exchange/services/2006/errors\">ErrorServerBusy</e:ResponseCode>"));
        assert!(f.contains("busy &lt;now&gt;"));
        assert!(f.contains("<t:Value Name=\"BackOffMilliseconds\">1234</t:Value>"));
    }
}
