"""``rebook bounces``: read what came back (bounces, complaints, mailed unsubscribes) and act."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from jobs import console
from jobs.app import EXIT_OK, EXIT_USAGE, App, pass_app

EX_TEMPFAIL = 75  # sysexits.h: the mail server keeps the message and tries again later
MOST = 25 * 1024 * 1024  # bytes read of one message: a 20 MB bounce and its headers


@click.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Read and say what would be done; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message read.")
@pass_app
def bounces(app: App, files: tuple[Path, ...], dry_run: bool, as_json: bool) -> int:
    """Read the bounce mailbox ([bounces]) once and act on what is rebook's.

    Hard bounces suppress the address; soft ones are counted; a spam
    complaint suppresses the client and the address; a mailed unsubscribe
    works as the link does; auto-replies and anything not rebook's are left
    alone. With FILE…, read those message files instead; with -, one message
    on standard input, for a mail server's pipe: exit 0 when it was handled
    or is not rebook's, 75 when it cannot be handled now (the mail server
    keeps it and tries again).

    \b
    Examples:
      rebook bounces --dry-run
      rebook bounces saved/*.eml --json
      rebook --config /var/lib/rebook/config.toml bounces -
    """
    if files == (Path("-"),):
        return _from_pipe(app, dry_run, as_json)
    if Path("-") in files:
        console.error("- reads one message from standard input, alone: give it no other file")
        return EXIT_USAGE
    from campaigns.bounces.handling import ReturnHandler

    if files:
        handler = ReturnHandler(app.engine, app.settings, app.now(), dry_run=dry_run)
        results = [handler(_read(path), str(path)) for path in files]
    else:
        from campaigns.bounces.reading import mailbox_of, read_mailbox

        with mailbox_of(app.settings) as mailbox:
            results = read_mailbox(app.engine, app.settings, mailbox, app.now(), dry_run=dry_run)
    _show(results, as_json, dry_run)
    return EXIT_OK


def _read(path: Path) -> bytes:
    from campaigns.errors import UserError

    try:
        with path.open("rb") as file:
            return file.read(MOST)
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror or error}") from None


def _from_pipe(app: App, dry_run: bool, as_json: bool) -> int:
    """One message from the mail server: any trouble is "try again later", never a bounce."""
    raw = sys.stdin.buffer.read(MOST)
    try:
        from campaigns.bounces.handling import ReturnHandler

        handler = ReturnHandler(app.engine, app.settings, app.now(), source="pipe",
                                dry_run=dry_run)  # fmt: skip
        result = handler(raw, "-")
    except Exception as error:  # the database away, a full disk, a config mistake: keep it
        console.error(f"{error}; the mail server keeps the message and tries again")
        return EX_TEMPFAIL
    _show([result], as_json, dry_run)
    return EXIT_OK


def _show(results, as_json: bool, dry_run: bool) -> None:
    if as_json:
        for result in results:
            sys.stdout.write(json.dumps(result.as_json(), ensure_ascii=False) + "\n")
        return
    rows = [(result.key or result.source, result.kind,
             ", ".join(r["address"] for r in result.recipients) or "-",
             result.matched or "not rebook's", "; ".join(result.actions) or "nothing")
            for result in results]  # fmt: skip
    verb = "would do" if dry_run else "done"
    console.print_table(None, ["message", "kind", "about", "matched by", verb], rows)
    acted = sum(1 for result in results if result.ours)
    click.echo(
        f"{len(results)} message(s) read, {acted} acted on" + (" (dry run)" if dry_run else "")
    )
