//! `wal-push`: sealing one WAL file and storing it with its manifest, create-only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::source::StreamWriter;
use backup_core::{
    BackupOptions, Contents, Encryption, Error, ErrorKind, FormatReader, Manifest, Result,
    SourceFacts,
};
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    archive_error, check_header_matches_name, segment_contents, segment_facts_json, text_contents,
    text_facts, SegmentFacts, SegmentScanner, WalArchive, WalFile, MAX_TEXT_FILE, SEGMENT_FORMAT,
    TEXT_FORMAT, WAL_KIND,
};

// ---------------------------------------------------------------------------------
// The archive
// ---------------------------------------------------------------------------------

/// How [`WalArchive::push`] seals a file.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The age recipients (a passphrase is refused: scrypt costs about a second per file).
    pub encryption: Encryption,
    /// zstd level.
    pub zstd_level: i32,
    /// zstd worker threads (`None`: compress on one thread, as for `Some(0)`).
    pub zstd_workers: Option<u32>,
}

impl PushOptions {
    /// Options with zstd level 3.
    pub fn new(encryption: Encryption) -> Self {
        PushOptions {
            encryption,
            zstd_level: 3,
            zstd_workers: None,
        }
    }
}

/// What [`WalArchive::push`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    /// The file name.
    pub file: String,
    /// `archived`, `already_archived` (same content, nothing written), `repaired`
    /// (same content, but the stored object was missing or damaged and was rewritten)
    /// or `archived_ahead` (by an earlier call with `--concurrency`).
    pub status: &'static str,
    /// The manifest key.
    pub manifest_key: String,
    /// The stored object's key.
    pub key: String,
    /// Plaintext size.
    pub plaintext_size: u64,
    /// Stored size.
    pub stored_size: u64,
}

/// Reads one WAL file into the pipeline, scanning a segment's page headers (or keeping
/// a history file's text) on the way.
struct WalFileSource {
    path: PathBuf,
    file: WalFile,
    /// A segment's facts, or why it is not a valid segment (after the dump).
    segment: Option<std::result::Result<SegmentFacts, String>>,
    /// A history or backup history file's text (after the dump).
    text: Option<Vec<u8>>,
    datastore: String,
}

/// The format of the stream, named for the manifest; the contents summary is computed
/// by [`WalFileSource`] itself from what it scanned (an invalid segment is a
/// configuration error of `wal-push`, not a format error of the pipeline).
#[derive(Debug)]
struct NamedFormat(&'static str);

impl FormatReader for NamedFormat {
    fn format(&self) -> &str {
        self.0
    }
    fn reads_stream(&self) -> bool {
        false
    }
    fn read_contents(&self, _input: &mut dyn std::io::Read) -> Result<Contents> {
        Ok(Contents::default())
    }
}

#[async_trait]
impl backup_core::Source for WalFileSource {
    fn kind(&self) -> &str {
        WAL_KIND
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(NamedFormat(if self.file.is_segment_like() {
            SEGMENT_FORMAT
        } else {
            TEXT_FORMAT
        }))
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        let path = &self.path;
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("cannot open WAL file {}", path.display()), e))?;
        let mut scanner = self.file.is_segment_like().then(SegmentScanner::new);
        let mut text = (!self.file.is_segment_like()).then(Vec::new);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| Error::io(format!("reading WAL file {}", path.display()), e))?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if let Some(s) = scanner.as_mut() {
                s.feed(chunk);
            }
            if let Some(t) = text.as_mut() {
                if (t.len() + n) as u64 > MAX_TEXT_FILE {
                    return Err(archive_error(
                        &self.datastore,
                        ErrorKind::Config,
                        format!(
                            "{} is larger than 16 MiB: not a history or backup history file",
                            path.display()
                        ),
                    ));
                }
                t.extend_from_slice(chunk);
            }
            out.write_all(chunk)
                .await
                .map_err(|e| Error::from_io(e, "sealing the WAL file"))?;
        }
        self.segment = scanner.map(SegmentScanner::finish);
        self.text = text;
        Ok(SourceFacts::new())
    }
}

/// One sealed file in memory, ready to store.
struct Sealed {
    stored: Bytes,
    /// The manifest the pipeline wrote (digests, sizes, transforms); its key, contents
    /// and facts are the WAL archive's to set.
    manifest: Manifest,
    segment: Option<std::result::Result<SegmentFacts, String>>,
    text: Option<Vec<u8>>,
}

