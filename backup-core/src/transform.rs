//! Transforms: streaming byte-to-byte stages with an inverse.
//!
//! A backup applies its transforms in order (zstd, then age); each one is recorded in the
//! manifest as a [`TransformSpec`], so a restore builds the inverse chain from the
//! manifest alone ([`Transform::from_spec`]) and applies it in reverse order. Every stage
//! reads from one [`PipeReader`] and writes to one [`PipeWriter`], on its own task, so
//! compression and encryption run on different cores.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::AsyncWriteExt as _;
use serde::{Deserialize, Serialize};
use tokio_util::compat::TokioAsyncWriteCompatExt;

use crate::error::{Error, Result};
use crate::keys::{Decryption, Encryption};
use crate::pipe::{PipeReader, PipeWriter, CHUNK_SIZE};

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

impl StageContext {
    /// The verification error for this stage's artifact: `what` differed.
    pub fn verification(&self, what: impl Into<String>) -> Error {
        Error::Verification {
            id: self.backup_id.clone(),
            key: self.key.clone(),
            what: what.into(),
        }
    }
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

/// Input per zstd worker job. zstd's own default at level 3 is 8 MiB per job, which
/// cost about 60 MiB of RSS with two workers (measured); 1 MiB jobs cost about 3 MiB and
/// compressed `bench/core`'s dumps as well as single-threaded zstd.
const ZSTD_JOB_SIZE: u32 = 1024 * 1024;

/// zstd compression.
#[derive(Debug, Clone)]
pub struct Zstd {
    level: i32,
    workers: u32,
}

impl Zstd {
    /// zstd at `level`, compressing on the stage's own thread (one core).
    pub fn new(level: i32) -> Self {
        Zstd { level, workers: 0 }
    }

    /// Sets the number of zstd worker threads (0: compress on the stage's own thread).
    /// Workers compress 1 MiB jobs in parallel; the output is still one zstd frame.
    pub fn with_workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }

