//! # backup-core
//!
//! The engine of dbseal: every backup is a *sealed artifact* — the database's own backup
//! stream, compressed with zstd, encrypted with age, checksummed with SHA-256, stored in
//! object storage and described by a [`Manifest`].
//!
//! - [`Source`] produces a native stream (database crates implement it), [`Sink`]
//!   consumes one, [`Transform`]s (zstd, age) sit between them with their inverses.
//! - [`pipeline::backup`] / [`BackupSession`] run Source → transforms → [`BackupStore`]
//!   and commit the manifest last; [`pipeline::restore`] runs the chain back into a Sink.
//! - [`verify`] implements verification levels 1 and 2.
//!
//! ```no_run
//! # async fn demo() -> backup_core::Result<()> {
//! use backup_core::{BackupOptions, BackupStore, KeyPair, ReaderSource, RestoreOptions, WriterSink};
//! let signer = backup_core::SigningKey::from_file("signing.key".as_ref())?;
//! let store = BackupStore::open("./backups", &Default::default())?
//!     .with_trust(backup_core::Trust::default().with_signer(signer));
//! let keys = KeyPair::generate();
//! let mut source = ReaderSource::new(&b"hello"[..], "stdin");
//! let manifest = backup_core::backup(&store, &mut source, BackupOptions::new("demo", keys.encryption())).await?;
//! let opts = RestoreOptions { decryption: Some(keys.decryption().into()), ..Default::default() };
//! let mut out = Vec::new();
//! backup_core::restore(&store, &manifest, "data", &mut WriterSink::new(&mut out), &opts).await?;
//! # Ok(()) }
//! ```

pub mod child;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod contents;
pub mod driver;
pub mod error;
pub mod fsutil;
pub mod id;
pub mod keys;
pub mod manifest;
pub mod ops;
pub mod pipe;
pub mod pipeline;
pub mod progress;
pub mod retention;
pub mod seal;
pub mod secret;
pub mod sign;
pub mod sink;
pub mod source;
pub mod store;
pub mod task;
pub mod throttle;
pub mod transform;
pub mod verify;

pub use contents::{Contents, FormatReader, FormatRegistry, RawFormat};
pub use driver::{
    BackupContext, Capabilities, Driver, DriverOptions, Registry, RestoreContext, RestoreOutcome,
    RestoreTarget, TargetAltered,
};
pub use error::{Error, ErrorKind, Result};
pub use id::BackupId;
pub use keys::{Decryption, Encryption, KeyPair, Recipient};
pub use manifest::{Artifact, Manifest};
pub use ops::{Frontend, Notice, OpContext};
pub use pipeline::{backup, restore, BackupOptions, BackupSession, RestoreOptions};
pub use progress::{NoProgress, Progress};
pub use retention::{RetentionPlan, RetentionPolicy, Span, VerificationState};
pub use seal::{seal_in_memory, SealedObject};
pub use secret::{redact_url, SecretString};
pub use sign::{PublicKey, SigningKey, Trust};
pub use sink::{CancellableSink, Sink, SinkReport, WriterSink};
pub use source::{BlockingReaderSource, CommandSource, ReaderSource, Source, SourceFacts};
pub use store::{BackupStore, VerificationRecord};
pub use transform::{Transform, TransformSpec};
pub use verify::{verify_content, verify_stored, VerifyLevel, VerifyReport};
