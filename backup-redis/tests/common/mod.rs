//! Shared helpers of the backup-redis integration tests: real servers only (started by
//! `scripts/test.sh` / `scripts/services.sh start DIR redis redis8`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use backup_core::{BackupOptions, BackupStore, KeyPair, Manifest, RestoreOptions};
use backup_redis::{BackupMode, RedisConfig, RedisConnection, RedisSource, Reply};

/// A `DBSEAL_TEST_*` variable; fails the test with how to get it.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh (or `scripts/services.sh start DIR redis redis8` and source DIR/env.sh)")
    })
}

pub fn redis7() -> RedisConfig {
    RedisConfig::from_url(&env("DBSEAL_TEST_REDIS_URL")).unwrap()
}

pub fn redis8() -> RedisConfig {
    RedisConfig::from_url(&env("DBSEAL_TEST_REDIS8_URL")).unwrap()
}

/// Tests share the servers' 16 databases (staging picks free ones): one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn conn(cfg: &RedisConfig) -> RedisConnection {
    RedisConnection::connect(cfg).await.unwrap()
}

pub async fn q(c: &mut RedisConnection, args: &[&[u8]]) -> Reply {
    c.query(args)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(args[0])))
}

pub async fn select(c: &mut RedisConnection, db: u32) {
    q(c, &[b"SELECT", db.to_string().as_bytes()]).await;
}

pub async fn flush(c: &mut RedisConnection, dbs: &[u32]) {
    for db in dbs {
        select(c, *db).await;
        q(c, &[b"FLUSHDB"]).await;
    }
}

/// What a key looks like: its DUMP payload, absolute expiry, encoding and, for hash-table
/// encodings (whose DUMP order depends on the table's history), its sorted contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub dump: Vec<u8>,
    /// Absolute expiry in Unix ms (PEXPIRETIME), -1 without one.
    pub expire_at: i64,
    pub encoding: String,
    pub canonical: Option<Vec<Vec<u8>>>,
}

/// Every key of `db`.
pub async fn snapshot(c: &mut RedisConnection, db: u32) -> BTreeMap<Vec<u8>, KeyState> {
    select(c, db).await;
    let mut out = BTreeMap::new();
    let mut cursor = b"0".to_vec();
    loop {
        let r = c
            .query(&[
                b"SCAN".to_vec(),
                cursor.clone(),
                b"COUNT".to_vec(),
                b"2000".to_vec(),
            ])
            .await
            .unwrap()
            .into_array()
            .unwrap();
        let next = r[0].as_bytes().unwrap().to_vec();
        let keys: Vec<Vec<u8>> = r[1]
            .clone()
            .into_array()
            .unwrap()
            .into_iter()
            .map(|k| k.as_bytes().unwrap().to_vec())
            .collect();
        let mut cmds: Vec<Vec<&[u8]>> = Vec::new();
        for k in &keys {
            cmds.push(vec![b"DUMP", k]);
            cmds.push(vec![b"PEXPIRETIME", k]);
            cmds.push(vec![b"OBJECT", b"ENCODING", k]);
            cmds.push(vec![b"TYPE", k]);
        }
        let replies = c.pipeline(&cmds).await.unwrap();
        let mut extra: Vec<Vec<&[u8]>> = Vec::new();
        let mut extra_keys = Vec::new();
        for (k, r) in keys.iter().zip(replies.chunks(4)) {
            let state = KeyState {
                dump: r[0].as_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
                expire_at: r[1].as_int().unwrap(),
                encoding: r[2].as_text().unwrap_or_default(),
                canonical: None,
            };
            let t = r[3].as_text().unwrap();
            if t == "vectorset" {
                // HNSW links are not serialized deterministically: compare the members.
                extra.push(vec![b"VRANDMEMBER", k, b"100000"]);
                extra_keys.push((k.clone(), false));
            } else if state.encoding == "hashtable" {
                extra.push(vec![
                    if t == "hash" {
                        b"HGETALL".as_slice()
                    } else {
                        b"SMEMBERS".as_slice()
                    },
                    k,
                ]);
                extra_keys.push((k.clone(), t == "hash"));
            }
            out.insert(k.clone(), state);
        }
        if !extra.is_empty() {
            let replies = c.pipeline(&extra).await.unwrap();
            for ((k, is_hash), r) in extra_keys.iter().zip(replies) {
                let items: Vec<Vec<u8>> = r
                    .into_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_bytes().unwrap().to_vec())
                    .collect();
                // Hash pairs stay together: sort pairs, not fields and values apart.
                let mut v: Vec<Vec<u8>> = if *is_hash {
                    items.chunks(2).map(|c| c.join(&b"\0="[..])).collect()
                } else {
                    items
                };
                v.sort();
                out.get_mut(k).unwrap().canonical = Some(v);
            }
        }
        if next == b"0" {
            return out;
        }
        cursor = next;
    }
}

