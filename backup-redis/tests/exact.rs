//! Bit-exact round trips, property-tested against the real Redis 7 and Redis 8
//! (issue 17): `exact_redis.py` fills a database with seeded, generated keys of every
//! type at every encoding's size thresholds (binary keys, integer-like strings, scores
//! across the whole double range, expiry times at their edges; one key is one case),
//! dbseal backs it up and restores it into another database, and the same script reads
//! both with redis-py — an independent client — key by key: type, encoding, absolute
//! expiry and value, bit for bit.
//!
//! `DBSEAL_EXACT_SEED` and `DBSEAL_EXACT_CASES` (default 300 keys per type) choose the
//! run; a failure names the seed and the keys that differ.

mod common;

use std::process::Command;

use backup_core::Manifest;
use backup_redis::{BackupMode, RedisConfig, RedisRestoreOptions, RedisSink};
use common::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

fn script(args: &[&str]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/exact_redis.py");
    let out = Command::new("python3")
        .arg(path)
        .args(args)
        .output()
        .expect("python3 (scripts/install-deps.sh installs redis-py)");
    assert!(
        out.status.success(),
        "exact_redis.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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

async fn restore(vault: &Vault, manifest: &Manifest, cfg: &RedisConfig, from: u32, to: u32) {
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
    restore(&vault, &manifest, &cfg, 3, 4).await;
    let after = dump(url, 4, None);
    flush(&mut c, &[3, 4]).await;

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
