//! The sync engine: resolve reps, read changes from both sides, plan (a pure function), and
//! execute the plan through the connectors, recording every step in the state store.
//!
//! Wiring: implement `connector::MailConnector` on the EWS client and
//! `connector::CrmConnector` on the Salesforce client (converting to and from the canonical
//! records with `model::EffectiveMapping`), open a `state::SqliteState`, then call
//! `cycle::run_cycle` (apply/run) or `cycle::read_and_plan` (plan, writes nothing). The
//! in-memory connectors in `memory` are the reference behaviour the real ones must match:
//! change feeds with opaque cursors, per-record outcomes, ambiguous creates, batch limits.

pub mod claim;
pub mod connector;
pub mod cycle;
pub mod execute;
pub mod facts;
pub mod memory;
pub mod outlook;
pub mod plan;
pub mod recheck;
pub mod reps;
pub mod rules;
pub mod workers;

pub use connector::{CrmConnector, MailConnector};
pub use cycle::{CycleError, CycleReport, SyncOptions, read_and_plan, run_cycle};
pub use execute::{ExecReport, Executor, Killed, StepBudget};
pub use plan::{Action, Operation, Plan, PlanInput, plan};
pub use reps::{Rep, RepProblem, resolve_reps};

/// The engine speaks the connector traits only: no vendor's error code, operation or role
/// name is in its source (the connectors classify their errors into `ErrorKind`s and give
/// the hints). The vendor words are gathered from the connectors' own sources, so a code
/// one of them learns is checked here too.
#[cfg(test)]
mod vendor_free {
    use std::path::{Path, PathBuf};

    /// EWS operations and roles, and codes the EWS module may not spell out itself.
    const EWS_WORDS: &[&str] = &[
        "SyncFolderItems",
        "SyncFolderHierarchy",
        "CreateItem",
        "UpdateItem",
        "DeleteItem",
        "GetItem",
        "FindItem",
        "FindFolder",
        "GetFolder",
        "CreateFolder",
        "DeleteFolder",
        "ResolveNames",
        "GetUserSettings",
        "SyncState",
        "IdOnly",
        "ApplicationImpersonation",
        "ErrorSyncFolderNotFound",
        "ErrorParentFolderNotFound",
        "ErrorSchemaValidation",
    ];
    /// Salesforce codes the Salesforce module may not spell out itself.
    const SALESFORCE_WORDS: &[&str] = &[
        "INVALID_CROSS_REFERENCE_KEY",
        "DUPLICATE_VALUE",
        "SERVER_UNAVAILABLE",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "MALFORMED_QUERY",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    /// The string literals of the files under `dir` that `is_code` accepts.
    fn literals(dir: &Path, is_code: impl Fn(&str) -> bool) -> Vec<String> {
        let mut files = Vec::new();
        rust_files(dir, &mut files);
        let mut found = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, lit) in text.split('"').enumerate() {
                if i % 2 == 1 && is_code(lit) {
                    found.push(lit.to_string());
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    fn is_ews_code(s: &str) -> bool {
        s.len() > 5
            && s.starts_with("Error")
            && s[5..].starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars().all(|c| c.is_ascii_alphanumeric())
    }

    fn is_salesforce_code(s: &str) -> bool {
        s.contains('_')
            && !s.starts_with("CARGO_")
            && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && !s.starts_with('_')
    }

    /// `word` in `line` as a word of its own (not part of a longer name).
    fn has_word(line: &str, word: &str) -> bool {
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        line.match_indices(word).any(|(at, _)| {
            !line[..at].chars().next_back().is_some_and(is_name)
                && !line[at + word.len()..].chars().next().is_some_and(is_name)
        })
    }

    /// Every `file:line: word` of the engine sources under `engine` that names a vendor word.
    fn vendor_words_in(engine: &Path, words: &[String]) -> Vec<String> {
        let mut files = Vec::new();
        rust_files(engine, &mut files);
        files.sort();
        let mut hits = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            // This test's own word lists are the one place the words may stand.
            let text = match text.find("#[cfg(test)]\nmod vendor_free") {
                Some(end) => &text[..end],
                None => &text[..],
            };
            for (n, line) in text.lines().enumerate() {
                for w in words.iter().filter(|w| has_word(line, w)) {
                    hits.push(format!("{}:{}: {w}", f.display(), n + 1));
                }
            }
        }
        hits
    }

    fn vendor_words(src: &Path) -> Vec<String> {
        let mut words: Vec<String> = EWS_WORDS
            .iter()
            .chain(SALESFORCE_WORDS)
            .map(|w| w.to_string())
            .collect();
        words.extend(literals(&src.join("exchange"), is_ews_code));
        words.extend(literals(&src.join("salesforce"), is_salesforce_code));
        words.sort();
        words.dedup();
        words
    }

    #[test]
    fn no_vendor_error_code_or_operation_name_is_in_the_engine() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let words = vendor_words(&src);
        for known in [
            "ErrorItemNotFound",
            "ENTITY_IS_DELETED",
            "UNABLE_TO_LOCK_ROW",
        ] {
            assert!(words.iter().any(|w| w == known), "{known} not gathered");
        }
        let hits = vendor_words_in(&src.join("engine"), &words);
        assert!(
            hits.is_empty(),
            "vendor words in the engine (connectors classify errors into ErrorKind and give \
             the hints):\n{}",
            hits.join("\n")
        );
    }

    #[test]
    fn a_vendor_word_is_found_only_as_a_word_of_its_own() {
        assert!(has_word("x == \"NOT_FOUND\"", "NOT_FOUND"));
        assert!(!has_word("\"USER_NOT_FOUND\"", "NOT_FOUND"));
        assert!(!has_word("GetItems", "GetItem"));
    }
}
