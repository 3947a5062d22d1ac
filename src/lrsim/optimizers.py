"""Optimizers, separate from rules: they transform whatever learning term a rule produces.

Each optimizer is a small object with `init(params) -> state` and
`transform(grads, state) -> (steps, state)` (optax-style). The substrate then applies
W <- W - lr_k * (step + weight_decay_k * W), with per-replica lr and decay (decoupled decay,
as in AdamW; for sgd it equals L2 regularisation).

    sgd       step = g
    momentum  v <- mu v + g;                    step = v                  (Polyak heavy ball)
    adam      m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
              step = m_hat / (sqrt(v_hat) + eps)                           (Kingma & Ba 2015)

For speed the state is updated in place (the returned state is the same dict; a returned step
may be one of its buffers: read it, do not write it), and `update` applies the step too:

    update(params, terms, lr, state) -> steps      p <- p - lr * step(g), in place

where a term is a gradient g or an `Outer(m, x)`, the three-factor term g = m^T x / N
(batch mean of outer products, m (K, N, n_out), x (K, N, n_in)). For an `Outer` the optimizer
folds the gradient into its update without materialising g where it can: sgd adds
(-lr/N) m^T x to W in one `baddbmm_` (the scale folded into the small operand m), momentum
accumulates m^T x / N into v in one `baddbmm_` (beta = mu). Adam needs g^2, so it materialises
g and runs the moment and parameter updates in one fused kernel (`torch._fused_adam_`).
A step is returned where it exists (momentum's v, adam's normalised step; sgd's g only with
`keep_steps`), None otherwise: a rule whose feedback reads the weight steps asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lrsim.registry import Param, Registry

optimizers: Registry[Any] = Registry("optimizer")


@dataclass(frozen=True)
class Outer:
    """The three-factor term g = m^T x / N of one layer, not yet computed: m (K, N, n_out) the
    layer's credit, x (K, N, n_in) its input; g is (K, n_out, n_in)."""

    m: Tensor
    x: Tensor

    def materialise(self) -> Tensor:
        return torch.bmm(self.m.transpose(1, 2) * (1.0 / self.m.shape[1]), self.x)


Term = Tensor | Outer


def _lr_for(p: Tensor, lr: Tensor | float) -> Tensor | float:
    """lr (K, 1, 1) shaped to broadcast against p (K, ...)."""
    if isinstance(lr, Tensor):
        return lr.reshape(lr.shape[0], *([1] * (p.dim() - 1)))
    return lr


def _grad(term: Term) -> Tensor:
    return term.materialise() if isinstance(term, Outer) else term


@optimizers.register("sgd")
class SGD:
    """Plain stochastic gradient descent: step = g."""

    params: dict[str, Param] = {}

    def init(self, params: list[Tensor]) -> dict:
        return {}

    def transform(self, grads: list[Tensor], state: dict) -> tuple[list[Tensor], dict]:
        return list(grads), state

    def update(self, params: list[Tensor], terms: list[Term], lr: Tensor | float, state: dict,
               keep_steps: bool = False) -> list[Tensor | None]:
        """p <- p - lr g; for an `Outer` without `keep_steps`, W.baddbmm_((-lr/N) m^T, x)."""
        steps: list[Tensor | None] = []
        for p, term in zip(params, terms):
            lr_p = _lr_for(p, lr)
            if isinstance(term, Outer) and not keep_steps:
                p.baddbmm_(term.m.transpose(1, 2) * (lr_p * (-1.0 / term.m.shape[1])), term.x)
                steps.append(None)
                continue
            g = _grad(term)
            p.addcmul_(lr_p, g, value=-1) if isinstance(lr_p, Tensor) else p.add_(g, alpha=-lr_p)
            steps.append(g)
        return steps


