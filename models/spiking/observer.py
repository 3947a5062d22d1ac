"""The spiking substrate's observer adapter: snapshots while a task network learns, and its run
file through the observer core (`lrsim.analysis.observer`).

At the observed update steps (`schedule_steps`; the first time point is the initial evaluation
block), per plastic projection / layer l:

    weights          statistics of W_l (the rows of the recorded units)
    activations      statistics of the layer's trial rates (Hz) in the window since the previous
                     time point (trials x recorded units)
    activity_change  statistics of the change of each recorded unit's mean rate between
                     consecutive windows (NaN at the first time point)
    alignment        angle(B_l, W_l^T) (NaN without feedback matrices; model-internal)
    loss             mean readout error 0.5 sum_c ((r_c - r*_c) / rate_scale)^2 of the window's
                     trials, r_c the mean rate of class c's readout pool (the first point: the
                     initial evaluation block)
    test_accuracy    readout accuracy on the test block (first and last time point; NaN between)
    rate, cv_isi, fano, correlation, synchrony   per population (`population` dim), from the
                     spikes of the window (`population_statistics`)
    ei_balance, ei_correlation   per hidden E population from its recorded I_e, I_i
    dale_violations  plastic weights of the wrong sign at each time point (always 0)

and, where `[observe] observables` lists them, the population geometry of the recorded units'
noisy trial rates in the window (`lrsim.analysis.observer.GeometryViews`, the window's trials
as the stimuli; layer 1's layer below is the input neurons' rates): dimensionality, rsa_layer,
coupling. rsa_initial, rsa_previous and change_alignment stay NaN: consecutive windows hold
other trials, so no RDM or activity change of the same stimuli exists to compare with;
rsa_target stays NaN too (the window's trials carry no per-trial targets here).

Undersampling (`units`) and measurement noise (`noise`) follow the core; the noise draws come
from one numpy generator per run (seeded [seed, 3]); recorded units are taken in index order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from brian2 import ms, mV

from lrsim.analysis.observer import (
    GeometryViews,
    ViewStatistics,
    check_units,
    describe_variables,
    measure,
    population_statistics,
    recorded,
    trajectory_dataset,
    unit_order,
)
from lrsim.config import Experiment, Replica
from lrsim.contract import OBSERVABLES, check_stats, run_attributes
from lrsim.rules.base import alignment_angles


@dataclass
class Blocks:
    """The trial log of a finished run, by phase: losses, correctness, evaluation figures."""

    phases: np.ndarray
    losses: np.ndarray
    correct: np.ndarray

    @classmethod
    def of(cls, log: Any) -> Blocks:
        return cls(np.asarray(log.phase), np.asarray(log.loss), np.asarray(log.correct, float))

    def mean(self, name: str, arr: np.ndarray) -> float:
        """Mean of `arr` over the trials of phase `name` (NaN if none)."""
        sel = self.phases == name
        return float(arr[sel].mean()) if sel.any() else float("nan")

    @property
    def initial_loss(self) -> float:
        return self.mean("eval_train_0", self.losses)

    @property
    def final_loss(self) -> float:
        return self.mean("eval_train_1", self.losses)

    @property
    def test_loss(self) -> float:
        return self.mean("eval_test_1", self.losses)

    @property
    def initial_accuracy(self) -> float:
        return self.mean("eval_test_0", self.correct)

    @property
    def final_accuracy(self) -> float:
        return self.mean("eval_test_1", self.correct)


class SpikingObserver:
    """Snapshots of one task network at the observed update steps (dense weights, alignment,
    Dale check, time) and, after the run, its statistics and Dataset."""

    def __init__(self, steps: list[int]):
        self.steps = set(steps)
        self.weights: dict[int, list[np.ndarray]] = {}
        self.alignment: dict[int, np.ndarray] = {}
        self.dale: dict[int, int] = {}
        self.t: dict[int, float] = {}
        self.trial: dict[int, int] = {}

    def snapshot(self, net: Any, step: int) -> None:
        """The network's `on_update` hook: record at the observed steps."""
        if step not in self.steps:
            return
        w = net.weights()
        self.weights[step] = w
        tensors = [torch.as_tensor(x).unsqueeze(0) for x in w]
        self.alignment[step] = alignment_angles(net.rule, net.rule_state, tensors,
                                                net.layer_kinds).numpy()[0]
        self.dale[step] = net.dale_violations()
        self.trial[step] = net.trial_index
        self.t[step] = net.trial_index * float(net.lp.trial / ms) / 1000.0

    @property
    def seen(self) -> list[int]:
        return sorted(self.t)

    def final_alignment(self) -> np.ndarray | None:
        return self.alignment.get(max(self.alignment)) if self.alignment else None

    # -- spike trains ---------------------------------------------------------------------------
    def population_statistics(self, net: Any, n_warm: int, n_eval0: int) -> dict[str, np.ndarray]:
        """Spike-train statistics per window and population (var -> (T, P)): window 0 is the
        initial evaluation block, window t the trials between time points t - 1 and t."""
        trial_s = float(net.lp.trial / ms) / 1000.0
        edges = [0.0] + [self.t[s] for s in self.seen]
        if self.seen:
            edges[1] = max(edges[1], trial_s * n_eval0)
        windows = [(trial_s * n_warm, trial_s * n_eval0) if ti == 0 else
                   (edges[ti], edges[ti + 1]) for ti in range(len(self.seen))]
        spikes = {k: (np.asarray(m.i[:]), np.asarray(m.t[:] / ms) / 1000.0)
                  for k, m in net.spike_monitors.items()}
        currents = {k: (np.asarray(m.I_e / mV), np.asarray(m.I_i / mV),
                        np.asarray(m.t / ms) / 1e3) for k, m in net.current_monitors.items()}
        return population_statistics(spikes, net.population_sizes, currents, windows)

    # -- the run file ---------------------------------------------------------------------------
    def trial_windows(self, n_warm: int, n_eval0: int) -> list[tuple[int, int]]:
        """Per time point, the trials [k0, k1) its activity is measured on: the initial
        evaluation block first, then the training trials since the previous time point."""
        edges = [0] + [self.trial[s] for s in self.seen]
        edges[1] = max(edges[1], n_eval0)
        return [(n_warm, n_eval0) if ti == 0 else (edges[ti], edges[ti + 1])
                for ti in range(len(self.seen))]

    @staticmethod
    def behaviour(blocks: Blocks, windows: list[tuple[int, int]], n_eval0: int
                  ) -> tuple[np.ndarray, np.ndarray]:
        """loss per time point (the initial evaluation block's, then the window's trials) and
        test accuracy (first and last time point)."""
        n = len(windows)
        loss_t, acc_t = np.full(n, np.nan), np.full(n, np.nan)
        for ti, (k0, k1) in enumerate(windows):
            if ti == 0:
                sel = blocks.phases[:n_eval0] == "eval_train_0"
                loss_t[0] = float(blocks.losses[:n_eval0][sel].mean()) if sel.any() else np.nan
                acc_t[0] = blocks.initial_accuracy
            elif k1 > k0:
                loss_t[ti] = float(blocks.losses[k0:k1].mean())
        if n:
            acc_t[-1] = blocks.final_accuracy
        return loss_t, acc_t

    def views(self, exp: Experiment, seed: int, net: Any,
              windows: list[tuple[int, int]]) -> tuple[ViewStatistics, GeometryViews]:
        """Statistics of the weight and rate views of every layer at every time point, and the
        geometry of the rate views (where requested)."""
        units, noise = list(exp.observe.units), [float(s) for s in exp.observe.noise]
        widths = [pr.n_post for pr in net.projections]
        check_units(units, widths[:-1])
        rng = np.random.default_rng([seed, 3])

        def measure_np(x: np.ndarray) -> torch.Tensor:
            def draw() -> torch.Tensor:
                return torch.from_numpy(rng.standard_normal(x.shape[0]))[None]
            return measure(torch.from_numpy(x)[None], noise, draw)

        unit_idx = []  # per layer and view: the recorded units, in index order
        for l, n_l in enumerate(widths):
            order = unit_order(seed, l, n_l)
            picks = [recorded(order, u) for u in units]
            unit_idx.append([np.arange(n_l) if i is None else np.sort(i) for i in picks])
        stats = ViewStatistics(OBSERVABLES, 1, len(windows), len(widths),
                               check_stats(exp.observe.stats), len(units), len(noise))
        geom = GeometryViews(exp.observe.observables, 1, len(windows), len(widths), len(units),
                             len(noise), same_stimuli=False)
        rates = net.log.rates  # per trial, per layer rate arrays (Hz); layer 0: the input
        previous: dict[tuple[int, int], torch.Tensor] = {}
        # each view is summarised on its own (`summarise` after every `add`): summary_stats
        # picks its numeric path per call, so this keeps every statistic what it was when this
        # adapter measured view by view
        for ti, ((k0, k1), s) in enumerate(zip(windows, self.seen)):
            acts: dict[tuple[int, int], np.ndarray] = {}
            for l, n_l in enumerate(widths):
                w = self.weights[s][l]
                r = np.stack([rates[k][l + 1] for k in range(k0, k1)]) if k1 > k0 \
                    else np.zeros((0, n_l))
                for v, idx in enumerate(unit_idx[l]):
                    stats.add("weights", l, v, measure_np(w[idx].ravel()))
                    stats.summarise(ti)
                    if not len(r):
                        continue
                    seen = measure_np(r[:, idx].ravel())
                    acts[(l, v)] = seen.numpy().reshape(1, len(noise), len(r), len(idx))
                    stats.add("activations", l, v, seen)
                    stats.summarise(ti)
                    mean_rate = measure_np(r[:, idx].mean(0))
                    if (l, v) in previous:
                        stats.add("activity_change", l, v, mean_rate - previous[(l, v)])
                        stats.summarise(ti)
                    previous[(l, v)] = mean_rate
            if geom and len(acts) == len(widths) * len(units):
                stim = np.stack([rates[k][0] for k in range(k0, k1)])[None].astype(float)
                geom.record(ti, acts, stim)
        return stats, geom

    def dataset(self, exp: Experiment, rep: Replica, replica: int, net: Any, blocks: Blocks,
                spk: dict[str, np.ndarray], n_warm: int, n_eval0: int, status: str,
                extra_attrs: dict[str, Any]) -> xr.Dataset:
        """The run's Dataset in the trajectory format plus the spiking statistics."""
        windows = self.trial_windows(n_warm, n_eval0)
        stats, geom = self.views(exp, rep.seed, net, windows)
        loss_t, acc_t = self.behaviour(blocks, windows, n_eval0)
        steps = self.seen
        extra: dict[str, Any] = {v: (("time", "population"), a) for v, a in spk.items()}
        extra["dale_violations"] = ("time", np.asarray([self.dale[s] for s in steps]))
        extra.update(geom.variables(0))
        ds = trajectory_dataset(
            steps, stats.stat_names, exp.observe.units, [float(s) for s in exp.observe.noise],
            {o: a[0] for o, a in stats.data.items()},
            np.stack([self.alignment[s] for s in steps]), loss_t, acc_t, extra,
            {"population": list(net.spike_monitors),
             "sim_time": ("time", np.asarray([self.t[s] for s in steps]))})
        ds.attrs.update(run_attributes(
            exp, rep, replica, rule_family=net.rule.family, status=status,
            diverged_step=net.diverged_step, final_loss=blocks.final_loss,
            test_accuracy=blocks.final_accuracy))
        ds.attrs.update(extra_attrs)
        return describe_variables(ds, "spiking")
