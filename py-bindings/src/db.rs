//! The databases: one `backup_<kind>` function each, and the dispatch of restores and
//! level-3 verification on the manifest's datastore kind. Each function only builds
//! the database crate's config from its arguments and calls the crate.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backup_core::{
    BackupStore, ErrorKind, FormatRegistry, Manifest as CoreManifest, RestoreOptions, SecretString,
    SinkReport, VerifyReport,
};
use backup_neo4j::{Neo4jConfig, Neo4jSink, Neo4jSinkOptions, Neo4jSource};
use backup_postgres::{DumpOptions, PostgresConfig, PostgresSink, PostgresSource};
use backup_redis::{BackupMode, RedisConfig, RedisRestoreOptions, RedisSink, RedisSource};
use backup_timescale::{TimescaleRestoreOptions, TimescaleSink, TimescaleSource};
use pyo3::prelude::*;

use crate::errors::{raise, to_py, Secrets};
use crate::keys::RecipientsArg;
use crate::ops::Seal;
use crate::runtime::{block_on, CancellableSink};
use crate::store::StoreArg;
use crate::types::Manifest;
use tokio_util::sync::CancellationToken;

/// Where and how a restore or level-3 verification writes. Each kind reads the fields
/// that apply to it.
#[derive(Default)]
pub struct Target {
    /// The server or database URL.
    pub url: Option<String>,
    /// A password for it, when the URL has none.
    pub password: Option<SecretString>,
    /// PostgreSQL: create the target database.
    pub create_db: bool,
    /// Replace the contents of a non-empty target.
    pub replace: bool,
    /// PostgreSQL: only these schemas.
    pub schemas: Vec<String>,
    /// PostgreSQL: only these tables.
    pub tables: Vec<String>,
    /// PostgreSQL: do not restore ownership.
    pub no_owner: bool,
    /// PostgreSQL: role to restore as.
    pub role: Option<String>,
    /// TimescaleDB: accept a different extension version.
    pub allow_version_mismatch: bool,
    /// Redis: databases to restore (`SRC` or `SRC:DEST`).
    pub dbs: Vec<String>,
    /// Redis: key glob patterns.
    pub key_match: Vec<String>,
    /// Neo4j: the target (or scratch) database name.
    pub database: Option<String>,
    /// Redis: the ACL user; Neo4j: the user name.
    pub user: Option<String>,
    /// PostgreSQL/TimescaleDB: the directory of the client binaries.
    pub pg_bin_dir: Option<PathBuf>,
}

/// The database kinds these bindings can restore into.
pub const KINDS: [&str; 4] = ["postgres", "timescale", "redis", "neo4j"];

/// Registers the format reader of every database kind built in.
pub fn register_formats(reg: &mut FormatRegistry) {
    backup_postgres::register_formats(reg);
    backup_timescale::register_formats(reg);
    reg.register(std::sync::Arc::new(backup_redis::RdbFormat));
    for r in backup_neo4j::format_readers() {
        reg.register(r);
    }
}

/// Refuses manifests of kinds that have no database target (`command`, `bytes`...).
pub fn check_restorable_kind(py: Python<'_>, manifest: &CoreManifest, what: &str) -> PyResult<()> {
    let kind = manifest.datastore.kind.as_str();
    if KINDS.contains(&kind) {
        return Ok(());
    }
    Err(raise(
        py,
        ErrorKind::Config,
        &format!(
            "backup {} is of kind `{kind}`, which has no database target for {what}: use restore_to_file() or restore_bytes()",
            manifest.backup_id
        ),
        &Secrets::new(),
    ))
}

fn not_built(kind: &str) -> backup_core::Error {
    backup_core::Error::datastore(
        kind,
        ErrorKind::Config,
        format!("{kind} support is not built into these Python bindings yet"),
    )
}

