#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! The RDB format: a streaming, constant-memory reader, and the pieces to cut `DUMP`
//! payloads out of an RDB file and to build one from them.
//!
//! Checked against Redis's `src/rdb.h` / `src/rdb.c` (RDB versions 1 to 12, Redis 8.x).
//! A file is `REDIS` + 4-digit version, then opcodes and key/value pairs, `0xFF`, then
//! (version ≥ 5) the little-endian CRC-64/Jones of everything before it (0 = checksum
//! disabled). [`parse_rdb`] walks every value encoding without decoding it: strings
//! (raw, integer, LZF), lists (plain, ziplist, quicklist, quicklist 2 with plain and
//! packed nodes), sets (plain, intset, listpack), sorted sets (plain, binary scores,
//! ziplist, listpack), hashes (plain, zipmap, ziplist, listpack, and the 7.4+ forms with
//! field expiry: metadata and listpack-ex, GA and pre-GA), streams (listpacks 1/2/3 with
//! consumer groups, PELs and consumers) and module values (type 2, skipped opcode by
//! opcode); and the opcodes AUX, SELECTDB, RESIZEDB, EXPIRETIME(_MS), IDLE, FREQ,
//! FUNCTION2, MODULE_AUX, SLOT_INFO and EOF. Only the bytes of the key being read are held
//! (and the value's, when a consumer asks for them to build a `RESTORE` payload).
//!
//! A `DUMP` payload is `<type byte><value bytes><RDB version u16 LE><CRC-64 LE of the
//! preceding bytes>`; the value bytes are exactly those that follow the key in an RDB
//! file, so [`dump_payload`] and [`split_dump_payload`] convert between the two.

use std::io::Read;

use backup_core::{Contents, FormatReader, Result};
use crc::{Crc, Table, CRC_64_REDIS};

use crate::error::rdb_error;

pub mod digest;
mod value;
pub use value::lzf_decompress;
use value::{skip_module_opcodes, skip_value};

/// The newest RDB version this reader understands (Redis 7.4 to 8.x write 12).
pub const RDB_MAX_VERSION: u32 = 12;

/// CRC-64/Jones as Redis computes it (RDB trailer and `DUMP` payloads).
pub static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

const OP_SLOT_INFO: u8 = 244;
const OP_FUNCTION2: u8 = 245;
const OP_FUNCTION_PRE_GA: u8 = 246;
const OP_MODULE_AUX: u8 = 247;
const OP_IDLE: u8 = 248;
const OP_FREQ: u8 = 249;
const OP_AUX: u8 = 250;
const OP_RESIZEDB: u8 = 251;
const OP_EXPIRETIME_MS: u8 = 252;
const OP_EXPIRETIME: u8 = 253;
const OP_SELECTDB: u8 = 254;
const OP_EOF: u8 = 255;

/// Value type bytes (`RDB_TYPE_*`).
pub mod types {
    /// Plain string.
    pub const STRING: u8 = 0;
    /// Linked list (old).
    pub const LIST: u8 = 1;
    /// Hash-table set.
    pub const SET: u8 = 2;
    /// Skiplist sorted set with text scores (old).
    pub const ZSET: u8 = 3;
    /// Hash-table hash.
    pub const HASH: u8 = 4;
    /// Skiplist sorted set with binary scores.
    pub const ZSET_2: u8 = 5;
    /// Module value of a 4.0 release candidate (unsupported).
    pub const MODULE_PRE_GA: u8 = 6;
    /// Module value with opcodes.
    pub const MODULE_2: u8 = 7;
    /// Zipmap hash (old).
    pub const HASH_ZIPMAP: u8 = 9;
    /// Ziplist list (old).
    pub const LIST_ZIPLIST: u8 = 10;
    /// Intset set.
    pub const SET_INTSET: u8 = 11;
    /// Ziplist sorted set (old).
    pub const ZSET_ZIPLIST: u8 = 12;
    /// Ziplist hash (old).
    pub const HASH_ZIPLIST: u8 = 13;
    /// Quicklist of ziplists.
    pub const LIST_QUICKLIST: u8 = 14;
    /// Stream, version 1.
    pub const STREAM_LISTPACKS: u8 = 15;
    /// Listpack hash.
    pub const HASH_LISTPACK: u8 = 16;
    /// Listpack sorted set.
    pub const ZSET_LISTPACK: u8 = 17;
    /// Quicklist of listpacks / plain nodes.
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Stream, version 2 (7.0).
    pub const STREAM_LISTPACKS_2: u8 = 19;
    /// Listpack set (7.2).
    pub const SET_LISTPACK: u8 = 20;
    /// Stream, version 3 (7.2).
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Hash with field expiry, 7.4 release candidates.
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    /// Listpack hash with field expiry, 7.4 release candidates.
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    /// Hash with field expiry (7.4+).
    pub const HASH_METADATA: u8 = 24;
    /// Listpack hash with field expiry (7.4+).
    pub const HASH_LISTPACK_EX: u8 = 25;
}

