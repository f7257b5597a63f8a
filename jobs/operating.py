"""The commands that look without touching: ``status`` and ``plan``."""

from __future__ import annotations

from datetime import datetime

import click

from jobs import console
from jobs.app import EXIT_OK, EXIT_USAGE, App, pass_app

TIME_FORM = "a local time like 2026-10-23T00:00 (or with an offset, 2026-10-23T00:00+01:00)"
FIRST_YEAR, LAST_YEAR = 1971, 2200  # cron times start at 1970 (APScheduler); the calendar ends


def _iso(moment: datetime | None, zone) -> str | None:
    """ISO 8601 with the clinic's offset: the clock the owner reads, and still one instant."""
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else None


def shown(moment: datetime | None, zone) -> str:
    """A time as the clinic reads it, with the weekday and the zone's name (BST or GMT)."""
    return moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z") if moment else ""


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_app
def status(app: App, as_json: bool) -> int:
    """Each campaign's next and last run, and its messages: sent, deferred, failed, held.

    \b
    Examples:
      rebook status
      rebook status --json
    """
    from campaigns.bounces.health import warnings
    from campaigns.planning import status as campaign_status
    from campaigns.store.presence import services

    zone = app.settings.clinic.timezone
    with app.engine.connect() as connection:
        report = campaign_status(connection, app.settings, app.now())
        seen = services(connection)
        sending = warnings(connection, report.now)
    for problem in [*(c.problem for c in report.campaigns if c.problem), *sending]:
        console.warn(problem)
    if as_json:
        console.print_json(
            _status_json(report, zone)
            | {"services": _services_json(seen, report.now, zone), "warnings": sending}
        )
    else:
        click.echo(_services_line(seen, report.now, zone))
        _print_status(report, zone)
    return EXIT_OK


def _services_line(seen, now: datetime, zone) -> str:
    """Whether ``rebook run`` is up: scheduled runs happen only if it is."""
    running = [presence for presence in seen if presence.running(now)]
    if running:
        where = ", ".join(
            f"pid {p.pid} on {p.host} since {shown(p.started_at, zone)}" for p in running
        )
        failing = [f"\n  FAILING in pid {p.pid}: {loop}: {reason} (it keeps trying)"
                   for p in running for loop, reason in p.troubles.items()]  # fmt: skip
        return f"rebook run: running ({where})" + "".join(failing)
    wait = "scheduled runs wait until it starts"
    silent = [p for p in seen if p.alive_here()]
    if silent:
        last = silent[0]
        return (
            f"rebook run: running (pid {last.pid} on {last.host}), but it has not been able to "
            f"record itself in the database since {shown(last.seen_at, zone)}: the database "
            "refuses its writes (a full disk?); its log says why"
        )
    if seen:
        last = seen[0]
        return (
            f"rebook run: NOT RUNNING: last seen {shown(last.seen_at, zone)}, pid {last.pid} on "
            f"{last.host}, which stopped without saying so; {wait}"
        )
    return f"rebook run: not running (stopped, or never started on this database); {wait}"


def _services_json(seen, now: datetime, zone) -> list[dict]:
    return [{"host": p.host, "pid": p.pid, "running": p.running(now) or p.alive_here(),
             "recording": p.running(now),
             "started_at": _iso(p.started_at, zone), "seen_at": _iso(p.seen_at, zone),
             "failing": p.troubles} for p in seen]  # fmt: skip


def _print_status(report, zone) -> None:
    click.echo(f"status at {shown(report.now, zone)} ({zone})")
    console.print_table(
        None,
        ["campaign", "schedule", "next run", "last run", "outcome", "sent", "deferred",
         "failed", "held", "queued", "errors", "held out"],
        [_status_row(campaign, zone) for campaign in report.campaigns],
    )  # fmt: skip
    reasons = ", ".join(f"{reason} {n}" for reason, n in report.suppressed.items())
    click.echo(
        f"suppressed: {sum(report.suppressed.values())} address(es)"
        + (f" ({reasons})" if reasons else "")
        + f", {report.suppressed_clients} client(s)"
    )


