//! The emulators the benchmark syncs against, in this process or in a child process of
//! their own (`tether-bench --serve-emulators`), so that the CPU time and peak memory the
//! benchmark reports are tether's alone and the emulators' are reported apart. Either way
//! the benchmark reaches them over loopback HTTP as a real deployment reaches Exchange and
//! Salesforce, and asks them the same few questions beside it (requests served, folder
//! sizes, edits to make, their own usage), in process by a call, across processes as one
//! JSON line each way over the child's stdin and stdout.

use super::{cpu_seconds, reset_peak_rss, rss_mb};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use tether_emulators::exchange::model::Item;
use tether_emulators::generate::{self, Shape, Summary};
use tether_emulators::seed::{self, SandboxOrg};

/// Where the emulators run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// In the benchmark's process: its CPU and memory figures include theirs.
    InProcess,
    /// In a child process: tether's figures are its own, the emulators' reported apart.
    SeparateProcess,
}

/// The generated org as the benchmark needs to know it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    pub ews_url: String,
    pub graph_url: String,
    pub graph_token_url: String,
    pub graph_tenant: String,
    pub salesforce_url: String,
    /// Per rep, in `generate::reps` order: mailbox, Salesforce user id, Salesforce_Sync
    /// folder id.
    pub emails: Vec<String>,
    pub rep_ids: Vec<String>,
    pub sync_folders: Vec<String>,
    pub generated: Summary,
    pub generate_seconds: f64,
}

/// Requests each emulator has served so far, by kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Served {
    pub salesforce: BTreeMap<String, u64>,
    /// The EWS emulator's operations.
    pub exchange: BTreeMap<String, u64>,
    /// The Graph face's requests (a `$batch`'s items counted under their own kinds too).
    pub graph: BTreeMap<String, u64>,
}

/// The emulators' process: CPU seconds so far, and resident sizes in MB.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
    pub rss_mb: f64,
}

/// A change the benchmark makes to an org as a user would (not through tether).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Edit {
    /// In a rep's mailbox: a contact's job title becomes "Director {n}", an event's
    /// location "Room {n}".
    Exchange {
        rep: usize,
        item_id: String,
        n: usize,
    },
    Salesforce {
        sobject: String,
        id: String,
        fields: serde_json::Value,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Served,
    /// Items now in each rep's (Salesforce_Sync, Calendar) folders.
    FolderSizes,
    /// Live Salesforce records of each object named.
    Records(Vec<String>),
    /// Makes the edits; answers which were made.
    Edit(Vec<Edit>),
    /// Starts a new peak resident size (Linux `clear_refs`).
    ResetPeak,
    Usage,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Served(Served),
    FolderSizes(Vec<(u64, u64)>),
    Records(Vec<u64>),
    Edited(Vec<bool>),
    Usage(Usage),
    Done,
}

/// The emulators and the generated org, answering the benchmark's requests.
pub struct Host {
    org: SandboxOrg,
    setup: Setup,
}

impl Host {
    /// Starts both emulators on free ports and generates an org of `shape`.
    pub async fn start(shape: &Shape) -> Result<Host, String> {
        let started = std::time::Instant::now();
        let mut org = seed::start_empty(0, 0).await?;
        // A benchmark org may spend far more than a real org's daily allowance.
        org.salesforce.handle().set_daily_allowance(u64::MAX / 2);
        let reps = generate::reps(shape);
        org.rep_ids = generate::add_reps(&org.exchange, org.salesforce.handle(), &reps);
        let generated = generate::populate(
            &org.exchange,
            org.salesforce.handle(),
            shape,
            &reps,
            &org.rep_ids,
            chrono::Utc::now(),
        )?;
        let sync_folders = reps
            .iter()
            .map(|r| generate::sync_folder(&org.exchange, &r.email))
            .collect::<Result<Vec<_>, _>>()?;
        let setup = Setup {
            ews_url: org.exchange.ews_url(),
            graph_url: org.exchange.graph_url(),
            graph_token_url: org.exchange.graph_token_url(),
            graph_tenant: org.exchange.graph_tenant().to_string(),
            salesforce_url: org.salesforce.url().to_string(),
            emails: reps.into_iter().map(|r| r.email).collect(),
            rep_ids: org.rep_ids.clone(),
            sync_folders,
            generated,
            generate_seconds: started.elapsed().as_secs_f64(),
        };
        Ok(Host { org, setup })
    }

