//! The benchmark behind `tether-bench`: a generated org in the in-process emulators, synced by
//! the real engine, connectors and SQLite state over loopback HTTP, measured phase by phase
//! (initial sync, a no-change cycle, `plan` on the no-change state, an incremental cycle with
//! a share of records changed on each side) against DESIGN.md's performance model and the
//! targets of issue 6.
//!
//! The emulators run in a child process by default ([`emulators`]): CPU time and peak RSS
//! are then tether's own, and the emulators' are reported beside them; in process
//! (`--emulators in-process`) the figures include theirs (they hold the org in memory).
//! Each phase starts by resetting the high-water mark (`/proc/self/clear_refs`), and the
//! report also gives the growth over the resident size at the phase's start. [`sweep`]
//! runs the benchmark over several org sizes and fits how each figure grows.

pub mod emulators;
pub mod sweep;

use crate::clock::SystemClock;
use crate::config::model::Config;
use crate::engine::connector::{CrmConnector, MailConnector};
use crate::engine::cycle::{CycleReport, SyncOptions, run_cycle};
use crate::engine::execute::StepBudget;
use crate::engine::plan::{Action, Side};
use crate::mail::MailSide;
use crate::model::ObjectKind;
use crate::plan::build::BuildOptions;
use crate::state::{ConfigRevision, SqliteState, StateChange, StateStore};
use crate::workflow::{self, Connectors};
use emulators::{Edit, Emulators, Placement, Served, Setup};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tether_emulators::generate::{self, Shape, Summary};
use tether_emulators::seed;

/// The Exchange face the benchmark syncs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Ews,
    Graph,
}

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    /// EWS or Microsoft Graph (`api: graph`) on the Exchange side.
    pub api: Api,
    pub reps: usize,
    pub contacts_per_rep: usize,
    pub events_per_rep: usize,
    pub seed: u64,
    /// Share of synced records changed on each side before the incremental cycle, in %.
    pub change_percent: f64,
    /// Where the emulators run (a separate process: the figures are tether's own).
    pub emulators: Placement,
}

/// API calls of one phase on one side, by kind, against the performance model's floor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calls {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub floor: u64,
    /// total / floor.
    pub ratio: f64,
    /// Over Graph: the requests carried inside the `$batch` calls (not calls themselves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_items: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub wall_seconds: f64,
    /// CPU time of the benchmark's process: tether (engine, connectors, SQLite), and the
    /// emulators too when they run in process.
    pub cpu_seconds: f64,
    /// Records the phase synced: linked pairs after an initial sync, changed records in an
    /// incremental one, records in sync for no-change phases.
    pub records: u64,
    pub records_per_second: f64,
    /// Records written (both sides).
    pub written: u64,
    pub failed: u64,
    /// Operations the phase planned (0 for a no-change phase that is right).
    pub planned_changes: u64,
    /// The benchmark's process, as `cpu_seconds`.
    pub peak_rss_mb: f64,
    pub rss_growth_mb: f64,
    /// The emulators' process, when they run apart.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub emulators: Option<EmulatorsUse>,
    pub salesforce: Calls,
    pub exchange: Calls,
}

/// What the emulators' process used in one phase.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct EmulatorsUse {
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
    /// How far off, when missed; what the figure was measured at, when not at the target's size.
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub params: Params,
    pub cpus: usize,
    /// /proc/loadavg when the run started: other work on the machine slows wall times.
    pub load_average: String,
    /// Reps whose configuration syncs (every generated rep).
    pub synced_reps: usize,
    pub generated: Summary,
    pub generate_seconds: f64,
    /// The benchmark's resident size once the org is generated: mostly the emulators'
    /// copy of it when they run in process.
    pub rss_after_generate_mb: f64,
    /// The emulators' resident size then, when they run apart.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub emulators_rss_after_generate_mb: Option<f64>,
    pub phases: Vec<Phase>,
    /// After the incremental cycle, `plan` found nothing left to do.
    pub converged: bool,
    pub targets: Vec<Target>,
}

/// Counters of both sides at one moment.
struct Counters {
    salesforce: BTreeMap<String, u64>,
    exchange: BTreeMap<String, u64>,
    /// Over Graph, the requests inside `$batch` calls so far (0 over EWS).
    batch_items: u64,
}

/// A phase's memory: the benchmark's peak and growth over its start (MB), and the
/// emulators' use when they run apart.
struct Footprint {
    peak: f64,
    growth: f64,
    emulators: Option<EmulatorsUse>,
}

