"""The spiking substrate's training loop: an experiment with `substrate = "spiking"`, replica by
replica, into the same trajectory format as rate runs plus spiking statistics (`run_spiking`).

Per replica (seed s): build the task network (`learning.TaskNetwork`) with seed s, present

    [warm-up: warmup_trials training stimuli | eval block: train stimuli | eval block: test
     stimuli | steps x batch_trials training trials | eval block: train stimuli | eval block:
     test stimuli]

in ONE `Network.run`, learning only in the training trials (the warm-up lets inhibitory
plasticity settle the balanced state before the first measurement; it is not recorded). The
observer adapter (`observer.SpikingObserver`) snapshots the network at the observed update
steps (`lrsim.analysis.observer.schedule_steps`) and writes the run file (its docstring lists
the variables).

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
import xarray as xr
from brian2 import Hz, ms, mV

from lrsim.analysis.observer import schedule_steps
from lrsim.config import Experiment, Replica, SpikingSpec
from lrsim.config import replicas as default_replicas
from lrsim.contract import Outcome, finite_or_none
from lrsim.errors import ConfigError
from lrsim.models.spiking.learning import LearningParams, Schedule, TaskNetwork
from lrsim.models.spiking.network import NetworkParams, configure
from lrsim.models.spiking.observer import Blocks, SpikingObserver
from lrsim.models.tasks import tasks
from lrsim.optimizers import optimizers
from lrsim.rules import rules

SUMMARY_STATS = ("rate", "cv_isi", "fano", "correlation", "synchrony", "ei_balance")


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


def network_params(spec: SpikingSpec) -> NetworkParams:
    """`NetworkParams` of the hidden layers from the `[spiking]` section."""
    return NetworkParams(n_e=spec.n_ref_e, n_i=max(1, spec.n_ref_e // 4), epsilon=spec.epsilon,
                         j=spec.j_mv * mV, g=spec.g, eta=spec.eta, tau_m=spec.tau_m_ms * ms,
                         tau_e=spec.tau_e_ms * ms, tau_i=spec.tau_i_ms * ms,
                         t_ref=spec.t_ref_ms * ms, delay=spec.delay_ms * ms)


def learning_params(spec: SpikingSpec) -> LearningParams:
    """`LearningParams` from the `[spiking]` section."""
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


def make_schedule(task: Any, spec: SpikingSpec, steps: int, seed: int) -> Schedule:
    """The trial sequence (see the module docstring); training stimuli in a per-seed shuffled
    order, epoch after epoch, over the first `train_samples` training stimuli."""
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


def build(exp: Experiment, rep: Replica, spec: SpikingSpec, observer: SpikingObserver,
          bar: Any = None) -> TaskNetwork:
    """The task network of one replica with its schedule, rule and optimizer; the observer
    snapshots it at every update."""
    configure(spec.target, brian_cache_dir(spec), spec.dt_ms * ms)
    task = tasks.create(exp.task.name, **exp.task.params)
    schedule = make_schedule(task, spec, exp.train.steps, rep.seed)
    rule = rules.create(exp.rule.name, **exp.rule.params)
    opt = optimizers.create(exp.train.optimizer, **exp.train.optimizer_params())

    def on_trial(net: Any, k: int) -> None:
        if bar is not None:
            bar.update(1)

    return TaskNetwork([task.n_in, *exp.model.hidden], task.n_out, schedule, rule, opt,
                       rep.lr, rep.weight_decay, rep.seed, network_params(spec),
                       learning_params(spec), on_update=observer.snapshot, on_trial=on_trial)


def summary(exp: Experiment, rep: Replica, net: TaskNetwork, observer: SpikingObserver,
            blocks: Blocks, spk: dict[str, np.ndarray], wall: float) -> dict[str, Any]:
    """The run's summary record (`lrsim run --json`): losses, accuracies, status, the hidden E
    populations' statistics at the last time point, the final alignment."""
    pops = list(net.spike_monitors)
    exc_index = [pops.index(k) for k in pops if k.endswith("_exc")]
    last = len(observer.seen) - 1
    final_stats = {v: finite_or_none(np.nanmean(spk[v][last, exc_index]))
                   if exc_index and last >= 0 else None for v in SUMMARY_STATS}
    trial_s = float(net.lp.trial / ms) / 1000.0
    out: dict[str, Any] = {
        "run_id": rep.run_id, "rule": exp.rule.name, "optimizer": exp.train.optimizer,
        "substrate": "spiking", "seed": rep.seed, "lr": rep.lr,
        "initial_loss": finite_or_none(blocks.initial_loss),
        "final_loss": finite_or_none(blocks.final_loss),
        "test_loss": finite_or_none(blocks.test_loss),
        "initial_test_accuracy": finite_or_none(blocks.initial_accuracy),
        "test_accuracy": finite_or_none(blocks.final_accuracy), "status": status_of(net),
        "diverged_step": net.diverged_step, "dale_violations": int(sum(observer.dale.values())),
        "wall_s": round(wall, 3), "simulated_s": round(net.n_trials * trial_s, 3),
        **{f"hidden_{k}": v for k, v in final_stats.items()},
    }
    align = observer.final_alignment()
    if align is not None and not np.all(np.isnan(align)):
        out["final_alignment_deg"] = [finite_or_none(a) for a in align]
    return out


