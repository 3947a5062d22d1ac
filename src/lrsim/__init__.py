"""lrsim: virtual experiments on biologically plausible learning rules."""

from __future__ import annotations

from lrsim.errors import ConfigError, LrsimError
from lrsim.version import __version__


def open_scan(path):  # noqa: ANN001, ANN201
    """Open a run store (folder of per-run netCDF files) as one Dataset with a `run` dimension."""
    from lrsim.store import open_scan as _open

    return _open(path)


def __getattr__(name: str):  # noqa: ANN202 - lazy submodules (matplotlib loads on first use)
    if name == "plot":
        import importlib

        return importlib.import_module("lrsim.plot")
    raise AttributeError(f"module 'lrsim' has no attribute {name!r}")


__all__ = ["ConfigError", "LrsimError", "__version__", "open_scan", "plot"]
