//! What a read of both sides learned about each rep and about the Exchange connection
//! (the admin guide's status checks), as state changes. The cycle writes them in its final
//! transaction, so `tether status` answers offline from the state.

use crate::config::model::{Config, Direction};
use crate::engine::connector::{ErrorKind, MailConnector, RepError};
use crate::engine::cycle::ReadOutcome;
use crate::engine::rules::ObjectSettings;
use crate::model::ObjectKind;
use crate::state::{RepFacts, StateChange, StateError, StateStore, SystemFacts};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Why Exchange refused the service account itself in this read (its credentials, or its
/// token), if it did.
pub fn exchange_refused(read: &ReadOutcome) -> Option<String> {
    read.rep_errors.iter().find_map(|(_, e)| match e {
        RepError::Call(c) if c.kind == ErrorKind::Auth => Some(c.message.clone()),
        _ => None,
    })
}

/// The facts of `read`: one `SetRepFacts` per rep read or reported, one per rep seen before
/// who is no longer in any active configuration (unless `only_reps` leaves them out), and
/// the system's `SetSystemFacts`.
pub fn changes<M: MailConnector, S: StateStore>(
    config: &Config,
    read: &ReadOutcome,
    mail: &M,
    state: &S,
    only_reps: Option<&BTreeSet<String>>,
    now: DateTime<Utc>,
) -> Result<Vec<StateChange>, StateError> {
    let mut facts: BTreeMap<String, RepFacts> = BTreeMap::new();
    let name = |i: usize| config.sync_configurations.get(i).map(|c| c.name.clone());
    for rep in &read.reps {
        let objects: Vec<ObjectKind> = ObjectKind::ALL
            .into_iter()
            .filter(|o| {
                config
                    .sync_configurations
                    .get(rep.configuration)
                    .is_some_and(|c| ObjectSettings::of(c, *o).direction != Direction::None)
            })
            .collect();
        let error = read
            .rep_errors
            .iter()
            .find(|(r, _)| r.user_id == rep.user_id)
            .map(|(_, e)| e);
        let was_read = |o: ObjectKind| read.folder_cursors.contains_key(&(rep.user_id.clone(), o));
        let reached = error.is_none() && objects.iter().any(|o| was_read(*o));
        let (impersonation, addresses_linked) = match error {
            None if reached => (Some(true), Some(true)),
            None => (None, None),
            // Exchange resolved the address before refusing to act for it.
            Some(RepError::ImpersonationDenied(_)) => (Some(false), Some(true)),
            Some(RepError::NoMailbox(_)) => (None, Some(false)),
            // The mailbox answered: it exists and the service account may act for it.
            Some(
                RepError::FolderMissing(_)
                | RepError::CursorExpired(_)
                | RepError::ClaimedElsewhere(_),
            ) => (Some(true), Some(true)),
            Some(RepError::Call(_)) => (None, None),
        };
        let found = |o: ObjectKind| {
            (objects.contains(&o) && error.is_none()).then(|| {
                was_read(o)
                    && !(o == ObjectKind::Contact && read.folders_to_create.contains(&rep.email))
            })
        };
        facts.insert(
            rep.email.clone(),
            RepFacts {
                email: rep.email.clone(),
                user_id: Some(rep.user_id.clone()),
                at: now,
                configuration: name(rep.configuration),
                problem: None,
                mailbox: Some(rep.mailbox.address.clone()),
                addresses_linked,
                impersonation,
                exchange_build: if impersonation == Some(true) {
                    mail.server_build(&rep.mailbox)
                } else {
                    None
                },
                contacts_folder: found(ObjectKind::Contact),
                calendar: found(ObjectKind::Event),
                objects,
                mailbox_error: error.map(|e| (e.code().to_string(), e.message())),
            },
        );
    }
    let ids: BTreeMap<String, String> = state
        .rep_emails()?
        .into_iter()
        .map(|(id, email)| (email.to_lowercase(), id))
        .collect();
    for p in &read.problems {
        let email = p.user.trim().to_lowercase();
        facts.entry(email.clone()).or_insert_with(|| RepFacts {
            user_id: ids.get(&email).cloned(),
            at: now,
            configuration: p.configuration.and_then(name),
            problem: Some((p.code.to_string(), p.message.clone())),
            addresses_linked: (p.code == "NO_MAILBOX_DOMAIN").then_some(false),
            email,
            ..RepFacts::default()
        });
    }
    // Reps seen before and now in no active configuration: "assigned: no", not gone.
    let known = state
        .rep_facts()?
        .into_iter()
        .map(|f| (f.email.clone(), f.user_id))
        .chain(
            ids.iter()
                .map(|(email, id)| (email.clone(), Some(id.clone()))),
        );
    let mut left = Vec::new();
    for (email, user_id) in known {
        if facts.contains_key(&email) || only_reps.is_some_and(|only| !only.contains(&email)) {
            continue;
        }
        left.push(RepFacts {
            email,
            user_id,
            at: now,
            ..RepFacts::default()
        });
    }
    for f in left {
        facts.entry(f.email.clone()).or_insert(f);
    }

    let answered = !read.folder_cursors.is_empty()
        || read
            .rep_errors
            .iter()
            .any(|(_, e)| !matches!(e, RepError::Call(_)));
    let refused = exchange_refused(read);
    let system = SystemFacts {
        at: now,
        service_account_recognised: if refused.is_some() {
            Some(false)
        } else if answered {
            Some(true)
        } else {
            None
        },
        exchange_error: refused.or_else(|| {
            read.rep_errors.iter().find_map(|(_, e)| match e {
                RepError::Call(c) => Some(c.message.clone()),
                _ => None,
            })
        }),
        outlook_integration: read.outlook_integration.clone(),
    };
    let mut out: Vec<StateChange> = facts.into_values().map(StateChange::SetRepFacts).collect();
    out.push(StateChange::SetSystemFacts(system));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::CrmUser;
    use crate::engine::cycle::{SyncOptions, run_cycle};
    use crate::engine::execute::StepBudget;
    use crate::engine::memory::{Faults, MEMORY_EXCHANGE_BUILD, MemoryCrm, MemoryExchange};
    use crate::state::MemoryState;
    use serde_json::json;

    fn config(members: serde_json::Value) -> Config {
        serde_json::from_value(json!({
            "version": 1,
            "org": { "name": "acme", "kind": "production" },
            "connections": {
                "exchange": { "method": "service_account", "username": "svc@acme.com",
                              "password": "${env:P}" },
                "salesforce": { "instance_url": "https://acme.my.salesforce.com",
                                "auth": { "flow": "access_token", "access_token": "${env:T}" } }
            },
            "sync_configurations": [{
                "name": "Sales", "members": members,
                "contacts": { "direction": "both", "conflict": "salesforce_wins",
                              "scope": "users_records" }
            }]
        }))
        .unwrap()
    }

    fn user(n: usize, email: &str) -> CrmUser {
        CrmUser {
            id: format!("005{n:012}"),
            email: email.into(),
            profile: "Sales User".into(),
            active: true,
            time_zone: "Europe/Berlin".into(),
        }
    }

    async fn cycle(
        config: &Config,
        ex: &MemoryExchange,
        sf: &MemoryCrm,
        state: &mut MemoryState,
        options: &SyncOptions,
    ) {
        run_cycle(
            config,
            ex,
            sf,
            state,
            "2026-06-15T12:00:00Z".parse().unwrap(),
            options,
            &mut StepBudget::unlimited(),
        )
        .await
        .unwrap();
    }

    fn facts(state: &MemoryState) -> BTreeMap<String, RepFacts> {
        state
            .rep_facts()
            .unwrap()
            .into_iter()
            .map(|f| (f.email.clone(), f))
            .collect()
    }

    #[tokio::test]
    async fn a_cycle_records_what_it_learned_about_each_rep() {
        let by_profile = config(json!({ "profiles": ["Sales User"] }));
        let ex = MemoryExchange::new();
        let sf = MemoryCrm::new();
        for (n, email) in [
            "good@acme.com",
            "denied@acme.com",
            "nomailbox@acme.com",
            "far@elsewhere.org",
        ]
        .into_iter()
        .enumerate()
        {
            sf.add_user(user(n, email));
        }
        ex.add_mailbox("good@acme.com");
        ex.add_mailbox("denied@acme.com");
        ex.set_faults(Faults {
            denied: ["denied@acme.com".to_string()].into(),
            ..Faults::default()
        });
        let mut state = MemoryState::new();
        cycle(&by_profile, &ex, &sf, &mut state, &SyncOptions::default()).await;

        let f = facts(&state);
        let good = &f["good@acme.com"];
        assert_eq!(good.configuration.as_deref(), Some("Sales"));
        assert_eq!(good.impersonation, Some(true));
        assert_eq!(good.addresses_linked, Some(true));
        assert_eq!(good.exchange_build.as_deref(), Some(MEMORY_EXCHANGE_BUILD));
        assert_eq!(good.contacts_folder, Some(true), "the cycle creates it");
        assert_eq!(good.calendar, None, "events do not sync");
        assert_eq!(good.objects, [ObjectKind::Contact]);

        let denied = &f["denied@acme.com"];
        assert_eq!(denied.impersonation, Some(false));
        assert_eq!(denied.addresses_linked, Some(true));
        assert_eq!(denied.exchange_build, None);
        assert_eq!(denied.contacts_folder, None);
        assert_eq!(
            denied.mailbox_error.as_ref().map(|(c, _)| c.as_str()),
            Some(crate::engine::memory::codes::DENIED)
        );

        let missing = &f["nomailbox@acme.com"];
        assert_eq!(missing.addresses_linked, Some(false));
        assert_eq!(missing.impersonation, None);

        let far = &f["far@elsewhere.org"];
        assert_eq!(far.configuration.as_deref(), Some("Sales"));
        assert_eq!(far.addresses_linked, Some(false));
        assert_eq!(
            far.problem.as_ref().map(|(c, _)| c.as_str()),
            Some("NO_MAILBOX_DOMAIN")
        );

        let system = state.system_facts().unwrap().unwrap();
        assert_eq!(system.service_account_recognised, Some(true));
    }

    #[tokio::test]
    async fn a_rep_who_leaves_every_configuration_is_kept_as_not_assigned() {
        let ex = MemoryExchange::new();
        let sf = MemoryCrm::new();
        for (n, email) in ["ana@acme.com", "bo@acme.com"].into_iter().enumerate() {
            sf.add_user(user(n, email));
            ex.add_mailbox(email);
        }
        let mut state = MemoryState::new();
        let both = config(json!({ "users": ["ana@acme.com", "bo@acme.com"] }));
        cycle(&both, &ex, &sf, &mut state, &SyncOptions::default()).await;
        assert_eq!(
            facts(&state)["bo@acme.com"].configuration.as_deref(),
            Some("Sales")
        );

        // Only Ana, and only her read: Bo's facts stay as they were.
        let ana = config(json!({ "users": ["ana@acme.com"] }));
        let only_ana = SyncOptions {
            only_reps: Some(["ana@acme.com".to_string()].into()),
            ..SyncOptions::default()
        };
        cycle(&ana, &ex, &sf, &mut state, &only_ana).await;
        assert_eq!(
            facts(&state)["bo@acme.com"].configuration.as_deref(),
            Some("Sales")
        );

        cycle(&ana, &ex, &sf, &mut state, &SyncOptions::default()).await;
        let bo = &facts(&state)["bo@acme.com"];
        assert_eq!(bo.configuration, None, "left, not vanished");
        assert_eq!(bo.user_id.as_deref(), Some("005000000000001"));
        assert_eq!(bo.impersonation, None);
        assert_eq!(facts(&state)["ana@acme.com"].impersonation, Some(true));
    }

    #[test]
    fn a_refused_service_account_is_recorded_as_not_recognised() {
        use crate::engine::connector::{CallError, Mailbox};
        use crate::engine::reps::Rep;
        let rep = Rep {
            user_id: "005".into(),
            email: "ana@acme.com".into(),
            mailbox: Mailbox {
                address: "ana@acme.com".into(),
            },
            configuration: 0,
            time_zone: chrono_tz::UTC,
        };
        let read = ReadOutcome {
            reps: vec![rep.clone()],
            rep_errors: vec![(
                rep,
                RepError::Call(CallError {
                    kind: ErrorKind::Auth,
                    code: "HTTP_401".into(),
                    message: "Exchange refused the credentials: 401".into(),
                    retryable: false,
                    ambiguous: false,
                    hint: "Check the credentials.".into(),
                }),
            )],
            ..ReadOutcome::default()
        };
        let c = config(json!({ "users": ["ana@acme.com"] }));
        let state = MemoryState::new();
        let changes = changes(&c, &read, &MemoryExchange::new(), &state, None, Utc::now()).unwrap();
        let system = changes.iter().find_map(|c| match c {
            StateChange::SetSystemFacts(s) => Some(s),
            _ => None,
        });
        assert_eq!(system.unwrap().service_account_recognised, Some(false));
        assert!(exchange_refused(&read).unwrap().contains("401"));
        let ana = changes.iter().find_map(|c| match c {
            StateChange::SetRepFacts(f) => Some(f),
            _ => None,
        });
        assert_eq!(ana.unwrap().impersonation, None, "not checked, not denied");
    }
}
