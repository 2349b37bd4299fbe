//! The [`Driver`] trait: everything a database crate offers dbseal's operations and
//! front-ends, and the [`Registry`] that lists the drivers a build knows.
//!
//! Each database crate (`backup-postgres`, `backup-timescale`, `backup-redis`,
//! `backup-neo4j`) implements [`Driver`] once. The operations in [`crate::ops`] (backup
//! sets, safety backups, restore planning, verification, config checks) work through
//! this trait only, so they never name a database kind; the CLI and the Python module
//! compose a [`Registry`] in a few lines and translate arguments into calls. Adding a
//! fifth database touches one new crate and one registry line.
//!
//! Options of a kind (the flags of `dbseal backup <kind>`, the keywords of
//! `dbseal.backup_<kind>()`, the `[datastores.NAME.options]` table of `dbseal.toml`)
//! travel as [`DriverOptions`]: a JSON object whose keys are the flag names without
//! dashes (`exclude-table`, `pg-bin-dir`). A driver deserializes them into its own typed
//! struct with [`DriverOptions::parse`], so an unknown or mistyped key is an error that
//! names the key and the kind. A driver also describes its options as clap arguments,
//! from the same struct, so the CLI's `dbseal backup <kind>` is generated.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::contents::{FormatReader, FormatRegistry};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::pipeline::{BackupOptions, RestoreOptions};
use crate::store::BackupStore;
use crate::verify::VerifyReport;

/// What a driver can do, as data (the way OpenDAL describes a service). Front-ends and
/// operations consult it instead of matching on kind names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Restore can create the target database (`--create-db`).
    pub create_target: bool,
    /// Restore can select schemas/tables (`--schema`, `--table`).
    pub selective_restore: bool,
    /// Restore can select and remap databases (`--db SRC[:DEST]`) and keys (`--match`).
    pub database_map: bool,
    /// Restore can write the native file for an offline start (`--to-rdb`).
    pub offline_file: bool,
    /// Backups and restores through the database's own offline tool (neo4j-admin).
    pub offline_tool: bool,
    /// The target names a database inside the server (`--database`).
    pub named_database: bool,
    /// `--replace` restores into a staging area and swaps it in.
    pub staging_swap: bool,
    /// Physical backups with point-in-time recovery (`--physical`, `--pgdata`).
    pub physical: bool,
    /// A restored target can be checked against the manifest (level-3 verification).
    pub verify_restore: bool,
}

/// Options of one database kind, keyed by flag name without dashes.
///
/// May hold a connection URL with a password: its `Debug` redacts every value whose key
/// names a secret and every URL's password.
#[derive(Clone, Default, PartialEq)]
pub struct DriverOptions(pub serde_json::Map<String, serde_json::Value>);

impl std::fmt::Debug for DriverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if crate::secret::is_secret_name(k) {
                m.entry(k, &crate::secret::REDACTED);
            } else if let Some(s) = v.as_str() {
                m.entry(k, &crate::secret::redact_url(s));
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

impl DriverOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (a flag name without dashes) to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) -> &mut Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    /// The string value of `key`, if set.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.as_str())
    }

    /// Deserializes these options into a driver's typed struct (which should use
    /// `#[serde(rename_all = "kebab-case", deny_unknown_fields)]`). An unknown key or a
    /// wrong type is a config error naming the key and `kind`.
    pub fn parse<T: DeserializeOwned>(&self, kind: &str) -> Result<T> {
        // serde_path_to_error names the key whose value has the wrong type.
        let value = serde_json::Value::Object(self.0.clone());
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let at = if path.is_empty() || path == "." {
                String::new()
            } else {
                format!("`{path}`: ")
            };
            Error::Config(format!(
                "{kind} options: {at}{} (see `dbseal backup {kind} --help`)",
                crate::secret::scrub_serde_error(&e.into_inner().to_string())
            ))
        })
    }

    /// Options from a typed struct (the inverse of [`DriverOptions::parse`]).
    pub fn from_typed<T: Serialize>(value: &T) -> Result<Self> {
        match serde_json::to_value(value) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.retain(|_, v| !v.is_null());
                Ok(DriverOptions(m))
            }
            Ok(_) => Err(Error::Config("driver options must be a struct".into())),
            Err(e) => Err(Error::Config(format!("driver options: {e}"))),
        }
    }
}

