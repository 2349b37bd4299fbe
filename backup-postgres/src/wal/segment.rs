#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! WAL file names, LSNs, segment headers, history files and the format readers.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use backup_core::{Contents, Error, FormatReader, Result, SourceFacts};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{LONG_HEADER_SIZE, SEGMENT_FORMAT, SHORT_HEADER_CHECKED, TEXT_FORMAT, XLP_LONG_HEADER};

// ---------------------------------------------------------------------------------
// LSNs and file names
// ---------------------------------------------------------------------------------

/// A WAL location (`XLogRecPtr`), written `X/Y` like PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The number of the segment holding this location.
    pub fn segno(self, segment_size: u64) -> u64 {
        // Segment sizes are checked (a power of two, 1 MiB to 1 GiB) where they are read.
        self.0.checked_div(segment_size).unwrap_or(0)
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
        u64::from(self.log)
            .saturating_mul(0x1_0000_0000u64.checked_div(segment_size).unwrap_or(0))
            .saturating_add(u64::from(self.seg))
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
    let per_log = 0x1_0000_0000u64.checked_div(segment_size).unwrap_or(0);
    format!(
        "{timeline:08X}{:08X}{:08X}",
        segno.checked_div(per_log).unwrap_or(0),
        segno.checked_rem(per_log).unwrap_or(0)
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

/// `N` bytes of `page` at `o` (zeros where `page` is shorter).
fn le_bytes<const N: usize>(page: &[u8], o: usize) -> [u8; N] {
    page.get(o..o.saturating_add(N))
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; N])
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
        // The length is checked above: every field is inside `page`.
        let u16_at = |o: usize| u16::from_le_bytes(le_bytes(page, o));
        let u32_at = |o: usize| u32::from_le_bytes(le_bytes(page, o));
        let u64_at = |o: usize| u64::from_le_bytes(le_bytes(page, o));
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

    /// A scanner fed everything `input` holds, and the number of bytes read.
    pub fn scan(input: &mut dyn std::io::Read) -> std::io::Result<(Self, u64)> {
        let mut scanner = SegmentScanner::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            scanner.feed(buf.get(..n).unwrap_or_default());
            bytes = bytes.saturating_add(n as u64);
        }
        Ok((scanner, bytes))
    }

    /// Feeds the next bytes.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.error.is_some() {
                self.pos = self.pos.saturating_add(data.len() as u64);
                return;
            }
            let Some(h) = self.header else {
                let take = LONG_HEADER_SIZE
                    .saturating_sub(self.first.len())
                    .min(data.len());
                let (head, rest) = data.split_at_checked(take).unwrap_or((data, &[]));
                self.first.extend_from_slice(head);
                self.pos = self.pos.saturating_add(take as u64);
                data = rest;
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
            // The header's block size is checked (a power of two, 1 KiB to 64 KiB).
            let in_page = self.pos.checked_rem(bs).unwrap_or(0);
            if in_page < SHORT_HEADER_CHECKED as u64 {
                let take = ((SHORT_HEADER_CHECKED as u64).saturating_sub(in_page) as usize)
                    .min(data.len());
                let (head, rest) = data.split_at_checked(take).unwrap_or((data, &[]));
                self.page_head.extend_from_slice(head);
                self.pos = self.pos.saturating_add(take as u64);
                data = rest;
                if self.page_head.len() == SHORT_HEADER_CHECKED {
                    let page = self.pos.saturating_sub(1).checked_div(bs).unwrap_or(0);
                    let magic = u16::from_le_bytes(le_bytes(&self.page_head, 0));
                    let addr = u64::from_le_bytes(le_bytes(&self.page_head, 8));
                    let expected = h.page_address.0.wrapping_add(page.wrapping_mul(bs));
                    if magic == h.magic && addr == expected {
                        self.valid_pages = self.valid_pages.saturating_add(1);
                    }
                    self.page_head.clear();
                }
            } else {
                let skip = (bs.saturating_sub(in_page) as usize).min(data.len());
                self.pos = self.pos.saturating_add(skip as u64);
                data = data.get(skip..).unwrap_or_default();
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
pub(super) fn check_header_matches_name(
    file: &WalFile,
    h: &SegmentHeader,
) -> std::result::Result<(), String> {
    let size = u64::from(h.segment_size);
    let expected = Lsn(file.segno(size).saturating_mul(size));
    if h.page_address != expected {
        return Err(format!(
            "its header says it starts at {}, but its name {} means {expected} (renamed or misplaced segment)",
            h.page_address, file.name
        ));
    }
    Ok(())
}

/// The facts of a segment as they appear in manifests.
pub(super) fn segment_facts_json(f: &SegmentFacts) -> SourceFacts {
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

pub(super) fn segment_contents(f: &SegmentFacts) -> Contents {
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
    for (no, line) in (1usize..).zip(text.lines()) {
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
            .map_err(|_| format!("line {no}: `{tli}` is not a timeline number"))?;
        let switchpoint: Lsn = lsn
            .parse()
            .map_err(|_| format!("line {no}: `{lsn}` is not a WAL location"))?;
        if let Some(prev) = out.last() {
            if timeline <= prev.timeline || switchpoint < prev.switchpoint {
                return Err(format!(
                    "line {no}: timelines and switch points must increase"
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

pub(super) fn text_facts(file: &WalFile, text: &str) -> std::result::Result<SourceFacts, String> {
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
        let (scanner, _) =
            SegmentScanner::scan(input).map_err(|e| Error::from_io(e, "reading a WAL segment"))?;
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
pub(super) const MAX_TEXT_FILE: u64 = 16 * 1024 * 1024;

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

pub(super) fn text_contents(text: &[u8]) -> Contents {
    let mut c = Contents::default();
    let lines = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    c.add("text", "lines", lines as u64);
    c
}
