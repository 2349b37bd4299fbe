#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Connection settings for a Redis server.
//!
//! A [`RedisConfig`] comes from a `redis://` or `rediss://` (TLS) URL
//! (`redis://[[user]:password@]host[:port][/db]`, like redis-cli and the client
//! libraries), from the `REDIS_URL` environment variable, or from a config file (serde,
//! unknown fields refused). The password is a [`SecretString`]: it never appears in
//! `Debug` output, errors, logs or manifests ([`RedisConfig::redacted_url`] is what may be
//! shown).
//!
//! URL options: `rediss://…#insecure` skips certificate verification (test servers
//! only); `?tls_ca_file=/path/ca.pem` trusts a private CA in addition to the system roots;
//! `?timeout=SECONDS` sets the I/O inactivity timeout (default 60).

use std::path::PathBuf;
use std::time::Duration;

use backup_core::SecretString;
use serde::{Deserialize, Deserializer};

use crate::error::RedisError;

/// The default Redis port.
pub const DEFAULT_PORT: u16 = 6379;

/// How to reach one Redis server.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 6379).
    #[serde(default = "default_port")]
    pub port: u16,
    /// ACL user name (`AUTH user password`); none for the default user.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (`AUTH`); never printed.
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub password: Option<SecretString>,
    /// The database index the URL names (`/N`): the default target database of a
    /// restore. A backup always takes every database.
    #[serde(default)]
    pub db: u32,
    /// Connect with TLS (`rediss://`).
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of CA certificates to trust in addition to the system roots.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (test servers only).
    #[serde(default)]
    pub tls_insecure: bool,
    /// I/O inactivity timeout in seconds: a server silent for this long fails the
    /// operation (default 60).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_timeout() -> u64 {
    60
}

fn deserialize_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::new))
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "**REDACTED**"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_insecure", &self.tls_insecure)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Decodes the URL's user or password with [`backup_core::secret::percent_decode`],
/// refusing what that function would keep or replace: an invalid `%` escape, and bytes
/// that are not UTF-8.
fn percent_decode(s: &str) -> Result<String, RedisError> {
    let bytes = s.as_bytes();
    for (i, _) in s.match_indices('%') {
        // As before: a `%` among the last two characters is kept as written.
        let escape = bytes.get(i.saturating_add(1)..i.saturating_add(3));
        if escape.is_some_and(|h| !h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(RedisError::Config(
                "the Redis URL has an invalid percent-escape in its user or password".into(),
            ));
        }
    }
    let decoded = backup_core::secret::percent_decode(s);
    if decoded.contains(char::REPLACEMENT_CHARACTER) && !s.contains(char::REPLACEMENT_CHARACTER) {
        return Err(RedisError::Config(
            "the Redis URL's user or password is not valid UTF-8".into(),
        ));
    }
    Ok(decoded)
}

