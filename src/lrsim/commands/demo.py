"""`lrsim demo [KEY=VALUE ...] [--out DIR]`: the whole pipeline, small: scan the demo study
(`experiments/demo-study.toml`: 7 rules from 4 families x 2 architectures x learning rates x
seeds on digits) on the embedded Dask cluster into DIR/store, identify the rule, and write
DIR/report/report.html."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

from lrsim.errors import LrsimError
from lrsim.outdir import check_claim, claim

STUDY = "demo-study.toml"
EPILOG = """\
examples:
  lrsim demo                                 -> lrsim-demo/report/report.html
  lrsim demo --out my-demo --workers 2
  lrsim demo train.steps=300                 a shorter study (overrides of the study file)
  lrsim demo --study experiments/other.toml
"""


def add(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("demo", help="a small rule-identification study end to end, then the "
                       "report (a few minutes on a laptop)", epilog=EPILOG)
    r.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="set a key of the study file, e.g. train.steps=300")
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
             study: str | Path | None = None, progress: bool | None = None,
             overrides: Sequence[str] = ()) -> Path:
    """Scan the demo study into out/store (embedded Dask LocalCluster; resumable), then
    identify the rule into out/report; return the path of report.html."""
    from lrsim.commands.identify import print_summary, run_identify
    from lrsim.errors import ConfigError
    from lrsim.scan import check_workers, plan, run_scan

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    path = Path(study) if study else study_file()
    # a bad study file, override or worker count is refused before anything is written
    check_workers(workers, plan(path, overrides).largest_job_bytes)
    check_claim(out, "demo")
    check_claim(out / "report", "report", "--out (its report/)")
    claim(out, "demo")  # refuses a folder holding files lrsim did not write
    start = time.perf_counter()
    summary = run_scan(path, out / "store", workers=workers, progress=progress,
                       overrides=overrides)
    print(summary, flush=True)
    if summary.ok < 2:
        raise LrsimError(f"the demo scan finished only {summary.ok} run(s); see "
                         f"{out / 'store' / 'manifest.json'}")
    # the scan's workers are done: the random forests may use as many threads
    page, result = run_identify(out / "store", out / "report", quick=True,
                                progress=False if progress is False else None,
                                jobs=workers or _cores())
    print_summary(result)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return page


def cmd_demo(args: argparse.Namespace) -> int:
    page = run_demo(args.out, workers=args.workers, study=args.study,
                    progress=False if args.quiet else None, overrides=args.overrides or [])
    print(f"report: {page.resolve()}")
    return 0
