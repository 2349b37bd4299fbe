//! `dbseal show ID`: one backup's manifest.

use backup_core::BackupId;
use clap::Args;

use crate::common::{human_bytes, StoreArgs};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// Shows a backup's manifest.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The backup id.
    pub id: String,
}

/// Parses a backup id argument.
pub fn parse_id(id: &str) -> CliResult<BackupId> {
    id.parse()
        .map_err(|e: backup_core::id::InvalidBackupId| CliError::usage(e.to_string()))
}

/// Runs `dbseal show`.
pub async fn run(args: &ShowArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let store = store.open()?;
    let manifest = store.manifest(&parse_id(&args.id)?).await?;
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