impl RedisConfig {
    /// A config for `host:port` without credentials or TLS.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        RedisConfig {
            host: host.into(),
            port,
            username: None,
            password: None,
            db: 0,
            tls: false,
            tls_ca_file: None,
            tls_insecure: false,
            timeout_secs: default_timeout(),
        }
    }

    /// Parses a `redis://` or `rediss://` URL. The error never repeats the URL (it may
    /// hold a password).
    pub fn from_url(url: &str) -> Result<Self, RedisError> {
        let bad = |why: &str| RedisError::Config(format!("invalid Redis URL: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let tls = match parsed.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(bad(&format!(
                    "scheme `{other}` is not redis:// or rediss://"
                )))
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut cfg = RedisConfig::new(host, parsed.port().unwrap_or(DEFAULT_PORT));
        cfg.tls = tls;
        if !parsed.username().is_empty() {
            cfg.username = Some(percent_decode(parsed.username())?);
        }
        if let Some(p) = parsed.password() {
            cfg.password = Some(SecretString::new(percent_decode(p)?));
        }
        let path = parsed.path().trim_matches('/');
        if !path.is_empty() {
            cfg.db = path
                .parse()
                .map_err(|_| bad(&format!("the path `/{path}` is not a database index")))?;
        }
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "db" => {
                    cfg.db = v
                        .parse()
                        .map_err(|_| bad(&format!("db=`{v}` is not a database index")))?
                }
                "tls_ca_file" => cfg.tls_ca_file = Some(PathBuf::from(v.as_ref())),
                "timeout" => {
                    cfg.timeout_secs = v
                        .parse()
                        .map_err(|_| bad(&format!("timeout=`{v}` is not a number of seconds")))?
                }
                "password" | "pass" | "secret" => {
                    cfg.password = Some(SecretString::new(v.into_owned()));
                }
                other => return Err(bad(&format!("unknown option `{other}`"))),
            }
        }
        match parsed.fragment() {
            None | Some("") => {}
            Some("insecure") => cfg.tls_insecure = true,
            Some(other) => return Err(bad(&format!("unknown fragment `#{other}`"))),
        }
        Ok(cfg)
    }

    /// The config from `REDIS_URL`.
    pub fn from_env() -> Result<Self, RedisError> {
        let url = std::env::var("REDIS_URL").map_err(|_| {
            RedisError::Config("no Redis URL given and REDIS_URL is not set".into())
        })?;
        Self::from_url(&url)
    }

    /// Sets the password.
    pub fn with_password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// Sets the ACL user.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// `host:port`, as errors and manifests show the server.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL without password (`redis://user@host:port/db`), safe to show.
    pub fn redacted_url(&self) -> String {
        let user = self
            .username
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{user}{}/{}", self.addr(), self.db)
    }

    /// The I/O inactivity timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    /// Checks the settings (called when a source or sink is built).
    pub fn validate(&self) -> Result<(), RedisError> {
        if self.host.is_empty() {
            return Err(RedisError::Config("Redis host is empty".into()));
        }
        if self.username.is_some() && self.password.is_none() {
            return Err(RedisError::Config(format!(
                "Redis user `{}` is given without a password",
                self.username.as_deref().unwrap_or_default()
            )));
        }
        if !self.tls && (self.tls_ca_file.is_some() || self.tls_insecure) {
            return Err(RedisError::Config(
                "TLS options are set but the URL is not rediss://".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_never_prints_the_password() {
        let c =
            RedisConfig::from_url("rediss://alice:s%40cret@db.example:6380/3#insecure").unwrap();
        assert_eq!(c.host, "db.example");
        assert_eq!(c.port, 6380);
        assert_eq!(c.db, 3);
        assert!(c.tls && c.tls_insecure);
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_ref().unwrap().expose(), "s@cret");
        let shown = format!("{c:?} {}", c.redacted_url());
        assert!(!shown.contains("cret"), "{shown}");
        assert_eq!(c.redacted_url(), "rediss://alice@db.example:6380/3");

        let c = RedisConfig::from_url("redis://:pw@127.0.0.1").unwrap();
        assert_eq!(c.port, DEFAULT_PORT);
        assert!(c.username.is_none());
        assert_eq!(c.password.as_ref().unwrap().expose(), "pw");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "http://x:hunter2@h",
            "redis://x:hunter2@h/notadb",
            "redis://x:hunter2@h/?what=1",
        ] {
            let e = RedisConfig::from_url(url).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.starts_with("invalid Redis URL"), "{e}");
        }
    }

    #[test]
    fn url_credentials_are_percent_decoded_and_bad_escapes_refused() {
        let c = RedisConfig::from_url("redis://al%69ce:p%25w%3A@h").unwrap();
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_ref().unwrap().expose(), "p%w:");
        let e = RedisConfig::from_url("redis://u:ab%zzcd@h").unwrap_err();
        assert!(e.to_string().contains("invalid percent-escape"), "{e}");
        let e = RedisConfig::from_url("redis://u:ab%ffcd@h").unwrap_err();
        assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn config_files_refuse_unknown_fields() {
        let c: RedisConfig =
            serde_json::from_str(r#"{"host":"h","password":"pw","db":2}"#).unwrap();
        assert_eq!(c.port, 6379);
        assert!(!format!("{c:?}").contains("pw\""));
        assert!(serde_json::from_str::<RedisConfig>(r#"{"host":"h","pasword":"x"}"#).is_err());
    }
}
