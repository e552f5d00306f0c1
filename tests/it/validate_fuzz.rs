//! Hostile and mangled configuration never panics the loader: every mutation of a real
//! example ends in a report whose positions lie inside the file.

use proptest::prelude::*;
use std::path::PathBuf;

const EXAMPLES: &[&str] = &[
    include_str!("../../examples/quickstart.yaml"),
    include_str!("../../examples/full.yaml"),
    include_str!("../../examples/multi-org/production/sync/europe.yaml"),
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let yaml_chars = prop::sample::select(vec![
        ':', '-', ' ', '\t', '\n', '&', '*', '!', '|', '>', '{', '}', '[', ']', '"', '\'', '#',
        '%', '@', '`', ',', '?', 'x', '0', '\u{0}', '\u{feff}', 'ü',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), yaml_chars).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    match *edit {
        Edit::Delete(i) if !chars.is_empty() => {
            chars.remove(i % chars.len());
        }
        Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
        Edit::DuplicateLine(i) if !lines.is_empty() => {
            let l = lines[i % lines.len()].clone();
            lines.insert(i % lines.len(), l);
            return lines.join("\n");
        }
        Edit::SwapLines(a, b) if !lines.is_empty() => {
            let n = lines.len();
            lines.swap(a % n, b % n);
            return lines.join("\n");
        }
        Edit::Truncate(i) => chars.truncate(i % (chars.len() + 1)),
        _ => {}
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mangled_examples_give_findings_not_panics(
        which in 0..EXAMPLES.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut text = EXAMPLES[which].to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tether.yaml");
        std::fs::write(&path, &text).unwrap();
        let validation = tether::config::validate(&[PathBuf::from(&path)], false);
        let lines = text.lines().count().max(1) + 1;
        for d in &validation.diagnostics {
            if let Some(span) = d.span {
                prop_assert!(span.start.line >= 1 && span.start.line <= lines, "{d:?}");
                prop_assert!(span.start.column >= 1, "{d:?}");
                prop_assert!(span.start.byte <= text.len(), "{d:?}");
            }
            prop_assert!(!d.summary.is_empty());
        }
        // Rendering never panics either.
        let _ = validation.render_human();
        let _ = validation.render_json();
    }
}
