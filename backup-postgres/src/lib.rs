//! # backup-postgres
//!
//! dbseal for PostgreSQL: logical backups with `pg_dump -Fc -Z0` (compression and
//! encryption are dbseal's), atomic restores with `pg_restore --single-transaction`,
//! and level-3 verification into a scratch database.
//!
//! - [`PostgresConfig`] → [`Connection`]: how to reach the server and its binaries;
//!   passwords reach the tools only through the environment or a passfile.
//! - [`PostgresSource`] (backup) and [`backup`] (data + optional `globals` artifact).
//! - [`PgDumpFormat`]: the streaming reader of the custom archive that computes the
//!   manifest's contents summary (rows per table, objects per kind, large objects).
//! - [`PostgresSink`] (restore): into an existing or a new database, whole or
//!   selected schemas/tables; a bad artifact leaves the target as it was.
//! - [`verify_restore`]: level 3.
//!
//! ```no_run
//! # async fn demo() -> backup_core::Result<()> {
//! use backup_core::{BackupOptions, BackupStore, KeyPair, RestoreOptions};
//! use backup_postgres::{DumpOptions, PostgresConfig, PostgresSink, PostgresSource, RestoreTarget};
//! let signer = backup_core::SigningKey::from_file("signing.key".as_ref())?;
//! let store = BackupStore::open("./backups", &Default::default())?
//!     .with_trust(backup_core::Trust::default().with_signer(signer));
//! let keys = KeyPair::generate();
//! let config = PostgresConfig::from_url("postgres://app@127.0.0.1/app");
//! let mut source = PostgresSource::new(&config, DumpOptions::default())?;
//! let manifest = backup_postgres::backup(&store, &mut source, BackupOptions::new("app", keys.encryption())).await?;
//! let target = PostgresConfig::from_url("postgres://app@127.0.0.1/app_copy");
//! let mut sink = PostgresSink::new(&target, RestoreTarget { create_db: true, ..Default::default() })?;
//! let opts = RestoreOptions { decryption: Some(keys.decryption().into()), ..Default::default() };
//! backup_core::restore(&store, &manifest, "data", &mut sink, &opts).await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod driver;
pub mod error;
pub mod format;
pub mod physical;
pub mod pitr;
pub mod sink;
pub mod source;
mod tls;
pub mod verify;
pub mod wal;

pub use config::{Binaries, Connection, PostgresConfig, Tool, PG_BIN_DIR_ENV};
pub use driver::{PostgresBackupOptions, PostgresDriver};
pub use error::PostgresError;
pub use format::{read_archive, PgDumpFormat, FORMAT};
pub use sink::{PostgresSink, RestoreTarget};
pub use source::{
    backup, DumpOptions, GlobalsFormat, GlobalsSource, PostgresSource, ServerInfo, GLOBALS_FORMAT,
    KIND,
};
pub use verify::{
    compare_live_content, compare_live_counts, verify_restore, verify_restore_as, SCRATCH_PREFIX,
};

/// Registers the PostgreSQL format readers (`pgdump`, `pgsql`) for level-2 verification.
pub fn register_formats(registry: &mut backup_core::FormatRegistry) {
    registry.register(std::sync::Arc::new(PgDumpFormat));
    registry.register(std::sync::Arc::new(GlobalsFormat));
    registry.register(std::sync::Arc::new(physical::BaseBackupFormat));
    registry.register(std::sync::Arc::new(wal::WalSegmentFormat));
    registry.register(std::sync::Arc::new(wal::WalTextFormat));
}
