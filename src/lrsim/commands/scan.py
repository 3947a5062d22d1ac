"""`lrsim scan FILE [KEY=VALUE ...] --out DIR`: expand the experiment's [scan] table and run it
on Dask (embedded TLS cluster, a running scheduler, or a batch system through dask-jobqueue)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  lrsim scan study.toml --dry-run                    count, groups, jobs, the first runs
  lrsim scan study.toml --out runs/study             embedded cluster, one worker per core
  lrsim scan study.toml --out runs/study train.steps=500 scan.seed={range=2}
  lrsim scan study.toml --out runs/study --scheduler tcp://10.0.0.1:8786 \\
      --tls-ca-file ca.pem --tls-cert client.pem --tls-key client.key
  lrsim scan study.toml --out runs/study --cluster slurm cluster.queue=cpu cluster.jobs=8
  lrsim scan study.toml --cluster slurm --dry-run    + the batch job script

Rerunning the same command resumes: finished runs are skipped. Workers send each finished
run back; only this process writes into DIR (no shared file system needed). Cluster settings
live in the file's [cluster] table (queue, account, walltime, cores, memory, processes, jobs,
maximum_jobs, job_extra_directives, job_script_prologue, local_directory, ...) or in
cluster.KEY=VALUE overrides.
"""


def add(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("scan", help="run a parameter scan on Dask (resumable)",
                       description="Expand FILE's [scan] table into runs, batch them into jobs "
                       "and run them on an embedded Dask LocalCluster (or --scheduler, or "
                       "--cluster).", epilog=EPILOG)
    s.add_argument("file", help="experiment file (TOML) with a [scan] table")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="set a key of the file, e.g. train.steps=500 or cluster.queue=cpu")
    s.add_argument("--out", help="scan folder: one file per run, manifest.json (required "
                   "unless --dry-run)")
    s.add_argument("--dry-run", action="store_true",
                   help="list the expansion (count, groups, jobs, first runs); run nothing")
    s.add_argument("--workers", type=int, default=None,
                   help="worker processes of the embedded cluster (default: CPU cores)")
    s.add_argument("--scheduler", default=None,
                   help="use a running Dask cluster: tcp://HOST:PORT, tls://HOST:PORT or a "
                   "scheduler file")
    s.add_argument("--tls-ca-file", default=None, metavar="PEM",
                   help="with --scheduler: the certificate authority of the cluster")
    s.add_argument("--tls-cert", default=None, metavar="PEM",
                   help="with --scheduler: this client's certificate")
    s.add_argument("--tls-key", default=None, metavar="PEM",
                   help="with --scheduler: this client's private key")
    s.add_argument("--cluster", default=None, metavar="KIND",
                   help="start workers through a batch system with dask-jobqueue: slurm, pbs, "
                   "sge, lsf (or local: the same machinery on this machine); settings in "
                   "[cluster]; needs lrsim[cluster]")
    s.add_argument("--dashboard", nargs="?", const="127.0.0.1:8787", default=None,
                   metavar="ADDRESS", help="serve Dask's dashboard (default: off; with no "
                   "ADDRESS on 127.0.0.1:8787; needs bokeh)")
    s.add_argument("--force", action="store_true",
                   help="run even if DIR holds the scan of a changed experiment file")
    s.add_argument("--max-group", type=int, default=None, metavar="K",
                   help="most runs batched into one job (default: [scan] max_group, else 32)")
    s.set_defaults(func=cmd_scan)


def _dry_run(args: argparse.Namespace) -> int:
    import tempfile

    from lrsim.scan import describe, finished_runs, plan, plan_jobs
    from lrsim.scan.cluster import Where, jobqueue

    p = plan(Path(args.file), args.overrides or [], args.max_group)
    exp, runs, cap = p.exp, p.runs, p.cap
    print(describe(runs, plan_jobs(runs, cap)))
    if args.out and Path(args.out).is_dir():
        done = finished_runs(Path(args.out)) & {r.run_id for r in runs}
        print(f"{len(done)} of {len(runs)} runs already finished in {args.out}")
    kind = args.cluster or (exp.cluster.kind if exp.cluster else None)
    if kind:
        Where(cluster=kind, spec=exp.cluster).check()
        # the credentials of a dry run are made in a temporary folder and removed at once
        with tempfile.TemporaryDirectory(prefix="lrsim-tls-") as tls, \
                jobqueue(kind, exp.cluster, tls_dir=Path(tls)) as cluster:
            print(f"\nbatch job script ({kind}; {(exp.cluster.jobs if exp.cluster else 1)} "
                  f"job(s); a scan makes new TLS credentials):\n{cluster.job_script()}")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from lrsim.errors import ConfigError
    from lrsim.scan import run_scan

    if args.max_group is not None and args.max_group < 1:
        raise ConfigError(f"--max-group must be >= 1, got {args.max_group}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.dry_run:
        return _dry_run(args)
    if not args.out:
        raise ConfigError("lrsim scan needs --out DIR (the scan folder), or --dry-run")
    summary = run_scan(Path(args.file), Path(args.out), workers=args.workers,
                       scheduler=args.scheduler, cluster=args.cluster, force=args.force,
                       progress=False if args.quiet else None, max_group=args.max_group,
                       overrides=args.overrides or [], dashboard=args.dashboard,
                       tls_ca_file=args.tls_ca_file, tls_cert=args.tls_cert,
                       tls_key=args.tls_key)
    print(summary)
    for rid, msg in summary.failures[:10]:
        print(f"  failed {rid}: {msg}", file=sys.stderr)
    if len(summary.failures) > 10:
        print(f"  ... {len(summary.failures) - 10} more failures in the manifest",
              file=sys.stderr)
    return summary.exit_code
