//! Bit-exact round trips, property-tested against the real PostgreSQL 15 (issue 17).
//!
//! For each built-in type, generated values (its edge values first, then random ones
//! from a seeded generator; one value is one case) go into a table of their own; one
//! backup of the whole database is restored with `--create-db`, and every table is
//! read on both sides by psql — PostgreSQL's own client, not dbseal's archive reader —
//! as `COPY … TO STDOUT (FORMAT binary)`, the server's send functions: a float that
//! changed by one bit, a lost time-zone offset or a trimmed trailing space differs.
//!
//! `DBSEAL_EXACT_SEED` and `DBSEAL_EXACT_CASES` (default 300 values per type) choose
//! the run; a failure names the seed, the type, the case and its literal.

mod common;
mod pg_fixture;
mod pg_values;

use backup_core::conformance::env_u64;
use backup_core::{BackupOptions, RestoreOptions};
use backup_postgres::{DumpOptions, PostgresSource};
use common::*;
use pg_values::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_type_survives_backup_and_restore_bit_for_bit() {
    let seed = env_u64("DBSEAL_EXACT_SEED", 17);
    let cases = env_u64("DBSEAL_EXACT_CASES", 300);
    let mut rng = StdRng::seed_from_u64(seed);
    let src = TempDb::create("exact_src").await;
    let mut cases_of = Vec::new();
    for ty in TYPES {
        let values = values(ty, &mut rng, cases);
        let rows: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("({i}, {v})"))
            .collect();
        pg_fixture::psql(
            &src.name,
            &format!(
                "CREATE TABLE \"{t}\" (id integer PRIMARY KEY, v {ty});\nINSERT INTO \"{t}\" VALUES {rows};",
                t = ty.table,
                ty = ty.sql_type,
                rows = rows.join(",\n")
            ),
        );
        cases_of.push(values);
    }

    // Settings that change COPY's text (pg_dump does not set them): level 3 must read
    // the scratch restore in the dump's, not in the scratch database's defaults.
    pg_fixture::psql(
        &src.name,
        &format!(
            "ALTER DATABASE \"{db}\" SET timezone = 'Asia/Kolkata';\n\
             ALTER DATABASE \"{db}\" SET bytea_output = 'escape';",
            db = src.name
        ),
    );
    let (_dir, store, keys) = store();
    let mut source = PostgresSource::new(&config(&src.name), DumpOptions::default()).unwrap();
    let manifest = backup_postgres::backup(
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
    let (dst, _) = restore_into_new_db(&store, &manifest, &opts, "exact_dst").await;

    assert_every_type_equal(
        &src.name,
        &dst.name,
        &cases_of,
        &format!("seed {seed}, {cases} cases per type"),
    );

    // Level 3 sees every one of these values: its scratch restore reads back equal to
    // the backup's digests...
    let report = backup_postgres::verify_restore(&store, &manifest, &config("postgres"), &opts)
        .await
        .unwrap();
    let content = report
        .checks
        .iter()
        .find(|c| c.contains("bit for bit"))
        .unwrap_or_else(|| panic!("no content check in {:?}", report.checks));
    assert!(
        content.starts_with(&format!("{} tables", TYPES.len())),
        "{content}"
    );
    // ...and one float one ULP off, or a time whose offset was lost, fails it, naming
    // the tables.
    let conn = config(&dst.name).resolve().unwrap();
    backup_postgres::compare_live_content(&conn, &manifest)
        .await
        .unwrap();
    let float_before = pg_fixture::psql(
        &dst.name,
        "SELECT string_agg(encode(float8send(v), 'hex'), ',' ORDER BY id) FROM float8",
    );
    pg_fixture::psql(
        &dst.name,
        "UPDATE float8 SET v = v * (1 + 2.220446049250313e-16) WHERE id = (SELECT min(id) FROM float8 WHERE v > 1 AND v < 1e300);\n\
         UPDATE timetz SET v = v AT TIME ZONE 'UTC' WHERE id = (SELECT min(id) FROM timetz WHERE v IS NOT NULL AND extract(timezone FROM v) <> 0);",
    );
    let float_after = pg_fixture::psql(
        &dst.name,
        "SELECT string_agg(encode(float8send(v), 'hex'), ',' ORDER BY id) FROM float8",
    );
    assert_ne!(
        float_before, float_after,
        "the test's one-ULP change did not change the value"
    );
    let err = backup_postgres::compare_live_content(&conn, &manifest)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("table public.float8: its rows differ"),
        "{err}"
    );
    assert!(
        err.contains("table public.timetz: its rows differ"),
        "{err}"
    );
    assert!(!err.contains("public.text"), "{err}");
}

/// Table digests are BLAKE3 (`copy_blake3.<table>`) since 2026-12-07; a manifest written
/// before records SHA-256 (`copy_sha256.<table>`), and level 3 still compares those —
/// here a manifest rewritten into that older form, its SHA-256s computed from psql's
/// `COPY … TO STDOUT` (an independent reader) of the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_digests_are_blake3_and_older_sha256_ones_still_compare() {
    use sha2::{Digest, Sha256};
    let src = TempDb::create("digest_src").await;
    pg_fixture::psql(
        &src.name,
        "CREATE TABLE t (id integer PRIMARY KEY, v text);\n\
         INSERT INTO t SELECT g, repeat('row ' || g, g % 50) FROM generate_series(1, 20000) g;",
    );
    let (_dir, store, keys) = store();
    let mut source = PostgresSource::new(&config(&src.name), DumpOptions::default()).unwrap();
    let manifest = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("digest", keys.encryption()),
    )
    .await
    .unwrap();
    let rows = pg_fixture::psql_raw(&src.name, "COPY public.t (id, v) TO STDOUT");
    let facts = &manifest.contents.facts;
    assert_eq!(
        facts.get("copy_blake3.public.t"),
        Some(&blake3::hash(&rows).to_hex().to_string()),
        "{facts:?}"
    );
    assert!(!facts.contains_key("copy_sha256.public.t"), "{facts:?}");
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let (dst, _) = restore_into_new_db(&store, &manifest, &opts, "digest_dst").await;
    let conn = config(&dst.name).resolve().unwrap();
    backup_postgres::compare_live_content(&conn, &manifest)
        .await
        .unwrap();

    let mut legacy = manifest.clone();
    legacy.contents.facts.remove("copy_blake3.public.t");
    legacy.contents.facts.insert(
        "copy_sha256.public.t".into(),
        hex::encode(Sha256::digest(&rows)),
    );
    backup_postgres::compare_live_content(&conn, &legacy)
        .await
        .unwrap();
    pg_fixture::psql(&dst.name, "UPDATE t SET v = v || ' ' WHERE id = 777");
    for (m, algorithm) in [(&legacy, "SHA-256"), (&manifest, "BLAKE3")] {
        let err = backup_postgres::compare_live_content(&conn, m)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("table public.t: its rows differ") && err.contains(algorithm),
            "{err}"
        );
    }
}
