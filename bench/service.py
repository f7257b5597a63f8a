"""The service, ``rebook run``: its idle footprint, its sending speed, and three workers sharing one.

    python bench/service.py [--idle-seconds 60] [--clients 100000] [--messages 20000]
                            [--postgres URL] [--workers-messages 6000] [--repeat 2]
                            [--parts idle,rate,workers]

Every process is a real ``rebook`` command logging JSON lines to stderr, read
as they come. Postfix's ``smtp-sink`` (see bench/send.py) takes the mail.

1. idle     ``rebook run`` with 20 campaigns whose cron times are years away,
            on a sample clinic of --clients clients: CPU over --idle-seconds
            (utime+stime from /proc/PID/stat; target under 1%), VmRSS and VmHWM
            (target under 120 MB), and the time from starting the process to
            its ``service started`` line (target under 2 s).
2. rate     a campaign of --messages recipients run by the scheduler inside
            ``rebook run`` (``every 6h`` on a fresh database: it runs at start)
            against ``rebook send`` of the same campaign on an identical fresh
            clinic, both measured from process start to the end of the run
            (the ``run finished`` line; the exit of ``rebook send``) and over
            the ledger's first to last ``sent_at``. Target: service >= 0.9x send.
3. workers  with --postgres URL (a server where the script may create a
            database): three ``rebook run`` workers on one database, ``[smtp]
            rate_limit = "200/s"``, one campaign of --workers-messages
            recipients: the combined rate over the ledger's first to last
            ``sent_at`` (target within 5% of 200/s), who ran it (``runs``),
            and how the messages split (the workers' ``run finished`` and
            ``delivered`` lines).

Each measurement runs --repeat times: the machine is shared, so one figure
says little. Every process started here is stopped with SIGTERM and waited
for; the folders under bench/.work/service are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _process import timed  # noqa: E402
from send import REBOOK, build_clinic, free_port, running_sink  # noqa: E402

from campaigns.clients.sample import SampleSize, write_sample_clinic  # noqa: E402

WORK = ROOT / "bench" / ".work" / "service"
TICKS = os.sysconf("SC_CLK_TCK")
FAR_CRON = "0 10 29 2 *"  # 29 February: nothing runs for years
PROGRESS = """
SELECT (SELECT count(*) FROM sends),
       (SELECT count(*) FROM sends WHERE status IN ('queued', 'claimed', 'sending')),
       (SELECT count(*) FROM runs WHERE outcome = 'running'),
       (SELECT count(*) FROM workers)
"""

IDLE_CONFIG = """
[clinic]
name = "Waso Physiotherapy"
address = "1 Example Street, Perth WA 6000"
timezone = "Australia/Perth"
booking_url = "https://waso.example/book"

[database]
url = "sqlite:///rebook.db"

[mail]
from = "Waso Physiotherapy <hello@waso.example>"
transport = "smtp"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"

[segments.lapsed-back-pain]
services = ["back-pain-massage", "remedial-massage"]
last_visit_older_than = "6w"
last_visit_newer_than = "12w"
booked = false