/// The `TYPE` name of an RDB value type (`None` for module values and unknown types).
pub fn type_name(type_byte: u8) -> Option<&'static str> {
    use types::*;
    Some(match type_byte {
        STRING => "string",
        LIST | LIST_ZIPLIST | LIST_QUICKLIST | LIST_QUICKLIST_2 => "list",
        SET | SET_INTSET | SET_LISTPACK => "set",
        ZSET | ZSET_2 | ZSET_ZIPLIST | ZSET_LISTPACK => "zset",
        HASH
        | HASH_ZIPMAP
        | HASH_ZIPLIST
        | HASH_LISTPACK
        | HASH_METADATA_PRE_GA
        | HASH_LISTPACK_EX_PRE_GA
        | HASH_METADATA
        | HASH_LISTPACK_EX => "hash",
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => "stream",
        _ => return None,
    })
}

/// The oldest RDB version that has value type `type_byte` (for a clear error when a
/// target cannot load it).
pub fn min_rdb_version_of_type(type_byte: u8) -> u32 {
    use types::*;
    match type_byte {
        HASH_METADATA_PRE_GA..=HASH_LISTPACK_EX => 12,
        SET_LISTPACK | STREAM_LISTPACKS_3 => 11,
        HASH_LISTPACK | ZSET_LISTPACK | LIST_QUICKLIST_2 | STREAM_LISTPACKS_2 => 10,
        _ => 9,
    }
}

/// The first Redis release that writes RDB version `v`.
pub fn redis_release_for_rdb(v: u32) -> &'static str {
    match v {
        0..=9 => "5.0",
        10 => "7.0",
        11 => "7.2",
        _ => "7.4",
    }
}

/// The newest RDB version a Redis release loads, from its `redis_version`.
pub fn max_rdb_for_redis(version: &str) -> u32 {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    match (major, minor) {
        (0..=1, _) => 1,
        (2, 0..=4) => 4,
        (2, _) => 6,
        (3, _) => 7,
        (4, _) => 8,
        (5..=6, _) => 9,
        (7, 0..=1) => 10,
        (7, 2..=3) => 11,
        _ => RDB_MAX_VERSION,
    }
}

