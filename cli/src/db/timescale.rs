//! `dbseal backup timescale`, restore and level-3 verification for TimescaleDB.
//!
//! Connection flags follow PostgreSQL's: `--url` or the libpq `PG*` variables; the
//! password comes from `PGPASSWORD` / `PGPASSFILE` (never put it on the command line).

use std::path::PathBuf;

use backup_core::{FormatRegistry, Manifest, VerifyReport};
use backup_postgres::{DumpOptions, PostgresConfig};
use backup_timescale::{TimescaleRestoreOptions, TimescaleSink, TimescaleSource};

use super::{BackupContext, RestoreContext, RestoreOutcome};
use crate::commands::restore::RestoreTarget;
use crate::exit::{CliError, CliResult};

/// Flags of `dbseal backup timescale`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BackupArgs {
    /// libpq URL of the database (`postgres://user@host:port/db`); default: the `PG*`
    /// environment variables.
    #[arg(long)]
    pub url: Option<String>,
    /// Directory of pg_dump/pg_restore/psql (default: PATH).
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Dump only these schemas (repeatable).
    #[arg(long = "schema")]
    pub schemas: Vec<String>,
    /// Leave these schemas out (repeatable).
    #[arg(long = "exclude-schema")]
    pub exclude_schemas: Vec<String>,
    /// Also back up roles and tablespaces (pg_dumpall --globals-only) as a second artifact.
    #[arg(long)]
    pub globals: bool,
}

fn config(url: Option<&str>, pg_bin_dir: Option<&PathBuf>) -> PostgresConfig {
    PostgresConfig {
        url: url.map(str::to_string),
        pg_bin_dir: pg_bin_dir.cloned(),
        ..Default::default()
    }
}

/// Runs `dbseal backup timescale`.
pub async fn backup(args: &BackupArgs, ctx: &BackupContext) -> CliResult<Manifest> {
    let options = DumpOptions {
        schemas: args.schemas.clone(),
        exclude_schemas: args.exclude_schemas.clone(),
        globals: args.globals,
        ..Default::default()
    };
    let mut source = TimescaleSource::new(
        &config(args.url.as_deref(), args.pg_bin_dir.as_ref()),
        options,
    )?;
    Ok(backup_timescale::backup(&ctx.store, &mut source, ctx.options()?).await?)
}

/// Restores a TimescaleDB backup into the target database.
pub async fn restore(
    manifest: &Manifest,
    target: &RestoreTarget,
    ctx: &RestoreContext,
) -> CliResult<RestoreOutcome> {
    if !target.schema.is_empty() || !target.table.is_empty() {
        return Err(CliError::usage(
            "--schema/--table: a TimescaleDB restore is whole (hypertables span internal chunk schemas)",
        ));
    }
    let cfg = config(target.url.as_deref(), target.pg_bin_dir.as_ref());
    let conn = cfg.resolve().map_err(backup_core::Error::from)?;
    let mut sink = TimescaleSink::with_connection(
        conn.clone(),
        TimescaleRestoreOptions {
            create_db: target.create_db,
            replace: target.replace,
            allow_version_mismatch: target.allow_version_mismatch,
            no_owner: target.no_owner,
            maintenance_db: None,
        },
    );
    let report =
        backup_core::restore(&ctx.store, manifest, "data", &mut sink, &ctx.options).await?;
    Ok(RestoreOutcome {
        target: format!("{}/{}", conn.server(), conn.database()),
        summary: report.summary,
    })
}

/// Level-3 verification into a scratch database on the server `url` names.
pub async fn verify_restore(
    manifest: &Manifest,
    url: &str,
    ctx: &RestoreContext,
) -> CliResult<VerifyReport> {
    let cfg = config(Some(url), None);
    Ok(backup_timescale::verify_restore(&ctx.store, manifest, &cfg, &ctx.options).await?)
}

/// Registers the TimescaleDB format reader (the pg_dump archive reader).
pub fn register_formats(reg: &mut FormatRegistry) {
    backup_timescale::register_formats(reg);
}
