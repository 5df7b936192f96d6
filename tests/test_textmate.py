"""The TextMate grammar and the VS Code extension folder (editors/vscode).

The grammar is generated from the compiler's tables (kokoyi.editors.textmate); node runs
editors/vscode/test/grammar.test.mjs, which tokenises every example with vscode-textmate
and vscode-oniguruma, the engine VS Code uses.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kokoyi.editors.textmate import GRAMMAR_PATH, grammar

ROOT = Path(__file__).resolve().parents[1]
VSCODE = ROOT / "editors" / "vscode"


def test_committed_grammar_is_the_generated_one():
    committed = json.loads(GRAMMAR_PATH.read_text(encoding="utf-8"))
    assert committed == grammar(), "stale grammar: run `python -m kokoyi.editors.textmate`"


def test_extension_declares_the_language_and_the_grammar():
    package = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = package["contributes"]["languages"]
    (syntax,) = package["contributes"]["grammars"]
    assert language["id"] == syntax["language"] == "kokoyi" and language["extensions"] == [".kyi"]
    assert syntax["scopeName"] == grammar()["scopeName"]
    assert (VSCODE / syntax["path"]).resolve() == GRAMMAR_PATH
    config = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"]["lineComment"] == "%"
    assert ["{", "}"] in config["brackets"] and ["\\{", "\\}"] in config["brackets"]


def test_node_tokenises_every_example():
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have node and npm (see .ci/run)")
        pytest.skip("node and npm are not installed")
    if not (VSCODE / "node_modules" / "vscode-textmate").exists():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=VSCODE, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    done = subprocess.run([node, "--test", "test/grammar.test.mjs"], cwd=VSCODE, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout
