"""Shared fixtures of dbseal's Python test suite.

The suite runs against real servers started by ``scripts/services.sh`` (which writes the
``DBSEAL_TEST_*`` variables read here). A missing variable FAILS the test with a
message saying how to run the suite; nothing is skipped silently. TimescaleDB is the
one exception: its tests skip, saying so, when the extension is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dbseal

RUN_HINT = (
    "run the suite through scripts/test.sh (or scripts/test-python.sh after "
    "`scripts/services.sh start DIR` and `source DIR/env.sh`), which starts the test servers"
)


@pytest.fixture(scope="session", autouse=True)
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This test host's signing key, as an operator sets it: ``DBSEAL_SIGNING_KEY``. Every
    store the suite opens signs what it writes with it and trusts what it signed (the
    tests of ``Store(signing_key=..., trusted_signers=...)`` pass their own)."""
    keys = dbseal.keygen(tmp_path_factory.mktemp("signing") / "identity.txt")
    before = os.environ.get("DBSEAL_SIGNING_KEY")
    os.environ["DBSEAL_SIGNING_KEY"] = str(keys["signing_key_file"])
    yield str(keys["signing_key_file"])
    if before is None:
        os.environ.pop("DBSEAL_SIGNING_KEY", None)
    else:
        os.environ["DBSEAL_SIGNING_KEY"] = before


def sign(root: Path, key: str) -> None:
    """Signs the store object `key` (under the local store `root`) with this test host's
    signing key, with minisign itself, as dbseal signs (trusted comment `file:KEY`)."""
    subprocess.run(
        ["minisign", "-S", "-s", os.environ["DBSEAL_SIGNING_KEY"], "-m", str(root / key), "-t", f"file:{key}"],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )


