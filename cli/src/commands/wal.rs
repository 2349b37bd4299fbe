//! `dbseal wal-push`, `wal-fetch`, `wal-verify`: PostgreSQL's WAL archive for
//! point-in-time recovery, and the `--physical` backup / `--pgdata` restore entry points.
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
//! Values from the env file fill in what neither flags nor the environment set. A
//! relative local store is refused inside a data directory.
//!
//! Exit codes follow what PostgreSQL expects:
//!
//! - `wal-push`: 0 only when the file (or an identical copy) is durably archived; any
//!   failure is non-zero, so PostgreSQL keeps the segment and retries.
//! - `wal-fetch`: 0 when the file was verified and written; **3** when it is not in the
//!   archive (PostgreSQL then ends recovery or tries another timeline); **255** for every
//!   other failure (corrupt or foreign segment, store unreachable, wrong key, a gap with
//!   `--fail-on-gap`): an exit status above 125 makes PostgreSQL abort recovery instead
//!   of taking the failure for the end of the archive and promoting with missing data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::{BackupStore, Decryption, Encryption, Manifest, SecretString};
use backup_postgres::physical::{
    self, PhysicalOptions, PhysicalRestore, PhysicalSource, RecoveryTarget, TargetAction,
    RESTORE_ENV_FILE,
};
use backup_postgres::wal::{
    FetchOptions, FetchOutcome, Lsn, PushOptions, WalArchive, WalVerifyLevel,
};
use backup_postgres::PostgresConfig;
use clap::{Args, ValueEnum};

use crate::common::{KeyArgs, StoreArgs};
use crate::db::{BackupContext, RestoreContext, RestoreOutcome};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// Exit status of `wal-fetch` when the file is not archived (PostgreSQL: "not found").
pub const FETCH_MISSING: i32 = 3;
/// Exit status of `wal-fetch` for any other failure: above 125, so PostgreSQL aborts
/// recovery rather than treating the failure as the end of the archive.
pub const FETCH_FATAL: i32 = 255;

/// Where the store settings of the WAL commands come from besides flags and environment.
#[derive(Args, Debug, Clone, Default)]
pub struct EnvFileArgs {
    /// A KEY=VALUE file (DBSEAL_STORE, DBSEAL_STORE_OPTION=k=v, DBSEAL_RECIPIENTS,
    /// DBSEAL_IDENTITY, DBSEAL_PASSPHRASE_FILE, AWS_*/GOOGLE_*/AZURE_*) filling in what
    /// neither flags nor the environment set. Keep it mode 0600: it may hold secrets.
    #[arg(long, env = "DBSEAL_ENV_FILE", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// `dbseal wal-push`.
#[derive(Args, Debug)]
pub struct WalPushArgs {
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
    #[command(flatten)]
    pub env: EnvFileArgs,
    /// The WAL file: PostgreSQL's %p.
    pub path: PathBuf,
}

/// `dbseal wal-fetch`.
#[derive(Args, Debug)]
pub struct WalFetchArgs {
    /// The datastore whose WAL archive holds the file.
    #[arg(long, short = 'd')]
    pub datastore: String,
    #[command(flatten)]
    pub keys: KeyArgs,
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
    #[command(flatten)]
    pub env: EnvFileArgs,
    /// The WAL file name: PostgreSQL's %f.
    pub file: String,
    /// Where to write it: PostgreSQL's %p.
    pub path: PathBuf,
}

/// Verification depth of `wal-verify`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalLevel {
    /// Listing and per-file manifests: gaps, timelines, system identifiers, sizes.
    Metadata,
    /// Also re-read every stored object and check its SHA-256 (no key needed).
    Stored,
    /// Also decrypt every file, check the plaintext digest and segment headers.
    Content,
}

/// `dbseal wal-verify`.
#[derive(Args, Debug)]
pub struct WalVerifyArgs {
    /// The datastore whose WAL archive is checked.
    #[arg(long, short = 'd')]
    pub datastore: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// How deep to go. Default: `content` with an identity, else `stored`.
    #[arg(long, value_enum)]
    pub level: Option<WalLevel>,
    #[command(flatten)]
    pub env: EnvFileArgs,
}

