"""Every credit-assignment rule on small convolutional networks: the README's conv table.

For each rule defined for conv layers, each experiment file (default: experiments/conv-digits.toml,
2 conv layers, and experiments/conv-digits-deep.toml, 4 conv layers) is run as given, with only
`[rule] name` replaced (the rule's default hyperparameters): its replicas (seeds 0..4) train
together in one batched run. Reported: test accuracy mean +- sd over the seeds, the final
angle(B_l, W_l) per layer (kernels for conv layers; mean over seeds) for rules with feedback
tensors, and the CPU seconds each run took (one torch thread).

    .venv/bin/python benchmarks/conv_table.py                    # print the table
    .venv/bin/python benchmarks/conv_table.py --write-readme     # and replace it in README.md
    .venv/bin/python benchmarks/conv_table.py --rules backprop,feedback_alignment --jobs 2
    .venv/bin/python benchmarks/conv_table.py --experiment experiments/conv-cifar10.toml \
        --set task.path=/data/cifar-10-batches-bin            # CIFAR-10 from your own copy
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
import tomllib
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- conv-table:start -->", "<!-- conv-table:end -->"
COMMAND = "nice -n 5 .venv/bin/python benchmarks/conv_table.py --jobs 2 --write-readme"
EXPERIMENTS = ["experiments/conv-digits.toml", "experiments/conv-digits-deep.toml"]
RULES = ["backprop", "feedback_alignment", "direct_feedback_alignment", "sign_symmetry",
         "kolen_pollack", "weight_mirror", "symmetric_alignment", "activation_alignment",
         "information_alignment", "four_synapse"]
# BioTorch (Sanfiz & Akrout 2021), CIFAR-10, ResNet-20, top-1 error in %; their "uSF"
# (sign(W) scaled by the layer's weights) is lrsim's sign_symmetry with scaled = true
BIOTORCH = {"backprop": 8.6, "sign_symmetry": 10.1, "feedback_alignment": 32.2}


def load(path: str, sets: list[str]) -> dict:
    """The experiment file as a dict, with `section.key=value` overrides (TOML values)."""
    data = tomllib.loads((ROOT / path).read_text() if not Path(path).is_absolute()
                         else Path(path).read_text())
    for item in sets:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        try:
            node[leaf] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            node[leaf] = value
    return data


def measure(job: tuple[str, str, list[str]]) -> dict:
    """Train one experiment file's replicas under `rule`; accuracy, angles, CPU time."""
    import torch

    from lrsim.config import parse
    from lrsim.models.rate.train import train

    path, rule, sets = job
    torch.set_num_threads(1)
    data = load(path, sets)
    data["rule"] = {"name": rule}
    exp = parse(data, path)
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(exp)
    acc = np.asarray(result.test_accuracy, dtype=float)
    ok = np.array([s == "ok" for s in result.status])
    angles = result.alignment_deg[ok] if ok.any() else result.alignment_deg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # layers without B: all-NaN columns
        mean_angle = np.nanmean(angles, axis=0) if not np.all(np.isnan(angles)) else None
    good = acc[ok]
    return {"experiment": path, "rule": rule, "accuracy": [float(a) for a in acc],
            "acc_mean": float(good.mean()) if ok.any() else None,
            "acc_sd": float(good.std(ddof=1)) if ok.sum() > 1 else None,
            "diverged": int((~ok).sum()),
            "angles": None if mean_angle is None else [None if np.isnan(a) else float(a)
                                                       for a in mean_angle],
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "steps": exp.train.steps, "replicas": exp.train.replicas}


def _acc(r: dict) -> str:
    if r["acc_mean"] is None:
        return f"diverged ({r['diverged']}/{r['replicas']})"
    sd = f" ± {r['acc_sd']:.3f}" if r["acc_sd"] is not None else ""
    div = f" ({r['diverged']} diverged)" if r["diverged"] else ""
    return f"{r['acc_mean']:.3f}{sd}{div}"


def _angles(r: dict) -> str:
    if r["angles"] is None:
        return "—"
    return " / ".join("—" if a is None else f"{a:.0f}" for a in r["angles"][1:])


def render(results: list[dict], experiments: list[str]) -> str:
    by = {(r["experiment"], r["rule"]): r for r in results}
    rules = [r for r in RULES if any((e, r) in by for e in experiments)]
    names = [Path(e).stem for e in experiments]
    head = "| rule | " + " | ".join(f"{n}: test accuracy | {n}: angle(B, W) per layer, deg"
                                      for n in names) + " | BioTorch CIFAR-10 error |"
    lines = [head, "| --- |" + " ---: | --- |" * len(names) + " ---: |"]
    for rule in rules:
        cells = []
        for e in experiments:
            r = by.get((e, rule))
            cells += ["—", "—"] if r is None else [_acc(r), _angles(r)]
        bt = f"{BIOTORCH[rule]}%" if rule in BIOTORCH else "—"
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {bt} |")
    cpu = sum(r["cpu_s"] for r in results)
    lines += ["", f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} "
              f"({platform.processor() or 'cpu'}), one torch thread per run, no GPU; "
              f"{len(results)} runs, {cpu / 60:.1f} CPU-minutes in all "
              f"(per run: {min(r['cpu_s'] for r in results):.0f}-"
              f"{max(r['cpu_s'] for r in results):.0f} s). Regenerate: `{COMMAND}`."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rules", help="comma-separated subset of the rules")
    p.add_argument("--experiment", action="append", help="experiment file(s) (default: the "
                   "two digits conv nets)")
    p.add_argument("--set", action="append", default=[], help="override, section.key=value")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--write-readme", action="store_true")
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args()
    rules = args.rules.split(",") if args.rules else RULES
    experiments = args.experiment or EXPERIMENTS
    jobs = [(e, r, args.set) for e in experiments for r in rules]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(measure, jobs))
    else:
        results = [measure(j) for j in jobs]
    for r in results:
        print(f"{Path(r['experiment']).stem:18s} {r['rule']:26s} {_acc(r):24s} "
              f"angles {_angles(r):14s} {r['cpu_s']:6.0f} CPU-s", flush=True)
    table = render(results, experiments)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write_readme:
        text = README.read_text()
        block = f"{START}\n{table}\n{END}"
        if START not in text:
            raise SystemExit(f"README.md has no {START} marker")
        README.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block,
                                 text, flags=re.S))
        print(f"updated {README}")


if __name__ == "__main__":
    main()
