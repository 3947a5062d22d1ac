"""Cross-substrate rule identification: train on rate networks, test on spiking networks.

    .venv/bin/python benchmarks/cross_substrate.py      # runs/anchor-train -> runs/spiking-identify

The classifier (random forest, one sample per (network, layer), run accuracy from the layers'
averaged class probabilities) is trained on the rate store's backprop and feedback-alignment
networks and tested on the spiking store's (experiments/spiking-identify.toml: the same two
rules with Adam through a balanced E/I spiking layer). Only observables both substrates record
the same way enter: weights, activations, activity change, and the geometry a spiking window
gives (dimensionality, rsa_layer, coupling; the similarities across time need the same stimuli
at every time point, which spiking windows do not have). Reported for raw features and features
relative to their value before learning, at every (units, noise) view both stores share:

- label rule (2 classes, chance 50%) trained on the rate networks of both optimizers, and
  rule_optimizer (backprop+adam vs feedback_alignment+adam) trained on the Adam runs only;
- within-substrate references: the same classifier's grouped CV on the rate store, and a
  leave-one-seed-out CV on the spiking store itself (can the spiking runs be told apart at all
  from these observables?);
- the loss / accuracy control on the spiking store.

Writes runs/cross-substrate.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from identification_study import (  # noqa: E402
    _confusion,
    _get,
    forest,
    n_runs,
    open_store,
    subset,
    table,
)

from lrsim.analysis.evaluation import (  # noqa: E402
    RepeatedStratifiedGroupSplit,
    cross_validate,
    fit_and_score,
)
from lrsim.analysis.features import TrajectoryFeatures, make_samples  # noqa: E402

SHARED = ["weights", "activations", "activity_change", "dimensionality", "rsa_layer",
          "coupling"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", default="runs/anchor-train")
    p.add_argument("--spiking", default="runs/spiking-identify")
    p.add_argument("--out", default="runs/cross-substrate.json")
    p.add_argument("--trees", type=int, default=200)
    args = p.parse_args()
    t0, c0 = time.time(), time.process_time()
    rate = open_store(args.rate)
    spk = open_store(args.spiking)
    rate = subset(rate, "rule", ("backprop", "feedback_alignment"))
    obs = [o for o in SHARED if o in rate.data_vars and o in spk.data_vars]
    results: dict[str, Any] = {"rate": args.rate, "spiking": args.spiking,
                               "spiking_status": n_runs(args.spiking), "observables": obs,
                               "rows": []}
    rows = []
    with threadpool_limits(limits=1):
        for label, train in (("rule", rate),
                             ("rule_optimizer", subset(rate, "optimizer", ("adam",)))):
            for units, noise in ((0, 0.0), (100, 0.1), (30, 0.3)):
                for ref in ("none", "initial"):
                    for name, o in (("measurable", obs), ("control", ["loss", "test_accuracy"])):
                        f_tr = TrajectoryFeatures(o, units=units, noise=noise, reference=ref)
                        s_tr = make_samples(train, f_tr, label)
                        f_te = TrajectoryFeatures(o, units=units, noise=noise,
                                                  reference=ref).fit(spk)
                        s_te = make_samples(spk, f_te, label)
                        classes = np.unique(np.concatenate([s_tr.y, s_te.y]))
                        r = fit_and_score(forest(args.trees), s_tr, s_te, classes)
                        r = r[0] if isinstance(r, tuple) else r
                        cv_spk = cross_validate(s_te, forest(args.trees),
                                                RepeatedStratifiedGroupSplit(5, 0.25, 0))
                        row = {"label": label, "units": units, "noise": noise,
                               "features": ref, "observables": name,
                               "rate_to_spiking_run": _get(r, "run_accuracy"),
                               "rate_to_spiking_layer": _get(r, "accuracy"),
                               "within_spiking_cv_run": _get(cv_spk, "run_accuracy_mean",
                                                             "run_accuracy"),
                               "confusion": _confusion(r), "classes": list(map(str, classes)),
                               "n_rate_runs": int(s_tr.n_runs),
                               "n_spiking_runs": int(s_te.n_runs)}
                        rows.append(row)
                        print(f"[{time.time() - t0:6.0f} s] {label} u={units} z={noise} "
                              f"{ref} {name}: {row['rate_to_spiking_run']:.3f}",
                              file=sys.stderr, flush=True)
    results["rows"] = rows
    print(table(rows, ["label", "units", "noise", "features", "observables",
                       "rate_to_spiking_run", "rate_to_spiking_layer", "within_spiking_cv_run"]))
    results["compute"] = {"wall_s": round(time.time() - t0, 1),
                          "cpu_s": round(time.process_time() - c0, 1)}
    Path(args.out).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
