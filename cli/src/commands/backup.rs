//! `dbseal backup <kind>`: seal a database, a command's output, or stdin.
//! `dbseal backup --datastore NAME` / `--all`: back up datastores named in the config
//! file; `--all` (or several `--datastore`) makes one *backup set*.

use std::path::PathBuf;

use backup_core::{BlockingReaderSource, CommandSource, Manifest};
use clap::{Args, Subcommand};

use crate::common::{human_bytes, SealArgs, StoreArgs};
use crate::config::Config;
use crate::db::{self, BackupContext};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// `dbseal backup`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    kind: Option<BackupKind>,
    #[command(flatten)]
    configured: ConfiguredArgs,
}

/// Backups of datastores named in the config file.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfiguredArgs {
    /// Back up this datastore of the config file (kind, URL, options from there).
    /// Repeat it to back up several as one backup set.
    #[arg(long = "datastore", short = 'd', value_name = "NAME")]
    pub datastores: Vec<String>,
    /// Back up every datastore of the config file, concurrently, as one backup set
    /// (`_sets/<set id>/set.json` lists the members, written last). Exit code 10 when
    /// any member failed.
    #[arg(long, conflicts_with = "datastores")]
    pub all: bool,
    /// How many datastores of a set are backed up at once.
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
    /// zstd level (overrides the config's `zstd_level`; default 3).
    #[arg(long, allow_negative_numbers = true)]
    pub zstd_level: Option<i32>,
    /// zstd worker threads (default: one per core, at most 2; 0: one thread).
    #[arg(long, env = "DBSEAL_ZSTD_WORKERS")]
    pub zstd_workers: Option<u32>,
    /// Label KEY=VALUE added to every manifest, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum BackupKind {
    /// Back up the standard output of a command: `dbseal backup command -d NAME -- pg_dumpall`.
    /// A non-zero exit of the command fails the backup (no manifest).
    Command {
        #[command(flatten)]
        seal: SealArgs,
        /// The command and its arguments (after `--`).
        #[arg(required = true, last = true)]
        argv: Vec<String>,
    },
    /// Back up standard input.
    Stdin {
        #[command(flatten)]
        seal: SealArgs,
    },
    /// Back up a PostgreSQL database (pg_dump custom format).
    Postgres {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::postgres::BackupArgs,
    },
    /// Back up a TimescaleDB database (PostgreSQL plus extension version pinning).
    Timescale {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::timescale::BackupArgs,
    },
    /// Back up a Redis server (RDB snapshot over the replication protocol).
    Redis {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::redis::BackupArgs,
    },
    /// Back up a Neo4j graph over Bolt (dbseal graph stream).
    Neo4j {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::neo4j::BackupArgs,
    },
}

impl BackupArgs {
    /// Fills recipients, passphrase and zstd level from the config where no flag (or
    /// variable) set them, and adds a configured datastore's labels.
    pub fn apply_config(&mut self, cfg: &Config, zstd_level_given: bool) {
        let Some(kind) = &mut self.kind else { return };
        let seal = match kind {
            BackupKind::Command { seal, .. }
            | BackupKind::Stdin { seal }
            | BackupKind::Postgres { seal, .. }
            | BackupKind::Timescale { seal, .. }
            | BackupKind::Redis { seal, .. }
            | BackupKind::Neo4j { seal, .. } => seal,
        };
        if seal.recipients.is_empty() && seal.passphrase_file.is_none() {
            seal.recipients = cfg.encryption.recipients.clone();
            seal.passphrase_file = cfg.encryption.passphrase_file.clone();
        }
        if !zstd_level_given {
            if let Some(level) = cfg.zstd_level {
                seal.zstd_level = level;
            }
        }
        if let Some(ds) = cfg.datastores.get(&seal.datastore) {
            let mut labels: Vec<String> = config_labels(ds);
            labels.append(&mut seal.labels);
            seal.labels = labels;
        }
    }
}

