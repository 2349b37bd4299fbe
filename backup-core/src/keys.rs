//! Encryption keys: age recipients (public) and identities (secret).
//!
//! Backups are encrypted to one or more *recipients* — X25519 keys (`age1…`) or SSH
//! public keys (`ssh-ed25519 …`, `ssh-rsa …`) — or to a passphrase (age's scrypt
//! recipient; the two cannot be mixed). Only recipients (public keys) are ever recorded in
//! a manifest. Identities and passphrases live in types whose `Debug` is redacted.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// One public recipient key, kept with its text form for the manifest.
#[derive(Clone)]
pub struct Recipient {
    text: String,
    key: RecipientKey,
}

#[derive(Clone)]
enum RecipientKey {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Recipient {
    /// The public key as written (`age1…` or `ssh-ed25519 AAAA…`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn as_age(&self) -> &dyn age::Recipient {
        match &self.key {
            RecipientKey::X25519(r) => r,
            RecipientKey::Ssh(r) => r,
        }
    }
}

impl FromStr for Recipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let text = s.trim().to_string();
        if text.starts_with("AGE-SECRET-KEY-") {
            return Err(Error::Key(
                "a secret key was given where a recipient (public key, age1…) was expected; \
                 pass the public key printed by `dbseal keygen`"
                    .into(),
            ));
        }
        if text.starts_with("age1") {
            return age::x25519::Recipient::from_str(&text)
                .map(|r| Recipient {
                    text: text.clone(),
                    key: RecipientKey::X25519(r),
                })
                .map_err(|e| Error::Key(format!("invalid age recipient `{text}`: {e}")));
        }
        if text.starts_with("ssh-") {
            return age::ssh::Recipient::from_str(&text)
                .map(|r| Recipient {
                    text: text.clone(),
                    key: RecipientKey::Ssh(r),
                })
                .map_err(|e| Error::Key(format!("invalid SSH recipient `{text}`: {e:?}")));
        }
        Err(Error::Key(format!(
            "invalid recipient `{text}`: expected an age public key (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …)"
        )))
    }
}

/// What a backup is encrypted to.
#[derive(Clone, Debug)]
pub enum Encryption {
    /// Public keys; anyone holding one of the matching identities can decrypt.
    Recipients(Vec<Recipient>),
    /// A passphrase (age scrypt). Slow on purpose; prefer keys for automation.
    Passphrase(SecretString),
}

impl Encryption {
    /// Encryption to the given recipients; at least one is required.
    pub fn to_recipients(recipients: Vec<Recipient>) -> Result<Self> {
        if recipients.is_empty() {
            return Err(Error::Key(
                "no recipient given: pass --recipient age1… (from `dbseal keygen`), set DBSEAL_RECIPIENTS, or use --passphrase-file".into(),
            ));
        }
        Ok(Encryption::Recipients(recipients))
    }

    /// Parses recipients from strings (e.g. `--recipient` values).
    pub fn parse_recipients<S: AsRef<str>>(recipients: &[S]) -> Result<Self> {
        let parsed = recipients
            .iter()
            .flat_map(|r| {
                r.as_ref()
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .map(|s| s.parse())
            .collect::<Result<Vec<Recipient>>>()?;
        Self::to_recipients(parsed)
    }

    /// The recipients' public keys, as recorded in the manifest (empty for a passphrase).
    pub fn public_keys(&self) -> Vec<String> {
        match self {
            Encryption::Recipients(r) => r.iter().map(|r| r.as_str().to_string()).collect(),
            Encryption::Passphrase(_) => Vec::new(),
        }
    }

    pub(crate) fn encryptor(&self) -> Result<age::Encryptor> {
        match self {
            Encryption::Recipients(rs) => {
                age::Encryptor::with_recipients(rs.iter().map(|r| r.as_age()))
                    .map_err(|e| Error::Key(format!("cannot encrypt to these recipients: {e}")))
            }
            Encryption::Passphrase(p) => Ok(age::Encryptor::with_user_passphrase(
                age::secrecy::SecretString::from(p.expose().to_string()),
            )),
        }
    }
}

/// What decrypts a backup: identities from files, or a passphrase.
pub struct Decryption {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    passphrase: Option<SecretString>,
    sources: Vec<String>,
    /// The public keys (`age1…`) of the X25519 identities (SSH ones are not derived).
    public: Vec<String>,
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryption")
            .field("identity_files", &self.sources)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "**REDACTED**"),
            )
            .finish()
    }
}

