//! What a read of both sides learned about each rep and about the Exchange connection
//! (the admin guide's status checks), as state changes. The cycle writes them in its final
//! transaction, so `tether status` answers offline from the state.

use crate::config::model::{Config, Direction};
use crate::engine::connector::{MailConnector, RepError};
use crate::engine::cycle::ReadOutcome;
use crate::engine::rules::ObjectSettings;
use crate::model::ObjectKind;
use crate::state::{RepFacts, StateChange, StateError, StateStore, SystemFacts};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Call error codes that mean Exchange refused the service account itself (basic
/// credentials, or the OAuth 2.0 token).
const REFUSED: &[&str] = &["UNAUTHORIZED", "TOKEN"];

/// Why Exchange refused the service account in this read, if it did.
pub fn exchange_refused(read: &ReadOutcome) -> Option<String> {
    read.rep_errors.iter().find_map(|(_, e)| match e {
        RepError::Call(c) if REFUSED.contains(&c.code.as_str()) => Some(c.message.clone()),
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
            Some(RepError::FolderMissing) => (Some(true), Some(true)),
            Some(RepError::Call(_)) => (None, None),
        };
        let found = |o: ObjectKind| {
            (objects.contains(&o) && error.is_none()).then(|| {
                was_read(o) && !(o == ObjectKind::Contact && read.folders_to_create.contains(&rep.email))
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
        .chain(ids.iter().map(|(email, id)| (email.clone(), Some(id.clone()))));
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
    };
    let mut out: Vec<StateChange> = facts.into_values().map(StateChange::SetRepFacts).collect();
    out.push(StateChange::SetSystemFacts(system));
    Ok(out)
}
