"""Batched rate networks: K multilayer perceptrons with one architecture, trained together.

Layer l computes z_l = W_l h_{l-1} + b_l and h_l = f(z_l) (the output layer is linear:
h_L = z_L), through its layer kind (`lrsim.layers.Dense`, the interface rules also use). Every
tensor has a leading replica axis K: W_l is (K, n_l, n_{l-1}) and activity is (K, N, n_l), so
one `bmm` runs all K networks. Replica k is initialised from its own seed,
W_l ~ N(0, (s_k g)^2 / n_{l-1}) with g the activation's gain (sqrt 2 for relu), s_k its init
scale, so a replica does not depend on which others share its batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lrsim.layers import Layer, dense_layers


def _silu_prime(z: Tensor, h: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s + h * (1 - s)


ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor], float]]
ACTIVATIONS = {
    # name: (f(z), f'(z) given (z, h), init gain)
    # relu' as sign(h) (h = relu(z) >= 0): one pass; `(z > 0).to(dtype)` is two (bool, cast)
    "relu": (torch.relu, lambda z, h: torch.sign(h), math.sqrt(2.0)),
    "tanh": (torch.tanh, lambda z, h: 1 - h * h, 1.0),
    "sigmoid": (torch.sigmoid, lambda z, h: h * (1 - h), 1.0),
    "linear": (lambda z: z, lambda z, h: torch.ones_like(z), 1.0),
    # ELU (Clevert, Unterthiner & Hochreiter 2016, ICLR): z for z > 0, e^z - 1 below, so
    # f'(z) = h + 1 there; He's gain as for relu
    "elu": (torch.nn.functional.elu, lambda z, h: torch.where(z > 0, torch.ones_like(z), h + 1),
            math.sqrt(2.0)),
    # softplus (Dugas et al. 2001, NeurIPS) log(1 + e^z): f'(z) = sigmoid(z) = 1 - e^-h
    "softplus": (torch.nn.functional.softplus, lambda z, h: -torch.expm1(-h), 1.0),
    # leaky relu (Maas, Hannun & Ng 2013, ICML workshop), slope a = 0.01 below 0; He's gain
    # sqrt(2 / (1 + a^2))
    "leaky_relu": (torch.nn.functional.leaky_relu,
                   lambda z, h: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, 0.01)),
                   math.sqrt(2.0 / (1 + 0.01 ** 2))),
    # SiLU / swish (Elfwing, Uchibe & Doya 2018, Neural Networks; Ramachandran, Zoph & Le 2017)
    # z sigmoid(z): f'(z) = s + h (1 - s) with s = sigmoid(z); He's gain as for relu
    "silu": (torch.nn.functional.silu, _silu_prime, math.sqrt(2.0)),
}
LOSSES = ("cross_entropy", "mse")


def loss_and_error(z_out: Tensor, target: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Per-replica mean loss (K,) and per-sample output error e = dL/dz_L (K, N, n_L).

    cross_entropy: L = -mean_n sum_j y_j log softmax(z)_j,  e = softmax(z) - y
    mse:           L = mean_n 0.5 ||z - y||^2,              e = z - y
    """
    if loss == "cross_entropy":
        # log softmax written out: torch.log_softmax over a short last axis is ~9x slower on
        # AVX-512 CPUs (measured, torch 2.13) than these four passes
        shifted = z_out - z_out.amax(-1, keepdim=True)
        logp = shifted - shifted.exp().sum(-1, keepdim=True).log()
        return -(target * logp).sum(-1).mean(-1), logp.exp() - target
    if loss == "mse":
        diff = z_out - target
        return 0.5 * (diff * diff).sum(-1).mean(-1), diff
    raise ValueError(f"unknown loss '{loss}'; known: {', '.join(LOSSES)}")


@dataclass
class Forward:
    """Activity of one forward pass: per layer input (pre), pre-activation z, output h."""

    pre: list[Tensor]
    z: list[Tensor]
    post: list[Tensor]
    derivative: list[Tensor]


