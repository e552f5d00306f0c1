//! Progress of `apply` and `run` syncs, drawn from the executor's reports
//! (`engine::execute::Progress`): bars per rep and overall on a terminal, plain lines
//! otherwise (CI logs, a service's log). Both go to stderr, so stdout keeps the plan and the
//! closing summary.

use crate::engine::execute::{Progress, ProgressHandle};
use crate::mutex::lock;
use crate::plan::document::thousands;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bars or lines, whichever suits stderr.
pub fn for_stderr() -> ProgressHandle {
    if std::io::stderr().is_terminal() {
        ProgressHandle(Arc::new(Bars::new()))
    } else {
        ProgressHandle(Arc::new(Lines::new(
            Box::new(std::io::stderr()),
            LINE_INTERVAL,
        )))
    }
}

/// How often a plain progress line is printed while records are being written.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// At most this many rep bars at once; the overall bar counts every rep.
const MAX_REP_BARS: usize = 8;

/// `1,240/5,000 records (24%), 120 records/s, ETA 31s`.
pub fn progress_text(done: usize, total: usize, elapsed: Duration) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let mut text = format!(
        "{}/{} records ({percent}%)",
        thousands(done),
        thousands(total)
    );
    let secs = elapsed.as_secs_f64();
    if done > 0 && secs > 0.0 {
        let rate = done as f64 / secs;
        let left = total.saturating_sub(done) as f64 / rate;
        text.push_str(&format!(
            ", {} records/s, ETA {}",
            rate_text(rate),
            duration_text(Duration::from_secs_f64(left))
        ));
    }
    text
}

fn rate_text(rate: f64) -> String {
    if rate >= 10.0 {
        thousands(rate.round() as usize)
    } else {
        format!("{rate:.1}")
    }
}

/// 42s, 3m05s, 1h02m.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

struct RepCount {
    total: usize,
    done: usize,
    failed: usize,
    started: Option<Instant>,
    /// Its "written, failed" line was printed (once, even if more records follow).
    reported: bool,
}

impl RepCount {
    /// Counts one record; a rep writing more than announced grows its total, so no count
    /// passes it. True when the rep's line is due.
    fn record(&mut self, ok: bool) -> bool {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        self.total = self.total.max(self.done);
        let due = self.done == self.total && !self.reported;
        self.reported |= due;
        due
    }
}

/// Each rep's count, none done yet.
fn counts(reps: &[(String, usize)]) -> BTreeMap<String, RepCount> {
    reps.iter()
        .map(|(r, n)| {
            (
                r.clone(),
                RepCount {
                    total: *n,
                    done: 0,
                    failed: 0,
                    started: None,
                    reported: false,
                },
            )
        })
        .collect()
}

/// Plain lines: the size of the sync, a progress line at most every `interval`, a line per
/// rep when its last record is done, and a closing line.
pub struct Lines {
    state: Mutex<LineState>,
}

struct LineState {
    out: Box<dyn Write + Send>,
    interval: Duration,
    started: Instant,
    last_line: Instant,
    total: usize,
    done: usize,
    failed: usize,
    reps: BTreeMap<String, RepCount>,
}

impl Lines {
    pub fn new(out: Box<dyn Write + Send>, interval: Duration) -> Self {
        let now = Instant::now();
        Lines {
            state: Mutex::new(LineState {
                out,
                interval,
                started: now,
                last_line: now,
                total: 0,
                done: 0,
                failed: 0,
                reps: BTreeMap::new(),
            }),
        }
    }
}

impl Progress for Lines {
    fn start(&self, reps: &[(String, usize)]) {
        let mut s = lock(&self.state);
        s.started = Instant::now();
        s.last_line = s.started;
        // Each cycle counts afresh.
        s.total = reps.iter().map(|(_, n)| n).sum();
        s.done = 0;
        s.failed = 0;
        s.reps = counts(reps);
        if s.total > 0 {
            let line = format!(
                "syncing {} for {}",
                crate::plan::document::plural(s.total, "record", "records"),
                crate::plan::document::plural(reps.len(), "rep", "reps")
            );
            let _ = writeln!(s.out, "{line}");
        }
    }

