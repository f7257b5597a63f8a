"""``rebook check``: the config, every segment and template, and (asked) the relay and Cliniko."""

from __future__ import annotations

import click

from campaigns.errors import UserError
from jobs import console, operating
from jobs.app import EXIT_FAILED, EXIT_OK, App, pass_app


@click.command()
@click.option(
    "--smtp", "smtp_login", is_flag=True, help="Also connect and log in to the SMTP server."
)
@click.option("--sync", "reach_cliniko", is_flag=True, help="Also make one call to Cliniko's API.")
@click.option("--bounces", "reach_mailbox", is_flag=True, help="Also log in to the bounce mailbox.")
@pass_app
def check(app: App, smtp_login: bool, reach_cliniko: bool, reach_mailbox: bool) -> int:
    """Validate the config, every segment and every template; exit 0 when all is well, 2 when not.

    Each campaign is rendered for a made-up client, also without the last or
    next visit its segment does not guarantee, and without a first name, so a
    template that would fail for a real client fails here first; a subject or
    line that then reads badly (", how is your back?") is a warning. Each
    scheduled campaign's next three runs are shown. With [dkim], the key is
    loaded and the DNS TXT record to publish is printed.
    With --smtp, each step to the relay is taken in turn (connect, TLS,
    STARTTLS and AUTH offered, login) and the first that fails is named,
    exit 1. With --sync, one call to Cliniko's API names the account
    reached; a refused key exits 2. With --bounces, the bounce mailbox is
    opened (logged in to) and what waits in it counted; exit 1 when it cannot
    be. [web] listen is bound for a moment: an
    address this machine cannot listen on exits 2; one in use (by rebook run
    already?) is a warning.

    \b
    Example:
      rebook --config /etc/rebook/config.toml check --smtp
    """
    from campaigns.checks import (
        check_ledger_names,
        check_maildir,
        check_public_url,
        check_relay_security,
        check_segments,
        check_sync_sources,
    )
    from campaigns.preview import check_templates, first_name_warnings
    from jobs.webserver import check_listen

    settings = app.settings
    cannot_listen, listen_in_use = check_listen(settings, app.config_path)
    problems = [*check_templates(settings, app.now()), *check_maildir(settings, app.config_path),
                *cannot_listen]  # fmt: skip
    if problems:
        raise UserError("\n".join(str(problem) for problem in problems))
    with app.engine.connect() as connection:
        results = check_segments(connection, settings, app.now())
        renamed = check_ledger_names(connection, settings)
    for result in results:
        for warning in result.warnings:
            console.warn(f"{app.config_path}: segments.{result.name}: {warning}")
    warnings = [
        *check_public_url(settings), *check_relay_security(settings),
        *check_sync_sources(settings), *renamed,
    ]  # fmt: skip
    for warning in warnings:
        console.warn(f"{app.config_path}: {warning}")
    for warning in listen_in_use:  # names the file or the variable itself
        console.warn(warning)
    for warning in first_name_warnings(settings, app.now()):
        console.warn(f"{app.config_path}: {warning}")
    console.print_table(
        f"{app.config_path}: config OK",
        ["segment", "members now", "used by"],
        [(r.name, r.members, ", ".join(r.campaigns) or "-") for r in results],
    )
    operating.print_schedules(settings, app.now())
    _print_dkim(app)
    code = _check_smtp(settings) if smtp_login else EXIT_OK
    if reach_cliniko:
        code = max(code, _check_cliniko(app))
    if reach_mailbox:
        code = max(code, _check_mailbox(app))
    return code


def _check_cliniko(app: App) -> int:
    import asyncio

    from campaigns.cliniko.api import ClinikoApi, ClinikoError
    from campaigns.cliniko.pull import user_agent

    settings = app.settings
    if settings.sync is None or settings.sync.cliniko is None:
        raise UserError(f"{app.config_path}: --sync: there is no [sync.cliniko] table to check")

    async def reach() -> list[str]:
        async with ClinikoApi(settings.sync.cliniko, user_agent(settings)) as api:
            return await api.businesses()

    try:
        names = asyncio.run(reach())
    except ClinikoError as error:
        console.error(str(error))
        return EXIT_FAILED
    click.echo(
        f"cliniko: reached {settings.sync.cliniko.api_url} as {user_agent(settings)!r}: "
        f"{len(names)} business(es): {', '.join(names) or '-'}"
    )
    return EXIT_OK


def _print_dkim(app: App) -> None:
    from campaigns.checks import check_dkim

    dkim = check_dkim(app.settings)
    if dkim is None:
        return
    for warning in dkim.warnings:
        console.warn(f"{app.config_path}: {warning}")
    click.echo("dkim: messages are signed; publish this DNS TXT record (see the README):")
    click.echo(f"  name:  {dkim.name}")
    click.echo(f"  value: {dkim.value}")


def _check_smtp(settings) -> int:
    import asyncio

    from campaigns.delivery.relay_check import RelayProblem, reach_relay

    try:
        click.echo(asyncio.run(reach_relay(settings.smtp)))
    except RelayProblem as problem:
        console.error(str(problem))
        return EXIT_FAILED
    return EXIT_OK


def _check_mailbox(app: App) -> int:
    from campaigns.bounces.mailboxes import MailboxError
    from campaigns.bounces.reading import mailbox_of, waiting

    try:
        with mailbox_of(app.settings) as mailbox:
            new, total = waiting(app.engine, app.settings, mailbox)
    except MailboxError as error:
        console.error(str(error))
        return EXIT_FAILED
    where = app.settings.bounces.reads
    click.echo(f"bounces: the {where} mailbox holds {total} message(s), {new} not read yet")
    return EXIT_OK
