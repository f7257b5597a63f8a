"""``rebook report``: what followed each campaign, as a table, JSON, or an HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from jobs import console
from jobs.app import EXIT_OK, App, pass_app


def _duration(context, parameter, value: str | None):
    if value is None:
        return None
    from campaigns.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _html_path(context, parameter, value: str | None) -> Path | None:
    if value is not None and not value.strip():
        raise click.BadParameter("is empty: name the file to write, e.g. report.html")
    return None if value is None else Path(value)


@click.command()
@click.option("--since", metavar="D", callback=_duration,
              help="Only emails sent in the last D (e.g. 90d, 12w) [all].")  # fmt: skip
@click.option("--campaign", "name", metavar="NAME", help="Only this campaign.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_path", metavar="FILE", callback=_html_path,
              help="Also write one HTML page with charts to FILE (-: stdout).")  # fmt: skip
@pass_app
def report(app: App, since, name: str | None, as_json: bool, html_path: Path | None) -> int:
    """Per campaign: sent, failed, bounced, unsubscribed, and the bookings that followed.

    A booking follows an email when the client's visit (not cancelled) was
    first seen by an import after the email went and within [report] window
    (default 14d). That is "followed by", not "caused by": a campaign with
    a control group (holdout) also shows the difference it measured between
    recipients and the clients held out, with a 95% confidence interval.

    \b
    Examples:
      rebook report
      rebook report --since 90d --campaign book-next-massage
      rebook report --json
      rebook report --html report.html
      rebook report --html -
    """
    from campaigns.outcomes import report as outcomes

    to_stdout = html_path == Path("-")
    if to_stdout and as_json:
        raise click.UsageError("--html - and --json both write to standard output: choose one")
    with app.engine.connect() as connection:
        found = outcomes(connection, app.settings, app.now(), since=since, campaign=name)
    zone = app.settings.clinic.timezone
    if to_stdout:
        from jobs.report_page import page

        click.echo(page(found, app.settings.clinic.name, zone), nl=False)
        return EXIT_OK
    if html_path is not None:
        from jobs.report_page import write_page

        write_page(html_path, found, app.settings.clinic.name, zone)
    if as_json:
        console.print_json(as_data(found, zone))
    elif html_path is not None:
        click.echo(f"wrote {html_path}")
    else:
        _print(found, zone)
        if app.settings.bounces is not None or _any_back(found.returned):
            _print_returns(found)
    return EXIT_OK


def _any_back(returned) -> bool:
    return bool(returned.hard + returned.soft + returned.complaint + returned.clinic_problem)


def _print_returns(found) -> None:
    """Bounce and complaint rates per campaign and in all, beside the providers' line."""
    from campaigns.outcomes import COMPLAINT_LIMIT

    def row(name, back):
        return (name, back.sent, _count_rate(back, "hard"), _count_rate(back, "soft"),
                _count_rate(back, "complaint"), back.clinic_problem)  # fmt: skip

    rows = [row(c.name, c.returned) for c in found.campaigns]
    if len(rows) > 1:
        rows.append(row("all campaigns", found.returned))
    console.print_table(
        "what came back later (read from the bounce mailbox)",
        ["campaign", "sent", "hard bounces", "soft bounces", "spam complaints",
         "refused: not the client's fault"],
        rows,
    )  # fmt: skip
    rate = found.returned.rate("complaint")
    verdict = (
        "no data yet" if rate is None
        else "over it: see the README, 'What comes back'" if rate >= COMPLAINT_LIMIT
        else "under it"
    )  # fmt: skip
    click.echo(
        f"spam complaints: Gmail and Yahoo want bulk senders under {COMPLAINT_LIMIT:.1%} of "
        f"messages (0.1% to be safe); this report: {_percent_of(rate)}, {verdict}"
    )


def _count_rate(returned, kind: str) -> str:
    count = getattr(returned, kind)
    return f"{count} ({_percent_of(returned.rate(kind), 2)})"


def _percent_of(rate: float | None, digits: int = 2) -> str:
    return NO_DATA if rate is None else f"{rate * 100:.{digits}f}%"


