//! Backup: the server's RDB snapshot, fetched like a replica fetches it.
//!
//! [`BackupMode::Replication`] (the default) connects as a replica: `AUTH`,
//! `REPLCONF capa eof capa psync2`, `REPLCONF rdb-only 1` (Redis 7+: the server closes
//! the link after the snapshot instead of streaming commands), `PSYNC ? -1`, falling
//! back to `SYNC` on servers without `PSYNC`. The server forks and sends a point-in-time
//! snapshot either from disk (`$<len>` then the bytes) or diskless (`$EOF:<40-byte
//! mark>`, the bytes, then the same mark, which is not part of the file); bare `\n`
//! keep-alives before it are skipped. The bytes go straight into the pipeline; a
//! connection that closes or stalls before the end fails the backup.
//!
//! [`BackupMode::Scan`] is for servers that refuse replication (managed services often
//! block `PSYNC`): it walks every database with `SCAN`, takes `DUMP` + `PTTL` of each key
//! and writes the payloads into an RDB file of the same format (aux fields, `SELECTDB`,
//! expiry, CRC-64). It is **not point-in-time**: keys changed during the walk are caught
//! at different moments, and keys created during it may be missed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use backup_core::{FormatReader, Result, Source, SourceFacts};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::{parse_info, server_error, RedisConnection, Reply};
use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::format::{
    check_dump_footer, max_rdb_for_redis, split_dump_payload, RdbBuilder, RdbFormat,
};

/// How a backup reads the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// The server's own snapshot over the replication protocol (point-in-time).
    #[default]
    Replication,
    /// `SCAN` + `DUMP` + `PTTL` per key into an RDB file (not point-in-time).
    Scan,
}

impl std::str::FromStr for BackupMode {
    type Err = RedisError;
    fn from_str(s: &str) -> std::result::Result<Self, RedisError> {
        match s.to_ascii_lowercase().as_str() {
            "replication" | "psync" | "sync" => Ok(BackupMode::Replication),
            "scan" => Ok(BackupMode::Scan),
            other => Err(RedisError::Config(format!(
                "unknown Redis backup mode `{other}` (replication or scan)"
            ))),
        }
    }
}

impl BackupMode {
    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::Replication => "replication",
            BackupMode::Scan => "scan",
        }
    }
}

/// Backs up a whole Redis server (every database, functions, module values) as an RDB
/// file.
pub struct RedisSource {
    config: RedisConfig,
    mode: BackupMode,
    scan_count: u32,
}

impl std::fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSource")
            .field("server", &self.config.addr())
            .field("mode", &self.mode)
            .finish()
    }
}

impl RedisSource {
    /// A source for the server `config` names, in `mode`. Validates the config.
    pub fn new(config: RedisConfig, mode: BackupMode) -> Result<Self> {
        config.validate().map_err(|e| e.at(&config.addr()))?;
        Ok(RedisSource {
            config,
            mode,
            scan_count: 500,
        })
    }

    fn addr(&self) -> String {
        self.config.addr()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn server_facts(
    conn: &mut RedisConnection,
    facts: &mut SourceFacts,
) -> std::result::Result<BTreeMap<String, String>, RedisError> {
    // INFO may be refused to a restricted ACL user (an error reply): the facts are then
    // just missing. A broken or malformed reply is not swallowed: the connection would
    // be out of step with the server.
    let mut info = BTreeMap::new();
    for section in ["server", "replication"] {
        match conn
            .command(&[b"INFO".as_slice(), section.as_bytes()])
            .await
        {
            Ok(Reply::Bulk(Some(text))) => info.extend(parse_info(&String::from_utf8_lossy(&text))),
            Ok(_) => {}
            Err(e @ (RedisError::Protocol { .. } | RedisError::ConnectionLost { .. })) => {
                return Err(e)
            }
            Err(_) => {}
        }
    }
    if let Some(v) = info.get("redis_version") {
        facts.insert("redis_version".into(), serde_json::json!(v));
    }
    if let Some(v) = info.get("role") {
        facts.insert("role".into(), serde_json::json!(v));
    }
    if let Some(v) = info.get("redis_mode") {
        facts.insert("mode".into(), serde_json::json!(v));
    }
    Ok(info)
}

async fn write_out(out: &mut (dyn AsyncWrite + Send + Unpin), bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)
        .await
        .map_err(|e| backup_core::Error::from_io(e, "passing the RDB stream on"))
}

#[async_trait]
impl Source for RedisSource {
    fn kind(&self) -> &str {
        "redis"
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(RdbFormat)
    }

