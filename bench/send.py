"""Sending: ``rebook send`` against a bare aiosmtplib blast, both into Postfix's smtp-sink.

    python bench/send.py [--messages 20000] [--connections 4] [--rss 100000] [--postgres URL]

The physical path is Postfix's ``smtp-sink`` (accepts and discards mail). It
comes from Debian's ``postfix`` package without installing a mail server:
this script runs ``apt-get download postfix`` and ``dpkg -x`` into
bench/.work/postfix unless SMTP_SINK names the binary.

In the same run it measures:
  bare     an aiosmtplib script sending N pre-built copies of one rebook
           message over the same number of connections (the reference)
  rebook   ``rebook send`` of a marketing campaign to N consenting clients,
           a fresh process, ledger included (SQLite)
and prints messages/s for both and their ratio; then the peak RSS of a
campaign to --rss recipients, and with --postgres URL (a server where the
script may create a database) the combined rate of two ``rebook send``
workers sharing one PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiosmtplib
from _process import timed

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "send"
REBOOK = Path(sys.executable).with_name("rebook")

CONFIG = """
[clinic]
name = "Waso Physiotherapy"
address = "1 Example Street, Perth WA 6000"
timezone = "Australia/Perth"
booking_url = "https://waso.example/book"

[database]
url = "{database}"

[mail]
from = "Waso Physiotherapy <hello@waso.example>"
transport = "smtp"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = {connections}

[segments.lapsed]
services = ["back-pain-massage"]
last_visit_older_than = "6w"

[campaigns.book]
segment = "lapsed"
template = "reminders/book-next-massage"
subject = "{{{{ client.first_name }}}}, how is your back?"
"""


def smtp_sink() -> tuple[Path, dict]:
    """The smtp-sink binary and the environment it needs."""
    if os.environ.get("SMTP_SINK"):
        binary = Path(os.environ["SMTP_SINK"])
        return binary, dict(os.environ)
    root = WORK.parent / "postfix"
    binary = root / "usr" / "sbin" / "smtp-sink"
    if not binary.exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["apt-get", "download", "postfix"], cwd=root, check=True, capture_output=True
        )
        [package] = root.glob("postfix_*.deb")
        subprocess.run(["dpkg", "-x", str(package), str(root)], check=True)
    return binary, {**os.environ, "LD_LIBRARY_PATH": str(root / "usr" / "lib" / "postfix")}


@contextmanager
def running_sink() -> Iterator[int]:
    """smtp-sink accepting and discarding mail on a free port, for as long as the block runs."""
    binary, environment = smtp_sink()
    port = free_port()
    sink = subprocess.Popen([str(binary), "-c", "-u", "nobody", f"127.0.0.1:{port}", "1000"],
                            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.5)  # listening by then
        yield port
    finally:
        sink.terminate()
        sink.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_clinic(folder: Path, clients: int, port: int, connections: int, database: str) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(
        CONFIG.format(database=database, port=port, connections=connections)
    )
    with (folder / "clients.csv").open("w") as out:
        out.write("id,email,first_name,last_name,marketing_consent\n")
        out.writelines(
            f"c{n:07d},client{n}@example.com,Client{n},Test,yes\n" for n in range(clients)
        )
    with (folder / "visits.csv").open("w") as out:
        out.write("id,client_id,starts_at,service,status,therapist\n")
        out.writelines(
            f"v{n},c{n:07d},2026-01-05T10:00,back-pain-massage,attended,Sam Carter\n"
            for n in range(clients)
        )
    for kind in ("clients", "visits"):
        subprocess.run(
            [str(REBOOK), "import", kind, f"{kind}.csv"],
            cwd=folder,
            check=True,
            capture_output=True,
        )


async def bare_blast(port: int, message: bytes, count: int, connections: int) -> float:
    """N copies of one pre-built message over ``connections`` long-lived connections."""

    async def worker(share: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for _ in range(share):
            await client.sendmail("hello@waso.example", ["client0@example.com"], message)
        await client.quit()

    started = time.perf_counter()
    shares = [
        count // connections + (1 if n < count % connections else 0) for n in range(connections)
    ]
    await asyncio.gather(*(worker(share) for share in shares))
    return time.perf_counter() - started


def one_message(folder: Path) -> bytes:
    done = subprocess.run(
        [str(REBOOK), "preview", "book", "--format", "eml"],
        cwd=folder,
        capture_output=True,
        check=True,
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--rss", type=int, default=100_000, help="recipients for the memory run (0: skip)"
    )
    parser.add_argument(
        "--postgres",
        help="server URL for the two-worker run, e.g. postgresql+psycopg://postgres@127.0.0.1/test",
    )
    options = parser.parse_args()
    with running_sink() as port:
        n, connections = options.messages, options.connections
        folder = WORK / "sqlite"
        build_clinic(folder, n, port, connections, "sqlite:///rebook.db")
        message = one_message(folder)
        bare_s = asyncio.run(bare_blast(port, message, n, connections))
        rebook_s, out, peak = timed(str(REBOOK), "send", "book", cwd=folder)
        bare_rate, rebook_rate = n / bare_s, n / rebook_s
        print(
            f"{n:,} messages of {len(message):,} bytes over {connections} connections to smtp-sink"
        )
        print(f"  bare aiosmtplib, pre-built message:   {bare_rate:7,.0f} msg/s")
        print(
            f"  rebook send (fresh process, SQLite): {rebook_rate:7,.0f} msg/s  ({out.splitlines()[0]})"
        )
        print(
            f"  ratio rebook / bare: {rebook_rate / bare_rate:.2f}x (target >= 0.7x); peak RSS {peak} MB"
        )
        if options.rss:
            folder = WORK / "rss"
            build_clinic(folder, options.rss, port, connections, "sqlite:///rebook.db")
            seconds, out, peak = timed(str(REBOOK), "send", "book", cwd=folder)
            print(
                f"  {options.rss:,} recipients: {options.rss / seconds:,.0f} msg/s, peak RSS {peak} MB (target <= 150 MB)"
            )
        if options.postgres:
            two_workers(options.postgres, n, port, connections)


def two_workers(server: str, n: int, port: int, connections: int) -> None:
    from sqlalchemy import create_engine, text

    name = "rebook_bench_send"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        folder = WORK / "postgres"
        build_clinic(folder, n, port, connections, server.rsplit("/", 1)[0] + "/" + name)
        started = time.perf_counter()
        workers = [
            subprocess.Popen(
                [str(REBOOK), "send", "book"], cwd=folder, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = [worker.communicate()[0] for worker in workers]
        seconds = time.perf_counter() - started
        sent = [int(out.split("sent ")[1].split(",")[0]) for out in outputs]
        print(
            f"  PostgreSQL, two rebook send workers: {n / seconds:,.0f} msg/s combined (split {sent[0]:,} + {sent[1]:,})"
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
