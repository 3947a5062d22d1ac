"""Planning: runs that differ only in per-replica values (`seed`, `train.lr`,
`train.weight_decay`, `model.init_scale`) form a group; a group is cut into jobs of at most
`max_group` runs, and one job trains its runs as the K replicas of one batched
`lrsim.experiment.run_experiment` call."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from lrsim.config import Experiment, parse
from lrsim.errors import ConfigError
from lrsim.scan.expand import RunSpec, fmt

DEFAULT_MAX_GROUP = 32


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
                     f"{r.weight_decay:>9.3g}  {r.init_scale:>6.3g}  {fmt(r.params)}")
    if len(runs) > first:
        lines.append(f"  ... and {len(runs) - first} more")
    return "\n".join(lines)
