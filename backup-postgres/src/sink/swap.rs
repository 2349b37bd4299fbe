//! `--replace` of a whole database by rename: the backup is restored into a *staging*
//! database beside the target, which is renamed in only once the restore committed.
//!
//! At no moment does the target's name point at nothing: both renames run in one
//! transaction (PostgreSQL allows `ALTER DATABASE … RENAME` in a transaction block),
//! and the old database is dropped only afterwards. A crash at any step leaves either
//! the target untouched plus a `<target>_dbseal_staging_<hex>` database, or the
//! restored target plus a `<target>_dbseal_old_<hex>` one; the next `--replace` of the
//! same target lists both with the command that drops them.

use crate::config::{quote_ident, Connection};
use crate::error::{PgResult, PostgresError};

/// The first 40 bytes (whole characters) of a database name, so that the suffixes below
/// (up to 22 bytes) keep staging and old names under PostgreSQL's 63-byte limit, which
/// would otherwise cut the random suffix off.
fn stem(target: &str) -> String {
    let mut end = 0;
    for (i, c) in target.char_indices() {
        if i + c.len_utf8() > 40 {
            break;
        }
        end = i + c.len_utf8();
    }
    target[..end].to_string()
}

/// A fresh name for the staging database of a restore into `target`.
pub fn staging_name(target: &str) -> String {
    let salt: u32 = rand::random::<u32>() & 0xff_ffff;
    format!("{}_dbseal_staging_{salt:06x}", stem(target))
}

/// Databases a crashed `--replace` of `target` left behind (staging copies and
/// replaced originals), as warnings with the command that removes each.
pub async fn leftovers(maintenance: &Connection, target: &str) -> PgResult<Vec<String>> {
    let client = maintenance.connect().await?;
    let pattern = |what: &str| {
        format!(
            "{}\\_dbseal\\_{what}\\_%",
            stem(target)
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    };
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname LIKE $2 ORDER BY 1",
            &[&pattern("staging"), &pattern("old")],
        )
        .await
        .map_err(|e| maintenance.query_error("listing databases left by an earlier restore", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let what = if name.contains("_dbseal_staging_") {
                "the staging copy of a restore that did not finish"
            } else {
                "the old contents replaced by an earlier restore"
            };
            format!(
                "database \"{name}\" is {what}; drop it when no longer needed: DROP DATABASE {}",
                quote_ident(&name)
            )
        })
        .collect())
}

/// What the replaced database has that a backup does not carry and the restored copy
/// keeps: its encoding, collation and tablespace (the staging database is created with
/// them) and its privileges (`GRANT … ON DATABASE`, applied to the staging database).
#[derive(Debug)]
pub struct TargetShape {
    create_options: String,
    /// (privilege, grantee as SQL, grantable).
    grants: Vec<(String, String, bool)>,
    /// The target's owner, kept when the backup gives none.
    owner: String,
}

