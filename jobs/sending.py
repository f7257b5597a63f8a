"""The commands that send: ``send``, ``history`` and ``unsubscribe``."""

from __future__ import annotations

import click

from jobs import console
from jobs.app import EXIT_FAILED, EXIT_OK, App, local_time, pass_app


@click.command()
@click.argument("campaign")
@click.option(
    "--dry-run", is_flag=True, help="Record nothing, send nothing: show who would get what."
)
@click.option(
    "--ignore-quiet-hours", is_flag=True, help="Send marketing now even inside quiet hours."
)
@pass_app
def send(app: App, campaign: str, dry_run: bool, ignore_quiet_hours: bool) -> int:
    """Run CAMPAIGN once, now: send to its audience and retry its due deferred messages.

    Marketing inside [policy] quiet_hours is queued until they end (rebook
    run sends it then). Exit 0 when every message was sent, held or deferred
    for a retry, 1 when the SMTP server could not be reached at all.

    \b
    Examples:
      rebook send book-next-massage --dry-run
      rebook send book-next-massage
    """
    import asyncio

    from campaigns.delivery.run import run_campaign

    app.campaign(campaign)
    with console.progress_bar(f"sending {campaign}") as progress:
        report = asyncio.run(
            run_campaign(app.engine, app.settings, campaign, dry_run=dry_run, progress=progress,
                         ignore_quiet_hours=ignore_quiet_hours)
        )  # fmt: skip
    if dry_run and report.would_send:
        console.print_table(None, ["would send to", "key"], report.would_send)
    held_until = local_time(report.held_until, app.settings.clinic.timezone)
    for line in console.send_summary(report, held_until, ignore_quiet_hours):
        click.echo(line)
    if report.unreachable:
        console.error(report.unreachable)
        return EXIT_FAILED
    return EXIT_OK


@click.command()
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
@pass_app
def history(app: App, email: str, as_json: bool) -> int:
    """What one client was sent, when, what the server said, and unsubscribes or bounces.

    \b
    Example:
      rebook history jo@example.com
    """
    from campaigns.delivery.history import client_history, forgotten_since

    zone = app.settings.clinic.timezone
    with app.engine.connect() as connection:
        since = forgotten_since(connection, email)
        entries, suppression = client_history(connection, email)
    if since is not None:  # whatever a row still says, the owner asked to forget it
        if as_json:
            at = since.isoformat()
            console.print_json({"email": email, "forgotten": True, "forgotten_at": at})
        else:
            click.echo(f"{email} was forgotten on {local_time(since, zone)}: nothing else is kept")
        return EXIT_OK
    if as_json:
        console.print_json(
            {"email": email, "sends": [e.as_json() for e in entries],
             "suppression": suppression.as_json() if suppression else None}
        )  # fmt: skip
        return EXIT_OK
    console.print_table(
        f"{email}: {len(entries)} message(s)",
        ["when", "campaign", "key", "status", "tries", "reply", "came back later", "message id"],
        [
            (
                local_time(e.at, zone),
                e.campaign,
                e.key,
                e.status,
                e.attempts,
                e.reply,
                e.came_back_text,
                e.message_id,
            )
            for e in entries
        ],
    )
    if suppression:
        click.echo(
            f"suppressed since {local_time(suppression.since, zone)}: {suppression.reason}"
            + (f" ({suppression.detail})" if suppression.detail else "")
        )
    return EXIT_OK


@click.command()
@click.argument("email")
@pass_app
def unsubscribe(app: App, email: str) -> int:
    """Suppress EMAIL by hand: no marketing email will go to it again.

    \b
    Example:
      rebook unsubscribe jo@example.com
    """
    from campaigns.delivery.history import unsubscribe_by_hand

    writing = app.engine.connect().execution_options(sqlite_immediate=True)
    with writing as connection, connection.begin():
        existing = unsubscribe_by_hand(connection, email, app.now())
    if existing and existing.reason == "forgotten":
        since = local_time(existing.since, app.settings.clinic.timezone)
        click.echo(f"{existing.address} was already forgotten on {since}: nothing will go to it")
    elif existing and existing.reason == "unsubscribed":
        since = local_time(existing.since, app.settings.clinic.timezone)
        click.echo(f"{existing.address} had unsubscribed on {since}; now you keep them off too: "
                   "their own link cannot undo it")  # fmt: skip
    elif existing:
        since = local_time(existing.since, app.settings.clinic.timezone)
        click.echo(f"{existing.address} was already suppressed ({existing.reason}, {since})")
    else:
        click.echo(f"{email.strip().lower()} is unsubscribed: no marketing email will go to it")
    return EXIT_OK
