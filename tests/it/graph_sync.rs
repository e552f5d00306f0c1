//! Sync cycles over Microsoft Graph: the engine with the Graph connector against the
//! emulator's Graph face (the in-memory Salesforce on the other side), one test per
//! behaviour issue 14 names. Every body tether sent and every answer it got is judged by
//! ../shared/graph-openapi at the end of each test.

use crate::connectors::graph_face::validate_all;
use crate::engine_world::{both_contacts, config, contact, event, now, rep_id};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tether::clock::{Clock, ManualClock};
use tether::config::model::Config;
use tether::engine::connector::{CrmUser, Folder, MailConnector, MailCreate, Mailbox, Outcome};
use tether::engine::cycle::{CycleReport, SyncOptions, run_cycle};
use tether::engine::execute::StepBudget;
use tether::engine::memory::{EditAfterRead, MemoryCrm};
use tether::engine::plan::Action;
use tether::graph::{GraphClient, GraphConnector, GraphOptions};
use tether::model::{ObjectKind, Record};
use tether::secret::Secret;
use tether::state::{MemoryState, StateStore};
use tether_emulators::exchange::model::{Attendee, CalendarEvent, Item, MailboxAddress};
use tether_emulators::exchange::{Emulator, EmulatorOptions, ImpersonationScope, RunningEmulator};
use tether_emulators::graph::{GraphApp, GraphFault};

const APP: &str = "0b7a3c2d-0000-4000-8000-0000000014aa";
const SECRET: &str = "graph-sync-secret";
const REP: &str = "rep0@corp.com";

struct World {
    emu: RunningEmulator,
    clock: ManualClock,
    mail: GraphConnector,
    sf: MemoryCrm,
    state: MemoryState,
    config: Config,
}

fn events_since_today() -> Value {
    json!({ "direction": "both", "conflict": "exchange_wins", "since": "TODAY",
            "delete_synced": true, "auto_relate": false })
}

