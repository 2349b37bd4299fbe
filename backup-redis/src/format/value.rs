#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! RDB value decoding: LZF blocks, and skipping over (while measuring) the encoded value
//! of every type, module values and module opcodes included.

use super::*;

/// The most an LZF block expands: a back reference of 3 bytes copies at most
/// 7 + 255 + 2 = 264 bytes (88×); rounded up.
pub const LZF_MAX_RATIO: u64 = 90;

/// What is reserved up front for a string whatever length it claims (1 MiB); beyond it
/// buffers grow with the bytes actually read or produced.
pub const PREALLOCATE: usize = 1 << 20;

/// Decompresses an LZF block into `out` (appended), expecting `len` bytes.
pub fn lzf_decompress(
    input: &[u8],
    len: usize,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let start = out.len();
    out.reserve(len.min(PREALLOCATE));
    let produced = |out: &Vec<u8>| out.len().saturating_sub(start);
    let mut it = input.iter();
    while let Some(&ctrl) = it.next() {
        let ctrl = usize::from(ctrl);
        if ctrl < 32 {
            let run = ctrl.saturating_add(1);
            let literal = it.as_slice().get(..run);
            match literal {
                Some(l) if produced(out).saturating_add(run) <= len => {
                    out.extend_from_slice(l);
                    it.nth(run.saturating_sub(1));
                }
                _ => return Err("literal run out of bounds".into()),
            }
        } else {
            let mut run = ctrl >> 5;
            if run == 7 {
                run =
                    run.saturating_add(usize::from(*it.next().ok_or("truncated back reference")?));
            }
            let low = usize::from(*it.next().ok_or("truncated back reference")?);
            let back = ((ctrl & 0x1f) << 8 | low).saturating_add(1);
            let run = run.saturating_add(2);
            let done = produced(out);
            if back > done || done.saturating_add(run) > len {
                return Err("back reference out of bounds".into());
            }
            // `back <= done <= out.len()`; byte by byte, as the source may overlap.
            let from = out.len().saturating_sub(back);
            for i in from..from.saturating_add(run) {
                let b = out.get(i).copied().ok_or("back reference out of bounds")?;
                out.push(b);
            }
        }
    }
    if produced(out) != len {
        return Err(format!(
            "decompressed to {} bytes, expected {len}",
            produced(out)
        ));
    }
    Ok(())
}

/// Walks one value of type `t` (the bytes after the key).
pub(super) fn skip_value(
    inp: &mut Input<'_>,
    t: u8,
    version: u32,
    type_name_out: &mut String,
) -> Result<()> {
    use types::*;
    match t {
        STRING => inp.skip_string()?,
        LIST | SET => {
            for _ in 0..inp.count()? {
                inp.skip_string()?;
            }
        }
        ZSET => {
            for _ in 0..inp.count()? {
                inp.skip_string()?;
                inp.skip_text_double()?;
            }
        }
        ZSET_2 => {
            for _ in 0..inp.count()? {
                inp.skip_string()?;
                inp.skip(8)?;
            }
        }
        HASH => {
            for _ in 0..inp.count()? {
                inp.skip_string()?;
                inp.skip_string()?;
            }
        }
        HASH_ZIPMAP | LIST_ZIPLIST | SET_INTSET | ZSET_ZIPLIST | HASH_ZIPLIST | HASH_LISTPACK
        | ZSET_LISTPACK | SET_LISTPACK | HASH_LISTPACK_EX_PRE_GA => inp.skip_string()?,
        HASH_LISTPACK_EX => {
            inp.skip(8)?; // minimum field expiry
            inp.skip_string()?;
        }
        LIST_QUICKLIST => {
            for _ in 0..inp.count()? {
                inp.skip_string()?;
            }
        }
        LIST_QUICKLIST_2 => {
            for _ in 0..inp.count()? {
                let container = inp.len()?;
                if container != 1 && container != 2 {
                    return Err(inp.err(format!("quicklist node container {container} is neither plain (1) nor packed (2)")));
                }
                inp.skip_string()?;
            }
        }
        HASH_METADATA | HASH_METADATA_PRE_GA => {
            if t == HASH_METADATA {
                inp.skip(8)?; // minimum field expiry
            }
            for _ in 0..inp.count()? {
                inp.len()?; // field TTL
                inp.skip_string()?;
                inp.skip_string()?;
            }
        }
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => {
            inp.what = "a stream";
            for _ in 0..inp.count()? {
                inp.skip_string()?; // master id
                inp.skip_string()?; // listpack
            }
            skip_stream_tail(inp, t)?;
        }
        MODULE_2 => {
            let id = inp.len()?;
            *type_name_out = module_type_name(id);
            inp.what = "a module value";
            skip_module_opcodes(inp)?;
        }
        MODULE_PRE_GA => {
            return Err(inp.err(
                "module value in the Redis 4.0 release-candidate format (type 6) cannot be read",
            ))
        }
        other => {
            return Err(inp.err(format!(
                "unknown value type {other} for RDB version {version} (corrupt stream or a newer Redis)"
            )))
        }
    }
    Ok(())
}

/// Walks what follows a stream's listpacks: length, ids, consumer groups, PELs and
/// consumers.
pub(super) fn skip_stream_tail(inp: &mut Input<'_>, t: u8) -> Result<()> {
    use types::*;
    inp.len()?; // length
    inp.len()?; // last id ms
    inp.len()?; // last id seq
    if t >= STREAM_LISTPACKS_2 {
        for _ in 0..5 {
            inp.len()?; // first id, max deleted id, entries added
        }
    }
    for _ in 0..inp.count()? {
        inp.skip_string()?; // group name
        inp.len()?;
        inp.len()?; // last delivered id
        if t >= STREAM_LISTPACKS_2 {
            inp.len()?; // entries read
        }
        for _ in 0..inp.count()? {
            inp.skip(16 + 8)?; // id, delivery time
            inp.len()?; // delivery count
        }
        for _ in 0..inp.count()? {
            inp.skip_string()?; // consumer name
            inp.skip(8)?; // seen time
            if t >= STREAM_LISTPACKS_3 {
                inp.skip(8)?; // active time
            }
            for _ in 0..inp.count()? {
                inp.skip(16)?;
            }
        }
    }
    Ok(())
}

pub(super) fn skip_module_opcodes(inp: &mut Input<'_>) -> Result<()> {
    loop {
        match inp.len()? {
            0 => return Ok(()),
            1 | 2 => {
                inp.len()?;
            }
            3 => inp.skip(4)?,
            4 => inp.skip(8)?,
            5 => inp.skip_string()?,
            other => return Err(inp.err(format!("unknown module value opcode {other}"))),
        }
    }
}
