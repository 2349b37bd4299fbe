#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! PostgreSQL's WAL archive as `prune` and `status` see it: the
//! [`ContinuousArchive`] [`crate::PostgresDriver`] offers.

use std::collections::BTreeSet;

use backup_core::ops::{ArchiveStatus, ContinuousArchive};
use backup_core::{BackupId, BackupStore, Result};

use crate::wal::{BaseBackupWal, WalArchive};

/// The WAL archive `dbseal wal-push` fills.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresWalArchive;

#[async_trait::async_trait]
impl ContinuousArchive for PostgresWalArchive {
    async fn status(&self, store: &BackupStore, datastore: &str) -> Result<Option<ArchiveStatus>> {
        let w = WalArchive::new(store.clone(), datastore)?.status().await?;
        Ok((w.segments > 0).then_some(ArchiveStatus {
            datastore: w.datastore,
            newest_segment: w.newest_segment,
            newest_archived_at: w.newest_archived_at,
            newest_age_seconds: w.newest_age_seconds,
            last_archived_at: w.last_archived_at,
            segments: w.segments,
            timelines: w.timelines,
            system_identifier: w.system_identifier,
        }))
    }

    /// WAL older than the oldest kept base backup needs no keeping; WAL a kept base
    /// backup needs is never deleted. Without any kept physical base backup the archive
    /// is left alone.
    async fn prune(
        &self,
        store: &BackupStore,
        datastore: &str,
        deleting: &BTreeSet<BackupId>,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let kept: Vec<BaseBackupWal> = crate::physical::base_backups(store, datastore)
            .await?
            .into_iter()
            .filter(|(m, _)| !deleting.contains(&m.backup_id))
            .map(|(_, w)| w)
            .collect();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        WalArchive::new(store.clone(), datastore)?
            .prune(&kept, dry_run)
            .await
    }
}