def _status_row(campaign, zone) -> tuple:
    last, counts = campaign.last_run, campaign.counts
    outcome = ""
    if last is not None:
        outcome = last.outcome + (f": {last.detail}" if last.detail else "")
    return (
        campaign.name, campaign.schedule or "", _when(campaign, campaign.next_run, zone),
        shown(last.scheduled_for, zone) if last else "", outcome,
        counts["sent"], counts["deferred"], counts["failed"], counts["held"],
        counts["queued"] + counts["sending"], counts["error"], counts["held_out"],
    )  # fmt: skip


def _when(campaign, moment: datetime | None, zone) -> str:
    """A time, or why there is none: the campaign runs by hand only, or not at all."""
    from campaigns.planning import SCHEDULED

    if campaign.problem:
        return "never (see below)"
    return shown(moment, zone) if campaign.state == SCHEDULED else campaign.state


SHOWN_RUNS = 3  # the next runs check and plan show: enough to see what a cron line means
BOTH_DAYS = (
    "runs only on days that match both its day of month and its weekday ('0 9 1-7 * mon' is "
    "the first Monday of the month), where crontab would run on either"
)


def print_schedules(settings, now: datetime) -> None:
    """Each scheduled campaign's next runs, so the owner sees what the line means (``check``)."""
    from campaigns.planning import scheduled_times

    zone, rows, notes = settings.clinic.timezone, [], []
    for name, campaign in settings.campaigns.items():
        if campaign.schedule is None or not campaign.enabled:
            continue
        times, problem = scheduled_times(name, campaign, zone, now, SHOWN_RUNS)
        rows.append((name, str(campaign.schedule),
                     "\n".join(shown(at, zone) for at in times) or problem))  # fmt: skip
        if campaign.schedule.day_and_weekday:
            notes.append(f"note: campaigns.{name}.schedule '{campaign.schedule}' {BOTH_DAYS}")
    if rows:
        console.print_table(f"next runs ({zone})", ["campaign", "schedule", "runs"], rows)
    for note in notes:
        click.echo(note)


def _local_start(context, parameter, value: str | None) -> datetime | None:
    """``--from``: parsed here, read in the clinic's zone later (naive) or as given (offset)."""
    if value is None:
        return None
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not {TIME_FORM}") from None
    if not FIRST_YEAR <= start.year <= LAST_YEAR:
        raise click.BadParameter(
            f"{value!r}: expected a time between the years {FIRST_YEAR} and {LAST_YEAR}"
        )
    return start


