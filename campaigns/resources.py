"""Files that ship with rebook: the default templates and the example config.

In a wheel they live inside this package (``pyproject.toml`` maps them in);
in a source checkout they are at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).parent
_CHECKOUT = _PACKAGE.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"rebook is installed without {candidates[0].name}")


def default_templates() -> Path:
    return _first_existing(_PACKAGE / "default_templates", _CHECKOUT / "templates")


def example_config() -> Path:
    return _first_existing(_PACKAGE / "config.example.toml", _CHECKOUT / "config.example.toml")
