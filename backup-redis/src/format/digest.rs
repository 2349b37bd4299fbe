#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Canonical value digests: what level-3 verification compares, computed the same way
//! from an RDB value (every encoding decoded) and from a live server's replies to read
//! commands (`GET`, `LRANGE`, `SSCAN`, `HSCAN`, `ZSCAN`, `XRANGE`).
//!
//! A value's digest depends on its type and its logical contents only, never on its
//! encoding: an integer-encoded string, a listpack entry stored as an integer and the
//! `LRANGE` reply `"7"` digest alike. Lists and stream entries are ordered; the elements
//! of sets, hashes and sorted sets are combined by a wrapping 128-bit sum of their
//! SHA-256s (order-independent, so `SCAN` order and hash-table layout do not matter).
//! Sorted-set scores are compared as IEEE-754 bits, parsed from whatever text or integer
//! form they were stored or returned in. Key and hash-field TTLs, stream consumer groups
//! and module values are not part of the digest (key TTLs are counted elsewhere).
//!
//! A key's digest is the first 128 bits of one SHA-256 over its type, its canonical
//! value and the key; a database's is the wrapping sum of its keys' (`content_digest.db<N>`
//! in the manifest).

use sha2::{Digest, Sha256};

use super::*;

/// The logical type a value digest is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`.
    String = 1,
    /// `list` (ordered).
    List = 2,
    /// `set`.
    Set = 3,
    /// `zset`: (member, score bits).
    Zset = 4,
    /// `hash`: (field, value).
    Hash = 5,
    /// `stream` entries (ordered): (ms, seq, field, value, …).
    Stream = 6,
}

impl Kind {
    /// The kind of a `TYPE` name; `None` for module types (not digested).
    pub fn of_type_name(name: &str) -> Option<Kind> {
        Some(match name {
            "string" => Kind::String,
            "list" => Kind::List,
            "set" => Kind::Set,
            "zset" => Kind::Zset,
            "hash" => Kind::Hash,
            "stream" => Kind::Stream,
            _ => return None,
        })
    }

    fn ordered(self) -> bool {
        matches!(self, Kind::String | Kind::List | Kind::Stream)
    }
}

/// Accumulates one key's canonical digest, element by element.
pub struct ValueDigest {
    h: Sha256,
    ordered: bool,
    sum: u128,
    count: u64,
}

fn feed(h: &mut Sha256, parts: &[&[u8]]) {
    h.update((parts.len() as u64).to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
}

fn first_128(h: Sha256) -> u128 {
    let d: [u8; 32] = h.finalize().into();
    let (first, _) = d.split_first_chunk::<16>().unwrap_or((&[0; 16], &[]));
    u128::from_le_bytes(*first)
}

impl ValueDigest {
    /// An empty digest of `kind`.
    pub fn new(kind: Kind) -> Self {
        let mut h = Sha256::new();
        h.update(b"dbseal redis v1");
        h.update([kind as u8]);
        ValueDigest {
            h,
            ordered: kind.ordered(),
            sum: 0,
            count: 0,
        }
    }

    /// Adds one element: a string's bytes, a list element, a set member, a hash
    /// (field, value), a sorted-set (member, score bits big-endian), a stream entry
    /// (ms, seq big-endian, then field, value pairs).
    pub fn element(&mut self, parts: &[&[u8]]) {
        self.count = self.count.wrapping_add(1);
        if self.ordered {
            feed(&mut self.h, parts);
        } else {
            let mut h = Sha256::new();
            feed(&mut h, parts);
            self.sum = self.sum.wrapping_add(first_128(h));
        }
    }

    /// Adds a sorted-set member with its score.
    pub fn zset_member(&mut self, member: &[u8], score: f64) {
        self.element(&[member, &score.to_bits().to_be_bytes()]);
    }

    /// Adds a stream entry.
    pub fn stream_entry(&mut self, ms: u64, seq: u64, fields: &[&[u8]]) {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(fields.len().saturating_add(1));
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&ms.to_be_bytes());
        id[8..].copy_from_slice(&seq.to_be_bytes());
        parts.push(&id);
        parts.extend_from_slice(fields);
        self.element(&parts);
    }

    /// The digest of `key` holding this value: its contribution to its database's sum.
    pub fn finish(mut self, key: &[u8]) -> u128 {
        self.h.update(self.count.to_le_bytes());
        self.h.update(self.sum.to_le_bytes());
        feed(&mut self.h, &[key]);
        first_128(self.h)
    }
}

