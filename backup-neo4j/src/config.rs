#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! Connection settings for a Neo4j server over Bolt.

use backup_core::secret::percent_decode;
use backup_core::{Error, Result, SecretString};
use serde::Deserialize;

use crate::error::Neo4jError;

/// The URL schemes accepted: plain Bolt, routing (`neo4j`) and their TLS variants
/// (`+s`: verified certificate, `+ssc`: self-signed certificate accepted).
pub const SCHEMES: [&str; 6] = [
    "bolt",
    "bolt+s",
    "bolt+ssc",
    "neo4j",
    "neo4j+s",
    "neo4j+ssc",
];

/// Where and how to reach a Neo4j database.
///
/// Built from a URL (`bolt://host:7687`, `neo4j+s://host`), optionally with the user
/// name in it; the password comes from `password` or `NEO4J_PASSWORD`, never from argv.
/// [`Neo4jConfig::from_env`] reads `NEO4J_URI`, `NEO4J_USERNAME`, `NEO4J_PASSWORD` and
/// `NEO4J_DATABASE` the way Neo4j's own tools do.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neo4jConfig {
    /// The server URL: `bolt://`, `bolt+s://`, `bolt+ssc://`, `neo4j://`, `neo4j+s://`
    /// or `neo4j+ssc://`. A password inside the URL is accepted but discouraged.
    pub url: String,
    /// The user name (default: the one in the URL, else `neo4j`).
    #[serde(default)]
    pub user: Option<String>,
    /// The password.
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<SecretString>,
    /// The database name (default: the server's default database).
    #[serde(default)]
    pub database: Option<String>,
    /// Rows fetched per round trip while exporting (default 10,000).
    #[serde(default = "default_fetch_size")]
    pub fetch_size: usize,
}

fn default_fetch_size() -> usize {
    10_000
}

fn secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::new))
}

impl std::fmt::Debug for Neo4jConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jConfig")
            .field("url", &backup_core::redact_url(&self.url))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "**REDACTED**"))
            .field("database", &self.database)
            .field("fetch_size", &self.fetch_size)
            .finish()
    }
}

/// A validated configuration: the parts the driver needs.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// URL without user info.
    pub uri: String,
    pub user: String,
    pub password: SecretString,
    pub database: Option<String>,
    /// `neo4j host:port/db` for messages.
    pub target: String,
    pub host: String,
}

impl Neo4jConfig {
    /// A configuration for `url` with no credentials yet.
    pub fn new(url: impl Into<String>) -> Self {
        Neo4jConfig {
            url: url.into(),
            user: None,
            password: None,
            database: None,
            fetch_size: default_fetch_size(),
        }
    }

    /// Sets the user name.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets the password.
    pub fn password(mut self, password: impl Into<SecretString>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// A configuration from `NEO4J_URI` (default `bolt://localhost:7687`),
    /// `NEO4J_USERNAME`, `NEO4J_PASSWORD` and `NEO4J_DATABASE`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Neo4jConfig {
            url: var("NEO4J_URI").unwrap_or_else(|| "bolt://localhost:7687".into()),
            user: var("NEO4J_USERNAME"),
            password: var("NEO4J_PASSWORD").map(SecretString::new),
            database: var("NEO4J_DATABASE"),
            fetch_size: default_fetch_size(),
        }
    }

    /// Fills what is unset from `NEO4J_USERNAME`, `NEO4J_PASSWORD`, `NEO4J_DATABASE`.
    pub fn with_env_defaults(mut self) -> Self {
        let env = Neo4jConfig::from_env();
        if self.user.is_none() {
            self.user = env.user;
        }
        if self.password.is_none() {
            self.password = env.password;
        }
        if self.database.is_none() {
            self.database = env.database;
        }
        self
    }

    /// The URL without credentials, for manifests and messages.
    pub fn redacted_url(&self) -> String {
        let Ok(mut u) = url::Url::parse(&self.url) else {
            return "<invalid URL>".into();
        };
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.to_string()
    }

    /// Checks the URL and splits out the credentials.
    pub(crate) fn endpoint(&self) -> Result<Endpoint> {
        let bad = |why: String| Error::Config(format!("neo4j URL {}: {why}", self.redacted_url()));
        let mut u = url::Url::parse(&self.url).map_err(|e| bad(e.to_string()))?;
        if !SCHEMES.contains(&u.scheme()) {
            return Err(bad(format!(
                "unsupported scheme `{}` (use one of {})",
                u.scheme(),
                SCHEMES.join(", ")
            )));
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?
            .to_string();
        let port = u.port().unwrap_or(7687);
        let url_user = (!u.username().is_empty()).then(|| percent_decode(u.username()));
        let url_password = u.password().map(percent_decode);
        let _ = u.set_password(None);
        let _ = u.set_username("");
        if self.fetch_size == 0 {
            return Err(Error::Config("neo4j fetch_size must be at least 1".into()));
        }
        if let Some(db) = &self.database {
            validate_database_name(db)?;
        }
        let user = self
            .user
            .clone()
            .or(url_user)
            .unwrap_or_else(|| "neo4j".into());
        let password = self
            .password
            .clone()
            .or(url_password.map(SecretString::new))
            .unwrap_or_default();
        let host = format!("{host}:{port}");
        let target = format!(
            "neo4j {host}/{}",
            self.database.as_deref().unwrap_or("(default database)")
        );
        Ok(Endpoint {
            uri: u.to_string().trim_end_matches('/').to_string(),
            user,
            password,
            database: self.database.clone(),
            target,
            host,
        })
    }
}

