#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! `prune`: delete backups that the retention policy no longer keeps, the debris of
//! failed backups, continuous-archive files no kept backup needs, and set manifests
//! none of whose members is left.
//!
//! The policy of each datastore is `[retention]` of the config file, overridden by its
//! `[datastores.NAME.retention]`, overridden by the options. The rules (restic's GFS
//! rules plus dbseal's never-delete rules) are in [`crate::retention`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::set::{read_set, set_id_of_key, SETS_FOLDER};
use super::{refused, stored_size, OpContext};
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::manifest::Manifest;
use crate::retention::{
    self, Candidate, DebrisCandidate, RetentionPlan, RetentionPolicy, Span, VerificationState,
};
use crate::store::{BackupStore, IncompleteBackup};

/// Parses a duration (`25h`, `2d`, `1y6m`) for a flag.
pub fn parse_span(s: &str) -> std::result::Result<Span, String> {
    s.parse::<Span>().map_err(|e| e.to_string())
}

/// What to prune and by which rules (restic's GFS rules).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PruneOptions {
    /// Only this datastore (repeatable). Default: every datastore in the store.
    #[arg(long = "datastore", short = 'd', value_name = "NAME")]
    #[serde(alias = "datastore")]
    pub datastores: Vec<String>,
    /// Keep the N newest backups.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have one.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every backup made within this span before the newest one (e.g. 2d, 1y6m).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub keep_within: Option<Span>,
    /// Delete debris of failed backups (folders without manifest) older than this
    /// (default 24h).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub debris_grace: Option<Span>,
    /// Print what would be deleted and why each kept backup is kept; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only the debris of failed backups (folders without a manifest, older than the
    /// grace period): list it with its size and delete it; no backup is touched.
    #[arg(long)]
    pub debris: bool,
    /// Delete even when the run would delete more than half of a datastore's backups
    /// (refused otherwise, exit 8).
    #[arg(long)]
    pub force: bool,
}

impl PruneOptions {
    /// The rules these options set (overriding the configuration's).
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within,
            debris_grace: self.debris_grace,
        }
    }
}

/// One datastore's plan and what happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct DatastorePrune {
    /// The datastore.
    pub datastore: String,
    /// The policy in force.
    pub policy: RetentionPolicy,
    /// The policy in words.
    pub policy_summary: String,
    /// What is kept and why, what is deleted.
    #[serde(flatten)]
    pub plan: RetentionPlan,
    /// Object keys deleted (or, in a dry run, that would be).
    pub deleted_keys: Vec<String>,
    /// Bytes of debris deleted (or, in a dry run, that would be).
    pub debris_bytes: u64,
    /// Whether anything was actually deleted (false in a dry run).
    pub executed: bool,
}

/// What `prune` did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Each datastore's plan.
    pub datastores: Vec<DatastorePrune>,
    /// Set manifests deleted because none of their members is left.
    pub set_manifests_deleted: Vec<String>,
    /// Outcome records older than 13 months deleted ([`super::history`]).
    pub records_deleted: usize,
    /// Stored bytes of every backup seen, by id (for reports).
    #[serde(skip)]
    pub sizes: BTreeMap<BackupId, u64>,
    /// Whether this was a dry run.
    #[serde(skip)]
    pub dry_run: bool,
}

/// `dbseal prune`.
pub async fn prune(ctx: &OpContext, options: &PruneOptions) -> Result<PruneReport> {
    let result = prune_store(ctx, options).await;
    if !options.dry_run {
        super::notify::send(ctx, || {
            super::notify::Event::of_result("prune", &result, |report| {
                (
                    "prune completed".to_string(),
                    serde_json::to_value(report).unwrap_or_default(),
                )
            })
        })
        .await;
    }
    result
}

