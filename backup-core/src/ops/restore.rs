//! Restores: into a database (through the backup's driver), a file or standard output;
//! into a datastore of the config file; every member of a backup set.
//!
//! Safety: a datastore whose config says `environment = "production"` is restored into
//! only when confirmed by name (`confirm_production`, or the name typed at the
//! front-end's prompt), else [`crate::ErrorKind::Refused`]; before `replace` a safety
//! backup of the target is taken with the kind's own driver, verified at level 1 and
//! its id announced ([`super::Notice::Important`]) before the target is touched;
//! `dry_run` returns the plan and touches nothing. Target settings the backup's driver
//! does not support are refused before anything happens
//! ([`crate::Registry::check_target`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::{missing_config_message, Config};
use super::set::read_set;
use super::{parse_id, read_passphrase, refused, KeyOptions, Notice, OpContext};
use crate::driver::{BackupContext, DriverOptions, RestoreContext, RestoreOutcome, RestoreTarget};
use crate::error::{Error, ErrorKind, Result};
use crate::id::BackupId;
use crate::keys::{Decryption, Encryption};
use crate::manifest::{DatastoreRef, Manifest};
use crate::pipeline::{BackupOptions, RestoreOptions};
use crate::secret::{redact_url, SecretString};
use crate::sink::{SinkReport, WriterSink};
use crate::store::VerificationRecord;
use crate::transform::TransformSpec;

/// The label a safety backup carries, with the id of the backup restored over it.
pub const SAFETY_LABEL: &str = "dbseal.safety-backup-before-restore-of";

/// How and where to restore a backup (`dbseal restore ID`, `restore --set ID`).
///
/// Python builds it from keywords; `keys` and `target` are nested tables
/// (`{"target": {"url": …, "replace": true}}`).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreBackupOptions {
    /// Restore into this datastore of the config file (its URL and password from there).
    #[arg(
        long,
        short = 'd',
        value_name = "NAME",
        conflicts_with_all = ["url", "output", "to_stdout", "to_rdb"]
    )]
    pub datastore: Option<String>,
    /// Confirm a restore into a production datastore by naming it (repeatable, for
    /// sets). Without it a production target is refused (exit 8), unless the name is
    /// typed at the prompt on a terminal.
    #[arg(long, value_name = "NAME")]
    pub confirm_production: Vec<String>,
    /// With --replace: do not take a safety backup of the target first.
    #[arg(long)]
    pub no_safety_backup: bool,
    /// Write the plaintext native stream (pg_dump archive, RDB file...) to stdout.
    #[arg(long, conflicts_with_all = ["output", "url"])]
    pub to_stdout: bool,
    /// Write the plaintext native stream to this file (created when the whole artifact
    /// was checked, mode 0600; an existing file is refused).
    #[arg(long, short = 'o', conflicts_with = "url")]
    pub output: Option<PathBuf>,
    /// Print what would be read and written, and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyOptions,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: RestoreTarget,
}

impl RestoreBackupOptions {
    /// Whether the restore writes into a database (not a file or stdout).
    pub fn writes_database(&self) -> bool {
        !self.to_stdout && self.output.is_none() && self.target.to_rdb.is_none()
    }
}

/// Where a restore goes, resolved from the options and the config file.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    /// The target with the configured URL filled in.
    pub target: RestoreTarget,
    /// The configured datastore the target is, if any.
    pub name: Option<String>,
    /// Whether that datastore is marked production.
    pub production: bool,
    /// Whether the restore writes into a database (not a file or stdout).
    pub writes_database: bool,
    /// The target URL (a secret: may hold a password).
    url: Option<SecretString>,
}