fn url_of<'a>(target: &'a Target, kind: &str) -> backup_core::Result<&'a str> {
    target
        .url
        .as_deref()
        .ok_or_else(|| backup_core::Error::Config(format!("a {kind} URL is needed")))
}

fn postgres_config(
    url: &str,
    password: Option<SecretString>,
    pg_bin_dir: Option<PathBuf>,
) -> PostgresConfig {
    let mut config = PostgresConfig::from_url(url);
    config.password = password;
    config.pg_bin_dir = pg_bin_dir;
    config
}

fn redis_config(
    url: &str,
    user: Option<String>,
    password: Option<SecretString>,
) -> backup_core::Result<RedisConfig> {
    let mut config = RedisConfig::from_url(url).map_err(|e| e.at("(URL)"))?;
    if let Some(p) = password {
        config.password = Some(p);
    }
    if let Some(u) = user {
        config.username = Some(u);
    }
    Ok(config)
}

fn neo4j_config(
    url: &str,
    user: Option<String>,
    password: Option<SecretString>,
    database: Option<String>,
) -> Neo4jConfig {
    let mut config = Neo4jConfig::new(url);
    config.user = user;
    config.password = password;
    config.database = database;
    config.with_env_defaults()
}

/// Parses Redis `dbs` entries: `"3"` restores database 3 into 3, `"3:5"` into 5.
fn redis_dbs(entries: &[String]) -> backup_core::Result<(Vec<u32>, BTreeMap<u32, u32>)> {
    let mut dbs = Vec::new();
    let mut map = BTreeMap::new();
    for entry in entries {
        let bad =
            || backup_core::Error::Config(format!("Redis database `{entry}` is not N or SRC:DEST"));
        let (src, dest) = match entry.split_once(':') {
            Some((s, d)) => (
                s.trim().parse().map_err(|_| bad())?,
                Some(d.trim().parse().map_err(|_| bad())?),
            ),
            None => (entry.trim().parse().map_err(|_| bad())?, None),
        };
        dbs.push(src);
        if let Some(d) = dest {
            map.insert(src, d);
        }
    }
    Ok((dbs, map))
}

/// Restores `manifest` into the database `target` names.
/// `cancel` makes the sink's input fail (see [`CancellableSink`]).
pub async fn restore(
    store: &BackupStore,
    manifest: &CoreManifest,
    options: &RestoreOptions,
    target: &Target,
    cancel: &CancellationToken,
) -> backup_core::Result<SinkReport> {
    match manifest.datastore.kind.as_str() {
        "postgres" => {
            let config = postgres_config(
                url_of(target, "PostgreSQL")?,
                target.password.clone(),
                target.pg_bin_dir.clone(),
            );
            let mut sink = PostgresSink::new(
                &config,
                backup_postgres::RestoreTarget {
                    create_db: target.create_db,
                    replace: target.replace,
                    schemas: target.schemas.clone(),
                    tables: target.tables.clone(),
                    no_owner: target.no_owner,
                    role: target.role.clone(),
                    ..Default::default()
                },
            )?;
            let mut sink = CancellableSink::new(&mut sink, cancel.clone());
            backup_core::restore(store, manifest, "data", &mut sink, options).await
        }
        "timescale" => {
            let config = postgres_config(
                url_of(target, "TimescaleDB")?,
                target.password.clone(),
                target.pg_bin_dir.clone(),
            );
            if !target.schemas.is_empty() || !target.tables.is_empty() || target.role.is_some() {
                return Err(backup_core::Error::Config(
                    "TimescaleDB restores are whole-database: schemas, tables and role do not apply".into(),
                ));
            }
            let mut sink = TimescaleSink::new(
                &config,
                TimescaleRestoreOptions {
                    create_db: target.create_db,
                    replace: target.replace,
                    allow_version_mismatch: target.allow_version_mismatch,
                    no_owner: target.no_owner,
                    ..Default::default()
                },
            )?;
            let mut sink = CancellableSink::new(&mut sink, cancel.clone());
            backup_core::restore(store, manifest, "data", &mut sink, options).await
        }
        "redis" => {
            let config = redis_config(
                url_of(target, "Redis")?,
                target.user.clone(),
                target.password.clone(),
            )?;
            let (dbs, db_map) = redis_dbs(&target.dbs)?;
            let mut sink = RedisSink::new(
                config,
                RedisRestoreOptions {
                    replace: target.replace,
                    dbs,
                    db_map,
                    matches: target.key_match.clone(),
                    ..Default::default()
                },
            )?;
            let mut sink = CancellableSink::new(&mut sink, cancel.clone());
            backup_core::restore(store, manifest, "data", &mut sink, options).await
        }
        "neo4j" => {
            let config = neo4j_config(
                url_of(target, "Neo4j")?,
                target.user.clone(),
                target.password.clone(),
                target.database.clone(),
            );
            let mut sink = Neo4jSink::new(
                config,
                Neo4jSinkOptions {
                    replace: target.replace,
                    ..Default::default()
                },
            );
            let mut sink = CancellableSink::new(&mut sink, cancel.clone());
            backup_core::restore(store, manifest, "data", &mut sink, options).await
        }
        other => Err(not_built(other)),
    }
}

