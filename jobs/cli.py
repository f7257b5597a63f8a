"""The ``rebook`` command line: parse, call one function of ``campaigns``, show the result.

Exit codes: 0 done, 1 failed while running, 2 bad usage or bad configuration.
A ``UserError`` from anywhere is printed as one message, never a traceback.
"""

from __future__ import annotations

import errno
import sys
from datetime import date
from pathlib import Path

import click

from campaigns.errors import DatabaseUnavailable, StorageError, UserError
from jobs import bouncing, checking, console, forgetting, operating, reporting, sending, serving
from jobs.app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, App, RebookGroup, local_time, pass_app

MOST_SHOWN = 1_000_000_000  # --limit: beyond any clinic, within every database's integers


@click.group(
    cls=RebookGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="config.toml",
    envvar="REBOOK_CONFIG",
    show_default=True,
    help="The configuration file (also REBOOK_CONFIG).",
)
@click.pass_context
def cli(context: click.Context, config_path: Path) -> None:
    """rebook: bring a clinic's clients back with timely, friendly email.

    \b
    Start here:
      rebook init my-clinic --sample-data
      cd my-clinic
      rebook import clients exports/clients.csv
      rebook import visits exports/visits.csv
      rebook segment lapsed-back-pain
    """
    context.obj = App(config_path)


def _folder(context, parameter, value: str) -> Path:
    if not value.strip():
        raise click.BadParameter("is empty: name the folder to write, e.g. my-clinic")
    return Path(value)


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False), callback=_folder)
@click.option(
    "--sample-data", is_flag=True, help="Also write a sample clinic's exports to try every command."
)
@click.option(
    "--templates", "copy_templates", is_flag=True, help="Copy the default templates in, to edit."
)
def init(folder: Path, sample_data: bool, copy_templates: bool) -> int:
    """Write a starter config.toml into FOLDER (never overwrites).

    \b
    Example:
      rebook init my-clinic --sample-data
    """
    from campaigns.starter import write_starter

    written = write_starter(
        folder, today=date.today(), sample_data=sample_data, templates=copy_templates
    )
    click.echo(f"wrote {len(written)} file(s) into {folder}:")
    for path in written[:10]:
        click.echo(f"  {path}")
    if len(written) > 10:
        click.echo(f"  … and {len(written) - 10} more")
    click.echo(f"next: cd {folder} && rebook check")
    return EXIT_OK


@cli.group("import")
def import_group() -> None:
    """Import the CSV exports of the practice software (clients first, then visits)."""


def _import(app: App, kind: str, path: Path, dry_run: bool, skip_invalid: bool) -> int:
    from campaigns.clients.importer import import_file
    from campaigns.config.files import check_regular

    try:
        check_regular(path, "an export file")  # a FIFO would wait forever, /dev/zero never end
    except ValueError as error:
        raise UserError(str(error)) from None

    zone = app.settings.clinic.timezone
    with console.progress_bar(f"importing {path.name}", "bytes") as progress:
        report = import_file(
            app.engine, kind, path, clinic_zone=zone, skip_invalid=skip_invalid,
            dry_run=dry_run, now=app.now(), progress=progress,
        )  # fmt: skip
    for problem in report.rejected:
        console.warn(f"{path}: skipped {problem}")
    if report.rejected_count > len(report.rejected):
        console.warn(
            f"{path}: skipped {report.rejected_count - len(report.rejected)} more bad row(s)"
        )
    if report.hint():
        console.warn(report.hint())
    click.echo(report.summary())
    return EXIT_OK


_import_options = [
    click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--dry-run", is_flag=True, help="Validate and count, write nothing."),
    click.option(
        "--skip-invalid", is_flag=True, help="Import the good rows and list the bad ones."
    ),
]


def _with_import_options(command):
    for option in reversed(_import_options):
        command = option(command)
    return command


@import_group.command("clients")
@_with_import_options
@pass_app
def import_clients(app: App, path: Path, dry_run: bool, skip_invalid: bool) -> int:
    """Import clients.csv: id, email, first_name, last_name, marketing_consent, tags, timezone.

    \b
    Example:
      rebook import clients exports/clients.csv --dry-run
    """
    return _import(app, "clients", path, dry_run, skip_invalid)


@import_group.command("visits")
@_with_import_options
@pass_app
def import_visits(app: App, path: Path, dry_run: bool, skip_invalid: bool) -> int:
    """Import visits.csv: id, client_id, starts_at, service, status, therapist.

    \b
    Example:
      rebook import visits exports/visits.csv
    """
    return _import(app, "visits", path, dry_run, skip_invalid)


