"""Pair-based spike-timing-dependent plasticity with traces (Song, Miller & Abbott 2000; the
trace form of Morrison, Diesmann & Gerstner 2008), a spiking-only rule.

Each synapse keeps a presynaptic trace a_pre and a postsynaptic trace a_post:

    tau_plus  d a_pre/dt  = -a_pre,    a_pre  <- a_pre + A_plus     at a presynaptic spike
    tau_minus d a_post/dt = -a_post,   a_post <- a_post - A_minus   at a postsynaptic spike
    pre spike:  w <- clip(w + lr a_post, 0, w_max)      (post before pre: depression)
    post spike: w <- clip(w + lr a_pre, 0, w_max)       (pre before post: potentiation)

so a pair with Delta t = t_post - t_pre changes w by lr A_plus exp(-Delta t / tau_plus) for
Delta t > 0 and by -lr A_minus exp(Delta t / tau_minus) for Delta t < 0. The spiking substrate
installs these equations (`synapse_model`) on its plastic projections; the weights then change
inside the simulation. For independent Poisson trains at rates x (pre) and y (post) the expected
drift is lr (A_plus tau_plus - A_minus tau_minus) x y per unit time (Kempter, Gerstner & van
Hemmen 1999): `credit`/`plasticity` return that rate limit, gW = -c y^T x / N with
c = A_plus tau_plus - A_minus tau_minus (in seconds), so the rule's rate form is defined, but
the rule is registered for the spiking substrate only (its timing dependence is the point).
"""

from __future__ import annotations

import torch

from lrsim.registry import Param
from lrsim.rules.base import Rule, Signals, State, register


@register
class STDP(Rule):
    """Pair-based STDP: dw = A_plus exp(-dt/tau_plus) (pre before post), -A_minus
    exp(dt/tau_minus) (post before pre), as Brian2 synapse equations with traces."""

    name = "stdp"
    family = "spike_timing"
    locality = "local"
    substrates = ("spiking",)
    signals = frozenset({"pre", "post"})
    supervised = False
    params = {
        "a_plus": Param(0.01, "potentiation amplitude A_plus (weight units)", low=0.0),
        "a_minus": Param(0.0105, "depression amplitude A_minus (weight units)", low=0.0),
        "tau_plus_ms": Param(20.0, "potentiation window tau_plus (ms)", low=0.0,
                             low_open=True, high=1000.0),
        "tau_minus_ms": Param(20.0, "depression window tau_minus (ms)", low=0.0,
                              low_open=True, high=1000.0),
    }

    def synapse_model(self, w_max: float, lr: float = 1.0) -> dict | None:
        """Brian2 synapse equations (model, on_pre, on_post, namespace) acting on a
        dimensionless weight `w` in [0, w_max] that the substrate declares."""
        from brian2 import ms

        return {
            "model": "dtrace_plus/dt = -trace_plus / tau_plus : 1 (event-driven)\n"
                     "dtrace_minus/dt = -trace_minus / tau_minus : 1 (event-driven)",
            "on_pre": "trace_plus += a_plus\nw = clip(w + stdp_lr * trace_minus, 0, w_max)",
            "on_post": "trace_minus -= a_minus\nw = clip(w + stdp_lr * trace_plus, 0, w_max)",
            "namespace": {"tau_plus": self.tau_plus_ms * ms, "tau_minus": self.tau_minus_ms * ms,
                          "a_plus": self.a_plus, "a_minus": self.a_minus, "stdp_lr": lr},
        }

    def credit(self, state: State, s: Signals) -> list[torch.Tensor]:
        """The modulator is the post rate (no error)."""
        return [s.post[l] for l in range(s.n_layers)]

    def plasticity(self, state: State, s: Signals, m: list[torch.Tensor]):
        """Rate limit of pair STDP: gW = -(A_plus tau_plus - A_minus tau_minus) y^T x / N."""
        c = (self.a_plus * self.tau_plus_ms - self.a_minus * self.tau_minus_ms) / 1000.0
        return [(-c * s.layers[l].weight_gradient(y, s.pre[l], bias=False)[0],
                 torch.zeros_like(y[:, 0])) for l, y in enumerate(m)]
