//! `tether test-connection`: the connection test of the admin guide plus remote
//! connectivity checks. Each check passes or fails with what to do; a failed check never
//! stops the others, so one run shows everything that needs fixing.

use crate::clock::Clock;
use crate::config::model::{Config, Direction};
use crate::connect;
use crate::mail::MailSide;
use crate::model::{EffectiveMapping, ObjectKind};
use crate::salesforce::{FieldUse, SalesforceClient, SfError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

pub(crate) fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        passed: true,
        detail: detail.into(),
        remediation: None,
    }
}

pub(crate) fn fail(
    name: impl Into<String>,
    detail: impl Into<String>,
    remediation: impl Into<String>,
) -> Check {
    Check {
        name: name.into(),
        passed: false,
        detail: detail.into(),
        remediation: Some(remediation.into()),
    }
}

/// The mailbox the Exchange checks act for: `--user`, or else the first user listed in an
/// active configuration.
fn probe_mailbox(config: &Config, user: Option<&str>) -> Option<String> {
    user.map(str::to_string).or_else(|| {
        config
            .sync_configurations
            .iter()
            .filter(|c| c.active)
            .find_map(|c| c.members.users.first().cloned())
    })
}

/// Runs every check. `home` resolves `${file:…}` references.
pub async fn run(
    config: &Config,
    home: &Path,
    user: Option<&str>,
    clock: Arc<dyn Clock>,
) -> Vec<Check> {
    let mut out = Vec::new();
    match MailSide::open(config, home, clock) {
        Err(e) => out.push(fail(
            "Exchange: connection settings",
            e.to_string(),
            "fix the setting named, then run test-connection again",
        )),
        Ok(mail) => {
            mail.connection_checks(probe_mailbox(config, user), &mut out)
                .await
        }
    }
    match connect::salesforce(config, home) {
        Err(e) => out.push(fail(
            "Salesforce: connection settings",
            e.to_string(),
            "fix the setting named, then run test-connection again",
        )),
        Ok(client) => salesforce(config, &client, &mut out).await,
    }
    out
}

/// Each configuration's direction and custom mappings for one object.
fn object_settings(
    config: &Config,
    object: ObjectKind,
) -> Vec<(Direction, &BTreeMap<String, Option<String>>)> {
    config
        .sync_configurations
        .iter()
        .filter_map(|c| match object {
            ObjectKind::Contact => c
                .contacts
                .as_ref()
                .map(|s| (s.direction, &s.field_mappings)),
            ObjectKind::Event => c.events.as_ref().map(|s| (s.direction, &s.field_mappings)),
        })
        .collect()
}

/// Auto-relate relates attendees as an event's contacts or lead (EventRelation.IsParent),
/// which Salesforce allows only with Shared Activities.
async fn shared_activities(config: &Config, client: &SalesforceClient) -> Check {
    const NAME: &str = "Salesforce: Shared Activities";
    let relating = config.sync_configurations.iter().any(|c| {
        c.active
            && c.events
                .as_ref()
                .is_some_and(|e| e.auto_relate && e.direction.to_salesforce())
    });
    match client.shared_activities().await {
        Ok(true) => pass(
            NAME,
            "on: an event can be related to up to 50 contacts or one lead",
        ),
        Ok(false) if relating => fail(
            NAME,
            "off: Salesforce refuses to relate contacts and leads to events, so auto_relate relates nothing",
            "enable Shared Activities (Setup → Activity Settings → Allow Users to Relate Multiple Contacts to Tasks and Events), or set `auto_relate: false` in the events settings",
        ),
        Ok(false) => pass(
            NAME,
            "off; not needed, as no active configuration auto-relates events",
        ),
        Err(e) => fail(
            NAME,
            e.to_string(),
            "give the integration user read access to Event, then run test-connection again",
        ),
    }
}

