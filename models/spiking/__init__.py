"""Balanced E/I spiking networks in Brian2, driven by the rule registry (see `network`,
`learning`, `run`).

Importing this package imports Brian2 safely from any thread: Brian2's own import installs a
Ctrl+C (SIGINT) handler, which Python allows only in the main thread, so a first import inside
a Dask worker's task thread (a spiking run of `lrsim scan`) would fail with "signal only works
in main thread". There the handler is skipped (a worker is stopped by its nanny, not Ctrl+C).
"""

from __future__ import annotations

import signal
import sys
import threading


def _import_brian2() -> None:
    if "brian2" in sys.modules or threading.current_thread() is threading.main_thread():
        import brian2  # noqa: F401
        return
    install = signal.signal
    signal.signal = lambda signalnum, handler: signal.getsignal(signalnum)
    try:
        import brian2  # noqa: F401
    finally:
        signal.signal = install


_import_brian2()
