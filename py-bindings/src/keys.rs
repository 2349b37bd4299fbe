//! `Identity` (a secret age key) and the translation of `recipients=`, `identity=` and
//! `passphrase=` arguments into the library's `Encryption` / `Decryption`.

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{Decryption, Encryption, KeyPair, SecretString};
use pyo3::prelude::*;

use crate::errors::{config_error, to_py, Secrets};
use crate::results::py_repr;

/// A secret age identity (X25519 `AGE-SECRET-KEY-1…`, or an unencrypted SSH private
/// key). `str()` and `repr()` show only the public recipient; the secret leaves the
/// object only through `save(path)`.
#[pyclass(frozen, module = "dbseal")]
pub struct Identity {
    secret: SecretString,
    origin: String,
    recipients: Vec<String>,
}

impl Identity {
    fn from_bytes(
        py: Python<'_>,
        data: &[u8],
        origin: &str,
        ssh_pub: Option<PathBuf>,
    ) -> PyResult<Self> {
        // Validates the file the way decryption will read it.
        Decryption::from_identity_bytes(data, origin)
            .map_err(|e| to_py(py, &e, &Secrets::default()))?;
        let text = String::from_utf8_lossy(data);
        let mut recipients = backup_core::keys::identity_recipients(data);
        if recipients.is_empty() {
            if let Some(public) = ssh_pub.and_then(|p| std::fs::read_to_string(p).ok()) {
                let public = public.trim().to_string();
                if public.parse::<backup_core::Recipient>().is_ok() {
                    recipients.push(public);
                }
            }
        }
        Ok(Identity {
            secret: SecretString::new(text.into_owned()),
            origin: origin.to_string(),
            recipients,
        })
    }

    /// The decryption material this identity holds.
    pub fn decryption(&self, py: Python<'_>) -> PyResult<Decryption> {
        Decryption::from_identity_bytes(self.secret.expose().as_bytes(), &self.origin)
            .map_err(|e| to_py(py, &e, &Secrets::default()))
    }

    /// The identity file it was loaded from, if any.
    pub fn file(&self) -> Option<PathBuf> {
        Some(PathBuf::from(&self.origin)).filter(|p| p.is_file())
    }

    /// A freshly generated X25519 identity.
    pub fn generate() -> Self {
        let pair = KeyPair::generate();
        Identity {
            secret: pair.identity_file_contents(),
            origin: "generated identity".into(),
            recipients: vec![pair.recipient()],
        }
    }
}

#[pymethods]
impl Identity {
    /// Loads an identity file: `AGE-SECRET-KEY-1…` lines (as written by `dbseal keygen`,
    /// `age-keygen` or `Identity.save`) or an unencrypted SSH private key (its recipient
    /// is read from `<path>.pub` when present).
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let data = std::fs::read(&path).map_err(|e| {
            config_error(
                py,
                format!("cannot read identity file {}: {e}", path.display()),
            )
        })?;
        let mut public = path.clone().into_os_string();
        public.push(".pub");
        Identity::from_bytes(py, &data, &path.display().to_string(), Some(public.into()))
    }

    /// The public key backups are encrypted to (`age1…`), the first if the identity file
    /// holds several.
    #[getter]
    fn recipient(&self, py: Python<'_>) -> PyResult<String> {
        self.recipients.first().cloned().ok_or_else(|| {
            config_error(
                py,
                format!(
                    "{}: the recipient of this SSH identity is unknown (no readable .pub file next to it); pass its public key as a recipient",
                    self.origin
                ),
            )
        })
    }

    /// Every public key of the identity file.
    #[getter]
    fn recipients(&self) -> Vec<String> {
        self.recipients.clone()
    }

    /// Where the identity came from (a path, or `generated identity`).
    #[getter]
    fn source(&self) -> &str {
        &self.origin
    }

    /// Writes the identity file (mode 0600, as `age-keygen` writes it). Refuses to
    /// overwrite an existing file.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        backup_core::keys::write_identity_file(&path, &self.secret)
            .map_err(|e| to_py(py, &e, &Secrets::default()))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.recipients.first() {
            Some(r) => format!("Identity(recipient={})", py_repr(py, r)),
            None => format!("Identity(source={})", py_repr(py, &self.origin)),
        }
    }

    fn __str__(&self, py: Python<'_>) -> String {
        self.__repr__(py)
    }

    /// Identities never pickle: the secret must not travel by accident.
    fn __reduce__(&self, py: Python<'_>) -> PyResult<()> {
        Err(config_error(
            py,
            "an Identity cannot be pickled (it holds a secret key); pass its file path instead",
        ))
    }
}

