//! Backup: `pg_dump -Fc -Z0` streamed into the pipeline, and `pg_dumpall
//! --globals-only` as a second artifact.
//!
//! Before anything runs, [`PostgresSource::preflight`] finds `pg_dump`, asks its
//! version, connects to the server and refuses a `pg_dump` older than the server (a
//! dump made by an older pg_dump can miss objects), naming the package to install. The
//! password reaches pg_dump only through `PGPASSWORD` (or a passfile through
//! `PGPASSFILE`); argv carries a conninfo without it. A non-zero exit of pg_dump fails
//! the backup, so no manifest is written.

use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::source::StreamWriter;
use backup_core::{
    BackupOptions, BackupSession, BackupStore, Contents, Error, FormatReader, Manifest, Result,
    Source, SourceFacts,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{tool_failure, Connection, PostgresConfig, StderrTail, Tool};
use crate::error::{PgResult, PostgresError};
use crate::format::PgDumpFormat;

/// The datastore kind recorded in manifests of PostgreSQL backups.
pub const KIND: &str = "postgres";

/// What to dump. Patterns follow pg_dump's (`public`, `app_*`, `sales.order*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DumpOptions {
    /// Dump only these schemas (`pg_dump --schema`).
    pub schemas: Vec<String>,
    /// Leave these schemas out (`pg_dump --exclude-schema`).
    pub exclude_schemas: Vec<String>,
    /// Dump only these tables (`pg_dump --table`).
    pub tables: Vec<String>,
    /// Leave these tables out (`pg_dump --exclude-table`).
    pub exclude_tables: Vec<String>,
    /// Leave the data of these tables out, keep their definition
    /// (`pg_dump --exclude-table-data`).
    pub exclude_table_data: Vec<String>,
    /// Also back up roles and tablespaces (`pg_dumpall --globals-only`) as the
    /// artifact `globals` of the same backup.
    pub globals: bool,
}

impl DumpOptions {
    fn validate(&self) -> PgResult<()> {
        for (flag, list) in [
            ("schema", &self.schemas),
            ("exclude-schema", &self.exclude_schemas),
            ("table", &self.tables),
            ("exclude-table", &self.exclude_tables),
            ("exclude-table-data", &self.exclude_table_data),
        ] {
            if list.iter().any(|p| p.trim().is_empty()) {
                return Err(PostgresError::Config(format!(
                    "--{flag} needs a non-empty pattern"
                )));
            }
        }
        Ok(())
    }

    fn pg_dump_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, list) in [
            ("--schema", &self.schemas),
            ("--exclude-schema", &self.exclude_schemas),
            ("--table", &self.tables),
            ("--exclude-table", &self.exclude_tables),
            ("--exclude-table-data", &self.exclude_table_data),
        ] {
            for p in list {
                args.push(format!("{flag}={p}"));
            }
        }
        args
    }
}

/// What [`PostgresSource::preflight`] learnt about the server and the binary.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `SHOW server_version` (`15.18 (Debian 15.18-0+deb12u1)`).
    pub server_version: String,
    /// `server_version_num` (150018).
    pub server_version_num: u32,
    /// The database actually connected to.
    pub database: String,
    /// Installed extensions and their versions.
    pub extensions: Vec<(String, String)>,
    /// The pg_dump that will run.
    pub pg_dump: Tool,
    /// The session settings pg_dump inherits that shape COPY's text output
    /// ([`OUTPUT_SETTINGS`]), as this role sees them in this database.
    pub output_settings: Vec<(String, String)>,
}

/// The settings that change how COPY writes values and that pg_dump does not set
/// itself (it sets DateStyle, IntervalStyle, extra_float_digits and search_path):
/// recorded in the manifest's source facts as `dump_session`, so level-3 verification
/// reads the restored rows back in the same text.
pub const OUTPUT_SETTINGS: [&str; 3] = ["TimeZone", "bytea_output", "lc_monetary"];

/// Reads [`OUTPUT_SETTINGS`] in a session of `conn`.
pub(crate) async fn output_settings(conn: &Connection) -> PgResult<Vec<(String, String)>> {
    let client = conn.connect().await?;
    let mut out = Vec::new();
    for name in OUTPUT_SETTINGS {
        let row = client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .map_err(|e| conn.query_error(&format!("reading the setting {name}"), e))?;
        out.push((name.to_string(), row.get(0)));
    }
    Ok(out)
}

