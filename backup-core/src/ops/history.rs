//! Outcome records: the history `status` computes its KPIs from.
//!
//! Every backup (success or failure), every recorded verification and every drill
//! leaves a small signed record under
//! `_records/<datastore>/<backups|verifications|drills>/<time>-<n>.json`:
//! outside any backup folder, so `list`, `restore` and prune's debris sweep never see it,
//! and kept when the backup it tells of is pruned (a success rate must not forget the
//! successes retention removed). `status --window 30d` counts those of the window:
//! backup success rate, verification success rate. Records are signed like
//! verification records ([`Role::Record`]): an unsigned or forged one is skipped with a
//! warning. `prune` removes records older than [`RECORD_RETENTION`].
//!
//! Writing a record never changes the outcome it tells of: a record that cannot be
//! written is a warning.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::OpContext;
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::retention::Span;
use crate::sign::Role;
use crate::store::BackupStore;

/// The folder of outcome records.
pub const RECORDS_FOLDER: &str = "_records";

/// How long `prune` keeps outcome records (13 months: a year of KPIs and a margin).
pub const RECORD_RETENTION: Span = Span {
    months: 13,
    seconds: 0,
};

/// At most this many records of one kind of one datastore are read per window (a
/// store with more is reported as such, not read without end).
pub const MAX_RECORDS_READ: usize = 20_000;

/// What a record tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A backup.
    Backup,
    /// A recorded verification.
    Verification,
    /// A disaster-recovery drill ([`super::drill`]).
    Drill,
    /// A notification that could not be delivered ([`super::notify`]; only failures
    /// are recorded).
    Notification,
}

impl Event {
    fn folder(self) -> &'static str {
        match self {
            Event::Backup => "backups",
            Event::Verification => "verifications",
            Event::Drill => "drills",
            Event::Notification => "notifications",
        }
    }
}

/// One outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The datastore.
    pub datastore: String,
    /// Backup or verification.
    pub event: Event,
    /// Whether it succeeded.
    pub ok: bool,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// The backup made or verified (none for a failed backup).
    pub backup_id: Option<BackupId>,
    /// What happened (scrubbed of secrets).
    pub message: String,
    /// The tool that wrote it.
    pub tool: crate::manifest::ToolInfo,
    /// Figures (a drill's RTO and RPO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<serde_json::Value>,
}

impl Outcome {
    /// An outcome ending now.
    pub fn new(
        datastore: &str,
        event: Event,
        ok: bool,
        backup_id: Option<&BackupId>,
        message: impl Into<String>,
    ) -> Self {
        Outcome {
            datastore: datastore.to_string(),
            event,
            ok,
            at: Utc::now(),
            backup_id: backup_id.cloned(),
            message: message.into(),
            tool: Default::default(),
            figures: None,
        }
    }
}

/// The folder of `datastore`'s records of `event`.
fn folder(datastore: &str, event: Event) -> String {
    format!("{RECORDS_FOLDER}/{datastore}/{}", event.folder())
}

