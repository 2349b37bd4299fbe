#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! A streaming reader of the pg_dump custom archive (`pg_dump -Fc`), like
//! `pg_restore --list` plus row counts.
//!
//! Layout (archive versions 1.10 to 1.16; PostgreSQL 15 writes 1.14), after
//! `pg_backup_archiver.c` (`ReadHead`, `ReadToc`) and `pg_backup_custom.c`:
//!
//! ```text
//! header   "PGDMP" major minor rev int_size off_size format
//!          compression (int before 1.15, one algorithm byte from 1.15)
//!          created: 7 ints (sec min hour mday mon year isdst)
//!          database name, server version, pg_dump version   (strings)
//! toc      count, then per entry: dump id, had dumper, table oid, oid, tag, desc,
//!          section, definition, drop statement, copy statement, namespace,
//!          tablespace, table access method (1.14+), relkind (1.16+), owner,
//!          "with oids", dependency ids (strings, ended by a null string),
//!          data offset (flag byte 1 not set / 2 set / 3 no data, then off_size bytes)
//! data     blocks until the end: type byte (1 data, 3 large objects), dump id, then
//!          data:  chunks (int length, bytes) ended by a zero length
//!          blobs: per large object its oid and its chunks, ended by oid 0
//! ```
//!
//! An int is a sign byte followed by `int_size` little-endian bytes; a string is an int
//! length (negative: null) followed by that many bytes.
//!
//! With `-Z0` the chunks are the raw COPY text of each table: one line per row (COPY
//! escapes newlines inside values), ended by a `\.` line that is not a row. The reader
//! counts rows in constant memory (it keeps one small record per TOC entry, as
//! `pg_restore` does, never the data) and fails with the byte offset on a malformed or
//! truncated archive, including one cut exactly between two data blocks (every TOC
//! entry that announces data must have its block).

use std::collections::HashMap;
use std::io::Read;

use backup_core::{Contents, Error, FormatReader, Result};

/// The format name recorded in manifests for pg_dump custom archives.
pub const FORMAT: &str = "pgdump";

const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const K_OFFSET_NO_DATA: u8 = 3;
/// Strings we keep (names, versions) larger than this are a corrupt archive.
const MAX_KEPT_STRING: i64 = 1 << 20;
/// TOC entry counts beyond this are a corrupt archive.
const MAX_TOC_ENTRIES: i64 = 100_000_000;

/// The [`FormatReader`] of pg_dump custom archives (format `pgdump`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PgDumpFormat;

impl FormatReader for PgDumpFormat {
    fn format(&self) -> &str {
        FORMAT
    }

    fn read_contents(&self, input: &mut dyn Read) -> Result<Contents> {
        read_archive(input)
    }
}

/// Reads a whole custom archive and summarises it: facts (`archive_version`,
/// `server_version`, `pg_dump_version`, `database`, `created_at`, `compression`,
/// `toc_entries`), `counts["tables"]["schema.table"]` = rows,
/// `counts["objects"][TOC kind]` = entries, `counts["large_objects"]` = `count` and
/// `bytes`.
pub fn read_archive(input: &mut dyn Read) -> Result<Contents> {
    let mut r = Input::new(input);
    let header = read_header(&mut r)?;
    let mut contents = Contents::default();
    contents.fact(
        "archive_version",
        format!(
            "{}.{}-{}",
            header.version.0, header.version.1, header.version.2
        ),
    );
    contents.fact("format", "custom");
    contents.fact("compression", header.compression.clone());
    if let Some(c) = &header.created {
        contents.fact("created_at", c.clone());
    }
    if let Some(d) = &header.database {
        contents.fact("database", d.clone());
    }
    if let Some(v) = &header.server_version {
        contents.fact("server_version", v.clone());
    }
    if let Some(v) = &header.pg_dump_version {
        contents.fact("pg_dump_version", v.clone());
    }

    let entries = read_toc(&mut r, &header, &mut contents)?;
    contents.fact("toc_entries", entries.len().to_string());
    read_data(&mut r, &header, entries, &mut contents)?;
    Ok(contents)
}

