"""The installed lrsim version (a run file records it as `lrsim_version`)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lrsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