/// The 9-character type name encoded in a module id (as `TYPE` reports it).
pub fn module_type_name(module_id: u64) -> String {
    const CSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = module_id >> 10;
    let mut name = [0u8; 9];
    for slot in name.iter_mut().rev() {
        *slot = CSET.get((id & 63) as usize).copied().unwrap_or(b'_');
        id >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// Builds a `DUMP` payload: type byte, value bytes, RDB version, CRC-64.
pub fn dump_payload(type_byte: u8, value: &[u8], rdb_version: u32, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(type_byte);
    out.extend_from_slice(value);
    out.extend_from_slice(&(rdb_version as u16).to_le_bytes());
    let crc = CRC64.checksum(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Checks the footer of a `DUMP` / `FUNCTION DUMP` payload (RDB version and CRC-64)
/// and returns the body before it with the version.
pub fn check_dump_footer(payload: &[u8]) -> std::result::Result<(&[u8], u32), String> {
    let too_short = || format!("DUMP payload of {} bytes is too short", payload.len());
    let (body, crc) = payload.split_last_chunk::<8>().ok_or_else(too_short)?;
    if body.len() < 2 {
        return Err(too_short());
    }
    if u64::from_le_bytes(*crc) != CRC64.checksum(body) {
        return Err("DUMP payload checksum mismatch".into());
    }
    let (value, version) = body.split_last_chunk::<2>().ok_or_else(too_short)?;
    Ok((value, u32::from(u16::from_le_bytes(*version))))
}

/// Splits a `DUMP` payload into (type byte, value bytes, RDB version), checking its
/// CRC-64.
pub fn split_dump_payload(payload: &[u8]) -> std::result::Result<(u8, &[u8], u32), String> {
    let (body, version) = check_dump_footer(payload)?;
    let (t, value) = body
        .split_first()
        .ok_or_else(|| "DUMP payload without a value".to_string())?;
    Ok((*t, value, version))
}

/// One key as the parser sees it.
#[derive(Debug)]
pub struct KeyEntry<'a> {
    /// The database index (`SELECTDB`).
    pub db: u64,
    /// The key (LZF and integer encodings decoded).
    pub key: &'a [u8],
    /// Absolute expiry in Unix milliseconds, if the key has one.
    pub expire_ms: Option<i64>,
    /// The RDB value type byte.
    pub type_byte: u8,
    /// `TYPE` name (`string`, `list`... or the module type name).
    pub type_name: &'a str,
    /// The raw value bytes (everything after the key), if the visitor asked for them.
    pub value: Option<&'a [u8]>,
    /// The key's canonical digest (key and value, [`digest`]), if the visitor asked
    /// for it and the value is not a module value.
    pub digest: Option<u128>,
}

/// Receives what [`parse_rdb`] finds, in stream order. Every method has a default that
/// ignores its input.
pub trait RdbVisitor {
    /// The RDB version from the header; an `Err` stops the parse.
    fn header(&mut self, _version: u32) -> Result<()> {
        Ok(())
    }
    /// An AUX field.
    fn aux(&mut self, _key: &[u8], _value: &[u8]) -> Result<()> {
        Ok(())
    }
    /// Whether the value bytes of this key are wanted (they are then captured).
    fn want_value(&mut self, _db: u64, _key: &[u8], _type_byte: u8) -> bool {
        false
    }
    /// Whether this key's canonical value digest is wanted (the value is then decoded
    /// as it streams by).
    fn want_digest(
        &mut self,
        _db: u64,
        _key: &[u8],
        _type_byte: u8,
        _expire_ms: Option<i64>,
    ) -> bool {
        false
    }
    /// A key with its value.
    fn key(&mut self, _entry: &KeyEntry<'_>) -> Result<()> {
        Ok(())
    }
    /// A function library: `raw` is the FUNCTION2 opcode and its string as stored (a
    /// `FUNCTION RESTORE` payload is these entries + version + CRC).
    fn function(&mut self, _raw: &[u8]) -> Result<()> {
        Ok(())
    }
    /// Module auxiliary data of the named module type (skipped).
    fn module_aux(&mut self, _type_name: &str) -> Result<()> {
        Ok(())
    }
}

/// What [`parse_rdb`] returns at the end of a valid stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RdbEnd {
    /// The RDB version.
    pub version: u32,
    /// Bytes read, checksum included.
    pub bytes: u64,
    /// Whether a checksum was present and checked (0 means "disabled" in Redis).
    pub checksum_checked: bool,
}

const BUF_SIZE: usize = 64 * 1024;

/// A buffered reader that keeps the CRC of consumed bytes and can capture them.
struct Input<'r> {
    r: &'r mut dyn Read,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Start of the bytes consumed but not yet added to the CRC / capture.
    mark: usize,
    /// Bytes consumed before `buf[0]`.
    base: u64,
    crc: crc::Digest<'static, u64, Table<16>>,
    /// Bytes captured since `start_capture` (reused between keys).
    capture: Vec<u8>,
    /// Buffers the value decoder reuses between keys.
    scratch: (Vec<u8>, Vec<u8>),
    capturing: bool,
    /// What is being read, for truncation errors.
    what: &'static str,
}

impl<'r> Input<'r> {
    fn new(r: &'r mut dyn Read) -> Self {
        Input {
            r,
            buf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            len: 0,
            mark: 0,
            base: 0,
            crc: CRC64.digest(),
            capture: Vec::new(),
            scratch: (Vec::new(), Vec::new()),
            capturing: false,
            what: "the header",
        }
    }

    fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    fn err(&self, reason: impl std::fmt::Display) -> backup_core::Error {
        rdb_error(self.offset(), reason)
    }

    /// Folds `buf[mark..pos]` into the CRC and the capture.
    fn sync(&mut self) {
        if self.pos > self.mark {
            let consumed = self.buf.get(self.mark..self.pos).unwrap_or_default();
            self.crc.update(consumed);
            if self.capturing {
                self.capture.extend_from_slice(consumed);
            }
            self.mark = self.pos;
        }
    }

    /// Ensures at least one unread byte in the buffer.
    fn fill(&mut self) -> Result<()> {
        if self.pos < self.len {
            return Ok(());
        }
        self.sync();
        self.base = self.base.saturating_add(self.len as u64);
        self.pos = 0;
        self.mark = 0;
        self.len = 0;
        loop {
            match self.r.read(&mut self.buf) {
                Ok(0) => {
                    return Err(self.err(format!("truncated: the stream ends inside {}", self.what)))
                }
                Ok(n) => {
                    self.len = n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(backup_core::Error::from_io(e, "reading the RDB stream"));
                }
            }
        }
    }

    /// Consumes and returns between 1 and `max` unread bytes (`max` > 0), reading more
    /// when the buffer is empty.
    fn chunk(&mut self, max: u64) -> Result<&[u8]> {
        self.fill()?;
        let start = self.pos;
        let avail = self.len.saturating_sub(start);
        let k = usize::try_from(max).map_or(avail, |m| m.min(avail));
        // `start + k <= len <= buf.len()`: neither the sum nor the slice can fail.
        self.pos = start.saturating_add(k);
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    fn u8(&mut self) -> Result<u8> {
        let c = self.chunk(1)?;
        c.first()
            .copied()
            .ok_or_else(|| self.err("internal: empty read"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        let mut done = 0usize;
        while done < N {
            let c = self.chunk(N.saturating_sub(done) as u64)?;
            let end = done.saturating_add(c.len());
            if let Some(dst) = out.get_mut(done..end) {
                dst.copy_from_slice(c);
            }
            done = end;
        }
        Ok(out)
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            let k = self.chunk(n)?.len();
            n = n.saturating_sub(k as u64);
        }
        Ok(())
    }

    fn take_into(&mut self, mut n: u64, out: &mut Vec<u8>) -> Result<()> {
        while n > 0 {
            let c = self.chunk(n)?;
            out.extend_from_slice(c);
            n = n.saturating_sub(c.len() as u64);
        }
        Ok(())
    }

    /// A length, or `Err(encoding)` for a specially encoded string.
    fn len_or_enc(&mut self) -> Result<std::result::Result<u64, u8>> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Ok((b & 0x3f) as u64),
            1 => Ok((((b & 0x3f) as u64) << 8) | self.u8()? as u64),
            3 => Err(b & 0x3f),
            _ => match b {
                0x80 => Ok(u32::from_be_bytes(self.array()?) as u64),
                0x81 => Ok(u64::from_be_bytes(self.array()?)),
                other => return Err(self.err(format!("unknown length encoding 0x{other:02x}"))),
            },
        })
    }

    fn len(&mut self) -> Result<u64> {
        match self.len_or_enc()? {
            Ok(n) => Ok(n),
            Err(enc) => Err(self.err(format!(
                "expected a length, found string encoding {enc} (corrupt stream)"
            ))),
        }
    }

    /// A count of elements; refuses absurd counts that only corruption produces.
    fn count(&mut self) -> Result<u64> {
        let n = self.len()?;
        if n > (1u64 << 40) {
            return Err(self.err(format!("implausible element count {n} (corrupt stream)")));
        }
        Ok(n)
    }

    fn skip_string(&mut self) -> Result<()> {
        match self.len_or_enc()? {
            Ok(n) => self.skip(n),
            Err(0) => self.skip(1),
            Err(1) => self.skip(2),
            Err(2) => self.skip(4),
            Err(3) => {
                let clen = self.len()?;
                let _len = self.len()?;
                self.skip(clen)
            }
            Err(e) => Err(self.err(format!("unknown string encoding {e}"))),
        }
    }

    /// Reads a string, decoding integer and LZF encodings, into `out` (cleared first).
    fn string(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        match self.len_or_enc()? {
            Ok(n) => self.take_into(n, out),
            Err(0) => {
                let v = self.u8()? as i8 as i64;
                out.extend_from_slice(v.to_string().as_bytes());
                Ok(())
            }
            Err(1) => {
                let v = i16::from_le_bytes(self.array()?) as i64;
                out.extend_from_slice(v.to_string().as_bytes());
                Ok(())
            }
            Err(2) => {
                let v = i32::from_le_bytes(self.array()?) as i64;
                out.extend_from_slice(v.to_string().as_bytes());
                Ok(())
            }
            Err(3) => {
                let clen = self.len()?;
                let len = self.len()?;
                // LZF expands at most LZF_MAX_RATIO times (a 3-byte back reference
                // copies at most 264 bytes): a longer claim is not LZF.
                if len > (1 << 32)
                    || clen > len.max(16).saturating_mul(2)
                    || len > clen.saturating_mul(value::LZF_MAX_RATIO)
                {
                    return Err(self.err(format!(
                        "implausible LZF string lengths {clen}/{len} (corrupt stream)"
                    )));
                }
                // Claimed lengths size nothing up front: the buffers grow with what is
                // actually read and produced.
                let mut compressed = Vec::with_capacity((clen as usize).min(value::PREALLOCATE));
                self.take_into(clen, &mut compressed)?;
                lzf_decompress(&compressed, len as usize, out)
                    .map_err(|e| self.err(format!("invalid LZF string: {e}")))
            }
            Err(e) => Err(self.err(format!("unknown string encoding {e}"))),
        }
    }

    /// The text-encoded double of old sorted sets.
    fn skip_text_double(&mut self) -> Result<()> {
        let n = self.u8()?;
        if n < 253 {
            self.skip(n as u64)?;
        }
        Ok(())
    }

    /// Starts capturing consumed bytes after `prefix` (the buffer is reused).
    fn start_capture(&mut self, prefix: &[u8]) {
        self.sync();
        self.capture.clear();
        self.capture.extend_from_slice(prefix);
        self.capturing = true;
    }

    /// Stops capturing; the bytes are in `self.capture`.
    fn stop_capture(&mut self) {
        self.sync();
        self.capturing = false;
    }

    /// The CRC of everything consumed so far.
    fn crc(&mut self) -> u64 {
        self.sync();
        self.crc.clone().finalize()
    }
}

