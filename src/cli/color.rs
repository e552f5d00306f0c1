//! Colour for the plan and the diagnostics. `--color auto` (the default) colours a stream
//! only when it is a terminal and `NO_COLOR` is unset or empty (no-color.org: any non-empty
//! value turns colour off); `--color always` and `--color never` decide for both streams,
//! over `NO_COLOR`, as a command-line flag should. The texts are rendered plain (what the
//! snapshot tests, files and pipes see) and painted here, line by line, just before they are
//! written.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    Always,
    Never,
}

static CHOICE: AtomicU8 = AtomicU8::new(0);

/// Records `--color` for the rest of the process (set once, by `cli::run`).
pub fn set(choice: ColorChoice) {
    CHOICE.store(choice as u8, Ordering::Relaxed);
}

fn choice() -> ColorChoice {
    match CHOICE.load(Ordering::Relaxed) {
        1 => ColorChoice::Always,
        2 => ColorChoice::Never,
        _ => ColorChoice::Auto,
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether what goes to `stream` is coloured.
pub fn enabled(stream: Stream) -> bool {
    let terminal = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    decide(choice(), std::env::var_os("NO_COLOR").as_deref(), terminal)
}

/// The rule, apart from the process's environment.
pub fn decide(choice: ColorChoice, no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
    }
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD_RED: &str = "\x1b[1;31m";
const BOLD_YELLOW: &str = "\x1b[1;33m";

fn paint(style: &str, text: &str) -> String {
    format!("{style}{text}{RESET}")
}

/// Each line of `text` through `line`, when `on`.
fn lines(text: &str, on: bool, line: fn(&str) -> String) -> String {
    if !on {
        return text.to_string();
    }
    text.split_inclusive('\n')
        .map(|l| match l.strip_suffix('\n') {
            Some(body) => format!("{}\n", line(body)),
            None => line(l),
        })
        .collect()
}

/// A plan as `render::human` writes it: creates green, deletes red, updates and warnings
/// yellow, unlinks cyan, headings and the summary bold.
pub fn plan(text: &str, on: bool) -> String {
    lines(text, on, plan_line)
}

fn plan_line(line: &str) -> String {
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    let style = match body.split_once(' ').map_or(body, |(first, _)| first) {
        _ if body.is_empty() => return line.to_string(),
        _ if indent.is_empty() => BOLD,
        "+" => GREEN,
        "-" => RED,
        "~" => YELLOW,
        "/" => CYAN,
        "!" => BOLD_YELLOW,
        _ => return line.to_string(),
    };
    format!("{indent}{}", paint(style, body))
}

/// Diagnostics as `config::diag::render_human` and `CommandError` write them: the severity
/// and the marker under the source red (errors) or yellow (warnings), hints cyan, the
/// verdict green or red.
pub fn diagnostics(text: &str, on: bool) -> String {
    lines(text, on, diagnostic_line)
}

fn diagnostic_line(line: &str) -> String {
    // The source line shown, `12 | key: value`, is the user's text: painted never, and its
    // marker line `   | ^^^` red.
    if let Some((gutter, rest)) = line.split_once(" | ").or_else(|| {
        line.strip_suffix(" |")
            .map(|gutter| (gutter, ""))
            .filter(|_| !line.contains(": "))
    }) && gutter.trim().chars().all(|c| c.is_ascii_digit())
    {
        let marker = rest.trim_start();
        if !marker.is_empty() && marker.chars().all(|c| c == '^') {
            let lead = &rest[..rest.len() - marker.len()];
            return format!("{gutter} | {lead}{}", paint(BOLD_RED, marker));
        }
        return line.to_string();
    }
    for (label, style) in [
        ("error", BOLD_RED),
        ("warning", BOLD_YELLOW),
        ("info", BOLD),
    ] {
        if let Some(rest) = line.strip_prefix(&format!("{label}: ")) {
            return format!("{}: {}", paint(style, label), paint(BOLD, rest));
        }
        if let Some((place, rest)) = line.split_once(&format!(": {label}: "))
            && !place.starts_with(' ')
        {
            return format!("{place}: {}: {}", paint(style, label), paint(BOLD, rest));
        }
    }
    for (prefix, style) in [
        ("  = hint:", CYAN),
        ("  = note:", CYAN),
        ("Hint:", CYAN),
        ("Caused by:", BOLD),
    ] {
        if let Some(rest) = line.strip_prefix(prefix) {
            return format!("{}{rest}", paint(style, prefix));
        }
    }
    if line.starts_with("Configuration is valid") {
        return paint(GREEN, line);
    }
    if line.starts_with("Configuration is not valid") {
        return paint(BOLD_RED, line);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_with_any_non_empty_value_turns_auto_colour_off() {
        assert!(decide(ColorChoice::Auto, None, true));
        assert!(decide(ColorChoice::Auto, Some(OsStr::new("")), true));
        assert!(!decide(ColorChoice::Auto, Some(OsStr::new("1")), true));
        assert!(!decide(ColorChoice::Auto, Some(OsStr::new("false")), true));
        assert!(!decide(ColorChoice::Auto, None, false));
        // The flag decides over the variable.
        assert!(decide(ColorChoice::Always, Some(OsStr::new("1")), false));
        assert!(!decide(ColorChoice::Never, None, true));
    }

    #[test]
    fn plan_lines_are_painted_by_their_marker_and_nothing_else_changes() {
        let text = "tether plan for org acme\n\nData\n  + contact a\n  - contact b\n  ~ x\n  (no changes)\n";
        let painted = plan(text, true);
        assert!(
            painted.contains("\x1b[32m+ contact a\x1b[0m"),
            "{painted:?}"
        );
        assert!(
            painted.contains("\x1b[31m- contact b\x1b[0m"),
            "{painted:?}"
        );
        assert!(painted.contains("\x1b[1mData\x1b[0m"), "{painted:?}");
        assert!(painted.contains("\n  (no changes)\n"), "{painted:?}");
        assert_eq!(strip(&painted), text);
        assert_eq!(plan(text, false), text);
    }

    #[test]
    fn diagnostics_paint_the_severity_and_marker_but_never_the_source_line() {
        let text = "a.yaml:3:5: error: unknown key `x`\n  |\n3 | x: error: y\n  | ^\n  = hint: did you mean `y`?\n\nConfiguration is not valid: 1 error, 0 warnings.\n";
        let painted = diagnostics(text, true);
        assert!(
            painted.starts_with("a.yaml:3:5: \x1b[1;31merror\x1b[0m: "),
            "{painted:?}"
        );
        assert!(painted.contains("\n3 | x: error: y\n"), "{painted:?}");
        assert!(painted.contains("  | \x1b[1;31m^\x1b[0m\n"), "{painted:?}");
        assert_eq!(strip(&painted), text);
    }

    fn strip(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
