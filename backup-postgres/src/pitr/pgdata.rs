//! `dbseal restore ID --pgdata DIR --latest|--target-…`: a physical backup unpacked
//! into a data directory with the recovery settings that make PostgreSQL fetch its WAL
//! through `dbseal wal-fetch`.

use std::path::{Path, PathBuf};

use backup_core::manifest::DatastoreRef;
use backup_core::{BackupId, Error, Manifest, Result, SecretString};
use serde::{Deserialize, Serialize};

use super::{credential_prefix, is_local, KeyFiles, StoreLocation, WalSettings};
use crate::physical::{self, restore_env_path, PhysicalRestore, RecoveryTarget, TargetAction};
use crate::wal::Lsn;

/// Point-in-time restore flags of `dbseal restore` (flattened into its target flags).
#[derive(clap::Args, Deserialize, Debug, Clone, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PitrOptions {
    /// PostgreSQL physical backups: unpack into this data directory (absent or empty)
    /// and write the recovery settings; then start PostgreSQL on it.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["url", "output", "to_stdout", "to_rdb", "set"])]
    pub pgdata: Option<PathBuf>,
    /// Recover up to this time (e.g. '2026-11-21 14:30:00+00'); give a time zone.
    #[arg(long, requires = "pgdata")]
    pub target_time: Option<String>,
    /// Recover up to this WAL location (e.g. 0/16B3748).
    #[arg(long, requires = "pgdata")]
    pub target_lsn: Option<String>,
    /// Recover up to this restore point (pg_create_restore_point).
    #[arg(long, requires = "pgdata")]
    pub target_name: Option<String>,
    /// Recover all archived WAL.
    #[arg(long, requires = "pgdata")]
    pub latest: bool,
    /// Stop as soon as the backup is consistent.
    #[arg(long, requires = "pgdata")]
    pub target_immediate: bool,
    /// What PostgreSQL does at the target: promote (default), pause or shutdown.
    #[arg(long, value_enum, requires = "pgdata")]
    pub target_action: Option<TargetAction>,
    /// recovery_target_timeline: latest (default), current or a number.
    #[arg(long, requires = "pgdata")]
    pub target_timeline: Option<String>,
    /// Let the restored cluster archive its WAL into this datastore's archive
    /// (archive_command = dbseal wal-push; recipients from DBSEAL_RECIPIENTS). Without
    /// it archiving is off: the source's archive_command, primary_conninfo and recovery
    /// settings are overridden, never inherited.
    #[arg(long, value_name = "DATASTORE", requires = "pgdata")]
    pub archive_to: Option<String>,
}

impl PitrOptions {
    /// The one recovery target given; a config error when none or several are.
    pub fn recovery_target(&self) -> Result<RecoveryTarget> {
        let mut targets = Vec::new();
        if self.latest {
            targets.push(RecoveryTarget::Latest);
        }
        if self.target_immediate {
            targets.push(RecoveryTarget::Immediate);
        }
        if let Some(t) = &self.target_time {
            targets.push(RecoveryTarget::Time(t.clone()));
        }
        if let Some(l) = &self.target_lsn {
            let lsn: Lsn = l.parse().map_err(|e: Error| Error::Config(e.to_string()))?;
            targets.push(RecoveryTarget::Lsn(lsn));
        }
        if let Some(n) = &self.target_name {
            targets.push(RecoveryTarget::Name(n.clone()));
        }
        match (targets.pop(), targets.is_empty()) {
            (Some(target), true) => Ok(target),
            (None, _) => Err(Error::Config(
                "--pgdata needs a recovery target: --latest, --target-time TS, --target-lsn LSN, --target-name NAME or --target-immediate".into(),
            )),
            (Some(_), false) => Err(Error::Config(
                "give only one of --latest, --target-time, --target-lsn, --target-name, --target-immediate".into(),
            )),
        }
    }

    /// The data directory, absolute.
    pub fn pgdata_dir(&self) -> Result<PathBuf> {
        self.pgdata
            .as_deref()
            .map(absolute)
            .ok_or_else(|| Error::Config("a physical restore needs --pgdata DIR".into()))
    }
}

