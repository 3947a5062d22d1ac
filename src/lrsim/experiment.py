"""Running one experiment (a batch of replicas) on its substrate: the entry point that the CLI
and the scan workers share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lrsim.config import Experiment, Replica
from lrsim.errors import LrsimError


@dataclass
class Outcome:
    """Per replica: the summary record and (when observed) its trajectory Dataset."""

    summaries: list[dict[str, Any]]
    datasets: list[Any] = field(default_factory=list)


def finite_or_none(x: float) -> float | None:
    """A summary number for JSON: the float, or None where it is NaN or infinite."""
    x = float(x)
    return x if math.isfinite(x) else None


def run_experiment(exp: Experiment, reps: list[Replica] | None = None, *,
                   observe: bool = True, progress: bool = False) -> Outcome:
    """Train `exp`'s replicas on its substrate; record trajectories when `observe`.

    With `observe` and `[observe] enabled`, a `lrsim.analysis.observers.RateObserver` records
    the trajectory format (one `xarray.Dataset` per replica, in `Outcome.datasets`); with
    `observe` but `enabled = false`, each Dataset holds the final loss and accuracy only.
    Requests that do not fit the network (more units than a layer has) raise `ConfigError`
    before the first training step.
    """
    if exp.substrate == "rate":
        from lrsim.train import train

        observer = None
        if observe and exp.observe.enabled:
            from lrsim.analysis.observers import RateObserver

            observer = RateObserver(exp.observe)
        result = train(exp, reps, observers=[observer] if observer else None,
                       progress=progress)
        datasets: list[Any] = []
        if observer is not None:
            datasets = observer.datasets(result)
        elif observe:
            from lrsim.analysis.observers import final_datasets

            datasets = final_datasets(result)
        return Outcome(result.summaries(), datasets)
    if exp.substrate == "spiking":
        from lrsim.models.spiking.run import run_spiking

        return run_spiking(exp, reps, observe=observe, progress=progress)
    raise LrsimError(f"substrate '{exp.substrate}' is not available yet")
