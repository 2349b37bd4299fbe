#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Backup sets: the backups of several datastores made together (`backup --all`),
//! described by a set manifest written last, create-only, at `_sets/<set id>/set.json`
//! after every member finished. Its members are ordinary backups.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::id::BackupId;
use crate::manifest::ToolInfo;
use crate::store::BackupStore;

/// The folder of backup-set manifests (a reserved folder: never a datastore).
pub const SETS_FOLDER: &str = "_sets";

/// The label every member of a set carries, with the set's id.
pub const SET_LABEL: &str = "dbseal.set";

/// The key of a backup set's manifest.
pub fn set_key(id: &BackupId) -> String {
    format!("{SETS_FOLDER}/{id}/set.json")
}

/// The set id of a set manifest key (`_sets/<id>/set.json`), if it is one.
pub fn set_id_of_key(key: &str) -> Option<BackupId> {
    key.strip_prefix(SETS_FOLDER)?
        .strip_prefix('/')?
        .strip_suffix("/set.json")?
        .parse()
        .ok()
}

/// A backup set's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetManifest {
    /// `"1.0"`.
    pub format_version: String,
    /// The set's id (sorts by time like backup ids).
    pub set_id: BackupId,
    /// When the set started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When its last member finished.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Whether every member succeeded.
    pub ok: bool,
    /// The members, by datastore name.
    pub members: Vec<SetMember>,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// Fields of newer versions, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One datastore of a backup set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetMember {
    /// The datastore name (from the config file).
    pub datastore: String,
    /// Its kind.
    pub kind: String,
    /// Whether its backup was committed.
    pub ok: bool,
    /// The committed backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<BackupId>,
    /// Stored bytes of the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
    /// Why it failed (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code its failure alone would have had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

impl SetManifest {
    /// The key of this set's manifest.
    pub fn key(&self) -> String {
        set_key(&self.set_id)
    }

    /// The datastores whose backup failed.
    pub fn failed(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|m| !m.ok)
            .map(|m| m.datastore.as_str())
            .collect()
    }

    /// The error a set with failed members ends with ([`ErrorKind::SetFailed`]), or
    /// `None` when every member succeeded.
    pub fn failure(&self) -> Option<Error> {
        if self.ok {
            return None;
        }
        let failed = self.failed();
        Some(Error::operation(
            ErrorKind::SetFailed,
            format!(
                "backup set {}: {} of {} members failed ({}); the others are ordinary backups",
                self.set_id,
                failed.len(),
                self.members.len(),
                failed.join(", ")
            ),
        ))
    }

    /// Writes the set manifest, create-only.
    pub async fn commit(&self, store: &BackupStore) -> Result<()> {
        let key = self.key();
        // Strings, numbers and maps with string keys: serialising into memory cannot fail.
        #[allow(clippy::expect_used)]
        let mut bytes = serde_json::to_vec_pretty(self).expect("serializes");
        bytes.push(b'\n');
        if !store.put_signed(&key, bytes, true).await? {
            return Err(Error::AlreadyExists {
                id: self.set_id.to_string(),
                key,
            });
        }
        Ok(())
    }
}

/// Reads a backup set's manifest.
pub async fn read_set(store: &BackupStore, id: &BackupId) -> Result<SetManifest> {
    let key = set_key(id);
    let bytes = match store.get_signed(&key, crate::sign::Role::Backup).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::operation(
                ErrorKind::NotFound,
                format!("backup set {id} not found in {}: no {key}", store.url()),
            ))
        }
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::operation(
            ErrorKind::Verification,
            format!("backup set manifest {key} is invalid: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sets_round_trip_and_fail_with_exit_10() {
        let store = BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(crate::Trust::ephemeral().unwrap());
        let id = BackupId::now();
        assert_eq!(set_id_of_key(&set_key(&id)), Some(id.clone()));
        assert_eq!(set_id_of_key("_sets/x/set.json"), None);
        let set = SetManifest {
            format_version: "1.0".into(),
            set_id: id.clone(),
            started_at: chrono::Utc::now(),
            finished_at: chrono::Utc::now(),
            ok: false,
            members: vec![
                SetMember {
                    datastore: "a".into(),
                    kind: "redis".into(),
                    ok: true,
                    backup_id: Some(BackupId::now()),
                    stored_size: Some(3),
                    error: None,
                    code: None,
                },
                SetMember {
                    datastore: "b".into(),
                    kind: "redis".into(),
                    ok: false,
                    backup_id: None,
                    stored_size: None,
                    error: Some("boom".into()),
                    code: Some(6),
                },
            ],
            tool: Default::default(),
            extra: Default::default(),
        };
        set.commit(&store).await.unwrap();
        assert_eq!(
            set.commit(&store).await.unwrap_err().kind(),
            ErrorKind::Refused
        );
        let back = read_set(&store, &id).await.unwrap();
        assert_eq!(back.failed(), ["b"]);
        let e = back.failure().unwrap();
        assert_eq!(e.kind().exit_code(), 10);
        assert!(e.to_string().contains("1 of 2 members failed (b)"), "{e}");
        let e = read_set(&store, &BackupId::now()).await.unwrap_err();
        assert_eq!(e.kind().exit_code(), 3);
    }
}
