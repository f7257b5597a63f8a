"""``rebook report --json`` at scale, on SQLite and PostgreSQL.

    python bench/report.py [--sizes 10000,100000] [--postgres URL] [--work DIR]

For each clinic size this builds, straight into the database, ``clients``
clients with about 10 visits each (first seen by an import a few weeks before
they start; 5% undated) and three campaigns' ledger rows for every client
(300,000 at 100,000 clients: 85% sent, 10% held out, 5% failed, spread over a
year), then times the whole ``rebook report --json`` as a fresh process (best
of 3) against a bare ``python -c pass`` started the same way, and the report's
query alone in-process. The goal: under 2 s for the whole command at 100,000
clients on SQLite, and growth from the smallest size to the largest no worse
than linear (the ratio of times at most the ratio of sizes). With
``--postgres URL`` (a server; a database is created and dropped) the same on
PostgreSQL.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _process import timed  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from campaigns.config import load_settings  # noqa: E402
from campaigns.outcomes import report  # noqa: E402
from campaigns.store.database import open_database, refresh_statistics  # noqa: E402
from campaigns.store.tables import client_suppressions, clients, sends, visits  # noqa: E402

REBOOK = Path(sys.executable).with_name("rebook")
CAMPAIGNS = ("book-next-massage", "back-pain-articles", "winter-check-in")
NOW = datetime.now(UTC)
BATCH = 20_000
CONFIG = """
[clinic]
name = "Bench Physiotherapy"
address = "1 Example Street"
timezone = "Australia/Perth"
booking_url = "https://bench.example/book"

[database]
url = "{url}"

[mail]
from = "Bench <hello@bench.example>"

[segments.everyone]
visits_at_least = 0

[campaigns.book-next-massage]
segment = "everyone"
template = "reminders/book-next-massage"
subject = "Hello"
holdout = 0.1
"""


def rows_of(size: int, seed: int = 7):
    """Clients, visits and ledger rows of a clinic of ``size`` clients, in batches."""
    rng = random.Random(seed)
    year = timedelta(days=365)
    people, seen, ledger, unsubscribed = [], [], [], []
    for n in range(size):
        client = f"c{n:07d}"
        people.append({"id": client, "email": f"p{n}@example.com", "first_name": "P",
                       "last_name": "T", "marketing_consent": True, "tags": "",
                       "updated_at": NOW})  # fmt: skip
        for v in range(rng.randint(8, 12)):
            starts = NOW - year + timedelta(days=rng.uniform(0, 420))
            status = rng.choices(("attended", "booked", "cancelled", "no-show"), (7, 1, 1, 1))[0]
            first = None if rng.random() < 0.05 else starts - timedelta(days=rng.uniform(0, 40))
            seen.append({"id": f"{client}-{v}", "client_id": client, "starts_at": starts,
                         "service": "massage", "status": status, "therapist": "",
                         "updated_at": NOW, "first_seen_at": first})  # fmt: skip
        for campaign in CAMPAIGNS:
            status = rng.choices(("sent", "held_out", "failed"), (85, 10, 5))[0]
            at = NOW - timedelta(days=rng.uniform(0, 365))
            ledger.append({"campaign": campaign, "client_id": client, "key": "once",
                           "marketing": True, "email": f"p{n}@example.com", "status": status,
                           "created_at": at, "updated_at": at,
                           "sent_at": at if status == "sent" else None})  # fmt: skip
        if rng.random() < 0.01:
            unsubscribed.append({"client_id": client, "reason": "unsubscribed",
                                 "created_at": NOW - timedelta(days=rng.uniform(0, 365))})  # fmt: skip
        if len(seen) >= BATCH:
            yield people, seen, ledger, unsubscribed
            people, seen, ledger, unsubscribed = [], [], [], []
    yield people, seen, ledger, unsubscribed


def build(folder: Path, url: str, size: int) -> tuple[int, int]:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(CONFIG.format(url=url))
    settings = load_settings(folder / "config.toml")
    engine = open_database(settings.database)
    counts = [0, 0]
    with engine.begin() as connection:
        for people, seen, ledger, unsubscribed in rows_of(size):
            connection.execute(insert(clients), people)
            connection.execute(insert(visits), seen)
            connection.execute(insert(sends), ledger)
            if unsubscribed:
                connection.execute(insert(client_suppressions), unsubscribed)
            counts[0] += len(seen)
            counts[1] += len(ledger)
    refresh_statistics(engine, "clients", "visits", "sends", "client_suppressions")
    engine.dispose()
    return counts[0], counts[1]


def measure(folder: Path) -> dict:
    settings = load_settings(folder / "config.toml")
    engine = open_database(settings.database)
    with engine.connect() as connection:
        best_query = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            found = report(connection, settings, datetime.now(UTC))
            best_query = min(best_query, time.perf_counter() - started)
    engine.dispose()
    whole = [timed(str(REBOOK), "report", "--json", cwd=folder) for _ in range(3)]
    bare = [timed(sys.executable, "-c", "pass", cwd=folder) for _ in range(3)]
    sent = sum(c.recipients.clients for c in found.campaigns)
    return {"query_s": best_query, "whole_s": min(t for t, _, _ in whole),
            "rss_mb": max(m for _, _, m in whole), "bare_s": min(t for t, _, _ in bare),
            "sent": sent}  # fmt: skip


def bench(label: str, url_for, sizes: list[int], work: Path, reuse: bool = False) -> None:
    results = {}
    for size in sizes:
        folder = work / f"{label}-{size}"
        started = time.perf_counter()
        if reuse and (folder / "config.toml").exists():
            n_visits = n_sends = 0  # built by an earlier run: not counted again
        else:
            n_visits, n_sends = build(folder, url_for(folder, size), size)
        built = time.perf_counter() - started
        results[size] = measure(folder)
        r = results[size]
        print(f"{label} {size:>7} clients, {n_visits:>9} visits, {n_sends:>7} ledger rows "
              f"(built in {built:.0f} s): rebook report --json {r['whole_s']:.2f} s "
              f"(bare python {r['bare_s']:.2f} s, peak {r['rss_mb']} MB), "
              f"query {r['query_s']:.2f} s", flush=True)  # fmt: skip
    small, large = min(sizes), max(sizes)
    if small != large:
        growth = results[large]["query_s"] / results[small]["query_s"]
        whole = results[large]["whole_s"] / results[small]["whole_s"]
        print(f"{label} growth {small} -> {large} clients (x{large // small}): query x{growth:.1f}, "
              f"whole command x{whole:.1f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--postgres", help="e.g. postgresql+psycopg://postgres@127.0.0.1/test")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rebook-bench-report"))
    parser.add_argument(
        "--reuse", action="store_true", help="SQLite: measure the clinics built before"
    )
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    sqlite_url = lambda folder, _: f"sqlite:///{folder / 'rebook.db'}"  # noqa: E731
    bench("sqlite", sqlite_url, sizes, options.work, options.reuse)
    if options.postgres:
        server = create_engine(options.postgres, isolation_level="AUTOCOMMIT")
        made = []

        def database(_folder, size):
            name = f"rebook_bench_{uuid.uuid4().hex[:8]}_{size}"
            with server.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            made.append(name)
            return options.postgres.rsplit("/", 1)[0] + "/" + name

        try:
            bench("postgresql", database, sizes, options.work)
        finally:
            with server.connect() as connection:
                for name in made:
                    connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            server.dispose()


if __name__ == "__main__":
    main()
