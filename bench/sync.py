"""The Cliniko sync at scale, against ``rebook import`` of the same rows as CSV in the same run.

    python bench/sync.py [--patients 100000] [--appointments 1000000] [--work DIR]

A fake Cliniko (tests/fake_cliniko.py, its generated account) serves the
patients and appointments on loopback from its own process. This measures,
each as a whole ``rebook`` process with its peak RSS:

1. ``rebook sync --full`` into an empty database (pacing lifted: the real
   Cliniko's 200 requests a minute would make this an hour of waiting);
2. the reference: the rows that sync wrote, exported as CSV, then
   ``rebook import clients`` and ``rebook import visits`` into another empty
   database; the goal is a full sync within 1.5x of that;
3. ``rebook sync`` again with nothing changed in Cliniko: goal under 1 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _process import timed  # noqa: E402

REBOOK = Path(sys.executable).with_name("rebook")
API_KEY = "MS0xLWFiY2RlZg-au2"
CONFIG = """\
[clinic]
name = "Bench Physiotherapy"
address = "1 Example Street, Perth WA 6000"
timezone = "Australia/Perth"
booking_url = "https://bench.example/book"

[mail]
from = "Bench Physiotherapy <hello@bench.example>"
"""


def start_fake(patients: int, appointments: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "tests.fake_cliniko", "--patients", str(patients),
               "--appointments", str(appointments), "--api-key", API_KEY]  # fmt: skip
    fake = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = fake.stdout.readline()
    if "listening on" not in line:
        fake.kill()
        raise SystemExit(f"the fake Cliniko did not start: {line!r}")
    return fake, line.split("listening on", 1)[1].strip()


def clinic(folder: Path, extra: str = "") -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(CONFIG + extra)
    return folder


def export_csv(database: Path, folder: Path) -> None:
    """The rows the sync wrote, as the export files ``rebook import`` reads."""
    folder.mkdir(exist_ok=True)
    db = sqlite3.connect(database)
    with (folder / "clients.csv").open("w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["id", "email", "first_name", "last_name", "marketing_consent", "timezone"])
        out.writerows(db.execute("SELECT id, email, first_name, last_name, "
                                 "marketing_consent, coalesce(timezone, '') FROM clients"))  # fmt: skip
    with (folder / "visits.csv").open("w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["id", "client_id", "starts_at", "service", "status", "therapist"])
        rows = db.execute("SELECT id, client_id, starts_at, service, status, therapist FROM visits")
        out.writerows((i, c, s.replace(" ", "T") + "+00:00", v, t, p) for i, c, s, v, t, p in rows)
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rebook-bench-sync"))
    args = parser.parse_args()
    env_key = {"REBOOK_SYNC__CLINIKO__API_KEY": API_KEY}
    fake, base_url = start_fake(args.patients, args.appointments)
    try:
        table = f'\n[sync.cliniko]\nbase_url = "{base_url}"\nrate_limit = "1000000/1s"\n'
        synced = clinic(args.work / "sync", table)
        os.environ.update(env_key)
        sync_s, sync_out, sync_mb = timed(str(REBOOK), "sync", "--full", cwd=synced)
        again_s, again_out, again_mb = timed(str(REBOOK), "sync", cwd=synced)
        idle_s, _, _ = timed(str(REBOOK), "status", cwd=synced)
    finally:
        os.environ.pop("REBOOK_SYNC__CLINIKO__API_KEY", None)
        fake.terminate()
        fake.wait()
    imported = clinic(args.work / "import")
    export_csv(synced / "rebook.db", imported / "exports")
    clients_s, _, clients_mb = timed(str(REBOOK), "import", "clients", "exports/clients.csv",
                                     cwd=imported)  # fmt: skip
    visits_s, visits_out, visits_mb = timed(str(REBOOK), "import", "visits", "exports/visits.csv",
                                            cwd=imported)  # fmt: skip
    import_s = clients_s + visits_s
    print(f"account: {args.patients:,} patients, {args.appointments:,} appointments")
    print(sync_out.rstrip())
    print(visits_out.rstrip())
    print(f"full sync:        {sync_s:7.2f} s  peak RSS {sync_mb} MB (goal < 200 MB)")
    print(f"import as CSV:    {import_s:7.2f} s  ({clients_s:.2f} + {visits_s:.2f}) "
          f"peak RSS {max(clients_mb, visits_mb)} MB")  # fmt: skip
    print(f"ratio:            {sync_s / import_s:7.2f}x (goal <= 1.5x)")
    print(f"nothing changed:  {again_s:7.2f} s  whole process, peak RSS {again_mb} MB (goal < 1 s); "
          f"rebook status takes {idle_s:.2f} s")  # fmt: skip
    print(again_out.rstrip())


if __name__ == "__main__":
    main()
