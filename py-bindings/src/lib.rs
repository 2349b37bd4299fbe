//! # dbseal-py
//!
//! The Python module `dbseal._dbseal`, re-exported by the `dbseal` package
//! (`py-bindings/python/dbseal`). It only translates: Python arguments in, a
//! backup-core or database-crate call, typed Python objects out. The CLI and this module
//! run exactly the same library code.
//!
//! - Every blocking call releases the GIL and can be interrupted with Ctrl-C
//!   ([`runtime`]).
//! - Errors become one exception hierarchy rooted in `dbseal.DbsealError`, chosen by
//!   [`backup_core::ErrorKind`] ([`errors`]); no message or `repr` carries a secret.
//! - Results are typed, immutable objects with `.to_dict()` ([`types`]).
//!
//! The API is described in `py-bindings/README.md` and typed in
//! `python/dbseal/_dbseal.pyi`.

pub mod db;
pub mod errors;
pub mod keys;
pub mod ops;
pub mod runtime;
pub mod store;
pub mod types;

use pyo3::prelude::*;

/// The `dbseal._dbseal` extension module.
#[pymodule]
#[pyo3(name = "_dbseal")]
fn dbseal_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let exc = errors::exceptions(py)?;
    m.add("DbsealError", exc.base.bind(py))?;
    m.add("ConfigError", exc.config.bind(py))?;
    m.add("NotFoundError", exc.not_found.bind(py))?;
    m.add("ConnectionError", exc.connection.bind(py))?;
    m.add("DbsealConnectionError", exc.connection.bind(py))?;
    m.add("VerificationError", exc.verification.bind(py))?;
    m.add("DecryptionError", exc.decryption.bind(py))?;
    m.add("VersionMismatchError", exc.version_mismatch.bind(py))?;
    m.add("RefusedError", exc.refused.bind(py))?;

    m.add_class::<store::Store>()?;
    m.add_class::<keys::Identity>()?;
    m.add_class::<types::Manifest>()?;
    m.add_class::<types::Artifact>()?;
    m.add_class::<types::Contents>()?;
    m.add_class::<types::VerifyReport>()?;
    m.add_class::<types::LevelReport>()?;
    m.add_class::<types::RestoreReport>()?;

    m.add_function(wrap_pyfunction!(keys::generate_identity, m)?)?;
    m.add_function(wrap_pyfunction!(ops::backup_command, m)?)?;
    m.add_function(wrap_pyfunction!(ops::backup_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(ops::backup_file, m)?)?;
    m.add_function(wrap_pyfunction!(db::py_backup_postgres, m)?)?;
    m.add_function(wrap_pyfunction!(db::py_backup_timescale, m)?)?;
    m.add_function(wrap_pyfunction!(db::py_backup_redis, m)?)?;
    m.add_function(wrap_pyfunction!(db::py_backup_neo4j, m)?)?;
    m.add_function(wrap_pyfunction!(ops::verify, m)?)?;
    m.add_function(wrap_pyfunction!(ops::restore, m)?)?;
    m.add_function(wrap_pyfunction!(ops::restore_to_file, m)?)?;
    m.add_function(wrap_pyfunction!(ops::restore_bytes, m)?)?;
    Ok(())
}
