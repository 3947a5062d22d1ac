"""Batched 2-D convolution for K replicas at once: grouped convolution, the replica as group.

Layer l of replica k computes, per sample n, output channel o and position p,

    z[k, n, o, p] = b[k, o] + sum_{c, u} W[k, o, c, u] x[k, n, c, s p + u - pad]

(kernel offsets u, stride s, zero padding pad). The K networks run as one convolution with
`groups = K`: the input is laid out (N, K*C_in, H, W), the weights (K*C_out, C_in, kh, kw), so
group k sees only replica k's channels and kernels and the K nets stay independent (replica k in
a batch computes exactly what it computes alone). No Python loop runs over replicas.

The three operations a learning rule needs, for any credit m = dL/dz (K, N, C_out, H', W'):

    forward         z = conv(x, W) + b
    send_back       g = conv^T(m, B): the credit carried back to the input through a feedback
                    kernel B of W's shape: g[k,n,c,q] = sum_{o,u} B[k,o,c,u] m[k,n,o,(q-u+pad)/s]
                    (B = W: backpropagation, the input gradient; B fixed random: feedback
                    alignment (Lillicrap et al. 2016, Nature Communications))
    weight_gradient gW[k,o,c,u] = (1/N) sum_{n,p} m[k,n,o,p] x[k,n,c,s p+u-pad],
                    gb[k,o] = (1/N) sum_{n,p} m[k,n,o,p]  (the batch mean, like the dense
                    three-factor term m^T x / N)

Pooling (max or average over non-overlapping `size` x `size` windows, floor mode) and flatten
are fixed maps with their own send-back (the transposed map: a max window routes the credit to
its arg-max, an average window spreads it as 1/size^2).

Layout: activity is (K, N, C, H, W), replica first like the dense substrate's (K, N, n). Tensors
this module returns are views of (N, K, C, H, W) storage, the grouped-convolution layout, so
chained layers pass activity on without copies; elementwise operations (f(z), f'(z) * g) keep
that layout. Weights and feedback kernels are (K, C_out, C_in, kh, kw), contiguous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

POOL_KINDS = ("max", "avg")


def to_groups(x: Tensor) -> Tensor:
    """(K, N, C, H, W) -> (N, K*C, H, W), free when x is a view of (N, K, C, H, W) storage."""
    k, n, c, h, w = x.shape
    return x.transpose(0, 1).reshape(n, k * c, h, w)


def from_groups(y: Tensor, k: int) -> Tensor:
    """(N, K*C, H, W) -> the (K, N, C, H, W) view (no copy)."""
    n, kc, h, w = y.shape
    return y.view(n, k, kc // k, h, w).transpose(0, 1)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis: floor((size + 2 pad - kernel) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class Conv2d:
    """One convolutional layer of K replicas: `c_in` -> `c_out` channels, square `kernel`,
    `stride`, zero `padding`, on inputs of spatial size `in_hw`."""

    c_in: int
    c_out: int
    in_hw: tuple[int, int]
    kernel: int = 3
    stride: int = 1
    padding: int = 1

    def __post_init__(self) -> None:
        h, w = self.out_hw
        if h < 1 or w < 1:
            raise ValueError(f"a {self.kernel}x{self.kernel} convolution with stride "
                             f"{self.stride}, padding {self.padding} does not fit an input of "
                             f"{self.in_hw[0]}x{self.in_hw[1]}")

    @property
    def out_hw(self) -> tuple[int, int]:
        return tuple(conv_out(s, self.kernel, self.stride, self.padding)
                     for s in self.in_hw)  # type: ignore[return-value]

    @property
    def fan_in(self) -> int:
        return self.c_in * self.kernel * self.kernel

    def weight_shape(self, k: int) -> tuple[int, ...]:
        """W (and a feedback kernel B): (K, C_out, C_in, kh, kw)."""
        return (k, self.c_out, self.c_in, self.kernel, self.kernel)

    def init_weights(self, generators: list[torch.Generator], scale: Tensor | float = 1.0,
                     dtype: torch.dtype = torch.float32,
                     device: str | torch.device = "cpu") -> Tensor:
        """W ~ N(0, scale_k^2 / fan_in) per replica from its own generator (He et al. 2015 with
        scale = sqrt 2 for relu), fan_in = C_in kh kw."""
        k = len(generators)
        w = torch.stack([torch.randn(self.weight_shape(1)[1:], generator=g, dtype=torch.float64)
                         for g in generators])
        s = torch.as_tensor(scale, dtype=torch.float64).expand(k)
        w = w * (s / math.sqrt(self.fan_in)).view(-1, 1, 1, 1, 1)
        return w.to(dtype=dtype, device=device)

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        """z = conv(x, W) + b: x (K, N, C_in, H, W), W (K, C_out, C_in, kh, kw), b (K, C_out)
        -> z (K, N, C_out, H', W')."""
        k = w.shape[0]
        z = F.conv2d(to_groups(x), w.reshape(-1, *w.shape[2:]),
                     None if b is None else b.reshape(-1), self.stride, self.padding, 1, k)
        return from_groups(z, k)

    def send_back(self, m: Tensor, feedback: Tensor) -> Tensor:
        """conv^T(m, B): the credit m (K, N, C_out, H', W') carried to the layer's input through
        the feedback kernel B (K, C_out, C_in, kh, kw) -> (K, N, C_in, H, W). With B = W this is
        dL/dx, the backpropagated gradient."""
        k, n = m.shape[:2]
        size = (n, k * self.c_in, *self.in_hw)
        g = torch.ops.aten.convolution_backward(
            to_groups(m), m.new_empty(1).expand(size), feedback.reshape(-1, *feedback.shape[2:]),
            None, (self.stride,) * 2, (self.padding,) * 2, (1, 1), False, (0, 0), k,
            (True, False, False))[0]
        return from_groups(g, k)

    def weight_gradient(self, m: Tensor, x: Tensor, bias: bool = True
                        ) -> tuple[Tensor, Tensor | None]:
        """(gW, gb): gW = (1/N) sum_{n, positions} m (x) patches(x), (K, C_out, C_in, kh, kw);
        gb = (1/N) sum_{n, positions} m, (K, C_out) (None without bias)."""
        k, n = m.shape[:2]
        mg = to_groups(m)
        _, gw, gb = torch.ops.aten.convolution_backward(
            mg, to_groups(x), mg.new_empty(1).expand(k * self.c_out, self.c_in, self.kernel,
                                                     self.kernel),
            [k * self.c_out] if bias else None, (self.stride,) * 2, (self.padding,) * 2,
            (1, 1), False, (0, 0), k, (False, True, bias))
        gw = gw.view(self.weight_shape(k)) * (1.0 / n)
        return gw, (gb.view(k, self.c_out) * (1.0 / n) if bias else None)


@dataclass(frozen=True)
class Pool2d:
    """Non-overlapping `size` x `size` pooling (stride = size, floor mode), max or average."""

    size: int = 2
    kind: str = "max"

    def __post_init__(self) -> None:
        if self.kind not in POOL_KINDS:
            raise ValueError(f"unknown pool kind '{self.kind}'; known: {', '.join(POOL_KINDS)}")
        if self.size < 1:
            raise ValueError("pool size must be >= 1")

    def out_hw(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        return tuple(s // self.size for s in in_hw)  # type: ignore[return-value]

    def forward(self, a: Tensor) -> tuple[Tensor, Tensor | None]:
        """(pooled (K, N, C, H/size, W/size), arg-max indices for max pooling, else None)."""
        k = a.shape[0]
        if self.size == 1:
            return a, None
        if self.kind == "max":
            p, idx = F.max_pool2d(to_groups(a), self.size, return_indices=True)
            return from_groups(p, k), idx
        return from_groups(F.avg_pool2d(to_groups(a), self.size), k), None

    def send_back(self, g: Tensor, a: Tensor, indices: Tensor | None = None) -> Tensor:
        """The transposed map P^T g: credit g at the pooled output (K, N, C, H', W') back to the
        pooling's input a (K, N, C, H, W): max routes each window's credit to its arg-max (the
        indices of `forward`, recomputed from a when not given), avg spreads it evenly."""
        k = a.shape[0]
        if self.size == 1:
            return g
        ag, gg = to_groups(a), to_groups(g)
        s = (self.size, self.size)
        if self.kind == "max":
            if indices is None:
                _, indices = F.max_pool2d(ag, self.size, return_indices=True)
            out = torch.ops.aten.max_pool2d_with_indices_backward(
                gg, ag, s, s, (0, 0), (1, 1), False, indices)
        else:
            out = torch.ops.aten.avg_pool2d_backward(gg, ag, s, s, (0, 0), False, True, None)
        return from_groups(out, k)


def flatten(x: Tensor) -> Tensor:
    """(K, N, C, H, W) -> (K, N, C*H*W), channel-major like a task's flat image inputs."""
    return x.reshape(*x.shape[:2], -1)


def unflatten(g: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """The send-back of `flatten`: (K, N, C*H*W) -> (K, N, C, H, W)."""
    return g.reshape(*g.shape[:2], *shape)


def channel_activity(h: Tensor) -> Tensor:
    """Per-channel activity of a convolutional layer, (K, N, C, H, W) -> (K, N, C): the mean over
    positions, what a recording that pools a feature map's units would see."""
    return h.mean(dim=(3, 4))
