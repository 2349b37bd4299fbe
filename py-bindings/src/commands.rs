//! The commands: one Python function per CLI command, each translating its keywords
//! into the options struct of the `backup_core::ops` operation (or backup-postgres WAL
//! call) the CLI runs, and its result into the CLI's `--json` document or a typed
//! object. Keywords are the CLI's flags with `_` for `-` ([`convert::options`]);
//! `identity`, `passphrase`, `recipients`, `password` and `user` also take what only
//! Python has (objects, strings instead of files).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use backup_core::ops::{self, Config, Frontend, Notice, OpContext};
use backup_core::{
    BlockingReaderSource, CommandSource, DriverOptions, ErrorKind, FormatReader, ReaderSource,
    RestoreOptions, SecretString, Source, WriterSink,
};
use clap::Args;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::convert::{self, describe, Keyword};
use crate::errors::{config_error, raise, IntoPy, Secrets};
use crate::keys::{decryption, encryption, recipient_texts, IdentitiesArg, RecipientsArg};
use crate::runtime::{block_on, block_on_cancellable, UNDO_GRACE};
use crate::store::{resolve, StoreArg};
use crate::types::{Manifest, RestoreReport, VerifyReport};

/// Adds every command to `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(keywords, m)?)?;
    m.add_function(wrap_pyfunction!(keygen, m)?)?;
    m.add_function(wrap_pyfunction!(backup, m)?)?;
    m.add_function(wrap_pyfunction!(backup_command, m)?)?;
    m.add_function(wrap_pyfunction!(backup_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(backup_file, m)?)?;
    m.add_function(wrap_pyfunction!(backup_datastores, m)?)?;
    m.add_function(wrap_pyfunction!(restore, m)?)?;
    m.add_function(wrap_pyfunction!(restore_set, m)?)?;
    m.add_function(wrap_pyfunction!(restore_to_file, m)?)?;
    m.add_function(wrap_pyfunction!(restore_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(verify_latest, m)?)?;
    m.add_function(wrap_pyfunction!(list_backups, m)?)?;
    m.add_function(wrap_pyfunction!(show, m)?)?;
    m.add_function(wrap_pyfunction!(config_check, m)?)?;
    m.add_function(wrap_pyfunction!(prune, m)?)?;
    m.add_function(wrap_pyfunction!(status, m)?)?;
    crate::wal::register(m)
}

/// The keywords a clap `Args` struct declares.
pub fn keywords_of<T: Args>() -> Vec<Keyword> {
    describe(&T::augment_args(clap::Command::new("dbseal")))
}

/// The option keywords (CLI flags) each command takes besides its explicit arguments:
/// `{"prune": [{name, flag, type, shape, default, help}, …], …}`. The stubs and the
/// parity test read it.
#[pyfunction]
pub fn keywords(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let table: BTreeMap<&str, Vec<Keyword>> = [
        (
            "backup_datastores",
            keywords_of::<ops::backup::DatastoreBackupOptions>(),
        ),
        ("restore", {
            let mut k = keywords_of::<ops::restore::RestoreBackupOptions>();
            k.extend(keywords_of::<backup_postgres::pitr::PitrOptions>());
            k
        }),
        ("verify", keywords_of::<ops::verify::VerifyBackupOptions>()),
        ("prune", keywords_of::<ops::prune::PruneOptions>()),
        ("status", keywords_of::<ops::status::StatusOptions>()),
    ]
    .into_iter()
    .chain(crate::wal::keywords())
    .collect();
    convert::to_py(py, &table)
}

/// Notices of operations go to the `dbseal` logger.
struct LogFrontend;

impl Frontend for LogFrontend {
    fn notice(&self, notice: Notice) {
        let (level, text) = match notice {
            Notice::Info(t) => ("info", t),
            Notice::Warning(t) | Notice::Important(t) => ("warning", t),
        };
        Python::attach(|py| {
            let logger = py
                .import("logging")
                .and_then(|l| l.call_method1("getLogger", ("dbseal",)));
            if let Ok(logger) = logger {
                let _ = logger.call_method1(level, (text,));
            }
        });
    }
}

/// What one call shares: the operation context (registry, store, configuration,
/// cancellation) and the secrets to scrub from its errors.
pub struct Call {
    /// The context operations take.
    pub ctx: OpContext,
    /// The store, with the URL and options it was opened with.
    pub store: crate::store::Store,
    /// Secrets given to the call.
    pub secrets: Secrets,
}

impl Call {
    /// The context of a call: the configuration as the CLI finds it (`config`, else
    /// `$DBSEAL_CONFIG`, else `./dbseal.toml` when it exists), then the store (`store`,
    /// else the configuration's, else `$DBSEAL_STORE`, else `./backups`).
    pub fn new(
        py: Python<'_>,
        store: Option<&StoreArg<'_>>,
        config: Option<PathBuf>,
    ) -> PyResult<Call> {
        let registry = crate::registry();
        let config = Config::load(config.as_deref(), &registry).py_err(py, &Secrets::default())?;
        let store = resolve(py, store, config.as_ref())?;
        let secrets = store.secrets.clone();
        let ctx = OpContext::new(registry, store.inner.clone())
            .with_config(config.map(Arc::new))
            .with_frontend(Arc::new(LogFrontend))
            .with_cancel(CancellationToken::new());
        Ok(Call {
            ctx,
            store,
            secrets,
        })
    }

    /// Runs an operation with the GIL released; Ctrl-C drops it.
    pub fn run<'a, T: Send, F>(
        &'a self,
        py: Python<'_>,
        op: impl FnOnce(&'a OpContext) -> F + Send,
    ) -> PyResult<T>
    where
        F: std::future::Future<Output = backup_core::Result<T>> + 'a,
    {
        let ctx = &self.ctx;
        block_on(py, move || op(ctx))?.py_err(py, &self.secrets)
    }

    /// Runs an operation that writes (a backup, a restore, a verification into a
    /// scratch database): Ctrl-C cancels it through the context's token and waits for
    /// it to undo its work (delete what it uploaded, roll its target back).
    pub fn run_undoable<'a, T: Send, F>(
        &'a self,
        py: Python<'_>,
        op: impl FnOnce(&'a OpContext) -> F + Send,
    ) -> PyResult<T>
    where
        F: std::future::Future<Output = backup_core::Result<T>> + 'a,
    {
        let ctx = &self.ctx;
        block_on_cancellable(py, ctx.cancel.clone(), UNDO_GRACE, move || op(ctx))?
            .py_err(py, &self.secrets)
    }
}

/// Raises the error of a result that is itself a failure (a set with a failed member,
/// an unhealthy status), with the result (the CLI's `--json` document) as `.result`.
pub fn check_failure<'py>(
    py: Python<'py>,
    failure: Option<backup_core::Error>,
    result: Bound<'py, PyAny>,
    secrets: &Secrets,
) -> PyResult<Bound<'py, PyAny>> {
    match failure {
        None => Ok(result),
        Some(e) => {
            let err = raise(py, e.kind(), &e.to_string(), secrets);
            err.value(py).setattr("result", result)?;
            Err(err)
        }
    }
}

