//! Physical base backups and point-in-time restores.
//!
//! **Backup**: [`PhysicalSource`] streams `pg_basebackup --pgdata=- --format=tar
//! --wal-method=none` into the pipeline as one sealed artifact of format [`TAR_FORMAT`].
//! The WAL the backup needs is not in it: PostgreSQL's `archive_command` (`dbseal
//! wal-push`, see [`crate::wal`]) archives it, and `pg_basebackup` returns only once
//! the last segment the backup needs is archived. While the tar streams, dbseal reads
//! `backup_label`, `global/pg_control` and the server's `backup_manifest` inside it, so
//! the manifest records the start and stop LSN, the timeline, the system identifier and
//! the WAL range the backup needs.
//!
//! **Verification**: [`BaseBackupFormat`] parses the tar and checks every file against
//! PostgreSQL's own `backup_manifest` (sizes and CRC-32C checksums, and the manifest's
//! SHA-256), like `pg_verifybackup` does; that is level 2 for physical backups.
//!
//! **Restore**: [`restore_physical`] checks the WAL archive first (the backup's system
//! identifier, the segments it needs to become consistent, and no gap up to the
//! target), then unpacks the tar into an EMPTY data directory ([`PhysicalSink`]) and only
//! at the clean end of the stream writes the recovery settings: `restore_command`
//! (`dbseal wal-fetch`, see [`wal_fetch_command`]), the recovery target and
//! `recovery.signal`. Starting PostgreSQL then recovers to the target. On any error the
//! data directory is left as it was (empty, or absent).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use backup_core::pipe::{blocking_chunks, PIPE_CAPACITY};
use backup_core::sink::StreamReader;
use backup_core::source::StreamWriter;
use backup_core::{
    BackupOptions, BackupSession, BackupStore, Contents, Error, ErrorKind, FormatReader, Manifest,
    RestoreOptions, Result, Sink, SinkReport, Source, SourceFacts,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWrite};

use crate::config::{Connection, PostgresConfig, Tool};
use crate::error::{PgResult, PostgresError};
use crate::source::{check_tool_version, stream_command, KIND};
use crate::wal::{
    label_lsn, parse_label, plan_recovery, segment_name, BaseBackupWal, Lsn, WalArchive,
};

/// The format name of physical base backups: a tar archive of the data directory.
pub const TAR_FORMAT: &str = "tar";
/// The file holding store settings for `restore_command`, written into the restored
/// data directory with mode 0600.
pub const RESTORE_ENV_FILE: &str = "dbseal-restore.env";
/// The largest `backup_manifest` accepted (it lists every file of the cluster).
const MAX_MANIFEST: usize = 512 * 1024 * 1024;
/// The largest `backup_label` / `tablespace_map` / `PG_VERSION` kept.
const MAX_SMALL_FILE: usize = 1024 * 1024;

