//! The Redis [`Driver`]: backup, restore (`--db SRC:DEST`, `--to-rdb`), cancellation,
//! options and level-3 verification through the trait the CLI and Python use, against a
//! real server, checked with an independent reader (redis-cli).

mod common;

use std::process::Command;

use backup_core::driver::{BackupContext, Driver, DriverOptions, RestoreContext, RestoreTarget};
use backup_core::{BackupOptions, ErrorKind, Manifest, VerifyLevel};
use backup_redis::RedisDriver;
use common::{env, Vault};
use tokio_util::sync::CancellationToken;

/// redis-cli against the test server, database `db`; its output, trimmed.
fn cli(db: u32, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", &env("DBSEAL_TEST_REDIS_URL"), "-n", &db.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What redis-cli sees of database `db`: every key with its type, value and whether it
/// has a TTL, sorted.
fn view(db: u32) -> Vec<String> {
    let mut keys: Vec<String> = cli(db, &["--scan"])
        .lines()
        .map(String::from)
        .filter(|k| !k.is_empty())
        .collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let t = cli(db, &["TYPE", k]);
            let value = match t.as_str() {
                "string" => cli(db, &["GET", k]),
                "list" => cli(db, &["LRANGE", k, "0", "-1"]),
                "hash" => {
                    let mut v: Vec<String> = cli(db, &["HGETALL", k])
                        .lines()
                        .collect::<Vec<_>>()
                        .chunks(2)
                        .map(|c| c.join("="))
                        .collect();
                    v.sort();
                    v.join(",")
                }
                "set" => {
                    let mut v: Vec<String> = cli(db, &["SMEMBERS", k])
                        .lines()
                        .map(String::from)
                        .collect();
                    v.sort();
                    v.join(",")
                }
                "zset" => cli(db, &["ZRANGE", k, "0", "-1", "WITHSCORES"]),
                other => format!("<{other}>"),
            };
            let ttl: i64 = cli(db, &["TTL", k]).parse().unwrap();
            format!("{k} {t} {value} ttl={}", ttl > 0)
        })
        .collect()
}

fn populate(db: u32) {
    cli(db, &["FLUSHDB"]);
    cli(db, &["SET", "s:plain", "hello world"]);
    cli(db, &["SET", "s:ttl", "expires", "EX", "3600"]);
    cli(db, &["RPUSH", "l", "a", "b", "c"]);
    cli(db, &["HSET", "h", "f1", "v1", "f2", "v2"]);
    cli(db, &["SADD", "set", "x", "y", "z"]);
    cli(db, &["ZADD", "z", "1.5", "one", "2", "two"]);
    cli(db, &["INCRBY", "counter", "42"]);
}

fn flush(dbs: &[u32]) {
    for db in dbs {
        cli(*db, &["FLUSHDB"]);
    }
}

fn backup_ctx(vault: &Vault) -> BackupContext {
    let mut options = BackupOptions::new("redis-driver-test", vault.keys.encryption());
    options.zstd_level = 1;
    BackupContext {
        store: vault.store.clone(),
        options,
    }
}

fn restore_ctx(vault: &Vault) -> RestoreContext {
    RestoreContext {
        store: vault.store.clone(),
        options: vault.restore_options(),
        cancel: CancellationToken::new(),
        altered: Default::default(),
    }
}

async fn driver_backup(vault: &Vault) -> Manifest {
    let mut options = DriverOptions::new();
    options.set("url", env("DBSEAL_TEST_REDIS_URL"));
    RedisDriver
        .backup(&options, &backup_ctx(vault))
        .await
        .expect("backup through the driver")
}