@cli.command()
@click.argument("name")
@click.option(
    "--limit", type=click.IntRange(0, MOST_SHOWN),
    help="Show at most N clients [table: 20, --json: all].",
)  # fmt: skip
@click.option("--count", "count_only", is_flag=True, help="Print the number of members alone.")
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON.")
@pass_app
def segment(app: App, name: str, limit: int | None, count_only: bool, as_json: bool) -> int:
    """The clients who match segment NAME now (before consent and suppression).

    \b
    Examples:
      rebook segment lapsed-back-pain
      rebook segment lapsed-back-pain --count
      rebook segment lapsed-back-pain --json --limit 100
    """
    from campaigns.clients.segments import count_members, list_members

    rules, now = app.segment(name), app.now()
    with app.engine.connect() as connection:
        total = count_members(connection, rules, now)
        if count_only:
            click.echo(total)
            return EXIT_OK
        shown = limit if limit is not None or as_json else 20
        members = list_members(connection, rules, now, shown)
    if as_json:
        console.print_json(
            {
                "segment": name,
                "now": now.isoformat(),
                "count": total,
                "members": [m.as_json() for m in members],
            }
        )
        return EXIT_OK
    zone = app.settings.clinic.timezone
    console.print_table(
        f"{name}: {total} client(s)" + (f", first {len(members)}" if len(members) < total else ""),
        ["id", "name", "email", "consent", "tags", "last visit", "next booking"],
        [
            (
                m.id, f"{m.first_name} {m.last_name}".strip(), m.email,
                "yes" if m.marketing_consent else "no", ", ".join(m.tags),
                local_time(m.last_visit, zone), local_time(m.next_visit, zone),
            )
            for m in members
        ],
    )  # fmt: skip
    return EXIT_OK


@cli.command()
@click.argument("campaign")
@click.option(
    "--client",
    "email",
    metavar="EMAIL",
    help="Whom to preview for [the first client the campaign would send to].",
)
@click.option(
    "--format",
    "shape",
    type=click.Choice(["text", "html", "eml"]),
    default="text",
    show_default=True,
    help="The text part, the HTML part, or the whole message as sent.",
)
@pass_app
def preview(app: App, campaign: str, email: str | None, shape: str) -> int:
    """Print what CAMPAIGN would send one client, without sending.

    Without --client, the first client the campaign would send to now
    (consent, suppression, the marketing cap and what they already had
    applied); stderr says whom, or why nobody would get it.

    \b
    Examples:
      rebook preview book-next-massage
      rebook preview book-next-massage --client jo@example.com --format html > jo.html
      rebook preview appointment-reminder --format eml > reminder.eml
    """
    from campaigns.preview import preview_campaign

    app.campaign(campaign)
    shown = preview_campaign(app.engine, app.settings, campaign, app.now(), email)
    if shown.chosen:
        click.echo(shown.chosen, err=True)
    if shown.note:
        console.warn(shown.note)
    if shape == "eml":
        sys.stdout.buffer.write(shown.message)
    else:
        click.echo(shown.rendered.text if shape == "text" else shown.rendered.html, nl=False)
    return EXIT_OK


for command in (
    checking.check,
    bouncing.bounces,
    sending.send,
    sending.history,
    sending.unsubscribe,
    forgetting.forget,
    serving.run,
    serving.sync,
    operating.status,
    operating.plan,
    reporting.report,
):
    cli.add_command(command)


def main() -> None:
    """The console script: run the command, turn user mistakes into exit code 2."""
    try:
        code = cli.main(prog_name="rebook", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        code = exit_.exit_code
    except click.ClickException as problem:
        problem.show()
        code = problem.exit_code
    except (click.Abort, KeyboardInterrupt):
        console.error(
            "interrupted: what was sent is recorded, and an import or sync writes all or "
            "nothing; run the command again to go on"
        )
        code = EXIT_FAILED
    except UserError as problem:
        console.error(str(problem))
        code = EXIT_USAGE
    except (StorageError, DatabaseUnavailable) as problem:  # the machine's trouble: exit 1
        console.error(str(problem))
        code = EXIT_FAILED
    except BrokenPipeError:  # rebook status | head: the reader had enough
        _quiet_stdout()
        code = EXIT_OK
    except OSError as error:
        if error.filename is not None or error.errno not in _OUTPUT_FULL:
            raise
        _quiet_stdout()  # rebook report > /dev/full: say it on stderr, once
        console.error(f"cannot write the output: {error.strerror or error}")
        code = EXIT_FAILED
    sys.exit(code if isinstance(code, int) else EXIT_OK)


# Errors of a write with no file name: standard output (a file's own names it), full or failing.
_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _quiet_stdout() -> None:
    """Stop Python from flushing a broken standard output again at exit (and complaining)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
