//! `tether run --listen ADDR`: what a service manager and Prometheus ask of a running sync.
//! `/healthz` answers 200 while the last cycle succeeded and is recent (503 otherwise, with
//! why), `/metrics` the counters of this process in Prometheus' text format (version 0.0.4).

use crate::engine::cycle::CycleReport;
use crate::engine::plan::Side;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds of the cycle duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The last cycle, as `/healthz` reports it.
#[derive(Debug, Clone)]
struct LastCycle {
    finished: Instant,
    finished_at: DateTime<Utc>,
    /// Why it failed; `None` when it succeeded.
    error: Option<String>,
}

/// Everything this process counted since it started.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Older than this, the last cycle (or the start, before one) makes `/healthz` fail.
    stale_after: Duration,
    cycles: BTreeMap<&'static str, u64>,
    synced: BTreeMap<(&'static str, &'static str), u64>,
    failures: BTreeMap<&'static str, u64>,
    api_calls: BTreeMap<(&'static str, String), u64>,
    /// Salesforce's daily API requests (used, max) at the last response, and how many of
    /// them tether may still use (its `api_budget_percent` share, else the whole limit).
    api_usage: Option<(u64, u64, u64)>,
    lock_wait: Duration,
    durations: [u64; DURATION_BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    last: Option<LastCycle>,
}

/// Shared between the cycle loop and the HTTP server.
pub type Shared = Arc<Mutex<Metrics>>;

/// What one cycle did, for [`Metrics::record`].
pub struct CycleOutcome<'a> {
    /// How long the cycle took once it held the lock; `None` for one skipped before it
    /// started (not in the duration histogram).
    pub duration: Option<Duration>,
    pub lock_wait: Duration,
    /// The report, or the kind of failure (`cycle`, `lock`, `config`) and what it was.
    pub result: Result<&'a CycleReport, (&'static str, String)>,
    /// API calls made during the cycle: (side, kind) → count.
    pub api_calls: BTreeMap<(&'static str, String), u64>,
    pub api_usage: Option<(u64, u64, u64)>,
}

impl Metrics {
    pub fn new(interval: Duration) -> Shared {
        Arc::new(Mutex::new(Metrics {
            started: Instant::now(),
            stale_after: interval.saturating_mul(3),
            cycles: BTreeMap::new(),
            synced: BTreeMap::new(),
            failures: BTreeMap::new(),
            api_calls: BTreeMap::new(),
            api_usage: None,
            lock_wait: Duration::ZERO,
            durations: [0; DURATION_BUCKETS.len()],
            duration_sum: 0.0,
            duration_count: 0,
            last: None,
        }))
    }

