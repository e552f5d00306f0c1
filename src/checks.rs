//! `tether test-connection`: the connection test of the admin guide plus remote
//! connectivity checks. Each check passes or fails with what to do; a failed check never
//! stops the others, so one run shows everything that needs fixing.

use crate::clock::Clock;
use crate::config::model::{Config, Direction, ExchangeApi};
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
    if config.connections.exchange.api() == ExchangeApi::Graph {
        match connect::graph(config, home, clock) {
            Err(e) => out.push(fail(
                "Exchange: connection settings",
                e.to_string(),
                "fix the setting named, then run test-connection again",
            )),
            Ok(client) => graph(&client, &graph_mailboxes(config, user), &mut out).await,
        }
    } else {
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

/// The mailboxes the Graph checks open: `--user`, or every user listed in an active
/// configuration (one cheap call each: a denial concerns one rep, not the setup).
fn graph_mailboxes(config: &Config, user: Option<&str>) -> Vec<String> {
    if let Some(u) = user {
        return vec![u.to_string()];
    }
    let mut out: Vec<String> = Vec::new();
    for u in config
        .sync_configurations
        .iter()
        .filter(|c| c.active)
        .flat_map(|c| &c.members.users)
    {
        if !out.iter().any(|x| x.eq_ignore_ascii_case(u)) {
            out.push(u.clone());
        }
    }
    out
}

/// Microsoft Graph: the app's token, then each rep's mailbox and Salesforce_Sync folder.
pub(crate) async fn graph(
    client: &crate::graph::GraphClient,
    mailboxes: &[String],
    out: &mut Vec<Check>,
) {
    use crate::graph::ErrorKind;
    const TOKEN: &str = "Exchange: app sign-in (Microsoft Graph)";
    if let Err(e) = client.sign_in().await {
        out.push(fail(
            TOKEN,
            e.to_string(),
            "fix the app registration setting named, then run test-connection again",
        ));
        return;
    }
    out.push(pass(TOKEN, "token issued"));
    if mailboxes.is_empty() {
        out.push(fail(
            "Exchange: mailbox access",
            "no rep to test with",
            "pass --user EMAIL, or list a user in an active sync configuration",
        ));
    }
    for mailbox in mailboxes {
        let name = format!("Exchange: mailbox of {mailbox}");
        if let Err(e) = client.check_mailbox(mailbox).await {
            let what = match e.kind {
                ErrorKind::Denied => "User recognized by Exchange service account: no",
                ErrorKind::NoMailbox => "no Exchange Online mailbox",
                _ => "not reachable",
            };
            let todo = e.hint.clone().unwrap_or_else(|| {
                "check the app's Contacts.ReadWrite and Calendars.ReadWrite application permissions".into()
            });
            out.push(fail(name, format!("{what}: {}", e.message), todo));
            continue;
        }
        out.push(pass(name, "contacts and calendar readable"));
        let folder = format!("Exchange: Salesforce_Sync folder of {mailbox}");
        match client
            .find_contact_folder(mailbox, crate::graph::folders::SYNC_FOLDER)
            .await
        {
            Ok(Some(_)) => out.push(pass(folder, "found")),
            Ok(None) => out.push(pass(
                folder,
                "not there yet; tether creates it under Contacts when it first syncs",
            )),
            Err(e) => out.push(fail(
                folder,
                e.to_string(),
                "check the app's Contacts.ReadWrite application permission for this mailbox",
            )),
        }
    }
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

/// The org's Outlook integration (Metadata API EmailIntegrationSettings): off fails only
/// when a configuration syncs just the events reps relate in Outlook; unreadable (no
/// permission for the Metadata API) is reported, not failed.
async fn outlook_integration(config: &Config, client: &SalesforceClient) -> Check {
    const NAME: &str = "Salesforce: Outlook integration";
    let needing = crate::engine::outlook::configurations_needing_it(config);
    match client.email_integration().await {
        Ok(s) if s.outlook_integration => pass(NAME, "enabled"),
        Ok(_) if needing.is_empty() => pass(
            NAME,
            "disabled (not needed: no configuration uses events.which: user_selected)",
        ),
        Ok(_) => fail(
            NAME,
            format!(
                "disabled, and {} sync only the events reps relate to Salesforce in Outlook \
                 (events.which: user_selected)",
                needing.join(", ")
            ),
            "enable it in Salesforce Setup (Outlook Integration and Sync), or set `events.which: all`",
        ),
        Err(e) => pass(
            NAME,
            format!(
                "not checked: {}",
                crate::salesforce::metadata::why_not_read(&e)
            ),
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
    out.push(outlook_integration(config, client).await);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::fake::{Canned, Fake};
    use crate::graph::tests::{DENIED, NO_MAILBOX, with_token};
    use serde_json::json;

    #[tokio::test]
    async fn graph_test_connection_checks_the_token_and_each_reps_mailbox() {
        let fake = Fake::start(with_token(|req| match req.mailbox().as_deref() {
            Some("out@corp.com") => Canned::raw(403, DENIED),
            Some("gone@corp.com") => Canned::raw(404, NO_MAILBOX),
            _ => Canned::json(200, &json!({"value": []})),
        }))
        .await;
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("TETHER_CHECKS_TEST_SECRET", "app-secret") };
        let config: Config = serde_json::from_value(json!({
            "version": 1,
            "org": {"name": "acme", "kind": "production"},
            "connections": {
                "exchange": {
                    "method": "oauth2", "api": "graph", "tenant": "corp.com", "client_id": "app-1",
                    "client_secret": "${env:TETHER_CHECKS_TEST_SECRET}",
                    "token_url": fake.token_url(), "graph_url": fake.graph_url(),
                },
                "salesforce": {"instance_url": "https://acme.my.salesforce.com", "auth": {"flow": "access_token", "access_token": "${env:X}"}},
            },
            "sync_configurations": [{"name": "Reps", "members": {"users": ["ana@corp.com", "out@corp.com", "gone@corp.com", "ANA@corp.com"]}}],
        }))
        .unwrap();
        let mut out = Vec::new();
        let client =
            connect::graph(&config, Path::new("."), Arc::new(crate::clock::SystemClock)).unwrap();
        graph(&client, &graph_mailboxes(&config, None), &mut out).await;
        let lines: Vec<String> = out
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                )
            })
            .collect();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert_eq!(
            lines[0],
            "PASS Exchange: app sign-in (Microsoft Graph): token issued"
        );
        assert_eq!(
            lines[1],
            "PASS Exchange: mailbox of ana@corp.com: contacts and calendar readable"
        );
        assert_eq!(
            lines[2],
            "PASS Exchange: Salesforce_Sync folder of ana@corp.com: not there yet; tether creates it under Contacts when it first syncs"
        );
        assert!(lines[3].starts_with("FAIL Exchange: mailbox of out@corp.com: User recognized by Exchange service account: no"), "{}", lines[3]);
        assert!(
            out[3]
                .remediation
                .as_deref()
                .unwrap()
                .contains("Test-ServicePrincipalAuthorization")
        );
        assert!(
            lines[4]
                .starts_with("FAIL Exchange: mailbox of gone@corp.com: no Exchange Online mailbox"),
            "{}",
            lines[4]
        );
        assert!(!format!("{out:?}").contains("app-secret"));
    }
}
