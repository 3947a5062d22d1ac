"""Expansion: the runs of a scan, each a resolved single-run configuration with its id.

Runs = (grid points of every list axis except `seed`) x `samples` draws x seeds. The seeds are
the `seed` axis when scanned, else `seed .. seed + train.replicas - 1`; the draws of one grid
point are shared by its seeds (seeds repeat a configuration). Draw j of grid point g comes from
`numpy.random.default_rng([seed, 0x5CA9, g, j])`, so the expansion is a function of the file
alone, and raising `samples` keeps the earlier draws.

A run's id is `lrsim.config.run_id` of its resolved single-run configuration (the experiment
with that run's values set, `train.replicas = 1`, no `scan`, no `cluster`), exactly as
`lrsim.config.replicas` computes it: the same run has the same id in `lrsim run` and in a scan,
and resuming is a lookup.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrsim.config import Experiment, Replica, parse, run_config, run_id
from lrsim.errors import ConfigError
from lrsim.progress import Progress
from lrsim.scan.table import ScanSpec, run_count, scan_spec

PER_REPLICA = ("seed", "train.lr", "train.weight_decay", "model.init_scale")
_SAMPLING_STREAM = 0x5CA9
PROGRESS_FROM = 2000  # runs; expansion validates ~1 ms per run


@dataclass(frozen=True)
class RunSpec:
    """One run of a scan: its id, the scanned values that define it, its per-replica values,
    its group (runs of one group can share a batched job) and its resolved configuration."""

    index: int
    run_id: str
    params: dict[str, Any]
    seed: int
    lr: float
    weight_decay: float
    init_scale: float
    group: str
    config: dict[str, Any] = field(repr=False)

    def replica(self) -> Replica:
        return Replica(self.seed, self.lr, self.weight_decay, self.init_scale, self.run_id)


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for p in parents:
        if node.get(p) is None:
            node[p] = {}
        node = node[p]
    node[last] = copy.deepcopy(value)


def _switch_entry(section: dict[str, Any], base: dict[str, Any], registry: Any,
                  name: Any, where: str) -> dict[str, Any]:
    """A section (rule or task) for another registered entry: keep the base section's
    hyperparameters that the new entry declares and that the user set (values other than the
    base entry's defaults); the new entry's defaults fill the rest."""
    if not isinstance(name, str):
        raise ConfigError(f"{where}: name must be a string, got {name!r}")
    try:
        new = registry.entry(name)
        old = registry.entry(base["name"])
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    out = {"name": name}
    for k, v in base.items():
        if k == "name" or k not in new.params:
            continue
        if k not in old.params or v != old.params[k].default:
            out[k] = v
    return out


def _group_key(resolved: dict[str, Any]) -> str:
    shared = copy.deepcopy(resolved)
    shared.pop("seed", None)
    for key in PER_REPLICA[1:]:
        sec, name = key.split(".")
        shared[sec].pop(name, None)
    return run_id(shared)[:12]


def _assignments(exp: Experiment, spec: ScanSpec) -> Iterator[tuple[dict[str, Any], Any]]:
    """(scanned values, seed) of every run, in the scan's order."""
    grid_axes = [(k, v) for k, v in spec.axes if k != "seed"]
    keys = [k for k, _ in grid_axes]
    seed_axis = dict(spec.axes).get("seed")
    seed_drawn = any(d.key == "seed" for d in spec.distributions)
    default_seeds = tuple(exp.seed + k for k in range(exp.train.replicas))
    for g, point in enumerate(itertools.product(*[v for _, v in grid_axes])):
        for j in range(spec.samples):
            rng = np.random.default_rng([exp.seed, _SAMPLING_STREAM, g, j])
            drawn = {d.key: d.draw(rng) for d in spec.distributions}
            seeds = (seed_axis if seed_axis is not None
                     else (drawn["seed"],) if seed_drawn else default_seeds)
            for seed in seeds:
                assign = {**dict(zip(keys, point)), **drawn}
                if seed_axis is not None or seed_drawn:
                    assign["seed"] = seed
                yield assign, seed


def expand(exp: Experiment, source: str = "experiment") -> list[RunSpec]:
    """The runs of `exp`'s `[scan]`: grid points x samples x seeds, in a fixed order (grid axes
    in file order, the last varying fastest; then draws; then seeds). Each run's configuration
    is validated like an experiment file; a bad one is refused naming the scanned values.
    Progress is shown from `PROGRESS_FROM` runs on."""
    from lrsim.models.tasks import tasks
    from lrsim.rules import rules

    spec = scan_spec(exp)
    base = run_config(exp)
    total = run_count(exp, spec)
    runs: list[RunSpec] = []
    seen: dict[str, int] = {}
    with Progress(total, "expand", "run", enabled=None if total >= PROGRESS_FROM else False,
                  leave=False) as bar:
        for assign, seed in _assignments(exp, spec):
            run = _resolve_run(base, assign, seed, len(runs), source, rules, tasks)
            if run.run_id in seen:
                other = runs[seen[run.run_id]]
                raise ConfigError(
                    f"{source}: [scan] runs {other.index} ({fmt(other.params)}) and "
                    f"{run.index} ({fmt(assign)}) are the same configuration "
                    f"(run id {run.run_id}); remove the repeated value")
            seen[run.run_id] = run.index
            runs.append(run)
            bar.update(1)
    return runs


def _resolve_run(base: dict[str, Any], assign: dict[str, Any], seed: Any, index: int,
                 source: str, rules: Any, tasks: Any) -> RunSpec:
    data = copy.deepcopy(base)
    where = f"{source}: [scan] run {index} ({fmt(assign)})"
    for sec, registry in (("rule", rules), ("task", tasks)):
        if f"{sec}.name" in assign and assign[f"{sec}.name"] != base[sec]["name"]:
            data[sec] = _switch_entry(data[sec], base[sec], registry, assign[f"{sec}.name"],
                                      where)
    for key, value in assign.items():
        _set(data, key, value)
    data["seed"] = seed
    data["train"]["replicas"] = 1
    one = parse(data, where)
    resolved = run_config(one)
    return RunSpec(index, run_id(resolved), dict(assign), one.seed, one.train.lr,
                   one.train.weight_decay, one.model.init_scale, _group_key(resolved), resolved)


def fmt(params: dict[str, Any]) -> str:
    """Scanned values as `key=value, ...` (floats to 4 significant digits)."""
    return ", ".join(f"{k}={_short(v)}" for k, v in params.items()) or "base"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, list) else str(v)
