"""`lrsim scan FILE --out DIR`: expand the experiment's [scan] table and run it on Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("scan", help="run a parameter scan on Dask (resumable)",
                       description="Expand FILE's [scan] table into runs, batch them into jobs "
                       "and run them on an embedded Dask LocalCluster (or --scheduler). "
                       "Rerunning the same command resumes: finished runs are skipped.")
    s.add_argument("file", help="experiment file (TOML) with a [scan] table")
    s.add_argument("--out", help="scan folder: one file per run, manifest.json (required "
                   "unless --dry-run)")
    s.add_argument("--dry-run", action="store_true",
                   help="list the expansion (count, groups, jobs, first runs); run nothing")
    s.add_argument("--workers", type=int, default=None,
                   help="worker processes of the embedded cluster (default: CPU cores)")
    s.add_argument("--scheduler", default=None,
                   help="use a running Dask cluster: tcp://HOST:PORT or a scheduler file")
    s.add_argument("--force", action="store_true",
                   help="run even if DIR holds the scan of a changed experiment file")
    s.add_argument("--max-group", type=int, default=None, metavar="K",
                   help="most runs batched into one job (default: [scan] max_group, else 32)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    from lrsim.config import load
    from lrsim.errors import ConfigError
    from lrsim.scan import (
        DEFAULT_MAX_GROUP,
        describe,
        expand,
        finished_runs,
        plan_jobs,
        run_scan,
        scan_spec,
    )

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.max_group is not None and args.max_group < 1:
        raise ConfigError(f"--max-group must be >= 1, got {args.max_group}")
    if args.workers is not None and args.scheduler:
        raise ConfigError("--workers sizes the embedded cluster; with --scheduler the running "
                          "cluster's workers are used (give one or the other)")
    if args.dry_run:
        exp = load(args.file)
        runs = expand(exp, args.file)
        cap = args.max_group or scan_spec(exp).max_group or DEFAULT_MAX_GROUP
        print(describe(runs, plan_jobs(runs, cap)))
        if args.out and Path(args.out).is_dir():
            done = finished_runs(Path(args.out)) & {r.run_id for r in runs}
            print(f"{len(done)} of {len(runs)} runs already finished in {args.out}")
        return 0
    if not args.out:
        raise ConfigError("lrsim scan needs --out DIR (the scan folder), or --dry-run")
    summary = run_scan(Path(args.file), Path(args.out), workers=args.workers,
                       scheduler=args.scheduler, force=args.force, progress=not args.quiet,
                       max_group=args.max_group)
    print(summary)
    for rid, msg in summary.failures[:10]:
        print(f"  failed {rid}: {msg}", file=sys.stderr)
    if len(summary.failures) > 10:
        print(f"  ... {len(summary.failures) - 10} more failures in the manifest",
              file=sys.stderr)
    return summary.exit_code
