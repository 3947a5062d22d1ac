"""open_scan on a large store: how long opening a synthetic 10,000-run store takes.

Builds (once; reused when the folder exists) a store of `--runs` run files shaped like the demo
study's: 21 time points, all 21 statistics, units [0], noise [0.0], 6 rules x 2 architectures
(64-64 and 128-64-32) x learning rates x seeds: one file per architecture written by
`lrsim.store.write_run` from a real run's Dataset (a tiny `run_experiment`), the others clones
of those with their own run id, labels and random values.
Then, in one process, `--rounds` times:

- open: `lrsim.open_scan(store)` (metadata only; variables are dask arrays), wall and CPU time;
- one channel: `ds.weights.sel(stat="abs_mean", units=0, noise=0.0, layer="layer1").values`
  for every run (reads the files' `weights`);
- by rule: the mean trajectory per rule of that channel (`lrsim.plot.trajectory_summary`);

then, once, the eager way open_scan worked before (each file opened by xarray, loaded, one
`xr.concat`) on the first `--eager` files, for comparison.

    .venv/bin/python benchmarks/bench_open_scan.py [--runs 10000] [--store DIR] [--rounds 3]
                                                   [--eager 500]

Prints one JSON line with the medians, the store size and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

RULES = ("backprop", "feedback_alignment", "sign_symmetry", "kolen_pollack", "weight_mirror",
         "sanger")
LRS = (0.01, 0.02, 0.05, 0.1, 0.2)


def templates() -> dict[str, object]:
    """One real run Dataset per architecture (a tiny rate run on digits, 21 points)."""
    import torch

    from lrsim.config import parse
    from lrsim.experiment import run_experiment

    torch.set_num_threads(1)
    out = {}
    for hidden in ([64, 64], [128, 64, 32]):
        exp = parse({"name": "bench-open-scan", "device": "cpu", "task": {"name": "digits"},
                     "model": {"hidden": hidden}, "rule": {"name": "feedback_alignment"},
                     "train": {"steps": 20, "replicas": 1}, "observe": {"points": 21}})
        out["-".join(map(str, hidden))] = run_experiment(exp).datasets[0]
    return out


def _clone(template: Path, target: Path, rid: str, labels: dict, seed: int) -> None:
    """A run file like `template` (written by write_run) with run id, labels and values
    replaced in place (h5py), written to a temporary name and renamed."""
    import h5py

    tmp = target.with_name(f".{target.name}.tmp-bench")
    shutil.copyfile(template, tmp)
    rng = np.random.default_rng(seed)
    with h5py.File(tmp, "r+") as f:
        info = json.loads(f.attrs["lrsim_index"])
        info["run_id"] = rid
        info["labels"].update(labels)
        f.attrs["lrsim_index"] = json.dumps(info)
        f.attrs["run_id"] = rid
        f["run"][0] = rid
        for key, value in labels.items():
            f["final_test_accuracy" if key == "test_accuracy" else key][0] = value
        for v in ("weights", "activations", "activity_change", "alignment", "loss",
                  "test_accuracy"):
            f[v][...] = rng.normal(size=f[v].shape)
    os.replace(tmp, target)


def build(store: Path, n_runs: int) -> None:
    """Write `n_runs` run files into `store` (skips files already there): one file per
    architecture by `lrsim.store.write_run` (kept beside the store, in `<store>-templates`),
    then clones of them with their own run id, labels and random values (writing 10,000 files
    through xarray would take an hour on a loaded 2-core machine)."""
    from lrsim.store import write_run

    store.mkdir(parents=True, exist_ok=True)
    have = {p.stem for p in store.glob("*.nc")}
    if len(have) >= n_runs:
        return
    tdir = store.with_name(store.name + "-templates")
    paths = {arch: write_run(ds.assign_attrs(run_id=f"template-{arch}"), tdir)
             for arch, ds in templates().items()}
    t0 = time.perf_counter()
    for i in range(n_runs):
        rid = f"synthetic{i:06d}"
        if rid in have:
            continue
        arch = list(paths)[i % 2]
        rng = np.random.default_rng([i, 1])
        labels = {"rule": RULES[(i // 2) % len(RULES)], "lr": LRS[(i // 12) % len(LRS)],
                  "seed": i // 60, "status": "ok", "final_loss": float(rng.random()),
                  "test_accuracy": float(rng.random())}
        _clone(paths[arch], store / f"{rid}.nc", rid, labels, i)
        if (i + 1) % 2000 == 0:
            print(f"built {i + 1} runs, {time.perf_counter() - t0:.0f} s", flush=True)


def measure(store: Path, rounds: int) -> dict:
    import lrsim

    rows = []
    for _ in range(rounds):
        w, c = time.perf_counter(), time.process_time()
        ds = lrsim.open_scan(store)
        t_open = (time.perf_counter() - w, time.process_time() - c)
        assert type(ds["weights"].data).__module__.startswith("dask")
        w, c = time.perf_counter(), time.process_time()
        ch = ds["weights"].sel(stat="abs_mean", units=0, noise=0.0, layer="layer1").values
        t_one = (time.perf_counter() - w, time.process_time() - c)
        w, c = time.perf_counter(), time.process_time()
        summ = lrsim.plot.trajectory_summary(ds, "weights", stat="abs_mean", layer="layer1")
        t_sum = (time.perf_counter() - w, time.process_time() - c)
        rows.append((t_open, t_one, t_sum))
        assert ch.shape[0] == ds.sizes["run"] and summ.sizes["group"] == len(RULES)

    def med(k: int, j: int) -> float:
        return round(statistics.median(r[k][j] for r in rows), 3)

    files = list(store.glob("*.nc"))
    return {"runs": ds.sizes["run"], "store_MB": round(sum(p.stat().st_size for p in files)
                                                       / 2**20, 1),
            "open_wall_s": med(0, 0), "open_cpu_s": med(0, 1),
            "one_channel_wall_s": med(1, 0), "one_channel_cpu_s": med(1, 1),
            "summary_by_rule_wall_s": med(2, 0), "summary_by_rule_cpu_s": med(2, 1),
            "rounds": rounds, "loadavg_before_after": None,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}


def eager(store: Path, n: int) -> dict:
    """The way open_scan read a store before it was lazy: every file opened by xarray and
    loaded, then one `xr.concat`; on the first `n` files (CPU s per run, and scaled to all)."""
    import xarray as xr

    from lrsim.store import READ_ENGINE

    files = sorted(store.glob("*.nc"))[:n]
    w, c = time.perf_counter(), time.process_time()
    runs = []
    for p in files:
        with xr.open_dataset(p, engine=READ_ENGINE) as one:
            runs.append(one.load())
    xr.concat(runs, dim="run", data_vars="all", coords="different", compat="equals",
              join="outer", combine_attrs="drop")
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    return {"eager_runs": len(files), "eager_wall_s": round(wall, 3),
            "eager_cpu_s": round(cpu, 3), "eager_cpu_ms_per_run": round(1e3 * cpu / len(files), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--store", type=Path, default=Path("/tmp/lrsim-bench-open-scan"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eager", type=int, default=500,
                    help="files read the old, eager way for comparison (0: skip)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    build(args.store, args.runs)
    before = os.getloadavg()[0]
    res = measure(args.store, args.rounds)
    if args.eager:
        res.update(eager(args.store, args.eager))
    res["loadavg_before_after"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