impl Decryption {
    /// Loads identities from an age identity file (`AGE-SECRET-KEY-1…` lines, as written
    /// by `dbseal keygen` or `age-keygen`) or an unencrypted SSH private key.
    pub fn from_identity_file(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| {
            Error::Key(format!("cannot read identity file {}: {e}", path.display()))
        })?;
        Self::from_identity_bytes(&data, &path.display().to_string())
    }

    /// Loads identities from the contents of an identity file; `origin` names it in errors.
    pub fn from_identity_bytes(data: &[u8], origin: &str) -> Result<Self> {
        let text = String::from_utf8_lossy(data);
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----")
            || text.contains("-----BEGIN RSA PRIVATE KEY-----")
        {
            let id =
                age::ssh::Identity::from_buffer(BufReader::new(data), Some(origin.to_string()))
                    .map_err(|e| Error::Key(format!("cannot read SSH identity {origin}: {e}")))?;
            return match id {
                age::ssh::Identity::Unencrypted(_) => Ok(Decryption {
                    identities: vec![Box::new(id)],
                    passphrase: None,
                    sources: vec![origin.to_string()],
                    public: Vec::new(),
                }),
                age::ssh::Identity::Encrypted(_) => Err(Error::Key(format!(
                    "SSH identity {origin} is passphrase-protected; dbseal needs an unencrypted key or an age identity"
                ))),
                age::ssh::Identity::Unsupported(k) => Err(Error::Key(format!(
                    "SSH identity {origin} is of an unsupported type: {k:?}"
                ))),
            };
        }
        let file = age::IdentityFile::from_buffer(BufReader::new(data)).map_err(|_| {
            Error::Key(format!(
                "{origin} is not an age identity file (expected AGE-SECRET-KEY-1… lines) nor an SSH private key"
            ))
        })?;
        let identities = file
            .into_identities()
            .map_err(|e| Error::Key(format!("cannot use identities in {origin}: {e}")))?;
        if identities.is_empty() {
            return Err(Error::Key(format!("{origin} holds no identity")));
        }
        Ok(Decryption {
            identities,
            passphrase: None,
            sources: vec![origin.to_string()],
            public: identity_recipients(data),
        })
    }

    /// Decryption with a passphrase.
    pub fn from_passphrase(passphrase: SecretString) -> Self {
        Decryption {
            identities: Vec::new(),
            passphrase: Some(passphrase),
            sources: Vec::new(),
            public: Vec::new(),
        }
    }

    /// Adds the identities of `other` to this one.
    pub fn merge(mut self, other: Decryption) -> Self {
        self.identities.extend(other.identities);
        self.sources.extend(other.sources);
        self.public.extend(other.public);
        if self.passphrase.is_none() {
            self.passphrase = other.passphrase;
        }
        self
    }

    /// The public keys (`age1…`) of the X25519 identities this holds: recipients the
    /// restoring side itself can decrypt for (a safety backup's, when none is configured).
    pub fn recipients(&self) -> &[String] {
        &self.public
    }

    /// Whether these keys certainly cannot open a backup encrypted to `recorded`: no
    /// passphrase, every identity's public key known, and none of them recorded. Checked
    /// before a restore touches its target.
    pub fn matches_none_of(&self, recorded: &[String]) -> bool {
        self.passphrase.is_none()
            && !recorded.is_empty()
            && self.public.len() == self.identities.len()
            && !self.public.iter().any(|p| recorded.contains(p))
    }

    /// Runs `f` with every identity this holds (files, then the passphrase).
    pub(crate) fn with_identities<T>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = &dyn age::Identity>) -> T,
    ) -> T {
        let scrypt = self.passphrase.as_ref().map(|p| {
            age::scrypt::Identity::new(age::secrecy::SecretString::from(p.expose().to_string()))
        });
        let mut ids = self
            .identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
            .chain(scrypt.iter().map(|s| s as &dyn age::Identity));
        f(&mut ids)
    }
}

/// A freshly generated X25519 key pair.
pub struct KeyPair {
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("recipient", &self.recipient())
            .finish()
    }
}

