//! Sources: where a backup's bytes come from.
//!
//! A [`Source`] writes one native byte stream (the database's own backup format) into
//! the pipeline and, when the stream ends, returns facts about what it read from
//! ([`SourceFacts`]: server version, database name, host without credentials...). The
//! contents summary is computed by the [`FormatReader`](crate::FormatReader) the source
//! names, from the stream itself.
//!
//! Contract: a source returns `Ok` only when it wrote the complete stream. Any failure
//! of the database or its tool (a non-zero exit, a dropped connection) MUST be an `Err`:
//! the pipeline then commits no manifest.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::contents::{FormatReader, RawFormat};
use crate::error::{Error, ErrorKind, Result};
use crate::pipe::PipeWriter;

/// Read size of the built-in sources. `tokio::io::copy` reads 8 KiB at a time, and every
/// read of `tokio::io::stdin()` is a hop to a blocking thread: at 8 KiB that costs more
/// system time than compressing the data.
const COPY_BUFFER: usize = 1024 * 1024;

/// Facts about a source, recorded in the manifest's `source` section. Never holds a
/// secret (see [`crate::secret::redact_url`]).
pub type SourceFacts = BTreeMap<String, serde_json::Value>;

/// The writer a source writes its stream into.
pub type StreamWriter<'a> = &'a mut (dyn AsyncWrite + Send + Unpin);

/// Produces a native backup stream.
#[async_trait]
pub trait Source: Send {
    /// The datastore kind recorded in the manifest ("postgres", "redis", "command").
    fn kind(&self) -> &str;
    /// The reader for the stream's format; its name is the artifact's format.
    fn format_reader(&self) -> Arc<dyn FormatReader>;
    /// Writes the complete stream into `out` (without shutting it down) and returns the
    /// source facts.
    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts>;
    /// [`Source::dump`] into the pipeline's own pipe: what the pipeline calls. The
    /// default writes through [`Source::dump`]; a source that already holds its data in
    /// chunks can send them on without copying.
    async fn dump_to_pipe(&mut self, out: &mut PipeWriter) -> Result<SourceFacts> {
        self.dump(out).await
    }
}

/// A source that runs a command and streams its standard output: anything that dumps
/// to stdout (`pg_dumpall`, `mysqldump`, `tar c`). A non-zero exit fails the backup.
pub struct CommandSource {
    argv: Vec<String>,
    envs: Vec<(String, crate::secret::SecretString)>,
    format: Arc<dyn FormatReader>,
    kind: String,
}

impl std::fmt::Debug for CommandSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSource")
            .field("argv", &self.argv)
            .field(
                "envs",
                &self.envs.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CommandSource {
    /// A source running `argv[0]` with the remaining arguments.
    pub fn new(argv: Vec<String>) -> Result<Self> {
        if argv.is_empty() {
            return Err(Error::Config("command source: no command given".into()));
        }
        Ok(CommandSource {
            argv,
            envs: Vec::new(),
            format: Arc::new(RawFormat),
            kind: "command".into(),
        })
    }

    /// Sets an environment variable for the command (e.g. a password: environment, not
    /// argv, is where secrets go).
    pub fn env(mut self, key: impl Into<String>, value: crate::secret::SecretString) -> Self {
        self.envs.push((key.into(), value));
        self
    }

    /// Declares the format of the command's output (default: `raw`).
    pub fn with_format(mut self, reader: Arc<dyn FormatReader>) -> Self {
        self.format = reader;
        self
    }

    /// Sets the datastore kind recorded in the manifest (default: `command`).
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }
}

/// Copies `input` to `out`, returning the number of bytes.
pub async fn copy_stream(
    input: &mut (dyn AsyncRead + Send + Unpin),
    out: StreamWriter<'_>,
) -> std::io::Result<u64> {
    tokio::io::copy(input, out).await
}

#[async_trait]
impl Source for CommandSource {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        self.format.clone()
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        let program = &self.argv[0];
        let mut cmd = crate::child::command(program);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a terminal's Ctrl-C reaches dbseal only, which
            // stops it in order (a killed client rolls its transaction back).
            .process_group(0);
        crate::secret::without_own_env(&mut cmd);
        for (k, v) in &self.envs {
            cmd.env(k, v.expose());
        }
        let what = format!("command `{program}`");
        let mut child = cmd.spawn().map_err(|e| {
            Error::datastore(&what, ErrorKind::Config, format!("cannot start: {e}"))
        })?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        // Keep the last 8 KiB of stderr for the error message.
        let stderr_task = tokio::spawn(async move {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 8192 {
                            tail.drain(..tail.len() - 8192);
                        }
                    }
                }
            }
            String::from_utf8_lossy(&tail).trim().to_string()
        });
        let copied = tokio::io::copy_buf(
            &mut tokio::io::BufReader::with_capacity(COPY_BUFFER, &mut stdout),
            out,
        )
        .await;
        if let Err(e) = copied {
            let _ = child.kill().await;
            return Err(Error::from_io(e, format!("{what}: streaming its output")));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| Error::io(format!("{what}: waiting for it"), e))?;
        let stderr_tail = stderr_task.await.unwrap_or_default();
        if !status.success() {
            let code = status.code().map_or_else(
                || "was killed by a signal".to_string(),
                |c| format!("exited with status {c}"),
            );
            let detail = if stderr_tail.is_empty() {
                String::new()
            } else {
                format!(": {stderr_tail}")
            };
            return Err(Error::datastore(
                &what,
                ErrorKind::Other,
                format!("{code}{detail}"),
            ));
        }
        let mut facts = SourceFacts::new();
        facts.insert("command".into(), serde_json::json!(self.argv[0]));
        Ok(facts)
    }
}

