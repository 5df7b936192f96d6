"""The cache folder's size limit (kokoyi/runtime/cachesize.py)."""
from __future__ import annotations

import os

import pytest

from kokoyi.runtime import cachesize


def entry(folder, n: int, size: int, mtime: float, sub: str = ""):
    path = (folder / sub if sub else folder) / f"{n:040x}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


def test_prune_deletes_the_least_recently_used_entries_down_to_the_kept_fraction(tmp_path):
    paths = [entry(tmp_path, n, 1000, 1000.0 + n, sub="kernels" if n % 2 else "") for n in range(10)]
    other = tmp_path / "lark-tables.bin"  # not an entry: never counted, never deleted
    other.write_bytes(b"y" * 50_000)
    assert cachesize.prune(tmp_path, 10_000) == 0  # at the limit: nothing to do
    removed = cachesize.prune(tmp_path, 9_000)  # over it: down to 80 % of 9,000 bytes
    assert removed == 3
    assert [p.exists() for p in paths] == [False] * 3 + [True] * 7
    assert other.exists()


def test_a_read_entry_becomes_the_most_recently_used(tmp_path):
    paths = [entry(tmp_path, n, 1000, 1000.0 + n) for n in range(4)]
    cachesize.used(paths[0])
    cachesize.prune(tmp_path, 3_900)  # one entry to delete: the oldest unused
    assert [p.exists() for p in paths] == [True, False, True, True]
    cachesize.used(tmp_path / "missing.json")  # best-effort: no error


def test_a_process_checks_at_its_first_write_and_then_every_so_many(tmp_path, monkeypatch):
    monkeypatch.setenv("KOKOYI_CACHE_MAX_MB", str(4000 / 2**20))
    monkeypatch.setattr(cachesize, "_writes", {})
    monkeypatch.setattr(cachesize, "CHECK_EVERY", 3)
    for n in range(6):
        entry(tmp_path, n, 1000, 1000.0 + n)
    cachesize.written(tmp_path)  # first write: 6,000 bytes > 4,000 -> down to 3,200
    assert len(cachesize.entries(tmp_path)) == 3
    for n in range(6, 9):
        entry(tmp_path, n, 1000, 1000.0 + n)
        cachesize.written(tmp_path)
        assert len(cachesize.entries(tmp_path)) == (3 + n - 5 if n < 8 else 3)


@pytest.mark.parametrize("text, limit", [(None, 256 * 2**20), ("1", 2**20), ("0.5", 2**19), ("0", None),
                                         ("-3", None), ("lots", 256 * 2**20)])
def test_the_limit_comes_from_the_environment(monkeypatch, text, limit):
    if text is None:
        monkeypatch.delenv("KOKOYI_CACHE_MAX_MB", raising=False)
    else:
        monkeypatch.setenv("KOKOYI_CACHE_MAX_MB", text)
    assert cachesize.limit_bytes() == limit


def test_no_limit_never_scans(tmp_path, monkeypatch):
    monkeypatch.setenv("KOKOYI_CACHE_MAX_MB", "0")
    entry(tmp_path, 1, 10_000, 1000.0)
    cachesize.written(tmp_path)
    assert len(cachesize.entries(tmp_path)) == 1
