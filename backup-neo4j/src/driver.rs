//! [`Neo4jDriver`]: the [`backup_core::Driver`] of kind `neo4j`, used by the CLI and the
//! Python module alike.
//!
//! The server comes from the URL (options, restore target) or `NEO4J_URI`; a URL path
//! names the database (`bolt://host:7687/movies`); the user from the options, the target
//! or `NEO4J_USERNAME`; the password only from the target (Python keyword) or
//! `NEO4J_PASSWORD`, never argv; the database from the options, the target or
//! `NEO4J_DATABASE`. `offline` streams `neo4j-admin database dump` instead (Community
//! Edition; the database must be stopped).
//!
//! Level-3 verification restores into a scratch database: the one the URL's path names
//! (it must exist and be empty, and is emptied again afterwards), else a new
//! `dbseal-verify-<random>` made with `CREATE DATABASE` and dropped afterwards (Neo4j
//! Enterprise only; Community Edition and ArcadeDB need the scratch database named).

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::driver::{
    args_of, options_of, BackupContext, Capabilities, Driver, DriverOptions, RestoreContext,
    RestoreOutcome, RestoreTarget,
};
use backup_core::{Error, FormatReader, Manifest, Result, VerifyReport};
use serde::{Deserialize, Serialize};

use crate::config::{Neo4jConfig, SCHEMES};
use crate::sink::{Neo4jAdminSink, Neo4jSink, Neo4jSinkOptions};
use crate::source::{Neo4jAdminSource, Neo4jSource, ADMIN_DUMP_FORMAT};
use crate::verify::{create_database, drop_database, verify_restore};

/// The kind name.
pub const KIND: &str = "neo4j";

/// The neo4j-admin executable used when none is given.
pub const DEFAULT_NEO4J_ADMIN: &str = "neo4j-admin";

/// Options of a Neo4j backup (`dbseal backup neo4j`, `backup_neo4j()`,
/// `[datastores.NAME.options]`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Neo4jBackupOptions {
    /// Server URL: bolt://, bolt+s://, neo4j://, neo4j+s:// (default: NEO4J_URI, else
    /// bolt://localhost:7687). The password comes from NEO4J_PASSWORD.
    #[arg(long)]
    pub url: Option<String>,
    /// User name (default: NEO4J_USERNAME, else neo4j).
    #[arg(long)]
    pub user: Option<String>,
    /// Database name (default: NEO4J_DATABASE, else the server's default database).
    #[arg(long)]
    pub database: Option<String>,
    /// Offline physical dump with `neo4j-admin database dump --to-stdout DATABASE`
    /// (Community Edition: the database must be stopped; run on the database host).
    #[arg(long, requires = "database")]
    pub offline: bool,
    /// The neo4j-admin executable for --offline.
    #[arg(long, default_value = DEFAULT_NEO4J_ADMIN)]
    pub neo4j_admin: PathBuf,
}

impl Default for Neo4jBackupOptions {
    fn default() -> Self {
        Neo4jBackupOptions {
            url: None,
            user: None,
            database: None,
            offline: false,
            neo4j_admin: PathBuf::from(DEFAULT_NEO4J_ADMIN),
        }
    }
}

impl Neo4jBackupOptions {
    /// Refuses contradictory settings.
    fn check(&self) -> Result<()> {
        if self.offline && self.database.is_none() {
            return Err(Error::Config(
                "neo4j: --offline needs --database NAME".into(),
            ));
        }
        Ok(())
    }
}

/// The Neo4j [`Driver`]: the dbseal graph stream over Bolt, or offline neo4j-admin dumps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neo4jDriver;

/// Splits the database a URL's path names off the URL (`bolt://h:7687/movies` gives
/// `bolt://h:7687` and `movies`). A URL that does not parse is returned as it is (the
/// connection reports it).
fn split_database(url: &str) -> (String, Option<String>) {
    if let Ok(mut parsed) = url::Url::parse(url) {
        let path = parsed.path().trim_matches('/').to_string();
        if !path.is_empty() {
            parsed.set_path("");
            return (parsed.to_string(), Some(path));
        }
    }
    (url.to_string(), None)
}