impl TargetShape {
    /// Reads the shape of `target`, or `None` when the connecting role may not replace
    /// it by rename (it needs CREATEDB, or superuser, and to own the target) — the
    /// caller then restores in place, in one transaction.
    pub async fn read(maintenance: &Connection, target: &str) -> PgResult<Option<Self>> {
        let client = maintenance.connect().await?;
        // Through to_jsonb: columns of other versions read as NULL (datlocale is
        // PostgreSQL 17's name of daticulocale; daticurules is 16's).
        let row = client
            .query_opt(
                "SELECT (SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user)
                        AND pg_has_role(current_user, d.datdba, 'USAGE'),
                        to_jsonb(d) ->> 'datlocprovider', pg_encoding_to_char(d.encoding),
                        d.datcollate::text, d.datctype::text,
                        COALESCE(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'),
                        t.spcname::text, pg_get_userbyid(d.datdba)::text,
                        to_jsonb(d) ->> 'daticurules'
                   FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace
                  WHERE d.datname = $1",
                &[&target],
            )
            .await
            .map_err(|e| {
                maintenance.query_error(&format!("reading the properties of \"{target}\""), e)
            })?;
        let Some(row) = row else {
            return Err(PostgresError::NoSuchDatabase {
                database: target.to_string(),
                server: maintenance.server(),
            });
        };
        if !row.get::<_, Option<bool>>(0).unwrap_or(false) {
            return Ok(None);
        }
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let provider: Option<String> = row.get(1);
        let mut create_options = format!(
            " ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            lit(&row.get::<_, String>(2)),
            lit(&row.get::<_, String>(3)),
            lit(&row.get::<_, String>(4)),
        );
        match (provider.as_deref(), row.get::<_, Option<String>>(5)) {
            (Some("i"), Some(icu)) => {
                create_options.push_str(&format!(" LOCALE_PROVIDER icu ICU_LOCALE {}", lit(&icu)));
                if let Some(rules) = row.get::<_, Option<String>>(8).filter(|r| !r.is_empty()) {
                    create_options.push_str(&format!(" ICU_RULES {}", lit(&rules)));
                }
            }
            (Some("b"), Some(locale)) => create_options.push_str(&format!(
                " LOCALE_PROVIDER builtin BUILTIN_LOCALE {}",
                lit(&locale)
            )),
            _ => {}
        }
        let tablespace: String = row.get(6);
        if tablespace != "pg_default" {
            create_options.push_str(&format!(" TABLESPACE {}", quote_ident(&tablespace)));
        }
        // The privileges of everyone but the owner (whose own are implicit); PUBLIC's
        // defaults are revoked first so that a target which had them revoked keeps that.
        let rows = client
            .query(
                "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,
                        a.privilege_type, a.is_grantable
                   FROM pg_database d,
                        aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
                        LEFT JOIN pg_roles r ON r.oid = a.grantee
                  WHERE d.datname = $1 AND a.grantee <> d.datdba
                    AND (a.grantee = 0 OR r.rolname IS NOT NULL)
                  ORDER BY 1, 2",
                &[&target],
            )
            .await
            .map_err(|e| {
                maintenance.query_error(&format!("reading the privileges on \"{target}\""), e)
            })?;
        let grants = rows
            .iter()
            .map(|r| (r.get(1), r.get(0), r.get(2)))
            .collect();
        Ok(Some(TargetShape {
            create_options,
            grants,
            owner: row.get(7),
        }))
    }

    /// Creates the staging database `name` in the target's shape.
    pub async fn create_staging(&self, maintenance: &Connection, name: &str) -> PgResult<()> {
        let client = maintenance.connect().await?;
        client
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0{}",
                quote_ident(name),
                self.create_options
            ))
            .await
            .map_err(|e| {
                maintenance.query_error(&format!("creating the staging database \"{name}\""), e)
            })?;
        tracing::info!(database = name, "created staging database");
        Ok(())
    }

    /// Gives the staging database `name` the target's owner (when the backup gives none,
    /// or `--no-owner`); where the role may not, a warning says so.
    pub async fn keep_owner(&self, maintenance: &Connection, name: &str) -> PgResult<()> {
        let client = maintenance.connect().await?;
        let sql = format!(
            "ALTER DATABASE {} OWNER TO {}",
            quote_ident(name),
            quote_ident(&self.owner)
        );
        if let Err(e) = client.batch_execute(&sql).await {
            let e = maintenance.query_error("keeping the replaced database's owner", e);
            tracing::warn!(error = %e, "the restored database is owned by the restoring role, not by {}", self.owner);
        }
        Ok(())
    }

    /// Gives the staging database `name` the target's privileges. Returns a summary line.
    pub async fn apply_grants(
        &self,
        maintenance: &Connection,
        name: &str,
    ) -> PgResult<Option<String>> {
        let db = quote_ident(name);
        let mut sql = format!("BEGIN; REVOKE ALL ON DATABASE {db} FROM PUBLIC;");
        for (privilege, grantee, grantable) in &self.grants {
            sql.push_str(&format!(
                "GRANT {privilege} ON DATABASE {db} TO {grantee}{};",
                if *grantable { " WITH GRANT OPTION" } else { "" }
            ));
        }
        sql.push_str("COMMIT;");
        let client = maintenance.connect().await?;
        client.batch_execute(&sql).await.map_err(|e| {
            maintenance.query_error("giving the restored copy the target's privileges", e)
        })?;
        Ok((!self.grants.is_empty()).then(|| {
            format!(
                "kept the replaced database's privileges ({} grants on the database)",
                self.grants.len()
            )
        }))
    }
}

/// Puts the restored `staging` database in place of `target`: sessions on the target are
/// ended, the target is renamed aside and `staging` renamed to its name **in one
/// transaction** (so the name never points at nothing, and a failure changes nothing),
/// then the old database is dropped. Sessions that reconnect to the target in between
/// make the transaction fail and roll back; it is tried again a few times. If only the
/// final drop fails, the old data stays under the returned name and a warning says how to
/// drop it. Returns that name when the old database was kept.
pub async fn swap_in_database(
    maintenance: &Connection,
    staging: &str,
    target: &str,
) -> PgResult<Option<String>> {
    let salt: u32 = rand::random::<u32>() & 0xff_ffff;
    let aside = format!("{}_dbseal_old_{salt:06x}", stem(target));
    let client = maintenance.connect().await?;
    let swap = format!(
        "BEGIN; ALTER DATABASE {t} RENAME TO {a}; ALTER DATABASE {s} RENAME TO {t}; COMMIT;",
        t = quote_ident(target),
        a = quote_ident(&aside),
        s = quote_ident(staging)
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
                   AND (pg_has_role(usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER'))",
                &[&target],
            )
            .await
            .map_err(|e| {
                // Sessions this role may not end make the rename below fail (and retry).
                tracing::warn!(error = %e, "could not end the sessions on {target}");
            })
            .ok();
        match client.batch_execute(&swap).await {
            Ok(()) => break,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                if attempt >= 5 {
                    return Err(maintenance.query_error(
                        &format!("swapping the restored copy {staging} in for {target} (nothing was changed)"),
                        e,
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    tracing::info!(database = target, "swapped the restored copy in");
    match super::drop_database(maintenance, &aside).await {
        Ok(()) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, database = %aside, "the replaced database was kept: drop it with DROP DATABASE \"{aside}\"");
            Ok(Some(aside))
        }
    }
}