[segments.appointment-soon]
next_visit_within = "2d"
"""

IDLE_CAMPAIGN = """
[campaigns.idle-{number:02d}]
segment = "{segment}"
kind = "{kind}"
template = "{template}"
subject = "Waso Physiotherapy"
schedule = "{cron}"
"""


class Service:
    """One ``rebook run`` process whose JSON log lines are collected, with arrival times."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, **(env or {})}
        if (
            "REBOOK_WEB__LISTEN" not in environment
            and "listen =" not in (folder / "config.toml").read_text()
        ):  # rebook run stops when it cannot listen: 8080 may be taken
            environment["REBOOK_WEB__LISTEN"] = f"127.0.0.1:{free_port()}"
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [str(REBOOK), "run", "--log-format", "json"], cwd=folder, env=environment,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[tuple[float, dict]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"event": "(not json)", "line": line.rstrip()}
            self.lines.append((time.perf_counter(), entry))

    def events(self, name: str) -> list[tuple[float, dict]]:
        return [(at, entry) for at, entry in self.lines if entry.get("event") == name]

    def wait_for(self, name: str, timeout: float) -> tuple[float, dict]:
        """The first ``name`` line: its arrival and fields; the whole log on a timeout."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if found := self.events(name):
                return found[0]
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        log = "\n".join(json.dumps(entry) for _, entry in self.lines)
        raise SystemExit(f"rebook run: no '{name}' line within {timeout:.0f} s:\n{log}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

    def memory_mb(self) -> dict[str, float]:
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        values = dict(line.split(":", 1) for line in status)
        return {key: int(values[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}

    def children(self) -> list[tuple[int, float, str]]:
        """Child processes still alive: pid, VmRSS in MB, and what they run."""
        pid = self.process.pid
        found = []
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            try:
                status = Path(f"/proc/{child}/status").read_text()
                command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except FileNotFoundError:
                continue
            rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
            found.append((int(child), int(rss.split()[1]) / 1024, command.decode()[:90]))
        return found

    def stop(self) -> float:
        """SIGTERM and wait: seconds to exit. A process that does not stop is killed."""
        if self.process.poll() is None:
            asked = time.perf_counter()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                print(f"  ! rebook run {self.process.pid} ignored SIGTERM for 60 s: killed")
            self.reader.join(timeout=5)
            return time.perf_counter() - asked
        self.reader.join(timeout=5)
        return 0.0


# -- 1. idle ------------------------------------------------------------------------------


def build_idle_clinic(folder: Path, clients: int, port: int) -> None:
    """A sample clinic with 20 campaigns (marketing and reminders) due only on 29 February."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    kinds = [
        ("lapsed-back-pain", "marketing", "reminders/book-next-massage"),
        ("appointment-soon", "transactional", "reminders/appointment"),
    ]
    campaigns = [
        IDLE_CAMPAIGN.format(number=n, segment=segment, kind=kind, template=template, cron=FAR_CRON)
        for n in range(20)
        for segment, kind, template in [kinds[n % 2]]
    ]
    (folder / "config.toml").write_text(IDLE_CONFIG.format(port=port) + "".join(campaigns))
    write_sample_clinic(
        folder / "exports", date.today(), SampleSize(clients, visits_per_client=3.0)
    )
    for kind in ("clients", "visits"):
        timed(str(REBOOK), "import", kind, f"exports/{kind}.csv", cwd=folder)


def idle(folder: Path, seconds: float) -> dict:
    service = Service(folder)
    try:
        ready_at, ready = service.wait_for("service started", timeout=120)
        startup_cpu = service.cpu_seconds()
        time.sleep(1.0)  # the first pickup look and anything else the start-up left
        before, began = service.cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        after, wall = service.cpu_seconds(), time.perf_counter() - began
        memory = service.memory_mb()
        runs = len(service.events("run started"))
    finally:
        stop_s = service.stop()
    return {
        "startup_s": ready_at - service.started, "startup_cpu_s": startup_cpu,
        "campaigns": ready.get("campaigns"), "cpu_pct": 100 * (after - before) / wall,
        "wall_s": wall, **memory, "runs": runs, "stop_s": stop_s,
        "exit": service.process.returncode,
    }  # fmt: skip


def print_idle(clients: int, results: list[dict]) -> None:
    print(f"1. idle rebook run: 20 campaigns due on 29 February, {clients:,} clients (SQLite)")
    for n, r in enumerate(results, 1):
        print(
            f"  run {n}: start-up to 'service started' {r['startup_s']:.2f} s "
            f"(CPU {r['startup_cpu_s']:.2f} s; target < 2 s); campaigns={r['campaigns']}"
        )
        print(
            f"         CPU over {r['wall_s']:.0f} s idle {r['cpu_pct']:.3f}% (target < 1%); "
            f"VmRSS {r['VmRSS']:.0f} MB, VmHWM {r['VmHWM']:.0f} MB (target < 120 MB)"
        )
        print(
            f"         runs started while idle: {r['runs']}; SIGTERM to exit "
            f"{r['stop_s']:.2f} s, exit code {r['exit']}"
        )


# -- 2. service against send -------------------------------------------------------------


def add_to_config(folder: Path, schedule: str, rate_limit: str | None = None) -> None:
    """bench/send.py's clinic, scheduled (its campaign is the last table) and maybe rate-limited."""
    config = folder / "config.toml"
    text = config.read_text() + f'schedule = "{schedule}"\n'
    if rate_limit:
        text = text.replace("\nconnections =", f'\nrate_limit = "{rate_limit}"\nconnections =')
    config.write_text(text)


