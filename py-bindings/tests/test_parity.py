"""Parity of the two front-ends, which run the same library code.

1. Every command of the ``dbseal`` CLI (read from its ``--help``, recursively) has a
   Python twin, and every flag of it is a keyword of a twin; a command or flag Python
   lacks FAILS the suite (so a command added later gets its twin or this test says so).
2. Each command runs through both front-ends against one store: the objects written
   and the JSON returned (the CLI's ``--json``, Python's ``to_dict()`` or dicts) are the
   same, up to what differs by nature (backup ids, times, ciphertext digests).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

import dbseal

from .conftest import Postgres, env, unique

# Flags of the CLI that are not keywords, and why.
NOT_KEYWORDS = {
    "--help": "Python's help()",
    "--version": "dbseal.__version__",
    "--json": "Python returns the JSON documents as objects",
    "--quiet": "Python prints nothing; notices go to the `dbseal` logger",
    "--verbose": "the `dbseal` logger's level",
    "--store": "the `store` argument of every function",
    "--store-option": "dbseal.Store(url, **options)",
    "--max-rate": "dbseal.Store(url, max_rate=...)",
    "--signing-key": "dbseal.Store(url, signing_key=...)",
    "--trusted-signer": "dbseal.Store(url, trusted_signers=[...])",
    "--trusted-verifier": "dbseal.Store(url, trusted_verifiers=[...])",
    "--allow-unsigned": "dbseal.Store(url, allow_unsigned=True)",
    "--config": "the `config` keyword of every function",
}

# The Python twins of a CLI command (default: its path, `-` and ` ` as `_`).
TWINS: dict[str, list[str]] = {
    "keygen": ["keygen", "generate_identity"],
    "backup": ["backup_datastores"],
    "backup stdin": ["backup_bytes", "backup_file"],
    "list": ["list_backups"],
    "restore": ["restore", "restore_set", "restore_to_file", "restore_bytes"],
    "verify": ["verify", "verify_latest"],
}

# Flags that select another twin rather than being a keyword.
FLAG_TWINS = {
    ("restore", "--set"): "restore_set",
    ("restore", "--to-stdout"): "restore_bytes",
    ("verify", "--latest"): "verify_latest",
    ("verify", "--datastore"): "verify_latest",
}

# Flags whose keyword has another name in Python.
KEYWORD_NAMES = {"--recipient": "recipients", "--label": "labels", "--identity": "identity"}


def dbseal_bin() -> str:
    return env("DBSEAL_BIN")


def cli_help(path: list[str]) -> str:
    run = subprocess.run([dbseal_bin(), *path, "-h"], capture_output=True, text=True, check=True)
    return run.stdout


def section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    if f"{title}:" not in lines:
        return []
    out = []
    for line in lines[lines.index(f"{title}:") + 1 :]:
        if not line.strip():
            break
        out.append(line)
    return out


def cli_commands() -> dict[str, list[str]]:
    """Every CLI command path (`backup postgres`, `config check`…) with its flags: the
    leaves of the command tree, and inner commands with flags of their own (`backup
    --datastore`)."""
    found: dict[str, list[str]] = {}
    global_flags: set[str] = set()

    def walk(path: list[str]) -> None:
        text = cli_help(path)
        subs = [m.group(1) for line in section(text, "Commands") if (m := re.match(r"^  (\S+)", line))]
        subs = [s for s in subs if s != "help"]
        flags = [m.group(1) for line in section(text, "Options") if (m := re.match(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", line))]
        if not path:
            global_flags.update(flags)
        elif not subs or set(flags) - global_flags:
            found[" ".join(path)] = flags
        for s in subs:
            walk([*path, s])

    walk([])
    return found


def twins(command: str) -> list[str]:
    if command in TWINS:
        return TWINS[command]
    return [command.replace("-", "_").replace(" ", "_")]


def accepted(fn_name: str) -> set[str]:
    """The keywords a Python function takes: its signature, its option keywords
    (`dbseal.keywords()`), a driver's options for `backup_<kind>`."""
    fn = getattr(dbseal, fn_name)
    names = set(inspect.signature(fn).parameters)
    names |= {k["name"] for k in dbseal.keywords().get(fn_name, [])}
    for d in dbseal.drivers():
        if fn_name == f"backup_{d['kind']}":
            names |= {o["name"] for o in d["options"]}
    return names


