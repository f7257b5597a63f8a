"""A made-up clinic, for trying rebook and for benchmarks.

Deterministic for a given seed and day, with visits spread over the past
year and bookings over the next weeks, so that every segment of
``config.example.toml`` has members. Rows are written as they are made: a
clinic of 100,000 clients streams to disk without being held in memory.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

FIRST_NAMES = [
    "Olivia", "Jack", "Charlotte", "Noah", "Amelia", "William", "Isla", "Oliver", "Mia",
    "Leo", "Zoë", "José", "Linh", "Mai", "Aroha", "Priya", "Siobhán", "Mateo", "Chloé",
    "Ahmed", "Grace", "Henry", "Ruby", "Lucas", "Ava", "Thomas", "Sophie", "Kenji",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyễn", "O'Brien",
    "Anderson", "Martin", "Thompson", "White", "Walker", "Tran", "Singh", "Kelly",
    "García", "Müller", "Papadopoulos", "Ngata", "Lee", "Harris", "Clarke", "Patel",
]  # fmt: skip
SERVICES = [
    ("back-pain-massage", 30),
    ("remedial-massage", 25),
    ("relaxation-massage", 20),
    ("sports-massage", 10),
    ("physiotherapy", 15),
]
THERAPISTS = ["Sam Carter", "Ana Ribeiro", "Tom Nguyen", "Hana Sato"]
TAGS = ["back-pain", "neck-pain", "sports", "pregnancy", "vip", "corporate"]
HOURS = [8, 9, 10, 11, 13, 14, 15, 16, 17, 18]


@dataclass(frozen=True)
class SampleSize:
    clients: int = 300
    visits_per_client: float = 6.0


def write_sample_clinic(
    folder: Path, today: date, size: SampleSize = SampleSize(), seed: int = 6000
) -> tuple[Path, Path]:
    """Write ``clients.csv`` and ``visits.csv`` into ``folder``; return their paths."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clients_path, visits_path = folder / "clients.csv", folder / "visits.csv"
    with (
        clients_path.open("w", newline="", encoding="utf-8") as client_file,
        visits_path.open("w", newline="", encoding="utf-8") as visit_file,
    ):
        client_rows, visit_rows = csv.writer(client_file), csv.writer(visit_file)
        client_rows.writerow(
            ["id", "email", "first_name", "last_name", "marketing_consent", "tags", "timezone"]
        )
        visit_rows.writerow(["id", "client_id", "starts_at", "service", "status", "therapist"])
        visit_id = 0
        for number in range(1, size.clients + 1):
            client_id = f"C{number:06d}"
            client_rows.writerow(_client(rng, client_id, number))
            for visit in _visits(rng, client_id, today, size.visits_per_client):
                visit_id += 1
                visit_rows.writerow([f"V{visit_id:08d}", client_id, *visit])
    return clients_path, visits_path


def _client(rng: random.Random, client_id: str, number: int) -> list[str]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower().replace("'", "")
    email = f"{_ascii(local)}.{number}@example.com"
    consent = rng.choices(["yes", "no", "true", "1", "false"], [50, 15, 10, 10, 15])[0]
    tags = ";".join(rng.sample(TAGS, rng.choices([0, 1, 2], [40, 45, 15])[0]))
    if rng.random() < 0.35 and "back-pain" not in tags:
        tags = ";".join(filter(None, [tags, "back-pain"]))
    return [client_id, email, first, last, consent, tags, ""]


def _visits(rng: random.Random, client_id: str, today: date, mean: float):
    """Past visits over the last year (most attended), and sometimes one booking ahead."""
    services = [name for name, _ in SERVICES]
    weights = [weight for _, weight in SERVICES]
    favourite = rng.choices(services, weights)[0]
    therapist = rng.choice(THERAPISTS)
    count = max(1, round(rng.expovariate(1 / mean)))
    last_seen = rng.randint(1, 300)  # days ago
    for index in range(count):
        days_ago = last_seen + index * rng.randint(7, 35)
        service = favourite if rng.random() < 0.75 else rng.choices(services, weights)[0]
        status = rng.choices(["attended", "cancelled", "no-show"], [88, 8, 4])[0]
        yield [_at(rng, today - timedelta(days=days_ago)), service, status, therapist]
    if rng.random() < 0.3:
        ahead = rng.choices([rng.randint(0, 2), rng.randint(3, 40)], [35, 65])[0]
        yield [_at(rng, today + timedelta(days=ahead)), favourite, "booked", therapist]


def _at(rng: random.Random, day: date) -> str:
    return datetime.combine(day, time(rng.choice(HOURS), rng.choice([0, 30]))).isoformat(
        timespec="minutes"
    )


def _ascii(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
