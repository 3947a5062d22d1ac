"""Observer overhead: the demo experiment trained with observers off and on, side by side.

Runs `lrsim.experiment.run_experiment` on experiments/demo.toml (or --experiment FILE) in
alternation, observe=False then observe=True (default [observe] section: 21 points, all
observables and statistics, units [0], noise [0.0]), `--rounds` times, with one torch thread,
and prints the median times and the median of the per-round ratios on/off, by wall clock
and by the process's CPU time (steadier on a shared machine). Alternating rounds
keep the comparison fair on a shared machine: both variants meet the same load.

    .venv/bin/python benchmarks/bench_observers.py [--rounds 5] [--experiment FILE]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from lrsim.config import load
from lrsim.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]


def timed(exp, observe: bool) -> tuple[float, float]:  # noqa: ANN001
    """(wall seconds, CPU seconds of this process) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    run_experiment(exp, observe=observe)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "demo.toml"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    exp = load(args.experiment)
    timed(exp, False)  # warm-up: data set, kernels
    timed(exp, True)  # warm-up: compiled statistics kernel
    off, on, ratio, cpu_ratio = [], [], [], []
    for _ in range(args.rounds):
        a, a_cpu = timed(exp, False)
        b, b_cpu = timed(exp, True)
        off.append(a)
        on.append(b)
        ratio.append(b / a)
        cpu_ratio.append(b_cpu / a_cpu)
    o = exp.observe
    print(f"experiment {Path(args.experiment).name}: {exp.train.replicas} replicas x "
          f"{exp.train.steps} steps, hidden {exp.model.hidden}, rule {exp.rule.name}; "
          f"observe: {o.points} points ({o.schedule}), {len(o.observables)} observables, "
          f"units {o.units}, noise {o.noise}, probe {o.probe_size}")
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{args.threads}, device {exp.device}; {args.rounds} alternating rounds")
    print(f"observers off: median {statistics.median(off):.3f} s  (all: "
          f"{', '.join(f'{t:.2f}' for t in off)})")
    print(f"observers on:  median {statistics.median(on):.3f} s  (all: "
          f"{', '.join(f'{t:.2f}' for t in on)})")
    print(f"overhead: median ratio on/off {statistics.median(ratio):.3f} "
          f"(+{100 * (statistics.median(ratio) - 1):.1f}%), range "
          f"{min(ratio):.3f} .. {max(ratio):.3f} (wall clock)")
    print(f"overhead: median ratio on/off {statistics.median(cpu_ratio):.3f} "
          f"(+{100 * (statistics.median(cpu_ratio) - 1):.1f}%), range "
          f"{min(cpu_ratio):.3f} .. {max(cpu_ratio):.3f} (CPU time of the process)")


if __name__ == "__main__":
    main()