/// What a backup needs besides the driver's own options.
pub struct BackupContext {
    /// The store to write to.
    pub store: BackupStore,
    /// Datastore name, encryption, zstd settings, labels, progress, and the cancellation
    /// token ([`BackupOptions::cancel`]: SIGINT/SIGTERM, `KeyboardInterrupt`) that stops
    /// the source, deletes what was uploaded and commits nothing.
    pub options: BackupOptions,
}

/// What a restore or a level-3 verification needs besides the target.
pub struct RestoreContext {
    /// The store to read from.
    pub store: BackupStore,
    /// Keys and progress.
    pub options: RestoreOptions,
    /// Cancelled when the user interrupts; the sink then rolls back.
    pub cancel: CancellationToken,
    /// Marked by a sink that failed after changing the target beyond its own undo (a
    /// Neo4j `--replace` whose old graph was already deleted); the restore operation
    /// then puts the target back from the safety backup it took.
    pub altered: TargetAltered,
}

/// A flag a sink raises when it failed and could not leave the target as it was (see
/// [`RestoreContext::altered`]). Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct TargetAltered(Arc<std::sync::atomic::AtomicBool>);

impl TargetAltered {
    /// Says the target was left changed.
    pub fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a sink said so.
    pub fn is_marked(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl RestoreContext {
    /// Restores the `data` artifact of `manifest` into `sink`, cancellable through
    /// [`RestoreContext::cancel`] (the sink's input fails and the sink rolls back), and
    /// reports it as restored into `target` (a description without credentials). The one
    /// way every driver runs its sink.
    pub async fn restore_into(
        &self,
        manifest: &Manifest,
        sink: &mut dyn crate::sink::Sink,
        target: String,
    ) -> Result<RestoreOutcome> {
        let mut sink = crate::sink::CancellableSink::new(sink, self.cancel.clone());
        let report =
            crate::pipeline::restore(&self.store, manifest, "data", &mut sink, &self.options)
                .await?;
        Ok(RestoreOutcome {
            target,
            summary: report.summary,
        })
    }
}

/// Where and how a backup is restored into a database. Every driver reads the fields
/// its [`Capabilities`] say it supports; [`Registry::check_target`] refuses the others
/// before anything is touched.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(default, rename_all = "kebab-case")]
pub struct RestoreTarget {
    /// The database to restore into (postgres://…, redis://…, bolt://…). Defaults to the
    /// kind's environment (PG* variables, REDIS_URL, NEO4J_URI). Prefer passing
    /// passwords through the environment rather than in this URL.
    #[arg(long)]
    pub url: Option<String>,
    /// PostgreSQL: create the target database.
    #[arg(long)]
    pub create_db: bool,
    /// Replace the contents of a non-empty target (otherwise it is refused).
    #[arg(long)]
    pub replace: bool,
    /// PostgreSQL: restore only these schemas (repeatable).
    #[arg(long)]
    pub schema: Vec<String>,
    /// PostgreSQL: restore only these tables (repeatable).
    #[arg(long)]
    pub table: Vec<String>,
    /// PostgreSQL: do not restore ownership.
    #[arg(long)]
    pub no_owner: bool,
    /// PostgreSQL: role to restore as (SET ROLE).
    #[arg(long)]
    pub role: Option<String>,
    /// Directory of the PostgreSQL client binaries.
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<std::path::PathBuf>,
    /// TimescaleDB: allow a different extension or PostgreSQL version on the target.
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// Redis: restore only these database indexes (repeatable; SRC or SRC:DEST to remap).
    #[arg(long)]
    pub db: Vec<String>,
    /// Redis: restore only keys matching this glob pattern (repeatable).
    #[arg(long = "match")]
    #[serde(rename = "match")]
    pub key_match: Vec<String>,
    /// Redis: write a plain dump.rdb for an offline start instead of replaying keys.
    #[arg(long, conflicts_with = "url")]
    pub to_rdb: Option<std::path::PathBuf>,
    /// Neo4j: the target database name.
    #[arg(long)]
    pub database: Option<String>,
    /// Neo4j: the neo4j-admin executable, to load an offline (`--offline`) dump.
    #[arg(long)]
    pub neo4j_admin: Option<std::path::PathBuf>,
    /// Redis: the ACL user; Neo4j: the user name (Python keyword; the CLI reads the
    /// kind's environment).
    #[arg(skip)]
    pub user: Option<String>,
    /// A password for the target when its URL has none (Python keyword; the CLI reads the
    /// kind's environment). Never serialized.
    #[arg(skip)]
    #[serde(skip)]
    pub password: Option<crate::secret::SecretString>,
}

/// The result of a restore, for output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreOutcome {
    /// Where the backup went (without credentials).
    pub target: String,
    /// Lines for the user.
    pub summary: Vec<String>,
}

/// A database kind's backup, restore and verification, implemented once per database
/// crate. See the module docs.
#[async_trait::async_trait]
pub trait Driver: Send + Sync + 'static {
    /// The kind name, as in manifests, `dbseal backup <kind>` and `kind = "…"`.
    fn kind(&self) -> &'static str;

