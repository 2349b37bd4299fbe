//! Signatures: who may write what dbseal trusts.
//!
//! Holders of an age identity can *read* backups; only holders of a signing key can
//! *write* backups that dbseal will restore, report or keep. Every object dbseal relies
//! on — backup manifests, backup set manifests, verification records — is signed with an
//! Ed25519 key in [minisign](https://jedisct1.github.io/minisign/)'s format, and the
//! signature is a standard `.minisig` file beside the object:
//!
//! ```text
//! minisign -Vm manifest.json -P RWQ…   # checks a manifest without dbseal
//! ```
//!
//! The signature's trusted comment names the object's key in the store
//! (`file:{datastore}/{id}/manifest.json`), so a signed object moved to another place is
//! refused as well as a modified one.
//!
//! A [`Trust`] holds this host's [`SigningKey`] (if it writes) and the public keys it
//! trusts: *signers* (backup hosts: manifests, set manifests) and *verifiers* (hosts
//! that write verification records). The host's own key is trusted for both: it could
//! sign anything anyway. `allow_unsigned` accepts objects that carry no valid signature
//! (backups made before signing existed), loudly, and is never the default.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The suffix of a signature object: `manifest.json` → `manifest.json.minisig`.
pub const SIGNATURE_SUFFIX: &str = ".minisig";
/// The largest signature file read (minisign's are ≈ 300 bytes).
const MAX_SIGNATURE: usize = 4096;
/// The untrusted comment dbseal writes in its signature files.
const UNTRUSTED_COMMENT: &str = "signature from a dbseal signing key";

/// The key of the signature object of `key`.
pub fn signature_key(key: &str) -> String {
    format!("{key}{SIGNATURE_SUFFIX}")
}

/// An Ed25519 signing key in minisign's (unencrypted) secret key format.
pub struct SigningKey {
    secret: minisign::SecretKey,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public key {})", self.public.id())
    }
}

fn key_error(what: impl std::fmt::Display) -> Error {
    Error::Key(what.to_string())
}

impl SigningKey {
    /// Generates a new signing key.
    pub fn generate() -> Result<Self> {
        let pair = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|e| key_error(format!("cannot generate a signing key: {e}")))?;
        Ok(SigningKey {
            public: PublicKey::from_minisign(pair.pk),
            secret: pair.sk,
        })
    }

    /// Reads a signing key file (`dbseal keygen`'s, or `minisign -G -W`'s: unencrypted).
    pub fn from_file(path: &Path) -> Result<Self> {
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| key_error(format!("cannot read signing key {shown}: {e}")))?;
        if meta.len() > MAX_SIGNATURE as u64 {
            return Err(key_error(format!(
                "signing key {shown} is not a minisign secret key (too large)"
            )));
        }
        let text = SecretString::new(
            std::fs::read_to_string(path)
                .map_err(|e| key_error(format!("cannot read signing key {shown}: {e}")))?,
        );
        Self::from_text(&text, &shown.to_string())
    }

    /// Parses a signing key file's contents; `origin` names it in errors.
    pub fn from_text(text: &SecretString, origin: &str) -> Result<Self> {
        let bad = |why: &str| key_error(format!("signing key {origin}: {why}"));
        let boxed = minisign::SecretKeyBox::from_string(text.expose())
            .map_err(|_| bad("not a minisign secret key file"))?;
        let secret = boxed.into_unencrypted_secret_key().map_err(|_| {
            bad("not an unencrypted minisign secret key (dbseal keygen writes one; minisign -G -W does too)")
        })?;
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(|_| bad("cannot derive its public key"))?;
        Ok(SigningKey {
            secret,
            public: PublicKey::from_minisign(public),
        })
    }

    /// The secret key file's contents (minisign's format).
    pub fn file_contents(&self) -> Result<SecretString> {
        let boxed = self
            .secret
            .to_box(Some("dbseal signing key (minisign, unencrypted)"))
            .map_err(|e| key_error(format!("cannot encode the signing key: {e}")))?;
        Ok(SecretString::new(boxed.into_string()))
    }

    /// Writes the secret key file (0600, refusing to overwrite) and the public key file.
    pub fn write_files(&self, secret_path: &Path, public_path: &Path) -> Result<()> {
        crate::keys::write_identity_file(secret_path, &self.file_contents()?)?;
        std::fs::write(public_path, self.public.file_contents()).map_err(|e| {
            key_error(format!(
                "cannot write public key {}: {e}",
                public_path.display()
            ))
        })
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The `.minisig` file contents signing `data`, stored at `key`.
    pub fn sign(&self, key: &str, data: &[u8]) -> Result<Vec<u8>> {
        let comment = format!(
            "timestamp:{}\tfile:{key}",
            chrono::Utc::now().timestamp().max(0)
        );
        let sig = minisign::sign(
            None,
            &self.secret,
            Cursor::new(data),
            Some(&comment),
            Some(UNTRUSTED_COMMENT),
        )
        .map_err(|e| key_error(format!("cannot sign {key}: {e}")))?;
        Ok(sig.into_string().into_bytes())
    }
}

