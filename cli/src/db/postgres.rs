//! `dbseal backup postgres`, restore and level-3 verification for postgres.
//!
//! Translation only: flags → `backup_postgres::{PostgresConfig, DumpOptions,
//! RestoreTarget}` → library call. Connection settings follow libpq: `--url` and/or
//! `--host/--port/--user/--dbname`, then the `PG*` environment variables. Passwords come
//! from `PGPASSWORD`, `--password-file` or a libpq passfile (`--passfile`/`PGPASSFILE`),
//! and reach pg_dump/pg_restore only through the environment.

use std::path::PathBuf;

use backup_core::{FormatRegistry, Manifest, SecretString, VerifyReport};
use backup_postgres::{DumpOptions, PostgresConfig, PostgresSink, PostgresSource};

use super::{BackupContext, RestoreContext, RestoreOutcome};
use crate::commands::restore::RestoreTarget;
use crate::exit::{CliError, CliResult};

/// Flags of `dbseal backup postgres`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackupArgs {
    /// Connection URL, `postgres://user@host:port/database` (credentials are better
    /// passed through PGPASSWORD, --password-file or a passfile).
    #[arg(long)]
    pub url: Option<String>,
    /// Server host or Unix-socket directory (default: PGHOST, then the local socket).
    #[arg(long)]
    pub host: Option<String>,
    /// Server port (default: PGPORT, then 5432).
    #[arg(long)]
    pub port: Option<u16>,
    /// User name (default: PGUSER, then the OS user).
    #[arg(long)]
    pub user: Option<String>,
    /// Database name (default: PGDATABASE, then the user name).
    #[arg(long)]
    pub dbname: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// A libpq password file (~/.pgpass format), handed to pg_dump as PGPASSFILE.
    #[arg(long)]
    pub passfile: Option<PathBuf>,
    /// Directory of the PostgreSQL client binaries (pg_dump must be at least as new as
    /// the server).
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Dump only schemas matching this pattern (repeatable).
    #[arg(long)]
    pub schema: Vec<String>,
    /// Leave out schemas matching this pattern (repeatable).
    #[arg(long)]
    pub exclude_schema: Vec<String>,
    /// Dump only tables matching this pattern (repeatable).
    #[arg(long)]
    pub table: Vec<String>,
    /// Leave out tables matching this pattern (repeatable).
    #[arg(long)]
    pub exclude_table: Vec<String>,
    /// Keep the definition but leave out the data of tables matching this pattern.
    #[arg(long)]
    pub exclude_table_data: Vec<String>,
    /// Also back up roles and tablespaces (pg_dumpall --globals-only) as the artifact
    /// `globals` of the same backup.
    #[arg(long)]
    pub globals: bool,
    /// Physical base backup of the whole cluster (pg_basebackup) for point-in-time
    /// recovery with the WAL archive `dbseal wal-push` feeds; restore it with
    /// `dbseal restore ID --pgdata DIR --latest|--target-…`.
    #[arg(long, conflicts_with_all = ["schema", "exclude_schema", "table", "exclude_table", "exclude_table_data", "globals"])]
    pub physical: bool,
    /// With --physical: an immediate checkpoint (the backup starts at once) instead of a
    /// spread one.
    #[arg(long, requires = "physical")]
    pub fast_checkpoint: bool,
}

fn password_from_file(path: &std::path::Path) -> CliResult<SecretString> {
    SecretString::from_file(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })
}

/// Runs `dbseal backup postgres`.
pub async fn backup(args: &BackupArgs, ctx: &BackupContext) -> CliResult<Manifest> {
    let config = PostgresConfig {
        url: args.url.clone(),
        host: args.host.clone(),
        port: args.port,
        user: args.user.clone(),
        password: args
            .password_file
            .as_deref()
            .map(password_from_file)
            .transpose()?,
        passfile: args.passfile.clone(),
        database: args.dbname.clone(),
        sslmode: None,
        pg_bin_dir: args.pg_bin_dir.clone(),
    };
    if args.physical {
        return crate::commands::wal::backup_physical(&config, args.fast_checkpoint, ctx).await;
    }
    let options = DumpOptions {
        schemas: args.schema.clone(),
        exclude_schemas: args.exclude_schema.clone(),
        tables: args.table.clone(),
        exclude_tables: args.exclude_table.clone(),
        exclude_table_data: args.exclude_table_data.clone(),
        globals: args.globals,
    };
    let mut source = PostgresSource::new(&config, options)?;
    Ok(backup_postgres::backup(&ctx.store, &mut source, ctx.options()?).await?)
}

/// The restore target's connection: `--url` (or the environment) and `--pg-bin-dir`.
fn target_config(url: Option<&str>, pg_bin_dir: Option<PathBuf>) -> PostgresConfig {
    PostgresConfig {
        url: url.map(str::to_string),
        pg_bin_dir,
        ..Default::default()
    }
}

/// Restores a postgres backup into the target.
pub async fn restore(
    manifest: &Manifest,
    target: &RestoreTarget,
    ctx: &RestoreContext,
) -> CliResult<RestoreOutcome> {
    let config = target_config(target.url.as_deref(), target.pg_bin_dir.clone());
    let mut sink = PostgresSink::new(
        &config,
        backup_postgres::RestoreTarget {
            create_db: target.create_db,
            replace: target.replace,
            schemas: target.schema.clone(),
            tables: target.table.clone(),
            no_owner: target.no_owner,
            role: target.role.clone(),
            ..Default::default()
        },
    )?;
    let conn = sink.connection();
    let where_to = format!("{}/{}", conn.server(), conn.database());
    let report =
        backup_core::restore(&ctx.store, manifest, "data", &mut sink, &ctx.options).await?;
    Ok(RestoreOutcome {
        target: where_to,
        summary: report.summary,
    })
}

/// Level-3 verification into a scratch database at `url`.
pub async fn verify_restore(
    manifest: &Manifest,
    url: &str,
    ctx: &RestoreContext,
) -> CliResult<VerifyReport> {
    let config = target_config(Some(url), None);
    Ok(backup_postgres::verify_restore(&ctx.store, manifest, &config, &ctx.options).await?)
}

/// Registers the postgres format readers (`pgdump`, and `pgsql` for `globals`).
pub fn register_formats(reg: &mut FormatRegistry) {
    backup_postgres::register_formats(reg);
}
