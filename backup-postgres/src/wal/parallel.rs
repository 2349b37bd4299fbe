//! `--concurrency N` for `wal-push` and `wal-fetch`, as WAL-G does it.
//!
//! - **Push ahead.** PostgreSQL's archiver calls `archive_command` for one file at a
//!   time. With `N > 1`, `wal-push` also archives, `N` at a time, the oldest other
//!   files whose `archive_status/NAME.ready` says they wait for archiving (at most
//!   [`AHEAD_PER_CALL`]` × N` per call, so one call stays short), and leaves a marker
//!   for each in `pg_wal/.dbseal-pushed/`. When the archiver reaches such a file, the
//!   marker answers at once: it names the archive (a hash of the store URL, the
//!   options and variables that choose the store, and the datastore — see
//!   [`archive_identity`]) and the file's size and modification time, taken before the
//!   push and checked after it; a marker that does not match them is ignored (the file
//!   is archived again, which is idempotent). A failed push ahead is only logged: the
//!   archiver will call for that file itself. At most [`PREFETCH_BYTES`] of segments
//!   are sealed at once (each push in flight holds its sealed file in memory).
//! - **Prefetch.** `restore_command` asks for one segment at a time. With `N > 1`,
//!   `wal-fetch` fetches the requested segment, then (when it was archived) the
//!   following ones of its timeline, `N` at a time, into
//!   `pg_wal/.dbseal-prefetch/ARCHIVE/` — [`AHEAD_PER_CALL`]` × N` segments in all, never
//!   more than [`PREFETCH_BYTES`] — each verified as a fetched file is (digests,
//!   signature, page headers, system identifier) and renamed into place only when
//!   whole; the next calls of the same archive take their file from there after
//!   checking its page headers again, without opening the store. Files outside the
//!   window, and other archives' folders, are removed by the next call; a recovered
//!   cluster keeps what was fetched past its end until the folder is deleted.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use backup_core::{Error, Result};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fetch::check_segment;
use super::{
    segment_name, FetchOptions, FetchOutcome, PushOptions, PushOutcome, SegmentScanner, WalArchive,
    WalFile, WalFileKind,
};

/// Files pushed ahead per call, per unit of concurrency.
pub const AHEAD_PER_CALL: usize = 8;
/// Where pushed-ahead markers live, beside the WAL files.
pub const PUSHED_DIR: &str = ".dbseal-pushed";
/// Where prefetched files live, beside the WAL files.
pub const PREFETCH_DIR: &str = ".dbseal-prefetch";
/// The most a prefetch window holds: 256 MiB of segments.
pub const PREFETCH_BYTES: u64 = 256 << 20;
/// The largest concurrency accepted.
pub const MAX_CONCURRENCY: usize = 64;

/// A file pushed ahead: enough to recognise it and to answer for it.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    archive: String,
    size: u64,
    modified_ns: u128,
    manifest_key: String,
    key: String,
    plaintext_size: u64,
    stored_size: u64,
}

/// Who an archive is, for markers and the prefetch folder: a hash of `parts` (the
/// front-end passes the store URL as shown, the options and environment variables that
/// choose the store — secret ones by name only — and the datastore), never the parts
/// themselves.
pub fn archive_identity(parts: &[String]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The marker of `path` if it was pushed ahead into the archive `identity` and is
/// unchanged.
fn pushed_marker(identity: &str, path: &Path, marker: &Path) -> Option<Marker> {
    let m: Marker = serde_json::from_slice(&std::fs::read(marker).ok()?).ok()?;
    let (size, modified_ns) = file_stamp(path)?;
    (m.archive == identity && m.size == size && m.modified_ns == modified_ns).then_some(m)
}

/// `wal-push`'s answer for `path` when an earlier call archived it ahead into the
/// archive `identity` ([`archive_identity`]): checked before keys are read or the
/// store is opened, so that it costs little more than the process start. The marker is
/// consumed; stale markers are removed.
pub fn archived_ahead(identity: &str, path: &Path) -> Option<PushOutcome> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name()?.to_str()?;
    let markers = dir.join(PUSHED_DIR);
    remove_stale_markers(dir, &markers);
    let m = pushed_marker(identity, path, &markers.join(name))?;
    let _ = std::fs::remove_file(markers.join(name));
    tracing::info!(file = %name, "WAL file was archived ahead by an earlier wal-push");
    Some(PushOutcome {
        file: name.to_string(),
        status: "archived_ahead",
        manifest_key: m.manifest_key,
        key: m.key,
        plaintext_size: m.plaintext_size,
        stored_size: m.stored_size,
    })
}

