"""kokoyi.load and its cache of generated code (kokoyi.runtime.cache)."""
from __future__ import annotations

import json
import os

import pytest
import torch

import kokoyi
from kokoyi.runtime import cache

POLICY = r"""%kokoyi
\Module{\pi}{s; Linears}
  \Return \Softmax(Linears[1](\ReLU(Linears[0](s)))) \\
\EndModule
\phi \gets 3 \\
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def policy_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "policy.kyi"
    path.write_text(POLICY, encoding="utf-8")
    return "policy.kyi"


def entries(folder):
    return sorted(folder.glob("*.json"))


def policy_output(unit) -> torch.Tensor:
    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)])

    class Pi(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.Linears = layers

        def get_parameters(self):
            return self.Linears

        forward = unit[r"\pi"]

    return Pi()(torch.arange(4.0))


def forbid_codegen(monkeypatch):
    from kokoyi.compiler.emit import unit

    def generate(*args, **kwargs):
        raise AssertionError("the unit's module was generated on a cache hit")

    monkeypatch.setattr(unit, "generate", generate)


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("KOKOYI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "kokoyi"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "kokoyi"


def test_second_load_is_a_hit_that_skips_codegen(cache_dir, policy_file):
    first = kokoyi.load(policy_file)
    assert first.from_cache is False
    assert len(entries(cache_dir)) == 1
    expected = policy_output(first)

    kokoyi.symbol.clear()
    with pytest.MonkeyPatch.context() as patch:
        forbid_codegen(patch)
        second = kokoyi.load(policy_file)
    assert second.from_cache is True
    assert second.python_source == first.python_source
    assert kokoyi.symbol["phi"] == 3
    torch.testing.assert_close(policy_output(second), expected)
    # later units still resolve names of the cached unit
    later = kokoyi.compile(r"\psi \gets \phi + 1 \\", filename="later.kyi")
    assert later["psi"] == 4


def test_entry_records_what_it_was_built_from(cache_dir, policy_file):
    unit = kokoyi.load(policy_file)
    (path,) = entries(cache_dir)
    entry = json.loads(path.read_text())
    assert entry["filename"] == policy_file
    assert entry["compiler"] == cache.compiler_fingerprint()
    assert entry["compiler"].startswith(kokoyi.__version__ + "+")
    assert entry["source_sha256"] == cache._sha256(POLICY)
    assert entry["code_sha256"] == cache._sha256(unit.python_source)
    assert entry["generated"]["code"] == unit.python_source


MARKER_CODE = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"


def _tamper(path, marker, *, fix_code_hash: bool, **header):
    entry = json.loads(path.read_text())
    code = MARKER_CODE.format(marker=str(marker))
    entry["generated"]["code"] = code
    if fix_code_hash:
        entry["code_sha256"] = cache._sha256(code)
    entry.update(header)
    path.write_text(json.dumps(entry))


def test_corrupt_entry_is_rebuilt_not_executed(cache_dir, policy_file, tmp_path):
    kokoyi.load(policy_file)
    (path,) = entries(cache_dir)
    marker = tmp_path / "marker"
    _tamper(path, marker, fix_code_hash=False)

    kokoyi.symbol.clear()
    unit = kokoyi.load(policy_file)
    assert not marker.exists()
    assert unit.from_cache is False
    assert kokoyi.symbol["phi"] == 3
    # the entry was replaced by a good one
    kokoyi.symbol.clear()
    assert kokoyi.load(policy_file).from_cache is True


@pytest.mark.parametrize("garbage", ["", "{not json", "[1, 2]", '{"format": 1}', "\x00\xff"])
def test_unreadable_entry_is_rebuilt(cache_dir, policy_file, garbage):
    kokoyi.load(policy_file)
    (path,) = entries(cache_dir)
    path.write_bytes(garbage.encode("utf-8", "surrogateescape"))
    kokoyi.symbol.clear()
    assert kokoyi.load(policy_file).from_cache is False
    assert kokoyi.symbol["phi"] == 3


@pytest.mark.parametrize("field, value", [
    ("compiler", "0.0.1+0000000000000000"),
    ("source_sha256", "0" * 64),
    ("filename", "other.kyi"),
    ("environment_sha256", "0" * 64),
    ("format", 0),
])
def test_foreign_entry_is_ignored(cache_dir, policy_file, tmp_path, field, value):
    """An entry whose code is intact but which was made for other inputs never runs."""
    kokoyi.load(policy_file)
    (path,) = entries(cache_dir)
    marker = tmp_path / "marker"
    _tamper(path, marker, fix_code_hash=True, **{field: value})

    kokoyi.symbol.clear()
    unit = kokoyi.load(policy_file)
    assert not marker.exists()
    assert unit.from_cache is False
    assert kokoyi.symbol["phi"] == 3


def test_edited_file_misses(cache_dir, policy_file, tmp_path):
    kokoyi.load(policy_file)
    (tmp_path / policy_file).write_text(POLICY.replace("3", "5"), encoding="utf-8")
    kokoyi.symbol.clear()
    unit = kokoyi.load(policy_file)
    assert unit.from_cache is False and kokoyi.symbol["phi"] == 5
    assert len(entries(cache_dir)) == 2


def test_environment_is_part_of_the_key(cache_dir, tmp_path, monkeypatch):
    """Code generated against one set of earlier units is not reused against another."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "uses.kyi").write_text(r"y \gets \mu + 1 \\", encoding="utf-8")
    kokoyi.compile(r"\mu \gets 1 \\")
    assert kokoyi.load("uses.kyi")["y"] == 2

    kokoyi.symbol.clear()
    kokoyi.compile(r"\mu(x) \gets x \\ \nu \gets 1 \\")  # \mu is now a function
    with pytest.raises(kokoyi.KokoyiError):
        kokoyi.load("uses.kyi")  # a function plus 1: the front end still checks

    kokoyi.symbol.clear()
    kokoyi.compile(r"\nu \gets 7 \\ \mu \gets 10 \\")
    unit = kokoyi.load("uses.kyi")
    assert unit.from_cache is False and unit["y"] == 11
    kokoyi.symbol.clear()
    kokoyi.compile(r"\mu \gets 1 \\")
    unit = kokoyi.load("uses.kyi")
    assert unit.from_cache is True and unit["y"] == 2


