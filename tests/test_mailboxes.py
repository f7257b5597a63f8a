"""Reading returned mail: from a real Dovecot over IMAP, and from a real Maildir folder.

What a user would see: every message read once, oldest first and byte for
byte as stored; only the messages rebook acted on moved to the processed
folder; everything else exactly as it was (flags, place, bytes); a restart
neither skips nor repeats; a clear error naming the server or folder and
never the password.
"""

from __future__ import annotations

import mailbox
import os
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from campaigns.bounces.mailboxes import (
    MAX_MESSAGE,
    ImapBox,
    MailboxError,
    MailboxRefused,
    MailboxUnavailable,
    MaildirBox,
)
from campaigns.bounces.mailboxes import imap as imap_module
from campaigns.bounces.mailboxes.imap import batches, server_folder

from .dovecot import running_dovecot
from .smtpd import free_port

MB20 = 20 * 1024 * 1024


def message(number: int, size: int = 0, newline: bytes = b"\r\n") -> bytes:
    """A small returned message; ``size`` pads its body to about that many bytes."""
    head = (
        f"From: MAILER-DAEMON@mx.example\nTo: bounces@waso.example\n"
        f"Subject: Undelivered Mail Returned to Sender {number}\n"
        f"Message-ID: <{number}@mx.example>\n\n"
        f"This is message {number}.\n"
    ).encode()
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0"
    padding = b"".join([line + b"\n"] * max(0, (size - len(head)) // (len(line) + 1)))
    return (head + padding).replace(b"\n", newline)


def subject_numbers(incoming) -> list[int]:
    return [int(item.raw.split(b"Sender ", 1)[1].split(b"\r\n", 1)[0].split(b"\n", 1)[0])
            for item in incoming]  # fmt: skip


# -- IMAP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory):
    with running_dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


@pytest.fixture
def account(dovecot):
    return dovecot.add_user()


def test_imap_reads_every_message_oldest_first_byte_for_byte_and_marks_none_read(account) -> None:
    sent = [message(1), message(2), message(3) + "Grüße, naïve bytes: \xe9\r\n".encode("latin-1")]
    uids = account.append(*sent)
    box = ImapBox(**account.box_options())

    read = list(box.read(None))
    box.close()

    assert [item.raw for item in read] == sent
    validity = read[0].key.split(":")[0]
    assert [item.key for item in read] == [f"{validity}:{uid}" for uid in uids]
    assert not any(item.truncated for item in read)
    assert box.position == f"{validity}:{uids[-1]}"
    assert account.flags() == {uid: set() for uid in uids}  # not \Seen: read with PEEK


def test_imap_moves_only_what_was_processed_and_leaves_the_rest_exactly_as_it_was(
    account,
) -> None:
    plain, flagged, seen, ours = account.append(message(1), message(2), message(3), message(4))
    with account.client() as client:
        client.select_folder("INBOX")
        client.add_flags([flagged], [b"\\Flagged"])
        client.add_flags([seen], [b"\\Seen", b"\\Answered"])
    before = account.messages()
    box = ImapBox(**account.box_options())

    read = {item.key.split(":")[1]: item for item in box.read(None)}
    box.processed(read[str(ours)].key)
    box.close()

    assert "rebook/processed" in account.folders()  # created when first needed
    with account.client() as client:
        assert "rebook/processed" in [name for _, _, name in client.list_sub_folders()]
    assert list(account.messages("rebook/processed").values()) == [message(4)]
    assert account.flags() == {plain: set(), flagged: {b"\\Flagged"},
                               seen: {b"\\Seen", b"\\Answered"}}  # fmt: skip
    assert account.messages() == {uid: raw for uid, raw in before.items() if uid != ours}


def test_imap_restart_midway_neither_skips_nor_repeats(account, monkeypatch) -> None:
    monkeypatch.setattr(imap_module, "BATCH_COUNT", 2)  # several round trips, as with thousands
    account.append(*[message(n) for n in range(1, 8)])
    first = ImapBox(**account.box_options())
    stored = None
    handled = []
    for item in first.read(None):
        handled.append(item)
        if len(handled) % 2:
            first.processed(item.key)  # acted on: moved; the others are left alone
        stored = first.position  # stored after each message is dealt with
        if len(handled) == 3:
            break  # the process dies here
    first._client.shutdown()  # without logging out, as a killed process would

    account.append(message(8))
    second = ImapBox(**account.box_options())
    rest = list(second.read(stored))
    again = list(second.read(second.position))
    second.close()

    assert subject_numbers(handled) == [1, 2, 3]
    assert subject_numbers(rest) == [4, 5, 6, 7, 8]
    assert again == []
    # 1 was moved with its batch (before the next FETCH); the move of 3 died with the
    # process: it stays in the folder, behind the position, never acted on twice
    assert list(account.messages("rebook/processed").values()) == [message(1)]


def test_imap_moves_are_made_in_batches_and_all_made_by_the_end(account, monkeypatch) -> None:
    monkeypatch.setattr(imap_module, "BATCH_COUNT", 3)
    account.append(*[message(n) for n in range(1, 9)])
    box = ImapBox(**account.box_options())
    moved_while_reading = []

    for item in box.read(None):
        box.processed(item.key)
        moved_while_reading.append(len(account.messages("rebook/processed")))

    assert moved_while_reading == [0, 0, 3, 3, 3, 6, 6, 6]  # 3 makes a batch: moved at once
    assert len(account.messages("rebook/processed")) == 8  # the rest at the read's end
    assert account.messages() == {}
    box.close()


def test_imap_a_folder_with_a_new_uidvalidity_is_read_from_the_start(account) -> None:
    with account.client() as client:
        client.create_folder("bounces")
    account.append(message(1), message(2), folder="bounces")
    box = ImapBox(**account.box_options(folder="bounces"))
    old = list(box.read(None))
    position = box.position
    box.close()
    with account.client() as client:  # the folder is deleted and made again: UIDs restart
        client.delete_folder("bounces")
        client.create_folder("bounces")
    account.append(message(3), folder="bounces")

    box = ImapBox(**account.box_options(folder="bounces"))
    new = list(box.read(position))
    box.processed(old[0].key)  # names UID 1 of the old folder: never the new UID 1
    box.close()

    assert subject_numbers(new) == [3]
    assert new[0].key.split(":")[1] == "1" and new[0].key != old[0].key
    assert list(account.messages("bounces").values()) == [message(3)]


def test_imap_counts_what_waits(account) -> None:
    account.append(message(1), message(2), message(3))
    box = ImapBox(**account.box_options())
    first = next(box.read(None))

    assert box.count() == 3
    assert box.count(box.position) == 2
    box.processed(first.key)
    assert box.count() == 2
    box.close()


def test_a_wrong_password_is_refused_in_words_without_the_password(dovecot, account) -> None:
    password = "Wr0ng-Secret-Password!"
    box = ImapBox(**account.box_options(password=password))

    with pytest.raises(MailboxRefused) as refused:
        list(box.read(None))

    text = str(refused.value)
    assert f"IMAP 127.0.0.1:{dovecot.port}" in text and repr(account.user) in text
    assert "login was refused" in text and "Authentication failed" in text
    assert password not in text and password not in repr(box)
    with pytest.raises(MailboxRefused):
        box.count()


def test_a_server_that_does_not_answer_is_unavailable_for_now() -> None:
    box = ImapBox("127.0.0.1", free_port(), "bounces", "secret", security="none", timeout=5)

    with pytest.raises(MailboxUnavailable, match=r"cannot connect: Connection refused"):
        box.count()


def test_a_missing_folder_is_named(account) -> None:
    box = ImapBox(**account.box_options(folder="Bounces"))

    with pytest.raises(MailboxRefused, match=r"cannot open the folder 'Bounces'"):
        list(box.read(None))


def test_a_dropped_connection_is_unavailable_and_the_next_call_connects_again(
    dovecot, account
) -> None:
    account.append(message(1))
    box = ImapBox(**account.box_options())
    assert box.count() == 1
    kick = ["doveadm", "-c", str(dovecot.folder / "dovecot.conf"), "kick", account.user]
    subprocess.run(kick, check=True, capture_output=True, timeout=30)

    with pytest.raises(MailboxUnavailable, match="connection was lost"):
        box.count()
    assert box.count() == 1
    box.close()


def test_moves_cut_off_by_a_dropped_connection_are_made_on_the_next_call(dovecot, account) -> None:
    account.append(message(1), message(2))
    box = ImapBox(**account.box_options())
    first = next(iter(box.read(None)))
    box.processed(first.key)  # waits to be moved with its batch
    kick = ["doveadm", "-c", str(dovecot.folder / "dovecot.conf"), "kick", account.user]
    subprocess.run(kick, check=True, capture_output=True, timeout=30)

    with pytest.raises(MailboxUnavailable):
        box.count()
    assert box.count() == 1
    box.close()

    assert list(account.messages("rebook/processed").values()) == [message(1)]
    assert list(account.messages().values()) == [message(2)]


def test_wait_returns_as_soon_as_new_mail_arrives(account) -> None:
    box = ImapBox(**account.box_options())
    assert box.wait(0.3) is False  # nothing came
    later = threading.Timer(0.5, account.append, [message(1)])

    started = time.monotonic()
    later.start()
    arrived = box.wait(20)
    waited = time.monotonic() - started
    later.join()

    assert arrived and waited < 10
    assert subject_numbers(box.read(None)) == [1]  # the connection is usable after IDLE
    box.close()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_imap_over_tls_checks_the_certificate_against_the_ca_file(
    dovecot, account, security
) -> None:
    account.append(message(1))
    port = dovecot.tls_port if security == "tls" else dovecot.port
    box = ImapBox(**account.box_options(host="localhost", port=port, security=security,
                                        ca_file=dovecot.ca_file))  # fmt: skip

    assert subject_numbers(box.read(None)) == [1]
    box.close()


@pytest.mark.parametrize(
    ("host", "ca_file", "said"),
    [
        ("localhost", None, "the system's CAs"),  # a private CA the system does not know
        ("127.0.0.1", "ca", "is '127.0.0.1' the name on the certificate"),  # named localhost only
    ],
)
def test_a_certificate_that_does_not_verify_is_refused(dovecot, account, host, ca_file, said):
    ca = dovecot.ca_file if ca_file else None
    box = ImapBox(**account.box_options(host=host, port=dovecot.tls_port, security="tls",
                                        ca_file=ca))  # fmt: skip

    with pytest.raises(MailboxRefused, match="TLS certificate was refused") as refused:
        box.count()
    assert said in str(refused.value)


def test_tls_on_the_plain_port_says_which_port_is_which(dovecot, account) -> None:
    box = ImapBox(**account.box_options(port=dovecot.port, security="tls", ca_file=dovecot.ca_file))

    with pytest.raises(MailboxRefused, match=r"TLS handshake failed.*usually 993"):
        box.count()


def test_the_processed_folder_already_there_is_used_as_it_is(account) -> None:
    with account.client() as client:
        client.create_folder("rebook/processed")
    account.append(message(1), folder="rebook/processed")
    account.append(message(2))
    box = ImapBox(**account.box_options())

    for item in box.read(None):
        box.processed(item.key)
    box.close()

    assert list(account.messages("rebook/processed").values()) == [message(1), message(2)]
    assert account.messages() == {}


@pytest.mark.parametrize("uidplus", [True, False])
def test_a_server_without_move_copies_and_never_expunges_other_clients_mail(
    tmp_path, uidplus
) -> None:
    capability = "IMAP4rev1 NAMESPACE" + (" UIDPLUS" if uidplus else "")
    with running_dovecot(tmp_path / "dovecot", capability=capability) as server:
        account = server.add_user()
        theirs, ours, other = account.append(message(1), message(2), message(3))
        with account.client() as client:
            assert not client.has_capability("MOVE")
            client.select_folder("INBOX")
            client.add_flags([theirs], [b"\\Deleted"])  # another client's, not yet expunged
        box = ImapBox(**account.box_options())

        read = list(box.read(None))
        box.processed(read[0].key)
        later = list(box.read(None))  # from the start: what is left to read
        box.close()

        assert subject_numbers(read) == [2, 3]  # a message flagged deleted is on its way out
        assert list(account.messages("rebook/processed").values()) == [message(2)]
        flags = account.flags()
        assert flags[theirs] == {b"\\Deleted"} and flags[other] == set()
        if uidplus:
            assert ours not in flags  # UID EXPUNGE of that one UID
        else:
            assert flags[ours] == {b"\\Deleted"}  # left for the owner's client to expunge
        assert subject_numbers(later) == [3]


def test_folder_names_follow_the_servers_separator_and_prefix(tmp_path) -> None:
    with running_dovecot(tmp_path / "dovecot", separator=".", prefix="INBOX.") as server:
        account = server.add_user()
        with account.client() as client:
            client.create_folder("INBOX.bounces")
        account.append(message(1), folder="INBOX.bounces")
        box = ImapBox(**account.box_options(folder="bounces"))

        for item in box.read(None):
            box.processed(item.key)
        box.close()

        assert "INBOX.rebook.processed" in account.folders()
        assert list(account.messages("INBOX.rebook.processed").values()) == [message(1)]


@pytest.mark.parametrize(
    ("name", "prefix", "separator", "expected"),
    [
        ("rebook/processed", "", "/", "rebook/processed"),
        ("rebook/processed", "", ".", "rebook.processed"),
        ("rebook/processed", "INBOX.", ".", "INBOX.rebook.processed"),
        ("INBOX.rebook.processed", "INBOX.", ".", "INBOX.rebook.processed"),
        ("inbox", "INBOX.", ".", "INBOX"),
        ("Bounces", "", "", "Bounces"),
    ],
)
def test_server_folder(name, prefix, separator, expected) -> None:
    assert server_folder(name, prefix, separator) == expected


def test_batches_are_cut_by_count_and_bytes_and_a_large_message_goes_alone() -> None:
    sizes = {1: 10, 2: 10, 3: 10, 4: 500, 5: 10, 7: 10, 8: MAX_MESSAGE * 3, 9: 1}
    uids = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # 6 has no size: expunged meanwhile

    assert list(batches(uids, sizes, most_bytes=100, most=2)) == [
        [1, 2], [3], [4], [5, 7], [8], [9],
    ]  # fmt: skip


def test_imap_reads_a_20_mb_message_whole_once_in_memory_and_cuts_a_larger_one(account) -> None:
    big, huge = message(1, size=MB20), message(2, size=MAX_MESSAGE + 3 * 1024 * 1024)
    account.append(big, huge)
    box = ImapBox(**account.box_options())
    items = box.read(None)

    tracemalloc.start()
    first = next(items)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    second = next(items)
    box.close()

    assert first.raw == big and not first.truncated
    assert peak < 1.3 * len(big), f"{peak / len(big):.2f}x the message"
    assert second.truncated and second.size == len(huge)
    assert second.raw == huge[:MAX_MESSAGE]
    assert account.flags() != {}  # both still there, unflagged
    assert all(flags == set() for flags in account.flags().values())


# -- Maildir ------------------------------------------------------------------------------


def deliver(folder: Path, *messages: bytes, flags: str | None = None) -> list[str]:
    """Deliver as a mail server does (tmp/, then linked into new/); ``flags``: into cur/.

    A file's ctime comes from the kernel's coarse clock: messages delivered
    within one tick (4-10 ms) are "as old" as each other, so each waits a tick.
    """
    box = mailbox.Maildir(folder, create=True)
    keys = []
    for raw in messages:
        time.sleep(0.011)
        if flags is None:
            keys.append(box.add(raw))
        else:
            item = mailbox.MaildirMessage(raw)
            item.set_subdir("cur")
            item.set_flags(flags)
            keys.append(box.add(item))
    return keys


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}  # fmt: skip


def test_maildir_reads_new_and_cur_oldest_first_and_leaves_every_file_as_it_was(
    tmp_path,
) -> None:
    folder = tmp_path / "Maildir"
    first = deliver(folder, message(1, newline=b"\n"))
    second = deliver(folder, message(2, newline=b"\n"), flags="S")  # read by someone, in cur/
    deliver(folder, message(3, newline=b"\n"), flags="ST")  # trashed: on its way out
    third = deliver(folder, message(4, newline=b"\n") + b"\x00 NUL and \xff bytes\n")
    (folder / "new" / ".hidden").write_bytes(b"not a message")
    before = {path: (data, os.stat(folder / path).st_mtime_ns)
              for path, data in files(folder).items()}  # fmt: skip

    box = MaildirBox(folder)
    read = list(box.read(None))

    assert [item.key for item in read] == first + second + third
    assert read[-1].raw == message(4, newline=b"\n") + b"\x00 NUL and \xff bytes\n"
    assert subject_numbers(read) == [1, 2, 4]
    after = {path: (data, os.stat(folder / path).st_mtime_ns)
             for path, data in files(folder).items()}  # fmt: skip
    assert after == before


def test_maildir_moves_what_was_processed_into_dot_processed_as_it_was(tmp_path) -> None:
    folder = tmp_path / "Maildir"
    new_key = deliver(folder, message(1, newline=b"\n"))[0]
    cur_key = deliver(folder, message(2, newline=b"\n"), flags="S")[0]
    left = deliver(folder, message(3, newline=b"\n"))[0]
    names = {path.name for path in folder.glob("*/*")}

    box = MaildirBox(folder)
    for item in box.read(None):
        if item.key != left:
            box.processed(item.key)

    assert (folder / ".processed" / "maildirfolder").exists()
    assert [path.name for path in (folder / ".processed" / "new").iterdir()] == [new_key]
    assert [path.name for path in (folder / ".processed" / "cur").iterdir()] == [f"{cur_key}:2,S"]
    assert [path.name for path in (folder / "new").iterdir()] == [left]
    assert list((folder / "cur").iterdir()) == []
    assert {path.name for path in folder.glob(".processed/*/*")} | {left} == names
    assert mailbox.Maildir(folder).get_folder("processed").get_bytes(new_key) == message(
        1, newline=b"\n"
    )


def test_maildir_restart_midway_neither_skips_nor_repeats(tmp_path) -> None:
    folder = tmp_path / "Maildir"
    deliver(folder, *[message(n, newline=b"\n") for n in range(1, 6)])
    first = MaildirBox(folder)
    stored, handled = None, []
    for item in first.read(None):
        handled.append(item)
        if len(handled) == 2:
            first.processed(item.key)
        stored = first.position
        if len(handled) == 3:
            break

    deliver(folder, message(6, newline=b"\n"))
    second = MaildirBox(folder)
    rest = list(second.read(stored))
    again = list(second.read(second.position))

    assert subject_numbers(handled) == [1, 2, 3]
    assert subject_numbers(rest) == [4, 5, 6]  # 6 arrived a moment ago: read all the same
    assert again == []
    assert len(second.position) < 40  # a position to store, not a list of what was seen


def test_maildir_position_survives_another_program_renaming_a_message(tmp_path) -> None:
    """A mail client that flags a message renames it: read once more, never lost."""
    folder = tmp_path / "Maildir"
    key = deliver(folder, message(1, newline=b"\n"))[0]
    box = MaildirBox(folder)
    list(box.read(None))
    time.sleep(0.01)
    os.rename(folder / "new" / key, folder / "cur" / f"{key}:2,S")

    again = list(box.read(box.position))
    box.processed(key)  # found where it is now

    assert [item.key for item in again] == [key]
    assert [path.name for path in (folder / ".processed" / "cur").iterdir()] == [f"{key}:2,S"]


@pytest.mark.parametrize("position", ["99999999999999999999", "1796234377:12", "nonsense", ""])
def test_maildir_a_position_from_the_future_or_elsewhere_starts_over(tmp_path, position):
    folder = tmp_path / "Maildir"
    deliver(folder, message(1, newline=b"\n"), message(2, newline=b"\n"))

    assert subject_numbers(MaildirBox(folder).read(position)) == [1, 2]


def test_maildir_counts_what_waits(tmp_path) -> None:
    folder = tmp_path / "Maildir"
    deliver(folder, message(1, newline=b"\n"), message(2, newline=b"\n"))
    box = MaildirBox(folder)
    first = next(box.read(None))

    assert box.count() == 2
    assert box.count(box.position) == 1
    box.processed(first.key)
    assert box.count() == 1


@pytest.mark.parametrize("made", ["nothing", "a file", "an empty folder"])
def test_a_folder_that_is_not_a_maildir_is_named(tmp_path, made) -> None:
    folder = tmp_path / "bounces"
    if made == "a file":
        folder.write_text("")
    elif made == "an empty folder":
        folder.mkdir()

    with pytest.raises(MailboxError, match=f"Maildir {folder}: ") as refused:
        list(MaildirBox(folder).read(None))
    assert isinstance(refused.value, MailboxRefused)


def test_maildir_reads_a_20_mb_message_once_in_memory_and_cuts_a_larger_one(tmp_path) -> None:
    folder = tmp_path / "Maildir"
    big, huge = message(1, size=MB20), message(2, size=MAX_MESSAGE + 3 * 1024 * 1024)
    deliver(folder, big, huge)
    items = MaildirBox(folder).read(None)

    tracemalloc.start()
    first = next(items)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    second = next(items)

    assert first.raw == big and not first.truncated
    assert peak < 1.1 * len(big), f"{peak / len(big):.2f}x the message"
    assert second.truncated and second.size == len(huge)
    assert second.raw == huge[:MAX_MESSAGE]
