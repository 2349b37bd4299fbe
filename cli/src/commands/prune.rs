//! `dbseal prune`: delete backups that the retention policy no longer keeps, and the
//! debris of failed backups.
//!
//! The policy of each datastore is `[retention]` of the config file, overridden by its
//! `[datastores.NAME.retention]`, overridden by the `--keep-*` flags. The rules (restic's
//! GFS rules plus dbseal's never-delete rules) are in `backup_core::retention`.

use std::collections::{BTreeMap, BTreeSet};

use backup_core::retention::{self, Candidate, DebrisCandidate, Span, VerificationState};
use backup_core::store::IncompleteBackup;
use backup_core::{BackupId, Manifest, RetentionPlan, RetentionPolicy};
use clap::Args;

use crate::common::{human_bytes, StoreArgs};
use crate::config::Config;
use crate::exit::CliResult;
use crate::output::Output;

/// Deletes backups outside the retention policy (GFS, as in restic).
#[derive(Args, Debug, Default)]
pub struct PruneArgs {
    /// Only this datastore (repeatable). Default: every datastore in the store.
    #[arg(long = "datastore", short = 'd', value_name = "NAME")]
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
}

/// Parses a duration flag.
pub fn parse_span(s: &str) -> Result<Span, String> {
    s.parse::<Span>().map_err(|e| e.to_string())
}

