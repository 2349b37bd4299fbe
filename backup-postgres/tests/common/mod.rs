//! Helpers for the PostgreSQL integration tests: the real server started by
//! `scripts/services.sh` (via `scripts/test.sh`), unique databases dropped on drop,
//! and content fingerprints of a whole database.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use backup_core::{BackupStore, KeyPair, Manifest, RestoreOptions, SecretString, SinkReport};
use backup_postgres::{PostgresConfig, PostgresSink, RestoreTarget};

/// The test server's URL (no password) and password.
pub fn server() -> (String, String) {
    let url = std::env::var("DBSEAL_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("DBSEAL_TEST_PG_URL is not set: run the tests through scripts/test.sh (it starts PostgreSQL 15 with scripts/services.sh)")
    });
    let pw = std::env::var("DBSEAL_TEST_PG_PASSWORD").unwrap_or_else(|_| {
        panic!("DBSEAL_TEST_PG_PASSWORD is not set: run the tests through scripts/test.sh")
    });
    (url, pw)
}

/// A config for `database` on the test server, password given apart.
pub fn config(database: &str) -> PostgresConfig {
    let (url, pw) = server();
    let mut c = PostgresConfig::from_url(url);
    c.database = Some(database.to_string());
    c.password = Some(SecretString::new(pw));
    c
}

/// Host and port of the test server.
pub fn host_port() -> (String, u16) {
    let (url, _) = server();
    let u = url::Url::parse(&url).unwrap();
    (u.host_str().unwrap().to_string(), u.port().unwrap_or(5432))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique database name with the given prefix.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs SQL on `database`.
pub async fn exec(database: &str, sql: &str) {
    let client = connect(database).await;
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("SQL on {database} failed: {e:?}\n{sql}"));
}

/// A client on `database`.
pub async fn connect(database: &str) -> tokio_postgres::Client {
    config(database).resolve().unwrap().connect().await.unwrap()
}

/// Whether `database` exists.
pub async fn db_exists(database: &str) -> bool {
    let c = connect("postgres").await;
    c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .unwrap()
        .is_some()
}

/// A database that exists for the guard's lifetime (dropped with FORCE on drop).
pub struct TempDb {
    pub name: String,
}

