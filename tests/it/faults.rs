//! The fault matrix, end to end: for each fault Exchange or Salesforce can throw at a sync
//! (emulated as the vendor documents it), the `tether` binary syncs two reps' contacts and
//! events into it, then syncs again without it. After the faulty sync every record is synced
//! or accounted for in `tether errors` with a suggestion; after the fault-free one every
//! record is synced exactly once on each side (or, for a permanent refusal, still listed),
//! nothing is lost or duplicated, and the next plan is empty or shows exactly the refused
//! records.
//!
//! Each test writes its row of the fault table in docs/reliability.md from what it observed
//! and fails when the checked-in row differs (`TETHER_BLESS=1 cargo test` rewrites it).

use crate::cli_world;
use crate::common;
use crate::emulated;
use crate::reliability_doc;

use cli_world::{ErrorRow, Side, Tally, World};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tether_emulators::exchange::{Fault, ImpersonationScope};
use tether_emulators::salesforce::{KindFault, RecordError};

/// Reps, and records of each kind (contact/event × Exchange/Salesforce) per rep.
const REPS: usize = 2;
const PER_REP: usize = 2;

/// How a sync is run.
#[derive(Clone, Copy)]
enum Sync {
    /// `tether apply --auto-approve` (plans, then syncs).
    Apply,
    /// `tether run --once` (syncs with the applied configuration).
    RunOnce,
}

/// What the faulty sync did.
struct Under {
    exit: i32,
    elapsed: Duration,
    total: usize,
    tally: Tally,
    errors: Vec<ErrorRow>,
    stdout: String,
    stderr: String,
}

async fn sync(w: &World, how: Sync) -> common::Output {
    match how {
        Sync::Apply => w.tether(&["apply", "org", "--auto-approve"]).await,
        Sync::RunOnce => w.tether(&["run", "org", "--once"]).await,
    }
}

/// A fault-free first sync, for faults that need records already linked.
async fn warm_up(w: &World) {
    let out = sync(w, Sync::Apply).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let t = w.tally();
    assert!(t.unsynced.is_empty(), "warm-up left {:?}", t.unsynced);
}

