"""Spiking substrate benchmarks, measured side by side (A/B interleaved, best of repeats) so
that a shared machine's load affects both sides alike:

1. wall seconds per simulated second of the default task network (hidden [400], 64 inputs,
   100 readout neurons, Vogels iSTDP on), with learning (backprop + Adam, one update per
   100 ms trial)
   and without (the same trials, the bridge only reading rates); goal: ratio <= 1.5
2. our balanced network configured as Brian2's CUBA example (4,000 LIF neurons, Vogels & Abbott
   2005) against that example written directly in Brian2, same target; goal: ratio <= 1.2
3. the first-run compilation cost of the cython target (a fresh cache directory, in a
   subprocess) against a second run with the cache warm

    .venv/bin/python benchmarks/bench_spiking.py [--target cython] [--repeats 3] [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

SIM_S = 2.0


def cuba_brian2_example(duration: float) -> float:
    """Brian2's CUBA example (docs: examples/CUBA.py), run for `duration` s; wall s of run."""
    import brian2 as b2
    from brian2 import ms, mV, second

    b2.seed(1)
    taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
    Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    we = (60 * 0.27 / 10) * mV
    wi = (-20 * 4.5 / 10) * mV
    ns = {"taum": taum, "taue": taue, "taui": taui, "Vt": Vt, "Vr": Vr, "El": El, "we": we,
          "wi": wi}  # the example's script-level names, passed explicitly
    P = b2.NeuronGroup(4000, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms,
                       method="exact", namespace=ns)
    P.v = "Vr + rand() * (Vt - Vr)"
    P.ge = 0 * mV
    P.gi = 0 * mV
    Ce = b2.Synapses(P, P, on_pre="ge += we", namespace=ns)
    Ci = b2.Synapses(P, P, on_pre="gi += wi", namespace=ns)
    Ce.connect("i<3200", p=0.02)
    Ci.connect("i>=3200", p=0.02)
    s_mon = b2.SpikeMonitor(P)
    net = b2.Network(P, Ce, Ci, s_mon)
    t0 = time.perf_counter()
    net.run(duration * second)
    wall = time.perf_counter() - t0
    print(f"    brian2 CUBA: {s_mon.num_spikes / 4000 / duration:.1f} Hz", file=sys.stderr)
    return wall


def cuba_ours(duration: float) -> float:
    """Our `build_balanced` with CUBA's parameters: J = 1.62 mV x taue / taum, g from wi."""
    from brian2 import ms, mV, second

    from lrsim.models.spiking.network import NetworkParams, build_balanced

    j = 60 * 0.27 / 10 * 5 / 20  # mV: CUBA's ge jump x tau_e / tau_m
    g = (20 * 4.5 / 10) * 10 / 20 / j  # CUBA's gi jump x tau_i / tau_m / J
    p = NetworkParams(n_e=3200, n_i=800, epsilon=0.02, j=j * mV, g=g, eta=0.0, tau_m=20 * ms,
                      tau_e=5 * ms, tau_i=10 * ms, t_ref=5 * ms, delay=0 * ms,
                      v_rest=-49 * mV, v_threshold=-50 * mV, v_reset=-60 * mV)
    bn = build_balanced(p, 1)
    t0 = time.perf_counter()
    bn.network.run(duration * second)
    wall = time.perf_counter() - t0
    n = len(bn.spikes_e.i) + len(bn.spikes_i.i)
    print(f"    ours CUBA:   {n / 4000 / duration:.1f} Hz", file=sys.stderr)
    return wall


def task_network(learning: bool, duration: float) -> float:
    """The default task network of `[spiking]` (hidden [400]; `SpikingSpec` defaults) for
    `duration` s of 100 ms trials; wall s of the run."""
    from lrsim.config import SpikingSpec
    from lrsim.models.spiking.learning import Schedule, TaskNetwork
    from lrsim.models.spiking.train import learning_params, network_params
    from lrsim.models.tasks import tasks
    from lrsim.optimizers import optimizers
    from lrsim.rules import rules

    spec = SpikingSpec()
    task = tasks.create("digits")
    n = int(round(duration / 0.1))
    x, lab = task.x_train.numpy()[:n], task.labels_train.numpy()[:n]
    x = x / x.max()
    sch = Schedule(x, lab, ["train" if learning else "eval"] * n)
    net = TaskNetwork([64, 400], 10, sch, rules.create("backprop"), optimizers.create("adam"),
                      0.1, 0.0, 1, network_params(spec), learning_params(spec))
    t0 = time.perf_counter()
    net.run()
    return time.perf_counter() - t0


def side_by_side(a, b, repeats: int) -> tuple[float, float]:
    """Best wall time of a and b over interleaved repeats (a, b, a, b, ...)."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(a())
        tb.append(b())
    return min(ta), min(tb)


def compile_cost(target: str) -> tuple[float, float]:
    """Wall s of a subprocess that builds and runs the default balanced network for 0.1 s with
    a fresh cython cache, then again with that cache warm."""
    code = ("import time; t=time.perf_counter();"
            "from brian2 import ms, second;"
            "from lrsim.models.spiking.network import build_balanced, configure;"
            f"configure('{target}', cache_dir=r'%s');"
            "bn = build_balanced(None, 0); bn.network.run(0.1*second);"
            "print(time.perf_counter()-t)")
    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for _ in range(2):
            r = subprocess.run([sys.executable, "-c", code % tmp], capture_output=True,
                               text=True, check=True)
            out.append(float(r.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cython", choices=["cython", "numpy"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-cost run")
    ap.add_argument("--only", choices=["task", "cuba"], help="run one comparison only")
    ap.add_argument("--sim-s", type=float, default=SIM_S,
                    help="simulated seconds per measurement (default %(default)s); the wall time "
                         "includes Brian2's per-run set-up, so short runs overstate it")
    args = ap.parse_args()
    from brian2 import ms

    from lrsim.models.spiking.network import configure

    configure(args.target, dt=0.1 * ms)
    print(f"| measurement ({args.target}, {os.cpu_count()} cores, shared) | value |")
    print("| --- | --- |")
    # warm the caches once (compilation is measured separately)
    if args.only in (None, "task"):
        task_network(True, 0.3)
        task_network(False, 0.3)
        learn, plain = side_by_side(lambda: task_network(True, args.sim_s),
                                    lambda: task_network(False, args.sim_s), args.repeats)
        print(f"| task network, learning: wall s / simulated s | {learn / args.sim_s:.2f} |")
        print(f"| task network, no learning: wall s / simulated s | {plain / args.sim_s:.2f} |")
        print(f"| ratio learning / no learning (goal <= 1.5) | {learn / plain:.2f} |")
    if args.only in (None, "cuba"):
        cuba_ours(0.1)
        cuba_brian2_example(0.1)
        ours, ref = side_by_side(lambda: cuba_ours(args.sim_s),
                                 lambda: cuba_brian2_example(args.sim_s),
                                 args.repeats)
        print(f"| our CUBA-4000: wall s / simulated s | {ours / args.sim_s:.2f} |")
        print(f"| Brian2 CUBA example: wall s / simulated s | {ref / args.sim_s:.2f} |")
        print(f"| ratio ours / Brian2 example (goal <= 1.2) | {ours / ref:.2f} |")
    if not args.no_compile and args.target == "cython":
        first, second = compile_cost(args.target)
        print(f"| first run, fresh cython cache (build + compile + 0.1 s) | {first:.1f} s |")
        print(f"| second run, warm cache | {second:.1f} s |")


if __name__ == "__main__":
    main()
