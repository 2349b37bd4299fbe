//! What a TimescaleDB backup records besides the pg_dump archive.
//!
//! The artifact itself is a plain pg_dump custom archive (read by
//! [`backup_postgres::PgDumpFormat`], which counts rows per table — per *chunk* for
//! hypertables). [`TimescaleFacts`] adds what a restore and a level-3 verification need,
//! stored in the manifest as `source.timescaledb`: the extension version, the PostgreSQL
//! version, every hypertable (dimensions, chunks, compression, row count), continuous
//! aggregates and jobs.

use serde::{Deserialize, Serialize};

use crate::error::TsResult;
use backup_postgres::Connection;

pub use backup_postgres::PgDumpFormat;

/// The manifest key (in `source`) under which [`TimescaleFacts`] are stored.
pub const FACTS_KEY: &str = "timescaledb";

/// TimescaleDB facts of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimescaleFacts {
    /// `extversion` of the timescaledb extension.
    pub version: String,
    /// `server_version_num` of the PostgreSQL server.
    pub postgres_version_num: u32,
    /// Every hypertable.
    pub hypertables: Vec<Hypertable>,
    /// Continuous aggregates (`schema.view`).
    #[serde(default)]
    pub continuous_aggregates: Vec<String>,
    /// Background jobs (policies), one line each.
    #[serde(default)]
    pub jobs: Vec<Job>,
}

/// One hypertable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hypertable {
    /// `schema.table`.
    pub name: String,
    /// Its dimensions: `column (time, interval)` / `column (space, N partitions)`.
    pub dimensions: Vec<String>,
    /// Number of chunks.
    pub chunks: u64,
    /// Number of compressed chunks.
    pub compressed_chunks: u64,
    /// Whether compression is enabled.
    pub compression_enabled: bool,
    /// `count(*)` just before the dump (the dump's own snapshot may see later commits on
    /// a busy server; on an idle one they are equal).
    pub rows: u64,
}

/// A TimescaleDB background job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job id on the source.
    pub id: i32,
    /// `proc_schema.proc_name` (e.g. `_timescaledb_functions.policy_retention`).
    pub proc: String,
    /// The hypertable it works on, if any.
    pub hypertable: Option<String>,
    /// Its schedule interval.
    pub schedule_interval: String,
}

impl TimescaleFacts {
    /// Reads the facts from a manifest's `source` section.
    pub fn from_manifest(manifest: &backup_core::Manifest) -> Option<Self> {
        manifest
            .source
            .get(FACTS_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// The installed timescaledb version in the database `conn` names, if any.
pub async fn installed_version(conn: &Connection) -> TsResult<Option<String>> {
    let client = conn.connect().await?;
    let row = client
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await
        .map_err(|e| conn.query_error("reading the timescaledb version", e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Reads the TimescaleDB facts of the database `conn` names (which has the extension).
pub async fn read_facts(conn: &Connection, version: String) -> TsResult<TimescaleFacts> {
    let client = conn.connect().await?;
    let q = |what: &'static str| move |e| conn.query_error(what, e);
    let num: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(q("reading the server version"))?
        .get(0);
    let rows = client
        .query(
            "SELECT hypertable_schema::text, hypertable_name::text, num_chunks::int8, compression_enabled
               FROM timescaledb_information.hypertables ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(q("listing hypertables"))?;
    let mut hypertables = Vec::new();
    for r in rows {
        let (schema, table): (String, String) = (r.get(0), r.get(1));
        let dims = client
            .query(
                "SELECT column_name::text, dimension_type::text, coalesce(time_interval::text, integer_interval::text, ''), coalesce(num_partitions, 0)::int4
                   FROM timescaledb_information.dimensions WHERE hypertable_schema = $1 AND hypertable_name = $2 ORDER BY dimension_number",
                &[&schema, &table],
            )
            .await
            .map_err(q("listing dimensions"))?
            .iter()
            .map(|d| {
                let (col, kind, interval, parts): (String, String, String, i32) = (d.get(0), d.get(1), d.get(2), d.get(3));
                if kind.eq_ignore_ascii_case("time") {
                    format!("{col} (time, {interval})")
                } else {
                    format!("{col} (space, {parts} partitions)")
                }
            })
            .collect();
        let compressed: i64 = client
            .query_one(
                "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = $1 AND hypertable_name = $2 AND is_compressed",
                &[&schema, &table],
            )
            .await
            .map_err(q("counting compressed chunks"))?
            .get(0);
        let count: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}.{}",
                    backup_postgres::config::quote_ident(&schema),
                    backup_postgres::config::quote_ident(&table)
                ),
                &[],
            )
            .await
            .map_err(q("counting hypertable rows"))?
            .get(0);
        hypertables.push(Hypertable {
            name: format!("{schema}.{table}"),
            dimensions: dims,
            chunks: r.get::<_, i64>(2).max(0) as u64,
            compressed_chunks: compressed.max(0) as u64,
            compression_enabled: r.get(3),
            rows: count.max(0) as u64,
        });
    }
    // Continuous aggregates and jobs exist only in builds that have them.
    let continuous_aggregates = client
        .query(
            "SELECT view_schema::text || '.' || view_name::text FROM timescaledb_information.continuous_aggregates ORDER BY 1",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    let jobs = client
        .query(
            "SELECT job_id, proc_schema::text || '.' || proc_name::text,
                    CASE WHEN hypertable_name IS NULL THEN NULL ELSE hypertable_schema::text || '.' || hypertable_name::text END,
                    schedule_interval::text
               FROM timescaledb_information.jobs WHERE job_id >= 1000 ORDER BY 1",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| Job {
                    id: r.get(0),
                    proc: r.get(1),
                    hypertable: r.get(2),
                    schedule_interval: r.get(3),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TimescaleFacts {
        version,
        postgres_version_num: num.max(0) as u32,
        hypertables,
        continuous_aggregates,
        jobs,
    })
}
