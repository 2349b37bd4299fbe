//! The errors of backup-redis.
//!
//! Policy (as in backup-core): every error names the server (`host:port`, never a
//! password), the operation and what to do; each variant maps to one
//! [`backup_core::ErrorKind`] so the CLI and the Python bindings pick an exit code or an
//! exception class without parsing messages. Errors leave this crate as
//! [`backup_core::Error::Datastore`] (datastore `redis <host:port>`) or, for a malformed
//! RDB stream, [`backup_core::Error::Format`] with the byte offset.

use backup_core::ErrorKind;

/// Everything that can go wrong talking to a Redis server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The configuration or the URL is invalid.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up or the handshake failed.
    #[error("TLS with {addr}: {message}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// What failed.
        message: String,
    },
    /// AUTH was refused (wrong password or user).
    #[error("authentication failed: {message}")]
    Auth {
        /// The server's reply.
        message: String,
    },
    /// The server refused an operation for lack of permission (ACL, managed service).
    #[error("{operation} refused: {message}")]
    Refused {
        /// What was attempted.
        operation: String,
        /// The server's reply and what to do.
        message: String,
    },
    /// The server answered something this crate did not expect.
    #[error("protocol error during {operation}: {message}")]
    Protocol {
        /// What was being done.
        operation: String,
        /// What was unexpected.
        message: String,
    },
    /// The connection broke or timed out.
    #[error("connection lost during {operation}: {message}")]
    ConnectionLost {
        /// What was being done.
        operation: String,
        /// Why (bytes received so far, the I/O error).
        message: String,
    },
    /// A command failed on the server.
    #[error("{command} failed: {message}")]
    Command {
        /// The command (never its arguments: they may hold keys or values).
        command: String,
        /// The server's error reply.
        message: String,
    },
    /// The target database is not empty and replacing it was not asked for.
    #[error("{0}")]
    TargetNotEmpty(String),
    /// The backup's RDB version is newer than the target server can load.
    #[error("target Redis {target_version} cannot load RDB version {rdb_version} (it reads up to version {target_max}); restore into Redis {needed} or newer")]
    RdbTooNew {
        /// The target's `redis_version`.
        target_version: String,
        /// The highest RDB version the target loads.
        target_max: u32,
        /// The backup's RDB version.
        rdb_version: u32,
        /// The first Redis release that writes that version.
        needed: &'static str,
    },
    /// A key of a module type cannot be restored because the target lacks the module.
    #[error("{0}")]
    ModuleMissing(String),
}

impl RedisError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RedisError::Config(_) => ErrorKind::Config,
            RedisError::Connect { .. }
            | RedisError::Tls { .. }
            | RedisError::Auth { .. }
            | RedisError::ConnectionLost { .. } => ErrorKind::Connection,
            RedisError::Refused { .. } | RedisError::TargetNotEmpty(_) => ErrorKind::Refused,
            RedisError::RdbTooNew { .. } | RedisError::ModuleMissing(_) => {
                ErrorKind::VersionMismatch
            }
            // Malformed input from the server (or whatever listens there), a length over
            // a limit included: a format error, exit 4.
            RedisError::Protocol { .. } => ErrorKind::Verification,
            RedisError::Command { .. } => ErrorKind::Other,
        }
    }

    /// Converts into the core error, naming the server (`redis host:port`).
    pub fn at(self, addr: &str) -> backup_core::Error {
        let kind = self.kind();
        backup_core::Error::datastore(format!("redis {addr}"), kind, self.to_string())
    }
}

/// A malformed RDB stream, with the byte offset where it was found.
pub(crate) fn rdb_error(offset: u64, reason: impl std::fmt::Display) -> backup_core::Error {
    backup_core::Error::Format {
        format: "rdb".into(),
        reason: format!("at byte {offset}: {reason}"),
    }
}
