//! The engine's cycle with the real connectors against both emulators: EWS
//! (`sandbox::exchange`) and Salesforce (`sandbox::salesforce`), one test per admin-guide rule,
//! each named after it, plus crash safety and the performance model's call counts.

use crate::common::{PASSWORD, SF_CLIENT_ID, SF_SECRET, SVC, rep_mail as mail};
use crate::engine_world;
use crate::ews;

use chrono::{DateTime, Duration, Utc};
use engine_world::{both_contacts, both_events, config};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tether::clock::{Clock, ManualClock};
use tether::config::model::Config;
use tether::connect::{connector_mapping, contact_filter_fields};
use tether::engine::cycle::{CycleError, CycleReport, SyncOptions, read_and_plan, run_cycle};
use tether::engine::execute::StepBudget;
use tether::engine::memory::EditAfterRead;
use tether::engine::plan::{Plan, Side};
use tether::exchange::connector::EwsConnector;
use tether::exchange::{Auth as EwsAuth, Endpoint, EwsClient, ExchangeOptions};
use tether::model::ObjectKind;
use tether::salesforce::connector::{SYNC_KEY_FIELD, SalesforceConnector};
use tether::salesforce::{Auth as SfAuth, ClientOptions, SalesforceClient};
use tether::secret::Secret;
use tether::state::{MemoryState, ResetMark, StateChange, StateStore};
use tether_emulators::exchange as ews_emu;
use tether_emulators::exchange::model::{CalendarEvent, Contact as EwsContact, Item, Sensitivity};
use tether_emulators::salesforce as sf_emu;

/// A recurrence for the emulator's store, written as an RRULE (tether's converter; the two
/// models share field names, so serde carries one into the other).
fn emu_rrule(rule: &str, start: chrono::NaiveDate) -> Option<ews_emu::model::Recurrence> {
    let r = tether::model::rrule::from_rrule(rule, start)?;
    serde_json::from_value(serde_json::to_value(r).ok()?).ok()
}

const START: &str = "2026-06-15T10:00:00Z";

struct Env {
    clock: ManualClock,
    ews: ews_emu::RunningEmulator,
    sf: sf_emu::RunningEmulator,
    mail: EwsConnector,
    crm: SalesforceConnector,
    state: MemoryState,
    config: Config,
    /// Salesforce user id per rep.
    reps: Vec<String>,
}

impl Env {
    /// `reps` Sales reps with mailboxes in the impersonation scope (Department Sales), plus
    /// the given extra reps whose mailboxes are outside it.
    async fn new(config: Config, reps: usize, outside_scope: usize) -> Env {
        Env::start(config, reps, outside_scope, false, None).await
    }

    /// Write phases of `threshold` records or more go through Bulk API 2.0.
    async fn bulk(config: Config, reps: usize, threshold: usize) -> Env {
        Env::start(config, reps, 0, false, Some(threshold)).await
    }

    /// The EWS emulator validates every request against messages.xsd and keeps the bodies.
    async fn validating(config: Config, reps: usize) -> Env {
        Env::start(config, reps, 0, true, None).await
    }

