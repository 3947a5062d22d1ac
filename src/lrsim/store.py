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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
import xarray as xr

from lrsim.contract import netcdf_safe
from lrsim.errors import LrsimError
from lrsim.outdir import temporary_name
from lrsim.version import __version__

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


INDEX_ATTR = "lrsim_index"  # JSON: labels, coordinates, variables (read without xarray)
INDEX_DIMS = ("time", "layer", "stat", "units", "noise", "population")  # aligned across runs
_STATIC_COORDS = ("stat_power",)  # fixed by their dimension's labels: no `run` dimension
_FILE_ATTRS = ("run_id", "Conventions", "title", "source", INDEX_ATTR)


def label_name(key: str, names: Any) -> str:
    """The coordinate name of per-run attribute `key` beside variables `names`: itself, or
    `final_<key>` where a variable has its name (`test_accuracy`)."""
    return f"final_{key}" if key in names else key


def _json_values(values: Any) -> Any:
    arr = np.asarray(values)
    if arr.dtype.kind in "OUS":
        return np.asarray(arr, dtype=object).astype(str).tolist()
    return arr.tolist()


def to_file(ds: xr.Dataset) -> xr.Dataset:
    """One run in memory (per-run labels as attributes) -> the run file's layout.

    The file is a store of one run: a `run` dimension of length 1 (coordinate: the run id) on
    every data variable and every coordinate that is not a dimension's index (`step`,
    `depth`, ...); every per-run label (rule, lr, seed, status, ..., see `lrsim.metadata`) a
    coordinate on `run` (`test_accuracy` as `final_test_accuracy`); CF attributes on all
    (`lrsim.metadata.describe`). So `xr.open_mfdataset(files, combine="nested",
    concat_dim="run")` concatenates runs and keeps their labels. File attributes: `Conventions`,
    `title`, `source`, `run_id` and `lrsim_index` (JSON of the labels, coordinates and
    variables' dims, which `open_scan` reads instead of opening the file with xarray).
    """
    from lrsim.metadata import attributes, describe, with_stat_power

    if "run" in ds.dims:
        ds = from_file(ds)
    rid = ds.attrs["run_id"]
    ds = describe(with_stat_power(ds))
    labels = {str(k): netcdf_safe(v) for k, v in ds.attrs.items() if k not in _FILE_ATTRS}
    index = {d: _json_values(ds[d].values) for d in ds.dims if d in ds.coords}
    coords = {str(c): {"dims": list(ds[c].dims), "values": _json_values(ds[c].values)}
              for c in ds.coords if c not in ds.dims}
    variables = {str(v): {"dims": list(ds[v].dims), "dtype": ds[v].dtype.str}
                 for v in ds.data_vars}
    out = ds.reset_coords([c for c in ds.coords if c not in ds.dims])
    static = [c for c in coords if c in _STATIC_COORDS]
    out = out.drop_vars(static).expand_dims(run=np.array([rid], dtype=object))
    out = out.set_coords([c for c in coords if c not in static])
    out = out.assign_coords({c: ds[c] for c in static})
    subs = {str(labels.get("substrate", "rate"))}
    label_coords = {}
    for key, value in labels.items():
        name = label_name(key, ds.variables)
        text = isinstance(value, str)
        da = xr.DataArray(np.array([value], dtype=object if text else None), dims="run")
        da.attrs = attributes(name, subs, text)
        label_coords[name] = da
    out = out.assign_coords(label_coords)
    out["run"].attrs = attributes("run", subs, True)
    for name, var in ds.variables.items():
        out[name].attrs = dict(var.attrs)
    index_json = {"format": 1, "run_id": rid, "labels": labels, "index": index,
                  "coords": coords, "variables": variables}
    out.attrs = {"Conventions": ds.attrs.get("Conventions", ""),
                 "title": f"lrsim run {rid}: {labels.get('rule', '')} on "
                          f"{labels.get('task', '')} ({labels.get('substrate', '')})",
                 "source": f"lrsim {labels.get('lrsim_version', __version__)}",
                 "run_id": rid, INDEX_ATTR: json.dumps(index_json)}
    return out