    /// The default number of workers: one per core, at most two (0 on one core).
    ///
    /// Measured on 2 cores (`bench/core`): on a dump that compresses 3-4:1, zstd is the
    /// slowest stage and two workers make the backup faster than single-threaded `zstd`;
    /// on a dump that compresses 100:1 the plaintext SHA-256 is the slowest stage and
    /// workers neither help nor hurt. More workers cost about 3 MiB each; two keep the
    /// peak RSS under 64 MiB. `--zstd-workers` sets another number.
    pub fn default_workers() -> u32 {
        match std::thread::available_parallelism().map(|n| n.get()) {
            Ok(n) if n > 1 => n.min(2) as u32,
            _ => 0,
        }
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
        ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()> {
        // Compression is CPU-bound: it runs on a thread of its own, so the OS keeps it
        // and the plaintext digest (the other CPU-bound stage) on different cores. On
        // the runtime's workers the two tasks were often serialised on one of them.
        let (level, workers) = (self.level, self.workers);
        on_thread(ctx, input, output, "the zstd stage", move |_, inp, out| {
            compress_blocking(level, workers, inp, out)
        })
        .await
    }

    async fn invert(
        &self,
        ctx: &StageContext,
        input: &mut PipeReader,
        output: &mut PipeWriter,
    ) -> Result<()> {
        // Decompression is CPU-bound: a thread of its own, as compression has, so the
        // restore keeps both cores busy.
        on_thread(ctx, input, output, "the zstd stage", decompress_blocking).await
    }
}

/// Runs `f` over a stage's pipe ends on a blocking thread (`spawn_blocking`) and puts
/// them back: CPU-bound stages run there, so the OS spreads them over the cores instead
/// of the runtime's workers taking turns.
async fn on_thread(
    ctx: &StageContext,
    input: &mut PipeReader,
    output: &mut PipeWriter,
    what: &'static str,
    f: impl FnOnce(&StageContext, &mut PipeReader, &mut PipeWriter) -> Result<()> + Send + 'static,
) -> Result<()> {
    let (mut inp, mut out, ctx) = (input.take(), output.take(), ctx.clone());
    let joined = tokio::task::spawn_blocking(move || {
        let result = f(&ctx, &mut inp, &mut out);
        (result, inp, out)
    })
    .await;
    match joined {
        Ok((result, inp, out)) => {
            *input = inp;
            *output = out;
            result
        }
        Err(e) => Err(crate::task::join_error(e, what)),
    }
}

/// Decompresses exactly one zstd frame from `input` into `output` on a blocking thread,
/// in chunks of up to [`CHUNK_SIZE`] bytes. A stream that ends inside the frame, or holds
/// bytes after it, is a verification error. Does not finish `output`.
fn decompress_blocking(
    ctx: &StageContext,
    input: &mut PipeReader,
    output: &mut PipeWriter,
) -> Result<()> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let invalid =
        |what: String| ctx.verification(format!("the zstd stream inside is invalid: {what}"));
    let mut dec = Decoder::new().map_err(|e| Error::io("zstd: starting", e))?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_SIZE);
    let mut ship = |buf: &mut Vec<u8>, force: bool| -> Result<()> {
        if buf.len() == buf.capacity() || (force && !buf.is_empty()) {
            let full = std::mem::replace(buf, Vec::with_capacity(CHUNK_SIZE));
            output
                .blocking_send(Bytes::from(full))
                .map_err(|e| Error::from_io(e, "zstd: passing the stream on"))?;
        }
        Ok(())
    };
    let mut frame_done = false;
    while let Some(chunk) = input
        .blocking_next_chunk()
        .map_err(|e| Error::from_io(e, "zstd: reading input"))?
    {
        let mut inb = InBuffer::around(&chunk);
        loop {
            if frame_done {
                if inb.pos() < chunk.len() {
                    return Err(invalid("bytes after the end of the frame".into()));
                }
                break;
            }
            let pos = buf.len();
            let mut outb = OutBuffer::around_pos(&mut buf, pos);
            let hint = dec
                .run(&mut inb, &mut outb)
                .map_err(|e| invalid(e.to_string()))?;
            let filled = outb.pos() == outb.capacity();
            if hint == 0 {
                frame_done = true;
            }
            ship(&mut buf, false)?;
            // More input to feed, or output the decoder still holds (the buffer filled).
            if inb.pos() >= chunk.len() && !filled {
                break;
            }
        }
    }
    if !frame_done {
        return Err(invalid(
            "the stream ends before its frame does (truncated)".into(),
        ));
    }
    ship(&mut buf, true)
}

/// Compresses `input` into `output` as one zstd frame, on a blocking thread: reads
/// whole chunks and writes compressed chunks of up to [`CHUNK_SIZE`] bytes, without
/// copying the input. Does not finish `output` (the pipeline does).
fn compress_blocking(
    level: i32,
    workers: u32,
    input: &mut PipeReader,
    output: &mut PipeWriter,
) -> Result<()> {
    use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};
    let zstd_err = |what: &str, e: std::io::Error| Error::from_io(e, format!("zstd: {what}"));
    let mut enc = Encoder::new(level).map_err(|e| zstd_err("starting", e))?;
    if workers > 0 {
        use zstd::zstd_safe::CParameter;
        enc.set_parameter(CParameter::NbWorkers(workers))
            .map_err(|e| zstd_err("setting worker threads", e))?;
        enc.set_parameter(CParameter::JobSize(ZSTD_JOB_SIZE))
            .map_err(|e| zstd_err("setting the job size", e))?;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_SIZE);
    // Sends `buf` downstream once full (or when `force`d and not empty).
    let mut ship = |buf: &mut Vec<u8>, force: bool| -> Result<()> {
        if buf.len() == buf.capacity() || (force && !buf.is_empty()) {
            let full = std::mem::replace(buf, Vec::with_capacity(CHUNK_SIZE));
            output
                .blocking_send(Bytes::from(full))
                .map_err(|e| zstd_err("passing the stream on", e))?;
        }
        Ok(())
    };
    while let Some(chunk) = input
        .blocking_next_chunk()
        .map_err(|e| zstd_err("reading input", e))?
    {
        let mut inb = InBuffer::around(&chunk);
        while inb.pos() < chunk.len() {
            let pos = buf.len();
            let mut outb = OutBuffer::around_pos(&mut buf, pos);
            enc.run(&mut inb, &mut outb)
                .map_err(|e| zstd_err("compressing", e))?;
            ship(&mut buf, false)?;
        }
    }
    loop {
        let pos = buf.len();
        let mut outb = OutBuffer::around_pos(&mut buf, pos);
        let remaining = enc
            .finish(&mut outb, true)
            .map_err(|e| zstd_err("finishing the frame", e))?;
        ship(&mut buf, remaining == 0)?;
        if remaining == 0 {
            return Ok(());
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
        let decryption = self.decryption.clone().ok_or_else(|| {
            Error::Key(format!(
                "backup {} is encrypted: an identity (--identity / DBSEAL_IDENTITY) or passphrase is needed",
                ctx.backup_id
            ))
        })?;
        // Decryption (and a passphrase's scrypt) is CPU-bound: a thread of its own, as
        // zstd has, reading and passing on whole chunks.
        let (recipients, passphrase) = (self.recipients.clone(), self.passphrase);
        on_thread(ctx, input, output, "the age stage", move |ctx, inp, out| {
            decrypt_blocking(ctx, &decryption, &recipients, passphrase, inp, out)
        })
        .await
    }
}

