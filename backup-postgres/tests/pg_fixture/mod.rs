//! The PostgreSQL fixture of the driver conformance suite
//! (`backup_core::conformance::driver`), shared by backup-postgres and backup-timescale
//! (which includes this file with `#[path]`): databases on the real server
//! `scripts/services.sh` starts (DBSEAL_TEST_PG_URL / DBSEAL_TEST_PG_PASSWORD), filled
//! and fingerprinted with `psql`, PostgreSQL's own client.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use backup_core::conformance::driver::{DriverFixture, Seeded};
use backup_core::{DriverOptions, RestoreTarget, SecretString};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh (or `scripts/services.sh start DIR postgres` and source DIR/env.sh)")
    })
}

/// The server URL with `database` as its path (no password).
fn url_of(database: &str) -> String {
    let url = env("DBSEAL_TEST_PG_URL");
    let (scheme, rest) = url.split_once("://").expect("DBSEAL_TEST_PG_URL is a URL");
    let server = rest.split_once('/').map_or(rest, |(server, _)| server);
    format!("{scheme}://{server}/{database}")
}

fn password() -> String {
    env("DBSEAL_TEST_PG_PASSWORD")
}

/// The connection settings of `database` on the test server, password included.
pub fn config(database: &str) -> backup_postgres::PostgresConfig {
    let mut c = backup_postgres::PostgresConfig::from_url(url_of(database));
    c.password = Some(password().into());
    c
}

/// psql of the test server's binaries, else of PATH.
fn psql_binary() -> std::path::PathBuf {
    match std::env::var("DBSEAL_TEST_PG_BIN") {
        Ok(dir) if !dir.is_empty() => std::path::Path::new(&dir).join("psql"),
        _ => "psql".into(),
    }
}

/// Whether the server can run TimescaleDB (its control file installed, and preloaded);
/// says so on stderr when not. No package registry ships TimescaleDB: the tests that
/// need it skip where it is not built from source (`scripts/services.sh` preloads it
/// when it is installed).
pub fn timescale_available() -> bool {
    let available = psql(
        "postgres",
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb';",
    );
    let preload = psql("postgres", "SHOW shared_preload_libraries;");
    if available.trim() != "1" || !preload.contains("timescaledb") {
        eprintln!(
            "SKIPPED: TimescaleDB is not installed on this machine (no timescaledb.control; no package registry ships it; build it from source and scripts/services.sh preloads it)"
        );
        return false;
    }
    true
}

/// Runs `sql` (read from standard input) with psql on `database`; returns the
/// unaligned, tuples-only output. The password goes through the environment.
pub fn psql(database: &str, sql: &str) -> String {
    String::from_utf8(psql_raw(database, sql)).expect("psql output is UTF-8")
}

/// [`psql`]'s output as bytes (for `COPY … TO STDOUT (FORMAT binary)`).
pub fn psql_raw(database: &str, sql: &str) -> Vec<u8> {
    let mut child = Command::new(psql_binary())
        .arg(url_of(database))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .env("PGPASSWORD", password())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql must be installed (postgresql-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "psql on {database} failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fills databases on the test server, fingerprints them with psql, drops them after.
pub struct PgFixture {
    prefix: &'static str,
    /// Extra SQL after the common tables, given the variant (TimescaleDB: the extension
    /// and a hypertable).
    extra_seed: fn(u32) -> String,
    /// Schemas left out of the fingerprint (TimescaleDB's internal ones; their
    /// contents are seen through the hypertables).
    internal_schemas: &'static [&'static str],
    /// Extra `SELECT`s whose output is part of the fingerprint.
    extra_fingerprint: &'static str,
    password_file: tempfile::NamedTempFile,
    created: Mutex<Vec<String>>,
}

impl PgFixture {
    /// The plain PostgreSQL fixture.
    pub fn postgres() -> Self {
        Self::new("conf_pg", |_| String::new(), &[], "")
    }

    /// A fixture whose seed adds `extra_seed(variant)`.
    pub fn new(
        prefix: &'static str,
        extra_seed: fn(u32) -> String,
        internal_schemas: &'static [&'static str],
        extra_fingerprint: &'static str,
    ) -> Self {
        let mut password_file = tempfile::NamedTempFile::new().unwrap();
        writeln!(password_file, "{}", password()).unwrap();
        PgFixture {
            prefix,
            extra_seed,
            internal_schemas,
            extra_fingerprint,
            password_file,
            created: Mutex::new(Vec::new()),
        }
    }

    /// Creates an empty database with a unique name.
    fn create_database(&self) -> String {
        let name = format!(
            "{}_{}_{}",
            self.prefix,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" TEMPLATE template0;"),
        );
        self.created.lock().unwrap().push(name.clone());
        name
    }

    fn target(&self, database: &str) -> RestoreTarget {
        RestoreTarget {
            url: Some(url_of(database)),
            password: Some(SecretString::new(password())),
            ..Default::default()
        }
    }

    fn database_of(target: &RestoreTarget) -> String {
        let url = target.url.as_deref().expect("a target URL");
        url.rsplit_once('/')
            .expect("a database in the URL")
            .1
            .to_string()
    }
}

