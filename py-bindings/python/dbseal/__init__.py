"""dbseal: sealed, verifiable backups of PostgreSQL, TimescaleDB, Neo4j and Redis.

Every backup is the database's own backup stream, compressed (zstd), encrypted (age),
checksummed (SHA-256), stored in object storage and described by a manifest. This
package runs the same Rust library as the ``dbseal`` command-line tool.

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

Blocking calls release the GIL and can be interrupted with Ctrl-C; ``dbseal.aio`` has
the same functions as coroutines. Errors are subclasses of :class:`DbsealError`.
"""

from ._dbseal import (
    Artifact as Artifact,
    ConfigError as ConfigError,
    ConnectionError as ConnectionError,
    Contents as Contents,
    DbsealConnectionError as DbsealConnectionError,
    DbsealError as DbsealError,
    DecryptionError as DecryptionError,
    Identity as Identity,
    LevelReport as LevelReport,
    Manifest as Manifest,
    NotFoundError as NotFoundError,
    RefusedError as RefusedError,
    RestoreReport as RestoreReport,
    Store as Store,
    VerificationError as VerificationError,
    VerifyReport as VerifyReport,
    VersionMismatchError as VersionMismatchError,
    __version__ as __version__,
    backup_bytes as backup_bytes,
    backup_command as backup_command,
    backup_file as backup_file,
    backup_neo4j as backup_neo4j,
    backup_postgres as backup_postgres,
    backup_redis as backup_redis,
    backup_timescale as backup_timescale,
    generate_identity as generate_identity,
    restore as restore,
    restore_bytes as restore_bytes,
    restore_to_file as restore_to_file,
    verify as verify,
)

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
