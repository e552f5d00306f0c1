//! Finding and merging configuration files.
//!
//! A PATH is a file or a directory. In a directory tree, a file with a top-level `org` key is
//! the root of a configuration; files without one are fragments (say, one sync configuration
//! each) merged into it. A tree with one root is one configuration; a directory whose files
//! are several roots (like `examples/`) holds one configuration per root file, and each
//! subdirectory is looked at the same way.

use super::diag::Diagnostic;
use super::source::{FileId, SourceFile, Sources, Span};
use super::yaml::{self, Kind, Node};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One configuration: the files it was merged from and the merged tree.
#[derive(Debug)]
pub struct Unit {
    /// What the user calls it: the root file, or the directory.
    pub label: PathBuf,
    /// Where `${file:…}` references are resolved from.
    pub home: PathBuf,
    pub files: Vec<FileId>,
    pub tree: Node,
}

struct Parsed {
    id: FileId,
    /// Path relative to the directory being grouped.
    rel: PathBuf,
    root: Node,
}

impl Parsed {
    fn is_root(&self) -> bool {
        self.root.get("org").is_some()
    }
}

/// Loads every PATH. Problems become diagnostics; the units that could be built are returned.
pub fn load(paths: &[PathBuf], sources: &mut Sources, diags: &mut Vec<Diagnostic>) -> Vec<Unit> {
    let mut units = Vec::new();
    for path in paths {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                diags.push(Diagnostic::error(
                    None,
                    format!("{}: no such file or directory", path.display()),
                ));
                continue;
            }
            Err(e) => {
                diags.push(Diagnostic::error(
                    None,
                    format!("{}: cannot read: {e}", path.display()),
                ));
                continue;
            }
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            let mut visited = HashSet::new();
            collect_yaml(path, Path::new(""), &mut files, &mut visited, diags);
            if files.is_empty() {
                diags.push(
                    Diagnostic::error(
                        None,
                        format!("{}: no YAML files (*.yaml, *.yml) found", path.display()),
                    )
                    .with_hint(
                        "point tether at a configuration file or a directory that holds one",
                    ),
                );
                continue;
            }
            let parsed: Vec<Parsed> = files
                .into_iter()
                .filter_map(|rel| {
                    let (id, root) = read(&path.join(&rel), sources, diags, false)?;
                    if !is_tether_file(&root) {
                        diags.push(Diagnostic::info(
                            Some(sources.file_start(id)),
                            "not a tether file (none of its top-level keys is tether's); ignored",
                        ));
                        return None;
                    }
                    Some(Parsed { id, rel, root })
                })
                .collect();
            group(path, Path::new(""), parsed, sources, diags, &mut units);
        } else if let Some((id, root)) = read(path, sources, diags, true) {
            let home = path.parent().unwrap_or(Path::new("")).to_path_buf();
            units.push(Unit {
                label: path.clone(),
                home,
                files: vec![id],
                tree: root,
            });
        }
    }
    units
}

/// The top-level keys of a configuration file.
const TOP_LEVEL_KEYS: &[&str] = &[
    "version",
    "org",
    "connections",
    "outlook_integration",
    "sync_configurations",
];

/// Whether a YAML file found in a directory is meant for tether. A repository also holds
/// other YAML (CI workflows, manifests); those are skipped, but a file whose keys are near
/// misses of tether's (`sync_configuration:`) is kept so that its typo is reported.
fn is_tether_file(root: &Node) -> bool {
    let known: Vec<String> = TOP_LEVEL_KEYS.iter().map(|k| k.to_string()).collect();
    root.entries().iter().any(|(k, _)| {
        let key = yaml::key_text(k);
        known.contains(&key) || super::schema::did_you_mean(&key, &known).is_some()
    })
}

