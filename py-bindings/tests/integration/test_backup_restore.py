"""Backup → verify (every level) → restore round trips of every database dbseal supports,
against the real test servers, through the Python API and its pytest plugin.

This is the suite the runbooks point to: teams copy these tests to prove their own test
databases round-trip with the engine their production backups use.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import dbseal
import dbseal.aio
from dbseal.pytest_plugin import RoundTrip, assert_round_trip

from ..conftest import Bolt, Postgres, fill_graph, fill_redis, redis_client, redis_dbsizes, timescale_installed, unique


# --- PostgreSQL ------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_round_trip_with_the_plugin(
    dbseal_round_trip: Any, pg: Postgres, pg_db: str, pg_empty_name: str
) -> None:
    """The plugin's helper: backup, verify at levels 1-3 (scratch database), restore into
    a new database, and the restored database holds the same rows."""
    before = set(pg.databases())
    result: RoundTrip = dbseal_round_trip(
        pg.url_of(pg_db),
        password=pg.password,
        restore_url=pg.url_of(pg_empty_name),
        restore_options={"create_db": True},
    )
    m = result.manifest
    assert m.kind == "postgres"
    assert m.artifact.format == "pgdump"
    assert m.contents.group("tables") == {"public.orders": 250, "public.users": 3, "sales.items": 10}
    assert m.source.get("database") == pg_db
    assert "dbseal-test-pg" not in m.to_json()
    assert [r.level for r in result.verify_report.reports] == ["stored", "content", "restore"]
    assert pg.row_counts(pg_empty_name) == pg.row_counts(pg_db)
    assert pg.query(pg_empty_name, "SELECT name FROM users ORDER BY id") == [("ada",), ("grace",), ("edsger",)]
    # Level-3 verification dropped its scratch database.
    assert set(pg.databases()) - before == {pg_empty_name}


@pytest.mark.postgres
def test_postgres_restore_refuses_non_empty_target_then_replaces(
    dbseal_store: dbseal.Store, dbseal_identity: dbseal.Identity, pg: Postgres, pg_db: str
) -> None:
    m = dbseal.backup_postgres(
        pg.url_of(pg_db), dbseal_store, datastore="app", recipients=[dbseal_identity], password=pg.password
    )
    pg.execute(pg_db, "DELETE FROM orders WHERE id > 10")
    with pytest.raises(dbseal.RefusedError) as err:
        dbseal.restore(dbseal_store, m, pg.url_of(pg_db), identity=dbseal_identity, password=pg.password)
    assert err.value.kind == "refused"
    assert pg.row_counts(pg_db)["public.orders"] == 10  # untouched
    report = dbseal.restore(
        dbseal_store, m, pg.url_of(pg_db), identity=dbseal_identity, password=pg.password, replace=True
    )
    assert report.backup_id == m.backup_id
    assert pg.row_counts(pg_db)["public.orders"] == 250


@pytest.mark.postgres
def test_postgres_selective_backup_and_password_in_url(
    dbseal_store: dbseal.Store, dbseal_identity: dbseal.Identity, pg: Postgres, pg_db: str, pg_empty_name: str
) -> None:
    m = dbseal.backup_postgres(
        pg.url_with_password(pg_db),
        dbseal_store,
        datastore="sales",
        recipients=dbseal_identity.recipient,
        schema=["sales"],
        labels={"team": "billing"},
    )
    assert m.contents.group("tables") == {"sales.items": 10}
    assert m.labels == {"team": "billing"}
    assert pg.password not in m.to_json()
    assert pg.password not in repr(m)
    dbseal.restore(
        dbseal_store, m, pg.url_with_password(pg_empty_name), identity=dbseal_identity, create_db=True
    )
    assert pg.row_counts(pg_empty_name) == {"sales.items": 10}


@pytest.mark.postgres
def test_postgres_archive_escape_hatch(
    dbseal_store: dbseal.Store, dbseal_identity: dbseal.Identity, pg: Postgres, pg_db: str, tmp_path: Path
) -> None:
    """restore_to_file yields the plain pg_dump archive, whose digest the manifest records."""
    m = dbseal.backup_postgres(
        pg.url_of(pg_db), dbseal_store, datastore="app", recipients=[dbseal_identity], password=pg.password
    )
    out = tmp_path / "app.pgdump"
    report = dbseal.restore_to_file(dbseal_store, m.backup_id, out, identity=dbseal_identity)
    data = out.read_bytes()
    assert data.startswith(b"PGDMP")
    assert report.bytes == len(data) == m.artifact.plaintext_size
    assert hashlib.sha256(data).hexdigest() == m.artifact.plaintext_sha256


# --- TimescaleDB -----------------------------------------------------------------------


@pytest.mark.timescale
def test_timescale_round_trip(
    dbseal_round_trip: Any, pg: Postgres, pg_empty_name: str
) -> None:
    if not timescale_installed():
        pytest.skip("TimescaleDB is not installed on the PostgreSQL test server (timescaledb.control not found)")
    src = unique("pyt_ts")
    pg.create_database(src)
    try:
        pg.execute(
            src,
            """
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            CREATE TABLE metrics (time timestamptz NOT NULL, device int, value double precision);
            SELECT create_hypertable('metrics', 'time', chunk_time_interval => interval '1 day');
            INSERT INTO metrics SELECT t, (extract(epoch FROM t)::int % 4), random()
              FROM generate_series(now() - interval '5 days', now(), interval '10 minutes') t;
            """,
        )
        result: RoundTrip = dbseal_round_trip(
            pg.url_of(src),
            kind="timescale",
            password=pg.password,
            restore_url=pg.url_of(pg_empty_name),
            restore_options={"create_db": True},
        )
        assert result.manifest.kind == "timescale"
        assert pg.query(pg_empty_name, "SELECT count(*) FROM metrics") == pg.query(src, "SELECT count(*) FROM metrics")
    finally:
        pg.drop_database(src)


# --- Redis -----------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_round_trip_with_the_plugin(dbseal_round_trip: Any, redis_url: str, redis8_url: str) -> None:
    """A Redis 7 server backed up over the replication protocol, verified (level 3 into
    scratch databases of the same server) and restored into the Redis 8 server."""
    sizes = fill_redis(redis_url)
    result: RoundTrip = dbseal_round_trip(redis_url, restore_url=redis8_url)
    keys = result.manifest.contents.group("keys")
    assert sum(v for k, v in keys.items() if k.startswith("db0.")) == sizes["db0"]
    assert sum(v for k, v in keys.items() if k.startswith("db1.")) == sizes["db1"]
    assert result.manifest.artifact.format == "rdb"
    target = redis_client(redis8_url)
    assert target.get("str:7") == b"value-7"
    assert target.lrange("list:1", 0, 2) == [b"0", b"1", b"2"]
    assert 0 < target.ttl("ttl:1") <= 3600
    assert redis_client(redis8_url, 1).get("db1:only") == b"here"
    assert redis_dbsizes(redis8_url) == {0: sizes["db0"], 1: sizes["db1"]}
    # The scratch databases of level 3 were emptied again.
    assert set(redis_dbsizes(redis_url)) == {0, 1}


@pytest.mark.redis
def test_redis_restore_refuses_non_empty_target_and_selects_databases(
    dbseal_store: dbseal.Store, dbseal_identity: dbseal.Identity, redis_url: str, redis8_url: str
) -> None:
    fill_redis(redis_url)
    m = dbseal.backup_redis(redis_url, dbseal_store, datastore="cache", recipients=[dbseal_identity])
    redis_client(redis8_url).set("precious", "1")
    with pytest.raises(dbseal.RefusedError):
        dbseal.restore(dbseal_store, m, redis8_url, identity=dbseal_identity)
    assert redis_client(redis8_url).get("precious") == b"1"
    assert redis_dbsizes(redis8_url) == {0: 1}
    # Only database 1, into database 3; only keys matching db1:*.
    dbseal.restore(dbseal_store, m, redis8_url, identity=dbseal_identity, db=["1:3"], match=["db1:*"])
    assert redis_dbsizes(redis8_url) == {0: 1, 3: 2}


# --- Neo4j (Bolt) ----------------------------------------------------------------------


@pytest.mark.neo4j
def test_neo4j_round_trip_with_the_plugin(dbseal_round_trip: Any, bolt: Bolt, bolt_db_factory: Any) -> None:
    """A graph exported over Bolt, verified by a restore into an empty scratch database
    (ArcadeDB has no CREATE DATABASE), and restored into another database."""
    src, scratch, dst = bolt_db_factory("pyt_src"), bolt_db_factory("pyt_scr"), bolt_db_factory("pyt_dst")
    fill_graph(bolt, src)
    result: RoundTrip = dbseal_round_trip(
        bolt.url,
        user=bolt.user,
        password=bolt.password,
        database=src,
        verify_database=scratch,
        restore_url=bolt.url,
        restore_database=dst,
    )
    m = result.manifest
    assert m.kind == "neo4j"
    assert m.contents.group("labels") == {"City": 5, "Person": 40}
    assert m.contents.group("relationship_types") == {"KNOWS": 39, "LIVES_IN": 40}
    assert bolt.password not in m.to_json()
    rows = bolt.run(dst, "MATCH (p:Person {id: 3})-[:LIVES_IN]->(c:City) RETURN p.name AS p, c.name AS c")
    assert rows == [{"p": "p3", "c": "c4"}]


# --- Streams of commands, bytes, files; the S3 store; asyncio ----------------------------


def test_command_round_trip_through_pg_dump_format(
    dbseal_store: dbseal.Store, dbseal_identity: dbseal.Identity, pg: Postgres, pg_db: str
) -> None:
    """A command's output declared as a pg_dump archive is parsed like a postgres backup
    (content verification counts its rows); the password travels in env, not argv."""
    pg_dump = str(Path(os.environ.get("DBSEAL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")) / "pg_dump")
    m = dbseal.backup_command(
        [pg_dump, "-Fc", "-Z0", "--no-password", pg.url_of(pg_db)],
        dbseal_store,
        datastore="manual",
        recipients=[dbseal_identity],
        env={"PGPASSWORD": pg.password},
        format="pgdump",
    )
    assert m.kind == "command"
    assert m.contents.group("tables")["public.orders"] == 250
    report = dbseal.verify(dbseal_store, m, identity=dbseal_identity)
    assert report.level == "content"


def test_file_round_trip_with_passphrase(dbseal_store: dbseal.Store, tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(300_000) + b"tail")
    m = dbseal.backup_file(src, dbseal_store, datastore="files", passphrase="correct horse battery staple")
    assert m.kind == "file"
    assert m.recipients == []
    assert m.transforms[1] == {"type": "age", "recipients": [], "passphrase": True}
    assert dbseal.verify(dbseal_store, m, passphrase="correct horse battery staple").level == "content"
    out = tmp_path / "restored.bin"
    dbseal.restore_to_file(dbseal_store, m, out, passphrase="correct horse battery staple")
    assert out.read_bytes() == src.read_bytes()


def test_bytes_round_trip_on_s3(s3_store: dbseal.Store, dbseal_identity: dbseal.Identity) -> None:
    payload = b"sealed " * 100_000
    m = dbseal.backup_bytes(payload, s3_store, datastore="blobs", recipients=[dbseal_identity], zstd_level=1)
    assert [b.backup_id for b in s3_store.list("blobs")] == [m.backup_id]
    assert s3_store.manifest(m.backup_id) == m
    assert dbseal.verify(s3_store, m, identity=dbseal_identity, level="content").level_number == 2
    assert dbseal.restore_bytes(s3_store, m, identity=dbseal_identity) == payload
    assert "dbseal-test-secret" not in repr(s3_store)


def test_asyncio_round_trip(tmp_path: Path) -> None:
    async def main() -> bytes:
        store = dbseal.Store(tmp_path / "store")
        identity = dbseal.generate_identity()
        ms = await asyncio.gather(
            *[
                dbseal.aio.backup_bytes(f"part {i}".encode(), store, datastore=f"ds{i}", recipients=identity)
                for i in range(3)
            ]
        )
        assert len(await dbseal.aio.list_backups(store)) == 3
        report = await dbseal.aio.verify(store, ms[1], identity=identity)
        assert report.level == "content"
        return await dbseal.aio.restore_bytes(store, ms[1].backup_id, identity=identity)

    assert asyncio.run(main()) == b"part 1"


@pytest.mark.postgres
def test_round_trip_helper_fails_when_the_restore_differs(
    dbseal_store: dbseal.Store, dbseal_identity: dbseal.Identity, pg: Postgres, pg_db: str, pg_empty_name: str
) -> None:
    """The helper is a real check: a restore that leaves tables out fails it."""
    with pytest.raises(AssertionError, match="differs from backup"):
        assert_round_trip(
            pg.url_of(pg_db),
            dbseal_store,
            dbseal_identity,
            password=pg.password,
            verify_level="content",
            restore_url=pg.url_of(pg_empty_name),
            restore_options={"create_db": True, "tables": ["users"]},
        )
    assert pg.row_counts(pg_empty_name) == {"public.users": 3}


@pytest.mark.neo4j
def test_neo4j_level3_without_create_database_says_what_to_do(
    dbseal_store: dbseal.Store, dbseal_identity: dbseal.Identity, bolt: Bolt, bolt_db: str
) -> None:
    fill_graph(bolt, bolt_db)
    m = dbseal.backup_neo4j(
        bolt.url, dbseal_store, datastore="g", recipients=dbseal_identity,
        user=bolt.user, password=bolt.password, database=bolt_db,
    )
    with pytest.raises(dbseal.DbsealError, match="scratch database") as err:
        dbseal.verify(dbseal_store, m, identity=dbseal_identity, restore_to=bolt.url, user=bolt.user, password=bolt.password)
    assert bolt.password not in str(err.value)