@optimizers.register("momentum")
class Momentum:
    """Heavy-ball momentum: v <- mu v + g; step = v."""

    params = {"momentum": Param(0.9, "mu", low=0.0, high=1.0, high_open=True)}

    def __init__(self, momentum: float = 0.9):
        self.momentum = momentum

    def init(self, params: list[Tensor]) -> dict:
        return {"v": [torch.zeros_like(p) for p in params]}

    def transform(self, grads: list[Tensor], state: dict) -> tuple[list[Tensor], dict]:
        for v, g in zip(state["v"], grads):
            v.mul_(self.momentum).add_(g)
        return list(state["v"]), state

    def update(self, params: list[Tensor], terms: list[Term], lr: Tensor | float, state: dict,
               keep_steps: bool = False) -> list[Tensor | None]:
        """v <- mu v + g (for an `Outer`: v.baddbmm_(m^T, x, beta=mu, alpha=1/N)); p -= lr v."""
        for p, v, term in zip(params, state["v"], terms):
            if isinstance(term, Outer):
                v.baddbmm_(term.m.transpose(1, 2), term.x, beta=self.momentum,
                           alpha=1.0 / term.m.shape[1])
            else:
                v.mul_(self.momentum).add_(term)
            lr_p = _lr_for(p, lr)
            p.addcmul_(lr_p, v, value=-1) if isinstance(lr_p, Tensor) else p.add_(v, alpha=-lr_p)
        return list(state["v"])


@optimizers.register("adam")
class Adam:
    """Adam with bias correction: step = m_hat / (sqrt(v_hat) + eps)."""

    params = {"beta1": Param(0.9, low=0.0, high=1.0, high_open=True),
              "beta2": Param(0.999, low=0.0, high=1.0, high_open=True),
              "eps": Param(1e-8, low=0.0, high=1.0, low_open=True)}

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init(self, params: list[Tensor]) -> dict:
        # per parameter: moments m, v; the normalised step (the fused kernel's output); the
        # step count t as a tensor (a CUDA graph replays its increment; a Python int would be
        # frozen)
        return {"m": [torch.zeros_like(p) for p in params],
                "v": [torch.zeros_like(p) for p in params],
                "step": [torch.zeros_like(p) for p in params],
                "t": [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]}

    def transform(self, grads: list[Tensor], state: dict) -> tuple[list[Tensor], dict]:
        for i, g in enumerate(grads):
            self._step(i, g, state)
        return list(state["step"][:len(grads)]), state

    def _step(self, i: int, g: Tensor, state: dict) -> Tensor:
        """state['step'][i] <- m_hat / (sqrt(v_hat) + eps), moments updated, in one kernel where
        torch has it (a zeroed buffer stepped with lr = -1 receives the normalised step)."""
        out, m, v = state["step"][i], state["m"][i], state["v"][i]
        t = state["t"][i]
        t.add_(1)
        if _FUSED_ADAM and out.device.type in ("cpu", "cuda") and g.is_contiguous():
            out.zero_()
            torch._fused_adam_([out], [g], [m], [v], [], [t], lr=-1.0, beta1=self.beta1,
                               beta2=self.beta2, weight_decay=0.0, eps=self.eps,
                               amsgrad=False, maximize=False)
            return out
        m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        t = t.to(g.dtype)
        c1, c2 = 1 - self.beta1**t, 1 - self.beta2**t
        torch.div(m, c1, out=out)
        return out.div_((v / c2).sqrt_().add_(self.eps))

    def update(self, params: list[Tensor], terms: list[Term], lr: Tensor | float, state: dict,
               keep_steps: bool = False) -> list[Tensor | None]:
        """The fused moment update into the step buffer, then p -= lr step."""
        steps: list[Tensor | None] = []
        for i, (p, term) in enumerate(zip(params, terms)):
            s = self._step(i, _grad(term), state)
            lr_p = _lr_for(p, lr)
            p.addcmul_(lr_p, s, value=-1) if isinstance(lr_p, Tensor) else p.add_(s, alpha=-lr_p)
            steps.append(s)
        return steps


_FUSED_ADAM = hasattr(torch, "_fused_adam_")
