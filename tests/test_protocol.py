"""The protocol search against brute force: on a grid with a known accuracy for every protocol,
the cheapest protocol reaching the target and the cost-accuracy frontier must equal what an
exhaustive enumeration finds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from lrsim.analysis.protocol import (
    ALL_MEASURABLE,
    protocol_cost,
    protocol_sentence,
    search_protocols,
)
from lrsim.analysis.results import Protocol

UNITS = [0, 4, 16, 64]
NOISE = [0.0, 0.2, 0.5]
TPS = [2, 3, 5, 9, 11]
OBS = ["weights", "activations"]


def _store() -> xr.Dataset:
    shape = (1, len(TPS), len(UNITS), len(NOISE))
    dims = ("run", "time", "units", "noise")
    return xr.Dataset({o: (dims, np.zeros(shape)) for o in OBS},
                      coords={"units": UNITS, "noise": NOISE})


def _accuracy(obs: tuple[str, ...], units: int, noise: float, tps: int, rng_seed: int) -> float:
    """Monotone in every factor (more units, less noise, more time points never hurt), with a
    per-protocol jitter that keeps the monotonicity: a sum of increasing terms."""
    u = 6.0 if units == 0 else math.log2(units)
    base = {("weights",): 0.30, ("activations",): 0.25, tuple(OBS): 0.35}[obs]
    rng = np.random.default_rng(rng_seed)
    steps = rng.uniform(0.0, 0.03, size=3)
    return min(1.0, base + 0.06 * u * (1 + steps[0]) + 0.04 * TPS.index(tps) * (1 + steps[1])
               - 0.3 * noise * (1 + steps[2]))


def _score_table(seed: int) -> dict[tuple, float]:
    return {(o, u, n, t): _accuracy((o,) if o != ALL_MEASURABLE else tuple(OBS), u, n, t, seed)
            for o in [*OBS, ALL_MEASURABLE] for u in UNITS for n in NOISE for t in TPS}


def _dominates(a: tuple, b: tuple, table: dict) -> bool:
    """Written out by hand: a = (obs, units, noise, tps) is no costlier than b in units (0 =
    all = most), time points and noise tolerated, at least as accurate, better somewhere."""
    ua = math.inf if a[1] == 0 else a[1]
    ub = math.inf if b[1] == 0 else b[1]
    no_worse = ua <= ub and a[3] <= b[3] and a[2] >= b[2] and table[a] >= table[b]
    better = ua < ub or a[3] < b[3] or a[2] > b[2] or table[a] > table[b]
    return no_worse and better


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [0.6, 0.75, 0.9, 0.99])
def test_cheapest_and_frontier_equal_brute_force(seed, target):
    table = _score_table(seed)
    calls = []

    def score(observables, units, noise, time_points):
        o = ALL_MEASURABLE if len(observables) > 1 else observables[0]
        calls.append((o, units, noise, time_points))
        return {"accuracy_mean": table[(o, units, noise, time_points)], "accuracy_sem": 0.01}

    out = search_protocols(_store(), OBS, TPS, score, target=target)
    # every protocol is scored at most once
    assert len(calls) == len(set(calls)) == len(out.tried)

    # cheapest: brute force over every protocol of every observable
    passing = [k for k, v in table.items() if v >= target]
    if passing:
        want = min(passing, key=lambda k: protocol_cost(*k))
        got = out.cheapest
        assert got is not None
        assert protocol_cost(got.observable, got.units, got.noise, got.time_points) == \
            protocol_cost(*want)
        assert got.accuracy == pytest.approx(table[want])
        assert "cheapest recording protocol" in out.sentence
    else:
        assert out.cheapest is None
        assert out.sentence.startswith("No recording protocol tried reached")
        assert "the best found is" in out.sentence

    # frontier: brute force over the full units x noise x time points grid, all together
    grid = [(ALL_MEASURABLE, u, n, t) for u in UNITS for n in NOISE for t in TPS]
    want_front = {k for k in grid if not any(_dominates(j, k, table) for j in grid)}
    got_front = {(p.observable, p.units, p.noise, p.time_points) for p in out.frontier}
    assert got_front == want_front
    assert len(want_front) >= 3
    # the best protocol is the most accurate one tried
    assert out.best.accuracy == max(p.accuracy for p in out.tried)


def test_sentence_names_the_best_when_nothing_reaches_the_target():
    best = Protocol(ALL_MEASURABLE, 0, 0.0, 11, 0.61, 0.02)
    s = protocol_sentence(None, "rule", 0.9, best)
    assert s.startswith("No recording protocol tried reached 90% accuracy for the rule; the best "
                        "found is all measurable observables from all units with 0 relative "
                        "measurement noise at 11 time points (random forest: 61.0% +/- 2.0%")


def test_protocol_cost_order():
    cheap_first = sorted([("all", 0, 0.0, 11), ("weights", 8, 0.0, 11),
                          ("activations", 8, 0.0, 11), ("activations", 8, 0.2, 11),
                          ("activations", 8, 0.0, 3)], key=lambda p: protocol_cost(*p))
    assert cheap_first == [("activations", 8, 0.0, 3), ("activations", 8, 0.2, 11),
                           ("activations", 8, 0.0, 11), ("weights", 8, 0.0, 11),
                           ("all", 0, 0.0, 11)]