/// One object a dry run would read.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRead {
    /// The object key.
    pub key: String,
    /// Its stored size.
    pub stored_size: u64,
}

/// What `dbseal restore --pgdata … --dry-run` would do.
#[derive(Debug, Clone, Serialize)]
pub struct PgdataRestorePlan {
    /// Always `true`.
    pub dry_run: bool,
    /// The backup.
    pub backup_id: BackupId,
    /// Its datastore.
    pub datastore: DatastoreRef,
    /// What would be read.
    pub read: Vec<PlannedRead>,
    /// The data directory (absolute).
    pub pgdata: PathBuf,
    /// The recovery target.
    pub target: RecoveryTarget,
}

impl PgdataRestorePlan {
    /// The plan as printed for people.
    pub fn to_text(&self) -> String {
        let stored = self.read.first().map_or(0, |r| r.stored_size);
        format!(
            "dry run: would unpack physical backup {} ({} bytes stored) into {} (which must be empty or absent), write recovery.signal and restore_command = dbseal wal-fetch --datastore {} with target {:?}\nnothing was changed",
            self.backup_id,
            stored,
            self.pgdata.display(),
            self.datastore.name,
            self.target
        )
    }
}

/// What [`restore_pgdata`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PgdataRestoreReport {
    /// The backup restored.
    pub backup_id: BackupId,
    /// The data directory.
    pub target: String,
    /// Lines for the user: what was written, what to do next, warnings.
    pub summary: Vec<String>,
}

impl PgdataRestoreReport {
    /// The report as printed for people.
    pub fn to_text(&self) -> String {
        let mut s = format!("restored backup {} into {}\n", self.backup_id, self.target);
        for line in &self.summary {
            s.push_str(&format!("  {line}\n"));
        }
        s
    }
}

/// The dry run of [`restore_pgdata`]: checks the target flags and that `manifest` is a
/// physical backup; touches nothing.
pub fn plan_pgdata_restore(manifest: &Manifest, pitr: &PitrOptions) -> Result<PgdataRestorePlan> {
    let target = pitr.recovery_target()?;
    physical::base_backup_wal(manifest)?;
    Ok(PgdataRestorePlan {
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
        pgdata: pitr.pgdata_dir()?,
        target,
    })
}

/// What `restore ID --pgdata DIR` did: the plan of a dry run, or the restore.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PgdataOutcome {
    /// `--dry-run`: nothing was touched.
    Planned(PgdataRestorePlan),
    /// The data directory was written.
    Restored(PgdataRestoreReport),
}

impl PgdataOutcome {
    /// The outcome as printed for people.
    pub fn to_text(&self) -> String {
        match self {
            PgdataOutcome::Planned(p) => p.to_text(),
            PgdataOutcome::Restored(r) => r.to_text(),
        }
    }
}

/// `dbseal restore ID --pgdata DIR …` and Python's `restore(pgdata=…)`: the backup `id`
/// planned (`dry_run`) or restored into the data directory with [`restore_pgdata`],
/// decrypted with `keys` (else the configuration's), `restore_command` calling the
/// binary `dbseal` returns and reaching the store at `location`.
pub async fn restore_backup_into_pgdata(
    ctx: &backup_core::ops::OpContext,
    id: &str,
    pitr: &PitrOptions,
    (keys, location): (&backup_core::ops::KeyOptions, &StoreLocation),
    dry_run: bool,
    dbseal: impl FnOnce() -> Result<PathBuf>,
) -> Result<PgdataOutcome> {
    let manifest = backup_core::ops::show(ctx, id).await?;
    manifest.check_sealed()?;
    if dry_run {
        return plan_pgdata_restore(&manifest, pitr).map(PgdataOutcome::Planned);
    }
    let keys = keys.or_config(ctx.config.as_deref());
    let rctx = backup_core::RestoreContext {
        store: ctx.store.clone(),
        options: keys.restore_options(ctx.frontend.progress("restore"))?,
        cancel: ctx.cancel.clone(),
        altered: Default::default(),
    };
    let files = KeyFiles {
        identities: keys.identities.clone(),
        passphrase_file: keys.passphrase_file.clone(),
    };
    restore_pgdata(&rctx, &manifest, pitr, location, &files, &dbseal()?)
        .await
        .map(PgdataOutcome::Restored)
}

