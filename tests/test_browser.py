"""The default emails in a real browser engine: headless Chromium (Debian's ``chromium``).

``.ci/run`` installs Chromium; elsewhere, without it, this test is skipped (under
CI=true it fails instead).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from campaigns.config import load_settings
from campaigns.context import sample_client
from campaigns.render import CampaignRenderer
from campaigns.resources import example_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    return CHROMIUM


@pytest.mark.parametrize(
    "campaign", ["book-next-massage", "back-pain-articles", "appointment-reminder"]
)
def test_default_templates_render_in_chromium(chromium, tmp_path, campaign):
    (tmp_path / "config.toml").write_text(example_config().read_text())
    settings = load_settings(tmp_path / "config.toml")
    renderer = CampaignRenderer(settings, campaign)
    client, last, upcoming = sample_client(datetime.now(UTC), settings.clinic.timezone)
    article = renderer.articles[0] if renderer.articles else None
    page = tmp_path / "email.html"
    page.write_text(
        renderer.render(client, last, upcoming, "https://u.example/unsubscribe/T", article).html
    )
    done = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    dom = done.stdout
    assert done.returncode == 0 and "<body" in dom, done.stderr[-2000:]
    assert f'href="{settings.clinic.booking_url}"' in dom
    assert "{{" not in dom and "{%" not in dom and "}}" not in dom
    assert settings.clinic.address in dom
    assert "<script" not in dom
