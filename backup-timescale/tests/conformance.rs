//! The driver conformance suite (`backup_core::conformance::driver`) on
//! [`TimescaleDriver`], against the real PostgreSQL `scripts/services.sh` starts.
//!
//! TimescaleDB is in no package registry: when the server cannot run it (no
//! `timescaledb.control`, or not preloaded), every case skips with a message saying so,
//! as the other backup-timescale tests do.

#[path = "../../backup-postgres/tests/pg_fixture/mod.rs"]
mod pg_fixture;

use backup_core::conformance::driver;
use backup_timescale::TimescaleDriver;
use pg_fixture::{timescale_available, PgFixture};

/// TimescaleDB's own schemas: their contents are seen through the hypertables.
const INTERNAL_SCHEMAS: &[&str] = &[
    "_timescaledb_internal",
    "_timescaledb_catalog",
    "_timescaledb_config",
    "_timescaledb_cache",
    "_timescaledb_functions",
    "_timescaledb_debug",
    "timescaledb_information",
    "timescaledb_experimental",
];

/// A hypertable of 10,000 rows over a week of daily chunks.
fn hypertable_sql(variant: u32) -> String {
    format!(
        "CREATE EXTENSION IF NOT EXISTS timescaledb;
         CREATE TABLE readings(ts timestamptz NOT NULL, sensor int NOT NULL, value double precision);
         SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
         CREATE INDEX readings_by_sensor ON readings(sensor, ts DESC);
         INSERT INTO readings
           SELECT timestamptz '2026-01-01' + g * interval '1 minute', g % 50, g * 0.5 + {variant}
           FROM generate_series(0, 9999) g;"
    )
}

const HYPERTABLES: &str = "SELECT format('hypertable %s.%s dimensions %s chunks %s', hypertable_schema, \
     hypertable_name, num_dimensions, num_chunks) FROM timescaledb_information.hypertables ORDER BY 1;";

fn fixture() -> PgFixture {
    PgFixture::new("conf_ts", hypertable_sql, INTERNAL_SCHEMAS, HYPERTABLES)
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if !timescale_available() {
                return;
            }
            driver::$case(&TimescaleDriver, &fixture()).await;
        }
    )*};
}

cases!(
    round_trip,
    non_empty_target_is_refused,
    corrupted_artifact,
    truncated_artifact,
    wrong_key,
    cancelled_restore,
    cancelled_backup,
    verify_restore,
);
