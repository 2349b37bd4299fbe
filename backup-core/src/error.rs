//! The one public error type of backup-core.
//!
//! Error policy (after rustic_core):
//! - Every error says what a user needs to act: the store, the object key, the backup
//!   id, the datastore, the operation. Context is attached once, where it is known.
//! - No error message ever contains a secret: passwords, identities, passphrases and
//!   connection strings with credentials are redacted before they reach an error (see
//!   [`crate::secret::redact_url`]).
//! - Each error has an [`ErrorKind`] so the CLI can choose an exit code and the Python
//!   bindings an exception class without parsing messages.
//! - Database crates convert their own errors into [`Error::Datastore`], choosing the
//!   kind.

use std::io;

/// What sort of failure an [`Error`] is; drives exit codes and exception classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Invalid configuration, arguments, keys or URLs.
    Config,
    /// A backup, manifest or object does not exist.
    NotFound,
    /// A server or store could not be reached, or refused the credentials.
    Connection,
    /// An artifact or manifest failed verification (digest, size, contents, truncation).
    Verification,
    /// The artifact could not be decrypted with the given identity.
    Decryption,
    /// Versions do not fit: a newer manifest format, a tool older than the server...
    VersionMismatch,
    /// The target refused the operation (not empty, production without confirmation).
    Refused,
    /// The operation was interrupted.
    Interrupted,
    /// `status`: a datastore is stale or failed its last verification.
    Unhealthy,
    /// A backup set had a failed member (the others remain ordinary backups).
    SetFailed,
    /// A bug in dbseal (a panic): please report it.
    Internal,
    /// Any other failure (I/O, a database tool failing).
    Other,
}

impl ErrorKind {
    /// The documented process exit code of this kind: the one table both front-ends
    /// use (the CLI exits with it, Python puts it on the exception as `.exit_code`).
    ///
    /// | code | kind |
    /// |------|------|
    /// | 1    | [`ErrorKind::Other`]: a database tool failed, an I/O error |
    /// | 2    | [`ErrorKind::Config`]: invalid arguments, configuration, keys or URLs |
    /// | 3    | [`ErrorKind::NotFound`] |
    /// | 4    | [`ErrorKind::Verification`]: corrupted, truncated, tampered, contents differ |
    /// | 5    | [`ErrorKind::Decryption`]: wrong identity or passphrase |
    /// | 6    | [`ErrorKind::Connection`]: a server or the store unreachable or refusing |
    /// | 7    | [`ErrorKind::VersionMismatch`] |
    /// | 8    | [`ErrorKind::Refused`]: target not empty, production, manifest exists |
    /// | 9    | [`ErrorKind::Unhealthy`]: `status` found a stale or failed datastore |
    /// | 10   | [`ErrorKind::SetFailed`]: a backup set had a failed member |
    /// | 101  | [`ErrorKind::Internal`]: a bug (panic) |
    /// | 130  | [`ErrorKind::Interrupted`] |
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Config => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Verification => 4,
            ErrorKind::Decryption => 5,
            ErrorKind::Connection => 6,
            ErrorKind::VersionMismatch => 7,
            ErrorKind::Refused => 8,
            ErrorKind::Unhealthy => 9,
            ErrorKind::SetFailed => 10,
            ErrorKind::Internal => 101,
            ErrorKind::Interrupted => 130,
            ErrorKind::Other => 1,
        }
    }

    /// Every kind.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Config,
        ErrorKind::NotFound,
        ErrorKind::Verification,
        ErrorKind::Decryption,
        ErrorKind::Connection,
        ErrorKind::VersionMismatch,
        ErrorKind::Refused,
        ErrorKind::Unhealthy,
        ErrorKind::SetFailed,
        ErrorKind::Internal,
        ErrorKind::Interrupted,
        ErrorKind::Other,
    ];

    /// The kind of an exit code (the inverse of [`ErrorKind::exit_code`]; unknown codes
    /// are [`ErrorKind::Other`]).
    pub fn from_exit_code(code: i32) -> ErrorKind {
        Self::ALL
            .into_iter()
            .find(|k| k.exit_code() == code)
            .unwrap_or(ErrorKind::Other)
    }

    /// The stable name of the kind, for `--json` output and Python.
    pub fn class(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Verification => "verification",
            ErrorKind::Decryption => "decryption",
            ErrorKind::Connection => "connection",
            ErrorKind::VersionMismatch => "version_mismatch",
            ErrorKind::Refused => "refused",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::SetFailed => "set_failed",
            ErrorKind::Internal => "internal",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Other => "failure",
        }
    }
}

