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
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if ip + run > input.len() || out.len() - start + run > len {
                return Err("literal run out of bounds".into());
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut run = ctrl >> 5;
            if run == 7 {
                run += *input.get(ip).ok_or("truncated back reference")? as usize;
                ip += 1;
            }
            let low = *input.get(ip).ok_or("truncated back reference")? as usize;
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            run += 2;
            let produced = out.len() - start;
            if back > produced || produced + run > len {
                return Err("back reference out of bounds".into());
            }
            let from = out.len() - back;
            for i in 0..run {
                let b = out[from + i];
                out.push(b);
            }
        }
    }
    if out.len() - start != len {
        return Err(format!(
            "decompressed to {} bytes, expected {len}",
            out.len() - start
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
