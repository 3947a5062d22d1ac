"""backprop's updates equal torch.autograd gradients of the same loss (the ground truth)."""

from __future__ import annotations

import pytest
import torch

from lrsim.models.rate import ACTIVATIONS, RateNetwork
from lrsim.rules import rules
from tests.conftest import make_signals


def autograd_grads(net: RateNetwork, x, t, activation: str, loss: str):
    """Gradients of the mean-over-batch loss by autograd on an independent torch graph."""
    ws = [w.clone().requires_grad_(True) for w in net.weights]
    bs = [b.clone().requires_grad_(True) for b in net.biases]
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
           "linear": lambda z: z, "elu": torch.nn.functional.elu,
           "softplus": lambda z: torch.log1p(torch.exp(z)),
           "leaky_relu": lambda z: torch.where(z > 0, z, 0.01 * z),
           "silu": lambda z: z / (1 + torch.exp(-z))}[activation]
    h = x
    for l, (w, b) in enumerate(zip(ws, bs)):
        h = torch.einsum("kni,koi->kno", h, w) + b[:, None, :]
        if l < len(ws) - 1:
            h = act(h)
    if loss == "cross_entropy":
        per = torch.nn.functional.cross_entropy(h.reshape(-1, h.shape[-1]),
                                                t.argmax(-1).reshape(-1), reduction="none")
        total = per.view(t.shape[:2]).mean(1).sum()
    else:
        total = (0.5 * ((h - t) ** 2).sum(-1).mean(1)).sum()  # sum over replicas: independent
    total.backward()
    return [w.grad for w in ws], [b.grad for b in bs]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_backprop_equals_autograd(activation: str, loss: str):
    torch.manual_seed(1)
    net = RateNetwork([7, 6, 5, 4], activation, seeds=[3, 4], dtype=torch.float64)
    # shift biases so relu units are not exactly at 0 and all paths are exercised
    for b in net.biases:
        b += 0.1 * torch.randn_like(b)
    x = torch.randn(2, 9, 7, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 9))
    t = torch.nn.functional.one_hot(labels, 4).double() if loss == "cross_entropy" \
        else torch.randn(2, 9, 4, dtype=torch.float64)
    rule = rules.create("backprop")
    updates = rule.update(rule.init(net.weights, net.generators),
                          make_signals(net, x, t, loss))
    gw, gb = autograd_grads(net, x, t, activation, loss)
    for l, (uw, ub) in enumerate(updates):
        torch.testing.assert_close(uw, gw[l], rtol=1e-6, atol=1e-12, msg=f"W{l + 1}")
        torch.testing.assert_close(ub, gb[l], rtol=1e-6, atol=1e-12, msg=f"b{l + 1}")


def test_feedback_alignment_with_transposed_weights_is_backprop(small_net):
    net, x, t = small_net
    fa = rules.create("feedback_alignment")
    state = fa.init(net.weights, net.generators)
    state["B"] = [None] + [w.transpose(1, 2).clone() for w in net.weights[1:]]
    sig = make_signals(net, x, t)
    bp = rules.create("backprop")
    for (fw, fb), (bw, bb) in zip(fa.update(state, sig), bp.update({}, sig)):
        torch.testing.assert_close(fw, bw, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(fb, bb, rtol=1e-12, atol=1e-14)


def test_feedback_alignment_with_random_feedback_differs_from_backprop(small_net):
    """The FA test above would pass trivially if B were ignored; with random B it must differ."""
    net, x, t = small_net
    fa = rules.create("feedback_alignment")
    sig = make_signals(net, x, t)
    fa_w = fa.update(fa.init(net.weights, net.generators), sig)[0][0]
    bp_w = rules.create("backprop").update({}, sig)[0][0]
    assert not torch.allclose(fa_w, bp_w)


def test_the_experiment_file_accepts_exactly_the_activations_the_network_has():
    """The activations `[model] activation` allows (config) and those RateNetwork implements
    are one list: a name in one and not the other would fail late or never be reachable."""
    from typing import get_args

    from lrsim.config import ModelSpec

    allowed = set(get_args(ModelSpec.model_fields["activation"].annotation))
    assert allowed == set(ACTIVATIONS)
