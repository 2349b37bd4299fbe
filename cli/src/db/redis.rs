//! `dbseal backup redis`, restore and level-3 verification for redis.
//!
//! STUB to be filled by the redis crate's author: keep the four entry points and their
//! signatures (see `db/mod.rs`); add flags to `BackupArgs`; read the restore flags you
//! need from `RestoreTarget` (add fields there if the issue asks for new ones).

use backup_core::{FormatRegistry, Manifest, VerifyReport};

use super::{not_wired, BackupContext, RestoreContext, RestoreOutcome};
use crate::commands::restore::RestoreTarget;
use crate::exit::CliResult;

/// Flags of `dbseal backup redis`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackupArgs {
    /// Connection URL (credentials are better passed through the environment).
    #[arg(long)]
    pub url: Option<String>,
}

/// Runs `dbseal backup redis`.
pub async fn backup(_args: &BackupArgs, _ctx: &BackupContext) -> CliResult<Manifest> {
    Err(not_wired("redis"))
}

/// Restores a redis backup into the target.
pub async fn restore(
    _manifest: &Manifest,
    _target: &RestoreTarget,
    _ctx: &RestoreContext,
) -> CliResult<RestoreOutcome> {
    Err(not_wired("redis"))
}

/// Level-3 verification into a scratch database at `url`.
pub async fn verify_restore(
    _manifest: &Manifest,
    _url: &str,
    _ctx: &RestoreContext,
) -> CliResult<VerifyReport> {
    Err(not_wired("redis"))
}

/// Registers the redis format reader.
pub fn register_formats(_reg: &mut FormatRegistry) {}