async fn world(contacts: Value, events: Value) -> World {
    let clock = ManualClock::new(now());
    let emu = Emulator::start(EmulatorOptions {
        clock: Some(Arc::new(clock.clone())),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    emu.add_mailbox(REP, Some("Sales"));
    emu.add_graph_app(GraphApp {
        client_id: APP.into(),
        client_secret: Some(SECRET.into()),
        certificate_pem: None,
        scope: ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    });
    let client = graph_client(&emu, &clock);
    let sf = MemoryCrm::new();
    sf.add_user(CrmUser {
        id: rep_id(0),
        email: REP.into(),
        profile: "Sales User".into(),
        active: true,
        time_zone: "Europe/Berlin".into(),
    });
    World {
        emu,
        clock,
        mail: GraphConnector::new(client),
        sf,
        state: MemoryState::new(),
        config: config(contacts, events),
    }
}

fn graph_client(emu: &RunningEmulator, clock: &ManualClock) -> GraphClient {
    let mut opts = GraphOptions::new(emu.graph_url().parse().unwrap());
    opts.page_size = 10;
    let app = tether::entra::AppCredentials {
        token_url: emu.graph_token_url().parse().unwrap(),
        client_id: APP.into(),
        credential: tether::entra::ClientCredential::Secret(Secret::new(SECRET)),
        scope: opts.scope(),
    };
    GraphClient::new(opts, app, Arc::new(clock.clone())).unwrap()
}

impl World {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn sync(&mut self) -> CycleReport {
        let now = self.now();
        run_cycle(
            &self.config,
            &self.mail,
            &self.sf,
            &mut self.state,
            now,
            &SyncOptions::default(),
            &mut StepBudget::unlimited(),
        )
        .await
        .unwrap()
    }

    /// A cycle with `edit` run on the emulator right after the cycle's first Exchange read.
    async fn sync_with_after_read(
        &mut self,
        edit: impl FnOnce(&RunningEmulator) + Send,
    ) -> CycleReport {
        let now = self.now();
        let emu = &self.emu;
        let mail = EditAfterRead::new(&self.mail, move || edit(emu));
        let report = run_cycle(
            &self.config,
            &mail,
            &self.sf,
            &mut self.state,
            now,
            &SyncOptions::default(),
            &mut StepBudget::unlimited(),
        )
        .await
        .unwrap();
        assert!(mail.edited());
        report
    }

    fn calendar(&self) -> Vec<CalendarEvent> {
        let folder = self.emu.folder_id(REP, "calendar").unwrap();
        self.emu
            .items(REP, &folder)
            .into_iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    fn sync_contacts(&self) -> usize {
        let folder = self.emu.find_folder(REP, "Salesforce_Sync").unwrap();
        self.emu.items(REP, &folder).len()
    }
}

fn deletes(r: &CycleReport) -> usize {
    r.exec.exchange.deleted + r.exec.salesforce.deleted
}

fn creates(r: &CycleReport) -> usize {
    r.exec.exchange.created + r.exec.salesforce.created
}

#[tokio::test]
async fn graph_window_moves_from_one_day_to_the_next_and_nothing_is_deleted() {
    let mut w = world(Value::Null, events_since_today()).await;
    // Today (2026-06-15) and tomorrow, from Salesforce.
    for (subject, start) in [
        ("Today", "2026-06-15T14:00:00Z"),
        ("Tomorrow", "2026-06-16T14:00:00Z"),
    ] {
        w.sf.user_create(
            ObjectKind::Event,
            &rep_id(0),
            Record::Event(event(subject, start, 60)),
        );
    }
    let first = w.sync().await;
    assert_eq!(first.exec.exchange.created, 2, "{:?}", first.exec);
    assert!(w.sync().await.plan.is_empty(), "in step");
    // A day later the window starts at the new TODAY: "Today" ended before it. Meanwhile
    // the rep deleted "Tomorrow" in Outlook: that delete is real, and still synced.
    w.clock.advance(Duration::from_secs(24 * 3600));
    let tomorrow = w
        .calendar()
        .into_iter()
        .find(|e| e.subject.as_deref() == Some("Tomorrow"))
        .and_then(|e| e.item_id)
        .unwrap();
    assert!(w.emu.delete_item(REP, &tomorrow.id));
    let moved = w.sync().await;
    let deleted: Vec<_> = moved
        .plan
        .operations
        .iter()
        .filter(|o| matches!(o.action, Action::DeleteInSalesforce { .. }))
        .collect();
    assert_eq!(deleted.len(), 1, "{:?}", moved.plan.operations);
    assert_eq!(
        moved.plan.operations.len(),
        1,
        "{:?}",
        moved.plan.operations
    );
    assert_eq!(w.calendar().len(), 1);
    let left: Vec<String> =
        w.sf.records(ObjectKind::Event)
            .into_iter()
            .filter_map(|r| r.record.as_event().map(|e| e.subject.clone()))
            .collect();
    assert_eq!(left, ["Today"], "the event that left the window stays");
    // The new round's token serves the next cycle: in step.
    assert!(w.sync().await.plan.is_empty());
    // A cursor the service no longer accepts on the moved window: a full round (the whole
    // calendar listed), still nothing deleted.
    w.emu.expire_graph_delta_tokens();
    let full = w.sync().await;
    assert_eq!(deletes(&full), 0, "{:?}", full.plan.operations);
    assert!(full.plan.is_empty(), "{:?}", full.plan.operations);
    validate_all(&w.emu);
}

#[tokio::test]
async fn graph_410_on_the_contact_delta_means_a_full_round_and_no_deletes() {
    let mut w = world(both_contacts(), Value::Null).await;
    for i in 0..3 {
        w.sf.user_create(
            ObjectKind::Contact,
            &rep_id(0),
            contact("Ana", &format!("Diaz{i}"), &format!("ana{i}@customer.com")),
        );
    }
    assert_eq!(w.sync().await.exec.exchange.created, 3);
    assert!(w.sync().await.plan.is_empty());
    w.emu.expire_graph_delta_tokens();
    let after = w.sync().await;
    assert_eq!(
        (deletes(&after), creates(&after)),
        (0, 0),
        "{:?}",
        after.plan.operations
    );
    assert!(after.exec.failed.is_empty(), "{:?}", after.exec.failed);
    assert_eq!(w.sync_contacts(), 3);
    assert!(w.sync().await.plan.is_empty());
    validate_all(&w.emu);
}

#[tokio::test]
async fn graph_429_with_retry_after_inside_a_batch_is_retried_after_it() {
    let w = world(both_contacts(), Value::Null).await;
    let rep = Mailbox {
        address: REP.into(),
    };
    w.mail
        .ensure_folder(&rep, Folder::SalesforceSyncContacts)
        .await
        .unwrap();
    // The next request, the create batch, has an item throttled for 9 seconds.
    w.emu.inject_graph(GraphFault::Throttle {
        retry_after_secs: 9,
    });
    let creates: Vec<MailCreate> = (0..3)
        .map(|i| MailCreate {
            salesforce_id: format!("003{i:015}"),
            record: contact("Bo", &format!("Lee{i}"), &format!("bo{i}@customer.com")),
        })
        .collect();
    let out = w
        .mail
        .create(&rep, Folder::SalesforceSyncContacts, &creates)
        .await
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Ok(_))), "{out:?}");
    assert!(
        w.clock.sleeps().contains(&Duration::from_secs(9)),
        "{:?}",
        w.clock.sleeps()
    );
    assert!(
        w.emu
            .graph_bodies()
            .iter()
            .any(|b| b.schema == "extra:batchResponse"
                && b.body["responses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["status"] == 429)),
        "the batch answered the item 429"
    );
    assert_eq!(w.sync_contacts(), 3, "each made once");
    validate_all(&w.emu);
}

#[tokio::test]
async fn graph_lost_create_answer_is_found_by_the_property_and_not_duplicated() {
    let mut w = world(both_contacts(), Value::Null).await;
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Cy", "Moss", "cy@customer.com"),
    );
    // The answer to the create batch is lost after the service made the contact.
    let first = w
        .sync_with_after_read(|emu| emu.inject_graph(GraphFault::LoseAnswer))
        .await;
    assert_eq!(first.exec.exchange.created, 0, "{:?}", first.exec);
    assert_eq!(w.sync_contacts(), 1, "made, though the answer was lost");
    let second = w.sync().await;
    assert_eq!(creates(&second), 0, "{:?}", second.plan.operations);
    assert_eq!(w.sync_contacts(), 1, "no duplicate");
    assert!(w.sync().await.plan.is_empty());
    validate_all(&w.emu);
}

#[tokio::test]
async fn graph_event_created_from_salesforce_sends_no_attendees_and_no_invitations() {
    let mut w = world(Value::Null, events_since_today()).await;
    let mut e = event("Kick-off", "2026-06-15T15:00:00Z", 30);
    e.attendees = vec!["ana@customer.com".into(), "bo@customer.com".into()];
    w.sf.user_create(ObjectKind::Event, &rep_id(0), Record::Event(e));
    let report = w.sync().await;
    assert_eq!(report.exec.exchange.created, 1, "{:?}", report.exec);
    let made = w.calendar();
    assert_eq!(made.len(), 1);
    assert!(made[0].required_attendees.is_empty() && made[0].optional_attendees.is_empty());
    assert_eq!(w.emu.graph_sent_meeting_messages(), vec![], "0 invitations");
    validate_all(&w.emu);
}

/// A meeting the rep organised in Outlook with a customer invited, synced to Salesforce,
/// then deleted there: `delete_synced` would delete it in Exchange, which Graph would cancel
/// for the customer. The cycle that sees the Salesforce delete.
/// A meeting the rep organised with an attendee, synced to Salesforce.
async fn synced_meeting(events: Value) -> (World, String) {
    let mut w = world(Value::Null, events).await;
    let start: DateTime<Utc> = "2026-06-15T16:00:00Z".parse().unwrap();
    let mut meeting = CalendarEvent::new(start, start + chrono::Duration::minutes(45));
    meeting.subject = Some("Pricing call".into());
    meeting.organizer = Some(MailboxAddress {
        name: None,
        email: REP.into(),
    });
    meeting.required_attendees = vec![Attendee {
        mailbox: MailboxAddress {
            name: None,
            email: "ana@customer.com".into(),
        },
        response: None,
    }];
    w.emu.put_event(REP, meeting).unwrap();
    let first = w.sync().await;
    assert_eq!(first.exec.salesforce.created, 1, "{:?}", first.exec);
    let sf_id = w.sf.records(ObjectKind::Event)[0].id.clone();
    (w, sf_id)
}

async fn meeting_deleted_in_salesforce(events: Value) -> (World, CycleReport) {
    let (mut w, sf_id) = synced_meeting(events).await;
    assert!(w.sf.user_delete(ObjectKind::Event, &sf_id));
    let report = w.sync().await;
    (w, report)
}

/// The reasons of the plan's deletes in Exchange.
fn delete_reasons(r: &CycleReport) -> Vec<&str> {
    r.plan
        .operations
        .iter()
        .filter(|o| matches!(o.action, Action::DeleteInExchange { .. }))
        .map(|o| o.reason.as_str())
        .collect()
}

/// The meeting moved an hour later in Salesforce.
fn move_in_salesforce(w: &World, sf_id: &str) {
    assert!(w.sf.user_edit(ObjectKind::Event, sf_id, |r| {
        if let Record::Event(e) = &mut r.record
            && let tether::model::EventTime::Timed { start, end } = &mut e.time
        {
            *start += chrono::Duration::hours(1);
            *end += chrono::Duration::hours(1);
        }
    }));
}

/// Defect: a Salesforce edit moving a meeting the rep organised with attendees failed with
/// MEETING_WOULD_NOTIFY_ATTENDEES on every cycle (the rep's feed was read again in full each
/// time). Now it is reported once, nothing is written or mailed, and the link stays.
#[tokio::test]
async fn graph_meeting_moved_in_salesforce_is_reported_once_not_failed_every_cycle() {
    let (mut w, sf_id) = synced_meeting(events_since_today()).await;
    move_in_salesforce(&w, &sf_id);
    let moved = w.sync().await;
    let declined: Vec<_> = moved
        .exec
        .failed
        .iter()
        .filter(|e| e.code == "MEETING_WOULD_NOTIFY_ATTENDEES")
        .collect();
    assert_eq!(declined.len(), 1, "{:?}", moved.exec.failed);
    assert!(
        declined[0]
            .suggestion
            .contains("events.update_meetings: true"),
        "{}",
        declined[0].suggestion
    );
    assert_eq!(moved.exec.exchange.updated, 0);
    for _ in 0..2 {
        let next = w.sync().await;
        assert!(next.plan.is_empty(), "{:?}", next.plan.operations);
        assert!(next.exec.failed.is_empty(), "{:?}", next.exec.failed);
    }
    let start: DateTime<Utc> = "2026-06-15T16:00:00Z".parse().unwrap();
    assert_eq!(w.calendar()[0].start, start, "the meeting did not move");
    assert_eq!(
        w.emu.graph_sent_meeting_messages(),
        vec![],
        "0 updates sent"
    );
    assert_eq!(
        w.state.links(&rep_id(0), ObjectKind::Event).unwrap().len(),
        1
    );
    validate_all(&w.emu);
}

#[tokio::test]
async fn graph_meeting_moved_in_salesforce_with_update_meetings_moves_it_and_graph_mails_an_update()
{
    let mut events = events_since_today();
    events["update_meetings"] = json!(true);
    let (mut w, sf_id) = synced_meeting(events).await;
    move_in_salesforce(&w, &sf_id);
    let moved = w.sync().await;
    assert_eq!(moved.exec.exchange.updated, 1, "{:?}", moved.exec);
    assert!(moved.exec.failed.is_empty(), "{:?}", moved.exec.failed);
    let start: DateTime<Utc> = "2026-06-15T17:00:00Z".parse().unwrap();
    assert_eq!(w.calendar()[0].start, start);
    let sent = w.emu.graph_sent_meeting_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].kind, "update");
    assert!(w.sync().await.plan.is_empty());
    validate_all(&w.emu);
}