/// The labels a configured datastore puts in its manifests (as `KEY=VALUE`).
fn config_labels(ds: &crate::config::DatastoreConfig) -> Vec<String> {
    let mut labels: Vec<String> = ds.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(env) = ds.environment {
        labels.push(format!("environment={}", env.as_str()));
    }
    labels
}

/// Runs `dbseal backup`.
pub async fn run(
    args: &BackupArgs,
    store: &StoreArgs,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<()> {
    let Some(kind) = &args.kind else {
        return run_configured(&args.configured, store, cfg, out).await;
    };
    let (seal, label) = match kind {
        BackupKind::Command { seal, .. } => (seal, "backup"),
        BackupKind::Stdin { seal } => (seal, "backup"),
        BackupKind::Postgres { seal, .. }
        | BackupKind::Timescale { seal, .. }
        | BackupKind::Redis { seal, .. }
        | BackupKind::Neo4j { seal, .. } => (seal, "backup"),
    };
    let ctx = BackupContext {
        store: store.open()?,
        seal: seal.clone(),
        progress: crate::progress::bar(label, out.quiet || out.json),
    };
    let manifest = match kind {
        BackupKind::Command { argv, .. } => {
            let mut source = CommandSource::new(argv.clone())?;
            backup_core::backup(&ctx.store, &mut source, ctx.options()?).await?
        }
        BackupKind::Stdin { .. } => {
            let mut source = BlockingReaderSource::stdin()?;
            backup_core::backup(&ctx.store, &mut source, ctx.options()?).await?
        }
        BackupKind::Postgres { args, .. } => db::postgres::backup(args, &ctx).await?,
        BackupKind::Timescale { args, .. } => db::timescale::backup(args, &ctx).await?,
        BackupKind::Redis { args, .. } => db::redis::backup(args, &ctx).await?,
        BackupKind::Neo4j { args, .. } => db::neo4j::backup(args, &ctx).await?,
    };
    print_committed(&manifest, out);
    Ok(())
}

/// Prints a committed backup.
pub fn print_committed(manifest: &Manifest, out: Output) {
    out.emit(manifest, || {
        let a = &manifest.artifact;
        let secs = (manifest.finished_at - manifest.started_at).num_milliseconds() as f64 / 1000.0;
        format!(
            "backup {} of {} ({}) committed in {secs:.1}s: {} stored ({} plaintext)\nmanifest: {}",
            manifest.backup_id,
            manifest.datastore.name,
            manifest.datastore.kind,
            human_bytes(a.stored_size),
            human_bytes(a.plaintext_size),
            backup_core::BackupStore::manifest_key(&manifest.datastore.name, &manifest.backup_id),
        )
    });
}

/// The folder of backup-set manifests (a reserved folder: never a datastore).
pub const SETS_FOLDER: &str = "_sets";

/// The key of a backup set's manifest.
pub fn set_key(id: &backup_core::BackupId) -> String {
    format!("{SETS_FOLDER}/{id}/set.json")
}

/// A backup set: the backups of several datastores made together by `backup --all`.
/// Written last, create-only, at `_sets/<set id>/set.json`, after every member
/// finished; its members are ordinary backups.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SetManifest {
    /// `"1.0"`.
    pub format_version: String,
    /// The set's id (sorts by time like backup ids).
    pub set_id: backup_core::BackupId,
    /// When the set started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When its last member finished.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// Whether every member succeeded.
    pub ok: bool,
    /// The members, by datastore name.
    pub members: Vec<SetMember>,
    /// The tool that wrote it.
    pub tool: backup_core::manifest::ToolInfo,
    /// Fields of newer versions, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One datastore of a backup set.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SetMember {
    /// The datastore name (from the config file).
    pub datastore: String,
    /// Its kind.
    pub kind: String,
    /// Whether its backup was committed.
    pub ok: bool,
    /// The committed backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<backup_core::BackupId>,
    /// Stored bytes of the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
    /// Why it failed (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code its failure alone would have had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

/// Reads a backup set's manifest.
pub async fn read_set(
    store: &backup_core::BackupStore,
    id: &backup_core::BackupId,
) -> CliResult<SetManifest> {
    let key = set_key(id);
    let bytes = match store.get_bytes(&key).await {
        Ok(b) => b,
        Err(e) if e.kind() == backup_core::ErrorKind::NotFound => {
            return Err(CliError {
                message: format!("backup set {id} not found in {}: no {key}", store.url()),
                code: 3,
            })
        }
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes).map_err(|e| CliError {
        message: format!("backup set manifest {key} is invalid: {e}"),
        code: 4,
    })
}

/// Exit code of a backup set with failed members.
pub const SET_FAILED: i32 = 10;

/// What one configured datastore's backup needs besides its name.
pub struct ConfiguredBackup<'a> {
    /// The config file.
    pub cfg: &'a Config,
    /// The store.
    pub store: backup_core::BackupStore,
    /// Overrides from the command line.
    pub args: &'a ConfiguredArgs,
    /// Extra labels (the set id).
    pub extra_labels: Vec<String>,
    /// Progress bar, if any.
    pub progress: Option<std::sync::Arc<dyn backup_core::Progress>>,
}

