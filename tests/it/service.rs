//! `tether run` as a service beside CI's `apply`: the lock is held per cycle, so an apply
//! from another process gets through while run goes on, and run's next cycle syncs with the
//! configuration just applied; `/metrics` is valid Prometheus text, `/healthz` tells a
//! failed cycle; SIGTERM stops an `apply` at a batch boundary, recorded, exit 0.

use crate::cli_world::{Background, Side, World};
use std::collections::BTreeMap;

/// The events line of cli_world's configuration: taken out for the first apply, put back
/// for the second.
const EVENTS: &str = "    events: { direction: both, conflict: exchange_wins, since: TODAY }\n";

fn config(w: &World) -> std::path::PathBuf {
    w.scratch.path("org/tether.yaml")
}

/// `http://ADDR` from run's "serving /healthz and /metrics on http://ADDR".
async fn served_at(run: &mut Background) -> String {
    let line = run.line("serving /healthz and /metrics on ").await;
    line.rsplit(' ').next().unwrap().to_string()
}

async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_while_run_goes_gets_through_and_the_next_cycle_uses_the_new_configuration() {
    let mut w = World::start(1).await;
    let yaml = std::fs::read_to_string(config(&w)).unwrap();
    assert!(yaml.contains(EVENTS), "{yaml}");
    std::fs::write(config(&w), yaml.replace(EVENTS, "")).unwrap();
    let first = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);

    let mut run = Background::start(
        &w.dir(),
        &["run", "org", "--interval", "1s", "--listen", "127.0.0.1:0"],
    );
    let base = served_at(&mut run).await;
    run.line(" cycle: ").await;

    // CI applies the events while run keeps cycling: it waits at most for a cycle in
    // flight, then gets the lock.
    std::fs::write(config(&w), &yaml).unwrap();
    let apply = w
        .tether(&["apply", "org", "--auto-approve", "--lock-timeout", "2m"])
        .await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply
            .stdout
            .contains("+ sync configuration \"Reps\": events"),
        "{}",
        apply.stdout
    );
    // An event made in Salesforce after the apply reaches Exchange only through run's
    // next cycle, and only if that cycle syncs events.
    let key = w.add_event(0, Side::Salesforce);
    run.wait_until("the new event synced by run", |_| {
        w.observe()
            .get(&key)
            .is_some_and(|copies| copies.iter().any(|c| c.side == Side::Exchange))
    })
    .await;
    assert!(
        run.stdout()
            .iter()
            .any(|l| l.starts_with("using the configuration applied ")),
        "{:?}",
        run.stdout()
    );
    let t = w.tally();
    assert!(t.unsynced.is_empty(), "{:?}", t.unsynced);

    let (code, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(m.types["tether_cycle_duration_seconds"], "histogram");
    assert!(
        m.value("tether_cycles_total", &[("outcome", "ok")]) >= 2.0,
        "{text}"
    );
    assert_eq!(
        m.value("tether_cycles_total", &[("outcome", "failed")]),
        0.0
    );
    assert!(
        m.value(
            "tether_records_synced_total",
            &[("object", "event"), ("direction", "salesforce_to_exchange")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        m.value(
            "tether_api_calls_total",
            &[("side", "salesforce"), ("kind", "query")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        m.value(
            "tether_api_calls_total",
            &[("side", "exchange"), ("kind", "SyncFolderItems")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        m.value("tether_salesforce_api_budget_remaining", &[]) > 0.0,
        "{text}"
    );
    assert!(m.value("tether_lock_wait_seconds_total", &[]) >= 0.0);
    assert!(m.value("tether_cycle_duration_seconds_count", &[]) >= 2.0);

    let (code, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["last_cycle"]["outcome"], "ok");

    assert_eq!(run.terminate().await, Some(0), "{:?}", run.stderr());
    assert_eq!(
        run.stdout().last().map(String::as_str),
        Some("stopping: the last cycle finished and its state is saved"),
        "{:?}",
        run.stdout()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_fails_when_the_last_cycle_failed() {
    let w = World::start(1).await;
    let apply = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    // Salesforce refuses every request for a while: no cycle can read it.
    w.sf.handle().fail_next(&[400; 1000]);
    let mut run = Background::start(
        &w.dir(),
        &["run", "org", "--interval", "1h", "--listen", "127.0.0.1:0"],
    );
    let base = served_at(&mut run).await;
    run.wait_until("the failed cycle", |r| {
        r.stderr().iter().any(|l| l.contains(" cycle failed: "))
    })
    .await;
    let (code, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "last cycle failed", "{health:#}");
    assert_eq!(health["last_cycle"]["outcome"], "failed");
    assert!(
        health["last_cycle"]["error"]
            .as_str()
            .unwrap()
            .starts_with("Salesforce could not be read"),
        "{health:#}"
    );
    let (_, text) = get(&format!("{base}/metrics")).await;
    let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        m.value("tether_cycles_total", &[("outcome", "failed")]),
        1.0
    );
    assert_eq!(m.value("tether_failures_total", &[("kind", "cycle")]), 1.0);
    assert_eq!(run.terminate().await, Some(0));
}

/// SIGTERM to an `apply` while it writes: the batch in flight finishes and is recorded,
/// apply exits 0 saying so, and the next plan shows what is left (nothing duplicated).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_apply_finishes_the_batch_in_flight_and_the_next_plan_shows_the_rest() {
    let mut w = World::start_with(
        6,
        tether_emulators::exchange::EmulatorOptions {
            latency: Some(std::time::Duration::from_millis(40)),
            ..Default::default()
        },
    )
    .await;
    let first = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    w.seed(6);
    let batches = 2 * w.reps.len() as u64; // Salesforce → Exchange creates: contacts, events
    let creates_before = w.ews.calls("CreateItem");
    let mut apply = Background::start(&w.dir(), &["apply", "org", "--auto-approve"]);
    apply
        .wait_until("the first Exchange write", |_| {
            w.ews.calls("CreateItem") > creates_before
        })
        .await;
    assert_eq!(apply.terminate().await, Some(0), "{:?}", apply.stderr());
    assert!(
        apply.stdout().iter().any(|l| l
            == "Stopped on request: the batch in flight finished and is recorded; run `tether plan` to see what is left."),
        "{:?}",
        apply.stdout()
    );
    let written = w.ews.calls("CreateItem") - creates_before;
    assert!(
        written < batches,
        "{written} of {batches} batches: not stopped"
    );
    let partial = w.tally(); // panics on a duplicate
    assert!(!partial.synced.is_empty() && !partial.unsynced.is_empty());
    // Every record written is recorded: the next plan shows only the rest.
    let planned = w.planned().await;
    let synced_ids: Vec<String> = w
        .observe()
        .iter()
        .filter(|(key, _)| partial.synced.contains(*key))
        .flat_map(|(_, copies)| copies.iter().map(|c| c.id.clone()))
        .collect();
    assert!(!planned.is_empty(), "the next plan shows the rest");
    assert!(
        planned.iter().all(|(_, id)| !synced_ids.contains(id)),
        "a record written before the stop is planned again: {planned:?}"
    );
    let again = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let t = w.tally();
    assert!(t.unsynced.is_empty(), "{:?}", t.unsynced);
}

/// A service whose state stays locked past --lock-timeout skips that cycle (saying so, and
/// counting it), and syncs again once the lock is free.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_cycle_that_cannot_get_the_lock_is_skipped_and_the_next_one_syncs() {
    let w = World::start(1).await;
    let apply = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    // Held by this test process, which lives.
    let held = tether::lock::acquire(&w.state_path(), "apply", chrono::Utc::now()).unwrap();
    let mut run = Background::start(
        &w.dir(),
        &[
            "run",
            "org",
            "--interval",
            "1s",
            "--lock-timeout",
            "1s",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let base = served_at(&mut run).await;
    run.wait_until("a skipped cycle", |r| {
        r.stderr().iter().any(|l| {
            l.contains(" cycle skipped: the state is still locked after waiting 1s: `apply` by ")
        })
    })
    .await;
    assert!(
        run.stderr()
            .iter()
            .any(|l| l == &format!("waiting up to 1s for the state lock, held by {}", held.info)),
        "{:?}",
        run.stderr()
    );
    let (code, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 503);
    drop(held);
    run.line(" cycle: ").await;
    let (_, text) = get(&format!("{base}/metrics")).await;
    let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        m.value("tether_failures_total", &[("kind", "lock")]) >= 1.0,
        "{text}"
    );
    assert!(
        m.value("tether_lock_wait_seconds_total", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        m.value("tether_cycles_total", &[("outcome", "ok")]) >= 1.0,
        "{text}"
    );
    assert_eq!(run.terminate().await, Some(0), "{:?}", run.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn log_format_json_writes_one_object_per_event() {
    let w = World::start(1).await;
    let apply = w.tether(&["apply", "org", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let dir = w.dir();
    let out = tokio::task::spawn_blocking(move || {
        let mut env = crate::cli_world::secrets();
        env.push(("RUST_LOG", "tether=info"));
        crate::common::tether_with_env(
            &["run", "org", "--once", "--log-format", "json"],
            &dir,
            &env,
        )
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let cycle = events
        .iter()
        .find(|e| e["message"] == "cycle finished")
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert_eq!(cycle["level"], "INFO");
    assert!(
        cycle["timestamp"].is_string() && cycle["written"].is_u64(),
        "{cycle}"
    );
}

/// A strict reader of Prometheus' text exposition format (version 0.0.4), written here
/// rather than taken from a crate: the parsers on crates.io are made to scrape leniently
/// (they skip what they do not understand), and this test is there to catch exactly that.
/// It refuses a malformed name, label or value, a TYPE after its samples or twice, a family
/// split apart, a series given twice, and a histogram whose buckets are not cumulative or
/// whose `+Inf` bucket is not its count.
mod prometheus {
    use super::BTreeMap;

    pub type Labels = BTreeMap<String, String>;

    #[derive(Debug, Default)]
    pub struct Exposition {
        pub types: BTreeMap<String, String>,
        pub samples: BTreeMap<(String, Labels), f64>,
    }

    impl Exposition {
        /// The sample `name{labels}`; panics when absent.
        pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
            let labels: Labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            *self
                .samples
                .get(&(name.to_string(), labels.clone()))
                .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.samples))
        }
    }

    fn valid_name(name: &str, colons: bool) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
    }

    fn value(text: &str) -> Result<f64, String> {
        match text {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => text
                .parse::<f64>()
                .ok()
                .filter(|_| !text.contains(['i', 'I', 'n', 'N']))
                .ok_or(format!("`{text}` is not a value")),
        }
    }

    /// `{a="1",b="x\"y"}` (after the name) → labels and what follows.
    fn labels(text: &str) -> Result<(Labels, &str), String> {
        let mut labels = Labels::new();
        let Some(mut rest) = text.strip_prefix('{') else {
            return Ok((labels, text));
        };
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok((labels, after));
            }
            let (name, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
            if !valid_name(name, false) || name.starts_with("__") {
                return Err(format!("bad label name `{name}`"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("an unterminated label value")? {
                    (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("unknown escape \\{c}")),
                    },
                    (i, '"') => break i,
                    (_, '\n') => return Err("a newline in a label value".into()),
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(name.to_string(), value).is_some() {
                return Err(format!("label `{name}` twice"));
            }
            rest = &after[end + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected , or }} at `{rest}`"));
            }
        }
    }

    /// The family a sample belongs to: its name less a histogram's suffix.
    fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && types
                    .get(base)
                    .is_some_and(|t| t == "histogram" || t == "summary")
            {
                return base;
            }
        }
        name
    }

    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        let mut helped = std::collections::BTreeSet::new();
        let mut finished = std::collections::BTreeSet::<String>::new();
        let mut current: Option<String> = None;
        if !text.ends_with('\n') {
            return Err("the exposition does not end with a newline".into());
        }
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: `{line}`", n + 1);
            let mut enter = |name: &str, current: &mut Option<String>| -> Result<(), String> {
                if current.as_deref() != Some(name) {
                    if finished.contains(name) {
                        return Err(format!("family {name} is split apart"));
                    }
                    if let Some(done) = current.take() {
                        finished.insert(done);
                    }
                    *current = Some(name.to_string());
                }
                Ok(())
            };
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
                match words[..] {
                    ["HELP", name, _] | ["HELP", name] => {
                        if !valid_name(name, true) || !helped.insert(name.to_string()) {
                            return Err(at("a bad or second HELP".into()));
                        }
                        enter(name, &mut current).map_err(at)?;
                    }
                    ["TYPE", name, kind] => {
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                        {
                            return Err(at(format!("unknown type {kind}")));
                        }
                        if out
                            .samples
                            .keys()
                            .any(|(s, _)| family(s, &out.types) == name)
                            || out
                                .types
                                .insert(name.to_string(), kind.to_string())
                                .is_some()
                        {
                            return Err(at("TYPE after samples, or twice".into()));
                        }
                        enter(name, &mut current).map_err(at)?;
                    }
                    _ => {} // a plain comment
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..name_end];
            if !valid_name(name, true) {
                return Err(at(format!("bad metric name `{name}`")));
            }
            let (labels, rest) = labels(&line[name_end..]).map_err(at)?;
            let fields: Vec<&str> = rest.trim_start_matches(' ').split(' ').collect();
            let v = match fields[..] {
                [v] => value(v),
                [v, ts] if ts.parse::<i64>().is_ok() => value(v),
                _ => Err("expected a value and an optional timestamp".into()),
            }
            .map_err(at)?;
            let base = family(name, &out.types).to_string();
            if out.types.get(&base).is_some_and(|t| t == "counter") && v < 0.0 {
                return Err(at("a negative counter".into()));
            }
            enter(&base, &mut current).map_err(at)?;
            if out.samples.insert((name.to_string(), labels), v).is_some() {
                return Err(at("a series given twice".into()));
            }
        }
        for (name, _) in out.types.iter().filter(|(_, t)| *t == "histogram") {
            check_histogram(&out, name)?;
        }
        Ok(out)
    }

    /// Buckets cumulative in `le` order, `+Inf` present and equal to `_count`, `_sum` there.
    fn check_histogram(out: &Exposition, name: &str) -> Result<(), String> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for ((sample, labels), v) in &out.samples {
            if *sample == bucket {
                let le = labels.get("le").ok_or(format!("{bucket} without le"))?;
                buckets.push((value(le)?, *v));
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{name}: buckets are not cumulative: {buckets:?}"));
        }
        let inf = buckets
            .last()
            .filter(|b| b.0 == f64::INFINITY)
            .ok_or(format!("{name}: no +Inf bucket"))?
            .1;
        let get = |s: &str| {
            out.samples
                .get(&(format!("{name}{s}"), Labels::new()))
                .copied()
        };
        if get("_count") != Some(inf) || get("_sum").is_none() {
            return Err(format!("{name}: _count is not the +Inf bucket, or no _sum"));
        }
        Ok(())
    }

    #[test]
    fn the_parser_refuses_what_the_format_does_not_allow() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 1\n\
                    # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
        let parsed = parse(good).unwrap();
        assert_eq!(parsed.value("a_total", &[("k", "v\"")]), 1.0);
        for (bad, why) in [
            ("a 1", "no final newline"),
            ("1a 1\n", "bad name"),
            ("a{k=\"v} 1\n", "unterminated value"),
            ("a{k=\"\\x\"} 1\n", "unknown escape"),
            ("a{k=\"1\",k=\"2\"} 1\n", "label twice"),
            ("a one\n", "not a number"),
            ("a 1\na 2\n", "series twice"),
            ("a 1\n# TYPE a gauge\n", "TYPE after samples"),
            ("a 1\nb 1\na{x=\"1\"} 1\n", "family split"),
            ("# TYPE a counter\na -1\n", "negative counter"),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                "not cumulative",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
                "count is not +Inf",
            ),
        ] {
            assert!(parse(bad).is_err(), "accepted ({why}): {bad}");
        }
    }
}
