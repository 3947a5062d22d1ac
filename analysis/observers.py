"""The rate-network observer: what an experimentalist could record while K networks learn.

At each time point of the schedule (`schedule_steps`), per layer l = 1..L (W_l and the activity
h_l = f(W_l h_{l-1} + b_l) it produces; the output layer included):

    weights          statistics of the forward weights W_l (the rows of the recorded units:
                     their incoming synapses)
    activations      statistics of h_l on a fixed probe batch of held-out inputs (the first
                     `probe_size` test inputs), over (probe inputs x recorded units)
    activity_change  statistics of h_l(t) - h_l(t_prev) on the probe batch, the change since the
                     previous measurement (NaN at the first time point)
    alignment        angle(B_l, W_l^T) in degrees (NaN where the rule has no feedback matrix)

and, when listed in `[observe] observables`, the population geometry of the recorded units'
activity (`lrsim.analysis.geometry`; the units' noisy activity over the probe inputs, so exactly
what the recording gives), one value per (time, layer, units, noise):

    dimensionality   participation ratio of the recorded units' activity over the probe inputs,
                     divided by the number of recorded units
    rsa_initial      representational similarity (Pearson correlation of the Euclidean RDMs
                     over the first `RSA_PROBES` probe inputs) with the first measurement
                     (NaN at the first time point)
    rsa_previous     the same with the previous measurement (NaN at the first time point)
    rsa_layer        the same between layer l and the layer feeding it, both recorded at this
                     time point (for layer 1: the probe stimuli themselves)
    coupling         paired recording of two connected layers: mean squared correlation over
                     the probe inputs between the recorded units of the layer feeding l (for
                     layer 1: the stimulus pixels) and the recorded units of l
    loss             training loss on (the first 128 samples of) the training set
    test_accuracy    accuracy on (the first 256 samples of) the test set (NaN for regression)

as in Nayebi et al. 2020 ("Identifying Learning Rules From Neural Network Observables",
NeurIPS), with the experimentalist's constraints applied before the statistics
(`lrsim.analysis.stats`):

    undersampling    units = n: record n units of the layer, drawn once per run from the
                     replica's seed (the same units for the whole run; nested: the n recorded
                     units are the first n of one random order); 0 = all units. n may not
                     exceed a hidden layer's width (ConfigError); the output layer (the
                     readout, often only a few units) is recorded whole where n >= its width
    noise            x_obs = x + sigma * rms(x) * eps,  eps ~ N(0, 1) i.i.d. per entry and per
                     measurement, rms(x) = sqrt(mean x^2) over the recorded entries, so the
                     variance statistic rises by sigma^2 rms(x)^2 in expectation

Every (units, noise) pair is one view, a coordinate of the result. Random draws use one
generator per replica (seeded by its seed), so a run's record does not depend on which replicas
share its batch. Time points at or after a replica's divergence step are NaN.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from lrsim.analysis.stats import check_stats, summary_stats
from lrsim.config import Experiment, ObserveSpec, Replica
from lrsim.errors import ConfigError
from lrsim.store import netcdf_safe

STAT_OBSERVABLES: tuple[str, ...] = ("weights", "activations", "activity_change")
GEOMETRY_OBSERVABLES: tuple[str, ...] = ("dimensionality", "rsa_initial", "rsa_previous",
                                         "rsa_layer", "coupling")
OBSERVABLES: tuple[str, ...] = STAT_OBSERVABLES + GEOMETRY_OBSERVABLES
RSA_PROBES = 64  # probe inputs behind the RDMs of the rsa_* observables
EVAL_TRAIN = 128  # training samples behind `loss` at each time point
EVAL_TEST = 256  # test samples behind `test_accuracy` at each time point
VIEW_DIMS = ("time", "layer", "stat", "units", "noise")
GEOMETRY_DIMS = ("time", "layer", "units", "noise")


def schedule_steps(total_steps: int, spec: ObserveSpec) -> list[int]:
    """The training steps at which to measure (0 = before the first update, total = the end).

    every = e:         0, e, 2e, ... and the last step
    schedule "linear": `points` steps evenly spaced on [0, total], rounded
    schedule "log":    0 and `points - 1` steps log-spaced on [1, total], rounded
    Duplicates after rounding are merged (short runs can have fewer points).
    """
    if spec.every is not None:
        steps = set(range(0, total_steps + 1, spec.every)) | {total_steps}
    elif spec.schedule == "log":
        steps = {0} | {int(round(s)) for s in np.geomspace(1, max(total_steps, 1),
                                                           spec.points - 1)}
    else:
        steps = {int(round(s)) for s in np.linspace(0, total_steps, spec.points)}
    return sorted(s for s in steps if 0 <= s <= total_steps)


def architecture(exp: Experiment) -> str:
    """Hidden widths as a string, e.g. "64-64"."""
    return "-".join(str(h) for h in exp.model.hidden)


def run_config(exp: Experiment, rep: Replica) -> dict[str, Any]:
    """The resolved experiment of one run: its own seed and hyperparameters, one replica."""
    cfg = exp.resolved()
    cfg.pop("scan", None)
    cfg["seed"] = rep.seed
    cfg["train"] = dict(cfg["train"], lr=rep.lr, weight_decay=rep.weight_decay, replicas=1)
    cfg["model"] = dict(cfg["model"], init_scale=rep.init_scale)
    return cfg


def run_attributes(exp: Experiment, rep: Replica, replica: int, *, rule_family: str,
                   status: str, diverged_step: int | None, final_loss: float,
                   test_accuracy: float | None) -> dict[str, str | int | float]:
    """The contract's attributes of one run (all netCDF-safe: str / int / float)."""
    from lrsim import __version__

    attrs: dict[str, Any] = {
        "run_id": rep.run_id, "rule": exp.rule.name, "rule_family": rule_family,
        "optimizer": exp.train.optimizer, "lr": float(rep.lr),
        "weight_decay": float(rep.weight_decay), "init_scale": float(rep.init_scale),
        "batch_size": exp.train.batch_size, "steps": exp.train.steps, "task": exp.task.name,
        "activation": exp.model.activation, "architecture": architecture(exp),
        "substrate": exp.substrate, "seed": int(rep.seed), "replica": int(replica),
        "lrsim_version": __version__, "status": status,
        "diverged_step": -1 if diverged_step is None else int(diverged_step),
        "config": json.dumps(run_config(exp, rep), sort_keys=True),
        "final_loss": float("nan") if final_loss is None else float(final_loss),
        "test_accuracy": float("nan") if test_accuracy is None else float(test_accuracy),
    }
    for key, value in exp.rule.params.items():
        attrs[f"rule_{key}"] = value
    for key, value in exp.train.optimizer_params().items():
        attrs[f"optimizer_{key}"] = value
    for key, value in exp.task.params.items():
        attrs[f"task_{key}"] = value
    return {k: netcdf_safe(v) for k, v in attrs.items()}