/// Parses a kind's `dbseal backup <kind>` flags from the config's values.
fn parse_kind_args<A: clap::Args + clap::FromArgMatches>(
    name: &str,
    kind: &str,
    argv: Vec<String>,
    cfg: Option<&Config>,
) -> CliResult<A> {
    let scrub = |s: String| cfg.map_or(s.clone(), |c| c.scrub(&s));
    let cmd = A::augment_args(
        clap::Command::new("dbseal-backup")
            .no_binary_name(true)
            .disable_help_flag(true),
    );
    let matches = cmd.try_get_matches_from(argv).map_err(|e| {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
        CliError::usage(scrub(format!(
            "[datastores.{name}] ({kind}): {first} (see `dbseal backup {kind} --help`; options go in [datastores.{name}.options] without dashes)"
        )))
    })?;
    A::from_arg_matches(&matches).map_err(|e| CliError::usage(scrub(e.to_string())))
}

/// The seal flags of a configured datastore: the config's, overridden by flags.
fn configured_seal(name: &str, job: &ConfiguredBackup<'_>) -> SealArgs {
    let cfg = job.cfg;
    let args = job.args;
    let ds = cfg.datastores.get(name);
    let (recipients, passphrase_file) =
        if args.recipients.is_empty() && args.passphrase_file.is_none() {
            (
                cfg.encryption.recipients.clone(),
                cfg.encryption.passphrase_file.clone(),
            )
        } else {
            (args.recipients.clone(), args.passphrase_file.clone())
        };
    let mut labels = ds.map(config_labels).unwrap_or_default();
    labels.extend(job.extra_labels.iter().cloned());
    labels.extend(args.labels.iter().cloned());
    SealArgs {
        datastore: name.to_string(),
        recipients,
        passphrase_file,
        zstd_level: args.zstd_level.or(cfg.zstd_level).unwrap_or(3),
        zstd_workers: args.zstd_workers,
        labels,
    }
}

