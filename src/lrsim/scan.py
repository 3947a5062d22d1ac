"""Parameter scans: expand an experiment's `[scan]` table into runs, batch runs that differ only
in per-replica values into jobs, run the jobs on Dask, and keep a manifest so a rerun resumes.

The `[scan]` table maps dotted experiment keys to values:

    "rule.name"    = ["backprop", "feedback_alignment"]   # a list: a grid axis
    "seed"         = {range = 4}                          # range = N (0..N-1) or [a, b(, step)]
    "train.lr"     = {log_uniform = [1e-3, 1e-1]}         # sampled: lr = exp(U(log a, log b))
    "train.weight_decay" = {uniform = [0.0, 1e-3]}        # sampled: U(a, b)
    "model.activation"   = {choice = ["relu", "tanh"]}    # sampled: one of the list, uniformly
    samples = 8                                           # draws per grid point
    max_group = 32                                        # largest batch of replicas in one job

Runs = (grid points of every list axis except `seed`) x `samples` draws x seeds. The seeds are
the `seed` axis when scanned, else `seed .. seed + train.replicas - 1`; the draws of one grid
point are shared by its seeds (seeds repeat a configuration). Draw j of grid point g comes from
`numpy.random.default_rng([seed, 0x5CA9, g, j])`, so the expansion is a function of the file
alone, and raising `samples` keeps the earlier draws.

A run's id is `lrsim.config.run_id` of its resolved single-run configuration (the experiment
with that run's values set, `train.replicas = 1`, no `scan`), exactly as `lrsim.config.replicas`
computes it: the same run has the same id in `lrsim run` and in a scan, and resuming is a lookup.

Runs whose configurations are equal except for `seed`, `train.lr`, `train.weight_decay` and
`model.init_scale` form a group; a group is cut into jobs of at most `max_group` runs, and one
job trains its runs as the K replicas of one batched `lrsim.experiment.run_experiment` call.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import itertools
import json
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrsim.config import Experiment, Replica, load, parse, run_id
from lrsim.errors import ConfigError, LrsimError
from lrsim.outdir import RUN_FILE, claim, remove_own_temporaries, write_atomic

RESERVED = ("samples", "max_group")
DISTRIBUTIONS = ("log_uniform", "uniform", "choice")
PER_REPLICA = ("seed", "train.lr", "train.weight_decay", "model.init_scale")
DEFAULT_MAX_GROUP = 32
MANIFEST = "manifest.json"
EXPERIMENT_COPY = "experiment.toml"
LOCK = ".lrsim-scan.lock"
SUPERSEDED = "superseded"
_SAMPLING_STREAM = 0x5CA9
_SCANNABLE_OPEN = ("task", "rule")          # sections whose keys are registry hyperparameters
_NOT_SCANNABLE = ("scan", "train.replicas")


# --------------------------------------------------------------------------- the [scan] table


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

    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    distributions: tuple[Distribution, ...] = ()
    samples: int = 1
    max_group: int | None = None

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.axes] + [d.key for d in self.distributions]


def _check_key(key: str) -> None:
    """Refuse keys that name no field of the experiment (open sections take any name: the
    registry checks the hyperparameter when each run is validated)."""
    from pydantic import BaseModel

    where = f"[scan] key '{key}'"
    if key in _NOT_SCANNABLE:
        hint = "; scan 'seed' for more replicas" if key == "train.replicas" else ""
        raise ConfigError(f"{where} cannot be scanned{hint}")
    parts = key.split(".")
    fields = Experiment.model_fields
    if parts[0] not in fields:
        allowed = ", ".join(f for f in fields if f != "scan")
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


def _pair(key: str, kind: str, v: Any) -> tuple[float, float]:
    where = f"[scan] key '{key}': {kind}"
    if (not isinstance(v, list) or len(v) != 2 or any(isinstance(x, bool) for x in v)
            or not all(isinstance(x, int | float) for x in v)):
        raise ConfigError(f"{where} must be [low, high] (two numbers), got {v!r}")
    lo, hi = float(v[0]), float(v[1])
    if not lo < hi:
        raise ConfigError(f"{where} needs low < high, got {v!r}")
    if kind == "log_uniform" and lo <= 0:
        raise ConfigError(f"{where} needs 0 < low < high, got {v!r}")
    return lo, hi


def _range(key: str, v: Any) -> tuple[int, ...]:
    where = f"[scan] key '{key}': range"
    ints = [v] if isinstance(v, int) else v
    if (isinstance(v, bool) or not isinstance(ints, list) or not 1 <= len(ints) <= 3
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in ints)):
        raise ConfigError(f"{where} must be N (0..N-1) or [start, stop] or [start, stop, step] "
                          f"of integers, got {v!r}")
    values = tuple(range(*ints)) if isinstance(v, list) else tuple(range(v))
    if not values:
        raise ConfigError(f"{where} = {v!r} is empty")
    return values


def scan_spec(exp: Experiment) -> ScanSpec:
    """Parse and check `exp.scan` (None or empty: a scan of one point)."""
    table = dict(exp.scan or {})
    samples = table.pop("samples", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"[scan] key 'samples' must be an integer >= 1, got {samples!r}")
    max_group = table.pop("max_group", None)
    if max_group is not None and (isinstance(max_group, bool) or not isinstance(max_group, int)
                                  or max_group < 1):
        raise ConfigError(f"[scan] key 'max_group' must be an integer >= 1, got {max_group!r}")
    axes: list[tuple[str, tuple[Any, ...]]] = []
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
    return ScanSpec(tuple(axes), tuple(dists), samples, max_group)


# --------------------------------------------------------------------------- expansion


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


def expand(exp: Experiment, source: str = "experiment") -> list[RunSpec]:
    """The runs of `exp`'s `[scan]`: grid points x samples x seeds, in a fixed order (grid axes
    in file order, the last varying fastest; then draws; then seeds). Each run's configuration
    is validated like an experiment file; a bad one is refused naming the scanned values."""
    from lrsim.models.tasks import tasks
    from lrsim.rules import rules

    spec = scan_spec(exp)
    base = exp.resolved()
    base.pop("scan", None)
    grid_axes = [(k, v) for k, v in spec.axes if k != "seed"]
    seed_axis = dict(spec.axes).get("seed")
    seed_drawn = any(d.key == "seed" for d in spec.distributions)
    default_seeds = tuple(exp.seed + k for k in range(exp.train.replicas))
    points = list(itertools.product(*[v for _, v in grid_axes]))
    runs: list[RunSpec] = []
    seen: dict[str, int] = {}
    for g, point in enumerate(points):
        for j in range(spec.samples):
            rng = np.random.default_rng([exp.seed, _SAMPLING_STREAM, g, j])
            drawn = {d.key: d.draw(rng) for d in spec.distributions}
            seeds = (seed_axis if seed_axis is not None
                     else (drawn["seed"],) if seed_drawn else default_seeds)
            for seed in seeds:
                assign = {**dict(zip([k for k, _ in grid_axes], point)), **drawn}
                if seed_axis is not None or seed_drawn:
                    assign["seed"] = seed
                runs.append(_resolve_run(base, assign, seed, len(runs), source, rules, tasks))
                rid = runs[-1].run_id
                if rid in seen:
                    other = runs[seen[rid]]
                    raise ConfigError(
                        f"{source}: [scan] runs {other.index} ({_fmt(other.params)}) and "
                        f"{len(runs) - 1} ({_fmt(assign)}) are the same configuration "
                        f"(run id {rid}); remove the repeated value")
                seen[rid] = len(runs) - 1
    return runs


def _resolve_run(base: dict[str, Any], assign: dict[str, Any], seed: Any, index: int,
                 source: str, rules: Any, tasks: Any) -> RunSpec:
    data = copy.deepcopy(base)
    where = f"{source}: [scan] run {index} ({_fmt(assign)})"
    for sec, registry in (("rule", rules), ("task", tasks)):
        if f"{sec}.name" in assign and assign[f"{sec}.name"] != base[sec]["name"]:
            data[sec] = _switch_entry(data[sec], base[sec], registry, assign[f"{sec}.name"],
                                      where)
    for key, value in assign.items():
        _set(data, key, value)
    data["seed"] = seed
    data["train"]["replicas"] = 1
    one = parse(data, where)
    resolved = one.resolved()
    resolved.pop("scan", None)
    return RunSpec(index, run_id(resolved), dict(assign), one.seed, one.train.lr,
                   one.train.weight_decay, one.model.init_scale, _group_key(resolved), resolved)


def _fmt(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in params.items()) or "base"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, list) else str(v)


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """Runs of one group trained together: the group's configuration and the runs (K axis)."""

    index: int
    group: str
    runs: tuple[RunSpec, ...]

    def experiment(self, runs: list[RunSpec] | None = None) -> Experiment:
        """The batched experiment for `runs` (default: all): the first run's configuration with
        `train.replicas = K`; per-replica values travel in `replicas()`."""
        runs = list(runs or self.runs)
        data = copy.deepcopy(runs[0].config)
        data["train"]["replicas"] = len(runs)
        return parse(data, f"job {self.index}")