/// Removes markers whose WAL file is gone (archived and recycled).
fn remove_stale_markers(dir: &Path, markers: &Path) {
    let Ok(entries) = std::fs::read_dir(markers) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name();
        if !dir.join(&n).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// How many segments one `wal-fetch --concurrency N` call brings in (the requested one
/// included): [`AHEAD_PER_CALL`] × N, so that the cost of a call (process start, keys,
/// store) is shared by many files, but never more than [`PREFETCH_BYTES`] of segments.
fn prefetch_window(concurrency: usize, segment_size: u64) -> u64 {
    ((concurrency * AHEAD_PER_CALL) as u64).min(segments_in_budget(segment_size))
}

/// How many segments of `segment_size` bytes fit in [`PREFETCH_BYTES`] (at least one).
fn segments_in_budget(segment_size: u64) -> u64 {
    (PREFETCH_BYTES / segment_size.max(1)).max(1)
}

/// Checks a `--concurrency` value.
pub fn check_concurrency(n: usize) -> Result<usize> {
    if n == 0 || n > MAX_CONCURRENCY {
        return Err(Error::Config(format!(
            "--concurrency {n}: give 1 (one file at a time) to {MAX_CONCURRENCY}"
        )));
    }
    Ok(n)
}

/// A file's size and modification time (ns since the epoch).
type Stamp = (u64, u128);

fn file_stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((meta.len(), modified.as_nanos()))
}

/// Writes `bytes` to `path` through a temporary file and a rename. Not
/// `backup_core::fsutil::write_atomically`, which syncs: a marker need not survive a
/// crash (a lost one costs a re-push, which is idempotent), and a sync per marker would
/// cost more than the push ahead saves.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

impl WalArchive {
    /// [`WalArchive::push`] with up to `concurrency` files at once: `path`, and the
    /// oldest other files PostgreSQL marked ready beside it (see the module docs);
    /// `identity`: this archive's [`archive_identity`]. Returns `path`'s outcome; a push
    /// ahead that fails is logged, not returned.
    pub async fn push_concurrently(
        &self,
        path: &Path,
        options: &PushOptions,
        concurrency: usize,
        identity: &str,
    ) -> Result<PushOutcome> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let markers = dir.join(PUSHED_DIR);
        if let Some(outcome) = archived_ahead(identity, path) {
            return Ok(outcome);
        }
        let mut ahead = if concurrency > 1 {
            self.ready_files(dir, name, &markers, concurrency * AHEAD_PER_CALL, identity)
        } else {
            Vec::new()
        };
        // The first segment pushed into an archive creates its record: until it
        // exists, one file at a time, so that parallel pushes do not race to create
        // (and sign) it. Its segment size bounds the memory of the pushes in flight.
        let mut in_flight = concurrency;
        if !ahead.is_empty() {
            match self.record().await? {
                None => ahead.clear(),
                Some(rec) => {
                    in_flight = in_flight.min(segments_in_budget(rec.wal_segment_size) as usize)
                }
            }
        }
        if !ahead.is_empty() {
            if let Err(e) = std::fs::create_dir_all(&markers) {
                tracing::warn!(dir = %markers.display(), error = %e, "cannot create the marker folder: no push ahead");
                ahead.clear();
            }
        }
        // Each file's size and time before its push: the marker vouches for those.
        let jobs = std::iter::once(path.to_path_buf()).chain(ahead.iter().map(|n| dir.join(n)));
        let mut results: Vec<(PathBuf, Option<Stamp>, Result<PushOutcome>)> = stream::iter(jobs)
            .map(|p| async move {
                let before = file_stamp(&p);
                let r = self.push(&p, options).await;
                (p, before, r)
            })
            .buffered(in_flight.max(1))
            .collect()
            .await;
        let (_, _, own) = results.remove(0);
        for (p, before, r) in results {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match r {
                Ok(outcome) => {
                    let after = file_stamp(&p);
                    let Some((size, modified_ns)) = before.filter(|_| before == after) else {
                        tracing::warn!(file = %n, "the file changed while it was pushed ahead: no marker");
                        continue;
                    };
                    let m = Marker {
                        archive: identity.to_string(),
                        size,
                        modified_ns,
                        manifest_key: outcome.manifest_key,
                        key: outcome.key,
                        plaintext_size: outcome.plaintext_size,
                        stored_size: outcome.stored_size,
                    };
                    let bytes = serde_json::to_vec(&m).expect("serializable");
                    if let Err(e) = write_atomically(&markers.join(n), &bytes) {
                        tracing::warn!(file = %n, error = %e, "cannot write the pushed-ahead marker");
                    }
                }
                Err(e) => {
                    tracing::warn!(file = %n, error = %e, "pushing ahead failed; the archiver will retry this file")
                }
            }
        }
        own
    }

    /// The oldest files in `dir/archive_status` marked `.ready`, other than `name` and
    /// those already pushed ahead: history files first, as PostgreSQL's archiver orders
    /// them.
    fn ready_files(
        &self,
        dir: &Path,
        name: &str,
        markers: &Path,
        limit: usize,
        identity: &str,
    ) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir.join("archive_status")) else {
            return Vec::new();
        };
        let mut ready: Vec<(bool, String)> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".ready").map(str::to_string))
            .filter(|n| n != name && WalFile::parse(n).is_some())
            .filter(|n| pushed_marker(identity, &dir.join(n), &markers.join(n)).is_none())
            .map(|n| (!n.ends_with(".history"), n))
            .collect();
        ready.sort();
        ready.into_iter().take(limit).map(|(_, n)| n).collect()
    }

    /// [`WalArchive::fetch`] with prefetch: the segment `name`, then the following
    /// segments of its timeline, `concurrency` at a time (see the module docs);
    /// `identity`: this archive's [`archive_identity`]. Prefetching never fails the
    /// call: when it cannot be done (no archive record, no folder), the segment is
    /// fetched alone.
    pub async fn fetch_concurrently(
        &self,
        name: &str,
        dest: &Path,
        options: &FetchOptions,
        concurrency: usize,
        identity: &str,
    ) -> Result<FetchOutcome> {
        let file = match WalFile::parse(name) {
            Some(f) if f.kind == WalFileKind::Segment && concurrency > 1 => f,
            _ => return self.fetch(name, dest, options).await,
        };
        let record = match self.record().await {
            Ok(Some(record)) => record,
            Ok(None) => return self.fetch(name, dest, options).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the archive record: no prefetch");
                return self.fetch(name, dest, options).await;
            }
        };
        let size = record.wal_segment_size;
        let expected = match (options.system_identifier, record.system_id()) {
            (Some(id), _) | (None, Ok(id)) => id,
            (None, Err(e)) => return Err(e),
        };
        let cache = prefetch_folder(dest, identity);
        let window: Vec<String> = (0..prefetch_window(concurrency, size))
            .map(|i| segment_name(file.timeline, file.segno(size) + i, size))
            .collect();
        sweep_prefetch(&cache, &window);
        if let Some(outcome) = take_prefetched(&file, &cache, dest, expected) {
            return Ok(outcome);
        }
        let mut options = options.clone();
        options.system_identifier = Some(expected);
        let options = &options;
        // The requested segment first: past the end of the archive (a standby polls
        // there), nothing further is fetched.
        let own = self.fetch_file(name, dest, options, true).await?;
        if !matches!(own, FetchOutcome::Fetched { .. }) || window.len() < 2 {
            return Ok(own);
        }
        if let Err(e) = std::fs::create_dir_all(&cache) {
            tracing::warn!(dir = %cache.display(), error = %e, "cannot create the prefetch folder: no prefetch");
            return Ok(own);
        }
        let wanted: Vec<String> = window[1..]
            .iter()
            .filter(|n| !cache.join(n).exists())
            .cloned()
            .collect();
        let results: Vec<(String, Result<FetchOutcome>)> = stream::iter(wanted)
            .map(|n| async {
                let r = self.fetch_file(&n, &cache.join(&n), options, false).await;
                (n, r)
            })
            .buffered(concurrency)
            .collect()
            .await;
        for (n, r) in results {
            if let Err(e) = r {
                tracing::warn!(file = %n, error = %e, "prefetching failed; it will be fetched when recovery asks for it");
                let _ = std::fs::remove_file(cache.join(&n));
            }
        }
        Ok(own)
    }
}

