"""Weight estimation: feedback matrices B_l that learn to estimate the forward weights W_l^T.

All five rules send the error down like feedback alignment (`_FixedFeedback`'s credit path),

    delta_L = e,   delta_{l-1} = (B_l delta_l) * f'(z_{l-1}),   gW_l = delta_l h_{l-1}^T (mean),

and differ only in how B_l (shape of W_l^T for dense layers, l >= 1) learns, in `feedback` after
W has stepped (reading the updated W). x = h_{l-1} is layer l's input, y its output, lr the
trainer's per-replica learning rate. The equations are collected in docs/rules.md.

kolen_pollack (Kolen & Pollack 1994; Akrout et al. 2019, NeurIPS, "Deep learning without weight
    transport"):  B_l <- B_l - lr (step_l^T + d B_l), with step_l the optimizer-transformed
    learning term of W_l and d the decay the learning step applied to W_l, the rule's `decay`
    lambda plus the run's weight decay (`feedback(..., decay=d)`; lambda alone if None), so
    B_l - W_l^T shrinks by exactly (1 - lr d) per step, W's own decay factor, under any optimizer.
weight_mirror (Akrout et al. 2019): a mirror phase each step drives layer l-1 with white noise
    x ~ N(0, sigma^2 I), y = W_l x, and B_l <- B_l + eta_B (mean x y^T - lambda_B B_l);
    fixed point (sigma^2 / lambda_B) W_l^T.
symmetric_alignment (Kunin et al. 2020, ICML, "Two routes to scalable credit assignment without
    weight symmetry"): gradient of R = alpha ||B||^2 - beta tr(W B):
    B_l <- B_l - lr (2 alpha B_l - beta W_l^T);  fixed point (beta / 2 alpha) W_l^T.
activation_alignment (Kunin et al. 2020): gradient of
    R = alpha mean ||B^T x||^2 - beta mean <W x, B^T x>:
    B_l <- B_l - lr Sigma_x (2 alpha B_l - beta W_l^T),  Sigma_x = mean x x^T;
    fixed point B^T = (beta / 2 alpha) W on the span of the data.
information_alignment (Kunin et al. 2020): gradient of alpha amp + beta null + gamma decay with
    amp = -mean <x, B y>, null = 1/2 mean ||B y||^2, decay = 1/2 ||B||^2:
    B_l <- B_l - lr (-alpha C_xy + beta B_l C_yy + gamma B_l),  C_xy = mean x y^T,
    C_yy = mean y y^T;  fixed point B = alpha C_xy (beta C_yy + gamma I)^-1, the ridge decoder
    of the layer's input x from its output y. With `centered` (default) x and y are centred
    over the batch first (covariances: the decoder of fluctuations, which ignores the large
    mean of relu activity; with raw second moments the mean direction dominates B).
"""

from __future__ import annotations

import torch

from lrsim.registry import Param
from lrsim.rules.base import Signals, State, normal, register
from lrsim.rules.feedback_alignment import _FixedFeedback, random_feedback

_CREDIT = frozenset({"pre", "derivative", "output_error"})


