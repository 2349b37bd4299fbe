//! Options shared by several commands: the store and the keys.

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::ops::KeyOptions;
use backup_core::{BackupStore, Progress};
use clap::Args;

use crate::exit::CliResult;

/// How to decrypt a backup, for the WAL commands (the other commands flatten
/// [`KeyOptions`], which has the same flags).
#[derive(Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// Identity file (from `dbseal keygen`, `age-keygen`, or an unencrypted SSH private
    /// key), repeatable. DBSEAL_IDENTITY takes one path.
    #[arg(long = "identity", short = 'i', env = "DBSEAL_IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Passphrase file, for passphrase-encrypted backups.
    #[arg(long = "passphrase-file", env = "DBSEAL_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl From<&KeyOptions> for KeyArgs {
    fn from(k: &KeyOptions) -> Self {
        KeyArgs {
            identities: k.identities.clone(),
            passphrase_file: k.passphrase_file.clone(),
        }
    }
}

impl KeyArgs {
    fn options(&self) -> KeyOptions {
        KeyOptions {
            identities: self.identities.clone(),
            passphrase_file: self.passphrase_file.clone(),
            decryption: None,
        }
    }

    /// Restore options with these keys and an optional progress bar.
    pub fn restore_options(
        &self,
        progress: Option<Arc<dyn Progress>>,
    ) -> CliResult<backup_core::RestoreOptions> {
        Ok(self.options().restore_options(progress)?)
    }
}

pub use backup_core::ops::backup::human_bytes;

/// Where backups live.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Store URL or path: ./backups (default), file:///abs/path, s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix, memory:// (tests only).
    #[arg(long, env = "DBSEAL_STORE", default_value = "./backups", global = true)]
    pub store: String,
    /// Store option KEY=VALUE, repeatable (e.g. aws_endpoint=http://127.0.0.1:8333,
    /// aws_allow_http=true, aws_region=us-east-1). AWS_* variables are read too.
    #[arg(long = "store-option", value_name = "KEY=VALUE", global = true)]
    pub store_options: Vec<String>,
}

impl StoreArgs {
    /// Opens the store.
    pub fn open(&self) -> CliResult<BackupStore> {
        Ok(backup_core::ops::open_store(
            &self.store,
            &self.store_options,
        )?)
    }
}