/// DUMP-level equality of every key (same contents and encoding where the DUMP order of
/// a hash table differs), TTLs within 1 s.
pub fn assert_same(src: &BTreeMap<Vec<u8>, KeyState>, dst: &BTreeMap<Vec<u8>, KeyState>) {
    assert_eq!(src.len(), dst.len(), "key counts differ");
    for (k, a) in src {
        let name = String::from_utf8_lossy(k);
        let b = dst
            .get(k)
            .unwrap_or_else(|| panic!("key {name:?} missing after restore"));
        assert_eq!(a.encoding, b.encoding, "encoding of {name:?}");
        if a.dump != b.dump {
            assert!(
                a.canonical.is_some() && a.canonical == b.canonical,
                "DUMP of {name:?} differs"
            );
        }
        if a.expire_at < 0 {
            assert_eq!(b.expire_at, a.expire_at, "TTL of {name:?}");
        } else {
            assert!(
                (a.expire_at - b.expire_at).abs() <= 1000,
                "TTL of {name:?}: {} vs {}",
                a.expire_at,
                b.expire_at
            );
        }
    }
}

pub struct Vault {
    pub store: BackupStore,
    pub keys: KeyPair,
}

impl Vault {
    pub fn new() -> Self {
        Vault {
            store: BackupStore::open("memory://", &Default::default())
                .unwrap()
                .with_trust(backup_core::Trust::ephemeral().unwrap()),
            keys: KeyPair::generate(),
        }
    }

    pub fn restore_options(&self) -> RestoreOptions {
        RestoreOptions {
            decryption: Some(Arc::new(self.keys.decryption())),
            ..Default::default()
        }
    }

    pub async fn backup(
        &self,
        cfg: &RedisConfig,
        mode: BackupMode,
    ) -> backup_core::Result<Manifest> {
        let mut source = RedisSource::new(cfg.clone(), mode)?;
        let mut opts = BackupOptions::new("redis-test", self.keys.encryption());
        opts.zstd_level = 1;
        backup_core::backup(&self.store, &mut source, opts).await
    }

    pub async fn manifests(&self) -> usize {
        self.store.list(None).await.unwrap().len()
    }
}

/// A private redis-server on `port`, killed on drop (even when the test fails). Tests
/// choose ports below 32768, outside Linux's ephemeral range, so that no client socket
/// of the same test run can be holding the port.
pub struct PrivateServer {
    pub pid: u32,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl PrivateServer {
    pub fn start(bin: &str, port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("redis.pid");
        let status = Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .args(["--daemonize", "yes", "--repl-diskless-sync-delay", "0"])
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--logfile")
            .arg(dir.path().join("redis.log"))
            .args(extra)
            .status()
            .expect("start redis-server");
        assert!(status.success(), "redis-server did not start");
        let mut pid = 0;
        // Up to 20 s: on a loaded 2-core machine a daemonizing redis-server has been
        // seen to take more than 5 s to write its pid file.
        for _ in 0..400 {
            if let Ok(s) = std::fs::read_to_string(&pidfile) {
                if let Ok(p) = s.trim().parse() {
                    pid = p;
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            pid > 0,
            "redis-server on port {port} did not write its pid; its log ends:\n{}",
            std::fs::read_to_string(dir.path().join("redis.log"))
                .map(|log| {
                    let lines: Vec<&str> = log.lines().collect();
                    lines[lines.len().saturating_sub(8)..].join("\n")
                })
                .unwrap_or_else(|e| format!("(no log: {e})"))
        );
        PrivateServer { pid, port, dir }
    }

    pub fn config(&self) -> RedisConfig {
        RedisConfig::new("127.0.0.1", self.port)
    }

    pub fn kill(&self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
        // Wait until the port is free for the next test.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