impl TargetPlan {
    /// Where the backup would go, without credentials.
    pub fn describe(&self, manifest: &Manifest, options: &RestoreBackupOptions) -> String {
        if options.to_stdout {
            "standard output".to_string()
        } else if let Some(o) = &options.output {
            o.display().to_string()
        } else if let Some(r) = &self.target.to_rdb {
            r.display().to_string()
        } else {
            let url = self
                .target
                .url
                .as_deref()
                .map(redact_url)
                .unwrap_or_else(|| {
                    format!(
                        "the {} target from the environment",
                        manifest.datastore.kind
                    )
                });
            match &self.name {
                Some(n) => format!("datastore `{n}` ({url})"),
                None => url,
            }
        }
    }
}

/// Resolves where `manifest` is restored to: a configured datastore (checked to be of a
/// compatible kind), or a URL that may be one (production or not), or a file. Target
/// settings the backup's driver does not support are refused here.
pub fn plan_target(
    ctx: &OpContext,
    options: &RestoreBackupOptions,
    manifest: &Manifest,
) -> Result<TargetPlan> {
    plan_target_checked(ctx, options, manifest, true)
}

/// [`plan_target`]; `check_target` off for the members of a set, where target settings
/// apply to the members whose kind has them (`--db` to Redis, `--database` to Neo4j).
fn plan_target_checked(
    ctx: &OpContext,
    options: &RestoreBackupOptions,
    manifest: &Manifest,
    check_target: bool,
) -> Result<TargetPlan> {
    manifest.check_sealed()?;
    let mut plan = TargetPlan {
        target: options.target.clone(),
        name: None,
        production: false,
        writes_database: options.writes_database(),
        url: options.target.url.clone().map(SecretString::new),
    };
    let config = ctx.config.as_deref();
    if let Some(name) = &options.datastore {
        let config = config.ok_or_else(|| {
            Error::Config(missing_config_message(&format!(
                "--datastore {name} reads the config file"
            )))
        })?;
        let ds = config.datastore(name)?;
        let backup_kind = manifest.datastore.kind.as_str();
        if !compatible_kinds(ctx, &ds.kind, backup_kind) {
            return Err(Error::Config(format!(
                "backup {} is a {backup_kind} backup, datastore `{name}` is {}",
                manifest.backup_id, ds.kind
            )));
        }
        let url = config.connection_url(name)?;
        plan.target.url = Some(url.expose().to_string());
        plan.url = Some(url);
        plan.name = Some(name.to_string());
        plan.production = ds.is_production();
    } else if let (Some(url), Some(config)) = (&options.target.url, config) {
        if plan.writes_database {
            if let Some((name, ds)) = config.datastore_for_url(url) {
                plan.name = Some(name.to_string());
                plan.production = ds.is_production();
            }
        }
    }
    if plan.writes_database && check_target {
        ctx.registry
            .check_target(manifest, &plan.target)
            .map_err(|e| ctx.scrub_error(e))?;
    }
    Ok(plan)
}

/// Whether a datastore of kind `datastore` can receive a backup of kind `backup`: the
/// same kind, a driver that says it restores the other's backups, or drivers of the
/// same servers (sharing a URL scheme, as PostgreSQL and TimescaleDB do).
fn compatible_kinds(ctx: &OpContext, datastore: &str, backup: &str) -> bool {
    if datastore == backup {
        return true;
    }
    let (Some(d), Some(b)) = (ctx.registry.get(datastore), ctx.registry.get(backup)) else {
        return false;
    };
    d.restores_kind(backup)
        || b.restores_kind(datastore)
        || d.url_schemes().iter().any(|s| b.url_schemes().contains(s))
}

/// The production guard: refuses a restore into production datastore `name` unless
/// `confirmations` name it or the front-end's prompt returns its name.
pub fn confirm_production(ctx: &OpContext, name: &str, confirmations: &[String]) -> Result<()> {
    if confirmations.iter().any(|c| c == name) {
        return Ok(());
    }
    let how = format!(
        "pass --confirm-production {name} (or run on a terminal and type `{name}` at the prompt)"
    );
    if !confirmations.is_empty() {
        return Err(refused(format!(
            "datastore `{name}` is marked production and --confirm-production names {} instead: {how}",
            confirmations.join(", ")
        )));
    }
    match ctx.frontend.confirm_production(name) {
        Some(typed) if typed.trim() == name => Ok(()),
        Some(_) => Err(refused(format!(
            "restore into production datastore `{name}` not confirmed (the typed name did not match)"
        ))),
        None => Err(refused(format!(
            "refusing to restore into datastore `{name}`: it is marked environment = \"production\" in the config file; to confirm, {how}"
        ))),
    }
}