#[tokio::test]
async fn graph_meeting_delete_without_opt_in_is_unlinked_and_reported_with_0_cancellations() {
    let (mut w, report) = meeting_deleted_in_salesforce(events_since_today()).await;
    assert_eq!(
        delete_reasons(&report),
        vec![tether::engine::plan::WOULD_SEND_CANCELLATIONS],
        "the plan names the delete that would mail a cancellation"
    );
    assert_eq!(report.exec.exchange.deleted, 0);
    let refused: Vec<_> = report
        .exec
        .failed
        .iter()
        .filter(|e| e.code == "MEETING_WOULD_NOTIFY_ATTENDEES")
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", report.exec.failed);
    assert!(
        refused[0].message.contains("mail them"),
        "{}",
        refused[0].message
    );
    assert!(
        refused[0].suggestion.contains("send_cancellations"),
        "{}",
        refused[0].suggestion
    );
    assert_eq!(w.calendar().len(), 1, "the meeting stays");
    assert_eq!(
        w.emu.graph_sent_meeting_messages(),
        vec![],
        "0 cancellations"
    );
    // Unlinked: the next plan neither deletes it again nor re-creates it in Salesforce.
    let next = w.sync().await;
    assert!(next.plan.is_empty(), "{:?}", next.plan.operations);
    assert!(w.sf.records(ObjectKind::Event).is_empty());
    validate_all(&w.emu);
}

