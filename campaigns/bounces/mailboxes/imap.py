"""The bounce address's mailbox on an IMAP server, read with imapclient (synchronous).

A read is a few round trips however many messages wait: ``UID SEARCH`` for
the UIDs past the position (skipping messages flagged ``\\Deleted``: on their
way out, and rebook's own when the server lacks UIDPLUS, below), sizes in
one ``UID FETCH`` per 500, then the messages in ``UID FETCH`` batches
of at most ``BATCH_BYTES`` (one message alone when it is larger). Bodies are
fetched with ``BODY.PEEK[]``, which leaves ``\\Seen`` unset; a message over
``MAX_MESSAGE`` is fetched as its first ``MAX_MESSAGE`` bytes
(``BODY.PEEK[]<0.N>``) and so is never held whole.

The position is "UIDVALIDITY:UID" of the last message read. UIDs only grow
within one UIDVALIDITY; when the server gives the folder a new one (it was
recreated, or restored), every old UID is meaningless and reading starts
over, which is safe because acting on a message twice changes nothing.

Moving uses ``UID MOVE`` (RFC 6851). Without it, ``UID COPY``, ``\\Deleted``
and ``UID EXPUNGE`` of those UIDs only (RFC 4315 UIDPLUS); a plain ``EXPUNGE``
would also remove whatever other clients had marked deleted, so without
UIDPLUS the copied messages stay flagged ``\\Deleted`` for the owner's mail
client (or the server's expunge) to remove, and are not read again.
Messages processed are moved together, one command per batch (before the
next FETCH, at the end of the read, or at ``close()``): Dovecot takes 4-9 ms
for a MOVE of one message and ~20 ms for 500, so 10,000 took 136 s one by
one and take about 1 s in batches (bench/mailbox.py). A process killed
midway leaves the moves of its last batch undone: those messages stay in
the folder, acted on and behind the position, so never acted on again.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from campaigns.bounces.mailboxes.base import (
    MAX_MESSAGE,
    Incoming,
    MailboxError,
    MailboxRefused,
)
from campaigns.bounces.mailboxes.imap_errors import failure, refusal, said

BATCH_BYTES = 4 * 1024 * 1024  # messages fetched per round trip, by their size
BATCH_COUNT = 500  # and by their number: a list of 500 UIDs is a line under 8 KiB (RFC 7162)
SIZES_AT_ONCE = 500  # UIDs whose sizes one FETCH asks
IDLE_AT_MOST = 29 * 60  # seconds: servers may end an IDLE after 30 minutes (RFC 2177)

Security = Literal["tls", "starttls", "none"]
T = TypeVar("T")


class ImapBox:
    """``folder`` of ``user`` on ``host``; acted-on messages go to ``processed_folder``.

    Folder names are written with "/" between levels and translated to the
    server's own separator and personal prefix ("rebook/processed" becomes
    "INBOX.rebook.processed" on a Courier-style server). The connection is
    made at the first call and kept; after any trouble it is dropped, and
    the next call connects again. One box serves one thread at a time.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        folder: str = "INBOX",
        processed_folder: str = "rebook/processed",
        security: Security = "tls",
        ca_file: Path | None = None,
        timeout: float = 30,
    ) -> None:
        self.host, self.port, self.user = host, port, user
        self.folder, self.processed_folder = folder, processed_folder
        self.security, self.ca_file, self.timeout = security, ca_file, timeout
        self.__password = password
        self.position: str | None = None
        self._client: IMAPClient | None = None
        self._validity = 0  # UIDVALIDITY of the folder as last selected
        self._names: tuple[str, str] | None = None  # both folders as the server spells them
        self._target_ready = False
        self._pending: list[int] = []  # UIDs processed, to move with the next batch
        self._pending_validity = 0

    def __repr__(self) -> str:  # never the password
        return f"ImapBox({self._where()}, folder={self.folder!r})"

    def read(self, position: str | None) -> Iterator[Incoming]:
        self._move_pending()
        validity, last = self._select(), 0
        if position is not None and position.startswith(f"{validity}:"):
            last = _uid(position.partition(":")[2])
        self.position = f"{validity}:{last}"
        found = self._call("search", lambda c: c.search(["UID", f"{last + 1}:*", "UNDELETED"]))
        uids = sorted(uid for uid in found if uid > last)  # n:* always names the highest UID
        for start in range(0, len(uids), SIZES_AT_ONCE):
            chunk = uids[start : start + SIZES_AT_ONCE]
            sizes = self._sizes(chunk)
            for batch in batches(chunk, sizes, BATCH_BYTES, BATCH_COUNT):
                self._move_pending()
                bodies = self._bodies(batch, sizes)
                for uid in batch:
                    self.position = f"{validity}:{uid}"
                    if uid in bodies:  # not there: expunged by another client meanwhile
                        raw = bodies.pop(uid)
                        size = sizes[uid] if sizes[uid] > len(raw) else None
                        yield Incoming(f"{validity}:{uid}", raw, size)
        self._move_pending()

    def processed(self, key: str) -> None:
        """Moved with the others of its batch: before the next FETCH, at the end, or close()."""
        validity, _, uid = key.partition(":")
        if not (validity.isdigit() and uid.isdigit()):
            raise ValueError(f"not a key of an IMAP message: {key!r}")
        if int(validity) != self._select(keep=True):
            return  # the folder was recreated since: that UID may name another message now
        self._pending.append(int(uid))
        if len(self._pending) >= BATCH_COUNT:
            self._move_pending()

    def count(self, position: str | None = None) -> int:
        self._move_pending()
        validity = self._select()
        last = 0
        if position is not None and position.startswith(f"{validity}:"):
            last = _uid(position.partition(":")[2])
        found = self._call("search", lambda c: c.search(["UID", f"{last + 1}:*", "UNDELETED"]))
        return sum(1 for uid in found if uid > last)

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for new mail (IMAP IDLE, RFC 2177); True once some arrives.

        False when the time is up, and at once on a server without IDLE (the
        caller then reads on its own schedule). A wait is cut to 29 minutes,
        as RFC 2177 asks: servers may drop an IDLE that lasts longer.
        """
        self._move_pending()
        self._select()
        assert self._client is not None
        if not self._client.has_capability("IDLE"):
            return False

        def idle(client: IMAPClient) -> list:
            client.idle()
            try:
                return client.idle_check(timeout=min(seconds, IDLE_AT_MOST))
            finally:
                client.idle_done()
                client.socket().settimeout(self.timeout)  # idle_check leaves it with none

        answers = self._call("idle", idle)
        return any(len(answer) > 1 and answer[1] == b"EXISTS" for answer in answers)

    def __enter__(self) -> ImapBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Make the moves still pending, then log out."""
        try:
            if self._client is not None:
                self._move_pending()
        finally:
            self._disconnect()

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except (IMAPClientError, OSError):
                client.shutdown()

    # -- the connection ------------------------------------------------------------------

    def _where(self) -> str:
        return f"IMAP {self.host}:{self.port} (user {self.user!r})"

    def _connect(self) -> IMAPClient:
        context = None
        if self.security != "none":
            context = ssl.create_default_context(cafile=self.ca_file)  # None: the system's CAs
        client = None
        try:
            client = IMAPClient(
                self.host, self.port, ssl=self.security == "tls", ssl_context=context,
                timeout=self.timeout,
            )  # fmt: skip
            # imapclient sets imaplib's debug level to 5 to trace into its logger, and
            # imaplib then formats repr() of every literal before any logger is asked:
            # a 20 MB message held three times over, every body repr'd. Tracing off.
            client._imap.debug = 0
            if self.security == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise MailboxRefused(
                        f"{self._where()}: the server does not offer STARTTLS (security "
                        '"starttls"); use "tls" if this is its TLS port (usually 993)'
                    )
                client.starttls(context)
            client.login(self.user, self.__password)
            self._names = None
            self._target_ready = False
            return client
        except BaseException as error:
            if client is not None:
                client.shutdown()
            if isinstance(error, MailboxError):
                raise
            if isinstance(error, Exception):
                raise self._failure(error) from None
            raise

    def _select(self, keep: bool = False) -> int:
        """Select the folder (again, to see what arrived) and return its UIDVALIDITY."""
        if keep and self._client is not None:
            return self._validity
        if self._client is None:
            self._client = self._connect()
        folder = self._server_names()[0]
        try:
            selected = self._client.select_folder(folder)
        except IMAPClientAbortError as error:
            raise self._drop(error) from None
        except IMAPClientError as error:
            self._disconnect()  # of no use until the owner names a folder that is there
            raise MailboxRefused(
                f"{self._where()}: cannot open the folder {folder!r}: {said(error)}"
            ) from None
        except Exception as error:
            raise self._drop(error) from None
        self._validity = int(selected[b"UIDVALIDITY"])
        if self._validity != self._pending_validity:
            self._pending, self._pending_validity = [], self._validity
        return self._validity

    def _server_names(self) -> tuple[str, str]:
        if self._names is None:
            prefix, separator = self._call("namespace", _personal_namespace)
            self._names = (
                server_folder(self.folder, prefix, separator),
                server_folder(self.processed_folder, prefix, separator),
            )
        return self._names

    def _target(self) -> str:
        """The processed folder, created (and subscribed, so mail clients show it) if missing."""
        target = self._server_names()[1]
        if not self._target_ready:
            if not self._call("list", lambda c: c.folder_exists(target)):
                try:
                    self._call(f"create {target!r}", lambda c: c.create_folder(target))
                except MailboxError:
                    if not self._call("list", lambda c: c.folder_exists(target)):
                        raise  # not made meanwhile by another rebook
                self._call(f"subscribe {target!r}", lambda c: c.subscribe_folder(target))
            self._target_ready = True
        return target

    def _move_pending(self) -> None:
        """One MOVE (or COPY, STORE, UID EXPUNGE) for every message processed since the last."""
        if not self._pending:
            return
        target = self._target()
        if self._select(keep=True) != self._pending_validity:
            self._pending = []  # the folder was recreated: those UIDs name nothing of ours
            return
        uids = uid_set(self._pending)
        assert self._client is not None
        if self._client.has_capability("MOVE"):
            self._call(f"move to {target!r}", lambda c: c.move(uids, target))
        else:
            self._call(f"copy to {target!r}", lambda c: c.copy(uids, target))
            self._call("flag \\Deleted", lambda c: c.add_flags(uids, [DELETED], silent=True))
            if self._client.has_capability("UIDPLUS"):
                self._call("expunge", lambda c: c.uid_expunge(uids))
        self._pending = []

    def _sizes(self, uids: list[int]) -> dict[int, int]:
        found = self._call("fetch sizes", lambda c: c.fetch(uids, [b"RFC822.SIZE"]))
        return {uid: int(data.get(b"RFC822.SIZE", 0)) for uid, data in found.items()}

    def _bodies(self, batch: list[int], sizes: dict[int, int]) -> dict[int, bytes]:
        if len(batch) == 1 and sizes.get(batch[0], 0) > MAX_MESSAGE:
            want, answer = f"BODY.PEEK[]<0.{MAX_MESSAGE}>".encode(), b"BODY[]<0>"
        else:
            want, answer = b"BODY.PEEK[]", b"BODY[]"
        found = self._call("fetch messages", lambda c: c.fetch(batch, [want]))
        return {uid: data.get(answer) or b"" for uid, data in found.items() if uid in sizes}

    def _call(self, what: str, command: Callable[[IMAPClient], T]) -> T:
        """Run one command; a refusal names it, a lost connection is dropped for the next call."""
        if self._client is None:
            self._select()  # connected again: the folder selected, as every command expects
        assert self._client is not None
        try:
            return command(self._client)
        except IMAPClientAbortError as error:
            raise self._drop(error) from None
        except IMAPClientError as error:
            raise refusal(what, error, where=self._where()) from None
        except Exception as error:
            raise self._drop(error) from None

    def _drop(self, error: Exception) -> MailboxError:
        client, self._client = self._client, None
        if client is not None:
            client.shutdown()
        return self._failure(error)

    def _failure(self, error: Exception) -> MailboxError:
        return failure(
            error, where=self._where(), host=self.host, security=self.security,
            ca_file=self.ca_file, timeout=self.timeout,
        )  # fmt: skip


