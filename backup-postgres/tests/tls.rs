//! TLS: a private PostgreSQL 15 that accepts only TLS connections (`hostssl`, with a
//! test CA made by openssl). dbseal's own session and pg_dump/pg_restore follow
//! `sslmode`: `require` encrypts, `verify-full` checks the certificate against
//! `sslrootcert`, a wrong CA and `disable` are clear connection errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use backup_core::{BackupOptions, ErrorKind, RestoreOptions};
use backup_postgres::{DumpOptions, PostgresConfig, PostgresSink, PostgresSource, RestoreTarget};

fn pg_bin(name: &str) -> PathBuf {
    let dir = std::env::var("DBSEAL_TEST_PG_BIN").unwrap_or_else(|_| {
        panic!("DBSEAL_TEST_PG_BIN is not set: run the tests through scripts/test.sh")
    });
    Path::new(&dir).join(name)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private TLS-only cluster, stopped on drop even when the test fails.
struct TlsServer {
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

const PASSWORD: &str = "tls-test-password";

fn start_tls_server() -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d));
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=dbseal test CA",
    ]);
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "other.key",
        "-out",
        "other.crt",
        "-days",
        "2",
        "-subj",
        "/CN=another CA",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    run(Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(d));
    run(Command::new("chmod").arg("600").arg(d.join("server.key")));
    let as_pg = |bin: &str| {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(bin));
        c
    };
    run(as_pg("initdb").arg("-D").arg(d.join("data")).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-locale",
    ]));
    std::fs::write(
        d.join("data/pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    let port = 26100 + (std::process::id() % 800) as u16;
    let server = TlsServer { dir, port };
    let d = server.dir.path();
    run(as_pg("pg_ctl")
        .arg("-D")
        .arg(d.join("data"))
        .arg("-l")
        .arg(d.join("server.log"))
        .arg("-o")
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c fsync=off",
            d.display(),
            d.join("server.crt").display(),
            d.join("server.key").display()
        ))
        .args(["-w", "start"]));
    for (db, sql) in [
        (
            "postgres",
            format!("ALTER USER postgres PASSWORD '{PASSWORD}'"),
        ),
        ("postgres", "CREATE DATABASE app".to_string()),
        (
            "app",
            "CREATE TABLE t AS SELECT g FROM generate_series(1, 1234) g".to_string(),
        ),
    ] {
        run(as_pg("psql").arg("-h").arg(d).args([
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-qc",
            &sql,
        ]));
    }
    server
}

fn cfg(server: &TlsServer, db: &str, query: &str) -> PostgresConfig {
    let mut c = PostgresConfig::from_url(format!(
        "postgres://postgres@127.0.0.1:{}/{db}?{query}",
        server.port
    ));
    c.password = Some(PASSWORD.into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_server_with_require_and_verify_full() {
    let server = start_tls_server();
    let ca = server.dir.path().join("ca.crt");
    let other = server.dir.path().join("other.crt");
    let (_dir, store, keys) = common::store();

    for query in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
    ] {
        let mut source =
            PostgresSource::new(&cfg(&server, "app", &query), DumpOptions::default()).unwrap();
        let manifest = backup_postgres::backup(
            &store,
            &mut source,
            BackupOptions::new("tls", keys.encryption()),
        )
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(
            manifest.contents.counts["tables"]["public.t"], 1234,
            "{query}"
        );
        // Restore over TLS too (pg_restore gets the same sslmode).
        let opts = RestoreOptions {
            decryption: Some(keys.decryption().into()),
            ..Default::default()
        };
        let target = format!(
            "copy_{}",
            manifest
                .backup_id
                .to_string()
                .to_lowercase()
                .replace('-', "_")
        );
        let mut sink = PostgresSink::new(
            &cfg(&server, &target, &query),
            RestoreTarget {
                create_db: true,
                ..Default::default()
            },
        )
        .unwrap();
        backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
    }

    // A certificate from another CA: refused before any dump.
    let query = format!("sslmode=verify-full&sslrootcert={}", other.display());
    let mut source =
        PostgresSource::new(&cfg(&server, "app", &query), DumpOptions::default()).unwrap();
    let err = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("tls", keys.encryption()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // No TLS: the server's pg_hba refuses.
    let mut source = PostgresSource::new(
        &cfg(&server, "app", "sslmode=disable"),
        DumpOptions::default(),
    )
    .unwrap();
    let err = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("tls", keys.encryption()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("no encryption"), "{err}");
    assert_eq!(
        store.list(None).await.unwrap().len(),
        3,
        "only the three good backups exist"
    );
}

/// A Unix-socket host (the Debian default, /var/run/postgresql) never uses TLS, as
/// libpq: dbseal's own session connected with the default sslmode (prefer) and with
/// require failed with "invalid dns name" before this was handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_connects_without_tls_whatever_the_sslmode() {
    let dir = std::env::var("DBSEAL_TEST_PG_SOCKET_DIR")
        .expect("DBSEAL_TEST_PG_SOCKET_DIR is set by scripts/services.sh");
    let (_, port) = common::host_port();
    for sslmode in [None, Some("prefer"), Some("require")] {
        let c = PostgresConfig {
            host: Some(dir.clone()),
            port: Some(port),
            user: Some("postgres".into()),
            database: Some("postgres".into()),
            sslmode: sslmode.map(str::to_string),
            ..Default::default()
        };
        let client = c
            .resolve()
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("sslmode {sslmode:?} over {dir}: {e}"));
        let ssl: bool = client
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!ssl);
    }
}
