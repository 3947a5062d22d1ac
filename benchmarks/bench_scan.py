"""Scans on Dask: speedup from 1 to 2 workers, and the per-job overhead of the Dask path.

    .venv/bin/python benchmarks/bench_scan.py [--rounds 3] [--steps 1500] [--jobs 4]

Two measurements, each repeated `--rounds` times with the variants alternating, so that a
change of machine load hits all variants alike (medians and per-round ratios are printed):

1. Speedup (CPU-bound): `--jobs` jobs of 4 batched replicas (gaussian_mixture, hidden
   [128, 128], `--steps` steps) run by `run_scan` on a warm LocalCluster with 1 worker process
   and on one with 2 (one thread each). Speedup = time(1 worker) / time(2 workers).
2. Overhead per job: 16 tiny jobs (1 replica, hidden [8], 20 steps) through `run_scan` on the
   warm 1-worker cluster against the same jobs through `lrsim.scan.run_job` in this process:
   (dask - in-process) / 16 is what the Dask path adds to a job (submission, scheduling,
   pickling, manifest update), plus the scan's fixed cost (expansion, folder checks) spread
   over the jobs.

And once, the cold embedded path: `run_scan(workers=2)` of a one-job scan, cluster start and
the workers' imports included. Every timed scan writes into a fresh folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path


def _experiment(path: Path, seeds: int, max_group: int, steps: int, hidden: list[int]) -> None:
    path.write_text(f"""name = "bench-scan"
device = "cpu"
[task]
name = "gaussian_mixture"
samples = 2000
dim = 20
[model]
hidden = {hidden}
[train]
steps = {steps}
batch_size = 32
[scan]
"seed" = {{range = {seeds}}}
max_group = {max_group}
""")


def _in_process(path: Path, out: Path, max_group: int) -> float:
    import torch

    from lrsim.config import load
    from lrsim.scan import expand, plan_jobs, run_job

    torch.set_num_threads(1)
    t = time.perf_counter()
    jobs = plan_jobs(expand(load(path)), max_group)
    out.mkdir(parents=True)
    for job in jobs:
        records = run_job(job, str(out))
        assert all(r["status"] != "failed" for r in records), records
    return time.perf_counter() - t


def _on_cluster(address: str, path: Path, out: Path) -> float:
    from lrsim.scan import run_scan

    s = run_scan(path, out, scheduler=address, progress=False)
    assert s.failed == 0, s.failures
    return s.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--jobs", type=int, default=4)
    args = p.parse_args()

    from distributed import Client, LocalCluster

    from lrsim.scan import run_scan

    tmp = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    big, tiny = tmp / "big.toml", tmp / "tiny.toml"
    _experiment(big, 4 * args.jobs, 4, args.steps, [128, 128])
    _experiment(tiny, 16, 1, 20, [8])
    clusters = {}
    for n in (1, 2):
        c = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, silence_logs=logging.ERROR)
        cl = Client(c)
        cl.run(lambda: __import__("lrsim.train") and None)
        clusters[n] = (c, cl)
    _in_process(tiny, tmp / "warm", 1)  # this process's imports and caches
    times: dict[str, list[float]] = {k: [] for k in ("x1", "x2", "tiny in-process",
                                                     "tiny dask x1")}
    load_before = os.getloadavg()
    k = 0
    for _ in range(args.rounds):
        for name in times:
            k += 1
            out = tmp / f"out{k}"
            if name == "tiny in-process":
                t = _in_process(tiny, out, 1)
            elif name == "tiny dask x1":
                t = _on_cluster(clusters[1][0].scheduler_address, tiny, out)
            else:
                t = _on_cluster(clusters[int(name[-1])][0].scheduler_address, big, out)
            times[name].append(t)
            print(f"  {name:<16} {t:7.2f} s   load {os.getloadavg()[0]:.1f}", flush=True)
    for c, cl in clusters.values():
        cl.close()
        c.close()
    cold_exp = tmp / "cold.toml"
    _experiment(cold_exp, 2, 2, 10, [8])
    t = time.perf_counter()
    run_scan(cold_exp, tmp / "cold", workers=2, progress=False)
    cold = time.perf_counter() - t
    load_after = os.getloadavg()

    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "cores": os.cpu_count(), "rounds": args.rounds,
        "speedup_scan": f"{args.jobs} jobs x 4 replicas, hidden [128, 128], {args.steps} steps",
        "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "speedup_per_round": [round(a / b, 2) for a, b in zip(times["x1"], times["x2"])],
        "speedup_1_to_2_workers_median": round(med["x1"] / med["x2"], 2),
        "dask_overhead_per_job_ms": round(
            1000 * (med["tiny dask x1"] - med["tiny in-process"]) / 16, 1),
        "cold_embedded_scan_s": round(cold, 2),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
