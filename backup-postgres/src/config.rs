#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! How to reach a PostgreSQL server and its client binaries.
//!
//! [`PostgresConfig`] is what a user writes (a URL and/or libpq-style fields, a
//! password or a passfile, where the binaries live). [`PostgresConfig::resolve`]
//! validates it once, fills the gaps from the libpq environment variables (`PGHOST`,
//! `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGPASSFILE`, `PGSSLMODE`) and
//! libpq's defaults, and yields a [`Connection`]: the single place that knows how to
//! hand the connection to `pg_dump`/`pg_restore`/`psql` (a keyword/value conninfo
//! *without* the password in argv, the password in `PGPASSWORD` or a passfile in
//! `PGPASSFILE`) and how to open dbseal's own `tokio-postgres` session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backup_core::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{PgResult, PostgresError};

/// The environment variable naming the directory of the PostgreSQL client binaries.
pub const PG_BIN_DIR_ENV: &str = "PG_BIN_DIR";

/// How to connect to PostgreSQL. Every field is optional: what is missing comes from
/// the URL, then from the libpq environment variables, then from libpq's defaults.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// A libpq URL, `postgres://user@host:port/database?sslmode=…`. A password in it
    /// is accepted (and never passed on in argv) but better given apart.
    #[serde(skip_serializing)]
    pub url: Option<String>,
    /// Host name, IP address, or the directory of a Unix socket (`/var/run/postgresql`).
    pub host: Option<String>,
    /// TCP port (default 5432).
    pub port: Option<u16>,
    /// User name (default: the operating-system user).
    pub user: Option<String>,
    /// Password. Reaches the PostgreSQL tools only through `PGPASSWORD`.
    #[serde(skip_serializing, deserialize_with = "deserialize_secret")]
    pub password: Option<SecretString>,
    /// A libpq password file (`~/.pgpass` format), handed to the tools as `PGPASSFILE`.
    pub passfile: Option<PathBuf>,
    /// Database name (default: the user name).
    pub database: Option<String>,
    /// libpq `sslmode` (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`). The CA file for the `verify-*` modes comes from the URL's
    /// `sslrootcert` parameter or `PGSSLROOTCERT` (default `~/.postgresql/root.crt`).
    pub sslmode: Option<String>,
    /// Directory holding `pg_dump`, `pg_restore`, `pg_dumpall` and `psql` (default:
    /// `$PG_BIN_DIR`, then `PATH`).
    pub pg_bin_dir: Option<PathBuf>,
}

fn deserialize_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::new))
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.url.as_deref().map(backup_core::redact_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "**REDACTED**"))
            .field("passfile", &self.passfile)
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .field("pg_bin_dir", &self.pg_bin_dir)
            .finish()
    }
}

