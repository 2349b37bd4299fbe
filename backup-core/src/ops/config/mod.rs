#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! `dbseal.toml`: the store, the keys, retention defaults and named datastores.
//!
//! Found by the CLI's global `--config PATH` flag, else `$DBSEAL_CONFIG`, else
//! `./dbseal.toml` when it exists. Command-line flags (and their environment variables)
//! override the file; the file overrides built-in defaults.
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
//! [signing]                                  # see crate::ops::trust
//! key_file = "/etc/dbseal/identity.txt.minisign.key"
//! trusted_signers = ["RWQ…"]
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
//!
//! [objectives.production]                    # dbseal drill, status: unless a datastore
//! rto = "1h"                                 # sets its own rto / rpo
//! rpo = "5min"
//! ```
//!
//! Secrets never have to be written in the file: any string may use `${VAR}` (an
//! environment variable; `$$` is a literal `$`), passwords come from `password_file`,
//! passphrases from `passphrase_file`. A password written inline in a URL, or a literal
//! value for an option whose name says it is a secret
//! ([`crate::secret::is_secret_name`]), is refused. Unknown keys are errors naming the
//! key and its table; a datastore's `kind` must be one the [`Registry`] knows, and its
//! `[options]` are the driver's ([`crate::Driver::check_backup_options`]).

mod expand;
mod keys;
mod redact;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::driver::{DriverOptions, Registry};
use crate::error::{Error, Result};
use crate::retention::{RetentionPolicy, Span};
use crate::secret::{percent_encode_userinfo, redact_url, SecretString};
use crate::store::BackupStore;

pub use crate::secret::REDACTED;
pub use keys::{KeyExpiry, DEFAULT_KEY_EXPIRY_WARNING};

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "DBSEAL_CONFIG";
/// The config file looked for in the working directory.
pub const DEFAULT_FILE: &str = "dbseal.toml";

/// Option keys a datastore sets through its own keys, never in `[options]`.
const RESERVED_OPTIONS: &[&str] = &["url", "datastore", "recipient", "zstd-level", "label"];

/// The message of the error "`what` needs a config file".
pub fn missing_config_message(what: &str) -> String {
    format!("{what}: pass --config PATH, set {CONFIG_ENV} or create ./{DEFAULT_FILE}")
}

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
    encryption: keys::EncryptionFile,
    /// This host's signing key and the keys it trusts.
    #[serde(default)]
    signing: keys::SigningFile,
    /// Retention defaults of every datastore.
    #[serde(default)]
    retention: RetentionPolicy,
    /// Named datastores.
    #[serde(default)]
    datastores: BTreeMap<String, DatastoreConfig>,
    /// `[[notify]]`: webhooks told about backups, verifications, prunes and alerts.
    #[serde(default)]
    notify: Vec<super::notify::NotifyTarget>,
    /// `[objectives.ENVIRONMENT]`: the `rto` / `rpo` of every datastore of that
    /// environment that sets none of its own.
    #[serde(default)]
    objectives: BTreeMap<Environment, Objectives>,
}

/// `[objectives.production]` (or `staging`, `development`): recovery objectives of an
/// environment's datastores, which a datastore's own `rto` / `rpo` override.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Objectives {
    rto: Option<Span>,
    rpo: Option<Span>,
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
    /// The space the store may use (`2TiB`, `500GB`): `status` alerts when the objects
    /// under the store's URL use more than `storage_alert_percent` of it. Without it, a
    /// local store is measured against its filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_quota: Option<String>,
    /// The usage, in percent of the quota (or filesystem), above which `status` alerts
    /// (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_alert_percent: Option<f64>,
}

/// The default `storage_alert_percent`.
pub const DEFAULT_STORAGE_ALERT_PERCENT: f64 = 80.0;

impl StoreSection {
    /// The quota in bytes, if one is set.
    pub fn quota_bytes(&self) -> Result<Option<u64>> {
        self.store_quota
            .as_deref()
            .map(|q| {
                crate::throttle::parse_size(q).ok_or_else(|| {
                    Error::Config(format!(
                        "[store] store_quota `{q}` is not a size: give bytes with an optional unit, e.g. 2TiB, 500GB"
                    ))
                })
            })
            .transpose()
    }

