"""lrsim: virtual experiments on biologically plausible learning rules."""

from __future__ import annotations

from lrsim.errors import ConfigError, LrsimError
from lrsim.version import __version__


def open_scan(path):  # noqa: ANN001, ANN201
    """Open a run store (folder of per-run netCDF files), or a list of them read as one, as one
    Dataset with a `run` dimension."""
    from lrsim.store import open_scan as _open

    return _open(path)


def run(experiment, *, progress=None, **overrides):  # noqa: ANN001, ANN201
    """Run an experiment in this process and return its trajectories: a list of
    `xarray.Dataset`, one per replica (the format of `lrsim run --out`).

    `experiment` is the path of an experiment file, its data as a dict, or an
    `lrsim.config.Experiment`. Keyword `overrides` set keys as `lrsim run FILE KEY=VALUE`
    does, with `__` for the dot (`train__lr=0.1`, `rule__name="kolen_pollack"`), or pass dotted
    keys as `**{"train.lr": 0.1}`; they are validated exactly like the file. Progress shows as
    a notebook widget in Jupyter, a bar in a terminal, plain lines in a log (`progress=False`:
    none). Bad input raises `lrsim.ConfigError` (one line) before any work.

        runs = lrsim.run("experiments/demo.toml", train__steps=200, rule__name="sign_symmetry")
        runs[0]["loss"].plot()
    """
    from lrsim.api import run as _run

    return _run(experiment, progress=progress, **overrides)


def __getattr__(name: str):  # noqa: ANN202 - lazy submodules (matplotlib loads on first use)
    if name == "plot":
        import importlib

        return importlib.import_module("lrsim.plot")
    raise AttributeError(f"module 'lrsim' has no attribute {name!r}")


__all__ = ["ConfigError", "LrsimError", "__version__", "open_scan", "plot", "run"]
