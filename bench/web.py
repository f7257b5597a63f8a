"""The unsubscribe endpoint under load while ``rebook run`` sends a campaign from the same process.

    python bench/web.py [--messages 20000] [--connections 200] [--seconds 10] [--repeat 2]

Load: Debian's ``wrk`` (``apt-get install wrk``), one thread, --connections
keep-alive connections, for --seconds, each request the one-click POST a mail
provider makes (``List-Unsubscribe=One-Click``) to a valid link of a
different client (tokens made with ``campaigns.content.tokens`` from the
REBOOK_WEB__SECRET this script sets). wrk is C: its CPU time is small next
to rebook's on the shared 2 cores, which a Python load generator's would not be.
The clients unsubscribed are not in the campaign's segment, so the campaign
sends the same messages with and without the load.

The per-address limit would refuse a load from one address: the clinic here
sets ``[web] rate_limit_per_ip = "1000000/s"`` and ``burst_per_ip = 1000000``.

Per repeat, each on a fresh SQLite clinic of --messages recipients (bench/send.py's)
with Postfix's smtp-sink (bench/send.py) taking the mail:

  web only    ``rebook run`` with nothing to send, under the load
  send only   ``rebook run`` sending the campaign (it runs at start), no load
  both        the same, with the load started at the ``run started`` line,
              once per --rates: 0 is wrk's own closed loop (each connection
              sends its next request when answered: the endpoint saturated,
              latency then is 200 connections / throughput); a number offers
              about that many requests a second in all (each connection pauses
              between requests), the latency of an endpoint that keeps up

The send rate is the ledger's ``sent_at`` count over the load's window (from
``run started`` for --seconds, cut to the first..last message sent), the same
window in the run without load. Targets: no errors, p99 under 100 ms, the
send rate down by less than 20%.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from send import REBOOK, build_clinic, free_port, running_sink  # noqa: E402
from service import Service, _moment, add_to_config  # noqa: E402

from campaigns.content.tokens import make_token  # noqa: E402

WORK = ROOT / "bench" / ".work" / "web"
SECRET = "bench-web-secret-0123456789abcdef"
READERS = 20_000  # clients outside the segment, each unsubscribed by one request at most
WEB = """
[web]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
rate_limit_per_ip = "1000000/s"
burst_per_ip = 1000000
"""
LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local next_one = 0
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local pause = %s  -- ms each connection waits between requests, on average; 0: none
-- random, so that the connections, which all start at once, drift apart
if pause > 0 then delay = function() return math.random(0, 2 * pause) end end
request = function()
  next_one = next_one %% #paths + 1
  return wrk.format("POST", paths[next_one], headers, "List-Unsubscribe=One-Click")
end
"""


def build(folder: Path, messages: int, sink_port: int, web_port: int, schedule: str) -> None:
    """bench/send.py's clinic, scheduled, serving on ``web_port``, plus the readers."""
    build_clinic(folder, messages, sink_port, 4, "sqlite:///rebook.db")
    add_to_config(folder, schedule)
    config = folder / "config.toml"
    config.write_text(config.read_text() + WEB.format(port=web_port))
    with (folder / "readers.csv").open("w") as out:
        out.write("id,email,first_name,last_name,marketing_consent\n")
        out.writelines(f"r{n:07d},reader{n}@example.com,R{n},Test,yes\n" for n in range(READERS))
    subprocess.run([str(REBOOK), "import", "clients", "readers.csv"], cwd=folder, check=True,
                   capture_output=True)  # fmt: skip
    secret = SECRET.encode()
    (folder / "paths.txt").write_text(
        "".join(f"/unsubscribe/{make_token(secret, f'r{n:07d}')}\n" for n in range(READERS))
    )


def script(folder: Path, rate: int, connections: int) -> Path:
    """wrk's Lua: POSTs as fast as answered (``rate`` 0), or about ``rate`` a second in all."""
    pause = 1000 * connections // rate if rate else 0
    path = folder / f"post-{rate}.lua"
    path.write_text(LUA % (folder / "paths.txt", pause))
    return path


def start(folder: Path) -> Service:
    os.environ["REBOOK_WEB__SECRET"] = SECRET  # inherited by the service
    service = Service(folder)
    service.wait_for("service started", timeout=120)  # the endpoint listens before this
    return service


def load(folder: Path, port: int, connections: int, seconds: float, rate: int) -> dict:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "--timeout", "5s",
         "-s", str(script(folder, rate, connections)), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return parse_wrk(done.stdout)


