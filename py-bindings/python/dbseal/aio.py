"""``asyncio`` variants of dbseal's blocking calls, for async test suites and services.

Every blocking function of :mod:`dbseal` has a coroutine of the same name and
signature here, made from it (not written out): it runs the call in a worker thread
(:func:`asyncio.to_thread`); the Rust side releases the GIL, so the event loop keeps
running meanwhile. ``manifest`` is :func:`dbseal.show` under its former name.

Cancelling the awaiting task cancels the operation as Ctrl-C does a blocking call: it
undoes its work (a backup deletes what it uploaded and commits nothing, a restore rolls
its target back), and only then does the task end with ``CancelledError``. Cancelling
it a second time stops waiting for the undo.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from typing import Any, Callable, Coroutine, Optional

import dbseal

# The cancellation event of the call a worker thread runs: the extension module polls
# it (as it polls for Ctrl-C) and cancels the operation once it is set.
_cancel: contextvars.ContextVar[Optional[threading.Event]] = contextvars.ContextVar("dbseal_aio_cancel", default=None)


def _cancelled() -> bool:
    """Whether the task awaiting the call this thread runs was cancelled."""
    event = _cancel.get()
    return event is not None and event.is_set()

# Functions that return at once: nothing to run in a thread.
_NOT_BLOCKING = {"drivers", "generate_identity", "keywords", "kinds"}


def _in_thread(fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        cancel = threading.Event()
        context = contextvars.copy_context()
        context.run(_cancel.set, cancel)
        call = functools.partial(context.run, fn, *args, **kwargs)
        done = asyncio.get_running_loop().run_in_executor(None, call)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            cancel.set()
            try:
                await done  # the undo; a second cancellation stops waiting for it
            except Exception:
                pass
            raise

    run.__doc__ = f":func:`dbseal.{fn.__name__}` in a worker thread."
    return run


__all__ = sorted(
    name
    for name in dbseal.__all__
    if inspect.isroutine(getattr(dbseal, name)) and name not in _NOT_BLOCKING
)
for _name in __all__:
    globals()[_name] = _in_thread(getattr(dbseal, _name))
manifest = globals()["show"]
__all__ = sorted([*__all__, "manifest"])
