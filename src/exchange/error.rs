//! Typed EWS outcomes. Messages never contain credentials: they are built from response
//! codes, HTTP statuses and URLs only.

use crate::engine::connector::ErrorKind;
use std::fmt;

/// What a code that concerns one rep's mailbox (the status "User recognized by Exchange
/// service account"), not the run, means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxProblem {
    /// The service account may not impersonate the rep.
    ImpersonationDenied,
    /// The address names no mailbox.
    NoMailbox,
    /// The mailbox is there but cannot be used now (moving, its store down).
    Unavailable,
}

/// The codes that concern one rep's mailbox: the only list of them.
pub const PER_REP_CODES: &[(&str, MailboxProblem)] = &[
    (
        "ErrorImpersonateUserDenied",
        MailboxProblem::ImpersonationDenied,
    ),
    (
        "ErrorImpersonationDenied",
        MailboxProblem::ImpersonationDenied,
    ),
    ("ErrorNonExistentMailbox", MailboxProblem::NoMailbox),
    ("ErrorMailboxMoveInProgress", MailboxProblem::Unavailable),
    ("ErrorMailboxStoreUnavailable", MailboxProblem::Unavailable),
];

/// What `code` says about the rep's mailbox, when it concerns the mailbox.
pub fn mailbox_problem(code: &str) -> Option<MailboxProblem> {
    PER_REP_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, p)| *p)
}

/// Codes of a folder operation whose folder (or the parent it names) is not there: real
/// servers answer GetFolder with ErrorItemNotFound, CreateFolder under a missing parent with
/// ErrorParentFolderNotFound, SyncFolderItems with ErrorSyncFolderNotFound; some operations
/// and older servers say ErrorFolderNotFound.
pub const FOLDER_MISSING_CODES: &[&str] = &[
    "ErrorFolderNotFound",
    "ErrorItemNotFound",
    "ErrorParentFolderNotFound",
    "ErrorSyncFolderNotFound",
];

/// Codes that mean "someone else changed it: refetch and decide again".
pub const CONFLICT_CODES: &[&str] = &["ErrorIrresolvableConflict", "ErrorStaleObject"];

/// Codes of the server's passing troubles: the same request may work later.
pub const TRANSIENT_CODES: &[&str] = &[
    "ErrorServerBusy",
    "ErrorInternalServerTransientError",
    "ErrorMailboxStoreUnavailable",
    "ErrorMailboxMoveInProgress",
    "ErrorTimeoutExpired",
];

/// The engine's kind of an EWS response code.
pub fn kind(code: &str) -> ErrorKind {
    match code {
        "ErrorItemNotFound" => ErrorKind::Gone,
        "ErrorAccessDenied" => ErrorKind::Denied,
        "ErrorServerBusy" => ErrorKind::Throttled,
        c if CONFLICT_CODES.contains(&c) => ErrorKind::Conflict,
        _ => ErrorKind::Other,
    }
}

/// What the user can do about a failure of `kind`, in Exchange's terms.
pub fn hint(kind: ErrorKind, retryable: bool) -> &'static str {
    match kind {
        ErrorKind::Gone => "The item was deleted meanwhile; the next run unlinks it.",
        ErrorKind::Denied => "Give the service account access to this mailbox's items.",
        ErrorKind::Conflict => {
            "The item was saved in Outlook while tether wrote it; the next run reads the save \
             and applies the conflict policy."
        }
        ErrorKind::Auth => {
            "Check the service account's user name and password (connections.exchange); \
             tether stops calling Exchange after one refusal per run so the account is not \
             locked out."
        }
        _ if retryable => "tether retries on the next run.",
        _ => "Check the item in the mailbox; tether retries on the next run.",
    }
}

/// What the user can do about a mailbox the service account cannot use.
pub fn mailbox_hint(problem: MailboxProblem) -> &'static str {
    match problem {
        MailboxProblem::ImpersonationDenied => {
            "Give the service account the ApplicationImpersonation role for this mailbox."
        }
        MailboxProblem::NoMailbox => {
            "Check that the user's Salesforce email is their Exchange primary address, or add \
             the mail domain to additional_domains."
        }
        MailboxProblem::Unavailable => "tether retries on the next run.",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EwsError {
    /// Configuration the client cannot work with (bad URL, plain http off loopback, CA file).
    Config(String),
    /// Connection failures and timeouts, after the bounded retries.
    Transport(String),
    /// HTTP 401/403: credentials refused.
    Unauthorized(String),
    /// Any other unexpected HTTP status.
    Http { status: u16, detail: String },
    /// A body that is not well-formed, hostile, or not the expected shape.
    Xml(String),
    /// A SOAP fault (whole request failed).
    Fault {
        code: String,
        message: String,
        back_off_ms: Option<u64>,
    },
    /// An error ResponseMessage for a single-message operation.
    Response { code: String, message: String },
    /// Autodiscover could not find the EWS URL.
    Autodiscover(String),
    /// The OAuth 2.0 token endpoint refused or answered nonsense.
    Token(String),
}

impl EwsError {
    /// The EWS response code, for faults and response messages.
    pub fn code(&self) -> Option<&str> {
        match self {
            EwsError::Fault { code, .. } | EwsError::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A problem with this rep's mailbox (not a failed run).
    pub fn is_per_rep(&self) -> bool {
        self.code().and_then(mailbox_problem).is_some()
    }

    /// The engine's kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EwsError::Unauthorized(_) | EwsError::Token(_) => ErrorKind::Auth,
            _ => self.code().map(kind).unwrap_or(ErrorKind::Other),
        }
    }

    pub fn is_conflict(&self) -> bool {
        self.code().is_some_and(|c| CONFLICT_CODES.contains(&c))
    }

    /// The folder a folder operation named is not there (only meaningful for GetFolder,
    /// FindFolder, CreateFolder and SyncFolderItems, where ErrorItemNotFound names the folder).
    pub fn is_folder_missing(&self) -> bool {
        matches!(self, EwsError::Response { .. })
            && self
                .code()
                .is_some_and(|c| FOLDER_MISSING_CODES.contains(&c))
    }
}

impl fmt::Display for EwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EwsError::Config(m) => write!(f, "Exchange configuration: {m}"),
            EwsError::Transport(m) => write!(f, "cannot reach Exchange: {m}"),
            EwsError::Unauthorized(m) => write!(f, "Exchange refused the credentials: {m}"),
            EwsError::Http { status, detail } => {
                write!(f, "Exchange answered HTTP {status}: {detail}")
            }
            EwsError::Xml(m) => write!(f, "unreadable answer from Exchange: {m}"),
            EwsError::Fault { code, message, .. } => write!(f, "Exchange fault {code}: {message}"),
            EwsError::Response { code, message } => write!(f, "Exchange error {code}: {message}"),
            EwsError::Autodiscover(m) => write!(f, "Autodiscover: {m}"),
            EwsError::Token(m) => write!(f, "OAuth 2.0 token: {m}"),
        }
    }
}

impl std::error::Error for EwsError {}

/// The outcome of one item in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub code: String,
    pub message: String,
}

impl ItemError {
    pub fn is_conflict(&self) -> bool {
        CONFLICT_CODES.contains(&self.code.as_str())
    }
    pub fn is_per_rep(&self) -> bool {
        mailbox_problem(&self.code).is_some()
    }
    pub fn is_transient(&self) -> bool {
        TRANSIENT_CODES.contains(&self.code.as_str())
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ItemError {}