def plan_jobs(runs: list[RunSpec], max_group: int = DEFAULT_MAX_GROUP,
              min_jobs: int = 1) -> list[Job]:
    """Cut each group into ceil(n / max_group) near-equal jobs; then, while fewer than
    `min_jobs` jobs exist, halve the largest job (so every worker gets work)."""
    if max_group < 1:
        raise ConfigError(f"max group must be >= 1, got {max_group}")
    groups: dict[str, list[RunSpec]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    chunks: list[list[RunSpec]] = []
    for members in groups.values():
        parts = math.ceil(len(members) / max_group)
        size, extra = divmod(len(members), parts)
        at = 0
        for i in range(parts):
            n = size + (1 if i < extra else 0)
            chunks.append(members[at:at + n])
            at += n
    while len(chunks) < min_jobs:
        big = max(range(len(chunks)), key=lambda i: len(chunks[i]), default=None)
        if big is None or len(chunks[big]) < 2:
            break
        c = chunks.pop(big)
        h = len(c) // 2
        chunks[big:big] = [c[:h], c[h:]]
    return [Job(i, c[0].group, tuple(c)) for i, c in enumerate(chunks)]


def finished_runs(out: Path) -> set[str]:
    """Run ids whose files are complete in `out` (`lrsim.store.finished_runs`)."""
    from lrsim.store import finished_runs as finished

    return set(finished(out))


def _write(ds: Any, out: Path) -> Path:
    from lrsim.store import write_run

    return write_run(ds, out)


def _summary_dataset(summary: dict[str, Any], exp: Experiment, run: RunSpec) -> Any:
    """The run file when the run recorded no trajectory (observe disabled, or no observer):
    final loss and accuracy at the last step, with the contract's attributes."""
    from lrsim.analysis.observer import final_dataset
    from lrsim.rules import rules

    return final_dataset(exp, run.replica(), 0,
                         rule_family=rules.entry(exp.rule.name).info["family"],
                         status=summary["status"], diverged_step=summary.get("diverged_step"),
                         final_loss=summary.get("final_loss"),
                         test_accuracy=summary.get("test_accuracy"))


def _stamp(ds: Any, run: RunSpec) -> None:
    """The run's own identity on its Dataset (the batched experiment carries the first run's)."""
    ds.attrs.update({"run_id": run.run_id, "seed": int(run.seed), "lr": float(run.lr),
                     "weight_decay": float(run.weight_decay),
                     "init_scale": float(run.init_scale),
                     "config": json.dumps(run.config, sort_keys=True)})


def _record(run: RunSpec, status: str, error: str | None = None,
            attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    attrs = attrs or {}

    def num(x: Any) -> float | None:
        return None if x is None or not np.isfinite(float(x)) else float(x)

    return {"run_id": run.run_id, "status": status, "error": error,
            "final_loss": num(attrs.get("final_loss")),
            "test_accuracy": num(attrs.get("test_accuracy"))}


def _file_attrs(out: Path, rid: str) -> dict[str, Any]:
    import xarray as xr

    try:
        with xr.open_dataset(Path(out) / f"{rid}.nc") as ds:
            return dict(ds.attrs)
    except Exception:  # noqa: BLE001 - a file we cannot read still counts as finished
        return {}


def _done_record(out: Path, run: RunSpec) -> dict[str, Any]:
    attrs = _file_attrs(out, run.run_id)
    return _record(run, str(attrs.get("status", "ok")), None, attrs)


def run_job(job: Job, out: str) -> list[dict[str, Any]]:
    """Train a job's runs as one batch and write each run's Dataset to `out`.

    Runs whose files already exist (an earlier attempt of this job wrote them before its worker
    died) are not trained again. An exception is caught and returned as `failed` records with
    its message, so Dask retries only lost workers, never a job that raises.
    """
    import torch

    torch.set_num_threads(1)
    from lrsim.experiment import run_experiment

    outdir = Path(out)
    # files appear only by atomic rename, so an existing file is complete (and checking the
    # job's own runs keeps a job's start O(K), however large the store)
    done = {r.run_id for r in job.runs if (outdir / f"{r.run_id}.nc").is_file()}
    records = [_done_record(outdir, r) for r in job.runs if r.run_id in done]
    todo = [r for r in job.runs if r.run_id not in done]
    if not todo:
        return records
    try:
        exp = job.experiment(todo)
        outcome = run_experiment(exp, [r.replica() for r in todo], observe=True)
    except Exception as err:  # noqa: BLE001 - recorded per run, the scan goes on
        msg = f"{type(err).__name__}: {err}"
        return records + [_record(r, "failed", msg) for r in todo]
    datasets = list(outcome.datasets)
    for k, run in enumerate(todo):
        summary = outcome.summaries[k]
        try:
            ds = datasets[k] if len(datasets) == len(todo) else _summary_dataset(summary, exp, run)
            _stamp(ds, run)
            status = str(ds.attrs.get("status", summary["status"]))
            if status == "failed":
                records.append(_record(run, "failed", "the run reported status 'failed'",
                                       ds.attrs))
                continue
            _write(ds, outdir)
            records.append(_record(run, status, None, ds.attrs))
        except Exception as err:  # noqa: BLE001
            records.append(_record(run, "failed", f"{type(err).__name__}: {err}"))
    return records


# --------------------------------------------------------------------------- the scan folder


def experiment_digest(exp: Experiment) -> str:
    """What 'the same experiment' means for resuming: the resolved file, scan table included
    (comments and formatting do not count)."""
    return hashlib.sha1(json.dumps(exp.resolved(), sort_keys=True).encode()).hexdigest()


def _write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1))


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    with open(out / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LrsimError(f"another `lrsim scan` is writing to {out}; wait for it to finish "
                             "or use another --out directory") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prepare(out: Path, path: Path, exp: Experiment, runs: list[RunSpec],
             force: bool) -> dict[str, Any]:
    """Check that `out` holds this experiment's scan (or nothing), tidy half-written files,
    and return the previous manifest's entries by run id."""
    digest = experiment_digest(exp)
    manifest_path = out / MANIFEST
    previous: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}
        if old.get("experiment_digest") != digest and not force:
            raise LrsimError(
                f"{out} holds a scan of a different experiment (from "
                f"'{old.get('experiment', '?')}'); '{path}' has changed since. Use a new --out "
                f"directory, or --force to adopt the new file (files of runs no longer in the "
                f"scan move to {out / SUPERSEDED})")
        previous = {e["run_id"]: e for e in old.get("runs", [])
                    if old.get("experiment_digest") == digest}
    elif any(out.glob("*.nc")) and not force:
        raise LrsimError(f"{out} holds run files but no {MANIFEST}; it is not a scan folder "
                         "(use a new --out directory, or --force to adopt it)")
    # writes cut short by a crash (the lock says no writer is alive): lrsim's own temporary
    # names only, never a user's file
    remove_own_temporaries(out)
    ids = {r.run_id for r in runs}
    stale = [p for p in out.glob("*.nc") if p.stem not in ids and RUN_FILE.match(p.name)]
    if stale:
        (out / SUPERSEDED).mkdir(exist_ok=True)
        for p in stale:
            if not (out / SUPERSEDED / p.name).exists():
                shutil.move(str(p), out / SUPERSEDED / p.name)
    write_atomic(out / EXPERIMENT_COPY, path.read_bytes())
    return previous


