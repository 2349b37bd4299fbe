//! Level-3 verification: restore into a scratch database and compare live row counts.
//!
//! [`verify_restore`] creates `dbseal_verify_<backup id>_<random>` on the given server,
//! restores the backup into it with [`PostgresSink`] (no owners, no privileges, so the
//! verification server needs none of the source's roles), compares the live
//! `count(*)` of every table and the number of large objects with the manifest's
//! contents summary, reads every table back with `COPY … TO STDOUT` in pg_dump's
//! session settings and compares the digest (BLAKE3) of its rows with the one the archive
//! reader recorded at backup time (so one changed bit fails, naming the table), and
//! drops the scratch database at the end, whatever happened.

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
    let never = tokio_util::sync::CancellationToken::new();
    verify_restore_as(store, manifest, &server.resolve()?, options, &[], &never).await
}

/// [`verify_restore`] over a resolved connection, accepting backups of the extra
/// datastore kinds `kinds` (their data artifact must be a pg_dump archive), and
/// interrupted by `cancel` (the restore fails, the scratch database is dropped).
pub async fn verify_restore_as(
    store: &BackupStore,
    manifest: &Manifest,
    server: &Connection,
    options: &RestoreOptions,
    kinds: &[&str],
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<VerifyReport> {
    let scratch = scratch_name(&manifest.backup_id.to_string());
    let clock = std::time::Instant::now();
    create_database(server, &scratch).await?;
    let mut load_seconds = None;
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
        let mut sink = backup_core::CancellableSink::new(&mut sink, cancel.clone());
        backup_core::restore(store, manifest, "data", &mut sink, options).await?;
        load_seconds = Some(clock.elapsed().as_secs_f64());
        let scratch_conn = server.with_database(&scratch);
        let checks = async {
            let mut checks = compare_live_counts(&scratch_conn, manifest).await?;
            checks.push(compare_live_content(&scratch_conn, manifest).await?);
            Ok::<_, PostgresError>(checks)
        }
        .await
        .map_err(|e| match e {
            PostgresError::Mismatch(what) => manifest.verification_error(format!(
                "after a restore into scratch database {scratch}: {what}"
            )),
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
        load_seconds,
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

/// The tables of the database `client` is connected to, by `schema.table` (the
/// manifest's names), with their schema and name apart (to quote them).
async fn live_tables(
    client: &tokio_postgres::Client,
    conn: &Connection,
) -> PgResult<std::collections::HashMap<String, (String, String)>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm', 'f')",
            &[],
        )
        .await
        .map_err(|e| conn.query_error("listing tables", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (n, t): (String, String) = (r.get(0), r.get(1));
            (format!("{n}.{t}"), (n, t))
        })
        .collect())
}

/// Compares the live contents of the database `conn` names with the manifest's
/// contents summary: `count(*)` of every table (`FROM ONLY`, as pg_dump dumps each
/// table of an inheritance tree or partition apart) and the number of large objects.
/// Returns one line per check; a difference is [`PostgresError::Mismatch`] naming the
/// table.
pub async fn compare_live_counts(conn: &Connection, manifest: &Manifest) -> PgResult<Vec<String>> {
    let client = conn.connect().await?;
    let live = live_tables(&client, conn).await?;
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

/// The session pg_dump writes COPY rows in (`setup_connection` in pg_dump.c): level 3
/// reads the restored rows back in the same one.
const DUMP_SESSION_SQL: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
    SET extra_float_digits = 3; SET synchronize_seqscans = off; SET row_security = off; \
    SELECT pg_catalog.set_config('search_path', '', false)";

/// Reads every table the manifest has a content digest for (`copy_blake3.<table>`, or
/// `copy_sha256.<table>` in backups made before 2026-12-07, recorded by the archive
/// reader) back from the database `conn` names with `COPY table (columns) TO STDOUT`, in
/// the session settings pg_dump used (its own, plus the manifest's `dump_session` source
/// facts and the archive's encoding), and compares the digests. A difference is
/// [`PostgresError::Mismatch`] naming every table that differs. Backups made before
/// digests were recorded are compared by counts only, and the returned check line says
/// so.
pub async fn compare_live_content(conn: &Connection, manifest: &Manifest) -> PgResult<String> {
    compare_live_content_of(conn, manifest, |_| true).await
}

/// [`compare_live_content`] for the tables `include` accepts (`schema.table`); TimescaleDB
/// leaves out the catalog its extension rewrites on restore.
pub async fn compare_live_content_of(
    conn: &Connection,
    manifest: &Manifest,
    include: impl Fn(&str) -> bool,
) -> PgResult<String> {
    use futures::StreamExt;
    use sha2::Digest;

    let facts = &manifest.contents.facts;
    let empty = Default::default();
    let tables = manifest.contents.counts.get("tables").unwrap_or(&empty);
    // (table, whether the digest is BLAKE3 rather than SHA-256, the digest)
    let digested: Vec<(&String, bool, &String)> = tables
        .keys()
        .filter(|t| include(t))
        .filter_map(|t| match facts.get(&crate::format::copy_blake3_fact(t)) {
            Some(d) => Some((t, true, d)),
            None => Some((t, false, facts.get(&crate::format::copy_sha256_fact(t))?)),
        })
        .collect();
    if digested.is_empty() && !tables.is_empty() {
        return Ok(
            "table contents not compared: the manifest records no content digests (a backup made before dbseal recorded them); counts only"
                .into(),
        );
    }
    let client = conn.connect().await?;
    let live = live_tables(&client, conn).await?;
    client
        .batch_execute(DUMP_SESSION_SQL)
        .await
        .map_err(|e| conn.query_error("setting pg_dump's session settings", e))?;
    if let Some(session) = manifest
        .source
        .get("dump_session")
        .and_then(|v| v.as_object())
    {
        for name in crate::source::OUTPUT_SETTINGS {
            if let Some(value) = session.get(name).and_then(|v| v.as_str()) {
                client
                    .query_one(
                        "SELECT pg_catalog.set_config($1, $2, false)",
                        &[&name, &value],
                    )
                    .await
                    .map_err(|e| {
                        conn.query_error(&format!("setting {name} to the dump's {value}"), e)
                    })?;
            }
        }
    }
    if let Some(enc) = facts
        .get("encoding")
        .filter(|e| !e.eq_ignore_ascii_case("UTF8"))
    {
        client
            .query_one(
                "SELECT pg_catalog.set_config('client_encoding', $1, false)",
                &[enc],
            )
            .await
            .map_err(|e| conn.query_error(&format!("setting the archive's encoding {enc}"), e))?;
    }
    let mut diffs = Vec::new();
    let mut bytes = 0u64;
    for (name, blake3, expected) in &digested {
        let Some((ns, rel)) = live.get(*name) else {
            continue; // compare_live_counts names missing tables
        };
        let columns = facts
            .get(&crate::format::copy_columns_fact(name))
            .and_then(|l| crate::format::parse_column_list(l))
            .ok_or_else(|| {
                PostgresError::Mismatch(format!(
                    "table {name}: the manifest's column list is missing or malformed"
                ))
            })?;
        let list = if columns.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
            format!("({})", quoted.join(", "))
        };
        let sql = format!(
            "COPY {}.{} {list} TO STDOUT",
            quote_ident(ns),
            quote_ident(rel)
        );
        let what = format!("reading the rows of {name}");
        let stream = client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| conn.query_error(&what, e))?;
        let mut stream = std::pin::pin!(stream);
        let (mut b3, mut sha) = (blake3::Hasher::new(), sha2::Sha256::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| conn.query_error(&what, e))?;
            bytes += chunk.len() as u64;
            if *blake3 {
                b3.update(&chunk);
            } else {
                sha.update(&chunk);
            }
        }
        let (algorithm, found) = if *blake3 {
            ("BLAKE3", b3.finalize().to_hex().to_string())
        } else {
            ("SHA-256", hex::encode(sha.finalize()))
        };
        if found != **expected {
            diffs.push(format!(
                "table {name}: its rows differ from the backup's ({algorithm} of COPY text {found}, the manifest records {expected})"
            ));
        }
    }
    if !diffs.is_empty() {
        return Err(PostgresError::Mismatch(diffs.join("; ")));
    }
    Ok(format!(
        "{} tables, {bytes} bytes of COPY text: contents equal the backup's, bit for bit (SHA-256)",
        digested.len()
    ))
}