/// Parses a whole RDB stream, calling `visitor` for what it finds; checks the version,
/// the trailing CRC-64 and that nothing follows it.
pub fn parse_rdb(input: &mut dyn Read, visitor: &mut dyn RdbVisitor) -> Result<RdbEnd> {
    let mut inp = Input::new(input);
    let header: [u8; 9] = inp.array()?;
    if &header[..5] != b"REDIS" {
        return Err(rdb_error(
            0,
            "not an RDB file (it does not start with `REDIS`)",
        ));
    }
    let version: u32 = std::str::from_utf8(&header[5..])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| rdb_error(5, "the RDB version is not a 4-digit number"))?;
    if version == 0 || version > RDB_MAX_VERSION {
        return Err(rdb_error(
            5,
            format!(
                "RDB version {version} is not supported: this dbseal reads RDB versions 1 to {RDB_MAX_VERSION} (Redis up to 8.x); upgrade dbseal"
            ),
        ));
    }
    visitor.header(version)?;
    let mut db = 0u64;
    let mut expire: Option<i64> = None;
    let mut key = Vec::new();
    let mut aux_val = Vec::new();
    let mut type_name_buf = String::new();
    loop {
        inp.what = "an opcode";
        let t = inp.u8()?;
        match t {
            OP_EOF => break,
            OP_SELECTDB => {
                db = inp.len()?;
                continue;
            }
            OP_RESIZEDB => {
                inp.len()?;
                inp.len()?;
                continue;
            }
            OP_SLOT_INFO => {
                inp.len()?;
                inp.len()?;
                inp.len()?;
                continue;
            }
            OP_EXPIRETIME_MS => {
                expire = Some(i64::from_le_bytes(inp.array()?));
                continue;
            }
            OP_EXPIRETIME => {
                expire = Some(i64::from(i32::from_le_bytes(inp.array()?)).saturating_mul(1000));
                continue;
            }
            OP_FREQ => {
                inp.u8()?;
                continue;
            }
            OP_IDLE => {
                inp.len()?;
                continue;
            }
            OP_AUX => {
                inp.what = "an AUX field";
                inp.string(&mut key)?;
                inp.string(&mut aux_val)?;
                visitor.aux(&key, &aux_val)?;
                continue;
            }
            OP_MODULE_AUX => {
                inp.what = "module AUX data";
                let id = inp.len()?;
                let when_opcode = inp.len()?;
                if when_opcode != 2 {
                    return Err(inp.err("module AUX data has a bad `when` opcode"));
                }
                inp.len()?;
                skip_module_opcodes(&mut inp)?;
                visitor.module_aux(&module_type_name(id))?;
                continue;
            }
            OP_FUNCTION2 => {
                inp.what = "a function library";
                inp.start_capture(&[OP_FUNCTION2]);
                inp.skip_string()?;
                inp.stop_capture();
                visitor.function(&inp.capture)?;
                continue;
            }
            OP_FUNCTION_PRE_GA => {
                return Err(inp.err(
                    "function library in the Redis 7.0 release-candidate format cannot be read",
                ))
            }
            _ => {}
        }
        // A key/value pair of type `t`.
        inp.what = "a key";
        inp.string(&mut key)?;
        let want = visitor.want_value(db, &key, t);
        let want_digest = visitor.want_digest(db, &key, t, expire);
        inp.what = "a value";
        if want {
            inp.start_capture(&[]);
        }
        type_name_buf.clear();
        if let Some(n) = type_name(t) {
            type_name_buf.push_str(n);
        }
        let digest = if want_digest {
            digest::digest_value(&mut inp, t, version, &mut type_name_buf, &key)?
        } else {
            skip_value(&mut inp, t, version, &mut type_name_buf)?;
            None
        };
        if want {
            inp.stop_capture();
        }
        visitor.key(&KeyEntry {
            db,
            key: &key,
            expire_ms: expire.take(),
            type_byte: t,
            type_name: &type_name_buf,
            value: want.then_some(inp.capture.as_slice()),
            digest,
        })?;
    }
    let mut checksum_checked = false;
    if version >= 5 {
        let computed = inp.crc();
        inp.what = "the checksum";
        let stored = u64::from_le_bytes(inp.array()?);
        if stored != 0 {
            if stored != computed {
                return Err(inp.err(format!(
                    "CRC-64 mismatch: the file records {stored:016x}, its contents hash to {computed:016x} (corrupted)"
                )));
            }
            checksum_checked = true;
        }
    }
    // Nothing may follow.
    let end = inp.offset();
    let mut extra = inp.len.saturating_sub(inp.pos) as u64;
    inp.pos = inp.len;
    let mut sink = [0u8; 8192];
    loop {
        match inp.r.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => extra = extra.saturating_add(n as u64),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(backup_core::Error::from_io(e, "reading the RDB stream")),
        }
    }
    if extra > 0 {
        return Err(rdb_error(
            end,
            format!("{extra} unexpected bytes after the end of the RDB file"),
        ));
    }
    Ok(RdbEnd {
        version,
        bytes: end,
        checksum_checked,
    })
}

