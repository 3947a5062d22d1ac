"""Hebbian rules: no error signal; the modulator is the post-synaptic activity y.

With x = pre and y = post (batch-averaged), the updates (RULES.md) are
    hebb   (Hebb 1949):          dW = eta (y x^T) - eta lambda W
    oja    (Oja 1982):           dW = eta (y x^T - diag(y^2) W)      -> first principal component
    sanger (Sanger 1989, GHA):   dW = eta (y x^T - LT(y y^T) W)      -> top components, in order
    bcm    (Bienenstock, Cooper & Munro 1982):
                                 dW = eta (y (y - theta)) x^T,  theta <- theta + (y^2 - theta)/tau
Hidden layers learn unsupervised. With `supervised = true` (default) the output layer is clamped
to the target (y = t), so the readout learns class templates by the same equation; with
`supervised = false` the output layer is left as initialised. Biases do not learn.
"""

from __future__ import annotations

import torch

from lrsim.registry import Param
from lrsim.rules.base import Rule, Signals, State, batch_mean_outer, register

_SUPERVISED = Param(True, "clamp the output layer to the target (else it does not learn)")


class _Hebbian(Rule):
    family = "hebbian"
    locality = "local"
    signals = frozenset({"pre", "post", "target", "own_weights"})

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        """The modulator is the post activity, or the clamped target at the output."""
        m = [s.post[l] for l in range(s.n_layers - 1)]
        m.append(s.target if self.supervised else torch.zeros_like(s.post[-1]))
        return m

    def correction(self, state: State, s: Signals, l: int, y: torch.Tensor) -> torch.Tensor:
        """The rule's stabilising term c such that dW = eta (y x^T - c)."""
        return torch.zeros_like(s.own_weights[l])

    def plasticity(self, state: State, s: Signals, m: list[torch.Tensor]):
        out = []
        for l, y in enumerate(m):
            dw = batch_mean_outer(y, s.pre[l]) - self.correction(state, s, l, y)
            out.append((-dw, torch.zeros_like(y[:, 0])))
        return out


@register
class Hebb(_Hebbian):
    """Plain Hebbian learning with weight decay: dW = eta (y x^T - lambda W)."""

    name = "hebb"
    params = {"decay": Param(1.0, "lambda: weight decay", low=0.0, high=100.0),
              "supervised": _SUPERVISED}


@register
class Oja(_Hebbian):
    """Oja's rule: dW = eta (y x^T - diag(y^2) W); a linear unit finds the first PC."""

    name = "oja"
    params = {"supervised": _SUPERVISED}

    def correction(self, state, s, l, y):
        return (y * y).mean(1).unsqueeze(-1) * s.own_weights[l]


@register
class Sanger(_Hebbian):
    """Sanger's generalised Hebbian algorithm: dW = eta (y x^T - LT(y y^T) W)."""

    name = "sanger"
    substrates = ("rate",)
    params = {"supervised": _SUPERVISED}

    def correction(self, state, s, l, y):
        n = y.shape[-1]
        idx = torch.arange(n, device=y.device)
        lower = (idx.unsqueeze(1) >= idx.unsqueeze(0)).to(y.dtype)  # LT(.) as a mask
        yy = torch.einsum("kni,knj->kij", y, y) / y.shape[1] * lower
        return torch.bmm(yy, s.own_weights[l])


@register
class BCM(_Hebbian):
    """BCM: dW = eta (y (y - theta)) x^T with a sliding threshold theta = <y^2> (time constant
    `tau` steps)."""

    name = "bcm"
    params = {"tau": Param(10.0, "steps over which theta averages y^2", low=1.0, high=1e6),
              "decay": Param(0.0, "lambda: weight decay", low=0.0, high=100.0),
              "supervised": _SUPERVISED}

    def init(self, weights, generators) -> State:
        return {"theta": None}  # set from the first batch's <y^2>

    def _theta(self, state: State, s: Signals) -> list[torch.Tensor]:
        if state["theta"] is None:
            return [(s.post[l] ** 2).mean(1) for l in range(s.n_layers - 1)]
        return state["theta"]

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        m = super().credit(state, s)
        for l, theta in enumerate(self._theta(state, s)):
            m[l] = m[l] * (m[l] - theta.unsqueeze(1))
        return m

    def feedback(self, state, s, m, steps, lr) -> State:
        """The threshold slides towards the recent mean of y^2."""
        theta = [t + ((s.post[l] ** 2).mean(1) - t) / self.tau
                 for l, t in enumerate(self._theta(state, s))]
        return {**state, "theta": theta}
