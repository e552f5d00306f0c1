//! The emulator's SOQL: a parser for the subset a sync needs (and a little more), checked
//! against the object catalog, and an evaluator over the emulator's records. Errors carry the
//! real service's codes (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE) and its message style:
//! the query, a caret under the offending token, `ERROR at Row:r:Column:c`, then the reason.

use super::schema::{Catalog, FieldMeta, ObjectSchema};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Lit(String), // numbers, dates and datetimes: classified by the parser
    Op(&'static str),
    Comma,
    LParen,
    RParen,
    Colon,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn lex(q: &str) -> Result<Vec<Token>, (usize, String)> {
    let chars: Vec<(usize, char)> = q.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let simple = match c {
            ',' => Some(Tok::Comma),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            ':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = simple {
            out.push(Token { tok: t, pos });
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).map(|x| x.1);
        let two = match (c, next) {
            ('!', Some('=')) => Some("!="),
            ('<', Some('>')) => Some("!="),
            ('<', Some('=')) => Some("<="),
            ('>', Some('=')) => Some(">="),
            _ => None,
        };
        if let Some(op) = two {
            out.push(Token {
                tok: Tok::Op(op),
                pos,
            });
            i += 2;
            continue;
        }
        match c {
            '=' | '<' | '>' => {
                let op = match c {
                    '=' => "=",
                    '<' => "<",
                    _ => ">",
                };
                out.push(Token {
                    tok: Tok::Op(op),
                    pos,
                });
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&(_, ch)) = chars.get(i) else {
                        return Err((pos, "unterminated string literal".into()));
                    };
                    match ch {
                        '\'' => break,
                        '\\' => {
                            let Some(&(_, e)) = chars.get(i + 1) else {
                                return Err((pos, "unterminated string literal".into()));
                            };
                            let ch = match e {
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'b' => '\u{8}',
                                'f' => '\u{c}',
                                '\'' | '"' | '\\' => e,
                                // LIKE wildcards stay escaped for the pattern matcher.
                                '_' | '%' => {
                                    s.push('\\');
                                    e
                                }
                                _ => {
                                    return Err((
                                        chars[i].0,
                                        "Invalid string literal. Illegal character sequence".into(),
                                    ));
                                }
                            };
                            s.push(ch);
                            i += 2;
                        }
                        _ => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token {
                    tok: Tok::Str(s),
                    pos,
                });
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let mut s = String::from(c);
                i += 1;
                while let Some(&(_, ch)) = chars.get(i) {
                    if ch.is_ascii_alphanumeric() || matches!(ch, ':' | '.' | '-' | '+') {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Lit(s),
                    pos,
                });
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut s = String::new();
                while let Some(&(_, ch)) = chars.get(i) {
                    if ch.is_alphanumeric() || ch == '_' || ch == '.' {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Ident(s),
                    pos,
                });
            }
            other => return Err((pos, format!("unexpected token: '{other}'"))),
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: q.len(),
    });
    Ok(out)
}

/// A field path resolved against the catalog: relationship hops, then the leaf field.
#[derive(Debug, Clone)]
pub struct FieldPath {
    /// (reference field on the current object, relationship name as the schema spells it)
    pub hops: Vec<(String, String)>,
    pub leaf: FieldMeta,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Str(String),
    Num(f64),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// A relative date literal (TODAY, LAST_N_DAYS:n …) resolved to [start, end).
    Range(NaiveDate, NaiveDate),
}

#[derive(Debug, Clone)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp(FieldPath, &'static str, Literal),
    In(FieldPath, bool, Vec<Literal>),
    Like(FieldPath, String),
}

#[derive(Debug, Clone)]
pub struct OrderItem {
    pub field: FieldPath,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub object: Arc<ObjectSchema>,
    /// Empty for `SELECT COUNT()`.
    pub fields: Vec<FieldPath>,
    pub count_only: bool,
    pub filter: Option<Cond>,
    pub order: Vec<OrderItem>,
    pub limit: Option<usize>,
    pub offset: usize,
}

struct Parser<'a> {
    q: &'a str,
    toks: Vec<Token>,
    i: usize,
    catalog: &'a Catalog,
    today: NaiveDate,
    /// Open parentheses and NOTs around the condition being parsed.
    depth: usize,
}

/// Deepest nesting of parentheses and NOT in a WHERE clause: far beyond any real filter,
/// and low enough that a hostile query cannot exhaust a server thread's stack.
const MAX_NESTING: usize = 64;

fn located(q: &str, pos: usize, code: &'static str, reason: &str) -> SoqlError {
    let before = &q[..pos.min(q.len())];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|p| p + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    let line = q[line_start..].lines().next().unwrap_or("");
    SoqlError {
        code,
        message: format!(
            "\n{line}\n{}^\nERROR at Row:{row}:Column:{col}\n{reason}",
            " ".repeat(col - 1)
        ),
    }
}

fn kw(t: &Tok, word: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(word))
}