/// `labels=`: a mapping, or `KEY=VALUE` strings.
#[derive(FromPyObject)]
pub enum LabelsArg {
    /// `{"env": "test"}`.
    Map(BTreeMap<String, String>),
    /// `["env=test"]`.
    List(Vec<String>),
}

impl LabelsArg {
    fn items(self) -> Vec<String> {
        match self {
            LabelsArg::Map(m) => m.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            LabelsArg::List(l) => l,
        }
    }
}

/// The seal keywords of every backup.
#[allow(clippy::too_many_arguments)]
fn seal(
    py: Python<'_>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    zstd_level: Option<i32>,
    zstd_workers: Option<u32>,
    labels: Option<LabelsArg>,
    secrets: &mut Secrets,
) -> PyResult<ops::backup::SealOptions> {
    Ok(ops::backup::SealOptions {
        datastore,
        encryption: encryption(py, recipients, passphrase, secrets)?,
        passphrase_file,
        zstd_level,
        zstd_workers,
        labels: labels.map(LabelsArg::items).unwrap_or_default(),
        ..Default::default()
    })
}

/// Generates an age key pair like `dbseal keygen -o OUTPUT`: the identity is written
/// to `output` (mode 0600, never overwritten); returns `{"recipient", "identity_file"}`.
#[pyfunction]
pub fn keygen(py: Python<'_>, output: PathBuf) -> PyResult<Bound<'_, PyAny>> {
    let pair = backup_core::KeyPair::generate();
    pair.write_identity_file(&output)
        .py_err(py, &Secrets::default())?;
    convert::to_py(
        py,
        &serde_json::json!({"recipient": pair.recipient(), "identity_file": output}),
    )
}

/// Puts `user`/`password` into the user-info of `url` (percent-encoded), so they reach
/// the driver in memory with the URL, never in a process's arguments.
fn with_credentials(
    py: Python<'_>,
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
) -> PyResult<Option<String>> {
    if user.is_none() && password.is_none() {
        return Ok(url);
    }
    let Some(url) = url else {
        return Err(config_error(
            py,
            "user= and password= need the server's url",
        ));
    };
    let mut parsed = url::Url::parse(&url).map_err(|_| {
        config_error(
            py,
            "user= and password= need a URL such as scheme://host:port/…",
        )
    })?;
    let encode = backup_core::secret::percent_encode_userinfo;
    if let Some(u) = user {
        parsed
            .set_username(&encode(&u))
            .map_err(|_| config_error(py, "this URL cannot hold a user name"))?;
    }
    if let Some(p) = password {
        parsed
            .set_password(Some(&encode(&p)))
            .map_err(|_| config_error(py, "this URL cannot hold a password"))?;
    }
    Ok(Some(parsed.to_string()))
}

/// Backs up a database of `kind` through its driver, as `dbseal backup <kind>`:
/// `**options` are the flags of `dbseal backup <kind> --help` (`dbseal.drivers()`
/// lists them; `schemas` for `schema` and other plurals of repeatable flags work too).
/// `user`/`password` go into the URL's user-info when the driver has no such option.
/// `dbseal.backup_<kind>(url, store, …)` is this with `kind` filled in.
#[pyfunction]
#[pyo3(signature = (kind, url=None, store=None, *, datastore, recipients=None, passphrase=None, passphrase_file=None, zstd_level=None, zstd_workers=None, labels=None, user=None, password=None, username=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn backup(
    py: Python<'_>,
    kind: &str,
    url: Option<String>,
    store: Option<StoreArg<'_>>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    zstd_level: Option<i32>,
    zstd_workers: Option<u32>,
    labels: Option<LabelsArg>,
    user: Option<String>,
    password: Option<String>,
    username: Option<String>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Manifest> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let driver = call
        .ctx
        .registry
        .driver(kind)
        .py_err(py, &call.secrets)?
        .clone();
    let known = describe(&driver.backup_args(clap::Command::new(driver.kind())));
    let has = |name: &str| known.iter().any(|k| k.name == name);
    let user = user.or(username);
    let (option_user, url_user) = if has("user") {
        (user, None)
    } else {
        (None, user)
    };
    let url = with_credentials(py, url, url_user, password.clone())?;
    if let Some(p) = &password {
        call.secrets.add(p);
    }
    let mut map = convert::options(options, &known, true, &mut call.secrets)?;
    for (key, value) in [("url", url), ("user", option_user)] {
        if let Some(v) = value {
            call.secrets.add_url(&v);
            map.insert(key.into(), Value::String(v));
        }
    }
    let seal = seal(
        py,
        datastore,
        recipients,
        passphrase,
        passphrase_file,
        zstd_level,
        zstd_workers,
        labels,
        &mut call.secrets,
    )?;
    let options = DriverOptions(map);
    let kind = driver.kind();
    call.run_undoable(py, |ctx| async move {
        ops::backup::backup_with_driver(ctx, kind, &options, &seal).await
    })
    .map(Manifest::new)
}

