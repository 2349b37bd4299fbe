//! `dbseal restore ID`: into a database, a configured datastore (`--datastore`), a file
//! or standard output; `restore --set ID`: every member of a backup set; `restore ID
//! --pgdata DIR`: a PostgreSQL physical backup for point-in-time recovery
//! (`backup_postgres::pitr`). The rules (production guard, safety backup, target
//! checks) are `backup_core::ops::restore`'s.

use backup_core::ops::restore::{self, RestoreBackupOptions, RestoreResult, SetRestoreResult};
use backup_core::ops::OpContext;
use backup_postgres::pitr;
use clap::Args;

use crate::common::StoreArgs;
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
    pub pitr: pitr::PitrOptions,
}

/// Runs `dbseal restore`.
pub async fn run(
    args: &RestoreArgs,
    ctx: &OpContext,
    store: &StoreArgs,
    out: Output,
) -> CliResult<()> {
    let options = &args.restore;
    if let Some(set) = &args.set {
        match restore::restore_set(ctx, set, options).await? {
            SetRestoreResult::DryRun(plan) => out.emit(&plan, || plan.to_text()),
            SetRestoreResult::Restored(report) => out.emit(&report, || report.to_text()),
        }
        return Ok(());
    }
    let id = args.id.as_deref().unwrap_or_default();
    if args.pitr.pgdata.is_some() {
        // PostgreSQL physical backup into a new data directory (point-in-time recovery).
        let location = store.location();
        let outcome = pitr::restore_backup_into_pgdata(
            ctx,
            id,
            &args.pitr,
            (&options.keys, &location),
            options.dry_run,
            pitr::current_dbseal,
        )
        .await?;
        out.emit(&outcome, || outcome.to_text());
        return Ok(());
    }
    match restore::restore_backup(ctx, id, options).await? {
        RestoreResult::DryRun(plan) => out.emit(&plan, || plan.to_text() + "nothing was changed"),
        RestoreResult::Restored(report) if report.to_stdout => {
            out.info(&format!("restored backup {} to stdout", report.backup_id));
        }
        RestoreResult::Restored(report) => out.emit(&report, || report.to_text()),
    }
    Ok(())
}
