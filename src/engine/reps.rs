//! Who syncs, under which configuration, through which mailbox. Users listed individually
//! in a configuration win over membership through a profile; a user listed individually in
//! two active configurations syncs under neither (validation reports it; the engine refuses
//! to guess). Each rep's mailbox is their Salesforce email, when its domain is one the
//! Exchange connection serves (its own domain and `additional_domains`).

use crate::config::model::{Config, ExchangeConnection};
use crate::engine::connector::{CrmUser, Mailbox};

#[derive(Debug, Clone, PartialEq)]
pub struct Rep {
    /// Salesforce user id.
    pub user_id: String,
    /// Lower-cased email.
    pub email: String,
    pub mailbox: Mailbox,
    /// Index into `Config::sync_configurations`.
    pub configuration: usize,
    pub time_zone: chrono_tz::Tz,
}

/// A user who should sync but cannot; reported, and the other reps carry on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepProblem {
    pub user: String,
    pub code: &'static str,
    pub message: String,
    pub suggestion: &'static str,
    /// The configuration the user would sync under (index into `sync_configurations`),
    /// when there is exactly one.
    pub configuration: Option<usize>,
}

fn domain(email: &str) -> Option<&str> {
    email.rsplit_once('@').map(|(_, d)| d)
}

/// Mail domains the Exchange connection serves; `None` when tether cannot tell (down-level
/// service account name, tenant given as an id), in which case every domain is tried.
pub fn mail_domains(config: &Config) -> Option<Vec<String>> {
    let (own, additional) = match &config.connections.exchange {
        ExchangeConnection::ServiceAccount {
            username,
            additional_domains,
            ..
        } => (domain(username).map(str::to_string), additional_domains),
        ExchangeConnection::Oauth2 {
            tenant,
            additional_domains,
            ..
        } => (
            tenant.contains('.').then(|| tenant.clone()),
            additional_domains,
        ),
    };
    let own = own?;
    let mut all = vec![own.to_lowercase()];
    all.extend(additional.iter().map(|d| d.trim().to_lowercase()));
    Some(all)
}

