"""The service's pickup of the practice software's data: ``[sync]`` files and Cliniko's API."""

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
    elif result.outcome == "incomplete":
        event(log, "sync file still being written: imported once whole", level=logging.WARNING,
              file=str(result.path), reason=result.detail)  # fmt: skip
    elif result.outcome == "failed":  # the database refused the write: disk full, read-only
        event(log, "sync failed: the data stay as they were", level=logging.ERROR,
              file=str(result.path), reason=result.detail)  # fmt: skip
    elif result.outcome == "waiting":
        event(log, "sync waits for the clients file", file=str(result.path))
    elif result.outcome == "missing":
        event(log, "sync file missing", level=logging.WARNING, reason=result.detail)


async def keep_cliniko_in_sync(engine, settings: Callable, clock: Callable[[], datetime],
                               stop: asyncio.Event, wake: asyncio.Event) -> None:  # fmt: skip
    """Pull from Cliniko every ``[sync.cliniko] every``, counted from the last sync of any worker.

    Several workers share one database: whoever finds the last sync older
    than ``every`` pulls, the others see its mark and wait, so Cliniko is
    not asked twice as often per worker. A failed sync is retried ``every``
    later (its requests already backed off); the data stay as they were.
    """
    from campaigns.cliniko.api import ClinikoError, ClinikoRefused
    from campaigns.cliniko.pull import last_sync, sync_cliniko

    while not stop.is_set() and (cliniko := _cliniko(settings())) is not None:
        mark = await asyncio.to_thread(last_sync, engine)
        due = 0.0 if mark is None else (mark + cliniko.every - clock()).total_seconds()
        if due <= 0:
            due = cliniko.every.total_seconds()
            try:
                report = await sync_cliniko(engine, settings(), clock())
            except (ClinikoError, ClinikoRefused) as error:  # a key revoked since: tried again
                event(log, "cliniko sync failed: the data stay as they were", level=logging.ERROR,
                      reason=str(error), retry_in=str(cliniko.every))  # fmt: skip
            except Exception:
                log.exception("cliniko sync failed")
            else:
                _log_cliniko(report)
                if report.clients.inserted + report.clients.updated + report.visits.inserted \
                        + report.visits.updated:  # fmt: skip
                    wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(due, 1.0))


def _cliniko(settings):
    return settings.sync.cliniko if settings.sync is not None else None


def _log_cliniko(report) -> None:
    for kind, part in (("clients", report.clients), ("visits", report.visits)):
        counts = {"inserted": part.inserted, "updated": part.updated,
                  "unchanged": part.unchanged, "rejected": part.rejected_count}  # fmt: skip
        event(log, "cliniko synced", kind=kind, full=report.full, **counts)
        for problem in part.rejected:
            event(log, "cliniko row rejected", level=logging.WARNING, kind=kind, row=str(problem))
    if report.no_email or report.left_out or report.withdrawn:
        event(log, "cliniko left out", patients_without_email=report.no_email,
              appointments_of_absent_patients=report.left_out,
              deleted_patients_withdrawn=report.withdrawn)  # fmt: skip


def require_cliniko_key(settings) -> None:
    """A service told to sync from Cliniko without a key would only fail every 15 minutes."""
    from campaigns.config import API_KEY_VARIABLE
    from campaigns.errors import UserError

    if settings.sync and settings.sync.cliniko and settings.sync.cliniko.api_key is None:
        raise UserError(
            f"[sync.cliniko] is set but {API_KEY_VARIABLE} is not: give rebook run the key "
            "(README: 'Or sync straight from Cliniko'), or remove [sync.cliniko]"
        )