fn format_reader(py: Python<'_>, format: &str) -> PyResult<Arc<dyn FormatReader>> {
    crate::registry().formats().get(format).ok_or_else(|| {
        config_error(py, format!("unknown stream format `{format}`: use raw or a format a database module reads (pgdump, rdb, graph...)"))
    })
}

/// The seal keywords of the source backups, as one tuple-free struct.
struct SealArgs<'py> {
    datastore: String,
    recipients: Option<RecipientsArg<'py>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    zstd_level: Option<i32>,
    zstd_workers: Option<u32>,
    labels: Option<LabelsArg>,
    config: Option<PathBuf>,
}

fn backup_source(
    py: Python<'_>,
    store: Option<StoreArg<'_>>,
    args: SealArgs<'_>,
    source: impl FnOnce(&mut Secrets) -> PyResult<Box<dyn Source>>,
) -> PyResult<Manifest> {
    let mut call = Call::new(py, store.as_ref(), args.config)?;
    let seal = seal(
        py,
        args.datastore,
        args.recipients,
        args.passphrase,
        args.passphrase_file,
        args.zstd_level,
        args.zstd_workers,
        args.labels,
        &mut call.secrets,
    )?;
    let mut source = source(&mut call.secrets)?;
    call.run_undoable(py, |ctx| async move {
        ops::backup::backup_source(ctx, source.as_mut(), &seal).await
    })
    .map(Manifest::new)
}

