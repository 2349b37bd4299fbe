#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! A streaming tar parser (ustar, pax and GNU long names) for base backups.

use std::collections::BTreeMap;

use backup_core::Result;

use super::tar_error;

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
        let (first, rest) = field.split_first()?;
        let mut v: u64 = u64::from(first & 0x7f);
        for b in rest {
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
    String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
}

/// Bytes `range` of a 512-byte header block.
fn field(block: &[u8], range: std::ops::Range<usize>) -> &[u8] {
    block.get(range).unwrap_or_default()
}

/// Splits off the first `n` bytes of `data` (all of it when shorter).
fn split(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at_checked(n).unwrap_or((data, &[]))
}

/// The zero padding after `size` bytes of member data.
fn padding_of(size: u64) -> u64 {
    match size.checked_rem(512) {
        Some(0) | None => 0,
        Some(r) => 512u64.saturating_sub(r),
    }
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
                    let take = 512usize.saturating_sub(self.block.len()).min(data.len());
                    let (head, rest) = split(data, take);
                    self.block.extend_from_slice(head);
                    data = rest;
                    self.offset = self.offset.saturating_add(take as u64);
                    if self.block.len() == 512 {
                        let block = std::mem::take(&mut self.block);
                        self.header(&block, visitor)?;
                        self.block = block;
                        self.block.clear();
                    }
                }
                TarState::Data | TarState::Meta => {
                    let take = (self.remaining.min(data.len() as u64)) as usize;
                    let (chunk, rest) = split(data, take);
                    if self.state == TarState::Data {
                        let entry = self
                            .entry
                            .as_ref()
                            .ok_or_else(|| tar_error("internal: member data without a member"))?;
                        visitor.data(entry, chunk)?;
                    } else {
                        if self.meta.len().saturating_add(take) > 16 * 1024 * 1024 {
                            return Err(tar_error(format!(
                                "an extended header larger than 16 MiB at byte {}",
                                self.offset
                            )));
                        }
                        self.meta.extend_from_slice(chunk);
                    }
                    data = rest;
                    self.offset = self.offset.saturating_add(take as u64);
                    self.remaining = self.remaining.saturating_sub(take as u64);
                    if self.remaining == 0 {
                        self.end_member(visitor)?;
                    }
                }
                TarState::Padding => {
                    let take = (self.padding.min(data.len() as u64)) as usize;
                    data = split(data, take).1;
                    self.offset = self.offset.saturating_add(take as u64);
                    self.padding = self.padding.saturating_sub(take as u64);
                    if self.padding == 0 {
                        self.state = TarState::Header;
                    }
                }
                TarState::End => {
                    if let Some(p) = data.iter().position(|b| *b != 0) {
                        return Err(tar_error(format!(
                            "data after the end of the archive at byte {}",
                            self.offset.saturating_add(p as u64)
                        )));
                    }
                    self.offset = self.offset.saturating_add(data.len() as u64);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    fn end_member(&mut self, visitor: &mut dyn TarVisitor) -> Result<()> {
        if self.state == TarState::Data {
            let entry = self
                .entry
                .take()
                .ok_or_else(|| tar_error("internal: member end without a member"))?;
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
            let len: usize = std::str::from_utf8(split(data, sp).0)
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|l| *l > sp && *l <= data.len())
                .ok_or_else(|| tar_error("malformed pax header record length"))?;
            let (whole, rest) = split(data, len);
            // `sp < len`: the record is what follows the space.
            let record = whole.get(sp.saturating_add(1)..).unwrap_or_default();
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|b| *b == b'=') {
                let (k, v) = split(record, eq);
                let k = String::from_utf8_lossy(k).into_owned();
                let v = String::from_utf8_lossy(v.get(1..).unwrap_or_default()).into_owned();
                self.pax.insert(k, v);
            }
            data = rest;
        }
        Ok(())
    }

    fn header(&mut self, block: &[u8], visitor: &mut dyn TarVisitor) -> Result<()> {
        let at = self.offset.saturating_sub(512);
        if block.iter().all(|b| *b == 0) {
            self.zero_blocks = self.zero_blocks.saturating_add(1);
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
        let stored = octal(field(block, 148..156))
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
        let size = octal(field(block, 124..136))
            .ok_or_else(|| tar_error(format!("unreadable member size at byte {at}")))?;
        let typeflag = field(block, 156..157).first().copied().unwrap_or(0);
        self.padding = padding_of(size);
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
        let ustar = field(block, 257..263) == b"ustar\0";
        let mut name = cstr(field(block, 0..100));
        if ustar {
            let prefix = cstr(field(block, 345..500));
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
        let mut link = cstr(field(block, 157..257));
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
        self.padding = padding_of(size);
        let mode = octal(field(block, 100..108)).unwrap_or(0o600) as u32 & 0o7777;
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
        self.members = self.members.saturating_add(1);
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
