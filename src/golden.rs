//! Golden answers: real or vendor-documented server answers kept byte for byte under
//! tests/fixtures/golden/<dir>/, each with its source (repository, path, commit) in that
//! directory's PROVENANCE.md. The decoder tests live beside the decoders (`exchange::golden`,
//! `salesforce::golden`); this is what they share.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name)
}

/// The bytes of one golden answer.
pub(crate) fn read(dir_name: &str, file: &str) -> Vec<u8> {
    let path = dir(dir_name).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("golden answer {}: {e}", path.display()))
}

/// Every answer file in the directory has a provenance row, every row names a file, and every
/// file is named in `test_source` (the test module's own text), so none lies there untested.
pub(crate) fn assert_complete(dir_name: &str, extension: &str, test_source: &str) {
    let dir = dir(dir_name);
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|f| f.ends_with(extension))
        .collect();
    let table = std::fs::read_to_string(dir.join("PROVENANCE.md")).expect("PROVENANCE.md");
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .filter(|f| f.ends_with(extension))
        .collect();
    let listed: BTreeSet<String> = rows.iter().map(|r| r.to_string()).collect();
    assert_eq!(rows.len(), listed.len(), "a file has two provenance rows");
    assert_eq!(files, listed, "answer files and provenance rows differ");
    let tested: BTreeSet<String> = test_source
        .split('"')
        .filter(|s| s.len() > extension.len() && s.ends_with(extension))
        .filter(|s| !s.contains(char::is_whitespace))
        .map(str::to_string)
        .collect();
    let untested: Vec<&String> = files.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "golden answers no test decodes: {untested:?}"
    );
    let missing: Vec<&String> = tested.difference(&files).collect();
    assert!(
        missing.is_empty(),
        "tests name answers that are not there: {missing:?}"
    );
}