    /// One line for `dbseal backup --help`.
    fn about(&self) -> &'static str;

    /// URL schemes of its servers (`postgres`, `postgresql`; `redis`, `rediss`; `bolt`…);
    /// the first is used to build a URL from host/port/user settings.
    fn url_schemes(&self) -> &'static [&'static str];

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// The readers of the native formats its backups hold (for level-2 verification and
    /// `inspect`).
    fn formats(&self) -> Vec<Arc<dyn FormatReader>>;

    /// Whether it restores backups of `kind` (its own; a driver may accept a compatible
    /// kind, as PostgreSQL and TimescaleDB accept each other's).
    fn restores_kind(&self, kind: &str) -> bool {
        kind == self.kind()
    }

    /// Checks backup options without connecting (`dbseal config check`): unknown keys,
    /// wrong types, contradictory settings.
    fn check_backup_options(&self, options: &DriverOptions) -> Result<()>;

    /// The clap arguments of `dbseal backup <kind>` (its options struct, flattened).
    fn backup_args(&self, command: clap::Command) -> clap::Command;

    /// Reads the options [`Driver::backup_args`] declared back out of parsed arguments.
    fn backup_options_from(&self, matches: &clap::ArgMatches) -> Result<DriverOptions>;

    /// Backs up the database the options (or the kind's environment) name and commits
    /// the manifest. Every artifact the backup holds (e.g. PostgreSQL globals) is part of
    /// it.
    async fn backup(&self, options: &DriverOptions, ctx: &BackupContext) -> Result<Manifest>;

    /// Restores `manifest` into `target`. A failed or cancelled restore leaves the target
    /// as it was.
    async fn restore(
        &self,
        manifest: &Manifest,
        target: &RestoreTarget,
        ctx: &RestoreContext,
    ) -> Result<RestoreOutcome>;

    /// The continuous archive of this kind's datastores (PostgreSQL's WAL), which
    /// `prune` and `status` take into account; `None` for most kinds.
    fn continuous_archive(&self) -> Option<Arc<dyn crate::ops::ContinuousArchive>> {
        None
    }

    /// Level-3 verification: restores into a scratch target on the server `url` names,
    /// compares the live contents with the manifest, and removes the scratch target.
    async fn verify_restore(
        &self,
        manifest: &Manifest,
        url: &str,
        ctx: &RestoreContext,
    ) -> Result<VerifyReport>;
}

/// The drivers a build knows, by kind.
#[derive(Clone, Default)]
pub struct Registry {
    drivers: BTreeMap<&'static str, Arc<dyn Driver>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.drivers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a driver (replacing one of the same kind).
    pub fn with(mut self, driver: impl Driver) -> Self {
        self.drivers.insert(driver.kind(), Arc::new(driver));
        self
    }

