//! Sinks: where a restore's bytes go.
//!
//! A [`Sink`] consumes the plaintext native stream of a backup (after decryption and
//! decompression) and writes it into a database or a file.
//!
//! Contract: the restore pipeline delivers a clean end of stream only after the whole
//! artifact was authenticated and its digests matched the manifest; it holds back the
//! last chunk until then. Any read error means the artifact is corrupt, truncated or
//! tampered: the sink MUST then leave its target as it was (roll back its transaction,
//! drop what it created) and return the error. A sink commits only after a clean end of
//! stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// The reader a sink reads the plaintext stream from.
pub type StreamReader<'a> = &'a mut (dyn AsyncRead + Send + Unpin);

/// What a sink reports when it is done.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkReport {
    /// Bytes consumed.
    pub bytes: u64,
    /// Free-form facts for the user ("restored 12 tables into app").
    pub summary: Vec<String>,
}

/// Consumes a native backup stream.
#[async_trait]
pub trait Sink: Send {
    /// Restores from `input` (the plaintext stream of the backup `manifest` describes).
    async fn restore(&mut self, manifest: &Manifest, input: StreamReader<'_>)
        -> Result<SinkReport>;
}

/// A sink that writes the plaintext stream to any writer (standard output, a file).
pub struct WriterSink<W> {
    writer: W,
    target: Option<String>,
}

impl<W> WriterSink<W> {
    /// A sink into `writer`.
    pub fn new(writer: W) -> Self {
        WriterSink {
            writer,
            target: None,
        }
    }

    /// Names what `writer` writes to (a file's path) in its errors.
    pub fn to(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    fn doing(&self, what: &str) -> String {
        match &self.target {
            Some(t) => format!("{what} the restored stream to {t}"),
            None => format!("{what} the restored stream"),
        }
    }
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin> Sink for WriterSink<W> {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        // Large writes: every write to `tokio::io::stdout()` is a hop to a blocking thread.
        let mut input = tokio::io::BufReader::with_capacity(crate::pipe::CHUNK_SIZE, input);
        let bytes = tokio::io::copy_buf(&mut input, &mut self.writer)
            .await
            .map_err(|e| Error::from_io(e, self.doing("writing")))?;
        self.writer
            .flush()
            .await
            .map_err(|e| Error::io(self.doing("flushing"), e))?;
        Ok(SinkReport {
            bytes,
            summary: vec![format!("wrote {bytes} bytes")],
        })
    }
}

/// A [`Sink`] whose input fails with [`Error::Interrupted`] once `token` is cancelled, so
/// an interrupted restore goes through the wrapped sink's own failure path (which leaves
/// the target as it was) instead of being dropped midway. Every driver wraps its sink in
/// one with [`crate::RestoreContext::cancel`].
pub struct CancellableSink<'a> {
    inner: &'a mut (dyn Sink + 'a),
    token: CancellationToken,
}

impl<'a> CancellableSink<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut (dyn Sink + 'a), token: CancellationToken) -> Self {
        CancellableSink { inner, token }
    }
}

#[async_trait]
impl Sink for CancellableSink<'_> {
    async fn restore(
        &mut self,
        manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        if self.token.is_cancelled() {
            return Err(Error::Interrupted(
                "the restore was cancelled before it started".into(),
            ));
        }
        let mut reader = CancellableReader {
            inner: input,
            cancelled: Box::pin(self.token.clone().cancelled_owned()),
        };
        self.inner.restore(manifest, &mut reader).await
    }
}

struct CancellableReader<'a> {
    inner: StreamReader<'a>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl AsyncRead for CancellableReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Error::Interrupted(
                "the restore was interrupted; undoing it".into(),
            )
            .into_io()));
        }
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}
