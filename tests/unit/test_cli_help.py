"""`runeworker --help` and every sub-command's: each argument says what it is."""

from __future__ import annotations

import argparse

from runeworker.cli import _parser


def _commands(
    parser: argparse.ArgumentParser, prefix: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prefix} {name}")
    return found


def test_every_argument_of_every_command_has_a_help_text() -> None:
    """`validate`'s and `submit`'s workflow, `submit --timeout`'s default, `dlq list --limit`,
    `dlq replay ID` and `--all`, `bench --workflows` and `--timeout` had none."""
    bare = [
        f"{command}: {action.dest}"
        for command, parser in _commands(_parser(), "runeworker")
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert bare == []
