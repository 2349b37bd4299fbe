//! Level-3 verification: restore into a scratch database and compare live row counts.
//!
//! [`verify_restore`] creates `dbseal_verify_<backup id>_<random>` on the given server,
//! restores the backup into it with [`PostgresSink`] (no owners, no privileges, so the
//! verification server needs none of the source's roles), compares the live
//! `count(*)` of every table and the number of large objects with the manifest's
//! contents summary, and drops the scratch database at the end, whatever happened.

use backup_core::{
    BackupStore, Error, ErrorKind, Manifest, RestoreOptions, Result, VerifyLevel, VerifyReport,
};
use rand::Rng;

use crate::config::{quote_ident, Connection, PostgresConfig};
use crate::error::{PgResult, PostgresError};
use crate::sink::{create_database, drop_database, PostgresSink, RestoreTarget};

/// The prefix of scratch database names (`dbseal_verify_…`).
pub const SCRATCH_PREFIX: &str = "dbseal_verify_";

/// Restores `manifest`'s backup into a scratch database on the server `server` names
/// (its database is the one connected to for `CREATE`/`DROP DATABASE`), compares live
/// row counts with the manifest, and drops the scratch database. A difference is an
/// [`ErrorKind::Verification`] error naming the table.
pub async fn verify_restore(
    store: &BackupStore,
    manifest: &Manifest,
    server: &PostgresConfig,
    options: &RestoreOptions,
) -> Result<VerifyReport> {
    verify_restore_as(store, manifest, &server.resolve()?, options, &[]).await
}

/// [`verify_restore`] over a resolved connection, accepting backups of the extra
/// datastore kinds `kinds` (their data artifact must be a pg_dump archive).
pub async fn verify_restore_as(
    store: &BackupStore,
    manifest: &Manifest,
    server: &Connection,
    options: &RestoreOptions,
    kinds: &[&str],
) -> Result<VerifyReport> {
    let scratch = scratch_name(&manifest.backup_id.to_string());
    create_database(server, &scratch).await?;
    let outcome = async {
        let mut sink = PostgresSink::with_connection(
            server.with_database(&scratch),
            RestoreTarget {
                no_owner: true,
                no_privileges: true,
                maintenance_db: Some(server.database().to_string()),
                ..Default::default()
            },
        )?
        .accept_kinds(kinds)
        .assume_empty();
        backup_core::restore(store, manifest, "data", &mut sink, options).await?;
        let scratch_conn = server.with_database(&scratch);
        let checks = compare_live_counts(&scratch_conn, manifest)
            .await
            .map_err(|e| match e {
                PostgresError::Mismatch(what) => Error::Verification {
                    id: manifest.backup_id.to_string(),
                    key: manifest.artifact.key.clone(),
                    what: format!("after a restore into scratch database {scratch}: {what}"),
                },
                other => other.into(),
            })?;
        Ok::<_, Error>(checks)
    }
    .await;
    let dropped = drop_database(server, &scratch).await;
    let mut checks = outcome?;
    if let Err(e) = dropped {
        return Err(Error::datastore(
            "postgres",
            ErrorKind::Other,
            format!(
                "verification passed but the scratch database {scratch} could not be dropped: {e}"
            ),
        ));
    }
    checks.insert(
        0,
        format!(
            "{}: restored into scratch database {scratch} on {} (dropped afterwards)",
            manifest.artifact.key,
            server.server()
        ),
    );
    Ok(VerifyReport {
        backup_id: manifest.backup_id.to_string(),
        level: VerifyLevel::Restore,
        checks,
    })
}

fn scratch_name(backup_id: &str) -> String {
    let id: String = backup_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let salt: u32 = rand::thread_rng().gen_range(0..0x100_0000);
    format!("{SCRATCH_PREFIX}{id}_{salt:06x}")
}

/// Compares the live contents of the database `conn` names with the manifest's
/// contents summary: `count(*)` of every table (`FROM ONLY`, as pg_dump dumps each
/// table of an inheritance tree or partition apart) and the number of large objects.
/// Returns one line per check; a difference is [`PostgresError::Mismatch`] naming the
/// table.
pub async fn compare_live_counts(conn: &Connection, manifest: &Manifest) -> PgResult<Vec<String>> {
    let client = conn.connect().await?;
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm', 'f')",
            &[],
        )
        .await
        .map_err(|e| conn.query_error("listing tables", e))?;
    let live: std::collections::HashMap<String, (String, String)> = rows
        .iter()
        .map(|r| {
            let (n, t): (String, String) = (r.get(0), r.get(1));
            (format!("{n}.{t}"), (n, t))
        })
        .collect();
    let empty = Default::default();
    let tables = manifest.contents.counts.get("tables").unwrap_or(&empty);
    let mut diffs = Vec::new();
    let mut rows_total = 0u64;
    for (name, &expected) in tables {
        let Some((ns, rel)) = live.get(name) else {
            diffs.push(format!(
                "table {name} is missing (the manifest records {expected} rows)"
            ));
            continue;
        };
        let sql = format!(
            "SELECT count(*) FROM ONLY {}.{}",
            quote_ident(ns),
            quote_ident(rel)
        );
        let found: i64 = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| conn.query_error(&format!("counting the rows of {name}"), e))?
            .get(0);
        if found as u64 != expected {
            diffs.push(format!(
                "table {name}: {found} rows live, the manifest records {expected}"
            ));
        }
        rows_total += expected;
    }
    let mut checks = vec![format!(
        "{} tables, {rows_total} rows: live counts equal the manifest's",
        tables.len()
    )];
    if let Some(expected) = manifest
        .contents
        .counts
        .get("large_objects")
        .and_then(|g| g.get("count"))
    {
        let found: i64 = client
            .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
            .await
            .map_err(|e| conn.query_error("counting large objects", e))?
            .get(0);
        if found as u64 != *expected {
            diffs.push(format!(
                "{found} large objects live, the manifest records {expected}"
            ));
        } else {
            checks.push(format!("{found} large objects"));
        }
    }
    if !diffs.is_empty() {
        return Err(PostgresError::Mismatch(diffs.join("; ")));
    }
    Ok(checks)
}
