//! [`PostgresDriver`]: PostgreSQL as a [`backup_core::Driver`], the one place both
//! front-ends (`dbseal backup postgres`, `dbseal.backup_postgres()`) reach PostgreSQL
//! through.
//!
//! Connection settings follow libpq: `url` and/or `host`/`port`/`user`/`dbname`, then
//! the `PG*` environment variables. Passwords come from `PGPASSWORD`, `password-file`,
//! a libpq passfile (`passfile`/`PGPASSFILE`) or, on restore, the target's password, and
//! reach pg_dump/pg_restore only through the environment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::driver::{
    args_of, options_of, BackupContext, Capabilities, Driver, DriverOptions, RestoreContext,
    RestoreOutcome, RestoreTarget as DriverTarget,
};
use backup_core::{BackupOptions, BackupStore, VerifyReport};
use backup_core::{Error, FormatReader, Manifest, Result, SecretString};
use serde::{Deserialize, Serialize};

use crate::physical::{self, PhysicalOptions, PhysicalSource};
use crate::{
    DumpOptions, GlobalsFormat, PgDumpFormat, PostgresConfig, PostgresSink, PostgresSource,
};

/// The options of a PostgreSQL backup: the flags of `dbseal backup postgres`, the
/// keywords of `dbseal.backup_postgres()`, the `[datastores.NAME.options]` of a
/// `kind = "postgres"` datastore.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct PostgresBackupOptions {
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