impl ServerInfo {
    /// The server's major version (15 for 150018; 9 for 90624, enough to compare).
    pub fn server_major(&self) -> u32 {
        self.server_version_num / 10_000
    }
}

/// Asks the server for its version, database and extensions.
pub(crate) async fn server_info(
    conn: &Connection,
) -> PgResult<(String, u32, String, Vec<(String, String)>)> {
    let client = conn.connect().await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int4, current_database()::text",
            &[],
        )
        .await
        .map_err(|e| conn.query_error("reading the server version", e))?;
    let version: String = row.get(0);
    let num: i32 = row.get(1);
    let database: String = row.get(2);
    let ext = client
        .query(
            "SELECT extname::text, extversion FROM pg_extension ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| conn.query_error("listing extensions", e))?;
    let extensions = ext.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok((version, num.max(0) as u32, database, extensions))
}

/// The backup side of PostgreSQL: a [`Source`] streaming `pg_dump -Fc -Z0`.
pub struct PostgresSource {
    conn: Connection,
    options: DumpOptions,
    kind: String,
    info: Option<ServerInfo>,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("conn", &self.conn)
            .field("options", &self.options)
            .field("kind", &self.kind)
            .finish()
    }
}

impl PostgresSource {
    /// A source for the database `config` names. Validates the configuration now.
    pub fn new(config: &PostgresConfig, options: DumpOptions) -> Result<Self> {
        let conn = config.resolve()?;
        Self::with_connection(conn, options)
    }

    /// A source over an already resolved connection.
    pub fn with_connection(conn: Connection, options: DumpOptions) -> Result<Self> {
        options.validate()?;
        Ok(PostgresSource {
            conn,
            options,
            kind: KIND.to_string(),
            info: None,
        })
    }

    /// Records another datastore kind in the manifest (e.g. `timescale`).
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// The connection this source dumps.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The dump options.
    pub fn options(&self) -> &DumpOptions {
        &self.options
    }

    /// Checks everything that can be checked before dumping: pg_dump exists and is at
    /// least as new as the server, the server accepts the credentials, the database
    /// exists. Runs once; [`Source::dump`] calls it if the caller did not.
    pub async fn preflight(&mut self) -> Result<&ServerInfo> {
        if self.info.is_none() {
            let pg_dump = self.conn.binaries().tool("pg_dump").await?;
            let (server_version, num, database, extensions) = server_info(&self.conn).await?;
            let output_settings = output_settings(&self.conn).await?;
            let info = ServerInfo {
                server_version,
                server_version_num: num,
                database,
                extensions,
                pg_dump,
                output_settings,
            };
            check_tool_version(&info.pg_dump, info.server_major(), &info.server_version)?;
            if self.kind == KIND
                && info
                    .extensions
                    .iter()
                    .any(|(name, _)| name == "timescaledb")
            {
                return Err(PostgresError::Config(format!(
                    "database \"{}\" on {} uses TimescaleDB: back it up with `dbseal backup timescale`, which records the extension version and restores with timescaledb_pre_restore()/post_restore()",
                    info.database,
                    self.conn.server()
                ))
                .into());
            }
            self.info = Some(info);
        }
        Ok(self.info.as_ref().expect("set above"))
    }

    /// The source of the `globals` artifact (roles and tablespaces).
    pub fn globals_source(&self) -> GlobalsSource {
        GlobalsSource {
            conn: self.conn.clone(),
            kind: self.kind.clone(),
        }
    }

    fn facts(&self, info: &ServerInfo) -> SourceFacts {
        let mut facts = SourceFacts::new();
        facts.insert("server_version".into(), json!(info.server_version));
        facts.insert("server_version_num".into(), json!(info.server_version_num));
        facts.insert("database".into(), json!(info.database));
        facts.insert("host".into(), json!(self.conn.host()));
        facts.insert("port".into(), json!(self.conn.port()));
        facts.insert("user".into(), json!(self.conn.user()));
        facts.insert("pg_dump_version".into(), json!(info.pg_dump.version));
        facts.insert(
            "consistency".into(),
            json!("pg_dump snapshot (one repeatable-read transaction)"),
        );
        facts.insert("archive".into(), json!("pg_dump -Fc -Z0"));
        let session: serde_json::Map<String, serde_json::Value> = info
            .output_settings
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        facts.insert("dump_session".into(), serde_json::Value::Object(session));
        let ext: serde_json::Map<String, serde_json::Value> = info
            .extensions
            .iter()
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        facts.insert("extensions".into(), serde_json::Value::Object(ext));
        let o = &self.options;
        for (name, list) in [
            ("schemas", &o.schemas),
            ("exclude_schemas", &o.exclude_schemas),
            ("tables", &o.tables),
            ("exclude_tables", &o.exclude_tables),
            ("exclude_table_data", &o.exclude_table_data),
        ] {
            if !list.is_empty() {
                facts.insert(name.into(), json!(list));
            }
        }
        if o.globals {
            facts.insert("globals".into(), json!(true));
        }
        facts
    }
}