/// Backs up the standard output of a command, as `dbseal backup command -- ARGV`. A
/// non-zero exit fails the backup and no manifest is written. `env` adds environment
/// variables (the place for passwords: never argv); `format` declares the output's
/// format so content verification can parse it (default `raw`).
#[pyfunction]
#[pyo3(signature = (argv, store=None, *, datastore, recipients=None, passphrase=None, passphrase_file=None, zstd_level=None, zstd_workers=None, labels=None, env=None, format="raw", config=None))]
#[allow(clippy::too_many_arguments)]
pub fn backup_command(
    py: Python<'_>,
    argv: Vec<String>,
    store: Option<StoreArg<'_>>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    zstd_level: Option<i32>,
    zstd_workers: Option<u32>,
    labels: Option<LabelsArg>,
    env: Option<BTreeMap<String, String>>,
    format: &str,
    config: Option<PathBuf>,
) -> PyResult<Manifest> {
    let args = SealArgs {
        datastore,
        recipients,
        passphrase,
        passphrase_file,
        zstd_level,
        zstd_workers,
        labels,
        config,
    };
    backup_source(py, store, args, |secrets| {
        let mut source = CommandSource::new(argv)
            .py_err(py, secrets)?
            .with_format(format_reader(py, format)?);
        for (k, v) in env.unwrap_or_default() {
            secrets.add_named(&k, &v);
            source = source.env(k, SecretString::new(v));
        }
        Ok(Box::new(source))
    })
}

/// Backs up a bytes object (kind `bytes`): `dbseal backup stdin` for data in memory.
/// For large data prefer `backup_file`.
#[pyfunction]
#[pyo3(signature = (data, store=None, *, datastore, recipients=None, passphrase=None, passphrase_file=None, zstd_level=None, zstd_workers=None, labels=None, format="raw", config=None))]
#[allow(clippy::too_many_arguments)]
pub fn backup_bytes(
    py: Python<'_>,
    data: Vec<u8>,
    store: Option<StoreArg<'_>>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    zstd_level: Option<i32>,
    zstd_workers: Option<u32>,
    labels: Option<LabelsArg>,
    format: &str,
    config: Option<PathBuf>,
) -> PyResult<Manifest> {
    let args = SealArgs {
        datastore,
        recipients,
        passphrase,
        passphrase_file,
        zstd_level,
        zstd_workers,
        labels,
        config,
    };
    backup_source(py, store, args, |_| {
        let source = ReaderSource::new(std::io::Cursor::new(data), "bytes");
        Ok(Box::new(source.with_format(format_reader(py, format)?)))
    })
}

/// Backs up a file, streamed (kind `file`): `dbseal backup stdin < path`.
#[pyfunction]
#[pyo3(signature = (path, store=None, *, datastore, recipients=None, passphrase=None, passphrase_file=None, zstd_level=None, zstd_workers=None, labels=None, format="raw", config=None))]
#[allow(clippy::too_many_arguments)]
pub fn backup_file(
    py: Python<'_>,
    path: PathBuf,
    store: Option<StoreArg<'_>>,
    datastore: String,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    zstd_level: Option<i32>,
    zstd_workers: Option<u32>,
    labels: Option<LabelsArg>,
    format: &str,
    config: Option<PathBuf>,
) -> PyResult<Manifest> {
    let args = SealArgs {
        datastore,
        recipients,
        passphrase,
        passphrase_file,
        zstd_level,
        zstd_workers,
        labels,
        config,
    };
    backup_source(py, store, args, |_| {
        let file = std::fs::File::open(&path)
            .map_err(|e| config_error(py, format!("cannot open {}: {e}", path.display())))?;
        let source = BlockingReaderSource::new(file, "file");
        Ok(Box::new(source.with_format(format_reader(py, format)?)))
    })
}

/// Backs up datastores of the config file, as `dbseal backup --datastore NAME…` /
/// `--all`: one named datastore gives its `Manifest`; several, or `all=True`, one
/// backup set (the set manifest as a dict). A set with a failed member raises
/// `SetFailedError` with the set manifest as `.result`.
#[pyfunction]
#[pyo3(signature = (store=None, *, recipients=None, config=None, **options))]
pub fn backup_datastores<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    recipients: Option<RecipientsArg<'_>>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let keywords = keywords_of::<ops::backup::DatastoreBackupOptions>();
    let map = convert::options(options, &keywords, false, &mut call.secrets)?;
    let mut opts: ops::backup::DatastoreBackupOptions =
        convert::parse(py, "backup_datastores", map)?;
    if let Some(r) = recipients {
        opts.recipients = recipient_texts(py, r, &mut call.secrets)?;
    }
    let result = call.run_undoable(py, |ctx| async move {
        ops::backup::backup_datastores(ctx, &opts).await
    })?;
    match result {
        ops::backup::DatastoresBackup::Single(m) => {
            Ok(Bound::new(py, Manifest::new(*m))?.into_any())
        }
        ops::backup::DatastoresBackup::Set(set) => {
            check_failure(py, set.failure(), convert::to_py(py, &set)?, &call.secrets)
        }
    }
}

