//! Resolving secret references when a connection is opened. Errors name the reference
//! (`${env:SF_TOKEN}`), never the value.

use super::model::SecretRef;
use super::rules::{Reference, parse_reference};
use crate::secret::Secret;
use std::path::Path;

/// Secret files larger than this are not credentials; refuse rather than read them.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads the secret a reference names. `home` is the configuration's directory, against
/// which relative `${file:…}` paths resolve.
pub fn resolve(reference: &SecretRef, home: &Path) -> Result<Secret, String> {
    resolve_text(&reference.0, home)
}

/// Like `resolve`, for fields that may hold either a literal or a reference (client ids).
pub fn resolve_value(text: &str, home: &Path) -> Result<String, String> {
    if text.starts_with("${") {
        resolve_text(text, home).map(|s| s.expose().to_string())
    } else {
        Ok(text.to_string())
    }
}

fn resolve_text(text: &str, home: &Path) -> Result<Secret, String> {
    match parse_reference(text)? {
        Reference::Env(name) => match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
            Ok(_) => Err(format!("environment variable `{name}` is empty")),
            Err(std::env::VarError::NotPresent) => {
                Err(format!("environment variable `{name}` is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable `{name}` is not valid UTF-8"))
            }
        },
        Reference::File(rel) => {
            use std::io::Read;
            let path = home.join(rel);
            let file = open_file(&path).map_err(|p| p.message)?;
            // The length is checked on what is read, not on metadata that can change.
            let mut bytes = Vec::new();
            file.take(MAX_SECRET_FILE + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read secret file `{}`: {e}", path.display()))?;
            if bytes.len() as u64 > MAX_SECRET_FILE {
                return Err(too_large(&path));
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("secret file `{}` is not UTF-8 text", path.display()))?;
            // Editors add a final newline; a password never ends with one. PEM keys keep
            // their inner newlines.
            let text = text.trim_end_matches(['\n', '\r']).to_string();
            if text.is_empty() {
                return Err(format!("secret file `{}` is empty", path.display()));
            }
            Ok(Secret::new(text))
        }
    }
}

/// Whether a secret file (one `open_file` accepted) holds nothing but line ends: read, it
/// would be an empty secret.
pub fn is_empty_file(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.iter().all(|c| matches!(c, b'\n' | b'\r')))
}

/// Why a secret file cannot be used, and what to do about it.
#[derive(Debug)]
pub struct FileProblem {
    pub message: String,
    pub hint: &'static str,
}

fn too_large(path: &Path) -> String {
    format!(
        "secret file `{}` is larger than 64 KiB; is it the right file?",
        path.display()
    )
}

/// Opens a secret file for reading, or says what is wrong with it: not there, a
/// directory, not a regular file (a device or a pipe would never end or never answer, so
/// it is refused before opening), too large, not readable. `validate` asks this much;
/// `resolve` then reads the file.
pub fn open_file(path: &Path) -> Result<std::fs::File, FileProblem> {
    let problem = |message: String, hint: &'static str| FileProblem { message, hint };
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => problem(
            format!("secret file `{}` does not exist", path.display()),
            "paths are relative to the file that names them",
        ),
        std::io::ErrorKind::PermissionDenied => problem(
            format!(
                "secret file `{}` cannot be read: permission denied",
                path.display()
            ),
            "let the user tether runs as read it (and no one else)",
        ),
        _ => problem(
            format!("cannot read secret file `{}`: {e}", path.display()),
            "check the path and the file",
        ),
    };
    let kind = |meta: &std::fs::Metadata| {
        if meta.is_dir() {
            Err(problem(
                format!(
                    "secret file `{}` is a directory, not a file",
                    path.display()
                ),
                "name the file inside it that holds the secret",
            ))
        } else if !meta.is_file() {
            Err(problem(
                format!(
                    "secret file `{}` is not a regular file (it is {})",
                    path.display(),
                    super::load::file_kind(meta)
                ),
                "point it at a file that holds the secret",
            ))
        } else if meta.len() > MAX_SECRET_FILE {
            Err(problem(
                too_large(path),
                "a secret file holds one secret (a password, a token, a PEM key)",
            ))
        } else {
            Ok(())
        }
    };
    kind(&std::fs::metadata(path).map_err(io)?)?;
    let file = std::fs::File::open(path).map_err(io)?;
    // Again on the opened file, which is what is read.
    kind(&file.metadata().map_err(io)?)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_files_relative_to_home_and_never_prints_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/pw"), "s3cret-value\n").unwrap();
        let secret = resolve(&SecretRef("${file:keys/pw}".into()), dir.path()).unwrap();
        assert_eq!(secret.expose(), "s3cret-value");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let err = resolve(&SecretRef("${file:keys/none}".into()), dir.path()).unwrap_err();
        assert!(err.contains("keys/none"), "{err}");
        std::fs::write(dir.path().join("keys/empty"), "\n").unwrap();
        let err = resolve(&SecretRef("${file:keys/empty}".into()), dir.path()).unwrap_err();
        assert!(err.ends_with("is empty"), "{err}");
        std::fs::write(dir.path().join("keys/big"), vec![b'x'; 64 * 1024 + 1]).unwrap();
        let err = resolve(&SecretRef("${file:keys/big}".into()), dir.path()).unwrap_err();
        assert!(err.contains("larger than 64 KiB"), "{err}");
        #[cfg(unix)]
        {
            // Would read forever.
            let err = resolve(&SecretRef("${file:/dev/zero}".into()), dir.path()).unwrap_err();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }

    #[test]
    fn unset_variables_are_named() {
        let err = resolve(
            &SecretRef("${env:TETHER_UNIT_TEST_NEVER_SET}".into()),
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "environment variable `TETHER_UNIT_TEST_NEVER_SET` is not set"
        );
        assert_eq!(
            resolve_value("plain-client-id", Path::new(".")).unwrap(),
            "plain-client-id"
        );
    }
}
