"""``rebook forget``: a client erased on request stays erased, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta

from sqlalchemy import String, Text, insert, select, text

from campaigns.delivery.history import unsubscribe_by_hand
from campaigns.delivery.ledger import Ledger, Result
from campaigns.delivery.suppression import (
    suppress,
    suppress_client,
    suppress_clients,
    unsubscribe_client,
    unsubscribe_clients,
)
from campaigns.store.tables import (
    client_suppressions,
    clients,
    forgotten,
    metadata,
    sends,
    suppressions,
    visits,
)

from .conftest import REBOOK
from .smtpd import SmtpServer, free_port
from .test_delivery import NOW, clinic_with, ledger, run


def every_text(clinic) -> str:
    """Every string the database holds, in one text to search."""
    found = []
    with clinic.engine().connect() as connection:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if columns:
                found += [str(v) for row in connection.execute(select(*columns)) for v in row]
    return "\n".join(found)


def test_forget_erases_the_client_and_history_says_only_that(clinic):
    with SmtpServer() as smtp:
        smtp.handler.script["person2@example.com"] = ["550 5.1.1 no such user person2"]
        settings, engine = clinic_with(clinic, smtp.port)
        run(engine, settings, "book")
        run(engine, settings, "reminder")  # person0 has a booking: an appointment reminder
    clinic.rebook("unsubscribe", "person0@example.com")
    before = clinic.rebook("status", "--json")

    forgot = clinic.rebook("forget", "Person0@Example.com", "--yes")
    bounced = clinic.rebook("forget", "person2@example.com", "--yes")

    assert forgot.code == 0, forgot.err
    assert forgot.out.startswith(
        "forgot person0@example.com: erased 1 client(s), 2 visit(s), 2 message(s) in the "
        "ledger, 1 address(es)"
    )
    assert "Person0" not in forgot.out  # a script's log keeps numbers only
    assert bounced.code == 0, bounced.err
    stored = every_text(clinic)
    for gone in ("person0", "Person0", "c000", "person2", "Person2", "c002", "no such user"):
        assert gone not in stored
    assert clinic.rows(clients, "id")[:1] == [("c001",)]
    assert ("c000",) not in clinic.rows(visits, "client_id")
    assert clinic.rows(suppressions, "address") == []  # the bounce went with the rest
    assert clinic.rows(client_suppressions, "client_id") == []
    assert len(clinic.rows(forgotten, "hash")) == 4  # two addresses, two client ids
    # status still counts what went out, and the bounce
    after = clinic.rebook("status", "--json")
    assert (
        _counts(after) == _counts(before) == {"book": (2, 1), "reminder": (2, 0), "series": (0, 0)}
    )
    assert json.loads(after.out)["suppressed"]["addresses_by_reason"] == {"forgotten": 2}

    shown = clinic.rebook("history", "person0@example.com")
    assert shown.code == 0
    assert shown.out.startswith("person0@example.com was forgotten on ")
    assert shown.out.strip().endswith("nothing else is kept")
    data = json.loads(clinic.rebook("history", "PERSON0@example.com", "--json").out)
    assert data["forgotten"] is True and data["forgotten_at"].startswith(str(NOW.year))
    assert set(data) == {"email", "forgotten", "forgotten_at"}


def _counts(result) -> dict[str, tuple[int, int]]:
    """Sent and failed, per campaign."""
    campaigns = json.loads(result.out)["campaigns"]
    return {c["name"]: (c["counts"]["sent"], c["counts"]["failed"]) for c in campaigns}


def test_a_forgotten_address_is_left_out_of_every_later_import(clinic):
    clinic_with(clinic, free_port())
    assert clinic.rebook("forget", "person0@example.com", "--yes").code == 0
    again = clinic.rebook("import", "clients", "clients.csv")
    assert again.code == 0, again.err
    assert again.out.strip().endswith(
        "imported 5 clients: 0 inserted, 0 updated, 5 unchanged, 0 rejected; "
        "1 row(s) of forgotten clients left out (erased with rebook forget: never imported or "
        "mailed again)"
    )
    # its visits are left out too, not refused for want of their client
    visits_again = clinic.rebook("import", "visits", "visits.csv")
    assert visits_again.code == 0, visits_again.err
    assert "0 rejected; 2 row(s) of forgotten clients left out" in visits_again.out
    # the address under a new id, spelled otherwise: still forgotten
    clinic.write("new.csv", "id,email,marketing_consent\nc999,PERSON0@example.COM,yes\n")
    moved = clinic.rebook("import", "clients", "new.csv")
    assert "0 inserted" in moved.out and "1 row(s) of forgotten clients left out" in moved.out
    assert "person0@example.com" not in every_text(clinic)


def test_a_forgotten_client_stays_out_under_their_old_id_with_a_new_address(clinic):
    """The practice software keeps their record; the owner types in a new address."""
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        assert clinic.rebook("forget", "person0@example.com", "--yes").code == 0
        clinic.write("moved.csv", "id,email,marketing_consent\nc000,new0@example.com,yes\n")
        for options in (("--dry-run",), ("--skip-invalid",), ()):
            moved = clinic.rebook("import", "clients", "moved.csv", *options)
            assert moved.code == 0, moved.err
            assert moved.out.strip().endswith(
                "0 inserted, 0 updated, 0 unchanged, 0 rejected; 1 row(s) of forgotten clients "
                "left out (erased with rebook forget: never imported or mailed again)"
            )
        visits_again = clinic.rebook("import", "visits", "visits.csv")
        assert visits_again.code == 0, visits_again.err
        assert "2 row(s) of forgotten clients left out" in visits_again.out
        run(engine, settings, "book")
        run(engine, settings, "reminder")
        assert "new0@example.com" not in smtp.handler.addresses()
    assert ("c000",) not in clinic.rows(clients, "id")
    assert ("c000",) not in clinic.rows(visits, "client_id")
    assert "new0@example.com" not in every_text(clinic)


def test_a_forgotten_address_under_a_new_id_is_left_out_with_its_visits(clinic):
    """Their visits are counted as a forgotten client's, not refused for want of their client."""
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        assert clinic.rebook("forget", "person0@example.com", "--yes").code == 0
        clinic.write("new.csv", "id,email,marketing_consent\nc999,person0@example.com,yes\n")
        clinic.write(
            "new-visits.csv",
            "id,client_id,starts_at,service,status\n"
            "v999,c999,2026-08-01T10:00,massage,attended\nb999,c999,2026-11-26T10:00,massage,booked\n",
        )
        assert (
            "1 row(s) of forgotten clients left out"
            in clinic.rebook("import", "clients", "new.csv").out
        )
        visits_new = clinic.rebook("import", "visits", "new-visits.csv")
        assert visits_new.code == 0, visits_new.err
        assert "0 inserted" in visits_new.out and "2 row(s) of forgotten clients" in visits_new.out
        # and with a new address later, under that id, still the person who asked
        clinic.write("new.csv", "id,email,marketing_consent\nc999,other@example.com,yes\n")
        assert "1 row(s) of forgotten clients" in clinic.rebook("import", "clients", "new.csv").out
        run(engine, settings, "book")
        run(engine, settings, "reminder")
        assert not {"person0@example.com", "other@example.com"} & set(smtp.handler.addresses())
    assert ("c999",) not in clinic.rows(clients, "id")


