"""Running a scan: check everything, connect, then train the pending runs and keep the folder.

Order (each step before any of the next, so bad input costs nothing and writes nothing):
expand and check the experiment (run count, memory of the largest job), check the folder
(read-only), check the cluster choice (a given scheduler is probed), start or connect the
cluster, claim and lock the folder, then submit the jobs. Each finished run comes back from its
worker as bytes and is written here, atomically; the manifest is rewritten after every job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrsim.budget import check_memory, human, memory_limit
from lrsim.config import Experiment, load_with_text
from lrsim.errors import ConfigError, Interrupted, LrsimError
from lrsim.outdir import claim
from lrsim.progress import Progress
from lrsim.scan import folder
from lrsim.scan.cluster import Where, client_for
from lrsim.scan.expand import RunSpec, expand
from lrsim.scan.jobs import DEFAULT_MAX_GROUP, Job, plan_jobs
from lrsim.scan.table import scan_spec
from lrsim.scan.worker import Result, record, run_job

WORKER_BASE_BYTES = 512 * 2**20  # a worker process with torch, xarray and Dask imported
log = logging.getLogger("lrsim")


@dataclass
class ScanSummary:
    """What a scan did: counts of runs finished now (ok / diverged / failed), runs skipped
    because an earlier invocation finished them, jobs submitted, and the failures."""

    out: Path
    total: int
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    skipped: int = 0
    jobs: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when no run failed, else 1 (diverged runs are results, not failures)."""
        return 1 if self.failed else 0

    @property
    def finished(self) -> int:
        return self.ok + self.diverged + self.skipped

    def __str__(self) -> str:
        return (f"scan: {self.total} runs: {self.ok} ok, {self.diverged} diverged, "
                f"{self.failed} failed, {self.skipped} skipped (already done); {self.jobs} jobs "
                f"in {self.seconds:.1f} s; manifest {self.out / folder.MANIFEST}")


def group_cap(exp: Experiment, max_group: int | None) -> int:
    cap = max_group or scan_spec(exp).max_group or DEFAULT_MAX_GROUP
    if cap < 1:
        raise ConfigError(f"--max-group must be >= 1, got {cap}")
    return cap


@dataclass
class Plan:
    """A checked scan: the experiment, its effective text (the file, or the file with the
    overrides set), its runs, the group cap, and the memory estimate of its largest job."""

    exp: Experiment
    text: str
    runs: list[RunSpec]
    cap: int
    largest_job_bytes: int


def plan(path: Path, overrides: list[str] | tuple[str, ...] = (),
         max_group: int | None = None) -> Plan:
    """Load and expand the experiment, and check that its largest job fits in memory."""
    exp, text = load_with_text(path, overrides)
    runs = expand(exp, str(path))
    cap = group_cap(exp, max_group)
    largest = 0
    for job in plan_jobs(runs, cap):
        need = check_memory(job.experiment(), f"{path}: a job of {len(job.runs)} batched runs")
        largest = max(largest, need)
    log.info("%s: %d runs in %d groups, at most %d per job; largest job about %s", path,
             len(runs), len({r.group for r in runs}), cap, human(largest))
    return Plan(exp, text, runs, cap, largest)