/// A key id as minisign prints it: the 8-byte key number, little-endian, in hex.
fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// A minisign public key (`RW…`), trusted as a signer or a verifier.
#[derive(Clone)]
pub struct PublicKey {
    key: minisign::PublicKey,
    text: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.text)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PublicKey {
    fn from_minisign(key: minisign::PublicKey) -> Self {
        PublicKey {
            text: key.to_base64(),
            key,
        }
    }

    /// Parses a public key: the base64 line (`RW…`, as `minisign -P` takes it), a public
    /// key file's contents, or the path of a public key file (`*.pub`).
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(key) = Self::parse_text(text) {
            return Ok(key);
        }
        let path = Path::new(text.trim());
        if !text.contains('\n') && path.is_file() {
            let contents = std::fs::read(path).map_err(|e| {
                key_error(format!("cannot read public key {}: {e}", path.display()))
            })?;
            return std::str::from_utf8(&contents)
                .ok()
                .filter(|_| contents.len() < MAX_SIGNATURE)
                .and_then(Self::parse_text)
                .ok_or_else(|| {
                    key_error(format!(
                        "{} is not a minisign public key file",
                        path.display()
                    ))
                });
        }
        let shown: String = text.trim().chars().take(60).collect();
        Err(key_error(format!(
            "invalid public key `{shown}`: expected a minisign public key (RW…, as dbseal keygen prints it) or a .pub file"
        )))
    }

    fn parse_text(text: &str) -> Option<Self> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))?;
        minisign::PublicKey::from_base64(line)
            .ok()
            .map(Self::from_minisign)
    }

    /// The public key as `minisign -P` takes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key id, as minisign prints it (16 hex digits).
    pub fn id(&self) -> String {
        key_id(self.key.keynum())
    }

    /// A public key file's contents (minisign's format).
    pub fn file_contents(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.id(),
            self.text
        )
    }

    fn keynum(&self) -> &[u8] {
        self.key.keynum()
    }
}

/// What an object is trusted for: written by a backup host, or a record by a verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Manifests, set manifests, WAL: only the trusted signers.
    Backup,
    /// Verification and drill records: trusted verifiers (and signers).
    Record,
}

/// This host's signing key and the keys it trusts. See the module docs.
#[derive(Clone, Default)]
pub struct Trust {
    signer: Option<Arc<SigningKey>>,
    signers: Vec<PublicKey>,
    verifiers: Vec<PublicKey>,
    allow_unsigned: bool,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("signer", &self.signer.as_ref().map(|s| s.public.id()))
            .field("signers", &self.signers)
            .field("verifiers", &self.verifiers)
            .field("allow_unsigned", &self.allow_unsigned)
            .finish()
    }
}

impl Trust {
    /// Signs with `key` (and trusts its public key).
    pub fn with_signer(mut self, key: SigningKey) -> Self {
        self.signer = Some(Arc::new(key));
        self
    }

    /// A new, in-memory signing key that this trust signs with and trusts (tests, and
    /// embedders that keep backups only for their own process).
    pub fn ephemeral() -> Result<Self> {
        Ok(Trust::default().with_signer(SigningKey::generate()?))
    }

    /// Trusts backups (and records) signed by `key`.
    pub fn trust_signer(mut self, key: PublicKey) -> Self {
        if !self.signers.contains(&key) {
            self.signers.push(key);
        }
        self
    }

    /// Trusts verification records signed by `key`.
    pub fn trust_verifier(mut self, key: PublicKey) -> Self {
        if !self.verifiers.contains(&key) {
            self.verifiers.push(key);
        }
        self
    }

    /// Accepts objects without a valid signature from a trusted key (with a warning).
    pub fn allow_unsigned(mut self, allow: bool) -> Self {
        self.allow_unsigned = allow;
        self
    }

    /// Whether unsigned objects are accepted.
    pub fn allows_unsigned(&self) -> bool {
        self.allow_unsigned
    }

