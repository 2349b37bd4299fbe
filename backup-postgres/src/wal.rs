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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::manifest::{DatastoreRef, ToolInfo, FORMAT_VERSION};
use backup_core::pipe::{pipe, PipeReader, PipeWriter, PIPE_CAPACITY, UPSTREAM_ABORTED};
use backup_core::sink::StreamReader;
use backup_core::transform::{Age, StageContext, Transform, Zstd};
use backup_core::{
    Artifact, BackupId, BackupStore, Contents, Decryption, Encryption, Error, ErrorKind,
    FormatReader, Manifest, RestoreOptions, Result, Sink, SinkReport, SourceFacts,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

fn hex_digest(d: impl AsRef<[u8]>) -> String {
    hex::encode(d.as_ref())
}

// ---------------------------------------------------------------------------------
// LSNs and file names
// ---------------------------------------------------------------------------------

/// A WAL location (`XLogRecPtr`), written `X/Y` like PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The number of the segment holding this location.
    pub fn segno(self, segment_size: u64) -> u64 {
        self.0 / segment_size
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "`{s}` is not a WAL location (LSN): expected two hexadecimal numbers like 0/16B3748"
            ))
        };
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let ok =
            |p: &str| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_hexdigit());
        if !ok(hi) || !ok(lo) {
            return Err(bad());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((hi << 32) | lo))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What sort of file PostgreSQL archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalFileKind {
    /// A WAL segment, `000000010000000000000003`.
    Segment,
    /// The last, partial segment of a timeline left by a promotion, `….partial`.
    Partial,
    /// A timeline history file, `00000002.history`.
    History,
    /// A backup history file, `000000010000000000000003.00000028.backup`.
    BackupLabel,
}

impl WalFileKind {
    /// The name used in manifests and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            WalFileKind::Segment => "segment",
            WalFileKind::Partial => "partial",
            WalFileKind::History => "history",
            WalFileKind::BackupLabel => "backup_label",
        }
    }
}

/// A parsed WAL file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WalFile {
    /// The file name as PostgreSQL wrote it.
    pub name: String,
    /// Its kind.
    pub kind: WalFileKind,
    /// The timeline in the name.
    pub timeline: u32,
    /// The "log" part of a segment name (high 32 bits of the location); 0 for history files.
    pub log: u32,
    /// The segment-within-log part of a segment name; 0 for history files.
    pub seg: u32,
}

fn is_upper_hex(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
}

impl WalFile {
    /// Parses a file name PostgreSQL archives; `None` for anything else.
    pub fn parse(name: &str) -> Option<WalFile> {
        let hex32 = |s: &str| u32::from_str_radix(s, 16).ok();
        let segment = |s: &str| -> Option<(u32, u32, u32)> {
            if s.len() != 24 || !is_upper_hex(s) {
                return None;
            }
            Some((hex32(&s[..8])?, hex32(&s[8..16])?, hex32(&s[16..])?))
        };
        let (kind, (timeline, log, seg)) = if let Some(base) = name.strip_suffix(".partial") {
            (WalFileKind::Partial, segment(base)?)
        } else if let Some(tl) = name.strip_suffix(".history") {
            if tl.len() != 8 || !is_upper_hex(tl) {
                return None;
            }
            (WalFileKind::History, (hex32(tl)?, 0, 0))
        } else if let Some(rest) = name.strip_suffix(".backup") {
            let (base, offset) = rest.split_once('.')?;
            if offset.len() != 8 || !is_upper_hex(offset) {
                return None;
            }
            (WalFileKind::BackupLabel, segment(base)?)
        } else {
            (WalFileKind::Segment, segment(name)?)
        };
        if timeline == 0 {
            return None;
        }
        Some(WalFile {
            name: name.to_string(),
            kind,
            timeline,
            log,
            seg,
        })
    }

    /// The segment number for a given segment size (segments, partials, backup labels).
    pub fn segno(&self, segment_size: u64) -> u64 {
        u64::from(self.log) * (0x1_0000_0000 / segment_size) + u64::from(self.seg)
    }

    /// The timeline folder name (`00000001`).
    pub fn timeline_folder(&self) -> String {
        format!("{:08X}", self.timeline)
    }

    /// Whether the file holds WAL (segment or partial segment).
    pub fn is_segment_like(&self) -> bool {
        matches!(self.kind, WalFileKind::Segment | WalFileKind::Partial)
    }
}

/// The name of segment `segno` on `timeline`, as PostgreSQL's `XLogFileName`.
pub fn segment_name(timeline: u32, segno: u64, segment_size: u64) -> String {
    let per_log = 0x1_0000_0000 / segment_size;
    format!(
        "{timeline:08X}{:08X}{:08X}",
        segno / per_log,
        segno % per_log
    )
}

/// Checks a WAL segment size: a power of two from 1 MiB to 1 GiB.
pub fn valid_segment_size(size: u64) -> bool {
    size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size)
}

// ---------------------------------------------------------------------------------
// Segment headers
// ---------------------------------------------------------------------------------

/// The long page header at the start of every WAL segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `xlp_magic`: the WAL format version (0xD110 for PostgreSQL 15).
    pub magic: u16,
    /// `xlp_info` flag bits.
    pub info: u16,
    /// `xlp_tli`: the timeline of the first page.
    pub timeline: u32,
    /// `xlp_pageaddr`: the WAL location of the first page.
    pub page_address: Lsn,
    /// `xlp_sysid`: the database system identifier.
    pub system_identifier: u64,
    /// `xlp_seg_size`.
    pub segment_size: u32,
    /// `xlp_xlog_blcksz`: the WAL page size.
    pub block_size: u32,
}

