"""Segments and import at scale, against hand-written sqlite3 in the same run.

    python bench/segment.py [--sizes 10000,100000] [--work DIR]

For each clinic size (about 10 visits per client) this builds the sample
clinic's exports, imports them with the real ``rebook import``, and compares:

1. the segment query rebook compiles (timed in-process, best of 7) with a
   hand-written query over a plain sqlite3 copy of the same rows that has one
   good index: the ratio should stay within 1.5x and not grow with size;
2. the whole ``rebook segment lapsed-back-pain --count`` as a fresh process
   (best of 3) with a hand-written script doing the same as a whole process,
   plus ``python -X importtime`` of the rebook command's heaviest imports;
3. the import of the visits file (1M rows at 100,000 clients) with plain
   ``sqlite3.executemany`` of the same rows already parsed, and its peak RSS.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _process import timed  # noqa: E402

from campaigns.clients.sample import SampleSize, write_sample_clinic  # noqa: E402
from campaigns.clients.segments import count_members  # noqa: E402
from campaigns.config import load_settings  # noqa: E402
from campaigns.resources import example_config  # noqa: E402
from campaigns.store.database import open_database  # noqa: E402

REBOOK = Path(sys.executable).with_name("rebook")
SEGMENT = "lapsed-back-pain"

# The hand-written reference: what a developer fluent in SQL would write for
# "back-pain clients last seen 6 to 12 weeks ago with nothing booked".
HAND_INDEX = "CREATE INDEX visit_history ON visits (client_id, status, service, starts_at)"
HAND_QUERY = """
SELECT count(*) FROM (
    SELECT client_id FROM visits
    WHERE status = 'attended' AND service IN ('back-pain-massage', 'remedial-massage')
      AND starts_at <= :now
    GROUP BY client_id
    HAVING max(starts_at) < :older AND max(starts_at) > :newer
) AS lapsed
WHERE NOT EXISTS (
    SELECT 1 FROM visits AS b
    WHERE b.client_id = lapsed.client_id AND b.status = 'booked' AND b.starts_at > :now
)
"""
HAND_SCRIPT = """
import sqlite3, sys
from datetime import UTC, datetime, timedelta
now = datetime.now(UTC).replace(tzinfo=None)
f = lambda t: t.strftime('%Y-%m-%d %H:%M:%S.%f')
db = sqlite3.connect(sys.argv[1])
print(db.execute(sys.argv[2], {'now': f(now), 'older': f(now - timedelta(weeks=6)),
                               'newer': f(now - timedelta(weeks=12))}).fetchone()[0])
"""


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def build_clinic(folder: Path, clients: int) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(example_config().read_text())
    write_sample_clinic(
        folder / "exports", date.today(), SampleSize(clients, visits_per_client=10.0)
    )


def hand_copy(rebook_db: Path, plain_db: Path) -> None:
    """The same rows in a plain sqlite3 database with one good index."""
    plain_db.unlink(missing_ok=True)
    db = sqlite3.connect(plain_db)
    db.execute(f"ATTACH '{rebook_db}' AS r")
    db.execute(
        "CREATE TABLE visits AS SELECT id, client_id, starts_at, service, status FROM r.visits"
    )
    db.execute(HAND_INDEX)
    db.execute("ANALYZE")
    db.commit()
    db.close()


def hand_params(now: datetime) -> dict:
    from datetime import timedelta

    naive = now.astimezone(UTC).replace(tzinfo=None)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return {
        "now": naive.strftime(fmt),
        "older": (naive - timedelta(weeks=6)).strftime(fmt),
        "newer": (naive - timedelta(weeks=12)).strftime(fmt),
    }


def bench_query(folder: Path) -> dict:
    settings = load_settings(folder / "config.toml")
    engine = open_database(settings.database)
    segment, now = settings.segments[SEGMENT], datetime.now(UTC)
    with engine.connect() as connection:
        rebook_count = count_members(connection, segment, now)
        rebook_s = best(lambda: count_members(connection, segment, now), 7)
    engine.dispose()
    plain = sqlite3.connect(folder / "plain.db")
    params = hand_params(now)
    hand_count = plain.execute(HAND_QUERY, params).fetchone()[0]
    hand_s = best(lambda: plain.execute(HAND_QUERY, params).fetchone(), 7)
    plain.close()
    return {
        "rebook_count": rebook_count,
        "hand_count": hand_count,
        "rebook_s": rebook_s,
        "hand_s": hand_s,
    }


def bench_process(folder: Path) -> dict:
    rebook = [timed(str(REBOOK), "segment", SEGMENT, "--count", cwd=folder) for _ in range(3)]
    hand = [
        timed(sys.executable, "-c", HAND_SCRIPT, "plain.db", HAND_QUERY, cwd=folder)
        for _ in range(3)
    ]
    bare = [timed(sys.executable, "-c", "pass", cwd=folder) for _ in range(3)]
    return {
        "rebook_s": min(t for t, _, _ in rebook),
        "hand_s": min(t for t, _, _ in hand),
        "bare_s": min(t for t, _, _ in bare),
        "counts": (rebook[0][1].strip(), hand[0][1].strip()),
    }


def bench_import(folder: Path) -> dict:
    """rebook import visits (fresh database, clients already in) against plain executemany."""
    (folder / "rebook.db").unlink()
    timed(str(REBOOK), "import", "clients", "exports/clients.csv", cwd=folder)
    rebook_s, out, peak_mb = timed(
        str(REBOOK), "import", "visits", "exports/visits.csv", cwd=folder
    )
    rows = plain_rows(folder)
    db_path = folder / "executemany.db"
    db_path.unlink(missing_ok=True)
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE visits (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, starts_at TEXT NOT NULL,"
        " service TEXT NOT NULL, status TEXT NOT NULL, therapist TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    db.execute(HAND_INDEX)
    started = time.perf_counter()
    with db:
        db.executemany("INSERT INTO visits VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    plain_s = time.perf_counter() - started
    db.close()
    return {
        "rows": len(rows),
        "rebook_s": rebook_s,
        "plain_s": plain_s,
        "peak_mb": peak_mb,
        "summary": out.strip(),
    }


def plain_rows(folder: Path) -> list[tuple]:
    """The visits file's rows, parsed as rebook stores them (UTC text), outside the timing."""
    import csv

    from campaigns.clients.csv_rows import parse_visit

    zone = load_settings(folder / "config.toml").clinic.timezone
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with (folder / "exports" / "visits.csv").open(newline="", encoding="utf-8") as file:
        parsed = (parse_visit(row, zone) for row in csv.DictReader(file))
        return [
            (v["id"], v["client_id"], v["starts_at"].replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f"),
             v["service"], v["status"], v["therapist"], stamp)
            for v in parsed
        ]  # fmt: skip