/// Backs up a database of a given kind at `url` (else the kind's environment) into
/// datastore `ctx.seal.datastore`, with `extra` flags of that kind: the one place that
/// turns configuration into a kind's backup call (also used for safety backups before
/// a restore). The URL travels in memory only, never in a process's argv.
pub async fn backup_kind(
    kind: crate::config::Kind,
    name: &str,
    url: Option<&backup_core::SecretString>,
    extra: Vec<String>,
    ctx: &BackupContext,
    cfg: Option<&Config>,
) -> CliResult<Manifest> {
    use crate::config::Kind;
    let mut argv = Vec::new();
    if let Some(url) = url {
        argv.push("--url".to_string());
        argv.push(url.expose().to_string());
    }
    argv.extend(extra);
    let k = kind.as_str();
    match kind {
        Kind::Postgres => {
            let a: db::postgres::BackupArgs = parse_kind_args(name, k, argv, cfg)?;
            db::postgres::backup(&a, ctx).await
        }
        Kind::Timescale => {
            let a: db::timescale::BackupArgs = parse_kind_args(name, k, argv, cfg)?;
            db::timescale::backup(&a, ctx).await
        }
        Kind::Redis => {
            let a: db::redis::BackupArgs = parse_kind_args(name, k, argv, cfg)?;
            db::redis::backup(&a, ctx).await
        }
        Kind::Neo4j => {
            let a: db::neo4j::BackupArgs = parse_kind_args(name, k, argv, cfg)?;
            db::neo4j::backup(&a, ctx).await
        }
    }
}

/// Checks that a configured datastore's options are flags its kind knows (no
/// connection is made), for `dbseal config check`.
pub fn check_kind_options(
    name: &str,
    ds: &crate::config::DatastoreConfig,
    cfg: &Config,
) -> CliResult<()> {
    use crate::config::Kind;
    let mut argv = vec!["--url".to_string(), "x://check".to_string()];
    argv.extend(ds.option_flags(name)?);
    let k = ds.kind.as_str();
    match ds.kind {
        Kind::Postgres => {
            parse_kind_args::<db::postgres::BackupArgs>(name, k, argv, Some(cfg)).map(drop)
        }
        Kind::Timescale => {
            parse_kind_args::<db::timescale::BackupArgs>(name, k, argv, Some(cfg)).map(drop)
        }
        Kind::Redis => parse_kind_args::<db::redis::BackupArgs>(name, k, argv, Some(cfg)).map(drop),
        Kind::Neo4j => parse_kind_args::<db::neo4j::BackupArgs>(name, k, argv, Some(cfg)).map(drop),
    }
}

/// Backs up one configured datastore.
pub async fn backup_configured(name: &str, job: &ConfiguredBackup<'_>) -> CliResult<Manifest> {
    let ds = job.cfg.datastore(name)?;
    let url = job.cfg.connection_url(name)?;
    let ctx = BackupContext {
        store: job.store.clone(),
        seal: configured_seal(name, job),
        progress: job.progress.clone(),
    };
    let options = ds.option_flags(name)?;
    backup_kind(ds.kind, name, Some(&url), options, &ctx, Some(job.cfg))
        .await
        .map_err(|mut e| {
            e.message = job.cfg.scrub(&e.message);
            e
        })
}