@dataclass
class ScanSummary:
    """What a scan did: counts of runs finished now (ok / diverged / failed), runs skipped
    because an earlier invocation finished them, jobs submitted, and the failures."""

    out: Path
    total: int
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    skipped: int = 0
    jobs: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when no run failed, else 1 (diverged runs are results, not failures)."""
        return 1 if self.failed else 0

    def __str__(self) -> str:
        return (f"scan: {self.total} runs: {self.ok} ok, {self.diverged} diverged, "
                f"{self.failed} failed, {self.skipped} skipped (already done); {self.jobs} jobs "
                f"in {self.seconds:.1f} s; manifest {self.out / MANIFEST}")


class _Manifest:
    """The expanded scan with each run's status; rewritten atomically after every job."""

    def __init__(self, out: Path, path: Path, exp: Experiment, runs: list[RunSpec]):
        self.out, self.runs = out, runs
        self.head = {"experiment": str(path), "experiment_digest": experiment_digest(exp),
                     "lrsim_version": _version(), "total": len(runs)}
        self.entries = {r.run_id: {
            "run_id": r.run_id, "index": r.index, "group": r.group, "job": None,
            "params": r.params, "seed": r.seed, "lr": r.lr, "weight_decay": r.weight_decay,
            "init_scale": r.init_scale, "status": "pending", "error": None,
            "final_loss": None, "test_accuracy": None} for r in runs}

    def update(self, record: dict[str, Any], job: int | None = None) -> None:
        e = self.entries[record["run_id"]]
        e.update({k: record.get(k) for k in ("status", "error", "final_loss", "test_accuracy")})
        if job is not None:
            e["job"] = job

    def save(self) -> None:
        counts: dict[str, int] = {}
        for e in self.entries.values():
            counts[e["status"]] = counts.get(e["status"], 0) + 1
        _write_json(self.out / MANIFEST, {**self.head, "counts": counts,
                                          "runs": list(self.entries.values())})


