"""The start of ``fedqnn run`` (issue 18.12): no Flower deprecation banner (fedqnn says it in its own
line), no torch deprecation warning from the server's QFI, Flower's logger really at WARNING."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def flwr_logger():
    logger = logging.getLogger("flwr")
    level, filters = logger.level, list(logger.filters)
    seen = _Records()
    logger.addHandler(seen)
    yield logger, seen
    logger.removeHandler(seen)
    logger.setLevel(level)
    logger.filters[:] = filters


def test_banner_dropped_other_warnings_kept(flwr_logger) -> None:
    from flwr.supercore.logger import warn_deprecated_feature

    from fedqnn.simulation import _quiet_flower

    logger, seen = flwr_logger
    _quiet_flower()
    assert logger.level == logging.WARNING  # before the fix, Flower's import reset it to DEBUG
    warn_deprecated_feature("The `run_simulation` function is deprecated and will be removed")
    assert not any("DEPRECATED FEATURE" in line for line in seen.lines)
    warn_deprecated_feature("something else")  # control: other warnings still show
    assert any(line.startswith("DEPRECATED FEATURE: something else") for line in seen.lines)
    logger.info("an INFO line")
    assert "an INFO line" not in seen.lines


def test_fedqnn_says_what_starts(capsys) -> None:
    from fedqnn.simulation import _starting

    _starting(10)
    out = capsys.readouterr().out
    assert out.startswith("[fedqnn] starting Flower's Simulation Engine (Ray) with 10 virtual SuperNodes")
    assert "deprecated by Flower 1.42" in out and "docs/spine.md" in out


QFI = """
import warnings, torch
warnings.filterwarnings("error", message="`torch.jit.script` is deprecated")
{body}
"""


def _python(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", QFI.format(body=body)], capture_output=True, text=True,
                          timeout=120)


def test_the_server_qfi_raises_no_torch_deprecation() -> None:
    ok = _python("from fedqnn.qfi import quantum_fisher\n"
                 "quantum_fisher(torch.rand(2, 1, 3), torch.rand(1, 3, 3))")
    assert ok.returncode == 0, ok.stderr[-2000:]
    # control: what torch does underneath warns (a fresh process: it loads once per process)
    bare = _python("from torch.func import jacfwd\njacfwd(torch.sin)(torch.rand(3))")
    assert bare.returncode != 0 and "torch.jit.script` is deprecated" in bare.stderr
