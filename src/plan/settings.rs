//! The settings section of a plan: the desired configuration against the last applied
//! one, field by field. Sync configurations are matched by name, members as sets, long
//! text as a line diff; secret references show only as "(changed)" or "(unchanged)".

use crate::config::model::Config;
use crate::config::schema::SECRET_KEYS;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Change,
    Remove,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Add => '+',
            Action::Change => '~',
            Action::Remove => '-',
        }
    }
}

/// One changed setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SettingChange {
    pub action: Action,
    /// Where: `connections.exchange`, `sync configuration "Sales Reps"`, …
    pub scope: String,
    /// The setting within the scope (`ews_url`, `contacts.direction`, `members.users`), or
    /// empty when the whole scope is added or removed.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// For multi-line text: the line diff, each line prefixed with `+`, `-` or ` `.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_diff: Vec<String>,
}

/// What changes from `applied` (None: nothing applied yet) to `desired`.
pub fn diff(applied: Option<&Config>, desired: &Config) -> Vec<SettingChange> {
    let old = applied.map(|c| serde_json::to_value(c).expect("config serializes"));
    let new = serde_json::to_value(desired).expect("config serializes");
    let empty = Value::Object(Default::default());
    let old = old.as_ref().unwrap_or(&empty);
    let mut out = Vec::new();
    for section in ["version", "org", "connections", "outlook_integration"] {
        walk(section, "", old.get(section), new.get(section), &mut out);
    }
    sync_configurations(old, &new, &mut out);
    out
}

fn sync_configurations(old: &Value, new: &Value, out: &mut Vec<SettingChange>) {
    let list = |v: &Value| -> Vec<Value> {
        v.get("sync_configurations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_string();
    let (old_list, new_list) = (list(old), list(new));
    for n in &new_list {
        let scope = format!("sync configuration \"{}\"", name(n));
        match old_list.iter().find(|o| name(o) == name(n)) {
            Some(o) => walk(&scope, "", Some(o), Some(n), out),
            None => {
                out.push(SettingChange {
                    action: Action::Add,
                    scope: scope.clone(),
                    field: String::new(),
                    before: None,
                    after: None,
                    text_diff: Vec::new(),
                });
                walk(&scope, "", None, Some(n), out);
            }
        }
    }
    for o in old_list
        .iter()
        .filter(|o| !new_list.iter().any(|n| name(n) == name(o)))
    {
        out.push(SettingChange {
            action: Action::Remove,
            scope: format!("sync configuration \"{}\"", name(o)),
            field: String::new(),
            before: None,
            after: None,
            text_diff: Vec::new(),
        });
    }
}

fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

fn walk(
    scope: &str,
    field: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    out: &mut Vec<SettingChange>,
) {
    if old == new {
        return;
    }
    let last = field.rsplit('.').next().unwrap_or(field);
    if SECRET_KEYS.contains(&last) {
        let after = if old.is_some() { "(changed)" } else { "(set)" };
        out.push(change(
            scope,
            field,
            old.map(|_| "(set)".into()),
            new.map(|_| after.into()),
        ));
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(scope, &join(field, k), o.get(k), n.get(k), out);
            }
        }
        (None, Some(Value::Object(n))) => {
            for (k, v) in n {
                walk(scope, &join(field, k), None, Some(v), out);
            }
        }
        (Some(Value::Object(o)), None) => {
            for (k, v) in o {
                walk(scope, &join(field, k), Some(v), None, out);
            }
        }
        // Lists of names (members, domains, filter values): what was added and removed.
        (o, n) if is_name_list(o) && is_name_list(n) => {
            let names = |v: Option<&Value>| -> Vec<String> {
                v.and_then(Value::as_array)
                    .map(|a| a.iter().map(short).collect())
                    .unwrap_or_default()
            };
            let (o, n) = (names(o), names(n));
            for added in n.iter().filter(|x| !o.contains(x)) {
                out.push(change(scope, field, None, Some(added.clone())));
            }
            for removed in o.iter().filter(|x| !n.contains(x)) {
                out.push(change(scope, field, Some(removed.clone()), None));
            }
        }
        (Some(Value::String(o)), Some(Value::String(n)))
            if o.contains('\n') || n.contains('\n') =>
        {
            let mut c = change(scope, field, None, None);
            c.action = Action::Change;
            c.text_diff = TextDiff::from_lines(o, n)
                .iter_all_changes()
                .map(|ch| {
                    let sign = match ch.tag() {
                        ChangeTag::Delete => '-',
                        ChangeTag::Insert => '+',
                        ChangeTag::Equal => ' ',
                    };
                    format!("{sign}{}", ch.value().trim_end_matches('\n'))
                })
                .collect();
            out.push(c);
        }
        (o, n) => out.push(change(scope, field, o.map(short), n.map(short))),
    }
}

