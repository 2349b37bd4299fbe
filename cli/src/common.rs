//! Options shared by several commands: the store, keys, output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{BackupStore, Decryption, Encryption, FormatRegistry, Progress, SecretString};
use clap::Args;

use crate::exit::{CliError, CliResult};

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
        let mut options = BTreeMap::new();
        for kv in &self.store_options {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                CliError::usage(format!("--store-option `{kv}` is not KEY=VALUE"))
            })?;
            options.insert(k.to_string(), v.to_string());
        }
        Ok(BackupStore::open(&self.store, &options)?)
    }
}

/// How a new backup is encrypted and compressed.
#[derive(Args, Debug, Clone)]
pub struct SealArgs {
    /// The datastore name (the backup's folder in the store).
    #[arg(long, short = 'd')]
    pub datastore: String,
    /// Recipient public key (age1… or ssh-ed25519 …), repeatable. DBSEAL_RECIPIENTS takes
    /// a comma-separated list.
    #[arg(
        long = "recipient",
        short = 'r',
        env = "DBSEAL_RECIPIENTS",
        value_delimiter = ','
    )]
    pub recipients: Vec<String>,
    /// Encrypt to a passphrase read from this file instead of recipients (age scrypt).
    #[arg(long, env = "DBSEAL_PASSPHRASE_FILE", conflicts_with = "recipients")]
    pub passphrase_file: Option<PathBuf>,
    /// zstd compression level (1-22, or -7..-1 for fast modes).
    #[arg(
        long,
        env = "DBSEAL_ZSTD_LEVEL",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub zstd_level: i32,
    /// zstd worker threads (default: one per core, at most 2; 0 compresses on one
    /// thread). Each worker adds about 3 MiB of memory.
    #[arg(long, env = "DBSEAL_ZSTD_WORKERS")]
    pub zstd_workers: Option<u32>,
    /// Label KEY=VALUE recorded in the manifest, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

impl SealArgs {
    /// The encryption these flags ask for.
    pub fn encryption(&self) -> CliResult<Encryption> {
        if let Some(path) = &self.passphrase_file {
            let p = read_passphrase(path)?;
            return Ok(Encryption::Passphrase(p));
        }
        Ok(Encryption::parse_recipients(&self.recipients)?)
    }

    /// Backup options for the pipeline.
    pub fn backup_options(
        &self,
        progress: Option<Arc<dyn Progress>>,
    ) -> CliResult<backup_core::BackupOptions> {
        let mut opts = backup_core::BackupOptions::new(self.datastore.clone(), self.encryption()?);
        opts.zstd_level = self.zstd_level;
        opts.zstd_workers = self.zstd_workers;
        for kv in &self.labels {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| CliError::usage(format!("--label `{kv}` is not KEY=VALUE")))?;
            opts.labels.insert(k.to_string(), v.to_string());
        }
        opts.progress = progress;
        Ok(opts)
    }
}

/// How to decrypt a backup.
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

impl KeyArgs {
    /// The decryption material, if any was given.
    pub fn decryption(&self) -> CliResult<Option<Arc<Decryption>>> {
        let mut out: Option<Decryption> = None;
        for path in &self.identities {
            let d = Decryption::from_identity_file(path)?;
            out = Some(match out {
                Some(prev) => prev.merge(d),
                None => d,
            });
        }
        if let Some(path) = &self.passphrase_file {
            let d = Decryption::from_passphrase(read_passphrase(path)?);
            out = Some(match out {
                Some(prev) => prev.merge(d),
                None => d,
            });
        }
        Ok(out.map(Arc::new))
    }

    /// Restore options with these keys and an optional progress bar.
    pub fn restore_options(
        &self,
        progress: Option<Arc<dyn Progress>>,
    ) -> CliResult<backup_core::RestoreOptions> {
        Ok(backup_core::RestoreOptions {
            decryption: self.decryption()?,
            progress,
        })
    }
}

fn read_passphrase(path: &std::path::Path) -> CliResult<SecretString> {
    let p = SecretString::from_file(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read passphrase file {}: {e}",
            path.display()
        ))
    })?;
    if p.is_empty() {
        return Err(CliError::usage(format!(
            "passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(p)
}

/// Every format reader this build knows.
pub fn formats() -> FormatRegistry {
    let mut reg = FormatRegistry::new();
    crate::db::register_formats(&mut reg);
    reg
}

/// Human-readable byte counts.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