/// The decryption keywords: `identity` (Identity objects or identity files, one or a
/// sequence) and `passphrase` (a string), as [`ops::KeyOptions`].
fn keys(
    py: Python<'_>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    secrets: &mut Secrets,
) -> PyResult<ops::KeyOptions> {
    Ok(ops::KeyOptions {
        decryption: decryption(py, identity, passphrase, secrets)?,
        passphrase_file,
        ..Default::default()
    })
}

/// Splits the restore keywords into `RestoreBackupOptions`: its own flags, and the
/// target's (`RestoreTarget`: `url`, `replace`, `create_db`, `schema`, `db`, `match`…).
fn restore_options(
    py: Python<'_>,
    options: Option<&Bound<'_, PyDict>>,
    keys: ops::KeyOptions,
    target_url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    secrets: &mut Secrets,
) -> PyResult<ops::restore::RestoreBackupOptions> {
    let outer = keywords_of::<ops::restore::RestoreBackupOptions>();
    let target_keys = keywords_of::<backup_core::RestoreTarget>();
    let map = convert::options(options, &outer, false, secrets)?;
    let (mut own, mut target) = (Map::new(), Map::new());
    for (k, v) in map {
        match target_keys.iter().find(|t| t.name == k) {
            Some(_) => target.insert(k.replace('_', "-"), v),
            None => own.insert(k, v),
        };
    }
    // With a URL, user and password go into it, so a safety backup of the target
    // reaches it with them too; without (a configured datastore), into the target.
    if let Some(p) = &password {
        secrets.add(p);
    }
    let (user, password) = match target_url {
        Some(url) => {
            let url = with_credentials(py, Some(url), user, password)?.unwrap_or_default();
            secrets.add_url(&url);
            target.insert("url".into(), Value::String(url));
            (None, None)
        }
        None => (user, password),
    };
    if let Some(u) = user {
        target.insert("user".into(), Value::String(u));
    }
    own.insert("target".into(), Value::Object(target));
    let mut opts: ops::restore::RestoreBackupOptions = convert::parse(py, "restore", own)?;
    opts.keys = keys;
    opts.target.password = password.map(SecretString::new);
    Ok(opts)
}

/// Restores a backup, as `dbseal restore ID`: into the database `target_url` names
/// (the kind comes from the manifest), into `datastore=` of the config file, or into
/// the file `output=`. A non-empty target is refused (`RefusedError`) unless
/// `replace=True`, which first takes a safety backup of it (`no_safety_backup=True`
/// skips it); a production datastore needs `confirm_production=[name]`;
/// `dry_run=True` touches nothing and reports the plan (`to_dict()` is the document of
/// `dbseal restore --dry-run --json`). Target keywords are
/// those of `dbseal restore --help`: `create_db`, `schema`/`schemas`, `table`, `role`,
/// `no_owner`, `allow_version_mismatch`, `db`/`dbs` (`"0"` or `"0:5"`), `match`,
/// `database`, `to_rdb`, `pg_bin_dir`… With `pgdata=`, a PostgreSQL physical backup is
/// restored into that data directory for point-in-time recovery (`latest=True`,
/// `target_time=…`). A failed, corrupted or interrupted restore leaves the target as
/// it was.
#[pyfunction]
#[pyo3(signature = (store, id, target_url=None, *, identity=None, passphrase=None, passphrase_file=None, user=None, password=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn restore(
    py: Python<'_>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    target_url: Option<String>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<RestoreReport> {
    let id = backup_id(id)?;
    let mut call = Call::new(py, store.as_ref(), config)?;
    if let Some(pitr) = crate::wal::pitr_options(py, options)? {
        return crate::wal::restore_pgdata(py, call, &id, identity, passphrase_file, pitr);
    }
    let keys = keys(py, identity, passphrase, passphrase_file, &mut call.secrets)?;
    let opts = restore_options(
        py,
        options,
        keys,
        target_url,
        user,
        password,
        &mut call.secrets,
    )?;
    let result = call.run_undoable(py, |ctx| async move {
        ops::restore::restore_backup(ctx, &id, &opts).await
    })?;
    let doc = serde_json::to_value(&result).map_err(|e| config_error(py, e.to_string()))?;
    Ok(RestoreReport { doc })
}

