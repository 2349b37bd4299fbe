//! The heavy one, run once by CI: pgbench scale 70 (about 1 GB) backs up, verifies at
//! levels 1, 2 and 3, and restores with equal row counts. Prints its timings.

mod common;

use std::process::Command;
use std::time::Instant;

use backup_core::{BackupOptions, FormatRegistry, RestoreOptions, VerifyLevel};
use backup_postgres::{DumpOptions, PostgresSource};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_70_round_trip() {
    let started = Instant::now();
    let src = TempDb::create("pgbench70").await;
    let (host, port) = host_port();
    let (_, pw) = server();
    let pgbench = match std::env::var("DBSEAL_TEST_PG_BIN") {
        Ok(dir) => format!("{dir}/pgbench"),
        Err(_) => "pgbench".to_string(),
    };
    // d: drop, t: tables, G: server-side generation, p: primary keys (no vacuum).
    let out = Command::new(pgbench)
        .args(["-i", "-s", "70", "-I", "dtGp", "-q"])
        .args([
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            &src.name,
        ])
        .env("PGPASSWORD", &pw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t_load = started.elapsed();

    let (_dir, store, keys) = store();
    let t = Instant::now();
    let mut source = PostgresSource::new(&config(&src.name), DumpOptions::default()).unwrap();
    let manifest = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("pgbench", keys.encryption()),
    )
    .await
    .unwrap();
    let t_backup = t.elapsed();
    let tables = &manifest.contents.counts["tables"];
    assert_eq!(tables["public.pgbench_accounts"], 7_000_000);
    assert_eq!(tables["public.pgbench_branches"], 70);
    assert_eq!(tables["public.pgbench_tellers"], 700);
    assert_eq!(tables, &live_counts(&src.name).await);
    assert!(
        manifest.artifact.plaintext_size > 500_000_000,
        "{}",
        manifest.artifact.plaintext_size
    );

    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let t = Instant::now();
    backup_core::verify_stored(&store, &manifest).await.unwrap();
    let t_v1 = t.elapsed();
    let t = Instant::now();
    let mut formats = FormatRegistry::new();
    backup_postgres::register_formats(&mut formats);
    backup_core::verify_content(&store, &manifest, &formats, &opts)
        .await
        .unwrap();
    let t_v2 = t.elapsed();
    let t = Instant::now();
    let report = backup_postgres::verify_restore(&store, &manifest, &config("postgres"), &opts)
        .await
        .unwrap();
    assert_eq!(report.level, VerifyLevel::Restore);
    let t_v3 = t.elapsed();
    // The source is no longer needed: free the server's disk and memory before restoring.
    drop(src);

    let t = Instant::now();
    let (dst, _) = restore_into_new_db(&store, &manifest, &opts, "pgbench70_dst").await;
    let t_restore = t.elapsed();
    assert_eq!(&live_counts(&dst.name).await, tables);
    eprintln!(
        "pgbench_70_round_trip: plaintext {} MB, stored {} MB; load {:.1}s, backup {:.1}s, verify stored {:.1}s, content {:.1}s, restore-verify {:.1}s, restore {:.1}s, total {:.1}s",
        manifest.artifact.plaintext_size / 1_000_000,
        manifest.artifact.stored_size / 1_000_000,
        t_load.as_secs_f64(),
        t_backup.as_secs_f64(),
        t_v1.as_secs_f64(),
        t_v2.as_secs_f64(),
        t_v3.as_secs_f64(),
        t_restore.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
