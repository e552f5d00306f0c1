//! YAML to a tree that remembers where every node came from, so that schema and rule
//! findings can name file:line:column. Input is untrusted: size, depth and alias expansion
//! are bounded, duplicate keys are refused, and nothing here can panic on bad input.

use super::diag::Diagnostic;
use super::source::{FileId, SourceFile, Span};
use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};
use serde_json::{Map, Number, Value};

/// Configuration files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting accepted; real configurations use fewer than ten levels.
const MAX_DEPTH: usize = 64;
/// Nodes one file may expand to, aliases included (stops "billion laughs").
const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    /// The entry of a mapping by key.
    pub fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        self.entries().iter().find(|(k, _)| k.as_str() == Some(key))
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Follows a JSON pointer (`/a/0/b`). With `key` true, a final mapping step yields the
    /// key node instead of the value (to point at `pasword:` rather than its value).
    pub fn lookup(&self, pointer: &str, key: bool) -> Option<&Node> {
        let segments: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let mut node = self;
        for (i, seg) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            node = match &node.kind {
                Kind::Map(entries) => {
                    let (k, v) = entries.iter().find(|(k, _)| key_text(k) == *seg)?;
                    if last && key { k } else { v }
                }
                Kind::Seq(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The JSON value the schema validates and serde deserializes.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::Number((*i).into()),
            Kind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    map.insert(key_text(k), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    fn count(&self) -> usize {
        1 + match &self.kind {
            Kind::Seq(items) => items.iter().map(Node::count).sum(),
            Kind::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }
}

/// A mapping key as text: configuration keys are strings, but `1:` or `true:` still name
/// a key the user can read in the message.
pub fn key_text(node: &Node) -> String {
    match &node.kind {
        Kind::Str(s) => s.clone(),
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => f.to_string(),
        Kind::Bool(b) => b.to_string(),
        Kind::Null => "null".into(),
        Kind::Seq(_) | Kind::Map(_) => "<complex key>".into(),
    }
}

/// The finding for a file of `len` bytes, over `MAX_FILE_BYTES`.
pub fn too_large(len: u64) -> String {
    format!(
        "file is {:.1} MiB; configuration files are limited to {} MiB",
        len as f64 / (1024.0 * 1024.0),
        MAX_FILE_BYTES / (1024 * 1024)
    )
}

/// Checks the raw bytes of a file before any YAML parsing: size, text encoding.
pub fn decode(bytes: &[u8]) -> Result<String, (usize, String)> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err((0, too_large(bytes.len() as u64)));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err((
                e.valid_up_to(),
                "file is not valid UTF-8 text; save it as UTF-8".into(),
            ));
        }
    };
    if let Some(i) = text.find('\0') {
        return Err((i, "file contains a NUL byte: it is binary, not YAML".into()));
    }
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_string())
}

/// A collection being built.
struct Frame {
    start: Span,
    anchor: usize,
    kind: Kind,
    /// A mapping key read whose value has not come yet.
    pending_key: Option<Node>,
}

