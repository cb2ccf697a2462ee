"""A plugin as a user outside the repository writes it (the tests copy this file to a temporary
directory on ``sys.path``, so it is imported as a top-level module, not from the repo)."""

from __future__ import annotations

from typing import Any

from fedqnn.plugins import RoundPlugin

CALLS: list[str] = []  # hook names, in call order (in-process tests read it)


class Tally(RoundPlugin):
    """Counts accepted replies over the run and writes the running total into every row.

    The total crosses a kill only through ``state_dict``/``load_state_dict``: a resumed run
    writes the uninterrupted run's numbers only if the checkpoint carried it."""

    name = "tally"

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.accepted = 0
        self.rounds = 0

    def setup(self, run: Any) -> None:
        CALLS.append("setup")

    def on_resume(self, run: Any) -> None:
        CALLS.append("on_resume")

    def filter_eligible(self, state: Any, nodes: list[str]) -> list[str]:
        CALLS.append("filter_eligible")
        return nodes

    def round_start(self, state: Any) -> None:
        CALLS.append("round_start")
        state.broadcast["tally-round"] = state.round  # reaches every client's instruction

    def before_send(self, state: Any) -> None:
        CALLS.append("before_send")

    def after_replies(self, state: Any) -> None:
        CALLS.append("after_replies")

    def before_eval(self, state: Any, model: Any) -> None:
        CALLS.append("before_eval")

    def on_record(self, state: Any, row: dict[str, Any]) -> None:
        CALLS.append("on_record")
        self.accepted += len(state.ok)
        self.rounds += 1
        row[self.name] = {"accepted_total": self.accepted, "rounds": self.rounds}

    def round_end(self, state: Any, row: dict[str, Any]) -> None:
        CALLS.append("round_end")

    def run_end(self, run: Any, extra: dict[str, Any]) -> None:
        CALLS.append("run_end")
        extra[self.name] = {"accepted_total": self.accepted}

    def state_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rounds": self.rounds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accepted, self.rounds = int(state["accepted"]), int(state["rounds"])


class Forgetful(Tally):
    """Negative control: the same plugin with nothing checkpointed."""

    name = "forgetful"

    def state_dict(self) -> None:
        return None


class NotAPlugin:
    def __init__(self, cfg: dict[str, Any]) -> None:
        pass


def off(cfg: dict[str, Any]) -> None:
    """A factory that sits the run out."""
    return None