impl SegmentHeader {
    /// Parses the first bytes of a segment (at least 40).
    pub fn parse(page: &[u8]) -> std::result::Result<Self, String> {
        if page.len() < LONG_HEADER_SIZE {
            return Err(format!(
                "only {} bytes: too short for a WAL segment header",
                page.len()
            ));
        }
        let u16_at = |o: usize| u16::from_le_bytes([page[o], page[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(page[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(page[o..o + 8].try_into().expect("8 bytes"));
        let h = SegmentHeader {
            magic: u16_at(0),
            info: u16_at(2),
            timeline: u32_at(4),
            page_address: Lsn(u64_at(8)),
            system_identifier: u64_at(24),
            segment_size: u32_at(32),
            block_size: u32_at(36),
        };
        if h.info & XLP_LONG_HEADER == 0 {
            return Err(format!(
                "the first page has no long header (xlp_info {:#06x}, magic {:#06x}): not the start of a WAL segment",
                h.info, h.magic
            ));
        }
        if !valid_segment_size(u64::from(h.segment_size)) {
            return Err(format!(
                "the header's segment size {} is not a power of two from 1 MiB to 1 GiB",
                h.segment_size
            ));
        }
        if !h.block_size.is_power_of_two() || !(1024..=65536).contains(&h.block_size) {
            return Err(format!(
                "the header's WAL block size {} is invalid",
                h.block_size
            ));
        }
        if h.system_identifier == 0 || h.timeline == 0 {
            return Err("the header's system identifier or timeline is zero".into());
        }
        Ok(h)
    }
}

/// What a full pass over a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFacts {
    /// The long page header.
    pub header: SegmentHeader,
    /// The number of bytes.
    pub size: u64,
    /// Pages whose header carries the segment's magic and the expected page address
    /// (the rest of a segment switched early holds zeroes or recycled data).
    pub valid_pages: u64,
}

/// A streaming parser of one WAL segment: feed it the bytes, then [`SegmentScanner::finish`].
#[derive(Debug, Default)]
pub struct SegmentScanner {
    first: Vec<u8>,
    header: Option<SegmentHeader>,
    error: Option<String>,
    pos: u64,
    page_head: Vec<u8>,
    valid_pages: u64,
}

impl SegmentScanner {
    /// A scanner at the start of a segment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.error.is_some() {
                self.pos += data.len() as u64;
                return;
            }
            let Some(h) = self.header else {
                let take = (LONG_HEADER_SIZE - self.first.len()).min(data.len());
                self.first.extend_from_slice(&data[..take]);
                self.pos += take as u64;
                data = &data[take..];
                if self.first.len() == LONG_HEADER_SIZE {
                    match SegmentHeader::parse(&self.first) {
                        Ok(h) => {
                            self.header = Some(h);
                            self.valid_pages = 1;
                        }
                        Err(e) => self.error = Some(e),
                    }
                }
                continue;
            };
            let bs = u64::from(h.block_size);
            let in_page = self.pos % bs;
            if in_page < SHORT_HEADER_CHECKED as u64 {
                let take = ((SHORT_HEADER_CHECKED as u64 - in_page) as usize).min(data.len());
                self.page_head.extend_from_slice(&data[..take]);
                self.pos += take as u64;
                data = &data[take..];
                if self.page_head.len() == SHORT_HEADER_CHECKED {
                    let page = (self.pos - 1) / bs;
                    let magic = u16::from_le_bytes([self.page_head[0], self.page_head[1]]);
                    let addr = u64::from_le_bytes(self.page_head[8..16].try_into().expect("8"));
                    if magic == h.magic && addr == h.page_address.0 + page * bs {
                        self.valid_pages += 1;
                    }
                    self.page_head.clear();
                }
            } else {
                let skip = ((bs - in_page) as usize).min(data.len());
                self.pos += skip as u64;
                data = &data[skip..];
            }
        }
    }

    /// The header, once the first 40 bytes were fed.
    pub fn header(&self) -> Option<&SegmentHeader> {
        self.header.as_ref()
    }

    /// The facts of the whole segment, or why it is not a valid segment.
    pub fn finish(self) -> std::result::Result<SegmentFacts, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let Some(header) = self.header else {
            return Err(format!(
                "only {} bytes: too short for a WAL segment header",
                self.pos
            ));
        };
        if self.pos != u64::from(header.segment_size) {
            return Err(format!(
                "{} bytes, but its header says segments are {} bytes (truncated or padded)",
                self.pos, header.segment_size
            ));
        }
        Ok(SegmentFacts {
            header,
            size: self.pos,
            valid_pages: self.valid_pages,
        })
    }
}

/// Checks a segment's header against its file name: the page address must be where
/// the name says the segment starts.
fn check_header_matches_name(file: &WalFile, h: &SegmentHeader) -> std::result::Result<(), String> {
    let size = u64::from(h.segment_size);
    let expected = Lsn(file.segno(size) * size);
    if h.page_address != expected {
        return Err(format!(
            "its header says it starts at {}, but its name {} means {expected} (renamed or misplaced segment)",
            h.page_address, file.name
        ));
    }
    Ok(())
}

/// The facts of a segment as they appear in manifests.
fn segment_facts_json(f: &SegmentFacts) -> SourceFacts {
    let mut facts = SourceFacts::new();
    facts.insert(
        "system_identifier".into(),
        json!(f.header.system_identifier.to_string()),
    );
    facts.insert("wal_segment_size".into(), json!(f.header.segment_size));
    facts.insert("wal_block_size".into(), json!(f.header.block_size));
    facts.insert(
        "page_magic".into(),
        json!(format!("{:#06X}", f.header.magic)),
    );
    facts.insert("page_timeline".into(), json!(f.header.timeline));
    facts.insert("start_lsn".into(), json!(f.header.page_address.to_string()));
    facts
}

fn segment_contents(f: &SegmentFacts) -> Contents {
    let mut c = Contents::default();
    c.fact("system_identifier", f.header.system_identifier.to_string());
    c.fact("wal_segment_size", f.header.segment_size.to_string());
    c.fact("page_magic", format!("{:#06X}", f.header.magic));
    c.fact("start_lsn", f.header.page_address.to_string());
    c.add("wal", "valid_pages", f.valid_pages);
    c
}

// ---------------------------------------------------------------------------------
// History and backup history files
// ---------------------------------------------------------------------------------

/// One line of a timeline history file: `parent` ran until `switchpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The parent timeline.
    pub timeline: u32,
    /// Where the next timeline branched off it.
    pub switchpoint: Lsn,
    /// PostgreSQL's reason text ("no recovery target specified"...).
    #[serde(default)]
    pub reason: String,
}

