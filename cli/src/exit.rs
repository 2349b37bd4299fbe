//! The CLI's error type and its exit codes.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | failure not covered below (a database tool failed, I/O error) |
//! | 2    | invalid arguments, configuration, keys or URLs |
//! | 3    | backup or object not found |
//! | 4    | verification failed: corrupted, truncated or tampered artifact, contents differ |
//! | 5    | decryption failed: wrong identity or passphrase |
//! | 6    | a server or the store could not be reached, or refused the credentials |
//! | 7    | version mismatch (newer manifest format, tool older than the server...) |
//! | 8    | refused: target not empty, production without confirmation, manifest exists |
//! | 9    | `dbseal status`: a datastore is stale or failed its last verification |
//! | 10   | a backup set had a failed member (the others remain ordinary backups) |
//! | 130  | interrupted (Ctrl-C) |

use backup_core::ErrorKind;

/// A failure of a CLI command: the message shown and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// The message printed after `dbseal: error: `.
    pub message: String,
    /// The process exit code.
    pub code: i32,
}

impl CliError {
    /// A usage/config error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
        }
    }

    /// The stable name of the error class, for `--json` output.
    pub fn class(&self) -> &'static str {
        match self.code {
            2 => "config",
            3 => "not_found",
            4 => "verification",
            5 => "decryption",
            6 => "connection",
            7 => "version_mismatch",
            8 => "refused",
            9 => "unhealthy",
            10 => "set_failed",
            130 => "interrupted",
            _ => "failure",
        }
    }
}

/// The exit code of an error kind.
pub fn code_of(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Config => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Verification => 4,
        ErrorKind::Decryption => 5,
        ErrorKind::Connection => 6,
        ErrorKind::VersionMismatch => 7,
        ErrorKind::Refused => 8,
        ErrorKind::Interrupted => 130,
        _ => 1,
    }
}

impl From<backup_core::Error> for CliError {
    fn from(e: backup_core::Error) -> Self {
        CliError {
            code: code_of(e.kind()),
            message: e.to_string(),
        }
    }
}

/// The result type of CLI commands.
pub type CliResult<T> = Result<T, CliError>;
