//! `wal-fetch`: one archived WAL file, verified, into the path PostgreSQL gave.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::sink::StreamReader;
use backup_core::{
    Decryption, Error, ErrorKind, Manifest, RestoreOptions, Result, Sink, SinkReport,
};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    archive_error, check_header_matches_name, SegmentScanner, WalArchive, WalFile, WalFileKind,
    WalProblem, WalProblemKind, WAL_KIND,
};

/// How [`WalArchive::fetch`] opens a file.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The identities.
    pub decryption: Arc<Decryption>,
    /// The system identifier the segment must carry (the base backup's); when `None`,
    /// the archive record's.
    pub system_identifier: Option<u64>,
}

/// What [`WalArchive::fetch`] found.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FetchOutcome {
    /// The file was verified and written.
    Fetched {
        /// The file name.
        file: String,
        /// Bytes written.
        bytes: u64,
        /// Taken from what an earlier `wal-fetch --concurrency` prefetched.
        prefetched: bool,
    },
    /// The file is not in the archive (a normal answer: recovery asks for files past
    /// the end of the archive and for history files that do not exist).
    Missing {
        /// The file name.
        file: String,
        /// For a segment: a later segment of the same timeline that IS archived, i.e.
        /// the missing one is a gap, not the end of the archive.
        later_segment: Option<String>,
    },
}

impl WalArchive {
    /// Fetches one WAL file into `dest` (`restore_command = 'dbseal wal-fetch --datastore
    /// N %f %p'`). See the module docs for the contract.
    pub async fn fetch(
        &self,
        name: &str,
        dest: &Path,
        options: &FetchOptions,
    ) -> Result<FetchOutcome> {
        self.fetch_file(name, dest, options, true).await
    }

    /// [`WalArchive::fetch`]; `find_gap`: for a missing segment, look for a later one
    /// (a listing of the timeline's folder — not for prefetching).
    pub(super) async fn fetch_file(
        &self,
        name: &str,
        dest: &Path,
        options: &FetchOptions,
        find_gap: bool,
    ) -> Result<FetchOutcome> {
        let file = WalFile::parse(name).ok_or_else(|| {
            Error::Config(format!(
                "`{name}` is not a WAL file name (segment, .partial, .history or .backup): pass %f in restore_command"
            ))
        })?;
        let Some(manifest) = self.file_manifest(&file).await? else {
            let later_segment = if find_gap && file.kind == WalFileKind::Segment {
                self.later_segment(&file).await?
            } else {
                None
            };
            return Ok(FetchOutcome::Missing {
                file: file.name,
                later_segment,
            });
        };
        let expected = match options.system_identifier {
            Some(id) => Some(id),
            None => match self.record().await? {
                Some(rec) => Some(rec.system_id()?),
                None => None,
            },
        };
        self.check_file_manifest(&file, &manifest, expected)
            .map_err(|p| self.err(ErrorKind::Verification, p.message))?;
        let mut sink =
            WalFileSink::new(&self.datastore, file.clone(), dest.to_path_buf(), expected);
        let opts = RestoreOptions {
            decryption: Some(options.decryption.clone()),
            progress: None,
        };
        let report = backup_core::restore(&self.store, &manifest, "data", &mut sink, &opts).await?;
        Ok(FetchOutcome::Fetched {
            file: file.name,
            bytes: report.bytes,
            prefetched: false,
        })
    }

    /// A later archived segment of the same timeline, if there is one.
    async fn later_segment(&self, file: &WalFile) -> Result<Option<String>> {
        let folder = format!("{}/{}", self.folder(), file.timeline_folder());
        let keys = self.store.list_keys(&folder).await?;
        let mut later: Option<String> = None;
        for (key, _) in keys {
            let Some(n) = key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(f) = WalFile::parse(n) {
                if f.kind == WalFileKind::Segment
                    && (f.log, f.seg) > (file.log, file.seg)
                    && later.as_deref().is_none_or(|l| f.name.as_str() < l)
                {
                    later = Some(f.name);
                }
            }
        }
        Ok(later)
    }

