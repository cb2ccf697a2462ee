"""No single claim stops a round (issue 16): a node claiming a calibration at which its QPU
carries no information (p = 3/4, r = 1/2: shrink c = 0, sigma^2 infinite) or one outside the
physical ranges is rejected with a reason, and the round aggregates the others.

The control: the same zero stamp handed to the aggregation (what the claim did before) raises,
and the server would skip the round.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedqnn.server_app import run_server
from strategies import ceas_math
from strategies.ceas import _claimed_calibration
from tests.faults.helpers import LocalGrid, config, rows


@pytest.mark.parametrize(("metrics", "expected"), [
    ({}, (None, None)),  # no claim: the server's record stands
    ({"cal_p": 0.01, "cal_r": 0.02, "cal_shots": 256.0}, ("ok", None)),
    ({"cal_p": 0.75, "cal_r": 0.5, "cal_shots": 256.0}, ("ok", None)),  # physical; useless is decided later
    ({"cal_p": 0.01, "cal_r": 7.0, "cal_shots": 256.0}, (None, "claim:invalid")),
    ({"cal_p": -0.1, "cal_r": 0.0, "cal_shots": 256.0}, (None, "claim:invalid")),
    ({"cal_p": 0.01, "cal_r": 0.0, "cal_shots": float("nan")}, (None, "claim:invalid")),
    ({"cal_p": 0.01}, (None, "claim:invalid")),  # a partial claim is not a claim of anything
])
def test_claims_are_parsed_or_refused_with_a_reason(metrics: dict, expected: tuple) -> None:
    cal, why = _claimed_calibration(metrics)
    assert (None if cal is None else "ok", why) == expected


@pytest.mark.parametrize(("attack", "reason"), [("useless", "claim:useless"), ("invalid", "claim:invalid"),
                                               ("malformed", "malformed:cal_shots")])  # the validator's
def test_an_absurd_claim_rejects_its_node_and_the_round_goes_on(tmp_path: Path, attack: str, reason: str) -> None:
    cfg = config(tmp_path, rounds=2, attack=f"tests.ceas.absurd_claims:{attack}", byzantine_fraction=0.2)
    summary = run_server(LocalGrid(cfg["clients"]), cfg)
    got = rows(tmp_path)
    assert summary["rounds_skipped"] == 0 and all("skipped" not in r for r in got)
    assert all(r["train_loss"] is not None for r in got)  # every round aggregated
    byz = [n for r in got for x in r["rejected"] if x["reason"] == reason for n in [x["node"]]]
    assert len(byz) == 2 and len(set(byz)) == 1  # the one Byzantine node, both rounds
    assert all(byz[0] not in r["weights"] for r in got)
    assert all(x["node"] == byz[0] for r in got for x in r["rejected"])  # no honest node paid for it


def test_control_a_zero_stamp_in_the_aggregation_stops_the_round() -> None:
    x = np.random.default_rng(0).normal(size=(5, 8))
    stamps = np.array([1.0, 1.0, 1.0, 1.0, 0.0])  # the stamp a c = 0 claim gives
    with pytest.raises(ceas_math.PreconditionError, match="stamps must be finite and > 0"):
        ceas_math.robust_fidelity_aggregate(x, stamps, outlier="stamp", f=1)