def env(name: str) -> str:
    """The value of a DBSEAL_TEST_* variable; fails the test when it is missing."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: {RUN_HINT}", pytrace=False)
    return value


def unique(prefix: str) -> str:
    """A fresh lowercase name for a database or datastore."""
    return f"{prefix}_{secrets.token_hex(4)}"


# --- PostgreSQL ------------------------------------------------------------------------


class Postgres:
    """The PostgreSQL test server: URLs per database, and SQL through psycopg2."""

    def __init__(self) -> None:
        self.url = env("DBSEAL_TEST_PG_URL")  # postgres://postgres@127.0.0.1:PORT/postgres
        self.password = env("DBSEAL_TEST_PG_PASSWORD")
        self.base = self.url.rsplit("/", 1)[0]

    def url_of(self, database: str) -> str:
        return f"{self.base}/{database}"

    def url_with_password(self, database: str) -> str:
        scheme, rest = self.url_of(database).split("://", 1)
        user, host = rest.split("@", 1)
        return f"{scheme}://{user}:{self.password}@{host}"

    def connect(self, database: str = "postgres") -> Any:
        import psycopg2

        conn = psycopg2.connect(self.url_of(database), password=self.password)
        conn.autocommit = True
        return conn

    def execute(self, database: str, sql: str) -> None:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def query(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def create_database(self, name: str) -> None:
        self.execute("postgres", f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self.execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def databases(self) -> set[str]:
        return {r[0] for r in self.query("postgres", "SELECT datname FROM pg_database")}

    def row_counts(self, database: str) -> dict[str, int]:
        tables = self.query(
            database,
            "SELECT schemaname || '.' || tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        return {t: self.query(database, f"SELECT count(*) FROM {t}")[0][0] for (t,) in tables}


@pytest.fixture(scope="session")
def pg() -> Postgres:
    return Postgres()


@pytest.fixture
def pg_db(pg: Postgres) -> Iterator[str]:
    """A fresh database with a small schema and data: public.users (3 rows),
    public.orders (250 rows), sales.items (10 rows)."""
    name = unique("pyt_src")
    pg.create_database(name)
    pg.execute(
        name,
        """
        CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
        INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com'),
            ('grace', 'grace@example.com'), ('edsger', NULL);
        CREATE TABLE orders (id bigserial PRIMARY KEY, user_id int REFERENCES users(id),
            total numeric(10, 2), placed_at timestamptz DEFAULT now(), note jsonb);
        INSERT INTO orders (user_id, total, note)
            SELECT 1 + (g % 3), g * 1.5, jsonb_build_object('n', g) FROM generate_series(1, 250) g;
        CREATE SCHEMA sales;
        CREATE TABLE sales.items (sku text PRIMARY KEY, qty int);
        INSERT INTO sales.items SELECT 'sku-' || g, g FROM generate_series(1, 10) g;
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
        """,
    )
    yield name
    pg.drop_database(name)


@pytest.fixture
def pg_empty_name(pg: Postgres) -> Iterator[str]:
    """A database name that does not exist yet (dropped at the end if it was created)."""
    name = unique("pyt_dst")
    yield name
    pg.drop_database(name)


# --- Redis -----------------------------------------------------------------------------


def redis_client(url: str, db: int = 0) -> Any:
    import redis

    return redis.Redis.from_url(url, db=db)


def fill_redis(url: str) -> dict[str, int]:
    """Flushes the server and writes keys of every basic type into db 0 and db 1."""
    r = redis_client(url)
    r.flushall()
    pipe = r.pipeline()
    for i in range(200):
        pipe.set(f"str:{i}", f"value-{i}")
    pipe.set("ttl:1", "x", ex=3600)
    pipe.rpush("list:1", *[str(i) for i in range(50)])
    pipe.hset("hash:1", mapping={f"f{i}": i for i in range(20)})
    pipe.sadd("set:1", *[f"m{i}" for i in range(30)])
    pipe.zadd("zset:1", {f"z{i}": i for i in range(25)})
    pipe.xadd("stream:1", {"a": "1"})
    pipe.execute()
    r1 = redis_client(url, 1)
    r1.set("db1:only", "here")
    r1.hset("db1:hash", mapping={"a": "1"})
    return {"db0": r.dbsize(), "db1": r1.dbsize()}


def redis_dbsizes(url: str) -> dict[int, int]:
    r = redis_client(url)
    info = r.info("keyspace")
    return {int(k[2:]): int(v["keys"]) for k, v in info.items()}


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = env("DBSEAL_TEST_REDIS_URL")
    yield url
    redis_client(url).flushall()


@pytest.fixture
def redis8_url() -> Iterator[str]:
    url = env("DBSEAL_TEST_REDIS8_URL")
    redis_client(url).flushall()
    yield url
    redis_client(url).flushall()


# --- Neo4j over Bolt (ArcadeDB) --------------------------------------------------------


class Bolt:
    """The Bolt test server (ArcadeDB): databases through its HTTP API, Cypher through
    the neo4j driver."""

    def __init__(self) -> None:
        self.url = env("DBSEAL_TEST_BOLT_URL")
        self.user = env("DBSEAL_TEST_BOLT_USER")
        self.password = env("DBSEAL_TEST_BOLT_PASSWORD")
        self.http = env("DBSEAL_TEST_ARCADE_HTTP")

    def server_command(self, command: str) -> None:
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req = urllib.request.Request(
            f"{self.http}/api/v1/server",
            data=json.dumps({"command": command}).encode(),
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()

    def create_database(self, name: str) -> None:
        self.server_command(f"create database {name}")

    def drop_database(self, name: str) -> None:
        try:
            self.server_command(f"drop database {name}")
        except Exception:
            pass

    def run(self, database: str, cypher: str, **params: Any) -> list[dict[str, Any]]:
        import neo4j

        with neo4j.GraphDatabase.driver(self.url, auth=(self.user, self.password)) as driver:
            records, _, _ = driver.execute_query(cypher, params, database_=database)
            return [r.data() for r in records]


@pytest.fixture(scope="session")
def bolt() -> Bolt:
    return Bolt()


@pytest.fixture
def bolt_db(bolt: Bolt) -> Iterator[str]:
    """A fresh, empty Bolt database, dropped at the end."""
    name = unique("pyt")
    bolt.create_database(name)
    yield name
    bolt.drop_database(name)


@pytest.fixture
def bolt_db_factory(bolt: Bolt) -> Iterator[Any]:
    """Creates fresh, empty Bolt databases on demand; drops them at the end."""
    created: list[str] = []

    def make(prefix: str = "pyt") -> str:
        name = unique(prefix)
        bolt.create_database(name)
        created.append(name)
        return name

    yield make
    for name in created:
        bolt.drop_database(name)


def fill_graph(bolt: Bolt, database: str) -> None:
    bolt.run(
        database,
        "UNWIND range(1, 40) AS i CREATE (:Person {id: i, name: 'p' + toString(i), score: i * 0.5})",
    )
    bolt.run(database, "UNWIND range(1, 5) AS i CREATE (:City {id: i, name: 'c' + toString(i)})")
    bolt.run(
        database,
        "MATCH (p:Person), (c:City) WHERE p.id % 5 + 1 = c.id CREATE (p)-[:LIVES_IN {since: p.id}]->(c)",
    )
    bolt.run(
        database,
        "MATCH (a:Person), (b:Person) WHERE b.id = a.id + 1 CREATE (a)-[:KNOWS]->(b)",
    )


# --- S3 --------------------------------------------------------------------------------


@pytest.fixture
def s3_store() -> dbseal.Store:
    """A store under a fresh prefix of the S3 test bucket."""
    url = env("DBSEAL_TEST_S3_URL").rstrip("/") + "/" + unique("py")
    return dbseal.Store(
        url,
        aws_endpoint=env("DBSEAL_TEST_S3_ENDPOINT"),
        aws_allow_http=True,
        aws_region="us-east-1",
        aws_access_key_id=env("DBSEAL_TEST_S3_ACCESS_KEY"),
        aws_secret_access_key=env("DBSEAL_TEST_S3_SECRET_KEY"),
    )


# --- TimescaleDB -----------------------------------------------------------------------


def timescale_installed() -> bool:
    """Whether the PostgreSQL test server's installation has the timescaledb extension."""
    pg_bin = os.environ.get("DBSEAL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")
    pg_config = Path(pg_bin) / "pg_config"
    if not pg_config.exists():
        pg_config = Path("pg_config")
    try:
        share = subprocess.run(
            [str(pg_config), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return (Path(share) / "extension" / "timescaledb.control").exists()