fn target(db: &[&str]) -> RestoreTarget {
    RestoreTarget {
        url: Some(env("DBSEAL_TEST_REDIS_URL")),
        db: db.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn backup_and_restore_through_the_driver_remaps_db_3_to_5() {
    let _serial = common::SERIAL.lock().await;
    flush(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    populate(3);
    let expected = view(3);
    assert_eq!(expected.len(), 7, "{expected:?}");
    let vault = Vault::new();
    let manifest = driver_backup(&vault).await;
    assert_eq!(manifest.datastore.kind, "redis");
    assert_eq!(manifest.contents.counts["keys"]["db3.string"], 3);

    let outcome = RedisDriver
        .restore(&manifest, &target(&["3:5"]), &restore_ctx(&vault))
        .await
        .expect("restore --db 3:5");
    assert!(outcome.target.contains("127.0.0.1"), "{outcome:?}");
    assert!(!outcome.summary.is_empty());
    assert_eq!(view(5), expected, "db 5 after --db 3:5");
    assert_eq!(view(3), expected, "db 3 untouched");
    assert_eq!(cli(4, &["DBSIZE"]), "0");

    // `--db 3` alone restores 3 into 3: refused, db 3 is not empty; with replace it
    // goes through.
    let err = RedisDriver
        .restore(&manifest, &target(&["3"]), &restore_ctx(&vault))
        .await
        .expect_err("non-empty db 3");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    cli(3, &["SET", "extra", "1"]);
    let mut replace = target(&["3"]);
    replace.replace = true;
    RedisDriver
        .restore(&manifest, &replace, &restore_ctx(&vault))
        .await
        .expect("restore --db 3 --replace");
    assert_eq!(view(3), expected, "db 3 after --db 3 --replace");

    // `--match` restores only matching keys.
    flush(&[5]);
    let mut matching = target(&["3:5"]);
    matching.key_match = vec!["s:*".into()];
    RedisDriver
        .restore(&manifest, &matching, &restore_ctx(&vault))
        .await
        .expect("restore --match");
    let only_s: Vec<String> = expected
        .iter()
        .filter(|l| l.starts_with("s:"))
        .cloned()
        .collect();
    assert_eq!(view(5), only_s);
    flush(&[3, 5]);
}

#[tokio::test]
async fn cancelled_restore_leaves_the_target_as_it_was_and_bad_entries_are_refused() {
    let _serial = common::SERIAL.lock().await;
    flush(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    populate(3);
    let vault = Vault::new();
    let manifest = driver_backup(&vault).await;

    let ctx = restore_ctx(&vault);
    ctx.cancel.cancel();
    RedisDriver
        .restore(&manifest, &target(&["3:5"]), &ctx)
        .await
        .expect_err("cancelled restore");
    assert_eq!(
        cli(5, &["DBSIZE"]),
        "0",
        "cancelled restore left keys in db 5"
    );

    for bad in ["3:x", "five", "3:5:6"] {
        let err = RedisDriver
            .restore(&manifest, &target(&[bad]), &restore_ctx(&vault))
            .await
            .expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
    }
    assert_eq!(cli(5, &["DBSIZE"]), "0");
    flush(&[3]);
}

#[tokio::test]
async fn to_rdb_writes_a_private_dump_file() {
    let _serial = common::SERIAL.lock().await;
    flush(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    populate(3);
    let vault = Vault::new();
    let manifest = driver_backup(&vault).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.rdb");
    let outcome = RedisDriver
        .restore(
            &manifest,
            &RestoreTarget {
                to_rdb: Some(path.clone()),
                ..Default::default()
            },
            &restore_ctx(&vault),
        )
        .await
        .expect("--to-rdb");
    assert_eq!(outcome.target, path.display().to_string());
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"REDIS"), "not an RDB file");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "dump.rdb mode {mode:o}");
    }
    // An existing file is refused.
    let err = RedisDriver
        .restore(
            &manifest,
            &RestoreTarget {
                to_rdb: Some(path.clone()),
                ..Default::default()
            },
            &restore_ctx(&vault),
        )
        .await
        .expect_err("existing file");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    flush(&[3]);
}

#[tokio::test]
async fn unknown_option_keys_are_config_errors_naming_the_key() {
    let vault = Vault::new();
    let mut options = DriverOptions::new();
    options.set("url", env("DBSEAL_TEST_REDIS_URL"));
    options.set("exclude-table", "x");
    let err = RedisDriver
        .backup(&options, &backup_ctx(&vault))
        .await
        .expect_err("unknown key");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("exclude-table"), "{err}");
    assert!(RedisDriver.check_backup_options(&options).is_err());
    assert_eq!(vault.manifests().await, 0);
}

#[tokio::test]
async fn level_3_verification_through_the_driver() {
    let _serial = common::SERIAL.lock().await;
    flush(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    populate(0);
    populate(3);
    let vault = Vault::new();
    let manifest = driver_backup(&vault).await;
    let report = RedisDriver
        .verify_restore(
            &manifest,
            &env("DBSEAL_TEST_REDIS_URL"),
            &restore_ctx(&vault),
        )
        .await
        .expect("level 3");
    assert_eq!(report.level, VerifyLevel::Restore);
    // The scratch databases are flushed afterwards; the sources are untouched.
    assert_eq!(view(3).len(), 7);
    for db in [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
        assert_eq!(cli(db, &["DBSIZE"]), "0", "scratch db {db} left keys");
    }
    flush(&[0, 3]);
}