fn tar_error(reason: impl Into<String>) -> Error {
    Error::Format {
        format: TAR_FORMAT.into(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------
// A streaming tar parser
// ---------------------------------------------------------------------------------

/// What a tar member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarEntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link to the target.
    Symlink(String),
    /// A hard link to an earlier member.
    HardLink(String),
    /// Anything else (devices, FIFOs), with its type flag.
    Other(u8),
}

/// One tar member.
#[derive(Debug, Clone)]
pub struct TarEntry {
    /// Its path, without a leading `./` and trailing `/`.
    pub path: String,
    /// What it is.
    pub kind: TarEntryKind,
    /// Size of its data.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
}

/// Receives what a [`TarParser`] finds.
pub trait TarVisitor {
    /// A member starts.
    fn entry(&mut self, entry: &TarEntry) -> Result<()>;
    /// Some of its data.
    fn data(&mut self, entry: &TarEntry, chunk: &[u8]) -> Result<()>;
    /// It ended.
    fn end_entry(&mut self, entry: &TarEntry) -> Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TarState {
    Header,
    Data,
    Meta,
    Padding,
    End,
}

/// A push parser of (ustar, GNU and pax) tar archives: constant memory except for the
/// data of long-name and pax headers.
#[derive(Debug)]
pub struct TarParser {
    state: TarState,
    block: Vec<u8>,
    remaining: u64,
    padding: u64,
    entry: Option<TarEntry>,
    meta_kind: u8,
    meta: Vec<u8>,
    long_name: Option<String>,
    long_link: Option<String>,
    pax: BTreeMap<String, String>,
    zero_blocks: u32,
    offset: u64,
    members: u64,
}

impl Default for TarParser {
    fn default() -> Self {
        Self::new()
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256 (GNU) for large values
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn normalize(path: &str) -> String {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.trim_end_matches('/').to_string()
}

impl TarParser {
    /// A parser at the start of an archive.
    pub fn new() -> Self {
        TarParser {
            state: TarState::Header,
            block: Vec::with_capacity(512),
            remaining: 0,
            padding: 0,
            entry: None,
            meta_kind: 0,
            meta: Vec::new(),
            long_name: None,
            long_link: None,
            pax: BTreeMap::new(),
            zero_blocks: 0,
            offset: 0,
            members: 0,
        }
    }

    /// The number of members seen.
    pub fn members(&self) -> u64 {
        self.members
    }

    /// Feeds the next bytes of the archive.
    pub fn feed(&mut self, mut data: &[u8], visitor: &mut dyn TarVisitor) -> Result<()> {
        while !data.is_empty() {
            match self.state {
                TarState::Header => {
                    let take = (512 - self.block.len()).min(data.len());
                    self.block.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.offset += take as u64;
                    if self.block.len() == 512 {
                        let block = std::mem::take(&mut self.block);
                        self.header(&block, visitor)?;
                        self.block = block;
                        self.block.clear();
                    }
                }
                TarState::Data | TarState::Meta => {
                    let take = (self.remaining.min(data.len() as u64)) as usize;
                    let chunk = &data[..take];
                    if self.state == TarState::Data {
                        let entry = self.entry.as_ref().expect("entry in data state");
                        visitor.data(entry, chunk)?;
                    } else {
                        if self.meta.len() + take > 16 * 1024 * 1024 {
                            return Err(tar_error(format!(
                                "an extended header larger than 16 MiB at byte {}",
                                self.offset
                            )));
                        }
                        self.meta.extend_from_slice(chunk);
                    }
                    data = &data[take..];
                    self.offset += take as u64;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.end_member(visitor)?;
                    }
                }
                TarState::Padding => {
                    let take = (self.padding.min(data.len() as u64)) as usize;
                    data = &data[take..];
                    self.offset += take as u64;
                    self.padding -= take as u64;
                    if self.padding == 0 {
                        self.state = TarState::Header;
                    }
                }
                TarState::End => {
                    if let Some(p) = data.iter().position(|b| *b != 0) {
                        return Err(tar_error(format!(
                            "data after the end of the archive at byte {}",
                            self.offset + p as u64
                        )));
                    }
                    self.offset += data.len() as u64;
                    data = &[];
                }
            }
        }
        Ok(())
    }

    fn end_member(&mut self, visitor: &mut dyn TarVisitor) -> Result<()> {
        if self.state == TarState::Data {
            let entry = self.entry.take().expect("entry");
            visitor.end_entry(&entry)?;
        } else {
            let meta = std::mem::take(&mut self.meta);
            match self.meta_kind {
                b'L' => self.long_name = Some(cstr(&meta)),
                b'K' => self.long_link = Some(cstr(&meta)),
                b'x' => self.parse_pax(&meta)?,
                _ => {} // global pax headers: ignored
            }
        }
        self.state = if self.padding > 0 {
            TarState::Padding
        } else {
            TarState::Header
        };
        Ok(())
    }

    fn parse_pax(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let sp = data
                .iter()
                .position(|b| *b == b' ')
                .ok_or_else(|| tar_error("malformed pax header"))?;
            let len: usize = std::str::from_utf8(&data[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|l| *l > sp && *l <= data.len())
                .ok_or_else(|| tar_error("malformed pax header record length"))?;
            let record = &data[sp + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|b| *b == b'=') {
                let k = String::from_utf8_lossy(&record[..eq]).into_owned();
                let v = String::from_utf8_lossy(&record[eq + 1..]).into_owned();
                self.pax.insert(k, v);
            }
            data = &data[len..];
        }
        Ok(())
    }

    fn header(&mut self, block: &[u8], visitor: &mut dyn TarVisitor) -> Result<()> {
        let at = self.offset - 512;
        if block.iter().all(|b| *b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks >= 2 {
                self.state = TarState::End;
            }
            return Ok(());
        }
        if self.zero_blocks > 0 {
            return Err(tar_error(format!(
                "a single zero block followed by more members at byte {at}"
            )));
        }
        let stored = octal(&block[148..156])
            .ok_or_else(|| tar_error(format!("unreadable header checksum at byte {at}")))?;
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored {
            return Err(tar_error(format!(
                "header checksum mismatch at byte {at} (not a tar archive, or corrupted)"
            )));
        }
        let size = octal(&block[124..136])
            .ok_or_else(|| tar_error(format!("unreadable member size at byte {at}")))?;
        let typeflag = block[156];
        let padding = (512 - size % 512) % 512;
        self.padding = padding;
        self.remaining = size;
        match typeflag {
            b'L' | b'K' | b'x' | b'g' => {
                self.meta_kind = typeflag;
                self.meta.clear();
                self.state = TarState::Meta;
                if size == 0 {
                    self.end_member(visitor)?;
                }
                return Ok(());
            }
            _ => {}
        }
        let ustar = &block[257..263] == b"ustar\0";
        let mut name = cstr(&block[0..100]);
        if ustar {
            let prefix = cstr(&block[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        if let Some(n) = self.long_name.take() {
            name = n;
        }
        if let Some(p) = self.pax.remove("path") {
            name = p;
        }
        let mut link = cstr(&block[157..257]);
        if let Some(l) = self.long_link.take() {
            link = l;
        }
        if let Some(l) = self.pax.remove("linkpath") {
            link = l;
        }
        let size = match self.pax.remove("size") {
            Some(s) => s
                .parse()
                .map_err(|_| tar_error(format!("bad pax size at byte {at}")))?,
            None => size,
        };
        self.pax.clear();
        self.remaining = size;
        self.padding = (512 - size % 512) % 512;
        let mode = octal(&block[100..108]).unwrap_or(0o600) as u32 & 0o7777;
        let kind = match typeflag {
            b'0' | 0 | b'7' => TarEntryKind::File,
            b'5' => TarEntryKind::Directory,
            b'2' => TarEntryKind::Symlink(link),
            b'1' => TarEntryKind::HardLink(link),
            other => TarEntryKind::Other(other),
        };
        let kind = if kind == TarEntryKind::File && name.ends_with('/') {
            TarEntryKind::Directory
        } else {
            kind
        };
        let entry = TarEntry {
            path: normalize(&name),
            kind,
            size,
            mode,
        };
        if matches!(
            entry.kind,
            TarEntryKind::Symlink(_) | TarEntryKind::HardLink(_)
        ) {
            // Links carry no data whatever their size field says.
            self.remaining = 0;
            self.padding = 0;
        }
        self.members += 1;
        visitor.entry(&entry)?;
        self.entry = Some(entry);
        self.state = TarState::Data;
        if self.remaining == 0 {
            self.end_member(visitor)?;
        }
        Ok(())
    }

    /// Checks the archive ended properly (two zero blocks, nothing cut off).
    pub fn finish(&self) -> Result<()> {
        match self.state {
            TarState::End => Ok(()),
            TarState::Header if self.block.is_empty() && self.zero_blocks == 0 => {
                Err(tar_error(format!(
                    "the archive ends without its end-of-archive marker after {} bytes (truncated)",
                    self.offset
                )))
            }
            _ => Err(tar_error(format!(
                "the archive is cut off inside a member after {} bytes (truncated)",
                self.offset
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------
// What a base backup tar holds
// ---------------------------------------------------------------------------------

/// One file as PostgreSQL's `backup_manifest` lists it.
#[derive(Debug, Clone, Deserialize)]
struct ManifestFile {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Encoded-Path")]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct WalRange {
    #[serde(rename = "Timeline")]
    timeline: u32,
    #[serde(rename = "Start-LSN")]
    start: String,
    #[serde(rename = "End-LSN")]
    end: String,
}

#[derive(Debug, Clone, Deserialize)]
struct PgBackupManifest {
    #[serde(rename = "PostgreSQL-Backup-Manifest-Version")]
    version: u32,
    #[serde(rename = "Files")]
    files: Vec<ManifestFile>,
    #[serde(rename = "WAL-Ranges", default)]
    wal_ranges: Vec<WalRange>,
    #[serde(rename = "Manifest-Checksum")]
    checksum: String,
}

/// Facts about a base backup read from its tar stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackupFacts {
    /// `global/pg_control`: the database system identifier.
    pub system_identifier: Option<u64>,
    /// `global/pg_control`: its version.
    pub pg_control_version: Option<u32>,
    /// `global/pg_control`: the catalog version.
    pub catalog_version: Option<u32>,
    /// `PG_VERSION`: the major version.
    pub pg_version: Option<String>,
    /// `backup_label` lines.
    pub label: BTreeMap<String, String>,
    /// Where the backup's WAL starts.
    pub start_lsn: Option<Lsn>,
    /// The checkpoint it starts from.
    pub checkpoint_lsn: Option<Lsn>,
    /// Its start timeline.
    pub start_timeline: Option<u32>,
    /// Where it becomes consistent (`backup_manifest` WAL-Ranges).
    pub stop_lsn: Option<Lsn>,
    /// The timeline it stopped on.
    pub stop_timeline: Option<u32>,
    /// Files in `backup_manifest`.
    pub manifest_files: Option<u64>,
}

struct CurrentFile {
    path: String,
    size: u64,
    crc: crc_fast::Digest,
    keep: Option<Vec<u8>>,
    keep_limit: usize,
}

/// A [`TarVisitor`] that summarises a base backup and, at the end, checks it against
/// the `backup_manifest` inside it.
pub struct BaseBackupScanner {
    verify: bool,
    contents: Contents,
    facts: BaseBackupFacts,
    current: Option<CurrentFile>,
    seen: BTreeMap<String, (u64, u32)>,
    manifest: Option<Vec<u8>>,
    bytes: u64,
}

impl std::fmt::Debug for BaseBackupScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseBackupScanner")
            .field("verify", &self.verify)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

fn top_level(path: &str) -> &str {
    match path.split_once('/') {
        Some((top, _)) => top,
        None => ".",
    }
}

impl BaseBackupScanner {
    /// A scanner; with `verify`, every file's size and CRC-32C are checked against the
    /// `backup_manifest` at the end.
    pub fn new(verify: bool) -> Self {
        BaseBackupScanner {
            verify,
            contents: Contents::default(),
            facts: BaseBackupFacts::default(),
            current: None,
            seen: BTreeMap::new(),
            manifest: None,
            bytes: 0,
        }
    }

    /// The facts found so far.
    pub fn facts(&self) -> &BaseBackupFacts {
        &self.facts
    }

    /// Completes the summary: parses `backup_label` and `backup_manifest`, checks the
    /// files against the manifest (with `verify`), and returns the contents summary.
    pub fn finish(mut self) -> Result<(Contents, BaseBackupFacts)> {
        if self.facts.system_identifier.is_none() {
            return Err(tar_error(
                "no global/pg_control in the archive: not a PostgreSQL base backup",
            ));
        }
        if self.facts.label.is_empty() {
            return Err(tar_error(
                "no backup_label in the archive: not a PostgreSQL base backup",
            ));
        }
        let manifest = self.manifest.take();
        if let Some(raw) = manifest {
            let m = self.check_manifest(&raw)?;
            self.facts.manifest_files = Some(m.files.len() as u64);
            if let Some(last) = m.wal_ranges.last() {
                self.facts.stop_lsn = Some(last.end.parse().map_err(|_| {
                    tar_error(format!("backup_manifest: bad End-LSN `{}`", last.end))
                })?);
                self.facts.stop_timeline = Some(last.timeline);
            }
            if let Some(first) = m.wal_ranges.first() {
                let start: Lsn = first.start.parse().map_err(|_| {
                    tar_error(format!("backup_manifest: bad Start-LSN `{}`", first.start))
                })?;
                if self.facts.start_lsn.is_some_and(|s| s != start) {
                    return Err(tar_error(format!(
                        "backup_label starts at {} but backup_manifest at {start}",
                        self.facts.start_lsn.expect("checked")
                    )));
                }
            }
        }
        let f = &self.facts;
        let c = &mut self.contents;
        c.fact(
            "system_identifier",
            f.system_identifier.expect("checked").to_string(),
        );
        if let Some(v) = &f.pg_version {
            c.fact("pg_version", v.clone());
        }
        for (name, v) in [
            ("start_lsn", f.start_lsn),
            ("checkpoint_lsn", f.checkpoint_lsn),
            ("stop_lsn", f.stop_lsn),
        ] {
            if let Some(v) = v {
                c.fact(name, v.to_string());
            }
        }
        if let Some(t) = f.start_timeline {
            c.fact("start_timeline", t.to_string());
        }
        if let Some(t) = f.stop_timeline {
            c.fact("stop_timeline", t.to_string());
        }
        if let Some(n) = f.manifest_files {
            c.fact("manifest_files", n.to_string());
            c.fact(
                "manifest_checked",
                if self.verify {
                    "sizes and checksums"
                } else {
                    "no"
                },
            );
        }
        Ok((self.contents, self.facts))
    }

    fn check_manifest(&self, raw: &[u8]) -> Result<PgBackupManifest> {
        let m: PgBackupManifest = serde_json::from_slice(raw)
            .map_err(|e| tar_error(format!("backup_manifest is not a valid manifest: {e}")))?;
        if m.version != 1 {
            return Err(tar_error(format!(
                "backup_manifest has version {}, this dbseal reads version 1",
                m.version
            )));
        }
        if !self.verify {
            return Ok(m);
        }
        let pos = raw
            .windows(20)
            .rposition(|w| w == b"\"Manifest-Checksum\":")
            .ok_or_else(|| tar_error("backup_manifest has no Manifest-Checksum"))?;
        let digest = hex::encode(Sha256::digest(&raw[..pos]));
        if !digest.eq_ignore_ascii_case(&m.checksum) {
            return Err(tar_error(format!(
                "backup_manifest's SHA-256 is {digest}, it records {} (corrupted)",
                m.checksum
            )));
        }
        let mut problems = Vec::new();
        let mut listed = std::collections::BTreeSet::new();
        for f in &m.files {
            let path = match (&f.path, &f.encoded_path) {
                (Some(p), _) => p.clone(),
                (None, Some(e)) => hex::decode(e)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|_| tar_error(format!("backup_manifest: bad Encoded-Path `{e}`")))?,
                _ => return Err(tar_error("backup_manifest: a file without a path")),
            };
            listed.insert(path.clone());
            let Some((size, crc)) = self.seen.get(&path) else {
                problems.push(format!("{path} is missing"));
                continue;
            };
            if *size != f.size {
                problems.push(format!(
                    "{path} is {size} bytes, the manifest says {}",
                    f.size
                ));
                continue;
            }
            if f.algorithm.as_deref() == Some("CRC32C") {
                let found = hex::encode(crc.to_le_bytes());
                if f.checksum
                    .as_deref()
                    .is_some_and(|c| !c.eq_ignore_ascii_case(&found))
                {
                    problems.push(format!(
                        "{path} has CRC-32C {found}, the manifest says {}",
                        f.checksum.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
        for path in self.seen.keys() {
            if path != "backup_manifest" && !listed.contains(path) {
                problems.push(format!("{path} is not in backup_manifest"));
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            problems.truncate(10);
            return Err(tar_error(format!(
                "the files differ from the server's backup_manifest ({n} problem(s)): {}",
                problems.join("; ")
            )));
        }
        Ok(m)
    }
}

impl TarVisitor for BaseBackupScanner {
    fn entry(&mut self, e: &TarEntry) -> Result<()> {
        match &e.kind {
            TarEntryKind::Directory => self.contents.add("directories", top_level(&e.path), 1),
            TarEntryKind::File => {
                self.contents.add("files", top_level(&e.path), 1);
                self.contents.add("bytes", top_level(&e.path), e.size);
                let keep_limit = match e.path.as_str() {
                    "backup_manifest" => MAX_MANIFEST,
                    "backup_label" | "tablespace_map" | "PG_VERSION" => MAX_SMALL_FILE,
                    "global/pg_control" => 16,
                    _ => 0,
                };
                self.current = Some(CurrentFile {
                    path: e.path.clone(),
                    size: 0,
                    crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi),
                    keep: (keep_limit > 0).then(Vec::new),
                    keep_limit,
                });
            }
            TarEntryKind::Symlink(_) | TarEntryKind::HardLink(_) | TarEntryKind::Other(_) => {
                self.contents.add("other", top_level(&e.path), 1)
            }
        }
        Ok(())
    }

    fn data(&mut self, _e: &TarEntry, chunk: &[u8]) -> Result<()> {
        self.bytes += chunk.len() as u64;
        if let Some(c) = self.current.as_mut() {
            c.size += chunk.len() as u64;
            if self.verify {
                c.crc.update(chunk);
            }
            if let Some(k) = c.keep.as_mut() {
                if k.len() < c.keep_limit {
                    let take = (c.keep_limit - k.len()).min(chunk.len());
                    k.extend_from_slice(&chunk[..take]);
                } else if c.path == "backup_manifest" {
                    return Err(tar_error("backup_manifest is larger than 512 MiB"));
                }
            }
        }
        Ok(())
    }

    fn end_entry(&mut self, _e: &TarEntry) -> Result<()> {
        let Some(c) = self.current.take() else {
            return Ok(());
        };
        let kept = c.keep.unwrap_or_default();
        match c.path.as_str() {
            "backup_label" => {
                let text = String::from_utf8_lossy(&kept);
                let label = parse_label(&text);
                self.facts.start_lsn = label.get("START WAL LOCATION").and_then(|v| label_lsn(v));
                self.facts.checkpoint_lsn =
                    label.get("CHECKPOINT LOCATION").and_then(|v| label_lsn(v));
                self.facts.start_timeline =
                    label.get("START TIMELINE").and_then(|v| v.parse().ok());
                if self.facts.start_lsn.is_none() {
                    return Err(tar_error("backup_label has no START WAL LOCATION"));
                }
                self.facts.label = label;
            }
            "global/pg_control" => {
                if kept.len() < 16 {
                    return Err(tar_error("global/pg_control is shorter than 16 bytes"));
                }
                self.facts.system_identifier =
                    Some(u64::from_le_bytes(kept[0..8].try_into().expect("8")));
                self.facts.pg_control_version =
                    Some(u32::from_le_bytes(kept[8..12].try_into().expect("4")));
                self.facts.catalog_version =
                    Some(u32::from_le_bytes(kept[12..16].try_into().expect("4")));
            }
            "PG_VERSION" => {
                self.facts.pg_version = Some(String::from_utf8_lossy(&kept).trim().to_string())
            }
            "backup_manifest" => self.manifest = Some(kept),
            _ => {}
        }
        let crc = c.crc.finalize() as u32;
        self.seen.insert(c.path, (c.size, crc));
        Ok(())
    }
}

/// The reader of physical base backups (`tar`): parses the archive, reads
/// `backup_label` and `global/pg_control`, and checks every file against PostgreSQL's
/// `backup_manifest` (sizes, CRC-32C, the manifest's own SHA-256). Counts files and
/// bytes per top-level directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaseBackupFormat;

impl FormatReader for BaseBackupFormat {
    fn format(&self) -> &str {
        TAR_FORMAT
    }

    fn read_contents(&self, input: &mut dyn std::io::Read) -> Result<Contents> {
        let mut parser = TarParser::new();
        let mut scanner = BaseBackupScanner::new(true);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e, "reading the base backup")),
            };
            parser.feed(&buf[..n], &mut scanner)?;
        }
        parser.finish()?;
        Ok(scanner.finish()?.0)
    }
}

// ---------------------------------------------------------------------------------
// Backup
// ---------------------------------------------------------------------------------

/// How to take a physical base backup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhysicalOptions {
    /// Request an immediate checkpoint (`--checkpoint=fast`) instead of a spread one:
    /// the backup starts at once, at the cost of an I/O burst on the server.
    pub fast_checkpoint: bool,
    /// The backup label (default `dbseal base backup`).
    pub label: Option<String>,
    /// Maximum transfer rate (`--max-rate`, e.g. `100M`).
    pub max_rate: Option<String>,
}

/// What the preflight learnt about the server.
#[derive(Debug, Clone)]
pub struct PhysicalServerInfo {
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// `archive_mode`.
    pub archive_mode: String,
    /// `wal_level`.
    pub wal_level: String,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: u64,
    /// Whether the server is a standby.
    pub in_recovery: bool,
    /// The pg_basebackup that will run.
    pub pg_basebackup: Tool,
}

/// The backup side of physical backups: a [`Source`] streaming `pg_basebackup -Ft -D -
/// -X none`. The datastore kind is `postgres`; the manifest's `source.physical` is true.
pub struct PhysicalSource {
    conn: Connection,
    options: PhysicalOptions,
    info: Option<PhysicalServerInfo>,
    datastore: Option<String>,
}

impl std::fmt::Debug for PhysicalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysicalSource")
            .field("conn", &self.conn)
            .field("options", &self.options)
            .finish()
    }
}

/// Wraps the pipeline's writer and feeds what passes to a [`BaseBackupScanner`].
struct ScanningWriter<'a> {
    inner: &'a mut (dyn AsyncWrite + Send + Unpin),
    parser: TarParser,
    scanner: BaseBackupScanner,
    failed: Option<String>,
}

impl AsyncWrite for ScanningWriter<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = &self.failed {
            return Poll::Ready(Err(std::io::Error::other(e.clone())));
        }
        let this = &mut *self;
        match Pin::new(&mut *this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if let Err(e) = this.parser.feed(&buf[..n], &mut this.scanner) {
                    let msg = e.to_string();
                    this.failed = Some(msg.clone());
                    return Poll::Ready(Err(e.into_io()));
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

impl PhysicalSource {
    /// A source for the server `config` names. Validates the configuration now.
    pub fn new(config: &PostgresConfig, options: PhysicalOptions) -> Result<Self> {
        Self::with_connection(config.resolve()?, options)
    }

    /// A source over a resolved connection.
    pub fn with_connection(conn: Connection, options: PhysicalOptions) -> Result<Self> {
        if let Some(r) = &options.max_rate {
            let ok = !r.is_empty()
                && r.trim_end_matches(['k', 'M'])
                    .chars()
                    .all(|c| c.is_ascii_digit());
            if !ok {
                return Err(PostgresError::Config(format!(
                    "max rate `{r}` is not a number of kB/s with an optional k or M suffix"
                ))
                .into());
            }
        }
        Ok(PhysicalSource {
            conn,
            options,
            info: None,
            datastore: None,
        })
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Checks the server before anything streams: pg_basebackup exists and is not older
    /// than the server, `wal_level` is at least `replica`, `archive_mode` is on (the
    /// backup is useless without archived WAL), and no tablespace besides the default
    /// ones exists (a single tar stream holds one tablespace).
    pub async fn preflight(&mut self) -> Result<&PhysicalServerInfo> {
        if self.info.is_none() {
            let tool = self.conn.binaries().tool("pg_basebackup").await?;
            let client = self.conn.connect().await?;
            let row = client
                .query_one(
                    "SELECT current_setting('server_version'), current_setting('server_version_num')::int4, \
                     current_setting('archive_mode'), current_setting('wal_level'), \
                     (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'), \
                     pg_is_in_recovery(), \
                     (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))",
                    &[],
                )
                .await
                .map_err(|e| self.conn.query_error("reading the server's settings", e))?;
            let info = PhysicalServerInfo {
                server_version: row.get(0),
                server_version_num: row.get::<_, i32>(1).max(0) as u32,
                archive_mode: row.get(2),
                wal_level: row.get(3),
                wal_segment_size: row.get::<_, i64>(4).max(0) as u64,
                in_recovery: row.get(5),
                pg_basebackup: tool,
            };
            let tablespaces: i64 = row.get(6);
            let server = self.conn.server();
            check_tool_version(
                &info.pg_basebackup,
                info.server_version_num / 10_000,
                &info.server_version,
            )?;
            if info.wal_level == "minimal" {
                return Err(PostgresError::Config(format!(
                    "{server} runs with wal_level = minimal: physical backups and WAL archiving need wal_level = replica (restart required)"
                ))
                .into());
            }
            if info.archive_mode == "off" {
                let ds = self.datastore.as_deref().unwrap_or("NAME");
                return Err(PostgresError::Config(format!(
                    "{server} runs with archive_mode = off: a physical base backup is only restorable with the WAL archive. Set archive_mode = on and archive_command = 'dbseal wal-push --datastore {ds} %p' (restart required)"
                ))
                .into());
            }
            if info.in_recovery && info.archive_mode != "always" {
                return Err(PostgresError::Config(format!(
                    "{server} is a standby with archive_mode = {}: back up the primary, or set archive_mode = always on the standby",
                    info.archive_mode
                ))
                .into());
            }
            if tablespaces > 0 {
                return Err(PostgresError::Config(format!(
                    "{server} has {tablespaces} tablespace(s) besides pg_default and pg_global: physical backups of clusters with tablespaces are not supported yet (use a logical backup)"
                ))
                .into());
            }
            if !crate::wal::valid_segment_size(info.wal_segment_size) {
                return Err(PostgresError::Config(format!(
                    "{server} reports wal_segment_size {}, not a valid segment size",
                    info.wal_segment_size
                ))
                .into());
            }
            self.info = Some(info);
        }
        Ok(self.info.as_ref().expect("set above"))
    }

    fn command(&self, info: &PhysicalServerInfo) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&info.pg_basebackup.path);
        cmd.arg("--pgdata=-")
            .arg("--format=tar")
            .arg("--wal-method=none")
            .arg(format!(
                "--checkpoint={}",
                if self.options.fast_checkpoint {
                    "fast"
                } else {
                    "spread"
                }
            ))
            .arg(format!(
                "--label={}",
                self.options
                    .label
                    .as_deref()
                    .unwrap_or("dbseal base backup")
            ))
            .arg("--manifest-checksums=CRC32C")
            .arg("--no-password")
            .arg(format!("--dbname={}", self.conn.conninfo()));
        if let Some(r) = &self.options.max_rate {
            cmd.arg(format!("--max-rate={r}"));
        }
        cmd.env("PGAPPNAME", "dbseal");
        self.conn.apply_env(&mut cmd);
        cmd
    }
}

#[async_trait]
impl Source for PhysicalSource {
    fn kind(&self) -> &str {
        KIND
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(BaseBackupFormat)
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        self.preflight().await?;
        let info = self.info.clone().expect("preflight ran");
        let cmd = self.command(&info);
        tracing::info!(target = %self.conn.describe(), "running pg_basebackup");
        let mut writer = ScanningWriter {
            inner: out,
            parser: TarParser::new(),
            scanner: BaseBackupScanner::new(false),
            failed: None,
        };
        let bytes = stream_command("pg_basebackup", cmd, &mut writer).await?;
        writer.parser.finish()?;
        let (_, facts) = writer.scanner.finish()?;
        tracing::info!(bytes, "pg_basebackup finished");
        let seg = info.wal_segment_size;
        let start = facts
            .start_lsn
            .ok_or_else(|| tar_error("backup_label has no START WAL LOCATION"))?;
        let timeline = facts.start_timeline.unwrap_or(1);
        let mut f = SourceFacts::new();
        f.insert("physical".into(), json!(true));
        f.insert(
            "archive".into(),
            json!("pg_basebackup --format=tar --wal-method=none"),
        );
        f.insert(
            "consistency".into(),
            json!("physical base backup: consistent once recovery replays the archived WAL up to stop_lsn"),
        );
        f.insert("server_version".into(), json!(info.server_version));
        f.insert("server_version_num".into(), json!(info.server_version_num));
        f.insert("host".into(), json!(self.conn.host()));
        f.insert("port".into(), json!(self.conn.port()));
        f.insert("user".into(), json!(self.conn.user()));
        f.insert(
            "pg_basebackup_version".into(),
            json!(info.pg_basebackup.version),
        );
        f.insert(
            "system_identifier".into(),
            json!(facts
                .system_identifier
                .expect("checked by finish")
                .to_string()),
        );
        f.insert("wal_segment_size".into(), json!(seg));
        f.insert("timeline".into(), json!(timeline));
        f.insert("start_lsn".into(), json!(start.to_string()));
        f.insert(
            "start_segment".into(),
            json!(segment_name(timeline, start.segno(seg), seg)),
        );
        if let Some(c) = facts.checkpoint_lsn {
            f.insert("checkpoint_lsn".into(), json!(c.to_string()));
        }
        if let Some(stop) = facts.stop_lsn {
            let stl = facts.stop_timeline.unwrap_or(timeline);
            f.insert("stop_lsn".into(), json!(stop.to_string()));
            f.insert("stop_timeline".into(), json!(stl));
            f.insert(
                "stop_segment".into(),
                json!(segment_name(stl, stop.segno(seg), seg)),
            );
        }
        for (key, name) in [
            ("START TIME", "start_time"),
            ("LABEL", "label"),
            ("BACKUP FROM", "backup_from"),
        ] {
            if let Some(v) = facts.label.get(key) {
                f.insert(name.into(), json!(v));
            }
        }
        if let Some(v) = &facts.pg_version {
            f.insert("pg_version".into(), json!(v));
        }
        f.insert("archive_mode".into(), json!(info.archive_mode));
        if let Some(ds) = &self.datastore {
            f.insert("wal_datastore".into(), json!(ds));
        }
        Ok(f)
    }
}

/// Takes a physical base backup: preflight, the `data` artifact (the tar), a check that
/// the WAL it needs reached this datastore's WAL archive, then the manifest. On any
/// failure no manifest is written.
pub async fn backup_physical(
    store: &BackupStore,
    source: &mut PhysicalSource,
    options: BackupOptions,
) -> Result<Manifest> {
    source.datastore = Some(options.datastore.clone());
    source.preflight().await?;
    let datastore = options.datastore.clone();
    let mut session = BackupSession::start(store, options)?;
    let mut facts = session.write_artifact("data", source).await?;
    // pg_basebackup waited until the server archived the stop segment; check that it
    // went to this datastore's archive (else dbseal cannot restore the backup).
    let archived = match (
        facts.get("stop_segment").and_then(|v| v.as_str()),
        facts.get("timeline"),
    ) {
        (Some(stop), Some(_)) => {
            let archive = WalArchive::new(store.clone(), &datastore)?;
            match crate::wal::WalFile::parse(stop) {
                Some(f) => archive.file_manifest(&f).await?.is_some(),
                None => false,
            }
        }
        _ => false,
    };
    facts.insert("wal_archived".into(), json!(archived));
    if !archived {
        tracing::warn!(
            datastore = %datastore,
            "the WAL this base backup needs is not in this datastore's WAL archive: is archive_command = 'dbseal wal-push --datastore {datastore} %p'?"
        );
    }
    session.commit(KIND, facts).await
}

// ---------------------------------------------------------------------------------
// Base backups as the archive sees them
// ---------------------------------------------------------------------------------

/// Whether a manifest describes a physical base backup.
pub fn is_physical(m: &Manifest) -> bool {
    m.artifact.format == TAR_FORMAT
        && m.source.get("physical").and_then(|v| v.as_bool()) == Some(true)
}

/// The WAL facts of a physical backup's manifest.
pub fn base_backup_wal(m: &Manifest) -> Result<BaseBackupWal> {
    let bad = |what: &str| Error::InvalidManifest {
        key: BackupStore::manifest_key(&m.datastore.name, &m.backup_id),
        reason: format!("physical backup without a valid `{what}` in its source facts"),
    };
    if !is_physical(m) {
        return Err(Error::datastore(
            "postgres",
            ErrorKind::Refused,
            format!(
                "backup {} is not a physical base backup (format `{}`): restore it with --url, not --pgdata",
                m.backup_id, m.artifact.format
            ),
        ));
    }
    let s = |k: &str| m.source.get(k).and_then(|v| v.as_str());
    let n = |k: &str| m.source.get(k).and_then(|v| v.as_u64());
    Ok(BaseBackupWal {
        backup_id: m.backup_id.to_string(),
        system_identifier: s("system_identifier")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("system_identifier"))?,
        timeline: n("timeline")
            .map(|t| t as u32)
            .ok_or_else(|| bad("timeline"))?,
        start_lsn: s("start_lsn")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("start_lsn"))?,
        stop_lsn: s("stop_lsn").and_then(|v| v.parse().ok()),
        stop_timeline: n("stop_timeline").map(|t| t as u32),
        wal_segment_size: n("wal_segment_size")
            .filter(|s| crate::wal::valid_segment_size(*s))
            .ok_or_else(|| bad("wal_segment_size"))?,
    })
}

/// The physical base backups of a datastore, oldest first.
pub async fn base_backups(
    store: &BackupStore,
    datastore: &str,
) -> Result<Vec<(Manifest, BaseBackupWal)>> {
    let mut out = Vec::new();
    for m in store.list(Some(datastore)).await? {
        if m.datastore.name == datastore && is_physical(&m) {
            let w = base_backup_wal(&m)?;
            out.push((m, w));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------------

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum RecoveryTarget {
    /// Replay all archived WAL (no `recovery_target_*`).
    Latest,
    /// Stop as soon as the backup is consistent (`recovery_target = 'immediate'`).
    Immediate,
    /// `recovery_target_time`: a timestamp PostgreSQL understands; give a time zone.
    Time(String),
    /// `recovery_target_lsn`.
    Lsn(Lsn),
    /// `recovery_target_name`: a restore point made with `pg_create_restore_point()`.
    Name(String),
}

/// What PostgreSQL does when it reaches the target (`recovery_target_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetAction {
    /// End recovery and accept writes (a new timeline starts).
    #[default]
    Promote,
    /// Pause read-only, to inspect before `pg_wal_replay_resume()`.
    Pause,
    /// Shut down.
    Shutdown,
}

impl TargetAction {
    fn as_str(self) -> &'static str {
        match self {
            TargetAction::Promote => "promote",
            TargetAction::Pause => "pause",
            TargetAction::Shutdown => "shutdown",
        }
    }
}

/// How to restore a physical backup.
#[derive(Debug, Clone)]
pub struct PhysicalRestore {
    /// The data directory to create: must be absent or empty.
    pub pgdata: PathBuf,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// What happens at the target (ignored for [`RecoveryTarget::Latest`]).
    pub action: TargetAction,
    /// `recovery_target_timeline` (`latest` when `None`, PostgreSQL's default).
    pub timeline: Option<String>,
    /// The `restore_command`, usually from [`wal_fetch_command`] (`%f`, `%p` as
    /// PostgreSQL substitutes them).
    pub restore_command: String,
    /// Contents of [`RESTORE_ENV_FILE`], written into the data directory with mode
    /// 0600 (store settings the restore command reads). Never put it in argv.
    pub env_file: Option<backup_core::SecretString>,
}

/// What [`restore_physical`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PhysicalRestoreReport {
    /// The data directory.
    pub pgdata: PathBuf,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The recovery target.
    pub target: RecoveryTarget,
    /// The recovery plan checked against the archive.
    pub plan: crate::wal::RecoveryPlan,
    /// Lines for the user: what was written and what to do next.
    pub summary: Vec<String>,
    /// Things that may stop recovery short of the target.
    pub warnings: Vec<String>,
}

/// Quotes a word for `sh` if it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `restore_command` that runs `dbseal wal-fetch`: `dbseal` is the binary to run
/// (an absolute path), `env_file` the file with the store settings. Words are quoted
/// for the shell and `%` escaped for PostgreSQL; `%f %p` come last.
pub fn wal_fetch_command(
    dbseal: &Path,
    env_file: Option<&Path>,
    datastore: &str,
    system_identifier: u64,
    fail_on_gap: bool,
) -> String {
    let mut words = vec![
        shell_word(&dbseal.to_string_lossy()),
        "wal-fetch".to_string(),
    ];
    if let Some(f) = env_file {
        words.push("--env-file".into());
        words.push(shell_word(&f.to_string_lossy()));
    }
    words.push("--datastore".into());
    words.push(shell_word(datastore));
    words.push("--system-id".into());
    words.push(system_identifier.to_string());
    if fail_on_gap {
        words.push("--fail-on-gap".into());
    }
    let mut cmd = words.join(" ").replace('%', "%%");
    cmd.push_str(" %f %p");
    cmd
}

/// Quotes a value for postgresql.conf.
fn conf_value(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The lines appended to `postgresql.auto.conf`.
pub fn recovery_settings(backup_id: &str, restore: &PhysicalRestore) -> String {
    let mut s = format!(
        "\n# Recovery settings written by `dbseal restore {backup_id}` at {}.\n# PostgreSQL fetches WAL with restore_command until the target, then {}.\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        match restore.target {
            RecoveryTarget::Latest => "promotes".to_string(),
            _ => format!("{}s", restore.action.as_str()),
        }
    );
    s.push_str(&format!(
        "restore_command = {}\n",
        conf_value(&restore.restore_command)
    ));
    match &restore.target {
        RecoveryTarget::Latest => {}
        RecoveryTarget::Immediate => s.push_str("recovery_target = 'immediate'\n"),
        RecoveryTarget::Time(t) => {
            s.push_str(&format!("recovery_target_time = {}\n", conf_value(t)))
        }
        RecoveryTarget::Lsn(l) => s.push_str(&format!("recovery_target_lsn = '{l}'\n")),
        RecoveryTarget::Name(n) => {
            s.push_str(&format!("recovery_target_name = {}\n", conf_value(n)))
        }
    }
    if restore.target != RecoveryTarget::Latest {
        s.push_str(&format!(
            "recovery_target_action = '{}'\n",
            restore.action.as_str()
        ));
    }
    s.push_str(&format!(
        "recovery_target_timeline = {}\n",
        conf_value(restore.timeline.as_deref().unwrap_or("latest"))
    ));
    s
}

/// Refuses a data directory that exists and is not empty (or is not a directory).
pub fn check_empty_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if let Some(first) = entries.next() {
                let first = first
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(Error::datastore(
                    "postgres",
                    ErrorKind::Refused,
                    format!(
                        "data directory {} is not empty (it holds {first}…): a physical restore needs an empty or absent directory; it never overwrites a cluster",
                        dir.display()
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::datastore(
            "postgres",
            ErrorKind::Refused,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) => Err(Error::io(format!("cannot read {}", dir.display()), e)),
    }
}

/// The owner restored files get when dbseal runs as root: the data directory's owner
/// if it exists, else its parent's. `None` when not root (files belong to the caller).
fn restore_owner(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    if me != 0 {
        return None;
    }
    let meta = std::fs::metadata(dir)
        .or_else(|_| std::fs::metadata(dir.parent().unwrap_or(Path::new("/"))))
        .ok()?;
    Some((meta.uid(), meta.gid()))
}

/// Unpacks a base backup into an empty data directory and, at a clean end of stream
/// only, writes the recovery settings. On any error the directory is left as it was.
pub struct PhysicalSink {
    pgdata: PathBuf,
    settings: String,
    env_file: Option<backup_core::SecretString>,
    /// (files, bytes) written.
    pub written: (u64, u64),
}

impl std::fmt::Debug for PhysicalSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysicalSink")
            .field("pgdata", &self.pgdata)
            .finish()
    }
}

impl PhysicalSink {
    /// A sink into `pgdata` that appends `settings` to `postgresql.auto.conf`, writes
    /// `recovery.signal` and the env file at the end.
    pub fn new(
        pgdata: PathBuf,
        settings: String,
        env_file: Option<backup_core::SecretString>,
    ) -> Self {
        PhysicalSink {
            pgdata,
            settings,
            env_file,
            written: (0, 0),
        }
    }
}

struct Extractor {
    root: PathBuf,
    owner: Option<(u32, u32)>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    scanner: BaseBackupScanner,
    files: u64,
    bytes: u64,
}

impl Extractor {
    fn target(&self, path: &str) -> Result<PathBuf> {
        let rel = Path::new(path);
        if path.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(tar_error(format!(
                "member `{path}` has an unsafe path (absolute or with ..): refusing to unpack it"
            )));
        }
        Ok(self.root.join(rel))
    }

    fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("cannot chown {}", path.display()), e))?;
        }
        Ok(())
    }

    fn make_dir(&self, dir: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if !dir.is_dir() {
            if let Some(parent) = dir.parent() {
                if parent != self.root && !parent.is_dir() {
                    self.make_dir(parent, 0o700)?;
                }
            }
            std::fs::create_dir(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            self.own(dir)?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("cannot set the mode of {}", dir.display()), e))
    }
}

impl TarVisitor for Extractor {
    fn entry(&mut self, e: &TarEntry) -> Result<()> {
        self.scanner.entry(e)?;
        match &e.kind {
            TarEntryKind::Directory => {
                let dir = self.target(&e.path)?;
                self.make_dir(&dir, (e.mode & 0o750) | 0o700)?;
            }
            TarEntryKind::File => {
                use std::os::unix::fs::OpenOptionsExt;
                let path = self.target(&e.path)?;
                if let Some(parent) = path.parent() {
                    if !parent.is_dir() {
                        self.make_dir(parent, 0o700)?;
                    }
                }
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode((e.mode & 0o640) | 0o600)
                    .open(&path)
                    .map_err(|err| Error::io(format!("cannot create {}", path.display()), err))?;
                self.own(&path)?;
                self.file = Some(std::io::BufWriter::with_capacity(256 * 1024, f));
                self.files += 1;
            }
            TarEntryKind::Symlink(t) | TarEntryKind::HardLink(t) => {
                return Err(tar_error(format!(
                    "member `{}` is a link to `{t}`: links (tablespaces, a separate pg_wal) are not supported by physical restore",
                    e.path
                )))
            }
            TarEntryKind::Other(flag) => {
                return Err(tar_error(format!(
                    "member `{}` has unsupported type `{}`",
                    e.path, *flag as char
                )))
            }
        }
        Ok(())
    }

    fn data(&mut self, e: &TarEntry, chunk: &[u8]) -> Result<()> {
        self.scanner.data(e, chunk)?;
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk)
                .map_err(|err| Error::io(format!("writing {}", e.path), err))?;
            self.bytes += chunk.len() as u64;
        }
        Ok(())
    }

    fn end_entry(&mut self, e: &TarEntry) -> Result<()> {
        self.scanner.end_entry(e)?;
        if let Some(mut f) = self.file.take() {
            f.flush()
                .map_err(|err| Error::io(format!("writing {}", e.path), err))?;
        }
        Ok(())
    }
}

