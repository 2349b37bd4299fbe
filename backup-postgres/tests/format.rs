//! The custom-archive reader on real dumps made by the test server's pg_dump: counts
//! equal the live database and `pg_restore --list`; every truncation and a compressed
//! or non-custom dump are clear errors.

mod common;

use std::process::Command;

use backup_postgres::read_archive;
use common::*;

fn pg_bin(name: &str) -> String {
    match std::env::var("DBSEAL_TEST_PG_BIN") {
        Ok(dir) => format!("{dir}/{name}"),
        Err(_) => name.to_string(),
    }
}

/// Runs pg_dump on `db` with extra flags and returns its output.
fn pg_dump(db: &str, flags: &[&str]) -> Vec<u8> {
    let (host, port) = host_port();
    let (_, pw) = server();
    let out = Command::new(pg_bin("pg_dump"))
        .args(flags)
        .args([
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .env("PGPASSWORD", pw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `pg_restore --list` of an archive: (its "TOC Entries" header, TABLE DATA entries).
fn pg_restore_list(archive: &[u8]) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.dump");
    std::fs::write(&f, archive).unwrap();
    let out = Command::new(pg_bin("pg_restore"))
        .arg("--list")
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let entries: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .collect();
    let data = entries
        .iter()
        .filter(|l| l.contains(" TABLE DATA "))
        .count();
    let header: u64 = text
        .lines()
        .find_map(|l| l.split("TOC Entries:").nth(1))
        .expect("pg_restore --list prints the TOC entry count")
        .trim()
        .parse()
        .unwrap();
    (header, data as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_counts_equal_live_database_and_pg_restore_list() {
    let db = TempDb::create("fmt_rich").await;
    exec(&db.name, RICH_SCHEMA).await;
    let live = live_counts(&db.name).await;

    // Streamed to a pipe (offsets not set) and written to a seekable file (offsets set
    // after the fact): both read the same.
    let streamed = pg_dump(&db.name, &["-Fc", "-Z0"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rich.dump");
    pg_dump(&db.name, &["-Fc", "-Z0", "-f", file.to_str().unwrap()]);
    let seekable = std::fs::read(&file).unwrap();
    for archive in [&streamed, &seekable] {
        let c = read_archive(&mut archive.as_slice()).unwrap();
        assert_eq!(c.counts["tables"], live);
        let (entries, data) = pg_restore_list(archive);
        assert_eq!(c.facts["toc_entries"], entries.to_string());
        assert_eq!(c.counts["objects"]["TABLE DATA"], data);
        assert_eq!(c.counts["large_objects"]["count"], 2);
        assert_eq!(c.facts["database"], db.name);
        assert_eq!(c.facts["compression"], "none");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_truncation_and_foreign_dumps_are_clear_errors() {
    let db = TempDb::create("fmt_small").await;
    exec(
        &db.name,
        "CREATE TABLE t (a int, b text); INSERT INTO t SELECT g, 'x' || g FROM generate_series(1, 5) g;
         CREATE TABLE e (a int); CREATE TABLE u (a int); INSERT INTO u VALUES (1);
         SELECT lo_from_bytea(0, 'hello'::bytea);",
    )
    .await;
    let archive = pg_dump(&db.name, &["-Fc", "-Z0"]);
    let full = read_archive(&mut archive.as_slice()).unwrap();
    assert_eq!(full.counts["tables"]["public.t"], 5);
    assert_eq!(full.counts["tables"]["public.e"], 0);
    assert_eq!(full.counts["tables"]["public.u"], 1);
    assert_eq!(full.counts["large_objects"]["count"], 1);
    assert_eq!(full.counts["large_objects"]["bytes"], 5);

    // Every proper prefix is refused as truncated, including cuts between two data
    // blocks.
    for cut in 0..archive.len() {
        let err = read_archive(&mut &archive[..cut]).expect_err(&format!(
            "a cut at byte {cut} of {} was accepted",
            archive.len()
        ));
        let msg = err.to_string();
        assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
    }
    // Trailing garbage is refused too.
    let mut extra = archive.clone();
    extra.push(0x07);
    let msg = read_archive(&mut extra.as_slice()).unwrap_err().to_string();
    assert!(msg.contains("unknown data block type 7"), "{msg}");

    // A compressed custom archive: clear about -Z0.
    let gz = pg_dump(&db.name, &["-Fc"]);
    let msg = read_archive(&mut gz.as_slice()).unwrap_err().to_string();
    assert!(msg.contains("compressed") && msg.contains("-Z0"), "{msg}");
    // Plain SQL and tar: not custom archives.
    let sql = pg_dump(&db.name, &["-Fp"]);
    let msg = read_archive(&mut sql.as_slice()).unwrap_err().to_string();
    assert!(msg.contains("does not start with PGDMP"), "{msg}");
    let tar = pg_dump(&db.name, &["-Ft"]);
    assert!(read_archive(&mut tar.as_slice()).is_err());

    // Bigger archive: sampled cuts all fail.
    let rich = TempDb::create("fmt_rich_cuts").await;
    exec(&rich.name, RICH_SCHEMA).await;
    let big = pg_dump(&rich.name, &["-Fc", "-Z0"]);
    let step = (big.len() / 300).max(1);
    for cut in (0..big.len())
        .step_by(step)
        .chain(big.len() - 64..big.len())
    {
        let msg = read_archive(&mut &big[..cut]).unwrap_err().to_string();
        assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
    }
}
