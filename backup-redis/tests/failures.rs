//! Bad input: wrong password, replication refused, a server killed during the transfer,
//! corrupted / truncated / wrongly keyed artifacts. Each gives one clear error, leaves
//! the target as it was, and a failed backup leaves no manifest.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use backup_core::{BackupOptions, ErrorKind, KeyPair, Progress, RestoreOptions};
use backup_redis::{
    BackupMode, RedisConfig, RedisConnection, RedisRestoreOptions, RedisSink, RedisSource,
};
use common::*;

async fn sizes(c: &mut RedisConnection) -> Vec<u64> {
    let mut out = Vec::new();
    for db in 0..16 {
        select(c, db).await;
        out.push(q(c, &[b"DBSIZE"]).await.as_int().unwrap() as u64);
    }
    out
}

#[tokio::test]
async fn wrong_password_and_refused_replication_fail_cleanly_and_scan_mode_works() {
    let _g = SERIAL.lock().await;
    let cfg = redis7();
    let mut c = conn(&cfg).await;
    q(&mut c, &[b"FLUSHALL"]).await;
    select(&mut c, 1).await;
    q(&mut c, &[b"SET", b"k", b"v"]).await;
    q(
        &mut c,
        &[
            b"ACL",
            b"SETUSER",
            b"dbseal-ok",
            b"reset",
            b"on",
            b">right-pw-123",
            b"~*",
            b"&*",
            b"+@all",
        ],
    )
    .await;
    q(
        &mut c,
        &[
            b"ACL",
            b"SETUSER",
            b"dbseal-nosync",
            b"reset",
            b"on",
            b">nosync-pw-123",
            b"~*",
            b"&*",
            b"+@all",
            b"-psync",
            b"-sync",
        ],
    )
    .await;
    let vault = Vault::new();

    let wrong = cfg
        .clone()
        .with_username("dbseal-ok")
        .with_password("wrong-pw-987".into());
    let e = vault
        .backup(&wrong, BackupMode::Replication)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Connection, "{msg}");
    assert!(
        msg.contains("authentication failed") && msg.contains(&cfg.addr()),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-pw-987") && !format!("{e:?}").contains("wrong-pw-987"),
        "{msg}"
    );

    let nosync = cfg
        .clone()
        .with_username("dbseal-nosync")
        .with_password("nosync-pw-123".into());
    let e = vault
        .backup(&nosync, BackupMode::Replication)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Refused, "{msg}");
    assert!(
        msg.contains("PSYNC refused") && msg.contains("--mode scan"),
        "{msg}"
    );
    assert_eq!(
        vault.manifests().await,
        0,
        "a failed backup left a manifest"
    );

    // The fallback for such servers.
    let m = vault.backup(&nosync, BackupMode::Scan).await.unwrap();
    assert_eq!(m.contents.counts["keys"]["db1.string"], 1);
    assert!(!String::from_utf8_lossy(&m.to_json()).contains("nosync-pw-123"));
    q(
        &mut c,
        &[b"ACL", b"DELUSER", b"dbseal-ok", b"dbseal-nosync"],
    )
    .await;
    q(&mut c, &[b"FLUSHALL"]).await;
}

/// Kills a server once the backup has read `after` bytes.
struct KillAfter {
    pid: u32,
    after: u64,
    seen: AtomicU64,
    killed: AtomicBool,
}

impl Progress for KillAfter {
    fn advance(&self, bytes: u64) {
        let seen = self.seen.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if seen >= self.after && !self.killed.swap(true, Ordering::Relaxed) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &self.pid.to_string()])
                .status();
        }
    }
}

