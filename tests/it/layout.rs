//! The test layout: with `autotests = false` cargo builds only the `[[test]]` binaries of
//! Cargo.toml, so a file under tests/ that no binary's module tree reaches would never be
//! compiled or run, silently.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `path = "…"` of every `[[test]]` table in Cargo.toml.
fn test_roots() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut roots = Vec::new();
    let mut in_test = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_test = line == "[[test]]";
        } else if in_test && let Some(value) = line.strip_prefix("path") {
            let value = value.trim_start().trim_start_matches('=').trim();
            roots.push(root().join(value.trim_matches('"')));
        }
    }
    roots
}

/// The names of the `mod name;` declarations (out-of-line modules) in a source file.
fn declared_modules(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = match line.strip_prefix("pub") {
                Some(rest) if rest.starts_with(' ') || rest.starts_with('(') => {
                    rest.split_once(' ').map_or("", |(_, r)| r).trim_start()
                }
                _ => line,
            };
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?.trim();
            name.chars()
                .all(|c| c.is_alphanumeric() || c == '_')
                .then(|| name.to_string())
        })
        .collect()
}

/// Every file reached from `file` through `mod` declarations, `file` included.
fn module_tree(file: &Path, reached: &mut BTreeSet<PathBuf>) {
    let source = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{} is declared as a module but: {e}", file.display()));
    reached.insert(file.to_path_buf());
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let dir = file.parent().unwrap();
    // main.rs and mod.rs own their directory; any other file owns the directory named after it.
    let children = if matches!(stem, "main" | "mod" | "lib") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    for name in declared_modules(&source) {
        let flat = children.join(format!("{name}.rs"));
        let nested = children.join(&name).join("mod.rs");
        let child = if flat.exists() { flat } else { nested };
        module_tree(&child, reached);
    }
}

fn rust_files(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.insert(path);
        }
    }
}

#[test]
fn every_test_file_is_in_the_module_tree() {
    let roots = test_roots();
    assert!(!roots.is_empty(), "no [[test]] binary in Cargo.toml");
    let mut reached = BTreeSet::new();
    for r in &roots {
        module_tree(r, &mut reached);
    }
    let mut files = BTreeSet::new();
    rust_files(&root().join("tests"), &mut files);
    let forgotten: Vec<_> = files
        .difference(&reached)
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(
        forgotten.is_empty(),
        "these test files are in no test binary, so they are never built or run: {forgotten:?}\n\
         add `mod <name>;` for each to tests/it/main.rs (or to the module it belongs to)"
    );
}

#[test]
fn module_declarations_are_read_as_rustc_reads_them() {
    let source = "mod a;\npub mod b;\npub(crate) mod c;\n    mod d;\nmod inline {\n}\n// mod e;\nuse crate::f;\n";
    assert_eq!(declared_modules(source), ["a", "b", "c", "d"]);
}
