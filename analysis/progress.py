"""Progress of an analysis in phases, shown by `lrsim.progress`: a tqdm bar per phase in a
terminal (a widget in a notebook), plain one-line updates when stderr is not a terminal (logs,
pipes: "identify: cross-validation: forest: 3/10 splits (30%); 0:12 elapsed, ~0:28 left", at
most one every `interval` seconds and one at the end of a phase that lasted that long; never a
`\\r` frame), nothing when quiet (`enabled=False`, or the CLI's `--quiet`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import IO

from lrsim.progress import LINE_INTERVAL_S
from lrsim.progress import Progress as Bar
from lrsim.progress import mode as display_mode


class Progress:
    """`with progress.phase("cross-validation: forest", 10, "splits") as tick: ... tick()`.

    enabled: None = as `lrsim.progress` decides (off under --quiet), False = off, True = on."""

    def __init__(self, prefix: str = "identify", enabled: bool | None = None,
                 stream: IO[str] | None = None, interval: float = LINE_INTERVAL_S):
        self.prefix = prefix
        self.enabled = enabled
        self.stream = stream
        self.interval = interval

    @property
    def mode(self) -> str:
        """'off', 'notebook', 'bar' or 'lines'."""
        return display_mode(self.enabled, self.stream)

    def say(self, message: str) -> None:
        """One line (not when off)."""
        mode = self.mode
        if mode == "off":
            return
        line = f"{self.prefix}: {message}"
        if mode in ("bar", "notebook"):
            from tqdm import tqdm

            tqdm.write(line, file=self.stream or sys.stderr)
        else:
            print(line, file=self.stream or sys.stderr, flush=True)

    @contextlib.contextmanager
    def phase(self, name: str, total: int, unit: str = "steps"
              ) -> Iterator[Callable[[int], None]]:
        """A phase of `total` steps; yields `tick(n=1)`, to call after each step."""
        if self.mode == "off":
            yield lambda n=1: None
            return
        with Bar(total, f"{self.prefix}: {name}", unit, enabled=self.enabled,
                 stream=self.stream, interval=self.interval) as bar:
            yield lambda n=1: bar.update(n)


def silent() -> Progress:
    """A Progress that shows nothing."""
    return Progress(enabled=False)
