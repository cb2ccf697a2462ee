"""The t-interval the experiments put on paired differences."""

from __future__ import annotations

import math

import pytest

from fedqnn.stats import t_interval


def test_t_interval_matches_the_textbook_value() -> None:
    m, lo, hi = t_interval([1.0, 2.0, 3.0])  # s = 1, n = 3, t_{2, 0.975} = 4.302653
    assert m == 2.0
    assert hi - m == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert m - lo == pytest.approx(hi - m)


def test_t_interval_edge_cases_and_errors() -> None:
    m, lo, hi = t_interval([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match="values"):
        t_interval([])
    with pytest.raises(ValueError, match="level"):
        t_interval([1.0, 2.0], level=1.5)