    pub fn record(&mut self, cycle: CycleOutcome<'_>) {
        let ok = cycle.result.is_ok();
        *self
            .cycles
            .entry(if ok { "ok" } else { "failed" })
            .or_default() += 1;
        self.lock_wait += cycle.lock_wait;
        if let Some(duration) = cycle.duration {
            let secs = duration.as_secs_f64();
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    self.durations[i] += 1;
                }
            }
            self.duration_sum += secs;
            self.duration_count += 1;
        }
        for (key, n) in cycle.api_calls {
            *self.api_calls.entry(key).or_default() += n;
        }
        if cycle.api_usage.is_some() {
            self.api_usage = cycle.api_usage;
        }
        match &cycle.result {
            Ok(report) => {
                for ((object, side), n) in &report.exec.written_to {
                    let direction = match side {
                        Side::Salesforce => "exchange_to_salesforce",
                        Side::Exchange => "salesforce_to_exchange",
                    };
                    *self.synced.entry((object.name(), direction)).or_default() += n;
                }
                let mut fail = |kind, n: usize| {
                    if n > 0 {
                        *self.failures.entry(kind).or_default() += n as u64;
                    }
                };
                fail("record_write", report.exec.failed.len());
                fail("rep_read", report.read.rep_errors.len());
                fail("rep_problem", report.read.problems.len());
            }
            Err((kind, _)) => *self.failures.entry(kind).or_default() += 1,
        }
        self.last = Some(LastCycle {
            finished: Instant::now(),
            finished_at: Utc::now(),
            error: cycle.result.err().map(|(_, message)| message),
        });
    }

    /// `/healthz`: the status code and a JSON body saying why.
    pub fn health(&self) -> (StatusCode, serde_json::Value) {
        let since = self.last.as_ref().map_or(self.started, |l| l.finished);
        let age = since.elapsed();
        let stale = age > self.stale_after;
        let (status, healthy) = match &self.last {
            None if stale => ("no cycle finished yet", false),
            None => ("starting", true),
            Some(l) if l.error.is_some() => ("last cycle failed", false),
            Some(_) if stale => ("last cycle too old", false),
            Some(_) => ("ok", true),
        };
        let body = serde_json::json!({
            "status": status,
            "stale_after_seconds": self.stale_after.as_secs(),
            "last_cycle": self.last.as_ref().map(|l| serde_json::json!({
                "finished_at": l.finished_at.to_rfc3339(),
                "age_seconds": age.as_secs(),
                "outcome": if l.error.is_some() { "failed" } else { "ok" },
                "error": l.error,
            })),
        });
        let code = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, body)
    }

    /// `/metrics` in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (suffix_and_labels, value) in samples {
                let _ = writeln!(out, "{name}{suffix_and_labels} {value}");
            }
        };
        let labels = |pairs: &[(&str, &str)]| -> String {
            if pairs.is_empty() {
                return String::new();
            }
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        };
        // Both outcomes always, so a rate over them is defined from the start.
        family(
            "tether_cycles_total",
            "counter",
            "Sync cycles finished, by outcome.",
            ["ok", "failed"]
                .iter()
                .map(|o| {
                    let n = self.cycles.get(o).copied().unwrap_or(0);
                    (labels(&[("outcome", o)]), n.to_string())
                })
                .collect(),
        );
        family(
            "tether_records_synced_total",
            "counter",
            "Records written, by object and direction.",
            self.synced
                .iter()
                .map(|((object, direction), n)| {
                    (
                        labels(&[("object", object), ("direction", direction)]),
                        n.to_string(),
                    )
                })
                .collect(),
        );
        family(
            "tether_failures_total",
            "counter",
            "Failures, by kind: record_write (a record not written), rep_read (a mailbox not read), rep_problem (a rep not synced, e.g. no Salesforce user), cycle (a whole cycle), lock (a cycle skipped: the state stayed locked), config (a cycle skipped: the applied configuration cannot be used).",
            self.failures
                .iter()
                .map(|(kind, n)| (labels(&[("kind", kind)]), n.to_string()))
                .collect(),
        );
        family(
            "tether_api_calls_total",
            "counter",
            "HTTP requests sent, by side and kind (retries included).",
            self.api_calls
                .iter()
                .map(|((side, kind), n)| (labels(&[("side", side), ("kind", kind)]), n.to_string()))
                .collect(),
        );
        let usage = |pick: fn(&(u64, u64, u64)) -> u64| {
            self.api_usage
                .iter()
                .map(|u| (String::new(), pick(u).to_string()))
                .collect()
        };
        family(
            "tether_salesforce_api_requests_used",
            "gauge",
            "The org's daily API requests used, as of the last Salesforce response.",
            usage(|u| u.0),
        );
        family(
            "tether_salesforce_api_requests_max",
            "gauge",
            "The org's daily API request limit.",
            usage(|u| u.1),
        );
        family(
            "tether_salesforce_api_budget_remaining",
            "gauge",
            "Daily API requests tether may still use (its api_budget_percent share of the limit, else the whole limit).",
            usage(|u| u.2),
        );
        family(
            "tether_lock_wait_seconds_total",
            "counter",
            "Time spent waiting for the state lock held by another tether.",
            vec![(String::new(), self.lock_wait.as_secs_f64().to_string())],
        );
        let mut histogram: Vec<(String, String)> = DURATION_BUCKETS
            .iter()
            .zip(self.durations)
            .map(|(bound, n)| {
                (
                    format!("_bucket{}", labels(&[("le", &bound.to_string())])),
                    n.to_string(),
                )
            })
            .collect();
        histogram.push((
            format!("_bucket{}", labels(&[("le", "+Inf")])),
            self.duration_count.to_string(),
        ));
        histogram.push(("_sum".into(), self.duration_sum.to_string()));
        histogram.push(("_count".into(), self.duration_count.to_string()));
        family(
            "tether_cycle_duration_seconds",
            "histogram",
            "How long sync cycles took, from taking the lock to recording the result.",
            histogram,
        );
        let last = self
            .last
            .iter()
            .map(|l| (String::new(), l.finished_at.timestamp().to_string()))
            .collect();
        family(
            "tether_last_cycle_timestamp_seconds",
            "gauge",
            "When the last cycle finished (Unix time).",
            last,
        );
        out
    }
}

