"""The result objects: read-only views of the documents the library returns (the JSON the
CLI prints with ``--json``). ``to_dict()`` gives that document (a fresh copy); ``repr``
shows what identifies it and never a secret (manifests and reports hold none).

The extension module builds them (``dbseal._dbseal`` imports this module); nothing here
talks to a store or a database.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Optional

__all__ = ["Artifact", "Contents", "LevelReport", "Manifest", "RestoreReport", "VerifyReport"]

_LEVELS = ("stored", "content", "restore")
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def _time(text: str) -> datetime.datetime:
    """An RFC 3339 time as the library writes it (nanoseconds, ``Z``), timezone-aware
    (``datetime.fromisoformat`` reads neither before Python 3.11)."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    zone = datetime.timezone.utc
    if m[3] != "Z":
        sign = -1 if m[3][0] == "-" else 1
        zone = datetime.timezone(sign * datetime.timedelta(hours=int(m[3][1:3]), minutes=int(m[3][4:6])))
    micros = int(((m[2] or "") + "000000")[:6])
    return datetime.datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S").replace(microsecond=micros, tzinfo=zone)


def _json(value: Any) -> str:
    """A keyword argument's value as JSON for the extension module: paths as their path,
    a ``Manifest`` as its backup id, any mapping or iterable as an object or array."""

    def convert(v: Any) -> Any:
        if isinstance(v, Manifest):
            return v.backup_id
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        if isinstance(v, Mapping):
            return dict(v)
        if isinstance(v, Iterable) and not isinstance(v, (str, bytes)):
            return list(v)
        from ._errors import ConfigError

        raise ConfigError(f"cannot pass a {type(v).__name__} as an option value")

    return json.dumps(value, default=convert)


class _Document:
    """A read-only view of one document."""

    __slots__ = ("_doc",)
    _doc: dict[str, Any]

    def __init__(self, doc: dict[str, Any]) -> None:
        object.__setattr__(self, "_doc", doc)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def to_dict(self) -> dict[str, Any]:
        """The document as plain data (a copy)."""
        return copy.deepcopy(self._doc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Document) and type(other) is type(self) and other._doc == self._doc


class Contents(_Document):
    """What a backup holds: facts read from the native stream and named groups of counts
    (``counts["tables"]["public.users"]`` rows, ``counts["labels"]["Person"]`` nodes,
    ``counts["keys"]["db0.string"]`` keys...)."""

    __slots__ = ()

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__({"facts": {}, "counts": {}, **doc})

    @property
    def facts(self) -> dict[str, str]:
        """Facts read from the stream itself (archive version, server version...)."""
        return dict(self._doc["facts"])

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Named groups of counts."""
        return copy.deepcopy(self._doc["counts"])

    def group(self, name: str) -> dict[str, int]:
        """The counts of one group (``{}`` if the backup has none)."""
        return dict(self._doc["counts"].get(name, {}))

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {len(c)}" for g, c in self._doc["counts"].items())
        return f"Contents({{{groups}}})"


class Artifact(_Document):
    """One stored object of a backup: where it is, its format, sizes and SHA-256 digests."""

    __slots__ = ()

    @property
    def name(self) -> str:
        """The artifact's role: ``data`` for the main stream, others for attachments."""
        return str(self._doc["name"])

    @property
    def key(self) -> str:
        """The object key, relative to the store root."""
        return str(self._doc["key"])

    @property
    def format(self) -> str:
        """The native format of the plaintext (``pgdump``, ``rdb``, ``graph``, ``raw``...)."""
        return str(self._doc["format"])

    @property
    def stored_size(self) -> int:
        """Size of the stored (compressed, encrypted) object in bytes."""
        return int(self._doc["stored_size"])

    @property
    def stored_sha256(self) -> str:
        """Lowercase hex SHA-256 of the stored object."""
        return str(self._doc["stored_sha256"])

    @property
    def plaintext_size(self) -> int:
        """Size of the plaintext native stream in bytes."""
        return int(self._doc["plaintext_size"])

    @property
    def plaintext_sha256(self) -> str:
        """Lowercase hex SHA-256 of the plaintext native stream."""
        return str(self._doc["plaintext_sha256"])

    def __repr__(self) -> str:
        return f"Artifact(name={self.name!r}, key={self.key!r}, format={self.format!r}, stored_size={self.stored_size})"


