"""Replica chunking: the rate trainer's step run on C replicas at a time, for cache residency.

On a CPU the step of K small networks is memory-bound once a layer's weights outgrow the cache:
at width 128 a layer is K x 128 x 128 x 4 B = 16 MB for K = 256, far above a 2 MB L2, so the
forward pass, the credit pass and the update each stream every weight from memory again. Running
the whole step (minibatch gather, forward, loss, credit, plasticity, optimizer, update, feedback)
on a chunk of C replicas before moving to the next keeps the chunk's weights (C x the weight
bytes of one replica, a few MiB) in cache between those phases. Replicas are independent, so a
chunked step gives every replica the trajectory of the whole-batch step (bitwise under sgd and
momentum here; adam's fused kernel rounds some elements of a smaller tensor differently, ~1e-16).

Each chunk costs a fixed ~0.15 ms of Python and dispatch per step, so chunking pays only where
the whole batch is large. Measured (backprop + sgd, batch 32, 64 -> w -> w -> 10, one thread,
whole-batch time / chunked time, 15 interleaved rounds): 1.07-1.18x (up to 1.5x, below) where
the whole batch's activity of one forward pass (K x batch x units x 4 B) was 8.5-9.7 MB (w 32
K 1024, w 64 K 512, w 128 K 256, w 256 K 128, w 512 K 64), but 0.93-1.01x where it was 2.1-6.8
MB (w 64 K 256 and 384, w 128 K 128 and 192, w 256 K 64, w 512 K 16 and 32): what chunking
saves grows with the activity streamed per step, not with the weights alone. Part of the gain
is the allocator's: the whole batch's large activity tensors are returned to the OS and
page-faulted back every step (thousands of faults per step at w 128 K 256), a chunk's small ones
are reused; without those faults chunking still gives 1.14-1.19x (BENCHMARKS.md).

- `chunk_size`: the chunk the trainer uses for `chunk = "auto"`: max(8, budget // the weight
  bytes of one replica), on CPU and dense networks only, and only where K >= 2 chunks and the
  whole batch's activity of one forward pass (K x batch x units, in bytes) is >= 7.5 MiB (on a
  GPU the step is launch-bound, not memory-bound; below 8 replicas a chunk's overhead outweighs
  what the cache saves).
- `ChunkedStep`: one `LearningStep` per chunk over views (slices along the replica dim 0) of the
  parameters and of the full step's rule and optimizer state, so in-place updates write into
  the full tensors; `step(run)` runs each chunk's step in turn. State a rule or optimizer keeps
  per replica is per chunk; `rule_state` / `opt_state` are the chunks' states joined (`join`):
  the full tensors themselves where every chunk still updates its view in place, otherwise the
  chunks' tensors concatenated along the replica dim (the trainer joins at record steps only).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from lrsim.models.rate.network import RateNetwork
from lrsim.models.step import LearningStep
from lrsim.rules.base import State

BUDGET = 4 * 2**20  # bytes of weights per chunk (auto)
MIN_CHUNK = 8  # smaller chunks lose to the per-chunk Python overhead (measured)
MIN_ACTIVITY = 15 * 2**19  # 7.5 MiB: the whole batch's activity below which chunks lose


def chunk_size(weights: Sequence[Tensor], dense: bool, device: torch.device | str,
               budget: int = BUDGET, *, batch: int) -> int | None:
    """Replicas per chunk for weights (K, out, in) per layer and minibatches of `batch`:
    max(MIN_CHUNK, budget // the weight bytes of one replica over all layers); None (no
    chunking) unless the device is a CPU, the network dense, K >= 2 chunks and the activity of
    one forward pass, K x batch x (units of all layers) values, at least MIN_ACTIVITY bytes."""
    if torch.device(device).type != "cpu" or not dense or not weights:
        return None
    k = weights[0].shape[0]
    per_replica = sum(w[0].numel() * w.element_size() for w in weights)
    size = max(MIN_CHUNK, budget // max(1, per_replica))
    activity = k * batch * sum(w.shape[1] for w in weights) * weights[0].element_size()
    return size if k >= 2 * size and activity >= MIN_ACTIVITY else None


def bounds(k: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of the chunks of `size` replicas (the last may be smaller)."""
    if size < 1:
        raise ValueError(f"a chunk holds at least one replica, not {size}")
    return [(a, min(a + size, k)) for a in range(0, k, size)]


def replica_view(x: Any, a: int, b: int) -> Any:
    """Replicas a:b of a per-replica object: a tensor's slice along dim 0 (a view), or
    `x.replicas(a, b)` (a network, a noise source)."""
    return x[a:b] if isinstance(x, Tensor) else x.replicas(a, b)


