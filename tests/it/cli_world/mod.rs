//! A running org for tests that drive the `tether` binary end to end: both emulators in this
//! process (so they outlive a killed tether), reps with contacts and events on both sides,
//! and observers that read what each side holds, keyed by record name, so a test can say of
//! every record whether it is synced, failed, lost or duplicated.
//!
//! Record keys: `c<rep>x<n>` / `e<rep>x<n>` are a contact / event that started in Exchange,
//! `c<rep>s<n>` / `e<rep>s<n>` one that started in Salesforce. A contact's last name and an
//! event's subject are its key; its Title/JobTitle (contacts) or Location (events) holds a
//! value the tests edit.
#![allow(dead_code)]

use crate::common::Output;
use crate::emulated::{self, Org};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tether_emulators::exchange::model::{CalendarEvent, Contact, Item};
use tether_emulators::{exchange, salesforce};

use crate::emulated::{PASSWORD, SF_SECRET};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    Contact,
    Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Exchange,
    Salesforce,
}

/// Where a record started.
#[derive(Debug, Clone)]
pub struct Source {
    pub rep: usize,
    pub object: Object,
    pub side: Side,
    /// Its id on the side it started on (what `tether errors` names).
    pub id: String,
}

/// A record as one side holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub rep: usize,
    pub object: Object,
    pub side: Side,
    pub id: String,
    pub value: String,
}

/// One row of `tether errors --format json`.
#[derive(Debug, Clone)]
pub struct ErrorRow {
    pub rep: String,
    pub object: Option<String>,
    pub record_ids: Vec<String>,
    pub code: String,
    pub message: String,
    pub suggestion: String,
}

/// The org (`ews`, `sf`, `scratch` through `Deref`) and its records.
pub struct World {
    pub org: Org,
    /// Rep mailboxes (also their Salesforce usernames and emails).
    pub reps: Vec<String>,
    /// Salesforce user ids, by rep.
    pub rep_ids: Vec<String>,
    pub sources: BTreeMap<String, Source>,
    /// The value each record should end with (its latest edit).
    pub expected: BTreeMap<String, String>,
    /// When the events start from (tether plans with the real clock).
    pub base: DateTime<Utc>,
}

pub use crate::common::rep_mail;

fn email(key: &str) -> String {
    format!("{key}@customer.example")
}

impl World {
    /// `reps` reps in the Sales department (inside the service account's impersonation
    /// scope), each with a Salesforce_Sync folder, syncing contacts and events both ways.
    pub async fn start(reps: usize) -> World {
        World::start_with(reps, exchange::EmulatorOptions::default()).await
    }