class Manifest(_Document):
    """The manifest of one backup: everything needed to verify and restore it, and never
    a secret. Built from the JSON document stored next to the artifact."""

    __slots__ = ("_json",)
    _json: str

    def __init__(self, json_text: str) -> None:
        super().__init__(json.loads(json_text))
        object.__setattr__(self, "_json", json_text)

    @property
    def backup_id(self) -> str:
        """The backup id (``20261121T020000Z-1a2b3c4d``; sorts by time)."""
        return str(self._doc["backup_id"])

    @property
    def datastore(self) -> str:
        """The datastore name (the backup's folder in the store)."""
        return str(self._doc["datastore"]["name"])

    @property
    def kind(self) -> str:
        """The datastore kind: ``postgres``, ``timescale``, ``redis``, ``neo4j``,
        ``command``, ``bytes``, ``file``..."""
        return str(self._doc["datastore"]["kind"])

    @property
    def format_version(self) -> str:
        """The manifest format version (``"1.0"``)."""
        return str(self._doc["format_version"])

    @property
    def started_at(self) -> datetime.datetime:
        """When the backup started (timezone-aware, UTC)."""
        return _time(self._doc["started_at"])

    @property
    def finished_at(self) -> datetime.datetime:
        """When the backup finished (timezone-aware, UTC)."""
        return _time(self._doc["finished_at"])

    @property
    def tool_version(self) -> str:
        """The dbseal version that wrote the backup."""
        return str(self._doc["tool"]["version"])

    @property
    def source(self) -> dict[str, Any]:
        """Facts about the source: server version, database, host (without credentials)..."""
        return copy.deepcopy(self._doc.get("source", {}))

    @property
    def artifact(self) -> Artifact:
        """The main artifact."""
        return Artifact(copy.deepcopy(self._doc["artifact"]))

    @property
    def attachments(self) -> list[Artifact]:
        """Secondary artifacts (e.g. PostgreSQL ``globals``)."""
        fields = ("name", "key", "format", "stored_size", "stored_sha256", "plaintext_size", "plaintext_sha256")
        return [Artifact({k: a[k] for k in fields if k in a}) for a in self._doc.get("attachments", [])]

    @property
    def transforms(self) -> list[dict[str, Any]]:
        """The transforms applied, in order: ``[{"type": "zstd", "level": 3}, {"type": "age", ...}]``."""
        return copy.deepcopy(self._doc.get("transforms", []))

    @property
    def recipients(self) -> list[str]:
        """The public keys the backup is encrypted to (empty for a passphrase)."""
        return [r for t in self._doc.get("transforms", []) if t.get("type") == "age" for r in t.get("recipients", [])]

    @property
    def contents(self) -> Contents:
        """The contents summary of the main artifact."""
        return Contents(copy.deepcopy(self._doc.get("contents", {})))

    @property
    def parent(self) -> Optional[str]:
        """The parent backup id of an incremental chain, if any."""
        parent = self._doc.get("parent")
        return None if parent is None else str(parent)

    @property
    def labels(self) -> dict[str, str]:
        """Free-form labels."""
        return dict(self._doc.get("labels", {}))

    @property
    def key(self) -> str:
        """The manifest's key in the store (``{datastore}/{backup_id}/manifest.json``)."""
        return f"{self.datastore}/{self.backup_id}/manifest.json"

    def to_json(self) -> str:
        """The manifest as the JSON document stored next to the artifact."""
        return self._json

    def __repr__(self) -> str:
        return (
            f"Manifest(backup_id={self.backup_id!r}, datastore={self.datastore!r}, "
            f"kind={self.kind!r}, stored_size={self.artifact.stored_size})"
        )

    def __hash__(self) -> int:
        return hash(self.backup_id)


class LevelReport(_Document):
    """What one verification level checked."""

    __slots__ = ()

    @property
    def level(self) -> str:
        """``stored``, ``content`` or ``restore``."""
        return str(self._doc["level"])

    @property
    def level_number(self) -> int:
        """1, 2 or 3."""
        return _LEVELS.index(self.level) + 1

    @property
    def checks(self) -> list[str]:
        """One line per check that passed."""
        return list(self._doc["checks"])

    def __repr__(self) -> str:
        return f"LevelReport(level={self.level!r}, checks={len(self.checks)})"


class VerifyReport(_Document):
    """The result of a successful verification (a failed one raises): the document of
    ``dbseal verify --json``. ``level`` is the deepest level that passed; ``reports``
    has one entry per level run, shallowest first."""

    __slots__ = ()

    @property
    def backup_id(self) -> str:
        """The backup verified."""
        return str(self._doc["backup_id"])

    @property
    def ok(self) -> bool:
        """Always ``True``: a failed verification raises ``VerificationError`` (or another
        ``DbsealError``) instead of returning a report."""
        return True

    @property
    def reports(self) -> list[LevelReport]:
        """One report per level run."""
        return [LevelReport(copy.deepcopy(r)) for r in self._doc["reports"]]

    @property
    def level(self) -> str:
        """The deepest level that passed: ``stored``, ``content`` or ``restore``."""
        reports = self.reports
        return reports[-1].level if reports else "stored"

    @property
    def level_number(self) -> int:
        """The deepest level that passed, as a number (1, 2, 3)."""
        return _LEVELS.index(self.level) + 1

    @property
    def checks(self) -> list[str]:
        """Every check that passed, all levels together."""
        return [c for r in self.reports for c in r.checks]

    def __repr__(self) -> str:
        return f"VerifyReport(backup_id={self.backup_id!r}, level={self.level!r}, checks={len(self.checks)})"


class RestoreReport(_Document):
    """The result of a successful restore: the document ``dbseal restore --json`` prints
    (``backup_id``, ``target``, ``summary``, ``safety_backup``; ``bytes`` for a file; the
    plan of a dry run)."""

    __slots__ = ()

    @property
    def backup_id(self) -> str:
        """The backup restored."""
        return str(self._doc.get("backup_id") or "")

    @property
    def target(self) -> str:
        """Where it went (a URL without credentials, a datastore, or a path)."""
        return str(self._doc.get("target") or "")

    @property
    def bytes(self) -> Optional[int]:
        """Plaintext bytes restored, when known."""
        n = self._doc.get("bytes")
        return n if isinstance(n, int) else None

    @property
    def summary(self) -> list[str]:
        """What the target reported, one line per fact."""
        s = self._doc.get("summary")
        return list(s) if isinstance(s, list) else []

    @property
    def safety_backup(self) -> Optional[str]:
        """The safety backup taken of the target before it was replaced, if any."""
        s = self._doc.get("safety_backup")
        return s if isinstance(s, str) else None

    @property
    def dry_run(self) -> bool:
        """Whether this is the plan of a dry run (nothing was changed)."""
        return self._doc.get("dry_run") is True

    def __repr__(self) -> str:
        return f"RestoreReport(backup_id={self.backup_id!r}, target={self.target!r})"
