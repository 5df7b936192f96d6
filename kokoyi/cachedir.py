"""Where kokoyi keeps per-user caches, and when a cached file may be trusted.

Neutral ground: the compiler (lark's parser tables) and the runtime (kokoyi.load's generated
code) both use it, and neither imports the other for it.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path


def cache_dir() -> Path:
    """The per-user folder of cached generated code."""
    explicit = os.environ.get("KOKOYI_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "kokoyi"


def trusted(st: os.stat_result, folder_mode: bool) -> bool:
    """Whether only this user (or root) can have written the file or folder st describes."""
    if not hasattr(os, "getuid"):  # no POSIX owners (Windows): the user's profile folder is private
        return True
    if st.st_uid not in (os.getuid(), 0):
        return False
    if folder_mode:
        return stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IWOTH
    return stat.S_ISREG(st.st_mode) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
