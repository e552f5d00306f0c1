//! Writing answers: a streaming writer of prefixed names (`m:Items`, `t:Contact`; the
//! envelope declares the prefixes). A start tag stays open for attributes until content
//! follows, and an element ended with no content is written self-closed, as Exchange
//! writes `<m:Items />`.

/// Appends `s` escaped for both text and attribute values. Characters XML 1.0 cannot
/// carry at all (C0 controls but tab, line feed and carriage return) are left out rather
/// than sent as a document no parser accepts.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        let entity = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&apos;",
            '\t' | '\n' | '\r' => {
                out.push(c);
                continue;
            }
            c if c < ' ' => continue,
            c => {
                out.push(c);
                continue;
            }
        };
        out.push_str(entity);
    }
}

/// `s` escaped for text or an attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_into(&mut out, s);
    out
}

#[derive(Debug, Default)]
pub struct Out {
    buf: String,
    /// Names of the elements started and not yet ended, innermost last.
    stack: Vec<String>,
    /// The innermost start tag still takes attributes (its `>` is not written yet).
    in_tag: bool,
}

impl Out {
    pub fn new() -> Self {
        Out::default()
    }

    fn seal_tag(&mut self) {
        if std::mem::take(&mut self.in_tag) {
            self.buf.push('>');
        }
    }

    /// Starts an element; attributes may follow until its content does.
    pub fn start(&mut self, name: &str) -> &mut Self {
        self.seal_tag();
        self.buf.push('<');
        self.buf.push_str(name);
        self.stack.push(name.to_string());
        self.in_tag = true;
        self
    }

    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(self.in_tag, "attribute {name} after content");
        self.buf.push(' ');
        self.buf.push_str(name);
        self.buf.push_str("=\"");
        escape_into(&mut self.buf, value);
        self.buf.push('"');
        self
    }

    pub fn attrs(&mut self, attrs: &[(&str, &str)]) -> &mut Self {
        for (name, value) in attrs {
            self.attr(name, value);
        }
        self
    }

    /// Character data inside the current element.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.seal_tag();
        escape_into(&mut self.buf, s);
        self
    }

    /// A complete element written elsewhere (an operation's answer inside the envelope).
    pub fn fragment(&mut self, xml: &str) -> &mut Self {
        self.seal_tag();
        self.buf.push_str(xml);
        self
    }

    /// Ends the innermost element.
    pub fn end(&mut self) -> &mut Self {
        let Some(name) = self.stack.pop() else {
            return self;
        };
        if std::mem::take(&mut self.in_tag) {
            self.buf.push_str("/>");
        } else {
            self.buf.push_str("</");
            self.buf.push_str(&name);
            self.buf.push('>');
        }
        self
    }

    /// An element holding only text.
    pub fn value(&mut self, name: &str, text: &str) -> &mut Self {
        self.start(name).text(text).end()
    }

    /// `value` when there is one; nothing otherwise.
    pub fn value_opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(text) = text {
            self.value(name, text);
        }
        self
    }

    /// The document so far, every element still open ended.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.end();
        }
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_nest_escape_and_self_close_when_empty() {
        let mut w = Out::new();
        w.start("m:A").attr("K", "\"<x>\"");
        w.value("t:B", "a & b\u{1}").start("t:C").end();
        w.start("t:D").attrs(&[("Id", "1"), ("ChangeKey", "'")]);
        assert_eq!(
            w.finish(),
            r#"<m:A K="&quot;&lt;x&gt;&quot;"><t:B>a &amp; b</t:B><t:C/><t:D Id="1" ChangeKey="&apos;"/></m:A>"#
        );
    }
}
