"""The four-synapse circuit (after Liao, Ziyin, Gan, Cheung, Harnett & Poggio 2024, "Self-assembly
of a biologically plausible learning circuit", arXiv 2412.20018).

Two streams: ascending units A_l carry activity h_l, descending units D_l carry error g_l. Four
plastic synapse types per stage: W_l (A_{l-1} -> A_l), B_l (D_l -> D_{l-1}, shape of W_l^T),
U_l (D_l -> A_l, n_l x n_l) and V_l (A_l -> D_l, n_l x n_l). The paper's full text could not be
consulted; these are the exact equations implemented here (one replica, batch means written
as <.>; lr is the trainer's per-replica learning rate, lambda = `decay`):

    g_L = e;  g_{l-1} = (B_l g_l) * f'(z_{l-1})                         (descending stream)
    W_l <- W_l - lr (<(U_l g_l) h_{l-1}^T> + lambda W_l)                (heterosynaptic: U brings
    b_l <- b_l - lr <U_l g_l>                                            the error to W's dendrite)
    B_l <- B_l - lr (<(V_{l-1} h_{l-1}) g_l^T> + lambda B_l)            (V brings the activity to
                                                                         B's dendrite)
With U = V = I (`variant = "wired"`) this is Kolen-Pollack with sgd, update for update.

`variant = "self_assembling"`: U_l, V_l start weak and random, N(0, s^2/n_l) with
s = `cross_init`, and learn by Hebbian
co-activity of the paired units A_l,i and D_l,i. Pairing is anatomical: in a pairing phase each
step, the units of one column i share a spontaneous drive xi_i ~ N(0, 1), and each unit adds
private noise of std rho (`pairing_noise`): a = xi + rho eps_A, d = xi + rho eps_D. Then

    U_l <- U_l + eta_c (<a d^T> - U_l)      (post A, pre D)
    V_l <- V_l + eta_c (<d a^T> - V_l)      (post D, pre A)

with eta_c = `pairing_lr` and <.> over `pairing_batch` samples. <a d^T> = I in expectation, so
U and V relax to the identity (diagonal dominance grows as 1 - (1 - eta_c)^t), and as they do,
B_l - W_l^T comes under the Kolen-Pollack contraction (1 - lr lambda) per step.
Optimizers: W's learning term goes through the trainer's optimizer; B's is applied raw (a
circuit has no access to W's optimizer state), so the equality with Kolen-Pollack holds for sgd.
"""

from __future__ import annotations

import torch

from lrsim.registry import Param
from lrsim.rules.base import (
    ReplicaNoise,
    Signals,
    State,
    batch_mean_outer,
    layer_list,
    normal,
    random_matrices,
    register,
)
from lrsim.rules.feedback_alignment import _FixedFeedback, random_feedback

VARIANTS = ("wired", "self_assembling")


def diagonal_fraction(m: torch.Tensor) -> torch.Tensor:
    """||diag(M)||_F / ||M||_F per replica for square M (K, n, n): 1 for a diagonal matrix,
    about 1/sqrt(n) for a dense random one. The diagonal-dominance measure reported for U, V."""
    diag = torch.diagonal(m, dim1=1, dim2=2)
    return diag.norm(dim=1) / m.flatten(1).norm(dim=1).clamp_min(1e-300)


