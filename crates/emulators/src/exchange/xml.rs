//! Minimal XML core shared by the EWS client and the emulator: a writer that escapes, and a
//! bounded, namespace-aware parser into a small element tree.
//!
//! The parser works by namespace URI, never by prefix, and treats everything from the wire
//! as hostile: DTDs (and with them entity declarations) are refused, the input size and the
//! nesting depth are capped, and unknown entity references are errors.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use std::fmt;

pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const NS_T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const NS_E: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";
pub const NS_AD_REQ: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
pub const NS_AD_RESP: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
pub const NS_AD_RESP_A: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
pub const NS_AD_SOAP: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
pub const NS_WSA: &str = "http://www.w3.org/2005/08/addressing";
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Limits applied while parsing. The defaults are far above anything EWS legitimately sends
/// for one batch (EWS itself caps requests at a few tens of MB) and far below what would
/// hurt the process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 * 1024 * 1024,
            max_depth: 64,
            max_elements: 2_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(pub String);

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid XML: {}", self.0)
    }
}

impl std::error::Error for XmlError {}

/// One element: namespace URI, local name, attributes (local name → value; attributes in a
/// namespace are kept by local name too, EWS attributes are unqualified), children, and the
/// concatenated text directly inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// Follows a path of (namespace, local name) steps.
    pub fn path(&self, steps: &[(&str, &str)]) -> Option<&Element> {
        let mut cur = self;
        for (ns, name) in steps {
            cur = cur.child(ns, name)?;
        }
        Some(cur)
    }

    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| c.text.as_str())
    }

    /// Serialises the element with a default-namespace declaration wherever the namespace
    /// changes, so the output stands alone (used to record and validate bodies).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_into(&mut out, "");
        out
    }

    fn write_into(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns=\"");
            out.push_str(&escape(&self.ns));
            out.push('"');
        }
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape(v));
            out.push('"');
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for c in &self.children {
            c.write_into(out, &self.ns);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    /// The first element child, whatever its name (e.g. the operation inside soap:Body).
    pub fn first_child(&self) -> Option<&Element> {
        self.children.first()
    }
}

/// xs:boolean: true, false, 1 and 0 (with surrounding whitespace).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

pub fn parse(input: &[u8], limits: Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError(format!(
            "document of {} bytes exceeds the limit of {} bytes",
            input.len(),
            limits.max_bytes
        )));
    }
    let mut reader = NsReader::from_reader(input);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let (resolved, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| XmlError(e.to_string()))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError("content after the root element".into()));
                }
                count += 1;
                if count > limits.max_elements {
                    return Err(XmlError("too many elements".into()));
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError(format!(
                        "nesting deeper than {} levels",
                        limits.max_depth
                    )));
                }
                let ns = match resolved {
                    ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => {
                        return Err(XmlError(format!(
                            "undeclared namespace prefix `{}`",
                            String::from_utf8_lossy(&p)
                        )));
                    }
                };
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for a in start.attributes() {
                    let a = a.map_err(|e| XmlError(e.to_string()))?;
                    let key = a.key;
                    // Namespace declarations are not attributes of the data model.
                    if key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let local = String::from_utf8_lossy(key.local_name().as_ref()).into_owned();
                    let value = a
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|e| XmlError(e.to_string()))?
                        .into_owned();
                    attrs.push((local, value));
                }
                stack.push(Element {
                    ns,
                    name,
                    attrs,
                    children: Vec::new(),
                    text: String::new(),
                });
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t
                    .xml_content()
                    .map_err(|e| XmlError(format!("bad text: {e}")))?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                // quick-xml reports entity references separately; only the predefined
                // entities and character references are allowed (no DTD, no custom entities).
                let name = r.decode().map_err(|e| XmlError(e.to_string()))?;
                let ch = if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| XmlError(format!("bad character reference: {e}")))?
                {
                    c.to_string()
                } else {
                    match name.as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => {
                            return Err(XmlError(format!("undeclared entity `&{other};`")));
                        }
                    }
                };
                push_text(&mut stack, &ch)?;
            }
            Event::CData(c) => {
                let s = String::from_utf8_lossy(&c).into_owned();
                push_text(&mut stack, &s)?;
            }
            Event::DocType(_) => {
                return Err(XmlError(
                    "DTDs are not allowed (EWS never sends one)".into(),
                ));
            }
            Event::Empty(_) => unreachable_empty()?,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("truncated document (unclosed elements)".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

// `expand_empty_elements` turns every empty element into Start + End.
fn unreachable_empty() -> Result<(), XmlError> {
    Err(XmlError("unexpected empty-element event".into()))
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(XmlError("text outside the root element".into())),
    }
}

/// Escapes text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped rather than sent broken.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A small streaming writer: `open`/`close` pairs, `leaf` for text elements. Names carry
/// their prefix (`t:Subject`); the envelope declares the prefixes.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    open: Vec<String>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.tag_start(name, attrs);
        self.out.push('>');
        self.open.push(name.to_string());
        self
    }

    pub fn close(&mut self) -> &mut Self {
        if let Some(name) = self.open.pop() {
            self.out.push_str("</");
            self.out.push_str(&name);
            self.out.push('>');
        }
        self
    }

    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.tag_start(name, attrs);
        self.out.push_str("/>");
        self
    }

    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.leaf_attrs(name, &[], text)
    }

    pub fn leaf_attrs(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        self.tag_start(name, attrs);
        self.out.push('>');
        self.out.push_str(&escape(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// A leaf only when there is a value.
    pub fn opt_leaf(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    pub fn raw(&mut self, xml: &str) -> &mut Self {
        self.out.push_str(xml);
        self
    }

    fn tag_start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape(v));
            self.out.push('"');
        }
    }

    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_namespace_not_prefix() {
        let a = parse(
            br#"<a:Env xmlns:a="urn:x"><a:B q="1">hi &amp; &#65;</a:B></a:Env>"#,
            Limits::default(),
        )
        .unwrap();
        let b = parse(
            br#"<Env xmlns="urn:x"><zz:B xmlns:zz="urn:x" q="1">hi &amp; &#65;</zz:B></Env>"#,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.child_text("urn:x", "B"), Some("hi & A"));
        assert_eq!(a.child("urn:x", "B").unwrap().attr("q"), Some("1"));
    }

    #[test]
    fn booleans_accept_one_and_zero() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool(" false "), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn hostile_input_is_an_error() {
        let l = Limits::default();
        assert!(parse(b"<a><b>", l).is_err(), "truncated");
        assert!(parse(b"", l).is_err(), "empty");
        assert!(
            parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", l).is_err(),
            "dtd"
        );
        assert!(parse(b"<a>&x;</a>", l).is_err(), "undeclared entity");
        assert!(parse(b"<p:a/>", l).is_err(), "unbound prefix");
        assert!(parse(b"<a></b>", l).is_err(), "mismatched");
        let deep = "<a>".repeat(100_000);
        assert!(parse(deep.as_bytes(), l).is_err(), "deep");
    }

    #[test]
    fn writer_escapes() {
        let mut w = Writer::new();
        w.open("x", &[("k", "a\"b")]).leaf("y", "<&>").close();
        assert_eq!(w.finish(), r#"<x k="a&quot;b"><y>&lt;&amp;&gt;</y></x>"#);
    }
}
