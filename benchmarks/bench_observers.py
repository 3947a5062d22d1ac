"""Observer overhead: the demo experiment trained with observers off and on, side by side.

Trains experiments/demo.toml (or --experiment FILE) in alternation, observers off
(`run_experiment(observe=False)`) then on (the file's [observe] section; the demo uses the
defaults: 21 points, all observables and statistics, units [0], noise [0.0]), `--rounds`
times, with one torch thread. Alternating keeps the comparison fair on a shared machine: both
variants meet the same load. Three figures:

- wall clock: median of the per-round ratios on/off;
- CPU time of the process: the same ratio, steadier when other processes compete for cores;
- in-run share: time spent inside the observer (start, record, building the Datasets) over the
  rest of the observed run, timed within the same run (least disturbed by the machine's load).

    .venv/bin/python benchmarks/bench_observers.py [--rounds 7] [--experiment FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from lrsim.config import load
from lrsim.models.rate import train
from lrsim.models.rate.observer import RateObserver

ROOT = Path(__file__).resolve().parents[1]


class TimedObserver(RateObserver):
    """The default observer, with the CPU time spent in its calls added up."""

    spent = 0.0

    def start(self, ctx: Any) -> None:
        t = time.process_time()
        super().start(ctx)
        self.spent += time.process_time() - t

    def record(self, step: int, ctx: Any) -> None:
        t = time.process_time()
        super().record(step, ctx)
        self.spent += time.process_time() - t


def one_run(exp, observe: bool) -> tuple[float, float, float]:  # noqa: ANN001
    """(wall s, CPU s, CPU s inside the observer) of training `exp` and building its record."""
    wall, cpu = time.perf_counter(), time.process_time()
    obs = TimedObserver(exp.observe) if observe else None
    result = train(exp, observers=[obs] if obs else None)
    if obs is not None:
        t = time.process_time()
        obs.datasets(result)
        obs.spent += time.process_time() - t
    return time.perf_counter() - wall, time.process_time() - cpu, obs.spent if obs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "demo.toml"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    exp = load(args.experiment)
    one_run(exp, False)  # warm-up: data set, kernels
    one_run(exp, True)  # warm-up: compiled statistics kernel, xarray
    wall, cpu, share = [], [], []
    off_wall, on_wall = [], []
    for _ in range(args.rounds):
        a_wall, a_cpu, _ = one_run(exp, False)
        b_wall, b_cpu, inside = one_run(exp, True)
        off_wall.append(a_wall)
        on_wall.append(b_wall)
        wall.append(b_wall / a_wall)
        cpu.append(b_cpu / a_cpu)
        share.append(inside / (b_cpu - inside))
    o = exp.observe
    med = statistics.median
    print(f"experiment {Path(args.experiment).name}: {exp.train.replicas} replicas x "
          f"{exp.train.steps} steps, hidden {exp.model.hidden}, rule {exp.rule.name}; "
          f"observe: {len(range(o.points))} points ({o.schedule}), "
          f"{len(o.observables)} observables, units {o.units}, noise {o.noise}, "
          f"probe {o.probe_size}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; torch threads {args.threads}; {args.rounds} rounds")
    print(f"training, observers off: median {med(off_wall):.3f} s wall; on: "
          f"{med(on_wall):.3f} s wall")
    for name, r in (("wall clock", wall), ("CPU time", cpu)):
        print(f"overhead by {name:<10}: median {100 * (med(r) - 1):+5.1f}%  (rounds: "
              f"{', '.join(f'{100 * (x - 1):+.0f}%' for x in r)})")
    print(f"in-run share (observer CPU / rest of the run): median {100 * med(share):.1f}%  "
          f"(rounds: {', '.join(f'{100 * x:.1f}%' for x in share)})")


if __name__ == "__main__":
    main()
