//! `Store`: where backups live.

use std::path::PathBuf;

use backup_core::ops::TrustOptions;
use backup_core::BackupStore;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::py_to_json;
use crate::errors::{config_error, IntoPy, Secrets};
use crate::results::{manifest, py_repr};

/// A store of backups: a local directory (a path or `file:///abs/path`), `memory://`
/// (this process only), `s3://bucket/prefix`, `gs://bucket/prefix` or
/// `az://container/prefix`.
///
/// Keyword options are the object store's (`aws_endpoint`, `aws_allow_http`,
/// `aws_region`, `aws_access_key_id`, `aws_secret_access_key`...); cloud stores also
/// read their usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`). `repr()`
/// shows the URL without credentials and the option names without their values.
#[pyclass(frozen, module = "dbseal")]
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: BackupStore,
    /// The URL and `KEY=VALUE` options it was opened with (options may hold
    /// credentials): what `restore_command` needs to reach it again.
    pub(crate) url: String,
    pub(crate) options: Vec<String>,
    pub(crate) secrets: Secrets,
    /// The signing key and trusted keys (keywords, else `DBSEAL_SIGNING_KEY`…).
    pub(crate) trust: TrustOptions,
}

/// A `store` argument: a `Store`, or a URL/path to open one from.
#[derive(FromPyObject)]
pub enum StoreArg<'py> {
    /// An open store.
    Store(Bound<'py, Store>),
    /// A URL or path.
    Url(PathBuf),
}

/// The store of a call, as the CLI finds it ([`backup_core::ops::store_location`]): the
/// `store` argument, else the configuration's `[store]`, else `$DBSEAL_STORE`, else
/// `./backups`.
pub fn resolve(
    py: Python<'_>,
    store: Option<&StoreArg<'_>>,
    config: Option<&backup_core::ops::Config>,
) -> PyResult<Store> {
    let url = match store {
        Some(StoreArg::Store(s)) => return Ok(s.get().clone()),
        Some(StoreArg::Url(p)) => Some(p.to_string_lossy().into_owned()),
        None => None,
    };
    let (url, options) = backup_core::ops::store_location(url.as_deref(), &[], config);
    let trust = TrustOptions::from_env().or_config(config);
    Store::open(py, url, options, trust)
}

impl Store {
    fn open(
        py: Python<'_>,
        url: String,
        options: Vec<String>,
        trust: TrustOptions,
    ) -> PyResult<Self> {
        let mut secrets = Secrets::default();
        secrets.add_url(&url);
        for (k, v) in options.iter().filter_map(|o| o.split_once('=')) {
            secrets.add_named(k, v);
        }
        let inner = backup_core::ops::open_store(&url, &options)
            .and_then(|s| Ok(s.with_trust(trust.trust()?)))
            .py_err(py, &secrets)?;
        Ok(Store {
            inner,
            url,
            options,
            secrets,
            trust,
        })
    }

    fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl std::future::Future<Output = backup_core::Result<T>> + Send,
    ) -> PyResult<T> {
        crate::runtime::block_on(py, None, || f)?.py_err(py, &self.secrets)
    }
}

#[pymethods]
impl Store {
    /// `signing_key` (a file) signs what is written here; only backups / records signed by
    /// it or `trusted_signers` / `trusted_verifiers` (`RW…` or `.pub` files) are trusted;
    /// each defaults to its `DBSEAL_*` variable. `allow_unsigned=True`: loud, for old ones.
    #[new]
    #[pyo3(signature = (url, /, *, signing_key=None, trusted_signers=None, trusted_verifiers=None, allow_unsigned=false, **options))]
    fn py_new(
        py: Python<'_>,
        url: PathBuf,
        signing_key: Option<PathBuf>,
        trusted_signers: Option<Vec<String>>,
        trusted_verifiers: Option<Vec<String>>,
        allow_unsigned: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let (signers, verifiers) = (trusted_signers, trusted_verifiers);
        let trust = TrustOptions::from_env_or(signing_key, signers, verifiers, allow_unsigned);
        let mut opts = Vec::new();
        for (k, v) in options.into_iter().flat_map(|o| o.iter()) {
            let k: String = k.extract()?;
            let what = format!("store option `{k}` must be a string, a bool or an int");
            let v = match py_to_json(&v)? {
                serde_json::Value::String(s) => s,
                v @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_)) => v.to_string(),
                _ => return Err(config_error(py, what)),
            };
            opts.push(format!("{k}={v}"));
        }
        Store::open(py, url.to_string_lossy().into_owned(), opts, trust)
    }

    /// The store URL, without credentials.
    #[getter]
    fn url(&self) -> &str {
        self.inner.url()
    }

    /// Complete backups (those with a manifest), oldest first; `datastore` limits the
    /// listing to one datastore.
    #[pyo3(signature = (datastore=None))]
    fn list<'py>(
        &self,
        py: Python<'py>,
        datastore: Option<String>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let list = self.run(py, self.inner.list(datastore.as_deref()))?;
        list.iter().map(|m| manifest(py, m)).collect()
    }

    /// The manifest of backup `id` (raises `NotFoundError` if there is none).
    fn manifest<'py>(&self, py: Python<'py>, id: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let id = crate::commands::backup_id(id)?;
        let id = backup_core::ops::parse_id(&id).py_err(py, &self.secrets)?;
        manifest(py, &self.run(py, self.inner.manifest(&id))?)
    }

    /// The newest complete backup (of `datastore`, if given), or `None`.
    #[pyo3(signature = (datastore=None))]
    fn latest<'py>(
        &self,
        py: Python<'py>,
        datastore: Option<String>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.list(py, datastore)?.pop())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let url = py_repr(py, self.inner.url());
        let names: Vec<&str> = self
            .options
            .iter()
            .filter_map(|o| o.split('=').next())
            .collect();
        match names.is_empty() {
            true => format!("Store({url})"),
            false => format!("Store({url}, options=[{}])", names.join(", ")),
        }
    }
}
