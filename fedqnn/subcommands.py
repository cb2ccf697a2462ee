"""Lazy argparse subcommands: each subcommand's module is imported only when it is chosen.

``fedqnn --help`` lists the subcommands from a table of (module, one-line help) and imports none
of them; ``fedqnn run ...`` imports :mod:`fedqnn.cli_run` alone, just before argparse parses the
rest of the line (so ``fedqnn run --help`` shows every option). Standard library only.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["add_subcommands"]


class _LazySubParsersAction(argparse._SubParsersAction):  # argparse has no public hook for this
    """Subparsers whose arguments are added when the subcommand is chosen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.populate: dict[str, Callable[[argparse.ArgumentParser], None]] = {}

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Sequence[Any] | str | None, option_string: str | None = None) -> None:
        assert values is not None and not isinstance(values, str)
        fill = self.populate.pop(values[0], None)
        if fill is not None:
            fill(self._name_parser_map[values[0]])
        super().__call__(parser, namespace, values, option_string)


def _filler(module: str, missing_key: str, missing_text: str) -> Callable[[argparse.ArgumentParser], None]:
    def fill(sp: argparse.ArgumentParser) -> None:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                sp.set_defaults(**{missing_key: missing_text.format(missing=exc.name)})
                return
            raise
        mod.add_arguments(sp)

    return fill


def add_subcommands(parser: argparse.ArgumentParser, table: Mapping[str, tuple[str, str]], *, dest: str,
                    metavar: str, module_key: str, missing_key: str, missing_text: str) -> None:
    """Add one subparser per ``name -> (module, help)`` of ``table``; ``module.add_arguments(sp)``
    runs when ``name`` is chosen. The namespace gets ``module_key`` = the module; when the module
    (or a package above it) is not installed, ``missing_key`` = ``missing_text`` formatted with
    ``name`` and ``missing`` (the absent module) instead."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar, action=_LazySubParsersAction)
    assert isinstance(sub, _LazySubParsersAction)
    for name, (module, help_text) in table.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(**{module_key: module})
        sub.populate[name] = _filler(module, missing_key, missing_text.replace("{name}", name))