def test_a_known_client_given_a_forgotten_address_is_not_forgotten_for_it(sqlite_clinic):
    """Another client (a family member) typed in with the forgotten address: that row is
    left out, but the client stays theirs, and their next address is taken."""
    clinic_with(sqlite_clinic, free_port())
    assert sqlite_clinic.rebook("forget", "person0@example.com", "--yes").code == 0
    sqlite_clinic.write("c.csv", "id,email,marketing_consent\nc001,person0@example.com,no\n")
    shared = sqlite_clinic.rebook("import", "clients", "c.csv")
    assert "1 row(s) of forgotten clients left out" in shared.out
    sqlite_clinic.write("c.csv", "id,email,marketing_consent\nc001,new1@example.com,no\n")
    own = sqlite_clinic.rebook("import", "clients", "c.csv")
    assert "0 inserted, 1 updated" in own.out and "forgotten" not in own.out
    assert ("c001", "new1@example.com") in sqlite_clinic.rows(clients, "id", "email")


def test_an_internationalised_domain_is_forgotten_in_either_spelling(clinic):
    clinic.write("c.csv", "id,email,marketing_consent\n1,jo@bücher.example,yes\n")
    assert clinic.rebook("import", "clients", "c.csv").code == 0
    assert clinic.rebook("forget", "Jo@XN--BCHER-KVA.example", "--yes").code == 0
    assert clinic.rows(clients, "id") == []
    clinic.write("c.csv", "id,email,marketing_consent\n2,jo@xn--bcher-kva.example,yes\n")
    assert (
        "1 row(s) of forgotten clients left out" in clinic.rebook("import", "clients", "c.csv").out
    )
    assert "was forgotten on" in clinic.rebook("history", "jo@bücher.example").out


