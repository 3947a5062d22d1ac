"""Freed host memory kept for reuse: with the trainer's malloc thresholds a block freed and
allocated again is not faulted in anew; with glibc's defaults (`LRSIM_KEEP_FREED_MEMORY=0`)
it is. Counted by the kernel (minor page faults, getrusage) in a fresh process each."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux"
                                or platform.libc_ver()[0] != "glibc",
                                reason="malloc thresholds are glibc's")

CHILD = """
import json, resource
import torch
from lrsim.models.rate.host_memory import keep_freed_memory
applied = keep_freed_memory()
# 40 MiB: above the largest mmap threshold glibc's default adapts to (32 MiB)
torch.empty(40 << 20, dtype=torch.uint8).fill_(1)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(40 << 20, dtype=torch.uint8).fill_(1)  # allocated, touched, freed
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _run(setting: str) -> dict:
    env = dict(os.environ, LRSIM_KEEP_FREED_MEMORY=setting, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    pages = 10 * (40 << 20) // 4096  # every page of every block, were each one new memory
    kept, default = _run("1"), _run("0")
    assert kept["applied"] and not default["applied"]
    assert default["faults"] > pages // 2  # glibc's default: new pages each time
    assert kept["faults"] < pages // 5  # kept: the same block again (at most once anew)


def test_the_trainer_keeps_freed_memory_on_cpu(monkeypatch):
    from lrsim.config import parse
    from lrsim.models.rate import host_memory
    from lrsim.models.rate.train import train

    monkeypatch.delenv("LRSIM_KEEP_FREED_MEMORY", raising=False)
    monkeypatch.setattr(host_memory, "_applied", None)  # as in a fresh process
    train(parse({"task": {"name": "digits"}, "model": {"hidden": [8]},
                 "rule": {"name": "backprop"}, "train": {"steps": 2},
                 "observe": {"enabled": False}}))
    assert host_memory._applied is True
