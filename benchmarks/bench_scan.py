"""Scans on Dask: speedup from 1 to 2 workers, and the per-job overhead of the Dask path.

    .venv/bin/python benchmarks/bench_scan.py [--rounds 3] [--steps 1500] [--jobs 4]

Two measurements, each repeated `--rounds` times with the variants alternating, so that a
change of machine load hits all variants alike (medians and per-round ratios are printed):

1. Speedup (CPU-bound): `--jobs` jobs of 4 batched replicas (gaussian_mixture, hidden
   [128, 128], `--steps` steps) run by `run_scan` on a warm LocalCluster with 1 worker process
   and on one with 2 (one thread each). Speedup = time(1 worker) / time(2 workers).
2. Overhead per job: 16 tiny jobs (1 replica, hidden [8], 20 steps) through `run_scan` on the
   warm 1-worker cluster against the same jobs through `lrsim.scan.run_job` in a fresh Python
   process without Dask (imports warmed before the clock starts; in the benchmark's own process
   the schedulers' event-loop threads would slow the in-process path down):
   (dask - in-process) / 16 is what the Dask path adds to a job (submission, scheduling,
   pickling, manifest update), plus the scan's fixed cost (expansion, folder checks) spread
   over the jobs.

The worker processes' CPU seconds per wall second ("cores used") are printed with each scan:
on an idle machine the 2-worker scan uses close to 2 cores; on a shared one it shows how much
of the machine the workers actually got. And once, the cold embedded path:
`run_scan(workers=2)` of a one-job scan, cluster start and the workers' imports included.
Every timed scan writes into a fresh folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
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
    out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        records = run_job(job, str(out))
        assert all(r["status"] != "failed" for r in records), records
    return time.perf_counter() - t


def _in_fresh_process(path: Path, out: Path, max_group: int) -> float:
    """`_in_process` in a new interpreter (imports and caches warmed on a throwaway folder)."""
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            "import bench_scan as b; b._in_process(Path(sys.argv[2]), Path(sys.argv[3]) / 'w', "
            "int(sys.argv[4])); print(b._in_process(Path(sys.argv[2]), Path(sys.argv[3]), "
            "int(sys.argv[4])))")
    # the thread settings Dask gives its worker processes (distributed.nanny.pre-spawn-environ),
    # so that both paths run numpy/BLAS alike
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(path),
                        str(out), str(max_group)], capture_output=True, text=True, check=True,
                       env=env)
    return float(r.stdout.strip().splitlines()[-1])


def _worker_cpu(client) -> float:  # noqa: ANN001
    """CPU seconds used so far by all worker processes of `client`'s cluster."""
    return sum(client.run(time.process_time).values())


def _on_cluster(address: str, path: Path, out: Path, client=None,  # noqa: ANN001
                cores: list | None = None) -> float:
    from lrsim.scan import run_scan

    cpu0 = _worker_cpu(client) if client is not None else 0.0
    s = run_scan(path, out, scheduler=address, progress=False)
    assert s.failed == 0, s.failures
    if client is not None and cores is not None:
        cores.append((_worker_cpu(client) - cpu0) / s.seconds)
    return s.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--jobs", type=int, default=4)
    args = p.parse_args()

    from distributed import Client, LocalCluster

    from lrsim.scan import run_scan

    logging.getLogger("distributed").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    big, tiny = tmp / "big.toml", tmp / "tiny.toml"
    _experiment(big, 4 * args.jobs, 4, args.steps, [128, 128])
    _experiment(tiny, 16, 1, 20, [8])
    clusters = {}
    for n in (1, 2):
        c = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, silence_logs=logging.ERROR)
        cl = Client(c)
        cl.run(lambda: __import__("lrsim.models.rate.train") and None)
        clusters[n] = (c, cl)
    times: dict[str, list[float]] = {k: [] for k in ("x1", "x2", "tiny in-process",
                                                     "tiny dask x1")}
    cores: dict[str, list[float]] = {"x1": [], "x2": []}
    load_before = os.getloadavg()
    k = 0
    for _ in range(args.rounds):
        for name in times:
            k += 1
            out = tmp / f"out{k}"
            if name == "tiny in-process":
                t = _in_fresh_process(tiny, out, 1)
            elif name == "tiny dask x1":
                t = _on_cluster(clusters[1][0].scheduler_address, tiny, out)
            else:
                c, cl = clusters[int(name[-1])]
                t = _on_cluster(c.scheduler_address, big, out, cl, cores[name])
            times[name].append(t)
            got = f"   cores used {cores[name][-1]:.2f}" if name in cores else ""
            print(f"  {name:<16} {t:7.2f} s   load {os.getloadavg()[0]:.1f}{got}", flush=True)
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
        "cores_obtained_by_workers_per_round": {k: [round(c, 2) for c in v]
                                                for k, v in cores.items()},
        "dask_overhead_per_job_ms": round(
            1000 * (med["tiny dask x1"] - med["tiny in-process"]) / 16, 1),
        "cold_embedded_scan_s": round(cold, 2),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
