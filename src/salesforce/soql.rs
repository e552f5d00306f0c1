//! Building SOQL safely: identifiers are checked, literal values are always escaped, so a value
//! such as `' OR Id != '` stays a value. Long `IN (…)` lists are split so every statement stays
//! under the REST API's URI length limit.

use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;

/// The longest URL-encoded SOQL statement sent in one GET (the REST API rejects URIs over
/// 16,384 bytes; leave room for the path).
pub const DEFAULT_MAX_QUERY_CHARS: usize = 15_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
    Null,
    /// A relative date literal such as `TODAY`, `LAST_MONTH` or `LAST_N_DAYS:30`.
    DateLiteral(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SoqlBuildError(pub String);

impl fmt::Display for SoqlBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for SoqlBuildError {}

/// A SOQL string literal: quotes, backslashes and control characters escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl Lit {
    pub fn render(&self) -> Result<String, SoqlBuildError> {
        Ok(match self {
            Lit::Str(s) => quote(s),
            Lit::Int(n) => n.to_string(),
            Lit::Bool(b) => b.to_string(),
            Lit::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Lit::Date(d) => d.format("%Y-%m-%d").to_string(),
            Lit::Null => "null".into(),
            Lit::DateLiteral(s) => {
                let (name, n) = match s.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (s.as_str(), None),
                };
                let name_ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit());
                let n_ok = n.is_none_or(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
                if !name_ok || !n_ok {
                    return Err(SoqlBuildError(format!("`{s}` is not a SOQL date literal")));
                }
                s.clone()
            }
        })
    }
}

