"""``fedqnn run --print-config`` round trip: what it prints, fed back with ``--config``, builds the
same config (CONTRACTS: the printed text is the validated config as JSON, sorted keys)."""

from __future__ import annotations

import json
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
@pytest.mark.parametrize("name", ["printed.toml", "printed.json"])
def test_printed_config_fed_back_builds_the_same_config(argv: list[str], name: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    first = _printed(argv, capsys)
    f = tmp_path / name
    f.write_text(first)
    assert _printed(["--config", str(f)], capsys) == first
    cfg = json.loads(first)
    assert build_config(load_toml(f)) == build_config(cfg) == cfg


def test_a_bad_json_config_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('{"rounds": 3,')
    assert main(["run", "--config", str(f), "--print-config"]) == 2
    assert "--config" in capsys.readouterr().err