fn write_file(
    path: &Path,
    data: &[u8],
    mode: u32,
    append: bool,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| Error::io(format!("cannot chown {}", path.display()), e))?;
    }
    Ok(())
}

/// Removes what a failed restore created: the whole directory if it did not exist,
/// else everything inside it.
fn clean_up(root: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(root);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

fn extract_blocking(
    root: PathBuf,
    owner: Option<(u32, u32)>,
    input: &mut dyn std::io::Read,
    settings: &str,
    env_file: Option<&backup_core::SecretString>,
    input_failed: &AtomicBool,
) -> Result<(u64, u64)> {
    let mut parser = TarParser::new();
    let mut ex = Extractor {
        root: root.clone(),
        owner,
        file: None,
        scanner: BaseBackupScanner::new(true),
        files: 0,
        bytes: 0,
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from_io(e, "reading the base backup")),
        };
        parser.feed(&buf[..n], &mut ex)?;
    }
    if input_failed.load(Ordering::SeqCst) {
        return Err(Error::Interrupted(
            "the base backup stream failed before its end".into(),
        ));
    }
    parser.finish()?;
    let (files, bytes) = (ex.files, ex.bytes);
    std::mem::replace(&mut ex.scanner, BaseBackupScanner::new(false)).finish()?;
    for required in ["PG_VERSION", "global/pg_control", "backup_label"] {
        if !root.join(required).is_file() {
            return Err(tar_error(format!("the base backup has no {required}")));
        }
    }
    // pg_basebackup -X none leaves pg_wal empty; make sure it exists.
    for d in ["pg_wal", "pg_wal/archive_status"] {
        let dir = root.join(d);
        if !dir.is_dir() {
            ex.make_dir(&dir, 0o700)?;
        }
    }
    // The commit point: recovery settings, env file, then recovery.signal.
    if let Some(env) = env_file {
        write_file(
            &root.join(RESTORE_ENV_FILE),
            env.expose().as_bytes(),
            0o600,
            false,
            owner,
        )?;
    }
    write_file(
        &root.join("postgresql.auto.conf"),
        settings.as_bytes(),
        0o600,
        true,
        owner,
    )?;
    write_file(&root.join("recovery.signal"), b"", 0o600, false, owner)?;
    if let Ok(d) = std::fs::File::open(&root) {
        let _ = d.sync_all();
    }
    Ok((files, bytes))
}

