//! The exception hierarchy and the mapping from [`backup_core::ErrorKind`].
//!
//! ```text
//! DbsealError(Exception)                     every error dbseal raises
//! ├── ConfigError(DbsealError, ValueError)   invalid arguments, keys, URLs, options
//! ├── NotFoundError                          no such backup, manifest or object
//! ├── ConnectionError(DbsealError, builtins.ConnectionError)
//! │                                          a server or store unreachable, or refused the credentials
//! ├── VerificationError                      corrupted, truncated or tampered artifact; contents differ
//! ├── DecryptionError                        wrong identity or passphrase
//! ├── VersionMismatchError                   newer manifest format, tool older than the server...
//! └── RefusedError                           target not empty, production, manifest exists
//! ```
//!
//! `dbseal.ConnectionError` shadows the builtin of the same name inside the `dbseal`
//! namespace on purpose (it is the name users look for), and is harmless because it *is*
//! a `builtins.ConnectionError` too: `except ConnectionError` catches it either way.
//! `DbsealConnectionError` is the same class under a name that shadows nothing.
//!
//! Every exception carries `kind` (`"config"`, `"not_found"`, ... the CLI's `--json`
//! error classes). Messages are the library's, which never contain a secret; as a second
//! line of defence, every message is scrubbed of the secrets the call was given
//! ([`Secrets`]) before it reaches Python.

use backup_core::ErrorKind;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception classes, created once per interpreter.
pub struct Exceptions {
    /// `DbsealError`.
    pub base: Py<PyType>,
    /// `ConfigError`.
    pub config: Py<PyType>,
    /// `NotFoundError`.
    pub not_found: Py<PyType>,
    /// `ConnectionError` (also a builtin `ConnectionError`).
    pub connection: Py<PyType>,
    /// `VerificationError`.
    pub verification: Py<PyType>,
    /// `DecryptionError`.
    pub decryption: Py<PyType>,
    /// `VersionMismatchError`.
    pub version_mismatch: Py<PyType>,
    /// `RefusedError`.
    pub refused: Py<PyType>,
}

static EXCEPTIONS: PyOnceLock<Exceptions> = PyOnceLock::new();

fn new_class(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: &[Bound<'_, PyAny>],
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "dbseal")?;
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("kind", "failure")?;
    let bases = PyTuple::new(py, bases)?;
    let class = py
        .get_type::<PyType>()
        .call1((name, bases, namespace))?
        .cast_into::<PyType>()?;
    Ok(class.unbind())
}

/// The exception classes (created on first use).
pub fn exceptions(py: Python<'_>) -> PyResult<&'static Exceptions> {
    EXCEPTIONS.get_or_try_init(py, || {
        let builtins = py.import("builtins")?;
        let base = new_class(
            py,
            "DbsealError",
            "Base class of every error dbseal raises. `kind` names the class of failure \
             (config, not_found, connection, verification, decryption, version_mismatch, \
             refused, interrupted, failure).",
            &[py.get_type::<PyException>().into_any()],
        )?;
        let sub = |name: &str, doc: &str, extra: Option<&str>| -> PyResult<Py<PyType>> {
            let mut bases = vec![base.bind(py).clone().into_any()];
            if let Some(builtin) = extra {
                bases.push(builtins.getattr(builtin)?);
            }
            let class = new_class(py, name, doc, &bases)?;
            Ok(class)
        };
        let config = sub(
            "ConfigError",
            "Invalid arguments, configuration, keys, URLs or options (also a ValueError).",
            Some("ValueError"),
        )?;
        config.bind(py).setattr("kind", "config")?;
        let not_found = sub(
            "NotFoundError",
            "The backup, manifest or object does not exist.",
            None,
        )?;
        not_found.bind(py).setattr("kind", "not_found")?;
        let connection = sub(
            "ConnectionError",
            "A server or the store could not be reached, or refused the credentials \
             (also a builtins.ConnectionError).",
            Some("ConnectionError"),
        )?;
        connection.bind(py).setattr("kind", "connection")?;
        let verification = sub(
            "VerificationError",
            "An artifact or manifest failed verification: corrupted, truncated or tampered, \
             or its contents differ from the manifest.",
            None,
        )?;
        verification.bind(py).setattr("kind", "verification")?;
        let decryption = sub(
            "DecryptionError",
            "The artifact could not be decrypted with the given identity or passphrase.",
            None,
        )?;
        decryption.bind(py).setattr("kind", "decryption")?;
        let version_mismatch = sub(
            "VersionMismatchError",
            "Versions do not fit: a newer manifest format, a client tool older than the \
             server, a different extension version.",
            None,
        )?;
        version_mismatch
            .bind(py)
            .setattr("kind", "version_mismatch")?;
        let refused = sub(
            "RefusedError",
            "The target refused the operation: not empty (pass replace=True), production \
             without confirmation, a manifest that already exists.",
            None,
        )?;
        refused.bind(py).setattr("kind", "refused")?;
        Ok(Exceptions {
            base,
            config,
            not_found,
            connection,
            verification,
            decryption,
            version_mismatch,
            refused,
        })
    })
}

/// The stable name of an error kind (the CLI's `--json` error class).
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Config => "config",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Connection => "connection",
        ErrorKind::Verification => "verification",
        ErrorKind::Decryption => "decryption",
        ErrorKind::VersionMismatch => "version_mismatch",
        ErrorKind::Refused => "refused",
        ErrorKind::Interrupted => "interrupted",
        _ => "failure",
    }
}

