//! Restore: the decrypted pg_dump archive into `pg_restore`, in one transaction.
//!
//! Safety argument (a corrupt, truncated, wrongly keyed or tampered artifact leaves the
//! target exactly as it was):
//!
//! - Everything is restored in ONE transaction. Any error of the input (the pipeline
//!   reports a failed check as a read error) makes the sink KILL the PostgreSQL client
//!   processes without closing their input cleanly: the server sees the connection drop
//!   and rolls the transaction back. A database the sink created is dropped again.
//! - The transaction must not commit before the input reached its clean end, i.e.
//!   before every digest and authentication check passed:
//!   - **Whole restore** (no `schemas`/`tables`): `pg_restore --single-transaction`
//!     writes into the database itself. It restores every data block, so it reads the
//!     archive up to its very last bytes before it commits; the pipeline holds the last
//!     plaintext chunk back until all checks passed, so pg_restore cannot commit early.
//!   - **Selective restore**: pg_restore stops reading once it has the objects it was
//!     asked for, so it could commit before the end of the artifact was checked. Here
//!     pg_restore only turns the archive into SQL (`--file=-`) and psql executes it
//!     inside a `BEGIN` the sink writes first; the sink writes the `COMMIT` only after
//!     the artifact's clean end. Until then the transaction stays open; on an error psql
//!     is killed, and if dbseal itself dies (even by SIGKILL) psql's input ends without
//!     the `COMMIT` and the server rolls the transaction back.
//! - A non-empty target is refused unless `replace`. A whole-database `replace` restores
//!   into a staging database beside the target and renames it in only after the commit
//!   (both renames in one transaction, see [`swap`]), so the target keeps serving its
//!   old contents until then and ends up exactly as the backup, with nothing of the old
//!   contents left. A selective `replace` (`--table`/`--schema`), or one by a role that
//!   may not create databases, runs `--clean --if-exists` inside the single transaction.

use std::process::Stdio;

use async_trait::async_trait;
use backup_core::sink::StreamReader;
use backup_core::{Error, Manifest, Result, Sink, SinkReport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};

use crate::config::{
    major_of, quote_ident, tool_failure, Connection, PostgresConfig, StderrTail, Tool,
};
use crate::error::{PgResult, PostgresError};
use crate::format::FORMAT;
use crate::source::KIND;

mod swap;
pub use swap::{leftovers, staging_name, swap_in_database, TargetShape};

/// Where and how to restore. Field names follow `dbseal restore`'s flags.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreTarget {
    /// Create the target database (from `template0`) if it does not exist.
    pub create_db: bool,
    /// Replace a non-empty database: the whole database through a staging copy renamed
    /// in on success (see the module docs); with `schemas`/`tables`, the objects the
    /// backup contains (`pg_restore --clean --if-exists`, inside the single transaction).
    pub replace: bool,
    /// Restore only these schemas (`pg_restore --schema`).
    pub schemas: Vec<String>,
    /// Restore only these tables (`pg_restore --table`; views, sequences and
    /// materialized views match too).
    pub tables: Vec<String>,
    /// Do not restore object ownership (`--no-owner`).
    pub no_owner: bool,
    /// Do not restore privileges (`--no-privileges`).
    pub no_privileges: bool,
    /// Restore as this role (`--role`, `SET ROLE`).
    pub role: Option<String>,
    /// Database to connect to for `CREATE DATABASE` / `DROP DATABASE` (default
    /// `postgres`).
    pub maintenance_db: Option<String>,
}

impl RestoreTarget {
    fn selective(&self) -> bool {
        !self.schemas.is_empty() || !self.tables.is_empty()
    }

    fn validate(&self) -> PgResult<()> {
        if self
            .schemas
            .iter()
            .chain(&self.tables)
            .any(|p| p.trim().is_empty())
        {
            return Err(PostgresError::Config(
                "--schema and --table need a non-empty name".into(),
            ));
        }
        if self.role.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(PostgresError::Config("--role needs a role name".into()));
        }
        Ok(())
    }

    /// The pg_restore flags selecting and shaping what is restored.
    fn pg_restore_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for s in &self.schemas {
            args.push(format!("--schema={s}"));
        }
        for t in &self.tables {
            args.push(format!("--table={t}"));
        }
        if self.no_owner {
            args.push("--no-owner".into());
        }
        if self.no_privileges {
            args.push("--no-privileges".into());
        }
        if let Some(r) = &self.role {
            args.push(format!("--role={r}"));
        }
        if self.replace {
            args.push("--clean".into());
            args.push("--if-exists".into());
        }
        args
    }
}

/// The restore side of PostgreSQL: a [`Sink`] that runs pg_restore (see the module
/// docs for why a bad artifact never reaches a commit).
pub struct PostgresSink {
    conn: Connection,
    target: RestoreTarget,
    kinds: Vec<String>,
    skip_empty_check: bool,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("conn", &self.conn)
            .field("target", &self.target)
            .finish()
    }
}

