"""Config validation and ``fedqnn --help`` load none of the heavy dependencies.

Each check runs in a fresh interpreter and lists the heavy top-level packages in
``sys.modules`` afterwards; the negative control proves the probe sees an import when one happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "flwr", "pennylane", "ortools")
ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
{body}
print("HEAVY=" + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})))
"""

CLI = """
import sys
from fedqnn.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
"""


def _heavy_after(body: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", PROBE.format(body=body, heavy=set(HEAVY))], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY=")][-1]
    return json.loads(line.removeprefix("HEAVY="))


@pytest.mark.parametrize("layers", [
    [],
    [{"partition": "circuit", "partition.qpu_qubits": 2, "broker.policy": "oracle", "auth": "qkd",
      "strategy": "krum", "attack": "alie+ipm", "task": "digits", "plugins": ["tests.plugins.outside:Tally"]}],
])
def test_build_config_loads_no_heavy_module(layers: list[dict]) -> None:
    body = f"from fedqnn.config import build_config\nbuild_config(*{json.dumps(layers)})"
    assert _heavy_after(body) == []


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["run", "--print-config"], ["keys", "--help"],
                                  ["bench", "--help"], ["broker", "--help"], ["broker", "sim", "--help"],
                                  ["broker", "mdp", "--help"]])
def test_cli_help_loads_no_heavy_module(argv: list[str]) -> None:
    assert _heavy_after(CLI.format(argv=argv)) == []


def test_console_help_lists_every_subcommand() -> None:
    from fedqnn.cli import COMMANDS

    out = subprocess.run([sys.executable, "-m", "fedqnn.cli", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and all(name in out.stdout for name in COMMANDS)


def test_negative_control_the_probe_sees_torch() -> None:
    assert "torch" in _heavy_after("import fedqnn.models")
    assert "flwr" in _heavy_after("import strategies.registry")