def test_a_forgotten_address_that_slips_back_in_is_never_sent(clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(clinic, smtp.port)
        assert clinic.rebook("forget", "person0@example.com", "--yes").code == 0
        # not through an import: as if written by hand, or by a tool rebook does not know
        with engine.begin() as connection:
            connection.execute(
                insert(clients).values(
                    id="c100", email="person0@example.com", marketing_consent=True, updated_at=NOW
                )
            )
            connection.execute(
                insert(visits).values(
                    id="v100", client_id="c100", starts_at=NOW - timedelta(days=90),
                    service="massage", status="attended", updated_at=NOW,
                )
            )  # fmt: skip
        report = run(engine, settings, "book")
        assert "person0@example.com" not in smtp.handler.addresses()
    assert report.outcomes["sent"] == 2  # person2 and person4
    row = ledger(engine, "book")["person0@example.com"]
    assert row.status == "skipped" and "forgotten" in row.last_reply


def test_a_row_claimed_when_its_client_is_forgotten_does_not_leave(clinic):
    _, engine = clinic_with(clinic, free_port())
    with engine.begin() as connection:  # queued, as a run enqueues them
        for n in (0, 2):
            connection.execute(
                insert(sends).values(
                    campaign="book", client_id=f"c00{n}", key="once", marketing=True,
                    email=f"person{n}@example.com", status="queued", created_at=NOW,
                    updated_at=NOW,
                )
            )  # fmt: skip
    worker = Ledger(engine, "book", "waso.example")
    claimed = worker.claim(10, NOW)
    assert [c.email for c in claimed] == ["person0@example.com", "person2@example.com"]
    assert clinic.rebook("forget", "person0@example.com", "--yes").code == 0
    barred = worker.commit([c.id for c in claimed], [], NOW)
    worker.close()
    assert barred == {claimed[0].id}  # gone: it may not leave; person2's may
    with engine.connect() as connection:
        assert connection.execute(select(sends.c.email, sends.c.status)).all() == [
            ("person2@example.com", "sending")
        ]


def test_a_bounce_of_a_message_in_flight_when_forgotten_stores_no_address(clinic):
    _, engine = clinic_with(clinic, free_port())
    with engine.begin() as connection:
        connection.execute(
            insert(sends).values(
                campaign="book", client_id="c000", key="once", marketing=True,
                email="person0@example.com", status="queued", created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    worker = Ledger(engine, "book", "waso.example")
    [claimed] = worker.claim(10, NOW)
    assert worker.commit([claimed.id], [], NOW) == set()  # it leaves: the SMTP transaction starts
    assert clinic.rebook("forget", "person0@example.com", "--yes").code == 0
    refused = Result(claimed.id, "failed", "550 5.1.1 <person0@example.com> unknown", None,
                     bounced_address="person0@example.com")  # fmt: skip
    worker.commit([], [refused], NOW)
    worker.close()
    assert clinic.rows(suppressions, "address") == []
    assert "person0" not in every_text(clinic)


def test_forget_is_all_or_nothing(clinic):
    _, engine = clinic_with(clinic, free_port())
    with engine.begin() as connection:  # the last write fails: every earlier one must be undone
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON forgotten "
                    "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS "
                    "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON forgotten "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
    before = every_text(clinic)
    try:
        result = clinic.rebook("forget", "person0@example.com", "--yes")
    finally:
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.execute(text("DROP TRIGGER refuse"))
            else:
                connection.execute(text("DROP TRIGGER refuse ON forgotten"))
                connection.execute(text("DROP FUNCTION refuse"))
    assert result.code == 1
    assert "nothing erased" in result.err and "disk on fire" in result.err
    assert "Traceback" not in result.err
    assert every_text(clinic) == before
    assert ("c000",) in clinic.rows(clients, "id")


def test_forget_of_an_unknown_address_remembers_it(clinic):
    result = clinic.rebook("forget", "Stranger@example.com", "--yes")
    assert result.code == 0
    assert "stranger@example.com: no client has or had it; it is now forgotten" in result.out
    clinic.write("c.csv", "id,email\n1,stranger@example.com\n")
    assert (
        "1 row(s) of forgotten clients left out" in clinic.rebook("import", "clients", "c.csv").out
    )
    again = clinic.rebook("forget", "stranger@example.com", "--yes")
    assert "stranger@example.com was already forgotten on" in again.out
    typo = clinic.rebook("forget", "stranger-at-example.com", "--yes")
    assert typo.code == 2 and "not a valid address" in typo.err
    unasked = clinic.rebook("forget", "stranger-at-example.com")  # the typo, before --yes
    assert unasked.code == 2 and "not a valid address" in unasked.err


def test_unsubscribe_of_a_forgotten_address_says_so_and_stores_nothing(sqlite_clinic):
    sqlite_clinic.rebook("forget", "jo@example.com", "--yes")
    result = sqlite_clinic.rebook("unsubscribe", "jo@example.com")
    assert result.code == 0
    assert result.out.startswith("jo@example.com was already forgotten on")
    assert sqlite_clinic.rows(suppressions, "address") == []


def test_an_old_unsubscribe_link_of_a_forgotten_client_stores_nothing(clinic):
    _, engine = clinic_with(clinic, free_port())
    clinic.rebook("forget", "person0@example.com", "--yes")
    with engine.begin() as connection:  # what the web endpoint does with the link's client id
        unsubscribe_client(connection, "c000", "by the client (one-click)", NOW)
        unsubscribe_client(connection, "c002", "by the client (one-click)", NOW)
    assert clinic.rows(client_suppressions, "client_id") == [("c002",)]


def test_no_writer_of_the_suppression_lists_stores_a_forgotten_client_or_address(clinic):
    """The web endpoint's batches, a single unsubscribe, the owner's and any later source:
    each leaves the forgotten out and writes the others."""
    _, engine = clinic_with(clinic, free_port())
    clinic.rebook("forget", "person0@example.com", "--yes")
    with engine.begin() as connection:
        unsubscribe_clients(connection, [("c000", "one-click"), ("c002", "one-click")] * 2, NOW)
        assert suppress_client(connection, "c000", "manual", "by hand", NOW) is False
        assert suppress(connection, "Person0@example.com", "bounced", "550", NOW) is False
        suppress_clients(connection, [("c000", "manual", ""), ("c004", "manual", "")], NOW)
        unsubscribe_by_hand(connection, "person0@example.com", NOW)
    assert clinic.rows(client_suppressions, "client_id", "reason") == [
        ("c002", "unsubscribed"),
        ("c004", "manual"),
    ]
    assert clinic.rows(suppressions, "address") == [("person2@example.com",)]


def test_every_address_the_client_had_is_forgotten(sqlite_clinic):
    with SmtpServer() as smtp:
        settings, engine = clinic_with(sqlite_clinic, smtp.port)
        run(engine, settings, "book")  # c000 is mailed at person0@
    sqlite_clinic.write("moved.csv", "id,email,marketing_consent\nc000,new0@example.com,yes\n")
    sqlite_clinic.rebook("import", "clients", "moved.csv")
    result = sqlite_clinic.rebook("forget", "new0@example.com", "--yes")
    assert "1 client(s), 2 visit(s), 1 message(s) in the ledger, 2 address(es)" in result.out
    assert "was forgotten on" in sqlite_clinic.rebook("history", "person0@example.com").out
    assert "person0" not in every_text(sqlite_clinic)


def test_a_shared_address_names_every_client_before_erasing(sqlite_clinic):
    sqlite_clinic.write(
        "c.csv",
        "id,email,first_name,last_name\n1,family@example.com,Ann,Lee\n"
        "2,family@example.com,Ben,Lee\n3,other@example.com,Cy,Lee\n",
    )
    sqlite_clinic.rebook("import", "clients", "c.csv")
    done, screen = _on_terminal(sqlite_clinic, "forget", "family@example.com", answer="y")
    assert done == 0, screen
    assert "2 client(s): Ann Lee (id 1), Ben Lee (id 2)" in screen
    assert sqlite_clinic.rows(clients, "id") == [("3",)]


def test_forget_asks_on_a_terminal_and_wants_yes_elsewhere(sqlite_clinic):
    sqlite_clinic.write("c.csv", "id,email,first_name\n1,jo@example.com,Jo\n")
    sqlite_clinic.rebook("import", "clients", "c.csv")
    piped = sqlite_clinic.rebook("forget", "jo@example.com")
    assert piped.code == 2 and "pass --yes" in piped.err
    declined, screen = _on_terminal(sqlite_clinic, "forget", "jo@example.com", answer="n")
    assert "erases 1 client(s): Jo (id 1); 0 visit(s), 0 message(s)" in screen
    assert "Erase for good? [y/N]" in screen
    assert declined == 1 and "nothing erased" in screen
    assert sqlite_clinic.rows(clients, "id") == [("1",)]
    accepted, screen = _on_terminal(sqlite_clinic, "forget", "jo@example.com", answer="y")
    assert accepted == 0 and "forgot jo@example.com" in screen
    assert sqlite_clinic.rows(clients, "id") == []


def _on_terminal(clinic, *args: str, answer: str) -> tuple[int, str]:
    """Run ``rebook`` with every stream on a pseudo-terminal, typing ``answer`` to its question."""
    import pty

    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REBOOK_")}
    process = subprocess.Popen(
        [str(REBOOK), *args], cwd=clinic.folder, env=environment | {"TERM": "dumb"},
        stdin=terminal, stdout=terminal, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    os.write(controller, answer.encode() + b"\n")
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process has exited and its output is drained
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    return process.wait(timeout=60), screen.decode().replace("\r\n", "\n")
