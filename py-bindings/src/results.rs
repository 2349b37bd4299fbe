//! The result objects (`Manifest`, `VerifyReport`, `RestoreReport`…) are Python classes
//! over the library's documents (`dbseal/_types.py`); these build them.

use pyo3::prelude::*;
use pyo3::types::PyString;

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("dbseal._types")?.getattr(name)
}

/// A `dbseal.Manifest`, made from the JSON document the store holds.
pub fn manifest<'py>(py: Python<'py>, m: &backup_core::Manifest) -> PyResult<Bound<'py, PyAny>> {
    class(py, "Manifest")?.call1((String::from_utf8_lossy(&m.to_json()),))
}

/// A `dbseal.<class>` (`VerifyReport`, `RestoreReport`) of a document.
pub fn document<'py, T: serde::Serialize>(
    py: Python<'py>,
    class_name: &str,
    doc: &T,
) -> PyResult<Bound<'py, PyAny>> {
    class(py, class_name)?.call1((crate::convert::to_py(py, doc)?,))
}

/// A string as Python's `repr()` shows it.
pub fn py_repr(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map_or_else(|_| format!("{s:?}"), |r| r.to_string())
}