pub fn resolve_reps(config: &Config, users: &[CrmUser]) -> (Vec<Rep>, Vec<RepProblem>) {
    let domains = mail_domains(config);
    let active: Vec<(usize, _)> = config
        .sync_configurations
        .iter()
        .enumerate()
        .filter(|(_, c)| c.active)
        .collect();
    let mut reps = Vec::new();
    let mut problems = Vec::new();
    for (_, c) in &active {
        for listed in &c.members.users {
            if !users
                .iter()
                .any(|u| u.active && u.email.eq_ignore_ascii_case(listed))
            {
                problems.push(RepProblem {
                    user: listed.clone(),
                    code: "USER_NOT_FOUND",
                    message: format!(
                        "{listed} is a member of '{}' but is not an active Salesforce user",
                        c.name
                    ),
                    suggestion: "Check the email in members.users, or activate the user.",
                    configuration: None,
                });
            }
        }
    }
    for user in users.iter().filter(|u| u.active) {
        let individually: Vec<usize> = active
            .iter()
            .filter(|(_, c)| {
                c.members
                    .users
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&user.email))
            })
            .map(|(i, _)| *i)
            .collect();
        let configuration = match individually.as_slice() {
            [one] => Some(*one),
            [] => active
                .iter()
                .find(|(_, c)| c.members.profiles.iter().any(|p| p == &user.profile))
                .map(|(i, _)| *i),
            _ => {
                problems.push(RepProblem {
                    user: user.email.clone(),
                    code: "MULTIPLE_CONFIGURATIONS",
                    message: format!(
                        "{} is listed individually in {} active sync configurations",
                        user.email,
                        individually.len()
                    ),
                    suggestion: "List the user in one sync configuration only.",
                    configuration: None,
                });
                None
            }
        };
        let Some(configuration) = configuration else {
            continue;
        };
        let email = user.email.trim().to_lowercase();
        let served = match (&domains, domain(&email)) {
            (None, Some(_)) => true,
            (Some(ds), Some(d)) => ds.iter().any(|x| x == d),
            (_, None) => false,
        };
        if !served {
            problems.push(RepProblem {
                user: user.email.clone(),
                code: "NO_MAILBOX_DOMAIN",
                message: format!(
                    "{}'s mail domain is not served by the Exchange connection",
                    user.email
                ),
                suggestion: "Add the domain to connections.exchange.additional_domains.",
                configuration: Some(configuration),
            });
            continue;
        }
        reps.push(Rep {
            user_id: user.id.clone(),
            mailbox: Mailbox {
                address: email.clone(),
            },
            email,
            configuration,
            time_zone: user.time_zone.parse().unwrap_or(chrono_tz::UTC),
        });
    }
    (reps, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(configs: serde_json::Value) -> Config {
        serde_json::from_value(json!({
            "version": 1,
            "org": { "name": "acme", "kind": "production" },
            "connections": {
                "exchange": { "method": "service_account", "username": "svc@acme.com",
                              "password": "${env:P}", "additional_domains": ["acme.net"] },
                "salesforce": { "instance_url": "https://acme.my.salesforce.com",
                                "auth": { "flow": "access_token", "access_token": "${env:T}" } }
            },
            "sync_configurations": configs
        }))
        .unwrap()
    }

    fn user(id: &str, email: &str, profile: &str) -> CrmUser {
        CrmUser {
            id: id.into(),
            email: email.into(),
            profile: profile.into(),
            active: true,
            time_zone: "Europe/Paris".into(),
        }
    }

    #[test]
    fn a_user_listed_individually_wins_over_profile_membership() {
        let c = config(json!([
            { "name": "By profile", "members": { "profiles": ["Sales User"] } },
            { "name": "Named", "members": { "users": ["Ana@acme.com"] } }
        ]));
        let (reps, problems) = resolve_reps(
            &c,
            &[
                user("1", "ana@acme.com", "Sales User"),
                user("2", "bo@acme.com", "Sales User"),
                user("3", "cy@acme.com", "Admin"),
            ],
        );
        assert!(problems.is_empty());
        let by: Vec<(&str, usize)> = reps
            .iter()
            .map(|r| (r.user_id.as_str(), r.configuration))
            .collect();
        assert_eq!(by, vec![("1", 1), ("2", 0)]);
        assert_eq!(reps[0].time_zone, chrono_tz::Europe::Paris);
    }

    #[test]
    fn a_user_listed_individually_in_two_active_configurations_syncs_under_neither() {
        let c = config(json!([
            { "name": "A", "members": { "users": ["ana@acme.com"] } },
            { "name": "B", "members": { "users": ["ana@acme.com"] } },
            { "name": "Off", "active": false, "members": { "users": ["bo@acme.com"] } }
        ]));
        let (reps, problems) = resolve_reps(
            &c,
            &[
                user("1", "ana@acme.com", "x"),
                user("2", "bo@acme.com", "x"),
            ],
        );
        assert!(reps.is_empty(), "inactive configurations sync nobody");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, "MULTIPLE_CONFIGURATIONS");
    }

    #[test]
    fn mailboxes_link_by_email_honouring_additional_domains() {
        let c = config(json!([{ "name": "A", "members": { "profiles": ["Sales User"] } }]));
        let (reps, problems) = resolve_reps(
            &c,
            &[
                user("1", "ana@acme.com", "Sales User"),
                user("2", "Bo@ACME.net", "Sales User"),
                user("3", "cy@elsewhere.org", "Sales User"),
            ],
        );
        let mailboxes: Vec<&str> = reps.iter().map(|r| r.mailbox.address.as_str()).collect();
        assert_eq!(mailboxes, vec!["ana@acme.com", "bo@acme.net"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, "NO_MAILBOX_DOMAIN");
    }

    #[test]
    fn a_listed_user_who_is_not_an_active_salesforce_user_is_reported() {
        let c = config(json!([{ "name": "A", "members": { "users": ["gone@acme.com"] } }]));
        let mut inactive = user("1", "gone@acme.com", "x");
        inactive.active = false;
        let (reps, problems) = resolve_reps(&c, &[inactive]);
        assert!(reps.is_empty());
        assert_eq!(problems[0].code, "USER_NOT_FOUND");
    }
}
