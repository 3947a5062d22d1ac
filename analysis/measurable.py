"""Which recorded variables an experiment could measure: the one place identification asks.

Three kinds of trajectory feed identification:

- measurable: what an experimentalist could record (weights, activations, activity change,
  spiking statistics, and any new observable that says so): the headline uses only these;
- model-internal: quantities of the model no experiment reads directly (`alignment`, the angle
  between feedback and forward weights): reported in their own labelled section;
- control: the loss and test-accuracy curves (behaviour: "which rule learns faster").

The run-file contract (`lrsim.contract.VARIABLES`, each with its `measurable` role) decides; a
variable the contract does not name is taken at the word of its `measurable` attribute where it
has one, and is otherwise measurable (a new recorded observable) unless named below.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from lrsim.contract import CONTROL_OBSERVABLES, MODEL_INTERNAL, VARIABLES

CONTROL = tuple(CONTROL_OBSERVABLES)


def _declared(ds: xr.Dataset, name: str) -> bool | None:
    if name not in ds.variables:
        return None
    value = ds[name].attrs.get("measurable")
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def is_measurable(ds: xr.Dataset, name: str) -> bool:
    """Whether an experiment could record variable `name` of `ds` (control curves aside)."""
    if name in VARIABLES:
        return VARIABLES[name].measurable
    declared = _declared(ds, name)
    if declared is not None:
        return declared
    return name not in MODEL_INTERNAL and name not in CONTROL


def split_observables(ds: xr.Dataset, observables: Sequence[str]
                      ) -> tuple[list[str], list[str], list[str]]:
    """`observables` as (measurable, model-internal, control), each in the given order. The
    loss / test-accuracy curves are the control whatever their attributes say."""
    control = [o for o in observables if o in CONTROL]
    rest = [o for o in observables if o not in CONTROL]
    return ([o for o in rest if is_measurable(ds, o)],
            [o for o in rest if not is_measurable(ds, o)], control)