impl PruneArgs {
    fn policy_flags(&self) -> RetentionPolicy {
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
#[derive(Debug, serde::Serialize)]
struct DatastorePrune {
    datastore: String,
    policy: RetentionPolicy,
    policy_summary: String,
    #[serde(flatten)]
    plan: RetentionPlan,
    /// Object keys deleted (or, in a dry run, that would be).
    deleted_keys: Vec<String>,
    /// Whether anything was actually deleted (false in a dry run).
    executed: bool,
}

/// Runs `dbseal prune`.
pub async fn run(
    args: &PruneArgs,
    store: &StoreArgs,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<()> {
    let store = store.open()?;
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
    for (key, reason) in &listing.unreadable {
        let ds = key.split('/').next().unwrap_or_default().to_string();
        eprintln!("dbseal: warning: unreadable manifest {key}: {reason}");
        unreadable.entry(ds).or_default().push(key);
    }

    let names: Vec<String> = if args.datastores.is_empty() {
        let mut n: BTreeSet<String> = backups.keys().cloned().collect();
        n.extend(debris.keys().cloned());
        n.into_iter().collect()
    } else {
        for n in &args.datastores {
            backup_core::BackupStore::validate_datastore_name(n)?;
        }
        args.datastores.clone()
    };

    let mut results = Vec::new();
    for name in &names {
        let base = cfg.map(|c| c.retention_for(name)).unwrap_or_default();
        let policy = base.overridden_by(&args.policy_flags());
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
            eprintln!("dbseal: warning: datastore `{name}`: nothing deleted: {why}");
        }
        let by_id: BTreeMap<&BackupId, &&Manifest> =
            manifests.iter().map(|m| (&m.backup_id, m)).collect();
        let mut deleted_keys = Vec::new();
        for id in &plan.delete {
            let m = by_id[id];
            if args.dry_run {
                deleted_keys.push(backup_core::BackupStore::manifest_key(name, id));
                deleted_keys.extend(m.artifacts().map(|a| a.key.clone()));
                if verifications.contains_key(&(name.clone(), id.clone())) {
                    deleted_keys.push(backup_core::BackupStore::verification_key(name, id));
                }
            } else {
                deleted_keys.extend(store.delete_backup(m).await?);
            }
        }
        for id in &plan.delete_debris {
            let d = ds_debris
                .iter()
                .find(|d| &d.backup_id == id)
                .expect("planned from this list");
            if args.dry_run {
                deleted_keys.extend(d.keys.iter().cloned());
            } else {
                match store.delete_incomplete(d).await {
                    Ok(keys) => deleted_keys.extend(keys),
                    // It completed since the scan: it is a backup now, not debris.
                    Err(backup_core::Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // PostgreSQL WAL archive: WAL older than the oldest kept base backup needs no
        // keeping; WAL a kept base backup needs is never deleted. Without any kept
        // physical base backup the archive is left alone.
        if plan.blocked.is_none() {
            let deleting: BTreeSet<&BackupId> = plan.delete.iter().collect();
            let kept: Vec<backup_postgres::wal::BaseBackupWal> =
                backup_postgres::physical::base_backups(&store, name)
                    .await?
                    .into_iter()
                    .filter(|(m, _)| !deleting.contains(&m.backup_id))
                    .map(|(_, w)| w)
                    .collect();
            if !kept.is_empty() {
                let archive = backup_postgres::wal::WalArchive::new(store.clone(), name)?;
                deleted_keys.extend(archive.prune(&kept, args.dry_run).await?);
            }
        }
        results.push(DatastorePrune {
            datastore: name.clone(),
            policy_summary: policy.to_string(),
            policy,
            plan,
            deleted_keys,
            executed: !args.dry_run,
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
    let folder = crate::commands::backup::SETS_FOLDER;
    for (key, _) in store.list_keys(folder).await? {
        let Some(id) = key
            .strip_prefix(&format!("{folder}/"))
            .and_then(|k| k.strip_suffix("/set.json"))
            .and_then(|id| id.parse::<BackupId>().ok())
        else {
            continue;
        };
        let Ok(set) = crate::commands::backup::read_set(&store, &id).await else {
            continue;
        };
        let alive = set
            .members
            .iter()
            .filter_map(|m| m.backup_id.as_ref())
            .any(|b| remaining.contains(b));
        if !alive {
            if !args.dry_run {
                store.delete(&key).await?;
            }
            sets_deleted.push(key);
        }
    }

    let sizes: BTreeMap<&BackupId, u64> = listing
        .backups
        .iter()
        .map(|m| (&m.backup_id, m.artifacts().map(|a| a.stored_size).sum()))
        .collect();
    let value = serde_json::json!({ "datastores": results, "set_manifests_deleted": sets_deleted });
    out.emit(&value, || {
        let mut t = text(&results, &sizes, args.dry_run);
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for k in &sets_deleted {
            t.push_str(&format!(
                "{verb} set manifest {k} (none of its members is left)\n"
            ));
        }
        t
    });
    if results.is_empty() && !out.json {
        out.info("no backups in the store");
    }
    Ok(())
}

fn text(results: &[DatastorePrune], sizes: &BTreeMap<&BackupId, u64>, dry_run: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut s = String::new();
    if dry_run {
        s.push_str("dry run: nothing is deleted\n");
    }
    for r in results {
        s.push_str(&format!(
            "datastore {} — policy: {}\n",
            r.datastore, r.policy_summary
        ));
        if let Some(why) = &r.plan.blocked {
            s.push_str(&format!("  BLOCKED: {why}\n"));
        }
        for k in &r.plan.keep {
            let reasons: Vec<String> = k.reasons.iter().map(|x| x.to_string()).collect();
            s.push_str(&format!("  keep    {}  {}\n", k.id, reasons.join(", ")));
        }
        for id in &r.plan.delete {
            s.push_str(&format!(
                "  {verb} {id} ({})\n",
                human_bytes(sizes.get(id).copied().unwrap_or(0))
            ));
        }
        for id in &r.plan.delete_debris {
            s.push_str(&format!("  {verb} debris {id} (no manifest)\n"));
        }
        for (id, why) in &r.plan.keep_debris {
            s.push_str(&format!("  keep    debris {id}: {why}\n"));
        }
        if dry_run && !r.deleted_keys.is_empty() {
            s.push_str("  objects that would be deleted:\n");
            for k in &r.deleted_keys {
                s.push_str(&format!("    {k}\n"));
            }
        }
        s.push_str(&format!(
            "  {} kept, {} {verb}, {} debris {verb}\n",
            r.plan.keep.len(),
            r.plan.delete.len(),
            r.plan.delete_debris.len()
        ));
    }
    s
}
