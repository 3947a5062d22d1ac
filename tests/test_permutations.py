"""Data orders drawn on the device (`lrsim.models.rate.permutations`), checked against a
pure-Python splitmix64 and against the statistics of uniform random permutations."""

import numpy as np
import pytest
import torch
from scipy import stats

from lrsim.models.rate.permutations import hashed_permutations, splitmix64
from lrsim.models.rate.train import BatchSampler

M64 = (1 << 64) - 1


def splitmix64_reference(x: int) -> int:
    """splitmix64's finaliser on Python integers (unsigned 64-bit, explicit wrap)."""
    x &= M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def as_unsigned(v: int) -> int:
    return v & M64


def test_splitmix64_matches_unsigned_reference():
    values = [0, 1, 2, 12345, 2**62 + 7, -1, -(2**63), 2**63 - 1, -987654321]
    got = splitmix64(torch.tensor(values, dtype=torch.int64)).tolist()
    assert [as_unsigned(g) for g in got] == [splitmix64_reference(v) for v in values]
    # the known first output of a splitmix64 generator seeded with 0 (state += phi, then mix)
    assert as_unsigned(splitmix64(torch.tensor([0x9E3779B97F4A7C15 - (1 << 64)])).item()) \
        == 0xE220A8397B1DCDAF


def test_rows_are_permutations_independent_of_neighbours():
    seeds = torch.tensor([3, 5, 11, 5])
    p = hashed_permutations(seeds, epoch=0, n=50)
    assert p.shape == (4, 50)
    for row in p:
        assert sorted(row.tolist()) == list(range(50))
    alone = hashed_permutations(torch.tensor([5]), epoch=0, n=50)
    assert torch.equal(p[1], alone[0]) and torch.equal(p[3], alone[0])
    assert not torch.equal(p[0], p[1])
    assert not torch.equal(hashed_permutations(seeds, 1, 50)[1], p[1])  # a new order per epoch
    assert torch.equal(hashed_permutations(seeds, 0, 50), p)  # deterministic


def test_orders_are_uniform():
    n, k = 6, 6000
    p = hashed_permutations(torch.arange(k), epoch=2, n=n).numpy()
    pos0 = np.argmax(p == 0, axis=1)  # where item 0 lands: uniform over n places
    assert stats.chisquare(np.bincount(pos0, minlength=n)).pvalue > 1e-3
    # all n! = 720 orders equally likely (k / 720 ~ 8 per order)
    codes = (p * n ** np.arange(n)).sum(1)
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 720
    assert stats.chisquare(counts).pvalue > 1e-3
    # successive epochs of one replica are independent: P(item 0 before item 1 twice) = 1/4
    q = hashed_permutations(torch.arange(k), epoch=3, n=n).numpy()
    before = (np.argmax(p == 0, 1) < np.argmax(p == 1, 1)) & \
             (np.argmax(q == 0, 1) < np.argmax(q == 1, 1))
    assert stats.binomtest(int(before.sum()), k, 0.25).pvalue > 1e-3


@pytest.mark.parametrize("on_device", [False, True])
def test_sampler_visits_every_example_once_per_epoch(on_device):
    s = BatchSampler(40, 8, [0, 7], torch.device("cpu"), on_device=on_device)
    for _ in range(2):
        seen = torch.cat([s.next() for _ in range(5)], dim=1)
        for row in seen:
            assert sorted(row.tolist()) == list(range(40))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_orders_are_the_same_on_the_gpu():
    seeds = torch.tensor([0, 3, 2**40 + 1, 99])
    cpu = hashed_permutations(seeds, 4, 300)
    gpu = hashed_permutations(seeds.cuda(), 4, 300)
    assert torch.equal(cpu, gpu.cpu())
    s = BatchSampler(300, 32, seeds.tolist(), torch.device("cuda"))
    assert s.on_device
    assert torch.equal(s.next().cpu(), hashed_permutations(seeds, 0, 300)[:, :32])
