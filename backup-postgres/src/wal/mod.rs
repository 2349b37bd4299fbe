//! The WAL archive: continuous archiving for point-in-time recovery.
//!
//! PostgreSQL hands every completed WAL file to `archive_command` and asks
//! `restore_command` for them during recovery. dbseal seals each file like a backup
//! artifact (zstd, then age, with SHA-256 digests of the plaintext and of the stored
//! object) and describes it with its own small manifest (manifest v1, datastore kind
//! [`WAL_KIND`]), so every WAL file can be verified and opened without dbseal
//! (`age -d -i key.txt X.zst.age | zstd -d > X`).
//!
//! # Layout
//!
//! ```text
//! {datastore}/wal/archive.json                 the archive record: system identifier, segment size (create-only)
//! {datastore}/wal/{timeline}/{file}.zst.age    one sealed WAL file (segment, .partial, .history, .backup)
//! {datastore}/wal/{timeline}/{file}.json       its manifest, written last, create-only
//! ```
//!
//! `{timeline}` is the 8-hex-digit timeline of the file name (`00000001`). As for
//! backups, a WAL file without its manifest does not exist: the manifest is written
//! last, with create-only semantics.
//!
//! # Contracts
//!
//! - [`WalArchive::push`] (`dbseal wal-push %p`): succeeds only once the file and its
//!   manifest are durably stored, so PostgreSQL may recycle the segment. Pushing a file
//!   that is already archived with the same content (compared by plaintext SHA-256)
//!   succeeds without writing; different content is refused with
//!   [`ErrorKind::Refused`] and nothing is overwritten. A segment whose long page header
//!   carries another system identifier than the archive's is refused: it comes from
//!   another cluster.
//! - [`WalArchive::fetch`] (`dbseal wal-fetch %f %p`): a file that is not archived is a
//!   normal outcome ([`FetchOutcome::Missing`]), distinct from every failure; a file is
//!   written to `%p` (atomically, through a temporary file and a rename) only after its
//!   stored digest, its age authentication, its plaintext digest, and for segments the
//!   system identifier and page address of its header all checked out.
//! - [`WalArchive::verify`] (`dbseal wal-verify`): gaps from each base backup's start
//!   segment to the newest segment of its timeline path, timeline history consistency,
//!   foreign system identifiers, and (by level) stored digests or full decryption.
//! - [`WalArchive::status`]: the newest archived segment and its age (the real RPO).
//!
//! # Modules
//!
//! - `segment`: file names, LSNs, segment page headers, history files, the format
//!   readers.
//! - `push`: sealing runs the backup pipeline ([`backup_core::seal_in_memory`]: the
//!   same stages, digests and zstd/age transforms as every backup), then stores the
//!   object and its manifest create-only under the archive's own layout.
//! - `fetch`: the pipeline's restore ([`backup_core::restore`]) into the file
//!   PostgreSQL asked for.
//! - `verify`: listing, status, `wal-verify`, prune.
//! - `timeline`: timeline paths, gaps and recovery plans.
//!
//! The commands built on this (settings from an env file, exit codes) are in
//! [`crate::pitr`].

use std::sync::Arc;

