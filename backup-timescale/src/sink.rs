//! Restore: TimescaleDB's documented procedure, as one step.
//!
//! 1. Check the target server: the PostgreSQL major version and an available
//!    timescaledb extension at the version the backup recorded (a mismatch is an error
//!    naming both versions, unless `allow_version_mismatch`).
//! 2. Prepare the database: an existing empty one, a new one (`create_db`), or — with
//!    `replace` — a *staging* database that is swapped in only after a successful
//!    restore (target renamed aside and staging renamed in, in one transaction, then the
//!    old one dropped), so a failure leaves the target as it was.
//! 3. `CREATE EXTENSION timescaledb VERSION '<recorded>'`, `SELECT
//!    timescaledb_pre_restore()`, the PostgreSQL sink's `pg_restore
//!    --single-transaction` (never `--clean`: TimescaleDB breaks on it), then `SELECT
//!    timescaledb_post_restore()` — also when the restore failed, so no database is left
//!    in restoring mode.
//! 4. On failure, what step 2-3 created is removed again (the database, or the
//!    extension created in an existing empty database).

use async_trait::async_trait;
use backup_core::sink::StreamReader;
use backup_core::{Manifest, Result, Sink, SinkReport};
use backup_postgres::sink::{
    create_database, drop_database, leftovers, staging_name, swap_in_database,
};
use backup_postgres::{Connection, PostgresConfig, PostgresSink, RestoreTarget};
use serde::{Deserialize, Serialize};

use crate::error::{TimescaleError, TsResult};
use crate::format::{installed_version, TimescaleFacts};
use crate::source::KIND;

/// How to restore a TimescaleDB backup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimescaleRestoreOptions {
    /// Create the target database if it does not exist.
    pub create_db: bool,
    /// Replace a non-empty target (through a staging database swapped in on success).
    pub replace: bool,
    /// Restore even if the extension or PostgreSQL major version differs.
    pub allow_version_mismatch: bool,
    /// Do not restore object ownership.
    pub no_owner: bool,
    /// Database used for CREATE/DROP/ALTER DATABASE (default `postgres`).
    pub maintenance_db: Option<String>,
}

/// A [`Sink`] restoring a TimescaleDB backup (see the module docs).
#[derive(Debug)]
pub struct TimescaleSink {
    conn: Connection,
    options: TimescaleRestoreOptions,
    role: Option<String>,
}

impl TimescaleSink {
    /// A sink into the database `config` names.
    pub fn new(config: &PostgresConfig, options: TimescaleRestoreOptions) -> Result<Self> {
        Ok(Self::with_connection(config.resolve()?, options))
    }

    /// A sink over a resolved connection.
    pub fn with_connection(conn: Connection, options: TimescaleRestoreOptions) -> Self {
        TimescaleSink {
            conn,
            options,
            role: None,
        }
    }

    /// Restores the data as `role` (pg_restore `--role`, i.e. `SET ROLE`), as the
    /// PostgreSQL sink does; the extension and pre/post restore run as the connecting
    /// user. A blank name is refused when the restore starts.
    pub fn with_role(mut self, role: Option<String>) -> Self {
        self.role = role;
        self
    }

    fn maintenance(&self) -> Connection {
        self.conn.with_database(
            self.options
                .maintenance_db
                .clone()
                .unwrap_or_else(|| "postgres".into()),
        )
    }