    fn record(&self, rep: &str, ok: bool) {
        let mut s = lock(&self.state);
        s.done += 1;
        if !ok {
            s.failed += 1;
        }
        // More records than announced (a cycle's size can change on the way): the total
        // grows with them.
        s.total = s.total.max(s.done);
        let mut finished = None;
        if let Some(r) = s.reps.get_mut(rep) {
            let now = Instant::now();
            let started = *r.started.get_or_insert(now);
            if r.record(ok) {
                finished = Some(format!(
                    "{rep}: {} written, {} failed ({})",
                    thousands(r.done - r.failed),
                    thousands(r.failed),
                    duration_text(now - started)
                ));
            }
        }
        if let Some(line) = finished {
            let _ = writeln!(s.out, "{line}");
        }
        if s.done < s.total && s.last_line.elapsed() >= s.interval {
            s.last_line = Instant::now();
            let line = format!(
                "progress: {}",
                progress_text(s.done, s.total, s.started.elapsed())
            );
            let _ = writeln!(s.out, "{line}");
        }
    }

    fn finish(&self) {
        let mut s = lock(&self.state);
        if s.total == 0 {
            return;
        }
        let elapsed = s.started.elapsed();
        let line = format!(
            "done: {} of {} records in {}, {} failed",
            thousands(s.done),
            thousands(s.total),
            duration_text(elapsed),
            thousands(s.failed)
        );
        let _ = writeln!(s.out, "{line}");
        let _ = s.out.flush();
    }
}

/// Bars on a terminal: one overall, and one per rep being written (at most `MAX_REP_BARS`
/// at once); a rep's bar gives way to a line when the rep is done.
pub struct Bars {
    multi: MultiProgress,
    state: Mutex<BarState>,
}

struct BarState {
    overall: Option<ProgressBar>,
    reps: BTreeMap<String, (RepCount, Option<ProgressBar>)>,
    shown: usize,
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            state: Mutex::new(BarState {
                overall: None,
                reps: BTreeMap::new(),
                shown: 0,
            }),
        }
    }

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
}

