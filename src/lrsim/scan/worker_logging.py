"""Preloaded into each worker process of the embedded cluster (`lrsim.scan.cluster.embedded`):
Dask's own log in a worker says nothing a user of lrsim can act on, and at shutdown it is
wrong (after Ctrl-C the scheduler closes first and a worker's next heartbeat logs an error with
a traceback on the terminal, under lrsim's one line). A run's failure reaches the user through
its result and the manifest, not through the worker's log. `LocalCluster(silence_logs=...)`
sets the level of the nanny's logger only, inside the worker process, so the levels are set
here, when the worker starts (Dask's `dask_setup` preload hook).
"""

from __future__ import annotations

import logging
from typing import Any

# Dask's loggers and those of the event loop under it; the client side quiets the same ones
# while it closes a cluster (`lrsim.scan.cluster.quietly`) and after Ctrl-C (`lrsim.cli`)
QUIET_LOGGERS = ("distributed", "tornado", "asyncio")


def quiet_loggers() -> list[logging.Logger]:
    """The loggers of QUIET_LOGGERS and every existing logger under them. A level set on a
    parent does not reach a child with a level of its own, and Dask's logging configuration
    gives some their own (tornado.application ERROR, distributed.client WARNING): after
    Ctrl-C, tornado.application printed a traceback of Dask's cancelled `sync` call under
    lrsim's one line."""
    names = set(QUIET_LOGGERS) | {n for n in logging.root.manager.loggerDict
                                  if n.split(".")[0] in QUIET_LOGGERS}
    return [logging.getLogger(n) for n in sorted(names)]


def dask_setup(worker: Any) -> None:
    for logger in quiet_loggers():
        logger.setLevel(logging.CRITICAL)
