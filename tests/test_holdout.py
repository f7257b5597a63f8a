"""Control groups: the same clients held out at every run, by every worker, on both backends."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from campaigns.config import load_settings
from campaigns.delivery.run import run_campaign
from campaigns.store.expressions import CONTROL_BUCKETS, control_bucket, in_control_group
from campaigns.store.tables import clients, sends

NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
CONFIG = """
[mail]
from = "Waso Physiotherapy <hello@waso.example>"
transport = "maildir"

[segments.everyone]
visits_at_least = 0

[campaigns.monthly]
segment = "everyone"
template = "reminders/book-next-massage"
subject = "Hello"
repeat_after = "28d"
holdout = 0.3
"""


def test_the_control_share_is_within_a_few_points_of_holdout_on_10000_clients():
    ids = [f"client-{n}" for n in range(10_000)]
    for share in (0.05, 0.1, 0.3, 0.5):
        held = sum(control_bucket("book-next-massage", i) < round(share * CONTROL_BUCKETS)
                   for i in ids)  # fmt: skip
        assert abs(held / len(ids) - share) < 0.02, share
    first = {i for i in ids if control_bucket("a", i) < CONTROL_BUCKETS // 10}
    second = {i for i in ids if control_bucket("b", i) < CONTROL_BUCKETS // 10}
    assert len(first & second) < 200  # each campaign draws its own group (~100 by chance)


def clinic_of(clinic, people: int):
    config = clinic.write_config("")
    text = config.read_text().replace(
        '[mail]\nfrom = "Waso Physiotherapy <hello@waso.example>"\n', ""
    )
    config.write_text(text + CONFIG)
    rows = ["id,email,first_name,last_name,marketing_consent"]
    rows += [f"c{n:05d},p{n}@example.com,P{n},T,yes" for n in range(people)]
    path = clinic.write("clients.csv", "\n".join(rows) + "\n")
    assert clinic.rebook("import", "clients", str(path)).code == 0
    return load_settings(clinic.config), clinic.engine()


def test_the_database_draws_the_same_group_as_python_on_both_backends(clinic):
    _, engine = clinic_of(clinic, 10_000)
    control = in_control_group("monthly", clients.c.id, 0.1)
    with engine.connect() as connection:
        held = set(connection.execute(select(clients.c.id).where(control)).scalars())
        total = connection.execute(select(func.count()).select_from(clients)).scalar()
    expected = {f"c{n:05d}" for n in range(total)
                if control_bucket("monthly", f"c{n:05d}") < CONTROL_BUCKETS // 10}  # fmt: skip
    assert held == expected
    assert abs(len(held) / total - 0.1) < 0.02


def held_out(engine, key_like: str = "%") -> set[str]:
    query = select(sends.c.client_id).where(
        sends.c.status == "held_out", sends.c.key.like(key_like)
    )
    with engine.connect() as connection:
        return set(connection.execute(query).scalars())


def test_the_same_clients_are_held_out_at_every_run_and_never_sent(clinic):
    settings, engine = clinic_of(clinic, 60)
    first = asyncio.run(run_campaign(engine, settings, "monthly", clock=lambda: NOW))
    group = held_out(engine)
    assert first.held_out == len(group) > 0 and first.outcomes["sent"] == 60 - len(group)
    again = asyncio.run(run_campaign(engine, settings, "monthly", clock=lambda: NOW))
    assert again.enqueued == 0 and again.held_out == 0  # the key is spent, for both groups
    later = NOW + timedelta(days=29)
    third = asyncio.run(run_campaign(engine, settings, "monthly", clock=lambda: later))
    with engine.connect() as connection:
        keys = sorted(set(connection.execute(select(sends.c.key)).scalars()))
    assert len(keys) == 2
    assert held_out(engine, keys[0]) == held_out(engine, keys[1]) == group
    assert third.outcomes["sent"] == 60 - len(group)
    mailed = {path.read_text().split("To: ", 1)[1].split("\n", 1)[0]
              for path in (clinic.folder / "sent-mail" / "new").iterdir()}  # fmt: skip
    assert not any(f"<p{int(client[1:])}@example.com>" in to for to in mailed for client in group)


def test_plan_and_status_show_how_many_a_run_holds_out(sqlite_clinic):
    clinic_of(sqlite_clinic, 60)
    expected = len({f"c{n:05d}" for n in range(60)
                    if control_bucket("monthly", f"c{n:05d}") < round(0.3 * CONTROL_BUCKETS)})  # fmt: skip
    plan = json.loads(sqlite_clinic.rebook("plan", "--json").out)["campaigns"][0]
    assert plan["reach"]["count"] == 60 and plan["reach"]["held_out"] == expected
    dry = sqlite_clinic.rebook("send", "monthly", "--dry-run")
    assert f"would hold out {expected} as the control group" in dry.out
    sent = sqlite_clinic.rebook("send", "monthly")
    assert f"held out {expected} as the control group" in sent.out, sent.err
    status = json.loads(sqlite_clinic.rebook("status", "--json").out)["campaigns"][0]
    assert status["counts"]["held_out"] == expected
    assert status["counts"]["sent"] == 60 - expected
    assert "held out" in sqlite_clinic.rebook("status").out


def test_a_holdout_over_half_is_a_config_error_naming_the_key(sqlite_clinic):
    clinic_of(sqlite_clinic, 2)
    sqlite_clinic.config.write_text(
        sqlite_clinic.config.read_text().replace("holdout = 0.3", "holdout = 0.7")
    )
    done = sqlite_clinic.rebook("report")
    assert done.code == 2 and "campaigns.monthly.holdout" in done.err, done.err
    assert "Traceback" not in done.err