    async fn start(
        config: Config,
        reps: usize,
        outside_scope: usize,
        validate: bool,
        bulk_threshold: Option<usize>,
    ) -> Env {
        let clock = ManualClock::new(START.parse().unwrap());
        let ews = ews_emu::Emulator::start(ews_emu::EmulatorOptions {
            clock: Some(Arc::new(clock.clone())),
            record_bodies: validate,
            schema: validate.then(ews::schema),
            ..ews_emu::EmulatorOptions::default()
        })
        .await
        .unwrap();
        ews.add_service_account(
            SVC,
            PASSWORD,
            ews_emu::ImpersonationScope::Filter("Department -eq 'Sales'".into()),
        );
        let mut o = sf_emu::EmulatorOptions::deterministic();
        o.clock = Arc::new(clock.clone());
        let sf = sf_emu::Emulator::start(o).await.unwrap();
        // An org whose reps relate events to Salesforce in Outlook has the integration on.
        if !tether::engine::outlook::configurations_needing_it(&config).is_empty() {
            sf.handle()
                .set_email_integration("enableOutlookIntegration", true);
        }
        let mut ids = Vec::new();
        for n in 0..reps + outside_scope {
            let dept = if n < reps { "Sales" } else { "Finance" };
            ews.add_mailbox(&mail(n), Some(dept));
            ids.push(sf.handle().add_user(
                &mail(n),
                &mail(n),
                &format!("Rep{n}"),
                "Sales User",
                "Europe/Berlin",
            ));
        }
        let ews_client = EwsClient::new(
            ExchangeOptions::new(
                Endpoint::Url(ews.ews_url().parse().unwrap()),
                EwsAuth::Basic {
                    username: SVC.into(),
                    password: Secret::new(PASSWORD),
                },
            ),
            Arc::new(clock.clone()),
        )
        .unwrap();
        let url = url::Url::parse(sf.url()).unwrap();
        let mut so = ClientOptions::new(
            url.clone(),
            SfAuth::ClientCredentials {
                client_id: SF_CLIENT_ID.into(),
                client_secret: Secret::new(SF_SECRET),
            },
        );
        so.login_url = url;
        if bulk_threshold.is_some() {
            so.bulk_threshold = bulk_threshold;
        }
        let sf_client = SalesforceClient::with_clock(so, Arc::new(clock.clone())).unwrap();
        Env {
            // Wired from the configuration as a deployment wires them.
            mail: EwsConnector::new(ews_client)
                .with_time_zone("W. Europe Standard Time")
                .with_contact_mapping(connector_mapping(&config, ObjectKind::Contact)),
            crm: SalesforceConnector::new(sf_client)
                .with_mappings(
                    connector_mapping(&config, ObjectKind::Contact),
                    connector_mapping(&config, ObjectKind::Event),
                )
                .with_filter_fields(contact_filter_fields(&config)),
            clock,
            ews,
            sf,
            state: MemoryState::new(),
            config,
            reps: ids,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Time passes between what users do and each cycle (watermarks are timestamps).
    fn tick(&self) {
        self.clock.advance(std::time::Duration::from_secs(60));
    }

    async fn try_sync(&mut self, budget: &mut StepBudget) -> Result<CycleReport, CycleError> {
        self.tick();
        let now = self.now();
        let r = run_cycle(
            &self.config,
            &self.mail,
            &self.crm,
            &mut self.state,
            now,
            &SyncOptions::default(),
            budget,
        )
        .await;
        self.tick();
        r
    }

    async fn sync(&mut self) -> CycleReport {
        let r = self.try_sync(&mut StepBudget::unlimited()).await.unwrap();
        assert!(r.exec.failed.is_empty(), "failures: {:#?}", r.exec.failed);
        r
    }

    async fn plan(&self) -> Plan {
        read_and_plan(
            &self.config,
            &self.mail,
            &self.crm,
            &self.state,
            self.now(),
            &SyncOptions::default(),
        )
        .await
        .unwrap()
        .0
    }

    /// A cycle with `--force`: the empty-side guard is overridden.
    async fn sync_forced(&mut self) -> CycleReport {
        self.tick();
        let now = self.now();
        let r = run_cycle(
            &self.config,
            &self.mail,
            &self.crm,
            &mut self.state,
            now,
            &SyncOptions {
                force: true,
                ..SyncOptions::default()
            },
            &mut StepBudget::unlimited(),
        )
        .await
        .unwrap();
        self.tick();
        assert!(r.exec.failed.is_empty(), "failures: {:#?}", r.exec.failed);
        r
    }

    /// A cycle during which a user's `edit` lands right after the cycle read Salesforce
    /// (`Side::Salesforce`) or the first Exchange folder, before anything is written.
    async fn sync_with_edit_after_read(
        &mut self,
        read: Side,
        edit: impl FnOnce(&ews_emu::RunningEmulator, &sf_emu::RunningEmulator) + Send,
    ) -> CycleReport {
        self.tick();
        let now = self.now();
        let (ews, sf) = (&self.ews, &self.sf);
        let edit = move || edit(ews, sf);
        let options = SyncOptions::default();
        let mut budget = StepBudget::unlimited();
        let r = match read {
            Side::Salesforce => {
                let crm = EditAfterRead::new(&self.crm, edit);
                let r = run_cycle(
                    &self.config,
                    &self.mail,
                    &crm,
                    &mut self.state,
                    now,
                    &options,
                    &mut budget,
                )
                .await;
                assert!(crm.edited());
                r
            }
            Side::Exchange => {
                let mail = EditAfterRead::new(&self.mail, edit);
                let r = run_cycle(
                    &self.config,
                    &mail,
                    &self.crm,
                    &mut self.state,
                    now,
                    &options,
                    &mut budget,
                )
                .await;
                assert!(mail.edited());
                r
            }
        }
        .unwrap();
        self.tick();
        assert!(r.exec.failed.is_empty(), "failures: {:#?}", r.exec.failed);
        r
    }

    fn sync_folder(&self, rep: usize) -> Option<String> {
        self.ews.find_folder(&mail(rep), "Salesforce_Sync")
    }

    fn ex_contacts(&self, rep: usize) -> Vec<EwsContact> {
        self.contacts_in(&mail(rep))
    }

    /// The contacts in a mailbox's Salesforce_Sync folder.
    fn contacts_in(&self, smtp: &str) -> Vec<EwsContact> {
        let Some(f) = self.ews.find_folder(smtp, "Salesforce_Sync") else {
            return Vec::new();
        };
        self.ews
            .items(smtp, &f)
            .into_iter()
            .filter_map(|i| match i {
                Item::Contact(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    fn ex_events(&self, rep: usize) -> Vec<CalendarEvent> {
        let f = self.ews.folder_id(&mail(rep), "calendar").unwrap();
        self.ews
            .items(&mail(rep), &f)
            .into_iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    /// A contact the rep keeps in Outlook, in Salesforce_Sync (created when missing) or in
    /// the default Contacts folder.
    fn ex_put_contact(
        &self,
        rep: usize,
        in_sync_folder: bool,
        first: &str,
        last: &str,
        email: &str,
    ) -> String {
        let folder = if in_sync_folder {
            match self.sync_folder(rep) {
                Some(f) => f,
                None => {
                    let contacts = self.ews.folder_id(&mail(rep), "contacts").unwrap();
                    self.ews
                        .create_folder(&mail(rep), &contacts, "Salesforce_Sync", "IPF.Contact")
                        .unwrap()
                }
            }
        } else {
            self.ews.folder_id(&mail(rep), "contacts").unwrap()
        };
        let c = EwsContact {
            given_name: Some(first.into()),
            surname: Some(last.into()),
            emails: [Some(email.into()), None, None],
            ..EwsContact::default()
        };
        self.ews.put_contact(&mail(rep), &folder, c).unwrap().id
    }

    fn ex_put_event(
        &self,
        rep: usize,
        subject: &str,
        start: DateTime<Utc>,
        minutes: i64,
        private: bool,
    ) -> String {
        let mut e = CalendarEvent::new(start, start + Duration::minutes(minutes));
        e.subject = Some(subject.into());
        e.start_time_zone = Some("W. Europe Standard Time".into());
        e.end_time_zone = e.start_time_zone.clone();
        if private {
            e.sensitivity = Some(Sensitivity::Private);
        }
        self.ews.put_event(&mail(rep), e).unwrap().id
    }

    fn sf_insert(&self, object: &str, fields: Value) -> String {
        self.sf.handle().insert(object, fields).unwrap()
    }

    fn sf_records(&self, object: &str) -> Vec<Map<String, Value>> {
        self.sf.handle().records(object)
    }

    fn sf_contact(&self, rep: usize, first: &str, last: &str, email: &str) -> String {
        self.sf_insert(
            "Contact",
            json!({"FirstName": first, "LastName": last, "Email": email, "OwnerId": self.reps[rep]}),
        )
    }

    fn sf_event(&self, rep: usize, subject: &str, start: DateTime<Utc>, minutes: i64) -> String {
        self.sf_insert(
            "Event",
            json!({"Subject": subject, "OwnerId": self.reps[rep],
                   "StartDateTime": start.to_rfc3339(),
                   "EndDateTime": (start + Duration::minutes(minutes)).to_rfc3339()}),
        )
    }
}

fn s(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

fn contacts_only() -> Config {
    config(both_contacts(), Value::Null)
}

fn events_only(events: Value) -> Config {
    config(Value::Null, events)
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn first_sync_carries_contacts_and_events_both_ways_and_a_second_cycle_plans_nothing() {
    let mut env = Env::new(config(both_contacts(), both_events()), 2, 0).await;
    env.ex_put_contact(0, true, "Ana", "Diaz", "ana@x.com");
    env.sf_contact(1, "Bo", "Lund", "bo@y.com");
    let start = env.now() + Duration::days(1);
    env.ex_put_event(0, "Exchange meeting", start, 30, false);
    env.sf_event(1, "Salesforce meeting", start, 45);

    let r = env.sync().await;
    assert_eq!(r.exec.succeeded, 4, "{:#?}", r.plan);

    let sf_contacts = env.sf_records("Contact");
    let ana = sf_contacts
        .iter()
        .find(|c| s(c.get("Email")) == "ana@x.com")
        .unwrap();
    assert_eq!(s(ana.get("LastName")), "Diaz");
    assert_eq!(s(ana.get("OwnerId")), env.reps[0]);
    assert!(s(ana.get(SYNC_KEY_FIELD)).starts_with("tether-"));
    let bo = env.ex_contacts(1);
    assert_eq!(bo.len(), 1);
    assert_eq!(bo[0].emails[0].as_deref(), Some("bo@y.com"));
    assert!(
        bo[0]
            .extended
            .contains_key(tether::exchange::model::PROP_SALESFORCE_ID),
        "stamped with the Salesforce id"
    );

    let sf_events = env.sf_records("Event");
    let m = sf_events
        .iter()
        .find(|e| s(e.get("Subject")) == "Exchange meeting")
        .unwrap();
    assert_eq!(s(m.get("OwnerId")), env.reps[0]);
    let ev = env.ex_events(1);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].subject.as_deref(), Some("Salesforce meeting"));
    assert_eq!(ev[0].end - ev[0].start, Duration::minutes(45));

    let p = env.plan().await;
    assert!(p.is_empty(), "second plan: {p:#?}");
    let r = env.sync().await;
    assert_eq!(r.exec.succeeded, 0);
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_contact_outside_salesforce_sync_never_syncs() {
    let mut env = Env::new(contacts_only(), 1, 0).await;
    env.ex_put_contact(0, false, "Out", "Side", "outside@x.com");
    env.ex_put_contact(0, true, "In", "Side", "inside@x.com");
    env.sync().await;
    env.sync().await;
    let emails: Vec<String> = env
        .sf_records("Contact")
        .iter()
        .map(|c| s(c.get("Email")).to_string())
        .collect();
    assert_eq!(emails, vec!["inside@x.com".to_string()]);
}

#[tokio::test]
async fn the_salesforce_sync_folder_is_created_when_missing() {
    let mut env = Env::new(contacts_only(), 1, 0).await;
    assert!(env.sync_folder(0).is_none());
    env.sync().await;
    assert!(env.sync_folder(0).is_some());
}

#[tokio::test]
async fn deleting_a_contact_on_one_side_does_not_delete_it_on_the_other() {
    let mut env = Env::new(contacts_only(), 1, 0).await;
    let ex_id = env.ex_put_contact(0, true, "From", "Exchange", "fromex@x.com");
    let sf_id = env.sf_contact(0, "From", "Salesforce", "fromsf@y.com");
    env.sync().await;
    assert_eq!(env.sf_records("Contact").len(), 2);
    assert_eq!(env.ex_contacts(0).len(), 2);

    // The rep deletes the Exchange-born contact in Outlook; someone deletes the other in
    // Salesforce.
    assert!(env.ews.delete_item(&mail(0), &ex_id));
    env.sf.handle().delete(&sf_id).unwrap();
    env.sync().await;

    let sf: Vec<String> = env
        .sf_records("Contact")
        .iter()
        .map(|c| s(c.get("Email")).to_string())
        .collect();
    assert_eq!(sf, vec!["fromex@x.com".to_string()], "kept in Salesforce");
    let ex: Vec<Option<String>> = env
        .ex_contacts(0)
        .iter()
        .map(|c| c.emails[0].clone())
        .collect();
    assert_eq!(
        ex,
        vec![Some("fromsf@y.com".to_string())],
        "kept in Exchange"
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn exchange_to_salesforce_events_with_today_leave_past_salesforce_events_untouched() {
    let cfg = events_only(
        json!({ "direction": "exchange_to_salesforce", "conflict": "exchange_wins",
                                  "since": "TODAY", "auto_relate": false }),
    );
    let mut env = Env::new(cfg, 1, 0).await;
    let yesterday = env.now() - Duration::days(1);
    let past_sf = env.sf_event(0, "Past, edited in Salesforce", yesterday, 60);
    let before = env.sf.handle().get(&past_sf).unwrap();
    env.ex_put_event(0, "Past in Exchange", yesterday, 60, false);
    env.ex_put_event(0, "Upcoming", env.now() + Duration::hours(3), 60, false);
    env.sync().await;

    let subjects: Vec<String> = env
        .sf_records("Event")
        .iter()
        .map(|e| s(e.get("Subject")).to_string())
        .collect();
    assert!(subjects.contains(&"Upcoming".to_string()), "{subjects:?}");
    assert!(
        !subjects.contains(&"Past in Exchange".to_string()),
        "{subjects:?}"
    );
    let after = env.sf.handle().get(&past_sf).unwrap();
    assert_eq!(before, after, "the past Salesforce event is untouched");
    assert_eq!(
        env.ex_events(0).len(),
        2,
        "one-way: nothing written to Exchange"
    );
}

#[tokio::test]
async fn a_private_event_stays_out_unless_sync_private() {
    let start_in = Duration::hours(5);
    let off = events_only(
        json!({ "direction": "exchange_to_salesforce", "conflict": "exchange_wins",
                                  "since": "TODAY", "sync_private": false, "auto_relate": false }),
    );
    let mut env = Env::new(off, 1, 0).await;
    env.ex_put_event(0, "Doctor", env.now() + start_in, 30, true);
    env.ex_put_event(0, "Client call", env.now() + start_in, 30, false);
    env.sync().await;
    let subjects: Vec<String> = env
        .sf_records("Event")
        .iter()
        .map(|e| s(e.get("Subject")).to_string())
        .collect();
    assert_eq!(subjects, vec!["Client call".to_string()]);

    let on = events_only(
        json!({ "direction": "exchange_to_salesforce", "conflict": "exchange_wins",
                                 "since": "TODAY", "sync_private": true, "auto_relate": false }),
    );
    let mut env = Env::new(on, 1, 0).await;
    env.ex_put_event(0, "Doctor", env.now() + start_in, 30, true);
    env.sync().await;
    let events = env.sf_records("Event");
    assert_eq!(events.len(), 1);
    assert_eq!(s(events[0].get("Subject")), "Doctor");
    assert_eq!(
        events[0].get("IsPrivate"),
        Some(&Value::Bool(true)),
        "stays private"
    );
}

#[tokio::test]
async fn last_n_days_30_includes_an_event_that_ended_29_days_ago_and_excludes_one_that_ended_31_days_ago()
 {
    let cfg = events_only(
        json!({ "direction": "exchange_to_salesforce", "conflict": "exchange_wins",
                                  "since": "LAST_N_DAYS:30", "auto_relate": false }),
    );
    let mut env = Env::new(cfg, 1, 0).await;
    let now = env.now() + Duration::minutes(1);
    env.ex_put_event(
        0,
        "Ended 29 days ago",
        now - Duration::days(29) - Duration::hours(1),
        60,
        false,
    );
    env.ex_put_event(
        0,
        "Ended 31 days ago",
        now - Duration::days(31) - Duration::hours(1),
        60,
        false,
    );
    env.sync().await;
    let subjects: Vec<String> = env
        .sf_records("Event")
        .iter()
        .map(|e| s(e.get("Subject")).to_string())
        .collect();
    assert_eq!(subjects, vec!["Ended 29 days ago".to_string()]);
}

async fn conflict(policy: &str) -> (String, String) {
    let cfg = config(
        json!({ "direction": "both", "conflict": policy, "scope": "users_records" }),
        Value::Null,
    );
    let mut env = Env::new(cfg, 1, 0).await;
    let ex_id = env.ex_put_contact(0, true, "Cy", "Mora", "cy@x.com");
    env.sync().await;
    let sf_id = s(env.sf_records("Contact")[0].get("Id")).to_string();
    env.ews
        .edit_item(&mail(0), &ex_id, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Edited in Exchange".into());
            }
        })
        .unwrap();
    env.sf
        .handle()
        .update("Contact", &sf_id, json!({"Title": "Edited in Salesforce"}))
        .unwrap();
    let r = env.sync().await;
    assert!(
        !r.plan.conflicts.is_empty(),
        "the conflict is reported: {:#?}",
        r.plan
    );
    assert!(env.plan().await.is_empty());
    let sf = env.sf.handle().get(&sf_id).unwrap();
    let ex = env.ex_contacts(0);
    (
        s(sf.get("Title")).to_string(),
        ex[0].job_title.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn conflicts_follow_salesforce_wins() {
    let (sf, ex) = conflict("salesforce_wins").await;
    assert_eq!(
        (sf.as_str(), ex.as_str()),
        ("Edited in Salesforce", "Edited in Salesforce")
    );
}

#[tokio::test]
async fn conflicts_follow_exchange_wins() {
    let (sf, ex) = conflict("exchange_wins").await;
    assert_eq!(
        (sf.as_str(), ex.as_str()),
        ("Edited in Exchange", "Edited in Exchange")
    );
}

#[tokio::test]
async fn reset_sync_relinks_without_duplicates() {
    let mut env = Env::new(config(both_contacts(), both_events()), 1, 0).await;
    env.ex_put_contact(0, true, "Di", "Ng", "di@x.com");
    env.sf_contact(0, "Ed", "Wu", "ed@y.com");
    env.ex_put_event(0, "Review", env.now() + Duration::days(2), 30, false);
    env.sync().await;
    let rep = env.reps[0].clone();
    env.state
        .apply(vec![StateChange::SetResetMark {
            rep: rep.clone(),
            mark: Some(ResetMark::MarkedForReset),
        }])
        .unwrap();
    let r = env.sync().await;
    assert_eq!(r.exec.written.values().sum::<u64>(), 0, "{:#?}", r.plan);
    assert_eq!(env.sf_records("Contact").len(), 2);
    assert_eq!(env.ex_contacts(0).len(), 2);
    assert_eq!(env.sf_records("Event").len(), 1);
    assert_eq!(env.ex_events(0).len(), 1);
    assert!(env.state.reset_marks().unwrap().is_empty());
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_mailbox_outside_the_impersonation_scope_is_a_per_rep_error_while_others_sync() {
    let mut env = Env::new(contacts_only(), 1, 1).await;
    env.sf_contact(0, "In", "Scope", "in@y.com");
    env.sf_contact(1, "Out", "Scope", "out@y.com");
    let r = env.sync().await;
    assert_eq!(env.ex_contacts(0).len(), 1);
    assert_eq!(r.read.rep_errors.len(), 1, "{:?}", r.read.rep_errors);
    let (rep, e) = &r.read.rep_errors[0];
    assert_eq!(rep.user_id, env.reps[1]);
    assert_eq!(e.code(), "ErrorImpersonateUserDenied");
    assert!(!e.message().contains(PASSWORD));
}

/// Kills the executor after every possible number of steps, then runs again: whatever the
/// kill point, the record exists once. At least one kill must land between the remote create
/// and the state write, or the test proves nothing.
async fn killed_between_create_and_state_write(to_salesforce: bool) {
    let mut in_window = 0;
    for k in 0..40 {
        let mut env = Env::new(contacts_only(), 1, 0).await;
        if to_salesforce {
            env.ex_put_contact(0, true, "Kay", "Lo", "kay@x.com");
        } else {
            env.sf_contact(0, "Kay", "Lo", "kay@y.com");
        }
        let rep = env.reps[0].clone();
        let killed = matches!(
            env.try_sync(&mut StepBudget::kill_after(k)).await,
            Err(CycleError::Killed)
        );
        let created = if to_salesforce {
            env.sf_records("Contact").len()
        } else {
            env.ex_contacts(0).len()
        };
        let linked = env
            .state
            .links(&rep, ObjectKind::Contact)
            .unwrap()
            .iter()
            .any(|(_, l)| l.salesforce.is_some() && l.exchange.is_some());
        if killed && created == 1 && !linked {
            in_window += 1;
        }
        env.sync().await;
        let count = if to_salesforce {
            env.sf_records("Contact").len()
        } else {
            env.ex_contacts(0).len()
        };
        assert_eq!(count, 1, "kill after {k} steps: duplicate or lost record");
        assert!(env.plan().await.is_empty(), "kill after {k} steps");
        if !killed {
            break;
        }
    }
    assert!(
        in_window > 0,
        "no kill landed between the create and the state write"
    );
}

#[tokio::test]
async fn a_kill_between_a_salesforce_create_and_the_state_write_then_a_rerun_creates_no_duplicate()
{
    killed_between_create_and_state_write(true).await;
}

#[tokio::test]
async fn a_kill_between_an_exchange_create_and_the_state_write_then_a_rerun_creates_no_duplicate() {
    killed_between_create_and_state_write(false).await;
}

#[tokio::test]
async fn a_salesforce_record_deleted_after_an_unrecorded_create_is_not_created_again() {
    // Through the emulators: the lookup finds the deleted record by Tether_Sync_Key__c in
    // the recycle bin (queryAll, IsDeleted = true).
    for k in 0..40 {
        let mut env = Env::new(contacts_only(), 1, 0).await;
        env.ex_put_contact(0, true, "Kay", "Lo", "kay@x.com");
        let rep = env.reps[0].clone();
        let killed = matches!(
            env.try_sync(&mut StepBudget::kill_after(k)).await,
            Err(CycleError::Killed)
        );
        assert!(
            killed,
            "no kill landed between the create and the state write"
        );
        let created = env.sf_records("Contact");
        if created.len() != 1
            || !env
                .state
                .links(&rep, ObjectKind::Contact)
                .unwrap()
                .is_empty()
        {
            continue;
        }
        let id = s(created[0].get("Id")).to_string();
        env.sf.handle().delete(&id).unwrap();
        env.sync().await;
        env.sync().await;
        assert!(
            env.sf_records("Contact").is_empty(),
            "the record the user deleted was created again"
        );
        assert_eq!(env.ex_contacts(0).len(), 1, "the Exchange contact is kept");
        assert!(env.plan().await.is_empty());
        return;
    }
    panic!("no kill landed between the create and the state write");
}

#[tokio::test]
async fn an_exchange_item_deleted_after_an_unrecorded_create_is_not_created_again() {
    // Through the emulators: the lookup finds the item the rep deleted in Outlook by its
    // tether.SalesforceId stamp in Deleted Items, created after the create was journalled
    // (every request checked against messages.xsd).
    for k in 0..40 {
        let mut env = Env::validating(contacts_only(), 1).await;
        let sf_id = env.sf_contact(0, "Kay", "Lo", "kay@x.com");
        let rep = env.reps[0].clone();
        let killed = matches!(
            env.try_sync(&mut StepBudget::kill_after(k)).await,
            Err(CycleError::Killed)
        );
        assert!(
            killed,
            "no kill landed between the create and the state write"
        );
        let created = env.ex_contacts(0);
        if created.len() != 1
            || !env
                .state
                .links(&rep, ObjectKind::Contact)
                .unwrap()
                .is_empty()
        {
            continue;
        }
        let id = created[0].item_id.clone().unwrap().id;
        let bin = env.ews.folder_id(&mail(0), "deleteditems").unwrap();
        assert!(env.ews.move_to_deleted_items(&mail(0), &id).is_some());
        env.sync().await;
        env.sync().await;
        assert!(
            env.ex_contacts(0).is_empty(),
            "the item the rep deleted was created again"
        );
        assert_eq!(
            env.ews.items(&mail(0), &bin).len(),
            1,
            "still in Deleted Items"
        );
        let sf = env.sf_records("Contact");
        assert_eq!(sf.len(), 1, "the Salesforce contact is kept");
        assert_eq!(s(sf[0].get("Id")), sf_id);
        assert!(env.plan().await.is_empty());
        return;
    }
    panic!("no kill landed between the create and the state write");
}

#[tokio::test]
async fn a_damaged_link_item_id_relinks_through_the_stamped_salesforce_id_and_a_reset_adds_no_duplicate()
 {
    let mut env = Env::new(events_only(events(json!({}))), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let sf_id = env.sf_event(0, "Review", start, 30);
    env.sync().await;
    let item_id = env.ex_events(0)[0].item_id.clone().unwrap().id;
    let rep = env.reps[0].clone();
    // One changed character in the link's Exchange item id.
    let (lid, mut link) = env.state.links(&rep, ObjectKind::Event).unwrap()[0].clone();
    let exchange = link.exchange.as_mut().unwrap();
    assert_eq!(exchange.item_id, item_id);
    let mut damaged: Vec<char> = item_id.chars().collect();
    let last = damaged.len() - 2;
    damaged[last] = if damaged[last] == 'A' { 'B' } else { 'A' };
    exchange.item_id = damaged.into_iter().collect();
    env.state
        .apply(vec![StateChange::PutLink {
            id: Some(lid),
            link,
        }])
        .unwrap();
    // The rep's next edit.
    env.ews
        .edit_item(&mail(0), &item_id, |i| {
            if let Item::Event(e) = i {
                e.location = Some("Room 4".into());
            }
        })
        .unwrap();
    let r = env.sync().await;
    assert!(r.exec.failed.is_empty(), "{:?}", r.exec.failed);
    let one_each = |env: &Env| {
        let sf = env.sf_records("Event");
        assert_eq!(
            (env.ex_events(0).len(), sf.len()),
            (1, 1),
            "a duplicate: {sf:#?}"
        );
        assert_eq!(s(sf[0].get("Id")), sf_id);
    };
    one_each(&env);
    assert_eq!(s(env.sf_records("Event")[0].get("Location")), "Room 4");
    let links = env.state.links(&rep, ObjectKind::Event).unwrap();
    assert_eq!(
        links[0].1.exchange.as_ref().map(|e| e.item_id.as_str()),
        Some(item_id.as_str()),
        "the link is repaired"
    );
    // A reset afterwards re-links what is there.
    env.state
        .apply(vec![StateChange::SetResetMark {
            rep: rep.clone(),
            mark: Some(ResetMark::MarkedForReset),
        }])
        .unwrap();
    env.sync().await;
    env.sync().await;
    one_each(&env);
    assert!(env.plan().await.is_empty());
}

fn diff<K: Ord + Clone>(
    after: &std::collections::BTreeMap<K, u64>,
    before: &std::collections::BTreeMap<K, u64>,
) -> std::collections::BTreeMap<K, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[tokio::test]
async fn a_no_change_cycle_for_50_reps_costs_one_sync_folder_items_per_folder_per_rep_and_three_salesforce_queries()
 {
    const REPS: usize = 50;
    let mut env = Env::new(config(both_contacts(), both_events()), REPS, 0).await;
    for n in 0..REPS {
        env.ex_put_contact(n, true, "C", &format!("Ex{n}"), &format!("ex{n}@x.com"));
        env.sf_contact(n, "C", &format!("Sf{n}"), &format!("sf{n}@y.com"));
        env.ex_put_event(
            n,
            &format!("Meeting {n}"),
            env.now() + Duration::days(1),
            30,
            false,
        );
    }
    env.sync().await;
    env.sync().await;
    assert_eq!(env.sf_records("Contact").len(), 2 * REPS);

    let ews_client = env.mail.client().calls();
    let ews_served: std::collections::BTreeMap<String, u64> =
        env.ews.all_calls().into_iter().collect();
    let sf_client = env.crm.client().call_counts();
    let sf_served = env.sf.handle().served();

    let r = env.sync().await;
    assert!(r.plan.is_empty(), "{:#?}", r.plan);

    let ews_client = diff(&env.mail.client().calls(), &ews_client);
    let ews_served = diff(&env.ews.all_calls().into_iter().collect(), &ews_served);
    let sf_client = diff(&env.crm.client().call_counts(), &sf_client);
    let sf_served = diff(&env.sf.handle().served(), &sf_served);
    println!(
        "no-change cycle, {REPS} reps: EWS {ews_client:?} (served {ews_served:?}); Salesforce {sf_client:?} (served {sf_served:?})"
    );

    // Exchange: Salesforce_Sync and the calendar, one SyncFolderItems each, per rep, and one
    // GetFolder per rep that checks Salesforce_Sync is not in Deleted Items; nothing else.
    let expected_ews = std::collections::BTreeMap::from([
        ("GetFolder".to_string(), REPS as u64),
        ("SyncFolderItems".to_string(), 2 * REPS as u64),
    ]);
    assert_eq!(ews_client, expected_ews);
    assert_eq!(ews_served, expected_ews);
    // Salesforce: users, then Contact and Event changes since the watermark — whatever the
    // number of reps.
    let total: u64 = sf_client.values().sum();
    assert_eq!(total, 3, "{sf_client:?}");
    assert_eq!(
        sf_client.get(&tether::salesforce::CallKind::Query),
        Some(&3)
    );
    assert_eq!(sf_served.values().sum::<u64>(), 3, "{sf_served:?}");
}

/// Salesforce calls of a first sync of `n` Outlook contacts spread over three companies,
/// one of which is already an Account; checks every contact got its company's Account.
async fn first_sync_with_companies(n: usize) -> std::collections::BTreeMap<String, u64> {
    let mut env = Env::new(contacts_only(), 1, 0).await;
    let acme = env.sf_insert("Account", json!({"Name": "Acme"}));
    let companies = ["Acme", "Globex", "Initech"];
    for i in 0..n {
        let id = env.ex_put_contact(0, true, "Fay", &format!("Orr{i}"), &format!("fay{i}@x.com"));
        env.ews
            .edit_item(&mail(0), &id, |item| {
                if let Item::Contact(c) = item {
                    c.company_name = Some(companies[i % 3].into());
                }
            })
            .unwrap();
    }
    let before = env.sf.handle().served();
    env.sync().await;
    let used = diff(&env.sf.handle().served(), &before);

    let accounts = env.sf_records("Account");
    let mut names: Vec<&str> = accounts.iter().map(|a| s(a.get("Name"))).collect();
    names.sort();
    assert_eq!(names, companies[..n.min(3)].to_vec(), "each company once");
    let account_of = |name: &str| {
        accounts
            .iter()
            .find(|a| s(a.get("Name")) == name)
            .map(|a| s(a.get("Id")).to_string())
    };
    assert_eq!(account_of("Acme").as_deref(), Some(acme.as_str()), "reused");
    let contacts = env.sf_records("Contact");
    assert_eq!(contacts.len(), n);
    for c in &contacts {
        let i: usize = s(c.get("LastName"))[3..].parse().unwrap();
        assert_eq!(
            Some(s(c.get("AccountId")).to_string()),
            account_of(companies[i % 3])
        );
    }
    used
}

#[tokio::test]
async fn accounts_are_resolved_once_for_all_batches_of_a_sync() {
    // 450 contacts are three collections of 200; their companies are looked up once, not
    // once per collection, and each new Account is created once.
    let one = first_sync_with_companies(3).await;
    let many = first_sync_with_companies(450).await;
    assert_eq!(many.get("query"), one.get("query"), "{many:?} vs {one:?}");
    assert_eq!(
        many.get("collection").copied().unwrap_or(0),
        one.get("collection").copied().unwrap_or(0) + 2,
        "two more collections of contacts, no more of Accounts: {many:?} vs {one:?}"
    );
}

#[tokio::test]
async fn edits_flow_both_ways_and_the_company_is_the_contacts_account() {
    let mut env = Env::new(contacts_only(), 1, 0).await;
    let ex_id = env.ex_put_contact(0, true, "Fay", "Orr", "fay@x.com");
    env.ews
        .edit_item(&mail(0), &ex_id, |i| {
            if let Item::Contact(c) = i {
                c.company_name = Some("Acme GmbH".into());
                c.phones
                    .insert("MobilePhone".into(), "+49 170 1234567".into());
            }
        })
        .unwrap();
    env.sync().await;
    let sf = env.sf_records("Contact");
    assert_eq!(sf.len(), 1);
    let id = s(sf[0].get("Id")).to_string();
    let accounts = env.sf_records("Account");
    assert_eq!(accounts.len(), 1);
    assert_eq!(s(accounts[0].get("Name")), "Acme GmbH");
    assert_eq!(s(sf[0].get("AccountId")), s(accounts[0].get("Id")));
    assert_eq!(s(sf[0].get("MobilePhone")), "+49 170 1234567");
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);

    env.sf
        .handle()
        .update(
            "Contact",
            &id,
            json!({"Title": "VP Sales", "MailingCity": "Köln"}),
        )
        .unwrap();
    env.sync().await;
    let ex = &env.ex_contacts(0)[0];
    assert_eq!(ex.job_title.as_deref(), Some("VP Sales"));
    assert_eq!(
        ex.addresses.get("Business").and_then(|a| a.city.as_deref()),
        Some("Köln")
    );
    assert_eq!(ex.company_name.as_deref(), Some("Acme GmbH"));

    env.ews
        .edit_item(&mail(0), &ex_id, |i| {
            if let Item::Contact(c) = i {
                c.department = Some("Field".into());
            }
        })
        .unwrap();
    env.sync().await;
    assert_eq!(
        s(env.sf.handle().get(&id).unwrap().get("Department")),
        "Field"
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn all_day_and_recurring_events_sync_and_stay_quiet() {
    let cfg = events_only(json!({ "direction": "both", "conflict": "exchange_wins",
                                  "since": "TODAY", "auto_relate": false, "sync_series": true }));
    let mut env = Env::new(cfg, 1, 0).await;
    let day = (env.now() + Duration::days(3)).date_naive();
    let mut all_day =
        CalendarEvent::all_day(day, day + Duration::days(2), "W. Europe Standard Time").unwrap();
    all_day.subject = Some("Trade fair".into());
    env.ews.put_event(&mail(0), all_day).unwrap();
    let start = env.now() + Duration::days(1);
    let mut weekly = CalendarEvent::new(start, start + Duration::minutes(30));
    weekly.subject = Some("Weekly pipeline".into());
    weekly.start_time_zone = Some("W. Europe Standard Time".into());
    weekly.end_time_zone = weekly.start_time_zone.clone();
    weekly.recurrence = emu_rrule("FREQ=WEEKLY;INTERVAL=1;BYDAY=TU", start.date_naive());
    env.ews.put_event(&mail(0), weekly).unwrap();
    env.sync().await;

    let events = env.sf_records("Event");
    let fair = events
        .iter()
        .find(|e| s(e.get("Subject")) == "Trade fair")
        .unwrap();
    assert_eq!(fair.get("IsAllDayEvent"), Some(&Value::Bool(true)));
    assert_eq!(s(fair.get("ActivityDate")), day.to_string());
    assert_eq!(
        fair.get("DurationInMinutes").and_then(Value::as_i64),
        Some(2 * 1440)
    );
    let series = events
        .iter()
        .find(|e| s(e.get("Subject")) == "Weekly pipeline")
        .unwrap();
    assert!(s(series.get("Recurrence2PatternText")).contains("FREQ=WEEKLY"));
    let p = env.plan().await;
    assert!(p.is_empty(), "{p:#?}");
}

async fn event_with_an_attendee(env: &Env) {
    let start = env.now() + Duration::days(1);
    let mut e = CalendarEvent::new(start, start + Duration::minutes(30));
    e.subject = Some("Demo".into());
    e.required_attendees.push(ews_emu::model::Attendee {
        mailbox: ews_emu::model::MailboxAddress {
            name: None,
            email: "buyer@customer.com".into(),
        },
        response: None,
    });
    env.ews.put_event(&mail(0), e).unwrap();
}

#[tokio::test]
async fn syncing_never_removes_an_attendee_from_an_exchange_meeting() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    event_with_an_attendee(&env).await;
    for _ in 0..3 {
        env.sync().await;
    }
    assert_eq!(env.sf_records("Event").len(), 1);
    let ev = env.ex_events(0);
    assert_eq!(ev.len(), 1);
    let attendees: Vec<&str> = ev[0]
        .required_attendees
        .iter()
        .map(|a| a.mailbox.email.as_str())
        .collect();
    assert_eq!(attendees, ["buyer@customer.com"]);
}

/// Salesforce keeps attendees as EventRelations, not on the Event, so they are used to
/// relate and never compared: a meeting with attendees must not be rewritten every cycle.
#[tokio::test]
async fn an_exchange_event_with_attendees_syncs_once_and_stays_quiet() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    event_with_an_attendee(&env).await;
    env.sync().await;
    env.sync().await;
    let p = env.plan().await;
    assert!(p.is_empty(), "{p:#?}");
}

/// Two active configurations: "Sales" (rep0) maps `OtherPhone: BusinessPhone2`, "Other"
/// (rep1) removes `Department`. The connectors used to hold the fields both map, so the
/// added mapping and the kept default synced for nobody.
fn two_configurations_with_their_own_mappings() -> Config {
    let mut cfg = config(
        json!({ "direction": "both", "conflict": "salesforce_wins", "scope": "users_records",
                "field_mappings": { "OtherPhone": "BusinessPhone2" } }),
        Value::Null,
    );
    let mut other = config(
        json!({ "direction": "both", "conflict": "salesforce_wins", "scope": "users_records",
                "field_mappings": { "Department": null } }),
        Value::Null,
    )
    .sync_configurations
    .remove(0);
    other.name = "Other".into();
    other.members.users = vec![mail(1)];
    other.members.profiles = Vec::new();
    cfg.sync_configurations.push(other);
    cfg
}

#[test]
fn connectors_read_the_fields_any_configuration_maps() {
    let m = connector_mapping(
        &two_configurations_with_their_own_mappings(),
        ObjectKind::Contact,
    );
    assert_eq!(m.exchange_for("OtherPhone"), Some("BusinessPhone2"));
    assert!(m.maps("Department") && m.maps("Email"));
}

#[tokio::test]
async fn each_rep_syncs_with_its_own_configurations_mappings() {
    let mut env = Env::new(two_configurations_with_their_own_mappings(), 2, 0).await;
    for (rep, phone, dept) in [
        (0, "+1 555 0100", "Sales Ops"),
        (1, "+1 555 0200", "Finance"),
    ] {
        env.sf_insert(
            "Contact",
            json!({"FirstName": "Ann", "LastName": format!("Rep{rep}"), "Email": format!("ann{rep}@y.com"),
                   "OtherPhone": phone, "Department": dept, "OwnerId": env.reps[rep]}),
        );
    }
    env.sync().await;
    fn only(env: &Env, rep: usize) -> EwsContact {
        let c = env.ex_contacts(rep);
        assert_eq!(c.len(), 1, "{c:#?}");
        c[0].clone()
    }
    let c0 = only(&env, 0);
    assert_eq!(
        c0.phones.get("BusinessPhone2").map(String::as_str),
        Some("+1 555 0100")
    );
    assert_eq!(c0.phones.get("OtherTelephone"), None);
    assert_eq!(c0.department.as_deref(), Some("Sales Ops"));
    let c1 = only(&env, 1);
    assert_eq!(
        c1.phones.get("OtherTelephone").map(String::as_str),
        Some("+1 555 0200")
    );
    assert_eq!(c1.phones.get("BusinessPhone2"), None);
    assert_eq!(c1.department, None, "Other does not map Department");

    // Outlook edits: rep0's BusinessPhone2 reaches OtherPhone; rep1's Department, which
    // Other does not map, stays in Outlook and its write leaves Salesforce's alone.
    env.ews
        .edit_item(&mail(0), &c0.item_id.as_ref().unwrap().id, |i| {
            if let Item::Contact(c) = i {
                c.phones
                    .insert("BusinessPhone2".into(), "+1 555 0111".into());
            }
        })
        .unwrap();
    env.ews
        .edit_item(&mail(1), &c1.item_id.as_ref().unwrap().id, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Buyer".into());
                c.department = Some("Set in Outlook".into());
            }
        })
        .unwrap();
    env.sync().await;
    let sf = |last: &str| {
        env.sf_records("Contact")
            .into_iter()
            .find(|r| s(r.get("LastName")) == last)
            .unwrap()
    };
    assert_eq!(s(sf("Rep0").get("OtherPhone")), "+1 555 0111");
    assert_eq!(s(sf("Rep1").get("Title")), "Buyer");
    assert_eq!(
        s(sf("Rep1").get("Department")),
        "Finance",
        "an unmapped field is not written"
    );
    assert_eq!(only(&env, 1).department.as_deref(), Some("Set in Outlook"));
    assert!(env.plan().await.is_empty());
}

/// "Other" (rep1) removes the default `Location` mapping for events; "Sales" (rep0) keeps
/// it. A meeting rep1 moves in Outlook moves in Salesforce, and its Location there stays.
#[tokio::test]
async fn a_default_one_configuration_removes_is_never_written_for_its_reps() {
    let mut cfg = events_only(both_events());
    let mut other = cfg.sync_configurations[0].clone();
    other.name = "Other".into();
    other.members.users = vec![mail(1)];
    other.members.profiles = Vec::new();
    if let Some(e) = other.events.as_mut() {
        e.field_mappings.insert("Location".into(), None);
    }
    cfg.sync_configurations.push(other);
    let mut env = Env::new(cfg, 2, 0).await;
    let start = env.now() + Duration::days(1);
    for rep in 0..2 {
        let id = env.sf_event(rep, &format!("Meeting {rep}"), start, 30);
        env.sf
            .handle()
            .update("Event", &id, json!({"Location": "Room 1"}))
            .unwrap();
    }
    env.sync().await;
    assert_eq!(env.ex_events(0)[0].location.as_deref(), Some("Room 1"));
    assert_eq!(
        env.ex_events(1)[0].location,
        None,
        "Other does not map Location"
    );
    for rep in 0..2 {
        let item = env.ex_events(rep)[0].item_id.clone().unwrap().id;
        env.ews
            .edit_item(&mail(rep), &item, |i| {
                if let Item::Event(e) = i {
                    e.start += Duration::hours(1);
                    e.end += Duration::hours(1);
                    e.location = Some("Room 9".into());
                }
            })
            .unwrap();
    }
    env.sync().await;
    let sf = |subject: &str| {
        env.sf_records("Event")
            .into_iter()
            .find(|r| s(r.get("Subject")) == subject)
            .unwrap()
    };
    assert_eq!(s(sf("Meeting 0").get("Location")), "Room 9");
    let moved = sf("Meeting 1");
    assert_eq!(
        s(moved.get("Location")),
        "Room 1",
        "an unmapped field is not written"
    );
    let moved_start: DateTime<Utc> = s(moved.get("StartDateTime"))
        .replace("+0000", "Z")
        .parse()
        .unwrap();
    assert_eq!(
        moved_start,
        start + Duration::hours(1),
        "the move is written"
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn every_ews_body_of_a_full_sync_is_schema_valid() {
    let mut env = Env::validating(config(both_contacts(), both_events()), 1).await;
    let ex_id = env.ex_put_contact(0, true, "Gil", "Ray", "gil@x.com");
    let sf_contact = env.sf_contact(0, "Hal", "Sun", "hal@y.com");
    let ex_event = env.ex_put_event(0, "From Exchange", env.now() + Duration::days(1), 30, false);
    let sf_event = env.sf_event(0, "From Salesforce", env.now() + Duration::days(2), 60);
    env.sync().await;
    // Updates both ways, then deletes (events: delete_synced).
    env.ews
        .edit_item(&mail(0), &ex_id, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Buyer".into());
            }
        })
        .unwrap();
    env.sf
        .handle()
        .update("Contact", &sf_contact, json!({"Phone": "+1 555 0100"}))
        .unwrap();
    env.sf
        .handle()
        .update("Event", &sf_event, json!({"Location": "HQ"}))
        .unwrap();
    env.sync().await;
    assert!(env.ews.delete_item(&mail(0), &ex_event));
    env.sf.handle().delete(&sf_event).unwrap();
    env.sync().await;
    assert!(env.plan().await.is_empty());
    assert!(
        env.sf_records("Event").is_empty(),
        "delete_synced: deleted on the other side"
    );
    assert!(
        env.ex_events(0).is_empty(),
        "delete_synced: deleted on the other side"
    );
    let bodies = env.ews.bodies();
    for op in [
        "SyncFolderItems",
        "GetItem",
        "CreateItem",
        "UpdateItem",
        "DeleteItem",
        "FindFolder",
    ] {
        assert!(
            bodies.iter().any(|b| b.contains(op)),
            "no {op} body recorded"
        );
    }
    ews::validate_all(&bodies);
}

#[tokio::test]
async fn a_salesforce_edit_in_the_same_second_as_the_last_read_is_not_missed() {
    let mut env = Env::new(contacts_only(), 1, 0).await;
    let id = env.sf_contact(0, "Ivy", "Tan", "ivy@y.com");
    // No time passes: the cycle reads the contact at the second it was written...
    let now = env.now();
    run_cycle(
        &env.config,
        &env.mail,
        &env.crm,
        &mut env.state,
        now,
        &SyncOptions::default(),
        &mut StepBudget::unlimited(),
    )
    .await
    .unwrap();
    assert_eq!(env.ex_contacts(0).len(), 1);
    // ...and a user saves an edit within that same second.
    env.sf
        .handle()
        .update("Contact", &id, json!({"Title": "Same second"}))
        .unwrap();
    env.sync().await;
    assert_eq!(
        env.ex_contacts(0)[0].job_title.as_deref(),
        Some("Same second")
    );
}

/// A long transaction stamps its records when it writes them but commits later: here it
/// began before the newest stamp the last cycle read, so its records arrive with stamps
/// behind the watermark (the emulator's late-commit fault). The change read looks back far
/// enough to catch them: the edit and the delete both reach Exchange, and the cycle after
/// plans nothing.
#[tokio::test]
async fn late_commit_with_an_earlier_stamp_is_caught() {
    let both = config(both_contacts(), events(json!({ "delete_synced": true })));
    let mut env = Env::new(both, 1, 0).await;
    let late = env.sf_contact(0, "Lee", "Late", "lee@y.com");
    let start = env.now() + Duration::days(1);
    let gone = env.sf_event(0, "Cancelled by the batch", start, 30);
    env.sync().await;
    assert_eq!(env.ex_contacts(0).len(), 1);
    assert_eq!(env.ex_events(0).len(), 1);

    // The long transaction begins (a batch job, say) and stamps the records it writes...
    let started = env.now();
    env.clock.advance(std::time::Duration::from_secs(5 * 60));
    // ...while a user's edits commit and a cycle reads them: the watermark passes `started`.
    let ann = env.sf_contact(0, "Ann", "Other", "ann@y.com");
    env.sf_event(0, "Booked meanwhile", start + Duration::hours(2), 30);
    env.sync().await;
    assert_eq!(env.ex_contacts(0).len(), 2);
    // The transaction commits: its records become visible now, stamped when it began.
    let h = env.sf.handle();
    h.update_committed_late(
        "Contact",
        &late,
        json!({"Title": "Committed late"}),
        started,
    )
    .unwrap();
    h.delete_committed_late(&gone, started).unwrap();
    let stamp = |id: &str| {
        h.get(id).unwrap()["SystemModstamp"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(stamp(&late) < stamp(&ann), "stamped before the watermark");
    env.sync().await;
    let lee = env
        .ex_contacts(0)
        .into_iter()
        .find(|c| c.surname.as_deref() == Some("Late"))
        .unwrap();
    assert_eq!(lee.job_title.as_deref(), Some("Committed late"));
    assert_eq!(
        ex_subjects(&env.ex_events(0)),
        set(&["Booked meanwhile"]),
        "the late delete reached Exchange"
    );
    assert!(env.plan().await.is_empty());
}

/// Salesforce stamps whole seconds (`2026-12-03T11:22:33.000+0000`); so does the emulator,
/// whatever its clock says.
#[tokio::test]
async fn emulator_stamps_are_whole_seconds() {
    let env = Env::new(contacts_only(), 1, 0).await;
    env.clock.advance(std::time::Duration::from_millis(1_234));
    let id = env.sf_contact(0, "Ms", "Second", "ms@y.com");
    let rec = env.sf.handle().get(&id).unwrap();
    for field in ["SystemModstamp", "LastModifiedDate", "CreatedDate"] {
        assert_eq!(
            rec[field].as_str().unwrap(),
            "2026-06-15T10:00:01.000+0000",
            "{field}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The admin guide's event settings through both emulators: which, auto_relate, sync_series,
// delete_synced, and the empty-side guard.

/// `both_events()` with some settings changed.
fn events(changes: Value) -> Value {
    let mut base = both_events();
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn subjects(records: &[Map<String, Value>]) -> std::collections::BTreeSet<String> {
    records
        .iter()
        .map(|e| s(e.get("Subject")).to_string())
        .collect()
}

fn ex_subjects(events: &[CalendarEvent]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .map(|e| e.subject.clone().unwrap_or_default())
        .collect()
}

fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A meeting in the rep's calendar with these attendees.
fn put_meeting(env: &Env, subject: &str, start: DateTime<Utc>, attendees: &[&str]) -> String {
    let mut e = CalendarEvent::new(start, start + Duration::minutes(30));
    e.subject = Some(subject.into());
    e.start_time_zone = Some("W. Europe Standard Time".into());
    e.end_time_zone = e.start_time_zone.clone();
    e.required_attendees = attendees
        .iter()
        .map(|a| ews_emu::model::Attendee {
            mailbox: ews_emu::model::MailboxAddress {
                name: None,
                email: a.to_string(),
            },
            response: None,
        })
        .collect();
    env.ews.put_event(&mail(0), e).unwrap().id
}

impl Env {
    /// The Salesforce event with this subject.
    fn sf_event_id(&self, subject: &str) -> String {
        let events = self.sf_records("Event");
        let e = events
            .iter()
            .find(|e| s(e.get("Subject")) == subject)
            .unwrap_or_else(|| panic!("no Salesforce event {subject:?}"));
        s(e.get("Id")).to_string()
    }

    /// Who a Salesforce event is related to (EventRelation.RelationId), sorted.
    fn relations(&self, event_id: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .sf_records("EventRelation")
            .iter()
            .filter(|r| s(r.get("EventId")) == event_id)
            .map(|r| s(r.get("RelationId")).to_string())
            .collect();
        out.sort();
        out
    }
}

#[tokio::test]
async fn user_selected_syncs_only_related_events_to_salesforce_while_salesforce_to_exchange_syncs_all()
 {
    let mut env = Env::new(
        events_only(events(json!({ "which": "user_selected" }))),
        1,
        0,
    )
    .await;
    let start = env.now() + Duration::days(1);
    // Related in the Outlook integration: the "Salesforce" category, or the property.
    let mut by_category = CalendarEvent::new(start, start + Duration::minutes(60));
    by_category.subject = Some("Related by category".into());
    by_category.categories = vec!["Salesforce".into()];
    env.ews.put_event(&mail(0), by_category).unwrap();
    let mut by_property = CalendarEvent::new(start, start + Duration::minutes(90));
    by_property.subject = Some("Related by property".into());
    by_property.extended.insert(
        tether::exchange::model::PROP_OUTLOOK_RELATED.into(),
        "true".into(),
    );
    env.ews.put_event(&mail(0), by_property).unwrap();
    env.ex_put_event(0, "Personal", start + Duration::hours(3), 60, false);
    env.sf_event(0, "From Salesforce", start + Duration::days(1), 60);

    let r = env.sync().await;
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&[
            "Related by category",
            "Related by property",
            "From Salesforce"
        ]),
        "{:#?}",
        r.plan
    );
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.reason.contains("user_selected")),
        "{:#?}",
        r.plan.skipped
    );
    assert_eq!(
        ex_subjects(&env.ex_events(0)),
        set(&[
            "Related by category",
            "Related by property",
            "Personal",
            "From Salesforce"
        ]),
        "Salesforce→Exchange still syncs every event"
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn auto_relate_relates_attendees_to_contacts_or_one_lead_and_records_the_unmatched() {
    let mut env = Env::new(events_only(events(json!({ "auto_relate": true }))), 1, 0).await;
    let contact = env.sf_contact(0, "Cleo", "One", "c1@x.com");
    let lead = env.sf_insert(
        "Lead",
        json!({"LastName": "Prospect", "Company": "Prospects Inc", "Email": "lead@x.com"}),
    );
    let start = env.now() + Duration::days(1);
    put_meeting(
        &env,
        "Demo",
        start,
        &["C1@x.com", "lead@x.com", "nobody@x.com", &mail(0)],
    );
    put_meeting(
        &env,
        "Lead call",
        start + Duration::hours(2),
        &["lead@x.com"],
    );
    env.sync().await;

    let demo = env.sf_event_id("Demo");
    assert_eq!(
        env.relations(&demo),
        vec![contact.clone()],
        "contacts, not the lead too"
    );
    let call = env.sf_event_id("Lead call");
    assert_eq!(env.relations(&call), vec![lead], "one lead");
    let unresolved: Vec<String> = env
        .state
        .unresolved(&env.reps[0])
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(unresolved, vec!["nobody@x.com".to_string()]);

    // On the first sync only: an edit later relates nothing more.
    let other = env.sf_contact(0, "Nobody", "Yet", "nobody@x.com");
    let id = env
        .ex_events(0)
        .into_iter()
        .find(|e| e.subject.as_deref() == Some("Demo"))
        .unwrap()
        .item_id
        .unwrap()
        .id;
    env.ews
        .edit_item(&mail(0), &id, |i| {
            if let Item::Event(e) = i {
                e.location = Some("Room 4".into());
            }
        })
        .unwrap();
    env.sync().await;
    assert_eq!(env.relations(&demo), vec![contact]);
    assert!(!env.relations(&demo).contains(&other));
    assert!(env.plan().await.is_empty());
}

/// EventRelation (Object Reference): a related contact or lead is a relation with
/// IsParent = true (the documented example inserts IsParent=true, IsInvitee=false); the first
/// becomes the event's WhoId. A relation with neither flag relates nothing on a real org.
#[tokio::test]
async fn auto_relate_creates_documented_event_relations() {
    let mut env = Env::new(events_only(events(json!({ "auto_relate": true }))), 1, 0).await;
    let first = env.sf_contact(0, "Cleo", "One", "c1@x.com");
    let second = env.sf_contact(0, "Dora", "Two", "c2@x.com");
    put_meeting(
        &env,
        "Review",
        env.now() + Duration::days(1),
        &["c1@x.com", "c2@x.com"],
    );
    env.sync().await;
    let id = env.sf_event_id("Review");
    let mut relations: Vec<(String, Value, Value, Value)> = env
        .sf_records("EventRelation")
        .iter()
        .filter(|r| s(r.get("EventId")) == id)
        .map(|r| {
            (
                s(r.get("RelationId")).to_string(),
                r["IsParent"].clone(),
                r["IsInvitee"].clone(),
                r["IsWhat"].clone(),
            )
        })
        .collect();
    relations.sort_by(|a, b| a.0.cmp(&b.0));
    let who = |c: &String| (c.clone(), json!(true), json!(false), json!(false));
    let mut expected = vec![who(&first), who(&second)];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(relations, expected);
    let event = env.sf.handle().get(&id).unwrap();
    assert!(
        [json!(first), json!(second)].contains(&event["WhoId"]),
        "a related contact is the event's WhoId: {event:?}"
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn auto_relate_relates_at_most_50_contacts_to_an_event() {
    let mut env = Env::new(events_only(events(json!({ "auto_relate": true }))), 1, 0).await;
    let emails: Vec<String> = (0..51).map(|i| format!("buyer{i:02}@x.com")).collect();
    for (i, e) in emails.iter().enumerate() {
        env.sf_contact(0, "Buyer", &format!("No{i}"), e);
    }
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    put_meeting(&env, "Town hall", env.now() + Duration::days(1), &refs);
    env.sync().await;
    let id = env.sf_event_id("Town hall");
    assert_eq!(env.relations(&id).len(), 50);
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_private_event_is_never_auto_related() {
    let cfg = events_only(events(json!({ "auto_relate": true, "sync_private": true })));
    let mut env = Env::new(cfg, 1, 0).await;
    env.sf_contact(0, "Doc", "Tor", "doctor@x.com");
    let start = env.now() + Duration::days(1);
    let id = put_meeting(&env, "Check-up", start, &["doctor@x.com", "nurse@x.com"]);
    env.ews
        .edit_item(&mail(0), &id, |i| {
            if let Item::Event(e) = i {
                e.sensitivity = Some(Sensitivity::Private);
            }
        })
        .unwrap();
    env.sync().await;
    let sf = env.sf_records("Event");
    assert_eq!(sf.len(), 1);
    assert_eq!(sf[0].get("IsPrivate"), Some(&Value::Bool(true)));
    assert!(env.relations(s(sf[0].get("Id"))).is_empty());
    assert!(env.state.unresolved(&env.reps[0]).unwrap().is_empty());
}

fn weekly(start: DateTime<Utc>, subject: &str) -> CalendarEvent {
    let mut e = CalendarEvent::new(start, start + Duration::minutes(30));
    e.subject = Some(subject.into());
    e.start_time_zone = Some("W. Europe Standard Time".into());
    e.end_time_zone = e.start_time_zone.clone();
    e.recurrence = emu_rrule("FREQ=WEEKLY;INTERVAL=1;BYDAY=TU", start.date_naive());
    e
}

/// A Salesforce Classic recurring event, as Classic stores it.
fn classic_recurring(env: &Env, start: DateTime<Utc>) -> String {
    let id = env.sf_event(0, "Classic weekly", start, 30);
    assert!(env.sf.handle().set_raw(
        &id,
        json!({"IsRecurrence": true, "RecurrenceType": "RecursWeekly",
               "RecurrenceInterval": 1, "RecurrenceDayOfWeekMask": 4})
    ));
    id
}

#[tokio::test]
async fn sync_series_off_skips_series_with_the_reason_and_classic_recurring_events_never_sync() {
    let mut env = Env::new(events_only(events(json!({ "sync_series": false }))), 1, 0).await;
    let start = env.now() + Duration::days(1);
    env.ews
        .put_event(&mail(0), weekly(start, "Exchange weekly"))
        .unwrap();
    let sf_series = env.sf_insert(
        "Event",
        json!({"Subject": "Salesforce weekly", "OwnerId": env.reps[0],
               "StartDateTime": (start + Duration::hours(2)).to_rfc3339(),
               "EndDateTime": (start + Duration::hours(2) + Duration::minutes(30)).to_rfc3339(),
               "Recurrence2PatternText": "RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=TU"}),
    );
    classic_recurring(&env, start + Duration::hours(4));
    let r = env.sync().await;
    assert!(
        s(env
            .sf
            .handle()
            .get(&sf_series)
            .unwrap()
            .get("Recurrence2PatternText"))
        .contains("FREQ=WEEKLY"),
        "the emulator keeps the series"
    );
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&["Salesforce weekly", "Classic weekly"]),
        "the Exchange series stays out of Salesforce"
    );
    assert_eq!(
        ex_subjects(&env.ex_events(0)),
        set(&["Exchange weekly"]),
        "neither Salesforce series reaches Exchange"
    );
    let reasons: Vec<&str> = r.plan.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("sync_series")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("classic recurring")),
        "{reasons:?}"
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn sync_series_on_syncs_series_both_ways_and_classic_recurring_events_still_never_sync() {
    let mut env = Env::new(events_only(events(json!({ "sync_series": true }))), 1, 0).await;
    let start = env.now() + Duration::days(1);
    env.ews
        .put_event(&mail(0), weekly(start, "Exchange weekly"))
        .unwrap();
    env.sf_insert(
        "Event",
        json!({"Subject": "Salesforce weekly", "OwnerId": env.reps[0],
               "StartDateTime": (start + Duration::hours(2)).to_rfc3339(),
               "EndDateTime": (start + Duration::hours(2) + Duration::minutes(30)).to_rfc3339(),
               "Recurrence2PatternText": "RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=TU"}),
    );
    classic_recurring(&env, start + Duration::hours(4));
    let r = env.sync().await;

    let sf = env.sf_records("Event");
    let from_ex = sf
        .iter()
        .find(|e| s(e.get("Subject")) == "Exchange weekly")
        .expect("the Exchange series reaches Salesforce");
    assert!(s(from_ex.get("Recurrence2PatternText")).contains("FREQ=WEEKLY"));
    let ex = env.ex_events(0);
    let from_sf = ex
        .iter()
        .find(|e| e.subject.as_deref() == Some("Salesforce weekly"))
        .expect("the Salesforce series reaches Exchange");
    assert!(from_sf.recurrence.is_some(), "a recurring master");
    assert!(
        ex.iter()
            .all(|e| e.subject.as_deref() != Some("Classic weekly")),
        "classic recurring events never sync"
    );
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.reason.contains("classic recurring"))
    );
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);
}

#[tokio::test]
async fn delete_synced_deletes_on_the_other_side() {
    let mut env = Env::new(events_only(events(json!({ "delete_synced": true }))), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let ex_id = env.ex_put_event(0, "Born in Exchange", start, 30, false);
    let sf_id = env.sf_event(0, "Born in Salesforce", start + Duration::hours(2), 30);
    env.sync().await;
    assert_eq!(env.sf_records("Event").len(), 2);
    assert_eq!(env.ex_events(0).len(), 2);

    assert!(env.ews.delete_item(&mail(0), &ex_id));
    env.sf.handle().delete(&sf_id).unwrap();
    env.sync().await;
    assert!(env.sf_records("Event").is_empty());
    assert!(env.ex_events(0).is_empty());
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn delete_synced_off_unlinks_instead_of_deleting() {
    let mut env = Env::new(events_only(events(json!({ "delete_synced": false }))), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let ex_id = env.ex_put_event(0, "Born in Exchange", start, 30, false);
    let sf_id = env.sf_event(0, "Born in Salesforce", start + Duration::hours(2), 30);
    env.sync().await;

    assert!(env.ews.delete_item(&mail(0), &ex_id));
    env.sf.handle().delete(&sf_id).unwrap();
    env.sync().await;
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&["Born in Exchange"]),
        "kept in Salesforce"
    );
    assert_eq!(
        ex_subjects(&env.ex_events(0)),
        set(&["Born in Salesforce"]),
        "kept in Exchange"
    );
    // Unlinked: neither copy is synced back, which would undo the delete.
    env.sync().await;
    assert_eq!(env.sf_records("Event").len(), 1);
    assert_eq!(env.ex_events(0).len(), 1);
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_side_that_suddenly_looks_empty_causes_no_mass_delete_unless_forced() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let ids: Vec<String> = (0..6)
        .map(|i| env.ex_put_event(0, &format!("M{i}"), start + Duration::hours(i), 30, false))
        .collect();
    env.sync().await;
    assert_eq!(env.sf_records("Event").len(), 6);

    for id in &ids {
        assert!(env.ews.delete_item(&mail(0), id));
    }
    let r = env.sync().await;
    assert_eq!(r.plan.refusals.len(), 1, "{:#?}", r.plan);
    assert_eq!(env.sf_records("Event").len(), 6, "nothing deleted");
    // In the rep's error report, with what to do.
    let errors = env.state.errors().unwrap();
    let guard = errors
        .iter()
        .find(|e| e.code == "EMPTY_SIDE_GUARD")
        .expect("reported");
    assert_eq!(guard.rep, env.reps[0]);
    assert!(guard.suggestion.contains("--force"));
    // Still refused on the next cycle (the rep is read again in full)...
    let r = env.sync().await;
    assert_eq!(r.plan.refusals.len(), 1);
    assert_eq!(env.sf_records("Event").len(), 6);
    // ...until an admin forces it.
    let r = env.sync_forced().await;
    assert!(r.plan.refusals.is_empty());
    assert!(env.sf_records("Event").is_empty());
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_salesforce_side_that_suddenly_looks_empty_causes_no_mass_delete_in_exchange() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let ids: Vec<String> = (0..6)
        .map(|i| env.sf_event(0, &format!("M{i}"), start + Duration::hours(i), 30))
        .collect();
    env.sync().await;
    assert_eq!(env.ex_events(0).len(), 6);
    for id in &ids {
        env.sf.handle().delete(id).unwrap();
    }
    let r = env.sync().await;
    assert_eq!(r.plan.refusals.len(), 1, "{:#?}", r.plan);
    assert_eq!(env.ex_events(0).len(), 6, "nothing deleted in Exchange");
    env.sync_forced().await;
    assert!(env.ex_events(0).is_empty());
}

// ---------------------------------------------------------------------------------------
// Membership and mailboxes, contact filters and scope, first-sync matching, one-way sync.

fn emails_in_salesforce(env: &Env) -> std::collections::BTreeSet<String> {
    env.sf_records("Contact")
        .iter()
        .map(|c| s(c.get("Email")).to_string())
        .collect()
}

fn emails_in(contacts: &[EwsContact]) -> std::collections::BTreeSet<String> {
    contacts
        .iter()
        .map(|c| c.emails[0].clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_user_listed_individually_wins_over_profile_membership() {
    // "By profile" (every Sales User) syncs contacts Exchange→Salesforce; "Named" lists rep1,
    // who also has the Sales User profile, and syncs them Salesforce→Exchange.
    let mut cfg = config(
        json!({ "direction": "exchange_to_salesforce", "scope": "users_records" }),
        Value::Null,
    );
    let mut named = cfg.sync_configurations[0].clone();
    named.name = "Named".into();
    named.members.users = vec![mail(1).to_uppercase()];
    named.members.profiles = Vec::new();
    named.contacts = serde_json::from_value(
        json!({ "direction": "salesforce_to_exchange", "scope": "users_records" }),
    )
    .unwrap();
    cfg.sync_configurations.push(named);
    let mut env = Env::new(cfg, 2, 0).await;
    env.ex_put_contact(0, true, "Ex", "Zero", "ex0@x.com");
    env.sf_contact(0, "Sf", "Zero", "sf0@y.com");
    env.ex_put_contact(1, true, "Ex", "One", "ex1@x.com");
    env.sf_contact(1, "Sf", "One", "sf1@y.com");
    let r = env.sync().await;
    assert!(r.read.problems.is_empty(), "{:?}", r.read.problems);

    let configuration = |rep: usize| {
        r.read
            .reps
            .iter()
            .find(|x| x.user_id == env.reps[rep])
            .map(|x| x.configuration)
    };
    assert_eq!((configuration(0), configuration(1)), (Some(0), Some(1)));
    // rep0 by profile: Exchange→Salesforce only.
    assert!(emails_in_salesforce(&env).contains("ex0@x.com"));
    assert_eq!(emails_in(&env.ex_contacts(0)), set(&["ex0@x.com"]));
    // rep1 listed individually: Salesforce→Exchange only.
    assert!(!emails_in_salesforce(&env).contains("ex1@x.com"));
    assert_eq!(
        emails_in(&env.ex_contacts(1)),
        set(&["ex1@x.com", "sf1@y.com"])
    );
    assert_eq!(
        emails_in_salesforce(&env),
        set(&["ex0@x.com", "sf0@y.com", "sf1@y.com"])
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn additional_domains_link_a_rep_whose_mail_domain_differs() {
    let mut env = Env::new(contacts_only(), 0, 0).await;
    let mut reps = Vec::new();
    for smtp in ["ana@acme.net", "cy@elsewhere.org"] {
        env.ews.add_mailbox(smtp, Some("Sales"));
        let id = env
            .sf
            .handle()
            .add_user(smtp, smtp, "Rep", "Sales User", "Europe/Berlin");
        env.sf_insert(
            "Contact",
            json!({"FirstName": "Of", "LastName": smtp, "Email": format!("contact.{smtp}"),
                   "OwnerId": id}),
        );
        reps.push(id);
    }
    let r = env.sync().await;
    assert_eq!(
        emails_in(&env.contacts_in("ana@acme.net")),
        set(&["contact.ana@acme.net"]),
        "acme.net is in additional_domains"
    );
    assert!(env.contacts_in("cy@elsewhere.org").is_empty());
    assert!(
        env.ews
            .find_folder("cy@elsewhere.org", "Salesforce_Sync")
            .is_none()
    );
    let problems: Vec<(&str, &str)> = r
        .read
        .problems
        .iter()
        .map(|p| (p.user.as_str(), p.code))
        .collect();
    assert_eq!(problems, vec![("cy@elsewhere.org", "NO_MAILBOX_DOMAIN")]);

    // Without the additional domain the acme.net rep has no mailbox either.
    let mut cfg = contacts_only();
    if let tether::config::model::ExchangeConnection::ServiceAccount {
        additional_domains, ..
    } = &mut cfg.connections.exchange
    {
        additional_domains.clear();
    }
    let (_, read) = read_and_plan(
        &cfg,
        &env.mail,
        &env.crm,
        &env.state,
        env.now(),
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert!(read.reps.is_empty());
    assert!(
        read.problems
            .iter()
            .any(|p| p.user == "ana@acme.net" && p.code == "NO_MAILBOX_DOMAIN")
    );
}

#[tokio::test]
async fn contact_filters_apply_salesforce_to_exchange_only() {
    let contacts = json!({ "direction": "both", "conflict": "salesforce_wins",
        "scope": "users_records",
        "filters": [ { "field": "MailingCountry", "op": "in", "values": ["DE", "FR"] } ] });
    let mut env = Env::new(config(contacts, Value::Null), 1, 0).await;
    let country = |id: &str, c: &str| {
        env.sf
            .handle()
            .update("Contact", id, json!({ "MailingCountry": c }))
            .unwrap();
    };
    let de = env.sf_contact(0, "In", "De", "de@y.com");
    country(&de, "de");
    let us = env.sf_contact(0, "Out", "Us", "us@y.com");
    country(&us, "US");
    // Exchange→Salesforce ignores the filter.
    let ex = env.ex_put_contact(0, true, "Ex", "Us", "exus@x.com");
    env.ews
        .edit_item(&mail(0), &ex, |i| {
            if let Item::Contact(c) = i {
                c.addresses.entry("Business".into()).or_default().country = Some("US".into());
            }
        })
        .unwrap();
    let r = env.sync().await;
    assert_eq!(
        emails_in(&env.ex_contacts(0)),
        set(&["de@y.com", "exus@x.com"])
    );
    let sf = env.sf_records("Contact");
    let exus = sf
        .iter()
        .find(|c| s(c.get("Email")) == "exus@x.com")
        .expect("the filter does not apply Exchange→Salesforce");
    assert_eq!(s(exus.get("MailingCountry")), "US");
    assert!(
        r.plan.skipped.iter().any(|s| s.reason.contains("filters")),
        "{:#?}",
        r.plan.skipped
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn contact_scope_users_records_syncs_only_the_reps_own_and_all_contacts_syncs_all() {
    let mut env = Env::new(contacts_only(), 2, 0).await;
    env.sf_contact(0, "Own", "Zero", "own0@y.com");
    env.sf_contact(1, "Own", "One", "own1@y.com");
    env.sync().await;
    assert_eq!(emails_in(&env.ex_contacts(0)), set(&["own0@y.com"]));
    assert_eq!(emails_in(&env.ex_contacts(1)), set(&["own1@y.com"]));

    let all = json!({ "direction": "salesforce_to_exchange", "scope": "all_contacts" });
    let mut env = Env::new(config(all, Value::Null), 2, 0).await;
    env.sf_contact(0, "Own", "Zero", "own0@y.com");
    env.sf_contact(1, "Own", "One", "own1@y.com");
    env.sync().await;
    let both = set(&["own0@y.com", "own1@y.com"]);
    assert_eq!(emails_in(&env.ex_contacts(0)), both);
    assert_eq!(emails_in(&env.ex_contacts(1)), both);
    // A contact added later by a colleague reaches every rep too.
    env.sf_contact(1, "New", "One", "new1@y.com");
    env.sync().await;
    let three = set(&["own0@y.com", "own1@y.com", "new1@y.com"]);
    assert_eq!(emails_in(&env.ex_contacts(0)), three);
    assert_eq!(emails_in(&env.ex_contacts(1)), three);
    assert!(env.plan().await.is_empty());
}

/// `all_contacts` is every contact the rep can see, not every contact the integration user
/// can: with a private sharing default a rep's mailbox gets the rep's own contacts and those
/// shared with them (UserRecordAccess), never another rep's they cannot open.
#[tokio::test]
async fn all_contacts_puts_only_contacts_the_rep_can_read_in_the_mailbox() {
    let all = json!({ "direction": "salesforce_to_exchange", "scope": "all_contacts" });
    let mut env = Env::new(config(all, Value::Null), 2, 0).await;
    env.sf.handle().set_private("Contact");
    env.sf_contact(0, "Own", "Zero", "own0@y.com");
    let secret = env.sf_contact(1, "Own", "One", "own1@y.com");
    let shared = env.sf_contact(1, "Shared", "One", "shared1@y.com");
    env.sf.handle().share(&shared, &env.reps[0]);
    let r = env.sync().await;
    assert_eq!(
        emails_in(&env.ex_contacts(0)),
        set(&["own0@y.com", "shared1@y.com"]),
        "{:#?}",
        r.plan.operations
    );
    assert_eq!(
        emails_in(&env.ex_contacts(1)),
        set(&["own1@y.com", "shared1@y.com"])
    );
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.record_id == secret && s.rep == env.reps[0]),
        "{:#?}",
        r.plan.skipped
    );

    // A no-change cycle asks nothing more: users and the Contact changes only. (The cycle
    // after the first re-reads the records of its last second, and asks about them again.)
    env.sync().await;
    let before = env.sf.handle().served();
    let r = env.sync().await;
    assert!(r.plan.is_empty(), "{:#?}", r.plan);
    let served = diff(&env.sf.handle().served(), &before);
    assert_eq!(served.get("query"), Some(&2), "{served:?}");

    // Shared later, then edited: the next read sees it and the rep may have it now.
    env.sf.handle().share(&secret, &env.reps[0]);
    env.sf
        .handle()
        .update("Contact", &secret, json!({"Title": "Buyer"}))
        .unwrap();
    env.sync().await;
    assert_eq!(
        emails_in(&env.ex_contacts(0)),
        set(&["own0@y.com", "own1@y.com", "shared1@y.com"])
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn first_sync_matches_contacts_by_email_then_by_name_and_company_instead_of_duplicating() {
    let mut env = Env::new(contacts_only(), 1, 0).await;
    env.ex_put_contact(0, true, "Ana", "Diaz", "ANA@x.com");
    env.sf_contact(0, "Ana", "Diaz", "ana@x.com");
    // No email on either side: first + last name + company.
    let bo = env.ex_put_contact(0, true, "Bo", "Li", "");
    env.ews
        .edit_item(&mail(0), &bo, |i| {
            if let Item::Contact(c) = i {
                c.emails = [None, None, None];
                c.company_name = Some("Acme".into());
            }
        })
        .unwrap();
    let acme = env.sf_insert("Account", json!({"Name": "Acme"}));
    env.sf_insert(
        "Contact",
        json!({"FirstName": "bo", "LastName": "LI", "AccountId": acme, "OwnerId": env.reps[0]}),
    );
    // Same name, another company: a different person.
    let other = env.sf_insert("Account", json!({"Name": "Other Corp"}));
    env.sf_insert(
        "Contact",
        json!({"FirstName": "Bo", "LastName": "Li", "AccountId": other, "OwnerId": env.reps[0]}),
    );
    let r = env.sync().await;
    assert_eq!(env.ex_contacts(0).len(), 3, "{:#?}", r.plan.operations);
    assert_eq!(
        env.sf_records("Contact").len(),
        3,
        "{:#?}",
        r.plan.operations
    );
    assert_eq!(
        env.state
            .links(&env.reps[0], ObjectKind::Contact)
            .unwrap()
            .len(),
        3
    );
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);
}

#[tokio::test]
async fn first_sync_matches_events_by_subject_start_and_end_instead_of_duplicating() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let start = env.now() + Duration::days(1);
    env.ex_put_event(0, "Kickoff", start, 60, false);
    env.sf_event(0, " kickoff ", start, 60);
    // Same subject and start, another end: a different meeting.
    env.sf_event(0, "Kickoff", start, 90);
    let r = env.sync().await;
    assert_eq!(env.ex_events(0).len(), 2, "{:#?}", r.plan.operations);
    assert_eq!(env.sf_records("Event").len(), 2, "{:#?}", r.plan.operations);
    assert_eq!(
        env.state
            .links(&env.reps[0], ObjectKind::Event)
            .unwrap()
            .len(),
        2
    );
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);
}

fn ews_writes(env: &Env) -> u64 {
    ["CreateItem", "UpdateItem", "DeleteItem"]
        .iter()
        .map(|op| env.ews.calls(op))
        .sum()
}

fn sf_writes(env: &Env) -> u64 {
    use tether::salesforce::CallKind;
    let c = env.crm.client().call_counts();
    [CallKind::SObject, CallKind::Collection]
        .iter()
        .map(|k| c.get(k).copied().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn one_way_exchange_to_salesforce_never_writes_to_exchange() {
    let cfg = config(
        json!({ "direction": "exchange_to_salesforce", "scope": "users_records" }),
        events(json!({ "direction": "exchange_to_salesforce" })),
    );
    let mut env = Env::new(cfg, 1, 0).await;
    let ex = env.ex_put_contact(0, true, "Ex", "Born", "ex@x.com");
    let sf_only = env.sf_contact(0, "Sf", "Only", "sf@y.com");
    env.sf_event(0, "Salesforce only", env.now() + Duration::days(1), 30);
    env.ex_put_event(
        0,
        "Exchange meeting",
        env.now() + Duration::days(2),
        30,
        false,
    );
    let ews_before = ews_writes(&env);
    env.sync().await;
    assert_eq!(
        emails_in_salesforce(&env),
        set(&["ex@x.com", "sf@y.com"]),
        "the Exchange contact arrives"
    );
    let sf_ex = s(env
        .sf_records("Contact")
        .iter()
        .find(|c| s(c.get("Email")) == "ex@x.com")
        .unwrap()
        .get("Id"))
    .to_string();
    // Salesforce edits and deletes: none goes back to Exchange.
    env.sf
        .handle()
        .update("Contact", &sf_ex, json!({"Title": "Edited in Salesforce"}))
        .unwrap();
    env.sf
        .handle()
        .update("Contact", &sf_only, json!({"Title": "Also edited"}))
        .unwrap();
    let meeting = env.sf_event_id("Exchange meeting");
    env.sf
        .handle()
        .update(
            "Event",
            &meeting,
            json!({"Location": "Moved in Salesforce"}),
        )
        .unwrap();
    env.sync().await;
    env.sf.handle().delete(&sf_ex).unwrap();
    env.sync().await;

    assert_eq!(ews_writes(&env), ews_before, "{:?}", env.ews.all_calls());
    assert_eq!(emails_in(&env.ex_contacts(0)), set(&["ex@x.com"]));
    assert_eq!(env.ex_contacts(0)[0].job_title, None);
    assert_eq!(ex_subjects(&env.ex_events(0)), set(&["Exchange meeting"]));
    assert_eq!(env.ex_events(0)[0].location, None);
    assert!(env.ews.item(&mail(0), &ex).is_some());
}

#[tokio::test]
async fn one_way_salesforce_to_exchange_never_writes_to_salesforce() {
    let cfg = config(
        json!({ "direction": "salesforce_to_exchange", "scope": "users_records" }),
        events(json!({ "direction": "salesforce_to_exchange" })),
    );
    let mut env = Env::new(cfg, 1, 0).await;
    let sf = env.sf_contact(0, "Sf", "Born", "sf@y.com");
    env.ex_put_contact(0, true, "Ex", "Only", "ex@x.com");
    env.ex_put_event(0, "Exchange only", env.now() + Duration::days(1), 30, false);
    let sf_event = env.sf_event(0, "Salesforce meeting", env.now() + Duration::days(2), 30);
    let sf_before = sf_writes(&env);
    let sf_served = env.sf.handle().served();
    env.sync().await;
    assert_eq!(
        emails_in(&env.ex_contacts(0)),
        set(&["ex@x.com", "sf@y.com"])
    );
    // Exchange edits and deletes: none goes back to Salesforce.
    let copy = env
        .ex_contacts(0)
        .into_iter()
        .find(|c| c.emails[0].as_deref() == Some("sf@y.com"))
        .unwrap()
        .item_id
        .unwrap()
        .id;
    env.ews
        .edit_item(&mail(0), &copy, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Edited in Outlook".into());
            }
        })
        .unwrap();
    let meeting = env
        .ex_events(0)
        .into_iter()
        .find(|e| e.subject.as_deref() == Some("Salesforce meeting"))
        .unwrap()
        .item_id
        .unwrap()
        .id;
    env.ews
        .edit_item(&mail(0), &meeting, |i| {
            if let Item::Event(e) = i {
                e.location = Some("Moved in Outlook".into());
            }
        })
        .unwrap();
    env.sync().await;
    assert!(env.ews.delete_item(&mail(0), &copy));
    env.sync().await;

    assert_eq!(
        sf_writes(&env),
        sf_before,
        "{:?}",
        env.crm.client().call_counts()
    );
    let served = diff(&env.sf.handle().served(), &sf_served);
    assert!(
        served
            .keys()
            .all(|k| !k.contains("collection") && !k.contains("sobject")),
        "{served:?}"
    );
    assert_eq!(emails_in_salesforce(&env), set(&["sf@y.com"]));
    let rec = env.sf.handle().get(&sf).unwrap();
    assert_eq!(
        rec.get("Title").cloned().unwrap_or(Value::Null),
        Value::Null
    );
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&["Salesforce meeting"])
    );
    assert_eq!(
        env.sf
            .handle()
            .get(&sf_event)
            .unwrap()
            .get("Location")
            .cloned()
            .unwrap_or(Value::Null),
        Value::Null
    );
}

/// Filters may name any Contact field (validation checks it against the describe), not only
/// the mapped ones: the filter must see the field's value.
#[tokio::test]
async fn contact_filters_on_a_field_outside_the_mapping_select_salesforce_contacts() {
    let contacts = json!({ "direction": "both", "conflict": "salesforce_wins",
        "scope": "users_records",
        "filters": [ { "field": "LeadSource", "op": "equals", "value": "Web" } ] });
    let mut env = Env::new(config(contacts, Value::Null), 1, 0).await;
    env.sf_insert(
        "Contact",
        json!({"FirstName": "From", "LastName": "Web", "Email": "web@y.com",
               "LeadSource": "Web", "OwnerId": env.reps[0]}),
    );
    env.sf_insert(
        "Contact",
        json!({"FirstName": "From", "LastName": "Phone", "Email": "phone@y.com",
               "LeadSource": "Phone Inquiry", "OwnerId": env.reps[0]}),
    );
    let r = env.sync().await;
    assert_eq!(
        emails_in(&env.ex_contacts(0)),
        set(&["web@y.com"]),
        "{:#?}",
        r.plan
    );
    assert!(env.plan().await.is_empty());
    // The filter field is read, never written: an Exchange edit leaves it alone.
    let copy = env.ex_contacts(0)[0].item_id.clone().unwrap().id;
    env.ews
        .edit_item(&mail(0), &copy, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Buyer".into());
            }
        })
        .unwrap();
    env.sync().await;
    let sf = env.sf_records("Contact");
    let web = sf
        .iter()
        .find(|c| s(c.get("Email")) == "web@y.com")
        .unwrap();
    assert_eq!(s(web.get("Title")), "Buyer");
    assert_eq!(s(web.get("LeadSource")), "Web");
    assert!(env.plan().await.is_empty());
}

/// user_selected chooses which Exchange events go to Salesforce; an event that came from
/// Salesforce is related to it already, and a rep's edit in Outlook must not leave the two
/// copies disagreeing for good (convergence).
#[tokio::test]
async fn user_selected_still_syncs_outlook_edits_of_events_that_came_from_salesforce() {
    let mut env = Env::new(
        events_only(events(json!({ "which": "user_selected" }))),
        1,
        0,
    )
    .await;
    let sf_id = env.sf_event(0, "Set up in Salesforce", env.now() + Duration::days(1), 60);
    env.sync().await;
    let copy = env.ex_events(0)[0].item_id.clone().unwrap().id;
    env.ews
        .edit_item(&mail(0), &copy, |i| {
            if let Item::Event(e) = i {
                e.location = Some("Moved in Outlook".into());
            }
        })
        .unwrap();
    let r = env.sync().await;
    assert_eq!(
        s(env.sf.handle().get(&sf_id).unwrap().get("Location")),
        "Moved in Outlook",
        "{:#?}",
        r.plan
    );
    assert!(env.plan().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// More of the admin guide's rules through both emulators.

#[tokio::test]
async fn a_user_listed_individually_in_two_active_configurations_syncs_under_neither() {
    let mut cfg = contacts_only();
    cfg.sync_configurations[0].members.users = vec![mail(0)];
    let mut other = cfg.sync_configurations[0].clone();
    other.name = "Other".into();
    other.members.profiles = Vec::new();
    cfg.sync_configurations.push(other);
    let mut env = Env::new(cfg, 2, 0).await;
    env.sf_contact(0, "Not", "Synced", "no@y.com");
    env.sf_contact(1, "Is", "Synced", "yes@y.com");
    let r = env.sync().await;
    assert!(env.ex_contacts(0).is_empty());
    assert!(env.sync_folder(0).is_none(), "the mailbox is not touched");
    assert_eq!(emails_in(&env.ex_contacts(1)), set(&["yes@y.com"]));
    let problems: Vec<(&str, &str)> = r
        .read
        .problems
        .iter()
        .map(|p| (p.user.as_str(), p.code))
        .collect();
    assert_eq!(
        problems,
        vec![(mail(0).as_str(), "MULTIPLE_CONFIGURATIONS")]
    );
}

#[tokio::test]
async fn events_sync_from_the_default_calendar_only() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let calendar = env.ews.folder_id(&mail(0), "calendar").unwrap();
    let holidays = env
        .ews
        .create_folder(&mail(0), &calendar, "Team holidays", "IPF.Appointment")
        .unwrap();
    let start = env.now() + Duration::days(1);
    let mut e = CalendarEvent::new(start, start + Duration::minutes(30));
    e.subject = Some("In a secondary calendar".into());
    env.ews.put_event_in(&mail(0), &holidays, e).unwrap();
    env.ex_put_event(0, "In the default calendar", start, 30, false);
    env.sync().await;
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&["In the default calendar"])
    );
    assert_eq!(env.ews.items(&mail(0), &holidays).len(), 1);
}

#[tokio::test]
async fn last_month_includes_events_that_ended_on_or_after_the_first_of_last_month_in_the_reps_time_zone()
 {
    let cfg = events_only(events(json!({ "since": "LAST_MONTH" })));
    let mut env = Env::new(cfg, 1, 0).await;
    // Now is 15 June; the rep is in Berlin (UTC+2 in May): the window opens at 1 May 00:00
    // Berlin, 30 April 22:00 UTC.
    let opens: DateTime<Utc> = "2026-04-30T22:00:00Z".parse().unwrap();
    env.ex_put_event(
        0,
        "Ended 1 May 00:30 Berlin",
        opens - Duration::minutes(30),
        60,
        false,
    );
    env.ex_put_event(
        0,
        "Ended 30 April 23:30 Berlin",
        opens - Duration::minutes(90),
        60,
        false,
    );
    env.sf_event(0, "Salesforce, 2 May", opens + Duration::days(1), 60);
    env.sf_event(0, "Salesforce, 29 April", opens - Duration::days(1), 60);
    env.sync().await;
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&[
            "Ended 1 May 00:30 Berlin",
            "Salesforce, 2 May",
            "Salesforce, 29 April"
        ])
    );
    assert_eq!(
        ex_subjects(&env.ex_events(0)),
        set(&[
            "Ended 1 May 00:30 Berlin",
            "Ended 30 April 23:30 Berlin",
            "Salesforce, 2 May"
        ])
    );
}

#[tokio::test]
async fn a_private_salesforce_event_stays_out_unless_sync_private_and_then_stays_private_in_exchange()
 {
    let private = |env: &Env| {
        let id = env.sf_event(
            0,
            "Private in Salesforce",
            env.now() + Duration::days(1),
            30,
        );
        env.sf
            .handle()
            .update("Event", &id, json!({"IsPrivate": true}))
            .unwrap();
    };
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    private(&env);
    env.sync().await;
    assert!(env.ex_events(0).is_empty());

    let cfg = events_only(events(json!({ "sync_private": true })));
    let mut env = Env::new(cfg, 1, 0).await;
    private(&env);
    env.sync().await;
    let ev = env.ex_events(0);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].sensitivity, Some(Sensitivity::Private));
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn an_edit_beats_a_delete() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let ex_id = env.ex_put_event(0, "Plan", env.now() + Duration::days(1), 60, false);
    env.sync().await;
    let sf_id = env.sf_event_id("Plan");
    assert!(env.ews.delete_item(&mail(0), &ex_id));
    env.sf
        .handle()
        .update("Event", &sf_id, json!({"Location": "Moved"}))
        .unwrap();
    env.sync().await;
    assert_eq!(env.sf_records("Event").len(), 1, "the edit survives");
    let ev = env.ex_events(0);
    assert_eq!(ev.len(), 1, "and comes back to Exchange");
    assert_eq!(ev[0].location.as_deref(), Some("Moved"));
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn one_way_exchange_to_salesforce_warns_about_every_salesforce_field_it_overwrites() {
    let cfg = config(
        json!({ "direction": "exchange_to_salesforce", "scope": "users_records" }),
        Value::Null,
    );
    let mut env = Env::new(cfg, 1, 0).await;
    let ex = env.ex_put_contact(0, true, "Ann", "Bell", "ann@x.com");
    env.sync().await;
    let sf_id = s(env.sf_records("Contact")[0].get("Id")).to_string();
    env.sf
        .handle()
        .update(
            "Contact",
            &sf_id,
            json!({"Department": "Edited in Salesforce", "Phone": "+1 555 0199"}),
        )
        .unwrap();
    env.ews
        .edit_item(&mail(0), &ex, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Edited in Outlook".into());
            }
        })
        .unwrap();
    let r = env.sync().await;
    assert_eq!(r.plan.overwrites.len(), 1, "{:#?}", r.plan);
    assert_eq!(
        r.plan.overwrites[0].fields,
        vec![
            "Department".to_string(),
            "Phone".to_string(),
            "Title".to_string()
        ]
    );
    let sf = env.sf.handle().get(&sf_id).unwrap();
    assert_eq!(s(sf.get("Title")), "Edited in Outlook");
    assert_eq!(
        sf.get("Department").cloned().unwrap_or(Value::Null),
        Value::Null
    );
}

#[tokio::test]
async fn auto_relate_never_relates_a_converted_lead() {
    let mut env = Env::new(events_only(events(json!({ "auto_relate": true }))), 1, 0).await;
    let lead = env.sf_insert(
        "Lead",
        json!({"LastName": "Done", "Company": "Converted Ltd", "Email": "won@x.com"}),
    );
    assert!(env.sf.handle().set_raw(&lead, json!({"IsConverted": true})));
    put_meeting(
        &env,
        "Follow-up",
        env.now() + Duration::days(1),
        &["won@x.com"],
    );
    env.sync().await;
    let id = env.sf_event_id("Follow-up");
    assert!(env.relations(&id).is_empty());
    let unresolved: Vec<String> = env
        .state
        .unresolved(&env.reps[0])
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(unresolved, vec!["won@x.com".to_string()]);
}

#[tokio::test]
async fn statuses_follow_the_admin_guide() {
    use tether::state::{SyncDirection, SyncStatus};
    let cfg = config(
        json!({ "direction": "salesforce_to_exchange", "scope": "users_records" }),
        both_events(),
    );
    let mut env = Env::new(cfg, 1, 0).await;
    env.sf_contact(0, "Sue", "Lee", "sue@y.com");
    env.ex_put_event(0, "Meeting", env.now() + Duration::days(1), 30, false);
    let rep = env.reps[0].clone();
    let status = |env: &Env, object, d| {
        env.state
            .status(&rep, object, d)
            .unwrap()
            .map(|s| (s.status, s.records_in_sync))
    };
    assert_eq!(
        status(
            &env,
            ObjectKind::Contact,
            SyncDirection::SalesforceToExchange
        ),
        None,
        "Not started"
    );
    env.sync().await;
    assert_eq!(
        status(
            &env,
            ObjectKind::Contact,
            SyncDirection::SalesforceToExchange
        ),
        Some((SyncStatus::InitialSyncCompleted, 1))
    );
    assert_eq!(
        status(
            &env,
            ObjectKind::Contact,
            SyncDirection::ExchangeToSalesforce
        ),
        Some((SyncStatus::NotSetToSync, 1))
    );
    assert_eq!(
        status(&env, ObjectKind::Event, SyncDirection::ExchangeToSalesforce),
        Some((SyncStatus::InitialSyncCompleted, 1))
    );
    env.sync().await;
    assert_eq!(
        status(
            &env,
            ObjectKind::Contact,
            SyncDirection::SalesforceToExchange
        ),
        Some((SyncStatus::InSync, 1))
    );
    assert_eq!(
        status(&env, ObjectKind::Event, SyncDirection::SalesforceToExchange),
        Some((SyncStatus::InSync, 1))
    );
}

/// Salesforce refuses events longer than 14 days (FIELD_INTEGRITY_EXCEPTION); Lightning Sync
/// leaves them out. One such event must not fail, and re-read the rep in full, every cycle.
#[tokio::test]
async fn an_exchange_event_longer_than_14_days_stays_out_of_salesforce_with_the_reason() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let start = env.now() + Duration::days(1);
    env.ex_put_event(0, "Sabbatical", start, 15 * 24 * 60, false);
    env.ex_put_event(0, "Two weeks", start, 14 * 24 * 60, false);
    let r = env.try_sync(&mut StepBudget::unlimited()).await.unwrap();
    assert!(r.exec.failed.is_empty(), "{:#?}", r.exec.failed);
    assert_eq!(subjects(&env.sf_records("Event")), set(&["Two weeks"]));
    assert!(
        r.plan.skipped.iter().any(|s| s.reason.contains("14 days")),
        "{:#?}",
        r.plan.skipped
    );
    assert!(env.plan().await.is_empty());
}

/// A series has ended when its last occurrence has, not its first: a weekly meeting that
/// began two months ago and still runs is inside a TODAY window.
#[tokio::test]
async fn a_series_that_began_before_the_since_window_and_still_runs_syncs() {
    let cfg = events_only(events(
        json!({ "sync_series": true, "since": "TODAY", "direction": "exchange_to_salesforce" }),
    ));
    let mut env = Env::new(cfg, 1, 0).await;
    let began = env.now() - Duration::days(60);
    env.ews
        .put_event(&mail(0), weekly(began, "Weekly pipeline"))
        .unwrap();
    let mut ended = weekly(began, "Finished series");
    ended.recurrence = emu_rrule(
        "FREQ=WEEKLY;INTERVAL=1;BYDAY=TU;COUNT=3",
        began.date_naive(),
    );
    env.ews.put_event(&mail(0), ended).unwrap();
    let r = env.sync().await;
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&["Weekly pipeline"]),
        "{:#?}",
        r.plan
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn today_starts_at_midnight_in_the_reps_own_time_zone() {
    let cfg = events_only(events(
        json!({ "since": "TODAY", "direction": "exchange_to_salesforce" }),
    ));
    let mut env = Env::new(cfg, 1, 0).await;
    // The rep works in Los Angeles: at 10:00 UTC on 15 June it is 03:00 there, and today
    // began at 07:00 UTC (Berlin's today began at 22:00 UTC the day before).
    assert!(env.sf.handle().set_raw(
        &env.reps[0],
        json!({"TimeZoneSidKey": "America/Los_Angeles"})
    ));
    let midnight: DateTime<Utc> = "2026-06-15T07:00:00Z".parse().unwrap();
    env.ex_put_event(
        0,
        "Ended 00:30 today",
        midnight - Duration::minutes(30),
        60,
        false,
    );
    env.ex_put_event(
        0,
        "Ended 23:30 yesterday",
        midnight - Duration::minutes(90),
        60,
        false,
    );
    env.sync().await;
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&["Ended 00:30 today"])
    );
}

#[tokio::test]
async fn user_selected_syncs_an_event_once_the_rep_relates_it_in_outlook() {
    let mut env = Env::new(
        events_only(events(json!({ "which": "user_selected" }))),
        1,
        0,
    )
    .await;
    let id = env.ex_put_event(
        0,
        "Lunch with buyer",
        env.now() + Duration::days(1),
        60,
        false,
    );
    env.sync().await;
    assert!(env.sf_records("Event").is_empty());
    env.ews
        .edit_item(&mail(0), &id, |i| {
            if let Item::Event(e) = i {
                e.categories.push("Salesforce".into());
            }
        })
        .unwrap();
    env.sync().await;
    assert_eq!(
        subjects(&env.sf_records("Event")),
        set(&["Lunch with buyer"])
    );
    let ev = env.ex_events(0);
    assert_eq!(ev.len(), 1, "linked, not copied back");
    assert_eq!(ev[0].categories, vec!["Salesforce".to_string()]);
    assert!(env.plan().await.is_empty());
}

/// Salesforce sets a series' pattern only when the series is created (Recurrence2PatternText
/// is create-only): a rep who changes the pattern in Outlook keeps it — it is never reverted
/// from Salesforce's copy, not even when Salesforce edits the series later — and the plan
/// stays quiet (idempotence).
#[tokio::test]
async fn sync_series_never_reverts_a_pattern_changed_in_outlook_and_stays_quiet() {
    let mut env = Env::new(events_only(events(json!({ "sync_series": true }))), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let id = env
        .ews
        .put_event(&mail(0), weekly(start, "Weekly pipeline"))
        .unwrap()
        .id;
    env.sync().await;
    let sf_id = env.sf_event_id("Weekly pipeline");
    let every_two_weeks = emu_rrule("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", start.date_naive());
    env.ews
        .edit_item(&mail(0), &id, |i| {
            if let Item::Event(e) = i {
                e.recurrence = every_two_weeks.clone();
            }
        })
        .unwrap();
    env.sync().await;
    let p = env.plan().await;
    assert!(p.is_empty(), "{p:#?}");
    // Salesforce edits the series afterwards: the edit arrives, the pattern stays.
    env.sf
        .handle()
        .update("Event", &sf_id, json!({"Location": "Room 7"}))
        .unwrap();
    env.sync().await;
    let p = env.plan().await;
    assert!(p.is_empty(), "{p:#?}");
    let ev = env.ex_events(0);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].location.as_deref(), Some("Room 7"));
    assert_eq!(ev[0].recurrence, every_two_weeks, "the rep's pattern stays");
    let series: Vec<Map<String, Value>> = env
        .sf_records("Event")
        .into_iter()
        .filter(|e| s(e.get("Subject")) == "Weekly pipeline")
        .collect();
    assert_eq!(series.len(), 1);
}

/// Filters choose which Salesforce contacts go to Exchange; a contact the rep keeps in
/// Salesforce_Sync is in Exchange already, and a Salesforce edit of it must reach Outlook
/// (convergence), whatever the filter says.
#[tokio::test]
async fn contact_filters_do_not_stop_salesforce_edits_of_a_contact_born_in_exchange() {
    let contacts = json!({ "direction": "both", "conflict": "salesforce_wins",
        "scope": "users_records",
        "filters": [ { "field": "MailingCountry", "op": "in", "values": ["DE"] } ] });
    let mut env = Env::new(config(contacts, Value::Null), 1, 0).await;
    env.ex_put_contact(0, true, "Ex", "Us", "exus@x.com");
    env.sync().await;
    let sf_id = s(env.sf_records("Contact")[0].get("Id")).to_string();
    env.sf
        .handle()
        .update("Contact", &sf_id, json!({"Title": "Edited in Salesforce"}))
        .unwrap();
    let r = env.sync().await;
    assert_eq!(
        env.ex_contacts(0)[0].job_title.as_deref(),
        Some("Edited in Salesforce"),
        "{:#?}",
        r.plan
    );
    assert!(env.plan().await.is_empty());
}

/// What marks an event related in Outlook is the rep's: a Salesforce edit written to the
/// meeting keeps its categories.
#[tokio::test]
async fn user_selected_a_salesforce_edit_keeps_the_outlook_relation() {
    let mut env = Env::new(
        events_only(events(json!({ "which": "user_selected" }))),
        1,
        0,
    )
    .await;
    let start = env.now() + Duration::days(1);
    let mut e = CalendarEvent::new(start, start + Duration::minutes(60));
    e.subject = Some("Related".into());
    e.categories = vec!["Salesforce".into(), "Customer".into()];
    let id = env.ews.put_event(&mail(0), e).unwrap().id;
    env.sync().await;
    let sf_id = env.sf_event_id("Related");
    env.sf
        .handle()
        .update("Event", &sf_id, json!({"Location": "Their office"}))
        .unwrap();
    env.sync().await;
    let Some(Item::Event(ev)) = env.ews.item(&mail(0), &id) else {
        panic!("gone")
    };
    assert_eq!(ev.location.as_deref(), Some("Their office"));
    assert_eq!(
        ev.categories,
        vec!["Salesforce".to_string(), "Customer".to_string()]
    );
    assert!(env.plan().await.is_empty());
}

/// A contact kept on both sides before tether links them: Salesforce holds the address and
/// phone, Exchange only the name, email and another title.
async fn first_link_with_salesforce_fields(contacts: Value) -> Env {
    let mut env = Env::new(config(contacts, Value::Null), 1, 0).await;
    let ex_id = env.ex_put_contact(0, true, "Ida", "Berg", "ida@x.com");
    env.ews
        .edit_item(&mail(0), &ex_id, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Head of Sales".into());
            }
        })
        .unwrap();
    env.sf_insert(
        "Contact",
        json!({"FirstName": "Ida", "LastName": "Berg", "Email": "ida@x.com",
               "Title": "Sales", "MailingCity": "Bergen", "MailingCountry": "Norway",
               "MailingPostalCode": "5003", "Phone": "+47 55 00 00 00",
               "OwnerId": env.reps[0]}),
    );
    env.sync().await;
    env
}

