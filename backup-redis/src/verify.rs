//! Verification level 3 for Redis: restore into scratch databases, compare the live
//! key counts per type (and keys with a TTL) with the manifest, then every value as the
//! server returns it with the backup's content digests ([`crate::format::digest`]),
//! naming the keys that differ.
//!
//! The scratch databases are empty database indexes of the given server (one per
//! database in the backup); they are flushed afterwards, whatever the outcome. Keys
//! whose expiry passed before the restore are not restored, and are taken off the
//! expected counts.

use std::collections::{BTreeMap, HashMap};

use backup_core::{
    BackupStore, Contents, ErrorKind, Manifest, RestoreOptions, Result, Sink, SinkReport,
    VerifyLevel, VerifyReport,
};

use crate::client::{RedisConnection, Reply};
use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::format::digest::{self, Kind, ValueDigest};
use crate::format::{KeyEntry, RdbVisitor};
use crate::sink::{visit_stream, RedisRestoreOptions, RedisSink, RestoreMethod, RestoreOutcome};

/// Restores backup `manifest` into scratch databases of the server `target` names and
/// compares key counts per database and type, and keys with a TTL, with the manifest.
pub async fn verify_restore(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    target: &RedisConfig,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<VerifyReport> {
    let addr = target.addr();
    let fail = |what: String| manifest.verification_error(what);
    let mut ctl = RedisConnection::connect(target)
        .await
        .map_err(|e| e.at(&addr))?;
    let sources: Vec<u32> = manifest
        .contents
        .counts
        .get("keys")
        .map(|k| {
            let mut v: Vec<u32> = k
                .keys()
                .filter_map(|n| n.strip_prefix("db")?.split('.').next()?.parse().ok())
                .collect();
            v.dedup();
            v
        })
        .unwrap_or_default();
    let scratch = pick_scratch(&mut ctl, sources.len())
        .await
        .map_err(|e| e.at(&addr))?;
    let db_map: BTreeMap<u32, u32> = sources
        .iter()
        .copied()
        .zip(scratch.iter().copied())
        .collect();
    let mut sink = RedisSink::new(
        target.clone(),
        RedisRestoreOptions {
            db_map: db_map.clone(),
            functions: false,
            method: RestoreMethod::Direct,
            ..Default::default()
        },
    )?;
    let clock = std::time::Instant::now();
    let mut load_seconds = None;
    let result = async {
        // Interrupted (SIGINT, Ctrl-C): the restore stops and the scratch databases are
        // flushed below, as after any failure.
        let mut cancellable = backup_core::CancellableSink::new(&mut sink, cancel.clone());
        backup_core::restore(store, manifest, "data", &mut cancellable, options)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Interrupted => e,
                _ => fail(format!("level-3 restore into {addr} failed: {e}")),
            })?;
        load_seconds = Some(clock.elapsed().as_secs_f64());
        let outcome = sink.outcome().cloned().unwrap_or_default();
        let mut expected = Contents::default();
        if let Some(keys) = manifest.contents.counts.get("keys") {
            for (name, n) in keys {
                expected.add("keys", name, *n);
            }
        }
        if let Some(exp) = manifest.contents.counts.get("expires") {
            for (name, n) in exp {
                expected.add("expires", name, *n);
            }
        }
        for ((db, t), n) in &outcome.skipped_expired {
            sub(&mut expected, "keys", &format!("db{db}.{t}"), *n);
            sub(&mut expected, "expires", &format!("db{db}"), *n);
        }
        let mut live = Contents::default();
        let mut live_digests = BTreeMap::new();
        for (src, db) in &db_map {
            let sum = read_live(&mut ctl, *src, *db, &mut live)
                .await
                .map_err(|e| e.at(&addr))?;
            live_digests.insert(*src, sum);
        }
        let diffs = expected.diff_counts(&live, &["keys", "expires"]);
        if !diffs.is_empty() {
            return Err(fail(format!(
                "restored keys differ from the manifest: {}",
                diffs.join("; ")
            )));
        }
        let content = compare_digests(store, manifest, options, &mut ctl, &live_digests, &outcome)
            .await?;
        let total: u64 = live.counts.get("keys").map(|k| k.values().sum()).unwrap_or(0);
        let skipped: u64 = outcome.skipped_expired.values().sum();
        Ok(vec![format!(
            "restored {total} keys into scratch databases {} on {addr}; key counts per database and type and TTL counts match the manifest{content}{}",
            scratch.iter().map(|d| format!("db{d}")).collect::<Vec<_>>().join(", "),
            if skipped > 0 { format!(" ({skipped} keys had expired and were not restored)") } else { String::new() }
        )])
    }
    .await;
    // Clean up whatever happened.
    for db in &scratch {
        let _ = ctl
            .query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
            .await;
        let _ = ctl.query(&[&b"FLUSHDB"[..]]).await;
    }
    let checks = result?;
    Ok(VerifyReport {
        backup_id: manifest.backup_id.to_string(),
        level: VerifyLevel::Restore,
        checks,
        load_seconds,
    })
}

