"""The default emails in a real browser engine: headless Chromium (Debian's ``chromium``)."""

from __future__ import annotations

import html
import re
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


# A wrapper page shows the email in a frame as wide as a phone or a desktop
# window (a headless window is at least 500px wide); once laid out, its script
# writes the email's scroll width and its card's width into the DOM for
# --dump-dom to read. The email itself carries no script.
MEASURE = """<!doctype html><html><body style="margin:0">
<iframe id="email" width="{width}" height="2000" style="border:0" srcdoc="{email}"></iframe>
<script>
document.getElementById("email").addEventListener("load", (event) => {{
  const email = event.target.contentDocument;
  const out = document.createElement("output");
  out.id = "measured";
  out.textContent = `${{email.documentElement.scrollWidth}} ${{email.querySelector(".sheet").getBoundingClientRect().width}}`;
  document.body.appendChild(out);
}});
</script></body></html>"""


def run_chromium(chromium, tmp_path, page, *args) -> str:
    done = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", *args,
         page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("campaign", DEFAULT_CAMPAIGNS)
def test_default_emails_fit_a_phone_and_a_desktop(chromium, tmp_path, campaign):
    _, content, _ = example_email(tmp_path, campaign)
    assert "<script" not in content.html
    email = tmp_path / "email.html"
    email.write_text(content.html)
    for width, card in ((390, range(300, 391)), (1280, range(600, 601))):
        shot = tmp_path / f"{campaign}-{width}.png"  # kept in tmp_path, to look at
        run_chromium(
            chromium, tmp_path, email, f"--window-size={width},2000", f"--screenshot={shot}"
        )
        assert shot.stat().st_size > 10_000
        wrapper = tmp_path / f"measure-{width}.html"
        wrapper.write_text(MEASURE.format(width=width, email=html.escape(content.html, quote=True)))
        dom = run_chromium(chromium, tmp_path, wrapper, "--window-size=1400,2200", "--dump-dom")
        scroll, sheet = re.search(r'<output id="measured">(\d+) ([\d.]+)</output>', dom).groups()
        assert int(scroll) <= width, f"{campaign} scrolls sideways at {width}px: {scroll}px wide"
        assert round(float(sheet)) in card  # fills a phone's width; 600px on a desktop


def test_dark_mode_keeps_text_readable(chromium, tmp_path):
    """Under prefers-color-scheme: dark, body text and links stay well apart from the card."""
    _, content, _ = example_email(tmp_path, "back-pain-articles")
    probe = """<script>
    window.addEventListener("load", () => {
      const colour = (el, prop) => getComputedStyle(el)[prop];
      const out = document.createElement("output");
      out.id = "colours";
      out.textContent = [colour(document.querySelector(".sheet"), "backgroundColor"),
        colour(document.querySelector(".body"), "color"), colour(document.querySelector(".body a"), "color"),
        colour(document.querySelector(".footer"), "color"), colour(document.querySelector(".page"), "backgroundColor")].join(";");
      document.body.appendChild(out);
    });
    </script>"""
    page = tmp_path / "dark.html"
    page.write_text(content.html.replace("</body>", probe + "</body>"))
    dom = run_chromium(chromium, tmp_path, page, "--force-dark-mode", "--blink-settings=preferredColorScheme=0",
                       "--window-size=390,2000", "--dump-dom")  # fmt: skip
    sheet, text, link, footer, outside = (
        luminance(value)
        for value in re.search(r'<output id="colours">([^<]+)</output>', dom)[1].split(";")
    )
    assert sheet < 0.1, "the card turns dark"
    assert contrast(text, sheet) >= 7 and contrast(link, sheet) >= 4.5
    assert contrast(footer, outside) >= 4.5


def luminance(css: str) -> float:
    """WCAG relative luminance of an ``rgb(r, g, b)`` colour."""
    channels = [int(n) / 255 for n in re.findall(r"\d+", css)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: float, b: float) -> float:
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)
