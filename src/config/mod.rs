//! The configuration an admin writes: YAML files, their typed model, and validation in three
//! layers (YAML syntax, the JSON Schema, semantic rules), each finding at file:line:column.

pub mod diag;
pub mod load;
pub mod model;
pub mod rules;
pub mod schema;
pub mod secrets;
pub mod source;
pub mod yaml;

use diag::{Diagnostic, Severity};
use load::Unit;
use model::Config;
use source::Sources;
use std::path::PathBuf;

/// The outcome of loading and checking configuration paths.
#[derive(Debug)]
pub struct Validation {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
    /// Every configuration found, with its typed form when it passed the schema.
    pub units: Vec<(Unit, Option<Config>)>,
}

impl Validation {
    pub fn error_count(&self) -> usize {
        diag::count(&self.diagnostics, Severity::Error)
    }

    pub fn is_valid(&self) -> bool {
        self.error_count() == 0
    }

    pub fn render_human(&self) -> String {
        diag::render_human(&self.sources, &self.diagnostics)
    }

    pub fn render_json(&self) -> String {
        diag::render_json(&self.sources, &self.diagnostics)
    }

    pub fn render_github(&self) -> String {
        diag::render_github(&self.sources, &self.diagnostics)
    }

    pub fn render_sarif(&self) -> String {
        diag::render_sarif(&self.sources, &self.diagnostics)
    }
}

/// Loads and checks `paths`. Configurations of different orgs given together are also
/// checked against each other. `strict` turns unavailable secrets into errors.
pub fn validate(paths: &[PathBuf], strict: bool) -> Validation {
    let mut sources = Sources::default();
    let mut diagnostics = Vec::new();
    let units = load::load(paths, &mut sources, &mut diagnostics);
    let mut typed = Vec::new();
    for unit in units {
        let findings = schema::check(&unit.tree);
        let config = if findings.is_empty() {
            match serde_json::from_value::<Config>(unit.tree.to_json()) {
                Ok(config) => Some(config),
                Err(e) => {
                    // The schema is generated from the same types, so this means a gap
                    // between them; still report it rather than losing it.
                    diagnostics.push(Diagnostic::error(
                        Some(unit.tree.span),
                        format!("configuration does not fit the model: {e}"),
                    ));
                    None
                }
            }
        } else {
            None
        };
        diagnostics.extend(findings);
        typed.push((unit, config));
    }
    let checked: Vec<rules::Checked<'_>> = typed
        .iter()
        .filter_map(|(unit, config)| {
            config
                .as_ref()
                .map(|config| rules::Checked { unit, config })
        })
        .collect();
    for c in &checked {
        diagnostics.extend(rules::check(c, strict));
    }
    diagnostics.extend(rules::check_across(&checked));
    sort_and_dedup(&mut diagnostics);
    Validation {
        sources,
        diagnostics,
        units: typed,
    }
}

/// Findings in file order; a finding reached twice (through two schema branches) once.
fn sort_and_dedup(diags: &mut Vec<Diagnostic>) {
    diags.sort_by_key(|d| d.span.map(|s| (s.file, s.start.line, s.start.column)));
    let mut unique: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    for d in diags.drain(..) {
        if !unique.contains(&d) {
            unique.push(d);
        }
    }
    *diags = unique;
}