/// Refuses a client binary older than the server.
pub(crate) fn check_tool_version(
    tool: &Tool,
    server_major: u32,
    server_version: &str,
) -> PgResult<()> {
    if tool.major < server_major {
        return Err(PostgresError::Version(format!(
            "{name} {tv} ({path}) is older than the server (PostgreSQL {sv}): a dump made by an older {name} can be incomplete. Install the PostgreSQL {m} client (e.g. postgresql-client-{m}) and point --pg-bin-dir / PG_BIN_DIR at its bin directory (e.g. /usr/lib/postgresql/{m}/bin)",
            name = tool.name,
            tv = tool.version,
            path = tool.path.display(),
            sv = server_version,
            m = server_major,
        )));
    }
    Ok(())
}

/// Runs `cmd` and streams its stdout into `out`; kills it if `out` fails; a non-zero
/// exit is an error carrying its stderr.
pub(crate) async fn stream_command(
    tool: &'static str,
    mut cmd: tokio::process::Command,
    out: StreamWriter<'_>,
) -> Result<u64> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a terminal's Ctrl-C reaches dbseal only, which
        // stops it in order (a killed client rolls its transaction back).
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| PostgresError::Binary(format!("cannot start {tool}: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = StderrTail::spawn(tool, child.stderr.take().expect("piped"));
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let copied: std::io::Result<()> = async {
        loop {
            let n = stdout.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            total += n as u64;
            out.write_all(&buf[..n]).await?;
        }
    }
    .await;
    if let Err(e) = copied {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(Error::from_io(e, format!("streaming the output of {tool}")));
    }
    let status = child
        .wait()
        .await
        .map_err(|e| PostgresError::io(format!("waiting for {tool}"), e))?;
    let stderr = stderr.text().await;
    if !status.success() {
        return Err(tool_failure(tool, status, &stderr).into());
    }
    for line in reportable_warnings(&stderr) {
        tracing::warn!(tool, "{line}");
    }
    Ok(total)
}

/// The lines of a successful tool's stderr worth showing: everything except
/// pg_dump's harmless "circular foreign-key constraints" warning (with its detail and
/// hint lines), which TimescaleDB's catalog always triggers.
pub(crate) fn reportable_warnings(stderr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_circular = false;
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("circular foreign-key constraints") {
            in_circular = true;
            continue;
        }
        if in_circular
            && (line.contains(": detail:")
                || line.contains(": hint:")
                || line.starts_with("DETAIL:")
                || line.starts_with("HINT:"))
        {
            continue;
        }
        in_circular = false;
        out.push(line);
    }
    out
}

#[async_trait]
impl Source for PostgresSource {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(PgDumpFormat)
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        self.preflight().await?;
        let info = self.info.clone().expect("preflight ran");
        let mut cmd = backup_core::child::command(&info.pg_dump.path);
        cmd.arg("--format=custom")
            .arg("--compress=0")
            .arg("--no-password")
            .args(self.options.pg_dump_args())
            .arg(format!("--dbname={}", self.conn.conninfo()));
        self.conn.apply_env(&mut cmd);
        // pg_dump's session must see the settings recorded in `dump_session` (read by
        // dbseal's own session, which these libpq variables do not reach; options
        // given in the URL reach both).
        for var in ["PGTZ", "PGOPTIONS", "PGCLIENTENCODING", "PGDATESTYLE"] {
            cmd.env_remove(var);
        }
        tracing::info!(target = %self.conn.describe(), "running pg_dump");
        let bytes = stream_command("pg_dump", cmd, out).await?;
        tracing::info!(bytes, "pg_dump finished");
        Ok(self.facts(&info))
    }
}

/// The format of the `globals` artifact: the plain SQL script of `pg_dumpall
/// --globals-only`. Its reader counts `CREATE ROLE` and `CREATE TABLESPACE` statements.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalsFormat;