def from_file(ds: xr.Dataset) -> xr.Dataset:
    """A run file's layout (or one run of a store) -> the run in memory: no `run` dimension,
    per-run labels as attributes (`final_test_accuracy` -> `test_accuracy`)."""
    if "run" not in ds.dims:
        return ds
    if ds.sizes["run"] != 1:
        raise LrsimError(f"from_file: one run expected, got {ds.sizes['run']}")
    rid = str(ds["run"].values[0])
    per_run = [str(c) for c in ds.coords if ds[c].dims == ("run",) and c != "run"]
    if INDEX_ATTR in ds.attrs:  # a run file: its labels exactly as written
        attrs: dict[str, Any] = {"run_id": rid, **json.loads(ds.attrs[INDEX_ATTR])["labels"]}
    else:  # one run of a store: the coordinates (final_test_accuracy -> test_accuracy)
        attrs = {"run_id": rid}
        for c in per_run:
            value = ds[c].values[0]
            key = "test_accuracy" if c == "final_test_accuracy" else c
            attrs[key] = value.item() if hasattr(value, "item") else value
    out = ds.drop_vars(per_run).isel(run=0, drop=True)
    out.attrs = {**{k: v for k, v in ds.attrs.items() if k in ("Conventions",)}, **attrs}
    return out


def write_run(ds: xr.Dataset, directory: str | Path) -> Path:
    """Write one run to `<directory>/<run_id>.nc` atomically (temporary name, then rename), in
    the file layout of `to_file`.

    The Dataset must carry a `run_id` attribute (letters, digits, `_ . -`). Attribute values
    that netCDF cannot hold are converted: bool -> int, None -> "", others -> JSON text.
    """
    if "run" in ds.dims and ds.sizes["run"] == 1:
        ds = from_file(ds)
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
    out = to_file(out)
    try:
        # The file lock stays in this process: inside a Dask worker, xarray would otherwise take
        # a cluster-wide lock whose release fails (and logs) when the client goes away.
        with dask.config.set(scheduler="synchronous"):
            out.to_netcdf(tmp, engine=ENGINE)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def read_run(path: str | Path) -> xr.Dataset:
    """One run file, loaded, as the run in memory (`from_file`; files written before the
    file layout had a `run` dimension come back as they are)."""
    with xr.open_dataset(path, engine=READ_ENGINE) as one:
        ds = one.load()
    out = from_file(ds)
    out.attrs.pop(INDEX_ATTR, None)
    return out


def read_labels(path: str | Path) -> dict[str, Any]:
    """The per-run labels of a run file (attribute names: `test_accuracy`, not
    `final_test_accuracy`), read without opening the data."""
    meta = _read_meta(Path(path))
    return {**meta.labels, "run_id": meta.run_id}


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


@dataclass
class _RunMeta:
    """What `open_scan` needs of one run file, without its data: labels (attribute names),
    index coordinates, other coordinates (dims, values) and variables (dims, dtype)."""

    path: Path
    run_id: str
    labels: dict[str, Any]
    index: dict[str, list]
    coords: dict[str, tuple[tuple[str, ...], np.ndarray]]
    variables: dict[str, tuple[tuple[str, ...], str]]
    run_dim: bool  # the file layout (variables carry a leading `run` of length 1)


def _index_attr(path: Path) -> str | None:
    """The file's `lrsim_index` attribute (None if it has none), read with h5py's low-level
    API: about 0.1 ms a file, half of the high-level `File(...).attrs` (measured)."""
    import h5py

    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY)
    try:
        if not h5py.h5a.exists(fid, INDEX_ATTR.encode()):
            return None
        attr = h5py.h5a.open(fid, INDEX_ATTR.encode())
        buf = np.empty((), dtype=attr.dtype)
        attr.read(buf)
        raw = buf[()]
    finally:
        fid.close()
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _read_meta(path: Path) -> _RunMeta:
    """The run file's metadata: from its `lrsim_index` attribute (one HDF5 attribute read), or,
    for files written before it existed, by opening the file with xarray (no data loaded)."""
    raw = _index_attr(path)
    if raw is not None:
        info = json.loads(raw)
        coords = {c: (tuple(v["dims"]), v["values"]) for c, v in info["coords"].items()}
        return _RunMeta(path, info["run_id"], info["labels"], info["index"], coords,
                        {v: (tuple(d["dims"]), d["dtype"]) for v, d in
                         info["variables"].items()}, True)
    with xr.open_dataset(path, engine=READ_ENGINE) as one:  # legacy: attributes as labels
        labels = {str(k): v.item() if hasattr(v, "item") else v for k, v in one.attrs.items()
                  if k != "run_id"}
        index = {str(d): _json_values(one[d].values) for d in one.dims if d in one.coords}
        coords = {str(c): (tuple(one[c].dims), np.asarray(one[c].values)) for c in one.coords
                  if c not in one.dims}
        variables = {str(v): (tuple(one[v].dims), one[v].dtype.str) for v in one.data_vars}
        rid = one.attrs.get("run_id")
    return _RunMeta(path, str(rid), labels, index, coords, variables, False)


