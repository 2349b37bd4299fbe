#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Configuration: a TimescaleDB database is reached exactly like a PostgreSQL one.

pub use backup_postgres::{DumpOptions, PostgresConfig};

pub use crate::sink::TimescaleRestoreOptions;
