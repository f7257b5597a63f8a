"""What comes back, acted on: ``rebook bounces`` against what a real campaign run sent.

A campaign goes to a real SMTP server with ``[bounces]`` set; the returns
are aimed at what that server received (its VERP sender, its Message-ID,
its address), given to the real ``rebook bounces``, and the suppression
list, the ``returns`` table and the next run are read back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from campaigns.store.tables import client_suppressions, returns, suppressions

from .returned import arf, dsn, mail
from .smtpd import SmtpServer
from .test_delivery import clinic_with, run
from .test_verp import with_bounces

PEOPLE = ["person0@example.com", "person2@example.com", "person4@example.com"]


@pytest.fixture
def sent(clinic):
    """The clinic after a marketing run with [bounces]: {address: what the relay received}."""
    from campaigns.config import load_settings

    with SmtpServer() as smtp:
        _, engine = clinic_with(clinic, smtp.port)
        with_bounces(clinic, "soft_limit = 2\n")
        settings = load_settings(clinic.config)
        run(engine, settings, "book", at=datetime.now(UTC))  # rebook bounces reads the clock
        received = {item.recipients[0]: item for item in smtp.handler.received}
    assert sorted(received) == PEOPLE
    clinic.received, clinic.ledger_engine = received, engine
    return clinic


def bounce(clinic, name: str, raw: bytes, *args: str):
    path = clinic.folder / name
    path.write_bytes(raw)
    result = clinic.rebook("bounces", str(path), "--json", *args)
    assert result.code == 0, result
    [line] = result.out.splitlines()
    return json.loads(line)


def suppressed(clinic) -> dict[str, str]:
    return dict(clinic.rows(suppressions, "address", "reason"))


def test_a_hard_bounce_matched_by_verp_suppresses_the_address_once(sent):
    item = sent.received["person0@example.com"]
    raw = dsn(item.sender, "person0@example.com", "5.1.1", "550 5.1.1 <person0@example.com>: "
              "Recipient address rejected: User unknown in virtual mailbox table")  # fmt: skip
    first = bounce(sent, "hard.eml", raw)
    assert (first["kind"], first["matched"]) == ("hard", "verp")
    assert "address suppressed" in first["action"]
    assert suppressed(sent) == {"person0@example.com": "bounced"}
    again = bounce(sent, "hard.eml", raw)
    assert "already handled" in again["action"]
    [row] = sent.rows(returns, "recipient", "kind", "status", "matched_by")
    assert row == ("person0@example.com", "hard", "5.1.1", "verp")


def test_soft_bounces_suppress_only_at_the_limit(sent):
    item = sent.received["person2@example.com"]
    for number in (1, 2):
        raw = dsn(item.sender, "person2@example.com", "4.2.2",
                  f"452 4.2.2 Mailbox full (try {number})", action="delayed")  # fmt: skip
        said = bounce(sent, f"soft{number}.eml", raw)
        assert said["kind"] == "soft"
        if number == 1:
            assert "counted: soft bounce 1 of 2" in said["action"] and suppressed(sent) == {}
    assert suppressed(sent) == {"person2@example.com": "bounced"}


def test_a_policy_refusal_is_the_clinics_problem_and_suppresses_nobody(sent):
    item = sent.received["person4@example.com"]
    raw = dsn(item.sender, "person4@example.com", "5.7.1",
              "550 5.7.1 Message rejected as spam by Content Filtering")  # fmt: skip
    said = bounce(sent, "policy.eml", raw)
    assert said["kind"] == "clinic-problem" and "not suppressed" in said["action"]
    assert suppressed(sent) == {}
    [row] = sent.rows(returns, "kind", "domain")
    assert row == ("clinic-problem", "example.com")


def test_a_complaint_matched_by_message_id_suppresses_client_and_address(sent):
    item = sent.received["person2@example.com"]
    said = bounce(sent, "arf.eml", arf("abuse-reports@waso.example", item.data))
    assert (said["kind"], said["matched"]) == ("complaint", "message-id")
    assert suppressed(sent) == {"person2@example.com": "complained"}
    assert dict(sent.rows(client_suppressions, "client_id", "reason")) == {"c002": "complained"}


def test_a_mailed_unsubscribe_works_as_the_link_whoever_sends_it(sent):
    item = sent.received["person4@example.com"]
    mailto = item.message["List-Unsubscribe"].split("<mailto:")[1].split("?")[0]
    said = bounce(sent, "unsub.eml", mail(mailto, "someone.else@example.org", "unsubscribe"))
    assert (said["kind"], said["matched"]) == ("unsubscribe", "token")
    assert dict(sent.rows(client_suppressions, "client_id", "reason")) == {"c004": "unsubscribed"}
    plain = mail("unsubscribe@waso.example", "person0@example.com", "please unsubscribe me")
    assert bounce(sent, "plain.eml", plain)["matched"] == "sender"
    assert dict(sent.rows(client_suppressions, "client_id", "reason"))["c000"] == "unsubscribed"


def test_by_address_when_nothing_else_names_the_message(sent):
    raw = dsn("bounces@waso.example", "person4@example.com", "5.1.1", "550 user unknown")
    said = bounce(sent, "plain.eml", raw)
    assert said["matched"] == "address" and suppressed(sent) == {"person4@example.com": "bounced"}


def test_what_is_not_rebooks_or_asks_for_nothing_changes_nothing(sent):
    item = sent.received["person0@example.com"]
    forged = item.sender.replace("+", "+x")  # a token that does not verify
    unknown = dsn(forged, "stranger@example.net", "5.1.1", "550 5.1.1 user unknown")
    holiday = mail(item.sender, "person0@example.com", "Out of office: back on Monday",
                   Auto_Submitted="auto-replied")  # fmt: skip
    for name, raw, kind in (("forged.eml", unknown, "hard"), ("ooo.eml", holiday, "auto-reply")):
        said = bounce(sent, name, raw)
        assert (said["kind"], said["matched"], said["action"]) == (kind, False, "nothing")
    assert suppressed(sent) == {} and sent.rows(returns, "recipient") == []


def test_a_dry_run_says_and_changes_nothing(sent):
    item = sent.received["person0@example.com"]
    raw = dsn(item.sender, "person0@example.com", "5.1.1", "550 5.1.1 no such user")
    said = bounce(sent, "hard.eml", raw, "--dry-run")
    assert "address suppressed" in said["action"]
    assert suppressed(sent) == {} and sent.rows(returns, "recipient") == []


def test_the_next_run_leaves_a_bounced_address_out(sent):
    from campaigns.config import load_settings

    item = sent.received["person0@example.com"]
    bounce(sent, "hard.eml", dsn(item.sender, "person0@example.com", "5.1.1", "550 no such user"))
    settings = load_settings(sent.config)
    report = run(sent.ledger_engine, settings, "series", at=datetime.now(UTC))
    assert report.left_out.get("unsubscribed or bounced") == 1


def test_a_mail_servers_pipe_gets_0_or_75_never_a_bounce_of_the_bounce(sent):
    import subprocess

    from .conftest import REBOOK

    item = sent.received["person0@example.com"]
    raw = dsn(item.sender, "person0@example.com", "5.1.1", "550 no such user")

    def pipe(message: bytes, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(REBOOK), "bounces", "-"], input=message, cwd=sent.folder,
                              capture_output=True, env={"PATH": "/usr/bin:/bin", **env})  # fmt: skip

    assert pipe(b"\x00\xff not a message at all").returncode == 0
    down = pipe(raw, REBOOK_DATABASE__URL="postgresql+psycopg://rebook:pw@127.0.0.1:1/rebook")
    assert down.returncode == 75 and b"tries again" in down.stderr and b"pw" not in down.stderr
    assert suppressed(sent) == {}
    assert pipe(raw).returncode == 0 and suppressed(sent) == {"person0@example.com": "bounced"}


def test_forget_erases_what_came_back_about_the_client(sent):
    item = sent.received["person0@example.com"]
    bounce(sent, "hard.eml", dsn(item.sender, "person0@example.com", "4.2.2", "452 mailbox full"))
    assert sent.rows(returns, "recipient") == [("person0@example.com",)]
    assert sent.rebook("forget", "person0@example.com", "--yes").code == 0
    assert sent.rows(returns, "recipient") == []


def test_history_shows_the_bounce_on_the_message_it_belongs_to(sent):
    item = sent.received["person0@example.com"]
    bounce(sent, "hard.eml", dsn(item.sender, "person0@example.com", "5.1.1",
                                 "550 5.1.1 user unknown"))  # fmt: skip
    shown = sent.rebook("history", "person0@example.com", "--json")
    [entry] = json.loads(shown.out)["sends"]
    [back] = entry["came_back"]
    assert (back["kind"], back["status"], back["matched_by"]) == ("hard", "5.1.1", "verp")
    table = sent.rebook("history", "person0@example.com", env={"COLUMNS": "250"}).out
    assert "hard bounce 5.1.1" in table


def test_report_gives_bounce_and_complaint_rates_beside_the_providers_line(sent):
    for address, name, raw in (
        ("person0@example.com", "hard.eml", None),
        ("person2@example.com", "arf.eml", "arf"),
    ):
        item = sent.received[address]
        message = (arf("fbl@waso.example", item.data) if raw
                   else dsn(item.sender, address, "5.1.1", "550 5.1.1 user unknown"))  # fmt: skip
        bounce(sent, name, message)
    data = json.loads(sent.rebook("report", "--json").out)
    [book] = [c for c in data["campaigns"] if c["name"] == "book"]
    assert book["returned"]["sent"] == 3
    assert (book["returned"]["hard"], book["returned"]["complaint"]) == (1, 1)
    assert book["returned"]["complaint_rate"] == pytest.approx(1 / 3)
    assert data["complaint_limit"] == 0.003 and data["returned"]["hard_rate"] == pytest.approx(
        1 / 3
    )
    [series] = [c for c in data["campaigns"] if c["name"] == "series"]
    assert series["returned"]["complaint_rate"] is None  # nothing sent: no rate, not 0
    table = sent.rebook("report", env={"COLUMNS": "200"}).out
    assert "what came back later" in table and "33.33%" in table
    assert "Gmail and Yahoo want bulk senders under 0.3%" in table and "over it" in table


def test_status_warns_of_complaints_and_of_a_domain_refusing_the_clinics_mail(sent):
    item = sent.received["person2@example.com"]
    bounce(sent, "arf.eml", arf("fbl@waso.example", item.data))
    for number in range(5):  # five refusals for policy, by one receiving domain
        refusal = dsn("bounces@waso.example", "person4@example.com", "5.7.1",
                      f"550 5.7.1 [{number}] Message rejected: SPF check failed")  # fmt: skip
        bounce(sent, f"policy{number}.eml", refusal)
    status = sent.rebook("status", "--json")
    warned = json.loads(status.out)["warnings"]
    assert status.code == 0 and len(warned) == 2, warned
    assert warned[0].startswith("spam complaints: 1 in the last 7 days, 33.33% of 3 message(s)")
    assert warned[1].startswith("example.com refused 5 message(s) in the last 7 days")
    assert "SPF check failed" in warned[1] and "SPF, DKIM and DMARC" in warned[1]
    assert "warning: spam complaints" in sent.rebook("status").err


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory):
    from .dovecot import running_dovecot

    with running_dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


def imap_table(account) -> str:
    return (f'\n[bounces.imap]\nhost = "{account.server.host}"\nport = {account.server.port}\n'
            f'security = "none"\nuser = "{account.user}"\n')  # fmt: skip


def test_the_imap_mailbox_moves_what_it_acted_on_and_leaves_the_rest_unread(sent, dovecot):
    account = dovecot.add_user()
    item = sent.received["person0@example.com"]
    ours = dsn(item.sender, "person0@example.com", "5.1.1", "550 5.1.1 user unknown")
    reply = mail("bounces@waso.example", "friend@example.org", "Lunch on Friday?")
    account.append(ours, reply)
    sent.config.write_text(sent.config.read_text() + imap_table(account))
    password = {"REBOOK_BOUNCES__IMAP__PASSWORD": account.password}
    wrong = sent.rebook("bounces", env={"REBOOK_BOUNCES__IMAP__PASSWORD": "not-it-x9"})
    assert wrong.code == 1 and account.user in wrong.err and "not-it-x9" not in wrong.err
    checked = sent.rebook("check", "--bounces", env=password)
    assert "bounces: the imap mailbox holds 2 message(s), 2 not read yet" in checked.out
    first = sent.rebook("bounces", env=password)
    assert first.code == 0 and "2 message(s) read, 1 acted on" in first.out, first
    assert suppressed(sent) == {"person0@example.com": "bounced"}
    assert [b"\\Seen" in flags for flags in account.flags().values()] == [False]

    def stored(folder: str = "INBOX") -> list[bytes]:  # IMAP hands lines back with CRLF
        return [raw.replace(b"\r\n", b"\n") for raw in account.messages(folder).values()]

    assert stored() == [reply.replace(b"\r\n", b"\n")]  # the person's reply, untouched
    assert stored("rebook/processed") == [ours.replace(b"\r\n", b"\n")]
    again = sent.rebook("bounces", env=password)  # a restart: the position was kept
    assert again.code == 0 and "0 message(s) read" in again.out


def test_rebook_run_reads_the_bounce_maildir_on_its_own(sent, tmp_path):
    import mailbox

    from .service import RunningService

    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    sent.config.write_text(sent.config.read_text().replace(
        "soft_limit = 2\n", f'soft_limit = 2\nevery = "1s"\nmaildir = "{tmp_path / "bounces"}"\n'
    ))  # fmt: skip
    item = sent.received["person2@example.com"]
    with RunningService(sent.folder) as service:
        service.wait_for("service started")
        box.add(dsn(item.sender, "person2@example.com", "5.1.2", "550 5.1.2 domain not found"))
        handled = service.wait_for("returned mail handled")
        assert service.stop() == 0, service.log()
    assert "kind=hard" in handled and "matched=verp" in handled
    assert suppressed(sent) == {"person2@example.com": "bounced"}
    assert len(box) == 0 and len(box.get_folder("processed")) == 1