def _print(found, zone) -> None:
    from campaigns.durations import format_duration

    since = f" since {found.since.astimezone(zone):%Y-%m-%d %H:%M}" if found.since else ""
    click.echo(
        f"report{since}: a booking follows an email when first seen within "
        f"{format_duration(found.window)} of it (followed by, not caused by)"
    )
    console.print_table(
        None,
        ["campaign", "sent", "failed", "bounced", "unsubscribed", "booked after",
         "bookings", "control group"],
        [(c.name, c.recipients.clients, c.failed, c.bounced, c.unsubscribed,
          f"{c.recipients.booked} ({_percent(c.recipients.rate)})"
          if c.recipients.clients else NO_DATA,
          c.recipients.bookings, _control_cell(c)) for c in found.campaigns],
    )  # fmt: skip
    undated = sum(c.undated for c in found.campaigns)
    if undated:
        click.echo(
            f"note: {undated} later visit(s) of recipients were imported before rebook "
            "recorded when it first saw a visit; they cannot be dated and are not counted"
        )


def _control_cell(campaign) -> str:
    control, comparison = campaign.control, campaign.comparison
    if not control.clients:
        return NO_DATA
    lines = [f"{control.booked} of {control.clients} booked ({_percent(control.rate)})"]
    if comparison is not None:
        lines.append(_in_words(comparison))
    return "\n".join(lines)


def _in_words(comparison) -> str:
    from campaigns.stats import MEASURED

    if comparison.verdict != MEASURED:
        return comparison.verdict
    d, won = comparison.difference, comparison.won
    return (
        f"{_points(d.estimate)} points (95% CI {_points(d.low)} to {_points(d.high)}); "
        f"bookings won {won.estimate:.0f} ({won.low:.0f} to {won.high:.0f})"
    )


NO_DATA = "—"  # a rate of no clients: not 0%, which would say none of them booked


def _percent(rate) -> str:
    """A rate (an ``Interval``, or None for no clients) as people read it."""
    return NO_DATA if rate is None else f"{rate.estimate * 100:.1f}%"


def _points(difference: float) -> str:
    return f"{difference * 100:+.1f}"


def as_data(found, zone) -> dict:
    """The report for scripts: counts, rates as fractions, intervals as [low, high].

    No data is null, never 0.0: a rate of no clients, the difference from a
    control group when either group is empty.
    """
    from campaigns.durations import format_duration
    from campaigns.outcomes import COMPLAINT_LIMIT

    return {
        "now": _iso(found.now, zone),
        "since": found.since.astimezone(zone).isoformat(timespec="seconds")
        if found.since
        else None,
        "window": format_duration(found.window),
        "campaigns": [_campaign_data(c) for c in found.campaigns],
        "returned": _returned_data(found.returned),
        "complaint_limit": COMPLAINT_LIMIT,
    }


def _returned_data(returned) -> dict:
    """Counts of messages that came back, and rates per message sent (null: nothing sent)."""
    kinds = ("hard", "soft", "complaint", "clinic_problem", "unsubscribe")
    return {"sent": returned.sent, **{kind: getattr(returned, kind) for kind in kinds},
            **{f"{kind}_rate": returned.rate(kind) for kind in kinds[:4]}}  # fmt: skip


def _iso(moment, zone) -> str | None:
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else None


def _group_data(group) -> dict:
    """A group's counts and booking rate; with no clients the rate is null, as is its interval."""
    rate = group.rate
    return {"clients": group.clients, "booked": group.booked, "bookings": group.bookings,
            "rate": None if rate is None else rate.estimate,
            "rate_interval": None if rate is None else [rate.low, rate.high]}  # fmt: skip


def _campaign_data(campaign) -> dict:
    comparison = campaign.comparison
    return {
        "name": campaign.name, "sent": campaign.recipients.clients, "failed": campaign.failed,
        "bounced": campaign.bounced, "unsubscribed": campaign.unsubscribed,
        "booked": campaign.recipients.booked, "bookings": campaign.recipients.bookings,
        "booking_rate": _group_data(campaign.recipients)["rate"],
        "undated_visits": campaign.undated,
        "returned": _returned_data(campaign.returned),
        "recipients": _group_data(campaign.recipients),
        "control": _group_data(campaign.control) if campaign.control.clients else None,
        "difference": None if comparison is None else {
            "points": comparison.difference.estimate * 100,
            "interval": [comparison.difference.low * 100, comparison.difference.high * 100],
            "method": "Newcombe hybrid score, 95%",
            "bookings_won": comparison.won.estimate,
            "bookings_won_interval": [comparison.won.low, comparison.won.high],
            "verdict": comparison.verdict,
        },
        "weeks": [
            {"week": week.start.isoformat(), "sent": week.recipients.clients,
             "booked": week.recipients.booked, "bookings": week.recipients.bookings,
             "control": week.control.clients, "control_booked": week.control.booked}
            for week in campaign.weeks
        ],
    }  # fmt: skip
