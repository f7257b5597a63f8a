"""The default emails in a real browser engine: headless Chromium (Debian's ``chromium``)."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import DEFAULT_CAMPAIGNS, debian_tool, example_email

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> str:
    return debian_tool("chromium")


@pytest.mark.parametrize("campaign", DEFAULT_CAMPAIGNS)
def test_default_templates_render_in_chromium(chromium, tmp_path, campaign):
    settings, content, _ = example_email(tmp_path, campaign)
    page = tmp_path / "email.html"
    page.write_text(content.html)
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
