//! dbseal's operations, the way `rustic_core` holds restic's commands: the CLI and the
//! Python module only translate arguments into these calls and their results into
//! output. Operations never print and never name a database kind: they work through
//! the [`Registry`] of [`crate::Driver`]s, report progress and informational lines
//! through a [`Frontend`], and return `Serialize` results.
//!
//! Every operation takes an options struct (`#[derive(clap::Args, Deserialize,
//! Default)]`, `#[serde(default, deny_unknown_fields)]`: the CLI flattens it, Python
//! builds it from keyword arguments) and returns a `Serialize` result or a
//! [`crate::Error`] whose [`crate::ErrorKind`] gives the exit code.
//!
//! | operation | options | result |
//! |-----------|---------|--------|
//! | [`config::Config::load`], [`config::check`] (`config check`) | a path, the [`Registry`] | [`config::Config`], the redacted config as JSON |
//! | [`backup::backup_with_driver`] (`backup <kind>`) | [`DriverOptions`](crate::DriverOptions), [`backup::SealOptions`] | [`crate::Manifest`] |
//! | [`backup::backup_source`] (`backup stdin`, `backup command`) | a [`crate::Source`], [`backup::SealOptions`] | [`crate::Manifest`] |
//! | [`backup::backup_datastores`] (`backup --datastore/--all`) | [`backup::DatastoreBackupOptions`] | [`backup::DatastoresBackup`] (one manifest or a [`set::SetManifest`]) |
//! | [`restore::restore_backup`] (`restore ID`) | [`restore::RestoreBackupOptions`] | [`restore::RestoreResult`] (a [`restore::RestorePlan`] for a dry run, else a [`restore::RestoreReport`]) |
//! | [`restore::restore_set`] (`restore --set ID`) | [`restore::RestoreBackupOptions`] | [`restore::SetRestoreResult`] |
//! | [`verify::verify_backup`] (`verify ID`) | [`verify::VerifyBackupOptions`] | [`verify::VerifyResult`] |
//! | [`verify::verify_latest`] (`verify --latest`) | datastore names, [`verify::VerifyBackupOptions`] | [`verify::LatestVerifications`] |
//! | [`prune::prune`] (`prune`) | [`prune::PruneOptions`] | [`prune::PruneReport`] |
//! | [`status::status`] (`status`) | [`status::StatusOptions`] | [`status::StatusReport`] |
//! | [`drill::drill`] (`drill`) | [`drill::DrillOptions`] | [`drill::DrillReport`] |
//! | [`list`] (`list`), [`show`] (`show ID`) | a datastore name, a backup id | manifests |
//!
//! What every store-reading operation shares travels in an [`OpContext`]: the registry,
//! the store, the loaded configuration, the front-end's hooks and a cancellation token.
//! Operations whose failure is itself a result (a backup set with a failed member,
//! `status` with an unhealthy datastore, `verify --latest` with a failed datastore)
//! return the result and offer a `failure()` method giving the error to exit with, so a
//! front-end can print the result and still exit with the documented code.

pub mod alerts;
pub mod backup;
pub mod config;
pub mod drill;
mod drill_html;
pub mod history;
pub mod notify;
pub mod prune;
pub mod restore;
pub mod set;
pub mod status;
pub mod text;
pub mod trust;
pub mod verify;

#[cfg(test)]
pub(crate) mod test_driver;

/// How long an interrupted operation may take to undo its work (a backup deleting what
/// it uploaded, a restore rolling its target back) before a front-end stops waiting
/// and exits, saying what may be left. A second signal stops waiting at once.
pub const UNDO_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// What an interrupted command (`backup`, `restore`, …, as the CLI names it) may leave
/// when a second signal cuts its undoing short: the front-ends' last words.
pub fn leftover_after(command: &str) -> &'static str {
    match command {
        "backup" => {
            "parts of the unfinished backup may be left in the store (never a manifest): \
             `dbseal prune --debris` removes them"
        }
        "restore" | "verify" | "drill" => {
            "the target (or a staging/scratch database, or a partial output file) may be \
             left partly restored or partly rolled back: check it before use"
        }
        "prune" => "some of the backups prune chose may be left partly deleted",
        _ => "nothing should be left: this command does not write into a database",
    }
}

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::driver::Registry;
use crate::error::{Error, ErrorKind, Result};
use crate::id::BackupId;
use crate::keys::Decryption;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::secret::SecretString;
use crate::store::BackupStore;