def _version() -> str:
    from lrsim.version import __version__

    return __version__


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A Dask client: on `scheduler` (tcp://HOST:PORT, or a scheduler file) when given, else on
    an embedded LocalCluster of `workers` processes (default: cores), one thread each, on
    127.0.0.1, without dashboard."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = (Client(scheduler_file=scheduler, timeout="30s")
                      if Path(scheduler).is_file() else Client(scheduler, timeout="30s"))
        except (OSError, TimeoutError, ValueError) as err:
            raise LrsimError(f"--scheduler {scheduler}: cannot connect ({err})") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ConfigError(f"--workers must be >= 1, got {n}")
    with warnings.catch_warnings():
        # the scheduler's small HTTP endpoint (health, metrics; no dashboard) moves to a free
        # loopback port when 8787 is taken, e.g. by a second scan: nothing to warn about
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def run_scan(path: Path, out: Path, *, workers: int | None = None,
             scheduler: str | None = None, force: bool = False, progress: bool = True,
             max_group: int | None = None) -> ScanSummary:
    """Expand the experiment file at `path`, run the runs not yet in `out` on Dask (embedded
    LocalCluster, or `scheduler`), write one file per run and `out/manifest.json`.

    Resumes: runs whose files exist are skipped. Refuses an `out` that holds the scan of a
    different experiment unless `force`. A job that raises marks its runs `failed` (with the
    message) and the others go on; a worker that dies is replaced and its job rerun by Dask.
    """
    from distributed import as_completed

    path, out = Path(path), Path(out).resolve()
    start = time.perf_counter()
    exp = load(path)
    runs = expand(exp, str(path))
    group_cap = max_group or scan_spec(exp).max_group or DEFAULT_MAX_GROUP
    if group_cap < 1:
        raise ConfigError(f"--max-group must be >= 1, got {group_cap}")
    claim(out, "scan")  # refuses a folder holding files lrsim did not write
    summary = ScanSummary(out, len(runs))
    with _locked(out):
        previous = _prepare(out, path, exp, runs, force)
        manifest = _Manifest(out, path, exp, runs)
        done = finished_runs(out)
        for r in runs:
            if r.run_id in done:
                old = previous.get(r.run_id)
                record = (old if old and old["status"] in ("ok", "diverged")
                          else _done_record(out, r))
                manifest.update(record, old.get("job") if old else None)
                summary.skipped += 1
        pending = [r for r in runs if r.run_id not in done]
        manifest.save()
        if pending:
            with _client(workers, scheduler) as client:
                slots = sum(client.nthreads().values()) or 1
                jobs = plan_jobs(pending, group_cap, min_jobs=slots)
                summary.jobs = len(jobs)
                _execute(client, jobs, out, manifest, summary, progress, as_completed)
    summary.seconds = time.perf_counter() - start
    return summary


