//! `dbseal verify ID`: prove a backup is complete, untampered and restorable.

use clap::{Args, ValueEnum};

use crate::common::{formats, KeyArgs, StoreArgs};
use crate::db::{self, RestoreContext};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// Verifies a backup at level 1 (stored), 2 (content) or 3 (restore).
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The backup id.
    pub id: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// How deep to go. Default: `content` when an identity or passphrase is given,
    /// `restore` with --restore-to, else `stored`.
    #[arg(long, value_enum)]
    pub level: Option<Level>,
    /// Level 3: restore into a scratch database on this server and compare.
    #[arg(long)]
    pub restore_to: Option<String>,
}

/// Verification levels.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Size and SHA-256 of the stored artifact (no key needed).
    Stored,
    /// Decrypt, decompress, parse; compare digests and contents with the manifest.
    Content,
    /// Restore into a scratch database and compare its live contents.
    Restore,
}

/// Runs `dbseal verify`.
pub async fn run(args: &VerifyArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let store = store.open()?;
    let id = crate::commands::show::parse_id(&args.id)?;
    let manifest = store.manifest(&id).await?;
    let options = args
        .keys
        .restore_options(crate::progress::bar("verify", out.quiet || out.json))?;
    let level = args.level.unwrap_or(if args.restore_to.is_some() {
        Level::Restore
    } else if options.decryption.is_some() {
        Level::Content
    } else {
        Level::Stored
    });
    let mut reports = vec![backup_core::verify_stored(&store, &manifest).await?];
    if level >= Level::Content {
        if options.decryption.is_none() {
            return Err(CliError::usage("content verification decrypts the artifact: pass --identity FILE or --passphrase-file FILE"));
        }
        reports.push(backup_core::verify_content(&store, &manifest, &formats(), &options).await?);
    }
    if level == Level::Restore {
        let url = args.restore_to.as_deref().ok_or_else(|| {
            CliError::usage(
                "--level restore needs --restore-to URL (a server to restore a scratch copy into)",
            )
        })?;
        let ctx = RestoreContext { store, options };
        reports.push(db::verify_restore(&manifest, url, &ctx).await?);
    }
    let value = serde_json::json!({
        "backup_id": manifest.backup_id,
        "ok": true,
        "level": reports.last().map(|r| r.level),
        "reports": reports,
    });
    out.emit(&value, || {
        let mut s = format!(
            "backup {} verified at level {}\n",
            manifest.backup_id,
            reports.last().map_or(1, |r| r.level.number())
        );
        for r in &reports {
            for c in &r.checks {
                s.push_str(&format!("  ok [{:?}] {c}\n", r.level));
            }
        }
        s
    });
    Ok(())
}
