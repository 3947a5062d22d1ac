"""Every conv rule through the real trainer on conv layers, against ground truths: backprop's
trained weights equal torch autograd + SGD on the same minibatches; a replica trained in a
batch equals the replica trained alone; Kolen-Pollack's B - W contracts by exactly (1 - lr d)
per step, so B converges to W's kernels; the wired four-synapse circuit is Kolen-Pollack."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrsim.config import parse
from lrsim.models.rate.train import BatchSampler, train

CONV_RULES = ["backprop", "feedback_alignment", "direct_feedback_alignment", "sign_symmetry",
              "kolen_pollack", "weight_mirror", "symmetric_alignment", "activation_alignment",
              "information_alignment", "four_synapse"]


def conv_exp(rule: str = "backprop", steps: int = 20, replicas: int = 2, **model) -> object:
    m = {"conv": [4, 6], "pool": 2, "hidden": [8], **model}
    r = rule if isinstance(rule, dict) else {"name": rule}
    return parse({"dtype": "float64", "device": "cpu", "task": {"name": "digits"}, "model": m,
                  "rule": r, "train": {"lr": 0.05, "steps": steps, "replicas": replicas,
                                       "batch_size": 16}})


@pytest.mark.parametrize("rule", CONV_RULES)
def test_every_conv_rule_trains_and_a_replica_alone_equals_it_in_a_batch(rule: str):
    exp = conv_exp(rule, steps=15, replicas=3)
    both = train(exp)
    assert both.status == ["ok"] * 3 and np.isfinite(both.final_loss).all()
    w_batch = both.context.net.weights
    rep = both.replicas[2]
    alone = train(exp, [rep])
    for wb, wa in zip(w_batch, alone.context.net.weights):
        torch.testing.assert_close(wb[2], wa[0], rtol=0, atol=1e-12)


def test_backprop_trainer_equals_autograd_sgd_on_the_same_minibatches():
    """The trainer's conv backprop + sgd, 12 steps, vs autograd through F.conv2d -> relu ->
    max_pool2d (twice) -> linear -> relu -> linear from the same initial weights, on the
    minibatches the trainer's sampler draws for that replica."""
    from lrsim.config import replicas
    from lrsim.models.rate.train import build

    exp = conv_exp("backprop", steps=12, replicas=1)
    rep = replicas(exp)
    task, net, _ = build(exp, rep, torch.device("cpu"), torch.float64)
    params = [t[0].clone().requires_grad_() for pair in zip(net.weights, net.biases)
              for t in pair]
    sampler = BatchSampler(len(task.x_train), 16, [rep[0].seed], torch.device("cpu"))
    for _ in range(12):
        idx = sampler.next()[0]
        out = reference_forward(params, task.x_train[idx])
        loss = F.cross_entropy(out, task.labels_train[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= 0.05 * g
    got = train(exp).context.net
    mine = [t[0] for pair in zip(got.weights, got.biases) for t in pair]
    for a, b in zip(mine, params):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-10)


def reference_forward(params, x):
    h = x.reshape(len(x), 1, 8, 8)
    h = F.max_pool2d(torch.relu(F.conv2d(h, params[0].view(4, 1, 3, 3), params[1], 1, 1)), 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, params[2].view(6, 4, 3, 3), params[3], 1, 1)), 2)
    h = torch.relu(F.linear(h.flatten(1), params[4], params[5]))
    return F.linear(h, params[6], params[7])


class FeedbackGap:
    """Observer: ||B_l - W_l||_F (the feedback convention of each layer) at every step."""

    def __init__(self):
        self.gaps: list[np.ndarray] = []

    def steps(self, total_steps: int) -> list[int]:
        return list(range(total_steps + 1))

    def start(self, ctx) -> None:
        pass

    def record(self, step: int, ctx) -> None:
        b, w, layers = ctx.rule_state["B"], ctx.net.weights, ctx.net.layers
        self.gaps.append(np.stack([
            (b[l] - layers[l].as_feedback(w[l])).flatten(1).norm(dim=1).numpy()
            for l in range(1, len(w))], axis=1))


def kp_run(optimizer: str, lr: float, decay: float, steps: int):
    exp = parse({"dtype": "float64", "device": "cpu", "task": {"name": "digits"},
                 "model": {"conv": [4, 6], "pool": 2, "hidden": []},
                 "rule": {"name": "kolen_pollack", "decay": decay},
                 "train": {"optimizer": optimizer, "lr": lr, "steps": steps, "replicas": 2,
                           "batch_size": 16}})
    rec = FeedbackGap()
    result = train(exp, observers=[rec])
    return result, np.stack(rec.gaps)  # (time, K, layer)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_kolen_pollack_kernel_gap_contracts_by_one_minus_lr_decay(optimizer: str):
    """B - W of every conv (and dense) layer shrinks by exactly (1 - lr lambda) per step: B
    takes W's optimizer step and W's decay."""
    _, gaps = kp_run(optimizer, 0.05, 0.5, 25)
    np.testing.assert_allclose(gaps[1:] / gaps[:-1], 1 - 0.05 * 0.5, rtol=1e-9)


def test_kolen_pollack_feedback_kernels_converge_to_the_forward_kernels():
    """Adam keeps W learning while B - W contracts: after 1000 steps the gap is
    (1 - 0.005)^1000 = 0.7% of where it started and angle(B, W) of the conv kernels is
    below 1 degree (it starts at ~90), with the networks learning digits."""
    result, gaps = kp_run("adam", 0.01, 0.5, 1000)
    assert (result.alignment_deg[:, 1:] < 1.0).all(), result.alignment_deg
    assert (result.test_accuracy > 0.8).all(), result.test_accuracy


def test_wired_four_synapse_on_conv_layers_is_kolen_pollack():
    """Wired four-synapse circuit (U = V = I) under sgd: B's Hebbian term on a conv layer is
    the correlation W's gradient is made of (summed over positions, as W's), so B_l - W_l
    contracts by exactly (1 - lr lambda) per step on conv and dense layers alike: Kolen-Pollack
    (with a mean over positions, B went to W / P, its credit P times too small per layer)."""
    lr, decay = 0.05, 0.5
    exp = conv_exp({"name": "four_synapse", "variant": "wired", "decay": decay}, steps=1)
    exp = parse({**exp.resolved(), "train": {**exp.resolved()["train"], "lr": lr,
                                              "steps": 20}})
    rec = FeedbackGap()
    train(exp, observers=[rec])
    g = np.stack(rec.gaps)
    np.testing.assert_allclose(g[1:] / g[:-1], 1 - lr * decay, rtol=1e-9)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("rule", ["backprop", "kolen_pollack", "direct_feedback_alignment"])
def test_conv_training_on_cuda_matches_cpu_in_float64(rule: str):
    data = conv_exp(rule, steps=10).resolved()
    exp = parse({**data, "train": {**data["train"], "data_order": "device"}})  # same on both
    cpu = train(exp).context.net.weights
    gpu = train(parse({**exp.resolved(), "device": "cuda"})).context.net.weights
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-9)
