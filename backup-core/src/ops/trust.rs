//! Where a front-end finds this host's signing key and the keys it trusts
//! ([`crate::sign`]): flags, environment variables, then `dbseal.toml`'s `[signing]`.
//!
//! ```toml
//! [signing]
//! key_file = "/etc/dbseal/identity.txt.minisign.key"   # this host signs what it writes
//! trusted_signers = ["RWQ…"]                       # backup hosts (manifests, sets)
//! trusted_verifiers = ["RWS…"]                     # hosts that write verification records
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::Config;
use crate::error::Result;
use crate::sign::{PublicKey, SigningKey, Trust};

/// This host's signing key and the public keys it trusts.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustOptions {
    /// Signing key file (from `dbseal keygen`: IDENTITY.minisign.key): signs the
    /// manifests and records this host writes; its public key is trusted here too.
    #[arg(long = "signing-key", env = "DBSEAL_SIGNING_KEY", global = true)]
    #[serde(rename = "key_file", skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<PathBuf>,
    /// Public key (RW…, or a .pub file) of a backup host whose backups are trusted,
    /// repeatable; DBSEAL_TRUSTED_SIGNERS takes a comma-separated list.
    #[arg(
        long = "trusted-signer",
        env = "DBSEAL_TRUSTED_SIGNERS",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_signers: Vec<String>,
    /// Public key of a host whose verification records are trusted, repeatable;
    /// DBSEAL_TRUSTED_VERIFIERS takes a comma-separated list.
    #[arg(
        long = "trusted-verifier",
        env = "DBSEAL_TRUSTED_VERIFIERS",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_verifiers: Vec<String>,
    /// Accept manifests and records without a valid signature from a trusted key (for
    /// backups made before dbseal signed them). Loud, and never the default.
    #[arg(long = "allow-unsigned", global = true)]
    pub allow_unsigned: bool,
}

impl TrustOptions {
    /// The options the environment gives (`DBSEAL_SIGNING_KEY`, `DBSEAL_TRUSTED_SIGNERS`,
    /// `DBSEAL_TRUSTED_VERIFIERS`): for front-ends without clap.
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        TrustOptions {
            // Only a flag or the configuration allows unsigned objects, never a variable.
            allow_unsigned: false,
            ..Self::from_lookup(|k| get(k).into_iter().collect())
        }
    }

    /// The options a set of variables gives, `get` returning every value of a name (an
    /// env file may repeat one): the last `DBSEAL_SIGNING_KEY`, every comma-separated
    /// key of `DBSEAL_TRUSTED_SIGNERS` / `DBSEAL_TRUSTED_VERIFIERS`, and
    /// `DBSEAL_ALLOW_UNSIGNED=true`.
    pub fn from_lookup(get: impl Fn(&str) -> Vec<String>) -> Self {
        let list = |var: &str| -> Vec<String> {
            get(var)
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        TrustOptions {
            signing_key: get("DBSEAL_SIGNING_KEY").pop().map(PathBuf::from),
            trusted_signers: list("DBSEAL_TRUSTED_SIGNERS"),
            trusted_verifiers: list("DBSEAL_TRUSTED_VERIFIERS"),
            allow_unsigned: get("DBSEAL_ALLOW_UNSIGNED").pop().as_deref() == Some("true"),
        }
    }

    /// The environment's options ([`TrustOptions::from_env`]) with those a caller gave
    /// (Python's keywords) in their place.
    pub fn from_env_or(
        signing_key: Option<PathBuf>,
        trusted_signers: Option<Vec<String>>,
        trusted_verifiers: Option<Vec<String>>,
        allow_unsigned: bool,
    ) -> Self {
        let env = Self::from_env();
        TrustOptions {
            signing_key: signing_key.or(env.signing_key),
            trusted_signers: trusted_signers.unwrap_or(env.trusted_signers),
            trusted_verifiers: trusted_verifiers.unwrap_or(env.trusted_verifiers),
            allow_unsigned,
        }
    }

    /// These options completed by `other` (the configuration's `[signing]`): a signing
    /// key given here wins; trusted keys are added; either may allow unsigned objects.
    pub fn or(&self, other: &TrustOptions) -> TrustOptions {
        let mut out = self.clone();
        if out.signing_key.is_none() {
            out.signing_key = other.signing_key.clone();
        }
        for k in &other.trusted_signers {
            if !out.trusted_signers.contains(k) {
                out.trusted_signers.push(k.clone());
            }
        }
        for k in &other.trusted_verifiers {
            if !out.trusted_verifiers.contains(k) {
                out.trusted_verifiers.push(k.clone());
            }
        }
        out.allow_unsigned |= other.allow_unsigned;
        out
    }

    /// These options completed by the configuration's `[signing]`, if any.
    pub fn or_config(&self, config: Option<&Config>) -> TrustOptions {
        match config {
            Some(c) => self.or(&c.signing),
            None => self.clone(),
        }
    }

    /// Loads the keys. A file that cannot be read or a key that does not parse is an
    /// error naming it (exit 2).
    pub fn trust(&self) -> Result<Trust> {
        let mut trust = Trust::default().allow_unsigned(self.allow_unsigned);
        if self.allow_unsigned {
            tracing::warn!(
                "--allow-unsigned: manifests and records without a valid signature from a trusted key are accepted; anyone who can write to the store can then make this host restore their data"
            );
        }
        if let Some(path) = &self.signing_key {
            trust = trust.with_signer(SigningKey::from_file(path)?);
        }
        for k in &self.trusted_signers {
            trust = trust.trust_signer(PublicKey::parse(k)?);
        }
        for k in &self.trusted_verifiers {
            trust = trust.trust_verifier(PublicKey::parse(k)?);
        }
        Ok(trust)
    }
}
