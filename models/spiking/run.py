"""`run_spiking`: an experiment with `substrate = "spiking"`, replica by replica, into the same
trajectory format as rate runs plus spiking statistics.

Per replica (seed s): build the task network (`learning.TaskNetwork`) with seed s, present

    [warm-up: warmup_trials training stimuli | eval block: train stimuli | eval block: test
     stimuli | steps x batch_trials training trials | eval block: train stimuli | eval block:
     test stimuli]

in ONE `Network.run`, learning only in the training trials (the warm-up lets inhibitory
plasticity settle the balanced state before the first measurement; it is not recorded). The
Dataset has, at the observed update steps (`lrsim.analysis.observers.schedule_steps`):

    weights          statistics of each plastic projection W_l (the rows of the recorded units)
    activations      statistics of the layer's trial rates (Hz) in the window since the previous
                     time point (trials x recorded units)
    activity_change  statistics of the change of each recorded unit's mean rate between
                     consecutive windows (NaN at the first time point)
    alignment        angle(B_l, W_l^T) (NaN without feedback matrices)
    loss             mean readout error 0.5 sum_c ((r_c - r*_c) / rate_scale)^2 of the window's
                     trials, r_c the mean rate of class c's readout pool (the first point: the
                     initial evaluation block)
    test_accuracy    readout accuracy on the test block (first and last time point; NaN between)
    rate, cv_isi, fano, correlation, synchrony   per population (`population` dim), from the
                     spikes of the window (`lrsim.analysis.spike_stats`)
    ei_balance, ei_correlation   per hidden E population from its recorded I_e, I_i
    dale_violations  plastic weights of the wrong sign at each time point (always 0)

Undersampling (`units`) and measurement noise (`noise`) follow the rate observer's convention.
Each process uses its own Brian2 cython cache: `[spiking] cache_dir`, else `$LRSIM_BRIAN_CACHE`,
else, inside a Dask worker, `~/.cache/lrsim/brian2/worker-<name>`, else Brian2's default
(`~/.cython/brian_extensions`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from brian2 import Hz, ms, mV

from lrsim.config import Experiment, Replica, SpikingSpec
from lrsim.config import replicas as default_replicas
from lrsim.errors import ConfigError
from lrsim.experiment import finite_or_none

STATS_VARS = ("rate", "cv_isi", "fano", "correlation", "synchrony")
BALANCE_VARS = ("ei_balance", "ei_correlation")


def brian_cache_dir(spec: SpikingSpec) -> str | None:
    """The cython cache directory of this process (see the module docstring)."""
    if spec.cache_dir:
        return spec.cache_dir
    if os.environ.get("LRSIM_BRIAN_CACHE"):
        return os.environ["LRSIM_BRIAN_CACHE"]
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    name = str(worker.name).replace(os.sep, "_")
    return str(Path.home() / ".cache" / "lrsim" / "brian2" / f"worker-{name}")


def network_params(spec: SpikingSpec):
    """`NetworkParams` of the hidden layers from the `[spiking]` section."""
    from lrsim.models.spiking.network import NetworkParams

    return NetworkParams(n_e=spec.n_ref_e, n_i=max(1, spec.n_ref_e // 4), epsilon=spec.epsilon,
                         j=spec.j_mv * mV, g=spec.g, eta=spec.eta, tau_m=spec.tau_m_ms * ms,
                         tau_e=spec.tau_e_ms * ms, tau_i=spec.tau_i_ms * ms,
                         t_ref=spec.t_ref_ms * ms, delay=spec.delay_ms * ms)


def learning_params(spec: SpikingSpec):
    """`LearningParams` from the `[spiking]` section."""
    from lrsim.models.spiking.learning import LearningParams

    return LearningParams(
        trial=spec.trial_ms * ms, settle=spec.settle_ms * ms, input_rate=spec.input_rate_hz * Hz,
        target_rate=spec.target_rate_hz * Hz, rest_rate=spec.rest_rate_hz * Hz,
        rate_scale=spec.rate_scale_hz * Hz, readout_pool=spec.readout_pool, p_ff=spec.p_ff,
        w_unit=spec.w_unit_mv * mV, w_init=spec.w_init, w_max=spec.w_max,
        batch_trials=spec.batch_trials, istdp=spec.istdp, istdp_eta=spec.istdp_eta,
        istdp_rate=spec.istdp_rate_hz * Hz, istdp_tau=spec.istdp_tau_ms * ms,
        readout_istdp=spec.readout_istdp, readout_istdp_eta=spec.readout_istdp_eta,
        readout_error=spec.readout_error,
        record_spikes=spec.record_neurons, record_currents=spec.record_currents)


def make_schedule(task: Any, spec: SpikingSpec, steps: int, seed: int):
    """The trial sequence (see the module docstring); training stimuli in a per-seed shuffled
    order, epoch after epoch, over the first `train_samples` training stimuli."""
    from lrsim.models.spiking.learning import Schedule

    if not task.classification:
        raise ConfigError(f"substrate 'spiking' needs a classification task; task "
                          f"'{task.name}' is a regression")
    x_tr = task.x_train.numpy()
    l_tr = task.labels_train.numpy()
    x_te, l_te = task.x_test.numpy(), task.labels_test.numpy()
    if x_tr.min() < 0 or x_tr.max() > 1:
        lo, hi = x_tr.min(), x_tr.max()
        x_tr, x_te = (x_tr - lo) / (hi - lo), np.clip((x_te - lo) / (hi - lo), 0, 1)
    n_train = len(x_tr) if spec.train_samples == 0 else min(spec.train_samples, len(x_tr))
    n_eval_tr = min(spec.eval_samples, n_train)
    n_eval_te = min(spec.eval_samples, len(x_te))
    rng = np.random.default_rng([seed, 1])
    n_train_trials = steps * spec.batch_trials
    order: list[int] = []
    while len(order) < n_train_trials:
        order.extend(rng.permutation(n_train).tolist())
    order = order[:n_train_trials]
    warm = np.random.default_rng([seed, 4]).integers(0, n_train, spec.warmup_trials).tolist()
    ev_tr, ev_te = list(range(n_eval_tr)), list(range(n_eval_te))
    stim = np.concatenate([x_tr[warm], x_tr[ev_tr], x_te[ev_te], x_tr[order], x_tr[ev_tr],
                           x_te[ev_te]])
    labels = np.concatenate([l_tr[warm], l_tr[ev_tr], l_te[ev_te], l_tr[order], l_tr[ev_tr],
                             l_te[ev_te]])
    phases = (["warmup"] * len(warm) + ["eval_train_0"] * n_eval_tr + ["eval_test_0"] * n_eval_te
              + ["train"] * n_train_trials + ["eval_train_1"] * n_eval_tr
              + ["eval_test_1"] * n_eval_te)
    return Schedule(stim.astype(float), labels.astype(int), phases)


class _Recorder:
    """Snapshots at the observed update steps: dense weights, alignment, Dale check, time."""

    def __init__(self, steps: list[int]):
        self.steps = set(steps)
        self.weights: dict[int, list[np.ndarray]] = {}
        self.alignment: dict[int, np.ndarray] = {}
        self.dale: dict[int, int] = {}
        self.t: dict[int, float] = {}
        self.trial: dict[int, int] = {}

    def snapshot(self, net: Any, step: int) -> None:
        from lrsim.rules.base import alignment_angles

        if step not in self.steps:
            return
        w = net.weights()
        self.weights[step] = w
        tensors = [torch.as_tensor(x).unsqueeze(0) for x in w]
        self.alignment[step] = alignment_angles(net.rule, net.rule_state, tensors).numpy()[0]
        self.dale[step] = net.dale_violations()
        self.trial[step] = net.trial_index
        self.t[step] = net.trial_index * float(net.lp.trial / ms) / 1000.0


def _measure(x: np.ndarray, noise: list[float], rng: np.random.Generator) -> np.ndarray:
    """x (n,) at every noise level (Z, n): x + sigma rms(x) eps (the rate observer's rule)."""
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return np.stack([x if s == 0 else x + s * rms * rng.standard_normal(x.shape)
                     for s in noise])


def run_replica(exp: Experiment, rep: Replica, replica: int, *, observe: bool = True,
                bar: Any = None) -> tuple[dict[str, Any], xr.Dataset | None, Any]:
    """Train one replica; return its summary, its Dataset (or None) and the TaskNetwork."""
    from lrsim.analysis import spike_stats
    from lrsim.analysis.observers import run_attributes, schedule_steps
    from lrsim.analysis.stats import check_stats, summary_stats
    from lrsim.models.spiking.learning import TaskNetwork
    from lrsim.models.spiking.network import configure
    from lrsim.models.tasks import tasks
    from lrsim.optimizers import optimizers
    from lrsim.rules import rules

    spec = exp.spiking or SpikingSpec()
    configure(spec.target, brian_cache_dir(spec), spec.dt_ms * ms)
    task = tasks.create(exp.task.name, **exp.task.params)
    steps_total = exp.train.steps
    schedule = make_schedule(task, spec, steps_total, rep.seed)
    rule = rules.create(exp.rule.name, **exp.rule.params)
    opt = optimizers.create(exp.train.optimizer, **exp.train.optimizer_params())
    obs_steps = schedule_steps(steps_total, exp.observe) if observe else [0, steps_total]
    rec = _Recorder(obs_steps)

    def on_trial(net: Any, k: int) -> None:
        if bar is not None:
            bar.update(1)

    net = TaskNetwork([task.n_in, *exp.model.hidden], task.n_out, schedule, rule, opt,
                      rep.lr, rep.weight_decay, rep.seed, network_params(spec),
                      learning_params(spec), on_update=rec.snapshot, on_trial=on_trial)
    n_eval0 = schedule.phases.index("train") if "train" in schedule.phases else 0
    n_warm = schedule.phases.count("warmup")  # trials before the first measurement
    net.trial_index = n_eval0
    rec.snapshot(net, 0)
    wall = time.perf_counter()
    net.run()
    wall = time.perf_counter() - wall
    log = net.log
    phases = np.asarray(log.phase)
    losses = np.asarray(log.loss)
    correct = np.asarray(log.correct, float)

    def block(name: str, arr: np.ndarray) -> float:
        sel = phases == name
        return float(arr[sel].mean()) if sel.any() else float("nan")

    status = "diverged" if net.diverged_step is not None else "ok"
    initial_loss, final_loss = block("eval_train_0", losses), block("eval_train_1", losses)
    acc0, acc1 = block("eval_test_0", correct), block("eval_test_1", correct)
    test_loss = block("eval_test_1", losses)
    last_align = rec.alignment.get(max(rec.alignment)) if rec.alignment else None

    # spiking statistics per population and window
    steps_seen = sorted(rec.t)
    trial_s = float(net.lp.trial / ms) / 1000.0
    edges = [0.0] + [rec.t[s] for s in steps_seen]
    if steps_seen:
        edges[1] = max(edges[1], trial_s * n_eval0)
    pops = list(net.spike_monitors)
    spikes = {k: (np.asarray(m.i[:]), np.asarray(m.t[:] / ms) / 1000.0)
              for k, m in net.spike_monitors.items()}
    currents = {k: (np.asarray(m.I_e / mV), np.asarray(m.I_i / mV), np.asarray(m.t / ms) / 1e3)
                for k, m in net.current_monitors.items()}
    T = len(steps_seen)
    spk = {v: np.full((T, len(pops)), np.nan) for v in (*STATS_VARS, *BALANCE_VARS)}
    for ti in range(T):
        t0, t1 = edges[ti], edges[ti + 1]
        if ti == 0:
            t0, t1 = trial_s * n_warm, trial_s * n_eval0
        if t1 - t0 <= 0:
            continue
        for p_i, pop in enumerate(pops):
            i_arr, t_arr = spikes[pop]
            st = spike_stats.spike_statistics(i_arr, t_arr, net.population_sizes[pop], t0, t1)
            for v in STATS_VARS:
                spk[v][ti, p_i] = st[v]
            if pop in currents:
                ie, ii, tt = currents[pop]
                sel = (tt >= t0) & (tt < t1)
                if sel.sum() > 2:
                    bal = spike_stats.balance_index(ie[:, sel], ii[:, sel])
                    for v in BALANCE_VARS:
                        spk[v][ti, p_i] = bal[v]
    hidden_exc = [k for k in pops if k.endswith("_exc")]
    exc_index = [pops.index(k) for k in hidden_exc]
    final_stats = {f"{v}": finite_or_none(np.nanmean(spk[v][-1, exc_index]))
                   if hidden_exc and T else None for v in (*STATS_VARS, "ei_balance")}
    summary: dict[str, Any] = {
        "run_id": rep.run_id, "rule": exp.rule.name, "optimizer": exp.train.optimizer,
        "substrate": "spiking", "seed": rep.seed, "lr": rep.lr,
        "initial_loss": finite_or_none(initial_loss), "final_loss": finite_or_none(final_loss),
        "test_loss": finite_or_none(test_loss), "initial_test_accuracy": finite_or_none(acc0),
        "test_accuracy": finite_or_none(acc1), "status": status, "diverged_step": net.diverged_step,
        "dale_violations": int(sum(rec.dale.values())), "wall_s": round(wall, 3),
        "simulated_s": round(len(schedule.labels) * trial_s, 3),
        **{f"hidden_{k}": v for k, v in final_stats.items()},
    }
    if last_align is not None and not np.all(np.isnan(last_align)):
        summary["final_alignment_deg"] = [finite_or_none(a) for a in last_align]
    if not observe:
        return summary, None, net

    # the trajectory Dataset
    stat_names = check_stats(exp.observe.stats)
    units, noise = list(exp.observe.units), [float(s) for s in exp.observe.noise]
    L = len(net.projections)
    widths = [pr.n_post for pr in net.projections]
    for u in units:
        if u > min(widths):
            raise ConfigError(f"observe.units: {u} units exceeds the smallest layer "
                              f"(widths {', '.join(map(str, widths))}); use counts <= "
                              f"{min(widths)}, or 0 for all units")
    rng = np.random.default_rng([rep.seed, 3])
    unit_idx = []
    for l, n_l in enumerate(widths):
        order = np.random.default_rng([rep.seed, 2, l]).permutation(n_l)
        unit_idx.append([np.arange(n_l) if u in (0, n_l) else np.sort(order[:u])
                         for u in units])
    S, U, Z = len(stat_names), len(units), len(noise)
    data = {o: np.full((T, L, S, U, Z), np.nan)
            for o in ("weights", "activations", "activity_change")}
    rates_by_trial = log.rates  # list over trials of per-layer rate arrays (Hz)
    trial_edges = [0] + [rec.trial[s] for s in steps_seen]
    trial_edges[1] = max(trial_edges[1], n_eval0)
    loss_t = np.full(T, np.nan)
    acc_t = np.full(T, np.nan)
    previous: dict[tuple[int, int], np.ndarray] = {}
    for ti, s in enumerate(steps_seen):
        k0, k1 = (n_warm, n_eval0) if ti == 0 else (trial_edges[ti], trial_edges[ti + 1])
        if ti == 0:
            sel = phases[:n_eval0] == "eval_train_0"
            loss_t[0] = float(losses[:n_eval0][sel].mean()) if sel.any() else np.nan
            acc_t[0] = acc0
        elif k1 > k0:
            loss_t[ti] = float(losses[k0:k1].mean())
        if ti == T - 1:
            acc_t[ti] = acc1
        for l in range(L):
            w = rec.weights[s][l]
            r = np.stack([rates_by_trial[k][l + 1] for k in range(k0, k1)]) if k1 > k0 \
                else np.zeros((0, widths[l]))
            for v, idx in enumerate(unit_idx[l]):
                ws = _measure(w[idx].ravel(), noise, rng)
                data["weights"][ti, l, :, v, :] = summary_stats(ws, stat_names).T
                if len(r):
                    rs = _measure(r[:, idx].ravel(), noise, rng)
                    data["activations"][ti, l, :, v, :] = summary_stats(rs, stat_names).T
                    mean_rate = _measure(r[:, idx].mean(0), noise, rng)
                    before = previous.get((l, v))
                    if before is not None:
                        data["activity_change"][ti, l, :, v, :] = summary_stats(
                            mean_rate - before, stat_names).T
                    previous[(l, v)] = mean_rate
    coords = {
        "time": np.arange(T), "step": ("time", np.asarray(steps_seen)),
        "layer": [f"layer{l + 1}" for l in range(L)],
        "depth": ("layer", np.linspace(0.0, 1.0, L) if L > 1 else np.zeros(1)),
        "stat": list(stat_names), "units": np.asarray(units, dtype=np.int64),
        "noise": np.asarray(noise, dtype=np.float64), "population": pops,
        "sim_time": ("time", np.asarray([rec.t[s] for s in steps_seen])),
    }
    dims = ("time", "layer", "stat", "units", "noise")
    variables: dict[str, Any] = {o: (dims, a) for o, a in data.items()}
    variables["alignment"] = (("time", "layer"),
                              np.stack([rec.alignment[s] for s in steps_seen]))
    variables["loss"] = ("time", loss_t)
    variables["test_accuracy"] = ("time", acc_t)
    for v, a in spk.items():
        variables[v] = (("time", "population"), a)
    variables["dale_violations"] = ("time", np.asarray([rec.dale[s] for s in steps_seen]))
    ds = xr.Dataset(variables, coords=coords)
    attrs = run_attributes(exp, rep, replica, rule_family=rule.family, status=status,
                           diverged_step=net.diverged_step, final_loss=final_loss,
                           test_accuracy=acc1)
    attrs.update({"initial_loss": float(initial_loss), "brian2_target": spec.target,
                  "trial_ms": float(spec.trial_ms), "wall_s": float(wall),
                  "activation": "lif"})
    ds.attrs.update(attrs)
    return summary, ds, net


def run_spiking(exp: Experiment, reps: list[Replica] | None = None, *, observe: bool = True,
                progress: bool = False):
    """Run every replica of a spiking experiment (one after the other, each its own Brian2
    network and seed); returns `lrsim.experiment.Outcome`."""
    from lrsim.experiment import Outcome

    reps = reps or default_replicas(exp)
    spec = exp.spiking or SpikingSpec()
    bar = None
    if progress:
        from lrsim.progress import Progress

        n_trials = (spec.warmup_trials + 4 * spec.eval_samples
                    + exp.train.steps * spec.batch_trials)
        bar = Progress(n_trials * len(reps), f"{exp.rule.name} spiking x{len(reps)}",
                       "trial", leave=False)
    summaries, datasets = [], []
    try:
        for k, rep in enumerate(reps):
            summary, ds, net = run_replica(exp, rep, k, observe=observe, bar=bar)
            summaries.append(summary)
            if ds is not None:
                datasets.append(ds)
            del net
    finally:
        if bar is not None:
            bar.close()
    return Outcome(summaries, datasets)