/// The manifest fact holding database `db`'s digest.
pub fn fact_name(db: u64) -> String {
    format!("content_digest.db{db}")
}

/// Parses a sorted-set score as Redis writes it (`%.17g` text, `inf`, `-inf`, `nan`).
pub fn parse_score(text: &[u8]) -> std::result::Result<f64, String> {
    let s = std::str::from_utf8(text).map_err(|_| "score is not text".to_string())?;
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("score {s:?} is not a number"))
}

/// One element of a ziplist, listpack or intset.
#[derive(Debug, Clone, Copy)]
enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Str(s) => f(s),
            Elem::Int(i) => {
                // Decimal text on the stack: this runs for every integer entry.
                use std::io::Write;
                let mut b = [0u8; 24];
                let mut c = std::io::Cursor::new(&mut b[..]);
                let _ = write!(c, "{i}");
                let n = usize::try_from(c.position()).unwrap_or(0);
                f(b.get(..n).unwrap_or_default())
            }
        }
    }

    fn int(&self) -> std::result::Result<i64, String> {
        match self {
            Elem::Int(i) => Ok(*i),
            Elem::Str(s) => std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| "expected an integer entry".to_string()),
        }
    }

    fn score(&self) -> std::result::Result<f64, String> {
        match self {
            // Scores stored as integers are integral doubles; the conversion is exact
            // for every score Redis stores this way.
            Elem::Int(i) => Ok(*i as f64),
            Elem::Str(s) => parse_score(s),
        }
    }
}

/// A bounds-checked cursor over a blob.
struct Blob<'a> {
    b: &'a [u8],
    p: usize,
    what: &'static str,
}

impl<'a> Blob<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .p
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("{} entry runs past its end", self.what))?;
        let s = self.b.get(self.p..end).unwrap_or_default();
        self.p = end;
        Ok(s)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn le<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn peek(&self) -> std::result::Result<u8, String> {
        self.b
            .get(self.p)
            .copied()
            .ok_or_else(|| format!("{} has no end marker", self.what))
    }
}

/// The entries of a ziplist (lists, hashes and sorted sets of Redis < 7).
fn ziplist(b: &[u8]) -> std::result::Result<Vec<Elem<'_>>, String> {
    let mut c = Blob {
        b,
        p: 0,
        what: "ziplist",
    };
    c.take(10)?; // zlbytes, zltail, zllen
    let mut out = Vec::new();
    loop {
        if c.peek()? == 0xFF {
            return Ok(out);
        }
        if c.u8()? >= 254 {
            c.take(4)?; // 4-byte previous length
        }
        let enc = c.u8()?;
        let e = match enc >> 6 {
            0 => Elem::Str(c.take(usize::from(enc & 0x3f))?),
            1 => {
                let n = (usize::from(enc & 0x3f) << 8) | usize::from(c.u8()?);
                Elem::Str(c.take(n)?)
            }
            2 => {
                let n = u32::from_be_bytes(c.le()?);
                Elem::Str(c.take(usize::try_from(n).map_err(|_| "ziplist length")?)?)
            }
            _ => Elem::Int(match enc {
                0xC0 => i64::from(i16::from_le_bytes(c.le()?)),
                0xD0 => i64::from(i32::from_le_bytes(c.le()?)),
                0xE0 => i64::from_le_bytes(c.le()?),
                0xF0 => {
                    let [a, b2, d] = c.le::<3>()?;
                    i64::from(i32::from_le_bytes([0, a, b2, d]) >> 8)
                }
                0xFE => i64::from(c.u8()? as i8),
                0xF1..=0xFD => i64::from(enc & 0x0F).saturating_sub(1),
                other => return Err(format!("ziplist has an unknown encoding 0x{other:02x}")),
            }),
        };
        out.push(e);
    }
}

