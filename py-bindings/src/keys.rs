//! `Identity` (a secret age key) and the translation of `recipients=`, `identity=` and
//! `passphrase=` arguments into the library's `Encryption` / `Decryption`.

use std::path::PathBuf;
use std::str::FromStr;
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
        let mut recipients: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
            .filter_map(|l| age::x25519::Identity::from_str(l).ok())
            .map(|id| id.to_public().to_string())
            .collect();
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
        use std::io::Write;
        let mut file = backup_core::fsutil::private_file(&path).map_err(|e| {
            config_error(
                py,
                match e.kind() {
                    std::io::ErrorKind::AlreadyExists => format!(
                        "{} already exists; refusing to overwrite an identity",
                        path.display()
                    ),
                    _ => format!("cannot create identity file {}: {e}", path.display()),
                },
            )
        })?;
        file.write_all(self.secret.expose().as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| {
                config_error(
                    py,
                    format!("cannot write identity file {}: {e}", path.display()),
                )
            })
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

/// A recipient argument: a public key string, or an `Identity` (its public keys).
#[derive(FromPyObject)]
pub enum RecipientArg<'py> {
    /// An identity object.
    Identity(Bound<'py, Identity>),
    /// A public key, or several separated by commas or newlines.
    Text(String),
}

/// `recipients=`: one recipient or a sequence of them.
#[derive(FromPyObject)]
pub enum RecipientsArg<'py> {
    /// A single recipient.
    One(RecipientArg<'py>),
    /// Several.
    Many(Vec<RecipientArg<'py>>),
}

/// The public keys `recipients=` names (an `Identity` stands for its recipients).
pub fn recipient_texts(
    py: Python<'_>,
    recipients: RecipientsArg<'_>,
    secrets: &mut Secrets,
) -> PyResult<Vec<String>> {
    let list = match recipients {
        RecipientsArg::One(r) => vec![r],
        RecipientsArg::Many(v) => v,
    };
    let mut texts = Vec::new();
    for r in list {
        match r {
            RecipientArg::Identity(id) => {
                let id = id.get();
                if id.recipients.is_empty() {
                    return Err(config_error(
                        py,
                        format!(
                            "{}: this identity has no known recipient; pass its public key",
                            id.origin
                        ),
                    ));
                }
                texts.extend(id.recipients.iter().cloned());
            }
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

/// The encryption that `recipients=` / `passphrase=` ask for; `None` when neither was
/// given (the configuration's `[encryption]` then applies, as for the CLI).
pub fn encryption(
    py: Python<'_>,
    recipients: Option<RecipientsArg<'_>>,
    passphrase: Option<String>,
    secrets: &mut Secrets,
) -> PyResult<Option<Encryption>> {
    let given = recipients.is_some();
    let texts = match recipients {
        Some(r) => recipient_texts(py, r, secrets)?,
        None => Vec::new(),
    };
    match passphrase {
        Some(_) if !texts.is_empty() => Err(config_error(
            py,
            "pass recipients or a passphrase, not both (age cannot mix them)",
        )),
        Some(p) if p.is_empty() => Err(config_error(py, "the passphrase is empty")),
        Some(p) => {
            secrets.add(&p);
            Ok(Some(Encryption::Passphrase(SecretString::new(p))))
        }
        None if !given => Ok(None),
        None => Encryption::parse_recipients(&texts)
            .map(Some)
            .map_err(|e| to_py(py, &e, secrets)),
    }
}

/// An identity argument: an `Identity`, or the path of an identity file.
#[derive(FromPyObject)]
pub enum IdentityArg<'py> {
    /// An identity object.
    Identity(Bound<'py, Identity>),
    /// An identity file.
    Path(PathBuf),
}

/// `identity=`: one identity or a sequence of them.
#[derive(FromPyObject)]
pub enum IdentitiesArg<'py> {
    /// A single identity.
    One(IdentityArg<'py>),
    /// Several (any of them may decrypt).
    Many(Vec<IdentityArg<'py>>),
}

/// The decryption that `identity=` / `passphrase=` give, if any.
pub fn decryption(
    py: Python<'_>,
    identity: Option<IdentitiesArg<'_>>,
    passphrase: Option<String>,
    secrets: &mut Secrets,
) -> PyResult<Option<Arc<Decryption>>> {
    let list = match identity {
        None => Vec::new(),
        Some(IdentitiesArg::One(i)) => vec![i],
        Some(IdentitiesArg::Many(v)) => v,
    };
    let mut out: Option<Decryption> = None;
    for i in list {
        let d = match i {
            IdentityArg::Identity(id) => id.get().decryption(py)?,
            IdentityArg::Path(p) => {
                Decryption::from_identity_file(&p).map_err(|e| to_py(py, &e, secrets))?
            }
        };
        out = Some(match out {
            Some(prev) => prev.merge(d),
            None => d,
        });
    }
    if let Some(p) = passphrase {
        secrets.add(&p);
        if p.is_empty() {
            return Err(config_error(py, "the passphrase is empty"));
        }
        let d = Decryption::from_passphrase(SecretString::new(p));
        out = Some(match out {
            Some(prev) => prev.merge(d),
            None => d,
        });
    }
    Ok(out.map(Arc::new))
}
