//! `dbseal restore ID`: into a database, a file or standard output.
//! `dbseal restore ID --datastore NAME`: into a datastore of the config file.
//! `dbseal restore --set ID`: every member of a backup set into its configured datastore.
//!
//! Safety (see `docs/operations.md`): a datastore whose config says `environment =
//! "production"` is restored into only with `--confirm-production NAME` (or the name
//! typed at a prompt on a terminal), else exit 8; before `--replace` a safety backup
//! of the target is taken with the kind's own backup code and its id printed
//! (`--no-safety-backup` skips it); `--dry-run` prints the plan and touches nothing.

use std::path::PathBuf;

use backup_core::{Manifest, SecretString, WriterSink};
use clap::Args;

use crate::common::{human_bytes, KeyArgs, StoreArgs};
use crate::config::{Config, Environment, Kind};
use crate::db::{self, RestoreContext, RestoreOutcome};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// Restores a backup.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup id.
    #[arg(required_unless_present = "set")]
    pub id: Option<String>,
    /// Restore every member of this backup set into its configured datastore.
    #[arg(
        long,
        value_name = "SET_ID",
        conflicts_with_all = ["id", "datastore", "url", "output", "to_stdout", "to_rdb"]
    )]
    pub set: Option<String>,
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
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub target: RestoreTarget,
}

/// Fills the identity or passphrase from the config file when no flag set one.
pub fn apply_key_config(keys: &mut KeyArgs, cfg: &Config) {
    if keys.identities.is_empty() && keys.passphrase_file.is_none() {
        keys.identities
            .extend(cfg.encryption.identity.iter().cloned());
        keys.passphrase_file = cfg.encryption.passphrase_file.clone();
    }
}

/// Where and how to restore. Database kinds read the flags that apply to them.
#[derive(Args, Debug, Clone, Default)]
pub struct RestoreTarget {
    /// Write the plaintext native stream (pg_dump archive, RDB file...) to stdout.
    #[arg(long, conflicts_with_all = ["output", "url"])]
    pub to_stdout: bool,
    /// Write the plaintext native stream to this file.
    #[arg(long, short = 'o', conflicts_with = "url")]
    pub output: Option<PathBuf>,
    /// The database to restore into (postgres://…, redis://…, bolt://…). Defaults to the
    /// kind's environment (PG* variables, REDIS_URL, NEO4J_URI). Prefer passing
    /// passwords through the environment rather than in this URL.
    #[arg(long)]
    pub url: Option<String>,
    /// PostgreSQL: create the target database.
    #[arg(long)]
    pub create_db: bool,
    /// Replace the contents of a non-empty target (otherwise it is refused).
    #[arg(long)]
    pub replace: bool,
    /// PostgreSQL: restore only these schemas (repeatable).
    #[arg(long)]
    pub schema: Vec<String>,
    /// PostgreSQL: restore only these tables (repeatable).
    #[arg(long)]
    pub table: Vec<String>,
    /// PostgreSQL: do not restore ownership.
    #[arg(long)]
    pub no_owner: bool,
    /// PostgreSQL: role to restore as (SET ROLE).
    #[arg(long)]
    pub role: Option<String>,
    /// Directory of the PostgreSQL client binaries.
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// TimescaleDB: allow a different extension or PostgreSQL version on the target.
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// Redis: restore only these database indexes (repeatable; SRC or SRC:DEST to remap).
    #[arg(long)]
    pub db: Vec<String>,
    /// Redis: restore only keys matching this glob pattern (repeatable).
    #[arg(long = "match")]
    pub key_match: Vec<String>,
    /// Redis: write a plain dump.rdb for an offline start instead of replaying keys.
    #[arg(long, conflicts_with = "url")]
    pub to_rdb: Option<PathBuf>,
    /// Neo4j: the target database name.
    #[arg(long)]
    pub database: Option<String>,
    /// Neo4j: the neo4j-admin executable, to load an offline (`--offline`) dump.
    #[arg(long)]
    pub neo4j_admin: Option<PathBuf>,
    #[command(flatten)]
    pub pitr: crate::commands::wal::PitrArgs,
    /// Print what would be read and written, and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where a restore goes, resolved from the flags and the config file.
struct TargetPlan {
    /// The flags with the configured URL filled in.
    target: RestoreTarget,
    /// The configured datastore the target is, if any.
    name: Option<String>,
    /// Whether that datastore is marked production.
    production: bool,
    /// The target URL (a secret: may hold a password).
    url: Option<SecretString>,
}

impl TargetPlan {
    /// Whether the restore writes into a database (not a file or stdout).
    fn writes_database(&self) -> bool {
        !self.target.to_stdout && self.target.output.is_none() && self.target.to_rdb.is_none()
    }