/// YAML files below `dir`, sorted, skipping hidden entries (`.git`, `.tether`). Symbolic
/// links are followed, but each directory is read once (`visited` holds the canonical paths
/// read so far), so a link back up the tree adds nothing. A `*.yaml` that is not a regular
/// file (a FIFO, a device) is reported, never opened: reading it could block or never end.
fn collect_yaml(
    base: &Path,
    rel: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) {
    let dir = base.join(rel);
    let cannot_read = |e: std::io::Error| {
        Diagnostic::error(
            None,
            format!("{}: cannot read directory: {e}", dir.display()),
        )
    };
    match std::fs::canonicalize(&dir) {
        Ok(canonical) if !visited.insert(canonical.clone()) => {
            diags.push(Diagnostic::info(
                None,
                format!(
                    "{} is {} again (a symbolic link): read once, not twice",
                    dir.display(),
                    canonical.display()
                ),
            ));
            return;
        }
        Ok(_) => {}
        Err(e) => return diags.push(cannot_read(e)),
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => return diags.push(cannot_read(e)),
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let child = rel.join(&name);
        let full = base.join(&child);
        let is_yaml = matches!(
            full.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        // Follows symbolic links: what counts is what the link points at.
        match std::fs::metadata(&full) {
            Ok(meta) if meta.is_dir() => collect_yaml(base, &child, out, visited, diags),
            Ok(meta) if is_yaml && !meta.is_file() => diags.push(
                Diagnostic::error(None, not_regular(&full, &meta))
                    .with_hint("configuration files are regular files; remove or rename it"),
            ),
            Ok(_) if is_yaml => out.push(child),
            Err(e) if is_yaml => diags.push(Diagnostic::error(
                None,
                format!("{}: cannot read: {e}", full.display()),
            )),
            _ => {}
        }
    }
}

/// "PATH is not a regular file (it is a FIFO)".
fn not_regular(path: &Path, meta: &std::fs::Metadata) -> String {
    let what = file_kind(meta);
    format!("{} is not a regular file (it is {what})", path.display())
}

/// What a path that is not a regular file is, for messages.
#[cfg(unix)]
pub(super) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
pub(super) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// A configuration file's bytes, at most `MAX_FILE_BYTES + 1` of them. Only a regular file
/// is opened (checked before opening, since opening a FIFO blocks, and again on the opened
/// file, which is what is read); `Err` is the finding.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("{}: cannot read: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    let mut bytes = Vec::new();
    file.take(yaml::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    Ok(bytes)
}

/// Reads and parses one file; `None` after recording why it cannot be used.
fn read(
    path: &Path,
    sources: &mut Sources,
    diags: &mut Vec<Diagnostic>,
    given_alone: bool,
) -> Option<(FileId, Node)> {
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(message) => {
            diags.push(Diagnostic::error(None, message));
            return None;
        }
    };
    let decoded = if bytes.len() > yaml::MAX_FILE_BYTES {
        // Only the cap was read; the size on disk says how far over it the file is.
        let len = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        Err((0, yaml::too_large(len.max(bytes.len() as u64))))
    } else {
        yaml::decode(&bytes)
    };
    let text = match decoded {
        Ok(text) => text,
        Err((byte, message)) => {
            // Show the valid prefix only, so positions can be computed.
            let prefix =
                String::from_utf8_lossy(&bytes[..byte.min(bytes.len()).min(yaml::MAX_FILE_BYTES)])
                    .into_owned();
            let file = SourceFile::new(path.to_path_buf(), prefix);
            let pos = file.pos_of_byte(file.text.len());
            let id = sources.add(file);
            let span = Span {
                file: id,
                start: pos,
                end: pos,
            };
            diags.push(Diagnostic::error(Some(span), message));
            return None;
        }
    };
    let id = sources.add(SourceFile::new(path.to_path_buf(), text));
    match yaml::parse(id, sources.get(id)) {
        Err(d) => {
            diags.push(*d);
            None
        }
        Ok(None) => {
            let d = Diagnostic::new(
                if given_alone { super::diag::Severity::Error } else { super::diag::Severity::Warning },
                Some(sources.file_start(id)),
                if given_alone { "file is empty" } else { "file is empty; ignored" },
            )
            .with_hint("a configuration needs at least `version`, `org` and `connections`; see examples/quickstart.yaml");
            diags.push(d);
            None
        }
        Ok(Some(root)) if !matches!(root.kind, Kind::Map(_)) => {
            diags.push(
                Diagnostic::error(Some(root.span), "the top level must be a mapping of keys")
                    .with_hint("start with `version: 1`, then `org:`, `connections:` and `sync_configurations:`"),
            );
            None
        }
        Ok(Some(root)) => Some((id, root)),
    }
}

