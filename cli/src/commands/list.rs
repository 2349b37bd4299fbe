//! `dbseal list`: complete backups (incomplete ones are not backups).

use clap::Args;

use crate::common::{human_bytes, StoreArgs};
use crate::exit::CliResult;
use crate::output::Output;

/// Lists complete backups, oldest first.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this datastore.
    #[arg(long, short = 'd')]
    pub datastore: Option<String>,
}

/// Runs `dbseal list`.
pub async fn run(args: &ListArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let store = store.open()?;
    let listing = store.scan(args.datastore.as_deref()).await?;
    for (key, reason) in &listing.unreadable {
        eprintln!("dbseal: warning: skipping unreadable manifest {key}: {reason}");
    }
    out.emit(&listing.backups, || {
        let mut s = format!(
            "{:<27} {:<20} {:<10} {:>10} {:>10}  {}\n",
            "BACKUP ID", "DATASTORE", "KIND", "STORED", "PLAINTEXT", "FINISHED"
        );
        for m in &listing.backups {
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
        if listing.backups.is_empty() {
            s.push_str("(no backups)\n");
        }
        s
    });
    Ok(())
}
