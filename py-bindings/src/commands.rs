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
use backup_postgres::pitr;
use clap::Args;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::convert::{self, describe, Keyword};
use crate::errors::{config_error, raise, IntoPy, Secrets};
use crate::keys::{decryption, encryption, recipient_texts, IdentitiesArg, RecipientsArg};
use crate::results;
use crate::runtime::block_on;
use crate::store::{resolve, StoreArg};

/// Adds every command to `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),*) => {$( m.add_function(wrap_pyfunction!($f, m)?)?; )*};
    }
    add! { keywords, keygen, backup, backup_command, backup_bytes, backup_file }
    add! { backup_datastores, restore, restore_set, restore_to_file, restore_bytes }
    add! { verify, verify_latest, list_backups, show, config_check, prune, status, drill }
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
    let seal = keywords_of::<ops::backup::SealOptions>;
    let table: BTreeMap<&str, Vec<Keyword>> = [
        ("backup", seal()),
        ("backup_command", seal()),
        ("backup_bytes", seal()),
        ("backup_file", seal()),
        (
            "backup_datastores",
            keywords_of::<ops::backup::DatastoreBackupOptions>(),
        ),
        ("restore", {
            let mut k = keywords_of::<ops::restore::RestoreBackupOptions>();
            k.extend(keywords_of::<pitr::PitrOptions>());
            k
        }),
        ("verify", keywords_of::<ops::verify::VerifyBackupOptions>()),
        ("prune", keywords_of::<ops::prune::PruneOptions>()),
        ("status", keywords_of::<ops::status::StatusOptions>()),
        ("drill", keywords_of::<ops::drill::DrillOptions>()),
        ("wal_push", keywords_of::<pitr::WalPushOptions>()),
        ("wal_fetch", keywords_of::<pitr::WalFetchOptions>()),
        ("wal_verify", keywords_of::<pitr::WalVerifyOptions>()),
    ]
    .into_iter()
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
            .with_archives(vec![crate::wal::replaying_archive(&store)])
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
        block_on(py, None, move || op(ctx))?.py_err(py, &self.secrets)
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
        block_on(py, Some(ctx.cancel.clone()), move || op(ctx))?.py_err(py, &self.secrets)
    }
}

/// Raises the error of a result that is itself a failure (a set with a failed member,
/// an unhealthy status), with the result (the CLI's `--json` document) as `.result`.
pub fn check_failure<'py>(
    py: Python<'py>,
    result: &impl serde::Serialize,
    failure: Option<backup_core::Error>,
    secrets: &Secrets,
) -> PyResult<Bound<'py, PyAny>> {
    let result = convert::to_py(py, result)?;
    match failure {
        None => Ok(result),
        Some(e) => {
            let err = raise(py, e.kind(), &e.to_string(), secrets);
            err.value(py).setattr("result", result)?;
            Err(err)
        }
    }
}

/// Takes the keyword `name` (`None` when absent or `None`) out of `options`.
pub fn take<'py>(
    options: Option<&Bound<'py, PyDict>>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(value) = options.map(|o| o.get_item(name)).transpose()?.flatten() else {
        return Ok(None);
    };
    options.map(|o| o.del_item(name)).transpose()?;
    Ok(Some(value).filter(|v| !v.is_none()))
}

/// [`take`] extracting the value as a `T`.
pub fn take_as<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    options: Option<&Bound<'py, PyDict>>,
    name: &str,
) -> PyResult<Option<T>> {
    take(options, name)?
        .map(|v| v.extract().map_err(Into::into))
        .transpose()
}

/// Parses the keywords of a library options struct (its clap flags with `_` for `-`).
pub fn parse_options<T: Args + serde::de::DeserializeOwned>(
    py: Python<'_>,
    what: &str,
    options: Option<&Bound<'_, PyDict>>,
    secrets: &mut Secrets,
) -> PyResult<T> {
    let map = convert::options(options, &keywords_of::<T>(), false, secrets)?;
    convert::parse(py, what, map)
}

