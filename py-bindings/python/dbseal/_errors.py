"""The exceptions dbseal raises: one class per kind of failure of the library.

::

    DbsealError(Exception)                     every error dbseal raises (kinds failure, interrupted, internal)
    ├── ConfigError(DbsealError, ValueError)   invalid arguments, keys, URLs, options
    ├── NotFoundError                          no such backup, manifest or object
    ├── ConnectionError(DbsealError, builtins.ConnectionError)
    ├── VerificationError                      corrupted, truncated or tampered artifact; contents differ
    ├── DecryptionError                        wrong identity or passphrase
    ├── VersionMismatchError                   newer manifest format, tool older than the server...
    ├── RefusedError                           target not empty, production, manifest exists
    ├── UnhealthyError                         status: a datastore is stale or failed verification
    └── SetFailedError                         a backup set had a failed member

Every class and instance carries ``kind`` (the library's name of the failure, the CLI's
``--json`` error class) and ``exit_code`` (the CLI's exit status for it, set from the
library's one table when the extension module loads); an operation whose failure is
itself a result (status, backup sets, ``verify_latest``) also attaches that result as
``result`` (the CLI's ``--json`` document). ``dbseal.ConnectionError`` is also a
``builtins.ConnectionError``; ``DbsealConnectionError`` is the same class under a name
that shadows nothing. Messages are the library's, which hold no secret.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "ConfigError",
    "ConnectionError",
    "DbsealConnectionError",
    "DbsealError",
    "DecryptionError",
    "NotFoundError",
    "RefusedError",
    "SetFailedError",
    "UnhealthyError",
    "VerificationError",
    "VersionMismatchError",
]


class DbsealError(Exception):
    """Base class of every error dbseal raises. ``kind`` names the class of failure (the
    CLI's --json error class), ``exit_code`` the CLI's exit status for it."""

    __module__ = "dbseal"
    # Set from the library's ErrorKind table when the extension module loads (the
    # base class stands for every kind without a class of its own).
    kind: str
    exit_code: int
    result: Any = None


class ConfigError(DbsealError, ValueError):
    """Invalid arguments, configuration, keys, URLs or options (also a ValueError)."""

    __module__ = "dbseal"
    kind = "config"


class NotFoundError(DbsealError):
    """The backup, manifest or object does not exist."""

    __module__ = "dbseal"
    kind = "not_found"


class ConnectionError(DbsealError, builtins.ConnectionError):
    """A server or the store could not be reached, or refused the credentials (also a
    builtins.ConnectionError)."""

    __module__ = "dbseal"
    kind = "connection"


DbsealConnectionError = ConnectionError


class VerificationError(DbsealError):
    """An artifact or manifest failed verification: corrupted, truncated or tampered, or
    its contents differ from the manifest."""

    __module__ = "dbseal"
    kind = "verification"


class DecryptionError(DbsealError):
    """The artifact could not be decrypted with the given identity or passphrase."""

    __module__ = "dbseal"
    kind = "decryption"


class VersionMismatchError(DbsealError):
    """Versions do not fit: a newer manifest format, a client tool older than the server,
    a different extension version."""

    __module__ = "dbseal"
    kind = "version_mismatch"


class RefusedError(DbsealError):
    """The target refused the operation: not empty (pass replace=True), production
    without confirmation, a manifest that already exists."""

    __module__ = "dbseal"
    kind = "refused"


class UnhealthyError(DbsealError):
    """status(): a datastore is stale or failed its last verification (``result`` holds
    the report)."""

    __module__ = "dbseal"
    kind = "unhealthy"


class SetFailedError(DbsealError):
    """A backup set had a failed member; the others are ordinary backups (``result``
    holds the set manifest)."""

    __module__ = "dbseal"
    kind = "set_failed"


_CLASSES: dict[str, type[DbsealError]] = {
    c.kind: c
    for c in (
        ConfigError,
        NotFoundError,
        ConnectionError,
        VerificationError,
        DecryptionError,
        VersionMismatchError,
        RefusedError,
        UnhealthyError,
        SetFailedError,
    )
}


def _error(kind: str, exit_code: int, message: str) -> DbsealError:
    """The exception of the library's error ``kind`` (``DbsealError`` for kinds without a
    class of their own), with ``kind`` and ``exit_code`` set on the instance."""
    error = _CLASSES.get(kind, DbsealError)(message)
    error.kind, error.exit_code = kind, exit_code
    return error