/// The running `dbseal` binary, absolute: what `restore_command` calls. (A front-end
/// that is not the `dbseal` binary passes the path of one to [`restore_pgdata`].)
pub fn current_dbseal() -> Result<PathBuf> {
    std::env::current_exe().map(|p| absolute(&p)).map_err(|e| {
        Error::Config(format!(
            "cannot find the dbseal binary for restore_command: {e}"
        ))
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// Whether the user `uid`/`gid` can reach `path` (search permission on every parent
/// directory) and has the `bits` (4: read, 5: read and execute) on it. A root-run
/// restore hands the data directory, and so `restore_command`, to its owner.
fn accessible_by(path: &Path, owner: Option<(u32, u32)>, bits: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((uid, gid)) = owner else { return true };
    if uid == 0 {
        return true;
    }
    let allowed = |m: &std::fs::Metadata, want: u32| {
        let mode = m.mode();
        let granted = if m.uid() == uid {
            (mode >> 6) & 7
        } else if m.gid() == gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        granted & want == want
    };
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    if !allowed(&m, bits) {
        return false;
    }
    path.ancestors()
        .skip(1)
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| allowed(&m, 1)))
}

/// The owner of the data directory (or of its parent) when dbseal runs as root: the
/// user who will run PostgreSQL and so `restore_command`. `None` when not root.
fn restore_owner(pgdata: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    let dir_meta = std::fs::metadata(pgdata)
        .or_else(|_| std::fs::metadata(pgdata.parent().unwrap_or(Path::new("/"))));
    match dir_meta {
        Ok(m) if me == 0 => Some((m.uid(), m.gid())),
        _ => None,
    }
}

/// Restores the physical backup `manifest` into `pitr.pgdata`: unpacks it, writes the
/// recovery settings with `restore_command = DBSEAL wal-fetch …` (`dbseal`: see
/// [`current_dbseal`]) and a 0600 env file with the store settings and identities
/// `restore_command` needs; `ctx.cancel` stops it and leaves the directory as it was.
/// Warns (in the summary) when the data directory's owner
/// cannot read the identities, the store or run `dbseal`.
pub async fn restore_pgdata(
    ctx: &backup_core::RestoreContext,
    manifest: &Manifest,
    pitr: &PitrOptions,
    location: &StoreLocation,
    keys: &KeyFiles,
    dbseal: &Path,
) -> Result<PgdataRestoreReport> {
    let pgdata = pitr.pgdata_dir()?;
    let target = pitr.recovery_target()?;
    let system_identifier: u64 = physical::base_backup_wal(manifest)?.system_identifier;
    let s = WalSettings::resolve(location, None, &[], keys)?;
    if s.identities.is_empty() && s.passphrase_file.is_none() {
        return Err(Error::Config(
            "a physical restore needs --identity (or DBSEAL_IDENTITY): restore_command decrypts every WAL file with it".into(),
        ));
    }
    // The store settings restore_command needs, in a 0600 file beside the data directory
    // (never in it: a base backup of the restored cluster would carry them).
    let store_url = if is_local(&s.store_url) {
        absolute(Path::new(
            s.store_url.strip_prefix("file://").unwrap_or(&s.store_url),
        ))
        .to_string_lossy()
        .into_owned()
    } else {
        s.store_url.clone()
    };
    let mut env = format!(
        "# Written by `dbseal restore {}`: store settings for restore_command (dbseal wal-fetch).\n# Holds credentials if the store needs them: keep it mode 0600, remove it after recovery.\nDBSEAL_STORE={store_url}\n",
        manifest.backup_id
    );
    for (k, v) in &s.store_options {
        env.push_str(&format!("DBSEAL_STORE_OPTION={k}={v}\n"));
    }
    // wal-fetch trusts WAL signed by the keys this restore trusts (public keys only).
    let trust = s.trust.trust()?;
    env.push_str(&format!(
        "DBSEAL_TRUSTED_SIGNERS={}\n",
        trust.backup_signers().join(",")
    ));
    if trust.allows_unsigned() {
        env.push_str("DBSEAL_ALLOW_UNSIGNED=true\n");
    }
    let mut warnings = Vec::new();
    let owner = restore_owner(&pgdata);
    let uid = owner.map_or(0, |o| o.0);
    for id in &s.identities {
        let id = absolute(id);
        if !accessible_by(&id, owner, 4) {
            warnings.push(format!(
                "identity file {} is not readable by uid {uid} (the data directory's owner, who runs restore_command): wal-fetch will fail",
                id.display(),
            ));
        }
        env.push_str(&format!("DBSEAL_IDENTITY={}\n", id.display()));
    }
    if let Some(p) = &s.passphrase_file {
        env.push_str(&format!(
            "DBSEAL_PASSPHRASE_FILE={}\n",
            absolute(p).display()
        ));
    }
    if let Some(prefix) = credential_prefix(&store_url) {
        for (k, v) in std::env::vars() {
            if k.starts_with(prefix) {
                env.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    if !accessible_by(dbseal, owner, 5) {
        warnings.push(format!(
            "{} is not executable by uid {uid} (the data directory's owner, who runs restore_command): install dbseal where that user can run it (e.g. /usr/local/bin) and restore again",
            dbseal.display()
        ));
    }
    if is_local(&store_url) && !accessible_by(Path::new(&store_url), owner, 5) {
        warnings.push(format!(
            "the store {store_url} is not readable by uid {uid} (the data directory's owner, who runs restore_command): wal-fetch will fail"
        ));
    }
    if owner == Some((0, 0)) {
        warnings.push(format!(
            "{} belongs to root: PostgreSQL refuses to run as root; chown -R postgres: it before starting the server, or restore into a directory the postgres user owns",
            pgdata.display()
        ));
    }
    // Archiving from the restored cluster only when asked, into the datastore named.
    let archive_command = match &pitr.archive_to {
        None => None,
        Some(datastore) => {
            backup_core::BackupStore::validate_datastore_name(datastore)?;
            let recipients = std::env::var("DBSEAL_RECIPIENTS").unwrap_or_default();
            if recipients.trim().is_empty() {
                return Err(Error::Config(
                    "--archive-to needs the recipients wal-push encrypts to: set DBSEAL_RECIPIENTS (they are written into the env file beside the data directory)".into(),
                ));
            }
            env.push_str(&format!("DBSEAL_RECIPIENTS={}\n", recipients.trim()));
            Some(physical::wal_push_command(
                dbseal,
                &restore_env_path(&pgdata),
                datastore,
            ))
        }
    };
    let restore_command = physical::wal_fetch_command(
        dbseal,
        Some(&restore_env_path(&pgdata)),
        &manifest.datastore.name,
        system_identifier,
        target == RecoveryTarget::Latest,
    );
    let restore = PhysicalRestore {
        pgdata: pgdata.clone(),
        target,
        action: pitr.target_action.unwrap_or_default(),
        timeline: pitr.target_timeline.clone(),
        restore_command,
        archive_command,
        env_file: Some(SecretString::new(env)),
        cancel: ctx.cancel.clone(),
    };
    let report = physical::restore_physical(&ctx.store, manifest, &restore, &ctx.options).await?;
    let mut summary = report.summary;
    summary.extend(report.warnings.into_iter().map(|w| format!("warning: {w}")));
    summary.extend(warnings.into_iter().map(|w| format!("warning: {w}")));
    Ok(PgdataRestoreReport {
        backup_id: manifest.backup_id.clone(),
        target: pgdata.display().to_string(),
        summary,
    })
}