impl KeyPair {
    /// Generates a new key pair.
    pub fn generate() -> Self {
        KeyPair {
            identity: age::x25519::Identity::generate(),
        }
    }

    /// The public recipient (`age1…`).
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The identity file contents, as `age-keygen` writes them.
    pub fn identity_file_contents(&self) -> SecretString {
        SecretString::new(format!(
            "# created: {}\n# public key: {}\n{}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.recipient(),
            self.identity.to_string().expose_secret()
        ))
    }

    /// Writes the identity file with mode 0600; refuses to overwrite an existing file.
    pub fn write_identity_file(&self, path: &Path) -> Result<()> {
        write_identity_file(path, &self.identity_file_contents())
    }

    /// A [`Decryption`] holding this identity.
    pub fn decryption(&self) -> Decryption {
        Decryption {
            identities: vec![Box::new(self.identity.clone())],
            passphrase: None,
            sources: vec!["generated key".into()],
            public: vec![self.recipient()],
        }
    }

    /// An [`Encryption`] to this key pair's recipient.
    pub fn encryption(&self) -> Encryption {
        Encryption::Recipients(vec![self
            .recipient()
            .parse()
            .expect("own recipient parses")])
    }
}

/// Writes an identity file (mode 0600, fsynced), refusing to overwrite an existing file.
pub fn write_identity_file(path: &Path, contents: &SecretString) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        Error::Key(match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} already exists; refusing to overwrite an identity",
                path.display()
            ),
            _ => format!("cannot create identity file {}: {e}", path.display()),
        })
    })?;
    f.write_all(contents.expose().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            Error::Key(format!(
                "cannot write identity file {}: {e}",
                path.display()
            ))
        })
}

/// The public keys (`age1…`) of the X25519 identities in an identity file's contents.
pub fn identity_recipients(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .map(|id| id.to_public().to_string())
        .collect()
}

/// What [`generate_key_files`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedKeys {
    /// The age recipient (public key) backups are encrypted to.
    pub recipient: String,
    /// The identity file (secret: decrypts).
    pub identity_file: PathBuf,
    /// The minisign public key that verifies what the signing key signs (`RW…`).
    pub signing_public_key: String,
    /// The signing key file (secret: signs manifests), `IDENTITY.minisign.key`.
    pub signing_key_file: PathBuf,
    /// The public key file, `IDENTITY.minisign.pub`.
    pub signing_public_key_file: PathBuf,
}

impl GeneratedKeys {
    /// What to tell the user about the keys written (one line each).
    pub fn notes(&self) -> [String; 2] {
        [
            format!(
                "identity written to {} (keep it secret, keep a copy offline); back up with --recipient {}",
                self.identity_file.display(),
                self.recipient
            ),
            format!(
                "signing key written to {k} (backup hosts sign with --signing-key {k}); restoring hosts trust it with --trusted-signer {}",
                self.signing_public_key,
                k = self.signing_key_file.display()
            ),
        ]
    }
}

/// The signing key files `dbseal keygen -o IDENTITY` writes beside the identity:
/// `IDENTITY.minisign.key` (secret) and `IDENTITY.minisign.pub`.
pub fn signing_key_paths(identity: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut p = identity.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    (with(".minisign.key"), with(".minisign.pub"))
}

/// `dbseal keygen -o IDENTITY`: a new age identity (0600) and, beside it, a new signing
/// key (0600) with its public key file. Refuses to overwrite any of them.
pub fn generate_key_files(identity: &Path) -> Result<GeneratedKeys> {
    let (secret, public) = signing_key_paths(identity);
    for p in [identity, &secret, &public] {
        if p.exists() {
            return Err(Error::Key(format!(
                "{} already exists; refusing to overwrite a key",
                p.display()
            )));
        }
    }
    let pair = KeyPair::generate();
    let signing = crate::sign::SigningKey::generate()?;
    pair.write_identity_file(identity)?;
    signing.write_files(&secret, &public)?;
    Ok(GeneratedKeys {
        recipient: pair.recipient(),
        identity_file: identity.to_path_buf(),
        signing_public_key: signing.public_key().to_string(),
        signing_key_file: secret,
        signing_public_key_file: public,
    })
}