impl PostgresSink {
    /// A sink into the database `config` names. Validates the configuration now.
    pub fn new(config: &PostgresConfig, target: RestoreTarget) -> Result<Self> {
        Self::with_connection(config.resolve()?, target)
    }

    /// A sink over an already resolved connection.
    pub fn with_connection(conn: Connection, target: RestoreTarget) -> Result<Self> {
        target.validate()?;
        Ok(PostgresSink {
            conn,
            target,
            kinds: vec![KIND.to_string()],
            skip_empty_check: false,
        })
    }

    /// Also accepts backups of these datastore kinds (e.g. `timescale`, whose data
    /// artifact is a pg_dump archive too).
    pub fn accept_kinds(mut self, kinds: &[&str]) -> Self {
        self.kinds.extend(kinds.iter().map(|k| k.to_string()));
        self
    }

    /// The target connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Skips the emptiness check (the caller created the database itself).
    pub fn assume_empty(mut self) -> Self {
        self.skip_empty_check = true;
        self
    }

    /// What a restore of `manifest` would do, one line each (for `--dry-run`). Touches
    /// nothing.
    pub fn plan(&self, manifest: &Manifest) -> Vec<String> {
        let mut lines = vec![format!(
            "read {} ({} bytes stored, {} bytes of pg_dump archive)",
            manifest.artifact.key, manifest.artifact.stored_size, manifest.artifact.plaintext_size
        )];
        let db = format!("{}/{}", self.conn.server(), self.conn.database());
        if self.target.create_db {
            lines.push(format!("create database {db} from template0 if it does not exist (dropped again if the restore fails)"));
            match DatabaseProperties::from_facts(
                &manifest.contents.facts,
                self.conn.database(),
                self.target.no_owner,
            ) {
                Ok(props) if props.is_empty() => {}
                Ok(props) => lines.push(format!(
                    "if created: give {db} the source database's {} (as pg_restore --create does)",
                    props.describe()
                )),
                Err(e) => lines.push(format!("refuse: {e}")),
            }
        }
        let tables = manifest.contents.counts.get("tables");
        if self.target.selective() {
            lines.push(format!(
                "restore schemas [{}] tables [{}] into {db} in one transaction (pg_restore | psql, COMMIT written last by dbseal)",
                self.target.schemas.join(", "),
                self.target.tables.join(", ")
            ));
        } else {
            lines.push(format!(
                "restore {} tables ({} rows) into {db} in one transaction (pg_restore --single-transaction)",
                tables.map_or(0, |t| t.len()),
                tables.map_or(0, |t| t.values().sum::<u64>())
            ));
        }
        if self.target.replace && self.target.selective() {
            lines.push(format!(
                "drop and recreate, in the same transaction, every object of the backup that exists in {db} (--clean --if-exists)"
            ));
        } else if self.target.replace {
            lines.push(format!(
                "if {db} holds objects: restore into a staging database beside it, then rename {db} aside and the staging one in (one transaction; sessions on {db} are ended) and drop the old one; where the role may not create databases, --clean --if-exists in place"
            ));
        } else {
            lines.push(format!("refuse if {db} is not empty"));
        }
        lines
    }

    fn check_manifest(&self, manifest: &Manifest) -> PgResult<()> {
        let kind = &manifest.datastore.kind;
        if !self.kinds.iter().any(|k| k == kind) {
            return Err(PostgresError::WrongArtifact(format!(
                "backup {} is a `{kind}` backup (datastore {}), not a PostgreSQL one: it cannot be restored into PostgreSQL",
                manifest.backup_id, manifest.datastore.name
            )));
        }
        if manifest.artifact.format != FORMAT {
            return Err(PostgresError::WrongArtifact(format!(
                "backup {}: artifact {} has format `{}`, not a pg_dump custom archive (`{FORMAT}`)",
                manifest.backup_id, manifest.artifact.key, manifest.artifact.format
            )));
        }
        Ok(())
    }

