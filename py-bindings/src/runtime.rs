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

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

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
