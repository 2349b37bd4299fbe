//! Running library futures from Python: the GIL released, Ctrl-C honoured.
//!
//! Every blocking call of the module runs its future on one process-wide multi-threaded
//! tokio runtime, from inside [`Python::detach`] so other Python threads keep running.
//! While it waits, the calling thread wakes every [`SIGNAL_POLL`] to re-attach briefly
//! and run [`Python::check_signals`]: a Ctrl-C (or any signal handler that raises) drops
//! the future — which cancels the backup or restore: no manifest is committed, child
//! processes are killed, a sink's transaction is rolled back — and the exception
//! (`KeyboardInterrupt`) propagates to the caller. Signals are only delivered to the
//! main thread; calls made from other threads (such as `dbseal.aio`'s) are not
//! interruptible this way.
//!
//! Restores use [`block_on_cancellable`] instead: the interrupt makes the sink's input
//! fail, so the sink undoes its work (rolls back, drops the database it created) as for
//! a bad artifact, and only then the exception is raised.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use backup_core::sink::StreamReader;
use backup_core::{Sink, SinkReport};
use pyo3::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How often a waiting call checks for pending signals.
pub const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The process-wide runtime. A child created by `fork()` (multiprocessing's default on
/// Linux) inherits the parent's runtime without its worker threads: it gets a runtime of
/// its own, and the inherited one is leaked (dropping it would wait for threads that do
/// not exist in the child).
fn runtime() -> Arc<tokio::runtime::Runtime> {
    static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pid = std::process::id();
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return rt.clone();
        }
    }
    if let Some((_, inherited)) = slot.take() {
        std::mem::forget(inherited);
    }
    backup_core::store::install_crypto_provider();
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("dbseal-worker")
            .build()
            .expect("cannot start the tokio runtime"),
    );
    *slot = Some((pid, rt.clone()));
    rt
}

/// Runs `fut` to completion with the GIL released; returns early with the signal
/// handler's exception (`KeyboardInterrupt`) if one is raised meanwhile.
pub fn block_on<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    py.detach(move || {
        runtime().block_on(async move {
            let mut fut = std::pin::pin!(fut);
            let mut ticker = tokio::time::interval(SIGNAL_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    out = &mut fut => return Ok(out),
                    _ = ticker.tick() => {
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

/// How long an interrupted restore may take to undo its work (roll back, drop what it
/// created) before the call gives up waiting. A second Ctrl-C stops waiting at once.
pub const UNDO_GRACE: Duration = Duration::from_secs(60);

/// [`block_on`] for operations that must undo their work when interrupted (restores):
/// the first signal cancels `token` — the sink then sees its input fail and takes its
/// failure path (roll back, drop the database it created) — and the call waits up to
/// `grace` for that before raising the signal's exception. A second signal raises at
/// once.
pub fn block_on_cancellable<F, T>(
    py: Python<'_>,
    token: CancellationToken,
    grace: Duration,
    fut: F,
) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    py.detach(move || {
        runtime().block_on(async move {
            let mut fut = std::pin::pin!(fut);
            let mut ticker = tokio::time::interval(SIGNAL_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut interrupt: Option<PyErr> = None;
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    biased;
                    out = &mut fut => {
                        return match interrupt {
                            Some(e) => Err(e),
                            None => Ok(out),
                        };
                    }
                    _ = ticker.tick() => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            if interrupt.is_some() {
                                return Err(e);
                            }
                            token.cancel();
                            interrupt = Some(e);
                            deadline = Some(tokio::time::Instant::now() + grace);
                        }
                        if let (Some(d), Some(_)) = (deadline, interrupt.as_ref()) {
                            if tokio::time::Instant::now() >= d {
                                return Err(interrupt.take().expect("checked"));
                            }
                        }
                    }
                }
            }
        })
    })
}

/// A [`Sink`] whose input fails once `token` is cancelled, so an interrupted restore
/// goes through the wrapped sink's own failure path (which leaves the target as it was)
/// instead of being dropped midway.
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

#[async_trait::async_trait]
impl Sink for CancellableSink<'_> {
    async fn restore(
        &mut self,
        manifest: &backup_core::Manifest,
        input: StreamReader<'_>,
    ) -> backup_core::Result<SinkReport> {
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
            return Poll::Ready(Err(backup_core::Error::Interrupted(
                "the restore was interrupted (Ctrl-C); undoing it".into(),
            )
            .into_io()));
        }
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}
