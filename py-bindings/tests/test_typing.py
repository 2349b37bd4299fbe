"""The type stubs match the module, the package is typed, and the plugin is registered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dbseal

HERE = Path(__file__).resolve().parent


def test_stubs_match_the_module() -> None:
    """`python -m mypy.stubtest dbseal`: every public name, signature and class in the
    stubs exists at run time with the same shape, and nothing public is missing."""
    cmd = [sys.executable, "-m", "mypy.stubtest", "dbseal"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_package_and_the_suite_type_check_strictly() -> None:
    """`mypy --strict` over the installed package (aio, the pytest plugin, the stubs) and
    over this test suite, which uses the whole API through the stubs."""
    config = HERE.parent / "pyproject.toml"
    mypy = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(config)]
    for target in (["-p", "dbseal"], [str(HERE)]):
        run = subprocess.run(mypy + target, capture_output=True, text=True, cwd=HERE.parent)
        assert run.returncode == 0, run.stdout + run.stderr


def test_package_is_typed() -> None:
    package = Path(dbseal.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_dbseal.pyi").exists()


def test_plugin_is_registered_by_its_entry_point(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("dbseal")
    store = request.getfixturevalue("dbseal_store")
    assert isinstance(store, dbseal.Store)
    assert isinstance(request.getfixturevalue("dbseal_identity"), dbseal.Identity)


def test_public_names() -> None:
    for name in dbseal.__all__:
        assert hasattr(dbseal, name), name
