//! `dbseal backup neo4j`, restore and level-3 verification for neo4j.
//!
//! Only translates flags into `backup-neo4j` calls. The server comes from `--url` or
//! `NEO4J_URI`, the user from `--user` or `NEO4J_USERNAME`, the password only from
//! `NEO4J_PASSWORD` (never argv), the database from `--database` or `NEO4J_DATABASE`
//! (a URL path, `bolt://host:7687/movies`, also names it). `--offline` streams
//! `neo4j-admin database dump` instead (Community Edition; the database must be stopped).

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{FormatRegistry, Manifest, VerifyReport};
use backup_neo4j::{
    GraphFormat, Neo4jAdminSink, Neo4jAdminSource, Neo4jConfig, Neo4jDumpFormat, Neo4jSink,
    Neo4jSinkOptions, Neo4jSource,
};

use super::{BackupContext, RestoreContext, RestoreOutcome};
use crate::commands::restore::RestoreTarget;
use crate::exit::{CliError, CliResult};

/// Flags of `dbseal backup neo4j`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackupArgs {
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
    #[arg(long, default_value = "neo4j-admin")]
    pub neo4j_admin: PathBuf,
}

/// The connection settings: URL (its path may name the database), then environment.
fn config(url: Option<&str>, user: Option<&str>, database: Option<&str>) -> CliResult<Neo4jConfig> {
    let mut cfg = match url {
        Some(u) => Neo4jConfig::new(u),
        None => Neo4jConfig::from_env(),
    };
    if let Ok(mut parsed) = url::Url::parse(&cfg.url) {
        let path = parsed.path().trim_matches('/').to_string();
        if !path.is_empty() {
            parsed.set_path("");
            cfg.url = parsed.to_string();
            cfg.database = Some(path);
        }
    }
    if let Some(u) = user {
        cfg.user = Some(u.to_string());
    }
    if let Some(d) = database {
        cfg.database = Some(d.to_string());
    }
    let cfg = cfg.with_env_defaults();
    Ok(cfg)
}

/// Runs `dbseal backup neo4j`.
pub async fn backup(args: &BackupArgs, ctx: &BackupContext) -> CliResult<Manifest> {
    if args.offline {
        let db = args
            .database
            .clone()
            .ok_or_else(|| CliError::usage("--offline needs --database NAME"))?;
        let mut source = Neo4jAdminSource::new(&args.neo4j_admin, db);
        return Ok(backup_core::backup(&ctx.store, &mut source, ctx.options()?).await?);
    }
    let cfg = config(
        args.url.as_deref(),
        args.user.as_deref(),
        args.database.as_deref(),
    )?;
    let mut source = Neo4jSource::new(cfg);
    Ok(backup_core::backup(&ctx.store, &mut source, ctx.options()?).await?)
}

/// Restores a neo4j backup into the target: a graph stream over Bolt, or a
/// neo4j-admin dump offline (`--neo4j-admin PATH`, `--database NAME`).
pub async fn restore(
    manifest: &Manifest,
    target: &RestoreTarget,
    ctx: &RestoreContext,
) -> CliResult<RestoreOutcome> {
    if manifest.artifact.format == backup_neo4j::source::ADMIN_DUMP_FORMAT {
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
            .ok_or_else(|| CliError::usage("restoring a neo4j-admin dump needs --database NAME"))?;
        let binary = target
            .neo4j_admin
            .clone()
            .unwrap_or_else(|| PathBuf::from("neo4j-admin"));
        let mut sink = Neo4jAdminSink::new(binary, db.clone());
        let report =
            backup_core::restore(&ctx.store, manifest, "data", &mut sink, &ctx.options).await?;
        return Ok(RestoreOutcome {
            target: format!("neo4j-admin database load {db}"),
            summary: report.summary,
        });
    }
    let cfg = config(target.url.as_deref(), None, target.database.as_deref())?;
    let shown = format!(
        "{} ({})",
        cfg.redacted_url(),
        cfg.database.as_deref().unwrap_or("default database")
    );
    let options = Neo4jSinkOptions {
        replace: target.replace,
        ..Default::default()
    };
    let mut sink = Neo4jSink::new(cfg, options);
    let report =
        backup_core::restore(&ctx.store, manifest, "data", &mut sink, &ctx.options).await?;
    Ok(RestoreOutcome {
        target: shown,
        summary: report.summary,
    })
}

/// Level-3 verification into an existing, empty scratch database at `url`
/// (`bolt://host:7687/scratch`: the path names the database).
pub async fn verify_restore(
    manifest: &Manifest,
    url: &str,
    ctx: &RestoreContext,
) -> CliResult<VerifyReport> {
    let cfg = config(Some(url), None, None)?;
    Ok(backup_neo4j::verify_restore(&ctx.store, manifest, &ctx.options, &cfg).await?)
}

/// Registers the neo4j format readers (graph stream, neo4j-admin dump).
pub fn register_formats(reg: &mut FormatRegistry) {
    reg.register(Arc::new(GraphFormat::default()));
    reg.register(Arc::new(Neo4jDumpFormat));
}