use backup_core::sign::Role;
use backup_core::{BackupStore, Error, ErrorKind, Manifest, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod fetch;
mod parallel;
mod push;
mod segment;
#[cfg(test)]
mod tests;
mod timeline;
mod verify;

pub use fetch::{FetchOptions, FetchOutcome};
pub use parallel::{
    archive_identity, archived_ahead, check_concurrency, prefetched, AHEAD_PER_CALL,
    MAX_CONCURRENCY, PREFETCH_BYTES, PREFETCH_DIR, PUSHED_DIR,
};
pub use push::{PushOptions, PushOutcome};
pub use segment::*;
pub use timeline::*;
pub use verify::*;

/// The datastore kind recorded in the manifest of every archived WAL file.
pub const WAL_KIND: &str = "postgres-wal";
/// The folder of the WAL archive inside a datastore's folder.
pub const WAL_FOLDER: &str = "wal";
/// The archive record's file name, in the WAL folder.
pub const ARCHIVE_RECORD: &str = "archive.json";
/// The format name of archived WAL segments (and `.partial` segments).
pub const SEGMENT_FORMAT: &str = "pgwal";
/// The format name of archived timeline history and backup history files.
pub const TEXT_FORMAT: &str = "pgwaltext";

/// `XLP_LONG_HEADER`: the first page of a segment carries the long header.
const XLP_LONG_HEADER: u16 = 0x0002;
/// Size of `XLogLongPageHeaderData` on every platform PostgreSQL supports.
const LONG_HEADER_SIZE: usize = 40;
/// Size of the fields of the short page header we check (magic, info, tli, pageaddr).
const SHORT_HEADER_CHECKED: usize = 16;

fn archive_error(datastore: &str, kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::datastore(format!("WAL archive `{datastore}`"), kind, message)
}

// ---------------------------------------------------------------------------------
// The archive record
// ---------------------------------------------------------------------------------

/// `{datastore}/wal/archive.json`: which database system this archive belongs to.
/// Written once (create-only) by the first segment pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// Always `dbseal-wal-archive`.
    pub format: String,
    /// The record's version (1).
    pub version: u32,
    /// The datastore.
    pub datastore: String,
    /// The database system identifier (decimal, as `pg_controldata` prints it).
    pub system_identifier: String,
    /// The WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// The WAL page magic of the first segment (WAL format version).
    pub page_magic: String,
    /// When the archive was started.
    pub created_at: DateTime<Utc>,
    /// The first file archived.
    pub first_file: String,
    /// Fields from newer versions.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ArchiveRecord {
    /// The system identifier as a number.
    pub fn system_id(&self) -> Result<u64> {
        self.system_identifier
            .parse()
            .map_err(|_| Error::InvalidManifest {
                key: format!("{}/{WAL_FOLDER}/{ARCHIVE_RECORD}", self.datastore),
                reason: format!(
                    "system_identifier `{}` is not a number",
                    self.system_identifier
                ),
            })
    }
}

/// A base backup as the WAL archive sees it: where its WAL starts and stops.
#[derive(Debug, Clone)]
pub struct BaseBackupWal {
    /// The backup id.
    pub backup_id: String,
    /// The system identifier.
    pub system_identifier: u64,
    /// The timeline it started on.
    pub timeline: u32,
    /// Start of its WAL (`START WAL LOCATION`).
    pub start_lsn: Lsn,
    /// Where it becomes consistent.
    pub stop_lsn: Option<Lsn>,
    /// The timeline it stopped on.
    pub stop_timeline: Option<u32>,
    /// The WAL segment size.
    pub wal_segment_size: u64,
}

/// The PostgreSQL WAL archive of one datastore.
#[derive(Debug, Clone)]
pub struct WalArchive {
    store: BackupStore,
    datastore: String,
    /// The archive record once read: it is written once and never changes, and the
    /// pushes and fetches of one `--concurrency` call all need it.
    known_record: Arc<std::sync::OnceLock<ArchiveRecord>>,
}

