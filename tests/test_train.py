"""The batched trainer: replicas are independent, runs are reproducible, divergence is contained,
and the optimizers match torch.optim."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from lrsim.config import parse, replicas
from lrsim.models.rate import train
from lrsim.optimizers import optimizers
from lrsim.rules import rules
from tests.conftest import make_signals


def _exp(**over):
    base = {"seed": 3, "device": "cpu", "dtype": "float64",
            "task": {"name": "gaussian_mixture", "samples": 300, "dim": 10},
            "model": {"hidden": [12, 8], "activation": "tanh"},
            "rule": {"name": "feedback_alignment"},
            "train": {"optimizer": "momentum", "lr": 0.05, "batch_size": 16, "steps": 60,
                      "replicas": 3}}
    for key, value in over.items():
        section, _, field = key.partition(".")
        if field:
            base.setdefault(section, {})[field] = value
        else:
            base[section] = value
    return parse(base)


@pytest.mark.parametrize("rule", ["feedback_alignment", "weight_mirror", "four_synapse"])
def test_replicas_trained_together_equal_one_at_a_time(rule: str):
    """Also for noise-driven rules: each replica draws from its own noise stream."""
    exp = _exp(rule={"name": rule})
    reps = [dataclasses.replace(r, lr=lr) for r, lr in zip(replicas(exp), [0.02, 0.05, 0.1])]
    together = train(exp, reps).context.net
    for k, rep in enumerate(reps):
        alone = train(exp, [rep]).context.net
        for w_all, w_one in zip(together.weights, alone.weights):
            torch.testing.assert_close(w_all[k], w_one[0], rtol=1e-10, atol=1e-12)


def test_same_seed_same_result_and_different_seed_differs():
    a = train(_exp()).context.net.weights[0]
    b = train(_exp()).context.net.weights[0]
    c = train(_exp(seed=4)).context.net.weights[0]
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_diverging_replica_is_marked_and_others_go_on():
    exp = _exp(**{"rule": {"name": "backprop"}, "train.optimizer": "sgd", "train.steps": 200,
                  "task": {"name": "teacher_student", "samples": 300},
                  "model.activation": "relu"})
    reps = [dataclasses.replace(r, lr=lr) for r, lr in zip(replicas(exp), [0.01, 20.0, 0.01])]
    result = train(exp, reps)
    assert result.status == ["ok", "diverged", "ok"]
    assert 0 <= result.diverged_step[1] < 200
    assert np.isfinite(result.final_loss[[0, 2]]).all()
    assert np.isnan(result.final_loss[1])


def test_update_is_lr_times_step_plus_decay():
    """One sgd step by hand: W1 = W0 - lr (g + (lambda + wd) W0), g from the rule itself."""
    exp = _exp(**{"rule": {"name": "hebb", "decay": 0.5}, "train.optimizer": "sgd",
                  "train.steps": 1, "train.weight_decay": 0.1, "train.replicas": 1})
    rep = replicas(exp)
    start = train(exp, rep)
    # rebuild the first batch independently and apply the equation
    from lrsim.models.rate.train import BatchSampler, build

    task, net, learner = build(exp, rep, torch.device("cpu"), torch.float64)
    w0 = [w.clone() for w in net.weights]
    idx = BatchSampler(len(task.x_train), 16, [rep[0].seed], torch.device("cpu")).next()
    sig = make_signals(net, task.x_train[idx], task.y_train[idx], "cross_entropy")
    grads = learner.rule.update(learner.rule_state, sig)
    for l, (g, _) in enumerate(grads):
        expected = w0[l] - 0.05 * (g + (0.5 + 0.1) * w0[l])
        torch.testing.assert_close(start.context.net.weights[l], expected)


@pytest.mark.parametrize("name,reference", [
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.1)),
    ("momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    ("adam", lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.9, 0.999), eps=1e-8)),
])
def test_optimizers_match_torch_optim(name, reference):
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    grads = [torch.randn(2, 4, 3, generator=gen, dtype=torch.float64) for _ in range(6)]
    ours = p0.clone()
    opt = optimizers.create(name)
    state = opt.init([ours])
    ref_p = torch.nn.Parameter(p0.clone())
    ref = reference([ref_p])
    for g in grads:
        (step,), state = opt.transform([g], state)
        ours -= 0.1 * step
        ref.zero_grad()
        ref_p.grad = g.clone()
        ref.step()
    torch.testing.assert_close(ours, ref_p.detach(), rtol=1e-10, atol=1e-12)


class _AngleToGradient:
    """Observer measuring the angle between FA's delivered update of the first layer and the
    true gradient (backprop) on a fixed batch."""

    def __init__(self):
        self.angles: list[float] = []

    def steps(self, total):
        return list(range(0, total + 1, total // 10))

    def start(self, ctx):
        gen = torch.Generator().manual_seed(0)
        idx = torch.randint(0, len(ctx.task.x_train), (256,), generator=gen)
        self.x = ctx.task.x_train[idx].unsqueeze(0).expand(ctx.net.K, -1, -1)
        self.t = ctx.task.y_train[idx].unsqueeze(0).expand(ctx.net.K, -1, -1)

    def record(self, step, ctx):
        sig = make_signals(ctx.net, self.x, self.t, "cross_entropy")
        fa = ctx.rule.update(ctx.rule_state, sig)[0][0].flatten(1)
        bp = rules.create("backprop").update({}, sig)[0][0].flatten(1)
        cos = (fa * bp).sum(1) / (fa.norm(dim=1) * bp.norm(dim=1))
        self.angles.append(float(torch.rad2deg(torch.arccos(cos)).mean()))


def test_feedback_alignment_update_aligns_with_the_gradient_on_digits():
    exp = parse({"seed": 0, "device": "cpu", "task": {"name": "digits"},
                 "model": {"hidden": [64, 64]}, "rule": {"name": "feedback_alignment"},
                 "train": {"lr": 0.05, "steps": 1500, "replicas": 2}})
    probe = _AngleToGradient()
    train(exp, observers=[probe])
    assert probe.angles[0] == pytest.approx(90, abs=15)  # random B: no alignment at first
    assert max(probe.angles[-3:]) < 80, probe.angles  # learning aligns W with B
    assert not math.isnan(probe.angles[-1])