def _result_attrs(result: Any, k: int, rule_family: str) -> dict[str, str | int | float]:
    exp = result.context.exp
    acc = None if result.test_accuracy is None else result.test_accuracy[k]
    return run_attributes(exp, result.replicas[k], k, rule_family=rule_family,
                          status=result.status[k], diverged_step=result.diverged_step[k],
                          final_loss=result.final_loss[k], test_accuracy=acc)


def final_datasets(result: Any) -> list[xr.Dataset]:
    """Per replica, the run file when nothing was observed during training: `loss` and
    `test_accuracy` at the last step only, with the contract's attributes."""
    ctx = result.context
    out = []
    for k in range(len(result.replicas)):
        acc = np.nan if result.test_accuracy is None else float(result.test_accuracy[k])
        ds = xr.Dataset({"loss": ("time", [float(result.final_loss[k])]),
                         "test_accuracy": ("time", [acc])},
                        coords={"time": [0], "step": ("time", [ctx.exp.train.steps])})
        ds.attrs.update(_result_attrs(result, k, ctx.rule.family))
        out.append(ds)
    return out


def _activity(net: Any, x: Tensor) -> list[Tensor]:
    """h_l = f(W_l h_{l-1} + b_l) for every layer (the output linear), (K, N, n_l) each."""
    out, h = [], x
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)) if net.bias \
            else torch.bmm(h, w.transpose(1, 2))
        if l < net.n_layers - 1:
            h = net.f(h)
        out.append(h)
    return out


