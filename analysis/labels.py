"""What identification can be asked to tell apart: a per-run label of the store.

`rule_optimizer` is derived per run as "<rule>+<optimizer>" (the anchor study's classes,
Nayebi et al. 2020: a rule with momentum and the same rule with Adam are different classes).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lrsim.analysis.defaults import DERIVED_LABELS as DERIVED
from lrsim.analysis.defaults import LABELS
from lrsim.errors import ConfigError


def per_run_keys(ds: xr.Dataset) -> list[str]:
    """The store's per-run coordinates (what a label or a hold-out can name)."""
    return sorted(str(c) for c in ds.coords if ds[c].dims == ("run",) and c != "run")


def check_label_name(label: str) -> None:
    """ConfigError unless `label` is one of `LABELS`."""
    if label not in LABELS:
        raise ConfigError(f"--label must be one of {', '.join(LABELS)} (got {label!r})")


def with_label(ds: xr.Dataset, label: str) -> xr.Dataset:
    """`ds` with per-run coordinate `label` (derived ones added); ConfigError naming what the
    store has if it cannot provide it."""
    check_label_name(label)
    if label in ds.coords and ds[label].dims == ("run",):
        return ds
    if label in DERIVED:
        parts = DERIVED[label]
        missing = [p for p in parts if p not in ds.coords or ds[p].dims != ("run",)]
        if missing:
            raise ConfigError(f"--label {label} needs per-run {' and '.join(parts)}; the store "
                              f"has no per-run {', '.join(missing)} (per-run keys: "
                              f"{', '.join(per_run_keys(ds)) or 'none'})")
        values = np.asarray(ds[parts[0]].values).astype(str)
        for p in parts[1:]:
            values = np.char.add(np.char.add(values, "+"),
                                 np.asarray(ds[p].values).astype(str))
        return ds.assign_coords({label: ("run", values.astype(object))})
    raise ConfigError(f"--label {label}: the store has no per-run '{label}' (per-run keys: "
                      f"{', '.join(per_run_keys(ds)) or 'none'})")
