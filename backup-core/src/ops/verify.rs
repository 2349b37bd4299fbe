#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Verification: prove a backup is complete, untampered and restorable, at level 1
//! (stored), 2 (content) or 3 (restore, through the driver), and record the verdict.
//!
//! Every verification that reaches a verdict writes `{datastore}/{id}/verified.json`
//! (level, time, ok or failed, message, tool version) next to the manifest, whichever
//! front-end ran it, for `status` and `prune` (`no_record` skips it).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{parse_id, KeyOptions, OpContext};
use crate::driver::RestoreContext;
use crate::error::{Error, ErrorKind, Result};
use crate::id::BackupId;
use crate::manifest::Manifest;
use crate::store::VerificationRecord;
use crate::verify::{VerifyLevel, VerifyReport};

/// Verification levels: named, or numbered 1 to 3 (`--level 3`, Python's `level=3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Size and SHA-256 of the stored artifact (no key needed).
    #[value(alias = "1")]
    Stored,
    /// Decrypt, decompress, parse; compare digests and contents with the manifest.
    #[value(alias = "2")]
    Content,
    /// Restore into a scratch database and compare its live contents.
    #[value(alias = "3")]
    Restore,
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        <Level as clap::ValueEnum>::from_str(&text, false).map_err(|_| {
            let shown = match text.parse::<i64>() {
                Ok(n) => n.to_string(),
                Err(_) => format!("`{text}`"),
            };
            serde::de::Error::custom(format!(
                "verification level {shown} does not exist: use 1 (stored), 2 (content) or 3 (restore)"
            ))
        })
    }
}

impl Level {
    /// Its name, as in verification records.
    pub fn name(self) -> &'static str {
        match self {
            Level::Stored => "stored",
            Level::Content => "content",
            Level::Restore => "restore",
        }
    }

    /// Its number (1, 2, 3).
    pub fn number(self) -> u8 {
        match self {
            Level::Stored => 1,
            Level::Content => 2,
            Level::Restore => 3,
        }
    }
}

/// How to verify (`dbseal verify ID`, `verify --latest`).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyBackupOptions {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyOptions,
    /// How deep to go. Default: `content` when an identity or passphrase is given (or
    /// configured), `restore` with --restore-to, else `stored`.
    #[arg(long, value_enum)]
    pub level: Option<Level>,
    /// Level 3: restore into a scratch database on this server and compare. With
    /// --latest, each datastore's `scratch_url` from the config file is used instead.
    #[arg(long)]
    pub restore_to: Option<String>,
    /// Do not write the verification record (`verified.json`).
    #[arg(long)]
    pub no_record: bool,
}

impl VerifyBackupOptions {
    /// The level in force.
    fn level(&self, keys: &KeyOptions) -> Level {
        self.level.unwrap_or(if self.restore_to.is_some() {
            Level::Restore
        } else if !keys.is_empty() {
            Level::Content
        } else {
            Level::Stored
        })
    }
}

/// A verified backup.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyResult {
    /// The backup.
    pub backup_id: BackupId,
    /// Always true (a failure is an error).
    pub ok: bool,
    /// The deepest level that passed.
    pub level: Option<VerifyLevel>,
    /// Each level's checks.
    pub reports: Vec<VerifyReport>,
}

/// Whether an error is a verdict on the backup (recorded) rather than a problem of the
/// invocation or the environment (not recorded: the backup was not judged).
fn is_verdict(e: &Error) -> bool {
    // A restore tool failing on the backup is a verdict too.
    matches!(
        e.kind(),
        ErrorKind::Other
            | ErrorKind::Verification
            | ErrorKind::Decryption
            | ErrorKind::VersionMismatch
    )
}

/// Verifies one backup at `level`; `restore_to` is the scratch server for level 3.
/// A level's report and how long the level took.
#[derive(Debug, Clone)]
pub struct TimedReport {
    /// The report.
    pub report: VerifyReport,
    /// Wall time of the level, in seconds.
    pub seconds: f64,
}

