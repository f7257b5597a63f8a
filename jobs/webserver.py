"""Serving the endpoint: its socket on ``[web] listen``, and uvicorn on the service's loop.

Marketing mail carries links to this endpoint, so ``rebook run`` must not
send while nothing (or another program) answers them: it binds ``[web]
listen`` first, before the scheduler or any loop starts, and exits 2 with
the reason when it cannot (``ListenError``). A machine with several workers
has one serve the endpoint and the others set ``[web] serve = false`` (any
worker's endpoint honours any link). ``rebook check`` binds the address for
a moment to find the same mistakes (``check_listen``); an address in use is
only a warning there, since it is likely this clinic's own ``rebook run``.

rebook binds the socket itself and hands it to uvicorn, so the message is
rebook's (which key, what is wrong, what to do), never uvicorn's ``[Errno
98]`` line followed by the process exiting under the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from campaigns.config.report import environment
from campaigns.config.values import split_listen
from campaigns.errors import UserError
from jobs.connections import Guard, guarded
from jobs.logs import LOGGER, event
from jobs.web import Endpoint, Troubles, make_app, site_of

log = logging.getLogger(LOGGER)
BACKLOG = 2048  # uvicorn's default: connections the kernel queues before we accept them
LIMIT_CONCURRENCY = 500  # open connections and running requests at most; beyond: 503


class ListenError(UserError):
    """``[web] listen`` cannot be bound on this machine."""

    def __init__(self, reason: str, in_use: bool = False) -> None:
        super().__init__(reason)
        self.in_use = in_use


def bind(listen: str) -> list[socket.socket]:
    """Listening sockets for every address ``listen``'s host names; ``ListenError`` when not."""
    host, port = split_listen(listen)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ListenError(
            f"{host!r} is not a name this machine can resolve ({error.strerror})"
        ) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:  # a family this machine lacks (IPv6 turned off): as asyncio does
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise ListenError(_why(error, host, port), in_use=error.errno == errno.EADDRINUSE) from None
    if not sockets:
        raise ListenError(f"{host} has no address this machine can listen on")
    return sockets


def _why(error: OSError, host: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use by another program (or another rebook run)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine"
    if error.errno == errno.EACCES:
        return (
            f"no permission to listen on port {port}: ports below 1024 need root; "
            "use a port above 1024 behind the HTTPS proxy"
        )
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


def _where(config_path) -> str:
    return environment().get(("web", "listen"), str(config_path))


def check_listen(settings, config_path) -> tuple[list[str], list[str]]:
    """``rebook check``: (errors, warnings) about ``[web] listen``, found by binding it.

    In use is a warning: the clinic's own ``rebook run`` may well be holding it.
    """
    if not settings.web.serve:
        return [], []
    try:
        sockets = bind(settings.web.listen)
    except ListenError as error:
        said = f"{_where(config_path)}: web.listen {settings.web.listen!r}: {error}"
        if error.in_use:
            return [], [
                f"{said}: by this clinic's rebook run already? If not, rebook run will "
                "stop there with exit 2 (stop the other program or choose another port)"
            ]
        return [said], []
    for sock in sockets:
        sock.close()
    return [], []


def make_server(endpoint: Endpoint, guard: Guard | None = None):
    """A uvicorn server for ``endpoint`` that leaves the signals to the service.

    Its connections are held to ``guard``'s limits (``jobs.connections``; by
    default its constants, the trusted proxies exempt). ``X-Forwarded-For``
    is read by the endpoint (``Site.trusted_proxies``), so uvicorn is told
    nothing of proxies and does not read ``FORWARDED_ALLOW_IPS`` itself;
    ``log_config=None``: uvicorn's loggers write through rebook's (``jobs.logs``).
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # rebook's own handlers stop the service, and then us
            yield

    if guard is None:
        guard = Guard(exempt=lambda host: endpoint.site.trusts(host))
    config = uvicorn.Config(
        endpoint, http=guarded(guard), log_config=None, access_log=False, lifespan="off",
        limit_concurrency=LIMIT_CONCURRENCY, timeout_keep_alive=5, server_header=False,
        h11_max_incomplete_event_size=16_384, proxy_headers=False, backlog=BACKLOG,
    )  # fmt: skip
    server = Server(config)
    server.endpoint = endpoint
    return server


async def start_web(
    engine: Engine,
    settings,
    clock: Callable[[], datetime],
    config_path=None,
    *,
    troubles: Troubles | None = None,
):
    """Serve the endpoint on ``[web] listen`` on the running loop: (server, its task).

    (None, None) with ``[web] serve = false``. ``ListenError`` (exit 2) when the
    address cannot be bound: the caller starts nothing else. ``server.endpoint
    .configure(site_of(settings, secret))`` applies a reloaded config's pages,
    limit and proxies; another ``listen`` needs a new server.
    """
    from campaigns.store.secrets import web_secret

    web = settings.web
    if not web.serve:
        event(log, "web endpoint not served here: [web] serve = false", listen=web.listen)
        return None, None
    try:
        sockets = bind(web.listen)
    except ListenError as error:
        raise ListenError(
            f"{_where(config_path or 'config')}: web.listen {web.listen!r}: {error}; the "
            "unsubscribe links of every marketing email lead there, so rebook run does not "
            "start without it. Choose another address, or set [web] serve = false when "
            "another rebook run on this machine serves the links"
        ) from None
    with engine.connect() as connection:
        secret = web_secret(connection, web.secret)
    server = make_server(make_app(engine, site_of(settings, secret), clock, troubles))
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if not server.started:
        for sock in sockets:
            sock.close()
        await serving  # raises what stopped it
        raise ListenError(f"web endpoint on {web.listen} did not start")
    event(log, "web endpoint listening", listen=web.listen, public_url=web.public_url)
    return server, serving