    /// Checks the backup against the target server; returns the recorded facts.
    pub async fn check_versions(&self, manifest: &Manifest) -> TsResult<TimescaleFacts> {
        if manifest.datastore.kind != KIND {
            return Err(TimescaleError::WrongBackup(format!(
                "backup {} is a `{}` backup, not a TimescaleDB one: restore it with its own kind",
                manifest.backup_id, manifest.datastore.kind
            )));
        }
        let facts = TimescaleFacts::from_manifest(manifest).ok_or_else(|| {
            TimescaleError::WrongBackup(format!(
                "backup {} has no TimescaleDB facts in its manifest (source.timescaledb)",
                manifest.backup_id
            ))
        })?;
        let maint = self.maintenance();
        let client = maint.connect().await?;
        let num: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await
            .map_err(|e| maint.query_error("reading the server version", e))?
            .get(0);
        let (backup_major, target_major) = (
            facts.postgres_version_num / 10_000,
            num.max(0) as u32 / 10_000,
        );
        if backup_major != target_major && !self.options.allow_version_mismatch {
            return Err(TimescaleError::VersionMismatch {
                what: "PostgreSQL major version".into(),
                backup: format!("PostgreSQL {backup_major}"),
                target: format!("PostgreSQL {target_major}"),
                target_desc: self.conn.server(),
            });
        }
        let available: Vec<String> = client
            .query(
                "SELECT version FROM pg_available_extension_versions WHERE name = 'timescaledb'",
                &[],
            )
            .await
            .map_err(|e| maint.query_error("listing available timescaledb versions", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if available.is_empty() {
            return Err(TimescaleError::ExtensionMissing {
                server: self.conn.server(),
                needed: facts.version.clone(),
            });
        }
        if !available.contains(&facts.version) && !self.options.allow_version_mismatch {
            return Err(TimescaleError::VersionMismatch {
                what: "timescaledb extension version".into(),
                backup: format!("timescaledb {}", facts.version),
                target: format!("timescaledb {}", available.join(", ")),
                target_desc: self.conn.server(),
            });
        }
        Ok(facts)
    }

    /// Steps 3 of the module docs into the database `conn` names.
    async fn restore_into(
        &self,
        conn: &Connection,
        facts: &TimescaleFacts,
        manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        let client = conn.connect().await?;
        let created_ext = match installed_version(conn).await? {
            Some(v) if v == facts.version || self.options.allow_version_mismatch => false,
            Some(v) => {
                return Err(TimescaleError::VersionMismatch {
                    what: "timescaledb extension version".into(),
                    backup: format!("timescaledb {}", facts.version),
                    target: format!("timescaledb {v} installed in the target database"),
                    target_desc: format!("{}/{}", conn.server(), conn.database()),
                }
                .into())
            }
            None => {
                let version = if self.options.allow_version_mismatch {
                    String::new()
                } else {
                    format!(" VERSION '{}'", facts.version.replace('\'', "''"))
                };
                client
                    .batch_execute(&format!("CREATE EXTENSION timescaledb{version}"))
                    .await
                    .map_err(|e| conn.query_error("creating the timescaledb extension", e))?;
                true
            }
        };
        client
            .batch_execute("SELECT timescaledb_pre_restore()")
            .await
            .map_err(|e| conn.query_error("timescaledb_pre_restore()", e))?;
        drop(client);
        let restored = async {
            let mut sink = PostgresSink::with_connection(
                conn.clone(),
                RestoreTarget {
                    no_owner: self.options.no_owner,
                    role: self.role.clone(),
                    maintenance_db: self.options.maintenance_db.clone(),
                    ..Default::default()
                },
            )?
            .accept_kinds(&[KIND])
            .assume_empty();
            sink.restore(manifest, input).await
        }
        .await;
        // Always leave restoring mode, whatever happened.
        let post = async {
            let c = conn.connect().await?;
            c.batch_execute("SELECT timescaledb_post_restore()")
                .await
                .map_err(|e| conn.query_error("timescaledb_post_restore()", e))
        }
        .await;
        match (restored, post) {
            (Ok(mut report), Ok(())) => {
                report.summary.push(format!(
                    "timescaledb {} restored with timescaledb_pre_restore()/post_restore(); {} hypertables",
                    facts.version,
                    facts.hypertables.len()
                ));
                Ok(report)
            }
            (Err(e), post) => {
                if let Err(p) = post {
                    tracing::warn!(error = %p, "timescaledb_post_restore() failed after a failed restore");
                }
                if created_ext {
                    if let Ok(c) = conn.connect().await {
                        let _ = c
                            .batch_execute("DROP EXTENSION IF EXISTS timescaledb CASCADE")
                            .await;
                    }
                }
                Err(e)
            }
            (Ok(_), Err(p)) => Err(p.into()),
        }
    }
}

/// Whether the database `conn` names holds user objects (tables, views, functions,
/// types, schemas) besides extensions' own.
pub async fn database_is_empty(conn: &Connection) -> TsResult<bool> {
    let client = conn.connect().await?;
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                AND n.nspname NOT LIKE '\\_timescaledb%' AND n.nspname NOT LIKE 'timescaledb\\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')",
            &[],
        )
        .await
        .map_err(|e| conn.query_error("checking that the target is empty", e))?
        .get(0);
    Ok(n == 0)
}

