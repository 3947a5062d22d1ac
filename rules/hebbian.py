"""Hebbian rules: no error signal; the modulator is the post-synaptic activity y.

With x = pre and y = post (batch-averaged), the updates (docs/rules.md) are
    hebb   (Hebb 1949):          dW = eta (y x^T) - eta lambda W
    oja    (Oja 1982):           dW = eta (y x^T - diag(y^2) W)      -> first principal component
    sanger (Sanger 1989, GHA):   dW = eta (y x^T - LT(y y^T) W)      -> top components, in order
    bcm    (Bienenstock, Cooper & Munro 1982):
                                 dW = eta (y (y - theta)) x^T,  theta <- theta + (y^2 - theta)/tau
Hidden layers learn unsupervised. The output layer L, with h = h_{L-1} its input, learns by
`readout` when `supervised = true` (default):
    "clamped" (default): the rule's own equation with the output clamped to the target, y = t:
        dW_L = eta (t h^T - c), a class-template matcher
    "delta": the Widrow-Hoff delta rule (Widrow & Hoff 1960), `delta_readout`:
        dW_L = -eta e h^T,  db_L = -eta e,  e = dL/dz_L (y - t for mse loss)
With `supervised = false` the output layer is left as initialised. Hidden biases do not learn.
The rule's `decay` (hebb, bcm) is applied by the learning step to every layer, the readout
included. The stabilising terms (Oja's diag(y^2) W, Sanger's LT(y y^T) W) act on the rows of a
dense W, so these rules declare `layer_kinds = {"dense"}`.
"""

from __future__ import annotations

from typing import Any

import torch

from lrsim.errors import ConfigError
from lrsim.layers import DENSE, Layer
from lrsim.registry import Param
from lrsim.rules.base import Rule, Signals, State, register

READOUTS = ("clamped", "delta")
_SUPERVISED = Param(True, "the output layer learns from the target by `readout` (else it does "
                          "not learn)")
_READOUT = Param("clamped", "how the output layer learns: clamped (the rule's equation with "
                            "y = target) or delta (Widrow-Hoff: dW = -eta e h^T, e = dL/dz)",
                 choices=READOUTS)


def delta_readout(e: torch.Tensor, h: torch.Tensor, layer: Layer = DENSE
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The delta rule of Widrow & Hoff (1960, "Adaptive switching circuits") for the readout.

        dW_L = -eta <e h^T>,   db_L = -eta <e>,   e = dL/dz_L per sample, h = h_{L-1}

    returned gradient-like as (<e h^T>, <e>) over the batch (K, N, .). With mse loss, e = y - t
    and this is the gradient of 0.5 ||y - t||^2 with respect to W_L and b_L alone (least mean
    squares); with softmax cross-entropy e = p - t, the same rule for a softmax readout. No error
    reaches the hidden layers.
    """
    return layer.weight_gradient(e, h)


class _Hebbian(Rule):
    family = "hebbian"
    locality = "local"
    layer_kinds = frozenset({"dense"})
    # what the rule may read across its settings; an instance declares exactly what it reads
    signals = frozenset({"pre", "post", "target", "output_error", "own_weights"})

    def __init__(self, **hyper: Any):
        super().__init__(**hyper)
        if self.readout == "delta" and not self.supervised:
            raise ConfigError(f"rule '{self.name}': readout = 'delta' learns from the target "
                              "and needs supervised = true")
        output = ({"output_error"} if self.readout == "delta" else {"target"}) \
            if self.supervised else set()
        self.signals = frozenset({"pre", "post", "own_weights"} | output)

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        """The modulator is the post activity; at the output the clamped target, or the output
        error e for the delta readout (zero when unsupervised)."""
        m = [s.post[l] for l in range(s.n_layers - 1)]
        if not self.supervised:
            m.append(torch.zeros_like(s.post[-1]))
        else:
            m.append(s.output_error if self.readout == "delta" else s.target)
        return m

    def correction(self, state: State, s: Signals, l: int, y: torch.Tensor) -> torch.Tensor:
        """The rule's stabilising term c such that dW = eta (y x^T - c)."""
        return torch.zeros_like(s.own_weights[l])

    def plasticity(self, state: State, s: Signals, m: list[torch.Tensor]
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """gW_l = -(<y x^T> - c) for Hebbian layers (biases fixed); `delta_readout` at a delta
        readout."""
        out = []
        for l, y in enumerate(m):
            if l == len(m) - 1 and self.supervised and self.readout == "delta":
                out.append(delta_readout(y, s.pre[l], s.layers[l]))
                continue
            hebb, _ = s.layers[l].weight_gradient(y, s.pre[l], bias=False)
            dw = hebb - self.correction(state, s, l, y)
            out.append((-dw, torch.zeros_like(y[:, 0])))
        return out


@register
class Hebb(_Hebbian):
    """Plain Hebbian learning with weight decay: dW = eta (y x^T - lambda W)."""

    name = "hebb"
    params = {"decay": Param(1.0, "lambda: weight decay", low=0.0, high=100.0),
              "supervised": _SUPERVISED, "readout": _READOUT}


@register
class Oja(_Hebbian):
    """Oja's rule: dW = eta (y x^T - diag(y^2) W); a linear unit finds the first PC."""

    name = "oja"
    params = {"supervised": _SUPERVISED, "readout": _READOUT}

    def correction(self, state, s, l, y):
        return (y * y).mean(1).unsqueeze(-1) * s.own_weights[l]


@register
class Sanger(_Hebbian):
    """Sanger's generalised Hebbian algorithm: dW = eta (y x^T - LT(y y^T) W)."""

    name = "sanger"
    substrates = ("rate",)
    params = {"supervised": _SUPERVISED, "readout": _READOUT}

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
              "supervised": _SUPERVISED, "readout": _READOUT}

    def init(self, weights, generators, layers=None) -> State:
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

    def feedback(self, state, s, m, steps, lr, decay=None) -> State:
        """The threshold slides towards the recent mean of y^2."""
        theta = [t + ((s.post[l] ** 2).mean(1) - t) / self.tau
                 for l, t in enumerate(self._theta(state, s))]
        return {**state, "theta": theta}