fn assert_salesforce_fields_kept(env: &Env) {
    let sf = env.sf_records("Contact");
    assert_eq!(sf.len(), 1);
    let kept: Vec<&str> = [
        "MailingCity",
        "MailingCountry",
        "MailingPostalCode",
        "Phone",
    ]
    .iter()
    .map(|f| s(sf[0].get(*f)))
    .collect();
    assert_eq!(kept, ["Bergen", "Norway", "5003", "+47 55 00 00 00"]);
    assert_eq!(
        s(sf[0].get("Title")),
        "Head of Sales",
        "Exchange's value wins"
    );
}

#[tokio::test]
async fn first_link_does_not_blank_salesforce_fields() {
    // Both ways, Exchange wins: the winner's empty fields are filled from Salesforce, and
    // Exchange gets them too.
    let mut env = first_link_with_salesforce_fields(
        json!({ "direction": "both", "conflict": "exchange_wins", "scope": "users_records" }),
    )
    .await;
    assert_salesforce_fields_kept(&env);
    let ex = env.ex_contacts(0);
    let business = ex[0].addresses.get("Business").cloned().unwrap_or_default();
    assert_eq!(
        (business.city.as_deref(), business.postal_code.as_deref()),
        (Some("Bergen"), Some("5003"))
    );
    assert_eq!(ex[0].job_title.as_deref(), Some("Head of Sales"));
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);
    env.sync().await;
    assert_salesforce_fields_kept(&env);

    // One way, Exchange → Salesforce: nothing is written to Exchange, and the next plan
    // has nothing to do.
    let mut env = first_link_with_salesforce_fields(
        json!({ "direction": "exchange_to_salesforce", "scope": "users_records" }),
    )
    .await;
    assert_salesforce_fields_kept(&env);
    assert!(
        env.ex_contacts(0)[0].addresses.is_empty(),
        "Exchange not written"
    );
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);
    env.sync().await;
    assert_salesforce_fields_kept(&env);
}

