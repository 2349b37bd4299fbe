//! `dbseal drill` of a datastore whose newest backup is a physical base backup: the
//! point-in-time drill the runbooks ask for. The base backup is restored into a
//! temporary data directory (as `restore --pgdata DIR --latest` does), a private
//! PostgreSQL is started on it with the configured binaries (Unix socket only, in a
//! directory only its user can enter; trust authentication from a private `hba_file`;
//! archiving off), it replays every archived WAL segment through `dbseal wal-fetch` and
//! promotes, and the result is checked:
//!
//! - recovery ended (the server left recovery) and replay reached the newest archived
//!   segment (else WAL was missing or unreadable);
//! - every database that accepts connections answers;
//! - `pg_amcheck --all` (heap and B-tree checks of every relation, which also reads
//!   every page and so checks page checksums) passes, when the role is a superuser
//!   and `pg_amcheck` is installed (else the message says it was skipped).
//!
//! The server is stopped and the directory removed afterwards, also when a step fails
//! or the drill is cancelled (a guard does it on drop). When dbseal runs as root the
//! directory belongs to the `postgres` user, who runs the server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backup_core::ops::drill::ReplayDrill;
use backup_core::ops::{KeyOptions, OpContext};
use backup_core::{Error, ErrorKind, Manifest, Result};

use super::pgdata::{restore_backup_into_pgdata, PgdataOutcome, PitrOptions};
use super::StoreLocation;
use crate::config::{Binaries, PG_BIN_DIR_ENV};
use crate::physical::TargetAction;
use crate::wal::{Lsn, WalArchive, WalFile};

/// How a drill's `restore_command` reaches the store: the store as the front-end was
/// told, and the `dbseal` binary that runs `wal-fetch`.
#[derive(Debug, Clone)]
pub struct ReplayAccess {
    /// The store.
    pub location: StoreLocation,
    /// The `dbseal` binary (`None`: the drill fails saying how to give one).
    pub dbseal: Option<PathBuf>,
}

/// The temporary directory of a drill: the server is stopped and the directory removed
/// when this is dropped (success, failure or a cancelled future alike).
struct Scratch {
    dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    pg_ctl: PathBuf,
    /// The user that runs the server (when dbseal runs as root).
    run_as: Option<String>,
}

impl Scratch {
    fn command(&self, program: &Path) -> std::process::Command {
        let mut c = match &self.run_as {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => std::process::Command::new(program),
        };
        c.stdin(std::process::Stdio::null());
        c
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all.get(all.len().saturating_sub(lines)..)
            .unwrap_or_default()
            .join("\n")
    }