/// The result type of backup-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in backup-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store refused or failed an operation on one object.
    #[error("store {store}: cannot {operation} {key}: {source}")]
    Store {
        /// The store URL, without credentials.
        store: String,
        /// What was attempted: "read", "write", "list", "delete".
        operation: &'static str,
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A store URL or its options are invalid.
    #[error("invalid store {url}: {reason}")]
    StoreConfig {
        /// The URL, without credentials.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The backup does not exist (no manifest).
    #[error("backup {id} not found in {store}: no manifest at {key}")]
    NotFound {
        /// The backup id asked for.
        id: String,
        /// The store URL.
        store: String,
        /// The manifest key looked for.
        key: String,
    },
    /// A manifest is not valid JSON or misses required fields.
    #[error("manifest {key} is invalid: {reason}")]
    InvalidManifest {
        /// The manifest key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A manifest was written by a newer, incompatible dbseal.
    #[error("manifest {key} has format version {found}, this dbseal reads format version {supported}: upgrade dbseal to read it")]
    UnsupportedManifestVersion {
        /// The manifest key.
        key: String,
        /// The version found.
        found: String,
        /// The major version this build reads.
        supported: u32,
    },
    /// A manifest for this backup id already exists (create-only commit).
    #[error("backup {id} already has a manifest at {key}; refusing to overwrite it")]
    AlreadyExists {
        /// The backup id.
        id: String,
        /// The manifest key.
        key: String,
    },
    /// The artifact does not match what its manifest recorded.
    #[error("backup {id}: {key}: {what}")]
    Verification {
        /// The backup id.
        id: String,
        /// The object key of the artifact.
        key: String,
        /// What differed.
        what: String,
    },
    /// An object is not signed by a key trusted here (or was modified, or moved): it is
    /// refused, never restored, reported or kept.
    #[error("{key} is not trusted: {reason}")]
    Untrusted {
        /// The object's key in the store.
        key: String,
        /// Why (no signature, unknown signer, modified, found in the wrong place...).
        reason: String,
    },
    /// The artifact cannot be decrypted with the given identity or passphrase.
    #[error("backup {id}: {key}: cannot decrypt: {reason}")]
    Decryption {
        /// The backup id.
        id: String,
        /// The object key of the artifact.
        key: String,
        /// Why (wrong identity, corrupted header...).
        reason: String,
    },
    /// A recipient, identity or passphrase is invalid or missing.
    #[error("{0}")]
    Key(String),
    /// Invalid options or arguments.
    #[error("{0}")]
    Config(String),
    /// The native stream could not be parsed.
    #[error("{format} stream is invalid: {reason}")]
    Format {
        /// The format name ("pgdump", "rdb", "graph").
        format: String,
        /// What is wrong, with the byte offset where known.
        reason: String,
    },
    /// A datastore (database, command) failed; raised by Sources and Sinks.
    #[error("{datastore}: {message}")]
    Datastore {
        /// The datastore kind or name ("postgres", "command `pg_dumpall`").
        datastore: String,
        /// What happened, ready to show to a user.
        message: String,
        /// The classification chosen by the datastore crate.
        kind: ErrorKind,
    },
    /// An I/O error with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The operation was interrupted (Ctrl-C, cancelled task).
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// An operation ([`crate::ops`]) refused, failed or found a problem; the message is
    /// complete (it names the datastore, backup or file) and the kind is chosen by the
    /// operation.
    #[error("{message}")]
    Operation {
        /// The classification chosen by the operation.
        kind: ErrorKind,
        /// What happened, ready to show to a user (never a secret).
        message: String,
    },
}

impl Error {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store { source, .. } => match source {
                object_store::Error::NotFound { .. } => ErrorKind::NotFound,
                other if local_io_failure(other) => ErrorKind::Other,
                _ => ErrorKind::Connection,
            },
            Error::StoreConfig { .. } | Error::Key(_) | Error::Config(_) => ErrorKind::Config,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InvalidManifest { .. }
            | Error::Verification { .. }
            | Error::Format { .. }
            | Error::Untrusted { .. } => ErrorKind::Verification,
            Error::UnsupportedManifestVersion { .. } => ErrorKind::VersionMismatch,
            Error::AlreadyExists { .. } => ErrorKind::Refused,
            Error::Decryption { .. } => ErrorKind::Decryption,
            Error::Datastore { kind, .. } => *kind,
            Error::Io { .. } => ErrorKind::Other,
            Error::Interrupted(_) => ErrorKind::Interrupted,
            Error::Operation { kind, .. } => *kind,
        }
    }

    /// A datastore error of the given kind.
    pub fn datastore(
        datastore: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Error::Datastore {
            datastore: datastore.into(),
            message: message.into(),
            kind,
        }
    }

    /// An operation's error of the given kind with a complete message.
    pub fn operation(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Operation {
            kind,
            message: message.into(),
        }
    }

    /// The same error kind with a new message (context added, secrets scrubbed).
    pub fn with_message(&self, message: impl Into<String>) -> Self {
        Error::operation(self.kind(), message)
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps this error so it can travel through an [`io::Error`] between pipeline
    /// stages and be recovered intact by [`Error::from_io`].
    pub fn into_io(self) -> io::Error {
        io::Error::other(StageError(Box::new(self)))
    }

    /// Recovers an [`Error`] carried by [`Error::into_io`], or wraps a plain I/O error.
    pub fn from_io(err: io::Error, context: impl Into<String>) -> Self {
        if err.get_ref().is_some_and(|e| e.is::<StageError>()) {
            let inner = err.into_inner().expect("checked");
            return *inner.downcast::<StageError>().expect("checked").0;
        }
        Error::io(context, err)
    }
}

/// An [`Error`] travelling inside an [`io::Error`].
#[derive(Debug)]
struct StageError(Box<Error>);

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StageError {}

/// Whether a store error is a local file-system failure (a full disk, a missing
/// permission, a read-only file system: exit 1) rather than a store that could not be
/// reached or refused the credentials (exit 6).
fn local_io_failure(e: &object_store::Error) -> bool {
    use std::io::ErrorKind as K;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                K::StorageFull
                    | K::PermissionDenied
                    | K::ReadOnlyFilesystem
                    | K::QuotaExceeded
                    | K::FileTooLarge
                    | K::IsADirectory
                    | K::NotADirectory
                    | K::InvalidFilename
            ) || io.raw_os_error() == Some(28);
        }
        cur = err.source();
    }
    false
}