def ledger_span(folder: Path, database: str | None = None) -> tuple[int, float]:
    """Messages sent and seconds from the first to the last ``sent_at`` in the ledger."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database or f"sqlite:///{folder / 'rebook.db'}")
    with engine.connect() as connection:
        sent, first, last = connection.execute(
            text("SELECT count(*), min(sent_at), max(sent_at) FROM sends WHERE status = 'sent'")
        ).one()
    engine.dispose()
    return sent, (_moment(last) - _moment(first)).total_seconds() if sent else 0.0


def _moment(value):
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def send_once(folder: Path) -> dict:
    seconds, out, peak = timed(str(REBOOK), "send", "book", cwd=folder)
    sent, span = ledger_span(folder)
    return {"process_s": seconds, "sent": sent, "span_s": span, "peak": peak, "out": out}


def service_once(folder: Path) -> dict:
    service = Service(folder)
    try:
        finished_at, finished = service.wait_for("run finished", timeout=600)
        memory = service.memory_mb()
        time.sleep(2)  # what stays once the run is over
        children, after = service.children(), service.memory_mb()
    finally:
        service.stop()
    sent, span = ledger_span(folder)
    return {
        "process_s": finished_at - service.started, "sent": finished.get("sent"),
        "span_s": span, "peak": memory["VmHWM"], "ledger_sent": sent,
        "enqueued": finished.get("enqueued"), "children": children, "rss_after": after["VmRSS"],
    }  # fmt: skip


def service_against_send(n: int, port: int, repeat: int) -> list[tuple[dict, dict]]:
    results = []
    for _ in range(repeat):
        pair = {}
        for kind in ("send", "service"):
            folder = WORK / kind
            build_clinic(folder, n, port, 4, "sqlite:///rebook.db")
            add_to_config(folder, "every 6h")
            pair[kind] = send_once(folder) if kind == "send" else service_once(folder)
            shutil.rmtree(folder)
        results.append((pair["send"], pair["service"]))
    return results


def print_rates(n: int, results: list[tuple[dict, dict]]) -> None:
    print(f"2. {n:,} recipients, 4 connections into smtp-sink, fresh SQLite clinic each")
    for number, (send, service) in enumerate(results, 1):
        whole = (n / service["process_s"]) / (n / send["process_s"])
        ledger = (send["span_s"] / service["span_s"]) if service["span_s"] else float("nan")
        print(
            f"  run {number}: rebook send, start to exit:            {n / send['process_s']:6,.0f} "
            f"msg/s   ledger first..last sent_at {send['sent'] / send['span_s']:6,.0f} msg/s"
        )
        print(
            f"         rebook run, start to 'run finished': {n / service['process_s']:6,.0f} "
            f"msg/s   ledger first..last sent_at {service['ledger_sent'] / service['span_s']:6,.0f} "
            f"msg/s (sent={service['sent']})"
        )
        print(
            f"         ratio service / send: {whole:.2f}x whole process, {ledger:.2f}x ledger "
            f"(target >= 0.9x); peak RSS send {send['peak']} MB (largest process), "
            f"run {service['peak']:.0f} MB (main process)"
        )
        left = "; ".join(
            f"pid {pid} {rss:.0f} MB: {what}" for pid, rss, what in service["children"]
        )
        print(
            f"         2 s after 'run finished' (enqueued={service['enqueued']}): main VmRSS "
            f"{service['rss_after']:.0f} MB, children left: {left or 'none'}"
        )


# -- 3. three workers on PostgreSQL ------------------------------------------------------


def three_workers(server: str, n: int, port: int, repeat: int) -> list[dict]:
    from sqlalchemy import create_engine, text

    name = "rebook_bench_service"
    url = server.rsplit("/", 1)[0] + "/" + name
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    results = []
    try:
        for _ in range(repeat):
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            folder = WORK / "postgres"
            build_clinic(folder, n, port, 4, url)
            add_to_config(folder, "every 6h", rate_limit="200/s")
            results.append(run_workers(folder, url, n))
            shutil.rmtree(folder)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return results


def run_workers(folder: Path, url: str, n: int) -> dict:
    from sqlalchemy import create_engine, text

    # One worker serves the unsubscribe links; on one machine the others cannot also listen.
    workers = [
        Service(folder, None if n == 0 else {"REBOOK_WEB__SERVE": "false"}) for n in range(3)
    ]
    engine = create_engine(url)
    try:
        for worker in workers:
            worker.wait_for("service started", timeout=120)
        deadline, rows = time.perf_counter() + 60 + n / 100, 0
        while time.perf_counter() < deadline:
            with engine.connect() as connection:
                total, left, running, live = connection.execute(text(PROGRESS)).one()
            rows = max(rows, live)
            if total and not left and not running:
                break
            time.sleep(0.5)
        time.sleep(3)  # the helpers' last batch reaches their log
        with engine.connect() as connection:
            ran = connection.execute(text("SELECT worker, outcome, enqueued, sent FROM runs")).all()
    finally:
        for worker in workers:
            worker.stop()
        engine.dispose()
    sent, span = ledger_span(folder, url)
    shape = ledger_gaps(url)
    split = []
    for worker in workers:
        own = sum(
            int(entry.get("sent", 0))
            for event in ("run finished", "delivered")
            for _, entry in worker.events(event)
        )
        split.append((worker.process.pid, own, worker.process.returncode))
    return {"sent": sent, "span_s": span, "runs": ran, "split": split, "rows": rows, **shape}


def ledger_gaps(url: str) -> dict:
    """The longest pause, the first second, the middle half's rate, and the messages retried.

    A first-to-last rate hides a stall, a burst or a late straggler; these show which.
    """
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        times = connection.execute(
            text("SELECT sent_at FROM sends WHERE status = 'sent' ORDER BY sent_at")
        ).scalars()
        moments = [_moment(value) for value in times]
        retried = connection.execute(
            text("SELECT count(*) FROM sends WHERE attempts > 1")
        ).scalar_one()
    engine.dispose()
    gaps = [(b - a).total_seconds() for a, b in pairwise(moments)]
    if len(moments) < 4:
        return {"gap": max(gaps, default=0.0), "first_second": len(moments), "middle": 0.0,
                "retried": retried}  # fmt: skip
    quarter, three = len(moments) // 4, 3 * len(moments) // 4
    middle = (three - quarter) / max(1e-6, (moments[three] - moments[quarter]).total_seconds())
    first = sum(1 for moment in moments if (moment - moments[0]).total_seconds() < 1.0)
    return {"gap": max(gaps), "first_second": first, "middle": middle, "retried": retried}


def print_workers(n: int, results: list[dict]) -> None:
    print(f"3. three rebook run workers, one PostgreSQL, rate_limit = 200/s, {n:,} recipients")
    for number, r in enumerate(results, 1):
        rate = (r["sent"] - 1) / r["span_s"] if r["span_s"] else float("nan")
        print(
            f"  run {number}: {r['sent']:,} sent over {r['span_s']:.1f} s (ledger first..last "
            f"sent_at): {rate:.1f} msg/s combined, {100 * (rate / 200 - 1):+.1f}% of 200/s "
            f"(target within 5%)"
        )
        ran = ", ".join(
            f"pid {w.rsplit(':', 1)[1]} {outcome} enqueued={e} sent={s}"
            for w, outcome, e, s in r["runs"]
        )
        split = ", ".join(f"pid {pid}: {sent:,} (exit {code})" for pid, sent, code in r["split"])
        print(
            f"         first second {r['first_second']} messages; middle half "
            f"{r['middle']:.1f} msg/s; longest pause {r['gap']:.2f} s; retried {r['retried']}; "
            f"workers rows seen at once: up to {r['rows']}"
        )
        print(f"         runs table: {ran}")
        print(f"         split from the logs: {split}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=100_000, help="clients of the idle clinic")
    parser.add_argument("--messages", type=int, default=20_000, help="recipients for part 2")
    parser.add_argument("--workers-messages", type=int, default=6_000, help="part 3")
    parser.add_argument(
        "--postgres",
        help="server URL for part 3, e.g. postgresql+psycopg://postgres@127.0.0.1/postgres",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement")
    parser.add_argument("--parts", default="idle,rate,workers")
    options = parser.parse_args()
    parts = set(options.parts.split(","))
    try:
        with running_sink() as port:
            if "idle" in parts:
                folder = WORK / "idle"
                build_idle_clinic(folder, options.clients, port)
                results = [idle(folder, options.idle_seconds) for _ in range(options.repeat)]
                print_idle(options.clients, results)
            if "rate" in parts:
                results = service_against_send(options.messages, port, options.repeat)
                print_rates(options.messages, results)
            if "workers" in parts and options.postgres:
                n = options.workers_messages
                print_workers(n, three_workers(options.postgres, n, port, options.repeat))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
