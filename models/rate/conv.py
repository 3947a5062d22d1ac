"""The convolutional layer kind, batched over K replicas: grouped convolution, replica = group.

Layer l of replica k computes, per sample n, output channel o and output position p,

    a[k, n, o, p] = b[k, o] + sum_{c, u} W[k, o, c, u] x[k, n, c, s p + u - pad]
    z = pool(a)                        (optional `pool` x `pool` max or avg pooling, stride pool)

(kernel offsets u, stride s, zero padding pad); the network applies h = f(z) after. Pooling
acts on z, before the activation: for max pooling and a non-decreasing f (every activation lrsim
has but silu) f(maxpool(a)) = maxpool(f(a)), so this is the usual conv -> f -> pool layer; with
silu, and with average pooling, the layer is conv -> pool -> f. The K networks run as one
convolution with `groups = K`: input (N, K*C_in, H, W), kernels (K*C_out, C_in, kh, kw), so
group k sees only replica k's channels and kernels, and replica k in a batch computes what it
computes alone. No Python loop runs over replicas.

Tensors. Weights are stored as matrices W (K, C_out, C_in*kh*kw) (the kernel of output channel
o is row o; a free view of the 4-D kernel), so per-replica scalars (K, 1, 1), optimizers and
every rule treat them like dense weights. Activity is (K, N, C, H, W), replica first; the last
conv layer before a dense layer returns it flat, (K, N, C*H*W), channel-major (`flatten`).
Inputs of any shape that reshapes to (K, N, C_in, H, W) are accepted (flat images included).
Activity this module returns is a view of (N, H, W, K, C) storage, channels-last (oneDNN's fast
layout for small groups on CPU: 2-4x faster convolution and pooling than (N, K*C, H, W),
measured in benchmarks/bench_conv.py's development), so chained layers hand activity on without
copies.

The layer interface (`lrsim.layers.Layer`), for a credit m = dL/dz:

    send_back(m, B)          conv^T(P^T m, B): m carried to the input through a feedback kernel
                             B of W's shape (the kernel's own convention: as_feedback(W) = W),
                             P^T the pooling's transpose; B = W gives dL/dx (backpropagation)
    weight_gradient(m, x)    gW[k,o,c,u] = (1/N) sum_{n,p} (P^T m)[k,n,o,p] x[k,n,c,s p+u-pad],
                             gb[k,o] = (1/N) sum_{n,p} (P^T m)[k,n,o,p]: the batch mean, summed
                             over positions (the dense three-factor term with weight sharing)
    linear(x, W)             conv(x, W) alone, (K, N, C_out, Hc, Wc): no bias, no pooling
                             (the synaptic map a feedback kernel estimates)
    feedback_gradient(x, y)  the same correlation of an input-side x and an output-side y
                             (y of the layer's output shape, sent through P^T, or of the
                             convolution's, as `linear` gives it), each kernel tap averaged
                             over the positions where it sees the image rather than the zero
                             padding: the Hebbian term of a feedback kernel, the mean of its
                             position-wise terms. For white noise x ~ N(0, sigma^2) and
                             y = linear(x, W) this is sigma^2 W on every tap (weight mirror's
                             fixed point, as for a dense layer)
    mix(x, M)                channels mixed by a square (K, C, C) matrix at every position
                             (a 1x1 convolution)
    broadcast(e, D)          a vector e (K, N, n) spread over the channels by D (K, C, n), (D e)/P
                             at every position (the transpose of global average pooling)
    random_feedback(W)       B ~ N(0, 1/(C_in kh kw)) per replica from its own generator

P^T, the transpose of pooling: average pooling spreads a window's credit as 1/pool^2; max
pooling routes it to the window's arg-max, taken from this layer's most recent `forward` (the
one that produced the output-side tensor; the learning step calls forward, then credit and
plasticity, and a rule's feedback phase calls forward again before it uses the result).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from lrsim.layers import conv_geometry, conv_shape, dense_layers
from lrsim.models.rate.network import RateNetwork

POOL_KINDS = ("max", "avg")
CL = torch.channels_last


def to_groups(x: Tensor) -> Tensor:
    """(K, N, C, H, W) -> (N, K*C, H, W) in channels-last memory order (N, H, W, K*C); free when
    x is already a view of such storage (what this module returns)."""
    k, n, c, h, w = x.shape
    return x.transpose(0, 1).reshape(n, k * c, h, w).contiguous(memory_format=CL)


def from_groups(y: Tensor, k: int) -> Tensor:
    """(N, K*C, H, W) -> the (K, N, C, H, W) view (no copy)."""
    n, kc, h, w = y.shape
    return y.view(n, k, kc // k, h, w).transpose(0, 1)


class Conv2d:
    """The convolutional layer kind: `c_in` -> `c_out` channels, square `kernel`, `stride`, zero
    `padding`, on inputs of spatial size `in_hw`; optional `pool` x `pool` pooling of kind
    `pool_type`; `flatten` returns activity flat (for a dense layer after it). One object per
    layer (it holds the geometry and the arg-max of its latest max-pooling forward)."""

    kind: ClassVar[str] = "conv"

    def __init__(self, c_in: int, c_out: int, in_hw: tuple[int, int], kernel: int = 3,
                 stride: int = 1, padding: int = 1, pool: int = 1, pool_type: str = "max",
                 flatten: bool = False):
        if pool_type not in POOL_KINDS:
            raise ValueError(f"unknown pool type '{pool_type}'; known: {', '.join(POOL_KINDS)}")
        self.c_in, self.c_out, self.in_hw = int(c_in), int(c_out), tuple(in_hw)
        self.kernel, self.stride, self.padding = int(kernel), int(stride), int(padding)
        self.pool, self.pool_type, self.flatten = int(pool), pool_type, bool(flatten)
        self.conv_hw, self.out_hw = conv_shape(self.in_hw, self.kernel, self.stride,
                                               self.padding, self.pool)
        self._argmax: Tensor | None = None
        # per kernel tap (u, v): the convolution's output positions whose receptive field puts
        # that tap on the image, not on the zero padding (the Hebbian term's denominator)
        per_axis = [torch.tensor([sum(0 <= self.stride * i + u - self.padding < size
                                      for i in range(out)) for u in range(self.kernel)],
                                 dtype=torch.float64)
                    for size, out in zip(self.in_hw, self.conv_hw)]
        self.tap_positions = torch.outer(*per_axis)  # (kh, kw)
        self._memo: tuple[Tensor, int, Tensor] | None = None

    def __repr__(self) -> str:
        pool = f", pool={self.pool} {self.pool_type}" if self.pool > 1 else ""
        return (f"Conv2d({self.c_in}->{self.c_out}, {self.in_hw[0]}x{self.in_hw[1]}, "
                f"k={self.kernel}, s={self.stride}, p={self.padding}{pool})")

    # -- shapes -------------------------------------------------------------------------------
    @property
    def fan_in(self) -> int:
        return self.c_in * self.kernel * self.kernel

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of one output sample: (C_out, H', W'), or (C_out H' W',) when flat."""
        shape = (self.c_out, *self.out_hw)
        return (math.prod(shape),) if self.flatten else shape

    @property
    def positions(self) -> int:
        """Output positions per channel, H' W'."""
        return self.out_hw[0] * self.out_hw[1]

    @property
    def values_per_sample(self) -> int:
        """The largest activity tensor per sample (the convolution's output before pooling)."""
        return self.c_out * self.conv_hw[0] * self.conv_hw[1]

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """One replica's W (and feedback kernel B) as a matrix: (C_out, C_in kh kw)."""
        return (self.c_out, self.fan_in)

    def weight_shape(self, k: int) -> tuple[int, int, int]:
        """W and a feedback kernel B: (K, C_out, C_in*kh*kw)."""
        return (k, self.c_out, self.fan_in)

    def units(self, w: Tensor) -> int:
        """The output channels (what `mix` and `broadcast` act on)."""
        return self.c_out

    def input_shape(self, w: Tensor) -> tuple[int, ...]:
        return (self.c_in, *self.in_hw)

    def _kernels(self, w: Tensor) -> Tensor:
        """(K, C_out, C_in kh kw) -> (K*C_out, C_in, kh, kw), channels-last (a small copy)."""
        return w.reshape(-1, self.c_in, self.kernel, self.kernel).contiguous(memory_format=CL)

    def _image(self, x: Tensor, c: int, hw: tuple[int, ...]) -> Tensor:
        return x.reshape(x.shape[0], x.shape[1], c, *hw)

    def _out(self, z: Tensor) -> Tensor:
        return z.reshape(*z.shape[:2], -1) if self.flatten else z

    # -- the layer interface ------------------------------------------------------------------
    def forward(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        """z = pool(conv(x, W) + b): x (K, N, C_in, H, W) (or flat), W (K, C_out, C_in kh kw),
        b (K, C_out) -> (K, N, C_out, H', W') (flat with `flatten`)."""
        k = w.shape[0]
        self._memo = None
        xg = to_groups(self._image(x, self.c_in, self.in_hw))
        a = F.conv2d(xg, self._kernels(w), None if b is None else b.reshape(-1),
                     self.stride, self.padding, 1, k)
        if self.pool > 1:
            if self.pool_type == "max":
                a, self._argmax = F.max_pool2d(a, self.pool, return_indices=True)
            else:
                a = F.avg_pool2d(a, self.pool)
        return self._out(from_groups(a, k))

    def linear(self, x: Tensor, w: Tensor) -> Tensor:
        """conv(x, W) without bias or pooling: x (K, N, C_in, H, W) (or flat) ->
        (K, N, C_out, Hc, Wc), the convolution's own output, never flat."""
        k = w.shape[0]
        xg = to_groups(self._image(x, self.c_in, self.in_hw))
        a = F.conv2d(xg, self._kernels(w), None, self.stride, self.padding, 1, k)
        return from_groups(a, k)

    def _unpool(self, m: Tensor) -> Tensor:
        """P^T m in the grouped layout: (K, N, C_out, H', W') or flat -> (N, K*C_out, Hc, Wc).
        The latest result is kept for the same, unmodified m (a rule's send_back and
        weight_gradient of one credit share it)."""
        memo = self._memo
        if memo is not None and memo[0] is m and memo[1] == m._version:
            return memo[2]
        out = self._unpool_new(m)
        self._memo = (m, m._version, out)
        return out

    def _unpool_new(self, m: Tensor) -> Tensor:
        k, n = m.shape[:2]
        mg = to_groups(self._image(m, self.c_out, self.out_hw))
        if self.pool == 1:
            return mg
        s = (self.pool, self.pool)
        like = torch.empty((n, k * self.c_out, *self.conv_hw), dtype=m.dtype, device=m.device,
                           memory_format=CL)  # only its shape and layout are read
        if self.pool_type == "avg":
            return torch.ops.aten.avg_pool2d_backward(mg, like, s, s, (0, 0), False, True, None)
        if self._argmax is None or self._argmax.shape != mg.shape:
            raise RuntimeError(f"{self!r}: max pooling has no forward of a batch of shape "
                               f"{tuple(m.shape)} to route the credit through")
        return torch.ops.aten.max_pool2d_with_indices_backward(
            mg, like, s, s, (0, 0), (1, 1), False, self._argmax)

    def send_back(self, m: Tensor, feedback: Tensor) -> Tensor:
        """conv^T(P^T m, B): m (K, N, C_out, H', W') (or flat) through B (K, C_out, C_in kh kw)
        -> (K, N, C_in, H, W). With B = W this is dL/dx."""
        k, n = m.shape[:2]
        size = (n, k * self.c_in, *self.in_hw)
        g = torch.ops.aten.convolution_backward(
            self._unpool(m), m.new_empty(1).expand(size), self._kernels(feedback), None,
            (self.stride,) * 2, (self.padding,) * 2, (1, 1), False, (0, 0), k,
            (True, False, False))[0]
        return from_groups(g, k)

    def _correlate(self, y: Tensor, x: Tensor, bias: bool) -> tuple[Tensor, Tensor | None]:
        """(1/N) sum_{n,p} (P^T y) (x) patches(x) -> (K, C_out, C_in kh kw), and (1/N) sum P^T y;
        y of the convolution's output shape (`linear`) is used as it is (no P^T)."""
        k, n = y.shape[:2]
        yg = to_groups(self._image(y, self.c_out, self.conv_hw)) if self._conv_shaped(y) \
            else self._unpool(y)
        shape = (k * self.c_out, self.c_in, self.kernel, self.kernel)
        _, gw, gb = torch.ops.aten.convolution_backward(
            yg, to_groups(self._image(x, self.c_in, self.in_hw)),
            torch.empty(shape, dtype=y.dtype, device=y.device, memory_format=CL),
            [k * self.c_out] if bias else None, (self.stride,) * 2, (self.padding,) * 2,
            (1, 1), False, (0, 0), k, (False, True, bias))
        gw = gw.reshape(k, self.c_out, self.fan_in).mul_(1.0 / n)
        return gw, (gb.view(k, self.c_out).mul_(1.0 / n) if bias else None)

    def weight_gradient(self, m: Tensor, x: Tensor, bias: bool = True
                        ) -> tuple[Tensor, Tensor | None]:
        """(gW, gb): (1/N) sum over samples and positions of P^T m times the input patches,
        (K, C_out, C_in kh kw), and of P^T m, (K, C_out) (None without bias)."""
        return self._correlate(m, x, bias)

    def _conv_shaped(self, y: Tensor) -> bool:
        """Whether y holds the convolution's output (before pooling) rather than the layer's."""
        return self.pool > 1 and y[0, 0].numel() == self.c_out * math.prod(self.conv_hw)

    def feedback_gradient(self, x: Tensor, y: Tensor) -> Tensor:
        """(1/N) sum_n sum_p (P^T y) (x) patches(x) in the kernel's shape, each tap (u, v)
        divided by the positions that carry its terms: x on the input side, y on the output
        side, either the layer's output (sent through P^T: of the Hc Wc convolution positions
        only the H' W' pooled ones carry a term) or the convolution's (`linear`).

        Divisor of tap (u, v): T_uv = the convolution positions where the tap lies on the image
        (not on the zero padding), times H' W' / (Hc Wc) for a pooled y. The Hebbian term of a
        shared feedback kernel is then the mean of its position-wise terms, so the
        weight-estimation rules keep their dense rates and fixed points: weight mirror's
        mean x W x^T for white noise is sigma^2 W on every tap (a sum over positions scales the
        rates by P: measured on digits, weight mirror, activation and information alignment
        diverge at their defaults; one divisor P for all taps shrinks the border taps by the
        padding's share, to 0.56 W at the corners of a 4x4 map; the pooled output in place of
        the convolution's biases B by the pooling, 1.26 |W| measured behind 2x2 max pooling)."""
        share = 1.0 if self._conv_shaped(y) or self.pool == 1 else \
            self.positions / (self.conv_hw[0] * self.conv_hw[1])
        taps = (self.tap_positions * share).to(dtype=y.dtype, device=y.device)
        g = self._correlate(y, x, False)[0]
        return g.view(*g.shape[:2], self.c_in, -1).div_(taps.reshape(-1)).view(g.shape)

    def as_feedback(self, w: Tensor) -> Tensor:
        """W itself: a feedback kernel has the forward kernel's shape (send_back transposes)."""
        return w

    def as_weight(self, feedback: Tensor) -> Tensor:
        return feedback

    def random_feedback(self, w: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
        """B ~ N(0, 1/(C_in kh kw)) of W's shape, replica k from generators[k] (the scale of W's
        own fan-in initialisation, as for dense feedback)."""
        mats = [torch.randn(w.shape[1:], generator=g, dtype=torch.float64) for g in generators]
        b = torch.stack(mats) / math.sqrt(self.fan_in)
        return b.to(dtype=w.dtype, device=w.device)

    def mix(self, x: Tensor, m: Tensor) -> Tensor:
        """x_c <- sum_j M_cj x_j over the channels at every position: x (K, N, C, ...) or flat
        (channel-major), M (K, C, C); same shape out."""
        k, n = x.shape[:2]
        xc = x.reshape(k, n, m.shape[-1], -1)
        return torch.einsum("kij,knjp->knip", m, xc).reshape(x.shape)

    def broadcast(self, e: Tensor, d: Tensor) -> Tensor:
        """(D e) / P per sample at every output position: e (K, N, n), D (K, C_out, n) -> the
        layer's output shape. Each channel is one unit whose activity is its map's mean (global
        average pooling over the P output positions); D e is that unit's credit, sent back
        through the pooling's transpose. (Without the 1/P the channel's weight gradient sums P
        equal terms: measured, direct feedback alignment then diverges on digits.)"""
        k, n = e.shape[:2]
        per_channel = torch.bmm(e, d.transpose(1, 2)).mul_(1.0 / self.positions)
        out = per_channel[..., None, None].expand(k, n, self.c_out, *self.out_hw)
        return out.reshape(k, n, -1) if self.flatten else out


    def unit_activity(self, h: Tensor) -> Tensor:
        """The activity of each output channel, (K, N, C, H', W') or flat -> (K, N, C): the mean
        over positions, what a recording that pools a feature map sees (observers)."""
        return h.reshape(*h.shape[:2], self.c_out, -1).mean(-1)


def conv_layers(input_shape: Sequence[int], conv: Sequence[int],
                kernel: int | Sequence[int] = 3, stride: int | Sequence[int] = 1,
                padding: int | Sequence[int] = 1, pool: int | Sequence[int] = 1,
                pool_type: str = "max") -> list[Conv2d]:
    """The conv layers of a `[model] conv = [...]` stack on images of `input_shape` (C, H, W)
    (`lrsim.layers.conv_geometry`); the last hands its activity on flat, to the dense layers."""
    geometry = conv_geometry(input_shape, conv, kernel, stride, padding, pool)
    return [Conv2d(c, c_out, hw, k, s, p, q, pool_type, flatten=i == len(geometry) - 1)
            for i, (c, c_out, k, s, p, q, hw) in enumerate(geometry)]


def conv_network(input_shape: Sequence[int], conv: Sequence[int], hidden: Sequence[int],
                 n_out: int, *, kernel: int | Sequence[int] = 3, stride: int | Sequence[int] = 1,
                 padding: int | Sequence[int] = 1, pool: int | Sequence[int] = 1,
                 pool_type: str = "max", **network: Any) -> RateNetwork:
    """A `RateNetwork` of conv layers, then dense `hidden` layers, then a linear readout of
    `n_out` units, on flat images of `input_shape`; `network`: RateNetwork's other arguments
    (activation, bias, seeds, init_scale, dtype, device)."""
    convs = conv_layers(input_shape, conv, kernel, stride, padding, pool, pool_type)
    sizes = [math.prod(input_shape), *(c.c_out for c in convs), *hidden, n_out]
    return RateNetwork(sizes, layers=[*convs, *dense_layers(len(hidden) + 1)], **network)