impl Sealed {
    fn plaintext_size(&self) -> u64 {
        self.manifest.artifact.plaintext_size
    }
    fn plaintext_sha256(&self) -> &str {
        &self.manifest.artifact.plaintext_sha256
    }
    fn stored_size(&self) -> u64 {
        self.stored.len() as u64
    }
}

impl WalArchive {
    /// Seals the file at `path` in memory through the backup pipeline (zstd, then age,
    /// with the plaintext and stored digests), scanning a segment's headers on the way.
    async fn seal(&self, path: &Path, file: &WalFile, options: &PushOptions) -> Result<Sealed> {
        let mut source = WalFileSource {
            path: path.to_path_buf(),
            file: file.clone(),
            segment: None,
            text: None,
            datastore: self.datastore.clone(),
        };
        let mut backup = BackupOptions::new(self.datastore.clone(), options.encryption.clone());
        backup.zstd_level = options.zstd_level;
        // One thread unless asked: a WAL file is small and archive_command runs often.
        backup.zstd_workers = Some(options.zstd_workers.unwrap_or(0));
        let sealed = backup_core::seal_in_memory(&mut source, backup).await?;
        Ok(Sealed {
            stored: sealed.stored,
            manifest: sealed.manifest,
            segment: source.segment,
            text: source.text,
        })
    }

    /// Archives one WAL file (`archive_command = 'dbseal wal-push --datastore N %p'`).
    /// See the module docs for the contract.
    pub async fn push(&self, path: &Path, options: &PushOptions) -> Result<PushOutcome> {
        self.store.trust().require_signer("wal-push")?;
        if matches!(options.encryption, Encryption::Passphrase(_)) {
            return Err(Error::Key(
                "wal-push needs recipients (age1… public keys): passphrase encryption costs about a second per WAL file, too slow for archiving".into(),
            ));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Config(format!("{} is not a WAL file path", path.display())))?;
        let file = WalFile::parse(name).ok_or_else(|| {
            Error::Config(format!(
                "`{name}` is not a WAL file name PostgreSQL archives (segment, .partial, .history or .backup): pass %p in archive_command"
            ))
        })?;
        let sealed = self.seal(path, &file, options).await?;

        let mut source = SourceFacts::new();
        source.insert("wal_file".into(), json!(file.name));
        source.insert("wal_kind".into(), json!(file.kind.as_str()));
        source.insert("timeline".into(), json!(file.timeline));
        let (format, contents) = if file.is_segment_like() {
            let facts = match sealed.segment.clone().expect("segment scanned") {
                Ok(f) => f,
                Err(reason) => {
                    return Err(self.err(
                        ErrorKind::Config,
                        format!("{} is not a valid WAL segment: {reason}", path.display()),
                    ))
                }
            };
            check_header_matches_name(&file, &facts.header).map_err(|reason| {
                self.err(ErrorKind::Config, format!("{}: {reason}", path.display()))
            })?;
            self.ensure_record(&file, &facts).await?;
            source.extend(segment_facts_json(&facts));
            source.insert(
                "segno".into(),
                json!(file.segno(u64::from(facts.header.segment_size))),
            );
            (SEGMENT_FORMAT, segment_contents(&facts))
        } else {
            let raw = sealed.text.as_deref().expect("text kept");
            let text = std::str::from_utf8(raw).map_err(|_| {
                self.err(
                    ErrorKind::Config,
                    format!("{} is not UTF-8 text", path.display()),
                )
            })?;
            let facts = text_facts(&file, text).map_err(|reason| {
                self.err(
                    ErrorKind::Config,
                    format!(
                        "{} is not a valid {} file: {reason}",
                        path.display(),
                        file.kind.as_str()
                    ),
                )
            })?;
            if let Some(rec) = self.record().await? {
                source.insert("system_identifier".into(), json!(rec.system_identifier));
            }
            source.extend(facts);
            (TEXT_FORMAT, text_contents(raw))
        };

        // Already archived?
        let manifest_key = self.manifest_key(&file);
        // A manifest no trusted key signed is repaired: replaced by this push's.
        let (existing, untrusted) = match self.file_manifest(&file).await {
            Err(e @ Error::Untrusted { .. }) => {
                tracing::warn!(file = %file.name, error = %e, "replacing an untrusted WAL manifest");
                (None, true)
            }
            other => (other?, false),
        };
        if let Some(existing) = existing {
            return self
                .settle_existing(&file, existing, &sealed, None)
                .await
                .map(|o| {
                    o.unwrap_or_else(|| {
                        self.outcome(&file, "already_archived", &sealed, &manifest_key, None)
                    })
                });
        }

        // Store the object, then the manifest (create-only).
        let mut key = self.object_key(&file);
        if !self
            .store
            .put_bytes_create(&key, sealed.stored.to_vec())
            .await?
        {
            // Debris of an interrupted push, or a concurrent one: never overwrite it.
            let random: u32 = rand::random();
            key = format!(
                "{}/{}/{}.{random:08x}.zst.age",
                self.folder(),
                file.timeline_folder(),
                file.name
            );
            if !self
                .store
                .put_bytes_create(&key, sealed.stored.to_vec())
                .await?
            {
                return Err(self.err(
                    ErrorKind::Other,
                    format!("object {key} appeared while it was being written"),
                ));
            }
        }
        let mut manifest = sealed.manifest.clone();
        manifest.source = source;
        manifest.artifact.key = key.clone();
        manifest.artifact.format = format.into();
        manifest.contents = contents;
        manifest.finished_at = Utc::now();
        if self
            .store
            .put_signed(&manifest_key, manifest.to_json(), !untrusted)
            .await?
        {
            tracing::info!(file = %file.name, key = %key, "WAL file archived");
            return Ok(self.outcome(&file, "archived", &sealed, &manifest_key, Some(&key)));
        }
        // A concurrent push of the same file won: keep its copy if it is the same.
        let existing = self.file_manifest(&file).await?.ok_or_else(|| {
            self.err(
                ErrorKind::Other,
                format!("manifest {manifest_key} vanished"),
            )
        })?;
        let result = self
            .settle_existing(&file, existing, &sealed, Some(&key))
            .await;
        let _ = self.store.delete(&key).await;
        result.map(|o| {
            o.unwrap_or_else(|| {
                self.outcome(&file, "already_archived", &sealed, &manifest_key, None)
            })
        })
    }