impl PostgresBackupOptions {
    /// Refuses contradictory settings (the checks clap makes on the command line, for
    /// options from a config file or Python).
    pub fn check(&self) -> Result<()> {
        if self.physical {
            let logical: Vec<&str> = [
                ("schema", !self.schema.is_empty()),
                ("exclude-schema", !self.exclude_schema.is_empty()),
                ("table", !self.table.is_empty()),
                ("exclude-table", !self.exclude_table.is_empty()),
                ("exclude-table-data", !self.exclude_table_data.is_empty()),
                ("globals", self.globals),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            if !logical.is_empty() {
                return Err(Error::Config(format!(
                    "postgres options: `physical` backs up the whole cluster; {} do not apply to it",
                    logical
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        } else if self.fast_checkpoint {
            return Err(Error::Config(
                "postgres options: `fast-checkpoint` applies only to a `physical` backup".into(),
            ));
        }
        if self.port == Some(0) {
            return Err(Error::Config(
                "postgres options: port 0 is not a valid port".into(),
            ));
        }
        Ok(())
    }

    /// The connection these options name (reads the password file, if any).
    pub fn config(&self) -> Result<PostgresConfig> {
        Ok(PostgresConfig {
            url: self.url.clone(),
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self
                .password_file
                .as_deref()
                .map(password_from_file)
                .transpose()?,
            passfile: self.passfile.clone(),
            database: self.dbname.clone(),
            sslmode: None,
            pg_bin_dir: self.pg_bin_dir.clone(),
        })
    }

    /// The pg_dump selection of a logical backup.
    pub fn dump_options(&self) -> DumpOptions {
        DumpOptions {
            schemas: self.schema.clone(),
            exclude_schemas: self.exclude_schema.clone(),
            tables: self.table.clone(),
            exclude_tables: self.exclude_table.clone(),
            exclude_table_data: self.exclude_table_data.clone(),
            globals: self.globals,
        }
    }
}

/// The password of a `password-file` option: the file's first line.
pub fn password_from_file(path: &Path) -> Result<SecretString> {
    SecretString::from_file(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })
}

/// The connection of a restore or verification target: its URL (or the environment),
/// the binaries directory, and the user and password given apart (Python keywords).
pub fn target_config(
    url: Option<&str>,
    pg_bin_dir: Option<PathBuf>,
    user: Option<String>,
    password: Option<SecretString>,
) -> PostgresConfig {
    PostgresConfig {
        url: url.map(str::to_string),
        pg_bin_dir,
        user,
        password,
        ..Default::default()
    }
}

/// A physical base backup of the whole cluster (`pg_basebackup`), committed as a backup
/// of the store. Warns (through `tracing`) when the WAL the base backup needs did not
/// reach the datastore's WAL archive, i.e. when `archive_command` is not set up.
pub async fn backup_physical(
    store: &BackupStore,
    config: &PostgresConfig,
    fast_checkpoint: bool,
    options: BackupOptions,
) -> Result<Manifest> {
    let mut source = PhysicalSource::new(
        config,
        PhysicalOptions {
            fast_checkpoint,
            ..Default::default()
        },
    )?;
    let manifest = physical::backup_physical(store, &mut source, options).await?;
    if !wal_archived(&manifest) {
        tracing::warn!(
            "the WAL base backup {} needs is not in the WAL archive of datastore `{}`: check archive_command = 'dbseal wal-push --datastore {} %p'",
            manifest.backup_id,
            manifest.datastore.name,
            manifest.datastore.name
        );
    }
    Ok(manifest)
}

/// Whether the manifest of a physical backup says the WAL it needs reached the archive.
pub fn wal_archived(manifest: &Manifest) -> bool {
    manifest
        .source
        .get("wal_archived")
        .and_then(|v| v.as_bool())
        == Some(true)
}

/// PostgreSQL (kind `postgres`): logical backups with pg_dump (plus the optional
/// `globals` artifact), physical base backups for point-in-time recovery, restores with
/// pg_restore, level-3 verification into a scratch database.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresDriver;

#[async_trait::async_trait]
impl Driver for PostgresDriver {
    fn kind(&self) -> &'static str {
        crate::KIND
    }

    fn about(&self) -> &'static str {
        "Back up a PostgreSQL database (pg_dump custom format)."
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_target: true,
            selective_restore: true,
            physical: true,
            verify_restore: true,
            ..Default::default()
        }
    }

    fn formats(&self) -> Vec<Arc<dyn FormatReader>> {
        vec![Arc::new(PgDumpFormat), Arc::new(GlobalsFormat)]
    }

    fn check_backup_options(&self, options: &DriverOptions) -> Result<()> {
        options.parse::<PostgresBackupOptions>(self.kind())?.check()
    }

    fn backup_args(&self, command: clap::Command) -> clap::Command {
        args_of::<PostgresBackupOptions>(command)
    }

    fn backup_options_from(&self, matches: &clap::ArgMatches) -> Result<DriverOptions> {
        options_of::<PostgresBackupOptions>(matches)
    }

    async fn backup(&self, options: &DriverOptions, ctx: &BackupContext) -> Result<Manifest> {
        let options: PostgresBackupOptions = options.parse(self.kind())?;
        options.check()?;
        let config = options.config()?;
        let run = async {
            if options.physical {
                return backup_physical(
                    &ctx.store,
                    &config,
                    options.fast_checkpoint,
                    ctx.options.clone(),
                )
                .await;
            }
            let mut source = PostgresSource::new(&config, options.dump_options())?;
            // Not backup_core::backup: this one also writes the `globals` artifact.
            crate::backup(&ctx.store, &mut source, ctx.options.clone()).await
        };
        // Cancellation (ctx.options.cancel) is the backup session's: it stops the
        // source, deletes what was uploaded and commits nothing.
        run.await
    }

    async fn restore(
        &self,
        manifest: &Manifest,
        target: &DriverTarget,
        ctx: &RestoreContext,
    ) -> Result<RestoreOutcome> {
        let config = target_config(
            target.url.as_deref(),
            target.pg_bin_dir.clone(),
            target.user.clone(),
            target.password.clone(),
        );
        let mut sink = PostgresSink::new(
            &config,
            crate::RestoreTarget {
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
        ctx.restore_into(manifest, &mut sink, where_to).await
    }

    fn continuous_archive(&self) -> Option<Arc<dyn backup_core::ops::ContinuousArchive>> {
        Some(Arc::new(crate::pitr::PostgresWalArchive::default()))
    }

    async fn verify_restore(
        &self,
        manifest: &Manifest,
        url: &str,
        ctx: &RestoreContext,
    ) -> Result<VerifyReport> {
        let server = target_config(Some(url), None, None, None).resolve()?;
        crate::verify_restore_as(
            &ctx.store,
            manifest,
            &server,
            &ctx.options,
            &[],
            &ctx.cancel,
        )
        .await
    }
}