async fn run_configured(
    args: &ConfiguredArgs,
    store: &StoreArgs,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<()> {
    if args.datastores.is_empty() && !args.all {
        return Err(CliError::usage(
            "name what to back up: a kind (`dbseal backup postgres -d NAME …`), a configured datastore (`--datastore NAME`) or every configured datastore (`--all`)",
        ));
    }
    let cfg = cfg.ok_or_else(|| {
        CliError::usage(format!(
            "--datastore and --all read the config file: pass --config PATH, set {} or create ./{}",
            crate::config::CONFIG_ENV,
            crate::config::DEFAULT_FILE
        ))
    })?;
    let names: Vec<String> = if args.all {
        cfg.datastores.keys().cloned().collect()
    } else {
        args.datastores.clone()
    };
    if names.is_empty() {
        return Err(CliError::usage(format!(
            "{} configures no datastore ([datastores.NAME] tables)",
            cfg.path.display()
        )));
    }
    for n in &names {
        cfg.datastore(n)?;
    }
    let store = store.open()?;
    if names.len() == 1 && !args.all {
        let job = ConfiguredBackup {
            cfg,
            store,
            args,
            extra_labels: Vec::new(),
            progress: crate::progress::bar("backup", out.quiet || out.json),
        };
        let manifest = backup_configured(&names[0], &job).await?;
        print_committed(&manifest, out);
        return Ok(());
    }
    run_set(&names, args, cfg, store, out).await
}

async fn run_set(
    names: &[String],
    args: &ConfiguredArgs,
    cfg: &Config,
    store: backup_core::BackupStore,
    out: Output,
) -> CliResult<()> {
    use futures::StreamExt;
    let started_at = chrono::Utc::now();
    let set_id = backup_core::BackupId::new(started_at);
    let job = ConfiguredBackup {
        cfg,
        store: store.clone(),
        args,
        extra_labels: vec![format!("dbseal.set={set_id}")],
        progress: None,
    };
    out.info(&format!(
        "backup set {set_id}: {} datastores, {} at a time",
        names.len(),
        args.jobs
    ));
    let job = &job;
    let mut results: Vec<(String, CliResult<Manifest>)> = futures::stream::iter(names.iter())
        .map(|name| async move {
            let r = backup_configured(name, job).await;
            match &r {
                Ok(m) => out.info(&format!(
                    "  {name}: backup {} committed ({})",
                    m.backup_id,
                    human_bytes(m.artifacts().map(|a| a.stored_size).sum())
                )),
                Err(e) => out.info(&format!("  {name}: FAILED: {}", e.message)),
            }
            (name.clone(), r)
        })
        .buffer_unordered(usize::from(args.jobs))
        .collect()
        .await;
    results.sort_by_key(|(n, _)| names.iter().position(|x| x == n));
    let members: Vec<SetMember> = results
        .iter()
        .map(|(name, r)| {
            let kind = cfg
                .datastores
                .get(name)
                .map(|d| d.kind.as_str().to_string())
                .unwrap_or_default();
            match r {
                Ok(m) => SetMember {
                    datastore: name.clone(),
                    kind,
                    ok: true,
                    backup_id: Some(m.backup_id.clone()),
                    stored_size: Some(m.artifacts().map(|a| a.stored_size).sum()),
                    error: None,
                    code: None,
                },
                Err(e) => SetMember {
                    datastore: name.clone(),
                    kind,
                    ok: false,
                    backup_id: None,
                    stored_size: None,
                    error: Some(cfg.scrub(&e.message)),
                    code: Some(e.code),
                },
            }
        })
        .collect();
    let set = SetManifest {
        format_version: "1.0".into(),
        set_id: set_id.clone(),
        started_at,
        finished_at: chrono::Utc::now(),
        ok: members.iter().all(|m| m.ok),
        members,
        tool: Default::default(),
        extra: Default::default(),
    };
    let key = set_key(&set_id);
    let mut bytes = serde_json::to_vec_pretty(&set).expect("serializes");
    bytes.push(b'\n');
    if !store.put_bytes_create(&key, bytes).await? {
        return Err(backup_core::Error::AlreadyExists {
            id: set_id.to_string(),
            key,
        }
        .into());
    }
    crate::result_emitted();
    out.emit(&set, || {
        let mut s = format!(
            "backup set {} {}: {}\n",
            set.set_id,
            if set.ok { "committed" } else { "FAILED" },
            key
        );
        for m in &set.members {
            match (&m.backup_id, &m.error) {
                (Some(id), _) => s.push_str(&format!(
                    "  ok      {:<20} {id} ({})\n",
                    m.datastore,
                    human_bytes(m.stored_size.unwrap_or(0))
                )),
                (None, e) => s.push_str(&format!(
                    "  FAILED  {:<20} {}\n",
                    m.datastore,
                    e.as_deref().unwrap_or("")
                )),
            }
        }
        s
    });
    if set.ok {
        Ok(())
    } else {
        let failed: Vec<&str> = set
            .members
            .iter()
            .filter(|m| !m.ok)
            .map(|m| m.datastore.as_str())
            .collect();
        Err(CliError {
            message: format!(
                "backup set {set_id}: {} of {} members failed ({}); the others are ordinary backups",
                failed.len(),
                set.members.len(),
                failed.join(", ")
            ),
            code: SET_FAILED,
        })
    }
}