impl PostgresConfig {
    /// A configuration from a URL alone.
    pub fn from_url(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    /// Validates the configuration and resolves it against the environment.
    pub fn resolve(&self) -> PgResult<Connection> {
        self.resolve_with(&|k| std::env::var(k).ok())
    }

    /// [`PostgresConfig::resolve`] with an explicit environment (for tests).
    pub fn resolve_with(&self, env: &dyn Fn(&str) -> Option<String>) -> PgResult<Connection> {
        let mut from_url = UrlParts::default();
        if let Some(url) = &self.url {
            from_url = parse_url(url)?;
        }
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let host = nonempty(self.host.clone())
            .or(from_url.host.clone())
            .or_else(|| nonempty(env("PGHOST")))
            .unwrap_or_else(default_host);
        let port = match self.port.or(from_url.port) {
            Some(p) => p,
            None => match nonempty(env("PGPORT")) {
                Some(p) => p.parse().map_err(|_| {
                    PostgresError::Config(format!("PGPORT `{p}` is not a port number"))
                })?,
                None => 5432,
            },
        };
        if port == 0 {
            return Err(PostgresError::Config("port 0 is not a valid port".into()));
        }
        let user = nonempty(self.user.clone())
            .or(from_url.user.clone())
            .or_else(|| nonempty(env("PGUSER")))
            .or_else(|| nonempty(env("USER")))
            .or_else(|| nonempty(env("LOGNAME")))
            .unwrap_or_else(|| "postgres".into());
        let database = nonempty(self.database.clone())
            .or(from_url.database.clone())
            .or_else(|| nonempty(env("PGDATABASE")))
            .unwrap_or_else(|| user.clone());
        let password = self
            .password
            .clone()
            .filter(|p| !p.is_empty())
            .or(from_url.password.clone())
            .or_else(|| nonempty(env("PGPASSWORD")).map(SecretString::new));
        let passfile = self
            .passfile
            .clone()
            .or(from_url.passfile.clone())
            .or_else(|| nonempty(env("PGPASSFILE")).map(PathBuf::from));
        if let Some(pf) = &passfile {
            if !pf.is_file() {
                return Err(PostgresError::Config(format!(
                    "passfile {} does not exist or is not a file",
                    pf.display()
                )));
            }
        }
        let mut params = from_url.params;
        if let Some(mode) = nonempty(self.sslmode.clone()) {
            params.insert("sslmode".into(), mode);
        } else if !params.contains_key("sslmode") {
            if let Some(mode) = nonempty(env("PGSSLMODE")) {
                params.insert("sslmode".into(), mode);
            }
        }
        if !params.contains_key("sslrootcert") {
            if let Some(root) = nonempty(env("PGSSLROOTCERT")) {
                params.insert("sslrootcert".into(), root);
            }
        }
        if let Some(mode) = params.get("sslmode") {
            const MODES: [&str; 6] = [
                "disable",
                "allow",
                "prefer",
                "require",
                "verify-ca",
                "verify-full",
            ];
            if !MODES.contains(&mode.as_str()) {
                return Err(PostgresError::Config(format!(
                    "sslmode `{mode}` is not one of {}",
                    MODES.join(", ")
                )));
            }
        }
        for name in [&host, &user, &database] {
            if name.contains('\0') {
                return Err(PostgresError::Config(
                    "connection parameters cannot contain NUL bytes".into(),
                ));
            }
        }
        let bin_dir = self
            .pg_bin_dir
            .clone()
            .or_else(|| nonempty(env(PG_BIN_DIR_ENV)).map(PathBuf::from));
        if let Some(dir) = &bin_dir {
            if !dir.is_dir() {
                return Err(PostgresError::Binary(format!(
                    "PostgreSQL binary directory {} does not exist (set by --pg-bin-dir or {PG_BIN_DIR_ENV})",
                    dir.display()
                )));
            }
        }
        let secret_file = secret_service_file(&params)?;
        Ok(Connection {
            host,
            port,
            user,
            database,
            password,
            passfile,
            params,
            binaries: Binaries { dir: bin_dir },
            secret_file,
        })
    }
}

fn default_host() -> String {
    // libpq's compiled-in default on Debian is the socket directory below.
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql".into()
    } else {
        "localhost".into()
    }
}

#[derive(Default)]
struct UrlParts {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<SecretString>,
    database: Option<String>,
    passfile: Option<PathBuf>,
    params: BTreeMap<String, String>,
}

/// Decodes a part of a connection URL with [`backup_core::secret::percent_decode`], but
/// refuses what that function passes through: a `%` not followed by two hex digits, and
/// escapes that decode to invalid UTF-8.
fn percent_decode(s: &str) -> PgResult<String> {
    let bytes = s.as_bytes();
    let valid_escapes = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i.saturating_add(1)..i.saturating_add(3))
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !valid_escapes {
        return Err(PostgresError::Config(
            "connection URL has an invalid percent-escape".into(),
        ));
    }
    let decoded = backup_core::secret::percent_decode(s);
    if decoded.contains(char::REPLACEMENT_CHARACTER) && !s.contains(char::REPLACEMENT_CHARACTER) {
        return Err(PostgresError::Config(
            "connection URL is not valid UTF-8 once decoded".into(),
        ));
    }
    Ok(decoded)
}