async fn database_exists(maint: &Connection, name: &str) -> TsResult<bool> {
    let client = maint.connect().await?;
    Ok(client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| maint.query_error("looking up the target database", e))?
        .is_some())
}

#[async_trait]
impl Sink for TimescaleSink {
    async fn restore(
        &mut self,
        manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        if self.role.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(
                TimescaleError::Postgres(backup_postgres::PostgresError::Config(
                    "--role needs a role name".into(),
                ))
                .into(),
            );
        }
        let facts = self.check_versions(manifest).await?;
        let maint = self.maintenance();
        let target = self.conn.database().to_string();
        let exists = database_exists(&maint, &target).await?;
        if exists && !self.options.replace {
            if !database_is_empty(&self.conn).await? {
                return Err(TimescaleError::NotEmpty(format!(
                    "\"{target}\" on {}",
                    self.conn.server()
                ))
                .into());
            }
            return self.restore_into(&self.conn, &facts, manifest, input).await;
        }
        if !exists && !self.options.create_db {
            return Err(
                TimescaleError::Postgres(backup_postgres::PostgresError::Config(format!(
                "target database \"{target}\" does not exist on {}: create it, or pass --create-db",
                self.conn.server()
            )))
                .into(),
            );
        }
        // A new database, or a staging one swapped in over the old target on success.
        let mut notes = Vec::new();
        let staging = if exists {
            for line in leftovers(&maint, &target).await? {
                tracing::warn!("{line}");
                notes.push(line);
            }
            staging_name(&target)
        } else {
            target.clone()
        };
        create_database(&maint, &staging).await?;
        let staging_conn = self.conn.with_database(&staging);
        match self
            .restore_into(&staging_conn, &facts, manifest, input)
            .await
        {
            Ok(mut report) => {
                if exists {
                    // The PostgreSQL sink reported the staging database it wrote into.
                    let (wrote, shown) = (
                        format!("{}/{staging}", self.conn.server()),
                        format!("{}/{target}", self.conn.server()),
                    );
                    for line in &mut report.summary {
                        *line = line.replace(&wrote, &shown);
                    }
                    // Renamed aside and in within one transaction, then dropped: the
                    // target name never points at nothing.
                    match swap_in_database(&maint, &staging, &target).await {
                        Ok(None) => {}
                        Ok(Some(kept)) => report.summary.push(format!(
                            "the replaced database was kept as \"{kept}\": drop it when done"
                        )),
                        Err(e) => {
                            if let Err(d) = drop_database(&maint, &staging).await {
                                tracing::warn!(error = %d, database = %staging, "could not drop the staging database of the failed swap");
                            }
                            return Err(e.into());
                        }
                    }
                    report.summary.push(format!(
                        "replaced \"{target}\" (restored into a staging database first)"
                    ));
                }
                report.summary.extend(notes);
                Ok(report)
            }
            Err(e) => {
                if let Err(d) = drop_database(&maint, &staging).await {
                    tracing::warn!(error = %d, database = %staging, "could not drop the database created for the failed restore");
                }
                Err(e)
            }
        }
    }
}