/// The archive header.
struct Header {
    version: (u8, u8, u8),
    int_size: u8,
    off_size: u8,
    compression: String,
    compressed: bool,
    created: Option<String>,
    database: Option<String>,
    server_version: Option<String>,
    pg_dump_version: Option<String>,
}

impl Header {
    fn at_least(&self, major: u8, minor: u8) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }
}

/// What the data section needs to know about one TOC entry.
struct Entry {
    /// `schema.table` for table data written as COPY text, else the entry's desc.
    name: String,
    desc: String,
    copy: bool,
    /// The column list of the entry's COPY statement (`(a, "B")`), if it has one.
    columns: Option<String>,
    has_data: bool,
    seen: bool,
}

/// A buffered reader that knows its byte offset (for error messages).
struct Input<'a> {
    inner: &'a mut dyn Read,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Bytes consumed before `buf[0]`.
    base: u64,
}

impl<'a> Input<'a> {
    fn new(inner: &'a mut dyn Read) -> Self {
        Input {
            inner,
            buf: vec![0u8; 256 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            base: 0,
        }
    }

    fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// Refills the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool> {
        if self.pos < self.len {
            return Ok(true);
        }
        self.base = self.base.saturating_add(self.len as u64);
        self.pos = 0;
        self.len = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.len = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e, "reading the pg_dump archive")),
            }
        }
    }

    fn truncated(&self, what: &str) -> Error {
        invalid(format!(
            "truncated archive: the stream ends at byte {} while reading {what}",
            self.offset()
        ))
    }

    fn byte(&mut self, what: &str) -> Result<u8> {
        match self.byte_or_eof()? {
            Some(b) => Ok(b),
            None => Err(self.truncated(what)),
        }
    }

    /// The next byte, or `None` at a clean end of stream.
    fn byte_or_eof(&mut self) -> Result<Option<u8>> {
        if !self.fill()? {
            return Ok(None);
        }
        // `fill` left at least one unread byte.
        let b = self.buf.get(self.pos).copied();
        self.pos = self.pos.saturating_add(1);
        Ok(b)
    }

    /// Passes the next `n` bytes to `f` in slices.
    fn take(&mut self, mut n: u64, what: &str, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        while n > 0 {
            if !self.fill()? {
                return Err(self.truncated(what));
            }
            let avail = self.len.saturating_sub(self.pos) as u64;
            let k = avail.min(n) as usize;
            let end = self.pos.saturating_add(k);
            f(self.buf.get(self.pos..end).unwrap_or_default());
            self.pos = end;
            n = n.saturating_sub(k as u64);
        }
        Ok(())
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::Format {
        format: FORMAT.to_string(),
        reason: reason.into(),
    }
}

struct Ints {
    int_size: u8,
    signed: bool,
}

fn read_int_with(r: &mut Input, ints: &Ints, what: &str) -> Result<i64> {
    let negative = if ints.signed {
        r.byte(what)? != 0
    } else {
        false
    };
    let mut v: u64 = 0;
    for i in 0..ints.int_size {
        let b = r.byte(what)? as u64;
        if i < 8 {
            v |= b << (8u32.saturating_mul(i as u32));
        } else if b != 0 {
            return Err(invalid(format!(
                "integer too large at byte {} while reading {what}",
                r.offset()
            )));
        }
    }
    let v = i64::try_from(v).map_err(|_| {
        invalid(format!(
            "integer too large at byte {} while reading {what}",
            r.offset()
        ))
    })?;
    // `v` fits in i64 (checked above), so its negation does too.
    Ok(if negative { v.saturating_neg() } else { v })
}