/// Counts keys per database and type, expiries, functions and module types; with
/// [`ContentsVisitor::with_digests`] also each database's content digest.
#[derive(Debug, Default)]
pub struct ContentsVisitor {
    /// The summary built so far.
    pub contents: Contents,
    /// Per database, the wrapping sum of its keys' digests (when asked for).
    digests: Option<std::collections::BTreeMap<u64, u128>>,
}

impl ContentsVisitor {
    /// A visitor that also decodes every value into its database's content digest.
    pub fn with_digests() -> Self {
        ContentsVisitor {
            contents: Contents::default(),
            digests: Some(Default::default()),
        }
    }

    /// The summary, with a `content_digest.db<N>` fact per database when digests were
    /// asked for.
    pub fn finish(mut self) -> Contents {
        for (db, sum) in self.digests.unwrap_or_default() {
            self.contents
                .fact(&digest::fact_name(db), format!("{sum:032x}"));
        }
        self.contents
    }
}

impl RdbVisitor for ContentsVisitor {
    fn header(&mut self, version: u32) -> Result<()> {
        self.contents.fact("rdb_version", version.to_string());
        Ok(())
    }

    fn aux(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if key == b"redis-ver" {
            self.contents
                .fact("redis_ver", String::from_utf8_lossy(value).into_owned());
        }
        Ok(())
    }

