"""Progress of long analyses on stderr: a tqdm bar per phase in a terminal, plain one-line
updates when stderr is not a terminal (logs, pipes: "identify: cross-validation forest 3/10",
never a `\\r` frame), nothing when quiet."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO

MODES = ("auto", "bar", "lines", "off")


class Progress:
    """`with progress.phase("cross-validation forest", 10) as tick: ... tick()`.

    mode: "bar" (tqdm), "lines" (plain lines, at most one per `min_interval` seconds per phase
    plus the last), "off", or "auto" (bar if `stream` is a terminal, else lines)."""

    def __init__(self, prefix: str = "identify", mode: str = "auto", stream: IO[str] | None = None,
                 min_interval: float = 2.0):
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "bar" if isatty is not None and isatty() else "lines"
        self.mode = mode
        self.prefix = prefix
        self.min_interval = min_interval

    def say(self, message: str) -> None:
        """One line (not in "off" mode)."""
        if self.mode == "off":
            return
        line = f"{self.prefix}: {message}"
        if self.mode == "bar":
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    @contextlib.contextmanager
    def phase(self, name: str, total: int) -> Iterator[Callable[[int], None]]:
        """A phase of `total` steps; yields `tick(n=1)`, to call after each step."""
        if self.mode == "off":
            yield lambda n=1: None
            return
        if self.mode == "bar":
            from tqdm import tqdm

            bar = tqdm(total=total, desc=f"{self.prefix}: {name}", file=self.stream,
                       leave=True, dynamic_ncols=True)
            try:
                yield lambda n=1: bar.update(n)
            finally:
                bar.close()
            return
        start = time.perf_counter()
        state = {"done": 0, "last": start}
        self._line(name, 0, total, None)

        def tick(n: int = 1) -> None:
            state["done"] += n
            now = time.perf_counter()
            if state["done"] >= total or now - state["last"] >= self.min_interval:
                state["last"] = now
                self._line(name, state["done"], total,
                           now - start if state["done"] >= total else None)

        yield tick
        if state["done"] < total:  # a phase that ended early still says so
            self._line(name, state["done"], total, time.perf_counter() - start)

    def _line(self, name: str, done: int, total: int, elapsed: float | None) -> None:
        tail = f" ({elapsed:.0f} s)" if elapsed is not None else ""
        print(f"{self.prefix}: {name} {done}/{total}{tail}", file=self.stream, flush=True)


def silent() -> Progress:
    """A Progress that prints nothing."""
    return Progress(mode="off")