/// The seal keywords of every backup, taken out of `options`: the flags of
/// [`ops::backup::SealOptions`], with `recipients` (keys or `Identity` objects),
/// `passphrase` (a string) and `labels` (a mapping too) as only Python has them.
fn seal(
    py: Python<'_>,
    datastore: String,
    options: Option<&Bound<'_, PyDict>>,
    secrets: &mut Secrets,
) -> PyResult<ops::backup::SealOptions> {
    let recipients: Option<RecipientsArg<'_>> = match take_as(options, "recipients")? {
        None => take_as(options, "recipient")?,
        some => some,
    };
    let passphrase: Option<String> = take_as(options, "passphrase")?;
    // `labels=`: a mapping, or `KEY=VALUE` strings.
    let labels = take(options, "labels")?.or(take(options, "label")?);
    let labels = match labels.map(|l| convert::py_to_json(&l)).transpose()? {
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
            .collect(),
        Some(list) => serde_json::from_value(list)
            .map_err(|_| config_error(py, "labels= takes a mapping or KEY=VALUE strings"))?,
        None => Vec::new(),
    };
    let keywords = keywords_of::<ops::backup::SealOptions>();
    let own = PyDict::new(py);
    for k in &keywords {
        if let Some(v) = take(options, &k.name)? {
            own.set_item(&k.name, v)?;
        }
    }
    let own = convert::options(Some(&own), &keywords, false, secrets)?;
    let mut seal: ops::backup::SealOptions = convert::parse(py, "backup", own)?;
    seal.datastore = datastore;
    seal.encryption = encryption(py, recipients, passphrase, secrets)?;
    seal.labels = labels;
    Ok(seal)
}

/// Generates keys like `dbseal keygen -o OUTPUT`: the identity at `output` and a signing
/// key beside it (`OUTPUT.minisign.key`, both 0600, never overwritten); returns
/// `{"recipient", "identity_file", "signing_public_key", "signing_key_file", ...}`.
#[pyfunction]
pub fn keygen(py: Python<'_>, output: PathBuf) -> PyResult<Bound<'_, PyAny>> {
    let keys = backup_core::keys::generate_key_files(&output).py_err(py, &Secrets::default())?;
    convert::to_py(py, &keys)
}

/// `url` with `user`/`password` in its user-info (see
/// [`backup_core::secret::url_with_credentials`]); both are added to `secrets`.
fn with_credentials(
    py: Python<'_>,
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    secrets: &mut Secrets,
) -> PyResult<Option<String>> {
    if user.is_none() && password.is_none() {
        return Ok(url);
    }
    let url = url.ok_or_else(|| config_error(py, "user= and password= need the server's url"))?;
    password.iter().for_each(|p| secrets.add(p));
    let url = backup_core::secret::url_with_credentials(&url, user.as_deref(), password.as_deref())
        .map_err(|e| config_error(py, e))?;
    secrets.add_url(&url);
    Ok(Some(url))
}

/// Backs up a database of `kind` through its driver, as `dbseal backup <kind>`:
/// `**options` are the seal keywords (`recipients`, `passphrase`, `passphrase_file`,
/// `zstd_level`, `zstd_workers`, `labels`) and the flags of `dbseal backup <kind>
/// --help` (`dbseal.drivers()` lists them; `schemas` for `schema` and other plurals of
/// repeatable flags work too). `user`/`password` go into the URL's user-info when the
/// driver has no such option. `dbseal.backup_<kind>(url, store, …)` is this with
/// `kind` filled in.
#[pyfunction]
#[pyo3(signature = (kind, url=None, store=None, *, datastore, user=None, password=None, username=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn backup<'py>(
    py: Python<'py>,
    kind: &str,
    url: Option<String>,
    store: Option<StoreArg<'_>>,
    datastore: String,
    user: Option<String>,
    password: Option<String>,
    username: Option<String>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let seal = seal(py, datastore, options, &mut call.secrets)?;
    let driver = call
        .ctx
        .registry
        .driver(kind)
        .py_err(py, &call.secrets)?
        .clone();
    let known = describe(&driver.backup_args(clap::Command::new(driver.kind())));
    let user = user.or(username);
    let (option_user, url_user) = match known.iter().any(|k| k.name == "user") {
        true => (user, None),
        false => (None, user),
    };
    let url = with_credentials(py, url, url_user, password, &mut call.secrets)?;
    let mut map = convert::options(options, &known, true, &mut call.secrets)?;
    for (key, value) in [("url", url), ("user", option_user)] {
        if let Some(v) = value {
            call.secrets.add_url(&v);
            map.insert(key.into(), Value::String(v));
        }
    }
    let options = DriverOptions(map);
    let kind = driver.kind();
    let manifest = call.run_undoable(py, |ctx| {
        ops::backup::backup_with_driver(ctx, kind, &options, &seal)
    })?;
    results::manifest(py, &manifest)
}

