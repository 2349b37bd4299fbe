//! `dbseal status`: health of every datastore, exit 9 if any is unhealthy (ops::status).

use backup_core::ops::status::{self, StatusOptions};
use backup_core::ops::OpContext;

use crate::exit::CliResult;
use crate::output::Output;

/// Runs `dbseal status`.
pub async fn run(args: &StatusOptions, ctx: &OpContext, out: Output) -> CliResult<()> {
    let report = status::status(ctx, args).await?;
    crate::result_emitted();
    out.emit(&report, || report.to_text());
    match report.failure() {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}