fn parse_url(raw: &str) -> PgResult<UrlParts> {
    let shown = backup_core::redact_url(raw);
    let url = url::Url::parse(raw).map_err(|e| {
        PostgresError::Config(format!("connection URL {shown} is not a valid URL: {e}"))
    })?;
    if url.scheme() != "postgres" && url.scheme() != "postgresql" {
        return Err(PostgresError::Config(format!(
            "connection URL {shown} must start with postgres:// or postgresql://"
        )));
    }
    let mut parts = UrlParts::default();
    if let Some(h) = url.host_str().filter(|h| !h.is_empty()) {
        if h.contains(',') {
            return Err(PostgresError::Config(format!(
                "connection URL {shown}: several hosts are not supported; give one host"
            )));
        }
        let h = percent_decode(h)?;
        parts.host = Some(h.trim_start_matches('[').trim_end_matches(']').to_string());
    }
    parts.port = url.port();
    if !url.username().is_empty() {
        parts.user = Some(percent_decode(url.username())?);
    }
    if let Some(p) = url.password() {
        parts.password = Some(SecretString::new(percent_decode(p)?));
    }
    let path = url.path().trim_start_matches('/');
    if !path.is_empty() {
        parts.database = Some(percent_decode(path)?);
    }
    for (k, v) in url.query_pairs() {
        let (k, v) = (k.into_owned(), v.into_owned());
        match k.as_str() {
            "host" => parts.host = Some(v),
            "port" => {
                parts.port = Some(v.parse().map_err(|_| {
                    PostgresError::Config(format!(
                        "connection URL {shown}: port `{v}` is not a number"
                    ))
                })?)
            }
            "user" => parts.user = Some(v),
            "password" => parts.password = Some(SecretString::new(v)),
            "dbname" => parts.database = Some(v),
            "passfile" => parts.passfile = Some(PathBuf::from(v)),
            _ => {
                parts.params.insert(k, v);
            }
        }
    }
    Ok(parts)
}

/// A validated, resolved connection to one PostgreSQL database, plus where the client
/// binaries are. Never prints its password.
#[derive(Clone)]
pub struct Connection {
    host: String,
    port: u16,
    user: String,
    database: String,
    password: Option<SecretString>,
    passfile: Option<PathBuf>,
    params: BTreeMap<String, String>,
    binaries: Binaries,
    /// The parameters that are secrets (`sslpassword`…) in a 0600 libpq service file,
    /// removed with the last clone: the tools get them through PGSERVICEFILE, not argv.
    secret_file: Option<Arc<tempfile::TempPath>>,
}

/// The libpq service name under which [`Connection`]'s secret parameters are written.
const SECRET_SERVICE: &str = "dbseal_secrets";