#[async_trait]
impl Sink for PhysicalSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        check_empty_dir(&self.pgdata)?;
        let created = !self.pgdata.exists();
        let owner = restore_owner(&self.pgdata);
        if created {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.pgdata)
                .map_err(|e| Error::io(format!("cannot create {}", self.pgdata.display()), e))?;
            if let Some((uid, gid)) = owner {
                let _ = std::os::unix::fs::chown(&self.pgdata, Some(uid), Some(gid));
            }
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.pgdata, std::fs::Permissions::from_mode(0o700));
        }
        let (feed, mut reader) = blocking_chunks(PIPE_CAPACITY);
        let root = self.pgdata.clone();
        let settings = self.settings.clone();
        let env = self.env_file.clone();
        let input_failed = Arc::new(AtomicBool::new(false));
        let failed = input_failed.clone();
        let extract = tokio::task::spawn_blocking(move || {
            extract_blocking(root, owner, &mut reader, &settings, env.as_ref(), &failed)
            // Dropping the reader makes the feeder's next send fail: it stops reading.
        });
        let mut buf = vec![0u8; 256 * 1024];
        let copy: Result<()> = async {
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::from_io(e, "reading the base backup"))?;
                if n == 0 {
                    return Ok(());
                }
                if feed.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    // The extraction stopped with an error, reported below.
                    return Ok(());
                }
            }
        }
        .await;
        // The extraction commits only at the end of its input AND if the input did not
        // fail: mark a failure before ending its input.
        if copy.is_err() {
            input_failed.store(true, Ordering::SeqCst);
        }
        drop(feed);
        let extracted = extract
            .await
            .map_err(|e| Error::Interrupted(format!("extraction: {e}")))
            .and_then(|r| r);
        let outcome = match (copy, extracted) {
            (Err(e), _) => Err(e),
            (Ok(()), r) => r,
        };
        match outcome {
            Ok((files, bytes)) => {
                self.written = (files, bytes);
                Ok(SinkReport {
                    bytes,
                    summary: vec![format!(
                        "unpacked {files} files ({bytes} bytes) into {}",
                        self.pgdata.display()
                    )],
                })
            }
            Err(e) => {
                clean_up(&self.pgdata, created);
                Err(e)
            }
        }
    }
}

