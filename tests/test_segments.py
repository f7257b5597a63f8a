"""Segments: the SQL rebook compiles agrees with the SPEC's table, on both backends.

The property test generates random clinics and random rules and compares the
database's answer with ``expected_members``, a plain-Python reading of the
SPEC's table written independently of the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from campaigns.clients.segments import count_members, list_members, member_ids
from campaigns.config import Segment
from campaigns.store.tables import client_tags, clients, visits

from .conftest import empty_tables

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SERVICES = ["back-pain-massage", "remedial-massage", "physio"]
TAGS = ["back-pain", "vip", "sports"]
STATUSES = ["booked", "attended", "cancelled", "no-show"]
DAYS = [1, 7, 42, 84]


@dataclass
class Visit:
    starts_at: datetime
    service: str
    status: str


@dataclass
class Client:
    id: str
    tags: set[str] = field(default_factory=set)
    visits: list[Visit] = field(default_factory=list)


def expected_members(clinic: list[Client], rules: Segment, now: datetime) -> list[str]:
    """The SPEC's table, read literally, one client at a time."""
    members = []
    for client in clinic:
        counted = [
            v.starts_at
            for v in client.visits
            if v.status == "attended"
            and v.starts_at <= now
            and (rules.services is None or v.service in rules.services)
        ]
        last, first = (max(counted), min(counted)) if counted else (None, None)
        booked = [v.starts_at for v in client.visits if v.status == "booked"]
        checks = [
            rules.last_visit_older_than is None or (last is not None and last < now - rules.last_visit_older_than),
            rules.last_visit_newer_than is None or (last is not None and last > now - rules.last_visit_newer_than),
            rules.first_visit_newer_than is None
            or (first is not None and first > now - rules.first_visit_newer_than),
            rules.visits_at_least is None or len(counted) >= rules.visits_at_least,
            rules.visits_at_most is None or len(counted) <= rules.visits_at_most,
            rules.booked is None or rules.booked == any(at > now for at in booked),
            rules.next_visit_within is None or any(now <= at <= now + rules.next_visit_within for at in booked),
            rules.tags_any is None or bool(client.tags & set(rules.tags_any)),
            rules.tags_none is None or not client.tags & set(rules.tags_none),
        ]  # fmt: skip
        if all(checks):
            members.append(client.id)
    return sorted(members)


def store(engine, clinic: list[Client]) -> None:
    empty_tables(engine)
    with engine.begin() as connection:
        if not clinic:
            return
        connection.execute(
            insert(clients),
            [{"id": c.id, "email": f"{c.id}@example.com", "tags": ";".join(sorted(c.tags)), "updated_at": NOW}
             for c in clinic],
        )  # fmt: skip
        tags = [{"client_id": c.id, "tag": t} for c in clinic for t in c.tags]
        if tags:
            connection.execute(insert(client_tags), tags)
        rows = [
            {"id": f"{c.id}-{i}", "client_id": c.id, "starts_at": v.starts_at, "service": v.service,
             "status": v.status, "updated_at": NOW}
            for c in clinic for i, v in enumerate(c.visits)
        ]  # fmt: skip
        if rows:
            connection.execute(insert(visits), rows)


def actual_members(engine, rules: Segment, now: datetime) -> list[str]:
    with engine.connect() as connection:
        ids = list(connection.execute(member_ids(rules, now)).scalars())
        assert count_members(connection, rules, now) == len(ids)
    return ids


