//! The WAL commands and the point-in-time restore as operations both front-ends call:
//! `dbseal wal-push`, `wal-fetch`, `wal-verify` and `dbseal restore --pgdata`, and the
//! Python functions of the same names.
//!
//! Set up archiving on the server (postgresql.conf):
//!
//! ```text
//! archive_mode = on
//! archive_command = 'dbseal wal-push --datastore app %p'
//! ```
//!
//! `archive_command` runs with the server's environment and in its data directory, so
//! the store and the recipients must come from there: `DBSEAL_STORE`,
//! `DBSEAL_RECIPIENTS` (and `AWS_*` for S3) in the server's environment (systemd
//! `Environment=`, Debian's `/etc/postgresql/15/main/environment`), or an env file:
//! `archive_command = 'dbseal wal-push --env-file /etc/dbseal/wal.env --datastore app %p'`.
//! Values from the env file fill in what neither flags nor the environment set
//! ([`WalSettings::resolve`]). A relative local store is refused inside a data
//! directory.
//!
//! Exit codes follow what PostgreSQL expects:
//!
//! - `wal-push`: 0 only when the file (or an identical copy) is durably archived; any
//!   failure is non-zero (the error kind's exit code), so PostgreSQL keeps the segment
//!   and retries.
//! - `wal-fetch`: 0 when the file was verified and written; [`FETCH_MISSING`] (3) when
//!   it is not in the archive (PostgreSQL then ends recovery or tries another
//!   timeline); [`FETCH_FATAL`] (255) for every other failure (corrupt or foreign
//!   segment, store unreachable, wrong key, a gap with `--fail-on-gap`): an exit status
//!   above 125 makes PostgreSQL abort recovery instead of taking the failure for the
//!   end of the archive and promoting with missing data. See
//!   [`WalFetchOptions::failure_exit_code`].
//! - `wal-verify`: exit 4 ([`ErrorKind::Verification`]) when a problem is found
//!   ([`wal_verify_failure`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::{BackupStore, Decryption, Encryption, Error, ErrorKind, Result};
use serde::Deserialize;

use crate::physical;
use crate::wal::{
    archive_identity, archived_ahead, check_concurrency, prefetched, FetchOptions, FetchOutcome,
    PushOptions, PushOutcome, WalArchive, WalVerifyLevel, WalVerifyReport,
};

mod archive;
mod drill;
mod pgdata;

pub use archive::PostgresWalArchive;
pub use drill::{replay_drill, ReplayAccess};

pub use pgdata::{
    current_dbseal, plan_pgdata_restore, restore_backup_into_pgdata, restore_pgdata, PgdataOutcome,
    PgdataRestorePlan, PgdataRestoreReport, PitrOptions, PlannedRead,
};

/// Exit status of `wal-fetch` when the file is not archived (PostgreSQL: "not found").
pub const FETCH_MISSING: i32 = 3;
/// Exit status of `wal-fetch` for any other failure: above 125, so PostgreSQL aborts
/// recovery rather than treating the failure as the end of the archive.
pub const FETCH_FATAL: i32 = 255;
pub use backup_core::ops::DEFAULT_STORE;

/// Where the store is, as the front-end was told (`--store`, `--store-option`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreLocation {
    /// Store URL or path. [`DEFAULT_STORE`] (with `DBSEAL_STORE` unset) lets an env
    /// file's `DBSEAL_STORE` decide.
    pub url: String,
    /// Store options as `KEY=VALUE` (may hold credentials).
    pub options: Vec<String>,
    /// The signing key and trusted keys (`--signing-key`, `--trusted-signer`…); an env
    /// file's `DBSEAL_SIGNING_KEY` and `DBSEAL_TRUSTED_SIGNERS` complete them.
    pub trust: backup_core::ops::TrustOptions,
}

impl Default for StoreLocation {
    fn default() -> Self {
        StoreLocation {
            url: DEFAULT_STORE.into(),
            options: Vec::new(),
            trust: Default::default(),
        }
    }
}