#[tokio::test]
async fn graph_meeting_delete_with_send_cancellations_deletes_and_graph_cancels_it() {
    let mut events = events_since_today();
    events["send_cancellations"] = json!(true);
    let (w, report) = meeting_deleted_in_salesforce(events).await;
    assert_eq!(
        delete_reasons(&report),
        vec![tether::engine::plan::SENDS_CANCELLATIONS]
    );
    assert_eq!(report.exec.exchange.deleted, 1, "{:?}", report.exec);
    assert!(w.calendar().is_empty());
    let sent = w.emu.graph_sent_meeting_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].kind, sent[0].recipients.clone()),
        ("cancellation", vec!["ana@customer.com".to_string()])
    );
    validate_all(&w.emu);
}

/// `plan` and `apply` of the tether binary over Microsoft Graph, both emulators running:
/// a Salesforce contact goes to Salesforce_Sync, an Outlook event to Salesforce, and the
/// next plan says "No changes". Two more reps fail alone: one outside the app's RBAC for
/// Applications scope (status says what to run), one without an Exchange Online mailbox.
#[tokio::test(flavor = "multi_thread")]
async fn graph_plan_and_apply_over_the_cli_end_in_no_changes() {
    use crate::emulated;
    const CELIA: &str = emulated::REP;
    const OUTSIDE: &str = "omar.reyes@corp.com";
    const NO_MAILBOX: &str = "nina.roe@corp.com";
    let org = emulated::start(
        tether_emulators::salesforce::EmulatorOptions::default(),
        &format!(
            "  - name: Reps\n    members: {{ users: [{CELIA}, {OUTSIDE}, {NO_MAILBOX}] }}\n    contacts: {{ direction: both, conflict: salesforce_wins, scope: users_records }}\n    events: {{ direction: both, conflict: exchange_wins }}\n"
        ),
    )
    .await;
    emulated::add_rep_with_a_contact(&org.ews, &org.sf);
    org.ews.add_mailbox(OUTSIDE, Some("Marketing"));
    org.ews.add_user_without_mailbox(NO_MAILBOX);
    for (user, name) in [(OUTSIDE, "Omar Reyes"), (NO_MAILBOX, "Nina Roe")] {
        org.sf
            .handle()
            .add_user(user, user, name, "Sales User", "Europe/Berlin");
    }
    org.ews.add_graph_app(GraphApp {
        client_id: APP.into(),
        client_secret: Some(SECRET.into()),
        certificate_pem: None,
        scope: ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    });
    // The binary plans on the system clock.
    let start = Utc::now() + chrono::Duration::days(1);
    let mut e = CalendarEvent::new(start, start + chrono::Duration::hours(1));
    e.subject = Some("Demo over Graph".into());
    org.ews.put_event(CELIA, e).unwrap();
    let text = std::fs::read_to_string(org.scratch.path("org/tether.yaml")).unwrap();
    let (head, rest) = text.split_once("  exchange:\n").unwrap();
    let (_, salesforce) = rest.split_once("  salesforce:\n").unwrap();
    org.scratch.write(
        "org/tether.yaml",
        format!(
            "{head}  exchange:\n    method: oauth2\n    api: graph\n    tenant: {}\n    client_id: {APP}\n    client_secret: ${{env:TEST_EWS_PASSWORD}}\n    token_url: {}\n    graph_url: {}\n  salesforce:\n{salesforce}",
            org.ews.graph_tenant(),
            org.ews.graph_token_url(),
            org.ews.graph_url()
        ),
    );
    let plan = org.tether(&["plan", "org"], SECRET).await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("1 to create"), "{}", plan.stdout);
    let apply = org
        .tether(&["apply", "org", "--auto-approve"], SECRET)
        .await;
    // Exit 1: two reps could not be synced (the rest was).
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        apply
            .stdout
            .contains("  Exchange: 1 created, 0 updated, 0 deleted, 0 failed"),
        "{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("  Salesforce: 1 created, 0 updated, 0 deleted, 0 failed"),
        "{}",
        apply.stdout
    );
    let again = org.tether(&["plan", "org"], SECRET).await;
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    // The compact status lists both reps as problems; `--user` gives each one's checks.
    let status = org.tether(&["status", "org"], SECRET).await;
    assert!(
        status
            .stdout
            .contains("! omar.reyes@corp.com (Reps): not recognised by the service account")
            && status.stdout.contains("! nina.roe@corp.com (Reps): "),
        "{}",
        status.stdout
    );
    let omar = org
        .tether(&["status", "org", "--user", "omar.reyes@corp.com"], SECRET)
        .await;
    assert!(
        omar.stdout
            .contains("Recognised by the service account: no — ")
            && omar.stdout.contains("ErrorAccessDenied")
            && omar.stdout.contains("Test-ServicePrincipalAuthorization"),
        "{}",
        omar.stdout
    );
    let nina = org
        .tether(&["status", "org", "--user", "nina.roe@corp.com"], SECRET)
        .await;
    assert!(
        nina.stdout.contains("MailboxNotEnabledForRESTAPI"),
        "{}",
        nina.stdout
    );
    for out in [&plan, &apply, &again, &status, &omar, &nina] {
        assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    }
    assert_eq!(org.ews.graph_sent_meeting_messages(), vec![]);
    assert!(
        org.ews.graph_calls().values().sum::<u64>() > 0,
        "over Graph"
    );
    assert_eq!(
        org.ews.all_calls().values().sum::<u64>(),
        0,
        "nothing over EWS: {:?}",
        org.ews.all_calls()
    );
    validate_all(&org.ews);
}

