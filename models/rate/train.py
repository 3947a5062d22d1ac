"""Training K rate networks at once: the rate substrate's loop around the learning step.

One step, for all replicas in the same kernels:
    minibatch (per replica) -> forward -> Signals -> `LearningStep.step` (credit, plasticity,
    optimizer, W <- W (1 - lr_k d_k) - lr_k step with d_k = lambda_rule + weight_decay_k,
    b <- b - lr_k step_b, rule.feedback with the decay W got)
A replica whose loss turns non-finite is marked diverged at that step and frozen (lr = 0); the
others go on. Observers are called at the steps they ask for (see `Observer`);
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
from lrsim.errors import LrsimError
from lrsim.models.rate.network import RateNetwork, loss_and_error
from lrsim.models.step import LearningStep
from lrsim.models.tasks import Task, tasks
from lrsim.optimizers import optimizers
from lrsim.rules import rules
from lrsim.rules.base import ReplicaNoise, Rule, Signals, State, alignment_angles

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
    learner: LearningStep | None = None


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
    own generator (seeded by its seed), so its data order does not depend on its neighbours."""

    def __init__(self, n: int, batch_size: int, seeds: list[int], device: torch.device):
        if batch_size > n:
            batch_size = n
        self.n, self.b, self.device = n, batch_size, device
        self.rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
        self.per_epoch = n // batch_size
        self._perm: Tensor | None = None
        self._i = self.per_epoch

    def next(self) -> Tensor:
        if self._i >= self.per_epoch:
            perm = np.stack([rng.permutation(self.n) for rng in self.rngs])
            self._perm = torch.as_tensor(perm, device=self.device)
            self._i = 0
        i, self._i = self._i, self._i + 1
        return self._perm[:, i * self.b:(i + 1) * self.b]


def build(exp: Experiment, reps: list[Replica], device: torch.device, dtype: torch.dtype
          ) -> tuple[Task, RateNetwork, LearningStep]:
    """Task (on device), network and learning step (rule, optimizer, their states) for a batch
    of replicas."""
    task = tasks.create(exp.task.name, **exp.task.params)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        setattr(task, name, getattr(task, name).to(device=device, dtype=dtype))
    sizes = [task.n_in, *exp.model.hidden, task.n_out]
    net = RateNetwork(sizes, exp.model.activation, exp.model.bias,
                      seeds=[r.seed for r in reps],
                      init_scale=torch.tensor([r.init_scale for r in reps]),
                      dtype=dtype, device=device)
    rule = rules.create(exp.rule.name, **exp.rule.params)
    opt = optimizers.create(exp.train.optimizer, **exp.train.optimizer_params())
    wd = torch.tensor([r.weight_decay for r in reps], dtype=dtype, device=device).view(-1, 1, 1)
    weights, biases = net.parameters
    learner = LearningStep(rule, opt, weights, biases, net.layers, net.generators, wd)
    return task, net, learner


def evaluate(net: RateNetwork, task: Task, x: Tensor, y: Tensor, labels: Tensor | None,
             chunk: int = 4096) -> tuple[Tensor, Tensor | None]:
    """Mean loss (K,) and accuracy (K,) of every replica on (x, y), in chunks."""
    k = net.K
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
          observers: list[Observer] | None = None, progress: bool = False) -> TrainResult:
    """Train the replicas of `exp` (default: seeds seed..seed+K-1) together; return summaries."""
    if exp.substrate != "rate":
        raise LrsimError(f"substrate '{exp.substrate}' is not run by the rate trainer")
    reps = reps or default_replicas(exp)
    device = resolve_device(exp.device)
    dtype = torch.float64 if exp.dtype == "float64" else torch.float32
    task, net, learner = build(exp, reps, device, dtype)
    ctx = TrainContext(exp, task, net, learner.rule, learner.rule_state, reps, device, dtype,
                       [None] * len(reps), learner=learner)
    schedule = _start_observers(observers or [], ctx)
    lr = torch.tensor([r.lr for r in reps], dtype=dtype, device=device).view(-1, 1, 1)
    sampler = BatchSampler(len(task.x_train), exp.train.batch_size, [r.seed for r in reps], device)
    noise = ReplicaNoise([r.seed for r in reps])
    first_bad = torch.full((len(reps),), -1, dtype=torch.long, device=device)
    bar = _progress_bar(exp, len(reps)) if progress else None
    for step in range(exp.train.steps + 1):
        if step % DIVERGENCE_CHECK_EVERY == 0 or step in schedule or step == exp.train.steps:
            _mark_divergence(ctx, first_bad, lr, step)
        for ob in schedule.get(step, ()):
            ob.record(step, ctx)
        if step == exp.train.steps:
            break
        _train_step(ctx, sampler.next(), noise, lr, first_bad, step)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return _result(ctx)


def _start_observers(observers: list[Observer], ctx: TrainContext) -> dict[int, list[Observer]]:
    """Start every observer; the steps at which each records."""
    schedule: dict[int, list[Observer]] = {}
    for ob in observers:
        ob.start(ctx)
        for s in ob.steps(ctx.exp.train.steps):
            schedule.setdefault(s, []).append(ob)
    return schedule


def _progress_bar(exp: Experiment, k: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=exp.train.steps, desc=f"{exp.rule.name} x{k}", unit="step",
                mininterval=0.5, leave=False)


def _train_step(ctx: TrainContext, idx: Tensor, noise: ReplicaNoise, lr: Tensor,
                first_bad: Tensor, step: int) -> None:
    """Forward on the minibatch `idx` (K, B), note non-finite losses, one learning step."""
    net, task, learner = ctx.net, ctx.task, ctx.learner
    x, t = task.x_train[idx], task.y_train[idx]
    fw = net.forward(x)
    loss, e = loss_and_error(fw.z[-1], t, task.loss)
    ctx.batch_loss = loss
    bad = ~torch.isfinite(loss)
    first_bad.copy_(torch.where(bad & (first_bad < 0), torch.full_like(first_bad, step),
                                first_bad))
    weights, biases = net.parameters
    sig = Signals(pre=fw.pre, post=fw.post, derivative=fw.derivative, output_error=e,
                  target=t, own_weights=weights, downstream_weights=weights[1:],
                  noise=noise, layers=net.layers)
    learner.step(sig, weights, biases, lr)
    ctx.rule_state = learner.rule_state


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
    finite_w = torch.stack([torch.isfinite(w).flatten(1).all(1) for w in ctx.net.weights]).all(0)
    bad_idx = torch.nonzero((first_bad >= 0) | ~finite_w).flatten().tolist()
    for k in bad_idx:
        if ctx.diverged_step[k] is None:
            fb = int(first_bad[k])
            ctx.diverged_step[k] = fb if fb >= 0 else step
            lr[k] = 0.0