fn is_name_list(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(Value::Array(items)) => items.iter().all(|i| !i.is_object() && !i.is_array()),
        Some(_) => false,
    }
}

fn change(
    scope: &str,
    field: &str,
    before: Option<String>,
    after: Option<String>,
) -> SettingChange {
    let action = match (&before, &after) {
        (None, Some(_)) => Action::Add,
        (Some(_), None) => Action::Remove,
        _ => Action::Change,
    };
    SettingChange {
        action,
        scope: scope.to_string(),
        field: field.to_string(),
        before,
        after,
        text_diff: Vec::new(),
    }
}

/// A value as one line of a plan.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "~".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::*;

    fn config(yaml_users: &[&str], password: &str, description: &str) -> Config {
        let value = serde_json::json!({
            "version": 1,
            "org": {"name": "acme", "kind": "production"},
            "connections": {
                "exchange": {"method": "service_account", "username": "svc@acme.com", "password": password},
                "salesforce": {"instance_url": "https://acme.my.salesforce.com", "auth": {"flow": "access_token", "access_token": "${env:T}"}}
            },
            "sync_configurations": [{
                "name": "Reps",
                "description": description,
                "members": {"users": yaml_users},
                "contacts": {"direction": "both", "conflict": "salesforce_wins", "scope": "users_records"}
            }]
        });
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn no_change_is_empty() {
        let c = config(&["a@acme.com"], "${env:P}", "x");
        assert!(diff(Some(&c), &c).is_empty());
    }

    #[test]
    fn members_show_as_added_and_removed_names() {
        let old = config(&["a@acme.com", "b@acme.com"], "${env:P}", "x");
        let new = config(&["a@acme.com", "c@acme.com"], "${env:P}", "x");
        let changes = diff(Some(&old), &new);
        assert_eq!(changes.len(), 2, "{changes:#?}");
        assert_eq!(
            (changes[0].action, changes[0].after.as_deref()),
            (Action::Add, Some("c@acme.com"))
        );
        assert_eq!(
            (changes[1].action, changes[1].before.as_deref()),
            (Action::Remove, Some("b@acme.com"))
        );
        assert_eq!(changes[0].scope, "sync configuration \"Reps\"");
        assert_eq!(changes[0].field, "members.users");
    }

    #[test]
    fn secrets_show_only_as_changed() {
        let old = config(&["a@acme.com"], "${env:OLD_PW}", "x");
        let new = config(&["a@acme.com"], "${env:NEW_PW}", "x");
        let changes = diff(Some(&old), &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "exchange.password");
        assert_eq!(changes[0].after.as_deref(), Some("(changed)"));
        let text = serde_json::to_string(&changes).unwrap();
        assert!(!text.contains("OLD_PW") && !text.contains("NEW_PW"));
    }

    #[test]
    fn long_text_is_a_line_diff() {
        let old = config(&["a@acme.com"], "${env:P}", "line one\nline two\n");
        let new = config(&["a@acme.com"], "${env:P}", "line one\nline 2\n");
        let changes = diff(Some(&old), &new);
        assert_eq!(
            changes[0].text_diff,
            vec![" line one", "-line two", "+line 2"]
        );
    }

    #[test]
    fn first_apply_adds_everything() {
        let new = config(&["a@acme.com"], "${env:P}", "x");
        let changes = diff(None, &new);
        assert!(changes.iter().all(|c| c.action == Action::Add));
        assert!(
            changes
                .iter()
                .any(|c| c.scope == "sync configuration \"Reps\"" && c.field.is_empty())
        );
        assert!(
            changes
                .iter()
                .any(|c| c.field == "exchange.password" && c.after.as_deref() == Some("(set)"))
        );
    }
}
