"""`lrsim.run` from Python: an experiment (file, dict or `Experiment`) with keyword overrides,
validated like the CLI's, trained in this process; the trajectories returned."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from lrsim.budget import check_memory
from lrsim.config import Experiment, parse, read
from lrsim.errors import ConfigError


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.replace("__", ".").split(".")
    if parts[0] == "scan" and len(parts) > 1:
        parts = ["scan", ".".join(parts[1:])]
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key}: '{'.'.join(parts[:i + 1])}' is a value, not a "
                              "section")
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def experiment_of(experiment: Any, overrides: dict[str, Any]) -> tuple[Experiment, str]:
    """The validated experiment and a name for messages."""
    if isinstance(experiment, Experiment):
        data, source = experiment.resolved(), experiment.name
    elif isinstance(experiment, dict):
        data, source = copy.deepcopy(experiment), "experiment"
    elif isinstance(experiment, str | Path):
        data, source = read(experiment), str(experiment)
    else:
        raise ConfigError(f"lrsim.run: give an experiment file, a dict or an Experiment, got "
                          f"{type(experiment).__name__}")
    for key, value in overrides.items():
        _set(data, key, value)
    return parse(data, source), source


def run(experiment: Any, *, progress: bool | None = None, **overrides: Any) -> list[Any]:
    """See `lrsim.run`."""
    from lrsim.experiment import run_experiment
    from lrsim.progress import mode

    exp, source = experiment_of(experiment, overrides)
    check_memory(exp, source)
    show = mode(progress) != "off"
    return list(run_experiment(exp, observe=True, progress=show).datasets)