/// The encryption of a safety backup, only ever from the restoring side (never from the
/// manifest: a forged one would name the forger's key): `$DBSEAL_RECIPIENTS`, else the
/// config's recipients, else the public keys of the identities this restore decrypts
/// with (`decryption`, already loaded from `keys`), else the passphrase in use.
fn safety_encryption(
    config: Option<&Config>,
    keys: &KeyOptions,
    decryption: Option<&Decryption>,
) -> Result<Encryption> {
    if let Ok(env) = std::env::var("DBSEAL_RECIPIENTS") {
        let r: Vec<String> = env
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !r.is_empty() {
            return Encryption::parse_recipients(&r);
        }
    }
    if let Some(c) = config {
        if !c.encryption.recipients.is_empty() {
            return Encryption::parse_recipients(&c.encryption.recipients);
        }
    }
    if let Some(d) = decryption.filter(|d| !d.recipients().is_empty()) {
        return Encryption::parse_recipients(d.recipients());
    }
    if let Some(p) = &keys.passphrase_file {
        return Ok(Encryption::Passphrase(read_passphrase(p)?));
    }
    Err(Error::Config(
        "a safety backup needs recipients of this host's own (never the backup's): set [encryption] recipients in the config file or DBSEAL_RECIPIENTS, restore with an age identity (its public key is used), or pass --no-safety-backup".into(),
    ))
}

/// The datastore a safety backup of this target goes to.
pub fn safety_datastore(plan: &TargetPlan, manifest: &Manifest) -> String {
    plan.name
        .clone()
        .unwrap_or_else(|| format!("{}.safety", manifest.datastore.name))
}

/// Whether a restore of `manifest` to `plan` with these options replaces a database
/// whose kind has a driver (so a safety backup applies unless `no_safety_backup`).
fn replaces_database(ctx: &OpContext, plan: &TargetPlan, manifest: &Manifest) -> bool {
    plan.target.replace
        && plan.writes_database
        && ctx.registry.get(&manifest.datastore.kind).is_some()
}