def batches(
    uids: list[int], sizes: dict[int, int], most_bytes: int, most: int
) -> Iterator[list[int]]:
    """UIDs in order, cut so a batch holds at most ``most`` messages and ``most_bytes``.

    A message larger than ``most_bytes`` is a batch of its own. UIDs without
    a size (expunged meanwhile) are left out.
    """
    batch: list[int] = []
    total = 0
    for uid in uids:
        if uid not in sizes:
            continue
        size = min(sizes[uid], MAX_MESSAGE)
        if batch and (total + size > most_bytes or len(batch) == most):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def uid_set(uids: list[int]) -> list[str]:
    """UIDs as IMAP ranges ("4:9", "12"): one short command line however many there are."""
    ranges: list[str] = []
    ordered = sorted(set(uids))
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            first, last = ordered[start], ordered[index - 1]
            ranges.append(str(first) if first == last else f"{first}:{last}")
            start = index
    return ranges


def server_folder(name: str, prefix: str, separator: str) -> str:
    """``name`` ("rebook/processed") as the server spells it: its separator, its personal prefix."""
    if name.upper() == "INBOX":
        return "INBOX"
    if separator and separator != "/":
        name = name.replace("/", separator)
    if prefix and not name.upper().startswith(prefix.upper()):
        name = prefix + name
    return name


def _personal_namespace(client: IMAPClient) -> tuple[str, str]:
    """The personal namespace's prefix and separator: "INBOX.", "." on Courier; "", "/" on Gmail."""
    if client.has_capability("NAMESPACE"):
        personal = client.namespace().personal
        if personal:
            prefix, separator = personal[0]
            return prefix, separator or ""
    folders = client.list_folders("", "")  # LIST "" "": the separator alone
    return "", (folders[0][1].decode() if folders and folders[0][1] else "")


def _uid(text: str) -> int:
    return int(text) if text.isdigit() else 0