    pub async fn start_with(reps: usize, ews_options: exchange::EmulatorOptions) -> World {
        let mails: Vec<String> = (0..reps).map(rep_mail).collect();
        let org = emulated::start_with(
            exchange::EmulatorOptions {
                // tether plans with the real clock; so does the emulated server.
                deterministic: false,
                record_bodies: false,
                ..ews_options
            },
            salesforce::EmulatorOptions::default(),
            &format!(
                "  - name: Reps
    members: {{ users: [{}] }}
    contacts: {{ direction: both, conflict: salesforce_wins, scope: users_records }}
    events: {{ direction: both, conflict: exchange_wins, since: TODAY }}
",
                mails.join(", ")
            ),
        )
        .await;
        let mut rep_ids = Vec::new();
        for mail in &mails {
            org.ews.add_mailbox(mail, Some("Sales"));
            let contacts = org.ews.folder_id(mail, "contacts").unwrap();
            org.ews
                .create_folder(mail, &contacts, "Salesforce_Sync", "IPF.Contact")
                .unwrap();
            rep_ids.push(org.sf.handle().add_user(
                mail,
                mail,
                &format!("Rep of {mail}"),
                "Sales User",
                "Europe/Berlin",
            ));
        }
        let base = (Utc::now() + Duration::days(2))
            .duration_trunc(Duration::hours(1))
            .unwrap();
        World {
            org,
            reps: mails,
            rep_ids,
            sources: BTreeMap::new(),
            expected: BTreeMap::new(),
            base,
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.scratch.dir.path().to_path_buf()
    }

    pub fn state_path(&self) -> PathBuf {
        self.scratch.path("org/.tether/state.db")
    }

    /// `per_rep` records of each kind (contact/event × Exchange/Salesforce) for every rep.
    pub fn seed(&mut self, per_rep: usize) {
        for rep in 0..self.reps.len() {
            for _ in 0..per_rep {
                self.add_contact(rep, Side::Exchange);
                self.add_contact(rep, Side::Salesforce);
                self.add_event(rep, Side::Exchange);
                self.add_event(rep, Side::Salesforce);
            }
        }
    }

    fn next_key(&self, prefix: char, rep: usize, side: Side) -> String {
        let s = match side {
            Side::Exchange => 'x',
            Side::Salesforce => 's',
        };
        let n = self
            .sources
            .keys()
            .filter(|k| k.starts_with(&format!("{prefix}{rep}{s}")))
            .count();
        format!("{prefix}{rep}{s}{n}")
    }

    /// A new contact on one side; returns its key.
    pub fn add_contact(&mut self, rep: usize, side: Side) -> String {
        let key = self.next_key('c', rep, side);
        let value = format!("{key} v0");
        let id = match side {
            Side::Exchange => {
                let mail = &self.reps[rep];
                let folder = self.ews.find_folder(mail, "Salesforce_Sync").unwrap();
                self.ews
                    .put_contact(
                        mail,
                        &folder,
                        Contact {
                            given_name: Some("Pat".into()),
                            surname: Some(key.clone()),
                            emails: [Some(email(&key)), None, None],
                            job_title: Some(value.clone()),
                            ..Default::default()
                        },
                    )
                    .unwrap()
                    .id
            }
            Side::Salesforce => self
                .sf
                .handle()
                .insert(
                    "Contact",
                    json!({"FirstName": "Pat", "LastName": key, "Email": email(&key),
                           "Title": value, "OwnerId": self.rep_ids[rep]}),
                )
                .unwrap(),
        };
        self.sources.insert(
            key.clone(),
            Source {
                rep,
                object: Object::Contact,
                side,
                id,
            },
        );
        self.expected.insert(key.clone(), value);
        key
    }

    /// A new one-hour event on one side, in the coming days; returns its key.
    pub fn add_event(&mut self, rep: usize, side: Side) -> String {
        let key = self.next_key('e', rep, side);
        let value = format!("{key} v0");
        let slot = self.sources.len() as i64;
        let start = self.base + Duration::hours(slot % 200);
        let end = start + Duration::hours(1);
        let id = match side {
            Side::Exchange => {
                let mut e = CalendarEvent::new(start, end);
                e.subject = Some(key.clone());
                e.location = Some(value.clone());
                self.ews.put_event(&self.reps[rep], e).unwrap().id
            }
            Side::Salesforce => self
                .sf
                .handle()
                .insert(
                    "Event",
                    json!({"Subject": key, "Location": value, "OwnerId": self.rep_ids[rep],
                           "StartDateTime": start.to_rfc3339(), "EndDateTime": end.to_rfc3339()}),
                )
                .unwrap(),
        };
        self.sources.insert(
            key.clone(),
            Source {
                rep,
                object: Object::Event,
                side,
                id,
            },
        );
        self.expected.insert(key.clone(), value);
        key
    }

    /// Edits a record's value on one side, as a user would; the new value is expected to win.
    pub fn edit(&mut self, key: &str, side: Side, value: &str) {
        self.edit_stamped(key, side, value, None);
    }

    /// Edits a record in Salesforce through a long transaction that began at `started` and
    /// commits now: the edit shows now, stamped `started` (the emulator's late commit).
    pub fn edit_committed_late(&mut self, key: &str, value: &str, started: DateTime<Utc>) {
        self.edit_stamped(key, Side::Salesforce, value, Some(started));
    }

    fn edit_stamped(&mut self, key: &str, side: Side, value: &str, late: Option<DateTime<Utc>>) {
        let sf_update = |object: &str, id: &str, fields: serde_json::Value| {
            let h = self.sf.handle();
            match late {
                Some(started) => h.update_committed_late(object, id, fields, started),
                None => h.update(object, id, fields),
            }
            .unwrap();
        };
        let seen = self.observe();
        let Some(copy) = seen
            .get(key)
            .and_then(|copies| copies.iter().find(|c| c.side == side))
        else {
            panic!("{key} is not in {side:?}");
        };
        let mail = &self.reps[copy.rep];
        match (side, copy.object) {
            (Side::Exchange, Object::Contact) => {
                self.ews
                    .edit_item(mail, &copy.id, |i| {
                        if let Item::Contact(c) = i {
                            c.job_title = Some(value.to_string());
                        }
                    })
                    .unwrap();
            }
            (Side::Exchange, Object::Event) => {
                self.ews
                    .edit_item(mail, &copy.id, |i| {
                        if let Item::Event(e) = i {
                            e.location = Some(value.to_string());
                        }
                    })
                    .unwrap();
            }
            (Side::Salesforce, Object::Contact) => {
                sf_update("Contact", &copy.id, json!({"Title": value}));
            }
            (Side::Salesforce, Object::Event) => {
                sf_update("Event", &copy.id, json!({"Location": value}));
            }
        }
        self.expected.insert(key.to_string(), value.to_string());
    }

    /// Every copy of every record, by key, as both sides hold them now.
    pub fn observe(&self) -> BTreeMap<String, Vec<Seen>> {
        let mut out: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
        for (rep, mail) in self.reps.iter().enumerate() {
            if let Some(folder) = self.ews.find_folder(mail, "Salesforce_Sync") {
                for item in self.ews.items(mail, &folder) {
                    if let Item::Contact(c) = item {
                        out.entry(c.surname.clone().unwrap_or_default())
                            .or_default()
                            .push(Seen {
                                rep,
                                object: Object::Contact,
                                side: Side::Exchange,
                                id: c.item_id.map(|i| i.id).unwrap_or_default(),
                                value: c.job_title.unwrap_or_default(),
                            });
                    }
                }
            }
            let calendar = self.ews.folder_id(mail, "calendar").unwrap();
            for item in self.ews.items(mail, &calendar) {
                if let Item::Event(e) = item {
                    out.entry(e.subject.clone().unwrap_or_default())
                        .or_default()
                        .push(Seen {
                            rep,
                            object: Object::Event,
                            side: Side::Exchange,
                            id: e.item_id.map(|i| i.id).unwrap_or_default(),
                            value: e.location.unwrap_or_default(),
                        });
                }
            }
        }
        let text = |r: &serde_json::Map<String, Value>, f: &str| {
            r.get(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        for (object, name, value) in [
            (Object::Contact, "LastName", "Title"),
            (Object::Event, "Subject", "Location"),
        ] {
            let table = match object {
                Object::Contact => "Contact",
                Object::Event => "Event",
            };
            for r in self.sf.handle().records(table) {
                let owner = text(&r, "OwnerId");
                let Some(rep) = self.rep_ids.iter().position(|id| *id == owner) else {
                    continue;
                };
                out.entry(text(&r, name)).or_default().push(Seen {
                    rep,
                    object,
                    side: Side::Salesforce,
                    id: text(&r, "Id"),
                    value: text(&r, value),
                });
            }
        }
        out
    }

    /// Runs tether in the scratch directory with the org's secrets, off the async runtime
    /// the emulators run on.
    pub async fn tether(&self, args: &[&str]) -> Output {
        self.org.tether(args, PASSWORD).await
    }

    /// Requests that may write (Exchange creates, updates, deletes, folder creates;
    /// Salesforce collections and single-record calls) served so far.
    pub fn writes(&self) -> u64 {
        let ews: u64 = ["CreateItem", "UpdateItem", "DeleteItem", "CreateFolder"]
            .iter()
            .map(|op| self.ews.calls(op))
            .sum();
        let sf = self.sf.handle().served();
        ews + sf.get("collection").copied().unwrap_or(0) + sf.get("sobject").copied().unwrap_or(0)
    }

    /// `tether errors --format json`.
    pub async fn errors(&self) -> Vec<ErrorRow> {
        let out = self.tether(&["errors", "org", "--format", "json"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        out.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| ErrorRow {
                rep: s(&r["rep"]),
                object: r["object"].as_str().map(str::to_string),
                record_ids: r["record_ids"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default(),
                code: s(&r["code"]),
                message: s(&r["message"]),
                suggestion: s(&r["suggestion"]),
            })
            .collect()
    }

    /// The records the next plan would write: (action, id) for each, from
    /// `tether plan --format json --detail`; empty when it says "No changes".
    pub async fn planned(&self) -> BTreeSet<(String, String)> {
        let out = self
            .tether(&["plan", "org", "--format", "json", "--detail"])
            .await;
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let doc = out.json();
        let mut set = BTreeSet::new();
        for rc in doc["record_changes"].as_array().unwrap() {
            for r in rc["records"].as_array().into_iter().flatten() {
                let action = r["action"].as_str().unwrap_or_default().to_string();
                if action == "link" {
                    continue;
                }
                set.insert((action, r["id"].as_str().unwrap_or_default().to_string()));
            }
        }
        assert_eq!(
            set.is_empty(),
            doc["summary"]["no_changes"] == true,
            "plan: {doc:#}"
        );
        set
    }

    /// Sorts every record into synced (exactly one copy on each side, values equal) or not.
    pub fn tally(&self) -> Tally {
        let seen = self.observe();
        let mut t = Tally::default();
        for (key, source) in &self.sources {
            let copies = seen.get(key).cloned().unwrap_or_default();
            let on = |side| copies.iter().filter(|c| c.side == side).count();
            let (ex, sf) = (on(Side::Exchange), on(Side::Salesforce));
            assert!(
                ex <= 1 && sf <= 1,
                "{key} is duplicated: {ex} in Exchange, {sf} in Salesforce: {copies:#?}"
            );
            let origin = copies.iter().find(|c| c.side == source.side);
            assert!(origin.is_some(), "{key} was lost from {:?}", source.side);
            assert!(
                copies.iter().all(|c| c.rep == source.rep),
                "{key} moved to another rep: {copies:#?}"
            );
            let values: BTreeSet<&str> = copies.iter().map(|c| c.value.as_str()).collect();
            if ex == 1 && sf == 1 && values.len() == 1 {
                t.synced.insert(key.clone());
                if values.first().copied() != self.expected.get(key).map(String::as_str) {
                    t.stale.insert(key.clone());
                }
            } else {
                t.unsynced.insert(key.clone());
            }
        }
        // Nothing appeared that no one made.
        for (key, copies) in &seen {
            assert!(
                self.sources.contains_key(key),
                "unexpected record {key}: {copies:#?}"
            );
        }
        t
    }

    /// Which unsynced records `tether errors` accounts for: named by id, or covered by an
    /// error about their whole rep.
    pub fn explained(&self, unsynced: &BTreeSet<String>, errors: &[ErrorRow]) -> BTreeSet<String> {
        let seen = self.observe();
        unsynced
            .iter()
            .filter(|key| {
                let source = &self.sources[*key];
                let ids: Vec<&str> = std::iter::once(source.id.as_str())
                    .chain(seen.get(*key).into_iter().flatten().map(|c| c.id.as_str()))
                    .collect();
                errors.iter().any(|e| {
                    let whole_rep = e.record_ids.is_empty()
                        && e.rep.eq_ignore_ascii_case(&self.reps[source.rep]);
                    whole_rep || e.record_ids.iter().any(|r| ids.contains(&r.as_str()))
                })
            })
            .cloned()
            .collect()
    }
}

impl std::ops::Deref for World {
    type Target = Org;
    fn deref(&self) -> &Org {
        &self.org
    }
}

/// What a look at both sides found.
#[derive(Debug, Default)]
pub struct Tally {
    pub synced: BTreeSet<String>,
    /// Synced, but not to the latest edit.
    pub stale: BTreeSet<String>,
    pub unsynced: BTreeSet<String>,
}

pub fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TEST_EWS_PASSWORD", PASSWORD),
        ("TEST_SF_SECRET", SF_SECRET),
    ]
}

/// A `tether` process running in the background (a `run` service, an `apply` to signal),
/// its output lines collected as they come; killed when dropped.
pub struct Background {
    pub child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// How long a test waits for a background tether to get somewhere: generous, since the
/// machine may be loaded; nothing passes or fails by a fixed sleep.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

impl Background {
    /// Starts tether with `args` in `dir`, with the emulated org's secrets.
    pub fn start(dir: &std::path::Path, args: &[&str]) -> Background {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(args)
            .current_dir(dir)
            .envs(secrets())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start tether");
        let mut readers = Vec::new();
        let mut collect = |stream: Box<dyn std::io::Read + Send>| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let into = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    into.lock().unwrap().push(line);
                }
            }));
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Background {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Polls until `done` holds, failing (with the output so far) after [`PATIENCE`] or
    /// when the process ends first.
    pub async fn wait_until(&mut self, what: &str, mut done: impl FnMut(&Background) -> bool) {
        let started = std::time::Instant::now();
        while !done(self) {
            let ended = self.child.try_wait().unwrap();
            assert!(
                ended.is_none() && started.elapsed() < PATIENCE,
                "{what}: not seen ({}), stdout:\n{}\nstderr:\n{}",
                match ended {
                    Some(status) => format!("tether ended: {status}"),
                    None => format!("waited {PATIENCE:?}"),
                },
                self.stdout().join("\n"),
                self.stderr().join("\n")
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits for a line of stdout containing `needle`; returns it.
    pub async fn line(&mut self, needle: &str) -> String {
        self.wait_until(&format!("a line with {needle:?}"), |b| {
            b.stdout().iter().any(|l| l.contains(needle))
        })
        .await;
        self.stdout()
            .into_iter()
            .find(|l| l.contains(needle))
            .unwrap()
    }

    /// SIGTERM, then the exit code once it ends (after [`PATIENCE`]: a failure).
    pub async fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(term.success());
        self.exit_code().await
    }

    /// The exit code once it ends by itself, with its output read to the end.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                for reader in self.readers.drain(..) {
                    reader.join().unwrap();
                }
                return status.code();
            }
            assert!(started.elapsed() < PATIENCE, "tether did not end");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