/// A delete in a run that did not read the item (e.g. the item id comes from the state
/// only) goes to the item's own collection: an event is deleted, not answered 404 from the
/// contacts folder and taken for "already gone" while it stays in the calendar.
#[tokio::test]
async fn graph_delete_of_an_event_not_read_this_run_deletes_the_event() {
    let w = world(both_contacts(), events_since_today()).await;
    let rep = Mailbox {
        address: REP.into(),
    };
    w.mail
        .ensure_folder(&rep, Folder::SalesforceSyncContacts)
        .await
        .unwrap();
    let made = w
        .mail
        .create(
            &rep,
            Folder::Calendar,
            &[MailCreate {
                salesforce_id: "00U000000000001AAA".into(),
                record: Record::Event(event("Review", "2026-06-15T15:00:00Z", 30)),
            }],
        )
        .await
        .unwrap();
    let Outcome::Ok(made) = &made[0] else {
        panic!("{made:?}")
    };
    // Another run: a connector that has read nothing.
    let fresh = GraphConnector::new(graph_client(&w.emu, &w.clock));
    let out = fresh
        .delete(&rep, std::slice::from_ref(&made.item_id))
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Ok(())), "{out:?}");
    assert!(w.calendar().is_empty(), "the event is deleted");
    validate_all(&w.emu);
}

