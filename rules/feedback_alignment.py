"""Random and sign-based feedback: credit without weight transport.

feedback_alignment (Lillicrap et al. 2016):  delta_l = (delta_{l+1} B_{l+1}^T) * f'(z_l),
    B_{l+1} fixed random with the shape of W_{l+1}^T.
direct_feedback_alignment (Noekland 2016):   delta_l = (e D_l^T) * f'(z_l), D_l fixed random
    (n_l x n_L): the output error is broadcast to every hidden layer.
sign_symmetry (Liao, Leibo & Poggio 2016):   B_{l+1} = sign(W_{l+1})^T, scaled by mean|W_{l+1}|
    when `scaled` (so feedback magnitude follows the forward weights).
All three use the three-factor synapse update gW_l = delta_l^T h_{l-1} / N.
"""

from __future__ import annotations

import torch

from lrsim.registry import Param
from lrsim.rules.backprop import propagate
from lrsim.rules.base import Rule, Signals, State, random_feedback, register


class _FixedFeedback(Rule):
    """Shared credit path for rules with feedback matrices B_l (shape W_l^T), l >= 1."""

    def _feedback(self, state: State, s: Signals, l: int) -> torch.Tensor:
        return state["B"][l]

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        m = [s.output_error]
        for l in range(s.n_layers - 2, -1, -1):
            b = self._feedback(state, s, l + 1)  # (K, n_l, n_{l+1}) shape of W_{l+1}^T
            m.insert(0, propagate(m[0], b.transpose(1, 2), s.derivative[l]))
        return m

    def feedback_matrices(self, state: State) -> list[torch.Tensor | None]:
        return list(state["B"])


@register
class FeedbackAlignment(_FixedFeedback):
    """Feedback alignment: error sent back through fixed random matrices B."""

    name = "feedback_alignment"
    family = "feedback_alignment"
    locality = "local"
    signals = frozenset({"pre", "derivative", "output_error"})

    def init(self, weights, generators) -> State:
        return {"B": [None] + [random_feedback(w.transpose(1, 2), generators)
                               for w in weights[1:]]}


@register
class DirectFeedbackAlignment(Rule):
    """Direct feedback alignment: the output error broadcast through fixed random D_l."""

    name = "direct_feedback_alignment"
    family = "feedback_alignment"
    locality = "broadcast"
    signals = frozenset({"pre", "derivative", "output_error"})

    def init(self, weights, generators) -> State:
        k, n_out, _ = weights[-1].shape
        ds = [random_feedback(torch.empty(k, w.shape[1], n_out, dtype=w.dtype, device=w.device),
                              generators) for w in weights[:-1]]
        return {"D": ds}

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        e = s.output_error
        hidden = [torch.bmm(e, d.transpose(1, 2)) * s.derivative[l]
                  for l, d in enumerate(state["D"])]
        return hidden + [e]


@register
class SignSymmetry(_FixedFeedback):
    """Sign symmetry: feedback B = sign(W)^T, optionally scaled by the layer's mean |W|."""

    name = "sign_symmetry"
    family = "feedback_alignment"
    locality = "sign_transport"
    substrates = ("rate",)
    signals = frozenset({"pre", "derivative", "output_error", "downstream_weights"})
    params = {"scaled": Param(True, "scale sign(W) by mean |W| of the layer")}

    def init(self, weights, generators) -> State:
        return {"B": [None] * len(weights)}

    def _feedback(self, state: State, s: Signals, l: int) -> torch.Tensor:
        w = s.downstream_weights[l - 1]  # W_l (K, n_l, n_{l-1})
        b = torch.sign(w).transpose(1, 2)
        if self.scaled:
            b = b * w.abs().mean(dim=(1, 2), keepdim=True)
        state["B"][l] = b
        return b