/// Generates a new X25519 identity. Keep it (`identity.save(path)`) or lose every backup
/// encrypted to `identity.recipient`.
#[pyfunction]
pub fn generate_identity() -> Identity {
    Identity::generate()
}

/// One value or a sequence of them (`recipients=`, `identity=`).
#[derive(FromPyObject)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// Several.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values, in order.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A recipient: a public key string (or several separated by commas or newlines), or
/// an `Identity` (its public keys).
#[derive(FromPyObject)]
pub enum RecipientArg<'py> {
    /// An identity object.
    Identity(Bound<'py, Identity>),
    /// Public keys.
    Text(String),
}

/// `recipients=`.
pub type RecipientsArg<'py> = OneOrMany<RecipientArg<'py>>;

/// An identity: an `Identity`, or the path of an identity file.
#[derive(FromPyObject)]
pub enum IdentityArg<'py> {
    /// An identity object.
    Identity(Bound<'py, Identity>),
    /// An identity file.
    Path(PathBuf),
}

/// `identity=` (any of several may decrypt).
pub type IdentitiesArg<'py> = OneOrMany<IdentityArg<'py>>;

/// The public keys `recipients=` names (an `Identity` stands for its recipients).
pub fn recipient_texts(
    py: Python<'_>,
    recipients: RecipientsArg<'_>,
    secrets: &mut Secrets,
) -> PyResult<Vec<String>> {
    let mut texts = Vec::new();
    for r in recipients.into_vec() {
        match r {
            RecipientArg::Identity(id) if id.get().recipients.is_empty() => {
                let message = format!(
                    "{}: this identity has no known recipient; pass its public key",
                    id.get().origin
                );
                return Err(config_error(py, message));
            }
            RecipientArg::Identity(id) => texts.extend(id.get().recipients.iter().cloned()),
            RecipientArg::Text(t) => {
                if t.trim_start().starts_with("AGE-SECRET-KEY-") {
                    secrets.add(t.trim());
                }
                texts.push(t)
            }
        }
    }
    Ok(texts)
}

/// A passphrase argument as a secret (never empty).
fn passphrase_secret(py: Python<'_>, p: String, secrets: &mut Secrets) -> PyResult<SecretString> {
    secrets.add(&p);
    match p.is_empty() {
        true => Err(config_error(py, "the passphrase is empty")),
        false => Ok(SecretString::new(p)),
    }
}

/// The encryption that `recipients=` / `passphrase=` ask for; `None` when neither was
/// given (the configuration's `[encryption]` then applies, as for the CLI).
pub fn encryption(
    py: Python<'_>,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    secrets: &mut Secrets,
) -> PyResult<Option<Encryption>> {
    match (recipients, passphrase) {
        (Some(_), Some(_)) => Err(config_error(
            py,
            "pass recipients or a passphrase, not both (age cannot mix them)",
        )),
        (None, Some(p)) => Ok(Some(Encryption::Passphrase(passphrase_secret(
            py, p, secrets,
        )?))),
        (None, None) => Ok(None),
        (Some(r), None) => {
            let texts = recipient_texts(py, r, secrets)?;
            Encryption::parse_recipients(&texts)
                .map(Some)
                .map_err(|e| to_py(py, &e, secrets))
        }
    }
}

/// The decryption that `identity=` / `passphrase=` give, if any.
pub fn decryption(
    py: Python<'_>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    secrets: &mut Secrets,
) -> PyResult<Option<Arc<Decryption>>> {
    let mut all = Vec::new();
    for i in identity.map(OneOrMany::into_vec).unwrap_or_default() {
        all.push(match i {
            IdentityArg::Identity(id) => id.get().decryption(py)?,
            IdentityArg::Path(p) => {
                Decryption::from_identity_file(&p).map_err(|e| to_py(py, &e, secrets))?
            }
        });
    }
    if let Some(p) = passphrase {
        all.push(Decryption::from_passphrase(passphrase_secret(
            py, p, secrets,
        )?));
    }
    Ok(all.into_iter().reduce(Decryption::merge).map(Arc::new))
}