/// Level-3 verification: restore into a scratch database on the server `target.url`
/// names, compare its live contents with the manifest, and clean up.
///
/// Neo4j: with `target.database`, that (existing, empty) database is the scratch
/// database and keeps the restored graph; without, `dbseal-verify-<random>` is created
/// and dropped with `CREATE/DROP DATABASE` (Neo4j Enterprise only).
pub async fn verify_restore(
    store: &BackupStore,
    manifest: &CoreManifest,
    options: &RestoreOptions,
    target: &Target,
) -> backup_core::Result<VerifyReport> {
    match manifest.datastore.kind.as_str() {
        "postgres" => {
            let config = postgres_config(
                url_of(target, "PostgreSQL")?,
                target.password.clone(),
                target.pg_bin_dir.clone(),
            );
            backup_postgres::verify_restore(store, manifest, &config, options).await
        }
        "timescale" => {
            let config = postgres_config(
                url_of(target, "TimescaleDB")?,
                target.password.clone(),
                target.pg_bin_dir.clone(),
            );
            backup_timescale::verify_restore(store, manifest, &config, options).await
        }
        "redis" => {
            let config = redis_config(
                url_of(target, "Redis")?,
                target.user.clone(),
                target.password.clone(),
            )?;
            backup_redis::verify_restore(store, manifest, options, &config).await
        }
        "neo4j" => {
            let url = url_of(target, "Neo4j")?;
            if let Some(db) = &target.database {
                let config = neo4j_config(
                    url,
                    target.user.clone(),
                    target.password.clone(),
                    Some(db.clone()),
                );
                return backup_neo4j::verify_restore(store, manifest, options, &config).await;
            }
            let server = neo4j_config(url, target.user.clone(), target.password.clone(), None);
            let name = format!("dbseal-verify-{:08x}", rand_u32());
            backup_neo4j::create_database(&server, &name).await.map_err(|e| {
                backup_core::Error::datastore(
                    "neo4j",
                    e.kind(),
                    format!("{e}; a server without CREATE DATABASE (Community Edition, ArcadeDB) needs an empty scratch database created beforehand, passed as database=…"),
                )
            })?;
            let scratch = server.clone().database(name.clone());
            let result = backup_neo4j::verify_restore(store, manifest, options, &scratch).await;
            let dropped = backup_neo4j::drop_database(&server, &name).await;
            let report = result?;
            dropped?;
            Ok(report)
        }
        other => Err(not_built(other)),
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

fn run_db_backup<F>(py: Python<'_>, secrets: &Secrets, fut: F) -> PyResult<Manifest>
where
    F: std::future::Future<Output = backup_core::Result<CoreManifest>> + Send,
{
    let result = block_on(py, fut)?;
    result
        .map(Manifest::new)
        .map_err(|e| to_py(py, &e, secrets))
}

fn add_password(secrets: &mut Secrets, url: &str, password: &Option<String>) {
    secrets.add_url(url);
    if let Some(p) = password {
        secrets.add(p);
    }
}

/// Backs up one PostgreSQL database with `pg_dump -Fc` (kind `postgres`). The password
/// comes from the URL, `password=`, `PGPASSWORD` or a passfile, and reaches pg_dump
/// only through its environment. `schemas`/`tables` (and their `exclude_` forms,
/// `exclude_table_data`) take pg_dump patterns; `globals=True` also saves roles and
/// tablespaces (`pg_dumpall --globals-only`) as the attachment `globals`.
#[pyfunction]
#[pyo3(name = "backup_postgres", signature = (url, store, *, datastore, recipients=None, passphrase=None, zstd_level=3, labels=None, password=None, schemas=None, exclude_schemas=None, tables=None, exclude_tables=None, exclude_table_data=None, globals=false, pg_bin_dir=None))]
#[allow(clippy::too_many_arguments)]
pub fn py_backup_postgres(
    py: Python<'_>,
    url: String,
    store: StoreArg<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    zstd_level: i32,
    labels: Option<BTreeMap<String, String>>,
    password: Option<String>,
    schemas: Option<Vec<String>>,
    exclude_schemas: Option<Vec<String>>,
    tables: Option<Vec<String>>,
    exclude_tables: Option<Vec<String>>,
    exclude_table_data: Option<Vec<String>>,
    globals: bool,
    pg_bin_dir: Option<PathBuf>,
) -> PyResult<Manifest> {
    let (store, mut secrets) = store.open(py)?;
    add_password(&mut secrets, &url, &password);
    let options = Seal {
        datastore,
        recipients,
        passphrase,
        zstd_level,
        labels,
    }
    .options(py, &mut secrets)?;
    let config = postgres_config(&url, password.map(SecretString::new), pg_bin_dir);
    let dump = DumpOptions {
        schemas: schemas.unwrap_or_default(),
        exclude_schemas: exclude_schemas.unwrap_or_default(),
        tables: tables.unwrap_or_default(),
        exclude_tables: exclude_tables.unwrap_or_default(),
        exclude_table_data: exclude_table_data.unwrap_or_default(),
        globals,
    };
    let mut source = PostgresSource::new(&config, dump).map_err(|e| to_py(py, &e, &secrets))?;
    run_db_backup(py, &secrets, async move {
        backup_postgres::backup(&store, &mut source, options).await
    })
}

/// Backs up a TimescaleDB database (kind `timescale`): the PostgreSQL backup plus the
/// extension version, hypertables, chunks, continuous aggregates and jobs in the
/// manifest; restored with `CREATE EXTENSION … VERSION`, `timescaledb_pre_restore()` and
/// `timescaledb_post_restore()`.
#[pyfunction]
#[pyo3(name = "backup_timescale", signature = (url, store, *, datastore, recipients=None, passphrase=None, zstd_level=3, labels=None, password=None, schemas=None, exclude_schemas=None, tables=None, exclude_tables=None, exclude_table_data=None, globals=false, pg_bin_dir=None))]
#[allow(clippy::too_many_arguments)]
pub fn py_backup_timescale(
    py: Python<'_>,
    url: String,
    store: StoreArg<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    zstd_level: i32,
    labels: Option<BTreeMap<String, String>>,
    password: Option<String>,
    schemas: Option<Vec<String>>,
    exclude_schemas: Option<Vec<String>>,
    tables: Option<Vec<String>>,
    exclude_tables: Option<Vec<String>>,
    exclude_table_data: Option<Vec<String>>,
    globals: bool,
    pg_bin_dir: Option<PathBuf>,
) -> PyResult<Manifest> {
    let (store, mut secrets) = store.open(py)?;
    add_password(&mut secrets, &url, &password);
    let options = Seal {
        datastore,
        recipients,
        passphrase,
        zstd_level,
        labels,
    }
    .options(py, &mut secrets)?;
    let config = postgres_config(&url, password.map(SecretString::new), pg_bin_dir);
    let dump = DumpOptions {
        schemas: schemas.unwrap_or_default(),
        exclude_schemas: exclude_schemas.unwrap_or_default(),
        tables: tables.unwrap_or_default(),
        exclude_tables: exclude_tables.unwrap_or_default(),
        exclude_table_data: exclude_table_data.unwrap_or_default(),
        globals,
    };
    let mut source = TimescaleSource::new(&config, dump).map_err(|e| to_py(py, &e, &secrets))?;
    run_db_backup(py, &secrets, async move {
        backup_timescale::backup(&store, &mut source, options).await
    })
}

/// Backs up a whole Redis server (every database) as its RDB snapshot, fetched over the
/// replication protocol (kind `redis`). `mode="scan"` builds the RDB from `SCAN` +
/// `DUMP` where replication is refused (managed services; not point-in-time).
#[pyfunction]
#[pyo3(name = "backup_redis", signature = (url, store, *, datastore, recipients=None, passphrase=None, zstd_level=3, labels=None, password=None, username=None, mode="replication"))]
#[allow(clippy::too_many_arguments)]
pub fn py_backup_redis(
    py: Python<'_>,
    url: String,
    store: StoreArg<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    zstd_level: i32,
    labels: Option<BTreeMap<String, String>>,
    password: Option<String>,
    username: Option<String>,
    mode: &str,
) -> PyResult<Manifest> {
    let (store, mut secrets) = store.open(py)?;
    add_password(&mut secrets, &url, &password);
    let options = Seal {
        datastore,
        recipients,
        passphrase,
        zstd_level,
        labels,
    }
    .options(py, &mut secrets)?;
    let mode: BackupMode = mode
        .parse()
        .map_err(|e: backup_redis::RedisError| to_py(py, &e.at("(mode)"), &secrets))?;
    let config = redis_config(&url, username, password.map(SecretString::new))
        .map_err(|e| to_py(py, &e, &secrets))?;
    let mut source = RedisSource::new(config, mode).map_err(|e| to_py(py, &e, &secrets))?;
    run_db_backup(py, &secrets, async move {
        backup_core::backup(&store, &mut source, options).await
    })
}

/// Backs up a Neo4j graph over Bolt into the dbseal graph stream (kind `neo4j`):
/// schema, nodes, relationships and every property type. `user`/`password`/`database`
/// default to `NEO4J_USERNAME`/`NEO4J_PASSWORD`/`NEO4J_DATABASE`.
#[pyfunction]
#[pyo3(name = "backup_neo4j", signature = (url, store, *, datastore, recipients=None, passphrase=None, zstd_level=3, labels=None, user=None, password=None, database=None))]
#[allow(clippy::too_many_arguments)]
pub fn py_backup_neo4j(
    py: Python<'_>,
    url: String,
    store: StoreArg<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    zstd_level: i32,
    labels: Option<BTreeMap<String, String>>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
) -> PyResult<Manifest> {
    let (store, mut secrets) = store.open(py)?;
    add_password(&mut secrets, &url, &password);
    if let Ok(p) = std::env::var("NEO4J_PASSWORD") {
        secrets.add(&p);
    }
    let options = Seal {
        datastore,
        recipients,
        passphrase,
        zstd_level,
        labels,
    }
    .options(py, &mut secrets)?;
    let config = neo4j_config(&url, user, password.map(SecretString::new), database);
    let mut source = Neo4jSource::new(config);
    run_db_backup(py, &secrets, async move {
        backup_core::backup(&store, &mut source, options).await
    })
}
