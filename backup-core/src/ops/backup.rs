//! Backups: of a database through its driver (`backup <kind>`), of any [`Source`]
//! (`backup stdin`, `backup command`), and of datastores named in the configuration
//! (`backup --datastore NAME`, and `--all` or several names as one backup set).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::config::{check_datastore_options, Config};
use super::set::{SetManifest, SetMember, SET_LABEL};
use super::{parse_key_values, read_passphrase, stored_size, OpContext};
use crate::driver::{BackupContext, DriverOptions};
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::keys::Encryption;
use crate::manifest::Manifest;
use crate::pipeline::BackupOptions;
use crate::progress::Progress;
use crate::source::Source;

/// The zstd level when neither a flag, `DBSEAL_ZSTD_LEVEL` nor the config sets one.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How a new backup is named, encrypted and compressed (the seal flags of
/// `dbseal backup <kind>`, `backup stdin` and `backup command`).
#[derive(Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealOptions {
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
    /// zstd compression level (1-22, or -7..-1 for fast modes; default: the config's
    /// `zstd_level`, else 3).
    #[arg(long, env = "DBSEAL_ZSTD_LEVEL", allow_negative_numbers = true)]
    pub zstd_level: Option<i32>,
    /// zstd worker threads (default: one per core, at most 2; 0 compresses on one
    /// thread). Each worker adds about 3 MiB of memory.
    #[arg(long, env = "DBSEAL_ZSTD_WORKERS")]
    pub zstd_workers: Option<u32>,
    /// Label KEY=VALUE recorded in the manifest, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Encryption already resolved (Python: a passphrase given as a string); overrides
    /// recipients and passphrase file.
    #[arg(skip)]
    #[serde(skip)]
    pub encryption: Option<Encryption>,
}