fn format_reader(py: Python<'_>, format: &str) -> PyResult<Arc<dyn FormatReader>> {
    crate::registry().formats().get(format).ok_or_else(|| {
        config_error(py, format!("unknown stream format `{format}`: use raw or a format a database module reads (pgdump, rdb, graph...)"))
    })
}

/// A backup of the stream `source` makes, sealed as the seal keywords of `options` say
/// (any other keyword is refused).
fn backup_source<'py>(
    py: Python<'py>,
    (store, datastore, config): (Option<StoreArg<'_>>, String, Option<PathBuf>),
    options: Option<&Bound<'_, PyDict>>,
    source: impl FnOnce(&mut Secrets) -> PyResult<Box<dyn Source>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let seal = seal(py, datastore, options, &mut call.secrets)?;
    if let Some(k) = options.and_then(|o| o.keys().iter().next()) {
        return Err(config_error(py, format!("backup: unknown keyword `{k}`")));
    }
    let mut source = source(&mut call.secrets)?;
    let manifest = call.run_undoable(py, |ctx| {
        ops::backup::backup_source(ctx, source.as_mut(), &seal)
    })?;
    results::manifest(py, &manifest)
}

/// Backs up the standard output of a command, as `dbseal backup command -- ARGV`. A
/// non-zero exit fails the backup and no manifest is written. `env` adds environment
/// variables (the place for passwords: never argv); `format` declares the output's
/// format so content verification can parse it (default `raw`). `**options`: the seal
/// keywords of `backup`.
#[pyfunction]
#[pyo3(signature = (argv, store=None, *, datastore, env=None, format="raw", config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn backup_command<'py>(
    py: Python<'py>,
    argv: Vec<String>,
    store: Option<StoreArg<'_>>,
    datastore: String,
    env: Option<BTreeMap<String, String>>,
    format: &str,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    backup_source(py, (store, datastore, config), options, |secrets| {
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
/// For large data prefer `backup_file`. `**options`: the seal keywords of `backup`.
#[pyfunction]
#[pyo3(signature = (data, store=None, *, datastore, format="raw", config=None, **options))]
pub fn backup_bytes<'py>(
    py: Python<'py>,
    data: Vec<u8>,
    store: Option<StoreArg<'_>>,
    datastore: String,
    format: &str,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    backup_source(py, (store, datastore, config), options, |_| {
        let source = ReaderSource::new(std::io::Cursor::new(data), "bytes");
        Ok(Box::new(source.with_format(format_reader(py, format)?)))
    })
}

/// Backs up a file, streamed (kind `file`): `dbseal backup stdin < path`. `**options`:
/// the seal keywords of `backup`.
#[pyfunction]
#[pyo3(signature = (path, store=None, *, datastore, format="raw", config=None, **options))]
pub fn backup_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    store: Option<StoreArg<'_>>,
    datastore: String,
    format: &str,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    backup_source(py, (store, datastore, config), options, |_| {
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
    let mut opts: ops::backup::DatastoreBackupOptions =
        parse_options(py, "backup_datastores", options, &mut call.secrets)?;
    if let Some(r) = recipients {
        opts.recipients = recipient_texts(py, r, &mut call.secrets)?;
    }
    let result = call.run_undoable(py, |ctx| ops::backup::backup_datastores(ctx, &opts))?;
    match result {
        ops::backup::DatastoresBackup::Single(m) => results::manifest(py, &m),
        ops::backup::DatastoresBackup::Set(set) => {
            check_failure(py, &set, set.failure(), &call.secrets)
        }
    }
}

/// The decryption keywords, taken out of `options`: `identity` (`Identity` objects or
/// identity files, one or a sequence), `passphrase` (a string), `passphrase_file`.
fn keys(
    py: Python<'_>,
    options: Option<&Bound<'_, PyDict>>,
    secrets: &mut Secrets,
) -> PyResult<ops::KeyOptions> {
    let identity: Option<IdentitiesArg<'_>> = take_as(options, "identity")?;
    let passphrase: Option<String> = take_as(options, "passphrase")?;
    let passphrase_file = take_as(options, "passphrase_file")?;
    Ok(ops::KeyOptions {
        decryption: decryption(py, identity, passphrase, secrets)?,
        passphrase_file,
        ..Default::default()
    })
}

/// The restore keywords as `RestoreBackupOptions`: its own flags, and the target's
/// (`RestoreTarget`: `url`, `replace`, `create_db`, `schema`, `db`, `match`…). With a
/// URL, `user` and `password` go into it, so a safety backup of the target reaches it
/// with them too; without (a configured datastore), into the target.
fn restore_options(
    py: Python<'_>,
    options: Option<&Bound<'_, PyDict>>,
    target_url: Option<String>,
    (user, password): (Option<String>, Option<String>),
    secrets: &mut Secrets,
) -> PyResult<ops::restore::RestoreBackupOptions> {
    let keys = keys(py, options, secrets)?;
    let target_keys = keywords_of::<backup_core::RestoreTarget>();
    let map = convert::options(
        options,
        &keywords_of::<ops::restore::RestoreBackupOptions>(),
        false,
        secrets,
    )?;
    let (mut own, mut target) = (Map::new(), Map::new());
    for (k, v) in map {
        match target_keys.iter().any(|t| t.name == k) {
            true => target.insert(k.replace('_', "-"), v),
            false => own.insert(k, v),
        };
    }
    let (user, password) = match target_url {
        Some(url) => {
            let url = with_credentials(py, Some(url), user, password, secrets)?;
            target.insert("url".into(), Value::from(url));
            (None, None)
        }
        None => (user, password),
    };
    password.iter().for_each(|p| secrets.add(p));
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
/// `dbseal restore --dry-run --json`). Keys: `identity`, `passphrase`,
/// `passphrase_file`. Target keywords are those of `dbseal restore --help`:
/// `create_db`, `schema`/`schemas`, `table`, `role`, `no_owner`,
/// `allow_version_mismatch`, `db`/`dbs` (`"0"` or `"0:5"`), `match`, `database`,
/// `to_rdb`, `pg_bin_dir`… With `pgdata=`, a PostgreSQL physical backup is restored
/// into that data directory for point-in-time recovery (`latest=True`,
/// `target_time=…`). A failed, corrupted or interrupted restore leaves the target as
/// it was.
#[pyfunction]
#[pyo3(signature = (store, id, target_url=None, *, user=None, password=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn restore<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    target_url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let id = backup_id(id)?;
    let mut call = Call::new(py, store.as_ref(), config)?;
    if let Some(pitr) = crate::wal::pitr_options(py, options)? {
        return crate::wal::restore_pgdata(py, call, &id, pitr);
    }
    let opts = restore_options(py, options, target_url, (user, password), &mut call.secrets)?;
    let result = call.run_undoable(py, |ctx| ops::restore::restore_backup(ctx, &id, &opts))?;
    results::document(py, "RestoreReport", &result)
}

/// Restores every member of a backup set into its configured datastore, as `dbseal
/// restore --set SET_ID`; every member is resolved, checked and confirmed before any
/// target is touched. Keywords as `restore`'s.
#[pyfunction]
#[pyo3(signature = (store, set_id, *, config=None, **options))]
pub fn restore_set<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    set_id: String,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let opts = restore_options(py, options, None, (None, None), &mut call.secrets)?;
    let result = call.run_undoable(py, |ctx| ops::restore::restore_set(ctx, &set_id, &opts))?;
    convert::to_py(py, &result)
}

/// A backup id argument: a string or a `Manifest`.
pub fn backup_id(id: &Bound<'_, PyAny>) -> PyResult<String> {
    let what = "a backup id is a string such as 20261121T020000Z-1a2b3c4d (or a Manifest)";
    match convert::py_to_json(id)? {
        Value::String(s) => Ok(s),
        _ => Err(config_error(id.py(), what)),
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
    };
    let cfg = call.ctx.config.as_deref();
    let options = keys.or_config(cfg).restore_options(None);
    let options = options.py_err(py, &call.secrets)?;
    if options.decryption.is_none() {
        let message = "restoring decrypts the artifact: pass identity=… or passphrase=…";
        return Err(config_error(py, message));
    }
    let id = backup_id(id)?;
    let manifest = call.run(py, |ctx| ops::show(ctx, &id))?;
    Ok((manifest, options))
}

/// Restores the plaintext native stream of a backup's artifact (the pg_dump archive,
/// the RDB file, the command's output…) into the file `path`, as `dbseal restore ID
/// --output PATH`. The file appears only when the whole artifact was checked (mode
/// 0600); on any failure nothing is left behind. An existing file is refused unless
/// `overwrite=True`.
#[pyfunction]
#[pyo3(signature = (store, id, path, *, identity=None, passphrase=None, artifact="data", overwrite=false))]
#[allow(clippy::too_many_arguments)]
pub fn restore_to_file<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    path: PathBuf,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    artifact: &str,
    overwrite: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), None)?;
    if !overwrite && path.exists() {
        let message = format!(
            "{} already exists: pass overwrite=True to replace it",
            path.display()
        );
        return Err(raise(py, ErrorKind::Refused, &message, &call.secrets));
    }
    let (manifest, options) = decrypting(py, &mut call, id, identity, passphrase)?;
    let (artifact, target) = (artifact.to_string(), path.clone());
    let backup_id = manifest.backup_id.to_string();
    let report = call.run_undoable(py, |ctx| {
        ops::restore::restore_to_file(ctx, &manifest, &artifact, &target, overwrite, &options)
    })?;
    let doc = serde_json::json!({
        "backup_id": backup_id,
        "target": path.display().to_string(),
        "bytes": report.bytes,
        "summary": report.summary,
    });
    results::document(py, "RestoreReport", &doc)
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
        let mut sink = WriterSink::new(&mut out);
        backup_core::restore(&ctx.store, &manifest, artifact, &mut sink, &options).await?;
        Ok(out)
    })?;
    Ok(PyBytes::new(py, &data))
}

