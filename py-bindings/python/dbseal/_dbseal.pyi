"""Type stubs of the extension module ``dbseal._dbseal`` (re-exported by ``dbseal``)."""

import builtins
import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union, final

__version__: str
__all__ = [
    "Artifact",
    "ConfigError",
    "ConnectionError",
    "Contents",
    "DbsealConnectionError",
    "DbsealError",
    "DecryptionError",
    "Identity",
    "LevelReport",
    "Manifest",
    "NotFoundError",
    "RefusedError",
    "RestoreReport",
    "Store",
    "VerificationError",
    "VerifyReport",
    "VersionMismatchError",
    "__version__",
    "backup_bytes",
    "backup_command",
    "backup_file",
    "backup_neo4j",
    "backup_postgres",
    "backup_redis",
    "backup_timescale",
    "generate_identity",
    "restore",
    "restore_bytes",
    "restore_to_file",
    "verify",
]

_Path = Union[str, "os.PathLike[str]"]
_Recipient = Union[str, "Identity"]
_Recipients = Union[_Recipient, Sequence[_Recipient]]
_IdentityArg = Union["Identity", _Path]
_Identities = Union[_IdentityArg, Sequence[_IdentityArg]]
_StoreArg = Union["Store", _Path]
_BackupId = Union[str, "Manifest"]
_Level = Union[int, str]

class DbsealError(Exception):
    """Base class of every error dbseal raises."""

    kind: str

class ConfigError(DbsealError, ValueError):
    """Invalid arguments, configuration, keys, URLs or options."""

class NotFoundError(DbsealError):
    """The backup, manifest or object does not exist."""

class ConnectionError(DbsealError, builtins.ConnectionError):
    """A server or the store could not be reached, or refused the credentials."""

DbsealConnectionError = ConnectionError

class VerificationError(DbsealError):
    """An artifact failed verification: corrupted, truncated, tampered; contents differ."""

class DecryptionError(DbsealError):
    """The artifact could not be decrypted with the given identity or passphrase."""

class VersionMismatchError(DbsealError):
    """Versions do not fit (manifest format, client tools, extension versions)."""

class RefusedError(DbsealError):
    """The target refused the operation (not empty, production, manifest exists)."""

@final
class Store:
    """A store of backups: a path, ``file://``, ``memory://``, ``s3://``, ``gs://``, ``az://``."""

    def __new__(cls, url: _Path, /, **options: Union[str, bool, int]) -> "Store": ...
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

@final
class Contents:
    """Facts read from the native stream and named groups of counts."""

    @property
    def facts(self) -> dict[str, str]: ...
    @property
    def counts(self) -> dict[str, dict[str, int]]: ...
    def group(self, name: str) -> dict[str, int]: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class Artifact:
    """One stored object of a backup."""

    @property
    def name(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def stored_size(self) -> int: ...
    @property
    def stored_sha256(self) -> str: ...
    @property
    def plaintext_size(self) -> int: ...
    @property
    def plaintext_sha256(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class Manifest:
    """The manifest of one backup."""

    @property
    def backup_id(self) -> str: ...
    @property
    def datastore(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def format_version(self) -> str: ...
    @property
    def started_at(self) -> datetime.datetime: ...
    @property
    def finished_at(self) -> datetime.datetime: ...
    @property
    def tool_version(self) -> str: ...
    @property
    def source(self) -> dict[str, Any]: ...
    @property
    def artifact(self) -> Artifact: ...
    @property
    def attachments(self) -> list[Artifact]: ...
    @property
    def transforms(self) -> list[dict[str, Any]]: ...
    @property
    def recipients(self) -> list[str]: ...
    @property
    def contents(self) -> Contents: ...
    @property
    def parent(self) -> Optional[str]: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def key(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __hash__(self) -> int: ...

@final
class LevelReport:
    """What one verification level checked."""

    @property
    def level(self) -> str: ...
    @property
    def level_number(self) -> int: ...
    @property
    def checks(self) -> list[str]: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class VerifyReport:
    """The result of a successful verification."""

    @property
    def backup_id(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def level(self) -> str: ...
    @property
    def level_number(self) -> int: ...
    @property
    def reports(self) -> list[LevelReport]: ...
    @property
    def checks(self) -> list[str]: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class RestoreReport:
    """The result of a successful restore."""

    @property
    def backup_id(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def bytes(self) -> int: ...
    @property
    def summary(self) -> list[str]: ...
    def to_dict(self) -> dict[str, Any]: ...

def generate_identity() -> Identity: ...
def backup_command(
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
) -> Manifest: ...
def backup_bytes(
    data: bytes,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    format: str = "raw",
) -> Manifest: ...
def backup_file(
    path: _Path,
    store: _StoreArg,
    *,
    datastore: str,
    recipients: Optional[_Recipients] = None,
    passphrase: Optional[str] = None,
    zstd_level: int = 3,
    labels: Optional[Mapping[str, str]] = None,
    format: str = "raw",
) -> Manifest: ...
def backup_postgres(
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
) -> Manifest: ...
def backup_timescale(
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
) -> Manifest: ...
def backup_redis(
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
) -> Manifest: ...
def backup_neo4j(
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
) -> Manifest: ...
def verify(
    store: _StoreArg,
    id: _BackupId,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    level: Optional[_Level] = None,
    restore_to: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    database: Optional[str] = None,
    pg_bin_dir: Optional[_Path] = None,
) -> VerifyReport: ...
def restore(
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
) -> RestoreReport: ...
def restore_to_file(
    store: _StoreArg,
    id: _BackupId,
    path: _Path,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    artifact: str = "data",
    overwrite: bool = False,
) -> RestoreReport: ...
def restore_bytes(
    store: _StoreArg,
    id: _BackupId,
    *,
    identity: Optional[_Identities] = None,
    passphrase: Optional[str] = None,
    artifact: str = "data",
) -> builtins.bytes: ...
