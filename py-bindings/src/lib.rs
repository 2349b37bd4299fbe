//! # dbseal-py
//!
//! The Python module `dbseal._dbseal`, re-exported by the `dbseal` package
//! (`py-bindings/python/dbseal`). It only translates: keyword arguments in, a call of
//! the library code the CLI runs too (the drivers of one [`registry`], the operations
//! of `backup_core::ops`, backup-postgres's WAL archive), typed Python objects or the
//! CLI's `--json` documents out.
//!
//! - Every blocking call releases the GIL and can be interrupted with Ctrl-C
//!   ([`runtime`]); writes into databases are cancelled through the library's token.
//! - Errors become one exception hierarchy rooted in `dbseal.DbsealError`, chosen by
//!   [`backup_core::ErrorKind`] ([`errors`]); no message or `repr` carries a secret.
//! - The keywords of a command are its CLI flags with `_` for `-`, read from the clap
//!   arguments the library declares ([`convert`]); `dbseal.backup_<kind>` are made in
//!   `__init__.py` from [`kinds`], their stubs generated from [`drivers`].

pub mod commands;
pub mod convert;
pub mod errors;
pub mod keys;
pub mod results;
pub mod runtime;
pub mod store;
pub mod wal;

use backup_core::Registry;
use pyo3::prelude::*;

/// The drivers this module knows: the one place they are composed.
pub fn registry() -> Registry {
    Registry::new()
        .with(backup_postgres::PostgresDriver)
        .with(backup_timescale::TimescaleDriver)
        .with(backup_redis::RedisDriver)
        .with(backup_neo4j::Neo4jDriver)
}

/// The datastore kinds of the registry, sorted (`dbseal.backup_<kind>` exist for each).
#[pyfunction]
pub fn kinds() -> Vec<&'static str> {
    registry().kinds().collect()
}

/// Every driver: `kind`, `about`, `url_schemes`, `capabilities` and the `options` its
/// `backup_<kind>` takes (the flags of `dbseal backup <kind>`: `name`, `flag`, `type`,
/// `shape`, `default`, `help`).
#[pyfunction]
pub fn drivers(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let list: Vec<serde_json::Value> = registry()
        .drivers()
        .map(|d| {
            serde_json::json!({
                "kind": d.kind(),
                "about": d.about(),
                "url_schemes": d.url_schemes(),
                "capabilities": d.capabilities(),
                "options": convert::describe(&d.backup_args(clap::Command::new(d.kind()))),
            })
        })
        .collect();
    convert::to_py(py, &list)
}

/// The `dbseal._dbseal` extension module.
#[pymodule]
#[pyo3(name = "_dbseal")]
fn dbseal_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<store::Store>()?;
    m.add_class::<keys::Identity>()?;
    m.add_function(wrap_pyfunction!(kinds, m)?)?;
    m.add_function(wrap_pyfunction!(drivers, m)?)?;
    m.add_function(wrap_pyfunction!(keys::generate_identity, m)?)?;
    runtime::register_fork_hook(m.py())?;
    commands::register(m)
}