def split(state: State, a: int, b: int, k: int) -> State:
    """Replicas a:b of a state pytree: per-replica tensors (dim 0 of size k) as views, other
    tensors (e.g. adam's step count) as copies of their own, other leaves as they are."""
    def part(x: Any) -> Any:
        if not isinstance(x, Tensor):
            return x
        return x[a:b] if x.dim() >= 1 and x.shape[0] == k else x.clone()
    return tree_map(part, state)


def join(states: Sequence[State], spans: Sequence[tuple[int, int]],
         whole: State | None = None) -> State:
    """The chunks' states as one state over all replicas: per-replica tensors concatenated
    along dim 0 (the tensor of `whole` itself where every chunk's leaf is still its view),
    other leaves from the first chunk (equal in every chunk).

    A leaf is per replica where `whole` (the state the chunks were split from, same structure)
    has it of size K on dim 0, or, without such a `whole`, where every chunk's leaf has its
    chunk's size on dim 0."""
    flat = [tree_flatten(s) for s in states]
    spec = flat[0][1]
    if any(s != spec for _, s in flat[1:]):
        raise ValueError("the chunks' states differ in structure")
    k = spans[-1][1]
    ref: list[Any] | None = None
    if whole is not None:
        leaves_w, spec_w = tree_flatten(whole)
        ref = leaves_w if spec_w == spec else None
    out = []
    for i, parts in enumerate(zip(*(leaves for leaves, _ in flat))):
        full = ref[i] if ref is not None else None
        if ref is not None:
            per_replica = isinstance(full, Tensor) and full.dim() >= 1 and full.shape[0] == k \
                and all(isinstance(p, Tensor) for p in parts)
        else:
            per_replica = all(isinstance(p, Tensor) and p.dim() >= 1 and p.shape[0] == b - a
                              for p, (a, b) in zip(parts, spans))
        if not per_replica:
            out.append(parts[0])
        elif full is not None and all(_is_view(p, full, a, b) for p, (a, b) in zip(parts, spans)):
            out.append(full)
        else:
            out.append(torch.cat(parts))
    return tree_unflatten(out, spec)


def _is_view(part: Tensor, full: Tensor, a: int, b: int) -> bool:
    """part is full[a:b] (the same memory, shape and strides)."""
    v = full[a:b]
    return part.data_ptr() == v.data_ptr() and part.shape == v.shape \
        and part.stride() == v.stride() and part.dtype == v.dtype


def learner_view(learner: LearningStep, a: int, b: int, k: int) -> LearningStep:
    """The learning step of replicas a:b of `learner` (K = k): the same rule and optimizer,
    its states and per-replica decay split (`split`)."""
    part = copy.copy(learner)
    part.rule_state = split(learner.rule_state, a, b, k)
    part.opt_state = split(learner.opt_state, a, b, k)
    d = learner.decay
    if isinstance(d, Tensor) and d.dim() >= 1 and d.shape[0] == k:
        part.decay = d[a:b]
    return part


@dataclass
class Chunk:
    """Replicas start:stop: their network (views of the parameters), their learning step, and
    views of other per-replica objects attached by name (`ChunkedStep.attach`)."""

    start: int
    stop: int
    net: RateNetwork
    learner: LearningStep
    views: dict[str, Any] = field(default_factory=dict)


class ChunkedStep:
    """The learning step of K replicas run as chunks of `size` (see the module docstring).

    net: the K networks; learner: their whole-batch `LearningStep` (its states, initialised for
    all K replicas, are split into the chunks: the same values as unchunked)."""

    def __init__(self, net: RateNetwork, learner: LearningStep, size: int):
        k = net.K
        self.size, self.K = size, k
        self.whole = learner
        self.rule, self.optimizer, self.layers = learner.rule, learner.optimizer, learner.layers
        self.has_bias = learner.has_bias
        self.spans = bounds(k, size)
        self.chunks = [Chunk(a, b, net.replicas(a, b), learner_view(learner, a, b, k))
                       for a, b in self.spans]

    def attach(self, name: str, x: Any) -> None:
        """Give every chunk its view of the per-replica `x` (a tensor or an object with
        `replicas(a, b)`) as `chunk.views[name]`."""
        for c in self.chunks:
            c.views[name] = replica_view(x, c.start, c.stop)

    def step(self, run: Callable[[Chunk], None]) -> None:
        """One step: `run(chunk)` (the chunk's forward and `chunk.learner.step`) for each chunk
        in turn."""
        for c in self.chunks:
            run(c)

    @property
    def rule_state(self) -> State:
        """The rule's state over all K replicas (`join`)."""
        return join([c.learner.rule_state for c in self.chunks], self.spans,
                    self.whole.rule_state)

    @property
    def opt_state(self) -> State:
        """The optimizer's state over all K replicas (`join`)."""
        return join([c.learner.opt_state for c in self.chunks], self.spans,
                    self.whole.opt_state)
