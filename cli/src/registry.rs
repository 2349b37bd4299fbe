//! The one place the drivers this build knows are composed, with the continuous
//! archive (PostgreSQL's WAL) that `prune` and `status` take into account.

use std::collections::BTreeSet;
use std::sync::Arc;

use backup_core::ops::{ArchiveStatus, ContinuousArchive};
use backup_core::{BackupId, BackupStore, Registry};

/// Every database kind of this build.
pub fn registry() -> Registry {
    Registry::new()
        .with(backup_postgres::PostgresDriver)
        .with(backup_timescale::TimescaleDriver)
        .with(backup_redis::RedisDriver)
        .with(backup_neo4j::Neo4jDriver)
}

/// The continuous archives of this build.
pub fn archives() -> Vec<Arc<dyn ContinuousArchive>> {
    vec![Arc::new(PostgresWalArchive)]
}

/// PostgreSQL's WAL archive (`dbseal wal-push`), seen by `prune` and `status`.
struct PostgresWalArchive;

#[async_trait::async_trait]
impl ContinuousArchive for PostgresWalArchive {
    async fn status(
        &self,
        store: &BackupStore,
        datastore: &str,
    ) -> backup_core::Result<Option<ArchiveStatus>> {
        let archive = backup_postgres::wal::WalArchive::new(store.clone(), datastore)?;
        let w = archive.status().await?;
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
    ) -> backup_core::Result<Vec<String>> {
        let kept: Vec<backup_postgres::wal::BaseBackupWal> =
            backup_postgres::physical::base_backups(store, datastore)
                .await?
                .into_iter()
                .filter(|(m, _)| !deleting.contains(&m.backup_id))
                .map(|(_, w)| w)
                .collect();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let archive = backup_postgres::wal::WalArchive::new(store.clone(), datastore)?;
        archive.prune(&kept, dry_run).await
    }
}