/// The same the other way: Exchange holds the address and phone, Salesforce only the name,
/// email and another title.
async fn first_link_with_exchange_fields(contacts: Value) -> Env {
    let mut env = Env::new(config(contacts, Value::Null), 1, 0).await;
    let ex_id = env.ex_put_contact(0, true, "Ida", "Berg", "ida@x.com");
    env.ews
        .edit_item(&mail(0), &ex_id, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("Sales".into());
                let a = c.addresses.entry("Business".into()).or_default();
                a.city = Some("Bergen".into());
                a.country = Some("Norway".into());
                a.postal_code = Some("5003".into());
                c.phones
                    .insert("BusinessPhone".into(), "+47 55 00 00 00".into());
            }
        })
        .unwrap();
    env.sf_insert(
        "Contact",
        json!({"FirstName": "Ida", "LastName": "Berg", "Email": "ida@x.com",
               "Title": "Head of Sales", "OwnerId": env.reps[0]}),
    );
    env.sync().await;
    env
}

fn assert_exchange_fields_kept(env: &Env) {
    let ex = env.ex_contacts(0);
    assert_eq!(ex.len(), 1);
    let a = ex[0].addresses.get("Business").cloned().unwrap_or_default();
    assert_eq!(
        (
            a.city.as_deref(),
            a.country.as_deref(),
            a.postal_code.as_deref(),
            ex[0].phones.get("BusinessPhone").map(String::as_str)
        ),
        (
            Some("Bergen"),
            Some("Norway"),
            Some("5003"),
            Some("+47 55 00 00 00")
        )
    );
    assert_eq!(
        ex[0].job_title.as_deref(),
        Some("Head of Sales"),
        "Salesforce's value wins"
    );
}