/// Takes a safety backup of the target before it is replaced and records a level-1
/// verification of it, so retention treats it like any verified backup. `None` when
/// the target does not exist yet or the kind has no driver.
pub async fn safety_backup(
    ctx: &OpContext,
    plan: &TargetPlan,
    manifest: &Manifest,
    keys: &KeyOptions,
    decryption: Option<&Decryption>,
) -> Result<Option<Manifest>> {
    let Some(driver) = ctx.registry.get(&manifest.datastore.kind) else {
        return Ok(None);
    };
    let config = ctx.config.as_deref();
    let datastore = safety_datastore(plan, manifest);
    let mut options = BackupOptions::new(
        datastore.clone(),
        safety_encryption(config, keys, decryption)?,
    );
    options.zstd_level = config
        .and_then(|c| c.zstd_level)
        .unwrap_or(super::backup::DEFAULT_ZSTD_LEVEL);
    options
        .labels
        .insert(SAFETY_LABEL.into(), manifest.backup_id.to_string());
    if plan.production {
        options
            .labels
            .insert("environment".into(), "production".into());
    }
    options.progress = ctx.frontend.progress("safety backup");
    let mut driver_options = DriverOptions::new();
    if let Some(url) = &plan.url {
        driver_options.set("url", url.expose());
    }
    // The database the restore replaces, where the URL does not name it (Neo4j; a set's
    // `--database` reaches its other kinds' members too, which have no such option).
    if let Some(db) = plan
        .target
        .database
        .as_ref()
        .filter(|_| driver.capabilities().named_database)
    {
        driver_options.set("database", db.as_str());
    }
    ctx.info(format!(
        "taking a safety backup of the target into datastore `{datastore}` before replacing it"
    ));
    let bctx = BackupContext {
        store: ctx.store.clone(),
        options: options.with_cancel(ctx.cancel.clone()),
    };
    let safety = match driver.backup(&driver_options, &bctx).await {
        Ok(m) => m,
        // The target does not exist yet (e.g. create_db): there is nothing to keep.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            ctx.info(format!(
                "no safety backup: the target does not exist yet ({})",
                ctx.scrub(&e.to_string())
            ));
            return Ok(None);
        }
        Err(e) => {
            return Err(e.with_message(ctx.scrub(&format!(
                "could not take a safety backup of the target, so it was not touched: {e} (fix it, or pass --no-safety-backup to replace the target without one)"
            ))))
        }
    };
    let check = crate::verify::verify_stored(&ctx.store, &safety).await?;
    let record = VerificationRecord::new(
        &safety.datastore.name,
        &safety.backup_id,
        "stored",
        true,
        check.checks.join("; "),
    );
    ctx.store.put_verification(&record).await?;
    let again = match (&plan.name, plan.production) {
        (Some(n), true) => format!("--datastore {n} --replace --confirm-production {n}"),
        (Some(n), false) => format!("--datastore {n} --replace"),
        (None, _) => "--url URL --replace".to_string(),
    };
    ctx.frontend.notice(Notice::Important(format!(
        "safety backup {} of the target committed (datastore `{}`); to undo this restore: dbseal restore {} {again}",
        safety.backup_id, safety.datastore.name, safety.backup_id
    )));
    Ok(Some(safety))
}

/// After a replace that failed past its own undo (`RestoreContext::altered`): restores
/// the safety backup taken before it into the same target, and returns the restore's
/// error saying whether the target's old contents are back.
async fn put_back(
    ctx: &OpContext,
    driver: &dyn crate::driver::Driver,
    plan: &TargetPlan,
    safety: &Manifest,
    failed: &RestoreContext,
    error: Error,
) -> Error {
    ctx.info(format!(
        "the restore failed after the target's old contents were removed: putting them back from safety backup {}",
        safety.backup_id
    ));
    let rctx = RestoreContext {
        store: ctx.store.clone(),
        options: RestoreOptions {
            decryption: failed.options.decryption.clone(),
            progress: ctx.frontend.progress("putting the target back"),
        },
        // Putting the old contents back is not interrupted by the signal that may have
        // caused the failure: stopping it would leave the target empty.
        cancel: tokio_util::sync::CancellationToken::new(),
        altered: Default::default(),
    };
    let mut target = plan.target.clone();
    target.replace = true;
    let note = match driver.restore(safety, &target, &rctx).await {
        Ok(_) => format!(
            "the target's old contents were put back from safety backup {} automatically",
            safety.backup_id
        ),
        Err(e) => format!(
            "putting the target's old contents back from safety backup {id} failed too ({e}): restore it with `dbseal restore {id} --replace` to the same target",
            id = safety.backup_id
        ),
    };
    let message = format!("{error}; {note}");
    error.with_message(ctx.scrub(&message))
}

/// One artifact a restore reads.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRead {
    /// Its object key.
    pub key: String,
    /// Its stored size.
    pub stored_size: u64,
}

/// What a restore would do (`dry_run`).
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// Always true.
    pub dry_run: bool,
    /// The backup.
    pub backup_id: BackupId,
    /// Its datastore (name and kind).
    pub datastore: DatastoreRef,
    /// What would be read.
    pub read: Vec<PlannedRead>,
    /// Where it would go (without credentials).
    pub target: String,
    /// The configured datastore that target is, if any.
    pub target_datastore: Option<String>,
    /// Whether that datastore is production.
    pub production: bool,
    /// Whether the restore would be refused without a confirmation.
    pub needs_confirmation: bool,
    /// The datastore a safety backup of the target would go to.
    pub safety_backup_into: Option<String>,
    /// Whether the target database would be created.
    pub create_db: bool,
    /// Whether the target's contents would be replaced.
    pub replace: bool,
    /// A safety backup would apply but `no_safety_backup` skips it.
    #[serde(skip)]
    pub safety_skipped: bool,
}

