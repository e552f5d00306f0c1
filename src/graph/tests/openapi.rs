//! The judge of every JSON body: Microsoft's v1.0 description of our paths
//! (`../shared/graph-openapi/openapi-subset.json`, `extra-schemas.json`), read as
//! `validate.py` reads it (OpenAPI 3.0 → JSON Schema: `nullable` adds null, the anyOf
//! "or any object" branch means null, `additionalProperties: {type: object}` allows extra
//! members; `format` and `x-` members ignored).

use serde_json::{Map, Value, json};
use std::sync::OnceLock;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../shared/graph-openapi/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| load("openapi-subset.json"))
}

fn extra() -> &'static Value {
    static EXTRA: OnceLock<Value> = OnceLock::new();
    EXTRA.get_or_init(|| load("extra-schemas.json"))
}

fn null_object() -> Value {
    json!({"type": "object", "nullable": true})
}

fn convert(node: &Value, in_anyof: bool) -> Value {
    match node {
        Value::Array(items) => Value::Array(items.iter().map(|x| convert(x, in_anyof)).collect()),
        Value::Object(map) => {
            if in_anyof && *node == null_object() {
                return json!({"type": "null"});
            }
            let mut out = Map::new();
            for (k, v) in map {
                if k.starts_with("x-")
                    || matches!(
                        k.as_str(),
                        "nullable"
                            | "discriminator"
                            | "example"
                            | "xml"
                            | "externalDocs"
                            | "format"
                    )
                {
                    continue;
                }
                let converted = match k.as_str() {
                    "additionalProperties" if *v == json!({"type": "object"}) => json!(true),
                    "anyOf" | "oneOf" => Value::Array(
                        v.as_array()
                            .unwrap()
                            .iter()
                            .map(|x| convert(x, true))
                            .collect(),
                    ),
                    "properties" | "patternProperties" | "$defs" | "schemas" | "definitions" => {
                        Value::Object(
                            v.as_object()
                                .unwrap()
                                .iter()
                                .map(|(n, s)| (n.clone(), convert(s, false)))
                                .collect(),
                        )
                    }
                    _ => convert(v, false),
                };
                out.insert(k.clone(), converted);
            }
            if map.get("nullable") == Some(&json!(true)) {
                if let Some(t) = out.get_mut("type") {
                    *t = match t.take() {
                        Value::String(s) => json!([s, "null"]),
                        Value::Array(mut a) => {
                            a.push(json!("null"));
                            Value::Array(a)
                        }
                        other => other,
                    };
                }
                if let Some(Value::Array(e)) = out.get_mut("enum")
                    && !e.contains(&Value::Null)
                {
                    e.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The schema for a target named as `validate.py` names it: `microsoft.graph.contact`,
/// `"GET /users/{user-id}/calendarView/delta()"` (2XX answer), `"POST /users/{user-id}/events
/// request"`, `extra:batchRequest`.
fn schema_for(target: &str) -> Value {
    let spec = spec();
    if let Some(name) = target.strip_prefix("extra:") {
        let mut doc = json!({"$ref": format!("#/definitions/{name}")});
        doc["definitions"] = convert(&extra()["definitions"], false);
        return doc;
    }
    let schema = if target.contains(' ') {
        let parts: Vec<&str> = target.split_whitespace().collect();
        let op = &spec["paths"][parts[1]][parts[0].to_ascii_lowercase()];
        assert!(op.is_object(), "no operation {target}");
        if parts.get(2) == Some(&"request") {
            op["requestBody"]["content"]["application/json"]["schema"].clone()
        } else {
            let mut resp = op["responses"]["2XX"].clone();
            if let Some(r) = resp["$ref"].as_str() {
                let name = r.rsplit('/').next().unwrap();
                resp = spec["components"]["responses"][name].clone();
            }
            resp["content"]["application/json"]["schema"].clone()
        }
    } else {
        assert!(
            spec["components"]["schemas"].get(target).is_some(),
            "no schema {target}"
        );
        json!({"$ref": format!("#/components/schemas/{target}")})
    };
    let mut doc = convert(&schema, false);
    doc["components"] = json!({"schemas": convert(&spec["components"]["schemas"], false)});
    doc
}

/// The violations of `instance` against `target` (empty when valid).
pub fn violations(target: &str, instance: &Value) -> Vec<String> {
    let schema = schema_for(target);
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Panics with the violations unless `instance` is valid against `target`.
pub fn assert_valid(target: &str, instance: &Value) {
    let v = violations(target, instance);
    assert!(v.is_empty(), "{target}: {v:#?}\n{instance:#}");
}

#[test]
fn the_judge_refuses_what_the_description_refuses() {
    assert_valid(
        "microsoft.graph.contact",
        &json!({"givenName": "Ana", "emailAddresses": [{"address": "a@x.com"}], "@odata.etag": "W/\"x\""}),
    );
    assert!(!violations("microsoft.graph.contact", &json!({"givenName": 5})).is_empty());
    assert!(!violations("microsoft.graph.event", &json!({"start": {"dateTime": 5}})).is_empty());
    assert!(
        !violations(
            "extra:batchRequest",
            &json!({"requests": [{"id": "1", "method": "GET"}]})
        )
        .is_empty()
    );
    assert!(
        !violations(
            "extra:tokenError",
            &json!({"error": "invalid_client", "error_description": "no code"})
        )
        .is_empty()
    );
}
