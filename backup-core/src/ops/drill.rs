//! `dbseal drill`: a disaster-recovery drill with measured RTO and RPO.
//!
//! For each datastore (those named, else every one with a backup in the store or in the
//! config file) the newest complete backup is verified at level 3: downloaded and checked
//! (level 1), decrypted, decompressed and compared with its manifest (level 2), then
//! restored into the scratch target (the datastore's `scratch_url`, or `--restore-to`)
//! and its live contents compared (level 3); the driver drops the scratch database
//! afterwards, as `verify --level restore` does. Measured:
//!
//! - **RTO actual**: wall time from the drill's start to the verified target, split by
//!   level (download and checksum; decrypt, decompress and compare; load and compare);
//! - **RPO actual**: the drill's start minus the end of the newest backup it restored
//!   (a continuous archive's newer segments are reported beside it as `wal_rpo_seconds`).
//!
//! A backup a [`super::ContinuousArchive`] replays onto (a PostgreSQL physical base
//! backup with its WAL archive) is drilled by the archive instead: restored into a
//! temporary data directory, started, replayed to the newest archived WAL, checked,
//! stopped and removed ([`ReplayDrill`]); its RPO is then the archive's newest point.
//!
//! Each is compared with the datastore's `rto` / `rpo` in the config file. Every drill
//! leaves a signed record ([`super::history`], `_records/<datastore>/drills/`) and the
//! verification record a level-3 verification writes; `metrics_file` writes Prometheus
//! metrics; `report` writes a self-contained HTML report of this drill and the past
//! year's, read from the records. [`DrillReport::failure`] is exit 9 when an objective
//! is missed, or the failed verification's own code.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::history::{self, Event, Outcome};
use super::status::{label, push_family};
use super::verify::{verify_and_record_timed, Level};
use super::{KeyOptions, OpContext};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Manifest;
use crate::retention::Span;

/// What to drill.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrillOptions {
    /// Drill this datastore (repeatable); default: every datastore with a backup in the
    /// store or in the config file.
    #[arg(long = "datastore", short = 'd', value_name = "NAME")]
    #[serde(alias = "datastore")]
    pub datastores: Vec<String>,
    /// Drill every datastore with a backup in the store or in the config file (what
    /// naming none does; for schedules that want to say so).
    #[arg(long, conflicts_with = "datastores")]
    pub all: bool,
    /// Restore into a scratch database on this server instead of the datastore's
    /// `scratch_url` (one datastore only).
    #[arg(long, value_name = "URL")]
    pub restore_to: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyOptions,
    /// Also write Prometheus metrics to this file (node_exporter textfile collector).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Also write a self-contained HTML report (this drill and the past year's).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

/// One datastore's drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drill {
    /// The datastore.
    pub datastore: String,
    /// The backup restored.
    pub backup_id: Option<String>,
    /// When the drill started.
    pub started_at: DateTime<Utc>,
    /// Whether the restore verified.
    pub verified: bool,
    /// Seconds from the start to the verified target.
    pub rto_seconds: f64,
    /// The seconds of each phase: `stored` (download and checksum), `content`
    /// (decrypt, decompress, compare with the manifest), `load` (restore into the
    /// scratch target) and `verify` (compare its live contents); a point-in-time drill:
    /// `restore`, `recovery`, `verify`.
    pub phases: Vec<(String, f64)>,
    /// The drill's start minus the restored backup's end.
    pub rpo_seconds: Option<f64>,
    /// The drill's start minus the newest archived WAL segment (PITR), if any.
    pub wal_rpo_seconds: Option<f64>,
    /// The objectives in force.
    pub rto_objective_seconds: Option<f64>,
    /// The objectives in force.
    pub rpo_objective_seconds: Option<f64>,
    /// Verified and within every objective.
    pub passed: bool,
    /// What went wrong, or what was checked.
    pub message: String,
    /// The failed verification's exit code (0 when it verified).
    #[serde(default)]
    pub code: i32,
}

/// What a [`super::ContinuousArchive`] measured and checked in a drill that replayed
/// its archive onto a backup (a PostgreSQL point-in-time drill).
#[derive(Debug, Clone, Default)]
pub struct ReplayDrill {
    /// The seconds of each phase (`restore`, `recovery`, `verify`).
    pub phases: Vec<(String, f64)>,
    /// What was checked.
    pub message: String,
}

/// Every datastore's drill.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct DrillReport {
    /// The drills.
    pub drills: Vec<Drill>,
}

impl DrillReport {
    /// The error to end with: the first failed verification's, else exit 9 when an
    /// objective was missed.
    pub fn failure(&self) -> Option<Error> {
        if let Some(d) = self.drills.iter().find(|d| !d.verified) {
            let kind = ErrorKind::from_exit_code(d.code);
            return Some(Error::operation(
                kind,
                format!("drill of `{}` failed: {}", d.datastore, d.message),
            ));
        }
        let missed: Vec<String> = self
            .drills
            .iter()
            .filter(|d| !d.passed)
            .map(|d| format!("`{}`: {}", d.datastore, d.message))
            .collect();
        (!missed.is_empty()).then(|| {
            Error::operation(
                ErrorKind::Unhealthy,
                format!("drill missed its objectives: {}", missed.join("; ")),
            )
        })
    }

