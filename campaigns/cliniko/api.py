"""Talking to Cliniko's API: who we are, how fast we go, and what to do when it says no.

Every rule here is from Cliniko's API readme (github.com/redguava/cliniko-api,
readme.md as of 10cce8b; the developer portal docs.api.cliniko.com since):
HTTP Basic with the key as user name and no password ("Authentication"), a
User-Agent naming the app and a contact address or requests "may be
automatically blocked" ("Identifying your application"), JSON only ("Making
a request"), at most 200 requests a minute per user, a 429 with
``X-RateLimit-Reset`` past it ("Rate limits"), and pages of up to 100 whose
``links.next`` is followed to the end ("Pagination").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
import orjson

from campaigns.config import API_KEY_VARIABLE, Cliniko
from campaigns.durations import Rate
from campaigns.errors import RebookError, UserError

PER_PAGE = 100  # the most Cliniko gives a page
AHEAD = 4  # pages asked for before they are read: Cliniko works while rebook reads
TIMEOUT = 30.0  # seconds without a byte
DEADLINE = 120.0  # seconds for one whole answer (a page is ~130 KB)
RETRY_DELAYS = (1.0, 4.0)  # seconds before the 2nd and 3rd try of a request that failed
MOST_429 = 5  # "slow down" this many times in a row, and the sync gives up until next time
LONGEST_WAIT = 300.0  # seconds: a reset further away than this is not waited for


class ClinikoError(RebookError):
    """The sync could not finish (network, Cliniko's servers, a page that is not JSON)."""


class ClinikoRefused(UserError):
    """Cliniko refused the key or its permissions: only the owner can fix that (exit 2)."""


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    number: int
    total: int  # total_entries: the rows of the whole listing, for a progress bar


class SlidingWindow:
    """At most ``rate.count`` requests in any ``rate.per``: Cliniko counts per minute.

    A token bucket refilled per second would also do, but this one allows
    the whole minute's allowance at once, which is what lets an incremental
    sync's ten requests go in well under a second.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.count, self.per = rate.count, rate.per.total_seconds()
        self.sent: deque[float] = deque(maxlen=self.count)
        self.clock = clock

    async def wait(self) -> None:
        if len(self.sent) == self.count:
            await asyncio.sleep(max(0.0, self.sent[0] + self.per - self.clock()))
        self.sent.append(self.clock())


class ClinikoApi:
    """An authenticated session with one Cliniko account; use as ``async with``."""

    def __init__(
        self,
        settings: Cliniko,
        user_agent: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        if settings.api_key is None:
            raise ClinikoRefused(
                f"sync.cliniko: no API key: set {API_KEY_VARIABLE} in rebook's environment "
                "(README: 'Or sync straight from Cliniko')"
            )
        self.base = settings.api_url
        self.window = SlidingWindow(settings.rate_limit)
        self.retry_delays = retry_delays
        self.requests = 0
        self.client = httpx.AsyncClient(
            auth=httpx.BasicAuth(settings.api_key.get_secret_value(), ""),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            timeout=TIMEOUT,
            transport=transport,
            follow_redirects=False,  # a redirect would carry the key elsewhere
        )

    async def __aenter__(self) -> ClinikoApi:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()

    async def businesses(self) -> list[str]:
        """The account's business names: one call that proves the key and the shard work.

        sections/businesses.md: most accounts have one business, a clinic.
        """
        params = [("per_page", str(PER_PAGE))]
        data = await self.get(f"{self.base}/businesses", params, "businesses")
        rows = data.get("businesses")
        if not isinstance(rows, list):
            raise ClinikoError("Cliniko's businesses: no businesses list in the answer")
        return [str(row.get("business_name") or row.get("display_name") or "?") for row in rows]

    async def listing(self, path: str, filters: list[str] = ()) -> AsyncIterator[Page]:
        """Every page of a listing, in order, until a page has no ``links.next``.

        Pages are asked for by number (``page=N``, as the readme documents),
        ``AHEAD`` at a time, so Cliniko prepares the next pages while this
        one is read; the next link still decides where the listing ends.
        """
        params = [("per_page", str(PER_PAGE)), *(("q[]", text) for text in filters)]
        first = await self.get(f"{self.base}/{path}", params, path, 1)
        page = _page_of(first, path, 1)
        yield page
        link = self._next(first, path, 1, page.rows)
        if link is None:
            return
        last = -(-page.total // PER_PAGE)  # known now; more pages if rows are added meanwhile
        ahead: deque[asyncio.Task] = deque()
        number = 2
        try:
            while link is not None:
                if number > 2 * last + 10:  # rows are added meanwhile, but not that many
                    raise ClinikoError(
                        f"Cliniko's {path}: page {number} offers yet another page, "
                        f"though the first page announced {page.total} rows"
                    )
                while len(ahead) < AHEAD and (number + len(ahead) <= last or not ahead):
                    wanted = number + len(ahead)
                    url = str(httpx.URL(link).copy_set_param("page", str(wanted)))
                    ahead.append(asyncio.create_task(self.get(url, None, path, wanted)))
                data = await ahead.popleft()
                page = _page_of(data, path, number)
                yield page
                link = self._next(data, path, number, page.rows)
                number += 1
        finally:
            for task in ahead:
                task.cancel()
            await asyncio.gather(*ahead, return_exceptions=True)

    def _next(self, data: dict, path: str, number: int, rows: list) -> str | None:
        """The next page: only on the same API (the key goes with it), and never an empty loop."""
        links = data.get("links")
        link = links.get("next") if isinstance(links, dict) else None
        if not link:
            return None
        if not isinstance(link, str) or not link.startswith(self.base + "/"):
            raise ClinikoError(f"Cliniko's {path}, page {number}: a next link outside {self.base}")
        if not rows:
            raise ClinikoError(f"Cliniko's {path}, page {number}: empty, yet a next page follows")
        return link

    async def get(self, url: str, params=None, path: str = "", number: int = 1) -> dict:
        """One page as JSON: paced, retried after a network error, a 5xx or a broken page."""
        where = f"Cliniko's {path or url}" + (f", page {number}" if path else "")
        failures = slowdowns = 0
        while True:
            await self.window.wait()
            self.requests += 1
            try:
                async with asyncio.timeout(DEADLINE):  # httpx's timeout restarts at each byte
                    response = await self.client.get(url, params=params)
                if response.status_code != 429:
                    return _page(response, where)
            except httpx.HTTPError as error:
                what = f"{type(error).__name__} from {self.base}"
                problem = f"{where}: {what}: {error or 'no answer'}"
            except TimeoutError:
                problem = f"{where}: no whole answer from {self.base} within {DEADLINE:.0f} s"
            except _Retry as error:
                problem = str(error)
            else:
                slowdowns += 1
                if slowdowns > MOST_429:
                    raise ClinikoError(f"{where}: told to slow down {MOST_429} times in a row")
                await asyncio.sleep(_wait_for(response))
                continue
            if failures >= len(self.retry_delays):
                raise ClinikoError(problem)
            await asyncio.sleep(self.retry_delays[failures])
            failures += 1


class _Retry(Exception):
    """An answer worth asking again for: a 5xx, a page cut short or not JSON."""


def _page_of(data: dict, path: str, number: int) -> Page:
    rows = data.get(path.split("/")[0])
    if not isinstance(rows, list):
        raise ClinikoError(f"Cliniko's {path}, page {number}: no {path} list in the answer")
    total = data.get("total_entries")
    return Page(rows, number, total if isinstance(total, int) else len(rows))


def _page(response: httpx.Response, where: str) -> dict:
    """The answer's JSON object; a refusal raises ClinikoRefused, anything else _Retry."""
    status = response.status_code
    if status in (401, 403):
        what = "rejected the API key" if status == 401 else "refused the key's user access"
        raise ClinikoRefused(
            f"{where}: Cliniko {what} (HTTP {status}): check {API_KEY_VARIABLE} and that the "
            "key's Cliniko user may see patients, appointments and settings"
        )
    if status != 200:
        problem = f"{where}: HTTP {status} {response.reason_phrase}: {response.text[:200]!r}"
        # a 4xx would get the same answer again; a 5xx may not
        raise ClinikoError(problem) if 400 <= status < 500 else _Retry(problem)
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise _Retry(f"{where}: the answer is not JSON: {response.text[:80]!r}") from None
    if not isinstance(data, dict):
        raise _Retry(f"{where}: the answer is not a JSON object")
    return data


def _wait_for(response: httpx.Response, now: Callable[[], float] = time.time) -> float:
    """Seconds until Cliniko takes requests again: Retry-After, else X-RateLimit-Reset, else 60."""
    retry_after = response.headers.get("Retry-After", "")
    if retry_after.strip().isdigit():
        seconds = float(retry_after)
    elif retry_after:
        try:
            seconds = parsedate_to_datetime(retry_after).timestamp() - now()
        except (TypeError, ValueError):
            seconds = 60.0
    elif response.headers.get("X-RateLimit-Reset", "").strip().isdigit():
        seconds = float(response.headers["X-RateLimit-Reset"]) - now()
    else:
        seconds = 60.0
    return min(max(seconds, 0.0), LONGEST_WAIT)