/// Parses a timeline history file (`1\t0/5000000\tno recovery target specified`).
pub fn parse_history(text: &str) -> std::result::Result<Vec<HistoryEntry>, String> {
    let mut out: Vec<HistoryEntry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, |c: char| c.is_whitespace());
        let tli = parts.next().unwrap_or_default();
        let lsn = parts.next().unwrap_or_default().trim();
        let reason = parts.next().unwrap_or_default().trim().to_string();
        let timeline: u32 = tli
            .parse()
            .map_err(|_| format!("line {}: `{tli}` is not a timeline number", i + 1))?;
        let switchpoint: Lsn = lsn
            .parse()
            .map_err(|_| format!("line {}: `{lsn}` is not a WAL location", i + 1))?;
        if let Some(prev) = out.last() {
            if timeline <= prev.timeline || switchpoint < prev.switchpoint {
                return Err(format!(
                    "line {}: timelines and switch points must increase",
                    i + 1
                ));
            }
        }
        out.push(HistoryEntry {
            timeline,
            switchpoint,
            reason,
        });
    }
    Ok(out)
}

/// Parses `KEY: value` lines (backup_label, backup history files).
pub fn parse_label(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The LSN in a label value such as `0/2000028 (file 000000010000000000000002)`.
pub fn label_lsn(value: &str) -> Option<Lsn> {
    value.split_whitespace().next()?.parse().ok()
}

fn text_facts(file: &WalFile, text: &str) -> std::result::Result<SourceFacts, String> {
    let mut facts = SourceFacts::new();
    match file.kind {
        WalFileKind::History => {
            let entries = parse_history(text)?;
            if let Some(last) = entries.last() {
                if last.timeline >= file.timeline {
                    return Err(format!(
                        "it lists timeline {} as a parent of timeline {}",
                        last.timeline, file.timeline
                    ));
                }
            } else if file.timeline > 1 {
                return Err("it lists no parent timeline".into());
            }
            facts.insert("history".into(), json!(entries));
        }
        WalFileKind::BackupLabel => {
            let label = parse_label(text);
            for (key, name) in [
                ("START WAL LOCATION", "start_lsn"),
                ("STOP WAL LOCATION", "stop_lsn"),
                ("CHECKPOINT LOCATION", "checkpoint_lsn"),
            ] {
                if let Some(lsn) = label.get(key).and_then(|v| label_lsn(v)) {
                    facts.insert(name.into(), json!(lsn.to_string()));
                }
            }
            for (key, name) in [
                ("START TIME", "start_time"),
                ("STOP TIME", "stop_time"),
                ("LABEL", "label"),
                ("START TIMELINE", "start_timeline"),
                ("STOP TIMELINE", "stop_timeline"),
            ] {
                if let Some(v) = label.get(key) {
                    facts.insert(name.into(), json!(v));
                }
            }
            if !facts.contains_key("start_lsn") {
                return Err("it has no START WAL LOCATION line".into());
            }
        }
        _ => {}
    }
    Ok(facts)
}

// ---------------------------------------------------------------------------------
// Format readers (level-2 verification)
// ---------------------------------------------------------------------------------

/// The reader of archived WAL segments (`pgwal`): parses the long page header and
/// counts the pages with valid headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalSegmentFormat;

impl FormatReader for WalSegmentFormat {
    fn format(&self) -> &str {
        SEGMENT_FORMAT
    }

    fn read_contents(&self, input: &mut dyn std::io::Read) -> Result<Contents> {
        let mut scanner = SegmentScanner::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e, "reading a WAL segment")),
            };
            scanner.feed(&buf[..n]);
        }
        let facts = scanner.finish().map_err(|reason| Error::Format {
            format: SEGMENT_FORMAT.into(),
            reason,
        })?;
        Ok(segment_contents(&facts))
    }
}

/// The reader of archived history and backup history files (`pgwaltext`): small UTF-8
/// text files; counts their lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalTextFormat;

/// The largest history or backup history file accepted (they are a few hundred bytes).
const MAX_TEXT_FILE: u64 = 16 * 1024 * 1024;

impl FormatReader for WalTextFormat {
    fn format(&self) -> &str {
        TEXT_FORMAT
    }

    fn read_contents(&self, input: &mut dyn std::io::Read) -> Result<Contents> {
        use std::io::Read as _;
        let mut text = Vec::new();
        input
            .take(MAX_TEXT_FILE + 1)
            .read_to_end(&mut text)
            .map_err(|e| Error::from_io(e, "reading a WAL history file"))?;
        if text.len() as u64 > MAX_TEXT_FILE {
            return Err(Error::Format {
                format: TEXT_FORMAT.into(),
                reason: "larger than 16 MiB: not a history or backup history file".into(),
            });
        }
        Ok(text_contents(&text))
    }
}

fn text_contents(text: &[u8]) -> Contents {
    let mut c = Contents::default();
    let lines = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    c.add("text", "lines", lines as u64);
    c
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

// ---------------------------------------------------------------------------------
// Opening a store for WAL
// ---------------------------------------------------------------------------------

/// Opens a store for WAL archiving. Like [`BackupStore::open`], except that local
/// directories are written with `fsync` (file and directory): `archive_command` must
/// not report success before the file is durable, since PostgreSQL then recycles the
/// segment.
pub fn open_store(url: &str, options: &BTreeMap<String, String>) -> Result<BackupStore> {
    let local = if let Some(rest) = url.strip_prefix("file://") {
        Some(rest.to_string())
    } else if !url.contains("://") {
        Some(url.to_string())
    } else {
        None
    };
    let Some(path) = local else {
        return BackupStore::open(url, options);
    };
    backup_core::store::install_crypto_provider();
    let path = PathBuf::from(if path.is_empty() { ".".into() } else { path });
    let bad = |reason: String| Error::StoreConfig {
        url: backup_core::redact_url(url),
        reason,
    };
    std::fs::create_dir_all(&path)
        .map_err(|e| bad(format!("cannot create directory {}: {e}", path.display())))?;
    let fs = object_store::local::LocalFileSystem::new_with_prefix(&path)
        .map_err(|e| bad(e.to_string()))?
        .with_automatic_cleanup(true)
        .with_fsync(true);
    Ok(BackupStore::from_object_store(Arc::new(fs), "", url))
}

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
    /// zstd worker threads (`None`: one per core).
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
    /// `archived`, `already_archived` (same content, nothing written) or `repaired`
    /// (same content, but the stored object was missing or damaged and was rewritten).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
}

