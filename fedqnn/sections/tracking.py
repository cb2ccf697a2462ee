"""The ``tracking`` section: experiment trackers as round plugins (:mod:`fedqnn.tracking`).

``tracking = "tensorboard"``, ``"mlflow"`` or both joined by ``+`` (``"none"``, the default, is
left out of the built config, as is an empty ``tracking.uri``, so configs without trackers hash
as before); ``tracking.uri`` is MLflow's tracking URI (default: a ``file:`` store under the run
directory, ``DIR/mlruns``).
"""

from __future__ import annotations

from typing import Any

from fedqnn.schema import Field, Section, field

__all__ = ["FIELDS", "SECTION", "TRACKERS", "trackers_of"]

TRACKERS = ("tensorboard", "mlflow")


def trackers_of(kind: str) -> list[str]:
    """``"tensorboard+mlflow"`` -> ``["tensorboard", "mlflow"]``; ``"none"`` or ``""`` -> ``[]``."""
    parts = [p.strip() for p in str(kind).split("+") if p.strip()]
    return [] if parts in ([], ["none"]) else parts


def _kind(value: Any) -> str | None:
    parts = [p.strip() for p in str(value).split("+") if p.strip()]
    if parts == ["none"] or not parts:
        return None
    bad = [p for p in parts if p not in TRACKERS]
    if bad or len(set(parts)) != len(parts):
        return f"expected none, {', '.join(TRACKERS)} or several joined by '+'; got {value!r}"
    return None


FIELDS: dict[str, Field] = {
    "tracking.kind": field("", str, "experiment trackers: none, tensorboard, mlflow, or several joined by '+' "
                           "(docs/workflow.md)", check=_kind, omit_empty=True),
    "tracking.uri": field("", str, "MLflow tracking URI (default file:DIR/mlruns)", omit_empty=True),
}


def check(cfg: dict[str, Any]) -> None:
    """``none`` means no tracker: the key is dropped like an empty one."""
    section = cfg.get("tracking")
    if section is None:
        return
    if "kind" in section:
        section["kind"] = "+".join(trackers_of(section["kind"]))
        if not section["kind"]:
            del section["kind"]
    if not section:
        del cfg["tracking"]


SECTION = Section(FIELDS, check, {"tracking": "tracking.kind"})
