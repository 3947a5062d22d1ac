"""Weight-estimation rules against analytic ground truths: Kolen-Pollack's exact contraction,
symmetric alignment's geometric convergence, weight mirror's fixed point, the fixed points of
activation and information alignment (numpy), and the digits accuracy of every rule (slow)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lrsim.cli import main as cli_main
from lrsim.config import Replica, parse
from lrsim.models.rate import train
from lrsim.rules import rules
from lrsim.rules.base import Signals

LEARNED = ["kolen_pollack", "weight_mirror", "symmetric_alignment", "activation_alignment",
           "information_alignment"]


class FeedbackRecorder:
    """Observer: ||B_l - W_l^T||_F per replica and layer (l >= 1) at every step."""

    def __init__(self):
        self.gaps: list[np.ndarray] = []

    def steps(self, total_steps: int) -> list[int]:
        return list(range(total_steps + 1))

    def start(self, ctx) -> None:
        pass

    def record(self, step: int, ctx) -> None:
        b, w = ctx.rule_state["B"], ctx.net.weights
        self.gaps.append(np.stack([
            (b[l] - w[l].transpose(1, 2)).flatten(1).norm(dim=1).numpy()
            for l in range(1, len(w))], axis=1))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_kolen_pollack_gap_shrinks_by_exactly_one_minus_lr_decay(optimizer: str):
    """Linear network, real trainer: ||B - W^T|| shrinks by (1 - lr lambda) every step, under
    sgd, momentum and Adam alike (B takes W's optimizer-transformed step)."""
    lr, decay = 0.01, 1.0
    exp = parse({"dtype": "float64", "device": "cpu", "task": {"name": "teacher_student"},
                 "model": {"hidden": [7, 5], "activation": "linear"},
                 "rule": {"name": "kolen_pollack", "decay": decay},
                 "train": {"optimizer": optimizer, "lr": lr, "steps": 25, "replicas": 2}})
    rec = FeedbackRecorder()
    train(exp, observers=[rec])
    gaps = np.stack(rec.gaps)  # (time, K, layer)
    ratios = gaps[1:] / gaps[:-1]
    np.testing.assert_allclose(ratios, 1 - lr * decay, rtol=1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("decay,weight_decay", [(1.0, (0.5, 2.0)), (0.0, (0.5, 3.0))])
def test_kolen_pollack_gap_shrinks_with_w_under_weight_decay(optimizer, decay, weight_decay):
    """With the run's weight decay wd_k on, W decays by (1 - lr (lambda + wd_k)) per step and so
    does B - W^T (per replica, wd differing between replicas; lambda = 0 included)."""
    lr = 0.01
    exp = parse({"dtype": "float64", "device": "cpu", "task": {"name": "teacher_student"},
                 "model": {"hidden": [7, 5], "activation": "linear"},
                 "rule": {"name": "kolen_pollack", "decay": decay},
                 "train": {"optimizer": optimizer, "lr": lr, "steps": 20, "replicas": 2}})
    reps = [Replica(seed=3 + k, lr=lr, weight_decay=wd, init_scale=1.0, run_id=f"r{k}")
            for k, wd in enumerate(weight_decay)]
    rec = FeedbackRecorder()
    train(exp, reps, observers=[rec])
    gaps = np.stack(rec.gaps)  # (time, K, layer)
    expect = 1 - lr * (decay + np.asarray(weight_decay))  # W's decay factor, per replica
    np.testing.assert_allclose(gaps[1:] / gaps[:-1], np.broadcast_to(expect[:, None],
                                                                     gaps[1:].shape), rtol=1e-10)


def test_kolen_pollack_feedback_decay_argument():
    """feedback(..., decay=d): B <- B - lr (step^T + d B), numpy; without it d = lambda."""
    rule = rules.create("kolen_pollack", decay=0.3)
    w = _weights(2, 4, 6, 7)
    b = _weights(2, 6, 4, 8)
    step = _weights(2, 4, 6, 9)
    lr = torch.tensor([0.1, 0.2], dtype=torch.float64).view(2, 1, 1)
    d = torch.tensor([0.3, 1.3], dtype=torch.float64).view(2, 1, 1)
    sig = _signals(_known_covariance(2, 10, 6, 0)[0], w).restrict(rule.signals)
    state = {"B": [None, b]}
    with_d = rule.feedback(state, sig, [], [step, step], lr, decay=d)["B"][1].numpy()
    without = rule.feedback(state, sig, [], [step, step], lr)["B"][1].numpy()
    bn, sn, ln, dn = b.numpy(), step.numpy().transpose(0, 2, 1), lr.numpy(), d.numpy()
    np.testing.assert_allclose(with_d, bn - ln * (sn + dn * bn), rtol=1e-12)
    np.testing.assert_allclose(without, bn - ln * (sn + 0.3 * bn), rtol=1e-12)


def _signals(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor | None = None) -> Signals:
    """Signals of a two-layer stack whose layer 1 has input x (K, N, n_in) and weights w."""
    k, n, n_in = x.shape
    y = torch.bmm(x, w.transpose(1, 2)) if y is None else y
    w0 = torch.zeros(k, n_in, 3, dtype=x.dtype)
    return Signals(pre=[torch.zeros(k, n, 3, dtype=x.dtype), x], post=[x, y],
                   derivative=[torch.ones_like(x), torch.ones_like(y)],
                   output_error=torch.zeros_like(y), target=torch.zeros_like(y),
                   own_weights=[w0, w], downstream_weights=[w],
                   noise=torch.Generator().manual_seed(5))


def _known_covariance(k: int, n: int, dim: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Zero-mean inputs whose second moment X^T X / N equals a chosen SPD Sigma exactly."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    sigma = a @ a.T / dim + 0.3 * np.eye(dim)
    xs = []
    for _ in range(k):
        z = rng.standard_normal((n, dim))
        z -= z.mean(0)
        white = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T  # Z^T Z / N = I
        xs.append(white @ np.linalg.cholesky(sigma).T)
    return torch.tensor(np.stack(xs)), sigma


def _iterate(name: str, params: dict, x: torch.Tensor, w: torch.Tensor, lr: float,
             steps: int) -> torch.Tensor:
    rule = rules.create(name, **params)
    state = {"B": [None, torch.randn(w.shape[0], w.shape[2], w.shape[1], dtype=w.dtype,
                                     generator=torch.Generator().manual_seed(1))]}
    sig = _signals(x, w).restrict(rule.signals)
    lr_t = torch.full((w.shape[0], 1, 1), lr, dtype=w.dtype)
    for _ in range(steps):
        state = rule.feedback(state, sig, [sig.output_error] * 2, [w, w], lr_t)
    return state["B"][1]


def _weights(k: int, n_out: int, n_in: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, n_out, n_in, generator=g, dtype=torch.float64) / n_in**0.5


def test_symmetric_alignment_contracts_to_w_transpose():
    """beta = 2 alpha: B_t - W^T = (1 - 2 alpha lr)^t (B_0 - W^T); angle < 5 degrees."""
    w = _weights(2, 4, 6, 0)
    x, _ = _known_covariance(2, 40, 6, 0)
    b0 = _iterate("symmetric_alignment", {"alpha": 0.5, "beta": 1.0}, x, w, 0.1, 0)
    b = _iterate("symmetric_alignment", {"alpha": 0.5, "beta": 1.0}, x, w, 0.1, 60)
    wt = w.transpose(1, 2)
    torch.testing.assert_close(b - wt, (1 - 0.1) ** 60 * (b0 - wt), rtol=1e-9, atol=1e-12)
    for kk in range(2):
        assert _angle_deg(b[kk].numpy(), wt[kk].numpy()) < 5


def test_activation_alignment_reaches_analytic_fixed_point():
    """Linear layer, input second moment Sigma (full rank): B -> (beta / 2 alpha) W^T."""
    alpha, beta = 0.4, 0.6
    x, sigma = _known_covariance(2, 50, 6, 1)
    w = _weights(2, 4, 6, 1)
    lr = 0.5 / (2 * alpha * np.linalg.eigvalsh(sigma).max())
    b = _iterate("activation_alignment", {"alpha": alpha, "beta": beta}, x, w, lr, 3000)
    expect = beta / (2 * alpha) * w.transpose(1, 2).numpy()
    rel = np.linalg.norm(b.numpy() - expect) / np.linalg.norm(expect)
    assert rel < 0.05


def test_information_alignment_reaches_ridge_decoder():
    """Linear layer y = W x with zero-mean x, E[x x^T] = Sigma: B -> alpha Sigma W^T (beta W
    Sigma W^T + gamma I)^-1, computed with numpy; the same with raw or centred statistics."""
    alpha, beta, gamma = 0.5, 0.8, 0.2
    x, sigma = _known_covariance(2, 50, 6, 2)
    w = _weights(2, 4, 6, 2)
    for centered in (True, False):
        b = _iterate("information_alignment", {"alpha": alpha, "beta": beta, "gamma": gamma,
                                               "centered": centered}, x, w, 0.1, 4000)
        _check_ridge(b, w, sigma, alpha, beta, gamma)


def test_information_alignment_centres_the_statistics():
    """With centered = true an offset added to x and y does not move the fixed point."""
    alpha, beta, gamma = 0.5, 0.8, 0.2
    x, sigma = _known_covariance(2, 50, 6, 4)
    w = _weights(2, 4, 6, 4)
    rule = rules.create("information_alignment", alpha=alpha, beta=beta, gamma=gamma)
    shifted = x + 3.0
    sig = _signals(shifted, w, y=torch.bmm(x, w.transpose(1, 2)) - 2.0).restrict(rule.signals)
    state = {"B": [None, torch.zeros(2, 6, 4, dtype=torch.float64)]}
    lr_t = torch.full((2, 1, 1), 0.1, dtype=torch.float64)
    for _ in range(4000):
        state = rule.feedback(state, sig, [sig.output_error] * 2, [w, w], lr_t)
    _check_ridge(state["B"][1], w, sigma, alpha, beta, gamma)


def _check_ridge(b, w, sigma, alpha, beta, gamma) -> None:
    for kk in range(2):
        wk = w[kk].numpy()
        expect = alpha * sigma @ wk.T @ np.linalg.inv(beta * wk @ sigma @ wk.T
                                                      + gamma * np.eye(4))
        rel = np.linalg.norm(b[kk].numpy() - expect) / np.linalg.norm(expect)
        assert rel < 0.05


def test_weight_mirror_white_noise_estimates_w_transpose():
    """Mirror phase alone, W fixed: B -> (sigma^2 / lambda_B) W^T; angle < 20 degrees."""
    w = _weights(2, 8, 10, 3)
    x, _ = _known_covariance(2, 20, 10, 3)
    params = {"mirror_noise": 1.5, "mirror_decay": 1.0, "mirror_lr": 0.02}
    b = _iterate("weight_mirror", params, x, w, 0.05, 1500)
    expect = 1.5**2 * w.transpose(1, 2).numpy()
    for kk in range(2):
        assert _angle_deg(b[kk].numpy(), expect[kk]) < 20
    rel = np.linalg.norm(b.numpy() - expect) / np.linalg.norm(expect)
    assert rel < 0.35  # the estimate's scale is the fixed point's, up to sampling noise


def test_final_alignment_reported_by_run_json(tmp_path, capsys):
    """`lrsim run --json` gives final_alignment_deg per layer; it matches numpy's angle."""
    path = tmp_path / "kp.toml"
    path.write_text('device = "cpu"\ndtype = "float64"\n[model]\nhidden = [12, 9]\n'
                    '[rule]\nname = "kolen_pollack"\n[train]\nsteps = 40\nreplicas = 2\n')
    assert cli_main(["run", str(path), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    exp = parse({"device": "cpu", "dtype": "float64", "model": {"hidden": [12, 9]},
                 "rule": {"name": "kolen_pollack"}, "train": {"steps": 40, "replicas": 2}})
    result = train(exp)
    b, w = result.context.rule_state["B"], result.context.net.weights
    for kk, run in enumerate(runs):
        angles = run["final_alignment_deg"]
        assert len(angles) == 3 and angles[0] is None
        for l in (1, 2):
            expect = _angle_deg(b[l][kk].numpy(), w[l][kk].numpy().T)
            assert angles[l] == pytest.approx(expect, abs=1e-9)


@pytest.mark.parametrize("name", LEARNED + ["feedback_alignment", "sign_symmetry",
                                            "four_synapse"])
def test_every_feedback_rule_reports_alignment(name: str):
    exp = parse({"device": "cpu", "model": {"hidden": [8, 6]}, "rule": {"name": name},
                 "train": {"steps": 3, "replicas": 2}})
    summary = train(exp).summaries()
    for row in summary:
        angles = row["final_alignment_deg"]
        assert angles[0] is None and all(0 <= a <= 180 for a in angles[1:])


# -- digits, 5 seeds in one run ---------------------------------------------------------------

def _digits(name: str, **params) -> tuple[np.ndarray, np.ndarray]:
    exp = parse({"device": "cpu", "seed": 0, "rule": {"name": name, **params},
                 "train": {"steps": 3000, "replicas": 5}})
    result = train(exp)
    assert result.status == ["ok"] * 5
    return np.asarray(result.test_accuracy), result.alignment_deg


@pytest.fixture(scope="module")
def backprop_accuracy() -> float:
    return float(_digits("backprop")[0].mean())


@pytest.mark.slow
@pytest.mark.parametrize("name,max_angle", [("kolen_pollack", 10.0),
                                            ("symmetric_alignment", 5.0),
                                            ("activation_alignment", None)])
def test_digits_within_1p5_points_of_backprop(name, max_angle, backprop_accuracy):
    acc, angles = _digits(name)
    assert acc.mean() >= backprop_accuracy - 0.015, (acc, backprop_accuracy)
    if max_angle is not None:
        assert np.all(angles[:, 1:] < max_angle), angles


@pytest.mark.slow
def test_digits_weight_mirror():
    acc, angles = _digits("weight_mirror")
    assert acc.mean() >= 0.92, acc
    assert np.all(angles[:, 1:] < 20), angles


@pytest.mark.slow
def test_digits_information_alignment():
    acc, _ = _digits("information_alignment")
    assert acc.mean() >= 0.90, acc