fn read_header(r: &mut Input) -> Result<Header> {
    let mut magic = [0u8; 5];
    for m in magic.iter_mut() {
        *m = r.byte("the archive header")?;
    }
    if &magic != b"PGDMP" {
        return Err(invalid(
            "not a pg_dump custom archive: the stream does not start with PGDMP",
        ));
    }
    let major = r.byte("the archive version")?;
    let minor = r.byte("the archive version")?;
    let rev = if (major, minor) > (1, 0) {
        r.byte("the archive version")?
    } else {
        0
    };
    if major != 1 || !(10..=16).contains(&minor) {
        return Err(invalid(format!(
            "archive version {major}.{minor}-{rev} is not supported (this reader knows 1.10 to 1.16, written by pg_dump 9.0 to 17)"
        )));
    }
    let int_size = r.byte("the integer size")?;
    if int_size == 0 || int_size > 32 {
        return Err(invalid(format!("implausible integer size {int_size}")));
    }
    let off_size = r.byte("the offset size")?;
    if off_size == 0 || off_size > 32 {
        return Err(invalid(format!("implausible offset size {off_size}")));
    }
    let format = r.byte("the archive format")?;
    if format != 1 {
        let name = match format {
            0 => "unknown",
            2 => "tar",
            3 => "null",
            4 => "directory",
            5 => "plain text",
            _ => "unknown",
        };
        return Err(invalid(format!(
            "archive format {format} ({name}) is not the custom format (pg_dump -Fc)"
        )));
    }
    let mut header = Header {
        version: (major, minor, rev),
        int_size,
        off_size,
        compression: String::new(),
        compressed: false,
        created: None,
        database: None,
        server_version: None,
        pg_dump_version: None,
    };
    let ints = Ints {
        int_size,
        signed: true,
    };
    if header.at_least(1, 15) {
        let algo = r.byte("the compression algorithm")?;
        header.compression = match algo {
            0 => "none".to_string(),
            1 => "gzip".to_string(),
            2 => "lz4".to_string(),
            3 => "zstd".to_string(),
            other => format!("unknown ({other})"),
        };
        header.compressed = algo != 0;
    } else {
        let level = read_int_with(r, &ints, "the compression level")?;
        header.compression = if level == 0 {
            "none".to_string()
        } else {
            format!("gzip level {level}")
        };
        header.compressed = level != 0;
    }
    let mut tm = [0i64; 7];
    for v in tm.iter_mut() {
        *v = read_int_with(r, &ints, "the creation time")?;
    }
    // sec min hour mday mon year isdst, struct tm conventions.
    // From the archive: a year or month beyond i64 leaves the time unknown.
    header.created = tm[5]
        .checked_add(1900)
        .zip(tm[4].checked_add(1))
        .map(|(year, month)| {
            format!(
                "{year:04}-{month:02}-{:02} {:02}:{:02}:{:02}",
                tm[3], tm[2], tm[1], tm[0]
            )
        });
    header.database = read_kept_str(r, &ints, "the database name")?;
    header.server_version = read_kept_str(r, &ints, "the server version")?;
    header.pg_dump_version = read_kept_str(r, &ints, "the pg_dump version")?;
    Ok(header)
}

