//! # backup-neo4j
//!
//! dbseal for Neo4j:
//!
//! - [`Neo4jDriver`] is the [`backup_core::Driver`] of kind `neo4j` (options, backup,
//!   restore, level-3 verification with a scratch database) the CLI and the Python
//!   module share.
//! - [`Neo4jSource`] exports a live graph over Bolt (neo4rs, Bolt 4.4: Neo4j 4.4 to
//!   current) into the **dbseal graph stream** ([`format`], `FORMAT.md`): schema,
//!   nodes, relationships, every Cypher value type, streamed in constant memory.
//! - [`Neo4jSink`] rebuilds the graph with batched `UNWIND` statements, remapping ids
//!   through a temporary indexed property, and undoes its work on failure.
//! - [`Neo4jAdminSource`] / [`Neo4jAdminSink`] stream `neo4j-admin database dump
//!   --to-stdout` / `load --from-stdin` for offline physical backups (Community
//!   Edition; the database must be stopped).
//! - [`verify_restore`] is verification level 3: restore into a scratch database and
//!   compare counts and the id-independent content hash.
//!
//! ```no_run
//! # async fn demo() -> backup_core::Result<()> {
//! use backup_core::{BackupOptions, BackupStore, KeyPair};
//! use backup_neo4j::{Neo4jConfig, Neo4jSource};
//! let signer = backup_core::SigningKey::from_file("signing.key".as_ref())?;
//! let store = BackupStore::open("./backups", &Default::default())?
//!     .with_trust(backup_core::Trust::default().with_signer(signer));
//! let keys = KeyPair::generate();
//! let config = Neo4jConfig::new("bolt://localhost:7687").with_env_defaults();
//! let manifest = backup_core::backup(
//!     &store,
//!     &mut Neo4jSource::new(config),
//!     BackupOptions::new("graph", keys.encryption()),
//! )
//! .await?;
//! # Ok(()) }
//! ```

mod bolt;
pub mod config;
pub mod driver;
pub mod error;
pub mod format;
mod nodelay;
pub mod sink;
pub mod source;
pub mod verify;

pub use config::Neo4jConfig;
pub use driver::{Neo4jBackupOptions, Neo4jDriver};
pub use error::Neo4jError;
pub use format::{GraphFormat, FORMAT_NAME};
pub use sink::{Neo4jAdminSink, Neo4jSink, Neo4jSinkOptions, SchemaTiming};
pub use source::{live_contents, Neo4jAdminSource, Neo4jDumpFormat, Neo4jSource};
pub use verify::{compare_live_content, create_database, drop_database, verify_restore};

/// A registry entry helper: the format readers this crate provides.
pub fn format_readers() -> Vec<std::sync::Arc<dyn backup_core::FormatReader>> {
    vec![
        std::sync::Arc::new(GraphFormat::default()),
        std::sync::Arc::new(Neo4jDumpFormat),
    ]
}
