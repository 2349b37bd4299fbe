//! Verification level 3 for Redis: restore into scratch databases and compare the live
//! key counts per type (and keys with a TTL) with the manifest.
//!
//! The scratch databases are empty database indexes of the given server (one per
//! database in the backup); they are flushed afterwards, whatever the outcome. Keys
//! whose expiry passed before the restore are not restored, and are taken off the
//! expected counts.

use std::collections::BTreeMap;

use backup_core::{
    BackupStore, Contents, Error, Manifest, RestoreOptions, Result, VerifyLevel, VerifyReport,
};

use crate::client::{RedisConnection, Reply};
use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::sink::{RedisRestoreOptions, RedisSink, RestoreMethod};

/// Restores backup `manifest` into scratch databases of the server `target` names and
/// compares key counts per database and type, and keys with a TTL, with the manifest.
pub async fn verify_restore(
    store: &BackupStore,
    manifest: &Manifest,
    options: &RestoreOptions,
    target: &RedisConfig,
) -> Result<VerifyReport> {
    let addr = target.addr();
    let fail = |what: String| Error::Verification {
        id: manifest.backup_id.to_string(),
        key: manifest.artifact.key.clone(),
        what,
    };
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
    let result = async {
        backup_core::restore(store, manifest, "data", &mut sink, options)
            .await
            .map_err(|e| fail(format!("level-3 restore into {addr} failed: {e}")))?;
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
        for (src, db) in &db_map {
            count_live(&mut ctl, *src, *db, &mut live)
                .await
                .map_err(|e| e.at(&addr))?;
        }
        let diffs = expected.diff_counts(&live, &["keys", "expires"]);
        if !diffs.is_empty() {
            return Err(fail(format!(
                "restored keys differ from the manifest: {}",
                diffs.join("; ")
            )));
        }
        let total: u64 = live.counts.get("keys").map(|k| k.values().sum()).unwrap_or(0);
        let skipped: u64 = outcome.skipped_expired.values().sum();
        Ok(vec![format!(
            "restored {total} keys into scratch databases {} on {addr}; key counts per database and type and TTL counts match the manifest{}",
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

/// Adds `keys["db<src>.<type>"]` and `expires["db<src>"]` for the keys of `db`.
async fn count_live(
    conn: &mut RedisConnection,
    src: u32,
    db: u32,
    out: &mut Contents,
) -> std::result::Result<(), RedisError> {
    conn.query(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
        .await?;
    let mut cursor = b"0".to_vec();
    loop {
        let reply = conn
            .query(&[
                b"SCAN".to_vec(),
                cursor.clone(),
                b"COUNT".to_vec(),
                b"1000".to_vec(),
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
                cmds.push([b"TYPE", k]);
                cmds.push([b"PTTL", k]);
            }
            let replies = conn.pipeline(&cmds).await?;
            for pair in replies.chunks(2) {
                let t = pair[0].as_text().unwrap_or_default();
                if t == "none" {
                    continue;
                }
                out.add("keys", &format!("db{src}.{t}"), 1);
                if pair[1].as_int().is_some_and(|ms| ms >= 0) {
                    out.add("expires", &format!("db{src}"), 1);
                }
            }
        }
        if next == b"0" {
            return Ok(());
        }
        cursor = next;
    }
}
