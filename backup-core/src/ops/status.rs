//! `status`: is every datastore backed up recently and verified?
//!
//! For each datastore (those of the config file, else those in the store): the newest
//! complete backup, its age, size and duration, and the last verification (whichever
//! front-end wrote it). A datastore is *unhealthy* when it has no backup, its newest
//! backup is older than its max age (the option, else its `max_age` in the config file,
//! else 25h), or its most recent verification failed; then the result's
//! [`StatusReport::failure`] is [`crate::ErrorKind::Unhealthy`] (exit 9, for cron and
//! Kubernetes alerting). The store itself is checked too ([`super::alerts`]): its usage
//! against a quota or its filesystem, and keys near their expiry date; an alert there
//! fails the same way. `metrics_file` writes the same as Prometheus text for
//! node_exporter's textfile collector, atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alerts::StoreHealth;
use super::history::Kpis;
use super::prune::parse_span;
use super::{ArchiveStatus, OpContext};
use crate::error::{Error, ErrorKind, Result};
use crate::id::BackupId;
use crate::manifest::Manifest;
use crate::retention::Span;
use crate::store::VerificationRecord;

/// The default maximum age of the newest backup.
pub const DEFAULT_MAX_AGE: Span = Span {
    months: 0,
    seconds: 25 * 3600,
};

/// What to report on.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusOptions {
    /// Unhealthy when the newest backup is older than this (e.g. 25h, 8d). Overrides
    /// each datastore's `max_age`; default 25h.
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub max_age: Option<Span>,
    /// Only this datastore (repeatable).
    #[arg(long = "datastore", short = 'd', value_name = "NAME")]
    #[serde(alias = "datastore")]
    pub datastores: Vec<String>,
    /// Also write Prometheus metrics to this file (node_exporter textfile collector;
    /// name it *.prom in the collector's directory).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// The window of the success rates (backups, verifications), e.g. 7d, 30d; default
    /// 30d.
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub window: Option<Span>,
}

/// The default window of the success rates.
pub const DEFAULT_WINDOW: Span = Span {
    months: 0,
    seconds: 30 * 86_400,
};

/// One datastore's status.
#[derive(Debug, Clone, Serialize)]
pub struct DatastoreStatus {
    /// The datastore.
    pub datastore: String,
    /// Its kind (from the newest manifest).
    pub kind: Option<String>,
    /// Whether it is configured in the config file.
    pub configured: bool,
    /// Complete backups in the store.
    pub backups: usize,
    /// Manifests in its folder that no trusted key signed: skipped (never counted as
    /// backups), reported here and in the metrics. Someone wrote to the store.
    pub untrusted_manifests: usize,
    /// The newest complete backup.
    pub newest: Option<NewestBackup>,
    /// The most recent verification record of any of its backups.
    pub last_verification: Option<VerificationRecord>,
    /// The maximum age in force.
    pub max_age: String,
    /// Its continuous archive (PostgreSQL's WAL), if it has one: the newest archived
    /// segment's age is the real recovery point objective.
    pub wal: Option<ArchiveStatus>,
    /// Success rates over the window, from the outcome records.
    pub kpis: Kpis,
    /// Whether everything is fine.
    pub healthy: bool,
    /// Why not.
    pub problems: Vec<String>,
}

/// The newest backup of a datastore.
#[derive(Debug, Clone, Serialize)]
pub struct NewestBackup {
    /// Its id.
    pub backup_id: BackupId,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Seconds since it finished.
    pub age_seconds: i64,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// Stored bytes (all artifacts).
    pub stored_bytes: u64,
    /// Plaintext bytes (all artifacts).
    pub plaintext_bytes: u64,
    /// Its own verification record, if any.
    pub verification: Option<VerificationRecord>,
}

/// Every datastore's status, and the store's.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The statuses, by datastore.
    pub datastores: Vec<DatastoreStatus>,
    /// The store's usage and the configured keys' expiry.
    pub store: StoreHealth,
    /// When it was computed.
    #[serde(skip)]
    pub now: DateTime<Utc>,
}

