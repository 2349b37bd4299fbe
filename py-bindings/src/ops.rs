//! The database-independent operations: backups of commands, bytes and files;
//! verification; restores into files and bytes; and the dispatch of database restores.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{
    BackupOptions, BackupStore, BlockingReaderSource, CommandSource, ErrorKind, FormatReader,
    FormatRegistry, Manifest as CoreManifest, ReaderSource, RestoreOptions, SecretString, Source,
    WriterSink,
};
use pyo3::prelude::*;

use crate::db;
use crate::errors::{config_error, raise, to_py, Secrets};
use crate::keys::{decryption, encryption, IdentitiesArg, RecipientsArg};
use crate::runtime::{block_on, block_on_cancellable, CancellableSink, UNDO_GRACE};
use crate::store::{parse_id, StoreArg};
use crate::types::{Manifest, RestoreReport, VerifyReport};
use tokio_util::sync::CancellationToken;

/// Every format reader these bindings know.
pub fn formats() -> FormatRegistry {
    let mut reg = FormatRegistry::new();
    db::register_formats(&mut reg);
    reg
}

/// The reader of a `format=` argument.
fn format_reader(py: Python<'_>, format: &str) -> PyResult<Arc<dyn FormatReader>> {
    formats().get(format).ok_or_else(|| {
        config_error(
            py,
            format!("unknown stream format `{format}`: use raw or a format a database module reads (pgdump, rdb, graph...)"),
        )
    })
}

/// The arguments every backup takes besides its source.
pub struct Seal<'py> {
    /// The datastore name.
    pub datastore: String,
    /// Recipients.
    pub recipients: Option<RecipientsArg<'py>>,
    /// Or a passphrase.
    pub passphrase: Option<String>,
    /// zstd level.
    pub zstd_level: i32,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
}

impl Seal<'_> {
    /// The pipeline options; adds the secrets given to `secrets`.
    pub fn options(self, py: Python<'_>, secrets: &mut Secrets) -> PyResult<BackupOptions> {
        let encryption = encryption(py, self.recipients, self.passphrase, secrets)?;
        let mut opts = BackupOptions::new(self.datastore, encryption);
        opts.zstd_level = self.zstd_level;
        opts.labels = self.labels.unwrap_or_default();
        Ok(opts)
    }
}

/// Runs a backup of `source` and wraps the manifest.
pub fn run_backup(
    py: Python<'_>,
    store: &BackupStore,
    mut source: impl Source + 'static,
    options: BackupOptions,
    secrets: &Secrets,
) -> PyResult<Manifest> {
    let store = store.clone();
    let result = block_on(py, async move {
        backup_core::backup(&store, &mut source, options).await
    })?;
    result
        .map(Manifest::new)
        .map_err(|e| to_py(py, &e, secrets))
}

fn is_secret_env(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN", "KEY", "PASS", "CREDENTIAL"]
        .iter()
        .any(|s| n.contains(s))
}

/// Backs up the standard output of a command (`pg_dumpall`, `tar c ...`). A non-zero
/// exit fails the backup and no manifest is written. `env` adds environment variables
/// (the place for passwords: never argv); `format` declares the output's format so
/// content verification can parse it (default `raw`).
#[pyfunction]
#[pyo3(signature = (argv, store, *, datastore, recipients=None, passphrase=None, zstd_level=3, labels=None, env=None, format="raw"))]
#[allow(clippy::too_many_arguments)]
pub fn backup_command(
    py: Python<'_>,
    argv: Vec<String>,
    store: StoreArg<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    zstd_level: i32,
    labels: Option<BTreeMap<String, String>>,
    env: Option<BTreeMap<String, String>>,
    format: &str,
) -> PyResult<Manifest> {
    let (store, mut secrets) = store.open(py)?;
    let options = Seal {
        datastore,
        recipients,
        passphrase,
        zstd_level,
        labels,
    }
    .options(py, &mut secrets)?;
    let mut source = CommandSource::new(argv)
        .map_err(|e| to_py(py, &e, &secrets))?
        .with_format(format_reader(py, format)?);
    for (k, v) in env.unwrap_or_default() {
        if is_secret_env(&k) {
            secrets.add(&v);
        }
        source = source.env(k, SecretString::new(v));
    }
    run_backup(py, &store, source, options, &secrets)
}

