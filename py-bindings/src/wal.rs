//! PostgreSQL's WAL archive and point-in-time recovery, through `backup_postgres::pitr`
//! as the CLI's `wal-push`, `wal-fetch`, `wal-verify` and `restore --pgdata`.

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::ops::ContinuousArchive;
use backup_core::ErrorKind;
use backup_postgres::pitr::{self, PitrOptions, StoreLocation};
use backup_postgres::wal::FetchOutcome;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::commands::{check_failure, keywords_of, take_as, Call};
use crate::convert;
use crate::errors::{config_error, raise};
use crate::keys::{recipient_texts, IdentitiesArg, IdentityArg, OneOrMany, RecipientsArg};
use crate::store::StoreArg;

/// Adds the WAL commands to `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(wal_push, m)?)?;
    m.add_function(wrap_pyfunction!(wal_fetch, m)?)?;
    m.add_function(wrap_pyfunction!(wal_verify, m)?)
}

/// Where the call's store is, as `pitr` wants it (URL and `KEY=VALUE` options).
fn location(store: &crate::store::Store) -> StoreLocation {
    StoreLocation {
        url: store.url.clone(),
        options: store.options.clone(),
        trust: store.trust.clone(),
    }
}

/// The WAL archive of a call: its drills run `dbseal wal-fetch` ($DBSEAL_BIN, else on
/// the `PATH`).
pub fn replaying_archive(store: &crate::store::Store) -> Arc<dyn ContinuousArchive> {
    let dbseal = std::env::var_os("DBSEAL_BIN").map(PathBuf::from);
    pitr::PostgresWalArchive::replaying(location(store), dbseal.or_else(on_path))
}

/// `identity=` as identity files (the WAL commands and `restore_command` read files):
/// paths, or `Identity` objects loaded from a file.
fn identity_files(py: Python<'_>, identity: Option<IdentitiesArg<'_>>) -> PyResult<Vec<PathBuf>> {
    let list = identity.map(OneOrMany::into_vec).unwrap_or_default();
    list.into_iter()
        .map(|i| match i {
            IdentityArg::Path(p) => Ok(p),
            IdentityArg::Identity(id) => id.get().file().ok_or_else(|| {
                config_error(py, "this command reads identity files: save the identity (identity.save(path)) and pass the path")
            }),
        })
        .collect()
}

/// The options struct of a WAL command from its explicit arguments and keywords.
fn wal_options<T: clap::Args + serde::de::DeserializeOwned>(
    py: Python<'_>,
    call: &mut Call,
    what: &str,
    explicit: serde_json::Value,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<T> {
    let mut map = convert::options(options, &keywords_of::<T>(), false, &mut call.secrets)?;
    if let serde_json::Value::Object(e) = explicit {
        map.extend(e.into_iter().filter(|(_, v)| !v.is_null()));
    }
    convert::parse(py, what, map)
}

/// Seals one WAL file into the datastore's WAL archive, as `dbseal wal-push` (the
/// `archive_command`): returns `{"file", "status": "archived" | "already_archived" |
/// "repaired", "key", …}` once the file is durably stored. Different contents under
/// the same name are refused (`RefusedError`).
#[pyfunction]
#[pyo3(signature = (path, store=None, *, recipients=None, **options))]
pub fn wal_push<'py>(
    py: Python<'py>,
    path: PathBuf,
    store: Option<StoreArg<'_>>,
    recipients: Option<RecipientsArg<'_>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), None)?;
    let recipients = recipients
        .map(|r| recipient_texts(py, r, &mut call.secrets))
        .transpose()?;
    let explicit = serde_json::json!({"path": path, "recipients": recipients});
    let opts: pitr::WalPushOptions = wal_options(py, &mut call, "wal_push", explicit, options)?;
    let location = location(&call.store);
    let outcome = call.run(py, |_| pitr::wal_push(&location, &opts))?;
    convert::to_py(py, &outcome)
}

/// Fetches, verifies and writes one archived WAL file, as `dbseal wal-fetch` (the
/// `restore_command`): returns `{"status": "fetched", "file", "bytes"}`. A file that is
/// not archived raises `NotFoundError`; any other failure raises its class with the
/// CLI's exit status for it (255, or 3 with `errors_as_missing=True`) as `exit_code`.
#[pyfunction]
#[pyo3(signature = (file, path, store=None, *, identity=None, **options))]
pub fn wal_fetch<'py>(
    py: Python<'py>,
    file: String,
    path: PathBuf,
    store: Option<StoreArg<'_>>,
    identity: Option<IdentitiesArg<'_>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), None)?;
    let explicit = serde_json::json!({"file": file, "path": path, "identities": identity_files(py, identity)?});
    let opts: pitr::WalFetchOptions = wal_options(py, &mut call, "wal_fetch", explicit, options)?;
    let (location, code) = (location(&call.store), opts.failure_exit_code());
    let datastore = opts.datastore.clone();
    let outcome = call.run(py, |_| pitr::wal_fetch(&location, &opts));
    match outcome {
        Ok(missing @ FetchOutcome::Missing { .. }) => {
            let message = missing.message(&datastore);
            Err(raise(py, ErrorKind::NotFound, &message, &call.secrets))
        }
        Ok(fetched) => convert::to_py(py, &fetched),
        Err(e) => {
            e.value(py).setattr("exit_code", code)?;
            Err(e)
        }
    }
}

