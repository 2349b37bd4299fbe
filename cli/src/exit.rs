//! The CLI's error type. Exit codes are [`backup_core::ErrorKind::exit_code`]'s (the one
//! table both front-ends use), plus the codes of `wal-fetch` (3, 255) that PostgreSQL
//! expects.

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
            code: ErrorKind::Config.exit_code(),
        }
    }

    /// The stable name of the error class, for `--json` output.
    pub fn class(&self) -> &'static str {
        ErrorKind::from_exit_code(self.code).class()
    }
}

impl From<backup_core::Error> for CliError {
    fn from(e: backup_core::Error) -> Self {
        CliError {
            code: e.kind().exit_code(),
            message: e.to_string(),
        }
    }
}

/// The result type of CLI commands.
pub type CliResult<T> = Result<T, CliError>;
