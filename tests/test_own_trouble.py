"""rebook's own trouble (a full disk, a relay that drops every connection) never spends a campaign.

Only a delivered message, a hard bounce or a refusal of the recipient spends
the ledger's key. A maildir on a full disk, or a relay that is down, is
retried; once ``max_attempts`` are used up the message is an ``error`` that
the campaign's next run sends, never a ``failed`` one that it leaves out.
"""

from __future__ import annotations

import contextlib
import mailbox
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from .test_delivery import NOW, clinic_with, ledger, run

CONSENTING = ["person0@example.com", "person2@example.com", "person4@example.com"]


@contextlib.contextmanager
def full_disk(folder: Path):
    """A real file system of 256 KiB at ``folder``, filled up; yields the filler to delete."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    filler = folder / "filler"
    try:
        mailbox.Maildir(folder / "sent-mail", create=True)  # the folders fit; messages do not
        with contextlib.suppress(OSError), filler.open("wb") as file:
            while True:
                file.write(b"\0" * 4096)
                file.flush()
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_maildir_disk_is_retried_and_never_spends_the_campaign(clinic, tmp_path):
    with full_disk(tmp_path / "disk") as filler:
        settings, engine = clinic_with(clinic, 25, transport="maildir")
        mail = settings.mail.model_copy(update={"maildir": filler.parent / "sent-mail"})
        settings = settings.model_copy(update={"mail": mail})
        first = run(engine, settings, "book")
        assert first.outcomes == {"deferred": 3}
        assert "No space left on device" in ledger(engine, "book")[CONSENTING[0]].last_reply
        run(engine, settings, "book", at=NOW + timedelta(minutes=2))
        last = run(engine, settings, "book", at=NOW + timedelta(minutes=10))
        assert last.outcomes == {"error": 3}
        rows = ledger(engine, "book")
        assert {row.status for row in rows.values()} == {"error"}
        assert rows[CONSENTING[0]].last_reply.startswith("not sent after 3 attempts: maildir:")
        filler.unlink()  # space freed: the campaign's next run sends them all
        after = run(engine, settings, "book", at=NOW + timedelta(days=1))
        assert after.outcomes == {"sent": 3} and after.left_out == {"no marketing consent": 3}
        assert len(os.listdir(filler.parent / "sent-mail" / "new")) == 3


def test_a_relay_that_drops_every_connection_never_spends_the_campaign(clinic, smtp):
    settings, engine = clinic_with(clinic, smtp.port)
    for address in CONSENTING:
        smtp.handler.script[address] = ["drop"] * 3
    for minutes in (0, 2, 10):
        run(engine, settings, "book", at=NOW + timedelta(minutes=minutes))
    rows = ledger(engine, "book")
    assert {row.status for row in rows.values()} == {"error"}
    assert rows[CONSENTING[0]].last_reply.startswith("not sent after 3 attempts: connection lost")
    again = run(engine, settings, "book", at=NOW + timedelta(days=1))
    assert again.outcomes == {"sent": 3}
    assert sorted(smtp.handler.addresses()) == CONSENTING


def test_a_relay_shutting_down_421_is_the_relays_trouble_but_451_to_a_recipient_is_theirs(
    clinic, smtp
):
    settings, engine = clinic_with(clinic, smtp.port)
    smtp.handler.script["person0@example.com"] = ["421 4.3.2 shutting down"] * 3
    smtp.handler.script["person2@example.com"] = ["451 4.2.0 mailbox busy"] * 3
    for minutes in (0, 2, 10):
        run(engine, settings, "book", at=NOW + timedelta(minutes=minutes))
    rows = ledger(engine, "book")
    assert rows["person0@example.com"].status == "error"
    assert rows["person2@example.com"].status == "failed"  # the recipient's: it spends the key
    assert rows["person4@example.com"].status == "sent"


@pytest.fixture
def smtp():
    from .smtpd import SmtpServer

    with SmtpServer() as server:
        yield server


def test_an_empty_maildir_folder_made_beforehand_is_written_into(clinic, tmp_path):
    """A folder the owner made, or a mount point: Maildir(create=True) leaves it without new/."""
    settings, engine = clinic_with(clinic, 25, transport="maildir")
    folder = tmp_path / "made-by-the-owner"
    folder.mkdir()
    mail = settings.mail.model_copy(update={"maildir": folder})
    report = run(engine, settings.model_copy(update={"mail": mail}), "book")
    assert report.outcomes == {"sent": 3}
    assert len(os.listdir(folder / "new")) == 3