/// Decrypts the age file in `input` into `output` on a blocking thread, in chunks of
/// [`CHUNK_SIZE`] bytes. Does not finish `output`.
fn decrypt_blocking(
    ctx: &StageContext,
    decryption: &Decryption,
    recipients: &[String],
    passphrase: bool,
    input: &mut PipeReader,
    output: &mut PipeWriter,
) -> Result<()> {
    let fail = |reason: String| Error::Decryption {
        id: ctx.backup_id.clone(),
        key: ctx.key.clone(),
        reason,
    };
    let decryptor = match age::Decryptor::new_buffered(input.blocking_reader()) {
        Ok(d) => d,
        Err(age::DecryptError::Io(e)) => {
            return Err(match Error::from_io(e, "age") {
                Error::Io { source, .. } => {
                    ctx.verification(format!("not a readable age file: {source}"))
                }
                other => other,
            })
        }
        Err(e) => return Err(ctx.verification(format!("not a valid age file: {e}"))),
    };
    if decryptor.is_scrypt() != passphrase {
        return Err(fail(if passphrase {
            "the manifest says this backup is passphrase-encrypted but the artifact is not".into()
        } else {
            "the artifact is passphrase-encrypted but the manifest records recipients".into()
        }));
    }
    let reader = decryption.with_identities(|ids| decryptor.decrypt(ids));
    let mut reader = reader.map_err(|e| match e {
        age::DecryptError::NoMatchingKeys
            if !passphrase && holds_identity_of(decryption, recipients) =>
        {
            // The right key, yet it does not unwrap the file key: the header changed.
            ctx.verification(
                "the age header is corrupted or tampered: the given identity \
                       belongs to a recipient the manifest records but does not unwrap \
                       the artifact's file key",
            )
        }
        age::DecryptError::NoMatchingKeys => fail(if passphrase {
            "wrong passphrase".to_string()
        } else {
            format!(
                "none of the given identities matches the artifact's recipients ({})",
                recipients.join(", ")
            )
        }),
        // A scrypt stanza that does not open: a wrong passphrase, or a damaged header
        // (indistinguishable without the passphrase).
        age::DecryptError::DecryptionFailed if passphrase => fail(
            "wrong passphrase (or a damaged age header: level-1 verification, which \
             needs no key, tells them apart)"
                .into(),
        ),
        age::DecryptError::DecryptionFailed
        | age::DecryptError::InvalidHeader
        | age::DecryptError::InvalidMac => {
            ctx.verification(format!("the age header is corrupted or tampered: {e}"))
        }
        other => fail(other.to_string()),
    })?;
    loop {
        let chunk = match crate::pipe::read_chunk(&mut reader) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                return Err(match Error::from_io(e, "age") {
                    Error::Io { source, .. } => ctx.verification(format!(
                            "the encrypted stream failed authentication (corrupted, truncated or tampered): {source}"
                        )),
                    other => other,
                })
            }
        };
        output
            .blocking_send(chunk)
            .map_err(|e| Error::from_io(e, "age: passing the plaintext on"))?;
    }
    Ok(())
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