class _LearnedFeedback(_FixedFeedback):
    """Feedback alignment's credit path with feedback matrices B_l that learn (l >= 1).

    B_l starts random, N(0, 1/n_{l-1}) per replica from its own generator, exactly as in
    feedback alignment. Subclasses give `b_step`, the term d such that B_l <- B_l - lr d."""

    family = "weight_estimation"
    locality = "weight_estimation"
    substrates = ("rate",)

    def init(self, weights: list[torch.Tensor], generators: list[torch.Generator],
             layers=None) -> State:
        return {"B": random_feedback(weights, generators, layers)}

    def b_step(self, b: torch.Tensor, s: Signals, l: int, step: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def feedback(self, state: State, s: Signals, m: list[torch.Tensor],
                 steps: list[torch.Tensor], lr: torch.Tensor, decay=None) -> State:
        """B_l <- B_l - lr b_step(B_l) for every layer l >= 1; lr is (K, 1, 1)."""
        new_b = [None] + [b - lr * self.b_step(b, s, l, steps[l])
                          for l, b in enumerate(state["B"]) if l >= 1]
        return {**state, "B": new_b}


@register
class KolenPollack(_LearnedFeedback):
    """Kolen-Pollack (Kolen & Pollack 1994; Akrout et al. 2019): B_l <- B_l - lr (step_l^T +
    d B_l) with step_l the optimizer's step for W_l and d the decay W_l gets (lambda + the run's
    weight decay): B - W^T decays by W's factor (1 - lr d) per step."""

    name = "kolen_pollack"
    substrates = ("rate", "spiking")
    signals = _CREDIT
    params = {"decay": Param(0.02, "lambda: decay applied to W and B alike", low=0.0,
                             high=100.0)}

    def feedback(self, state: State, s: Signals, m: list[torch.Tensor],
                 steps: list[torch.Tensor], lr: torch.Tensor,
                 decay: torch.Tensor | float | None = None) -> State:
        """B_l <- B_l - lr (step_l^T + d B_l), d = `decay` ((K, 1, 1) or a number): the total
        decay the substrate applied to W_l this step (lambda + weight decay); lambda if None."""
        d = self.decay if decay is None else decay
        new_b = [None] + [b - lr * (s.layers[l].as_feedback(steps[l]) + d * b)
                          for l, b in enumerate(state["B"]) if l >= 1]
        return {**state, "B": new_b}


@register
class WeightMirror(_LearnedFeedback):
    """Weight mirror (Akrout et al. 2019): white noise x ~ N(0, sigma^2) into layer l-1,
    y = W_l x, B_l <- B_l + eta_B (mean x y^T - lambda_B B_l) -> (sigma^2 / lambda_B) W_l^T."""

    name = "weight_mirror"
    locality = "local"
    signals = _CREDIT | {"own_weights", "noise"}
    params = {
        "mirror_lr": Param(0.01, "eta_B: learning rate of the mirror phase", low=0.0,
                           high=1.0, low_open=True),
        "mirror_decay": Param(1.0, "lambda_B: decay of B in the mirror phase", low=0.0,
                              high=100.0),
        "mirror_noise": Param(1.0, "sigma: std of the white noise driving the mirror phase",
                              low=0.0, high=100.0, low_open=True),
        "mirror_batch": Param(32, "noise samples per mirror phase", low=1, high=100_000),
    }

    def feedback(self, state, s, m, steps, lr, decay=None):
        """Mirror phase, independent of the trainer's lr: B <- B + eta_B (x y^T/N - lambda_B B)."""
        new_b: list[torch.Tensor | None] = [None]
        for l in range(1, len(state["B"])):
            b, w, layer = state["B"][l], s.own_weights[l], s.layers[l]
            shape = (self.mirror_batch, *layer.input_shape(w))
            x = normal(s.noise, w.shape[0], shape, w) * self.mirror_noise
            hebb = layer.feedback_gradient(x, layer.forward(x, w))  # mean x y^T, y = W x
            new_b.append(b + self.mirror_lr * (hebb - self.mirror_decay * b))
        return {**state, "B": new_b}


_ALPHA = Param(0.5, "alpha: weight of the B penalty", low=0.0, high=100.0, low_open=True)
_BETA = Param(1.0, "beta: weight of the alignment term (beta = 2 alpha targets B = W^T)",
              low=0.0, high=100.0)


@register
class SymmetricAlignment(_LearnedFeedback):
    """Symmetric alignment (Kunin et al. 2020): B_l <- B_l - lr (2 alpha B_l - beta W_l^T),
    the gradient of alpha ||B||^2 - beta tr(W B); B -> (beta / 2 alpha) W^T."""

    name = "symmetric_alignment"
    signals = _CREDIT | {"downstream_weights"}
    params = {"alpha": _ALPHA, "beta": _BETA}

    def b_step(self, b, s, l, step):
        w = s.downstream_weights[l - 1]  # W_l
        return 2 * self.alpha * b - self.beta * s.layers[l].as_feedback(w)


@register
class ActivationAlignment(_LearnedFeedback):
    """Activation alignment (Kunin et al. 2020): B_l <- B_l - lr Sigma_x (2 alpha B_l - beta
    W_l^T), the gradient of alpha mean||B^T x||^2 - beta mean<W x, B^T x> over the batch's
    layer inputs x; B^T -> (beta / 2 alpha) W on the span of the data."""

    name = "activation_alignment"
    signals = _CREDIT | {"own_weights"}
    params = {"alpha": Param(0.05, "alpha: weight of the output-energy penalty", low=0.0,
                             high=100.0, low_open=True),
              "beta": Param(0.1, "beta: weight of the alignment term (beta = 2 alpha "
                                 "targets B = W^T)", low=0.0, high=100.0)}

    def b_step(self, b, s, l, step):
        x, w, layer = s.pre[l], s.own_weights[l], s.layers[l]
        grad_b = 2 * self.alpha * b - self.beta * layer.as_feedback(w)
        err = layer.forward(x, layer.as_weight(grad_b))  # (2 alpha B - beta W^T)^T x, (K, N, n_l)
        return layer.feedback_gradient(x, err)  # Sigma_x (2 alpha B - beta W^T)


@register
class InformationAlignment(_LearnedFeedback):
    """Information alignment (Kunin et al. 2020): B_l <- B_l - lr (-alpha C_xy + beta B C_yy +
    gamma B) from alpha amp + beta null + gamma decay; B -> alpha C_xy (beta C_yy + gamma)^-1,
    the ridge decoder of the layer's input x from its output y (local: pre and post only);
    C are batch covariances when `centered`."""

    name = "information_alignment"
    locality = "local"
    signals = _CREDIT | {"post"}
    params = {"alpha": Param(0.1, "alpha: weight of the amplification term -<x, B y>",
                             low=0.0, high=100.0),
              "beta": Param(0.1, "beta: weight of the null term ||B y||^2 / 2", low=0.0,
                            high=100.0),
              "gamma": Param(0.1, "gamma: weight of the decay term ||B||^2 / 2", low=0.0,
                             high=100.0),
              "centered": Param(True, "use batch-centred x and y (covariances, not raw "
                                      "second moments)")}

    def b_step(self, b, s, l, step):
        x, y = s.pre[l], s.post[l]
        if self.centered:
            x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
        layer = s.layers[l]
        recon = layer.send_back(y, b)  # B y, (K, N, n_{l-1})
        grad = layer.feedback_gradient(self.beta * recon - self.alpha * x, y)
        return grad + self.gamma * b
