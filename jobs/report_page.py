"""``rebook report --html``: one self-contained page for an owner who would rather look than read.

Inline CSS and inline SVG only: no script, no font, no image or style sheet
from anywhere, and a Content-Security-Policy that forbids fetching any, so
the file can be mailed or opened offline and shows the same everywhere. It
reads at phone width: the charts scale to the column, the tables scroll.
"""

from __future__ import annotations

import os
import stat
import tempfile
from html import escape
from pathlib import Path

from campaigns.durations import format_duration
from campaigns.errors import UserError
from campaigns.stats import MEASURED

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
NO_DATA = "—"  # a rate of no clients: not 0%
SENT_COLOUR, BOOKED_COLOUR, CONTROL_COLOUR = "#c9d3dd", "#2e7d5b", "#b5651d"
STYLE = """
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2730;
background:#f6f7f8}
main{max-width:760px;margin:0 auto;padding:16px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:0 0 .3em}
section{background:#fff;border-radius:10px;padding:14px 16px;margin:14px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
.note{color:#56636f;font-size:.9em}.big{font-size:1.1em}
svg{width:100%;height:auto;display:block}
.key span{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin:0 .3em 0 .8em}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9em;min-width:100%}
td,th{padding:3px 8px;text-align:right;border-bottom:1px solid #e3e7ea}
th:first-child,td:first-child{text-align:left}
"""


