"""``fedqnn run --print-config`` round trip: the TOML it prints, fed back with ``--config``, builds
the same config and prints the same text. ``--config`` also reads a JSON object (the format
``--print-config`` printed before). The control: a printed config with one value edited builds a
different config, so the comparison can fail."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from fedqnn.cli import main
from fedqnn.config import build_config, load_toml

OVERRIDES = [
    [],
    ["--clients", "3", "--strategy", "krum", "--task", "digits", "--seed", "7", "--out", "runs/rt",
     "--set", "train.lr=0.2", "--set", "partition=circuit", "--set", "partition.qpu_qubits=2",
     "--set", "partition.rank=2", "--set", "broker.policy=oracle", "--set", "auth=qkd",
     "--set", "broker.memory_T=0.01", "--set", "attack= alie + ipm ", "--set", "byzantine_fraction=0.5",
     "--set", "qpu.nodes={node-1={p=0.01, shots=256}}", "--set", 'plugins=["tests.plugins.outside:Tally"]'],
    ["--set", "broker.policy=off", "--set", "fraction_train=0.5", "--set", "broker.round_duration=0.2",
     "--set", "faults.dropout=0.1", "--set", "noise=noiseless", "--set", "qpu.shots_choices=[64]"],
]


def _printed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["run", *argv, "--print-config"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", OVERRIDES, ids=["default", "many-sets", "broker-off"])
def test_printed_config_fed_back_builds_the_same_config(argv: list[str], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    first = _printed(argv, capsys)
    cfg = tomllib.loads(first)["fedqnn"]  # valid TOML, one [fedqnn] table
    f = tmp_path / "printed.toml"
    f.write_text(first)
    assert _printed(["--config", str(f)], capsys) == first
    built = build_config(load_toml(f))
    assert built == build_config(cfg)
    assert json.dumps(built, sort_keys=True) == json.dumps(_expected(argv), sort_keys=True)
    g = tmp_path / "printed.json"  # the JSON form is read too
    g.write_text(json.dumps(built))
    assert build_config(load_toml(g)) == built
    edited = tmp_path / "edited.toml"  # the control
    edited.write_text(first.replace(f"seed = {built['seed']}", f"seed = {built['seed'] + 1}", 1))
    assert build_config(load_toml(edited)) != built


def _expected(argv: list[str]) -> dict:
    """The config the same flags build directly, without the printed text."""
    import argparse

    from fedqnn.cli_run import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    return config_from_args(p.parse_args(argv))


def test_a_bad_json_config_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('{"rounds": 3,')
    assert main(["run", "--config", str(f), "--print-config"]) == 2
    assert "--config" in capsys.readouterr().err