#[tokio::test]
async fn server_killed_during_the_transfer_fails_the_backup() {
    let server = PrivateServer::start("redis-server", 26585, &["--enable-debug-command", "yes"]);
    let cfg = server.config();
    let mut c = conn(&cfg).await;
    // ~75 MB of RDB (POPULATE's values compress well: 400,000 keys made only 15 MB, and
    // under load the whole rest of it could sit in socket buffers by the time the kill
    // landed after 8 MiB, so the backup finished). Killed after 1 MiB, far more than a
    // socket buffer is still on the server's side.
    q(&mut c, &[b"DEBUG", b"POPULATE", b"2000000", b"key", b"300"]).await;
    let vault = Vault::new();
    let kill = Arc::new(KillAfter {
        pid: server.pid,
        after: 1 << 20,
        seen: AtomicU64::new(0),
        killed: AtomicBool::new(false),
    });
    let mut source = RedisSource::new(cfg.clone(), BackupMode::Replication).unwrap();
    let mut opts = BackupOptions::new("killed", vault.keys.encryption());
    opts.zstd_level = 1;
    opts.progress = Some(kill.clone());
    let e = backup_core::backup(&vault.store, &mut source, opts)
        .await
        .unwrap_err();
    assert!(
        kill.killed.load(Ordering::Relaxed),
        "the server was not killed midway"
    );
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Connection, "{msg}");
    assert!(
        msg.contains("connection lost during the snapshot transfer")
            && msg.contains("incomplete snapshot"),
        "{msg}"
    );
    assert_eq!(
        vault.manifests().await,
        0,
        "a failed backup left a manifest"
    );
    let listing = vault.store.scan(None).await.unwrap();
    assert!(listing.backups.is_empty());
}

#[tokio::test]
async fn corrupted_truncated_or_wrongly_keyed_artifacts_leave_the_target_untouched() {
    let _g = SERIAL.lock().await;
    let cfg = redis7();
    let mut c = conn(&cfg).await;
    q(&mut c, &[b"FLUSHALL"]).await;
    // Enough data that keys reach the staging database before the bad spot.
    select(&mut c, 1).await;
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..40_000 {
        // Incompressible values: the artifact must be several pipeline chunks long.
        let mut v = String::new();
        for _ in 0..12 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push_str(&format!("{x:016x}"));
        }
        cmds.push(vec![
            b"SET".to_vec(),
            format!("k{i}").into_bytes(),
            v.into_bytes(),
        ]);
    }
    c.pipeline(&cmds).await.unwrap();
    let vault = Vault::new();
    let m = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    let good = vault.store.get_bytes(&m.artifact.key).await.unwrap();
    assert!(
        good.len() > 256 * 1024,
        "artifact too small to test: {}",
        good.len()
    );

    select(&mut c, 5).await;
    q(&mut c, &[b"SET", b"keep:1", b"old"]).await;
    q(&mut c, &[b"HSET", b"keep:2", b"f", b"old"]).await;
    let target_before = snapshot(&mut c, 5).await;
    let sizes_before = sizes(&mut c).await;
    let opts = RedisRestoreOptions {
        dbs: vec![1],
        db_map: [(1, 5)].into_iter().collect(),
        replace: true,
        ..Default::default()
    };

    let mut flipped = good.to_vec();
    let mid = flipped.len() * 3 / 4;
    flipped[mid] ^= 0x40;
    let truncated = good[..good.len() / 2].to_vec();
    let other_key = RestoreOptions {
        decryption: Some(Arc::new(KeyPair::generate().decryption())),
        ..Default::default()
    };
    let cases: Vec<(&str, Vec<u8>, RestoreOptions, ErrorKind)> = vec![
        (
            "flipped byte",
            flipped,
            vault.restore_options(),
            ErrorKind::Verification,
        ),
        (
            "truncated",
            truncated,
            vault.restore_options(),
            ErrorKind::Verification,
        ),
        ("wrong key", good.to_vec(), other_key, ErrorKind::Decryption),
    ];
    for (what, bytes, ropts, kind) in cases {
        vault.store.put_bytes(&m.artifact.key, bytes).await.unwrap();
        let mut sink = RedisSink::new(cfg.clone(), opts.clone()).unwrap();
        let e = backup_core::restore(&vault.store, &m, "data", &mut sink, &ropts)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(
            e.to_string().contains(&m.backup_id.to_string()),
            "{what}: {e}"
        );
        assert_same(&target_before, &snapshot(&mut c, 5).await);
        assert_eq!(
            sizes(&mut c).await,
            sizes_before,
            "{what}: a database changed"
        );
    }

    // The good artifact replaces the target.
    vault
        .store
        .put_bytes(&m.artifact.key, good.to_vec())
        .await
        .unwrap();
    let mut sink = RedisSink::new(cfg.clone(), opts).unwrap();
    backup_core::restore(
        &vault.store,
        &m,
        "data",
        &mut sink,
        &vault.restore_options(),
    )
    .await
    .unwrap();
    assert_eq!(snapshot(&mut c, 5).await.len(), 40_000);
    q(&mut c, &[b"FLUSHALL"]).await;
}