/// Identity files and passphrase file that open sealed WAL and backups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyFiles {
    /// Identity files (age, or unencrypted SSH private keys).
    pub identities: Vec<PathBuf>,
    /// A passphrase file, for passphrase-encrypted backups.
    pub passphrase_file: Option<PathBuf>,
}

impl KeyFiles {
    /// The decryption material, if any was given.
    pub fn decryption(&self) -> Result<Option<Arc<Decryption>>> {
        backup_core::ops::KeyOptions {
            identities: self.identities.clone(),
            passphrase_file: self.passphrase_file.clone(),
            decryption: None,
        }
        .decryption()
    }
}

/// `wal-push`: archive one WAL file.
#[derive(clap::Args, Deserialize, Debug, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct WalPushOptions {
    /// The datastore whose WAL archive receives the file.
    #[arg(long, short = 'd')]
    pub datastore: String,
    /// Recipient public key (age1… or ssh-ed25519 …), repeatable; DBSEAL_RECIPIENTS
    /// takes a comma-separated list.
    #[arg(
        long = "recipient",
        short = 'r',
        env = "DBSEAL_RECIPIENTS",
        value_delimiter = ','
    )]
    pub recipients: Vec<String>,
    /// zstd level for WAL files.
    #[arg(
        long,
        env = "DBSEAL_WAL_ZSTD_LEVEL",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub zstd_level: i32,
    /// Files at once (1 to 64): %p and the oldest other files PostgreSQL marked
    /// ready beside it, each answered later from a marker in pg_wal/.dbseal-pushed.
    /// Default 1; DBSEAL_WAL_CONCURRENCY, also read from --env-file.
    #[arg(long, env = "DBSEAL_WAL_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// A KEY=VALUE file (DBSEAL_STORE, DBSEAL_STORE_OPTION=k=v, DBSEAL_RECIPIENTS,
    /// DBSEAL_IDENTITY, DBSEAL_PASSPHRASE_FILE, DBSEAL_SIGNING_KEY, DBSEAL_TRUSTED_SIGNERS, AWS_*/GOOGLE_*/AZURE_*) filling in what
    /// neither flags nor the environment set. Keep it mode 0600: it may hold secrets.
    #[arg(long, env = "DBSEAL_ENV_FILE", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// The WAL file: PostgreSQL's %p.
    pub path: PathBuf,
}

impl Default for WalPushOptions {
    fn default() -> Self {
        WalPushOptions {
            datastore: String::new(),
            recipients: Vec::new(),
            zstd_level: 3,
            concurrency: None,
            env_file: None,
            path: PathBuf::new(),
        }
    }
}

/// `wal-fetch`: one archived WAL file into the path recovery asks for.
#[derive(clap::Args, Deserialize, Debug, Clone, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WalFetchOptions {
    /// The datastore whose WAL archive holds the file.
    #[arg(long, short = 'd')]
    pub datastore: String,
    /// Identity file (from `dbseal keygen`, `age-keygen`, or an unencrypted SSH private
    /// key), repeatable. DBSEAL_IDENTITY takes one path.
    #[arg(long = "identity", short = 'i', env = "DBSEAL_IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Passphrase file, for passphrase-encrypted backups.
    #[arg(long = "passphrase-file", env = "DBSEAL_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The system identifier segments must carry (the base backup's); default: the
    /// archive's.
    #[arg(long)]
    pub system_id: Option<u64>,
    /// Treat a missing segment with later segments archived (a gap) as a failure
    /// (exit 255), not as the end of the archive. `dbseal restore --latest` sets it.
    #[arg(long)]
    pub fail_on_gap: bool,
    /// Report every failure as "not found" (exit 3) instead of aborting recovery: for
    /// log-shipping standbys that should keep retrying through store outages.
    #[arg(long)]
    pub errors_as_missing: bool,
    /// Segments at once (1 to 64): %f and the next ones of its timeline, prefetched
    /// into pg_wal/.dbseal-prefetch for the next calls. Default 1;
    /// DBSEAL_WAL_CONCURRENCY, also read from --env-file.
    #[arg(long, env = "DBSEAL_WAL_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// A KEY=VALUE file (DBSEAL_STORE, DBSEAL_STORE_OPTION=k=v, DBSEAL_IDENTITY,
    /// DBSEAL_PASSPHRASE_FILE, DBSEAL_SIGNING_KEY, DBSEAL_TRUSTED_SIGNERS, AWS_*/GOOGLE_*/AZURE_*) filling in what neither flags
    /// nor the environment set. Keep it mode 0600: it may hold secrets.
    #[arg(long, env = "DBSEAL_ENV_FILE", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// The WAL file name: PostgreSQL's %f.
    pub file: String,
    /// Where to write it: PostgreSQL's %p.
    pub path: PathBuf,
}

