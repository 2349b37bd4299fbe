//! The error type of backup-timescale.
//!
//! Every error names the database and both versions where versions are at fault, and
//! becomes a [`backup_core::Error::Datastore`] with datastore `timescale` at the crate
//! boundary. PostgreSQL errors pass through unchanged (datastore `postgres`).

use backup_core::ErrorKind;
use backup_postgres::PostgresError;

/// Everything that can go wrong specifically with TimescaleDB.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimescaleError {
    /// The source database does not use TimescaleDB.
    #[error("database \"{database}\" on {server} has no timescaledb extension: back it up with `dbseal backup postgres`")]
    NotTimescale {
        /// The database.
        database: String,
        /// `host:port`.
        server: String,
    },
    /// The target server cannot create the extension at all.
    #[error("the target server {server} has no timescaledb extension installed; the backup needs timescaledb {needed} (install it, with shared_preload_libraries = 'timescaledb')")]
    ExtensionMissing {
        /// `host:port`.
        server: String,
        /// The version the backup recorded.
        needed: String,
    },
    /// Extension or PostgreSQL versions differ between the backup and the target.
    #[error("{what}: the backup was made with {backup}, the target {target_desc} has {target}; restore on a matching server or pass --allow-version-mismatch")]
    VersionMismatch {
        /// What differs ("timescaledb extension version", "PostgreSQL major version").
        what: String,
        /// The backup's version.
        backup: String,
        /// The target's version.
        target: String,
        /// The target (`host:port/database`).
        target_desc: String,
    },
    /// The manifest is not a TimescaleDB backup or misses TimescaleDB facts.
    #[error("{0}")]
    WrongBackup(String),
    /// The target is not empty and `replace` was not asked.
    #[error("target database {0} is not empty: pass --replace to replace it (a staging database is restored first and swapped in only on success)")]
    NotEmpty(String),
    /// A restored hypertable does not match the manifest.
    #[error("{0}")]
    Mismatch(String),
    /// A PostgreSQL error.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
}

impl TimescaleError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TimescaleError::NotTimescale { .. } | TimescaleError::WrongBackup(_) => {
                ErrorKind::Config
            }
            TimescaleError::ExtensionMissing { .. } | TimescaleError::VersionMismatch { .. } => {
                ErrorKind::VersionMismatch
            }
            TimescaleError::NotEmpty(_) => ErrorKind::Refused,
            TimescaleError::Mismatch(_) => ErrorKind::Verification,
            TimescaleError::Postgres(e) => e.kind(),
        }
    }
}

impl From<TimescaleError> for backup_core::Error {
    fn from(e: TimescaleError) -> Self {
        match e {
            TimescaleError::Postgres(p) => p.into(),
            other => backup_core::Error::datastore("timescale", other.kind(), other.to_string()),
        }
    }
}

/// The result type of backup-timescale internals.
pub type TsResult<T> = std::result::Result<T, TimescaleError>;