/// When a record was written, from its name (`20261207T223000.123Z-1a2b3c4d.json`).
fn time_of(key: &str) -> Option<DateTime<Utc>> {
    let name = key.rsplit('/').next()?;
    let stamp = name.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Writes `outcome` (best effort: a failure is a warning, never the operation's).
pub async fn record(ctx: &OpContext, mut outcome: Outcome) {
    outcome.message = ctx.scrub(&outcome.message);
    if let Err(e) = write(&ctx.store, &outcome).await {
        tracing::warn!(
            datastore = outcome.datastore,
            error = %ctx.scrub(&e.to_string()),
            "could not write the outcome record (status's KPIs will miss it)"
        );
    }
}

async fn write(store: &BackupStore, outcome: &Outcome) -> Result<()> {
    BackupStore::validate_datastore_name(&outcome.datastore)?;
    let key = format!(
        "{}/{}-{:08x}.json",
        folder(&outcome.datastore, outcome.event),
        outcome.at.format("%Y%m%dT%H%M%S%.3fZ"),
        rand::random::<u32>()
    );
    let data =
        serde_json::to_vec(outcome).map_err(|e| Error::Config(format!("outcome record: {e}")))?;
    store.put_signed(&key, data, true).await.map(|_| ())
}

/// The records of `datastore`'s `event`s written at or after `since`, oldest first,
/// and whether there were more than [`MAX_RECORDS_READ`] (the newest are read).
pub async fn outcomes(
    store: &BackupStore,
    datastore: &str,
    event: Event,
    since: DateTime<Utc>,
) -> Result<(Vec<Outcome>, bool)> {
    let mut keys: Vec<(DateTime<Utc>, String)> = store
        .list_keys(&folder(datastore, event))
        .await?
        .into_iter()
        .filter(|(k, _)| k.ends_with(".json"))
        .filter_map(|(k, _)| time_of(&k).map(|t| (t, k)))
        .filter(|(t, _)| *t >= since)
        .collect();
    keys.sort();
    let truncated = keys.len() > MAX_RECORDS_READ;
    let skip = keys.len().saturating_sub(MAX_RECORDS_READ);
    let mut out = Vec::new();
    for (_, key) in keys.into_iter().skip(skip) {
        let read = store.get_signed(&key, Role::Record).await.and_then(|b| {
            serde_json::from_slice::<Outcome>(&b)
                .map_err(|e| Error::Config(format!("{key}: not an outcome record: {e}")))
        });
        match read {
            // A record is believed only where it was written: same datastore, event.
            Ok(o) if o.datastore == datastore && o.event == event => out.push(o),
            Ok(_) => tracing::warn!(key, "skipping an outcome record found in another folder"),
            Err(Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => {}
            Err(e) => tracing::warn!(key, error = %e, "skipping unreadable outcome record"),
        }
    }
    Ok((out, truncated))
}

/// Deletes the records (and their signatures) written before `before`, of the
/// `datastores` named (all when empty); returns how many records it deleted (or would,
/// with `dry_run`).
pub async fn prune_records(
    store: &BackupStore,
    datastores: &[String],
    before: DateTime<Utc>,
    dry_run: bool,
) -> Result<usize> {
    let folders: Vec<String> = if datastores.is_empty() {
        vec![RECORDS_FOLDER.to_string()]
    } else {
        datastores
            .iter()
            .map(|d| format!("{RECORDS_FOLDER}/{d}"))
            .collect()
    };
    let mut deleted = 0usize;
    for folder in folders {
        for (key, _) in store.list_keys(&folder).await? {
            if time_of(&key).is_some_and(|t| t < before) {
                if !dry_run {
                    store.delete(&key).await?;
                }
                if key.ends_with(".json") {
                    deleted = deleted.saturating_add(1);
                }
            }
        }
    }
    Ok(deleted)
}

/// KPIs of one datastore over a window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kpis {
    /// The window (e.g. `30d`).
    pub window: String,
    /// Backups that succeeded in the window.
    pub backups_succeeded: usize,
    /// Backups that failed in the window.
    pub backups_failed: usize,
    /// Succeeded / all, when there was any.
    pub backup_success_rate: Option<f64>,
    /// Verifications that passed in the window.
    pub verifications_passed: usize,
    /// Verifications that failed in the window.
    pub verifications_failed: usize,
    /// Passed / all, when there was any.
    pub verification_success_rate: Option<f64>,
    /// Drills within their objectives in the window.
    pub drills_passed: usize,
    /// Drills that failed or missed an objective in the window.
    pub drills_failed: usize,
    /// The newest drill of the window: its RTO and RPO against the objectives.
    pub last_drill: Option<LastDrill>,
    /// Notifications about this datastore that could not be delivered in the window.
    pub notifications_failed: usize,
    /// More records than [`MAX_RECORDS_READ`]: the counts are of the newest.
    pub truncated: bool,
}

/// The figures of a drill record (see [`super::drill::Drill`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastDrill {
    /// When it ended.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Within every objective.
    pub passed: bool,
    /// Measured RTO.
    pub rto_seconds: f64,
    /// The RTO objective then.
    pub rto_objective_seconds: Option<f64>,
    /// Measured RPO.
    pub rpo_seconds: Option<f64>,
    /// The RPO objective then.
    pub rpo_objective_seconds: Option<f64>,
}

/// `datastore`'s KPIs over `window` ending at `now`.
pub async fn kpis(
    store: &BackupStore,
    datastore: &str,
    window: Span,
    now: DateTime<Utc>,
) -> Result<Kpis> {
    let since = window.before(now);
    let (backups, t1) = outcomes(store, datastore, Event::Backup, since).await?;
    let (verifications, t2) = outcomes(store, datastore, Event::Verification, since).await?;
    let (drills, t3) = outcomes(store, datastore, Event::Drill, since).await?;
    let (notifications, t4) = outcomes(store, datastore, Event::Notification, since).await?;
    let last_drill = drills.last().and_then(|o| {
        let mut d: LastDrill = serde_json::from_value(o.figures.clone()?).ok()?;
        d.at = Some(o.at);
        Some(d)
    });
    let count = |v: &[Outcome], ok: bool| v.iter().filter(|o| o.ok == ok).count();
    let rate = |good: usize, bad: usize| {
        let all = good.saturating_add(bad);
        (all > 0).then(|| good as f64 / all as f64)
    };
    let (bs, bf) = (count(&backups, true), count(&backups, false));
    let (vs, vf) = (count(&verifications, true), count(&verifications, false));
    Ok(Kpis {
        window: window.to_string(),
        backups_succeeded: bs,
        backups_failed: bf,
        backup_success_rate: rate(bs, bf),
        verifications_passed: vs,
        verifications_failed: vf,
        verification_success_rate: rate(vs, vf),
        drills_passed: count(&drills, true),
        drills_failed: count(&drills, false),
        last_drill,
        notifications_failed: count(&notifications, false),
        truncated: t1 || t2 || t3 || t4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_counted_in_their_window_and_only_when_signed() {
        let trust = crate::Trust::ephemeral().unwrap();
        let store = BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(trust);
        let ctx = OpContext::new(crate::driver::Registry::new(), store.clone());
        let id = BackupId::now();
        record(
            &ctx,
            Outcome::new("app", Event::Backup, true, Some(&id), "ok"),
        )
        .await;
        record(
            &ctx,
            Outcome::new("app", Event::Backup, false, None, "pg_dump: boom"),
        )
        .await;
        record(
            &ctx,
            Outcome::new("app", Event::Verification, true, Some(&id), "ok"),
        )
        .await;
        record(&ctx, Outcome::new("other", Event::Backup, false, None, "x")).await;
        let mut drill = Outcome::new("app", Event::Drill, false, Some(&id), "RPO over");
        drill.figures = Some(serde_json::json!({
            "passed": false, "rto_seconds": 12.5, "rto_objective_seconds": 3600.0,
            "rpo_seconds": 1000.0, "rpo_objective_seconds": 900.0, "datastore": "app"
        }));
        record(&ctx, drill).await;
        // An old record (outside a 1-day window) and a forged one (no signature).
        let mut old = Outcome::new("app", Event::Backup, false, None, "old");
        old.at = Utc::now() - chrono::Duration::days(3);
        write(&store, &old).await.unwrap();
        let forged = Outcome::new("app", Event::Backup, true, None, "forged");
        let key = format!(
            "{}/{}-00000000.json",
            folder("app", Event::Backup),
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        store
            .put_bytes(&key, serde_json::to_vec(&forged).unwrap())
            .await
            .unwrap();

        let k = kpis(
            &store,
            "app",
            Span::days(1),
            Utc::now() + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
        assert_eq!((k.backups_succeeded, k.backups_failed), (1, 1), "{k:?}");
        assert_eq!(k.backup_success_rate, Some(0.5));
        assert_eq!((k.verifications_passed, k.verifications_failed), (1, 0));
        assert_eq!(k.verification_success_rate, Some(1.0));
        assert_eq!((k.drills_passed, k.drills_failed), (0, 1));
        let last = k.last_drill.as_ref().unwrap();
        assert_eq!(
            (last.passed, last.rto_seconds, last.rpo_seconds),
            (false, 12.5, Some(1000.0))
        );
        assert_eq!(last.rpo_objective_seconds, Some(900.0));
        let k = kpis(&store, "app", Span::days(7), Utc::now())
            .await
            .unwrap();
        assert_eq!(k.backups_failed, 2, "the old failure is in a week's window");
        let none = kpis(&store, "quiet", Span::days(7), Utc::now())
            .await
            .unwrap();
        assert_eq!(none.backup_success_rate, None);

        // Prune removes what is older than its cut, signatures included.
        let before = store.list_keys(RECORDS_FOLDER).await.unwrap().len();
        let cut = Utc::now() - chrono::Duration::days(2);
        assert_eq!(prune_records(&store, &[], cut, true).await.unwrap(), 1);
        assert_eq!(
            prune_records(&store, &["other".into()], cut, false)
                .await
                .unwrap(),
            0
        );
        let n = prune_records(&store, &["app".into()], cut, false)
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            store.list_keys(RECORDS_FOLDER).await.unwrap().len(),
            before - 2
        );
    }

    #[test]
    fn record_names_carry_their_time() {
        let t = time_of("_records/app/backups/20261207T223000.123Z-1a2b3c4d.json").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-07T22:30:00.123+00:00");
        assert!(time_of("_records/app/backups/junk.json").is_none());
    }
}
