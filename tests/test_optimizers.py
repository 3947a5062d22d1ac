"""The optimizers' fused in-place update against the plain formulas (computed here with einsum
and out-of-place arithmetic), for the three-factor term m^T x / N and for plain gradients."""

from __future__ import annotations

import pytest
import torch

from lrsim.optimizers import Outer, optimizers

K, N, N_OUT, N_IN, STEPS = 3, 7, 5, 4, 6
# float32: the fused update rounds differently (lr/N folded into m before the product, the
# moments in one kernel); after 6 steps of lr ~ 0.1 on O(1) weights the difference stays
# within a few float32 ulps of the weights.
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


def reference(name: str, w: torch.Tensor, grads: list[torch.Tensor], lr: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook update, out of place: returns (final W, last step)."""
    w, v, m, s = w.clone(), torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
    step = None
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            step = g
        elif name == "momentum":
            v = 0.9 * v + g
            step = v
        else:
            m = 0.9 * m + 0.1 * g
            s = 0.999 * s + 0.001 * g * g
            step = (m / (1 - 0.9**t)) / (torch.sqrt(s / (1 - 0.999**t)) + 1e-8)
        w = w - lr * step
    return w, step


def draws(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(K, N_OUT, N_IN, generator=gen, dtype=torch.float64)
    ms = [torch.randn(K, N, N_OUT, generator=gen, dtype=torch.float64) for _ in range(STEPS)]
    xs = [torch.randn(K, N, N_IN, generator=gen, dtype=torch.float64) for _ in range(STEPS)]
    lr = torch.tensor([0.1, 0.03, 0.0], dtype=torch.float64).view(K, 1, 1)
    return [t.to(dtype) for t in (w0, lr)] + [[t.to(dtype) for t in ts] for ts in (ms, xs)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_fused_outer_update_equals_the_formula(name, dtype):
    w0, lr, ms, xs = draws(dtype)
    grads = [torch.einsum("kni,knj->kij", m.double(), x.double()) / N for m, x in zip(ms, xs)]
    want, want_step = reference(name, w0.double(), grads, lr.double())
    opt = optimizers.create(name)
    w = w0.clone()
    state = opt.init([w])
    for m, x in zip(ms, xs):
        (step,) = opt.update([w], [Outer(m, x)], lr, state)
    torch.testing.assert_close(w.double(), want, **TOL[dtype])
    if name == "sgd":
        assert step is None  # the gradient was never materialised
    else:
        torch.testing.assert_close(step.double(), want_step, **TOL[dtype])
    # replica 3 has lr 0: frozen exactly (a diverged replica must not move)
    assert torch.equal(w[2], w0[2])


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_update_on_plain_gradients_and_kept_steps(name):
    """Gradient tensors (biases, rules with their own plasticity) and `keep_steps`, float64."""
    w0, lr, ms, xs = draws(torch.float64)
    grads = [torch.einsum("kni,knj->kij", m, x) / N for m, x in zip(ms, xs)]
    bias_grads = [m.mean(1) for m in ms]
    want, want_step = reference(name, w0, grads, lr)
    b0 = torch.zeros(K, N_OUT, dtype=torch.float64)
    want_b, _ = reference(name, b0, bias_grads, lr.view(K, 1))
    opt = optimizers.create(name)
    w, b = w0.clone(), b0.clone()
    state = opt.init([w, b])
    for t, (m, x) in enumerate(zip(ms, xs)):
        term = Outer(m, x) if t % 2 else grads[t]
        steps = opt.update([w, b], [term, bias_grads[t]], lr, state, keep_steps=True)
    torch.testing.assert_close(w, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b, want_b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(steps[0], want_step, rtol=1e-12, atol=1e-12)


def test_adam_fallback_equals_fused_kernel(monkeypatch):
    """The op-by-op Adam (devices without torch's fused kernel) gives the same steps."""
    import lrsim.optimizers as mod

    w0, lr, ms, xs = draws(torch.float64)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(mod, "_FUSED_ADAM", fused)
        opt = optimizers.create("adam")
        w = w0.clone()
        state = opt.init([w])
        for m, x in zip(ms, xs):
            opt.update([w], [Outer(m, x)], lr, state)
        results.append(w)
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-12)
