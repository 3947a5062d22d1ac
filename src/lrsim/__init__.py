"""lrsim: virtual experiments on biologically plausible learning rules."""

from __future__ import annotations

from lrsim.errors import ConfigError, LrsimError
from lrsim.version import __version__


def open_scan(path):  # noqa: ANN001, ANN201
    """Open a run store (folder of per-run netCDF files) as one Dataset with a `run` dimension."""
    from lrsim.store import open_scan as _open

    return _open(path)


__all__ = ["ConfigError", "LrsimError", "__version__", "open_scan"]
