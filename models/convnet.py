"""K convolutional networks trained together: conv layers, then dense layers, replica axis first.

Layer l takes x_l = T_l(h_{l-1}), the previous layer's output through a fixed input map T_l
(for a conv layer: the previous conv layer's pooling; for the first dense layer after the conv
stack: pooling, then flatten), and computes z_l = op_l(x_l; W_l) + b_l, h_l = f(z_l) (the output
layer is dense and linear). A rule's credit m_l = dL/dz_l (or its estimate) reaches layer l - 1
through the layer's send-back and the input map's transpose,

    m_{l-1} = T_l^T( send_back_l(m_l, F_l) ) * f'(z_{l-1}),

where F_l is a feedback tensor of W_l's shape (F = W: backpropagation; F = B^T random: feedback
alignment). Every operation runs on all K replicas at once (`lrsim.models.conv` for the conv
kind, `bmm` for the dense kind), replica k drawing its weights from its own seed, so a replica
does not depend on which others share its batch.

Recorded per layer (`ConvForward`): pre = x_l (what the layer's synapses see), z_l, post = h_l,
derivative = f'(z_l); conv activity is (K, N, C, H, W), dense activity (K, N, n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lrsim.models.conv import Conv2d, Pool2d, flatten, unflatten
from lrsim.models.rate import ACTIVATIONS, Forward
from lrsim.rules.base import three_factor


@dataclass(frozen=True)
class Dense:
    """The dense layer kind: z = h W^T + b per sample, W (K, n_out, n_in)."""

    n_in: int
    n_out: int
    kind: str = "dense"

    @property
    def fan_in(self) -> int:
        return self.n_in

    def weight_shape(self, k: int) -> tuple[int, ...]:
        return (k, self.n_out, self.n_in)

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        if b is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def send_back(self, m: Tensor, feedback: Tensor) -> Tensor:
        """m (K, N, n_out) through F (K, n_out, n_in): the row form of F^T m."""
        return torch.bmm(m, feedback)

    def weight_gradient(self, m: Tensor, x: Tensor, bias: bool = True
                        ) -> tuple[Tensor, Tensor | None]:
        gw, gb = three_factor(m, x)
        return gw, (gb if bias else None)


@dataclass(frozen=True)
class InputMap:
    """The fixed map from h_{l-1} to a layer's input: optional pooling, then optional flatten."""

    pool: Pool2d | None = None
    flatten: bool = False

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        idx = None
        if self.pool is not None:
            h, idx = self.pool.forward(h)
        return (flatten(h) if self.flatten else h), idx

    def send_back(self, g: Tensor, h: Tensor, indices: Tensor | None) -> Tensor:
        """T^T g: credit at the layer's input back to h_{l-1} (h gives the shapes, the arg-max
        positions of max pooling come from `indices`)."""
        if self.pool is None:
            return unflatten(g, h.shape[2:]) if self.flatten else g
        pooled = self.pool.out_hw(h.shape[3:])
        if self.flatten:
            g = unflatten(g, (h.shape[2], *pooled))
        return self.pool.send_back(g, h, indices)


@dataclass
class ConvForward(Forward):
    """`Forward` plus the input maps' arg-max indices, one entry per layer (None if unused)."""

    indices: list[Tensor | None] = field(default_factory=list)


