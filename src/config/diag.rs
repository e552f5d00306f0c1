//! Findings about a configuration, and how they are shown: `file:line:col: error: message`,
//! the source line with a marker and a hint for people; a stable JSON shape for tools.

use super::source::{Pos, Sources, Span};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    /// What to do about it.
    pub hint: Option<String>,
    pub span: Option<Span>,
    /// Other places the finding involves ("first defined here").
    pub related: Vec<(String, Span)>,
}

impl Diagnostic {
    pub fn new(severity: Severity, span: Option<Span>, summary: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            summary: summary.into(),
            hint: None,
            span,
            related: Vec::new(),
        }
    }

    pub fn error(span: Option<Span>, summary: impl Into<String>) -> Self {
        Self::new(Severity::Error, span, summary)
    }

    pub fn warning(span: Option<Span>, summary: impl Into<String>) -> Self {
        Self::new(Severity::Warning, span, summary)
    }

    pub fn info(span: Option<Span>, summary: impl Into<String>) -> Self {
        Self::new(Severity::Info, span, summary)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_related(mut self, note: impl Into<String>, span: Span) -> Self {
        self.related.push((note.into(), span));
        self
    }
}

/// A source line as it may be shown: the value of any secret key written literally
/// (`password: hunter2`, also inside `{ … }`) is masked, even in a file that failed to parse.
fn mask_secrets(line: &str) -> String {
    let mut out = line.to_string();
    for key in super::schema::SECRET_KEYS {
        let mut from = 0;
        while let Some(found) = out[from..].find(key) {
            let key_start = from + found;
            let after_key = key_start + key.len();
            from = after_key;
            let boundary = out[..key_start]
                .chars()
                .next_back()
                .is_none_or(|ch| !(ch.is_alphanumeric() || ch == '_'));
            let rest = &out[after_key..];
            let Some(colon) = rest.strip_prefix(|c: char| c == ':').map(|_| after_key + 1) else {
                continue;
            };
            if !boundary {
                continue;
            }
            let value_start = colon + out[colon..].len() - out[colon..].trim_start().len();
            let value_len = out[value_start..]
                .find([',', '}'])
                .unwrap_or(out.len() - value_start);
            let value = out[value_start..value_start + value_len].trim_end();
            let is_reference = value.trim_start_matches(['"', '\'']).starts_with("${");
            if !value.is_empty() && !is_reference {
                let masked = "*".repeat(value.chars().count());
                out.replace_range(value_start..value_start + value.len(), &masked);
            }
        }
    }
    mask_url_passwords(&out)
}

/// Masks the password of any `scheme://user:password@host` in a line (a Postgres state URL
/// that `validate` refuses for holding one must not print it either).
fn mask_url_passwords(line: &str) -> String {
    let mut out = line.to_string();
    let mut from = 0;
    while let Some(found) = out[from..].find("://") {
        let authority_start = from + found + 3;
        let authority_len = out[authority_start..]
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(out.len() - authority_start);
        let authority = &out[authority_start..authority_start + authority_len];
        from = authority_start + authority_len;
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let Some(colon) = authority[..at].find(':') else {
            continue;
        };
        let password = authority_start + colon + 1..authority_start + at;
        if !password.is_empty() {
            let masked = "*".repeat(out[password.clone()].chars().count());
            out.replace_range(password, &masked);
        }
    }
    out
}

fn location(sources: &Sources, span: &Span) -> String {
    format!(
        "{}:{}:{}",
        sources.path(span.file).display(),
        span.start.line,
        span.start.column
    )
}

