"""``rebook run``: start the service in the foreground (systemd runs it the same way)."""

from __future__ import annotations

import click

from campaigns.errors import UserError
from jobs import console
from jobs.app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, App, pass_app


@click.command()
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="One line per event; json for journald or Loki.",
)  # fmt: skip
@pass_app
def run(app: App, log_format: str) -> int:
    """Run every campaign on its schedule until stopped (SIGTERM or Ctrl-C).

    Runs missed while rebook was stopped are caught up once (within [service]
    catch_up); deferred messages are retried when due; SIGHUP re-reads the
    config. Serves the unsubscribe links on [web] listen, and exits 2 when it
    cannot (unless [web] serve = false). Exit 0 after a clean stop.

    \b
    Example:
      rebook run
      rebook run --log-format json
    """
    import asyncio

    from jobs.logs import setup_logging
    from jobs.service import Service

    log = setup_logging(log_format)

    async def serve() -> int:
        service = Service(app.config_path)  # a bad config: exit 2, before anything starts
        return await service.serve()

    try:
        return asyncio.run(serve())
    except UserError as problem:  # said in the log's own form: with json, still one object a line
        log.error(str(problem))
        return EXIT_USAGE
    except Exception:
        log.exception("the service stopped on an error")
        return EXIT_FAILED


@click.command()
@click.option("--full", is_flag=True, help="Import every file; pull all of Cliniko, not changes.")
@pass_app
def sync(app: App, full: bool) -> int:
    """Import the [sync] export files that changed, and pull what changed in Cliniko.

    The service does this every [sync] every (files) and [sync.cliniko]
    every (Cliniko). Exit 2 when a file is missing or has a bad row, or
    Cliniko refuses the key (nothing of that source is written); exit 1 when
    Cliniko could not be read to the end (nothing written; run it again).

    \b
    Example:
      rebook sync
      rebook sync --full
    """
    from campaigns.clients.sync import sync_files

    if app.settings.sync is None:
        raise UserError(f"{app.config_path}: there is no [sync] section to import from")
    results = sync_files(app.engine, app.settings, app.now(), full=full)
    for result in results:
        if result.outcome == "unchanged":
            click.echo(f"{result.path}: unchanged since the last import")
        elif result.outcome == "imported":
            click.echo(result.detail)
        else:
            console.error(result.detail)
    outcomes = {result.outcome for result in results} - {"unchanged", "imported"}
    code = EXIT_FAILED if "failed" in outcomes else EXIT_USAGE if outcomes else EXIT_OK
    if app.settings.sync.cliniko is not None:
        code = max(code, _sync_cliniko(app, full))
    return code


def _sync_cliniko(app: App, full: bool) -> int:
    import asyncio

    from campaigns.cliniko.api import ClinikoError
    from campaigns.cliniko.pull import sync_cliniko

    try:
        with console.progress_steps() as progress:
            report = asyncio.run(
                sync_cliniko(app.engine, app.settings, app.now(), full=full, progress=progress)
            )
    except ClinikoError as error:
        console.error(f"{error}\nnothing from Cliniko was written; the next sync tries again")
        return EXIT_FAILED
    for name, part in (("patient", report.clients), ("appointment", report.visits)):
        for problem in part.rejected:
            console.warn(f"Cliniko: skipped {problem}")
        more = part.rejected_count - len(part.rejected)
        if more:
            console.warn(f"Cliniko: skipped {more} more {name}(s)")
    for line in report.lines():
        click.echo(line)
    return EXIT_OK
