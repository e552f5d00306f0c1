//! Saved plans (`tether plan --out FILE`, `tether apply FILE`).
//!
//! A plan file binds what it was made from: the configuration's hash, the state's
//! generation, and the version (ChangeKey / SystemModstamp) of every record it touches, with
//! an expiry. It is signed with an HMAC whose key lives in the state store, never in the
//! file: a plan edited by hand (or made against another state) does not verify. It holds
//! ids and field names, never secrets. It also keeps the guards of `apply` as they were
//! decided when the plan was made (the delete threshold, what the empty-side guard refused),
//! so `apply FILE` holds the plan to them.

use chrono::{DateTime, Utc};
use ring::hmac;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// 2: the plan keeps apply's guards (`guards`). Format 1 files lack them and are refused.
/// 3: its `document` is a plan of format_version 2.0 (enumerated reasons, the Reps kinds).
pub const PLAN_FILE_FORMAT: u32 = 3;
/// Plan files are small; anything larger is not one of ours.
const MAX_PLAN_FILE: u64 = 256 * 1024 * 1024;

/// One operation the plan allows, with the versions of the records it was planned against.
pub use crate::engine::plan::OperationKey;
use crate::engine::plan::Side;

/// The signed content of a plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    pub tether_version: String,
    pub org: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub config_hash: String,
    pub state_generation: u64,
    /// Unique per plan, so that applying it twice is recognised.
    pub plan_id: String,
    pub operations: Vec<OperationKey>,
    /// The plan as `--format json` printed it, to show again at apply.
    pub document: serde_json::Value,
    /// The configuration files or directories as given to `tether plan`, relative to the
    /// directory it ran in: `tether apply FILE` loads the configuration from them.
    #[serde(default)]
    pub config_paths: Vec<String>,
    /// `false`: made with `--refresh=false`, settings only; apply syncs no data.
    #[serde(default = "yes")]
    pub refresh: bool,
    /// Made with `--user`: only these reps are read and synced at apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// The guards of `apply` as decided when the plan was made.
    pub guards: Guards,
}

/// What the guards of `apply` decided when the plan was made. The overwrite warnings are
/// in `document`, shown again at apply, as plain `apply` shows them before it writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guards {
    /// `plan --delete-threshold`: more deletes than this need `apply --allow-deletes`.
    pub delete_threshold: usize,
    /// The deletes the empty-side guard refused, per rep and object; an apply that finds a
    /// refusal not listed here stops before it writes anything.
    pub refused: Vec<RefusedSide>,
}

/// One refusal of the empty-side guard: the rep's (Salesforce user id) records of `object`
/// all gone from `side` (`exchange` or `salesforce`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RefusedSide {
    pub rep: String,
    pub object: crate::model::ObjectKind,
    pub side: String,
}

impl RefusedSide {
    pub fn of(refusal: &crate::engine::plan::Refusal) -> RefusedSide {
        RefusedSide {
            rep: refusal.rep.clone(),
            object: refusal.object,
            side: match refusal.side {
                Side::Exchange => "exchange",
                Side::Salesforce => "salesforce",
            }
            .into(),
        }
    }

    /// As the cycle's `Reviewed` keys it; `None` for a side this build does not know.
    pub fn key(&self) -> Option<(String, crate::model::ObjectKind, Side)> {
        let side = match self.side.as_str() {
            "exchange" => Side::Exchange,
            "salesforce" => Side::Salesforce,
            _ => return None,
        };
        Some((self.rep.clone(), self.object, side))
    }
}

fn yes() -> bool {
    true
}

/// A new plan id: 16 random bytes, hex.
pub fn new_plan_id() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut id = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| "no randomness available for the plan id".to_string())?;
    Ok(hex(&id))
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    plan: SavedPlan,
    /// HMAC-SHA256 of the plan's canonical JSON, hex.
    signature: String,
}

/// Why a saved plan cannot be applied; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanFileError {
    Unreadable(String),
    NewerFormat(u32),
    OlderFormat(u32),
    Tampered,
    WrongOrg { plan: String, config: String },
    Expired { at: DateTime<Utc> },
    AlreadyApplied,
    Stale { plan: u64, state: u64 },
    ConfigChanged,
}

impl std::fmt::Display for PlanFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanFileError::Unreadable(e) => write!(f, "cannot read the saved plan: {e}"),
            PlanFileError::NewerFormat(v) => write!(
                f,
                "the saved plan has format {v}, newer than this tether reads ({PLAN_FILE_FORMAT}); apply it with the tether version that made it"
            ),
            PlanFileError::OlderFormat(v) => write!(
                f,
                "the saved plan has format {v}, made by an older tether (this one reads {PLAN_FILE_FORMAT}); run `tether plan --out` again"
            ),
            PlanFileError::Tampered => write!(
                f,
                "the saved plan does not verify: it was edited, or made against another state; run `tether plan` again"
            ),
            PlanFileError::WrongOrg { plan, config } => write!(
                f,
                "the saved plan is for org `{plan}`, the configuration is for `{config}`"
            ),
            PlanFileError::Expired { at } => write!(
                f,
                "the saved plan expired at {}; run `tether plan` again",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            PlanFileError::AlreadyApplied => {
                write!(
                    f,
                    "the saved plan was already applied; run `tether plan` again"
                )
            }
            PlanFileError::Stale { plan, state } => write!(
                f,
                "saved plan is stale: state generation {state}, plan made at {plan}; run `tether plan` again"
            ),
            PlanFileError::ConfigChanged => write!(
                f,
                "the configuration changed since the plan was made; run `tether plan` again"
            ),
        }
    }
}

