//! `dbseal list` (complete backups; incomplete ones are not backups) and `dbseal show
//! ID` (one backup's manifest).

use backup_core::ops::{self, OpContext};
use clap::Args;

use crate::exit::CliResult;
use crate::output::Output;

/// Lists complete backups, oldest first.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this datastore.
    #[arg(long, short = 'd')]
    pub datastore: Option<String>,
}

/// Shows a backup's manifest.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The backup id.
    pub id: String,
}

/// Runs `dbseal list`.
pub async fn list(args: &ListArgs, ctx: &OpContext, out: Output) -> CliResult<()> {
    let backups = ops::list(ctx, args.datastore.as_deref()).await?;
    out.emit(&backups, || ops::text::list_text(&backups));
    Ok(())
}

/// Runs `dbseal show`.
pub async fn show(args: &ShowArgs, ctx: &OpContext, out: Output) -> CliResult<()> {
    let manifest = ops::show(ctx, &args.id).await?;
    out.emit(&manifest, || manifest.to_text());
    Ok(())
}
