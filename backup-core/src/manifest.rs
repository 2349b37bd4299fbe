#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Manifest v1: the JSON document that describes one backup.
//!
//! A manifest is written last, next to its artifact, with create-only semantics: a
//! backup without a manifest does not exist. It records everything needed to verify and
//! restore the backup — the artifact's key, sizes and SHA-256 digests, the transform
//! chain, the source facts and the contents summary — and never a secret.
//!
//! Compatibility: `format_version` is `"MAJOR.MINOR"`. Readers accept any minor version
//! of their major version and keep unknown fields (they land in [`Manifest::extra`] and
//! are written back unchanged); a newer major version is refused with
//! [`Error::UnsupportedManifestVersion`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contents::Contents;
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::source::SourceFacts;
use crate::transform::TransformSpec;

/// The manifest format major version this build reads and writes.
pub const FORMAT_MAJOR: u32 = 1;
/// The full format version this build writes.
pub const FORMAT_VERSION: &str = "1.0";

/// Which datastore a backup belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatastoreRef {
    /// The datastore's name (chosen by the user, e.g. `app-db`).
    pub name: String,
    /// Its kind (`postgres`, `timescale`, `redis`, `neo4j`, `command`, `stdin`).
    pub kind: String,
}

/// The tool that wrote the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Always `dbseal`.
    pub name: String,
    /// The version of backup-core.
    pub version: String,
}

impl Default for ToolInfo {
    fn default() -> Self {
        ToolInfo {
            name: "dbseal".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// One stored object of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// The artifact's role in the backup: `data` for the main stream, others for
    /// attachments (e.g. `globals` for PostgreSQL roles).
    pub name: String,
    /// The object key, relative to the store root.
    pub key: String,
    /// The native format of the plaintext (`pgdump`, `rdb`, `graph`, `raw`).
    pub format: String,
    /// Size of the stored (compressed, encrypted) object in bytes.
    pub stored_size: u64,
    /// Lowercase hex SHA-256 of the stored object.
    pub stored_sha256: String,
    /// Size of the plaintext native stream in bytes.
    pub plaintext_size: u64,
    /// Lowercase hex SHA-256 of the plaintext native stream.
    pub plaintext_sha256: String,
}

impl Artifact {
    /// What differs between the stored object that was read (`size` bytes with SHA-256
    /// `digest`) and what this record says, or `None` if they match. Used by level-1
    /// verification and by every restore.
    pub fn stored_mismatch(&self, size: u64, digest: &str) -> Option<String> {
        if size != self.stored_size {
            return Some(format!(
                "stored object is {size} bytes, the manifest records {} (truncated or replaced)",
                self.stored_size
            ));
        }
        if digest != self.stored_sha256 {
            return Some(format!(
                "stored SHA-256 is {digest}, the manifest records {} (corrupted or tampered)",
                self.stored_sha256
            ));
        }
        None
    }
}

/// A secondary artifact of a backup, with its own contents summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The stored object.
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Its contents summary.
    #[serde(default)]
    pub contents: Contents,
}

/// The manifest of one backup (format v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `"MAJOR.MINOR"`; see the module docs for compatibility rules.
    pub format_version: String,
    /// The backup's id.
    pub backup_id: BackupId,
    /// The datastore backed up.
    pub datastore: DatastoreRef,
    /// When the backup started.
    pub started_at: DateTime<Utc>,
    /// When the backup finished (before the manifest was written).
    pub finished_at: DateTime<Utc>,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// Facts about the source (server version, database, host without credentials,
    /// extension versions, consistency model...).
    #[serde(default)]
    pub source: SourceFacts,
    /// The main artifact.
    pub artifact: Artifact,
    /// Secondary artifacts of the same backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The transforms applied, in order (zstd, then age). Restore inverts them in reverse.
    pub transforms: Vec<TransformSpec>,
    /// The contents summary of the main artifact.
    #[serde(default)]
    pub contents: Contents,
    /// The parent backup of an incremental chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<BackupId>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// A verification failure of this backup's primary artifact; `what` says what differed.
    pub fn verification_error(&self, what: impl Into<String>) -> Error {
        Error::Verification {
            id: self.backup_id.to_string(),
            key: self.artifact.key.clone(),
            what: what.into(),
        }
    }

    /// Parses a manifest, checking its format version. `key` names it in errors.
    pub fn from_json(bytes: &[u8], key: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::InvalidManifest {
                key: key.to_string(),
                reason: format!("not JSON: {e}"),
            })?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::InvalidManifest {
                key: key.to_string(),
                reason: "no format_version".into(),
            })?;
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| Error::InvalidManifest {
                key: key.to_string(),
                reason: format!("format_version `{version}` is not MAJOR.MINOR"),
            })?;
        if major > FORMAT_MAJOR {
            return Err(Error::UnsupportedManifestVersion {
                key: key.to_string(),
                found: version.to_string(),
                supported: FORMAT_MAJOR,
            });
        }
        if major < FORMAT_MAJOR {
            return Err(Error::InvalidManifest {
                key: key.to_string(),
                reason: format!("format_version `{version}` predates format 1"),
            });
        }
        serde_json::from_value(value).map_err(|e| Error::InvalidManifest {
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and maps with string keys: serialising into memory cannot fail.
        #[allow(clippy::expect_used)]
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// All artifacts of the backup: the main one, then the attachments.
    pub fn artifacts(&self) -> impl Iterator<Item = &Artifact> {
        std::iter::once(&self.artifact).chain(self.attachments.iter().map(|a| &a.artifact))
    }

    /// The contents summary recorded for the artifact named `name`.
    pub fn contents_of(&self, name: &str) -> Option<&Contents> {
        if self.artifact.name == name {
            return Some(&self.contents);
        }
        self.attachments
            .iter()
            .find(|a| a.artifact.name == name)
            .map(|a| &a.contents)
    }

    /// Refuses a transform chain that does not end in age encryption. dbseal never
    /// writes an unencrypted backup, so such a manifest was not made by dbseal: defence
    /// in depth beside the signature, checked before a restore touches its target.
    pub fn check_sealed(&self) -> Result<()> {
        if matches!(
            self.transforms.last(),
            Some(crate::transform::TransformSpec::Age { .. })
        ) {
            return Ok(());
        }
        Err(Error::Untrusted {
            key: crate::store::BackupStore::manifest_key(&self.datastore.name, &self.backup_id),
            reason: "its transform chain does not end in age encryption; dbseal never writes an unencrypted backup, so it does not restore one".into(),
        })
    }

    /// The datastore's `environment` label, if any (`production`, `staging`...).
    pub fn environment(&self) -> Option<&str> {
        self.labels.get("environment").map(String::as_str)
    }
}