    fn handle(&self, request: Request) -> Reply {
        let sf = self.org.salesforce.handle();
        let exchange = &self.org.exchange;
        match request {
            Request::Served => Reply::Served(Served {
                salesforce: sf.served(),
                exchange: exchange.all_calls().into_iter().collect(),
                graph: exchange.graph_calls(),
            }),
            Request::FolderSizes => Reply::FolderSizes(
                self.setup
                    .emails
                    .iter()
                    .zip(&self.setup.sync_folders)
                    .map(|(email, folder)| {
                        let calendar = exchange.folder_id(email, "calendar").unwrap_or_default();
                        (
                            exchange.items(email, folder).len() as u64,
                            exchange.items(email, &calendar).len() as u64,
                        )
                    })
                    .collect(),
            ),
            Request::Records(objects) => {
                Reply::Records(objects.iter().map(|o| sf.records(o).len() as u64).collect())
            }
            Request::Edit(edits) => Reply::Edited(
                edits
                    .into_iter()
                    .map(|edit| match edit {
                        Edit::Exchange { rep, item_id, n } => {
                            let Some(email) = self.setup.emails.get(rep) else {
                                return false;
                            };
                            exchange
                                .edit_item(email, &item_id, |item| match item {
                                    Item::Contact(c) => c.job_title = Some(format!("Director {n}")),
                                    Item::Event(e) => e.location = Some(format!("Room {n}")),
                                    Item::Other(_) => {}
                                })
                                .is_some()
                        }
                        Edit::Salesforce {
                            sobject,
                            id,
                            fields,
                        } => sf.update(&sobject, &id, fields).is_ok(),
                    })
                    .collect(),
            ),
            Request::ResetPeak => {
                reset_peak_rss();
                Reply::Done
            }
            Request::Usage => {
                let (peak_rss_mb, rss_mb) = rss_mb();
                Reply::Usage(Usage {
                    cpu_seconds: cpu_seconds(),
                    peak_rss_mb,
                    rss_mb,
                })
            }
        }
    }
}

/// The child's side: starts the emulators with an org of `shape`, writes the [`Setup`] as
/// one JSON line on stdout, then answers one request per stdin line until stdin closes.
/// The runtime's worker threads serve HTTP meanwhile.
pub fn serve(shape: &Shape) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let host = runtime.block_on(Host::start(shape))?;
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot answer the benchmark: {e}"))
    };
    say(serde_json::to_string(&host.setup).map_err(|e| e.to_string())?)?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read the benchmark's request: {e}"))?;
        let request: Request = serde_json::from_str(&line)
            .map_err(|e| format!("not a benchmark request: {e}: {line}"))?;
        say(serde_json::to_string(&host.handle(request)).map_err(|e| e.to_string())?)?;
    }
    Ok(())
}

/// The child process running the emulators, and the pipes to it.
struct ChildHost {
    child: Child,
    /// Closed (None) on drop: the child's end of stdin, its signal to stop.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ChildHost {
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err(format!(
                "the emulators' process (pid {}) ended (its errors are above)",
                self.child.id()
            )),
            Ok(_) => Ok(line),
            Err(e) => Err(format!("cannot read from the emulators' process: {e}")),
        }
    }
}

