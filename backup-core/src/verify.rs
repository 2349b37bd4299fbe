//! Verification levels 1 (stored) and 2 (content).
//!
//! 1. **stored**: re-read every artifact, check its size and stored SHA-256. No key.
//! 2. **content**: decrypt, decompress, parse the native format, recompute the plaintext
//!    digest and the contents summary, compare with the manifest. Needs the identity.
//! 3. **restore** is per database (each database crate restores into a scratch database
//!    and compares live counts with the manifest).
//!
//! Every failure names the backup id, the object key and what differed.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::contents::FormatRegistry;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::pipeline::{restore, ContentsSink, RestoreOptions};
use crate::store::BackupStore;

/// How deep a verification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyLevel {
    /// Size and SHA-256 of the stored objects.
    Stored = 1,
    /// Decrypt, decompress, parse, compare digests and contents.
    Content = 2,
    /// Restore into a scratch database and compare live contents.
    Restore = 3,
}

impl VerifyLevel {
    /// The level as its number.
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// What a successful verification checked.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backup verified.
    pub backup_id: String,
    /// The deepest level that passed.
    pub level: VerifyLevel,
    /// One line per check that passed.
    pub checks: Vec<String>,
    /// Level 3: the seconds the restore into the scratch target took (the rest of the
    /// level is the comparison). For the drill's RTO split; not part of the report.
    #[serde(skip)]
    pub load_seconds: Option<f64>,
}

/// Level 1: every artifact's stored size and SHA-256.
pub async fn verify_stored(store: &BackupStore, manifest: &Manifest) -> Result<VerifyReport> {
    let mut checks = Vec::new();
    for artifact in manifest.artifacts() {
        let fail = |what: String| Error::Verification {
            id: manifest.backup_id.to_string(),
            key: artifact.key.clone(),
            what,
        };
        let mut stream = store
            .download_artifact(manifest.backup_id.as_str(), &artifact.key)
            .await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let digest = hex::encode(hasher.finalize());
        if let Some(what) = artifact.stored_mismatch(size, &digest) {
            return Err(fail(what));
        }
        checks.push(format!("{}: {size} bytes, SHA-256 {digest}", artifact.key));
    }
    Ok(VerifyReport {
        backup_id: manifest.backup_id.to_string(),
        level: VerifyLevel::Stored,
        checks,
        load_seconds: None,
    })
}

/// Level 2 (includes level 1): decrypt, decompress and parse every artifact; compare
/// the plaintext digest and the contents summary with the manifest.
pub async fn verify_content(
    store: &BackupStore,
    manifest: &Manifest,
    formats: &FormatRegistry,
    options: &RestoreOptions,
) -> Result<VerifyReport> {
    let mut checks = Vec::new();
    for artifact in manifest.artifacts() {
        let reader = formats
            .get(&artifact.format)
            .ok_or_else(|| Error::Verification {
                id: manifest.backup_id.to_string(),
                key: artifact.key.clone(),
                what: format!(
                    "this dbseal build has no reader for format `{}`",
                    artifact.format
                ),
            })?;
        let mut sink = ContentsSink {
            reader: Arc::clone(&reader),
            contents: None,
        };
        restore(store, manifest, &artifact.name, &mut sink, options).await?;
        let found = sink.contents.unwrap_or_default();
        let expected = manifest
            .contents_of(&artifact.name)
            .cloned()
            .unwrap_or_default();
        let diffs = expected.diff_counts(&found, &[]);
        if !diffs.is_empty() {
            return Err(Error::Verification {
                id: manifest.backup_id.to_string(),
                key: artifact.key.clone(),
                what: format!("contents differ from the manifest: {}", diffs.join("; ")),
            });
        }
        checks.push(format!(
            "{}: stored and plaintext SHA-256 match, {} stream parses, {} count groups match",
            artifact.key,
            artifact.format,
            found.counts.len()
        ));
    }
    Ok(VerifyReport {
        backup_id: manifest.backup_id.to_string(),
        level: VerifyLevel::Content,
        checks,
        load_seconds: None,
    })
}