/// The rep deletes Salesforce_Sync in Outlook: it moves into Deleted Items with its id, and
/// its delta would go on as if nothing happened. Tether takes it as missing, as over EWS:
/// the folder is made again under Contacts and its contacts are unlinked (deleted in
/// Exchange), nothing deleted in Salesforce.
#[tokio::test]
async fn graph_sync_folder_moved_to_deleted_items_counts_as_missing_and_is_made_again() {
    let mut w = world(both_contacts(), Value::Null).await;
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Ana", "Diaz", "ana@customer.com"),
    );
    assert_eq!(w.sync().await.exec.exchange.created, 1);
    let old = w.emu.find_folder(REP, "Salesforce_Sync").unwrap();
    assert!(
        w.emu.delete_folder(REP, &old, false),
        "moved to Deleted Items"
    );
    let report = w.sync().await;
    let contacts = w.emu.folder_id(REP, "contacts").unwrap();
    let new = w
        .emu
        .find_folder_in(REP, &contacts, "Salesforce_Sync")
        .expect("made again under Contacts");
    assert_ne!(new, old);
    assert!(
        report
            .plan
            .operations
            .iter()
            .all(|o| matches!(o.action, tether::engine::plan::Action::Detach { .. })),
        "{:?}",
        report.plan.operations
    );
    assert_eq!(deletes(&report), 0);
    assert_eq!(w.sf.records(ObjectKind::Contact).len(), 1);
    assert!(w.sync().await.plan.is_empty());
    validate_all(&w.emu);
}

