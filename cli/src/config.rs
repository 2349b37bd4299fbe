//! `dbseal.toml`: the store, the keys, retention defaults and named datastores.
//!
//! Found by the global `--config PATH` flag, else `$DBSEAL_CONFIG`, else `./dbseal.toml`
//! when it exists. Command-line flags (and their environment variables) override the
//! file; the file overrides built-in defaults.
//!
//! ```toml
//! zstd_level = 3
//!
//! [store]
//! url = "s3://backups/prod"
//! options = { aws_endpoint = "https://s3.example.com", aws_secret_access_key = "${S3_SECRET}" }
//!
//! [encryption]
//! recipients = ["age1…"]
//! identity = "/etc/dbseal/identity.txt"     # for verify and restore
//!
//! [retention]
//! keep_daily = 7
//! keep_weekly = 4
//!
//! [datastores.app]
//! kind = "postgres"
//! url = "postgres://app@db.internal:5432/app"
//! password_file = "/run/secrets/app-db"
//! environment = "production"
//! [datastores.app.retention]
//! keep_daily = 30
//! [datastores.app.options]
//! exclude-table = ["audit_log"]
//! ```
//!
//! Secrets never have to be written in the file: any string may use `${VAR}` (an
//! environment variable; `$$` is a literal `$`), passwords come from `password_file`,
//! passphrases from `passphrase_file`. A password written inline in a URL, or a literal
//! value for an option whose name says it is a secret, is refused. Unknown keys are
//! errors naming the key and its table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use backup_core::retention::Span;
use backup_core::{BackupStore, RetentionPolicy, SecretString};
use serde::{Deserialize, Serialize};

use crate::exit::{CliError, CliResult};

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "DBSEAL_CONFIG";
/// The config file looked for in the working directory.
pub const DEFAULT_FILE: &str = "dbseal.toml";
/// What a secret is replaced with in output.
pub const REDACTED: &str = "**REDACTED**";

/// The file as written (after `${VAR}` expansion).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// zstd level of new backups (default 3).
    zstd_level: Option<i32>,
    /// Where backups live.
    store: Option<StoreSection>,
    /// Recipients and keys.
    #[serde(default)]
    encryption: EncryptionSection,
    /// Retention defaults of every datastore.
    #[serde(default)]
    retention: RetentionPolicy,
    /// Named datastores.
    #[serde(default)]
    datastores: BTreeMap<String, DatastoreConfig>,
}

/// `[store]`: where backups live.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Store URL or path (as `--store`).
    pub url: String,
    /// Store options (as `--store-option KEY=VALUE`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `[encryption]`: what new backups are encrypted to, and how to decrypt.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSection {
    /// age recipients (public keys) of new backups.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Identity file used by `verify` and `restore` (secret key: keep the file private).
    pub identity: Option<PathBuf>,
    /// Passphrase file: encrypt to / decrypt with a passphrase instead of keys.
    pub passphrase_file: Option<PathBuf>,
}

/// A datastore's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// PostgreSQL.
    Postgres,
    /// TimescaleDB.
    Timescale,
    /// Redis.
    Redis,
    /// Neo4j (Bolt).
    Neo4j,
}

impl Kind {
    /// The kind's name, as in manifests and `dbseal backup <kind>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Timescale => "timescale",
            Kind::Redis => "redis",
            Kind::Neo4j => "neo4j",
        }
    }

    fn scheme(self) -> &'static str {
        match self {
            Kind::Postgres | Kind::Timescale => "postgres",
            Kind::Redis => "redis",
            Kind::Neo4j => "bolt",
        }
    }
}

/// A datastore's environment; `production` ones need a confirmation to be restored into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development.
    Development,
    /// Staging.
    Staging,
    /// Production: restores need `--confirm-production NAME`.
    Production,
}

