import subprocess
import sys
import tomllib

import pytest

from fedqnn.cli import main


def test_print_config_applies_flags_and_sets(capsys):
    rc = main(["run", "--clients", "3", "--set", "train.lr=0.2", "--print-config"])
    assert rc == 0
    cfg = tomllib.loads(capsys.readouterr().out)["fedqnn"]
    assert cfg["clients"] == 3 and cfg["train"]["lr"] == 0.2


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "--clients", "0"], "clients"),
        (["run", "--strategy", "nosuch"], "strategy"),
        (["run", "--set", "model.qubits=-2"], "model.qubits"),
        (["run", "--config", "/nonexistent.toml"], "--config"),
    ],
)
def test_bad_config_fails_before_the_run(argv, needle, capsys):
    rc = main(argv)
    assert rc == 2
    assert needle in capsys.readouterr().err


def test_config_file_layer(tmp_path, capsys):
    f = tmp_path / "c.toml"
    f.write_text("[fedqnn]\nrounds = 7\n[fedqnn.train]\nepochs = 2\n")
    assert main(["run", "--config", str(f), "--rounds", "8", "--print-config"]) == 0
    cfg = tomllib.loads(capsys.readouterr().out)["fedqnn"]
    assert cfg["rounds"] == 8 and cfg["train"]["epochs"] == 2


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "fedqnn.cli", "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--strategy" in out.stdout
