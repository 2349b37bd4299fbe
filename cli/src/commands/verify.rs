//! `dbseal verify ID`: prove a backup is complete, untampered and restorable.
//! `dbseal verify --latest [--datastore N]`: the newest backup of each datastore.
//! Every verdict is recorded next to the manifest (`verified.json`) by the library.

use backup_core::ops::verify::{self, VerifyBackupOptions};
use backup_core::ops::OpContext;
use clap::Args;

use crate::exit::CliResult;
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
    pub options: VerifyBackupOptions,
}

/// Runs `dbseal verify`.
pub async fn run(args: &VerifyArgs, ctx: &OpContext, out: Output) -> CliResult<()> {
    if args.latest {
        let results = verify::verify_latest(ctx, &args.datastores, &args.options).await?;
        return out.report(&results, results.to_text(), results.failure());
    }
    let id = args.id.as_deref().unwrap_or_default();
    let result = verify::verify_backup(ctx, id, &args.options).await?;
    out.emit(&result, || result.to_text());
    Ok(())
}