/// Compares the values of the databases a restore wrote (`outcome`, from
/// [`RedisSink::outcome`]) on `target` with the backup's content digests, naming the
/// keys that differ; returns what was compared, for a report.
pub async fn compare_live_content(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    target: &RedisConfig,
    outcome: &RestoreOutcome,
) -> Result<String> {
    let addr = target.addr();
    let mut conn = RedisConnection::connect(target)
        .await
        .map_err(|e| e.at(&addr))?;
    let mut counts = Contents::default();
    let mut live_digests = BTreeMap::new();
    for (src, db) in &outcome.db_map {
        let sum = read_live(&mut conn, *src, *db, &mut counts)
            .await
            .map_err(|e| e.at(&addr))?;
        live_digests.insert(*src, sum);
    }
    compare_digests(store, manifest, options, &mut conn, &live_digests, outcome).await
}

/// Each source database's digest of its values as the server returns them, against the
/// one the backup computed from the RDB stream (less the keys that had expired and were
/// not restored).
async fn compare_digests(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    conn: &mut RedisConnection,
    live_digests: &BTreeMap<u32, u128>,
    outcome: &RestoreOutcome,
) -> Result<String> {
    let fail = |what: String| manifest.verification_error(what);
    let mut compared = Vec::new();
    let mut differing = Vec::new();
    for (src, live_sum) in live_digests {
        let fact = digest::fact_name(u64::from(*src));
        let Some(recorded) = manifest.contents.facts.get(&fact) else {
            continue;
        };
        let recorded = u128::from_str_radix(recorded, 16)
            .map_err(|_| fail(format!("manifest fact {fact} is not a 128-bit hex digest")))?;
        let skipped = outcome.skipped_digest.get(src).copied().unwrap_or(0);
        if recorded.wrapping_sub(skipped) == *live_sum {
            compared.push(*src);
        } else {
            differing.push(*src);
        }
    }
    let dbs = |v: &[u32]| {
        v.iter()
            .map(|d| format!("db{d}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !differing.is_empty() {
        let named =
            name_differing_keys(store, manifest, options, conn, &outcome.db_map, &differing)
                .await
                .unwrap_or_else(|e| format!(" (the differing keys could not be listed: {e})"));
        return Err(fail(format!(
            "restored values differ from the backup in {}{named}",
            dbs(&differing)
        )));
    }
    Ok(if compared.len() == live_digests.len() {
        "; every value read back matches the backup bit for bit (module values: counts only)"
            .to_string()
    } else if compared.is_empty() {
        "; this backup records no content digests (made by an older dbseal): counts only"
            .to_string()
    } else {
        format!(
            "; values of {} match the backup bit for bit, the others have no recorded digest",
            dbs(&compared)
        )
    })
}

fn sub(c: &mut Contents, group: &str, name: &str, n: u64) {
    if let Some(v) = c.counts.get_mut(group).and_then(|g| g.get_mut(name)) {
        *v = v.saturating_sub(n);
        if *v == 0 {
            c.counts.get_mut(group).expect("exists").remove(name);
        }
    }
}

async fn pick_scratch(
    conn: &mut RedisConnection,
    n: usize,
) -> std::result::Result<Vec<u32>, RedisError> {
    let mut free = Vec::new();
    let mut db = 0u32;
    // Highest indexes first: applications mostly use the low ones.
    let mut candidates = Vec::new();
    loop {
        match conn
            .command(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
            .await?
        {
            Reply::Error(_) => break,
            _ => candidates.push(db),
        }
        db += 1;
        if db >= 1024 {
            break;
        }
    }
    for db in candidates.into_iter().rev() {
        if free.len() == n {
            break;
        }
        conn.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
            .await?;
        if conn.query(&[&b"DBSIZE"[..]]).await?.as_int() == Some(0) {
            free.push(db);
        }
    }
    if free.len() < n {
        return Err(RedisError::Refused {
            operation: "level-3 verification".into(),
            message: format!(
                "it needs {n} empty database(s) for scratch restores, the server has {} free",
                free.len()
            ),
        });
    }
    Ok(free)
}

/// Adds `keys["db<src>.<type>"]` and `expires["db<src>"]` for the keys of `db`, and
/// returns the database's content digest (see [`crate::format::digest`]).
async fn read_live(
    conn: &mut RedisConnection,
    src: u32,
    db: u32,
    out: &mut Contents,
) -> std::result::Result<u128, RedisError> {
    conn.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
        .await?;
    let mut sum = 0u128;
    let mut cursor = b"0".to_vec();
    loop {
        let (next, keys) = scan_page(conn, &[b"SCAN"], &cursor, "SCAN").await?;
        let keys: Vec<Vec<u8>> = keys
            .into_iter()
            .filter_map(|r| match r {
                Reply::Bulk(Some(k)) => Some(k),
                _ => None,
            })
            .collect();
        if !keys.is_empty() {
            let mut cmds: Vec<[&[u8]; 2]> = Vec::with_capacity(keys.len().saturating_mul(2));
            for k in &keys {
                cmds.push([b"TYPE", k]);
                cmds.push([b"PTTL", k]);
            }
            let replies = conn.pipeline(&cmds).await?;
            for (k, pair) in keys.iter().zip(replies.chunks(2)) {
                let [t, ttl] = pair else {
                    return Err(bad_shape("TYPE/PTTL"));
                };
                let t = t.as_text().unwrap_or_default();
                if t == "none" {
                    continue;
                }
                out.add("keys", &format!("db{src}.{t}"), 1);
                if ttl.as_int().is_some_and(|ms| ms >= 0) {
                    out.add("expires", &format!("db{src}"), 1);
                }
                if let Some(d) = live_value_digest(conn, k, &t).await? {
                    sum = sum.wrapping_add(d);
                }
            }
        }
        if next == b"0" {
            return Ok(sum);
        }
        cursor = next;
    }
}

/// One page of a `SCAN`-family command: `args` (the command, and the key for
/// `SSCAN`/`HSCAN`/`ZSCAN`), the cursor, `COUNT 1000`. Returns the next cursor (`0` at
/// the end) and the page's items.
async fn scan_page(
    conn: &mut RedisConnection,
    args: &[&[u8]],
    cursor: &[u8],
    op: &str,
) -> std::result::Result<(Vec<u8>, Vec<Reply>), RedisError> {
    let mut cmd = args.to_vec();
    cmd.extend([cursor, b"COUNT", b"1000"]);
    let mut parts = conn
        .query(&cmd)
        .await?
        .into_array()
        .ok_or_else(|| bad_shape(op))?
        .into_iter();
    let next = parts
        .next()
        .and_then(|r| r.as_bytes().map(<[u8]>::to_vec))
        .ok_or_else(|| bad_shape(op))?;
    let items = parts
        .next()
        .and_then(Reply::into_array)
        .ok_or_else(|| bad_shape(op))?;
    Ok((next, items))
}

fn bad_shape(operation: &str) -> RedisError {
    RedisError::Protocol {
        operation: operation.into(),
        message: "unexpected reply shape".into(),
    }
}

fn bulk(r: Reply, op: &str) -> std::result::Result<Vec<u8>, RedisError> {
    match r {
        Reply::Bulk(Some(b)) => Ok(b),
        Reply::Status(s) => Ok(s.into_bytes()),
        Reply::Int(i) => Ok(i.to_string().into_bytes()),
        _ => Err(bad_shape(op)),
    }
}

/// The canonical digest of `key` and its value (of `TYPE` `t`) as the server returns
/// it to read commands; `None` for module types.
async fn live_value_digest(
    conn: &mut RedisConnection,
    key: &[u8],
    t: &str,
) -> std::result::Result<Option<u128>, RedisError> {
    const CHUNK: i64 = 1000;
    let Some(kind) = Kind::of_type_name(t) else {
        return Ok(None);
    };
    let mut d = ValueDigest::new(kind);
    match kind {
        Kind::String => {
            let v = bulk(conn.query(&[b"GET".as_slice(), key]).await?, "GET")?;
            d.element(&[&v]);
        }
        Kind::List => {
            let mut start = 0i64;
            loop {
                let stop = start.saturating_add(CHUNK - 1);
                let items = conn
                    .query(&[
                        b"LRANGE".as_slice(),
                        key,
                        start.to_string().as_bytes(),
                        stop.to_string().as_bytes(),
                    ])
                    .await?
                    .into_array()
                    .ok_or_else(|| bad_shape("LRANGE"))?;
                let n = items.len();
                for i in items {
                    d.element(&[&bulk(i, "LRANGE")?]);
                }
                if (n as i64) < CHUNK {
                    break;
                }
                start = start.saturating_add(CHUNK);
            }
        }
        Kind::Set | Kind::Hash | Kind::Zset => {
            let (cmd, op): (&[u8], &str) = match kind {
                Kind::Set => (b"SSCAN", "SSCAN"),
                Kind::Hash => (b"HSCAN", "HSCAN"),
                _ => (b"ZSCAN", "ZSCAN"),
            };
            // SCAN may return an element more than once: each is counted once.
            let mut seen = std::collections::HashSet::new();
            let mut cursor = b"0".to_vec();
            loop {
                let (next, items) = scan_page(conn, &[cmd, key], &cursor, op).await?;
                let mut items = items.into_iter();
                while let Some(first) = items.next() {
                    let first = bulk(first, op)?;
                    let second = match kind {
                        Kind::Set => None,
                        _ => Some(bulk(items.next().ok_or_else(|| bad_shape(op))?, op)?),
                    };
                    if !seen.insert(digest::member_id(&first)) {
                        continue;
                    }
                    match (kind, second) {
                        (Kind::Set, _) => d.element(&[&first]),
                        (Kind::Zset, Some(score)) => {
                            let score =
                                digest::parse_score(&score).map_err(|m| RedisError::Protocol {
                                    operation: op.into(),
                                    message: m,
                                })?;
                            d.zset_member(&first, score);
                        }
                        (_, Some(value)) => d.element(&[&first, &value]),
                        (_, None) => return Err(bad_shape(op)),
                    }
                }
                if next == b"0" {
                    break;
                }
                cursor = next;
            }
        }
        Kind::Stream => {
            let mut start = b"-".to_vec();
            loop {
                let entries = conn
                    .query(&[b"XRANGE".as_slice(), key, &start, b"+", b"COUNT", b"1000"])
                    .await?
                    .into_array()
                    .ok_or_else(|| bad_shape("XRANGE"))?;
                let n = entries.len();
                let mut last = None;
                for e in entries {
                    let mut parts = e
                        .into_array()
                        .ok_or_else(|| bad_shape("XRANGE"))?
                        .into_iter();
                    let id = bulk(parts.next().ok_or_else(|| bad_shape("XRANGE"))?, "XRANGE")?;
                    let fields: Vec<Vec<u8>> = parts
                        .next()
                        .and_then(Reply::into_array)
                        .ok_or_else(|| bad_shape("XRANGE"))?
                        .into_iter()
                        .map(|f| bulk(f, "XRANGE"))
                        .collect::<std::result::Result<_, _>>()?;
                    let (ms, seq) = std::str::from_utf8(&id)
                        .ok()
                        .and_then(|id| id.split_once('-'))
                        .and_then(|(ms, seq)| {
                            Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?))
                        })
                        .ok_or_else(|| bad_shape("XRANGE"))?;
                    let parts: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
                    d.stream_entry(ms, seq, &parts);
                    last = Some(id);
                }
                match last {
                    Some(id) if n as i64 >= CHUNK => {
                        start = b"(".to_vec();
                        start.extend_from_slice(&id);
                    }
                    _ => break,
                }
            }
        }
    }
    Ok(Some(d.finish(key)))
}

/// The most keys of a differing database whose digests are held to name the differing
/// ones (16 bytes + the key each); a larger database is reported by database only.
const NAME_KEYS_LIMIT: usize = 1_000_000;
/// How many differing keys an error names.
const NAMED_KEYS: usize = 10;

/// Names the keys whose values differ: reads the differing scratch databases' per-key
/// digests, then streams the backup again comparing key by key. Returns text to append
/// to the error (`": key … (changed), …"`).
async fn name_differing_keys(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    conn: &mut RedisConnection,
    db_map: &BTreeMap<u32, u32>,
    differing: &[u32],
) -> Result<String> {
    let mut live: HashMap<u64, HashMap<Vec<u8>, u128>> = HashMap::new();
    for src in differing {
        let Some(db) = db_map.get(src) else { continue };
        let Some(keys) = live_key_digests(conn, *db)
            .await
            .map_err(|e| e.at(conn.addr()))?
        else {
            return Ok(String::new());
        };
        live.insert(u64::from(*src), keys);
    }
    let visitor = KeyCompare {
        live,
        now_ms: crate::sink::now_ms(),
        found: Vec::new(),
    };
    let mut sink = CompareSink {
        visitor: Some(visitor),
    };
    backup_core::restore(store, manifest, "data", &mut sink, options).await?;
    let Some(mut v) = sink.visitor else {
        return Ok(String::new());
    };
    for (db, rest) in &v.live {
        for key in rest.keys() {
            v.found
                .push(format!("db{db} {} (not in the backup)", printable(key)));
        }
    }
    let n = v.found.len();
    v.found.truncate(NAMED_KEYS);
    Ok(format!(
        ": {}{}",
        v.found.join(", "),
        if n > NAMED_KEYS {
            format!(" and {} more", n - NAMED_KEYS)
        } else {
            String::new()
        }
    ))
}

fn printable(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
}

/// Every key of `db` with its key digest, or `None` past [`NAME_KEYS_LIMIT`].
async fn live_key_digests(
    conn: &mut RedisConnection,
    db: u32,
) -> std::result::Result<Option<HashMap<Vec<u8>, u128>>, RedisError> {
    conn.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
        .await?;
    let mut out = HashMap::new();
    let mut cursor = b"0".to_vec();
    loop {
        let (next, keys) = scan_page(conn, &[b"SCAN"], &cursor, "SCAN").await?;
        for k in keys {
            let k = bulk(k, "SCAN")?;
            if out.contains_key(&k) {
                continue;
            }
            let t = conn
                .query(&[b"TYPE".as_slice(), &k])
                .await?
                .as_text()
                .unwrap_or_default();
            let d = live_value_digest(conn, &k, &t).await?;
            out.insert(k.clone(), d.unwrap_or(0));
            if out.len() > NAME_KEYS_LIMIT {
                return Ok(None);
            }
        }
        if next == b"0" {
            return Ok(Some(out));
        }
        cursor = next;
    }
}

/// Compares each backed-up key of the differing databases with its live digest.
struct KeyCompare {
    live: HashMap<u64, HashMap<Vec<u8>, u128>>,
    now_ms: i64,
    found: Vec<String>,
}

impl RdbVisitor for KeyCompare {
    fn want_digest(&mut self, db: u64, _key: &[u8], _t: u8, _expire: Option<i64>) -> bool {
        self.live.contains_key(&db)
    }

    fn key(&mut self, e: &KeyEntry<'_>) -> Result<()> {
        let Some(live) = self.live.get_mut(&e.db) else {
            return Ok(());
        };
        let restored = live.remove(e.key);
        let expired = e.expire_ms.is_some_and(|ms| ms <= self.now_ms);
        let Some(d) = e.digest else {
            return Ok(()); // module value: not compared
        };
        match restored {
            Some(l) if l == d => {}
            Some(_) => self
                .found
                .push(format!("db{} {} (value changed)", e.db, printable(e.key))),
            None if expired => {}
            None => self
                .found
                .push(format!("db{} {} (missing)", e.db, printable(e.key))),
        }
        Ok(())
    }
}

/// A sink that only parses the backup with a [`KeyCompare`].
struct CompareSink {
    visitor: Option<KeyCompare>,
}

#[async_trait::async_trait]
impl Sink for CompareSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: backup_core::sink::StreamReader<'_>,
    ) -> Result<SinkReport> {
        let v = self.visitor.take().unwrap_or(KeyCompare {
            live: HashMap::new(),
            now_ms: 0,
            found: Vec::new(),
        });
        let (v, bytes) = visit_stream(input, v).await?;
        self.visitor = Some(v);
        Ok(SinkReport {
            bytes,
            summary: Vec::new(),
        })
    }
}