/// The format name of the `globals` artifact.
pub const GLOBALS_FORMAT: &str = "pgsql";

impl FormatReader for GlobalsFormat {
    fn format(&self) -> &str {
        GLOBALS_FORMAT
    }

    fn read_contents(&self, input: &mut dyn std::io::Read) -> Result<Contents> {
        // Look only at the first bytes of each line: constant memory whatever the line length.
        const KINDS: [(&[u8], &str); 2] = [
            (b"CREATE ROLE ", "ROLE"),
            (b"CREATE TABLESPACE ", "TABLESPACE"),
        ];
        let mut contents = Contents::default();
        let mut head: Vec<u8> = Vec::with_capacity(64);
        let mut at_start = true;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let mut seen_header = false;
        let flush = |head: &mut Vec<u8>, contents: &mut Contents| {
            for (prefix, kind) in KINDS {
                if head.starts_with(prefix) {
                    contents.add("objects", kind, 1);
                }
            }
            head.clear();
        };
        for (_, kind) in KINDS {
            contents.add("objects", kind, 0);
        }
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e, "reading the globals script")),
            };
            total += n as u64;
            for &b in &buf[..n] {
                if b == b'\n' {
                    if !seen_header && head.starts_with(b"-- PostgreSQL database cluster dump") {
                        seen_header = true;
                    }
                    flush(&mut head, &mut contents);
                    at_start = true;
                } else if at_start && head.len() < 64 {
                    head.push(b);
                } else {
                    at_start = false;
                }
            }
        }
        flush(&mut head, &mut contents);
        if total > 0 && !seen_header {
            return Err(Error::Format {
                format: GLOBALS_FORMAT.into(),
                reason: "not a pg_dumpall script: no \"PostgreSQL database cluster dump\" header"
                    .into(),
            });
        }
        Ok(contents)
    }
}

/// The `globals` artifact's source: `pg_dumpall --globals-only`.
pub struct GlobalsSource {
    conn: Connection,
    kind: String,
}

impl std::fmt::Debug for GlobalsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalsSource")
            .field("conn", &self.conn)
            .finish()
    }
}

#[async_trait]
impl Source for GlobalsSource {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(GlobalsFormat)
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        let tool = self.conn.binaries().tool("pg_dumpall").await?;
        let (version, num, _, _) = server_info(&self.conn).await?;
        let major = num / 10_000;
        check_tool_version(&tool, major, &version)?;
        let mut cmd = backup_core::child::command(&tool.path);
        cmd.arg("--globals-only")
            .arg("--no-password")
            .arg(format!("--database={}", self.conn.database()))
            .arg(format!("--dbname={}", self.conn.conninfo()));
        self.conn.apply_env(&mut cmd);
        stream_command("pg_dumpall", cmd, out).await?;
        let mut facts = SourceFacts::new();
        facts.insert("pg_dumpall_version".into(), json!(tool.version));
        Ok(facts)
    }
}

/// Backs up one PostgreSQL database: preflight, the `data` artifact, the `globals`
/// artifact if asked, then the manifest. On any failure no manifest is written.
pub async fn backup(
    store: &BackupStore,
    source: &mut PostgresSource,
    options: BackupOptions,
) -> Result<Manifest> {
    source.preflight().await?;
    let mut session = BackupSession::start(store, options)?;
    let facts = session.write_artifact("data", source).await?;
    if source.options.globals {
        let mut globals = source.globals_source();
        session.write_artifact("globals", &mut globals).await?;
    }
    let kind = source.kind.clone();
    session.commit(&kind, facts).await
}

#[cfg(test)]
mod warning_tests {
    use super::reportable_warnings;

    #[test]
    fn the_circular_fk_warning_is_dropped_and_other_warnings_kept() {
        let stderr = "pg_dump: warning: there are circular foreign-key constraints on this table:\n\
pg_dump: detail: hypertable\n\
pg_dump: hint: You might not be able to restore the dump without using --disable-triggers or temporarily dropping the constraints.\n\
pg_dump: hint: Consider using a full dump instead of a --data-only dump to avoid this problem.\n\
pg_dump: warning: something else happened\n";
        assert_eq!(
            reportable_warnings(stderr),
            vec!["pg_dump: warning: something else happened"]
        );
        assert!(reportable_warnings("").is_empty());
    }
}
