//! Plan renderers: human (terminal and CI logs), markdown (pull-request comments) and JSON.

use super::document::*;
use super::settings::{Action, SettingChange};
use std::fmt::Write as _;

/// GitHub refuses comments over 65,536 characters; stay clear of it.
pub const MARKDOWN_LIMIT: usize = 65_000;
/// Records listed per row in a pull-request comment; the rest are counted.
const MARKDOWN_DETAIL_RECORDS: usize = 200;

fn setting_line(c: &SettingChange) -> String {
    let mut line = format!("{} {}", c.action.symbol(), c.scope);
    if !c.field.is_empty() {
        let _ = write!(line, ": {}", c.field);
    }
    match (c.action, &c.before, &c.after) {
        (Action::Change, Some(b), Some(a)) => {
            let _ = write!(line, ": {b} → {a}");
        }
        (_, _, Some(v)) | (_, Some(v), None) => {
            let _ = write!(line, ": {v}");
        }
        _ => {}
    }
    line
}

fn rep_line(r: &RepChange) -> String {
    let moved;
    let (symbol, what) = match r.kind {
        RepChangeKind::Join => ('+', "joins"),
        RepChangeKind::Leave => ('-', "leaves"),
        RepChangeKind::Move => {
            moved = format!(
                "moves from {}",
                r.previous_configuration.as_deref().unwrap_or("?")
            );
            ('>', moved.as_str())
        }
        RepChangeKind::Reset => ('*', "reset"),
        RepChangeKind::CannotSync => ('!', "cannot sync"),
        RepChangeKind::CreateFolder => ('+', "create folder"),
        RepChangeKind::MarkMailbox => ('~', "mark mailbox"),
    };
    let config = r
        .configuration
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    format!("{symbol} {}{config}: {what}: {}", r.rep, r.detail)
}

/// `2 joining, 1 leaving, …`: the Reps section in one line.
fn reps_tally(changes: &[RepChange]) -> String {
    let mut parts = Vec::new();
    for (kind, word) in [
        (RepChangeKind::Join, "joining"),
        (RepChangeKind::Leave, "leaving"),
        (RepChangeKind::Move, "moving configuration"),
        (RepChangeKind::Reset, "reset"),
        (RepChangeKind::CannotSync, "cannot sync"),
        (RepChangeKind::CreateFolder, "folder to create"),
        (RepChangeKind::MarkMailbox, "mailbox to mark"),
    ] {
        let n = changes.iter().filter(|r| r.kind == kind).count();
        if n > 0 {
            parts.push(format!("{} {word}", thousands(n)));
        }
    }
    parts.join(", ")
}

/// `10 reps with no writes (skipped: 3 private)`, or nothing when every rep read writes.
fn without_writes_line(s: &Summary) -> Option<String> {
    if s.reps_without_writes == 0 && s.skipped_without_writes.is_empty() {
        return None;
    }
    let mut line = format!(
        "{} with no writes",
        plural(s.reps_without_writes, "rep", "reps")
    );
    if !s.skipped_without_writes.is_empty() {
        let skipped: Vec<String> = s
            .skipped_without_writes
            .iter()
            .map(|(reason, n)| format!("{} {reason}", thousands(*n)))
            .collect();
        let _ = write!(line, " (skipped: {})", skipped.join(", "));
    }
    Some(line)
}

fn counts_line(rc: &RecordChanges) -> String {
    let mut parts = Vec::new();
    for (n, action) in [
        (rc.create, RecordAction::Create),
        (rc.update, RecordAction::Update),
        (rc.delete, RecordAction::Delete),
        (rc.unlink, RecordAction::Unlink),
        (rc.link, RecordAction::Link),
    ] {
        if n > 0 {
            parts.push(format!("{} to {}", thousands(n), action.verb()));
        }
    }
    if parts.is_empty() {
        parts.push("no writes".into());
    }
    let skipped: Vec<String> = rc
        .skip
        .iter()
        .map(|(reason, n)| format!("{} {reason}", thousands(*n)))
        .collect();
    let mut line = parts.join(", ");
    if !skipped.is_empty() {
        let _ = write!(line, "; skipped: {}", skipped.join(", "));
    }
    line
}