/// The EWS emulator's operations; over Graph, the client's HTTP requests by kind (the
/// emulator counts a `$batch`'s items under their own kinds as well, so the difference
/// between its count and the client's is the items carried in batches).
fn counters(served: Served, mail: &MailSide, api: Api) -> Counters {
    let salesforce = served.salesforce;
    match api {
        Api::Ews => Counters {
            salesforce,
            exchange: served.exchange,
            batch_items: 0,
        },
        Api::Graph => {
            let sent = mail.calls();
            let served = served.graph;
            let beside_batch = |c: &BTreeMap<String, u64>, batch: &str| {
                c.iter()
                    .filter(|(k, _)| *k != "token" && *k != batch)
                    .map(|(_, v)| v)
                    .sum::<u64>()
            };
            let batch_items =
                beside_batch(&served, "batch").saturating_sub(beside_batch(&sent, "$batch"));
            let exchange = sent
                .into_iter()
                .map(|(k, v)| {
                    let kind = match k.as_str() {
                        "delta" => "delta pages".to_string(),
                        _ => k,
                    };
                    (kind, v)
                })
                .collect();
            Counters {
                salesforce,
                exchange,
                batch_items,
            }
        }
    }
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn calls(by_kind: BTreeMap<String, u64>, floor: u64, batch_items: Option<u64>) -> Calls {
    let total = by_kind.values().sum();
    Calls {
        batch_items,
        total,
        by_kind,
        floor,
        ratio: if floor == 0 {
            0.0
        } else {
            total as f64 / floor as f64
        },
    }
}

/// Peak and current resident set size (VmHWM, VmRSS) in MB, from /proc/self/status.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime (fields 14 and 15; 11 and 12 after the name), in USER_HZ (100).
    (ticks(11) + ticks(12)) / 100.0
}

/// Starts a new high-water mark (Linux: "5" to clear_refs resets VmHWM to the current RSS).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn div_ceil(n: u64, d: usize) -> u64 {
    n.div_ceil(d as u64)
}

/// The configuration the benchmark syncs under: every rep, both objects both ways, every
/// kind of event (series and private ones too).
fn config_yaml(org: &Setup, api: Api) -> String {
    let exchange = match api {
        Api::Ews => format!(
            "    method: service_account\n    ews_url: {}\n    username: {}\n    password: ${{file:ews-password}}\n",
            org.ews_url,
            seed::SERVICE_ACCOUNT
        ),
        // The reps' addresses are @example.com; the tenant is named by its id.
        Api::Graph => format!(
            "    method: oauth2\n    api: graph\n    tenant: {}\n    client_id: {}\n    client_secret: ${{file:graph-secret}}\n    token_url: {}\n    graph_url: {}\n    additional_domains: [example.com]\n",
            org.graph_tenant,
            seed::GRAPH_CLIENT_ID,
            org.graph_token_url,
            org.graph_url
        ),
    };
    format!(
        r#"version: 1
org: {{ name: bench, kind: production }}
connections:
  exchange:
{exchange}  salesforce:
    instance_url: {sf}
    login_url: {sf}
    auth:
      flow: client_credentials
      client_id: {client}
      client_secret: ${{file:sf-secret}}
sync_configurations:
  - name: Everyone
    members:
      profiles: [{user}, {manager}]
    contacts:
      direction: both
      conflict: salesforce_wins
      scope: users_records
    events:
      direction: both
      conflict: exchange_wins
      since: TODAY
      sync_series: true
      sync_private: true
"#,
        sf = org.salesforce_url,
        client = seed::CLIENT_ID,
        user = generate::SALES_USER,
        manager = generate::SALES_MANAGER,
    )
}

struct Bench {
    api: Api,
    emulators: Emulators,
    config: Config,
    connectors: Connectors,
    state: SqliteState,
}

