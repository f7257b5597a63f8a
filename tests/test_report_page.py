"""``rebook report --html``: a self-contained page, opened in headless Chromium at phone width."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import timedelta

import pytest

from .conftest import debian_tool
from .smtpd import SmtpServer
from .test_browser import FLAGS
from .test_outcomes import SENT, Clinic

OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND"]  # any name lookup fails: nothing can leave


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def chromium() -> str:
    return debian_tool("chromium")


def test_the_html_report_is_self_contained_and_renders_at_phone_width(
    sqlite_clinic, smtp, chromium, tmp_path
):
    built = Clinic(sqlite_clinic, smtp.port, people=80, campaign_extra="holdout = 0.4")
    built.send()
    built.send(SENT + timedelta(days=8))  # nothing new: the key is spent
    built.book(SENT + timedelta(days=2), *(f"t{n},c{n:03d},2026-03-20T10:00,B,booked"
                                           for n in range(0, 80, 3)))  # fmt: skip
    page = tmp_path / "report.html"
    done = sqlite_clinic.rebook("report", "--html", str(page))
    assert done.code == 0, done.err
    html = page.read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:|file:|//)""", html, re.I)
    assert "default-src 'none'; style-src 'unsafe-inline'; img-src data:" in html
    assert "Against the control group" in html and "<svg" in html
    shot = tmp_path / "report.png"  # kept with the test's files, to look at
    assert _page_requests(chromium, tmp_path, page, f"--screenshot={shot}") == []
    assert shot.stat().st_size > 10_000
    canary = tmp_path / "canary.html"  # the same check does see a page that fetches
    canary.write_text('<p>x</p><img src="http://rebook-canary.example/pixel.png">')
    fetched = _page_requests(chromium, tmp_path, canary, "--dump-dom")
    assert fetched == ["http://rebook-canary.example/pixel.png"]
    dom = subprocess.run(
        [chromium, *FLAGS, *OFFLINE, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=90,
    ).stdout  # fmt: skip
    assert "what followed each campaign" in dom and "recipients who booked afterwards" in dom


def _page_requests(chromium: str, tmp_path, page, *extra: str) -> list[str]:
    """The URLs a page asked Chromium's network stack for, from its network log.

    Chromium's own background requests (updates, accounts) carry the
    initiator "not an origin"; a page's carry the page's origin ("null" for
    a file), so they are told apart.
    """
    netlog = tmp_path / f"{page.stem}.netlog.json"
    run = subprocess.run(
        [chromium, *FLAGS, *OFFLINE, f"--user-data-dir={tmp_path / page.stem}",
         f"--log-net-log={netlog}", "--window-size=390,1600", "--hide-scrollbars", *extra,
         page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    text = netlog.read_text().rstrip()
    if not text.endswith("}"):  # a log cut short when the process exits is left open
        text = text.rstrip(",") + "]}"
    log = json.loads(text)
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return sorted({event["params"]["url"] for event in log["events"]
                   if event["type"] == start and "url" in event.get("params", {})
                   and event["params"].get("initiator") != "not an origin"})  # fmt: skip


def test_the_html_report_replaces_only_a_regular_file(sqlite_clinic, tmp_path):
    """A symlink keeps pointing at the page it names; a device, folder or FIFO is never written."""
    real = tmp_path / "real.html"
    real.write_text("last week's report")
    real.chmod(0o640)
    link = sqlite_clinic.folder / "report.html"
    link.symlink_to(real)
    done = sqlite_clinic.rebook("report", "--html", "report.html")
    assert done.code == 0, done.err
    assert link.is_symlink() and "what followed each campaign" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    os.mkfifo(tmp_path / "pipe")
    (sqlite_clinic.folder / "dangling.html").symlink_to(tmp_path / "nowhere.html")
    for path, said in (("/dev/full", "is not a regular file"), (str(tmp_path), "is a folder"),
                       (str(tmp_path / "pipe"), "is not a regular file"),
                       ("dangling.html", "a symbolic link to nothing")):  # fmt: skip
        refused = sqlite_clinic.rebook("report", "--html", path)
        assert refused.code == 2 and said in refused.err and "Traceback" not in refused.err
    assert not (tmp_path / "nowhere.html").exists()
    assert not [p for p in sqlite_clinic.folder.iterdir() if p.name.endswith(".partial")]


def test_the_html_report_goes_to_standard_output_with_a_dash(sqlite_clinic):
    shown = sqlite_clinic.rebook("report", "--html", "-")
    assert shown.code == 0 and shown.out.startswith("<!DOCTYPE html>") and shown.err == ""
    assert not (sqlite_clinic.folder / "-").exists()
    both = sqlite_clinic.rebook("report", "--html", "-", "--json")
    assert both.code == 2 and "both write to standard output" in both.err
    empty = sqlite_clinic.rebook("report", "--html", "")
    assert empty.code == 2 and "'--html': is empty" in empty.err