/// An org synced over EWS switches `api: ews` to `api: graph`. The EWS cursors are refused
/// (a full read follows) and Graph names every item by another id than its EWS ItemId (an
/// immutable id): tether's own items re-link through their `tether.SalesforceId` property,
/// and the event born in Outlook (no property) through `translateExchangeIds`. The first
/// Graph cycle creates and deletes nothing, no side has a duplicate, and every link names
/// its item by its Graph id from then on (an Outlook edit afterwards is an update).
#[tokio::test]
async fn graph_switch_from_ews_on_a_synced_org_plans_no_creates_and_no_deletes() {
    let mut w = world(both_contacts(), events_since_today()).await;
    w.emu.add_service_account(
        crate::common::SVC,
        crate::common::PASSWORD,
        ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    );
    let ews = tether::exchange::connector::EwsConnector::new(
        tether::exchange::EwsClient::new(
            tether::exchange::ExchangeOptions::new(
                tether::exchange::Endpoint::Url(w.emu.ews_url().parse().unwrap()),
                tether::exchange::Auth::Basic {
                    username: crate::common::SVC.into(),
                    password: Secret::new(crate::common::PASSWORD),
                },
            ),
            Arc::new(w.clock.clone()),
        )
        .unwrap(),
    );
    // From Salesforce: a contact and an event; from Outlook: an event.
    w.sf.user_create(
        ObjectKind::Contact,
        &rep_id(0),
        contact("Ana", "Diaz", "ana@customer.com"),
    );
    w.sf.user_create(
        ObjectKind::Event,
        &rep_id(0),
        Record::Event(event("From Salesforce", "2026-06-15T15:00:00Z", 30)),
    );
    let start: DateTime<Utc> = "2026-06-15T17:00:00Z".parse().unwrap();
    let mut outlook = CalendarEvent::new(start, start + chrono::Duration::minutes(30));
    outlook.subject = Some("From Outlook".into());
    w.emu.put_event(REP, outlook).unwrap();
    let now = w.now();
    for cycle in 0..3 {
        if cycle == 1 {
            // A contact the rep adds to Salesforce_Sync in Outlook: no tether property.
            let folder = w.emu.find_folder(REP, "Salesforce_Sync").unwrap();
            let c = tether_emulators::exchange::model::Contact {
                given_name: Some("Olga".into()),
                surname: Some("Outlook".into()),
                ..Default::default()
            };
            w.emu.put_contact(REP, &folder, c).unwrap();
        }
        run_cycle(
            &w.config,
            &ews,
            &w.sf,
            &mut w.state,
            now,
            &SyncOptions::default(),
            &mut StepBudget::unlimited(),
        )
        .await
        .unwrap();
    }
    assert_eq!(w.sf.records(ObjectKind::Event).len(), 2, "synced over EWS");
    assert_eq!(
        w.sf.records(ObjectKind::Contact).len(),
        2,
        "synced over EWS"
    );
    assert_eq!((w.calendar().len(), w.sync_contacts()), (2, 2));
    assert!(w.emu.graph_calls().is_empty(), "nothing over Graph yet");
    let ews_ids = |w: &World, object| -> Vec<String> {
        let mut ids: Vec<String> = w
            .state
            .links(&rep_id(0), object)
            .unwrap()
            .into_iter()
            .filter_map(|(_, l)| l.exchange.map(|e| e.item_id))
            .collect();
        ids.sort();
        ids
    };
    let before = [
        ews_ids(&w, ObjectKind::Contact),
        ews_ids(&w, ObjectKind::Event),
    ];
    let outlook_ews_id = w
        .calendar()
        .into_iter()
        .find(|e| e.subject.as_deref() == Some("From Outlook"))
        .and_then(|e| e.item_id)
        .unwrap()
        .id;
    let switched = w.sync().await;
    assert_eq!(
        (creates(&switched), deletes(&switched)),
        (0, 0),
        "{:?}",
        switched.plan.operations
    );
    assert!(w.sync().await.plan.is_empty());
    assert_eq!(
        w.sf.records(ObjectKind::Event).len(),
        2,
        "no duplicate in Salesforce"
    );
    assert_eq!(w.sf.records(ObjectKind::Contact).len(), 2);
    assert_eq!(
        (w.calendar().len(), w.sync_contacts()),
        (2, 2),
        "none in Exchange"
    );
    // Every link now names its item by Graph's id, not by the EWS ItemId.
    for (object, ews) in [ObjectKind::Contact, ObjectKind::Event]
        .into_iter()
        .zip(before)
    {
        let mut graph: Vec<String> = ews
            .iter()
            .map(|id| w.emu.graph_id_of_ews_id(REP, id))
            .collect();
        graph.sort();
        assert_ne!(graph, ews, "Graph's ids differ from EWS's");
        assert_eq!(
            ews_ids(&w, object),
            graph,
            "{object:?} links hold Graph ids"
        );
    }
    assert_eq!(
        w.emu.graph_calls().get("POST translateExchangeIds"),
        Some(&2),
        "one translation per folder read from an EWS cursor"
    );
    // An Outlook edit of the event born there is an update of its Salesforce record.
    w.emu.edit_item(REP, &outlook_ews_id, |i| {
        if let Item::Event(e) = i {
            e.subject = Some("From Outlook, renamed".into());
        }
    });
    let edited = w.sync().await;
    assert_eq!((creates(&edited), deletes(&edited)), (0, 0));
    assert_eq!(
        edited.exec.salesforce.updated, 1,
        "{:?}",
        edited.plan.operations
    );
    validate_all(&w.emu);
}