/// Tables, an index, a view, a foreign key, JSON and text that compresses about in
/// half (md5 hex), ~3 MB of plaintext; `variant` changes every row.
fn seed_sql(variant: u32) -> String {
    format!(
        "CREATE TABLE accounts(id int PRIMARY KEY, name text NOT NULL, balance numeric(12,2), note text);
         INSERT INTO accounts
           SELECT g, 'account ' || g || ' of set {variant}', (g * 1.37 + {variant})::numeric(12,2),
                  md5((g + {variant} * 1000003)::text) || md5(g::text || 'x{variant}')
           FROM generate_series(1, 30000) g;
         CREATE TABLE events(id bigserial PRIMARY KEY, account int NOT NULL REFERENCES accounts(id),
                             at timestamptz NOT NULL, payload jsonb, note text);
         INSERT INTO events(account, at, payload, note)
           SELECT 1 + g % 30000, timestamptz '2026-01-01' + g * interval '1 minute',
                  jsonb_build_object('k', g, 'set', {variant}, 'h', md5(g::text)),
                  CASE WHEN g % 7 = 0 THEN E'tab\\there, quote '' and newline\\n' END
           FROM generate_series(1, 20000) g;
         CREATE INDEX events_by_account ON events(account, at);
         CREATE VIEW rich AS SELECT id, name FROM accounts WHERE balance > 1000;
         CREATE SCHEMA side;
         CREATE TABLE side.empty_table(x int);"
    )
}

#[async_trait::async_trait]
impl DriverFixture for PgFixture {
    async fn seed(&self, variant: u32) -> Seeded {
        let db = self.create_database();
        psql(&db, &(seed_sql(variant) + &(self.extra_seed)(variant)));
        let mut options = DriverOptions::new();
        options.set("url", url_of(&db));
        options.set(
            "password-file",
            self.password_file.path().to_string_lossy().to_string(),
        );
        Seeded {
            options,
            target: self.target(&db),
        }
    }

    async fn fresh_target(&self) -> RestoreTarget {
        let db = self.create_database();
        self.target(&db)
    }

    /// Extensions; every user table's columns, row count and an md5 of its rows in
    /// text form, sorted; index and view definitions; the extra selects.
    async fn fingerprint(&self, target: &RestoreTarget) -> String {
        let db = Self::database_of(target);
        let mut excluded = vec!["pg_catalog", "information_schema", "pg_toast"];
        excluded.extend(self.internal_schemas);
        let excluded = excluded
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let tables = psql(
            &db,
            &format!(
                "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
                 WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ({excluded})
                 ORDER BY 1;"
            ),
        );
        let mut sql = format!(
            "SELECT 'extension ' || extname FROM pg_extension ORDER BY 1;
             SELECT format('column %s.%s.%s %s %s', table_schema, table_name, column_name, data_type, is_nullable)
               FROM information_schema.columns WHERE table_schema NOT IN ({excluded})
               ORDER BY table_schema, table_name, ordinal_position;
             SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname NOT IN ({excluded}) ORDER BY 1;
             SELECT format('view %s.%s %s', schemaname, viewname, definition) FROM pg_views
               WHERE schemaname NOT IN ({excluded}) ORDER BY 1;
             SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint
               WHERE connamespace::regnamespace::text NOT IN ({excluded}) ORDER BY 1;\n"
        );
        for table in tables.lines().filter(|l| !l.is_empty()) {
            sql.push_str(&format!(
                "SELECT '{}', count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {table} t;\n",
                table.replace('\'', "''")
            ));
        }
        sql.push_str(self.extra_fingerprint);
        psql(&db, &sql)
    }

    async fn verify_url(&self) -> Option<String> {
        // The driver makes and drops its own scratch database on this server.
        let url = url_of("postgres");
        let (scheme, rest) = url.split_once("://").unwrap();
        let (user, server) = rest.split_once('@').expect("a user in DBSEAL_TEST_PG_URL");
        Some(format!("{scheme}://{user}:{}@{server}", password()))
    }

    async fn cleanup(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.created.lock().unwrap());
        for name in names {
            psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE);"),
            );
        }
    }
}
