//! Transforms: streaming byte-to-byte stages with an inverse.
//!
//! A backup applies its transforms in order (zstd, then age); each one is recorded in the
//! manifest as a [`TransformSpec`], so a restore builds the inverse chain from the
//! manifest alone ([`Transform::from_spec`]) and applies it in reverse order. Every stage
//! reads from one [`PipeReader`] and writes to one [`PipeWriter`], on its own task, so
//! compression and encryption run on different cores.

use std::sync::Arc;

use async_compression::tokio::bufread::ZstdDecoder;
use async_compression::tokio::write::ZstdEncoder;
use async_trait::async_trait;
use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::error::{Error, Result};
use crate::keys::{Decryption, Encryption};
use crate::pipe::{PipeReader, PipeWriter};

/// A transform as recorded in the manifest: its type and parameters. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TransformSpec {
    /// zstd compression (one frame).
    Zstd {
        /// The compression level (1–22; negative levels are fast modes).
        level: i32,
    },
    /// age encryption.
    Age {
        /// The recipients' public keys (empty when a passphrase was used).
        #[serde(default)]
        recipients: Vec<String>,
        /// Whether the file is encrypted to a passphrase (scrypt).
        #[serde(default)]
        passphrase: bool,
    },
}

impl TransformSpec {
    /// The file-name suffix this transform adds (`zst`, `age`).
    pub fn suffix(&self) -> &'static str {
        match self {
            TransformSpec::Zstd { .. } => "zst",
            TransformSpec::Age { .. } => "age",
        }
    }
}

/// Where a stage is working, for error messages.
#[derive(Debug, Clone, Default)]
pub struct StageContext {
    /// The backup id.
    pub backup_id: String,
    /// The artifact's object key.
    pub key: String,
}

