//! The JSON Schema of the configuration (generated from the typed model) and its use as the
//! second validation layer: every violation becomes a diagnostic at the offending node, in
//! words an admin can act on. Values of secret fields are never echoed.

use super::diag::Diagnostic;
use super::yaml::{Kind, Node};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use std::sync::OnceLock;

pub const SCHEMA_ID: &str = "https://tether.dev/schemas/tether.schema.json";

/// The schema as checked in at `schemas/tether.schema.json`.
pub fn schema() -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(super::model::Config)).expect("schema");
    let obj = schema.as_object_mut().expect("schema is an object");
    obj.insert("$id".into(), SCHEMA_ID.into());
    obj.insert("title".into(), "tether configuration".into());
    schema
}

pub const FRAGMENT_SCHEMA_ID: &str = "https://tether.dev/schemas/tether-fragment.schema.json";

/// The schema of a fragment, as checked in at `schemas/tether-fragment.schema.json`: a file
/// of a multi-file configuration that holds only some of it (say `sync_configurations`, or
/// one of the `connections`), for editors' modelines. It is the configuration's schema with
/// nothing required; `org` is left out, since a file with `org` is the configuration's root
/// (see `load`). `tether validate` checks the merged configuration with [`schema`].
pub fn fragment_schema() -> Value {
    let mut schema = schema();
    let obj = schema.as_object_mut().expect("schema is an object");
    obj.insert("$id".into(), FRAGMENT_SCHEMA_ID.into());
    obj.insert("title".into(), "tether configuration fragment".into());
    obj.insert(
        "description".into(),
        "A file of a multi-file tether configuration without `org` (that file is the root): \
         any of its other top-level keys, none required. Directory files are merged: \
         `sync_configurations` lists are joined, `connections` merged one level down."
            .into(),
    );
    obj.remove("required");
    obj.insert("minProperties".into(), 1.into());
    let properties = obj["properties"].as_object_mut().expect("properties");
    properties.remove("org");
    properties.insert(
        "connections".into(),
        serde_json::json!({ "$ref": "#/$defs/ConnectionsFragment" }),
    );
    let defs = obj["$defs"].as_object_mut().expect("$defs");
    let mut connections = defs["Connections"].clone();
    let connections_obj = connections.as_object_mut().expect("Connections");
    connections_obj.remove("required");
    connections_obj.insert("minProperties".into(), 1.into());
    connections_obj.insert(
        "description".into(),
        "Some of the connections; the others are in another file of the configuration.".into(),
    );
    defs.insert("ConnectionsFragment".into(), connections);
    schema
}

/// `tether schema` output and the checked-in file: pretty JSON with a final newline.
pub fn schema_text() -> String {
    pretty(&schema())
}

/// `tether schema fragment` output and the checked-in file.
pub fn fragment_schema_text() -> String {
    pretty(&fragment_schema())
}

fn pretty(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("schema serializes");
    text.push('\n');
    text
}

fn compiled() -> &'static (Value, Validator) {
    static COMPILED: OnceLock<(Value, Validator)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let schema = schema();
        let validator = jsonschema::validator_for(&schema).expect("generated schema compiles");
        (schema, validator)
    })
}

/// Keys whose values are secret references; their values are never shown.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "client_secret",
    "private_key",
    "refresh_token",
    "access_token",
    "security_token",
];

/// Findings of one schema check, before the last clean-up.
#[derive(Default)]
struct Findings {
    diagnostics: Vec<Diagnostic>,
    /// (object path, key) of each "missing required key" finding, by diagnostic index.
    missing: Vec<(usize, String, String)>,
    /// (object path, suggested key) of each unknown key with a suggestion.
    suggested: Vec<(String, String)>,
}

/// Validates a merged configuration tree against the schema.
pub fn check(root: &Node) -> Vec<Diagnostic> {
    let (schema, validator) = compiled();
    let instance = root.to_json();
    let mut found = Findings::default();
    for error in validator.iter_errors(&instance) {
        describe(schema, root, &error, &mut found);
    }
    // `pasword:` is one mistake: say "unknown key, did you mean `password`", not also
    // "missing `password`".
    let typo_for =
        |path: &str, key: &str| found.suggested.iter().any(|(p, k)| p == path && k == key);
    let drop: Vec<usize> = found
        .missing
        .iter()
        .filter(|(_, path, key)| typo_for(path, key))
        .map(|(i, _, _)| *i)
        .collect();
    found
        .diagnostics
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, d)| d)
        .collect()
}

