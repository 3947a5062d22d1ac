"""Running one experiment (a batch of replicas) on its substrate: the entry point that the CLI
and the scan workers share."""

from __future__ import annotations

from typing import Any

from lrsim.config import Experiment, Replica
from lrsim.contract import Outcome
from lrsim.errors import LrsimError
from lrsim.models.rate.observer import RateObserver, final_datasets
from lrsim.models.rate.train import train


def run_experiment(exp: Experiment, reps: list[Replica] | None = None, *,
                   observe: bool = True, progress: bool = False) -> Outcome:
    """Train `exp`'s replicas on its substrate; record trajectories when `observe`.

    With `observe` and `[observe] enabled`, the substrate's observer records the trajectory
    format (one `xarray.Dataset` per replica, in `Outcome.datasets`; `lrsim.contract`); with
    `observe` but `enabled = false`, each Dataset holds the final loss and accuracy only.
    Requests that do not fit the network (more units than a layer has) raise `ConfigError`
    before the first training step.
    """
    if exp.substrate == "rate":
        observer = RateObserver(exp.observe) if observe and exp.observe.enabled else None
        result = train(exp, reps, observers=[observer] if observer else None,
                       progress=progress)
        datasets: list[Any] = []
        if observer is not None:
            datasets = observer.datasets(result)
        elif observe:
            datasets = final_datasets(result)
        return Outcome(result.summaries(), datasets)
    if exp.substrate == "spiking":  # Brian2 is imported only for spiking runs
        from lrsim.models.spiking.train import run_spiking

        return run_spiking(exp, reps, observe=observe, progress=progress)
    raise LrsimError(f"substrate '{exp.substrate}' is not available yet")