    fn want_digest(&mut self, _db: u64, _key: &[u8], _type: u8, _expire: Option<i64>) -> bool {
        self.digests.is_some()
    }

    fn key(&mut self, e: &KeyEntry<'_>) -> Result<()> {
        if let Some(sums) = &mut self.digests {
            // Every database gets a digest, even one holding only module values.
            let sum = sums.entry(e.db).or_default();
            if let Some(d) = &e.digest {
                *sum = sum.wrapping_add(*d);
            }
        }
        self.contents
            .add("keys", &format!("db{}.{}", e.db, e.type_name), 1);
        if e.expire_ms.is_some() {
            self.contents.add("expires", &format!("db{}", e.db), 1);
        }
        if e.type_byte == types::MODULE_2 {
            self.contents.add("modules", e.type_name, 1);
        }
        Ok(())
    }

    fn function(&mut self, _raw: &[u8]) -> Result<()> {
        self.contents.add("functions", "libraries", 1);
        Ok(())
    }

    fn module_aux(&mut self, type_name: &str) -> Result<()> {
        self.contents.add("module_aux", type_name, 1);
        Ok(())
    }
}

/// The RDB [`FormatReader`]: validates the whole stream (version, structure, CRC-64)
/// and summarises it (see the crate docs for the count groups).
#[derive(Debug, Clone, Copy, Default)]
pub struct RdbFormat;