impl std::error::Error for PlanFileError {}

fn canonical(plan: &SavedPlan) -> Vec<u8> {
    // serde_json writes struct fields in declaration order and maps sorted, so the bytes
    // are the same for the same plan.
    serde_json::to_vec(plan).expect("plan serializes")
}

fn sign(plan: &SavedPlan, key: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex(hmac::sign(&key, &canonical(plan)).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes the plan, signed with `key` (the state store's plan-signing key).
pub fn save(path: &Path, plan: &SavedPlan, key: &[u8]) -> std::io::Result<()> {
    let envelope = Envelope {
        signature: sign(plan, key),
        plan: plan.clone(),
    };
    let mut text = serde_json::to_string_pretty(&envelope).expect("plan serializes");
    text.push('\n');
    // Write then rename, so a killed `plan --out` never leaves half a file behind.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Reads a plan file's envelope without verifying it: `Ok(None)` when `path` is not a plan
/// file at all (a directory, a YAML configuration), so `tether apply PATH` can tell them
/// apart. A file that is not YAML and holds a JSON object is taken for a plan file, so a
/// damaged one is reported as such. Nothing read here is trusted before `load` verifies it.
pub fn peek(path: &Path) -> Result<Option<SavedPlan>, PlanFileError> {
    let is_yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if is_yaml || !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > MAX_PLAN_FILE {
        return Ok(None);
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    if !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    let not_a_plan = |e: &dyn std::fmt::Display| {
        PlanFileError::Unreadable(format!("{} is not a tether plan file: {e}", path.display()))
    };
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| not_a_plan(&e))?;
    check_format(&raw)?;
    serde_json::from_value::<Envelope>(raw)
        .map(|e| Some(e.plan))
        .map_err(|e| not_a_plan(&e))
}

/// A plan file of another format is refused before it is read further, saying what to do.
fn check_format(raw: &serde_json::Value) -> Result<(), PlanFileError> {
    match raw.pointer("/plan/format").and_then(|v| v.as_u64()) {
        Some(format) if format > u64::from(PLAN_FILE_FORMAT) => {
            Err(PlanFileError::NewerFormat(format as u32))
        }
        Some(format) if format < u64::from(PLAN_FILE_FORMAT) => {
            Err(PlanFileError::OlderFormat(format as u32))
        }
        _ => Ok(()),
    }
}

/// What a plan is checked against when it is applied.
pub struct CurrentState<'a> {
    pub now: DateTime<Utc>,
    pub org: &'a str,
    pub config_hash: &'a str,
    pub state_generation: u64,
    /// Plan ids already applied.
    pub applied_plan_ids: &'a [String],
}

/// Reads and verifies a saved plan. The checks run in the order a user can act on best.
pub fn load(
    path: &Path,
    key: &[u8],
    current: &CurrentState<'_>,
) -> Result<SavedPlan, PlanFileError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PlanFileError::Unreadable(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_PLAN_FILE {
        return Err(PlanFileError::Unreadable(format!(
            "{} is too large to be a plan file",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| PlanFileError::Unreadable(format!("{}: {e}", path.display())))?;
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        PlanFileError::Unreadable(format!("{} is not a tether plan file: {e}", path.display()))
    })?;
    check_format(&raw)?;
    let envelope: Envelope = serde_json::from_value(raw).map_err(|e| {
        PlanFileError::Unreadable(format!("{} is not a tether plan file: {e}", path.display()))
    })?;
    let signature = unhex(&envelope.signature).ok_or(PlanFileError::Tampered)?;
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&hmac_key, &canonical(&envelope.plan), &signature)
        .map_err(|_| PlanFileError::Tampered)?;
    let plan = envelope.plan;
    if plan.org != current.org {
        return Err(PlanFileError::WrongOrg {
            plan: plan.org,
            config: current.org.to_string(),
        });
    }
    if current.applied_plan_ids.contains(&plan.plan_id) {
        return Err(PlanFileError::AlreadyApplied);
    }
    if current.now >= plan.expires_at {
        return Err(PlanFileError::Expired {
            at: plan.expires_at,
        });
    }
    if plan.state_generation != current.state_generation {
        return Err(PlanFileError::Stale {
            plan: plan.state_generation,
            state: current.state_generation,
        });
    }
    if plan.config_hash != current.config_hash {
        return Err(PlanFileError::ConfigChanged);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn plan() -> SavedPlan {
        SavedPlan {
            format: PLAN_FILE_FORMAT,
            tether_version: "0.1.0".into(),
            org: "acme".into(),
            created_at: t("2026-11-23T10:00:00Z"),
            expires_at: t("2026-11-24T10:00:00Z"),
            config_hash: "c0ffee".into(),
            state_generation: 41,
            plan_id: "plan-1".into(),
            operations: vec![OperationKey {
                rep: "a@acme.com".into(),
                object: "contact".into(),
                action: "update_exchange".into(),
                exchange_id: Some("AAMk".into()),
                exchange_version: Some("CQAAAB".into()),
                salesforce_id: Some("003A0000001".into()),
                salesforce_version: Some("2026-11-23T09:00:00.000+0000".into()),
            }],
            document: serde_json::json!({"format_version": crate::plan::document::FORMAT_VERSION}),
            config_paths: vec!["org".into()],
            refresh: true,
            users: vec![],
            guards: Guards {
                delete_threshold: 100,
                refused: vec![],
            },
        }
    }

    fn check(
        path: &Path,
        generation: u64,
        now: &str,
        applied: &[String],
    ) -> Result<SavedPlan, PlanFileError> {
        load(
            path,
            KEY,
            &CurrentState {
                now: t(now),
                org: "acme",
                config_hash: "c0ffee",
                state_generation: generation,
                applied_plan_ids: applied,
            },
        )
    }

    #[test]
    fn a_fresh_plan_applies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        save(&path, &plan(), KEY).unwrap();
        assert_eq!(
            check(&path, 41, "2026-11-23T12:00:00Z", &[]).unwrap(),
            plan()
        );
    }

    #[test]
    fn stale_expired_tampered_and_applied_twice_are_refused_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        save(&path, &plan(), KEY).unwrap();
        let stale = check(&path, 43, "2026-11-23T12:00:00Z", &[]).unwrap_err();
        assert_eq!(
            stale.to_string(),
            "saved plan is stale: state generation 43, plan made at 41; run `tether plan` again"
        );
        let expired = check(&path, 41, "2026-11-24T10:00:00Z", &[]).unwrap_err();
        assert_eq!(
            expired.to_string(),
            "the saved plan expired at 2026-11-24 10:00 UTC; run `tether plan` again"
        );
        let twice = check(&path, 41, "2026-11-23T12:00:00Z", &["plan-1".into()]).unwrap_err();
        assert_eq!(twice, PlanFileError::AlreadyApplied);
        // An edit by hand: raise the expiry.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("2026-11-24T10:00:00Z", "2027-11-24T10:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            check(&path, 41, "2026-11-23T12:00:00Z", &[]).unwrap_err(),
            PlanFileError::Tampered
        );
    }

    #[test]
    fn another_states_key_does_not_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        save(&path, &plan(), b"another state's key").unwrap();
        assert_eq!(
            check(&path, 41, "2026-11-23T12:00:00Z", &[]).unwrap_err(),
            PlanFileError::Tampered
        );
    }

    #[test]
    fn peek_tells_plan_files_from_configurations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.tfplan");
        save(&path, &plan(), KEY).unwrap();
        assert_eq!(peek(&path).unwrap(), Some(plan()));
        let config = dir.path().join("tether.yaml");
        std::fs::write(&config, "version: 1\n").unwrap();
        assert_eq!(peek(&config).unwrap(), None);
        assert_eq!(peek(dir.path()).unwrap(), None);
        let json = dir.path().join("other.json");
        std::fs::write(&json, r#"{"version": 1}"#).unwrap();
        assert!(matches!(peek(&json), Err(PlanFileError::Unreadable(_))));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let cut = peek(&path).unwrap_err().to_string();
        assert!(
            cut.contains("plan.tfplan is not a tether plan file"),
            "{cut}"
        );
        assert_ne!(new_plan_id().unwrap(), new_plan_id().unwrap());
    }

    #[test]
    fn garbage_and_newer_formats_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "\u{0}\u{1}not json").unwrap();
        assert!(matches!(
            check(&path, 41, "2026-11-23T12:00:00Z", &[]),
            Err(PlanFileError::Unreadable(_))
        ));
        std::fs::write(&path, r#"{"plan": {"format": 9}, "signature": ""}"#).unwrap();
        assert_eq!(
            check(&path, 41, "2026-11-23T12:00:00Z", &[]).unwrap_err(),
            PlanFileError::NewerFormat(9)
        );
        // Format 1 kept no guards: refused, not applied without them.
        std::fs::write(&path, r#"{"plan": {"format": 1}, "signature": ""}"#).unwrap();
        let old = check(&path, 41, "2026-11-23T12:00:00Z", &[]).unwrap_err();
        assert_eq!(old, PlanFileError::OlderFormat(1));
        assert!(
            old.to_string().contains("run `tether plan --out` again"),
            "{old}"
        );
        assert_eq!(peek(&path).unwrap_err(), PlanFileError::OlderFormat(1));
    }
}
