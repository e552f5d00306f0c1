//! `tether-bench --sweep 50,100,200`: the benchmark at several org sizes, each run in a
//! process of its own (so that each size's peak memory is its own), and how each figure
//! grows with the org: the exponent `b` of a least-squares fit of `y = a·xᵇ` on a log-log
//! scale over the synced records (1: proportional; 0: flat; records/s should stay near 0).

use super::{Phase, Report};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// One size's figures, from its report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub reps: usize,
    /// Records in sync after the initial sync.
    pub records: u64,
    pub initial_wall_seconds: f64,
    pub initial_records_per_second: f64,
    /// tether's peak over every phase (the benchmark's process; emulators included when
    /// they ran in it).
    pub peak_rss_mb: f64,
    /// The emulators' peak over every phase, when they ran apart.
    pub emulators_peak_rss_mb: Option<f64>,
    /// Initial sync: calls and the floor, per side.
    pub salesforce_calls: u64,
    pub salesforce_floor: u64,
    pub exchange_calls: u64,
    pub exchange_floor: u64,
    /// A no-change cycle's calls, per side.
    pub no_change_salesforce_calls: u64,
    pub no_change_exchange_calls: u64,
    pub converged: bool,
}

/// How one figure grows with the synced records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fit {
    pub figure: String,
    /// `b` in `y = a·recordsᵇ`; None when there are fewer than two sizes to fit.
    pub exponent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sweep {
    pub points: Vec<Point>,
    pub fits: Vec<Fit>,
    /// Every size's full report.
    pub reports: Vec<Report>,
}

impl Point {
    pub fn of(r: &Report) -> Point {
        let phase = |prefix: &str| r.phases.iter().find(|p| p.name.starts_with(prefix));
        let initial = phase("initial");
        let quiet = phase("no-change cycle");
        let peak = |f: fn(&Phase) -> Option<f64>| r.phases.iter().filter_map(f).reduce(f64::max);
        Point {
            reps: r.synced_reps,
            records: initial.map_or(0, |p| p.records),
            initial_wall_seconds: initial.map_or(0.0, |p| p.wall_seconds),
            initial_records_per_second: initial.map_or(0.0, |p| p.records_per_second),
            peak_rss_mb: peak(|p| Some(p.peak_rss_mb)).unwrap_or(0.0),
            emulators_peak_rss_mb: peak(|p| p.emulators.map(|e| e.peak_rss_mb)),
            salesforce_calls: initial.map_or(0, |p| p.salesforce.total),
            salesforce_floor: initial.map_or(0, |p| p.salesforce.floor),
            exchange_calls: initial.map_or(0, |p| p.exchange.total),
            exchange_floor: initial.map_or(0, |p| p.exchange.floor),
            no_change_salesforce_calls: quiet.map_or(0, |p| p.salesforce.total),
            no_change_exchange_calls: quiet.map_or(0, |p| p.exchange.total),
            converged: r.converged,
        }
    }
}

/// The exponent `b` of the least-squares line through `(ln x, ln y)`: `y` grows as `xᵇ`.
/// None without two distinct positive `x` (points with a non-positive `x` or `y` have no
/// logarithm and are left out).
pub fn growth_exponent(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    (logs.len() >= 2 && sxx > 1e-12).then(|| sxy / sxx)
}

