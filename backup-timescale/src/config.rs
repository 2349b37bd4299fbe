//! Configuration: a TimescaleDB database is reached exactly like a PostgreSQL one.

pub use backup_postgres::{DumpOptions, PostgresConfig};

pub use crate::sink::TimescaleRestoreOptions;