/// The entries of a listpack (Redis ≥ 7 small lists, hashes, sets, sorted sets, streams).
fn listpack(b: &[u8]) -> std::result::Result<Vec<Elem<'_>>, String> {
    let mut c = Blob {
        b,
        p: 0,
        what: "listpack",
    };
    c.take(6)?; // total bytes, element count
    let mut out = Vec::new();
    loop {
        let start = c.p;
        let enc = c.u8()?;
        let e = if enc == 0xFF {
            return Ok(out);
        } else if enc & 0x80 == 0 {
            Elem::Int(i64::from(enc & 0x7F))
        } else if enc & 0xC0 == 0x80 {
            Elem::Str(c.take(usize::from(enc & 0x3F))?)
        } else if enc & 0xE0 == 0xC0 {
            let u = (i64::from(enc & 0x1F) << 8) | i64::from(c.u8()?);
            Elem::Int(if u >= 1 << 12 {
                u.saturating_sub(1 << 13)
            } else {
                u
            })
        } else if enc & 0xF0 == 0xE0 {
            let n = (usize::from(enc & 0x0F) << 8) | usize::from(c.u8()?);
            Elem::Str(c.take(n)?)
        } else {
            match enc {
                0xF0 => {
                    let n = u32::from_le_bytes(c.le()?);
                    Elem::Str(c.take(usize::try_from(n).map_err(|_| "listpack length")?)?)
                }
                0xF1 => Elem::Int(i64::from(i16::from_le_bytes(c.le()?))),
                0xF2 => {
                    let [a, b2, d] = c.le::<3>()?;
                    Elem::Int(i64::from(i32::from_le_bytes([0, a, b2, d]) >> 8))
                }
                0xF3 => Elem::Int(i64::from(i32::from_le_bytes(c.le()?))),
                0xF4 => Elem::Int(i64::from_le_bytes(c.le()?)),
                other => return Err(format!("listpack has an unknown encoding 0x{other:02x}")),
            }
        };
        // The back length that follows every entry encodes the entry's own size.
        let size = c.p.saturating_sub(start);
        let back = match size {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        };
        c.take(back)?;
        out.push(e);
    }
}

/// The members of an intset.
fn intset(b: &[u8]) -> std::result::Result<Vec<Elem<'static>>, String> {
    let mut c = Blob {
        b,
        p: 0,
        what: "intset",
    };
    let width = u32::from_le_bytes(c.le()?);
    let n = u32::from_le_bytes(c.le()?);
    let width = match width {
        2 | 4 | 8 => width as usize,
        other => return Err(format!("intset has an invalid width {other}")),
    };
    let n = usize::try_from(n).map_err(|_| "intset length")?;
    if n.checked_mul(width) != Some(b.len().saturating_sub(8)) {
        return Err("intset length does not match its size".into());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Elem::Int(match width {
            2 => i64::from(i16::from_le_bytes(c.le()?)),
            4 => i64::from(i32::from_le_bytes(c.le()?)),
            _ => i64::from_le_bytes(c.le()?),
        }));
    }
    Ok(out)
}

/// The (field, value) entries of a zipmap (hashes of Redis < 2.6), flattened.
fn zipmap(b: &[u8]) -> std::result::Result<Vec<Elem<'_>>, String> {
    let mut c = Blob {
        b,
        p: 0,
        what: "zipmap",
    };
    c.u8()?; // zmlen
    let mut out = Vec::new();
    let len = |c: &mut Blob<'_>| -> std::result::Result<usize, String> {
        match c.u8()? {
            254 => usize::try_from(u32::from_le_bytes(c.le()?)).map_err(|_| "zipmap length".into()),
            n => Ok(usize::from(n)),
        }
    };
    loop {
        if c.peek()? == 0xFF {
            return Ok(out);
        }
        let n = len(&mut c)?;
        out.push(Elem::Str(c.take(n)?));
        let n = len(&mut c)?;
        let free = c.u8()?;
        out.push(Elem::Str(c.take(n)?));
        c.take(usize::from(free))?;
    }
}

