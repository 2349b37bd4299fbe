"""Error mapping (one exception class per kind of failure) and secrets that never show:
not in exception messages, tracebacks or reprs."""

from __future__ import annotations

import builtins
import json
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest

import dbseal

from .conftest import Bolt, Postgres, env, redis_client, sign, unique


def raised(fn: Callable[[], Any]) -> BaseException:
    with pytest.raises(dbseal.DbsealError) as info:
        fn()
    return info.value


def assert_no_secret(err: BaseException, *secrets: str) -> None:
    # The exception as Python shows it (the last line of a traceback), repr, str, args.
    shown = "".join(traceback.format_exception_only(type(err), err)) + repr(err) + str(err) + repr(err.args)
    for secret in secrets:
        assert secret not in shown, f"secret leaked in: {shown}"


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[dbseal.Store, dbseal.Identity, dbseal.Manifest, Path]:
    identity = dbseal.generate_identity()
    root = tmp_path / "store"
    store = dbseal.Store(root)
    m = dbseal.backup_bytes(bytes(range(256)) * 2000, store, datastore="x", recipients=identity)
    return store, identity, m, root


def test_the_hierarchy() -> None:
    classes = [
        dbseal.ConfigError,
        dbseal.NotFoundError,
        dbseal.ConnectionError,
        dbseal.VerificationError,
        dbseal.DecryptionError,
        dbseal.VersionMismatchError,
        dbseal.RefusedError,
    ]
    for cls in classes:
        assert issubclass(cls, dbseal.DbsealError) and issubclass(cls, Exception)
        assert cls.__module__ == "dbseal"
    assert issubclass(dbseal.ConfigError, ValueError)
    assert issubclass(dbseal.ConnectionError, builtins.ConnectionError)
    assert dbseal.DbsealConnectionError is dbseal.ConnectionError
    assert [c.kind for c in classes] == [
        "config",
        "not_found",
        "connection",
        "verification",
        "decryption",
        "version_mismatch",
        "refused",
    ]


def test_config_errors(sealed: tuple[dbseal.Store, dbseal.Identity, dbseal.Manifest, Path], tmp_path: Path) -> None:
    store, identity, m, _ = sealed
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: dbseal.backup_bytes(b"x", store, datastore="x", recipients=["age1nope"]), "invalid age recipient"),
        (lambda: dbseal.backup_bytes(b"x", store, datastore="x"), "no recipient given"),
        (lambda: dbseal.backup_bytes(b"x", store, datastore="x", recipients=[]), "no recipient given"),
        (
            lambda: dbseal.backup_bytes(b"x", store, datastore="x", recipients=identity, passphrase="pw"),
            "not both",
        ),
        (lambda: dbseal.backup_bytes(b"x", store, datastore="../up", recipients=identity), "invalid datastore name"),
        (lambda: dbseal.backup_bytes(b"x", store, datastore="x", recipients=identity, zstd_level=99), "zstd"),
        (lambda: dbseal.backup_bytes(b"x", store, datastore="x", recipients=identity, format="nope"), "format `nope`"),
        (lambda: dbseal.backup_command([], store, datastore="x", recipients=identity), "no command"),
        (lambda: dbseal.backup_file(tmp_path / "missing", store, datastore="x", recipients=identity), "cannot open"),
        (lambda: dbseal.Store("ftp://example.invalid/x"), "unsupported scheme"),
        (lambda: dbseal.verify(store, "not-an-id"), "not a backup id"),
        (lambda: dbseal.verify(store, m, level="content"), "identity"),
        (lambda: dbseal.restore(store, m, "postgres://127.0.0.1/x", identity=identity), "to a file"),
        (lambda: dbseal.backup_redis("redis://127.0.0.1:1", store, datastore="x", recipients=identity, mode="magic"), "mode"),
        (lambda: dbseal.backup_redis("http://127.0.0.1", store, datastore="x", recipients=identity), "redis://"),
        (lambda: dbseal.backup_neo4j("http://127.0.0.1", store, datastore="x", recipients=identity), "scheme"),
        (lambda: dbseal.backup_postgres("postgres://h/db?sslmode=bogus", store, datastore="x", recipients=identity), "sslmode"),
    ]
    for fn, needle in cases:
        err = raised(fn)
        assert isinstance(err, dbseal.ConfigError), f"{needle}: got {type(err).__name__}: {err}"
        assert isinstance(err, ValueError)
        assert err.kind == "config"
        assert needle in str(err), f"expected `{needle}` in: {err}"
    assert store.list("x") == [m]  # none of these wrote a backup


