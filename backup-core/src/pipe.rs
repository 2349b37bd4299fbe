//! Bounded in-memory pipes that connect pipeline stages.
//!
//! A [`pipe`] carries chunks of bytes from one stage to the next through a bounded
//! channel, so a slow stage holds back the fast ones and memory stays bounded by
//! `capacity × chunk size`. Unlike an OS pipe, a pipe carries failure: the writer MUST
//! be finished with [`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown) (or
//! [`PipeWriter::finish`]); a writer dropped without finishing, or failed with
//! [`PipeWriter::fail`], makes the reader see an error instead of a clean end of stream.
//! A truncated stream therefore can never be mistaken for a complete one.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Size of the chunks a [`PipeWriter`] sends downstream.
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Number of chunks a pipe holds before the writer waits.
pub const PIPE_CAPACITY: usize = 4;

/// The message that tells a reader its writer went away without finishing.
pub const UPSTREAM_ABORTED: &str = "upstream pipeline stage stopped before the end of the stream";

enum Message {
    Data(Bytes),
    Error(io::Error),
    End,
}

/// What happened at the ends of a pipe; lets the pipeline tell a stage that failed on
/// its own from one that failed because its neighbour did.
#[derive(Debug, Default)]
pub struct PipeState {
    /// The writer found the reader gone.
    broken: AtomicBool,
    /// The reader found the writer failed or gone without finishing.
    aborted: AtomicBool,
}

impl PipeState {
    /// Whether the writer found the reader gone (downstream stopped first).
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }
    /// Whether the reader saw the writer fail (upstream stopped first).
    pub fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }
}

/// Creates a bounded pipe holding at most `capacity` chunks.
pub fn pipe(capacity: usize) -> (PipeWriter, PipeReader) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let state = Arc::new(PipeState::default());
    (
        PipeWriter {
            tx: PollSender::new(tx),
            buf: BytesMut::new(),
            finished: false,
            state: state.clone(),
        },
        PipeReader {
            rx,
            current: Bytes::new(),
            state: ReaderState::Open,
            shared: state,
        },
    )
}

/// The writing end of a [`pipe`]. Implements [`AsyncWrite`].
pub struct PipeWriter {
    tx: PollSender<Message>,
    buf: BytesMut,
    finished: bool,
    state: Arc<PipeState>,
}

impl std::fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWriter")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "downstream pipeline stage stopped",
    )
}

impl PipeWriter {
    fn closed(&self) -> io::Error {
        self.state.broken.store(true, Ordering::Relaxed);
        closed_error()
    }

    /// The shared state of this pipe.
    pub fn state(&self) -> Arc<PipeState> {
        self.state.clone()
    }

    /// Sends one chunk downstream without copying it (flushes buffered bytes first).
    pub async fn send(&mut self, chunk: Bytes) -> io::Result<()> {
        for data in self.outgoing(chunk) {
            self.send_message(Message::Data(data)).await?;
        }
        Ok(())
    }

    /// [`PipeWriter::send`] for a blocking thread (`spawn_blocking`): waits for room
    /// without a runtime. Never call it on an async task.
    pub fn blocking_send(&mut self, chunk: Bytes) -> io::Result<()> {
        for data in self.outgoing(chunk) {
            let sender = self.sender()?;
            if sender.blocking_send(Message::Data(data)).is_err() {
                return Err(self.closed());
            }
        }
        Ok(())
    }

    /// What [`PipeWriter::send`] sends: the buffered bytes, then `chunk` (empty ones
    /// left out).
    fn outgoing(&mut self, chunk: Bytes) -> impl Iterator<Item = Bytes> {
        let pending = self.buf.split().freeze();
        [pending, chunk].into_iter().filter(|b| !b.is_empty())
    }

    /// The channel's sender, or the broken-pipe error once the reader is gone.
    fn sender(&mut self) -> io::Result<mpsc::Sender<Message>> {
        match self.tx.get_ref().cloned() {
            Some(sender) => Ok(sender),
            None => Err(self.closed()),
        }
    }

    /// Moves this writer out, leaving one whose reader is gone (for stages that hand
    /// their ends to a blocking thread and put them back afterwards).
    pub fn take(&mut self) -> PipeWriter {
        let (dummy, _) = pipe(1);
        std::mem::replace(self, dummy)
    }

