"""Batched conv step for K small nets vs a loop of K torch.nn conv nets, and vs torch.func.vmap.

One training step of backprop + sgd (lr 0.01, batch 32, cross-entropy) on K independent conv
nets, three ways, interleaved round by round in one process, timed by per-thread CPU time
(`time.thread_time`) on one torch thread:

  batched  lrsim's trainer step on a conv network: grouped convolution with the replica as
           group, backprop's credit sent back through the layer interface, weight gradients,
           sgd, W <- W - lr gW (`lrsim.models.step.LearningStep`; no autograd)
  loop     K `torch.nn.Sequential` conv nets, each with autograd and its own
           `torch.optim.SGD`, stepped in a Python loop
  vmap     the same K torch.nn nets stacked (`torch.func.stack_module_state`), one
           `vmap(grad(loss))` call over the replica axis, then p <- p - lr g

Nets: conv [16, 32] (3x3, stride 1, padding 1, relu, 2x2 max pool after each), then a linear
readout to 10 classes; on 1x8x8 inputs (digits-shaped) and 3x32x32 (CIFAR-shaped). The figure
is the median over rounds of (loop time / batched time) and (vmap time / batched time) measured
in the same round.

Usage: python benchmarks/bench_conv.py [--quick] [--rounds R] [--write]   (--write updates
BENCHMARKS.md between the conv markers)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lrsim.models.rate import loss_and_error
from lrsim.models.rate.conv import conv_network
from lrsim.models.step import LearningStep
from lrsim.optimizers import optimizers
from lrsim.rules import rules
from lrsim.rules.base import Signals

BATCH, N_OUT, LR = 32, 10, 0.01
CONV = [16, 32]


def batched_step(shape, k: int):
    """The trainer's step: conv_network forward, loss, then `LearningStep.step` (backprop's
    credit through the layer interface, weight gradients, sgd, update)."""
    net = conv_network(shape, CONV, [], N_OUT, kernel=3, stride=1, padding=1, pool=2,
                       seeds=list(range(k)))
    learner = LearningStep(rules.create("backprop"), optimizers.create("sgd"), net.weights,
                           net.biases, net.layers, net.generators)
    x = torch.rand(k, BATCH, shape[0] * shape[1] * shape[2])
    t = F.one_hot(torch.randint(0, N_OUT, (k, BATCH)), N_OUT).float()
    lr = torch.full((k, 1, 1), LR)

    def step():
        fw = net.forward(x)
        _, e = loss_and_error(fw.z[-1], t, "cross_entropy")
        sig = Signals(fw.pre, fw.post, fw.derivative, e, t, net.weights, net.weights[1:],
                      layers=net.layers)
        learner.step(sig, net.weights, net.biases, lr)
    return step


def torch_net(shape) -> torch.nn.Module:
    c, h, w = shape
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, CONV[0], 3, 1, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(CONV[0], CONV[1], 3, 1, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(CONV[1] * (h // 4) * (w // 4), N_OUT))


def loop_step(shape, k: int):
    models = [torch_net(shape) for _ in range(k)]
    opts = [torch.optim.SGD(m.parameters(), lr=LR) for m in models]
    x = torch.rand(k, BATCH, *shape)
    y = torch.randint(0, N_OUT, (k, BATCH))

    def step():
        for i, (m, o) in enumerate(zip(models, opts)):
            o.zero_grad()
            F.cross_entropy(m(x[i]), y[i]).backward()
            o.step()
    return step


def vmap_step(shape, k: int):
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = [torch_net(shape) for _ in range(k)]
    params, buffers = stack_module_state(models)
    params = {n: p.detach() for n, p in params.items()}
    base = torch_net(shape).to("meta")
    x = torch.rand(k, BATCH, *shape)
    y = torch.randint(0, N_OUT, (k, BATCH))

    def loss(p, b, xb, yb):
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    grads = vmap(grad(loss))

    def step():
        g = grads(params, buffers, x, y)
        for name, p in params.items():
            p.sub_(g[name], alpha=LR)
    return step


def cpu_time(fn, reps: int) -> float:
    """Per-thread CPU seconds per call, after one warm-up call."""
    fn()
    t0 = time.thread_time()
    for _ in range(reps):
        fn()
    return (time.thread_time() - t0) / reps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="K = 16 only, 3 rounds")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    cases = [((1, 8, 8), 16), ((1, 8, 8), 64), ((1, 8, 8), 256), ((3, 32, 32), 16)]
    if args.quick:
        cases, args.rounds = cases[:1], 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, per-thread CPU time, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'input':>8} {'K':>4} {'batched s':>10} {'loop s':>10} {'vmap s':>10} "
          f"{'loop/batched':>13} {'vmap/batched':>13}")
    rows = []
    for shape, k in cases:
        reps = max(1, 64 // k) * (1 if shape[1] == 8 else 1)
        fns = {"batched": batched_step(shape, k), "loop": loop_step(shape, k),
               "vmap": vmap_step(shape, k)}
        per: dict[str, list[float]] = {n: [] for n in fns}
        ratios_l, ratios_v = [], []
        for _ in range(args.rounds):
            times = {n: cpu_time(fn, reps) for n, fn in fns.items()}  # interleaved A, B, C
            for n, t in times.items():
                per[n].append(t)
            ratios_l.append(times["loop"] / times["batched"])
            ratios_v.append(times["vmap"] / times["batched"])
        med = {n: statistics.median(v) for n, v in per.items()}
        rl, rv = statistics.median(ratios_l), statistics.median(ratios_v)
        name = "x".join(map(str, shape))
        rows.append((name, k, med["batched"], med["loop"], med["vmap"], rl, min(ratios_l),
                     max(ratios_l), rv))
        print(f"{name:>8} {k:>4} {med['batched']:>10.2e} {med['loop']:>10.2e} "
              f"{med['vmap']:>10.2e} {rl:>12.1f}x {rv:>12.1f}x   (loop/batched range "
              f"{min(ratios_l):.1f}-{max(ratios_l):.1f} over {args.rounds} rounds)", flush=True)
    if args.write:
        write(rows, args.rounds)


def write(rows, rounds: int) -> None:
    lines = [f"Machine: {platform.machine()}, torch {torch.__version__}, 1 torch thread, "
             f"per-thread CPU time, {rounds} interleaved rounds (median). Backprop + sgd, conv "
             f"[16, 32] (3x3, pad 1, relu, 2x2 max pool) + linear readout, batch {BATCH}.", "",
             "| input | K | batched s/step | loop s/step | vmap s/step | loop / batched "
             "| (range) | vmap / batched |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {k} | {b:.2e} | {lo:.2e} | {v:.2e} | {rl:.1f}x | {a:.1f}-{z:.1f} "
              f"| {rv:.1f}x |" for n, k, b, lo, v, rl, a, z, rv in rows]
    path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
    text = path.read_text()
    block = "<!-- conv:start -->\n" + "\n".join(lines) + "\n<!-- conv:end -->"
    if "<!-- conv:start -->" in text:
        text = re.sub(r"<!-- conv:start -->.*?<!-- conv:end -->", lambda _: block, text,
                      flags=re.S)
    else:
        text += "\n## Convolutional networks (`benchmarks/bench_conv.py`)\n\n" + block + "\n"
    path.write_text(text)
    print(f"updated {path}")


if __name__ == "__main__":
    main()
