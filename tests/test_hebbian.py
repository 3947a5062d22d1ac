"""Hebbian rules against numpy's eigenvectors (Oja, Sanger) and their defining directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrsim.models.rate import RateNetwork
from lrsim.rules import rules
from tests.conftest import make_signals


def _covariance(dim: int, seed: int) -> np.ndarray:
    """A covariance with well separated eigenvalues 4, 2.5, 1.5, then small ones."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eig = np.concatenate([[4.0, 2.5, 1.5], np.linspace(0.4, 0.1, dim - 3)])
    return (q * eig) @ q.T


def _train_hidden_layer(rule_name: str, n_hidden: int, steps: int = 2000, lr: float = 0.01):
    """Train the first (linear) layer of [dim, n_hidden, 2] with the rule's own updates."""
    dim = 8
    cov = _covariance(dim, seed=3)
    chol = np.linalg.cholesky(cov)
    rng = np.random.default_rng(4)
    net = RateNetwork([dim, n_hidden, 2], "linear", bias=False, seeds=[0, 1],
                      init_scale=0.3, dtype=torch.float64)
    rule = rules.create(rule_name)
    state = rule.init(net.weights, net.generators)
    for _ in range(steps):
        x = torch.as_tensor(rng.standard_normal((2, 16, dim)) @ chol.T)
        t = torch.zeros(2, 16, 2, dtype=torch.float64)
        (gw, _), _ = rule.update(state, make_signals(net, x, t))
        net.weights[0] -= lr * gw
    return net.weights[0].numpy(), np.linalg.eigh(cov)


def test_oja_finds_the_first_principal_component():
    w, (vals, vecs) = _train_hidden_layer("oja", n_hidden=1)
    top = vecs[:, np.argmax(vals)]
    for k in range(w.shape[0]):
        cos = abs(w[k, 0] @ top) / np.linalg.norm(w[k, 0])
        assert cos > 0.99, f"replica {k}: |cos| = {cos:.4f}"
        assert np.linalg.norm(w[k, 0]) == pytest.approx(1.0, abs=0.05)  # Oja normalises


def test_sanger_rows_are_the_top_components_in_order():
    w, (vals, vecs) = _train_hidden_layer("sanger", n_hidden=3, steps=4000)
    order = np.argsort(vals)[::-1][:3]
    for k in range(w.shape[0]):
        for i, j in enumerate(order):
            cos = abs(w[k, i] @ vecs[:, j]) / np.linalg.norm(w[k, i])
            assert cos > 0.99, f"replica {k}, row {i}: |cos| with eigenvector {i} = {cos:.4f}"


def test_hebb_update_is_post_times_pre_minus_decay(small_net):
    """dW = eta (y x^T - lambda W), written out by hand with numpy."""
    net, x, t = small_net
    rule = rules.create("hebb", decay=0.3)
    updates = rule.update(rule.init(net.weights, net.generators), make_signals(net, x, t))
    fw = net.forward(x)
    y, pre = fw.post[0].numpy(), fw.pre[0].numpy()
    expected = -np.einsum("kni,knj->kij", y, pre) / x.shape[1]  # gradient-like sign
    np.testing.assert_allclose(updates[0][0].numpy(), expected, rtol=1e-12)
    assert rule.decay == 0.3  # the trainer adds lambda W (tested in test_train.py)
    # the clamped output layer learns from the target, not from its own activity
    out = -np.einsum("kni,knj->kij", t.numpy(), fw.pre[-1].numpy()) / x.shape[1]
    np.testing.assert_allclose(updates[-1][0].numpy(), out, rtol=1e-12)


def test_bcm_potentiates_above_and_depresses_below_threshold(small_net):
    """BCM: dW_ij ~ y_i (y_i - theta_i) x_j: for rates (relu, x >= 0) the sign of the change
    follows y - theta."""
    _, x, t = small_net
    net = RateNetwork([6, 5, 4, 3], "relu", seeds=[1, 2, 3], dtype=torch.float64)
    x = x.abs()
    rule = rules.create("bcm")
    sig = make_signals(net, x, t)
    ones = [torch.ones_like(sig.post[l][:, 0]) for l in range(net.n_layers - 1)]
    high = {"theta": [1e3 * o for o in ones]}  # theta far above y: depression
    low = {"theta": [0 * o for o in ones]}  # theta = 0: pure y^2 x potentiation
    assert (rule.update(high, sig)[0][0] >= 0).all()  # gradient-like >= 0: depression
    assert (rule.update(low, sig)[0][0] <= 0).all()  # potentiation