/// The verification keywords as [`ops::verify::VerifyBackupOptions`] (`level`: 1, 2, 3
/// or `stored`, `content`, `restore`); `user`, `password` and `database` complete the
/// `restore_to` URL (its user-info and path).
fn verify_options(
    py: Python<'_>,
    call: &mut Call,
    (user, password, database): (Option<String>, Option<String>, Option<String>),
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<ops::verify::VerifyBackupOptions> {
    let keys = keys(py, options, &mut call.secrets)?;
    let restore_to: Option<String> = take_as(options, "restore_to")?;
    let mut restore_to = with_credentials(py, restore_to, user, password, &mut call.secrets)?;
    if let (Some(url), Some(db)) = (&restore_to, database) {
        let mut u =
            url::Url::parse(url).map_err(|_| config_error(py, "database= needs restore_to=URL"))?;
        u.set_path(&db);
        restore_to = Some(u.to_string());
    }
    let mut opts: ops::verify::VerifyBackupOptions =
        parse_options(py, "verify", options, &mut call.secrets)?;
    if let Some(url) = restore_to {
        call.secrets.add_url(&url);
        opts.restore_to = Some(url);
    }
    opts.keys = keys;
    Ok(opts)
}

/// Verifies a backup, as `dbseal verify ID`, and writes the verification record
/// (`verified.json`, read by `status` and `prune`; `no_record=True` skips it). Levels:
/// 1 `stored` (size and SHA-256 of the stored objects, no key needed), 2 `content`
/// (decrypt, decompress, parse, compare with the manifest), 3 `restore` (restore into
/// a scratch database on the server `restore_to` and compare its live contents). The
/// default is `restore` with `restore_to`, `content` with keys (`identity`,
/// `passphrase`, `passphrase_file`), else `stored`. Any failure raises
/// (`VerificationError`, `DecryptionError`…).
#[pyfunction]
#[pyo3(signature = (store, id, *, user=None, password=None, database=None, config=None, **options))]
#[allow(clippy::too_many_arguments)]
pub fn verify<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let id = backup_id(id)?;
    let mut call = Call::new(py, store.as_ref(), config)?;
    let opts = verify_options(py, &mut call, (user, password, database), options)?;
    let result = call.run_undoable(py, |ctx| ops::verify::verify_backup(ctx, &id, &opts))?;
    results::document(py, "VerifyReport", &result)
}

