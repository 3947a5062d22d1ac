"""The learning step: one update of a network's parameters by a rule, the same for every substrate.

    m      = rule.credit(state, s)                       the modulator of every layer
    g      = rule.plasticity(state, s, m)                (gW_l, gb_l), gradient-like
    steps  = optimizer.transform(g)                      sgd / momentum / adam, its own state
    W_l   <- W_l (1 - lr d) - lr steps_W_l               d = rule.decay + weight decay
    b_l   <- b_l - lr steps_b_l                          (no decay on biases)
    state  = rule.feedback(state, s, m, steps_W, lr, d)  learned B and other rule state, after W
                                                         stepped (s then holds the updated W)

`s` is read through `Signals.restrict(rule.signals)`. lr is a (K, 1, 1) tensor, d a number or a
(K, 1, 1) tensor (per replica). The update is in place: a substrate hands the step the tensors
it holds (the rate substrate its parameters; the spiking substrate dense copies of its synapses,
which it writes back, clipped to Dale's sign, afterwards).

Biases (decided once, for every substrate): a bias is a parameter like a weight. It passes the
same optimizer (with its own optimizer state) and gets the same learning rate, but no decay. A
substrate without biases (`biases=None`: the spiking network, or a rate network with
`bias = false`) sends only the weight terms through the optimizer; the rule's gb is dropped.

The step is split so that fusing it stays a local change: `terms` (credit, plasticity),
`transform` (optimizer), `apply` (decay and update), `feedback`. Fusing the sgd update with the
weight gradient (W.baddbmm_(m^T, x, alpha=-lr/N), no gW materialised) replaces `apply` for
layers whose plasticity is the three-factor term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lrsim.layers import Layer
from lrsim.rules.base import Rule, Signals, State

Number = Tensor | float


class LearningStep:
    """A rule, an optimizer and their states for one batch of K networks; call `step` once per
    update (see the module docstring).

    weights, biases: the parameter tensors (biases None where the network has none), used only
    to size the rule's and the optimizer's states; `step` is handed the tensors to update.
    weight_decay: a number or (K, 1, 1) per replica; the total decay is rule.decay + it.
    """

    def __init__(self, rule: Rule, optimizer: Any, weights: list[Tensor],
                 biases: list[Tensor] | None, layers: Sequence[Layer],
                 generators: list[torch.Generator], weight_decay: Number = 0.0):
        rule.check_layers(layers)
        self.rule, self.optimizer, self.layers = rule, optimizer, list(layers)
        self.has_bias = biases is not None
        self.rule_state: State = rule.init(weights, generators, self.layers)
        self.opt_state = optimizer.init(list(weights) + (list(biases) if biases else []))
        self.decay: Number = weight_decay + float(rule.decay)
        self.has_decay = bool((self.decay != 0).any()) if isinstance(self.decay, Tensor) \
            else self.decay != 0

    # -- the four stages ---------------------------------------------------------------------
    def terms(self, s: Signals) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
        """Credit then plasticity: (m, [(gW_l, gb_l)])."""
        m = self.rule.credit(self.rule_state, s)
        return m, self.rule.plasticity(self.rule_state, s, m)

    def transform(self, grads: list[tuple[Tensor, Tensor]]) -> tuple[list[Tensor], list[Tensor]]:
        """The optimizer's steps for the weights and (where the network has them) the biases."""
        terms = [g for g, _ in grads] + ([gb for _, gb in grads] if self.has_bias else [])
        steps, self.opt_state = self.optimizer.transform(terms, self.opt_state)
        n = len(grads)
        return steps[:n], steps[n:]

    def apply(self, weights: list[Tensor], biases: list[Tensor] | None, steps_w: list[Tensor],
              steps_b: list[Tensor], lr: Tensor) -> None:
        """W <- W (1 - lr d) - lr step (two passes over W, in place); b <- b - lr step_b."""
        for w, step in zip(weights, steps_w):
            if self.has_decay:
                w.mul_(1 - lr * self.decay)
            w.addcmul_(lr, step, value=-1)
        if self.has_bias and biases is not None:
            for b, step in zip(biases, steps_b):
                b -= lr[:, :, 0] * step  # lr (K, 1, 1) -> (K, 1) for b (K, n)

    def feedback(self, s: Signals, m: list[Tensor], steps_w: list[Tensor], lr: Tensor) -> None:
        self.rule_state = self.rule.feedback(self.rule_state, s, m, steps_w, lr, self.decay)

    # -- one update --------------------------------------------------------------------------
    def step(self, signals: Signals, weights: list[Tensor], biases: list[Tensor] | None,
             lr: Tensor) -> None:
        """One learning step on `weights` / `biases` in place; `signals` must read those very
        tensors (own_weights, downstream_weights), so `feedback` sees the updated W."""
        s = signals.restrict(self.rule.signals)
        m, grads = self.terms(s)
        steps_w, steps_b = self.transform(grads)
        self.apply(weights, biases, steps_w, steps_b, lr)
        self.feedback(s, m, steps_w, lr)