/// Renders findings for a terminal or a CI log.
pub fn render_human(sources: &Sources, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        match &d.span {
            Some(span) => {
                let _ = writeln!(
                    out,
                    "{}: {}: {}",
                    location(sources, span),
                    d.severity.label(),
                    d.summary
                );
                write_snippet(&mut out, sources, span);
            }
            None => {
                let _ = writeln!(out, "{}: {}", d.severity.label(), d.summary);
            }
        }
        for (note, span) in &d.related {
            let _ = writeln!(out, "  = note: {note} at {}", location(sources, span));
        }
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out.push('\n');
    }
    let errors = count(diags, Severity::Error);
    let warnings = count(diags, Severity::Warning);
    if errors == 0 {
        let _ = writeln!(
            out,
            "Configuration is valid ({}).",
            plural(warnings, "warning")
        );
    } else {
        let _ = writeln!(
            out,
            "Configuration is not valid: {}, {}.",
            plural(errors, "error"),
            plural(warnings, "warning")
        );
    }
    out
}

fn write_snippet(out: &mut String, sources: &Sources, span: &Span) {
    let file = sources.get(span.file);
    let Some(text) = file.line_text(span.start.line) else {
        return;
    };
    let text = mask_secrets(text);
    let gutter = span.start.line.to_string();
    let pad = " ".repeat(gutter.len());
    let width = if span.end.line == span.start.line && span.end.column > span.start.column {
        span.end.column - span.start.column
    } else {
        1
    };
    // Tabs are kept in the marker line so the caret stays under the right character.
    let lead: String = text
        .chars()
        .take(span.start.column - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{gutter} | {}", text.replace('\0', "\u{2400}"));
    let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(width.min(80)));
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn count(diags: &[Diagnostic], severity: Severity) -> usize {
    diags.iter().filter(|d| d.severity == severity).count()
}

#[derive(Serialize)]
struct JsonReport<'a> {
    format_version: &'static str,
    valid: bool,
    error_count: usize,
    warning_count: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    summary: &'a str,
    detail: Option<String>,
    range: Option<JsonRange>,
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRange {
    filename: String,
    start: Pos,
    end: Pos,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    message: &'a str,
    range: JsonRange,
}

fn json_range(sources: &Sources, span: &Span) -> JsonRange {
    JsonRange {
        filename: sources.path(span.file).display().to_string(),
        start: span.start,
        end: span.end,
    }
}

/// The `--format json` report. `format_version` changes only when a field changes meaning.
pub fn render_json(sources: &Sources, diags: &[Diagnostic]) -> String {
    let errors = count(diags, Severity::Error);
    let report = JsonReport {
        format_version: "1.0",
        valid: errors == 0,
        error_count: errors,
        warning_count: count(diags, Severity::Warning),
        diagnostics: diags
            .iter()
            .map(|d| JsonDiagnostic {
                severity: d.severity,
                summary: &d.summary,
                detail: d.hint.clone(),
                range: d.span.as_ref().map(|s| json_range(sources, s)),
                related: d
                    .related
                    .iter()
                    .map(|(message, span)| JsonRelated {
                        message,
                        range: json_range(sources, span),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&report).expect("diagnostics serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_secrets_are_masked_in_shown_lines() {
        assert_eq!(
            mask_secrets("    password: hunter2"),
            "    password: *******"
        );
        assert_eq!(
            mask_secrets("auth: { flow: access_token, access_token: abc123 }"),
            "auth: { flow: access_token, access_token: ****** }"
        );
        assert_eq!(mask_secrets("password: ${env:X}"), "password: ${env:X}");
        assert_eq!(
            mask_secrets("password: \"${env:X}\""),
            "password: \"${env:X}\""
        );
        assert_eq!(mask_secrets("my_password_hint: ok"), "my_password_hint: ok");
    }

    #[test]
    fn a_password_inside_a_state_url_is_masked_in_shown_lines() {
        assert_eq!(
            mask_secrets("state: postgres://tether:s3cret@db.example.com:5432/tether"),
            "state: postgres://tether:******@db.example.com:5432/tether"
        );
        assert_eq!(
            mask_secrets("  url: \"postgres://u:p%40ss@h/db\" # and http://a@b"),
            "  url: \"postgres://u:******@h/db\" # and http://a@b"
        );
        assert_eq!(
            mask_secrets("instance_url: https://acme.my.salesforce.com"),
            "instance_url: https://acme.my.salesforce.com"
        );
    }
}