/// The connection settings: `url` (its path may name the database) or `NEO4J_URI`, then
/// `user` and `database` when given, then the `NEO4J_*` environment for what is unset.
pub fn connection_config(
    url: Option<&str>,
    user: Option<&str>,
    database: Option<&str>,
) -> Neo4jConfig {
    let mut cfg = match url {
        Some(u) => Neo4jConfig::new(u),
        None => Neo4jConfig::from_env(),
    };
    let (server, path_db) = split_database(&cfg.url);
    cfg.url = server;
    if path_db.is_some() {
        cfg.database = path_db;
    }
    if let Some(u) = user {
        cfg.user = Some(u.to_string());
    }
    if let Some(d) = database {
        cfg.database = Some(d.to_string());
    }
    cfg.with_env_defaults()
}

/// A random 32-bit number for a scratch database name.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

#[async_trait::async_trait]
impl Driver for Neo4jDriver {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn about(&self) -> &'static str {
        "Back up a Neo4j graph over Bolt (or offline with neo4j-admin)"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &SCHEMES
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            offline_tool: true,
            named_database: true,
            verify_restore: true,
            staging_swap: false,
            ..Default::default()
        }
    }

    fn formats(&self) -> Vec<Arc<dyn FormatReader>> {
        crate::format_readers()
    }

    fn check_backup_options(&self, options: &DriverOptions) -> Result<()> {
        let typed: Neo4jBackupOptions = options.parse(KIND)?;
        typed.check()?;
        if let Some(url) = &typed.url {
            let (server, _) = split_database(url);
            crate::config::Neo4jConfig::new(server).endpoint()?;
        }
        Ok(())
    }

    fn backup_args(&self, command: clap::Command) -> clap::Command {
        args_of::<Neo4jBackupOptions>(command)
    }

    fn backup_options_from(&self, matches: &clap::ArgMatches) -> Result<DriverOptions> {
        options_of::<Neo4jBackupOptions>(matches)
    }

    async fn backup(&self, options: &DriverOptions, ctx: &BackupContext) -> Result<Manifest> {
        let typed: Neo4jBackupOptions = options.parse(KIND)?;
        typed.check()?;
        if typed.offline {
            let db = typed.database.clone().unwrap_or_default();
            let mut source = Neo4jAdminSource::new(&typed.neo4j_admin, db);
            return backup_core::backup(&ctx.store, &mut source, ctx.options.clone()).await;
        }
        let cfg = connection_config(
            typed.url.as_deref(),
            typed.user.as_deref(),
            typed.database.as_deref(),
        );
        let mut source = Neo4jSource::new(cfg);
        backup_core::backup(&ctx.store, &mut source, ctx.options.clone()).await
    }

    async fn restore(
        &self,
        manifest: &Manifest,
        target: &RestoreTarget,
        ctx: &RestoreContext,
    ) -> Result<RestoreOutcome> {
        if manifest.artifact.format == ADMIN_DUMP_FORMAT {
            let db = target
                .database
                .clone()
                .or_else(|| {
                    manifest
                        .source
                        .get("database")
                        .and_then(|v| v.as_str())
                        .map(String::from)
                })
                .ok_or_else(|| {
                    Error::Config("restoring a neo4j-admin dump needs --database NAME".into())
                })?;
            let binary = target
                .neo4j_admin
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_NEO4J_ADMIN));
            // The name may come from the (untrusted) manifest: never `system`, never an
            // option for neo4j-admin.
            crate::config::validate_database_name(&db)?;
            let mut sink = Neo4jAdminSink::new(binary, db.clone()).replace(target.replace);
            return ctx
                .restore_into(
                    manifest,
                    &mut sink,
                    format!("neo4j-admin database load {db}"),
                )
                .await;
        }
        if target.neo4j_admin.is_some() {
            return Err(Error::Config(format!(
                "backup {} is a graph stream, restored over Bolt: --neo4j-admin applies to offline (neo4j-admin) dumps only",
                manifest.backup_id
            )));
        }
        let mut cfg = connection_config(
            target.url.as_deref(),
            target.user.as_deref(),
            target.database.as_deref(),
        );
        if let Some(p) = &target.password {
            cfg.password = Some(p.clone());
        }
        let shown = format!(
            "{} ({})",
            cfg.redacted_url(),
            cfg.database.as_deref().unwrap_or("default database")
        );
        let options = Neo4jSinkOptions {
            replace: target.replace,
            ..Default::default()
        };
        let mut sink = Neo4jSink::new(cfg, options).report_alteration(ctx.altered.clone());
        ctx.restore_into(manifest, &mut sink, shown).await
    }

    /// Restores into the scratch database the URL's path names (existing and empty;
    /// emptied again afterwards), or, without one, into a new `dbseal-verify-<random>`
    /// database made with `CREATE DATABASE` and dropped afterwards (Neo4j Enterprise).
    /// `NEO4J_DATABASE` is not used: it names the production database.
    async fn verify_restore(
        &self,
        manifest: &Manifest,
        url: &str,
        ctx: &RestoreContext,
    ) -> Result<VerifyReport> {
        let (server_url, scratch_db) = split_database(url);
        let mut server = Neo4jConfig::new(server_url).with_env_defaults();
        server.database = None;
        if let Some(db) = scratch_db {
            let scratch = server.database(db);
            return verify_restore(&ctx.store, manifest, &ctx.options, &scratch, &ctx.cancel).await;
        }
        let name = format!("dbseal-verify-{:08x}", random_u32());
        create_database(&server, &name).await.map_err(|e| {
            Error::datastore(
                KIND,
                e.kind(),
                format!(
                    "{e}; a server without CREATE DATABASE (Community Edition, ArcadeDB) needs an empty scratch database created beforehand, named in the URL's path (bolt://host:7687/NAME)"
                ),
            )
        })?;
        let scratch = server.clone().database(name.clone());
        let result =
            verify_restore(&ctx.store, manifest, &ctx.options, &scratch, &ctx.cancel).await;
        let dropped = drop_database(&server, &name).await;
        let report = result?;
        dropped?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_path_names_the_database() {
        let (u, db) = split_database("bolt://h:7687/movies");
        assert_eq!(db.as_deref(), Some("movies"));
        assert!(!u.contains("movies"), "{u}");
        assert_eq!(split_database("bolt://h:7687").1, None);
        assert_eq!(split_database("bolt://h:7687/").1, None);
        let c = connection_config(Some("bolt://h:7687/movies"), Some("bob"), None);
        assert_eq!(c.database.as_deref(), Some("movies"));
        assert_eq!(c.user.as_deref(), Some("bob"));
        let c = connection_config(Some("bolt://h:7687/movies"), None, Some("films"));
        assert_eq!(c.database.as_deref(), Some("films"));
    }

    #[test]
    fn options_refuse_unknown_keys_and_offline_without_database() {
        let d = Neo4jDriver;
        let mut o = DriverOptions::new();
        o.set("url", "bolt://h:7687");
        d.check_backup_options(&o).unwrap();
        let typed: Neo4jBackupOptions = o.parse(KIND).unwrap();
        assert_eq!(typed.neo4j_admin, PathBuf::from("neo4j-admin"));
        o.set("databse", "x");
        let err = d.check_backup_options(&o).unwrap_err();
        assert_eq!(err.kind(), backup_core::ErrorKind::Config);
        assert!(err.to_string().contains("databse"), "{err}");
        let mut o = DriverOptions::new();
        o.set("offline", true);
        let err = d.check_backup_options(&o).unwrap_err();
        assert!(err.to_string().contains("--database"), "{err}");
        o.set("database", "neo4j");
        d.check_backup_options(&o).unwrap();
        let mut o = DriverOptions::new();
        o.set("url", "http://u:hunter2@h");
        let err = d.check_backup_options(&o).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn clap_args_round_trip_into_options() {
        let d = Neo4jDriver;
        let m = d
            .backup_args(clap::Command::new("neo4j"))
            .try_get_matches_from(["neo4j", "--offline", "--database", "g"])
            .unwrap();
        let o = d.backup_options_from(&m).unwrap();
        assert_eq!(o.0.get("offline"), Some(&serde_json::json!(true)));
        assert_eq!(o.get_str("database"), Some("g"));
        assert_eq!(o.get_str("neo4j-admin"), Some("neo4j-admin"));
        assert!(d
            .backup_args(clap::Command::new("neo4j"))
            .try_get_matches_from(["neo4j", "--offline"])
            .is_err());
    }
}
