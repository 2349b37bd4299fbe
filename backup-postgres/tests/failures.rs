//! Bad input against the real PostgreSQL 15: each failure is one clear error, a failed
//! backup writes no manifest, and a bad artifact leaves the restore target exactly as
//! it was.

mod common;

use std::io::Write;

use backup_core::{
    BackupOptions, BackupStore, ErrorKind, KeyPair, Manifest, ReaderSource, RestoreOptions,
};
use backup_postgres::{DumpOptions, PostgresConfig, PostgresSink, PostgresSource, RestoreTarget};
use common::*;
use sha2::{Digest, Sha256};

const SMALL_SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE TABLE app.customers (id bigint PRIMARY KEY, name text, note text);
INSERT INTO app.customers SELECT g, 'customer ' || g, repeat(md5(g::text), 4) FROM generate_series(1, 60000) g;
CREATE TABLE app.orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES app.customers (id), amount numeric);
INSERT INTO app.orders SELECT g, 1 + g % 60000, g / 7.0 FROM generate_series(1, 60000) g;
CREATE INDEX ON app.orders (customer_id);
SELECT lo_from_bytea(0, '\x0102'::bytea);
"#;

async fn small_backup() -> (TempDb, tempfile::TempDir, BackupStore, KeyPair, Manifest) {
    let src = TempDb::create("bad_src").await;
    exec(&src.name, SMALL_SCHEMA).await;
    let (dir, store, keys) = store();
    let mut source = PostgresSource::new(&config(&src.name), DumpOptions::default()).unwrap();
    let manifest = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("bad", keys.encryption()),
    )
    .await
    .unwrap();
    (src, dir, store, keys, manifest)
}

fn opts(keys: &KeyPair) -> RestoreOptions {
    RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    }
}