async fn salesforce(config: &Config, client: &SalesforceClient, out: &mut Vec<Check>) {
    let sf = &config.connections.salesforce;
    let flow = client.options().auth.flow();
    match client.limits().await {
        Ok(_) => {
            out.push(pass(
                format!("Salesforce: authentication ({flow})"),
                "signed in",
            ));
            out.push(pass(
                format!("Salesforce: API version {}", sf.api_version),
                "offered by the org",
            ));
        }
        Err(e @ SfError::Auth { .. }) => {
            out.push(fail(
                format!("Salesforce: authentication ({flow})"),
                e.to_string(),
                match flow {
                    "jwt_bearer" => "check the connected app's consumer key, that its certificate matches `private_key`, and that the integration user is pre-authorized (admin approved users)",
                    "client_credentials" => "check the consumer key and secret, and that the connected app enables the client credentials flow with a run-as user",
                    _ => "check the credentials of the flow named",
                },
            ));
            return;
        }
        Err(e) if e.error_code() == Some("NOT_FOUND") => {
            out.push(pass(
                format!("Salesforce: authentication ({flow})"),
                "signed in",
            ));
            out.push(fail(
                format!("Salesforce: API version {}", sf.api_version),
                e.to_string(),
                "set `api_version` to a version the org offers",
            ));
            return;
        }
        Err(e) => {
            out.push(fail(
                "Salesforce: reachable",
                e.to_string(),
                "check `instance_url`, the network path to Salesforce and its certificate (`ca_file` for a private CA)",
            ));
            return;
        }
    }
    for object in ObjectKind::ALL {
        let settings = object_settings(config, object);
        let mut fields: Vec<(String, FieldUse)> = Vec::new();
        for (direction, custom) in settings.into_iter().filter(|(d, _)| *d != Direction::None) {
            let mapping = EffectiveMapping::new(object, custom);
            for f in mapping
                .fields
                .iter()
                .filter(|f| !f.salesforce.contains('.') && f.salesforce != "Attendees")
            {
                let uses: &[FieldUse] = if direction.to_salesforce() {
                    &[FieldUse::Read, FieldUse::Create, FieldUse::Update]
                } else {
                    &[FieldUse::Read]
                };
                for u in uses {
                    if !fields.iter().any(|(n, x)| *n == f.salesforce && x == u) {
                        fields.push((f.salesforce.clone(), *u));
                    }
                }
            }
        }
        if fields.is_empty() {
            continue;
        }
        // Creates in Salesforce carry their journal marker in this External ID field, so a
        // create is looked up, never repeated, after a crash (README: "Salesforce setup").
        if fields.iter().any(|(_, u)| *u == FieldUse::Create) {
            for u in [FieldUse::Read, FieldUse::Create] {
                fields.push((crate::salesforce::connector::SYNC_KEY_FIELD.to_string(), u));
            }
        }
        let api_name = match object {
            ObjectKind::Contact => "Contact",
            ObjectKind::Event => "Event",
        };
        let name = format!("Salesforce: mapped {api_name} fields");
        let refs: Vec<(&str, FieldUse)> = fields.iter().map(|(n, u)| (n.as_str(), *u)).collect();
        let mut distinct: Vec<&str> = refs.iter().map(|(n, _)| *n).collect();
        distinct.sort_unstable();
        distinct.dedup();
        match client.check_fields(api_name, &refs).await {
            Ok(()) => out.push(pass(name, format!("{} fields usable", distinct.len()))),
            Err(e) => out.push(fail(
                name,
                e.to_string(),
                "give the integration user field-level access to these fields, or change the mapping; create Tether_Sync_Key__c as the README's Salesforce setup says",
            )),
        }
    }
    out.push(shared_activities(config, client).await);
    match client.api_usage() {
        Some(usage) if usage.max > 0 => {
            let share = usage.used as f64 / usage.max as f64;
            let mut detail = format!(
                "{} of {} daily API requests used ({:.0}%)",
                usage.used,
                usage.max,
                share * 100.0
            );
            let mut app_share = 0.0;
            if let Some(app) = usage.per_app.as_ref().filter(|a| a.max > 0) {
                app_share = app.used as f64 / app.max as f64;
                detail.push_str(&format!(
                    "; connected app {}: {} of {} ({:.0}%)",
                    if app.app.is_empty() {
                        "quota"
                    } else {
                        &app.app
                    },
                    app.used,
                    app.max,
                    app_share * 100.0
                ));
            }
            if share < 0.9 && app_share < 0.9 {
                out.push(pass("Salesforce: API usage", detail));
            } else {
                out.push(fail(
                    "Salesforce: API usage",
                    detail,
                    "the org (or the connected app) is close to its daily API allowance; sync when usage is lower or raise the allowance",
                ));
            }
        }
        _ => out.push(pass("Salesforce: API usage", "not reported by the org")),
    }
}
