"""The trainer's fused step against an unfused reference written here: forward with autograd-free
textbook ops (relu' = [z > 0], softmax from torch.softmax), the rule's credit and plasticity,
the optimizers' textbook formulas out of place, W <- W - lr (step + d W), b <- b - lr step_b.
Same data order (the trainer's per-replica sampler), same initial weights."""

from __future__ import annotations

import pytest
import torch

from lrsim.config import parse
from lrsim.config import replicas as default_replicas
from lrsim.models.rate import RateNetwork
from lrsim.models.rate.train import BatchSampler, train
from lrsim.models.tasks import tasks
from lrsim.rules import rules
from lrsim.rules.base import ReplicaNoise, Signals

STEPS = 30
LRS = [0.05, 0.1, 0.02]
WD = [0.0, 0.01, 0.0]


def experiment(rule: str, optimizer: str, dtype: str):
    return parse({"name": "fused", "device": "cpu", "dtype": dtype, "seed": 4,
                  "task": {"name": "digits"}, "rule": {"name": rule},
                  "model": {"hidden": [12, 9], "activation": "relu"},
                  "train": {"optimizer": optimizer, "lr": 0.05, "batch_size": 16,
                            "steps": STEPS, "replicas": 3}})


def reference(exp, reps, dtype):
    """Unfused, out-of-place training of the replicas; returns (weights, biases)."""
    task = tasks.create(exp.task.name, **exp.task.params)
    xs, ys = task.x_train.to(dtype), task.y_train.to(dtype)
    net = RateNetwork([task.n_in, *exp.model.hidden, task.n_out], "relu", True,
                      seeds=[r.seed for r in reps],
                      init_scale=torch.tensor([r.init_scale for r in reps]), dtype=dtype)
    rule = rules.create(exp.rule.name, **exp.rule.params)
    state = rule.init(net.weights, net.generators)
    w, b = [t.clone() for t in net.weights], [t.clone() for t in net.biases]
    lr = torch.tensor([r.lr for r in reps], dtype=dtype).view(-1, 1, 1)
    decay = torch.tensor([r.weight_decay for r in reps], dtype=dtype).view(-1, 1, 1) \
        + float(rule.decay)
    sampler = BatchSampler(len(xs), exp.train.batch_size, [r.seed for r in reps], xs.device)
    noise = ReplicaNoise([r.seed for r in reps])
    params = w + b
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    for t in range(1, STEPS + 1):
        idx = sampler.next()
        x, y = xs[idx], ys[idx]
        pre, post, der, h = [], [], [], x
        for l in range(len(w)):
            pre.append(h)
            z = h @ w[l].transpose(1, 2) + b[l].unsqueeze(1)
            last = l == len(w) - 1
            h = z if last else torch.relu(z)
            post.append(h)
            der.append(torch.ones_like(z) if last else (z > 0).to(dtype))
        e = torch.softmax(h, -1) - y
        sig = Signals(pre, post, der, e, y, w, w[1:], noise).restrict(rule.signals)
        m = rule.credit(state, sig)
        grads = rule.plasticity(state, sig, m)
        gs = [g for g, _ in grads] + [g for _, g in grads]
        steps = []
        for i, g in enumerate(gs):
            if exp.train.optimizer == "sgd":
                steps.append(g)
            elif exp.train.optimizer == "momentum":
                m1[i] = 0.9 * m1[i] + g
                steps.append(m1[i])
            else:
                m1[i] = 0.9 * m1[i] + 0.1 * g
                m2[i] = 0.999 * m2[i] + 0.001 * g * g
                steps.append((m1[i] / (1 - 0.9**t)) / ((m2[i] / (1 - 0.999**t)).sqrt() + 1e-8))
        n = len(w)
        w[:] = [w[l] - lr * (steps[l] + decay * w[l]) for l in range(n)]
        b[:] = [b[l] - lr[:, :, 0] * steps[n + l] for l in range(n)]
        sig = Signals(pre, post, der, e, y, w, w[1:], noise).restrict(rule.signals)
        state = rule.feedback(state, sig, m, steps[:n], lr, decay)
    return w, b


# float32: the fused update and the written-out softmax round differently from the reference;
# after 30 steps the weights (O(0.1-1)) agree to ~1e-6 relative
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-5)}


@pytest.mark.parametrize("rule,optimizer,dtype", [
    ("backprop", "sgd", "float64"), ("backprop", "momentum", "float64"),
    ("backprop", "adam", "float64"), ("feedback_alignment", "sgd", "float64"),
    ("kolen_pollack", "sgd", "float64"), ("kolen_pollack", "adam", "float64"),
    ("oja", "momentum", "float64"),
    ("backprop", "sgd", "float32"), ("feedback_alignment", "adam", "float32"),
])
def test_trainer_step_equals_the_unfused_formula(rule, optimizer, dtype):
    exp = experiment(rule, optimizer, dtype)
    reps = [r.__class__(r.seed, lr, wd, r.init_scale, r.run_id)
            for r, lr, wd in zip(default_replicas(exp), LRS, WD)]
    result = train(exp, reps)
    want_w, want_b = reference(exp, reps, result.context.dtype)
    net = result.context.net
    assert result.status == ["ok"] * 3
    for got, want in zip(net.weights + net.biases, want_w + want_b):
        torch.testing.assert_close(got, want, **TOL[dtype])
