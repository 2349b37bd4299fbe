//! `dbseal status` (ops::status) and `dbseal drill` (ops::drill): reports printed in
//! full, then exit 9 when a datastore is unhealthy or a drill missed its objectives.

use backup_core::ops::drill::{self, DrillOptions};
use backup_core::ops::status::{self, StatusOptions};
use backup_core::ops::OpContext;

use crate::exit::CliResult;
use crate::output::Output;

/// Runs `dbseal status`.
pub async fn run(args: &StatusOptions, ctx: &OpContext, out: Output) -> CliResult<()> {
    let report = status::status(ctx, args).await?;
    out.report(&report, report.to_text(), report.failure())
}

/// Runs `dbseal drill`.
pub async fn drill(args: &DrillOptions, ctx: &OpContext, out: Output) -> CliResult<()> {
    let report = drill::drill(ctx, args).await?;
    out.report(&report, report.to_text(), report.failure())
}