def _execute(client: Any, jobs: list[Job], out: Path, manifest: _Manifest,
             summary: ScanSummary, progress: bool, as_completed: Any) -> None:
    from tqdm import tqdm

    token = uuid.uuid4().hex[:8]
    futures = {client.submit(run_job, job, str(out), key=f"lrsim-job-{job.index}-{token}",
                             pure=False, retries=0): job for job in jobs}
    bar = tqdm(total=summary.total, initial=summary.skipped, unit="run", desc="scan",
               disable=not progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    remaining = sum(len(j.runs) for j in jobs)
    try:
        for fut in as_completed(futures):
            job = futures.pop(fut)
            try:
                records = fut.result()
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: every worker died
                msg = f"{type(err).__name__}: {err}"
                records = [_record(r, "failed", msg) for r in job.runs]
            for rec in records:
                manifest.update(rec, job.index)
                st = rec["status"]
                if st == "failed":
                    summary.failed += 1
                    summary.failures.append((rec["run_id"], rec["error"] or ""))
                elif st == "diverged":
                    summary.diverged += 1
                else:
                    summary.ok += 1
            manifest.save()
            fut.release()
            remaining -= len(job.runs)
            bar.update(len(records))
            bar.set_postfix_str(f"ok {summary.ok}, diverged {summary.diverged}, "
                                f"failed {summary.failed}, remaining {remaining}")
    finally:
        bar.close()
        for fut in futures:
            fut.cancel()


def describe(runs: list[RunSpec], jobs: list[Job], first: int = 10) -> str:
    """The `--dry-run` listing: counts, then the first runs with their scanned values."""
    groups = len({r.group for r in runs})
    lines = [f"{len(runs)} runs in {groups} groups -> {len(jobs)} jobs "
             f"(largest {max((len(j.runs) for j in jobs), default=0)} replicas)"]
    if runs:
        lines.append(f"{'#':>5}  {'run_id':<16}  {'seed':>5}  {'lr':>9}  {'wd':>9}  "
                     f"{'init':>6}  scanned")
    for r in runs[:first]:
        lines.append(f"{r.index:>5}  {r.run_id:<16}  {r.seed:>5}  {r.lr:>9.3g}  "
                     f"{r.weight_decay:>9.3g}  {r.init_scale:>6.3g}  {_fmt(r.params)}")
    if len(runs) > first:
        lines.append(f"  ... and {len(runs) - first} more")
    return "\n".join(lines)