    fn running(&self) -> bool {
        self.pgdata.join("postmaster.pid").exists()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.running() {
            let _ = self
                .command(&self.pg_ctl)
                .arg("-D")
                .arg(&self.pgdata)
                .args(["-m", "immediate", "-w", "-t", "60", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn am_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `(uid, gid)` of `user` from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == user).then_some(())?;
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("drill: cannot {what} {}", path.display());
    move |e| Error::io(context, e)
}

fn single_quoted(path: &Path) -> Result<String> {
    let s = path.to_string_lossy();
    if s.contains('\'') {
        return Err(Error::Config(format!(
            "drill: the temporary directory {s} holds a quote: set TMPDIR to a plain path"
        )));
    }
    Ok(format!("'{s}'"))
}

/// A datastore-level error of the drill.
fn failed(kind: ErrorKind, message: String) -> Error {
    Error::datastore("postgres drill", kind, message)
}

/// The point-in-time drill of the physical base backup `manifest` (see the module).
pub async fn replay_drill(
    ctx: &OpContext,
    manifest: &Manifest,
    keys: &KeyOptions,
    access: &ReplayAccess,
) -> Result<ReplayDrill> {
    let name = &manifest.datastore.name;
    let dbseal = access.dbseal.clone().ok_or_else(|| {
        Error::Config(
            "a point-in-time drill runs `dbseal wal-fetch` as restore_command: put the dbseal binary on the PATH (Python: or set DBSEAL_BIN)".into(),
        )
    })?;
    let ds = ctx.config.as_deref().and_then(|c| c.datastores.get(name));
    let bin_dir = ds
        .and_then(|d| d.options.get_str("pg-bin-dir"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os(PG_BIN_DIR_ENV).map(PathBuf::from));
    let binaries = Binaries::in_dir(bin_dir);
    let pg_ctl = binaries.tool("pg_ctl").await?;
    let run_as = if am_root() {
        Some("postgres".to_string())
    } else {
        None
    };
    let owner = match &run_as {
        Some(user) => Some(user_ids(user).ok_or_else(|| {
            Error::Config(format!(
                "drill: PostgreSQL does not run as root and there is no `{user}` user to run the restored cluster as: create it, or run dbseal as the user that runs PostgreSQL"
            ))
        })?),
        None => None,
    };

    // The temporary tree, owned by the server's user.
    let dir = std::env::temp_dir().join(format!(
        "dbseal-drill-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir(&dir).map_err(io("create", &dir))?;
    let scratch = Scratch {
        pgdata: dir.join("data"),
        socket_dir: dir.join("socket"),
        log: dir.join("server.log"),
        dir,
        pg_ctl: pg_ctl.path.clone(),
        run_as,
    };
    let hba = scratch.dir.join("pg_hba.conf");
    std::fs::create_dir(&scratch.socket_dir).map_err(io("create", &scratch.socket_dir))?;
    std::fs::write(&hba, "local all all trust\n").map_err(io("write", &hba))?;
    std::fs::write(&scratch.log, "").map_err(io("write", &scratch.log))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(&scratch.dir, private.clone())
            .map_err(io("restrict", &scratch.dir))?;
        std::fs::set_permissions(&scratch.socket_dir, private)
            .map_err(io("restrict", &scratch.socket_dir))?;
        if let Some((uid, gid)) = owner {
            for p in [&scratch.dir, &scratch.socket_dir, &hba, &scratch.log] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(io("chown", p))?;
            }
        }
    }

    // 1. Restore: download, decrypt, decompress and unpack (they overlap in one stream).
    let clock = Instant::now();
    ctx.info(format!(
        "drill: restoring {} into {} (point in time: all archived WAL)",
        manifest.backup_id,
        scratch.pgdata.display()
    ));
    let pitr = PitrOptions {
        pgdata: Some(scratch.pgdata.clone()),
        latest: true,
        target_action: Some(TargetAction::Promote),
        ..Default::default()
    };
    let outcome = restore_backup_into_pgdata(
        ctx,
        &manifest.backup_id.to_string(),
        &pitr,
        (keys, &access.location),
        false,
        || Ok(dbseal),
    )
    .await?;
    let warnings: Vec<String> = match outcome {
        PgdataOutcome::Restored(r) => r
            .summary
            .into_iter()
            .filter(|l| l.starts_with("warning:"))
            .collect(),
        PgdataOutcome::Planned(_) => Vec::new(),
    };
    let restore_seconds = clock.elapsed().as_secs_f64();
    let version = std::fs::read_to_string(scratch.pgdata.join("PG_VERSION")).unwrap_or_default();
    if version.trim().parse::<u32>().ok() != Some(pg_ctl.major) {
        return Err(failed(
            ErrorKind::VersionMismatch,
            format!(
                "the base backup {} is PostgreSQL {}, {} is {}: set pg-bin-dir in [datastores.{name}.options] (or {PG_BIN_DIR_ENV}) to that version's binaries",
                manifest.backup_id,
                version.trim(),
                pg_ctl.path.display(),
                pg_ctl.version
            ),
        ));
    }
    // A data directory whose configuration lived elsewhere (Debian's /etc/postgresql).
    let conf = scratch.pgdata.join("postgresql.conf");
    if !conf.exists() {
        std::fs::write(&conf, "# written by dbseal drill\n").map_err(io("write", &conf))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&conf, Some(uid), Some(gid)).map_err(io("chown", &conf))?;
        }
    }

    // 2. Recovery: start the server and wait until it has replayed the archive and
    // promoted, or has stopped.
    let clock = Instant::now();
    let port = 5432;
    let settings = format!(
        "-p {port} -k {} -c listen_addresses='' -c unix_socket_permissions=0700 -c hba_file={} -c archive_mode=off -c ssl=off -c logging_collector=off -c log_destination=stderr",
        single_quoted(&scratch.socket_dir)?,
        single_quoted(&hba)?
    );
    ctx.info(format!(
        "drill: starting PostgreSQL {} on the restored data directory and replaying the WAL archive of `{name}`",
        pg_ctl.version
    ));
    let out = scratch
        .command(&scratch.pg_ctl)
        .arg("-D")
        .arg(&scratch.pgdata)
        .arg("-l")
        .arg(&scratch.log)
        .args(["-W", "-o", &settings, "start"])
        .output()
        .map_err(io("run", &scratch.pg_ctl))?;
    if !out.status.success() {
        return Err(failed(
            ErrorKind::Other,
            format!(
                "pg_ctl start failed ({}): {}\n--- server log ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                scratch.log_tail(30)
            ),
        ));
    }
    let users: Vec<String> = ds
        .and_then(|d| {
            d.user.clone().or_else(|| {
                d.url
                    .as_deref()
                    .and_then(|u| url::Url::parse(u).ok())
                    .map(|u| u.username().to_string())
                    .filter(|u| !u.is_empty())
            })
        })
        .into_iter()
        .chain(["postgres".to_string()])
        .collect();
    let connect = |user: &str, database: &str| {
        let config = crate::PostgresConfig {
            host: Some(scratch.socket_dir.to_string_lossy().into_owned()),
            port: Some(port),
            user: Some(user.to_string()),
            database: Some(database.to_string()),
            ..Default::default()
        };
        async move { config.resolve()?.connect().await.map_err(Error::from) }
    };
    let mut started_seen = Instant::now();
    let (client, user) = loop {
        if ctx.cancel.is_cancelled() {
            return Err(Error::Interrupted(
                "drill cancelled during recovery: the scratch cluster is stopped and removed"
                    .into(),
            ));
        }
        let mut last_error = String::new();
        let mut promoted = None;
        for user in &users {
            match connect(user, "template1").await {
                Ok(c) => match c.query_one("SELECT pg_is_in_recovery()", &[]).await {
                    Ok(row) if !row.get::<_, bool>(0) => {
                        promoted = Some((c, user.clone()));
                        break;
                    }
                    Ok(_) => last_error = "still in recovery".into(),
                    Err(e) => last_error = e.to_string(),
                },
                Err(e) => last_error = e.to_string(),
            }
        }
        if let Some(p) = promoted {
            break p;
        }
        if scratch.running() {
            started_seen = Instant::now();
        } else if started_seen.elapsed() > Duration::from_secs(5) {
            // pg_ctl -W returns before the postmaster writes its pid file; a server that
            // has been gone for seconds has stopped: recovery failed.
            let log = std::fs::read_to_string(&scratch.log).unwrap_or_default();
            let why: Vec<&str> = [
                log.lines()
                    .rfind(|l| l.starts_with("dbseal: error:") && !l.contains("(normal at")),
                log.lines().rfind(|l| l.contains("FATAL:")),
            ]
            .into_iter()
            .flatten()
            .collect();
            let why = if why.is_empty() {
                format!("last connection attempt: {last_error}")
            } else {
                why.join(" / ")
            };
            return Err(failed(
                ErrorKind::Verification,
                format!(
                    "the restored cluster of {} stopped before recovery ended: {why}\n--- server log ---\n{}{}",
                    manifest.backup_id,
                    scratch.log_tail(30),
                    warnings
                        .iter()
                        .map(|w| format!("\n{w}"))
                        .collect::<String>()
                ),
            ));
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    };
    let recovery_seconds = clock.elapsed().as_secs_f64();

    // 3. Verify.
    let clock = Instant::now();
    let sql_error = |e: tokio_postgres::Error| {
        failed(
            ErrorKind::Verification,
            format!("the restored cluster did not answer: {e}"),
        )
    };
    let row = client
        .query_one(
            "SELECT pg_last_wal_replay_lsn()::text, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), coalesce(pg_last_xact_replay_timestamp()::text, '')",
            &[],
        )
        .await
        .map_err(sql_error)?;
    let replayed: Option<String> = row.get(0);
    let superuser: bool = row.get::<_, Option<bool>>(1).unwrap_or(false);
    let last_xact: String = row.get(2);
    let replayed: Lsn = replayed
        .as_deref()
        .unwrap_or("0/0")
        .parse()
        .map_err(|e: Error| failed(ErrorKind::Verification, e.to_string()))?;
    let mut checks = vec![format!(
        "recovery ended and promoted; replayed to {replayed}"
    )];
    let wal = crate::physical::base_backup_wal(manifest)?;
    let status = WalArchive::new(ctx.store.clone(), name)?.status().await?;
    if let Some(newest) = status.newest_segment.as_deref().and_then(WalFile::parse) {
        let start = newest
            .segno(wal.wal_segment_size)
            .saturating_mul(wal.wal_segment_size);
        if replayed.0 < start {
            return Err(failed(
                ErrorKind::Verification,
                format!(
                    "recovery of {} stopped at {replayed}, before the newest archived segment {} (which starts at {}): WAL between them is missing or unreadable\n--- server log ---\n{}",
                    manifest.backup_id,
                    newest.name,
                    Lsn(start),
                    scratch.log_tail(20)
                ),
            ));
        }
        checks.push(format!(
            "the newest archived segment {} was replayed",
            newest.name
        ));
    }
    if !last_xact.is_empty() {
        checks.push(format!("last transaction replayed: {last_xact}"));
    }
    let databases: Vec<String> = client
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .await
        .map_err(sql_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut relations = 0i64;
    for db in &databases {
        let c = connect(&user, db).await.map_err(|e| {
            failed(
                ErrorKind::Verification,
                format!("database `{db}` of the restored cluster refuses connections: {e}"),
            )
        })?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM pg_class", &[])
            .await
            .map_err(sql_error)?
            .get(0);
        relations = relations.saturating_add(n);
    }
    checks.push(format!(
        "{} database(s) answer ({relations} relations)",
        databases.len()
    ));
    drop(client);
    // pg_amcheck ships with the server binaries: beside pg_ctl (PATH may hold a link).
    let amcheck = std::fs::canonicalize(&pg_ctl.path)
        .ok()
        .and_then(|p| Some(p.parent()?.join("pg_amcheck")))
        .filter(|p| p.is_file())
        .map_or_else(|| binaries.find("pg_amcheck"), Ok);
    match (superuser, amcheck) {
        (true, Ok(amcheck)) => {
            ctx.info("drill: pg_amcheck --all (heap and B-tree checks of every relation)");
            let mut cmd = tokio::process::Command::from(scratch.command(&amcheck));
            cmd.arg("-h")
                .arg(&scratch.socket_dir)
                .args(["-p", &port.to_string(), "-U", &user])
                .args(["--all", "--install-missing", "--no-password"])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            backup_core::secret::restrict_env(&mut cmd, &[]);
            let out = tokio::select! {
                out = cmd.output() => out.map_err(io("run", &amcheck))?,
                _ = ctx.cancel.cancelled() => return Err(Error::Interrupted(
                    "drill cancelled during pg_amcheck: the scratch cluster is stopped and removed".into(),
                )),
            };
            if !out.status.success() {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                let head: Vec<&str> = text.lines().take(20).collect();
                return Err(failed(
                    ErrorKind::Verification,
                    format!(
                        "pg_amcheck found problems in the restored cluster of {} ({}):\n{}",
                        manifest.backup_id,
                        out.status,
                        head.join("\n")
                    ),
                ));
            }
            checks.push("pg_amcheck --all passed".into());
        }
        (false, _) => checks.push(format!(
            "pg_amcheck skipped: role `{user}` is not a superuser"
        )),
        (true, Err(e)) => checks.push(format!("pg_amcheck skipped: {e}")),
    }
    let verify_seconds = clock.elapsed().as_secs_f64();
    drop(scratch);
    Ok(ReplayDrill {
        phases: vec![
            ("restore".into(), restore_seconds),
            ("recovery".into(), recovery_seconds),
            ("verify".into(), verify_seconds),
        ],
        message: checks.join("; "),
    })
}