async fn verify_levels(
    ctx: &OpContext,
    manifest: &Manifest,
    level: Level,
    restore_to: Option<&str>,
    keys: &KeyOptions,
) -> Result<Vec<TimedReport>> {
    let options = keys.restore_options(ctx.frontend.progress("verify"))?;
    if level >= Level::Content && options.decryption.is_none() {
        return Err(Error::Config("content verification decrypts the artifact: pass --identity FILE or --passphrase-file FILE (or set [encryption] identity in the config file)".into()));
    }
    let restore_to = if level == Level::Restore {
        Some(restore_to.ok_or_else(|| {
            Error::Config(format!(
                "--level restore needs a scratch server for datastore `{}`: --restore-to URL, or scratch_url in its [datastores.{}] table",
                manifest.datastore.name, manifest.datastore.name
            ))
        })?)
    } else {
        None
    };
    let clock = std::time::Instant::now();
    let timed = |report: VerifyReport, since: std::time::Instant| TimedReport {
        report,
        seconds: since.elapsed().as_secs_f64(),
    };
    let mut reports = vec![timed(
        crate::verify::verify_stored(&ctx.store, manifest).await?,
        clock,
    )];
    if level >= Level::Content {
        let formats = ctx.registry.formats();
        let clock = std::time::Instant::now();
        let report =
            crate::verify::verify_content(&ctx.store, manifest, &formats, &options).await?;
        reports.push(timed(report, clock));
    }
    if let Some(url) = restore_to {
        let driver = ctx.registry.driver_for(manifest).map_err(|_| {
            Error::Config(format!(
                "backup {} is of kind `{}`: level-3 (restore) verification needs a database kind",
                manifest.backup_id, manifest.datastore.kind
            ))
        })?;
        let rctx = RestoreContext {
            store: ctx.store.clone(),
            options,
            cancel: ctx.cancel.clone(),
            altered: Default::default(),
        };
        let clock = std::time::Instant::now();
        reports.push(timed(
            driver.verify_restore(manifest, url, &rctx).await?,
            clock,
        ));
    }
    Ok(reports)
}

/// Verifies `manifest` at `level` and records the verdict (unless `no_record`).
pub async fn verify_and_record(
    ctx: &OpContext,
    manifest: &Manifest,
    level: Level,
    restore_to: Option<&str>,
    keys: &KeyOptions,
    no_record: bool,
) -> Result<Vec<VerifyReport>> {
    verify_and_record_timed(ctx, manifest, level, restore_to, keys, no_record)
        .await
        .map(|levels| levels.into_iter().map(|t| t.report).collect())
}

