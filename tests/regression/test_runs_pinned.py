"""Every seeded scenario of :mod:`tests.regression.scenarios` reproduces its recorded outputs exactly.

The recording was made before the issue-14 redesign; a mismatch means the redesign changed
behaviour (which belongs to another commit, with the fixture re-recorded there).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.regression.scenarios import (
    FIXTURE,
    RESUMED,
    SCENARIOS,
    run_matrix_cell,
    run_resumed,
    run_scenario,
)

RECORDED: dict[str, Any] = json.loads(FIXTURE.read_text())


def _first_difference(got: Any, want: Any, path: str = "") -> str | None:
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            if k not in got or k not in want:
                return f"{path}.{k}: {'missing' if k not in got else 'unexpected'}"
            if (d := _first_difference(got[k], want[k], f"{path}.{k}")) is not None:
                return d
        return None
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return f"{path}: {len(got)} items, recorded {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            if (d := _first_difference(g, w, f"{path}[{i}]")) is not None:
                return d
        return None
    return None if got == want and type(got) is type(want) else f"{path}: {got!r} != recorded {want!r}"


def _check(got: Any, name: str) -> None:
    want = RECORDED[name]
    diff = _first_difference(json.loads(json.dumps(got)), want)
    assert diff is None, f"{name}{diff}"


def test_the_fixture_covers_every_scenario() -> None:
    assert set(SCENARIOS) | {"resumed", "matrix"} == set(RECORDED)
    assert RECORDED["resumed"] == RECORDED[RESUMED]  # a resumed run equals the uninterrupted one


def test_the_comparison_sees_a_one_ulp_change() -> None:  # negative control of _check
    import math

    bad = json.loads(json.dumps(RECORDED["default"]))
    loss = bad["rows"][0]["eval"]["loss"]
    bad["rows"][0]["eval"]["loss"] = math.nextafter(loss, math.inf)
    with pytest.raises(AssertionError, match=r"rows\[0\]\.eval\.loss"):
        _check(bad, "default")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_outputs_are_bit_identical(name: str, tmp_path) -> None:
    _check(run_scenario(name, tmp_path), name)


def test_resume_after_a_cut_is_bit_identical(tmp_path) -> None:
    _check(run_resumed(tmp_path), "resumed")


@pytest.mark.slow
def test_attack_matrix_cell_is_bit_identical(tmp_path) -> None:
    _check(run_matrix_cell(tmp_path), "matrix")
