"""OR-Library generalised assignment problem (GAP) files (Beasley's gap1..gap12 format).

Format (whitespace separated): ``P``, then P times ``m n``, profits c[i][j] (m rows of n),
resource uses a[i][j] (m rows of n), capacities b[i] (m).  The gap1..12 sets are
maximisation problems: ``max sum_ij c_ij x_ij`` s.t. ``sum_j a_ij x_ij <= b_i``,
``sum_i x_ij = 1``.  We store them as minimisation of ``-c`` with ``sense="max"``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fedqnn.scheduling.problem import Problem

__all__ = ["KNOWN_OPTIMA", "read_gap", "read_gap_file", "known_optimum"]

# Proven optima (maximum total profit) of OR-Library gap1..gap12, instance order
# (source: benchmarks/gap/README.md in this repository, Beasley's OR-Library).
KNOWN_OPTIMA: dict[str, tuple[int, ...]] = {
    "gap1": (336, 327, 339, 341, 326),
    "gap2": (434, 436, 420, 419, 428),
    "gap3": (580, 564, 573, 570, 564),
    "gap4": (656, 644, 673, 647, 664),
    "gap5": (563, 558, 564, 568, 559),
    "gap6": (761, 759, 758, 752, 747),
    "gap7": (942, 949, 968, 945, 951),
    "gap8": (1133, 1134, 1141, 1117, 1127),
    "gap9": (709, 717, 712, 723, 706),
    "gap10": (958, 963, 960, 947, 947),
    "gap11": (1139, 1178, 1195, 1171, 1171),
    "gap12": (1451, 1449, 1433, 1447, 1446),
}


def known_optimum(stem: str, k: int, sense: str = "max") -> float | None:
    """The proven optimum of instance ``k`` of file ``stem`` (only for the max sense)."""
    vals = KNOWN_OPTIMA.get(stem)
    if vals is None or sense != "max" or not 0 <= k < len(vals):
        return None
    return float(vals[k])


def read_gap(text: str, sense: str = "max", name: str = "gap") -> list[Problem]:
    """Parse OR-Library GAP text into problems.  ``sense="max"`` (default) treats the
    c[i][j] as profits; ``sense="min"`` as costs."""
    if sense not in ("max", "min"):
        raise ValueError(f"sense: must be 'max' or 'min', got {sense!r}")
    try:
        tok = [int(t) for t in text.split()]
    except ValueError as exc:
        raise ValueError(f"gap file {name}: non-integer token ({exc})") from None
    if not tok:
        raise ValueError(f"gap file {name}: empty")
    pos = 1
    out: list[Problem] = []
    for k in range(tok[0]):
        if pos + 2 > len(tok):
            raise ValueError(f"gap file {name}: instance {k}: missing 'm n' header")
        m, n = tok[pos], tok[pos + 1]
        pos += 2
        need = 2 * m * n + m
        if m < 1 or n < 1 or pos + need > len(tok):
            raise ValueError(f"gap file {name}: instance {k}: truncated (m={m}, n={n})")
        c = np.array(tok[pos:pos + m * n], float).reshape(m, n)
        pos += m * n
        a = np.array(tok[pos:pos + m * n], float).reshape(m, n)
        pos += m * n
        b = np.array(tok[pos:pos + m], float)
        pos += m
        stem = re.sub(r"\.txt$", "", Path(name).name)
        cost = -c if sense == "max" else c
        out.append(Problem(cost=cost, resource=a, capacity=b, sense=sense,
                           name=f"{stem}-{k}", optimum=known_optimum(stem, k, sense),
                           meta={"file": stem, "instance": k}))
    if pos != len(tok):
        raise ValueError(f"gap file {name}: {len(tok) - pos} trailing tokens after {tok[0]} instances")
    return out


def read_gap_file(path: str | Path, sense: str = "max") -> list[Problem]:
    """Read every instance of an OR-Library GAP file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"gap: no such file {str(p)!r}")
    return read_gap(p.read_text(), sense=sense, name=p.name)