def check_workers(workers: int | None, largest_job_bytes: int,
                  limit: int | None = None) -> None:
    """Refuse an embedded cluster whose workers, each holding a job, cannot fit in memory
    together (`WORKER_BASE_BYTES` per process for its imports, plus the largest job)."""
    n = workers or os.cpu_count() or 1
    have = memory_limit() if limit is None else limit
    per = WORKER_BASE_BYTES + largest_job_bytes
    if n * per > have:
        fit = max(have // per, 0)
        hint = f"use --workers {fit}" if fit >= 1 else "use a smaller [scan] max_group"
        raise ConfigError(f"{n} workers need about {human(n * per)} of memory ({n} x "
                          f"({human(WORKER_BASE_BYTES)} per process + {human(largest_job_bytes)}"
                          f" per job)); this machine has {human(have)}: {hint}")


def run_scan(path: str | Path, out: str | Path, *, workers: int | None = None,
             scheduler: str | None = None, cluster: str | None = None,
             force: bool = False, progress: bool | None = None, max_group: int | None = None,
             overrides: list[str] | tuple[str, ...] = (), dashboard: str | None = None,
             tls_ca_file: str | None = None, tls_cert: str | None = None,
             tls_key: str | None = None) -> ScanSummary:
    """Expand the experiment file at `path` (with `key=value` `overrides`), run the runs not
    yet in `out` on Dask, write one file per run and `out/manifest.json`.

    The cluster: an embedded TLS-secured LocalCluster of `workers` processes (default), a
    running `scheduler`, or a dask-jobqueue `cluster` kind ('slurm', 'pbs', 'sge', 'lsf',
    'local') with the experiment's `[cluster]` settings. Resumes: runs whose files exist are
    skipped. Refuses an `out` that holds the scan of a different experiment unless `force`. A
    job that raises marks its runs `failed` (with the message) and the others go on; a worker
    that dies is replaced and its job rerun by Dask. `progress`: None picks a bar in a terminal
    or notebook and plain lines otherwise; False shows none.
    """
    start = time.perf_counter()
    path, out = Path(path), Path(out).expanduser().absolute()
    p = plan(path, overrides, max_group)
    exp, text, runs, cap = p.exp, p.text, p.runs, p.cap
    spec = exp.cluster
    kind = cluster or (spec.kind if spec is not None else None)
    where = Where(workers=workers, scheduler=scheduler, cluster=kind, spec=spec,
                  tls_ca_file=tls_ca_file, tls_cert=tls_cert, tls_key=tls_key,
                  dashboard=dashboard)
    where.check()
    if not scheduler and not kind:
        check_workers(workers, p.largest_job_bytes)
    folder.check(out, str(path), exp, force)
    summary = ScanSummary(out, len(runs))
    done = folder.finished_runs(out) if out.is_dir() else set()
    pending = [r for r in runs if r.run_id not in done]
    log.info("%s: %d of %d runs to do", out, len(pending), len(runs))
    connect = client_for(where) if pending else contextlib.nullcontext((None, 1))
    with connect as (client, slots):
        claim(out, "scan")
        with folder.locked(out):
            previous = folder.prepare(out, text, exp, runs)
            manifest = folder.Manifest(out, str(path), exp, runs, list(overrides))
            done = folder.finished_runs(out)
            for r in runs:
                if r.run_id in done:
                    old = previous.get(r.run_id)
                    rec = (old if old and old.get("status") in ("ok", "diverged")
                           else folder.done_record(out, r))
                    manifest.update(rec, old.get("job") if old else None)
                    summary.skipped += 1
            pending = [r for r in runs if r.run_id not in done]
            manifest.save()
            if pending:
                jobs = plan_jobs(pending, cap, min_jobs=slots)
                summary.jobs = len(jobs)
                _execute(client, jobs, out, manifest, summary, progress)
    summary.seconds = time.perf_counter() - start
    return summary


def _take(results: list[Result], out: Path, job: Job, manifest: folder.Manifest,
          summary: ScanSummary) -> int:
    """Write a job's finished runs into `out`, update the manifest and the counts."""
    by_id = {r.run_id: r for r in job.runs}
    for res in results:
        rec = dict(res.record)
        run = by_id.get(rec.get("run_id"))
        if run is None:
            continue
        if rec["status"] in ("ok", "diverged"):
            try:
                folder.write_result(out, run.run_id, res.data or b"")
            except (LrsimError, OSError) as err:
                rec = record(run, "failed", f"cannot write the run file: {err}")
        manifest.update(rec, job.index)
        st = rec["status"]
        if st == "failed":
            summary.failed += 1
            summary.failures.append((rec["run_id"], rec["error"] or ""))
        elif st == "diverged":
            summary.diverged += 1
        else:
            summary.ok += 1
    manifest.save()
    return len(results)


def _execute(client: Any, jobs: list[Job], out: Path, manifest: folder.Manifest,
             summary: ScanSummary, progress: bool | None) -> None:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = {client.submit(run_job, job, key=f"lrsim-job-{job.index}-{token}",
                             pure=False, retries=0): job for job in jobs}
    bar = Progress(summary.total, "scan", "run", initial=summary.skipped,
                   enabled=progress)
    remaining = sum(len(j.runs) for j in jobs)
    try:
        for fut in as_completed(futures):
            job = futures.pop(fut)
            try:
                results = fut.result()
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: every worker died
                msg = f"{type(err).__name__}: {err}"
                results = [Result(record(r, "failed", msg)) for r in job.runs]
            n = _take(results, out, job, manifest, summary)
            fut.release()
            remaining -= len(job.runs)
            bar.update(n, f"ok {summary.ok}, diverged {summary.diverged}, "
                          f"failed {summary.failed}, remaining {remaining}")
    except KeyboardInterrupt:
        bar.abandon()
        raise Interrupted(f"interrupted: {summary.finished} of {summary.total} runs are in "
                          f"{out}; rerun the same command to resume") from None
    finally:
        bar.close()
        for fut in futures:
            fut.cancel()