    fn describe(&self, manifest: &Manifest) -> String {
        let t = &self.target;
        if t.to_stdout {
            "standard output".to_string()
        } else if let Some(o) = &t.output {
            o.display().to_string()
        } else if let Some(r) = &t.to_rdb {
            r.display().to_string()
        } else {
            let url = t
                .url
                .as_deref()
                .map(backup_core::redact_url)
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

fn kind_of(manifest: &Manifest) -> Option<Kind> {
    match manifest.datastore.kind.as_str() {
        "postgres" => Some(Kind::Postgres),
        "timescale" => Some(Kind::Timescale),
        "redis" => Some(Kind::Redis),
        "neo4j" => Some(Kind::Neo4j),
        _ => None,
    }
}

fn plan_target(
    args_datastore: Option<&str>,
    target: &RestoreTarget,
    manifest: &Manifest,
    cfg: Option<&Config>,
) -> CliResult<TargetPlan> {
    let mut plan = TargetPlan {
        target: target.clone(),
        name: None,
        production: false,
        url: target.url.clone().map(SecretString::new),
    };
    if let Some(name) = args_datastore {
        let cfg = cfg.ok_or_else(|| {
            CliError::usage(format!(
                "--datastore {name} reads the config file: pass --config PATH, set {} or create ./{}",
                crate::config::CONFIG_ENV,
                crate::config::DEFAULT_FILE
            ))
        })?;
        let ds = cfg.datastore(name)?;
        let compatible = ds.kind.as_str() == manifest.datastore.kind
            || (ds.kind == Kind::Postgres && manifest.datastore.kind == "timescale")
            || (ds.kind == Kind::Timescale && manifest.datastore.kind == "postgres");
        if !compatible {
            return Err(CliError::usage(format!(
                "backup {} is a {} backup, datastore `{name}` is {}",
                manifest.backup_id,
                manifest.datastore.kind,
                ds.kind.as_str()
            )));
        }
        let url = cfg.connection_url(name)?;
        plan.target.url = Some(url.expose().to_string());
        plan.url = Some(url);
        plan.name = Some(name.to_string());
        plan.production = ds.environment == Some(Environment::Production);
    } else if let (Some(url), Some(cfg)) = (&target.url, cfg) {
        if plan.writes_database() {
            if let Some((name, ds)) = cfg.datastore_for_url(url) {
                plan.name = Some(name.to_string());
                plan.production = ds.environment == Some(Environment::Production);
            }
        }
    }
    Ok(plan)
}

/// Refuses a production target unless confirmed by name (flag, or prompt on a terminal).
fn confirm_production(name: &str, confirmations: &[String], out: Output) -> CliResult<()> {
    if confirmations.iter().any(|c| c == name) {
        return Ok(());
    }
    let how = format!(
        "pass --confirm-production {name} (or run on a terminal and type `{name}` at the prompt)"
    );
    if !confirmations.is_empty() {
        return Err(CliError {
            message: format!(
                "datastore `{name}` is marked production and --confirm-production names {} instead: {how}",
                confirmations.join(", ")
            ),
            code: 8,
        });
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !out.json {
        eprint!("datastore `{name}` is marked production. Type its name to restore into it: ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_ok() && line.trim() == name {
            return Ok(());
        }
        return Err(CliError {
            message: format!("restore into production datastore `{name}` not confirmed (the typed name did not match)"),
            code: 8,
        });
    }
    Err(CliError {
        message: format!(
            "refusing to restore into datastore `{name}`: it is marked environment = \"production\" in the config file; to confirm, {how}"
        ),
        code: 8,
    })
}

/// The encryption of a safety backup: the config's (or $DBSEAL_RECIPIENTS') recipients,
/// else the recipients of the backup being restored, else the passphrase in use.
fn safety_encryption(
    manifest: &Manifest,
    cfg: Option<&Config>,
    keys: &KeyArgs,
) -> CliResult<(Vec<String>, Option<PathBuf>)> {
    if let Ok(env) = std::env::var("DBSEAL_RECIPIENTS") {
        let r: Vec<String> = env
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !r.is_empty() {
            return Ok((r, None));
        }
    }
    if let Some(c) = cfg {
        if !c.encryption.recipients.is_empty() {
            return Ok((c.encryption.recipients.clone(), None));
        }
    }
    for t in &manifest.transforms {
        if let backup_core::TransformSpec::Age { recipients, .. } = t {
            if !recipients.is_empty() {
                return Ok((recipients.clone(), None));
            }
        }
    }
    if let Some(p) = &keys.passphrase_file {
        return Ok((Vec::new(), Some(p.clone())));
    }
    Err(CliError::usage(
        "a safety backup needs recipients: set [encryption] recipients in the config file or DBSEAL_RECIPIENTS, or pass --no-safety-backup",
    ))
}

/// The datastore a safety backup of this target goes to.
fn safety_datastore(plan: &TargetPlan, manifest: &Manifest) -> String {
    plan.name
        .clone()
        .unwrap_or_else(|| format!("{}.safety", manifest.datastore.name))
}

/// Takes a safety backup of the target before it is replaced; records a level-1
/// verification of it so retention treats it like any verified backup.
async fn safety_backup(
    plan: &TargetPlan,
    manifest: &Manifest,
    store: &backup_core::BackupStore,
    cfg: Option<&Config>,
    keys: &KeyArgs,
    out: Output,
) -> CliResult<Option<Manifest>> {
    let Some(kind) = kind_of(manifest) else {
        return Ok(None);
    };
    let datastore = safety_datastore(plan, manifest);
    let (recipients, passphrase_file) = safety_encryption(manifest, cfg, keys)?;
    let mut labels = vec![format!(
        "dbseal.safety-backup-before-restore-of={}",
        manifest.backup_id
    )];
    if plan.production {
        labels.push("environment=production".into());
    }
    let ctx = db::BackupContext {
        store: store.clone(),
        seal: crate::common::SealArgs {
            datastore: datastore.clone(),
            recipients,
            passphrase_file,
            zstd_level: cfg.and_then(|c| c.zstd_level).unwrap_or(3),
            zstd_workers: None,
            labels,
        },
        progress: crate::progress::bar("safety backup", out.quiet || out.json),
    };
    out.info(&format!(
        "taking a safety backup of the target into datastore `{datastore}` before replacing it"
    ));
    let taken = crate::commands::backup::backup_kind(
        kind,
        &datastore,
        plan.url.as_ref(),
        Vec::new(),
        &ctx,
        cfg,
    )
    .await;
    let safety = match taken {
        Ok(m) => m,
        // The target does not exist yet (e.g. --create-db): there is nothing to keep.
        Err(e) if e.code == 3 => {
            out.info(&format!(
                "no safety backup: the target does not exist yet ({})",
                e.message
            ));
            return Ok(None);
        }
        Err(e) => {
            return Err(CliError {
                message: format!(
                    "could not take a safety backup of the target, so it was not touched: {} (fix it, or pass --no-safety-backup to replace the target without one)",
                    e.message
                ),
                code: e.code,
            })
        }
    };
    let check = backup_core::verify_stored(store, &safety).await?;
    let record = backup_core::VerificationRecord::new(
        &safety.datastore.name,
        &safety.backup_id,
        "stored",
        true,
        check.checks.join("; "),
    );
    store.put_verification(&record).await?;
    let again = match (&plan.name, plan.production) {
        (Some(n), true) => format!("--datastore {n} --replace --confirm-production {n}"),
        (Some(n), false) => format!("--datastore {n} --replace"),
        (None, _) => "--url URL --replace".to_string(),
    };
    eprintln!(
        "dbseal: safety backup {} of the target committed (datastore `{}`); to undo this restore: dbseal restore {} {again}",
        safety.backup_id, safety.datastore.name, safety.backup_id
    );
    Ok(Some(safety))
}

/// Runs `dbseal restore`.
pub async fn run(
    args: &RestoreArgs,
    store: &StoreArgs,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<()> {
    let store_args = store;
    let store = store.open()?;
    if let Some(set) = &args.set {
        return restore_set(args, set, &store, cfg, out).await;
    }
    let id = crate::commands::show::parse_id(args.id.as_deref().unwrap_or_default())?;
    let manifest = store.manifest(&id).await?;
    if args.target.pitr.pgdata.is_some() {
        // PostgreSQL physical backup into a new data directory (point-in-time recovery).
        return crate::commands::wal::run_restore_pgdata(args, &manifest, store, store_args, out)
            .await;
    }
    let plan = plan_target(args.datastore.as_deref(), &args.target, &manifest, cfg)?;
    if args.target.dry_run {
        let value = dry_run_plan(args, &plan, &manifest);
        out.emit(&value, || {
            dry_run_text(args, &plan, &manifest) + "nothing was changed"
        });
        return Ok(());
    }
    if let (true, Some(name)) = (plan.production, &plan.name) {
        confirm_production(name, &args.confirm_production, out)?;
    }
    let (outcome, safety) = restore_one(args, &plan, &manifest, &store, cfg, out).await?;
    if plan.target.to_stdout {
        out.info(&format!("restored backup {} to stdout", manifest.backup_id));
        return Ok(());
    }
    let value = serde_json::json!({
        "backup_id": manifest.backup_id,
        "target": outcome.target,
        "summary": outcome.summary,
        "safety_backup": safety.as_ref().map(|m| &m.backup_id),
    });
    out.emit(&value, || {
        let mut s = format!(
            "restored backup {} into {}\n",
            manifest.backup_id, outcome.target
        );
        for line in &outcome.summary {
            s.push_str(&format!("  {line}\n"));
        }
        if let Some(m) = &safety {
            s.push_str(&format!(
                "  safety backup of the previous contents: {} (datastore `{}`)\n",
                m.backup_id, m.datastore.name
            ));
        }
        s
    });
    Ok(())
}

fn dry_run_plan(args: &RestoreArgs, plan: &TargetPlan, manifest: &Manifest) -> serde_json::Value {
    let t = &plan.target;
    let safety = t.replace
        && !args.no_safety_backup
        && plan.writes_database()
        && kind_of(manifest).is_some();
    serde_json::json!({
        "dry_run": true,
        "backup_id": manifest.backup_id,
        "datastore": manifest.datastore,
        "read": manifest.artifacts().map(|a| serde_json::json!({"key": a.key, "stored_size": a.stored_size})).collect::<Vec<_>>(),
        "target": plan.describe(manifest),
        "target_datastore": plan.name,
        "production": plan.production,
        "needs_confirmation": plan.production && !plan.name.as_ref().is_some_and(|n| args.confirm_production.contains(n)),
        "safety_backup_into": if safety { Some(safety_datastore(plan, manifest)) } else { None },
        "create_db": t.create_db,
        "replace": t.replace,
    })
}

fn dry_run_text(args: &RestoreArgs, plan: &TargetPlan, manifest: &Manifest) -> String {
    let t = &plan.target;
    let mut s = format!(
        "dry run: would restore backup {} ({} `{}`)\n",
        manifest.backup_id, manifest.datastore.kind, manifest.datastore.name
    );
    for a in manifest.artifacts() {
        s.push_str(&format!(
            "  read     {} ({})\n",
            a.key,
            human_bytes(a.stored_size)
        ));
    }
    if let (true, Some(name)) = (plan.production, &plan.name) {
        if args.confirm_production.contains(name) {
            s.push_str(&format!(
                "  confirm  production datastore `{name}`: confirmed\n"
            ));
        } else {
            s.push_str(&format!(
                "  confirm  production datastore `{name}`: would be refused without --confirm-production {name}\n"
            ));
        }
    }
    if t.replace && plan.writes_database() && kind_of(manifest).is_some() {
        if args.no_safety_backup {
            s.push_str("  safety   no safety backup (--no-safety-backup)\n");
        } else {
            s.push_str(&format!(
                "  safety   back up the target into datastore `{}` first\n",
                safety_datastore(plan, manifest)
            ));
        }
    }
    s.push_str(&format!("  write    {}\n", plan.describe(manifest)));
    if t.replace {
        s.push_str("  replace  the target's current contents would be dropped\n");
    }
    if t.create_db {
        s.push_str("  create   the target database would be created\n");
    }
    s
}

/// Takes the safety backup and restores one backup into its planned (and confirmed)
/// target.
async fn restore_one(
    args: &RestoreArgs,
    plan: &TargetPlan,
    manifest: &Manifest,
    store: &backup_core::BackupStore,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<(RestoreOutcome, Option<Manifest>)> {
    let t = &plan.target;
    // Keys first: a restore that cannot decrypt must fail before the safety backup.
    args.keys.decryption()?;
    let safety = if t.replace && !args.no_safety_backup && plan.writes_database() {
        safety_backup(plan, manifest, store, cfg, &args.keys, out).await?
    } else {
        None
    };
    let options = args
        .keys
        .restore_options(crate::progress::bar("restore", out.quiet || out.json))?;
    let store = store.clone();
    let outcome = if t.to_stdout || t.output.is_some() {
        let report = if let Some(path) = &t.output {
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .await
                .map_err(|e| CliError::usage(format!("cannot create {}: {e}", path.display())))?;
            let mut sink = WriterSink::new(file);
            let r = backup_core::restore(&store, manifest, "data", &mut sink, &options).await;
            if r.is_err() {
                let _ = tokio::fs::remove_file(path).await;
            }
            r?
        } else {
            let mut sink = WriterSink::new(tokio::io::stdout());
            backup_core::restore(&store, manifest, "data", &mut sink, &options).await?
        };
        RestoreOutcome {
            target: t
                .output
                .as_ref()
                .map_or("stdout".into(), |p| p.display().to_string()),
            summary: report.summary,
        }
    } else {
        let ctx = RestoreContext { store, options };
        let mut o = db::restore(manifest, t, &ctx).await?;
        if let Some(n) = &plan.name {
            o.target = format!("datastore `{n}` ({})", o.target);
        }
        o
    };
    Ok((outcome, safety))
}

/// `dbseal restore --set ID`: every member into its configured datastore.
async fn restore_set(
    args: &RestoreArgs,
    set_id: &str,
    store: &backup_core::BackupStore,
    cfg: Option<&Config>,
    out: Output,
) -> CliResult<()> {
    let cfg = cfg.ok_or_else(|| {
        CliError::usage(format!(
            "--set restores into the datastores of the config file: pass --config PATH, set {} or create ./{}",
            crate::config::CONFIG_ENV,
            crate::config::DEFAULT_FILE
        ))
    })?;
    let id = crate::commands::show::parse_id(set_id)?;
    let set = crate::commands::backup::read_set(store, &id).await?;
    if !set.ok {
        let failed: Vec<&str> = set
            .members
            .iter()
            .filter(|m| !m.ok)
            .map(|m| m.datastore.as_str())
            .collect();
        return Err(CliError {
            message: format!(
                "backup set {id} is incomplete ({} failed): restore its good members one by one with `dbseal restore ID --datastore NAME`",
                failed.join(", ")
            ),
            code: 8,
        });
    }
    // Resolve and check every member before touching any target.
    let mut members = Vec::new();
    for m in &set.members {
        let backup_id = m.backup_id.clone().ok_or_else(|| CliError {
            message: format!("backup set {id}: member `{}` has no backup id", m.datastore),
            code: 4,
        })?;
        let manifest = store.manifest(&backup_id).await?;
        let plan = plan_target(Some(&m.datastore), &args.target, &manifest, Some(cfg))?;
        members.push((manifest, plan));
    }
    if args.target.dry_run {
        let plans: Vec<serde_json::Value> = members
            .iter()
            .map(|(m, p)| dry_run_plan(args, p, m))
            .collect();
        out.emit(
            &serde_json::json!({"dry_run": true, "set_id": id, "members": plans}),
            || {
                let mut s = format!(
                    "dry run: would restore backup set {id} ({} members)\n",
                    members.len()
                );
                for (m, p) in &members {
                    s.push_str(&dry_run_text(args, p, m));
                }
                s + "nothing was changed"
            },
        );
        return Ok(());
    }
    for (_, plan) in &members {
        if let (true, Some(name)) = (plan.production, &plan.name) {
            confirm_production(name, &args.confirm_production, out)?;
        }
    }
    let mut results = Vec::new();
    for (manifest, plan) in &members {
        let (outcome, safety) = restore_one(args, plan, manifest, store, Some(cfg), out).await.map_err(|e| CliError {
            message: format!(
                "backup set {id}: restoring {} into `{}` failed (members before it were restored): {}",
                manifest.backup_id,
                plan.name.as_deref().unwrap_or(""),
                e.message
            ),
            code: e.code,
        })?;
        out.info(&format!(
            "  {}: restored {}",
            plan.name.as_deref().unwrap_or(""),
            manifest.backup_id
        ));
        results.push(serde_json::json!({
            "datastore": plan.name,
            "backup_id": manifest.backup_id,
            "target": outcome.target,
            "summary": outcome.summary,
            "safety_backup": safety.as_ref().map(|m| &m.backup_id),
        }));
    }
    out.emit(
        &serde_json::json!({"set_id": id, "restored": results}),
        || {
            let mut s = format!("restored backup set {id}\n");
            for r in &results {
                s.push_str(&format!(
                    "  {} <- {}{}\n",
                    r["datastore"].as_str().unwrap_or(""),
                    r["backup_id"].as_str().unwrap_or(""),
                    r["safety_backup"]
                        .as_str()
                        .map(|x| format!(" (safety backup {x})"))
                        .unwrap_or_default()
                ));
            }
            s
        },
    );
    Ok(())
}
