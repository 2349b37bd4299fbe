//! TimescaleDB backup and restore against the real PostgreSQL 15 started by
//! `scripts/services.sh` (DBSEAL_TEST_PG_URL / DBSEAL_TEST_PG_PASSWORD).
//!
//! TimescaleDB is in no package registry: the tests that need the extension detect it
//! (available on the server and preloaded) and otherwise skip with a message saying so.
//! The tests of detection, version checks and error messages run against plain
//! PostgreSQL everywhere.

#[path = "../../backup-postgres/tests/pg_fixture/mod.rs"]
mod pg_fixture;

use std::path::Path;

use backup_core::{BackupOptions, BackupStore, ErrorKind, KeyPair, RestoreOptions};
use backup_postgres::DumpOptions;
use backup_timescale::{
    TimescaleFacts, TimescaleRestoreOptions, TimescaleSink, TimescaleSource, FACTS_KEY,
};
use pg_fixture::config;

async fn client(db: &str) -> tokio_postgres::Client {
    config(db).resolve().unwrap().connect().await.unwrap()
}

async fn fresh_db(name: &str) {
    let c = client("postgres").await;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
}

async fn drop_db(name: &str) {
    let c = client("postgres").await;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

/// A store with this test process's signing key (the same one for every call).
fn store(dir: &Path) -> BackupStore {
    static TRUST: std::sync::OnceLock<backup_core::Trust> = std::sync::OnceLock::new();
    let trust = TRUST.get_or_init(|| backup_core::Trust::ephemeral().unwrap());
    BackupStore::open(dir.to_str().unwrap(), &Default::default())
        .unwrap()
        .with_trust(trust.clone())
}

async fn table_hash(db: &str, table: &str) -> (i64, String) {
    let c = client(db).await;
    let row = c
        .query_one(
            &format!("SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {table} t"),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_database_without_timescaledb_is_refused_with_a_pointer_to_postgres() {
    let db = "ts_test_plain";
    fresh_db(db).await;
    client(db)
        .await
        .batch_execute("CREATE TABLE t(x int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyPair::generate();
    let mut source = TimescaleSource::new(&config(db), DumpOptions::default()).unwrap();
    let err = backup_timescale::backup(
        &store(dir.path()),
        &mut source,
        BackupOptions::new("plain", keys.encryption()),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no timescaledb extension"), "{msg}");
    assert!(msg.contains("dbseal backup postgres"), "{msg}");
    assert!(msg.contains(db), "{msg}");
    assert!(
        store(dir.path()).list(None).await.unwrap().is_empty(),
        "no manifest from a failed backup"
    );
    drop_db(db).await;
}

fn fake_manifest(version: &str, pg_num: u32) -> backup_core::Manifest {
    let facts = TimescaleFacts {
        version: version.into(),
        postgres_version_num: pg_num,
        hypertables: vec![],
        continuous_aggregates: vec![],
        jobs: vec![],
    };
    let json = serde_json::json!({
        "format_version": "1.0",
        "backup_id": "20261121T020000Z-0000abcd",
        "datastore": {"name": "metrics", "kind": "timescale"},
        "started_at": "2026-11-21T02:00:00Z",
        "finished_at": "2026-11-21T02:00:01Z",
        "tool": {"name": "dbseal", "version": "0.1.0"},
        "source": { FACTS_KEY: facts },
        "artifact": {"name": "data", "key": "metrics/x/data.pgdump.zst.age", "format": "pgdump",
                     "stored_size": 1, "stored_sha256": "00", "plaintext_size": 1, "plaintext_sha256": "00"},
        "transforms": [],
    });
    backup_core::Manifest::from_json(json.to_string().as_bytes(), "test").unwrap()
}

#[tokio::test]
async fn version_mismatches_name_both_versions() {
    // Runs on plain PostgreSQL too: the check reads the server's available versions.
    let sink = TimescaleSink::new(&config("postgres"), TimescaleRestoreOptions::default()).unwrap();
    let err = sink
        .check_versions(&fake_manifest("1.7.0", 150_000))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("timescaledb 1.7.0"), "{msg}");
    assert!(
        msg.contains("has no timescaledb extension installed")
            || msg.contains("timescaledb extension version"),
        "{msg}"
    );
    let err = sink
        .check_versions(&fake_manifest("1.7.0", 140_005))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("PostgreSQL 14") && msg.contains("PostgreSQL 15"),
        "{msg}"
    );
    assert_eq!(
        backup_core::Error::from(err).kind(),
        ErrorKind::VersionMismatch
    );
}

#[tokio::test]
async fn a_postgres_backup_is_not_restored_as_timescale() {
    let mut m = fake_manifest("2.0.0", 150_000);
    m.datastore.kind = "postgres".into();
    let sink = TimescaleSink::new(&config("postgres"), TimescaleRestoreOptions::default()).unwrap();
    let msg = sink.check_versions(&m).await.unwrap_err().to_string();
    assert!(msg.contains("is a `postgres` backup"), "{msg}");
}

async fn build_source_db(db: &str) -> bool {
    fresh_db(db).await;
    let c = client(db).await;
    c.batch_execute(
        "CREATE EXTENSION timescaledb;
         CREATE TABLE sensors(id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO sensors SELECT g, 'sensor ' || g FROM generate_series(1, 50) g;
         CREATE TABLE readings(ts timestamptz NOT NULL, sensor int NOT NULL REFERENCES sensors(id), value double precision, note text);
         SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
         CREATE INDEX ON readings(sensor, ts DESC);
         INSERT INTO readings
           SELECT timestamptz '2026-01-01' + (g * interval '8 seconds'), 1 + g % 50, g * 0.5, CASE WHEN g % 7 = 0 THEN E'tab\\there' END
           FROM generate_series(0, 999999) g;
         CREATE TABLE metrics(ts timestamptz NOT NULL, device int NOT NULL, v bigint);
         SELECT create_hypertable('metrics', 'ts', 'device', 4, chunk_time_interval => interval '7 days');
         INSERT INTO metrics SELECT timestamptz '2026-01-01' + g * interval '1 hour', g % 10, g FROM generate_series(1, 5000) g;",
    )
    .await
    .unwrap();
    // Compression, continuous aggregates and policies exist only in builds that have
    // them (not the Apache-2 build).
    let tsl = c
        .batch_execute(
            "ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor');
             SELECT compress_chunk(c) FROM show_chunks('readings', older_than => timestamptz '2026-01-20') c;
             SELECT add_compression_policy('readings', interval '400 days');
             CREATE MATERIALIZED VIEW readings_daily WITH (timescaledb.continuous) AS
               SELECT time_bucket('1 day', ts) AS day, sensor, avg(value) AS avg_value, count(*) AS n FROM readings GROUP BY 1, 2 WITH DATA;",
        )
        .await;
    if let Err(e) = &tsl {
        eprintln!("note: this TimescaleDB build has no compression/continuous aggregates ({e}); testing hypertables only");
    }
    tsl.is_ok()
}

#[tokio::test]
async fn hypertables_round_trip_with_chunks_space_dimension_fk_compression_and_caggs() {
    if !pg_fixture::timescale_available() {
        return;
    }
    let (src, dst) = ("ts_test_src", "ts_test_dst");
    let tsl = build_source_db(src).await;
    drop_db(dst).await;
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let keys = KeyPair::generate();
    let mut source = TimescaleSource::new(&config(src), DumpOptions::default()).unwrap();
    let manifest = backup_timescale::backup(
        &st,
        &mut source,
        BackupOptions::new("metrics", keys.encryption()),
    )
    .await
    .unwrap();
    assert_eq!(manifest.datastore.kind, "timescale");
    let facts = TimescaleFacts::from_manifest(&manifest).expect("facts recorded");
    assert!(!facts.version.is_empty());
    let readings = facts
        .hypertables
        .iter()
        .find(|h| h.name == "public.readings")
        .expect("readings recorded");
    assert_eq!(readings.rows, 1_000_000);
    assert!(readings.chunks >= 90, "many chunks: {}", readings.chunks);
    let metrics = facts
        .hypertables
        .iter()
        .find(|h| h.name == "public.metrics")
        .expect("metrics recorded");
    assert!(
        metrics
            .dimensions
            .iter()
            .any(|d| d.contains("space, 4 partitions")),
        "{:?}",
        metrics.dimensions
    );
    if tsl {
        assert!(readings.compression_enabled && readings.compressed_chunks > 0);
        assert_eq!(
            facts.continuous_aggregates,
            vec!["public.readings_daily".to_string()]
        );
        assert!(
            facts.jobs.iter().any(|j| j.proc.contains("compression")),
            "{:?}",
            facts.jobs
        );
    }

    let options = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let mut sink = TimescaleSink::new(
        &config(dst),
        TimescaleRestoreOptions {
            create_db: true,
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&st, &manifest, "data", &mut sink, &options)
        .await
        .unwrap();

    for table in ["readings", "metrics", "sensors"] {
        assert_eq!(
            table_hash(src, table).await,
            table_hash(dst, table).await,
            "content of {table}"
        );
    }
    if tsl {
        assert_eq!(
            table_hash(src, "readings_daily").await,
            table_hash(dst, "readings_daily").await
        );
    }
    let c = client(dst).await;
    // Not left in restoring mode.
    let restoring: String = c
        .query_one("SHOW timescaledb.restoring", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(restoring, "off");
    // New inserts create chunks as expected.
    let before: i64 = c
        .query_one("SELECT count(*) FROM show_chunks('readings')", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute("INSERT INTO readings VALUES ('2027-06-01 00:00+00', 1, 1.0, 'new')")
        .await
        .unwrap();
    let after: i64 = c
        .query_one("SELECT count(*) FROM show_chunks('readings')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        after,
        before + 1,
        "an insert into a new day creates one new chunk"
    );
    // The FK to the plain table still holds.
    assert!(c
        .batch_execute("INSERT INTO readings VALUES ('2026-01-02', 999, 1.0, NULL)")
        .await
        .is_err());
    drop(c);

    // Level 3.
    let report = backup_timescale::verify_restore(&st, &manifest, &config("postgres"), &options)
        .await
        .unwrap();
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.contains("hypertable public.readings: 1000000 rows")),
        "{:?}",
        report.checks
    );

    // A non-empty target is refused; replace goes through a staging database.
    let mut sink = TimescaleSink::new(&config(dst), TimescaleRestoreOptions::default()).unwrap();
    let err = backup_core::restore(&st, &manifest, "data", &mut sink, &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let mut sink = TimescaleSink::new(
        &config(dst),
        TimescaleRestoreOptions {
            replace: true,
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&st, &manifest, "data", &mut sink, &options)
        .await
        .unwrap();
    assert_eq!(
        table_hash(src, "readings").await,
        table_hash(dst, "readings").await,
        "replaced with the backup's contents"
    );

    // Level 3's content comparison sees one ULP, in a compressed chunk (where the build
    // has compression) and in a plain one, and names each chunk table.
    let conn = config(dst).resolve().unwrap();
    let same = backup_timescale::verify::compare(&conn, &manifest)
        .await
        .unwrap();
    assert!(same.iter().any(|c| c.contains("bit for bit")), "{same:?}");
    let c = client(dst).await;
    let mut chunks = Vec::new();
    for ts in ["2026-01-05 00:00:00+00", "2026-03-01 00:00:00+00"] {
        let chunk: String = c
            .query_one(
                &format!("SELECT tableoid::regclass::text FROM readings WHERE ts = '{ts}'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        // x * (1 + 2^-52) is the next or second-next double above x, never x.
        c.batch_execute(&format!(
            "UPDATE readings SET value = value * (1 + power(2::float8, -52)) WHERE ts = '{ts}'"
        ))
        .await
        .unwrap();
        chunks.push(chunk);
    }
    drop(c);
    let err = backup_timescale::verify::compare(&conn, &manifest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    for chunk in &chunks {
        assert!(
            err.to_string()
                .contains(&format!("table {chunk}: its rows differ")),
            "{chunk} named in: {err}"
        );
    }

    drop_db(src).await;
    drop_db(dst).await;
}

#[tokio::test]
async fn a_corrupted_artifact_leaves_the_target_as_it_was_and_not_restoring() {
    if !pg_fixture::timescale_available() {
        return;
    }
    let (src, dst) = ("ts_test_bad_src", "ts_test_bad_dst");
    fresh_db(src).await;
    client(src)
        .await
        .batch_execute(
            "CREATE EXTENSION timescaledb;
             CREATE TABLE r(ts timestamptz NOT NULL, v int);
             SELECT create_hypertable('r', 'ts', chunk_time_interval => interval '1 hour');
             INSERT INTO r SELECT timestamptz '2026-01-01' + g * interval '1 second', g FROM generate_series(1, 300000) g;",
        )
        .await
        .unwrap();
    fresh_db(dst).await;
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let keys = KeyPair::generate();
    let mut source = TimescaleSource::new(&config(src), DumpOptions::default()).unwrap();
    let manifest = backup_timescale::backup(
        &st,
        &mut source,
        BackupOptions::new("bad", keys.encryption()),
    )
    .await
    .unwrap();
    // Flip one byte in the middle of the stored artifact.
    let path = dir.path().join(&manifest.artifact.key);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    let options = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let mut sink = TimescaleSink::new(&config(dst), TimescaleRestoreOptions::default()).unwrap();
    let err = backup_core::restore(&st, &manifest, "data", &mut sink, &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(
        err.to_string().contains(manifest.backup_id.as_str()),
        "{err}"
    );
    let c = client(dst).await;
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing restored");
    let ext = c
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await
        .unwrap();
    assert!(
        ext.is_none(),
        "the extension dbseal created was removed again"
    );
    let restoring: Option<String> = c
        .query_opt(
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .map(|r| r.get(0));
    assert!(
        !restoring
            .unwrap_or_default()
            .contains("timescaledb.restoring=on"),
        "timescaledb_post_restore() ran: the database is not left in restoring mode"
    );
    drop(c);
    drop_db(src).await;
    drop_db(dst).await;
}
