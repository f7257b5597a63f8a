"""The web endpoint ``rebook run`` serves: one-click unsubscribe (RFC 8058) and a health check.

``GET /unsubscribe/{token}`` shows a small page naming the clinic: a confirm
button (a plain form: no JavaScript) while the client is subscribed, or
where they stand (``jobs.pages``). ``POST`` to the same address unsubscribes
at once, whether from that button or from a mail provider's one-click
request (body ``List-Unsubscribe=One-Click``, form-urlencoded or
multipart): 200, no redirect, no cookie, no login. The page that confirms
offers to resubscribe (a POST with ``action=resubscribe``) unless the clinic
keeps the client off the list at its end, which no link can undo.

A token is the client's id signed with the web secret (``content.tokens``):
a bad or forged one is a 400 and changes nothing. A page says only where the
link's client stands: subscribed, unsubscribed, or kept off. A client who
no longer exists (forgotten) stands as kept off, like one the clinic
unsubscribed, so no answer tells whether a client's data are still kept.
Bodies are bounded; an error shows a plain page, never a stack trace. Each
client address has its own rate limit (``jobs.iplimit``); behind the HTTPS
proxy the address is the one the proxy forwards, trusted only from ``[web]
trusted_proxies``. No answer is built from the request's Host: a trailing
slash is served, not redirected.

What the config decides (secret, pages, limit, proxies) is one ``Site``,
which ``Endpoint.configure`` swaps between two requests on a reload.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from campaigns.content.tokens import read_token
from campaigns.delivery.suppression import KEPT_OFF, SUBSCRIBED, resubscribe_client, standing
from campaigns.store.database import write_transaction
from jobs.iplimit import LimitPerAddress, PerAddressLimit
from jobs.logs import LOGGER, OncePerMinute, event
from jobs.pages import Pages
from jobs.unsubscribing import UnsubscribeWriter

log = logging.getLogger(LOGGER + ".web")  # its lines read as rebook's, each at most once a minute
log.addFilter(OncePerMinute())  # a database down under a flood of POSTs: one line, not thousands
MAX_BODY = 4_096  # bytes: the one-click body is 26; a form from our own page is as short
ONE_CLICK = b"List-Unsubscribe=One-Click"  # RFC 8058's body, form-urlencoded
Troubles = Callable[[], dict[str, str]]  # {background loop: why it is failing now}


@dataclass(frozen=True)
class Site:
    """What the config decides of the endpoint, swapped whole (``Endpoint.configure``)."""

    secret: bytes
    pages: Pages
    limit: PerAddressLimit | None = None
    trusted_proxies: tuple[str, ...] = ()
    _networks: list = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks = [ipaddress.ip_network(proxy, strict=False) for proxy in self.trusted_proxies]
        object.__setattr__(self, "_networks", networks)

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (a peer's address) is one of the trusted proxies."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


def site_of(settings, secret: bytes) -> Site:
    web = settings.web
    return Site(
        secret,
        Pages(settings.clinic.name, settings.clinic.phone),
        PerAddressLimit(web.rate_limit_per_ip, web.burst_per_ip),
        tuple(web.trusted_proxies),
    )


class Endpoint:
    """The ASGI application: Starlette's routes behind the proxy headers and the rate limit."""

    def __init__(
        self, engine: Engine, site: Site, clock: Callable[[], datetime], troubles: Troubles | None
    ) -> None:
        self.engine, self.troubles = engine, troubles
        self.writer = UnsubscribeWriter(engine, clock)
        routes = []
        for path in ("/unsubscribe/{token}", "/unsubscribe/{token}/"):
            routes += [Route(path, self.show, methods=["GET"]),
                       Route(path, self.change, methods=["POST"])]  # fmt: skip
        routes.append(Route("/healthz", self.health, methods=["GET"]))
        self.routes = Starlette(routes=routes, exception_handlers={DBAPIError: _database_down})
        self.routes.router.redirect_slashes = False  # its redirect is built from the Host header
        self.configure(site)

    def configure(self, site: Site) -> None:
        """Use ``site`` from the next request on (a reload); buckets of a new limit start full."""
        app = self.routes
        if site.limit is not None:
            app = LimitPerAddress(app, site.limit, time.monotonic)
        self._app = ProxyHeadersMiddleware(app, trusted_hosts=list(site.trusted_proxies))
        self.site = site

    async def __call__(self, scope, receive, send) -> None:
        await self._app(scope, receive, send)

    def _client(self, request: Request) -> str | None:
        return read_token(self.site.secret, request.path_params["token"])

    async def show(self, request: Request) -> Response:
        pages, client_id = self.site.pages, self._client(request)
        if client_id is None:
            return pages.bad_link()
        now = await asyncio.to_thread(_read, self.engine, standing, client_id)
        if now == SUBSCRIBED:
            return pages.confirm()
        return pages.kept_off() if now == KEPT_OFF else pages.done()

    async def change(self, request: Request) -> Response:
        pages, client_id = self.site.pages, self._client(request)
        if client_id is None:
            return pages.bad_link()
        try:
            form = await _small_form(request)
        except ClientDisconnect:  # gone before its body arrived: nothing to do, nobody to tell
            return Response(status_code=400)
        if form is None:
            return PlainTextResponse("Request body too large or malformed", status_code=413)
        if form.get("action") == "resubscribe":
            granted = await asyncio.to_thread(_write, self.engine, resubscribe_client, client_id)
            return pages.back() if granted else pages.still_off()
        how = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "unsubscribe page"
        kept_off = await self.writer.unsubscribe(client_id, f"by the client ({how})")
        return pages.kept_off() if kept_off else pages.done()

    async def health(self, _: Request) -> Response:
        """200 ``ok``; 503 with a line for the database and each background loop failing now."""
        failing = []
        try:
            await asyncio.to_thread(_ping, self.engine)
        except Exception:
            failing.append("database unreachable")
        troubles = self.troubles() if self.troubles is not None else {}
        failing += [f"{name}: {reason}" for name, reason in sorted(troubles.items())]
        if failing:
            return PlainTextResponse("\n".join(failing), status_code=503)
        return PlainTextResponse("ok")


def make_app(
    engine: Engine,
    site: Site,
    clock: Callable[[], datetime],
    troubles: Troubles | None = None,
) -> Endpoint:
    """The endpoint; ``clock`` stamps each change, ``troubles`` names failing background loops."""
    return Endpoint(engine, site, clock, troubles)


async def _database_down(request: Request, error: Exception) -> Response:
    """The database went away mid-request: a short 503 and one log line, no traceback."""
    event(log, "web request failed: the database is unreachable", level=logging.WARNING,
          path=request.url.path[:80], error=type(error).__name__)  # fmt: skip
    return PlainTextResponse(
        "The service is unavailable for a moment: please try again later.", status_code=503
    )


async def _small_form(request: Request) -> dict[str, str] | None:
    """The posted form, or None when the body is over ``MAX_BODY`` or not a form."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    if body == ONE_CLICK and _urlencoded(request):  # what providers send: no parser needed
        return {"List-Unsubscribe": "One-Click"}
    request._body = body  # read once, bounded; the form parser reads it from here
    try:
        async with request.form(max_files=0, max_fields=8) as form:
            return {key: value for key, value in form.items() if isinstance(value, str)}
    except Exception:
        return None


def _urlencoded(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.partition(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def _read(engine: Engine, query, *args):
    with engine.connect() as connection:
        return query(connection, *args)


def _write(engine: Engine, change, *args):
    with write_transaction(engine) as connection:
        return change(connection, *args)


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