/// Deletes and unlinks first: they are what a reviewer must not miss.
fn destructive_first(a: RecordAction) -> u8 {
    match a {
        RecordAction::Delete => 0,
        RecordAction::Unlink => 1,
        RecordAction::Update => 2,
        RecordAction::Create => 3,
        RecordAction::Link => 4,
    }
}

/// Longer values are cut in the human and markdown plans (JSON has them whole).
const VALUE_CHARS: usize = 120;

/// A value on one line: quoted, with newlines and quotes escaped, cut to `VALUE_CHARS`.
fn shown(value: &str) -> String {
    let mut v: String = value.chars().take(VALUE_CHARS).collect();
    if value.chars().count() > VALUE_CHARS {
        v.push('…');
    }
    format!("{v:?}")
}

/// The records of a row, each with the fields it clears and overwrites, then its fields:
/// names only, or (with `--show-values`) `field: before → after`, `field: value` for a
/// create.
fn detail_lines(rc: &RecordChanges, all: bool, indent: &str, out: &mut String, limit: usize) {
    let mut records: Vec<&RecordDetail> = rc
        .records
        .iter()
        .filter(|d| all || d.is_destructive() || d.mails_attendees())
        .collect();
    records.sort_by_key(|d| (destructive_first(d.action), !d.is_destructive()));
    for d in records.iter().take(limit) {
        let _ = writeln!(
            out,
            "{indent}{} {} {} ({})",
            d.action.symbol(),
            rc.object.plural().trim_end_matches('s'),
            d.id,
            d.description
        );
        for (what, names) in [("clears", &d.clears), ("overwrites", &d.overwrites)] {
            if !names.is_empty() {
                let _ = writeln!(out, "{indent}    {what}: {}", names.join(", "));
            }
        }
        let with_values = d
            .fields
            .iter()
            .any(|f| f.before.is_some() || f.after.is_some());
        if !with_values {
            if !d.fields.is_empty() {
                let names: Vec<&str> = d.fields.iter().map(|f| f.field.as_str()).collect();
                let _ = writeln!(out, "{indent}    fields: {}", names.join(", "));
            }
            continue;
        }
        for f in &d.fields {
            let after = shown(f.after.as_deref().unwrap_or(""));
            let _ = match &f.before {
                Some(b) => writeln!(out, "{indent}    {}: {} → {after}", f.field, shown(b)),
                None => writeln!(out, "{indent}    {}: {after}", f.field),
            };
        }
    }
    if records.len() > limit {
        let more = records.len() - limit;
        let _ = writeln!(
            out,
            "{indent}… and {} more {}",
            thousands(more),
            if more == 1 { "record" } else { "records" }
        );
    }
}

fn conflict_line(c: &ConflictEntry) -> String {
    let fields = if c.fields.is_empty() {
        String::new()
    } else {
        format!(" (fields: {})", c.fields.join(", "))
    };
    format!(
        "{}: {} Exchange {} ↔ Salesforce {}: changed on both sides; {} wins{fields}",
        c.rep,
        c.object.plural().trim_end_matches('s'),
        c.exchange_id,
        c.salesforce_id,
        c.winner.name()
    )
}