/// Field and object names: letters, digits and underscores, dotted for relationships.
pub fn ident(name: &str) -> Result<&str, SoqlBuildError> {
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(name)
    } else {
        Err(SoqlBuildError(format!(
            "`{name}` is not a valid Salesforce field or object name"
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
        }
    }
}

/// SELECT … FROM … [WHERE a AND b …] [ORDER BY …] [LIMIT n].
#[derive(Debug, Clone)]
pub struct SoqlBuilder {
    fields: Vec<String>,
    object: String,
    conditions: Vec<String>,
    order_by: Option<String>,
    limit: Option<u32>,
}

impl SoqlBuilder {
    pub fn select(object: &str, fields: &[&str]) -> Result<SoqlBuilder, SoqlBuildError> {
        if fields.is_empty() {
            return Err(SoqlBuildError("a query needs at least one field".into()));
        }
        Ok(SoqlBuilder {
            fields: fields
                .iter()
                .map(|f| ident(f).map(str::to_string))
                .collect::<Result<_, _>>()?,
            object: ident(object)?.to_string(),
            conditions: Vec::new(),
            order_by: None,
            limit: None,
        })
    }

    /// Adds `field op value`, joined to the others with AND.
    pub fn filter(
        mut self,
        field: &str,
        op: Op,
        value: Lit,
    ) -> Result<SoqlBuilder, SoqlBuildError> {
        if op == Op::Like && !matches!(value, Lit::Str(_)) {
            return Err(SoqlBuildError("LIKE needs a string value".into()));
        }
        self.conditions.push(format!(
            "{} {} {}",
            ident(field)?,
            op.as_str(),
            value.render()?
        ));
        Ok(self)
    }

    /// Adds `field IN (…)` (or NOT IN).
    pub fn filter_in(
        mut self,
        field: &str,
        values: &[Lit],
        negated: bool,
    ) -> Result<SoqlBuilder, SoqlBuildError> {
        self.conditions.push(in_clause(field, values, negated)?);
        Ok(self)
    }

    pub fn order_by(
        mut self,
        field: &str,
        descending: bool,
    ) -> Result<SoqlBuilder, SoqlBuildError> {
        self.order_by = Some(format!(
            "{} {}",
            ident(field)?,
            if descending { "DESC" } else { "ASC" }
        ));
        Ok(self)
    }

    pub fn limit(mut self, n: u32) -> SoqlBuilder {
        self.limit = Some(n);
        self
    }

    pub fn build(&self) -> String {
        let mut q = format!("SELECT {} FROM {}", self.fields.join(", "), self.object);
        if !self.conditions.is_empty() {
            q.push_str(" WHERE ");
            q.push_str(&self.conditions.join(" AND "));
        }
        if let Some(o) = &self.order_by {
            q.push_str(" ORDER BY ");
            q.push_str(o);
        }
        if let Some(n) = self.limit {
            q.push_str(&format!(" LIMIT {n}"));
        }
        q
    }

    /// One statement per chunk of `values`, each `… AND field IN (chunk)`, every statement's
    /// URL-encoded length at most `max_chars`.
    pub fn chunked_in(
        &self,
        field: &str,
        values: &[Lit],
        max_chars: usize,
    ) -> Result<Vec<String>, SoqlBuildError> {
        let field = ident(field)?;
        let rendered: Vec<String> = values.iter().map(Lit::render).collect::<Result<_, _>>()?;
        let base_len = encoded_len(&self.with_condition(&format!("{field} IN ()")).build());
        let mut out = Vec::new();
        let mut chunk: Vec<&str> = Vec::new();
        let mut len = base_len;
        for v in &rendered {
            let add = encoded_len(v)
                + if chunk.is_empty() {
                    0
                } else {
                    encoded_len(",")
                };
            if base_len + encoded_len(v) > max_chars {
                return Err(SoqlBuildError(format!(
                    "a single value is too long for a query ({} characters)",
                    v.len()
                )));
            }
            if len + add > max_chars && !chunk.is_empty() {
                out.push(
                    self.with_condition(&format!("{field} IN ({})", chunk.join(",")))
                        .build(),
                );
                chunk.clear();
                len = base_len;
            }
            len += if chunk.is_empty() {
                encoded_len(v)
            } else {
                add
            };
            chunk.push(v);
        }
        if !chunk.is_empty() {
            out.push(
                self.with_condition(&format!("{field} IN ({})", chunk.join(",")))
                    .build(),
            );
        }
        Ok(out)
    }

    fn with_condition(&self, c: &str) -> SoqlBuilder {
        let mut b = self.clone();
        b.conditions.push(c.to_string());
        b
    }
}

fn in_clause(field: &str, values: &[Lit], negated: bool) -> Result<String, SoqlBuildError> {
    if values.is_empty() {
        return Err(SoqlBuildError(format!(
            "IN on {field} needs at least one value"
        )));
    }
    let vals: Vec<String> = values.iter().map(Lit::render).collect::<Result<_, _>>()?;
    Ok(format!(
        "{} {}IN ({})",
        ident(field)?,
        if negated { "NOT " } else { "" },
        vals.join(",")
    ))
}

/// Length of the text once form-URL-encoded into the `q=` parameter.
pub fn encoded_len(s: &str) -> usize {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .map(str::len)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_injection_attempts() {
        assert_eq!(quote("O'Brien\\"), "'O\\'Brien\\\\'");
        assert_eq!(quote("' OR Id != '"), "'\\' OR Id != \\''");
        assert_eq!(quote("a\nb\r\tc"), "'a\\nb\\r\\tc'");
        let q = SoqlBuilder::select("Contact", &["Id"])
            .unwrap()
            .filter("LastName", Op::Eq, Lit::Str("' OR Id != '".into()))
            .unwrap()
            .build();
        assert_eq!(
            q,
            "SELECT Id FROM Contact WHERE LastName = '\\' OR Id != \\''"
        );
    }

    #[test]
    fn identifiers_and_date_literals_are_checked() {
        assert!(SoqlBuilder::select("Contact", &["Id, (SELECT Id FROM Users)"]).is_err());
        assert!(SoqlBuilder::select("Contact WHERE", &["Id"]).is_err());
        assert!(SoqlBuilder::select("Event", &["Owner.Email"]).is_ok());
        assert!(Lit::DateLiteral("LAST_N_DAYS:30".into()).render().is_ok());
        assert!(
            Lit::DateLiteral("TODAY OR Id != null".into())
                .render()
                .is_err()
        );
        assert!(Lit::DateLiteral("LAST_N_DAYS:".into()).render().is_err());
    }

    #[test]
    fn in_lists_are_chunked_under_the_limit() {
        let ids: Vec<Lit> = (0..1000)
            .map(|i| Lit::Str(format!("003000000000{i:03}AAA")))
            .collect();
        let b = SoqlBuilder::select("Contact", &["Id", "Email"]).unwrap();
        let qs = b.chunked_in("Id", &ids, 4000).unwrap();
        assert!(qs.len() > 1);
        for q in &qs {
            assert!(encoded_len(q) <= 4000, "{}", encoded_len(q));
            assert!(q.starts_with("SELECT Id, Email FROM Contact WHERE Id IN ('"));
        }
        let joined = qs.join(" ");
        for i in [0, 499, 999] {
            assert!(joined.contains(&format!("'003000000000{i:03}AAA'")));
        }
        let total: usize = qs.iter().map(|q| q.matches("AAA'").count()).sum();
        assert_eq!(total, 1000);
    }
}