    /// The drills as Prometheus text.
    pub fn metrics(&self) -> String {
        let mut text = String::new();
        type Family = (&'static str, &'static str, fn(&Drill) -> Option<f64>);
        let families: [Family; 5] = [
            ("dbseal_drill_rto_seconds", "Measured recovery time of the last drill.", |d| {
                Some(d.rto_seconds)
            }),
            ("dbseal_drill_rpo_seconds", "Measured recovery point of the last drill (its start minus the restored backup's end).", |d| d.rpo_seconds),
            ("dbseal_drill_rto_objective_seconds", "The datastore's rto.", |d| d.rto_objective_seconds),
            ("dbseal_drill_rpo_objective_seconds", "The datastore's rpo.", |d| d.rpo_objective_seconds),
            ("dbseal_drill_passed", "1 if the last drill verified within its objectives.", |d| {
                Some(f64::from(u8::from(d.passed)))
            }),
        ];
        for (name, help, value) in families {
            let samples = self.drills.iter().filter_map(|d| {
                let v = value(d)?;
                Some(format!("{{datastore=\"{}\"}} {v:.3}", label(&d.datastore)))
            });
            push_family(&mut text, name, help, samples);
        }
        text
    }

    /// The table (`dbseal drill`).
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{:<20} {:<27} {:>10} {:>10} {:>10} {:>10}  {}\n",
            "DATASTORE", "BACKUP", "RTO", "(target)", "RPO", "(target)", "RESULT"
        );
        let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}s"));
        for d in &self.drills {
            let result = match (d.verified, d.passed) {
                (true, true) => "passed".to_string(),
                _ => format!("FAILED: {}", d.message),
            };
            s.push_str(&format!(
                "{:<20} {:<27} {:>10} {:>10} {:>10} {:>10}  {}\n",
                d.datastore,
                d.backup_id.as_deref().unwrap_or("-"),
                secs(Some(d.rto_seconds)),
                secs(d.rto_objective_seconds),
                secs(d.rpo_seconds),
                secs(d.rpo_objective_seconds),
                result
            ));
            let phases: Vec<String> = d
                .phases
                .iter()
                .map(|(level, t)| format!("{level} {t:.1}s"))
                .collect();
            if !phases.is_empty() {
                s.push_str(&format!("{:<20} phases: {}\n", "", phases.join(", ")));
            }
        }
        s
    }
}

/// Seconds from `earlier` to `later`.
fn seconds(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    (later - earlier).num_milliseconds() as f64 / 1000.0
}

