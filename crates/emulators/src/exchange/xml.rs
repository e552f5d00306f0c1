//! Reading request bodies: the bytes a client posts become a small tree of elements, each
//! named by namespace URI and local name (XML Namespaces 1.0; prefixes are the client's
//! business and are resolved here, by this module's own scope stack).
//!
//! A server reads whatever anyone sends, so the reader is bounded: the body size, the
//! nesting depth and the element count are capped, a document type declaration is refused
//! (and with it every entity but the five predefined ones and character references), and
//! anything malformed is an error, never a guess.

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::PrefixDeclaration;
use quick_xml::reader::Reader;
use std::collections::BTreeMap;
use std::fmt;

/// A namespace of Exchange's, by its path below schemas.microsoft.com/exchange/.
macro_rules! exchange_ns {
    ($path:literal) => {
        concat!("http://schemas.microsoft.com/exchange/", $path)
    };
}

/// EWS types.xsd: items, folders, ids and the SOAP headers' elements.
pub const NS_T: &str = exchange_ns!("services/2006/types");
/// EWS messages.xsd: the operations and their responses.
pub const NS_M: &str = exchange_ns!("services/2006/messages");
/// The detail of an EWS SOAP fault.
pub const NS_E: &str = exchange_ns!("services/2006/errors");
/// SOAP Autodiscover (GetUserSettings).
pub const NS_AD_SOAP: &str = exchange_ns!("2010/Autodiscover");
/// POX Autodiscover (autodiscover.xml): the request, and the two response schemas.
pub const NS_AD_REQ: &str = exchange_ns!("autodiscover/outlook/requestschema/2006");
pub const NS_AD_RESP_A: &str = exchange_ns!("autodiscover/outlook/responseschema/2006a");
pub const NS_AD_RESP: &str = exchange_ns!("autodiscover/responseschema/2006");
/// SOAP 1.1, and the WS-Addressing headers of SOAP Autodiscover.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_WSA: &str = "http://www.w3.org/2005/08/addressing";
/// Bound to the `xml` prefix by definition (XML Namespaces 1.0 §3).
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// How much of a request the reader accepts. Exchange caps a request at a few tens of MB
/// (maxRequestLength); nothing EWS defines nests anywhere near 64 levels.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub nesting: usize,
    pub elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nesting: 64,
            elements: 1 << 21,
            body_bytes: 32 << 20,
        }
    }
}

/// Why a body is not a readable XML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    why: String,
}

impl XmlError {
    fn new(why: impl Into<String>) -> Self {
        let why = why.into();
        XmlError { why }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request is not well-formed XML: ")?;
        f.write_str(&self.why)
    }
}

impl std::error::Error for XmlError {}

