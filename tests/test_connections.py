"""Slow and greedy clients, over real sockets: the endpoint's connection limits (``jobs.connections``).

Most tests serve a small app with short limits in this process (``served``);
the last holds 505 idle connections against the real ``rebook run``.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx

from jobs.connections import Guard

from .service import RunningService
from .smtpd import SmtpServer
from .test_web import link_of, serving_clinic, suppressed
from .webserver import served

SHORT = 0.5  # seconds for headers, and for a body, in these tests


class Echo:
    """An ASGI app that reads the whole body and says how long it was; notes disconnects."""

    def __init__(self) -> None:
        self.disconnects = 0

    async def __call__(self, scope, receive, send) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def app_with_limits(per_address: int = 3) -> Iterator[tuple[Echo, str, int]]:
    app = Echo()
    guard = Guard(lambda host: host == "127.0.0.9", per_address, SHORT, SHORT)
    with served(app, guard) as base:
        yield app, "127.0.0.1", int(base.rsplit(":", 1)[1])


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it said before."""
    started, said = time.monotonic(), b""
    while chunk := sock.recv(4096):
        said += chunk
    return time.monotonic() - started, said


def test_a_connection_that_sends_nothing_is_closed_in_time():
    with app_with_limits() as (_, _, port), connect(port) as sock:
        waited, said = closed_after(sock)
    assert SHORT * 0.8 < waited < SHORT + 1.5 and said == b""  # nothing asked, nothing said


def test_headers_trickled_a_byte_at_a_time_are_cut_with_408():
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
    with app_with_limits() as (app, _, port), connect(port) as sock:
        started, said = time.monotonic(), b""
        with contextlib.suppress(OSError):
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)  # each byte well inside any idle timeout
        with contextlib.suppress(OSError):
            said = sock.recv(4096)
        waited = time.monotonic() - started
    assert said.startswith(b"HTTP/1.1 408 ") and waited < SHORT + 1.5
    assert app.disconnects == 0  # the app never saw it


def test_a_body_trickled_is_cut_and_the_app_hears_the_client_left():
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    with app_with_limits() as (app, _, port), connect(port) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):
            for _ in range(100):
                sock.sendall(b"a")
                time.sleep(0.05)
        waited, said = closed_after(sock)
    assert said == b"" and waited < SHORT + 1.5
    assert app.disconnects == 1


def answer(sock: socket.socket) -> bytes:
    """One whole response of ``Echo``'s (its body is a few digits)."""
    said = b""
    while not (b"\r\n\r\n" in said and said.split(b"\r\n\r\n", 1)[1]):
        said += sock.recv(4096)
    return said


def test_a_kept_alive_connection_gets_a_fresh_clock_for_each_request():
    with app_with_limits() as (_, _, port), connect(port) as sock:
        for _ in range(3):  # together longer than one limit: each request has its own
            time.sleep(SHORT * 0.6)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
            assert answer(sock).startswith(b"HTTP/1.1 200 ")


def test_one_address_holds_only_so_many_connections_and_others_are_served():
    with app_with_limits(per_address=3) as (_, _, port):
        held = [connect(port, "127.0.0.2") for _ in range(3)]
        time.sleep(0.1)
        with connect(port, "127.0.0.2") as refused:
            waited, said = closed_after(refused)
        assert said.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in said and waited < 0.5
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
        proxy = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9"))
        base = f"http://127.0.0.1:{port}"
        with other, proxy:
            assert other.post(base + "/", content=b"hello").text == "5"
            exempt = [connect(port, "127.0.0.9") for _ in range(5)]  # a trusted proxy: no cap
            assert proxy.post(base + "/", content=b"hi").text == "2"
        held.pop().close()
        time.sleep(0.1)
        with connect(port, "127.0.0.2") as again:  # a place freed: taken again
            again.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na")
            assert answer(again).startswith(b"HTTP/1.1 200 ")
        for sock in held + exempt:
            sock.close()


def test_idle_connections_from_one_address_do_not_shut_out_a_one_click_post(clinic):
    """Before: 505 half-open connections from one address made every request a 503."""
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        port = int(base.rsplit(":", 1)[1])
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            link = link_of(smtp, "person0@example.com")
            held = []
            try:
                for _ in range(505):
                    held.append(connect(port, "127.0.0.2"))
                time.sleep(0.5)
                client = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
                with client:
                    answer = client.post(link, data={"List-Unsubscribe": "One-Click"})
                    assert answer.status_code == 200
            finally:
                for sock in held:
                    sock.close()
            service.wait_for("web connections cut")
            assert service.stop() == 0
    assert suppressed(clinic)[0] == [("c000", "unsubscribed")]
    assert "refused=" in service.log() and "busiest=127.0.0.2" in service.log()


def test_headers_longer_than_any_request_of_ours_are_refused_with_431():
    with app_with_limits() as (app, _, port), connect(port) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for _ in range(40):
                sock.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
        _, said = closed_after(sock)
    assert said.startswith(b"HTTP/1.1 431 ") and app.disconnects == 0
    for size in (20_000, 60_000):  # the same in one write: parsed whole before it was counted
        with app_with_limits() as (app, _, port), connect(port) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * size + b"\r\n\r\n")
            _, said = closed_after(sock)
        assert said.startswith(b"HTTP/1.1 431 ") and app.disconnects == 0, said[:40]
    with app_with_limits() as (_, _, port), connect(port) as sock:  # a big body is no header
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n" + b"a" * 40000)
        assert answer(sock).endswith(b"\r\n\r\n40000")
