"""The wheel: the package and its data, without the tests that live beside the code."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[zipfile.ZipFile, str]:
    """A wheel built from a copy of the project (so no build/ or egg-info lands in the tree)."""
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "kokoyi", src / "kokoyi", ignore=shutil.ignore_patterns("__pycache__"))
    out = src / "dist"
    # No build isolation: the venv's setuptools, so the test needs no download.
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (path,) = out.glob("kokoyi-*.whl")
    return zipfile.ZipFile(path), done.stdout + done.stderr


def test_wheel_has_no_tests(wheel):
    archive, _ = wheel
    names = archive.namelist()
    tests = [n for n in names if n.endswith(("_test.py", "/conftest.py", "/test_utils.py"))]
    assert not tests, tests
    # ... and everything else of the package.
    sources = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "kokoyi").rglob("*.py")
                     if not p.name.endswith("_test.py") and p.name not in ("conftest.py", "test_utils.py"))
    assert sources and set(sources) <= set(names), set(sources) - set(names)
    assert "kokoyi/compiler/grammar.lark" in names and "kokoyi/py.typed" in names


def test_license_is_an_spdx_expression(wheel):
    archive, log = wheel
    (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    assert "License-Expression: Apache-2.0" in archive.read(metadata).decode()
    # setuptools warns (through pip as BuildBackendWarning) about a license table, and other
    # deprecated settings.
    assert "deprecated" not in log, log[log.find("deprecated") - 300:][:1500]
