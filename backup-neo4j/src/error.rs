//! Errors of backup-neo4j.
//!
//! Policy: every failure reaches the user as a [`backup_core::Error::Datastore`] whose
//! datastore is `neo4j <host>/<database>` (never with credentials) and whose message
//! says what was being done ("exporting nodes", "creating relationships of type
//! KNOWS") and what the server answered. [`Neo4jError`] is the crate's own error; it
//! converts into the core error, choosing the [`ErrorKind`] from the server's status
//! code, so the CLI and the Python bindings can map it without parsing text.

use backup_core::{Error, ErrorKind};

/// A failure talking to a Neo4j server or a `neo4j-admin` process.
#[derive(Debug, thiserror::Error)]
#[error("{target}: {operation}: {detail}")]
pub struct Neo4jError {
    /// `neo4j 127.0.0.1:7687/neo4j`, without credentials.
    pub target: String,
    /// What was being done.
    pub operation: String,
    /// What went wrong (the server's code and message, or the driver's error).
    pub detail: String,
    /// The classification.
    pub kind: ErrorKind,
}

impl Neo4jError {
    /// An error of the given kind.
    pub fn new(
        target: impl Into<String>,
        operation: impl Into<String>,
        kind: ErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        Neo4jError {
            target: target.into(),
            operation: operation.into(),
            detail: detail.into(),
            kind,
        }
    }

    /// Classifies a driver error.
    pub fn from_driver(
        target: impl Into<String>,
        operation: impl Into<String>,
        err: &neo4rs::Error,
    ) -> Self {
        let (kind, detail) = classify(err);
        Neo4jError::new(target, operation, kind, detail)
    }
}

impl From<Neo4jError> for Error {
    fn from(e: Neo4jError) -> Self {
        Error::datastore(e.target, e.kind, format!("{}: {}", e.operation, e.detail))
    }
}

/// The kind and the user-facing text of a driver error.
fn classify(err: &neo4rs::Error) -> (ErrorKind, String) {
    use neo4rs::Error as E;
    match err {
        E::Neo4j(e) => {
            let code = e.code();
            let kind = if code.starts_with("Neo.ClientError.Security.") {
                ErrorKind::Connection
            } else if code == "Neo.ClientError.Database.DatabaseNotFound" {
                ErrorKind::NotFound
            } else if code.starts_with("Neo.TransientError.") {
                ErrorKind::Connection
            } else {
                ErrorKind::Other
            };
            let hint = if code == "Neo.ClientError.Security.Unauthorized" {
                " (wrong user name or password)"
            } else {
                ""
            };
            (kind, format!("server error {code}: {}{hint}", e.message()))
        }
        E::AuthenticationError(m) => (
            ErrorKind::Connection,
            format!("authentication failed (wrong user name or password?): {m}"),
        ),
        E::IOError { detail } => (
            ErrorKind::Connection,
            format!("connection failed or lost: {detail}"),
        ),
        E::ConnectionError | E::ConnectionTimedOut | E::ServerUnavailableError(_) => (
            ErrorKind::Connection,
            format!("connection failed or lost: {err}"),
        ),
        E::UrlParseError(_) | E::UnsupportedScheme(_) | E::InvalidDnsName(_) | E::InvalidConfig => {
            (ErrorKind::Config, err.to_string())
        }
        E::UnsupportedVersion(..) | E::ProtocolMismatch(_) => {
            (ErrorKind::VersionMismatch, err.to_string())
        }
        other => (ErrorKind::Other, other.to_string()),
    }
}