impl TempDb {
    /// Creates an empty database.
    pub async fn create(prefix: &str) -> TempDb {
        let name = unique_name(prefix);
        exec(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" TEMPLATE template0"),
        )
        .await;
        TempDb { name }
    }

    /// A name only: the database is not created (a restore creates it), but dropped
    /// on drop if it exists.
    pub fn named(prefix: &str) -> TempDb {
        TempDb {
            name: unique_name(prefix),
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop synchronously on a private runtime: the test's runtime may be gone.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(c) = config("postgres").resolve().unwrap().connect().await {
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Restores `manifest` with `--create-db` into a new database named after `prefix`.
pub async fn restore_into_new_db(
    store: &BackupStore,
    manifest: &Manifest,
    opts: &RestoreOptions,
    prefix: &str,
) -> (TempDb, SinkReport) {
    let dst = TempDb::named(prefix);
    let target = RestoreTarget {
        create_db: true,
        ..Default::default()
    };
    let mut sink = PostgresSink::new(&config(&dst.name), target).unwrap();
    let report = backup_core::restore(store, manifest, "data", &mut sink, opts)
        .await
        .unwrap();
    (dst, report)
}

/// A store in a temporary directory and a key pair.
pub fn store() -> (tempfile::TempDir, BackupStore, KeyPair) {
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(dir.path().to_str().unwrap(), &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    (dir, store, KeyPair::generate())
}

/// Every user table's row count (`schema.table` → rows), counted `FROM ONLY`.
pub async fn live_counts(database: &str) -> BTreeMap<String, u64> {
    let c = connect(database).await;
    let rows = c
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for r in rows {
        let (n, t): (String, String) = (r.get(0), r.get(1));
        let q = format!(
            "SELECT count(*) FROM ONLY \"{}\".\"{}\"",
            n.replace('"', "\"\""),
            t.replace('"', "\"\"")
        );
        let cnt: i64 = c.query_one(&q, &[]).await.unwrap().get(0);
        out.insert(format!("{n}.{t}"), cnt as u64);
    }
    out
}

/// A fingerprint of everything a restore must preserve: the sorted contents of every
/// table and materialized view (md5 of their text form), sequence states, large
/// objects, and the definitions of views, functions, triggers, indexes, constraints,
/// types, comments and extensions.
pub async fn fingerprint(database: &str) -> BTreeMap<String, String> {
    let c = connect(database).await;
    let mut out = BTreeMap::new();
    let rels = c
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .await
        .unwrap();
    for r in rels {
        let (n, t, k): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let sql = if k == "S" {
            format!(
                "SELECT last_value::text || '/' || is_called::text FROM {}.{}",
                q(&n),
                q(&t)
            )
        } else {
            format!(
                "SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') FROM ONLY {}.{} x",
                q(&n),
                q(&t)
            )
        };
        let v: String = c.query_one(&sql, &[]).await.unwrap().get(0);
        out.insert(format!("{k} {n}.{t}"), v);
    }
    let catalog: &[(&str, &str)] = &[
        ("views", "SELECT string_agg(schemaname || '.' || viewname || '=' || definition, E'\\n' ORDER BY schemaname, viewname) FROM pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"),
        ("matviews", "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT schemaname || '.' || matviewname || '=' || definition AS x FROM pg_matviews) s"),
        ("functions", "SELECT string_agg(pg_get_functiondef(p.oid), E'\\n' ORDER BY p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"),
        ("triggers", "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT pg_get_triggerdef(t.oid) AS x FROM pg_trigger t WHERE NOT t.tgisinternal) s"),
        ("indexes", "SELECT string_agg(indexdef, E'\\n' ORDER BY indexdef) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"),
        ("constraints", "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS x FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)) s"),
        ("types", "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT t.typnamespace::regnamespace::text || '.' || t.typname || ' ' || t.typtype::text AS x FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid WHERE t.typnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND c.relkind = 'c'))) s"),
        ("enums", "SELECT string_agg(enumtypid::regtype::text || '=' || enumlabel, ',' ORDER BY enumtypid::regtype::text, enumsortorder) FROM pg_enum"),
        ("comments", "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT coalesce(c.relname, '') || ':' || d.objsubid || '=' || d.description AS x FROM pg_description d LEFT JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass WHERE d.objoid >= 16384) s"),
        ("extensions", "SELECT string_agg(extname || ' ' || extversion, ',' ORDER BY extname) FROM pg_extension"),
        ("large_objects", "SELECT count(*)::text || ':' || coalesce(string_agg(oid::text || '=' || md5(lo_get(oid)), ',' ORDER BY oid), '') FROM pg_largeobject_metadata"),
        ("schemas", "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema'"),
    ];
    for (name, sql) in catalog {
        let v: Option<String> = c.query_one(*sql, &[]).await.unwrap().get(0);
        out.insert(format!("catalog {name}"), v.unwrap_or_default());
    }
    out
}

/// The rich schema: every kind of object a real application has.
pub const RICH_SCHEMA: &str = r#"
CREATE EXTENSION hstore;
CREATE EXTENSION pg_trgm;
CREATE SCHEMA app;
CREATE SCHEMA "Mixed Case Schema";
CREATE SCHEMA "données";
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.posint AS integer CHECK (VALUE > 0);
CREATE TYPE app.address AS (street text, zip text);
CREATE SEQUENCE app.counter START 100;
SELECT setval('app.counter', 4242);
CREATE TABLE app.customers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE,
  mood app.mood,
  age app.posint,
  addr app.address,
  tags text[],
  scores int[],
  attrs hstore,
  doc json,
  docb jsonb,
  photo bytea,
  balance numeric(20, 6),
  big numeric,
  created timestamptz,
  uid uuid,
  note text
);
COMMENT ON TABLE app.customers IS 'Customers — with ünïcode';
COMMENT ON COLUMN app.customers.email IS 'primary contact';
INSERT INTO app.customers (name, email, mood, age, addr, tags, scores, attrs, doc, docb, photo, balance, big, created, uid, note)
SELECT 'customer ' || g,
       'c' || g || '@example.com',
       (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::app.mood,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 1 + g % 90 END,
       ROW('street ' || g, lpad((g % 100000)::text, 5, '0'))::app.address,
       ARRAY['t' || g % 5, 'x"y', NULL],
       ARRAY[g, -g, 0],
       hstore('k' || g % 3, 'v' || g),
       json_build_object('g', g, 'nested', json_build_array(1, 'two', NULL)),
       jsonb_build_object('g', g, 'text', E'line\nbreak'),
       decode(md5(g::text), 'hex'),
       g * 1.000001,
       power(10::numeric, 40) + g,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes',
       md5(g::text)::uuid,
       CASE g % 6
         WHEN 0 THEN NULL
         WHEN 1 THEN E'tab\there'
         WHEN 2 THEN E'new\nline and \r carriage'
         WHEN 3 THEN E'back\\slash \\N \\. not the end'
         WHEN 4 THEN 'Ünïcödé 日本語 🎉'
         ELSE ''
       END
FROM generate_series(1, 20000) g;
UPDATE app.customers SET photo = (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea) FROM generate_series(0, 255) b) WHERE id = 1;
CREATE TABLE app.orders (
  id serial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES app.customers (id),
  amount numeric(12, 2) CHECK (amount >= 0),
  placed date
);
CREATE INDEX orders_customer ON app.orders (customer_id);
INSERT INTO app.orders (customer_id, amount, placed)
SELECT 1 + g % 20000, (g % 1000) / 3.0, date '2024-01-01' + g % 365 FROM generate_series(1, 30000) g;
CREATE INDEX customers_name_trgm ON app.customers USING gin (name gin_trgm_ops);
CREATE TABLE app.events (id bigint, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO app.events SELECT g, date '2024-01-01' + g % 700, jsonb_build_object('n', g) FROM generate_series(1, 5000) g;
CREATE TABLE app.single (t text);
INSERT INTO app.single VALUES (''), (NULL), ('\.'), (E'\\.'), ('.');
CREATE TABLE app.empty (id int);
CREATE TABLE "Mixed Case Schema"."Table With Spaces" ("Column ""quoted""" text, "ñ" int);
INSERT INTO "Mixed Case Schema"."Table With Spaces" SELECT 'v' || g, g FROM generate_series(1, 10) g;
CREATE TABLE "données"."clients_été" (id int PRIMARY KEY, nom text);
INSERT INTO "données"."clients_été" VALUES (1, 'Zoë'), (2, 'Ågot');
CREATE VIEW app.big_customers AS SELECT id, name FROM app.customers WHERE balance > 100;
CREATE MATERIALIZED VIEW app.mood_counts AS SELECT mood, count(*) AS n FROM app.customers GROUP BY mood;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.note := coalesce(NEW.note, '') || ' (touched)';
  RETURN NEW;
END
$$;
CREATE TRIGGER customers_touch BEFORE UPDATE ON app.customers FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE FUNCTION app.add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
SELECT lo_from_bytea(0, '\x00010203ff'::bytea);
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 20000), 'UTF8'));
"#;
