//! `Store`: where backups live.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backup_core::{BackupId, BackupStore};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use crate::errors::{config_error, to_py, Secrets};
use crate::runtime::block_on;
use crate::types::{py_repr, Manifest};

/// A store of backups: a local directory (a path or `file:///abs/path`), `memory://`
/// (this process only), `s3://bucket/prefix`, `gs://bucket/prefix` or
/// `az://container/prefix`.
///
/// Keyword options are the object store's (`aws_endpoint`, `aws_allow_http`,
/// `aws_region`, `aws_access_key_id`, `aws_secret_access_key`...); cloud stores also
/// read their usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`). `repr()`
/// shows the URL without credentials and the option names without their values.
#[pyclass(frozen, module = "dbseal")]
pub struct Store {
    pub(crate) inner: BackupStore,
    option_names: Vec<String>,
    pub(crate) secrets: Secrets,
}

/// A `store` argument: a `Store`, or a URL/path to open one from.
#[derive(FromPyObject)]
pub enum StoreArg<'py> {
    /// An open store.
    Store(Bound<'py, Store>),
    /// A URL or path.
    Url(PathBuf),
}

impl StoreArg<'_> {
    /// The store this argument names, and the secrets its options hold.
    pub fn open(&self, py: Python<'_>) -> PyResult<(BackupStore, Secrets)> {
        match self {
            StoreArg::Store(s) => Ok((s.get().inner.clone(), s.get().secrets.clone())),
            StoreArg::Url(p) => {
                let url = p.to_string_lossy().into_owned();
                let s = Store::open(py, &url, BTreeMap::new())?;
                Ok((s.inner, s.secrets))
            }
        }
    }
}

/// Whether an option name holds a secret value.
fn secret_option(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "password", "token", "key", "sas", "credential"]
        .iter()
        .any(|s| n.contains(s))
        && !n.ends_with("key_id")
}

impl Store {
    fn open(py: Python<'_>, url: &str, options: BTreeMap<String, String>) -> PyResult<Self> {
        let mut secrets = Secrets::new();
        secrets.add_url(url);
        for (k, v) in &options {
            if secret_option(k) {
                secrets.add(v);
            }
        }
        let inner = BackupStore::open(url, &options).map_err(|e| to_py(py, &e, &secrets))?;
        Ok(Store {
            inner,
            option_names: options.into_keys().collect(),
            secrets,
        })
    }
}

/// Parses a backup id argument (a string or a `Manifest`).
pub fn parse_id(py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<BackupId> {
    if let Ok(m) = id.cast::<Manifest>() {
        return Ok(m.get().inner.backup_id.clone());
    }
    let text: String = id.extract().map_err(|_| {
        config_error(
            py,
            "a backup id is a string such as 20261121T020000Z-1a2b3c4d (or a Manifest)",
        )
    })?;
    text.parse::<BackupId>()
        .map_err(|e| config_error(py, e.to_string()))
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (url, /, **options))]
    fn py_new(py: Python<'_>, url: PathBuf, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut opts = BTreeMap::new();
        if let Some(options) = options {
            for (k, v) in options.iter() {
                let k: String = k.extract()?;
                let v = if let Ok(b) = v.cast::<PyBool>() {
                    b.is_true().to_string()
                } else if let Ok(s) = v.extract::<String>() {
                    s
                } else if let Ok(i) = v.extract::<i64>() {
                    i.to_string()
                } else {
                    return Err(config_error(
                        py,
                        format!("store option `{k}` must be a string, a bool or an int"),
                    ));
                };
                opts.insert(k, v);
            }
        }
        Store::open(py, &url.to_string_lossy(), opts)
    }

    /// The store URL, without credentials.
    #[getter]
    fn url(&self) -> &str {
        self.inner.url()
    }

    /// Complete backups (those with a manifest), oldest first; `datastore` limits the
    /// listing to one datastore.
    #[pyo3(signature = (datastore=None))]
    fn list(&self, py: Python<'_>, datastore: Option<String>) -> PyResult<Vec<Manifest>> {
        let store = self.inner.clone();
        let result = block_on(py, async move { store.list(datastore.as_deref()).await })?;
        result
            .map(|v| v.into_iter().map(Manifest::new).collect())
            .map_err(|e| to_py(py, &e, &self.secrets))
    }

    /// The manifest of backup `id` (raises `NotFoundError` if there is none).
    fn manifest(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Manifest> {
        let id = parse_id(py, id)?;
        let store = self.inner.clone();
        let result = block_on(py, async move { store.manifest(&id).await })?;
        result
            .map(Manifest::new)
            .map_err(|e| to_py(py, &e, &self.secrets))
    }

    /// The newest complete backup (of `datastore`, if given), or `None`.
    #[pyo3(signature = (datastore=None))]
    fn latest(&self, py: Python<'_>, datastore: Option<String>) -> PyResult<Option<Manifest>> {
        Ok(self.list(py, datastore)?.pop())
    }

    fn __repr__(&self) -> String {
        if self.option_names.is_empty() {
            format!("Store({})", py_repr(self.inner.url()))
        } else {
            format!(
                "Store({}, options=[{}])",
                py_repr(self.inner.url()),
                self.option_names.join(", ")
            )
        }
    }
}