    async fn send_message(&mut self, msg: Message) -> io::Result<()> {
        let sender = self.sender()?;
        match sender.send(msg).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.closed()),
        }
    }

    /// Flushes and marks the stream complete: the reader sees a clean end of stream.
    pub async fn finish(mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.shutdown().await
    }

    /// Marks the stream failed: the reader sees `err` instead of the end of stream.
    pub async fn fail(mut self, err: io::Error) {
        self.finished = true;
        let _ = self.send_message(Message::Error(err)).await;
    }

    fn poll_send_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match self.tx.poll_reserve(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.closed())),
            Poll::Ready(Ok(())) => {
                let chunk = self.buf.split().freeze();
                if self.tx.send_item(Message::Data(chunk)).is_err() {
                    return Poll::Ready(Err(self.closed()));
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.finished {
            return Poll::Ready(Err(io::Error::other("write after shutdown")));
        }
        if self.buf.len() >= CHUNK_SIZE {
            match self.poll_send_buf(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(CHUNK_SIZE);
        }
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_buf(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.finished {
            return Poll::Ready(Ok(()));
        }
        match self.poll_send_buf(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        match self.tx.poll_reserve(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.closed())),
            Poll::Ready(Ok(())) => {
                if self.tx.send_item(Message::End).is_err() {
                    return Poll::Ready(Err(self.closed()));
                }
                self.finished = true;
                self.tx.close();
                Poll::Ready(Ok(()))
            }
        }
    }
}

enum ReaderState {
    Open,
    Ended,
    Failed,
}

/// The reading end of a [`pipe`]. Implements [`AsyncRead`], or yields whole chunks
/// with [`PipeReader::next_chunk`].
pub struct PipeReader {
    rx: mpsc::Receiver<Message>,
    current: Bytes,
    state: ReaderState,
    shared: Arc<PipeState>,
}

impl std::fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeReader").finish_non_exhaustive()
    }
}

impl PipeReader {
    /// The shared state of this pipe.
    pub fn state(&self) -> Arc<PipeState> {
        self.shared.clone()
    }

    fn upstream_failed(&mut self) -> io::Error {
        self.state = ReaderState::Failed;
        self.shared.aborted.store(true, Ordering::Relaxed);
        io::Error::new(io::ErrorKind::UnexpectedEof, UPSTREAM_ABORTED)
    }

    /// The answer that needs no message: a chunk left from a partial read, or the
    /// stream's end or failure already seen. `None`: receive the next message.
    fn without_receiving(&mut self) -> Option<io::Result<Option<Bytes>>> {
        if !self.current.is_empty() {
            return Some(Ok(Some(std::mem::take(&mut self.current))));
        }
        match self.state {
            ReaderState::Ended => Some(Ok(None)),
            ReaderState::Failed => Some(Err(self.upstream_failed())),
            ReaderState::Open => None,
        }
    }

    /// What a received message (`None`: the writer is gone) means for the reader.
    fn received(&mut self, msg: Option<Message>) -> io::Result<Option<Bytes>> {
        match msg {
            Some(Message::Data(b)) => Ok(Some(b)),
            Some(Message::End) => {
                self.state = ReaderState::Ended;
                Ok(None)
            }
            Some(Message::Error(e)) => {
                let _ = self.upstream_failed();
                Err(e)
            }
            None => Err(self.upstream_failed()),
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if let Some(ready) = self.without_receiving() {
            return Poll::Ready(ready);
        }
        self.rx.poll_recv(cx).map(|msg| self.received(msg))
    }

    /// The next chunk, `None` at a clean end of stream, an error if the writer failed.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// [`PipeReader::next_chunk`] for a blocking thread (`spawn_blocking`). Never call
    /// it on an async task.
    pub fn blocking_next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if let Some(ready) = self.without_receiving() {
            return ready;
        }
        let msg = self.rx.blocking_recv();
        self.received(msg)
    }

    /// Moves this reader out, leaving one whose writer is gone (see
    /// [`PipeWriter::take`]).
    pub fn take(&mut self) -> PipeReader {
        let (_, dummy) = pipe(1);
        std::mem::replace(self, dummy)
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut chunk = match self.poll_chunk(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(None)) => return Poll::Ready(Ok(())),
            Poll::Ready(Ok(Some(c))) => c,
        };
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk.split_to(n));
        self.current = chunk;
        Poll::Ready(Ok(()))
    }
}

