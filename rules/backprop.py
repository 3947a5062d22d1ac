"""Backpropagation (Rumelhart, Hinton & Williams 1986): the exact gradient, by weight transport.

    delta_L = e = dL/dz_L
    delta_l = (delta_{l+1} W_{l+1}) * f'(z_l)           (batch-row form of W^T delta)
    gW_l    = delta_l^T h_{l-1} / N,   gb_l = mean_n delta_l
"""

from __future__ import annotations

import torch

from lrsim.rules.base import Rule, Signals, State, register


def propagate(top: torch.Tensor, feedback: torch.Tensor, derivative: torch.Tensor) -> torch.Tensor:
    """One step down: (top (K,N,n_{l+1}) @ feedback (K,n_{l+1},n_l)) * f'(z_l)."""
    return torch.bmm(top, feedback) * derivative


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
            m.insert(0, propagate(m[0], s.downstream_weights[l], s.derivative[l]))
        return m