def _union(values: list[list], dim: str) -> list:
    """The store's index of `dim`: the runs' common index if they agree, else the sorted union
    (layers by number: layer2 before layer10)."""
    first = values[0]
    if dim == "layer":
        seen = {str(v) for vs in values for v in vs}
        return sorted(seen, key=_layer_order)
    if all(v == first for v in values):
        return list(first)
    return sorted({v for vs in values for v in vs})


@dataclass(frozen=True)
class _Block:
    """One dask chunk: variable `var` of runs (path, positions per dim or None if the run
    lacks it) into an array of `shape`."""

    var: str
    runs: tuple
    shape: tuple[int, ...]
    dtype: str


def _read_block(block: _Block) -> np.ndarray:
    """Read a chunk: each run's variable from its file (h5py), placed at its positions; NaN
    where a run has no value. Files in the run-file layout hold plain values (xarray stores a
    float's missing values as NaN, lrsim packs nothing); older files are decoded (_FillValue,
    scale_factor, add_offset)."""
    import h5py

    dtype = np.dtype(block.dtype)
    out = np.full(block.shape, np.nan if dtype.kind == "f" else 0, dtype=dtype)
    for i, item in enumerate(block.runs):
        if item is None:
            continue
        path, run_dim, perm, positions = item
        with h5py.File(path, "r") as fh:
            dset = fh[block.var]
            if run_dim:
                a = dset[0]
            else:
                a = dset[()]
                fill = dset.attrs.get("_FillValue")
                scale, offset = dset.attrs.get("scale_factor"), dset.attrs.get("add_offset")
                if fill is not None and a.dtype.kind in "fc" and \
                        np.isfinite(np.asarray(fill)).all():
                    a = np.where(a == fill, np.nan, a)
                if scale is not None or offset is not None:
                    a = a * (1 if scale is None else scale) + (0 if offset is None else offset)
        a = np.transpose(a, perm) if perm is not None else a
        out[(i, *np.ix_(*positions))] = a
    return out