/// Restores every member of a backup set into its configured datastore, as `dbseal
/// restore --set SET_ID`; every member is resolved, checked and confirmed before any
/// target is touched. Keywords as `restore`'s.
#[pyfunction]
#[pyo3(signature = (store, set_id, *, identity=None, passphrase=None, passphrase_file=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn restore_set<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    set_id: String,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    passphrase_file: Option<PathBuf>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let keys = keys(py, identity, passphrase, passphrase_file, &mut call.secrets)?;
    let opts = restore_options(py, options, keys, None, None, None, &mut call.secrets)?;
    let result = call.run_undoable(py, |ctx| async move {
        ops::restore::restore_set(ctx, &set_id, &opts).await
    })?;
    convert::to_py(py, &result)
}

/// A backup id argument: a string or a `Manifest`.
pub fn backup_id(id: &Bound<'_, PyAny>) -> PyResult<String> {
    match convert::py_to_json(id)? {
        Value::String(s) => Ok(s),
        _ => Err(config_error(
            id.py(),
            "a backup id is a string such as 20261121T020000Z-1a2b3c4d (or a Manifest)",
        )),
    }
}

/// The manifest of `id` and the keys to decrypt it (at least one is needed).
fn decrypting(
    py: Python<'_>,
    call: &mut Call,
    id: &Bound<'_, PyAny>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
) -> PyResult<(backup_core::Manifest, RestoreOptions)> {
    let decryption = decryption(py, identity, passphrase, &mut call.secrets)?;
    let keys = ops::KeyOptions {
        decryption,
        ..Default::default()
    }
    .or_config(call.ctx.config.as_deref());
    let decryption = keys.decryption().py_err(py, &call.secrets)?;
    if decryption.is_none() {
        return Err(config_error(
            py,
            "restoring decrypts the artifact: pass identity=… or passphrase=…",
        ));
    }
    let id = backup_id(id)?;
    let manifest = call.run(py, |ctx| async move { ops::show(ctx, &id).await })?;
    Ok((
        manifest,
        RestoreOptions {
            decryption,
            progress: None,
        },
    ))
}

/// Restores the plaintext native stream of a backup's artifact (the pg_dump archive,
/// the RDB file, the command's output…) into the file `path`, as `dbseal restore ID
/// --output PATH`. The file appears only when the whole artifact was checked (mode
/// 0600); on any failure nothing is left behind. An existing file is refused unless
/// `overwrite=True`.
#[pyfunction]
#[pyo3(signature = (store, id, path, *, identity=None, passphrase=None, artifact="data", overwrite=false))]
#[allow(clippy::too_many_arguments)]
pub fn restore_to_file(
    py: Python<'_>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    path: PathBuf,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    artifact: &str,
    overwrite: bool,
) -> PyResult<RestoreReport> {
    let mut call = Call::new(py, store.as_ref(), None)?;
    if !overwrite && path.exists() {
        return Err(raise(
            py,
            ErrorKind::Refused,
            &format!(
                "{} already exists: pass overwrite=True to replace it",
                path.display()
            ),
            &call.secrets,
        ));
    }
    let (manifest, options) = decrypting(py, &mut call, id, identity, passphrase)?;
    let (artifact, target) = (artifact.to_string(), path.clone());
    let backup_id = manifest.backup_id.to_string();
    let report = call.run_undoable(py, |ctx| async move {
        ops::restore::restore_to_file(ctx, &manifest, &artifact, &target, overwrite, &options).await
    })?;
    let doc = serde_json::json!({
        "backup_id": backup_id,
        "target": path.display().to_string(),
        "bytes": report.bytes,
        "summary": report.summary,
    });
    Ok(RestoreReport { doc })
}

/// Restores the plaintext native stream of a backup into memory and returns it, as
/// `dbseal restore ID --to-stdout`. Only for small backups; use `restore_to_file`
/// otherwise.
#[pyfunction]
#[pyo3(signature = (store, id, *, identity=None, passphrase=None, artifact="data"))]
pub fn restore_bytes<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    artifact: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut call = Call::new(py, store.as_ref(), None)?;
    let (manifest, options) = decrypting(py, &mut call, id, identity, passphrase)?;
    let data = call.run(py, |ctx| async move {
        let mut out = Vec::new();
        backup_core::restore(
            &ctx.store,
            &manifest,
            artifact,
            &mut WriterSink::new(&mut out),
            &options,
        )
        .await?;
        Ok(out)
    })?;
    Ok(PyBytes::new(py, &data))
}