/// The fits of a sweep's points, figure by figure.
pub fn fits(points: &[Point]) -> Vec<Fit> {
    type Figure = (&'static str, fn(&Point) -> f64);
    let figures: [Figure; 6] = [
        ("initial sync records/s", |p| p.initial_records_per_second),
        ("initial sync wall s", |p| p.initial_wall_seconds),
        ("tether peak RSS MB", |p| p.peak_rss_mb),
        ("Salesforce calls, initial sync", |p| {
            p.salesforce_calls as f64
        }),
        ("Exchange calls, initial sync", |p| p.exchange_calls as f64),
        ("Salesforce calls, no-change cycle", |p| {
            p.no_change_salesforce_calls as f64
        }),
    ];
    figures
        .iter()
        .map(|(figure, y)| Fit {
            figure: figure.to_string(),
            exponent: growth_exponent(
                &points
                    .iter()
                    .map(|p| (p.records as f64, y(p)))
                    .collect::<Vec<_>>(),
            ),
        })
        .collect()
}

/// Runs `program` (tether-bench) once per size with `args` (every flag but `--reps` and
/// `--out`), each writing its report under `dir`, and gathers the reports.
pub fn run(
    program: &Path,
    sizes: &[usize],
    args: &[String],
    dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<Sweep, String> {
    let mut reports = Vec::new();
    for reps in sizes {
        progress(&format!("sweep: {reps} reps"));
        let out = dir.join(format!("reps-{reps}.json"));
        let status = Command::new(program)
            .args(args)
            .args(["--reps", &reps.to_string(), "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !status.success() {
            return Err(format!(
                "the benchmark at {reps} reps failed ({status}; its errors are above)"
            ));
        }
        let body = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        reports.push(
            serde_json::from_str::<Report>(&body)
                .map_err(|e| format!("{}: not a benchmark report: {e}", out.display()))?,
        );
    }
    let points: Vec<Point> = reports.iter().map(Point::of).collect();
    Ok(Sweep {
        fits: fits(&points),
        points,
        reports,
    })
}

/// The sweep as a table, then the fits.
pub fn table(s: &Sweep) -> String {
    let mut out = String::from(
        "tether-bench sweep: initial sync per org size (peak MB: tether's own when the emulators run apart)\n\n",
    );
    out.push_str(&format!(
        "{:>6} {:>9} {:>8} {:>10} {:>8} {:>8} {:>18} {:>18} {:>14}\n",
        "reps",
        "records",
        "wall s",
        "records/s",
        "peak MB",
        "emu MB",
        "SF calls/floor",
        "Exchange/floor",
        "no-change SF"
    ));
    for p in &s.points {
        let ratio = |calls: u64, floor: u64| {
            format!("{calls}/{floor} {:.2}×", calls as f64 / floor.max(1) as f64)
        };
        out.push_str(&format!(
            "{:>6} {:>9} {:>8.2} {:>10.0} {:>8.0} {:>8} {:>18} {:>18} {:>14}\n",
            p.reps,
            p.records,
            p.initial_wall_seconds,
            p.initial_records_per_second,
            p.peak_rss_mb,
            p.emulators_peak_rss_mb
                .map_or("—".to_string(), |m| format!("{m:.0}")),
            ratio(p.salesforce_calls, p.salesforce_floor),
            ratio(p.exchange_calls, p.exchange_floor),
            p.no_change_salesforce_calls,
        ));
    }
    out.push_str("\nGrowth with the records synced (y ∝ records^b; 1 is proportional, 0 flat)\n");
    for f in &s.fits {
        out.push_str(&format!(
            "  {:<36} b = {}\n",
            f.figure,
            f.exponent
                .map_or("— (needs two sizes)".to_string(), |b| format!("{b:.2}"))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_exponent_recovers_the_power_of_a_power_law() {
        let square: Vec<(f64, f64)> = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|x| (*x, 3.0 * x * x))
            .collect();
        assert!((growth_exponent(&square).unwrap() - 2.0).abs() < 1e-9);
        let flat = [(10.0, 7.0), (100.0, 7.0), (1000.0, 7.0)];
        assert!(growth_exponent(&flat).unwrap().abs() < 1e-9);
        let root = [(4.0, 2.0), (16.0, 4.0)];
        assert!((growth_exponent(&root).unwrap() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn growth_exponent_needs_two_distinct_positive_sizes() {
        assert_eq!(growth_exponent(&[]), None);
        assert_eq!(growth_exponent(&[(5.0, 1.0)]), None);
        assert_eq!(growth_exponent(&[(5.0, 1.0), (5.0, 2.0)]), None);
        // A zero has no logarithm: left out, one point remains.
        assert_eq!(growth_exponent(&[(0.0, 1.0), (5.0, 2.0)]), None);
        assert_eq!(growth_exponent(&[(5.0, 0.0), (50.0, 2.0)]), None);
    }
}