impl Drop for ChildHost {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulators, wherever they run.
pub struct Emulators {
    host: Where,
    pub setup: Setup,
}

enum Where {
    InProcess(Box<Host>),
    Child(ChildHost),
}

impl Emulators {
    /// Starts the emulators with an org of `shape`; in a separate process, `program` (this
    /// benchmark's own executable) run with `--serve-emulators` and the shape.
    pub async fn start(
        placement: Placement,
        shape: &Shape,
        program: &std::path::Path,
    ) -> Result<Emulators, String> {
        match placement {
            Placement::InProcess => {
                let host = Host::start(shape).await?;
                let setup = host.setup.clone();
                Ok(Emulators {
                    host: Where::InProcess(Box::new(host)),
                    setup,
                })
            }
            Placement::SeparateProcess => {
                let mut child = Command::new(program)
                    .arg("--serve-emulators")
                    .args(["--reps", &shape.reps.to_string()])
                    .args(["--contacts", &shape.contacts_per_rep.to_string()])
                    .args(["--events", &shape.events_per_rep.to_string()])
                    .args(["--seed", &shape.seed.to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| {
                        format!(
                            "cannot start the emulators' process {}: {e}",
                            program.display()
                        )
                    })?;
                let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                    let _ = child.kill();
                    return Err("the emulators' process has no pipes".into());
                };
                let mut host = ChildHost {
                    child,
                    stdin: Some(stdin),
                    stdout: BufReader::new(stdout),
                };
                let line = host.line()?;
                let setup = serde_json::from_str(&line)
                    .map_err(|e| format!("the emulators' process did not start: {e}: {line}"))?;
                Ok(Emulators {
                    host: Where::Child(host),
                    setup,
                })
            }
        }
    }

    pub fn placement(&self) -> Placement {
        match self.host {
            Where::InProcess(_) => Placement::InProcess,
            Where::Child(_) => Placement::SeparateProcess,
        }
    }

    fn ask(&mut self, request: Request) -> Result<Reply, String> {
        match &mut self.host {
            Where::InProcess(host) => Ok(host.handle(request)),
            Where::Child(child) => {
                let line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
                child
                    .stdin
                    .as_mut()
                    .ok_or("the emulators' process is closed")?
                    .write_all(format!("{line}\n").as_bytes())
                    .map_err(|e| format!("cannot reach the emulators' process: {e}"))?;
                let answer = child.line()?;
                serde_json::from_str(&answer)
                    .map_err(|e| format!("the emulators' process answered {answer}: {e}"))
            }
        }
    }

    pub fn served(&mut self) -> Result<Served, String> {
        match self.ask(Request::Served)? {
            Reply::Served(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    pub fn folder_sizes(&mut self) -> Result<Vec<(u64, u64)>, String> {
        match self.ask(Request::FolderSizes)? {
            Reply::FolderSizes(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Live Salesforce records of each object.
    pub fn records(&mut self, objects: &[&str]) -> Result<Vec<u64>, String> {
        match self.ask(Request::Records(
            objects.iter().map(|o| o.to_string()).collect(),
        ))? {
            Reply::Records(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// Makes the edits; answers, per edit, whether it was made.
    pub fn edit(&mut self, edits: Vec<Edit>) -> Result<Vec<bool>, String> {
        match self.ask(Request::Edit(edits))? {
            Reply::Edited(made) => Ok(made),
            other => Err(unexpected(&other)),
        }
    }

    /// Starts a new peak for the emulators' process (in process: nothing apart to measure).
    pub fn reset_peak(&mut self) -> Result<(), String> {
        if matches!(self.host, Where::InProcess(_)) {
            return Ok(());
        }
        self.ask(Request::ResetPeak).map(|_| ())
    }

    /// The emulators' own usage, when they run apart.
    pub fn usage(&mut self) -> Result<Option<Usage>, String> {
        if matches!(self.host, Where::InProcess(_)) {
            return Ok(None);
        }
        match self.ask(Request::Usage)? {
            Reply::Usage(u) => Ok(Some(u)),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(reply: &Reply) -> String {
    format!("the emulators answered another request: {reply:?}")
}
