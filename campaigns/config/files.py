"""Reading the files the config names: regular files only, never a FIFO or a device.

A FIFO named as a key file or as config.toml would make ``open`` wait for a
writer that never comes, and ``rebook check`` hang with it; a device such as
``/dev/zero`` would never end. Each is refused with what it is instead.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MOST_BYTES = 16 << 20  # a config, a key or a CA file is a few kilobytes; this is a mistake


def read_regular(path: Path, what: str, limit: int = MOST_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (a symlink to one is followed).

    ``ValueError`` says why not: missing, a folder, a FIFO, a device, too big,
    or unreadable. The file is opened without blocking, so a FIFO swapped in
    after the first look is still refused rather than waited on.
    """
    _regular(_stat(path, what), path, what)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise ValueError(_os_reason(path, error, what)) from None
    with os.fdopen(descriptor, "rb") as file:
        _regular(os.fstat(descriptor), path, what)
        try:
            data = file.read(limit + 1)
        except OSError as error:  # /proc/self/mem calls itself a regular file
            raise ValueError(_os_reason(path, error, what)) from None
    if len(data) > limit:
        raise ValueError(f"{path} is over {limit >> 20} MB: not {what}")
    return data


def check_regular(path: Path, what: str) -> None:
    """``ValueError`` if ``path`` exists and is not a regular file (a file yet to come is fine)."""
    try:
        info = path.stat()
    except OSError:
        return
    _regular(info, path, what)


def _stat(path: Path, what: str) -> os.stat_result:
    try:
        return path.stat()
    except OSError as error:
        raise ValueError(_os_reason(path, error, what)) from None


def _regular(info: os.stat_result, path: Path, what: str) -> None:
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    kind = (
        "a folder" if stat.S_ISDIR(mode)
        else "a FIFO" if stat.S_ISFIFO(mode)
        else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "something else"
    )  # fmt: skip
    raise ValueError(f"{path} is not a regular file but {kind}: expected {what}")


def _os_reason(path: Path, error: OSError, what: str) -> str:
    if isinstance(error, FileNotFoundError):
        return f"{path}: no such file"
    if isinstance(error, PermissionError):
        return f"{path}: no permission to read it"
    if isinstance(error, IsADirectoryError):
        return f"{path} is a folder, not {what}"
    return f"{path}: cannot read: {error.strerror or error}"
