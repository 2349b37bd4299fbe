//! The exception hierarchy, chosen by [`ErrorKind`] through one table ([`CLASSES`]).
//!
//! ```text
//! DbsealError(Exception)                     every error dbseal raises (kinds failure, interrupted, internal)
//! ├── ConfigError(DbsealError, ValueError)   invalid arguments, keys, URLs, options
//! ├── NotFoundError                          no such backup, manifest or object
//! ├── ConnectionError(DbsealError, builtins.ConnectionError)
//! ├── VerificationError                      corrupted, truncated or tampered artifact; contents differ
//! ├── DecryptionError                        wrong identity or passphrase
//! ├── VersionMismatchError                   newer manifest format, tool older than the server...
//! ├── RefusedError                           target not empty, production, manifest exists
//! ├── UnhealthyError                         status: a datastore is stale or failed verification
//! └── SetFailedError                         a backup set had a failed member
//! ```
//!
//! Every exception carries `kind` ([`ErrorKind::class`], the CLI's `--json` error class)
//! and `exit_code` ([`ErrorKind::exit_code`], the CLI's exit status); an operation whose
//! failure is itself a result (status, backup sets, `verify_latest`) also attaches it as
//! `result` (the CLI's `--json` document). `dbseal.ConnectionError` is also a
//! `builtins.ConnectionError`; `DbsealConnectionError` is the same class under a name
//! that shadows nothing. Messages are the library's, which hold no secret; every secret
//! a call was given is scrubbed from them once more ([`Secrets`], backup-core's).

use backup_core::ErrorKind;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The one mapping of error kinds to exception classes: kind, class name, a builtin
/// exception it also derives from, doc. Kinds not listed raise `DbsealError` itself.
pub const CLASSES: &[(ErrorKind, &str, Option<&str>, &str)] = &[
    (ErrorKind::Config, "ConfigError", Some("ValueError"), "Invalid arguments, configuration, keys, URLs or options (also a ValueError)."),
    (ErrorKind::NotFound, "NotFoundError", None, "The backup, manifest or object does not exist."),
    (ErrorKind::Connection, "ConnectionError", Some("ConnectionError"), "A server or the store could not be reached, or refused the credentials (also a builtins.ConnectionError)."),
    (ErrorKind::Verification, "VerificationError", None, "An artifact or manifest failed verification: corrupted, truncated or tampered, or its contents differ from the manifest."),
    (ErrorKind::Decryption, "DecryptionError", None, "The artifact could not be decrypted with the given identity or passphrase."),
    (ErrorKind::VersionMismatch, "VersionMismatchError", None, "Versions do not fit: a newer manifest format, a client tool older than the server, a different extension version."),
    (ErrorKind::Refused, "RefusedError", None, "The target refused the operation: not empty (pass replace=True), production without confirmation, a manifest that already exists."),
    (ErrorKind::Unhealthy, "UnhealthyError", None, "status(): a datastore is stale or failed its last verification (`result` holds the report)."),
    (ErrorKind::SetFailed, "SetFailedError", None, "A backup set had a failed member; the others are ordinary backups (`result` holds the set manifest)."),
];

/// The base class and one class per row of [`CLASSES`], created once per interpreter.
struct Classes {
    base: Py<PyType>,
    by_kind: Vec<(ErrorKind, Py<PyType>)>,
}

static EXCEPTIONS: PyOnceLock<Classes> = PyOnceLock::new();

fn new_class(
    py: Python<'_>,
    name: &str,
    doc: &str,
    kind: ErrorKind,
    bases: Vec<Bound<'_, PyAny>>,
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "dbseal")?;
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("kind", kind.class())?;
    namespace.set_item("exit_code", kind.exit_code())?;
    namespace.set_item("result", py.None())?;
    let class = py
        .get_type::<PyType>()
        .call1((name, PyTuple::new(py, bases)?, namespace))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}

fn classes(py: Python<'_>) -> PyResult<&'static Classes> {
    EXCEPTIONS.get_or_try_init(py, || {
        let builtins = py.import("builtins")?;
        let base = new_class(
            py,
            "DbsealError",
            "Base class of every error dbseal raises. `kind` names the class of failure \
             (the CLI's --json error class), `exit_code` the CLI's exit status for it.",
            ErrorKind::Other,
            vec![py.get_type::<PyException>().into_any()],
        )?;
        let mut by_kind = Vec::new();
        for (kind, name, builtin, doc) in CLASSES {
            let mut bases = vec![base.bind(py).clone().into_any()];
            if let Some(b) = builtin {
                bases.push(builtins.getattr(*b)?);
            }
            by_kind.push((*kind, new_class(py, name, doc, *kind, bases)?));
        }
        Ok(Classes { base, by_kind })
    })
}

/// Adds `DbsealError`, the classes of [`CLASSES`] and `DbsealConnectionError` to `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let c = classes(m.py())?;
    m.add("DbsealError", c.base.bind(m.py()))?;
    for ((kind, class), (_, name, _, _)) in c.by_kind.iter().zip(CLASSES) {
        m.add(*name, class.bind(m.py()))?;
        if *kind == ErrorKind::Connection {
            m.add("DbsealConnectionError", class.bind(m.py()))?;
        }
    }
    Ok(())
}

pub use backup_core::secret::Secrets;

/// An exception of the class `kind` maps to, with `message` scrubbed, `kind` and
/// `exit_code` set on the instance.
pub fn raise(py: Python<'_>, kind: ErrorKind, message: &str, secrets: &Secrets) -> PyErr {
    let c = match classes(py) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let class = c
        .by_kind
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&c.base, |(_, class)| class);
    let err = PyErr::from_type(class.bind(py).clone(), (secrets.scrub(message),));
    let value = err.value(py);
    let _ = value.setattr("kind", kind.class());
    let _ = value.setattr("exit_code", kind.exit_code());
    err
}

/// Converts a library error into its Python exception.
pub fn to_py(py: Python<'_>, err: &backup_core::Error, secrets: &Secrets) -> PyErr {
    raise(py, err.kind(), &err.to_string(), secrets)
}

/// A `ConfigError` with `message`.
pub fn config_error(py: Python<'_>, message: impl AsRef<str>) -> PyErr {
    raise(py, ErrorKind::Config, message.as_ref(), &Secrets::default())
}

/// A library result's error as its Python exception (`secrets` scrubbed).
pub trait IntoPy<T> {
    /// Converts the error.
    fn py_err(self, py: Python<'_>, secrets: &Secrets) -> PyResult<T>;
}

impl<T> IntoPy<T> for backup_core::Result<T> {
    fn py_err(self, py: Python<'_>, secrets: &Secrets) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e, secrets))
    }
}
