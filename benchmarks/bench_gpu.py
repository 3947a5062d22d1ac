"""On one CUDA GPU: how many rate networks train at once, at what fraction of peak, against the
vmap peer, and the identification study's projected wall time.

1. Ceilings, measured in the same process: float32 matmul (8192^3, TF32 off, as the trainer
   runs) and a device-to-device copy; CUDA events, median of 10 after warm-up.
2. Capacity: the trainer itself (`lrsim.models.rate.train.train`, observers off, the step
   replayed as a CUDA graph) on K networks 64 -> w -> w -> 10 (digits, batch 32, relu), K up to
   the largest that fits; a timing observer synchronises the device and reads
   `time.perf_counter` around `--steps` steps. "% peak" = the step's matmul FLOPs (forward,
   error propagation, weight gradients; `bench_batched.step_flops`) / time / the fp32 ceiling.
   The vmap peer (`peers.VmapPeer`: `torch.func.vmap(grad(functional_call))`, one foreach
   `torch.optim` optimizer) runs on the same device at the same K, interleaved.
3. Study: jobs of `experiments/identification-full.toml` run exactly as a scan worker runs them
   (`lrsim.scan.run_job`: batched training, the rate observer with its 21 points x 9 views, one
   netCDF file per run) on the GPU at the full 5,000 steps, by `--workers` processes at once
   (a scan's workers sharing one GPU); one job of each of the 14 rules, then random others. The
   projection: per rule, mean job time x that rule's job count, summed, / workers (the jobs
   measured ran concurrently, so their times include contention for the GPU and the cores).

    python benchmarks/bench_gpu.py [--widths 32 128] [--ks 1024 10000 65536] \
        [--study-jobs 16] [--workers 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batched import BATCH, LR, step_flops  # noqa: E402
from peers import VmapPeer  # noqa: E402

from lrsim.config import load, parse  # noqa: E402
from lrsim.models.rate.train import train  # noqa: E402
from lrsim.models.tasks import tasks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "cuda"  # --device cpu: a smoke run of the script where no GPU is present


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def cuda_time(fn, reps: int = 10, warm: int = 3) -> float:
    """Median seconds of fn() by CUDA events."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def ceilings() -> dict[str, float]:
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    fp32 = 2.0 * n**3 / cuda_time(lambda: a @ b)
    torch.backends.cuda.matmul.allow_tf32 = True
    tf32 = 2.0 * n**3 / cuda_time(lambda: a @ b)
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(2**29, device="cuda")  # 2 GiB
    y = torch.empty_like(x)
    copy_bw = 2.0 * x.numel() * 4 / cuda_time(lambda: y.copy_(x))
    return {"fp32_flops": fp32, "tf32_flops": tf32, "copy_bytes_per_s": copy_bw}


class Timer:
    """Observer: synchronise, read the clock at `warm` and `warm + steps`; between the two
    readings nothing else runs. At `warm` it first runs `peer` (if any) for `peer_steps`."""

    def __init__(self, warm: int, steps: int, peer=None, peer_steps: int = 0):
        self.warm, self.n, self.peer, self.peer_steps = warm, steps, peer, peer_steps
        self.t0 = self.seconds = self.peer_seconds = None

    def steps(self, total: int) -> list[int]:
        return [self.warm, self.warm + self.n]

    def start(self, ctx) -> None:  # noqa: ANN001
        pass

    def record(self, step: int, ctx) -> None:  # noqa: ANN001
        _sync()
        if step == self.warm:
            if self.peer is not None:
                with torch.enable_grad():
                    self.peer(3)
                    _sync()
                    t = time.perf_counter()
                    self.peer(self.peer_steps)
                    _sync()
                    self.peer_seconds = (time.perf_counter() - t) / self.peer_steps
            self.t0 = time.perf_counter()
        else:
            self.seconds = (time.perf_counter() - self.t0) / self.n


