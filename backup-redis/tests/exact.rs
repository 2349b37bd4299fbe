//! Bit-exact round trips, property-tested against the real Redis 7 and Redis 8
//! (issue 17): `exact_redis.py` fills a database with seeded, generated keys of every
//! type at every encoding's size thresholds (binary keys, integer-like strings, scores
//! across the whole double range, expiry times at their edges; one key is one case),
//! dbseal backs it up and restores it into another database, and the same script reads
//! both with redis-py — an independent client — key by key: type, encoding, absolute
//! expiry and value, bit for bit.
//!
//! The same data set proves level-3 verification exact: the restored databases match the
//! backup's content digests, `verify_restore` passes "bit for bit", and a sorted-set
//! score one ULP off, one flipped bit in a string and a trailing space added to a hash
//! value each fail the comparison, naming the key.
//!
//! `DBSEAL_EXACT_SEED` and `DBSEAL_EXACT_CASES` (default 300 keys per type) choose the
//! run; a failure names the seed and the keys that differ.

mod common;

use backup_core::conformance::{env_u64, python_script};
use backup_core::Manifest;
use backup_redis::{
    BackupMode, RedisConfig, RedisConnection, RedisRestoreOptions, RedisSink, Reply, RestoreOutcome,
};
use common::*;

fn script(args: &[&str]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/exact_redis.py");
    python_script(path, args, "redis-py")
}

/// The key lines of `exact_redis.py dump`, by key; with a scratch database, each
/// key's encoding is the one Redis's own DUMP/RESTORE gives it.
fn dump(url: &str, db: u32, scratch: Option<u32>) -> std::collections::BTreeMap<String, String> {
    let (db, scratch) = (db.to_string(), scratch.map(|s| s.to_string()));
    let mut args = vec!["dump", url, &db];
    args.extend(scratch.as_deref());
    script(&args)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["key"].as_str().unwrap().to_string(), l.to_string())
        })
        .collect()
}

async fn restore(
    vault: &Vault,
    manifest: &Manifest,
    cfg: &RedisConfig,
    from: u32,
    to: u32,
) -> RestoreOutcome {
    let options = RedisRestoreOptions {
        dbs: vec![from],
        db_map: [(from, to)].into_iter().collect(),
        ..Default::default()
    };
    let mut sink = RedisSink::new(cfg.clone(), options).unwrap();
    backup_core::restore(
        &vault.store,
        manifest,
        "data",
        &mut sink,
        &vault.restore_options(),
    )
    .await
    .unwrap();
    sink.outcome()
        .cloned()
        .expect("a finished restore has an outcome")
}

fn bulk(r: Reply) -> Vec<u8> {
    r.as_bytes().expect("a bulk reply").to_vec()
}

/// Changes one value of each of three kinds in `db` by one bit, one ULP or one
/// trailing space; returns the changed keys as verification names them.
async fn change_one_bit_each(c: &mut RedisConnection, db: u32) -> Vec<String> {
    select(c, db).await;
    let keys = q(c, &[b"KEYS", b"*"]).await.into_array().unwrap();
    let (mut string, mut zset, mut hash) = (None, None, None);
    for k in keys {
        let k = bulk(k);
        let t = q(c, &[b"TYPE", &k]).await.as_text().unwrap();
        match t.as_str() {
            "string" if string.is_none() => {
                let mut v = bulk(q(c, &[b"GET", &k]).await);
                if let Some(last) = v.last_mut() {
                    *last ^= 1;
                    q(c, &[b"SET", &k, &v, b"KEEPTTL"]).await;
                    string = Some(k);
                }
            }
            "zset" if zset.is_none() => {
                let r = q(c, &[b"ZRANGE", &k, b"0", b"0", b"WITHSCORES"]).await;
                let mut r = r.into_array().unwrap().into_iter();
                let (Some(m), Some(s)) = (r.next(), r.next()) else {
                    continue;
                };
                let score: f64 = s.as_text().unwrap().parse().unwrap();
                if !score.is_finite() || score == 0.0 {
                    continue;
                }
                let next = f64::from_bits(score.to_bits() ^ 1);
                let m = bulk(m);
                q(c, &[b"ZADD", &k, b"XX", format!("{next:?}").as_bytes(), &m]).await;
                let back = q(c, &[b"ZSCORE", &k, &m]).await.as_text().unwrap();
                assert_eq!(back.parse::<f64>().unwrap().to_bits(), next.to_bits());
                zset = Some(k);
            }
            "hash" if hash.is_none() => {
                let r = q(c, &[b"HSCAN", &k, b"0", b"COUNT", b"1"]).await;
                let items = r.into_array().unwrap().into_iter().nth(1).unwrap();
                let mut items = items.into_array().unwrap().into_iter();
                let (Some(f), Some(v)) = (items.next(), items.next()) else {
                    continue;
                };
                let mut v = bulk(v);
                v.push(b' ');
                q(c, &[b"HSET", &k, &bulk(f), &v]).await;
                hash = Some(k);
            }
            _ => {}
        }
    }
    [string, zset, hash]
        .into_iter()
        .map(|k| {
            let k = k.expect("the data set has strings, sorted sets and hashes");
            format!("{:?} (value changed)", String::from_utf8_lossy(&k))
        })
        .collect()
}

