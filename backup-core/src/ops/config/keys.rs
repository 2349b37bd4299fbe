//! Keys with expiry dates: `[encryption] recipients` and `[signing] trusted_signers` /
//! `trusted_verifiers` may list a key as its text or as
//! `{ recipient = "age1…", key_expires = "2027-06-01" }` (`signer = "RW…"` and
//! `verifier = "RW…"` read better in `[signing]`), and `[signing] key_expires` dates this host's own signing key.
//! `dbseal status` alerts when a dated key is within `[encryption] key_expiry_warning`
//! (default 90 days) of its date, or past it ([`crate::ops::alerts`]).

use std::path::PathBuf;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::retention::Span;

/// A key as written in the file.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a key (a string) or a table { recipient = \"…\", key_expires = \"YYYY-MM-DD\" }"
)]
pub(super) enum KeyEntry {
    /// Its text.
    Plain(String),
    /// Its text and the date it expires.
    Dated(DatedKey),
}

/// `{ recipient = "…", key_expires = "YYYY-MM-DD" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DatedKey {
    #[serde(alias = "signer", alias = "verifier")]
    recipient: String,
    key_expires: String,
}

/// `[encryption]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EncryptionFile {
    #[serde(default)]
    recipients: Vec<KeyEntry>,
    identity: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    key_expiry_warning: Option<Span>,
}

/// `[signing]` as written (see [`crate::ops::TrustOptions`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SigningFile {
    key_file: Option<PathBuf>,
    key_expires: Option<String>,
    #[serde(default)]
    trusted_signers: Vec<KeyEntry>,
    #[serde(default)]
    trusted_verifiers: Vec<KeyEntry>,
    #[serde(default)]
    allow_unsigned: bool,
}

/// A key with an expiry date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyExpiry {
    /// `recipient`, `trusted signer`, `trusted verifier` or `signing key`.
    pub role: &'static str,
    /// The key (a public key, or the signing key's file): never a secret.
    pub key: String,
    /// The day it expires (UTC).
    pub expires: NaiveDate,
}

impl KeyExpiry {
    /// The key shortened for messages and metric labels: `age1qyqszqgp…`; the signing
    /// key's file is shown whole. (A public key's base64 may hold `/`: that is not a
    /// path.)
    pub fn short_key(&self) -> String {
        if self.role == "signing key" || self.key.chars().count() <= 16 {
            self.key.clone()
        } else {
            format!("{}…", self.key.chars().take(16).collect::<String>())
        }
    }
}

/// The default `key_expiry_warning`.
pub const DEFAULT_KEY_EXPIRY_WARNING: Span = Span {
    months: 0,
    seconds: 90 * 86_400,
};

fn date(origin: &str, place: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        Error::Config(format!(
            "{origin}: {place}: key_expires `{text}` is not a date (write \"YYYY-MM-DD\")"
        ))
    })
}

/// Splits entries into key texts and expiries of `role`.
fn split(
    origin: &str,
    place: &str,
    role: &'static str,
    entries: Vec<KeyEntry>,
    expiries: &mut Vec<KeyExpiry>,
) -> Result<Vec<String>> {
    let mut keys = Vec::with_capacity(entries.len());
    for e in entries {
        match e {
            KeyEntry::Plain(k) => keys.push(k),
            KeyEntry::Dated(d) => {
                expiries.push(KeyExpiry {
                    role,
                    key: d.recipient.trim().to_string(),
                    expires: date(origin, place, &d.key_expires)?,
                });
                keys.push(d.recipient);
            }
        }
    }
    Ok(keys)
}

impl EncryptionFile {
    /// The section, its keys' expiry dates added to `expiries`.
    pub(super) fn resolve(
        self,
        origin: &str,
        expiries: &mut Vec<KeyExpiry>,
    ) -> Result<super::EncryptionSection> {
        Ok(super::EncryptionSection {
            recipients: split(
                origin,
                "[encryption] recipients",
                "recipient",
                self.recipients,
                expiries,
            )?,
            identity: self.identity,
            passphrase_file: self.passphrase_file,
            key_expiry_warning: self.key_expiry_warning,
        })
    }
}

impl SigningFile {
    /// The trust options, their keys' expiry dates added to `expiries`.
    pub(super) fn resolve(
        self,
        origin: &str,
        expiries: &mut Vec<KeyExpiry>,
    ) -> Result<crate::ops::TrustOptions> {
        if let Some(text) = &self.key_expires {
            let Some(file) = &self.key_file else {
                return Err(Error::Config(format!(
                    "{origin}: [signing] key_expires dates key_file, which is not set"
                )));
            };
            expiries.push(KeyExpiry {
                role: "signing key",
                key: file.display().to_string(),
                expires: date(origin, "[signing]", text)?,
            });
        }
        Ok(crate::ops::TrustOptions {
            signing_key: self.key_file,
            trusted_signers: split(
                origin,
                "[signing] trusted_signers",
                "trusted signer",
                self.trusted_signers,
                expiries,
            )?,
            trusted_verifiers: split(
                origin,
                "[signing] trusted_verifiers",
                "trusted verifier",
                self.trusted_verifiers,
                expiries,
            )?,
            allow_unsigned: self.allow_unsigned,
        })
    }
}
