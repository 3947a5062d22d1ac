"""Parameter scans: expand an experiment's `[scan]` table into runs, batch runs that differ only
in per-replica values into jobs, run the jobs on Dask, and keep a manifest so a rerun resumes.

One job per module:

    table      the `[scan]` table: axes, sampled keys, run count (`scan_spec`, `run_count`)
    expand     the runs: resolved single-run configurations and their ids (`expand`, `RunSpec`)
    jobs       planning: groups of batchable runs cut into jobs (`plan_jobs`, `Job`, `describe`)
    worker     what a worker runs: a job, each run returned as run-file bytes (`run_job`)
    folder     the scan folder: checks, lock, manifest, atomic writes of results
    cluster    the Dask client: embedded TLS LocalCluster, `--scheduler`, dask-jobqueue
    execute    the scan itself: check, connect, claim, submit, collect (`run_scan`)

See `lrsim.scan.table` for the table's syntax and `lrsim.scan.expand` for the order and ids of
runs.
"""

from lrsim.scan.execute import Plan, ScanSummary, check_workers, plan, run_scan
from lrsim.scan.expand import PER_REPLICA, RunSpec, expand
from lrsim.scan.folder import (
    EXPERIMENT_COPY,
    LOCK,
    MANIFEST,
    SUPERSEDED,
    experiment_digest,
    finished_runs,
)
from lrsim.scan.jobs import DEFAULT_MAX_GROUP, Job, describe, plan_jobs
from lrsim.scan.table import MAX_RUNS, Distribution, ScanSpec, run_count, scan_spec
from lrsim.scan.worker import Result, run_job

__all__ = [
    "DEFAULT_MAX_GROUP", "EXPERIMENT_COPY", "LOCK", "MANIFEST", "MAX_RUNS", "PER_REPLICA",
    "SUPERSEDED", "Distribution", "Job", "Plan", "Result", "RunSpec", "ScanSpec", "ScanSummary",
    "check_workers", "describe", "expand", "experiment_digest", "finished_runs", "plan",
    "plan_jobs", "run_count", "run_job", "run_scan", "scan_spec",
]
