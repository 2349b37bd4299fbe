"""``asyncio`` variants of dbseal's blocking calls, for async test suites and services.

Each coroutine runs the blocking call in a worker thread (:func:`asyncio.to_thread`);
the Rust side releases the GIL, so the event loop keeps running meanwhile. Arguments
and results are exactly those of the functions of the same name in :mod:`dbseal`.

Cancelling the awaiting task does not stop the backup or restore already running in
its thread (a thread cannot be interrupted from outside); the operation finishes or
fails on its own, and, as always, a backup that does not finish commits no manifest.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Mapping, Sequence
from typing import Optional, Union

from . import _dbseal
from ._dbseal import Identity, Manifest, RestoreReport, Store, VerifyReport

_Path = Union[str, "os.PathLike[str]"]
_Recipient = Union[str, Identity]
_Recipients = Union[_Recipient, Sequence[_Recipient]]
_IdentityArg = Union[Identity, _Path]
_Identities = Union[_IdentityArg, Sequence[_IdentityArg]]
_StoreArg = Union[Store, _Path]
_BackupId = Union[str, Manifest]

__all__ = [
    "backup_bytes",
    "backup_command",
    "backup_file",
    "backup_neo4j",
    "backup_postgres",
    "backup_redis",
    "backup_timescale",
    "list_backups",
    "manifest",
    "restore",
    "restore_bytes",
    "restore_to_file",
    "verify",
]


async def backup_command(
    argv: Sequence[str],
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    env: Optional[Mapping[str, str]] = None,
    format: str = "raw",
) -> Manifest:
    """:func:`dbseal.backup_command` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.backup_command,
        argv,
        store,
        datastore=datastore,
        recipients=recipients,
        passphrase=passphrase,
        zstd_level=zstd_level,
        labels=labels,
        env=env,
        format=format,
    )


async def backup_bytes(
    data: bytes,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    format: str = "raw",
) -> Manifest:
    """:func:`dbseal.backup_bytes` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.backup_bytes,
        data,
        store,
        datastore=datastore,
        recipients=recipients,
        passphrase=passphrase,
        zstd_level=zstd_level,
        labels=labels,
        format=format,
    )


async def backup_file(
    path: _Path,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    format: str = "raw",
) -> Manifest:
    """:func:`dbseal.backup_file` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.backup_file,
        path,
        store,
        datastore=datastore,
        recipients=recipients,
        passphrase=passphrase,
        zstd_level=zstd_level,
        labels=labels,
        format=format,
    )


async def backup_postgres(
    url: str,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    password: Optional[str] = None,
    schemas: Optional[Sequence[str]] = None,
    exclude_schemas: Optional[Sequence[str]] = None,
    tables: Optional[Sequence[str]] = None,
    exclude_tables: Optional[Sequence[str]] = None,
    exclude_table_data: Optional[Sequence[str]] = None,
    globals: bool = False,
    pg_bin_dir: Optional[_Path] = None,
) -> Manifest:
    """:func:`dbseal.backup_postgres` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.backup_postgres,
        url,
        store,
        datastore=datastore,
        recipients=recipients,
        passphrase=passphrase,
        zstd_level=zstd_level,
        labels=labels,
        password=password,
        schemas=schemas,
        exclude_schemas=exclude_schemas,
        tables=tables,
        exclude_tables=exclude_tables,
        exclude_table_data=exclude_table_data,
        globals=globals,
        pg_bin_dir=pg_bin_dir,
    )


async def backup_timescale(
    url: str,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    password: Optional[str] = None,
    schemas: Optional[Sequence[str]] = None,
    exclude_schemas: Optional[Sequence[str]] = None,
    tables: Optional[Sequence[str]] = None,
    exclude_tables: Optional[Sequence[str]] = None,
    exclude_table_data: Optional[Sequence[str]] = None,
    globals: bool = False,
    pg_bin_dir: Optional[_Path] = None,
) -> Manifest:
    """:func:`dbseal.backup_timescale` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.backup_timescale,
        url,
        store,
        datastore=datastore,
        recipients=recipients,
        passphrase=passphrase,
        zstd_level=zstd_level,
        labels=labels,
        password=password,
        schemas=schemas,
        exclude_schemas=exclude_schemas,
        tables=tables,
        exclude_tables=exclude_tables,
        exclude_table_data=exclude_table_data,
        globals=globals,
        pg_bin_dir=pg_bin_dir,
    )


