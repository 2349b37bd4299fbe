//! The staging swap of [`RedisSink`](super::RedisSink): the plan made before the first
//! write (target version, empty targets, free staging databases), the replay into the
//! databases written to, and the `MULTI`/`SWAPDB`/`EXEC` that publishes them (see the
//! parent module's docs).

use super::*;

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

/// The key that pins a staging database to one restore from the moment it is chosen:
/// a concurrent restore sees the database as not empty and never stages into it, and
/// the swap `WATCH`es it, so that a database flushed or taken over meanwhile is not
/// published. Deleted inside the swap transaction, before the `SWAPDB`.
pub(super) const STAGING_MARK: &[u8] = b"__dbseal:restore-staging__";

/// Claims `db` (empty when checked) for this restore: `SET mark token NX`. False when
/// the database is no longer empty or another restore claimed it first.
async fn pin(
    conn: &mut RedisConnection,
    db: u32,
    token: &[u8],
) -> std::result::Result<bool, RedisError> {
    let replies = conn
        .pipeline(&[
            vec![b"SELECT".to_vec(), db.to_string().into_bytes()],
            vec![
                b"SET".to_vec(),
                STAGING_MARK.to_vec(),
                token.to_vec(),
                b"NX".to_vec(),
            ],
            vec![b"DBSIZE".to_vec()],
        ])
        .await?;
    if let Reply::Error(e) = &replies[1] {
        return Err(crate::client::server_error("SET", e));
    }
    let set = !matches!(replies[1], Reply::Bulk(None) | Reply::Array(None));
    if set && replies[2].as_int() != Some(1) {
        // Someone wrote between the check and the claim: let the database go.
        conn.query(&[&b"DEL"[..], STAGING_MARK]).await?;
        return Ok(false);
    }
    Ok(set)
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
    /// Databases holding another restore's staging mark (running, or killed hard).
    foreign_staging: Vec<u32>,
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
        let mut foreign_staging = Vec::new();
        if self.options.method == RestoreMethod::StagingSwap {
            let used: BTreeSet<u32> = targets.values().copied().collect();
            let mut free = Vec::new();
            for db in (0..count).rev() {
                if used.contains(&db) {
                    continue;
                }
                if dbsize(conn, db).await? == 0 {
                    if free.len() < targets.len() && pin(conn, db, &self.staging_token).await? {
                        free.push(db);
                    }
                } else if conn.query(&[&b"EXISTS"[..], STAGING_MARK]).await?.as_int() == Some(1) {
                    foreign_staging.push(db);
                }
            }
            if free.len() < targets.len() {
                let _ = flush_dbs(conn, &free).await;
                return Err(RedisError::Refused {
                    operation: "restore".into(),
                    message: format!(
                        "it needs {} empty database(s) besides the targets for staging (the restore is published with SWAPDB), the server has {} free of {count}{}",
                        targets.len(),
                        free.len(),
                        foreign_note(&foreign_staging)
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
            foreign_staging,
        })
    }

    /// Runs the restore; on failure the caller cleans the staging databases.
    async fn run(
        &mut self,
        manifest: &Manifest,
        input: StreamReader<'_>,
        plan: &Plan,
        ctl: &mut RedisConnection,
    ) -> Result<(u64, RestoreOutcome, Option<Vec<u8>>)> {
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
            .map_err(|e| backup_core::task::join_error(e, "the RDB parser"))?;
        let replies_done = replies
            .await
            .map_err(|e| backup_core::task::join_error(e, "the reply reader"));
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
                // The parser stops ("the restore connection stopped") when the writer
                // or the reply reader is gone: theirs is the cause (a lost server).
                if matches!(e, Error::Interrupted(_)) {
                    sent.map_err(|e| e.at(&addr))?;
                    replies_done?.map_err(|e| e.at(&addr))?;
                }
                return Err(e);
            }
        };
        sent.map_err(|e| e.at(&addr))?;
        replies_done?.map_err(|e| e.at(&addr))?;
        if let Some(err) = first_error.lock().expect("not poisoned").take() {
            return Err(err.at(&addr));
        }

        // Functions: one FUNCTION RESTORE payload, applied when the staging databases
        // are published (and undone if publishing fails); without staging, now.
        let functions = if functions.is_empty() {
            None
        } else {
            let mut payload = functions;
            payload.extend_from_slice(&(rdb_version as u16).to_le_bytes());
            let crc = CRC64.checksum(&payload);
            payload.extend_from_slice(&crc.to_le_bytes());
            Some(payload)
        };
        if plan.staging.is_empty() {
            if let Some(payload) = &functions {
                self.restore_functions(ctl, payload)
                    .await
                    .map_err(|e| e.at(&addr))?;
            }
            return Ok((bytes, outcome, None));
        }
        let _ = manifest;
        Ok((bytes, outcome, functions))
    }

    /// `FUNCTION RESTORE payload` (REPLACE with `--replace`, else APPEND).
    async fn restore_functions(
        &self,
        ctl: &mut RedisConnection,
        payload: &[u8],
    ) -> std::result::Result<(), RedisError> {
        let policy: &[u8] = if self.options.replace {
            b"REPLACE"
        } else {
            b"APPEND"
        };
        ctl.query(&[&b"FUNCTION"[..], b"RESTORE", payload, policy])
            .await
            .map(|_| ())
            .map_err(|e| match e {
                RedisError::Command { message, .. } => RedisError::Command {
                    command: "FUNCTION RESTORE".into(),
                    message: format!("{message} (use --replace to overwrite existing libraries)"),
                },
                other => other,
            })
    }

    /// Publishes the staging databases: checks that no other client wrote into them,
    /// then in one `MULTI`/`EXEC` (watching every staging mark, so a database flushed
    /// or taken over meanwhile aborts it) restores the functions, deletes the marks and
    /// swaps every staging database with its target. A kill at any moment leaves the
    /// server either as it was or fully restored. If the functions are refused inside
    /// the transaction, the swaps are undone: the server is as it was.
    async fn publish(
        &self,
        ctl: &mut RedisConnection,
        plan: &Plan,
        outcome: &RestoreOutcome,
        functions: Option<&[u8]>,
    ) -> std::result::Result<(), RedisError> {
        if plan.staging.is_empty() {
            return Ok(());
        }
        // Each mark is WATCHed (any change to it, a FLUSHDB or SWAPDB by another client
        // included, aborts the EXEC below) and must still hold this restore's token: a
        // staging database flushed or taken over during the restore is never published.
        let mut watch: Vec<Vec<Vec<u8>>> = Vec::new();
        for w in &plan.staging {
            watch.push(vec![b"SELECT".to_vec(), w.to_string().into_bytes()]);
            watch.push(vec![b"WATCH".to_vec(), STAGING_MARK.to_vec()]);
            watch.push(vec![b"GET".to_vec(), STAGING_MARK.to_vec()]);
        }
        let replies = ctl.pipeline(&watch).await?;
        for (w, r) in plan.staging.iter().zip(replies.chunks(3)) {
            if let Some(Reply::Error(e)) = r.iter().find(|r| matches!(r, Reply::Error(_))) {
                let _ = ctl.query(&[&b"UNWATCH"[..]]).await;
                return Err(crate::client::server_error("WATCH", e));
            }
            if !matches!(&r[2], Reply::Bulk(Some(v)) if *v == self.staging_token) {
                let _ = ctl.query(&[&b"UNWATCH"[..]]).await;
                return Err(RedisError::Refused {
                    operation: "publishing the restore".into(),
                    message: format!(
                        "staging database {w} lost this restore's mark (flushed or taken over by another client during the restore); nothing was published"
                    ),
                });
            }
        }
        // Re-checked now, not only when planned: a staging database holding more keys
        // than this restore wrote (and its mark) was written by someone else, and would
        // be published.
        for (s, t) in &plan.targets {
            let w = plan.writes[s];
            if w == *t {
                continue;
            }
            let wrote: u64 = outcome
                .restored
                .iter()
                .filter(|((db, _), _)| db == t)
                .map(|(_, n)| n)
                .sum();
            let n = dbsize(ctl, w).await?;
            if n > wrote + 1 {
                return Err(RedisError::Refused {
                    operation: "publishing the restore".into(),
                    message: format!(
                        "staging database {w} holds {n} keys but this restore wrote {wrote}: another client wrote into it; nothing was published"
                    ),
                });
            }
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
        let functions_at = functions.map(|payload| {
            let policy: &[u8] = if self.options.replace {
                b"REPLACE"
            } else {
                b"APPEND"
            };
            cmds.push(vec![
                b"FUNCTION".to_vec(),
                b"RESTORE".to_vec(),
                payload.to_vec(),
                policy.to_vec(),
            ]);
            0usize
        });
        for (s, t) in &plan.targets {
            let w = plan.writes[s];
            cmds.push(vec![b"SELECT".to_vec(), w.to_string().into_bytes()]);
            cmds.push(vec![b"DEL".to_vec(), STAGING_MARK.to_vec()]);
            cmds.push(vec![
                b"SWAPDB".to_vec(),
                w.to_string().into_bytes(),
                t.to_string().into_bytes(),
            ]);
        }
        cmds.push(vec![b"EXEC".to_vec()]);
        // A command refused while queueing makes EXEC fail as a whole (EXECABORT):
        // nothing ran, and the EXEC reply says so.
        let replies = ctl.pipeline(&cmds).await?;
        let results = match replies.last() {
            Some(Reply::Array(Some(results))) => results,
            Some(Reply::Error(e)) => return Err(crate::client::server_error("EXEC", e)),
            _ => {
                return Err(RedisError::Refused {
                    operation: "publishing the restore".into(),
                    message: "a staging database was flushed or written by another client during the restore (its mark changed); nothing was published".into(),
                })
            }
        };
        let failed = results.iter().enumerate().find_map(|(i, r)| match r {
            Reply::Error(e) => Some((i, e.clone())),
            _ => None,
        });
        let Some((i, e)) = failed else {
            // The staging databases now hold the old contents of the targets.
            for db in &plan.staging {
                ctl.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
                    .await?;
                ctl.query(&[&b"FLUSHDB"[..], b"ASYNC"]).await?;
            }
            return Ok(());
        };
        // A command failed inside the transaction (Redis runs the others): undo the
        // swaps that ran (each target's SWAPDB reply is the third of its three), so the
        // targets hold their old contents again.
        let first_swap = usize::from(functions_at.is_some()) + 2;
        let mut undo: Vec<Vec<Vec<u8>>> = vec![vec![b"MULTI".to_vec()]];
        for (k, (s, t)) in plan.targets.iter().enumerate() {
            if matches!(
                results.get(first_swap + 3 * k),
                Some(Reply::Error(_)) | None
            ) {
                continue;
            }
            undo.push(vec![
                b"SWAPDB".to_vec(),
                plan.writes[s].to_string().into_bytes(),
                t.to_string().into_bytes(),
            ]);
        }
        undo.push(vec![b"EXEC".to_vec()]);
        let swapped_back = ctl.pipeline(&undo).await;
        let note = match swapped_back {
            Ok(r) if matches!(r.last(), Some(Reply::Array(Some(_)))) => "the swap was undone",
            _ => "the swap could NOT be undone: the targets may hold the restored data without its functions",
        };
        if Some(i) == functions_at {
            return Err(RedisError::Command {
                command: "FUNCTION RESTORE".into(),
                message: format!("{e} (use --replace to overwrite existing libraries); {note}"),
            });
        }
        Err(RedisError::Command {
            command: "SWAPDB".into(),
            message: format!("{e}; {note}"),
        })
    }
}

/// The sentence naming databases other restores are staging into.
fn foreign_note(dbs: &[u32]) -> String {
    if dbs.is_empty() {
        return String::new();
    }
    format!(
        "; databases {} hold the staging data of another restore (running, or interrupted hard: then FLUSHDB them)",
        dbs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    )
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
            Ok((bytes, outcome, functions)) => {
                match self
                    .publish(&mut ctl, &plan, &outcome, functions.as_deref())
                    .await
                {
                    Ok(()) => Ok((bytes, outcome)),
                    Err(e) => Err(e.at(&addr)),
                }
            }
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
                let foreign = foreign_note(&plan.foreign_staging);
                if !foreign.is_empty() {
                    tracing::warn!("{}", &foreign[2..]);
                    summary.push(foreign[2..].to_string());
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