/// Point-in-time restore flags of `dbseal restore` (flattened into its target flags).
#[derive(Args, Debug, Clone, Default)]
pub struct PitrArgs {
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
    pub target_action: Option<ActionArg>,
    /// recovery_target_timeline: latest (default), current or a number.
    #[arg(long, requires = "pgdata")]
    pub target_timeline: Option<String>,
}

/// `--target-action` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionArg {
    /// End recovery and accept writes.
    Promote,
    /// Pause read-only at the target.
    Pause,
    /// Shut down at the target.
    Shutdown,
}

/// Store, recipients and identities gathered from flags, environment and env file.
struct Settings {
    store_url: String,
    store_options: BTreeMap<String, String>,
    recipients: Vec<String>,
    identities: Vec<PathBuf>,
    passphrase_file: Option<PathBuf>,
}

fn env_values(env: &EnvFileArgs) -> CliResult<Vec<(String, String)>> {
    match &env.env_file {
        None => Ok(Vec::new()),
        Some(p) => Ok(physical::read_env_file(p).map_err(|e| CliError::usage(e.to_string()))?),
    }
}

fn parse_option(kv: &str, origin: &str) -> CliResult<(String, String)> {
    kv.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| CliError::usage(format!("{origin} `{kv}` is not KEY=VALUE")))
}