impl WalFetchOptions {
    /// The exit status of `wal-fetch` for a failure ([`wal_fetch`] returned `Err`):
    /// [`FETCH_FATAL`], or [`FETCH_MISSING`] with `errors_as_missing`. A missing file
    /// ([`FetchOutcome::Missing`]) always exits [`FETCH_MISSING`].
    pub fn failure_exit_code(&self) -> i32 {
        if self.errors_as_missing {
            FETCH_MISSING
        } else {
            FETCH_FATAL
        }
    }

    fn key_files(&self) -> KeyFiles {
        KeyFiles {
            identities: self.identities.clone(),
            passphrase_file: self.passphrase_file.clone(),
        }
    }
}

/// `wal-verify`: check a datastore's WAL archive.
#[derive(clap::Args, Deserialize, Debug, Clone, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WalVerifyOptions {
    /// The datastore whose WAL archive is checked.
    #[arg(long, short = 'd')]
    pub datastore: String,
    /// Identity file (from `dbseal keygen`, `age-keygen`, or an unencrypted SSH private
    /// key), repeatable. DBSEAL_IDENTITY takes one path.
    #[arg(long = "identity", short = 'i', env = "DBSEAL_IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// Passphrase file, for passphrase-encrypted backups.
    #[arg(long = "passphrase-file", env = "DBSEAL_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// How deep to go. Default: `content` with an identity, else `stored`.
    #[arg(long, value_enum)]
    pub level: Option<WalVerifyLevel>,
    /// A KEY=VALUE file (DBSEAL_STORE, DBSEAL_STORE_OPTION=k=v, DBSEAL_IDENTITY,
    /// DBSEAL_PASSPHRASE_FILE, DBSEAL_SIGNING_KEY, DBSEAL_TRUSTED_SIGNERS, AWS_*/GOOGLE_*/AZURE_*) filling in what neither flags
    /// nor the environment set. Keep it mode 0600: it may hold secrets.
    #[arg(long, env = "DBSEAL_ENV_FILE", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// Store, recipients and keys of a WAL command, gathered from the front-end's values,
/// the environment and an env file.
#[derive(Clone)]
pub struct WalSettings {
    /// The store URL or path.
    pub store_url: String,
    /// Store options (may hold credentials: `Debug` redacts them).
    pub store_options: BTreeMap<String, String>,
    /// Recipients (`wal-push`).
    pub recipients: Vec<String>,
    /// Identity files.
    pub identities: Vec<PathBuf>,
    /// Passphrase file.
    pub passphrase_file: Option<PathBuf>,
    /// Signing key and trusted keys.
    pub trust: backup_core::ops::TrustOptions,
    /// DBSEAL_WAL_CONCURRENCY from the env file.
    pub wal_concurrency: Option<usize>,
}

impl fmt::Debug for WalSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .store_options
            .iter()
            .map(|(k, v)| {
                let shown = if backup_core::secret::is_secret_name(k) {
                    backup_core::secret::REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("WalSettings")
            .field("store_url", &backup_core::redact_url(&self.store_url))
            .field("store_options", &options)
            .field("recipients", &self.recipients)
            .field("identities", &self.identities)
            .field("passphrase_file", &self.passphrase_file)
            .field("trust", &self.trust)
            .field("wal_concurrency", &self.wal_concurrency)
            .finish()
    }
}

/// The credential variables of a store URL's scheme (`AWS_`, `GOOGLE_`, `AZURE_`).
pub(crate) fn credential_prefix(store_url: &str) -> Option<&'static str> {
    match store_url.split_once("://").map(|(s, _)| s) {
        Some("s3") | Some("s3a") => Some("AWS_"),
        Some("gs") => Some("GOOGLE_"),
        Some("az") | Some("azure") | Some("abfs") | Some("abfss") => Some("AZURE_"),
        _ => None,
    }
}

