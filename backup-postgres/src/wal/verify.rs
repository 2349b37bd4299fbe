//! `wal-verify`, status and prune: the listing of an archive and its checks.

use super::fetch::check_segment;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::sink::StreamReader;
use backup_core::{
    Decryption, Error, ErrorKind, Manifest, RestoreOptions, Result, Sink, SinkReport,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{
    backup_coverage, check_timelines, segment_name, valid_segment_size, BaseBackupWal,
    HistoryEntry, SegmentScanner, WalArchive, WalFile, WalFileKind, ARCHIVE_RECORD, SEGMENT_FORMAT,
};

/// One archived file as listed.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// The parsed name.
    pub file: WalFile,
    /// The manifest key, if the manifest exists.
    pub manifest_key: Option<String>,
    /// When the manifest was written.
    pub archived_at: Option<DateTime<Utc>>,
    /// Stored objects of this file and their sizes.
    pub objects: Vec<(String, u64)>,
}

/// Everything under `{datastore}/wal/`.
#[derive(Debug, Default, Clone)]
pub struct WalListing {
    /// Whether the archive record exists.
    pub has_record: bool,
    /// Files by name.
    pub files: BTreeMap<String, ListedFile>,
    /// Keys that are neither the record nor a WAL file's object or manifest.
    pub unknown: Vec<String>,
}

impl WalListing {
    /// Archived (manifest present) segments per timeline, as segment numbers.
    pub fn segments(&self, segment_size: u64) -> BTreeMap<u32, BTreeSet<u64>> {
        let mut out: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        for f in self.files.values() {
            if f.file.kind == WalFileKind::Segment && f.manifest_key.is_some() {
                out.entry(f.file.timeline)
                    .or_default()
                    .insert(f.file.segno(segment_size));
            }
        }
        out
    }

    /// Timelines with an archived history file.
    pub fn history_timelines(&self) -> BTreeSet<u32> {
        self.files
            .values()
            .filter(|f| f.file.kind == WalFileKind::History && f.manifest_key.is_some())
            .map(|f| f.file.timeline)
            .collect()
    }
}

/// The newest archived WAL: what `dbseal status` reports as the real RPO.
#[derive(Debug, Clone, Serialize)]
pub struct WalStatus {
    /// The datastore.
    pub datastore: String,
    /// The newest archived segment (highest timeline, then highest segment).
    pub newest_segment: Option<String>,
    /// When it was archived.
    pub newest_archived_at: Option<DateTime<Utc>>,
    /// Seconds since then (the data a restore to "latest" would lose if the server
    /// died now, plus the current segment's fill time).
    pub newest_age_seconds: Option<i64>,
    /// The newest archived file of any kind and when it was archived.
    pub last_archived_at: Option<DateTime<Utc>>,
    /// Number of archived segments.
    pub segments: usize,
    /// Timelines present.
    pub timelines: Vec<u32>,
    /// The archive's system identifier.
    pub system_identifier: Option<String>,
}

/// How deep [`WalArchive::verify`] goes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum WalVerifyLevel {
    /// Listing and per-file manifests: gaps, timelines, system identifiers, sizes.
    Metadata,
    /// Also re-read every stored object and check its SHA-256 (no key needed).
    Stored,
    /// Also decrypt and decompress every file and check the plaintext digest and the
    /// segment headers (needs the identity).
    Content,
}

/// What kind of problem [`WalArchive::verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalProblemKind {
    /// A segment needed to recover a base backup to the newest WAL is missing.
    Gap,
    /// A file's stored object is missing, has the wrong size or digest, or fails to
    /// decrypt or parse.
    Corrupt,
    /// A segment of another database system.
    Foreign,
    /// Timeline histories contradict each other or the segments.
    Timeline,
    /// The archive record or a manifest is unreadable.
    Invalid,
}

/// One problem found by [`WalArchive::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct WalProblem {
    /// What sort.
    pub kind: WalProblemKind,
    /// The WAL file concerned, if one.
    pub file: Option<String>,
    /// The message for the user.
    pub message: String,
}