/// Backs up a bytes object (kind `bytes`). For large data prefer `backup_file`.
#[pyfunction]
#[pyo3(signature = (data, store, *, datastore, recipients=None, passphrase=None, zstd_level=3, labels=None, format="raw"))]
#[allow(clippy::too_many_arguments)]
pub fn backup_bytes(
    py: Python<'_>,
    data: Vec<u8>,
    store: StoreArg<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    zstd_level: i32,
    labels: Option<BTreeMap<String, String>>,
    format: &str,
) -> PyResult<Manifest> {
    let (store, mut secrets) = store.open(py)?;
    let options = Seal {
        datastore,
        recipients,
        passphrase,
        zstd_level,
        labels,
    }
    .options(py, &mut secrets)?;
    let source = ReaderSource::new(std::io::Cursor::new(data), "bytes")
        .with_format(format_reader(py, format)?);
    run_backup(py, &store, source, options, &secrets)
}

/// Backs up a file, streamed (kind `file`).
#[pyfunction]
#[pyo3(signature = (path, store, *, datastore, recipients=None, passphrase=None, zstd_level=3, labels=None, format="raw"))]
#[allow(clippy::too_many_arguments)]
pub fn backup_file(
    py: Python<'_>,
    path: PathBuf,
    store: StoreArg<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    zstd_level: i32,
    labels: Option<BTreeMap<String, String>>,
    format: &str,
) -> PyResult<Manifest> {
    let (store, mut secrets) = store.open(py)?;
    let options = Seal {
        datastore,
        recipients,
        passphrase,
        zstd_level,
        labels,
    }
    .options(py, &mut secrets)?;
    let file = std::fs::File::open(&path)
        .map_err(|e| config_error(py, format!("cannot open {}: {e}", path.display())))?;
    let source = BlockingReaderSource::new(file, "file").with_format(format_reader(py, format)?);
    run_backup(py, &store, source, options, &secrets)
}

/// A Redis database argument: an index, or `"SRC:DEST"`.
#[derive(FromPyObject)]
pub enum DbArg {
    /// A database index.
    Index(u32),
    /// `"N"` or `"SRC:DEST"`.
    Text(String),
}

/// A verification level argument.
#[derive(FromPyObject)]
pub enum LevelArg {
    /// 1, 2 or 3.
    Number(u8),
    /// `stored`, `content` or `restore`.
    Name(String),
}

fn parse_level(py: Python<'_>, level: Option<LevelArg>) -> PyResult<Option<u8>> {
    Ok(match level {
        None => None,
        Some(LevelArg::Number(n @ 1..=3)) => Some(n),
        Some(LevelArg::Name(s)) if s == "stored" => Some(1),
        Some(LevelArg::Name(s)) if s == "content" => Some(2),
        Some(LevelArg::Name(s)) if s == "restore" => Some(3),
        Some(LevelArg::Number(n)) => {
            return Err(config_error(
                py,
                format!(
                "verification level {n} does not exist: use 1 (stored), 2 (content) or 3 (restore)"
            ),
            ))
        }
        Some(LevelArg::Name(s)) => {
            return Err(config_error(
                py,
                format!("verification level `{s}` does not exist: use stored, content or restore"),
            ))
        }
    })
}

fn load_manifest(
    py: Python<'_>,
    store: &BackupStore,
    id: &Bound<'_, PyAny>,
    secrets: &Secrets,
) -> PyResult<CoreManifest> {
    let id = parse_id(py, id)?;
    let s = store.clone();
    block_on(py, async move { s.manifest(&id).await })?.map_err(|e| to_py(py, &e, secrets))
}