    /// Checks what a file's manifest says against the file name, the datastore and
    /// the expected system identifier.
    pub(super) fn check_file_manifest(
        &self,
        file: &WalFile,
        m: &Manifest,
        system_identifier: Option<u64>,
    ) -> std::result::Result<(), WalProblem> {
        let problem = |kind, message: String| WalProblem {
            kind,
            file: Some(file.name.clone()),
            message,
        };
        if m.datastore.kind != WAL_KIND {
            return Err(problem(
                WalProblemKind::Invalid,
                format!(
                    "{}: the manifest is of kind `{}`, not {WAL_KIND}",
                    file.name, m.datastore.kind
                ),
            ));
        }
        let named = m.source.get("wal_file").and_then(|v| v.as_str());
        if named != Some(file.name.as_str()) {
            return Err(problem(
                WalProblemKind::Invalid,
                format!(
                    "{}: the manifest describes {} (a misplaced or renamed file)",
                    file.name,
                    named.unwrap_or("no file")
                ),
            ));
        }
        if file.is_segment_like() {
            let found = m
                .source
                .get("system_identifier")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<u64>().ok());
            if let (Some(expected), Some(found)) = (system_identifier, found) {
                if expected != found {
                    return Err(problem(
                        WalProblemKind::Foreign,
                        format!(
                            "{} belongs to database system {found}, not to this archive's database system {expected}: it is a segment of another cluster",
                            file.name
                        ),
                    ));
                }
            }
            if found.is_none() {
                return Err(problem(
                    WalProblemKind::Invalid,
                    format!("{}: the manifest records no system identifier", file.name),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------------

/// Writes a fetched WAL file to a temporary file next to `dest` and renames it into
/// place at a clean end of stream, after checking a segment's header.
struct WalFileSink {
    datastore: String,
    file: WalFile,
    dest: PathBuf,
    system_identifier: Option<u64>,
}

impl WalFileSink {
    fn new(datastore: &str, file: WalFile, dest: PathBuf, system_identifier: Option<u64>) -> Self {
        WalFileSink {
            datastore: datastore.to_string(),
            file,
            dest,
            system_identifier,
        }
    }

    fn temp_path(&self) -> PathBuf {
        let name = self
            .dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "wal".into());
        self.dest
            .with_file_name(format!(".{name}.dbseal-{}.tmp", std::process::id()))
    }
}

/// Checks a fully read segment: header parse, name, system identifier.
pub(super) fn check_segment(
    file: &WalFile,
    scanner: SegmentScanner,
    system_identifier: Option<u64>,
) -> std::result::Result<(), String> {
    let facts = scanner
        .finish()
        .map_err(|e| format!("{} is not a valid WAL segment: {e}", file.name))?;
    check_header_matches_name(file, &facts.header).map_err(|e| format!("{}: {e}", file.name))?;
    if let Some(expected) = system_identifier {
        if facts.header.system_identifier != expected {
            return Err(format!(
                "{} belongs to database system {}, not to this archive's database system {expected}: it is a segment of another cluster",
                file.name, facts.header.system_identifier
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl Sink for WalFileSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        let tmp = self.temp_path();
        let result: Result<u64> = async {
            let mut out = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .await
                .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
            let mut scanner = self.file.is_segment_like().then(SegmentScanner::new);
            let mut buf = vec![0u8; 256 * 1024];
            let mut bytes = 0u64;
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::from_io(e, "reading the WAL file"))?;
                if n == 0 {
                    break;
                }
                if let Some(s) = scanner.as_mut() {
                    s.feed(&buf[..n]);
                }
                out.write_all(&buf[..n])
                    .await
                    .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
                bytes += n as u64;
            }
            if let Some(s) = scanner {
                check_segment(&self.file, s, self.system_identifier)
                    .map_err(|m| archive_error(&self.datastore, ErrorKind::Verification, m))?;
            }
            out.sync_all()
                .await
                .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
            drop(out);
            tokio::fs::rename(&tmp, &self.dest).await.map_err(|e| {
                Error::io(
                    format!("renaming {} to {}", tmp.display(), self.dest.display()),
                    e,
                )
            })?;
            Ok(bytes)
        }
        .await;
        match result {
            Ok(bytes) => Ok(SinkReport {
                bytes,
                summary: vec![format!("restored {} ({bytes} bytes)", self.file.name)],
            }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }
}