class RateNetwork:
    """K networks of widths `sizes` = [n_in, *units, n_out] held as batched tensors.

    `layers`: the layer kind of each layer (default: all dense, an MLP). A conv layer
    (`lrsim.models.rate.conv.Conv2d`) counts its output channels in `sizes` (its units) and
    gives its weight matrix shape (C_out, C_in kh kw) and output shape itself;
    `lrsim.models.rate.conv.conv_network` builds such a network."""

    def __init__(self, sizes: list[int], activation: str = "relu", bias: bool = True,
                 seeds: list[int] | None = None, init_scale: Tensor | float = 1.0,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 layers: list[Layer] | None = None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; known: {', '.join(ACTIVATIONS)}")
        seeds = list(seeds if seeds is not None else [0])
        self.sizes, self.activation, self.bias = list(sizes), activation, bias
        self.K, self.dtype, self.device = len(seeds), dtype, torch.device(device)
        self.f, self.fprime, gain = ACTIVATIONS[activation]
        scale = torch.as_tensor(init_scale, dtype=torch.float64).expand(self.K)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        self.layers: list[Layer] = list(layers) if layers is not None \
            else dense_layers(len(sizes) - 1)
        n_in = sizes[0]  # values per sample reaching layer l (a conv layer's output, flat)
        for l, n_out in enumerate(sizes[1:]):
            g = gain if l < len(sizes) - 2 else 1.0
            # W_l as a matrix (n_out, fan_in): dense (n_l, n_{l-1}); conv (C_out, C_in kh kw)
            shape = getattr(self.layers[l], "matrix_shape", None) or (n_out, n_in)
            w = torch.stack([torch.randn(shape, generator=gk, dtype=torch.float64)
                             for gk in gens])
            w = w * (scale * g / math.sqrt(shape[1])).view(-1, 1, 1)
            self.weights.append(w.to(dtype=dtype, device=self.device))
            self.biases.append(torch.zeros(self.K, n_out, dtype=dtype, device=self.device))
            out_shape = getattr(self.layers[l], "out_shape", None)
            n_in = math.prod(out_shape) if out_shape else n_out
        # generators continue to be used by rules (feedback matrices) after the weights
        self.generators = gens
        self.dense = all(layer.kind == "dense" for layer in self.layers)

    def replicas(self, a: int, b: int) -> RateNetwork:
        """Replicas a:b as a network of their own whose parameters are views (slices along the
        replica dim) of this network's: a step on it updates these replicas here in place.
        It shares the layer objects and replicas a:b's generators."""
        if not 0 <= a < b <= self.K:
            raise ValueError(f"replicas {a}:{b} of {self.K}")
        part = copy.copy(self)
        part.K = b - a
        part.weights = [w[a:b] for w in self.weights]
        part.biases = [bias[a:b] for bias in self.biases]
        part.generators = self.generators[a:b]
        return part

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def parameters(self) -> tuple[list[Tensor], list[Tensor] | None]:
        """(weights, biases) as the learning step updates them; biases None without bias."""
        return self.weights, (self.biases if self.bias else None)

    def _layer(self, l: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """(z_l, h_l) of layer l from its input h."""
        b = self.biases[l] if self.bias else None
        z = self.layers[l].forward(h, self.weights[l], b)
        return z, (z if l == self.n_layers - 1 else self.f(z))

    def forward(self, x: Tensor) -> Forward:
        """x: (K, N, n_in) -> per-layer activity, each (K, N, n_l)."""
        pre, zs, posts, ders = [], [], [], []
        h = x
        for l in range(self.n_layers):
            pre.append(h)
            z, h = self._layer(l, h)
            zs.append(z)
            posts.append(h)
            ders.append(torch.ones_like(z) if l == self.n_layers - 1 else self.fprime(z, h))
        return Forward(pre, zs, posts, ders)

    def activity(self, x: Tensor) -> list[Tensor]:
        """h_l of every layer (the output linear), (K, N, n_l) each: `forward` without the
        derivatives."""
        out, h = [], x
        for l in range(self.n_layers):
            _, h = self._layer(l, h)
            out.append(h)
        return out

    def output(self, x: Tensor) -> Tensor:
        """Output pre-activation z_L only (no per-layer bookkeeping; the bias is added after
        the product, not fused as in `forward`: the figures of `train.evaluate`)."""
        if not self.dense:
            return self.activity(x)[-1]
        h = x
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.bmm(h, w.transpose(1, 2))
            if self.bias:
                h = h + b.unsqueeze(1)
            if l < self.n_layers - 1:
                h = self.f(h)
        return h
