"""Output folders lrsim owns: it writes, cleans and overwrites only files it can prove it wrote.

Every folder lrsim writes into (`run --out`, `scan --out`, `identify --out`, `demo --out`) is
*claimed* before any work:

    missing or empty folder        -> lrsim creates it and leaves its mark, `.lrsim` (JSON:
                                      who wrote the folder, and for what: "runs", "scan",
                                      "report", "demo")
    a folder with lrsim's mark     -> lrsim's own store: resumed, added to (a mark of another
                                      kind is refused: a report is not a scan folder)
    a scan folder of an lrsim that -> recognised by its `manifest.json` (an lrsim manifest), and
    predates the mark                 marked
    anything else                  -> refused, one line naming files lrsim did not write

Inside its own folder lrsim still touches only its own names (`is_own_name`): run files
`<run id>.nc`, the experiment copy, the manifest, the lock, the mark, the report, and the
temporary files of its atomic writes, `.<final name>.tmp-<pid>-<hex>` (`temporary_name`). A file
a user puts into an lrsim store is never deleted, moved or overwritten.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from lrsim.errors import LrsimError

MARK = ".lrsim"
KINDS = ("runs", "scan", "report", "demo")
_TMP = re.compile(r"^\.(?P<final>.+)\.tmp-(?P<pid>\d+)-(?P<tag>[0-9a-f]{8})$")
RUN_FILE = re.compile(r"^[0-9a-f]{16}\.nc$")  # `lrsim.config.run_id`: 16 hex digits
OWN_NAMES = {
    "runs": {MARK, "experiment.toml"},
    "scan": {MARK, "experiment.toml", "manifest.json", ".lrsim-scan.lock", "superseded"},
    "report": {MARK, "report.html", "results.json"},
    "demo": {MARK, "store", "report"},
}


def temporary_name(final: Path) -> Path:
    """Where to write `final` before renaming it: `.<name>.tmp-<pid>-<8 hex>` in its folder
    (a name no user file is likely to have, and that `is_own_temporary` recognises)."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_own_temporary(name: str) -> bool:
    """Whether `name` is the temporary file of one of lrsim's atomic writes."""
    return _TMP.match(name) is not None


def is_own_name(name: str, kind: str) -> bool:
    """Whether a file called `name` in a folder of `kind` is one lrsim writes there."""
    if name in OWN_NAMES[kind] or is_own_temporary(name):
        return True
    return kind in ("runs", "scan") and RUN_FILE.match(name) is not None


def write_atomic(final: Path, data: str | bytes) -> None:
    """Write `data` to `final` through a temporary name and a rename (never a half file)."""
    tmp = temporary_name(final)
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_mark(folder: Path) -> str | None:
    """The kind in `folder`'s mark, or None where there is no (readable) mark."""
    try:
        data = json.loads((folder / MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "lrsim":
        return None
    kind = data.get("kind")
    return kind if kind in KINDS else None


def _legacy(folder: Path, kind: str) -> bool:
    """A folder lrsim wrote before the mark existed: a scan folder (an lrsim manifest.json), or
    a demo folder (only `store/`, a legacy scan folder, and `report/`)."""
    if kind == "demo":
        names = {p.name for p in folder.iterdir()}
        return names <= {"store", "report"} and _legacy(folder / "store", "scan")
    if kind != "scan":
        return False
    try:
        data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "experiment_digest" in data and "runs" in data


def foreign_files(folder: Path, kind: str) -> list[str]:
    """Names in `folder` that lrsim would not have written in a folder of `kind` (sorted)."""
    return sorted(p.name for p in folder.iterdir() if not is_own_name(p.name, kind))


def check_claim(folder: Path, kind: str, flag: str = "--out") -> bool:
    """Check, writing nothing, that lrsim may write a folder of `kind` at `folder`; return
    whether the folder is already lrsim's (so the caller resumes). Raises `LrsimError` (one
    line) for a file in the way, a folder of another kind, or a folder holding files lrsim did
    not write."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    if not folder.exists():
        check_writable(folder, flag)
        return False
    if not folder.is_dir():
        raise LrsimError(f"{flag} '{folder}' is a file; give a folder")
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError as err:
        raise LrsimError(f"{flag} '{folder}' cannot be read: {err.strerror or err}") from None
    if not names:
        check_writable(folder, flag)
        return False
    mark = read_mark(folder)
    if mark == kind or (mark is None and _legacy(folder, kind)):
        check_writable(folder, flag)
        return True
    if mark is not None:
        raise LrsimError(f"{flag} '{folder}' is lrsim's {mark} folder, not a {kind} folder; "
                         f"give another folder")
    foreign = sorted(names)
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                      else "")
    raise LrsimError(f"{flag} '{folder}' holds files lrsim did not write ({shown}); give a new "
                     f"or empty folder (lrsim never overwrites or deletes files it did not "
                     f"write)")


def check_writable(folder: Path, flag: str = "--out") -> None:
    """Refuse (one line) a folder lrsim could not create or write, leaving it as it was: the
    folder, or the nearest folder above it that exists, must be a writable folder; a probe
    (an own temporary folder, created and removed at once) finds what permissions do not show
    (read-only file systems, /proc, root on a read-only mount)."""
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    if target != folder and not target.is_dir():
        raise LrsimError(f"{flag} '{folder}' cannot be created: '{target}' is not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        what = "is not writable" if target == folder else f"cannot be created in '{target}'"
        raise LrsimError(f"{flag} '{folder}' {what} (no write permission)")
    probe = temporary_name(target / "lrsim-probe")
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        what = "cannot be written" if target == folder else f"cannot be created in '{target}'"
        raise LrsimError(f"{flag} '{folder}' {what}: {err.strerror or err}") from None


def claim(folder: Path, kind: str, flag: str = "--out") -> bool:
    """`check_claim`, then create the folder where needed and leave lrsim's mark in it."""
    owned = check_claim(folder, kind, flag)
    created = []
    p = folder
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if read_mark(folder) is None:
            write_atomic(folder / MARK, json.dumps({"written_by": "lrsim", "kind": kind}) + "\n")
    except OSError as err:
        for q in created:  # only the empty folders made just now
            try:
                q.rmdir()
            except OSError:
                break
        raise LrsimError(f"{flag} '{folder}': cannot write: {err.strerror or err}") from None
    return owned


def remove_own_temporaries(folder: Path) -> list[str]:
    """Delete the temporary files of lrsim's interrupted atomic writes in `folder` (call under
    the folder's lock: no writer alive); return their names. Nothing else is touched."""
    gone = []
    for p in folder.iterdir():
        if p.is_file() and is_own_temporary(p.name):
            p.unlink(missing_ok=True)
            gone.append(p.name)
    return sorted(gone)