def write_page(path: Path, report, clinic: str, zone) -> None:
    """Whole or not at all: written beside ``path``, then renamed over it.

    An owner may have last week's report open or attached to an email; a
    folder that does not exist or a full disk must not leave half a page.
    Only a regular file is replaced (through a symbolic link, the file it
    points at, the link kept): a device, a FIFO or a folder at ``path`` is
    refused, never written through or swapped for a file.
    """
    text = page(report, clinic, zone)
    target = writable_target(path)
    mode = _mode_of(target)
    try:
        descriptor, partial = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
        )
    except OSError as error:
        raise UserError(f"cannot write the report to {str(path)!r}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(partial, mode)
        os.replace(partial, target)
    except OSError as error:
        Path(partial).unlink(missing_ok=True)
        raise UserError(f"cannot write the report to {str(path)!r}: {error.strerror}") from None


def writable_target(path: Path) -> Path:
    """The file a report may replace at ``path``: a regular file (links followed) or a new one."""
    shown = str(path)
    try:
        info = path.stat()  # follows a symbolic link
    except FileNotFoundError:
        if path.is_symlink():
            raise UserError(
                f"{shown!r} is a symbolic link to nothing: give the report a file of its own"
            ) from None
        return path
    except OSError as error:
        raise UserError(f"cannot write the report to {shown!r}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise UserError(
            f"{shown!r} is {what}: the report replaces only a file (or give a new name, "
            "or - for standard output)"
        )
    return path.resolve() if path.is_symlink() else path


def _mode_of(target: Path) -> int:
    """The replaced file's permissions, else what the umask leaves of rw-rw-rw-."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def page(report, clinic: str, zone) -> str:
    when = report.now.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    since = f" since {report.since.astimezone(zone):%Y-%m-%d}" if report.since else ""
    sections = "\n".join(_campaign(c) for c in report.campaigns) or "<p>No campaigns yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(clinic)}: what followed each campaign</title>
<style>{STYLE}</style></head>
<body><main>
<h1>{escape(clinic)}: what followed each campaign</h1>
<p class="note">Emails{since} and the bookings that followed them: a visit first seen within
{escape(format_duration(report.window))} after the email, not cancelled. <em>Followed by</em>
is not <em>caused by</em>; a campaign with a control group shows what it measured.
As of {escape(when)} ({escape(str(zone))}).</p>
{sections}
</main></body></html>
"""


def _campaign(campaign) -> str:
    recipients = campaign.recipients
    rate = f"{recipients.rate.estimate * 100:.1f}%" if recipients.rate else NO_DATA
    parts = [
        f"<section><h2>{escape(campaign.name)}</h2>",
        f'<p class="big">{recipients.clients} sent, {recipients.booked} booked afterwards '
        f"({rate}); {campaign.failed} failed, {campaign.bounced} bounced, "
        f"{campaign.unsubscribed} unsubscribed.</p>",
    ]
    if campaign.weeks:
        parts += [_weeks_chart(campaign), _weeks_table(campaign)]
    if campaign.comparison is not None:
        parts.append(_control(campaign))
    elif campaign.control.clients:
        control = campaign.control
        parts.append(
            f"<p>Control group: {control.clients} held out, {control.booked} booked afterwards "
            f"({control.rate.estimate * 100:.1f}%); no emails sent to compare them with yet.</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _weeks_chart(campaign) -> str:
    """Week by week: a bar of emails sent, and in it the recipients who booked afterwards."""
    weeks = campaign.weeks
    width, height, top, bottom = 360, 150, 12, 22  # about a phone's width: text stays legible
    tallest = max(week.recipients.clients for week in weeks) or 1
    slot = width / len(weeks)
    bar = min(36.0, slot * 0.7)
    shapes = []
    for index, week in enumerate(weeks):
        x = index * slot + (slot - bar) / 2
        scale = (height - top - bottom) / tallest
        sent_h, booked_h = week.recipients.clients * scale, week.recipients.booked * scale
        base = height - bottom
        shapes.append(
            f'<rect x="{x:.1f}" y="{base - sent_h:.1f}" width="{bar:.1f}" height="{sent_h:.1f}" '
            f'fill="{SENT_COLOUR}"><title>week of {week.start}: {week.recipients.clients} sent'
            "</title></rect>"
        )
        shapes.append(
            f'<rect x="{x:.1f}" y="{base - booked_h:.1f}" width="{bar:.1f}" '
            f'height="{booked_h:.1f}" fill="{BOOKED_COLOUR}"><title>{week.recipients.booked} '
            "booked afterwards</title></rect>"
        )
        if len(weeks) <= 16 or index % max(1, len(weeks) // 8) == 0:
            shapes.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 6}" font-size="11" '
                f'text-anchor="middle" fill="#56636f">{week.start:%d %b}</text>'
            )
    label = f"{campaign.name}: emails sent and bookings that followed, week by week"
    return (
        f'<p class="key note"><span style="background:{SENT_COLOUR}"></span>emails sent'
        f'<span style="background:{BOOKED_COLOUR}"></span>recipients who booked afterwards</p>'
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        f'<line x1="0" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        f'stroke="#8a96a1"/>{"".join(shapes)}</svg>'
    )


def _weeks_table(campaign) -> str:
    rows = "".join(
        f"<tr><td>{week.start:%Y-%m-%d}</td><td>{week.recipients.clients}</td>"
        f"<td>{week.recipients.booked}</td><td>{week.recipients.bookings}</td></tr>"
        for week in campaign.weeks
    )
    return (
        '<div class="scroll"><table><tr><th>week of</th><th>sent</th><th>booked after</th>'
        f"<th>bookings</th></tr>{rows}</table></div>"
    )


def _control(campaign) -> str:
    """Both booking rates with their 95% intervals, and what the difference says."""
    comparison = campaign.comparison
    groups = [("recipients", campaign.recipients, BOOKED_COLOUR),
              ("control group", campaign.control, CONTROL_COLOUR)]  # fmt: skip
    highest = max(max(group.rate.high for _, group, _ in groups), 0.05)
    width, left, right, row = 360, 96, 48, 36
    height = row * len(groups) + 26

    def x(rate: float) -> float:
        return left + (width - left - right) * rate / highest

    shapes = []
    for index, (name, group, colour) in enumerate(groups):
        y = 22 + index * row
        rate = group.rate
        shapes.append(
            f'<text x="0" y="{y + 4}" font-size="12" fill="#1d2730">{name}</text>'
            f'<line x1="{x(rate.low):.1f}" y1="{y}" x2="{x(rate.high):.1f}" y2="{y}" '
            f'stroke="{colour}" stroke-width="4" stroke-linecap="round"/>'
            f'<circle cx="{x(rate.estimate):.1f}" cy="{y}" r="7" fill="{colour}">'
            f"<title>{name}: {group.booked} of {group.clients} booked, "
            f"{rate.estimate * 100:.1f}% (95% CI {rate.low * 100:.1f}% to "
            f"{rate.high * 100:.1f}%)</title></circle>"
            f'<text x="{x(rate.high) + 6:.1f}" y="{y + 4}" font-size="11" fill="#56636f">'
            f"{rate.estimate * 100:.1f}%</text>"
        )
    axis = height - 6
    shapes.append(
        f'<text x="{left}" y="{axis}" font-size="11" fill="#56636f">0%</text>'
        f'<text x="{width - right}" y="{axis}" font-size="11" text-anchor="end" '
        f'fill="#56636f">{highest * 100:.0f}%</text>'
    )
    label = f"{campaign.name}: booking rate of recipients and of the control group, 95% intervals"
    d, won = comparison.difference, comparison.won
    if comparison.verdict == MEASURED:
        words = (
            f"Recipients booked {d.estimate * 100:+.1f} points against the control group "
            f"(95% CI {d.low * 100:+.1f} to {d.high * 100:+.1f}): about {won.estimate:.0f} "
            f"bookings won ({won.low:.0f} to {won.high:.0f})."
        )
    else:
        words = f"Control group: {comparison.verdict}."
    return (
        f'<h3 class="big">Against the control group</h3>'
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        f"{''.join(shapes)}</svg><p>{escape(words)}</p>"
    )
