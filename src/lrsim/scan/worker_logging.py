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


def dask_setup(worker: Any) -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