#[tokio::test]
async fn first_link_does_not_blank_exchange_fields() {
    let mut env = first_link_with_exchange_fields(
        json!({ "direction": "both", "conflict": "salesforce_wins", "scope": "users_records" }),
    )
    .await;
    assert_exchange_fields_kept(&env);
    let sf = env.sf_records("Contact");
    assert_eq!(
        s(sf[0].get("MailingCity")),
        "Bergen",
        "Salesforce filled too"
    );
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);
    env.sync().await;
    assert_exchange_fields_kept(&env);

    let mut env = first_link_with_exchange_fields(
        json!({ "direction": "salesforce_to_exchange", "scope": "users_records" }),
    )
    .await;
    assert_exchange_fields_kept(&env);
    assert_eq!(
        s(env.sf_records("Contact")[0].get("MailingCity")),
        "",
        "Salesforce not written"
    );
    assert!(env.plan().await.is_empty(), "{:#?}", env.plan().await);
    env.sync().await;
    assert_exchange_fields_kept(&env);
}

// ---------------------------------------------------------------------------------------
// A user's edit between a cycle's read and its writes (issue 12, item 13), through both
// emulators: the delete or overwrite planned from the read is not sent, the next cycle reads
// the edit and decides again.

fn held_back(r: &CycleReport) -> Vec<&'static str> {
    r.held_back.iter().map(|o| o.action.name()).collect()
}