impl FormatReader for RdbFormat {
    fn format(&self) -> &str {
        "rdb"
    }

    fn read_contents(&self, input: &mut dyn Read) -> Result<Contents> {
        let mut v = ContentsVisitor::with_digests();
        parse_rdb(input, &mut v)?;
        Ok(v.finish())
    }
}

/// Builds an RDB file piece by piece (for `--mode scan`), keeping its CRC-64.
pub(crate) struct RdbBuilder {
    crc: crc::Digest<'static, u64, Table<16>>,
    out: Vec<u8>,
}

impl RdbBuilder {
    pub(crate) fn new(version: u32) -> Self {
        let mut b = RdbBuilder {
            crc: CRC64.digest(),
            out: Vec::with_capacity(256 * 1024),
        };
        b.raw(format!("REDIS{version:04}").as_bytes());
        b
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.out.extend_from_slice(bytes);
    }

    fn len(&mut self, n: u64) {
        let mut tmp = Vec::with_capacity(9);
        if n < 1 << 6 {
            tmp.push(n as u8);
        } else if n < 1 << 14 {
            tmp.push(0x40 | (n >> 8) as u8);
            tmp.push(n as u8);
        } else if n <= u32::MAX as u64 {
            tmp.push(0x80);
            tmp.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            tmp.push(0x81);
            tmp.extend_from_slice(&n.to_be_bytes());
        }
        self.raw(&tmp);
    }

    fn string(&mut self, s: &[u8]) {
        self.len(s.len() as u64);
        self.raw(s);
    }

    pub(crate) fn aux(&mut self, key: &str, value: &str) {
        self.raw(&[OP_AUX]);
        self.string(key.as_bytes());
        self.string(value.as_bytes());
    }

    /// Raw FUNCTION2 entries (a `FUNCTION DUMP` payload without its footer).
    pub(crate) fn functions(&mut self, entries: &[u8]) {
        self.raw(entries);
    }

    pub(crate) fn select_db(&mut self, db: u64, size: u64, expires: u64) {
        self.raw(&[OP_SELECTDB]);
        self.len(db);
        self.raw(&[OP_RESIZEDB]);
        self.len(size);
        self.len(expires);
    }

    pub(crate) fn key(&mut self, key: &[u8], expire_ms: Option<i64>, type_byte: u8, value: &[u8]) {
        if let Some(ms) = expire_ms {
            self.raw(&[OP_EXPIRETIME_MS]);
            self.raw(&ms.to_le_bytes());
        }
        self.raw(&[type_byte]);
        self.string(key);
        self.raw(value);
    }