/// Verifies the newest backup of each datastore (in the store and the config file), as
/// `dbseal verify --latest`, recording each verdict; returns one dict per datastore. A
/// failed datastore raises (the first failure's class) with the list as `.result`.
#[pyfunction]
#[pyo3(signature = (store=None, *, datastores=None, config=None, **options))]
pub fn verify_latest<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    datastores: Option<Vec<String>>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let mut names = datastores.unwrap_or_default();
    names.extend(take_as::<String>(options, "datastore")?);
    let opts = verify_options(py, &mut call, (None, None, None), options)?;
    let result = call.run_undoable(py, |ctx| ops::verify::verify_latest(ctx, &names, &opts))?;
    check_failure(py, &result, result.failure(), &call.secrets)
}

/// The complete backups of the store (of one datastore), oldest first, as `dbseal
/// list`; unreadable manifests are skipped with a warning.
#[pyfunction]
#[pyo3(signature = (store=None, datastore=None, *, config=None))]
pub fn list_backups<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    datastore: Option<String>,
    config: Option<PathBuf>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let call = Call::new(py, store.as_ref(), config)?;
    let list = call.run(py, |ctx| ops::list(ctx, datastore.as_deref()))?;
    list.iter().map(|m| results::manifest(py, m)).collect()
}

/// One backup's manifest, as `dbseal show ID` (raises `NotFoundError` if there is none).
#[pyfunction]
#[pyo3(signature = (store, id, *, config=None))]
pub fn show<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    id: &Bound<'_, PyAny>,
    config: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let id = backup_id(id)?;
    let call = Call::new(py, store.as_ref(), config)?;
    let manifest = call.run(py, |ctx| ops::show(ctx, &id))?;
    results::manifest(py, &manifest)
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
    let opts: ops::prune::PruneOptions = parse_options(py, "prune", options, &mut call.secrets)?;
    let report = call.run(py, |ctx| ops::prune::prune(ctx, &opts))?;
    convert::to_py(py, &report)
}