/// Writes the secret parameters (by name: [`backup_core::secret::is_secret_name`]) into
/// a private libpq service file; `None` when there are none.
fn secret_service_file(
    params: &BTreeMap<String, String>,
) -> PgResult<Option<Arc<tempfile::TempPath>>> {
    use std::io::Write;
    let secret: Vec<(&String, &String)> = params
        .iter()
        .filter(|(k, _)| backup_core::secret::is_secret_name(k))
        .collect();
    if secret.is_empty() {
        return Ok(None);
    }
    let mut text = format!("[{SECRET_SERVICE}]\n");
    for (k, v) in secret {
        if v.contains(['\n', '\r']) {
            return Err(PostgresError::Config(format!(
                "connection parameter {k} contains a line break"
            )));
        }
        text.push_str(&format!("{k}={v}\n"));
    }
    // tempfile creates it 0600.
    let mut file = tempfile::Builder::new()
        .prefix("dbseal-pg-service-")
        .tempfile()
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.flush()).map(|_| f))
        .map_err(|e| {
            PostgresError::Config(format!(
                "cannot write a private libpq service file for the connection's secret parameters: {e}"
            ))
        })?;
    let _ = file.as_file_mut().sync_all();
    Ok(Some(Arc::new(file.into_temp_path())))
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("password", &self.password.as_ref().map(|_| "**REDACTED**"))
            .field("passfile", &self.passfile)
            .field(
                "params",
                &self
                    .params
                    .iter()
                    .map(|(k, v)| {
                        let shown = if backup_core::secret::is_secret_name(k) {
                            "**REDACTED**"
                        } else {
                            v.as_str()
                        };
                        (k.as_str(), shown)
                    })
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

fn quote_conninfo(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Connection {
    /// The host (or socket directory).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }
    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }
    /// Where the client binaries are looked up.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: impl Into<String>) -> Connection {
        Connection {
            database: database.into(),
            ..self.clone()
        }
    }

    /// `host:port` for messages and facts.
    pub fn server(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('/') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `host:port/database as user`, for messages (no password).
    pub fn describe(&self) -> String {
        format!("{}/{} as user {}", self.server(), self.database, self.user)
    }

    /// A keyword/value conninfo for `database` WITHOUT the password: safe for argv.
    pub fn conninfo(&self) -> String {
        let mut s = format!(
            "host={} port={} user={} dbname={}",
            quote_conninfo(&self.host),
            self.port,
            quote_conninfo(&self.user),
            quote_conninfo(&self.database)
        );
        for (k, v) in &self.params {
            if !backup_core::secret::is_secret_name(k) {
                s.push_str(&format!(" {k}={}", quote_conninfo(v)));
            }
        }
        if self.secret_file.is_some() {
            s.push_str(&format!(" service={SECRET_SERVICE}"));
        }
        s
    }

    /// The environment a PostgreSQL tool needs besides its argv: the password or the
    /// passfile. Never put these in argv.
    pub fn tool_env(&self) -> Vec<(&'static str, SecretString)> {
        let mut env = Vec::new();
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        if let Some(pf) = &self.passfile {
            env.push(("PGPASSFILE", SecretString::new(pf.to_string_lossy())));
        }
        env
    }

    /// Applies argv-free connection settings to a tool command: the conninfo goes in
    /// through `-d` (added by the caller), the secrets through the environment.
    pub(crate) fn apply_env(&self, cmd: &mut tokio::process::Command) {
        // Only libpq's own settings (no secret among them) and the basics reach the
        // tool; the secrets it needs are set explicitly below.
        backup_core::secret::restrict_env(cmd, &["PG"]);
        for (k, v) in self.tool_env() {
            cmd.env(k, v.expose());
        }
        if let Some(path) = &self.secret_file {
            cmd.env("PGSERVICEFILE", path.as_os_str());
        }
        // Never let a tool prompt for a password on a terminal.
        cmd.stdin(std::process::Stdio::null());
    }

    fn password_for_session(&self) -> Option<SecretString> {
        if let Some(p) = &self.password {
            return Some(p.clone());
        }
        let file = self
            .passfile
            .clone()
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
        passfile_lookup(&file, &self.host, self.port, &self.database, &self.user)
    }

    /// Opens dbseal's own session (version checks, target checks, scratch databases,
    /// row counts). The connection task runs in the background until the client drops.
    pub async fn connect(&self) -> PgResult<tokio_postgres::Client> {
        let mut cfg = tokio_postgres::Config::new();
        if self.host.starts_with('/') {
            cfg.host_path(&self.host);
        } else {
            cfg.host(&self.host);
        }
        cfg.port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name("dbseal")
            .connect_timeout(Duration::from_secs(
                self.params
                    .get("connect_timeout")
                    .and_then(|v| v.parse().ok())
                    .filter(|&s: &u64| s > 0)
                    .unwrap_or(30),
            ));
        if let Some(opts) = self.params.get("options") {
            cfg.options(opts);
        }
        // TLS is never used on a Unix socket, as libpq does (sslmode applies to TCP).
        let mode = if self.host.starts_with('/') {
            "disable"
        } else {
            self.params
                .get("sslmode")
                .map(String::as_str)
                .unwrap_or("prefer")
        };
        cfg.ssl_mode(match mode {
            "disable" => tokio_postgres::config::SslMode::Disable,
            "allow" | "prefer" => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let verify = match mode {
            "verify-ca" | "verify-full" => {
                let root = self
                    .params
                    .get("sslrootcert")
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
                    })
                    .ok_or_else(|| {
                        PostgresError::Config(format!(
                            "sslmode={mode} needs a root certificate: set sslrootcert (URL parameter or PGSSLROOTCERT)"
                        ))
                    })?;
                if root.as_os_str() == "system" {
                    return Err(PostgresError::Config(
                        "sslrootcert=system is not supported by dbseal's own connection: give the CA file".into(),
                    ));
                }
                let roots = crate::tls::roots(&root)?;
                if mode == "verify-ca" {
                    crate::tls::Verify::Chain(roots)
                } else {
                    crate::tls::Verify::Full(roots)
                }
            }
            _ => crate::tls::Verify::None,
        };
        if let Some(p) = self.password_for_session() {
            cfg.password(p.expose());
        }
        let connector = crate::tls::connector(verify)?;
        let (client, connection) = cfg
            .connect(connector)
            .await
            .map_err(|e| self.connect_error(e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        Ok(client)
    }

    fn connect_error(&self, e: tokio_postgres::Error) -> PostgresError {
        if let Some(db) = e.as_db_error() {
            if db.code() == &tokio_postgres::error::SqlState::INVALID_CATALOG_NAME {
                return PostgresError::NoSuchDatabase {
                    database: self.database.clone(),
                    server: self.server(),
                };
            }
            return PostgresError::Connect {
                target: self.describe(),
                reason: db.message().to_string(),
            };
        }
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason.push_str(&format!(": {s}"));
            src = s.source();
        }
        PostgresError::Connect {
            target: self.describe(),
            reason,
        }
    }

    /// Wraps a query error with this connection's target.
    pub fn query_error(&self, what: &str, e: tokio_postgres::Error) -> PostgresError {
        let reason = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        PostgresError::Query {
            target: format!("{}/{}", self.server(), self.database),
            what: what.to_string(),
            reason,
        }
    }
}

/// Finds a password in a libpq password file (`host:port:database:user:password`,
/// `*` wildcards, `\:` and `\\` escapes). Unix-socket hosts match `localhost`.
fn passfile_lookup(
    file: &Path,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Option<SecretString> {
    let text = std::fs::read_to_string(file).ok()?;
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        fields.push(cur);
        let [f_host, f_port, f_database, f_user, f_password] = fields.as_slice() else {
            continue;
        };
        let m = |pat: &str, v: &str| pat == "*" || pat == v;
        if m(f_host, host) && m(f_port, &port) && m(f_database, database) && m(f_user, user) {
            return Some(SecretString::new(f_password.clone()));
        }
    }
    None
}

/// Where the PostgreSQL client binaries are and what version they are.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: Option<PathBuf>,
}

/// A client binary found on disk, with its version.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The binary's name (`pg_dump`).
    pub name: &'static str,
    /// Its path.
    pub path: PathBuf,
    /// Its major version (15, 16…).
    pub major: u32,
    /// Its full version string (`15.18`).
    pub version: String,
}

