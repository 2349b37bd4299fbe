//! `dbseal verify ID`: prove a backup is complete, untampered and restorable.
//! `dbseal verify --latest [--datastore N]`: the newest backup of each datastore.
//!
//! Every verification that reaches a verdict writes `{datastore}/{id}/verified.json`
//! (level, time, ok or failed, message, tool version) next to the manifest, for
//! `dbseal status` and `dbseal prune` (`--no-record` skips it).

use backup_core::{BackupStore, Manifest, VerificationRecord, VerifyReport};
use clap::{Args, ValueEnum};

use crate::common::{formats, KeyArgs, StoreArgs};
use crate::config::Config;
use crate::db::{self, RestoreContext};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// Verifies a backup at level 1 (stored), 2 (content) or 3 (restore).
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The backup id.
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub id: Option<String>,
    /// Verify the newest backup of each datastore (in the store, and in the config file).
    #[arg(long)]
    pub latest: bool,
    /// With --latest: only this datastore (repeatable).
    #[arg(
        long = "datastore",
        short = 'd',
        value_name = "NAME",
        requires = "latest"
    )]
    pub datastores: Vec<String>,
    #[command(flatten)]
    pub keys: KeyArgs,
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

/// Verification levels.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Size and SHA-256 of the stored artifact (no key needed).
    Stored,
    /// Decrypt, decompress, parse; compare digests and contents with the manifest.
    Content,
    /// Restore into a scratch database and compare its live contents.
    Restore,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Stored => "stored",
            Level::Content => "content",
            Level::Restore => "restore",
        }
    }
}

/// Whether an error is a verdict on the backup (recorded) rather than a problem of the
/// invocation or the environment (not recorded: the backup was not judged).
fn is_verdict(e: &CliError) -> bool {
    // 4 verification, 5 decryption, 7 version mismatch, 1 a restore tool failed on it.
    matches!(e.code, 1 | 4 | 5 | 7)
}

/// Verifies one backup at `level`; `restore_to` is the scratch server for level 3.
async fn verify_one(
    store: &BackupStore,
    manifest: &Manifest,
    level: Level,
    restore_to: Option<&str>,
    keys: &KeyArgs,
    out: Output,
) -> CliResult<Vec<VerifyReport>> {
    let options = keys.restore_options(crate::progress::bar("verify", out.quiet || out.json))?;
    if level >= Level::Content && options.decryption.is_none() {
        return Err(CliError::usage("content verification decrypts the artifact: pass --identity FILE or --passphrase-file FILE (or set [encryption] identity in the config file)"));
    }
    let restore_to = if level == Level::Restore {
        Some(restore_to.ok_or_else(|| {
            CliError::usage(format!(
                "--level restore needs a scratch server for datastore `{}`: --restore-to URL, or scratch_url in its [datastores.{}] table",
                manifest.datastore.name, manifest.datastore.name
            ))
        })?)
    } else {
        None
    };
    let mut reports = vec![backup_core::verify_stored(store, manifest).await?];
    if level >= Level::Content {
        reports.push(backup_core::verify_content(store, manifest, &formats(), &options).await?);
    }
    if let Some(url) = restore_to {
        let ctx = RestoreContext {
            store: store.clone(),
            options,
        };
        reports.push(db::verify_restore(manifest, url, &ctx).await?);
    }
    Ok(reports)
}