fn pairs<'e>(
    elems: &'e [Elem<'e>],
    what: &str,
) -> std::result::Result<std::slice::ChunksExact<'e, Elem<'e>>, String> {
    if elems.len() % 2 != 0 {
        return Err(format!("{what} has an odd number of entries"));
    }
    Ok(elems.chunks_exact(2))
}

fn add_list(d: &mut ValueDigest, elems: &[Elem<'_>]) {
    for e in elems {
        e.with_bytes(|b| d.element(&[b]));
    }
}

fn add_hash(
    d: &mut ValueDigest,
    elems: &[Elem<'_>],
    stride: usize,
) -> std::result::Result<(), String> {
    if elems.len().checked_rem(stride) != Some(0) {
        return Err("hash listpack has a partial entry".into());
    }
    for fv in elems.chunks_exact(stride) {
        if let [f, v, ..] = fv {
            f.with_bytes(|f| v.with_bytes(|v| d.element(&[f, v])));
        }
    }
    Ok(())
}

fn add_zset(d: &mut ValueDigest, elems: &[Elem<'_>]) -> std::result::Result<(), String> {
    for ms in pairs(elems, "sorted-set ziplist")? {
        if let [m, s] = ms {
            let score = s.score()?;
            m.with_bytes(|m| d.zset_member(m, score));
        }
    }
    Ok(())
}

/// Adds the live entries of one stream listpack node whose master id is `master`.
fn add_stream_node(
    d: &mut ValueDigest,
    master: &[u8],
    elems: &[Elem<'_>],
) -> std::result::Result<(), String> {
    let bad = || "stream listpack is malformed".to_string();
    let id: [u8; 16] = master
        .try_into()
        .map_err(|_| "stream node id is not 16 bytes".to_string())?;
    let (ms_hi, seq_hi) = id.split_at(8);
    let master_ms = u64::from_be_bytes(ms_hi.try_into().map_err(|_| bad())?);
    let master_seq = u64::from_be_bytes(seq_hi.try_into().map_err(|_| bad())?);
    let mut it = elems.iter();
    let mut next = || it.next().ok_or_else(bad);
    next()?; // count
    next()?; // deleted
    let nmf = usize::try_from(next()?.int()?).map_err(|_| bad())?;
    if nmf > elems.len() {
        return Err(bad());
    }
    let mut master_fields = Vec::with_capacity(nmf);
    for _ in 0..nmf {
        master_fields.push(*next()?);
    }
    if next()?.int()? != 0 {
        return Err(bad());
    }
    let mut fields: Vec<Vec<u8>> = Vec::new();
    loop {
        let flags = match it.next() {
            None => return Ok(()),
            Some(f) => f.int()?,
        };
        let mut next = || it.next().ok_or_else(bad);
        let ms = master_ms.wrapping_add(next()?.int()? as u64);
        let seq = master_seq.wrapping_add(next()?.int()? as u64);
        fields.clear();
        if flags & 2 != 0 {
            for f in &master_fields {
                fields.push(f.with_bytes(<[u8]>::to_vec));
                fields.push(next()?.with_bytes(<[u8]>::to_vec));
            }
        } else {
            let n = usize::try_from(next()?.int()?).map_err(|_| bad())?;
            if n > elems.len() {
                return Err(bad());
            }
            for _ in 0..n.saturating_mul(2) {
                fields.push(next()?.with_bytes(<[u8]>::to_vec));
            }
        }
        next()?; // lp-count
        if flags & 1 == 0 {
            let parts: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            d.stream_entry(ms, seq, &parts);
        }
    }
}

/// Reads the value of `key`, of type `t`, like `skip_value`, decoding it into the key's
/// canonical digest; `None` for module values (skipped).
pub(super) fn digest_value(
    inp: &mut Input<'_>,
    t: u8,
    version: u32,
    type_name_out: &mut String,
    key: &[u8],
) -> Result<Option<u128>> {
    use types::*;
    let Some(kind) = type_name(t).and_then(Kind::of_type_name) else {
        value::skip_value(inp, t, version, type_name_out)?;
        return Ok(None);
    };
    let mut d = ValueDigest::new(kind);
    // Scratch buffers kept by the reader between keys.
    let mut buf = std::mem::take(&mut inp.scratch.0);
    let mut buf2 = std::mem::take(&mut inp.scratch.1);
    let blob_err = |inp: &Input<'_>, e: String| inp.err(e);
    match t {
        STRING => {
            inp.string(&mut buf)?;
            d.element(&[&buf]);
        }
        LIST | SET => {
            for _ in 0..inp.count()? {
                inp.string(&mut buf)?;
                d.element(&[&buf]);
            }
        }
        ZSET => {
            for _ in 0..inp.count()? {
                inp.string(&mut buf)?;
                let n = inp.u8()?;
                let score = match n {
                    253 => f64::NAN,
                    254 => f64::INFINITY,
                    255 => f64::NEG_INFINITY,
                    n => {
                        buf2.clear();
                        inp.take_into(u64::from(n), &mut buf2)?;
                        parse_score(&buf2).map_err(|e| inp.err(e))?
                    }
                };
                d.zset_member(&buf, score);
            }
        }
        ZSET_2 => {
            for _ in 0..inp.count()? {
                inp.string(&mut buf)?;
                let score = f64::from_le_bytes(inp.array()?);
                d.zset_member(&buf, score);
            }
        }
        HASH => {
            for _ in 0..inp.count()? {
                inp.string(&mut buf)?;
                inp.string(&mut buf2)?;
                d.element(&[&buf, &buf2]);
            }
        }
        HASH_METADATA | HASH_METADATA_PRE_GA => {
            if t == HASH_METADATA {
                inp.skip(8)?; // minimum field expiry
            }
            for _ in 0..inp.count()? {
                inp.len()?; // field TTL
                inp.string(&mut buf)?;
                inp.string(&mut buf2)?;
                d.element(&[&buf, &buf2]);
            }
        }
        LIST_ZIPLIST | LIST_QUICKLIST => {
            let nodes = if t == LIST_QUICKLIST { inp.count()? } else { 1 };
            for _ in 0..nodes {
                inp.string(&mut buf)?;
                let e = ziplist(&buf).map_err(|e| blob_err(inp, e))?;
                add_list(&mut d, &e);
            }
        }
        LIST_QUICKLIST_2 => {
            for _ in 0..inp.count()? {
                let container = inp.len()?;
                inp.string(&mut buf)?;
                match container {
                    1 => d.element(&[&buf]),
                    2 => {
                        let e = listpack(&buf).map_err(|e| blob_err(inp, e))?;
                        add_list(&mut d, &e);
                    }
                    other => {
                        return Err(inp.err(format!(
                            "quicklist node container {other} is neither plain (1) nor packed (2)"
                        )))
                    }
                }
            }
        }
        SET_INTSET | SET_LISTPACK => {
            inp.string(&mut buf)?;
            let e = if t == SET_INTSET {
                intset(&buf)
            } else {
                listpack(&buf)
            }
            .map_err(|e| blob_err(inp, e))?;
            add_list(&mut d, &e);
        }
        ZSET_ZIPLIST | ZSET_LISTPACK => {
            inp.string(&mut buf)?;
            let e = if t == ZSET_ZIPLIST {
                ziplist(&buf)
            } else {
                listpack(&buf)
            }
            .map_err(|e| blob_err(inp, e))?;
            add_zset(&mut d, &e).map_err(|e| blob_err(inp, e))?;
        }
        HASH_ZIPMAP | HASH_ZIPLIST | HASH_LISTPACK => {
            inp.string(&mut buf)?;
            let e = match t {
                HASH_ZIPMAP => zipmap(&buf),
                HASH_ZIPLIST => ziplist(&buf),
                _ => listpack(&buf),
            }
            .map_err(|e| blob_err(inp, e))?;
            add_hash(&mut d, &e, 2).map_err(|e| blob_err(inp, e))?;
        }
        HASH_LISTPACK_EX | HASH_LISTPACK_EX_PRE_GA => {
            if t == HASH_LISTPACK_EX {
                inp.skip(8)?; // minimum field expiry
            }
            inp.string(&mut buf)?;
            let e = listpack(&buf).map_err(|e| blob_err(inp, e))?;
            // (field, value, TTL) triplets.
            add_hash(&mut d, &e, 3).map_err(|e| blob_err(inp, e))?;
        }
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => {
            inp.what = "a stream";
            for _ in 0..inp.count()? {
                inp.string(&mut buf2)?; // master id
                inp.string(&mut buf)?;
                let e = listpack(&buf).map_err(|e| blob_err(inp, e))?;
                add_stream_node(&mut d, &buf2, &e).map_err(|e| blob_err(inp, e))?;
            }
            value::skip_stream_tail(inp, t)?;
        }
        _ => {
            value::skip_value(inp, t, version, type_name_out)?;
            return Ok(None);
        }
    }
    inp.scratch = (buf, buf2);
    Ok(Some(d.finish(key)))
}

/// A 128-bit identity of a set member or hash field (to count each once when `SCAN`
/// returns it twice).
pub fn member_id(bytes: &[u8]) -> u128 {
    let mut h = Sha256::new();
    h.update(bytes);
    first_128(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(elems: &[Elem<'_>]) -> Vec<String> {
        elems
            .iter()
            .map(|e| e.with_bytes(|b| String::from_utf8_lossy(b).into_owned()))
            .collect()
    }

    #[test]
    fn ziplist_decodes_every_encoding() {
        let mut z = vec![0u8; 10];
        z.extend([0x00, 0x01, b'a']); // 6-bit string
        z.extend([0x03, 0xF6]); // immediate 5
        z.extend([0x02, 0xFE, 0xFF]); // int8 -1
        z.extend([0x03, 0xC0, 0x2C, 0x01]); // int16 300
        z.extend([0x04, 0xF0, 0x90, 0xEE, 0xFE]); // int24 -70000
        z.extend([0x05, 0xD0]); // int32
        z.extend(i32::MIN.to_le_bytes());
        z.extend([0x06, 0xE0]); // int64
        z.extend(i64::MAX.to_le_bytes());
        z.extend([0x0B, 0x40, 0x64]); // 14-bit string of 100 bytes
        z.extend([b'x'; 100]);
        z.push(0xFF);
        let e = ziplist(&z).unwrap();
        assert_eq!(
            texts(&e),
            [
                "a".to_string(),
                "5".into(),
                "-1".into(),
                "300".into(),
                "-70000".into(),
                i32::MIN.to_string(),
                i64::MAX.to_string(),
                "x".repeat(100),
            ]
        );
        // Truncated anywhere: an error, never a panic.
        for cut in 0..z.len() {
            assert!(ziplist(&z[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn listpack_decodes_every_encoding() {
        let mut l = vec![0u8; 6];
        l.extend([0x05, 1]); // 7-bit uint
        l.extend([0x82, b'a', b'b', 3]); // 6-bit string
        l.extend([0xDF, 0xFE, 2]); // 13-bit -2
        l.extend([0xF1, 0xD4, 0xFE, 3]); // int16 -300
        l.extend([0xF2, 0xA0, 0x86, 0x01, 4]); // int24 100000
        l.push(0xF3);
        l.extend((-2_000_000_000i32).to_le_bytes());
        l.push(5);
        l.push(0xF4);
        l.extend(i64::MIN.to_le_bytes());
        l.push(9);
        l.extend([0xE0, 100]); // 12-bit string
        l.extend([b'y'; 100]);
        l.push(102);
        l.push(0xF0); // 32-bit string
        l.extend(200u32.to_le_bytes());
        l.extend([b'z'; 200]);
        l.extend([205 & 127, 1]); // two back-length bytes
        l.push(0xFF);
        let e = listpack(&l).unwrap();
        assert_eq!(
            texts(&e),
            [
                "5".to_string(),
                "ab".into(),
                "-2".into(),
                "-300".into(),
                "100000".into(),
                "-2000000000".into(),
                i64::MIN.to_string(),
                "y".repeat(100),
                "z".repeat(200),
            ]
        );
        for cut in 0..l.len() {
            assert!(listpack(&l[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn intset_and_zipmap_decode() {
        let mut i = Vec::new();
        i.extend(2u32.to_le_bytes());
        i.extend(3u32.to_le_bytes());
        for v in [-1i16, 2, 30000] {
            i.extend(v.to_le_bytes());
        }
        assert_eq!(texts(&intset(&i).unwrap()), ["-1", "2", "30000"]);
        assert!(intset(&i[..i.len() - 1]).is_err());
        let mut bad = i.clone();
        bad[0] = 3;
        assert!(intset(&bad).is_err());

        let z = [1, 1, b'f', 2, 1, b'v', b'w', 0, 0xFF];
        assert_eq!(texts(&zipmap(&z).unwrap()), ["f", "vw"]);
        for cut in 0..z.len() {
            assert!(zipmap(&z[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn digests_depend_on_contents_not_order_or_encoding() {
        let set = |members: &[&str]| {
            let mut d = ValueDigest::new(Kind::Set);
            for m in members {
                d.element(&[m.as_bytes()]);
            }
            d.finish(b"k")
        };
        assert_eq!(set(&["a", "b", "c"]), set(&["c", "a", "b"]));
        assert_ne!(set(&["a", "b"]), set(&["a", "b", "c"]));
        assert_ne!(set(&["ab"]), set(&["a", "b"]));
        let list = |items: &[&str]| {
            let mut d = ValueDigest::new(Kind::List);
            for m in items {
                d.element(&[m.as_bytes()]);
            }
            d.finish(b"k")
        };
        assert_ne!(list(&["a", "b"]), list(&["b", "a"]));
        assert_ne!(list(&["a", "b"]), set(&["a", "b"]));
        // An integer listpack entry digests like the text Redis returns for it.
        let mut l = vec![0u8; 6];
        l.extend([0x05, 1, 0x82, b'a', b'b', 3, 0xFF]);
        let mut d = ValueDigest::new(Kind::List);
        add_list(&mut d, &listpack(&l).unwrap());
        assert_eq!(d.finish(b"k"), list(&["5", "ab"]));
        // Scores: one ULP and the sign of zero count.
        let zset = |score: f64| {
            let mut d = ValueDigest::new(Kind::Zset);
            d.zset_member(b"m", score);
            d.finish(b"k")
        };
        let x = 271.0f64 / 3.0;
        assert_ne!(zset(x), zset(f64::from_bits(x.to_bits() + 1)));
        assert_ne!(zset(0.0), zset(-0.0));
        assert_eq!(
            zset(x),
            zset(parse_score(format!("{x:.17}").as_bytes()).unwrap())
        );
        assert_eq!(parse_score(b"inf").unwrap(), f64::INFINITY);
        assert_eq!(parse_score(b"-inf").unwrap(), f64::NEG_INFINITY);
        // Keys: the same value under another key differs.
        let under = |key: &[u8]| {
            let mut d = ValueDigest::new(Kind::Set);
            d.element(&[b"a"]);
            d.finish(key)
        };
        assert_ne!(under(b"k1"), under(b"k2"));
        assert_ne!(under(b"k1"), set(&["a"]));
    }
}
