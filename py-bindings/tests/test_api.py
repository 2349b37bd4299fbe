"""The Python API's objects: identities, stores, manifests and reports."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import time
from pathlib import Path

import pytest

import dbseal


def test_identity_save_load_and_secret_hygiene(tmp_path: Path) -> None:
    identity = dbseal.generate_identity()
    assert identity.recipient.startswith("age1")
    assert identity.recipients == [identity.recipient]
    for shown in (str(identity), repr(identity)):
        assert "AGE-SECRET-KEY" not in shown
        assert identity.recipient in shown
    path = tmp_path / "key.txt"
    identity.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert f"# public key: {identity.recipient}" in text
    assert "AGE-SECRET-KEY-1" in text
    loaded = dbseal.Identity.from_file(path)
    assert loaded.recipient == identity.recipient
    assert loaded.source == str(path)
    with pytest.raises(dbseal.ConfigError, match="refusing to overwrite"):
        identity.save(path)
    with pytest.raises(dbseal.ConfigError, match="cannot be pickled"):
        pickle.dumps(identity)


def test_identity_from_age_keygen_file_decrypts(tmp_path: Path) -> None:
    """Keys made by age-keygen work, both as an Identity and as a path."""
    key = tmp_path / "age.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    identity = dbseal.Identity.from_file(key)
    store = dbseal.Store(tmp_path / "store")
    m = dbseal.backup_bytes(b"interop", store, datastore="x", recipients=[identity.recipient])
    assert dbseal.restore_bytes(store, m, identity=identity) == b"interop"
    assert dbseal.restore_bytes(store, m, identity=str(key)) == b"interop"
    assert dbseal.restore_bytes(store, m, identity=[key]) == b"interop"


def test_identity_from_a_file_that_is_not_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n")
    with pytest.raises(dbseal.ConfigError, match="not an age identity file"):
        dbseal.Identity.from_file(bad)
    with pytest.raises(dbseal.ConfigError, match="cannot read identity file"):
        dbseal.Identity.from_file(tmp_path / "missing.txt")


def test_artifact_is_a_standard_age_zstd_file(tmp_path: Path) -> None:
    """The escape hatch: `age -d -i key | zstd -d` recovers the plaintext without dbseal."""
    identity = dbseal.generate_identity()
    key = tmp_path / "key.txt"
    identity.save(key)
    store_dir = tmp_path / "store"
    payload = os.urandom(1000) * 50
    m = dbseal.backup_bytes(payload, dbseal.Store(store_dir), datastore="x", recipients=identity)
    artifact = store_dir / m.artifact.key
    assert artifact.stat().st_size == m.artifact.stored_size
    dec = subprocess.run(["age", "-d", "-i", str(key), str(artifact)], check=True, capture_output=True).stdout
    plain = subprocess.run(["zstd", "-d", "-c"], input=dec, check=True, capture_output=True).stdout
    assert plain == payload


def test_several_recipients_each_decrypt(tmp_path: Path) -> None:
    a, b = dbseal.generate_identity(), dbseal.generate_identity()
    store = dbseal.Store(tmp_path)
    m = dbseal.backup_bytes(b"shared", store, datastore="x", recipients=[a, b.recipient])
    assert sorted(m.recipients) == sorted([a.recipient, b.recipient])
    assert dbseal.restore_bytes(store, m, identity=a) == b"shared"
    assert dbseal.restore_bytes(store, m, identity=b) == b"shared"
    # A comma-separated string works as well (like DBSEAL_RECIPIENTS).
    m2 = dbseal.backup_bytes(b"x", store, datastore="x", recipients=f"{a.recipient},{b.recipient}")
    assert len(m2.recipients) == 2


def test_store_listing_and_manifest_objects(tmp_path: Path) -> None:
    identity = dbseal.generate_identity()
    store = dbseal.Store(tmp_path / "s")
    assert store.list() == []
    assert store.latest() is None
    m1 = dbseal.backup_bytes(b"one", store, datastore="alpha", recipients=identity, labels={"env": "test"})
    m2 = dbseal.backup_bytes(b"two", store, datastore="beta", recipients=identity, zstd_level=19)
    m3 = dbseal.backup_bytes(b"three", store, datastore="alpha", recipients=identity)
    assert [m.backup_id for m in store.list()] == sorted([m1.backup_id, m2.backup_id, m3.backup_id])
    assert [m.backup_id for m in store.list("alpha")] == sorted([m1.backup_id, m3.backup_id])
    assert store.latest("beta") == m2
    assert store.manifest(m1.backup_id) == m1
    assert store.manifest(m1) == m1
    assert len({m1, store.manifest(m1.backup_id)}) == 1

    assert m1.datastore == "alpha" and m1.kind == "bytes"
    assert m1.labels == {"env": "test"}
    assert m1.format_version.startswith("1.")
    assert m1.tool_version == dbseal.__version__
    assert m1.started_at.tzinfo is not None and m1.started_at <= m1.finished_at
    assert m1.key == f"alpha/{m1.backup_id}/manifest.json"
    assert (tmp_path / "s" / m1.key).exists()
    assert m1.artifact.name == "data" and m1.artifact.format == "raw"
    assert m1.artifact.plaintext_size == 3
    assert m1.attachments == [] and m1.parent is None
    assert m2.transforms[0] == {"type": "zstd", "level": 19}

    # to_dict() is exactly the stored JSON document.
    stored = json.loads((tmp_path / "s" / m1.key).read_text())
    assert m1.to_dict() == stored
    assert json.loads(m1.to_json()) == stored
    assert m1.artifact.to_dict() == {k: stored["artifact"][k] for k in m1.artifact.to_dict()}
    assert m1.contents.to_dict() == {"facts": {}, "counts": {}}
    assert repr(m1).startswith("Manifest(backup_id=")


def test_backups_are_signed_and_only_trusted_keys_are_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = dbseal.keygen(tmp_path / "id.txt")
    assert keys["signing_public_key"].startswith("RW")
    assert (tmp_path / "id.txt.minisign.key").stat().st_mode & 0o777 == 0o600
    identity = dbseal.Identity.from_file(tmp_path / "id.txt")
    backup_host = dbseal.Store(tmp_path / "s", signing_key=keys["signing_key_file"])
    m = dbseal.backup_bytes(b"data", backup_host, datastore="app", recipients=identity)
    assert (tmp_path / "s" / (m.key + ".minisig")).is_file()
    assert backup_host.manifest(m.backup_id) == m
    # Another host (the suite's own DBSEAL_SIGNING_KEY) does not trust that key...
    other = dbseal.Store(tmp_path / "s")
    with pytest.raises(dbseal.VerificationError, match="not trusted here") as e:
        other.manifest(m.backup_id)
    assert e.value.exit_code == 4
    assert other.list() == []
    # ...until told to, by keyword or by DBSEAL_TRUSTED_SIGNERS.
    trusting = dbseal.Store(tmp_path / "s", trusted_signers=[keys["signing_public_key"]])
    assert trusting.manifest(m.backup_id) == m
    assert dbseal.restore(trusting, m, output=tmp_path / "out", identity=identity) is not None
    assert (tmp_path / "out").read_bytes() == b"data"
    monkeypatch.setenv("DBSEAL_TRUSTED_SIGNERS", keys["signing_public_key"])
    assert dbseal.Store(tmp_path / "s").list() == [m]
    # A modified manifest is refused even with the key trusted.
    path = tmp_path / "s" / m.key
    path.write_text(path.read_text().replace('"app"', '"app" ', 1))
    with pytest.raises(dbseal.VerificationError, match="modified after signing"):
        trusting.manifest(m.backup_id)
    # Without any signing key a backup is refused before anything is written.
    monkeypatch.delenv("DBSEAL_SIGNING_KEY")
    with pytest.raises(dbseal.ConfigError, match="signing key"):
        dbseal.backup_bytes(b"x", tmp_path / "t", datastore="app", recipients=identity)
    assert not (tmp_path / "t" / "app").exists()


def test_store_accepts_paths_urls_and_store_objects(tmp_path: Path) -> None:
    identity = dbseal.generate_identity()
    m = dbseal.backup_bytes(b"p", tmp_path, datastore="x", recipients=identity)
    assert dbseal.Store(f"file://{tmp_path}").manifest(m.backup_id) == m
    assert dbseal.verify(str(tmp_path), m.backup_id).level == "stored"
    mem = dbseal.Store("memory://")
    m2 = dbseal.backup_bytes(b"mem", mem, datastore="x", recipients=identity)
    assert mem.list() == [m2]
    assert repr(mem) == "Store('memory://')"


def test_store_max_rate_limits_transfers(tmp_path: Path) -> None:
    """`max_rate` is dbseal's own store option: a bad rate is a ConfigError naming it;
    a good one holds a round trip to at least its bytes / rate (a lower bound only)."""
    with pytest.raises(dbseal.ConfigError, match="max_rate `fast` is not a rate"):
        dbseal.Store(tmp_path, max_rate="fast")
    identity = dbseal.generate_identity()
    store = dbseal.Store(tmp_path, max_rate="256KiB")
    payload = os.urandom(200 * 1024)
    start = time.monotonic()
    m = dbseal.backup_bytes(payload, store, datastore="x", recipients=identity)
    took = time.monotonic() - start
    assert took >= m.artifact.stored_size / (256 * 1024), took
    out = tmp_path / "out.bin"
    start = time.monotonic()
    dbseal.restore_to_file(store, m.backup_id, out, identity=identity)
    assert time.monotonic() - start >= m.artifact.stored_size / (256 * 1024)
    assert out.read_bytes() == payload


def test_status_alerts_on_a_full_quota_and_an_expiring_key(tmp_path: Path) -> None:
    """`status` checks the store itself: usage against `[store] store_quota` and keys
    written with `key_expires`; an alert raises UnhealthyError carrying the report."""
    import datetime

    identity = dbseal.generate_identity()
    root = tmp_path / "store"
    dbseal.backup_bytes(os.urandom(4096), dbseal.Store(root), datastore="x", recipients=identity)
    used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    soon = datetime.date.today() + datetime.timedelta(days=10)
    config = tmp_path / "dbseal.toml"
    config.write_text(
        f'[store]\nurl = "{root}"\nstore_quota = "{used * 4}"\n'
        f'[encryption]\nrecipients = [{{ recipient = "{identity.recipient}", key_expires = "{soon}" }}]\n'
    )
    with pytest.raises(dbseal.UnhealthyError) as err:
        dbseal.status(config=config)
    report = err.value.result
    assert report["store"]["storage"] == {
        "used_bytes": used,
        "capacity_bytes": used * 4,
        "measured_against": "quota",
        "used_percent": 25.0,
        "alert_percent": 80.0,
    }
    assert report["store"]["keys"][0]["days_left"] == 10
    assert report["store"]["problems"] == [
        f"recipient {identity.recipient[:16]}… expires on {soon} (in 10 days; warning from 90d before)"
    ]
    assert report["datastores"][0]["healthy"] is True
    # The backup made from Python left its outcome record, as the CLI's do.
    kpis = report["datastores"][0]["kpis"]
    assert (kpis["window"], kpis["backups_succeeded"], kpis["backup_success_rate"]) == ("30d", 1, 1.0)
    # A quarter full and the key beyond a shorter warning window: healthy.
    config.write_text(config.read_text() + 'key_expiry_warning = "7d"\n')
    assert dbseal.status(config=config)["store"]["problems"] == []


def test_notify_webhooks_hear_of_python_backups(tmp_path: Path) -> None:
    """`[[notify]]` of the config file: Python runs the same operations as the CLI, so a
    backup made from Python is announced to the webhook (a local HTTP server here)."""
    import http.server
    import threading

    got: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers["content-length"])
            got.append({"path": self.path, "doc": json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "dbseal.toml"
        config.write_text(
            f'[[notify]]\nurl = "http://127.0.0.1:{server.server_port}/hook/tok3n"\non = ["success"]\n'
        )
        identity = dbseal.generate_identity()
        m = dbseal.backup_bytes(b"rows", tmp_path / "s", datastore="py", recipients=identity, config=config)
    finally:
        server.shutdown()
    assert len(got) == 1, got
    doc = got[0]["doc"]
    assert isinstance(doc, dict)
    assert (doc["event"], doc["result"], doc["datastore"], doc["backup_id"]) == ("backup", "success", "py", m.backup_id)


def test_verify_levels_and_report(tmp_path: Path) -> None:
    identity = dbseal.generate_identity()
    store = dbseal.Store(tmp_path)
    m = dbseal.backup_bytes(b"v" * 10_000, store, datastore="x", recipients=identity)
    stored = dbseal.verify(store, m)
    assert (stored.level, stored.level_number, stored.ok) == ("stored", 1, True)
    assert [r.level for r in stored.reports] == ["stored"]
    assert m.artifact.key in stored.checks[0] and m.artifact.stored_sha256 in stored.checks[0]
    content = dbseal.verify(store, m, identity=identity)
    assert [r.level_number for r in content.reports] == [1, 2]
    assert dbseal.verify(store, m, identity=identity, level=1).level == "stored"
    d = content.to_dict()
    assert d["ok"] is True and d["level"] == "content" and len(d["reports"]) == 2
    with pytest.raises(dbseal.ConfigError, match="restore.to"):
        dbseal.verify(store, m, identity=identity, level="restore")
    with pytest.raises(dbseal.ConfigError, match="level `deep`"):
        dbseal.verify(store, m, identity=identity, level="deep")
    with pytest.raises(dbseal.ConfigError, match="level 4"):
        dbseal.verify(store, m, identity=identity, level=4)


def test_restore_to_file_overwrite_and_report(tmp_path: Path) -> None:
    identity = dbseal.generate_identity()
    store = dbseal.Store(tmp_path / "s")
    m = dbseal.backup_bytes(b"fresh", store, datastore="x", recipients=identity)
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    with pytest.raises(dbseal.RefusedError, match="overwrite=True"):
        dbseal.restore_to_file(store, m, out, identity=identity)
    assert out.read_bytes() == b"old"
    report = dbseal.restore_to_file(store, m, out, identity=identity, overwrite=True)
    assert out.read_bytes() == b"fresh"
    assert report.to_dict() == {"backup_id": m.backup_id, "target": str(out), "bytes": 5, "summary": report.summary}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "s"]  # no partial file left