/// Every datastore's newest backup, age, size and last verification, and the store's
/// usage and key expiry, as `dbseal status` (`{"datastores": [...], "store": {...}}`).
/// An unhealthy datastore or a store alert raises `UnhealthyError` with the report as
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
    let opts: ops::status::StatusOptions = parse_options(py, "status", options, &mut call.secrets)?;
    let report = call.run(py, |ctx| ops::status::status(ctx, &opts))?;
    check_failure(py, &report, report.failure(), &call.secrets)
}

/// A disaster-recovery drill, as `dbseal drill`: restores the newest backup of each
/// datastore into its scratch target (`scratch_url`, or `restore_to`), verifies it at
/// level 3 and measures RTO and RPO against the datastore's `rto` / `rpo`. Returns one
/// dict per datastore; a failed restore or a missed objective raises (the failed
/// verification's class, else `UnhealthyError`) with the list as `.result`.
#[pyfunction]
#[pyo3(signature = (store=None, *, config=None, **options))]
pub fn drill<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    config: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), config)?;
    let keys = keys(py, options, &mut call.secrets)?;
    let mut opts: ops::drill::DrillOptions =
        parse_options(py, "drill", options, &mut call.secrets)?;
    opts.keys = keys;
    opts.restore_to.iter().for_each(|u| call.secrets.add_url(u));
    let report = call.run_undoable(py, |ctx| ops::drill::drill(ctx, &opts))?;
    check_failure(py, &report, report.failure(), &call.secrets)
}