/// A verification level argument: 1, 2, 3 or `stored`, `content`, `restore`.
#[derive(FromPyObject)]
pub enum LevelArg {
    /// 1, 2 or 3.
    Number(u8),
    /// `stored`, `content` or `restore`.
    Name(String),
}

fn level_name(py: Python<'_>, level: LevelArg) -> PyResult<String> {
    const NAMES: [&str; 3] = ["stored", "content", "restore"];
    match level {
        LevelArg::Number(n @ 1..=3) => Ok(NAMES[usize::from(n) - 1].to_string()),
        LevelArg::Name(s) if NAMES.contains(&s.as_str()) => Ok(s),
        LevelArg::Number(n) => Err(config_error(
            py,
            format!(
                "verification level {n} does not exist: use 1 (stored), 2 (content) or 3 (restore)"
            ),
        )),
        LevelArg::Name(s) => Err(config_error(
            py,
            format!("verification level `{s}` does not exist: use stored, content or restore"),
        )),
    }
}

/// The verification keywords as [`ops::verify::VerifyBackupOptions`]; `user`,
/// `password` and `database` complete the `restore_to` URL (its user-info and path).
#[allow(clippy::too_many_arguments)]
fn verify_options(
    py: Python<'_>,
    call: &mut Call,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    level: Option<LevelArg>,
    restore_to: Option<String>,
    (user, password, database): (Option<String>, Option<String>, Option<String>),
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<ops::verify::VerifyBackupOptions> {
    let mut restore_to = with_credentials(py, restore_to, user, password.clone())?;
    if let (Some(url), Some(db)) = (&restore_to, database) {
        let mut u =
            url::Url::parse(url).map_err(|_| config_error(py, "database= needs restore_to=URL"))?;
        u.set_path(&db);
        restore_to = Some(u.to_string());
    }
    if let Some(p) = &password {
        call.secrets.add(p);
    }
    let keywords = keywords_of::<ops::verify::VerifyBackupOptions>();
    let mut map = convert::options(options, &keywords, false, &mut call.secrets)?;
    if let Some(level) = level {
        map.insert("level".into(), Value::String(level_name(py, level)?));
    }
    if let Some(url) = restore_to {
        call.secrets.add_url(&url);
        map.insert("restore_to".into(), Value::String(url));
    }
    let mut opts: ops::verify::VerifyBackupOptions = convert::parse(py, "verify", map)?;
    opts.keys.decryption = decryption(py, identity, passphrase, &mut call.secrets)?;
    Ok(opts)
}

/// Verifies a backup, as `dbseal verify ID`, and writes the verification record
/// (`verified.json`, read by `status` and `prune`; `no_record=True` skips it). Levels:
/// 1 `stored` (size and SHA-256 of the stored objects, no key needed), 2 `content`
/// (decrypt, decompress, parse, compare with the manifest), 3 `restore` (restore into
/// a scratch database on the server `restore_to` and compare its live contents). The
/// default is `restore` with `restore_to`, `content` with keys, else `stored`. Any
/// failure raises (`VerificationError`, `DecryptionError`…).
#[pyfunction]
#[pyo3(signature = (store, id, *, identity=None, passphrase=None, level=None, restore_to=None, user=None, password=None, database=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn verify(
    py: Python<'_>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    level: Option<LevelArg>,
    restore_to: Option<String>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<VerifyReport> {
    let id = backup_id(id)?;
    let mut call = Call::new(py, store.as_ref(), config)?;
    let opts = verify_options(
        py,
        &mut call,
        identity,
        passphrase,
        level,
        restore_to,
        (user, password, database),
        options,
    )?;
    let result = call.run_undoable(py, |ctx| async move {
        ops::verify::verify_backup(ctx, &id, &opts).await
    })?;
    Ok(VerifyReport {
        backup_id: result.backup_id.to_string(),
        reports: result.reports,
    })
}

/// Verifies the newest backup of each datastore (in the store and the config file), as
/// `dbseal verify --latest`, recording each verdict; returns one dict per datastore. A
/// failed datastore raises (the first failure's class) with the list as `.result`.
#[pyfunction]
#[pyo3(signature = (store=None, *, datastores=None, identity=None, passphrase=None, level=None, restore_to=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn verify_latest<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    datastores: Option<Vec<String>>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    level: Option<LevelArg>,
    restore_to: Option<String>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let mut names = datastores.unwrap_or_default();
    if let Some(one) = options.and_then(|o| o.get_item("datastore").ok().flatten()) {
        options.map(|o| o.del_item("datastore")).transpose()?;
        names.push(one.extract()?);
    }
    let opts = verify_options(
        py,
        &mut call,
        identity,
        passphrase,
        level,
        restore_to,
        (None, None, None),
        options,
    )?;
    let secrets = call.secrets.clone();
    let result = call.run_undoable(py, |ctx| async move {
        ops::verify::verify_latest(ctx, &names, &opts).await
    })?;
    check_failure(py, result.failure(), convert::to_py(py, &result)?, &secrets)
}

