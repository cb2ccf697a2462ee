"""A robust rule that can aggregate no round is refused before the run (exit 2, the rule and the
numbers); a run whose every round was skipped exits 1 with a clear line (issue 18.8)."""

from __future__ import annotations

import itertools
import re

import pytest

from fedqnn.config import ConfigError, build_config
from strategies.config import check_preconditions, round_shape
from strategies.errors import PreconditionError
from strategies.preconditions import RULES


def test_krum_on_four_clients_is_refused_naming_the_rule_and_the_numbers() -> None:
    with pytest.raises(ConfigError) as err:
        check_preconditions(build_config({"strategy": "krum", "clients": 4}))
    msg = str(err.value)
    assert msg.startswith("strategy: krum needs n >= 2f + 3 (n=4, f=1)")
    assert "clients=4" in msg and "byzantine_fraction=0.2" in msg and "use clients >= 5" in msg
    check_preconditions(build_config({"strategy": "krum", "clients": 5}))  # control: 5 >= 2 x 1 + 3


def test_no_client_count_helps_at_half_byzantine() -> None:
    with pytest.raises(ConfigError, match=r"no number of clients helps at byzantine_fraction=0.5"):
        check_preconditions(build_config({"strategy": "bulyan", "clients": 40, "byzantine_fraction": 0.5}))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_pre_run_check_refuses_exactly_what_every_round_would_skip(rule: str) -> None:
    """Over a grid of (clients, fraction_train, byzantine_fraction): the config check fails iff the
    Flower strategy's own per-round guard fails for a round where every selected node replied."""
    from strategies.registry import build_strategy

    refused = 0
    for clients, ft, bf in itertools.product((1, 2, 3, 4, 5, 7, 9, 13), (0.5, 1.0), (0.0, 0.1, 0.2, 0.34, 0.5)):
        cfg = build_config({"strategy": rule, "clients": clients, "fraction_train": ft,
                            "byzantine_fraction": bf, "min_replies": 1})
        n, f = round_shape(cfg)
        try:
            build_strategy(cfg)._precondition(n, f)
            guard = None
        except PreconditionError as exc:
            guard = str(exc)
        try:
            check_preconditions(cfg)
            pre = None
        except ConfigError as exc:
            pre = str(exc)
        assert (pre is None) == (guard is None), (clients, ft, bf, pre, guard)
        if guard:
            refused += 1
            assert pre.startswith(f"strategy: {guard}")
    assert refused > 0  # the grid reaches the failing side for every rule


def test_cli_exits_2_before_anything_starts(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import flwr.simulation

    from fedqnn.cli import main

    monkeypatch.setattr(flwr.simulation, "run_simulation", lambda **kw: pytest.fail("the runtime started"))
    assert main(["run", "--strategy", "krum", "--clients", "4"]) == 2
    assert "config error: strategy: krum needs n >= 2f + 3 (n=4, f=1)" in capsys.readouterr().err


def _run_on_local_grid(monkeypatch, tmp_path, **overrides):
    """``fedqnn run`` with the Simulation Engine replaced by the in-process grid (seconds, not a minute)."""
    import fedqnn.simulation
    from fedqnn.server_app import run_server
    from tests.faults.helpers import SMALL, LocalGrid

    def fake(cfg, validated=True, resume=False, overwrite=False):
        return run_server(LocalGrid(cfg["clients"]), cfg)

    monkeypatch.setattr(fedqnn.simulation, "run_simulation_from_config", fake)
    from fedqnn.cli import main

    sets = [f"{k}={v}" for k, v in {**SMALL, "rounds": 2, **overrides}.items() if k != "clients"]
    argv = ["run", "--clients", str(SMALL["clients"]), "--out", str(tmp_path / "run")]
    for item in sets:
        argv += ["--set", item]
    return main(argv)


def test_a_run_whose_every_round_was_skipped_exits_1(monkeypatch, tmp_path, capsys) -> None:
    assert _run_on_local_grid(monkeypatch, tmp_path, **{"faults.dropout": 1.0}) == 1
    captured = capsys.readouterr()
    assert "[fedqnn] FAILED: every round (2 of 2) was skipped, no update was aggregated: round 1: " \
           "0 valid replies < min_replies=2 (5 no-reply)" in captured.err
    assert "done:" not in captured.out


def test_a_run_that_aggregated_exits_0_with_rounded_numbers(monkeypatch, tmp_path, capsys) -> None:  # control
    assert _run_on_local_grid(monkeypatch, tmp_path) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("[fedqnn] done: 2 rounds, rel_l2 final ")
    numbers = re.findall(r"\d+\.\d+", line)
    assert numbers and all(len(x.replace(".", "").lstrip("0")) <= 4 for x in numbers), line