/// One sealed file in memory, ready to store.
struct Sealed {
    stored: Vec<u8>,
    stored_sha256: String,
    plaintext_size: u64,
    plaintext_sha256: String,
    segment: Option<std::result::Result<SegmentFacts, String>>,
    text: Option<Vec<u8>>,
}

impl WalArchive {
    /// The archive of `datastore` in `store`.
    pub fn new(store: BackupStore, datastore: &str) -> Result<Self> {
        BackupStore::validate_datastore_name(datastore)?;
        Ok(WalArchive {
            store,
            datastore: datastore.to_string(),
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

    /// Reads the archive record, `None` if the archive has none yet.
    pub async fn record(&self) -> Result<Option<ArchiveRecord>> {
        let key = self.record_key();
        match self.store.get_bytes(&key).await {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| Error::InvalidManifest {
                        key,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the manifest of a WAL file, `None` if it is not archived.
    pub async fn file_manifest(&self, file: &WalFile) -> Result<Option<Manifest>> {
        let key = self.manifest_key(file);
        match self.store.get_bytes(&key).await {
            Ok(bytes) => Manifest::from_json(&bytes, &key).map(Some),
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
            .put_bytes_create(&self.record_key(), bytes)
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

    /// Seals the file at `path` in memory: streams it through zstd and age, hashing the
    /// plaintext and the stored bytes, and scanning a segment's headers on the way.
    async fn seal(
        &self,
        path: &Path,
        file: &WalFile,
        options: &PushOptions,
        push_id: &BackupId,
    ) -> Result<Sealed> {
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("cannot open WAL file {}", path.display()), e))?;
        let mut zstd = Zstd::new(options.zstd_level);
        if let Some(w) = options.zstd_workers {
            zstd = zstd.with_workers(w);
        }
        let transforms: Vec<Arc<dyn Transform>> = vec![
            Arc::new(zstd),
            Arc::new(Age::encrypt(options.encryption.clone())),
        ];
        let ctx = StageContext {
            backup_id: push_id.to_string(),
            key: self.object_key(file),
        };
        let (mut src_w, mut next_r) = pipe(PIPE_CAPACITY);
        let mut stages = Vec::new();
        for t in transforms {
            let (w, r) = pipe(PIPE_CAPACITY);
            let input = std::mem::replace(&mut next_r, r);
            let ctx = ctx.clone();
            stages.push(tokio::spawn(run_stage(t, ctx, input, w)));
        }
        let collector = tokio::spawn(async move {
            let mut r = next_r;
            let mut out = Vec::new();
            let mut hasher = Sha256::new();
            while let Some(chunk) = r
                .next_chunk()
                .await
                .map_err(|e| Error::from_io(e, "reading the sealed WAL file"))?
            {
                hasher.update(&chunk);
                out.extend_from_slice(&chunk);
            }
            Ok::<_, Error>((out, hex_digest(hasher.finalize())))
        });
        let mut scanner = file.is_segment_like().then(SegmentScanner::new);
        let mut text = (!file.is_segment_like()).then(Vec::new);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let read: Result<()> = async {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::io(format!("reading WAL file {}", path.display()), e))?;
                if n == 0 {
                    return Ok(());
                }
                let chunk = &buf[..n];
                hasher.update(chunk);
                size += n as u64;
                if let Some(s) = scanner.as_mut() {
                    s.feed(chunk);
                }
                if let Some(t) = text.as_mut() {
                    if (t.len() + n) as u64 > MAX_TEXT_FILE {
                        return Err(self.err(
                            ErrorKind::Config,
                            format!(
                                "{} is larger than 16 MiB: not a history or backup history file",
                                path.display()
                            ),
                        ));
                    }
                    t.extend_from_slice(chunk);
                }
                src_w
                    .send(Bytes::copy_from_slice(chunk))
                    .await
                    .map_err(|e| Error::from_io(e, "sealing the WAL file"))?;
            }
        }
        .await;
        match &read {
            Ok(()) => {
                let _ = src_w.finish().await;
            }
            Err(_) => {
                src_w
                    .fail(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        UPSTREAM_ABORTED,
                    ))
                    .await
            }
        }
        let mut first_err = read.err();
        for s in stages {
            let r = s
                .await
                .unwrap_or_else(|e| Err(Error::Interrupted(format!("sealing stage: {e}"))));
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        let collected = collector
            .await
            .unwrap_or_else(|e| Err(Error::Interrupted(format!("sealing stage: {e}"))));
        if let Some(e) = first_err {
            return Err(e);
        }
        let (stored, stored_sha256) = collected?;
        Ok(Sealed {
            stored,
            stored_sha256,
            plaintext_size: size,
            plaintext_sha256: hex_digest(hasher.finalize()),
            segment: scanner.map(SegmentScanner::finish),
            text,
        })
    }

    /// Archives one WAL file (`archive_command = 'dbseal wal-push --datastore N %p'`).
    /// See the module docs for the contract.
    pub async fn push(&self, path: &Path, options: &PushOptions) -> Result<PushOutcome> {
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
        let push_id = BackupId::now();
        let started_at = Utc::now();
        let sealed = self.seal(path, &file, options, &push_id).await?;

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
        if let Some(existing) = self.file_manifest(&file).await? {
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
            .put_bytes_create(&key, sealed.stored.clone())
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
                .put_bytes_create(&key, sealed.stored.clone())
                .await?
            {
                return Err(self.err(
                    ErrorKind::Other,
                    format!("object {key} appeared while it was being written"),
                ));
            }
        }
        let transforms = vec![
            Zstd::new(options.zstd_level).spec(),
            Age::encrypt(options.encryption.clone()).spec(),
        ];
        let manifest = Manifest {
            format_version: FORMAT_VERSION.to_string(),
            backup_id: push_id,
            datastore: DatastoreRef {
                name: self.datastore.clone(),
                kind: WAL_KIND.into(),
            },
            started_at,
            finished_at: Utc::now(),
            tool: ToolInfo::default(),
            source,
            artifact: Artifact {
                name: "data".into(),
                key: key.clone(),
                format: format.into(),
                stored_size: sealed.stored.len() as u64,
                stored_sha256: sealed.stored_sha256.clone(),
                plaintext_size: sealed.plaintext_size,
                plaintext_sha256: sealed.plaintext_sha256.clone(),
            },
            attachments: Vec::new(),
            transforms,
            contents,
            parent: None,
            labels: BTreeMap::new(),
            extra: Default::default(),
        };
        if self
            .store
            .put_bytes_create(&manifest_key, manifest.to_json())
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
            plaintext_size: sealed.plaintext_size,
            stored_size: sealed.stored.len() as u64,
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
        if a.plaintext_sha256 != sealed.plaintext_sha256
            || a.plaintext_size != sealed.plaintext_size
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!(
                    "{} is already archived with different contents ({} bytes, SHA-256 {}; this file: {} bytes, SHA-256 {}): refusing to overwrite it. If two clusters archive into datastore `{}`, give each its own --datastore; if this server was restored from a backup, it must archive on a new timeline",
                    file.name,
                    a.plaintext_size,
                    a.plaintext_sha256,
                    sealed.plaintext_size,
                    sealed.plaintext_sha256,
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
        self.store.put_bytes(&key, sealed.stored.clone()).await?;
        let mut repaired = existing.clone();
        repaired.artifact.key = key.clone();
        repaired.artifact.stored_size = sealed.stored.len() as u64;
        repaired.artifact.stored_sha256 = sealed.stored_sha256.clone();
        repaired.finished_at = Utc::now();
        self.store
            .put_bytes(&manifest_key, repaired.to_json())
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

    /// Fetches one WAL file into `dest` (`restore_command = 'dbseal wal-fetch --datastore
    /// N %f %p'`). See the module docs for the contract.
    pub async fn fetch(
        &self,
        name: &str,
        dest: &Path,
        options: &FetchOptions,
    ) -> Result<FetchOutcome> {
        let file = WalFile::parse(name).ok_or_else(|| {
            Error::Config(format!(
                "`{name}` is not a WAL file name (segment, .partial, .history or .backup): pass %f in restore_command"
            ))
        })?;
        let Some(manifest) = self.file_manifest(&file).await? else {
            let later_segment = if file.kind == WalFileKind::Segment {
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
    fn check_file_manifest(
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

    /// Lists everything under the WAL folder.
    pub async fn listing(&self) -> Result<WalListing> {
        let prefix = format!("{}/", self.folder());
        let keys = self.store.list_keys(&self.folder()).await?;
        let mut listing = WalListing::default();
        for (key, meta) in keys {
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
            }
            for (k, _) in &f.objects {
                self.store.delete(k).await?;
            }
        }
        Ok(deleted)
    }
}

async fn run_stage(
    t: Arc<dyn Transform>,
    ctx: StageContext,
    mut input: PipeReader,
    mut output: PipeWriter,
) -> Result<()> {
    let result = t.apply(&ctx, &mut input, &mut output).await;
    drop(input);
    match &result {
        Ok(()) => {
            let _ = output.finish().await;
        }
        Err(_) => {
            output
                .fail(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    UPSTREAM_ABORTED,
                ))
                .await
        }
    }
    result
}

// ---------------------------------------------------------------------------------
// Timeline paths
// ---------------------------------------------------------------------------------

/// The timeline path recovery follows from `(timeline, start)` to `target` (the
/// newest timeline when `None`, as `recovery_target_timeline = 'latest'`), as ranges of
/// segment numbers per timeline; `to_segno` of the last timeline is left `None` (the
/// caller bounds it). Fails if `target` does not descend from the start point.
pub fn timeline_path(
    timeline: u32,
    start: Lsn,
    target: u32,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    seg_size: u64,
) -> std::result::Result<Vec<TimelineRange>, String> {
    let start_seg = start.segno(seg_size);
    if target == timeline {
        return Ok(vec![TimelineRange {
            timeline,
            from_segno: start_seg,
            to_segno: None,
        }]);
    }
    let history = histories
        .get(&target)
        .ok_or_else(|| format!("the history file of timeline {target} is not archived"))?;
    let pos = history
        .iter()
        .position(|e| e.timeline == timeline)
        .ok_or_else(|| format!("timeline {target} does not descend from timeline {timeline}"))?;
    if history[pos].switchpoint <= start {
        return Err(format!(
            "timeline {target} branched off timeline {timeline} at {}, before {start}",
            history[pos].switchpoint
        ));
    }
    let mut ranges = Vec::new();
    let mut from = start_seg;
    for e in &history[pos..] {
        let next_begin = e.switchpoint.segno(seg_size);
        if next_begin > from {
            ranges.push(TimelineRange {
                timeline: e.timeline,
                from_segno: from,
                to_segno: Some(next_begin - 1),
            });
        }
        from = from.max(next_begin);
    }
    ranges.push(TimelineRange {
        timeline: target,
        from_segno: from,
        to_segno: None,
    });
    Ok(ranges)
}

/// The timeline PostgreSQL picks for `recovery_target_timeline = 'latest'`: starting
/// from `timeline`, the highest of the consecutive timelines whose history file exists.
pub fn latest_timeline(timeline: u32, history_timelines: &BTreeSet<u32>) -> u32 {
    let mut t = timeline;
    while history_timelines.contains(&(t + 1)) {
        t += 1;
    }
    t
}

/// The newest timeline that descends from `(timeline, start)`.
fn newest_descendant(
    timeline: u32,
    start: Lsn,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    seg_size: u64,
) -> u32 {
    histories
        .keys()
        .rev()
        .copied()
        .find(|t| *t > timeline && timeline_path(timeline, start, *t, histories, seg_size).is_ok())
        .unwrap_or(timeline)
}

/// Checks the segments a recovery along `path` reads: the last range ends at
/// `end_segno` when given, else at the newest segment of its timeline. Returns the
/// missing segments and the newest segment reachable without a gap.
pub fn missing_segments(
    path: &mut [TimelineRange],
    segments: &BTreeMap<u32, BTreeSet<u64>>,
    end_segno: Option<u64>,
    seg_size: u64,
) -> (Vec<String>, Option<String>) {
    let empty = BTreeSet::new();
    if let Some(last) = path.last_mut() {
        let segs = segments.get(&last.timeline).unwrap_or(&empty);
        last.to_segno = match end_segno {
            Some(e) => Some(e),
            None => segs
                .iter()
                .next_back()
                .copied()
                .filter(|s| *s >= last.from_segno),
        };
    }
    let mut missing = Vec::new();
    let mut reachable = None;
    let mut blocked = false;
    for r in path.iter() {
        let Some(to) = r.to_segno else { continue };
        if let Some(end) = end_segno {
            if r.from_segno > end {
                break;
            }
        }
        let to = end_segno.map_or(to, |e| to.min(e));
        let segs = segments.get(&r.timeline).unwrap_or(&empty);
        for s in r.from_segno..=to {
            if segs.contains(&s) {
                if !blocked {
                    reachable = Some(segment_name(r.timeline, s, seg_size));
                }
            } else {
                blocked = true;
                missing.push(segment_name(r.timeline, s, seg_size));
            }
        }
    }
    (missing, reachable)
}

fn backup_coverage(
    b: &BaseBackupWal,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    segments: &BTreeMap<u32, BTreeSet<u64>>,
    seg_size: u64,
    target: Option<u32>,
) -> (BackupCoverage, Vec<WalProblem>) {
    let mut problems = Vec::new();
    let start_segment = segment_name(b.timeline, b.start_lsn.segno(seg_size), seg_size);
    let stop_segment = b.stop_lsn.map(|l| {
        segment_name(
            b.stop_timeline.unwrap_or(b.timeline),
            l.segno(seg_size),
            seg_size,
        )
    });
    let target =
        target.unwrap_or_else(|| newest_descendant(b.timeline, b.start_lsn, histories, seg_size));
    let mut path = match timeline_path(b.timeline, b.start_lsn, target, histories, seg_size) {
        Ok(p) => p,
        Err(e) => {
            problems.push(WalProblem {
                kind: WalProblemKind::Timeline,
                file: None,
                message: format!("base backup {}: {e}", b.backup_id),
            });
            return (
                BackupCoverage {
                    backup_id: b.backup_id.clone(),
                    start_segment,
                    stop_segment,
                    path: Vec::new(),
                    reachable: None,
                    complete: false,
                },
                problems,
            );
        }
    };
    // The stop segment is needed even when no later segment exists.
    let stop_segno = b.stop_lsn.map(|l| l.segno(seg_size));
    let (mut missing, reachable) = missing_segments(&mut path, segments, None, seg_size);
    if let (Some(stop), Some(stop_name)) = (stop_segno, &stop_segment) {
        let tl = b.stop_timeline.unwrap_or(b.timeline);
        let have = segments.get(&tl).is_some_and(|s| s.contains(&stop));
        if !have && !missing.contains(stop_name) {
            missing.push(stop_name.clone());
        }
        let start = b.start_lsn.segno(seg_size);
        for s in start..stop {
            let name = segment_name(b.timeline, s, seg_size);
            if !segments.get(&b.timeline).is_some_and(|x| x.contains(&s))
                && !missing.contains(&name)
            {
                missing.push(name);
            }
        }
    }
    missing.sort();
    for m in &missing {
        let consistency = stop_segment.as_ref().is_some_and(|s| m <= s);
        problems.push(WalProblem {
            kind: WalProblemKind::Gap,
            file: Some(m.clone()),
            message: if consistency {
                format!(
                    "{m} is missing: base backup {} needs it to become consistent (start {start_segment}, stop {})",
                    b.backup_id,
                    stop_segment.as_deref().unwrap_or("?")
                )
            } else {
                format!(
                    "{m} is missing: recovery of base backup {} to the newest WAL would stop there (reachable: {})",
                    b.backup_id,
                    reachable.as_deref().unwrap_or("nothing")
                )
            },
        });
    }
    (
        BackupCoverage {
            backup_id: b.backup_id.clone(),
            start_segment,
            stop_segment,
            path,
            reachable,
            complete: missing.is_empty(),
        },
        problems,
    )
}

/// Cross-checks timeline histories and segments.
fn check_timelines(
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    segments: &BTreeMap<u32, BTreeSet<u64>>,
    seg_size: u64,
) -> Vec<WalProblem> {
    let mut problems = Vec::new();
    for (tl, segs) in segments {
        if *tl == 1 {
            continue;
        }
        let Some(history) = histories.get(tl) else {
            problems.push(WalProblem {
                kind: WalProblemKind::Timeline,
                file: Some(format!("{tl:08X}.history")),
                message: format!(
                    "timeline {tl} has segments but its history file {tl:08X}.history is not archived: recovery cannot follow it"
                ),
            });
            continue;
        };
        if let Some(last) = history.last() {
            let begin = last.switchpoint.segno(seg_size);
            if let Some(first) = segs.iter().next() {
                if *first < begin {
                    problems.push(WalProblem {
                        kind: WalProblemKind::Timeline,
                        file: Some(segment_name(*tl, *first, seg_size)),
                        message: format!(
                            "{} lies before timeline {tl} began ({} on timeline {}, per {tl:08X}.history)",
                            segment_name(*tl, *first, seg_size),
                            last.switchpoint,
                            last.timeline
                        ),
                    });
                }
            }
        }
    }
    for (tl, history) in histories {
        // Each parent's own history must agree with the prefix of this one.
        for (i, e) in history.iter().enumerate() {
            if let Some(parent) = histories.get(&e.timeline) {
                if parent.as_slice() != &history[..i] {
                    problems.push(WalProblem {
                        kind: WalProblemKind::Timeline,
                        file: Some(format!("{tl:08X}.history")),
                        message: format!(
                            "{tl:08X}.history and {:08X}.history disagree about the history of timeline {}",
                            e.timeline, e.timeline
                        ),
                    });
                }
            }
        }
    }
    problems
}

/// What a restore of `backup` along `target_timeline` (newest when `None`) needs
/// from the archive up to `end` (the newest WAL when `None`): the missing segments, and
/// the coverage. Used by the physical restore's pre-checks.
pub async fn plan_recovery(
    archive: &WalArchive,
    backup: &BaseBackupWal,
    target_timeline: Option<u32>,
    end: Option<Lsn>,
) -> Result<RecoveryPlan> {
    let record = archive.record().await?.ok_or_else(|| {
        archive.err(
            ErrorKind::NotFound,
            format!(
                "no WAL archive in {} (no {}): the base backup needs the WAL archived by `dbseal wal-push --datastore {}`",
                archive.store.url(),
                archive.record_key(),
                archive.datastore
            ),
        )
    })?;
    let sysid = record.system_id()?;
    if sysid != backup.system_identifier {
        return Err(archive.err(
            ErrorKind::Refused,
            format!(
                "base backup {} is of database system {}, but the WAL archive holds database system {sysid}",
                backup.backup_id, backup.system_identifier
            ),
        ));
    }
    let seg_size = record.wal_segment_size;
    if seg_size != backup.wal_segment_size {
        return Err(archive.err(
            ErrorKind::Refused,
            format!(
                "base backup {} has {}-byte WAL segments, the archive {seg_size}-byte ones",
                backup.backup_id, backup.wal_segment_size
            ),
        ));
    }
    let listing = archive.listing().await?;
    let histories = archive.histories(&listing).await?;
    let segments = listing.segments(seg_size);
    let target = target_timeline
        .unwrap_or_else(|| latest_timeline(backup.timeline, &listing.history_timelines()));
    let mut path = timeline_path(backup.timeline, backup.start_lsn, target, &histories, seg_size)
        .map_err(|e| {
            archive.err(
                ErrorKind::Refused,
                format!(
                    "base backup {} cannot be recovered along timeline {target}: {e} (choose another --target-timeline)",
                    backup.backup_id
                ),
            )
        })?;
    let end_segno = end.map(|l| l.segno(seg_size));
    let (missing, reachable) = missing_segments(&mut path, &segments, end_segno, seg_size);
    let stop = backup.stop_lsn.unwrap_or(backup.start_lsn);
    let stop_segno = stop.segno(seg_size);
    let (consistency_missing, _) = {
        let mut p = timeline_path(
            backup.timeline,
            backup.start_lsn,
            target,
            &histories,
            seg_size,
        )
        .unwrap_or_default();
        missing_segments(&mut p, &segments, Some(stop_segno), seg_size)
    };
    // The archived segments on the path: their manifests must name this system and
    // their stored objects must be there (content is checked by wal-fetch itself).
    let mut needed = Vec::new();
    for r in &path {
        let Some(to) = r.to_segno else { continue };
        let to = end_segno.map_or(to, |e| to.min(e));
        for s in r.from_segno..=to {
            let name = segment_name(r.timeline, s, seg_size);
            if let Some(f) = listing.files.get(&name) {
                if f.manifest_key.is_some() {
                    needed.push((s, f.clone()));
                }
            }
        }
    }
    let checks = futures::stream::iter(needed.into_iter().map(|(segno, f)| async move {
        let problem = match archive.file_manifest(&f.file).await {
            Ok(Some(m)) => match archive.check_file_manifest(&f.file, &m, Some(sysid)) {
                Err(p) => Some(p),
                Ok(()) => match f.objects.iter().find(|(k, _)| *k == m.artifact.key) {
                    Some((_, size)) if *size == m.artifact.stored_size => None,
                    Some((key, size)) => Some(WalProblem {
                        kind: WalProblemKind::Corrupt,
                        file: Some(f.file.name.clone()),
                        message: format!(
                            "{}: {key} is {size} bytes, its manifest records {} (truncated or replaced)",
                            f.file.name, m.artifact.stored_size
                        ),
                    }),
                    None => Some(WalProblem {
                        kind: WalProblemKind::Corrupt,
                        file: Some(f.file.name.clone()),
                        message: format!("{}: its stored object {} is missing", f.file.name, m.artifact.key),
                    }),
                },
            },
            Ok(None) => None,
            Err(e) => Some(WalProblem {
                kind: WalProblemKind::Invalid,
                file: Some(f.file.name.clone()),
                message: format!("{}: {e}", f.file.name),
            }),
        };
        problem.map(|p| (segno, p))
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let mut damaged = Vec::new();
    let mut damaged_consistency = Vec::new();
    for (segno, p) in checks.into_iter().flatten() {
        if segno <= stop_segno {
            damaged_consistency.push(p);
        } else {
            damaged.push(p);
        }
    }
    damaged.sort_by(|a, b| a.file.cmp(&b.file));
    damaged_consistency.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(RecoveryPlan {
        system_identifier: sysid,
        segment_size: seg_size,
        target_timeline: target,
        path,
        missing,
        consistency_missing,
        reachable,
        damaged,
        damaged_consistency,
    })
}

/// What [`plan_recovery`] found.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryPlan {
    /// The archive's system identifier.
    pub system_identifier: u64,
    /// The WAL segment size.
    pub segment_size: u64,
    /// The timeline recovery ends on.
    pub target_timeline: u32,
    /// The timeline ranges read.
    pub path: Vec<TimelineRange>,
    /// Segments missing up to the end asked for.
    pub missing: Vec<String>,
    /// Segments missing before the backup is consistent (fatal for any target).
    pub consistency_missing: Vec<String>,
    /// The newest segment reachable without a gap.
    pub reachable: Option<String>,
    /// Archived segments on the path, after the consistency point, whose manifest names
    /// another database system or whose stored object is missing or has the wrong size.
    pub damaged: Vec<WalProblem>,
    /// The same, up to the consistency point (fatal for any target).
    pub damaged_consistency: Vec<WalProblem>,
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
fn check_segment(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic segment: long header on page 0, short headers on every page.
    pub(crate) fn fake_segment(tl: u32, segno: u64, seg_size: u32, sysid: u64) -> Vec<u8> {
        let bs = 8192usize;
        let mut v = vec![0u8; seg_size as usize];
        let base = segno * u64::from(seg_size);
        for (i, page) in v.chunks_mut(bs).enumerate() {
            page[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
            let info: u16 = if i == 0 { XLP_LONG_HEADER } else { 0 };
            page[2..4].copy_from_slice(&info.to_le_bytes());
            page[4..8].copy_from_slice(&tl.to_le_bytes());
            page[8..16].copy_from_slice(&(base + (i * bs) as u64).to_le_bytes());
            if i == 0 {
                page[24..32].copy_from_slice(&sysid.to_le_bytes());
                page[32..36].copy_from_slice(&seg_size.to_le_bytes());
                page[36..40].copy_from_slice(&(bs as u32).to_le_bytes());
            }
        }
        v
    }

    #[test]
    fn lsn_round_trip() {
        let l: Lsn = "0/16B3748".parse().unwrap();
        assert_eq!(l.0, 0x16B3748);
        assert_eq!(l.to_string(), "0/16B3748");
        let l: Lsn = "1A/FF000000".parse().unwrap();
        assert_eq!(l.to_string(), "1A/FF000000");
        assert!("16B3748".parse::<Lsn>().is_err());
        assert!("0/123456789".parse::<Lsn>().is_err());
    }

    #[test]
    fn names() {
        let f = WalFile::parse("000000010000000A000000FF").unwrap();
        assert_eq!(
            (f.kind, f.timeline, f.log, f.seg),
            (WalFileKind::Segment, 1, 10, 255)
        );
        assert_eq!(f.segno(16 << 20), 10 * 256 + 255);
        assert_eq!(
            segment_name(1, 10 * 256 + 255, 16 << 20),
            "000000010000000A000000FF"
        );
        assert_eq!(
            segment_name(2, 4096 + 3, 1 << 20),
            "000000020000000100000003"
        );
        assert_eq!(
            WalFile::parse("00000002.history").unwrap().kind,
            WalFileKind::History
        );
        assert_eq!(
            WalFile::parse("000000010000000000000002.00000028.backup")
                .unwrap()
                .kind,
            WalFileKind::BackupLabel
        );
        assert_eq!(
            WalFile::parse("000000010000000000000002.partial")
                .unwrap()
                .kind,
            WalFileKind::Partial
        );
        for bad in [
            "00000001000000000000000",
            "0000000100000000000000zz",
            "RECOVERYXLOG",
            "00000000.history",
            "000000010000000000000002.0000028.backup",
            "archive_status",
        ] {
            assert!(WalFile::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn segment_scanner_reads_headers_in_any_chunking() {
        let seg = fake_segment(3, 77, 1 << 20, 0xABCDEF0123);
        for chunk in [1usize, 7, 40, 8192, 100_000] {
            let mut s = SegmentScanner::new();
            for c in seg.chunks(chunk) {
                s.feed(c);
            }
            let f = s.finish().unwrap();
            assert_eq!(f.header.system_identifier, 0xABCDEF0123);
            assert_eq!(f.header.page_address, Lsn(77 << 20));
            assert_eq!(f.valid_pages, 128, "chunk {chunk}");
        }
        let file = WalFile::parse(&segment_name(3, 77, 1 << 20)).unwrap();
        let mut s = SegmentScanner::new();
        s.feed(&seg);
        assert!(check_segment(&file, s, Some(0xABCDEF0123)).is_ok());
        let mut s = SegmentScanner::new();
        s.feed(&seg);
        let e = check_segment(&file, s, Some(5)).unwrap_err();
        assert!(e.contains("another cluster"), "{e}");
        let other = WalFile::parse(&segment_name(3, 78, 1 << 20)).unwrap();
        let mut s = SegmentScanner::new();
        s.feed(&seg);
        assert!(check_segment(&other, s, None)
            .unwrap_err()
            .contains("renamed"));
        let mut s = SegmentScanner::new();
        s.feed(&seg[..1000]);
        assert!(s.finish().unwrap_err().contains("truncated"));
        let mut s = SegmentScanner::new();
        s.feed(&[0u8; 8192]);
        assert!(s.finish().unwrap_err().contains("long header"));
    }

    #[test]
    fn histories_parse_and_paths_follow_them() {
        let h2 = parse_history("1\t0/5000000\tno recovery target specified\n").unwrap();
        let h3 = parse_history(
            "1\t0/5000000\tno recovery target specified\n\n2\t0/90000A0\tbefore 2026-01-01\n",
        )
        .unwrap();
        assert!(parse_history("2\t0/5000000\tx\n1\t0/6000000\ty\n").is_err());
        let mut histories = BTreeMap::new();
        histories.insert(2, h2);
        histories.insert(3, h3);
        let seg = 16u64 << 20;
        let path = timeline_path(1, Lsn(0x2000028), 3, &histories, seg).unwrap();
        assert_eq!(
            path,
            vec![
                TimelineRange {
                    timeline: 1,
                    from_segno: 2,
                    to_segno: Some(4)
                },
                TimelineRange {
                    timeline: 2,
                    from_segno: 5,
                    to_segno: Some(8)
                },
                TimelineRange {
                    timeline: 3,
                    from_segno: 9,
                    to_segno: None
                },
            ]
        );
        // A backup taken after the branch point of timeline 2 is not on its history.
        assert!(timeline_path(1, Lsn(0x6000028), 3, &histories, seg).is_err());
        assert_eq!(newest_descendant(1, Lsn(0x2000028), &histories, seg), 3);
        assert_eq!(newest_descendant(1, Lsn(0x6000028), &histories, seg), 1);
        let tls: BTreeSet<u32> = [2, 3, 5].into_iter().collect();
        assert_eq!(latest_timeline(1, &tls), 3);

        let mut segments: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        segments.insert(1, [2, 3, 4, 5].into_iter().collect());
        segments.insert(2, [5, 6, 8].into_iter().collect());
        segments.insert(3, [9, 10].into_iter().collect());
        let mut p = path.clone();
        let (missing, reachable) = missing_segments(&mut p, &segments, None, seg);
        assert_eq!(missing, vec![segment_name(2, 7, seg)]);
        assert_eq!(reachable, Some(segment_name(2, 6, seg)));
        let mut p = path.clone();
        let (missing, _) = missing_segments(&mut p, &segments, Some(6), seg);
        assert!(missing.is_empty());
    }

    #[test]
    fn timeline_checks() {
        let mut histories = BTreeMap::new();
        histories.insert(2, parse_history("1\t0/5000000\tx\n").unwrap());
        histories.insert(
            3,
            parse_history("1\t0/4000000\tx\n2\t0/9000000\ty\n").unwrap(),
        );
        let mut segments: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        segments.insert(2, [3].into_iter().collect());
        segments.insert(4, [20].into_iter().collect());
        let problems = check_timelines(&histories, &segments, 16 << 20);
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter().any(|t| t.contains("before timeline 2 began")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("00000004.history is not archived")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("disagree")), "{text:?}");
    }
}