/// A scratch directory removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(params: &Params, progress: &dyn Fn(&str)) -> Result<Report, String> {
    let work = WorkDir(std::env::temp_dir().join(format!(
        "tether-bench-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    )));
    std::fs::create_dir_all(&work.0).map_err(|e| format!("{}: {e}", work.0.display()))?;

    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    progress("starting the emulators and generating the org");
    let shape = Shape {
        reps: params.reps.max(1),
        contacts_per_rep: params.contacts_per_rep,
        events_per_rep: params.events_per_rep,
        seed: params.seed,
    };
    // The emulators' process is this program again (see `emulators::serve`).
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find the benchmark's own program: {e}"))?;
    let mut emulators = Emulators::start(params.emulators, &shape, &program).await?;
    let generate_seconds = emulators.setup.generate_seconds;
    let generated = emulators.setup.generated.clone();
    let rss_after_generate_mb = rss_mb().1;
    let emulators_rss_after_generate_mb = emulators.usage()?.map(|u| u.rss_mb);

    let write = |name: &str, body: &str| {
        std::fs::write(work.0.join(name), body).map_err(|e| format!("{name}: {e}"))
    };
    write("ews-password", seed::SANDBOX_EXCHANGE_PASSWORD)?;
    write("sf-secret", seed::SANDBOX_CLIENT_SECRET)?;
    write("graph-secret", seed::SANDBOX_GRAPH_CLIENT_SECRET)?;
    write("bench.yaml", &config_yaml(&emulators.setup, params.api))?;
    let validation = crate::config::validate(&[work.0.join("bench.yaml")], true);
    let Some((unit, Some(config))) = validation.units.into_iter().next() else {
        return Err("the benchmark's configuration is not valid".into());
    };
    let connectors =
        workflow::open(&config, &unit.home, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
    let mut state = SqliteState::open(&work.0.join("state.db")).map_err(|e| e.to_string())?;
    let (canonical, hash) = ConfigRevision::canonical(&config);
    state
        .apply(vec![StateChange::RecordApply {
            canonical,
            hash,
            applied_at: chrono::Utc::now(),
            applied_by: "tether-bench".into(),
        }])
        .map_err(|e| e.to_string())?;
    let mut bench = Bench {
        api: params.api,
        emulators,
        config,
        connectors,
        state,
    };

    let mut phases = Vec::new();
    progress("initial sync");
    phases.push(bench.initial().await?);
    // The first cycle after a sync reads back what the sync wrote (Exchange reports tether's
    // own creates and updates as changes, and so does SystemModstamp): it plans nothing but
    // costs reads. Then a cycle where nothing changed at all.
    progress("next cycle (reads back the initial sync's writes)");
    phases.push(bench.no_change_cycle("next cycle (own writes)").await?);
    progress("no-change cycle");
    phases.push(bench.no_change_cycle("no-change cycle").await?);
    progress("plan on the no-change state");
    phases.push(bench.no_change_plan().await?);
    progress("incremental cycle");
    phases.push(bench.incremental(params.change_percent).await?);
    progress("checking convergence");
    let (_, converged) = bench.plan().await?;

    let mut report = Report {
        params: params.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average,
        synced_reps: bench.emulators.setup.emails.len(),
        generated,
        generate_seconds,
        rss_after_generate_mb,
        emulators_rss_after_generate_mb,
        phases,
        converged,
        targets: Vec::new(),
    };
    report.targets = targets(&report);
    Ok(report)
}

/// The fewest calls that write what a plan writes to one side: each kind of write (create,
/// update, delete) of each object in batches of `batch`, org-wide on the Salesforce side and
/// per mailbox on the Exchange side (an EWS call acts in one mailbox).
fn write_floor(report: &CycleReport, side: Side, batch: usize) -> u64 {
    let mut groups: HashMap<(ObjectKind, &str, &str), u64> = HashMap::new();
    for op in &report.plan.operations {
        if op.action.writes_to() != Some(side) {
            continue;
        }
        let kind = match op.action {
            Action::CreateInSalesforce { .. } | Action::CreateInExchange { .. } => "create",
            Action::UpdateSalesforce { .. } | Action::UpdateExchange { .. } => "update",
            _ => "delete",
        };
        let rep = if side == Side::Exchange {
            op.rep.as_str()
        } else {
            ""
        };
        *groups.entry((op.object, kind, rep)).or_default() += 1;
    }
    groups.values().map(|n| div_ceil(*n, batch)).sum()
}

/// The fewest EWS calls that read every rep's two folders in full, per rep: the
/// Salesforce_Sync folder found once; per folder its feed in pages of 512 and its items
/// fetched in batches of `batch`.
fn ews_read_floor(sizes: &[(u64, u64)], batch: u64) -> u64 {
    sizes
        .iter()
        .map(|(contacts, events)| {
            1 + [contacts, events]
                .iter()
                .map(|n| (**n).div_ceil(512).max(1) + (**n).div_ceil(batch))
                .sum::<u64>()
        })
        .sum()
}

/// Graph's page size (`Prefer: odata.maxpagesize`) as the connector asks for it.
const GRAPH_PAGE: u64 = 100;

/// The fewest Graph requests that read every rep's two folders in full (see
/// bench/README.md): one token for the run; per rep the Salesforce_Sync folder found, its
/// contacts' delta in pages of [`GRAPH_PAGE`] and the changed contacts read by id in
/// `$batch`es of [`MAILBOX_CONCURRENCY`](crate::graph::client::MAILBOX_CONCURRENCY); the
/// calendar listed in pages, and its `calendarView/delta` round started (at least one page).
fn graph_read_floor(sizes: &[(u64, u64)]) -> u64 {
    let batch = crate::graph::client::MAILBOX_CONCURRENCY as u64;
    1 + sizes
        .iter()
        .map(|(contacts, events)| {
            1 + contacts.div_ceil(GRAPH_PAGE).max(1)
                + contacts.div_ceil(batch)
                + events.div_ceil(GRAPH_PAGE).max(1)
                + 1
        })
        .sum::<u64>()
}

/// A no-change cycle over Graph, per rep: one delta page per folder (contacts, calendar)
/// and the Salesforce_Sync folder looked up once (the connector checks, on each new read,
/// that the folder is still the rep's: Graph's delta of a folder moved to Deleted Items
/// goes on as before). The token is reused: no token request.
fn graph_quiet_floor(reps: u64) -> u64 {
    3 * reps
}

/// Event relations the plan asks for (auto-relate on first sync).
fn relations(report: &CycleReport) -> u64 {
    report
        .plan
        .operations
        .iter()
        .map(|op| match &op.action {
            Action::CreateInSalesforce { relate, .. } => relate.len() as u64,
            _ => 0,
        })
        .sum()
}

impl Bench {
    async fn cycle(&mut self) -> Result<CycleReport, String> {
        run_cycle(
            &self.config,
            &self.connectors.mail,
            &self.connectors.crm,
            &mut self.state,
            chrono::Utc::now(),
            &SyncOptions::default(),
            &mut StepBudget::unlimited(),
        )
        .await
        .map_err(|e| workflow::cycle_error(&e))
    }

    fn linked(&self) -> Result<u64, String> {
        let mut n = 0;
        for id in &self.emulators.setup.rep_ids {
            for object in ObjectKind::ALL {
                n += self
                    .state
                    .links(id, object)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .filter(|(_, l)| !l.is_detached())
                    .count() as u64;
            }
        }
        Ok(n)
    }

    /// Runs `work` as a measured phase.
    async fn measure<F, T>(
        &mut self,
        work: F,
    ) -> Result<(T, (f64, f64), Counters, Footprint), String>
    where
        F: AsyncFnOnce(&mut Bench) -> Result<T, String>,
    {
        let before = counters(self.emulators.served()?, &self.connectors.mail, self.api);
        self.emulators.reset_peak()?;
        let emulators_before = self.emulators.usage()?;
        reset_peak_rss();
        let (_, rss_start) = rss_mb();
        let cpu = cpu_seconds();
        let t = Instant::now();
        let out = work(self).await?;
        let wall = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let (peak, _) = rss_mb();
        let emulators = emulators_before
            .zip(self.emulators.usage()?)
            .map(|(b, a)| EmulatorsUse {
                cpu_seconds: a.cpu_seconds - b.cpu_seconds,
                peak_rss_mb: a.peak_rss_mb,
            });
        let after = counters(self.emulators.served()?, &self.connectors.mail, self.api);
        let used = Counters {
            salesforce: delta(&after.salesforce, &before.salesforce),
            exchange: delta(&after.exchange, &before.exchange),
            batch_items: after.batch_items - before.batch_items,
        };
        let footprint = Footprint {
            peak,
            growth: (peak - rss_start).max(0.0),
            emulators,
        };
        Ok((out, wall, used, footprint))
    }

    async fn initial(&mut self) -> Result<Phase, String> {
        let counts = self.emulators.records(&["Contact", "Event", "User"])?;
        let (sf_records, users) = (&counts[..2], counts.get(2).copied().unwrap_or(0));
        let sizes = self.emulators.folder_sizes()?;
        let (report, wall, used, rss) = self.measure(async |b| b.cycle().await).await?;
        let records = self.linked()?;
        // Salesforce: a token, the users, every record read in pages of 2,000, every
        // record written in collections of 200, the event relations too.
        let sf_floor = 1
            + div_ceil(users, 2000)
            + sf_records
                .iter()
                .map(|n| div_ceil(*n, 2000).max(1))
                .sum::<u64>()
            + write_floor(&report, Side::Salesforce, self.connectors.crm.batch_size())
            + div_ceil(relations(&report), self.connectors.crm.batch_size());
        let ews_floor = match self.api {
            Api::Ews => ews_read_floor(&sizes, self.connectors.mail.batch_size() as u64),
            Api::Graph => graph_read_floor(&sizes),
        } + write_floor(&report, Side::Exchange, self.mail_batch());
        Ok(self.phase(
            "initial sync",
            &report,
            records,
            wall,
            used,
            rss,
            sf_floor,
            ews_floor,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn phase(
        &self,
        name: &str,
        report: &CycleReport,
        records: u64,
        (wall, cpu): (f64, f64),
        used: Counters,
        footprint: Footprint,
        sf_floor: u64,
        ews_floor: u64,
    ) -> Phase {
        Phase {
            name: name.into(),
            wall_seconds: wall,
            cpu_seconds: cpu,
            records,
            records_per_second: records as f64 / wall.max(1e-9),
            written: report.exec.succeeded as u64,
            failed: report.exec.failed.len() as u64,
            planned_changes: report.plan.operations.len() as u64,
            peak_rss_mb: footprint.peak,
            rss_growth_mb: footprint.growth,
            emulators: footprint.emulators,
            salesforce: calls(used.salesforce, sf_floor, None),
            exchange: calls(
                used.exchange,
                ews_floor,
                (self.api == Api::Graph).then_some(used.batch_items),
            ),
        }
    }

    /// The no-change floor: the users and one read per object from Salesforce; one
    /// SyncFolderItems per synced folder per rep over EWS (see [`graph_quiet_floor`]).
    fn quiet_floors(&self) -> (u64, u64) {
        let reps = self.emulators.setup.emails.len() as u64;
        let mail = match self.api {
            Api::Ews => 2 * reps,
            Api::Graph => graph_quiet_floor(reps),
        };
        (1 + 2, mail)
    }

    /// Items per mail write or read by id: an EWS call's batch; over Graph, the items of a
    /// `$batch` (the connector sends at most the mailbox's concurrency in one).
    fn mail_batch(&self) -> usize {
        match self.api {
            Api::Ews => self.connectors.mail.batch_size(),
            Api::Graph => crate::graph::client::MAILBOX_CONCURRENCY,
        }
    }

    /// A cycle where nobody changed anything; `name` says which.
    async fn no_change_cycle(&mut self, name: &str) -> Result<Phase, String> {
        let (report, wall, used, rss) = self.measure(async |b| b.cycle().await).await?;
        let records = self.linked()?;
        let (sf_floor, ews_floor) = self.quiet_floors();
        Ok(self.phase(name, &report, records, wall, used, rss, sf_floor, ews_floor))
    }

    async fn no_change_plan(&mut self) -> Result<Phase, String> {
        let ((planned, no_changes), wall, used, rss) =
            self.measure(async |b| b.plan().await).await?;
        let records = self.linked()?;
        let (sf_floor, ews_floor) = self.quiet_floors();
        let report = CycleReport::default();
        let mut phase = self.phase(
            "plan (no change)",
            &report,
            records,
            wall,
            used,
            rss,
            sf_floor,
            ews_floor,
        );
        phase.planned_changes = if no_changes { 0 } else { planned.max(1) };
        Ok(phase)
    }

    /// `tether plan` now: the operations it plans, and whether it says "No changes".
    async fn plan(&self) -> Result<(u64, bool), String> {
        let p = workflow::plan(
            &self.config,
            &self.connectors,
            &self.state,
            chrono::Utc::now(),
            &SyncOptions::default(),
            &BuildOptions::default(),
        )
        .await?;
        Ok((
            p.plan.operations.len() as u64,
            p.document.summary.no_changes,
        ))
    }

    /// Edits every `100 / percent`th linked record: one on the Exchange side, another (half a
    /// step further on) on the Salesforce side, so the two sets do not overlap.
    fn edit_share(&mut self, percent: f64) -> Result<Vec<Edited>, String> {
        let step = ((100.0 / percent.clamp(0.01, 100.0)).round() as usize).max(2);
        let mut edits = Vec::new();
        let mut k = 0usize;
        for (r, rep_id) in self.emulators.setup.rep_ids.iter().enumerate() {
            for object in ObjectKind::ALL {
                let links = self
                    .state
                    .links(rep_id, object)
                    .map_err(|e| e.to_string())?;
                for (_, link) in links.iter().filter(|(_, l)| !l.is_detached()) {
                    let (Some(x), Some(s)) = (&link.exchange, &link.salesforce) else {
                        continue;
                    };
                    let edited = |in_exchange| Edited {
                        rep: r,
                        object,
                        in_exchange,
                    };
                    if k.is_multiple_of(step) {
                        let edit = Edit::Exchange {
                            rep: r,
                            item_id: x.item_id.clone(),
                            n: k,
                        };
                        edits.push((edit, edited(true)));
                    } else if k % step == step / 2 {
                        let (sobject, fields) = match object {
                            ObjectKind::Contact => (
                                "Contact",
                                serde_json::json!({"Title": format!("Manager {k}")}),
                            ),
                            // Graph mails a meeting's attendees when its place changes, which
                            // tether declines without `events.update_meetings`: over Graph the
                            // edit is one it writes without mailing anyone.
                            ObjectKind::Event => (
                                "Event",
                                match self.api {
                                    Api::Ews => {
                                        serde_json::json!({"Location": format!("Office {k}")})
                                    }
                                    Api::Graph => {
                                        serde_json::json!({"Description": format!("Agenda {k}")})
                                    }
                                },
                            ),
                        };
                        let edit = Edit::Salesforce {
                            sobject: sobject.into(),
                            id: s.id.clone(),
                            fields,
                        };
                        edits.push((edit, edited(false)));
                    }
                    k += 1;
                }
            }
        }
        let (requests, edited): (Vec<Edit>, Vec<Edited>) = edits.into_iter().unzip();
        let made = self.emulators.edit(requests)?;
        Ok(edited
            .into_iter()
            .zip(made)
            .filter_map(|(e, made)| made.then_some(e))
            .collect())
    }

    async fn incremental(&mut self, percent: f64) -> Result<Phase, String> {
        let edited = self.edit_share(percent)?;
        let (report, wall, used, rss) = self.measure(async |b| b.cycle().await).await?;
        // Salesforce: the no-change reads, plus the Exchange edits written in collections,
        // each collection's records' versions checked first (`Id, SystemModstamp`, 200 ids a
        // query) so that an edit made since the read is not overwritten.
        let mut to_salesforce: HashMap<ObjectKind, u64> = HashMap::new();
        // Exchange: one feed per folder per rep, and per folder with edits one GetItem
        // batch (Exchange edits) and one UpdateItem batch (Salesforce edits), the items'
        // versions checked first (one IdOnly GetItem batch).
        let mut per_folder: HashMap<(usize, ObjectKind, bool), u64> = HashMap::new();
        for e in &edited {
            if e.in_exchange {
                *to_salesforce.entry(e.object).or_default() += 1;
            }
            *per_folder
                .entry((e.rep, e.object, e.in_exchange))
                .or_default() += 1;
        }
        let sf_floor = self.quiet_floors().0
            + 2 * to_salesforce
                .values()
                .map(|n| div_ceil(*n, self.connectors.crm.batch_size()))
                .sum::<u64>();
        let ews_floor = self.quiet_floors().1
            + per_folder
                .iter()
                .map(|((_, _, in_exchange), n)| {
                    let batches = div_ceil(*n, self.mail_batch());
                    if *in_exchange { batches } else { 2 * batches }
                })
                .sum::<u64>();
        let changed = edited.len() as u64;
        Ok(self.phase(
            &format!("incremental ({percent}% each side)"),
            &report,
            changed,
            wall,
            used,
            rss,
            sf_floor,
            ews_floor,
        ))
    }
}

/// A record the benchmark changed: whose, which object, and on which side.
struct Edited {
    rep: usize,
    object: ObjectKind,
    in_exchange: bool,
}

/// The issue's targets against this run's figures.
fn targets(r: &Report) -> Vec<Target> {
    let phase = |prefix: &str| r.phases.iter().find(|p| p.name.starts_with(prefix));
    let mut out = Vec::new();
    let records: u64 = phase("initial").map_or(0, |p| p.records);
    let size_note = |target_records: u64| {
        if records < target_records {
            format!("measured at {records} records (target size {target_records})")
        } else {
            String::new()
        }
    };
    let join = |a: String, b: String| match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ => format!("{a}; {b}"),
    };
    if let Some(p) = phase("initial") {
        let ratio = p.salesforce.ratio;
        out.push(Target {
            name: "Salesforce calls, initial sync".into(),
            target: "≤ 1.1 × floor".into(),
            measured: format!(
                "{} calls, floor {}: {ratio:.2} ×",
                p.salesforce.total, p.salesforce.floor
            ),
            met: ratio <= 1.1,
            note: if ratio <= 1.1 {
                String::new()
            } else {
                format!("missed by {:.0}%", (ratio / 1.1 - 1.0) * 100.0)
            },
        });
        let rate = p.records_per_second;
        out.push(Target {
            name: "Throughput, initial sync".into(),
            target: "≥ 5,000 records/s".into(),
            measured: format!("{rate:.0} records/s"),
            met: rate >= 5000.0,
            note: if rate >= 5000.0 {
                String::new()
            } else {
                format!("missed: {:.1} × too slow", 5000.0 / rate.max(1e-9))
            },
        });
        let peak = r.phases.iter().map(|p| p.peak_rss_mb).fold(0.0, f64::max);
        out.push(Target {
            name: "Peak RSS".into(),
            target: "< 300 MB at 1,000,000 records".into(),
            measured: format!(
                "{peak:.0} MB ({})",
                match r.params.emulators {
                    Placement::InProcess => "emulators included",
                    Placement::SeparateProcess => "tether alone",
                }
            ),
            met: peak < 300.0 && records >= 1_000_000,
            note: join(
                if peak < 300.0 {
                    String::new()
                } else {
                    format!("over by {:.0} MB", peak - 300.0)
                },
                size_note(1_000_000),
            ),
        });
    }
    if let Some(p) = phase("no-change cycle") {
        let total = p.salesforce.total;
        out.push(Target {
            name: "Salesforce calls, no-change cycle".into(),
            target: "≤ 4, whatever the number of reps".into(),
            measured: format!("{total} calls for {} reps", r.synced_reps),
            met: total <= 4,
            note: if total <= 4 {
                String::new()
            } else {
                format!("missed by {} calls", total - 4)
            },
        });
        let feed = match r.params.api {
            Api::Ews => "SyncFolderItems",
            Api::Graph => "delta pages",
        };
        let sync = p.exchange.by_kind.get(feed).copied().unwrap_or(0);
        let folders = 2 * r.synced_reps as u64;
        let per = sync as f64 / folders.max(1) as f64;
        out.push(Target {
            name: format!("{feed} per synced folder per rep, no-change cycle"),
            target: "1".into(),
            measured: format!("{per:.2} ({sync} calls, {folders} folders)"),
            met: sync <= folders,
            note: if sync <= folders {
                String::new()
            } else {
                format!("missed by {} calls", sync - folders)
            },
        });
    }
    if let Some(p) = phase("plan") {
        let s = p.wall_seconds;
        out.push(Target {
            name: "plan on a no-change state".into(),
            target: "< 5 s at 1,000 reps × 1,500 records".into(),
            measured: format!(
                "{s:.2} s for {} reps × {} records",
                r.synced_reps,
                p.records / r.synced_reps.max(1) as u64
            ),
            met: s < 5.0 && p.records >= 1_500_000,
            note: join(
                if s < 5.0 {
                    String::new()
                } else {
                    format!("over by {:.1} s", s - 5.0)
                },
                if p.records < 1_500_000 {
                    format!(
                        "measured at {} records in sync (target size 1,500,000)",
                        p.records
                    )
                } else {
                    String::new()
                },
            ),
        });
    }
    out
}

fn fmt_kinds(k: &BTreeMap<String, u64>) -> String {
    k.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as a table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let p = &r.params;
    s.push_str(&format!(
        "tether-bench over {}: {} reps × ({} contacts + {} events) per rep, seed {}; {} CPUs, load average {} at the start; org generated in {:.1} s, {:.0} MB resident then{}\n",
        match p.api { Api::Ews => "EWS", Api::Graph => "Graph" }, p.reps, p.contacts_per_rep, p.events_per_rep, p.seed, r.cpus, r.load_average, r.generate_seconds, r.rss_after_generate_mb,
        r.emulators_rss_after_generate_mb.map_or(String::new(), |m| format!(" (the emulators' process: {m:.0} MB)"))
    ));
    let g = &r.generated;
    s.push_str(&format!(
        "  Salesforce: {} contacts, {} events, {} leads, {} accounts; Exchange: {} Salesforce_Sync contacts ({} matched), {} calendar items\n\n",
        g.salesforce_contacts, g.salesforce_events, g.leads, g.accounts, g.sync_folder_contacts, g.matched_contacts, g.exchange_events()
    ));
    s.push_str(match p.emulators {
        Placement::InProcess => {
            "  The emulators run in this process: CPU s and peak MB include theirs.\n\n"
        }
        Placement::SeparateProcess => {
            "  The emulators run in a process of their own: CPU s and peak MB are tether's; emu CPU s and emu MB theirs.\n\n"
        }
    });
    s.push_str(&format!(
        "{:<28} {:>8} {:>7} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>7} {:>16} {:>18}\n",
        "phase",
        "wall s",
        "CPU s",
        "records",
        "records/s",
        "written",
        "changes",
        "peak MB",
        "emu CPU s",
        "emu MB",
        "SF calls/floor",
        match p.api {
            Api::Ews => "EWS calls/floor",
            Api::Graph => "Graph calls/floor",
        }
    ));
    for ph in &r.phases {
        s.push_str(&format!(
            "{:<28} {:>8.2} {:>7.2} {:>9} {:>10.0} {:>8} {:>8} {:>8.0} {:>9} {:>7} {:>16} {:>18}\n",
            ph.name,
            ph.wall_seconds,
            ph.cpu_seconds,
            ph.records,
            ph.records_per_second,
            ph.written,
            ph.planned_changes,
            ph.peak_rss_mb,
            ph.emulators
                .map_or("—".to_string(), |e| format!("{:.2}", e.cpu_seconds)),
            ph.emulators
                .map_or("—".to_string(), |e| format!("{:.0}", e.peak_rss_mb)),
            format!(
                "{}/{} {:.2}×",
                ph.salesforce.total, ph.salesforce.floor, ph.salesforce.ratio
            ),
            format!(
                "{}/{} {:.2}×",
                ph.exchange.total, ph.exchange.floor, ph.exchange.ratio
            ),
        ));
    }
    s.push_str("\nCalls by kind\n");
    for ph in &r.phases {
        s.push_str(&format!(
            "  {:<28} Salesforce: {}\n  {:<28} Exchange:   {}\n",
            ph.name,
            fmt_kinds(&ph.salesforce.by_kind),
            "",
            fmt_kinds(&ph.exchange.by_kind)
        ));
        if let Some(items) = ph.exchange.batch_items {
            let batches = ph.exchange.by_kind.get("$batch").copied().unwrap_or(0);
            s.push_str(&format!(
                "  {:<28} items in $batch: {items} ({:.2} per $batch)\n",
                "",
                items as f64 / batches.max(1) as f64
            ));
        }
        if r.synced_reps > 0 && ph.name.starts_with("no-change") {
            s.push_str(&format!(
                "  {:<28} per rep: {:.2} Salesforce, {:.2} Exchange\n",
                "",
                ph.salesforce.total as f64 / r.synced_reps as f64,
                ph.exchange.total as f64 / r.synced_reps as f64
            ));
        }
    }
    s.push_str(&format!(
        "\nConverged after the incremental cycle: {}\n\nTargets\n",
        if r.converged {
            "yes (plan: no changes)"
        } else {
            "NO (plan still has changes)"
        }
    ));
    for t in &r.targets {
        s.push_str(&format!(
            "  [{}] {:<58} target {:<36} measured {}{}\n",
            if t.met { "met " } else { "miss" },
            t.name,
            t.target,
            t.measured,
            if t.note.is_empty() {
                String::new()
            } else {
                format!(" — {}", t.note)
            }
        ));
    }
    s
}

/// Writes a report (a run's or a sweep's) as pretty JSON, creating the directory.
pub fn write_json<T: Serialize>(r: &T, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let body = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(path, body + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_read_floor_counts_a_token_then_per_rep_folder_pages_and_batches_of_four() {
        // 1 token; rep 1: folder 1 + contacts delta 1 + ceil(10/4) = 3 $batch + calendar
        // list 1 + calendar delta 1 = 7; rep 2 (250 contacts, 101 events): 1 + 3 + 63 + 2 +
        // 1 = 70; rep 3, empty: folder, a delta page each, the list page = 4.
        assert_eq!(
            graph_read_floor(&[(10, 5), (250, 101), (0, 0)]),
            1 + 7 + 70 + 4
        );
        assert_eq!(graph_read_floor(&[]), 1);
    }

    #[test]
    fn graph_quiet_floor_is_three_requests_per_rep_and_no_token() {
        assert_eq!(graph_quiet_floor(0), 0);
        assert_eq!(graph_quiet_floor(500), 1500);
    }

    #[test]
    fn ews_read_floor_is_unchanged_by_the_graph_split() {
        // Per rep: 1 + (ceil(600/512) + ceil(600/20)) + (1 + 0) = 1 + 32 + 1.
        assert_eq!(ews_read_floor(&[(600, 0)], 20), 34);
    }
}