class RateObserver:
    """Records the observables of a batch of K rate networks; see the module docstring.

    Use: `obs = RateObserver(exp.observe)`, pass it to `lrsim.train.train(..., observers=[obs])`,
    then `obs.datasets(result)` gives one `xarray.Dataset` per replica in the trajectory format.
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

    def start(self, ctx: Any) -> None:
        """Check the request against the network, pick the recorded units, fix the probe batch.

        Raises ConfigError (before any training step) when a unit count exceeds a hidden
        layer."""
        net = ctx.net
        widths = net.sizes[1:]
        hidden = widths[:-1]
        for u in self.units:
            if u > min(hidden):
                l = int(np.argmin(hidden))
                raise ConfigError(
                    f"observe.units: {u} units exceeds hidden layer 'layer{l + 1}' of width "
                    f"{hidden[l]} (hidden widths {', '.join(map(str, hidden))}); "
                    f"use counts <= {min(hidden)}, or 0 for all units")
        if not hasattr(self, "_steps"):
            self.steps(ctx.exp.train.steps)
        k, dev = net.K, ctx.device
        self.K, self.L = k, net.n_layers
        self.seeds = [r.seed for r in ctx.replicas]
        # recorded units: per layer and view, (K, u) indices, the first u of one order per run
        self._unit_idx: list[list[Tensor | None]] = []
        for l, n_l in enumerate(widths):
            orders = [np.random.default_rng([int(s), 2, l]).permutation(n_l) for s in self.seeds]
            order = torch.as_tensor(np.stack(orders), device=dev)
            self._unit_idx.append([None if u == 0 or u >= n_l else order[:, :u].contiguous()
                                   for u in self.units])
        self._gens = [torch.Generator(device=dev).manual_seed(int(s) * 1_000_003 + 3)
                      for s in self.seeds]
        # one input batch per measurement: test inputs (the first `probe_size` are the probe,
        # the first EVAL_TEST give the accuracy), then EVAL_TRAIN training inputs (the loss)
        task = ctx.task
        n_pr = min(len(task.x_test), self.spec.probe_size)
        n_te = min(len(task.x_test), EVAL_TEST)
        n_tr = min(len(task.x_train), EVAL_TRAIN)
        n_test = max(n_pr, n_te)
        inputs = torch.cat([task.x_test[:n_test], task.x_train[:n_tr]])
        self._inputs = inputs.unsqueeze(0).expand(k, -1, -1)
        self._parts = (n_pr, n_te, n_test)
        self._y_train = task.y_train[:n_tr].unsqueeze(0).expand(k, -1, -1)
        self._labels = (task.labels_test[:n_te].to(dev) if task.labels_test is not None
                        else None)
        t, s, u, z = len(self._steps), len(self.stat_names), len(self.units), len(self.noise)
        self._data = {o: np.full((k, t, self.L, s, u, z), np.nan) for o in self.observables
                      if o in STAT_OBSERVABLES}
        self._geometry = {o: np.full((k, t, self.L, u, z), np.nan) for o in self.observables
                          if o in GEOMETRY_OBSERVABLES}
        self._rdm_first: dict[tuple[int, int], np.ndarray] = {}
        self._rdm_previous: dict[tuple[int, int], np.ndarray] = {}
        self._alignment = np.full((k, t, self.L), np.nan)
        self._loss = np.full((k, t), np.nan)
        self._accuracy = np.full((k, t), np.nan)
        self._previous: dict[tuple[int, int], Tensor] = {}

    @torch.no_grad()
    def record(self, step: int, ctx: Any) -> None:
        """Measure every observable at `step` for all K replicas."""
        from lrsim.models.rate import loss_and_error
        from lrsim.rules.base import alignment_angles

        t = self._index[step]
        net = ctx.net
        n_pr, n_te, n_test = self._parts
        every = _activity(net, self._inputs)
        posts = [h[:, :n_pr] for h in every]
        pending: list[tuple[str, int, int, Tensor]] = []  # (observable, layer, view, (K,Z,n))
        recorded: dict[tuple[int, int], Tensor] = {}  # (layer, view) -> (K, Z, P*u), noisy
        for l in range(self.L):
            for v, idx in enumerate(self._unit_idx[l]):
                if "weights" in self.observables:
                    w = net.weights[l]
                    if idx is not None:
                        w = w.gather(1, idx.unsqueeze(-1).expand(-1, -1, w.shape[2]))
                    pending.append(("weights", l, v, self._measure(w.reshape(self.K, -1))))
                if "activations" not in self.observables and \
                        "activity_change" not in self.observables and not self._geometry:
                    continue
                h = posts[l]
                if idx is not None:
                    h = h.gather(2, idx.unsqueeze(1).expand(-1, h.shape[1], -1))
                seen = self._measure(h.reshape(self.K, -1))
                recorded[(l, v)] = seen
                if "activations" in self.observables:
                    pending.append(("activations", l, v, seen))
                if "activity_change" in self.observables:
                    before = self._previous.get((l, v))
                    if before is not None:
                        pending.append(("activity_change", l, v, seen - before))
                    self._previous[(l, v)] = seen
        self._summarise(t, pending)
        if self._geometry:
            self._record_geometry(t, recorded, self._inputs[:, :n_pr])
        self._alignment[:, t] = alignment_angles(ctx.rule, ctx.rule_state, net.weights).numpy()
        out = every[-1]
        loss, _ = loss_and_error(out[:, n_test:], self._y_train, ctx.task.loss)
        self._loss[:, t] = loss.cpu().numpy()
        if self._labels is not None:
            guess = out[:, :n_te].argmax(-1)
            self._accuracy[:, t] = (guess == self._labels).double().mean(-1).cpu().numpy()

    # -- measurement --------------------------------------------------------------------------
    def _measure(self, x: Tensor) -> Tensor:
        """x (K, n) as seen at every noise level: (K, Z, n), x + sigma rms(x) eps."""
        views = []
        rms = None
        for sigma in self.noise:
            if sigma == 0.0:
                views.append(x)
                continue
            if rms is None:
                xd = x.double()
                scale = xd.abs().amax(-1, keepdim=True).clamp_min(1e-300)
                rms = (scale * (xd / scale).pow(2).mean(-1, keepdim=True).sqrt()).to(x.dtype)
            eps = torch.stack([torch.randn(x.shape[1], generator=g, device=x.device,
                                           dtype=x.dtype) for g in self._gens])
            views.append(x + sigma * rms * eps)
        return torch.stack(views, 1)

    def _record_geometry(self, t: int, recorded: dict[tuple[int, int], Tensor],
                         stimuli: Tensor) -> None:
        """The population-geometry observables at time index t from the recorded (noisy)
        activity of every layer and view, (K, Z, P * u) each (see the module docstring)."""
        from lrsim.analysis import geometry

        want = self._geometry
        z, p = len(self.noise), stimuli.shape[1]
        n_rsa = min(RSA_PROBES, p)
        x0 = stimuli.detach().cpu().double().numpy()[:, None]  # (K, 1, P, n_in): exact
        x0 = np.broadcast_to(x0, (self.K, z, *x0.shape[2:]))
        rsa = bool({"rsa_initial", "rsa_previous", "rsa_layer"} & set(want))
        rdms: dict[tuple[int, int], np.ndarray] = {}
        if "rsa_layer" in want:
            stim_rdm = geometry.rdm(x0[:, :, :n_rsa])
            rdms.update({(-1, v): stim_rdm for v in range(len(self.units))})
        acts = {key: a.detach().cpu().double().numpy().reshape(self.K, z, p, -1)
                for key, a in recorded.items()}
        for l in range(self.L):
            for v in range(len(self.units)):
                a = acts[(l, v)]  # (K, Z, P, u)
                if "dimensionality" in want:
                    want["dimensionality"][:, t, l, v] = geometry.dimensionality(a)
                if "coupling" in want:
                    pre = x0 if l == 0 else acts[(l - 1, v)]
                    want["coupling"][:, t, l, v] = geometry.coupling(pre, a)
                if not rsa:
                    continue
                d = rdms[(l, v)] = geometry.rdm(a[:, :, :n_rsa])
                first = self._rdm_first.setdefault((l, v), d)
                if "rsa_initial" in want and first is not d:
                    want["rsa_initial"][:, t, l, v] = geometry.rdm_similarity(d, first)
                before = self._rdm_previous.get((l, v))
                if "rsa_previous" in want and before is not None:
                    want["rsa_previous"][:, t, l, v] = geometry.rdm_similarity(d, before)
                self._rdm_previous[(l, v)] = d
                if "rsa_layer" in want:
                    want["rsa_layer"][:, t, l, v] = geometry.rdm_similarity(d, rdms[(l - 1, v)])

    def _summarise(self, t: int, pending: list[tuple[str, int, int, Tensor]]) -> None:
        """Statistics of every pending sample, in one `summary_stats` call per sample size."""
        by_size: dict[int, list[int]] = {}
        for i, (_, _, _, x) in enumerate(pending):
            by_size.setdefault(x.shape[-1], []).append(i)
        for members in by_size.values():
            block = torch.cat([pending[i][3] for i in members], 1)  # (K, sum Z, n)
            stats = summary_stats(block.detach().cpu().numpy(), self.stat_names)
            z = len(self.noise)
            for j, i in enumerate(members):
                obs, l, v, _ = pending[i]
                # (K, Z, S) -> the (K, S, Z) slot of time t, layer l, view v
                self._data[obs][:, t, l, :, v, :] = stats[:, j * z:(j + 1) * z].transpose(0, 2, 1)

    # -- the result ---------------------------------------------------------------------------
    def datasets(self, result: Any) -> list[xr.Dataset]:
        """One Dataset per replica in the trajectory format (see the README)."""
        ctx = result.context
        steps = np.asarray(self._steps)
        L = self.L
        coords = {
            "time": np.arange(len(steps)), "step": ("time", steps),
            "layer": [f"layer{l + 1}" for l in range(L)],
            "depth": ("layer", np.linspace(0.0, 1.0, L) if L > 1 else np.zeros(1)),
            "stat": list(self.stat_names), "units": np.asarray(self.units, dtype=np.int64),
            "noise": np.asarray(self.noise, dtype=np.float64),
        }
        out = []
        for k in range(self.K):
            data: dict[str, Any] = {o: (VIEW_DIMS, self._data[o][k].copy())
                                    for o in self._data}
            for o, arr in self._geometry.items():
                data[o] = (GEOMETRY_DIMS, arr[k].copy())
            data["alignment"] = (("time", "layer"), self._alignment[k].copy())
            data["loss"] = ("time", self._loss[k].copy())
            data["test_accuracy"] = ("time", self._accuracy[k].copy())
            ds = xr.Dataset(data, coords=coords)
            d = result.diverged_step[k]
            if d is not None:  # keep the trajectory up to the divergence
                ds = ds.where(ds["step"] < d)
            ds.attrs.update(_result_attrs(result, k, ctx.rule.family))
            out.append(ds)
        return out