    /// The alert threshold in percent.
    pub fn alert_percent(&self) -> f64 {
        self.storage_alert_percent
            .unwrap_or(DEFAULT_STORAGE_ALERT_PERCENT)
    }
}

/// `[encryption]`: what new backups are encrypted to, and how to decrypt. Recipients
/// may carry an expiry date ([`KeyExpiry`], kept in [`Config::key_expiries`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EncryptionSection {
    /// age recipients (public keys) of new backups.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Identity file used by `verify` and `restore` (secret key: keep the file private).
    pub identity: Option<PathBuf>,
    /// Passphrase file: encrypt to / decrypt with a passphrase instead of keys.
    pub passphrase_file: Option<PathBuf>,
    /// How long before a dated key expires `status` alerts (default 90d).
    pub key_expiry_warning: Option<Span>,
}

/// A datastore's environment; `production` ones need a confirmation to be restored into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
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

/// `[datastores.NAME]`: one database dbseal backs up. The keys every kind shares are
/// here; the kind's own settings are its `options`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    /// The kind: a driver of the [`Registry`] (`postgres`, `timescale`, `redis`,
    /// `neo4j`…).
    pub kind: String,
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
    /// `dbseal drill`: the recovery time objective (restore to a verified target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<Span>,
    /// `dbseal drill`: the recovery point objective (drill start minus the newest
    /// restorable backup's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<Span>,
    /// Labels recorded in every manifest of this datastore.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Options of `dbseal backup <kind>`, by flag name without `--` (`true` for a bare
    /// flag, a list for a repeated one); `_` in a name is read as `-`.
    #[serde(
        default,
        with = "options_serde",
        skip_serializing_if = "options_serde::is_empty"
    )]
    pub options: DriverOptions,
    /// The URL scheme of the kind (the driver's first), set when the file is loaded.
    #[serde(skip)]
    scheme: String,
}

mod options_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::driver::DriverOptions;

    pub fn serialize<S: Serializer>(o: &DriverOptions, s: S) -> Result<S::Ok, S::Error> {
        o.0.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DriverOptions, D::Error> {
        serde_json::Map::deserialize(d).map(DriverOptions)
    }

    pub fn is_empty(o: &DriverOptions) -> bool {
        o.0.is_empty()
    }
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
    /// `[signing]`: this host's signing key and the keys it trusts.
    pub signing: super::TrustOptions,
    /// Retention defaults.
    pub retention: RetentionPolicy,
    /// Datastores by name.
    pub datastores: BTreeMap<String, DatastoreConfig>,
    /// `[[notify]]` targets ([`super::notify`]).
    pub notify: Vec<super::notify::NotifyTarget>,
    /// The keys written with a `key_expires` date (recipients, signers, verifiers, this
    /// host's signing key).
    pub key_expiries: Vec<KeyExpiry>,
    /// Every URL scheme of every driver, mapped to its driver's first scheme (so that
    /// `postgresql://` and `postgres://` name the same server).
    schemes: BTreeMap<String, String>,
    /// Every secret value seen while loading (expanded secrets, URL passwords), so
    /// output can be scrubbed of them.
    secrets: std::sync::Mutex<Vec<SecretString>>,
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = redact::store(self.clone());
        f.debug_struct("StoreSection")
            .field("url", &r.url)
            .field("options", &r.options)
            .field("store_quota", &r.store_quota)
            .field("storage_alert_percent", &r.storage_alert_percent)
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
            .field("notify", &self.notify)
            .field(
                "secrets",
                &*self
                    .secrets
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
            .finish_non_exhaustive()
    }
}

/// Line number (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .matches('\n')
        .count()
        .saturating_add(1)
}

impl Config {
    /// Finds and loads the configuration: `explicit` (from `--config` or
    /// `$DBSEAL_CONFIG`) must exist; otherwise `./dbseal.toml` is used when present.
    pub fn load(explicit: Option<&Path>, registry: &Registry) -> Result<Option<Config>> {
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
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Config::parse(&text, &path, &|k| std::env::var(k).ok(), registry).map(Some)
    }