/// A source reading any async reader to its end (standard input, a file).
pub struct ReaderSource<R> {
    reader: R,
    kind: String,
    format: Arc<dyn FormatReader>,
}

impl<R> ReaderSource<R> {
    /// A source over `reader`, recorded as datastore kind `kind` (e.g. "stdin").
    pub fn new(reader: R, kind: impl Into<String>) -> Self {
        ReaderSource {
            reader,
            kind: kind.into(),
            format: Arc::new(RawFormat),
        }
    }

    /// Declares the stream's format (default: `raw`).
    pub fn with_format(mut self, reader: Arc<dyn FormatReader>) -> Self {
        self.format = reader;
        self
    }
}

#[async_trait]
impl<R: AsyncRead + Send + Unpin> Source for ReaderSource<R> {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn format_reader(&self) -> Arc<dyn FormatReader> {
        self.format.clone()
    }
    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        tokio::io::copy_buf(
            &mut tokio::io::BufReader::with_capacity(COPY_BUFFER, &mut self.reader),
            out,
        )
        .await
        .map_err(|e| Error::from_io(e, format!("reading {}", self.kind)))?;
        Ok(SourceFacts::new())
    }
}

/// A source reading a blocking [`std::io::Read`] (standard input, a file) to its end on
/// a thread of its own, passing what it reads on in 256 KiB chunks without copying them.
/// Cheaper than [`ReaderSource`] over `tokio::io::stdin()`, whose every read is a hop to
/// a blocking thread and a copy.
pub struct BlockingReaderSource {
    reader: Option<Box<dyn std::io::Read + Send>>,
    kind: String,
    format: Arc<dyn FormatReader>,
}

impl std::fmt::Debug for BlockingReaderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingReaderSource")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl BlockingReaderSource {
    /// A source over `reader`, recorded as datastore kind `kind` (e.g. "stdin").
    pub fn new(reader: impl std::io::Read + Send + 'static, kind: impl Into<String>) -> Self {
        BlockingReaderSource {
            reader: Some(Box::new(reader)),
            kind: kind.into(),
            format: Arc::new(RawFormat),
        }
    }

    /// The process's standard input, read without Rust's or tokio's buffering.
    pub fn stdin() -> Result<Self> {
        use std::os::fd::AsFd;
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("opening standard input", e))?;
        Ok(Self::new(std::fs::File::from(fd), "stdin"))
    }

    /// Declares the stream's format (default: `raw`).
    pub fn with_format(mut self, reader: Arc<dyn FormatReader>) -> Self {
        self.format = reader;
        self
    }

    /// Reads the whole stream on a blocking thread, handing each chunk to `sink`;
    /// gives `sink` back (unless the thread panicked).
    async fn read_all<S: ChunkSink>(&mut self, mut sink: S) -> (Result<()>, Option<S>) {
        let Some(mut reader) = self.reader.take() else {
            let err = Error::Config(format!("{} was already read", self.kind));
            return (Err(err), Some(sink));
        };
        let kind = self.kind.clone();
        // If this future is dropped (the backup was cancelled), the thread stops at its
        // next chunk and drops `sink`, so the stages after it see the stream aborted.
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancelled.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let result = (|| loop {
                if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(Error::Interrupted(format!("reading {kind}: cancelled")));
                }
                // Chunks of pipe::CHUNK_SIZE: 1 MiB chunks were no faster and raised the
                // peak RSS by 10 MiB (measured).
                let Some(chunk) = crate::pipe::read_chunk(&mut reader)
                    .map_err(|e| Error::io(format!("reading {kind}"), e))?
                else {
                    return Ok(());
                };
                sink.send_chunk(chunk)
                    .map_err(|e| Error::from_io(e, "passing the stream on"))?;
            })();
            (result, sink)
        })
        .await;
        match joined {
            Ok((result, sink)) => (result, Some(sink)),
            Err(e) => (
                Err(crate::task::join_error(
                    e,
                    &format!("reading {}", self.kind),
                )),
                None,
            ),
        }
    }
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Where [`BlockingReaderSource`]'s thread puts its chunks.
trait ChunkSink: Send + 'static {
    fn send_chunk(&mut self, chunk: bytes::Bytes) -> std::io::Result<()>;
}

impl ChunkSink for PipeWriter {
    fn send_chunk(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        self.blocking_send(chunk)
    }
}

impl ChunkSink for tokio::sync::mpsc::Sender<bytes::Bytes> {
    fn send_chunk(&mut self, chunk: bytes::Bytes) -> std::io::Result<()> {
        self.blocking_send(chunk)
            .map_err(|_| std::io::Error::other("the writer stopped"))
    }
}

#[async_trait]
impl Source for BlockingReaderSource {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn format_reader(&self) -> Arc<dyn FormatReader> {
        self.format.clone()
    }
    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        use tokio::io::AsyncWriteExt;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
        let reading = async {
            let (result, sender) = self.read_all(tx).await;
            drop(sender); // ends `writing`
            result
        };
        let writing = async {
            while let Some(chunk) = rx.recv().await {
                out.write_all(&chunk).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (read, written) = tokio::join!(reading, writing);
        written.map_err(|e| Error::from_io(e, "passing the stream on"))?;
        read?;
        Ok(SourceFacts::new())
    }
    async fn dump_to_pipe(&mut self, out: &mut PipeWriter) -> Result<SourceFacts> {
        let (result, writer) = self.read_all(out.take()).await;
        if let Some(w) = writer {
            *out = w;
        }
        result.map(|()| SourceFacts::new())
    }
}
