"""No import cycles among the modules of fedqnn, strategies and clients.

The graph is grimp's (what ``lint-imports`` checks): every import statement, function-level ones
included, without the ``TYPE_CHECKING`` ones (not runtime imports). A cycle is a strongly
connected component of more than one module.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the test extra)")


def import_cycles(*packages: str) -> list[list[str]]:
    """The strongly connected components (> 1 module) of the import graph of ``packages``."""
    graph = grimp.build_graph(*packages, cache_dir=None, exclude_type_checking_imports=True)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):  # Tarjan's algorithm, iterative
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def test_fedqnn_strategies_clients_have_no_import_cycle() -> None:
    assert import_cycles("fedqnn", "strategies", "clients") == []


def test_negative_control_a_synthetic_cycle_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cyclepkg_x"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg_x import b\n")
    (pkg / "b.py").write_text(textwrap.dedent("""
        def late():
            from cyclepkg_x.a import late as _  # a function-level import closes the cycle too
    """))
    (pkg / "c.py").write_text("import cyclepkg_x.a\n")  # imports into the cycle, not part of it
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclepkg_x") == [["cyclepkg_x.a", "cyclepkg_x.b"]]