fn read_kept_str(r: &mut Input, ints: &Ints, what: &str) -> Result<Option<String>> {
    let at = r.offset();
    let len = read_int_with(r, ints, what)?;
    if len < 0 {
        return Ok(None);
    }
    if len > MAX_KEPT_STRING {
        return Err(invalid(format!(
            "implausible length {len} at byte {at} for {what} (corrupt archive)"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    r.take(len as u64, what, &mut |s| bytes.extend_from_slice(s))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Skips a string; returns its length (-1 for null).
fn skip_str(r: &mut Input, ints: &Ints, what: &str) -> Result<i64> {
    let len = read_int_with(r, ints, what)?;
    if len > 0 {
        r.take(len as u64, what, &mut |_| {})?;
    }
    Ok(len)
}

fn read_toc(r: &mut Input, h: &Header, contents: &mut Contents) -> Result<HashMap<i64, Entry>> {
    let ints = Ints {
        int_size: h.int_size,
        signed: true,
    };
    let at = r.offset();
    let count = read_int_with(r, &ints, "the TOC entry count")?;
    if !(0..=MAX_TOC_ENTRIES).contains(&count) {
        return Err(invalid(format!(
            "implausible TOC entry count {count} at byte {at} (corrupt archive)"
        )));
    }
    let mut entries = HashMap::with_capacity(count.min(1 << 16) as usize);
    for i in 0..count {
        let what = format!("TOC entry {} of {count}", i.saturating_add(1));
        let at = r.offset();
        let dump_id = read_int_with(r, &ints, &what)?;
        if dump_id <= 0 {
            return Err(invalid(format!(
                "{what}: entry id {dump_id} at byte {at} is out of range (corrupt TOC)"
            )));
        }
        let _had_dumper = read_int_with(r, &ints, &what)?;
        skip_str(r, &ints, &what)?; // table oid (1.8+)
        skip_str(r, &ints, &what)?; // oid
        let tag = read_kept_str(r, &ints, &what)?.unwrap_or_default();
        let desc = read_kept_str(r, &ints, &what)?.unwrap_or_default();
        if h.at_least(1, 11) {
            read_int_with(r, &ints, &what)?; // section
        }
        // The database's own entries (its settings, comment and owner) are kept: a
        // restore that creates the database applies them, as `pg_restore --create` does.
        // The ENCODING entry (`SET client_encoding = 'UTF8';`) names the encoding of
        // every COPY row, which level-3 verification reads the restored rows in.
        let kept_definition = match desc.as_str() {
            "DATABASE PROPERTIES" => Some("database_settings_sql"),
            "COMMENT" if tag.starts_with("DATABASE ") => Some("database_comment_sql"),
            "ENCODING" => Some("encoding"),
            _ => None,
        };
        match kept_definition {
            Some("encoding") => {
                let definition = read_kept_str(r, &ints, &what)?.unwrap_or_default();
                if let Some(enc) = definition.split('\'').nth(1) {
                    contents.fact("encoding", enc);
                }
            }
            Some(fact) => {
                let definition = read_kept_str(r, &ints, &what)?.unwrap_or_default();
                contents.fact(fact, definition);
            }
            None => {
                skip_str(r, &ints, &what)?; // definition
            }
        }
        skip_str(r, &ints, &what)?; // drop statement
                                    // The copy statement (1.3+), kept for table data: its column list is the one
                                    // level-3 verification reads the restored table with.
        let copy_stmt = if desc == "TABLE DATA" {
            read_kept_str(r, &ints, &what)?.filter(|s| !s.is_empty())
        } else {
            skip_str(r, &ints, &what)?;
            None
        };
        let namespace = read_kept_str(r, &ints, &what)?; // 1.6+
        skip_str(r, &ints, &what)?; // tablespace (1.10+)
        if h.at_least(1, 14) {
            skip_str(r, &ints, &what)?; // table access method
        }
        if h.at_least(1, 16) {
            read_int_with(r, &ints, &what)?; // relkind
        }
        if desc == "DATABASE" {
            if let Some(owner) = read_kept_str(r, &ints, &what)?.filter(|o| !o.is_empty()) {
                contents.fact("database_owner", owner);
            }
        } else {
            skip_str(r, &ints, &what)?; // owner
        }
        skip_str(r, &ints, &what)?; // "with oids" (1.9+)
        loop {
            // Dependencies: strings ended by a null one.
            if skip_str(r, &ints, &what)? < 0 {
                break;
            }
        }
        let flag_at = r.offset();
        let flag = r.byte(&what)?;
        if !(1..=3).contains(&flag) {
            return Err(invalid(format!(
                "{what}: unexpected data offset flag {flag} at byte {flag_at} (corrupt TOC)"
            )));
        }
        r.take(h.off_size as u64, &what, &mut |_| {})?;

        contents.add("objects", &desc, 1);
        let copy = copy_stmt.is_some();
        let columns = copy_stmt.as_deref().and_then(copy_column_list);
        let name = match (&namespace, copy) {
            (Some(ns), true) if !ns.is_empty() => format!("{ns}.{tag}"),
            (_, true) => tag.clone(),
            _ => desc.clone(),
        };
        if copy {
            // A table with no rows still has a count.
            contents.add("tables", &name, 0);
        }
        let entry = Entry {
            name,
            desc,
            copy,
            columns,
            has_data: flag != K_OFFSET_NO_DATA,
            seen: false,
        };
        if entries.insert(dump_id, entry).is_some() {
            return Err(invalid(format!(
                "{what}: entry id {dump_id} appears twice (corrupt TOC)"
            )));
        }
    }
    Ok(entries)
}

/// Counts the rows of one COPY data stream: newlines, minus the `\.` end line and the
/// empty lines pg_dump writes after it.
#[derive(Default)]
struct RowCounter {
    newlines: u64,
    len: u64,
    tail: [u8; 8],
    tail_len: usize,
}

impl RowCounter {
    fn feed(&mut self, s: &[u8]) {
        self.newlines = self
            .newlines
            .saturating_add(memchr::memchr_iter(b'\n', s).count() as u64);
        self.len = self.len.saturating_add(s.len() as u64);
        if let Some(last) = s.last_chunk::<8>() {
            self.tail = *last;
            self.tail_len = 8;
        } else {
            for &b in s {
                if self.tail_len == 8 {
                    self.tail.copy_within(1.., 0);
                    if let Some(t) = self.tail.last_mut() {
                        *t = b;
                    }
                } else {
                    if let Some(t) = self.tail.get_mut(self.tail_len) {
                        *t = b;
                    }
                    self.tail_len = self.tail_len.saturating_add(1);
                }
            }
        }
    }

    fn rows(&self) -> u64 {
        let tail = self.tail.get(..self.tail_len).unwrap_or_default();
        match copy_terminator(tail, self.len) {
            Some((k, _)) => self.newlines.saturating_sub(k as u64),
            None => self.newlines,
        }
    }
}

/// Whether `tail` (the last bytes of a COPY data block of `total` bytes) ends with
/// pg_dump's `\.` line: then the number of trailing newlines and the length of `tail`
/// before the `\.`.
fn copy_terminator(tail: &[u8], total: u64) -> Option<(usize, usize)> {
    let k = tail.iter().rev().take_while(|&&b| b == b'\n').count();
    let rest = tail.get(..tail.len().saturating_sub(k))?;
    let line_start = rest
        .len()
        .checked_sub(3)
        .and_then(|i| rest.get(i))
        .is_some_and(|b| *b == b'\n');
    let terminated =
        k > 0 && rest.ends_with(b"\\.") && (total.saturating_sub(k as u64) == 2 || line_start);
    terminated.then(|| (k, rest.len().saturating_sub(2)))
}

/// The BLAKE3 digest of one COPY data stream without its `\.` end line and the empty
/// lines pg_dump writes after it: the bytes `COPY … TO STDOUT` of the same rows returns.
///
/// BLAKE3, not SHA-256: this digest covers every row of every table, a second pass over
/// the plaintext beside the artifact's own SHA-256, and BLAKE3 (a cryptographic hash
/// too) takes about half SHA-256's CPU here (`bench/postgres/PROFILE.md`) — but only
/// when given many of its 1 KiB chunks at once (its SIMD lanes hash them side by side),
/// so the rows, which pg_dump writes one per archive chunk, are gathered into
/// [`DIGEST_BATCH`] bytes first. The last [`DIGEST_HOLD`] bytes are always held back
/// until the end decides whether they are the terminator.
#[derive(Default)]
struct CopyDigest {
    hasher: blake3::Hasher,
    pending: Vec<u8>,
    len: u64,
}

/// Enough for `\n\\.\n\n\n` with room to spare.
const DIGEST_HOLD: usize = 16;
/// How many bytes BLAKE3 is given at once.
const DIGEST_BATCH: usize = 64 * 1024;

impl CopyDigest {
    fn feed(&mut self, s: &[u8]) {
        self.len = self.len.saturating_add(s.len() as u64);
        self.pending.extend_from_slice(s);
        if self.pending.len() >= DIGEST_BATCH + DIGEST_HOLD {
            let now = self.pending.len().saturating_sub(DIGEST_HOLD);
            self.hasher
                .update(self.pending.get(..now).unwrap_or_default());
            self.pending.drain(..now);
        }
    }

    fn finish(mut self) -> String {
        let held = &self.pending[..];
        let kept = match copy_terminator(held, self.len) {
            Some((_, before)) => held.get(..before).unwrap_or_default(),
            None => held,
        };
        self.hasher.update(kept);
        self.hasher.finalize().to_hex().to_string()
    }
}

/// The column list of a pg_dump COPY statement (`COPY public.t (a, "B") FROM stdin;`
/// gives `(a, "B")`; a table without columns gives the empty string), or `None` if the
/// statement is not of that shape.
fn copy_column_list(stmt: &str) -> Option<String> {
    let rest = stmt.strip_prefix("COPY ")?;
    // The qualified table name: identifiers joined by dots.
    let mut rest = rest;
    loop {
        let (_, after) = take_ident(rest)?;
        rest = after;
        match rest.strip_prefix('.') {
            Some(after) => rest = after,
            None => break,
        }
    }
    let rest = rest.strip_prefix(' ')?;
    let (list, tail) = if rest.starts_with('(') {
        let end = column_list_end(rest)?;
        (&rest[..end], &rest[end..])
    } else {
        ("", rest)
    };
    let tail = tail.trim_start_matches(' ');
    tail.starts_with("FROM stdin").then(|| list.to_string())
}

/// The byte length of the parenthesised column list at the start of `s`.
fn column_list_end(s: &str) -> Option<usize> {
    let mut rest = s.strip_prefix('(')?;
    loop {
        let (_, after) = take_ident(rest)?;
        rest = after;
        if let Some(after) = rest.strip_prefix(", ") {
            rest = after;
        } else {
            let after = rest.strip_prefix(')')?;
            return Some(s.len().saturating_sub(after.len()));
        }
    }
}

/// Splits one SQL identifier off the front of `s`: `"quoted ""x"""` (unquoted to
/// `quoted "x"`) or a bare word. Returns the identifier and what follows it.
fn take_ident(s: &str) -> Option<(String, &str)> {
    if let Some(mut rest) = s.strip_prefix('"') {
        let mut name = String::new();
        loop {
            let q = rest.find('"')?;
            name.push_str(&rest[..q]);
            rest = &rest[q.saturating_add(1)..];
            match rest.strip_prefix('"') {
                Some(after) => {
                    name.push('"');
                    rest = after;
                }
                None => break,
            }
        }
        (!name.is_empty()).then_some((name, rest))
    } else {
        let end = s
            .find(|c: char| c.is_whitespace() || matches!(c, '.' | ',' | '(' | ')' | '"'))
            .unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_string(), &s[end..]))
    }
}

/// The column names of a column list as [`copy_column_list`] returns it (quotes
/// removed), or `None` if it is not a well-formed list.
pub fn parse_column_list(list: &str) -> Option<Vec<String>> {
    if list.is_empty() {
        return Some(Vec::new());
    }
    let mut rest = list.strip_prefix('(')?;
    let mut names = Vec::new();
    loop {
        let (name, after) = take_ident(rest)?;
        names.push(name);
        rest = after;
        if let Some(after) = rest.strip_prefix(", ") {
            rest = after;
        } else {
            return (rest == ")").then_some(names);
        }
    }
}

/// The fact holding the BLAKE3 digest of table `name`'s COPY rows.
pub fn copy_blake3_fact(name: &str) -> String {
    format!("copy_blake3.{name}")
}

/// The fact holding the SHA-256 of table `name`'s COPY rows, as backups made before
/// 2026-12-07 recorded it (level 3 still compares them).
pub fn copy_sha256_fact(name: &str) -> String {
    format!("copy_sha256.{name}")
}

/// The fact holding table `name`'s COPY column list.
pub fn copy_columns_fact(name: &str) -> String {
    format!("copy_columns.{name}")
}

fn read_chunks(r: &mut Input, ints: &Ints, what: &str, f: &mut dyn FnMut(&[u8])) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let at = r.offset();
        let len = read_int_with(r, ints, what)?;
        if len == 0 {
            return Ok(total);
        }
        if len < 0 {
            return Err(invalid(format!(
                "negative chunk length {len} at byte {at} in {what} (corrupt data)"
            )));
        }
        r.take(len as u64, what, f)?;
        total = total.saturating_add(len as u64);
    }
}

fn read_data(
    r: &mut Input,
    h: &Header,
    mut entries: HashMap<i64, Entry>,
    contents: &mut Contents,
) -> Result<()> {
    let ints = Ints {
        int_size: h.int_size,
        signed: true,
    };
    let mut blobs = 0u64;
    let mut blob_bytes = 0u64;
    loop {
        let at = r.offset();
        let Some(block) = r.byte_or_eof()? else {
            break;
        };
        if block != BLK_DATA && block != BLK_BLOBS {
            return Err(invalid(format!(
                "unknown data block type {block} at byte {at} (corrupt archive or trailing bytes)"
            )));
        }
        let id = read_int_with(r, &ints, "a data block header")?;
        let entry = entries.get_mut(&id).ok_or_else(|| {
            invalid(format!(
                "data block at byte {at} belongs to TOC entry {id}, which the TOC does not list (corrupt archive)"
            ))
        })?;
        if entry.seen {
            return Err(invalid(format!(
                "data block at byte {at}: TOC entry {id} ({}) has two data blocks (corrupt archive)",
                entry.name
            )));
        }
        entry.seen = true;
        let what = format!("the data of {} {}", entry.desc, entry.name);
        match block {
            BLK_DATA => {
                if entry.copy && !h.compressed {
                    let mut counter = RowCounter::default();
                    let mut digest = CopyDigest::default();
                    read_chunks(r, &ints, &what, &mut |s| {
                        counter.feed(s);
                        digest.feed(s);
                    })?;
                    contents.add("tables", &entry.name, counter.rows());
                    // Only with a column list the verifier can read the rows back in.
                    if let Some(columns) = &entry.columns {
                        contents.fact(&copy_blake3_fact(&entry.name), digest.finish());
                        contents.fact(&copy_columns_fact(&entry.name), columns.clone());
                    }
                } else if entry.copy {
                    return Err(invalid(format!(
                        "the archive's data is compressed ({}); dbseal counts rows in archives written with pg_dump -Z0",
                        h.compression
                    )));
                } else {
                    read_chunks(r, &ints, &what, &mut |_| {})?;
                }
            }
            BLK_BLOBS => loop {
                let oid = read_int_with(r, &ints, &what)?;
                if oid == 0 {
                    break;
                }
                blobs = blobs.saturating_add(1);
                blob_bytes = blob_bytes.saturating_add(read_chunks(r, &ints, &what, &mut |_| {})?);
            },
            other => {
                return Err(invalid(format!(
                    "unknown data block type {other} at byte {at} (corrupt archive)"
                )))
            }
        }
    }
    if blobs > 0 || entries.values().any(|e| e.desc == "BLOBS") {
        contents.add("large_objects", "count", blobs);
        contents.add("large_objects", "bytes", blob_bytes);
    }
    let mut missing: Vec<&Entry> = entries.values().filter(|e| e.has_data && !e.seen).collect();
    if !missing.is_empty() {
        missing.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<String> = missing
            .iter()
            .take(5)
            .map(|e| format!("{} {}", e.desc, e.name))
            .collect();
        return Err(invalid(format!(
            "truncated archive: it ends at byte {} before the data of {} TOC entries ({}{})",
            r.offset(),
            missing.len(),
            names.join(", "),
            if missing.len() > 5 { ", …" } else { "" }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_creation_year_beyond_i64_is_an_unknown_time_not_an_overflow() {
        // Archive 1.14, 8-byte integers: compression level 0, then a creation time whose
        // year is i64::MAX (adding 1900 overflowed).
        let int = |v: i64| {
            let mut b = vec![u8::from(v < 0)];
            b.extend_from_slice(&v.unsigned_abs().to_le_bytes());
            b
        };
        let mut a = b"PGDMP".to_vec();
        a.extend_from_slice(&[1, 14, 0, 8, 8, 1]);
        a.extend(int(0));
        for v in [0, 0, 0, 1, 0, i64::MAX, 0] {
            a.extend(int(v));
        }
        let mut bytes = &a[..];
        let mut r = Input::new(&mut bytes);
        let header = read_header(&mut r).map(|h| h.created);
        // The strings that follow are missing: a clean error, or no time; never a panic.
        assert!(matches!(header, Err(_) | Ok(None)), "{header:?}");
    }

    use super::*;

    #[test]
    fn row_counter_handles_terminator_and_tails() {
        let mut c = RowCounter::default();
        c.feed(b"1\tx\n");
        c.feed(b"2\ty\n");
        c.feed(b"\\.\n\n\n");
        assert_eq!(c.rows(), 2);
        let mut c = RowCounter::default();
        c.feed(b"\\.\n\n\n");
        assert_eq!(c.rows(), 0);
        // A row ending in an escaped backslash-dot is a row.
        let mut c = RowCounter::default();
        c.feed(b"a\\\\.\n");
        assert_eq!(c.rows(), 1);
        // No terminator (old archives): every line is a row, even an empty one.
        let mut c = RowCounter::default();
        c.feed(b"\n\n");
        assert_eq!(c.rows(), 2);
        // Byte-by-byte feeding gives the same answer.
        let mut c = RowCounter::default();
        for b in b"x\ny\n\\.\n\n\n" {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!(c.rows(), 2);
    }

    #[test]
    fn copy_digest_hashes_the_rows_without_the_terminator_however_fed() {
        let rows = b"1\tx\n2\t\\.\n";
        let plain = blake3::hash(rows).to_hex().to_string();
        for data in [&b"1\tx\n2\t\\.\n\\.\n\n\n"[..], &rows[..]] {
            let mut whole = CopyDigest::default();
            whole.feed(data);
            assert_eq!(whole.finish(), plain);
            let mut bytes = CopyDigest::default();
            for b in data {
                bytes.feed(std::slice::from_ref(b));
            }
            assert_eq!(bytes.finish(), plain);
        }
        let mut empty = CopyDigest::default();
        empty.feed(b"\\.\n\n\n");
        assert_eq!(empty.finish(), blake3::hash(b"").to_hex().to_string());
        // Rows past several batches, fed one row at a time as pg_dump writes them, and
        // ending exactly at a batch boundary before the terminator: the same digest as
        // the rows hashed at once.
        for extra in [0usize, 1, DIGEST_HOLD] {
            let mut rows = Vec::new();
            let mut i = 0;
            while rows.len() < 3 * DIGEST_BATCH + extra {
                rows.extend_from_slice(format!("{i}\trow {i}\n").as_bytes());
                i += 1;
            }
            let want = blake3::hash(&rows).to_hex().to_string();
            let mut d = CopyDigest::default();
            for row in rows.split_inclusive(|b| *b == b'\n') {
                d.feed(row);
            }
            d.feed(b"\\.\n\n\n");
            assert_eq!(d.finish(), want, "{extra}");
        }
        // One changed bit changes the digest.
        let mut other = CopyDigest::default();
        other.feed(b"1\tx\n2\t\\/\n");
        assert_ne!(other.finish(), plain);
    }

    #[test]
    fn copy_column_lists_are_parsed_with_quoted_names() {
        let list =
            copy_column_list("COPY public.\"we(ird\" (a, \"B\"\"x\", \"c, d\") FROM stdin;\n")
                .unwrap();
        assert_eq!(list, "(a, \"B\"\"x\", \"c, d\")");
        assert_eq!(
            parse_column_list(&list).unwrap(),
            vec!["a".to_string(), "B\"x".into(), "c, d".into()]
        );
        assert_eq!(
            copy_column_list("COPY public.t  FROM stdin;\n").unwrap(),
            ""
        );
        assert_eq!(parse_column_list("").unwrap(), Vec::<String>::new());
        for bad in ["(a; DROP TABLE x)", "(a", "a, b", "(a, )"] {
            assert!(parse_column_list(bad).is_none(), "{bad}");
        }
        assert!(copy_column_list("SELECT 1").is_none());
    }

    #[test]
    fn garbage_is_rejected_clearly() {
        let e = read_archive(&mut &b"PGDMQ..."[..]).unwrap_err().to_string();
        assert!(e.contains("does not start with PGDMP"), "{e}");
        let e = read_archive(&mut &b"PGD"[..]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = read_archive(&mut &b"PGDMP\x01\x09\x00\x04\x08\x01"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("1.9-0 is not supported"), "{e}");
        let e = read_archive(&mut &b"PGDMP\x01\x0e\x00\x04\x08\x03"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not the custom format"), "{e}");
    }
}
