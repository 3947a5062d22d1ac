"""Random and sign-based feedback: credit without weight transport.

feedback_alignment (Lillicrap et al. 2016):  delta_l = (B_{l+1} delta_{l+1}) * f'(z_l),
    B_{l+1} fixed random (the shape of W_{l+1}^T for dense layers).
direct_feedback_alignment (Noekland 2016):   delta_l = (D_l e) * f'(z_l), D_l fixed random
    (n_l x n_L): the output error is broadcast to every hidden layer.
sign_symmetry (Liao, Leibo & Poggio 2016):   B_{l+1} = sign(W_{l+1})^T, scaled by mean|W_{l+1}|
    when `scaled` (so feedback magnitude follows the forward weights); B is taken from W after
    every update (in `feedback`), so credit at step t uses sign(W_t).
All three use the three-factor synapse update gW_l = <delta_l h_{l-1}^T>.
"""

from __future__ import annotations

import torch

from lrsim.registry import Param
from lrsim.rules.base import Rule, Signals, State, layer_list, random_matrices, register


class _FixedFeedback(Rule):
    """Shared credit path for rules with feedback tensors B_l in `state["B"]`, l >= 1:
    delta_{l-1} = layer_l.send_back(delta_l, B_l) * f'(z_{l-1})."""

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        m = [s.output_error]
        for l in range(s.n_layers - 2, -1, -1):
            b = state["B"][l + 1]
            m.insert(0, s.layers[l + 1].send_back(m[0], b) * s.derivative[l])
        return m

    def feedback_matrices(self, state: State) -> list[torch.Tensor | None]:
        return list(state["B"])


def random_feedback(weights, generators, layers) -> list[torch.Tensor | None]:
    """[None, B_1, ..., B_{L-1}]: fixed random feedback for every layer but the first, replica
    k drawing from generators[k] (layer order, so the draws match across rules)."""
    layers = layer_list(layers, len(weights))
    return [None] + [layers[l].random_feedback(w, generators)
                     for l, w in enumerate(weights) if l >= 1]


@register
class FeedbackAlignment(_FixedFeedback):
    """Feedback alignment: error sent back through fixed random matrices B."""

    name = "feedback_alignment"
    family = "feedback_alignment"
    locality = "local"
    signals = frozenset({"pre", "derivative", "output_error"})

    def init(self, weights, generators, layers=None) -> State:
        return {"B": random_feedback(weights, generators, layers)}


@register
class DirectFeedbackAlignment(Rule):
    """Direct feedback alignment: the output error broadcast through fixed random D_l."""

    name = "direct_feedback_alignment"
    family = "feedback_alignment"
    locality = "broadcast"
    signals = frozenset({"pre", "derivative", "output_error"})

    def init(self, weights, generators, layers=None) -> State:
        layers = layer_list(layers, len(weights))
        k, n_out, _ = weights[-1].shape
        ds = [random_matrices(torch.empty(k, layers[l].units(w), n_out, dtype=w.dtype,
                                          device=w.device), generators)
              for l, w in enumerate(weights[:-1])]
        return {"D": ds}

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        e = s.output_error
        hidden = [s.layers[l].broadcast(e, d) * s.derivative[l]
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

    def _signs(self, weights, layers) -> list[torch.Tensor | None]:
        out: list[torch.Tensor | None] = [None]
        for l in range(1, len(weights)):
            w = weights[l]
            b = layers[l].as_feedback(torch.sign(w))
            if self.scaled:
                b = b * w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
            out.append(b)
        return out

    def init(self, weights, generators, layers=None) -> State:
        return {"B": self._signs(weights, layer_list(layers, len(weights)))}

    def feedback(self, state, s, m, steps, lr, decay=None) -> State:
        """B_l = sign(W_l)^T (scaled) of the updated weights, for the next step's credit."""
        return {**state, "B": self._signs([None, *s.downstream_weights], s.layers)}
