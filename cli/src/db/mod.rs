//! One module per database kind. Each translates CLI flags into its crate's library
//! calls and offers the same four entry points:
//!
//! - `BackupArgs` (clap flags of `dbseal backup <kind>`) and `backup(args, ctx)`;
//! - `restore(manifest, target, ctx)` for `dbseal restore ID --url …`;
//! - `verify_restore(manifest, url, ctx)` for `dbseal verify ID --restore-to URL`;
//! - `register_formats(registry)` so level-2 verification can parse its format.
//!
//! `restore` and `verify_restore` below dispatch on the manifest's datastore kind.

use std::sync::Arc;

use backup_core::{BackupStore, FormatRegistry, Manifest, Progress, RestoreOptions, VerifyReport};

use crate::commands::restore::RestoreTarget;
use crate::common::SealArgs;
use crate::exit::{CliError, CliResult};

pub mod neo4j;
pub mod postgres;
pub mod redis;
pub mod timescale;

/// What a database backup needs besides its own flags.
pub struct BackupContext {
    /// The store to write to.
    pub store: BackupStore,
    /// Datastore name, recipients, zstd level, labels.
    pub seal: SealArgs,
    /// Progress bar, if any.
    pub progress: Option<Arc<dyn Progress>>,
}

impl BackupContext {
    /// The pipeline options.
    pub fn options(&self) -> CliResult<backup_core::BackupOptions> {
        self.seal.backup_options(self.progress.clone())
    }
}

/// What a restore or level-3 verification needs besides the target.
pub struct RestoreContext {
    /// The store to read from.
    pub store: BackupStore,
    /// Keys and progress.
    pub options: RestoreOptions,
}

/// The result of a restore, for output.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreOutcome {
    /// Where the backup went (without credentials).
    pub target: String,
    /// Lines for the user.
    pub summary: Vec<String>,
}

/// Registers the format reader of every database kind.
pub fn register_formats(reg: &mut FormatRegistry) {
    postgres::register_formats(reg);
    redis::register_formats(reg);
    neo4j::register_formats(reg);
    timescale::register_formats(reg);
}

/// Restores a database backup into the target its kind understands.
pub async fn restore(
    manifest: &Manifest,
    target: &RestoreTarget,
    ctx: &RestoreContext,
) -> CliResult<RestoreOutcome> {
    match manifest.datastore.kind.as_str() {
        "postgres" => postgres::restore(manifest, target, ctx).await,
        "timescale" => timescale::restore(manifest, target, ctx).await,
        "redis" => redis::restore(manifest, target, ctx).await,
        "neo4j" => neo4j::restore(manifest, target, ctx).await,
        other => Err(CliError::usage(format!(
            "backup {} is of kind `{other}`, which has no database target: use --to-stdout or --output FILE",
            manifest.backup_id
        ))),
    }
}

/// Level-3 verification: restore into a scratch database at `url` and compare.
pub async fn verify_restore(
    manifest: &Manifest,
    url: &str,
    ctx: &RestoreContext,
) -> CliResult<VerifyReport> {
    match manifest.datastore.kind.as_str() {
        "postgres" => postgres::verify_restore(manifest, url, ctx).await,
        "timescale" => timescale::verify_restore(manifest, url, ctx).await,
        "redis" => redis::verify_restore(manifest, url, ctx).await,
        "neo4j" => neo4j::verify_restore(manifest, url, ctx).await,
        other => Err(CliError::usage(format!(
            "backup {} is of kind `{other}`: level-3 (restore) verification needs a database kind",
            manifest.backup_id
        ))),
    }
}
