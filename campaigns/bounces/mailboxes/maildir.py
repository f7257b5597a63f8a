"""A Maildir the mail server delivers the bounce address into (Postfix, Dovecot's LDA, Exim).

Messages are the files of ``new/`` and ``cur/``; one marked trashed (flag
``T``) is on its way out and not read. Acted-on messages are renamed into the
Maildir++ subfolder ``.processed`` (its ``new/`` or ``cur/``, as they were,
name and flags kept), which Dovecot shows as the folder "processed". Nothing
else is renamed, re-flagged or deleted: a message rebook leaves alone stays
exactly where the mail server put it.

The position is the change time (``ctime``) and key of the last message
read. A file's ctime is set by the kernel when the file arrives in ``new/``
(rename or link) and cannot be set by ``touch`` or ``cp -p``, unlike its
mtime, which a copy that keeps times would put in the past, behind the
position. A read therefore costs one directory listing and one ``stat`` per
file; only newer files are opened. Two things follow from the clock:

- a file that arrives while the folder is being listed could be missed by
  the listing yet carry an older ctime than files it saw; so a read takes
  only files changed at least ``SETTLE`` before the listing began (and, if
  some are younger, waits that long once and lists again);
- another program renaming a message (a mail client moving it to ``cur/`` or
  flagging it) gives it a new ctime, so it is read once more: harmless, as
  acting on a message twice changes nothing. A clock stepped backwards is
  noticed (the position lies in the future) and reading starts over.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from campaigns.bounces.mailboxes.base import (
    MAX_MESSAGE,
    Incoming,
    MailboxError,
    MailboxRefused,
    MailboxUnavailable,
)

# How long before a listing a file must have arrived to be certain the listing
# saw it: far above the kernel's coarse clock tick (4-10 ms) that stamps ctime.
SETTLE = 0.25
_SETTLE_NS = int(SETTLE * 1e9)

_Position = tuple[int, str]  # (ctime in ns, key): read what sorts after it
_ALL = "\U0010ffff"  # as a key: every file of that ctime (sorts after any real key)
_START = (-1, _ALL)


@dataclass(frozen=True, order=True)
class _Entry:
    changed: int  # st_ctime_ns
    key: str
    folder: str  # "new" or "cur"
    name: str  # the key and, in cur/, ":2," and the flags


class MaildirBox:
    """The Maildir at ``path``; acted-on messages go to its ``processed`` subfolder."""

    def __init__(self, path: Path, processed: str = ".processed") -> None:
        self.path = Path(path)
        self.processed_folder = processed
        self.position: str | None = None
        self._where: dict[str, _Entry] = {}  # key -> its file, as last listed
        self._target: Path | None = None  # the processed folder, once made

    def read(self, position: str | None) -> Iterator[Incoming]:
        after = _parse(position)
        started = time.time_ns()
        if after > (started, _ALL):
            after = _START  # the clock went back: start over rather than skip
        entries = self._waiting(after)
        if entries and entries[-1].changed > started - _SETTLE_NS:  # some arrived just now
            time.sleep(SETTLE)
            started = time.time_ns()
            entries = self._waiting(after)
        settled = started - _SETTLE_NS
        entries = entries[: bisect.bisect_right([entry.changed for entry in entries], settled)]
        done = _format(max(after, (settled, _ALL)))  # everything that had settled was listed
        self.position = done if not entries else _format(after)
        for number, entry in enumerate(entries):
            message = self._load(entry)
            last = number == len(entries) - 1
            self.position = done if last else _format((entry.changed, entry.key))
            if message is not None:  # None: renamed meanwhile; its new ctime brings it back
                yield message

    def processed(self, key: str) -> None:
        target = self._processed_folder()
        for attempt in range(2):
            entry = self._where.get(key)
            if entry is None and attempt == 0:
                self._list()  # a key from an earlier box, or renamed since
                continue
            if entry is None:
                return
            try:
                os.rename(self.path / entry.folder / entry.name, target / entry.folder / entry.name)
            except FileNotFoundError:
                self._list()
                continue
            except OSError as error:
                raise _failure(
                    f"Maildir {self.path}: cannot move {key} into {target}", error
                ) from None
            del self._where[key]
            return

    def count(self, position: str | None = None) -> int:
        return len(self._waiting(_parse(position)))

    def __enter__(self) -> MaildirBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._where = {}

    def _waiting(self, after: _Position) -> list[_Entry]:
        return sorted(entry for entry in self._list() if (entry.changed, entry.key) > after)

    def _list(self) -> list[_Entry]:
        """Every message file of new/ and cur/ but the trashed; remembered for processed()."""
        entries = []
        for folder in ("new", "cur"):
            try:
                with os.scandir(self.path / folder) as found:
                    entries.extend(
                        entry for item in found if (entry := _entry(folder, item)) is not None
                    )
            except FileNotFoundError:
                raise MailboxRefused(
                    f"Maildir {self.path}: no {folder}/ folder: is this the folder the mail "
                    "server delivers the bounce address to? (it makes new/, cur/ and tmp/)"
                ) from None
            except OSError as error:
                raise _failure(f"Maildir {self.path}: cannot list {folder}/", error) from None
        self._where = {entry.key: entry for entry in entries}
        return entries

    def _load(self, entry: _Entry) -> Incoming | None:
        """The file's bytes, at most MAX_MESSAGE of them, read once into one buffer."""
        try:
            with open(self.path / entry.folder / entry.name, "rb", buffering=0) as file:
                size = os.fstat(file.fileno()).st_size
                raw = file.read(min(size, MAX_MESSAGE)) or b""
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _failure(
                f"Maildir {self.path}: cannot read {entry.folder}/{entry.name}", error
            ) from None
        return Incoming(entry.key, raw, size if size > len(raw) else None)

    def _processed_folder(self) -> Path:
        """``.processed`` with its tmp/, new/ and cur/, made with the Maildir's own permissions."""
        if self._target is None:
            target = self.path / self.processed_folder
            try:
                mode = stat.S_IMODE(self.path.stat().st_mode)
                for folder in ("tmp", "new", "cur"):
                    (target / folder).mkdir(mode=mode, parents=True, exist_ok=True)
                (target / "maildirfolder").touch(mode=0o600)  # Maildir++: a subfolder
            except OSError as error:
                raise _failure(
                    f"Maildir {self.path}: cannot make the folder {target}", error
                ) from None
            self._target = target
        return self._target


def _entry(folder: str, item: os.DirEntry[str]) -> _Entry | None:
    name = item.name
    if name.startswith("."):
        return None
    key, _, info = name.partition(":")
    if folder == "cur" and info.startswith("2,") and "T" in info[2:]:
        return None  # trashed by a mail client: on its way out
    try:
        found = item.stat(follow_symlinks=False)
    except FileNotFoundError:  # renamed while listing; its new name comes next time
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return _Entry(found.st_ctime_ns, key, folder, name)


def _parse(position: str | None) -> _Position:
    """The (ctime, key) a position names; anything else (None, another mailbox's) starts over."""
    if position:
        changed, slash, key = position.partition("/")
        if changed.isdigit():
            return int(changed), key if slash else _ALL
    return _START


def _format(position: _Position) -> str:
    changed, key = position
    return str(changed) if key == _ALL else f"{changed}/{key}"


def _failure(what: str, error: OSError) -> MailboxError:
    """Rights the owner must grant, or trouble (a full or failing disk) that may pass."""
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
        return MailboxRefused(f"{what}: {reason}")
    return MailboxUnavailable(f"{what}: {reason}")