/// Stores `bytes` as the manifest's artifact, and returns a manifest whose stored size
/// and digest describe them (so only the age authentication can catch a tampering).
async fn replace_artifact(
    store: &BackupStore,
    manifest: &Manifest,
    bytes: Vec<u8>,
    fix_manifest: bool,
) -> Manifest {
    let mut m = manifest.clone();
    if fix_manifest {
        m.artifact.stored_size = bytes.len() as u64;
        m.artifact.stored_sha256 = hex::encode(Sha256::digest(&bytes));
    }
    store
        .put_bytes(&manifest.artifact.key, bytes)
        .await
        .unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_truncated_tampered_or_wrongly_keyed_artifacts_leave_the_target_as_it_was() {
    let (_src, _dir, store, keys, manifest) = small_backup().await;
    let original = store
        .get_bytes(&manifest.artifact.key)
        .await
        .unwrap()
        .to_vec();
    assert!(
        original.len() > 1_000_000,
        "artifact too small to span many chunks: {}",
        original.len()
    );

    // A target in a known state: the backup restored, then changed.
    let target = TempDb::named("bad_target");
    let mut sink = PostgresSink::new(
        &config(&target.name),
        RestoreTarget {
            create_db: true,
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts(&keys))
        .await
        .unwrap();
    exec(&target.name, "DELETE FROM app.orders WHERE id > 50000; UPDATE app.customers SET name = 'changed' WHERE id < 10; CREATE TABLE public.marker (x int); INSERT INTO public.marker VALUES (1)").await;
    let before = fingerprint(&target.name).await;

    let near_end = original.len() - 100;
    let mut cases: Vec<(&str, Vec<u8>, bool, RestoreOptions)> = Vec::new();
    let mut flipped_end = original.clone();
    flipped_end[near_end] ^= 0x01;
    cases.push((
        "a flipped byte near the end",
        flipped_end.clone(),
        false,
        opts(&keys),
    ));
    let mut flipped_mid = original.clone();
    flipped_mid[original.len() / 2] ^= 0x80;
    cases.push((
        "a flipped byte in the middle",
        flipped_mid,
        false,
        opts(&keys),
    ));
    cases.push((
        "a truncated artifact",
        original[..original.len() - 1000].to_vec(),
        false,
        opts(&keys),
    ));
    cases.push((
        "a tampered artifact whose manifest digest was forged",
        flipped_end,
        true,
        opts(&keys),
    ));
    cases.push((
        "a wrong key",
        original.clone(),
        false,
        opts(&KeyPair::generate()),
    ));

    for (what, bytes, forge, key_opts) in cases {
        for selective in [false, true] {
            let m = replace_artifact(&store, &manifest, bytes.clone(), forge).await;
            let mut sink = PostgresSink::new(
                &config(&target.name),
                RestoreTarget {
                    replace: true,
                    tables: if selective {
                        vec!["orders".into()]
                    } else {
                        vec![]
                    },
                    ..Default::default()
                },
            )
            .unwrap();
            let err = backup_core::restore(&store, &m, "data", &mut sink, &key_opts)
                .await
                .expect_err(what);
            assert!(
                matches!(err.kind(), ErrorKind::Verification | ErrorKind::Decryption),
                "{what} (selective {selective}): unexpected error kind {:?}: {err}",
                err.kind()
            );
            assert!(
                err.to_string().contains(&manifest.backup_id.to_string()),
                "{what}: {err}"
            );
            assert_eq!(
                fingerprint(&target.name).await,
                before,
                "{what} (selective {selective}) changed the target"
            );
        }
        // Into a database the sink creates: it is dropped again.
        let m = replace_artifact(&store, &manifest, bytes.clone(), forge).await;
        let fresh = TempDb::named("bad_fresh");
        let mut sink = PostgresSink::new(
            &config(&fresh.name),
            RestoreTarget {
                create_db: true,
                ..Default::default()
            },
        )
        .unwrap();
        backup_core::restore(&store, &m, "data", &mut sink, &key_opts)
            .await
            .expect_err(what);
        assert!(
            !db_exists(&fresh.name).await,
            "{what}: the database created for the failed restore is still there"
        );
    }

    // The intact artifact still restores (the checks above were not false alarms).
    replace_artifact(&store, &manifest, original, false).await;
    let mut sink = PostgresSink::new(
        &config(&target.name),
        RestoreTarget {
            replace: true,
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts(&keys))
        .await
        .unwrap();
    assert_eq!(live_counts(&target.name).await["app.orders"], 60000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_and_tools_are_clear_errors_with_no_manifest() {
    let src = TempDb::create("conn_src").await;
    exec(
        &src.name,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    )
    .await;
    let (_dir, store, keys) = store();
    let (host, port) = host_port();
    let encryption = keys.encryption();
    let backup = |config: PostgresConfig, options: DumpOptions| {
        let store = store.clone();
        let encryption = encryption.clone();
        async move {
            let mut source = PostgresSource::new(&config, options)?;
            backup_postgres::backup(&store, &mut source, BackupOptions::new("conn", encryption))
                .await
        }
    };

    // Wrong password: names the server, never the password.
    let mut c = config(&src.name);
    c.password = Some("not-the-password-42".into());
    let err = backup(c, DumpOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Connection, "{msg}");
    assert!(
        msg.contains(&format!("{host}:{port}")) && msg.contains("password authentication failed"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password-42"), "{msg}");

    // Unreachable host.
    let mut c = config(&src.name);
    c.port = Some(1);
    let err = backup(c, DumpOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains(&format!("{host}:1")), "{err}");

    // Missing database.
    let err = backup(config("no_such_database_here"), DumpOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string()
            .contains("\"no_such_database_here\" does not exist"),
        "{err}"
    );

    // pg_dump older than the server. Only PostgreSQL 15 binaries exist on this
    // machine, so this is a FAKE pg_dump: a script reporting version 14 that records
    // any attempt to run it for real.
    let fake = tempfile::tempdir().unwrap();
    let ran = fake.path().join("ran");
    let script = fake.path().join("pg_dump");
    let mut f = std::fs::File::create(&script).unwrap();
    writeln!(
        f,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 14.11'; exit 0; fi\ntouch '{}'\nexit 1",
        ran.display()
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = config(&src.name);
    c.pg_bin_dir = Some(fake.path().to_path_buf());
    let err = backup(c, DumpOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::VersionMismatch, "{msg}");
    assert!(
        msg.contains("14.11") && msg.contains("postgresql-client-15") && msg.contains("PG_BIN_DIR"),
        "{msg}"
    );
    assert!(!ran.exists(), "the too-old pg_dump was run to dump");

    // A binary directory without pg_dump.
    let mut c = config(&src.name);
    c.pg_bin_dir = Some(tempfile::tempdir().unwrap().path().to_path_buf());
    let err = backup(c, DumpOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");

    // pg_dump itself failing (no table matches): non-zero exit, its message shown.
    let err = backup(
        config(&src.name),
        DumpOptions {
            tables: vec!["no_such_table".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("pg_dump failed") && msg.contains("no matching tables"),
        "{msg}"
    );

    // None of these left a backup behind.
    assert!(
        store.list(None).await.unwrap().is_empty(),
        "a failed backup wrote a manifest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_of_another_kind_or_format_are_refused_and_level3_mismatches_name_the_table() {
    let (_src, _dir, store, keys, manifest) = small_backup().await;
    let target = TempDb::create("kind_target").await;
    exec(
        &target.name,
        "CREATE TABLE keep (x int); INSERT INTO keep VALUES (7)",
    )
    .await;
    let before = fingerprint(&target.name).await;

    // A Redis backup (a raw stream recorded as kind `redis`).
    let mut other = ReaderSource::new(&b"REDIS0010 not a pg archive"[..], "redis");
    let foreign = backup_core::backup(
        &store,
        &mut other,
        BackupOptions::new("cache", keys.encryption()),
    )
    .await
    .unwrap();
    // A `postgres` backup whose artifact is not a pg_dump archive.
    let mut raw = ReaderSource::new(&b"-- plain SQL"[..], "postgres");
    let not_archive = backup_core::backup(
        &store,
        &mut raw,
        BackupOptions::new("raw", keys.encryption()),
    )
    .await
    .unwrap();
    for (m, needle) in [
        (&foreign, "`redis` backup"),
        (&not_archive, "not a pg_dump custom archive"),
    ] {
        let mut sink = PostgresSink::new(
            &config(&target.name),
            RestoreTarget {
                replace: true,
                ..Default::default()
            },
        )
        .unwrap();
        let err = backup_core::restore(&store, m, "data", &mut sink, &opts(&keys))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        assert_eq!(fingerprint(&target.name).await, before);
    }

    // Level 3 with a manifest whose count is off: the table is named, the scratch
    // database is dropped.
    let mut wrong = manifest.clone();
    *wrong
        .contents
        .counts
        .get_mut("tables")
        .unwrap()
        .get_mut("app.orders")
        .unwrap() += 1;
    let err = backup_postgres::verify_restore(&store, &wrong, &config("postgres"), &opts(&keys))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("app.orders: 60000 rows live, the manifest records 60001"),
        "{msg}"
    );
    assert!(!msg.contains("app.customers"), "{msg}");
    let prefix: String = manifest
        .backup_id
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let c = connect("postgres").await;
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)",
            &[&format!("dbseal_verify_{prefix}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the scratch database was not dropped");
    // And the right manifest passes level 3.
    backup_postgres::verify_restore(&store, &manifest, &config("postgres"), &opts(&keys))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_user_object_makes_the_target_non_empty() {
    let empty = TempDb::create("empty_target").await;
    let sink = PostgresSink::new(&config(&empty.name), RestoreTarget::default()).unwrap();
    sink.check_target().await.unwrap();
    let missing =
        PostgresSink::new(&config("no_such_target_db"), RestoreTarget::default()).unwrap();
    let err = missing.check_target().await.unwrap_err();
    assert!(err.to_string().contains("--create-db"), "{err}");
    let cases = [
        ("schema", "CREATE SCHEMA s"),
        ("table", "CREATE TABLE t (x int)"),
        ("view", "CREATE VIEW v AS SELECT 1 AS x"),
        ("sequence", "CREATE SEQUENCE q"),
        (
            "function",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ),
        ("type", "CREATE TYPE e AS ENUM ('a')"),
        ("type", "CREATE TYPE c AS (a int)"),
        ("type", "CREATE DOMAIN d AS int"),
        ("extension", "CREATE EXTENSION pg_trgm"),
        ("large object", "SELECT lo_from_bytea(0, '\\x01'::bytea)"),
    ];
    for (kind, sql) in cases {
        let db = TempDb::create("nonempty").await;
        exec(&db.name, sql).await;
        let sink = PostgresSink::new(&config(&db.name), RestoreTarget::default()).unwrap();
        let err = sink.check_target().await.expect_err(sql);
        assert_eq!(err.kind(), ErrorKind::Refused, "{sql}: {err}");
        assert!(err.to_string().contains(kind), "{sql}: {err}");
        let replace = PostgresSink::new(
            &config(&db.name),
            RestoreTarget {
                replace: true,
                ..Default::default()
            },
        )
        .unwrap();
        replace.check_target().await.unwrap();
    }
}

/// The `--replace` swap TimescaleDB uses (exercised here on plain PostgreSQL, as
/// TimescaleDB is not installed on every test machine): the target is renamed aside and
/// the staging copy renamed in within one transaction, a session on the target does not
/// stop it, and nothing of the old database is left.
#[tokio::test]
async fn swap_in_database_replaces_the_target_in_one_step() {
    let target = TempDb::create("swap_target").await;
    let staging = TempDb::create("swap_staging").await;
    exec(
        &target.name,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('old');",
    )
    .await;
    exec(
        &staging.name,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('new');",
    )
    .await;
    // A session holding the target open (an application still connected).
    let holder = connect(&target.name).await;
    let maint = config("postgres").resolve().unwrap();
    let kept = backup_postgres::sink::swap_in_database(&maint, &staging.name, &target.name)
        .await
        .unwrap();
    assert_eq!(kept, None, "the old database is dropped");
    assert!(
        holder.simple_query("SELECT 1").await.is_err(),
        "the old session was ended"
    );
    let c = connect(&target.name).await;
    let v: String = c.query_one("SELECT v FROM t", &[]).await.unwrap().get(0);
    assert_eq!(v, "new");
    assert!(!db_exists(&staging.name).await);
    let admin = connect("postgres").await;
    let left = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            &[&format!(
                "{}%dbseal_old%",
                &target.name[..target.name.len().min(30)]
            )],
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "the renamed-aside database is dropped");
}

/// A swap that cannot happen (the staging copy does not exist) changes nothing: the
/// rename of the target aside is rolled back with it.
#[tokio::test]
async fn a_failed_swap_leaves_the_target_under_its_name() {
    let target = TempDb::create("swap_fail").await;
    exec(
        &target.name,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('old');",
    )
    .await;
    let maint = config("postgres").resolve().unwrap();
    let err = backup_postgres::sink::swap_in_database(&maint, "no_such_staging_db", &target.name)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    let c = connect(&target.name).await;
    let v: String = c.query_one("SELECT v FROM t", &[]).await.unwrap().get(0);
    assert_eq!(v, "old");
}