impl Endpoint {
    /// Connects (lazily: the driver opens connections on first use).
    pub fn graph(&self, fetch_size: usize) -> Result<neo4rs::Graph> {
        // The workspace's one TLS provider (for bolt+s / neo4j+s); a no-op when set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = neo4rs::ConfigBuilder::default()
            .uri(self.uri.clone())
            .user(self.user.clone())
            .password(self.password.expose().to_string())
            .fetch_size(fetch_size)
            .max_connections(4)
            .connection_timeout(std::time::Duration::from_secs(10));
        if let Some(db) = &self.database {
            b = b.db(db.as_str());
        }
        let config = b
            .build()
            .map_err(|e| Neo4jError::from_driver(&self.target, "configuring the driver", &e))?;
        neo4rs::Graph::connect(config)
            .map_err(|e| Neo4jError::from_driver(&self.target, "connecting", &e).into())
    }
}

/// Refuses a database name dbseal must never write into or pass on: `system` (Neo4j's
/// own catalogue), an empty or over-long name (Neo4j allows 63 characters), a name
/// starting with `-` (it would be read as an option by `neo4j-admin`), and names with
/// backticks, slashes, `..` or control characters (they would escape a Cypher
/// identifier or a path). The name may come from a manifest, which is untrusted.
pub fn validate_database_name(db: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Config(format!(
            "invalid neo4j database name {db:?}: {why}"
        )))
    };
    if db.is_empty() || db.len() > 63 {
        return bad("it must have 1 to 63 characters");
    }
    if db.eq_ignore_ascii_case("system") {
        return bad("`system` is Neo4j's own database and is never a backup target");
    }
    if db.starts_with('-') {
        return bad("it must not start with `-`");
    }
    if db.contains(['`', '/', '\\']) || db.contains("..") || db.chars().any(char::is_control) {
        return bad("backticks, slashes, `..` and control characters are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_that_could_escape_are_refused() {
        let long = "x".repeat(64);
        for bad in [
            "",
            "system",
            "SYSTEM",
            "--overwrite-destination=true",
            "a`b",
            "../x",
            "a/b",
            "a\nb",
            &long,
        ] {
            assert!(validate_database_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["neo4j", "graph.db", "sales-2026", "fm_tgt_12", "a"] {
            validate_database_name(good).unwrap();
        }
    }

    #[test]
    fn url_credentials_are_split_and_never_shown() {
        let c = Neo4jConfig::new("neo4j+s://alice:s3cr%40t@db.example:7688").database("movies");
        let e = c.endpoint().unwrap();
        assert_eq!(e.uri, "neo4j+s://db.example:7688");
        assert_eq!(e.user, "alice");
        assert_eq!(e.password.expose(), "s3cr@t");
        assert_eq!(e.target, "neo4j db.example:7688/movies");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr"), "{dbg}");
        assert!(!c.redacted_url().contains("s3cr"));
    }

    #[test]
    fn every_documented_scheme_is_accepted_and_others_refused() {
        for s in SCHEMES {
            Neo4jConfig::new(format!("{s}://h")).endpoint().unwrap();
        }
        let err = Neo4jConfig::new("http://h:7474").endpoint().err().unwrap();
        assert!(
            err.to_string().contains("unsupported scheme `http`"),
            "{err}"
        );
        assert!(Neo4jConfig::new("bolt://").endpoint().is_err());
    }

    #[test]
    fn config_file_rejects_unknown_fields_and_hides_the_password() {
        let c: Neo4jConfig =
            serde_json::from_str(r#"{"url":"bolt://h","password":"pw-123"}"#).unwrap();
        assert!(!format!("{c:?}").contains("pw-123"));
        assert!(
            serde_json::from_str::<Neo4jConfig>(r#"{"url":"bolt://h","pasword":"x"}"#).is_err()
        );
    }
}