@click.command()
@click.option(
    "--from", "start", metavar="TIME", callback=_local_start,
    help="List run times from this local time on (the clinic's zone), e.g. 2026-10-23T00:00.",
)  # fmt: skip
@click.option(
    "--runs", type=click.IntRange(1, 1000), default=SHOWN_RUNS, show_default=True,
    help="How many run times to list for each campaign.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@pass_app
def plan(app: App, start: datetime | None, runs: int, as_json: bool) -> int:
    """When each campaign runs next and whom it would reach now, without sending.

    Consent, unsubscribes, caps, quiet hours and the ledger are applied as a
    real run applies them. With --from, only the run times are listed: check
    a schedule across a holiday or a clock change. Exit 2 when a campaign
    could not run as configured (a schedule that matches no date, a template
    or article problem).

    \b
    Examples:
      rebook plan
      rebook plan --runs 10 --json
      rebook plan --from 2026-10-23T00:00 --runs 4
    """
    from campaigns.planning import plan as campaign_plan
    from campaigns.timing import local_instant

    zone, now = app.settings.clinic.timezone, app.now()
    if start is not None and start.tzinfo is None:
        start = local_instant(start, zone)
    with app.engine.connect() as connection:
        plans = campaign_plan(connection, app.settings, now, start=start, runs=runs)
    if as_json:
        console.print_json(
            {"now": _iso(now, zone), "timezone": str(zone), "from": _iso(start, zone),
             "campaigns": [_plan_json(p, zone) for p in plans]}
        )  # fmt: skip
    elif start is not None:
        _print_times(plans, start, zone)
    else:
        _print_plan(plans, now, zone)
    if not as_json:
        _note_both_days(app.settings)
    for problem in (p.problem for p in plans if p.problem):
        console.error(problem)
    return EXIT_USAGE if any(p.problem for p in plans) else EXIT_OK


def _note_both_days(settings) -> None:
    for name, campaign in settings.campaigns.items():
        if campaign.schedule is not None and campaign.schedule.day_and_weekday:
            click.echo(f"note: campaigns.{name}.schedule '{campaign.schedule}' {BOTH_DAYS}")


def _runs_cell(campaign, zone) -> str:
    if campaign.problem and not campaign.runs:
        return "never (see below)" if campaign.schedule else "see below"
    if not campaign.runs:
        return campaign.state
    return "\n".join(
        shown(run.at, zone)
        + (f", held until {shown(run.held_until, zone)}" if run.held_until else "")
        for run in campaign.runs
    )


def _print_times(plans, start: datetime, zone) -> None:
    click.echo(f"run times from {shown(start, zone)} ({zone})")
    console.print_table(
        None,
        ["campaign", "schedule", "runs"],
        [(p.name, p.schedule or "", _runs_cell(p, zone)) for p in plans],
    )


def _print_plan(plans, now: datetime, zone) -> None:
    click.echo(f"plan at {shown(now, zone)} ({zone}): whom each campaign would reach now")
    console.print_table(
        None,
        ["campaign", "kind", "next runs", "would reach", "left out", "first few (key)"],
        [
            (p.name, p.kind, _runs_cell(p, zone), _reach_cell(p, zone), _left_out(p),
             "\n".join(f"{email} ({key})" for email, key in p.reach.sample) if p.reach else "")
            for p in plans
        ],
    )  # fmt: skip


def _reach_cell(campaign, zone) -> str:
    reach = campaign.reach
    if campaign.problem:
        return "cannot run: see below"
    if reach is None:
        return ""
    text = f"{reach.count} of {reach.members}"
    if reach.held:
        text += f"\n{reach.held} held for quiet hours until {shown(reach.held_until, zone)}"
    if reach.held_out:
        text += f"\nof them {reach.held_out} held out as the control group"
    return text


def _left_out(campaign) -> str:
    if campaign.reach is None:
        return ""
    return "\n".join(f"{reason} {n}" for reason, n in campaign.reach.left_out.items())


def _status_json(report, zone) -> dict:
    return {
        "now": _iso(report.now, zone),
        "timezone": str(zone),
        "campaigns": [_campaign_status_json(campaign, zone) for campaign in report.campaigns],
        "suppressed": {
            "addresses": sum(report.suppressed.values()),
            "clients": report.suppressed_clients,
            "addresses_by_reason": report.suppressed,
        },
    }


def _campaign_status_json(campaign, zone) -> dict:
    last = campaign.last_run
    return {
        "name": campaign.name, "kind": campaign.kind, "state": campaign.state,
        "schedule": campaign.schedule, "next_run": _iso(campaign.next_run, zone),
        "last_run": None if last is None else {
            "scheduled_for": _iso(last.scheduled_for, zone),
            "started_at": _iso(last.started_at, zone),
            "finished_at": _iso(last.finished_at, zone),
            "outcome": last.outcome, "detail": last.detail, "sent": last.sent,
            "deferred": last.deferred, "failed": last.failed, "held": last.held,
            "held_out": last.held_out,
        },
        "last_sent_at": _iso(campaign.last_sent, zone), "counts": campaign.counts,
        "problem": campaign.problem,
    }  # fmt: skip


def _plan_json(campaign, zone) -> dict:
    reach = campaign.reach
    return {
        "name": campaign.name, "kind": campaign.kind, "state": campaign.state,
        "schedule": campaign.schedule,
        "next_run": _iso(campaign.runs[0].at, zone) if campaign.runs else None,
        "runs": [{"at": _iso(run.at, zone), "held_until": _iso(run.held_until, zone)}
                 for run in campaign.runs],
        "reach": None if reach is None else {
            "members": reach.members, "left_out": reach.left_out, "count": reach.count,
            "held": reach.held, "held_until": _iso(reach.held_until, zone),
            "held_out": reach.held_out,
            "sample": [{"email": email, "key": key} for email, key in reach.sample],
        },
        "problem": campaign.problem,
    }  # fmt: skip
