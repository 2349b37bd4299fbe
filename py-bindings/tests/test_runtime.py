"""Blocking calls release the GIL and can be interrupted with Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import dbseal

from .conftest import Postgres, unique


def test_blocking_calls_release_the_gil(tmp_path: Path) -> None:
    """While a backup waits on its command for a second, other Python threads run."""
    identity = dbseal.generate_identity()
    done = threading.Event()
    errors: list[BaseException] = []

    def backup() -> None:
        try:
            dbseal.backup_command(["sleep", "1"], tmp_path, datastore="gil", recipients=identity)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    worker = threading.Thread(target=backup)
    ticks = 0
    worker.start()
    time.sleep(0.2)  # the backup is now inside Rust
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    assert not errors, errors
    # Holding the GIL for the whole second would have allowed next to no ticks.
    assert ticks > 100, f"the main thread ran only {ticks} times during the backup"


def test_ctrl_c_interrupts_a_backup_and_commits_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    pidfile = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        import signal, sys, dbseal
        # A run started with SIGINT ignored (`nohup … &`, some CI runners) passes that
        # on to this child, and Python then installs no KeyboardInterrupt handler.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("ready", flush=True)
        try:
            dbseal.backup_command(
                ["sh", "-c", "echo $$ > {pidfile}; exec sleep 60"],
                {str(store)!r}, datastore="slow", recipients=dbseal.generate_identity(),
            )
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(42)
        print("finished", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 42, (out, err)
    assert "interrupted" in out
    assert dbseal.Store(store).list() == []
    # The command was killed with the backup (give the kernel a moment to reap it).
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        state = Path(f"/proc/{child}/stat").read_text().split()[2] if Path(f"/proc/{child}/stat").exists() else "Z"
        if state == "Z":
            break
        assert time.monotonic() < deadline, f"command {child} still runs after the interrupt"
        time.sleep(0.05)


def _backup_in_child(store: str, recipient: str, out: "multiprocessing.Queue[str]") -> None:
    m = dbseal.backup_bytes(b"from the child", store, datastore="fork", recipients=recipient)
    out.put(m.backup_id)


def _dbseal_threads() -> int:
    tasks = Path(f"/proc/{os.getpid()}/task")
    return sum(1 for t in tasks.iterdir() if (t / "comm").read_text().startswith("dbseal-worker"))


def test_works_in_a_forked_child(tmp_path: Path) -> None:
    """A process forked after dbseal ran (multiprocessing's default on Linux) gets a
    runtime of its own instead of hanging on the parent's threads."""
    identity = dbseal.generate_identity()
    dbseal.backup_bytes(b"from the parent", tmp_path, datastore="fork", recipients=identity)
    ctx = multiprocessing.get_context("fork")
    out: "multiprocessing.Queue[str]" = ctx.Queue()
    child = ctx.Process(target=_backup_in_child, args=(str(tmp_path), identity.recipient, out))
    assert _dbseal_threads() > 0
    child.start()
    # The fork hook shut the idle runtime down first: the child was forked from a process
    # without a dbseal thread (one holding a lock at fork time would hang the child).
    assert _dbseal_threads() == 0
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        raise AssertionError("the forked child hung")
    assert child.exitcode == 0
    backup_id = out.get(timeout=5)
    assert dbseal.restore_bytes(tmp_path, backup_id, identity=identity) == b"from the child"
    # The parent goes on (its runtime was shut down before the fork and comes back), and
    # its next id is not the child's: ids come from the OS, not from a generator state
    # both processes inherited.
    after = dbseal.backup_bytes(b"from the parent, after", tmp_path, datastore="fork", recipients=identity)
    assert after.backup_id.split("-")[1] != backup_id.split("-")[1]
    assert dbseal.restore_bytes(tmp_path, after.backup_id, identity=identity) == b"from the parent, after"


def _big_backup(tmp_path: Path, pg: Postgres, src: str) -> tuple[Path, dbseal.Identity, dbseal.Manifest]:
    """A backup (in a store under `tmp_path`) of the new database `src` holding 1.5M rows:
    its restore takes seconds."""
    pg.create_database(src)
    pg.execute(
        src,
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b "
        "FROM generate_series(1, 1500000) g; ALTER TABLE t ADD PRIMARY KEY (id);",
    )
    identity = dbseal.generate_identity()
    store = tmp_path / "store"
    m = dbseal.backup_postgres(pg.url_of(src), store, datastore="big", recipients=identity, password=pg.password)
    return store, identity, m


@pytest.mark.postgres
def test_ctrl_c_during_a_restore_leaves_no_database(tmp_path: Path, pg: Postgres) -> None:
    """An interrupted restore undoes its work like a failed one: the database it created
    is dropped again before KeyboardInterrupt reaches the caller."""
    src, target = unique("pyt_big"), unique("pyt_intr")
    try:
        store, identity, m = _big_backup(tmp_path, pg, src)
        key = tmp_path / "key.txt"
        identity.save(key)
        script = textwrap.dedent(
            f"""
            import signal, sys, dbseal
            # Inherited SIG_IGN (`nohup … &`) would leave Python without its handler.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                dbseal.restore({str(store)!r}, {m.backup_id!r}, {pg.url_of(target)!r},
                               identity={str(key)!r}, password={pg.password!r}, create_db=True)
            except KeyboardInterrupt:
                sys.exit(42)
            sys.exit(0)
            """
        )
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while target not in pg.databases():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the restore never created its database"
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 42, (proc.returncode, out, err)
        assert target not in pg.databases()
    finally:
        pg.drop_database(target)
        pg.drop_database(src)


@pytest.mark.postgres
def test_cancelling_an_aio_restore_undoes_it(tmp_path: Path, pg: Postgres) -> None:
    """Cancelling the task awaiting `dbseal.aio.restore` cancels the restore as Ctrl-C
    does: the database it created is dropped again before the task ends with
    CancelledError."""
    import asyncio

    import dbseal.aio

    src, target = unique("pyt_big"), unique("pyt_aio")
    try:
        store, identity, m = _big_backup(tmp_path, pg, src)

        async def cancel_mid_restore() -> None:
            task = asyncio.create_task(
                dbseal.aio.restore(store, m.backup_id, pg.url_of(target), identity=identity, password=pg.password, create_db=True)
            )
            deadline = time.monotonic() + 60
            while target not in pg.databases():
                assert not task.done(), task.result()
                assert time.monotonic() < deadline, "the restore never created its database"
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_mid_restore())
        assert target not in pg.databases()
    finally:
        pg.drop_database(target)
        pg.drop_database(src)
