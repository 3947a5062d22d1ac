"""The rate substrate's observer adapter: what an experimentalist could record while K networks
learn, measured through the observer core (`lrsim.analysis.observer`).

At each time point of the schedule, per layer l = 1..L (W_l and the activity h_l it produces;
the output layer included):

    weights          statistics of the forward weights W_l (the rows of the recorded units:
                     their incoming synapses)
    activations      statistics of h_l on a fixed probe batch of held-out inputs (the first
                     `probe_size` test inputs), over (probe inputs x recorded units)
    activity_change  statistics of h_l(t) - h_l(t_prev) on the probe batch, the change since the
                     previous measurement (NaN at the first time point)
    alignment        angle(B_l, W_l^T) in degrees (NaN where the rule has no feedback matrix;
                     model-internal)
    loss             training loss on (the first 128 samples of) the training set
    test_accuracy    accuracy on (the first 256 samples of) the test set (NaN for regression)

and, where `[observe] observables` lists them, the population geometry of the recorded units'
noisy activity over the probe inputs (`lrsim.analysis.observer.GeometryViews`: dimensionality,
rsa_initial, rsa_previous, rsa_layer, rsa_target, coupling, change_alignment; layer 1's layer
below is the probe inputs; rsa_target compares with the task's targets on the probe inputs,
`Task.y_test`), and of the recorded synapses, synaptic_similarity
(`lrsim.analysis.geometry.synaptic_similarity`): per hidden layer l and view, the recorded
units' incoming synapses (rows of W_l, every input) and outgoing synapses (columns of W_{l+1}
onto the recorded units of layer l+1) are measured with noise at each time point, and their
changes since the first time point compared (between convolutional layers a unit is a channel
and its synapses are its kernels' taps; NaN between a convolutional and a dense layer, whose
inputs are channels x positions).

Undersampling, measurement noise and the statistics follow the core. Noise draws come from one
torch generator per replica (seeded by its seed). Time points at or after a replica's divergence
step are NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from lrsim.analysis.observer import (
    GeometryViews,
    ViewStatistics,
    check_units,
    describe_variables,
    final_dataset,
    measure,
    recorded,
    schedule_steps,
    trajectory_dataset,
    unit_order,
)
from lrsim.config import ObserveSpec
from lrsim.contract import OBSERVABLES, check_stats, run_attributes
from lrsim.models.rate.network import loss_and_error
from lrsim.models.rate.train import TrainContext, TrainResult
from lrsim.rules.base import alignment_angles

EVAL_TRAIN = 128  # training samples behind `loss` at each time point
EVAL_TEST = 256  # test samples behind `test_accuracy` at each time point


def _recorded_rows(w: Tensor, idx: Tensor | None) -> Tensor:
    """The incoming synapses of a view's recorded units: the rows `idx` (K, u) of the weights w
    (K, units, ...), as (K, u, synapses) (conv: a channel's kernel taps flattened); all rows
    where idx is None."""
    w = w.reshape(w.shape[0], w.shape[1], -1)
    return w if idx is None else w.gather(1, idx.unsqueeze(-1).expand(-1, -1, w.shape[2]))


def _result_attrs(result: TrainResult, k: int) -> dict[str, str | int | float]:
    ctx = result.context
    acc = None if result.test_accuracy is None else result.test_accuracy[k]
    return run_attributes(ctx.exp, result.replicas[k], k, rule_family=ctx.rule.family,
                          status=result.status[k], diverged_step=result.diverged_step[k],
                          final_loss=result.final_loss[k], test_accuracy=acc)


def final_datasets(result: TrainResult) -> list[xr.Dataset]:
    """Per replica, the run file when nothing was observed during training (`final_dataset`)."""
    ctx = result.context
    return [final_dataset(ctx.exp, rep, k, rule_family=ctx.rule.family,
                          status=result.status[k], diverged_step=result.diverged_step[k],
                          final_loss=float(result.final_loss[k]),
                          test_accuracy=None if result.test_accuracy is None
                          else float(result.test_accuracy[k]))
            for k, rep in enumerate(result.replicas)]


class RateObserver:
    """Records the observables of a batch of K rate networks; see the module docstring.

    Use: `obs = RateObserver(exp.observe)`, pass it to `lrsim.models.rate.train(...,
    observers=[obs])`, then `obs.datasets(result)` gives one `xarray.Dataset` per replica in
    the trajectory format.
    """

    def __init__(self, spec: ObserveSpec):
        self.spec = spec
        self.observables = list(spec.observables)
        self.stat_names = check_stats(spec.stats)
        self.units = list(spec.units)
        self.noise = [float(s) for s in spec.noise]

    # -- the Observer protocol ----------------------------------------------------------------
    def steps(self, total_steps: int) -> list[int]:
        """The steps to record at (`schedule_steps`)."""
        self._steps = schedule_steps(total_steps, self.spec)
        self._index = {s: i for i, s in enumerate(self._steps)}
        return self._steps

    def start(self, ctx: TrainContext) -> None:
        """Check the request against the network, pick the recorded units, fix the probe batch.

        Raises ConfigError (before any training step) when a unit count exceeds a hidden
        layer."""
        net = ctx.net
        widths = net.sizes[1:]
        check_units(self.units, widths[:-1])
        if not hasattr(self, "_steps"):
            self.steps(ctx.exp.train.steps)
        k, dev = net.K, ctx.device
        self.K, self.L = k, net.n_layers
        seeds = [r.seed for r in ctx.replicas]
        # recorded units: per layer and view, (K, u) indices, the first u of one order per run
        self._unit_idx: list[list[Tensor | None]] = []
        for l, n_l in enumerate(widths):
            orders = np.stack([unit_order(s, l, n_l) for s in seeds])
            idx = [recorded(orders[0], u) for u in self.units]
            order = torch.as_tensor(orders, device=dev)
            self._unit_idx.append([None if i is None else order[:, :len(i)].contiguous()
                                   for i in idx])
        self._gens = [torch.Generator(device=dev).manual_seed(int(s) * 1_000_003 + 3)
                      for s in seeds]
        # the synapses' noise has its own generators: recording them or not leaves the other
        # observables' noise draws as they were
        self._synapse_gens = [torch.Generator(device=dev).manual_seed(int(s) * 1_000_003 + 5)
                              for s in seeds]
        self._synapses_first: dict[tuple[int, int], Tensor] = {}
        self._probe(ctx)
        self._views = ViewStatistics([o for o in self.observables if o in OBSERVABLES], k,
                                     len(self._steps), self.L, self.stat_names,
                                     len(self.units), len(self.noise))
        self._geometry = GeometryViews(self.observables, k, len(self._steps), self.L,
                                       len(self.units), len(self.noise))
        t = len(self._steps)
        self._alignment = np.full((k, t, self.L), np.nan)
        self._loss = np.full((k, t), np.nan)
        self._accuracy = np.full((k, t), np.nan)
        self._previous: dict[tuple[int, int], Tensor] = {}

    def _probe(self, ctx: TrainContext) -> None:
        """One input batch per measurement: test inputs (the first `probe_size` are the probe,
        the first EVAL_TEST give the accuracy), then EVAL_TRAIN training inputs (the loss)."""
        task, k = ctx.task, ctx.net.K
        n_pr = min(len(task.x_test), self.spec.probe_size)
        n_te = min(len(task.x_test), EVAL_TEST)
        n_tr = min(len(task.x_train), EVAL_TRAIN)
        n_test = max(n_pr, n_te)
        inputs = torch.cat([task.x_test[:n_test], task.x_train[:n_tr]])
        self._inputs = inputs.unsqueeze(0).expand(k, -1, -1)
        self._parts = (n_pr, n_te, n_test)
        self._y_train = task.y_train[:n_tr].unsqueeze(0).expand(k, -1, -1)
        # what the task asks for on the probe inputs (rsa_target), (K, P, c)
        self._targets = task.y_test[:n_pr].unsqueeze(0).expand(k, -1, -1).double().cpu().numpy()
        self._labels = (task.labels_test[:n_te].to(ctx.device) if task.labels_test is not None
                        else None)

    def _draw(self, n: int, like: Tensor, gens: list[torch.Generator]) -> Callable[[], Tensor]:
        def draw() -> Tensor:
            return torch.stack([torch.randn(n, generator=g, device=like.device,
                                            dtype=like.dtype) for g in gens])
        return draw

    def _measure(self, x: Tensor, gens: list[torch.Generator] | None = None) -> Tensor:
        """x (K, n) at every noise level (K, Z, n) (`lrsim.analysis.observer.measure`)."""
        return measure(x, self.noise, self._draw(x.shape[1], x, gens or self._gens))

    @torch.no_grad()
    def record(self, step: int, ctx: TrainContext) -> None:
        """Measure every observable at `step` for all K replicas."""
        t = self._index[step]
        net = ctx.net
        every = net.activity(self._inputs)
        n_pr = self._parts[0]
        # per unit: a dense layer's outputs, a conv layer's channels (mean over positions)
        seen = self._add_views(net, [layer.unit_activity(h[:, :n_pr])
                                     for layer, h in zip(net.layers, every)])
        self._views.summarise(t)
        if self._geometry.of_activity:
            z = len(self.noise)
            acts = {key: a.detach().cpu().double().numpy().reshape(self.K, z, n_pr, -1)
                    for key, a in seen.items()}
            self._geometry.record(t, acts, self._inputs[:, :n_pr].detach().cpu().double()
                                  .numpy(), self._targets)
        if "synaptic_similarity" in self.observables:
            self._synapses(t, net.weights, [layer.kind for layer in net.layers])
        self._alignment[:, t] = alignment_angles(ctx.rule, ctx.rule_state, net.weights,
                                                 net.layers).numpy()
        self._behaviour(t, ctx, every[-1])

    def _add_views(self, net: Any, posts: list[Tensor]) -> dict[tuple[int, int], Tensor]:
        """The weight and probe-activity views of every layer and unit count; returns the
        recorded (noisy) probe activity per (layer, view), (K, Z, P * u), where measured."""
        activity = ("activations" in self.observables or "activity_change" in self.observables
                    or self._geometry.of_activity)
        out: dict[tuple[int, int], Tensor] = {}
        for l in range(self.L):
            for v, idx in enumerate(self._unit_idx[l]):
                if "weights" in self.observables:
                    rows = _recorded_rows(net.weights[l], idx)
                    self._views.add("weights", l, v, self._measure(rows.reshape(self.K, -1)))
                if not activity:
                    continue
                h = posts[l]
                if idx is not None:
                    h = h.gather(2, idx.unsqueeze(1).expand(-1, h.shape[1], -1))
                seen = out[(l, v)] = self._measure(h.reshape(self.K, -1))
                if "activations" in self.observables:
                    self._views.add("activations", l, v, seen)
                if "activity_change" in self.observables:
                    before = self._previous.get((l, v))
                    if before is not None:
                        self._views.add("activity_change", l, v, seen - before)
                    self._previous[(l, v)] = seen
        return out

    def _synapses(self, t: int, weights: list[Tensor], kinds: list[str]) -> None:
        """synaptic_similarity at time index t: every layer's recorded rows measured once
        (K, Z, u, n), their change since the first time point, and per hidden layer l the
        change of its recorded units' incoming synapses vs that of their outgoing synapses
        (the columns of layer l+1's recorded rows that belong to them)."""
        k, z = self.K, len(self.noise)
        change: dict[tuple[int, int], Tensor] = {}
        for l, w in enumerate(weights):
            for v, idx in enumerate(self._unit_idx[l]):
                rows = _recorded_rows(w, idx)
                seen = self._measure(rows.reshape(k, -1), self._synapse_gens)
                seen = seen.reshape(k, z, *rows.shape[1:])
                first = self._synapses_first.setdefault((l, v), seen)
                if first is not seen:
                    change[(l, v)] = seen - first
        if not change:  # the first time point: no change yet
            return
        for l in range(self.L - 1):
            if kinds[l] != kinds[l + 1]:  # conv -> dense: the inputs are channels x positions
                continue
            n_l = weights[l].shape[1]
            for v, idx in enumerate(self._unit_idx[l]):
                out = change[(l + 1, v)]  # (K, Z, u_above, n_l * taps), taps 1 if dense
                out = out.reshape(*out.shape[:3], n_l, -1)
                if idx is not None:
                    out = out.gather(3, idx[:, None, None, :, None].expand(
                        -1, z, out.shape[2], -1, out.shape[4]))
                out = out.transpose(2, 3).reshape(k, z, out.shape[3], -1)
                self._geometry.record_synapses(t, l, v, change[(l, v)].double().cpu().numpy(),
                                               out.double().cpu().numpy())

    def _behaviour(self, t: int, ctx: TrainContext, out: Tensor) -> None:
        """Loss on the training samples and accuracy on the test samples of the probe batch."""
        _, n_te, n_test = self._parts
        loss, _ = loss_and_error(out[:, n_test:], self._y_train, ctx.task.loss)
        self._loss[:, t] = loss.cpu().numpy()
        if self._labels is not None:
            guess = out[:, :n_te].argmax(-1)
            self._accuracy[:, t] = (guess == self._labels).double().mean(-1).cpu().numpy()

    # -- the result ---------------------------------------------------------------------------
    def datasets(self, result: TrainResult) -> list[xr.Dataset]:
        """One Dataset per replica in the trajectory format (`lrsim.contract`)."""
        out = []
        for k in range(self.K):
            ds = trajectory_dataset(
                self._steps, self.stat_names, self.units, self.noise,
                {o: a[k].copy() for o, a in self._views.data.items()},
                self._alignment[k].copy(), self._loss[k].copy(), self._accuracy[k].copy(),
                self._geometry.variables(k))
            d = result.diverged_step[k]
            if d is not None:  # keep the trajectory up to the divergence
                ds = ds.where(ds["step"] < d)
            ds.attrs.update(_result_attrs(result, k))
            out.append(describe_variables(ds, "rate"))
        return out

