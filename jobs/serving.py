"""``rebook run``: start the service in the foreground (systemd runs it the same way)."""

from __future__ import annotations

import click

from jobs.app import App, pass_app


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
    config. Exit 0 after a clean stop.

    \b
    Example:
      rebook run
      rebook run --log-format json
    """
    import asyncio

    from jobs.logs import setup_logging
    from jobs.service import Service

    setup_logging(log_format)

    async def serve() -> int:
        service = Service(app.config_path)  # a bad config: exit 2, before anything starts
        return await service.serve()

    return asyncio.run(serve())
