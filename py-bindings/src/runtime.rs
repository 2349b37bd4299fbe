//! Running library futures from Python: the GIL released, Ctrl-C and task cancellation
//! honoured.
//!
//! Every blocking call of the module runs its future on one process-wide multi-threaded
//! tokio runtime, from inside [`Python::detach`] so other Python threads keep running.
//! While it waits, the calling thread wakes every [`SIGNAL_POLL`] to re-attach briefly
//! and run [`Python::check_signals`] (signals reach the main thread only), and to look
//! at the cancellation event `dbseal.aio` gives the calls it runs in worker threads
//! (set when the awaiting task is cancelled). Either interrupts the call: a read-only
//! one at once; one that writes (backups, restores, level-3 verification) cancels the
//! token the library was given (`OpContext::cancel`), so it undoes its work (deletes
//! what it uploaded, rolls its target back) as for a bad artifact, and only then raises.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backup_core::ErrorKind::Interrupted;
use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::errors::{raise, Secrets};

/// How often a waiting call checks for pending signals.
pub const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The process-wide runtime, with the id of the process that built it.
static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);

/// The process-wide runtime. A child created by `fork()` (multiprocessing's default on
/// Linux) inherits the parent's runtime without its worker threads: it gets a runtime of
/// its own, and the inherited one is leaked (dropping it would wait for threads that do
/// not exist in the child). See also [`register_fork_hook`].
fn runtime() -> Arc<tokio::runtime::Runtime> {
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
    backup_core::task::install_panic_hook();
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

/// Shuts the idle runtime down before the process forks (`os.register_at_fork(before=)`),
/// so the child is forked from a process with no dbseal thread: a thread that held a
/// lock at the moment of `fork()` (the allocator's, a registry's, the runtime's own)
/// would hold it forever in the child, which then hangs in its first call (seen in the
/// tests: about one run in fifteen). The parent builds a new runtime on its next call.
/// A runtime in use by another thread's call is left running (forking then is as unsafe
/// as forking any multi-threaded process).
pub fn register_fork_hook(py: Python<'_>) -> PyResult<()> {
    let hook = pyo3::types::PyCFunction::new_closure(py, None, None, |args, _kwargs| {
        args.py().detach(shut_down_idle_runtime);
    })?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("before", hook)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

fn shut_down_idle_runtime() {
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some((owner, rt)) = slot.take() else {
        return;
    };
    if owner != std::process::id() {
        // Inherited from a parent without its threads: leaked, as in runtime().
        std::mem::forget(rt);
        return;
    }
    match Arc::try_unwrap(rt) {
        Ok(rt) => {
            drop(slot);
            // Waits for the worker and blocking threads to exit (a blocking task that
            // does not finish within the time is left behind).
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        Err(in_use) => *slot = Some((owner, in_use)),
    }
}

/// Runs the future `make` returns to completion with the GIL released, on the calling
/// thread (so the future need not be `Send`). A signal whose handler raises
/// (`KeyboardInterrupt`) meanwhile: without `undo`, drops the future and raises at once;
/// with `undo` (operations that must undo their work: restores, backups), cancels the
/// token — the sink then sees its input fail and takes its failure path (roll back, drop
/// the database it created) — and waits up to [`UNDO_GRACE`] for that before raising.
/// A second signal raises at once.
pub fn block_on<M, F, T>(py: Python<'_>, undo: Option<CancellationToken>, make: M) -> PyResult<T>
where
    M: FnOnce() -> F + Send,
    F: Future<Output = T>,
    T: Send,
{
    py.detach(move || {
        runtime().block_on(async move {
            let mut fut = std::pin::pin!(make());
            let mut ticker = tokio::time::interval(SIGNAL_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut interrupt: Option<(PyErr, tokio::time::Instant)> = None;
            loop {
                tokio::select! {
                    biased;
                    out = &mut fut => return interrupt.map_or(Ok(out), |(e, _)| Err(e)),
                    _ = ticker.tick() => {
                        let first = interrupt.is_none();
                        if let Err(e) = Python::attach(|py| poll(py, first)) {
                            match (&undo, &interrupt) {
                                (Some(token), None) => {
                                    token.cancel();
                                    interrupt = Some((e, tokio::time::Instant::now() + UNDO_GRACE));
                                }
                                _ => return Err(e),
                            }
                        }
                        if interrupt.as_ref().is_some_and(|(_, d)| tokio::time::Instant::now() >= *d) {
                            return Err(interrupt.take().map(|(e, _)| e).expect("checked"));
                        }
                    }
                }
            }
        })
    })
}

pub use backup_core::ops::UNDO_GRACE;

/// Pending signals, and (unless an interrupt is already under way) the cancellation of
/// the `dbseal.aio` task awaiting this call, as the exception to raise.
fn poll(py: Python<'_>, first: bool) -> PyResult<()> {
    py.check_signals()?;
    let modules = py.import("sys")?.getattr("modules")?;
    let aio = modules.get_item("dbseal.aio").ok().filter(|_| first);
    match aio.map(|a| a.call_method0("_cancelled")).transpose()? {
        Some(c) if c.is_truthy()? => Err(raise(py, Interrupted, CANCELLED, &Secrets::default())),
        _ => Ok(()),
    }
}

/// The message of a call whose `dbseal.aio` task was cancelled.
const CANCELLED: &str = "interrupted: the awaiting task was cancelled";
