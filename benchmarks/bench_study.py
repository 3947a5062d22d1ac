"""Study throughput: runs per CPU-hour of the identification study, observers on, and the full
study's projected time.

The study is `experiments/identification-full.toml` (12,096 runs in 252 batched jobs of 48
replicas, 5,000 steps, 21 recorded time points x 9 views). A scaled-down copy: `--jobs` of its
jobs (stratified: every rule, then cells drawn at random with a fixed seed), each run exactly as
a scan worker runs it (`lrsim.scan.run_job`: batched training, the rate observer, one netCDF
file per run) but with fewer steps. Each job runs at two step counts S1 < S2 (interleaved, in
fresh output folders), so its CPU time splits into a per-step part (training) and a fixed part
(building, the 21 observations, writing files):

    T(S) = fixed + S * per_step      ->  T_full = fixed + 5000 * per_step

Projection: the mean T_full of the sampled jobs of each rule x that rule's job count, summed
over rules. Clock: `time.process_time` (CPU seconds of this process, one torch thread), so the
figures are per core and do not count time the machine gave to other processes.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_study.py \
        [--jobs 14] [--steps 50 450] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lrsim.config import load  # noqa: E402
from lrsim.scan import Job, expand, plan_jobs, scan_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def with_steps(job: Job, steps: int, device: str | None = None) -> Job:
    """The same job with `train.steps` replaced (observation schedule: same number of points)
    and recorded unit counts capped at the narrowest hidden layer (a study file that asks for
    more units than a layer has is refused by lrsim); on `device` where one is given."""
    runs = []
    for r in job.runs:
        cfg = copy.deepcopy(r.config)
        cfg["train"]["steps"] = steps
        if device is not None:
            cfg["device"] = device
        narrow = min(cfg["model"]["hidden"])
        cfg["observe"]["units"] = list(dict.fromkeys(min(u, narrow)
                                                     for u in cfg["observe"]["units"]))
        runs.append(dataclasses.replace(r, config=cfg))
    return Job(job.index, job.group, tuple(runs))


def pick(jobs: list[Job], n: int, seed: int = 0) -> list[Job]:
    """n jobs: one of every rule first (in registry order of the scan), then random others."""
    rng = np.random.default_rng(seed)
    by_rule: dict[str, list[Job]] = {}
    for j in jobs:
        by_rule.setdefault(j.runs[0].params["rule.name"], []).append(j)
    chosen = [js[rng.integers(len(js))] for js in by_rule.values()][:n]
    rest = [j for j in jobs if j not in chosen]
    extra = rng.choice(len(rest), size=max(0, n - len(chosen)), replace=False)
    return chosen + [rest[i] for i in sorted(extra)]


def run_and_write(job: Job, out: Path) -> list:
    """Run `job` as a scan worker does (`run_job`) and write its run files into `out` as the
    scan client does (`folder.write_result`); the workers' results."""
    from lrsim.scan import folder, run_job

    results = run_job(job)
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        if r.data is not None:
            folder.write_result(out, r.record["run_id"], r.data)
    return results


def timed_job(job: Job, out: Path) -> float:
    t = time.process_time()
    results = run_and_write(job, out)
    spent = time.process_time() - t
    bad = [r.record for r in results if r.record.get("status") == "failed"]
    if bad:
        raise RuntimeError(f"job {job.index} failed: {bad[0].get('error')}")
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments" /
                                                "identification-full.toml"))
    ap.add_argument("--jobs", type=int, default=14)
    ap.add_argument("--steps", type=int, nargs=2, default=[50, 450])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    exp = load(args.experiment)
    runs = expand(exp, args.experiment)
    jobs = plan_jobs(runs, scan_spec(exp).max_group)
    sample = pick(jobs, args.jobs)
    full_steps = exp.train.steps
    s1, s2 = args.steps
    print(f"{Path(args.experiment).name}: {len(runs)} runs in {len(jobs)} jobs, "
          f"{full_steps} steps; sampled {len(sample)} jobs at {s1} and {s2} steps, "
          f"{args.rounds} rounds; {platform.machine()}, load {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}, 1 thread; clock time.process_time", flush=True)
    per_job: dict[int, dict[str, list[float]]] = {j.index: {"t1": [], "t2": []} for j in sample}
    with tempfile.TemporaryDirectory(prefix="lrsim-bench-study-") as tmp:
        timed_job(with_steps(sample[0], 5), Path(tmp) / "warm")  # imports, data set
        for r in range(args.rounds):
            for job in sample:
                order = [("t1", s1), ("t2", s2)] if r % 2 == 0 else [("t2", s2), ("t1", s1)]
                for key, steps in order:
                    out = Path(tmp) / f"{job.index}-{key}-{r}"
                    per_job[job.index][key].append(timed_job(with_steps(job, steps), out))
                print(f"  round {r} job {job.index}: {s1} steps {per_job[job.index]['t1'][-1]:.1f}"
                      f" s, {s2} steps {per_job[job.index]['t2'][-1]:.1f} s CPU", flush=True)
    rows = []
    for job in sample:
        t1 = statistics.median(per_job[job.index]["t1"])
        t2 = statistics.median(per_job[job.index]["t2"])
        per_step = (t2 - t1) / (s2 - s1)
        fixed = max(0.0, t1 - s1 * per_step)
        full = fixed + full_steps * per_step
        p = job.runs[0].params
        rows.append((p["rule.name"], p["model.hidden"], p["model.activation"],
                     p["train.optimizer"], len(job.runs), per_step, fixed, full))
        print(f"job {job.index:>3} {p['rule.name']:<26} {str(p['model.hidden']):<15} "
              f"{p['model.activation']:<5} {p['train.optimizer']:<8} K={len(job.runs)}: "
              f"{1e3 * per_step:.2f} ms/step, fixed {fixed:.1f} s, full job {full:.0f} s, "
              f"{3600 * len(job.runs) / full:.0f} runs/h", flush=True)
    by_rule: dict[str, list[float]] = {}
    for rule, *_, full in rows:
        by_rule.setdefault(rule, []).append(full)
    count: dict[str, int] = {}
    for j in jobs:
        count[j.runs[0].params["rule.name"]] = count.get(j.runs[0].params["rule.name"], 0) + 1
    total = sum(statistics.mean(v) * count[rule] for rule, v in by_rule.items())
    missing = [r for r in count if r not in by_rule]
    if missing:
        total *= len(jobs) / sum(count[r] for r in by_rule)
    train_share = sum(r[-3] * full_steps for r in rows) / sum(r[-1] for r in rows)
    print(f"projected full study: {total / 3600:.1f} CPU-hours on one core "
          f"({len(runs)} runs, {3600 * len(runs) / total:.0f} runs per CPU-hour); "
          f"training {100 * train_share:.0f}% of it, fixed costs (build, 21 observations, "
          f"files) {100 * (1 - train_share):.0f}%")


if __name__ == "__main__":
    main()
