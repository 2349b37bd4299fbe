//! # backup-timescale
//!
//! dbseal for TimescaleDB, on top of backup-postgres. TimescaleDB's documented backup
//! procedure — pg_dump with a matching extension version, then on restore `CREATE
//! EXTENSION … VERSION`, `timescaledb_pre_restore()`, pg_restore without `--clean`,
//! `timescaledb_post_restore()` — as one command:
//!
//! - [`TimescaleSource`]: the PostgreSQL source plus [`TimescaleFacts`] in the manifest
//!   (extension and PostgreSQL versions, hypertables with dimensions, chunks,
//!   compression and row counts, continuous aggregates, jobs).
//! - [`TimescaleSink`]: version checks, pre/post restore (post also on failure), and a
//!   staging database for `replace` so a failure leaves the target as it was.
//! - [`verify_restore`]: level 3, per hypertable.

pub mod config;
pub mod driver;
pub mod error;
pub mod format;
pub mod sink;
pub mod source;
pub mod verify;

pub use driver::{TimescaleBackupOptions, TimescaleDriver};
pub use error::TimescaleError;
pub use format::{Hypertable, TimescaleFacts, FACTS_KEY};
pub use sink::{TimescaleRestoreOptions, TimescaleSink};
pub use source::{backup, TimescaleSource, KIND};
pub use verify::verify_restore;

/// Registers the format reader of TimescaleDB backups (the pg_dump archive reader).
pub fn register_formats(registry: &mut backup_core::FormatRegistry) {
    backup_postgres::register_formats(registry);
}