/// For a terminal or a CI log. `detail` lists each record and the fields that change;
/// without it, only the updates that clear or overwrite a field are listed.
pub fn human(doc: &PlanDocument, detail: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tether plan for org {}", doc.org);
    if let Some(commit) = &doc.commit {
        let _ = writeln!(out, "commit {commit}");
    }
    out.push('\n');
    if doc.summary.no_changes && doc.warnings.is_empty() {
        let _ = writeln!(out, "{}", doc.summary.text);
        return out;
    }
    let _ = writeln!(out, "Settings");
    if doc.settings_changes.is_empty() {
        let _ = writeln!(out, "  (no changes)");
    }
    for c in &doc.settings_changes {
        let _ = writeln!(out, "  {}", setting_line(c));
        for l in &c.text_diff {
            let _ = writeln!(out, "      {l}");
        }
    }
    if !doc.field_mappings.is_empty() {
        let _ = writeln!(out, "  Field mappings that differ from the defaults:");
        for m in &doc.field_mappings {
            let _ = writeln!(out, "    {}", m.line());
        }
    }
    let _ = writeln!(out, "\nReps");
    if doc.rep_changes.is_empty() {
        let _ = writeln!(out, "  (no changes)");
    } else {
        let _ = writeln!(out, "  {}", reps_tally(&doc.rep_changes));
    }
    for r in &doc.rep_changes {
        let _ = writeln!(out, "  {}", rep_line(r));
    }
    let _ = writeln!(out, "\nData");
    if !doc.data_read {
        let _ = writeln!(out, "  {DATA_NOT_READ}");
    } else if doc.record_changes.is_empty() {
        let _ = writeln!(out, "  (no changes)");
    }
    let mut current = None;
    for rc in &doc.record_changes {
        let key = (&rc.configuration, &rc.rep);
        if current != Some(key) {
            let _ = writeln!(out, "  {} / {}", rc.configuration, rc.rep);
            current = Some(key);
        }
        let _ = writeln!(
            out,
            "    {:<8} {}: {}",
            rc.object.plural(),
            rc.target.arrow(),
            counts_line(rc)
        );
        // Without --detail the row lists only the updates that lose a value.
        detail_lines(rc, detail, "      ", &mut out, usize::MAX);
    }
    if doc.data_read
        && let Some(line) = without_writes_line(&doc.summary)
    {
        let _ = writeln!(out, "  {line}");
    }
    if !doc.conflicts.is_empty() {
        let _ = writeln!(out, "\nConflicts ({})", doc.conflicts.len());
        for c in &doc.conflicts {
            let _ = writeln!(out, "  ! {}", conflict_line(c));
        }
    }
    if !doc.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings");
        for w in &doc.warnings {
            let _ = writeln!(out, "  ! {}", w.message);
        }
    }
    let _ = writeln!(out, "\n{}", doc.summary.text);
    out
}

/// The hidden line that marks a pull-request comment as the plan of `org`, so CI can find
/// and update it in place (examples/ci/).
pub fn markdown_marker(org: &str) -> String {
    format!("<!-- tether:plan org={} -->", org.replace("--", "- -"))
}

/// Records losing values listed at the top of a pull-request comment; the rest are in the
/// folded detail.
const MARKDOWN_RISKIEST_RECORDS: usize = 20;

/// For a pull-request comment: the summary and what a reviewer must not miss first
/// (destructive warnings, deletes, values overwritten or cleared, settings), then the
/// reps, and the per-rep detail folded; never longer than `MARKDOWN_LIMIT` (with a note
/// saying what was cut).
pub fn markdown(doc: &PlanDocument) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", markdown_marker(&doc.org));
    let _ = writeln!(out, "### tether plan: `{}`\n", md_escape(&doc.org));
    let _ = writeln!(out, "**{}**\n", doc.summary.text);
    if let Some(commit) = &doc.commit {
        let _ = writeln!(out, "Commit `{}`\n", md_escape(commit));
    }
    let destructive: Vec<&Warning> = doc.warnings.iter().filter(|w| w.is_destructive()).collect();
    if !destructive.is_empty() {
        let _ = writeln!(out, "> [!WARNING]");
        for w in &destructive {
            let _ = writeln!(out, "> - {}", md_escape(&w.message));
        }
        out.push('\n');
    }
    riskiest(doc, &mut out);
    if !doc.rep_changes.is_empty() {
        let _ = writeln!(out, "#### Reps: {}\n", reps_tally(&doc.rep_changes));
        // A diff block: its `+`/`-` colour joins and leaves, and no markup gets through.
        let lines: String = doc
            .rep_changes
            .iter()
            .map(|r| format!("{}\n", rep_line(r).replace("```", "'''")))
            .collect();
        let lines = format!("```diff\n{lines}```\n");
        if doc.rep_changes.len() > MARKDOWN_RISKIEST_RECORDS {
            let _ = writeln!(
                out,
                "<details><summary>{}</summary>\n\n{lines}</details>\n",
                plural(doc.rep_changes.len(), "rep", "reps")
            );
        } else {
            let _ = writeln!(out, "{lines}");
        }
    }
    let others: Vec<&Warning> = doc
        .warnings
        .iter()
        .filter(|w| !w.is_destructive())
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "#### Warnings\n");
        for w in others {
            let _ = writeln!(out, "- {}", md_escape(&w.message));
        }
        out.push('\n');
    }
    if !doc.conflicts.is_empty() {
        let _ = writeln!(out, "#### Conflicts ({})\n", doc.conflicts.len());
        for c in &doc.conflicts {
            let _ = writeln!(out, "- {}", md_escape(&conflict_line(c)));
        }
        out.push('\n');
    }
    per_rep_detail(doc, &mut out);
    out
}