/// Syncs into the fault and checks that every record is synced or accounted for.
async fn sync_under_fault(w: &World, how: Sync) -> Under {
    let started = Instant::now();
    let out = sync(w, how).await;
    let elapsed = started.elapsed();
    let tally = w.tally();
    let errors = if w.state_path().exists() {
        w.errors().await
    } else {
        Vec::new()
    };
    for e in &errors {
        assert!(
            !e.suggestion.trim().is_empty(),
            "an error without a suggestion: {e:?}"
        );
    }
    let explained = w.explained(&tally.unsynced, &errors);
    let whole_run_refused = out.code != 0 && errors.is_empty() && tally.synced.is_empty();
    if !whole_run_refused {
        let unexplained: Vec<&String> = tally.unsynced.difference(&explained).collect();
        assert!(
            unexplained.is_empty(),
            "not synced and not in `tether errors`: {unexplained:?}\nerrors: {errors:#?}\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    Under {
        exit: out.code,
        elapsed,
        total: w.sources.len(),
        tally,
        errors,
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Syncs again without the fault: everything converges except `refused` (permanent
/// refusals), which stay listed in `tether errors`, and the next plan shows exactly those.
async fn sync_after_fault(w: &World, refused: &[&str]) -> String {
    let out = sync(w, Sync::Apply).await;
    let t = w.tally();
    let refused: BTreeSet<String> = refused.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        t.unsynced, refused,
        "after a fault-free sync:\n{}{}",
        out.stdout, out.stderr
    );
    assert!(t.stale.is_empty(), "edits lost: {:?}", t.stale);
    assert_eq!(out.code, i32::from(!refused.is_empty()), "{}", out.stderr);
    let errors = w.errors().await;
    assert_eq!(w.explained(&refused, &errors), refused);
    let planned = w.planned().await;
    let expected: BTreeSet<(String, String)> = refused
        .iter()
        .map(|k| ("create".to_string(), w.sources[k].id.clone()))
        .collect();
    assert_eq!(planned, expected, "the next plan");
    if refused.is_empty() {
        format!("{0}/{0} synced; next plan: No changes", w.sources.len())
    } else {
        format!(
            "{}/{} synced; still refused: {} (in `tether errors`); next plan: exactly {}",
            t.synced.len(),
            w.sources.len(),
            plural(refused.len(), "record", "records"),
            plural(refused.len(), "create", "creates"),
        )
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn describe_under(u: &Under) -> String {
    if u.exit != 0 && u.errors.is_empty() && u.tally.synced.is_empty() {
        // The error and what caused it, as the user reads them.
        let reason = u
            .stderr
            .lines()
            .skip_while(|l| !l.starts_with("error:"))
            .take_while(|l| l.starts_with("error:") || l.starts_with("Caused by:"))
            .collect::<Vec<_>>()
            .join(" ");
        return format!("exit {}; nothing written: {reason}", u.exit);
    }
    // Per error code: how many reps or records it names, and the suggestion given.
    let mut by_code: std::collections::BTreeMap<(&str, &str), (usize, usize)> = Default::default();
    for e in &u.errors {
        let entry = by_code
            .entry((e.code.as_str(), e.suggestion.as_str()))
            .or_default();
        if e.record_ids.is_empty() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    let listed: Vec<String> = by_code
        .iter()
        .map(|((code, suggestion), (reps, records))| {
            let what = match (reps, records) {
                (0, n) => plural(*n, "record", "records"),
                (n, 0) => plural(*n, "rep", "reps"),
                (r, n) => format!(
                    "{}, {}",
                    plural(*r, "rep", "reps"),
                    plural(*n, "record", "records")
                ),
            };
            format!("{code} for {what} → “{suggestion}”")
        })
        .collect();
    format!(
        "exit {}; {}/{} synced; `tether errors`: {}",
        u.exit,
        u.tally.synced.len(),
        u.total,
        if listed.is_empty() {
            "nothing".to_string()
        } else {
            listed.join("; ")
        }
    )
}

/// Checks (or with TETHER_BLESS=1 writes) this test's row of the fault table.
fn row(test: &str, fault: &str, response: &str, under: &Under, after: &str) {
    reliability_doc::row(
        &reliability_doc::FAULTS,
        test,
        &[fault, response, &describe_under(under), after],
    );
}

#[test]
fn the_fault_table_has_a_row_for_every_fault_test_and_no_other() {
    assert_eq!(
        reliability_doc::rows(&reliability_doc::FAULTS),
        reliability_doc::FAULTS.tests
    );
}

async fn world() -> World {
    let mut w = World::start(REPS).await;
    w.seed(PER_REP);
    w
}

// ---------------------------------------------------------------------------------------
// Exchange

#[tokio::test(flavor = "multi_thread")]
async fn ews_error_server_busy_with_back_off() {
    let w = world().await;
    w.ews
        .inject_on("SyncFolderItems", Fault::ServerBusy { back_off_ms: 1_000 });
    w.ews
        .inject_on("CreateItem", Fault::ServerBusy { back_off_ms: 1_000 });
    let creates_expected = w.ews.calls("CreateItem");
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 0, "{}{}", u.stdout, u.stderr);
    assert!(u.tally.unsynced.is_empty());
    // Each throttled call waited what the server asked before it was sent again.
    assert!(u.elapsed >= Duration::from_millis(2_000), "{:?}", u.elapsed);
    assert!(w.ews.calls("CreateItem") > creates_expected);
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_error_server_busy_with_back_off",
        "EWS SOAP fault ErrorServerBusy with BackOffMilliseconds = 1000 in MessageXml, on a SyncFolderItems and on a CreateItem",
        "waits the BackOffMilliseconds the server asked for, then sends the same request again (the server did not run it)",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ews_http_503_with_retry_after() {
    let w = world().await;
    w.ews.inject_on(
        "CreateItem",
        Fault::Unavailable {
            retry_after_secs: 2,
        },
    );
    w.ews.inject_on("SyncFolderItems", Fault::Http(503));
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 0, "{}{}", u.stdout, u.stderr);
    assert!(u.tally.unsynced.is_empty());
    // 2 s for the Retry-After, 1 s of back-off for the plain 503.
    assert!(u.elapsed >= Duration::from_millis(3_000), "{:?}", u.elapsed);
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_http_503_with_retry_after",
        "HTTP 503 Service Unavailable: once with `Retry-After: 2` (on a CreateItem), once without (on a SyncFolderItems)",
        "waits the Retry-After when there is one, else backs off exponentially from 1 s, and retries (at most 5 times)",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ews_http_401_bad_credentials() {
    let w = world().await;
    // The service account's password was reset in Active Directory; the configured one is old.
    w.ews.set_password(emulated::SVC, "rotated-by-the-admin");
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 1, "{}{}", u.stdout, u.stderr);
    // One failed logon per run, however many reps: repeated bad logons lock accounts out.
    assert_eq!(w.ews.rejected_logons(), 1, "{}{}", u.stdout, u.stderr);
    assert!(
        u.errors.iter().all(|e| e.code == "UNAUTHORIZED"),
        "{:#?}",
        u.errors
    );
    w.ews.set_password(emulated::SVC, emulated::PASSWORD);
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_http_401_bad_credentials",
        "HTTP 401 on every EWS request: the service account's password was changed",
        "stops calling Exchange after the first 401 in a run (one failed logon, so the account is not locked out), reports every rep, and writes nothing for them until the credentials work",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ews_connection_reset_mid_response() {
    let w = world().await;
    // A read whose answer breaks off, and a CreateItem the server carried out before the
    // connection broke.
    w.ews.inject_on("SyncFolderItems", Fault::DropConnection);
    w.ews.inject_on("CreateItem", Fault::DropResponse);
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert!(
        u.errors.iter().all(|e| e.code == "AMBIGUOUS"),
        "{:#?}",
        u.errors
    );
    assert!(!u.errors.is_empty(), "the broken CreateItem is reported");
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_connection_reset_mid_response",
        "the connection resets in the middle of the answer: to a SyncFolderItems (nothing done), and to a CreateItem the server carried out",
        "retries the read; never resends the CreateItem (it may have happened): the items are reported as ambiguous and the next run finds them by their tether.SalesforceId property and links them",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ews_error_irresolvable_conflict() {
    let mut w = world().await;
    warm_up(&w).await;
    // Salesforce edits that tether writes to Exchange, while the rep saves one of the items.
    w.edit("c0s0", Side::Salesforce, "c0s0 v1");
    w.edit("c1s0", Side::Salesforce, "c1s0 v1");
    w.ews.inject(Fault::StaleChangeKey);
    let u = sync_under_fault(&w, Sync::RunOnce).await;
    // A record failed: `run --once` exits 1, as apply does.
    assert_eq!(u.exit, 1, "{}{}", u.stdout, u.stderr);
    assert_eq!(u.tally.unsynced.len(), 1, "{:?}", u.tally.unsynced);
    assert!(
        u.errors
            .iter()
            .all(|e| e.code == "ErrorIrresolvableConflict"),
        "{:#?}",
        u.errors
    );
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_error_irresolvable_conflict",
        "UpdateItem answers ErrorIrresolvableConflict for one item of the batch (the rep saved it after tether read it; ConflictResolution NeverOverwrite)",
        "never overwrites the rep's save: reports the item, reads it again next run and applies the conflict policy",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ews_error_invalid_sync_state_data() {
    let mut w = world().await;
    warm_up(&w).await;
    w.edit("c0x0", Side::Exchange, "c0x0 v1");
    w.add_contact(0, Side::Exchange);
    w.edit("c0s1", Side::Salesforce, "c0s1 v1");
    w.ews.inject(Fault::InvalidSyncState);
    let u = sync_under_fault(&w, Sync::RunOnce).await;
    assert_eq!(u.exit, 0, "{}{}", u.stdout, u.stderr);
    assert!(u.tally.unsynced.is_empty(), "{:?}", u.tally.unsynced);
    assert!(u.tally.stale.is_empty(), "{:?}", u.tally.stale);
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_error_invalid_sync_state_data",
        "SyncFolderItems answers ErrorInvalidSyncStateData to the saved SyncState",
        "reads the folder again from the start in the same run and matches what it finds to the links it has: no duplicates, edits kept",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ews_error_impersonate_user_denied_for_one_rep() {
    let w = world().await;
    // The management scope of the ApplicationImpersonation role lost rep1.
    w.ews.set_impersonation_scope(
        emulated::SVC,
        ImpersonationScope::List(vec![cli_world::rep_mail(0)]),
    );
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 1);
    let rep1: BTreeSet<String> = w
        .sources
        .iter()
        .filter(|(_, s)| s.rep == 1)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(u.tally.unsynced, rep1, "only rep1 is held up");
    w.ews.set_impersonation_scope(
        emulated::SVC,
        ImpersonationScope::Filter("Department -eq 'Sales'".into()),
    );
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_error_impersonate_user_denied_for_one_rep",
        "SOAP fault ErrorImpersonateUserDenied for one rep's mailbox (outside the role's management scope)",
        "syncs the other reps; reports the rep once, with the fix; the rep syncs in full once the role covers the mailbox",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ews_batch_with_some_items_failing() {
    let w = world().await;
    for key in ["c0s1", "e1s0"] {
        w.ews.fail_items(
            key,
            "ErrorInternalServerTransientError",
            "An internal server transient error occurred. Try again later.",
            Some(1),
        );
    }
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 1);
    let expected: BTreeSet<String> = ["c0s1", "e1s0"].iter().map(|s| s.to_string()).collect();
    assert_eq!(u.tally.unsynced, expected);
    let after = sync_after_fault(&w, &[]).await;
    row(
        "ews_batch_with_some_items_failing",
        "a CreateItem batch where two items answer ErrorInternalServerTransientError and the rest succeed",
        "records the created items, reports the two failures per record, and creates them on the next run",
        &u,
        &after,
    );
}

// ---------------------------------------------------------------------------------------
// Salesforce

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_expired_session() {
    let w = world().await;
    w.sf.handle()
        .fault_next("collection", KindFault::ExpireSessions);
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 0, "{}{}", u.stdout, u.stderr);
    assert!(u.tally.unsynced.is_empty());
    // One token for the run, one more after the session expired.
    assert_eq!(w.sf.handle().served().get("auth"), Some(&2));
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_expired_session",
        "401 INVALID_SESSION_ID on an sObject Collections create (the session expired or was revoked)",
        "gets a new token once and sends the request again (a 401 means it was not run)",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_5xx_burst() {
    let w = world().await;
    let sf = w.sf.handle();
    sf.fault_next("query", KindFault::Status(503));
    sf.fault_next("query", KindFault::Status(500));
    sf.fault_next("query", KindFault::Status(503));
    sf.fault_next("collection", KindFault::Status(503));
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert!(
        u.errors.iter().all(|e| e.code == "AMBIGUOUS"),
        "{:#?}",
        u.errors
    );
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_5xx_burst",
        "a burst of 503 SERVER_UNAVAILABLE / 500 UNKNOWN_EXCEPTION: three on queries, one on an sObject Collections create",
        "retries reads with jittered exponential back-off; a create that got a 5xx may have run, so it is not resent: reported as ambiguous, looked up by Tether_Sync_Key__c on the next run, created only if missing",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_connection_reset_after_create() {
    let w = world().await;
    w.sf.handle()
        .fault_next("collection", KindFault::DropResponse);
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert!(
        u.errors.iter().all(|e| e.code == "AMBIGUOUS"),
        "{:#?}",
        u.errors
    );
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_connection_reset_after_create",
        "the connection resets while the answer to an sObject Collections create is sent; the records were created",
        "reports the records as ambiguous without resending; the next run finds them by Tether_Sync_Key__c and links them",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_unable_to_lock_row() {
    let w = world().await;
    w.sf.handle()
        .lock_rows("Contact", "LastName", json!("c0x0"), 2);
    w.sf.handle()
        .lock_rows("Event", "Subject", json!("e1x1"), 2);
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 0, "{}{}", u.stdout, u.stderr);
    assert!(u.tally.unsynced.is_empty());
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_unable_to_lock_row",
        "UNABLE_TO_LOCK_ROW for two records of a collection, twice in a row",
        "sends just the locked records again after a back-off (up to 3 rounds)",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_late_commit_with_an_earlier_stamp() {
    let mut w = world().await;
    warm_up(&w).await;
    // A long transaction begins; meanwhile a user's edit commits and a sync reads it, so the
    // watermark passes the transaction's start (stamps have whole seconds: wait one).
    let started = w.sf.handle().now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.edit("c0s0", Side::Salesforce, "Edited meanwhile");
    let out = sync(&w, Sync::Apply).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // The transaction commits edits of a contact and an event, stamped when it began.
    w.edit_committed_late("c1s0", "Committed late", started);
    w.edit_committed_late("e1s0", "Committed late", started);
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 0, "{}{}", u.stdout, u.stderr);
    assert!(
        u.tally.stale.is_empty(),
        "late edits missed: {:?}",
        u.tally.stale
    );
    assert!(u.tally.unsynced.is_empty());
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_late_commit_with_an_earlier_stamp",
        "a long transaction commits edits stamped (SystemModstamp) before the newest change the last sync read",
        "reads changes from 15 minutes before the watermark (`change_lookback_minutes`), so the late edits are read; records read again unchanged plan nothing",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_request_limit_exceeded_concurrent() {
    let w = world().await;
    w.sf.handle()
        .fault_next("collection", KindFault::ConcurrentLimit);
    w.sf.handle()
        .fault_next("query", KindFault::ConcurrentLimit);
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 0, "{}{}", u.stdout, u.stderr);
    assert!(u.tally.unsynced.is_empty());
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_request_limit_exceeded_concurrent",
        "403 REQUEST_LIMIT_EXCEEDED “ConcurrentPerOrgLongTxn Limit exceeded.” on a query and on a collection create",
        "the request was refused, not run: backs off and sends it again",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_request_limit_exceeded_daily() {
    let w = world().await;
    let (_, max) = w.sf.handle().api_usage();
    w.sf.handle().set_api_used(max);
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 1);
    assert!(u.stderr.contains("REQUEST_LIMIT_EXCEEDED"), "{}", u.stderr);
    assert!(u.tally.synced.is_empty());
    w.sf.handle().set_api_used(0);
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_request_limit_exceeded_daily",
        "403 REQUEST_LIMIT_EXCEEDED “TotalRequests Limit exceeded.”: the org's rolling 24-hour API allowance is used up",
        "stops before writing anything and says why; the next run after the allowance recovers syncs everything",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_duplicates_detected() {
    let w = world().await;
    let sf = w.sf.handle();
    sf.duplicate_rule("Contact", "Email");
    // Another user's contact has the address of one of rep0's Outlook contacts.
    let other = sf.add_user(
        "someone@corp.com",
        "someone@corp.com",
        "Someone",
        "Sales User",
        "GMT",
    );
    sf.insert(
        "Contact",
        json!({"LastName": "Elsewhere", "Email": "c0x1@customer.example", "OwnerId": other}),
    )
    .unwrap();
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 1);
    let dup = u
        .errors
        .iter()
        .find(|e| e.code == "DUPLICATES_DETECTED")
        .expect("reported");
    assert!(dup.message.contains("Use one of these records?"), "{dup:?}");
    let after = sync_after_fault(&w, &["c0x1"]).await;
    row(
        "salesforce_duplicates_detected",
        "DUPLICATES_DETECTED (a blocking duplicate rule matches another user's contact) for one record of a collection create",
        "creates the rest; reports the record with the matching record's id and how to resolve it; plans it again every run until resolved",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_field_custom_validation_exception() {
    let w = world().await;
    let sf = w.sf.handle();
    sf.validation_rule(
        "Contact",
        "LastName",
        json!("c1x0"),
        "Contacts need a mailing country",
    );
    sf.validation_rule("Event", "Subject", json!("e0x1"), "Events need a type");
    let u = sync_under_fault(&w, Sync::Apply).await;
    assert_eq!(u.exit, 1);
    let expected: BTreeSet<String> = ["c1x0", "e0x1"].iter().map(|s| s.to_string()).collect();
    assert_eq!(u.tally.unsynced, expected);
    let after = sync_after_fault(&w, &["c1x0", "e0x1"]).await;
    row(
        "salesforce_field_custom_validation_exception",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION (validation rules) for a contact and an event of collection creates",
        "creates the rest; reports each refused record with the rule's message; plans them again every run until the records pass",
        &u,
        &after,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn salesforce_partially_failed_collection() {
    let mut w = world().await;
    warm_up(&w).await;
    for key in ["c0x0", "c0x1", "c1x0", "c1x1"] {
        w.edit(key, Side::Exchange, &format!("{key} v1"));
    }
    let sf = w.sf.handle();
    for key in ["c0x1", "c1x1"] {
        sf.fail_records(
            "Contact",
            "LastName",
            json!(key),
            RecordError::new(
                "ENTITY_IS_LOCKED",
                "This record is locked. If you need to edit it, contact your admin",
                &[],
            ),
            Some(1),
        );
    }
    let u = sync_under_fault(&w, Sync::RunOnce).await;
    let expected: BTreeSet<String> = ["c0x1", "c1x1"].iter().map(|s| s.to_string()).collect();
    assert_eq!(u.tally.unsynced, expected);
    assert!(
        u.errors.iter().all(|e| e.code == "ENTITY_IS_LOCKED"),
        "{:#?}",
        u.errors
    );
    let after = sync_after_fault(&w, &[]).await;
    row(
        "salesforce_partially_failed_collection",
        "an sObject Collections update (allOrNone=false) where two of four records fail with ENTITY_IS_LOCKED (approval lock) and the rest succeed",
        "records the updates that succeeded, reports the two failures, and sends them again on the next run",
        &u,
        &after,
    );
}