impl std::fmt::Debug for SealOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealOptions")
            .field("datastore", &self.datastore)
            .field("recipients", &self.recipients)
            .field("passphrase_file", &self.passphrase_file)
            .field("zstd_level", &self.zstd_level)
            .field("zstd_workers", &self.zstd_workers)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl SealOptions {
    /// The encryption: these options', else the configuration's `[encryption]`.
    pub fn encryption(&self, config: Option<&Config>) -> Result<Encryption> {
        if let Some(e) = &self.encryption {
            return Ok(e.clone());
        }
        let (recipients, passphrase_file) = match (
            self.recipients.is_empty() && self.passphrase_file.is_none(),
            config,
        ) {
            (true, Some(c)) => (
                c.encryption.recipients.clone(),
                c.encryption.passphrase_file.clone(),
            ),
            _ => (self.recipients.clone(), self.passphrase_file.clone()),
        };
        if let Some(path) = &passphrase_file {
            return Ok(Encryption::Passphrase(read_passphrase(path)?));
        }
        Encryption::parse_recipients(&recipients)
    }

    /// The zstd level in force: flag or `DBSEAL_ZSTD_LEVEL`, else the config's, else 3.
    pub fn zstd_level(&self, config: Option<&Config>) -> i32 {
        self.zstd_level
            .or(config.and_then(|c| c.zstd_level))
            .unwrap_or(DEFAULT_ZSTD_LEVEL)
    }

    /// The pipeline options: the configured datastore's labels (when it is configured),
    /// then `extra_labels`, then these options' labels.
    pub fn backup_options(
        &self,
        config: Option<&Config>,
        extra_labels: &BTreeMap<String, String>,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<BackupOptions> {
        let mut opts = BackupOptions::new(self.datastore.clone(), self.encryption(config)?);
        opts.zstd_level = self.zstd_level(config);
        opts.zstd_workers = self.zstd_workers;
        if let Some(ds) = config.and_then(|c| c.datastores.get(&self.datastore)) {
            opts.labels.extend(ds.manifest_labels());
        }
        opts.labels.extend(extra_labels.clone());
        opts.labels
            .extend(parse_key_values(&self.labels, "--label")?);
        opts.progress = progress;
        Ok(opts)
    }
}

/// Backs up `source` (standard input, a command's output) into `seal.datastore`.
pub async fn backup_source(
    ctx: &OpContext,
    source: &mut dyn Source,
    seal: &SealOptions,
) -> Result<Manifest> {
    let config = ctx.config.as_deref();
    let options = seal
        .backup_options(config, &BTreeMap::new(), ctx.frontend.progress("backup"))?
        .with_cancel(ctx.cancel.clone());
    let result = crate::pipeline::backup(&ctx.store, source, options).await;
    after_backup(ctx, &seal.datastore, &result).await;
    result
}

/// What follows every backup: its outcome record ([`super::history`]) and its
/// notification.
async fn after_backup(ctx: &OpContext, datastore: &str, result: &Result<Manifest>) {
    let outcome = match result {
        Ok(m) => super::history::Outcome::new(
            datastore,
            super::history::Event::Backup,
            true,
            Some(&m.backup_id),
            "completed",
        ),
        Err(e) => super::history::Outcome::new(
            datastore,
            super::history::Event::Backup,
            false,
            None,
            e.to_string(),
        ),
    };
    super::history::record(ctx, outcome).await;
    super::notify::send(ctx, || backup_event(datastore, result)).await;
}

/// The notification of a backup of `datastore` that ended with `result`.
fn backup_event(datastore: &str, result: &Result<Manifest>) -> super::notify::Event {
    super::notify::Event::of_result("backup", result, |m| {
        let seconds = (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0;
        (
            format!(
                "backup {} completed: {} stored in {seconds:.1} s",
                m.backup_id,
                human_bytes(m.artifact.stored_size)
            ),
            serde_json::json!({
                "stored_bytes": m.artifact.stored_size,
                "plaintext_bytes": m.artifact.plaintext_size,
                "duration_seconds": seconds,
            }),
        )
    })
    .of(
        Some(datastore),
        result.as_ref().ok().map(|m| m.backup_id.as_str()),
    )
}

/// Backs up a database of `kind` with the driver's `options` (`url` among them, else
/// the kind's environment) into `seal.datastore`: `dbseal backup <kind>`, and the one
/// place configuration becomes a driver's backup call (configured datastores, safety
/// backups before a restore).
pub async fn backup_with_driver(
    ctx: &OpContext,
    kind: &str,
    options: &DriverOptions,
    seal: &SealOptions,
) -> Result<Manifest> {
    let result = backup_labelled(ctx, kind, options, seal, &BTreeMap::new(), Some("backup")).await;
    after_backup(ctx, &seal.datastore, &result).await;
    result
}

async fn backup_labelled(
    ctx: &OpContext,
    kind: &str,
    options: &DriverOptions,
    seal: &SealOptions,
    extra_labels: &BTreeMap<String, String>,
    progress: Option<&str>,
) -> Result<Manifest> {
    let driver = ctx.registry.driver(kind)?;
    let bctx = BackupContext {
        store: ctx.store.clone(),
        options: seal
            .backup_options(
                ctx.config.as_deref(),
                extra_labels,
                progress.and_then(|p| ctx.frontend.progress(p)),
            )?
            .with_cancel(ctx.cancel.clone()),
    };
    driver
        .backup(options, &bctx)
        .await
        .map_err(|e| ctx.scrub_error(e))
}

/// Backups of datastores named in the config file (`dbseal backup --datastore NAME`,
/// `--all`).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatastoreBackupOptions {
    /// Back up this datastore of the config file (kind, URL, options from there).
    /// Repeat it to back up several as one backup set.
    #[arg(long = "datastore", short = 'd', value_name = "NAME")]
    #[serde(alias = "datastore")]
    pub datastores: Vec<String>,
    /// Back up every datastore of the config file, concurrently, as one backup set
    /// (`_sets/<set id>/set.json` lists the members, written last). Exit code 10 when
    /// any member failed.
    #[arg(long, conflicts_with = "datastores")]
    pub all: bool,
    /// How many datastores of a set are backed up at once (default 2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Recipient public key (overrides the config's), repeatable.
    #[arg(
        long = "recipient",
        short = 'r',
        env = "DBSEAL_RECIPIENTS",
        value_delimiter = ','
    )]
    pub recipients: Vec<String>,
    /// Encrypt to a passphrase read from this file (overrides the config's).
    #[arg(long, env = "DBSEAL_PASSPHRASE_FILE", conflicts_with = "recipients")]
    pub passphrase_file: Option<PathBuf>,
    /// zstd level (overrides DBSEAL_ZSTD_LEVEL, which overrides the config's
    /// `zstd_level`; default 3).
    #[arg(long, env = "DBSEAL_ZSTD_LEVEL", allow_negative_numbers = true)]
    pub zstd_level: Option<i32>,
    /// zstd worker threads (default: one per core, at most 2; 0: one thread).
    #[arg(long, env = "DBSEAL_ZSTD_WORKERS")]
    pub zstd_workers: Option<u32>,
    /// Label KEY=VALUE added to every manifest, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

impl DatastoreBackupOptions {
    /// The seal options of datastore `name`.
    fn seal(&self, name: &str) -> SealOptions {
        SealOptions {
            datastore: name.to_string(),
            recipients: self.recipients.clone(),
            passphrase_file: self.passphrase_file.clone(),
            zstd_level: self.zstd_level,
            zstd_workers: self.zstd_workers,
            labels: self.labels.clone(),
            encryption: None,
        }
    }
}

/// The result of `backup --datastore/--all`: one backup, or a set.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum DatastoresBackup {
    /// One datastore was named: its backup.
    Single(Box<Manifest>),
    /// `--all` or several names: the set manifest (committed; see
    /// [`SetManifest::failure`] for the exit status).
    Set(Box<SetManifest>),
}

