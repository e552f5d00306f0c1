//! Graph's failures in kinds the sync can act on. Graph answers a failure with
//! `{"error": {"code", "message", "innerError": {…}}}`; some 503s and 404s come without a body.

use serde_json::Value;

/// What a failed Graph request means for the sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The item or folder named is not there (deleted, or an empty-bodied 404).
    Gone,
    /// The user has no Exchange Online mailbox (unlicensed, soft-deleted, on premises, or
    /// no such user): nothing to sync for them.
    NoMailbox,
    /// The app may not open this mailbox (outside its RBAC for Applications scope or an
    /// Application Access Policy): this rep only.
    Denied,
    /// Throttled (429) beyond the retries.
    Throttled,
    /// The service failed or timed out (5xx) beyond the retries. For a create, whether it
    /// was made is unknown: look for it before creating again.
    Unavailable,
    /// The token was refused or could not be had.
    Auth,
    /// The delta cursor is no longer accepted: start a full round.
    CursorExpired,
    /// A conflict (409), e.g. `ErrorFolderExists`.
    Conflict,
    /// The request was refused as invalid (400 and the like).
    Invalid,
    /// No answer (connection failed) or an answer that is not what Graph sends.
    Transport,
}

/// A failed Graph request: its kind, Graph's code and message, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub kind: ErrorKind,
    /// HTTP status (0 when no answer came).
    pub status: u16,
    /// Graph's `error.code` (e.g. `ErrorAccessDenied`), empty when the body had none.
    pub code: String,
    /// What failed, in words (Graph's message, without request ids).
    pub message: String,
    /// What to do, when tether knows.
    pub hint: Option<String>,
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphError {}

impl GraphError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GraphError {
            kind,
            status: 0,
            code: String::new(),
            message: message.into(),
            hint: None,
        }
    }
}

/// Codes of a delta cursor the service no longer accepts (GRAPH.md §3).
const CURSOR_CODES: &[&str] = &[
    "SyncStateNotFound",
    "resyncRequired",
    "SyncStateInvalid",
    "InvalidDeltaToken",
    "ErrorInvalidIdMalformed",
];

/// The `error.code` and `error.message` of an error body, if it is one.
pub fn code_and_message(body: &Value) -> Option<(String, String)> {
    let e = body.get("error")?;
    let code = e.get("code")?.as_str()?.to_string();
    let message = e.get("message").and_then(Value::as_str).unwrap_or("");
    Some((code, message.to_string()))
}

/// Decodes a failed answer (`status`, its JSON body or `Value::Null` when it had none).
/// `what` says which request it was ("GET contactFolders of ana@corp.com"). `delta` is
/// true for a request that follows a delta cursor, where a 410 or a cursor code means
/// "start over" rather than "gone".
pub fn decode(status: u16, body: &Value, what: &str, delta: bool) -> GraphError {
    let (code, graph_message) = code_and_message(body).unwrap_or_default();
    let kind = kind_of(status, &code, delta);
    let said = if code.is_empty() {
        format!("{what}: HTTP {status} without an error body")
    } else if graph_message.is_empty() {
        format!("{what}: HTTP {status} {code}")
    } else {
        format!("{what}: HTTP {status} {code}: {graph_message}")
    };
    GraphError {
        kind,
        status,
        hint: hint(kind),
        code,
        message: said,
    }
}

fn kind_of(status: u16, code: &str, delta: bool) -> ErrorKind {
    if delta && (status == 410 || CURSOR_CODES.contains(&code)) {
        return ErrorKind::CursorExpired;
    }
    match (status, code) {
        (_, "MailboxNotEnabledForRESTAPI" | "ErrorInvalidUser" | "ResourceNotFound") => {
            ErrorKind::NoMailbox
        }
        (403, _) | (_, "ErrorAccessDenied") => ErrorKind::Denied,
        (401, _) | (_, "InvalidAuthenticationToken") => ErrorKind::Auth,
        (404 | 410, _) => ErrorKind::Gone,
        (409, _) | (_, "ErrorFolderExists" | "ErrorDuplicateTransactionId") => ErrorKind::Conflict,
        (429, _) => ErrorKind::Throttled,
        (500..=599, _) => ErrorKind::Unavailable,
        _ => ErrorKind::Invalid,
    }
}

fn hint(kind: ErrorKind) -> Option<String> {
    Some(match kind {
        ErrorKind::Denied => "the app may not open this mailbox: add the rep to the RBAC for \
             Applications management scope of the app's \"Application Contacts.ReadWrite\" and \
             \"Application Calendars.ReadWrite\" role assignments (check with \
             Test-ServicePrincipalAuthorization; `tether setup exchange` prints the \
             PowerShell), or to the group of its Application Access Policy"
            .into(),
        ErrorKind::NoMailbox => "this user has no Exchange Online mailbox (unlicensed, \
             soft-deleted, a guest, or hosted on premises): give them a licensed mailbox, or \
             leave them out of the sync configuration"
            .into(),
        ErrorKind::Auth => "the access token was refused: check the app registration's \
             application permissions Contacts.ReadWrite and Calendars.ReadWrite"
            .into(),
        ErrorKind::Throttled => {
            "Graph is throttling this mailbox; the other reps are unaffected: run again later"
                .into()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies_become_kinds_with_hints() {
        let body = |code: &str| json!({"error": {"code": code, "message": "m"}});
        let k = |status, code: &str| decode(status, &body(code), "GET x", false).kind;
        assert_eq!(k(403, "ErrorAccessDenied"), ErrorKind::Denied);
        assert_eq!(k(404, "MailboxNotEnabledForRESTAPI"), ErrorKind::NoMailbox);
        assert_eq!(k(404, "ResourceNotFound"), ErrorKind::NoMailbox);
        assert_eq!(k(404, "ErrorItemNotFound"), ErrorKind::Gone);
        assert_eq!(k(409, "ErrorFolderExists"), ErrorKind::Conflict);
        assert_eq!(k(429, "ApplicationThrottled"), ErrorKind::Throttled);
        assert_eq!(k(401, "InvalidAuthenticationToken"), ErrorKind::Auth);
        assert_eq!(k(400, "ErrorInvalidProperty"), ErrorKind::Invalid);
        // Only on a delta request is a 410 or a bad id "start over".
        assert_eq!(k(410, "SyncStateNotFound"), ErrorKind::Gone);
        let d = |status, code: &str| decode(status, &body(code), "delta", true).kind;
        assert_eq!(d(410, "SyncStateNotFound"), ErrorKind::CursorExpired);
        assert_eq!(d(400, "ErrorInvalidIdMalformed"), ErrorKind::CursorExpired);
        assert_eq!(d(400, "resyncRequired"), ErrorKind::CursorExpired);
        assert!(
            decode(403, &body("ErrorAccessDenied"), "GET x", false)
                .to_string()
                .contains("Test-ServicePrincipalAuthorization")
        );
    }

    #[test]
    fn empty_bodied_answers_are_named_by_status() {
        let e = decode(503, &Value::Null, "GET contacts of ana@corp.com", false);
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(
            e.message,
            "GET contacts of ana@corp.com: HTTP 503 without an error body"
        );
        assert_eq!(
            decode(404, &Value::Null, "GET x", false).kind,
            ErrorKind::Gone
        );
    }
}
