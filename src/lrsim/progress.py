"""Progress of long phases (training, scans), shown where the user looks:

    a terminal           a tqdm bar on stderr, redrawn in place
    a notebook           tqdm's notebook widget (`tqdm.auto`)
    a pipe or a log      plain one-line updates on stderr, at most one every `interval`
                         seconds and one at the end: no `\\r` frames in log files
    --quiet              nothing

`configure(quiet=..., verbose=...)` sets the mode for the process (the CLI's `--quiet` and
`--verbose`); `Progress(total, desc, unit)` is a small tqdm-like object (`update`,
`set_postfix_str`, `close`) that training loops and the scan use alike.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

LINE_INTERVAL_S = 10.0
_STATE = {"quiet": False, "verbose": False}
log = logging.getLogger("lrsim")


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """Progress off with `quiet`; with `verbose`, lrsim's log messages (INFO) on stderr."""
    _STATE.update(quiet=quiet, verbose=verbose)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lrsim: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def mode(enabled: bool | None = None, stream: Any = None) -> str:
    """'off', 'notebook', 'bar' or 'lines' for a progress display on `stream` (stderr)."""
    if enabled is False or _STATE["quiet"]:
        return "off"
    if in_notebook():
        return "notebook"
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "bar" if tty else "lines"


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"


class Progress:
    """`total` units of work called `desc`; `update(n)` as they finish."""

    def __init__(self, total: int, desc: str, unit: str = "it", *, initial: int = 0,
                 enabled: bool | None = None, leave: bool = True,
                 interval: float = LINE_INTERVAL_S, stream: Any = None):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.n = int(initial)
        self.postfix = ""
        self.stream = stream or sys.stderr
        self.mode = mode(enabled, self.stream)
        self.interval = interval
        self.start = self.last = time.monotonic()
        self.closed = False
        self.shown = -1  # the count in the last plain line
        self.bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit,
                            file=self.stream, dynamic_ncols=True, smoothing=0.1,
                            mininterval=0.5, leave=leave)
        elif self.mode == "notebook":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n += n
        if postfix is not None:
            self.set_postfix_str(postfix, refresh=False)
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "lines":
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                self._line(now)

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s
        if self.bar is not None:
            self.bar.set_postfix_str(s, refresh=refresh)

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        eta = ""
        if 0 < self.n < self.total and elapsed > 0:
            eta = f", ~{_duration(elapsed * (self.total - self.n) / self.n)} left"
        extra = f", {self.postfix}" if self.postfix else ""
        self.shown = self.n
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}{extra}; "
              f"{_duration(elapsed)} elapsed{eta}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif (self.mode == "lines" and self.shown != self.n
              and time.monotonic() - self.start >= self.interval):
            self._line(time.monotonic())

    def abandon(self) -> None:
        """Stop showing progress without a closing line (the work was interrupted)."""
        if self.bar is not None and not self.closed:
            self.bar.close()
        self.closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:  # an error or Ctrl-C: its own one line, no closing progress line
            self.abandon()