fn settings(
    store: &StoreArgs,
    env: &EnvFileArgs,
    recipients: &[String],
    keys: Option<&KeyArgs>,
) -> CliResult<Settings> {
    let file = env_values(env)?;
    let get = |k: &str| {
        file.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let store_url = if store.store == "./backups" && std::env::var_os("DBSEAL_STORE").is_none() {
        get("DBSEAL_STORE")
            .pop()
            .unwrap_or_else(|| store.store.clone())
    } else {
        store.store.clone()
    };
    let mut store_options = BTreeMap::new();
    let scheme_prefix = match store_url.split_once("://").map(|(s, _)| s) {
        Some("s3") | Some("s3a") => Some("AWS_"),
        Some("gs") => Some("GOOGLE_"),
        Some("az") | Some("azure") | Some("abfs") | Some("abfss") => Some("AZURE_"),
        _ => None,
    };
    for (k, v) in &file {
        if scheme_prefix.is_some_and(|p| k.starts_with(p)) {
            store_options.insert(k.to_ascii_lowercase(), v.clone());
        }
    }
    for kv in get("DBSEAL_STORE_OPTION") {
        let (k, v) = parse_option(&kv, "DBSEAL_STORE_OPTION")?;
        store_options.insert(k, v);
    }
    for kv in &store.store_options {
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
    let (mut identities, mut passphrase_file) = match keys {
        Some(k) => (k.identities.clone(), k.passphrase_file.clone()),
        None => (Vec::new(), None),
    };
    if identities.is_empty() {
        identities = get("DBSEAL_IDENTITY")
            .into_iter()
            .map(PathBuf::from)
            .collect();
    }
    if passphrase_file.is_none() {
        passphrase_file = get("DBSEAL_PASSPHRASE_FILE").pop().map(PathBuf::from);
    }
    Ok(Settings {
        store_url,
        store_options,
        recipients,
        identities,
        passphrase_file,
    })
}

fn is_local(url: &str) -> bool {
    url.starts_with("file://") || !url.contains("://")
}

impl Settings {
    /// Opens the store for WAL (local directories with fsync). Refuses a relative local
    /// store inside a PostgreSQL data directory: archive_command runs there, and the
    /// default `./backups` would put the archive inside the cluster it protects.
    fn open(&self) -> CliResult<BackupStore> {
        let path = self
            .store_url
            .strip_prefix("file://")
            .unwrap_or(&self.store_url);
        if is_local(&self.store_url)
            && Path::new(path).is_relative()
            && Path::new("PG_VERSION").is_file()
        {
            return Err(CliError::usage(format!(
                "the store is the relative path `{path}` and this is a PostgreSQL data directory (archive_command and restore_command run there): set --store or DBSEAL_STORE (or DBSEAL_STORE in --env-file) to an absolute path or a URL"
            )));
        }
        Ok(backup_postgres::wal::open_store(
            &self.store_url,
            &self.store_options,
        )?)
    }

    fn decryption(&self) -> CliResult<Option<Arc<Decryption>>> {
        KeyArgs {
            identities: self.identities.clone(),
            passphrase_file: self.passphrase_file.clone(),
        }
        .decryption()
    }
}

/// Runs `dbseal wal-push`.
pub async fn run_push(args: &WalPushArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let s = settings(store, &args.env, &args.recipients, None)?;
    if s.recipients.is_empty() {
        return Err(CliError::usage(
            "wal-push needs recipients: --recipient age1…, DBSEAL_RECIPIENTS in the server's environment, or DBSEAL_RECIPIENTS in --env-file",
        ));
    }
    let encryption = Encryption::parse_recipients(&s.recipients)?;
    let archive = WalArchive::new(s.open()?, &args.datastore)?;
    let mut options = PushOptions::new(encryption);
    options.zstd_level = args.zstd_level;
    let outcome = archive.push(&args.path, &options).await?;
    out.emit(&outcome, || {
        if out.quiet {
            return String::new();
        }
        match outcome.status {
            "archived" => format!(
                "archived {} ({} → {} bytes) in {}",
                outcome.file, outcome.plaintext_size, outcome.stored_size, outcome.key
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
    });
    Ok(())
}

/// Runs `dbseal wal-fetch`. See the module docs for its exit codes.
pub async fn run_fetch(args: &WalFetchArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let fatal = |message: String| CliError {
        message,
        code: if args.errors_as_missing {
            FETCH_MISSING
        } else {
            FETCH_FATAL
        },
    };
    let result: CliResult<FetchOutcome> = async {
        let s = settings(store, &args.env, &[], Some(&args.keys))?;
        let decryption = s.decryption()?.ok_or_else(|| {
            CliError::usage(
                "wal-fetch needs an identity: --identity FILE, DBSEAL_IDENTITY in the server's environment, or DBSEAL_IDENTITY in --env-file",
            )
        })?;
        let archive = WalArchive::new(s.open()?, &args.datastore)?;
        let options = FetchOptions {
            decryption,
            system_identifier: args.system_id,
        };
        Ok(archive.fetch(&args.file, &args.path, &options).await?)
    }
    .await;
    match result {
        Ok(FetchOutcome::Fetched { file, bytes }) => {
            out.emit(&serde_json::json!({"status": "fetched", "file": file, "bytes": bytes}), || {
                if out.quiet {
                    String::new()
                } else {
                    format!("fetched {file} ({bytes} bytes)")
                }
            });
            Ok(())
        }
        Ok(FetchOutcome::Missing { file, later_segment: Some(later) }) if args.fail_on_gap => Err(fatal(format!(
            "gap in the WAL archive of datastore `{}`: {file} is missing although {later} is archived; recovery is aborted rather than ending early. Put the segment back, or restore to a target before it",
            args.datastore
        ))),
        Ok(FetchOutcome::Missing { file, later_segment }) => Err(CliError {
            message: match later_segment {
                Some(later) => format!(
                    "{file} is not in the WAL archive of datastore `{}` although {later} is (a gap): recovery ends here",
                    args.datastore
                ),
                None => format!(
                    "{file} is not in the WAL archive of datastore `{}` (normal at the end of the archive)",
                    args.datastore
                ),
            },
            code: FETCH_MISSING,
        }),
        Err(e) => Err(fatal(format!("wal-fetch {}: {}", args.file, e.message))),
    }
}

/// Runs `dbseal wal-verify`: exits 4 when a problem is found.
pub async fn run_verify(args: &WalVerifyArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let s = settings(store, &args.env, &[], Some(&args.keys))?;
    let decryption = s.decryption()?;
    let level = match args.level {
        Some(WalLevel::Metadata) => WalVerifyLevel::Metadata,
        Some(WalLevel::Stored) => WalVerifyLevel::Stored,
        Some(WalLevel::Content) => WalVerifyLevel::Content,
        None if decryption.is_some() => WalVerifyLevel::Content,
        None => WalVerifyLevel::Stored,
    };
    let store = s.open()?;
    let backups: Vec<_> = physical::base_backups(&store, &args.datastore)
        .await?
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    let archive = WalArchive::new(store, &args.datastore)?;
    let report = archive.verify(&backups, level, decryption).await?;
    out.emit(&report, || {
        let mut s = format!(
            "WAL archive of datastore `{}` (database system {}): {} file(s), {} segment(s), level {:?}\n",
            report.datastore,
            report.system_identifier.as_deref().unwrap_or("?"),
            report.files,
            report.segments,
            report.level
        );
        for (tl, newest) in &report.newest {
            s.push_str(&format!("  timeline {tl}: newest {newest}\n"));
        }
        for b in &report.backups {
            s.push_str(&format!(
                "  base backup {}: from {} → {} ({})\n",
                b.backup_id,
                b.start_segment,
                b.reachable.as_deref().unwrap_or("nothing archived"),
                if b.complete { "complete" } else { "INCOMPLETE" }
            ));
        }
        for w in &report.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        for p in &report.problems {
            s.push_str(&format!("  {p}\n"));
        }
        s.push_str(if report.is_ok() { "ok" } else { "PROBLEMS FOUND" });
        s
    });
    if report.is_ok() {
        Ok(())
    } else {
        Err(CliError {
            message: format!(
                "the WAL archive of datastore `{}` has {} problem(s); first: {}",
                report.datastore,
                report.problems.len(),
                report.problems[0]
            ),
            code: 4,
        })
    }
}

/// `dbseal backup postgres --physical`: `config` from the connection flags.
pub async fn backup_physical(
    config: &PostgresConfig,
    fast_checkpoint: bool,
    ctx: &BackupContext,
) -> CliResult<Manifest> {
    let mut source = PhysicalSource::new(
        config,
        PhysicalOptions {
            fast_checkpoint,
            ..Default::default()
        },
    )?;
    let manifest = physical::backup_physical(&ctx.store, &mut source, ctx.options()?).await?;
    if manifest
        .source
        .get("wal_archived")
        .and_then(|v| v.as_bool())
        != Some(true)
    {
        eprintln!(
            "dbseal: warning: the WAL base backup {} needs is not in the WAL archive of datastore `{}`: check archive_command = 'dbseal wal-push --datastore {} %p'",
            manifest.backup_id, manifest.datastore.name, manifest.datastore.name
        );
    }
    Ok(manifest)
}

fn target_of(p: &PitrArgs) -> CliResult<RecoveryTarget> {
    let mut targets = Vec::new();
    if p.latest {
        targets.push(RecoveryTarget::Latest);
    }
    if p.target_immediate {
        targets.push(RecoveryTarget::Immediate);
    }
    if let Some(t) = &p.target_time {
        targets.push(RecoveryTarget::Time(t.clone()));
    }
    if let Some(l) = &p.target_lsn {
        let lsn: Lsn = l
            .parse()
            .map_err(|e: backup_core::Error| CliError::usage(e.to_string()))?;
        targets.push(RecoveryTarget::Lsn(lsn));
    }
    if let Some(n) = &p.target_name {
        targets.push(RecoveryTarget::Name(n.clone()));
    }
    match targets.len() {
        1 => Ok(targets.pop().expect("one")),
        0 => Err(CliError::usage(
            "--pgdata needs a recovery target: --latest, --target-time TS, --target-lsn LSN, --target-name NAME or --target-immediate",
        )),
        _ => Err(CliError::usage(
            "give only one of --latest, --target-time, --target-lsn, --target-name, --target-immediate",
        )),
    }
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

/// `dbseal restore ID --pgdata DIR --latest|--target-…`.
pub async fn restore_pgdata(
    manifest: &Manifest,
    pitr: &PitrArgs,
    ctx: &RestoreContext,
    store: &StoreArgs,
    keys: &KeyArgs,
) -> CliResult<RestoreOutcome> {
    let pgdata = absolute(pitr.pgdata.as_deref().expect("called with --pgdata"));
    let target = target_of(pitr)?;
    let system_identifier: u64 = physical::base_backup_wal(manifest)?.system_identifier;
    let s = settings(store, &EnvFileArgs::default(), &[], Some(keys))?;
    if s.identities.is_empty() && s.passphrase_file.is_none() {
        return Err(CliError::usage(
            "a physical restore needs --identity (or DBSEAL_IDENTITY): restore_command decrypts every WAL file with it",
        ));
    }
    // The store settings restore_command needs, in a 0600 file in the data directory.
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
    let mut warnings = Vec::new();
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let me = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1);
        let dir_meta = std::fs::metadata(&pgdata)
            .or_else(|_| std::fs::metadata(pgdata.parent().unwrap_or(Path::new("/"))));
        match dir_meta {
            Ok(m) if me == 0 => Some((m.uid(), m.gid())),
            _ => None,
        }
    };
    for id in &s.identities {
        let id = absolute(id);
        if !accessible_by(&id, owner, 4) {
            warnings.push(format!(
                "identity file {} is not readable by uid {} (the data directory's owner, who runs restore_command): wal-fetch will fail",
                id.display(),
                owner.map_or(0, |o| o.0)
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
    let prefix = match store_url.split_once("://").map(|(s, _)| s) {
        Some("s3") | Some("s3a") => Some("AWS_"),
        Some("gs") => Some("GOOGLE_"),
        Some("az") | Some("azure") | Some("abfs") | Some("abfss") => Some("AZURE_"),
        _ => None,
    };
    if let Some(prefix) = prefix {
        for (k, v) in std::env::vars() {
            if k.starts_with(prefix) {
                env.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    let dbseal = std::env::current_exe().map(|p| absolute(&p)).map_err(|e| {
        CliError::usage(format!(
            "cannot find the dbseal binary for restore_command: {e}"
        ))
    })?;
    let uid = owner.map_or(0, |o| o.0);
    if !accessible_by(&dbseal, owner, 5) {
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
    let restore_command = physical::wal_fetch_command(
        &dbseal,
        Some(&pgdata.join(RESTORE_ENV_FILE)),
        &manifest.datastore.name,
        system_identifier,
        target == RecoveryTarget::Latest,
    );
    let restore = PhysicalRestore {
        pgdata: pgdata.clone(),
        target,
        action: match pitr.target_action {
            None | Some(ActionArg::Promote) => TargetAction::Promote,
            Some(ActionArg::Pause) => TargetAction::Pause,
            Some(ActionArg::Shutdown) => TargetAction::Shutdown,
        },
        timeline: pitr.target_timeline.clone(),
        restore_command,
        env_file: Some(SecretString::new(env)),
    };
    let report = physical::restore_physical(&ctx.store, manifest, &restore, &ctx.options).await?;
    let mut summary = report.summary;
    summary.extend(report.warnings.into_iter().map(|w| format!("warning: {w}")));
    summary.extend(warnings.into_iter().map(|w| format!("warning: {w}")));
    Ok(RestoreOutcome {
        target: pgdata.display().to_string(),
        summary,
    })
}

/// `dbseal restore ID --pgdata DIR …`: the whole command (dry run, keys, output).
pub async fn run_restore_pgdata(
    args: &crate::commands::restore::RestoreArgs,
    manifest: &Manifest,
    store: BackupStore,
    store_args: &StoreArgs,
    out: Output,
) -> CliResult<()> {
    let pitr = &args.target.pitr;
    let target = target_of(pitr)?;
    physical::base_backup_wal(manifest)?;
    let pgdata = absolute(pitr.pgdata.as_deref().expect("called with --pgdata"));
    if args.target.dry_run {
        let plan = serde_json::json!({
            "dry_run": true,
            "backup_id": manifest.backup_id,
            "datastore": manifest.datastore,
            "read": manifest.artifacts().map(|a| serde_json::json!({"key": a.key, "stored_size": a.stored_size})).collect::<Vec<_>>(),
            "pgdata": pgdata,
            "target": target,
        });
        out.emit(&plan, || {
            format!(
                "dry run: would unpack physical backup {} ({} bytes stored) into {} (which must be empty or absent), write recovery.signal and restore_command = dbseal wal-fetch --datastore {} with target {:?}\nnothing was changed",
                manifest.backup_id,
                manifest.artifact.stored_size,
                pgdata.display(),
                manifest.datastore.name,
                target
            )
        });
        return Ok(());
    }
    let options = args
        .keys
        .restore_options(crate::progress::bar("restore", out.quiet || out.json))?;
    let ctx = RestoreContext { store, options };
    let outcome = restore_pgdata(manifest, pitr, &ctx, store_args, &args.keys).await?;
    let value = serde_json::json!({
        "backup_id": manifest.backup_id,
        "target": outcome.target,
        "summary": outcome.summary,
    });
    out.emit(&value, || {
        let mut s = format!(
            "restored backup {} into {}\n",
            manifest.backup_id, outcome.target
        );
        for line in &outcome.summary {
            s.push_str(&format!("  {line}\n"));
        }
        s
    });
    Ok(())
}
