"""Training K rate networks at once: the rate substrate's loop around the learning step.

One step, for all replicas in the same kernels:
    minibatch (per replica) -> forward -> Signals -> `LearningStep.step` (credit, plasticity,
    optimizer, W <- W (1 - lr_k d_k) - lr_k step with d_k = lambda_rule + weight_decay_k,
    b <- b - lr_k step_b, rule.feedback with the decay W got)
A replica whose loss turns non-finite is marked diverged at that step and frozen (lr = 0); the
others go on. On a CPU, where K replicas' weights and activity outgrow the cache, the step runs
on chunks of replicas in turn (`chunk`, `lrsim.models.rate.chunks`), with the same trajectories.
Observers are called at the steps they ask for (see `Observer`);
`lrsim.models.rate.observer.RateObserver` records the trajectory format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from lrsim.config import Experiment, Replica
from lrsim.config import replicas as default_replicas
from lrsim.contract import finite_or_none
from lrsim.errors import ConfigError, LrsimError
from lrsim.models.rate.chunks import Chunk, ChunkedStep, chunk_size
from lrsim.models.rate.conv import conv_network
from lrsim.models.rate.cuda_graph import GraphedStep, in_place
from lrsim.models.rate.host_memory import keep_freed_memory
from lrsim.models.rate.network import RateNetwork, loss_and_error
from lrsim.models.rate.permutations import hashed_permutations
from lrsim.models.step import LearningStep
from lrsim.models.tasks import Task, tasks
from lrsim.optimizers import optimizers
from lrsim.rules import rules
from lrsim.rules.base import ReplicaNoise, Rule, Signals, State, alignment_angles

DATA_ORDER = {"auto": None, "host": False, "device": True}  # train.data_order -> BatchSampler
DIVERGENCE_CHECK_EVERY = 25  # steps between host syncs that look for non-finite losses


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LrsimError("device = 'cuda' was asked for but no CUDA device is available; "
                         "use device = 'auto' or 'cpu'")
    return torch.device(name)


@dataclass
class TrainContext:
    """What observers may read while training runs."""

    exp: Experiment
    task: Task
    net: RateNetwork
    rule: Rule
    rule_state: State
    replicas: list[Replica]
    device: torch.device
    dtype: torch.dtype
    diverged_step: list[int | None]
    batch_loss: Tensor | None = None  # (K,) loss of the latest training batch
    learner: LearningStep | ChunkedStep | None = None


class Observer(Protocol):
    def steps(self, total_steps: int) -> list[int]: ...
    def start(self, ctx: TrainContext) -> None: ...
    def record(self, step: int, ctx: TrainContext) -> None: ...


@dataclass
class TrainResult:
    replicas: list[Replica]
    final_loss: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray | None
    status: list[str]
    diverged_step: list[int | None]
    alignment_deg: np.ndarray  # (K, L), NaN where the rule has no feedback matrix
    context: TrainContext | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summaries(self) -> list[dict[str, Any]]:
        """Per replica, the record `lrsim run --json` prints."""
        exp = self.context.exp if self.context else None
        out = []
        for k, rep in enumerate(self.replicas):
            row: dict[str, Any] = {
                "run_id": rep.run_id,
                "rule": exp.rule.name if exp else None,
                "optimizer": exp.train.optimizer if exp else None,
                "seed": rep.seed, "lr": rep.lr,
                "final_loss": finite_or_none(self.final_loss[k]),
                "test_loss": finite_or_none(self.test_loss[k]),
                "test_accuracy": None if self.test_accuracy is None
                else finite_or_none(self.test_accuracy[k]),
                "status": self.status[k],
                "diverged_step": self.diverged_step[k],
            }
            if not np.all(np.isnan(self.alignment_deg[k])):
                row["final_alignment_deg"] = [finite_or_none(a) for a in self.alignment_deg[k]]
            out.append(row)
        return out


class BatchSampler:
    """Per-replica minibatch indices: replica k shuffles the training set each epoch with its
    own randomness (seeded by its seed), so its data order does not depend on its neighbours.

    On the CPU each replica has a numpy generator; on a GPU (`on_device`, the default there)
    the orders are drawn on the device from a counter-based hash of (seed, epoch)
    (`lrsim.models.rate.permutations`), since K host permutations per epoch would cost more
    than the epoch's steps at K in the thousands. The two give different (equally random)
    orders; `train.data_order` ("host" | "device") chooses one on any device."""

    def __init__(self, n: int, batch_size: int, seeds: list[int], device: torch.device,
                 on_device: bool | None = None):
        if batch_size > n:
            batch_size = n
        self.n, self.b, self.device = n, batch_size, device
        self.on_device = device.type == "cuda" if on_device is None else on_device
        if self.on_device:
            self.seeds = torch.tensor([int(s) for s in seeds], dtype=torch.int64, device=device)
        else:
            self.rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
        self.per_epoch = n // batch_size
        self.epoch = -1
        self._perm: Tensor | None = None
        self._i = self.per_epoch

    def next(self) -> Tensor:
        if self._i >= self.per_epoch:
            self.epoch += 1
            if self.on_device:
                self._perm = hashed_permutations(self.seeds, self.epoch, self.n)
            else:
                perm = np.stack([rng.permutation(self.n) for rng in self.rngs])
                self._perm = torch.as_tensor(perm, device=self.device)
            self._i = 0
        i, self._i = self._i, self._i + 1
        return self._perm[:, i * self.b:(i + 1) * self.b]


Chunking = int | str | None  # "auto", None (whole batch) or replicas per chunk


def build(exp: Experiment, reps: list[Replica], device: torch.device, dtype: torch.dtype,
          chunk: Chunking = "auto") -> tuple[Task, RateNetwork, LearningStep | ChunkedStep]:
    """Task (on device), network and learning step (rule, optimizer, their states) for a batch
    of replicas. `chunk`: "auto" (`chunks.chunk_size`: chunks on a CPU where the whole batch's
    weights and activity outgrow the cache), None (the whole batch at once) or the replicas per
    chunk; where the replicas are chunked, the step is a `ChunkedStep` (states initialised for
    the whole batch, then split)."""
    task = tasks.create(exp.task.name, **exp.task.params)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        setattr(task, name, getattr(task, name).to(device=device, dtype=dtype))
    net = network(exp, task, reps, device, dtype)
    rule = rules.create(exp.rule.name, **exp.rule.params)
    opt = optimizers.create(exp.train.optimizer, **exp.train.optimizer_params())
    wd = torch.tensor([r.weight_decay for r in reps], dtype=dtype, device=device).view(-1, 1, 1)
    weights, biases = net.parameters
    learner = LearningStep(rule, opt, weights, biases, net.layers, net.generators, wd)
    size = _chunk(chunk, net, device, min(exp.train.batch_size, len(task.x_train)))
    if size is not None and size < net.K:
        return task, net, ChunkedStep(net, learner, size)
    return task, net, learner


def _chunk(chunk: Chunking, net: RateNetwork, device: torch.device, batch: int) -> int | None:
    """Replicas per chunk for `chunk` ("auto", None or a number), None for the whole batch."""
    if chunk is None:
        return None
    if chunk == "auto":
        return chunk_size(net.weights, net.dense, device, batch=batch)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise LrsimError(f"chunk = {chunk!r}: 'auto', None or a number of replicas >= 1")
    return chunk


def network(exp: Experiment, task: Task, reps: list[Replica], device: torch.device,
            dtype: torch.dtype) -> RateNetwork:
    """The K networks of `exp` for `task`: an MLP, or conv layers then dense ones when
    `[model] conv` is given (`lrsim.models.rate.conv`)."""
    m = exp.model
    common = dict(activation=m.activation, bias=m.bias, seeds=[r.seed for r in reps],
                  init_scale=torch.tensor([r.init_scale for r in reps]), dtype=dtype,
                  device=device)
    if not m.conv:
        return RateNetwork([task.n_in, *m.hidden, task.n_out], **common)
    if task.input_shape is None:
        raise ConfigError(f"[model] conv needs an image task; task '{task.name}' gives flat "
                          "vectors")
    try:
        return conv_network(task.input_shape, m.conv, m.hidden, task.n_out, kernel=m.kernel,
                            stride=m.stride, padding=m.padding, pool=m.pool,
                            pool_type=m.pool_type, **common)
    except ValueError as err:  # geometry that does not fit the task's real images
        raise ConfigError(f"[model] conv on task '{task.name}' images {task.input_shape}: "
                          f"{err}") from None


def evaluate(net: RateNetwork, task: Task, x: Tensor, y: Tensor, labels: Tensor | None,
             chunk: int = 4096) -> tuple[Tensor, Tensor | None]:
    """Mean loss (K,) and accuracy (K,) of every replica on (x, y), in chunks."""
    k = net.K
    if not net.dense:  # conv layers: at most ~2^24 activity values per chunk and layer
        widest = max(getattr(layer, "values_per_sample", 1) for layer in net.layers)
        chunk = max(16, min(chunk, 2**24 // (k * widest)))
    loss_sum = torch.zeros(k, dtype=torch.float64, device=x.device)
    correct = torch.zeros(k, dtype=torch.float64, device=x.device)
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk].unsqueeze(0).expand(k, -1, -1)
        yb = y[i:i + chunk].unsqueeze(0).expand(k, -1, -1)
        z = net.output(xb)
        loss, _ = loss_and_error(z, yb, task.loss)
        loss_sum += loss.double() * len(xb[0])
        if labels is not None:
            correct += (z.argmax(-1) == labels[i:i + chunk].to(x.device)).double().sum(-1)
    acc = correct / len(x) if labels is not None else None
    return loss_sum / len(x), acc


@torch.no_grad()
def train(exp: Experiment, reps: list[Replica] | None = None,
          observers: list[Observer] | None = None, progress: bool = False,
          cuda_graph: bool | str = True, chunk: Chunking = "auto") -> TrainResult:
    """Train the replicas of `exp` (default: seeds seed..seed+K-1) together; return summaries.

    On a CUDA device the step is captured once and replayed as a CUDA graph (`cuda_graph`;
    not for rules that draw noise on the host); `result.extra['cuda_graph']` says whether it
    was replayed. cuda_graph = "static" runs the replayable form of the step (inputs in fixed
    buffers, replaced state copied back in place) eagerly on any device: a check of that
    plumbing where no GPU is present.

    `chunk` ("auto", None or replicas per chunk): run the step on chunks of replicas in turn
    (`lrsim.models.rate.chunks`; "auto": on a CPU, where the whole batch outgrows the cache);
    same trajectories as the whole batch. A replayed (graphed or "static") step always runs
    the whole batch. `result.extra['chunk']`: the replicas per chunk, None where unchunked."""
    if exp.substrate != "rate":
        raise LrsimError(f"substrate '{exp.substrate}' is not run by the rate trainer")
    reps = reps or default_replicas(exp)
    device = resolve_device(exp.device)
    if device.type == "cpu":
        keep_freed_memory()  # the steps reuse freed blocks instead of page-faulting new ones
    dtype = torch.float64 if exp.dtype == "float64" else torch.float32
    if _replays(cuda_graph, device, rules.entry(exp.rule.name).info["signals"]):
        chunk = None
    loop = start(exp, reps, device, dtype, chunk)
    ctx, lr, sampler = loop.ctx, loop.lr, loop.sampler
    noise, first_bad = loop.noise, loop.first_bad
    learner = ctx.learner
    schedule = _start_observers(observers or [], ctx)
    bar = _progress_bar(exp, len(reps)) if progress else None
    chunked = isinstance(learner, ChunkedStep)
    replay = _replayable_step(ctx, cuda_graph, noise, lr, first_bad, sampler.b)
    for step in range(exp.train.steps + 1):
        if step % DIVERGENCE_CHECK_EVERY == 0 or step in schedule or step == exp.train.steps:
            _mark_divergence(ctx, first_bad, lr, step)
        if chunked and step in schedule:  # the chunks' rule state joined for the observers
            ctx.rule_state = learner.rule_state
        for ob in schedule.get(step, ()):
            ob.record(step, ctx)
        if step == exp.train.steps:
            break
        if replay is None:
            _train_step(ctx, sampler.next(), noise, lr, first_bad, step)
        else:
            replay(sampler.next(), step)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if chunked:
        ctx.rule_state = learner.rule_state
    result = _result(ctx)
    result.extra["chunk"] = learner.size if chunked else None
    if replay is not None and isinstance(replay.run, GraphedStep):
        g = replay.run
        result.extra["cuda_graph"] = "replayed" if g.graph is not None else \
            f"eager ({g.failed or 'too few steps to capture'})"
    return result


@dataclass
class Loop:
    """What the training loop holds beside the context: per-replica learning rates (K, 1, 1;
    a diverged replica's set to 0), the minibatch sampler, the rules' noise streams and each
    replica's first step with a non-finite loss (-1: none)."""

    ctx: TrainContext
    lr: Tensor
    sampler: BatchSampler
    noise: ReplicaNoise
    first_bad: Tensor


def start(exp: Experiment, reps: list[Replica], device: torch.device, dtype: torch.dtype,
          chunk: Chunking = "auto") -> Loop:
    """Everything `train` steps with, built (`build`); a `ChunkedStep` gets its chunks' views
    of the per-replica inputs."""
    task, net, learner = build(exp, reps, device, dtype, chunk)
    ctx = TrainContext(exp, task, net, learner.rule, learner.rule_state, reps, device, dtype,
                       [None] * len(reps), learner=learner)
    lr = torch.tensor([r.lr for r in reps], dtype=dtype, device=device).view(-1, 1, 1)
    sampler = BatchSampler(len(task.x_train), exp.train.batch_size, [r.seed for r in reps], device,
                           on_device=DATA_ORDER[exp.train.data_order])
    noise = ReplicaNoise([r.seed for r in reps])
    first_bad = torch.full((len(reps),), -1, dtype=torch.long, device=device)
    if isinstance(learner, ChunkedStep):
        for name, x in (("noise", noise), ("lr", lr), ("first_bad", first_bad)):
            learner.attach(name, x)
    return Loop(ctx, lr, sampler, noise, first_bad)


class _Replay:
    """The step in replayable form: indices and step count copied into fixed buffers, then the
    in-place step run (eagerly, or from a CUDA graph: `lrsim.models.rate.cuda_graph`)."""

    def __init__(self, run: Any, idx: Tensor, step: Tensor):
        self.run, self.idx, self.step = run, idx, step

    def __call__(self, idx: Tensor, step: int) -> None:
        self.idx.copy_(idx)
        self.step.fill_(step)
        self.run()


def _replayable_step(ctx: TrainContext, cuda_graph: bool | str, noise: ReplicaNoise,
                     lr: Tensor, first_bad: Tensor, batch: int) -> _Replay | None:
    """The CUDA-graph step (or its eager replayable form for cuda_graph = "static"); None
    where the ordinary step runs: no CUDA device, graphs off, or a rule drawing host noise."""
    if not _replays(cuda_graph, ctx.device, ctx.rule.signals):
        return None
    static = cuda_graph == "static"
    learner = ctx.learner
    idx = torch.zeros((ctx.net.K, batch), dtype=torch.long, device=ctx.device)
    step = torch.zeros((), dtype=torch.long, device=ctx.device)

    def get_state() -> dict[str, Any]:
        return {"rule": learner.rule_state, "opt": learner.opt_state}

    def set_state(saved: dict[str, Any]) -> None:
        learner.rule_state, learner.opt_state = saved["rule"], saved["opt"]
        ctx.rule_state = learner.rule_state

    run = in_place(lambda: _train_step(ctx, idx, noise, lr, first_bad, step), get_state,
                   set_state)
    return _Replay(run if static else GraphedStep(run, get_state, set_state), idx, step)


def _replays(cuda_graph: bool | str, device: torch.device, signals: Any) -> bool:
    """Whether the step runs in replayable form: graphs asked for on CUDA or "static", and a
    rule that draws no host noise."""
    return (cuda_graph == "static" or (device.type == "cuda" and bool(cuda_graph))) \
        and "noise" not in signals


def _start_observers(observers: list[Observer], ctx: TrainContext) -> dict[int, list[Observer]]:
    """Start every observer; the steps at which each records."""
    schedule: dict[int, list[Observer]] = {}
    for ob in observers:
        ob.start(ctx)
        for s in ob.steps(ctx.exp.train.steps):
            schedule.setdefault(s, []).append(ob)
    return schedule


def _progress_bar(exp: Experiment, k: int) -> Any:
    """A bar in a terminal, a widget in a notebook, plain lines in a log (`lrsim.progress`)."""
    from lrsim.progress import Progress

    return Progress(exp.train.steps, f"{exp.rule.name} x{k}", "step", leave=False)


def _train_step(ctx: TrainContext, idx: Tensor, noise: ReplicaNoise, lr: Tensor,
                first_bad: Tensor, step: int | Tensor) -> None:
    """Forward on the minibatch `idx` (K, B), note non-finite losses, one learning step; for a
    `ChunkedStep`, all of it on each chunk of replicas in turn (the rule state is then joined
    only where observers read it). (`step` may be a 0-d tensor: the CUDA-graph form reads it
    from a buffer.)"""
    learner = ctx.learner
    if isinstance(learner, ChunkedStep):
        losses: list[Tensor] = []

        def run(c: Chunk) -> None:
            losses.append(_replicas_step(ctx.task, c.net, c.learner, idx[c.start:c.stop],
                                         step, **c.views))

        learner.step(run)
        ctx.batch_loss = torch.cat(losses)
        return
    ctx.batch_loss = _replicas_step(ctx.task, ctx.net, learner, idx, step, noise=noise, lr=lr,
                                    first_bad=first_bad)
    ctx.rule_state = learner.rule_state


def _replicas_step(task: Task, net: RateNetwork, learner: LearningStep, idx: Tensor,
                   step: int | Tensor, noise: ReplicaNoise, lr: Tensor, first_bad: Tensor
                   ) -> Tensor:
    """The step of the replicas of `net` (all, or a chunk: then every argument is the chunk's
    view); returns their batch loss."""
    flat = idx.reshape(-1)  # index_select: ~5x faster than x[idx] here (measured)
    x = task.x_train.index_select(0, flat).view(*idx.shape, *task.x_train.shape[1:])
    t = task.y_train.index_select(0, flat).view(*idx.shape, *task.y_train.shape[1:])
    fw = net.forward(x)
    loss, e = loss_and_error(fw.z[-1], t, task.loss)
    # torch.where, not masked_fill_: with a tensor `step` masked_fill_ reads it on the host
    # (a sync, which a CUDA graph cannot capture)
    first_bad.copy_(torch.where(~torch.isfinite(loss) & (first_bad < 0), step, first_bad))
    weights, biases = net.parameters
    sig = Signals(pre=fw.pre, post=fw.post, derivative=fw.derivative, output_error=e,
                  target=t, own_weights=weights, downstream_weights=weights[1:],
                  noise=noise, layers=net.layers)
    learner.step(sig, weights, biases, lr)
    return loss


def _result(ctx: TrainContext) -> TrainResult:
    """Final figures on the whole training and test sets; a diverged replica has none."""
    net, task = ctx.net, ctx.task
    train_loss, _ = evaluate(net, task, task.x_train, task.y_train, task.labels_train)
    test_loss, test_acc = evaluate(net, task, task.x_test, task.y_test, task.labels_test)
    status = ["diverged" if d is not None else "ok" for d in ctx.diverged_step]
    align = alignment_angles(ctx.rule, ctx.rule_state, net.weights, net.layers).numpy()
    final = [train_loss.cpu().numpy(), test_loss.cpu().numpy(),
             None if test_acc is None else test_acc.cpu().numpy()]
    for k, d in enumerate(ctx.diverged_step):
        if d is not None:
            align[k] = np.nan
            for arr in final:
                if arr is not None:
                    arr[k] = np.nan
    return TrainResult(ctx.replicas, final[0], final[1], final[2], status,
                       ctx.diverged_step, align, ctx)


def _mark_divergence(ctx: TrainContext, first_bad: Tensor, lr: Tensor, step: int) -> None:
    """Freeze replicas whose loss or weights became non-finite; remember the step."""
    # a sum is non-finite iff an entry is (or it overflows: |W| ~ 1e38, diverged anyway): one
    # reduction instead of isfinite's elementwise pass and a boolean reduction
    finite_w = torch.isfinite(torch.stack([w.sum((1, 2)) for w in ctx.net.weights])).all(0)
    bad_idx = torch.nonzero((first_bad >= 0) | ~finite_w).flatten().tolist()
    for k in bad_idx:
        if ctx.diverged_step[k] is None:
            fb = int(first_bad[k])
            ctx.diverged_step[k] = fb if fb >= 0 else step
            lr[k] = 0.0
