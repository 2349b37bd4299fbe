//! [`RedisDriver`]: the [`backup_core::Driver`] of kind `redis`, used by the CLI and the
//! Python module alike.
//!
//! The connection comes from the options' or target's URL, else `REDIS_URL`; a password
//! missing from the URL is taken from `REDISCLI_AUTH` (as redis-cli does), so it need
//! not appear in argv. A restore target's `user` and `password` (Python keywords)
//! override the URL's.

use std::collections::BTreeMap;
use std::sync::Arc;

use backup_core::driver::{
    args_of, options_of, BackupContext, Capabilities, Driver, DriverOptions, RestoreContext,
    RestoreOutcome, RestoreTarget,
};
use backup_core::{Error, FormatReader, Manifest, Result, SecretString, VerifyReport};
use serde::{Deserialize, Serialize};

use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::format::RdbFormat;
use crate::sink::{RdbFileSink, RedisRestoreOptions, RedisSink};
use crate::source::{BackupMode, RedisSource};

/// The kind name.
pub const KIND: &str = "redis";

/// Options of a Redis backup (`dbseal backup redis`, `backup_redis()`,
/// `[datastores.NAME.options]`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RedisBackupOptions {
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

impl Default for RedisBackupOptions {
    fn default() -> Self {
        RedisBackupOptions {
            url: None,
            mode: BackupMode::Replication.as_str().to_string(),
        }
    }
}

/// The Redis [`Driver`]: RDB snapshots over the replication protocol (or SCAN + DUMP),
/// restores by `RESTORE` into staging databases swapped in, or a plain `dump.rdb`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisDriver;

/// A config error from a [`RedisError`] (URL and mode errors never repeat the URL).
fn config_error(e: RedisError) -> Error {
    Error::Config(e.to_string())
}

/// The connection settings from `url` or `REDIS_URL`; a password missing from the URL
/// comes from `REDISCLI_AUTH`.
pub fn connection_config(url: Option<&str>) -> Result<RedisConfig> {
    let mut cfg = match url {
        Some(u) => RedisConfig::from_url(u),
        None => RedisConfig::from_env(),
    }
    .map_err(config_error)?;
    if cfg.password.is_none() {
        if let Ok(pw) = std::env::var("REDISCLI_AUTH") {
            cfg.password = Some(SecretString::new(pw));
        }
    }
    Ok(cfg)
}

/// The connection settings of a restore target: [`connection_config`], then the
/// target's `user` and `password`, which override the URL's.
fn target_config(target: &RestoreTarget) -> Result<RedisConfig> {
    let mut cfg = match (target.url.as_deref(), &target.password) {
        // A password given with the target is used even when REDISCLI_AUTH is set.
        (Some(u), Some(_)) => RedisConfig::from_url(u).map_err(config_error)?,
        (url, _) => connection_config(url)?,
    };
    if let Some(p) = &target.password {
        cfg.password = Some(p.clone());
    }
    if let Some(u) = &target.user {
        cfg.username = Some(u.clone());
    }
    Ok(cfg)
}

/// Parses `--db` entries: `SRC` restores database SRC into SRC, `SRC:DEST` into DEST.
/// Returns the selected source databases (in the order given) and the target of each.
/// An entry that is neither is a config error naming it.
pub fn parse_db_selection(entries: &[String]) -> Result<(Vec<u32>, BTreeMap<u32, u32>)> {
    let mut dbs = Vec::new();
    let mut map = BTreeMap::new();
    for entry in entries {
        let bad = || {
            Error::Config(format!(
                "--db `{entry}` is not a database index or SRC:DEST (e.g. --db 0 or --db 0:5)"
            ))
        };
        let index = |s: &str| s.trim().parse::<u32>().map_err(|_| bad());
        let (src, dest) = match entry.split_once(':') {
            Some((s, d)) => (index(s)?, index(d)?),
            None => {
                let s = index(entry)?;
                (s, s)
            }
        };
        if map.get(&src).is_some_and(|&d| d != dest) {
            return Err(Error::Config(format!(
                "--db `{entry}`: database {src} is already mapped to {}",
                map[&src]
            )));
        }
        if !dbs.contains(&src) {
            dbs.push(src);
        }
        map.insert(src, dest);
    }
    Ok((dbs, map))
}

