"""What a Dask worker runs: one job (a batch of runs) trained in one call, each finished run
sent back to the client as the bytes of its netCDF run file.

Workers write nothing where the client can see it and need no shared file system: a run file is
built in the worker's own temporary folder, read back as bytes and deleted; the client writes
those bytes atomically into the scan folder (`lrsim.scan.folder.write_result`). Results are
plain data (a dict of numbers and strings, and bytes), never a pickled user object.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrsim.config import Experiment
from lrsim.scan.expand import RunSpec
from lrsim.scan.jobs import Job


@dataclass(frozen=True)
class Result:
    """One run's outcome: its manifest record, and for a finished run (ok or diverged) the
    bytes of its run file `<run_id>.nc`."""

    record: dict[str, Any]
    data: bytes | None = None


def record(run: RunSpec, status: str, error: str | None = None,
           attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest entry fields a job reports for one run."""
    attrs = attrs or {}

    def num(x: Any) -> float | None:
        try:
            return None if x is None or not np.isfinite(float(x)) else float(x)
        except (TypeError, ValueError):
            return None

    return {"run_id": run.run_id, "status": status, "error": error,
            "final_loss": num(attrs.get("final_loss")),
            "test_accuracy": num(attrs.get("test_accuracy"))}


def summary_dataset(summary: dict[str, Any], exp: Experiment, run: RunSpec) -> Any:
    """The run file when the run recorded no trajectory (observe disabled, or no observer):
    final loss and accuracy at the last step, with the contract's attributes."""
    from lrsim.analysis.observer import final_dataset
    from lrsim.rules import rules

    return final_dataset(exp, run.replica(), 0,
                         rule_family=rules.entry(exp.rule.name).info["family"],
                         status=summary["status"], diverged_step=summary.get("diverged_step"),
                         final_loss=summary.get("final_loss"),
                         test_accuracy=summary.get("test_accuracy"))


def stamp(ds: Any, run: RunSpec) -> None:
    """The run's own identity on its Dataset (the batched experiment carries the first run's)."""
    ds.attrs.update({"run_id": run.run_id, "seed": int(run.seed), "lr": float(run.lr),
                     "weight_decay": float(run.weight_decay),
                     "init_scale": float(run.init_scale),
                     "config": json.dumps(run.config, sort_keys=True)})


def file_bytes(ds: Any) -> bytes:
    """The run file `lrsim.store.write_run` writes for `ds`, as bytes (built in a private
    temporary folder of this process, which is removed)."""
    from lrsim.store import write_run

    with tempfile.TemporaryDirectory(prefix="lrsim-run-") as tmp:
        return write_run(ds, Path(tmp)).read_bytes()


def run_job(job: Job) -> list[Result]:
    """Train a job's runs as one batch; return each run's record and run file bytes.

    An exception is caught and returned as `failed` records with its message, so Dask retries
    only lost workers, never a job that raises.
    """
    import torch

    torch.set_num_threads(1)
    from lrsim.experiment import run_experiment

    runs = list(job.runs)
    try:
        exp = job.experiment(runs)
        outcome = run_experiment(exp, [r.replica() for r in runs], observe=True)
    except Exception as err:  # noqa: BLE001 - recorded per run, the scan goes on
        msg = f"{type(err).__name__}: {err}"
        return [Result(record(r, "failed", msg)) for r in runs]
    datasets = list(outcome.datasets)
    results = []
    for k, run in enumerate(runs):
        summary = outcome.summaries[k]
        try:
            ds = datasets[k] if len(datasets) == len(runs) else summary_dataset(summary, exp, run)
            stamp(ds, run)
            status = str(ds.attrs.get("status", summary["status"]))
            if status == "failed":
                results.append(Result(record(run, "failed", "the run reported status 'failed'",
                                             ds.attrs)))
                continue
            results.append(Result(record(run, status, None, ds.attrs), file_bytes(ds)))
        except Exception as err:  # noqa: BLE001
            results.append(Result(record(run, "failed", f"{type(err).__name__}: {err}")))
    return results