/// The prefetch folder of the archive `identity` for a `restore_command` writing `dest`.
fn prefetch_folder(dest: &Path, identity: &str) -> PathBuf {
    dest.parent()
        .unwrap_or(Path::new("."))
        .join(PREFETCH_DIR)
        .join(identity)
}

/// Removes what the next calls will not use: files of `cache` outside `window` (past
/// segments, another timeline's, temporary files of a killed call) and the folders of
/// other archives.
fn sweep_prefetch(cache: &Path, window: &[String]) {
    if let Some(root) = cache.parent() {
        if let Ok(entries) = std::fs::read_dir(root) {
            for e in entries.flatten() {
                if e.path() != cache {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(cache) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !window.contains(&n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// `wal-fetch`'s answer for the segment `name` when an earlier call prefetched it from
/// the archive `identity` ([`archive_identity`]) beside `dest`: checked before keys are
/// read or the store is opened. `None` when it is not there (or fails its check, and
/// was removed).
pub fn prefetched(
    name: &str,
    dest: &Path,
    system_identifier: u64,
    identity: &str,
) -> Option<FetchOutcome> {
    let file = WalFile::parse(name).filter(|f| f.kind == WalFileKind::Segment)?;
    take_prefetched(
        &file,
        &prefetch_folder(dest, identity),
        dest,
        system_identifier,
    )
}

/// Moves a prefetched `file` from `cache` to `dest` after checking its page headers
/// again; `None` when it is not there or fails the check (then it is removed).
fn take_prefetched(
    file: &WalFile,
    cache: &Path,
    dest: &Path,
    system_identifier: u64,
) -> Option<FetchOutcome> {
    let cached = cache.join(&file.name);
    let mut f = std::fs::File::open(&cached).ok()?;
    let (scanner, bytes) = SegmentScanner::scan(&mut f).ok()?;
    if let Err(e) = check_segment(file, scanner, Some(system_identifier)) {
        tracing::warn!(file = %file.name, error = %e, "a prefetched file failed its check: fetching it again");
        let _ = std::fs::remove_file(&cached);
        return None;
    }
    std::fs::rename(&cached, dest).ok()?;
    Some(FetchOutcome::Fetched {
        file: file.name.clone(),
        bytes,
        prefetched: true,
    })
}
