"""dbseal's pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

- ``dbseal_store``: a :class:`dbseal.Store` in a fresh temporary directory.
- ``dbseal_identity``: a freshly generated :class:`dbseal.Identity`.
- ``dbseal_round_trip``: :func:`assert_round_trip` bound to those two, so a test says
  ``dbseal_round_trip("postgres://app@127.0.0.1/app", restore_url=...)``.

:func:`assert_round_trip` proves, with the engine production backups use, that a
database can be backed up, verified at every level and restored: backup → verify
(stored, content, restore into a scratch database) → restore into ``restore_url`` →
back up the restored target and compare its contents summary with the original's.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import pytest

from ._dbseal import (
    Identity,
    Store,
    backup,
    drivers,
    generate_identity,
    keygen,
    restore,
    verify,
)
from ._types import Manifest, RestoreReport, VerifyReport

__all__ = [
    "RoundTrip",
    "assert_round_trip",
    "dbseal_identity",
    "dbseal_round_trip",
    "dbseal_store",
    "kind_of_url",
]


def _schemes() -> dict[str, str]:
    """URL scheme -> kind, from the drivers; a scheme several drivers accept (TimescaleDB
    uses PostgreSQL's) goes to the driver named like it, else to the first."""
    found: dict[str, str] = {}
    for d in drivers():
        for scheme in d["url_schemes"]:
            if scheme == d["kind"] or scheme not in found:
                found[scheme] = d["kind"]
    return found


# Count groups that describe the data itself, compared between the original backup and
# a backup of the restored target (facts such as server versions may differ).
_COMPARED_GROUPS = {
    "postgres": ("tables",),
    "timescale": ("tables",),
    "redis": ("keys", "expires"),
    "neo4j": ("labels", "relationship_types", "graph"),
}


def kind_of_url(url: str) -> str:
    """The datastore kind a URL's scheme names (``postgres``, ``redis``, ``neo4j``).

    TimescaleDB URLs are PostgreSQL URLs: pass ``kind="timescale"`` explicitly.
    """
    scheme = urlsplit(url).scheme.lower()
    try:
        return _schemes()[scheme]
    except KeyError:
        kinds = ", ".join(repr(d["kind"]) for d in drivers())
        raise ValueError(f"cannot tell the database kind of a `{scheme}://` URL: pass kind= one of {kinds}") from None


@dataclasses.dataclass(frozen=True)
class RoundTrip:
    """What :func:`assert_round_trip` did."""

    manifest: Manifest
    """The backup of the original database."""
    verify_report: VerifyReport
    """Verification of that backup (at level ``restore`` unless told otherwise)."""
    restore_report: Optional[RestoreReport]
    """The restore into ``restore_url`` (``None`` without one)."""
    restored_manifest: Optional[Manifest]
    """A backup of the restored target, whose contents matched the original's."""


def _backup(
    kind: str,
    url: str,
    store: Store,
    identity: Identity,
    datastore: str,
    user: Optional[str],
    password: Optional[str],
    database: Optional[str],
    backup_options: Mapping[str, Any],
) -> Manifest:
    options = dict(backup_options)
    driver = next((d for d in drivers() if d["kind"] == kind), None)
    if driver is None:
        raise ValueError(f"unknown database kind `{kind}`: use one of {[d['kind'] for d in drivers()]}")
    if database is not None and any(o["name"] == "database" for o in driver["options"]):
        options["database"] = database
    return backup(
        kind, url, store, datastore=datastore, recipients=[identity.recipient], user=user, password=password, **options
    )


def _groups(manifest: Manifest, groups: Sequence[str]) -> dict[str, dict[str, int]]:
    counts = manifest.contents.counts
    return {g: counts.get(g, {}) for g in groups}


def assert_round_trip(
    url: str,
    store: Store,
    identity: Identity,
    *,
    kind: Optional[str] = None,
    datastore: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    database: Optional[str] = None,
    verify_level: str = "restore",
    verify_url: Optional[str] = None,
    verify_database: Optional[str] = None,
    restore_url: Optional[str] = None,
    restore_database: Optional[str] = None,
    restore_options: Optional[Mapping[str, Any]] = None,
    backup_options: Optional[Mapping[str, Any]] = None,
    compare_groups: Optional[Sequence[str]] = None,
) -> RoundTrip:
    """Backs up the database at ``url``, verifies the backup and restores it; fails the
    test (``AssertionError``, or the :class:`dbseal.DbsealError` raised) otherwise.

    1. ``backup_<kind>(url, store, ...)`` encrypted to ``identity``; the backup must be
       listed by the store with the right kind.
    2. ``verify`` at ``verify_level`` (default ``restore``: levels 1, 2 and 3; level 3
       restores into a scratch database on ``verify_url``, default ``url``'s server;
       Neo4j servers without ``CREATE DATABASE`` need ``verify_database``, an empty
       scratch database).
    3. With ``restore_url``: ``restore`` into it (``restore_options`` are passed on,
       e.g. ``{"create_db": True}`` or ``{"replace": True}``), then back the restored
       target up and assert that its contents summary (``compare_groups``, by default
       the tables' row counts, the keys per type, the nodes per label...) equals the
       original's.

    ``user``/``password`` apply to every server involved (use the URLs for different
    credentials).
    """
    kind = kind or kind_of_url(url)
    datastore = datastore or f"roundtrip-{kind}"
    groups = tuple(compare_groups or _COMPARED_GROUPS.get(kind, ()))
    extra = dict(backup_options or {})

    manifest = _backup(kind, url, store, identity, datastore, user, password, database, extra)
    assert manifest.kind == kind, f"backup {manifest.backup_id} has kind {manifest.kind}, expected {kind}"
    listed = [m.backup_id for m in store.list(datastore)]
    assert manifest.backup_id in listed, f"backup {manifest.backup_id} is not listed by {store!r}"
    assert manifest.artifact.stored_size > 0

    if verify_level == "restore":
        report = verify(
            store,
            manifest,
            identity=identity,
            level="restore",
            restore_to=verify_url or url,
            user=user,
            password=password,
            database=verify_database,
        )
    else:
        report = verify(store, manifest, identity=identity, level=verify_level)
    assert report.level == verify_level, f"verification stopped at {report.level}, expected {verify_level}"
    expected_levels = {"stored": 1, "content": 2, "restore": 3}[verify_level]
    assert [r.level_number for r in report.reports] == list(range(1, expected_levels + 1))

    restore_report: Optional[RestoreReport] = None
    restored: Optional[Manifest] = None
    if restore_url is not None:
        options = dict(restore_options or {})
        if restore_database is not None:
            options["database"] = restore_database
        restore_report = restore(
            store, manifest, restore_url, identity=identity, user=user, password=password, **options
        )
        assert restore_report.backup_id == manifest.backup_id
        restored = _backup(
            kind,
            restore_url,
            store,
            identity,
            f"{datastore}-restored",
            user,
            password,
            restore_database,
            extra,
        )
        expected, found = _groups(manifest, groups), _groups(restored, groups)
        assert found == expected, (
            f"the restored {kind} database differs from backup {manifest.backup_id}: "
            f"expected {expected}, found {found}"
        )
    return RoundTrip(manifest, report, restore_report, restored)


@pytest.fixture
def dbseal_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A dbseal store in a fresh temporary directory, signing with a fresh signing key
    (so what it backs up it trusts, as a backup host does)."""
    keys = keygen(tmp_path_factory.mktemp("dbseal-keys") / "identity.txt")
    return Store(
        os.fspath(tmp_path_factory.mktemp("dbseal-store")),
        signing_key=keys["signing_key_file"],
    )


@pytest.fixture
def dbseal_identity() -> Identity:
    """A freshly generated identity (never written anywhere)."""
    return generate_identity()


RoundTripFn = Callable[..., RoundTrip]


@pytest.fixture
def dbseal_round_trip(dbseal_store: Store, dbseal_identity: Identity) -> RoundTripFn:
    """:func:`assert_round_trip` with ``dbseal_store`` and ``dbseal_identity`` filled in:
    ``dbseal_round_trip(url, restore_url=..., **options) -> RoundTrip``."""

    def run(url: str, **kwargs: Any) -> RoundTrip:
        return assert_round_trip(url, dbseal_store, dbseal_identity, **kwargs)

    return run


