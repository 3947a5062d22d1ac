"""Which recording protocol suffices: the cheapest one reaching a target accuracy, the most
accurate one tried, and the cost-accuracy frontier over units x noise x time points.

A protocol is (observable, units recorded per layer, relative measurement noise, time points).
Its cost is ordered by `protocol_cost`: fewer units first (0 = all units is the most), then the
cheaper observable (`OBSERVABLE_COST`), then fewer time points, then more noise tolerated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import xarray as xr

from lrsim.analysis.defaults import TARGET_ACCURACY
from lrsim.analysis.results import Protocol, ProtocolSearch

# What a recording costs an experimentalist, per observable: activations and their change come
# from the same activity recording, as do the spike-train statistics of spiking runs; the E/I
# balance needs intracellular currents, and synaptic weights are the hardest to measure.
ALL_MEASURABLE = "all measurable"
OBSERVABLE_COST = {"activations": 1, "activity_change": 1, "rate": 1, "cv_isi": 1, "fano": 1,
                   "correlation": 1, "synchrony": 1, "ei_balance": 2, "ei_correlation": 2,
                   "weights": 2}
OBSERVABLE_NAMES = {"rate": "the firing rates", "cv_isi": "the CV of the interspike intervals",
                    "fano": "the Fano factors", "correlation": "the spike-count correlations",
                    "synchrony": "the synchrony", "ei_balance": "the E/I current balance",
                    "ei_correlation": "the E/I current correlation"}

Score = Callable[..., dict[str, Any]]


def views(ds: xr.Dataset, dim: str, default: Any) -> list[Any]:
    """The values of view dimension `dim` recorded in `ds` ([default] if it has none)."""
    return [v.item() for v in ds[dim].values] if dim in ds.coords else [default]


def units_key(units: int) -> float:
    """Units recorded as a number to compare (0 = all units = the most)."""
    return math.inf if units == 0 else float(units)


def observable_cost(observable: str) -> int:
    return OBSERVABLE_COST.get(observable, 3 if observable == ALL_MEASURABLE else 2)


def protocol_cost(observable: str, units: int, noise: float, time_points: int
                  ) -> tuple[float, int, int, float]:
    """The order 'cheapest first' of recording protocols: fewer units recorded (0 = all is the
    most), cheaper observables (activity-derived 1, weights 2, all of them 3), fewer time
    points, then more measurement noise tolerated."""
    return (units_key(units), observable_cost(observable), time_points, -noise)


def _cost(p: Protocol) -> tuple[float, int, int, float]:
    return protocol_cost(p.observable, p.units, p.noise, p.time_points)


def dominates(a: Protocol, b: Protocol) -> bool:
    """`a` costs no more than `b` in every dimension (units, observable, time points, noise
    tolerated), is at least as accurate, and is strictly better in one of these."""
    ca, cb = _cost(a), _cost(b)
    no_worse = all(x <= y for x, y in zip(ca, cb)) and a.accuracy >= b.accuracy
    better = any(x < y for x, y in zip(ca, cb)) or a.accuracy > b.accuracy
    return no_worse and better


def pareto_frontier(protocols: Sequence[Protocol]) -> list[Protocol]:
    """The protocols no other one dominates (`dominates`), cheapest first; of protocols equal
    in every cost and in accuracy, one is kept."""
    out: list[Protocol] = []
    seen: set[tuple] = set()
    for p in protocols:
        if any(dominates(q, p) for q in protocols):
            continue
        key = (*_cost(p), p.accuracy)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return sorted(out, key=lambda p: (_cost(p), -p.accuracy))


def search_protocols(data: xr.Dataset, observables: Sequence[str], time_points: Sequence[int],
                     score: Score, target: float = TARGET_ACCURACY, label: str = "rule"
                     ) -> ProtocolSearch:
    """The cheapest protocol over observable (each, and all together) x units x noise x time
    points whose mean accuracy (`score(observables=..., units=..., noise=..., time_points=...)`
    -> {"accuracy_mean", "accuracy_sem"}) reaches `target`, and the frontier.

    Observables without a `units` (`noise`) dim are tried at the full view only.
    The frontier: every (units, noise, time points) of all the observables together is scored
    (the full grid), and the frontier is taken over these (`pareto_frontier`).
    The cheapest search, assuming accuracy does not fall with more units, less noise or more
    time points: for each observable and (units, noise) view from the richest down, the view is
    tried with all time points; a view that fails prunes every view it dominates (fewer units,
    more noise); a view that passes gets the fewest time points that pass by bisection."""
    units_all = views(data, "units", 0)
    noise_all = sorted(views(data, "noise", 0.0))
    rich = sorted(units_all, key=lambda u: -units_key(u))
    tps = sorted(set(time_points))
    together = ALL_MEASURABLE if len(observables) > 1 else observables[0]
    tried: dict[tuple, Protocol] = {}

    def evaluate(o: str, u: int, n: float, t: int) -> Protocol:
        key = (o, u, float(n), t)
        if key not in tried:
            obs = list(observables) if o == ALL_MEASURABLE else [o]
            r = score(observables=obs, units=u, noise=n, time_points=t)
            tried[key] = Protocol(o, int(u), float(n), int(t), float(r["accuracy_mean"]),
                                  float(r["accuracy_sem"]))
        return tried[key]

    def dims_of(o: str) -> set[str]:
        if o == ALL_MEASURABLE:
            return set().union(*(dims_of(x) for x in observables))
        return set(data[o].dims) if o in data.data_vars else {"units", "noise"}

    def grid(o: str) -> tuple[list[int], list[float]]:
        # an observable recorded without a units / noise dim (the spiking statistics, from
        # every recorded neuron) is the same in every view: only the full one names it honestly
        dims = dims_of(o)
        return (rich if "units" in dims else rich[:1],
                noise_all if "noise" in dims else noise_all[:1])

    passing: list[Protocol] = []
    for o in dict.fromkeys([*observables, together]):
        failed: list[tuple[int, float]] = []
        us, ns = grid(o)
        for u in us:
            for n in ns:
                if any(units_key(fu) >= units_key(u) and fn <= n for fu, fn in failed):
                    continue
                if evaluate(o, u, n, tps[-1]).accuracy < target:
                    failed.append((u, n))
                    continue
                lo, hi = 0, len(tps) - 1  # tps[hi] passes
                while lo < hi:
                    mid = (lo + hi) // 2
                    if evaluate(o, u, n, tps[mid]).accuracy >= target:
                        hi = mid
                    else:
                        lo = mid + 1
                passing.append(evaluate(o, u, n, tps[hi]))
    us, ns = grid(together)
    for u in us:
        for n in ns:
            for t in tps:
                evaluate(together, u, n, t)
    rows = list(tried.values())
    passing += [p for p in rows if p.accuracy >= target]
    full_grid = [p for p in rows if p.observable == together]
    cheapest = min(passing, key=_cost, default=None)
    best = max(rows, key=lambda p: (p.accuracy, tuple(-c for c in _cost(p))), default=None)
    n_obs = len(dict.fromkeys([*observables, together]))
    return ProtocolSearch(target=target, cheapest=cheapest, best=best,
                          frontier=pareto_frontier(full_grid), tried=rows,
                          n_candidates=n_obs * len(units_all) * len(noise_all) * len(tps),
                          sentence=protocol_sentence(cheapest, label, target, best))


def describe(p: Protocol) -> str:
    """'all measurable observables from 8 units per layer with 0.2 relative measurement noise
    at 5 time points'."""
    units = "all units" if p.units == 0 else f"{p.units} units per layer"
    obs = ("all measurable observables" if p.observable == ALL_MEASURABLE
           else OBSERVABLE_NAMES.get(p.observable, f"the {p.observable.replace('_', ' ')}"))
    return (f"{obs} from {units} with {p.noise:g} relative measurement noise at "
            f"{p.time_points} time points")


def protocol_sentence(cheapest: Protocol | None, label: str, target: float,
                      best: Protocol | None = None) -> str:
    """The sentence naming the cheapest protocol that reaches `target` accuracy, or, if none
    did, the best one found."""
    if cheapest is not None:
        return (f"The cheapest recording protocol reaching {target:.0%} accuracy for the {label} "
                f"is {describe(cheapest)} (random forest: {cheapest.accuracy:.1%} +/- "
                f"{cheapest.accuracy_sem:.1%} s.e.m.).")
    out = f"No recording protocol tried reached {target:.0%} accuracy for the {label}"
    if best is None:
        return out + "."
    return (out + f"; the best found is {describe(best)} (random forest: {best.accuracy:.1%} "
            f"+/- {best.accuracy_sem:.1%} s.e.m.). The cost-accuracy frontier lists what "
            f"each cheaper protocol gives.")
