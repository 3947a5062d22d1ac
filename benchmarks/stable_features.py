"""Does keeping only the features whose class differences hold across training tasks make rule
identification transfer to a new condition? (issue 11; a negative result, README "Other
classifiers ... and feature selection")

Features: the headline view of `identification_study.py` (100 units per layer, 10% noise, 11
time points, recorded statistics) of the measurable observables with `change_alignment`, one
sample per (network, layer). Each feature is ranked on the training networks by one of two
scores, computed without the task or store tested:

- pooled separation: var_c(mu_c) / mean_c var(x | c), the between-class variance of the class
  means over the within-class variance, both pooled over tasks, so that a feature whose values
  shift from task to task counts the shift as noise;
- task agreement: Kendall's W of the class medians across tasks (1 when every task orders the
  classes alike; Kendall & Babington Smith 1939) times the mean within-task separation (capped
  at 10).

The top k features train a random forest (`--trees`, seed 0) for the 6 rule x optimizer classes
and one for the anchor's 4; accuracy per network (its layers' probabilities averaged). Scored
on each training task left out in turn (ranks from the other tasks) and on each test store.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stable_features.py --root runs/v6 \
        --test anchor-test anchor-test2 anchor-test2-xor \
        --out benchmarks/results/stable-features.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import identification_study as study  # noqa: E402

from lrsim.analysis.crossval import class_proba, run_level_accuracy  # noqa: E402


def samples(paths: list[str]) -> Any:
    s = study.headline_samples(paths, meta_keys=("task",))
    s.X = np.nan_to_num(s.X)
    return s


def class_means(x: np.ndarray, y: np.ndarray, classes: np.ndarray, stat: Any) -> np.ndarray:
    return np.array([stat(x[y == c], axis=0) for c in classes])


def separation(x: np.ndarray, y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """var_c(mean of class c) / mean_c var(x | c), per feature."""
    within = class_means(x, y, classes, np.var).mean(axis=0)
    return class_means(x, y, classes, np.mean).var(axis=0) / (within + 1e-12)


def pooled_separation(x: np.ndarray, y: np.ndarray, tasks: np.ndarray,
                      classes: np.ndarray) -> np.ndarray:
    return separation(x, y, classes)


def task_agreement(x: np.ndarray, y: np.ndarray, tasks: np.ndarray,
                   classes: np.ndarray) -> np.ndarray:
    """Kendall's W of the class medians' order across tasks x mean within-task separation."""
    ranks, sep = [], []
    for t in np.unique(tasks):
        m = tasks == t
        ranks.append(np.apply_along_axis(rankdata, 0, class_means(x[m], y[m], classes,
                                                                  np.median)))
        sep.append(separation(x[m], y[m], classes))
    r = np.array(ranks)  # tasks x classes x features
    m_, n_ = r.shape[:2]
    w = 12 * ((r.sum(axis=0) - m_ * (n_ + 1) / 2) ** 2).sum(axis=0) / (m_ ** 2 * (n_ ** 3 - n_))
    return w * np.minimum(np.mean(sep, axis=0), 10.0)


SCORES = {"pooled separation": pooled_separation, "task agreement": task_agreement}


def accuracies(tr: Any, te: Any, cols: np.ndarray, trees: int) -> dict[str, float]:
    out = {}
    for name, keep in (("6 classes", None), ("anchor's 4", study.ANCHOR_FOUR)):
        mtr = np.ones(len(tr.y), bool) if keep is None else np.isin(tr.y, keep)
        mte = np.ones(len(te.y), bool) if keep is None else np.isin(te.y, keep)
        classes = np.unique(tr.y[mtr])
        f = study.forest(trees, seed=0).fit(tr.X[mtr][:, cols], tr.y[mtr])
        p = class_proba(f, te.X[mte][:, cols], classes)
        out[name] = run_level_accuracy(p, te.groups[mte], te.y[mte], classes)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs/v6")
    ap.add_argument("--test", nargs="+", default=["anchor-test"])
    ap.add_argument("--keep", type=int, nargs="+", default=[50, 150, 400])
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--out", default="benchmarks/results/stable-features.json")
    a = ap.parse_args()
    tr = samples([f"{a.root}/{s}" for s in study.ANCHOR_TRAINING])
    tests = {t: samples([f"{a.root}/{t}"]) for t in a.test}
    ks = [*a.keep, tr.X.shape[1]]
    tasks = tr.meta["task"].astype(str)
    classes = np.unique(tr.y)
    rows = []
    for score_name, score in SCORES.items():
        folds = [(f"task left out: {t}", tr.subset(tasks != t), tr.subset(tasks == t),
                  tasks != t) for t in np.unique(tasks)]
        folds += [(f"test store: {n}", tr, te, np.ones(len(tasks), bool))
                  for n, te in tests.items()]
        for where, fit_on, test_on, m in folds:
            order = np.argsort(-score(tr.X[m], tr.y[m], tasks[m], classes))
            for k in ks:
                acc = accuracies(fit_on, test_on, order[:k], a.trees)
                rows.append({"score": score_name, "where": where, "features": k, **acc})
                print(score_name, "|", where, "|", k, "|",
                      " ".join(f"{v:.3f}" for v in acc.values()), flush=True)
    summary = []
    for score_name in SCORES:
        for k in ks:
            out = [r for r in rows if r["score"] == score_name and r["features"] == k]
            left = [r for r in out if r["where"].startswith("task left out")]
            summary.append({"score": score_name, "features": k, **{
                f"{c}, tasks left out (mean)": float(np.mean([r[c] for r in left]))
                for c in ("6 classes", "anchor's 4")},
                **{f"{c}, {r['where'][12:]}": r[c] for r in out if r not in left
                   for c in ("6 classes", "anchor's 4")}})
    print(study.table(summary, list(summary[0])))
    Path(a.out).write_text(json.dumps({"features": int(tr.X.shape[1]), "trees": a.trees,
                                       "view": "100 units, 10% noise, 11 time points, recorded",
                                       "observables": study.WITH_CHANGE, "rows": rows,
                                       "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