def _per_layer(value: int | list[int], n: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{name} lists {len(value)} values for {n} conv layers")
    return list(value)


class ConvNetwork:
    """K networks: conv layers of `conv` output channels, then dense `hidden` widths, then a
    linear readout of `n_out` units, on images of `input_shape` (C, H, W) given flat.

    kernel, stride, padding, pool: one value for every conv layer or one per conv layer;
    pool p > 1 follows each conv layer's activation with non-overlapping p x p pooling of
    `pool_kind` (max or avg). Weights W ~ N(0, (s_k g)^2 / fan_in) per replica (g the
    activation's gain on hidden layers, 1 on the readout; fan_in = C_in k^2 for a conv layer)."""

    def __init__(self, input_shape: tuple[int, int, int], conv: list[int], hidden: list[int],
                 n_out: int, kernel: int | list[int] = 3, stride: int | list[int] = 1,
                 padding: int | list[int] = 1, pool: int | list[int] = 1,
                 pool_kind: str = "max", activation: str = "relu", bias: bool = True,
                 seeds: list[int] | None = None, init_scale: Tensor | float = 1.0,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; known: {', '.join(ACTIVATIONS)}")
        seeds = list(seeds if seeds is not None else [0])
        self.K, self.dtype, self.device = len(seeds), dtype, torch.device(device)
        self.activation, self.bias, self.input_shape = activation, bias, tuple(input_shape)
        self.f, self.fprime, gain = ACTIVATIONS[activation]
        n = len(conv)
        kernels, strides = _per_layer(kernel, n, "kernel"), _per_layer(stride, n, "stride")
        pads, pools = _per_layer(padding, n, "padding"), _per_layer(pool, n, "pool")
        self.layers: list[Conv2d | Dense] = []
        self.maps: list[InputMap] = []
        c, hw = input_shape[0], tuple(input_shape[1:])
        previous_pool: Pool2d | None = None
        for c_out, k, s, p, q in zip(conv, kernels, strides, pads, pools):
            layer = Conv2d(c, c_out, hw, k, s, p)
            self.layers.append(layer)
            self.maps.append(InputMap(previous_pool))
            previous_pool = Pool2d(q, pool_kind) if q > 1 else None
            c, hw = c_out, layer.out_hw
            if previous_pool is not None:
                hw = previous_pool.out_hw(hw)
                if min(hw) < 1:
                    raise ValueError(f"pool {q} leaves no positions after conv layer "
                                     f"{len(self.layers)} ({layer.out_hw[0]}x{layer.out_hw[1]})")
        width = c * hw[0] * hw[1]
        for i, n_next in enumerate([*hidden, n_out]):
            self.layers.append(Dense(width, n_next))
            self.maps.append(InputMap(previous_pool, flatten=bool(conv)) if i == 0 else InputMap())
            previous_pool, width = None, n_next
        self.n_conv = n
        self.sizes = [int(math.prod(input_shape)), *[_width(m) for m in self.layers]]
        scale = torch.as_tensor(init_scale, dtype=torch.float64).expand(self.K)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        for l, layer in enumerate(self.layers):
            g = gain if l < len(self.layers) - 1 else 1.0
            w = torch.stack([torch.randn(layer.weight_shape(1)[1:], generator=gk,
                                         dtype=torch.float64) for gk in gens])
            w = w * (scale * g / math.sqrt(layer.fan_in)).view(-1, *[1] * (w.dim() - 1))
            self.weights.append(w.to(dtype=dtype, device=self.device))
            n_units = layer.c_out if isinstance(layer, Conv2d) else layer.n_out
            self.biases.append(torch.zeros(self.K, n_units, dtype=dtype, device=self.device))
        self.generators = gens  # rules draw their feedback tensors from them afterwards

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def image(self, x: Tensor) -> Tensor:
        """Flat inputs (K, N, C*H*W) as images (K, N, C, H, W)."""
        return x.reshape(*x.shape[:2], *self.input_shape) if self.n_conv else x

    def forward(self, x: Tensor) -> ConvForward:
        """x: flat inputs (K, N, d) -> per-layer activity (`ConvForward`)."""
        pre, zs, posts, ders, idxs = [], [], [], [], []
        h = self.image(x)
        for l, (layer, imap) in enumerate(zip(self.layers, self.maps)):
            xin, idx = imap.forward(h)
            z = layer.forward(xin, self.weights[l], self.biases[l] if self.bias else None)
            last = l == self.n_layers - 1
            h = z if last else self.f(z)
            pre.append(xin)
            zs.append(z)
            posts.append(h)
            ders.append(torch.ones_like(z) if last else self.fprime(z, h))
            idxs.append(idx)
        return ConvForward(pre, zs, posts, ders, idxs)

    def output(self, x: Tensor) -> Tensor:
        """The readout z_L only."""
        h = self.image(x)
        for l, (layer, imap) in enumerate(zip(self.layers, self.maps)):
            h = layer.forward(imap.forward(h)[0], self.weights[l],
                              self.biases[l] if self.bias else None)
            if l < self.n_layers - 1:
                h = self.f(h)
        return h

    def send_back(self, l: int, m: Tensor, feedback: Tensor, fw: ConvForward) -> Tensor:
        """T_l^T send_back_l(m_l, F_l): layer l's credit m (at z_l) carried to h_{l-1} through a
        feedback tensor F of W_l's shape (l >= 1). Multiply by f'(z_{l-1}) for m_{l-1}."""
        g = self.layers[l].send_back(m, feedback)
        return self.maps[l].send_back(g, fw.post[l - 1], fw.indices[l])

    def weight_gradient(self, l: int, m: Tensor, fw: ConvForward
                        ) -> tuple[Tensor, Tensor | None]:
        """(gW_l, gb_l): the batch mean of m_l times layer l's input, summed over positions."""
        return self.layers[l].weight_gradient(m, fw.pre[l], self.bias)


def _width(layer: Conv2d | Dense) -> int:
    if isinstance(layer, Conv2d):
        return layer.c_out * layer.out_hw[0] * layer.out_hw[1]
    return layer.n_out