/// Parses a recovery target time as far as dbseal can check it (RFC 3339 or
/// `YYYY-MM-DD HH:MM:SS[.f]±HH[:MM]`); `None` if it has no explicit zone.
fn parse_target_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = s.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&chrono::Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
    ] {
        if let Ok(d) = chrono::DateTime::parse_from_str(t, fmt) {
            return Some(d.with_timezone(&chrono::Utc));
        }
    }
    if let Some(base) = t.strip_suffix(" UTC").or_else(|| t.strip_suffix("Z")) {
        for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(d) = chrono::NaiveDateTime::parse_from_str(base, fmt) {
                return Some(d.and_utc());
            }
        }
    }
    None
}

/// Restores a physical backup for point-in-time recovery. See the module docs: the WAL
/// archive is checked first (system identifier, the segments needed for consistency,
/// no gap up to an LSN target or to the newest WAL for `Latest`), then the data
/// directory is unpacked and the recovery settings written. Start PostgreSQL on it
/// afterwards. Nothing is written if a check fails; a failed unpack is removed.
pub async fn restore_physical(
    store: &BackupStore,
    manifest: &Manifest,
    restore: &PhysicalRestore,
    options: &RestoreOptions,
) -> Result<PhysicalRestoreReport> {
    let wal = base_backup_wal(manifest)?;
    let id = manifest.backup_id.to_string();
    check_empty_dir(&restore.pgdata)?;
    let refuse = |msg: String| Error::datastore("postgres", ErrorKind::Refused, msg);
    if let RecoveryTarget::Time(t) = &restore.target {
        if t.trim().is_empty() {
            return Err(Error::Config("--target-time needs a timestamp".into()));
        }
        if let (Some(target), Some(start)) = (
            parse_target_time(t),
            manifest
                .source
                .get("start_time")
                .and_then(|v| v.as_str())
                .and_then(parse_target_time),
        ) {
            if target < start {
                return Err(refuse(format!(
                    "target time {t} is before base backup {id} started ({start}): restore an older base backup"
                )));
            }
        }
    }
    if let RecoveryTarget::Lsn(l) = &restore.target {
        if wal.stop_lsn.is_some_and(|s| *l < s) {
            return Err(refuse(format!(
                "target LSN {l} is before base backup {id} becomes consistent ({}): restore an older base backup",
                wal.stop_lsn.expect("checked")
            )));
        }
    }
    if let RecoveryTarget::Name(n) = &restore.target {
        if n.is_empty() {
            return Err(Error::Config(
                "--target-name needs a restore point name".into(),
            ));
        }
    }
    let timeline = match restore.timeline.as_deref() {
        None | Some("latest") => None,
        Some("current") => Some(wal.timeline),
        Some(t) => Some(t.parse::<u32>().map_err(|_| {
            Error::Config(format!(
                "--target-timeline `{t}` is not `latest`, `current` or a timeline number"
            ))
        })?),
    };
    let archive = WalArchive::new(store.clone(), &manifest.datastore.name)?;
    let end = match &restore.target {
        RecoveryTarget::Latest => None,
        RecoveryTarget::Lsn(l) => Some(*l),
        _ => Some(wal.stop_lsn.unwrap_or(wal.start_lsn)),
    };
    let plan = plan_recovery(&archive, &wal, timeline, end).await?;
    if !plan.consistency_missing.is_empty() {
        return Err(refuse(format!(
            "the WAL archive of datastore `{}` lacks segment(s) base backup {id} needs to become consistent: {}. Without them the backup cannot be restored; verify the archive with `dbseal wal-verify --datastore {}`",
            manifest.datastore.name,
            plan.consistency_missing.join(", "),
            manifest.datastore.name
        )));
    }
    let list = |ps: &[crate::wal::WalProblem]| {
        ps.iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !plan.damaged_consistency.is_empty() {
        return Err(refuse(format!(
            "the WAL archive of datastore `{}` holds unusable segment(s) base backup {id} needs to become consistent: {}",
            manifest.datastore.name,
            list(&plan.damaged_consistency)
        )));
    }
    let mut warnings = Vec::new();
    if !plan.damaged.is_empty() {
        let msg = format!(
            "the WAL archive of datastore `{}` holds unusable segment(s) on the recovery path: {}",
            manifest.datastore.name,
            list(&plan.damaged)
        );
        match &restore.target {
            RecoveryTarget::Latest | RecoveryTarget::Lsn(_) => {
                return Err(refuse(format!(
                    "{msg}. Check the archive with `dbseal wal-verify --datastore {}`",
                    manifest.datastore.name
                )))
            }
            _ => warnings.push(format!(
                "{msg}; recovery aborts there if the target lies beyond"
            )),
        }
    }
    if !plan.missing.is_empty() {
        let gap = format!(
            "gap in the WAL archive of datastore `{}`: {} missing (recovery from base backup {id} would stop at {})",
            manifest.datastore.name,
            plan.missing.join(", "),
            plan.reachable.as_deref().unwrap_or("the backup's end")
        );
        match &restore.target {
            RecoveryTarget::Latest | RecoveryTarget::Lsn(_) => {
                return Err(refuse(format!(
                    "{gap}. Restore with a target before the gap (--target-lsn / --target-time), or put the missing segment(s) back"
                )))
            }
            _ => {}
        }
    }
    if matches!(
        restore.target,
        RecoveryTarget::Time(_) | RecoveryTarget::Name(_)
    ) {
        // Gaps after the consistency point only matter if the target lies beyond them.
        let full = plan_recovery(&archive, &wal, timeline, None).await?;
        if !full.missing.is_empty() {
            warnings.push(format!(
                "the WAL archive has a gap: {} missing; recovery can reach {} at most, and PostgreSQL refuses to start (\"recovery ended before configured recovery target was reached\") if the target lies beyond it",
                full.missing.join(", "),
                full.reachable.as_deref().unwrap_or("the backup's end")
            ));
        }
        if !full.damaged.is_empty() {
            warnings.push(format!(
                "the WAL archive holds unusable segment(s) on the recovery path: {}; recovery aborts there if the target lies beyond",
                list(&full.damaged)
            ));
        }
    }
    let settings = recovery_settings(&id, restore);
    let mut sink = PhysicalSink::new(restore.pgdata.clone(), settings, restore.env_file.clone());
    backup_core::restore(store, manifest, "data", &mut sink, options).await?;
    let (files, bytes) = sink.written;
    let major = manifest
        .source
        .get("pg_version")
        .and_then(|v| v.as_str())
        .unwrap_or("the same major version");
    let target_text = match &restore.target {
        RecoveryTarget::Latest => "the newest archived WAL".to_string(),
        RecoveryTarget::Immediate => "the end of the base backup (consistency)".to_string(),
        RecoveryTarget::Time(t) => format!("time {t}"),
        RecoveryTarget::Lsn(l) => format!("LSN {l}"),
        RecoveryTarget::Name(n) => format!("restore point `{n}`"),
    };
    let mut summary = vec![
        format!("unpacked {files} files ({bytes} bytes) into {}", restore.pgdata.display()),
        format!(
            "wrote recovery.signal and restore_command (dbseal wal-fetch from datastore `{}`) to postgresql.auto.conf",
            manifest.datastore.name
        ),
        format!(
            "WAL checked: {} segment(s) from {} on timeline {} ({})",
            plan.path
                .iter()
                .map(|r| r.to_segno.map_or(0, |t| t.saturating_sub(r.from_segno) + 1))
                .sum::<u64>(),
            manifest
                .source
                .get("start_segment")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            plan.target_timeline,
            plan.reachable.as_deref().map_or("no segment yet".to_string(), |r| format!("newest reachable {r}"))
        ),
        format!(
            "next: start PostgreSQL {major} on {} (pg_ctl -D {} start): it recovers to {target_text}{}",
            restore.pgdata.display(),
            restore.pgdata.display(),
            if restore.target == RecoveryTarget::Latest {
                ", then promotes".to_string()
            } else {
                format!(", then {}s", restore.action.as_str())
            }
        ),
    ];
    if restore.env_file.is_some() {
        summary.push(format!(
            "store settings for restore_command are in {} (mode 0600); remove it once recovery is done",
            restore.pgdata.join(RESTORE_ENV_FILE).display()
        ));
    }
    Ok(PhysicalRestoreReport {
        pgdata: restore.pgdata.clone(),
        files,
        bytes,
        target: restore.target.clone(),
        plan,
        summary,
        warnings,
    })
}

/// Reads a `KEY=VALUE` env file (`#` comments, no quoting): what `--env-file` takes.
pub fn read_env_file(path: &Path) -> PgResult<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PostgresError::Config(format!("cannot read env file {}: {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").unwrap_or(t);
        let (k, v) = t.split_once('=').ok_or_else(|| {
            PostgresError::Config(format!(
                "env file {} line {}: expected KEY=VALUE",
                path.display(),
                i + 1
            ))
        })?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_header(name: &str, size: u64, flag: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000600");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, data) in members {
            if name.ends_with('/') {
                t.extend(tar_header(name, 0, b'5'));
                continue;
            }
            t.extend(tar_header(name, data.len() as u64, b'0'));
            t.extend_from_slice(data);
            t.resize(t.len().div_ceil(512) * 512, 0);
        }
        t.extend(vec![0u8; 1024]);
        t
    }

    struct Collect(Vec<(String, Vec<u8>)>);
    impl TarVisitor for Collect {
        fn entry(&mut self, e: &TarEntry) -> Result<()> {
            self.0.push((e.path.clone(), Vec::new()));
            Ok(())
        }
        fn data(&mut self, _e: &TarEntry, chunk: &[u8]) -> Result<()> {
            self.0.last_mut().unwrap().1.extend_from_slice(chunk);
            Ok(())
        }
        fn end_entry(&mut self, _e: &TarEntry) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn tar_parser_in_any_chunking() {
        let big = vec![7u8; 1500];
        let t = tar_of(&[
            ("./base/", b""),
            ("base/1/1259", &big),
            ("PG_VERSION", b"15\n"),
        ]);
        for chunk in [1usize, 100, 512, 4096] {
            let mut p = TarParser::new();
            let mut c = Collect(Vec::new());
            for part in t.chunks(chunk) {
                p.feed(part, &mut c).unwrap();
            }
            p.finish().unwrap();
            assert_eq!(c.0.len(), 3);
            assert_eq!(c.0[0].0, "base");
            assert_eq!(c.0[1], ("base/1/1259".to_string(), big.clone()));
            assert_eq!(c.0[2].1, b"15\n");
        }
        // Truncated, corrupted header, trailing garbage.
        let mut p = TarParser::new();
        p.feed(&t[..t.len() - 1024], &mut Collect(Vec::new()))
            .unwrap();
        assert!(p.finish().unwrap_err().to_string().contains("truncated"));
        let mut bad = t.clone();
        bad[10] ^= 1;
        let e = TarParser::new()
            .feed(&bad, &mut Collect(Vec::new()))
            .unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        let mut extra = t.clone();
        extra.push(1);
        assert!(TarParser::new()
            .feed(&extra, &mut Collect(Vec::new()))
            .is_err());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("../evil", b"x")]);
        let e = extract_blocking(
            dir.path().join("d"),
            None,
            &mut &t[..],
            "",
            None,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unsafe path"), "{e}");
    }

    #[test]
    fn restore_command_quoting() {
        let c = wal_fetch_command(
            Path::new("/opt/db seal/dbseal"),
            Some(Path::new("/data/pg/dbseal-restore.env")),
            "app-db",
            7710549293519418828,
            true,
        );
        assert_eq!(
            c,
            "'/opt/db seal/dbseal' wal-fetch --env-file /data/pg/dbseal-restore.env --datastore app-db --system-id 7710549293519418828 --fail-on-gap %f %p"
        );
        assert_eq!(shell_word("50%"), "'50%'");
        assert!(
            wal_fetch_command(Path::new("/x/100%/dbseal"), None, "d", 1, false)
                .starts_with("'/x/100%%/dbseal'")
        );
        assert_eq!(conf_value("it's a \\ test"), "'it''s a \\\\ test'");
    }

    #[test]
    fn target_times() {
        assert!(parse_target_time("2026-11-21 09:09:16+00").is_some());
        assert!(parse_target_time("2026-11-21 09:09:16.123456+02:00").is_some());
        assert!(parse_target_time("2026-11-21T09:09:16Z").is_some());
        assert!(parse_target_time("2026-11-21 09:09:16 UTC").is_some());
        assert!(parse_target_time("2026-11-21 09:09:16").is_none());
    }
}