#[tokio::test]
async fn salesforce_edit_after_the_read_is_not_deleted_end_to_end() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let ex_id = env.ex_put_event(0, "Plan", start, 30, false);
    env.sync().await;
    let sf_id = s(env.sf_records("Event")[0].get("Id")).to_string();
    // The next cycle reads back the SystemModstamp of tether's create (sObject Collections
    // answer none); a later record moves the watermark past it, so the race cycle does not
    // read the event again and checks it against the version remembered.
    env.sf_event(0, "Later", start + Duration::hours(3), 30);
    env.sync().await;
    env.sync().await;
    assert!(env.ews.delete_item(&mail(0), &ex_id));
    let before = env.sf.handle().served();
    let r = env
        .sync_with_edit_after_read(Side::Salesforce, |_, sf| {
            sf.handle()
                .update("Event", &sf_id, json!({"Location": "Moved"}))
                .unwrap();
        })
        .await;
    assert_eq!(held_back(&r), ["delete_in_salesforce"]);
    assert_eq!(
        env.sf_records("Event").len(),
        2,
        "the edited event was deleted"
    );
    let calls = diff(&env.sf.handle().served(), &before);
    let expected = std::collections::BTreeMap::from([("query".to_string(), 3)]);
    assert_eq!(
        calls, expected,
        "users, the change read, the version check; no delete"
    );
    env.sync().await;
    let ex = env.ex_events(0);
    let plan = ex.iter().find(|e| e.subject.as_deref() == Some("Plan"));
    assert_eq!(
        plan.and_then(|e| e.location.as_deref()),
        Some("Moved"),
        "the edit beats the delete: re-created in Exchange"
    );
    assert_eq!(ex.len(), 2);
    assert_eq!(env.sf_records("Event").len(), 2);
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn exchange_edit_after_the_read_is_not_deleted_end_to_end() {
    let mut env = Env::new(events_only(both_events()), 1, 0).await;
    let start = env.now() + Duration::days(1);
    let sf_id = env.sf_event(0, "Plan", start, 30);
    env.sync().await;
    let ex_id = env.ex_events(0)[0].item_id.clone().unwrap().id;
    env.sf.handle().delete(&sf_id).unwrap();
    let r = env
        .sync_with_edit_after_read(Side::Exchange, |ews, _| {
            ews.edit_item(&mail(0), &ex_id, |i| {
                if let Item::Event(e) = i {
                    e.location = Some("Moved in Outlook".into());
                }
            })
            .unwrap();
        })
        .await;
    assert_eq!(held_back(&r), ["delete_in_exchange"]);
    assert_eq!(env.ex_events(0).len(), 1, "the edited item was deleted");
    assert_eq!(env.ews.calls("DeleteItem"), 0);
    env.sync().await;
    let sf = env.sf_records("Event");
    assert_eq!(
        sf.len(),
        1,
        "the edit beats the delete: re-created in Salesforce"
    );
    assert_eq!(s(sf[0].get("Location")), "Moved in Outlook");
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn salesforce_edit_after_the_read_is_not_overwritten_end_to_end() {
    // Salesforce wins conflicts: once the edit is read, both sides keep it.
    let mut env = Env::new(contacts_only(), 1, 0).await;
    let ex_id = env.ex_put_contact(0, true, "Cy", "Mora", "cy@x.com");
    env.sync().await;
    env.sync().await;
    let sf_id = s(env.sf_records("Contact")[0].get("Id")).to_string();
    env.ews
        .edit_item(&mail(0), &ex_id, |i| {
            if let Item::Contact(c) = i {
                c.job_title = Some("From Outlook".into());
            }
        })
        .unwrap();
    let r = env
        .sync_with_edit_after_read(Side::Salesforce, |_, sf| {
            sf.handle()
                .update("Contact", &sf_id, json!({"Title": "From Salesforce"}))
                .unwrap();
        })
        .await;
    assert_eq!(held_back(&r), ["update_salesforce"]);
    let title = |env: &Env| s(env.sf.handle().get(&sf_id).unwrap().get("Title")).to_string();
    assert_eq!(title(&env), "From Salesforce", "overwritten");
    let r = env.sync().await;
    assert_eq!(
        r.plan.conflicts.len(),
        1,
        "now a conflict, decided by the policy"
    );
    assert_eq!(title(&env), "From Salesforce");
    assert_eq!(
        env.ex_contacts(0)[0].job_title.as_deref(),
        Some("From Salesforce")
    );
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn exchange_edit_after_the_read_is_not_overwritten_end_to_end() {
    let cfg = config(
        json!({ "direction": "both", "conflict": "exchange_wins", "scope": "users_records" }),
        Value::Null,
    );
    let mut env = Env::new(cfg, 1, 0).await;
    let sf_id = env.sf_contact(0, "Cy", "Mora", "cy@x.com");
    env.sync().await;
    env.sync().await;
    let ex_id = env.ex_contacts(0)[0].item_id.clone().unwrap().id;
    env.sf
        .handle()
        .update("Contact", &sf_id, json!({"Title": "From Salesforce"}))
        .unwrap();
    let gets = env.ews.calls("GetItem");
    let r = env
        .sync_with_edit_after_read(Side::Exchange, |ews, _| {
            ews.edit_item(&mail(0), &ex_id, |i| {
                if let Item::Contact(c) = i {
                    c.job_title = Some("From Outlook".into());
                }
            })
            .unwrap();
        })
        .await;
    assert_eq!(held_back(&r), ["update_exchange"]);
    assert_eq!(env.ews.calls("UpdateItem"), 0);
    assert_eq!(
        env.ews.calls("GetItem") - gets,
        1,
        "one IdOnly GetItem, no update"
    );
    assert_eq!(
        env.ex_contacts(0)[0].job_title.as_deref(),
        Some("From Outlook")
    );
    let r = env.sync().await;
    assert_eq!(r.plan.conflicts.len(), 1);
    assert_eq!(
        env.ex_contacts(0)[0].job_title.as_deref(),
        Some("From Outlook")
    );
    let sf = env.sf.handle().get(&sf_id).unwrap();
    assert_eq!(s(sf.get("Title")), "From Outlook");
    assert!(env.plan().await.is_empty());
}

// --- Bulk API 2.0 ----------------------------------------------------------------------

/// `n` contacts and `n` events in rep 0's mailbox, none in Salesforce yet; the contacts' ids.
fn bulk_load(env: &Env, n: usize) -> Vec<String> {
    let start = env.now() + Duration::days(1);
    (0..n)
        .map(|i| {
            let at = start + Duration::hours(i as i64);
            env.ex_put_event(0, &format!("Meeting {i}"), at, 30, false);
            env.ex_put_contact(
                0,
                true,
                "Bea",
                &format!("Bulk{i}"),
                &format!("bea{i}@x.com"),
            )
        })
        .collect()
}

fn jobs(env: &Env) -> Vec<String> {
    env.sf
        .handle()
        .bulk_jobs()
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

#[tokio::test]
async fn an_initial_load_above_the_bulk_threshold_goes_through_one_ingest_job_per_object_and_operation()
 {
    let mut env = Env::bulk(config(both_contacts(), both_events()), 1, 50).await;
    let contacts = bulk_load(&env, 60);
    let before = env.sf.handle().served();
    let r = env.sync().await;
    let used = diff(&env.sf.handle().served(), &before);
    assert_eq!(r.exec.succeeded, 120);
    assert_eq!(jobs(&env), vec!["JobComplete"; 2], "contacts and events");
    assert_eq!(env.sf_records("Contact").len(), 60);
    assert_eq!(env.sf_records("Event").len(), 60);
    // Each created record carries its journal marker, as through collections.
    assert!(
        env.sf_records("Contact")
            .iter()
            .all(|c| s(c.get(SYNC_KEY_FIELD)).starts_with("tether-"))
    );
    // Per job: create, close and two polls; one upload; successful and failed results; and
    // the limits check before it. No collection call for the records themselves.
    assert_eq!(used.get("bulk_job"), Some(&8), "{used:?}");
    assert_eq!(used.get("bulk_upload"), Some(&2), "{used:?}");
    assert_eq!(used.get("bulk_results"), Some(&4), "{used:?}");
    assert_eq!(used.get("limits"), Some(&2), "{used:?}");
    assert_eq!(used.get("collection"), None, "{used:?}");
    assert!(env.plan().await.is_empty());

    // An update phase above the threshold is one update job.
    for id in &contacts {
        env.ews
            .edit_item(&mail(0), id, |item| {
                if let Item::Contact(c) = item {
                    c.job_title = Some("Buyer".into());
                }
            })
            .unwrap();
    }
    let r = env.sync().await;
    assert_eq!(r.exec.succeeded, 60);
    assert_eq!(jobs(&env).len(), 3);
    assert!(
        env.sf_records("Contact")
            .iter()
            .all(|c| s(c.get("Title")) == "Buyer")
    );
    assert_eq!(env.sf_records("Contact").len(), 60);
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_lost_bulk_job_answer_creates_no_duplicate_on_the_next_cycle() {
    let mut env = Env::bulk(contacts_only(), 1, 50).await;
    for i in 0..60 {
        env.ex_put_contact(
            0,
            true,
            "Lou",
            &format!("Lost{i}"),
            &format!("lou{i}@x.com"),
        );
    }
    // The job runs, but every fetch of its results fails (each read's retries included).
    for _ in 0..20 {
        env.sf
            .handle()
            .fault_next("bulk_results", sf_emu::KindFault::Status(503));
    }
    let r = env.try_sync(&mut StepBudget::unlimited()).await.unwrap();
    assert_eq!(env.sf_records("Contact").len(), 60, "the job did run");
    assert_eq!(r.exec.failed.len(), 60, "{:#?}", r.exec.failed);
    assert!(r.exec.failed.iter().all(|e| e.code == "AMBIGUOUS"));
    // The next cycle finds them by their journal markers instead of sending them again.
    let r = env.sync().await;
    assert_eq!(r.exec.succeeded, 60);
    assert_eq!(jobs(&env).len(), 1, "no second job");
    assert_eq!(env.sf_records("Contact").len(), 60, "no duplicate");
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_failed_bulk_row_is_a_per_record_error_and_the_others_are_created() {
    let mut env = Env::bulk(contacts_only(), 1, 50).await;
    for i in 0..60 {
        env.ex_put_contact(0, true, "Val", &format!("Row{i}"), &format!("val{i}@x.com"));
    }
    env.sf
        .handle()
        .validation_rule("Contact", "LastName", json!("Row7"), "Row7 is not allowed");
    let r = env.try_sync(&mut StepBudget::unlimited()).await.unwrap();
    assert_eq!(r.exec.succeeded, 59);
    assert_eq!(r.exec.failed.len(), 1, "{:#?}", r.exec.failed);
    let e = &r.exec.failed[0];
    assert_eq!(e.code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert!(e.message.contains("Row7 is not allowed"), "{}", e.message);
    assert_eq!(env.sf_records("Contact").len(), 59);
    assert_eq!(jobs(&env), vec!["JobComplete"]);
}

#[tokio::test]
async fn a_bulk_job_that_fails_part_way_leaves_the_rest_to_the_next_cycle() {
    let mut env = Env::bulk(contacts_only(), 1, 50).await;
    for i in 0..60 {
        env.ex_put_contact(
            0,
            true,
            "Par",
            &format!("Part{i}"),
            &format!("par{i}@x.com"),
        );
    }
    env.sf.handle().bulk_fail_after(20);
    let r = env.try_sync(&mut StepBudget::unlimited()).await.unwrap();
    assert_eq!(jobs(&env), vec!["Failed"]);
    assert_eq!(r.exec.succeeded, 20);
    assert_eq!(r.exec.failed.len(), 40);
    assert!(
        r.exec.failed.iter().all(|e| e.code == "NOT_ATTEMPTED"),
        "{:#?}",
        r.exec.failed[0]
    );
    assert_eq!(env.sf_records("Contact").len(), 20);
    // 40 left: below the threshold, through collections.
    let r = env.sync().await;
    assert_eq!(r.exec.succeeded, 40);
    assert_eq!(env.sf_records("Contact").len(), 60, "each exactly once");
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn a_bulk_job_still_running_after_the_wait_is_aborted_and_sent_again_next_cycle() {
    let mut env = Env::bulk(contacts_only(), 1, 50).await;
    for i in 0..60 {
        env.ex_put_contact(
            0,
            true,
            "Sly",
            &format!("Slow{i}"),
            &format!("sly{i}@x.com"),
        );
    }
    env.sf.handle().bulk_polls_in_progress(100_000);
    let r = env.try_sync(&mut StepBudget::unlimited()).await.unwrap();
    assert_eq!(jobs(&env), vec!["Aborted"]);
    assert_eq!(r.exec.failed.len(), 60);
    assert_eq!(env.sf_records("Contact").len(), 0);
    // Polled with back-off up to the bound: 10 minutes, the waits capped at 20 s.
    let polls = env.sf.handle().served()["bulk_job"] - 3;
    assert!((30..=40).contains(&polls), "{polls} polls");
    env.sf.handle().bulk_polls_in_progress(1);
    let r = env.sync().await;
    assert_eq!(r.exec.succeeded, 60);
    assert_eq!(env.sf_records("Contact").len(), 60);
    assert!(env.plan().await.is_empty());
}

#[tokio::test]
async fn above_the_daily_bulk_batch_limit_writes_go_through_collections() {
    let mut env = Env::bulk(contacts_only(), 1, 50).await;
    for i in 0..60 {
        env.ex_put_contact(
            0,
            true,
            "Lim",
            &format!("Limit{i}"),
            &format!("lim{i}@x.com"),
        );
    }
    env.sf.handle().set_bulk_batches_used(15_000);
    let before = env.sf.handle().served();
    let r = env.sync().await;
    let used = diff(&env.sf.handle().served(), &before);
    assert_eq!(r.exec.succeeded, 60);
    assert!(jobs(&env).is_empty());
    assert_eq!(used.get("limits"), Some(&1));
    assert_eq!(used.get("collection"), Some(&1), "{used:?}");
    assert_eq!(env.sf_records("Contact").len(), 60);
}

/// A create refused because a record already holds its journal marker (DUPLICATE_VALUE on
/// the unique `Tether_Sync_Key__c`) was made before: by an earlier run whose answer was lost,
/// e.g. a Bulk API job that ran on after the run gave up on it. It is looked up and linked on
/// the next cycle, not reported as failed and then copied into Exchange as a stranger.
#[tokio::test]
async fn a_create_refused_because_a_record_holds_its_marker_links_that_record_instead_of_duplicating()
 {
    use tether::engine::execute::create_marker;
    use tether::state::CreateTarget;
    let mut env = Env::new(contacts_only(), 1, 0).await;
    let item = env.ex_put_contact(0, true, "Rae", "Race", "rae@x.com");
    let rep = env.reps[0].clone();
    let marker = create_marker(CreateTarget::Salesforce, &rep, ObjectKind::Contact, &item);
    // The earlier run's record (older values) lands after this cycle read Salesforce.
    env.tick();
    let now = env.now();
    let (sf, config, mail, state) = (&env.sf, &env.config, &env.mail, &mut env.state);
    let crm = EditAfterRead::new(&env.crm, || {
        sf.handle()
            .insert(
                "Contact",
                json!({"FirstName": "Rae", "LastName": "Racer", "Email": "rae@old.example",
                       "OwnerId": rep, SYNC_KEY_FIELD: marker}),
            )
            .unwrap();
    });
    let r = run_cycle(
        config,
        mail,
        &crm,
        state,
        now,
        &SyncOptions::default(),
        &mut StepBudget::unlimited(),
    )
    .await
    .unwrap();
    assert!(crm.edited());
    drop(crm);
    assert_eq!(r.exec.failed.len(), 1);
    assert_eq!(r.exec.failed[0].code, "AMBIGUOUS", "{:#?}", r.exec.failed);
    env.tick();
    let r = env.sync().await;
    assert!(r.exec.failed.is_empty());
    env.sync().await;
    assert_eq!(
        env.sf_records("Contact").len(),
        1,
        "no second Salesforce contact"
    );
    assert_eq!(
        env.ex_contacts(0).len(),
        1,
        "no stranger copied into Exchange"
    );
    assert!(env.plan().await.is_empty());
}