/// Backs up one configured datastore: its options are checked against its driver
/// first, its URL (with the password from `password_file`) goes to the driver in
/// memory only. `progress` labels a progress display, if any. A failure at any step
/// (a bad option, an unreadable password file, no recipient) is recorded and
/// announced like a failure of the backup itself.
pub async fn backup_datastore(
    ctx: &OpContext,
    name: &str,
    options: &DatastoreBackupOptions,
    extra_labels: &BTreeMap<String, String>,
    progress: Option<&str>,
) -> Result<Manifest> {
    let config = ctx.require_config("--datastore reads the config file")?;
    let ds = config.datastore(name)?;
    let result = async {
        check_datastore_options(&ctx.registry, name, ds)?;
        let driver_options = ds.backup_options(name)?;
        backup_labelled(
            ctx,
            &ds.kind,
            &driver_options,
            &options.seal(name),
            extra_labels,
            progress,
        )
        .await
    }
    .await
    .map_err(|e| ctx.scrub_error(e));
    after_backup(ctx, name, &result).await;
    result
}

/// `dbseal backup --datastore NAME…` / `--all`.
pub async fn backup_datastores(
    ctx: &OpContext,
    options: &DatastoreBackupOptions,
) -> Result<DatastoresBackup> {
    if options.datastores.is_empty() && !options.all {
        return Err(Error::Config(
            "name what to back up: a kind (`dbseal backup postgres -d NAME …`), a configured datastore (`--datastore NAME`) or every configured datastore (`--all`)".into(),
        ));
    }
    let config = ctx.require_config("--datastore and --all read the config file")?;
    let names: Vec<String> = if options.all {
        config.datastores.keys().cloned().collect()
    } else {
        options.datastores.clone()
    };
    if names.is_empty() {
        return Err(Error::Config(format!(
            "{} configures no datastore ([datastores.NAME] tables)",
            config.path.display()
        )));
    }
    for n in &names {
        config.datastore(n)?;
    }
    if names.len() == 1 && !options.all {
        let m = backup_datastore(ctx, &names[0], options, &BTreeMap::new(), Some("backup")).await?;
        return Ok(DatastoresBackup::Single(Box::new(m)));
    }
    backup_set(ctx, config, &names, options)
        .await
        .map(|s| DatastoresBackup::Set(Box::new(s)))
}

async fn backup_set(
    ctx: &OpContext,
    config: &Config,
    names: &[String],
    options: &DatastoreBackupOptions,
) -> Result<SetManifest> {
    let started_at = chrono::Utc::now();
    let set_id = BackupId::new(started_at);
    let labels: BTreeMap<String, String> = [(SET_LABEL.to_string(), set_id.to_string())].into();
    ctx.info(format!(
        "backup set {set_id}: {} datastores, {} at a time",
        names.len(),
        options.jobs
    ));
    let labels = &labels;
    let mut results: Vec<(String, Result<Manifest>)> = futures::stream::iter(names.iter())
        .map(|name| async move {
            // No progress bars: several run at once.
            let r = backup_datastore(ctx, name, options, labels, None).await;
            match &r {
                Ok(m) => ctx.info(format!(
                    "  {name}: backup {} committed ({})",
                    m.backup_id,
                    human_bytes(stored_size(m))
                )),
                Err(e) => ctx.info(format!("  {name}: FAILED: {e}")),
            }
            (name.clone(), r)
        })
        .buffer_unordered(usize::from(options.jobs.max(1)))
        .collect()
        .await;
    results.sort_by_key(|(n, _)| names.iter().position(|x| x == n));
    let members: Vec<SetMember> = results
        .iter()
        .map(|(name, r)| {
            let kind = config
                .datastores
                .get(name)
                .map(|d| d.kind.clone())
                .unwrap_or_default();
            match r {
                Ok(m) => SetMember {
                    datastore: name.clone(),
                    kind,
                    ok: true,
                    backup_id: Some(m.backup_id.clone()),
                    stored_size: Some(stored_size(m)),
                    error: None,
                    code: None,
                },
                Err(e) => SetMember {
                    datastore: name.clone(),
                    kind,
                    ok: false,
                    backup_id: None,
                    stored_size: None,
                    error: Some(config.scrub(&e.to_string())),
                    code: Some(e.kind().exit_code()),
                },
            }
        })
        .collect();
    let set = SetManifest {
        format_version: "1.0".into(),
        set_id,
        started_at,
        finished_at: chrono::Utc::now(),
        ok: members.iter().all(|m| m.ok),
        members,
        tool: Default::default(),
        extra: Default::default(),
    };
    if ctx.cancel.is_cancelled() {
        // An interrupted set is not a set: the members that completed stay ordinary
        // backups, the others left nothing.
        return Err(Error::Interrupted(
            "the backup set was interrupted: no set manifest was written".into(),
        ));
    }
    set.commit(&ctx.store).await?;
    Ok(set)
}

