"""``asyncio`` variants of dbseal's blocking calls, for async test suites and services.

Every blocking function of :mod:`dbseal` has a coroutine of the same name and
signature here, made from it (not written out): it runs the call in a worker thread
(:func:`asyncio.to_thread`); the Rust side releases the GIL, so the event loop keeps
running meanwhile. ``manifest`` is :func:`dbseal.show` under its former name.

Cancelling the awaiting task does not stop the backup or restore already running in
its thread (a thread cannot be interrupted from outside); the operation finishes or
fails on its own, and, as always, a backup that does not finish commits no manifest.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Callable, Coroutine

import dbseal

# Functions that return at once: nothing to run in a thread.
_NOT_BLOCKING = {"drivers", "generate_identity", "keywords", "kinds"}


def _in_thread(fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

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
