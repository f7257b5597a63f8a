"""The service's pickup of the practice software's exports: ``[sync]`` files, every ``every``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from jobs.logs import LOGGER, event

log = logging.getLogger(LOGGER)


async def keep_in_sync(engine, settings: Callable, clock: Callable[[], datetime],
                       stop: asyncio.Event, wake: asyncio.Event) -> None:  # fmt: skip
    """Import changed ``[sync]`` files every ``[sync] every``, in a thread: imports are long.

    ``settings()`` gives the config in force (SIGHUP may change it); ``wake``
    is set when new data arrived, so the service looks at its queue again.
    """
    from campaigns.clients.sync import sync_files

    while not stop.is_set() and settings().sync is not None:
        try:
            results = await asyncio.to_thread(sync_files, engine, settings(), clock())
        except Exception:
            log.exception("sync failed")
            results = []
        for result in results:
            _log_sync(result)
        if any(result.outcome == "imported" for result in results):
            wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings().sync.every.total_seconds())


def _log_sync(result) -> None:
    if result.outcome == "imported":
        report = result.report
        event(log, "sync imported", file=str(result.path), kind=result.kind,
              inserted=report.inserted, updated=report.updated, unchanged=report.unchanged,
              rejected=report.rejected_count)  # fmt: skip
    elif result.outcome == "rejected":
        event(log, "sync rejected: the data stay as they were", level=logging.ERROR,
              file=str(result.path), reason=result.detail)  # fmt: skip
    elif result.outcome == "missing":
        event(log, "sync file missing", level=logging.WARNING, reason=result.detail)