    /// The driver of `kind`, if built in.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Driver>> {
        self.drivers.get(kind)
    }

    /// The driver of `kind`, or a config error listing the known kinds.
    pub fn driver(&self, kind: &str) -> Result<&Arc<dyn Driver>> {
        self.get(kind).ok_or_else(|| {
            Error::Config(format!(
                "unknown datastore kind `{kind}` (this build knows: {})",
                self.kinds().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The driver that restores a backup described by `manifest`, or a config error
    /// saying the backup has no database target.
    pub fn driver_for(&self, manifest: &Manifest) -> Result<&Arc<dyn Driver>> {
        let kind = manifest.datastore.kind.as_str();
        self.get(kind).ok_or_else(|| {
            Error::Config(format!(
                "backup {} is of kind `{kind}`, which has no database target: restore it to a file or standard output",
                manifest.backup_id
            ))
        })
    }

    /// The kind names, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.drivers.keys().copied()
    }

    /// The drivers, sorted by kind.
    pub fn drivers(&self) -> impl Iterator<Item = &Arc<dyn Driver>> + '_ {
        self.drivers.values()
    }

    /// The continuous archives of every driver that has one.
    pub fn archives(&self) -> Vec<Arc<dyn crate::ops::ContinuousArchive>> {
        self.drivers
            .values()
            .filter_map(|d| d.continuous_archive())
            .collect()
    }

    /// Every format reader of every driver, plus the raw format.
    pub fn formats(&self) -> FormatRegistry {
        let mut reg = FormatRegistry::new();
        for d in self.drivers.values() {
            for f in d.formats() {
                reg.register(f);
            }
        }
        reg
    }

    /// Refuses target settings the backup's driver does not support, before anything is
    /// touched.
    pub fn check_target(&self, manifest: &Manifest, target: &RestoreTarget) -> Result<()> {
        let driver = self.driver_for(manifest)?;
        let caps = driver.capabilities();
        let kind = driver.kind();
        let mut refused = Vec::new();
        if target.create_db && !caps.create_target {
            refused.push("--create-db");
        }
        if (!target.schema.is_empty() || !target.table.is_empty()) && !caps.selective_restore {
            refused.push("--schema/--table");
        }
        if (!target.db.is_empty() || !target.key_match.is_empty()) && !caps.database_map {
            refused.push("--db/--match");
        }
        if target.to_rdb.is_some() && !caps.offline_file {
            refused.push("--to-rdb");
        }
        if target.neo4j_admin.is_some() && !caps.offline_tool {
            refused.push("--neo4j-admin");
        }
        if target.database.is_some() && !caps.named_database {
            refused.push("--database");
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "{} do not apply to a {kind} restore (backup {})",
                refused.join(", "),
                manifest.backup_id
            )))
        }
    }
}

/// For drivers: [`Driver::backup_args`] of a typed options struct.
pub fn args_of<T: clap::Args>(command: clap::Command) -> clap::Command {
    T::augment_args(command)
}

/// For drivers: [`Driver::backup_options_from`] of a typed options struct.
pub fn options_of<T: clap::FromArgMatches + Serialize>(
    matches: &clap::ArgMatches,
) -> Result<DriverOptions> {
    let typed = T::from_arg_matches(matches).map_err(|e| Error::Config(e.to_string()))?;
    DriverOptions::from_typed(&typed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Opts {
        port: Option<u16>,
        pg_bin_dir: Option<String>,
    }

    #[test]
    fn option_errors_name_the_key_and_hide_the_value() {
        let mut o = DriverOptions::new();
        o.set("port", "hunter2");
        let e = o.parse::<Opts>("postgres").unwrap_err().to_string();
        assert!(e.contains("`port`"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let mut o = DriverOptions::new();
        o.set("exclude-tabel", "x");
        let e = o.parse::<Opts>("postgres").unwrap_err().to_string();
        assert!(e.contains("exclude-tabel"), "{e}");
    }

    #[test]
    fn debug_redacts_secrets_and_url_passwords() {
        let mut o = DriverOptions::new();
        o.set("url", "redis://u:pw-123@h:1/0");
        o.set("password", "pw-456");
        let d = format!("{o:?}");
        assert!(!d.contains("pw-123") && !d.contains("pw-456"), "{d}");
    }
}
