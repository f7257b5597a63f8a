"""The service's pickup of the practice software's data: ``[sync]`` files and Cliniko's API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from campaigns.errors import RebookError
from jobs.logs import LOGGER, event
from jobs.loops import RetryLater, Round, in_daemon_thread

log = logging.getLogger(LOGGER)


class ImportRefused(RebookError):
    """The database refused an import of ``[sync]`` files (a full or read-only disk)."""


def files_round(engine, settings: Callable, clock: Callable[[], datetime],
                wake: asyncio.Event) -> Round:  # fmt: skip
    """One pickup of changed ``[sync]`` files, in a thread: imports are long.

    ``settings()`` gives the config in force (SIGHUP may change it); ``wake``
    is set when new data arrived, so the service looks at its queue again.
    A round that raises (the database unreachable) is retried by the loop;
    a bad file is not an error of the loop: it is logged once, and left
    alone until it changes.
    """
    from campaigns.clients.sync import sync_files

    async def one_round() -> float | None:
        sync = settings().sync
        if sync is None or (sync.clients is None and sync.visits is None):
            return None
        results = await in_daemon_thread(sync_files, engine, settings(), clock())
        said = {result.outcome for result in results}
        for result in results:
            if result.outcome == "waiting" and "still incomplete" in said:
                continue  # said when the clients file was first found cut short
            if result.outcome != "failed":
                _log_sync(result)
        if "imported" in said:
            wake.set()
        for result in results:
            if result.outcome == "failed":  # the loop says it once, and tries again sooner
                raise ImportRefused(result.detail)
        return sync.every.total_seconds()

    return one_round


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
    elif result.outcome == "waiting":
        event(log, "sync waits for the clients file", file=str(result.path))
    elif result.outcome == "missing":
        event(log, "sync file missing", level=logging.WARNING, reason=result.detail)


def cliniko_round(engine, settings: Callable, clock: Callable[[], datetime],
                  wake: asyncio.Event) -> Round:  # fmt: skip
    """One look at Cliniko: a pull when ``[sync.cliniko] every`` has passed since the last.

    Counted from the last sync of any worker: several workers share one
    database, and whoever finds the last sync older than ``every`` pulls;
    the others see its mark and wait, so Cliniko is not asked twice as
    often per worker. Cliniko refusing or failing is tried again ``every``
    later (its requests already backed off); the database unreachable,
    sooner. Either way the data stay as they were.
    """
    from campaigns.cliniko.api import ClinikoError, ClinikoRefused
    from campaigns.cliniko.pull import last_sync, sync_cliniko

    async def one_round() -> float | None:
        cliniko = _cliniko(settings())
        if cliniko is None:
            return None
        mark = await asyncio.to_thread(last_sync, engine)
        if mark is not None and (due := (mark + cliniko.every - clock()).total_seconds()) > 0:
            return max(due, 1.0)
        try:
            report = await sync_cliniko(engine, settings(), clock())
        except (ClinikoError, ClinikoRefused) as error:  # a key revoked since: tried again
            raise RetryLater(error, cliniko.every.total_seconds()) from error
        _log_cliniko(report)
        changed = report.clients.inserted + report.clients.updated
        if changed + report.visits.inserted + report.visits.updated:
            wake.set()
        return cliniko.every.total_seconds()

    return one_round


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