/// Verifies and records the verdict.
async fn verify_and_record(
    store: &BackupStore,
    manifest: &Manifest,
    level: Level,
    restore_to: Option<&str>,
    args: &VerifyArgs,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<Vec<VerifyReport>> {
    let result = verify_one(store, manifest, level, restore_to, &args.keys, out)
        .await
        .map_err(|mut e| {
            if let Some(c) = cfg {
                e.message = c.scrub(&e.message);
            }
            e
        });
    if args.no_record {
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
                .flat_map(|r| r.checks.iter().cloned())
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(e) if is_verdict(e) => Some(VerificationRecord::new(
            &manifest.datastore.name,
            &manifest.backup_id,
            level.name(),
            false,
            e.message.clone(),
        )),
        Err(_) => None,
    };
    if let Some(record) = record {
        if let Err(e) = store.put_verification(&record).await {
            // The verdict matters more than its record: report both.
            return match result {
                Ok(_) => Err(CliError::from(e)),
                Err(mut v) => {
                    v.message = format!("{} (and the record could not be written: {e})", v.message);
                    Err(v)
                }
            };
        }
    }
    result
}

fn default_level(args: &VerifyArgs, restore_to: bool) -> Level {
    args.level.unwrap_or(if restore_to {
        Level::Restore
    } else if !args.keys.identities.is_empty() || args.keys.passphrase_file.is_some() {
        Level::Content
    } else {
        Level::Stored
    })
}

/// Runs `dbseal verify`.
pub async fn run(
    args: &VerifyArgs,
    store: &StoreArgs,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<()> {
    let store = store.open()?;
    if args.latest {
        return run_latest(args, &store, cfg, out).await;
    }
    let id = crate::commands::show::parse_id(args.id.as_deref().unwrap_or_default())?;
    let manifest = store.manifest(&id).await?;
    let level = default_level(args, args.restore_to.is_some());
    let reports = verify_and_record(
        &store,
        &manifest,
        level,
        args.restore_to.as_deref(),
        args,
        cfg,
        out,
    )
    .await?;
    let value = serde_json::json!({
        "backup_id": manifest.backup_id,
        "ok": true,
        "level": reports.last().map(|r| r.level),
        "reports": reports,
    });
    out.emit(&value, || {
        let mut s = format!(
            "backup {} verified at level {}\n",
            manifest.backup_id,
            reports.last().map_or(1, |r| r.level.number())
        );
        for r in &reports {
            for c in &r.checks {
                s.push_str(&format!("  ok [{:?}] {c}\n", r.level));
            }
        }
        s
    });
    Ok(())
}

/// One datastore's result of `verify --latest`.
#[derive(Debug, serde::Serialize)]
struct LatestResult {
    datastore: String,
    backup_id: Option<String>,
    level: &'static str,
    ok: bool,
    message: String,
    #[serde(skip)]
    code: i32,
}

async fn run_latest(
    args: &VerifyArgs,
    store: &BackupStore,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<()> {
    let listing = store.scan(None).await?;
    for (key, reason) in &listing.unreadable {
        eprintln!("dbseal: warning: skipping unreadable manifest {key}: {reason}");
    }
    // Newest complete backup of each datastore: latest start time, then id — the same
    // order retention uses, so prune sees the backup verified here as the newest.
    let mut newest: std::collections::BTreeMap<String, &Manifest> = Default::default();
    for m in &listing.backups {
        let e = newest.entry(m.datastore.name.clone()).or_insert(m);
        if (m.started_at, &m.backup_id) > (e.started_at, &e.backup_id) {
            *e = m;
        }
    }
    let mut names: Vec<String> = if args.datastores.is_empty() {
        let mut n: std::collections::BTreeSet<String> = newest.keys().cloned().collect();
        if let Some(c) = cfg {
            n.extend(c.datastores.keys().cloned());
        }
        n.into_iter().collect()
    } else {
        args.datastores.clone()
    };
    names.dedup();
    if names.is_empty() {
        return Err(CliError {
            message: format!("no backups in {} to verify", store.url()),
            code: 3,
        });
    }
    let mut results = Vec::new();
    for name in &names {
        let scratch = args.restore_to.clone().or_else(|| {
            cfg.and_then(|c| c.datastores.get(name))
                .and_then(|d| d.scratch_url.clone())
        });
        if args.restore_to.is_some() && names.len() > 1 {
            return Err(CliError::usage(
                "--restore-to names one scratch server: use it with one --datastore, or set scratch_url per datastore in the config file",
            ));
        }
        let level = default_level(args, args.restore_to.is_some());
        let Some(manifest) = newest.get(name) else {
            results.push(LatestResult {
                datastore: name.clone(),
                backup_id: None,
                level: level.name(),
                ok: false,
                message: "no complete backup to verify".into(),
                code: 3,
            });
            continue;
        };
        out.info(&format!(
            "verifying {} (newest of `{name}`) at level {}",
            manifest.backup_id,
            level.name()
        ));
        let r = verify_and_record(store, manifest, level, scratch.as_deref(), args, cfg, out).await;
        results.push(match r {
            Ok(reports) => LatestResult {
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
            Err(e) => LatestResult {
                datastore: name.clone(),
                backup_id: Some(manifest.backup_id.to_string()),
                level: level.name(),
                ok: false,
                message: e.message,
                code: e.code,
            },
        });
    }
    crate::result_emitted();
    out.emit(&results, || {
        let mut s = String::new();
        for r in &results {
            s.push_str(&format!(
                "{:<6} {:<20} {:<27} {:<8} {}\n",
                if r.ok { "ok" } else { "FAILED" },
                r.datastore,
                r.backup_id.as_deref().unwrap_or("-"),
                r.level,
                r.message
            ));
        }
        s
    });
    match results.iter().find(|r| !r.ok) {
        None => Ok(()),
        Some(first) => {
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.datastore.as_str())
                .collect();
            Err(CliError {
                message: format!(
                    "verification failed for {} of {} datastores ({}); first: {}",
                    failed.len(),
                    results.len(),
                    failed.join(", "),
                    first.message
                ),
                code: first.code,
            })
        }
    }
}
