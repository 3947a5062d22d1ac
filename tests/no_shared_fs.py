"""Dask worker preload for tests: this worker process cannot see the folder named by
$LRSIM_FORBIDDEN. A Python audit hook refuses every open, listing, creation, rename and removal
of a path inside it (PermissionError), as on a compute node that does not mount the client's
file system."""

from __future__ import annotations

import os
import sys

FORBIDDEN = os.path.realpath(os.environ["LRSIM_FORBIDDEN"])
EVENTS = {"open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.listdir",
          "os.scandir", "os.chmod", "os.truncate", "os.symlink", "os.link", "os.utime",
          "shutil.copyfile", "shutil.move", "shutil.rmtree"}


def _inside(path: object) -> bool:
    if not isinstance(path, str | bytes | os.PathLike):
        return False
    full = os.path.normpath(os.path.abspath(os.fsdecode(path)))
    return full == FORBIDDEN or full.startswith(FORBIDDEN + os.sep)


def _hook(event: str, args: tuple) -> None:
    if event in EVENTS and args and any(_inside(a) for a in args[:2]):
        raise PermissionError(13, "this worker cannot see the client's folder", str(args[0]))


sys.addaudithook(_hook)


def dask_setup(worker: object) -> None:  # noqa: ARG001 - Dask's preload entry point
    """Nothing more to do: the hook is installed at import."""
