"""Sibling networks, and what the within-store splits keep on one side (`--split-by`).

Networks of one condition (architecture, task, activation, substrate) and one seed start from
the same initial weights and see the same minibatches in the same order, whatever their rule,
optimizer and learning rate: they are siblings. Splits grouped by run put some siblings of a
test network in training, among them, in a store that scans learning rates, siblings of the
same class; those tell the classifier the class of a test network through what the seed
shares, which no new network would, and the cross-validated accuracy counts it. Splits grouped
by sibling group (run -> "seed=S, architecture=A, ...") keep every sibling of a test network
out of training.

`split_units(ds, labels, split_by)` decides: "siblings" needs a per-run `seed`, at least
`MIN_SIBLING_GROUPS` groups and every class in at least 2 of them (otherwise a class could
never be tested, or never trained on); "auto" (the default) groups by siblings where that
holds and the groups are coarser than runs, else by run, and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from lrsim.analysis.defaults import MIN_SIBLING_GROUPS, SPLIT_BY
from lrsim.analysis.generalisation import GENERALISATION_KEYS
from lrsim.analysis.labels import per_run_keys
from lrsim.analysis.splits import groups_per_label
from lrsim.errors import ConfigError

SIBLING_KEYS = ("seed", *GENERALISATION_KEYS)


@dataclass
class SplitUnits:
    """What the within-store splits keep on one side: `by` "siblings" (with `blocks`, run id ->
    sibling group) or "run" (`blocks` None); `description` says which and why, in words the
    report and the summary use."""

    by: str
    blocks: dict[str, str] | None
    description: str


def sibling_keys(ds: xr.Dataset) -> list[str]:
    """The `SIBLING_KEYS` the store holds per run (what names a sibling group)."""
    held = per_run_keys(ds)
    return [k for k in SIBLING_KEYS if k in held]


def sibling_groups(ds: xr.Dataset) -> dict[str, str]:
    """{run id: its sibling group}, the group named by the `sibling_keys` of the store, e.g.
    "seed=3, architecture=128-128, task=digits"."""
    held = sibling_keys(ds)
    values = {k: np.asarray(ds[k].values).astype(str) for k in held}
    runs = np.asarray(ds["run"].values).astype(str)
    return {r: ", ".join(f"{k}={values[k][i]}" for k in held) for i, r in enumerate(runs)}


def check_split_by(split_by: str) -> None:
    """ConfigError (one line) unless `split_by` is one of `SPLIT_BY`."""
    if split_by not in SPLIT_BY:
        raise ConfigError(f"--split-by must be one of {', '.join(SPLIT_BY)} (got {split_by!r})")


def split_units(ds: xr.Dataset, labels: Sequence[str], split_by: str) -> SplitUnits:
    """How the within-store splits group `ds`'s runs (`labels`: each run's class, in store
    order) for `split_by` ("auto", "siblings", "run"); ConfigError (one line) when "siblings"
    is asked for and the store cannot give it."""
    check_split_by(split_by)
    if split_by == "run":
        return SplitUnits("run", None, "grouped by run (asked for: --split-by run)")
    if "seed" not in per_run_keys(ds):
        problem, blocks = "the store has no per-run seed", None
    else:
        blocks = sibling_groups(ds)
        problem = sibling_problem(list(blocks.values()), labels)
    has_siblings = blocks is not None and len(set(blocks.values())) < len(blocks)
    if blocks is not None and problem is None:
        if split_by == "siblings" or has_siblings:
            return SplitUnits("siblings", blocks,
                              f"grouped by sibling networks: the {len(set(blocks.values()))} "
                              f"groups of runs that share {', '.join(sibling_keys(ds))} (same "
                              f"initial weights and minibatches) fall on one side")
        problem = "every run has its own seed and condition (no siblings)"
    if split_by == "siblings":
        raise ConfigError(f"--split-by siblings: {problem}; use --split-by run")
    if has_siblings:
        problem += ("; a test network's siblings (same seed and condition) can be in "
                    "training, which flatters the score")
    return SplitUnits("run", None, f"grouped by run ({problem})")


def sibling_problem(groups: Sequence[str], labels: Sequence[str]) -> str | None:
    """Why runs (their sibling `groups` and `labels`, one each) cannot be split by sibling
    group, or None: fewer than `MIN_SIBLING_GROUPS` groups, or a class in a single group."""
    n_groups = len(set(groups))
    if n_groups < MIN_SIBLING_GROUPS:
        return f"only {n_groups} sibling group(s), fewer than {MIN_SIBLING_GROUPS}"
    lone = sorted(str(c) for c, g in groups_per_label(groups, labels).items() if len(g) < 2)
    if lone:
        return (f"class(es) {', '.join(lone)} in a single sibling group (they could never be "
                f"both trained on and tested)")
    return None


def blocks_for(blocks: dict[str, str] | None, runs: Sequence[str], labels: Sequence[str]
               ) -> dict[str, str] | None:
    """`blocks` restricted to `runs` (with their `labels`) where those runs can still be split
    by sibling group (`sibling_problem`), else None (split them by run)."""
    if blocks is None:
        return None
    mine = {str(r): blocks[str(r)] for r in runs}
    return mine if sibling_problem(list(mine.values()), labels) is None else None
