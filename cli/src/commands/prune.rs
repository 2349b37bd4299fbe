//! `dbseal prune`: delete backups outside the retention policy, debris of failed
//! backups, WAL no kept backup needs and dead set manifests (`backup_core::ops::prune`).

use backup_core::ops::prune::{self, PruneOptions, PruneReport};
use backup_core::ops::OpContext;

use crate::common::human_bytes;
use crate::exit::CliResult;
use crate::output::Output;

/// Runs `dbseal prune`.
pub async fn run(args: &PruneOptions, ctx: &OpContext, out: Output) -> CliResult<()> {
    let report = prune::prune(ctx, args).await?;
    out.emit(&report, || text(&report));
    Ok(())
}

fn text(r: &PruneReport) -> String {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let mut s = String::new();
    if r.dry_run {
        s.push_str("dry run: nothing is deleted\n");
    }
    for d in &r.datastores {
        s.push_str(&format!(
            "datastore {} — policy: {}\n",
            d.datastore, d.policy_summary
        ));
        if let Some(why) = &d.plan.blocked {
            s.push_str(&format!("  BLOCKED: {why}\n"));
        }
        for k in &d.plan.keep {
            let reasons: Vec<String> = k.reasons.iter().map(|x| x.to_string()).collect();
            s.push_str(&format!("  keep    {}  {}\n", k.id, reasons.join(", ")));
        }
        for id in &d.plan.delete {
            s.push_str(&format!(
                "  {verb} {id} ({})\n",
                human_bytes(r.sizes.get(id).copied().unwrap_or(0))
            ));
        }
        for id in &d.plan.delete_debris {
            s.push_str(&format!("  {verb} debris {id} (no manifest)\n"));
        }
        for (id, why) in &d.plan.keep_debris {
            s.push_str(&format!("  keep    debris {id}: {why}\n"));
        }
        if r.dry_run && !d.deleted_keys.is_empty() {
            s.push_str("  objects that would be deleted:\n");
            for k in &d.deleted_keys {
                s.push_str(&format!("    {k}\n"));
            }
        }
        s.push_str(&format!(
            "  {} kept, {} {verb}, {} debris {verb} ({})\n",
            d.plan.keep.len(),
            d.plan.delete.len(),
            d.plan.delete_debris.len(),
            human_bytes(d.debris_bytes)
        ));
    }
    for k in &r.set_manifests_deleted {
        s.push_str(&format!(
            "{verb} set manifest {k} (none of its members is left)\n"
        ));
    }
    s
}