/// Deletes and unlinks by row, the updates that lose values, and the settings diff.
fn riskiest(doc: &PlanDocument, out: &mut String) {
    let removing: Vec<&RecordChanges> = doc
        .record_changes
        .iter()
        .filter(|rc| rc.delete + rc.unlink > 0)
        .collect();
    if !removing.is_empty() {
        let _ = writeln!(out, "#### Deletes and unlinks\n");
        for rc in removing {
            let mut parts = Vec::new();
            if rc.delete > 0 {
                parts.push(format!("{} to delete", thousands(rc.delete)));
            }
            if rc.unlink > 0 {
                parts.push(format!("{} to unlink", thousands(rc.unlink)));
            }
            let _ = writeln!(
                out,
                "- {} {} in {}: {}",
                md_escape(&rc.rep),
                rc.object.plural(),
                rc.target.name(),
                parts.join(", ")
            );
        }
        out.push('\n');
    }
    let losing: Vec<(&RecordChanges, &RecordDetail)> = doc
        .record_changes
        .iter()
        .flat_map(|rc| rc.records.iter().map(move |d| (rc, d)))
        .filter(|(_, d)| d.is_destructive())
        .collect();
    if !losing.is_empty() {
        let _ = writeln!(out, "#### Values overwritten or cleared\n");
        for (rc, d) in losing.iter().take(MARKDOWN_RISKIEST_RECORDS) {
            let mut what = Vec::new();
            for (verb, names) in [("clears", &d.clears), ("overwrites", &d.overwrites)] {
                if !names.is_empty() {
                    what.push(format!("{verb} {}", names.join(", ")));
                }
            }
            let _ = writeln!(
                out,
                "- {} {} `{}` in {}: {}",
                md_escape(&rc.rep),
                rc.object.plural().trim_end_matches('s'),
                d.id.replace('`', "'"),
                rc.target.name(),
                md_escape(&what.join("; "))
            );
        }
        if losing.len() > MARKDOWN_RISKIEST_RECORDS {
            let _ = writeln!(
                out,
                "- … and {} more (in the detail below)",
                plural(
                    losing.len() - MARKDOWN_RISKIEST_RECORDS,
                    "record",
                    "records"
                )
            );
        }
        out.push('\n');
    }
    let mailing: Vec<(&RecordChanges, &RecordDetail)> = doc
        .record_changes
        .iter()
        .flat_map(|rc| rc.records.iter().map(move |d| (rc, d)))
        .filter(|(_, d)| d.mails_attendees())
        .collect();
    if !mailing.is_empty() {
        let _ = writeln!(
            out,
            "#### Meetings deleted in Salesforce whose attendees Graph mails\n"
        );
        for (rc, d) in &mailing {
            let _ = writeln!(
                out,
                "- {} event `{}`: {}",
                md_escape(&rc.rep),
                d.id.replace('`', "'"),
                md_escape(&d.description)
            );
        }
        out.push('\n');
    }
    if !doc.settings_changes.is_empty() {
        let _ = writeln!(out, "#### Settings\n\n```diff");
        for c in &doc.settings_changes {
            let _ = writeln!(out, "{}", setting_line(c).replace("```", "'''"));
            for l in &c.text_diff {
                let _ = writeln!(out, "{}    {}", &l[..1], l[1..].replace("```", "'''"));
            }
        }
        let _ = writeln!(out, "```\n");
        if !doc.field_mappings.is_empty() {
            let _ = writeln!(out, "Field mappings that differ from the defaults:\n");
            for m in &doc.field_mappings {
                let _ = writeln!(out, "- {}", md_escape(&m.line()));
            }
            out.push('\n');
        }
    }
}

