//! Physical base backups and point-in-time restores.
//!
//! **Backup**: [`PhysicalSource`] streams `pg_basebackup --pgdata=- --format=tar
//! --wal-method=none` into the pipeline as one sealed artifact of format [`TAR_FORMAT`].
//! The WAL the backup needs is not in it: PostgreSQL's `archive_command` (`dbseal
//! wal-push`, see [`crate::wal`]) archives it, and `pg_basebackup` returns only once
//! the last segment the backup needs is archived. While the tar streams, dbseal reads
//! `backup_label`, `global/pg_control` and the server's `backup_manifest` inside it, so
//! the manifest records the start and stop LSN, the timeline, the system identifier and
//! the WAL range the backup needs.
//!
//! **Verification**: [`BaseBackupFormat`] parses the tar and checks every file against
//! PostgreSQL's own `backup_manifest` (sizes and CRC-32C checksums, and the manifest's
//! SHA-256), like `pg_verifybackup` does; that is level 2 for physical backups.
//!
//! **Restore**: [`restore_physical`] checks the WAL archive first (the backup's system
//! identifier, the segments it needs to become consistent, and no gap up to the
//! target), then unpacks the tar into an EMPTY data directory ([`PhysicalSink`]) and only
//! at the clean end of the stream writes the recovery settings: `restore_command`
//! (`dbseal wal-fetch`, see [`wal_fetch_command`]), the recovery target and
//! `recovery.signal`. Starting PostgreSQL then recovers to the target. On any error the
//! data directory is left as it was (empty, or absent).
//!
//! Modules: `tar` (the streaming tar parser), `basebackup` (the source and the
//! `backup_manifest` scanner), `restore` (recovery settings and the data-directory
//! sink); `dbseal restore --pgdata` as a whole is [`crate::pitr::restore_pgdata`].

use std::path::{Path, PathBuf};

use backup_core::{BackupStore, Error, ErrorKind, Manifest, Result};

use crate::error::{PgResult, PostgresError};
use crate::wal::BaseBackupWal;

mod basebackup;
mod restore;
mod tar;
#[cfg(test)]
mod tests;

pub use basebackup::*;
pub use restore::*;
pub use tar::*;

/// The format name of physical base backups: a tar archive of the data directory.
pub const TAR_FORMAT: &str = "tar";
/// The suffix of the file holding store settings for `restore_command` (and
/// `--archive-to`'s `archive_command`): see [`restore_env_path`].
pub const RESTORE_ENV_SUFFIX: &str = ".dbseal-restore.env";

/// Where the store settings of a data directory's `restore_command` go: beside it,
/// never in it (`/var/lib/postgresql/15/main` → `/var/lib/postgresql/15/main.dbseal-restore.env`,
/// mode 0600, owned by the data directory's owner). Inside, every base backup of the
/// restored cluster would carry the store's credentials.
pub fn restore_env_path(pgdata: &Path) -> PathBuf {
    let name = pgdata.file_name().unwrap_or_default().to_string_lossy();
    pgdata.with_file_name(format!("{name}{RESTORE_ENV_SUFFIX}"))
}
/// The largest `backup_manifest` accepted (it lists every file of the cluster).
const MAX_MANIFEST: usize = 512 * 1024 * 1024;
/// The largest `backup_label` / `tablespace_map` / `PG_VERSION` kept.
const MAX_SMALL_FILE: usize = 1024 * 1024;

fn tar_error(reason: impl Into<String>) -> Error {
    Error::Format {
        format: TAR_FORMAT.into(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------
// Base backups as the archive sees them
// ---------------------------------------------------------------------------------

/// Whether a manifest describes a physical base backup.
pub fn is_physical(m: &Manifest) -> bool {
    m.artifact.format == TAR_FORMAT
        && m.source.get("physical").and_then(|v| v.as_bool()) == Some(true)
}

/// The WAL facts of a physical backup's manifest.
pub fn base_backup_wal(m: &Manifest) -> Result<BaseBackupWal> {
    let bad = |what: &str| Error::InvalidManifest {
        key: BackupStore::manifest_key(&m.datastore.name, &m.backup_id),
        reason: format!("physical backup without a valid `{what}` in its source facts"),
    };
    if !is_physical(m) {
        return Err(Error::datastore(
            "postgres",
            ErrorKind::Refused,
            format!(
                "backup {} is not a physical base backup (format `{}`): restore it with --url, not --pgdata",
                m.backup_id, m.artifact.format
            ),
        ));
    }
    let s = |k: &str| m.source.get(k).and_then(|v| v.as_str());
    let n = |k: &str| m.source.get(k).and_then(|v| v.as_u64());
    Ok(BaseBackupWal {
        backup_id: m.backup_id.to_string(),
        system_identifier: s("system_identifier")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("system_identifier"))?,
        timeline: n("timeline")
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad("timeline"))?,
        start_lsn: s("start_lsn")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("start_lsn"))?,
        stop_lsn: s("stop_lsn").and_then(|v| v.parse().ok()),
        stop_timeline: n("stop_timeline").and_then(|t| u32::try_from(t).ok()),
        wal_segment_size: n("wal_segment_size")
            .filter(|s| crate::wal::valid_segment_size(*s))
            .ok_or_else(|| bad("wal_segment_size"))?,
    })
}

/// The physical base backups of a datastore, oldest first.
pub async fn base_backups(
    store: &BackupStore,
    datastore: &str,
) -> Result<Vec<(Manifest, BaseBackupWal)>> {
    let mut out = Vec::new();
    for m in store.list(Some(datastore)).await? {
        if m.datastore.name == datastore && is_physical(&m) {
            let w = base_backup_wal(&m)?;
            out.push((m, w));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
/// Reads a `KEY=VALUE` env file (`#` comments, no quoting): what `--env-file` takes.
pub fn read_env_file(path: &Path) -> PgResult<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PostgresError::Config(format!("cannot read env file {}: {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").unwrap_or(t);
        let (k, v) = t.split_once('=').ok_or_else(|| {
            PostgresError::Config(format!(
                "env file {} line {}: expected KEY=VALUE",
                path.display(),
                i + 1
            ))
        })?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}