pub use self::config::Config;

/// A line an operation has for the user besides its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Informational (what is being done); a quiet or JSON front-end drops it.
    Info(String),
    /// Something the user should know (an unreadable manifest skipped, nothing pruned);
    /// always shown.
    Warning(String),
    /// Something the user must see even in JSON mode, because it matters if what follows
    /// fails (the id of the safety backup taken before a restore replaces a target).
    Important(String),
}

/// What a front-end offers operations: progress display, notices and the production
/// prompt. Every method has a silent default.
pub trait Frontend: Send + Sync {
    /// A progress receiver labelled `what` ("backup", "restore", "verify"), if the
    /// front-end shows progress.
    fn progress(&self, what: &str) -> Option<Arc<dyn Progress>> {
        let _ = what;
        None
    }

    /// Receives a line for the user.
    fn notice(&self, notice: Notice) {
        let _ = notice;
    }

    /// Asks the user to type the name of production datastore `name` to confirm a
    /// restore into it; `None` when the front-end cannot ask (not a terminal, JSON
    /// output, Python). The operation compares the answer.
    fn confirm_production(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

/// A [`Frontend`] that shows nothing and cannot ask.
#[derive(Debug, Clone, Copy, Default)]
pub struct SilentFrontend;

impl Frontend for SilentFrontend {}

/// A per-datastore archive kept beside the backups (PostgreSQL's WAL archive) that
/// `prune` and `status` take into account. Implemented by the database crate that
/// writes it; a front-end adds it to its [`OpContext`].
#[async_trait::async_trait]
pub trait ContinuousArchive: Send + Sync {
    /// The archive of `datastore`, or `None` when it has none.
    async fn status(&self, store: &BackupStore, datastore: &str) -> Result<Option<ArchiveStatus>>;

    /// Deletes (or, with `dry_run`, lists) what no remaining backup of `datastore`
    /// needs, given the backups `deleting` that prune is removing. Returns the object
    /// keys deleted. An archive no kept backup refers to is left alone.
    async fn prune(
        &self,
        store: &BackupStore,
        datastore: &str,
        deleting: &BTreeSet<BackupId>,
        dry_run: bool,
    ) -> Result<Vec<String>>;

    /// `dbseal drill` of `manifest` when this archive replays onto it (PostgreSQL: a
    /// physical base backup): restores it into a temporary place, replays the archive
    /// to its newest point, checks the result and removes it, also on failure or
    /// cancellation. `None` when `manifest` is not such a backup (the drill restores it
    /// into a scratch target instead).
    async fn drill(
        &self,
        ctx: &OpContext,
        manifest: &Manifest,
        keys: &KeyOptions,
    ) -> Option<Result<drill::ReplayDrill>> {
        let _ = (ctx, manifest, keys);
        None
    }
}

/// The state of a datastore's continuous archive, for `status` (field names are those
/// of PostgreSQL's WAL archive status).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveStatus {
    /// The datastore.
    pub datastore: String,
    /// The newest archived segment's name.
    pub newest_segment: Option<String>,
    /// When the newest segment was archived.
    pub newest_archived_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Seconds since then: the real recovery point objective.
    pub newest_age_seconds: Option<i64>,
    /// When anything was last archived.
    pub last_archived_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Archived segments.
    pub segments: usize,
    /// Timelines seen.
    pub timelines: Vec<u32>,
    /// The cluster's system identifier, when known (as text: it does not fit every
    /// JSON reader's numbers).
    pub system_identifier: Option<String>,
}

/// What store-reading operations share.
#[derive(Clone)]
pub struct OpContext {
    /// The drivers this build knows.
    pub registry: Registry,
    /// The store.
    pub store: BackupStore,
    /// The configuration file, if one was loaded.
    pub config: Option<Arc<Config>>,
    /// Progress, notices and prompts.
    pub frontend: Arc<dyn Frontend>,
    /// Cancelled when the user interrupts.
    pub cancel: CancellationToken,
    /// Continuous archives `prune` and `status` take into account.
    pub archives: Vec<Arc<dyn ContinuousArchive>>,
}

impl std::fmt::Debug for OpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpContext")
            .field("registry", &self.registry)
            .field("store", &self.store)
            .field("config", &self.config.as_ref().map(|c| c.path.clone()))
            .finish_non_exhaustive()
    }
}

