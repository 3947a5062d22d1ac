"""The run store: a folder of per-run netCDF files (one writer per file) and its reader.

    write_run(ds, folder)   -> folder/<run_id>.nc, written to a temporary name in the same
                               folder and renamed when complete (a crash never leaves a half file
                               under a run's name)
    finished_runs(folder)   -> run ids whose files are complete and readable
    open_scan(folder)       -> one xarray.Dataset with a `run` dimension (coordinate: run ids);
                               every per-run attribute becomes a coordinate on `run`, so
                               `ds.where(ds.rule == "oja", drop=True)` selects runs (an
                               attribute named like a variable, `test_accuracy`, becomes
                               `final_test_accuracy`)

Files are netCDF-4 (HDF5) written with the h5netcdf engine; what a run file holds is the
run-file contract (`lrsim.contract`); attribute values are made netCDF-safe (str / int / float,
`lrsim.contract.netcdf_safe`). Unreadable files are never silently dropped: `open_scan`
raises `LrsimError` naming them (or, with errors="report", warns and lists them in the result's
`unreadable` attribute); leftover temporary files of unfinished writes are reported the same way
in `incomplete`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from lrsim.contract import netcdf_safe
from lrsim.errors import LrsimError
from lrsim.outdir import temporary_name

ENGINE = "h5netcdf"  # writes (and reads where netCDF4 is missing)


def _read_engine() -> str:
    """netCDF4 reads these files ~7x faster than h5netcdf (measured: 11 vs 77 ms per run
    file); use it where installed."""
    try:
        import netCDF4  # noqa: F401
    except ImportError:
        return ENGINE
    return "netcdf4"


READ_ENGINE = _read_engine()
SUFFIX = ".nc"
TMP_MARK = ".tmp-"
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def _tmp_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(f".*{SUFFIX}{TMP_MARK}*") if p.is_file())


def write_run(ds: xr.Dataset, directory: str | Path) -> Path:
    """Write one run to `<directory>/<run_id>.nc` atomically (temporary name, then rename).

    The Dataset must carry a `run_id` attribute (letters, digits, `_ . -`). Attribute values
    that netCDF cannot hold are converted: bool -> int, None -> "", others -> JSON text.
    """
    rid = ds.attrs.get("run_id")
    if not isinstance(rid, str) or not _ID.match(rid) or rid.startswith("."):
        raise LrsimError(f"write_run: the Dataset needs a 'run_id' attribute made of letters, "
                         f"digits, '_', '.', '-' (got {rid!r})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{rid}{SUFFIX}"
    tmp = temporary_name(final)
    out = ds.copy()
    out.attrs = {str(k): netcdf_safe(v) for k, v in ds.attrs.items()}
    for var in out.variables.values():
        var.attrs = {str(k): netcdf_safe(v) for k, v in var.attrs.items()}
    try:
        out.to_netcdf(tmp, engine=ENGINE)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _check(path: Path) -> str | None:
    """None when `path` is a complete run file, else why not (HDF5 refuses truncated files on
    opening; the run id must match the name)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            rid = fh.attrs.get("run_id")
    except Exception as err:  # noqa: BLE001 - any failure to open means: not a usable file
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    if isinstance(rid, bytes):
        rid = rid.decode()
    if rid != path.name[: -len(SUFFIX)]:
        return f"its run_id attribute {rid!r} does not match the file name"
    return None


def finished_runs(directory: str | Path) -> set[str]:
    """Run ids with a complete, readable file `<run_id>.nc` in `directory` (empty if none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return set()
    return {p.name[: -len(SUFFIX)] for p in sorted(directory.glob(f"*{SUFFIX}"))
            if not p.name.startswith(".") and _check(p) is None}


def _lift(attrs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per-run attributes as arrays on `run`: numbers as float/int, text as str; a key some runs
    lack is NaN (numbers) or "" (text) there."""
    keys: list[str] = []
    for a in attrs:
        keys += [k for k in a if k not in keys]
    out = {}
    for key in keys:
        values = [a.get(key) for a in attrs]
        present = [v for v in values if v is not None]
        if all(isinstance(v, str) for v in present):
            out[key] = np.array(["" if v is None else v for v in values], dtype=object)
        elif all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                 for v in present) and len(present) == len(values):
            out[key] = np.array(values, dtype=np.int64)
        else:
            try:
                out[key] = np.array([np.nan if v is None else float(v) for v in values])
            except (TypeError, ValueError):
                out[key] = np.array(["" if v is None else str(v) for v in values],
                                    dtype=object)
    return out


def _layer_order(name: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else 10**9, name)