/// The plan of restoring `manifest` to `plan`.
pub fn dry_run_plan(
    ctx: &OpContext,
    options: &RestoreBackupOptions,
    plan: &TargetPlan,
    manifest: &Manifest,
) -> RestorePlan {
    let replaces = replaces_database(ctx, plan, manifest);
    RestorePlan {
        dry_run: true,
        backup_id: manifest.backup_id.clone(),
        datastore: manifest.datastore.clone(),
        read: manifest
            .artifacts()
            .map(|a| PlannedRead {
                key: a.key.clone(),
                stored_size: a.stored_size,
            })
            .collect(),
        target: plan.describe(manifest, options),
        target_datastore: plan.name.clone(),
        production: plan.production,
        needs_confirmation: plan.production
            && !plan
                .name
                .as_ref()
                .is_some_and(|n| options.confirm_production.contains(n)),
        safety_backup_into: (replaces && !options.no_safety_backup)
            .then(|| safety_datastore(plan, manifest)),
        create_db: plan.target.create_db,
        replace: plan.target.replace,
        safety_skipped: replaces && options.no_safety_backup,
    }
}

/// A finished restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The backup restored.
    pub backup_id: BackupId,
    /// Where it went (without credentials).
    pub target: String,
    /// Lines for the user.
    pub summary: Vec<String>,
    /// The safety backup of the previous contents, if one was taken.
    pub safety_backup: Option<BackupId>,
    /// The datastore of that safety backup.
    #[serde(skip)]
    pub safety_datastore: Option<String>,
    /// The restore went to standard output (then there is nothing to print).
    #[serde(skip)]
    pub to_stdout: bool,
}

/// The result of `restore ID`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RestoreResult {
    /// `dry_run`: what would happen.
    DryRun(RestorePlan),
    /// What happened.
    Restored(RestoreReport),
}

/// `dbseal restore ID`: into a database, a configured datastore, a file or stdout.
pub async fn restore_backup(
    ctx: &OpContext,
    id: &str,
    options: &RestoreBackupOptions,
) -> Result<RestoreResult> {
    let manifest = ctx.store.manifest(&parse_id(id)?).await?;
    let plan = plan_target(ctx, options, &manifest)?;
    if options.dry_run {
        return Ok(RestoreResult::DryRun(dry_run_plan(
            ctx, options, &plan, &manifest,
        )));
    }
    if let (true, Some(name)) = (plan.production, &plan.name) {
        confirm_production(ctx, name, &options.confirm_production)?;
    }
    restore_one(ctx, options, &plan, &manifest)
        .await
        .map(RestoreResult::Restored)
}

