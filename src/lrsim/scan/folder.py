"""The scan folder: run files `<run_id>.nc`, `manifest.json`, `experiment.toml`, a lock.

    check(...)          read-only: may this scan use the folder? (before any work)
    locked(out)         one writer at a time (`fcntl` lock on `.lrsim-scan.lock`)
    prepare(...)        tidy half-written files, move superseded runs, copy the experiment
    Manifest            the expanded scan with each run's status, rewritten atomically
    write_result(...)   a finished run's bytes from a worker, checked and renamed into place

Only the client writes here: workers send their results back (`lrsim.scan.worker`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lrsim.config import Experiment, run_config
from lrsim.errors import LrsimError
from lrsim.outdir import RUN_FILE, check_claim, remove_own_temporaries, write_atomic
from lrsim.scan.expand import RunSpec

MANIFEST = "manifest.json"
EXPERIMENT_COPY = "experiment.toml"
LOCK = ".lrsim-scan.lock"
SUPERSEDED = "superseded"


def experiment_digest(exp: Experiment) -> str:
    """What 'the same experiment' means for resuming: the resolved file, scan table included
    (comments, formatting and the `[cluster]` table do not count)."""
    data = run_config(exp)
    data["scan"] = exp.resolved().get("scan")
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()


def finished_runs(out: Path) -> set[str]:
    """Run ids whose files are complete in `out` (`lrsim.store.finished_runs`)."""
    from lrsim.store import finished_runs as finished

    return set(finished(out))


def _read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _lock_is_held(out: Path) -> bool:
    try:
        fh = open(out / LOCK)  # noqa: SIM115 - read-only: creates nothing
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _busy(out: Path) -> LrsimError:
    return LrsimError(f"another `lrsim scan` is writing to {out}; wait for it to finish or use "
                      "another --out directory")


def check(out: Path, source: str, exp: Experiment, force: bool) -> None:
    """Refuse, writing nothing, a folder this scan may not use: files lrsim did not write, a
    folder that cannot be written, a scan of another experiment (unless `force`), run files
    without a manifest (unless `force`), or a scan still running there."""
    check_claim(out, "scan")
    if not out.is_dir():
        return
    old = _read_manifest(out)
    if old is not None:
        if old.get("experiment_digest") != experiment_digest(exp) and not force:
            raise LrsimError(
                f"{out} holds a scan of a different experiment (from "
                f"'{old.get('experiment', '?')}'); '{source}' has changed since. Use a new --out "
                f"directory, or --force to adopt the new file (files of runs no longer in the "
                f"scan move to {out / SUPERSEDED})")
    elif any(out.glob("*.nc")) and not force:
        raise LrsimError(f"{out} holds run files but no {MANIFEST}; it is not a scan folder "
                         "(use a new --out directory, or --force to adopt it)")
    if _lock_is_held(out):
        raise _busy(out)


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the folder's lock (refused at once, one line, when another scan holds it)."""
    with open(out / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare(out: Path, text: str, exp: Experiment, runs: list[RunSpec]) -> dict[str, Any]:
    """Under the lock: tidy half-written files (lrsim's own temporary names only), move files of
    runs no longer in the scan to `superseded/`, copy the experiment (`text`), and return the
    previous manifest's entries by run id (only where it is the same experiment)."""
    old = _read_manifest(out) or {}
    previous = ({e["run_id"]: e for e in old.get("runs", []) if isinstance(e, dict)}
                if old.get("experiment_digest") == experiment_digest(exp) else {})
    remove_own_temporaries(out)
    ids = {r.run_id for r in runs}
    stale = [p for p in out.glob("*.nc") if p.stem not in ids and RUN_FILE.match(p.name)]
    if stale:
        (out / SUPERSEDED).mkdir(exist_ok=True)
        for p in stale:
            if not (out / SUPERSEDED / p.name).exists():
                shutil.move(str(p), out / SUPERSEDED / p.name)
    write_atomic(out / EXPERIMENT_COPY, text)
    return previous


def _file_attrs(out: Path, rid: str) -> dict[str, Any]:
    import xarray as xr

    try:
        with xr.open_dataset(Path(out) / f"{rid}.nc") as ds:
            return dict(ds.attrs)
    except Exception:  # noqa: BLE001 - a file we cannot read still counts as finished
        return {}


def done_record(out: Path, run: RunSpec) -> dict[str, Any]:
    """The manifest record of a run whose file exists (read from the file's attributes)."""
    from lrsim.scan.worker import record

    attrs = _file_attrs(out, run.run_id)
    return record(run, str(attrs.get("status", "ok")), None, attrs)


def write_result(out: Path, run_id: str, data: bytes) -> Path:
    """Write a run file received from a worker into `out/<run_id>.nc` atomically, after
    checking that the bytes are an HDF5 file whose `run_id` attribute is `run_id` (the file's
    name comes from the client's own run list, never from the worker)."""
    import h5py

    if not RUN_FILE.match(f"{run_id}.nc"):
        raise LrsimError(f"not a run id: {run_id!r}")
    try:
        with h5py.File(io.BytesIO(data), "r") as fh:
            rid = fh.attrs.get("run_id")
    except Exception as err:  # noqa: BLE001 - any failure to open: not a run file
        raise LrsimError(f"run {run_id}: the worker sent no readable run file "
                         f"({type(err).__name__})") from None
    if isinstance(rid, bytes):
        rid = rid.decode()
    if rid != run_id:
        raise LrsimError(f"run {run_id}: the worker sent the file of run {rid!r}")
    final = out / f"{run_id}.nc"
    write_atomic(final, data)
    return final


class Manifest:
    """The expanded scan with each run's status; rewritten atomically after every job."""

    def __init__(self, out: Path, source: str, exp: Experiment, runs: list[RunSpec],
                 overrides: list[str] | None = None):
        from lrsim.version import __version__

        self.out, self.runs = out, runs
        self.head = {"experiment": source, "overrides": list(overrides or []),
                     "experiment_digest": experiment_digest(exp),
                     "lrsim_version": __version__, "total": len(runs)}
        self.entries = {r.run_id: {
            "run_id": r.run_id, "index": r.index, "group": r.group, "job": None,
            "params": r.params, "seed": r.seed, "lr": r.lr, "weight_decay": r.weight_decay,
            "init_scale": r.init_scale, "status": "pending", "error": None,
            "final_loss": None, "test_accuracy": None} for r in runs}

    def update(self, record: dict[str, Any], job: int | None = None) -> None:
        e = self.entries[record["run_id"]]
        e.update({k: record.get(k) for k in ("status", "error", "final_loss", "test_accuracy")})
        if job is not None:
            e["job"] = job

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.entries.values():
            counts[e["status"]] = counts.get(e["status"], 0) + 1
        return counts

    def save(self) -> None:
        write_atomic(self.out / MANIFEST, json.dumps(
            {**self.head, "counts": self.counts(), "runs": list(self.entries.values())},
            indent=1))