struct Builder<'f> {
    file_id: FileId,
    file: &'f SourceFile,
    /// Open collections, innermost last.
    stack: Vec<Frame>,
    anchors: Vec<(usize, Node)>,
    nodes: usize,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    fn span(&self, s: &YamlSpan) -> Span {
        Span {
            file: self.file_id,
            start: self.file.pos(s.start.line(), s.start.col()),
            end: self.file.pos(s.end.line(), s.end.col()),
        }
    }

    fn error(&self, s: &YamlSpan, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(Some(self.span(s)), message)
    }

    fn push_node(
        &mut self,
        node: Node,
        anchor: usize,
        at: &YamlSpan,
    ) -> Result<(), Box<Diagnostic>> {
        self.nodes += node.count();
        if self.nodes > MAX_NODES {
            return Err(self
                .error(at, format!("document expands to more than {MAX_NODES} nodes"))
                .with_hint("aliases (*name) that repeat anchors many times can blow up a file (\"billion laughs\"); write the values out instead").into());
        }
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        let Some(frame) = self.stack.last_mut() else {
            if self.root.is_some() {
                return Err(self.error(at, "unexpected second root node").into());
            }
            self.root = Some(node);
            return Ok(());
        };
        match (&mut frame.kind, frame.pending_key.take()) {
            (Kind::Seq(items), _) => items.push(node),
            (Kind::Map(entries), Some(key)) => entries.push((key, node)),
            (Kind::Map(entries), None) => {
                let key = key_text(&node);
                if let Some((first, _)) = entries.iter().find(|(k, _)| key_text(k) == key) {
                    return Err(Box::new(
                        Diagnostic::error(Some(node.span), format!("duplicate key `{key}`"))
                            .with_related("first defined", first.span)
                            .with_hint(
                                "a key may appear once in a mapping; remove or merge one of them",
                            ),
                    ));
                }
                frame.pending_key = Some(node);
            }
            _ => unreachable!("only collections are pushed on the stack"),
        }
        Ok(())
    }

    fn open(&mut self, at: &YamlSpan, anchor: usize, kind: Kind) -> Result<(), Box<Diagnostic>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self
                .error(at, format!("nesting deeper than {MAX_DEPTH} levels"))
                .into());
        }
        let start = self.span(at);
        self.stack.push(Frame {
            start,
            anchor,
            kind,
            pending_key: None,
        });
        Ok(())
    }

    fn close(&mut self, at: &YamlSpan) -> Result<(), Box<Diagnostic>> {
        let frame = self.stack.pop().expect("parser balances collections");
        let end = self.span(at).end;
        let node = Node {
            kind: frame.kind,
            span: Span { end, ..frame.start },
        };
        // Its children were counted as they came; count the finished node once.
        self.nodes = self.nodes.saturating_sub(node.count());
        self.push_node(node, frame.anchor, at)
    }

    fn event(&mut self, event: Event<'_>, at: &YamlSpan) -> Result<(), Box<Diagnostic>> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self
                        .error(at, "more than one YAML document in this file")
                        .with_hint(
                            "put each document in a file of its own, or remove the `---` separator",
                        )
                        .into());
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let span = self.span(at);
                let kind = if tag.is_some() {
                    // Tags (!!str, !custom) are not part of the configuration language.
                    return Err(self
                        .error(
                            at,
                            "YAML tags (`!…`) are not supported in tether configuration",
                        )
                        .into());
                } else {
                    resolve_scalar(&value, style)
                };
                self.push_node(Node { kind, span }, anchor, at)?;
            }
            Event::SequenceStart(anchor, _) => self.open(at, anchor, Kind::Seq(Vec::new()))?,
            Event::MappingStart(anchor, _) => self.open(at, anchor, Kind::Map(Vec::new()))?,
            Event::SequenceEnd | Event::MappingEnd => self.close(at)?,
            Event::Alias(id) => {
                let Some((_, node)) = self.anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(self.error(at, "alias refers to an unknown anchor").into());
                };
                let mut node = node.clone();
                node.span = self.span(at);
                self.push_node(node, 0, at)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }
}

