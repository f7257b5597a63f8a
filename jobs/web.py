"""The web endpoint ``rebook run`` serves: one-click unsubscribe (RFC 8058) and a health check.

``GET /unsubscribe/{token}`` shows a small page naming the clinic with a
confirm button (a plain form: no JavaScript). ``POST`` to the same address
unsubscribes at once, whether from that button or from a mail provider's
one-click request (body ``List-Unsubscribe=One-Click``, form-urlencoded or
multipart): 200, no redirect, no cookie, no login. The page that confirms
offers to resubscribe (a POST with ``action=resubscribe``).

A token is the client's id signed with the web secret (``content.tokens``):
a bad or forged one is a 400 and changes nothing. The answer for a genuine
token is the same whether or not the client still exists, so the endpoint
never tells who is a client. Bodies are bounded; an error shows a plain
page, never a stack trace. Each client address has its own rate limit
(``jobs.iplimit``); behind the HTTPS proxy the address is the one the proxy
forwards, trusted only from ``[web] trusted_proxies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from campaigns.content.tokens import read_token
from campaigns.delivery.suppression import resubscribe_client
from campaigns.store.database import write_transaction
from jobs.iplimit import LimitPerAddress, PerAddressLimit
from jobs.logs import LOGGER, event
from jobs.unsubscribing import UnsubscribeWriter

log = logging.getLogger(LOGGER)
MAX_BODY = 4_096  # bytes: the one-click body is 26; a form from our own page is as short
ONE_CLICK = b"List-Unsubscribe=One-Click"  # RFC 8058's body, form-urlencoded

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>{title} · {clinic}</title>
<style>
body {{ font: 17px/1.5 system-ui, sans-serif; margin: 0; padding: 2rem 1rem; }}
main {{ max-width: 32rem; margin: 0 auto; }}
button {{ font: inherit; padding: .7rem 1.4rem; border-radius: .4rem; border: 0;
         background: #1f5f5b; color: #fff; cursor: pointer; }}
button:focus-visible {{ outline: 3px solid #f0a500; outline-offset: 2px; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
<p><small>{clinic}</small></p>
</main>
</body>
</html>
"""


class Pages:
    """The few pages a client sees, in the clinic's name."""

    def __init__(self, clinic: str) -> None:
        self.clinic = html.escape(clinic)

    def _page(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        content = PAGE.format(title=html.escape(title), clinic=self.clinic, body=body)
        return HTMLResponse(content, status_code=status, headers={"Cache-Control": "no-store"})

    def confirm(self) -> HTMLResponse:
        return self._page("Unsubscribe", _form(
            f"<p>Stop receiving emails about appointments to book and articles from "
            f"{self.clinic}? Reminders of appointments you have booked still come.</p>",
            "unsubscribe", "Unsubscribe",
        ))  # fmt: skip

    def done(self) -> HTMLResponse:
        return self._page("You are unsubscribed", self._done)

    @functools.cached_property
    def _done(self) -> str:  # every one-click POST answers it: made once
        return _form(
            f"<p>{self.clinic} will not send you these emails again.</p>"
            "<p>Changed your mind?</p>",
            "resubscribe", "Subscribe again",
        )  # fmt: skip

    def back(self) -> HTMLResponse:
        return self._page("You are subscribed again", f"<p>Thank you. {self.clinic} may "
                          "send you emails about your care again.</p>")  # fmt: skip

    def bad_link(self) -> HTMLResponse:
        return self._page("This link does not work", "<p>It may have been copied "
                          "incompletely. Nothing was changed. Please reply to the email or "
                          "call us instead.</p>", status=400)  # fmt: skip


def _form(text: str, action: str, label: str) -> str:
    return (
        f'{text}<form method="post"><input type="hidden" name="action" value="{action}">'
        f'<button type="submit">{label}</button></form>'
    )


def make_app(
    engine: Engine,
    secret: bytes,
    clinic: str,
    clock: Callable[[], datetime],
    limit: PerAddressLimit | None = None,
):
    """The Starlette application; ``secret`` signs the tokens, ``clock`` stamps the change.

    ``limit``: requests over their client address's rate get 429 before any route runs.
    """
    pages = Pages(clinic)
    writer = UnsubscribeWriter(engine, clock)

    async def show(request: Request) -> Response:
        if read_token(secret, request.path_params["token"]) is None:
            return pages.bad_link()
        return pages.confirm()

    async def change(request: Request) -> Response:
        client_id = read_token(secret, request.path_params["token"])
        if client_id is None:
            return pages.bad_link()
        form = await _small_form(request)
        if form is None:
            return PlainTextResponse("Request body too large or malformed", status_code=413)
        if form.get("action") == "resubscribe":
            await asyncio.to_thread(_write, engine, resubscribe_client, client_id)
            return pages.back()
        how = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "unsubscribe page"
        await writer.unsubscribe(client_id, f"by the client ({how})")
        return pages.done()

    async def health(_: Request) -> Response:
        try:
            await asyncio.to_thread(_ping, engine)
        except Exception:
            return PlainTextResponse("database unreachable", status_code=503)
        return PlainTextResponse("ok")

    routes = [
        Route("/unsubscribe/{token}", show, methods=["GET"]),
        Route("/unsubscribe/{token}", change, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    return LimitPerAddress(app, limit, time.monotonic) if limit is not None else app


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


def _write(engine: Engine, change, *args) -> None:
    with write_transaction(engine) as connection:
        change(connection, *args)


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def make_server(app, listen: str, trusted_proxies: list[str] | None = None):
    """A uvicorn server on ``listen`` that leaves the signals to the service.

    ``X-Forwarded-For`` names the client only on a request from one of
    ``trusted_proxies`` (the rightmost address no trusted proxy added); from
    anyone else it is ignored, so nobody can claim another's address. Passed
    explicitly: uvicorn would otherwise read ``FORWARDED_ALLOW_IPS`` itself.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # rebook's own handlers stop the service, and then us
            yield

    host, _, port = listen.rpartition(":")
    config = uvicorn.Config(
        app, host=host.strip("[]"), port=int(port), log_level="warning", access_log=False,
        lifespan="off", limit_concurrency=500, timeout_keep_alive=5, server_header=False,
        h11_max_incomplete_event_size=16_384, proxy_headers=True,
        forwarded_allow_ips=list(trusted_proxies or []),
    )  # fmt: skip
    return Server(config)


async def start_web(engine: Engine, settings, clock: Callable[[], datetime]):
    """Serve the endpoint on ``[web] listen`` on the running loop: (server or None, its task).

    When the address is taken (another worker on this machine serves it),
    the service goes on without: any worker's endpoint honours any link.
    """
    from campaigns.store.secrets import web_secret

    with engine.connect() as connection:
        secret = web_secret(connection, settings.web.secret)
    web = settings.web
    limit = PerAddressLimit(web.rate_limit_per_ip, web.burst_per_ip)
    app = make_app(engine, secret, settings.clinic.name, clock, limit)
    server = make_server(app, web.listen, web.trusted_proxies)
    serving = asyncio.create_task(_serve_quietly(server))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if not server.started:
        event(log, "web endpoint not started: the address is in use or refused",
              level=logging.WARNING, listen=settings.web.listen)  # fmt: skip
        return None, serving
    event(log, "web endpoint listening", listen=settings.web.listen,
          public_url=settings.web.public_url)  # fmt: skip
    return server, serving


async def _serve_quietly(server) -> None:
    """uvicorn exits the process when it cannot bind: here that only ends this task."""
    with contextlib.suppress(SystemExit):
        await server.serve()