/// The complete backups of the store (of one datastore), oldest first, as `dbseal
/// list`; unreadable manifests are skipped with a warning.
#[pyfunction]
#[pyo3(signature = (store=None, datastore=None, *, config=None))]
pub fn list_backups(
    py: Python<'_>,
    store: Option<StoreArg<'_>>,
    datastore: Option<String>,
    config: Option<PathBuf>,
) -> PyResult<Vec<Manifest>> {
    let call = Call::new(py, store.as_ref(), config)?;
    let list = call.run(py, |ctx| async move {
        ops::list(ctx, datastore.as_deref()).await
    })?;
    Ok(list.into_iter().map(Manifest::new).collect())
}

/// One backup's manifest, as `dbseal show ID` (raises `NotFoundError` if there is none).
#[pyfunction]
#[pyo3(signature = (store, id, *, config=None))]
pub fn show(
    py: Python<'_>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    config: Option<PathBuf>,
) -> PyResult<Manifest> {
    let id = backup_id(id)?;
    let call = Call::new(py, store.as_ref(), config)?;
    call.run(py, |ctx| async move { ops::show(ctx, &id).await })
        .map(Manifest::new)
}

/// Checks the configuration file, as `dbseal config check` (`config`, else
/// `$DBSEAL_CONFIG`, else `./dbseal.toml`): syntax, unknown keys, `${VAR}` references,
/// password and key files, each datastore's options. Returns the resolved
/// configuration with secrets shown as `**REDACTED**`.
#[pyfunction]
#[pyo3(signature = (config=None))]
pub fn config_check(py: Python<'_>, config: Option<PathBuf>) -> PyResult<Bound<'_, PyAny>> {
    let registry = crate::registry();
    let none = Secrets::default();
    let config = Config::load(config.as_deref(), &registry).py_err(py, &none)?;
    let config = config
        .ok_or_else(|| config_error(py, ops::config::missing_config_message("no config file")))?;
    let value = ops::config::check(&config, &registry).py_err(py, &none)?;
    convert::json_to_py(py, &value)
}

/// Deletes backups outside the retention policy (GFS, as restic) and the debris of
/// failed backups, as `dbseal prune`: the config's `[retention]`, overridden per
/// datastore, overridden by `keep_last`, `keep_daily`… `dry_run=True` deletes nothing.
/// Returns the report (a dict, as `dbseal prune --json`).
#[pyfunction]
#[pyo3(signature = (store=None, *, config=None, **options))]
pub fn prune<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let keywords = keywords_of::<ops::prune::PruneOptions>();
    let map = convert::options(options, &keywords, false, &mut call.secrets)?;
    let opts: ops::prune::PruneOptions = convert::parse(py, "prune", map)?;
    let report = call.run(py, |ctx| async move { ops::prune::prune(ctx, &opts).await })?;
    convert::to_py(py, &report)
}

/// The newest backup, its age and size, and the last verification of every datastore,
/// as `dbseal status` (a list of dicts). Any unhealthy datastore (no backup, older than
/// `max_age`, last verification failed) raises `UnhealthyError` with the list as
/// `.result`. `metrics_file` also writes Prometheus metrics.
#[pyfunction]
#[pyo3(signature = (store=None, *, config=None, **options))]
pub fn status<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let keywords = keywords_of::<ops::status::StatusOptions>();
    let map = convert::options(options, &keywords, false, &mut call.secrets)?;
    let opts: ops::status::StatusOptions = convert::parse(py, "status", map)?;
    let report = call.run(
        py,
        |ctx| async move { ops::status::status(ctx, &opts).await },
    )?;
    check_failure(
        py,
        report.failure(),
        convert::to_py(py, &report)?,
        &call.secrets,
    )
}