impl StatusReport {
    /// The error to end with when any datastore is unhealthy or the store has an
    /// alert (exit 9).
    pub fn failure(&self) -> Option<Error> {
        let bad: Vec<&str> = self
            .datastores
            .iter()
            .filter(|s| !s.healthy)
            .map(|s| s.datastore.as_str())
            .collect();
        let mut parts = Vec::new();
        if !bad.is_empty() {
            parts.push(format!(
                "{} of {} datastores unhealthy: {}",
                bad.len(),
                self.datastores.len(),
                bad.join(", ")
            ));
        }
        parts.extend(self.store.problems.iter().cloned());
        (!parts.is_empty()).then(|| Error::operation(ErrorKind::Unhealthy, parts.join("; ")))
    }

    /// The statuses as Prometheus text.
    pub fn metrics(&self) -> String {
        let mut text = metrics(&self.datastores, self.now);
        text.push_str(&store_metrics(&self.store));
        text
    }
}

/// Computes the status of datastores `(name, configured)` from a store listing.
pub fn compute(
    names: &[(String, bool)],
    backups: &[Manifest],
    records: &BTreeMap<(String, BackupId), VerificationRecord>,
    max_age_for: &dyn Fn(&str) -> Span,
    now: DateTime<Utc>,
) -> Vec<DatastoreStatus> {
    let mut out = Vec::new();
    for (name, configured) in names {
        let mine: Vec<&Manifest> = backups
            .iter()
            .filter(|m| &m.datastore.name == name)
            .collect();
        // Newest = latest start, then id: the order of retention and verify --latest.
        let newest = mine.iter().max_by_key(|m| (&m.started_at, &m.backup_id));
        let kind = newest.map(|m| m.datastore.kind.clone());
        let last_verification = records
            .iter()
            .filter(|((ds, _), _)| ds == name)
            .map(|(_, r)| r)
            .max_by_key(|r| r.verified_at)
            .cloned();
        let max_age = max_age_for(name);
        let mut problems = Vec::new();
        let newest = newest.map(|m| NewestBackup {
            backup_id: m.backup_id.clone(),
            finished_at: m.finished_at,
            age_seconds: (now - m.finished_at).num_seconds(),
            duration_seconds: (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0,
            stored_bytes: m.artifacts().map(|a| a.stored_size).sum(),
            plaintext_bytes: m.artifacts().map(|a| a.plaintext_size).sum(),
            verification: records.get(&(name.clone(), m.backup_id.clone())).cloned(),
        });
        match &newest {
            None => problems.push("no complete backup".to_string()),
            Some(n) => {
                if n.finished_at <= max_age.before(now) {
                    problems.push(format!(
                        "newest backup {} is {} old (max {max_age})",
                        n.backup_id,
                        age_text(n.age_seconds)
                    ));
                }
            }
        }
        if let Some(v) = last_verification.as_ref().filter(|v| !v.ok) {
            problems.push(format!(
                "last verification of {} ({}, {}) failed: {}",
                v.backup_id,
                v.level,
                v.verified_at.format("%Y-%m-%d %H:%M UTC"),
                v.message
            ));
        }
        out.push(DatastoreStatus {
            datastore: name.clone(),
            kind,
            configured: *configured,
            backups: mine.len(),
            untrusted_manifests: 0,
            newest,
            last_verification,
            max_age: max_age.to_string(),
            wal: None,
            kpis: Kpis::default(),
            healthy: problems.is_empty(),
            problems,
        });
    }
    out
}

/// An age for humans: `42m`, `26h01m`, `3d2h`.
pub fn age_text(secs: i64) -> String {
    let s = secs.max(0);
    if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// Escapes a Prometheus label value.
pub(super) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The statuses as Prometheus text exposition format.
pub fn metrics(statuses: &[DatastoreStatus], now: DateTime<Utc>) -> String {
    let mut families: Vec<(&str, &str, Vec<String>)> = [
        (
            "dbseal_datastore_healthy",
            "1 if the datastore has a recent backup and its last verification did not fail.",
        ),
        (
            "dbseal_backups",
            "Complete backups of the datastore in the store.",
        ),
        (
            "dbseal_last_success_timestamp_seconds",
            "Unix time the newest complete backup finished.",
        ),
        (
            "dbseal_last_backup_age_seconds",
            "Seconds since the newest complete backup finished.",
        ),
        (
            "dbseal_last_backup_duration_seconds",
            "How long the newest complete backup took.",
        ),
        (
            "dbseal_last_backup_stored_bytes",
            "Stored (compressed, encrypted) bytes of the newest backup.",
        ),
        (
            "dbseal_last_backup_plaintext_bytes",
            "Plaintext bytes of the newest backup.",
        ),
        (
            "dbseal_max_age_seconds",
            "The maximum age of the newest backup before it is unhealthy.",
        ),
        (
            "dbseal_last_verification_timestamp_seconds",
            "Unix time of the most recent verification of any backup of the datastore.",
        ),
        (
            "dbseal_last_verification_success",
            "1 if the most recent verification passed, 0 if it failed.",
        ),
        (
            "dbseal_last_verification_level",
            "Level of the most recent verification (1 stored, 2 content, 3 restore).",
        ),
        (
            "dbseal_wal_newest_segment_age_seconds",
            "Seconds since the newest WAL segment was archived (PostgreSQL PITR recovery point).",
        ),
        (
            "dbseal_untrusted_manifests",
            "Manifests in the datastore's folder that no trusted key signed (skipped; someone wrote to the store).",
        ),
        (
            "dbseal_window_backups_succeeded",
            "Backups that succeeded within status's --window (default 30d), from the outcome records.",
        ),
        (
            "dbseal_window_backups_failed",
            "Backups that failed within the window.",
        ),
        (
            "dbseal_backup_success_ratio",
            "Succeeded / all backups within the window (absent without any).",
        ),
        (
            "dbseal_window_verifications_passed",
            "Recorded verifications that passed within the window.",
        ),
        (
            "dbseal_window_verifications_failed",
            "Recorded verifications that failed within the window.",
        ),
        (
            "dbseal_verification_success_ratio",
            "Passed / all recorded verifications within the window (absent without any).",
        ),
        (
            "dbseal_window_drills_passed",
            "Drills within their objectives within the window.",
        ),
        (
            "dbseal_window_drills_failed",
            "Drills that failed or missed an objective within the window.",
        ),
        (
            "dbseal_window_notifications_failed",
            "Notifications about the datastore that could not be delivered within the window (the operations themselves were unaffected).",
        ),
    ]
    .into_iter()
    .map(|(n, h)| (n, h, Vec::new()))
    .collect();
    let mut push = |i: usize, labels: &str, v: String| {
        families[i].2.push(format!("{{{labels}}} {v}"));
    };
    for s in statuses {
        let l = format!(
            "datastore=\"{}\",kind=\"{}\"",
            label(&s.datastore),
            label(s.kind.as_deref().unwrap_or(""))
        );
        push(0, &l, u8::from(s.healthy).to_string());
        push(1, &l, s.backups.to_string());
        if let Some(n) = &s.newest {
            push(2, &l, n.finished_at.timestamp().to_string());
            push(
                3,
                &l,
                (now - n.finished_at).num_seconds().max(0).to_string(),
            );
            push(4, &l, format!("{:.3}", n.duration_seconds));
            push(5, &l, n.stored_bytes.to_string());
            push(6, &l, n.plaintext_bytes.to_string());
        }
        if let Ok(span) = s.max_age.parse::<Span>() {
            let secs = (now - span.before(now)).num_seconds();
            push(7, &l, secs.to_string());
        }
        if let Some(v) = &s.last_verification {
            push(8, &l, v.verified_at.timestamp().to_string());
            push(9, &l, u8::from(v.ok).to_string());
            let level = match v.level.as_str() {
                "stored" => 1,
                "content" => 2,
                "restore" => 3,
                _ => 0,
            };
            push(10, &l, level.to_string());
        }
        if let Some(age) = s.wal.as_ref().and_then(|w| w.newest_age_seconds) {
            push(11, &l, age.max(0).to_string());
        }
        push(12, &l, s.untrusted_manifests.to_string());
        let k = &s.kpis;
        push(13, &l, k.backups_succeeded.to_string());
        push(14, &l, k.backups_failed.to_string());
        if let Some(r) = k.backup_success_rate {
            push(15, &l, format!("{r:.6}"));
        }
        push(16, &l, k.verifications_passed.to_string());
        push(17, &l, k.verifications_failed.to_string());
        if let Some(r) = k.verification_success_rate {
            push(18, &l, format!("{r:.6}"));
        }
        push(19, &l, k.drills_passed.to_string());
        push(20, &l, k.drills_failed.to_string());
        push(21, &l, k.notifications_failed.to_string());
    }
    let mut text = String::new();
    for (name, help, samples) in families {
        push_family(&mut text, name, help, samples);
    }
    text
}

/// Appends one gauge family in Prometheus text format: its HELP and TYPE lines, then
/// one line per sample (`{labels} value`, written after the name).
pub(super) fn push_family(
    text: &mut String,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = String>,
) {
    text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for sample in samples {
        text.push_str(&format!("{name}{sample}\n"));
    }
}

/// The store's usage and keys as Prometheus text.
fn store_metrics(h: &StoreHealth) -> String {
    let mut text = String::new();
    let mut family =
        |name: &str, help: &str, samples: Vec<String>| push_family(&mut text, name, help, samples);
    let store = format!("store=\"{}\"", label(&h.url));
    let usage = |f: &dyn Fn(&super::alerts::StorageUsage) -> String| {
        h.storage
            .as_ref()
            .map(|u| {
                format!(
                    "{{{store},measured_against=\"{}\"}} {}",
                    u.measured_against,
                    f(u)
                )
            })
            .into_iter()
            .collect::<Vec<_>>()
    };
    family(
        "dbseal_store_used_bytes",
        "Bytes the store uses (its objects against a quota, else its filesystem's).",
        usage(&|u| u.used_bytes.to_string()),
    );
    family(
        "dbseal_store_capacity_bytes",
        "The store's quota, or its filesystem's size.",
        usage(&|u| u.capacity_bytes.to_string()),
    );
    family(
        "dbseal_store_alert_ratio",
        "The usage ratio above which status alerts.",
        usage(&|u| format!("{:.4}", u.alert_percent / 100.0)),
    );
    family(
        "dbseal_key_expiry_timestamp_seconds",
        "Unix time a configured key expires (its key_expires date, 00:00 UTC).",
        h.keys
            .iter()
            .map(|k| {
                let at = k.key.expires.and_time(chrono::NaiveTime::MIN).and_utc();
                format!(
                    "{{role=\"{}\",key=\"{}\"}} {}",
                    label(k.key.role),
                    label(&k.key.short_key()),
                    at.timestamp()
                )
            })
            .collect(),
    );
    family(
        "dbseal_store_alerts",
        "Store-wide alerts of the last status run (storage usage, key expiry).",
        vec![format!("{{{store}}} {}", h.problems.len())],
    );
    text
}

/// Writes the metrics file atomically (node_exporter never reads half a file),
/// readable by the collector (mode 0644: metrics hold no secret).
pub(super) fn write_metrics(path: &std::path::Path, text: &str) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::Config(format!(
            "--metrics-file {} is not a file path",
            path.display()
        )));
    }
    crate::fsutil::write_atomically(path, text.as_bytes(), false).map_err(|e| {
        Error::operation(
            ErrorKind::Other,
            format!("cannot write metrics file {}: {e}", path.display()),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    }
    Ok(())
}

/// `dbseal status`.
pub async fn status(ctx: &OpContext, options: &StatusOptions) -> Result<StatusReport> {
    let store = &ctx.store;
    let listing = store.scan(None).await?;
    super::warn_skipped(ctx, &listing);
    let records = store.verifications(None).await?;
    let config = ctx.config.as_deref();
    let configured: BTreeSet<String> = config
        .map(|c| c.datastores.keys().cloned().collect())
        .unwrap_or_default();
    let names: Vec<(String, bool)> = if !options.datastores.is_empty() {
        options
            .datastores
            .iter()
            .map(|n| (n.clone(), configured.contains(n)))
            .collect()
    } else if !configured.is_empty() {
        configured.iter().map(|n| (n.clone(), true)).collect()
    } else {
        let found: BTreeSet<String> = listing
            .backups
            .iter()
            .map(|m| m.datastore.name.clone())
            .collect();
        found.into_iter().map(|n| (n, false)).collect()
    };
    let now = Utc::now();
    let health = super::alerts::store_health(ctx, now).await?;
    if names.is_empty() && health.problems.is_empty() {
        return Err(Error::operation(
            ErrorKind::Unhealthy,
            format!(
                "no datastore to report on: {} holds no backup and no config file names any",
                store.url()
            ),
        ));
    }
    let max_age_for = |name: &str| -> Span {
        options
            .max_age
            .or_else(|| {
                config
                    .and_then(|c| c.datastores.get(name))
                    .and_then(|d| d.max_age)
            })
            .unwrap_or(DEFAULT_MAX_AGE)
    };
    let mut statuses = compute(&names, &listing.backups, &records, &max_age_for, now);
    for st in statuses.iter_mut() {
        let folder = format!("{}/", st.datastore);
        st.untrusted_manifests = listing
            .untrusted
            .iter()
            .filter(|(k, _)| k.starts_with(&folder))
            .count();
        for archive in &ctx.archives {
            if let Some(wal) = archive.status(store, &st.datastore).await? {
                st.wal = Some(wal);
            }
        }
        let window = options.window.unwrap_or(DEFAULT_WINDOW);
        st.kpis = super::history::kpis(store, &st.datastore, window, now).await?;
    }
    let report = StatusReport {
        datastores: statuses,
        store: health,
        now,
    };
    if let Some(path) = &options.metrics_file {
        write_metrics(path, &report.metrics())?;
    }
    if let Some(failure) = report.failure() {
        super::notify::send(ctx, || {
            super::notify::Event::new("status", super::notify::On::Alert, failure.to_string())
                .with_figures(serde_json::to_value(&report).unwrap_or_default())
        })
        .await;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(age_text(90), "1m");
        assert_eq!(age_text(26 * 3600 + 60), "26h01m");
        assert_eq!(age_text(3 * 86_400 + 7200), "3d2h");
    }

    #[test]
    fn the_archive_recovery_point_is_a_metric() {
        let now = Utc::now();
        let st = DatastoreStatus {
            datastore: "app".into(),
            kind: Some("postgres".into()),
            configured: false,
            backups: 0,
            untrusted_manifests: 0,
            newest: None,
            last_verification: None,
            max_age: DEFAULT_MAX_AGE.to_string(),
            wal: Some(ArchiveStatus {
                datastore: "app".into(),
                newest_segment: Some("000000010000000000000007".into()),
                newest_archived_at: Some(now),
                newest_age_seconds: Some(42),
                last_archived_at: Some(now),
                segments: 7,
                timelines: vec![1],
                system_identifier: None,
            }),
            kpis: Kpis {
                backups_succeeded: 29,
                backups_failed: 1,
                backup_success_rate: Some(29.0 / 30.0),
                ..Default::default()
            },
            healthy: false,
            problems: vec![],
        };
        let text = metrics(&[st], now);
        assert!(
            text.contains(
                "dbseal_wal_newest_segment_age_seconds{datastore=\"app\",kind=\"postgres\"} 42"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "dbseal_backup_success_ratio{datastore=\"app\",kind=\"postgres\"} 0.966667"
            ) && text
                .contains("dbseal_window_backups_failed{datastore=\"app\",kind=\"postgres\"} 1")
                && !text.contains("dbseal_verification_success_ratio{"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn unhealthy_datastores_fail_with_exit_9_and_metrics_are_written() {
        use crate::driver::Registry;
        use crate::store::BackupStore;
        let store = BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(crate::Trust::ephemeral().unwrap());
        let keys = crate::keys::KeyPair::generate();
        let mut src = crate::source::ReaderSource::new(&b"x"[..], "stdin");
        let m = crate::pipeline::backup(
            &store,
            &mut src,
            crate::pipeline::BackupOptions::new("app", keys.encryption()),
        )
        .await
        .unwrap();
        let ctx = OpContext::new(Registry::new(), store.clone());
        let dir = tempfile::tempdir().unwrap();
        let prom = dir.path().join("dbseal.prom");
        let options = StatusOptions {
            metrics_file: Some(prom.clone()),
            ..Default::default()
        };
        let report = status(&ctx, &options).await.unwrap();
        assert!(report.failure().is_none());
        assert_eq!(
            report.datastores[0].newest.as_ref().unwrap().backup_id,
            m.backup_id
        );
        let text = std::fs::read_to_string(&prom).unwrap();
        assert!(text.contains("dbseal_datastore_healthy{datastore=\"app\",kind=\"stdin\"} 1"));
        let rec = VerificationRecord::new("app", &m.backup_id, "content", false, "bad");
        store.put_verification(&rec).await.unwrap();
        let report = status(
            &ctx,
            &StatusOptions {
                datastores: vec!["app".into(), "other".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let e = report.failure().unwrap();
        assert_eq!(e.kind().exit_code(), 9);
        assert!(e.to_string().contains("2 of 2 datastores unhealthy"), "{e}");
        let empty = OpContext::new(
            Registry::new(),
            BackupStore::open("memory://", &Default::default())
                .unwrap()
                .with_trust(crate::Trust::ephemeral().unwrap()),
        );
        let e = status(&empty, &StatusOptions::default()).await.unwrap_err();
        assert_eq!(e.kind().exit_code(), 9);
    }
}