def import_times(folder: Path) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(REBOOK), "segment", SEGMENT, "--count"],
        cwd=folder, capture_output=True, text=True, check=True,
    )  # fmt: skip
    top = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith("   "):  # top-level imports only
            top.append((int(cumulative), name.strip()))
    return sorted(top, reverse=True)[:8]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work")
    options = parser.parse_args()
    results = {}
    for size in [int(s) for s in options.sizes.split(",")]:
        folder = options.work / f"clinic-{size}"
        print(f"\n== {size:,} clients ==", flush=True)
        build_clinic(folder, size)
        for kind in ("clients", "visits"):
            elapsed, out, _ = timed(str(REBOOK), "import", kind, f"exports/{kind}.csv", cwd=folder)
            print(f"  {out.strip()}  [{elapsed:.1f} s]", flush=True)
        hand_copy(folder / "rebook.db", folder / "plain.db")
        query = bench_query(folder)
        process = bench_process(folder)
        results[size] = query
        ratio = query["rebook_s"] / query["hand_s"]
        print(f"  counts: rebook {query['rebook_count']}, hand-written {query['hand_count']}, "
              f"agree: {query['rebook_count'] == query['hand_count']}")  # fmt: skip
        print(f"  query in-process: rebook {query['rebook_s'] * 1000:.1f} ms, "
              f"hand-written {query['hand_s'] * 1000:.1f} ms, ratio {ratio:.2f}x")  # fmt: skip
        print(f"  whole process (best of 3): rebook segment --count {process['rebook_s'] * 1000:.0f} ms, "
              f"hand-written script {process['hand_s'] * 1000:.0f} ms "
              f"(ratio {process['rebook_s'] / process['hand_s']:.2f}x); bare interpreter "
              f"{process['bare_s'] * 1000:.0f} ms; counts {process['counts']}")  # fmt: skip
        if size == max(int(s) for s in options.sizes.split(",")):
            print("  heaviest top-level imports of `rebook segment --count` (cumulative µs):")
            for micros, name in import_times(folder):
                print(f"    {micros:>8,}  {name}")
            imported = bench_import(folder)
            print(f"  import of {imported['rows']:,} visits: rebook {imported['rebook_s']:.1f} s "
                  f"(peak RSS {imported['peak_mb']} MB), plain executemany {imported['plain_s']:.1f} s, "
                  f"ratio {imported['rebook_s'] / imported['plain_s']:.2f}x")  # fmt: skip
    sizes = sorted(results)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"\ngrowth {sizes[0]:,} → {sizes[-1]:,}: rebook {large['rebook_s'] / small['rebook_s']:.1f}x, "
              f"hand-written {large['hand_s'] / small['hand_s']:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