def parse_wrk(out: str) -> dict:
    def number(pattern: str, default: float = 0.0) -> float:
        found = re.search(pattern, out)
        return float(found[1]) if found else default

    def ms(pattern: str) -> float:
        found = re.search(pattern + r"\s+([\d.]+)(us|ms|s)\b", out)
        value, unit = float(found[1]), found[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    socket = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(number(r"(\d+) requests in")),
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "p50": ms(r"50%"), "p99": ms(r"99%"),
        "non_2xx": int(number(r"Non-2xx or 3xx responses: (\d+)")),
        "socket_errors": sum(map(int, socket.groups())) if socket else 0,
    }  # fmt: skip


def sent_in(folder: Path, start: datetime, end: datetime) -> tuple[int, float, int]:
    """Messages sent in [start, end] cut to the first..last sent: (count, seconds, all sent)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{folder / 'rebook.db'}")
    with engine.connect() as connection:
        times = [
            _moment(value).replace(tzinfo=UTC)
            for value in connection.execute(
                text("SELECT sent_at FROM sends WHERE status = 'sent' ORDER BY sent_at")
            ).scalars()
        ]
        unsubscribed = connection.execute(
            text("SELECT count(*) FROM client_suppressions")
        ).scalar_one()
    engine.dispose()
    if not times:
        return 0, 0.0, unsubscribed
    low, high = max(start, times[0]), min(end, times[-1])
    count = sum(1 for moment in times if low <= moment <= high)
    return count, max(1e-6, (high - low).total_seconds()), unsubscribed


def run_started(service: Service) -> datetime:
    _, entry = service.wait_for("run started", timeout=120)
    return datetime.fromisoformat(entry["time"])


def one_repeat(options, sink_port: int) -> dict:
    seconds, n, connections = options.seconds, options.messages, options.connections
    result: dict = {"loads": {}}
    # web only: the campaign is not due, nothing else runs
    port = free_port()
    folder = WORK / "web-only"
    build(folder, n, sink_port, port, "0 10 29 2 *")
    service = start(folder)
    try:
        time.sleep(1)
        result["web"] = load(folder, port, connections, seconds, 0)
    finally:
        service.stop()
    result["web"]["unsubscribed"] = sent_in(folder, datetime.now(UTC), datetime.now(UTC))[2]
    shutil.rmtree(folder)
    for rate in [None, *options.rates]:  # None: sending without load
        port = free_port()
        folder = WORK / f"send-{rate}"
        build(folder, n, sink_port, port, "every 6h")
        service = start(folder)
        try:
            began = run_started(service)
            web = load(folder, port, connections, seconds, rate) if rate is not None else None
            service.wait_for("run finished", timeout=600)
        finally:
            service.stop()
        count, span, unsubscribed = sent_in(folder, began, began + timedelta(seconds=seconds))
        sending = {"sent": count, "span": span, "rate": count / span}
        if rate is None:
            result["send"] = sending
        else:
            result["loads"][rate] = {**web, "unsubscribed": unsubscribed, "send": sending}
        shutil.rmtree(folder)
    return result


def report(number: int, r: dict, connections: int) -> None:
    send = r["send"]
    print(f"  run {number}: sending alone {send['rate']:6,.0f} msg/s over the load's window")
    rows = [("web only, as fast as answered", r["web"], None)]
    rows += [(f"while sending, {'as fast as answered' if rate == 0 else f'offered {rate}/s'}",
              w, w["send"]) for rate, w in r["loads"].items()]  # fmt: skip
    for label, w, sending in rows:
        errors = w["non_2xx"] + w["socket_errors"]
        print(
            f"    {label:35s} {w['rps']:6,.0f} req/s, p50 {w['p50']:6.1f} ms, p99 {w['p99']:6.1f} ms "
            f"(target < 100), errors {errors}, {w['unsubscribed']:,} unsubscribed"
            + (f"; send {sending['rate']:6,.0f} msg/s "
               f"({100 * (sending['rate'] / send['rate'] - 1):+.1f}%, target > -20%)" if sending else "")
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--rates", default="0,500", help="loads while sending: requests/s offered, 0 = saturate"
    )
    options = parser.parse_args()
    options.rates = [int(rate) for rate in options.rates.split(",") if rate]
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    try:
        with running_sink() as sink_port:
            print(
                f"one-click POSTs from wrk (-t1 -c{options.connections}, {options.seconds:.0f} s) "
                f"to rebook run, a campaign of {options.messages:,} into smtp-sink; "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            for number in range(1, options.repeat + 1):
                report(number, one_repeat(options, sink_port), options.connections)
                print(f"        load average {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