    /// Parses and validates `text` (read from `path`), expanding `${VAR}` with `env`;
    /// every datastore's kind must be one of `registry`.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        registry: &Registry,
    ) -> Result<Config> {
        let origin = path.display().to_string();
        // Pass 1: the structure, with line numbers and the path of any bad key.
        let de = toml::Deserializer::new(text);
        if let Err(e) = serde_path_to_error::deserialize::<_, ConfigFile>(de) {
            return Err(Error::Config(structure_error(&origin, text, &e)));
        }
        // Pass 2: expand ${VAR} everywhere, check for inline secrets, then build.
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| Error::Config(format!("{origin}: {}", e.message())))?;
        let mut ex = expand::Expander {
            env,
            origin: origin.clone(),
            secrets: Vec::new(),
        };
        ex.value("", "", &mut value)?;
        let file = ConfigFile::deserialize(value)
            .map_err(|e| Error::Config(format!("{origin}: {}", e.message())))?;
        let mut schemes = BTreeMap::new();
        for d in registry.drivers() {
            let all = d.url_schemes();
            if let Some(first) = all.first() {
                for s in all {
                    schemes
                        .entry(s.to_string())
                        .or_insert_with(|| first.to_string());
                }
            }
        }
        // Webhook URLs are secrets (Slack's holds its token in the path).
        let mut secrets = ex.secrets;
        for (i, t) in file.notify.iter().enumerate() {
            t.validate(&origin, i)?;
            secrets.extend(t.secrets().map(|s| SecretString::new(s.clone())));
        }
        let mut key_expiries = Vec::new();
        let encryption = file.encryption.resolve(&origin, &mut key_expiries)?;
        let signing = file.signing.resolve(&origin, &mut key_expiries)?;
        let mut datastores = file.datastores;
        for ds in datastores.values_mut() {
            if let Some(o) = ds.environment.and_then(|e| file.objectives.get(&e)) {
                ds.rto = ds.rto.or(o.rto);
                ds.rpo = ds.rpo.or(o.rpo);
            }
        }
        let mut config = Config {
            path: path.to_path_buf(),
            zstd_level: file.zstd_level,
            store: file.store,
            encryption,
            signing,
            retention: file.retention,
            datastores,
            notify: file.notify,
            key_expiries,
            schemes,
            secrets: std::sync::Mutex::new(secrets),
        };
        config.validate(registry)?;
        Ok(config)
    }

    fn validate(&mut self, registry: &Registry) -> Result<()> {
        let origin = self.path.display().to_string();
        for (name, ds) in self.datastores.iter_mut() {
            BackupStore::validate_datastore_name(name)
                .map_err(|e| Error::Config(format!("{origin}: [datastores.{name}]: {e}")))?;
            let driver = registry
                .driver(&ds.kind)
                .map_err(|e| Error::Config(format!("{origin}: [datastores.{name}]: {e}")))?;
            ds.scheme = driver
                .url_schemes()
                .first()
                .copied()
                .unwrap_or(driver.kind())
                .to_string();
            if ds.url.is_some() && (ds.host.is_some() || ds.port.is_some()) {
                return Err(Error::Config(format!(
                    "{origin}: [datastores.{name}]: set either url or host/port, not both"
                )));
            }
            if ds.url.is_none() && ds.host.is_none() {
                return Err(Error::Config(format!(
                    "{origin}: [datastores.{name}]: set url (or host, port, user, dbname)"
                )));
            }
            let mut options = serde_json::Map::new();
            for (key, value) in std::mem::take(&mut ds.options.0) {
                if key.starts_with('-') || key.is_empty() {
                    return Err(Error::Config(format!(
                        "{origin}: [datastores.{name}.options]: write option `{key}` without leading dashes"
                    )));
                }
                let flag = key.replace('_', "-");
                if RESERVED_OPTIONS.contains(&flag.as_str()) {
                    return Err(Error::Config(format!(
                        "{origin}: [datastores.{name}.options]: `{key}` is set by the datastore's own keys, not in options"
                    )));
                }
                options.insert(flag, value);
            }
            ds.options = DriverOptions(options);
        }
        if let Some(store) = &self.store {
            store
                .quota_bytes()
                .map_err(|e| Error::Config(format!("{origin}: {e}")))?;
            let p = store.alert_percent();
            if !(p > 0.0 && p <= 100.0) {
                return Err(Error::Config(format!(
                    "{origin}: [store] storage_alert_percent {p} is out of range (above 0, at most 100)"
                )));
            }
        }
        if let Some(level) = self.zstd_level {
            if !(-7..=22).contains(&level) || level == 0 {
                return Err(Error::Config(format!(
                    "{origin}: zstd_level {level} is out of range (1..22, or -7..-1)"
                )));
            }
        }
        Ok(())
    }

    /// A configured datastore, or an error listing the configured names.
    pub fn datastore(&self, name: &str) -> Result<&DatastoreConfig> {
        self.datastores.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.datastores.keys().map(String::as_str).collect();
            Error::Config(format!(
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

    /// The configured datastore whose target (scheme, host, port, database) is `url`;
    /// a production one first when several match. A port or database left out of
    /// either URL matches any (so a production target is never missed for a default).
    pub fn datastore_for_url(&self, url: &str) -> Option<(&str, &DatastoreConfig)> {
        let wanted = self.endpoint(url)?;
        let mut matches: Vec<(&str, &DatastoreConfig)> = self
            .datastores
            .iter()
            .filter(|(_, ds)| {
                self.endpoint(&ds.connection_url_without_password())
                    .is_some_and(|e| e.matches(&wanted))
            })
            .map(|(n, ds)| (n.as_str(), ds))
            .collect();
        matches.sort_by_key(|(_, ds)| ds.environment != Some(Environment::Production));
        matches.into_iter().next()
    }

    /// Scheme (its driver's first), host, port and database of a URL: what identifies
    /// a database target.
    fn endpoint(&self, url: &str) -> Option<Endpoint> {
        let u = url::Url::parse(url).ok()?;
        let scheme = self
            .schemes
            .get(u.scheme())
            .cloned()
            .unwrap_or_else(|| u.scheme().to_string());
        let host = u.host_str().unwrap_or("").to_ascii_lowercase();
        let host = if host == "localhost" {
            "127.0.0.1".to_string()
        } else {
            host
        };
        let path = u.path().trim_matches('/').to_string();
        Some(Endpoint {
            scheme,
            host,
            port: u.port(),
            path: (!path.is_empty()).then_some(path),
        })
    }

    /// Replaces every secret this configuration knows (expanded secret variables, URL
    /// passwords, password files read) in `text` by `**REDACTED**`.
    pub fn scrub(&self, text: &str) -> String {
        let guard = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::secret::scrub(text, &guard)
    }

    /// The full connection URL of a configured datastore (see
    /// [`DatastoreConfig::connection_url`]); the password read from its file is
    /// remembered so that [`Config::scrub`] removes it from any output.
    pub fn connection_url(&self, name: &str) -> Result<SecretString> {
        let ds = self.datastore(name)?;
        if let Some(pw) = ds.password(name)? {
            let mut s = self
                .secrets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.push(SecretString::new(percent_encode_userinfo(pw.expose())));
            s.push(pw);
        }
        ds.connection_url(name)
    }

    /// The resolved configuration with secrets redacted, for `dbseal config check`.
    pub fn redacted(&self) -> serde_json::Value {
        redact::config(self)
    }
}

/// What identifies a database target (see [`Config::datastore_for_url`]).
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: Option<String>,
}

impl Endpoint {
    fn matches(&self, other: &Endpoint) -> bool {
        fn either<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            a.is_none() || b.is_none() || a == b
        }
        self.scheme == other.scheme
            && self.host == other.host
            && either(&self.port, &other.port)
            && either(&self.path, &other.path)
    }
}