def capacity(width: int, k: int, rule: str, optimizer: str, steps: int, peak: float,
             vmap: bool) -> dict:
    row = {"section": "capacity", "width": width, "K": k, "rule": rule, "optimizer": optimizer}
    exp = parse({"name": "gpu", "device": DEVICE, "seed": 0, "task": {"name": "digits"},
                 "model": {"hidden": [width, width], "activation": "relu"},
                 "rule": {"name": rule},
                 "train": {"optimizer": optimizer, "lr": LR, "batch_size": BATCH,
                           "steps": 30 + steps, "replicas": k}})
    peer = None
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        if vmap:
            task = tasks.create("digits")
            peer = VmapPeer(task.x_train.float(), task.labels_train, width, k, BATCH,
                            optimizer, LR, device=DEVICE).run
        timer = Timer(30, steps, peer, max(10, steps // 4))
        t = time.perf_counter()
        res = train(exp, observers=[timer])
        row["wall_s"] = time.perf_counter() - t
    except torch.cuda.OutOfMemoryError as err:
        row["error"] = f"out of memory: {str(err).splitlines()[0]}"
        return row
    row.update(s_per_step=timer.seconds, cuda_graph=res.extra.get("cuda_graph"),
               ok=sum(s == "ok" for s in res.status),
               networks_steps_per_s=k / timer.seconds,
               pct_peak_fp32=100 * step_flops(width, k) / timer.seconds / peak,
               max_mem_gib=torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda"
               else float("nan"),
               final_test_acc=None if res.test_accuracy is None
               else float(np.nanmean(res.test_accuracy)))
    if timer.peer_seconds is not None:
        row.update(vmap_s_per_step=timer.peer_seconds,
                   vmap_over_lrsim=timer.peer_seconds / timer.seconds)
    del res, peer
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return row


def host_sampler_cost(k: int, n: int, batch: int) -> float:
    """Seconds per step that K numpy permutations per epoch (the CPU sampler) would add."""
    rngs = [np.random.default_rng([s, 1]) for s in range(k)]
    t = time.perf_counter()
    np.stack([r.permutation(n) for r in rngs])
    return (time.perf_counter() - t) / (n // batch)


# -- the study ------------------------------------------------------------------------------

def _study_job(args: tuple) -> dict:
    """One job as a scan worker runs it, its run files written as the scan client writes
    them; wall seconds."""
    from bench_study import run_and_write

    job, out = args
    t = time.perf_counter()
    results = run_and_write(job, Path(out))  # one torch thread, as in a scan worker
    p = job.runs[0].params
    return {"section": "study", "job": job.index, "rule": p["rule.name"],
            "hidden": p["model.hidden"], "optimizer": p["train.optimizer"],
            "runs": len(job.runs), "wall_s": time.perf_counter() - t,
            "failed": [r.record.get("error") for r in results
                       if r.record.get("status") == "failed"][:1]}


def study(n_jobs: int, workers: int, steps: int | None, deadline: float) -> list[dict]:
    from bench_study import pick, with_steps

    from lrsim.scan import expand, plan_jobs, scan_spec

    path = str(ROOT / "experiments" / "identification-full.toml")
    exp = load(path)
    runs = expand(exp, path)
    jobs = plan_jobs(runs, scan_spec(exp).max_group)
    sample = [with_steps(j, steps or exp.train.steps, DEVICE) for j in pick(jobs, n_jobs)]
    count: dict[str, int] = {}
    for j in jobs:
        count[j.runs[0].params["rule.name"]] = count.get(j.runs[0].params["rule.name"], 0) + 1
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="lrsim-gpu-study-") as tmp:
        ctx = mp.get_context("spawn")
        t = time.perf_counter()
        with ctx.Pool(workers) as pool:
            todo = pool.imap_unordered(_study_job, [(j, str(Path(tmp) / f"job{j.index}"))
                                                    for j in sample])
            for _ in sample:
                try:
                    row = todo.next(timeout=max(1.0, deadline - time.perf_counter()))
                except mp.TimeoutError:
                    print(f"study: deadline reached, {len(sample) - len(rows)} jobs unfinished",
                          flush=True)
                    pool.terminate()
                    break
                print(json.dumps(row), flush=True)
                rows.append(row)
        wall = time.perf_counter() - t
    by_rule: dict[str, list[float]] = {}
    for r in rows:
        by_rule.setdefault(r["rule"], []).append(r["wall_s"])
    total = sum(statistics.mean(v) * count[rule] for rule, v in by_rule.items())
    total *= len(jobs) / max(1, sum(count[r] for r in by_rule))
    summary = {"section": "study-summary", "jobs_measured": len(rows),
               "jobs_unfinished": len(sample) - len(rows),
               "runs_measured": sum(r["runs"] for r in rows), "steps": steps or exp.train.steps,
               "workers": workers, "wall_s": wall,
               "runs_per_hour_measured": 3600 * sum(r["runs"] for r in rows) / wall,
               "projected_study_wall_h": total / workers / 3600,
               "study_runs": len(runs), "study_jobs": len(jobs)}
    return rows + [summary]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--ks", type=int, nargs="+", default=[1024, 10000, 32768, 65536])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rules", nargs="+", default=["backprop"])
    ap.add_argument("--optimizers", nargs="+", default=["sgd"])
    ap.add_argument("--vmap-ks", type=int, nargs="*", default=[1024, 10000])
    ap.add_argument("--study-jobs", type=int, default=16)
    ap.add_argument("--study-steps", type=int, default=None, help="default: the file's 5000")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--study-deadline", type=float, default=3600,
                    help="seconds after the start of the study: unfinished jobs are dropped")
    ap.add_argument("--json", default=None, help="append rows as JSON lines to this file")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu: a smoke run of this script (no ceilings, no figures)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")

    emit({"section": "machine",
          "gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "none",
          "torch": torch.__version__, "cpus": os.cpu_count(), "host": platform.machine()})
    peak = ceilings() if DEVICE == "cuda" else {"fp32_flops": float("nan")}
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    emit({"section": "ceilings", **peak})
    for width in args.widths:
        for rule in args.rules:
            for opt in args.optimizers:
                for k in args.ks:
                    row = capacity(width, k, rule, opt, args.steps, peak["fp32_flops"],
                                   vmap=k in args.vmap_ks and rule == "backprop")
                    emit(row)
    task = tasks.create("digits")
    for k in (10000,):
        emit({"section": "host-sampler", "K": k, "s_per_step":
              host_sampler_cost(k, len(task.x_train), BATCH)})
    if args.study_jobs:
        start = time.perf_counter()
        for row in study(args.study_jobs, args.workers, args.study_steps,
                         start + args.study_deadline):
            if row["section"] == "study-summary":
                emit(row)
            elif args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print("\nwidth K rule optimizer | s/step | networks x steps/s | % fp32 peak | vmap/lrsim "
          "| GiB | graph")
    for r in rows:
        if r["section"] == "capacity":
            if "error" in r:
                print(f"{r['width']} {r['K']} {r['rule']} {r['optimizer']} | {r['error']}")
                continue
            print(f"{r['width']} {r['K']} {r['rule']} {r['optimizer']} | {r['s_per_step']:.2e}"
                  f" | {r['networks_steps_per_s']:.3g} | {r['pct_peak_fp32']:.1f}% | "
                  f"{r.get('vmap_over_lrsim', float('nan')):.2f}x | {r['max_mem_gib']:.1f} | "
                  f"{r['cuda_graph']}")
        elif r["section"] == "study-summary":
            print(f"study: {r['jobs_measured']} jobs ({r['runs_measured']} runs, {r['steps']} "
                  f"steps) on {r['workers']} workers in {r['wall_s']:.0f} s = "
                  f"{r['runs_per_hour_measured']:.0f} runs/h; projected "
                  f"{r['study_runs']}-run study: {r['projected_study_wall_h']:.2f} h")


if __name__ == "__main__":
    main()
