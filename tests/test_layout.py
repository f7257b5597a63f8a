"""The package layout the README promises: who may import whom, and what stays lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# each package, and the rebook packages it must never import
FORBIDDEN = {
    "campaigns": {"jobs"},
    "campaigns.config": {
        "campaigns.store", "campaigns.clients", "campaigns.content", "campaigns.delivery",
    },
    "campaigns.store": {
        "campaigns.clients", "campaigns.content", "campaigns.delivery", "campaigns.preview",
    },
    "campaigns.content": {"campaigns.store", "campaigns.clients", "campaigns.delivery"},
    "campaigns.clients": {"campaigns.delivery", "campaigns.cliniko"},
    "campaigns.cliniko": {"campaigns.delivery", "campaigns.content"},
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_the_layers_below_them(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules_of(package)
        for name in imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package])
    ]
    assert wrong == []


def test_counting_a_segment_loads_no_templating_console_migrations_or_delivery(
    sqlite_clinic,
) -> None:
    """``rebook segment --count`` is the cheapest command: what it does not need, it does not load."""
    script = (
        "import sys; from jobs.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('jinja2', 'rich', 'alembic', 'campaigns.delivery', 'css_inline', 'aiosmtplib')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    config = sqlite_clinic.write_config("[segments.everyone]\n")
    sqlite_clinic.engine()  # the schema exists: a first start would upgrade it with Alembic
    done = subprocess.run(
        [sys.executable, "-c", script, "--config", str(config), "segment", "everyone", "--count"],
        capture_output=True, text=True, timeout=60, cwd=sqlite_clinic.folder,
    )  # fmt: skip
    assert done.stdout.splitlines()[-1] == "[]", done.stderr