/// The message of a structural error (unknown key, wrong type) of the first pass.
fn structure_error(
    origin: &str,
    text: &str,
    e: &serde_path_to_error::Error<toml::de::Error>,
) -> String {
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
    format!("{origin}: {line}{place}{sep}{msg}")
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
        let mut s = format!("{}://", self.scheme);
        let enc = percent_encode_userinfo;
        match (&self.user, password) {
            (Some(u), Some(p)) => s.push_str(&format!("{}:{}@", enc(u), enc(p))),
            (Some(u), None) => s.push_str(&format!("{}@", enc(u))),
            (None, Some(p)) => s.push_str(&format!(":{}@", enc(p))),
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
            s.push_str(&enc(db));
        }
        s
    }

    /// The password from `password_file`, if set.
    pub fn password(&self, name: &str) -> Result<Option<SecretString>> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let pw = SecretString::from_file(path).map_err(|e| {
            Error::Config(format!(
                "datastore `{name}`: cannot read password_file {}: {e}",
                path.display()
            ))
        })?;
        if pw.is_empty() {
            return Err(Error::Config(format!(
                "datastore `{name}`: password_file {} is empty",
                path.display()
            )));
        }
        Ok(Some(pw))
    }

    /// The full connection URL, with the password from `password_file` when the URL
    /// has none. A secret: hand it only to the driver, never print it.
    pub fn connection_url(&self, name: &str) -> Result<SecretString> {
        let password = self.password(name)?;
        let url = match &self.url {
            Some(u) => {
                let mut url = u.clone();
                if let Some(pw) = &password {
                    let mut parsed = url::Url::parse(u).map_err(|e| {
                        Error::Config(format!(
                            "datastore `{name}`: url {} is invalid: {e}",
                            redact_url(u)
                        ))
                    })?;
                    if parsed.password().is_none() {
                        parsed
                            .set_password(Some(&percent_encode_userinfo(pw.expose())))
                            .map_err(|_| {
                                Error::Config(format!(
                                    "datastore `{name}`: url {} cannot carry a password",
                                    redact_url(u)
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

    /// The driver options of a backup of this datastore: its `[options]` and its
    /// connection URL (`url`, a secret).
    pub fn backup_options(&self, name: &str) -> Result<DriverOptions> {
        let mut options = self.options.clone();
        options.set("url", self.connection_url(name)?.expose());
        Ok(options)
    }

    /// The labels this datastore puts in its manifests: its `labels`, and
    /// `environment=…`.
    pub fn manifest_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        if let Some(env) = self.environment {
            labels.insert("environment".into(), env.as_str().into());
        }
        labels
    }

    /// Whether restores into it need a confirmation.
    pub fn is_production(&self) -> bool {
        self.environment == Some(Environment::Production)
    }

    /// A copy with its URLs' passwords and secret options redacted.
    pub fn redacted(&self) -> DatastoreConfig {
        redact::datastore(self)
    }
}

/// Checks that datastore `name`'s options are ones its driver knows (no connection is
/// made); the error names the datastore.
pub fn check_datastore_options(
    registry: &Registry,
    name: &str,
    ds: &DatastoreConfig,
) -> Result<()> {
    let driver = registry.driver(&ds.kind)?;
    driver.check_backup_options(&ds.options).map_err(|e| {
        Error::Config(format!(
            "[datastores.{name}] ({}): {e} (options go in [datastores.{name}.options] without dashes)",
            ds.kind
        ))
    })
}

/// `dbseal config check`: checks what loading could not (password, identity and
/// passphrase files readable, recipients valid, every datastore's options known to its
/// driver) and returns the resolved configuration with secrets redacted.
pub fn check(config: &Config, registry: &Registry) -> Result<serde_json::Value> {
    // Files the config refers to must be readable now, not at 2 a.m.
    let mut problems = Vec::new();
    for (name, ds) in &config.datastores {
        if let Err(e) = ds.password(name) {
            problems.push(e.to_string());
        }
        if let Err(e) = check_datastore_options(registry, name, ds) {
            problems.push(e.to_string());
        }
    }
    if let Some(p) = &config.encryption.identity {
        if let Err(e) = crate::keys::Decryption::from_identity_file(p) {
            problems.push(format!("[encryption] identity: {e}"));
        }
    }
    if let Some(p) = &config.encryption.passphrase_file {
        if !p.is_file() {
            problems.push(format!(
                "[encryption] passphrase_file {} is not a readable file",
                p.display()
            ));
        }
    }
    if let Err(e) = config.signing.trust() {
        problems.push(format!("[signing]: {e}"));
    }
    if !config.encryption.recipients.is_empty() {
        if let Err(e) = crate::keys::Encryption::parse_recipients(&config.encryption.recipients) {
            problems.push(format!("[encryption] recipients: {e}"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Config(config.scrub(&format!(
            "{}: {}",
            config.path.display(),
            problems.join("; ")
        ))));
    }
    let mut value = config.redacted();
    redact::strip_nulls(&mut value);
    Ok(value)
}

#[cfg(test)]
mod tests;
