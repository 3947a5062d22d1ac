"""Replaying a training step as a CUDA graph: one launch per step instead of ~60 kernel launches.

A step of K small networks is ~60 small kernels; on a GPU each costs a few microseconds to
launch, more than its arithmetic at widths <= 128, so an eager step is launch-bound. A CUDA graph
records the kernels once and replays them with one launch (`torch.cuda.CUDAGraph`).

Replay runs the recorded kernels on the recorded memory, without running any Python. A step is
replayable when
  - every input that changes between steps lives in a tensor the step reads in place (the
    minibatch indices, the step counter: the caller copies new values into these buffers before
    each replay);
  - state the step replaces (`state = rule.feedback(...)`, new optimizer buffers) is copied back
    into the tensors it started from (`in_place`), so the next replay reads the new values;
  - no Python value changes from step to step (a frozen number would be replayed forever:
    `in_place` refuses a step whose non-tensor state changes);
  - nothing syncs with the host or copies from host memory (rules that draw noise from
    per-replica CPU generators are therefore run eagerly).
`GraphedStep` runs the first `warmup` calls eagerly (on a side stream, as capture requires),
captures the next call and replays it, and from then on only replays. If capture fails, it
restores the Python state, warns once and stays eager.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten


class GraphUnsafe(RuntimeError):
    """The step cannot be replayed from a graph (see the module docstring)."""


class InPlace:
    """`fn` wrapped so that the state it replaces is copied into the tensors it started from.

    get_state() returns a pytree of the step's state (tensors, lists, dicts). After fn(), a
    tensor leaf that fn replaced is copied into the original tensor and the original tree is
    put back with set_state: the call is `stable`, the form a graph can replay. A call that
    changes the tree's structure or a non-tensor leaf (a feedback matrix created at the first
    step, a Python number) keeps the new state and is not stable; `strict` raises GraphUnsafe
    instead (used while capturing)."""

    def __init__(self, fn: Callable[[], None], get_state: Callable[[], Any],
                 set_state: Callable[[Any], None]):
        self.fn, self.get_state, self.set_state = fn, get_state, set_state
        self.stable = False
        self.strict = False

    def __call__(self) -> None:
        before = self.get_state()
        leaves_b, spec_b = tree_flatten(before)
        self.fn()
        leaves_a, spec_a = tree_flatten(self.get_state())
        why = None
        if spec_a != spec_b:
            why = "the step changed the structure of its state"
        else:
            for a, b in zip(leaves_b, leaves_a):
                if (not isinstance(a, Tensor) or not isinstance(b, Tensor)) and a is not b \
                        and (isinstance(a, Tensor) or isinstance(b, Tensor) or a != b):
                    why = f"the step changed a non-tensor state value ({_short(a)} -> " \
                          f"{_short(b)})"
                    break
        self.stable = why is None
        if why is not None:
            if self.strict:
                raise GraphUnsafe(why)
            return
        for a, b in zip(leaves_b, leaves_a):
            if isinstance(a, Tensor) and b is not a:
                a.copy_(b)
        self.set_state(before)


def in_place(fn: Callable[[], None], get_state: Callable[[], Any],
             set_state: Callable[[Any], None]) -> InPlace:
    """`InPlace(fn, get_state, set_state)`."""
    return InPlace(fn, get_state, set_state)


def _short(x: Any) -> str:
    return f"tensor{tuple(x.shape)}" if isinstance(x, Tensor) else repr(x)


class GraphedStep:
    """Call `fn` (an `InPlace` step) eagerly at least `warmup` times and until a call was
    stable, then capture it in a CUDA graph and replay the graph on every later call (eager
    for good if no call is stable within `max_warmup` calls or capture fails)."""

    def __init__(self, fn: InPlace, get_state: Callable[[], Any],
                 set_state: Callable[[Any], None], warmup: int = 3, max_warmup: int = 20):
        self.fn, self.get_state, self.set_state = fn, get_state, set_state
        self.warmup, self.max_warmup, self.calls = warmup, max_warmup, 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed: str | None = None

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        if self.failed is None and self.calls >= self.max_warmup:
            self.failed = f"no stable step in {self.max_warmup} eager steps"
        if self.failed is not None or self.calls < self.warmup or not self.fn.stable:
            self._eager()
            return
        saved = self.get_state()
        graph = torch.cuda.CUDAGraph()
        try:
            torch.cuda.synchronize()
            self.fn.strict = True
            with torch.cuda.graph(graph):
                self.fn()
        except Exception as err:  # noqa: BLE001 - any capture failure: run eagerly instead
            self.fn.strict = False
            self.set_state(saved)
            self.failed = f"{type(err).__name__}: {err}"
            print(f"lrsim: CUDA graph capture failed ({self.failed}); running the step "
                  "eagerly", file=sys.stderr)
            torch.cuda.synchronize()
            self._eager()
            return
        self.fn.strict = False
        self.graph = graph
        graph.replay()  # capture records without running: this call's step happens now

    def _eager(self) -> None:
        self.calls += 1
        if self.calls <= self.warmup and self.failed is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.fn()
            torch.cuda.current_stream().wait_stream(side)
        else:
            self.fn()
