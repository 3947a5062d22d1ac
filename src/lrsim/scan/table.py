"""The `[scan]` table: grid axes, sampled keys, draws per grid point, and the run count.

    "rule.name"    = ["backprop", "feedback_alignment"]   # a list: a grid axis
    "seed"         = {range = 4}                          # range = N (0..N-1) or [a, b(, step)]
    "train.lr"     = {log_uniform = [1e-3, 1e-1]}         # sampled: lr = exp(U(log a, log b))
    "train.weight_decay" = {uniform = [0.0, 1e-3]}        # sampled: U(a, b)
    "model.activation"   = {choice = ["relu", "tanh"]}    # sampled: one of the list, uniformly
    samples = 8                                           # draws per grid point
    max_group = 32                                        # largest batch of replicas in one job

`scan_spec` parses and checks the table without expanding it; `run_count` says how many runs
it makes (a product of lengths, computed before anything is built, so a scan of 10^9 runs is
refused at once rather than expanded).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from lrsim.config import Experiment
from lrsim.errors import ConfigError

RESERVED = ("samples", "max_group")
DISTRIBUTIONS = ("log_uniform", "uniform", "choice")
MAX_RUNS = 100_000  # runs in one scan folder (expansion validates each run: ~1 ms per run)
_SCANNABLE_OPEN = ("task", "rule")          # sections whose keys are registry hyperparameters
_NOT_SCANNABLE = ("scan", "cluster", "train.replicas")


@dataclass(frozen=True)
class Distribution:
    """A sampled key: `kind` is log_uniform / uniform (args = (low, high)) or choice (args =
    the values)."""

    key: str
    kind: str
    args: tuple[Any, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        """One value: log_uniform exp(U(log a, log b)); uniform U(a, b); choice uniform pick."""
        if self.kind == "log_uniform":
            lo, hi = self.args
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if self.kind == "uniform":
            lo, hi = self.args
            return float(rng.uniform(lo, hi))
        return copy.deepcopy(self.args[int(rng.integers(len(self.args)))])


@dataclass(frozen=True)
class ScanSpec:
    """The parsed `[scan]` table: grid axes (in file order), sampled keys, draws per point."""

    axes: tuple[tuple[str, range | tuple[Any, ...]], ...] = ()
    distributions: tuple[Distribution, ...] = ()
    samples: int = 1
    max_group: int | None = None

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.axes] + [d.key for d in self.distributions]


def _check_key(key: str) -> None:
    """Refuse keys that name no field of the experiment (open sections take any name: the
    registry checks the hyperparameter when each run is validated)."""
    where = f"[scan] key '{key}'"
    if key in _NOT_SCANNABLE or key.split(".")[0] in ("scan", "cluster"):
        hint = "; scan 'seed' for more replicas" if key == "train.replicas" else ""
        raise ConfigError(f"{where} cannot be scanned{hint}")
    parts = key.split(".")
    fields = Experiment.model_fields
    if parts[0] not in fields:
        allowed = ", ".join(f for f in fields if f not in ("scan", "cluster"))
        raise ConfigError(f"{where}: unknown section or key '{parts[0]}'; allowed: {allowed} "
                          f"(or {', '.join(RESERVED)})")
    ann = fields[parts[0]].annotation
    if parts[0] in _SCANNABLE_OPEN or parts[0] == "spiking":
        if len(parts) < 2 or not all(parts[1:]):
            raise ConfigError(f"{where}: name a key inside [{parts[0]}], e.g. '{parts[0]}.name'")
        return
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        if len(parts) != 2 or parts[1] not in ann.model_fields:
            allowed = ", ".join(f"{parts[0]}.{f}" for f in ann.model_fields
                                if f"{parts[0]}.{f}" not in _NOT_SCANNABLE)
            raise ConfigError(f"{where}: unknown key; allowed in [{parts[0]}]: {allowed}")
        return
    if len(parts) != 1:
        raise ConfigError(f"{where}: '{parts[0]}' is a top-level value, not a section")


def _number(x: Any) -> bool:
    return (isinstance(x, int | float) and not isinstance(x, bool)
            and math.isfinite(float(x)))


def _pair(key: str, kind: str, v: Any) -> tuple[float, float]:
    where = f"[scan] key '{key}': {kind}"
    if not isinstance(v, list) or len(v) != 2 or not all(_number(x) for x in v):
        raise ConfigError(f"{where} must be [low, high] (two finite numbers), got {v!r}")
    lo, hi = float(v[0]), float(v[1])
    if not lo < hi:
        raise ConfigError(f"{where} needs low < high, got {v!r}")
    if kind == "log_uniform" and lo <= 0:
        raise ConfigError(f"{where} needs 0 < low < high, got {v!r}")
    return lo, hi


def _range(key: str, v: Any) -> range:
    """The values of `{range = ...}` as a lazy `range` (its length is known without building
    it)."""
    where = f"[scan] key '{key}': range"
    ints = [v] if isinstance(v, int) else v
    if (isinstance(v, bool) or not isinstance(ints, list) or not 1 <= len(ints) <= 3
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in ints)):
        raise ConfigError(f"{where} must be N (0..N-1) or [start, stop] or [start, stop, step] "
                          f"of integers, got {v!r}")
    if isinstance(v, list) and len(ints) == 3 and ints[2] == 0:
        raise ConfigError(f"{where} step must not be 0, got {v!r}")
    values = range(*ints) if isinstance(v, list) else range(v)
    if not values:
        raise ConfigError(f"{where} = {v!r} is empty")
    return values


def _positive_int(table: dict[str, Any], key: str, default: int | None) -> int | None:
    value = table.pop(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ConfigError(f"[scan] key '{key}' must be an integer >= 1, got {value!r}")
    return value


def scan_spec(exp: Experiment) -> ScanSpec:
    """Parse and check `exp.scan` (None or empty: a scan of one point)."""
    table = dict(exp.scan or {})
    samples = _positive_int(table, "samples", 1)
    max_group = _positive_int(table, "max_group", None)
    axes: list[tuple[str, range | tuple[Any, ...]]] = []
    dists: list[Distribution] = []
    for key, value in table.items():
        _check_key(key)
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"[scan] key '{key}': the list of values is empty")
            axes.append((key, tuple(value)))
        elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in (
                "range", *DISTRIBUTIONS):
            kind, arg = next(iter(value.items()))
            if kind == "range":
                axes.append((key, _range(key, arg)))
            elif kind == "choice":
                if not isinstance(arg, list) or not arg:
                    raise ConfigError(f"[scan] key '{key}': choice must be a non-empty list, "
                                      f"got {arg!r}")
                dists.append(Distribution(key, kind, tuple(arg)))
            else:
                dists.append(Distribution(key, kind, _pair(key, kind, arg)))
        else:
            raise ConfigError(f"[scan] key '{key}' must be a list of values (a grid axis) or a "
                              f"table with one of range, {', '.join(DISTRIBUTIONS)}; "
                              f"got {value!r}")
    if samples > 1 and not dists:
        raise ConfigError(f"[scan] samples = {samples} needs a sampled key (log_uniform, "
                          "uniform or choice); with grid axes only every draw would repeat")
    if "seed" in [k for k, _ in axes] + [d.key for d in dists] and exp.train.replicas != 1:
        raise ConfigError(f"[scan] scans 'seed' and [train] replicas = {exp.train.replicas}; "
                          "set replicas = 1 (each scanned seed is one replica)")
    spec = ScanSpec(tuple(axes), tuple(dists), samples, max_group)
    n = run_count(exp, spec)
    if n > MAX_RUNS:
        raise ConfigError(f"[scan] expands to {n:,} runs; one scan holds at most {MAX_RUNS:,} "
                          f"(split it into several experiment files and --out folders)")
    return spec


def run_count(exp: Experiment, spec: ScanSpec) -> int:
    """Runs of the scan: grid points x samples x seeds, computed from the lengths alone."""
    grid = math.prod(len(v) for k, v in spec.axes if k != "seed")
    seeds = dict(spec.axes).get("seed")
    per_draw = (len(seeds) if seeds is not None
                else 1 if any(d.key == "seed" for d in spec.distributions)
                else exp.train.replicas)
    return grid * spec.samples * per_draw
