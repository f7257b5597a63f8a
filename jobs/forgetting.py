"""``rebook forget EMAIL``: erase a client on request, after saying what goes."""

from __future__ import annotations

import sys

import click
from sqlalchemy.exc import SQLAlchemyError

from jobs import console
from jobs.app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, App, local_time, pass_app


@click.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask first (for scripts).")
@pass_app
def forget(app: App, email: str, yes: bool) -> int:
    """Erase a client's personal data on request; never mail EMAIL again.

    Erases every client who has or had EMAIL: their details, visits and
    opt-outs, the ledger's record of what they were sent (counts stay, with
    nothing pointing at them), and every address they had, which is kept
    only as a keyed hash so a later import leaves it out and nothing is sent
    to it. Asks first on a terminal; --yes for scripts.

    \b
    Examples:
      rebook forget jo@example.com
      rebook forget jo@example.com --yes
    """
    from campaigns.delivery.forget import forget as erase
    from campaigns.delivery.forget import survey

    with app.engine.connect() as connection:
        planned = survey(connection, email)  # a mistyped address is exit 2 before anything else
    if not yes:
        if not sys.stdin.isatty():
            console.error("forget erases for good: pass --yes to confirm when not on a terminal")
            return EXIT_USAGE
        click.echo(f"forget {planned.address}: erases {planned.summary()}")
        if not click.confirm("Erase for good?", default=False):
            click.echo("nothing erased")
            return EXIT_FAILED
    writing = app.engine.connect().execution_options(sqlite_immediate=True)
    try:
        with writing as connection, connection.begin():
            erased = erase(connection, email, app.now())
    except SQLAlchemyError as error:
        console.error(f"nothing erased: the database refused: {getattr(error, 'orig', error)}")
        return EXIT_FAILED
    if erased.already and not erased.clients:
        since = local_time(erased.already, app.settings.clinic.timezone)
        click.echo(f"{erased.address} was already forgotten on {since}")
    elif not erased.clients:
        click.echo(
            f"{erased.address}: no client has or had it; it is now forgotten, so no import "
            "will bring it back and nothing will be sent to it"
        )
    else:
        click.echo(f"forgot {erased.address}: erased {erased.counts()}")
        click.echo("only a keyed hash of each address is kept, so none of them is mailed again")
    return EXIT_OK
