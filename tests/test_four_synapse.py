"""The four-synapse circuit: its updates against a per-sample numpy loop, `wired` against
Kolen-Pollack update for update, and self-assembly from random W, B, U, V."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrsim.config import parse
from lrsim.errors import ConfigError
from lrsim.models.rate import RateNetwork, train
from lrsim.rules import rules
from lrsim.rules.base import alignment_angles
from lrsim.rules.four_synapse import diagonal_fraction
from tests.conftest import make_signals


class Recorder:
    """Observer: copies of weights and feedback matrices, angles and U/V diagonal fractions."""

    def __init__(self, every: int = 1):
        self.every = every
        self.weights, self.feedback, self.angles, self.diag = [], [], [], []

    def steps(self, total_steps: int) -> list[int]:
        return list(range(0, total_steps + 1, self.every))

    def start(self, ctx) -> None:
        pass

    def record(self, step: int, ctx) -> None:
        st = ctx.rule_state
        self.weights.append([w.clone() for w in ctx.net.weights])
        self.feedback.append([None if b is None else b.clone() for b in st["B"]])
        self.angles.append(alignment_angles(ctx.rule, st, ctx.net.weights).numpy())
        if "U" in st and st["U"][0] is not None:
            mats = [m for m in st["U"] + st["V"] if m is not None]
            self.diag.append(np.stack([diagonal_fraction(m).numpy() for m in mats], axis=1))


def test_updates_match_per_sample_loop():
    """gW_l = <(U_l g_l) h_{l-1}^T>, dB_l = <(V_{l-1} h_{l-1}) g_l^T> + lambda B_l, with random
    U, V, checked against an explicit numpy loop over samples."""
    net = RateNetwork([6, 5, 4, 3], "tanh", seeds=[3, 4], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 6, generator=gen, dtype=torch.float64)
    t = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 7), generator=gen), 3).double()
    rule = rules.create("four_synapse", variant="self_assembling", decay=0.1)
    state = rule.init(net.weights, net.generators)
    sig = make_signals(net, x, t, "mse").restrict(rule.signals)
    g = rule.credit(state, sig)
    updates = rule.plasticity(state, sig, g)
    lr = 0.2
    new = rule.feedback(state, sig, g, [u for u, _ in updates],
                        torch.full((2, 1, 1), lr, dtype=torch.float64))
    fw = net.forward(x)
    for k in range(2):
        # descending stream, per sample: g_L = e, g_{l-1} = (B_l g_l) * f'(z_{l-1})
        gs = [None] * 3
        gs[2] = (fw.z[2][k] - t[k]).numpy()
        for l in (2, 1):
            bl = state["B"][l][k].numpy()
            fprime = fw.derivative[l - 1][k].numpy()
            gs[l - 1] = np.stack([bl @ gs[l][n] for n in range(7)]) * fprime
        for l in range(3):
            u = state["U"][l][k].numpy()
            h = fw.pre[l][k].numpy()
            gw = sum(np.outer(u @ gs[l][n], h[n]) for n in range(7)) / 7
            np.testing.assert_allclose(updates[l][0][k].numpy(), gw, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(updates[l][1][k].numpy(),
                                       np.mean([u @ gs[l][n] for n in range(7)], 0), rtol=1e-10)
            if l == 0:
                continue
            v = state["V"][l - 1][k].numpy()
            bl = state["B"][l][k].numpy()
            db = sum(np.outer(v @ h[n], gs[l][n]) for n in range(7)) / 7 + 0.1 * bl
            np.testing.assert_allclose(new["B"][l][k].numpy(), bl - lr * db, rtol=1e-10,
                                       atol=1e-12)


def test_variant_is_validated():
    with pytest.raises(ConfigError, match="variant"):
        rules.resolve("four_synapse", {"variant": "hardwired"})


@pytest.mark.parametrize("optimizer", ["sgd"])
def test_wired_equals_kolen_pollack_update_for_update(optimizer: str):
    """U = V = I: the same trajectory as Kolen-Pollack (same seeds, float64), every step."""
    runs = {}
    for name, extra in (("kolen_pollack", {}), ("four_synapse", {"variant": "wired"})):
        exp = parse({"dtype": "float64", "device": "cpu", "seed": 3,
                     "model": {"hidden": [16, 12]},
                     "rule": {"name": name, "decay": 0.05, **extra},
                     "train": {"optimizer": optimizer, "steps": 40, "replicas": 2}})
        rec = Recorder()
        train(exp, observers=[rec])
        runs[name] = rec
    kp, fs = runs["kolen_pollack"], runs["four_synapse"]
    assert len(kp.weights) == len(fs.weights) == 41
    for step in range(41):
        for a, b in zip(kp.weights[step], fs.weights[step]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        for a, b in zip(kp.feedback[step][1:], fs.feedback[step][1:]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert not torch.equal(kp.feedback[0][1], kp.feedback[-1][1])  # B did learn


def test_self_assembly_from_random_connectivity():
    """Random W, B, U, V: U and V become diagonal-dominant and angle(B, W^T) falls from ~90
    degrees to below 45 (shortened schedule: one hidden layer, decay 0.1, 600 steps; measured:
    U, V diagonal fraction 0.2 -> 0.98 within 100 steps, angle 90 -> 46 deg at step 200, 9 deg
    at step 500)."""
    exp = parse({"device": "cpu", "seed": 0, "model": {"hidden": [32]},
                 "rule": {"name": "four_synapse", "variant": "self_assembling", "decay": 0.1},
                 "train": {"steps": 600, "replicas": 2}})
    rec = Recorder(every=100)
    result = train(exp, observers=[rec])
    assert result.status == ["ok", "ok"]
    angles = np.stack(rec.angles)[:, :, 1]  # (time, K) of the one B
    diag = np.stack(rec.diag)  # (time, K, matrix)
    assert np.all(angles[0] > 75) and np.all(diag[0] < 0.35)
    assert np.all(angles[-1] < 45), angles[-1]
    assert np.all(diag[-1] > 0.8), diag[-1]
    assert result.test_accuracy.mean() > 0.5  # it learns (chance: 0.1)


@pytest.mark.slow
def test_self_assembling_on_digits_defaults():
    """Default hyperparameters, 5 seeds in one run: assembles (angle < 45, U, V diagonal-
    dominant) and learns digits; the goal (not asserted) is within 3 points of backprop."""
    base = {"device": "cpu", "seed": 0, "train": {"steps": 3000, "replicas": 5}}
    rec = Recorder(every=250)
    result = train(parse({**base, "rule": {"name": "four_synapse"}}), observers=[rec])
    assert result.status == ["ok"] * 5
    angles = np.stack(rec.angles)[:, :, 1:]
    assert np.all(angles[-1] < 45), angles[-1]
    assert np.all(np.stack(rec.diag)[-1] > 0.8)
    assert result.test_accuracy.mean() >= 0.93, result.test_accuracy
