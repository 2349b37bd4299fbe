//! `dbseal restore ID`: into a database, a file or standard output.

use std::path::PathBuf;

use backup_core::WriterSink;
use clap::Args;

use crate::common::{human_bytes, KeyArgs, StoreArgs};
use crate::db::{self, RestoreContext, RestoreOutcome};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// Restores a backup.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup id.
    pub id: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub target: RestoreTarget,
}

/// Where and how to restore. Database kinds read the flags that apply to them.
#[derive(Args, Debug, Clone, Default)]
pub struct RestoreTarget {
    /// Write the plaintext native stream (pg_dump archive, RDB file...) to stdout.
    #[arg(long, conflicts_with_all = ["output", "url"])]
    pub to_stdout: bool,
    /// Write the plaintext native stream to this file.
    #[arg(long, short = 'o', conflicts_with = "url")]
    pub output: Option<PathBuf>,
    /// The database to restore into (postgres://…, redis://…, bolt://…). Defaults to the
    /// kind's environment (PG* variables, REDIS_URL, NEO4J_URI). Prefer passing
    /// passwords through the environment rather than in this URL.
    #[arg(long)]
    pub url: Option<String>,
    /// PostgreSQL: create the target database.
    #[arg(long)]
    pub create_db: bool,
    /// Replace the contents of a non-empty target (otherwise it is refused).
    #[arg(long)]
    pub replace: bool,
    /// PostgreSQL: restore only these schemas (repeatable).
    #[arg(long)]
    pub schema: Vec<String>,
    /// PostgreSQL: restore only these tables (repeatable).
    #[arg(long)]
    pub table: Vec<String>,
    /// PostgreSQL: do not restore ownership.
    #[arg(long)]
    pub no_owner: bool,
    /// PostgreSQL: role to restore as (SET ROLE).
    #[arg(long)]
    pub role: Option<String>,
    /// Directory of the PostgreSQL client binaries.
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// TimescaleDB: allow a different extension or PostgreSQL version on the target.
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// Redis: restore only these database indexes (repeatable; SRC or SRC:DEST to remap).
    #[arg(long)]
    pub db: Vec<String>,
    /// Redis: restore only keys matching this glob pattern (repeatable).
    #[arg(long = "match")]
    pub key_match: Vec<String>,
    /// Redis: write a plain dump.rdb for an offline start instead of replaying keys.
    #[arg(long, conflicts_with = "url")]
    pub to_rdb: Option<PathBuf>,
    /// Neo4j: the target database name.
    #[arg(long)]
    pub database: Option<String>,
    /// Print what would be read and written, and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `dbseal restore`.
pub async fn run(args: &RestoreArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let store = store.open()?;
    let id = crate::commands::show::parse_id(&args.id)?;
    let manifest = store.manifest(&id).await?;
    let t = &args.target;
    if t.dry_run {
        let target = if t.to_stdout {
            "standard output".to_string()
        } else if let Some(o) = &t.output {
            o.display().to_string()
        } else if let Some(r) = &t.to_rdb {
            r.display().to_string()
        } else {
            t.url
                .as_deref()
                .map(backup_core::redact_url)
                .unwrap_or_else(|| {
                    format!(
                        "the {} target from the environment",
                        manifest.datastore.kind
                    )
                })
        };
        let plan = serde_json::json!({
            "dry_run": true,
            "backup_id": manifest.backup_id,
            "datastore": manifest.datastore,
            "read": manifest.artifacts().map(|a| serde_json::json!({"key": a.key, "stored_size": a.stored_size})).collect::<Vec<_>>(),
            "target": target,
            "create_db": t.create_db,
            "replace": t.replace,
        });
        out.emit(&plan, || {
            let mut s = format!(
                "dry run: would restore backup {} ({} `{}`)\n",
                manifest.backup_id, manifest.datastore.kind, manifest.datastore.name
            );
            for a in manifest.artifacts() {
                s.push_str(&format!(
                    "  read     {} ({})\n",
                    a.key,
                    human_bytes(a.stored_size)
                ));
            }
            s.push_str(&format!("  write    {target}\n"));
            if t.replace {
                s.push_str("  replace  the target's current contents would be dropped\n");
            }
            if t.create_db {
                s.push_str("  create   the target database would be created\n");
            }
            s.push_str("nothing was changed");
            s
        });
        return Ok(());
    }
    let options = args
        .keys
        .restore_options(crate::progress::bar("restore", out.quiet || out.json))?;
    let outcome = if t.to_stdout || t.output.is_some() {
        let report = if let Some(path) = &t.output {
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .await
                .map_err(|e| CliError::usage(format!("cannot create {}: {e}", path.display())))?;
            let mut sink = WriterSink::new(file);
            let r = backup_core::restore(&store, &manifest, "data", &mut sink, &options).await;
            if r.is_err() {
                let _ = tokio::fs::remove_file(path).await;
            }
            r?
        } else {
            let mut sink = WriterSink::new(tokio::io::stdout());
            backup_core::restore(&store, &manifest, "data", &mut sink, &options).await?
        };
        RestoreOutcome {
            target: t
                .output
                .as_ref()
                .map_or("stdout".into(), |p| p.display().to_string()),
            summary: report.summary,
        }
    } else {
        let ctx = RestoreContext { store, options };
        db::restore(&manifest, t, &ctx).await?
    };
    if t.to_stdout {
        out.info(&format!("restored backup {} to stdout", manifest.backup_id));
        return Ok(());
    }
    out.emit(&outcome, || {
        let mut s = format!(
            "restored backup {} into {}\n",
            manifest.backup_id, outcome.target
        );
        for line in &outcome.summary {
            s.push_str(&format!("  {line}\n"));
        }
        s
    });
    Ok(())
}
