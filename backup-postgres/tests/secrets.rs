//! The password appears in no argv (`/proc/*/cmdline` scanned while pg_dump,
//! pg_dumpall, pg_restore and psql run), no log line, no manifest, no Debug output and
//! no error message — even when it is given inside the URL.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use backup_core::{BackupOptions, RestoreOptions};
use backup_postgres::{DumpOptions, PostgresConfig, PostgresSink, PostgresSource, RestoreTarget};
use common::*;

/// A `MakeWriter` collecting every log line.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Scans every process's command line until stopped: (tool command lines seen, any
/// command line containing the secret).
fn scan_cmdlines(
    secret: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<String>, Vec<String>)> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut leaks = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok(dir) = std::fs::read_dir("/proc") else {
                break;
            };
            for entry in dir.flatten() {
                let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                if line.contains(&secret) {
                    leaks.push(line.clone());
                }
                for tool in ["pg_dump ", "pg_dumpall ", "pg_restore ", "psql "] {
                    if line.contains(&format!("/{tool}")) && !seen.contains(&line) {
                        seen.push(line.clone());
                    }
                }
            }
        }
        (seen, leaks)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_in_no_argv_log_manifest_debug_or_error() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let (url, pw) = server();
    let src = TempDb::create("secret_src").await;
    // Enough rows that pg_dump runs for a while.
    exec(&src.name, "CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) g; CREATE TABLE u (x int); INSERT INTO u VALUES (1)").await;
    // The password inside the URL: the worst case.
    let with_pw = url.replacen("postgres@", &format!("postgres:{pw}@"), 1);
    assert!(with_pw.contains(&pw));
    let mut cfg = PostgresConfig::from_url(with_pw.clone());
    cfg.database = Some(src.name.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let scanner = scan_cmdlines(pw.clone(), stop.clone());
    let (_dir, store, keys) = store();
    let mut source = PostgresSource::new(
        &cfg,
        DumpOptions {
            globals: true,
            ..Default::default()
        },
    )
    .unwrap();
    let manifest = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("secret", keys.encryption()),
    )
    .await
    .unwrap();
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    // pg_restore (whole restore) and pg_restore | psql (selective restore).
    let mut server_cfg = PostgresConfig::from_url(with_pw.clone());
    server_cfg.database = Some("postgres".into());
    backup_postgres::verify_restore(&store, &manifest, &server_cfg, &opts)
        .await
        .unwrap();
    let dst = TempDb::named("secret_dst");
    let mut dst_cfg = PostgresConfig::from_url(with_pw.clone());
    dst_cfg.database = Some(dst.name.clone());
    let mut sink = PostgresSink::new(
        &dst_cfg,
        RestoreTarget {
            create_db: true,
            tables: vec!["t".into()],
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .unwrap();
    assert_eq!(live_counts(&dst.name).await["public.t"], 300000);
    stop.store(true, Ordering::Relaxed);
    let (seen, leaks) = scanner.join().unwrap();

    assert!(leaks.is_empty(), "the password appeared in argv: {leaks:?}");
    for tool in ["pg_dump ", "pg_restore ", "psql "] {
        assert!(
            seen.iter().any(|l| l.contains(tool)),
            "the scan never saw {tool}: {seen:?}"
        );
    }
    let manifest_json = String::from_utf8(manifest.to_json()).unwrap();
    assert!(!manifest_json.contains(&pw), "{manifest_json}");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("running pg_dump"),
        "logging was not captured: {logged}"
    );
    assert!(!logged.contains(&pw), "the password appeared in the logs");
    for dbg in [
        format!("{cfg:?}"),
        format!("{source:?}"),
        format!("{sink:?}"),
        format!("{:?}", cfg.resolve().unwrap()),
    ] {
        assert!(!dbg.contains(&pw), "{dbg}");
    }

    // Errors: a wrong password inside the URL is not echoed back.
    let wrong = url.replacen("postgres@", "postgres:Wr0ng-Secret-99@", 1);
    let mut bad = PostgresConfig::from_url(wrong);
    bad.database = Some(src.name.clone());
    let mut source = PostgresSource::new(&bad, DumpOptions::default()).unwrap();
    let err = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("secret", keys.encryption()),
    )
    .await
    .unwrap_err();
    assert!(
        !format!("{err} {err:?}").contains("Wr0ng-Secret-99"),
        "{err:?}"
    );
    assert!(!String::from_utf8(logs.0.lock().unwrap().clone())
        .unwrap()
        .contains("Wr0ng-Secret-99"));
}
