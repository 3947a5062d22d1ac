"""Optimizers, separate from rules: they transform whatever learning term a rule produces.

Each optimizer is a small object with `init(params) -> state` and
`transform(grads, state) -> (steps, state)` (optax-style). The substrate then applies
W <- W - lr_k * (step + weight_decay_k * W), with per-replica lr and decay (decoupled decay,
as in AdamW; for sgd it equals L2 regularisation).

    sgd       step = g
    momentum  v <- mu v + g;                    step = v                  (Polyak heavy ball)
    adam      m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
              step = m_hat / (sqrt(v_hat) + eps)                           (Kingma & Ba 2015)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lrsim.registry import Param, Registry

optimizers: Registry[Any] = Registry("optimizer")


@optimizers.register("sgd")
class SGD:
    """Plain stochastic gradient descent: step = g."""

    params: dict[str, Param] = {}

    def init(self, params: list[Tensor]) -> dict:
        return {}

    def transform(self, grads: list[Tensor], state: dict) -> tuple[list[Tensor], dict]:
        return list(grads), state


@optimizers.register("momentum")
class Momentum:
    """Heavy-ball momentum: v <- mu v + g; step = v."""

    params = {"momentum": Param(0.9, "mu", low=0.0, high=1.0, high_open=True)}

    def __init__(self, momentum: float = 0.9):
        self.momentum = momentum

    def init(self, params: list[Tensor]) -> dict:
        return {"v": [torch.zeros_like(p) for p in params]}

    def transform(self, grads, state):
        v = [self.momentum * v + g for v, g in zip(state["v"], grads)]
        return v, {"v": v}


@optimizers.register("adam")
class Adam:
    """Adam with bias correction: step = m_hat / (sqrt(v_hat) + eps)."""

    params = {"beta1": Param(0.9, low=0.0, high=1.0, high_open=True),
              "beta2": Param(0.999, low=0.0, high=1.0, high_open=True),
              "eps": Param(1e-8, low=0.0, high=1.0, low_open=True)}

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init(self, params):
        return {"t": 0, "m": [torch.zeros_like(p) for p in params],
                "v": [torch.zeros_like(p) for p in params]}

    def transform(self, grads, state):
        t = state["t"] + 1
        m = [self.beta1 * m + (1 - self.beta1) * g for m, g in zip(state["m"], grads)]
        v = [self.beta2 * v + (1 - self.beta2) * g * g for v, g in zip(state["v"], grads)]
        c1, c2 = 1 - self.beta1**t, 1 - self.beta2**t
        steps = [(mi / c1) / ((vi / c2).sqrt() + self.eps) for mi, vi in zip(m, v)]
        return steps, {"t": t, "m": m, "v": v}
