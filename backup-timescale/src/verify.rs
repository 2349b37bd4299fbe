//! Level-3 verification: restore into a scratch database, then compare the hypertable
//! list and the row count of every hypertable (not per chunk) with the manifest, and
//! every plain table's rows with the pg_dump contents summary.

use backup_core::{
    BackupStore, Error, ErrorKind, Manifest, RestoreOptions, Result, VerifyLevel, VerifyReport,
};
use backup_postgres::config::quote_ident;
use backup_postgres::sink::drop_database;
use backup_postgres::{Connection, PostgresConfig, PostgresError};
use rand::Rng;

use crate::error::TimescaleError;
use crate::format::TimescaleFacts;
use crate::sink::{TimescaleRestoreOptions, TimescaleSink};

/// Restores into a scratch database on `server`, compares, and drops the scratch
/// database whatever happened.
pub async fn verify_restore(
    store: &BackupStore,
    manifest: &Manifest,
    server: &PostgresConfig,
    options: &RestoreOptions,
) -> Result<VerifyReport> {
    let server = server.resolve()?;
    let salt: u32 = rand::thread_rng().gen_range(0..0x100_0000);
    let scratch = format!(
        "dbseal_verify_{}_{salt:06x}",
        manifest
            .backup_id
            .as_str()
            .to_ascii_lowercase()
            .replace('-', "_")
    );
    let scratch_conn = server.with_database(&scratch);
    let clock = std::time::Instant::now();
    let mut load_seconds = None;
    let outcome = async {
        let mut sink = TimescaleSink::with_connection(
            scratch_conn.clone(),
            TimescaleRestoreOptions {
                create_db: true,
                no_owner: true,
                maintenance_db: Some(server.database().to_string()),
                ..Default::default()
            },
        );
        backup_core::restore(store, manifest, "data", &mut sink, options).await?;
        load_seconds = Some(clock.elapsed().as_secs_f64());
        compare(&scratch_conn, manifest).await
    }
    .await;
    let dropped = drop_database(&server, &scratch).await;
    let mut checks = outcome?;
    if let Err(e) = dropped {
        return Err(Error::datastore(
            "timescale",
            ErrorKind::Other,
            format!(
                "verification passed but the scratch database {scratch} could not be dropped: {e}"
            ),
        ));
    }
    checks.insert(
        0,
        format!(
            "restored into scratch database {scratch} on {} (dropped afterwards)",
            server.server()
        ),
    );
    Ok(VerifyReport {
        backup_id: manifest.backup_id.to_string(),
        level: VerifyLevel::Restore,
        checks,
        load_seconds,
    })
}

/// Compares the database `conn` names with the manifest: hypertable list, rows per
/// hypertable, rows of every table outside TimescaleDB's internal schemas.
pub async fn compare(conn: &Connection, manifest: &Manifest) -> Result<Vec<String>> {
    let facts = TimescaleFacts::from_manifest(manifest).ok_or_else(|| {
        TimescaleError::WrongBackup(format!(
            "backup {} has no TimescaleDB facts",
            manifest.backup_id
        ))
    })?;
    let fail = |what: String| manifest.verification_error(what);
    let client = conn.connect().await?;
    let live: Vec<String> = client
        .query(
            "SELECT hypertable_schema::text || '.' || hypertable_name::text FROM timescaledb_information.hypertables ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| conn.query_error("listing hypertables", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<String> = facts.hypertables.iter().map(|h| h.name.clone()).collect();
    if live != expected {
        return Err(fail(format!(
            "hypertables differ: the manifest records [{}], the restored database has [{}]",
            expected.join(", "),
            live.join(", ")
        )));
    }
    let mut checks = vec![format!(
        "{} hypertables present: {}",
        live.len(),
        live.join(", ")
    )];
    for h in &facts.hypertables {
        let (schema, table) = h.name.split_once('.').unwrap_or(("public", &h.name));
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}.{}",
                    quote_ident(schema),
                    quote_ident(table)
                ),
                &[],
            )
            .await
            .map_err(|e| conn.query_error(&format!("counting the rows of {}", h.name), e))?
            .get(0);
        if n as u64 != h.rows {
            return Err(fail(format!(
                "hypertable {}: the manifest records {} rows, the restored database has {n}",
                h.name, h.rows
            )));
        }
        checks.push(format!("hypertable {}: {n} rows", h.name));
    }
    // Plain tables (chunks are covered by their hypertable's count).
    if let Some(tables) = manifest.contents.counts.get("tables") {
        for (name, &rows) in tables {
            if name.starts_with("_timescaledb") || name.starts_with("timescaledb_") {
                continue;
            }
            if facts.hypertables.iter().any(|h| &h.name == name) {
                continue;
            }
            let (schema, table) = name.split_once('.').unwrap_or(("public", name));
            let n: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM ONLY {}.{}",
                        quote_ident(schema),
                        quote_ident(table)
                    ),
                    &[],
                )
                .await
                .map_err(|e| conn.query_error(&format!("counting the rows of {name}"), e))?
                .get(0);
            if n as u64 != rows {
                return Err(fail(format!(
                    "table {name}: the manifest records {rows} rows, the restored database has {n}"
                )));
            }
        }
    }
    // Contents, bit for bit: every table the archive holds rows of (plain tables,
    // chunks, compressed chunks) read back with pg_dump's COPY. Not TimescaleDB's own
    // catalog and configuration: creating the extension in the target writes its
    // metadata (install time, uuid) and built-in jobs there, so they differ by design;
    // the hypertable list and counts above check what of them matters.
    let own =
        |t: &str| t.starts_with("_timescaledb_catalog.") || t.starts_with("_timescaledb_config.");
    let content = backup_postgres::verify::compare_live_content_of(conn, manifest, |t| !own(t))
        .await
        .map_err(|e| match e {
            PostgresError::Mismatch(what) => fail(what),
            other => other.into(),
        })?;
    checks.push(content);
    Ok(checks)
}