@register
class FourSynapse(_FixedFeedback):
    """Four-synapse circuit (Liao et al. 2024): dW_l = -lr ((U_l g_l) h_{l-1}^T + lambda W_l),
    dB_l = -lr ((V_{l-1} h_{l-1}) g_l^T + lambda B_l), g_{l-1} = (B_l g_l) * f'(z_{l-1});
    U = V = I ("wired", = Kolen-Pollack) or random and Hebbian on paired units
    ("self_assembling")."""

    name = "four_synapse"
    family = "four_synapse"
    locality = "local"
    signals = frozenset({"pre", "derivative", "output_error", "noise"})
    params = {
        "variant": Param("self_assembling", "wired: U = V = I; self_assembling: random, plastic",
                         choices=VARIANTS),
        "decay": Param(0.02, "lambda: decay of W and B", low=0.0, high=100.0),
        "pairing_lr": Param(0.05, "eta_c: learning rate of U and V in the pairing phase",
                            low=0.0, high=1.0, low_open=True),
        "pairing_noise": Param(0.5, "rho: private noise std of a unit relative to the "
                                    "column's shared drive", low=0.0, high=100.0),
        "pairing_batch": Param(32, "samples per pairing phase", low=1, high=100_000),
        "cross_init": Param(0.1, "s: initial U, V ~ N(0, s^2 / n) (self_assembling)", low=0.0,
                            high=10.0),
    }

    def init(self, weights: list[torch.Tensor], generators: list[torch.Generator],
             layers=None) -> State:
        """B_l as in Kolen-Pollack (same draws); U_l, V_l identity (wired) or N(0, s^2/n_l)."""
        layers = layer_list(layers, len(weights))
        state: State = {"B": random_feedback(weights, generators, layers)}
        if self.variant == "wired":
            state["U"] = [None] * len(weights)
            state["V"] = [None] * len(weights)
            return state
        square = [torch.empty(w.shape[0], layers[l].units(w), layers[l].units(w),
                              dtype=w.dtype, device=w.device) for l, w in enumerate(weights)]
        s = self.cross_init  # weak random cross-stream synapses, on layer l's units
        state["U"] = [s * random_matrices(q, generators) for q in square]
        state["V"] = [s * random_matrices(q, generators) for q in square[:-1]] + [None]
        return state

    @staticmethod
    def _through(layer, x: torch.Tensor, cross: torch.Tensor | None) -> torch.Tensor:
        """cross @ x per sample over the units of `layer`'s output; identity when None."""
        return x if cross is None else layer.mix(x, cross)

    def plasticity(self, state: State, s: Signals, m: list[torch.Tensor]
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """gW_l = <(U_l g_l) h_{l-1}^T>, gb_l = <U_l g_l>."""
        out = []
        for l, g in enumerate(m):
            ug = self._through(s.layers[l], g, state["U"][l])
            out.append(s.layers[l].weight_gradient(ug, s.pre[l]))
        return out

    def feedback(self, state: State, s: Signals, m: list[torch.Tensor],
                 steps: list[torch.Tensor], lr: torch.Tensor,
                 decay: torch.Tensor | float | None = None) -> State:
        """B_l <- B_l - lr (<(V_{l-1} h_{l-1}) g_l^T> + d B_l), d = `decay` (the total decay the
        learning step applied to W_l this step, lambda + weight decay; lambda if None); then the
        pairing phase."""
        d = self.decay if decay is None else decay
        new_b: list[torch.Tensor | None] = [None]
        for l in range(1, len(state["B"])):
            b = state["B"][l]
            vh = self._through(s.layers[l - 1], s.pre[l], state["V"][l - 1])
            new_b.append(b - lr * (s.layers[l].feedback_gradient(vh, m[l]) + d * b))
        new = {**state, "B": new_b}
        if self.variant == "self_assembling":
            new["U"], new["V"] = self._pair(state["U"], state["V"], s.noise)
        return new

    def _pair(self, us: list[torch.Tensor], vs: list[torch.Tensor | None],
              noise: ReplicaNoise | torch.Generator | None) -> tuple[list, list]:
        """One pairing phase: U <- U + eta_c (<a d^T> - U), V <- V + eta_c (<d a^T> - V)."""
        new_u, new_v = [], []
        for u, v in zip(us, vs):
            k, n = u.shape[0], u.shape[1]
            draw = normal(noise, k, (3, self.pairing_batch, n), u)  # shared, private A, D
            a = draw[:, 0] + self.pairing_noise * draw[:, 1]
            d = draw[:, 0] + self.pairing_noise * draw[:, 2]
            co = batch_mean_outer(a, d)  # <a d^T>, (K, n, n)
            new_u.append(u + self.pairing_lr * (co - u))
            new_v.append(None if v is None else v + self.pairing_lr * (co.transpose(1, 2) - v))
        return new_u, new_v

    def cross_stream(self, state: State) -> dict[str, list[torch.Tensor | None]]:
        """U_l and V_l per layer (None = identity / absent), for diagnostics."""
        return {"U": list(state["U"]), "V": list(state["V"])}