/// YAML 1.2 core schema resolution of a scalar; quoted scalars are always strings.
fn resolve_scalar(value: &str, style: ScalarStyle) -> Kind {
    if style != ScalarStyle::Plain {
        return Kind::Str(value.to_string());
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        _ => {}
    }
    let int = if let Some(hex) = value.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = value.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else if value
        .trim_start_matches(['-', '+'])
        .bytes()
        .all(|b| b.is_ascii_digit())
    {
        value.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Kind::Int(i);
    }
    let looks_float = value.bytes().any(|b| b.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if looks_float && let Ok(f) = value.parse::<f64>() {
        return Kind::Float(f);
    }
    Kind::Str(value.to_string())
}

/// Parses one file. `Ok(None)` is an empty file (no document at all).
pub fn parse(file_id: FileId, file: &SourceFile) -> Result<Option<Node>, Box<Diagnostic>> {
    let mut builder = Builder {
        file_id,
        file,
        stack: Vec::new(),
        anchors: Vec::new(),
        nodes: 0,
        root: None,
        documents: 0,
    };
    for item in Parser::new_from_str(&file.text) {
        match item {
            Ok((event, span)) => builder.event(event, &span)?,
            Err(e) => {
                let m = e.marker();
                let mut pos = file.pos(m.line(), m.col());
                // Point at the offending tab itself, not just past it.
                if e.info().contains("tab")
                    && let Some(line) = file.line_text(m.line())
                    && let Some(col) = line.chars().take(m.col() + 1).position(|c| c == '\t')
                {
                    pos = file.pos(m.line(), col);
                }
                let span = Span {
                    file: file_id,
                    start: pos,
                    end: pos,
                };
                return Err(Box::new(syntax_error(span, e.info())));
            }
        }
    }
    Ok(builder.root)
}

fn syntax_error(span: Span, info: &str) -> Diagnostic {
    let d = Diagnostic::error(Some(span), format!("YAML syntax error: {info}"));
    if info.contains("tab") {
        d.with_hint("YAML does not allow tabs for indentation; indent with spaces")
    } else if info.contains("mapping values are not allowed")
        || info.contains("did not find expected key")
        || info.contains("indentation")
    {
        d.with_hint(
            "check the indentation: keys of one mapping must start in the same column, with spaces",
        )
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Option<Node>, Box<Diagnostic>> {
        let file = SourceFile::new("t.yaml".into(), text.into());
        parse(0, &file)
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let root = load("a:\n  b: [1, x]\n").unwrap().unwrap();
        let b_key = root.lookup("/a/b", true).unwrap();
        assert_eq!((b_key.span.start.line, b_key.span.start.column), (2, 3));
        let x = root.lookup("/a/b/1", false).unwrap();
        assert_eq!(x.kind, Kind::Str("x".into()));
        assert_eq!((x.span.start.line, x.span.start.column), (2, 10));
        assert_eq!(x.span.end.column, 11);
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let root = load("a: 1\nb: '1'\nc: true\nd: yes\ne: ~\nf: 1.5\ng: 0x1f\nh: 1.2.3\n")
            .unwrap()
            .unwrap();
        let j = root.to_json();
        assert_eq!(
            j,
            serde_json::json!({"a":1,"b":"1","c":true,"d":"yes","e":null,"f":1.5,"g":31,"h":"1.2.3"})
        );
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let e = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.summary, "duplicate key `a`");
        assert_eq!(e.span.unwrap().start.line, 3);
        assert_eq!(e.related[0].1.start.line, 1);
    }

    #[test]
    fn aliases_expand_but_are_bounded() {
        let root = load("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        assert_eq!(root.to_json(), serde_json::json!({"a":[1,2],"b":[1,2]}));
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
            let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
            bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        let e = load(&bomb).unwrap_err();
        assert!(
            e.summary.contains("more than 200000 nodes"),
            "{}",
            e.summary
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(70), "]".repeat(70));
        let e = load(&text).unwrap_err();
        assert_eq!(e.summary, "nesting deeper than 64 levels");
        // Far deeper input is stopped by the parser's own limit, still as an error.
        let text = "[".repeat(100_000);
        assert!(
            load(&text)
                .unwrap_err()
                .summary
                .starts_with("YAML syntax error")
        );
    }

    #[test]
    fn empty_input_has_no_document() {
        assert_eq!(load("").unwrap(), None);
        assert_eq!(load("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn decode_rejects_binary_and_bad_utf8() {
        assert!(decode(b"a: 1\n").is_ok());
        let (at, msg) = decode(b"a: \xff\n").unwrap_err();
        assert_eq!(at, 3);
        assert!(msg.contains("UTF-8"));
        let (at, _) = decode(b"ab\0c").unwrap_err();
        assert_eq!(at, 2);
    }
}