#[async_trait::async_trait]
impl Driver for RedisDriver {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn about(&self) -> &'static str {
        "Back up a whole Redis server (every database) as its RDB snapshot"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["redis", "rediss"]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            database_map: true,
            offline_file: true,
            staging_swap: true,
            verify_restore: true,
            ..Default::default()
        }
    }

    fn formats(&self) -> Vec<Arc<dyn FormatReader>> {
        vec![Arc::new(RdbFormat)]
    }

    fn check_backup_options(&self, options: &DriverOptions) -> Result<()> {
        let typed: RedisBackupOptions = options.parse(KIND)?;
        typed.mode.parse::<BackupMode>().map_err(config_error)?;
        if let Some(url) = &typed.url {
            let cfg = RedisConfig::from_url(url).map_err(config_error)?;
            cfg.validate().map_err(config_error)?;
        }
        Ok(())
    }

    fn backup_args(&self, command: clap::Command) -> clap::Command {
        args_of::<RedisBackupOptions>(command)
    }

    fn backup_options_from(&self, matches: &clap::ArgMatches) -> Result<DriverOptions> {
        options_of::<RedisBackupOptions>(matches)
    }

    async fn backup(&self, options: &DriverOptions, ctx: &BackupContext) -> Result<Manifest> {
        let typed: RedisBackupOptions = options.parse(KIND)?;
        let mode: BackupMode = typed.mode.parse().map_err(config_error)?;
        let cfg = connection_config(typed.url.as_deref())?;
        let mut source = RedisSource::new(cfg, mode)?;
        backup_core::backup(&ctx.store, &mut source, ctx.options.clone()).await
    }

    async fn restore(
        &self,
        manifest: &Manifest,
        target: &RestoreTarget,
        ctx: &RestoreContext,
    ) -> Result<RestoreOutcome> {
        if let Some(path) = &target.to_rdb {
            if target.url.is_some() || !target.db.is_empty() || !target.key_match.is_empty() {
                return Err(Error::Config(
                    "--to-rdb writes the whole backup to a file: --url, --db and --match do not apply"
                        .into(),
                ));
            }
            let mut sink = RdbFileSink::new(path, false);
            return ctx
                .restore_into(manifest, &mut sink, path.display().to_string())
                .await;
        }
        let cfg = target_config(target)?;
        let (dbs, db_map) = parse_db_selection(&target.db)?;
        let options = RedisRestoreOptions {
            replace: target.replace,
            dbs,
            db_map,
            matches: target.key_match.clone(),
            ..Default::default()
        };
        let shown = cfg.redacted_url();
        let mut sink = RedisSink::new(cfg, options)?;
        ctx.restore_into(manifest, &mut sink, shown).await
    }

    async fn verify_restore(
        &self,
        manifest: &Manifest,
        url: &str,
        ctx: &RestoreContext,
    ) -> Result<VerifyReport> {
        let cfg = connection_config(Some(url))?;
        crate::verify::verify_restore(&ctx.store, manifest, &ctx.options, &cfg, &ctx.cancel).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn db_selection_maps_src_to_itself_or_to_dest() {
        let (dbs, map) = parse_db_selection(&entries(&["3", "0:5", " 7 : 8 "])).unwrap();
        assert_eq!(dbs, vec![3, 0, 7]);
        assert_eq!(map, BTreeMap::from([(3, 3), (0, 5), (7, 8)]));
        let (dbs, map) = parse_db_selection(&[]).unwrap();
        assert!(dbs.is_empty() && map.is_empty());
        // The same entry twice is harmless.
        let (dbs, _) = parse_db_selection(&entries(&["1:2", "1:2"])).unwrap();
        assert_eq!(dbs, vec![1]);
    }

    #[test]
    fn bad_db_entries_are_config_errors_naming_the_entry() {
        for bad in ["x", "1:", ":2", "1:2:3", "-1", "1:y", ""] {
            let err = parse_db_selection(&entries(&["0", bad])).unwrap_err();
            assert_eq!(err.kind(), backup_core::ErrorKind::Config, "{err}");
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        let err = parse_db_selection(&entries(&["1:2", "1:3"])).unwrap_err();
        assert!(err.to_string().contains("`1:3`"), "{err}");
    }

    #[test]
    fn options_refuse_unknown_keys_and_default_the_mode() {
        let d = RedisDriver;
        let mut o = DriverOptions::new();
        o.set("url", "redis://127.0.0.1:1");
        d.check_backup_options(&o).unwrap();
        let typed: RedisBackupOptions = o.parse(KIND).unwrap();
        assert_eq!(typed.mode, "replication");
        o.set("mdoe", "scan");
        let err = d.check_backup_options(&o).unwrap_err();
        assert_eq!(err.kind(), backup_core::ErrorKind::Config);
        assert!(err.to_string().contains("mdoe"), "{err}");
        let mut o = DriverOptions::new();
        o.set("mode", "bogus");
        let err = d.check_backup_options(&o).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let mut o = DriverOptions::new();
        o.set("url", "redis://u:hunter2@h/notadb");
        let err = d.check_backup_options(&o).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn clap_args_round_trip_into_options() {
        let d = RedisDriver;
        let cmd = d.backup_args(clap::Command::new("redis"));
        let m = cmd
            .try_get_matches_from(["redis", "--url", "redis://h:1", "--mode", "scan"])
            .unwrap();
        let o = d.backup_options_from(&m).unwrap();
        assert_eq!(o.get_str("url"), Some("redis://h:1"));
        assert_eq!(o.get_str("mode"), Some("scan"));
        let m = d
            .backup_args(clap::Command::new("redis"))
            .try_get_matches_from(["redis"])
            .unwrap();
        let o = d.backup_options_from(&m).unwrap();
        assert_eq!(o.get_str("mode"), Some("replication"));
        assert!(o.get_str("url").is_none());
    }
}