/// Whether a store URL is a local directory.
pub(crate) fn is_local(url: &str) -> bool {
    url.starts_with("file://") || !url.contains("://")
}

fn parse_option(kv: &str, origin: &str) -> Result<(String, String)> {
    kv.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| Error::Config(format!("{origin} `{kv}` is not KEY=VALUE")))
}

impl WalSettings {
    /// Gathers the settings: `store`, `recipients` and `keys` as the front-end got
    /// them (flags or environment), filled in from `env_file` where they are empty (the
    /// store only when it is [`DEFAULT_STORE`] and `DBSEAL_STORE` is unset). Store
    /// options: the env file's scheme credentials (`AWS_*` → `aws_*`…), then its
    /// `DBSEAL_STORE_OPTION`s, then the front-end's.
    pub fn resolve(
        store: &StoreLocation,
        env_file: Option<&Path>,
        recipients: &[String],
        keys: &KeyFiles,
    ) -> Result<Self> {
        let file = match env_file {
            None => Vec::new(),
            Some(p) => physical::read_env_file(p).map_err(|e| Error::Config(e.to_string()))?,
        };
        let get = |k: &str| {
            file.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        let store_url = if store.url == DEFAULT_STORE && std::env::var_os("DBSEAL_STORE").is_none()
        {
            get("DBSEAL_STORE")
                .pop()
                .unwrap_or_else(|| store.url.clone())
        } else {
            store.url.clone()
        };
        let mut store_options = BTreeMap::new();
        let prefix = credential_prefix(&store_url);
        for (k, v) in &file {
            if prefix.is_some_and(|p| k.starts_with(p))
                && backup_core::store::is_store_option(&store_url, k)
            {
                store_options.insert(k.to_ascii_lowercase(), v.clone());
            }
        }
        for kv in get("DBSEAL_STORE_OPTION") {
            let (k, v) = parse_option(&kv, "DBSEAL_STORE_OPTION")?;
            store_options.insert(k, v);
        }
        for kv in &store.options {
            let (k, v) = parse_option(kv, "--store-option")?;
            store_options.insert(k, v);
        }
        let recipients = if recipients.is_empty() {
            get("DBSEAL_RECIPIENTS")
                .iter()
                .flat_map(|r| {
                    r.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        } else {
            recipients.to_vec()
        };
        let mut identities = keys.identities.clone();
        if identities.is_empty() {
            identities = get("DBSEAL_IDENTITY")
                .into_iter()
                .map(PathBuf::from)
                .collect();
        }
        let passphrase_file = keys
            .passphrase_file
            .clone()
            .or_else(|| get("DBSEAL_PASSPHRASE_FILE").pop().map(PathBuf::from));
        let wal_concurrency = match get("DBSEAL_WAL_CONCURRENCY").pop() {
            None => None,
            Some(v) => Some(v.trim().parse::<usize>().map_err(|_| {
                Error::Config(format!("DBSEAL_WAL_CONCURRENCY `{v}` is not a number"))
            })?),
        };
        let from_file = backup_core::ops::TrustOptions::from_lookup(get);
        Ok(WalSettings {
            store_url,
            store_options,
            recipients,
            identities,
            passphrase_file,
            trust: store.trust.or(&from_file),
            wal_concurrency,
        })
    }

    /// Opens the store for WAL ([`BackupStore::open`]: local directories are written
    /// with fsync, so archive_command reports success only for a durable file). Refuses a relative local
    /// store inside a PostgreSQL data directory: archive_command runs there, and the
    /// default `./backups` would put the archive inside the cluster it protects.
    pub fn open_store(&self) -> Result<BackupStore> {
        let path = self
            .store_url
            .strip_prefix("file://")
            .unwrap_or(&self.store_url);
        if is_local(&self.store_url)
            && Path::new(path).is_relative()
            && Path::new("PG_VERSION").is_file()
        {
            return Err(Error::Config(format!(
                "the store is the relative path `{path}` and this is a PostgreSQL data directory (archive_command and restore_command run there): set --store or DBSEAL_STORE (or DBSEAL_STORE in --env-file) to an absolute path or a URL"
            )));
        }
        Ok(
            BackupStore::open(&self.store_url, &self.store_options)?
                .with_trust(self.trust.trust()?),
        )
    }

    /// Which archive `datastore` of this store is, for `--concurrency`'s markers and
    /// prefetch folder ([`archive_identity`]): the store URL as shown, the store options
    /// and the scheme's environment variables that choose the store (endpoint, region,
    /// account…; secret ones by name only), and the datastore — hashed.
    pub fn archive_identity(&self, datastore: &str) -> String {
        let mut options = BTreeMap::new();
        if let Some(prefix) = credential_prefix(&self.store_url) {
            for (k, v) in std::env::vars() {
                if k.starts_with(prefix) && backup_core::store::is_store_option(&self.store_url, &k)
                {
                    options.insert(k.to_ascii_lowercase(), v);
                }
            }
        }
        for (k, v) in &self.store_options {
            options.insert(k.to_ascii_lowercase(), v.clone());
        }
        let mut parts = vec![
            backup_core::redact_url(&self.store_url),
            datastore.to_string(),
        ];
        for (k, v) in options {
            let shown = if backup_core::secret::is_secret_name(&k) {
                ""
            } else {
                v.as_str()
            };
            parts.push(format!("{k}={shown}"));
        }
        archive_identity(&parts)
    }

    /// `--concurrency` of a WAL command: the flag (or the environment), else the env
    /// file's DBSEAL_WAL_CONCURRENCY, else 1; checked.
    pub fn concurrency(&self, flag: Option<usize>) -> Result<usize> {
        check_concurrency(flag.or(self.wal_concurrency).unwrap_or(1))
    }

    /// The key files gathered.
    pub fn key_files(&self) -> KeyFiles {
        KeyFiles {
            identities: self.identities.clone(),
            passphrase_file: self.passphrase_file.clone(),
        }
    }
}

/// Runs `wal-push`: archives `options.path` into the datastore's WAL archive.
pub async fn wal_push(store: &StoreLocation, options: &WalPushOptions) -> Result<PushOutcome> {
    let s = WalSettings::resolve(
        store,
        options.env_file.as_deref(),
        &options.recipients,
        &KeyFiles::default(),
    )?;
    BackupStore::validate_datastore_name(&options.datastore)?;
    let identity = s.archive_identity(&options.datastore);
    if let Some(outcome) = archived_ahead(&identity, &options.path) {
        return Ok(outcome);
    }
    if s.recipients.is_empty() {
        return Err(Error::Config(
            "wal-push needs recipients: --recipient age1…, DBSEAL_RECIPIENTS in the server's environment, or DBSEAL_RECIPIENTS in --env-file".into(),
        ));
    }
    let encryption = Encryption::parse_recipients(&s.recipients)?;
    let archive = WalArchive::new(s.open_store()?, &options.datastore)?;
    let mut push = PushOptions::new(encryption);
    push.zstd_level = options.zstd_level;
    let concurrency = s.concurrency(options.concurrency)?;
    archive
        .push_concurrently(&options.path, &push, concurrency, &identity)
        .await
}

/// The line `wal-push` prints for `outcome` (empty lines are not printed).
pub fn push_message(outcome: &PushOutcome) -> String {
    match outcome.status {
        "archived" => format!(
            "archived {} ({} → {} bytes) in {}",
            outcome.file, outcome.plaintext_size, outcome.stored_size, outcome.key
        ),
        "archived_ahead" => format!(
            "{} was archived ahead by an earlier wal-push (--concurrency)",
            outcome.file
        ),
        "repaired" => format!(
            "{} was archived but its stored object was missing or damaged: rewrote {}",
            outcome.file, outcome.key
        ),
        _ => format!(
            "{} is already archived with the same contents",
            outcome.file
        ),
    }
}

/// Runs `wal-fetch`: `Ok(Fetched)` when the file was verified and written,
/// `Ok(Missing)` when it is not archived (exit [`FETCH_MISSING`], message from
/// [`FetchOutcome::message`]), `Err` for every failure, a gap with `fail_on_gap`
/// included (exit [`WalFetchOptions::failure_exit_code`]). Errors name the file:
/// `wal-fetch FILE: …`.
pub async fn wal_fetch(store: &StoreLocation, options: &WalFetchOptions) -> Result<FetchOutcome> {
    let in_context = |e: Error| {
        Error::datastore(
            format!("wal-fetch {}", options.file),
            e.kind(),
            e.to_string(),
        )
    };
    let outcome = fetch_file(store, options).await.map_err(in_context)?;
    match outcome {
        FetchOutcome::Missing {
            file,
            later_segment: Some(later),
        } if options.fail_on_gap => Err(Error::datastore(
            format!("gap in the WAL archive of datastore `{}`", options.datastore),
            ErrorKind::Verification,
            format!("{file} is missing although {later} is archived; recovery is aborted rather than ending early. Put the segment back, or restore to a target before it"),
        )),
        other => Ok(other),
    }
}

async fn fetch_file(store: &StoreLocation, options: &WalFetchOptions) -> Result<FetchOutcome> {
    let s = WalSettings::resolve(
        store,
        options.env_file.as_deref(),
        &[],
        &options.key_files(),
    )?;
    let concurrency = s.concurrency(options.concurrency)?;
    BackupStore::validate_datastore_name(&options.datastore)?;
    let identity = s.archive_identity(&options.datastore);
    if let (true, Some(sysid)) = (concurrency > 1, options.system_id) {
        if let Some(outcome) = prefetched(&options.file, &options.path, sysid, &identity) {
            return Ok(outcome);
        }
    }
    let decryption = s.key_files().decryption()?.ok_or_else(|| {
        Error::Config(
            "wal-fetch needs an identity: --identity FILE, DBSEAL_IDENTITY in the server's environment, or DBSEAL_IDENTITY in --env-file".into(),
        )
    })?;
    let archive = WalArchive::new(s.open_store()?, &options.datastore)?;
    let fetch = FetchOptions {
        decryption,
        system_identifier: options.system_id,
    };
    archive
        .fetch_concurrently(&options.file, &options.path, &fetch, concurrency, &identity)
        .await
}

impl FetchOutcome {
    /// What `wal-fetch` says about this outcome in the archive of `datastore`:
    /// `fetched FILE (N bytes)`, or why the file is missing.
    pub fn message(&self, datastore: &str) -> String {
        match self {
            FetchOutcome::Fetched {
                file,
                bytes,
                prefetched,
            } => format!(
                "fetched {file} ({bytes} bytes{})",
                if *prefetched { ", prefetched" } else { "" }
            ),
            FetchOutcome::Missing {
                file,
                later_segment: Some(later),
            } => format!(
                "{file} is not in the WAL archive of datastore `{datastore}` although {later} is (a gap): recovery ends here"
            ),
            FetchOutcome::Missing { file, .. } => format!(
                "{file} is not in the WAL archive of datastore `{datastore}` (normal at the end of the archive)"
            ),
        }
    }
}

/// Runs `wal-verify`. The report lists problems rather than failing on them: see
/// [`wal_verify_failure`].
pub async fn wal_verify(
    store: &StoreLocation,
    options: &WalVerifyOptions,
) -> Result<WalVerifyReport> {
    let keys = KeyFiles {
        identities: options.identities.clone(),
        passphrase_file: options.passphrase_file.clone(),
    };
    let s = WalSettings::resolve(store, options.env_file.as_deref(), &[], &keys)?;
    let decryption = s.key_files().decryption()?;
    let level = match options.level {
        Some(level) => level,
        None if decryption.is_some() => WalVerifyLevel::Content,
        None => WalVerifyLevel::Stored,
    };
    let store = s.open_store()?;
    let backups: Vec<_> = physical::base_backups(&store, &options.datastore)
        .await?
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    let archive = WalArchive::new(store, &options.datastore)?;
    archive.verify(&backups, level, decryption).await
}

/// The failure `wal-verify` ends with when `report` found problems (kind
/// [`ErrorKind::Verification`], exit 4); `None` when the archive is sound.
pub fn wal_verify_failure(report: &WalVerifyReport) -> Option<(ErrorKind, String)> {
    let first = report.problems.first()?;
    Some((
        ErrorKind::Verification,
        format!(
            "the WAL archive of datastore `{}` has {} problem(s); first: {first}",
            report.datastore,
            report.problems.len(),
        ),
    ))
}

impl WalVerifyReport {
    /// The report as `wal-verify` prints it for people.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "WAL archive of datastore `{}` (database system {}): {} file(s), {} segment(s), level {:?}\n",
            self.datastore,
            self.system_identifier.as_deref().unwrap_or("?"),
            self.files,
            self.segments,
            self.level
        );
        for (tl, newest) in &self.newest {
            s.push_str(&format!("  timeline {tl}: newest {newest}\n"));
        }
        for b in &self.backups {
            s.push_str(&format!(
                "  base backup {}: from {} → {} ({})\n",
                b.backup_id,
                b.start_segment,
                b.reachable.as_deref().unwrap_or("nothing archived"),
                if b.complete { "complete" } else { "INCOMPLETE" }
            ));
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        for p in &self.problems {
            s.push_str(&format!("  {p}\n"));
        }
        s.push_str(if self.is_ok() { "ok" } else { "PROBLEMS FOUND" });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An env file written by `restore --pgdata` carries every AWS_* variable of the
    /// restoring shell; one the S3 builder does not know (AWS_CA_BUNDLE, set on many
    /// hosts) made every wal-fetch fail with "not valid for store 'S3'".
    #[test]
    fn env_file_credentials_keep_only_the_store_s_options() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("wal.env");
        std::fs::write(
            &env,
            "DBSEAL_STORE=s3://bucket/prefix\nAWS_ENDPOINT=http://127.0.0.1:9\nAWS_ALLOW_HTTP=true\nAWS_REGION=us-east-1\nAWS_CA_BUNDLE=/etc/ssl/certs/ca.pem\nAWS_PROFILE=x\nDBSEAL_WAL_CONCURRENCY=3\n",
        )
        .unwrap();
        let location = StoreLocation {
            url: DEFAULT_STORE.into(),
            ..Default::default()
        };
        let s = WalSettings::resolve(&location, Some(&env), &[], &KeyFiles::default()).unwrap();
        let keys: Vec<&str> = s.store_options.keys().map(String::as_str).collect();
        assert_eq!(keys, ["aws_allow_http", "aws_endpoint", "aws_region"]);
        assert_eq!(s.wal_concurrency, Some(3));
        s.open_store().expect("the store opens");
    }

    /// Markers and prefetched files belong to one archive: another endpoint, region or
    /// datastore is another archive; a credential changes nothing and is not hashed.
    #[test]
    fn archive_identity_names_what_chooses_the_store() {
        let settings = |options: &[(&str, &str)]| WalSettings {
            store_url: "s3://bucket/prefix".into(),
            store_options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            recipients: Vec::new(),
            identities: Vec::new(),
            passphrase_file: None,
            trust: Default::default(),
            wal_concurrency: None,
        };
        let a = settings(&[
            ("aws_endpoint", "http://a:9000"),
            ("aws_secret_access_key", "s1"),
        ]);
        let a2 = settings(&[
            ("aws_endpoint", "http://a:9000"),
            ("aws_secret_access_key", "s2"),
        ]);
        let b = settings(&[
            ("aws_endpoint", "http://b:9000"),
            ("aws_secret_access_key", "s1"),
        ]);
        assert_eq!(a.archive_identity("app"), a2.archive_identity("app"));
        assert_ne!(a.archive_identity("app"), b.archive_identity("app"));
        assert_ne!(a.archive_identity("app"), a.archive_identity("other"));
        assert_eq!(a.archive_identity("app").len(), 32);
    }
}