    /// The public keys trusted for backups (this host's own first), as `RW…` text.
    pub fn backup_signers(&self) -> Vec<String> {
        self.trusted(Role::Backup).map(|k| k.to_string()).collect()
    }

    /// This host's signing key.
    pub fn signer(&self) -> Option<&SigningKey> {
        self.signer.as_deref()
    }

    /// Fails (before anything is written) when this host cannot sign `what` and unsigned
    /// objects are not allowed.
    pub fn require_signer(&self, what: &str) -> Result<()> {
        if self.signer.is_some() || self.allow_unsigned {
            return Ok(());
        }
        Err(Error::Config(format!(
            "{what} needs a signing key (dbseal restores only what a trusted key signed): create one with `dbseal keygen` and pass --signing-key FILE (DBSEAL_SIGNING_KEY, or key_file = … in dbseal.toml's [signing])"
        )))
    }

    /// The signature of `data` stored at `key`, or `None` without a signing key (allowed
    /// only with `allow_unsigned`).
    pub fn sign(&self, key: &str, data: &[u8]) -> Result<Option<Vec<u8>>> {
        match &self.signer {
            Some(s) => s.sign(key, data).map(Some),
            None => {
                self.require_signer(&format!("writing {key}"))?;
                tracing::warn!(key, "writing an unsigned object (--allow-unsigned)");
                Ok(None)
            }
        }
    }

    fn trusted(&self, role: Role) -> impl Iterator<Item = &PublicKey> {
        let verifiers = match role {
            Role::Backup => &[][..],
            Role::Record => &self.verifiers[..],
        };
        self.signer
            .iter()
            .map(|s| &s.public)
            .chain(self.signers.iter())
            .chain(verifiers.iter())
    }

    /// Checks that `data`, found at `key`, carries a valid signature from a key trusted
    /// for `role`. `signature` is the `.minisig` object, if there was one.
    pub fn check(
        &self,
        key: &str,
        data: &[u8],
        signature: Option<&[u8]>,
        role: Role,
    ) -> Result<()> {
        match self.why_untrusted(key, data, signature, role) {
            None => Ok(()),
            Some(reason) if self.allow_unsigned => {
                tracing::warn!(
                    key,
                    reason,
                    "trusting an unverified object (--allow-unsigned)"
                );
                Ok(())
            }
            Some(reason) => Err(Error::Untrusted {
                key: key.to_string(),
                reason,
            }),
        }
    }

