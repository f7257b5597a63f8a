"""The ledger's promises with real processes: two senders at once, and a ``kill -9`` mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

from .conftest import REBOOK
from .smtpd import SmtpServer
from .test_delivery import clinic_with, ledger


def start_send(clinic) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")}
    return subprocess.Popen([str(REBOOK), "send", "book"], cwd=clinic.folder, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_two_senders_at_once_split_the_work_and_nobody_gets_two(clinic):
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 0.002
        _, engine = clinic_with(clinic, smtp.port, people=240)
        first, second = start_send(clinic), start_send(clinic)
        outputs = [process.communicate(timeout=120) for process in (first, second)]
        assert [first.returncode, second.returncode] == [0, 0], outputs
        received = Counter(smtp.handler.addresses())
    consenting = {f"person{n}@example.com" for n in range(0, 240, 2)}
    assert set(received) == consenting
    assert max(received.values()) == 1
    assert {row.status for row in ledger(engine, "book").values()} == {"sent"}
    sent_by = [int(out.split("sent ")[1].split(",")[0]) for out, _ in outputs]
    assert sum(sent_by) == 120


def test_after_kill_9_a_rerun_delivers_the_rest_and_repeats_at_most_the_in_flight(clinic):
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 0.01
        settings, engine = clinic_with(clinic, smtp.port, people=400)
        victim = start_send(clinic)
        deadline = time.monotonic() + 60
        while len(smtp.handler.received) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate()
        assert 0 < len(smtp.handler.received) < 200, "the run finished before it was killed"
        rerun = start_send(clinic)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        received = smtp.handler.received[:]
    consenting = {f"person{n}@example.com" for n in range(0, 400, 2)}
    copies = Counter(address for item in received for address in item.recipients)
    assert set(copies) == consenting
    repeated = [address for address, count in copies.items() if count > 1]
    assert len(repeated) <= settings.smtp.connections
    assert max(copies.values()) <= 2
    for address in repeated:  # a repeat is the same message: same Message-ID
        ids = {item.message["Message-ID"] for item in received if address in item.recipients}
        assert len(ids) == 1
    assert "recovered" in out
    assert {row.status for row in ledger(engine, "book").values()} == {"sent"}


def test_a_worker_taken_for_dead_cannot_send_the_rows_another_worker_took_over(clinic):
    """After a database outage every heartbeat is old: a live worker may be taken for dead.

    Its rows go back to the queue and another worker claims them; when the
    first one tries to start them, the ledger refuses: nobody gets two.
    """
    from datetime import timedelta

    from campaigns.delivery.ledger import Ledger
    from campaigns.delivery.pipeline import CampaignRun

    from .test_delivery import NOW

    settings, engine = clinic_with(clinic, 25)
    first = CampaignRun(engine, settings, "book", lambda: NOW)
    first.enqueue()
    silent = first.ledger
    silent.register(NOW)
    theirs = [claimed.id for claimed in silent.claim(10, NOW)]
    later = NOW + timedelta(minutes=2)  # no heartbeat for two minutes: taken for dead
    other = Ledger(engine, "book", "waso.example")
    other.register(later)
    assert other.recover(later) == 3
    taken = [claimed.id for claimed in other.claim(10, later)]
    assert sorted(taken) == sorted(theirs)
    assert silent.commit(theirs, [], later) == set(theirs)  # refused: no longer its rows
    assert other.commit(taken, [], later) == set()
    statuses = {row.status for row in ledger(engine, "book").values()}
    assert statuses == {"sending"}
    silent.close()
    other.close()