/// Human-readable byte counts (`1.5 MiB`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Registry;
    use crate::keys::KeyPair;
    use crate::ops::test_driver::TestDriver;
    use crate::store::BackupStore;

    fn ctx(config: &str, keys: &KeyPair) -> OpContext {
        let registry = Registry::new().with(TestDriver::new("test", &["test"]));
        let text = format!(
            "zstd_level = 9\n[encryption]\nrecipients = [\"{}\"]\n{config}",
            keys.recipient()
        );
        let config = Config::parse(
            &text,
            std::path::Path::new("dbseal.toml"),
            &|k| (k == "PW").then(|| "pw-secret-1".to_string()),
            &registry,
        )
        .unwrap();
        OpContext::new(
            registry,
            BackupStore::open("memory://", &Default::default())
                .unwrap()
                .with_trust(crate::Trust::ephemeral().unwrap()),
        )
        .with_config(Some(Arc::new(config)))
    }

    fn zstd_level(m: &Manifest) -> Option<i32> {
        m.transforms.iter().find_map(|t| match t {
            crate::transform::TransformSpec::Zstd { level, .. } => Some(*level),
            _ => None,
        })
    }

    #[tokio::test]
    async fn configured_datastores_and_sets() {
        let keys = KeyPair::generate();
        let ctx = ctx(
            "[datastores.a]\nkind = \"test\"\nurl = \"test://a\"\nenvironment = \"production\"\nlabels = { team = \"x\" }\n[datastores.b]\nkind = \"test\"\nurl = \"test://:${PW}@b/fail\"\n[datastores.c]\nkind = \"test\"\nurl = \"test://c\"\n[datastores.c.options]\nnope = 1\n",
            &keys,
        );
        // One datastore: its labels, the config's zstd level, an option override.
        let opts = DatastoreBackupOptions {
            datastores: vec!["a".into()],
            jobs: 2,
            labels: vec!["extra=1".into()],
            ..Default::default()
        };
        let DatastoresBackup::Single(m) = backup_datastores(&ctx, &opts).await.unwrap() else {
            panic!("one backup")
        };
        assert_eq!(m.labels["team"], "x");
        assert_eq!(m.labels["environment"], "production");
        assert_eq!(m.labels["extra"], "1");
        assert_eq!(zstd_level(&m), Some(9));
        // The flag (or DBSEAL_ZSTD_LEVEL, through the same field) wins over the config.
        let opts = DatastoreBackupOptions {
            datastores: vec!["a".into()],
            zstd_level: Some(2),
            jobs: 1,
            ..Default::default()
        };
        let DatastoresBackup::Single(m) = backup_datastores(&ctx, &opts).await.unwrap() else {
            panic!("one backup")
        };
        assert_eq!(zstd_level(&m), Some(2));
        // Unknown options name the datastore.
        let e = backup_datastore(&ctx, "c", &opts, &BTreeMap::new(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("[datastores.c]") && e.contains("nope"), "{e}");
        // A failure before the driver ran is recorded like any other.
        let since = chrono::Utc::now() - chrono::Duration::hours(1);
        let (records, _) = super::super::history::outcomes(
            &ctx.store,
            "c",
            super::super::history::Event::Backup,
            since,
        )
        .await
        .unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(
            !records[0].ok && records[0].message.contains("nope"),
            "{records:?}"
        );
        // --all: a set with a failed member; its error has no secret.
        let opts = DatastoreBackupOptions {
            all: true,
            jobs: 2,
            zstd_level: Some(4),
            ..Default::default()
        };
        let DatastoresBackup::Set(set) = backup_datastores(&ctx, &opts).await.unwrap() else {
            panic!("a set")
        };
        assert!(!set.ok);
        assert_eq!(set.failed(), ["b", "c"]);
        let b = &set.members[1];
        assert_eq!(b.code, Some(6));
        assert!(
            !b.error.as_deref().unwrap().contains("pw-secret-1"),
            "{b:?}"
        );
        assert_eq!(set.failure().unwrap().kind().exit_code(), 10);
        let back = super::super::set::read_set(&ctx.store, &set.set_id)
            .await
            .unwrap();
        let a = back.members[0].backup_id.clone().unwrap();
        let m = ctx.store.manifest(&a).await.unwrap();
        assert_eq!(m.labels[SET_LABEL], set.set_id.to_string());
        assert_eq!(zstd_level(&m), Some(4));
        // No datastore named: the error says what to name.
        let e = backup_datastores(&ctx, &DatastoreBackupOptions::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--all"), "{e}");
    }

    #[test]
    fn bytes_for_humans() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