/// A streaming stage with an inverse.
#[async_trait]
pub trait Transform: Send + Sync {
    /// The manifest record of this transform.
    fn spec(&self) -> TransformSpec;
    /// Forward direction (backup): reads `input` to its end, writes `output`, and
    /// returns without finishing `output` (the pipeline does).
    async fn apply(
        &self,
        ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()>;
    /// Inverse direction (restore).
    async fn invert(
        &self,
        ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()>;
}

impl dyn Transform {
    /// Builds the transform a manifest recorded. `decryption` is needed for age.
    pub fn from_spec(
        spec: &TransformSpec,
        decryption: Option<Arc<Decryption>>,
    ) -> Result<Arc<dyn Transform>> {
        Ok(match spec {
            TransformSpec::Zstd { level } => Arc::new(Zstd::new(*level)),
            TransformSpec::Age {
                recipients,
                passphrase,
            } => Arc::new(Age {
                encryption: None,
                decryption,
                recipients: recipients.clone(),
                passphrase: *passphrase,
            }),
        })
    }
}

/// zstd compression.
#[derive(Debug, Clone)]
pub struct Zstd {
    level: i32,
    workers: u32,
}

impl Zstd {
    /// zstd at `level`, compressing on the stage's own task (one core).
    ///
    /// Measured on 2 cores: zstd's worker threads (`with_workers`) add about 60 MiB of
    /// buffers and did not make backups faster, because hashing, encryption and I/O
    /// already keep the second core busy. The pipeline's stages give the parallelism.
    pub fn new(level: i32) -> Self {
        Zstd { level, workers: 0 }
    }

    /// Sets the number of zstd worker threads (0: compress on the stage's own task).
    pub fn with_workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }

    /// Checks the level is one zstd accepts.
    pub fn validate(level: i32) -> Result<()> {
        if !(-7..=22).contains(&level) || level == 0 {
            return Err(Error::Config(format!(
                "zstd level {level} is out of range (1..=22, or -7..=-1 for fast modes)"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Transform for Zstd {
    fn spec(&self) -> TransformSpec {
        TransformSpec::Zstd { level: self.level }
    }

    async fn apply(
        &self,
        _ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()> {
        use async_compression::zstd::CParameter;
        let mut params = Vec::new();
        if self.workers > 0 {
            params.push(CParameter::nb_workers(self.workers));
        }
        let mut enc = ZstdEncoder::with_quality_and_params(
            output,
            async_compression::Level::Precise(self.level),
            &params,
        );
        while let Some(chunk) = input
            .next_chunk()
            .await
            .map_err(|e| Error::from_io(e, "zstd: reading input"))?
        {
            enc.write_all(&chunk)
                .await
                .map_err(|e| Error::from_io(e, "zstd: compressing"))?;
        }
        // Finishes the zstd frame and shuts down the pipe writer.
        enc.shutdown()
            .await
            .map_err(|e| Error::from_io(e, "zstd: finishing the frame"))?;
        Ok(())
    }

    async fn invert(
        &self,
        ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()> {
        let mut dec = ZstdDecoder::new(BufReader::with_capacity(128 * 1024, input));
        dec.multiple_members(false);
        match tokio::io::copy(&mut dec, output).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = Error::from_io(e, "zstd");
                Err(match err {
                    Error::Io { source, .. } => Error::Verification {
                        id: ctx.backup_id.clone(),
                        key: ctx.key.clone(),
                        what: format!("the zstd stream inside is invalid: {source}"),
                    },
                    other => other,
                })
            }
        }
    }
}

/// age encryption.
pub struct Age {
    encryption: Option<Encryption>,
    decryption: Option<Arc<Decryption>>,
    recipients: Vec<String>,
    passphrase: bool,
}

impl std::fmt::Debug for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Age")
            .field("recipients", &self.recipients)
            .field("passphrase", &self.passphrase)
            .finish()
    }
}

impl Age {
    /// Encryption to `encryption` (recipients or a passphrase).
    pub fn encrypt(encryption: Encryption) -> Self {
        let passphrase = matches!(encryption, Encryption::Passphrase(_));
        Age {
            recipients: encryption.public_keys(),
            encryption: Some(encryption),
            decryption: None,
            passphrase,
        }
    }
}

#[async_trait]
impl Transform for Age {
    fn spec(&self) -> TransformSpec {
        TransformSpec::Age {
            recipients: self.recipients.clone(),
            passphrase: self.passphrase,
        }
    }

    async fn apply(
        &self,
        _ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()> {
        let encryption = self
            .encryption
            .as_ref()
            .ok_or_else(|| Error::Key("age: no recipients to encrypt to".into()))?;
        let encryptor = encryption.encryptor()?;
        let mut w = encryptor
            .wrap_async_output(output.compat_write())
            .await
            .map_err(|e| Error::from_io(e, "age: writing the header"))?;
        while let Some(chunk) = input
            .next_chunk()
            .await
            .map_err(|e| Error::from_io(e, "age: reading input"))?
        {
            w.write_all(&chunk)
                .await
                .map_err(|e| Error::from_io(e, "age: encrypting"))?;
        }
        // MUST close: writes the final (authenticated, flagged) chunk.
        w.close()
            .await
            .map_err(|e| Error::from_io(e, "age: finishing"))?;
        Ok(())
    }

    async fn invert(
        &self,
        ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()> {
        let decryption = self.decryption.as_ref().ok_or_else(|| {
            Error::Key(format!(
                "backup {} is encrypted: an identity (--identity / DBSEAL_IDENTITY) or passphrase is needed",
                ctx.backup_id
            ))
        })?;
        let fail = |reason: String| Error::Decryption {
            id: ctx.backup_id.clone(),
            key: ctx.key.clone(),
            reason,
        };
        let decryptor = match age::Decryptor::new_async(input.compat()).await {
            Ok(d) => d,
            Err(age::DecryptError::Io(e)) => {
                return Err(match Error::from_io(e, "age") {
                    Error::Io { source, .. } => Error::Verification {
                        id: ctx.backup_id.clone(),
                        key: ctx.key.clone(),
                        what: format!("not a readable age file: {source}"),
                    },
                    other => other,
                })
            }
            Err(e) => {
                return Err(Error::Verification {
                    id: ctx.backup_id.clone(),
                    key: ctx.key.clone(),
                    what: format!("not a valid age file: {e}"),
                })
            }
        };
        if decryptor.is_scrypt() != self.passphrase {
            return Err(fail(if self.passphrase {
                "the manifest says this backup is passphrase-encrypted but the artifact is not"
                    .into()
            } else {
                "the artifact is passphrase-encrypted but the manifest records recipients".into()
            }));
        }
        let reader = decryption.with_identities(|ids| decryptor.decrypt_async(ids));
        let mut reader = reader.map_err(|e| match e {
            age::DecryptError::NoMatchingKeys
                if !self.passphrase && holds_identity_of(decryption, &self.recipients) =>
            {
                // The right key, yet it does not unwrap the file key: the header changed.
                Error::Verification {
                    id: ctx.backup_id.clone(),
                    key: ctx.key.clone(),
                    what: "the age header is corrupted or tampered: the given identity \
                           belongs to a recipient the manifest records but does not unwrap \
                           the artifact's file key"
                        .into(),
                }
            }
            age::DecryptError::NoMatchingKeys => fail(if self.passphrase {
                "wrong passphrase".to_string()
            } else {
                format!(
                    "none of the given identities matches the artifact's recipients ({})",
                    self.recipients.join(", ")
                )
            }),
            // A scrypt stanza that does not open: a wrong passphrase, or a damaged header
            // (indistinguishable without the passphrase).
            age::DecryptError::DecryptionFailed if self.passphrase => fail(
                "wrong passphrase (or a damaged age header: level-1 verification, which \
                 needs no key, tells them apart)"
                    .into(),
            ),
            age::DecryptError::DecryptionFailed
            | age::DecryptError::InvalidHeader
            | age::DecryptError::InvalidMac => Error::Verification {
                id: ctx.backup_id.clone(),
                key: ctx.key.clone(),
                what: format!("the age header is corrupted or tampered: {e}"),
            },
            other => fail(other.to_string()),
        })?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    return Err(match Error::from_io(e, "age") {
                        Error::Io { source, .. } => Error::Verification {
                            id: ctx.backup_id.clone(),
                            key: ctx.key.clone(),
                            what: format!(
                                "the encrypted stream failed authentication (corrupted, truncated or tampered): {source}"
                            ),
                        },
                        other => other,
                    })
                }
            };
            if n == 0 {
                break;
            }
            output
                .write_all(&buf[..n])
                .await
                .map_err(|e| Error::from_io(e, "age: writing plaintext"))?;
        }
        Ok(())
    }
}

/// Whether one of the identities in `decryption` belongs to one of `recipients`: encrypts
/// a probe to the recipients and tries to open it. Tells a wrong key from a damaged
/// header when the artifact's file key does not unwrap.
fn holds_identity_of(decryption: &Decryption, recipients: &[String]) -> bool {
    let parsed: Vec<crate::keys::Recipient> =
        recipients.iter().filter_map(|r| r.parse().ok()).collect();
    if parsed.is_empty() {
        return false;
    }
    let Ok(encryptor) = age::Encryptor::with_recipients(parsed.iter().map(|r| r.as_age())) else {
        return false;
    };
    let mut probe = Vec::new();
    let sealed = encryptor.wrap_output(&mut probe).and_then(|mut w| {
        std::io::Write::write_all(&mut w, b"probe")?;
        w.finish()
    });
    if sealed.is_err() {
        return false;
    }
    let Ok(decryptor) = age::Decryptor::new(&probe[..]) else {
        return false;
    };
    decryption
        .with_identities(|ids| decryptor.decrypt(ids))
        .is_ok_and(|mut r| std::io::Read::read_to_end(&mut r, &mut Vec::new()).is_ok())
}
