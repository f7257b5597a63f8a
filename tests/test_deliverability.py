"""The default emails as a spam filter sees them: SpamAssassin's local rules (Debian's ``spamassassin``)."""

from __future__ import annotations

import re
import subprocess

import pytest

from .conftest import DEFAULT_CAMPAIGNS, debian_tool, example_email


@pytest.fixture(scope="module")
def spamassassin() -> str:
    return debian_tool("spamassassin")


@pytest.mark.parametrize("campaign", DEFAULT_CAMPAIGNS)
def test_default_emails_score_clean(spamassassin, tmp_path, campaign):
    _, _, message = example_email(tmp_path, campaign)
    done = subprocess.run(
        [spamassassin, "-L", "-t"], input=message, capture_output=True, timeout=120
    )
    report = done.stdout.decode(errors="replace")
    score = float(re.search(r"X-Spam-Status: \w+, score=(-?[\d.]+)", report)[1])
    # a plain, honest email scores 0; the hidden low-contrast preheader it once had scored 0.7
    assert score < 0.5, report[-3000:]