/// Secret values given to one call, scrubbed from every message it raises.
#[derive(Default, Clone)]
pub struct Secrets(Vec<backup_core::SecretString>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// No secrets.
    pub fn new() -> Self {
        Secrets::default()
    }

    /// Adds a secret value (empty values are ignored).
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.0.iter().any(|s| s.expose() == secret) {
            self.0.push(backup_core::SecretString::new(secret));
        }
    }

    /// Adds the password of a URL, raw and percent-decoded, and any secret-looking query
    /// parameter values.
    pub fn add_url(&mut self, url: &str) {
        let Some((_, rest)) = url.split_once("://") else {
            return;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                self.add(password);
                self.add(&percent_decode(password));
            }
        }
        if let Some((_, query)) = rest.split_once('?') {
            for pair in query.split('&') {
                if let Some((k, v)) = pair.split_once('=') {
                    let k = k.to_ascii_lowercase();
                    if ["password", "pass", "secret", "token", "key"]
                        .iter()
                        .any(|s| k.contains(s))
                    {
                        self.add(v);
                        self.add(&percent_decode(v));
                    }
                }
            }
        }
    }

    /// `message` with every secret replaced by `**REDACTED**`.
    pub fn scrub(&self, message: &str) -> String {
        let mut out = message.to_string();
        // Longest first, so a secret containing another is replaced whole.
        let mut secrets: Vec<&str> = self.0.iter().map(|s| s.expose()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            if out.contains(s) {
                out = out.replace(s, "**REDACTED**");
            }
        }
        out
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
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

/// A Python exception of the class `kind` maps to, with `message` scrubbed.
pub fn raise(py: Python<'_>, kind: ErrorKind, message: &str, secrets: &Secrets) -> PyErr {
    let message = secrets.scrub(message);
    let classes = match exceptions(py) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let class = match kind {
        ErrorKind::Config => &classes.config,
        ErrorKind::NotFound => &classes.not_found,
        ErrorKind::Connection => &classes.connection,
        ErrorKind::Verification => &classes.verification,
        ErrorKind::Decryption => &classes.decryption,
        ErrorKind::VersionMismatch => &classes.version_mismatch,
        ErrorKind::Refused => &classes.refused,
        _ => &classes.base,
    };
    let err = PyErr::from_type(class.bind(py).clone(), (message,));
    // The class attribute names the class; the instance attribute names this error
    // (it differs for DbsealError itself: interrupted or failure).
    let _ = err.value(py).setattr("kind", kind_name(kind));
    err
}

/// Converts a library error into its Python exception.
pub fn to_py(py: Python<'_>, err: &backup_core::Error, secrets: &Secrets) -> PyErr {
    raise(py, err.kind(), &err.to_string(), secrets)
}

/// A `ConfigError` with `message`.
pub fn config_error(py: Python<'_>, message: impl AsRef<str>) -> PyErr {
    raise(py, ErrorKind::Config, message.as_ref(), &Secrets::new())
}
