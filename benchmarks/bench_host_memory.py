"""Freed host memory kept for reuse (`lrsim.models.rate.host_memory`) vs glibc's defaults, in
the CPU trainer's real step.

malloc's thresholds are set once per process and glibc's default (a dynamic mmap threshold)
cannot be restored once changed, so the two variants run in child processes, interleaved:
each round starts one child with the setting (`kept`) and one with
`LRSIM_KEEP_FREED_MEMORY=0` (`default`), in alternating order. A child trains K networks
64 -> w -> w -> 10 (relu, cross-entropy, batch 32, digits, backprop) for `--steps` steps; an
observer reads the clock after the first 20 steps and at the end, so only the trainer's steps
are timed (its divergence check every 25 steps included), not set-up.

Clock: `time.thread_time` in the child (CPU time of its one thread, user and system: the time
the kernel spends mapping and zeroing pages on a fault is counted), one torch thread. Also
reported: minor page faults per step (`getrusage`). Figures: medians over rounds and the
per-round ratio default / kept.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_host_memory.py \
        [--points 512x16 128x256 32x256] [--rounds 5] [--steps 220] [--optimizer sgd]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WARM = 20  # steps before the clock starts (first allocations, caches)


class Clock:
    """An observer of the trainer that reads the clock and the fault count at two steps."""

    def __init__(self, first: int):
        self.first, self.marks = first, []

    def steps(self, total: int) -> list[int]:
        return [self.first, total]

    def start(self, ctx: object) -> None:
        pass

    def record(self, step: int, ctx: object) -> None:
        import resource

        self.marks.append((step, time.thread_time(),
                           resource.getrusage(resource.RUSAGE_SELF).ru_minflt))


def child(width: int, k: int, steps: int, optimizer: str) -> dict[str, float]:
    import torch

    from lrsim.config import parse
    from lrsim.models.rate.train import train

    torch.set_num_threads(1)
    exp = parse({"name": "host-memory", "seed": 1, "device": "cpu", "task": {"name": "digits"},
                 "model": {"hidden": [width, width], "activation": "relu"},
                 "rule": {"name": "backprop"},
                 "train": {"steps": steps, "replicas": k, "lr": 0.01, "batch_size": 32,
                           "optimizer": optimizer},
                 "observe": {"enabled": False}})
    clock = Clock(WARM)
    train(exp, observers=[clock])
    (s0, t0, f0), (s1, t1, f1) = clock.marks
    return {"s_per_step": (t1 - t0) / (s1 - s0), "faults_per_step": (f1 - f0) / (s1 - s0)}


def spawn(width: int, k: int, steps: int, optimizer: str, kept: bool) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", LRSIM_KEEP_FREED_MEMORY="1" if kept else "0")
    out = subprocess.run([sys.executable, __file__, "--child", str(width), str(k), str(steps),
                          optimizer], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", nargs="+", default=["512x16", "128x256", "32x256"],
                    help="width x K")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=220)
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        w, k, steps, opt = args.child
        print(json.dumps(child(int(w), int(k), int(steps), opt)))
        return 0
    print(f"# {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"clock: thread CPU time in the child; optimizer {args.optimizer}")
    print("| width | K | default s/step | kept s/step | default / kept (median, range) | "
          "faults/step default | faults/step kept |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for point in args.points:
        width, k = map(int, point.split("x"))
        rows: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for r in range(args.rounds):
            for kept in ((True, False) if r % 2 == 0 else (False, True)):
                rows[kept].append(spawn(width, k, args.steps, args.optimizer, kept))
        ratios = [d["s_per_step"] / e["s_per_step"] for d, e in zip(rows[False], rows[True])]

        def med(kept: bool, key: str, rows: dict = rows) -> float:
            return statistics.median(x[key] for x in rows[kept])

        print(f"| {width} | {k} | {med(False, 's_per_step') * 1e3:.2f} ms | "
              f"{med(True, 's_per_step') * 1e3:.2f} ms | {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f}) | {med(False, 'faults_per_step'):.0f} | "
              f"{med(True, 'faults_per_step'):.0f} |", flush=True)
    print(f"# load at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
