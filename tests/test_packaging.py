"""The wheel carries the default templates and the example config: ``pip install .`` then ``rebook init`` works."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("rebook-*.whl")
    return built


def test_wheel_holds_templates_config_and_migrations(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "campaigns/default_templates/layout.html.j2" in names
    assert "campaigns/config.example.toml" in names
    assert "campaigns/store/migrations/env.py" in names
    assert any(name.startswith("campaigns/store/migrations/versions/0001_") for name in names)
    assert "jobs/cli.py" in names
    assert not any(name.startswith("tests/") for name in names)


def test_installed_wheel_inits_and_imports(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = "import sys, campaigns; assert campaigns.__file__.startswith(sys.argv[1]); from jobs.cli import main; sys.argv[1:2] = []; main()"

    def rebook(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", run, str(site), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )

    init = rebook("init", "demo", "--sample-data", "--templates", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "demo" / "templates" / "layout.html.j2").exists()
    imported = rebook("import", "clients", "exports/clients.csv", cwd=tmp_path / "demo")
    assert imported.returncode == 0 and "inserted" in imported.stdout, imported.stderr