impl OpContext {
    /// A context with no configuration, a silent front-end and the continuous archives
    /// of the registry's drivers.
    pub fn new(registry: Registry, store: BackupStore) -> Self {
        let archives = registry.archives();
        OpContext {
            registry,
            store,
            config: None,
            frontend: Arc::new(SilentFrontend),
            cancel: CancellationToken::new(),
            archives,
        }
    }

    /// With a configuration.
    pub fn with_config(mut self, config: Option<Arc<Config>>) -> Self {
        self.config = config;
        self
    }

    /// With a front-end.
    pub fn with_frontend(mut self, frontend: Arc<dyn Frontend>) -> Self {
        self.frontend = frontend;
        self
    }

    /// With a continuous archive.
    pub fn with_archive(mut self, archive: Arc<dyn ContinuousArchive>) -> Self {
        self.archives.push(archive);
        self
    }

    /// With these continuous archives instead of the registry's (a front-end that can
    /// tell an archive how child processes reach the store).
    pub fn with_archives(mut self, archives: Vec<Arc<dyn ContinuousArchive>>) -> Self {
        self.archives = archives;
        self
    }

    /// With a cancellation token.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// The configuration, or a config error saying how to give one (`what` needs it).
    pub fn require_config(&self, what: &str) -> Result<&Config> {
        self.config
            .as_deref()
            .ok_or_else(|| Error::Config(config::missing_config_message(what)))
    }

    /// Removes every secret the configuration knows from `text`.
    pub fn scrub(&self, text: &str) -> String {
        match &self.config {
            Some(c) => c.scrub(text),
            None => text.to_string(),
        }
    }

    /// `error` with the configuration's secrets removed from its message.
    pub fn scrub_error(&self, error: Error) -> Error {
        match &self.config {
            Some(c) => {
                let text = error.to_string();
                let clean = c.scrub(&text);
                if clean == text {
                    error
                } else {
                    error.with_message(clean)
                }
            }
            None => error,
        }
    }

    /// Tells the user a line (progress of a long step).
    pub fn info(&self, line: impl Into<String>) {
        self.frontend.notice(Notice::Info(line.into()));
    }

    pub(crate) fn warn(&self, line: impl Into<String>) {
        self.frontend.notice(Notice::Warning(line.into()));
    }
}

/// How to decrypt a backup: identity files, a passphrase file, or (Python) material
/// already in memory.
#[derive(Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyOptions {
    /// Identity file (from `dbseal keygen`, `age-keygen`, or an unencrypted SSH private
    /// key), repeatable. DBSEAL_IDENTITY takes one path.
    #[arg(long = "identity", short = 'i', env = "DBSEAL_IDENTITY")]
    #[serde(alias = "identity")]
    pub identities: Vec<PathBuf>,
    /// Passphrase file, for passphrase-encrypted backups.
    #[arg(long = "passphrase-file", env = "DBSEAL_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Decryption material already loaded (Python: identities given as text, a
    /// passphrase given as a string); merged with the files.
    #[arg(skip)]
    #[serde(skip)]
    pub decryption: Option<Arc<Decryption>>,
}

impl std::fmt::Debug for KeyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOptions")
            .field("identities", &self.identities)
            .field("passphrase_file", &self.passphrase_file)
            .field("decryption", &self.decryption.as_ref().map(|_| "…"))
            .finish()
    }
}

