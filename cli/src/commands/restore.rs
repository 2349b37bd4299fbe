//! `dbseal restore ID`: into a database, a configured datastore (`--datastore`), a file
//! or standard output; `restore --set ID`: every member of a backup set; `restore ID
//! --pgdata DIR`: a PostgreSQL physical backup for point-in-time recovery (see
//! [`crate::commands::wal`]). The rules (production guard, safety backup, target
//! checks) are `backup_core::ops::restore`'s.

use backup_core::ops::restore::{
    self, RestoreBackupOptions, RestorePlan, RestoreReport, RestoreResult, SetRestoreResult,
};
use backup_core::ops::{parse_id, OpContext};
use clap::Args;

use crate::common::{human_bytes, KeyArgs, StoreArgs};
use crate::exit::CliResult;
use crate::output::Output;

/// Restores a backup.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup id.
    #[arg(required_unless_present = "set")]
    pub id: Option<String>,
    /// Restore every member of this backup set into its configured datastore.
    #[arg(
        long,
        value_name = "SET_ID",
        conflicts_with_all = ["id", "datastore", "url", "output", "to_stdout", "to_rdb"]
    )]
    pub set: Option<String>,
    #[command(flatten)]
    pub restore: RestoreBackupOptions,
    #[command(flatten)]
    pub target: PitrTarget,
    /// The keys in force (the flags', else the config file's), for `--pgdata`.
    #[arg(skip)]
    pub keys: KeyArgs,
}

/// The point-in-time flags, where `wal::run_restore_pgdata` reads them.
#[derive(Args, Debug, Clone, Default)]
pub struct PitrTarget {
    #[command(flatten)]
    pub pitr: crate::commands::wal::PitrArgs,
    /// `--dry-run`, copied from the restore options.
    #[arg(skip)]
    pub dry_run: bool,
}

/// Runs `dbseal restore`.
pub async fn run(
    args: &mut RestoreArgs,
    ctx: &OpContext,
    store: &StoreArgs,
    out: Output,
) -> CliResult<()> {
    let options = &args.restore;
    if let Some(set) = &args.set {
        return match restore::restore_set(ctx, set, options).await? {
            SetRestoreResult::DryRun(plan) => {
                out.emit(&plan, || {
                    let mut s = format!(
                        "dry run: would restore backup set {} ({} members)\n",
                        plan.set_id,
                        plan.members.len()
                    );
                    for p in &plan.members {
                        s.push_str(&plan_text(p));
                    }
                    s + "nothing was changed"
                });
                Ok(())
            }
            SetRestoreResult::Restored(report) => {
                out.emit(&report, || {
                    let mut s = format!("restored backup set {}\n", report.set_id);
                    for r in &report.restored {
                        s.push_str(&format!(
                            "  {} <- {}{}\n",
                            r.datastore.as_deref().unwrap_or(""),
                            r.backup_id,
                            r.safety_backup
                                .as_ref()
                                .map(|x| format!(" (safety backup {x})"))
                                .unwrap_or_default()
                        ));
                    }
                    s
                });
                Ok(())
            }
        };
    }
    let id = args.id.clone().unwrap_or_default();
    if args.target.pitr.pgdata.is_some() {
        // PostgreSQL physical backup into a new data directory (point-in-time recovery).
        let manifest = ctx.store.manifest(&parse_id(&id)?).await?;
        args.keys = KeyArgs::from(&args.restore.keys.or_config(ctx.config.as_deref()));
        args.target.dry_run = args.restore.dry_run;
        return crate::commands::wal::run_restore_pgdata(
            args,
            &manifest,
            ctx.store.clone(),
            store,
            out,
            &ctx.cancel,
        )
        .await;
    }
    match restore::restore_backup(ctx, &id, options).await? {
        RestoreResult::DryRun(plan) => {
            out.emit(&plan, || plan_text(&plan) + "nothing was changed");
        }
        RestoreResult::Restored(report) if report.to_stdout => {
            out.info(&format!("restored backup {} to stdout", report.backup_id));
        }
        RestoreResult::Restored(report) => out.emit(&report, || report_text(&report)),
    }
    Ok(())
}

fn report_text(r: &RestoreReport) -> String {
    let mut s = format!("restored backup {} into {}\n", r.backup_id, r.target);
    for line in &r.summary {
        s.push_str(&format!("  {line}\n"));
    }
    if let (Some(id), Some(ds)) = (&r.safety_backup, &r.safety_datastore) {
        s.push_str(&format!(
            "  safety backup of the previous contents: {id} (datastore `{ds}`)\n"
        ));
    }
    s
}

fn plan_text(p: &RestorePlan) -> String {
    let mut s = format!(
        "dry run: would restore backup {} ({} `{}`)\n",
        p.backup_id, p.datastore.kind, p.datastore.name
    );
    for a in &p.read {
        s.push_str(&format!(
            "  read     {} ({})\n",
            a.key,
            human_bytes(a.stored_size)
        ));
    }
    if let (true, Some(name)) = (p.production, &p.target_datastore) {
        if p.needs_confirmation {
            s.push_str(&format!(
                "  confirm  production datastore `{name}`: would be refused without --confirm-production {name}\n"
            ));
        } else {
            s.push_str(&format!(
                "  confirm  production datastore `{name}`: confirmed\n"
            ));
        }
    }
    if p.safety_skipped {
        s.push_str("  safety   no safety backup (--no-safety-backup)\n");
    } else if let Some(into) = &p.safety_backup_into {
        s.push_str(&format!(
            "  safety   back up the target into datastore `{into}` first\n"
        ));
    }
    s.push_str(&format!("  write    {}\n", p.target));
    if p.replace {
        s.push_str("  replace  the target's current contents would be dropped\n");
    }
    if p.create_db {
        s.push_str("  create   the target database would be created\n");
    }
    s
}
