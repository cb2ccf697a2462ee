"""fedqnn: federated learning of quantum neural operators on Flower.

``fedqnn.run(config)`` does what ``fedqnn run`` does and returns the run's summary.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["run", "resume", "__version__"]


def run(*configs: dict[str, Any] | None, overwrite: bool = False) -> dict[str, Any]:
    """Run a federated simulation as ``fedqnn run`` does and return its summary.

    ``configs`` are override layers, lowest first (flat dotted keys or nested tables) over the
    built-in defaults; see :func:`fedqnn.simulation.run_simulation_from_config`. An ``out`` that
    already holds a run is refused unless ``overwrite`` (or use :func:`resume`).
    """
    from fedqnn.simulation import run_simulation_from_config

    return run_simulation_from_config(*(configs or ({},)), overwrite=overwrite)


def resume(out: str, rounds: int | None = None) -> dict[str, Any]:
    """Continue the run in ``out`` from its last checkpoint, as ``fedqnn run --resume out
    [--rounds R]`` does (``rounds`` is the new total); returns the summary."""
    from fedqnn.simulation import resume_simulation

    return resume_simulation(out, rounds)
