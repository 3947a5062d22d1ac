"""`lrsim identify STORE --out REPORT_DIR`: identify the learning rule from a scan's
trajectories and write `report.html` (self-contained) and `results.json`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lrsim.contract import LABELS
from lrsim.errors import ConfigError
from lrsim.outdir import check_claim


def add(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("identify", help="identify the rule from a scan's trajectories; "
                       "write report.html and results.json")
    r.add_argument("store", help="folder of run files (from `lrsim scan` or `lrsim run --out`)")
    r.add_argument("--out", required=True, help="folder for report.html and results.json")
    r.add_argument("--label", default="rule", choices=LABELS, help="what to identify")
    r.add_argument("--holdout", metavar="KEY=VALUE",
                   help="also train on every run without KEY=VALUE and test on those with it "
                        "(e.g. architecture=64-64, task=digits, lr=0.01:0.1)")
    r.add_argument("--test", metavar="STORE2", help="also train on STORE, test on STORE2")
    r.add_argument("--classifiers", nargs="+", default=["linear", "forest", "temporal"],
                   metavar="NAME", help="linear, forest, temporal (default: all three)")
    r.add_argument("--observables", nargs="+", metavar="NAME",
                   help="variables to identify from (default: every measurable one all runs "
                        "record, e.g. weights activations activity_change and, in spiking "
                        "runs, rate cv_isi fano correlation synchrony ei_balance "
                        "ei_correlation; then alignment)")
    r.add_argument("--quick", action="store_true",
                   help="smaller hyperparameter grids, fewer permutations and sweep points")
    r.add_argument("--splits", type=int, default=10, help="repeated grouped splits (>= 10 "
                   "recommended; default 10)")
    r.add_argument("--permutations", type=int, default=None,
                   help="label permutations for the null (default 50, 10 with --quick)")
    r.add_argument("--seed", type=int, default=0, help="seed of the splits and classifiers")
    r.add_argument("--jobs", type=int, default=1, help="threads for the random forest")
    r.set_defaults(func=cmd_identify)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def open_store(path: str | Path) -> Any:
    """The store at `path` as one Dataset with a `run` dimension (`lrsim.store.open_scan`)."""
    from lrsim.store import open_scan

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"store '{path}' is not a folder of run files")
    return open_scan(path)


def run_identify(store: str | Path, out: str | Path, *, label: str = "rule",
                 holdout: str | None = None, test: str | Path | None = None,
                 classifiers: Sequence[str] = ("linear", "forest", "temporal"),
                 quick: bool = False, splits: int = 10, permutations: int | None = None,
                 seed: int = 0, jobs: int = 1, progress: bool = True,
                 observables: Sequence[str] | None = None) -> tuple[Path, dict]:
    """Open the store(s), run `lrsim.analysis.evaluation.identify`, write the report; return
    (path of report.html, results)."""
    from lrsim.analysis.evaluation import identify
    from lrsim.analysis.report import write_report

    if label not in LABELS:
        raise ConfigError(f"--label must be one of {', '.join(LABELS)} (got {label!r})")
    if splits < 2:
        raise ConfigError(f"--splits must be >= 2 (got {splits})")
    if permutations is not None and permutations < 1:
        raise ConfigError(f"--permutations must be >= 1 (got {permutations})")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {jobs})")
    out = Path(out)
    check_claim(out, "report")
    ds = open_store(store)
    test_ds = open_store(test) if test is not None else None
    if test_ds is not None:
        clash = {str(r) for r in ds["run"].values} & {str(r) for r in test_ds["run"].values}
        if clash:
            raise ConfigError(f"--test store shares {len(clash)} run id(s) with the training "
                              f"store (e.g. {sorted(clash)[0]}); use a store of other runs")
    with _torch_threads(1):
        results = identify(ds, label=label, classifiers=list(classifiers), holdout=holdout,
                           test_ds=test_ds, quick=quick, n_splits=splits,
                           n_permutations=permutations, random_state=seed, n_jobs=jobs,
                           progress=progress, store=str(store),
                           test_store="" if test is None else str(test),
                           observables=observables)
    return write_report(results, out), results


def cmd_identify(args: argparse.Namespace) -> int:
    page, results = run_identify(args.store, args.out, label=args.label, holdout=args.holdout,
                                 test=args.test, classifiers=args.classifiers, quick=args.quick,
                                 splits=args.splits, permutations=args.permutations,
                                 seed=args.seed, jobs=args.jobs, progress=sys.stderr.isatty(),
                                 observables=args.observables)
    print_summary(results)
    print(f"report: {page}")
    print(f"numbers: {page.parent / 'results.json'}")
    return 0


def print_summary(results: dict) -> None:
    """A few lines: accuracy per classifier, chance, null, control, protocol sentence."""
    print(f"{results['n_runs']} runs, {results['n_samples']} samples (run x layer), "
          f"{len(results['classes'])} classes of {results['label']}; chance "
          f"{results['chance']['uniform']:.3f}, permutation null "
          f"{results['null']['mean']:.3f} (p = {results['null']['p_value']:.3f})")
    left = results.get("observables_left_out") or {}
    if left:
        print(f"  recorded by only some runs, left out: "
              f"{', '.join(f'{o} ({n} lack it)' for o, n in left.items())}")
    for clf, m in results["main"].items():
        line = f"  {clf:<9} accuracy {m['accuracy_mean']:.3f} +/- {m['accuracy_sem']:.3f}"
        if results.get("control"):
            c = results["control"][clf]
            line += f"   loss/accuracy only {c['accuracy_mean']:.3f} +/- {c['accuracy_sem']:.3f}"
        print(line)
    for h in results.get("generalisation", []) + ([results["holdout"]]
                                                  if results.get("holdout") else []):
        for clf, m in h["results"].items():
            print(f"  held out {h['key']}={h['value']}: {clf} {m['accuracy']:.3f}")
    print(results["protocol"]["sentence"])
