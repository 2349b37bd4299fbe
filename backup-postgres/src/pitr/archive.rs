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

use std::path::PathBuf;

use backup_core::ops::drill::ReplayDrill;
use backup_core::ops::{ArchiveStatus, ContinuousArchive, KeyOptions, OpContext};
use backup_core::{BackupId, BackupStore, Error, Manifest, Result};

use super::ReplayAccess;

use crate::wal::{BaseBackupWal, WalArchive};

/// The WAL archive `dbseal wal-push` fills. With [`ReplayAccess`] (how a child
/// `dbseal wal-fetch` reaches the store) it also drills physical base backups by
/// point-in-time recovery ([`super::replay_drill`]).
#[derive(Debug, Clone, Default)]
pub struct PostgresWalArchive {
    /// How `restore_command` reaches the store in a drill.
    pub replay: Option<ReplayAccess>,
}

impl PostgresWalArchive {
    /// The archive, drilled with `dbseal` (the binary) reaching the store at `location`:
    /// what a front-end gives its [`OpContext::with_archives`].
    pub fn replaying(
        location: super::StoreLocation,
        dbseal: Option<PathBuf>,
    ) -> std::sync::Arc<dyn ContinuousArchive> {
        std::sync::Arc::new(PostgresWalArchive {
            replay: Some(ReplayAccess { location, dbseal }),
        })
    }
}

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

    /// A physical base backup is drilled by point-in-time recovery; a logical backup is
    /// not this archive's.
    async fn drill(
        &self,
        ctx: &OpContext,
        manifest: &Manifest,
        keys: &KeyOptions,
    ) -> Option<Result<ReplayDrill>> {
        if !crate::physical::is_physical(manifest) {
            return None;
        }
        Some(match &self.replay {
            Some(access) => super::replay_drill(ctx, manifest, keys, access).await,
            None => Err(Error::Config(
                "a point-in-time drill needs to know how restore_command reaches the store: build the context's archive with PostgresWalArchive::replaying".into(),
            )),
        })
    }
}
