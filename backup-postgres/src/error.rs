//! The error type of backup-postgres.
//!
//! Error policy:
//! - Every error names the thing at fault (the server as `host:port/database`, the
//!   binary with its path, the table) and what to do about it where that is known
//!   ("install postgresql-client-16", "use --replace").
//! - No error carries a secret: connection targets are shown without password, tool
//!   output is passed through as PostgreSQL prints it (its messages never contain the
//!   password it was given), and URLs go through [`backup_core::redact_url`].
//! - At the crate boundary every error becomes a [`backup_core::Error::Datastore`] with
//!   datastore `postgres` and the [`ErrorKind`] chosen here, so the CLI and the Python
//!   bindings map it without parsing messages.

use backup_core::ErrorKind;

/// The result type of backup-postgres internals.
pub type PgResult<T> = std::result::Result<T, PostgresError>;

/// Everything that can go wrong talking to PostgreSQL or its tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The configuration is invalid (bad URL, conflicting options, empty names).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server could not be reached or refused the connection or the credentials.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// `host:port/database as user`, never with a password.
        target: String,
        /// The server's or the network's message.
        reason: String,
    },
    /// The database asked for does not exist.
    #[error("database \"{database}\" does not exist on {server}")]
    NoSuchDatabase {
        /// The database name.
        database: String,
        /// `host:port`.
        server: String,
    },
    /// A query failed.
    #[error("{target}: {what} failed: {reason}")]
    Query {
        /// `host:port/database`.
        target: String,
        /// What was being done.
        what: String,
        /// The server's message.
        reason: String,
    },
    /// A PostgreSQL client binary is missing or unusable.
    #[error("{0}")]
    Binary(String),
    /// A client binary is too old for the server or the archive.
    #[error("{0}")]
    Version(String),
    /// pg_dump, pg_restore, pg_dumpall or psql failed.
    #[error("{tool} failed ({status}){detail}")]
    Tool {
        /// The binary, e.g. `pg_dump` (with its path when useful).
        tool: String,
        /// `exited with status 1`, `was killed by signal 9`.
        status: String,
        /// `: <last lines of its stderr>` or empty.
        detail: String,
    },
    /// The restore target is not empty and `replace` was not asked for.
    #[error("target database \"{database}\" on {server} is not empty ({found}): restore into an empty database, or pass --replace to overwrite the objects the backup contains")]
    NotEmpty {
        /// The target database.
        database: String,
        /// `host:port`.
        server: String,
        /// A few of the objects found.
        found: String,
    },
    /// The backup is not a PostgreSQL backup this sink can restore.
    #[error("{0}")]
    WrongArtifact(String),
    /// Level-3 verification found a difference.
    #[error("{0}")]
    Mismatch(String),
    /// An I/O error with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl PostgresError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PostgresError::Config(_) | PostgresError::Binary(_) => ErrorKind::Config,
            PostgresError::Connect { .. } => ErrorKind::Connection,
            PostgresError::NoSuchDatabase { .. } => ErrorKind::NotFound,
            PostgresError::Version(_) => ErrorKind::VersionMismatch,
            PostgresError::NotEmpty { .. } | PostgresError::WrongArtifact(_) => ErrorKind::Refused,
            PostgresError::Mismatch(_) => ErrorKind::Verification,
            PostgresError::Query { .. } | PostgresError::Tool { .. } | PostgresError::Io { .. } => {
                ErrorKind::Other
            }
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PostgresError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<PostgresError> for backup_core::Error {
    fn from(e: PostgresError) -> Self {
        backup_core::Error::datastore("postgres", e.kind(), e.to_string())
    }
}
