"""Type stubs of the extension module ``dbseal._dbseal`` (re-exported by ``dbseal``)."""

import builtins
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union, final

from ._types import Manifest, RestoreReport, VerifyReport

__version__: str
__all__ = [
    "Identity",
    "Store",
    "__version__",
    "backup",
    "backup_bytes",
    "backup_command",
    "backup_datastores",
    "backup_file",
    "config_check",
    "drill",
    "drivers",
    "generate_identity",
    "keygen",
    "keywords",
    "kinds",
    "list_backups",
    "prune",
    "restore",
    "restore_bytes",
    "restore_set",
    "restore_to_file",
    "show",
    "status",
    "verify",
    "verify_latest",
    "wal_fetch",
    "wal_push",
    "wal_verify",
]

_Path = Union[str, "os.PathLike[str]"]
_Recipient = Union[str, "Identity"]
_Recipients = Union[_Recipient, Sequence[_Recipient]]
_IdentityArg = Union["Identity", _Path]
_Identities = Union[_IdentityArg, Sequence[_IdentityArg]]
_StoreArg = Union["Store", _Path]
_BackupId = Union[str, "Manifest"]
_Level = Union[int, str]
_Labels = Union[Mapping[str, str], Sequence[str]]
_Names = Union[str, Sequence[str]]

@final
class Store:
    """A store of backups: a path, ``file://``, ``memory://``, ``s3://``, ``gs://``, ``az://``."""

    def __new__(
        cls,
        url: _Path,
        /,
        *,
        signing_key: Optional[_Path] = None,
        trusted_signers: Optional[Sequence[str]] = None,
        trusted_verifiers: Optional[Sequence[str]] = None,
        allow_unsigned: bool = False,
        **options: Union[str, bool, int],
    ) -> "Store": ...
    @property
    def url(self) -> str: ...
    def list(self, datastore: Optional[str] = None) -> list["Manifest"]: ...
    def manifest(self, id: _BackupId) -> "Manifest": ...
    def latest(self, datastore: Optional[str] = None) -> Optional["Manifest"]: ...

@final
class Identity:
    """A secret age identity; ``str``/``repr`` show only its recipient."""

    @staticmethod
    def from_file(path: _Path) -> "Identity": ...
    @property
    def recipient(self) -> str: ...
    @property
    def recipients(self) -> list[str]: ...
    @property
    def source(self) -> str: ...
    def save(self, path: _Path) -> None: ...