impl fmt::Display for WalProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            WalProblemKind::Gap => "gap",
            WalProblemKind::Corrupt => "corrupt",
            WalProblemKind::Foreign => "foreign",
            WalProblemKind::Timeline => "timeline",
            WalProblemKind::Invalid => "invalid",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

/// The WAL a base backup needs, as [`WalArchive::verify`] checked it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupCoverage {
    /// The base backup.
    pub backup_id: String,
    /// Its first needed segment.
    pub start_segment: String,
    /// The segment that makes it consistent.
    pub stop_segment: Option<String>,
    /// The timelines recovery to the newest WAL follows, with their segment ranges.
    pub path: Vec<TimelineRange>,
    /// The newest segment recovery can reach without a gap.
    pub reachable: Option<String>,
    /// Whether every needed segment is archived.
    pub complete: bool,
}

/// A range of segments read from one timeline during recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRange {
    /// The timeline.
    pub timeline: u32,
    /// The first segment number read from it.
    pub from_segno: u64,
    /// The last segment number read from it (inclusive); `None` when the timeline has no
    /// segment in range yet.
    pub to_segno: Option<u64>,
}

/// What [`WalArchive::verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct WalVerifyReport {
    /// The datastore.
    pub datastore: String,
    /// The level run.
    pub level: WalVerifyLevel,
    /// The archive's system identifier.
    pub system_identifier: Option<String>,
    /// Files checked.
    pub files: usize,
    /// Segments archived.
    pub segments: usize,
    /// Bytes of stored objects read.
    pub bytes_read: u64,
    /// Newest segment per timeline.
    pub newest: BTreeMap<String, String>,
    /// Base backups and the WAL they need.
    pub backups: Vec<BackupCoverage>,
    /// Problems: the archive is not usable as it is if this is not empty.
    pub problems: Vec<WalProblem>,
    /// Things worth knowing that do not make a restore fail (debris of interrupted
    /// pushes, WAL older than every base backup with holes).
    pub warnings: Vec<String>,
}

impl WalVerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl WalArchive {
    /// Lists everything under the WAL folder.
    pub async fn listing(&self) -> Result<WalListing> {
        let prefix = format!("{}/", self.folder());
        let keys = self.store.list_keys(&self.folder()).await?;
        let mut listing = WalListing::default();
        for (key, meta) in keys {
            // A signature goes with its object (deleted with it by prune).
            if key.ends_with(backup_core::sign::SIGNATURE_SUFFIX) {
                continue;
            }
            let Some(rel) = key.strip_prefix(&prefix) else {
                listing.unknown.push(key);
                continue;
            };
            if rel == ARCHIVE_RECORD {
                listing.has_record = true;
                continue;
            }
            let Some((folder, base)) = rel.split_once('/') else {
                listing.unknown.push(key);
                continue;
            };
            let (name, is_manifest) = if let Some(n) = base.strip_suffix(".json") {
                (n.to_string(), true)
            } else if let Some(n) = base.strip_suffix(".zst.age") {
                // `{file}.zst.age` or `{file}.{random}.zst.age`
                let n = match n.rsplit_once('.') {
                    Some((head, tail))
                        if tail.len() == 8
                            && tail
                                .chars()
                                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                            && WalFile::parse(head).is_some() =>
                    {
                        head
                    }
                    _ => n,
                };
                (n.to_string(), false)
            } else {
                listing.unknown.push(key);
                continue;
            };
            let Some(file) = WalFile::parse(&name).filter(|f| f.timeline_folder() == folder) else {
                listing.unknown.push(key);
                continue;
            };
            let entry = listing.files.entry(name).or_insert_with(|| ListedFile {
                file,
                manifest_key: None,
                archived_at: None,
                objects: Vec::new(),
            });
            if is_manifest {
                entry.manifest_key = Some(key);
                entry.archived_at = Some(meta.last_modified);
            } else {
                entry.objects.push((key, meta.size));
            }
        }
        Ok(listing)
    }

