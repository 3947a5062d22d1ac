"""Layer kinds: what a learning rule may do with a layer, written once per kind.

A rule states its credit and plasticity against this interface, never against a layer's
tensors directly, so N rules and M layer kinds are N + M pieces of code (docs/architecture.md,
"Layer interface"). A layer object holds no parameters: the network passes W_l and b_l in.
Every tensor has a leading replica axis K; activity also a batch axis N.

    forward(x, w, b=None)      z = W x + b, per sample
    send_back(m, feedback)     the credit m (on the layer's output) carried to its input through
                               a feedback tensor B (feedback = as_feedback(W): backprop's W^T m)
    weight_gradient(m, x)      (gW, gb) = (mean_n m x^T, mean_n m): the three-factor term
    feedback_gradient(x, y)    mean_n x y^T in the feedback tensor's shape: the Hebbian term of
                               a feedback synapse that sees the input x and output y
    as_feedback(w)             W as a feedback tensor (weight transport); as_weight the inverse
    random_feedback(w, gens)   fixed random feedback, one draw per replica from its generator
    mix(x, m)                  the layer's output units mixed by a square matrix (K, n, n)
    broadcast(e, d)            a vector signal e (K, N, n) spread over the output units by d
    units(w), input_shape(w)   output units (channels) and the shape of one input sample

`Dense` is the only kind so far (K x N x n activity, W (K, n_out, n_in), feedback B of W^T's
shape (K, n_in, n_out)). A convolutional kind implements the same methods with kernels (its
feedback convention is the kernel's own shape; `as_feedback` hides the difference).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Layer(Protocol):
    """The operations a learning rule may apply to a layer (see the module docstring)."""

    kind: ClassVar[str]

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor: ...
    def send_back(self, m: Tensor, feedback: Tensor) -> Tensor: ...
    def weight_gradient(self, m: Tensor, x: Tensor, bias: bool = True
                        ) -> tuple[Tensor, Tensor | None]: ...
    def feedback_gradient(self, x: Tensor, y: Tensor) -> Tensor: ...
    def as_feedback(self, w: Tensor) -> Tensor: ...
    def as_weight(self, feedback: Tensor) -> Tensor: ...
    def random_feedback(self, w: Tensor, generators: Sequence[torch.Generator]) -> Tensor: ...
    def mix(self, x: Tensor, m: Tensor) -> Tensor: ...
    def broadcast(self, e: Tensor, d: Tensor) -> Tensor: ...
    def units(self, w: Tensor) -> int: ...
    def input_shape(self, w: Tensor) -> tuple[int, ...]: ...


def batch_mean_outer(a: Tensor, b: Tensor) -> Tensor:
    """sum_n a[k,n,i] b[k,n,j] / N -> (K, i, j), the batch mean of the outer product a b^T
    (1/N applied to the first operand, typically the smaller one)."""
    return torch.bmm(a.transpose(1, 2) * (1.0 / a.shape[1]), b)


def random_matrices(shape_like: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """Fixed random matrices (K, a, b) shaped like `shape_like`, replica k from its own
    generator, entries N(0, 1/a)."""
    _, a, b = shape_like.shape
    mats = [torch.randn(a, b, generator=g, dtype=torch.float64) for g in generators]
    return torch.stack(mats).to(dtype=shape_like.dtype, device=shape_like.device) / a**0.5


class Dense:
    """A fully connected layer: z = W x + b with x (K, N, n_in), W (K, n_out, n_in), b (K, n_out);
    feedback tensors have W^T's shape (K, n_in, n_out)."""

    kind: ClassVar[str] = "dense"

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        """z = x W^T (+ b), (K, N, n_out); with b as one fused baddbmm."""
        if b is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def send_back(self, m: Tensor, feedback: Tensor) -> Tensor:
        """B m per sample: m (K, N, n_out), B (K, n_in, n_out) -> (K, N, n_in)."""
        return torch.bmm(m, feedback.transpose(1, 2))

    def weight_gradient(self, m: Tensor, x: Tensor, bias: bool = True
                        ) -> tuple[Tensor, Tensor | None]:
        """(mean_n m x^T, mean_n m): (K, n_out, n_in) and (K, n_out) (None without bias)."""
        return batch_mean_outer(m, x), (m.mean(1) if bias else None)

    def feedback_gradient(self, x: Tensor, y: Tensor) -> Tensor:
        """mean_n x y^T, (K, n_in, n_out): x on the layer's input side, y on its output side."""
        return batch_mean_outer(x, y)

    def as_feedback(self, w: Tensor) -> Tensor:
        """W^T, (K, n_in, n_out) (a view)."""
        return w.transpose(1, 2)

    def as_weight(self, feedback: Tensor) -> Tensor:
        """B^T, (K, n_out, n_in) (a view): a feedback tensor used in the forward direction."""
        return feedback.transpose(1, 2)

    def random_feedback(self, w: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
        """B ~ N(0, 1/n_in) of W^T's shape, replica k from generators[k] (the scale of W's own
        fan-in initialisation)."""
        return random_matrices(w.transpose(1, 2), generators)

    def mix(self, x: Tensor, m: Tensor) -> Tensor:
        """x_i <- sum_j m_ij x_j over the units of x (K, N, n), m (K, n, n)."""
        return torch.bmm(x, m.transpose(1, 2))

    def broadcast(self, e: Tensor, d: Tensor) -> Tensor:
        """d e per sample: e (K, N, n), d (K, n_out, n) -> (K, N, n_out)."""
        return torch.bmm(e, d.transpose(1, 2))

    def units(self, w: Tensor) -> int:
        return w.shape[1]

    def input_shape(self, w: Tensor) -> tuple[int, ...]:
        return (w.shape[2],)


DENSE = Dense()


def dense_layers(n: int) -> list[Layer]:
    """n dense layers (the default where a caller names no layer kinds)."""
    return [DENSE] * n