def _lazy_variable(var: str, dims: tuple[str, ...], runs: list, sizes: dict[str, int],
                   dtype: np.dtype, chunk_runs: int, token: str) -> Any:
    import dask.array as da

    shape_tail = tuple(sizes[d] for d in dims)
    n = len(runs)
    starts = list(range(0, n, chunk_runs))
    name = f"lrsim-store-{var}-{token}"
    graph = {}
    for b, s0 in enumerate(starts):
        part = tuple(runs[s0:s0 + chunk_runs])
        graph[(name, b) + (0,) * len(dims)] = (
            _read_block, _Block(var, part, (len(part), *shape_tail), dtype.str))
    chunks = (tuple(min(chunk_runs, n - s) for s in starts), *((m,) for m in shape_tail))
    return da.Array(graph, name, chunks, dtype=dtype,
                    meta=np.empty((0,) * (len(dims) + 1), dtype=dtype))


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _build(metas: list[_RunMeta], chunk_runs: int, token: str) -> xr.Dataset:
    """The store Dataset of `metas` (in order): lazy variables, eager coordinates."""
    index_dims = sorted({d for m in metas for d in m.index},
                        key=lambda d: (INDEX_DIMS.index(d) if d in INDEX_DIMS else 99, d))
    index = {d: _union([m.index[d] for m in metas if d in m.index], d) for d in index_dims}
    sizes = {d: len(v) for d, v in index.items()}
    where = {d: {v: i for i, v in enumerate(vals)} for d, vals in index.items()}
    n = len(metas)
    # dims of each variable / coordinate: the first run's that has it
    var_dims: dict[str, tuple[str, ...]] = {}
    var_types: dict[str, set[str]] = {}
    for m in metas:
        for v, (dims, dt) in m.variables.items():
            var_dims.setdefault(v, dims)
            var_types.setdefault(v, set()).add(dt)
    cache: dict[tuple, np.ndarray] = {}

    def positions(m: _RunMeta, d: str) -> np.ndarray:
        key = (d, tuple(m.index[d]))
        if key not in cache:
            cache[key] = np.asarray([where[d][x] for x in m.index[d]], dtype=np.intp)
        return cache[key]

    data = {}
    for v, dims in var_dims.items():
        runs, padded = [], False
        for m in metas:
            if v not in m.variables:
                runs.append(None)
                padded = True
                continue
            own = m.variables[v][0]
            perm = None if own == dims else tuple(own.index(d) for d in dims)
            pos = tuple(positions(m, d) for d in dims)
            padded = padded or any(len(p) != sizes[d] for p, d in zip(pos, dims))
            runs.append((str(m.path), m.run_dim, perm, pos))
        dtype = np.result_type(*(np.dtype(t) for t in var_types[v]))
        if padded and dtype.kind != "f":
            dtype = np.dtype(np.float64)
        data[v] = (("run", *dims), _lazy_variable(v, dims, runs, sizes, dtype, chunk_runs,
                                                   token))
    coords: dict[str, Any] = {d: np.asarray(index[d], dtype=object if isinstance(
        index[d][0] if index[d] else 0, str) else None) for d in index}
    coord_names = []
    for m in metas:
        coord_names += [c for c in m.coords if c not in coord_names and c != "stat_power"]
    for c in coord_names:
        dims = next(m.coords[c][0] for m in metas if c in m.coords)
        dims = tuple(d for d in dims if d != "run")
        per_run = []
        for m in metas:
            if c not in m.coords:
                per_run.append(None)
                continue
            vals = m.coords[c][1]
            per_run.append((m, vals))
        same = all(p is not None for p in per_run) and all(
            all(len(p[0].index.get(d, [])) == sizes[d] for d in dims) for p in per_run)
        if same:
            first = per_run[0][1]
            same = all(p[1] == first if isinstance(first, list) and isinstance(p[1], list)
                       else _same(p[1], first) for p in per_run)
        if same:
            coords[c] = (dims, np.asarray(per_run[0][1]))
            continue
        sample = next(p[1] for p in per_run if p is not None)
        text = np.asarray(sample).dtype.kind in "OUS"
        arr = np.full((n, *(sizes[d] for d in dims)), "" if text else np.nan,
                      dtype=object if text else float)
        for i, p in enumerate(per_run):
            if p is None:
                continue
            pos = [positions(p[0], d) for d in dims]
            arr[(i, *np.ix_(*pos))] = p[1]
        coords[c] = (("run", *dims), arr)
    combined = xr.Dataset(data, coords=coords)
    variables = set(combined.variables)
    lifted = _lift([m.labels for m in metas])
    lifted.pop("run_id", None)
    labels = {}
    for key, values in lifted.items():
        name = key
        if key in variables or key in combined.dims:  # e.g. attr test_accuracy
            name = f"final_{key}" if f"final_{key}" not in lifted else f"attr_{key}"
        labels[name] = ("run", values)
    return combined.assign_coords(run=np.array([m.run_id for m in metas], dtype=object),
                                  **labels)