/// Defect: a recurring series deleted in Outlook was seen only at the next full read (the
/// calendarView delta carries no series masters, only the `@removed` of the occurrences,
/// which name no linked event). Now the round reads the series masters it knows by id when
/// occurrences are gone: the master's 404 is the series' delete, in the next cycle.
#[tokio::test]
async fn graph_series_deleted_in_outlook_is_deleted_in_salesforce_in_the_next_cycle() {
    let mut events = events_since_today();
    events["sync_series"] = json!(true);
    let mut w = world(Value::Null, events).await;
    let start: DateTime<Utc> = "2026-06-16T09:00:00Z".parse().unwrap();
    let mut weekly = CalendarEvent::new(start, start + chrono::Duration::minutes(30));
    weekly.subject = Some("Weekly pipeline review".into());
    weekly.recurrence = Some(tether_emulators::exchange::model::Recurrence {
        end: tether_emulators::exchange::model::RangeEnd::Count(6),
        pattern: tether_emulators::exchange::model::Pattern::Weekly {
            interval: 1,
            days: vec![chrono::Weekday::Tue],
            first_day: None,
        },
        start: start.date_naive(),
    });
    let master = w.emu.put_event(REP, weekly).unwrap().id;
    let first = w.sync().await;
    assert_eq!(
        first.exec.salesforce.created, 1,
        "{:?}",
        first.plan.operations
    );
    assert!(w.sync().await.plan.is_empty(), "in sync, cursor saved");
    assert!(w.emu.delete_item(REP, &master));
    let next = w.sync().await;
    assert_eq!(
        next.exec.salesforce.deleted, 1,
        "{:?}",
        next.plan.operations
    );
    assert!(w.sf.records(ObjectKind::Event).is_empty());
    assert!(w.sync().await.plan.is_empty());
    validate_all(&w.emu);
}