/// Checks a datastore's WAL archive, as `dbseal wal-verify`: gaps from each base
/// backup, timelines, foreign or corrupted segments; `level` `metadata`, `stored` or
/// `content` (the default with keys). Returns the report (a dict); problems raise
/// `VerificationError` with the report as `.result`.
#[pyfunction]
#[pyo3(signature = (store=None, *, identity=None, **options))]
pub fn wal_verify<'py>(
    py: Python<'py>,
    store: Option<StoreArg<'_>>,
    identity: Option<IdentitiesArg<'_>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut call = Call::new(py, store.as_ref(), None)?;
    let explicit = serde_json::json!({"identities": identity_files(py, identity)?});
    let opts: pitr::WalVerifyOptions = wal_options(py, &mut call, "wal_verify", explicit, options)?;
    let location = location(&call.store);
    let report = call.run(py, |_| pitr::wal_verify(&location, &opts))?;
    let failure =
        pitr::wal_verify_failure(&report).map(|(k, m)| backup_core::Error::operation(k, m));
    check_failure(py, &report, failure, &call.secrets)
}

/// What `restore(pgdata=…)` takes: the point-in-time keywords, the keys (as files:
/// `restore_command` reads them), `dry_run` and `dbseal_bin`.
pub struct PgdataRestore {
    pitr: PitrOptions,
    keys: backup_core::ops::KeyOptions,
    dry_run: bool,
    dbseal_bin: Option<PathBuf>,
}

/// The point-in-time recovery keywords of `restore` (`pgdata`, `latest`,
/// `target_time`…), when `pgdata` is among them; taken out of `options`.
pub fn pitr_options(
    py: Python<'_>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<PgdataRestore>> {
    let Some(options) = options.filter(|o| o.contains("pgdata").unwrap_or(false)) else {
        return Ok(None);
    };
    let dry_run = take_as(Some(options), "dry_run")?.unwrap_or(false);
    let dbseal_bin = take_as(Some(options), "dbseal_bin")?;
    let keys = backup_core::ops::KeyOptions {
        identities: identity_files(py, take_as(Some(options), "identity")?)?,
        passphrase_file: take_as(Some(options), "passphrase_file")?,
        decryption: None,
    };
    let pitr = crate::commands::parse_options(
        py,
        "restore(pgdata=…)",
        Some(options),
        &mut Default::default(),
    )?;
    Ok(Some(PgdataRestore {
        pitr,
        keys,
        dry_run,
        dbseal_bin,
    }))
}

/// `restore(store, id, pgdata=DIR, latest=True | target_time=… …)`: a PostgreSQL
/// physical backup unpacked into a data directory with the recovery settings, whose
/// `restore_command` runs `dbseal wal-fetch` (`dbseal_bin=`, else `$DBSEAL_BIN`, else
/// `dbseal` on the `PATH`).
pub fn restore_pgdata<'py>(
    py: Python<'py>,
    call: Call,
    id: &str,
    args: PgdataRestore,
) -> PyResult<Bound<'py, PyAny>> {
    let location = location(&call.store);
    let dbseal = || {
        let env = std::env::var_os("DBSEAL_BIN").map(PathBuf::from);
        args.dbseal_bin.or(env).or_else(on_path).ok_or_else(|| {
            backup_core::Error::Config("restore(pgdata=…) writes a restore_command that runs `dbseal wal-fetch`: pass dbseal_bin= (the dbseal binary) or put dbseal on the PATH".into())
        })
    };
    let (pitr, keys, dry_run) = (&args.pitr, &args.keys, args.dry_run);
    let outcome = call.run_undoable(py, |ctx| {
        pitr::restore_backup_into_pgdata(ctx, id, pitr, (keys, &location), dry_run, dbseal)
    })?;
    crate::results::document(py, "RestoreReport", &outcome)
}

/// `dbseal` on the `PATH`, if any.
fn on_path() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("dbseal"))
        .find(|p| p.is_file())
}