/// One element of a request. Attributes are kept by local name: EWS defines no qualified
/// attributes, and namespace declarations are resolved away, not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    /// The character data directly inside the element, pieces joined.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns == ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    pub fn children_named(&self, ns: &str, name: &str) -> impl Iterator<Item = &Element> {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        Some(self.child(ns, name)?.text.as_str())
    }

    /// The element reached by following child steps, each a (namespace, local name).
    pub fn path(&self, steps: &[(&str, &str)]) -> Option<&Element> {
        steps
            .iter()
            .try_fold(self, |at, (ns, name)| at.child(ns, name))
    }

    /// The first child element, whatever it is (the operation inside soap:Body, the one
    /// expression inside a Restriction).
    pub fn first_child(&self) -> Option<&Element> {
        self.children.first()
    }

    /// The element as a document of its own: every element whose namespace differs from its
    /// parent's declares it as the default namespace. Used to record request bodies and to
    /// hand them to the schema validator.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.serialise(None, &mut out);
        out
    }

    fn serialise(&self, inherited: Option<&str>, out: &mut String) {
        use super::emit::escape_into;
        out.push('<');
        out.push_str(&self.name);
        if inherited != Some(self.ns.as_str()) {
            out.push_str(" xmlns=\"");
            escape_into(out, &self.ns);
            out.push('"');
        }
        for (name, value) in &self.attrs {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_into(out, value);
            out.push('"');
        }
        if self.text.is_empty() && self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        escape_into(out, &self.text);
        for child in &self.children {
            child.serialise(Some(&self.ns), out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Reads one document into its root element.
pub fn parse(input: &[u8], limits: Limits) -> Result<Element, XmlError> {
    if input.len() > limits.body_bytes {
        return Err(XmlError::new(format!(
            "the body has {} bytes, more than the {} this server reads",
            input.len(),
            limits.body_bytes
        )));
    }
    let mut reader = Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut tree = TreeBuilder::new(limits);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::new(format!("at byte {}: {e}", reader.error_position())))?;
        match event {
            Event::Start(start) => tree.open(&start)?,
            Event::Empty(start) => {
                tree.open(&start)?;
                tree.close()?;
            }
            Event::End(_) => tree.close()?,
            Event::Text(t) => tree.text(&t.xml_content().map_err(encoding)?)?,
            Event::CData(c) => tree.text(&c.decode().map_err(encoding)?)?,
            Event::GeneralRef(r) => tree.text(&reference(&r)?)?,
            Event::DocType(_) => {
                return Err(XmlError::new(
                    "a document type declaration is not accepted (SOAP forbids it)",
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => return tree.finish(),
        }
    }
}

fn encoding(e: quick_xml::encoding::EncodingError) -> XmlError {
    XmlError::new(format!("bad character encoding: {e}"))
}

/// The character an entity or character reference stands for; only XML's five predefined
/// entities exist without a DTD.
fn reference(r: &BytesRef<'_>) -> Result<String, XmlError> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| XmlError::new(format!("bad character reference: {e}")))?
    {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(encoding)?;
    let c = match name.as_ref() {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        other => return Err(XmlError::new(format!("unknown entity &{other};"))),
    };
    Ok(c.to_string())
}

/// Builds the tree from reader events, resolving namespace prefixes as it goes.
struct TreeBuilder {
    limits: Limits,
    /// Open elements, innermost last, each with how many prefix bindings it declared.
    open: Vec<(Element, usize)>,
    /// In-scope prefix bindings, innermost last ("" is the default namespace).
    bindings: Vec<(String, String)>,
    seen: usize,
    root: Option<Element>,
}

impl TreeBuilder {
    fn new(limits: Limits) -> Self {
        TreeBuilder {
            limits,
            open: Vec::new(),
            bindings: Vec::new(),
            seen: 0,
            root: None,
        }
    }

    fn lookup(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(NS_XML);
        }
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| uri.as_str())
    }

    fn open(&mut self, start: &BytesStart<'_>) -> Result<(), XmlError> {
        if self.root.is_some() {
            return Err(XmlError::new("a second element after the root element"));
        }
        self.seen += 1;
        if self.seen > self.limits.elements {
            return Err(XmlError::new(format!(
                "more than {} elements",
                self.limits.elements
            )));
        }
        if self.open.len() == self.limits.nesting {
            return Err(XmlError::new(format!(
                "elements nested more than {} deep",
                self.limits.nesting
            )));
        }
        let utf8 = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|_| XmlError::new("a name that is not UTF-8"))
        };
        // Declarations first: they apply to the element's own name and attributes.
        let mut declared = 0;
        let mut attrs = BTreeMap::new();
        for attr in start.attributes() {
            let attr = attr.map_err(|e| XmlError::new(format!("bad attribute: {e}")))?;
            let value = attr
                .unescape_value()
                .map_err(|e| XmlError::new(format!("bad attribute value: {e}")))?
                .into_owned();
            match attr.key.as_namespace_binding() {
                Some(PrefixDeclaration::Default) => {
                    self.bindings.push((String::new(), value));
                    declared += 1;
                }
                Some(PrefixDeclaration::Named(prefix)) => {
                    if value.is_empty() {
                        return Err(XmlError::new("a prefix bound to the empty namespace"));
                    }
                    self.bindings.push((utf8(prefix)?, value));
                    declared += 1;
                }
                None => {
                    attrs.insert(utf8(attr.key.local_name().as_ref())?, value);
                }
            }
        }
        let qname = start.name();
        let prefix = match qname.prefix() {
            Some(p) => utf8(p.as_ref())?,
            None => String::new(),
        };
        let ns = match self.lookup(&prefix) {
            Some(uri) => uri.to_string(),
            None if prefix.is_empty() => String::new(),
            None => {
                return Err(XmlError::new(format!(
                    "the prefix {prefix}: is used but never declared"
                )));
            }
        };
        let element = Element {
            ns,
            name: utf8(qname.local_name().as_ref())?,
            attrs,
            ..Element::default()
        };
        self.open.push((element, declared));
        Ok(())
    }

    fn close(&mut self) -> Result<(), XmlError> {
        let (element, declared) = self
            .open
            .pop()
            .ok_or_else(|| XmlError::new("an end tag with no start tag"))?;
        self.bindings.truncate(self.bindings.len() - declared);
        match self.open.last_mut() {
            Some((parent, _)) => parent.children.push(element),
            None => self.root = Some(element),
        }
        Ok(())
    }

    fn text(&mut self, s: &str) -> Result<(), XmlError> {
        match self.open.last_mut() {
            Some((element, _)) => element.text.push_str(s),
            None if !s.chars().all(char::is_whitespace) => {
                return Err(XmlError::new("text outside the root element"));
            }
            None => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Element, XmlError> {
        if let Some((open, _)) = self.open.last() {
            return Err(XmlError::new(format!(
                "the body ends inside <{}>",
                open.name
            )));
        }
        self.root
            .ok_or_else(|| XmlError::new("the body holds no element"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<Element, XmlError> {
        parse(s.as_bytes(), Limits::default())
    }

    #[test]
    fn names_are_resolved_to_namespaces_whatever_the_prefixes() {
        let a = read(r#"<p:A xmlns:p="urn:a"><p:B Id="1">x &lt; &#x79;</p:B></p:A>"#).unwrap();
        let b = read(r#"<A xmlns="urn:a"><q:B xmlns:q="urn:a" Id="1">x &lt; y</q:B></A>"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.child_text("urn:a", "B"), Some("x < y"));
        assert_eq!(a.path(&[("urn:a", "B")]).unwrap().attr("Id"), Some("1"));
        // A prefix declared inside an element is gone after it.
        let c = read(r#"<A><p:B xmlns:p="urn:b"/><C/></A>"#).unwrap();
        assert!(c.children[0].is("urn:b", "B"));
        assert!(c.children[1].is("", "C"));
        assert!(read(r#"<A><p:B xmlns:p="urn:b"/><p:C/></A>"#).is_err());
    }

    #[test]
    fn hostile_or_broken_bodies_are_refused() {
        for (body, why) in [
            ("", "empty"),
            ("<a><b>", "truncated"),
            ("<a></b>", "mismatched end tag"),
            ("<a/><b/>", "two roots"),
            ("x<a/>", "text before the root"),
            ("<p:a/>", "undeclared prefix"),
            ("<a>&ent;</a>", "unknown entity"),
            ("<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>", "DTD"),
        ] {
            assert!(read(body).is_err(), "{why}: {body}");
        }
        assert!(read(&"<a>".repeat(65)).is_err(), "too deep");
        assert!(read(&format!("{}{}", "<a>".repeat(64), "</a>".repeat(64))).is_ok());
        let small = Limits {
            body_bytes: 10,
            ..Limits::default()
        };
        assert!(parse(b"<a>0123456789</a>", small).is_err(), "too large");
        let few = Limits {
            elements: 2,
            ..Limits::default()
        };
        assert!(parse(b"<a><b/><c/></a>", few).is_err(), "too many elements");
    }

    #[test]
    fn a_parsed_element_serialises_to_a_standalone_document_that_reads_back_the_same() {
        let a = read(
            r#"<m:Op xmlns:m="urn:m" xmlns:t="urn:t" K="a&amp;&quot;b"><t:X>1 &gt; 0</t:X><m:Y/></m:Op>"#,
        )
        .unwrap();
        let xml = a.to_xml();
        assert_eq!(
            xml,
            r#"<Op xmlns="urn:m" K="a&amp;&quot;b"><X xmlns="urn:t">1 &gt; 0</X><Y/></Op>"#
        );
        assert_eq!(read(&xml).unwrap(), a);
    }
}