def open_scan(directory: str | Path | Sequence[str | Path],
              errors: Literal["raise", "report"] = "raise", chunk_runs: int = 256) -> xr.Dataset:
    """Every run file in `directory` (or in several directories: a list, read as one store)
    as one lazy Dataset with a `run` dimension.

    Opening reads each file's metadata only (its `lrsim_index` attribute); the variables are
    dask arrays, read from the files when computed (`.values`, `.load()`, `.compute()`), in
    chunks of `chunk_runs` runs. Select first, then compute: `ds.weights.sel(stat="abs_mean",
    units=0, noise=0.0).values` reads the weights of every run and keeps one statistic;
    `ds.load()` brings the whole store into memory.

    The `run` coordinate holds the run ids (sorted); each run's labels become coordinates on
    `run` (e.g. `rule`, `lr`, `status`; `test_accuracy` as `final_test_accuracy`). Runs of
    different architectures or schedules are aligned on `layer` / `time` and padded with NaN;
    coordinates that differ between runs (`step`, `depth`) gain the `run` dimension. Runs of
    different substrates mix: variables one kind lacks (the spiking statistics on `population`
    in rate runs) are NaN there. Every variable and coordinate carries CF attributes
    (`lrsim.metadata`). Files that cannot be read: errors="raise" (default) raises
    `LrsimError` naming them; errors="report" warns, leaves them out and names them in the
    attribute `unreadable` (JSON list). Temporary files left by unfinished writes are warned
    about and named in `incomplete`. Several directories (e.g. the stores of several scans:
    `open_scan(["runs/a", "runs/b"])`) are read as one; a run id found in two of them (a copied
    store) raises `LrsimError` naming both. Export: `open_scan(d).to_zarr("store.zarr")`.
    """
    from dask.base import tokenize

    from lrsim.metadata import describe, with_stat_power

    several = not isinstance(directory, str | Path)
    directories = [Path(d) for d in directory] if several else [Path(directory)]
    if not directories:
        raise LrsimError("open_scan: no directory given")
    for d in directories:
        if not d.is_dir():
            raise LrsimError(f"open_scan: '{d}' is not a directory")
    if errors not in ("raise", "report"):
        raise LrsimError(f"open_scan: errors must be 'raise' or 'report' (got {errors!r})")
    if not isinstance(chunk_runs, int) or chunk_runs < 1:
        raise LrsimError(f"open_scan: chunk_runs must be a positive integer (got {chunk_runs!r})")
    files, seen = [], {}
    for d in directories:
        for p in sorted(p for p in d.glob(f"*{SUFFIX}") if not p.name.startswith(".")):
            if p.name in seen:
                raise LrsimError(f"open_scan: run {p.name[: -len(SUFFIX)]} is in both "
                                 f"'{seen[p.name]}' and '{d}' (a copy?); open each store once")
            seen[p.name] = d
            files.append(p)
    incomplete = [str(p if several else p.name) for d in directories for p in _tmp_files(d)]
    label = ", ".join(str(d) for d in directories)
    metas: list[_RunMeta] = []
    bad: list[str] = []
    stamps = []
    for path in files:
        problem = None
        try:
            meta = _read_meta(path)
            if meta.run_id != path.name[: -len(SUFFIX)]:
                problem = f"run_id attribute {meta.run_id!r} differs from the name"
        except Exception as err:  # noqa: BLE001
            problem = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
        if problem is not None:
            bad.append(f"{path.name} ({problem})")
            continue
        metas.append(meta)
        st = path.stat()
        stamps.append((str(path) if several else path.name, st.st_size, st.st_mtime_ns))
    if bad and errors == "raise":
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise LrsimError(f"open_scan: {len(bad)} unreadable run file(s) in '{label}': "
                         f"{shown} (move or delete them, or pass errors='report')")
    if bad:
        warnings.warn(f"open_scan: left out {len(bad)} unreadable file(s): {'; '.join(bad)}",
                      stacklevel=2)
    if incomplete:
        warnings.warn(f"open_scan: {len(incomplete)} incomplete (temporary) file(s) in "
                      f"'{label}', not read: {', '.join(incomplete)}", stacklevel=2)
    if not metas:
        raise LrsimError(f"open_scan: no run files (*{SUFFIX}) in '{label}'")
    combined = _build(metas, chunk_runs,
                      tokenize([str(d.resolve()) for d in directories], stamps))
    combined = describe(with_stat_power(combined))
    combined.attrs = {"Conventions": combined.attrs.get("Conventions", ""),
                      "store": label, "unreadable": json.dumps(bad),
                      "incomplete": json.dumps(incomplete)}
    return combined