    fn outcome(
        &self,
        file: &WalFile,
        status: &'static str,
        sealed: &Sealed,
        manifest_key: &str,
        key: Option<&str>,
    ) -> PushOutcome {
        PushOutcome {
            file: file.name.clone(),
            status,
            manifest_key: manifest_key.to_string(),
            key: key.map(str::to_string).unwrap_or_default(),
            plaintext_size: sealed.plaintext_size(),
            stored_size: sealed.stored_size(),
        }
    }

    /// A manifest for `file` exists: same content is success (repairing a missing or
    /// damaged stored object), different content is refused. `Ok(None)` means "already
    /// archived, nothing to do".
    async fn settle_existing(
        &self,
        file: &WalFile,
        existing: Manifest,
        sealed: &Sealed,
        our_key: Option<&str>,
    ) -> Result<Option<PushOutcome>> {
        let manifest_key = self.manifest_key(file);
        let a = &existing.artifact;
        if a.plaintext_sha256 != sealed.plaintext_sha256()
            || a.plaintext_size != sealed.plaintext_size()
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!(
                    "{} is already archived with different contents ({} bytes, SHA-256 {}; this file: {} bytes, SHA-256 {}): refusing to overwrite it. If two clusters archive into datastore `{}`, give each its own --datastore; if this server was restored from a backup, it must archive on a new timeline",
                    file.name,
                    a.plaintext_size,
                    a.plaintext_sha256,
                    sealed.plaintext_size(),
                    sealed.plaintext_sha256(),
                    self.datastore
                ),
            ));
        }
        // Same content. Is the stored object still there and whole?
        let stored_ok = matches!(self.store.size_of(&a.key).await?, Some(s) if s == a.stored_size);
        if stored_ok || our_key.is_some() {
            tracing::info!(file = %file.name, "WAL file already archived with the same contents");
            return Ok(None);
        }
        // Repair: a new object, then the manifest replaced (same plaintext, new key).
        let random: u32 = rand::random();
        let key = format!(
            "{}/{}/{}.{random:08x}.zst.age",
            self.folder(),
            file.timeline_folder(),
            file.name
        );
        self.store.put_bytes(&key, sealed.stored.to_vec()).await?;
        let mut repaired = existing.clone();
        repaired.artifact.key = key.clone();
        repaired.artifact.stored_size = sealed.stored_size();
        repaired.artifact.stored_sha256 = sealed.manifest.artifact.stored_sha256.clone();
        repaired.finished_at = Utc::now();
        self.store
            .put_signed(&manifest_key, repaired.to_json(), false)
            .await?;
        tracing::warn!(file = %file.name, old = %a.key, new = %key, "archived WAL object was missing or damaged: rewritten");
        Ok(Some(self.outcome(
            file,
            "repaired",
            sealed,
            &manifest_key,
            Some(&key),
        )))
    }
}
