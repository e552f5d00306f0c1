//! A small world for engine tests: in-memory Exchange and Salesforce, a state store, a
//! configuration, and a fixed clock.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tether::config::model::Config;
use tether::engine::connector::{CrmUser, Folder};
use tether::engine::cycle::{CycleError, CycleReport, SyncOptions, read_and_plan, run_cycle};
use tether::engine::execute::StepBudget;
use tether::engine::memory::{EditAfterRead, MemoryCrm, MemoryExchange};
use tether::engine::plan::{Plan, Side};
use tether::model::{Contact, Event, EventTime, ObjectKind, Record};
use tether::state::{MemoryState, StateStore};

pub const NOW: &str = "2026-06-15T12:00:00Z";

pub fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

pub fn config(contacts: Value, events: Value) -> Config {
    let mut sc = json!({
        "name": "Sales",
        "members": { "users": [], "profiles": ["Sales User"] },
    });
    if !contacts.is_null() {
        sc["contacts"] = contacts;
    }
    if !events.is_null() {
        sc["events"] = events;
    }
    serde_json::from_value(json!({
        "version": 1,
        "org": { "name": "acme", "kind": "production" },
        "connections": {
            "exchange": {
                "method": "service_account",
                "username": crate::common::SVC,
                "password": "${env:P}",
                "additional_domains": ["acme.net"]
            },
            "salesforce": {
                "instance_url": "https://acme.my.salesforce.com",
                "auth": { "flow": "access_token", "access_token": "${env:T}" }
            }
        },
        "sync_configurations": [sc]
    }))
    .unwrap()
}

pub fn both_contacts() -> Value {
    json!({ "direction": "both", "conflict": "salesforce_wins", "scope": "users_records" })
}

pub fn both_events() -> Value {
    json!({ "direction": "both", "conflict": "exchange_wins", "since": "LAST_N_DAYS:30",
            "delete_synced": true, "auto_relate": false })
}

pub struct World<S: StateStore = MemoryState> {
    pub config: Config,
    pub ex: MemoryExchange,
    pub sf: MemoryCrm,
    pub state: S,
    pub now: DateTime<Utc>,
    /// Reps per group of a cycle (`SyncOptions::group_size`).
    pub group_size: Option<usize>,
}

pub fn rep_id(n: usize) -> String {
    format!("005{n:012}")
}
pub use crate::common::rep_mail;

impl World<MemoryState> {
    pub fn new(config: Config, reps: usize) -> Self {
        World::with_state(config, reps, MemoryState::new())
    }
}

impl<S: StateStore> World<S> {
    pub fn with_state(config: Config, reps: usize, state: S) -> Self {
        let ex = MemoryExchange::new();
        ex.set_clock(now());
        let sf = MemoryCrm::new();
        for n in 0..reps {
            ex.add_mailbox(&rep_mail(n));
            sf.add_user(CrmUser {
                id: rep_id(n),
                email: rep_mail(n),
                profile: "Sales User".into(),
                active: true,
                time_zone: "Europe/Berlin".into(),
            });
        }
        World {
            config,
            ex,
            sf,
            state,
            now: now(),
            group_size: None,
        }
    }

    pub async fn sync(&mut self) -> CycleReport {
        self.try_sync(&mut StepBudget::unlimited()).await.unwrap()
    }

    pub fn options(&self) -> SyncOptions {
        SyncOptions {
            group_size: self.group_size,
            ..SyncOptions::default()
        }
    }

    pub async fn try_sync(&mut self, budget: &mut StepBudget) -> Result<CycleReport, CycleError> {
        let options = self.options();
        run_cycle(
            &self.config,
            &self.ex,
            &self.sf,
            &mut self.state,
            self.now,
            &options,
            budget,
        )
        .await
    }

    /// A cycle during which a user's `edit` lands right after the cycle read Salesforce
    /// (`Side::Salesforce`) or the first Exchange folder, before anything is written.
    pub async fn sync_with_edit_after_read(
        &mut self,
        read: Side,
        edit: impl FnOnce(&MemoryExchange, &MemoryCrm) + Send,
    ) -> CycleReport {
        let (ex, sf) = (&self.ex, &self.sf);
        let edit = move || edit(ex, sf);
        let options = self.options();
        let mut budget = StepBudget::unlimited();
        let report = match read {
            Side::Salesforce => {
                let crm = EditAfterRead::new(sf, edit);
                let r = run_cycle(
                    &self.config,
                    ex,
                    &crm,
                    &mut self.state,
                    self.now,
                    &options,
                    &mut budget,
                )
                .await;
                assert!(crm.edited());
                r
            }
            Side::Exchange => {
                let mail = EditAfterRead::new(ex, edit);
                let r = run_cycle(
                    &self.config,
                    &mail,
                    sf,
                    &mut self.state,
                    self.now,
                    &options,
                    &mut budget,
                )
                .await;
                assert!(mail.edited());
                r
            }
        };
        report.unwrap()
    }

    pub async fn plan(&self) -> Plan {
        read_and_plan(
            &self.config,
            &self.ex,
            &self.sf,
            &self.state,
            self.now,
            &self.options(),
        )
        .await
        .unwrap()
        .0
    }

    pub fn ex_contacts(&self, rep: usize) -> Vec<Contact> {
        self.ex
            .items(&rep_mail(rep), Folder::SalesforceSyncContacts)
            .into_iter()
            .filter_map(|i| i.record.as_contact().cloned())
            .collect()
    }

    pub fn ex_events(&self, rep: usize) -> Vec<Event> {
        self.ex
            .items(&rep_mail(rep), Folder::Calendar)
            .into_iter()
            .filter_map(|i| i.record.as_event().cloned())
            .collect()
    }

    pub fn sf_contacts(&self) -> Vec<Contact> {
        self.sf
            .records(ObjectKind::Contact)
            .into_iter()
            .filter_map(|r| r.record.as_contact().cloned())
            .collect()
    }

    pub fn sf_events(&self) -> Vec<Event> {
        self.sf
            .records(ObjectKind::Event)
            .into_iter()
            .filter_map(|r| r.record.as_event().cloned())
            .collect()
    }
}

pub fn contact(first: &str, last: &str, email: &str) -> Record {
    Record::Contact(
        Contact::default()
            .with("FirstName", first)
            .with("LastName", last)
            .with("Email", email),
    )
}

pub fn event(subject: &str, start: &str, minutes: i64) -> Event {
    let start: DateTime<Utc> = start.parse().unwrap();
    Event::new(
        subject,
        EventTime::Timed {
            start,
            end: start + chrono::Duration::minutes(minutes),
        },
    )
}