/// Verifies a backup and returns what was checked; any failure raises
/// (`VerificationError`, `DecryptionError`...). Levels: 1 `stored` (size and SHA-256 of
/// the stored objects, no key needed), 2 `content` (decrypt, decompress, parse, compare
/// digests and contents with the manifest), 3 `restore` (restore into a scratch database
/// on the server `restore_to` and compare its live contents). The default is `restore`
/// with `restore_to`, `content` with an identity or passphrase, else `stored`; each level
/// runs the ones below it first.
#[pyfunction]
#[pyo3(signature = (store, id, *, identity=None, passphrase=None, level=None, restore_to=None, user=None, password=None, database=None, pg_bin_dir=None))]
#[allow(clippy::too_many_arguments)]
pub fn verify(
    py: Python<'_>,
    store: StoreArg<'_>,
    id: &Bound<'_, PyAny>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    level: Option<LevelArg>,
    restore_to: Option<String>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    pg_bin_dir: Option<PathBuf>,
) -> PyResult<VerifyReport> {
    let (store, mut secrets) = store.open(py)?;
    if let Some(url) = &restore_to {
        secrets.add_url(url);
    }
    if let Some(p) = &password {
        secrets.add(p);
    }
    let level = parse_level(py, level)?;
    let decryption = decryption(py, identity, passphrase, &mut secrets)?;
    let level = level.unwrap_or(if restore_to.is_some() {
        3
    } else if decryption.is_some() {
        2
    } else {
        1
    });
    if level >= 2 && decryption.is_none() {
        return Err(config_error(
            py,
            "content and restore verification decrypt the artifact: pass identity=… (an Identity or an identity file) or passphrase=…",
        ));
    }
    if level == 3 && restore_to.is_none() {
        return Err(config_error(
            py,
            "level restore needs restore_to=URL (a server to restore a scratch copy into)",
        ));
    }
    let manifest = load_manifest(py, &store, id, &secrets)?;
    if level == 3 {
        db::check_restorable_kind(py, &manifest, "level-3 (restore) verification")?;
    }
    let options = RestoreOptions {
        decryption,
        progress: None,
    };
    let backup_id = manifest.backup_id.to_string();
    let result = block_on(py, async move {
        let mut reports = vec![backup_core::verify_stored(&store, &manifest).await?];
        if level >= 2 {
            reports
                .push(backup_core::verify_content(&store, &manifest, &formats(), &options).await?);
        }
        if level == 3 {
            let target = db::Target {
                url: restore_to,
                password: password.map(SecretString::new),
                user,
                database,
                pg_bin_dir,
                ..Default::default()
            };
            reports.push(db::verify_restore(&store, &manifest, &options, &target).await?);
        }
        Ok::<_, backup_core::Error>(reports)
    })?;
    let reports = result.map_err(|e| to_py(py, &e, &secrets))?;
    Ok(VerifyReport { backup_id, reports })
}

/// Restores a database backup into the database at `target_url` (the kind comes from
/// the manifest). A non-empty target is refused (`RefusedError`) unless
/// `replace=True`; a corrupted, truncated, tampered or wrongly keyed artifact leaves the
/// target as it was. `password` is used for the target when the URL has none.
/// PostgreSQL/TimescaleDB: `create_db`, `schemas`, `tables`, `no_owner`, `role`,
/// `allow_version_mismatch` (TimescaleDB). Redis: `dbs` (`"0"` or `"0:5"` to remap),
/// `match` (key glob patterns). Neo4j: `database`.
#[pyfunction]
#[pyo3(signature = (store, id, target_url, *, identity=None, passphrase=None, user=None, password=None, create_db=false, replace=false, schemas=None, tables=None, no_owner=false, role=None, allow_version_mismatch=false, dbs=None, r#match=None, database=None, pg_bin_dir=None))]
#[allow(clippy::too_many_arguments)]
pub fn restore(
    py: Python<'_>,
    store: StoreArg<'_>,
    id: &Bound<'_, PyAny>,
    target_url: String,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    user: Option<String>,
    password: Option<String>,
    create_db: bool,
    replace: bool,
    schemas: Option<Vec<String>>,
    tables: Option<Vec<String>>,
    no_owner: bool,
    role: Option<String>,
    allow_version_mismatch: bool,
    dbs: Option<Vec<DbArg>>,
    r#match: Option<Vec<String>>,
    database: Option<String>,
    pg_bin_dir: Option<PathBuf>,
) -> PyResult<RestoreReport> {
    let (store, mut secrets) = store.open(py)?;
    secrets.add_url(&target_url);
    if let Some(p) = &password {
        secrets.add(p);
    }
    let decryption = decryption(py, identity, passphrase, &mut secrets)?;
    let manifest = load_manifest(py, &store, id, &secrets)?;
    db::check_restorable_kind(py, &manifest, "restore into a database")?;
    let target = db::Target {
        url: Some(target_url),
        password: password.map(SecretString::new),
        create_db,
        replace,
        schemas: schemas.unwrap_or_default(),
        tables: tables.unwrap_or_default(),
        no_owner,
        role,
        allow_version_mismatch,
        dbs: dbs
            .unwrap_or_default()
            .into_iter()
            .map(|d| match d {
                DbArg::Index(i) => i.to_string(),
                DbArg::Text(t) => t,
            })
            .collect(),
        key_match: r#match.unwrap_or_default(),
        database,
        user,
        pg_bin_dir,
    };
    let options = RestoreOptions {
        decryption,
        progress: None,
    };
    let backup_id = manifest.backup_id.to_string();
    let shown = backup_core::redact_url(target.url.as_deref().unwrap_or_default());
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let result = block_on_cancellable(py, cancel, UNDO_GRACE, async move {
        db::restore(&store, &manifest, &options, &target, &token).await
    })?;
    let report = result.map_err(|e| to_py(py, &e, &secrets))?;
    Ok(RestoreReport {
        backup_id,
        target: secrets.scrub(&shown),
        bytes: report.bytes,
        summary: report.summary,
    })
}

