//! [`TimescaleDriver`]: TimescaleDB as a [`backup_core::Driver`], the one place both
//! front-ends (`dbseal backup timescale`, `dbseal.backup_timescale()`) reach TimescaleDB
//! through.
//!
//! Connection settings follow PostgreSQL's: `url` or the libpq `PG*` variables; the
//! password comes from `password-file`, `passfile`, `PGPASSWORD` / `PGPASSFILE` or, on
//! restore, the target's password (never the command line).

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::driver::{
    args_of, options_of, BackupContext, Capabilities, Driver, DriverOptions, RestoreContext,
    RestoreOutcome, RestoreTarget,
};
use backup_core::{Error, FormatReader, Manifest, Result, VerifyReport};
use backup_postgres::driver::{password_from_file, target_config};
use backup_postgres::{DumpOptions, GlobalsFormat, PgDumpFormat, PostgresConfig};
use serde::{Deserialize, Serialize};

use crate::{TimescaleRestoreOptions, TimescaleSink, TimescaleSource, KIND};

/// The options of a TimescaleDB backup: the flags of `dbseal backup timescale`, the
/// keywords of `dbseal.backup_timescale()`, the `[datastores.NAME.options]` of a
/// `kind = "timescale"` datastore.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TimescaleBackupOptions {
    /// libpq URL of the database (`postgres://user@host:port/db`); default: the `PG*`
    /// environment variables.
    #[arg(long)]
    pub url: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// A libpq password file (~/.pgpass format), handed to pg_dump as PGPASSFILE.
    #[arg(long)]
    pub passfile: Option<PathBuf>,
    /// Directory of pg_dump/pg_restore/psql (default: PATH).
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Dump only these schemas (repeatable).
    #[arg(long = "schema")]
    #[serde(rename = "schema")]
    pub schemas: Vec<String>,
    /// Leave these schemas out (repeatable).
    #[arg(long = "exclude-schema")]
    #[serde(rename = "exclude-schema")]
    pub exclude_schemas: Vec<String>,
    /// Also back up roles and tablespaces (pg_dumpall --globals-only) as a second artifact.
    #[arg(long)]
    pub globals: bool,
}

impl TimescaleBackupOptions {
    /// The connection these options name (reads the password file, if any).
    pub fn config(&self) -> Result<PostgresConfig> {
        Ok(PostgresConfig {
            url: self.url.clone(),
            password: self
                .password_file
                .as_deref()
                .map(password_from_file)
                .transpose()?,
            passfile: self.passfile.clone(),
            pg_bin_dir: self.pg_bin_dir.clone(),
            ..Default::default()
        })
    }

    /// The pg_dump selection.
    pub fn dump_options(&self) -> DumpOptions {
        DumpOptions {
            schemas: self.schemas.clone(),
            exclude_schemas: self.exclude_schemas.clone(),
            globals: self.globals,
            ..Default::default()
        }
    }

    /// Refuses settings that cannot work (blank schema patterns).
    pub fn check(&self) -> Result<()> {
        if self
            .schemas
            .iter()
            .chain(&self.exclude_schemas)
            .any(|s| s.trim().is_empty())
        {
            return Err(Error::Config(
                "timescale options: `schema` and `exclude-schema` need non-empty patterns".into(),
            ));
        }
        Ok(())
    }
}

/// TimescaleDB (kind `timescale`): version-pinned logical backups with the hypertable
/// facts in the manifest, whole-database restores with `timescaledb_pre_restore()` /
/// `timescaledb_post_restore()`, level-3 verification per hypertable.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimescaleDriver;

#[async_trait::async_trait]
impl Driver for TimescaleDriver {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn about(&self) -> &'static str {
        "Back up a TimescaleDB database (PostgreSQL plus extension version pinning)."
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_target: true,
            verify_restore: true,
            ..Default::default()
        }
    }

    fn formats(&self) -> Vec<Arc<dyn FormatReader>> {
        vec![Arc::new(PgDumpFormat), Arc::new(GlobalsFormat)]
    }

    fn check_backup_options(&self, options: &DriverOptions) -> Result<()> {
        options
            .parse::<TimescaleBackupOptions>(self.kind())?
            .check()
    }

    fn backup_args(&self, command: clap::Command) -> clap::Command {
        args_of::<TimescaleBackupOptions>(command)
    }

    fn backup_options_from(&self, matches: &clap::ArgMatches) -> Result<DriverOptions> {
        options_of::<TimescaleBackupOptions>(matches)
    }

    async fn backup(&self, options: &DriverOptions, ctx: &BackupContext) -> Result<Manifest> {
        let options: TimescaleBackupOptions = options.parse(self.kind())?;
        options.check()?;
        let run = async {
            let mut source = TimescaleSource::new(&options.config()?, options.dump_options())?;
            // Writes the `globals` artifact too when asked.
            crate::backup(&ctx.store, &mut source, ctx.options.clone()).await
        };
        // Cancellation (ctx.options.cancel) is the backup session's: it stops the
        // source, deletes what was uploaded and commits nothing.
        run.await
    }

    async fn restore(
        &self,
        manifest: &Manifest,
        target: &RestoreTarget,
        ctx: &RestoreContext,
    ) -> Result<RestoreOutcome> {
        if !target.schema.is_empty() || !target.table.is_empty() {
            return Err(Error::Config(
                "--schema/--table: a TimescaleDB restore is whole (hypertables span internal chunk schemas)".into(),
            ));
        }
        let config = target_config(
            target.url.as_deref(),
            target.pg_bin_dir.clone(),
            target.user.clone(),
            target.password.clone(),
        );
        let conn = config.resolve()?;
        let mut sink = TimescaleSink::with_connection(
            conn.clone(),
            TimescaleRestoreOptions {
                create_db: target.create_db,
                replace: target.replace,
                allow_version_mismatch: target.allow_version_mismatch,
                no_owner: target.no_owner,
                maintenance_db: None,
            },
        )
        .with_role(target.role.clone());
        ctx.restore_into(
            manifest,
            &mut sink,
            format!("{}/{}", conn.server(), conn.database()),
        )
        .await
    }

    async fn verify_restore(
        &self,
        manifest: &Manifest,
        url: &str,
        ctx: &RestoreContext,
    ) -> Result<VerifyReport> {
        let config = target_config(Some(url), None, None, None);
        crate::verify_restore(&ctx.store, manifest, &config, &ctx.options).await
    }
}