impl Progress for Bars {
    fn start(&self, reps: &[(String, usize)]) {
        let mut s = lock(&self.state);
        let total: usize = reps.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return;
        }
        let overall = self.multi.add(ProgressBar::new(total as u64));
        overall.set_style(Self::style(
            "{prefix:>24} [{bar:30}] {human_pos}/{human_len} records  {per_sec}  ETA {eta}",
        ));
        overall.set_prefix("all reps");
        s.overall = Some(overall);
        s.reps = counts(reps)
            .into_iter()
            .map(|(r, c)| (r, (c, None)))
            .collect();
    }

    fn record(&self, rep: &str, ok: bool) {
        let mut s = lock(&self.state);
        if let Some(o) = &s.overall {
            o.inc(1);
            if o.length().is_some_and(|len| o.position() > len) {
                o.set_length(o.position());
            }
        }
        let can_show = s.shown < MAX_REP_BARS;
        let Some((count, bar)) = s.reps.get_mut(rep) else {
            return;
        };
        let due = count.record(ok);
        let now = Instant::now();
        let started = *count.started.get_or_insert(now);
        let mut opened = false;
        if bar.is_none() && can_show && count.done < count.total {
            let b = self
                .multi
                .insert_from_back(1, ProgressBar::new(count.total as u64));
            b.set_style(Self::style(
                "{prefix:>24} [{bar:30}] {human_pos}/{human_len}  {per_sec}  ETA {eta}",
            ));
            b.set_prefix(rep.to_string());
            *bar = Some(b);
            opened = true;
        }
        if let Some(b) = bar {
            b.set_length(count.total as u64);
            b.set_position(count.done as u64);
        }
        let mut closed = false;
        if due {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
                self.multi.remove(&b);
                closed = true;
            }
            let _ = self.multi.println(format!(
                "{rep}: {} written, {} failed ({})",
                thousands(count.done - count.failed),
                thousands(count.failed),
                duration_text(now - started)
            ));
        }
        if opened {
            s.shown += 1;
        }
        if closed {
            s.shown -= 1;
        }
    }

    fn finish(&self) {
        let mut s = lock(&self.state);
        for (_, (_, bar)) in s.reps.iter_mut() {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
        if let Some(o) = s.overall.take() {
            o.finish();
        }
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&lock(&self.0)).into_owned()
        }
    }

    #[test]
    fn lines_say_the_size_each_rep_done_and_the_end() {
        let out = Shared::default();
        let lines = Lines::new(Box::new(out.clone()), Duration::from_secs(3600));
        lines.start(&[("a@corp.com".into(), 2), ("b@corp.com".into(), 1)]);
        lines.record("a@corp.com", true);
        lines.record("b@corp.com", false);
        lines.record("a@corp.com", true);
        lines.finish();
        let text = out.text();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got.len(), 4, "{text}");
        assert_eq!(got[0], "syncing 3 records for 2 reps");
        assert!(
            got[1].starts_with("b@corp.com: 0 written, 1 failed ("),
            "{text}"
        );
        assert!(
            got[2].starts_with("a@corp.com: 2 written, 0 failed ("),
            "{text}"
        );
        assert!(got[3].starts_with("done: 3 of 3 records in "), "{text}");
        assert!(got[3].ends_with(", 1 failed"), "{text}");
    }

    /// "done: 49 of 7", "done: 75 of 3": a second cycle counted on from the first, and a
    /// cycle writing more records than it announced.
    #[test]
    fn progress_lines_never_count_past_their_total() {
        let out = Shared::default();
        let lines = Lines::new(Box::new(out.clone()), Duration::ZERO);
        lines.start(&[("a@corp.com".into(), 1)]);
        for _ in 0..3 {
            lines.record("a@corp.com", true);
        }
        lines.finish();
        lines.start(&[("a@corp.com".into(), 2)]);
        lines.record("a@corp.com", true);
        lines.record("a@corp.com", true);
        lines.finish();
        let text = out.text();
        let done: Vec<&str> = text.lines().filter(|l| l.starts_with("done: ")).collect();
        assert_eq!(done.len(), 2, "{text}");
        assert!(done[0].starts_with("done: 3 of 3 records"), "{text}");
        assert!(done[1].starts_with("done: 2 of 2 records"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("progress: ")) {
            let (done, total) = line["progress: ".len()..]
                .split_once(' ')
                .and_then(|(n, _)| n.split_once('/'))
                .unwrap();
            assert!(
                done.parse::<usize>().unwrap() <= total.parse::<usize>().unwrap(),
                "{text}"
            );
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("a@corp.com: "))
                .count(),
            2,
            "one line per rep per cycle:\n{text}"
        );
    }

    #[test]
    fn lines_report_progress_on_the_interval() {
        let out = Shared::default();
        let lines = Lines::new(Box::new(out.clone()), Duration::ZERO);
        lines.start(&[("a@corp.com".into(), 3)]);
        lines.record("a@corp.com", true);
        lines.record("a@corp.com", true);
        let text = out.text();
        let progress: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("progress: "))
            .collect();
        assert_eq!(progress.len(), 2, "{text}");
        assert!(
            progress[1].starts_with("progress: 2/3 records (66%), "),
            "{text}"
        );
        assert!(progress[1].contains(" records/s, ETA "), "{text}");
    }

    #[test]
    fn nothing_to_write_prints_nothing() {
        let out = Shared::default();
        let lines = Lines::new(Box::new(out.clone()), Duration::ZERO);
        lines.start(&[]);
        lines.finish();
        assert_eq!(out.text(), "");
    }

    #[test]
    fn rate_and_eta_read_plainly() {
        assert_eq!(
            progress_text(1240, 5000, Duration::from_secs(10)),
            "1,240/5,000 records (24%), 124 records/s, ETA 30s"
        );
        assert_eq!(
            progress_text(3, 10, Duration::from_secs(2)),
            "3/10 records (30%), 1.5 records/s, ETA 4s"
        );
        assert_eq!(progress_text(0, 10, Duration::ZERO), "0/10 records (0%)");
        assert_eq!(duration_text(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration_text(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn bars_count_without_a_terminal() {
        // Hidden draw target: the bookkeeping runs, nothing is drawn.
        let bars = Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            ..Bars::new()
        };
        let reps: Vec<(String, usize)> = (0..20).map(|i| (format!("r{i}@x.com"), 2)).collect();
        bars.start(&reps);
        for (r, _) in &reps {
            bars.record(r, true);
        }
        assert_eq!(lock(&bars.state).shown, MAX_REP_BARS);
        for (r, _) in &reps {
            bars.record(r, true);
        }
        assert_eq!(lock(&bars.state).shown, 0);
        assert_eq!(
            lock(&bars.state).overall.as_ref().map(|o| o.position()),
            Some(40)
        );
        bars.finish();
    }
}