    /// The newest archived segment and its age.
    pub async fn status(&self) -> Result<WalStatus> {
        let listing = self.listing().await?;
        let record = self.record().await?;
        let newest = listing
            .files
            .values()
            .filter(|f| f.file.kind == WalFileKind::Segment && f.manifest_key.is_some())
            .max_by_key(|f| (f.file.timeline, f.file.log, f.file.seg));
        let last = listing.files.values().filter_map(|f| f.archived_at).max();
        let now = Utc::now();
        Ok(WalStatus {
            datastore: self.datastore.clone(),
            newest_segment: newest.map(|f| f.file.name.clone()),
            newest_archived_at: newest.and_then(|f| f.archived_at),
            newest_age_seconds: newest
                .and_then(|f| f.archived_at)
                .map(|t| (now - t).num_seconds().max(0)),
            last_archived_at: last,
            segments: listing
                .files
                .values()
                .filter(|f| f.file.kind == WalFileKind::Segment && f.manifest_key.is_some())
                .count(),
            timelines: listing
                .files
                .values()
                .map(|f| f.file.timeline)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            system_identifier: record.map(|r| r.system_identifier),
        })
    }

    /// Reads the histories of all archived history files (timeline → its parents).
    pub async fn histories(
        &self,
        listing: &WalListing,
    ) -> Result<BTreeMap<u32, Vec<HistoryEntry>>> {
        let mut out = BTreeMap::new();
        for f in listing.files.values() {
            if f.file.kind != WalFileKind::History || f.manifest_key.is_none() {
                continue;
            }
            let Some(m) = self.file_manifest(&f.file).await? else {
                continue;
            };
            let entries: Vec<HistoryEntry> = m
                .source
                .get("history")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| Error::InvalidManifest {
                    key: self.manifest_key(&f.file),
                    reason: format!("history: {e}"),
                })?
                .unwrap_or_default();
            out.insert(f.file.timeline, entries);
        }
        Ok(out)
    }

    /// Checks the archive; see [`WalVerifyLevel`]. `backups` are the base backups whose
    /// WAL must be complete (usually every physical backup of the datastore, see
    /// [`crate::physical::base_backups`]).
    pub async fn verify(
        &self,
        backups: &[BaseBackupWal],
        level: WalVerifyLevel,
        decryption: Option<Arc<Decryption>>,
    ) -> Result<WalVerifyReport> {
        if level == WalVerifyLevel::Content && decryption.is_none() {
            return Err(Error::Key(
                "wal-verify --level content needs an identity (--identity / DBSEAL_IDENTITY)"
                    .into(),
            ));
        }
        let listing = self.listing().await?;
        let mut report = WalVerifyReport {
            datastore: self.datastore.clone(),
            level,
            system_identifier: None,
            files: 0,
            segments: 0,
            bytes_read: 0,
            newest: BTreeMap::new(),
            backups: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let record = match self.record().await {
            Ok(r) => r,
            Err(e) => {
                report.problems.push(WalProblem {
                    kind: WalProblemKind::Invalid,
                    file: None,
                    message: e.to_string(),
                });
                None
            }
        };
        let Some(record) = record else {
            if listing.files.is_empty() && backups.is_empty() {
                return Err(self.err(
                    ErrorKind::NotFound,
                    format!(
                        "no WAL archive in {}: set archive_command = 'dbseal wal-push --datastore {} %p' (and archive_mode = on)",
                        self.store.url(),
                        self.datastore
                    ),
                ));
            }
            report.problems.push(WalProblem {
                kind: WalProblemKind::Invalid,
                file: None,
                message: format!("the archive record {} is missing", self.record_key()),
            });
            return Ok(report);
        };
        report.system_identifier = Some(record.system_identifier.clone());
        let sysid = record.system_id()?;
        let seg_size = record.wal_segment_size;
        if !valid_segment_size(seg_size) {
            report.problems.push(WalProblem {
                kind: WalProblemKind::Invalid,
                file: None,
                message: format!("the archive record's segment size {seg_size} is invalid"),
            });
            return Ok(report);
        }

        // Per file: manifest, object, and (by level) digest or content.
        let files: Vec<ListedFile> = listing.files.values().cloned().collect();
        let checks = futures::stream::iter(files.into_iter().map(|f| {
            let decryption = decryption.clone();
            async move { self.verify_file(&f, sysid, level, decryption).await }
        }))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
        for (problems, warnings, bytes, counted) in checks {
            report.problems.extend(problems);
            report.warnings.extend(warnings);
            report.bytes_read += bytes;
            report.files += usize::from(counted);
        }
        for key in &listing.unknown {
            report
                .warnings
                .push(format!("unexpected object {key} in the WAL folder"));
        }

        // Timelines.
        let histories = self.histories(&listing).await?;
        let segments = listing.segments(seg_size);
        report.segments = segments.values().map(BTreeSet::len).sum();
        for (tl, segs) in &segments {
            if let Some(last) = segs.iter().next_back() {
                report
                    .newest
                    .insert(format!("{tl:08X}"), segment_name(*tl, *last, seg_size));
            }
        }
        report
            .problems
            .extend(check_timelines(&histories, &segments, seg_size));

        // Base backups: every segment from the start to the newest of the timeline path.
        for b in backups {
            if b.system_identifier != sysid {
                report.problems.push(WalProblem {
                    kind: WalProblemKind::Foreign,
                    file: None,
                    message: format!(
                        "base backup {} is of database system {}, but the WAL archive holds database system {sysid}",
                        b.backup_id, b.system_identifier
                    ),
                });
                continue;
            }
            let (coverage, problems) = backup_coverage(b, &histories, &segments, seg_size, None);
            report.problems.extend(problems);
            report.backups.push(coverage);
        }
        if backups.is_empty() {
            // No base backup: at least each timeline must be contiguous.
            for (tl, segs) in &segments {
                let (Some(first), Some(last)) = (segs.iter().next(), segs.iter().next_back())
                else {
                    continue;
                };
                for missing in (*first..=*last).filter(|s| !segs.contains(s)) {
                    report.problems.push(WalProblem {
                        kind: WalProblemKind::Gap,
                        file: Some(segment_name(*tl, missing, seg_size)),
                        message: format!(
                            "{} is missing between {} and {}",
                            segment_name(*tl, missing, seg_size),
                            segment_name(*tl, *first, seg_size),
                            segment_name(*tl, *last, seg_size)
                        ),
                    });
                }
            }
            report
                .warnings
                .push("no physical base backup in this datastore: only checked that each timeline is contiguous".into());
        } else {
            // Holes before every base backup's start do not matter; report them quietly.
            let oldest: Option<u64> = backups
                .iter()
                .filter(|b| b.system_identifier == sysid)
                .map(|b| b.start_lsn.segno(seg_size))
                .min();
            if let Some(oldest) = oldest {
                for (tl, segs) in &segments {
                    let before: Vec<u64> = segs.iter().copied().filter(|s| *s < oldest).collect();
                    if let (Some(first), Some(last)) = (before.first(), before.last()) {
                        let holes = (*first..=*last).filter(|s| !segs.contains(s)).count();
                        if holes > 0 {
                            report.warnings.push(format!(
                                "timeline {tl}: {holes} segment(s) missing before the oldest base backup (not needed by any backup)"
                            ));
                        }
                    }
                }
            }
        }
        report.problems.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(report)
    }

    /// Checks one listed file. Returns (problems, warnings, bytes read, counted).
    async fn verify_file(
        &self,
        f: &ListedFile,
        sysid: u64,
        level: WalVerifyLevel,
        decryption: Option<Arc<Decryption>>,
    ) -> (Vec<WalProblem>, Vec<String>, u64, bool) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let name = &f.file.name;
        let corrupt = |message: String| WalProblem {
            kind: WalProblemKind::Corrupt,
            file: Some(name.clone()),
            message,
        };
        if f.manifest_key.is_none() {
            warnings.push(format!(
                "{name}: stored object(s) without a manifest (debris of an interrupted push): {}",
                f.objects
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return (problems, warnings, 0, false);
        }
        let manifest = match self.file_manifest(&f.file).await {
            Ok(Some(m)) => m,
            Ok(None) => return (problems, warnings, 0, false),
            Err(e) => {
                problems.push(WalProblem {
                    kind: WalProblemKind::Invalid,
                    file: Some(name.clone()),
                    message: format!("{name}: {e}"),
                });
                return (problems, warnings, 0, true);
            }
        };
        if let Err(p) = self.check_file_manifest(&f.file, &manifest, Some(sysid)) {
            problems.push(p);
            return (problems, warnings, 0, true);
        }
        let a = &manifest.artifact;
        for (key, _) in &f.objects {
            if *key != a.key {
                warnings.push(format!(
                    "{name}: unreferenced stored object {key} (debris of an interrupted push)"
                ));
            }
        }
        match f.objects.iter().find(|(k, _)| *k == a.key) {
            None => {
                problems.push(corrupt(format!(
                    "{name}: its stored object {} is missing",
                    a.key
                )));
                return (problems, warnings, 0, true);
            }
            Some((_, size)) if *size != a.stored_size => {
                problems.push(corrupt(format!(
                    "{name}: {} is {size} bytes, its manifest records {} (truncated or replaced)",
                    a.key, a.stored_size
                )));
                return (problems, warnings, 0, true);
            }
            _ => {}
        }
        let mut bytes = 0;
        match level {
            WalVerifyLevel::Metadata => {}
            WalVerifyLevel::Stored => {
                match backup_core::verify_stored(&self.store, &manifest).await {
                    Ok(_) => bytes = a.stored_size,
                    Err(e) => problems.push(corrupt(format!("{name}: {e}"))),
                }
            }
            WalVerifyLevel::Content => {
                let mut sink = WalCheckSink {
                    file: f.file.clone(),
                    scanner: f.file.is_segment_like().then(SegmentScanner::new),
                    system_identifier: sysid,
                };
                let opts = RestoreOptions {
                    decryption,
                    progress: None,
                };
                match backup_core::restore(&self.store, &manifest, "data", &mut sink, &opts).await {
                    Ok(_) => bytes = a.stored_size,
                    Err(e) => {
                        let kind = if e.to_string().contains("database system") {
                            WalProblemKind::Foreign
                        } else {
                            WalProblemKind::Corrupt
                        };
                        problems.push(WalProblem {
                            kind,
                            file: Some(name.clone()),
                            message: format!("{name}: {e}"),
                        });
                    }
                }
            }
        }
        (problems, warnings, bytes, true)
    }

    /// Deletes archived WAL no kept base backup needs: segments, partial segments and
    /// backup history files older than the oldest start segment of `kept` (history
    /// files are always kept). With no kept backup nothing is deleted. Returns the
    /// names of the files deleted (or that would be, with `dry_run`).
    pub async fn prune(&self, kept: &[BaseBackupWal], dry_run: bool) -> Result<Vec<String>> {
        let Some(record) = self.record().await? else {
            return Ok(Vec::new());
        };
        let seg_size = record.wal_segment_size;
        let Some(oldest) = kept.iter().map(|b| b.start_lsn.segno(seg_size)).min() else {
            return Ok(Vec::new());
        };
        let listing = self.listing().await?;
        let mut deleted = Vec::new();
        for f in listing.files.values() {
            if f.file.kind == WalFileKind::History || f.file.segno(seg_size) >= oldest {
                continue;
            }
            deleted.push(f.file.name.clone());
            if dry_run {
                continue;
            }
            // Manifest first: a file without manifest does not exist.
            if let Some(k) = &f.manifest_key {
                self.store.delete(k).await?;
                self.store
                    .delete(&backup_core::sign::signature_key(k))
                    .await?;
            }
            for (k, _) in &f.objects {
                self.store.delete(k).await?;
            }
        }
        Ok(deleted)
    }
}

/// Reads a WAL file to its end for `wal-verify --level content`, checking a segment's
/// header.
struct WalCheckSink {
    file: WalFile,
    scanner: Option<SegmentScanner>,
    system_identifier: u64,
}

#[async_trait]
impl Sink for WalCheckSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
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
            if let Some(s) = self.scanner.as_mut() {
                s.feed(&buf[..n]);
            }
            bytes += n as u64;
        }
        if let Some(s) = self.scanner.take() {
            check_segment(&self.file, s, Some(self.system_identifier)).map_err(|m| {
                Error::Format {
                    format: SEGMENT_FORMAT.into(),
                    reason: m,
                }
            })?;
        }
        Ok(SinkReport {
            bytes,
            summary: Vec::new(),
        })
    }
}