/// Restores one backup into its planned (and confirmed) target, after the safety
/// backup when the target is replaced.
pub async fn restore_one(
    ctx: &OpContext,
    options: &RestoreBackupOptions,
    plan: &TargetPlan,
    manifest: &Manifest,
) -> Result<RestoreReport> {
    let keys = options.keys.or_config(ctx.config.as_deref());
    // Keys first: a restore that cannot decrypt must fail before the safety backup.
    let decryption = keys.decryption()?;
    let recorded: Vec<String> = manifest
        .transforms
        .iter()
        .flat_map(|t| match t {
            TransformSpec::Age { recipients, .. } => recipients.clone(),
            _ => Vec::new(),
        })
        .collect();
    if let Some(d) = decryption
        .as_deref()
        .filter(|d| d.matches_none_of(&recorded))
    {
        return Err(Error::Decryption {
            id: manifest.backup_id.to_string(),
            key: manifest.artifact.key.clone(),
            reason: format!(
                "none of the given identities ({}) is a recipient of this backup (it was encrypted to {}); nothing was touched",
                d.recipients().join(", "),
                recorded.join(", ")
            ),
        });
    }
    let safety = if plan.target.replace && !options.no_safety_backup && plan.writes_database {
        safety_backup(ctx, plan, manifest, &keys, decryption.as_deref()).await?
    } else {
        None
    };
    let restore_options = RestoreOptions {
        decryption,
        progress: ctx.frontend.progress("restore"),
    };
    let outcome = if let Some(path) = &options.output {
        let report = restore_to_file(ctx, manifest, "data", path, false, &restore_options).await?;
        RestoreOutcome {
            target: path.display().to_string(),
            summary: report.summary,
        }
    } else if options.to_stdout {
        let mut sink = WriterSink::new(tokio::io::stdout());
        let report =
            crate::pipeline::restore(&ctx.store, manifest, "data", &mut sink, &restore_options)
                .await?;
        RestoreOutcome {
            target: "stdout".into(),
            summary: report.summary,
        }
    } else {
        let driver = ctx.registry.driver_for(manifest)?;
        let rctx = RestoreContext {
            store: ctx.store.clone(),
            options: restore_options,
            cancel: ctx.cancel.clone(),
            altered: Default::default(),
        };
        let restored = driver.restore(manifest, &plan.target, &rctx).await;
        let restored = match (restored, &safety) {
            (Err(e), Some(safety)) if rctx.altered.is_marked() => {
                Err(put_back(ctx, driver.as_ref(), plan, safety, &rctx, e).await)
            }
            (r, _) => r,
        };
        let mut o = restored.map_err(|e| ctx.scrub_error(e))?;
        if let Some(n) = &plan.name {
            o.target = format!("datastore `{n}` ({})", o.target);
        }
        o
    };
    Ok(RestoreReport {
        backup_id: manifest.backup_id.clone(),
        target: outcome.target,
        summary: outcome.summary,
        safety_backup: safety.as_ref().map(|m| m.backup_id.clone()),
        safety_datastore: safety.map(|m| m.datastore.name),
        to_stdout: options.to_stdout,
    })
}

