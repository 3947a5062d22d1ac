"""Will it fit? A memory estimate of one batched experiment, checked before any work.

An experiment that cannot fit is refused with one line naming the figure, instead of hanging in
swap or dying with an out-of-memory traceback after minutes. The estimate is deliberately an
upper-end count of what the engine holds, not a measurement:

rate substrate, K replicas, layer widths n_0 (input) .. n_L (output), P = sum_l (n_l + 1) n_{l+1}
parameters per replica, b bytes per number (4 for float32, 8 for float64):

    weights and their companions   K * P * b * 8    (W, step, 2 optimizer moments, feedback B,
                                                     rule state, observer snapshot, spare)
    activations of one batch       K * B * N * b * 6  (N = sum of widths; pre, post,
                                                     derivative, error, credit, spare)
    observer probe                 K * probe * N * b * 4
    data set                       samples * (n_0 + n_L) * 8 * 2  (numpy and torch copies)

spiking substrate (replicas run one after another): per hidden layer of E width h, 1.25 h
neurons with C = epsilon n_ref_e excitatory and C / 4 inhibitory inputs each, feedforward
synapses (n_in + readout) * 1.25 h * p_ff; 100 bytes per synapse and 1 kB per neuron in Brian2's
numpy state, plus the data set.

The limit is the machine's physical memory (or the cgroup's limit, where smaller).
"""

from __future__ import annotations

import os
from pathlib import Path

from lrsim.config import Experiment
from lrsim.errors import ConfigError

_TASK_DIMS = {"digits": (64, 10, 1797), "mnist": (784, 10, 70_000),
              "cifar10": (3072, 10, 60_000)}


# the parameters that size each synthetic task: (inputs, outputs, samples); an int is fixed
_SIZE_PARAMS = {"gaussian_mixture": ("dim", "classes", "samples"),
                "teacher_student": ("dim", "outputs", "samples"),
                "hidden_manifold": ("dim", "classes", "samples"),
                "spirals": ("dim", "classes", "samples"),
                "checkerboard": ("dim", "classes", "samples"),
                "rings": ("dim", "classes", "samples"),
                "parity": ("dim", 2, "samples"),
                "random_labels": ("dim", "classes", "samples"),
                "linear_modes": ("dim", "outputs", "samples")}


def _task_dims(exp: Experiment) -> tuple[int, int, int]:
    """(inputs, outputs, samples) of the task, from its parameters and the registry's defaults
    (no data is loaded)."""
    name = exp.task.name
    if name in _TASK_DIMS:
        return _TASK_DIMS[name]
    keys = _SIZE_PARAMS.get(name)
    if keys is None:
        return 1000, 10, 10_000
    from lrsim.models.tasks import tasks

    declared = tasks.entry(name).params
    a, b, c = (k if isinstance(k, int) else int(exp.task.params.get(k, declared[k].default))
               for k in keys)
    return a, b, c


def estimate_bytes(exp: Experiment, replicas: int | None = None) -> int:
    """Upper-end bytes that training `exp` with `replicas` (default: its own) holds at once."""
    k = replicas or exp.train.replicas
    n_in, n_out, samples = _task_dims(exp)
    data = samples * (n_in + n_out) * 8 * 2
    if exp.substrate == "spiking":
        spec = exp.spiking
        eps = spec.epsilon if spec else 0.1
        n_ref = spec.n_ref_e if spec else 800
        p_ff = spec.p_ff if spec else 0.25
        pool = spec.readout_pool if spec else 10
        neurons = synapses = 0.0
        prev = n_in
        for h in exp.model.hidden:
            n = 1.25 * h
            neurons += n
            synapses += n * 1.25 * eps * n_ref + prev * n * p_ff
            prev = h
        readout = n_out * pool
        neurons += 1.25 * readout
        synapses += prev * readout * p_ff + readout * 1.25 * eps * n_ref
        return int(neurons * 1000 + synapses * 100 + data)
    b = 8 if exp.dtype == "float64" else 4
    widths = [n_in, *exp.model.hidden, n_out]
    params = sum((a + 1) * c for a, c in zip(widths[:-1], widths[1:]))
    units = sum(widths)
    per_replica = (params * b * 8 + exp.train.batch_size * units * b * 6
                   + exp.observe.probe_size * units * b * 4)
    return int(k * per_replica + data)


def memory_limit() -> int:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return limit


def human(n: float) -> str:
    """Bytes as '3.2 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(exp: Experiment, where: str, replicas: int | None = None,
                 limit: int | None = None) -> int:
    """Refuse (`ConfigError`, one line naming both figures) an experiment whose estimate
    exceeds `limit` (default: `memory_limit()`); return the estimate."""
    need = estimate_bytes(exp, replicas)
    have = memory_limit() if limit is None else limit
    if need > have:
        k = replicas or exp.train.replicas
        widths = "x".join(str(h) for h in exp.model.hidden)
        shrink = ("fewer replicas (or a smaller [scan] max_group), " if k > 1 else "")
        raise ConfigError(
            f"{where} needs about {human(need)} of memory ({k} replica(s) of a "
            f"{exp.substrate} network with hidden layers {widths}); this machine has "
            f"{human(have)}: use {shrink}smaller layers or a smaller batch")
    return need