/// Splits the parsed files of a directory (relative to `base.join(rel)`) into units.
fn group(
    base: &Path,
    rel: &Path,
    files: Vec<Parsed>,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
    units: &mut Vec<Unit>,
) {
    let roots = files.iter().filter(|f| f.is_root()).count();
    if roots <= 1 {
        let dir = base.join(rel);
        if roots == 0 {
            diags.push(
                Diagnostic::error(
                    None,
                    format!(
                        "{}: no file defines `org`, so these files are not a configuration",
                        dir.display()
                    ),
                )
                .with_hint("one file of a configuration holds `version`, `org` and `connections`"),
            );
            return;
        }
        let mut files = files;
        // The root first, so the merged tree starts where the configuration does.
        files.sort_by_key(|f| !f.is_root());
        let label = if files.len() == 1 {
            base.join(&files[0].rel)
        } else {
            dir.clone()
        };
        let unit_files: Vec<FileId> = files.iter().map(|f| f.id).collect();
        let mut trees = Vec::new();
        for f in files {
            let mut root = f.root;
            let sub = f
                .rel
                .strip_prefix(rel)
                .unwrap_or(&f.rel)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            rebase_file_refs(&mut root, &sub);
            trees.push(root);
        }
        units.push(Unit {
            label,
            home: dir,
            files: unit_files,
            tree: merge(trees, diags),
        });
        return;
    }
    // Several configurations: root files directly here stand alone; subdirectories are
    // grouped on their own; a fragment directly here belongs to none of them.
    let mut subdirs: Vec<(PathBuf, Vec<Parsed>)> = Vec::new();
    for f in files {
        let inner = f.rel.strip_prefix(rel).unwrap_or(&f.rel).to_path_buf();
        let mut parts = inner.components();
        let first = parts.next().map(|c| PathBuf::from(c.as_os_str()));
        let is_direct = parts.next().is_none();
        if is_direct {
            if f.is_root() {
                units.push(Unit {
                    label: base.join(&f.rel),
                    home: base.join(rel),
                    files: vec![f.id],
                    tree: f.root,
                });
            } else {
                diags.push(
                    Diagnostic::error(Some(sources.file_start(f.id)), "this file has no `org` and its directory holds several configurations, so it belongs to none")
                        .with_hint("move it into the directory of the configuration it belongs to"),
                );
            }
        } else if let Some(first) = first {
            match subdirs.iter_mut().find(|(d, _)| *d == first) {
                Some((_, list)) => list.push(f),
                None => subdirs.push((first, vec![f])),
            }
        }
    }
    for (dir, list) in subdirs {
        group(base, &rel.join(dir), list, sources, diags, units);
    }
}

/// `${file:keys/sf.pem}` in `sub/x.yaml` becomes `${file:sub/keys/sf.pem}`, so references
/// resolve from the configuration's home whichever file they were written in.
fn rebase_file_refs(node: &mut Node, sub: &Path) {
    if sub.as_os_str().is_empty() {
        return;
    }
    match &mut node.kind {
        Kind::Str(s) => {
            if let Some(p) = s.strip_prefix("${file:").and_then(|r| r.strip_suffix('}'))
                && Path::new(p).is_relative()
            {
                *s = format!("${{file:{}}}", sub.join(p).display());
            }
        }
        Kind::Seq(items) => items.iter_mut().for_each(|n| rebase_file_refs(n, sub)),
        Kind::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, v)| rebase_file_refs(v, sub)),
        _ => {}
    }
}

/// Merges the top-level mappings of a configuration's files: `sync_configurations` lists
/// are joined, `connections` are merged one level down, and anything else defined twice
/// is an error naming both places.
fn merge(trees: Vec<Node>, diags: &mut Vec<Diagnostic>) -> Node {
    let mut trees = trees.into_iter();
    let mut merged = trees.next().expect("a unit has a file");
    for tree in trees {
        let Kind::Map(entries) = tree.kind else {
            continue;
        };
        for (key, value) in entries {
            merge_entry(&mut merged, key, value, 0, diags);
        }
    }
    merged
}

fn merge_entry(into: &mut Node, key: Node, value: Node, depth: usize, diags: &mut Vec<Diagnostic>) {
    let Kind::Map(entries) = &mut into.kind else {
        return;
    };
    let name = yaml::key_text(&key);
    let Some((first_key, existing)) = entries.iter_mut().find(|(k, _)| yaml::key_text(k) == name)
    else {
        entries.push((key, value));
        return;
    };
    match (&mut existing.kind, value.kind, name.as_str(), depth) {
        (Kind::Seq(items), Kind::Seq(more), "sync_configurations", 0) => items.extend(more),
        (Kind::Map(_), Kind::Map(more), "connections", 0) => {
            for (k, v) in more {
                merge_entry(existing, k, v, 1, diags);
            }
        }
        _ => diags.push(
            Diagnostic::error(
                Some(key.span),
                format!("`{name}` is defined in more than one file"),
            )
            .with_related("also defined", first_key.span)
            .with_hint("define it in one file only"),
        ),
    }
}
