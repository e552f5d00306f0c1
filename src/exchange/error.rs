//! Typed EWS outcomes. Messages never contain credentials: they are built from response
//! codes, HTTP statuses and URLs only.

use std::fmt;

/// Codes that concern one rep's mailbox (the status "User recognized by Exchange service
/// account"), not the run.
pub const PER_REP_CODES: &[&str] = &[
    "ErrorImpersonateUserDenied",
    "ErrorNonExistentMailbox",
    "ErrorImpersonationDenied",
    "ErrorMailboxMoveInProgress",
    "ErrorMailboxStoreUnavailable",
];

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
        self.code().is_some_and(|c| PER_REP_CODES.contains(&c))
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
        PER_REP_CODES.contains(&self.code.as_str())
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ItemError {}
