"""Every option of the user-facing subcommands says what it does (issue 18.13: attack-matrix had none)."""

from __future__ import annotations

import argparse

import pytest

from fedqnn import attack_matrix, cli_run


def _undocumented(module) -> list[str]:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return [a.dest for a in p._actions if not isinstance(a, argparse._HelpAction) and not a.help]


@pytest.mark.parametrize("module", [attack_matrix, cli_run], ids=["attack-matrix", "run"])
def test_every_option_has_help(module) -> None:
    assert _undocumented(module) == []


def test_the_check_sees_a_missing_help() -> None:  # control
    class Bare:
        @staticmethod
        def add_arguments(p: argparse.ArgumentParser) -> None:
            p.add_argument("--x")

    assert _undocumented(Bare) == ["x"]


def test_run_help_names_the_default_out(capsys) -> None:
    from fedqnn.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "runs/latest" in capsys.readouterr().out
    from fedqnn.cli_run import _pyproject_layer

    assert _pyproject_layer().get("out", "runs/latest") == "runs/latest"  # what the repository's pyproject sets