async fn round_trip(cfg: RedisConfig, url: &str) {
    let seed = env_u64("DBSEAL_EXACT_SEED", 17);
    let cases = env_u64("DBSEAL_EXACT_CASES", 300);
    let mut c = conn(&cfg).await;
    flush(&mut c, &[3, 4, 14]).await;
    script(&["fill", url, "3", &seed.to_string(), &cases.to_string()]);
    // What Redis itself restores: a listpack list just under its size limit comes back
    // from a native DUMP/RESTORE as a quicklist, so that is the encoding to expect.
    let before = dump(url, 3, Some(14));
    assert!(
        before.len() as u64 >= 6 * cases,
        "the generator wrote {} keys",
        before.len()
    );

    let vault = Vault::new();
    let manifest = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    let outcome = restore(&vault, &manifest, &cfg, 3, 4).await;
    let after = dump(url, 4, None);

    // Level 3's content comparison sees the restore as exact...
    let options = vault.restore_options();
    let report =
        backup_redis::compare_live_content(&vault.store, &manifest, &options, &cfg, &outcome)
            .await
            .unwrap();
    assert!(report.contains("bit for bit"), "{report}");
    // ...and one bit, one ULP or one trailing space off, naming each key.
    let changed = change_one_bit_each(&mut c, 4).await;
    let err = backup_redis::compare_live_content(&vault.store, &manifest, &options, &cfg, &outcome)
        .await
        .expect_err("a changed value must fail the comparison")
        .to_string();
    assert!(
        err.contains("values differ from the backup in db3"),
        "{err}"
    );
    for key in &changed {
        assert!(err.contains(key), "{key} is not named: {err}");
    }
    flush(&mut c, &[3, 4]).await;
    // verify --restore-to end to end, into scratch databases it picks.
    let never = Default::default();
    let report = backup_redis::verify_restore(&vault.store, &manifest, &options, &cfg, &never)
        .await
        .unwrap();
    assert!(
        report.checks.iter().any(|c| c.contains("bit for bit")),
        "{:?}",
        report.checks
    );

    let mut differing: Vec<String> = before
        .iter()
        .filter(|(k, line)| after.get(*k) != Some(line))
        .map(|(k, line)| {
            let got = after.get(k).map_or("(missing)", String::as_str);
            format!(
                "{}\n  restored as {}",
                line.chars().take(400).collect::<String>(),
                got.chars().take(400).collect::<String>()
            )
        })
        .collect();
    differing.extend(
        after
            .keys()
            .filter(|k| !before.contains_key(*k))
            .map(|k| format!("key {k} appeared")),
    );
    assert!(
        differing.is_empty(),
        "seed {seed}, {cases} keys per type, {}: {} of {} keys differ:\n{}",
        cfg.addr(),
        differing.len(),
        before.len(),
        differing
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn redis7_every_encoding_round_trips_bit_for_bit() {
    let _g = SERIAL.lock().await;
    round_trip(redis7(), &env("DBSEAL_TEST_REDIS_URL")).await;
}

#[tokio::test]
async fn redis8_every_encoding_and_field_expiry_round_trips_bit_for_bit() {
    let _g = SERIAL.lock().await;
    round_trip(redis8(), &env("DBSEAL_TEST_REDIS8_URL")).await;
}