impl Binaries {
    /// The binaries of `dir`, else those on `PATH`.
    pub fn in_dir(dir: Option<PathBuf>) -> Self {
        Binaries { dir }
    }

    /// The configured directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Finds `name` in the configured directory, else on `PATH`.
    pub fn find(&self, name: &'static str) -> PgResult<PathBuf> {
        if let Some(dir) = &self.dir {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
            return Err(PostgresError::Binary(format!(
                "{name} not found in {} (set by --pg-bin-dir or {PG_BIN_DIR_ENV}): install the PostgreSQL client package there",
                dir.display()
            )));
        }
        if let Some(path) = std::env::var_os("PATH") {
            for d in std::env::split_paths(&path) {
                let p = d.join(name);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        Err(PostgresError::Binary(format!(
            "{name} not found on PATH: install the PostgreSQL client (e.g. postgresql-client) or point --pg-bin-dir / {PG_BIN_DIR_ENV} at its bin directory"
        )))
    }

    /// Finds `name` and asks it for its version (`NAME --version`).
    pub async fn tool(&self, name: &'static str) -> PgResult<Tool> {
        let path = self.find(name)?;
        let mut cmd = tokio::process::Command::new(&path);
        cmd.arg("--version").stdin(std::process::Stdio::null());
        backup_core::secret::restrict_env(&mut cmd, &["PG"]);
        let out = cmd
            .output()
            .await
            .map_err(|e| PostgresError::Binary(format!("cannot run {}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (major, version) = parse_tool_version(&text).ok_or_else(|| {
            PostgresError::Binary(format!(
                "{} --version printed `{}`, not a PostgreSQL version",
                path.display(),
                text.trim()
            ))
        })?;
        Ok(Tool {
            name,
            path,
            major,
            version,
        })
    }
}

/// Parses `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → (15, "15.18").
pub(crate) fn parse_tool_version(text: &str) -> Option<(u32, String)> {
    let line = text.lines().next()?;
    let rest = line.split(')').nth(1)?.trim();
    let version = rest.split_whitespace().next()?.to_string();
    let major = major_of(&version)?;
    Some((major, version))
}

/// The major version of `15.18`, `9.6.24`, `16beta2`, `17devel`: 15, 9 (9.6 → 9 is
/// enough for our comparisons since 9.x servers need pg_dump ≥ 9.x), 16, 17.
pub(crate) fn major_of(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Collects the last bytes a child process writes to stderr, for error messages.
pub(crate) struct StderrTail {
    task: tokio::task::JoinHandle<String>,
}

impl StderrTail {
    /// Starts collecting from `stderr`; lines are also logged at debug level.
    pub(crate) fn spawn(tool: &'static str, stderr: tokio::process::ChildStderr) -> Self {
        use tokio::io::AsyncReadExt;
        let task = tokio::spawn(async move {
            let mut stderr = stderr;
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = buf.get(..n).unwrap_or(&buf);
                        tracing::debug!(tool, output = %String::from_utf8_lossy(chunk).trim_end(), "stderr");
                        tail.extend_from_slice(chunk);
                        tail.drain(..tail.len().saturating_sub(8192));
                    }
                }
            }
            String::from_utf8_lossy(&tail).trim().to_string()
        });
        StderrTail { task }
    }

    /// What was collected (waits for the stream to end).
    pub(crate) async fn text(self) -> String {
        self.task.await.unwrap_or_default()
    }
}

/// A tool's failure from its exit status and stderr.
pub(crate) fn tool_failure(
    tool: &str,
    status: std::process::ExitStatus,
    stderr: &str,
) -> PostgresError {
    use std::os::unix::process::ExitStatusExt;
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".to_string(),
    };
    PostgresError::Tool {
        tool: tool.to_string(),
        status,
        detail: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        },
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn url_percent_escapes_decode_and_bad_ones_are_refused() {
        let c = PostgresConfig::from_url("postgres://%C3%A9mile@db/d%2Fb");
        let conn = c.resolve_with(&env_none).unwrap();
        assert_eq!((conn.user(), conn.database()), ("émile", "d/b"));
        for bad in ["postgres://al%zzice@db/app", "postgres://al%4@db/app"] {
            let err = PostgresConfig::from_url(bad)
                .resolve_with(&env_none)
                .unwrap_err();
            assert!(
                err.to_string().contains("invalid percent-escape"),
                "{bad}: {err}"
            );
        }
        let err = PostgresConfig::from_url("postgres://u@db/%FF%FE")
            .resolve_with(&env_none)
            .unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn url_fields_and_overrides() {
        let mut c = PostgresConfig::from_url(
            "postgres://al%40ice:s3cr%3At@db.example:6543/app?sslmode=disable&application_name=x",
        );
        let conn = c.resolve_with(&env_none).unwrap();
        assert_eq!(conn.host(), "db.example");
        assert_eq!(conn.port(), 6543);
        assert_eq!(conn.user(), "al@ice");
        assert_eq!(conn.database(), "app");
        assert_eq!(conn.password.as_ref().unwrap().expose(), "s3cr:t");
        let ci = conn.conninfo();
        assert!(!ci.contains("s3cr"), "{ci}");
        assert!(ci.contains("sslmode='disable'"), "{ci}");
        let dbg = format!("{conn:?} {c:?}");
        assert!(!dbg.contains("s3cr"), "{dbg}");
        c.database = Some("other".into());
        c.port = Some(7000);
        let conn = c.resolve_with(&env_none).unwrap();
        assert_eq!((conn.database(), conn.port()), ("other", 7000));
    }

    #[test]
    fn environment_fills_gaps() {
        let env = |k: &str| match k {
            "PGHOST" => Some("h".to_string()),
            "PGPORT" => Some("6000".to_string()),
            "PGUSER" => Some("u".to_string()),
            "PGPASSWORD" => Some("pw".to_string()),
            _ => None,
        };
        let conn = PostgresConfig::default().resolve_with(&env).unwrap();
        assert_eq!(conn.describe(), "h:6000/u as user u");
        assert_eq!(conn.tool_env()[0].0, "PGPASSWORD");
    }

    #[test]
    fn bad_config_is_one_clear_error() {
        let e = PostgresConfig::from_url("mysql://x:pw@h/db")
            .resolve_with(&env_none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("postgres://") && !e.contains("pw@"), "{e}");
        let e = PostgresConfig {
            sslmode: Some("sometimes".into()),
            ..Default::default()
        }
        .resolve_with(&env_none)
        .unwrap_err()
        .to_string();
        assert!(e.contains("sslmode `sometimes`"), "{e}");
        let env = |k: &str| (k == "PGPORT").then(|| "abc".to_string());
        let e = PostgresConfig::default()
            .resolve_with(&env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PGPORT"), "{e}");
    }

    #[test]
    fn conninfo_quotes_values() {
        let conn = PostgresConfig {
            host: Some("h".into()),
            database: Some("it's a \\ db".into()),
            user: Some("u".into()),
            ..Default::default()
        }
        .resolve_with(&env_none)
        .unwrap();
        assert_eq!(
            conn.conninfo(),
            "host='h' port=5432 user='u' dbname='it\\'s a \\\\ db'"
        );
    }

    #[test]
    fn passfile_matching() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "# c\nother:*:*:*:no\nlocalhost:5432:*:bob:pa\\:ss\n").unwrap();
        let p = passfile_lookup(&f, "/tmp/sock", 5432, "db", "bob").unwrap();
        assert_eq!(p.expose(), "pa:ss");
        assert!(passfile_lookup(&f, "localhost", 5433, "db", "bob").is_none());
    }

    #[test]
    fn tool_versions() {
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some((15, "15.18".to_string()))
        );
        assert_eq!(
            parse_tool_version("pg_restore (PostgreSQL) 17devel"),
            Some((17, "17devel".to_string()))
        );
        assert_eq!(parse_tool_version("bash 5"), None);
    }
}
