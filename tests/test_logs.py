"""``rebook run --log-format json``: every line the process writes is one JSON object."""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx

from jobs.logs import OncePerMinute

from .service import RunningService
from .smtpd import SmtpServer
from .test_web import link_of, serving_clinic


def test_what_clients_do_wrong_never_breaks_the_json_log(clinic):
    """Invalid HTTP, a client gone mid-body, too many connections: uvicorn's words and
    rebook's, each a JSON object, no traceback, and a repeated warning said once."""
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        port = int(base.rsplit(":", 1)[1])
        with RunningService(clinic.folder, "--log-format", "json") as service:
            service.wait_for("run finished")
            path = link_of(smtp, "person0@example.com").removeprefix(base).encode()
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                    sock.recv(4096)
            with socket.create_connection(("127.0.0.1", port)) as sock:  # gone mid-body
                sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\n"
                             b"List-Unsub")  # fmt: skip
                time.sleep(0.3)
            held = []  # 17 addresses x 32 connections: past uvicorn's limit of 500
            try:
                for n in range(2, 19):
                    for _ in range(32):
                        held.append(socket.create_connection(
                            ("127.0.0.1", port), source_address=(f"127.0.0.{n}", 0)
                        ))  # fmt: skip
                held.append(socket.create_connection(  # one too many from 127.0.0.2: refused
                    ("127.0.0.1", port), source_address=("127.0.0.2", 0)
                ))  # fmt: skip
                time.sleep(0.5)
                for _ in range(2):
                    busy = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.40"))
                    with busy:
                        assert busy.get(base + "/healthz").status_code == 503
            finally:
                for sock in held:
                    sock.close()
            service.wait_for("Exceeded concurrency limit.")
            service.wait_for("web connections cut")
            assert service.stop() == 0
    entries = [json.loads(line) for line in service.lines]  # each line parses, or this fails
    assert all(isinstance(entry, dict) and "event" in entry for entry in entries)
    assert not any("traceback" in entry for entry in entries), service.log()
    said = [(entry.get("logger"), entry["event"]) for entry in entries]
    assert said.count(("uvicorn.error", "Invalid HTTP request received.")) == 1  # not three
    assert said.count(("uvicorn.error", "Exceeded concurrency limit.")) == 1  # not twice
    assert "ClientDisconnect" not in service.log()


def test_a_repeated_warning_says_how_many_were_held_back():
    now = [0.0]
    hush = OncePerMinute(every=60, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, message, (), None)

    passed = []
    for at, message in [(0, "a"), (1, "a"), (2, "b"), (30, "a"), (61, "a"), (62, "a")]:
        now[0] = at
        entry = record(message)
        if hush.filter(entry):
            passed.append((at, message, getattr(entry, "fields", {})))
    assert passed == [
        (0, "a", {}),
        (2, "b", {}),
        (61, "a", {"also_in_the_last_minute": 2}),
    ]
