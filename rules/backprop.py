"""Backpropagation (Rumelhart, Hinton & Williams 1986): the exact gradient, by weight transport.

    delta_L = e = dL/dz_L
    delta_l = (W_{l+1}^T delta_{l+1}) * f'(z_l)      (send-back through W itself)
    gW_l    = <delta_l h_{l-1}^T>,   gb_l = <delta_l>  (batch means)
"""

from __future__ import annotations

import torch

from lrsim.rules.base import Rule, Signals, State, register


@register
class Backprop(Rule):
    """Backpropagation of error through the transposed forward weights (non-local)."""

    name = "backprop"
    family = "backprop"
    locality = "non_local"
    signals = frozenset({"pre", "derivative", "output_error", "downstream_weights"})

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        m = [s.output_error]
        for l in range(s.n_layers - 2, -1, -1):
            layer = s.layers[l + 1]
            w = s.downstream_weights[l]  # W_{l+1}
            m.insert(0, layer.send_back(m[0], layer.as_feedback(w)) * s.derivative[l])
        return m