impl WalArchive {
    /// The archive of `datastore` in `store`.
    pub fn new(store: BackupStore, datastore: &str) -> Result<Self> {
        BackupStore::validate_datastore_name(datastore)?;
        Ok(WalArchive {
            store,
            datastore: datastore.to_string(),
            known_record: Default::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &BackupStore {
        &self.store
    }

    /// The datastore.
    pub fn datastore(&self) -> &str {
        &self.datastore
    }

    /// The WAL folder, relative to the store root.
    pub fn folder(&self) -> String {
        format!("{}/{WAL_FOLDER}", self.datastore)
    }

    /// The archive record's key.
    pub fn record_key(&self) -> String {
        format!("{}/{ARCHIVE_RECORD}", self.folder())
    }

    /// The manifest key of a WAL file.
    pub fn manifest_key(&self, file: &WalFile) -> String {
        format!(
            "{}/{}/{}.json",
            self.folder(),
            file.timeline_folder(),
            file.name
        )
    }

    /// The preferred object key of a WAL file.
    pub fn object_key(&self, file: &WalFile) -> String {
        format!(
            "{}/{}/{}.zst.age",
            self.folder(),
            file.timeline_folder(),
            file.name
        )
    }

    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        archive_error(&self.datastore, kind, message)
    }

    /// Reads the archive record, `None` if the archive has none yet. A record no trusted
    /// key signed is [`Error::Untrusted`].
    pub async fn record(&self) -> Result<Option<ArchiveRecord>> {
        if let Some(known) = self.known_record.get() {
            return Ok(Some(known.clone()));
        }
        let key = self.record_key();
        match self.store.get_signed(&key, Role::Backup).await {
            Ok(bytes) => {
                let record: ArchiveRecord =
                    serde_json::from_slice(&bytes).map_err(|e| Error::InvalidManifest {
                        key: key.clone(),
                        reason: e.to_string(),
                    })?;
                // Prune and the timeline arithmetic divide by it.
                if !valid_segment_size(record.wal_segment_size) {
                    return Err(Error::InvalidManifest {
                        key,
                        reason: format!(
                            "wal_segment_size {} is not a WAL segment size (a power of two from 1 MiB to 1 GiB)",
                            record.wal_segment_size
                        ),
                    });
                }
                let _ = self.known_record.set(record.clone());
                Ok(Some(record))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the manifest of a WAL file, `None` if it is not archived. A manifest no
    /// trusted key signed (or one describing another file) is [`Error::Untrusted`]: never
    /// replayed.
    pub async fn file_manifest(&self, file: &WalFile) -> Result<Option<Manifest>> {
        let key = self.manifest_key(file);
        match self.store.get_signed(&key, Role::Backup).await {
            Ok(bytes) => {
                let m = Manifest::from_json(&bytes, &key)?;
                // The signature names this key, so a signed manifest cannot be moved
                // here from another file; its datastore must be this archive's too.
                if m.datastore.name != self.datastore {
                    return Err(Error::Untrusted {
                        key,
                        reason: format!(
                            "it describes datastore `{}`'s WAL, not `{}`'s",
                            m.datastore.name, self.datastore
                        ),
                    });
                }
                Ok(Some(m))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes sure the archive record exists and names the segment's system; creates it
    /// (create-only) for the first segment.
    async fn ensure_record(&self, file: &WalFile, facts: &SegmentFacts) -> Result<ArchiveRecord> {
        let sysid = facts.header.system_identifier;
        let check = |rec: ArchiveRecord| -> Result<ArchiveRecord> {
            let archived = rec.system_id()?;
            if archived != sysid {
                return Err(self.err(
                    ErrorKind::Refused,
                    format!(
                        "{} belongs to database system {sysid}, but this archive holds WAL of database system {archived}: another cluster's archive_command points at datastore `{}`; give each cluster its own --datastore",
                        file.name, self.datastore
                    ),
                ));
            }
            if rec.wal_segment_size != u64::from(facts.header.segment_size) {
                return Err(self.err(
                    ErrorKind::Refused,
                    format!(
                        "{} has {}-byte segments, the archive holds {}-byte segments",
                        file.name, facts.header.segment_size, rec.wal_segment_size
                    ),
                ));
            }
            Ok(rec)
        };
        if let Some(rec) = self.record().await? {
            return check(rec);
        }
        let rec = ArchiveRecord {
            format: "dbseal-wal-archive".into(),
            version: 1,
            datastore: self.datastore.clone(),
            system_identifier: sysid.to_string(),
            wal_segment_size: u64::from(facts.header.segment_size),
            page_magic: format!("{:#06X}", facts.header.magic),
            created_at: Utc::now(),
            first_file: file.name.clone(),
            extra: Default::default(),
        };
        let mut bytes = serde_json::to_vec_pretty(&rec).expect("serializable");
        bytes.push(b'\n');
        if self
            .store
            .put_signed(&self.record_key(), bytes, true)
            .await?
        {
            tracing::info!(datastore = %self.datastore, system_identifier = sysid, "WAL archive created");
            return Ok(rec);
        }
        // Another push created it first.
        let rec = self.record().await?.ok_or_else(|| {
            self.err(
                ErrorKind::Other,
                "the archive record vanished while it was being created",
            )
        })?;
        check(rec)
    }
}
