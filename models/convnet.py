"""K networks of convolutional then dense layers, built from layer kinds, trained together.

Layer l computes z_l = layer_l.forward(h_{l-1}, W_l, b_l) and h_l = f(z_l) (the readout is
dense and linear): conv layers (`lrsim.models.conv.Conv2d`, pooling inside, the last one
handing its activity on flat) and then dense layers. A rule reaches every layer through the
layer interface only (forward, send_back through a feedback tensor, weight_gradient, ...), so
backpropagation's credit here is

    m_L = e,   m_{l-1} = layer_l.send_back(m_l, layer_l.as_feedback(W_l)) * f'(z_{l-1}),

the same code for dense and conv layers. Replica k draws its weights from its own seed,
W ~ N(0, (s_k g)^2 / fan_in) (g the activation's gain on hidden layers, 1 on the readout;
fan_in = C_in kh kw for a conv layer), so it does not depend on which replicas share its batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from lrsim.errors import ConfigError
from lrsim.models.conv import Conv2d
from lrsim.models.rate import ACTIVATIONS, Forward


class Dense:
    """The dense layer kind (the interface's conventions: W (K, n_out, n_in), feedback B of
    W^T's shape)."""

    kind: ClassVar[str] = "dense"

    def __init__(self, n_in: int, n_out: int):
        self.n_in, self.n_out = n_in, n_out

    @property
    def fan_in(self) -> int:
        return self.n_in

    def weight_shape(self, k: int) -> tuple[int, int, int]:
        return (k, self.n_out, self.n_in)

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        if b is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def send_back(self, m: Tensor, feedback: Tensor) -> Tensor:
        return torch.bmm(m, feedback.transpose(1, 2))

    def weight_gradient(self, m: Tensor, x: Tensor, bias: bool = True
                        ) -> tuple[Tensor, Tensor | None]:
        gw = torch.bmm(m.transpose(1, 2) * (1.0 / m.shape[1]), x)
        return gw, (m.mean(1) if bias else None)

    def as_feedback(self, w: Tensor) -> Tensor:
        return w.transpose(1, 2)


def _per_layer(value: int | Sequence[int], n: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{name} lists {len(value)} values for {n} conv layers")
    return [int(v) for v in value]


def conv_layers(input_shape: tuple[int, int, int], conv: Sequence[int],
                kernel: int | Sequence[int] = 3, stride: int | Sequence[int] = 1,
                padding: int | Sequence[int] = 1, pool: int | Sequence[int] = 1,
                pool_type: str = "max", flatten_last: bool = True) -> list[Conv2d]:
    """The conv layer objects of a `[model] conv = [...]` stack on images of `input_shape`."""
    n = len(conv)
    opts = zip(conv, _per_layer(kernel, n, "kernel"), _per_layer(stride, n, "stride"),
               _per_layer(padding, n, "padding"), _per_layer(pool, n, "pool"))
    layers: list[Conv2d] = []
    c, hw = input_shape[0], tuple(input_shape[1:])
    for i, (c_out, k, s, p, q) in enumerate(opts):
        layer = Conv2d(c, c_out, hw, k, s, p, q, pool_type, flatten_last and i == n - 1)
        layers.append(layer)
        c, hw = c_out, layer.out_hw
    return layers


class ConvNetwork:
    """K networks: `conv` layers on images of `input_shape` (C, H, W) (given flat), then dense
    `hidden` widths, then a linear readout of `n_out` units. Options as in `conv_layers`."""

    def __init__(self, input_shape: tuple[int, int, int], conv: list[int], hidden: list[int],
                 n_out: int, kernel: int | list[int] = 3, stride: int | list[int] = 1,
                 padding: int | list[int] = 1, pool: int | list[int] = 1,
                 pool_type: str = "max", activation: str = "relu", bias: bool = True,
                 seeds: list[int] | None = None, init_scale: Tensor | float = 1.0,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; known: {', '.join(ACTIVATIONS)}")
        seeds = list(seeds if seeds is not None else [0])
        self.K, self.dtype, self.device = len(seeds), dtype, torch.device(device)
        self.activation, self.bias, self.input_shape = activation, bias, tuple(input_shape)
        self.f, self.fprime, gain = ACTIVATIONS[activation]
        if activation == "relu":  # f'(z) = 1 where h = relu(z) > 0: one pass, the same values
            self.fprime = lambda z, h: torch.sign(h)
        self.layers: list[Conv2d | Dense] = list(conv_layers(
            input_shape, conv, kernel, stride, padding, pool, pool_type))
        width = math.prod(self.layers[-1].out_shape) if conv else math.prod(input_shape)
        for n_next in [*hidden, n_out]:
            self.layers.append(Dense(width, n_next))
            width = n_next
        self.n_conv = len(conv)
        scale = torch.as_tensor(init_scale, dtype=torch.float64).expand(self.K)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        for l, layer in enumerate(self.layers):
            g = gain if l < len(self.layers) - 1 else 1.0
            w = torch.stack([torch.randn(layer.weight_shape(1)[1:], generator=gk,
                                         dtype=torch.float64) for gk in gens])
            w = w * (scale * g / math.sqrt(layer.fan_in)).view(-1, 1, 1)
            self.weights.append(w.to(dtype=dtype, device=self.device))
            self.biases.append(torch.zeros(self.K, w.shape[1], dtype=dtype, device=self.device))
        self.generators = gens  # rules draw their feedback tensors from them afterwards

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def forward(self, x: Tensor) -> Forward:
        """x: flat inputs (K, N, d) -> per-layer pre (input), z, post h, f'(z)."""
        pre, zs, posts, ders = [], [], [], []
        h = x
        for l, layer in enumerate(self.layers):
            z = layer.forward(h, self.weights[l], self.biases[l] if self.bias else None)
            last = l == self.n_layers - 1
            pre.append(h)
            h = z if last else self.f(z)
            zs.append(z)
            posts.append(h)
            ders.append(torch.ones_like(z) if last else self.fprime(z, h))
        return Forward(pre, zs, posts, ders)

    def output(self, x: Tensor) -> Tensor:
        """The readout z_L only."""
        h = x
        for l, layer in enumerate(self.layers):
            h = layer.forward(h, self.weights[l], self.biases[l] if self.bias else None)
            if l < self.n_layers - 1:
                h = self.f(h)
        return h


# rule families with no convolutional form, and why (checked when an experiment is read)
NO_CONV_FORM = {
    "hebbian": "its stabilising terms (Oja's diag(y^2) W, Sanger's LT(y y^T) W, BCM's per-unit "
               "threshold) are defined per unit of a dense weight matrix, and lrsim defines no "
               "weight-shared form of them",
    "spike_timing": "it is a spiking-substrate rule (spike-timing windows), and conv layers run "
                    "on the rate substrate",
}


def check_conv_model(model, substrate: str, task: str, task_shape: tuple[int, ...] | None,
                     rule: str, rule_family: str) -> None:
    """Refuse, with one message, a `[model] conv` stack that cannot run: not the rate substrate,
    a task without images, a rule with no conv form, a geometry that leaves no positions."""
    if substrate != "rate":
        raise ConfigError(f"[model] conv: convolutional layers run on the rate substrate only "
                          f"(substrate is '{substrate}')")
    if task_shape is None:
        raise ConfigError(f"[model] conv needs an image task (digits, mnist, cifar10); task "
                          f"'{task}' gives flat vectors (use hidden = [...] only)")
    if rule_family in NO_CONV_FORM:
        raise ConfigError(f"rule '{rule}' cannot train conv layers: "
                          f"{NO_CONV_FORM[rule_family]}; use a credit-assignment rule or "
                          f"drop [model] conv")
    try:
        conv_layers(tuple(task_shape), model.conv, model.kernel, model.stride, model.padding,
                    model.pool, model.pool_type)
    except ValueError as err:
        raise ConfigError(f"[model] conv on task '{task}' images {tuple(task_shape)}: "
                          f"{err}") from None