async def backup_redis(
    url: str,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    password: Optional[str] = None,
    username: Optional[str] = None,
    mode: str = "replication",
) -> Manifest:
    """:func:`dbseal.backup_redis` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.backup_redis,
        url,
        store,
        datastore=datastore,
        recipients=recipients,
        passphrase=passphrase,
        zstd_level=zstd_level,
        labels=labels,
        password=password,
        username=username,
        mode=mode,
    )


async def backup_neo4j(
    url: str,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    database: Optional[str] = None,
) -> Manifest:
    """:func:`dbseal.backup_neo4j` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.backup_neo4j,
        url,
        store,
        datastore=datastore,
        recipients=recipients,
        passphrase=passphrase,
        zstd_level=zstd_level,
        labels=labels,
        user=user,
        password=password,
        database=database,
    )


async def verify(
    store: _StoreArg,
    id: _BackupId,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    level: Optional[Union[int, str]] = None,
    restore_to: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    database: Optional[str] = None,
    pg_bin_dir: Optional[_Path] = None,
) -> VerifyReport:
    """:func:`dbseal.verify` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.verify,
        store,
        id,
        identity=identity,
        passphrase=passphrase,
        level=level,
        restore_to=restore_to,
        user=user,
        password=password,
        database=database,
        pg_bin_dir=pg_bin_dir,
    )


async def restore(
    store: _StoreArg,
    id: _BackupId,
    target_url: str,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    create_db: bool = False,
    replace: bool = False,
    schemas: Optional[Sequence[str]] = None,
    tables: Optional[Sequence[str]] = None,
    no_owner: bool = False,
    role: Optional[str] = None,
    allow_version_mismatch: bool = False,
    dbs: Optional[Sequence[Union[int, str]]] = None,
    match: Optional[Sequence[str]] = None,
    database: Optional[str] = None,
    pg_bin_dir: Optional[_Path] = None,
) -> RestoreReport:
    """:func:`dbseal.restore` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.restore,
        store,
        id,
        target_url,
        identity=identity,
        passphrase=passphrase,
        user=user,
        password=password,
        create_db=create_db,
        replace=replace,
        schemas=schemas,
        tables=tables,
        no_owner=no_owner,
        role=role,
        allow_version_mismatch=allow_version_mismatch,
        dbs=dbs,
        match=match,
        database=database,
        pg_bin_dir=pg_bin_dir,
    )


async def restore_to_file(
    store: _StoreArg,
    id: _BackupId,
    path: _Path,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    artifact: str = "data",
    overwrite: bool = False,
) -> RestoreReport:
    """:func:`dbseal.restore_to_file` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.restore_to_file,
        store,
        id,
        path,
        identity=identity,
        passphrase=passphrase,
        artifact=artifact,
        overwrite=overwrite,
    )


async def restore_bytes(
    store: _StoreArg,
    id: _BackupId,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    artifact: str = "data",
) -> builtins.bytes:
    """:func:`dbseal.restore_bytes` in a worker thread."""
    return await asyncio.to_thread(
        _dbseal.restore_bytes,
        store,
        id,
        identity=identity,
        passphrase=passphrase,
        artifact=artifact,
    )


async def list_backups(store: Store, datastore: Optional[str] = None) -> list[Manifest]:
    """``store.list(datastore)`` in a worker thread."""
    return await asyncio.to_thread(store.list, datastore)


async def manifest(store: Store, id: _BackupId) -> Manifest:
    """``store.manifest(id)`` in a worker thread."""
    return await asyncio.to_thread(store.manifest, id)
