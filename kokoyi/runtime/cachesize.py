"""The cache folder's size limit: least recently used entries go first.

Every edit of the compiler, every file and every call signature makes new entries
(`kokoyi.load`'s generated code at the top of the folder, kernels in `kernels/`), and
nothing else ever removes the old ones. So the folder is kept under
`$KOKOYI_CACHE_MAX_MB` mebibytes (default 256; 0 turns the limit off): after a write,
when the entries add up to more, the least recently used are deleted until they take
at most 80 % of it (so that the next writes do not prune again at once).

"Used" is the file's modification time: a read that finds an entry touches it. Only
entries (a 40-digit hexadecimal name ending in `.json`) are counted and deleted, never
another file in the folder. Scanning the folder costs a `stat` per entry, so a process
checks at its first write into a folder and then every `CHECK_EVERY` writes. Deleting is
best-effort and safe against other processes: a reader that loses an entry generates it
again, as after `rm -r`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_MAX_MB = 256
CHECK_EVERY = 256
KEEP_FRACTION = 0.8
SUBFOLDERS = ("", "kernels")
_ENTRY = re.compile(r"[0-9a-f]{40}\.json")

_writes: dict[str, int] = {}  # cache folder -> writes of this process since its last check


def limit_bytes() -> int | None:
    """The folder's limit in bytes, or None when there is none (unset: the default)."""
    text = os.environ.get("KOKOYI_CACHE_MAX_MB", "").strip()
    try:
        mb = float(text) if text else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return None if mb <= 0 else int(mb * 1024 * 1024)


def entries(folder: Path) -> list[tuple[float, int, Path]]:
    """(modification time, size, path) of every entry in the folder and its subfolders."""
    found = []
    for sub in SUBFOLDERS:
        try:
            with os.scandir(folder / sub if sub else folder) as it:
                for item in it:
                    if _ENTRY.fullmatch(item.name) and item.is_file(follow_symlinks=False):
                        st = item.stat(follow_symlinks=False)
                        found.append((st.st_mtime, st.st_size, Path(item.path)))
        except OSError:
            continue
    return found


def prune(folder: Path, limit: int) -> int:
    """Delete the least recently used entries while they add up to more than limit; how many."""
    found = entries(folder)
    total = sum(size for _, size, _ in found)
    if total <= limit:
        return 0
    removed = 0
    keep = limit * KEEP_FRACTION
    for _, size, path in sorted(found, key=lambda e: e[0]):
        if total <= keep:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed += 1
    return removed


def written(folder: Path) -> None:
    """Note a write of an entry into the cache folder; check the limit when it is time."""
    limit = limit_bytes()
    if limit is None:
        return
    key = str(folder)
    count = _writes.get(key)
    if count is None or count + 1 >= CHECK_EVERY:
        _writes[key] = 0
        prune(folder, limit)
    else:
        _writes[key] = count + 1


def used(path: Path) -> None:
    """Note that an entry was read: it becomes the most recently used (best-effort)."""
    try:
        os.utime(path)
    except OSError:
        pass