fn describe(schema: &Value, root: &Node, error: &ValidationError<'_>, found: &mut Findings) {
    let out = &mut found.diagnostics;
    let path = error.instance_path().as_str().to_string();
    let node = root.lookup(&path, false);
    let span = node.map(|n| n.span);
    let key_span = root.lookup(&path, true).map(|n| n.span).or(span);
    let name = dotted(&path);
    let secret = is_secret_path(&path);
    let schema_path = error.schema_path().as_str();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(schema, schema_path);
            for key in unexpected {
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                let at = root.lookup(&child, true).map(|n| n.span).or(span);
                let where_ = if name.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `{name}`")
                };
                let mut d = Diagnostic::error(at, format!("unknown key `{key}` {where_}"));
                d = match did_you_mean(key, &allowed) {
                    // A service account signs in to EWS only; Graph takes an app registration.
                    _ if path == "/connections/exchange"
                        && matches!(key.as_str(), "api" | "graph_url") =>
                    {
                        d.with_hint("Microsoft Graph needs `method: oauth2` (an app registration with `tenant`, `client_id` and `client_secret` or `certificate`); a service account reaches EWS only")
                    }
                    Some(s) => {
                        found.suggested.push((path.clone(), s.clone()));
                        d.with_hint(format!("did you mean `{s}`?"))
                    }
                    None => d.with_hint(format!("valid keys here: {}", allowed.join(", "))),
                };
                out.push(d);
            }
        }
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            found
                .missing
                .push((out.len(), path.clone(), property.to_string()));
            let where_ = if name.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{name}`")
            };
            out.push(Diagnostic::error(
                key_span,
                format!("missing required key `{property}` {where_}"),
            ));
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .filter(|t| t != "null")
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let found = node.map_or("nothing", |n| kind_name(&n.kind));
            out.push(Diagnostic::error(
                span,
                format!("`{name}` must be {}, not {found}", article(&expected)),
            ));
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let found = node.map(scalar_text).unwrap_or_default();
            let mut d = Diagnostic::error(
                span,
                format!(
                    "`{name}` must be one of {}; found `{found}`",
                    options.join(", ")
                ),
            );
            if let Some(s) = did_you_mean(&found, &options) {
                d = d.with_hint(format!("did you mean `{s}`?"));
            }
            out.push(d);
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            describe_variants(schema, root, &path, node, context, found);
        }
        ValidationErrorKind::Pattern { .. } => {
            out.push(pattern_message(schema_path, &name, node, span, secret));
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::Maximum { limit }
            if name == "version" =>
        {
            let _ = limit;
            let found = node.map(scalar_text).unwrap_or_default();
            out.push(
                Diagnostic::error(span, format!("unsupported `version` {found}"))
                    .with_hint("this tether reads configuration version 1; write `version: 1`"),
            );
        }
        ValidationErrorKind::MinLength { .. } => {
            out.push(Diagnostic::error(
                span,
                format!("`{name}` must not be empty"),
            ));
        }
        ValidationErrorKind::MaxLength { limit } => {
            out.push(Diagnostic::error(
                span,
                format!("`{name}` is longer than {limit} characters"),
            ));
        }
        _ if secret => out.push(Diagnostic::error(
            span,
            format!("`{name}` is not a valid secret reference"),
        )),
        _ => out.push(Diagnostic::error(
            span,
            format!("`{name}`: {}", error.masked()),
        )),
    }
}

/// A `oneOf`/`anyOf` failed. Tagged unions (`method`, `flow`) report the errors of the
/// variant the tag names, or say the tag is missing or unknown; optional values (`X | null`)
/// report the errors of the non-null branch.
fn describe_variants(
    schema: &Value,
    root: &Node,
    path: &str,
    node: Option<&Node>,
    context: &[Vec<ValidationError<'static>>],
    found: &mut Findings,
) {
    let name = dotted(path);
    // Tag values and the tag key come from the variants' `const` errors.
    let mut tag_key = None;
    let mut tag_values = Vec::new();
    let mut candidates = Vec::new();
    for errors in context {
        let mut mismatched = false;
        for e in errors {
            let e_path = e.instance_path().as_str();
            match e.kind() {
                ValidationErrorKind::Constant { expected_value } if e_path != path => {
                    tag_key = e_path.rsplit('/').next().map(String::from);
                    tag_values.extend(expected_value.as_str().map(String::from));
                    mismatched = true;
                }
                ValidationErrorKind::Type { .. } if e_path == path => mismatched = true,
                _ => {}
            }
        }
        if !mismatched {
            candidates.push(errors);
        }
    }
    if let Some(best) = candidates.into_iter().min_by_key(|errors| errors.len()) {
        for e in best {
            describe(schema, root, e, found);
        }
        return;
    }
    let out = &mut found.diagnostics;
    let span = node.map(|n| n.span);
    match (tag_key, node) {
        (Some(tag), Some(n)) => match n.get(&tag) {
            Some(value) => {
                let found = scalar_text(value);
                let mut d = Diagnostic::error(
                    Some(value.span),
                    format!(
                        "unknown {tag} `{found}` in `{name}`; expected one of {}",
                        tag_values.join(", ")
                    ),
                );
                if let Some(s) = did_you_mean(&found, &tag_values) {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                out.push(d);
            }
            None => out.push(
                Diagnostic::error(span, format!("missing required key `{tag}` in `{name}`"))
                    .with_hint(format!("set `{tag}` to one of {}", tag_values.join(", "))),
            ),
        },
        _ => {
            let found = node.map_or("nothing", |n| kind_name(&n.kind));
            out.push(Diagnostic::error(
                span,
                format!("`{name}` has the wrong form ({found})"),
            ));
        }
    }
}

fn pattern_message(
    schema_path: &str,
    name: &str,
    node: Option<&Node>,
    span: Option<super::source::Span>,
    secret: bool,
) -> Diagnostic {
    let last = name.rsplit('.').next().unwrap_or(name);
    if secret || schema_path.contains("SecretRef") {
        return Diagnostic::error(span, format!("`{name}` must be a secret reference, not a literal value"))
            .with_hint("write `${env:NAME}` to read it from an environment variable, or `${file:PATH}` to read it from a file (relative to this file); keep secrets out of git");
    }
    let found = node.map(scalar_text).unwrap_or_default();
    match last {
        "since" => Diagnostic::error(
            span,
            format!(
                "`{name}` must be {}; found `{found}`",
                super::model::Since::FORMS
            ),
        ),
        "api_version" => Diagnostic::error(
            span,
            format!("`{name}` must be a Salesforce API version such as `62.0`; found `{found}`"),
        ),
        "thumbprint" => Diagnostic::error(
            span,
            format!(
                "`{name}` must be the certificate's thumbprint: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits"
            ),
        ),
        _ => Diagnostic::error(span, format!("`{name}` has the wrong format: `{found}`")),
    }
}

/// The keys a mapping allows: the `properties` next to the failing `additionalProperties`.
fn allowed_keys(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .rsplit_once('/')
        .map_or("", |(parent, _)| parent);
    let mut node = schema;
    for seg in parent.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) if seg == "$ref" => map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|p| schema.pointer(p))
                .unwrap_or(node),
            Value::Object(map) => match map.get(&seg) {
                Some(next) => next,
                None => return Vec::new(),
            },
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(next) => next,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
    }
    let mut keys: Vec<String> = node
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The closest candidate, if it is close enough to be a likely typo.
pub fn did_you_mean(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .filter(|c| c.as_str() != word)
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

/// `/sync_configurations/0/contacts` → `sync_configurations[0].contacts`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

fn is_secret_path(pointer: &str) -> bool {
    pointer
        .rsplit('/')
        .next()
        .is_some_and(|last| SECRET_KEYS.contains(&last))
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Null => "null",
        Kind::Bool(_) => "a boolean",
        Kind::Int(_) | Kind::Float(_) => "a number",
        Kind::Str(_) => "a string",
        Kind::Seq(_) => "a list",
        Kind::Map(_) => "a mapping",
    }
}

fn article(t: &str) -> String {
    match t {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "integer" => "a whole number".into(),
        "string or null" | "string" => "a string".into(),
        other => format!(
            "a{} {other}",
            if other.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "n"
            } else {
                ""
            }
        ),
    }
}

/// Short text of a scalar for messages (never used for secret fields).
fn scalar_text(node: &Node) -> String {
    let text = match &node.kind {
        Kind::Str(s) => s.clone(),
        Kind::Int(i) => i.to_string(),
        Kind::Float(f) => f.to_string(),
        Kind::Bool(b) => b.to_string(),
        Kind::Null => "null".into(),
        Kind::Seq(_) => "[…]".into(),
        Kind::Map(_) => "{…}".into(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let keys: Vec<String> = ["password", "username", "ews_url"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(did_you_mean("pasword", &keys).as_deref(), Some("password"));
        assert_eq!(did_you_mean("Username", &keys).as_deref(), Some("username"));
        assert_eq!(did_you_mean("colour", &keys), None);
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(
            dotted("/sync_configurations/0/contacts"),
            "sync_configurations[0].contacts"
        );
        assert_eq!(dotted(""), "");
    }
}