/// Restores the plaintext native stream of artifact `artifact` into the file `path`,
/// atomically: a private (0600) temporary file in the same directory, renamed into
/// place only when the whole artifact was checked. On any failure (or cancellation)
/// nothing is left behind. An existing `path` is refused unless `overwrite`.
pub async fn restore_to_file(
    ctx: &OpContext,
    manifest: &Manifest,
    artifact: &str,
    path: &Path,
    overwrite: bool,
    options: &RestoreOptions,
) -> Result<SinkReport> {
    if !overwrite && path.exists() {
        return Err(refused(format!(
            "cannot create {}: the file already exists (remove it or choose another path)",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Config(format!("{} is not a file path", path.display())))?;
    let partial = dir.join(format!(".{name}.dbseal-partial-{}", std::process::id()));
    let file = crate::fsutil::private_file(&partial)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", path.display())))?;
    // Removes the partial file on every early return, panic or cancellation.
    struct Partial(Option<PathBuf>);
    impl Drop for Partial {
        fn drop(&mut self) {
            if let Some(p) = self.0.take() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let mut guard = Partial(Some(partial.clone()));
    let mut file = tokio::fs::File::from_std(file);
    let report = {
        let mut sink = WriterSink::new(&mut file).to(path.display().to_string());
        let mut sink = crate::sink::CancellableSink::new(&mut sink, ctx.cancel.clone());
        crate::pipeline::restore(&ctx.store, manifest, artifact, &mut sink, options).await?
    };
    file.sync_all()
        .await
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    drop(file);
    if !overwrite && path.exists() {
        return Err(refused(format!(
            "cannot create {}: the file appeared during the restore",
            path.display()
        )));
    }
    std::fs::rename(&partial, path).map_err(|e| {
        Error::io(
            format!("cannot move the restored file to {}", path.display()),
            e,
        )
    })?;
    guard.0 = None;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(report)
}

/// What restoring a backup set would do.
#[derive(Debug, Clone, Serialize)]
pub struct SetRestorePlan {
    /// Always true.
    pub dry_run: bool,
    /// The set.
    pub set_id: BackupId,
    /// Each member's plan.
    pub members: Vec<RestorePlan>,
}

/// One member of a restored set.
#[derive(Debug, Clone, Serialize)]
pub struct SetMemberRestore {
    /// The datastore restored into.
    pub datastore: Option<String>,
    /// The backup restored.
    pub backup_id: BackupId,
    /// Where it went (without credentials).
    pub target: String,
    /// Lines for the user.
    pub summary: Vec<String>,
    /// The safety backup of the previous contents, if one was taken.
    pub safety_backup: Option<BackupId>,
}

/// A restored backup set.
#[derive(Debug, Clone, Serialize)]
pub struct SetRestoreReport {
    /// The set.
    pub set_id: BackupId,
    /// Its members, in order.
    pub restored: Vec<SetMemberRestore>,
}

/// The result of `restore --set ID`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SetRestoreResult {
    /// `dry_run`: what would happen.
    DryRun(SetRestorePlan),
    /// What happened.
    Restored(SetRestoreReport),
}

/// `dbseal restore --set ID`: every member into its configured datastore. Every member
/// is resolved, checked and confirmed before any target is touched.
pub async fn restore_set(
    ctx: &OpContext,
    set_id: &str,
    options: &RestoreBackupOptions,
) -> Result<SetRestoreResult> {
    ctx.require_config("--set restores into the datastores of the config file")?;
    let id = parse_id(set_id)?;
    let set = read_set(&ctx.store, &id).await?;
    if !set.ok {
        return Err(refused(format!(
            "backup set {id} is incomplete ({} failed): restore its good members one by one with `dbseal restore ID --datastore NAME`",
            set.failed().join(", ")
        )));
    }
    let mut members = Vec::new();
    for m in &set.members {
        let backup_id = m.backup_id.clone().ok_or_else(|| {
            Error::operation(
                ErrorKind::Verification,
                format!("backup set {id}: member `{}` has no backup id", m.datastore),
            )
        })?;
        let manifest = ctx.store.manifest(&backup_id).await?;
        let member_options = RestoreBackupOptions {
            datastore: Some(m.datastore.clone()),
            ..options.clone()
        };
        let plan = plan_target_checked(ctx, &member_options, &manifest, false)?;
        members.push((manifest, plan, member_options));
    }
    if options.dry_run {
        return Ok(SetRestoreResult::DryRun(SetRestorePlan {
            dry_run: true,
            set_id: id,
            members: members
                .iter()
                .map(|(m, p, o)| dry_run_plan(ctx, o, p, m))
                .collect(),
        }));
    }
    for (_, plan, _) in &members {
        if let (true, Some(name)) = (plan.production, &plan.name) {
            confirm_production(ctx, name, &options.confirm_production)?;
        }
    }
    let mut restored = Vec::new();
    for (manifest, plan, member_options) in &members {
        let name = plan.name.as_deref().unwrap_or("");
        let report = restore_one(ctx, member_options, plan, manifest)
            .await
            .map_err(|e| {
                e.with_message(format!(
                    "backup set {id}: restoring {} into `{name}` failed (members before it were restored): {e}",
                    manifest.backup_id
                ))
            })?;
        ctx.info(format!("  {name}: restored {}", manifest.backup_id));
        restored.push(SetMemberRestore {
            datastore: plan.name.clone(),
            backup_id: manifest.backup_id.clone(),
            target: report.target,
            summary: report.summary,
            safety_backup: report.safety_backup,
        });
    }
    Ok(SetRestoreResult::Restored(SetRestoreReport {
        set_id: id,
        restored,
    }))
}

#[cfg(test)]
mod tests;
