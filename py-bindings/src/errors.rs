//! Library errors as Python exceptions. The classes are `dbseal/_errors.py`'s, one per
//! [`ErrorKind`] (by [`ErrorKind::class`]); [`register`] gives each class the CLI's exit
//! status for its kind ([`ErrorKind::exit_code`], the one table), and [`raise`] makes
//! the exception of a kind, its message scrubbed of every secret the call was given
//! ([`Secrets`], backup-core's), with `kind` and `exit_code` on the instance.

use backup_core::ErrorKind;
use pyo3::prelude::*;

pub use backup_core::secret::Secrets;

/// Sets `exit_code` on each exception class from the library's table (and `kind` on
/// `DbsealError`, which stands for every kind without a class of its own).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let errors = m.py().import("dbseal._errors")?;
    let base = errors.getattr("DbsealError")?;
    base.setattr("kind", ErrorKind::Other.class())?;
    base.setattr("exit_code", ErrorKind::Other.exit_code())?;
    let classes = errors.getattr("_CLASSES")?;
    for kind in ErrorKind::ALL {
        if let Ok(class) = classes.get_item(kind.class()) {
            class.setattr("exit_code", kind.exit_code())?;
        }
    }
    Ok(())
}

/// An exception of the class `kind` maps to, with `message` scrubbed, `kind` and
/// `exit_code` set on the instance.
pub fn raise(py: Python<'_>, kind: ErrorKind, message: &str, secrets: &Secrets) -> PyErr {
    let error = py.import("dbseal._errors").and_then(|e| {
        e.call_method1(
            "_error",
            (kind.class(), kind.exit_code(), secrets.scrub(message)),
        )
    });
    match error {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
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