def kinds() -> list[str]: ...
def drivers() -> list[dict[str, Any]]: ...
def keywords() -> dict[str, list[dict[str, Any]]]: ...
def generate_identity() -> Identity: ...
def keygen(output: _Path) -> dict[str, Any]: ...
def backup(
    kind: str,
    url: Optional[str] = None,
    store: Optional[_StoreArg] = None,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    passphrase_file: Optional[_Path] = None,
    zstd_level: Optional[int] = None,
    zstd_workers: Optional[int] = None,
    labels: Optional[_Labels] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    username: Optional[str] = None,
    config: Optional[_Path] = None,
    **options: Any,
) -> Manifest: ...
def backup_command(
    argv: Sequence[str],
    store: Optional[_StoreArg] = None,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    passphrase_file: Optional[_Path] = None,
    zstd_level: Optional[int] = None,
    zstd_workers: Optional[int] = None,
    labels: Optional[_Labels] = None,
    env: Optional[Mapping[str, str]] = None,
    format: str = "raw",
    config: Optional[_Path] = None,
) -> Manifest: ...
def backup_bytes(
    data: builtins.bytes,
    store: Optional[_StoreArg] = None,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    passphrase_file: Optional[_Path] = None,
    zstd_level: Optional[int] = None,
    zstd_workers: Optional[int] = None,
    labels: Optional[_Labels] = None,
    format: str = "raw",
    config: Optional[_Path] = None,
) -> Manifest: ...
def backup_file(
    path: _Path,
    store: Optional[_StoreArg] = None,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    passphrase_file: Optional[_Path] = None,
    zstd_level: Optional[int] = None,
    zstd_workers: Optional[int] = None,
    labels: Optional[_Labels] = None,
    format: str = "raw",
    config: Optional[_Path] = None,
) -> Manifest: ...
def backup_datastores(
    store: Optional[_StoreArg] = None,
    *,
    recipients: Optional[_Recipients] = None,
    config: Optional[_Path] = None,
    datastore: Optional[_Names] = ...,
    all: bool = ...,
    jobs: int = ...,
    passphrase_file: Optional[_Path] = ...,
    zstd_level: Optional[int] = ...,
    zstd_workers: Optional[int] = ...,
    label: Optional[_Names] = ...,
) -> Union[Manifest, dict[str, Any]]: ...
def restore(
    store: Optional[_StoreArg],
    id: _BackupId,
    target_url: Optional[str] = None,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    passphrase_file: Optional[_Path] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    config: Optional[_Path] = None,
    datastore: Optional[str] = ...,
    confirm_production: Optional[_Names] = ...,
    no_safety_backup: bool = ...,
    to_stdout: bool = ...,
    output: Optional[_Path] = ...,
    dry_run: bool = ...,
    url: Optional[str] = ...,
    create_db: bool = ...,
    replace: bool = ...,
    schema: Optional[_Names] = ...,
    table: Optional[_Names] = ...,
    no_owner: bool = ...,
    role: Optional[str] = ...,
    pg_bin_dir: Optional[_Path] = ...,
    allow_version_mismatch: bool = ...,
    db: Optional[Union[int, str, Sequence[Union[int, str]]]] = ...,
    match: Optional[_Names] = ...,
    to_rdb: Optional[_Path] = ...,
    database: Optional[str] = ...,
    neo4j_admin: Optional[_Path] = ...,
    pgdata: Optional[_Path] = ...,
    target_time: Optional[str] = ...,
    target_lsn: Optional[str] = ...,
    target_name: Optional[str] = ...,
    latest: bool = ...,
    target_immediate: bool = ...,
    target_action: Optional[str] = ...,
    target_timeline: Optional[str] = ...,
    archive_to: Optional[str] = ...,
    dbseal_bin: Optional[_Path] = ...,
) -> RestoreReport: ...
def restore_set(
    store: Optional[_StoreArg],
    set_id: str,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    passphrase_file: Optional[_Path] = None,
    config: Optional[_Path] = None,
    confirm_production: Optional[_Names] = ...,
    no_safety_backup: bool = ...,
    dry_run: bool = ...,
    replace: bool = ...,
    create_db: bool = ...,
) -> dict[str, Any]: ...
def restore_to_file(
    store: Optional[_StoreArg],
    id: _BackupId,
    path: _Path,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    artifact: str = "data",
    overwrite: bool = False,
) -> RestoreReport: ...
def restore_bytes(
    store: Optional[_StoreArg],
    id: _BackupId,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    artifact: str = "data",
) -> builtins.bytes: ...
def verify(
    store: Optional[_StoreArg],
    id: _BackupId,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    level: Optional[_Level] = None,
    restore_to: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    database: Optional[str] = None,
    config: Optional[_Path] = None,
    passphrase_file: Optional[_Path] = ...,
    no_record: bool = ...,
) -> VerifyReport: ...
def verify_latest(
    store: Optional[_StoreArg] = None,
    *,
    datastores: Optional[Sequence[str]] = None,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    level: Optional[_Level] = None,
    restore_to: Optional[str] = None,
    config: Optional[_Path] = None,
    datastore: Optional[str] = ...,
    passphrase_file: Optional[_Path] = ...,
    no_record: bool = ...,
) -> list[dict[str, Any]]: ...
def list_backups(
    store: Optional[_StoreArg] = None,
    datastore: Optional[str] = None,
    *,
    config: Optional[_Path] = None,
) -> list[Manifest]: ...
def show(store: Optional[_StoreArg], id: _BackupId, *, config: Optional[_Path] = None) -> Manifest: ...
def config_check(config: Optional[_Path] = None) -> dict[str, Any]: ...
def prune(
    store: Optional[_StoreArg] = None,
    *,
    config: Optional[_Path] = None,
    datastore: Optional[_Names] = ...,
    keep_last: Optional[int] = ...,
    keep_hourly: Optional[int] = ...,
    keep_daily: Optional[int] = ...,
    keep_weekly: Optional[int] = ...,
    keep_monthly: Optional[int] = ...,
    keep_yearly: Optional[int] = ...,
    keep_within: Optional[str] = ...,
    debris_grace: Optional[str] = ...,
    dry_run: bool = ...,
    debris: bool = ...,
    force: bool = ...,
) -> dict[str, Any]: ...
def drill(
    store: Optional[_StoreArg] = None,
    *,
    config: Optional[_Path] = None,
    datastore: Optional[_Names] = ...,
    all: bool = ...,
    restore_to: Optional[str] = ...,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    passphrase_file: Optional[_Path] = ...,
    metrics_file: Optional[_Path] = ...,
    report: Optional[_Path] = ...,
) -> list[dict[str, Any]]: ...
def status(
    store: Optional[_StoreArg] = None,
    *,
    config: Optional[_Path] = None,
    max_age: Optional[str] = ...,
    datastore: Optional[_Names] = ...,
    metrics_file: Optional[_Path] = ...,
    window: Optional[str] = ...,
) -> dict[str, Any]: ...
def wal_push(
    path: _Path,
    store: Optional[_StoreArg] = None,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    zstd_level: int = 3,
    concurrency: Optional[int] = None,
    env_file: Optional[_Path] = ...,
) -> dict[str, Any]: ...
def wal_fetch(
    file: str,
    path: _Path,
    store: Optional[_StoreArg] = None,
    *,
    datastore: str,
    identity: Optional[_Identities] = None,
    system_id: Optional[int] = None,
    fail_on_gap: bool = False,
    passphrase_file: Optional[_Path] = ...,
    errors_as_missing: bool = ...,
    concurrency: Optional[int] = None,
    env_file: Optional[_Path] = ...,
) -> dict[str, Any]: ...
def wal_verify(
    store: Optional[_StoreArg] = None,
    *,
    datastore: str,
    identity: Optional[_Identities] = None,
    level: Optional[str] = None,
    passphrase_file: Optional[_Path] = ...,
    env_file: Optional[_Path] = ...,
) -> dict[str, Any]: ...