#[test]
fn config_debug_and_errors_never_show_the_password() {
    let cfg = RedisConfig::from_url("redis://user:pa55word-xyz@127.0.0.1:1/2").unwrap();
    let source = RedisSource::new(cfg.clone(), BackupMode::Replication).unwrap();
    let sink = RedisSink::new(cfg.clone(), Default::default()).unwrap();
    let shown = format!("{cfg:?} {source:?} {sink:?} {}", cfg.redacted_url());
    assert!(!shown.contains("pa55word-xyz"), "{shown}");
}

#[tokio::test]
async fn tls_backups_verify_the_server_certificate() {
    // A private CA and a server certificate for 127.0.0.1, made with the openssl CLI.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sh = |script: &str| {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(d)
            .status()
            .expect("openssl (Debian package `openssl`) is needed for the TLS test")
            .success();
        assert!(ok, "{script}");
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=dbseal-test-ca 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null");
    sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext 2>/dev/null");
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 2 -subj /CN=someone-else 2>/dev/null");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let server = PrivateServer::start(
        "redis-server",
        26586,
        &[
            "--port",
            "0",
            "--tls-port",
            "26586",
            "--tls-cert-file",
            &p("srv.crt"),
            "--tls-key-file",
            &p("srv.key"),
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let base = format!("rediss://127.0.0.1:{}", server.port);
    let trusted = RedisConfig::from_url(&format!("{base}?tls_ca_file={}", p("ca.crt"))).unwrap();
    let mut c = conn(&trusted).await;
    select(&mut c, 2).await;
    q(&mut c, &[b"SET", b"over-tls", b"1"]).await;
    let vault = Vault::new();
    let m = vault
        .backup(&trusted, BackupMode::Replication)
        .await
        .unwrap();
    assert_eq!(m.contents.counts["keys"]["db2.string"], 1);
    assert_eq!(m.source["host"], "127.0.0.1:26586");

    // Restore over TLS too.
    let opts = RedisRestoreOptions {
        db_map: [(2, 3)].into_iter().collect(),
        ..Default::default()
    };
    let mut sink = RedisSink::new(trusted.clone(), opts).unwrap();
    backup_core::restore(
        &vault.store,
        &m,
        "data",
        &mut sink,
        &vault.restore_options(),
    )
    .await
    .unwrap();
    select(&mut c, 3).await;
    assert_eq!(
        q(&mut c, &[b"GET", b"over-tls"]).await.as_text().as_deref(),
        Some("1")
    );

    // A certificate from an unknown CA is refused; `#insecure` skips the check.
    let wrong_ca =
        RedisConfig::from_url(&format!("{base}?tls_ca_file={}", p("other.crt"))).unwrap();
    let e = vault
        .backup(&wrong_ca, BackupMode::Replication)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        e.to_string().contains("TLS") && e.to_string().contains("handshake failed"),
        "{e}"
    );
    let insecure = RedisConfig::from_url(&format!("{base}#insecure")).unwrap();
    vault
        .backup(&insecure, BackupMode::Replication)
        .await
        .unwrap();
    // Plain TCP to a TLS port fails with a clear error, no manifest added.
    let before = vault.manifests().await;
    let plain =
        RedisConfig::from_url(&format!("redis://127.0.0.1:{}?timeout=2", server.port)).unwrap();
    assert!(vault.backup(&plain, BackupMode::Replication).await.is_err());
    assert_eq!(vault.manifests().await, before);
}