/// A label value as the text format writes it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The API calls made since `before`: (side, kind) → count.
pub fn calls_since(
    before: &BTreeMap<(&'static str, String), u64>,
    now: &BTreeMap<(&'static str, String), u64>,
) -> BTreeMap<(&'static str, String), u64> {
    now.iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0).min(*n)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The API calls made so far by `connectors`, per side and kind.
pub fn calls(connectors: &crate::workflow::Connectors) -> BTreeMap<(&'static str, String), u64> {
    let salesforce = connectors
        .crm
        .client()
        .call_counts()
        .into_iter()
        .map(|(k, n)| (("salesforce", k.name().to_string()), n));
    let exchange = connectors
        .mail
        .calls()
        .into_iter()
        .map(|(k, n)| (("exchange", k), n));
    salesforce.chain(exchange).collect()
}

/// Salesforce's daily usage (used, max, left for tether), as of the last response.
pub fn api_usage(connectors: &crate::workflow::Connectors) -> Option<(u64, u64, u64)> {
    let client = connectors.crm.client();
    let usage = client.api_usage()?;
    let share = client.options().api_budget.unwrap_or(1.0);
    let allowed = (usage.max as f64 * share).floor() as u64;
    Some((usage.used, usage.max, allowed.saturating_sub(usage.used)))
}

/// Serves `/healthz` and `/metrics` from `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Shared) {
    let health = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(move || async move {
                let (code, body) = lock(&health).health();
                (code, axum::Json(body))
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || async move {
                let text = lock(&metrics).render();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
                    .into_response()
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the /healthz and /metrics server stopped");
    }
}

/// Counts a cycle in `metrics`.
pub fn record(metrics: &Shared, cycle: CycleOutcome<'_>) {
    lock(metrics).record(cycle);
}

fn lock(metrics: &Shared) -> std::sync::MutexGuard<'_, Metrics> {
    metrics.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_fails_after_a_failed_cycle_and_recovers_after_a_good_one() {
        let metrics = Metrics::new(Duration::from_secs(600));
        let mut m = lock(&metrics);
        assert_eq!(m.health().0, StatusCode::OK, "starting");
        m.record(CycleOutcome {
            duration: Some(Duration::from_secs(2)),
            lock_wait: Duration::ZERO,
            result: Err(("cycle", "Salesforce could not be read".into())),
            api_calls: BTreeMap::new(),
            api_usage: None,
        });
        let (code, body) = m.health();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "last cycle failed");
        assert_eq!(body["last_cycle"]["error"], "Salesforce could not be read");
        let text = m.render();
        assert!(
            text.contains("tether_failures_total{kind=\"cycle\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tether_cycle_duration_seconds_bucket{le=\"1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("tether_cycle_duration_seconds_bucket{le=\"5\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn health_fails_when_the_last_cycle_is_too_old() {
        let metrics = Metrics::new(Duration::ZERO);
        let m = lock(&metrics);
        std::thread::sleep(Duration::from_millis(5));
        let (code, body) = m.health();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "no cycle finished yet");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
