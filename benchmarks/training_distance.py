"""Does the distance of held-out networks from the training networks (`lrsim.analysis.novelty`,
what `lrsim identify --test` reports) say when a held-out figure will be low? (issue 11)

For each held-out set of the anchor study, the distance of its samples from the training
samples in the headline's feature space, its rank among the training conditions left out in
turn, and the held-out accuracy of a random forest on it (6 rule x optimizer classes, accuracy
per network; seed 0): each training task left out in turn (trained on the other five tasks)
and each test store (trained on all four training stores). Features: the headline view of
`identification_study.py` (100 units per layer, 10% noise, 11 time points, recorded) of the
measurable observables with `change_alignment`. Spearman's rank correlation between distance
and accuracy over the held-out sets.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_distance.py --root runs/v6 \\
        --test anchor-test anchor-test2 anchor-test2-xor \\
        --out benchmarks/results/training-distance.json
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
from scipy.stats import spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import identification_study as study  # noqa: E402

from lrsim.analysis.crossval import class_proba, run_level_accuracy  # noqa: E402
from lrsim.analysis.generalisation import GENERALISATION_KEYS  # noqa: E402
from lrsim.analysis.novelty import training_distance  # noqa: E402


def samples(paths: list[str]) -> Any:
    return study.headline_samples(paths, meta_keys=GENERALISATION_KEYS)


def accuracy(tr: Any, te: Any, trees: int) -> float:
    classes = np.unique(tr.y)
    f = study.forest(trees, seed=0).fit(np.nan_to_num(tr.X), tr.y)
    return run_level_accuracy(class_proba(f, np.nan_to_num(te.X), classes), te.groups, te.y,
                              classes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs/v6")
    ap.add_argument("--test", nargs="+", default=["anchor-test"])
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/training-distance.json")
    a = ap.parse_args()
    tr = samples([f"{a.root}/{s}" for s in study.ANCHOR_TRAINING])
    tasks = tr.meta["task"].astype(str)
    sets = [(f"task left out: {t}", tr.subset(tasks != t), tr.subset(tasks == t))
            for t in np.unique(tasks)]
    sets += [(f"test store: {t}", tr, samples([f"{a.root}/{t}"])) for t in a.test]
    rows = []
    for name, fit_on, held in sets:
        d = training_distance(fit_on, held, GENERALISATION_KEYS)
        ref = list(d.conditions.values())
        rows.append({"held out": name, "distance": d.test, "rank": d.rank,
                     "observables": d.observables,
                     "conditions": len(ref), "reference median": float(np.median(ref)),
                     "reference range": [min(ref), max(ref)],
                     "accuracy (6 classes)": accuracy(fit_on, held, a.trees),
                     "networks": int(held.n_runs)})
        print(name, "|", d.text, f"| accuracy {rows[-1]['accuracy (6 classes)']:.3f}",
              flush=True)
    acc = [r["accuracy (6 classes)"] for r in rows]
    corr = {k: [float(v) for v in spearmanr([r[k] for r in rows], acc)] for k in ("distance",
                                                                                 "rank")}
    print("Spearman with accuracy (rho, p):", corr)
    print(study.table(rows, ["held out", "distance", "rank", "reference median",
                             "accuracy (6 classes)", "networks"]))
    Path(a.out).write_text(json.dumps({"trees": a.trees, "observables": study.WITH_CHANGE,
                                       "view": "100 units, 10% noise, 11 time points, recorded",
                                       "rows": rows, "spearman": corr}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