    async fn dump(&mut self, out: backup_core::source::StreamWriter<'_>) -> Result<SourceFacts> {
        let addr = self.addr();
        let mut conn = RedisConnection::connect(&self.config)
            .await
            .map_err(|e| e.at(&addr))?;
        let mut facts = SourceFacts::new();
        facts.insert("host".into(), serde_json::json!(addr));
        facts.insert("backup_mode".into(), serde_json::json!(self.mode.as_str()));
        let info = server_facts(&mut conn, &mut facts)
            .await
            .map_err(|e| e.at(&addr))?;
        match self.mode {
            BackupMode::Replication => {
                facts.insert(
                    "consistency".into(),
                    serde_json::json!("point-in-time snapshot (the server's fork)"),
                );
                replicate(&mut conn, out, &mut facts)
                    .await
                    .map_err(|e| e.into_core(&addr))?;
            }
            BackupMode::Scan => {
                facts.insert(
                    "consistency".into(),
                    serde_json::json!(
                        "not point-in-time: keys read one by one with SCAN + DUMP + PTTL"
                    ),
                );
                scan(&mut conn, out, &info, self.scan_count, &mut facts)
                    .await
                    .map_err(|e| e.into_core(&addr))?;
            }
        }
        Ok(facts)
    }
}

/// An error of the source: a Redis one (to be named with the server) or a pipeline one.
enum DumpError {
    Redis(RedisError),
    Core(backup_core::Error),
}

impl DumpError {
    fn into_core(self, addr: &str) -> backup_core::Error {
        match self {
            DumpError::Redis(e) => e.at(addr),
            DumpError::Core(e) => e,
        }
    }
}

impl From<RedisError> for DumpError {
    fn from(e: RedisError) -> Self {
        DumpError::Redis(e)
    }
}

impl From<backup_core::Error> for DumpError {
    fn from(e: backup_core::Error) -> Self {
        DumpError::Core(e)
    }
}

const REFUSED_HINT: &str = "the server or its ACL refuses replication; grant the user +psync +sync +replconf, or back up with --mode scan (not point-in-time)";

async fn replicate(
    conn: &mut RedisConnection,
    out: &mut (dyn AsyncWrite + Send + Unpin),
    facts: &mut SourceFacts,
) -> std::result::Result<(), DumpError> {
    match conn
        .command(&[&b"REPLCONF"[..], b"capa", b"eof", b"capa", b"psync2"])
        .await?
    {
        Reply::Error(e) if e.to_ascii_uppercase().starts_with("NOPERM") => {
            return Err(RedisError::Refused {
                operation: "REPLCONF".into(),
                message: format!("{e}; {REFUSED_HINT}"),
            }
            .into())
        }
        Reply::Error(e) => return Err(server_error("REPLCONF", &e).into()),
        _ => {}
    }
    // Redis 7+: a one-shot snapshot, the server closes the link after it. Older servers
    // answer with an error, which is fine.
    let _ = conn.command(&[&b"REPLCONF"[..], b"rdb-only", b"1"]).await?;

    conn.send_raw(b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n", "PSYNC")
        .await?;
    let mut line = next_line(conn, "PSYNC").await?;
    let mut command = "PSYNC";
    if line.starts_with(b"-") {
        let msg = String::from_utf8_lossy(&line[1..]).into_owned();
        let upper = msg.to_ascii_uppercase();
        if upper.starts_with("NOPERM") {
            return Err(RedisError::Refused {
                operation: "PSYNC".into(),
                message: format!("{msg}; {REFUSED_HINT}"),
            }
            .into());
        }
        if upper.contains("UNKNOWN COMMAND") {
            conn.send_raw(b"*1\r\n$4\r\nSYNC\r\n", "SYNC").await?;
            command = "SYNC";
            line = next_line(conn, "SYNC").await?;
        } else {
            return Err(server_error("PSYNC", &msg).into());
        }
    } else if line.starts_with(b"+FULLRESYNC") {
        line = next_line(conn, "PSYNC").await?;
    } else if line.starts_with(b"+") {
        return Err(RedisError::Protocol {
            operation: "PSYNC".into(),
            message: format!(
                "expected +FULLRESYNC, got `{}`",
                String::from_utf8_lossy(&line)
            ),
        }
        .into());
    }
    if line.starts_with(b"-") {
        let msg = String::from_utf8_lossy(&line[1..]).into_owned();
        if msg.to_ascii_uppercase().starts_with("NOPERM") {
            return Err(RedisError::Refused {
                operation: command.into(),
                message: format!("{msg}; {REFUSED_HINT}"),
            }
            .into());
        }
        return Err(server_error(command, &msg).into());
    }
    if !line.starts_with(b"$") {
        return Err(RedisError::Protocol {
            operation: command.into(),
            message: format!(
                "expected the snapshot header `$<length>` or `$EOF:<mark>`, got `{}`",
                String::from_utf8_lossy(&line[..line.len().min(64)])
            ),
        }
        .into());
    }
    let timeout = conn.timeout();
    let lost = |message: String| RedisError::ConnectionLost {
        operation: "the snapshot transfer".into(),
        message,
    };
    let mut header_seen = Vec::with_capacity(9);
    let mut note_header = |chunk: &[u8], facts: &mut SourceFacts| {
        if header_seen.len() < 9 {
            let need = 9 - header_seen.len();
            header_seen.extend_from_slice(&chunk[..need.min(chunk.len())]);
            if header_seen.len() == 9 && header_seen.starts_with(b"REDIS") {
                if let Ok(v) = std::str::from_utf8(&header_seen[5..])
                    .unwrap_or("")
                    .parse::<u32>()
                {
                    facts.insert("rdb_version".into(), serde_json::json!(v));
                }
            }
        }
    };
    let reader = conn.reader();
    let mut buf = vec![0u8; 256 * 1024];
    if let Some(mark) = line.strip_prefix(b"$EOF:") {
        if mark.len() != 40 {
            return Err(RedisError::Protocol {
                operation: command.into(),
                message: format!("end-of-transfer mark of {} bytes, expected 40", mark.len()),
            }
            .into());
        }
        facts.insert("transfer".into(), serde_json::json!("diskless"));
        let mark = mark.to_vec();
        let finder = memchr::memmem::Finder::new(&mark);
        // buf[..held] holds the last bytes of the previous read that could be the
        // start of the mark: they are passed on only once more bytes prove they are not.
        let mut held = 0usize;
        let mut total = 0u64;
        loop {
            let n = tokio::time::timeout(timeout, reader.read(&mut buf[held..]))
                .await
                .map_err(|_| {
                    lost(format!(
                        "the server sent nothing for {}s after {total} bytes",
                        timeout.as_secs()
                    ))
                })?
                .map_err(|e| lost(format!("{e} after {total} bytes")))?;
            if n == 0 {
                return Err(lost(format!(
                    "the server closed the connection after {total} bytes, before the end-of-transfer mark (incomplete snapshot)"
                ))
                .into());
            }
            let filled = held + n;
            if let Some(p) = finder.find(&buf[..filled]) {
                note_header(&buf[..p], facts);
                write_out(out, &buf[..p]).await?;
                return Ok(());
            }
            let keep = filled.min(mark.len() - 1);
            let pass = filled - keep;
            note_header(&buf[..pass], facts);
            write_out(out, &buf[..pass]).await?;
            total += pass as u64;
            buf.copy_within(pass..filled, 0);
            held = keep;
        }
    } else {
        let text = String::from_utf8_lossy(&line[1..]).into_owned();
        let len: u64 = text.trim().parse().map_err(|_| RedisError::Protocol {
            operation: command.into(),
            message: format!("bad snapshot length `{text}`"),
        })?;
        facts.insert("transfer".into(), serde_json::json!("disk"));
        let mut left = len;
        while left > 0 {
            let want = (left as usize).min(buf.len());
            let n = tokio::time::timeout(timeout, reader.read(&mut buf[..want]))
                .await
                .map_err(|_| {
                    lost(format!(
                        "the server sent nothing for {}s after {} of {len} bytes",
                        timeout.as_secs(),
                        len - left
                    ))
                })?
                .map_err(|e| lost(format!("{e} after {} of {len} bytes", len - left)))?;
            if n == 0 {
                return Err(lost(format!(
                    "the server closed the connection after {} of {len} bytes (incomplete snapshot)",
                    len - left
                ))
                .into());
            }
            note_header(&buf[..n], facts);
            write_out(out, &buf[..n]).await?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// The next non-empty line (bare `\n` keep-alives are skipped).
async fn next_line(
    conn: &mut RedisConnection,
    op: &str,
) -> std::result::Result<Vec<u8>, RedisError> {
    loop {
        let line = conn.read_line(op).await?;
        if !line.is_empty() {
            return Ok(line);
        }
    }
}

async fn scan(
    conn: &mut RedisConnection,
    out: &mut (dyn AsyncWrite + Send + Unpin),
    server_info: &BTreeMap<String, String>,
    count: u32,
    facts: &mut SourceFacts,
) -> std::result::Result<(), DumpError> {
    let keyspace = conn.info("keyspace").await?;
    // "db3" → "keys=10,expires=2,avg_ttl=0"
    let mut dbs: Vec<(u64, u64, u64)> = keyspace
        .iter()
        .filter_map(|(k, v)| {
            let db: u64 = k.strip_prefix("db")?.parse().ok()?;
            let field = |name: &str| {
                v.split(',')
                    .find_map(|kv| {
                        kv.strip_prefix(name)?
                            .strip_prefix('=')?
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            Some((db, field("keys"), field("expires")))
        })
        .collect();
    dbs.sort();
    let redis_version = server_info
        .get("redis_version")
        .cloned()
        .unwrap_or_default();

    let functions = match conn.command(&[&b"FUNCTION"[..], b"DUMP"]).await? {
        Reply::Bulk(Some(payload)) => {
            let (entries, _) = check_dump_footer(&payload).map_err(|e| RedisError::Protocol {
                operation: "FUNCTION DUMP".into(),
                message: e,
            })?;
            entries.to_vec()
        }
        Reply::Error(e) if e.to_ascii_uppercase().contains("UNKNOWN COMMAND") => Vec::new(),
        Reply::Error(e) => return Err(server_error("FUNCTION DUMP", &e).into()),
        _ => Vec::new(),
    };

    let mut builder: Option<RdbBuilder> = None;
    let mut rdb_version: Option<u32> = None;
    let start_builder = |version: u32| {
        let mut b = RdbBuilder::new(version);
        b.aux("redis-ver", &redis_version);
        b.aux("redis-bits", "64");
        b.aux("ctime", &(now_ms() / 1000).to_string());
        b.aux("dbseal-mode", "scan");
        b.functions(&functions);
        b
    };
    let mut keys_written = 0u64;
    for (db, size, expires) in dbs {
        conn.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
            .await?;
        let mut db_started = false;
        let mut cursor = b"0".to_vec();
        loop {
            let reply = conn
                .query(&[
                    b"SCAN".to_vec(),
                    cursor.clone(),
                    b"COUNT".to_vec(),
                    count.to_string().into_bytes(),
                ])
                .await?;
            let bad = || RedisError::Protocol {
                operation: "SCAN".into(),
                message: "unexpected reply shape".into(),
            };
            let mut parts = reply.into_array().ok_or_else(bad)?.into_iter();
            let next = parts
                .next()
                .and_then(|r| r.as_bytes().map(<[u8]>::to_vec))
                .ok_or_else(bad)?;
            let keys: Vec<Vec<u8>> = parts
                .next()
                .and_then(Reply::into_array)
                .ok_or_else(bad)?
                .into_iter()
                .filter_map(|r| match r {
                    Reply::Bulk(Some(k)) => Some(k),
                    _ => None,
                })
                .collect();
            if !keys.is_empty() {
                let mut cmds: Vec<[&[u8]; 2]> = Vec::with_capacity(keys.len() * 2);
                for k in &keys {
                    cmds.push([b"PTTL", k]);
                    cmds.push([b"DUMP", k]);
                }
                let replies = conn.pipeline(&cmds).await?;
                let taken_at = now_ms();
                for (i, k) in keys.iter().enumerate() {
                    let pttl = &replies[2 * i];
                    let dump = &replies[2 * i + 1];
                    if let Reply::Error(e) = dump {
                        return Err(server_error("DUMP", e).into());
                    }
                    if let Reply::Error(e) = pttl {
                        return Err(server_error("PTTL", e).into());
                    }
                    let Reply::Bulk(Some(payload)) = dump else {
                        continue; // deleted since SCAN saw it
                    };
                    let expire = match pttl.as_int() {
                        Some(-2) => continue,
                        Some(ms) if ms >= 0 => Some(taken_at + ms),
                        _ => None,
                    };
                    let (t, value, version) =
                        split_dump_payload(payload).map_err(|e| RedisError::Protocol {
                            operation: "DUMP".into(),
                            message: e,
                        })?;
                    match rdb_version {
                        None => {
                            rdb_version = Some(version);
                            builder = Some(start_builder(version));
                        }
                        Some(v) if v != version => {
                            return Err(RedisError::Protocol {
                                operation: "DUMP".into(),
                                message: format!(
                                    "payloads of RDB versions {v} and {version} in one server"
                                ),
                            }
                            .into())
                        }
                        Some(_) => {}
                    }
                    let b = builder.as_mut().expect("started");
                    if !db_started {
                        b.select_db(db, size, expires);
                        db_started = true;
                    }
                    b.key(k, expire, t, value);
                    keys_written += 1;
                }
                if let Some(b) = builder.as_mut() {
                    if b.pending() >= 256 * 1024 {
                        let bytes = b.take();
                        write_out(out, &bytes).await?;
                    }
                }
            }
            if next == b"0" {
                break;
            }
            cursor = next;
        }
    }
    let version = rdb_version
        .unwrap_or_else(|| max_rdb_for_redis(&redis_version).min(crate::RDB_MAX_VERSION));
    let b = builder.unwrap_or_else(|| start_builder(version));
    let mut b = b;
    let bytes = b.take();
    write_out(out, &bytes).await?;
    write_out(out, &b.finish()).await?;
    facts.insert("rdb_version".into(), serde_json::json!(version));
    facts.insert("keys_read".into(), serde_json::json!(keys_written));
    Ok(())
}