# Times land on exact rule boundaries often ("exactly 6 weeks ago"), and rules are
# few per segment, so that members are common and every boundary is exercised.
boundaries = st.sampled_from([timedelta(days=d) for d in DAYS])
offsets = st.one_of(
    boundaries.map(lambda d: -d),
    boundaries,
    st.integers(-200 * 24, 30 * 24).map(lambda hours: timedelta(hours=hours)),
    st.just(timedelta(0)),
)
visit_strategy = st.builds(
    Visit, starts_at=offsets.map(lambda delta: NOW + delta), service=st.sampled_from(SERVICES),
    status=st.sampled_from(STATUSES),
)  # fmt: skip
clinic_strategy = st.lists(
    st.tuples(st.sets(st.sampled_from(TAGS)), st.lists(visit_strategy, max_size=6)), max_size=8
).map(lambda made: [Client(f"c{i}", tags, vs) for i, (tags, vs) in enumerate(made)])


def sometimes(strategy):
    return st.one_of(st.none(), st.none(), st.none(), strategy)


tag_lists = st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True)
segment_strategy = st.builds(
    Segment,
    services=sometimes(st.lists(st.sampled_from(SERVICES), min_size=1, max_size=2, unique=True)),
    last_visit_older_than=sometimes(boundaries),
    last_visit_newer_than=sometimes(boundaries),
    first_visit_newer_than=sometimes(boundaries),
    visits_at_least=sometimes(st.integers(0, 4)),
    visits_at_most=sometimes(st.integers(0, 4)),
    booked=sometimes(st.booleans()),
    next_visit_within=sometimes(boundaries),
    tags_any=sometimes(tag_lists),
    tags_none=sometimes(tag_lists),
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(clinic=clinic_strategy, rules=segment_strategy)
def test_sql_agrees_with_the_spec(engine, clinic, rules):
    store(engine, clinic)
    assert actual_members(engine, rules, NOW) == expected_members(clinic, rules, NOW)


def test_lapsed_back_pain_example(engine):
    weeks = lambda n: NOW - timedelta(weeks=n)  # noqa: E731
    clinic = [
        Client("lapsed", {"back-pain"}, [Visit(weeks(8), "back-pain-massage", "attended")]),
        Client("booked-again", set(), [Visit(weeks(8), "back-pain-massage", "attended"),
                                       Visit(NOW + timedelta(days=3), "physio", "booked")]),
        Client("too-recent", set(), [Visit(weeks(2), "remedial-massage", "attended")]),
        Client("too-long-ago", set(), [Visit(weeks(20), "remedial-massage", "attended")]),
        Client("other-service", set(), [Visit(weeks(8), "physio", "attended")]),
        Client("no-show", set(), [Visit(weeks(8), "back-pain-massage", "no-show")]),
        Client("recent-other", set(), [Visit(weeks(8), "back-pain-massage", "attended"),
                                       Visit(weeks(1), "physio", "attended")]),
        Client("never-came", set(), []),
    ]  # fmt: skip
    rules = Segment(
        services=["back-pain-massage", "remedial-massage"],
        last_visit_older_than=timedelta(weeks=6),
        last_visit_newer_than=timedelta(weeks=12),
        booked=False,
    )
    store(engine, clinic)
    assert actual_members(engine, rules, NOW) == ["lapsed", "recent-other"]
    with engine.connect() as connection:
        [first, _] = list_members(connection, rules, NOW)
    assert first.last_visit == weeks(8) and first.next_visit is None and first.tags == ["back-pain"]


def test_visits_at_most_includes_clients_who_never_came(engine):
    store(engine, [Client("new"), Client("regular", visits=[Visit(NOW - timedelta(days=d), "physio", "attended")
                                                            for d in (1, 8, 15)])])  # fmt: skip
    assert actual_members(engine, Segment(visits_at_most=1), NOW) == ["new"]
    assert actual_members(engine, Segment(visits_at_least=0), NOW) == ["new", "regular"]


def test_the_segment_is_one_query(engine):
    rules = Segment(
        services=["physio"],
        last_visit_older_than=timedelta(weeks=6),
        booked=False,
        tags_any=["vip"],
    )
    sql = str(member_ids(rules, NOW).compile(engine))
    assert sql.count("SELECT") == 4  # members, visit history, bookings, tags: all in one statement