def test_every_cli_command_and_flag_has_a_python_twin() -> None:
    commands = cli_commands()
    assert "backup postgres" in commands and "wal-push" in commands, commands
    missing: list[str] = []
    for command, flags in commands.items():
        fns = [f for f in twins(command) if hasattr(dbseal, f)]
        if not fns:
            missing.append(f"`dbseal {command}`: no dbseal.{' / dbseal.'.join(twins(command))}")
            continue
        keywords = set().union(*(accepted(f) for f in fns))
        for flag in flags:
            if flag in NOT_KEYWORDS:
                continue
            twin = FLAG_TWINS.get((command, flag))
            if twin is not None:
                if not hasattr(dbseal, twin):
                    missing.append(f"`dbseal {command} {flag}`: no dbseal.{twin}")
                continue
            name = KEYWORD_NAMES.get(flag, flag[2:].replace("-", "_"))
            if not {name, name + "s", name.rstrip("s")} & keywords:
                missing.append(f"`dbseal {command} {flag}`: no keyword `{name}` in dbseal.{' / '.join(fns)}")
    assert not missing, "Python lacks:\n" + "\n".join(missing)


# --- running both front-ends -----------------------------------------------------------

ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ][\d:.]+(Z|[+-]\d\d:?\d\d| UTC)?$")
# Fields that differ by nature between two runs.
VOLATILE = {"stored_sha256", "stored_size", "stored_bytes", "duration_seconds", "age_seconds", "bytes_read", "newest_age_seconds", "identity_file", "used_bytes", "capacity_bytes", "used_percent"}


def normalize(doc: Any, **replace: str) -> Any:
    """`doc` without what differs between two runs: ids, times, ciphertext facts, and
    the given strings (datastore names, paths) replaced by their keys."""
    if isinstance(doc, dict):
        return {k: "<volatile>" if k in VOLATILE else normalize(v, **replace) for k, v in doc.items()}
    if isinstance(doc, list):
        return [normalize(v, **replace) for v in doc]
    if isinstance(doc, str):
        for name, value in replace.items():
            doc = doc.replace(value, f"<{name}>")
        doc = ID.sub("<id>", doc)
        doc = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", doc)
        doc = re.sub(r"\b\d+ bytes\b", "<n> bytes", doc)
        doc = re.sub(r"dbseal[-_]verify[-_][\w-]+", "<scratch>", doc)
        return "<time>" if TIME.match(doc) else doc
    return doc


class Cli:
    """The CLI against one store, with `--json`."""

    def __init__(self, store: Path, **environ: str) -> None:
        self.store = store
        self.environ = {**os.environ, "DBSEAL_STORE": str(store), **environ}
        for k in ("DBSEAL_CONFIG", "DBSEAL_RECIPIENTS", "DBSEAL_IDENTITY", "DBSEAL_PASSPHRASE_FILE", "DBSEAL_ZSTD_LEVEL"):
            if k not in environ:
                self.environ.pop(k, None)

    def run(self, *args: str, code: int = 0, stdin: Optional[bytes] = None) -> Any:
        run = subprocess.run([dbseal_bin(), "--json", *args], capture_output=True, input=stdin, env=self.environ)
        assert run.returncode == code, (args, run.returncode, run.stdout, run.stderr)
        return json.loads(run.stdout) if run.stdout.strip() else None


