//! `dbseal list` (complete backups; incomplete ones are not backups) and `dbseal show
//! ID` (one backup's manifest).

use backup_core::ops::{self, OpContext};
use clap::Args;

use crate::common::human_bytes;
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
    out.emit(&backups, || {
        let mut s = format!(
            "{:<27} {:<20} {:<10} {:>10} {:>10}  {}\n",
            "BACKUP ID", "DATASTORE", "KIND", "STORED", "PLAINTEXT", "FINISHED"
        );
        for m in &backups {
            s.push_str(&format!(
                "{:<27} {:<20} {:<10} {:>10} {:>10}  {}\n",
                m.backup_id.as_str(),
                m.datastore.name,
                m.datastore.kind,
                human_bytes(m.artifact.stored_size),
                human_bytes(m.artifact.plaintext_size),
                m.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
            ));
        }
        if backups.is_empty() {
            s.push_str("(no backups)\n");
        }
        s
    });
    Ok(())
}

/// Runs `dbseal show`.
pub async fn show(args: &ShowArgs, ctx: &OpContext, out: Output) -> CliResult<()> {
    let manifest = ops::show(ctx, &args.id).await?;
    out.emit(&manifest, || {
        let mut s = String::new();
        s.push_str(&format!("backup     {}\n", manifest.backup_id));
        s.push_str(&format!(
            "datastore  {} ({})\n",
            manifest.datastore.name, manifest.datastore.kind
        ));
        s.push_str(&format!(
            "started    {}\nfinished   {}\n",
            manifest.started_at, manifest.finished_at
        ));
        s.push_str(&format!(
            "tool       {} {}\n",
            manifest.tool.name, manifest.tool.version
        ));
        for a in manifest.artifacts() {
            s.push_str(&format!(
                "artifact   {} ({}): {} stored, sha256 {}; {} plaintext, sha256 {}\n",
                a.key,
                a.format,
                human_bytes(a.stored_size),
                a.stored_sha256,
                human_bytes(a.plaintext_size),
                a.plaintext_sha256
            ));
        }
        for t in &manifest.transforms {
            s.push_str(&format!(
                "transform  {}\n",
                serde_json::to_string(t).unwrap_or_default()
            ));
        }
        for (k, v) in &manifest.source {
            s.push_str(&format!("source     {k} = {v}\n"));
        }
        for (k, v) in &manifest.contents.facts {
            s.push_str(&format!("fact       {k} = {v}\n"));
        }
        for (group, counts) in &manifest.contents.counts {
            for (name, n) in counts {
                s.push_str(&format!("contents   {group} {name}: {n}\n"));
            }
        }
        for (k, v) in &manifest.labels {
            s.push_str(&format!("label      {k} = {v}\n"));
        }
        s
    });
    Ok(())
}