    /// The bytes built since the last call.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub(crate) fn pending(&self) -> usize {
        self.out.len()
    }

    /// EOF and the checksum; returns the remaining bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.raw(&[OP_EOF]);
        let crc = self.crc.clone().finalize();
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_sample() -> Vec<u8> {
        let mut b = RdbBuilder::new(10);
        b.aux("redis-ver", "7.0.15");
        b.select_db(0, 2, 1);
        // A string value "hello" (len-prefixed) and an int-encoded one.
        b.key(b"greeting", None, types::STRING, b"\x05hello");
        b.key(b"n", Some(4_102_444_800_000), types::STRING, &[0xc0, 42]);
        b.select_db(3, 1, 0);
        // A plain set with two members.
        b.key(b"s", None, types::SET, b"\x02\x01a\x01b");
        let mut out = b.take();
        out.extend(b.finish());
        out
    }

    #[test]
    fn counts_a_built_file_and_checks_its_crc() {
        let data = build_sample();
        let c = RdbFormat.read_contents(&mut &data[..]).unwrap();
        assert_eq!(c.facts["rdb_version"], "10");
        assert_eq!(c.facts["redis_ver"], "7.0.15");
        assert_eq!(c.counts["keys"]["db0.string"], 2);
        assert_eq!(c.counts["keys"]["db3.set"], 1);
        assert_eq!(c.counts["expires"]["db0"], 1);

        let mut bad = data.clone();
        let i = bad.len() - 12;
        bad[i] ^= 0x01;
        let e = RdbFormat
            .read_contents(&mut &bad[..])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CRC-64 mismatch") || e.contains("rdb stream is invalid"),
            "{e}"
        );

        for cut in [3, 20, data.len() - 4] {
            let e = RdbFormat
                .read_contents(&mut &data[..cut])
                .unwrap_err()
                .to_string();
            assert!(e.contains("truncated"), "{cut}: {e}");
        }
        let mut long = data.clone();
        long.extend_from_slice(b"junk");
        let e = RdbFormat
            .read_contents(&mut &long[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 unexpected bytes"), "{e}");
    }

    #[test]
    fn refuses_future_versions_by_number() {
        let mut data = build_sample();
        data[5..9].copy_from_slice(b"0013");
        let e = RdbFormat
            .read_contents(&mut &data[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RDB version 13 is not supported"), "{e}");
    }

    #[test]
    fn payloads_round_trip() {
        let mut p = Vec::new();
        dump_payload(0, b"\x05hello", 10, &mut p);
        let (t, v, ver) = split_dump_payload(&p).unwrap();
        assert_eq!((t, v, ver), (0, &b"\x05hello"[..], 10));
        p[3] ^= 1;
        assert!(split_dump_payload(&p).is_err());
    }

    #[test]
    fn lzf_back_references() {
        // "aaaaaaaaaa": literal 'a', then a back reference of length 9 at distance 1.
        let input = [0u8, b'a', (7 << 5) as u8, 0, 0];
        let mut out = Vec::new();
        lzf_decompress(&input, 10, &mut out).unwrap();
        assert_eq!(out, b"aaaaaaaaaa");
        assert!(lzf_decompress(&[0x20, 5], 3, &mut Vec::new()).is_err());
    }

    #[test]
    fn lzf_lengths_beyond_what_lzf_can_expand_to_are_refused_before_allocating() {
        // Found by the `rdb` fuzz target (fuzz/corpus/rdb/oom-lzf-claims-2gib): an LZF
        // string of 0 compressed bytes claiming 2 GiB made the reader reserve 2 GiB.
        let input = b"REDIS0010\0\0\0\0\0\0\0\xc3\0\x80\x80\0\x9bi\xf5r\n\0\xce\x9bi\xf5r\n@";
        let e = RdbFormat
            .read_contents(&mut &input[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("implausible LZF string lengths 0/"), "{e}");
        // The most a 3-byte back reference can copy is still accepted as plausible.
        let mut out = Vec::new();
        let input = [0u8, b'a', 0xe0, 255, 0];
        lzf_decompress(&input, 1 + 264, &mut out).unwrap();
        assert_eq!(out.len(), 265);
        const { assert!(265 <= 5 * value::LZF_MAX_RATIO) };
    }

    #[test]
    fn module_names_decode() {
        // Build an id for "graphdata" with encver 3.
        const CSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut id = 0u64;
        for c in b"graphdata" {
            id = (id << 6) | CSET.iter().position(|x| x == c).unwrap() as u64;
        }
        assert_eq!(module_type_name((id << 10) | 3), "graphdata");
        assert_eq!(max_rdb_for_redis("7.0.15"), 10);
        assert_eq!(max_rdb_for_redis("8.2.1"), 12);
    }
}