/// Restores the plaintext native stream of a backup (the pg_dump archive, the RDB
/// file, the graph stream, the command's output...) into the file `path`. The file
/// appears only when the whole artifact was checked: on any failure nothing is left
/// behind. An existing file is refused unless `overwrite=True`.
#[pyfunction]
#[pyo3(signature = (store, id, path, *, identity=None, passphrase=None, artifact="data", overwrite=false))]
#[allow(clippy::too_many_arguments)]
pub fn restore_to_file(
    py: Python<'_>,
    store: StoreArg<'_>,
    id: &Bound<'_, PyAny>,
    path: PathBuf,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    artifact: &str,
    overwrite: bool,
) -> PyResult<RestoreReport> {
    let (store, mut secrets) = store.open(py)?;
    let decryption = decryption(py, identity, passphrase, &mut secrets)?;
    if decryption.is_none() {
        return Err(config_error(
            py,
            "restoring decrypts the artifact: pass identity=… or passphrase=…",
        ));
    }
    if !overwrite && path.exists() {
        return Err(raise(
            py,
            ErrorKind::Refused,
            &format!(
                "{} already exists: pass overwrite=True to replace it",
                path.display()
            ),
            &secrets,
        ));
    }
    let manifest = load_manifest(py, &store, id, &secrets)?;
    let backup_id = manifest.backup_id.to_string();
    let options = RestoreOptions {
        decryption,
        progress: None,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dir.join(format!(
        ".{file_name}.dbseal-partial-{}",
        std::process::id()
    ));
    let artifact = artifact.to_string();
    let (target, partial_c) = (path.clone(), partial.clone());
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let result = block_on_cancellable(py, cancel, UNDO_GRACE, async move {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial_c)
            .await
            .map_err(|e| {
                backup_core::Error::Config(format!("cannot create {}: {e}", partial_c.display()))
            })?;
        let mut file_sink = WriterSink::new(file);
        let mut sink = CancellableSink::new(&mut file_sink, token);
        let report = backup_core::restore(&store, &manifest, &artifact, &mut sink, &options).await;
        drop(file_sink);
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial_c).await;
                return Err(e);
            }
        };
        if let Err(e) = tokio::fs::rename(&partial_c, &target).await {
            let _ = tokio::fs::remove_file(&partial_c).await;
            return Err(backup_core::Error::io(
                format!("moving the restored file to {}", target.display()),
                e,
            ));
        }
        Ok(report)
    });
    let result = match result {
        Ok(r) => r,
        Err(interrupt) => {
            let _ = std::fs::remove_file(&partial);
            return Err(interrupt);
        }
    };
    let report = result.map_err(|e| to_py(py, &e, &secrets))?;
    Ok(RestoreReport {
        backup_id,
        target: path.display().to_string(),
        bytes: report.bytes,
        summary: report.summary,
    })
}

/// Restores the plaintext native stream of a backup into memory and returns it. Only
/// for small backups (tests, fixtures); use `restore_to_file` otherwise.
#[pyfunction]
#[pyo3(signature = (store, id, *, identity=None, passphrase=None, artifact="data"))]
pub fn restore_bytes<'py>(
    py: Python<'py>,
    store: StoreArg<'_>,
    id: &Bound<'_, PyAny>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    artifact: &str,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let (store, mut secrets) = store.open(py)?;
    let decryption = decryption(py, identity, passphrase, &mut secrets)?;
    if decryption.is_none() {
        return Err(config_error(
            py,
            "restoring decrypts the artifact: pass identity=… or passphrase=…",
        ));
    }
    let manifest = load_manifest(py, &store, id, &secrets)?;
    let options = RestoreOptions {
        decryption,
        progress: None,
    };
    let artifact = artifact.to_string();
    let result = block_on(py, async move {
        let mut out = Vec::new();
        backup_core::restore(
            &store,
            &manifest,
            &artifact,
            &mut WriterSink::new(&mut out),
            &options,
        )
        .await?;
        Ok::<_, backup_core::Error>(out)
    })?;
    let data = result.map_err(|e| to_py(py, &e, &secrets))?;
    Ok(pyo3::types::PyBytes::new(py, &data))
}
