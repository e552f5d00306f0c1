//! A whole state as rows (`Dump`), the same for SQLite and Postgres because their tables are
//! the same, and `copy_state`, which moves one state into another and proves the copy: the
//! target's rows are read back and their count and SHA-256 compared, table by table.

use super::{StateError, StateStore};
use serde::Serialize;

/// One value of a row: the schema has only integers and text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// A table of the state and the columns copied, in the order both stores declare them.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// Every table a state holds besides its schema version (each store keeps its own). `meta`
/// holds the plan-signing key: it moves with the state, so saved plans still verify.
pub const TABLES: &[Table] = &[
    Table {
        name: "revisions",
        columns: &[
            "generation",
            "canonical",
            "hash",
            "applied_at",
            "applied_by",
        ],
    },
    Table {
        name: "links",
        columns: &[
            "id",
            "rep",
            "object",
            "ex_item_id",
            "ex_change_key",
            "sf_id",
            "sf_modstamp",
            "hash",
        ],
    },
    Table {
        name: "cursors",
        columns: &["key", "value"],
    },
    Table {
        name: "statuses",
        columns: &[
            "rep",
            "object",
            "direction",
            "status",
            "records_in_sync",
            "updated",
        ],
    },
    Table {
        name: "resets",
        columns: &["rep", "mark"],
    },
    Table {
        name: "errors",
        columns: &[
            "id",
            "at",
            "rep",
            "object",
            "direction",
            "record_ids",
            "code",
            "message",
            "suggestion",
            "version",
        ],
    },
    Table {
        name: "activity",
        columns: &["id", "at", "object", "records"],
    },
    Table {
        name: "journal",
        columns: &[
            "marker",
            "rep",
            "object",
            "target",
            "source_id",
            "hash",
            "at",
        ],
    },
    Table {
        name: "unresolved",
        columns: &["id", "rep", "event_id", "email", "at"],
    },
    Table {
        name: "meta",
        columns: &["key", "value"],
    },
    Table {
        name: "reps",
        columns: &["rep", "email"],
    },
    Table {
        name: "applied_plans",
        columns: &["plan_id", "applied_at", "generation"],
    },
    Table {
        name: "rep_facts",
        columns: &["email", "facts"],
    },
    Table {
        name: "system_facts",
        columns: &["id", "facts"],
    },
    Table {
        name: "acknowledgements",
        columns: &["record_id", "version", "at"],
    },
];

/// The rows of every table, sorted, so two stores' dumps compare whatever order they read in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    tables: Vec<(String, Vec<Vec<Cell>>)>,
}

impl Dump {
    pub fn push(&mut self, table: &str, mut rows: Vec<Vec<Cell>>) {
        rows.sort();
        self.tables.push((table.to_string(), rows));
    }

    pub fn rows(&self, table: &str) -> &[Vec<Cell>] {
        self.tables
            .iter()
            .find(|(name, _)| name == table)
            .map_or(&[], |(_, rows)| rows)
    }

    /// Rows that say something: a state with only its plan-signing key is empty.
    pub fn records(&self) -> usize {
        self.tables
            .iter()
            .filter(|(name, _)| name != "meta")
            .map(|(_, rows)| rows.len())
            .sum()
    }

    /// Per table: its name, how many rows, and the SHA-256 of the rows.
    pub fn checksums(&self) -> Vec<(String, usize, String)> {
        use sha2::{Digest, Sha256};
        self.tables
            .iter()
            .map(|(name, rows)| {
                let text = serde_json::to_string(rows).expect("cells serialize");
                let hash = Sha256::digest(text.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                (name.clone(), rows.len(), hash)
            })
            .collect()
    }
}

/// Copies `from` into `to`, then reads `to` back and compares every table's count and
/// checksum. A target that holds records is refused unless `overwrite`.
pub fn copy_state(
    from: &dyn StateStore,
    to: &mut dyn StateStore,
    overwrite: bool,
) -> Result<Vec<(String, usize, String)>, StateError> {
    let source = from.dump()?;
    let existing = to.dump()?.records();
    if existing > 0 && !overwrite {
        return Err(StateError::new(
            format!("the target state is not empty: it holds {existing} rows"),
            "copy into a new state, or pass --force to replace everything in the target",
        ));
    }
    to.restore(&source)?;
    let copied = to.dump()?;
    let (want, got) = (source.checksums(), copied.checksums());
    if want != got {
        let differs: Vec<String> = want
            .iter()
            .zip(&got)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("{}: {} rows copied, {} read back", a.0, a.1, b.1))
            .collect();
        return Err(StateError::new(
            format!(
                "the copy does not match its source ({})",
                differs.join("; ")
            ),
            "the source is unchanged; run the migration again with --force",
        ));
    }
    Ok(want)
}