/// `dbseal drill`.
pub async fn drill(ctx: &OpContext, options: &DrillOptions) -> Result<DrillReport> {
    if options.all && !options.datastores.is_empty() {
        return Err(Error::Config(
            "drill: give either datastore names or all, not both".into(),
        ));
    }
    let listing = ctx.store.scan(None).await?;
    super::warn_skipped(ctx, &listing);
    let config = ctx.config.as_deref();
    let names = super::verify::latest_names(
        ctx,
        &listing,
        &options.datastores,
        options.restore_to.is_some(),
        "drill",
    )?;
    let keys = options.keys.or_config(config);
    let mut drills = Vec::new();
    for name in &names {
        let ds = config.and_then(|c| c.datastores.get(name));
        let scratch = options
            .restore_to
            .clone()
            .or_else(|| ds.and_then(|d| d.scratch_url.clone()));
        let newest: Option<&Manifest> = listing
            .backups
            .iter()
            .filter(|m| &m.datastore.name == name)
            .max_by_key(|m| (m.started_at, m.backup_id.clone()));
        let started_at = Utc::now();
        let clock = std::time::Instant::now();
        let mut d = Drill {
            datastore: name.clone(),
            backup_id: newest.map(|m| m.backup_id.to_string()),
            started_at,
            verified: false,
            rto_seconds: 0.0,
            phases: Vec::new(),
            rpo_seconds: newest.map(|m| seconds(m.finished_at, started_at)),
            wal_rpo_seconds: None,
            rto_objective_seconds: ds
                .and_then(|d| d.rto)
                .map(|s| seconds(s.before(started_at), started_at)),
            rpo_objective_seconds: ds
                .and_then(|d| d.rpo)
                .map(|s| seconds(s.before(started_at), started_at)),
            passed: false,
            message: String::new(),
            code: 0,
        };
        for archive in &ctx.archives {
            if let Some(at) = archive
                .status(&ctx.store, name)
                .await?
                .and_then(|w| w.newest_archived_at)
            {
                d.wal_rpo_seconds = Some(seconds(at, started_at));
            }
        }
        // A backup a continuous archive replays onto is drilled by it (point in time).
        let mut replay = None;
        if let Some(m) = newest {
            for archive in &ctx.archives {
                replay = archive.drill(ctx, m, &keys).await;
                if replay.is_some() {
                    break;
                }
            }
        }
        match (newest, scratch, replay) {
            // A point-in-time drill: the newest point recoverable is the archive's.
            (Some(_), _, Some(Ok(r))) => {
                d.verified = true;
                d.phases = r.phases;
                d.message = r.message;
                d.rpo_seconds = d.wal_rpo_seconds.or(d.rpo_seconds);
            }
            (Some(_), _, Some(Err(e))) => {
                if ctx.cancel.is_cancelled() || e.kind() == ErrorKind::Interrupted {
                    return Err(e);
                }
                d.message = e.to_string();
                d.code = e.kind().exit_code();
            }
            (None, _, _) => {
                d.message = "no complete backup to restore".into();
                d.code = ErrorKind::NotFound.exit_code();
            }
            (Some(_), None, None) => {
                d.message = format!(
                    "no scratch target: set scratch_url in [datastores.{name}] or pass --restore-to"
                );
                d.code = ErrorKind::Config.exit_code();
            }
            (Some(m), Some(url), None) => {
                ctx.info(format!(
                    "drill: restoring {} (newest of `{name}`)",
                    m.backup_id
                ));
                match verify_and_record_timed(ctx, m, Level::Restore, Some(&url), &keys, false)
                    .await
                {
                    Ok(levels) => {
                        d.verified = true;
                        d.phases = ["stored", "content", "restore"]
                            .iter()
                            .zip(&levels)
                            .flat_map(|(level, t)| match t.report.load_seconds {
                                // Level 3 split: the load into the scratch target, then
                                // the comparison of its live contents.
                                Some(load) => vec![
                                    ("load".to_string(), load),
                                    ("verify".to_string(), (t.seconds - load).max(0.0)),
                                ],
                                None => vec![(level.to_string(), t.seconds)],
                            })
                            .collect();
                        d.message = format!(
                            "{} checks passed",
                            levels.iter().map(|t| t.report.checks.len()).sum::<usize>()
                        );
                    }
                    // Interrupted: the scratch database was rolled back; no verdict,
                    // no record, no next datastore.
                    Err(e) if ctx.cancel.is_cancelled() || e.kind() == ErrorKind::Interrupted => {
                        return Err(e)
                    }
                    Err(e) => {
                        d.message = e.to_string();
                        d.code = e.kind().exit_code();
                    }
                }
            }
        }
        d.rto_seconds = clock.elapsed().as_secs_f64();
        let mut missed = Vec::new();
        if let Some(target) = d.rto_objective_seconds.filter(|t| d.rto_seconds > *t) {
            missed.push(format!(
                "RTO {:.1}s over its objective {target:.0}s",
                d.rto_seconds
            ));
        }
        if let (Some(rpo), Some(target)) = (d.rpo_seconds, d.rpo_objective_seconds) {
            if rpo > target {
                missed.push(format!("RPO {rpo:.1}s over its objective {target:.0}s"));
            }
        }
        d.passed = d.verified && missed.is_empty();
        if d.verified && !missed.is_empty() {
            d.message = missed.join(", ");
        }
        let mut outcome = Outcome::new(
            name,
            Event::Drill,
            d.passed,
            newest.map(|m| &m.backup_id),
            d.message.clone(),
        );
        outcome.figures = serde_json::to_value(&d).ok();
        history::record(ctx, outcome).await;
        drills.push(d);
    }
    let report = DrillReport { drills };
    if let Some(path) = &options.metrics_file {
        super::status::write_metrics(path, &report.metrics())?;
    }
    if let Some(path) = &options.report {
        let mut past = Vec::new();
        let since = Span {
            months: 12,
            seconds: 0,
        }
        .before(Utc::now());
        for name in &names {
            let (records, _) = history::outcomes(&ctx.store, name, Event::Drill, since).await?;
            past.extend(
                records
                    .into_iter()
                    .filter_map(|o| o.figures)
                    .filter_map(|f| serde_json::from_value::<Drill>(f).ok()),
            );
        }
        let html = super::drill_html::render(&report, &past, ctx.store.url());
        crate::fsutil::write_atomically(path, html.as_bytes(), false).map_err(|e| {
            Error::operation(
                ErrorKind::Other,
                format!("cannot write drill report {}: {e}", path.display()),
            )
        })?;
    }
    super::notify::send(ctx, || {
        let result: Result<&DrillReport> = match report.failure() {
            Some(e) => Err(e),
            None => Ok(&report),
        };
        // The drills' figures also when one failed or missed an objective.
        super::notify::Event::of_result("drill", &result, |r| {
            (
                format!("drill of {} datastore(s) passed", r.drills.len()),
                serde_json::Value::Null,
            )
        })
        .with_figures(serde_json::to_value(&report).unwrap_or_default())
    })
    .await;
    Ok(report)
}
