//! What `commands/wal.rs` still takes from the CLI's former per-kind layer (physical
//! backups are `PostgresDriver`'s now). Goes when wal.rs is translation only.
#![allow(dead_code)]

use backup_core::{BackupOptions, BackupStore, RestoreOptions};

use crate::exit::CliResult;

pub use backup_core::RestoreOutcome;

/// A backup's store and pipeline options.
pub struct BackupContext {
    /// The store to write to.
    pub store: BackupStore,
    /// The pipeline options.
    pub options: BackupOptions,
}

impl BackupContext {
    /// The pipeline options.
    pub fn options(&self) -> CliResult<BackupOptions> {
        Ok(self.options.clone())
    }
}

/// A restore's store and options.
pub struct RestoreContext {
    /// The store to read from.
    pub store: BackupStore,
    /// Keys and progress.
    pub options: RestoreOptions,
}