def status_of(net: TaskNetwork) -> str:
    return "diverged" if net.diverged_step is not None else "ok"


def run_replica(exp: Experiment, rep: Replica, replica: int, *, observe: bool = True,
                bar: Any = None) -> tuple[dict[str, Any], xr.Dataset | None, TaskNetwork]:
    """Train one replica; return its summary, its Dataset (or None) and the TaskNetwork."""
    spec = exp.spiking or SpikingSpec()
    steps = exp.train.steps
    observer = SpikingObserver(schedule_steps(steps, exp.observe) if observe else [0, steps])
    net = build(exp, rep, spec, observer, bar)
    phases = net.schedule.phases
    n_eval0 = phases.index("train") if "train" in phases else 0
    n_warm = phases.count("warmup")  # trials before the first measurement
    net.trial_index = n_eval0
    observer.snapshot(net, 0)
    wall = time.perf_counter()
    net.run()
    wall = time.perf_counter() - wall
    blocks = Blocks.of(net.log)
    spk = observer.population_statistics(net, n_warm, n_eval0)
    record = summary(exp, rep, net, observer, blocks, spk, wall)
    if not observe:
        return record, None, net
    extra = {"initial_loss": float(blocks.initial_loss), "brian2_target": spec.target,
             "trial_ms": float(spec.trial_ms), "wall_s": float(wall), "activation": "lif"}
    ds = observer.dataset(exp, rep, replica, net, blocks, spk, n_warm, n_eval0,
                          status_of(net), extra)
    return record, ds, net


def run_spiking(exp: Experiment, reps: list[Replica] | None = None, *, observe: bool = True,
                progress: bool = False) -> Outcome:
    """Run every replica of a spiking experiment (one after the other, each its own Brian2
    network and seed)."""
    reps = reps or default_replicas(exp)
    spec = exp.spiking or SpikingSpec()
    bar = None
    if progress:
        from tqdm import tqdm

        n_trials = (spec.warmup_trials + 4 * spec.eval_samples
                    + exp.train.steps * spec.batch_trials)
        bar = tqdm(total=n_trials * len(reps), desc=f"{exp.rule.name} spiking x{len(reps)}",
                   unit="trial", mininterval=0.5, leave=False)
    summaries, datasets = [], []
    try:
        for k, rep in enumerate(reps):
            record, ds, net = run_replica(exp, rep, k, observe=observe, bar=bar)
            summaries.append(record)
            if ds is not None:
                datasets.append(ds)
            del net
    finally:
        if bar is not None:
            bar.close()
    return Outcome(summaries, datasets)