def test_unwritable_cache_folder_still_loads(tmp_path, policy_file, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(blocker / "cache"))
    assert kokoyi.load(policy_file).from_cache is False
    assert kokoyi.symbol["phi"] == 3


def test_missing_file_is_a_clear_error(cache_dir, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        kokoyi.load(tmp_path / "nowhere.kyi")
    assert "nowhere.kyi" in str(info.value) and "no such Kokoyi file" in str(info.value)


def test_bad_file_raises_a_located_error_and_registers_nothing(cache_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.kyi").write_text("a \\gets 1 \\\\\nb \\gets a + c \\\\\n", encoding="utf-8")
    with pytest.raises(kokoyi.KokoyiNameError) as info:
        kokoyi.load("bad.kyi")
    err = info.value
    assert (err.filename, err.line, err.column) == ("bad.kyi", 2, 13)
    assert "bad.kyi:2:13:" in str(err) and "^" in str(err)
    assert len(kokoyi.symbol) == 0
    assert entries(cache_dir) == []


def test_non_utf8_file_is_a_kokoyi_error(cache_dir, tmp_path):
    path = tmp_path / "latin1.kyi"
    path.write_bytes("x \\gets 1 \\\\ % caf\xe9\n".encode("latin-1"))
    with pytest.raises(kokoyi.KokoyiError, match="not UTF-8"):
        kokoyi.load(path)


def test_the_folder_stays_under_its_size_limit_least_recently_used_first(cache_dir, policy_file, tmp_path,
                                                                         monkeypatch):
    from kokoyi.runtime import cachesize

    monkeypatch.setattr(cachesize, "_writes", {})
    monkeypatch.setattr(cachesize, "CHECK_EVERY", 1)  # check at every write
    assert kokoyi.load(policy_file).from_cache is False
    (first,) = entries(cache_dir)
    size = first.stat().st_size
    monkeypatch.setenv("KOKOYI_CACHE_MAX_MB", str(2.5 * size / 2**20))  # room for two entries
    os.utime(first, (1.0, 1.0))  # long unused...
    kokoyi.symbol.clear()  # (each load in a fresh registry: the same environment, so a hit)
    assert kokoyi.load(policy_file).from_cache is True  # ...until this hit touches it
    assert first.stat().st_mtime > 1.0
    names = []
    for n in range(4):  # four more files: each load writes an entry, the oldest go
        path = tmp_path / f"f{n}.kyi"
        path.write_text(POLICY.replace("3", str(4 + n)), encoding="utf-8")
        kokoyi.symbol.clear()
        kokoyi.load(path.name)
        names.append(entries(cache_dir))
        assert sum(p.stat().st_size for p in entries(cache_dir)) <= 2.5 * size
    assert first not in names[-1] and len(names[-1]) == 2
    kokoyi.symbol.clear()
    assert kokoyi.load(policy_file).from_cache is False  # pruned: generated again, and stored