def keys(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def both(tmp_path: Path) -> tuple[Cli, dbseal.Store, dbseal.Identity, Path]:
    root = tmp_path / "store"
    root.mkdir()
    identity = dbseal.generate_identity()
    key = tmp_path / "key.txt"
    identity.save(key)
    return Cli(root), dbseal.Store(root), identity, key


def test_keygen(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "store")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    by_cli, by_py = cli.run("keygen", "-o", str(a)), dbseal.keygen(b)
    files = {"identity_file", "signing_key_file", "signing_public_key_file"}
    assert by_cli.keys() == by_py.keys() == {"recipient", "signing_public_key", *files}
    for path, doc in ((a, by_cli), (b, by_py)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(doc["signing_key_file"]).stat().st_mode) == 0o600
        assert Path(doc["signing_key_file"]) == Path(f"{path}.minisign.key")
        assert doc["signing_public_key"] in Path(doc["signing_public_key_file"]).read_text()
        assert dbseal.Identity.from_file(path).recipient == doc["recipient"]
    with pytest.raises(dbseal.DbsealError) as err:
        dbseal.keygen(b)
    cli.run("keygen", "-o", str(b), code=err.value.exit_code)


def test_backup_command_stdin_list_show_verify_and_records(both: tuple[Cli, dbseal.Store, dbseal.Identity, Path]) -> None:
    cli, store, identity, key = both
    r = identity.recipient
    # backup command
    argv = ["sh", "-c", "printf 'same output'"]
    c = cli.run("backup", "command", "-d", "cmd-cli", "-r", r, "--label", "team=x", "--", *argv)
    p = dbseal.backup_command(argv, store, datastore="cmd-py", recipients=r, labels={"team": "x"}).to_dict()
    assert normalize(c, ds="cmd-cli") == normalize(p, ds="cmd-py")
    # backup stdin / bytes: the same, but for the kind that names the source
    c = cli.run("backup", "stdin", "-d", "in-cli", "-r", r, "--zstd-level", "7", stdin=b"data" * 100)
    p = dbseal.backup_bytes(b"data" * 100, store, datastore="in-py", recipients=r, zstd_level=7).to_dict()
    c["datastore"].pop("kind"), p["datastore"].pop("kind")
    assert normalize(c, ds="in-cli") == normalize(p, ds="in-py")
    # list and show: the same documents
    assert cli.run("list") == [m.to_dict() for m in dbseal.list_backups(store)]
    assert cli.run("list", "-d", "cmd-py") == [m.to_dict() for m in dbseal.list_backups(store, "cmd-py")]
    assert cli.run("show", c["backup_id"]) == dbseal.show(store, c["backup_id"]).to_dict()
    # verify: the same report, and each writes its verification record
    vc = cli.run("verify", c["backup_id"], "-i", str(key))
    vp = dbseal.verify(store, p["backup_id"], identity=key).to_dict()
    assert normalize(vc, ds="in-cli") == normalize(vp, ds="in-py")
    rc = json.loads((cli.store / "in-cli" / c["backup_id"] / "verified.json").read_text())
    rp = json.loads((cli.store / "in-py" / p["backup_id"] / "verified.json").read_text())
    assert normalize(rc, ds="in-cli") == normalize(rp, ds="in-py")
    # ...which the other front-end's status sees.
    status = {s["datastore"]: s for s in cli.run("status", code=0)["datastores"]}
    assert status["in-py"]["last_verification"]["backup_id"] == p["backup_id"]
    assert status["in-py"]["last_verification"]["ok"] is True
    py_status = {s["datastore"]: s for s in dbseal.status(store)["datastores"]}
    assert py_status["in-cli"]["last_verification"]["backup_id"] == c["backup_id"]
    assert normalize(cli.run("status")) == normalize(dbseal.status(store))
    # verify --latest: the same results (and records)
    assert normalize(cli.run("verify", "--latest", "-i", str(key))) == normalize(
        dbseal.verify_latest(store, identity=key)
    )
    # a failed verification: the same class and exit code, and a failed record each
    for m in (c, p):
        (cli.store / m["artifact"]["key"]).write_bytes(b"tampered")
    with pytest.raises(dbseal.VerificationError) as err:
        dbseal.verify(store, p["backup_id"])
    failed = cli.run("verify", c["backup_id"], code=err.value.exit_code)
    assert failed["error"]["class"] == err.value.kind == "verification"
    for m in (c, p):
        record = json.loads((cli.store / m["datastore"]["name"] / m["backup_id"] / "verified.json").read_text())
        assert record["ok"] is False


def test_restore_to_file_and_dry_run(both: tuple[Cli, dbseal.Store, dbseal.Identity, Path], tmp_path: Path) -> None:
    cli, store, identity, key = both
    m = dbseal.backup_bytes(b"payload" * 1000, store, datastore="b", recipients=identity)
    out_c, out_p = tmp_path / "c.bin", tmp_path / "p.bin"
    c = cli.run("restore", m.backup_id, "-o", str(out_c), "-i", str(key))
    p = dbseal.restore(store, m, output=out_p, identity=key).to_dict()
    assert normalize(c, out=str(out_c)) == normalize(p, out=str(out_p))
    assert out_c.read_bytes() == out_p.read_bytes() == b"payload" * 1000
    assert stat.S_IMODE(out_c.stat().st_mode) == stat.S_IMODE(out_p.stat().st_mode)
    out = tmp_path / "never.bin"
    c = cli.run("restore", m.backup_id, "-o", str(out), "--dry-run")
    assert c == dbseal.restore(store, m, output=out, dry_run=True).to_dict()
    assert not out.exists()
    # A backup of no database kind cannot go to a database: the same error.
    with pytest.raises(dbseal.ConfigError) as err:
        dbseal.restore(store, m, "postgres://127.0.0.1:1/x", identity=key)
    failed = cli.run("restore", m.backup_id, "--url", "postgres://127.0.0.1:1/x", "-i", str(key), code=err.value.exit_code)
    assert failed["error"]["class"] == err.value.kind and failed["error"]["message"] == str(err.value)


def test_errors_have_the_cli_class_and_exit_code(both: tuple[Cli, dbseal.Store, dbseal.Identity, Path]) -> None:
    cli, store, identity, key = both
    missing = "20200101T000000Z-deadbeef"
    for fn, args in (
        (lambda: dbseal.show(store, missing), ["show", missing]),
        (lambda: dbseal.verify(store, missing), ["verify", missing]),
        (lambda: dbseal.verify(store, "nope"), ["verify", "nope"]),
    ):
        with pytest.raises(dbseal.DbsealError) as err:
            fn()
        doc = cli.run(*args, code=err.value.exit_code)
        assert doc["error"]["class"] == err.value.kind
        assert doc["error"]["code"] == err.value.exit_code == type(err.value).exit_code


def write_config(tmp_path: Path, store: Path, recipient: str, key: Path, datastores: str = "") -> Path:
    config = tmp_path / "dbseal.toml"
    config.write_text(
        f'zstd_level = 5\n[store]\nurl = "{store}"\n[encryption]\nrecipients = ["{recipient}"]\n'
        f'identity = "{key}"\n[retention]\nkeep_last = 1\n{datastores}'
    )
    return config


def test_config_check_prune_and_status(both: tuple[Cli, dbseal.Store, dbseal.Identity, Path], tmp_path: Path) -> None:
    cli, store, identity, key = both
    config = write_config(tmp_path, cli.store, identity.recipient, key)
    assert cli.run("--config", str(config), "config", "check") == dbseal.config_check(config)
    for i in range(3):
        dbseal.backup_bytes(f"v{i}".encode(), store, datastore="p", recipients=identity)
    dry_c = cli.run("--config", str(config), "prune", "--dry-run")
    dry_p = dbseal.prune(config=config, dry_run=True)
    assert normalize(dry_c) == normalize(dry_p)
    # The real thing, on two copies of the store: the same objects remain.
    copy = tmp_path / "copy"
    shutil.copytree(cli.store, copy)
    c = cli.run("--config", str(config), "prune", "--keep-last", "2")
    p = dbseal.prune(dbseal.Store(copy), config=config, keep_last=2)
    assert normalize(c) == normalize(p)
    assert keys(cli.store) == keys(copy)
    # status: the same report (a stale datastore: the same error and result)
    assert normalize(cli.run("--config", str(config), "status")) == normalize(dbseal.status(config=config))
    # a configured datastore without backups is unhealthy: the same exit code and report
    stale = write_config(tmp_path, cli.store, identity.recipient, key, '[datastores.empty]\nkind = "postgres"\nurl = "postgres://u@127.0.0.1:1/x"\n')
    with pytest.raises(dbseal.UnhealthyError) as err:
        dbseal.status(config=stale)
    doc = cli.run("--config", str(stale), "status", code=err.value.exit_code)
    assert normalize(doc) == normalize(err.value.result)


@pytest.mark.postgres
def test_database_backup_restore_sets_and_safety(
    both: tuple[Cli, dbseal.Store, dbseal.Identity, Path], tmp_path: Path, pg: Postgres, pg_db: str
) -> None:
    cli, store, identity, key = both
    cli.environ["PGPASSWORD"] = pg.password
    r = identity.recipient
    c = cli.run("backup", "postgres", "-d", "pg-cli", "-r", r, "--url", pg.url_of(pg_db), "--exclude-table-data", "orders")
    p = dbseal.backup_postgres(
        pg.url_of(pg_db), store, datastore="pg-py", recipients=r, password=pg.password, exclude_table_data="orders"
    )
    assert normalize(c, ds="pg-cli") == normalize(p.to_dict(), ds="pg-py")
    # restore into new databases, and their dry runs
    targets = [unique("par_c"), unique("par_p")]
    try:
        url_c, url_p = pg.url_with_password(targets[0]), pg.url_with_password(targets[1])
        dc = cli.run("restore", c["backup_id"], "--url", url_c, "--create-db", "--dry-run")
        dp = dbseal.restore(store, c["backup_id"], url_p, create_db=True, dry_run=True).to_dict()
        assert normalize(dc, db=targets[0]) == normalize(dp, db=targets[1])
        rc = cli.run("restore", c["backup_id"], "--url", url_c, "--create-db", "-i", str(key))
        rp = dbseal.restore(store, c["backup_id"], url_p, create_db=True, identity=identity).to_dict()
        assert normalize(rc, db=targets[0]) == normalize(rp, db=targets[1])
        assert pg.row_counts(targets[0]) == pg.row_counts(targets[1])
        # replace: each takes a safety backup of its target first
        rc = cli.run("restore", c["backup_id"], "--url", url_c, "--replace", "-i", str(key))
        rp = dbseal.restore(store, c["backup_id"], url_p, replace=True, identity=identity).to_dict()
        assert rc["safety_backup"] and rp["safety_backup"]
        assert normalize(rc, db=targets[0]) == normalize(rp, db=targets[1])
        # level-3 verification: the same report, a record each
        vc = cli.run("verify", c["backup_id"], "-i", str(key), "--restore-to", pg.url_with_password("postgres"))
        vp = dbseal.verify(store, p.backup_id, identity=identity, restore_to=pg.url_with_password("postgres")).to_dict()
        assert normalize(vc, ds="pg-cli") == normalize(vp, ds="pg-py")
        # a drill of each: the newest backup restored into the scratch server, measured
        scratch = pg.url_with_password("postgres")
        drill_py = dbseal.drill(store, datastore="pg-py", identity=identity, restore_to=scratch)
        drill_cli = cli.run("drill", "-d", "pg-cli", "-i", str(key), "--restore-to", scratch)
        for d in (drill_py[0], drill_cli[0]):
            assert d["verified"] and d["passed"] and d["rto_seconds"] > 0, d
            assert [phase for phase, _ in d["phases"]] == ["stored", "content", "load", "verify"]
    finally:
        for t in targets:
            pg.drop_database(t)
    # configured datastores and backup sets
    password_file = tmp_path / "pg-password"
    password_file.write_text(pg.password)
    datastores = "".join(
        f'[datastores.{n}]\nkind = "postgres"\nurl = "{pg.url_of(pg_db)}"\npassword_file = "{password_file}"\n'
        'environment = "production"\n'
        for n in ("one", "two")
    )
    config = write_config(tmp_path, cli.store, r, key, datastores)
    one_c = cli.run("--config", str(config), "backup", "--datastore", "one")
    one_p = dbseal.backup_datastores(config=config, datastore="one")
    assert isinstance(one_p, dbseal.Manifest)
    assert normalize(one_c) == normalize(one_p.to_dict())
    set_c = cli.run("--config", str(config), "backup", "--all")
    set_p = dbseal.backup_datastores(config=config, all=True)
    assert isinstance(set_p, dict)
    assert normalize(set_c) == normalize(set_p)
    assert (cli.store / "_sets" / set_p["set_id"] / "set.json").exists()
    # restoring the set: the production guard, then its plan
    with pytest.raises(dbseal.RefusedError) as err:
        dbseal.restore_set(None, set_p["set_id"], config=config, replace=True)
    cli.run("--config", str(config), "restore", "--set", set_c["set_id"], "--replace", code=err.value.exit_code)
    plan_c = cli.run("--config", str(config), "restore", "--set", set_c["set_id"], "--replace", "--dry-run")
    plan_p = dbseal.restore_set(None, set_p["set_id"], config=config, replace=True, dry_run=True)
    assert normalize(plan_c) == normalize(plan_p)


SEGMENT = 1 << 20
SYSID = 7_300_000_000_000_000_001


def fake_segment(tl: int, segno: int) -> bytes:
    """A synthetic WAL segment (as backup-postgres's tests make them)."""
    bs = 8192
    data = bytearray(SEGMENT)
    base = segno * SEGMENT
    for i in range(SEGMENT // bs):
        page = memoryview(data)[i * bs : (i + 1) * bs]
        page[0:2] = (0xD110).to_bytes(2, "little")
        page[2:4] = (2 if i == 0 else 0).to_bytes(2, "little")
        page[4:8] = tl.to_bytes(4, "little")
        page[8:16] = (base + i * bs).to_bytes(8, "little")
        if i == 0:
            page[24:32] = SYSID.to_bytes(8, "little")
            page[32:36] = SEGMENT.to_bytes(4, "little")
            page[36:40] = bs.to_bytes(4, "little")
        page[64:128] = bytes((i + j) % 256 for j in range(64))
    return bytes(data)


def test_wal_push_fetch_verify(both: tuple[Cli, dbseal.Store, dbseal.Identity, Path], tmp_path: Path) -> None:
    cli, store, identity, key = both
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()
    names = []
    for segno in (1, 2):
        name = f"{1:08X}{0:08X}{segno:08X}"
        (pg_wal / name).write_bytes(fake_segment(1, segno))
        names.append(name)
        c = cli.run("wal-push", "-d", "w-cli", "-r", identity.recipient, str(pg_wal / name))
        p = dbseal.wal_push(pg_wal / name, store, datastore="w-py", recipients=identity)
        assert normalize(c, ds="w-cli") == normalize(p, ds="w-py")
    assert {k.replace("w-cli", "w") for k in keys(cli.store / "w-cli")} == {k.replace("w-py", "w") for k in keys(cli.store / "w-py")}
    c = cli.run("wal-fetch", "-d", "w-cli", "-i", str(key), names[0], str(tmp_path / "c"))
    p = dbseal.wal_fetch(names[0], tmp_path / "p", store, datastore="w-py", identity=key)
    assert c == p
    assert (tmp_path / "c").read_bytes() == (tmp_path / "p").read_bytes() == (pg_wal / names[0]).read_bytes()
    # concurrency: segment 2 comes along with segment 1, and is served from the prefetch.
    rec_c, rec_p = tmp_path / "rec-c", tmp_path / "rec-p"
    rec_c.mkdir()
    rec_p.mkdir()
    c = cli.run("wal-fetch", "-d", "w-cli", "-i", str(key), "--concurrency", "2", names[0], str(rec_c / "x"))
    p = dbseal.wal_fetch(names[0], rec_p / "x", store, datastore="w-py", identity=key, concurrency=2)
    assert c == p and p["prefetched"] is False
    p = dbseal.wal_fetch(names[1], rec_p / "x", store, datastore="w-py", identity=key, concurrency=2)
    assert p["prefetched"] is True and (rec_p / "x").read_bytes() == (pg_wal / names[1]).read_bytes()
    with pytest.raises(dbseal.NotFoundError) as err:
        dbseal.wal_fetch("000000010000000000000009", tmp_path / "x", store, datastore="w-py", identity=key)
    cli.run("wal-fetch", "-d", "w-cli", "-i", str(key), "000000010000000000000009", str(tmp_path / "x"), code=err.value.exit_code)
    c = cli.run("wal-verify", "-d", "w-cli", "-i", str(key))
    p = dbseal.wal_verify(store, datastore="w-py", identity=key)
    assert normalize(c, ds="w-cli") == normalize(p, ds="w-py")


def test_pitr_restore_needs_a_physical_backup(both: tuple[Cli, dbseal.Store, dbseal.Identity, Path], tmp_path: Path) -> None:
    """`restore --pgdata DIR --latest`: the same refusal of a backup that is not a
    physical one (a physical backup needs a server with archive_mode = on, which the
    test server is not), and nothing written."""
    cli, store, identity, key = both
    m = dbseal.backup_bytes(b"not a base backup", store, datastore="phys", recipients=identity)
    pgdata = tmp_path / "pgdata"
    for dry_run in (True, False):
        with pytest.raises(dbseal.DbsealError) as err:
            dbseal.restore(store, m, pgdata=pgdata, latest=True, dry_run=dry_run, identity=key)
        args = ["restore", m.backup_id, "--pgdata", str(pgdata), "--latest", "-i", str(key)]
        doc = cli.run(*args, *(["--dry-run"] if dry_run else []), code=err.value.exit_code)
        assert doc["error"]["class"] == err.value.kind
        assert doc["error"]["message"] == str(err.value)
    assert not pgdata.exists()