/// The per-rep detail, folded: the data table (rows that delete or unlink first) and the
/// records of each row, cut to fit a comment.
fn per_rep_detail(doc: &PlanDocument, out: &mut String) {
    let quiet = if doc.data_read {
        without_writes_line(&doc.summary)
    } else {
        None
    };
    if doc.record_changes.is_empty() {
        if let Some(line) = quiet {
            let _ = writeln!(out, "_{line}._");
        }
        return;
    }
    let mut record_changes: Vec<&RecordChanges> = doc.record_changes.iter().collect();
    record_changes.sort_by_key(|rc| rc.delete + rc.unlink == 0);
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for rc in record_changes {
        rows.push(format!(
            "| {} | {} | {} | {} | {} |\n",
            md_escape(&rc.configuration),
            md_escape(&rc.rep),
            rc.object.plural(),
            rc.target.arrow(),
            md_escape(&counts_line(rc))
        ));
        if !rc.records.is_empty() {
            let mut lines = String::new();
            detail_lines(rc, true, "", &mut lines, MARKDOWN_DETAIL_RECORDS);
            details.push(format!(
                "<details><summary>{} / {} {} ({})</summary>\n\n```\n{}```\n</details>\n\n",
                md_escape(&rc.rep),
                rc.object.plural(),
                rc.target.arrow(),
                plural(rc.records.len(), "record", "records"),
                lines.replace("```", "'''")
            ));
        }
    }
    let reps: std::collections::BTreeSet<&str> =
        doc.record_changes.iter().map(|r| r.rep.as_str()).collect();
    let mut summary = format!(
        "Per rep: {} for {}",
        plural(rows.len(), "row", "rows"),
        plural(reps.len(), "rep", "reps")
    );
    if let Some(line) = quiet {
        let _ = write!(summary, "; {line}");
    }
    let _ = writeln!(out, "<details><summary>{}</summary>\n", md_escape(&summary));
    const CLOSE: &str = "</details>\n";
    let fits =
        |out: &String, text: &str| out.len() + text.len() + CLOSE.len() + 500 <= MARKDOWN_LIMIT;
    let mut cut = Vec::new();
    out.push_str("| Configuration | Rep | Object | Direction | Changes |\n|---|---|---|---|---|\n");
    let mut shown = 0;
    for row in &rows {
        if !fits(out, row) {
            break;
        }
        out.push_str(row);
        shown += 1;
    }
    if shown < rows.len() {
        cut.push(format!(
            "{} of {} rows not shown",
            rows.len() - shown,
            rows.len()
        ));
    }
    out.push('\n');
    if !details.is_empty() && cut.is_empty() {
        let mut shown = 0;
        for d in &details {
            if !fits(out, d) {
                break;
            }
            out.push_str(d);
            shown += 1;
        }
        if shown < details.len() {
            cut.push(format!(
                "the record details of {} not shown",
                plural(details.len() - shown, "row", "rows")
            ));
        }
    } else if !details.is_empty() {
        cut.push("the record details not shown".into());
    }
    out.push_str(CLOSE);
    if !cut.is_empty() {
        let _ = writeln!(
            out,
            "\n_Cut to fit a comment: {}. Run `tether plan --format human --detail` or `--format json` to see everything._",
            cut.join("; ")
        );
    }
}

pub fn json(doc: &PlanDocument) -> String {
    serde_json::to_string_pretty(doc).expect("plan document serializes")
}

/// Keeps user-controlled text (names, reasons) from breaking the table or injecting markup.
fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', " ")
}
