"""Shared fixtures: small random networks and their signals, built independently of the trainer."""

from __future__ import annotations

import pytest
import torch

from lrsim.models.rate import RateNetwork, loss_and_error
from lrsim.rules.base import Signals


def make_signals(net: RateNetwork, x: torch.Tensor, target: torch.Tensor, loss: str = "mse",
                 seed: int = 0) -> Signals:
    """Signals of one forward pass of `net` on x (K, N, n_in)."""
    fw = net.forward(x)
    _, e = loss_and_error(fw.z[-1], target, loss)
    return Signals(pre=fw.pre, post=fw.post, derivative=fw.derivative, output_error=e,
                   target=target, own_weights=net.weights, downstream_weights=net.weights[1:],
                   noise=torch.Generator().manual_seed(seed))


@pytest.fixture
def small_net():
    """Three replicas of a 3-layer tanh network in float64 with a random batch."""
    torch.manual_seed(0)
    net = RateNetwork([6, 5, 4, 3], "tanh", seeds=[1, 2, 3], dtype=torch.float64)
    x = torch.randn(3, 8, 6, dtype=torch.float64)
    t = torch.nn.functional.one_hot(torch.randint(0, 3, (3, 8)), 3).double()
    return net, x, t


# Small tensors: one intra-op thread is faster and immune to a busy machine's scheduling.
torch.set_num_threads(1)
