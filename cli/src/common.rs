//! Options shared by several commands: the store and the keys.

use backup_core::BackupStore;
use clap::Args;

use crate::exit::CliResult;

/// How to decrypt a backup (`--identity`, `--passphrase-file`).
pub type KeyArgs = backup_core::ops::KeyOptions;

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
        Ok(backup_core::ops::open_store(&self.store, &self.store_options)?)
    }
}