/// [`verify_and_record`], with each level's wall time (for drills).
pub async fn verify_and_record_timed(
    ctx: &OpContext,
    manifest: &Manifest,
    level: Level,
    restore_to: Option<&str>,
    keys: &KeyOptions,
    no_record: bool,
) -> Result<Vec<TimedReport>> {
    let result = verify_levels(ctx, manifest, level, restore_to, keys)
        .await
        .map_err(|e| ctx.scrub_error(e));
    let event = || {
        super::notify::Event::of_result("verify", &result, |reports| {
            let checks: Vec<&String> = reports
                .iter()
                .flat_map(|r| r.report.checks.iter())
                .collect();
            (
                format!(
                    "backup {} verified at level {}",
                    manifest.backup_id,
                    level.name()
                ),
                serde_json::json!({ "level": level.name(), "checks": checks }),
            )
        })
        .of(
            Some(&manifest.datastore.name),
            Some(manifest.backup_id.as_str()),
        )
    };
    super::notify::send(ctx, event).await;
    if no_record {
        return result;
    }
    let record = match &result {
        Ok(reports) => Some(VerificationRecord::new(
            &manifest.datastore.name,
            &manifest.backup_id,
            level.name(),
            true,
            reports
                .iter()
                .flat_map(|r| r.report.checks.iter().cloned())
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(e) if is_verdict(e) => Some(VerificationRecord::new(
            &manifest.datastore.name,
            &manifest.backup_id,
            level.name(),
            false,
            e.to_string(),
        )),
        Err(_) => None,
    };
    if let Some(record) = record {
        super::history::record(
            ctx,
            super::history::Outcome::new(
                &record.datastore,
                super::history::Event::Verification,
                record.ok,
                Some(&record.backup_id),
                format!("{}: {}", record.level, record.message),
            ),
        )
        .await;
        if let Err(e) = ctx.store.put_verification(&record).await {
            // The verdict matters more than its record: report both.
            return match result {
                Ok(_) => Err(e),
                Err(v) => {
                    Err(v.with_message(format!("{v} (and the record could not be written: {e})")))
                }
            };
        }
    }
    result
}

/// `dbseal verify ID`.
pub async fn verify_backup(
    ctx: &OpContext,
    id: &str,
    options: &VerifyBackupOptions,
) -> Result<VerifyResult> {
    let manifest = ctx.store.manifest(&parse_id(id)?).await?;
    let keys = options.keys.or_config(ctx.config.as_deref());
    let level = options.level(&keys);
    let reports = verify_and_record(
        ctx,
        &manifest,
        level,
        options.restore_to.as_deref(),
        &keys,
        options.no_record,
    )
    .await?;
    Ok(VerifyResult {
        backup_id: manifest.backup_id.clone(),
        ok: true,
        level: reports.last().map(|r| r.level),
        reports,
    })
}

/// One datastore's result of `verify --latest`.
#[derive(Debug, Clone, Serialize)]
pub struct LatestVerification {
    /// The datastore.
    pub datastore: String,
    /// Its newest backup, if it has one.
    pub backup_id: Option<String>,
    /// The level attempted.
    pub level: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was checked, or what failed.
    pub message: String,
    /// The exit code of the failure (0 when it passed).
    #[serde(skip)]
    pub code: i32,
}

/// The results of `verify --latest`, one per datastore.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct LatestVerifications(pub Vec<LatestVerification>);

impl LatestVerifications {
    /// The error to end with when any datastore failed (the first failure's kind).
    pub fn failure(&self) -> Option<Error> {
        let first = self.0.iter().find(|r| !r.ok)?;
        let failed: Vec<&str> = self
            .0
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.datastore.as_str())
            .collect();
        Some(Error::operation(
            ErrorKind::from_exit_code(first.code),
            format!(
                "verification failed for {} of {} datastores ({}); first: {}",
                failed.len(),
                self.0.len(),
                failed.join(", "),
                first.message
            ),
        ))
    }
}

/// The datastores `verify --latest` and `drill` take: those `named`, else every one
/// with a complete backup in `listing` or in the config file; `--restore-to` (one
/// scratch server) only with one of them. `what` names the command in the error.
pub(super) fn latest_names(
    ctx: &OpContext,
    listing: &crate::store::StoreListing,
    named: &[String],
    restore_to: bool,
    what: &str,
) -> Result<Vec<String>> {
    let mut names: Vec<String> = if named.is_empty() {
        let mut n: BTreeSet<String> = listing
            .backups
            .iter()
            .map(|m| m.datastore.name.clone())
            .collect();
        if let Some(c) = ctx.config.as_deref() {
            n.extend(c.datastores.keys().cloned());
        }
        n.into_iter().collect()
    } else {
        named.to_vec()
    };
    names.dedup();
    if names.is_empty() {
        return Err(Error::operation(
            ErrorKind::NotFound,
            format!("no backups in {} to {what}", ctx.store.url()),
        ));
    }
    if restore_to && names.len() > 1 {
        return Err(Error::Config(
            "--restore-to names one scratch server: use it with one --datastore, or set scratch_url per datastore in the config file".into(),
        ));
    }
    Ok(names)
}

/// `dbseal verify --latest [--datastore N…]`: the newest backup of each datastore (in
/// the store, and in the config file), each recorded.
pub async fn verify_latest(
    ctx: &OpContext,
    datastores: &[String],
    options: &VerifyBackupOptions,
) -> Result<LatestVerifications> {
    let listing = ctx.store.scan(None).await?;
    super::warn_skipped(ctx, &listing);
    let config = ctx.config.as_deref();
    // Newest complete backup of each datastore: latest start time, then id — the same
    // order retention uses, so prune sees the backup verified here as the newest.
    let mut newest: BTreeMap<String, &Manifest> = BTreeMap::new();
    for m in &listing.backups {
        let e = newest.entry(m.datastore.name.clone()).or_insert(m);
        if (m.started_at, &m.backup_id) > (e.started_at, &e.backup_id) {
            *e = m;
        }
    }
    let names = latest_names(
        ctx,
        &listing,
        datastores,
        options.restore_to.is_some(),
        "verify",
    )?;
    let keys = options.keys.or_config(config);
    let level = options.level(&keys);
    let mut results = Vec::new();
    for name in &names {
        let scratch = options.restore_to.clone().or_else(|| {
            config
                .and_then(|c| c.datastores.get(name))
                .and_then(|d| d.scratch_url.clone())
        });
        let Some(manifest) = newest.get(name) else {
            results.push(LatestVerification {
                datastore: name.clone(),
                backup_id: None,
                level: level.name(),
                ok: false,
                message: "no complete backup to verify".into(),
                code: ErrorKind::NotFound.exit_code(),
            });
            continue;
        };
        ctx.info(format!(
            "verifying {} (newest of `{name}`) at level {}",
            manifest.backup_id,
            level.name()
        ));
        let r = verify_and_record(
            ctx,
            manifest,
            level,
            scratch.as_deref(),
            &keys,
            options.no_record,
        )
        .await;
        results.push(match r {
            Ok(reports) => LatestVerification {
                datastore: name.clone(),
                backup_id: Some(manifest.backup_id.to_string()),
                level: level.name(),
                ok: true,
                message: format!(
                    "{} checks passed",
                    reports.iter().map(|r| r.checks.len()).sum::<usize>()
                ),
                code: 0,
            },
            Err(e) => LatestVerification {
                datastore: name.clone(),
                backup_id: Some(manifest.backup_id.to_string()),
                level: level.name(),
                ok: false,
                message: e.to_string(),
                code: e.kind().exit_code(),
            },
        });
    }
    Ok(LatestVerifications(results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{DriverOptions, Registry};
    use crate::keys::KeyPair;
    use crate::ops::test_driver::TestDriver;
    use crate::store::BackupStore;

    #[test]
    fn levels_are_named_or_numbered() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Level>(v);
        assert_eq!(parse(serde_json::json!("restore")).unwrap(), Level::Restore);
        assert_eq!(parse(serde_json::json!(2)).unwrap(), Level::Content);
        assert_eq!(parse(serde_json::json!("1")).unwrap(), Level::Stored);
        let e = parse(serde_json::json!(4)).unwrap_err().to_string();
        assert!(e.contains("level 4 does not exist"), "{e}");
        let e = parse(serde_json::json!("deep")).unwrap_err().to_string();
        assert!(e.contains("level `deep` does not exist"), "{e}");
        let cli = <Level as clap::ValueEnum>::from_str("3", false);
        assert_eq!(cli, Ok(Level::Restore));
    }

    #[tokio::test]
    async fn verifications_are_recorded_at_every_level() {
        let keys = KeyPair::generate();
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("id.txt");
        keys.write_identity_file(&identity).unwrap();
        let registry = Registry::new().with(TestDriver::new("test", &["test"]));
        let ctx = OpContext::new(
            registry,
            BackupStore::open("memory://", &Default::default())
                .unwrap()
                .with_trust(crate::Trust::ephemeral().unwrap()),
        );
        let mut options = DriverOptions::new();
        options.set("url", "test://db");
        let m = super::super::backup::backup_with_driver(
            &ctx,
            "test",
            &options,
            &super::super::backup::SealOptions {
                datastore: "app".into(),
                encryption: Some(keys.encryption()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let id = m.backup_id.to_string();
        // Level 1 without keys.
        let r = verify_backup(&ctx, &id, &VerifyBackupOptions::default())
            .await
            .unwrap();
        assert_eq!(r.level, Some(VerifyLevel::Stored));
        let rec = ctx
            .store
            .verification("app", &m.backup_id)
            .await
            .unwrap()
            .unwrap();
        assert!(rec.ok);
        assert_eq!(rec.level, "stored");
        // Level 2 with an identity; level 3 through the driver.
        let with_keys = VerifyBackupOptions {
            keys: KeyOptions {
                identities: vec![identity.clone()],
                ..Default::default()
            },
            ..Default::default()
        };
        let r = verify_backup(&ctx, &id, &with_keys).await.unwrap();
        assert_eq!(r.level, Some(VerifyLevel::Content));
        let level3 = VerifyBackupOptions {
            restore_to: Some("test://scratch".into()),
            ..with_keys.clone()
        };
        let r = verify_backup(&ctx, &id, &level3).await.unwrap();
        assert_eq!(r.level, Some(VerifyLevel::Restore));
        let rec = ctx
            .store
            .verification("app", &m.backup_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.level, "restore");
        // Content level without keys is an invocation error: not recorded.
        let e = verify_backup(
            &ctx,
            &id,
            &VerifyBackupOptions {
                level: Some(Level::Content),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        // A wrong key is a verdict: recorded as failed, and --latest reports it.
        let other = KeyPair::generate();
        let wrong = dir.path().join("wrong.txt");
        other.write_identity_file(&wrong).unwrap();
        let wrong_keys = VerifyBackupOptions {
            keys: KeyOptions {
                identities: vec![wrong],
                ..Default::default()
            },
            ..Default::default()
        };
        let e = verify_backup(&ctx, &id, &wrong_keys).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decryption);
        let rec = ctx
            .store
            .verification("app", &m.backup_id)
            .await
            .unwrap()
            .unwrap();
        assert!(!rec.ok);
        let latest = verify_latest(&ctx, &["app".into(), "none".into()], &wrong_keys)
            .await
            .unwrap();
        assert_eq!(latest.0.len(), 2);
        assert!(!latest.0[0].ok && !latest.0[1].ok);
        let f = latest.failure().unwrap();
        assert_eq!(f.kind(), ErrorKind::Decryption);
        assert!(
            f.to_string().contains("2 of 2 datastores (app, none)"),
            "{f}"
        );
        let latest = verify_latest(&ctx, &[], &VerifyBackupOptions::default())
            .await
            .unwrap();
        assert!(latest.failure().is_none());
    }
}
