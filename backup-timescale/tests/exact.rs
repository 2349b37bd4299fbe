//! Bit-exact round trips of TimescaleDB's compressed chunks (issue 17), against the real
//! PostgreSQL 15 of `scripts/services.sh` with the extension (skips with a message where
//! it is not installed: no package registry ships it).
//!
//! Every built-in type's generated values (backup-postgres's `pg_values`: edge values,
//! then random ones from a seeded generator) go into a hypertable of their own, with
//! weekly chunks; every chunk but the newest is compressed (TimescaleDB's gorilla,
//! delta-delta, dictionary and array algorithms, chosen by type). One backup is restored
//! into a new database, and each hypertable is read on both sides by psql through the
//! server's send functions (a binary COPY in case order): one changed bit differs.
//! `DBSEAL_EXACT_SEED` / `DBSEAL_EXACT_CASES` (default 300 per type) choose the run.

#[path = "../../backup-postgres/tests/pg_fixture/mod.rs"]
mod pg_fixture;
#[path = "../../backup-postgres/tests/pg_values/mod.rs"]
mod pg_values;

use backup_core::conformance::env_u64;
use backup_core::{BackupOptions, BackupStore, KeyPair, RestoreOptions};
use backup_postgres::DumpOptions;
use backup_timescale::{TimescaleRestoreOptions, TimescaleSink, TimescaleSource};
use pg_fixture::{config, psql, timescale_available};
use pg_values::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Per hypertable: its name, its compressed chunks, its chunks not compressed.
const CHUNK_STATES: &str = "SELECT hypertable_name, count(*) FILTER (WHERE is_compressed), \
     count(*) FILTER (WHERE NOT is_compressed) FROM timescaledb_information.chunks GROUP BY 1 ORDER BY 1;";

/// Drops the databases whatever the test's outcome.
struct Dbs(Vec<String>);
impl Drop for Dbs {
    fn drop(&mut self) {
        for db in &self.0 {
            psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE);"),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_chunks_of_every_builtin_type_round_trip_bit_for_bit() {
    if !timescale_available() {
        return;
    }
    let seed = env_u64("DBSEAL_EXACT_SEED", 17);
    let cases = env_u64("DBSEAL_EXACT_CASES", 300);
    let mut rng = StdRng::seed_from_u64(seed);
    let (src, dst) = (
        format!("ts_exact_src_{}", std::process::id()),
        format!("ts_exact_dst_{}", std::process::id()),
    );
    let _cleanup = Dbs(vec![src.clone(), dst.clone()]);
    psql("postgres", &format!("CREATE DATABASE \"{src}\";"));
    psql(&src, "CREATE EXTENSION timescaledb;");
    let mut cases_of = Vec::new();
    for ty in TYPES {
        let values = values(ty, &mut rng, cases);
        // Four weeks of rows whatever the number of cases: four or five weekly chunks.
        let step = 28 * 86_400 / values.len();
        let rows: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!("(timestamptz '2026-01-01' + {i} * interval '{step} seconds', {i}, {v})")
            })
            .collect();
        psql(
            &src,
            &format!(
                "CREATE TABLE \"{t}\" (ts timestamptz NOT NULL, id integer NOT NULL, v {ty});\n\
                 SELECT create_hypertable('\"{t}\"', 'ts', chunk_time_interval => interval '7 days');\n\
                 INSERT INTO \"{t}\" VALUES {rows};\n\
                 ALTER TABLE \"{t}\" SET (timescaledb.compress, timescaledb.compress_orderby = 'id');",
                t = ty.table,
                ty = ty.sql_type,
                rows = rows.join(",\n")
            ),
        );
        // One statement per chunk: compressing several in one statement fails
        // ("cannot REINDEX … being used by active queries in this session").
        let older = psql(
            &src,
            &format!(
                "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks\n\
                  WHERE hypertable_name = '{t}' AND range_end <= (SELECT max(ts) FROM \"{t}\");",
                t = ty.table
            ),
        );
        let compress: String = older
            .lines()
            .map(|chunk| format!("SELECT compress_chunk('{chunk}');\n"))
            .collect();
        psql(&src, &compress);
        cases_of.push(values);
    }
    // Every hypertable has compressed chunks and one that is not.
    let chunks = psql(&src, CHUNK_STATES);
    let lines: Vec<&str> = chunks.lines().collect();
    assert_eq!(lines.len(), TYPES.len(), "{chunks}");
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        assert!(
            f[1].parse::<u32>().unwrap() >= 2 && f[2] == "1",
            "compressed | not compressed chunks: {line}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(dir.path().to_str().unwrap(), &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let mut source = TimescaleSource::new(&config(&src), DumpOptions::default()).unwrap();
    let manifest = backup_timescale::backup(
        &store,
        &mut source,
        BackupOptions::new("exact", keys.encryption()),
    )
    .await
    .unwrap();
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let mut sink = TimescaleSink::new(
        &config(&dst),
        TimescaleRestoreOptions {
            create_db: true,
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .unwrap();
    // The restored chunks are compressed as the source's were.
    assert_eq!(psql(&dst, CHUNK_STATES,), chunks);

    assert_every_type_equal(
        &src,
        &dst,
        &cases_of,
        &format!("seed {seed}, {cases} cases per type"),
    );

    // Level 3 reads the same values back equal to the backup's digests.
    let report = backup_timescale::verify_restore(&store, &manifest, &config("postgres"), &opts)
        .await
        .unwrap();
    assert!(
        report.checks.iter().any(|c| c.contains("bit for bit")),
        "{:?}",
        report.checks
    );
}