/// What another client writes while a staging restore runs is never published, and the
/// backup's functions are restored only when the staging databases are: the server is
/// left as it was (its functions included) when publishing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_by_another_client_during_a_restore_are_never_published() {
    let server = PrivateServer::start("redis-server", 26587, &["--enable-debug-command", "yes"]);
    let cfg = server.config();
    let mut c = conn(&cfg).await;
    q(&mut c, &[b"DEBUG", b"POPULATE", b"300000", b"key", b"200"]).await;
    q(
        &mut c,
        &[
            b"FUNCTION",
            b"LOAD",
            b"#!lua name=newlib\nredis.register_function('fnew', function() return 'new' end)",
        ],
    )
    .await;
    let vault = Vault::new();
    let m = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    q(&mut c, &[b"FUNCTION", b"FLUSH"]).await;
    q(
        &mut c,
        &[
            b"FUNCTION",
            b"LOAD",
            b"#!lua name=oldlib\nredis.register_function('fold', function() return 'old' end)",
        ],
    )
    .await;
    let functions_before = q(&mut c, &[b"FUNCTION", b"DUMP"]).await;

    // 1. Into the (empty) target db 3 while it restores: refused without --replace.
    // 2. Into the staging database itself: refused even with --replace.
    for (intrude_staging, replace) in [(false, false), (true, true)] {
        let opts = RedisRestoreOptions {
            dbs: vec![0],
            db_map: [(0, 3)].into_iter().collect(),
            replace,
            ..Default::default()
        };
        let intruder = {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let mut c = conn(&cfg).await;
                loop {
                    let info = q(&mut c, &[b"INFO", b"keyspace"]).await;
                    let text =
                        String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
                    let staging = text.lines().find_map(|l| {
                        let (db, _) = l.strip_prefix("db")?.split_once(':')?;
                        let db: u32 = db.parse().ok()?;
                        (db != 0 && db != 3).then_some(db)
                    });
                    if let Some(s) = staging {
                        let into = if intrude_staging { s } else { 3 };
                        select(&mut c, into).await;
                        q(&mut c, &[b"SET", b"intruder", b"x"]).await;
                        return into;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
        };
        let mut sink = RedisSink::new(cfg.clone(), opts).unwrap();
        let e = backup_core::restore(
            &vault.store,
            &m,
            "data",
            &mut sink,
            &vault.restore_options(),
        )
        .await
        .unwrap_err();
        let into = intruder.await.unwrap();
        assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
        let text = e.to_string();
        if intrude_staging {
            assert!(text.contains("another client wrote into it"), "{text}");
        } else {
            assert!(text.contains("from another client"), "{text}");
        }
        // Nothing published: db 3 holds at most the intruder's key; the staging
        // database was flushed; the functions are the server's own.
        select(&mut c, 3).await;
        let in_target = q(&mut c, &[b"DBSIZE"]).await.as_int().unwrap();
        assert_eq!(in_target, if into == 3 { 1 } else { 0 });
        let info = q(&mut c, &[b"INFO", b"keyspace"]).await;
        let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
        let dbs: Vec<&str> = text.lines().filter(|l| l.starts_with("db")).collect();
        assert_eq!(dbs.len(), 1 + usize::from(into == 3), "{text}");
        assert_eq!(q(&mut c, &[b"FUNCTION", b"DUMP"]).await, functions_before);
        q(&mut c, &[b"DEL", b"intruder"]).await;
    }
}