const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "limit", "offset",
    "asc", "desc", "nulls", "first", "last", "null", "true", "false", "group", "having",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        self.i += 1;
        t
    }
    fn unexpected(&self, t: &Token) -> SoqlError {
        let shown = match &t.tok {
            Tok::Ident(s) | Tok::Lit(s) => s.clone(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Op(o) => (*o).to_string(),
            Tok::Comma => ",".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Colon => ":".into(),
            Tok::Eof => "<EOF>".into(),
        };
        located(
            self.q,
            t.pos,
            "MALFORMED_QUERY",
            &format!("unexpected token: '{shown}'"),
        )
    }
    fn expect_kw(&mut self, word: &str) -> Result<(), SoqlError> {
        let t = self.bump();
        if kw(&t.tok, word) {
            Ok(())
        } else {
            Err(self.unexpected(&t))
        }
    }

    fn field_path(
        &self,
        obj: &ObjectSchema,
        name: &str,
        pos: usize,
    ) -> Result<FieldPath, SoqlError> {
        let parts: Vec<&str> = name.split('.').collect();
        let mut parts = parts.as_slice();
        // A path may start with the object's own name: `Contact.LastName`.
        if parts.len() > 1 && parts[0].eq_ignore_ascii_case(&obj.name) {
            parts = &parts[1..];
        }
        let mut cur: Arc<ObjectSchema> = self
            .catalog
            .get(&obj.name)
            .cloned()
            .ok_or_else(|| located(self.q, pos, "INVALID_TYPE", "unknown object"))?;
        let mut hops = Vec::new();
        let (last, rels) = match parts.split_last() {
            Some(x) => x,
            None => {
                return Err(located(
                    self.q,
                    pos,
                    "MALFORMED_QUERY",
                    "unexpected token: '.'",
                ));
            }
        };
        for rel in rels {
            let f = cur.relationship(rel).cloned().ok_or_else(|| {
                located(self.q, pos, "INVALID_FIELD", &format!(
                    "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                ))
            })?;
            let target = f
                .reference_to
                .iter()
                .find_map(|t| self.catalog.get(t))
                .cloned()
                .ok_or_else(|| {
                    located(self.q, pos, "INVALID_FIELD", &format!(
                        "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                    ))
                })?;
            hops.push((
                f.name.clone(),
                f.relationship_name.clone().unwrap_or_default(),
            ));
            cur = target;
        }
        let leaf = cur.field(last).cloned().ok_or_else(|| {
            located(self.q, pos, "INVALID_FIELD", &format!(
                "No such column '{last}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                cur.name
            ))
        })?;
        Ok(FieldPath { hops, leaf })
    }

    fn parse(mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        // Fields are resolved after FROM names the object.
        let mut raw_fields: Vec<(String, usize)> = Vec::new();
        let mut count_only = false;
        loop {
            let t = self.bump();
            match &t.tok {
                Tok::Ident(s) if s.eq_ignore_ascii_case("COUNT") && raw_fields.is_empty() => {
                    let open = self.bump();
                    if open.tok != Tok::LParen {
                        return Err(self.unexpected(&open));
                    }
                    let close = self.bump();
                    if close.tok != Tok::RParen {
                        return Err(self.unexpected(&close));
                    }
                    count_only = true;
                    let n = self.peek().clone();
                    if n.tok == Tok::Comma {
                        return Err(self.unexpected(&n));
                    }
                    break;
                }
                Tok::Ident(s) if !RESERVED.contains(&s.to_ascii_lowercase().as_str()) => {
                    raw_fields.push((s.clone(), t.pos));
                }
                _ => return Err(self.unexpected(&t)),
            }
            if self.peek().tok == Tok::Comma {
                self.bump();
            } else {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let obj_tok = self.bump();
        let obj_name = match &obj_tok.tok {
            Tok::Ident(s) if !RESERVED.contains(&s.to_ascii_lowercase().as_str()) => s.clone(),
            _ => return Err(self.unexpected(&obj_tok)),
        };
        let object = self.catalog.get(&obj_name).cloned().ok_or_else(|| {
            located(self.q, obj_tok.pos, "INVALID_TYPE", &format!(
                "sObject type '{obj_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
            ))
        })?;
        let mut fields = Vec::new();
        for (name, pos) in &raw_fields {
            let fp = self.field_path(&object, name, *pos)?;
            if fields.iter().any(|f: &FieldPath| same_path(f, &fp)) {
                return Err(located(
                    self.q,
                    *pos,
                    "MALFORMED_QUERY",
                    &format!("duplicate field selected: {name}"),
                ));
            }
            fields.push(fp);
        }
        let mut filter = None;
        if kw(&self.peek().tok, "WHERE") {
            self.bump();
            filter = Some(self.cond(&object)?);
        }
        let mut order = Vec::new();
        if kw(&self.peek().tok, "ORDER") {
            self.bump();
            self.expect_kw("BY")?;
            loop {
                let t = self.bump();
                let Tok::Ident(name) = &t.tok else {
                    return Err(self.unexpected(&t));
                };
                let field = self.field_path(&object, name, t.pos)?;
                let mut desc = false;
                if kw(&self.peek().tok, "ASC") {
                    self.bump();
                } else if kw(&self.peek().tok, "DESC") {
                    self.bump();
                    desc = true;
                }
                // SOQL Reference, ORDER BY: "By default, null values are sorted first",
                // whatever the direction.
                let mut nulls_first = true;
                if kw(&self.peek().tok, "NULLS") {
                    self.bump();
                    let t = self.bump();
                    if kw(&t.tok, "FIRST") {
                        nulls_first = true;
                    } else if kw(&t.tok, "LAST") {
                        nulls_first = false;
                    } else {
                        return Err(self.unexpected(&t));
                    }
                }
                order.push(OrderItem {
                    field,
                    desc,
                    nulls_first,
                });
                if self.peek().tok == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        let mut limit = None;
        if kw(&self.peek().tok, "LIMIT") {
            self.bump();
            limit = Some(self.integer()?);
        }
        let mut offset = 0;
        if kw(&self.peek().tok, "OFFSET") {
            self.bump();
            let t = self.peek().clone();
            offset = self.integer()?;
            if offset > 2000 {
                return Err(located(
                    self.q,
                    t.pos,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    "Maximum SOQL offset allowed is 2000",
                ));
            }
        }
        let t = self.bump();
        if t.tok != Tok::Eof {
            return Err(self.unexpected(&t));
        }
        Ok(Query {
            object,
            fields,
            count_only,
            filter,
            order,
            limit,
            offset,
        })
    }

    fn integer(&mut self) -> Result<usize, SoqlError> {
        let t = self.bump();
        match &t.tok {
            Tok::Lit(s) => s.parse::<usize>().map_err(|_| self.unexpected(&t)),
            _ => Err(self.unexpected(&t)),
        }
    }

    /// AND and OR may not be mixed at one level without parentheses (as in real SOQL).
    fn cond(&mut self, obj: &ObjectSchema) -> Result<Cond, SoqlError> {
        let first = self.not_cond(obj)?;
        let mut items = vec![first];
        let mut joiner: Option<&str> = None;
        loop {
            let t = self.peek().clone();
            let this = if kw(&t.tok, "AND") {
                "and"
            } else if kw(&t.tok, "OR") {
                "or"
            } else {
                break;
            };
            if joiner.is_some_and(|j| j != this) {
                return Err(self.unexpected(&t));
            }
            joiner = Some(this);
            self.bump();
            items.push(self.not_cond(obj)?);
        }
        Ok(match joiner {
            None => items.remove(0),
            Some("and") => Cond::And(items),
            Some(_) => Cond::Or(items),
        })
    }

    fn not_cond(&mut self, obj: &ObjectSchema) -> Result<Cond, SoqlError> {
        self.depth += 1;
        let c = self.nested_cond(obj);
        self.depth -= 1;
        c
    }

    fn nested_cond(&mut self, obj: &ObjectSchema) -> Result<Cond, SoqlError> {
        if self.depth > MAX_NESTING {
            let pos = self.peek().pos;
            return Err(located(
                self.q,
                pos,
                "MALFORMED_QUERY",
                &format!("conditions nested deeper than {MAX_NESTING} levels"),
            ));
        }
        if kw(&self.peek().tok, "NOT") {
            self.bump();
            return Ok(Cond::Not(Box::new(self.not_cond(obj)?)));
        }
        if self.peek().tok == Tok::LParen {
            self.bump();
            let c = self.cond(obj)?;
            let t = self.bump();
            if t.tok != Tok::RParen {
                return Err(self.unexpected(&t));
            }
            return Ok(c);
        }
        let t = self.bump();
        let name = match &t.tok {
            Tok::Ident(s) if !RESERVED.contains(&s.to_ascii_lowercase().as_str()) => s.clone(),
            _ => return Err(self.unexpected(&t)),
        };
        let field = self.field_path(obj, &name, t.pos)?;
        let op_tok = self.bump();
        match &op_tok.tok {
            Tok::Op(op) => {
                let vpos = self.peek().pos;
                let v = self.literal()?;
                self.check_type(&field, &v, vpos, op)?;
                Ok(Cond::Cmp(field, op, v))
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case("LIKE") => {
                let vt = self.bump();
                let Tok::Str(p) = &vt.tok else {
                    return Err(self.unexpected(&vt));
                };
                if !field.leaf.is_text() {
                    return Err(located(
                        self.q,
                        t.pos,
                        "INVALID_FIELD",
                        &format!("invalid operator on field: {name}"),
                    ));
                }
                Ok(Cond::Like(field, p.clone()))
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case("IN") || s.eq_ignore_ascii_case("NOT") => {
                let negated = s.eq_ignore_ascii_case("NOT");
                if negated {
                    self.expect_kw("IN")?;
                }
                let open = self.bump();
                if open.tok != Tok::LParen {
                    return Err(self.unexpected(&open));
                }
                let mut values = Vec::new();
                loop {
                    let vpos = self.peek().pos;
                    let v = self.literal()?;
                    self.check_type(&field, &v, vpos, "=")?;
                    values.push(v);
                    let t = self.bump();
                    match t.tok {
                        Tok::Comma => continue,
                        Tok::RParen => break,
                        _ => return Err(self.unexpected(&t)),
                    }
                }
                Ok(Cond::In(field, negated, values))
            }
            _ => Err(self.unexpected(&op_tok)),
        }
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let t = self.bump();
        match &t.tok {
            Tok::Str(s) => Ok(Literal::Str(s.clone())),
            Tok::Ident(s) => {
                let lower = s.to_ascii_lowercase();
                match lower.as_str() {
                    "null" => return Ok(Literal::Null),
                    "true" => return Ok(Literal::Bool(true)),
                    "false" => return Ok(Literal::Bool(false)),
                    _ => {}
                }
                let n = if self.peek().tok == Tok::Colon {
                    self.bump();
                    let nt = self.bump();
                    match &nt.tok {
                        Tok::Lit(v) => Some(v.parse::<i64>().map_err(|_| self.unexpected(&nt))?),
                        _ => return Err(self.unexpected(&nt)),
                    }
                } else {
                    None
                };
                date_literal(&s.to_ascii_uppercase(), n, self.today)
                    .map(|(a, b)| Literal::Range(a, b))
                    .ok_or_else(|| self.unexpected(&t))
            }
            Tok::Lit(s) => {
                if let Some(dt) = parse_datetime(s) {
                    Ok(Literal::DateTime(dt))
                } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    Ok(Literal::Date(d))
                } else if let Ok(n) = s.parse::<f64>() {
                    Ok(Literal::Num(n))
                } else {
                    Err(self.unexpected(&t))
                }
            }
            _ => Err(self.unexpected(&t)),
        }
    }

    fn check_type(
        &self,
        f: &FieldPath,
        v: &Literal,
        pos: usize,
        op: &str,
    ) -> Result<(), SoqlError> {
        let name = &f.leaf.name;
        let bad = |want: &str, quotes: &str| {
            Err(located(
                self.q,
                pos,
                "INVALID_FIELD",
                &format!(
                    "value of filter criterion for field '{name}' must be of type {want} and {quotes}"
                ),
            ))
        };
        let ok = match (f.leaf.kind.as_str(), v) {
            (_, Literal::Null) => true,
            ("datetime", Literal::DateTime(_) | Literal::Range(..)) => true,
            ("datetime", _) => return bad("dateTime", "should not be enclosed in quotes"),
            ("date", Literal::Date(_) | Literal::Range(..)) => true,
            ("date", _) => return bad("date", "should not be enclosed in quotes"),
            ("boolean", Literal::Bool(_)) => true,
            ("boolean", _) => return bad("boolean", "should not be enclosed in quotes"),
            ("int" | "double" | "currency" | "percent", Literal::Num(_)) => true,
            ("int" | "double" | "currency" | "percent", _) => {
                return bad("double", "should not be enclosed in quotes");
            }
            ("id" | "reference", Literal::Str(v))
                if !v.is_empty() && !crate::salesforce::ids::is_valid(v) =>
            {
                return Err(located(
                    self.q,
                    pos,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    &format!("invalid ID field: {v}"),
                ));
            }
            (_, Literal::Str(_)) => true,
            _ => return bad("string", "should be enclosed in quotes"),
        };
        if ok && matches!(v, Literal::Bool(_)) && !matches!(op, "=" | "!=") {
            return Err(located(
                self.q,
                pos,
                "INVALID_FIELD",
                &format!("invalid operator on field: {name}"),
            ));
        }
        if f.leaf.kind == "textarea" && f.leaf.length > 255 {
            return Err(located(
                self.q,
                pos,
                "INVALID_FIELD",
                &format!("field '{name}' can not be filtered in a query call"),
            ));
        }
        Ok(())
    }
}

fn same_path(a: &FieldPath, b: &FieldPath) -> bool {
    a.leaf.name == b.leaf.name
        && a.hops.len() == b.hops.len()
        && a.hops.iter().zip(&b.hops).all(|(x, y)| x.0 == y.0)
}

/// Parses `2026-01-31T10:00:00Z`, `…T10:00:00.000+0000` and `…T10:00:00+01:00`.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// How Salesforce prints a datetime: `2026-01-31T10:00:00.000+0000`. Its datetimes
/// (SystemModstamp among them) hold whole seconds: the milliseconds always read `.000`.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()
}

fn month_start(y: i32, m: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(NaiveDate::MIN)
}

fn add_months(d: NaiveDate, n: i32) -> NaiveDate {
    let total = d.year() * 12 + d.month0() as i32 + n;
    month_start(total.div_euclid(12), total.rem_euclid(12) as u32 + 1)
}

/// A relative date literal as the half-open day range [start, end). Weeks start on Sunday as
/// in the default (en_US) locale. Evaluated in UTC.
fn date_literal(name: &str, n: Option<i64>, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let day = Duration::days(1);
    let week_start = today - Duration::days(today.weekday().num_days_from_sunday() as i64);
    let this_month = month_start(today.year(), today.month());
    let this_year = month_start(today.year(), 1);
    let this_quarter = month_start(today.year(), today.month0() / 3 * 3 + 1);
    // LAST_N_…/NEXT_N_… and N_…_AGO take `:n`; the others must not.
    let needs_n = name.contains("_N_") || name.starts_with("N_");
    if needs_n != n.is_some() {
        return None;
    }
    let n = n.unwrap_or(0);
    let (w, m) = (Duration::days(7), n as i32);
    if !(0..=100_000).contains(&n) {
        return None;
    }
    Some(match name {
        "TODAY" => (today, today + day),
        "YESTERDAY" => (today - day, today),
        "TOMORROW" => (today + day, today + day * 2),
        "THIS_WEEK" => (week_start, week_start + Duration::days(7)),
        "LAST_WEEK" => (week_start - Duration::days(7), week_start),
        "NEXT_WEEK" => (
            week_start + Duration::days(7),
            week_start + Duration::days(14),
        ),
        "THIS_MONTH" => (this_month, add_months(this_month, 1)),
        "LAST_MONTH" => (add_months(this_month, -1), this_month),
        "NEXT_MONTH" => (add_months(this_month, 1), add_months(this_month, 2)),
        "THIS_YEAR" => (this_year, add_months(this_year, 12)),
        "LAST_YEAR" => (add_months(this_year, -12), this_year),
        "NEXT_YEAR" => (add_months(this_year, 12), add_months(this_year, 24)),
        "LAST_90_DAYS" => (today - Duration::days(90), today + day),
        "NEXT_90_DAYS" => (today + day, today + Duration::days(91)),
        "LAST_N_DAYS" => (today - Duration::days(n), today + day),
        "NEXT_N_DAYS" => (today + day, today + Duration::days(n + 1)),
        "N_DAYS_AGO" => (today - Duration::days(n), today - Duration::days(n - 1)),
        "LAST_N_MONTHS" => (add_months(this_month, -m), this_month),
        "NEXT_N_MONTHS" => (add_months(this_month, 1), add_months(this_month, m + 1)),
        // Weeks, quarters (calendar) and years as the SOQL and SOSL Reference's "Date Formats
        // and Date Literals" table defines them: the LAST_N_ / NEXT_N_ ranges leave out the
        // current period, N_…_AGO is the one period n periods back.
        "LAST_N_WEEKS" => (week_start - w * m, week_start),
        "NEXT_N_WEEKS" => (week_start + w, week_start + w * (m + 1)),
        "N_WEEKS_AGO" => (week_start - w * m, week_start - w * (m - 1)),
        "N_MONTHS_AGO" => (add_months(this_month, -m), add_months(this_month, 1 - m)),
        "THIS_QUARTER" => (this_quarter, add_months(this_quarter, 3)),
        "LAST_QUARTER" => (add_months(this_quarter, -3), this_quarter),
        "NEXT_QUARTER" => (add_months(this_quarter, 3), add_months(this_quarter, 6)),
        "LAST_N_QUARTERS" => (add_months(this_quarter, -3 * m), this_quarter),
        "NEXT_N_QUARTERS" => (
            add_months(this_quarter, 3),
            add_months(this_quarter, 3 * (m + 1)),
        ),
        "N_QUARTERS_AGO" => (
            add_months(this_quarter, -3 * m),
            add_months(this_quarter, 3 * (1 - m)),
        ),
        "LAST_N_YEARS" => (add_months(this_year, -12 * m), this_year),
        "NEXT_N_YEARS" => (
            add_months(this_year, 12),
            add_months(this_year, 12 * (m + 1)),
        ),
        "N_YEARS_AGO" => (
            add_months(this_year, -12 * m),
            add_months(this_year, 12 * (1 - m)),
        ),
        _ => return None,
    })
}

pub fn parse(q: &str, catalog: &Catalog, now: DateTime<Utc>) -> Result<Query, SoqlError> {
    let toks = lex(q).map_err(|(pos, reason)| located(q, pos, "MALFORMED_QUERY", &reason))?;
    Parser {
        q,
        toks,
        i: 0,
        catalog,
        today: now.date_naive(),
        depth: 0,
    }
    .parse()
}

/// Access to records by id, for relationship paths.
pub trait Resolver {
    fn lookup(&self, id: &str) -> Option<(Arc<ObjectSchema>, &Map<String, Value>)>;
}

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Typed {
    Null,
    Bool(bool),
    Num(f64),
    Text(String), // lower-cased: SOQL compares text case-insensitively
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

fn typed(meta: &FieldMeta, v: Option<&Value>) -> Typed {
    match v {
        None | Some(Value::Null) => Typed::Null,
        Some(Value::Bool(b)) => Typed::Bool(*b),
        Some(Value::Number(n)) => Typed::Num(n.as_f64().unwrap_or(0.0)),
        Some(Value::String(s)) => match meta.kind.as_str() {
            "datetime" => parse_datetime(s).map_or(Typed::Null, Typed::DateTime),
            "date" => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_or(Typed::Null, Typed::Date),
            _ => Typed::Text(s.to_lowercase()),
        },
        Some(other) => Typed::Text(other.to_string()),
    }
}

/// A value's key in an index of its field: its text as the filter compares it (lower-cased),
/// when it compares as text.
pub(crate) fn text_key(meta: &FieldMeta, v: &Value) -> Option<String> {
    match typed(meta, Some(v)) {
        Typed::Text(t) => Some(t),
        _ => None,
    }
}

/// A value's key in an index of a datetime field.
pub(crate) fn time_key(meta: &FieldMeta, v: &Value) -> Option<DateTime<Utc>> {
    match typed(meta, Some(v)) {
        Typed::DateTime(t) => Some(t),
        _ => None,
    }
}

/// The index key a literal is compared with, when it compares as text (see [`text_key`]).
pub(crate) fn literal_text_key(meta: &FieldMeta, l: &Literal) -> Option<String> {
    match Operand::new(meta, l) {
        Operand::Value(Typed::Text(t)) => Some(t),
        _ => None,
    }
}

/// The datetime a literal is compared with, when it is one (not a date or a date range).
pub(crate) fn literal_time_key(meta: &FieldMeta, l: &Literal) -> Option<DateTime<Utc>> {
    match Operand::new(meta, l) {
        Operand::Value(Typed::DateTime(t)) => Some(t),
        _ => None,
    }
}

/// The value of a path on a record (following references), or None when a hop is null.
pub fn value_at<'r>(
    path: &FieldPath,
    rec: &'r Map<String, Value>,
    r: &'r dyn Resolver,
) -> Option<&'r Value> {
    let mut cur = rec;
    for (ref_field, _) in &path.hops {
        let id = cur.get(ref_field)?.as_str()?;
        cur = r.lookup(id)?.1;
    }
    cur.get(&path.leaf.name)
}

fn lit_typed(meta: &FieldMeta, l: &Literal) -> Typed {
    match l {
        Literal::Null => Typed::Null,
        Literal::Bool(b) => Typed::Bool(*b),
        Literal::Num(n) => Typed::Num(*n),
        // Ids match in either length: 15 characters are compared as their 18-character form.
        Literal::Str(s) if matches!(meta.kind.as_str(), "id" | "reference") => Typed::Text(
            crate::salesforce::ids::to_18(s)
                .unwrap_or_else(|| s.clone())
                .to_lowercase(),
        ),
        Literal::Str(s) => Typed::Text(s.to_lowercase()),
        Literal::Date(d) => Typed::Date(*d),
        Literal::DateTime(t) => {
            if meta.kind == "date" {
                Typed::Date(t.date_naive())
            } else {
                Typed::DateTime(*t)
            }
        }
        Literal::Range(a, _) => Typed::Date(*a),
    }
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// A literal as a row's value is compared with it: typed (and lower-cased) once per query.
#[derive(Debug, Clone)]
enum Operand {
    Value(Typed),
    /// A relative date literal: [start, end).
    Range(NaiveDate, NaiveDate),
}

impl Operand {
    fn new(meta: &FieldMeta, lit: &Literal) -> Operand {
        match lit {
            Literal::Range(a, b) => Operand::Range(*a, *b),
            _ => Operand::Value(lit_typed(meta, lit)),
        }
    }
}

fn compare(v: &Typed, op: &str, operand: &Operand) -> bool {
    let l = match operand {
        Operand::Value(l) => l,
        Operand::Range(a, b) => {
            // Ranges compare by their bounds: `= TODAY` is within, `> TODAY` after its end.
            let (lo, hi) = match v {
                Typed::DateTime(_) => (
                    Typed::DateTime(day_start(*a)),
                    Typed::DateTime(day_start(*b)),
                ),
                Typed::Date(_) => (Typed::Date(*a), Typed::Date(*b)),
                _ => return op == "!=" && *v == Typed::Null,
            };
            return match op {
                "=" => *v >= lo && *v < hi,
                "!=" => !(*v >= lo && *v < hi),
                "<" => *v < lo,
                "<=" => *v < hi,
                ">" => *v >= hi,
                ">=" => *v >= lo,
                _ => false,
            };
        }
    };
    match op {
        "=" => v == l,
        "!=" => v != l,
        _ if *v == Typed::Null || *l == Typed::Null => false,
        "<" => v.partial_cmp(l) == Some(Ordering::Less),
        "<=" => matches!(v.partial_cmp(l), Some(Ordering::Less | Ordering::Equal)),
        ">" => v.partial_cmp(l) == Some(Ordering::Greater),
        ">=" => matches!(v.partial_cmp(l), Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}

/// A LIKE pattern (`%`, `_`; `\%` and `\_` are literal), compiled once per query.
#[derive(Debug, Clone)]
struct LikePattern(Vec<P>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum P {
    Any,
    One,
    Ch(char),
}

impl LikePattern {
    fn new(pattern: &str) -> LikePattern {
        let mut pat = Vec::new();
        let mut it = pattern
            .to_lowercase()
            .chars()
            .collect::<Vec<_>>()
            .into_iter();
        while let Some(c) = it.next() {
            pat.push(match c {
                '%' => P::Any,
                '_' => P::One,
                '\\' => P::Ch(it.next().unwrap_or('\\')),
                c => P::Ch(c),
            });
        }
        LikePattern(pat)
    }

    /// Case-insensitive, as SOQL's LIKE.
    fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.to_lowercase().chars().collect();
        // dp[j]: pattern[..i] matches text[..j]
        let mut dp = vec![false; t.len() + 1];
        dp[0] = true;
        for p in &self.0 {
            let mut next = vec![false; t.len() + 1];
            for j in 0..=t.len() {
                next[j] = match p {
                    P::Any => dp[j] || (j > 0 && next[j - 1]),
                    P::One => j > 0 && dp[j - 1],
                    P::Ch(c) => j > 0 && dp[j - 1] && t[j - 1] == *c,
                };
            }
            dp = next;
        }
        dp[t.len()]
    }
}

#[cfg(test)]
fn like(text: &str, pattern: &str) -> bool {
    LikePattern::new(pattern).matches(text)
}

/// A WHERE clause prepared for evaluation: every literal typed (ids widened, text
/// lower-cased) once, each `IN` list's text values made a set and each LIKE pattern
/// compiled, so that a row costs the reads of its own fields, not a pass over the literals.
pub struct Filter<'q>(Node<'q>);

enum Node<'q> {
    And(Vec<Node<'q>>),
    Or(Vec<Node<'q>>),
    Not(Box<Node<'q>>),
    Cmp(&'q FieldPath, &'static str, Operand),
    In {
        path: &'q FieldPath,
        negated: bool,
        /// The lower-cased text values (a row's text matches one exactly or none).
        texts: HashSet<String>,
        /// The other literals (null, numbers, dates, booleans, date ranges).
        others: Vec<Operand>,
    },
    Like(&'q FieldPath, LikePattern),
}

impl<'q> Filter<'q> {
    pub fn new(c: &'q Cond) -> Filter<'q> {
        Filter(Node::new(c))
    }

    pub fn matches(&self, rec: &Map<String, Value>, r: &dyn Resolver) -> bool {
        self.0.matches(rec, r)
    }
}

impl<'q> Node<'q> {
    fn new(c: &'q Cond) -> Node<'q> {
        match c {
            Cond::And(items) => Node::And(items.iter().map(Node::new).collect()),
            Cond::Or(items) => Node::Or(items.iter().map(Node::new).collect()),
            Cond::Not(inner) => Node::Not(Box::new(Node::new(inner))),
            Cond::Cmp(p, op, lit) => Node::Cmp(p, op, Operand::new(&p.leaf, lit)),
            Cond::In(p, negated, lits) => {
                let mut texts = HashSet::new();
                let mut others = Vec::new();
                for lit in lits {
                    match Operand::new(&p.leaf, lit) {
                        Operand::Value(Typed::Text(t)) => {
                            texts.insert(t);
                        }
                        other => others.push(other),
                    }
                }
                Node::In {
                    path: p,
                    negated: *negated,
                    texts,
                    others,
                }
            }
            Cond::Like(p, pat) => Node::Like(p, LikePattern::new(pat)),
        }
    }

    fn matches(&self, rec: &Map<String, Value>, r: &dyn Resolver) -> bool {
        match self {
            Node::And(items) => items.iter().all(|i| i.matches(rec, r)),
            Node::Or(items) => items.iter().any(|i| i.matches(rec, r)),
            Node::Not(inner) => !inner.matches(rec, r),
            Node::Cmp(p, op, operand) => compare(&typed(&p.leaf, value_at(p, rec, r)), op, operand),
            Node::In {
                path,
                negated,
                texts,
                others,
            } => {
                let v = typed(&path.leaf, value_at(path, rec, r));
                let found = match &v {
                    Typed::Text(t) if texts.contains(t) => true,
                    _ => others.iter().any(|o| compare(&v, "=", o)),
                };
                found != *negated
            }
            Node::Like(p, pattern) => match value_at(p, rec, r) {
                Some(Value::String(s)) => pattern.matches(s),
                _ => false,
            },
        }
    }
}

/// Whether a record satisfies a condition (prepare a [`Filter`] once to test many rows).
pub fn matches(c: &Cond, rec: &Map<String, Value>, r: &dyn Resolver) -> bool {
    Filter::new(c).matches(rec, r)
}

/// Sorts rows by the query's ORDER BY, each row's sort keys read (and typed) once.
pub fn order(q: &Query, rows: &mut [&Map<String, Value>], r: &dyn Resolver) {
    if q.order.is_empty() {
        return;
    }
    let mut keyed: Vec<(Vec<Typed>, &Map<String, Value>)> = rows
        .iter()
        .map(|row| {
            let keys = q
                .order
                .iter()
                .map(|item| typed(&item.field.leaf, value_at(&item.field, row, r)))
                .collect();
            (keys, *row)
        })
        .collect();
    // Stable, as before: rows equal on every key keep their order.
    keyed.sort_by(|(a, _), (b, _)| {
        for (item, (va, vb)) in q.order.iter().zip(a.iter().zip(b)) {
            let ord = match (va, vb) {
                (Typed::Null, Typed::Null) => Ordering::Equal,
                (Typed::Null, _) => {
                    if item.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (_, Typed::Null) => {
                    if item.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                _ => {
                    let o = va.partial_cmp(vb).unwrap_or(Ordering::Equal);
                    if item.desc { o.reverse() } else { o }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    for (slot, (_, row)) in rows.iter_mut().zip(keyed) {
        *slot = row;
    }
}

/// A result row shaped as the REST API returns it: `attributes`, then the selected fields,
/// relationship fields nested under the relationship name.
pub fn project(
    q: &Query,
    rec: &Map<String, Value>,
    r: &dyn Resolver,
    version: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        attributes(&q.object.name, rec, version),
    );
    for f in &q.fields {
        put_path(&mut out, &f.hops, &f.leaf.name, rec, r, version);
    }
    out
}

pub fn attributes(object: &str, rec: &Map<String, Value>, version: &str) -> Value {
    let id = rec.get("Id").and_then(Value::as_str).unwrap_or("");
    serde_json::json!({
        "type": object,
        "url": format!("/services/data/v{version}/sobjects/{object}/{id}"),
    })
}

fn put_path(
    out: &mut Map<String, Value>,
    hops: &[(String, String)],
    leaf: &str,
    rec: &Map<String, Value>,
    r: &dyn Resolver,
    version: &str,
) {
    let Some(((ref_field, rel), rest)) = hops.split_first() else {
        out.insert(
            leaf.to_string(),
            rec.get(leaf).cloned().unwrap_or(Value::Null),
        );
        return;
    };
    let target = rec
        .get(ref_field)
        .and_then(Value::as_str)
        .and_then(|id| r.lookup(id));
    match target {
        None => {
            out.entry(rel.clone()).or_insert(Value::Null);
        }
        Some((schema, trec)) => {
            let slot = out
                .entry(rel.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                if !inner.contains_key("attributes") {
                    inner.insert("attributes".into(), attributes(&schema.name, trec, version));
                }
                put_path(inner, rest, leaf, trec, r, version);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_panics_on_truncated_or_odd_input() {
        let catalog = Catalog::load();
        let now = Utc::now();
        let queries = [
            "SELECT Id, Owner.Email, Account.Name FROM Contact WHERE (LastName = 'O\\'B' OR Email != null) AND CreatedDate > 2026-01-01T00:00:00Z ORDER BY LastName DESC NULLS LAST LIMIT 5 OFFSET 2",
            "SELECT COUNT() FROM Event WHERE StartDateTime = LAST_N_DAYS:30 AND Id IN ('00U', 'x') AND NOT IsPrivate = true",
            "select id from lead where name like '50\\%' and email not in ('a','b')",
            "SELECT Id FROM Contact WHERE LastName = 'Müller ☃' AND Birthdate <= -5",
        ];
        for q in queries {
            for (i, _) in q.char_indices() {
                let _ = parse(&q[..i], &catalog, now);
            }
            let _ = parse(q, &catalog, now);
        }
        for odd in [
            "\u{0}",
            "'",
            "''",
            "SELECT",
            "SELECT Id FROM Contact WHERE Id = '\\",
            "(((",
            "SELECT Id FROM Contact WHERE N_DAYS_AGO:99999999999999999999 = TODAY",
            "SELECT Id FROM Event WHERE StartDateTime = NEXT_N_MONTHS:100000",
        ] {
            let _ = parse(odd, &catalog, now);
        }
        let err = parse("SELECT Id\nFROM Contact\nWHERE Foo = 1", &catalog, now).unwrap_err();
        assert!(
            err.message.contains("ERROR at Row:3:Column:7"),
            "{}",
            err.message
        );
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        // Found by the `soql` fuzz target: 4,060 unclosed parentheses overflowed the stack.
        let catalog = Catalog::load();
        let now = Utc::now();
        for q in [
            format!("SELECT Id FROM Contact WHERE {}", "(".repeat(4060)),
            format!(
                "SELECT Id FROM Contact WHERE {}LastName = 'x'",
                "NOT ".repeat(5000)
            ),
        ] {
            let e = parse(&q, &catalog, now).unwrap_err();
            assert_eq!(e.code, "MALFORMED_QUERY");
            assert!(
                e.message.contains("nested deeper than 64 levels"),
                "{}",
                e.message
            );
        }
        let fine = format!(
            "SELECT Id FROM Contact WHERE {}LastName = 'x'{}",
            "(".repeat(60),
            ")".repeat(60)
        );
        assert!(parse(&fine, &catalog, now).is_ok());
    }

    #[test]
    fn like_patterns() {
        assert!(like("O'Brien", "o'b%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
    }

    #[test]
    fn date_literals() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 15).unwrap();
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(
            date_literal("LAST_MONTH", None, today),
            Some((d(2026, 2, 1), d(2026, 3, 1)))
        );
        assert_eq!(
            date_literal("THIS_MONTH", None, today),
            Some((d(2026, 3, 1), d(2026, 4, 1)))
        );
        assert_eq!(
            date_literal("LAST_N_DAYS", Some(5), today),
            Some((d(2026, 3, 10), d(2026, 3, 16)))
        );
        assert_eq!(date_literal("LAST_N_DAYS", None, today), None);
        assert_eq!(date_literal("TODAY", Some(1), today), None);
        assert_eq!(
            date_literal("N_DAYS_AGO", Some(3), today),
            Some((d(2026, 3, 12), d(2026, 3, 13)))
        );
        assert_eq!(date_literal("N_DAYS_AGO", None, today), None);
        // 2026-03-15 is a Sunday: its week starts that day.
        assert_eq!(
            date_literal("LAST_N_WEEKS", Some(2), today),
            Some((d(2026, 3, 1), d(2026, 3, 15)))
        );
        assert_eq!(
            date_literal("NEXT_N_WEEKS", Some(1), today),
            Some((d(2026, 3, 22), d(2026, 3, 29)))
        );
        assert_eq!(
            date_literal("N_WEEKS_AGO", Some(1), today),
            Some((d(2026, 3, 8), d(2026, 3, 15)))
        );
        assert_eq!(
            date_literal("N_MONTHS_AGO", Some(2), today),
            Some((d(2026, 1, 1), d(2026, 2, 1)))
        );
        assert_eq!(
            date_literal("THIS_QUARTER", None, today),
            Some((d(2026, 1, 1), d(2026, 4, 1)))
        );
        assert_eq!(
            date_literal("LAST_QUARTER", None, today),
            Some((d(2025, 10, 1), d(2026, 1, 1)))
        );
        assert_eq!(
            date_literal("NEXT_QUARTER", None, d(2026, 11, 2)),
            Some((d(2027, 1, 1), d(2027, 4, 1)))
        );
        assert_eq!(
            date_literal("LAST_N_QUARTERS", Some(2), today),
            Some((d(2025, 7, 1), d(2026, 1, 1)))
        );
        assert_eq!(
            date_literal("NEXT_N_QUARTERS", Some(2), today),
            Some((d(2026, 4, 1), d(2026, 10, 1)))
        );
        assert_eq!(
            date_literal("N_QUARTERS_AGO", Some(1), today),
            Some((d(2025, 10, 1), d(2026, 1, 1)))
        );
        assert_eq!(
            date_literal("LAST_N_YEARS", Some(2), today),
            Some((d(2024, 1, 1), d(2026, 1, 1)))
        );
        assert_eq!(
            date_literal("NEXT_N_YEARS", Some(1), today),
            Some((d(2027, 1, 1), d(2028, 1, 1)))
        );
        assert_eq!(
            date_literal("N_YEARS_AGO", Some(3), today),
            Some((d(2023, 1, 1), d(2024, 1, 1)))
        );
        assert_eq!(date_literal("THIS_QUARTER", Some(1), today), None);
        let jan = d(2026, 1, 10);
        assert_eq!(
            date_literal("LAST_MONTH", None, jan),
            Some((d(2025, 12, 1), d(2026, 1, 1)))
        );
    }
}