def _shared_coords(runs: list[xr.Dataset]) -> list[xr.Dataset]:
    """Runs of different kinds (rate and spiking) in one store: give every run the coordinates
    some runs lack (xr.concat refuses coordinates missing in some datasets; data variables
    missing in some runs are filled with NaN by concat itself). A missing dimension coordinate
    (`population`) is added with the first run's labels, a missing coordinate on existing
    dims (`sim_time` on `time`) as NaN (text: "")."""
    first: dict[str, xr.DataArray] = {}
    for ds in runs:
        for name in ds.coords:
            first.setdefault(str(name), ds[name])
    out = []
    for ds in runs:
        missing = {n: da for n, da in first.items() if n not in ds.coords}
        if missing:
            ds = ds.assign_coords({n: da.values for n, da in missing.items() if n in da.dims})
            fill = {}
            for n, da in missing.items():
                if n in da.dims or not all(d in ds.dims for d in da.dims):
                    continue
                shape = [ds.sizes[d] for d in da.dims]
                text = da.dtype.kind in "OUS"
                fill[n] = (da.dims, np.full(shape, "" if text else np.nan,
                                            dtype=object if text else float))
            ds = ds.assign_coords(fill)
        out.append(ds)
    return out


def open_scan(directory: str | Path, errors: Literal["raise", "report"] = "raise"
              ) -> xr.Dataset:
    """Every run file in `directory` as one Dataset with a `run` dimension.

    The `run` coordinate holds the run ids (sorted); each file's attributes become coordinates
    on `run` (e.g. `rule`, `lr`, `status`). Runs of different architectures or schedules are
    aligned on `layer` / `time` and padded with NaN; coordinates that differ between runs
    (`step`, `depth`) gain the `run` dimension. Runs of different substrates mix: variables
    one kind lacks (the spiking statistics on `population` in rate runs) are NaN there.
    Files that cannot be read: errors="raise" (default) raises `LrsimError` naming them;
    errors="report" warns, leaves them out and names them in the attribute `unreadable`
    (JSON list). Temporary files left by unfinished writes are warned about and named in
    `incomplete`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LrsimError(f"open_scan: '{directory}' is not a directory")
    if errors not in ("raise", "report"):
        raise LrsimError(f"open_scan: errors must be 'raise' or 'report' (got {errors!r})")
    files = sorted(p for p in directory.glob(f"*{SUFFIX}") if not p.name.startswith("."))
    incomplete = [p.name for p in _tmp_files(directory)]
    runs: list[xr.Dataset] = []
    bad: list[str] = []
    for path in files:
        problem = None
        try:
            with xr.open_dataset(path, engine=READ_ENGINE) as one:
                ds = one.load()
            if ds.attrs.get("run_id") != path.name[: -len(SUFFIX)]:
                problem = f"run_id attribute {ds.attrs.get('run_id')!r} differs from the name"
        except Exception as err:  # noqa: BLE001
            problem = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
        if problem is not None:
            bad.append(f"{path.name} ({problem})")
            continue
        runs.append(ds)
    if bad and errors == "raise":
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise LrsimError(f"open_scan: {len(bad)} unreadable run file(s) in '{directory}': "
                         f"{shown} (move or delete them, or pass errors='report')")
    if bad:
        warnings.warn(f"open_scan: left out {len(bad)} unreadable file(s): {'; '.join(bad)}",
                      stacklevel=2)
    if incomplete:
        warnings.warn(f"open_scan: {len(incomplete)} incomplete (temporary) file(s) in "
                      f"'{directory}', not read: {', '.join(incomplete)}", stacklevel=2)
    if not runs:
        raise LrsimError(f"open_scan: no run files (*{SUFFIX}) in '{directory}'")
    attrs = [dict(ds.attrs) for ds in runs]
    ids = [a["run_id"] for a in attrs]
    for ds in runs:
        ds.attrs = {}
    runs = _shared_coords(runs)
    combined = xr.concat(runs, dim="run", data_vars="all", coords="different",
                         compat="equals", join="outer", combine_attrs="drop")
    if "layer" in combined.indexes:
        combined = combined.sortby(xr.DataArray(
            [_layer_order(str(n))[0] for n in combined["layer"].values], dims="layer"))
    lifted = _lift(attrs)
    lifted.pop("run_id", None)
    coords = {}
    for key, values in lifted.items():
        name = key
        if key in combined.variables or key in combined.dims:  # e.g. attr test_accuracy
            name = f"final_{key}" if f"final_{key}" not in lifted else f"attr_{key}"
        coords[name] = ("run", values)
    combined = combined.assign_coords(run=np.array(ids, dtype=object), **coords)
    combined.attrs = {"store": str(directory), "unreadable": json.dumps(bad),
                      "incomplete": json.dumps(incomplete)}
    return combined
