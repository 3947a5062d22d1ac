"""Running one experiment (a batch of replicas) on its substrate: the entry point that the CLI
and the scan workers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lrsim.config import Experiment, Replica
from lrsim.errors import LrsimError


@dataclass
class Outcome:
    """Per replica: the summary record and (when observed) its trajectory Dataset."""

    summaries: list[dict[str, Any]]
    datasets: list[Any] = field(default_factory=list)


def run_experiment(exp: Experiment, reps: list[Replica] | None = None, *,
                   observe: bool = True, progress: bool = False) -> Outcome:
    """Train `exp`'s replicas on its substrate; record trajectories when `observe`."""
    if exp.substrate == "rate":
        from lrsim.train import train

        result = train(exp, reps, progress=progress)
        return Outcome(result.summaries())
    raise LrsimError(f"substrate '{exp.substrate}' is not available yet")
