"""`lrsim demo [--out DIR]`: the whole pipeline, small: scan the demo study
(`experiments/demo-study.toml`: 7 rules from 4 families x 2 architectures x learning rates x
seeds on digits) on the embedded Dask cluster into DIR/store, identify the rule, and write
DIR/report/report.html."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from lrsim.errors import LrsimError
from lrsim.outdir import claim

STUDY = "demo-study.toml"


def add(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("demo", help="a small rule-identification study end to end, then the "
                       "report (a few minutes on a laptop)")
    r.add_argument("--out", default="lrsim-demo", help="folder for store/ and report/ "
                   "(default: lrsim-demo); rerunning resumes the scan")
    r.add_argument("--workers", type=int, default=None,
                   help="Dask worker processes (default: cores)")
    r.add_argument("--study", default=None, help="experiment file to scan instead of the "
                   "shipped demo study")
    r.set_defaults(func=cmd_demo)


def study_file() -> Path:
    """The shipped demo study: `experiments/demo-study.toml` of the source tree."""
    import lrsim

    here = Path(lrsim.__file__).resolve()
    for base in (here.parents[2], Path.cwd()):
        path = base / "experiments" / STUDY
        if path.is_file():
            return path
    raise LrsimError(f"the demo study experiments/{STUDY} was not found next to the package "
                     f"or in the current folder; run from a source checkout or pass --study")


def _cores() -> int:
    """CPU cores this process may use (at most 8: the forests are small)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def run_demo(out: str | Path = "lrsim-demo", *, workers: int | None = None,
             study: str | Path | None = None, progress: bool = True) -> Path:
    """Scan the demo study into out/store (embedded Dask LocalCluster; resumable), then
    identify the rule into out/report; return the path of report.html."""
    from lrsim.commands.identify import print_summary, run_identify
    from lrsim.config import load
    from lrsim.scan import run_scan

    out = Path(out)
    path = Path(study) if study else study_file()
    load(path)  # a bad study file is refused before anything is written
    claim(out, "demo")  # refuses a folder holding files lrsim did not write
    start = time.perf_counter()
    summary = run_scan(path, out / "store", workers=workers, progress=progress)
    print(summary, flush=True)
    if summary.ok < 2:
        raise LrsimError(f"the demo scan finished only {summary.ok} run(s); see "
                         f"{out / 'store' / 'manifest.json'}")
    # the scan's workers are done: the random forests may use as many threads
    page, result = run_identify(out / "store", out / "report", quick=True,
                                progress="auto" if progress else "off",
                                jobs=workers or _cores())
    print_summary(result)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return page


def cmd_demo(args: argparse.Namespace) -> int:
    page = run_demo(args.out, workers=args.workers, study=args.study)
    print(f"report: {page.resolve()}")
    return 0
