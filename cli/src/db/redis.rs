//! `dbseal backup redis`, restore and level-3 verification for redis.
//!
//! Only translates flags into `backup-redis` calls. The connection URL comes from
//! `--url` or `REDIS_URL`; a password missing from the URL is taken from `REDISCLI_AUTH`
//! (as redis-cli does), so it need not appear in argv.

use std::collections::BTreeMap;
use std::sync::Arc;

use backup_core::{FormatRegistry, Manifest, SecretString, VerifyReport};
use backup_redis::{
    BackupMode, RdbFileSink, RdbFormat, RedisConfig, RedisRestoreOptions, RedisSink, RedisSource,
};

use super::{BackupContext, RestoreContext, RestoreOutcome};
use crate::commands::restore::RestoreTarget;
use crate::exit::{CliError, CliResult};

/// Flags of `dbseal backup redis`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackupArgs {
    /// Connection URL (redis://[user:password@]host:port, rediss:// for TLS); defaults to
    /// REDIS_URL. Credentials are better passed through REDIS_URL or REDISCLI_AUTH.
    #[arg(long)]
    pub url: Option<String>,
    /// `replication`: the server's point-in-time snapshot over PSYNC (default);
    /// `scan`: SCAN + DUMP + PTTL per key, for servers that refuse replication (not
    /// point-in-time).
    #[arg(long, default_value = "replication")]
    pub mode: String,
}

/// The connection settings from `--url` / `REDIS_URL` (+ `REDISCLI_AUTH`).
fn config(url: Option<&str>) -> CliResult<RedisConfig> {
    let mut cfg = match url {
        Some(u) => RedisConfig::from_url(u),
        None => RedisConfig::from_env(),
    }
    .map_err(|e| CliError::usage(e.to_string()))?;
    if cfg.password.is_none() {
        if let Ok(pw) = std::env::var("REDISCLI_AUTH") {
            cfg.password = Some(SecretString::new(pw));
        }
    }
    Ok(cfg)
}

/// Runs `dbseal backup redis`.
pub async fn backup(args: &BackupArgs, ctx: &BackupContext) -> CliResult<Manifest> {
    let cfg = config(args.url.as_deref())?;
    let mode: BackupMode = args
        .mode
        .parse()
        .map_err(|e: backup_redis::RedisError| CliError::usage(e.to_string()))?;
    let mut source = RedisSource::new(cfg, mode)?;
    Ok(backup_core::backup(&ctx.store, &mut source, ctx.options()?).await?)
}

/// Parses `--db SRC` / `--db SRC:DEST`.
fn db_selection(specs: &[String]) -> CliResult<(Vec<u32>, BTreeMap<u32, u32>)> {
    let mut dbs = Vec::new();
    let mut map = BTreeMap::new();
    for spec in specs {
        let bad = || {
            CliError::usage(format!(
                "--db `{spec}` is not a database index or SRC:DEST (e.g. --db 0 or --db 0:5)"
            ))
        };
        let (src, dest) = match spec.split_once(':') {
            Some((s, d)) => (s.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?),
            None => {
                let s: u32 = spec.parse().map_err(|_| bad())?;
                (s, s)
            }
        };
        dbs.push(src);
        map.insert(src, dest);
    }
    Ok((dbs, map))
}

/// Restores a redis backup into the target.
pub async fn restore(
    manifest: &Manifest,
    target: &RestoreTarget,
    ctx: &RestoreContext,
) -> CliResult<RestoreOutcome> {
    if let Some(path) = &target.to_rdb {
        let mut sink = RdbFileSink::new(path, false);
        let report =
            backup_core::restore(&ctx.store, manifest, "data", &mut sink, &ctx.options).await?;
        return Ok(RestoreOutcome {
            target: path.display().to_string(),
            summary: report.summary,
        });
    }
    let cfg = config(target.url.as_deref())?;
    let (dbs, db_map) = db_selection(&target.db)?;
    let options = RedisRestoreOptions {
        replace: target.replace,
        dbs,
        db_map,
        matches: target.key_match.clone(),
        ..Default::default()
    };
    let shown = cfg.redacted_url();
    let mut sink = RedisSink::new(cfg, options)?;
    let report =
        backup_core::restore(&ctx.store, manifest, "data", &mut sink, &ctx.options).await?;
    Ok(RestoreOutcome {
        target: shown,
        summary: report.summary,
    })
}

/// Level-3 verification into scratch databases of the server at `url`.
pub async fn verify_restore(
    manifest: &Manifest,
    url: &str,
    ctx: &RestoreContext,
) -> CliResult<VerifyReport> {
    let cfg = config(Some(url))?;
    Ok(backup_redis::verify_restore(&ctx.store, manifest, &ctx.options, &cfg).await?)
}

/// Registers the redis format reader.
pub fn register_formats(reg: &mut FormatRegistry) {
    reg.register(Arc::new(RdbFormat));
}
