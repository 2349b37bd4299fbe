"""dbseal: sealed, verifiable backups of PostgreSQL, TimescaleDB, Neo4j and Redis.

Every backup is the database's own backup stream, compressed (zstd), encrypted (age),
checksummed (SHA-256), stored in object storage and described by a manifest. This
package runs the same Rust library as the ``dbseal`` command-line tool: every CLI
command has a function here, with the CLI's flags as keywords (``--exclude-table`` is
``exclude_table=``) and the CLI's ``--json`` documents (or typed objects) as results.

    import dbseal

    store = dbseal.Store("./backups")
    identity = dbseal.generate_identity()
    identity.save("backup-key.txt")
    manifest = dbseal.backup_postgres(
        "postgres://app@127.0.0.1/app", store,
        datastore="app-db", recipients=[identity.recipient],
    )
    dbseal.verify(store, manifest.backup_id, identity=identity, level="content")
    dbseal.restore(store, manifest.backup_id, "postgres://app@127.0.0.1/app_copy",
                   identity=identity, create_db=True)

``backup_<kind>`` exists for every driver of the library (``dbseal.kinds()``); its
keywords are the flags of ``dbseal backup <kind>`` (``dbseal.drivers()`` lists them).
Blocking calls release the GIL and can be interrupted with Ctrl-C; ``dbseal.aio`` has
the same functions as coroutines. Errors are subclasses of :class:`DbsealError`, with
``kind`` and ``exit_code`` as the CLI reports them.
"""

import functools as _functools
import inspect as _inspect
from typing import Any as _Any, Callable as _Callable

from . import _dbseal
from ._dbseal import *  # noqa: F401,F403  (the names of _dbseal.__all__)
from ._errors import *  # noqa: F401,F403  (the exceptions)
from ._types import *  # noqa: F401,F403  (the result objects)
from . import _errors, _types


def _backup_of(kind: str) -> "_Callable[..., Manifest]":
    """``backup_<kind>(url, store, *, datastore, …, **options)``: :func:`backup` with
    ``kind`` filled in (``functools.partial`` with a name, a docstring and a signature)."""

    def backup_kind(*args: _Any, **kwargs: _Any) -> "Manifest":
        return _dbseal.backup(kind, *args, **kwargs)

    about = next(d for d in _dbseal.drivers() if d["kind"] == kind)
    options = "\n".join(f"    {o['name']}: {o['help']}" for o in about["options"])
    backup_kind.__name__ = backup_kind.__qualname__ = f"backup_{kind}"
    backup_kind.__doc__ = f"{about['about']}\n\n``backup({kind!r}, …)``; options:\n{options}"
    # The seal keywords (``dbseal.keywords()["backup"]``, repeatable ones plural) are
    # read from ``**options``; the signature shows them.
    signature = _inspect.signature(_functools.partial(_dbseal.backup, kind))
    *params, options = signature.parameters.values()
    seal = [
        _inspect.Parameter(k["name"] + ("s" if k["shape"] == "many" else ""), _inspect.Parameter.KEYWORD_ONLY, default=None)
        for k in _dbseal.keywords()["backup"]
        if k["name"] not in signature.parameters
    ]
    backup_kind.__signature__ = signature.replace(parameters=[*params, *seal, options])  # type: ignore[attr-defined]
    return backup_kind


for _kind in _dbseal.kinds():
    globals()[f"backup_{_kind}"] = _backup_of(_kind)

__all__ = sorted([*_dbseal.__all__, *_errors.__all__, *_types.__all__, *(f"backup_{k}" for k in _dbseal.kinds())])