    fn check_tool(&self, tool: &Tool, manifest: &Manifest) -> PgResult<()> {
        let dumped_by = manifest
            .source
            .get("pg_dump_version")
            .and_then(|v| v.as_str())
            .or_else(|| {
                manifest
                    .contents
                    .facts
                    .get("pg_dump_version")
                    .map(String::as_str)
            });
        if let Some(v) = dumped_by {
            if let Some(m) = major_of(v) {
                if tool.major < m {
                    return Err(PostgresError::Version(format!(
                        "backup {} was made by pg_dump {v}; {} {} ({}) cannot read its archive. Install the PostgreSQL {m} client (e.g. postgresql-client-{m}) and point --pg-bin-dir / PG_BIN_DIR at its bin directory",
                        manifest.backup_id, tool.name, tool.version, tool.path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks, changing nothing, that a restore could start: the target database
    /// exists (or `create_db`), and it is empty unless `replace`. For `--dry-run` and
    /// for callers that want to fail before downloading anything.
    pub async fn check_target(&self) -> Result<()> {
        match self.conn.connect().await {
            Ok(client) => {
                if !self.target.replace && !self.skip_empty_check {
                    check_empty(&self.conn, &client).await?;
                }
                Ok(())
            }
            Err(PostgresError::NoSuchDatabase { .. }) if self.target.create_db => Ok(()),
            Err(PostgresError::NoSuchDatabase { database, server }) => {
                Err(PostgresError::Config(format!(
                    "target database \"{database}\" does not exist on {server}: create it, or pass --create-db"
                ))
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes sure the target database exists (creating it if asked) and is empty
    /// (unless `replace`). Returns whether this sink created it.
    async fn prepare_target(&self) -> PgResult<bool> {
        match self.conn.connect().await {
            Ok(client) => {
                if !self.target.replace && !self.skip_empty_check {
                    check_empty(&self.conn, &client).await?;
                }
                Ok(false)
            }
            Err(PostgresError::NoSuchDatabase { database, server }) => {
                if !self.target.create_db {
                    return Err(PostgresError::Config(format!(
                        "target database \"{database}\" does not exist on {server}: create it, or pass --create-db"
                    )));
                }
                create_database(&self.maintenance(), self.conn.database()).await?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    fn maintenance(&self) -> Connection {
        self.conn.with_database(
            self.target
                .maintenance_db
                .clone()
                .unwrap_or_else(|| "postgres".to_string()),
        )
    }

    async fn run(&self, manifest: &Manifest, input: StreamReader<'_>) -> Result<SinkReport> {
        let pg_restore = self.conn.binaries().tool("pg_restore").await?;
        self.check_tool(&pg_restore, manifest)?;
        let psql = if self.target.selective() {
            Some(self.conn.binaries().tool("psql").await?)
        } else {
            None
        };
        let preamble = self.preamble(manifest);
        let mut procs = Processes::start(
            &self.conn,
            &self.target,
            &pg_restore,
            psql.as_ref(),
            preamble,
        )?;
        let fed = feed(&mut *input, procs.stdin.take().expect("piped")).await;
        match fed {
            Fed::InputFailed(e, bytes, stdin) => {
                procs.kill().await;
                drop(stdin);
                tracing::warn!(bytes, error = %e, "artifact failed while restoring; pg_restore killed, transaction rolled back");
                Err(e)
            }
            Fed::Complete(bytes) => {
                procs.finish(false).await?;
                Ok(SinkReport {
                    bytes,
                    summary: self.summary(manifest),
                })
            }
            Fed::ReaderStopped(mut bytes) => {
                // pg_restore stopped reading: it failed, or (selective restore) it has
                // all it needs. Nothing may commit before the input's clean end.
                let failed = match procs.pg_restore.wait().await {
                    Ok(status) => !status.success(),
                    Err(_) => true,
                };
                if !failed {
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        match input.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(n) => bytes += n as u64,
                            Err(e) => {
                                procs.kill().await;
                                return Err(Error::from_io(e, "reading the artifact"));
                            }
                        }
                    }
                }
                procs.finish(true).await?;
                Ok(SinkReport {
                    bytes,
                    summary: self.summary(manifest),
                })
            }
        }
    }

    /// SQL run first in a selective restore's transaction: pg_restore `--schema` /
    /// `--table` restore the objects *in* a schema but not the schema itself, so the
    /// schemas named, and those of the tables named (from the manifest's table list),
    /// are created if missing.
    fn preamble(&self, manifest: &Manifest) -> String {
        let mut schemas: Vec<String> = self.target.schemas.clone();
        if let Some(tables) = manifest.contents.counts.get("tables") {
            for t in &self.target.tables {
                for key in tables.keys() {
                    if let Some(ns) = key
                        .strip_suffix(t.as_str())
                        .and_then(|k| k.strip_suffix('.'))
                    {
                        schemas.push(ns.to_string());
                    }
                }
            }
        }
        schemas.sort();
        schemas.dedup();
        schemas
            .iter()
            .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {};\n", quote_ident(s)))
            .collect()
    }

    /// Applies the source database's properties (see [`DatabaseProperties`]) to the
    /// target database, which this restore created. The settings are required (an
    /// error fails the restore, which then drops the database); the comment and the
    /// owner are applied where the restoring role may, with a warning otherwise.
    /// Returns summary lines.
    async fn apply_database_properties(&self, manifest: &Manifest) -> PgResult<Vec<String>> {
        let db = self.conn.database();
        let props =
            DatabaseProperties::from_facts(&manifest.contents.facts, db, self.target.no_owner)?;
        let mut lines = Vec::new();
        if props.is_empty() {
            return Ok(lines);
        }
        let client = self.conn.connect().await?;
        if !props.settings.is_empty() {
            let sql = format!("BEGIN;\n{}\nCOMMIT;", props.settings.join("\n"));
            client.batch_execute(&sql).await.map_err(|e| {
                self.conn.query_error(
                    &format!("applying the source database's settings to \"{db}\""),
                    e,
                )
            })?;
            lines.push(format!(
                "applied the source database's settings to {db} ({} statements)",
                props.settings.len()
            ));
        }
        for (what, sql) in [("comment", &props.comment), ("owner", &props.owner)] {
            let Some(sql) = sql else { continue };
            match client.batch_execute(sql).await {
                Ok(()) => lines.push(format!("applied the source database's {what} to {db}")),
                Err(e) => {
                    let e = self
                        .conn
                        .query_error(&format!("setting the {what} of \"{db}\""), e);
                    tracing::warn!(error = %e, "the restored database \"{db}\" keeps no {what} from its source");
                }
            }
        }
        Ok(lines)
    }

    fn summary(&self, manifest: &Manifest) -> Vec<String> {
        let db = format!("{}/{}", self.conn.server(), self.conn.database());
        if self.target.selective() {
            return vec![format!(
                "restored schemas [{}] tables [{}] of backup {} into {db}",
                self.target.schemas.join(", "),
                self.target.tables.join(", "),
                manifest.backup_id
            )];
        }
        let tables = manifest.contents.counts.get("tables");
        vec![format!(
            "restored {} tables ({} rows) of backup {} into {db}",
            tables.map_or(0, |t| t.len()),
            tables.map_or(0, |t| t.values().sum::<u64>()),
            manifest.backup_id
        )]
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn restore(
        &mut self,
        manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        self.check_manifest(manifest)?;
        let mut notes = Vec::new();
        if self.target.replace && !self.target.selective() && !self.skip_empty_check {
            if let Some(shape) = self.swap_shape(&mut notes).await? {
                let mut report = self.restore_by_swap(&shape, manifest, input).await?;
                report.summary.extend(notes);
                return Ok(report);
            }
        }
        let created = self.prepare_target().await?;
        let mut result = self.run(manifest, input).await;
        if created {
            // A database this restore created gets the source database's settings,
            // comment and owner, as one `pg_restore --create` creates would.
            if let Ok(report) = &mut result {
                match self.apply_database_properties(manifest).await {
                    Ok(lines) => report.summary.extend(lines),
                    Err(e) => result = Err(e.into()),
                }
            }
        }
        if result.is_err() && created {
            let db = self.conn.database();
            if let Err(e) = drop_database(&self.maintenance(), db).await {
                // The server may be gone (killed midway): say what is left and how to
                // remove it, since CREATE DATABASE cannot be undone by a rollback.
                tracing::warn!(
                    error = %e,
                    "the database \"{db}\" this restore created could not be dropped and is left (empty or partly restored): drop it with DROP DATABASE \"{db}\" once the server answers"
                );
            }
        }
        if let Ok(report) = &mut result {
            report.summary.extend(notes);
        }
        result
    }
}

impl PostgresSink {
    /// For a whole-database `replace`: the target's shape when it exists, holds objects
    /// and the role may replace it by rename; `None` (restore in place) otherwise, with
    /// a note why in `notes`. Databases left by an earlier crashed replace are listed
    /// in `notes` too.
    async fn swap_shape(&self, notes: &mut Vec<String>) -> PgResult<Option<TargetShape>> {
        let client = match self.conn.connect().await {
            Ok(c) => c,
            Err(PostgresError::NoSuchDatabase { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if check_empty(&self.conn, &client).await.is_ok() {
            return Ok(None);
        }
        drop(client);
        let maint = self.maintenance();
        let target = self.conn.database();
        if maint.database() == target {
            notes.push(format!(
                "replaced in place, in one transaction (pg_restore --clean --if-exists): \"{target}\" is the maintenance database, which cannot be renamed while connected to; objects of the target that are not in the backup were kept"
            ));
            return Ok(None);
        }
        for line in leftovers(&maint, target).await? {
            tracing::warn!("{line}");
            notes.push(line);
        }
        let shape = TargetShape::read(&maint, target).await?;
        if shape.is_none() {
            notes.push(format!(
                "replaced in place, in one transaction (pg_restore --clean --if-exists): the role may not create databases or does not own \"{target}\", so objects of the target that are not in the backup were kept"
            ));
        }
        Ok(shape)
    }

    /// Restores into a staging database in the target's shape and swaps it in.
    async fn restore_by_swap(
        &self,
        shape: &TargetShape,
        manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        let maint = self.maintenance();
        let target = self.conn.database().to_string();
        let staging = staging_name(&target);
        shape.create_staging(&maint, &staging).await?;
        let inner = PostgresSink {
            conn: self.conn.with_database(&staging),
            target: RestoreTarget {
                replace: false,
                create_db: false,
                ..self.target.clone()
            },
            kinds: self.kinds.clone(),
            skip_empty_check: true,
        };
        let restored = async {
            let mut report = inner.run(manifest, input).await?;
            report.summary = self.summary(manifest);
            for line in inner.apply_database_properties(manifest).await? {
                report.summary.push(line.replace(&staging, &target));
            }
            let props = DatabaseProperties::from_facts(
                &manifest.contents.facts,
                &staging,
                self.target.no_owner,
            )?;
            if props.owner.is_none() {
                shape.keep_owner(&maint, &staging).await?;
            }
            report
                .summary
                .extend(shape.apply_grants(&maint, &staging).await?);
            match swap_in_database(&maint, &staging, &target).await? {
                None => report.summary.push(format!(
                    "replaced \"{target}\": restored into a staging database, renamed in, the old one dropped"
                )),
                Some(kept) => report.summary.push(format!(
                    "replaced \"{target}\"; the old one was kept as \"{kept}\": drop it when done"
                )),
            }
            Ok::<_, Error>(report)
        }
        .await;
        if restored.is_err() {
            if let Err(e) = drop_database(&maint, &staging).await {
                tracing::warn!(
                    error = %e,
                    "the staging database \"{staging}\" of the failed restore could not be dropped (the target \"{target}\" is unchanged): drop it with DROP DATABASE \"{staging}\" once the server answers"
                );
            }
        }
        restored
    }
}

/// What `pg_restore --create` gives the database it creates besides its objects, read
/// from the archive's `DATABASE PROPERTIES`, `COMMENT` on the database and `DATABASE`
/// entries (the manifest's `database_settings_sql`, `database_comment_sql` and
/// `database_owner` facts) and rewritten to name the target database instead of the
/// source's.
#[derive(Debug, Default, PartialEq)]
struct DatabaseProperties {
    /// `ALTER DATABASE … SET …`, `ALTER ROLE … IN DATABASE … SET …`, `CONNECTION
    /// LIMIT`, `IS_TEMPLATE`: one statement each (a line continuing a multi-line value
    /// stays with its statement).
    settings: Vec<String>,
    comment: Option<String>,
    owner: Option<String>,
}

impl DatabaseProperties {
    fn from_facts(
        facts: &std::collections::BTreeMap<String, String>,
        target: &str,
        no_owner: bool,
    ) -> PgResult<Self> {
        let mut props = DatabaseProperties::default();
        let Some(source) = facts.get("database") else {
            return Ok(props);
        };
        let target_ident = quote_ident(target);
        if let Some(sql) = facts.get("database_settings_sql") {
            for line in sql.lines() {
                if line.trim().is_empty() {
                    continue;
                }
                // A line inside the previous statement's quoted value (one with an
                // odd number of quotes so far: pg_dump doubles a quote in a literal)
                // continues it; any other line must be a statement about the database.
                match props.settings.last_mut() {
                    Some(last) if last.matches('\'').count() % 2 == 1 => {
                        last.push('\n');
                        last.push_str(line);
                    }
                    _ => props.settings.push(
                        rewrite_database_name(line, source, &target_ident)?
                            .ok_or_else(|| unexpected_statement(line))?,
                    ),
                }
            }
        }
        if let Some(sql) = facts.get("database_comment_sql") {
            props.comment = Some(
                rewrite_database_name(sql, source, &target_ident)?
                    .ok_or_else(|| unexpected_statement(sql))?,
            );
        }
        if let Some(owner) = facts.get("database_owner").filter(|_| !no_owner) {
            props.owner = Some(format!(
                "ALTER DATABASE {target_ident} OWNER TO {};",
                quote_ident(owner)
            ));
        }
        Ok(props)
    }

    fn is_empty(&self) -> bool {
        self.settings.is_empty() && self.comment.is_none() && self.owner.is_none()
    }

    /// What there is to apply, for a plan: e.g. "settings, owner".
    fn describe(&self) -> String {
        [
            (!self.settings.is_empty(), "settings"),
            (self.comment.is_some(), "comment"),
            (self.owner.is_some(), "owner"),
        ]
        .into_iter()
        .filter_map(|(present, what)| present.then_some(what))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

fn unexpected_statement(line: &str) -> PostgresError {
    let shown: String = line.chars().take(80).collect();
    PostgresError::WrongArtifact(format!(
        "the archive's database properties hold a statement dbseal cannot apply to another database: {shown}"
    ))
}

/// `line` with the database it names replaced by `target_ident`, if it is one of the
/// statements pg_dump writes for a database (`ALTER DATABASE d …`, `ALTER ROLE r IN
/// DATABASE d …`, `COMMENT ON DATABASE d …`); `None` for any other line. A statement
/// naming a database other than `source` is an error.
fn rewrite_database_name(line: &str, source: &str, target_ident: &str) -> PgResult<Option<String>> {
    let (head, rest) = if let Some(rest) = line.strip_prefix("ALTER DATABASE ") {
        ("ALTER DATABASE ".to_string(), rest)
    } else if let Some(rest) = line.strip_prefix("COMMENT ON DATABASE ") {
        ("COMMENT ON DATABASE ".to_string(), rest)
    } else if let Some(after_role) = line.strip_prefix("ALTER ROLE ") {
        let Some((_, role, rest)) = split_ident(after_role) else {
            return Ok(None);
        };
        let Some(rest) = rest.strip_prefix(" IN DATABASE ") else {
            return Ok(None);
        };
        (format!("ALTER ROLE {role} IN DATABASE "), rest)
    } else {
        return Ok(None);
    };
    match split_ident(rest) {
        Some((name, _, rest)) if name == source => {
            Ok(Some(format!("{head}{target_ident}{rest}")))
        }
        Some((name, _, _)) => Err(PostgresError::WrongArtifact(format!(
            "the archive's database properties name database \"{name}\", not the archive's own \"{source}\""
        ))),
        None => Err(unexpected_statement(line)),
    }
}

/// The SQL identifier at the start of `s` as pg_dump writes one (double-quoted with `""`
/// for a quote, or a bare word): its name, its text as written, and what follows it.
fn split_ident(s: &str) -> Option<(String, &str, &str)> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                name.push(c);
            } else if chars.peek().is_some_and(|&(_, next)| next == '"') {
                chars.next();
                name.push('"');
            } else {
                // `i` indexes `quoted`; the written identifier spans both quotes.
                let (written, rest) = s.split_at(i + 2);
                return Some((name, written, rest));
            }
        }
        None
    } else {
        let len = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        let (written, rest) = s.split_at(len);
        (len > 0).then(|| (written.to_string(), written, rest))
    }
}

/// Refuses a database holding any user object.
pub(crate) async fn check_empty(
    conn: &Connection,
    client: &tokio_postgres::Client,
) -> PgResult<()> {
    // Objects that belong to an extension (pg_depend 'e') are not the user's; plpgsql
    // and the public schema come with every database.
    let sql = r#"
WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
user_ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%'
)
SELECT what FROM (
  SELECT 'schema ' || quote_ident(n.nspname) AS what FROM user_ns n
   WHERE n.nspname <> 'public'
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_namespace'::regclass AND objid = n.oid)
  UNION ALL
  SELECT CASE c.relkind WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view ' WHEN 'S' THEN 'sequence '
         WHEN 'f' THEN 'foreign table ' WHEN 'c' THEN 'type ' ELSE 'table ' END || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_class'::regclass AND objid = c.oid)
  UNION ALL
  SELECT 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname)
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
   WHERE NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_proc'::regclass AND objid = p.oid)
  UNION ALL
  SELECT 'type ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname)
    FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
   WHERE t.typtype IN ('e', 'd', 'c', 'r', 'm') AND (t.typrelid = 0 OR t.typtype <> 'c')
     AND NOT EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_type'::regclass AND objid = t.oid)
  UNION ALL
  SELECT 'extension ' || quote_ident(extname) FROM pg_extension WHERE extname <> 'plpgsql'
  UNION ALL
  SELECT 'large object ' || oid FROM pg_largeobject_metadata
) objects LIMIT 6
"#;
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| conn.query_error("checking that the target is empty", e))?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut found: Vec<String> = rows.iter().take(5).map(|r| r.get::<_, String>(0)).collect();
    if rows.len() > 5 {
        found.push("…".into());
    }
    Err(PostgresError::NotEmpty {
        database: conn.database().to_string(),
        server: conn.server(),
        found: found.join(", "),
    })
}

/// `CREATE DATABASE name TEMPLATE template0` through the maintenance connection.
pub async fn create_database(maintenance: &Connection, name: &str) -> PgResult<()> {
    let client = maintenance.connect().await?;
    client
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(name)
        ))
        .await
        .map_err(|e| maintenance.query_error(&format!("creating database \"{name}\""), e))?;
    tracing::info!(database = name, "created database");
    Ok(())
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)` through the maintenance connection.
pub async fn drop_database(maintenance: &Connection, name: &str) -> PgResult<()> {
    let client = maintenance.connect().await?;
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| maintenance.query_error(&format!("dropping database \"{name}\""), e))?;
    tracing::info!(database = name, "dropped database");
    Ok(())
}

/// The client processes of one restore.
struct Processes {
    pg_restore: Child,
    pg_restore_err: Option<StderrTail>,
    stdin: Option<ChildStdin>,
    psql: Option<PsqlStage>,
}

struct PsqlStage {
    child: Child,
    stderr: Option<StderrTail>,
    /// Copies pg_restore's SQL into psql; closes psql's input only when told to.
    pump: tokio::task::JoinHandle<()>,
    /// Reports the end of the copy (all SQL handed to psql, or psql stopped reading).
    copied: Option<tokio::sync::oneshot::Receiver<std::io::Result<()>>>,
    /// Dropping it without sending makes the pump keep psql's input open; only a send
    /// closes it, which lets psql commit.
    commit: Option<tokio::sync::oneshot::Sender<()>>,
}

enum Fed {
    /// The input ended cleanly: every check passed.
    Complete(u64),
    /// The reader (pg_restore) stopped reading before the end of the input.
    ReaderStopped(u64),
    /// The input failed: the artifact is bad. Carries pg_restore's input, still
    /// open, so the caller can kill pg_restore before it could see a clean end.
    InputFailed(Error, u64, Option<ChildStdin>),
}

/// Copies `input` into pg_restore's stdin. Closes stdin only at the input's clean end.
async fn feed(input: StreamReader<'_>, stdin: ChildStdin) -> Fed {
    let mut stdin = Some(stdin);
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                // Do NOT close stdin: the caller kills the processes first.
                return Fed::InputFailed(Error::from_io(e, "reading the artifact"), bytes, stdin);
            }
        };
        bytes += n as u64;
        if let Some(w) = stdin.as_mut() {
            if let Err(e) = w.write_all(&buf[..n]).await {
                tracing::debug!(error = %e, "pg_restore stopped reading its input");
                return Fed::ReaderStopped(bytes);
            }
        }
    }
    drop(stdin);
    Fed::Complete(bytes)
}

impl Processes {
    fn start(
        conn: &Connection,
        target: &RestoreTarget,
        pg_restore: &Tool,
        psql: Option<&Tool>,
        preamble: String,
    ) -> PgResult<Self> {
        let mut cmd = backup_core::child::command(&pg_restore.path);
        cmd.arg("--format=custom").args(target.pg_restore_args());
        conn.apply_env(&mut cmd);
        cmd.stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a terminal's Ctrl-C reaches dbseal only, which
            // stops it in order (a killed client rolls its transaction back).
            .process_group(0);
        if psql.is_none() {
            cmd.arg("--single-transaction")
                .arg("--exit-on-error")
                .arg("--no-password")
                .arg(format!("--dbname={}", conn.conninfo()))
                .stdout(Stdio::null());
        } else {
            cmd.arg("--file=-").stdout(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|e| {
            PostgresError::Binary(format!("cannot start {}: {e}", pg_restore.path.display()))
        })?;
        let stdin = child.stdin.take();
        let err = StderrTail::spawn("pg_restore", child.stderr.take().expect("piped"));
        let psql_stage = match psql {
            None => None,
            Some(psql) => {
                let mut sql = child.stdout.take().expect("piped");
                let mut pcmd = backup_core::child::command(&psql.path);
                pcmd.arg("--no-psqlrc")
                    .arg("--quiet")
                    .arg("--no-password")
                    .arg("--set=ON_ERROR_STOP=1")
                    .arg("--file=-")
                    .arg(format!("--dbname={}", conn.conninfo()));
                conn.apply_env(&mut pcmd);
                pcmd.stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    // Its own process group: a terminal's Ctrl-C reaches dbseal only, which
                    // stops it in order (a killed client rolls its transaction back).
                    .process_group(0);
                let mut pchild = match pcmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = child.start_kill();
                        return Err(PostgresError::Binary(format!(
                            "cannot start {}: {e}",
                            psql.path.display()
                        )));
                    }
                };
                let mut pin = pchild.stdin.take().expect("piped");
                let perr = StderrTail::spawn("psql", pchild.stderr.take().expect("piped"));
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let (copied_tx, copied_rx) = tokio::sync::oneshot::channel();
                let pump = tokio::spawn(async move {
                    let copied = async {
                        pin.write_all(b"BEGIN;\n").await?;
                        pin.write_all(preamble.as_bytes()).await?;
                        tokio::io::copy(&mut sql, &mut pin).await?;
                        pin.flush().await
                    }
                    .await;
                    let ok = copied.is_ok();
                    let _ = copied_tx.send(copied);
                    // The COMMIT only on the signal. Not `psql --single-transaction`,
                    // which commits whenever its input ends — also when dbseal is
                    // killed. Without the signal, `pin` lives until psql has been killed.
                    if ok && rx.await.is_ok() {
                        let _ = pin.write_all(b"COMMIT;\n").await;
                        drop(pin);
                    }
                });
                Some(PsqlStage {
                    child: pchild,
                    stderr: Some(perr),
                    pump,
                    copied: Some(copied_rx),
                    commit: Some(tx),
                })
            }
        };
        Ok(Processes {
            pg_restore: child,
            pg_restore_err: Some(err),
            stdin,
            psql: psql_stage,
        })
    }

    /// Kills everything: the server rolls back the open transaction.
    async fn kill(&mut self) {
        let _ = self.pg_restore.start_kill();
        if let Some(p) = self.psql.as_mut() {
            let _ = p.child.start_kill();
            let _ = p.child.wait().await;
            // Only now may the pump drop psql's input.
            p.commit.take();
        }
        let _ = self.pg_restore.wait().await;
    }

    /// After the input's clean end: waits for pg_restore, then lets psql commit.
    async fn finish(&mut self, reader_stopped: bool) -> PgResult<()> {
        let status = self
            .pg_restore
            .wait()
            .await
            .map_err(|e| PostgresError::io("waiting for pg_restore", e))?;
        let restore_err = self.pg_restore_err.take().expect("once").text().await;
        if let Some(p) = self.psql.as_mut() {
            let copied = match p.copied.take().expect("once").await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::other("the SQL pump stopped")),
            };
            if !status.success() || copied.is_err() {
                // pg_restore failed, or psql failed (and stopped reading).
                let _ = p.child.start_kill();
                let pstatus = p.child.wait().await.ok();
                p.commit.take();
                let perr = p.stderr.take().expect("once").text().await;
                if let Some(ps) = pstatus.filter(|s| s.code().is_some_and(|c| c != 0)) {
                    return Err(tool_failure("psql", ps, &perr));
                }
                if !status.success() {
                    return Err(tool_failure("pg_restore", status, &restore_err));
                }
                return Err(PostgresError::Tool {
                    tool: "psql".into(),
                    status: "stopped reading the restore script".into(),
                    detail: if perr.is_empty() {
                        String::new()
                    } else {
                        format!(": {perr}")
                    },
                });
            }
            // Every check passed and psql has all the SQL: let it commit.
            if let Some(tx) = p.commit.take() {
                let _ = tx.send(());
            }
            let _ = (&mut p.pump).await;
            let pstatus = p
                .child
                .wait()
                .await
                .map_err(|e| PostgresError::io("waiting for psql", e))?;
            let perr = p.stderr.take().expect("once").text().await;
            if !pstatus.success() {
                return Err(tool_failure("psql", pstatus, &perr));
            }
            return Ok(());
        }
        if !status.success() {
            return Err(tool_failure("pg_restore", status, &restore_err));
        }
        if reader_stopped {
            // A whole restore reads to the end; stopping early with success would mean
            // pg_restore ignored part of the archive.
            return Err(PostgresError::Tool {
                tool: "pg_restore".into(),
                status: "stopped reading before the end of the archive".into(),
                detail: if restore_err.is_empty() {
                    String::new()
                } else {
                    format!(": {restore_err}")
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn database_properties_are_rewritten_to_name_the_target() {
        // As pg_dump 15 writes them for a database named `app db` ("app db" quoted).
        let f = facts(&[
            ("database", "app db"),
            (
                "database_settings_sql",
                "ALTER DATABASE \"app db\" SET lc_monetary TO 'C';\n\
                 ALTER DATABASE \"app db\" SET search_path TO 'app', 'public';\n\
                 ALTER ROLE \"Reporter\" IN DATABASE \"app db\" SET work_mem TO '8MB';\n\
                 ALTER DATABASE \"app db\" SET application_name TO 'two\n\
                 lines';\n",
            ),
            (
                "database_comment_sql",
                "COMMENT ON DATABASE \"app db\" IS 'the \"app\"; its data';\n",
            ),
            ("database_owner", "app\"owner"),
        ]);
        let p = DatabaseProperties::from_facts(&f, "restored", false).unwrap();
        assert_eq!(
            p.settings,
            [
                "ALTER DATABASE \"restored\" SET lc_monetary TO 'C';",
                "ALTER DATABASE \"restored\" SET search_path TO 'app', 'public';",
                "ALTER ROLE \"Reporter\" IN DATABASE \"restored\" SET work_mem TO '8MB';",
                "ALTER DATABASE \"restored\" SET application_name TO 'two\nlines';",
            ]
        );
        assert_eq!(
            p.comment.as_deref(),
            Some("COMMENT ON DATABASE \"restored\" IS 'the \"app\"; its data';\n")
        );
        assert_eq!(
            p.owner.as_deref(),
            Some("ALTER DATABASE \"restored\" OWNER TO \"app\"\"owner\";")
        );
        assert_eq!(p.describe(), "settings, comment, owner");
        let p = DatabaseProperties::from_facts(&f, "restored", true).unwrap();
        assert_eq!(
            p.owner, None,
            "--no-owner keeps the restoring role as owner"
        );
        assert_eq!(p.describe(), "settings, comment", "what a plan lists");
    }

    #[test]
    fn bare_and_quoted_names_match_and_another_database_is_refused() {
        let f = facts(&[
            ("database", "shop"),
            (
                "database_settings_sql",
                "ALTER DATABASE shop SET timezone TO 'UTC';\n",
            ),
        ]);
        let p = DatabaseProperties::from_facts(&f, "a\"b", false).unwrap();
        assert_eq!(
            p.settings,
            ["ALTER DATABASE \"a\"\"b\" SET timezone TO 'UTC';"]
        );

        let f = facts(&[
            ("database", "shop"),
            (
                "database_settings_sql",
                "ALTER DATABASE \"postgres\" SET timezone TO 'UTC';\n",
            ),
        ]);
        let e = DatabaseProperties::from_facts(&f, "x", false).unwrap_err();
        assert!(e.to_string().contains("\"postgres\""), "{e}");

        for sql in [
            "DROP TABLE t;\n",
            "ALTER DATABASE shop SET timezone TO 'UTC';\nDROP TABLE t;\n",
        ] {
            let f = facts(&[("database", "shop"), ("database_settings_sql", sql)]);
            let e = DatabaseProperties::from_facts(&f, "x", false).unwrap_err();
            assert!(e.to_string().contains("DROP TABLE t"), "{e}");
        }
        // An archive without the entries (an older manifest) gives nothing to apply.
        let f = facts(&[("database", "shop")]);
        assert!(DatabaseProperties::from_facts(&f, "x", false)
            .unwrap()
            .is_empty());
    }
}