impl KeyOptions {
    /// Whether any decryption material was given.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.passphrase_file.is_none() && self.decryption.is_none()
    }

    /// These keys, or the configuration's `[encryption]` identity or passphrase file
    /// when none was given.
    pub fn or_config(&self, config: Option<&Config>) -> KeyOptions {
        let mut keys = self.clone();
        if let Some(c) = config {
            if keys.is_empty() {
                keys.identities
                    .extend(c.encryption.identity.iter().cloned());
                keys.passphrase_file = c.encryption.passphrase_file.clone();
            }
        }
        keys
    }

    /// The decryption material, if any was given.
    pub fn decryption(&self) -> Result<Option<Arc<Decryption>>> {
        if let Some(preset) = &self.decryption {
            if self.identities.is_empty() && self.passphrase_file.is_none() {
                return Ok(Some(preset.clone()));
            }
            return Err(Error::Config(
                "give decryption keys either as files or loaded, not both".into(),
            ));
        }
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

    /// Pipeline restore options with these keys and a progress receiver.
    pub fn restore_options(
        &self,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<crate::pipeline::RestoreOptions> {
        Ok(crate::pipeline::RestoreOptions {
            decryption: self.decryption()?,
            progress,
        })
    }
}

/// Reads a passphrase file (one line); an empty file is an error.
pub fn read_passphrase(path: &std::path::Path) -> Result<SecretString> {
    let p = SecretString::from_file(path).map_err(|e| {
        Error::Config(format!(
            "cannot read passphrase file {}: {e}",
            path.display()
        ))
    })?;
    if p.is_empty() {
        return Err(Error::Config(format!(
            "passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(p)
}

/// Parses a backup or set id given by a user.
pub fn parse_id(id: &str) -> Result<BackupId> {
    id.parse()
        .map_err(|e: crate::id::InvalidBackupId| Error::Config(e.to_string()))
}

/// `list`: the complete backups of the store (or of one datastore), oldest first.
/// Unreadable manifests are skipped with a warning.
pub async fn list(ctx: &OpContext, datastore: Option<&str>) -> Result<Vec<Manifest>> {
    let listing = ctx.store.scan(datastore).await?;
    warn_skipped(ctx, &listing);
    Ok(listing.backups)
}

/// Warns about every manifest a scan skipped: unreadable ones, and those no trusted key
/// signed (a forged object is reported, never counted, and never stops the operation).
pub(crate) fn warn_skipped(ctx: &OpContext, listing: &crate::store::StoreListing) {
    for (key, reason) in &listing.unreadable {
        ctx.warn(format!("skipping unreadable manifest {key}: {reason}"));
    }
    for (_, reason) in &listing.untrusted {
        ctx.warn(format!("skipping a manifest: {reason}"));
    }
}

/// `show`: one backup's manifest.
pub async fn show(ctx: &OpContext, id: &str) -> Result<Manifest> {
    ctx.store.manifest(&parse_id(id)?).await
}

/// The stored bytes of every artifact of a backup.
pub fn stored_size(manifest: &Manifest) -> u64 {
    manifest.artifacts().map(|a| a.stored_size).sum()
}

/// Parses `KEY=VALUE` items (labels, store options); `what` names them in errors.
pub fn parse_key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in items {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("{what} `{kv}` is not KEY=VALUE")))?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The store a front-end uses when none is given or configured.
pub const DEFAULT_STORE: &str = "./backups";

/// The store a command uses, as its URL and `KEY=VALUE` options: the URL given (a flag,
/// an argument), else the configuration's `[store]`, else `$DBSEAL_STORE`, else
/// [`DEFAULT_STORE`]. The configuration's store options come first, so the same key given
/// overrides them.
pub fn store_location(
    url: Option<&str>,
    options: &[String],
    config: Option<&Config>,
) -> (String, Vec<String>) {
    let section = config.and_then(|c| c.store.as_ref());
    let url = url
        .map(str::to_string)
        .or_else(|| section.map(|s| s.url.clone()))
        .or_else(|| std::env::var("DBSEAL_STORE").ok())
        .unwrap_or_else(|| DEFAULT_STORE.into());
    let mut all: Vec<String> = section
        .map(|s| s.options.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    all.extend_from_slice(options);
    (url, all)
}

/// Opens a store from a URL and `KEY=VALUE` options (later options win).
pub fn open_store(url: &str, options: &[String]) -> Result<BackupStore> {
    let options = parse_key_values(options, "--store-option")?;
    BackupStore::open(url, &options)
}

pub use trust::TrustOptions;

/// A `Refused` error (exit 8).
pub(crate) fn refused(message: impl Into<String>) -> Error {
    Error::operation(ErrorKind::Refused, message)
}