impl Environment {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

/// `[datastores.NAME]`: one database dbseal backs up.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    /// `postgres`, `timescale`, `redis` or `neo4j`.
    pub kind: Kind,
    /// Connection URL (use `${VAR}` for a password, or `password_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Host (instead of `url`, libpq style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Database name (Redis: the database index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    /// A file holding the password (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// `development`, `staging` or `production`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Retention for this datastore; overrides `[retention]` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    /// `dbseal status`: the newest backup may not be older than this (default: `--max-age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Span>,
    /// A server for level-3 verification (`dbseal verify --latest --level restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_url: Option<String>,
    /// Labels recorded in every manifest of this datastore.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Options of `dbseal backup <kind>`, by flag name without `--` (`true` for a bare
    /// flag, a list for a repeated one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, toml::Value>,
}

/// A loaded, validated configuration.
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// zstd level of new backups.
    pub zstd_level: Option<i32>,
    /// The store.
    pub store: Option<StoreSection>,
    /// Keys.
    pub encryption: EncryptionSection,
    /// Retention defaults.
    pub retention: RetentionPolicy,
    /// Datastores by name.
    pub datastores: BTreeMap<String, DatastoreConfig>,
    /// Every secret value seen while loading (expanded secrets, URL passwords), so
    /// output can be scrubbed of them.
    secrets: std::sync::Mutex<Vec<SecretString>>,
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = redact_store(self.clone());
        f.debug_struct("StoreSection")
            .field("url", &r.url)
            .field("options", &r.options)
            .finish()
    }
}

impl std::fmt::Debug for DatastoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.redacted();
        f.debug_struct("DatastoreConfig")
            .field("kind", &r.kind)
            .field("url", &r.url)
            .field("host", &r.host)
            .field("port", &r.port)
            .field("user", &r.user)
            .field("dbname", &r.dbname)
            .field("password_file", &r.password_file)
            .field("environment", &r.environment)
            .field("options", &r.options)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("store", &self.store)
            .field("datastores", &self.datastores)
            .field("secrets", &*self.secrets.lock().expect("not poisoned"))
            .finish_non_exhaustive()
    }
}

/// Finds and loads the configuration: `explicit` (from `--config` or `$DBSEAL_CONFIG`)
/// must exist; otherwise `./dbseal.toml` is used when present.
pub fn load(explicit: Option<&Path>) -> CliResult<Option<Config>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from(DEFAULT_FILE);
            if !p.is_file() {
                return Ok(None);
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::usage(format!("cannot read config file {}: {e}", path.display())))?;
    Config::parse(&text, &path, &|k| std::env::var(k).ok()).map(Some)
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.ends_with("_file") || n.ends_with("-file") {
        return false;
    }
    [
        "password",
        "passwd",
        "secret",
        "token",
        "passphrase",
        "credential",
        "private",
    ]
    .iter()
    .any(|s| n.contains(s))
}

fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASS",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "PRIVATE",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// The password written literally in a URL's user-info, if any (`${…}` does not count).
fn inline_url_password(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return false;
    };
    match userinfo.split_once(':') {
        Some((_, pw)) => !pw.is_empty() && !pw.contains("${"),
        None => false,
    }
}

