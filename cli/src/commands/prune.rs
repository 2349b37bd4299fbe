//! `dbseal prune`: delete what retention no longer keeps (`backup_core::ops::prune`).

use backup_core::ops::prune::{self, PruneOptions};
use backup_core::ops::OpContext;

use crate::exit::CliResult;
use crate::output::Output;

/// Runs `dbseal prune`.
pub async fn run(args: &PruneOptions, ctx: &OpContext, out: Output) -> CliResult<()> {
    let report = prune::prune(ctx, args).await?;
    out.emit(&report, || report.to_text());
    Ok(())
}