def test_a_secret_key_given_as_recipient_is_refused_without_echoing_it(tmp_path: Path) -> None:
    identity = dbseal.generate_identity()
    key = tmp_path / "key.txt"
    identity.save(key)
    secret = next(line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    err = raised(lambda: dbseal.backup_bytes(b"x", tmp_path / "s", datastore="x", recipients=[secret]))
    assert isinstance(err, dbseal.ConfigError)
    assert "secret key was given where a recipient" in str(err)
    assert_no_secret(err, secret, secret[15:40])


def test_not_found(sealed: tuple[dbseal.Store, dbseal.Identity, dbseal.Manifest, Path]) -> None:
    store, identity, _, _ = sealed
    missing = "20200101T000000Z-deadbeef"
    for fn in (
        lambda: store.manifest(missing),
        lambda: dbseal.verify(store, missing),
        lambda: dbseal.restore_bytes(store, missing, identity=identity),
    ):
        err = raised(fn)
        assert isinstance(err, dbseal.NotFoundError) and err.kind == "not_found"
        assert missing in str(err)


def test_verification_errors_name_the_backup_and_object(
    sealed: tuple[dbseal.Store, dbseal.Identity, dbseal.Manifest, Path], tmp_path: Path
) -> None:
    store, identity, m, root = sealed
    artifact = root / m.artifact.key
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    for level in ("stored", "content"):
        err = raised(lambda: dbseal.verify(store, m, identity=identity, level=level))
        assert isinstance(err, dbseal.VerificationError) and err.kind == "verification"
        assert m.backup_id in str(err) and m.artifact.key in str(err)
        assert "SHA-256" in str(err)
    out = tmp_path / "restored.bin"
    err = raised(lambda: dbseal.restore_to_file(store, m, out, identity=identity))
    assert isinstance(err, dbseal.VerificationError)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    # Truncated.
    artifact.write_bytes(bytes(data[: len(data) // 2]))
    err = raised(lambda: dbseal.verify(store, m))
    assert isinstance(err, dbseal.VerificationError) and "truncated" in str(err)
    # Missing.
    artifact.unlink()
    err = raised(lambda: dbseal.verify(store, m))
    assert isinstance(err, dbseal.VerificationError) and "missing" in str(err)


def test_decryption_errors(tmp_path: Path) -> None:
    store = dbseal.Store(tmp_path)
    identity, other = dbseal.generate_identity(), dbseal.generate_identity()
    m = dbseal.backup_bytes(b"secret data", store, datastore="x", recipients=identity)
    err = raised(lambda: dbseal.verify(store, m, identity=other))
    assert isinstance(err, dbseal.DecryptionError) and err.kind == "decryption"
    assert m.backup_id in str(err) and identity.recipient in str(err)
    p = dbseal.backup_bytes(b"secret data", store, datastore="y", passphrase="right passphrase 1")
    err = raised(lambda: dbseal.restore_bytes(store, p, passphrase="wrong passphrase 2"))
    assert isinstance(err, dbseal.DecryptionError)
    assert_no_secret(err, "right passphrase 1", "wrong passphrase 2")


def test_newer_manifest_format_is_a_version_mismatch(
    sealed: tuple[dbseal.Store, dbseal.Identity, dbseal.Manifest, Path],
) -> None:
    store, _, m, root = sealed
    path = root / m.key
    doc = json.loads(path.read_text())
    doc["format_version"] = "2.0"
    # Written and signed as a newer dbseal on this host would (the layer under the
    # signature is what is tested; an unsigned edit is refused first).
    path.write_text(json.dumps(doc))
    assert isinstance(raised(lambda: store.manifest(m.backup_id)), dbseal.VerificationError)
    sign(root, m.key)
    err = raised(lambda: store.manifest(m.backup_id))
    assert isinstance(err, dbseal.VersionMismatchError) and err.kind == "version_mismatch"
    assert "upgrade dbseal" in str(err)
    # A newer minor version with unknown fields is read, and the fields are kept.
    doc["format_version"] = "1.7"
    doc["future_field"] = {"x": 1}
    path.write_text(json.dumps(doc))
    sign(root, m.key)
    assert store.manifest(m.backup_id).to_dict()["future_field"] == {"x": 1}


def test_failed_command_is_a_dbseal_error_and_leaves_no_backup(tmp_path: Path) -> None:
    store = dbseal.Store(tmp_path)
    identity = dbseal.generate_identity()
    err = raised(
        lambda: dbseal.backup_command(
            ["sh", "-c", "echo partial; echo boom >&2; exit 3"], store, datastore="cmd", recipients=identity
        )
    )
    assert type(err) is dbseal.DbsealError and err.kind == "failure"
    assert "exited with status 3" in str(err) and "boom" in str(err)
    assert store.list() == []
    err = raised(lambda: dbseal.backup_command(["/nonexistent/tool"], store, datastore="cmd", recipients=identity))
    assert isinstance(err, dbseal.ConfigError) and "cannot start" in str(err)


def test_command_env_secrets_stay_out_of_errors(tmp_path: Path) -> None:
    err = raised(
        lambda: dbseal.backup_command(
            ["sh", "-c", 'echo "token is $API_TOKEN" >&2; exit 1'],
            tmp_path,
            datastore="cmd",
            recipients=dbseal.generate_identity(),
            env={"API_TOKEN": "tok-7f3e9a1c55"},
        )
    )
    assert "token is **REDACTED**" in str(err)
    assert_no_secret(err, "tok-7f3e9a1c55")


@pytest.mark.postgres
def test_postgres_connection_errors_hide_the_password(tmp_path: Path, pg: Postgres) -> None:
    identity = dbseal.generate_identity()
    store = dbseal.Store(tmp_path)
    secret = "s3cr3t-Pw-91x"
    # Nothing listens on port 1.
    err = raised(
        lambda: dbseal.backup_postgres(
            f"postgres://postgres:{secret}@127.0.0.1:1/postgres", store, datastore="pg", recipients=identity
        )
    )
    assert isinstance(err, dbseal.ConnectionError) and isinstance(err, builtins.ConnectionError)
    assert "127.0.0.1" in str(err)
    assert_no_secret(err, secret)
    # The server refuses a wrong password.
    err = raised(
        lambda: dbseal.backup_postgres(pg.url_of("postgres"), store, datastore="pg", recipients=identity, password=secret)
    )
    assert isinstance(err, dbseal.ConnectionError), f"{type(err).__name__}: {err}"
    assert_no_secret(err, secret)
    err = raised(
        lambda: dbseal.verify(
            store, "20200101T000000Z-deadbeef", restore_to=f"postgres://postgres:{secret}@127.0.0.1:1/x"
        )
    )
    assert_no_secret(err, secret)
    assert store.list() == []


@pytest.mark.postgres
def test_postgres_tampered_backup_leaves_no_database(tmp_path: Path, pg: Postgres, pg_db: str) -> None:
    identity = dbseal.generate_identity()
    root = tmp_path / "s"
    m = dbseal.backup_postgres(pg.url_of(pg_db), root, datastore="app", recipients=identity, password=pg.password)
    artifact = root / m.artifact.key
    data = bytearray(artifact.read_bytes())
    data[-100] ^= 0xFF
    artifact.write_bytes(bytes(data))
    target = unique("pyt_never")
    try:
        err = raised(
            lambda: dbseal.restore(
                root, m, pg.url_of(target), identity=identity, password=pg.password, create_db=True
            )
        )
        assert isinstance(err, dbseal.VerificationError), f"{type(err).__name__}: {err}"
        assert target not in pg.databases()
    finally:
        pg.drop_database(target)


@pytest.mark.redis
def test_redis_connection_errors(tmp_path: Path) -> None:
    url = env("DBSEAL_TEST_REDIS_URL")
    identity = dbseal.generate_identity()
    err = raised(lambda: dbseal.backup_redis("redis://127.0.0.1:1", tmp_path, datastore="r", recipients=identity))
    assert isinstance(err, dbseal.ConnectionError)
    # The test server has no password: AUTH with one fails, and the password stays hidden.
    secret = "redis-pw-4e1d77"
    redis_client(url).ping()
    err = raised(lambda: dbseal.backup_redis(url, tmp_path, datastore="r", recipients=identity, password=secret))
    assert isinstance(err, (dbseal.ConnectionError, dbseal.ConfigError)), f"{type(err).__name__}: {err}"
    assert_no_secret(err, secret)
    host = url.split("://", 1)[1]
    err = raised(lambda: dbseal.backup_redis(f"redis://:{secret}@{host}", tmp_path, datastore="r", recipients=identity))
    assert_no_secret(err, secret)


@pytest.mark.neo4j
def test_neo4j_wrong_password(tmp_path: Path, bolt: Bolt) -> None:
    secret = "wrong-neo-pw-31"
    err = raised(
        lambda: dbseal.backup_neo4j(
            bolt.url, tmp_path, datastore="g", recipients=dbseal.generate_identity(), user=bolt.user, password=secret
        )
    )
    assert isinstance(err, dbseal.ConnectionError), f"{type(err).__name__}: {err}"
    assert_no_secret(err, secret)


@pytest.mark.s3
def test_s3_wrong_credentials(tmp_path: Path) -> None:
    secret = "not-the-secret-key-12345"
    store = dbseal.Store(
        env("DBSEAL_TEST_S3_URL") + "/wrong",
        aws_endpoint=env("DBSEAL_TEST_S3_ENDPOINT"),
        aws_allow_http=True,
        aws_region="us-east-1",
        aws_access_key_id="nobody",
        aws_secret_access_key=secret,
    )
    assert secret not in repr(store) and "aws_secret_access_key" in repr(store)
    err = raised(lambda: store.list())
    assert isinstance(err, dbseal.ConnectionError), f"{type(err).__name__}: {err}"
    assert_no_secret(err, secret)
    err = raised(lambda: dbseal.backup_bytes(b"x", store, datastore="x", recipients=dbseal.generate_identity()))
    assert isinstance(err, dbseal.ConnectionError)
    assert_no_secret(err, secret)
