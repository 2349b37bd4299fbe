//! # backup-redis
//!
//! dbseal for Redis. A backup is the server's own RDB snapshot, fetched over the
//! replication protocol exactly as a replica fetches it (`AUTH`, `REPLCONF`, `PSYNC`,
//! falling back to `SYNC`), so no file-system access to the server is needed; disk
//! (`$<len>`) and diskless (`$EOF:<mark>`) transfers are both handled. Where replication
//! is refused (managed services), [`BackupMode::Scan`] builds the same kind of RDB file
//! from `SCAN` + `DUMP` + `PTTL` (not point-in-time).
//!
//! - [`RedisDriver`] is the [`backup_core::Driver`] of kind `redis` (options, backup,
//!   restore, level-3 verification) the CLI and the Python module share.
//! - [`RedisSource`] (backup), [`RedisSink`] (restore by pipelined `RESTORE`),
//!   [`RdbFileSink`] (write a plain `dump.rdb`), [`verify_restore`] (level 3).
//! - [`RdbFormat`] is the streaming, constant-memory RDB reader the pipeline runs
//!   during backup and level-2 verification; [`format::parse_rdb`] exposes every key
//!   (database, key, expiry, type byte, raw value bytes) to other consumers.
//!
//! Contents summary (`Contents`): `keys["db0.string"]` (per database and type name as
//! `TYPE` reports it, module types by their 9-character name), `expires["db0"]` (keys with
//! a TTL), `functions["libraries"]`, `modules["<type name>"]` (keys of module types),
//! facts `redis_ver` and `rdb_version`.

// `backup_core::Error` is 136 bytes (it carries `object_store::Error` inline); every crate
// returning `backup_core::Result` trips this lint until backup-core boxes it.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod config;
pub mod driver;
pub mod error;
pub mod format;
pub mod sink;
pub mod source;
pub mod verify;

pub use client::{RedisConnection, Reply};
pub use config::RedisConfig;
pub use driver::{parse_db_selection, RedisBackupOptions, RedisDriver};
pub use error::RedisError;
pub use format::{RdbFormat, RDB_MAX_VERSION};
pub use sink::{RdbFileSink, RedisRestoreOptions, RedisSink, RestoreOutcome};
pub use source::{BackupMode, RedisSource};
pub use verify::{compare_live_content, verify_restore};