async fn prune_store(ctx: &OpContext, options: &PruneOptions) -> Result<PruneReport> {
    let store = &ctx.store;
    let listing = store.scan(None).await?;
    let verifications = store.verifications(None).await?;
    let now = chrono::Utc::now();

    let mut backups: BTreeMap<String, Vec<&Manifest>> = BTreeMap::new();
    for m in &listing.backups {
        backups.entry(m.datastore.name.clone()).or_default().push(m);
    }
    let mut debris: BTreeMap<String, Vec<&IncompleteBackup>> = BTreeMap::new();
    for d in &listing.incomplete {
        debris.entry(d.datastore.clone()).or_default().push(d);
    }
    let mut unreadable: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    super::warn_skipped(ctx, &listing);
    for (key, _) in &listing.unreadable {
        let ds = key.split('/').next().unwrap_or_default().to_string();
        unreadable.entry(ds).or_default().push(key);
    }

    let names: Vec<String> = if options.datastores.is_empty() {
        let mut n: BTreeSet<String> = backups.keys().cloned().collect();
        n.extend(debris.keys().cloned());
        n.into_iter().collect()
    } else {
        for n in &options.datastores {
            BackupStore::validate_datastore_name(n)?;
        }
        options.datastores.clone()
    };

    let mut planned = Vec::new();
    for name in &names {
        let base = ctx
            .config
            .as_deref()
            .map(|c| c.retention_for(name))
            .unwrap_or_default();
        let policy = base.overridden_by(&options.policy());
        let manifests = backups.get(name).cloned().unwrap_or_default();
        let candidates: Vec<Candidate> = manifests
            .iter()
            .map(|m| Candidate {
                id: m.backup_id.clone(),
                time: m.started_at,
                verification: match verifications.get(&(name.clone(), m.backup_id.clone())) {
                    Some(r) if r.ok => VerificationState::Verified,
                    Some(_) => VerificationState::Failed,
                    None => VerificationState::Unverified,
                },
            })
            .collect();
        let ds_debris = debris.get(name).cloned().unwrap_or_default();
        let debris_candidates: Vec<DebrisCandidate> = ds_debris
            .iter()
            .map(|d| DebrisCandidate {
                id: d.backup_id.clone(),
                last_modified: d.last_modified,
            })
            .collect();
        let mut plan = retention::plan(&policy, &candidates, &debris_candidates, now);
        if let Some(keys) = unreadable.get(name) {
            // An unreadable manifest may be the newest backup (e.g. a newer format).
            plan = retention::plan(&RetentionPolicy::default(), &candidates, &[], now);
            plan.blocked = Some(format!(
                "{} manifest(s) cannot be read ({}); nothing is deleted until they are fixed or removed by hand",
                keys.len(),
                keys.join(", ")
            ));
            plan.keep_debris = debris_candidates
                .iter()
                .map(|d| (d.id.clone(), "prune blocked (see above)".into()))
                .collect();
        }
        if let Some(why) = &plan.blocked {
            ctx.warn(format!("datastore `{name}`: nothing deleted: {why}"));
        }
        let by_id: BTreeMap<&BackupId, &&Manifest> =
            manifests.iter().map(|m| (&m.backup_id, m)).collect();
        if options.debris {
            // Debris only: every backup stays.
            for id in std::mem::take(&mut plan.delete) {
                if let Some(m) = by_id.get(&id) {
                    plan.keep.push(retention::Kept {
                        id,
                        time: m.started_at,
                        reasons: vec![retention::KeepReason::DebrisOnly],
                    });
                }
            }
            plan.keep
                .sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
        }
        planned.push((name, policy, manifests, ds_debris, plan));
    }
    // A run that would delete more than half of a datastore's backups is refused before
    // anything is deleted, unless forced: a wrong clock, a typo in a policy or a forged
    // object must not empty the store in one go.
    if !options.force && !options.dry_run {
        let many: Vec<String> = planned
            .iter()
            .filter(|(_, _, m, _, plan)| plan.delete.len().saturating_mul(2) > m.len())
            .map(|(name, _, m, _, plan)| format!("`{name}`: {} of {}", plan.delete.len(), m.len()))
            .collect();
        if !many.is_empty() {
            return Err(refused(format!(
                "prune would delete more than half of the backups of datastore {}; nothing was deleted. Check with --dry-run, then pass --force to delete them",
                many.join(", ")
            )));
        }
    }
    let mut results = Vec::new();
    for (name, policy, manifests, ds_debris, plan) in planned {
        let by_id: BTreeMap<&BackupId, &&Manifest> =
            manifests.iter().map(|m| (&m.backup_id, m)).collect();
        let mut debris_bytes = 0u64;
        let mut deleted_keys = Vec::new();
        for id in &plan.delete {
            let Some(m) = by_id.get(id) else { continue };
            if options.dry_run {
                let manifest = BackupStore::manifest_key(name, id);
                deleted_keys.push(crate::sign::signature_key(&manifest));
                deleted_keys.push(manifest);
                deleted_keys.extend(m.artifacts().map(|a| a.key.clone()));
                if verifications.contains_key(&(name.clone(), id.clone())) {
                    let record = BackupStore::verification_key(name, id);
                    deleted_keys.push(crate::sign::signature_key(&record));
                    deleted_keys.push(record);
                }
            } else {
                deleted_keys.extend(store.delete_backup(m).await?);
            }
        }
        for id in &plan.delete_debris {
            let Some(d) = ds_debris.iter().find(|d| &d.backup_id == id) else {
                continue;
            };
            debris_bytes = debris_bytes.saturating_add(d.bytes);
            if options.dry_run {
                deleted_keys.extend(d.keys.iter().cloned());
            } else {
                match store.delete_incomplete(d).await {
                    Ok(keys) => deleted_keys.extend(keys),
                    // It completed since the scan: it is a backup now, not debris.
                    Err(Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Continuous archives (PostgreSQL's WAL): what no kept backup needs goes too.
        if plan.blocked.is_none() && !options.debris {
            let deleting: BTreeSet<BackupId> = plan.delete.iter().cloned().collect();
            for archive in &ctx.archives {
                deleted_keys.extend(
                    archive
                        .prune(store, name, &deleting, options.dry_run)
                        .await?,
                );
            }
        }
        results.push(DatastorePrune {
            datastore: name.clone(),
            policy_summary: policy.to_string(),
            policy,
            plan,
            deleted_keys,
            debris_bytes,
            executed: !options.dry_run,
        });
    }

    // Set manifests whose members are all gone describe nothing restorable any more.
    let deleted: BTreeSet<&BackupId> = results.iter().flat_map(|r| r.plan.delete.iter()).collect();
    let remaining: BTreeSet<&BackupId> = listing
        .backups
        .iter()
        .map(|m| &m.backup_id)
        .filter(|id| !deleted.contains(id))
        .collect();
    let mut sets_deleted = Vec::new();
    for (key, _) in store.list_keys(SETS_FOLDER).await? {
        let Some(id) = set_id_of_key(&key) else {
            continue;
        };
        let Ok(set) = read_set(store, &id).await else {
            continue;
        };
        let alive = set
            .members
            .iter()
            .filter_map(|m| m.backup_id.as_ref())
            .any(|b| remaining.contains(b));
        if !alive {
            if !options.dry_run {
                store.delete(&key).await?;
                store.delete(&crate::sign::signature_key(&key)).await?;
            }
            sets_deleted.push(key);
        }
    }
    if results.is_empty() {
        ctx.info("no backups in the store");
    }
    let records_deleted = if options.debris {
        0
    } else {
        let cut = super::history::RECORD_RETENTION.before(now);
        super::history::prune_records(store, &options.datastores, cut, options.dry_run).await?
    };
    Ok(PruneReport {
        datastores: results,
        set_manifests_deleted: sets_deleted,
        records_deleted,
        sizes: listing
            .backups
            .iter()
            .map(|m| (m.backup_id.clone(), stored_size(m)))
            .collect(),
        dry_run: options.dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Registry;
    use crate::keys::KeyPair;
    use crate::ops::set::{SetManifest, SetMember};
    use crate::source::ReaderSource;

    async fn backup(store: &BackupStore, ds: &str, keys: &KeyPair) -> Manifest {
        let mut src = ReaderSource::new(&b"data"[..], "stdin");
        let m = crate::pipeline::backup(
            store,
            &mut src,
            crate::pipeline::BackupOptions::new(ds, keys.encryption()),
        )
        .await
        .unwrap();
        // Ids have millisecond resolution.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        m
    }

    #[tokio::test]
    async fn prune_keeps_the_newest_verified_and_drops_dead_sets() {
        let keys = KeyPair::generate();
        let store = BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(crate::Trust::ephemeral().unwrap());
        let ctx = OpContext::new(Registry::new(), store.clone());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let m = backup(&store, "app", &keys).await;
            let rec =
                crate::store::VerificationRecord::new("app", &m.backup_id, "stored", true, "ok");
            store.put_verification(&rec).await.unwrap();
            ids.push(m.backup_id);
        }
        let set = SetManifest {
            format_version: "1.0".into(),
            set_id: BackupId::now(),
            started_at: chrono::Utc::now(),
            finished_at: chrono::Utc::now(),
            ok: true,
            members: vec![SetMember {
                datastore: "app".into(),
                kind: "stdin".into(),
                ok: true,
                backup_id: Some(ids[0].clone()),
                stored_size: None,
                error: None,
                code: None,
            }],
            tool: Default::default(),
            extra: Default::default(),
        };
        set.commit(&store).await.unwrap();
        let options = PruneOptions {
            keep_last: Some(1),
            dry_run: true,
            ..Default::default()
        };
        let report = prune(&ctx, &options).await.unwrap();
        let deleting: BTreeSet<&BackupId> = report.datastores[0].plan.delete.iter().collect();
        assert_eq!(deleting, ids[..2].iter().collect());
        assert!(!report.datastores[0].executed);
        assert_eq!(report.set_manifests_deleted, [set.key()]);
        assert_eq!(store.list(None).await.unwrap().len(), 3, "dry run");
        // Two of three is more than half: refused (exit 8) with nothing deleted...
        let real = PruneOptions {
            dry_run: false,
            ..options
        };
        let err = prune(&ctx, &real).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Refused, "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(store.list(None).await.unwrap().len(), 3);
        // ...unless forced.
        let report = prune(
            &ctx,
            &PruneOptions {
                force: true,
                ..real
            },
        )
        .await
        .unwrap();
        assert!(report.datastores[0].executed);
        assert_eq!(store.list(None).await.unwrap().len(), 1);
        assert!(store.list_keys(SETS_FOLDER).await.unwrap().is_empty());
        let json = serde_json::to_value(&report).unwrap();
        assert!(
            json["datastores"][0]["policy_summary"].is_string(),
            "{json}"
        );
    }
}
