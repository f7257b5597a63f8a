"""The README documents every command, and its first two commands are the ones we run."""

from __future__ import annotations

from pathlib import Path

from jobs.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text()


def commands(group, prefix=""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def test_every_command_is_in_the_readme():
    missing = [name for name in commands(cli) if f"`{name}" not in README]
    assert missing == []


def test_the_test_command_is_what_ci_runs():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    test_command = (
        README.split("## Run the tests", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip()
    )
    assert test_command in ci
