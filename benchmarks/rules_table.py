"""Measure every registered rule on digits and print (or write) the README's rules table.

For each rule that runs on the rate substrate: one experiment of 5 replicas (seeds 0..4) with
the default setup (digits, hidden [64, 64], relu, sgd lr 0.05, batch 32, 3000 steps, float32,
CPU) and the rule's default hyperparameters; reports test accuracy mean +- sd over the seeds and
the final angle(B_l, W_l^T) per layer (mean over seeds) for rules with feedback matrices.

    .venv/bin/python benchmarks/rules_table.py                   # print the table
    .venv/bin/python benchmarks/rules_table.py --write-readme    # and replace it in README.md
    .venv/bin/python benchmarks/rules_table.py --rules kolen_pollack,backprop --jobs 2
    .venv/bin/python benchmarks/rules_table.py --rules hebb:readout=delta --write-readme

Rows are a rule with its default hyperparameters, plus the variants in `VARIANTS` (e.g. the
Hebbian rules with the delta readout), named `rule:key=value`. With `--rules`, --write-readme
re-renders only the rows measured and keeps every other row of the README table as it is.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- rules-table:start -->", "<!-- rules-table:end -->"
COMMAND = ".venv/bin/python benchmarks/rules_table.py --write-readme"
SEEDS, STEPS = 5, 3000
# Hebbian rules grow without bound at the error rules' lr (their update is not a gradient of a
# loss that shrinks) and find only the mean image on raw pixels: they are measured at a smaller
# lr on mean-centred digits, and the table says so.
FAMILY_SETTINGS = {"hebbian": {"lr": 0.002, "center": True}}
# extra rows per family: the rule with these hyperparameters besides its defaults
VARIANTS = {"hebbian": [{"readout": "delta"}]}
DELTA_READOUT = "; readout: dW_L = -lr e h^T"

EQUATIONS = {
    "backprop": "delta_l = (W_{l+1}^T delta_{l+1}) * f'(z_l)",
    "feedback_alignment": "delta_l = (B_{l+1} delta_{l+1}) * f'(z_l), B fixed random",
    "direct_feedback_alignment": "delta_l = (D_l e) * f'(z_l), D_l fixed random",
    "sign_symmetry": "B_{l+1} = sign(W_{l+1})^T mean|W_{l+1}|",
    "kolen_pollack": "dB = -lr (step_W^T + (lambda + wd) B), W gets the same decay",
    "weight_mirror": "x ~ N(0, s^2), y = W x: dB = eta_B (x y^T - lambda_B B)",
    "symmetric_alignment": "dB = -lr (2 alpha B - beta W^T)",
    "activation_alignment": "dB = -lr Sigma_x (2 alpha B - beta W^T)",
    "information_alignment": "dB = -lr (-alpha C_xy + beta B C_yy + gamma B)",
    "four_synapse": "dW = -lr ((U g) h^T + lambda W), dB = -lr ((V h) g^T + lambda B)",
    "hebb": "dW = eta (y x^T - lambda W)",
    "oja": "dW = eta (y x^T - diag(y^2) W)",
    "sanger": "dW = eta (y x^T - LT(y y^T) W)",
    "bcm": "dW = eta y (y - theta) x^T, theta <- <y^2>",
}


NOTES = """\
Learned feedback (`lrsim run --json` reports `final_alignment_deg`, one entry per layer, `null`
for the first layer, which sends no error down): B_l has the shape of W_l^T and carries the
error in place of W_l^T, delta_{l-1} = (B_l delta_l) * f'(z_{l-1}); lr is the trainer's
per-replica learning rate. Kolen-Pollack applies W's optimizer step and W's whole decay (its
lambda plus the run's `train.weight_decay` wd) to B, so B - W^T shrinks by exactly
(1 - lr (lambda + wd)) per step, W's own decay factor, under sgd, momentum or Adam. Symmetric
and activation alignment read W (weight estimation); weight mirror and information alignment see
only activity (the mirror phase's white noise, or the layer's input x and output y). Rules
marked `rate` in `lrsim rules` are refused by the spiking substrate.

The four-synapse circuit (after Liao, Ziyin, Gan, Cheung, Harnett & Poggio 2024, arXiv
2412.20018; the paper's full text could not be consulted, so these are the equations lrsim
uses). Ascending units A_l carry h_l, descending units D_l carry g_l; W_l: A_{l-1} -> A_l,
B_l: D_l -> D_{l-1}, U_l: D_l -> A_l, V_l: A_l -> D_l; <.> is the batch mean:

    g_L = e,   g_{l-1} = (B_l g_l) * f'(z_{l-1})
    W_l <- W_l - lr (<(U_l g_l) h_{l-1}^T> + lambda W_l),   b_l <- b_l - lr <U_l g_l>
    B_l <- B_l - lr (<(V_{l-1} h_{l-1}) g_l^T> + lambda B_l)
    pairing phase (variant self_assembling), every step: a column's A_l,i and D_l,i share a
    drive xi_i ~ N(0, 1) plus private noise, a = xi + rho eps_A, d = xi + rho eps_D:
    U_l <- U_l + eta_c (<a d^T> - U_l),   V_l <- V_l + eta_c (<d a^T> - V_l)

`variant = "wired"` fixes U = V = I and is Kolen-Pollack update for update under sgd (tested
in float64). `self_assembling` starts U, V weak and random, N(0, s^2/n) with s = 0.1, and B
random; with the defaults (lambda 0.02, eta_c 0.05, rho 0.5) on digits, seeds 0-4, the diagonal
fraction of U and V (Frobenius norm of the diagonal over that of the matrix; 1 = diagonal,
about 0.13 for a random 64 x 64) reaches 0.96 within 250 steps, and angle(B, W^T) per layer
falls from 90 / 90 deg to 79 / 49 at step 250, 52 / 20 at 1000, 23 / 8 at 2000 and 9 / 4 at
3000: the cross-stream synapses assemble first, then B follows W^T at the Kolen-Pollack rate
(1 - lr lambda) per step. The goal of coming within 3 points of backprop on digits is met (see
the table).

Hebbian rows `readout=delta`: the hidden layers learn exactly as in the clamped rows (bit for
bit; the readout does not feed back), and the readout is a trained linear classifier of what
they keep. At the Hebbian lr 0.002 that classifier is slow: on the untrained random hidden
layers it reaches 0.5131 ± 0.0472 in 3000 steps (0.8641 ± 0.0152 at lr 0.05;
`benchmarks/rules_table.py --reference`). And the features degenerate: hebb's lambda = 1
exceeds the top eigenvalue of centred digits' covariance (0.70), so its weights shrink towards
0 (|W_1| 11 -> 0.06, second-layer activity ~1e-4) and the readout shares that decay; oja's
second-layer units all converge to one direction (rank-1 activity); sanger keeps distinct
components and the delta readout lifts it from 0.45 to 0.53; bcm diverges in 2 of 5 seeds
either way. Early in learning the delta readout is clearly better: 300 steps at lr 0.005, hebb
with lambda 0.1: 0.39 vs 0.12, oja: 0.30 vs 0.15, higher on every seed (tests/test_hebbian.py).

Outside digits (2000 steps, 2 seeds, default lr 0.05): every rule above learns
`gaussian_mixture`; on `teacher_student` (mse regression) `information_alignment` diverges at
lr 0.05 and trains at lr 0.02."""


def row_id(name: str, params: dict | None = None) -> str:
    """A row's name: the rule, then its non-default hyperparameters, `hebb:readout=delta`."""
    return ":".join([name, *(f"{k}={v}" for k, v in sorted((params or {}).items()))])


def parse_row_id(text: str) -> tuple[str, dict]:
    """Inverse of `row_id` (values parsed as TOML scalars where they can be, else strings)."""
    import tomllib

    name, *pairs = text.split(":")
    params = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        try:
            params[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[key] = value
    return name, params


def all_rows() -> list[str]:
    """Every row of the table, in its order: each rate rule, then its family's variants."""
    from lrsim.rules import rules

    names = [n for n in rules.names() if "rate" in rules.entry(n).info["substrates"]]
    order = {n: i for i, n in enumerate(EQUATIONS)}
    names.sort(key=lambda n: (order.get(n, len(order)), n))
    out = [row_id(n) for n in names]
    for n in names:
        out += [row_id(n, v) for v in VARIANTS.get(rules.entry(n).info["family"], [])]
    return out


def measure(row: str) -> dict:
    """Train the row's rule on digits with 5 seeds in one batched run; accuracy and angles."""
    import torch

    from lrsim.config import parse
    from lrsim.models.rate import train
    from lrsim.rules import rules

    torch.set_num_threads(1)
    name, params = parse_row_id(row)
    extra = FAMILY_SETTINGS.get(rules.entry(name).info["family"], {})
    task = {"name": "digits", **({"center": True} if extra.get("center") else {})}
    exp = parse({"name": f"rules-table-{name}", "seed": 0, "device": "cpu", "task": task,
                 "rule": {"name": name, **params},
                 "train": {"steps": STEPS, "replicas": SEEDS, "lr": extra.get("lr", 0.05)}})
    t0 = time.perf_counter()
    result = train(exp)
    acc = np.asarray(result.test_accuracy, dtype=float)
    ok = np.array([s == "ok" for s in result.status])
    angles = result.alignment_deg[ok] if ok.any() else result.alignment_deg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # layers without B: all-NaN columns
        mean_angle = np.nanmean(angles, axis=0) if not np.all(np.isnan(angles)) else None
    good = acc[ok]
    return {"row": row, "rule": name, "params": params, "accuracy": [float(a) for a in acc],
            "acc_mean": float(good.mean()) if ok.any() else None,
            "acc_sd": float(good.std(ddof=1)) if ok.sum() > 1 else None,
            "diverged": int((~ok).sum()),
            "angles": None if mean_angle is None else [None if np.isnan(a) else float(a)
                                                       for a in mean_angle],
            "seconds": time.perf_counter() - t0}


def random_features_reference(lr: float) -> list[float]:
    """Test accuracy per seed of the delta readout alone on the untrained random hidden layers
    (the table's network, Hebbian settings, seeds 0-4): the ceiling a readout reaches in
    STEPS steps at `lr` when the hidden layers neither help nor hurt."""
    import torch

    from lrsim.models.rate import RateNetwork, loss_and_error
    from lrsim.models.rate.train import BatchSampler, evaluate
    from lrsim.models.tasks import tasks
    from lrsim.rules.hebbian import delta_readout

    torch.set_num_threads(1)
    task = tasks.create("digits", center=True)
    seeds = list(range(SEEDS))
    net = RateNetwork([task.n_in, 64, 64, task.n_out], "relu", seeds=seeds)
    sampler = BatchSampler(len(task.x_train), 32, seeds, torch.device("cpu"))
    with torch.no_grad():
        for _ in range(STEPS):
            idx = sampler.next()
            fw = net.forward(task.x_train[idx].float())
            _, e = loss_and_error(fw.z[-1], task.y_train[idx].float(), task.loss)
            gw, gb = delta_readout(e, fw.pre[-1])
            net.weights[-1] -= lr * gw
            net.biases[-1] -= lr * gb
        _, acc = evaluate(net, task, task.x_test.float(), task.y_test.float(), task.labels_test)
    return [float(a) for a in acc]


def table(rows: list[dict]) -> str:
    """The markdown table and the command that produced it."""
    from lrsim.rules import rules

    lines = [
        "Digits (sklearn 8x8, 20% held out), hidden [64, 64] relu, sgd lr 0.05, batch 32, "
        f"{STEPS} steps, default hyperparameters (`lrsim rules`), seeds 0-{SEEDS - 1} trained "
        "together in one run; accuracy is mean +- sd over the seeds, the angle is "
        "angle(B_l, W_l^T) at the end per layer l = 2..L (mean over seeds). A replica whose "
        "loss became non-finite counts as diverged. Hebbian rules (*) run at lr 0.002 on "
        "mean-centred digits (`[task] center = true`): at lr 0.05 they diverge, and on raw "
        "pixels they learn only the mean image. Their hidden layers learn unsupervised; the "
        "readout is clamped to the target (the rule's equation with y = t), or, in the rows "
        "`readout=delta`, learns by the delta rule (Widrow & Hoff 1960) on the output error "
        "e = softmax(z) - t, the gradient of the loss w.r.t. the last layer only.",
        f"Produced by `{COMMAND}`; each row is the same run as `lrsim run "
        "experiments/demo.toml` with `[rule] name` set to the rule.",
        "",
        "| rule | family | equation | locality | digits test acc | final angle (deg) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        info = rules.entry(r["rule"]).info
        eq = EQUATIONS.get(r["rule"], rules.entry(r["rule"]).doc.splitlines()[0])
        if r.get("params", {}).get("readout") == "delta":
            eq = "hidden: " + eq + DELTA_READOUT
        eq = eq.replace("|", "\\|")  # a pipe would end the table cell, even in code
        if r["acc_mean"] is None:
            acc = f"diverged ({r['diverged']}/{SEEDS})"
        else:
            acc = f"{r['acc_mean']:.4f} ± {r['acc_sd'] or 0:.4f}"
        if r["acc_mean"] is not None and r["diverged"]:
            acc += f" ({r['diverged']}/{SEEDS} diverged, mean of the others)"
        ang = "-" if not r["angles"] else ", ".join(f"{a:.1f}" for a in r["angles"]
                                                    if a is not None)
        star = "*" if info["family"] in FAMILY_SETTINGS else ""
        lines.append(f"| {_label(r, star)} | {info['family']} | `{eq}` | {info['locality']} "
                     f"| {acc} | {ang or '-'} |")
    return "\n".join(lines)


def _label(r: dict, star: str) -> str:
    """The first cell: `rule`, its star, its variant's hyperparameters: `hebb`* readout=delta."""
    extra = " ".join(f"{k}={v}" for k, v in sorted(r.get("params", {}).items()))
    return f"`{r['rule']}`{star}" + (f" {extra}" if extra else "")


def merge_readme_rows(text: str, measured: set[str], path: Path = README) -> str:
    """`text` (a table of the measured rows only) with every row it lacks taken, unchanged,
    from the README's current table, in `all_rows` order."""
    def rows_of(doc: str) -> dict[str, str]:
        out = {}
        for line in doc.splitlines():
            if line.startswith("| `"):
                name, _, extra = line.split("|")[1].strip().partition(" ")
                params = dict(p.split("=", 1) for p in extra.split())
                out[row_id(name.strip("`*"), params)] = line
        return out

    old = rows_of(path.read_text().partition(START)[2].partition(END)[0])
    new = rows_of(text)
    missing = [r for r in all_rows() if r not in new and r not in old]
    if missing:
        raise SystemExit(f"the README table has no row {missing[0]}; measure it (--rules)")
    lines = [new.get(r) or old[r] for r in all_rows() if r not in measured or r in new]
    head = [ln for ln in text.splitlines() if not ln.startswith("| `")]
    at = head.index("| --- | --- | --- | --- | --- | --- |") + 1
    return "\n".join(head[:at] + lines + head[at:])


def write_readme(text: str, path: Path = README) -> None:
    """Replace what lies between the rules-table markers of README.md, keeping the rest."""
    doc = path.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    block = f"{START}\n{text}\n{END}"
    path.write_text(pattern.sub(lambda _: block, doc, count=1))


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", help="comma-separated rows, e.g. hebb,hebb:readout=delta "
                                        "(default: every rate rule and its variants)")
    parser.add_argument("--jobs", type=int, default=2, help="rules measured in parallel")
    parser.add_argument("--write-readme", action="store_true", help="replace the README table")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    parser.add_argument("--load", help="render from measurements saved with --json instead")
    parser.add_argument("--reference", action="store_true",
                        help="only print the delta readout's accuracy on random hidden layers")
    args = parser.parse_args()
    if args.reference:
        for lr in (FAMILY_SETTINGS["hebbian"]["lr"], 0.05):
            acc = random_features_reference(lr)
            print(f"delta readout on random hidden layers, lr {lr}: {np.mean(acc):.4f} ± "
                  f"{np.std(acc, ddof=1):.4f} ({', '.join(f'{a:.3f}' for a in acc)})")
        return
    every = all_rows()
    wanted = [row_id(*parse_row_id(r)) for r in args.rules.split(",")] if args.rules else every
    unknown = [r for r in wanted if r not in every]
    if unknown:
        parser.error(f"no row {unknown[0]}; rows: {', '.join(every)}")
    wanted.sort(key=every.index)
    if args.load:
        rows = [r for r in json.loads(Path(args.load).read_text())
                if r.get("row", r["rule"]) in wanted]
    else:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(measure, wanted))
    for r in rows:
        print(f"# {r.get('row', r['rule'])}: {r['seconds']:.0f} s", flush=True)
    text = table(rows)
    if args.write_readme and set(wanted) != set(every):
        text = merge_readme_rows(text, set(wanted))
    text += "\n\n" + NOTES
    print(text)
    if args.json and not args.load:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.write_readme:
        write_readme(text)


if __name__ == "__main__":
    main()