impl PipeReader {
    /// A blocking [`std::io::Read`] + [`std::io::BufRead`] view of this reader, for a
    /// stage that runs on a blocking thread (`spawn_blocking`). A failed writer reads as
    /// an error, a clean end as end of file. Never use it on an async task.
    pub fn blocking_reader(&mut self) -> BlockingPipeRead<'_> {
        BlockingPipeRead(self)
    }
}

/// See [`PipeReader::blocking_reader`].
#[derive(Debug)]
pub struct BlockingPipeRead<'a>(&'a mut PipeReader);

impl std::io::BufRead for BlockingPipeRead<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.0.current.is_empty() {
            if let Some(chunk) = self.0.blocking_next_chunk()? {
                self.0.current = chunk;
            }
        }
        Ok(&self.0.current)
    }

    fn consume(&mut self, amt: usize) {
        let _ = self.0.current.split_to(amt.min(self.0.current.len()));
    }
}

impl std::io::Read for BlockingPipeRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::BufRead;
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Reads the next chunk of up to [`CHUNK_SIZE`] bytes from a blocking reader (fewer only
/// at its end); `None` at the end. For stages on blocking threads that pass whole chunks
/// on without copying them again.
pub fn read_chunk(reader: &mut impl std::io::Read) -> io::Result<Option<Bytes>> {
    use std::io::Read;
    let mut chunk = Vec::with_capacity(CHUNK_SIZE);
    reader.take(CHUNK_SIZE as u64).read_to_end(&mut chunk)?;
    Ok((!chunk.is_empty()).then(|| Bytes::from(chunk)))
}

/// A blocking [`std::io::Read`] over a channel of chunks, for format readers that run
/// on a blocking thread. Fed by [`ChunkFeed`].
pub struct BlockingChunkReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

/// The feeding end of a [`BlockingChunkReader`].
pub type ChunkFeed = mpsc::Sender<Bytes>;

/// Creates a blocking chunk reader and the sender that feeds it. Dropping the sender
/// ends the stream.
pub fn blocking_chunks(capacity: usize) -> (ChunkFeed, BlockingChunkReader) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        tx,
        BlockingChunkReader {
            rx,
            current: Bytes::new(),
        },
    )
}

impl std::io::Read for BlockingChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn blocking_reader_reads_across_chunks_and_sees_a_failed_writer() {
        let (mut w, mut r) = pipe(2);
        let reader = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut out = Vec::new();
            let mut small = [0u8; 3];
            let n = r.blocking_reader().read(&mut small).unwrap();
            out.extend_from_slice(&small[..n]);
            let err = r.blocking_reader().read_to_end(&mut out).unwrap_err();
            (out, err.to_string())
        });
        w.send(Bytes::from_static(b"hello ")).await.unwrap();
        w.send(Bytes::from_static(b"world")).await.unwrap();
        w.fail(io::Error::other("the source broke")).await;
        let (out, err) = reader.await.unwrap();
        assert_eq!(out, b"hello world");
        assert!(err.contains("the source broke"), "{err}");

        let (w, mut r) = pipe(2);
        let reader = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut out = Vec::new();
            r.blocking_reader().read_to_end(&mut out).map(|_| out)
        });
        w.finish().await.unwrap();
        assert!(reader.await.unwrap().unwrap().is_empty());
    }

    #[tokio::test]
    async fn finished_writer_gives_clean_eof() {
        let (mut w, mut r) = pipe(2);
        let t = tokio::spawn(async move {
            w.write_all(&vec![7u8; CHUNK_SIZE * 3 + 5]).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        t.await.unwrap();
        assert_eq!(out.len(), CHUNK_SIZE * 3 + 5);
        assert!(out.iter().all(|b| *b == 7));
    }

    #[tokio::test]
    async fn dropped_writer_is_an_error_not_eof() {
        let (mut w, mut r) = pipe(2);
        w.write_all(b"partial").await.unwrap();
        w.flush().await.unwrap();
        drop(w);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"partial");
        assert!(r.state().aborted());
    }

    #[tokio::test]
    async fn failed_writer_passes_its_error() {
        let (w, mut r) = pipe(2);
        w.fail(io::Error::other("boom")).await;
        let err = r.next_chunk().await.unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[tokio::test]
    async fn dropped_reader_breaks_the_writer() {
        let (mut w, r) = pipe(1);
        drop(r);
        let err = w.write_all(&vec![0u8; CHUNK_SIZE * 2]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(w.state().broken());
    }
}