    fn why_untrusted(
        &self,
        key: &str,
        data: &[u8],
        signature: Option<&[u8]>,
        role: Role,
    ) -> Option<String> {
        let Some(signature) = signature else {
            return Some(format!("it is not signed (no {})", signature_key(key)));
        };
        let sig_key = signature_key(key);
        let malformed = || Some(format!("{sig_key} is not a minisign signature"));
        if signature.len() > MAX_SIGNATURE {
            return malformed();
        }
        let Ok(text) = std::str::from_utf8(signature) else {
            return malformed();
        };
        // minisign's verifier indexes the global signature without checking its length:
        // only a line that decodes to at least 64 bytes reaches it.
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() < 4 || lines[3].trim().len() != 88 {
            return malformed();
        }
        let Ok(sig) = minisign::SignatureBox::from_string(text) else {
            return malformed();
        };
        if !sig.is_prehashed() {
            return Some(format!("{sig_key} is a legacy (not prehashed) signature"));
        }
        let mut trusted = self.trusted(role).peekable();
        if trusted.peek().is_none() {
            return Some(match role {
                Role::Backup => "no trusted signer is configured (--trusted-signer, DBSEAL_TRUSTED_SIGNERS, trusted_signers in dbseal.toml, or this host's --signing-key)".into(),
                Role::Record => "no trusted signer or verifier is configured (--trusted-signer, --trusted-verifier, or this host's --signing-key)".into(),
            });
        }
        let Some(public) = trusted.find(|k| k.keynum() == sig.keynum()) else {
            return Some(format!(
                "{sig_key} is signed by a key that is not trusted here (key id {})",
                key_id(sig.keynum())
            ));
        };
        if minisign::verify(&public.key, &sig, Cursor::new(data), true, false, false).is_err() {
            return Some(format!(
                "its signature {sig_key} does not match (the object was modified after signing)"
            ));
        }
        let comment = sig.trusted_comment().unwrap_or_default();
        if !comment
            .split('\t')
            .any(|part| part == format!("file:{key}"))
        {
            return Some(format!(
                "its signature was made for another object ({}), not {key}",
                comment.chars().take(120).collect::<String>()
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_objects_verify_and_tampering_is_named() {
        let key = SigningKey::generate().unwrap();
        let me = Trust::default()
            .with_signer(SigningKey::from_text(&key.file_contents().unwrap(), "t").unwrap());
        let sig = me.sign("a/b/manifest.json", b"data").unwrap().unwrap();
        me.check("a/b/manifest.json", b"data", Some(&sig), Role::Backup)
            .unwrap();
        let reader =
            Trust::default().trust_signer(PublicKey::parse(key.public_key().as_str()).unwrap());
        reader
            .check("a/b/manifest.json", b"data", Some(&sig), Role::Backup)
            .unwrap();
        let err = |t: &Trust, k: &str, d: &[u8], s: Option<&[u8]>, r| {
            t.check(k, d, s, r).unwrap_err().to_string()
        };
        assert!(err(
            &reader,
            "a/b/manifest.json",
            b"datA",
            Some(&sig),
            Role::Backup
        )
        .contains("modified"));
        assert!(err(
            &reader,
            "a/c/manifest.json",
            b"data",
            Some(&sig),
            Role::Backup
        )
        .contains("another object"));
        assert!(
            err(&reader, "a/b/manifest.json", b"data", None, Role::Backup).contains("not signed")
        );
        let stranger =
            Trust::default().trust_signer(SigningKey::generate().unwrap().public_key().clone());
        assert!(err(
            &stranger,
            "a/b/manifest.json",
            b"data",
            Some(&sig),
            Role::Backup
        )
        .contains("not trusted"));
        assert!(err(
            &Trust::default(),
            "a/b/manifest.json",
            b"data",
            Some(&sig),
            Role::Backup
        )
        .contains("no trusted signer"));
        // A verifier's key is trusted for records, not for backups.
        let verifier = Trust::default().trust_verifier(key.public_key().clone());
        verifier
            .check("a/b/manifest.json", b"data", Some(&sig), Role::Record)
            .unwrap();
        assert!(err(
            &verifier,
            "a/b/manifest.json",
            b"data",
            Some(&sig),
            Role::Backup
        )
        .contains("no trusted signer"));
        // Allowing unsigned objects accepts them.
        Trust::default()
            .allow_unsigned(true)
            .check("k", b"x", None, Role::Backup)
            .unwrap();
        assert!(Trust::default().require_signer("backup").is_err());
    }

    #[test]
    fn hostile_signature_files_are_refused_without_panicking() {
        let key = SigningKey::generate().unwrap();
        let t = Trust::default().with_signer(key);
        let good = String::from_utf8(t.sign("k", b"x").unwrap().unwrap()).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            vec![0xff; 10],
            vec![b'a'; MAX_SIGNATURE + 1],
            format!("{}\n{}\n{}\nAAAA\n", lines[0], lines[1], lines[2]).into_bytes(),
            format!(
                "{}\n{}\n{}\n{}\n",
                lines[0],
                &lines[1][..10],
                lines[2],
                lines[3]
            )
            .into_bytes(),
            format!(
                "{}\n{}\n{}\n{}\n",
                lines[0], lines[1], "trusted comment:", lines[3]
            )
            .into_bytes(),
            format!(
                "{}\n{}\n{}\n{}\n",
                lines[0],
                lines[1],
                lines[2],
                "=".repeat(88)
            )
            .into_bytes(),
        ];
        cases.push(
            good.replace("trusted comment: ", "trusted comment: x")
                .into_bytes(),
        );
        for case in cases {
            assert!(t.check("k", b"x", Some(&case), Role::Backup).is_err());
        }
    }

    #[test]
    fn public_keys_parse_from_text_and_files() {
        let key = SigningKey::generate().unwrap();
        let text = key.public_key().as_str().to_string();
        assert!(text.starts_with("RW"));
        assert_eq!(PublicKey::parse(&text).unwrap(), *key.public_key());
        assert_eq!(
            PublicKey::parse(&key.public_key().file_contents()).unwrap(),
            *key.public_key()
        );
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        key.write_files(&sk, &pk).unwrap();
        assert_eq!(
            PublicKey::parse(pk.to_str().unwrap()).unwrap(),
            *key.public_key()
        );
        assert_eq!(
            SigningKey::from_file(&sk).unwrap().public_key(),
            key.public_key()
        );
        assert!(key.write_files(&sk, &pk).is_err(), "refuses to overwrite");
        assert!(PublicKey::parse("RWnotakey").is_err());
        assert!(format!("{key:?}").contains(&key.public_key().id()));
    }
}
