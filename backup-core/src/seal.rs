//! Sealing a small stream in memory with the backup pipeline, for callers that must
//! decide where (and whether) to store it only once it is sealed.
//!
//! The WAL archive is the user: a WAL file is compared with what is already archived
//! (by plaintext SHA-256) before anything is written, and stored with create-only
//! semantics under a key of its own layout. [`seal_in_memory`] runs the ordinary
//! [`BackupSession`] (source, plaintext digest, zstd, age, stored digest: the same
//! stages, digests and failure reporting as every backup) into a private in-memory
//! store and hands back the sealed bytes with the manifest describing them.
//!
//! Memory: the sealed object is held whole, so this is for objects of bounded size
//! (a WAL segment is at most 1 GiB, usually 16 MiB); backups stream with
//! [`crate::pipeline::backup`] instead.

use bytes::Bytes;

use crate::error::Result;
use crate::manifest::Manifest;
use crate::pipeline::{BackupOptions, BackupSession};
use crate::source::Source;
use crate::store::BackupStore;

/// One stream sealed in memory: the stored bytes and the manifest that describes them.
#[derive(Debug, Clone)]
pub struct SealedObject {
    /// The manifest the pipeline produced: artifact digests and sizes, transforms,
    /// contents, source facts. Its `artifact.key` is a key of the private in-memory
    /// store: the caller sets the key it stores the bytes under.
    pub manifest: Manifest,
    /// The sealed bytes (an age file whose plaintext is a zstd frame).
    pub stored: Bytes,
}

/// Runs `source` through the backup pipeline (as artifact `data`) into memory. The
/// manifest's datastore is `options.datastore` and its kind the source's kind.
pub async fn seal_in_memory(
    source: &mut dyn Source,
    options: BackupOptions,
) -> Result<SealedObject> {
    let memory =
        BackupStore::open("memory://", &Default::default())?.with_trust(crate::Trust::ephemeral()?);
    let mut session = BackupSession::start(&memory, options)?;
    let facts = session.write_artifact("data", source).await?;
    let kind = source.kind().to_string();
    let manifest = session.commit(&kind, facts).await?;
    let stored = memory.get_unbounded(&manifest.artifact.key).await?;
    Ok(SealedObject { manifest, stored })
}
