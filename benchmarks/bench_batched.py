"""Batched rate networks vs the same networks trained one at a time with torch.nn.

Measured side by side in one run, backprop + sgd on a digits-shaped problem (64 -> w -> w -> 10,
batch 32):
  (a) K networks as one batched lrsim step vs K ordinary `torch.nn` MLPs, each with its own
      `torch.optim.SGD` and autograd, stepped in a Python loop. The one-at-a-time time is
      measured on min(K, SAMPLE) networks and scaled linearly to K (they are independent).
  (b) the batched step's achieved FLOP/s as a fraction of this machine's peak matmul FLOP/s
      (a large float32 matmul measured in the same run).

Usage: python benchmarks/bench_batched.py [--quick] [--write]   (--write updates BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import torch

from lrsim.models.rate import RateNetwork, loss_and_error
from lrsim.rules import rules
from lrsim.rules.base import Signals

SAMPLE = 8
BATCH, N_IN, N_OUT = 32, 64, 10


def _timeit(fn, min_time: float = 0.5, min_reps: int = 3) -> float:
    """Median seconds per call over repeats filling `min_time`."""
    fn()  # warm up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) > 200:
            break
    times.sort()
    return times[len(times) // 2]


def batched_step_fn(width: int, k: int, steps: int):
    net = RateNetwork([N_IN, width, width, N_OUT], "relu", seeds=list(range(k)))
    rule = rules.create("backprop")
    state = rule.init(net.weights, net.generators)
    x = torch.rand(k, BATCH, N_IN)
    t = torch.nn.functional.one_hot(torch.randint(0, N_OUT, (k, BATCH)), N_OUT).float()
    lr = torch.full((k, 1, 1), 0.01)

    def run():
        for _ in range(steps):
            fw = net.forward(x)
            _, e = loss_and_error(fw.z[-1], t, "cross_entropy")
            sig = Signals(fw.pre, fw.post, fw.derivative, e, t, net.weights, net.weights[1:])
            for l, (gw, gb) in enumerate(rule.update(state, sig)):
                net.weights[l] -= lr * gw
                net.biases[l] -= lr[:, :, 0] * gb
    return run


def loop_step_fn(width: int, n: int, steps: int):
    models = [torch.nn.Sequential(torch.nn.Linear(N_IN, width), torch.nn.ReLU(),
                                  torch.nn.Linear(width, width), torch.nn.ReLU(),
                                  torch.nn.Linear(width, N_OUT)) for _ in range(n)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.01) for m in models]
    x = torch.rand(n, BATCH, N_IN)
    y = torch.randint(0, N_OUT, (n, BATCH))

    def run():
        for _ in range(steps):
            for i, (m, o) in enumerate(zip(models, opts)):
                o.zero_grad()
                torch.nn.functional.cross_entropy(m(x[i]), y[i]).backward()
                o.step()
    return run


def step_flops(width: int, k: int) -> float:
    """Multiply-adds x 2 of one backprop step: forward, error propagation, weight gradients."""
    sizes = [(N_IN, width), (width, width), (width, N_OUT)]
    fwd = sum(a * b for a, b in sizes)
    back = sum(a * b for a, b in sizes[1:])  # no propagation below the first layer
    return 2.0 * BATCH * k * (fwd + back + fwd)


def peak_matmul_flops(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2.0 * n**3 / _timeit(lambda: a @ b, min_time=1.0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="small grid, for a smoke test")
    p.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = p.parse_args()
    widths = [32, 128] if args.quick else [32, 128, 512]
    ks = [1, 16, 256] if args.quick else [1, 16, 64, 256, 1024]
    steps = 5
    peak = peak_matmul_flops()
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"peak matmul {peak / 1e9:.1f} GFLOP/s")
    print(f"{'width':>5} {'K':>5} {'batched s/step':>15} {'loop s/step':>12} {'speedup':>8} "
          f"{'GFLOP/s':>8} {'% peak':>7}")
    for w in widths:
        per_net = _timeit(loop_step_fn(w, SAMPLE, steps)) / (SAMPLE * steps)
        for k in ks:
            if w == 512 and k > 256:
                continue  # > 1 GB of activations and minutes per point on a laptop
            t_b = _timeit(batched_step_fn(w, k, steps)) / steps
            t_l = per_net * k
            flops = step_flops(w, k) / t_b
            rows.append((w, k, t_b, t_l, t_l / t_b, flops / 1e9, 100 * flops / peak))
            print(f"{w:>5} {k:>5} {t_b:>15.2e} {t_l:>12.2e} {t_l / t_b:>7.1f}x "
                  f"{flops / 1e9:>8.1f} {100 * flops / peak:>6.1f}%", flush=True)
    if args.write:
        write(rows, peak)


def write(rows, peak: float) -> None:
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} " \
              f"torch threads, torch {torch.__version__}"
    lines = [f"Machine: {machine}; peak float32 matmul measured in the same run: "
             f"{peak / 1e9:.1f} GFLOP/s. Backprop + sgd, 64 -> w -> w -> 10, batch 32. "
             f"One-at-a-time = `torch.nn` + autograd + `torch.optim.SGD` per network in a Python "
             f"loop (measured on {SAMPLE} networks, scaled to K).", "",
             "| width | K | batched s/step | one-at-a-time s/step | speedup | GFLOP/s "
             "| % of peak |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {w} | {k} | {tb:.2e} | {tl:.2e} | {sp:.1f}x | {gf:.1f} | {pc:.0f}% |"
              for w, k, tb, tl, sp, gf, pc in rows]
    path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
    text = path.read_text()
    block = "<!-- batched:start -->\n" + "\n".join(lines) + "\n<!-- batched:end -->"
    path.write_text(re.sub(r"<!-- batched:start -->.*?<!-- batched:end -->", lambda _: block,
                           text, flags=re.S))
    print(f"updated {path}")


if __name__ == "__main__":
    main()