fn url_password(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let pw = parsed.password()?;
    let decoded = percent_decode(pw);
    Some(decoded)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Line number (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

struct Expander<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    origin: String,
    secrets: Vec<SecretString>,
}

impl Expander<'_> {
    fn value(&mut self, path: &str, key: &str, v: &mut toml::Value) -> CliResult<()> {
        match v {
            toml::Value::String(s) => {
                let raw = s.clone();
                let (expanded, secret_vars) = self.expand(path, &raw)?;
                let key_is_secret = is_secret_name(key);
                if key_is_secret && !raw.is_empty() && !raw.contains("${") {
                    return Err(CliError::usage(format!(
                        "{}: `{path}` holds a secret written inline: use \"${{VARIABLE}}\" (an environment variable) or a *_file reference instead",
                        self.origin
                    )));
                }
                let url_like = key == "url" || key.ends_with("_url") || key.ends_with("-url");
                if url_like && inline_url_password(&raw) {
                    return Err(CliError::usage(format!(
                        "{}: `{path}` contains a password written inline: put it in an environment variable (\"…:${{DB_PASSWORD}}@…\") or in password_file",
                        self.origin
                    )));
                }
                if key_is_secret || secret_vars {
                    self.secrets.push(SecretString::new(expanded.clone()));
                }
                if let Some(pw) = url_password(&expanded) {
                    self.secrets.push(SecretString::new(pw));
                }
                *s = expanded;
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(&format!("{path}[{i}]"), key, item)?;
                }
            }
            toml::Value::Table(t) => {
                for (k, item) in t.iter_mut() {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.value(&p, k, item)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Expands `${VAR}` and `$$`; reports whether a secret-looking variable was used.
    fn expand(&mut self, path: &str, raw: &str) -> CliResult<(String, bool)> {
        let mut out = String::with_capacity(raw.len());
        let mut secret = false;
        let mut rest = raw;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    CliError::usage(format!(
                        "{}: `{path}`: `${{` without a closing `}}` (write `$$` for a literal `$`)",
                        self.origin
                    ))
                })?;
                let name = &body[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(CliError::usage(format!(
                        "{}: `{path}`: `${{{name}}}` is not an environment variable name",
                        self.origin
                    )));
                }
                let value = (self.env)(name).ok_or_else(|| {
                    CliError::usage(format!(
                        "{}: `{path}`: environment variable `{name}` is not set",
                        self.origin
                    ))
                })?;
                if is_secret_var(name) {
                    secret = true;
                    self.secrets.push(SecretString::new(value.clone()));
                }
                out.push_str(&value);
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok((out, secret))
    }
}

impl Config {
    /// Parses and validates `text` (read from `path`), expanding `${VAR}` with `env`.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> CliResult<Config> {
        let origin = path.display().to_string();
        // Pass 1: the structure, with line numbers and the path of any bad key.
        let de = toml::Deserializer::new(text);
        if let Err(e) = serde_path_to_error::deserialize::<_, ConfigFile>(de) {
            let inner = e.inner();
            let line = inner
                .span()
                .map(|s| format!("line {}: ", line_of(text, s.start)))
                .unwrap_or_default();
            let p = e.path().to_string();
            let msg = inner.message().trim().to_string();
            let (place, msg) = match msg
                .strip_prefix("unknown field `")
                .and_then(|m| m.split_once('`'))
            {
                Some((key, rest)) => {
                    // The path may or may not end with the unknown key itself.
                    let table = p
                        .strip_suffix(key)
                        .map(|t| t.trim_end_matches('.').to_string())
                        .unwrap_or_else(|| p.clone());
                    let table = if table == "." { String::new() } else { table };
                    let place = if table.is_empty() {
                        format!("unknown key `{key}` at the top level")
                    } else {
                        format!("unknown key `{key}` in [{table}]")
                    };
                    (place, rest.trim_start_matches([',', ' ']).to_string())
                }
                None if p == "." || p.is_empty() => (String::new(), msg),
                None => (format!("`{p}`"), msg),
            };
            let sep = if place.is_empty() || msg.is_empty() {
                ""
            } else {
                ": "
            };
            return Err(CliError::usage(format!(
                "{origin}: {line}{place}{sep}{msg}"
            )));
        }
        // Pass 2: expand ${VAR} everywhere, check for inline secrets, then build.
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| CliError::usage(format!("{origin}: {}", e.message())))?;
        let mut ex = Expander {
            env,
            origin: origin.clone(),
            secrets: Vec::new(),
        };
        ex.value("", "", &mut value)?;
        let file = ConfigFile::deserialize(value)
            .map_err(|e| CliError::usage(format!("{origin}: {}", e.message())))?;
        let config = Config {
            path: path.to_path_buf(),
            zstd_level: file.zstd_level,
            store: file.store,
            encryption: file.encryption,
            retention: file.retention,
            datastores: file.datastores,
            secrets: std::sync::Mutex::new(ex.secrets),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> CliResult<()> {
        let origin = self.path.display();
        for (name, ds) in &self.datastores {
            BackupStore::validate_datastore_name(name)
                .map_err(|e| CliError::usage(format!("{origin}: [datastores.{name}]: {e}")))?;
            if ds.url.is_some() && (ds.host.is_some() || ds.port.is_some()) {
                return Err(CliError::usage(format!(
                    "{origin}: [datastores.{name}]: set either url or host/port, not both"
                )));
            }
            if ds.url.is_none() && ds.host.is_none() {
                return Err(CliError::usage(format!(
                    "{origin}: [datastores.{name}]: set url (or host, port, user, dbname)"
                )));
            }
            for key in ds.options.keys() {
                if key.starts_with('-') || key.is_empty() {
                    return Err(CliError::usage(format!(
                        "{origin}: [datastores.{name}.options]: write option `{key}` without leading dashes"
                    )));
                }
                if matches!(
                    key.as_str(),
                    "url" | "datastore" | "recipient" | "zstd-level" | "label"
                ) {
                    return Err(CliError::usage(format!(
                        "{origin}: [datastores.{name}.options]: `{key}` is set by the datastore's own keys, not in options"
                    )));
                }
            }
        }
        if let Some(level) = self.zstd_level {
            if !(-7..=22).contains(&level) || level == 0 {
                return Err(CliError::usage(format!(
                    "{origin}: zstd_level {level} is out of range (1..22, or -7..-1)"
                )));
            }
        }
        Ok(())
    }

    /// A configured datastore, or an error listing the configured names.
    pub fn datastore(&self, name: &str) -> CliResult<&DatastoreConfig> {
        self.datastores.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.datastores.keys().map(String::as_str).collect();
            CliError::usage(format!(
                "no datastore `{name}` in {} (configured: {})",
                self.path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The retention policy of a datastore: `[retention]` overridden by its own.
    pub fn retention_for(&self, name: &str) -> RetentionPolicy {
        match self.datastores.get(name).and_then(|d| d.retention.as_ref()) {
            Some(own) => self.retention.overridden_by(own),
            None => self.retention.clone(),
        }
    }

    /// The configured production datastore whose target is `url`, if any.
    #[cfg(test)]
    pub fn production_datastore_for_url(&self, url: &str) -> Option<&str> {
        self.datastore_for_url(url)
            .filter(|(_, ds)| ds.environment == Some(Environment::Production))
            .map(|(name, _)| name)
    }

    /// The configured datastore whose target (scheme, host, port, database) is `url`;
    /// a production one first when several match.
    pub fn datastore_for_url(&self, url: &str) -> Option<(&str, &DatastoreConfig)> {
        let wanted = endpoint(url)?;
        let mut matches: Vec<(&str, &DatastoreConfig)> = self
            .datastores
            .iter()
            .filter(|(_, ds)| {
                endpoint(&ds.connection_url_without_password()).as_ref() == Some(&wanted)
            })
            .map(|(n, ds)| (n.as_str(), ds))
            .collect();
        matches.sort_by_key(|(_, ds)| ds.environment != Some(Environment::Production));
        matches.into_iter().next()
    }

    /// Replaces every secret this configuration knows (expanded secret variables, URL
    /// passwords, password files read) in `text` by `**REDACTED**`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let guard = self.secrets.lock().expect("not poisoned");
        let mut secrets: Vec<&str> = guard
            .iter()
            .map(|s| s.expose())
            .filter(|s| !s.is_empty())
            .collect();
        // Longest first so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            out = out.replace(s, REDACTED);
        }
        out
    }

    /// The full connection URL of a configured datastore (see
    /// [`DatastoreConfig::connection_url`]); the password read from its file is
    /// remembered so that [`Config::scrub`] removes it from any output.
    pub fn connection_url(&self, name: &str) -> CliResult<SecretString> {
        let ds = self.datastore(name)?;
        if let Some(pw) = ds.password(name)? {
            let mut s = self.secrets.lock().expect("not poisoned");
            s.push(SecretString::new(encode_userinfo(pw.expose())));
            s.push(pw);
        }
        ds.connection_url(name)
    }

    /// The resolved configuration with secrets redacted, for `dbseal config check`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut store = self
            .store
            .clone()
            .map(|s| serde_json::to_value(redact_store(s)).expect("serializes"));
        if store.is_none() {
            store = Some(serde_json::Value::Null);
        }
        let datastores: serde_json::Map<String, serde_json::Value> = self
            .datastores
            .iter()
            .map(|(name, ds)| {
                let mut v = serde_json::to_value(ds.redacted()).expect("serializes");
                if let Some(obj) = v.as_object_mut() {
                    obj.insert(
                        "retention".into(),
                        serde_json::to_value(self.retention_for(name)).expect("serializes"),
                    );
                    obj.insert(
                        "retention_summary".into(),
                        serde_json::Value::String(self.retention_for(name).to_string()),
                    );
                }
                (name.clone(), v)
            })
            .collect();
        let value = serde_json::json!({
            "path": self.path,
            "zstd_level": self.zstd_level,
            "store": store,
            "encryption": self.encryption,
            "retention": self.retention,
            "datastores": datastores,
        });
        // Belt and braces: no known secret survives anywhere in the document.
        let text = self.scrub(&value.to_string());
        serde_json::from_str(&text).unwrap_or(value)
    }
}

fn redact_store(mut s: StoreSection) -> StoreSection {
    s.url = backup_core::redact_url(&s.url);
    for (k, v) in s.options.iter_mut() {
        if is_secret_name(k) || k.to_ascii_lowercase().ends_with("secret_access_key") {
            *v = REDACTED.into();
        }
    }
    s
}

/// Scheme, host, port and path of a URL: what identifies a database target.
fn endpoint(url: &str) -> Option<(String, String, Option<u16>, String)> {
    let u = url::Url::parse(url).ok()?;
    let scheme = match u.scheme() {
        "postgresql" => "postgres".to_string(),
        "rediss" => "redis".to_string(),
        "neo4j" | "neo4j+s" | "bolt+s" => "bolt".to_string(),
        s => s.to_string(),
    };
    let host = u.host_str().unwrap_or("").to_ascii_lowercase();
    let host = if host == "localhost" {
        "127.0.0.1".to_string()
    } else {
        host
    };
    let default_port = match scheme.as_str() {
        "postgres" => Some(5432),
        "redis" => Some(6379),
        "bolt" => Some(7687),
        _ => None,
    };
    let port = u.port().or(default_port);
    let mut path = u.path().trim_matches('/').to_string();
    if scheme == "redis" && path.is_empty() {
        path = "0".into();
    }
    Some((scheme, host, port, path))
}

fn encode_userinfo(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl DatastoreConfig {
    /// The connection URL without any password (for display and comparisons).
    pub fn connection_url_without_password(&self) -> String {
        let url = match &self.url {
            Some(u) => u.clone(),
            None => self.built_url(None),
        };
        match url::Url::parse(&url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(None);
                u.to_string()
            }
            _ => url,
        }
    }

    fn built_url(&self, password: Option<&str>) -> String {
        let mut s = format!("{}://", self.kind.scheme());
        match (&self.user, password) {
            (Some(u), Some(p)) => {
                s.push_str(&format!("{}:{}@", encode_userinfo(u), encode_userinfo(p)))
            }
            (Some(u), None) => s.push_str(&format!("{}@", encode_userinfo(u))),
            (None, Some(p)) => s.push_str(&format!(":{}@", encode_userinfo(p))),
            (None, None) => {}
        }
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        if host.contains(':') && !host.starts_with('[') {
            s.push_str(&format!("[{host}]"));
        } else {
            s.push_str(host);
        }
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        if let Some(db) = &self.dbname {
            s.push('/');
            s.push_str(&encode_userinfo(db));
        }
        s
    }

    /// The password from `password_file`, if set.
    pub fn password(&self, name: &str) -> CliResult<Option<SecretString>> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let pw = SecretString::from_file(path).map_err(|e| {
            CliError::usage(format!(
                "datastore `{name}`: cannot read password_file {}: {e}",
                path.display()
            ))
        })?;
        if pw.is_empty() {
            return Err(CliError::usage(format!(
                "datastore `{name}`: password_file {} is empty",
                path.display()
            )));
        }
        Ok(Some(pw))
    }

    /// The full connection URL, with the password from `password_file` when the URL
    /// has none. A secret: hand it only to the database crate, never print it.
    pub fn connection_url(&self, name: &str) -> CliResult<SecretString> {
        let password = self.password(name)?;
        let url = match &self.url {
            Some(u) => {
                let mut url = u.clone();
                if let Some(pw) = &password {
                    let mut parsed = url::Url::parse(u).map_err(|e| {
                        CliError::usage(format!(
                            "datastore `{name}`: url {} is invalid: {e}",
                            backup_core::redact_url(u)
                        ))
                    })?;
                    if parsed.password().is_none() {
                        parsed
                            .set_password(Some(&encode_userinfo(pw.expose())))
                            .map_err(|_| {
                                CliError::usage(format!(
                                    "datastore `{name}`: url {} cannot carry a password",
                                    backup_core::redact_url(u)
                                ))
                            })?;
                        url = parsed.to_string();
                    }
                }
                url
            }
            None => self.built_url(password.as_ref().map(|p| p.expose())),
        };
        Ok(SecretString::new(url))
    }

    /// The options as `dbseal backup <kind>` flags.
    pub fn option_flags(&self, name: &str) -> CliResult<Vec<String>> {
        let mut argv = Vec::new();
        for (key, value) in &self.options {
            let flag = format!("--{}", key.replace('_', "-"));
            let mut push = |v: &toml::Value| -> CliResult<()> {
                match v {
                    toml::Value::String(s) => {
                        argv.push(flag.clone());
                        argv.push(s.clone());
                    }
                    toml::Value::Integer(i) => {
                        argv.push(flag.clone());
                        argv.push(i.to_string());
                    }
                    toml::Value::Float(f) => {
                        argv.push(flag.clone());
                        argv.push(f.to_string());
                    }
                    toml::Value::Boolean(true) => argv.push(flag.clone()),
                    toml::Value::Boolean(false) => {}
                    other => {
                        return Err(CliError::usage(format!(
                            "[datastores.{name}.options]: `{key}` = {other} is not a string, number, boolean or list of them"
                        )))
                    }
                }
                Ok(())
            };
            match value {
                toml::Value::Array(items) => {
                    for item in items {
                        push(item)?;
                    }
                }
                v => push(v)?,
            }
        }
        Ok(argv)
    }

    fn redacted(&self) -> DatastoreConfig {
        let mut d = self.clone();
        d.url = d.url.as_deref().map(backup_core::redact_url);
        d.scratch_url = d.scratch_url.as_deref().map(backup_core::redact_url);
        for (k, v) in d.options.iter_mut() {
            if is_secret_name(k) {
                *v = toml::Value::String(REDACTED.into());
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn parse(text: &str, vars: &[(&str, &str)]) -> CliResult<Config> {
        Config::parse(text, Path::new("dbseal.toml"), &env(vars))
    }

    const GOOD: &str = r#"
zstd_level = 5
[store]
url = "s3://backups/prod"
options = { aws_endpoint = "http://127.0.0.1:8333", aws_secret_access_key = "${S3_SECRET}" }
[encryption]
recipients = ["age1xyz"]
[retention]
keep_daily = 7
keep_weekly = 4
[datastores.app]
kind = "postgres"
url = "postgres://app:${APP_DB_PASSWORD}@db.internal:5432/app"
environment = "production"
[datastores.app.retention]
keep_daily = 30
[datastores.app.options]
exclude-table = ["audit", "log"]
globals = true
[datastores.cache]
kind = "redis"
host = "127.0.0.1"
port = 6379
dbname = "2"
"#;

    #[test]
    fn parses_expands_and_redacts() {
        let c = parse(
            GOOD,
            &[
                ("S3_SECRET", "s3-very-secret"),
                ("APP_DB_PASSWORD", "pg-pa$$word"),
            ],
        )
        .unwrap();
        assert_eq!(c.zstd_level, Some(5));
        let app = c.datastore("app").unwrap();
        assert_eq!(app.kind, Kind::Postgres);
        assert_eq!(
            app.connection_url("app").unwrap().expose(),
            "postgres://app:pg-pa$$word@db.internal:5432/app"
        );
        assert_eq!(c.retention_for("app").keep_daily, Some(30));
        assert_eq!(c.retention_for("app").keep_weekly, Some(4));
        assert_eq!(c.retention_for("cache").keep_daily, Some(7));
        assert_eq!(
            app.option_flags("app").unwrap(),
            [
                "--exclude-table",
                "audit",
                "--exclude-table",
                "log",
                "--globals"
            ]
        );
        assert_eq!(
            c.datastore("cache")
                .unwrap()
                .connection_url("cache")
                .unwrap()
                .expose(),
            "redis://127.0.0.1:6379/2"
        );
        let shown = serde_json::to_string(&c.redacted()).unwrap();
        assert!(!shown.contains("s3-very-secret"), "{shown}");
        assert!(!shown.contains("pg-pa"), "{shown}");
        assert!(shown.contains(REDACTED), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        assert!(format!("{c:?}").contains("secrets: [**REDACTED**"));
        assert!(!format!("{c:?}").contains("s3-very-secret"));
        assert_eq!(c.scrub("x s3-very-secret y"), "x **REDACTED** y");
        let err = c.datastore("nope").unwrap_err().message;
        assert!(
            err.contains("`nope`") && err.contains("app, cache"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_table() {
        let e = parse("[datastores.app]\nkind = \"postgres\"\nurl = \"postgres://h/db\"\npasword_file = \"x\"\n", &[])
            .unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("`pasword_file`"), "{}", e.message);
        assert!(e.message.contains("[datastores.app]"), "{}", e.message);
        assert!(e.message.contains("line 4"), "{}", e.message);
        let e = parse("[store]\nurl = \"/x\"\nregion = \"eu\"\n", &[]).unwrap_err();
        assert!(e.message.contains("`region` in [store]"), "{}", e.message);
        let e = parse("zstd = 3\n", &[]).unwrap_err();
        assert!(
            e.message.contains("`zstd` at the top level"),
            "{}",
            e.message
        );
        let e = parse("[retention]\nkeep_dayly = 3\n", &[]).unwrap_err();
        assert!(
            e.message.contains("`keep_dayly` in [retention]"),
            "{}",
            e.message
        );
        let e = parse(
            "[datastores.a]\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n[datastores.a.retention]\nkeep_hourly = 1\nkeep_minutely = 3\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("`keep_minutely` in [datastores.a.retention]"),
            "{}",
            e.message
        );
        let e = parse("[datastores.a]\nkind = \"mysql\"\nurl = \"x://h\"\n", &[]).unwrap_err();
        assert!(
            e.message.contains("mysql") && e.message.contains("postgres"),
            "{}",
            e.message
        );
    }

    #[test]
    fn inline_secrets_and_missing_variables_are_refused() {
        let e = parse(
            "[datastores.a]\nkind = \"postgres\"\nurl = \"postgres://u:hunter2@h/db\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("datastores.a.url"), "{}", e.message);
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        let e = parse(
            "[store]\nurl = \"s3://b\"\noptions = { aws_secret_access_key = \"abc123\" }\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.message.contains("store.options.aws_secret_access_key"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("abc123"));
        let e = parse(
            "[datastores.a]\nkind = \"redis\"\nurl = \"redis://:${REDIS_PW}@h\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("`REDIS_PW` is not set"), "{}", e.message);
        let e = parse("[datastores.a]\nkind = \"redis\"\n", &[]).unwrap_err();
        assert!(e.message.contains("set url"), "{}", e.message);
        let e = parse(
            "[datastores._x]\nkind = \"redis\"\nurl = \"redis://h\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("reserved"), "{}", e.message);
    }

    #[test]
    fn password_files_and_production_urls() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "p@ss:word\n").unwrap();
        let text = format!(
            "[datastores.app]\nkind = \"postgres\"\nhost = \"db.internal\"\nuser = \"app\"\ndbname = \"app\"\npassword_file = \"{}\"\nenvironment = \"production\"\n",
            pw.display()
        );
        let c = parse(&text, &[]).unwrap();
        let ds = c.datastore("app").unwrap();
        let url = ds.connection_url("app").unwrap();
        assert_eq!(url.expose(), "postgres://app:p%40ss%3Aword@db.internal/app");
        assert_eq!(url_password(url.expose()).as_deref(), Some("p@ss:word"));
        assert_eq!(
            c.production_datastore_for_url("postgresql://other@DB.internal:5432/app"),
            Some("app")
        );
        assert_eq!(
            c.production_datastore_for_url("postgres://db.internal/app2"),
            None
        );
        assert_eq!(
            c.production_datastore_for_url("redis://db.internal/app"),
            None
        );
    }
}
