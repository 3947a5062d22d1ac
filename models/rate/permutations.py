"""Per-replica data orders drawn on the device: a counter-based hash, sorted.

Each replica shuffles the training set every epoch with its own randomness, so its data order
does not depend on which replicas share its batch. On the CPU a numpy generator per replica
does that; with 10,000 replicas on a GPU, 10,000 host permutations per epoch cost more than the
epoch's training steps. Here the order is computed where the data lives, in one pass:

    key[k, i] = h(h(seed_k * phi + epoch) + i),   order[k] = argsort(key[k])

with h the splitmix64 finaliser (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
generators", OOPSLA) and phi = 2^64 / golden ratio. 64-bit integer arithmetic wraps; a key
depends only on (seed_k, epoch, i), so replica k's order is the same whatever its neighbours
and on every device (ties among 64-bit keys, which would make argsort's choice matter, are
broken stably).
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _signed(c: int) -> int:
    """A 64-bit unsigned constant as the int64 with the same bits."""
    c &= _MASK64
    return c - (1 << 64) if c >= 1 << 63 else c


_PHI = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def _shr(x: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic on negative values)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def splitmix64(x: Tensor) -> Tensor:
    """The splitmix64 finaliser on int64 tensors (bits as uint64; multiplication wraps)."""
    x = x ^ _shr(x, 30)
    x = x * _M1
    x = x ^ _shr(x, 27)
    x = x * _M2
    return x ^ _shr(x, 31)


def hashed_permutations(seeds: Tensor, epoch: int, n: int) -> Tensor:
    """(K, n) int64: row k a permutation of range(n) determined by (seeds[k], epoch) alone."""
    seeds = seeds.to(torch.int64)
    stream = splitmix64(seeds * _PHI + epoch)
    keys = splitmix64(stream[:, None] + torch.arange(n, device=seeds.device))
    return torch.argsort(keys, dim=1, stable=True)
