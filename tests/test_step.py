"""The learning step both substrates call (`lrsim.models.step.LearningStep`), against independent
references: torch autograd and torch.optim (AdamW's decoupled decay is the step's
W <- W (1 - lr d) - lr adam(gW)), and numpy for the spiking bridge.

The bias decision, tested in both substrates: a bias is a parameter like a weight, through the
same optimizer (own state), same learning rate, no decay; a network without biases (a rate
network with bias = false, the spiking network) sends only weight terms through the optimizer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brian2 import BrianLogger, ms

from lrsim.config import parse
from lrsim.errors import ConfigError
from lrsim.layers import Dense
from lrsim.models.rate import RateNetwork
from lrsim.models.rate.train import build
from lrsim.models.step import LearningStep
from lrsim.optimizers import optimizers
from lrsim.rules import rules
from tests.conftest import make_signals


def _net(bias: bool) -> tuple[RateNetwork, torch.Tensor, torch.Tensor]:
    net = RateNetwork([5, 4, 3], "tanh", bias=bias, seeds=[1, 2], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    for b in net.biases:
        b.copy_(0.3 * torch.randn(b.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 7, 5, generator=gen, dtype=torch.float64)
    t = torch.randn(2, 7, 3, generator=gen, dtype=torch.float64)
    return net, x, t


def _reference_loss(ws, bs, x, t):
    """0.5 mean_n ||z - t||^2 summed over replicas, written with einsum (not the network)."""
    h = x
    for l, w in enumerate(ws):
        h = torch.einsum("kni,koi->kno", h, w) + (bs[l][:, None, :] if bs is not None else 0)
        if l < len(ws) - 1:
            h = torch.tanh(h)
    return (0.5 * ((h - t) ** 2).sum(-1).mean(-1)).sum()


def test_rate_bias_goes_through_the_optimizer_without_decay():
    """Two Adam steps with weight decay: W as torch.optim.AdamW(weight_decay=d), b as Adam."""
    net, x, t = _net(bias=True)
    lr, d = 0.01, 0.3
    ws = [w.clone().requires_grad_() for w in net.weights]
    bs = [b.clone().requires_grad_() for b in net.biases]
    ref_w = torch.optim.AdamW(ws, lr=lr, weight_decay=d, eps=1e-8)
    ref_b = torch.optim.Adam(bs, lr=lr, eps=1e-8)
    learner = LearningStep(rules.create("backprop"), optimizers.create("adam"), net.weights,
                           net.biases, net.layers, net.generators, weight_decay=d)
    lr_t = torch.full((2, 1, 1), lr, dtype=torch.float64)
    for _ in range(2):
        learner.step(make_signals(net, x, t), net.weights, net.biases, lr_t)
        ref_w.zero_grad()
        ref_b.zero_grad()
        _reference_loss(ws, bs, x, t).backward()
        ref_w.step()
        ref_b.step()
        for ours, ref in zip(net.weights + net.biases, ws + bs):
            torch.testing.assert_close(ours, ref.detach(), rtol=1e-10, atol=1e-12)
    assert len(learner.opt_state["m"]) == 2 * net.n_layers  # weights and biases


def test_rate_network_without_bias_sends_only_weights_through_the_optimizer():
    net, x, t = _net(bias=False)
    before = [b.clone() for b in net.biases]
    learner = LearningStep(rules.create("backprop"), optimizers.create("momentum"),
                           *net.parameters, net.layers, net.generators)
    assert net.parameters[1] is None
    learner.step(make_signals(net, x, t), *net.parameters, torch.full((2, 1, 1), 0.1,
                                                                      dtype=torch.float64))
    assert len(learner.opt_state["v"]) == net.n_layers
    for b, b0 in zip(net.biases, before):
        assert torch.equal(b, b0)


def test_rate_trainer_uses_the_step_with_its_bias_setting():
    for bias in (True, False):
        exp = parse({"device": "cpu", "dtype": "float64", "model": {"hidden": [6], "bias": bias},
                     "task": {"name": "gaussian_mixture", "samples": 50, "dim": 4},
                     "train": {"optimizer": "adam", "replicas": 2}})
        from lrsim.config import replicas

        _, net, learner = build(exp, replicas(exp), torch.device("cpu"), torch.float64)
        assert learner.has_bias is bias
        assert len(learner.opt_state["m"]) == net.n_layers * (2 if bias else 1)


def test_spiking_bridge_step_equals_the_equation_and_has_no_biases():
    """The spiking bridge's update from one batch of trials: W1 = clip(W0 (1 - lr d) - lr gW),
    gW = <delta h^T> by backprop through the bridge's linear surrogate, computed in numpy from
    the bridge's own signals; the optimizer (momentum, first step: step = gW) holds only W."""
    from lrsim.models.spiking.learning import LearningParams, Schedule, TaskNetwork
    from lrsim.models.spiking.network import NetworkParams, configure
    from lrsim.models.tasks import tasks

    BrianLogger.suppress_name("unused_brian_object")  # the network is built, never run
    configure("numpy", dt=0.2 * ms)
    task = tasks.create("digits")
    x, lab = task.x_train.numpy()[:2], task.labels_train.numpy()[:2]
    lr, wd = 0.05, 0.01
    net = TaskNetwork([64, 30], 10, Schedule(x, lab, ["train"] * 2), rules.create("backprop"),
                      optimizers.create("momentum"), lr, wd, 4, NetworkParams(),
                      LearningParams(trial=40 * ms, settle=10 * ms))
    assert not net.learner.has_bias
    rng = np.random.default_rng(0)
    sizes = [64, 30, 100]
    net._batch = [([rng.uniform(0, 1, n) for n in sizes], rng.uniform(0, 1, 100))
                  for _ in range(3)]
    sig = net.signals(net._batch)
    w0 = [w[0].numpy().copy() for w in sig.own_weights]
    pre = [p[0].numpy() for p in sig.pre]
    delta = [None, sig.output_error[0].numpy()]
    delta[0] = delta[1] @ w0[1]  # derivative 1: the bridge's linear surrogate
    net._update()
    assert len(net.learner.opt_state["v"]) == len(net.projections)
    for l, pr in enumerate(net.projections):
        g = delta[l].T @ pre[l] / len(pre[l])
        want = np.clip(w0[l] * (1 - lr * wd) - lr * g, 0, net.lp.w_max)[pr.j, pr.i]
        np.testing.assert_allclose(np.asarray(pr.synapses.w[:]), want, rtol=1e-12, atol=1e-14)


def test_a_rule_refuses_layer_kinds_it_is_not_written_for():
    class Conv(Dense):
        kind = "conv2d"

    net, _, _ = _net(bias=True)
    with pytest.raises(ConfigError, match="rule 'oja' is defined for dense layers only"):
        LearningStep(rules.create("oja"), optimizers.create("sgd"), net.weights, net.biases,
                     [Conv()] * net.n_layers, net.generators)
