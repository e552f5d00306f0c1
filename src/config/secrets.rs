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
            let cannot =
                |e: std::io::Error| format!("cannot read secret file `{}`: {e}", path.display());
            let file = std::fs::File::open(&path).map_err(cannot)?;
            // A device or a pipe (`/dev/zero`, a FIFO) would never end or never answer.
            if !file.metadata().map_err(cannot)?.is_file() {
                return Err(format!(
                    "secret file `{}` is not a regular file",
                    path.display()
                ));
            }
            // The length is checked on what is read, not on metadata that can change.
            let mut bytes = Vec::new();
            file.take(MAX_SECRET_FILE + 1)
                .read_to_end(&mut bytes)
                .map_err(cannot)?;
            if bytes.len() as u64 > MAX_SECRET_FILE {
                return Err(format!(
                    "secret file `{}` is larger than 64 KiB; is it the right file?",
                    path.display()
                ));
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
