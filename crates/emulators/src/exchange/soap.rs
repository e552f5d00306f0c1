//! SOAP 1.1 envelopes the emulator answers with: an operation's response element (which
//! declares the m: and t: prefixes itself, so the body validates on its own), the envelope
//! with the ServerVersionInfo header Exchange sends, faults as Exchange writes them, and
//! the head of each response message.

use super::emit::Out;
use super::xml::{NS_E, NS_M, NS_SOAP, NS_T};

/// A writer with an operation's response element started, m: and t: declared on it.
pub fn answer(response_element: &str) -> Out {
    let mut w = Out::new();
    w.start(response_element)
        .attr("xmlns:m", NS_M)
        .attr("xmlns:t", NS_T);
    w
}

const XML_DECL: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// The ServerVersionInfo header of an Exchange 2016 CU (Version V2017_07_11).
fn server_version_info(w: &mut Out) {
    w.start("h:ServerVersionInfo").attrs(&[
        ("MajorVersion", "15"),
        ("MinorVersion", "1"),
        ("MajorBuildNumber", "2507"),
        ("MinorBuildNumber", "6"),
        ("Version", "V2017_07_11"),
        ("xmlns:h", NS_T),
        ("xmlns", NS_T),
    ]);
    w.end();
}

/// The envelope around an operation's response element (from `answer`).
pub fn response_envelope(body: &str) -> String {
    let mut w = Out::new();
    w.start("s:Envelope").attr("xmlns:s", NS_SOAP);
    w.start("s:Header");
    server_version_info(&mut w);
    w.end().start("s:Body").fragment(body);
    format!("{XML_DECL}{}", w.finish())
}

/// A SOAP fault as Exchange sends it (HTTP 500): faultcode (the response code, qualified by
/// the types namespace), faultstring, and a detail with e:ResponseCode, e:Message and, for
/// throttling, t:MessageXml with BackOffMilliseconds.
pub fn fault_envelope(code: &str, message: &str, back_off_ms: Option<u64>) -> String {
    let mut w = Out::new();
    w.start("s:Envelope").attr("xmlns:s", NS_SOAP);
    w.start("s:Body").start("s:Fault");
    w.start("faultcode")
        .attr("xmlns:a", NS_T)
        .text(&format!("a:{code}"))
        .end();
    w.start("faultstring")
        .attr("xml:lang", "en-US")
        .text(message)
        .end();
    w.start("detail");
    for (name, value) in [("e:ResponseCode", code), ("e:Message", message)] {
        w.start(name).attr("xmlns:e", NS_E).text(value).end();
    }
    if let Some(ms) = back_off_ms {
        w.start("t:MessageXml").attr("xmlns:t", NS_T);
        w.start("t:Value")
            .attr("Name", "BackOffMilliseconds")
            .text(&ms.to_string())
            .end();
        w.end();
    }
    format!("{XML_DECL}{}", w.finish())
}

/// Starts one response message: ResponseClass, then for an error MessageText, ResponseCode
/// and DescriptiveLinkKey (ResponseMessageType's order), for success the NoError code.
pub fn write_message_head(w: &mut Out, element: &str, code: &str, text: &str) {
    let failed = code != "NoError";
    w.start(element)
        .attr("ResponseClass", if failed { "Error" } else { "Success" });
    if failed {
        w.value("m:MessageText", text);
    }
    w.value("m:ResponseCode", code);
    if failed {
        w.value("m:DescriptiveLinkKey", "0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_declares_its_prefixes_and_sits_in_the_envelope_body() {
        let mut w = answer("m:GetItemResponse");
        w.start("m:ResponseMessages").end();
        let env = response_envelope(&w.finish());
        assert!(env.starts_with(XML_DECL), "{env}");
        assert!(env.contains(&format!(
            r#"<s:Body><m:GetItemResponse xmlns:m="{NS_M}" xmlns:t="{NS_T}"><m:ResponseMessages/></m:GetItemResponse></s:Body></s:Envelope>"#
        )), "{env}");
        assert!(
            env.contains("<h:ServerVersionInfo MajorVersion=\"15\""),
            "{env}"
        );
    }

    #[test]
    fn fault_carries_code_message_and_back_off() {
        let f = fault_envelope("ErrorServerBusy", "busy <now>", Some(1234));
        assert!(f.contains("<e:ResponseCode xmlns:e=\"http://schemas.microsoft.com/exchange/services/2006/errors\">ErrorServerBusy</e:ResponseCode>"));
        assert!(f.contains("busy &lt;now&gt;"));
        assert!(f.contains("<t:Value Name=\"BackOffMilliseconds\">1234</t:Value>"));
        assert!(f.contains(">a:ErrorServerBusy</faultcode>"), "{f}");
    }
}
