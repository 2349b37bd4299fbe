//! Options shared by every command: the store.

use backup_core::BackupStore;
use backup_postgres::pitr::StoreLocation;
use clap::Args;

use crate::exit::CliResult;

/// Where backups live.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Store URL or path: ./backups (default), file:///abs/path, s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix, memory:// (tests only).
    #[arg(long, env = "DBSEAL_STORE", global = true)]
    pub store: Option<String>,
    /// Store option KEY=VALUE, repeatable: aws_endpoint=URL, aws_region=…; AWS_* are read too.
    #[arg(long = "store-option", value_name = "KEY=VALUE", global = true)]
    pub store_options: Vec<String>,
    /// Limit on the bytes moved to and from the store per second, e.g. 50MiB, 100MB.
    #[arg(long = "max-rate", env = "DBSEAL_MAX_RATE", global = true)]
    pub max_rate: Option<String>,
    /// This host's signing key and the keys it trusts.
    #[command(flatten)]
    pub trust: backup_core::ops::TrustOptions,
}

impl StoreArgs {
    /// Opens the store.
    pub fn open(&self) -> CliResult<BackupStore> {
        let store = backup_core::ops::open_store(&self.url(), &self.store_options)?;
        Ok(store.with_trust(self.trust.trust()?))
    }

    /// The store URL ([`backup_core::ops::DEFAULT_STORE`] when none is given or
    /// configured).
    pub fn url(&self) -> String {
        let default = backup_core::ops::DEFAULT_STORE;
        self.store.clone().unwrap_or_else(|| default.into())
    }

    /// The store as the WAL commands and `restore_command` reach it.
    pub fn location(&self) -> StoreLocation {
        StoreLocation {
            url: self.url(),
            options: self.store_options.clone(),
            trust: self.trust.clone(),
        }
    }
}
